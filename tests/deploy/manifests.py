"""Helpers of the install-artefact tests: rendering the Helm chart and the kustomization, reading
YAML streams, validating objects offline against Kubernetes' own schemas (kubernetes-validate,
strict: unknown fields are errors), and the operator's permission contract.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "strata-operator"
DEPLOY = REPO_ROOT / "deploy"
EXAMPLES = DEPLOY / "examples"
CRDS = REPO_ROOT / "crds"
CACHE = Path(os.environ.get("STRATA_CACHE") or
             Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "strata-testenv")
GROUP = "kafka.strata.dev"
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")


def _k8s_version_env() -> dict[str, str]:
    out = {}
    for line in (REPO_ROOT / "tests/env/k8s/versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


K8S_VERSION = _k8s_version_env()["K8S_VERSION"]          # the test control plane, e.g. v1.34.10
K8S_BIN = CACHE / f"k8s-{K8S_VERSION}" / "bin"


def validation_versions() -> list[str]:
    """Kubernetes versions the manifests are validated for: the newest schema kubernetes-validate
    bundles, and the version of the test control plane."""
    newest = kubernetes_validate.utils.latest_version()
    plane = ".".join(K8S_VERSION.lstrip("v").split(".")[:2])
    return sorted({".".join(newest.split(".")[:2]), plane})


def workspace_version() -> str:
    return tomllib.loads((REPO_ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]


def tool(name: str) -> str:
    """helm from PATH or $STRATA_CACHE/bin (tests/env/install/k8s.sh); kubectl from the control
    plane's build (its embedded kustomize is what `kubectl apply -k` uses)."""
    candidates = {"helm": [shutil.which("helm"), CACHE / "bin" / "helm"],
                  "kubectl": [K8S_BIN / "kubectl", shutil.which("kubectl")]}[name]
    for c in candidates:
        if c and Path(c).is_file():
            return str(c)
    raise FileNotFoundError(f"{name} not found: run tests/env/install/k8s.sh")


def run(*cmd: str, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
    return proc


def load_all(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def set_args(values: dict[str, object]) -> list[str]:
    """helm --set / --set-json arguments for a flat {dotted.key: value} mapping."""
    import json
    out = []
    for key, value in values.items():
        out += ["--set-json", f"{key}={json.dumps(value)}"]
    return out


def helm_template(values: dict[str, object] | None = None, *, release: str = "strata-operator",
                  namespace: str = "strata-system", check: bool = True) -> subprocess.CompletedProcess:
    return run(tool("helm"), "template", release, str(CHART), "--namespace", namespace,
               *set_args(values or {}), check=check)


def render_chart(values: dict[str, object] | None = None, **kw) -> list[dict]:
    return load_all(helm_template(values, **kw).stdout)


def kustomize(path: Path) -> list[dict]:
    return load_all(run(tool("kubectl"), "kustomize", str(path)).stdout)


def key(obj: dict) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict], kind: str) -> dict:
    found = by_kind(objs, kind)
    assert len(found) == 1, f"expected one {kind}, got {[key(o) for o in found]}"
    return found[0]


