#!/usr/bin/env bash
# bench/conntrack.sh — the cost of a change that removes one target while a UDP flow is pinned
# to it and N unrelated conntrack entries exist (default 100,000), in a network namespace it
# creates. Side by side:
#   change        the agent's logged "nftables in sync" duration_ms: feed event to kernel, which
#                 must not grow with the conntrack table (target <= 5 ms)
#   cleanup       the agent's logged "moved stale flows" duration_ms: its ctnetlink cleanup,
#                 off the change's path (one kernel-filtered walk of the whole table)
#   flow moved    from the state file's rename to the pinned flow's first answer from the
#                 remaining target (the client sends every 20 ms)
#   reference     `conntrack -D` with the same filter (conntrack-tools: dumps and filters the
#                 table in user space)
#
#   bench/conntrack.sh [ENTRIES]          AGENT_BIN=... to measure another build; ROUNDS=5
# Needs root. Only addresses inside its own namespace are used.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "bench/conntrack.sh: needs root (network namespaces, nftables, conntrack)" >&2; exit 1; }
ENTRIES=${1:-100000}
ROUNDS=${ROUNDS:-5}
scripts/install-deps.sh >/dev/null
if [ -n "${AGENT_BIN:-}" ]; then BIN=$AGENT_BIN; else
    echo "== building (release)" >&2
    swift build -c release --product mirror-agent >/dev/null
    BIN="$PWD/.build/release/mirror-agent"
fi
NS=ctbench-$$
WORK=$(mktemp -d /tmp/conntrack-bench.XXXXXX)
cleanup() {
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo interrupted >&2; exit 130' INT TERM
in_ns() { ip netns exec "$NS" "$@"; }

ip netns add "$NS"
in_ns ip link set lo up
for a in 10.99.1.2 10.99.1.3 10.77.0.1; do in_ns ip addr add "$a/32" dev lo; done
# The mirrored ClusterIP needs a route before the output hook's DNAT rewrites it.
in_ns ip route add 10.112.0.0/16 dev lo
for a in 10.99.1.2 10.99.1.3; do
    in_ns python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 5300))
while True:
    d, p = s.recvfrom(2048)
    s.sendto(sys.argv[1].encode(), p)
' "$a" </dev/null >/dev/null 2>&1 &
done

state() { # state GATEWAY... — one UDP gateway-mode service over the given gateway addresses
    local list; list=$(printf '"%s",' "$@"); list="[${list%,}]"
    cat >"$WORK/state.new" <<YAML
clusters:
  - name: paris
    gateway: {addresses: $list, port: 4143}
services:
  - name: dns
    namespace: default
    cluster: paris
    mode: gateway
    ips: ["10.112.0.20"]
    ports: [{name: dns, protocol: UDP, port: 53, targetPort: 5300, gatewayPort: 5300}]
YAML
    mv "$WORK/state.new" "$WORK/state.yaml"
}
state 10.99.1.2 10.99.1.3
in_ns "$BIN" run --feed "file:$WORK/state.yaml" --no-dns --log-level debug --drift-check-interval 0 \
    --admin-socket "$WORK/admin.sock" >"$WORK/agent.log" 2>&1 &
for _ in $(seq 100); do grep -q "nftables in sync" "$WORK/agent.log" && break; sleep 0.1; done

echo "== $ENTRIES unrelated conntrack entries (UDP from local sockets to closed local ports)"
in_ns python3 -c '
import socket, sys
n, per = int(sys.argv[1]), 5000
for group in range((n + per - 1) // per):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("10.77.0.1", 20000 + group))
    for port in range(1, min(per, n - group * per) + 1):
        try: c.sendto(b"x", ("10.77.0.1", port))
        except OSError: pass
    c.close()
' "$ENTRIES"
echo "conntrack table: $(in_ns conntrack -C) entries"

# The pinned flow: one socket, one datagram every 20 ms, answers logged with a timestamp.
in_ns python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 40000))
s.settimeout(0.02)
with open(sys.argv[1], "w", buffering=1) as out:
    end = time.time() + 120
    while time.time() < end:
        s.sendto(b"ping", ("10.112.0.20", 53))
        try:
            data, _ = s.recvfrom(64)
            out.write("%.6f %s\n" % (time.time(), data.decode()))
            time.sleep(0.02)
        except OSError:
            pass
' "$WORK/flow.log" </dev/null >/dev/null 2>&1 &
sleep 1

logged() { # logged MESSAGE FIELD N — FIELD of the N-th line carrying MESSAGE
    grep "$1" "$WORK/agent.log" | sed -n "${3}p" | sed -n "s/.*$2=\([0-9.]*\).*/\1/p"
}
printf '\n%-7s %-10s %-12s %-12s %-9s %-14s\n' round pinned "change ms" "cleanup ms" deleted "flow moved ms"
changes_before=$(grep -c "nftables in sync" "$WORK/agent.log")
cleanups=0
for round in $(seq "$ROUNDS"); do
    pinned=$(tail -n 1 "$WORK/flow.log" | cut -d' ' -f2)
    other=$([ "$pinned" = 10.99.1.2 ] && echo 10.99.1.3 || echo 10.99.1.2)
    start=$(date +%s.%N)
    state "$other"
    n=$((changes_before + 2 * round - 1))
    for _ in $(seq 200); do [ "$(grep -c "nftables in sync" "$WORK/agent.log")" -ge "$n" ] && break; sleep 0.01; done
    for _ in $(seq 300); do [ "$(grep -c "moved stale flows" "$WORK/agent.log")" -gt "$cleanups" ] && break; sleep 0.01; done
    cleanups=$(grep -c "moved stale flows" "$WORK/agent.log")
    for _ in $(seq 200); do awk -v t="$start" -v o="$other" '$1 > t && $2 == o { found = 1 } END { exit !found }' "$WORK/flow.log" && break; sleep 0.01; done
    moved=$(awk -v t="$start" -v o="$other" '$1 > t && $2 == o { printf "%.0f", ($1 - t) * 1000; exit }' "$WORK/flow.log")
    printf '%-7s %-10s %-12s %-12s %-9s %-14s\n' "$round" "$pinned" "$(logged 'nftables in sync' duration_ms "$n")" \
        "$(logged 'moved stale flows' duration_ms "$cleanups")" "$(logged 'moved stale flows' conntrack_deleted "$cleanups")" "${moved:-never}"
    state 10.99.1.2 10.99.1.3
    for _ in $(seq 200); do [ "$(grep -c "nftables in sync" "$WORK/agent.log")" -ge $((n + 1)) ] && break; sleep 0.01; done
    sleep 0.5
done

echo
echo "reference: conntrack -D with the same filter (tool start + dump + user-space filter), 3 runs:"
for _ in 1 2 3; do
    start=$(date +%s%N)
    in_ns conntrack -D -p udp --orig-dst 10.112.0.20 --reply-src 10.99.1.9 >/dev/null 2>&1 || true
    echo "  $(( ($(date +%s%N) - start) / 1000000 )) ms"
done
echo "conntrack table after: $(in_ns conntrack -C) entries"
echo "targets: change <= 5 ms end to end whatever the table size; the pinned flow moves with the change"
