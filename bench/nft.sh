#!/usr/bin/env bash
# bench/nft.sh — programs N mirrored service ports (10% multi-target) with the agent and with
# `nft -f` of the agent's own --print-ruleset output, side by side, each in a fresh network
# namespace. Prints wall times, the ratio and the agent's peak RSS.
#
#   bench/nft.sh [N ...]        default: 1000 10000 100000
#   AGENT_BIN=/path/to/mirror-agent bench/nft.sh 100000   the same rows for another build
#
# Rows:
#   from-empty   agent: `run --once` (whole process: parse state, translate, program, exit)
#                and "program" = translate + reconcile as the agent logs it; the RSS line
#                under it splits the peak into state loading (`check --state`) and the rest;
#                nft:   `nft -f ruleset.nft` into an empty namespace.
#   restart      (largest N) agent `run --once` again on the programmed namespace: must send an
#                empty batch (settled by the reconcile marker when nothing else committed,
#                else by reading the tables back); nft: `nft -f` of "flush ruleset" + the
#                whole ruleset.
#   restart-rd   the same after another process committed (the tables are read back).
#   one-change   (largest N) a running agent sees one endpoint of one multi-target service go
#                unready (3 -> 2 targets: a few elements change); "program" is its logged feed-event-to-kernel
#                time; nft: `nft -f` of the equivalent four commands.
#   one-removal  (largest N) then one single-target service disappears (one map element);
#                the line under it gives the running agent's VmRSS once in sync and after both.
# Needs root. Never touches the host's ruleset: everything runs in namespaces it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "bench/nft.sh: needs root (network namespaces, nftables)" >&2; exit 1; }
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 10000 100000)

if [ -n "${AGENT_BIN:-}" ]; then
    BIN="$AGENT_BIN" # another build (e.g. the code a change replaces), to run the rows against it
else
    echo "== building (release)" >&2
    swift build -c release --product mirror-agent >/dev/null
    BIN="$PWD/.build/release/mirror-agent"
