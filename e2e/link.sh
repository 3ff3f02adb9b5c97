#!/usr/bin/env bash
# End-to-end test of linking two clusters with `mirror-agent link` (issue 15): everything real
# (mirror-agent link, feed, run, gateway, check; the pod's getent and curl) except the two API
# servers, which are kmock emulators (Tests/MirrorKubernetesTests/kmock_harness.py):
#   - paris's in paris-gw on 10.99.1.2:18002, requiring a bearer token: London's feed reaches it
#     from london-node through the Link, paris's own feed from paris-gw;
#   - London's in london-node on 127.0.0.1:18001 (namespaces mirror-agent and default, Service
#     range 10.112.64.0/20).
# `mirror-agent link --remote-rbac` is applied in paris (e2e/kube-apply.py plays kubectl apply;
# the test writes the ServiceAccount's token as the token controller would), `mirror-agent
# link --kubeconfig paris` in London. Paris's feed (--exports kubernetes) gives exported
# Service bar a gateway port, annotates it and serves the exports to paris's gateway; London's
# feed mirrors bar as bar-paris; the london pod resolves it and reaches the paris pod through
# `mirror-agent gateway`. The time from creating the Service in paris to the pod's first
# successful curl is printed, not asserted. Needs root, python3 with kmock
# (scripts/install-deps.sh) and PyYAML.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then echo "e2e link: skipped (needs root for network namespaces and nftables)"; exit 0; fi
BIN=$(realpath "${BIN:-.build/debug/mirror-agent}")
export PREFIX=${PREFIX:-lnk-}
WORK=$(mktemp -d /tmp/mirror-e2e-link.XXXXXX)
source e2e/lib.sh

LOCAL_PORT=18001
PARIS_API=http://10.99.1.2:18002
# The emulator accepts one bearer token: the administrator's, and the one its emulated token
# controller gives the ServiceAccount. A request without it is refused (401).
PARIS_TOKEN=paris-e2e-$RANDOM$RANDOM
SERVICE_CIDR=10.112.64.0/20
GATEWAY_PORTS=20000-29999
LINKS=/apis/multicluster.linkerd.io/v1alpha3/namespaces/mirror-agent/links
SECRETS=/api/v1/namespaces/mirror-agent/secrets
SERVICES=/api/v1/namespaces/default/services
SLICES=/apis/discovery.k8s.io/v1/namespaces/default/endpointslices
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
# succeeds NAME COMMAND...: the command must exit 0 (its output shown on failure).
succeeds() {
  local name=$1; shift
  local got
  if got=$("$@" 2>&1); then pass "$name"; else fail "$name" "exit status $?: $got"; fi
}

# A python3 with PyYAML for e2e/kube-apply.py: the first python3 (kmock's), else Debian's.
APPLY_PYTHON=
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c "import yaml" 2>/dev/null; then APPLY_PYTHON=$(command -v "$candidate"); break; fi
done
if [ -z "$APPLY_PYTHON" ]; then echo "e2e link: needs PyYAML for e2e/kube-apply.py (apt-get install python3-yaml)" >&2; exit 1; fi
# apply_to paris|london < YAML: kubectl apply, from london-node (where kubectl would run).
apply_to() {
  case "$1" in
    paris) node "$APPLY_PYTHON" e2e/kube-apply.py --server "$PARIS_API" --token "$PARIS_TOKEN" --skip-kind Namespace ;;
    london) node "$APPLY_PYTHON" e2e/kube-apply.py --server "http://127.0.0.1:$LOCAL_PORT" ;;
  esac
}
# paris METHOD PATH [JSON]: one request to paris's API server from london-node, with the token.
paris() {
  local method=$1 path=$2 body=${3:-} type=application/json
  [ "$method" = PATCH ] && type=application/merge-patch+json
  node curl -sS --fail-with-body --max-time 5 -X "$method" -H "Content-Type: $type" -H "Authorization: Bearer $PARIS_TOKEN" \
    ${body:+--data-binary "$body"} "$PARIS_API$path"
}
# json EXPRESSION: a python expression over the JSON document `o` on stdin.
json() { python3 -c "import json, sys; o = json.load(sys.stdin); print($1)"; }
# kubeconfig_with_token FILE CLUSTER SERVER TOKEN NAMESPACE
kubeconfig_with_token() {
  cat >"$1" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: $2
  cluster: {server: "$3"}
users:
- name: admin
  user: {token: $4}
contexts:
- name: $2
  context: {cluster: $2, user: admin, namespace: $5}
current-context: $2
KUBECONFIG
}

