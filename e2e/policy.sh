#!/usr/bin/env bash
# Traffic policies end to end (issue 17): London's own service bar (ClusterIP 10.96.5.5:80, a
# local pod behind an emulated kube-proxy) split 90/10 with its mirror bar-paris, failing over
# to bar-paris then bar-berlin when it has no ready local endpoint (examples/policies.yaml).
#
#   london-pod ── london-node ── london-bar 10.10.1.5:8080 "greetings from london" (the local pod)
#   10.10.0.2     agent at dstnat - 1, kube-proxy (nftables mode) at dstnat: 10.96.5.5:80 -> 10.10.1.5:8080
#                 ├── paris-gw  :20001 -> 10.20.1.5:8080 "greetings from paris"   (bar-paris)
#                 └── berlin-gw :20002 -> 10.30.1.5:8080 "greetings from berlin"  (bar-berlin)
#
# Every connection is a new TCP connection from the pod (a small python client, one HTTP
# request each, Connection: close); the answer says which backend took it. Checked:
#  1. 1,000 connections land 90/10 within 4 sigma of the binomial mean (counts printed);
#     dump's POLICY table and /metrics' per-backend counters agree with them exactly;
#  2. localReady -> false in the state file: new connections all go to paris, the gap from
#     the edit to the first connection of the all-paris run is measured (bounded by 1 s);
#  3. paris marked dead -> berlin takes over (gap measured), also with paris cut off the
#     network; paris back -> paris again (the first failover mirror alive);
#  4. localReady back -> the split is restored (200 connections, mostly local);
#  5. a bad policy (weight 5000; a mirror that does not exist) is refused with the policy and
#     field named, the split in force is kept, and a valid edit afterwards applies (50/50).
# Bounded (every wait 10 s at most, every client run 60 s at most); logs shown on failure.
# Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then echo "e2e policy: skipped (needs root for network namespaces and nftables)"; exit 0; fi
BIN=$(realpath "${BIN:-.build/debug/mirror-agent}")
export PREFIX=${PREFIX:-pol-}
WORK=$(mktemp -d /tmp/mirror-e2e-policy.XXXXXX)
source e2e/lib.sh
LBAR=${PREFIX}london-bar
LOCAL_POD=10.10.1.5
VIP=10.96.5.5

