#!/usr/bin/env bash
# Feed fan-out: one `mirror-agent feed` (release build) and W watching clients on loopback;
# C one-endpoint edits of the state file; prints the p50/p99 time from the file's rename to
# the last watcher having applied the change, the server's RSS, and the bytes sent per delta
# per watcher. Target (DESIGN.md): p99 <= 200 ms with 2,000 watchers.
#
# Usage: bench/feed.sh [WATCHERS=2000] [CHANGES=100] [SERVICES=100]   (POLL_MS=10)
# What the figure includes: the feed's poll of the state file (every POLL_MS, default 10 ms,
# so ~POLL_MS/2 on average), re-reading and validating the whole file, diffing, encoding the
# delta once, writing it to every watcher, and each watcher decoding, validating and applying
# it to its own store. All W clients run in one process (FeedBench) on the same 2 cores as the
# server, so client CPU competes with the server's: a real fleet spreads it over W nodes.
# Hence two passes against the same server: W full clients (the agent's FeedClient), then W
# wire-only watchers that just read the stream (the server's fan-out without client CPU).
# Each pass also prints the server's CPU per change (from /proc), which does not depend on
# what else runs on the machine, unlike the latency tail.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
watchers=${1:-2000}
changes=${2:-100}
services=${3:-100}
poll_ms=${POLL_MS:-10}
(( watchers <= 5000 )) || { echo "at most 5000 watchers (bounded load)" >&2; exit 1; }
hard=$(ulimit -Hn); [ "$hard" = unlimited ] && hard=65536; ulimit -n $(( hard < 65536 ? hard : 65536 ))
(( $(ulimit -n) > watchers + 256 )) || { echo "ulimit -n $(ulimit -n) is too low for $watchers watchers" >&2; exit 1; }

swift build -c release --product mirror-agent >/dev/null
swift build -c release --product FeedBench >/dev/null
bin=.build/release
work=$(mktemp -d /tmp/feed-bench.XXXXXX)
feed_pid=""
cleanup() { [ -n "$feed_pid" ] && kill "$feed_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$bin/FeedBench" init --state "$work/state.json" --services "$services"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
"$bin/mirror-agent" feed --source "file:$work/state.json" --listen "127.0.0.1:$port" --insecure \
  --poll-interval "$poll_ms" --bookmark-interval 60 --log-level warning 2>"$work/feed.log" >"${FEED_STDOUT:-/dev/null}" &
feed_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done

parse_ms=$(python3 - "$bin/mirror-agent" "$work/state.json" <<'PY'
import subprocess, sys, time
runs = []
for _ in range(5):
    t = time.perf_counter(); subprocess.run([sys.argv[1], "check", "--state", sys.argv[2]], stdout=subprocess.DEVNULL, check=True)
    runs.append((time.perf_counter() - t) * 1000)
print(f"{sorted(runs)[2]:.1f}")
PY
)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== feed fan-out: $watchers watchers, $changes one-endpoint changes, $((services + 1)) services, poll ${poll_ms} ms, $(nproc) cores"
echo "state file:  $(stat -c %s "$work/state.json") bytes; 'mirror-agent check' of it takes ${parse_ms} ms (process start + parse + validate), part of every figure below"
echo "client CPU per delta (FeedBench micro, one 16-endpoint service, no network): $("$bin/FeedBench" micro | tr '\n' ' ')"
echo "-- full clients (the agent's FeedClient: decode, validate, apply; all in one process on the same cores)"
"$bin/FeedBench" run --url "http://127.0.0.1:$port" --state "$work/state.json" --services "$services" \
  --watchers "$watchers" --changes "$changes" --server-pid "$feed_pid"
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$feed_pid/status")
echo "server:      RSS $((rss_kib / 1024)) MiB with $watchers full watchers connected"
echo "-- wire-only watchers (read the stream, note the revision; the server's fan-out alone)"
"$bin/FeedBench" run --url "http://127.0.0.1:$port" --state "$work/state.json" --services "$services" \
  --watchers "$watchers" --changes "$changes" --wire --server-pid "$feed_pid"
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$feed_pid/status")
hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$feed_pid/status")
echo "server:      RSS $((rss_kib / 1024)) MiB (peak $((hwm_kib / 1024)) MiB over the run)"
echo "load:        $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; other work on these cores inflates the tail)"
echo "target:      p99 <= 200 ms with 2,000 watchers (DESIGN.md); bytes per delta ~ size of the one changed service"
if grep -qiE "error|critical" "$work/feed.log"; then echo "feed log:"; cat "$work/feed.log"; fi
