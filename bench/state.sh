#!/usr/bin/env bash
# bench/state.sh — how fast the agent loads a mirror state file and how much memory that
# takes, beside reference parsers reading the same bytes. Each cell is the median wall time,
# CPU time (user+sys: steadier than wall time on a busy machine) and peak RSS of R runs
# (`/usr/bin/time`), measured in one interleaved loop so machine noise hits every column alike.
#
#   bench/state.sh [N ...]      default: 10000 100000; REPEAT=R (default 5)
#
# Columns:
#   agent         `mirror-agent check --state FILE` (read, parse, validate, summarise, exit)
#   python-json   `json.load` of the file (C parser, builds dicts; no validation)
#   jq            `jq . FILE >/dev/null` (parse and re-print)
#   python-yaml   (YAML rows) `yaml.load` with the libyaml C loader when present
#   before        (when BASE_BIN=path is set) the same `check` with another build, e.g. main's
# The state is bench/gen-state.py's (90% gateway services, 10% with three endpoints); the
# YAML row (10k only: YAML is for hand-written files) is the same state in block style.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 100000)
REPEAT=${REPEAT:-5}

if [ -z "${BIN:-}" ]; then
    echo "== building (release)" >&2
    swift build -c release --product mirror-agent >/dev/null
    BIN="$PWD/.build/release/mirror-agent"
fi
WORK=$(mktemp -d /tmp/state-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
command -v jq >/dev/null || echo "note: jq not installed (apt-get install jq); its column is skipped" >&2

# Runs "$@" once; appends "seconds KiB" to $OUT. Fails the bench if the command fails.
measure() {
    /usr/bin/time -o "$WORK/time" -f "%e %M %U %S" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    cat "$WORK/time" >> "$OUT"
}

# Prints "median wall s, median CPU s, median MiB" of the runs in file $1.
summary() {
    python3 - "$1" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
t = statistics.median(float(r[0]) for r in rows)
c = statistics.median(float(r[2]) + float(r[3]) for r in rows)
m = statistics.median(int(r[1]) for r in rows) / 1024
print(f"{t:5.2f} s ({c:5.2f} s CPU) {m:6.1f} MiB")
PY
}

row() {  # row LABEL FILE FORMAT
    local label=$1 file=$2 format=$3 columns=()
    if [ "$format" = json ]; then
        columns=(agent python-json); command -v jq >/dev/null && columns+=(jq)
    else
        columns=(agent python-yaml)
    fi
    [ -n "${BASE_BIN:-}" ] && columns+=(before)
    for c in "${columns[@]}"; do : > "$WORK/$c"; done
    for _ in $(seq "$REPEAT"); do
        for c in "${columns[@]}"; do
            OUT="$WORK/$c"
            case $c in
                agent) measure "$BIN" check --state "$file" ;;
                before) measure "$BASE_BIN" check --state "$file" ;;
                python-json) measure python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$file" ;;
                jq) measure jq . "$file" ;;
                python-yaml) measure python3 -c 'import sys,yaml; yaml.load(open(sys.argv[1]), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))' "$file" ;;
            esac
        done
    done
    local line
    line=$(printf "%-21s" "$label")
    for c in "${columns[@]}"; do line+=$(printf " | %-11s %s" "$c" "$(summary "$WORK/$c")"); done
    echo "$line"
}

echo "state load: median of $REPEAT runs: wall time (CPU time) peak RSS; file sizes in parentheses"
for n in "${SIZES[@]}"; do
    python3 bench/gen-state.py "$n" > "$WORK/s$n.json"
    row "json $n ($(( $(stat -c %s "$WORK/s$n.json") / 1024 / 1024 )) MiB)" "$WORK/s$n.json" json
    if [ "$n" -le 10000 ]; then
        python3 -c 'import json,sys,yaml; yaml.safe_dump(json.load(open(sys.argv[1])), sys.stdout, sort_keys=False)' "$WORK/s$n.json" > "$WORK/s$n.yaml"
        row "yaml $n ($(( $(stat -c %s "$WORK/s$n.yaml") / 1024 / 1024 )) MiB)" "$WORK/s$n.yaml" yaml
    fi
done