feed_dump() { node "$BIN" dump --feed --admin-socket "$WORK/feed.sock"; }
feed_dump_matches() { feed_dump | grep -Eq -- "$1"; }
paris_feed_dump() { ip netns exec "$PGW" "$BIN" dump --feed --admin-socket "$WORK/paris-feed.sock"; }
paris_gw_dump() { ip netns exec "$PGW" "$BIN" dump --admin-socket "$WORK/paris-gw.sock"; }
agent_dump() { node "$BIN" dump --admin-socket "$WORK/admin.sock"; }
curl_paris() { pod curl -sS --max-time 2 "http://$NAME/"; }
answers() { curl_paris 2>/dev/null | grep -q "greetings from paris"; }
check_links() { node "$BIN" check --links --kubeconfig "$WORK/local.kubeconfig" --allow-plain-http --request-timeout 5; }

e2e/topology.sh up >/dev/null
make_certs
start_upstream

echo "== emulated API servers: paris's in paris-gw ($PARIS_API, token required), London's in london-node"
start_kmock_at "$PGW" paris 10.99.1.2 18002 --token "$PARIS_TOKEN"
start_kmock local "$LOCAL_PORT" --namespaces mirror-agent,default --service-cidr "$SERVICE_CIDR"
kubeconfig_with_token "$WORK/paris-admin.kubeconfig" paris "$PARIS_API" "$PARIS_TOKEN" mirror-agent
write_kubeconfig "$WORK/local.kubeconfig" local "http://127.0.0.1:$LOCAL_PORT" mirror-agent
expect "paris's API server refuses a request without its token" "401" \
  node curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "$PARIS_API$SERVICES"

echo "== 1. mirror-agent link --remote-rbac, applied in paris"
node "$BIN" link --remote-rbac >"$WORK/remote-rbac.yaml"
if apply_to paris <"$WORK/remote-rbac.yaml" >"$WORK/apply-paris.out" 2>&1 && grep -q "^secret/mirror-agent-remote-token created" "$WORK/apply-paris.out"; then
  pass "applied in paris: $(grep -c . "$WORK/apply-paris.out") objects ($(grep -c created "$WORK/apply-paris.out") created; the Namespace skipped: the emulator has every namespace)"
else
  fail "apply in paris" "$(cat "$WORK/apply-paris.out")"
fi
expect "paris has ServiceAccount mirror-agent/mirror-agent-remote" "mirror-agent-remote" \
  paris GET /api/v1/namespaces/mirror-agent/serviceaccounts/mirror-agent-remote
clusterrole_rules() { paris GET /apis/rbac.authorization.k8s.io/v1/clusterroles/mirror-agent-remote | json 'o["rules"]'; }
expect "paris has ClusterRole mirror-agent-remote (get, list, watch services and endpointslices)" \
  "[{'apiGroups': [''], 'resources': ['services'], 'verbs': ['get', 'list', 'watch']}, {'apiGroups': ['discovery.k8s.io'], 'resources': ['endpointslices'], 'verbs': ['get', 'list', 'watch']}]" \
  clusterrole_rules
expect "paris has ClusterRoleBinding mirror-agent-remote to that ServiceAccount" "mirror-agent-remote" \
  paris GET /apis/rbac.authorization.k8s.io/v1/clusterrolebindings/mirror-agent-remote
