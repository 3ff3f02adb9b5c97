#!/usr/bin/env bash
# End-to-end test of `mirror-agent feed --source kubernetes` against emulated clusters: two
# kmock API servers (Tests/MirrorKubernetesTests/kmock_harness.py) in london-node play London's
# cluster (the Link, its credentials Secret, the mirror Services) and paris's (the exported
# Services). London's agent follows that feed; london-pod checks with real getent, dig and
# curl, through paris's gateway (`mirror-agent gateway`) to the paris pod. The Kubernetes
# source publishes its clusters without masquerade, so connections reach the gateway from the
# pod's own address: paris's gateway admits London's pod range too (deploy/README.md).
# Figures (label -> resolvable, unlabel -> NXDOMAIN, API server gone -> STALE) are printed,
# not asserted. Needs root and python3 with kmock (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then echo "e2e kubernetes: skipped (needs root for network namespaces and nftables)"; exit 0; fi
BIN=$(realpath "${BIN:-.build/debug/mirror-agent}")
export PREFIX=${PREFIX:-k8s-}
WORK=$(mktemp -d /tmp/mirror-e2e-k8s.XXXXXX)
source e2e/lib.sh

LOCAL_PORT=18001 REMOTE_PORT=18002
# London's Service range, allocated by the local API server; clashes with nothing in the topology.
SERVICE_CIDR=10.112.64.0/20
LINKS=/apis/multicluster.linkerd.io/v1alpha3/namespaces/mirror-agent/links
SERVICES=/api/v1/namespaces/default/services
NAME=bar-paris.default.svc.cluster.local

cleanup() {
  local status=$? pids=() pid running
  for pidfile in "$WORK"/*.pid; do [ -e "$pidfile" ] && pids+=("$(cat "$pidfile")"); done
  # Our processes exit (or are killed after 5 s) before their directory goes: one still
  # shutting down could write into it while it is removed.
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

feed_dump() { node "$BIN" dump --feed --admin-socket "$WORK/feed.sock"; }
feed_dump_matches() { feed_dump | grep -Eq -- "$1"; }
feed_metrics() { node curl -sS --max-time 3 "http://127.0.0.1:$KUBE_FEED_HTTP_PORT/metrics"; }
# local_field NAME EXPRESSION: a field of London's Service default/NAME (python over `s`).
local_field() {
  kube "$LOCAL_PORT" GET "$SERVICES/$1" | python3 -c "import json, sys; s = json.load(sys.stdin); print($2)"
}
local_absent() { [ "$(node curl -sS --max-time 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$LOCAL_PORT$SERVICES/$1")" = 404 ]; }
# The pod's resolver, one try: the status of NAME, and its A records.
dig_status() { pod dig +tries=1 +time=1 "$1" | sed -n 's/.*status: \([A-Z]*\).*/\1/p'; }
resolves_to() { [ "$(pod dig +tries=1 +time=1 +short "$1")" = "$2" ]; }
# dig_a NAME: "A=<the answers, space-separated>." (to compare a whole answer, not a prefix).
dig_a() { echo "A=$(pod dig +tries=2 +time=1 +short "$1" | xargs)."; }
is_nxdomain() { [ "$(dig_status "$1")" = NXDOMAIN ]; }
remote_service() { # NAME LABELS-JSON: a remote Service in default, port http 80 -> 8080, gateway port 20001
  kube "$REMOTE_PORT" POST "$SERVICES" "{\"apiVersion\":\"v1\",\"kind\":\"Service\",
    \"metadata\":{\"name\":\"$1\",\"namespace\":\"default\",\"labels\":$2,\"annotations\":{\"mirror-agent.io/gateway-ports\":\"http=20001\"}},
    \"spec\":{\"type\":\"ClusterIP\",\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":80,\"targetPort\":8080}]}}" >/dev/null
}
label() { kube "$REMOTE_PORT" PATCH "$SERVICES/$1" "{\"metadata\":{\"labels\":{\"mirror.linkerd.io/exported\":$2}}}" >/dev/null; }

e2e/topology.sh up >/dev/null
cp examples/paris-exports.yaml "$WORK/"
make_certs
start_paris_feed
start_paris_gateway_for_pods
start_upstream

echo "== emulated clusters: London's (Link, credentials) and paris's (an exported Service)"
start_kmock local "$LOCAL_PORT" --namespaces mirror-agent,default --service-cidr "$SERVICE_CIDR"
start_kmock paris "$REMOTE_PORT"
write_kubeconfig "$WORK/local.kubeconfig" local "http://127.0.0.1:$LOCAL_PORT" mirror-agent
write_kubeconfig "$WORK/paris.kubeconfig" paris "http://127.0.0.1:$REMOTE_PORT"
kube "$LOCAL_PORT" POST /api/v1/namespaces/mirror-agent/secrets "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",
  \"type\":\"mirror.linkerd.io/remote-kubeconfig\",\"metadata\":{\"name\":\"cluster-credentials-paris\",\"namespace\":\"mirror-agent\"},
  \"data\":{\"kubeconfig\":\"$(base64 -w0 "$WORK/paris.kubeconfig")\"}}" >/dev/null
kube "$LOCAL_PORT" POST "$LINKS" '{"apiVersion":"multicluster.linkerd.io/v1alpha3","kind":"Link",
  "metadata":{"name":"paris","namespace":"mirror-agent"},
  "spec":{"targetClusterName":"paris","targetClusterDomain":"cluster.local","clusterCredentialsSecret":"cluster-credentials-paris",
          "gatewayAddress":"10.99.1.2","gatewayPort":"4143",
          "probeSpec":{"path":"/ready","port":"4191","period":"500ms","timeout":"400ms","failureThreshold":"3"},
          "selector":{"matchLabels":{"mirror.linkerd.io/exported":"true"}}}}' >/dev/null
