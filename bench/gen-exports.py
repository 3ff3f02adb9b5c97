#!/usr/bin/env python3
"""Generates a large exports document (JSON, or YAML with --yaml) for bench/gateway.sh.

N exported service ports (N a multiple of 20; default 10000) over 3N/4 services, in a
deterministic mix:

  - N/2 services with one TCP port (an HTTP service),
  - N/10 services with two TCP ports (e.g. grpc + metrics),
  - 3N/20 services with a TCP and a UDP port (DNS-like; the UDP port reuses the TCP port's
    gateway number, which is allowed since gateway ports are unique per protocol),

so 85% TCP and 15% UDP ports. TCP gateway ports run from 20000 up in order (20000-28499 at
N=10000): up to N=11760 they fit the default --gateway-port-range 20000-29999. Ready endpoints per
service: 1 (45%), 2 (30%), 3 (15%), 4-6 (8%), none (2%: a service scaled to zero, rejected by
the gateway); every tenth service also has one endpoint that is not ready. Pod IPs are unique,
counted up from 10.20.0.1.

  gen-exports.py [N] [--yaml]                      the document
  gen-exports.py [N] --changed                     the same with one endpoint of one
                                                   two-endpoint service replaced by a new pod
                                                   (a pod rescheduled: same count, new IP)
  gen-exports.py [N] --nft-change                  that change as nft commands (the `nft -f`
                                                   side): the gateway's batch for it replaces
                                                   one balance-targets element (index 1 of the
                                                   port's two) and one masquerade-targets element
  gen-exports.py [N] --nft-revert                  the change back, as nft commands
  --gateway-address IP        the gateway address (default 10.99.1.2)
  --latency-export GWPORT:IP:PORT
                              adds one more export, bench/latency-probe, TCP GWPORT -> IP:PORT
                              (gateway.sh's hop latency test; GWPORT must be above the mix's)
"""
import json
import sys


def pod_ip(k):
    k += 1
    return "10.%d.%d.%d" % (20 + (k >> 16), (k >> 8) & 255, k & 255)


def ready_count(i):
    r = (i * 37) % 100  # spread the buckets over the index range
    if r < 45:
        return 1
    if r < 75:
        return 2
    if r < 90:
        return 3
    if r < 98:
        return 4 + (i % 3)
    return 0