link_paris() {
  node "$BIN" link --kubeconfig "$WORK/paris-admin.kubeconfig" --cluster-name paris --gateway-address 10.99.1.2 --allow-plain-http --timeout 5
}
expect "before the token controller has run, mirror-agent link says the token is not issued yet" "has no token yet" link_paris
# The token controller (which kmock does not run) fills in the ServiceAccount's token Secret.
paris PATCH "$SECRETS/mirror-agent-remote-token" "{\"data\":{\"token\":\"$(printf %s "$PARIS_TOKEN" | base64 -w0)\",
  \"namespace\":\"$(printf mirror-agent | base64 -w0)\"}}" >/dev/null

echo "== 2. mirror-agent link --kubeconfig paris, applied in London"
if link_paris >"$WORK/link-paris.yaml" 2>"$WORK/link-paris.err"; then
  pass "mirror-agent link printed the Link and its Secret ($(grep -c '^kind:' "$WORK/link-paris.yaml") objects)"
else
  fail "mirror-agent link" "$(cat "$WORK/link-paris.err")"
fi
expect "it warns that paris's API server is plain HTTP" "plain HTTP" cat "$WORK/link-paris.err"
if apply_to london <"$WORK/link-paris.yaml" >"$WORK/apply-london.out" 2>&1 && grep -q "^link/paris created" "$WORK/apply-london.out"; then
  pass "applied in London: $(xargs <"$WORK/apply-london.out")"
else
  fail "apply in London" "$(cat "$WORK/apply-london.out")"
fi
link_field() { kube "$LOCAL_PORT" GET "$LINKS/paris" | json "$1"; }
expect "London has Link mirror-agent/paris to gateway 10.99.1.2" "10.99.1.2" link_field 'o["spec"]["gatewayAddress"]'
expect "its probe is GET /ready on 4191" "/ready 4191" link_field 'o["spec"]["probeSpec"]["path"], o["spec"]["probeSpec"]["port"]'
secret_kubeconfig() {
  kube "$LOCAL_PORT" GET "$SECRETS/$(link_field 'o["spec"]["clusterCredentialsSecret"]')" \
    | json '__import__("base64").b64decode(o["data"]["kubeconfig"]).decode()'
}
expect "London has the Link's credentials Secret: a kubeconfig for $PARIS_API" "$PARIS_API" secret_kubeconfig
expect "with the ServiceAccount's token" "$PARIS_TOKEN" secret_kubeconfig

echo "== 3. paris's feed (--exports kubernetes) and gateway; London's feed and agent"
start_paris_kube_feed "$WORK/paris-admin.kubeconfig" --gateway-port-range "$GATEWAY_PORTS"
start_paris_gateway_for_pods
start_kube_feed
start_agent a
wait_for "the first state" bash -c "ip netns exec $NODE $BIN dump --admin-socket $WORK/admin.sock -o json | grep -q '\"ready\":true'"
if wait_for "the Link connected" feed_dump_matches "^mirror-agent/paris +paris +connected +0 "; then
  pass "dump --feed (London): the Link is connected, 0 services"
else
  fail "Link connected" "$(feed_dump 2>&1)"
fi

echo "== 4. Service default/bar exported in paris (label only, no gateway port)"
# What London's feed publishes from here on, as its agents see it (for the figures).
node curl -sSN --max-time 60 --cacert "$WORK/tls/ca.crt" --cert "$WORK/tls/agent.crt" --key "$WORK/tls/agent.key" \
  "https://127.0.0.1:$FEED_PORT/v1/watch" >"$WORK/watch.out" 2>"$WORK/watch.log" &
echo $! >"$WORK/watch.pid"
wait_for "the watch's snapshot" grep -q '"type":"snapshot"' "$WORK/watch.out"
start=$(date +%s%N)
paris POST "$SERVICES" '{"apiVersion":"v1","kind":"Service",
  "metadata":{"name":"bar","namespace":"default","labels":{"mirror.linkerd.io/exported":"true"}},
  "spec":{"type":"ClusterIP","ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":8080}]}}' >/dev/null