remote_service bar '{"mirror.linkerd.io/exported":"true"}'

start_kube_feed
start_agent a
wait_for "the first state" bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock -o json | grep -q '\"ready\":true'"

echo "== the mirror Service and what the pod sees"
if wait_for "default/bar-paris in London's cluster" local_field bar-paris 's["spec"]["clusterIP"]'; then
  pass "the feed created the mirror Service default/bar-paris in London's cluster"
else
  fail "mirror Service" "$(kube "$LOCAL_PORT" GET "$SERVICES" 2>&1)"
fi
expect "it is labelled for mirror-agent (kube-proxy ignores it)" "mirror-agent" local_field bar-paris 's["metadata"]["labels"].get("service.kubernetes.io/service-proxy-name")'
expect "it is labelled with its cluster" "paris" local_field bar-paris 's["metadata"]["labels"].get("mirror.linkerd.io/cluster-name")'
ip=$(local_field bar-paris 's["spec"]["clusterIP"]' 2>/dev/null || true)
if python3 -c "import ipaddress, sys; sys.exit(ipaddress.ip_address(sys.argv[1]) not in ipaddress.ip_network(sys.argv[2]))" "${ip:-none}" "$SERVICE_CIDR" 2>/dev/null; then
  pass "its ClusterIP $ip was allocated by London's API server (from $SERVICE_CIDR)"
else
  fail "ClusterIP" "'$ip' is not in $SERVICE_CIDR"
fi
wait_for "bar-paris in the agent's DNS" resolves_to "$NAME" "$ip" || true
getent_first() { pod getent hosts "$1" | awk '{print $1, $2; exit}'; }
expect "getent in the pod resolves bar-paris (search path) to that ClusterIP" "$ip $NAME" getent_first bar-paris
expect "dig in the pod resolves the full name to that ClusterIP" "A=$ip." dig_a "$NAME"
expect "curl from the pod reaches paris's pod through paris's gateway" "greetings from paris" pod curl -sS --max-time 3 "http://$NAME/"
expect_re "dump --feed shows the Link connected with 1 service" "^mirror-agent/paris +paris +connected +1 " feed_dump
expect "dump --feed shows this replica leading" "LEADER" feed_dump
expect "/metrics: the Link is connected" 'mirror_feed_link_connected{link="mirror-agent/paris",cluster="paris"} 1' feed_metrics
expect "/metrics: 1 service mirrored" 'mirror_feed_link_services_mirrored{link="mirror-agent/paris",cluster="paris"} 1' feed_metrics