def validate(obj: dict, version: str) -> None:
    """Strict offline validation against the Kubernetes schema of ``version``; raises
    AssertionError naming the object and the failing path."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        where = "/".join(str(p) for p in e.path)
        raise AssertionError(f"{key(obj)} invalid for Kubernetes {version} at {where}: {e.message}")
    except kubernetes_validate.SchemaNotFoundError as e:
        raise AssertionError(f"{key(obj)}: {e.message}")


def without_helm_labels(obj: dict) -> dict:
    import copy
    obj = copy.deepcopy(obj)
    metas = [obj["metadata"]]
    template = obj.get("spec", {}).get("template")
    if isinstance(template, dict) and "metadata" in template:
        metas.append(template["metadata"])
    for meta in metas:
        for label in HELM_ONLY_LABELS:
            meta.get("labels", {}).pop(label, None)
    return obj


# -- the operator's permissions (least privilege; see the chart's strata-operator.rules) -----------

CRUD_CHILDREN = {"get", "list", "watch", "create", "patch", "update", "delete"}
WATCHED_NAMESPACE_PERMISSIONS: dict[tuple[str, str], set[str]] = {
    **{(GROUP, r): {"get", "list", "watch", "patch", "update"}
       for r in ("kafkaclusters", "kafkatopics", "mirrorflows")},
    **{(GROUP, f"{r}/status"): {"get", "patch", "update"}
       for r in ("kafkaclusters", "kafkatopics", "mirrorflows")},
    **{(GROUP, f"{r}/finalizers"): {"update"}
       for r in ("kafkaclusters", "kafkatopics", "mirrorflows")},
    ("apps", "statefulsets"): CRUD_CHILDREN,
    ("", "services"): CRUD_CHILDREN,
    ("", "configmaps"): CRUD_CHILDREN,
    ("policy", "poddisruptionbudgets"): CRUD_CHILDREN,
    ("discovery.k8s.io", "endpointslices"): CRUD_CHILDREN,
    ("", "pods"): {"get", "list", "watch", "patch", "delete"},
    ("", "persistentvolumeclaims"): {"get", "list", "watch", "delete"},
    ("", "secrets"): {"get", "list", "watch", "create", "patch", "update"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("", "events"): {"create", "patch"},
}
LEASE_PERMISSIONS = {("coordination.k8s.io", "leases"): {"get", "create", "update", "patch"}}


def permissions(rules: list[dict]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs granted by a list of PolicyRules (no wildcards allowed)."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert "nonResourceURLs" not in rule, rule
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {field}: {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


# -- the operator's `render` (desired child objects of the examples, no cluster needed) -----------

OPERATOR_BIN = REPO_ROOT / "target" / "release" / "strata-operator"
BROKER_BIN_IN_IMAGE = "/usr/local/bin/strata-broker"
DATA_DIR = "/var/lib/strata"


def render_support() -> str | None:
    """None when `strata-operator render` can run, otherwise why not (a skip reason)."""
    if not OPERATOR_BIN.is_file():
        raise AssertionError(f"{OPERATOR_BIN} missing: build it (cargo build --release)")
    proc = run(str(OPERATOR_BIN), "render", "--help", check=False)
    if proc.returncode != 0 or "render" not in proc.stdout:
        return "strata-operator has no `render` subcommand yet (`render --help` does not describe it)"
    return None


def render_example(path: Path, broker_image: str) -> list[dict]:
    out = run(str(OPERATOR_BIN), "render", "-f", str(path), "--broker-image", broker_image)
    return load_all(out.stdout)


def example_docs(path: Path) -> list[dict]:
    return load_all(path.read_text())


def pod_zone(pod_spec: dict, topology_key: str) -> str | None:
    """The zone a pod template is pinned to through nodeSelector or required node affinity."""
    selector = pod_spec.get("nodeSelector") or {}
    if topology_key in selector:
        return selector[topology_key]
    required = (pod_spec.get("affinity", {}).get("nodeAffinity", {})
                .get("requiredDuringSchedulingIgnoredDuringExecution", {}))
    zones = set()
    for term in required.get("nodeSelectorTerms", []):
        for expr in term.get("matchExpressions", []):
            if expr["key"] == topology_key and expr["operator"] == "In":
                zones.update(expr["values"])
    assert len(zones) <= 1, f"pinned to several zones: {zones}"
    return zones.pop() if zones else None


def broker_statefulsets(objs: list[dict]) -> list[dict]:
    """StatefulSets whose pods run the broker (the mirror's, if rendered, are not)."""
    out = []
    for sts in by_kind(objs, "StatefulSet"):
        containers = sts["spec"]["template"]["spec"]["containers"]
        if any((c.get("command") or [None])[0] == BROKER_BIN_IN_IMAGE for c in containers):
            out.append(sts)
    return out
