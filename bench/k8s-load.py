#!/usr/bin/env python3
"""bench/k8s.sh's driver: loads the emulated clusters, follows the feed, times endpoint changes.

  load      --local URL --remote URL... --services N [--rd-percent P] [--namespaces K]
            Creates N exported Services over the remote clusters (round robin; P% of them
            remote-discovery with a 3-endpoint EndpointSlice, the rest gateway mode), with
            concurrent POSTs, and in the local cluster one credentials Secret and one Link per
            remote. Cluster 0's first Service is the probe: `probe` in bench-0, remote
            discovery, one endpoint (the one `changes` replaces). Prints a JSON summary.
  links     --local URL --remote URL...   only the Secrets and Links (a fresh local cluster).
  follow    --feed URL --log FILE --expect N --timeout S
            From before the feed starts: the time (ns since the epoch) of its first
            snapshot, of the published state first holding N services with ClusterIPs, and
            of its log first holding N "created mirror Service" lines. One JSON line.
  changes   --remote URL --feed URL --count K [--gap-ms G] [--timeout S]
            Run in the agent's network namespace: K merge PATCHes of the probe's
            EndpointSlice, each replacing its one ready endpoint by a new IP; per change the
            time from sending the PATCH to its 200, to the feed's upsertService carrying the
            IP (/v1/watch), and to the kernel's nf_tables notification of an element holding
            it (`nft monitor`, which the kernel sends at commit). One JSON line per change.
  requests  --server URL   what an emulator served: count per method and resource.
"""
import argparse
import asyncio
import base64
import json
import re
import sys
import time

import aiohttp

CLUSTER_NAMES = ['paris', 'berlin', 'tokyo', 'oslo', 'lima', 'cairo', 'delhi', 'quito']
LINK_NS = 'mirror-agent'
PROBE = ('bench-0', 'probe')


def cluster_name(index):
    return CLUSTER_NAMES[index] if index < len(CLUSTER_NAMES) else f'c{index}'


def now():
    return time.time_ns()


async def post_all(session, url, objects, concurrency):
    """POSTs (path, body) pairs with `concurrency` requests in flight; raises on any non-2xx."""
    queue = list(reversed(objects))
    failures = []

    async def worker():
        while queue:
            path, body = queue.pop()
            for attempt in range(5):
                async with session.post(url + path, json=body) as response:
                    text = await response.text()
                    if response.status < 300:
                        break
                    if response.status == 409:  # a retry of a create that did land
                        break
                    if attempt == 4:
                        failures.append(f'{path}: {response.status} {text[:200]}')
                await asyncio.sleep(0.1)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if failures:
        raise SystemExit('load failed: ' + '; '.join(failures[:5]))


