#!/usr/bin/env bash
# bench/gateway.sh — `mirror-agent gateway` at 10,000 exported service ports, each figure beside
# its reference, in network namespaces it creates (and removes on exit, also on Ctrl-C):
#
#   1. from empty   gateway start -> "gateway tables in sync" (wall, and the logged duration_ms),
#                   vs `nft -f` of the SAME ruleset (listed from the gateway's tables) into an
#                   empty namespace; both in fresh namespaces, REPEAT times, medians compared.
#                   Target: the gateway >= 1.5x faster than nft -f.
#   2. one change   one endpoint of one two-endpoint service replaced in the document (renamed
#                   over the file the gateway follows): the gateway's logged duration_ms (and
#                   rename -> in sync) vs `nft -f` of the same four element commands, in the
#                   namespace nft -f programmed; CHANGES times each way, median / p90.
#   3. restart      SIGTERM, then a new gateway on the programmed tables with the same document:
#                   time to in sync, the batch it sent (must be empty), vs `nft -f` of
#                   "flush ruleset" + the whole ruleset.
#   4. memory       the gateway's VmRSS / VmHWM with the document loaded (2 s after in sync,
#                   after the changes, after the restart), vs the peak RSS of `nft -f`.
#   5. hop latency  client ── gw ── server: TCP connect, and connect + 1 KiB request + 1 KiB
#                   response on a fresh connection, straight to the server's IP (gw only
#                   forwards) vs to gwIP:gatewayPort (DNATed and masqueraded by the gateway's
#                   tables, the 10k document plus the test's own port loaded); LAT_N rounds,
#                   interleaved, one python3 client process; p50/p90/p99 in µs.
#                   Target: <= 50 µs added at p50.
#
# usage (root):
#   bench/gateway.sh
#   PORTS=10000 REPEAT=3 CHANGES=10 LAT_N=2000 bench/gateway.sh     (the defaults)
#   GATEWAY_BIN=/path/to/mirror-agent bench/gateway.sh               another build, no swift build
#   FORMAT=yaml bench/gateway.sh                                     the document as YAML (default JSON)
#   KEEP=1 bench/gateway.sh                                          keep the work directory (logs)
#
# The exports document comes from bench/gen-exports.py (PORTS ports over 3/4 PORTS services: 85%
# TCP, 15% UDP reusing the TCP gateway numbers; 1-6 ready endpoints, 2% scaled to zero). The
# gateways run with --drift-check-interval 0 so no periodic read-back falls into a measurement.
# Only addresses inside the namespaces are used (10.99.1.2 and 10.70/10.71.0.x, pods 10.20.x.x).
# Nothing asserts a target: the script fails only when a sanity check fails (the gateway never
# in sync, a change not applied incrementally, the reference ruleset differs, no DNAT seen).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "bench/gateway.sh: needs root (network namespaces, nftables)" >&2; exit 1; }
PORTS=${PORTS:-10000}
REPEAT=${REPEAT:-3}
CHANGES=${CHANGES:-10}
LAT_N=${LAT_N:-2000}
LAT_WARMUP=${LAT_WARMUP:-200}
FORMAT=${FORMAT:-json}
GW_ADDR=10.99.1.2
ALLOW=10.0.0.0/8

# What the script runs, installed with apt-get when missing (as scripts/install-deps.sh does).
missing=()
command -v nft >/dev/null || missing+=(nftables)
command -v ip >/dev/null || missing+=(iproute2)
command -v python3 >/dev/null || missing+=(python3)
[ -x /usr/bin/time ] || missing+=(time)
command -v strace >/dev/null || missing+=(strace)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -n "${GATEWAY_BIN:-}" ]; then
    BIN="$GATEWAY_BIN"
