#!/usr/bin/env bash
# Validates deploy/ and the Link examples offline:
# - renders every kustomization under deploy/ and validates each object against the Kubernetes
#   schemas (strict: unknown fields are errors);
# - the least-privilege overlay leaves no DaemonSet privileged or with capabilities beyond
#   NET_ADMIN/NET_BIND_SERVICE;
# - the feed's RBAC grants no list/watch on Secrets and no writes but to Services, Leases and
#   ConfigMaps (the gateway-port record: by name, besides create), no list/watch on ConfigMaps;
#   the agent and the gateway are bound to nothing; --lease-name and --gateway-ports-configmap
#   are among the names the Role allows;
# - examples/link-*.yaml: Links against the CRD's schema in deploy/crds (kubernetes-validate
#   knows no custom resources; unknown fields are errors here too), everything else strictly
#   like the manifests.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
if ! command -v kubectl >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq kubernetes-client >/dev/null
fi
python3 -m pip show -q kubernetes-validate >/dev/null 2>&1 || python3 -m pip install -q kubernetes-validate 2>/dev/null
python3 -m pip show -q jsonschema >/dev/null 2>&1 || python3 -m pip install -q jsonschema 2>/dev/null
# PyYAML for the manifest checks: this python3's, else Debian's for the system python3.
py_yaml=python3
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
  /usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3-yaml >/dev/null
  py_yaml=/usr/bin/python3
fi
k8s_version="${KUBERNETES_VERSION:-1.31.0}"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
renderings=()
while IFS= read -r kustomization; do
  dir=$(dirname "$kustomization")
  name=$(echo "$dir" | tr '/' '_')
  echo "== $dir"
  kubectl kustomize "$dir" >"$out/$name.yaml"
  renderings+=("$out/$name.yaml")
  python3 -m kubernetes_validate --strict -k "$k8s_version" "$out/$name.yaml" || status=1
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

echo "== RBAC: the feed reads no Secret list and writes only Services, Leases and its ConfigMap"
"$py_yaml" - "${renderings[@]}" <<'PY' || status=1
import sys, yaml
READ = {"get", "list", "watch"}
WRITABLE = {("", "services"), ("coordination.k8s.io", "leases"), ("", "configmaps")}
# Writable only by name (create cannot be limited by name; the rest must be).
BY_NAME = {("coordination.k8s.io", "leases"), ("", "configmaps")}
bad = 0
for path in sys.argv[1:]:
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    if not any(d["kind"] == "Deployment" and d["metadata"]["name"] == "mirror-feed" for d in docs):
        continue  # deploy/crds: no workloads, no RBAC
    name = path.rsplit("/", 1)[-1].removesuffix(".yaml")
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in docs if d["kind"] in ("Role", "ClusterRole")}
    problems, feed_rules = [], []
    for b in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        ns = b["metadata"].get("namespace")
        accounts = [s["name"] for s in b.get("subjects") or [] if s["kind"] == "ServiceAccount"]
        where = f"{b['kind'].lower()}/{b['metadata']['name']}"
        for account in set(accounts) & {"mirror-agent", "mirror-gateway"}:
            problems.append(f"{where} binds serviceaccount/{account}, which needs no API access")
        if "mirror-feed" not in accounts:
            continue
        ref = b["roleRef"]
        role = roles.get((ref["kind"], ns if ref["kind"] == "Role" else None, ref["name"]))
        if role is None:
            problems.append(f"{where} refers to {ref['kind']} {ref['name']}, not rendered here, so it cannot be checked")
            continue
        feed_rules += [(f"{ref['kind'].lower()}/{ref['name']}", r) for r in role.get("rules") or []]
    lease_names, configmap_names = set(), set()
    for role, rule in feed_rules:
        verbs, groups, resources = set(rule.get("verbs") or []), rule.get("apiGroups") or [], rule.get("resources") or []
        what = f"{role}: {','.join(sorted(verbs))} on {','.join(resources) or rule.get('nonResourceURLs')}"
        if "*" in verbs or "*" in groups or "*" in resources or rule.get("nonResourceURLs"):
            problems.append(f"{what}: wildcards and non-resource URLs are not allowed")
            continue
        for group in groups:
            for resource in resources:
                if (group, resource) == ("", "secrets") and verbs & {"list", "watch"}:
                    problems.append(f"{what}: Secrets are read by name (get), never listed or watched")
                if verbs - READ and (group, resource) not in WRITABLE:
                    problems.append(f"{what}: writes only to services, leases and configmaps")
                if (group, resource) in BY_NAME and verbs - {"create"} and not rule.get("resourceNames"):
                    problems.append(f"{what}: {resource} are read and written by name (resourceNames) only")
                if (group, resource) == ("", "configmaps") and verbs & {"list", "watch"}:
                    problems.append(f"{what}: ConfigMaps are read by name (get), never listed or watched")
                if (group, resource) == ("coordination.k8s.io", "leases"):
                    lease_names |= set(rule.get("resourceNames") or [])
                if (group, resource) == ("", "configmaps") and {"get", "update"} <= verbs:
                    configmap_names |= set(rule.get("resourceNames") or [])
    # The Role names the Lease: the Deployment's --lease-name must be one of them.
    for d in docs:
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "mirror-feed":
            args = d["spec"]["template"]["spec"]["containers"][0].get("args") or []
            lease = [a.split("=", 1)[1] for a in args if a.startswith("--lease-name=")]
            if "--source=kubernetes" in args and (not lease or lease[0] not in lease_names):
                problems.append(f"deployment/mirror-feed --lease-name {lease} is not among the Role's Lease names {sorted(lease_names)}")
            # The gateway-port record (default mirror-agent-gateway-ports) must be readable and writable.
            record = [a.split("=", 1)[1] for a in args if a.startswith("--gateway-ports-configmap=")] or ["mirror-agent-gateway-ports"]
            if "--exports=kubernetes" in args and record[0] not in configmap_names:
                problems.append(f"deployment/mirror-feed --gateway-ports-configmap {record[0]} is not among the ConfigMaps "
                                f"the Role lets it get and update {sorted(configmap_names)}")
    if not feed_rules:
        problems.append("no rules bound to serviceaccount/mirror-feed")
    for p in problems:
        print(f"{name}: {p}")
    print(f"{name}: {'FAILED' if problems else 'ok'} ({len(feed_rules)} rules for serviceaccount/mirror-feed)")
    bad += bool(problems)