fi
NO_DNS=(--no-dns)
WORK=$(mktemp -d /tmp/nft-bench.XXXXXX)
NAMESPACES=()
AGENT_PID=""
cleanup() {
    if [ -n "$AGENT_PID" ]; then kill "$AGENT_PID" 2>/dev/null || true; fi
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# Creates a namespace and names it in $NS (no command substitution: the cleanup list must be
# updated in this shell, not a subshell).
fresh_ns() {
    NS="nftbench-$$-$1"
    ip netns add "$NS"
    NAMESPACES+=("$NS")
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }'; }
logged_ms() { grep -o 'duration_ms=[0-9.]*' "$1" | tail -n 1 | cut -d= -f2; }
ms_to_s() { awk -v m="$1" 'BEGIN { printf "%.4f", m / 1000 }'; }

printf "%-11s %8s | %10s %10s %9s | %10s | %7s %7s\n" case N agent-wall program-s agent-RSS "nft -f" "nft/wall" "nft/prog"
row() { # case n wall program rss nft
    printf "%-11s %8s | %9ss %9ss %6sMiB | %9ss | %7s %7s\n" "$1" "$2" "$3" "$4" "$5" "$6" "$(ratio "$6" "$3")" "$(ratio "$6" "$4")"
}

LAST=${SIZES[${#SIZES[@]}-1]}
for n in "${SIZES[@]}"; do
    python3 bench/gen-state.py "$n" > "$WORK/state-$n.json"
    "$BIN" run --feed "file:$WORK/state-$n.json" --print-ruleset > "$WORK/ruleset-$n.nft"

    fresh_ns "agent-$n"; agent_ns=$NS
    start=$(now)
    ip netns exec "$agent_ns" /usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" run --feed "file:$WORK/state-$n.json" --once 2> "$WORK/log" >/dev/null
    wall=$(elapsed "$start" "$(now)")
    program=$(ms_to_s "$(logged_ms "$WORK/log")")
    rss=$(( $(tail -n 1 "$WORK/rss") / 1024 ))

    fresh_ns "nft-$n"; nft_ns=$NS
    start=$(now)
    ip netns exec "$nft_ns" nft -f "$WORK/ruleset-$n.nft"
    nft_wall=$(elapsed "$start" "$(now)")
    row from-empty "$n" "$wall" "$program" "$rss" "$nft_wall"
    # RSS breakdown: `check --state` loads and validates the same state without programming
    # anything, so the difference is what translation, the nftables model and the batch cost.
    /usr/bin/time -f "%M" -o "$WORK/rss-check" "$BIN" check --state "$WORK/state-$n.json" >/dev/null 2>&1 || true
    check_rss=$(( $(tail -n 1 "$WORK/rss-check") / 1024 ))
    echo "   (RSS: state load (check --state) ${check_rss} MiB, nftables side $(( rss - check_rss )) MiB)"
    if [ "$n" = "$LAST" ] && command -v strace >/dev/null; then
        # The kernel's own share: the longest sendmsg of `nft -f` (the batch; nf_tables works
        # in the sender's context), with the per-element counters and without them.
        kernel_time() { # ruleset file, label
            fresh_ns "kernel-$2"
            ip netns exec "$NS" strace -T -e trace=sendmsg -o "$WORK/strace" nft -f "$1"
            ip netns del "$NS"  # a subshell: the exit trap does not know this one
            grep -o '<[0-9.]*>$' "$WORK/strace" | tr -d '<>' | sort -g | tail -n 1
        }
        sed 's/^[[:space:]]*counter$//' "$WORK/ruleset-$n.nft" > "$WORK/ruleset-nocounter.nft"
        echo "   (kernel alone, nft -f's batch sendmsg: $(kernel_time "$WORK/ruleset-$n.nft" counters) s with per-element counters," \
             "$(kernel_time "$WORK/ruleset-nocounter.nft" plain) s without: the floor under 'program')"
    fi

    if [ "$n" = "$LAST" ]; then
        start=$(now)
        ip netns exec "$agent_ns" /usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" run --feed "file:$WORK/state-$n.json" --once --log-level debug 2> "$WORK/log" >/dev/null
        wall=$(elapsed "$start" "$(now)")
        grep -q 'batch=empty' "$WORK/log" || { echo "restart did not send an empty batch:" >&2; cat "$WORK/log" >&2; exit 1; }
        checked=$(grep -o 'checked=[a-z-]*' "$WORK/log" | tail -n 1 | cut -d= -f2)
        program=$(ms_to_s "$(logged_ms "$WORK/log")")
        rss=$(( $(tail -n 1 "$WORK/rss") / 1024 ))
        { echo "flush ruleset"; cat "$WORK/ruleset-$n.nft"; } > "$WORK/reload.nft"
        start=$(now)
        ip netns exec "$nft_ns" nft -f "$WORK/reload.nft"
        reload=$(elapsed "$start" "$(now)")
        row restart "$n" "$wall" "$program" "$rss" "$reload"
        echo "   (kernel state checked by: ${checked:-?})"

        # Another process commits something unrelated (as kube-proxy does all the time): the
        # marker's generation is stale, so the restart reads the tables back and diffs.
        ip netns exec "$agent_ns" nft add table ip bench-foreign
        start=$(now)
        ip netns exec "$agent_ns" /usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" run --feed "file:$WORK/state-$n.json" --once --log-level debug 2> "$WORK/log" >/dev/null
        wall=$(elapsed "$start" "$(now)")
        grep -q 'batch=empty' "$WORK/log" || { echo "restart after a foreign commit did not send an empty batch:" >&2; cat "$WORK/log" >&2; exit 1; }
        checked=$(grep -o 'checked=[a-z-]*' "$WORK/log" | tail -n 1 | cut -d= -f2)
        row restart-rd "$n" "$wall" "$(ms_to_s "$(logged_ms "$WORK/log")")" "$(( $(tail -n 1 "$WORK/rss") / 1024 ))" "$reload"
        echo "   (after a foreign commit; kernel state checked by: ${checked:-?})"

        cp "$WORK/state-$n.json" "$WORK/live.json"
        ip netns exec "$agent_ns" "$BIN" run --feed "file:$WORK/live.json" "${NO_DNS[@]}" 2> "$WORK/agent.log" >/dev/null &
        AGENT_PID=$!
        for _ in $(seq 1 600); do grep -q 'nftables in sync' "$WORK/agent.log" && break; sleep 0.2; done
        sleep 2 # what stays resident once programmed (the issue-4 figure), not the peak
        steady=$(( $(awk '/VmRSS/ { print $2 }' "/proc/$AGENT_PID/status") / 1024 ))
        one_step() { # label generator-flags nft-flag: apply one state-file change, print a row
            local before
            before=$(grep -c 'nftables in sync' "$WORK/agent.log")
            python3 bench/gen-state.py "$n" $2 > "$WORK/next.json"
            mv "$WORK/next.json" "$WORK/live.json"
            for _ in $(seq 1 600); do [ "$(grep -c 'nftables in sync' "$WORK/agent.log")" -gt "$before" ] && break; sleep 0.2; done
            local line
            line=$(grep 'nftables in sync' "$WORK/agent.log" | tail -n 1)
            echo "$line" | grep -q 'mode=incremental' || { echo "no incremental update seen:" >&2; cat "$WORK/agent.log" >&2; exit 1; }
            local program rss
            program=$(ms_to_s "$(echo "$line" | grep -o 'duration_ms=[0-9.]*' | cut -d= -f2)")
            rss=$(( $(awk '/VmHWM/ { print $2 }' "/proc/$AGENT_PID/status") / 1024 ))
            python3 bench/gen-state.py "$n" "$3" > "$WORK/change.nft"
            local start
            start=$(now)
            ip netns exec "$nft_ns" nft -f "$WORK/change.nft"
            row "$1" "$n" "-" "$program" "$rss" "$(elapsed "$start" "$(now)")"
            echo "   ($(echo "$line" | grep -o 'batch=[^=]*duration' | sed 's/ duration//'))"
        }
        one_step one-change "--changed" --nft-change
        one_step one-removal "--changed --removed" --nft-remove
        sleep 2
        echo "   (running agent: VmRSS ${steady} MiB 2 s after in sync, $(( $(awk '/VmRSS/ { print $2 }' "/proc/$AGENT_PID/status") / 1024 )) MiB after the two changes; a file source re-reads the whole state per change)"
        kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=""
    fi
    ip netns del "$agent_ns"; ip netns del "$nft_ns"
done
echo "targets: 100k from empty <= 0.4 s and >= 4x faster than nft -f; one change <= 5 ms; restart <= 1 s with an empty batch; <= 100 MiB RSS"