else
    echo "== building (release)" >&2
    swift build -c release --product mirror-agent >"${TMPDIR:-/tmp}/gateway-bench-build.$$" 2>&1 ||
        { cat "${TMPDIR:-/tmp}/gateway-bench-build.$$" >&2; rm -f "${TMPDIR:-/tmp}/gateway-bench-build.$$"; exit 1; }
    rm -f "${TMPDIR:-/tmp}/gateway-bench-build.$$"
    BIN="$PWD/.build/release/mirror-agent"
fi

WORK=$(mktemp -d /tmp/gateway-bench.XXXXXX)
NAMESPACES=()
PIDS=()
cleanup() {
    trap - EXIT INT TERM
    local pid ns
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# fresh_ns NAME: creates a namespace (lo up, forwarding on) and names it in $NS. No command
# substitution, so the cleanup list is updated in this shell.
fresh_ns() {
    NS="gwbench-$$-$1"
    ip netns add "$NS"
    NAMESPACES+=("$NS")
    ip -n "$NS" link set lo up
    ip netns exec "$NS" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
}
drop_ns() { ip netns del "$1" 2>/dev/null || true; }
# forget PID: a process of ours that has exited leaves the cleanup list (its pid may be reused).
forget() { local keep=() pid; for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done; PIDS=("${keep[@]}"); }
# stop PID: SIGTERM one process this script started, and wait for it.
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; forget "$1"; }
now_ns() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
# median / p90 of the numbers on stdin (p90: the smallest value with 90% of them at or below it).
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
p90() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { i = int(0.9 * NR + 0.999); if (i < 1) i = 1; printf "%.2f\n", v[i] }'; }
field() { grep -o "$1=[^ ]*" | tail -n 1 | cut -d= -f2; } # field NAME < log line
batch_of() { sed -n 's/.*batch=\(.*\) cluster=.*/\1/p' | tail -n 1; } # the batch summary has spaces
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
status_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; } # status_kib PID VmRSS

# --- helpers in python: a log watcher, the latency server and client --------------------------

# watch.py LOG TIMEOUT READY-FILE PATTERN@COUNT...: prints, per pattern, the wall-clock time
# (ns since the epoch) at which LOG first held COUNT lines containing it ("timeout" if not
# within TIMEOUT s). Polls every 0.5 ms, so it is started (and READY-FILE created) before the
# event it times: its own start-up is not measured.
cat >"$WORK/watch.py" <<'PY'
import sys, time
log, timeout, ready = sys.argv[1], float(sys.argv[2]), sys.argv[3]
want = []
for spec in sys.argv[4:]:
    pattern, _, count = spec.rpartition("@")
    want.append([pattern.encode(), int(count), 0, None])
f = open(log, "rb")
open(ready, "w").close()
deadline = time.monotonic() + timeout
pending = b""
while time.monotonic() < deadline and any(w[3] is None for w in want):
    chunk = f.read()
    if chunk:
        seen = time.time_ns()
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            for w in want:
                if w[3] is None and w[0] in line:
                    w[2] += 1
                    if w[2] >= w[1]:
                        w[3] = seen
    else:
        time.sleep(0.0005)
print(" ".join(str(w[3]) if w[3] else "timeout" for w in want))
PY

# watch_start LOG TIMEOUT PATTERN@COUNT...: starts watch.py in the background; watch_result
# waits for it and leaves its answers in the array WATCHED.
watch_start() {
    rm -f "$WORK/watch.ready"
    python3 "$WORK/watch.py" "$1" "$2" "$WORK/watch.ready" "${@:3}" >"$WORK/watch.out" &
    WATCH_PID=$!
    PIDS+=("$WATCH_PID")
    for _ in $(seq 1 500); do [ -e "$WORK/watch.ready" ] && return 0; sleep 0.01; done
    echo "log watcher did not start" >&2; exit 1
}
watch_result() {
    wait "$WATCH_PID" || true
    forget "$WATCH_PID"
    read -r -a WATCHED <"$WORK/watch.out"
    for value in "${WATCHED[@]}"; do
        [ "$value" != timeout ] || { echo "timed out waiting for the gateway; its log:" >&2; tail -n 20 "$GW_LOG" >&2; exit 1; }
    done
}

