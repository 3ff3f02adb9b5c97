#!/usr/bin/env bash
# The main job: the whole system on one machine. Builds mirror-agent, builds the two-cluster
# topology in network namespaces (e2e/topology.sh), runs the mirror feed (mutual TLS) and the
# node agent, and shows DNS, traffic and `mirror-agent dump` as the mirror state changes.
# Everything is removed at the end, also when interrupted. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

if [ "$(id -u)" -ne 0 ]; then echo "the demo needs root (network namespaces, nftables)" >&2; exit 1; fi
scripts/install-deps.sh
CONFIG=${CONFIG:-release}
echo "== building mirror-agent ($CONFIG)"
swift build -c "$CONFIG" --product mirror-agent 2>&1 | tail -n 2
BIN=$(realpath ".build/$CONFIG/mirror-agent")
export PREFIX=demo-
WORK=$(mktemp -d /tmp/mirror-demo.XXXXXX)
source e2e/lib.sh

cleanup() {
  for pidfile in "$WORK"/*.pid; do [ -e "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true; done
  e2e/topology.sh down >/dev/null 2>&1 || true
  rm -rf "$WORK"
  echo "== cleaned up (namespaces, processes, files)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@" 2>&1 || true; }
from_pod() { printf '\033[2mlondon-pod$ %s\033[0m\n' "$*"; ip netns exec "$POD" "$@" 2>&1 || true; }

step "the topology: london-pod -> london-node (agent) -> paris-gw / berlin-gw (mirror-agent gateway) -> pods"
e2e/topology.sh up
cp examples/two-clusters.yaml "$WORK/state.yaml"
cp examples/paris-exports.yaml examples/berlin-exports.yaml "$WORK/"
make_certs
step "paris exports two services through one gateway address, one gateway port per service port"
show cat "$WORK/paris-exports.yaml"
start_paris_feed
start_gateway paris
start_gateway berlin
echo "paris's gateway follows paris's feed (https://127.0.0.1:$PARIS_FEED_PORT/v1/exports, client certificate); berlin's reads its file"
start_upstream
step "the mirror state the feed serves (London's view of paris and berlin)"
show "$BIN" check --state "$WORK/state.yaml"
start_feed
start_agent main
wait_for "the first state" bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock -o json | grep -q '\"ready\":true'"
echo "feed on https://127.0.0.1:$FEED_PORT (client certificates), agent DNS on $DNS_ADDRESS:53, upstream unbound on $UPSTREAM"
echo "pod resolv.conf:"; sed 's/^/  /' "/etc/netns/$POD/resolv.conf"

step "DNS: mirrored names answered by the agent, the rest by the cluster DNS"
from_pod dig +noall +answer bar-paris.default.svc.cluster.local
from_pod dig +noall +answer _http._tcp.bar-paris.default.svc.cluster.local SRV
from_pod getent hosts web-federated
from_pod dig +noall +answer www.example.org

step "traffic: gateway mode, remote-discovery (flat), federated"
echo "bar-paris and echo-paris go to the same gateway address, at their own gateway ports:"
from_pod curl -sS --max-time 3 http://bar-paris/
from_pod curl -sS --max-time 3 http://echo-paris/
from_pod bash -c 'echo hello | socat -t 2 - UDP:echo-paris:5300'
echo "an address outside paris's --allow-source gets nothing (dropped and counted):"
show ip netns exec "$INTRUDER" curl -sS --max-time 1 http://10.99.1.2:20001/
from_pod curl -sS --max-time 3 http://baz-paris/
for _ in 1 2 3 4 5 6; do from_pod curl -sS --max-time 3 http://web-federated/; done

step "mirror-agent dump"
show ip netns exec "$NODE" "$BIN" dump --admin-socket "$WORK/admin.sock"

step "mirror-agent dump --gateway (on paris's gateway node)"
show ip netns exec "$PGW" "$BIN" dump --admin-socket "$WORK/paris-gw.sock"

step "paris scales bar to zero ready pods: London is refused at once by paris's gateway"
set_exports paris 's/{ip: 10.20.1.5, ready: true}/{ip: 10.20.1.5, ready: false}/'
wait_for "the change" bash -c "ip netns exec $PGW $BIN dump --admin-socket $WORK/paris-gw.sock | grep -q REJECT"
from_pod bash -c 'time curl -sS --max-time 5 http://bar-paris/'
set_exports paris 's/{ip: 10.20.1.5, ready: false}/{ip: 10.20.1.5, ready: true}/'
wait_for "bar back" ip netns exec "$POD" curl -sS --max-time 1 http://bar-paris/

step "paris's gateway dies: the feed says so, bar-paris is refused at once"
set_state '/name: paris/,/masquerade/ s/alive: true/alive: false/'
wait_for "the change" bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock | grep -q 'paris.*NO'"
from_pod bash -c 'time curl -sS --max-time 5 http://bar-paris/'
from_pod curl -sS --max-time 3 http://baz-paris/
set_state '/name: paris/,/masquerade/ s/alive: false/alive: true/'
wait_for "paris back" ip netns exec "$POD" curl -sS --max-time 1 http://bar-paris/
echo "paris's gateway is back:"; from_pod curl -sS --max-time 3 http://bar-paris/

step "a traffic policy: London's own bar (10.96.5.5, kube-proxy) sends 10% of new connections to bar-paris"
# London's bar: a pod on london-node itself (10.10.1.5:8080) behind kube-proxy's DNAT (its
# nftables mode, at dstnat); the agent's policy runs just before it (dstnat - 1).
ip netns exec "$NODE" ip addr add 10.10.1.5/32 dev lo
ip netns exec "$NODE" python3 -c '
import http.server
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "22"); self.end_headers()
        self.wfile.write(b"greetings from london\n")
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("10.10.1.5", 8080), Handler).serve_forever()
' >"$WORK/london-bar.log" 2>&1 &
echo $! >"$WORK/london-bar.pid"
wait_for "London's bar pod" ip netns exec "$NODE" bash -c "exec 3<>/dev/tcp/10.10.1.5/8080"
ip netns exec "$NODE" nft -f - <<'NFT'
table ip kube-proxy {
  chain nat-prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 10.96.5.5 tcp dport 80 dnat to 10.10.1.5:8080
  }
}
NFT
# berlin exports bar as well (bar-berlin, the second failover choice), and the state gains the
# policy of examples/policies.yaml.
cat >>"$WORK/berlin-exports.yaml" <<'YAML'
  - name: bar
    namespace: default
    ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, gatewayPort: 20002}]
    endpoints: [{ip: 10.30.1.5, ready: true}]
YAML
cp examples/policies.yaml "$WORK/state.yaml.new" && mv "$WORK/state.yaml.new" "$WORK/state.yaml"
show sed -n '/^policies:/,$p' "$WORK/state.yaml"
wait_for "the policy" bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock | grep -q 'default/bar'"
tally() { for _ in $(seq 1 "$1"); do ip netns exec "$POD" curl -sS --max-time 3 http://10.96.5.5/ 2>&1 || true; done | sort | uniq -c; }
echo "100 new connections from london-pod to bar's ClusterIP:"; tally 100
show bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock | sed -n '/^POLICY/,/^\$/p'"

step "failover: bar has no ready pod in London (localReady: false) -> bar-paris; paris dies -> bar-berlin"
set_state 's/localReady: true /localReady: false/'
wait_for "the failover" bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock | grep -q 'failover'"
echo "20 new connections:"; tally 20
set_state '/name: paris/,/masquerade/ s/alive: true/alive: false/'
wait_for "berlin" bash -c "ip netns exec $POD curl -sS --max-time 1 http://10.96.5.5/ | grep -q berlin"
echo "paris marked dead, 20 new connections:"; tally 20
show bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock | sed -n '/^POLICY/,/^\$/p'"
set_state '/name: paris/,/masquerade/ s/alive: false/alive: true/; s/localReady: false/localReady: true /'
wait_for "the split" bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock | grep -q 'local *90.0%'"
echo "paris alive and a local pod ready again: the split is back; 20 new connections:"; tally 20

step "the feed stops: DNS and traffic carry on from the agent's last state"
stop_feed
from_pod dig +short bar-paris.default.svc.cluster.local
from_pod curl -sS --max-time 3 http://bar-paris/
echo "the agent says so:"
show bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock | head -n 2"

step "the agent's tables, read back from the kernel"
show ip netns exec "$NODE" "$BIN" dump --nft
echo
echo "agent log (last lines):"; tail -n 5 "$WORK/agent-main.log" | sed 's/^/  /'
