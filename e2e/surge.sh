#!/usr/bin/env bash
# A rolling update of the agent's DaemonSet as deploy/base/agent-daemonset.yaml makes it
# (maxSurge: 1, maxUnavailable: 0), on one node: the new agent starts beside the old one with
# the very same flags — the same --http-listen on the node's address (probes, /metrics), the
# same --admin-socket, --state-dir, --dns-address/--dns-listen and dummy interface — and the old
# one gets SIGTERM only once the new one is up. Three hand-overs:
#   1. old -> new, the new agent's own log and dump checked before the old one is stopped;
#   2. new -> newer, gated as Kubernetes gates it: the newest agent starts without any state
#      (feed down, state file gone), so the readiness probe on the shared port must say "not
#      ready" although the running agent is ready; the old agent is stopped at the first
#      "ready" (no minReadySeconds margin, harsher than the DaemonSet);
#   3. a rollback: a surged agent is stopped while the running one stays; the running one takes
#      the HTTP port and the admin socket back.
# Throughout each hand-over bounded loops in the pod query DNS (dig, one try each: mirrored and
# forwarded names, UDP and TCP, single queries and batches of 100) and fetch a mirrored service
# (curl); every failure counts.
# Needs root (network namespaces, nftables). Run by scripts/test.sh after e2e/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then echo "e2e surge: skipped (needs root for network namespaces and nftables)"; exit 0; fi
BIN=$(realpath "${BIN:-.build/debug/mirror-agent}")
export PREFIX=${PREFIX:-surge-}
WORK=$(mktemp -d /tmp/mirror-e2e-surge.XXXXXX)
source e2e/lib.sh

# The node's own address (the DaemonSet's status.hostIP): --http-listen binds it, the kubelet
# probes it and a Prometheus pod scrapes it.
NODE_IP=10.99.1.1
HTTP=$NODE_IP:9153