# start_gateway NS DOC LOG ALLOW [extra flags]: `mirror-agent gateway` in NS (ip netns exec
# execs it, so $! is the gateway itself); its pid in GW_PID.
start_gateway() {
    ip netns exec "$1" "$BIN" gateway --feed "file:$2" --allow-source "$4" --admin-socket "$WORK/$1.sock" \
        --probe-listen 127.0.0.1:4191 --drift-check-interval 0 "${@:5}" >>"$3" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    GW_LOG=$3
}

# The latency server: accepts one connection at a time; reads a 1 KiB request (or EOF: the
# connect-only test), answers 1 KiB, then waits for the client's close so the client, not the
# server, holds TIME_WAIT.
cat >"$WORK/server.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1024)
response = b"r" * 1024
while True:
    c, _ = s.accept()
    try:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        got = 0
        while got < 1024:
            data = c.recv(4096)
            if not data:
                break
            got += len(data)
        if got >= 1024:
            c.sendall(response)
            while c.recv(4096):
                pass
    except OSError:
        pass
    finally:
        c.close()
PY

# The latency client: one process, N rounds; each round measures both paths (order
# alternating) for one test. Prints a table in µs.
cat >"$WORK/client.py" <<'PY'
import socket, sys, time
direct = (sys.argv[1], int(sys.argv[2]))
gateway = (sys.argv[3], int(sys.argv[4]))
n, warmup = int(sys.argv[5]), int(sys.argv[6])
request = b"q" * 1024

def connect_only(address):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t0 = time.perf_counter_ns()
    s.connect(address)
    t1 = time.perf_counter_ns()
    s.close()
    return (t1 - t0) / 1000

def request_response(address):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.perf_counter_ns()
    s.connect(address)
    s.sendall(request)
    got = 0
    while got < 1024:
        data = s.recv(4096)
        if not data:
            raise SystemExit("connection closed before the 1 KiB response")
        got += len(data)
    t1 = time.perf_counter_ns()
    s.close()
    return (t1 - t0) / 1000

def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]

# Sanity: both paths answer the full response.
for address in (direct, gateway):
    request_response(address)

rows = []
for name, test in (("TCP connect", connect_only), ("connect + 1 KiB req/resp", request_response)):
    samples = {direct: [], gateway: []}
    for i in range(warmup + n):
        order = (direct, gateway) if i % 2 == 0 else (gateway, direct)
        for address in order:
            value = test(address)
            if i >= warmup:
                samples[address].append(value)
        time.sleep(0.0002)  # let the server finish the previous connection
    rows.append((name, samples[direct], samples[gateway]))

print("%-26s %-34s %-34s %s" % ("test (N=%d each, µs)" % n, "direct route  p50 / p90 / p99", "via gateway   p50 / p90 / p99", "added p50 (p90)"))
for name, d, g in rows:
    fmt = lambda v: "%7.1f / %7.1f / %7.1f" % (pct(v, 0.5), pct(v, 0.9), pct(v, 0.99))
    print("%-26s %-34s %-34s %+.1f µs (%+.1f)" % (name, fmt(d), fmt(g), pct(g, 0.5) - pct(d, 0.5), pct(g, 0.9) - pct(d, 0.9)))
PY

# --- the documents ---------------------------------------------------------------------------
GEN=(python3 bench/gen-exports.py "$PORTS")
[ "$FORMAT" = yaml ] && GEN+=(--yaml)
EXT=$FORMAT
"${GEN[@]}" >"$WORK/exports.$EXT"
"${GEN[@]}" --changed >"$WORK/changed.$EXT"
python3 bench/gen-exports.py "$PORTS" --nft-change >"$WORK/change.nft"
python3 bench/gen-exports.py "$PORTS" --nft-revert >"$WORK/revert.nft"
services=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["exports"]), sum(len(e["ports"]) for e in d["exports"]), sum(1 for e in d["exports"] for p in e["ports"] if p["protocol"]=="UDP"), sum(1 for e in d["exports"] for x in e["endpoints"] if x["ready"]))' <(python3 bench/gen-exports.py "$PORTS"))
read -r n_services n_ports n_udp n_ready <<<"$services"
LIVE="$WORK/live.$EXT"