echo "== unexport, export again (figures measured, not asserted)"
start=$(date +%s%N)
label bar null
if unexport_ms=$(within "$start" 15000 is_nxdomain "$NAME"); then
  pass "label removed on paris's Service: the pod gets NXDOMAIN for $NAME"
else
  fail "unexport" "after 15 s the pod still got: $(pod dig +short "$NAME" 2>&1)"
fi
if wait_for "default/bar-paris deleted" local_absent bar-paris; then pass "the mirror Service is deleted in London's cluster"
else fail "mirror Service deletion" "$(kube "$LOCAL_PORT" GET "$SERVICES/bar-paris" 2>&1)"; fi
# The mirror Service is created again, so its ClusterIP may be a new one: read it once resolved.
resolves() { [ -n "$(pod dig +tries=1 +time=1 +short "$1")" ]; }
start=$(date +%s%N)
label bar '"true"'
if export_ms=$(within "$start" 15000 resolves "$NAME"); then
  ip=$(local_field bar-paris 's["spec"]["clusterIP"]' 2>&1 || true)
  expect "label back: the pod resolves $NAME to the new mirror Service's ClusterIP ($ip)" "A=$ip." dig_a "$NAME"
else
  fail "export again" "after 15 s the pod got '$(pod dig +short "$NAME" 2>&1)'"
fi
expect "getent agrees" "$ip $NAME" getent_first bar-paris
expect "curl through the new mirror Service reaches paris" "greetings from paris" pod curl -sS --max-time 3 "http://$NAME/"

echo "== a local Service already holds the mirror's name"
kube "$LOCAL_PORT" POST "$SERVICES" '{"apiVersion":"v1","kind":"Service",
  "metadata":{"name":"baz-paris","namespace":"default","labels":{"app":"baz-paris-local"}},
  "spec":{"type":"ClusterIP","ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":8080}]}}' >/dev/null
remote_service baz '{"mirror.linkerd.io/exported":"true"}'
clash_reported() { feed_dump | sed -n '/^NOT WRITTEN/,/^$/p' | grep -q "default/baz-paris: .*without mirror-agent's labels"; }
if wait_for "the clash reported" clash_reported; then
  pass "dump --feed lists default/baz-paris under NOT WRITTEN (a Service without mirror-agent's labels)"
else
  fail "clash report" "$(feed_dump 2>&1)"
fi
expect "the local Service keeps its own labels" "{'app': 'baz-paris-local'}" local_field baz-paris 's["metadata"].get("labels")'
reject "the feed did not take it over" "service-proxy-name" kube "$LOCAL_PORT" GET "$SERVICES/baz-paris"
expect "/metrics counts the Service not written" "mirror_feed_mirror_service_problems 1" feed_metrics
expect "bar-paris is untouched" "greetings from paris" pod curl -sS --max-time 3 "http://$NAME/"

echo "== paris's gateway stops answering its probe, then comes back"
# The agent's reject rule answers a TCP SYN with a reset: curl's "couldn't connect" (7) at once.
refused() { local out; out=$(pod curl -sS --max-time 2 "http://$NAME/" 2>&1); [[ "$out" == *"curl: (7)"* ]]; }
answers() { pod curl -sS --max-time 2 "http://$NAME/" 2>/dev/null | grep -q "greetings from paris"; }
expect_re "dump --feed shows the gateway probe alive" "^mirror-agent/paris +10\.99\.1\.2 +alive " feed_dump
start=$(date +%s%N)
kill -KILL "$(cat "$WORK/paris-gw.pid")"
wait "$(cat "$WORK/paris-gw.pid")" 2>/dev/null || true
if dead_ms=$(within "$start" 15000 refused); then
  pass "gateway gone: the pod's connections are refused at once by the agent (gateway dead after 3 failed probes)"