cleanup() {
  local status=$? pids=() pid running
  for pidfile in "$WORK"/*.pid; do [ -e "$pidfile" ] && pids+=("$(cat "$pidfile")"); done
  if [ "${#pids[@]}" -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 50); do
      running=0
      for pid in "${pids[@]}"; do [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" == [^Z]* ]] && running=1; done
      [ "$running" -eq 0 ] && break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  e2e/topology.sh down >/dev/null 2>&1 || true
  if [ "$status" -ne 0 ] || [ "${failures:-1}" -ne 0 ]; then
    echo "--- logs (kept in $WORK)"; tail -n 30 "$WORK"/*.log || true
  else
    rm -rf "$WORK" || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0 passed=0

# launch_agent NAME: one agent as the DaemonSet's container runs it (the same flags for every
# agent; the admin socket and state under $WORK instead of the host's /run and /var/lib).
# Returns at once, as a container start does.
launch_agent() {
  ip netns exec "$NODE" "$BIN" run --feed "https://127.0.0.1:$FEED_PORT" \
    --tls-cert "$WORK/tls/agent.crt" --tls-key "$WORK/tls/agent.key" --ca "$WORK/tls/ca.crt" \
    --state-dir "$WORK/agent-state" --admin-socket "$WORK/admin.sock" \
    --dns-address "$DNS_ADDRESS" --dns-listen "$DNS_ADDRESS:53" --upstream "$UPSTREAM" \
    --http-listen "$HTTP" --drift-check-interval 2 --feed-max-backoff 1 >>"$WORK/agent-$1.log" 2>&1 &
  echo $! >"$WORK/agent-$1.pid"
}
pid_of() { cat "$WORK/agent-$1.pid"; }
# The processes listening on the node's TCP PORT at ADDRESS, as "pid pid …" (sorted).
listeners() { node ss -Hltnp "src $1 and sport = :$2" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -n | xargs; }
udp_listeners() { node ss -Hlunp "src $1 and sport = :$2" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -un | xargs; }
dump_pid() { node "$BIN" dump --admin-socket "$WORK/admin.sock" -o json | python3 -c 'import json, sys; print(json.load(sys.stdin)["agent"]["pid"])'; }
# What the kubelet's probes and a Prometheus scrape get: HTTP on the node's address.
http_get() { node curl -sS --max-time 2 "http://$HTTP$1"; }

# query_loop NAME: in the background until $WORK/NAME.stop exists, from the pod: rounds of dig
# (one try each: UDP mirrored, UDP forwarded, TCP mirrored) and curl, one line per query in
# $WORK/NAME.results ("ok KIND" or "FAIL KIND TIME OUTPUT"), at most MAX_ROUNDS rounds; and,
# beside them, batches of BURST UDP queries from one dig (-f, one try each, half mirrored, half
# forwarded), one line per batch in $WORK/NAME.bursts ("SENT ANSWERED TIME mirrored=… forwarded=…").
MAX_ROUNDS=${MAX_ROUNDS:-1500} BURST=100
query_loop() {
  local name=$1
  rm -f "$WORK/$name.stop" "$WORK/$name.results" "$WORK/$name.bursts"
  ( check() { # KIND WANT COMMAND...
      local kind=$1 want=$2 got; shift 2
      got=$("$@" 2>&1 | head -c 200 | tr '\n' ' ') || true
      if [[ "$got" == *"$want"* ]]; then echo "ok $kind"; else echo "FAIL $kind $(date +%T.%N) $got"; fi >>"$WORK/$name.results"
    }
    for _ in $(seq 1 "$MAX_ROUNDS"); do
      [ -e "$WORK/$name.stop" ] && break
      check dns-udp-mirrored 10.112.0.10 pod dig +tries=1 +time=1 +short bar-paris.default.svc.cluster.local
      check dns-udp-forwarded 192.0.2.80 pod dig +tries=1 +time=1 +short www.example.org
      check dns-tcp-mirrored 10.112.0.10 pod dig +tcp +tries=1 +time=1 +short bar-paris.default.svc.cluster.local
      check http "greetings from paris" pod curl -sS --max-time 2 http://bar-paris/
    done ) &
  echo $! >"$WORK/$name.pid"
  for _ in $(seq 1 $((BURST / 2))); do
    echo "bar-paris.default.svc.cluster.local +tries=1 +time=1 +short"
    echo "www.example.org +tries=1 +time=1 +short"
  done >"$WORK/burst.queries"
  ( for _ in $(seq 1 "$MAX_ROUNDS"); do
      [ -e "$WORK/$name.stop" ] && break
      out=$(pod dig -f "$WORK/burst.queries" 2>&1 || true)
      mirrored=$(grep -cx 10.112.0.10 <<<"$out" || true) forwarded=$(grep -cx 192.0.2.80 <<<"$out" || true)
      mirrored=$((mirrored < BURST / 2 ? mirrored : BURST / 2)) forwarded=$((forwarded < BURST / 2 ? forwarded : BURST / 2))
      echo "$BURST $((mirrored + forwarded)) $(date +%T.%N) mirrored=$mirrored/$((BURST / 2)) forwarded=$forwarded/$((BURST / 2))" >>"$WORK/$name.bursts"
    done ) &
  echo $! >"$WORK/$name-burst.pid"
}
# stop_loop NAME: ends the loops and reports their figures; any failure fails the test.
stop_loop() {
  local name=$1 total dns dns_failed http http_failed sent answered
  touch "$WORK/$name.stop"
  for pidfile in "$WORK/$name.pid" "$WORK/$name-burst.pid"; do wait "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; done
  total=$(wc -l <"$WORK/$name.results")
  dns=$(grep -c " dns-" "$WORK/$name.results" || true)
  dns_failed=$(grep -c "^FAIL dns-" "$WORK/$name.results" || true)
  http=$(grep -c " http" "$WORK/$name.results" || true)
  http_failed=$(grep -c "^FAIL http" "$WORK/$name.results" || true)
  sent=$(awk '{ s += $1 } END { print s + 0 }' "$WORK/$name.bursts")
  answered=$(awk '{ s += $2 } END { print s + 0 }' "$WORK/$name.bursts")
  echo "      $name: $((dns + sent)) DNS queries ($((sent + $(grep -c ' dns-udp' "$WORK/$name.results" || true))) UDP, $(grep -c ' dns-tcp' "$WORK/$name.results" || true) TCP), $((dns_failed + sent - answered)) failed; $http HTTP requests, $http_failed failed"
  if [ "$total" -ge 40 ] && [ "$sent" -ge 1000 ]; then pass "$name: the query loops ran throughout ($total single queries and requests, $sent in batches)"
  else fail "$name: query loops" "only $total single queries and requests, $sent in batches"; fi
  if [ "$dns_failed" -eq 0 ]; then pass "$name: no failed single DNS query ($dns)"; else fail "$name: DNS" "$dns_failed of $dns failed: $(grep '^FAIL dns-' "$WORK/$name.results" | head -n 5 | tr '\n' ' ')"; fi
  if [ "$answered" -eq "$sent" ]; then pass "$name: no failed DNS query in the batches ($sent)"; else fail "$name: DNS batches" "$((sent - answered)) of $sent unanswered: $(awk '$1 != $2' "$WORK/$name.bursts" | head -n 5 | tr '\n' ' ')"; fi
  if [ "$http_failed" -eq 0 ]; then pass "$name: no failed request ($http)"; else fail "$name: HTTP" "$http_failed of $http failed: $(grep '^FAIL http' "$WORK/$name.results" | head -n 5 | tr '\n' ' ')"; fi
}

e2e/topology.sh up >/dev/null
cp examples/two-clusters.yaml "$WORK/state.yaml"
cp examples/paris-exports.yaml examples/berlin-exports.yaml "$WORK/"
make_certs
start_paris_feed
start_gateway paris
start_gateway berlin
start_upstream
start_feed

echo "== the running agent (the DaemonSet's current pod)"
launch_agent old
wait_for "the old agent's rules" grep -q "nftables in sync" "$WORK/agent-old.log"
wait_for "the old agent's DNS" grep -q "DNS records loaded" "$WORK/agent-old.log"
wait_for "the old agent's state" bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock -o json | grep -q '\"ready\":true'"
expect "the kubelet's readiness probe on the node's address: ready" "ready" http_get /readyz
expect "a Prometheus pod scrapes /metrics on the node's address" "mirror_agent_ready 1" pod curl -sS --max-time 2 "http://$HTTP/metrics"
expect "traffic before the rollout" "greetings from paris" pod curl -sS --max-time 3 http://bar-paris/

echo "== surge: the new agent starts beside the old one with the same flags"
query_loop surge
sleep 0.5
launch_agent new
if wait_for "the new agent's rules" grep -q "nftables in sync" "$WORK/agent-new.log" &&
   wait_for "the new agent's DNS" grep -q "DNS records loaded" "$WORK/agent-new.log"; then
  pass "the new agent came up beside the old one (its own log: nftables in sync, DNS records loaded)"
else
  fail "the new agent" "$(tail -n 5 "$WORK/agent-new.log")"
fi
expect "the new agent found the old one's rules in place (empty batch)" "batch=empty" grep -h "nftables in sync" "$WORK/agent-new.log"
expect "the new agent took the admin socket over" "taking it over" cat "$WORK/agent-new.log"
if wait_for "the old agent to hand the HTTP port over" grep -q "handed the port over" "$WORK/agent-old.log"; then
  pass "the old agent handed the shared HTTP port over to the new one"
else
  fail "HTTP port hand-over" "$(tail -n 5 "$WORK/agent-old.log")"
fi
expect "only the new agent listens on $HTTP (probes and scrapes reach it)" "$(pid_of new)" listeners "$NODE_IP" 9153
if [ "$(listeners "$NODE_IP" 9153)" = "$(pid_of new)" ]; then pass "the old agent no longer accepts on $HTTP"; else fail "old listener" "listeners on $HTTP: $(listeners "$NODE_IP" 9153)"; fi
both=$(printf '%s\n' "$(pid_of old)" "$(pid_of new)" | sort -n | xargs)
expect "both agents serve DNS on $DNS_ADDRESS:53 meanwhile (SO_REUSEPORT)" "$both" udp_listeners "$DNS_ADDRESS" 53
expect "/healthz answers" "ok" http_get /healthz
expect "/readyz answers ready (the new agent's own state)" "ready" http_get /readyz
if [ "$(dump_pid)" = "$(pid_of new)" ]; then pass "dump answers from the new agent (pid $(pid_of new))"; else fail "dump" "answered by pid $(dump_pid), the new agent is $(pid_of new)"; fi

# A feed update while both run: both apply it; neither undoes the other's (same rules).
set_state 's/ips: \["10.112.0.12"\]/ips: ["10.112.0.22"]/'
wait_for "the update in DNS" bash -c "ip netns exec $POD dig +tries=1 +time=1 +short web-federated.default.svc.cluster.local | grep -q 10.112.0.22"
wait_for "the update in the old agent" grep -q "revision=2" "$WORK/agent-old.log"
wait_for "the update in the new agent" grep -q "revision=2" "$WORK/agent-new.log"
sleep 1
expect "a feed update while both run: traffic to the changed service" "greetings from" pod curl -sS --max-time 3 http://10.112.0.22/
drift=$(cat "$WORK/agent-old.log" "$WORK/agent-new.log" | grep -c "drift repaired" || true)
if [ "$drift" -eq 0 ]; then pass "the two agents never repaired each other's tables"; else fail "drift between agents" "$drift repairs: $(grep -h 'drift repaired' "$WORK/agent-old.log" "$WORK/agent-new.log" | head -n 3)"; fi

echo "== the old pod is deleted: SIGTERM to the old agent during the query loop"
sleep 1
kill -TERM "$(pid_of old)"
wait "$(pid_of old)" 2>/dev/null || true
rm -f "$WORK/agent-old.pid"
sleep 2
stop_loop surge
expect "the old agent left the rules in the kernel" "rules=left in the kernel" grep -h "shut down" "$WORK/agent-old.log"
expect "the DNS address stays on the node (mirror0, or lo without the dummy driver)" "$DNS_ADDRESS/32" node ip -brief addr
expect "the kernel keeps the tables" "10.112.0.10 tcp/80" node "$BIN" dump --nft
if [ "$(dump_pid)" = "$(pid_of new)" ]; then pass "the new agent still answers dump"; else fail "dump after" "answered by $(dump_pid)"; fi
expect "the new agent serves /metrics on the node's address" "mirror_agent_feed_connected 1" pod curl -sS --max-time 2 "http://$HTTP/metrics"
expect "the new agent counts the queries it answered" 'mirror_agent_dns_queries_total{outcome="NOERROR"}' pod curl -sS --max-time 2 "http://$HTTP/metrics"
expect "only the new agent on the DNS port" "$(pid_of new)" udp_listeners "$DNS_ADDRESS" 53
if python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if d["revision"] == 2 else 1)' "$WORK/agent-state/feed-state.json" 2>/dev/null; then
  pass "the state file both agents wrote is whole (revision 2)"
else
  fail "state file" "$(head -c 200 "$WORK/agent-state/feed-state.json" 2>&1)"
fi

echo "== second rollout, gated by the readiness probe alone; the newest agent starts without state"
# The feed is down and the node's state file gone, so the newest agent cannot be ready until the
# feed is back, while the running one is ready. The kubelet's probe on the shared port must
# report the newest agent (not ready), and the old pod is deleted — here at the first "ready",
# without the DaemonSet's minReadySeconds margin — only once the newest agent serves.
stop_feed
mv "$WORK/agent-state/feed-state.json" "$WORK/feed-state.json.away" 2>/dev/null || true
query_loop gated
sleep 0.5
launch_agent newer
wait_for "the newest agent's HTTP port" grep -q "health and metrics endpoint listening" "$WORK/agent-newer.log" || true
wait_for "the hand-over of the HTTP port" grep -q "handed the port over" "$WORK/agent-new.log" || true
probes=""
for _ in 1 2 3 4 5; do probes+="$(http_get /readyz 2>&1 | tr -d '\n');"; sleep 0.5; done
if [ "$probes" = "$(printf 'no mirror state applied yet;%.0s' 1 2 3 4 5)" ]; then
  pass "the readiness probe reports the newest agent (not ready: no state) while the old one serves"
else
  fail "readiness while the newest agent has no state" "$probes"
fi
expect "meanwhile the old agent still serves DNS" "10.112.0.10" pod dig +tries=1 +time=1 +short bar-paris.default.svc.cluster.local
expect "meanwhile traffic flows" "greetings from paris" pod curl -sS --max-time 3 http://bar-paris/
start_feed
ready_at=""
for _ in $(seq 1 100); do
  if [ "$(http_get /readyz 2>/dev/null)" = ready ]; then ready_at=$(date +%T.%N); break; fi
  sleep 0.2
done
kill -TERM "$(pid_of new)"
if [ -n "$ready_at" ]; then pass "once the feed is back the readiness probe says ready ($ready_at)"; else fail "readiness" "never ready"; fi
if grep -q "nftables in sync" "$WORK/agent-newer.log" && grep -q "DNS records loaded" "$WORK/agent-newer.log"; then
  pass "when the probe said ready, the newest agent had its rules and DNS records (the probe was its own)"
else
  fail "readiness gate" "ready, but the newest agent's log has: $(tr '\n' ' ' <"$WORK/agent-newer.log" | head -c 400)"
fi
wait "$(pid_of new)" 2>/dev/null || true
rm -f "$WORK/agent-new.pid"
sleep 2
stop_loop gated
if [ "$(dump_pid)" = "$(pid_of newer)" ]; then pass "the newest agent answers dump"; else fail "dump after the second rollout" "answered by $(dump_pid)"; fi
expect "the newest agent serves /metrics" "mirror_agent_ready 1" pod curl -sS --max-time 2 "http://$HTTP/metrics"
expect "traffic after both rollouts" "greetings from paris" pod curl -sS --max-time 3 http://bar-paris/

echo "== rollback: the surged pod is deleted while the running agent stays"
# A rollout rolled back before its new pod got ready deletes that pod, not the running one:
# the running agent, which handed its HTTP port over, takes it and the admin socket back.
query_loop rollback
launch_agent rollback
wait_for "the surged agent's hand-over" grep -q "handed the port over" "$WORK/agent-newer.log" || true
expect "the running agent handed the port to the surged one" "$(pid_of rollback)" listeners "$NODE_IP" 9153
kill -TERM "$(pid_of rollback)"
wait "$(pid_of rollback)" 2>/dev/null || true
rm -f "$WORK/agent-rollback.pid"
if wait_for "the port taken back" grep -q "took the port back" "$WORK/agent-newer.log"; then
  pass "the running agent took the HTTP port back once the surged one was gone"
else
  fail "port taken back" "$(tail -n 3 "$WORK/agent-newer.log")"
fi
expect "the running agent listens on $HTTP again" "$(pid_of newer)" listeners "$NODE_IP" 9153
expect "its probes answer again" "ready" http_get /readyz
wait_for "the admin socket taken back" bash -c "[ \"\$(ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock -o json 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)[\"agent\"][\"pid\"])' 2>/dev/null)\" = $(pid_of newer) ]" || true
if [ "$(dump_pid 2>/dev/null)" = "$(pid_of newer)" ]; then pass "dump answers from the running agent again"; else fail "admin socket taken back" "dump answered by '$(dump_pid 2>&1)'"; fi
sleep 1
stop_loop rollback

echo
echo "e2e surge: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