echo "mirror-agent gateway benchmark — $(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r), $(nft --version)"
echo "document: $n_ports exported ports ($n_udp UDP) over $n_services services, $n_ready ready endpoints," \
     "$FORMAT, $(( $(stat -c %s "$WORK/exports.$EXT") / 1024 )) KiB; gateway address $GW_ADDR, --allow-source $ALLOW"

# --- 1. from empty ---------------------------------------------------------------------------
echo
echo "== 1. $n_ports exported ports from empty — gateway vs 'nft -f' of the same ruleset (each in a fresh namespace, $REPEAT runs)"
printf '%-6s | %-11s %-10s | %-9s %-9s %-9s | %-10s %-8s | %s\n' run "gw wall ms" "logged ms" "exec->log" "->loaded" "->in-sync" "nft -f ms" "nft RSS" "nft/wall  nft/logged"
gw_walls=() gw_logged=() nft_walls=()
MAIN_NS="" MAIN_PID=""
for r in $(seq 1 "$REPEAT"); do
    fresh_ns "gw-$r"; gw_ns=$NS
    cp "$WORK/exports.$EXT" "$LIVE"
    log="$WORK/gw-$r.log"; : >"$log"
    watch_start "$log" 120 "gateway starting@1" "loaded exports@1" "gateway tables in sync@1"
    start=$(now_ns)
    start_gateway "$gw_ns" "$LIVE" "$log" "$ALLOW"
    gw_start=$start
    watch_result
    wall=$(ms "$start" "${WATCHED[2]}")
    line=$(grep 'gateway tables in sync' "$log" | tail -n 1)
    logged=$(echo "$line" | field duration_ms)
    [ "$(echo "$line" | field mode)" = full ] || { echo "first document not applied in full: $line" >&2; exit 1; }
    first_batch=$(echo "$line" | batch_of)

    if [ "$r" = 1 ]; then
        # The reference ruleset: what the gateway programmed, as nft lists it (no handles; the
        # per-element "counter packets 0 bytes 0" are the gateway's own counters, kept).
        { ip netns exec "$gw_ns" nft list table ip mirror-gateway; ip netns exec "$gw_ns" nft list table ip6 mirror-gateway; } >"$WORK/ruleset.nft"
    fi

    fresh_ns "nft-$r"; nft_ns=$NS
    start=$(now_ns)
    ip netns exec "$nft_ns" /usr/bin/time -f %M -o "$WORK/nft-rss" nft -f "$WORK/ruleset.nft"
    nft_wall=$(ms "$start" "$(now_ns)")
    nft_rss=$(mib "$(tail -n 1 "$WORK/nft-rss")")
    if [ "$r" = 1 ]; then
        # Sanity: nft -f programmed exactly what the gateway did.
        for family in ip ip6; do
            diff <(ip netns exec "$gw_ns" nft list table "$family" mirror-gateway) <(ip netns exec "$nft_ns" nft list table "$family" mirror-gateway) >/dev/null ||
                { echo "the nft -f reference differs from the gateway's $family table" >&2; exit 1; }
        done
    fi
    printf '%-6s | %-11s %-10s | %-9s %-9s %-9s | %-10s %-8s | %-9s %s\n' "$r" "$wall" "$logged" \
        "$(ms "$gw_start" "${WATCHED[0]}")" "$(ms "${WATCHED[0]}" "${WATCHED[1]}")" "$(ms "${WATCHED[1]}" "${WATCHED[2]}")" \
        "$nft_wall" "${nft_rss}MiB" "$(ratio "$nft_wall" "$wall")" "$(ratio "$nft_wall" "$logged")"
    gw_walls+=("$wall") gw_logged+=("$logged") nft_walls+=("$nft_wall")
    if [ "$r" = "$REPEAT" ]; then
        MAIN_NS=$gw_ns MAIN_PID=$GW_PID MAIN_LOG=$log NFT_NS=$nft_ns
    else
        stop "$GW_PID"; drop_ns "$gw_ns"; drop_ns "$nft_ns"
    fi
