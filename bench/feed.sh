#!/usr/bin/env bash
# Feed fan-out: one `mirror-agent feed` (release build) and W watching clients on loopback;
# C one-endpoint edits of the state file; prints the p50/p99 time from the file's rename to
# the last watcher having applied the change, the server's RSS, and the bytes sent per delta
# per watcher. Target (docs/architecture.md): p99 <= 200 ms with 2,000 watchers.
#
# Usage: bench/feed.sh [WATCHERS=2000] [CHANGES=100] [SERVICES=100]
#        env: TRANSPORT=both|tls|plain (default both)  PROCESSES=4  POLL_MS=10
#
# What the headline figure includes: the feed's poll of the state file (every POLL_MS, so
# ~POLL_MS/2 on average), re-reading and validating the whole file, diffing, encoding the
# delta once, writing it to every watcher (TLS: encrypting it per watcher), and each watcher
# (the agent's FeedClient) decoding, validating and applying it to its own store. The W
# clients are spread over PROCESSES processes (`FeedBench clients`), each timestamping its
# watchers' progress with CLOCK_MONOTONIC; the driver merges them. They still share this
# machine's cores with the server (a real fleet spreads them over W nodes), so the second
# line, wire-only watchers that just read the stream, shows the server's fan-out alone.
# The server's CPU per change (from /proc) does not depend on other load, unlike the tail.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
watchers=${1:-2000}
changes=${2:-100}
services=${3:-100}
poll_ms=${POLL_MS:-10}
processes=${PROCESSES:-4}
transport=${TRANSPORT:-both}
case "$transport" in both) transports="tls plain" ;; tls|plain) transports=$transport ;; *) echo "TRANSPORT is both, tls or plain" >&2; exit 1 ;; esac
(( watchers <= 5000 && changes <= 1000 )) || { echo "at most 5000 watchers and 1000 changes (bounded load)" >&2; exit 1; }
hard=$(ulimit -Hn); [ "$hard" = unlimited ] && hard=65536; ulimit -n $(( hard < 65536 ? hard : 65536 ))
(( $(ulimit -n) > watchers + 256 )) || { echo "ulimit -n $(ulimit -n) is too low for $watchers watchers" >&2; exit 1; }

swift build -c release --product mirror-agent >/dev/null
swift build -c release --product FeedBench >/dev/null
bin=.build/release
work=$(mktemp -d /tmp/feed-bench.XXXXXX)
feed_pid=""
stop_feed() { if [ -n "$feed_pid" ]; then kill "$feed_pid" 2>/dev/null || true; wait "$feed_pid" 2>/dev/null || true; feed_pid=""; fi; }
cleanup() { stop_feed; rm -rf "$work"; }
trap cleanup EXIT

# A throwaway PKI for the TLS runs: CA, server certificate for 127.0.0.1, client certificate.
make_pki() (
  cd "$work"
  key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
  key ca.key; openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj /CN=bench-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  for leaf in server client; do
    key $leaf.key; openssl req -new -key $leaf.key -out $leaf.csr -subj /CN=$leaf 2>/dev/null
    if [ $leaf = server ]; then printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >$leaf.ext
    else printf 'extendedKeyUsage=clientAuth\n' >$leaf.ext; fi
    openssl x509 -req -in $leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $leaf.pem -days 2 -extfile $leaf.ext 2>/dev/null
  done
)

"$bin/FeedBench" init --state "$work/state.json" --services "$services"
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
echo "== feed fan-out: $watchers watchers in $processes client processes, $changes one-endpoint changes, $((services + 1)) services, poll ${poll_ms} ms, $(nproc) cores"
echo "state file:  $(stat -c %s "$work/state.json") bytes; 'mirror-agent check' of it takes ${parse_ms} ms (process start + parse + validate)"
echo "client CPU per delta (FeedBench micro, one 16-endpoint service, no network): $("$bin/FeedBench" micro | paste -sd ';' | sed 's/;/; /')"
echo "server CPU per change after reading the file (FeedBench publisher): $("$bin/FeedBench" publisher --services "$services")"

for mode in $transports; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  if [ "$mode" = tls ]; then
    [ -f "$work/ca.pem" ] || make_pki
    server_flags=(--tls-cert "$work/server.pem" --tls-key "$work/server.key" --client-ca "$work/ca.pem")
    client_flags=(--tls-cert "$work/client.pem" --tls-key "$work/client.key" --tls-ca "$work/ca.pem")
    url="https://127.0.0.1:$port"
    curl_flags=(--cacert "$work/ca.pem" --cert "$work/client.pem" --key "$work/client.key")
  else
    server_flags=(--insecure); client_flags=(); url="http://127.0.0.1:$port"; curl_flags=()
  fi
  "$bin/mirror-agent" feed --source "file:$work/state.json" --listen "127.0.0.1:$port" "${server_flags[@]}" \
    --poll-interval "$poll_ms" --bookmark-interval 60 --log-level warning 2>"$work/feed-$mode.log" >/dev/null &
  feed_pid=$!
  for _ in $(seq 100); do curl -sf "${curl_flags[@]}" "$url/readyz" >/dev/null && break; sleep 0.1; done
  for kind in full wire; do
    if [ $kind = full ]; then
      echo "-- $mode, full clients (the agent's FeedClient: decode, validate, apply) — headline"
      wire_flag=()
    else
      echo "-- $mode, wire-only watchers (read the stream, note the revision: the server's fan-out alone)"
      wire_flag=(--wire)
    fi
    "$bin/FeedBench" run --url "$url" --state "$work/state.json" --services "$services" --watchers "$watchers" \
      --changes "$changes" --processes "$processes" --server-pid "$feed_pid" "${client_flags[@]}" "${wire_flag[@]}"
    rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$feed_pid/status")
    hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$feed_pid/status")
    echo "server:      RSS $((rss_kib / 1024)) MiB with $watchers watchers connected (peak $((hwm_kib / 1024)) MiB so far)"
  done
  if grep -qiE "error|critical" "$work/feed-$mode.log"; then echo "feed log ($mode):"; cat "$work/feed-$mode.log"; fi
  stop_feed
done
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; other work on these cores inflates the tail)"
echo "target:      p99 <= 200 ms with 2,000 watchers (docs/architecture.md); bytes per delta ~ size of the one changed service"
