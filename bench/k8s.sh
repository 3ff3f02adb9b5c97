#!/usr/bin/env bash
# bench/k8s.sh — `mirror-agent feed --source kubernetes` at 5,000 exported Services over 3 Links,
# against emulated API servers (kmock, Tests/MirrorKubernetesTests/kmock_harness.py), all in a
# network namespace it creates (and removes on exit, also on Ctrl-C):
#
#   1. start -> mirrored  SERVICES exported Services spread over LINKS remote clusters (one
#                         emulator each, loaded before the feed starts; RD_PERCENT of them in
#                         remote-discovery mode with an EndpointSlice, the rest gateway mode);
#                         the feed starts with --write-qps QPS on an empty local cluster (its
#                         own emulator). Timed from the feed's start: its first published
#                         state, every mirror Service created (its log), and every Service
#                         published with its ClusterIP (a /v1/watch follower holding the
#                         state); then `dump --feed -o json` must agree (created, published,
#                         no write problems), and the requests the local emulator served are
#                         counted (what the feed wrote besides the mirror Services).
#   2. agent sync         `mirror-agent run --no-dns` following the feed: start -> "nftables in
#                         sync" with every service.
#   3. one change         CHANGES merge PATCHes of one remote-discovery Service's EndpointSlice
#                         (its one ready pod IP replaced), one every GAP_MS after the previous
#                         one reached the kernel: PATCH -> the feed's upsertService on
#                         /v1/watch, and PATCH -> the kernel's nf_tables notification of an
#                         element holding the new IP (`nft monitor`, sent at commit); p50/p99
#                         (nearest rank: the p99 of 50 is the largest). Beside them: the
#                         agent's logged duration_ms, and CPU per change of the feed, the
#                         agent and the emulators.
#   4. default QPS        phase 1 again, at the default --write-qps 50 (burst 100), on a fresh
#                         local cluster. DEFAULT_QPS_RUN=0 skips it (the computed figure,
#                         (SERVICES - 100) / 50 s of writes, is printed either way).
#
# CPU and memory: the feed's CPU seconds (utime + stime of the process, every thread) and peak
# RSS (VmHWM) per phase, and beside them the CPU seconds the emulators (single-threaded python)
# spent in the same phase, local and remote apart: on this machine they share the cores with
# the feed, so wall times include waiting for them; the feed's CPU figure is its own.
# Reference (no figures of ours to compare with here): Linkerd's service mirror controller
# degrades around 500 exported services (linkerd2 #9359).
#
# usage (root):
#   bench/k8s.sh
#   SERVICES=5000 LINKS=3 QPS=2000 CHANGES=50 GAP_MS=200 bench/k8s.sh     (the defaults)
#   RD_PERCENT=10      share of the exported Services in remote-discovery mode (3 pod IPs each)
#   NAMESPACES=10      namespaces the Services spread over
#   DEFAULT_QPS_RUN=0  skip phase 4 (about SERVICES/50 s)
#   TIMEOUT=300        seconds allowed for each start -> mirrored
#   MIRROR_AGENT_BIN=/path/to/mirror-agent   another build, no swift build
#   KEEP=1             keep the work directory (logs, per-change rows)
#   PROFILE=1          perf record the feed during phase 3 and print where its CPU goes
#
# The emulator is bench/k8s-harness.py: the test harness with three O(objects)-or-worse costs
# per request taken out (ClusterIP allocation, kmock's reaction matching over every request
# ever served, kmock's object lookup by scan), which otherwise make a create take 20-300 ms at
# these sizes; K8S_BENCH_STOCK_EMULATOR=1 runs it as it is. The driver (load, follower, change
# timing) is bench/k8s-load.py. Only 127.0.0.1 inside the namespace is used. Nothing asserts
# a target: the script fails only when a sanity check fails (a phase never completes, a count
# is off, a change never reaches the kernel).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "bench/k8s.sh: needs root (network namespace, nftables)" >&2; exit 1; }
SERVICES=${SERVICES:-5000}
LINKS=${LINKS:-3}
QPS=${QPS:-2000}
CHANGES=${CHANGES:-50}
GAP_MS=${GAP_MS:-200}
RD_PERCENT=${RD_PERCENT:-10}
NAMESPACES=${NAMESPACES:-10}
DEFAULT_QPS_RUN=${DEFAULT_QPS_RUN:-1}
TIMEOUT=${TIMEOUT:-300}
(( SERVICES >= LINKS && SERVICES <= 50000 && LINKS >= 1 && LINKS <= 8 && CHANGES >= 1 && CHANGES <= 1000 )) ||
    { echo "bench/k8s.sh: 1 <= LINKS <= 8, LINKS <= SERVICES <= 50000, 1 <= CHANGES <= 1000 (bounded load)" >&2; exit 1; }

