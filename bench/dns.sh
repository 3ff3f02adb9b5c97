#!/usr/bin/env bash
# DNS benchmark: mirror-agent against the references docs/architecture.md names, side by side.
#
#   1. mirrored names: 10k services, the same names and query file, answered by
#      mirror-agent (from its state file) and by unbound (local-data);
#   2. forwarded names, cache hits: dnsmasq and mirror-agent both forwarding to one unbound,
#      caches warmed by one pass over the query file first.
#
# dnsperf sends at a fixed rate (RATE qps for DURATION s per run). Server CPU per query comes
# from the server's utime+stime in /proc/PID/stat around the run; latencies from dnsperf -v.
# Each run is repeated ROUNDS times, alternating servers, and the median of each figure is
# printed, so that other load on the machine does not favour whoever ran in a quiet moment.
# SYSCALLS=1 adds syscalls per query, from `perf stat -e raw_syscalls:sys_enter` on the server.
# PROFILE=DIR records each run with `perf record -g` on the server into DIR/<label>.data and
# prints its top symbols (the last round's), to see where a server's CPU per query goes.
# Usage: bench/dns.sh   (env: RATE=20000 DURATION=5 ROUNDS=3 NAMES=10000 (up to 1.5M) FORWARDED=5000 THREADS=<cores>
#                        SYSCALLS=0 AGENT_BIN=<skip the build, run this binary> BASELINE_BIN=<also run this agent>)
# BASELINE_BIN runs a second agent (e.g. a build of main) in the same rounds, as extra rows
# "*/baseline", so a change is measured against the code it replaces side by side too.
# THREADS is both unbound's num-threads and mirror-agent's --dns-threads (dnsmasq has one).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
RATE="${RATE:-20000}"
DURATION="${DURATION:-5}"
ROUNDS="${ROUNDS:-3}"
NAMES="${NAMES:-10000}"
FORWARDED="${FORWARDED:-5000}"
THREADS="${THREADS:-$(nproc)}"
AGENT_PORT=25400 UNBOUND_PORT=25401 UPSTREAM_PORT=25402 DNSMASQ_PORT=25403 BASELINE_PORT=25404

for tool in dnsperf unbound dnsmasq; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
if [[ -n "${AGENT_BIN:-}" ]]; then
  agent_bin=$AGENT_BIN  # e.g. a copy of an earlier build, to compare two agents
else
  echo "== building mirror-agent (release)"
  swift build -c release --product mirror-agent 2>&1 | tail -n 1
  agent_bin=.build/release/mirror-agent
fi