def layout(n):
    """(kind, ...) per service: kind 1 = one TCP port, 2 = two TCP ports, 3 = TCP + UDP."""
    if n % 20:
        sys.exit("gen-exports.py: N must be a multiple of 20")
    kinds = []
    # In blocks of 15 services (20 ports): 10 x one TCP, 2 x two TCP, 3 x TCP+UDP.
    block = [1, 1, 3, 1, 1, 2, 1, 3, 1, 1, 2, 1, 3, 1, 1]
    for _ in range(n // 20):
        kinds.extend(block)
    return kinds


def changed_index(n):
    """A two-ready-endpoint, one-TCP-port service near the middle."""
    kinds = layout(n)
    for step in range(len(kinds)):
        i = (len(kinds) // 2 + step) % len(kinds)
        if kinds[i] == 1 and ready_count(i) == 2:
            return i
    sys.exit("gen-exports.py: no two-endpoint service to change")


def document(n, gateway_address, changed=False, latency=None):
    kinds = layout(n)
    exports = []
    next_port = 20000
    next_pod = 0
    change_at = changed_index(n)
    description = None
    for i, kind in enumerate(kinds):
        if kind == 1:
            ports = [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "gatewayPort": next_port}]
            next_port += 1
        elif kind == 2:
            ports = [{"name": "grpc", "protocol": "TCP", "port": 9090, "targetPort": 9090, "gatewayPort": next_port},
                     {"name": "metrics", "protocol": "TCP", "port": 9100, "targetPort": 9100, "gatewayPort": next_port + 1}]
            next_port += 2
        else:
            ports = [{"name": "dns-tcp", "protocol": "TCP", "port": 53, "targetPort": 5353, "gatewayPort": next_port},
                     {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 5353, "gatewayPort": next_port}]
            next_port += 1
        endpoints = []
        for _ in range(ready_count(i)):
            endpoints.append({"ip": pod_ip(next_pod), "ready": True})
            next_pod += 1
        if i % 10 == 0:
            endpoints.append({"ip": pod_ip(next_pod), "ready": False})
            next_pod += 1
        if i == change_at:
            # The replacement pod's IP is drawn from far above the mix's own pods (10.52.x.x).
            new_ip = pod_ip((1 << 21) + i)
            description = (ports[0]["gatewayPort"], endpoints[1]["ip"], new_ip, ports[0]["targetPort"])
            if changed:
                endpoints[1] = {"ip": new_ip, "ready": True}
        exports.append({"name": "svc-%05d" % i, "namespace": "team-%02d" % (i % 40), "ports": ports, "endpoints": endpoints})
    if next_port - 1 > 65535:
        sys.exit("gen-exports.py: %d ports need TCP gateway ports up to %d, beyond 65535" % (n, next_port - 1))
    if next_port - 1 > 29999:
        sys.stderr.write("gen-exports.py: TCP gateway ports reach %d, beyond the default --gateway-port-range 20000-29999\n" % (next_port - 1))
    if latency:
        gw_port, ip, port = latency.split(":")
        if int(gw_port) < next_port:
            sys.exit("gen-exports.py: --latency-export gateway port must be >= %d" % next_port)
        exports.append({"name": "latency-probe", "namespace": "bench",
                        "ports": [{"name": "echo", "protocol": "TCP", "port": int(port), "targetPort": int(port), "gatewayPort": int(gw_port)}],
                        "endpoints": [{"ip": ip, "ready": True}]})
    return {"cluster": "paris", "gatewayAddresses": [gateway_address], "exports": exports}, description


def nft_change(description, gateway_address, revert=False):
    gw_port, old, new, target_port = description
    if revert:
        old, new = new, old
    return "\n".join([
        "delete element ip mirror-gateway balance-targets { %s . tcp . %d . 1 }" % (gateway_address, gw_port),
        "add element ip mirror-gateway balance-targets { %s . tcp . %d . 1 : %s . %d }" % (gateway_address, gw_port, new, target_port),
        "delete element ip mirror-gateway masquerade-targets { %s . tcp . %d }" % (old, target_port),
        "add element ip mirror-gateway masquerade-targets { %s . tcp . %d }" % (new, target_port),
    ]) + "\n"


def to_yaml(doc):
    out = ["cluster: %s" % doc["cluster"], "gatewayAddresses: %s" % json.dumps(doc["gatewayAddresses"]), "exports:"]
    for e in doc["exports"]:
        out.append("  - name: %s" % e["name"])
        out.append("    namespace: %s" % e["namespace"])
        out.append("    ports:")
        for p in e["ports"]:
            out.append("      - {name: %s, protocol: %s, port: %d, targetPort: %d, gatewayPort: %d}"
                       % (p["name"], p["protocol"], p["port"], p["targetPort"], p["gatewayPort"]))
        if e["endpoints"]:
            out.append("    endpoints:")
            for ep in e["endpoints"]:
                out.append("      - {ip: %s, ready: %s}" % (ep["ip"], "true" if ep["ready"] else "false"))
        else:
            out.append("    endpoints: []")
    return "\n".join(out) + "\n"


def main(argv):
    n = 10000
    gateway_address = "10.99.1.2"
    latency = None
    flags = set()
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--gateway-address":
            gateway_address = args.pop(0)
        elif a == "--latency-export":
            latency = args.pop(0)
        elif a.startswith("--"):
            flags.add(a)
        else:
            n = int(a)
    doc, description = document(n, gateway_address, "--changed" in flags, latency)
    if "--nft-change" in flags or "--nft-revert" in flags:
        sys.stdout.write(nft_change(description, gateway_address, "--nft-revert" in flags))
    elif "--yaml" in flags:
        sys.stdout.write(to_yaml(doc))
    else:
        json.dump(doc, sys.stdout, separators=(",", ":"))


if __name__ == "__main__":
    main(sys.argv[1:])
