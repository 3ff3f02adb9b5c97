#!/usr/bin/env bash
# Renders every kustomization under deploy/ offline and validates each object against the
# Kubernetes schemas (strict: unknown fields are errors).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kubectl >/dev/null 2>&1; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq kubernetes-client >/dev/null
fi
python3 -m pip show -q kubernetes-validate >/dev/null 2>&1 || python3 -m pip install -q kubernetes-validate 2>/dev/null

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
while IFS= read -r kustomization; do
  dir=$(dirname "$kustomization")
  name=$(echo "$dir" | tr '/' '_')
  echo "== $dir"
  kubectl kustomize "$dir" >"$out/$name.yaml"
  python3 -m kubernetes_validate --strict -k "${KUBERNETES_VERSION:-1.31.0}" "$out/$name.yaml" || status=1
done < <(find deploy -name kustomization.yaml | sort)
exit $status
