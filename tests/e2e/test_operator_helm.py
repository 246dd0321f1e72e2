"""The Helm chart charts/strata-operator on the real control plane: it lints, installs its CRDs and
its RBAC, and the permissions it grants are enough for the operator to do its whole job. The
in-cluster Deployment's pod is a kwok fake, so the operator binary runs out of cluster on a
kubeconfig that authenticates with the chart's ServiceAccount token: any permission the chart
forgets makes this test fail. `helm uninstall` keeps the CRDs and the clusters' volumes."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from confluent_kafka.admin import AdminClient

from harness.brokers import make_broker
from harness.kube import (CRD_DIR, CRD_NAMES, condition, create_namespace, delete_namespace,
                          events_for, has_condition, install_crds)
from harness.pytest_plugin import COMMON_PROPS
from harness.util import free_port

pytestmark = pytest.mark.timeout(420)

REPO = Path(__file__).resolve().parents[2]
# STRATA_E2E_CHART: another copy of the chart, to try a change before it lands
CHART = Path(os.environ.get("STRATA_E2E_CHART") or REPO / "charts" / "strata-operator")
RELEASE = "strata-operator"
SYSTEM_NS = "strata-system"
APP_NS = "e2e-helm"
SA = "strata-operator"  # the release name contains the chart name: fullname == release name


def helm(cp, *args, check=True, timeout=180):
    proc = subprocess.run(["helm", *args],
                          env=cp.env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def sa_kubeconfig(cp, path: Path) -> Path:
    """A kubeconfig with the admin one's server and CA, authenticating with a token of the chart's
    ServiceAccount."""
    admin = yaml.safe_load(cp.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    token = cp.kubectl("create", "token", SA, "-n", SYSTEM_NS, "--duration=2h").strip()
    assert token.count(".") == 2, "not a JWT"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "strata-test", "cluster": {
            "server": cluster["server"], "certificate-authority-data": cluster["certificate-authority-data"]}}],
        "users": [{"name": SA, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "strata-test", "user": SA}}],
        "current-context": "sa",
    }))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def strata(tmp_path_factory):
    b = make_broker("strata", tmp_path_factory.mktemp("strata-helm"),
                    dict(COMMON_PROPS, **{"node.id": "1"}), port=free_port())
    b.start()
    yield b
    b.stop()


def test_helm_lint(cp):
    out = helm(cp, "lint", str(CHART), "--strict").stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out
    # the chart ships the generated CRDs (same spec as crds/), marked to survive `helm uninstall`
    shown = helm(cp, "show", "crds", str(CHART)).stdout
    for name in CRD_NAMES:
        assert f"name: {name}" in shown, f"helm show crds lacks {name}"
    shipped = {}
    for path in sorted((CHART / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        shipped[doc["metadata"]["name"]] = doc
    assert sorted(shipped) == sorted(CRD_NAMES), sorted(shipped)
    for name in CRD_NAMES:
        generated = yaml.safe_load((CRD_DIR / f"{name}.yaml").read_text())
        assert shipped[name]["spec"] == generated["spec"], f"the chart's {name} differs from crds/{name}.yaml"
        assert (shipped[name]["metadata"].get("annotations") or {}).get("helm.sh/resource-policy") == "keep", \
            shipped[name]["metadata"]


def test_install_run_with_chart_rbac_and_uninstall(cp, operators, strata, tmp_path):
    # 0. a control plane without the CRDs, as a new user has it (other modules installed them)
    def leftovers():
        if not cp.kubectl("get", "crd", CRD_NAMES[0], "--ignore-not-found", "-o", "name"):
            return []
        return cp.kubectl("get", "kafkaclusters,kafkatopics,mirrorflows", "-A", "-o", "name", check=False).split()
    try:  # namespaces of earlier modules may still be terminating
        cp.wait_until(lambda: not leftovers(), timeout=90, what="no custom resources left by other tests")
    except TimeoutError:
        raise AssertionError(f"custom resources left behind by other tests: {leftovers()}") from None
    cp.kubectl("delete", "-f", str(CRD_DIR), "--ignore-not-found", "--wait=true", timeout=120)

    # 1. helm install into strata-system (one replica: its pod is a kwok fake anyway)
    helm(cp, "install", RELEASE, str(CHART), "-n", SYSTEM_NS, "--create-namespace",
         "--set", "replicaCount=1", "--wait", "--timeout", "120s")
    try:
        _installed_release(cp, operators, strata, tmp_path)
    finally:
        # the app namespace goes first, while the operator (if still running) honours finalizers
        try:
            if cp.kubectl("get", "namespace", APP_NS, "--ignore-not-found", "-o", "name"):
                delete_namespace(cp, APP_NS)
        finally:
            operators.stop_all()
            helm(cp, "uninstall", RELEASE, "-n", SYSTEM_NS, "--wait", "--timeout", "120s", check=False)
            if cp.kubectl("get", "namespace", SYSTEM_NS, "--ignore-not-found", "-o", "name"):
                delete_namespace(cp, SYSTEM_NS)
            install_crds(cp)  # for the modules that follow


def _installed_release(cp, operators, strata, tmp_path):
    # 2. the chart installed the CRDs and what the operator runs with
    for name in CRD_NAMES:
        crd = cp.get_json("crd", name)
        assert any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])
    status = json.loads(helm(cp, "status", RELEASE, "-n", SYSTEM_NS, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed", status["info"]
    dep = cp.get_json("deployment", RELEASE, namespace=SYSTEM_NS)
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == SA
    cp.get_json("serviceaccount", SA, namespace=SYSTEM_NS)
    cp.get_json("clusterrole", RELEASE)
    cp.get_json("clusterrolebinding", RELEASE)
    cp.get_json("role", f"{RELEASE}-leader-election", namespace=SYSTEM_NS)
    cp.get_json("service", f"{RELEASE}-metrics", namespace=SYSTEM_NS)

    # 3. the ServiceAccount's credentials: scoped, not cluster-admin
    kubeconfig = sa_kubeconfig(cp, tmp_path / "sa.kubeconfig")

    def can_i(*args):
        out = cp.kubectl("--kubeconfig", str(kubeconfig), "auth", "can-i", *args, check=False).strip()
        return out == "yes"
    assert can_i("patch", "statefulsets.apps", "-n", APP_NS)
    assert can_i("patch", "kafkaclusters.kafka.strata.dev/status", "-n", APP_NS)
    assert not can_i("create", "namespaces")
    assert not can_i("delete", "nodes")
    assert not can_i("create", "kafkaclusters.kafka.strata.dev", "-n", APP_NS)

    # 4. the operator (out of cluster) with those credentials, watching every namespace
    create_namespace(cp, APP_NS)
    op = operators.start(holder_id="chart-sa", kubeconfig=kubeconfig, lease_namespace=SYSTEM_NS,
                         lease_name="strata-operator", overrides={f"{APP_NS}/app": strata.bootstrap})
    cp.wait_until(lambda: op.metric("strata_operator_leader") == 1, timeout=60, what="operator leading")
    lease = cp.get_json("lease", "strata-operator", namespace=SYSTEM_NS)
    assert lease["spec"]["holderIdentity"] == "chart-sa"

    # 5. a cluster and a topic (deletion policy Delete: a finalizer) reconciled under the chart's RBAC
    cp.apply("""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {name: app}
