#!/usr/bin/env bash
# End-to-end test of the whole system on one machine: london-pod -> london-node (agent + feed)
# -> paris/berlin gateways -> pods, in network namespaces (e2e/topology.sh). Real clients only:
# dig, glibc getent (through the pod's Kubernetes-style resolv.conf), curl. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then echo "e2e: skipped (needs root for network namespaces and nftables)"; exit 0; fi
BIN=$(realpath "${BIN:-.build/debug/mirror-agent}")
export PREFIX=${PREFIX:-e2e-}
WORK=$(mktemp -d /tmp/mirror-e2e.XXXXXX)
source e2e/lib.sh

cleanup() {
  for pidfile in "$WORK"/*.pid; do [ -e "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true; done
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

e2e/topology.sh up >/dev/null
cp examples/two-clusters.yaml "$WORK/state.yaml"
cp examples/paris-exports.yaml examples/berlin-exports.yaml "$WORK/"
make_certs
start_paris_feed
start_gateway paris
start_gateway berlin
start_upstream
start_feed
start_agent a
wait_for "the first state" bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock -o json | grep -q '\"ready\":true'"

echo "== probes and metrics"
expect "/healthz answers" "ok" node curl -sS http://127.0.0.1:9153/healthz
expect "dump shows the feed connected" "  connected since" node "$BIN" dump --admin-socket "$WORK/admin.sock"
expect "/metrics shows the feed connected" "mirror_agent_feed_connected 1" node curl -sS http://127.0.0.1:9153/metrics
expect "/readyz is ready once the first state is applied" "ready" node curl -sS http://127.0.0.1:9153/readyz
expect "/metrics exposes the revision" "mirror_agent_revision 1" node curl -sS http://127.0.0.1:9153/metrics
expect "/metrics counts syncs per part" 'mirror_agent_syncs_total{part="nftables"} 1' node curl -sS http://127.0.0.1:9153/metrics

echo "== node preflight (mirror-agent check)"
preflight() { node "$BIN" check --dns-listen "$DNS_ADDRESS:53" --upstream "$UPSTREAM" --feed "https://127.0.0.1:$FEED_PORT"; }
expect "check: nf_tables answers" "√ nf_tables" preflight
expect "check: the upstream answers" "√ upstream $UPSTREAM" preflight
expect "check: the feed is reachable" "√ feed https://127.0.0.1:$FEED_PORT" preflight
expect "check: the running agent's DNS port is reported in use" "already in use" preflight

echo "== DNS from the pod (glibc and dig)"
expect "getent resolves the short name through the search path" "10.112.0.10     bar-paris.default.svc.cluster.local" pod getent hosts bar-paris
expect "getent resolves the namespace-qualified name" "10.112.0.11" pod getent hosts baz-paris.default
expect "dig A of a mirrored name" "10.112.0.10" pod dig +short bar-paris.default.svc.cluster.local
expect "dig AAAA of a v4-only mirrored name is NODATA with the SOA" "status: NOERROR" pod dig bar-paris.default.svc.cluster.local AAAA
expect "NODATA carries no answer" "ANSWER: 0, AUTHORITY: 1" pod dig bar-paris.default.svc.cluster.local AAAA
expect "below a mirrored name is NXDOMAIN" "status: NXDOMAIN" pod dig nope.bar-paris.default.svc.cluster.local
expect "SRV for the named port" "0 100 80 bar-paris.default.svc.cluster.local." pod dig +short _http._tcp.bar-paris.default.svc.cluster.local SRV
expect "PTR for the ClusterIP" "bar-paris.default.svc.cluster.local." pod dig +short -x 10.112.0.10
expect "a non-mirrored name is answered by the upstream (unbound)" "192.0.2.80" pod dig +short www.example.org
expect "a cluster name not mirrored goes upstream through the search path" "10.96.0.1" pod getent hosts kubernetes.default

expect "/metrics counts the NXDOMAIN answered above" 'mirror_agent_dns_queries_total{outcome="NXDOMAIN"}' node curl -sS http://127.0.0.1:9153/metrics
expect "/metrics counts forwarded queries" 'mirror_agent_dns_queries_total{outcome="forwarded"}' node curl -sS http://127.0.0.1:9153/metrics
expect "dump shows DNS queries by outcome" "queries=NOERROR" node "$BIN" dump --admin-socket "$WORK/admin.sock"
expect "dump shows the upstream's health" "$UPSTREAM  yes" node "$BIN" dump --admin-socket "$WORK/admin.sock"
expect "/metrics shows the upstream's health" "mirror_agent_dns_upstream_healthy{upstream=\"$UPSTREAM\"} 1" node curl -sS http://127.0.0.1:9153/metrics

echo "== traffic"
expect "gateway mode: curl reaches paris through its gateway" "greetings from paris" pod curl -sS --max-time 3 http://bar-paris/
expect "remote-discovery: curl reaches the paris pod directly" "greetings from paris" pod curl -sS --max-time 3 http://baz-paris/
seen=""
for _ in $(seq 1 30); do seen+=$(pod curl -sS --max-time 3 http://web-federated/ 2>&1 || true); done
if [[ "$seen" == *paris* && "$seen" == *berlin* ]]; then pass "federated: repeated connections reach both clusters"; else fail "federated spreading" "$seen"; fi
expect "/metrics shows per-service packet counters from the kernel" 'mirror_agent_service_packets_total{service="default/web-federated"} 30' node curl -sS http://127.0.0.1:9153/metrics
expect "/metrics has a sync latency histogram" 'mirror_agent_sync_duration_seconds_bucket{part="nftables",le=' node curl -sS http://127.0.0.1:9153/metrics

echo "== gateways: one gateway port per exported service port"
expect "bar-paris reaches bar's pod through paris's gateway" "greetings from paris" pod curl -sS --max-time 3 http://bar-paris/
expect "echo-paris, through the same gateway address, reaches echo's own pod" "greetings from paris echo" pod curl -sS --max-time 3 http://echo-paris/
expect "a UDP port through the gateway" "echo from paris: ping" pod bash -c 'echo ping | socat -t 2 - UDP:echo-paris:5300'
expect "the gateway's probe answers London (what a Link probes)" "ready" node curl -sS --max-time 2 http://10.99.1.2:4191/ready
expect "dump --gateway lists each exported port with its gateway port" "default/echo  echo udp/5300  20003" ip netns exec "$PGW" "$BIN" dump --admin-socket "$WORK/paris-gw.sock"
expect "paris's gateway follows its feed over mTLS" "feed:https://127.0.0.1:$PARIS_FEED_PORT/v1/exports  connected" ip netns exec "$PGW" "$BIN" dump --admin-socket "$WORK/paris-gw.sock"
intruder=$(ip netns exec "$INTRUDER" curl -sS --max-time 1 -o /dev/null -w '%{exitcode}' http://10.99.1.2:20001/ 2>/dev/null || true)
if [ "$intruder" = 28 ]; then pass "a source outside --allow-source is dropped (no answer at all)"; else fail "allow-source" "intruder's curl ended with $intruder, wanted 28 (timeout)"; fi
refused=$(ip netns exec "$PGW" curl -sS http://127.0.0.1:9154/metrics | awk '/^mirror_gateway_refused_packets_total/ {print $2}')
if [ "${refused:-0}" -ge 1 ]; then pass "the gateway counts the refused packets ($refused)"; else fail "refused counter" "mirror_gateway_refused_packets_total=${refused:-absent}"; fi
expect "/metrics counts packets per gateway port" 'mirror_gateway_port_packets_total{service="default/echo",gateway_port="udp/20003"} 1' ip netns exec "$PGW" curl -sS http://127.0.0.1:9154/metrics

set_exports paris 's/{ip: 10.20.1.5, ready: true}/{ip: 10.20.1.5, ready: false}/'
wait_for "bar without ready endpoints on paris's gateway" bash -c "ip netns exec $PGW $BIN dump --admin-socket $WORK/paris-gw.sock | grep -q 'REJECT'"
start=$(date +%s%N)
if pod curl -sS --max-time 5 http://bar-paris/ >/dev/null 2>&1; then fail "export scaled to zero" "bar-paris still answered"; else
  elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
  if [ "$elapsed" -lt 1000 ]; then pass "an export with no ready endpoint: London is refused at once (${elapsed} ms)"; else fail "export scaled to zero" "took ${elapsed} ms"; fi
fi
expect "echo-paris is untouched" "greetings from paris echo" pod curl -sS --max-time 3 http://echo-paris/
set_exports paris 's/{ip: 10.20.1.5, ready: false}/{ip: 10.20.1.5, ready: true}/'
wait_for "bar ready again" pod curl -sS --max-time 1 http://bar-paris/
expect "bar's endpoint ready again: bar-paris answers" "greetings from paris" pod curl -sS --max-time 3 http://bar-paris/

# A connection opened through the gateway outlives the gateway process (the rules stay).
rm -f "$WORK/flow.ready" "$WORK/flow.go"
ip netns exec "$POD" python3 -c '
import http.client, os, sys, time
work = sys.argv[1]
connection = http.client.HTTPConnection("bar-paris", 80, timeout=5)
answers = []
for step in ("first", "second"):
    connection.request("GET", "/")
    answers.append(connection.getresponse().read().decode().strip())
    if step == "first":
        open(work + "/flow.ready", "w").close()
        for _ in range(100):
            if os.path.exists(work + "/flow.go"): break
            time.sleep(0.1)
print("%d answers on one connection: %s" % (len(answers), " / ".join(answers)))
' "$WORK" >"$WORK/flow.out" 2>&1 &
flow=$!
wait_for "the long-lived connection" test -e "$WORK/flow.ready"
kill -KILL "$(cat "$WORK/paris-gw.pid")"; wait "$(cat "$WORK/paris-gw.pid")" 2>/dev/null || true
if node curl -sS --max-time 1 http://10.99.1.2:4191/ready >/dev/null 2>&1; then fail "gateway killed" "/ready still answered"; else pass "gateway killed: /ready no longer answers"; fi
touch "$WORK/flow.go"; wait $flow || true
expect "an established connection keeps working after the gateway is killed" "2 answers on one connection: greetings from paris / greetings from paris" cat "$WORK/flow.out"
expect "new connections too: the rules stay in the kernel" "greetings from paris" pod curl -sS --max-time 3 http://bar-paris/
start_gateway paris
wait_for "paris's probe" node curl -sS --max-time 1 http://10.99.1.2:4191/ready
expect "restarted gateway: /ready answers again" "ready" node curl -sS --max-time 1 http://10.99.1.2:4191/ready
expect "restarted gateway with unchanged exports sent an empty batch" "batch=empty" bash -c "grep 'gateway tables in sync' $WORK/paris-gw.log | tail -n 1"

echo "== the feed drives traffic"
set_state 's/alive: true}\(.*\)$/alive: true}\1/; /name: paris/,/masquerade/ s/alive: true/alive: false/'
wait_for "paris marked dead" bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock | grep -q 'paris.*NO'"
start=$(date +%s%N)
if pod curl -sS --max-time 5 http://bar-paris/ >/dev/null 2>&1; then fail "dead gateway" "bar-paris still answered"; else
  elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
  if [ "$elapsed" -lt 1000 ]; then pass "dead gateway: bar-paris refused at once (${elapsed} ms)"; else fail "dead gateway" "took ${elapsed} ms (black-holed?)"; fi
fi
expect "remote-discovery ignores the gateway's death" "greetings from paris" pod curl -sS --max-time 3 http://baz-paris/
set_state '/name: paris/,/masquerade/ s/alive: false/alive: true/'
wait_for "paris alive again" pod curl -sS --max-time 1 http://bar-paris/
expect "gateway alive again: bar-paris answers" "greetings from paris" pod curl -sS --max-time 3 http://bar-paris/
cat >>"$WORK/state.yaml.add" <<'YAML'
  - name: qux
    namespace: default
    cluster: berlin
    mode: gateway
    ips: ["10.112.0.13"]
    ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, gatewayPort: 20001}]
YAML
cat "$WORK/state.yaml" "$WORK/state.yaml.add" >"$WORK/state.yaml.new" && mv "$WORK/state.yaml.new" "$WORK/state.yaml"
wait_for "qux-berlin in DNS" bash -c "ip netns exec $POD dig +short qux-berlin.default.svc.cluster.local | grep -q 10.112.0.13"
expect "a new service from the feed resolves and routes" "greetings from berlin" pod curl -sS --max-time 3 http://qux-berlin/

echo "== bad input keeps the last good state"
cp "$WORK/state.yaml" "$WORK/state.good"
set_state 's/mode: remote-discovery/mode: flat/'
sleep 1
expect "after an invalid edit, DNS still answers" "10.112.0.11" pod dig +short baz-paris.default.svc.cluster.local
expect "after an invalid edit, traffic still flows" "greetings from paris" pod curl -sS --max-time 3 http://baz-paris/
cp "$WORK/state.good" "$WORK/state.yaml"

echo "== drift repair"
# `nft flush ruleset` on the node (an admin, a firewall tool reloading) removes the agent's
# tables. The agent hears it from the kernel (nf_tables notifications) and repairs at once;
# its periodic check (every 2 s here) is only the backstop, which could not promise 1 s.
start=$(date +%s%N)
node nft flush ruleset
elapsed=""
while [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 10000 ]; do
  if pod curl -sS --max-time 0.2 http://bar-paris/ >/dev/null 2>&1; then elapsed=$(( ($(date +%s%N) - start) / 1000000 )); break; fi
done
if [ -n "$elapsed" ] && [ "$elapsed" -le 1000 ]; then pass "nft flush ruleset: traffic back at once (${elapsed} ms)"
else fail "nft flush ruleset" "traffic back after ${elapsed:-more than 10000} ms"; fi
expect "the agent repaired on the kernel's notification, not the periodic check" "drift repaired right after another process changed the agent's tables" grep -h "drift repaired right after" "$WORK/agent-a.log"
expect "deleted tables are restored by the agent" "greetings from paris" pod curl -sS --max-time 3 http://bar-paris/

echo "== the feed stopped"
stop_feed
sleep 1
expect "feed down: DNS unchanged" "10.112.0.10" pod dig +short bar-paris.default.svc.cluster.local
expect "feed down: traffic unchanged" "greetings from paris" pod curl -sS --max-time 3 http://bar-paris/
expect "dump says the feed is down and the last state is served" "DISCONNECTED (serving the last state)" node "$BIN" dump --admin-socket "$WORK/admin.sock"

echo "== agent restart (feed still down: the new agent starts from its persisted state)"
probe_failures=0 probes=0
# Probe DNS (dig, one try each: any lost query counts; a mirrored and a forwarded name) and
# HTTP continuously while a second agent starts and the first one stops, until well after
# the handover.
( while [ ! -e "$WORK/probe.stop" ]; do
    [ "$(pod dig +tries=1 +time=1 +short bar-paris.default.svc.cluster.local 2>&1)" = 10.112.0.10 ] || echo "dns mirrored $(date +%T.%N)" >>"$WORK/probe.failures"
    [ "$(pod dig +tries=1 +time=1 +short www.example.org 2>&1)" = 192.0.2.80 ] || echo "dns forwarded $(date +%T.%N)" >>"$WORK/probe.failures"
    pod curl -sS --max-time 2 http://bar-paris/ >/dev/null 2>&1 || echo "http $(date +%T.%N)" >>"$WORK/probe.failures"
    echo >>"$WORK/probe.count"
  done ) &
probe=$!
sleep 0.5
start_agent b
stop_agent a
sleep 2
touch "$WORK/probe.stop"
wait $probe
probes=$(wc -l <"$WORK/probe.count")
[ -f "$WORK/probe.failures" ] && probe_failures=$(wc -l <"$WORK/probe.failures")
if kill -0 "$(cat "$WORK/agent-b.pid")" 2>/dev/null; then pass "the second agent runs beside the first (SO_REUSEPORT)"; else fail "second agent" "exited: $(tail -n 3 "$WORK/agent-b.log")"; fi
if [ "$probe_failures" -eq 0 ]; then pass "no failed DNS query or request across the restart ($probes rounds of 2 dig + curl)"; else fail "restart" "$probe_failures failed probes: $(sort "$WORK/probe.failures" | uniq -c | tr '\n' ' ')"; fi
expect "the restarted agent answers dump" "bar-paris.default.svc.cluster.local" node "$BIN" dump --admin-socket "$WORK/admin.sock"
expect "the restarted agent kept the rules (empty batch)" "batch=empty" grep -h "nftables in sync" "$WORK/agent-b.log"

echo "== feed back"
start_feed
set_state 's/ips: \["10.112.0.13"\]/ips: ["10.112.0.14"]/'
wait_for "the change after the feed came back" bash -c "ip netns exec $POD dig +short qux-berlin.default.svc.cluster.local | grep -q 10.112.0.14"
expect "the agent resumed from the feed" "greetings from berlin" pod curl -sS --max-time 3 http://qux-berlin/
expect "dump shows the restarted agent connected to the feed" "  connected since" node "$BIN" dump --admin-socket "$WORK/admin.sock"
expect "dump --nft reads the kernel" "10.112.0.14 tcp/80 -> 10.99.2.2:20001" node "$BIN" dump --nft

echo
echo "e2e: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
