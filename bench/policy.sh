#!/usr/bin/env bash
# bench/policy.sh — a traffic policy's rule adds no per-packet cost that grows with the number
# of policies (issue 17): first-packet latency (TCP connect time: SYN through the node's nat
# prerouting, SYN-ACK back) to policy'd ClusterIPs with SMALL vs LARGE policies programmed,
# beside the same ClusterIPs through kube-proxy alone and a ClusterIP without any policy.
#
#   client 10.10.0.2 ── node (agent's tables at dstnat - 1, kube-proxy at dstnat) ── server
#                                                         10.20.0.2:8080 (the local pod)
#                                                         10.30.0.2:8080 (the mirrors' pod)
#
# kube-proxy (emulated, nftables mode, bench/policy-gen.py) knows LARGE local services and a
# reference Service 10.95.0.1 (never policy'd), all sent to the local pod. The agent
# (`mirror-agent run --once --no-dns` in the node namespace: it programs and exits, the kernel
# alone carries the packets) programs N policies from bench/policy-gen.py's state: local 900 /
# mirror 100 each, every mirror a remote-discovery service with one pod, so N policies bring N
# mirrored services (a policy'd connection: 90% on to kube-proxy's DNAT, 10% the mirror's DNAT and
# masquerade). Rows, per round (ROUNDS, interleaved so drift hits every row alike):
#   kube-proxy only   no agent tables: the LARGE and the SMALL ClusterIPs, the reference
#   SMALL policies    each connect to one of the SMALL policy'd ClusterIPs at random; the reference
#   LARGE policies    each connect to one of the LARGE policy'd ClusterIPs at random; to one of
#                     the SMALL ones (the same addresses as the row above: only the number of
#                     policies differs); the reference
# CONNECTS connects per row and round (closed with RST: no TIME_WAIT), p50/p99/mean over all
# rounds, in microseconds, measured by one python process in the client namespace (its own
# cost, a few microseconds, is in every row alike).
#
#   bench/policy.sh [SMALL LARGE]     default 10 10000;  CONNECTS=3000 ROUNDS=5
#   AGENT_BIN=/path/to/mirror-agent   another build (default: builds release)
# A few minutes at most. Needs root; everything runs in namespaces it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "bench/policy.sh: needs root (network namespaces, nftables)" >&2; exit 1; }
SMALL=${1:-10} LARGE=${2:-10000}
CONNECTS=${CONNECTS:-3000} ROUNDS=${ROUNDS:-5}

if [ -n "${AGENT_BIN:-}" ]; then
    BIN=$(realpath "$AGENT_BIN")
else
    echo "== building (release)" >&2
    swift build -c release --product mirror-agent >/dev/null
    BIN="$PWD/.build/release/mirror-agent"
fi
WORK=$(mktemp -d /tmp/policy-bench.XXXXXX)
CLIENT=polbench-$$-client NODE=polbench-$$-node SERVER=polbench-$$-server
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    for ns in "$CLIENT" "$NODE" "$SERVER"; do ip netns del "$ns" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
in_ns() { ip netns exec "$@"; }

# --- the namespaces ---------------------------------------------------------------------------
for ns in "$CLIENT" "$NODE" "$SERVER"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add eth0 netns "$CLIENT" type veth peer name pod0 netns "$NODE"
ip link add srv0 netns "$NODE" type veth peer name eth0 netns "$SERVER"
ip -n "$CLIENT" addr add 10.10.0.2/24 dev eth0; ip -n "$CLIENT" link set eth0 up
ip -n "$NODE" addr add 10.10.0.1/24 dev pod0; ip -n "$NODE" link set pod0 up
ip -n "$NODE" addr add 10.20.0.1/24 dev srv0; ip -n "$NODE" link set srv0 up
ip -n "$SERVER" addr add 10.20.0.2/24 dev eth0; ip -n "$SERVER" addr add 10.30.0.2/24 dev eth0; ip -n "$SERVER" link set eth0 up
ip -n "$CLIENT" route add default via 10.10.0.1
ip -n "$SERVER" route add default via 10.20.0.1
ip -n "$NODE" route add 10.30.0.0/24 via 10.20.0.2
in_ns "$NODE" sysctl -qw net.ipv4.ip_forward=1

# The server: accepts and closes (the client resets first anyway).
in_ns "$SERVER" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(4096)
while True:
    c, _ = s.accept(); c.close()
' >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do in_ns "$SERVER" bash -c "exec 3<>/dev/tcp/10.20.0.2/8080" 2>/dev/null && break; sleep 0.1; done

echo "== generating $SMALL and $LARGE policies (and their mirrors), kube-proxy with $LARGE + 1 services" >&2
python3 bench/policy-gen.py kube-proxy "$LARGE" >"$WORK/kube-proxy.nft"
for n in "$SMALL" "$LARGE"; do
    python3 bench/policy-gen.py state "$n" >"$WORK/state-$n.json"
    python3 bench/policy-gen.py ips "$n" >"$WORK/ips-$n.txt"
done
REFERENCE=$(python3 -c 'import importlib.util as u, sys; s = u.spec_from_file_location("g", "bench/policy-gen.py"); m = u.module_from_spec(s); s.loader.exec_module(m); print(m.REFERENCE_IP)')