spec:
  racks: [{name: zone-a, zone: zone-a, brokers: 2}]
  storage: {size: 1Gi}
  config: {default.replication.factor: "1", min.insync.replicas: "1"}
---
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaTopic
metadata: {name: audit}
spec:
  clusterRef: {name: app}
  partitions: 2
  replicationFactor: 1
  deletionPolicy: Delete
---
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {name: broken}
spec:
  racks: [{name: zone-a, zone: zone-a, brokers: 1}]
  storage: {size: 1Gi}
  config: {node.id: "3"}
""", "-n", APP_NS)

    def refused():
        """The chart's RBAC refusing the operator fails the test at once, naming the request."""
        lines = [line for line in op.log_text().splitlines() if "forbidden" in line.lower()
                 and "being terminated" not in line]
        if lines:
            raise AssertionError("the chart's RBAC refused the operator:\n" + "\n".join(lines[:3]))

    def cluster_ready():
        refused()
        o = cp.get_json("kafkacluster", "app", namespace=APP_NS)
        return o if (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"] \
            and has_condition(o, "Ready", "True", "AllBrokersReady") else None
    obj = cp.wait_until(cluster_ready, timeout=120, what="KafkaCluster app Ready")
    assert obj["status"]["brokerIds"] == {"zone-a": [0, 1]}
    assert cp.get_json("statefulset", "app-zone-a", namespace=APP_NS)["spec"]["replicas"] == 2
    broken = cp.wait_until(lambda: (lambda o: o if condition(o, "Ready") else None)(
        cp.get_json("kafkacluster", "broken", namespace=APP_NS)), timeout=60, what="a condition on broken")
    assert condition(broken, "Ready")["reason"] == "ReservedProperty"
    cp.wait_until(lambda: events_for(cp, APP_NS, "broken", "ReservedProperty"), timeout=30,
                  what="a Warning event ReservedProperty")

    def topic_ready():
        refused()
        t = cp.get_json("kafkatopic", "audit", namespace=APP_NS)
        return t if has_condition(t, "Ready", "True", "TopicReady") else None
    topic = cp.wait_until(topic_ready, timeout=60, what="KafkaTopic audit Ready")
    assert "kafka.strata.dev/topic-deletion" in topic["metadata"]["finalizers"]
    admin = AdminClient({"bootstrap.servers": strata.bootstrap, "log_level": 2})
    assert len(admin.list_topics(timeout=10).topics["audit"].partitions) == 2

    # 6. a rolling restart (pods deleted, events written) under the same credentials
    uids = {p["metadata"]["name"]: p["metadata"]["uid"]
            for p in cp.items("pods", namespace=APP_NS, selector="kafka.strata.dev/cluster=app")}
    cp.kubectl("patch", "kafkacluster", "app", "-n", APP_NS, "--type=merge",
               "-p", '{"spec":{"config":{"log.retention.hours":"24"}}}')
    cp.wait_until(lambda: refused() or len(events_for(cp, APP_NS, "app", "RestartingBroker")) >= 2, timeout=90,
                  what="two RestartingBroker events")

    def rolled():
        now = {p["metadata"]["name"]: p["metadata"]["uid"]
               for p in cp.items("pods", namespace=APP_NS, selector="kafka.strata.dev/cluster=app")}
        return sorted(now) == sorted(uids) and all(now[n] != uids[n] for n in now)
    cp.wait_until(rolled, timeout=90, what="both broker pods replaced")
    cp.wait_until(cluster_ready, timeout=60, what="app Ready after the roll")

    # 7. deleting the topic runs the finalizer: the topic goes from the broker
    cp.kubectl("delete", "kafkatopic", "audit", "-n", APP_NS, "--wait=true", timeout=60)
    cp.wait_until(lambda: "audit" not in admin.list_topics(timeout=10).topics, timeout=30,
                  what="topic audit deleted on the broker")

    # nothing was forbidden along the way
    refused()
    assert (op.metric("strata_operator_reconcile_errors_total") or 0) == 0, op.log_tail(40)

    # the operator labels each broker pod with its id (needs `patch` on pods)
    labels = {p["metadata"]["name"]: p["metadata"]["labels"].get("kafka.strata.dev/broker-id")
              for p in cp.items("pods", namespace=APP_NS, selector="kafka.strata.dev/cluster=app")}
    assert labels == {"app-zone-a-0": "0", "app-zone-a-1": "1"}, f"broker-id labels: {labels}"

    # 8. helm uninstall: CRDs, the KafkaCluster and its volumes stay
    operators.stop(op)  # exit 0 on SIGTERM
    pvcs_before = sorted(c["metadata"]["name"] for c in cp.items("pvc", namespace=APP_NS))
    assert pvcs_before == ["data-app-zone-a-0", "data-app-zone-a-1"], pvcs_before
    helm(cp, "uninstall", RELEASE, "-n", SYSTEM_NS, "--wait", "--timeout", "120s")
    assert not cp.kubectl("get", "deployment", RELEASE, "-n", SYSTEM_NS, "--ignore-not-found", "-o", "name")
    assert not cp.kubectl("get", "clusterrole", RELEASE, "--ignore-not-found", "-o", "name")
    for name in CRD_NAMES:
        assert cp.kubectl("get", "crd", name, "-o", "name").strip(), f"helm uninstall removed {name}"
    assert cp.get_json("kafkacluster", "app", namespace=APP_NS)["metadata"]["name"] == "app"
    pvcs_after = sorted(c["metadata"]["name"] for c in cp.items("pvc", namespace=APP_NS)
                        if c["status"].get("phase") == "Bound")
    assert pvcs_after == pvcs_before, pvcs_after
