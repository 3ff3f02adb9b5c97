#!/usr/bin/env python3
"""Generates what bench/policy.sh programs: a mirror state with N traffic policies, and the
emulated kube-proxy's ruleset.

  policy-gen.py state N         N local services svc-<i> (ClusterIP local_ip(i), port 80),
                                each with a policy: local 900, mirror svc-<i>-paris 100,
                                failover [svc-<i>-paris]; and the N mirrors it names
                                (remote-discovery services of cluster paris, one ready pod
                                REMOTE_POD:8080, ClusterIP mirror_ip(i)). JSON.
  policy-gen.py kube-proxy N    kube-proxy (nftables mode) for those N local services and the
                                reference Service (REFERENCE_IP, no policy), every one sent to
                                the local pod LOCAL_POD:8080.
  policy-gen.py ips N           the N policy'd ClusterIPs, one per line.
"""
import json
import sys

LOCAL_POD = "10.20.0.2"
REMOTE_POD = "10.30.0.2"
REFERENCE_IP = "10.95.0.1"


def local_ip(i):
    i += 256  # 10.96.1.0 and up
    return "10.96.%d.%d" % (i >> 8, i & 255)


def mirror_ip(i):
    i += 256
    return "10.112.%d.%d" % (i >> 8, i & 255)


def state(n):
    services, policies = [], []
    for i in range(n):
        services.append({"name": "svc-%d" % i, "namespace": "default", "cluster": "paris",
                         "mode": "remote-discovery", "ips": [mirror_ip(i)],
                         "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                         "endpoints": [{"ip": REMOTE_POD, "ready": True}]})
        policies.append({"name": "svc-%d" % i, "namespace": "default", "ips": [local_ip(i)],
                         "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
                         "backends": [{"local": True, "weight": 900}, {"mirror": "svc-%d-paris" % i, "weight": 100}],
                         "failover": ["svc-%d-paris" % i], "localReady": True})
    return {
        "clusterDomain": "cluster.local",
        "clusters": [{"name": "paris", "gateway": {"addresses": ["10.99.1.2"], "port": 4143}, "masquerade": True}],
        "services": services,
        "policies": policies,
    }


def kube_proxy(n):
    elements = ",\n      ".join("%s . tcp . 80 : goto service-local" % ip
                               for ip in [REFERENCE_IP] + [local_ip(i) for i in range(n)])
    return """table ip kube-proxy {
  map service-ips {
    type ipv4_addr . inet_proto . inet_service : verdict
    elements = {
      %s
    }
  }
  chain services {
    ip daddr . meta l4proto . th dport vmap @service-ips
  }
  chain nat-prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump services
  }
  chain nat-output {
    type nat hook output priority -100; policy accept;
    jump services
  }
  chain service-local {
    numgen random mod 1 vmap { 0 : goto endpoint-local }
  }
  chain endpoint-local {
    meta l4proto tcp dnat to %s:8080
  }
}
""" % (elements, LOCAL_POD)


if __name__ == "__main__":
    what, n = sys.argv[1], int(sys.argv[2])
    if what == "state":
        json.dump(state(n), sys.stdout)
    elif what == "kube-proxy":
        sys.stdout.write(kube_proxy(n))
    elif what == "ips":
        sys.stdout.write("".join(local_ip(i) + "\n" for i in range(n)))
    else:
        sys.exit("usage: policy-gen.py state|kube-proxy|ips N")
