#!/usr/bin/env bash
# The test command: installs what the tests need, builds (warnings are errors), runs every
# test target. Kernel tests (nftables, network namespaces) need root and run as root in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

scripts/install-deps.sh

echo "== build"
swift build -Xswiftc -warnings-as-errors 2>&1 | tail -n 20
echo "== deploy manifests"
scripts/validate-deploy.sh | { grep -v "^INFO" || true; }
echo "== tests"
swift test --no-parallel
echo "== end-to-end (network namespaces, real dig/getent/curl/unbound)"
e2e/run.sh
e2e/surge.sh
echo "== end-to-end, Kubernetes source (emulated clusters)"
e2e/kubernetes.sh
echo "== end-to-end, transparent DNS beside an emulated kube-proxy (nftables and iptables modes)"
e2e/transparent.sh
e2e/link.sh
e2e/policy.sh
echo "== fuzz (brief)"
fuzz/run.sh 15