# program N: the node's ruleset from empty: kube-proxy, then the agent's tables for N policies
# (0: none). Prints the agent's own programming time.
program() {
    in_ns "$NODE" nft flush ruleset
    in_ns "$NODE" nft -f "$WORK/kube-proxy.nft"
    [ "$1" -eq 0 ] && return 0
    in_ns "$NODE" "$BIN" run --feed "file:$WORK/state-$1.json" --once --no-dns --state-dir "$WORK/agent-state" \
        --admin-socket "$WORK/admin.sock" 2>"$WORK/agent-$1.log" >/dev/null
    grep -q "nftables in sync" "$WORK/agent-$1.log" || { echo "the agent did not program $1 policies:" >&2; cat "$WORK/agent-$1.log" >&2; exit 1; }
    # Every policy is in the kernel: one policy-ports element per policy port.
    local elements
    elements=$(in_ns "$NODE" nft list map ip mirror-agent policy-ports | grep -c ' : goto policy-' || true)
    [ "$elements" -eq "$1" ] || { echo "policy-ports holds $elements elements, wanted $1" >&2; exit 1; }
}

# The client: one process, CONNECTS connects each to a random address of the file, timed
# around connect() alone; appends nanoseconds, one per line, to OUT.
cat >"$WORK/connect.py" <<'PY'
import random, socket, struct, sys, time
addresses = [line.strip() for line in open(sys.argv[1]) if line.strip()]
count, out = int(sys.argv[2]), open(sys.argv[3], "a")
linger = struct.pack("ii", 1, 0)
failures = 0
for _ in range(count):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    s.settimeout(2)
    address = random.choice(addresses)
    start = time.perf_counter_ns()
    try:
        s.connect((address, 80))
        out.write("%d\n" % (time.perf_counter_ns() - start))
    except OSError:
        failures += 1
    s.close()
if failures:
    sys.exit("%d connects failed" % failures)
PY
echo "$REFERENCE" >"$WORK/reference.txt"
measure() { # ADDRESS_FILE OUT
    in_ns "$CLIENT" timeout 120 python3 "$WORK/connect.py" "$1" 200 /dev/null  # warm-up (ARP, caches)
    in_ns "$CLIENT" timeout 120 python3 "$WORK/connect.py" "$1" "$CONNECTS" "$2"
}

declare -A PROGRAM_MS
started=$(date +%s)
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round/$ROUNDS" >&2
    program 0
    measure "$WORK/ips-$LARGE.txt" "$WORK/none-large.txt"
    measure "$WORK/ips-$SMALL.txt" "$WORK/none-small.txt"
    measure "$WORK/reference.txt" "$WORK/none-reference.txt"
    for n in "$SMALL" "$LARGE"; do
        program "$n"
        PROGRAM_MS[$n]=$(grep -o 'duration_ms=[0-9.]*' "$WORK/agent-$n.log" | tail -n 1 | cut -d= -f2)
        measure "$WORK/ips-$n.txt" "$WORK/$n-policyd.txt"
        [ "$n" = "$LARGE" ] && measure "$WORK/ips-$SMALL.txt" "$WORK/$n-policyd-small.txt"
        measure "$WORK/reference.txt" "$WORK/$n-reference.txt"
    done
done

# stats FILE: p50 p99 mean (microseconds) and the sample count.
stats() { sort -n "$1" | awk '{v[NR] = $1; s += $1} END {printf "%7.1f %7.1f %7.1f %7d", v[int(NR * 0.5 + 0.5)] / 1000, v[int(NR * 0.99 + 0.5)] / 1000, s / NR / 1000, NR}'; }
p50() { sort -n "$1" | awk '{v[NR] = $1} END {print v[int(NR * 0.5 + 0.5)]}'; }
diff_us() { awk -v a="$(p50 "$1")" -v b="$(p50 "$2")" 'BEGIN {printf "%+.1f us", (a - b) / 1000}'; }
row() { printf "%-66s %s\n" "$1" "$(stats "$2")"; }
echo
echo "first-packet latency: TCP connect time from the client namespace, microseconds ($ROUNDS rounds x $CONNECTS connects per row)"
printf "%-66s %7s %7s %7s %7s\n" "" p50 p99 mean n
row "kube-proxy only (no agent tables): one of the $LARGE ClusterIPs" "$WORK/none-large.txt"
row "kube-proxy only: one of the $SMALL ClusterIPs" "$WORK/none-small.txt"
row "kube-proxy only: the reference ClusterIP" "$WORK/none-reference.txt"
row "$SMALL policies: a policy'd ClusterIP (one of $SMALL)" "$WORK/$SMALL-policyd.txt"
row "$SMALL policies: the reference ClusterIP (no policy)" "$WORK/$SMALL-reference.txt"
row "$LARGE policies: a policy'd ClusterIP (one of $LARGE)" "$WORK/$LARGE-policyd.txt"
row "$LARGE policies: a policy'd ClusterIP (one of the same $SMALL as above)" "$WORK/$LARGE-policyd-small.txt"
row "$LARGE policies: the reference ClusterIP (no policy)" "$WORK/$LARGE-reference.txt"
echo
echo "p50, $LARGE vs $SMALL policies, the same $SMALL policy'd ClusterIPs: $(diff_us "$WORK/$LARGE-policyd-small.txt" "$WORK/$SMALL-policyd.txt");" \
     "the reference ClusterIP: $(diff_us "$WORK/$LARGE-reference.txt" "$WORK/$SMALL-reference.txt")"
echo "p50, policy'd vs kube-proxy only (the policy rule's own cost): $(diff_us "$WORK/$SMALL-policyd.txt" "$WORK/none-small.txt") at $SMALL," \
     "$(diff_us "$WORK/$LARGE-policyd.txt" "$WORK/none-large.txt") at $LARGE"
echo "agent programming from empty (logged): $SMALL policies ${PROGRAM_MS[$SMALL]:-?} ms, $LARGE policies ${PROGRAM_MS[$LARGE]:-?} ms; run took $(( $(date +%s) - started )) s"