def remote_objects(cluster, count, rd_percent, namespaces):
    """(services, slices) for one remote cluster: `count` Services named svc-00001…"""
    services, slices = [], []
    every = max(1, round(100 / rd_percent)) if rd_percent > 0 else 0
    for j in range(count):
        namespace = f'bench-{(j // 7) % namespaces}'
        name = f'svc-{j:05d}'
        remote_discovery = every and j % every == 0
        if cluster == 0 and j == 0:
            namespace, name, remote_discovery = PROBE[0], PROBE[1], True
        ports = [{'name': 'http', 'protocol': 'TCP', 'port': 80, 'targetPort': 8080}]
        if j % 5 == 1:
            ports.append({'name': 'grpc', 'protocol': 'TCP', 'port': 9090, 'targetPort': 9090})
        # Remote ClusterIPs are given, so no allocator runs on the remote side.
        ip = f'10.96.{(j + 10) // 250}.{(j + 10) % 250 + 1}'
        services.append((f'/api/v1/namespaces/{namespace}/services', {
            'apiVersion': 'v1', 'kind': 'Service',
            'metadata': {'name': name, 'namespace': namespace,
                         'labels': {'app': name, 'mirror.linkerd.io/exported': 'remote-discovery' if remote_discovery else 'true'}},
            'spec': {'type': 'ClusterIP', 'clusterIP': ip, 'clusterIPs': [ip], 'selector': {'app': name}, 'ports': ports},
        }))
        if remote_discovery:
            octet = 20 + cluster
            addresses = ['10.29.255.1'] if (cluster, j) == (0, 0) else \
                [f'10.{octet}.{(3 * j + e) // 250}.{(3 * j + e) % 250 + 1}' for e in range(3)]
            slices.append((f'/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices', {
                'apiVersion': 'discovery.k8s.io/v1', 'kind': 'EndpointSlice', 'addressType': 'IPv4',
                'metadata': {'name': f'{name}-x7k2p', 'namespace': namespace,
                             'labels': {'kubernetes.io/service-name': name,
                                        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io'}},
                'endpoints': [{'addresses': [a], 'conditions': {'ready': True, 'serving': True, 'terminating': False},
                               'targetRef': {'kind': 'Pod', 'namespace': namespace, 'name': f'{name}-{e}'}}
                              for e, a in enumerate(addresses)],
                'ports': [{'name': p['name'], 'protocol': 'TCP', 'port': p['targetPort']} for p in ports],
            }))
    return services, slices


def link_objects(remotes):
    objects = []
    for index, url in enumerate(remotes):
        name = cluster_name(index)
        kubeconfig = (
            'apiVersion: v1\nkind: Config\n'
            f'clusters:\n- name: {name}\n  cluster:\n    server: "{url}"\n'
            'users:\n- name: u\n  user:\n    token: t\n'
            f'contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: u\n'
            f'current-context: {name}\n')
        objects.append((f'/api/v1/namespaces/{LINK_NS}/secrets', {
            'apiVersion': 'v1', 'kind': 'Secret', 'type': 'mirror.linkerd.io/remote-kubeconfig',
            'metadata': {'name': f'cluster-credentials-{name}', 'namespace': LINK_NS},
            'data': {'kubeconfig': base64.b64encode(kubeconfig.encode()).decode()},
        }))
        objects.append((f'/apis/multicluster.linkerd.io/v1alpha3/namespaces/{LINK_NS}/links', {
            'apiVersion': 'multicluster.linkerd.io/v1alpha3', 'kind': 'Link',
            'metadata': {'name': name, 'namespace': LINK_NS},
            'spec': {'targetClusterName': name, 'clusterCredentialsSecret': f'cluster-credentials-{name}',
                     'targetClusterDomain': 'cluster.local', 'gatewayAddress': '10.99.1.2', 'gatewayPort': '4143',
                     'gatewayIdentity': f'linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.{name}'},
        }))
    return objects


async def load(args):
    headers = {'Authorization': 'Bearer t'}
    summary = {'clusters': [], 'services': 0, 'remoteDiscovery': 0}
    start = time.monotonic()
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=0)) as session:
        jobs = []
        for index, url in enumerate(args.remote):
            count = args.services // len(args.remote) + (1 if index < args.services % len(args.remote) else 0)
            services, slices = remote_objects(index, count, args.rd_percent, args.namespaces)
            summary['clusters'].append({'name': cluster_name(index), 'url': url, 'services': len(services),
                                        'remoteDiscovery': len(slices)})
            summary['services'] += len(services)
            summary['remoteDiscovery'] += len(slices)

            async def one(url=url, services=services, slices=slices):
                await post_all(session, url, services, args.concurrency)
                await post_all(session, url, slices, args.concurrency)
            jobs.append(one())
        await asyncio.gather(*jobs)
        await post_all(session, args.local, link_objects(args.remote), 1)
    summary['seconds'] = round(time.monotonic() - start, 2)
    print(json.dumps(summary))


async def links(args):
    async with aiohttp.ClientSession(headers={'Authorization': 'Bearer t'}) as session:
        await post_all(session, args.local, link_objects(args.remote), 1)


