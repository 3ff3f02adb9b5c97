#!/usr/bin/env bash
# Transparent DNS (`run --intercept-cluster-dns`) end to end, beside an emulated kube-proxy.
#
# The pod keeps Kubernetes' usual resolv.conf (nameserver = the kube-dns ClusterIP
# 10.96.0.10). kube-proxy is emulated in london-node as it writes its rules — in nftables
# mode (a service map, a chain per service and endpoint) and in iptables mode (iptables-nft:
# KUBE-SERVICES, KUBE-SVC-*, KUBE-SEP-* DNAT) — sending 10.96.0.10 and the kube-dns-upstream
# ClusterIP 10.96.0.11 to the "cluster DNS": unbound in a namespace of its own (10.97.0.2),
# which knows ordinary names but no mirrored one, so every answer says who gave it.
#
# Checked for each mode: the agent answers mirrored and ordinary names on the ClusterIP
# (UDP and TCP); `kill -9` of the agent → the pod's queries reach the cluster DNS again by the
# kernel alone within 1 s (gap measured); a restart → the agent answers again; a rolling
# restart (new agent beside the old, old SIGTERMed) under a query loop → no failed query.
# Also: an agent with no state yet answers on the link-local address by forwarding, and does
# not divert the ClusterIP until its first state. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then echo "e2e transparent: skipped (needs root)"; exit 0; fi
command -v iptables >/dev/null || { echo "e2e transparent: iptables missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
BIN=$(realpath "${BIN:-.build/debug/mirror-agent}")
export PREFIX=${PREFIX:-tdns-}
WORK=$(mktemp -d /tmp/mirror-e2e-dns.XXXXXX)
source e2e/lib.sh
CDNS=${PREFIX}cluster-dns
KUBE_DNS=10.96.0.10
KUBE_DNS_UPSTREAM=10.96.0.11
CLUSTER_DNS_POD=10.97.0.2

cleanup() {
  for pidfile in "$WORK"/*.pid; do
    [ -e "$pidfile" ] || continue
    kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
    wait "$(cat "$pidfile")" 2>/dev/null || true
  done
  ip netns del "$CDNS" 2>/dev/null || true
  e2e/topology.sh down >/dev/null 2>&1 || true
  if [ "${failures:-1}" -ne 0 ]; then
    echo "--- logs (kept in $WORK)"; tail -n 25 "$WORK"/*.log || true
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0 passed=0
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# The pod's one-try lookups. `ask NAME [dig options]` prints the answers or the status.
ask() { local name=$1; shift; pod dig +tries=1 +time=1 "$@" "$name" | awk '/status:/ {s=$6} /^[^;].*[ \t]IN[ \t]+(A|TXT)[ \t]/ {print $NF} END {print s}' | tr -d ',"' | xargs; }

# --- the cluster DNS and kube-proxy ---------------------------------------------------------

start_cluster_dns() {
  ip netns add "$CDNS"
  ip link add cdns0 netns "$NODE" type veth peer name eth0 netns "$CDNS"
  node ip addr add 10.97.0.1/24 dev cdns0; node ip link set cdns0 up
  ip netns exec "$CDNS" ip addr add "$CLUSTER_DNS_POD/24" dev eth0
  ip netns exec "$CDNS" ip link set eth0 up; ip netns exec "$CDNS" ip link set lo up
  ip netns exec "$CDNS" ip route add default via 10.97.0.1
  # ClusterIPs are routed like any remote address (a node's default route): the route lookup
  # comes before kube-proxy's DNAT in the output path.
  node ip route add 10.96.0.0/16 via "$CLUSTER_DNS_POD"
  cat >"$WORK/cluster-dns.conf" <<CONF
server:
  interface: $CLUSTER_DNS_POD
  do-daemonize: no
  use-syslog: no
  username: ""
  chroot: ""
  directory: "$WORK"
  pidfile: ""
  access-control: 0.0.0.0/0 allow
  local-zone: "." static
  local-data: "www.example.org. 30 IN A 192.0.2.80"
  local-data: "kubernetes.default.svc.cluster.local. 30 IN A 10.96.0.1"
  local-data: "who.dns.test. 0 IN TXT cluster-dns"
CONF
  ip netns exec "$CDNS" unbound -c "$WORK/cluster-dns.conf" >"$WORK/cluster-dns.log" 2>&1 &
  echo $! >"$WORK/cluster-dns.pid"
  wait_for "the cluster DNS" node dig +short +time=1 +tries=1 @"$CLUSTER_DNS_POD" www.example.org
}

# kube-proxy, nftables mode: what it writes for the kube-dns and kube-dns-upstream Services.
kube_proxy_nftables() {
  node nft -f - <<NFT
table ip kube-proxy {
  map service-ips {
    type ipv4_addr . inet_proto . inet_service : verdict
    elements = { $KUBE_DNS . udp . 53 : goto service-dns-udp, $KUBE_DNS . tcp . 53 : goto service-dns-tcp,
                 $KUBE_DNS_UPSTREAM . udp . 53 : goto service-dns-udp, $KUBE_DNS_UPSTREAM . tcp . 53 : goto service-dns-tcp }
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
  chain service-dns-udp {
    numgen random mod 1 vmap { 0 : goto endpoint-dns-udp }
  }
  chain service-dns-tcp {
    numgen random mod 1 vmap { 0 : goto endpoint-dns-tcp }
  }
  chain endpoint-dns-udp {
    meta l4proto udp dnat to $CLUSTER_DNS_POD:53
  }
  chain endpoint-dns-tcp {
    meta l4proto tcp dnat to $CLUSTER_DNS_POD:53
  }
}
NFT
}

# kube-proxy, iptables mode (iptables-nft, as current distributions run it).
kube_proxy_iptables() {
  local ipt=(ip netns exec "$NODE" iptables -w -t nat)
  "${ipt[@]}" -N KUBE-SERVICES
  "${ipt[@]}" -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
  "${ipt[@]}" -A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
  for proto in udp tcp; do
    "${ipt[@]}" -N "KUBE-SVC-DNS-$proto"
    "${ipt[@]}" -N "KUBE-SEP-DNS-$proto"
    for ip in "$KUBE_DNS" "$KUBE_DNS_UPSTREAM"; do
      "${ipt[@]}" -A KUBE-SERVICES -d "$ip/32" -p "$proto" --dport 53 -j "KUBE-SVC-DNS-$proto"
    done
    "${ipt[@]}" -A "KUBE-SVC-DNS-$proto" -j "KUBE-SEP-DNS-$proto"
    "${ipt[@]}" -A "KUBE-SEP-DNS-$proto" -p "$proto" -j DNAT --to-destination "$CLUSTER_DNS_POD:53"
  done
}

remove_kube_proxy() {
  node nft delete table ip kube-proxy 2>/dev/null || true
  node iptables -w -t nat -F 2>/dev/null || true
  node iptables -w -t nat -X 2>/dev/null || true
}

# --- the agent --------------------------------------------------------------------------------

# start_dns_agent NAME [--feed SOURCE]: transparent mode, link-local default, no --dns-listen.
start_dns_agent() {
  local name=$1 feed=${2:-file:$WORK/state.yaml}
  ip netns exec "$NODE" "$BIN" run --feed "$feed" --intercept-cluster-dns "$KUBE_DNS" --upstream "$KUBE_DNS_UPSTREAM:53" \
    --admin-socket "$WORK/admin.sock" --state-dir "$WORK/agent-state" --drift-check-interval 0 >>"$WORK/agent-$name.log" 2>&1 &
  echo $! >"$WORK/agent-$name.pid"
}

agent_intercepting() { grep -q "answering the cluster DNS address" "$WORK/agent-$1.log"; }

# query_loop SECONDS OUT: one query every 20 ms (each waits at most 1 s) for SECONDS; each line
# "sent-ms answered-ms answer" in OUT.
query_loop() {
  local until=$(( $(now_ms) + $1 * 1000 )) sent answer
  : >"$2"
  while [ "$(now_ms)" -lt "$until" ]; do
    sent=$(now_ms)
    answer=$(ask www.example.org)
    echo "$sent $(now_ms) $answer" >>"$2"
    sleep 0.02
  done
}

# --- the run ----------------------------------------------------------------------------------

e2e/topology.sh up >/dev/null
cp examples/two-clusters.yaml "$WORK/state.yaml"
start_cluster_dns
# The pod resolves like any Kubernetes pod: the kube-dns ClusterIP.
cat >"/etc/netns/$POD/resolv.conf" <<RESOLV
nameserver $KUBE_DNS
search default.svc.cluster.local svc.cluster.local cluster.local
options ndots:5 timeout:1 attempts:2
RESOLV

figures=()
for mode in nftables iptables; do
  echo "== kube-proxy in $mode mode"
  remove_kube_proxy
  "kube_proxy_$mode"
  expect "[$mode] before the agent, the pod's cluster DNS answers through kube-proxy" "cluster-dns" ask who.dns.test TXT
  expect "[$mode] and knows no mirrored name" "NXDOMAIN" ask bar-paris.default.svc.cluster.local

  start_dns_agent "a-$mode"
  wait_for "agent a intercepting" agent_intercepting "a-$mode"
  expect "[$mode] the agent answers a mirrored name on the ClusterIP (getent, the pod's resolv.conf)" \
    "10.112.0.10     bar-paris.default.svc.cluster.local" pod getent hosts bar-paris
  expect "[$mode] ... over TCP too" "10.112.0.10" ask bar-paris.default.svc.cluster.local +tcp
  expect "[$mode] ordinary names go through the agent to the upstream" "10.96.0.1" pod getent hosts kubernetes.default
  expect "[$mode] the link-local address answers too (the default listener)" "10.112.0.10" pod dig +short @"$DNS_ADDRESS" bar-paris.default.svc.cluster.local
  expect "[$mode] dump shows transparent mode" "transparent: answers $KUBE_DNS" node "$BIN" dump --admin-socket "$WORK/admin.sock"
  expect "[$mode] dump counts the queries the ClusterIP took" "$KUBE_DNS:53 (transparent)" node "$BIN" dump --admin-socket "$WORK/admin.sock"
  expect "[$mode] check: fail-open armed" "fail-open armed" node "$BIN" check --intercept-cluster-dns "$KUBE_DNS"

  # SIGKILL: no process acts; the kernel alone sends the next queries to the cluster DNS.
  query_loop 3 "$WORK/kill-$mode.txt" &
  loop=$!
  sleep 0.5
  killed=$(now_ms)
  kill -KILL "$(cat "$WORK/agent-a-$mode.pid")"
  wait "$(cat "$WORK/agent-a-$mode.pid")" 2>/dev/null || true
  wait "$loop"
  # The gap: from the kill to the answer of the first query sent after it. A query already in
  # the dead agent's socket is lost (the client retries after its timeout); counted apart.
  back=$(awk -v k="$killed" '$1 >= k && $3 == "192.0.2.80" {print $2; exit}' "$WORK/kill-$mode.txt")
  failed_after=$(awk -v k="$killed" '$1 >= k && $3 != "192.0.2.80"' "$WORK/kill-$mode.txt" | wc -l)
  in_flight=$(awk -v k="$killed" '$1 < k && $2 > k && $3 != "192.0.2.80"' "$WORK/kill-$mode.txt" | wc -l)
  if [ -n "$back" ] && [ $((back - killed)) -le 1000 ] && [ "$failed_after" -eq 0 ]; then
    pass "[$mode] kill -9: queries sent after it are answered by the cluster DNS $((back - killed)) ms after the kill, none failed"
  else
    fail "[$mode] kill -9 fail-open" "first answer after the kill at ${back:-none} (killed at $killed), $failed_after failed; $(head -c 400 "$WORK/kill-$mode.txt")"
  fi
  figures+=("$mode kill -9 -> answered by the cluster DNS: $((${back:-$killed} - killed)) ms; queries sent after the kill that failed: $failed_after; lost in flight at the kill: $in_flight")
  expect "[$mode] with the agent gone, the cluster DNS answers (getent)" "10.96.0.1" pod getent hosts kubernetes.default
  expect "[$mode] ... it is the cluster DNS answering" "cluster-dns" ask who.dns.test TXT

  started=$(now_ms)
  start_dns_agent "b-$mode"
  wait_for "agent b intercepting" agent_intercepting "b-$mode"
  for _ in $(seq 1 100); do [ "$(ask bar-paris.default.svc.cluster.local)" = "10.112.0.10 NOERROR" ] && break; sleep 0.02; done
  restarted=$(now_ms)
  expect "[$mode] restarted: the agent answers mirrored names again" "10.112.0.10" pod getent hosts bar-paris
  figures+=("$mode restart -> mirrored names answered: $((restarted - started)) ms after launch")

  # Rolling restart: c starts beside b (SO_REUSEPORT), b gets SIGTERM, queries never stop.
  : >"$WORK/roll-$mode.txt"
  ( for _ in $(seq 1 150); do echo "$(ask bar-paris.default.svc.cluster.local)" >>"$WORK/roll-$mode.txt"; sleep 0.02; done ) &
  loop=$!
  start_dns_agent "c-$mode"
  wait_for "agent c intercepting" agent_intercepting "c-$mode"
  kill -TERM "$(cat "$WORK/agent-b-$mode.pid")"
  wait "$(cat "$WORK/agent-b-$mode.pid")" 2>/dev/null || true
  wait "$loop"
  total=$(wc -l <"$WORK/roll-$mode.txt")
  bad=$(grep -vc "^10.112.0.10 NOERROR$" "$WORK/roll-$mode.txt" || true)
  if [ "$bad" -eq 0 ]; then pass "[$mode] rolling restart: $total queries, none failed"; else fail "[$mode] rolling restart" "$bad of $total failed: $(grep -v '^10.112.0.10 NOERROR$' "$WORK/roll-$mode.txt" | sort | uniq -c | head -3)"; fi
  figures+=("$mode rolling restart: $bad failed of $total")
  kill -TERM "$(cat "$WORK/agent-c-$mode.pid")"; wait "$(cat "$WORK/agent-c-$mode.pid")" 2>/dev/null || true
done

echo "== an agent with no state yet (feed unreachable, persisted state corrupt)"
make_certs
mkdir -p "$WORK/nostate"
printf '{"revision": 7, "epoch": "x", "state": {"clusterDomain": "cluster.local", "clus' >"$WORK/nostate/feed-state.json"
ip netns exec "$NODE" "$BIN" run --feed "https://127.0.0.1:$FEED_PORT" --tls-cert "$WORK/tls/agent.crt" --tls-key "$WORK/tls/agent.key" \
  --ca "$WORK/tls/ca.crt" --feed-max-backoff 1 --intercept-cluster-dns "$KUBE_DNS" --upstream "$KUBE_DNS_UPSTREAM:53" \
  --admin-socket "$WORK/admin.sock" --state-dir "$WORK/nostate" --drift-check-interval 0 >>"$WORK/agent-nostate.log" 2>&1 &
echo $! >"$WORK/agent-nostate.pid"
sleep 3
expect "the corrupt persisted state is reported" "feed-state.json" cat "$WORK/agent-nostate.log"
expect "before any state, the link-local address answers by forwarding" "192.0.2.80" pod dig +short +tries=1 +time=1 @"$DNS_ADDRESS" www.example.org
expect "... mirrored names are not known yet" "NXDOMAIN" ask bar-paris.default.svc.cluster.local @"$DNS_ADDRESS"
expect "... and the ClusterIP is not diverted (the cluster DNS answers it)" "cluster-dns" ask who.dns.test TXT
start_feed
wait_for "the first state" agent_intercepting nostate
expect "with its first state, the agent answers mirrored names on the link-local address" "10.112.0.10" pod dig +short @"$DNS_ADDRESS" bar-paris.default.svc.cluster.local
expect "... and on the ClusterIP" "10.112.0.10" pod getent hosts bar-paris

echo
echo "figures (measured, not asserted beyond the 1 s fail-open bound):"
for f in "${figures[@]}"; do echo "  $f"; done
echo "e2e transparent DNS: $passed passed, $failures failed"
[ "$failures" -eq 0 ]