cleanup() {
  local pids=()
  for pidfile in "$WORK"/*.pid; do [ -e "$pidfile" ] && pids+=("$(cat "$pidfile")"); done
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
  # Gone before $WORK is removed (an agent saves its state on exit), at most 5 s.
  for _ in $(seq 1 50); do
    alive=0; for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break; sleep 0.1
  done
  [ ${#pids[@]} -gt 0 ] && kill -KILL "${pids[@]}" 2>/dev/null || true
  ip netns pids "$LBAR" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$LBAR" 2>/dev/null || true
  e2e/topology.sh down >/dev/null 2>&1 || true
  if [ "${failures:-1}" -ne 0 ]; then
    echo "--- logs (kept in $WORK)"; tail -n 30 "$WORK"/*.log || true
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0 passed=0
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
dump() { node "$BIN" dump --admin-socket "$WORK/admin.sock" "$@"; }
metrics() { node curl -sS --max-time 2 http://127.0.0.1:9153/metrics; }
# metric_value SERIES: the value of one exact series of /metrics (0 when absent).
metric_value() { metrics | awk -v s="$1" '$1 == s {v = $2} END {print v + 0}'; }

# --- the local service: a pod of its own and kube-proxy's DNAT ---------------------------------

start_local_pod() {
  ip netns add "$LBAR"
  ip link add bar0 netns "$NODE" type veth peer name eth0 netns "$LBAR"
  node ip addr add 10.10.1.1/24 dev bar0; node ip link set bar0 up
  ip netns exec "$LBAR" ip addr add "$LOCAL_POD/24" dev eth0
  ip netns exec "$LBAR" ip link set eth0 up; ip netns exec "$LBAR" ip link set lo up
  ip netns exec "$LBAR" ip route add default via 10.10.1.1
  ip netns exec "$LBAR" python3 -c '
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"greetings from london\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((sys.argv[1], 8080), Handler).serve_forever()
' "$LOCAL_POD" >"$WORK/london-bar.log" 2>&1 &
  echo $! >"$WORK/london-bar.pid"
  for _ in $(seq 1 300); do
    ip netns exec "$LBAR" bash -c "exec 3<>/dev/tcp/$LOCAL_POD/8080" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the local pod did not start" >&2; return 1
}

# kube-proxy, nftables mode, as it writes Service default/bar (one endpoint).
kube_proxy() {
  node nft -f - <<NFT
table ip kube-proxy {
  map service-ips {
    type ipv4_addr . inet_proto . inet_service : verdict
    elements = { $VIP . tcp . 80 : goto service-ULMVA6XW-default/bar/tcp/http }
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
  chain service-ULMVA6XW-default/bar/tcp/http {
    numgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-default/bar/tcp/http__10.10.1.5/8080 }
  }
  chain endpoint-5OJB2KTY-default/bar/tcp/http__10.10.1.5/8080 {
    meta l4proto tcp dnat to $LOCAL_POD:8080
  }
}
NFT
}

# --- the client -------------------------------------------------------------------------------

# One line per connection: "sent-ms answered-ms backend", backend = london | paris | berlin |
# error:<what>. `count N`: N connections one after the other; `stream SECONDS`: as many as fit.
cat >"$WORK/client.py" <<'PY'
import socket, sys, time
mode, amount = sys.argv[1], float(sys.argv[2])
host, port = sys.argv[3], int(sys.argv[4])
request = b"GET / HTTP/1.1\r\nHost: bar\r\nConnection: close\r\n\r\n"

def one():
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(request)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        body = data.partition(b"\r\n\r\n")[2].decode(errors="replace").strip()
        return body.rsplit(" ", 1)[-1] if body.startswith("greetings from ") else "error:" + (body or "empty")[:20].replace(" ", "_")
    except OSError as e:
        return "error:" + type(e).__name__

out = sys.stdout
deadline = time.time() + amount
done = 0
while (done < amount) if mode == "count" else (time.time() < deadline):
    sent = time.time()
    backend = one()
    out.write("%d %d %s\n" % (sent * 1000, time.time() * 1000, backend))
    out.flush()
    done += 1
PY
# connections N OUT: N connections from the pod to bar's ClusterIP, one line each in OUT.
connections() { timeout 60 ip netns exec "$POD" python3 "$WORK/client.py" count "$1" "$VIP" 80 >"$2" || true; }
# tally OUT: "london=L paris=P berlin=B errors=E total=T"
tally() {
  awk '{n[$3 ~ /^error/ ? "errors" : $3]++; t++}
       END {printf "london=%d paris=%d berlin=%d errors=%d total=%d\n", n["london"], n["paris"], n["berlin"], n["errors"], t}' "$1"
}
count_of() { tally "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
# within_binomial OBSERVED N P: OBSERVED within 4 sigma of the binomial mean N*P.
within_binomial() {
  awk -v o="$1" -v n="$2" -v p="$3" 'BEGIN {m = n * p; s = sqrt(n * p * (1 - p)); d = o - m; if (d < 0) d = -d; exit !(d <= 4 * s)}'
}
bounds() { awk -v n="$1" -v p="$2" 'BEGIN {m = n * p; s = 4 * sqrt(n * p * (1 - p)); printf "%d..%d", m - s + 0.999, m + s}'; }

# switch_gap WHAT WANT SED_EXPRESSION: a stream of connections runs while the state file is
# edited; WANT (a backend) must take every connection from some point on. Prints the gap from
# the edit to the first connection of that all-WANT run (sent after the edit), and checks it
# is at most 1 s with at least 100 connections after it and no error.
switch_gap() {
  local what=$1 want=$2 expression=$3 out=$WORK/stream-$2.txt edited result
  timeout 60 ip netns exec "$POD" python3 "$WORK/client.py" stream 3.5 "$VIP" 80 >"$out" &
  local client=$!
  sleep 1
  edited=$(now_ms)
  set_state "$expression"
  wait "$client" || true
  result=$(awk -v e="$edited" -v w="$want" '
    { sent[NR] = $1; who[NR] = $3 }
    END {
      # The last run of WANT, from its first connection sent after the edit (with a 10%
      # share, the connections just before the edit may have gone there too).
      first = 0
      for (i = NR; i >= 1 && who[i] == w && sent[i] >= e; i--) first = i
      after = first ? NR - first + 1 : 0
      errors = 0; before = 0
      for (i = 1; i <= NR; i++) { if (who[i] ~ /^error/) errors++; if (sent[i] < e) before++ }
      if (!first) { printf "none %d %d %d", after, errors, before; exit }
      printf "%d %d %d %d", sent[first] - e, after, errors, before
    }' "$out")
  read -r gap after errors before <<<"$result"
  figures+=("$what: first all-$want connection $gap ms after the edit ($before connections before the edit, $after after, $errors errors)")
  if [ "$gap" != none ] && [ "$gap" -le 1000 ] && [ "$after" -ge 100 ] && [ "$errors" -eq 0 ]; then
    pass "$what: every new connection goes to $want from $gap ms after the edit on ($after connections)"
  else
    fail "$what" "gap=$gap ms, $after connections to $want at the end, $errors errors: $(tail -n 5 "$out" | tr '\n' ' ')"
  fi
}

# --- the run ------------------------------------------------------------------------------------

figures=()
e2e/topology.sh up >/dev/null
start_local_pod
kube_proxy
cp examples/policies.yaml "$WORK/state.yaml"
cp examples/paris-exports.yaml examples/berlin-exports.yaml "$WORK/"
# berlin exports bar too, at the gateway port examples/policies.yaml gives bar-berlin.
cat >>"$WORK/berlin-exports.yaml" <<'YAML'
  - name: bar
    namespace: default
    ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, gatewayPort: 20002}]
    endpoints: [{ip: 10.30.1.5, ready: true}]
YAML
make_certs
start_paris_feed
start_gateway paris
start_gateway berlin
start_upstream

echo "== before the agent: kube-proxy alone"
connections 20 "$WORK/before.txt"
expect "without the agent, bar's ClusterIP reaches the local pod through kube-proxy (20 connections)" \
  "london=20 paris=0 berlin=0 errors=0" tally "$WORK/before.txt"

start_feed
start_agent a
wait_for "the first state" bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock -o json | grep -q '\"ready\":true'"
expect "the agent programs the policy (dump --nft: bar's ClusterIP, local share)" "local 9/10" node "$BIN" dump --nft

echo "== 1. the split: 1000 new connections at 900/100"
connections 1000 "$WORK/split.txt"
split=$(tally "$WORK/split.txt")
echo "      $split (paris wanted in $(bounds 1000 0.1))"
figures+=("split 900/100, 1000 connections: $split")
local_n=$(count_of london "$WORK/split.txt") paris_n=$(count_of paris "$WORK/split.txt")
if [ "$(count_of total "$WORK/split.txt")" -eq 1000 ] && [ "$(count_of errors "$WORK/split.txt")" -eq 0 ] \
  && [ "$((local_n + paris_n))" -eq 1000 ] && within_binomial "$paris_n" 1000 0.1; then
  pass "1000 connections: $paris_n to paris, $local_n local, within_binomial 4 sigma of 100"
else
  fail "the 90/10 split" "$split"
fi

echo "== 6. counters: dump and /metrics"
report=$(dump || true)
policy_rows=$(awk '/^POLICY/ {on = 1} on && NF == 0 {on = 0} on' <<<"$report")
echo "$policy_rows" | sed 's/^/      /'
if grep -q "default/bar *tcp/80 *local *90.0% *$local_n\$" <<<"$policy_rows" && grep -q "bar-paris *10.0% *$paris_n\$" <<<"$policy_rows"; then
  pass "dump's POLICY table: local 90.0% $local_n packets, bar-paris 10.0% $paris_n packets (the client's counts)"
else
  fail "dump's POLICY table" "wanted local $local_n and bar-paris $paris_n packets, got: $policy_rows"
fi
expect "dump --nft counts per backend" "bar-paris 1/10 -> 10.99.1.2:20001" node "$BIN" dump --nft
m_local=$(metric_value 'mirror_agent_policy_packets_total{policy="default/bar",backend="local"}')
m_paris=$(metric_value 'mirror_agent_policy_packets_total{policy="default/bar",backend="bar-paris"}')
if [ "$m_local" -eq "$local_n" ] && [ "$m_paris" -eq "$paris_n" ]; then
  pass "/metrics: mirror_agent_policy_packets_total local=$m_local bar-paris=$m_paris (the client's counts)"
else
  fail "/metrics policy counters" "local=$m_local bar-paris=$m_paris, wanted $local_n and $paris_n: $(metrics | grep policy_packets)"
fi

echo "== 2. no ready local endpoint: everything to the first failover mirror"
switch_gap "localReady false" paris 's/localReady: true /localReady: false/'
expect "dump says why: failover" "failover: no ready local endpoint" dump
{ dump || true; } | sed -n '/^POLICY/,/^$/{/^$/!p}' | sed 's/^/      /'
connections 100 "$WORK/failover-paris.txt"
expect "100 more connections, all to paris" "london=0 paris=100 berlin=0 errors=0" tally "$WORK/failover-paris.txt"

echo "== 3. paris dies: the next failover mirror"
switch_gap "paris marked dead" berlin '/name: paris/,/masquerade/ s/alive: true/alive: false/'
# Paris cut off the network as well: a connection still sent there would time out.
ip netns exec "$PGW" nft -f - <<'NFT'
table inet pol-cut {
  chain in { type filter hook prerouting priority -300; policy accept; iifname "uplink" drop; }
}
NFT
if node curl -sS --max-time 1 http://10.99.1.2:4191/ready >/dev/null 2>&1; then fail "paris cut off" "its probe still answers"; else pass "paris cut off the network (its probe no longer answers)"; fi
connections 100 "$WORK/failover-berlin.txt"
expect "with paris dead and cut off, 100 connections all to berlin" "london=0 paris=0 berlin=100 errors=0" tally "$WORK/failover-berlin.txt"
{ dump || true; } | sed -n '/^POLICY/,/^$/{/^$/!p}' | sed 's/^/      /'
ip netns exec "$PGW" nft delete table inet pol-cut
switch_gap "paris alive again" paris '/name: paris/,/masquerade/ s/alive: false/alive: true/'

echo "== 4. a ready local endpoint again: the split is back"
set_state 's/localReady: false/localReady: true /'
wait_for "the split in dump" bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock | grep -q 'local *90.0%'"
connections 200 "$WORK/restored.txt"
restored=$(tally "$WORK/restored.txt")
echo "      $restored (paris wanted in $(bounds 200 0.1))"
figures+=("split restored, 200 connections: $restored")
if [ "$(count_of errors "$WORK/restored.txt")" -eq 0 ] && [ "$(count_of berlin "$WORK/restored.txt")" -eq 0 ] \
  && within_binomial "$(count_of paris "$WORK/restored.txt")" 200 0.1; then
  pass "200 connections after localReady is back: $restored"
else
  fail "split restored" "$restored"
fi

echo "== 5. bad policies are refused, the last good state kept"
cp "$WORK/state.yaml" "$WORK/state.good"
bad_policy() { # NAME SED_EXPRESSION WANTED_LOG_TEXT
  local lines revision
  lines=$(wc -l <"$WORK/feed.log")
  revision=$(metric_value mirror_agent_revision)
  set_state "$2"
  if wait_for "the feed's refusal" bash -c "tail -n +$((lines + 1)) $WORK/feed.log | grep -qF '$3'"; then
    pass "$1: refused, the policy and field named: $(tail -n +$((lines + 1)) "$WORK/feed.log" | grep -F "$3" | head -n 1 | grep -o 'policies\[.*' | sed 's/ source=.*//')"
  else
    fail "$1" "no '$3' in the feed's log: $(tail -n +$((lines + 1)) "$WORK/feed.log" | head -c 600)"
  fi
  connections 200 "$WORK/bad.txt"
  local seen
  seen=$(tally "$WORK/bad.txt")
  if [ "$(count_of errors "$WORK/bad.txt")" -eq 0 ] && [ "$(count_of berlin "$WORK/bad.txt")" -eq 0 ] \
    && within_binomial "$(count_of paris "$WORK/bad.txt")" 200 0.1; then
    pass "$1: the split in force is kept (200 connections: $seen)"
  else
    fail "$1: split kept" "$seen"
  fi
  local now
  now=$(metric_value mirror_agent_revision)
  if [ "$now" = "$revision" ]; then pass "$1: the agent got no new revision (still $now)"; else fail "$1: revision" "$revision -> $now"; fi
  cp "$WORK/state.good" "$WORK/state.yaml.new" && mv "$WORK/state.yaml.new" "$WORK/state.yaml"
}
bad_policy "weight 5000" 's/{local: true, weight: 900}/{local: true, weight: 5000}/' "policies[0] default/bar: backends[0].weight"
bad_policy "a mirror that does not exist" 's/{mirror: bar-paris, weight: 100}/{mirror: bar-tokyo, weight: 100}/' \
  "policies[0] default/bar: backends[1].mirror: bar-tokyo is not a mirrored service in default"
set_state 's/{local: true, weight: 900}/{local: true, weight: 500}/; s/{mirror: bar-paris, weight: 100}/{mirror: bar-paris, weight: 500}/'
wait_for "the 50/50 split in dump" bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock | grep -q 'local *50.0%'"
connections 400 "$WORK/half.txt"
half=$(tally "$WORK/half.txt")
figures+=("500/500 after the bad edits, 400 connections: $half")
if [ "$(count_of errors "$WORK/half.txt")" -eq 0 ] && within_binomial "$(count_of paris "$WORK/half.txt")" 400 0.5; then
  pass "a valid edit after the refused ones applies: 500/500 gives $half"
else
  fail "the valid edit after the bad ones" "$half"
fi
agent_errors=$(grep -E ' (error|critical) ' "$WORK/agent-a.log" || true)
if [ -z "$agent_errors" ]; then pass "the agent logged no error (the feed refused the bad states; the agent never saw them)"; else fail "agent errors" "$agent_errors"; fi

echo
echo "figures:"
for f in "${figures[@]}"; do echo "  $f"; done
echo "e2e policy: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
