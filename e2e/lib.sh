# Shared by scripts/demo.sh and e2e/run.sh: start and stop the pieces of the two-cluster
# system inside the namespaces e2e/topology.sh builds. Source it; set BIN (the mirror-agent
# binary) and WORK (a scratch directory) first.

PREFIX=${PREFIX:-ma-}
NODE=${PREFIX}london-node
POD=${PREFIX}london-pod
PGW=${PREFIX}paris-gw
BGW=${PREFIX}berlin-gw
INTRUDER=${PREFIX}intruder
# Paris's own feed (it imports nothing; it serves its exports to its gateway), in paris-gw.
PARIS_FEED_PORT=8444
DNS_ADDRESS=169.254.20.11
FEED_PORT=8443
UPSTREAM=127.0.0.1:5354

# Shorthands for foreground commands. Background processes are started with `ip netns exec`
# directly, so that $! is the process itself (ip execs it) and can be signalled.
node() { ip netns exec "$NODE" "$@"; }
pod() { ip netns exec "$POD" "$@"; }

# A real unbound as the cluster's own DNS, answering names the agent does not own.
start_upstream() {
  cat >"$WORK/unbound.conf" <<CONF
server:
  interface: ${UPSTREAM%:*}@${UPSTREAM#*:}
  do-daemonize: no
  use-syslog: no
  username: ""
  chroot: ""
  directory: "$WORK"
  pidfile: ""
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  # No internet here: unbound is authoritative for everything, like a cluster DNS that
  # knows the local services and answers NXDOMAIN for the rest.
  local-zone: "." static
  local-data: "www.example.org. 300 IN A 192.0.2.80"
  local-data: "kubernetes.default.svc.cluster.local. 30 IN A 10.96.0.1"
CONF
  ip netns exec "$NODE" unbound -c "$WORK/unbound.conf" >"$WORK/unbound.log" 2>&1 &
  echo $! >"$WORK/unbound.pid"
  wait_for "unbound" node dig +short +time=1 +tries=1 -p "${UPSTREAM#*:}" @"${UPSTREAM%:*}" www.example.org
}

# Certificates from one CA: the feed's server certificate and the agent's client certificate.
make_certs() {
  local dir=$WORK/tls
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=mirror-agent demo CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  for who in feed agent gateway; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=mirror-$who" \
      -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$dir/$who.key" -out "$dir/$who.csr" 2>/dev/null
    openssl x509 -req -in "$dir/$who.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
      -copy_extensions copy -out "$dir/$who.crt" 2>/dev/null
  done
}

start_feed() {
  ip netns exec "$NODE" "$BIN" feed --source "file:$WORK/state.yaml" --listen "127.0.0.1:$FEED_PORT" --poll-interval 100 --admin-socket "$WORK/feed.sock" \
    --tls-cert "$WORK/tls/feed.crt" --tls-key "$WORK/tls/feed.key" --client-ca "$WORK/tls/ca.crt" >>"$WORK/feed.log" 2>&1 &
  echo $! >"$WORK/feed.pid"
  wait_for "the feed" node bash -c "exec 3<>/dev/tcp/127.0.0.1/$FEED_PORT"
}

stop_feed() {
  kill "$(cat "$WORK/feed.pid")" 2>/dev/null || true
  wait "$(cat "$WORK/feed.pid")" 2>/dev/null || true
  wait_for "the feed's port to close" bash -c "! ip netns exec $NODE ss -Hltn 'sport = :$FEED_PORT' | grep -q ."
}

# Paris's feed: an empty mirror state (paris imports nothing here) and its exports, which its
# gateway follows over mutual TLS like any agent.
start_paris_feed() {
  [ -e "$WORK/paris-state.yaml" ] || echo "clusterDomain: cluster.local" >"$WORK/paris-state.yaml"
  ip netns exec "$PGW" "$BIN" feed --source "file:$WORK/paris-state.yaml" --exports "file:$WORK/paris-exports.yaml" --admin-socket "$WORK/paris-feed.sock" \
    --listen "127.0.0.1:$PARIS_FEED_PORT" --poll-interval 100 \
    --tls-cert "$WORK/tls/feed.crt" --tls-key "$WORK/tls/feed.key" --client-ca "$WORK/tls/ca.crt" >>"$WORK/paris-feed.log" 2>&1 &
  echo $! >"$WORK/paris-feed.pid"
  wait_for "paris's feed" ip netns exec "$PGW" bash -c "exec 3<>/dev/tcp/127.0.0.1/$PARIS_FEED_PORT"
}

# start_gateway paris|berlin: `mirror-agent gateway` on that cluster's gateway node. Paris's
# follows its feed (https, client certificate), berlin's a file. Only London's node (which
# masquerades toward them) is an allowed source.
start_gateway() {
  local ns source
  case "$1" in
    paris) ns=$PGW; source=(--feed "https://127.0.0.1:$PARIS_FEED_PORT" --tls-cert "$WORK/tls/gateway.crt"
             --tls-key "$WORK/tls/gateway.key" --ca "$WORK/tls/ca.crt" --state-dir "$WORK/paris-gw-state"
             --allow-source 10.99.1.0/24 --probe-listen 10.99.1.2:4191) ;;
    berlin) ns=$BGW; source=(--feed "file:$WORK/berlin-exports.yaml" --allow-source 10.99.2.0/24 --probe-listen 10.99.2.2:4191) ;;
  esac
  ip netns exec "$ns" "$BIN" gateway "${source[@]}" --admin-socket "$WORK/$1-gw.sock" \
    --http-listen 127.0.0.1:9154 --drift-check-interval 2 --feed-max-backoff 1 >>"$WORK/$1-gw.log" 2>&1 &
  echo $! >"$WORK/$1-gw.pid"
  wait_for "$1's gateway tables" grep -q "gateway tables in sync" "$WORK/$1-gw.log"
}

