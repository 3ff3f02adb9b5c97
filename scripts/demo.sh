#!/usr/bin/env bash
# The main job: builds mirror-agent and shows it working on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

scripts/install-deps.sh
echo "== building mirror-agent"
swift build -c release --product mirror-agent 2>&1 | tail -n 3
bin=.build/release/mirror-agent

echo
echo "== validating London's view of paris and berlin"
"$bin" check --state examples/two-clusters.yaml

echo
echo "== a broken copy is rejected with every problem named"
broken=$(mktemp --suffix=.yaml)
trap 'rm -f "$broken"' EXIT
sed -e 's/mode: gateway/mode: gatway/' -e 's/port: 80,/port: 80000,/' -e 's/"10.30.1.5", cluster: berlin/"10.30.1.5", cluster: madrid/' \
  examples/two-clusters.yaml > "$broken"
"$bin" check --state "$broken" || echo "(exit status $? as expected)"