done
m_wall=$(echo "${gw_walls[*]}" | median) m_logged=$(echo "${gw_logged[*]}" | median) m_nft=$(echo "${nft_walls[*]}" | median)
printf '%-6s | %-11s %-10s | %-9s %-9s %-9s | %-10s %-8s | %-9s %s\n' median "$m_wall" "$m_logged" "" "" "" "$m_nft" "" "$(ratio "$m_nft" "$m_wall")" "$(ratio "$m_nft" "$m_logged")"
echo "   gw wall: \`ip netns exec NS mirror-agent gateway\` launched -> its 'gateway tables in sync' line seen"
echo "   (±1 ms), split into: exec -> 'gateway starting' line (process start, flags, nftables socket),"
echo "   -> 'loaded exports' (listeners up, document read + parsed + validated), -> in sync (translate +"
echo "   program). logged: the line's duration_ms (translate + diff + batch acked). nft -f: the whole"
echo "   \`ip netns exec NS nft -f ruleset\` process (parse + cache + batch); nft RSS: its peak."
echo "   batch: $first_batch; the nft -f reference lists identically (ip and ip6 tables compared)"
# The kernel's own share, as bench/nft.sh measures it: nft -f's longest sendmsg (the batch).
fresh_ns kernel
ip netns exec "$NS" strace -T -e trace=sendmsg -o "$WORK/strace" nft -f "$WORK/ruleset.nft"
drop_ns "$NS"
kernel_s=$(grep -o '<[0-9.]*>$' "$WORK/strace" | tr -d '<>' | sort -g | tail -n 1)
echo "   kernel alone (nft -f's batch sendmsg under strace): $(awk -v s="$kernel_s" 'BEGIN { printf "%.1f", s * 1000 }') ms — the floor under both"
echo "   target: gateway >= 1.5x faster than nft -f -> median nft/wall $(ratio "$m_nft" "$m_wall"), nft/logged $(ratio "$m_nft" "$m_logged")"

sleep 2
rss_loaded=$(status_kib "$MAIN_PID" VmRSS) hwm_loaded=$(status_kib "$MAIN_PID" VmHWM)

# --- 2. one change ---------------------------------------------------------------------------
echo
echo "== 2. one change — one endpoint of one 2-endpoint service replaced (pod rescheduled), $CHANGES times each way"
echo "   gateway: the document renamed over the followed file; nft: 'nft -f' of the same element commands"
echo "   ($(grep -c . "$WORK/change.nft") commands: delete+add balance-targets, delete+add masquerade-targets) in the nft -f namespace"
applied=() renames=() nfts=() batches=()
for i in $(seq 1 $(( 2 * CHANGES ))); do
    if [ $(( i % 2 )) = 1 ]; then next="$WORK/changed.$EXT" cmds="$WORK/change.nft"; else next="$WORK/exports.$EXT" cmds="$WORK/revert.nft"; fi
    before=$(grep -c 'gateway tables in sync' "$MAIN_LOG")
    cp "$next" "$LIVE.new"
    watch_start "$MAIN_LOG" 20 "gateway tables in sync@$(( before + 1 ))"
    start=$(now_ns)
    mv "$LIVE.new" "$LIVE"
    watch_result
    renames+=("$(ms "$start" "${WATCHED[0]}")")
    line=$(grep 'gateway tables in sync' "$MAIN_LOG" | tail -n 1)
    [ "$(echo "$line" | field mode)" = incremental ] || { echo "the change was not applied incrementally: $line" >&2; exit 1; }
    applied+=("$(echo "$line" | field duration_ms)")
    batches+=("$(echo "$line" | batch_of)")
    sleep 0.3
    start=$(now_ns)
    ip netns exec "$NFT_NS" nft -f "$cmds"
    nfts+=("$(ms "$start" "$(now_ns)")")
    sleep 0.3
