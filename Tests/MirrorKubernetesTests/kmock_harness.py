#!/usr/bin/env python3
"""A Kubernetes API server for MirrorKubernetesTests: kmock's emulator plus what it lacks.

kmock (PyPI, `pip install kmock`) provides the HTTP server, the parsing of Kubernetes URLs
into resource/namespace/name/action, the in-memory object store (create, merge patch,
delete, 404 as a Status object) and the discovery endpoints.

This harness adds what the client under test relies on, written from the API concepts
documentation (resource versions, watches, bookmarks, 410 Gone, pagination):
- one resourceVersion counter for the server, stamped on every write (deletes too), with a
  uid and creationTimestamp on create;
- PUT (replace) with optimistic concurrency: a stale metadata.resourceVersion is 409
  Conflict; creating an existing object is 409 AlreadyExists;
- label selectors (=, ==, !=, in, notin, key, !key) on list and watch; in a watch an object
  that stops matching arrives as DELETED and one that starts matching as ADDED;
- list: metadata.resourceVersion, limit/continue over a snapshot (continue tokens expire
  with a compaction: 410);
- watch: replay of the history after a resourceVersion, synthetic ADDED events when it is
  unset or "0", BOOKMARK events every --bookmark-interval when asked, timeoutSeconds, and
  410 Expired for a version older than the last compaction (an ERROR event, or HTTP 410
  with --expired-as-status: the API documents both);
- faults, through /_harness/ endpoints: break open watches (optionally mid-line, and either
  cutting the connection or ending the response as if complete), refuse
  watches with 503 until accepted, compact the history, change the bearer token;
- TLS with an optional client CA, and a required bearer token;
- Service ClusterIPs: a create without `spec.clusterIP` gets the next free address of
  --service-cidr (`clusterIP` and `clusterIPs`), as the API server's allocator does; a
  replace that omits them keeps the allocated ones (they are immutable);
- namespaces: with --namespaces, a create in any other namespace is 404 NotFound for the
  namespace, as when it does not exist;
- the status subresource: PUT .../status changes `.status` only; a PUT of the object keeps it.

What it does not prove: a real apiserver's watch cache and its timing (bookmarks come about
once a minute there, never "every N seconds"), field selectors, resourceVersionMatch, HTTP/2,
admission, RBAC, server-side apply, and the exact wording of real error messages.

Prints "LISTENING <port>" once serving; exits on SIGTERM or when its stdin closes (so a
crashed test run leaves nothing behind), or with --ignore-stdin only on SIGTERM (scripts).
"""
import argparse
import asyncio
import copy
import datetime
import ipaddress
import re
import signal
import ssl
import sys
import uuid

import aiohttp.test_utils
import aiohttp.web
import kmock

KINDS = {
    'services': 'Service', 'endpointslices': 'EndpointSlice', 'secrets': 'Secret',
    'leases': 'Lease', 'links': 'Link', 'configmaps': 'ConfigMap',
}


def status_error(code, reason, message):
    return kmock.KubernetesError(status=code, reason=reason, message=message, details={})


# --- label selectors (the string form of the labelSelector parameter) ---------------------

TERM = re.compile(r'^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9_.-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$')


def parse_selector(text):
    """A predicate over a labels dict; raises ValueError on a malformed selector."""
    if not text:
        return lambda labels: True
    terms, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += char == '('
        depth -= char == ')'
        if char == ',' and depth == 0:
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    checks = []
    for term in terms:
        match = TERM.match(term)
        if not match:
            raise ValueError(f'unable to parse requirement: {term!r}')
        negated, key, op, value, set_op, values = match.groups()
        if negated and (op or set_op):
            raise ValueError(f'unable to parse requirement: {term!r}')
        if negated:
            checks.append(lambda labels, key=key: key not in labels)
        elif op in ('=', '=='):
            checks.append(lambda labels, key=key, value=value: labels.get(key) == value)
        elif op == '!=':
            checks.append(lambda labels, key=key, value=value: labels.get(key) != value)
        elif set_op:
            members = {item.strip() for item in values.split(',') if item.strip()}
            if set_op == 'in':
                checks.append(lambda labels, key=key, members=members: labels.get(key) in members)
            else:
                checks.append(lambda labels, key=key, members=members: labels.get(key) not in members)
        else:
            checks.append(lambda labels, key=key: key in labels)
    return lambda labels: all(check(labels) for check in checks)