else
  fail "dead gateway" "$(pod curl -sS --max-time 2 "http://$NAME/" 2>&1; feed_dump 2>&1)"
fi
expect_re "dump --feed shows the gateway DEAD with the probe's error" "^mirror-agent/paris +10\.99\.1\.2 +DEAD " feed_dump
expect "/metrics: the Link's gateway is dead" 'mirror_feed_link_gateway_alive{link="mirror-agent/paris",cluster="paris"} 0' feed_metrics
expect_re "a refused connection fails fast (reset by the agent, not a timeout)" "curl: \(7\) Failed to connect .* after [0-9]{1,3} ms" pod curl -sS --max-time 2 "http://$NAME/"
start=$(date +%s%N)
start_paris_gateway_for_pods
if alive_ms=$(within "$start" 15000 answers); then
  pass "gateway back: the pod reaches paris again"
else
  fail "gateway back" "$(pod curl -sS --max-time 2 "http://$NAME/" 2>&1; feed_dump 2>&1)"
fi
expect_re "dump --feed shows the gateway alive again" "^mirror-agent/paris +10\.99\.1\.2 +alive " feed_dump

echo "== a feed restart while the gateway is alive publishes it alive (no dead window)"
kill -TERM "$(cat "$WORK/feed.pid")"; wait "$(cat "$WORK/feed.pid")" 2>/dev/null || true
start_kube_feed
wait_for "the restarted feed's Link" feed_dump_matches "^mirror-agent/paris +paris +connected +1 "
reject "the restarted feed never published the gateway dead" "gateway\":{\"addresses\":[\"10.99.1.2\"],\"alive\":false" \
  node curl -sS --max-time 2 --cacert "$WORK/tls/ca.crt" --cert "$WORK/tls/agent.crt" --key "$WORK/tls/agent.key" \
  "https://127.0.0.1:$FEED_PORT/v1/watch"
expect "curl from the pod reaches paris after the feed restart" "greetings from paris" pod curl -sS --max-time 3 "http://$NAME/"

echo "== paris's API server unreachable: the last state stays"
start=$(date +%s%N)
stop_kmock paris
if stale_ms=$(within "$start" 15000 feed_dump_matches "^mirror-agent/paris +paris +STALE \(keeping last state\) +1 "); then
  pass "dump --feed shows the Link STALE (keeping last state), still 1 service"
else
  fail "stale Link" "$(feed_dump 2>&1)"
fi
expect "/metrics: the Link is stale" 'mirror_feed_link_stale{link="mirror-agent/paris",cluster="paris"} 1' feed_metrics
expect "/metrics: the Link is no longer connected" 'mirror_feed_link_connected{link="mirror-agent/paris",cluster="paris"} 0' feed_metrics
sleep 1
expect "the mirror Service stays in London's cluster, same ClusterIP" "$ip" local_field bar-paris 's["spec"]["clusterIP"]'
expect "the pod still resolves $NAME" "A=$ip." dig_a "$NAME"
expect "curl from the pod still reaches paris" "greetings from paris" pod curl -sS --max-time 3 "http://$NAME/"

echo
echo "figures (measured, not asserted): remote Service labelled -> the pod resolves its mirror: ${export_ms:-n/a} ms;" \
  "label removed -> the pod gets NXDOMAIN: ${unexport_ms:-n/a} ms; remote API server killed -> dump --feed says STALE: ${stale_ms:-n/a} ms;" \
  "gateway killed -> the pod's connection refused: ${dead_ms:-n/a} ms (probe period 500 ms, threshold 3); gateway restarted -> the pod reaches paris: ${alive_ms:-n/a} ms"
echo "e2e kubernetes: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