# set_exports paris|berlin SED_EXPRESSION: edit that cluster's exports file in place (atomically).
set_exports() {
  sed -e "$2" "$WORK/$1-exports.yaml" >"$WORK/$1-exports.yaml.new"
  mv "$WORK/$1-exports.yaml.new" "$WORK/$1-exports.yaml"
}

# start_agent NAME: one agent; several may run at once during a restart (SO_REUSEPORT).
start_agent() {
  ip netns exec "$NODE" "$BIN" run --feed "https://127.0.0.1:$FEED_PORT" \
    --tls-cert "$WORK/tls/agent.crt" --tls-key "$WORK/tls/agent.key" --ca "$WORK/tls/ca.crt" \
    --state-dir "$WORK/agent-state" --admin-socket "$WORK/admin.sock" \
    --dns-address "$DNS_ADDRESS" --dns-listen "$DNS_ADDRESS:53" --upstream "$UPSTREAM" \
    --http-listen 127.0.0.1:9153 --drift-check-interval 2 --feed-max-backoff 1 >>"$WORK/agent-$1.log" 2>&1 &
  echo $! >"$WORK/agent-$1.pid"
  # Ready when this agent (not another one sharing the port) has programmed its rules and
  # opened DNS with its records.
  wait_for "agent $1's rules" grep -q "nftables in sync" "$WORK/agent-$1.log"
  wait_for "agent $1's DNS" grep -q "DNS records loaded" "$WORK/agent-$1.log"
}

stop_agent() {
  kill -TERM "$(cat "$WORK/agent-$1.pid")" 2>/dev/null || true
  wait "$(cat "$WORK/agent-$1.pid")" 2>/dev/null || true
}

# set_state SED_EXPRESSION: edit the feed's state file in place (atomically, as an editor would).
set_state() {
  sed -e "$1" "$WORK/state.yaml" >"$WORK/state.yaml.new"
  mv "$WORK/state.yaml.new" "$WORK/state.yaml"
}