sys.exit(1 if bad else 0)
PY

echo "== transparent DNS: the agents' upstream is not the address they intercept"
"$py_yaml" - "$out/deploy.yaml" <<'PY' || status=1
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
config = next((d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == "mirror-agent"), None)
data = (config or {}).get("data") or {}
upstream, intercepted = data.get("UPSTREAM_DNS", ""), data.get("CLUSTER_DNS_IP", "")
host = upstream.rsplit(":", 1)[0].strip("[]")
services = {d["spec"].get("clusterIP"): d["metadata"]["name"] for d in docs if d.get("kind") == "Service" and d.get("spec", {}).get("clusterIP")}
if not intercepted or host == intercepted:
    print(f"UPSTREAM_DNS {upstream} must be another address than CLUSTER_DNS_IP {intercepted}"); sys.exit(1)
if host not in services:
    print(f"UPSTREAM_DNS {upstream} is no Service's clusterIP in deploy/ (kube-dns-upstream has {', '.join(services)})"); sys.exit(1)
print(f"ok: intercepting {intercepted}, forwarding to {upstream} (service {services[host]})")
PY
echo "== examples/link-*.yaml"
python3 - "$out/deploy_crds.yaml" "$out/examples-builtin.yaml" examples/link-*.yaml <<'PY' || status=1
import copy, sys, yaml, jsonschema
crd_path, builtin_path, examples = sys.argv[1], sys.argv[2], sys.argv[3:]
crds = [d for d in yaml.safe_load_all(open(crd_path)) if d and d["kind"] == "CustomResourceDefinition"]
bad = 0

def structural(node, at):
    """The API server refuses non-structural schemas; kubernetes-validate does not check."""
    problems = []
    if not isinstance(node, dict):
        return [f"{at}: not a schema"]
    if "type" not in node and not (node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")):
        problems.append(f"{at}: no type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{at}: both properties and additionalProperties")
    for key, child in (node.get("properties") or {}).items():
        problems += structural(child, f"{at}.{key}")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural(node["additionalProperties"], f"{at}.*")
    if "items" in node:
        problems += structural(node["items"], f"{at}[]")
    return problems

def strict(node):
    """The schema with unknown fields refused wherever the API server would prune them."""
    node = copy.deepcopy(node)
    def walk(n):
        if "properties" in n and not n.get("x-kubernetes-preserve-unknown-fields"):
            n["additionalProperties"] = False
        for child in (n.get("properties") or {}).values():
            walk(child)
        if isinstance(n.get("additionalProperties"), dict):
            walk(n["additionalProperties"])
        if isinstance(n.get("items"), dict):
            walk(n["items"])
    walk(node)
    # Metadata is the API server's; of it an example needs a name and may carry a few more.
    node["properties"]["metadata"] = {
        "type": "object", "required": ["name"], "additionalProperties": False,
        "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                       "namespace": {"type": "string"},
                       "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                       "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}}
    node.setdefault("required", [])
    node["required"] = sorted(set(node["required"]) | {"apiVersion", "kind", "metadata"})
    return node

validators = {}
for crd in crds:
    spec = crd["spec"]
    for version in spec["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        problems = structural(schema, f"{crd['metadata']['name']} {version['name']}")
        for p in problems:
            print(p)
        bad += bool(problems)
        if version.get("served"):
            validators[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = jsonschema.Draft4Validator(strict(schema))
if not validators:
    print(f"no served custom resource in {crd_path}")
    sys.exit(1)

def errors(doc):
    validator = validators[(doc.get("apiVersion"), doc.get("kind"))]
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]

builtin, checked = [], 0
for path in examples:
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        key = (doc.get("apiVersion"), doc.get("kind"))
        where = f"{path}: {str(doc.get('kind')).lower()}/{(doc.get('metadata') or {}).get('name')}"
        if key not in validators:
            # kubernetes-validate only warns about kinds it does not know.
            group = str(doc.get("apiVersion")).rpartition("/")[0]
            if "." in group and not group.endswith(".k8s.io"):
                print(f"{where}: no CRD in deploy/crds serves {key[0]} {key[1]}")
                bad += 1
            else:
                builtin.append(doc)
            continue
        found = errors(doc)
        for e in found:
            print(f"{where}: {e}")
        print(f"{where}: {'FAILED' if found else 'ok'} against the CRD schema")
        bad += bool(found)
        checked += 1
        # The check must refuse what the API server would drop: try an unknown field.
        probe = copy.deepcopy(doc)
        probe.setdefault("spec", {})["notAField"] = "x"
        if not errors(probe):
            print(f"{where}: an unknown spec field passed the schema check; the check is broken")
            bad += 1
if not checked:
    print("no Link in " + " ".join(examples))
    bad += 1
yaml.safe_dump_all(builtin, open(builtin_path, "w"))
sys.exit(1 if bad else 0)
PY
if [ -s "$out/examples-builtin.yaml" ]; then
  python3 -m kubernetes_validate --strict -k "$k8s_version" "$out/examples-builtin.yaml" || status=1
fi
exit $status