done
printf '   %-44s %10s %10s   %s\n' "" "median ms" "p90 ms" "all (ms)"
printf '   %-44s %10s %10s   %s\n' "gateway, logged duration_ms" "$(echo "${applied[*]}" | median)" "$(echo "${applied[*]}" | p90)" "${applied[*]}"
printf '   %-44s %10s %10s   %s\n' "gateway, rename -> in-sync line" "$(echo "${renames[*]}" | median)" "$(echo "${renames[*]}" | p90)" "${renames[*]}"
printf '   %-44s %10s %10s   %s\n' "nft -f of the 4 element commands" "$(echo "${nfts[*]}" | median)" "$(echo "${nfts[*]}" | p90)" "${nfts[*]}"
echo "   gateway batches: $(printf '%s\n' "${batches[@]}" | sort | uniq -c | sed 's/^ *//' | tr '\n' ';' | sed 's/;$//')"
echo "   (rename -> in sync also holds inotify wake-up and re-reading + parsing the whole $(( $(stat -c %s "$WORK/exports.$EXT") / 1024 )) KiB file;"
echo "    nft -f holds its process start and its cache fetch of the tables)"
sleep 2
rss_changed=$(status_kib "$MAIN_PID" VmRSS) hwm_changed=$(status_kib "$MAIN_PID" VmHWM)

# --- 3. restart ------------------------------------------------------------------------------
echo
echo "== 3. restart — SIGTERM, then a new gateway with the same document on the programmed tables"
stop "$MAIN_PID"
log="$WORK/gw-restart.log"; : >"$log"
watch_start "$log" 60 "gateway starting@1" "loaded exports@1" "gateway tables in sync@1"
start=$(now_ns)
start_gateway "$MAIN_NS" "$LIVE" "$log" "$ALLOW"
watch_result
MAIN_PID=$GW_PID
restart_wall=$(ms "$start" "${WATCHED[2]}")
line=$(grep 'gateway tables in sync' "$log" | tail -n 1)
restart_batch=$(echo "$line" | batch_of)
{ echo "flush ruleset"; cat "$WORK/ruleset.nft"; } >"$WORK/reload.nft"
start=$(now_ns)
ip netns exec "$NFT_NS" nft -f "$WORK/reload.nft"
reload=$(ms "$start" "$(now_ns)")
printf '   %-44s %s\n' "gateway: start -> in sync" "$restart_wall ms (logged duration_ms $(echo "$line" | field duration_ms), start->load $(ms "${WATCHED[0]}" "${WATCHED[1]}") ms)"
printf '   %-44s %s\n' "gateway: batch sent" "$restart_batch (mode=$(echo "$line" | field mode))"
printf '   %-44s %s\n' "nft -f 'flush ruleset' + whole ruleset" "$reload ms   (nft/gateway $(ratio "$reload" "$restart_wall"))"
[ "$restart_batch" = empty ] || echo "   !! the restart did not send an empty batch"
sleep 2
rss_restart=$(status_kib "$MAIN_PID" VmRSS) hwm_restart=$(status_kib "$MAIN_PID" VmHWM)

# --- 4. memory -------------------------------------------------------------------------------
echo
echo "== 4. memory — the gateway process with the $n_ports-port document loaded (/proc/PID/status)"
printf '   %-44s %s\n' "2 s after the first in sync" "VmRSS $(mib "$rss_loaded") MiB, VmHWM $(mib "$hwm_loaded") MiB"
printf '   %-44s %s\n' "2 s after the $(( 2 * CHANGES )) changes" "VmRSS $(mib "$rss_changed") MiB, VmHWM $(mib "$hwm_changed") MiB"
printf '   %-44s %s\n' "2 s after the restart (empty batch)" "VmRSS $(mib "$rss_restart") MiB, VmHWM $(mib "$hwm_restart") MiB"
printf '   %-44s %s\n' "reference: nft -f of the ruleset, peak" "$nft_rss MiB (a one-shot process)"
stop "$MAIN_PID"; drop_ns "$MAIN_NS"; drop_ns "$NFT_NS"