work=$(mktemp -d /tmp/dns-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

echo "== generating $NAMES mirrored services and $FORWARDED forwarded names"
{
  echo "clusterDomain: cluster.local"
  echo "clusters:"
  echo "  - {name: paris, gateway: {addresses: [\"10.99.1.2\"], port: 4143}}"
  echo "services:"
  for ((i = 0; i < NAMES; i++)); do
    echo "  - {name: svc$i, namespace: bench, cluster: paris, mode: gateway, ips: [\"10.$((100 + i / 62500)).$((i / 250 % 250)).$((i % 250 + 1))\"], ports: [{name: http, protocol: TCP, port: 80}]}"
  done
} > "$work/state.yaml"
for ((i = 0; i < NAMES; i++)); do echo "svc$i-paris.bench.svc.cluster.local A"; done > "$work/mirrored.txt"
for ((i = 0; i < FORWARDED; i++)); do echo "host$i.example.test A"; done > "$work/forwarded.txt"

unbound_conf() { # port, extra lines file
  cat <<CONF
server:
  interface: 127.0.0.1
  port: $1
  do-daemonize: no
  use-syslog: no
  username: ""
  chroot: ""
  directory: "$work"
  pidfile: ""
  num-threads: $THREADS
  so-reuseport: yes
  access-control: 127.0.0.0/8 allow
  verbosity: 0
CONF
  cat "$2"
}
{
  echo '  local-zone: "cluster.local." static'
  for ((i = 0; i < NAMES; i++)); do
    echo "  local-data: \"svc$i-paris.bench.svc.cluster.local. 5 IN A 10.$((100 + i / 62500)).$((i / 250 % 250)).$((i % 250 + 1))\""
  done
} > "$work/mirrored-data"
{
  echo '  local-zone: "example.test." static'
  for ((i = 0; i < FORWARDED; i++)); do
    echo "  local-data: \"host$i.example.test. 3600 IN A 192.0.$((i / 250 % 256)).$((i % 250 + 1))\""
  done
} > "$work/forwarded-data"
unbound_conf "$UNBOUND_PORT" "$work/mirrored-data" > "$work/unbound-mirrored.conf"
unbound_conf "$UPSTREAM_PORT" "$work/forwarded-data" > "$work/unbound-upstream.conf"

echo "== starting servers"
unbound -d -c "$work/unbound-mirrored.conf" >"$work/unbound-mirrored.log" 2>&1 & unbound_pid=$!; pids+=("$unbound_pid")
unbound -d -c "$work/unbound-upstream.conf" >"$work/unbound-upstream.log" 2>&1 & pids+=($!)
dnsmasq -k --port="$DNSMASQ_PORT" --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
  --server="127.0.0.1#$UPSTREAM_PORT" --cache-size=10000 --pid-file= --user=root >"$work/dnsmasq.log" 2>&1 & dnsmasq_pid=$!; pids+=("$dnsmasq_pid")
"$agent_bin" run --feed "file:$work/state.yaml" --dns-listen "127.0.0.1:$AGENT_PORT" --upstream "127.0.0.1:$UPSTREAM_PORT" \
  --dns-threads "$THREADS" --admin-socket "$work/agent.sock" --log-level warning >"$work/agent.log" 2>&1 & agent_pid=$!; pids+=("$agent_pid")
labels=(mirrored/unbound mirrored/mirror-agent forwarded/dnsmasq forwarded/mirror-agent)
if [[ -n "${BASELINE_BIN:-}" ]]; then
  "$BASELINE_BIN" run --feed "file:$work/state.yaml" --dns-listen "127.0.0.1:$BASELINE_PORT" --upstream "127.0.0.1:$UPSTREAM_PORT" \
    --dns-threads "$THREADS" --log-level warning >"$work/baseline.log" 2>&1 & baseline_pid=$!; pids+=("$baseline_pid")
  labels+=(mirrored/baseline forwarded/baseline)
fi

wait_ready() { # port name
  for _ in $(seq 1 600); do
    if dig @127.0.0.1 -p "$1" +time=1 +tries=1 +short "$2" 2>/dev/null | grep -q .; then return 0; fi
    sleep 0.1
  done
  echo "error: nothing answers $2 on port $1" >&2; cat "$work"/*.log >&2; exit 1
}
wait_ready "$AGENT_PORT" "svc0-paris.bench.svc.cluster.local"
[[ -n "${BASELINE_BIN:-}" ]] && wait_ready "$BASELINE_PORT" "svc0-paris.bench.svc.cluster.local"
wait_ready "$UNBOUND_PORT" "svc0-paris.bench.svc.cluster.local"
wait_ready "$UPSTREAM_PORT" "host0.example.test"
wait_ready "$DNSMASQ_PORT" "host0.example.test"

# Syscalls are counted (SYSCALLS=1) only when perf can count the tracepoint here.
count_syscalls=0
if [[ "${SYSCALLS:-0}" == 1 ]] && perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then count_syscalls=1; fi
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# run LABEL PID PORT QUERYFILE -> one result line in $work/results
run() {
  local label=$1 pid=$2 port=$3 queries=$4
  local before after
  local perf_pid=""
  rm -f "$work/perf.out"
  if [[ "$count_syscalls" == 1 ]]; then
    perf stat -x, -e raw_syscalls:sys_enter -p "$pid" -o "$work/perf.out" & perf_pid=$!
  fi
  local prof_pid=""
  if [[ -n "${PROFILE:-}" ]]; then
    perf record -q -g -F 4999 -p "$pid" -o "$PROFILE/${label//\//-}.data" 2>/dev/null & prof_pid=$!
  fi
  before=$(ticks "$pid")
  dnsperf -s 127.0.0.1 -p "$port" -d "$queries" -l "$DURATION" -Q "$RATE" -c 8 -q 1000 -v >"$work/run.out" 2>&1 || true
  after=$(ticks "$pid")
  if [[ -n "$perf_pid" ]]; then kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true; fi
  if [[ -n "$prof_pid" ]]; then kill -INT "$prof_pid" 2>/dev/null || true; wait "$prof_pid" 2>/dev/null || true; fi
  local completed qps
  completed=$(awk '/Queries completed:/ {print $3}' "$work/run.out")
  qps=$(awk '/Queries per second:/ {print $4}' "$work/run.out")
  local lat
  lat=$(awk '/^> / {print $NF}' "$work/run.out" | sort -g | awk '{a[NR]=$1; s+=$1} END {if (NR==0) {print "0 0"; exit}; i=int(NR*0.99); if (i<1) i=1; printf "%.1f %.1f", s/NR*1e6, a[i]*1e6}')
  local cpu_us
  cpu_us=$(awk -v d=$((after - before)) -v hz="$hz" -v n="$completed" 'BEGIN {printf "%.2f", (n > 0) ? d * 1e6 / hz / n : 0}')
  local syscalls
  syscalls=$(awk -F, -v n="$completed" '/raw_syscalls:sys_enter/ {s=$1} END {printf "%.2f", (n > 0 && s != "") ? s / n : 0}' "$work/perf.out" 2>/dev/null || echo 0)
  printf "%s %s %s %s %s %s\n" "$label" "$qps" "$cpu_us" ${lat} "$syscalls" "$completed" >> "$work/results"
  echo "   $label: $completed answered"
}

echo "== warm-up"
dnsperf -s 127.0.0.1 -p "$AGENT_PORT" -d "$work/mirrored.txt" -n 1 -Q "$RATE" >/dev/null 2>&1 || true
dnsperf -s 127.0.0.1 -p "$UNBOUND_PORT" -d "$work/mirrored.txt" -n 1 -Q "$RATE" >/dev/null 2>&1 || true
dnsperf -s 127.0.0.1 -p "$AGENT_PORT" -d "$work/forwarded.txt" -n 1 -Q 5000 >/dev/null 2>&1 || true
dnsperf -s 127.0.0.1 -p "$DNSMASQ_PORT" -d "$work/forwarded.txt" -n 1 -Q 5000 >/dev/null 2>&1 || true
if [[ -n "${BASELINE_BIN:-}" ]]; then
  dnsperf -s 127.0.0.1 -p "$BASELINE_PORT" -d "$work/mirrored.txt" -n 1 -Q "$RATE" >/dev/null 2>&1 || true
  dnsperf -s 127.0.0.1 -p "$BASELINE_PORT" -d "$work/forwarded.txt" -n 1 -Q 5000 >/dev/null 2>&1 || true
fi

echo "== measuring: ${RATE} qps for ${DURATION} s per run, ${ROUNDS} rounds, ${THREADS} server thread(s)"
: > "$work/all-results"
for ((round = 1; round <= ROUNDS; round++)); do
  : > "$work/results"
  run "mirrored/unbound" "$unbound_pid" "$UNBOUND_PORT" "$work/mirrored.txt"
  run "mirrored/mirror-agent" "$agent_pid" "$AGENT_PORT" "$work/mirrored.txt"
  run "forwarded/dnsmasq" "$dnsmasq_pid" "$DNSMASQ_PORT" "$work/forwarded.txt"
  run "forwarded/mirror-agent" "$agent_pid" "$AGENT_PORT" "$work/forwarded.txt"
  if [[ -n "${BASELINE_BIN:-}" ]]; then
    run "mirrored/baseline" "$baseline_pid" "$BASELINE_PORT" "$work/mirrored.txt"
    run "forwarded/baseline" "$baseline_pid" "$BASELINE_PORT" "$work/forwarded.txt"
  fi
  cat "$work/results" >> "$work/all-results"
done

# Median of each column per run label, in the order above.
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
: > "$work/results"
for label in "${labels[@]}"; do
  line=$label
  for column in 2 3 4 5 6; do
    line="$line $(awk -v l="$label" -v c="$column" '$1 == l {print $c}' "$work/all-results" | median)"
  done
  echo "$line" >> "$work/results"
done

echo
echo "medians of ${ROUNDS} rounds:"
awk '
  { label[NR]=$1; qps[NR]=$2; cpu[NR]=$3; avg[NR]=$4; p99[NR]=$5; sys[NR]=$6 }
  END {
    printf "%-24s %10s %14s %12s %12s %16s\n", "run", "QPS", "CPU us/query", "avg us", "p99 us", "syscalls/query"
    for (i = 1; i <= NR; i++) printf "%-24s %10.0f %14.2f %12.1f %12.1f %16.2f\n", label[i], qps[i], cpu[i], avg[i], p99[i], sys[i]
    print ""
    printf "mirrored names,  mirror-agent / unbound:  CPU per query %.2fx, avg latency %.2fx, p99 %.2fx\n", cpu[2]/cpu[1], avg[2]/avg[1], p99[2]/p99[1]
    printf "forwarded (hit), mirror-agent / dnsmasq:  CPU per query %.2fx, avg latency %.2fx, p99 %.2fx\n", cpu[4]/cpu[3], avg[4]/avg[3], p99[4]/p99[3]
    if (NR >= 6) {
      printf "mirrored names,  baseline / unbound:      CPU per query %.2fx, avg latency %.2fx, p99 %.2fx\n", cpu[5]/cpu[1], avg[5]/avg[1], p99[5]/p99[1]
      printf "forwarded (hit), baseline / dnsmasq:      CPU per query %.2fx, avg latency %.2fx, p99 %.2fx\n", cpu[6]/cpu[3], avg[6]/avg[3], p99[6]/p99[3]
    }
  }' "$work/results"

echo
echo "mirror-agent's own counts over all runs (forwarded-name runs must be cache hits, not upstream queries):"
"$agent_bin" dump --admin-socket "$work/agent.sock" 2>/dev/null | grep -E '^dns ' | grep -o 'queries=[^=]*' || true

if [[ -n "${PROFILE:-}" ]]; then
  for data in "$PROFILE"/*.data; do
    echo
    echo "== profile $(basename "$data" .data) (last round; share of the server's samples by library, then by symbol)"
    perf report -i "$data" --no-children --sort dso 2>/dev/null | grep -E '^ +[0-9]' | head -n 8  || true
    perf report -i "$data" --no-children --sort sym 2>/dev/null | grep -E '^ +[0-9]' | head -n 25  || true
  done
fi