# --- Checks, shared by the e2e scripts (each sets failures=0 passed=0 once its setup ran, so
# that a setup failure keeps the logs).
pass() { echo "ok    $1"; passed=$((passed + 1)); }
fail() { echo "FAIL  $1: $2"; failures=$((failures + 1)); }
# expect NAME WANT COMMAND...: the command's output must contain WANT.
expect() {
  local name=$1 want=$2; shift 2
  local got
  got=$("$@" 2>&1) || true
  if [[ "$got" == *"$want"* ]]; then pass "$name"; else fail "$name" "wanted '$want', got '$got'"; fi
}
# expect_re NAME REGEX COMMAND...: a line of the command's output must match the extended REGEX.
expect_re() {
  local name=$1 want=$2; shift 2
  local got
  got=$("$@" 2>&1) || true
  if grep -Eq -- "$want" <<<"$got"; then pass "$name"; else fail "$name" "wanted /$want/, got '$got'"; fi
}
# reject NAME UNWANTED COMMAND...: the command's output must not contain UNWANTED.
reject() {
  local name=$1 unwanted=$2; shift 2
  local got
  got=$("$@" 2>&1) || true
  if [[ "$got" != *"$unwanted"* ]]; then pass "$name"; else fail "$name" "did not want '$unwanted', got '$got'"; fi
}
# within START LIMIT COMMAND...: retries COMMAND (quiet) until it succeeds, until LIMIT ms after
# START (date +%s%N, taken before the action); prints the ms from START to the success, or fails.
within() {
  local start=$1 limit=$2; shift 2
  while :; do
    if "$@" >/dev/null 2>&1; then echo $(( ($(date +%s%N) - start) / 1000000 )); return 0; fi
    [ $(( ($(date +%s%N) - start) / 1000000 )) -lt "$limit" ] || return 1
    sleep 0.02
  done
}

# wait_for WHAT COMMAND...: retries for up to 10 s.
wait_for() {
  local what=$1; shift
  for _ in $(seq 1 100); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $what" >&2
  return 1
}

# --- The Kubernetes source (e2e/kubernetes.sh): emulated API servers in london-node, and the
# feed following them.
KMOCK_HARNESS=${KMOCK_HARNESS:-$(dirname "${BASH_SOURCE[0]}")/../Tests/MirrorKubernetesTests/kmock_harness.py}
KUBE_FEED_HTTP_PORT=9155

# start_kmock NAME PORT [HARNESS ARGUMENTS...]: an emulated Kubernetes API server
# (kmock_harness.py, plain HTTP, any token) on 127.0.0.1:PORT in london-node. Waits up to 30 s
# for it to print LISTENING (python's start can take seconds on a loaded machine).
start_kmock() {
  local name=$1 port=$2; shift 2
  ip netns exec "$NODE" python3 "$KMOCK_HARNESS" --port "$port" --ignore-stdin "$@" </dev/null >>"$WORK/kmock-$name.log" 2>&1 &
  echo $! >"$WORK/kmock-$name.pid"
  for _ in $(seq 1 300); do
    grep -q "LISTENING $port" "$WORK/kmock-$name.log" 2>/dev/null && return 0
    kill -0 "$(cat "$WORK/kmock-$name.pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "the $name API server did not start" >&2
  return 1
}

# stop_kmock NAME: the API server goes away at once (SIGKILL), as when it becomes unreachable.
stop_kmock() {
  kill -KILL "$(cat "$WORK/kmock-$1.pid")" 2>/dev/null || true
  wait "$(cat "$WORK/kmock-$1.pid")" 2>/dev/null || true
  rm -f "$WORK/kmock-$1.pid"
}

# kube PORT METHOD PATH [JSON]: one request to the API server on 127.0.0.1:PORT in
# london-node, the response body on stdout; fails on an HTTP error. PATCH is a merge patch.
kube() {
  local port=$1 method=$2 path=$3 body=${4:-} type=application/json
  [ "$method" = PATCH ] && type=application/merge-patch+json
  ip netns exec "$NODE" curl -sS --fail-with-body --max-time 5 -X "$method" -H "Content-Type: $type" \
    ${body:+--data-binary "$body"} "http://127.0.0.1:$port$path"
}

# write_kubeconfig FILE CLUSTER SERVER [NAMESPACE]: a kubeconfig with a token user.
write_kubeconfig() {
  cat >"$1" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: $2
  cluster: {server: "$3"}
users:
- name: mirror
  user: {token: e2e-token}
contexts:
- name: $2
  context: {cluster: $2, user: mirror${4:+, namespace: $4}}
current-context: $2
KUBECONFIG
}

