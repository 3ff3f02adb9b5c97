#!/usr/bin/env python3
"""A small `kubectl apply -f -` for the emulated API servers of the end-to-end tests.

Reads multi-document YAML on stdin (what `mirror-agent link` prints) and creates each object
with a JSON POST to its API path; an object that already exists (409 AlreadyExists) is
updated with a JSON merge patch of the manifest, which, like kubectl apply, keeps the fields
the manifest does not set (a token Secret keeps the token the token controller wrote).
Prints one line per object as kubectl does ("secret/NAME created"); exits 1 if any object
failed, after trying all of them.

usage: kube-apply.py --server http://HOST:PORT [--token TOKEN] [--namespace NS]
                     [--skip-kind KIND]... < manifests.yaml

--skip-kind: kinds the server cannot create, listed as skipped. kmock, the emulator under
Tests/MirrorKubernetesTests, has no Namespace resource (POST /api/v1/namespaces is a 500 in
its URL parser); the harness emulates namespaces with --namespaces instead.

Needs PyYAML (Debian: python3-yaml).
"""
import argparse
import json
import sys
import urllib.error
import urllib.request

try:
    import yaml
except ImportError:
    sys.exit('kube-apply.py needs PyYAML (Debian: apt-get install python3-yaml; pip: pip install pyyaml)')

# kind -> (plural, namespaced), for what the tests apply; other kinds: lowercase + "s", namespaced.
RESOURCES = {
    'Namespace': ('namespaces', False),
    'ServiceAccount': ('serviceaccounts', True),
    'Secret': ('secrets', True),
    'ConfigMap': ('configmaps', True),
    'Service': ('services', True),
    'EndpointSlice': ('endpointslices', True),
    'ClusterRole': ('clusterroles', False),
    'ClusterRoleBinding': ('clusterrolebindings', False),
    'Role': ('roles', True),
    'RoleBinding': ('rolebindings', True),
    'Lease': ('leases', True),
    'Link': ('links', True),
    'CustomResourceDefinition': ('customresourcedefinitions', False),
}


def collection_path(obj, default_namespace):
    api_version, kind = obj.get('apiVersion'), obj.get('kind')
    if not api_version or not kind:
        raise ValueError('an object without apiVersion or kind')
    plural, namespaced = RESOURCES.get(kind, (kind.lower() + 's', True))
    prefix = '/api/v1' if api_version == 'v1' else f'/apis/{api_version}'
    if not namespaced:
        return f'{prefix}/{plural}'
    namespace = (obj.get('metadata') or {}).get('namespace') or default_namespace
    obj.setdefault('metadata', {})['namespace'] = namespace
    return f'{prefix}/namespaces/{namespace}/{plural}'


def request(server, token, method, path, body, content_type='application/json'):
    data = json.dumps(body).encode()
    req = urllib.request.Request(server.rstrip('/') + path, data=data, method=method,
                                 headers={'Content-Type': content_type, 'Accept': 'application/json'})
    if token:
        req.add_header('Authorization', f'Bearer {token}')
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def message_of(body):
    try:
        status = json.loads(body)
        return f"{status.get('reason', '')}: {status.get('message', '')}".strip(': ')
    except ValueError:
        return body.decode(errors='replace')[:300]


def main():
    parser = argparse.ArgumentParser(description='Create (or merge-patch) each object of the YAML on stdin.')
    parser.add_argument('--server', required=True, help='the API server, http(s)://HOST:PORT')
    parser.add_argument('--token', help='bearer token')
    parser.add_argument('--namespace', default='default', help='namespace of namespaced objects without one')
    parser.add_argument('--skip-kind', action='append', default=[], help='a kind to leave out (repeatable)')
    args = parser.parse_args()

    failed = 0
    for obj in yaml.safe_load_all(sys.stdin):
        if not obj:
            continue
        kind, name = obj.get('kind', '?'), (obj.get('metadata') or {}).get('name', '?')
        label = f'{kind.lower()}/{name}'
        if kind in args.skip_kind:
            print(f'{label} skipped (--skip-kind {kind})')
            continue
        try:
            path = collection_path(obj, args.namespace)
        except ValueError as error:
            print(f'error: {label}: {error}', file=sys.stderr)
            failed += 1
            continue
        code, body = request(args.server, args.token, 'POST', path, obj)
        if code in (200, 201, 202):
            print(f'{label} created')
            continue
        if code == 409 and 'AlreadyExists' in body.decode(errors='replace'):
            code, body = request(args.server, args.token, 'PATCH', f'{path}/{name}', obj, 'application/merge-patch+json')
            if code in (200, 201):
                print(f'{label} configured')
                continue
        print(f'error: {label}: HTTP {code} {message_of(body)}', file=sys.stderr)
        failed += 1
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
