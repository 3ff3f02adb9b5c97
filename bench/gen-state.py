#!/usr/bin/env python3
"""Generates a large mirror state (JSON) for bench/nft.sh.

N mirrored service ports: 90% gateway-mode services of cluster `paris` (one gateway address,
so one DNAT map element each) and 10% remote-discovery services, half with three ready
endpoints and half with two (a verdict-map element to the shared chain balance-3 or
balance-2, and one balance-targets element per endpoint). Both clusters are masqueraded.

  gen-state.py N            the state
  gen-state.py N --changed  the same state with one endpoint of one multi-target service not ready
  gen-state.py N --nft-change  that one change as nft commands (the `nft -f` side)
  gen-state.py N --changed --removed    also without one single-target (gateway) service
  gen-state.py N --nft-remove           that removal as an nft command
"""
import json
import sys


def vip(i):
    return "10.%d.%d.%d" % (100 + (i >> 16), (i >> 8) & 255, i & 255)


def pod(i, k):
    return "10.%d.%d.%d" % (200 + k, (i >> 8) & 255, i & 255)


def changed_index(n):
    return (n // 2) - (n // 2) % 20  # a three-endpoint service near the middle


def removed_index(n):
    return changed_index(n) + 1  # a gateway-mode service


def state(n, changed=False, removed=False):
    services = []
    for i in range(n):
        if removed and i == removed_index(n):
            continue
        if i % 10 == 0:
            endpoints = [{"ip": pod(i, k), "ready": True} for k in range(3 if i % 20 == 0 else 2)]
            if changed and i == changed_index(n):
                endpoints[2]["ready"] = False
            services.append({"name": "svc-%d" % i, "namespace": "default", "cluster": "berlin",
                             "mode": "remote-discovery", "ips": [vip(i)],
                             "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}],
                             "endpoints": endpoints})
        else:
            services.append({"name": "svc-%d" % i, "namespace": "default", "cluster": "paris",
                             "mode": "gateway", "ips": [vip(i)],
                             "ports": [{"protocol": "TCP", "port": 80}]})
    return {
        "clusterDomain": "cluster.local",
        "clusters": [
            {"name": "paris", "gateway": {"addresses": ["10.99.1.2"], "port": 4143}, "masquerade": True},
            {"name": "berlin", "gateway": {"addresses": ["10.99.2.2"], "port": 4143}, "masquerade": True},
        ],
        "services": services,
    }


def nft_change(n):
    """The agent's batch for --changed as nft commands: the service now has two targets, so its
    verdict-map element points at balance-2 instead of balance-3, its third target goes, and
    so does that target's masquerade entry."""
    i = changed_index(n)
    v = vip(i)
    return "\n".join([
        "delete element ip mirror-agent service-chains { %s . tcp . 80 }" % v,
        "add element ip mirror-agent service-chains { %s . tcp . 80 : goto balance-2 }" % v,
        "delete element ip mirror-agent balance-targets { %s . tcp . 80 . 2 }" % v,
        "delete element ip mirror-agent masquerade-targets { %s . tcp . 8080 }" % pod(i, 2),
    ]) + "\n"


def nft_remove(n):
    i = removed_index(n)
    shard = (i & 255) % 16  # the agent splits single-target services over 16 maps by the ClusterIP's last byte
    return "delete element ip mirror-agent service-dnat-%d { %s . tcp . 80 }\n" % (shard, vip(i))


if __name__ == "__main__":
    count = int(sys.argv[1])
    if "--nft-change" in sys.argv:
        sys.stdout.write(nft_change(count))
    elif "--nft-remove" in sys.argv:
        sys.stdout.write(nft_remove(count))
    else:
        json.dump(state(count, "--changed" in sys.argv, "--removed" in sys.argv), sys.stdout, separators=(",", ":"))