# start_kube_feed [FEED ARGUMENTS...]: London's feed with --source kubernetes, following the
# cluster of $WORK/local.kubeconfig (plain HTTP allowed: emulated clusters), serving agents as
# start_feed does (TLS, client certificates). Admin socket $WORK/feed.sock, probes and
# /metrics on 127.0.0.1:$KUBE_FEED_HTTP_PORT.
start_kube_feed() {
  ip netns exec "$NODE" "$BIN" feed --source kubernetes --kubeconfig "$WORK/local.kubeconfig" --allow-plain-http \
    --listen "127.0.0.1:$FEED_PORT" --tls-cert "$WORK/tls/feed.crt" --tls-key "$WORK/tls/feed.key" --client-ca "$WORK/tls/ca.crt" \
    --admin-socket "$WORK/feed.sock" --http-listen "127.0.0.1:$KUBE_FEED_HTTP_PORT" "$@" >>"$WORK/feed.log" 2>&1 &
  echo $! >"$WORK/feed.pid"
  wait_for "the feed" node bash -c "exec 3<>/dev/tcp/127.0.0.1/$FEED_PORT"
}

# start_paris_gateway_for_pods: paris's gateway as start_gateway paris starts it, also
# admitting London's pod range (10.10.0.0/24): the Kubernetes source does not masquerade, so
# connections arrive from the pods' own addresses (deploy/README.md: --allow-source lists the
# importing clusters' node and pod ranges).
start_paris_gateway_for_pods() {
  ip netns exec "$PGW" "$BIN" gateway --feed "https://127.0.0.1:$PARIS_FEED_PORT" --tls-cert "$WORK/tls/gateway.crt" \
    --tls-key "$WORK/tls/gateway.key" --ca "$WORK/tls/ca.crt" --state-dir "$WORK/paris-gw-state" \
    --allow-source 10.99.1.0/24 --allow-source 10.10.0.0/24 --probe-listen 10.99.1.2:4191 \
    --admin-socket "$WORK/paris-gw.sock" --http-listen 127.0.0.1:9154 --drift-check-interval 2 --feed-max-backoff 1 \
    >>"$WORK/paris-gw.log" 2>&1 &
  echo $! >"$WORK/paris-gw.pid"
  wait_for "paris's gateway tables" grep -q "gateway tables in sync" "$WORK/paris-gw.log"
}

# --- Linking two clusters (e2e/link.sh): an API server that another namespace reaches, and
# paris's feed with --source kubernetes --exports kubernetes.

# start_kmock_at NETNS NAME ADDRESS PORT [HARNESS ARGUMENTS...]: as start_kmock, but in NETNS
# on ADDRESS:PORT, so that other namespaces can reach it (paris's API server on paris-gw's
# 10.99.1.2, followed by London's feed through a Link and by paris's own feed).
start_kmock_at() {
  local ns=$1 name=$2 address=$3 port=$4; shift 4
  ip netns exec "$ns" python3 "$KMOCK_HARNESS" --host "$address" --port "$port" --ignore-stdin "$@" </dev/null >>"$WORK/kmock-$name.log" 2>&1 &
  echo $! >"$WORK/kmock-$name.pid"
  for _ in $(seq 1 300); do
    grep -q "LISTENING $port" "$WORK/kmock-$name.log" 2>/dev/null && return 0
    kill -0 "$(cat "$WORK/kmock-$name.pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "the $name API server did not start" >&2
  return 1
}

# start_paris_kube_feed KUBECONFIG [FEED ARGUMENTS...]: paris's feed in paris-gw, following
# paris's own cluster (--source kubernetes) and serving its exports from its exported Services
# (--exports kubernetes) to paris's gateway, over TLS like start_paris_feed. Admin socket
# $WORK/paris-feed.sock.
start_paris_kube_feed() {
  local kubeconfig=$1; shift
  ip netns exec "$PGW" "$BIN" feed --source kubernetes --exports kubernetes --kubeconfig "$kubeconfig" --allow-plain-http \
    --cluster-name paris --gateway-address 10.99.1.2 --listen "127.0.0.1:$PARIS_FEED_PORT" \
    --tls-cert "$WORK/tls/feed.crt" --tls-key "$WORK/tls/feed.key" --client-ca "$WORK/tls/ca.crt" \
    --admin-socket "$WORK/paris-feed.sock" "$@" >>"$WORK/paris-feed.log" 2>&1 &
  echo $! >"$WORK/paris-feed.pid"
  wait_for "paris's feed" ip netns exec "$PGW" bash -c "exec 3<>/dev/tcp/127.0.0.1/$PARIS_FEED_PORT"
}