# --- 5. hop latency --------------------------------------------------------------------------
echo
echo "== 5. gateway hop latency — client 10.70.0.2 ── gw 10.70.0.1 | 10.71.0.1 ── server 10.71.0.2:8080"
echo "   direct: client -> 10.71.0.2:8080 (gw forwards); via gateway: client -> 10.70.0.1:29999, DNATed to"
echo "   10.71.0.2:8080 and masqueraded by the gateway's tables ($n_ports-port document + that port loaded)"
fresh_ns lat-client; C_NS=$NS
fresh_ns lat-gw; G_NS=$NS
fresh_ns lat-server; S_NS=$NS
ip link add gwb-c netns "$C_NS" type veth peer name gwb-gc netns "$G_NS"
ip link add gwb-s netns "$S_NS" type veth peer name gwb-gs netns "$G_NS"
ip -n "$C_NS" addr add 10.70.0.2/24 dev gwb-c; ip -n "$C_NS" link set gwb-c up
ip -n "$G_NS" addr add 10.70.0.1/24 dev gwb-gc; ip -n "$G_NS" link set gwb-gc up
ip -n "$G_NS" addr add 10.71.0.1/24 dev gwb-gs; ip -n "$G_NS" link set gwb-gs up
ip -n "$S_NS" addr add 10.71.0.2/24 dev gwb-s; ip -n "$S_NS" link set gwb-s up
ip -n "$C_NS" route add default via 10.70.0.1
ip -n "$S_NS" route add default via 10.71.0.1

python3 bench/gen-exports.py "$PORTS" --gateway-address 10.70.0.1 --latency-export 29999:10.71.0.2:8080 >"$WORK/latency-exports.json"
ip netns exec "$S_NS" python3 "$WORK/server.py" 10.71.0.2 8080 >"$WORK/server.log" 2>&1 &
PIDS+=("$!")
log="$WORK/gw-latency.log"; : >"$log"
watch_start "$log" 120 "gateway tables in sync@1"
start_gateway "$G_NS" "$WORK/latency-exports.json" "$log" 10.70.0.0/24
watch_result
lat_line=$(grep 'gateway tables in sync' "$log" | tail -n 1)
for _ in $(seq 1 300); do ip netns exec "$C_NS" bash -c 'exec 3<>/dev/tcp/10.71.0.2/8080' 2>/dev/null && break; sleep 0.1; done
echo "   gateway in sync: ports=$(echo "$lat_line" | field ports), batch $(echo "$lat_line" | batch_of); one python3 client process, $LAT_WARMUP warm-up rounds"
ip netns exec "$C_NS" python3 "$WORK/client.py" 10.71.0.2 8080 10.70.0.1 29999 "$LAT_N" "$LAT_WARMUP" | sed 's/^/   /'
# Sanity: the gateway path went through the gateway port's DNAT element.
dnat_packets=$(ip netns exec "$G_NS" nft list table ip mirror-gateway | grep -F 'tcp . 29999 counter' | grep -F comment | grep -o 'packets [0-9]*' | head -n 1 | cut -d' ' -f2)
echo "   sanity: the gateway port's DNAT element counted ${dnat_packets:-0} packets (new connections via the gateway: $(( 2 * (LAT_N + LAT_WARMUP) + 1 )))"
[ "${dnat_packets:-0}" -gt 0 ] || { echo "no connection went through the gateway's DNAT element" >&2; exit 1; }
echo "   target: <= 50 µs added at p50"