def labels_of(obj):
    return (obj or {}).get('metadata', {}).get('labels') or {}


# --- the emulator ----------------------------------------------------------------------------

class Event:
    __slots__ = ('rv', 'type', 'resource', 'obj', 'old')

    def __init__(self, rv, type, resource, obj, old):
        self.rv, self.type, self.resource, self.obj, self.old = rv, type, resource, obj, old


class Watch:
    __slots__ = ('request', 'broken', 'partial', 'clean')

    def __init__(self, request):
        self.request, self.broken, self.partial, self.clean = request, False, False, False


class Harness(kmock.KubernetesEmulator):
    def configure(self, args):
        self.rv = self.committed = self.horizon = args.start_rv
        self.history = []
        self.changed = asyncio.Condition()
        self.writes = asyncio.Lock()
        self.watches = set()
        self.refusing = False
        self.token = args.token
        self.bookmark_interval = args.bookmark_interval
        self.expired_as_status = args.expired_as_status
        self.snapshots = {}
        self.log = []
        self.namespaces = set(args.namespaces.split(',')) if args.namespaces else None
        self.service_network = ipaddress.ip_network(args.service_cidr)
        self.next_service_ip = 10

    async def _handle(self, request):
        if request.url.path.startswith('/_harness/'):
            return await self.control(request)
        self.log.append({'method': str(request.method.value if hasattr(request.method, 'value') else request.method),
                         'path': request.url.path, 'params': dict(request.params)})
        if self.token is not None and request.headers.get('Authorization') != f'Bearer {self.token}':
            raise status_error(401, 'Unauthorized', 'Unauthorized')
        if request.resource is None:
            return await super()._handle(request)
        if request.method == 'PUT' and request.name:
            async with self.writes:
                return await self.replace(request)
        if request.action in (kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE):
            async with self.writes:
                return await self.write(request)
        return await super()._handle(request)

    # Writes: kmock stores; the harness stamps versions and keeps the event history.

    def next_rv(self):
        self.rv += 1
        return self.rv

    async def record(self, rv, type, resource, obj, old=None):
        self.history.append(Event(rv, type, resource, copy.deepcopy(obj), copy.deepcopy(old)))
        self.committed = rv
        async with self.changed:
            self.changed.notify_all()

    def key_of(self, request, obj=None):
        name = request.name or ((obj or {}).get('metadata') or {}).get('name')
        namespace = request.namespace or ((obj or {}).get('metadata') or {}).get('namespace')
        return (request.resource, namespace, name)

    def current(self, key):
        if key in self.objects and not self.objects[key].deleted:
            return self.objects[key].raw
        return None

    def not_found(self, request, key):
        return status_error(404, 'NotFound', f'{request.resource.plural} "{key[2]}" not found')

    async def write(self, request):
        if request.action == kmock.action.CREATE:
            data = request.data if isinstance(request.data, dict) else None
            key = self.key_of(request, data)
            if data is None or not key[2]:
                raise status_error(422, 'Invalid', 'metadata.name: Required value')
            if self.namespaces is not None and key[1] is not None and key[1] not in self.namespaces:
                raise status_error(404, 'NotFound', f'namespaces "{key[1]}" not found')
            if self.current(key) is not None:
                raise status_error(409, 'AlreadyExists', f'{request.resource.plural} "{key[2]}" already exists')
            if request.resource.plural == 'services':
                self.allocate_cluster_ip(data)
            meta = data.setdefault('metadata', {})
            rv = self.next_rv()
            meta.update(resourceVersion=str(rv), uid=str(uuid.uuid4()),
                        creationTimestamp=datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ'))
            if key[1] is not None:
                meta['namespace'] = key[1]
            response = await super()._handle(request)
            await self.record(rv, 'ADDED', request.resource, self.objects[key].raw)
            return response
        key = self.key_of(request)
        old = self.current(key)
        if old is None:
            raise self.not_found(request, key)
        if request.action == kmock.action.DELETE:
            wanted = ((request.data if isinstance(request.data, dict) else {}).get('preconditions') or {}).get('resourceVersion')
            if wanted and wanted != old['metadata'].get('resourceVersion'):
                raise self.conflict(request, key)
        rv = self.next_rv()
        if request.action == kmock.action.UPDATE:  # a merge patch
            wanted = ((request.data or {}).get('metadata') or {}).get('resourceVersion')
            if wanted and wanted != old['metadata'].get('resourceVersion'):
                raise self.conflict(request, key)
            request.data.setdefault('metadata', {})['resourceVersion'] = str(rv)
            response = await super()._handle(request)
            await self.record(rv, 'MODIFIED', request.resource, self.objects[key].raw, old)
            return response
        self.objects[key].patch({'metadata': {'resourceVersion': str(rv)}})
        last = self.objects[key].raw
        response = await super()._handle(request)
        if self.objects[key].deleted:
            await self.record(rv, 'DELETED', request.resource, last)
        else:  # finalizers: only marked for deletion
            await self.record(rv, 'MODIFIED', request.resource, self.objects[key].raw, old)
        return response

    def allocate_cluster_ip(self, service):
        spec = service.setdefault('spec', {})
        if spec.get('type') == 'ExternalName' or spec.get('clusterIP'):
            if spec.get('clusterIP') and not spec.get('clusterIPs'):
                spec['clusterIPs'] = [spec['clusterIP']]
            return
        used = {raw.get('spec', {}).get('clusterIP') for (resource, _, _), obj in self.objects.items()
                if resource.plural == 'services' and not obj.deleted for raw in [obj.raw]}
        while True:
            address = str(self.service_network[self.next_service_ip])
            self.next_service_ip += 1
            if address not in used:
                break
        spec['clusterIP'], spec['clusterIPs'] = address, [address]
        spec.setdefault('ipFamilies', ['IPv6' if ':' in address else 'IPv4'])

    def conflict(self, request, key):
        return status_error(409, 'Conflict', f'Operation cannot be fulfilled on {request.resource.plural} "{key[2]}": '
                            'the object has been modified; please apply your changes to the latest version and try again')

    async def replace(self, request):
        key = self.key_of(request)
        old = self.current(key)
        if old is None:
            raise self.not_found(request, key)
        new = copy.deepcopy(request.data) if isinstance(request.data, dict) else None
        if new is None or (new.get('metadata') or {}).get('name') != key[2]:
            raise status_error(400, 'BadRequest', 'the name of the object does not match the name on the URL')
        wanted = new['metadata'].get('resourceVersion')
        if wanted and wanted != old['metadata'].get('resourceVersion'):
            raise self.conflict(request, key)
        if getattr(request, 'subresource', None) == 'status':
            # The status subresource changes .status only, whatever else the body says.
            status, new = new.get('status'), copy.deepcopy(old)
            new['status'] = status
        elif getattr(request, 'subresource', None):
            raise status_error(404, 'NotFound', f'the server could not find the requested resource ({request.subresource})')
        elif 'status' in old:
            # A replace of the object leaves .status alone (CRDs with a status subresource).
            new['status'] = old['status']
        if request.resource.plural == 'services':
            spec, old_spec = new.setdefault('spec', {}), old.get('spec') or {}
            for field in ('clusterIP', 'clusterIPs', 'ipFamilies'):
                if not spec.get(field) and old_spec.get(field):
                    spec[field] = old_spec[field]
            if spec.get('clusterIP') != old_spec.get('clusterIP') and old_spec.get('clusterIP'):
                raise status_error(422, 'Invalid', f'Service "{key[2]}" is invalid: spec.clusterIPs[0]: Invalid value: '
                                   f'{spec.get("clusterIP")!r}: may not change once set')
        rv = self.next_rv()
        new['metadata'].update(resourceVersion=str(rv), uid=old['metadata'].get('uid'),
                               creationTimestamp=old['metadata'].get('creationTimestamp'))
        if key[1] is not None:
            new['metadata']['namespace'] = key[1]
        self.objects[key].history.append(new)
        await self.record(rv, 'MODIFIED', request.resource, new, old)
        return aiohttp.web.json_response(new)

    # Reads.

    def matching(self, request, selector):
        items = []
        for (resource, namespace, name), obj in self.objects.items():
            if resource != request.resource or obj.deleted:
                continue
            if request.namespace is not None and namespace != request.namespace:
                continue
            raw = obj.raw
            if selector(labels_of(raw)):
                items.append(((namespace or '', name), copy.deepcopy(raw)))
        return [raw for _, raw in sorted(items, key=lambda item: item[0])]

    def selector_of(self, request):
        try:
            return parse_selector(request.params.get('labelSelector'))
        except ValueError as error:
            raise status_error(400, 'BadRequest', str(error))

    def kind_of(self, request):
        plural = request.resource.plural or ''
        return KINDS.get(plural, plural[:1].upper() + plural[1:])

    def api_version_of(self, request):
        group, version = request.resource.group, request.resource.version
        return f'{group}/{version}' if group else version

    async def _serve_list(self, request):
        selector = self.selector_of(request)
        limit = int(request.params.get('limit') or 0)
        token = request.params.get('continue')
        async with self.writes:
            if token:
                snapshot = self.snapshots.pop(token, None)
                if snapshot is None or snapshot[0] < self.horizon:
                    raise status_error(410, 'Expired', 'The provided continue parameter is too old to display a '
                                       'consistent list result. You can start a new list without the continue parameter.')
                rv, items = snapshot
            else:
                rv, items = self.committed, self.matching(request, selector)
        page, rest = (items[:limit], items[limit:]) if limit > 0 else (items, [])
        metadata = {'resourceVersion': str(rv)}
        if rest:
            token = uuid.uuid4().hex
            self.snapshots[token] = (rv, rest)
            metadata.update({'continue': token, 'remainingItemCount': len(rest)})
        return {'kind': self.kind_of(request) + 'List', 'apiVersion': self.api_version_of(request),
                'metadata': metadata, 'items': page}

    def translate(self, event, request, selector):
        if event.resource != request.resource:
            return None
        if request.namespace is not None and event.obj['metadata'].get('namespace') != request.namespace:
            return None
        matches = selector(labels_of(event.obj))
        if event.type == 'MODIFIED':
            matched = selector(labels_of(event.old))
            kind = 'MODIFIED' if matched and matches else 'ADDED' if matches else 'DELETED' if matched else None
        else:
            kind = event.type if matches else None
        return {'type': kind, 'object': event.obj} if kind else None

    async def _serve_watch(self, request):
        if self.refusing:
            raise status_error(503, 'ServiceUnavailable', 'watches are refused by the test')
        selector = self.selector_of(request)
        since = request.params.get('resourceVersion')
        bookmarks = request.params.get('allowWatchBookmarks') == 'true'
        timeout = float(request.params.get('timeoutSeconds') or 1800)
        initial = []
        async with self.writes:
            if since in (None, '', '0'):
                position = len(self.history)
                initial = self.matching(request, selector)
            else:
                try:
                    since = int(since)
                except ValueError:
                    raise status_error(400, 'BadRequest', f'invalid resourceVersion {since!r}')
                if since < self.horizon and self.expired_as_status:
                    raise status_error(410, 'Expired', f'too old resource version: {since} ({self.horizon})')
                position = next((i for i, event in enumerate(self.history) if event.rv > since), len(self.history))
        yield b''  # the response head goes out now, even if nothing happens
        if isinstance(since, int) and since < self.horizon:
            yield {'type': 'ERROR', 'object': {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
                                               'message': f'too old resource version: {since} ({self.horizon})',
                                               'reason': 'Expired', 'code': 410}}
            return
        watch = Watch(request)
        self.watches.add(watch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        next_bookmark = loop.time() + self.bookmark_interval
        try:
            for obj in initial:
                yield {'type': 'ADDED', 'object': obj}
            while True:
                while position < len(self.history) and not watch.broken:
                    event = self.history[position]
                    position += 1
                    translated = self.translate(event, request, selector)
                    if translated:
                        yield translated
                if watch.broken:
                    if watch.partial:
                        yield b'{"type":"MODIFIED","object":{"metadata":{"name":"half'
                        await asyncio.sleep(0.05)
                    if not watch.clean:  # cut the connection; a clean end sends the last chunk
                        request._raw_request.transport.close()
                    return
                now = loop.time()
                if now >= deadline:
                    return
                if bookmarks and now >= next_bookmark:
                    yield {'type': 'BOOKMARK', 'object': {'kind': self.kind_of(request), 'apiVersion': self.api_version_of(request),
                                                          'metadata': {'resourceVersion': str(self.committed)}}}
                    next_bookmark = now + self.bookmark_interval
                    continue
                wake = min(deadline, next_bookmark) if bookmarks else deadline
                async with self.changed:
                    if position < len(self.history) or watch.broken:
                        continue
                    try:
                        await asyncio.wait_for(self.changed.wait(), max(0.0, wake - now))
                    except asyncio.TimeoutError:
                        pass
        finally:
            self.watches.discard(watch)

    # Control endpoints for the tests.

    async def control(self, request):
        action = request.url.path[len('/_harness/'):]
        if action == 'break-watches':
            count = len(self.watches)
            for watch in self.watches:
                watch.broken, watch.partial = True, request.params.get('partial') == '1'
                watch.clean = request.params.get('clean') == '1'
            async with self.changed:
                self.changed.notify_all()
            return aiohttp.web.json_response({'broken': count})
        if action == 'refuse-watches':
            self.refusing = True
        elif action == 'accept-watches':
            self.refusing = False
        elif action == 'compact':
            async with self.writes:
                self.horizon = self.committed
                self.snapshots.clear()
        elif action == 'token':
            self.token = (request.data or {}).get('token')
        elif action == 'requests':
            return aiohttp.web.json_response(self.log)
        elif action != 'state':
            return aiohttp.web.json_response({'error': f'unknown action {action}'}, status=404)
        return aiohttp.web.json_response({'resourceVersion': str(self.committed), 'horizon': str(self.horizon),
                                          'watches': len(self.watches), 'refusing': self.refusing})


class TLSServer(aiohttp.test_utils.RawTestServer):
    """kmock's default server class, serving TLS when a context is set."""
    context = None

    async def start_server(self, **kwargs):
        if TLSServer.context is not None:
            kwargs['ssl'] = TLSServer.context
        return await super().start_server(**kwargs)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--host', default='127.0.0.1', help='address to listen on (default: 127.0.0.1)')
    parser.add_argument('--start-rv', type=int, default=1)
    parser.add_argument('--bookmark-interval', type=float, default=60.0)
    parser.add_argument('--expired-as-status', action='store_true')
    parser.add_argument('--token')
    parser.add_argument('--tls-cert')
    parser.add_argument('--tls-key')
    parser.add_argument('--client-ca')
    parser.add_argument('--ignore-stdin', action='store_true', help='run until SIGTERM even when stdin closes (scripts)')
    parser.add_argument('--namespaces', help='comma list of the namespaces that exist (default: every one)')
    parser.add_argument('--service-cidr', default='10.96.0.0/16')
    args = parser.parse_args()
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            context.load_verify_locations(args.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        TLSServer.context = context

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    class StdinClosed(asyncio.Protocol):
        def connection_lost(self, exc):
            stop.set()
    if not args.ignore_stdin:
        await loop.connect_read_pipe(StdinClosed, sys.stdin)

    harness = Harness()
    harness.configure(args)
    async with harness, kmock.Server(harness, host=args.host, port=args.port, server_cls=TLSServer) as server:
        print(f'LISTENING {server.port}', flush=True)
        await stop.wait()
        for watch in list(harness.watches):
            watch.request._raw_request.transport.close()


if __name__ == '__main__':
    asyncio.run(main())