paris POST "$SLICES" '{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",
  "metadata":{"name":"bar-abc12","namespace":"default","labels":{"kubernetes.io/service-name":"bar"}},
  "addressType":"IPv4","endpoints":[{"addresses":["10.20.1.5"],"conditions":{"ready":true}}],
  "ports":[{"name":"http","protocol":"TCP","port":8080}]}' >/dev/null
if reach_ms=$(within "$start" 30000 answers); then
  pass "curl from the london pod reaches the paris pod by name ($NAME)"
else
  fail "curl by name" "after 30 s: $(curl_paris 2>&1)"
fi

echo "== what each part did"
annotation() { paris GET "$SERVICES/bar" | json 'o["metadata"].get("annotations", {}).get("mirror-agent.io/gateway-ports")'; }
port=$(annotation 2>/dev/null | sed -n 's/^http=\([0-9]*\)$/\1/p')
if [ -n "$port" ] && [ "$port" -ge "${GATEWAY_PORTS%-*}" ] && [ "$port" -le "${GATEWAY_PORTS#*-}" ]; then
  pass "paris's feed annotated bar with mirror-agent.io/gateway-ports http=$port (in $GATEWAY_PORTS)"
else
  fail "gateway-port annotation" "$(annotation 2>&1)"
fi
port=${port:-none}
expect_re "paris's gateway programs port $port to the paris pod 10.20.1.5:8080" "$port.*10\.20\.1\.5:8080" paris_gw_dump
local_field() { kube "$LOCAL_PORT" GET "$SERVICES/$1" | json "$2"; }
ip=$(local_field bar-paris 'o["spec"]["clusterIP"]' 2>/dev/null || true)
if python3 -c "import ipaddress, sys; sys.exit(ipaddress.ip_address(sys.argv[1]) not in ipaddress.ip_network(sys.argv[2]))" "${ip:-none}" "$SERVICE_CIDR" 2>/dev/null; then
  pass "London's feed created mirror Service default/bar-paris, ClusterIP $ip allocated by London's API server ($SERVICE_CIDR)"
else
  fail "mirror Service" "'$ip' is not in $SERVICE_CIDR: $(kube "$LOCAL_PORT" GET "$SERVICES" 2>&1)"
fi
getent_first() { pod getent hosts "$1" | awk '{print $1, $2; exit}'; }
expect "getent hosts bar-paris in the pod returns that ClusterIP" "$ip $NAME" getent_first bar-paris
expect "curl http://$NAME/ from the pod" "greetings from paris" curl_paris
expect_re "London's agent sends bar-paris to paris's gateway on port $port" "10\.99\.1\.2:$port" agent_dump
expect_re "dump --feed (London): the Link connected with 1 service" "^mirror-agent/paris +paris +connected +1 " feed_dump
expect_re "dump --feed (London): gateway probe of 10.99.1.2 alive" "^mirror-agent/paris +10\.99\.1\.2 +alive " feed_dump
if out=$(check_links 2>&1); then pass "mirror-agent check --links passes"; else fail "check --links" "$out"; fi
expect_re "check --links: paris's credentials valid" "^√ link paris: credentials .*kubeconfig valid" echo "$out"
expect_re "check --links: paris's API reachable" "^√ link paris: remote API +$PARIS_API answered" echo "$out"
expect_re "check --links: paris's API grants list on Services and EndpointSlices" "^√ link paris: remote access +may list services and endpointslices" echo "$out"
expect_re "check --links: paris's gateway probe" "^√ link paris: gateway 10\.99\.1\.2:4191 GET /ready: 200" echo "$out"

# London's feed may see bar before paris's feed has annotated it: until then it publishes the
# Link's gatewayPort (4143), where paris's gateway does not listen.
early=$(grep '"type":"upsertService"' "$WORK/watch.out" | grep '"name":"bar"' | grep -cv '"gatewayPort"' || true)

echo
echo "figures (measured, not asserted): Service and EndpointSlice created in paris -> the london pod's curl by name succeeds: ${reach_ms:-n/a} ms;" \
  "bar published by London's feed before its gateway port was known (the Link's gatewayPort 4143): $early time(s)"
echo "e2e link: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
