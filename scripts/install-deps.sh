#!/usr/bin/env bash
# Installs the Debian packages mirror-agent builds and tests with. Idempotent: installs only
# what is missing, and runs apt-get update at most once per machine.
set -euo pipefail

packages=(
  pkg-config libnftnl-dev libmnl-dev libnl-3-dev libnl-route-3-dev
  nftables iproute2 dnsutils dnsperf unbound dnsmasq socat curl procps conntrack
)
# NFTables traffic tests (tiny HTTP servers) and bench/nft.sh (state generator, peak RSS).
packages+=(python3 time)
# MirrorKubernetesTests: pip for kmock (below), openssl for their test certificates.
packages+=(python3-pip openssl)
# e2e/transparent.sh: kube-proxy's iptables mode, emulated with iptables-nft.
packages+=(iptables)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "installing: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian unbound/dnsmasq packages start system services; tests start their own.
  for svc in unbound dnsmasq; do $sudo_cmd systemctl disable --now "$svc" >/dev/null 2>&1 || true; done
fi

# MirrorKubernetesTests run kmock, a Kubernetes API emulator from PyPI, with the first python3
# on PATH; pinned, since their harness extends its internals.
kmock_version=0.8
if ! python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('kmock') != '$kmock_version')" >/dev/null 2>&1; then
  echo "installing: kmock==$kmock_version (pip)"
  pip_install=(python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
  # Debian's python refuses system-wide pip installs without this flag (PEP 668).
  "${pip_install[@]}" --break-system-packages "kmock==$kmock_version" 2>/dev/null \
    || "${pip_install[@]}" "kmock==$kmock_version"
fi

if ! command -v swift >/dev/null 2>&1; then
  if [ -x /opt/swift/usr/bin/swift ]; then
    echo "note: add /opt/swift/usr/bin to PATH" >&2
  else
    echo "error: no Swift toolchain found (need Swift 6.1 or later on PATH or at /opt/swift)" >&2
    exit 1
  fi
fi
