#!/usr/bin/env bash
# The two-cluster story on one machine, in network namespaces:
#
#   london-pod ── london-node ──┬── paris-gw  ── paris-pod  10.20.1.5 HTTP :8080 "greetings from paris"
#   10.10.0.2     10.10.0.1     │   10.99.1.2 │             10.20.1.6 HTTP :8080 "greetings from paris echo",
#                 (agent, DNS)  │             │                       UDP  :5300 "echo from paris: …"
#                               │   intruder ─┘ 10.98.0.2 (reaches paris-gw, but is not an allowed source)
#                               └── berlin-gw ── berlin-pod 10.30.1.5 HTTP :8080 "greetings from berlin"
#                                   10.99.2.2
#
# The gateway namespaces are the remote clusters' gateway nodes: e2e/lib.sh starts
# `mirror-agent gateway` in them. london-node also routes the remote pod networks through them
# (a flat network, for remote-discovery and federated services). Every address lives only
# inside these namespaces.
#
# usage: e2e/topology.sh up|down|status     (env PREFIX, default "ma-", prefixes every name)
set -euo pipefail

PREFIX=${PREFIX:-ma-}
RUN_DIR=${RUN_DIR:-/run/mirror-agent-e2e/${PREFIX%-}}
POD=${PREFIX}london-pod NODE=${PREFIX}london-node
PGW=${PREFIX}paris-gw PPOD=${PREFIX}paris-pod BGW=${PREFIX}berlin-gw BPOD=${PREFIX}berlin-pod
INTRUDER=${PREFIX}intruder
ALL=("$POD" "$NODE" "$PGW" "$PPOD" "$BGW" "$BPOD" "$INTRUDER")
# The agent's DNS listener address, as NodeLocal DNSCache uses it.
DNS_ADDRESS=${DNS_ADDRESS:-169.254.20.11}

in_ns() { ip netns exec "$1" "${@:2}"; }

link() { # link NS_A IF_A ADDR_A NS_B IF_B ADDR_B
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
  in_ns "$1" ip addr add "$3" dev "$2"; in_ns "$1" ip link set "$2" up
  in_ns "$4" ip addr add "$6" dev "$5"; in_ns "$4" ip link set "$5" up
}

http_server() { # NS ADDRESS GREETING — HTTP/1.1 with keep-alive, so a connection can outlive a request
  mkdir -p "$RUN_DIR"
  in_ns "$1" python3 -c '
import http.server, sys
address, greeting = sys.argv[1], sys.argv[2]
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = (greeting + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((address, 8080), Handler).serve_forever()
' "$2" "$3" >"$RUN_DIR/$1-$2-http.log" 2>&1 &
  echo $! >"$RUN_DIR/$1-$2-http.pid"
}

udp_echo() { # NS ADDRESS PORT PREFIX — answers each datagram with PREFIX and the datagram
  in_ns "$1" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(sys.argv[3].encode() + b": " + data, peer)
' "$2" "$3" "$4" >"$RUN_DIR/$1-udp.log" 2>&1 &
  echo $! >"$RUN_DIR/$1-udp.pid"
}

wait_port() { # NS IP PORT — up to 30 s: python's start can take seconds on a loaded machine
  for _ in $(seq 1 300); do
    in_ns "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for $2:$3 in $1" >&2; return 1
}

up() {
  down >/dev/null 2>&1 || true
  for ns in "${ALL[@]}"; do
    ip netns add "$ns"
    in_ns "$ns" ip link set lo up
  done
  link "$POD" eth0 10.10.0.2/24  "$NODE" pod0   10.10.0.1/24
  link "$NODE" paris0 10.99.1.1/24  "$PGW" uplink 10.99.1.2/24
  link "$NODE" berlin0 10.99.2.1/24 "$BGW" uplink 10.99.2.2/24
  link "$PGW" pods 10.20.1.1/24  "$PPOD" eth0 10.20.1.5/24
  in_ns "$PPOD" ip addr add 10.20.1.6/24 dev eth0
  link "$BGW" pods 10.30.1.1/24  "$BPOD" eth0 10.30.1.5/24
  link "$PGW" intruder0 10.98.0.1/24 "$INTRUDER" eth0 10.98.0.2/24
  in_ns "$INTRUDER" ip route add default via 10.98.0.1

  in_ns "$POD"  ip route add default via 10.10.0.1
  in_ns "$PPOD" ip route add default via 10.20.1.1
  in_ns "$BPOD" ip route add default via 10.30.1.1
  in_ns "$PGW"  ip route add default via 10.99.1.1
  in_ns "$BGW"  ip route add default via 10.99.2.1
  in_ns "$NODE" ip route add 10.20.1.0/24 via 10.99.1.2
  in_ns "$NODE" ip route add 10.30.1.0/24 via 10.99.2.2
  for ns in "$NODE" "$PGW" "$BGW"; do in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1; done

  # The pod's resolver, Kubernetes style: the agent's address, the search path, ndots:5.
  mkdir -p "/etc/netns/$POD"
  cat >"/etc/netns/$POD/resolv.conf" <<RESOLV
nameserver $DNS_ADDRESS
search default.svc.cluster.local svc.cluster.local cluster.local
options ndots:5 timeout:1 attempts:2
RESOLV

  http_server "$PPOD" 10.20.1.5 "greetings from paris"
  http_server "$PPOD" 10.20.1.6 "greetings from paris echo"
  udp_echo "$PPOD" 10.20.1.6 5300 "echo from paris"
  http_server "$BPOD" 10.30.1.5 "greetings from berlin"
  wait_port "$PPOD" 10.20.1.5 8080
  wait_port "$PPOD" 10.20.1.6 8080
  wait_port "$BPOD" 10.30.1.5 8080
  echo "topology up: ${ALL[*]}"
}

down() {
  if [ -d "$RUN_DIR" ]; then
    for pidfile in "$RUN_DIR"/*.pid; do
      [ -e "$pidfile" ] || continue
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    done
  fi
  for ns in "${ALL[@]}"; do
    # Anything still running in the namespace (agents, servers) goes with it.
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] && kill $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "/etc/netns/$POD"
  echo "topology down"
}

status() {
  for ns in "${ALL[@]}"; do
    if ip netns list | grep -qw "$ns"; then echo "$ns: up"; else echo "$ns: absent"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
