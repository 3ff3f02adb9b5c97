#!/usr/bin/env bash
# Renders every kustomization under deploy/ offline and validates each object against the
# Kubernetes schemas (strict: unknown fields are errors). Then checks that the least-privilege
# overlay leaves no DaemonSet privileged or with capabilities beyond NET_ADMIN/NET_BIND_SERVICE.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
if ! command -v kubectl >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq kubernetes-client >/dev/null
fi
python3 -m pip show -q kubernetes-validate >/dev/null 2>&1 || python3 -m pip install -q kubernetes-validate 2>/dev/null
# PyYAML for the capability check: this python3's, else Debian's for the system python3.
py_yaml=python3
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
  /usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3-yaml >/dev/null
  py_yaml=/usr/bin/python3
fi

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

echo "== least-privilege: DaemonSet security contexts"
"$py_yaml" - "$out/deploy_overlays_least-privilege.yaml" <<'PY' || status=1
import sys, yaml
allowed = {"NET_ADMIN", "NET_BIND_SERVICE"}
daemonsets = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "DaemonSet"]
bad = 0
if not daemonsets:
    print("no DaemonSet rendered")
    bad = 1
for ds in daemonsets:
    spec = ds["spec"]["template"]["spec"]
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        sc = c.get("securityContext") or {}
        caps = sc.get("capabilities") or {}
        added = set(caps.get("add") or [])
        problems = []
        if sc.get("privileged") is not False:
            problems.append("privileged is not false")
        if "ALL" not in (caps.get("drop") or []):
            problems.append("capabilities do not drop ALL")
        if added - allowed:
            problems.append("adds " + ", ".join(sorted(added - allowed)))
        where = f"daemonset/{ds['metadata']['name']} container {c['name']}"
        print(f"{where}: {'; '.join(problems) or 'ok, adds ' + (', '.join(sorted(added)) or 'nothing')}")
        bad += bool(problems)
sys.exit(1 if bad else 0)
PY
exit $status