scripts/install-deps.sh >/dev/null
[ "${PROFILE:-0}" != 1 ] || command -v perf >/dev/null || { echo "bench/k8s.sh: PROFILE=1 needs perf (apt-get install linux-perf)" >&2; exit 1; }
if [ -n "${MIRROR_AGENT_BIN:-}" ]; then BIN=$MIRROR_AGENT_BIN; else
    echo "== building (release, scratch path .build-bench)" >&2
    swift build -c release --scratch-path .build-bench --product mirror-agent >"${TMPDIR:-/tmp}/k8s-bench-build.$$" 2>&1 ||
        { cat "${TMPDIR:-/tmp}/k8s-bench-build.$$" >&2; rm -f "${TMPDIR:-/tmp}/k8s-bench-build.$$"; exit 1; }
    rm -f "${TMPDIR:-/tmp}/k8s-bench-build.$$"
    BIN="$PWD/.build-bench/release/mirror-agent"
fi
# The interpreter itself (not a pyenv shim), so that $! and /proc/PID are the python process;
# no __pycache__ left in bench/ or Tests/.
PY=$(python3 -c 'import sys; print(sys.executable)')
export PYTHONDONTWRITEBYTECODE=1
HARNESS="$PWD/bench/k8s-harness.py"
DRIVER="$PWD/bench/k8s-load.py"
TICK=$(getconf CLK_TCK)