async def feed_lines(url, on_line, stop):
    """Follows url (/v1/watch), retrying until it answers 200; calls on_line(bytes, ns)."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while not stop.is_set():
            try:
                async with session.get(url) as response:
                    if response.status != 200:
                        await asyncio.sleep(0.02)
                        continue
                    pending = b''
                    async for chunk in response.content.iter_any():
                        seen = now()
                        lines = (pending + chunk).split(b'\n')
                        pending = lines.pop()
                        for line in lines:
                            if line:
                                on_line(line, seen)
                        if stop.is_set():
                            return
            except (aiohttp.ClientError, ConnectionError):
                await asyncio.sleep(0.02)


async def follow(args):
    result = {'snapshot': None, 'snapshotServices': None, 'published': None, 'created': None,
              'lastCount': 0, 'lastCreated': 0, 'deltas': 0}
    services = {}
    stop = asyncio.Event()

    def key_of(service):
        return (service['namespace'], f"{service['name']}-{service['cluster']}" if service.get('cluster') else f"{service['name']}-federated")

    def done():
        return result['published'] is not None and result['created'] is not None

    def on_line(line, seen):
        event = json.loads(line)
        kind = event['type']
        if kind == 'snapshot':
            services.clear()
            for service in event['state'].get('services', []):
                services[key_of(service)] = bool(service.get('ips'))
            if result['snapshot'] is None:
                result['snapshot'], result['snapshotServices'] = seen, len(services)
        elif kind == 'upsertService':
            result['deltas'] += 1
            services[key_of(event['service'])] = bool(event['service'].get('ips'))
        elif kind == 'deleteService':
            result['deltas'] += 1
            services.pop((event['namespace'], event['mirroredName']), None)
        count = sum(services.values())
        result['lastCount'] = count
        if result['published'] is None and count >= args.expect:
            result['published'] = seen
        if done():
            stop.set()

    async def tail_log():
        with open(args.log, 'rb') as f:
            pending, created = b'', 0
            while not stop.is_set():
                chunk = f.read()
                if not chunk:
                    await asyncio.sleep(0.002)
                    continue
                seen = now()
                lines = (pending + chunk).split(b'\n')
                pending = lines.pop()
                created += sum(1 for line in lines if b'created mirror Service' in line)
                result['lastCreated'] = created
                if result['created'] is None and created >= args.expect:
                    result['created'] = seen
                    if done():
                        stop.set()

    watcher = asyncio.ensure_future(feed_lines(args.feed + '/v1/watch', on_line, stop))
    tail = asyncio.ensure_future(tail_log())
    try:
        await asyncio.wait_for(stop.wait(), args.timeout)
    except asyncio.TimeoutError:
        result['timeout'] = True
    stop.set()
    watcher.cancel()
    tail.cancel()
    await asyncio.gather(watcher, tail, return_exceptions=True)
    print(json.dumps(result), flush=True)


async def changes(args):
    namespace, name = PROBE
    path = f'/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{name}-x7k2p'
    feed_seen = []  # (ns, line) of upsertService events of the probe
    kernel_seen = []  # (ns, line) of nft monitor lines
    stop = asyncio.Event()
    changed = asyncio.Event()

    def on_line(line, seen):
        if b'"upsertService"' in line and b'"name":"probe"' in line:
            feed_seen.append((seen, line))
            changed.set()

    monitor = await asyncio.create_subprocess_exec('nft', 'monitor', 'new', 'elements', stdout=asyncio.subprocess.PIPE,
                                                   stdin=asyncio.subprocess.DEVNULL)

    async def read_monitor():
        while True:
            line = await monitor.stdout.readline()
            if not line:
                return
            kernel_seen.append((now(), line))
            changed.set()

    watcher = asyncio.ensure_future(feed_lines(args.feed + '/v1/watch', on_line, stop))
    reader = asyncio.ensure_future(read_monitor())
    await asyncio.sleep(1.0)  # the watch's snapshot is in, nft monitor subscribed

    def first_after(seen, t0, ip):
        pattern = re.compile(re.escape(ip).encode() + rb'(?![0-9])')
        return next((t for t, line in seen if t >= t0 and pattern.search(line)), None)

    results = []
    async with aiohttp.ClientSession(headers={'Authorization': 'Bearer t',
                                              'Content-Type': 'application/merge-patch+json'}) as session:
        for k in range(args.count + 1):  # change 0 is a warm-up, not reported
            ip = f'10.29.{k // 250}.{k % 250 + 1}'
            body = json.dumps({'endpoints': [{'addresses': [ip], 'conditions': {'ready': True, 'serving': True, 'terminating': False},
                                              'targetRef': {'kind': 'Pod', 'namespace': namespace, 'name': f'probe-{k}'}}]})
            t0 = now()
            async with session.patch(args.remote + path, data=body) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f'PATCH {path}: {response.status}')
            acked = now()
            deadline = time.monotonic() + args.timeout
            feed = kernel = None
            while time.monotonic() < deadline:
                feed = feed or first_after(feed_seen, t0, ip)
                kernel = kernel or first_after(kernel_seen, t0, ip)
                if feed and kernel:
                    break
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), 0.05)
                except asyncio.TimeoutError:
                    pass
            row = {'change': k, 'ip': ip, 'ackMs': (acked - t0) / 1e6,
                   'feedMs': (feed - t0) / 1e6 if feed else None, 'kernelMs': (kernel - t0) / 1e6 if kernel else None}
            if k > 0:
                results.append(row)
                print(json.dumps(row), flush=True)
            feed_seen.clear()
            kernel_seen.clear()
            await asyncio.sleep(args.gap_ms / 1000)
    stop.set()
    watcher.cancel()
    monitor.terminate()
    await monitor.wait()
    reader.cancel()
    await asyncio.gather(watcher, reader, return_exceptions=True)


async def requests(args):
    """The emulator's request log summarised: count per method and resource (LIST/WATCH apart)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(args.server + '/_harness/requests') as response:
            log = await response.json()
    counts = {}
    for entry in log:
        parts = entry['path'].strip('/').split('/')
        if 'namespaces' in parts and len(parts) > parts.index('namespaces') + 2:
            at = parts.index('namespaces') + 2
        else:  # cluster-wide: /api/v1/RESOURCE[/NAME], /apis/GROUP/VERSION/RESOURCE[/NAME]
            at = 2 if parts[0] == 'api' else 3
        resource = parts[at] if len(parts) > at else '/' + '/'.join(parts)
        method = entry['method']
        if method == 'GET':
            method = 'WATCH' if entry['params'].get('watch') in ('true', '1') else 'GET' if len(parts) > at + 1 else 'LIST'
        key = f'{method} {resource}'
        counts[key] = counts.get(key, 0) + 1
    print(', '.join(f'{key} {count}' for key, count in sorted(counts.items(), key=lambda item: -item[1])))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('load')
    p.add_argument('--local', required=True)
    p.add_argument('--remote', required=True, nargs='+')
    p.add_argument('--services', type=int, required=True)
    p.add_argument('--rd-percent', type=float, default=10)
    p.add_argument('--namespaces', type=int, default=10)
    p.add_argument('--concurrency', type=int, default=16)
    p = sub.add_parser('links')
    p.add_argument('--local', required=True)
    p.add_argument('--remote', required=True, nargs='+')
    p = sub.add_parser('follow')
    p.add_argument('--feed', required=True)
    p.add_argument('--log', required=True)
    p.add_argument('--expect', type=int, required=True)
    p.add_argument('--timeout', type=float, default=300)
    p = sub.add_parser('changes')
    p.add_argument('--remote', required=True)
    p.add_argument('--feed', required=True)
    p.add_argument('--count', type=int, default=50)
    p.add_argument('--gap-ms', type=float, default=200)
    p.add_argument('--timeout', type=float, default=10)
    p = sub.add_parser('requests')
    p.add_argument('--server', required=True)
    args = parser.parse_args()
    asyncio.run({'load': load, 'links': links, 'follow': follow, 'changes': changes, 'requests': requests}[args.command](args))


if __name__ == '__main__':
    main()
