#!/usr/bin/env python3
"""Tests/MirrorKubernetesTests/kmock_harness.py for bench/k8s.sh, without its O(N)-per-request costs.

The test harness (and kmock under it) does three things per request that grow with what it
holds; at 5,000 Services each makes the emulator, not the feed, the subject of the figures
(a serial create took 20-300 ms after a few thousand, against ~0.7 ms here):
- the ClusterIP allocator collects the ClusterIP of every Service to pick the next free
  address: here a set of the addresses in use (the same addresses in the same order; the
  counter only moves forward, as there);
- kmock records every request served and picks the reaction to a request by testing
  `request in view`, which filters the whole record through the view until it meets the
  request: here the request's own criteria along the view's chain (the emulator's views are
  Filter and Priority chains over the root), and the record keeps recent requests only;
- kmock answers a create, patch, delete or get by scanning every stored object for the one
  the request names: here a lookup in its store, a dict by (resource, namespace, name).
Everything else (watches, selectors, resource versions, merge patch, 409/404/410) is the test
harness itself, imported unchanged. K8S_BENCH_STOCK_EMULATOR=1 leaves it all as it is.

Same command line as kmock_harness.py (prints "LISTENING <port>").
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'Tests', 'MirrorKubernetesTests'))
import kmock_harness  # noqa: E402

Harness = kmock_harness.Harness


def allocate_cluster_ip(self, service):
    used = self.__dict__.setdefault('_bench_used_ips', set())
    spec = service.setdefault('spec', {})
    if spec.get('type') == 'ExternalName' or spec.get('clusterIP'):
        if spec.get('clusterIP') and not spec.get('clusterIPs'):
            spec['clusterIPs'] = [spec['clusterIP']]
        if spec.get('clusterIP') and spec.get('clusterIP') != 'None':
            used.add(spec['clusterIP'])
        return
    while True:
        address = str(self.service_network[self.next_service_ip])
        self.next_service_ip += 1
        if address not in used:
            break
    used.add(address)
    spec['clusterIP'], spec['clusterIPs'] = address, [address]
    spec.setdefault('ipFamilies', ['IPv6' if ':' in address else 'IPv4'])


# `request in view` for the request being served: its criteria along the chain (any other
# view or item: kmock's own walk of the record).
from kmock._internal import dsl, rendering  # noqa: E402

contains = dsl.View.__contains__


def contains_served_request(self, item):
    if isinstance(item, rendering.Request):
        view = self
        while True:
            if type(view) is dsl.Filter:
                if not view.criteria(item):
                    return False
                view = view._source
            elif type(view) is dsl.Priority:
                view = view._source
            elif isinstance(view, dsl.Root):
                return True  # every request served is recorded in the root first
            else:
                break
    return contains(self, item)


# The object a request names, from the store's dict (kmock's scan stays the fallback).
get_obj = kmock_harness.kmock.KubernetesEmulator._KubernetesEmulator__get_obj


def get_obj_by_key(self, request, strict):
    if strict and request.resource is not None and request.name is not None:
        found = self._objects._objects.get((request.resource, request.namespace, request.name))
        if found is not None:
            return found
    return get_obj(self, request, strict)


class RecentRequests(list):
    def append(self, request):
        super().append(request)
        if len(self) > 256:
            del self[:-64]


configure = Harness.configure


def configure_recent_requests(self, args):
    configure(self, args)
    object.__setattr__(self, '_requests', RecentRequests(self._requests))


if os.environ.get('K8S_BENCH_STOCK_EMULATOR') != '1':
    Harness.allocate_cluster_ip = allocate_cluster_ip
    dsl.View.__contains__ = contains_served_request
    Harness.configure = configure_recent_requests
    kmock_harness.kmock.KubernetesEmulator._KubernetesEmulator__get_obj = get_obj_by_key

if __name__ == '__main__':
    asyncio.run(kmock_harness.main())