NS=k8sbench-$$
WORK=$(mktemp -d /tmp/k8s-bench.XXXXXX)
PIDS=()
cleanup() {
    trap - EXIT INT TERM
    local pid left
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    # Bounded: a process signalled while still being forked (before its exec) can miss SIGTERM.
    for _ in $(seq 1 50); do
        left=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
        [ "$left" = 1 ] || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM
ip netns add "$NS"
ip -n "$NS" link set lo up

forget() { local keep=() pid; for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done; PIDS=("${keep[@]}"); }
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; forget "$1"; }
now_ns() { date +%s%N; }
# cpu_s PID: user + system CPU seconds of the process (all its threads) so far.
cpu_s() { awk -v t="$TICK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat"; }
status_mib() { awk -v f="$2:" '$1 == f { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; } # status_mib PID VmHWM
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
sec() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == "" || b == "null" || b == "None") print "never"; else printf "%.2f", (b - a) / 1e9 }'; }
# jget FILE KEY[.KEY...]: a field of the one JSON object in FILE ("null" when absent).
jget() { "$PY" -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("null" if v is None else len(v) if isinstance(v, (dict, list)) else v)' "$1" "$2"; }
# pct P < numbers: nearest-rank percentile (p99 of 50 values is the largest).
pct() { grep -v '^$' | sort -g | awk -v p="$1" '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } i = int(p / 100 * NR + 0.999); if (i < 1) i = 1; printf "%.1f", v[i] }'; }
free_port() { ip netns exec "$NS" "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_harness NAME [flags]: one emulated API server in the namespace; pid in H_PID, port in H_PORT.
start_harness() {
    local name=$1; shift
    : >"$WORK/$name.out"
    ip netns exec "$NS" "$PY" "$HARNESS" --port 0 --ignore-stdin "$@" </dev/null >"$WORK/$name.out" 2>"$WORK/$name.err" &
    H_PID=$!
    PIDS+=("$H_PID")
    for _ in $(seq 1 300); do
        H_PORT=$(sed -n 's/^LISTENING \([0-9]*\)$/\1/p' "$WORK/$name.out" 2>/dev/null || true)
        [ -n "$H_PORT" ] && return 0
        kill -0 "$H_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "emulator $name did not start:" >&2; cat "$WORK/$name.err" >&2; exit 1
}

write_kubeconfig() { # write_kubeconfig PORT FILE
    cat >"$2" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "http://127.0.0.1:$1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: local, context: {cluster: local, user: u, namespace: mirror-agent}}]
current-context: local
YAML
}

# --- the clusters -------------------------------------------------------------------------
echo "== $SERVICES exported Services over $LINKS remote clusters (${RD_PERCENT}% remote-discovery), $NAMESPACES namespaces; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
REMOTE_PIDS=()
REMOTE_URLS=()
for i in $(seq 0 $((LINKS - 1))); do
    start_harness "remote-$i"
    REMOTE_PIDS+=("$H_PID")
    REMOTE_URLS+=("http://127.0.0.1:$H_PORT")
done
start_harness local-1 --service-cidr 10.112.0.0/16
LOCAL_PID=$H_PID
LOCAL_URL="http://127.0.0.1:$H_PORT"
write_kubeconfig "$H_PORT" "$WORK/local-1.kubeconfig"

ip netns exec "$NS" "$PY" "$DRIVER" load --local "$LOCAL_URL" --remote "${REMOTE_URLS[@]}" \
    --services "$SERVICES" --rd-percent "$RD_PERCENT" --namespaces "$NAMESPACES" >"$WORK/load.json"
remote_cpu() { local total=0 pid; for pid in "${REMOTE_PIDS[@]}"; do total=$(awk -v a="$total" -v b="$(cpu_s "$pid")" 'BEGIN { printf "%.2f", a + b }'); done; echo "$total"; }
echo "loaded in $(jget "$WORK/load.json" seconds) s ($(jget "$WORK/load.json" remoteDiscovery) remote-discovery Services with an EndpointSlice); remote emulators' RSS $(for pid in "${REMOTE_PIDS[@]}"; do printf '%s ' "$(status_mib "$pid" VmRSS)"; done)MiB"

# --- phase 1 / 4: start -> every mirror created and published ----------------------------
# mirror_run LABEL LOCAL_PID KUBECONFIG [feed flags]: starts a follower, then the feed (local
# cluster at LOCAL_URL); waits
# for the follower; leaves the feed running (FEED_PID, FEED_URL) and prints the phase's figures.
mirror_run() {
    local label=$1 local_pid=$2 kubeconfig=$3; shift 3
    local port http log follower t0 l0 r0
    port=$(free_port); http=$(free_port)
    log="$WORK/feed-$label.log"; : >"$log"
    FEED_URL="http://127.0.0.1:$port"
    ip netns exec "$NS" "$PY" "$DRIVER" follow --feed "$FEED_URL" --log "$log" --expect "$SERVICES" \
        --timeout "$TIMEOUT" >"$WORK/follow-$label.json" &
    follower=$!
    PIDS+=("$follower")
    sleep 0.5 # the follower's interpreter is up before the clock starts
    l0=$(cpu_s "$local_pid"); r0=$(remote_cpu)
    t0=$(now_ns)
    ip netns exec "$NS" "$BIN" feed --source kubernetes --kubeconfig "$kubeconfig" --allow-plain-http --insecure \
        --listen "127.0.0.1:$port" --http-listen "127.0.0.1:$http" --admin-socket "$WORK/feed-$label.sock" \
        --identity bench "$@" >"$log" 2>&1 &
    FEED_PID=$!
    PIDS+=("$FEED_PID")
    FEED_SOCK="$WORK/feed-$label.sock"
    wait "$follower" || true
    forget "$follower"
    local f="$WORK/follow-$label.json"
    local feed_cpu feed_hwm local_cpu remote_cpu_s
    feed_cpu=$(cpu_s "$FEED_PID"); feed_hwm=$(status_mib "$FEED_PID" VmHWM)
    local_cpu=$(sub "$(cpu_s "$local_pid")" "$l0"); remote_cpu_s=$(sub "$(remote_cpu)" "$r0")
    if [ "$(jget "$f" published)" = null ] || [ "$(jget "$f" created)" = null ]; then
        echo "start -> mirrored did not complete within $TIMEOUT s: published $(jget "$f" lastCount), created $(jget "$f" lastCreated) of $SERVICES; the feed's log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    "$BIN" dump --feed -o json --admin-socket "$FEED_SOCK" >"$WORK/dump-$label.json"
    local created published problems
    created=$(jget "$WORK/dump-$label.json" kubernetes.created); published=$(jget "$WORK/dump-$label.json" kubernetes.servicesPublished)
    problems=$(jget "$WORK/dump-$label.json" kubernetes.writeProblems)
    [ "$created" = "$SERVICES" ] && [ "$published" = "$SERVICES" ] && [ "$problems" = 0 ] ||
        { echo "dump --feed: created $created, published $published, write problems $problems (want $SERVICES, $SERVICES, 0)" >&2; exit 1; }
    printf '  %-46s %8s s\n' "first state published ($(jget "$f" snapshotServices) services)" "$(sec "$t0" "$(jget "$f" snapshot)")"
    printf '  %-46s %8s s\n' "all $SERVICES mirror Services created" "$(sec "$t0" "$(jget "$f" created)")"
    printf '  %-46s %8s s   (%s deltas on /v1/watch in %s publications)\n' "all $SERVICES published with their ClusterIPs" \
        "$(sec "$t0" "$(jget "$f" published)")" "$(jget "$f" deltas)" "$(grep -c "MirrorFeed\] published" "$log" || true)"
    printf '  %-46s %8s s   peak RSS %s MiB   | emulators, same span: local %s s, remotes %s s CPU\n' \
        "feed CPU (user+sys, all threads)" "$feed_cpu" "$feed_hwm" "$local_cpu" "$remote_cpu_s"
    echo "  requests the local API server served (incl. 6 setup POSTs): $(ip netns exec "$NS" "$PY" "$DRIVER" requests --server "$LOCAL_URL")"
    PHASE_PUBLISHED=$(sec "$t0" "$(jget "$f" published)")
}

echo
echo "== 1. start -> mirrored, --write-qps $QPS (burst 100): $SERVICES exported, $LINKS Links"
mirror_run qps "$LOCAL_PID" "$WORK/local-1.kubeconfig" --write-qps "$QPS"
FAST_PUBLISHED=$PHASE_PUBLISHED
echo "  reference: Linkerd's service mirror degrades around 500 exported services (linkerd2 #9359)"

# --- phase 2: the agent ---------------------------------------------------------------------
echo
echo "== 2. agent: start -> kernel holds the $SERVICES services"
AGENT_LOG="$WORK/agent.log"
t0=$(now_ns)
ip netns exec "$NS" "$BIN" run --feed "$FEED_URL" --insecure --no-dns --admin-socket "$WORK/agent.sock" \
    --state-dir "$WORK/agent-state" --drift-check-interval 0 >"$AGENT_LOG" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")
for _ in $(seq 1 600); do grep -q "nftables in sync" "$AGENT_LOG" && break; sleep 0.05; done
grep -q "nftables in sync" "$AGENT_LOG" || { echo "the agent never synced; its log:" >&2; tail -n 20 "$AGENT_LOG" >&2; exit 1; }
t1=$(now_ns)
sleep 1
printf '  %-46s %8s s   (logged duration_ms %s; polled every 50 ms)\n' "agent start -> nftables in sync" "$(sec "$t0" "$t1")" \
    "$(grep "nftables in sync" "$AGENT_LOG" | head -n 1 | grep -o 'duration_ms=[0-9.]*' | cut -d= -f2)"
printf '  %-46s %8s MiB peak RSS, %s s CPU\n' "agent" "$(status_mib "$AGENT_PID" VmHWM)" "$(cpu_s "$AGENT_PID")"

# --- phase 3: one remote endpoint change -> kernel --------------------------------------------
echo
echo "== 3. one remote endpoint change -> agent's kernel: $CHANGES changes, one every ${GAP_MS} ms (plus the wait for each)"
synced_before=$(grep -c "nftables in sync" "$AGENT_LOG")
f0=$(cpu_s "$FEED_PID"); a0=$(cpu_s "$AGENT_PID"); r0=$(cpu_s "${REMOTE_PIDS[0]}"); l0=$(cpu_s "$LOCAL_PID")
if [ "${PROFILE:-0}" = 1 ]; then
    perf record -F 999 -g -p "$FEED_PID" -o "$WORK/perf.data" >/dev/null 2>&1 &
    PERF_PID=$!
    PIDS+=("$PERF_PID")
fi
ip netns exec "$NS" "$PY" "$DRIVER" changes --remote "${REMOTE_URLS[0]}" --feed "$FEED_URL" --count "$CHANGES" \
    --gap-ms "$GAP_MS" >"$WORK/changes.jsonl"
if [ "${PROFILE:-0}" = 1 ]; then
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    forget "$PERF_PID"
fi
feed_per=$(awk -v a="$f0" -v b="$(cpu_s "$FEED_PID")" -v n="$CHANGES" 'BEGIN { printf "%.1f", (b - a) * 1000 / (n + 1) }')
agent_per=$(awk -v a="$a0" -v b="$(cpu_s "$AGENT_PID")" -v n="$CHANGES" 'BEGIN { printf "%.1f", (b - a) * 1000 / (n + 1) }')
remote_per=$(awk -v a="$r0" -v b="$(cpu_s "${REMOTE_PIDS[0]}")" -v n="$CHANGES" 'BEGIN { printf "%.1f", (b - a) * 1000 / (n + 1) }')
local_per=$(awk -v a="$l0" -v b="$(cpu_s "$LOCAL_PID")" -v n="$CHANGES" 'BEGIN { printf "%.1f", (b - a) * 1000 / (n + 1) }')
column_of() { "$PY" -c '
import json, sys
for line in open(sys.argv[1]):
    v = json.loads(line)[sys.argv[2]]
    print("" if v is None else v)' "$WORK/changes.jsonl" "$1"; }
missing=$(column_of kernelMs | grep -c '^$' || true)
missing_feed=$(column_of feedMs | grep -c '^$' || true)
[ "$missing" = 0 ] && [ "$missing_feed" = 0 ] ||
    { echo "$missing_feed changes never reached the feed's stream, $missing never the kernel (10 s each)" >&2; exit 1; }
agent_ms=$(grep "nftables in sync" "$AGENT_LOG" | tail -n +$((synced_before + 2)) | grep -o 'duration_ms=[0-9.]*' | cut -d= -f2)
printf '  %-46s %8s %8s   ms\n' "" p50 p99
printf '  %-46s %8s %8s\n' "PATCH -> emulator's 200" "$(column_of ackMs | pct 50)" "$(column_of ackMs | pct 99)"
printf '  %-46s %8s %8s\n' "PATCH -> feed's upsertService on /v1/watch" "$(column_of feedMs | pct 50)" "$(column_of feedMs | pct 99)"
printf '  %-46s %8s %8s\n' "PATCH -> kernel (nf_tables notification)" "$(column_of kernelMs | pct 50)" "$(column_of kernelMs | pct 99)"
agent_part=$("$PY" -c '
import json, sys
for line in open(sys.argv[1]):
    row = json.loads(line)
    print(row["kernelMs"] - row["feedMs"])' "$WORK/changes.jsonl")
printf '  %-46s %8s %8s   (per change; both clocks are this process)\n' "  of which feed's delta -> kernel" "$(echo "$agent_part" | pct 50)" "$(echo "$agent_part" | pct 99)"
printf '  %-46s %8s %8s   (%s syncs logged)\n' "agent's own apply (logged duration_ms)" "$(echo "$agent_ms" | pct 50)" "$(echo "$agent_ms" | pct 99)" "$(echo "$agent_ms" | grep -c . || true)"
printf '  %-46s %8s ms   | emulators: remote %s ms, local %s ms CPU per change; agent %s ms\n' \
    "feed CPU per change" "$feed_per" "$remote_per" "$local_per" "$agent_per"
printf '  %-46s %8s MiB peak RSS, %s s CPU in all\n' "feed after the changes" "$(status_mib "$FEED_PID" VmHWM)" "$(cpu_s "$FEED_PID")"
if [ "${PROFILE:-0}" = 1 ]; then
    echo "  the feed's CPU during the changes by function (perf; inclusive, self; top 30 below the thread entry points):"
    perf report -i "$WORK/perf.data" --children --sort symbol --stdio -g none 2>/dev/null | swift demangle --simplified 2>/dev/null |
        grep -E '^ +[0-9.]+%' | grep -vE 'start_thread|_dispatch_|swift_job_run|runJobInEstablished|\[\.\] 0x0|\[\.\] 0000' |
        head -n 30 | cut -c1-150 | sed 's/ *$//; s/^/    /'
fi

# --- phase 4: the default write rate ----------------------------------------------------------
echo
echo "== 4. start -> mirrored at the default --write-qps 50 (burst 100)"
echo "  computed: (SERVICES - burst) / 50 = $(awk -v n="$SERVICES" 'BEGIN { printf "%.0f", (n > 100 ? n - 100 : 0) / 50 }') s of writes alone (vs ${FAST_PUBLISHED} s measured at --write-qps $QPS)"
stop "$AGENT_PID"
stop "$FEED_PID"
if [ "$DEFAULT_QPS_RUN" = 1 ]; then
    stop "$LOCAL_PID"
    start_harness local-2 --service-cidr 10.112.0.0/16
    LOCAL_PID=$H_PID
    LOCAL_URL="http://127.0.0.1:$H_PORT"
    write_kubeconfig "$H_PORT" "$WORK/local-2.kubeconfig"
    ip netns exec "$NS" "$PY" "$DRIVER" links --local "$LOCAL_URL" --remote "${REMOTE_URLS[@]}"
    mirror_run default "$LOCAL_PID" "$WORK/local-2.kubeconfig"
    stop "$FEED_PID"
else
    echo "  (DEFAULT_QPS_RUN=0: not measured)"
fi
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on these cores stretches the wall times, not the CPU seconds)"
