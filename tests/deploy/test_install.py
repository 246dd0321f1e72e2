"""Installing Strata on the test control plane (tests/env/k8s) the ways a user does, in steps:

1. `kubectl apply -f crds/` and `kubectl apply -k deploy/operator`: CRDs established, the operator Deployment's two pods
   admitted by the namespace's "restricted" Pod Security Standard and Ready (kwok runs them).
2. The operator's ServiceAccount may do exactly what the operator needs, checked with
   `kubectl auth can-i` against the real RBAC authorizer, and nothing more.
3. The examples apply into one namespace: the API server validates them against the CRDs.
4. `helm install` of the chart with watchNamespaces: Roles only in the watched namespace.
5. `helm uninstall` removes the release and keeps the CRDs and the custom resources.
6. When `strata-operator render` exists, what it renders for the stretch example runs: every broker
   pod Ready in its rack's zone, every claim Bound to a volume of that zone.
"""
from __future__ import annotations

import json
import sys

import pytest
import yaml

import manifests as m

sys.path.insert(0, str(m.REPO_ROOT / "tests" / "env" / "k8s"))
from controlplane import ControlPlane, KubectlError  # noqa: E402

pytestmark = pytest.mark.timeout(900)

OPERATOR_SA = "system:serviceaccount:strata-system:strata-operator"
NS = "kafka"


@pytest.fixture(scope="module")
def cp(tmp_path_factory):
    plane = ControlPlane(tmp_path_factory.mktemp("k8s"), zones=3, nodes_per_zone=2, pvs_per_zone=12)
    plane.up()
    try:
        yield plane
    finally:
        plane.down()


def helm(cp: ControlPlane, *args: str) -> str:
    return m.run(m.tool("helm"), *args, env=cp.env, timeout=180).stdout


def can(cp: ControlPlane, who: str, verb: str, resource: str, namespace: str | None,
        subresource: str | None = None, name: str | None = None) -> bool:
    args = ["auth", "can-i", verb, f"{resource}/{name}" if name else resource, "--as", who]
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    if subresource:
        args += ["--subresource", subresource]
    out = cp.kubectl(*args, check=False).strip()
    assert out in ("yes", "no"), f"kubectl {' '.join(args)}: {out!r}"
    return out == "yes"


def ready_replicas(cp: ControlPlane, namespace: str, name: str) -> int:
    return cp.get_json("deployment", name, namespace=namespace).get("status", {}).get("readyReplicas", 0)


def test_1_kustomize_install_runs_the_operator(cp):
    # `kubectl apply -f crds/` applies the CRD files only (crds/Kustomization is not *.yaml) ...
    out = cp.kubectl("apply", "--server-side", "-f", str(m.CRDS), timeout=60)
    assert len(out.splitlines()) == 3, out
    # ... and the kustomization includes the same CRDs again, unchanged.
    cp.kubectl("apply", "--server-side", "-k", str(m.DEPLOY / "operator"), timeout=120)
    for crd in ("kafkaclusters", "kafkatopics", "mirrorflows"):
        cp.kubectl("wait", "--for=condition=Established", f"crd/{crd}.{m.GROUP}", "--timeout=60s", timeout=90)
    cp.wait_until(lambda: ready_replicas(cp, "strata-system", "strata-operator") == 2, timeout=120,
                  what="2 operator pods Ready (admitted under pod-security restricted)")
    pods = cp.ready_pods("strata-system", "app.kubernetes.io/name=strata-operator")
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["serviceAccountName"] == "strata-operator"
        assert pod["spec"]["containers"][0]["image"] == f"ghcr.io/strata-dev/strata:{m.workspace_version()}"


def test_2_operator_may_do_exactly_what_it_needs(cp):
    cp.kubectl("create", "namespace", NS)
    for (group, resource), verbs in m.WATCHED_NAMESPACE_PERMISSIONS.items():
        base, _, sub = resource.partition("/")
        qualified = f"{base}.{group}" if group else base
        for verb in sorted(verbs):
            assert can(cp, OPERATOR_SA, verb, qualified, NS, sub or None), f"{verb} {resource} in {NS}"
        for verb in sorted({"get", "list", "watch", "create", "update", "patch", "delete"} - verbs):
            if sub and verb in ("list", "watch", "create", "delete"):
                continue  # not verbs of these subresources
            assert not can(cp, OPERATOR_SA, verb, qualified, NS, sub or None), \
                f"the operator may {verb} {resource}, which it does not need"
    # Leader election: its own Lease in its own namespace, nothing else.
    assert can(cp, OPERATOR_SA, "create", "leases.coordination.k8s.io", "strata-system")
    for verb in ("get", "update", "patch"):
        assert can(cp, OPERATOR_SA, verb, "leases.coordination.k8s.io", "strata-system", name="strata-operator")
        assert not can(cp, OPERATOR_SA, verb, "leases.coordination.k8s.io", "strata-system", name="other")
    assert not can(cp, OPERATOR_SA, "create", "leases.coordination.k8s.io", NS)
    for verb, resource in [("get", "nodes"), ("create", "pods"), ("delete", "secrets"),
                           ("create", "customresourcedefinitions.apiextensions.k8s.io"),
                           ("create", "clusterroles.rbac.authorization.k8s.io"),
                           ("create", "pods/exec")]:
        res, _, sub = resource.partition("/")
        assert not can(cp, OPERATOR_SA, verb, res, NS, sub or None), f"the operator may {verb} {resource}"


def test_3_examples_pass_the_api_servers_validation(cp):
    for example in sorted(m.EXAMPLES.glob("*.yaml")):
        cp.kubectl("apply", "-n", NS, "-f", str(example), timeout=60)
    # server-side dry run with the strictest field validation: unknown fields are errors
    for example in sorted(m.EXAMPLES.glob("*.yaml")):
        cp.kubectl("apply", "-n", NS, "-f", str(example), "--dry-run=server",
                   "--validate=strict", timeout=60)
    names = cp.kubectl("get", "-n", NS, "kafkaclusters,kafkatopics,mirrorflows", "-o", "name").split()
    assert sorted(names) == sorted([
        "kafkacluster.kafka.strata.dev/primary", "kafkacluster.kafka.strata.dev/single",
        "kafkacluster.kafka.strata.dev/standby", "kafkacluster.kafka.strata.dev/stretch",
        "kafkatopic.kafka.strata.dev/checkout", "kafkatopic.kafka.strata.dev/events",
        "kafkatopic.kafka.strata.dev/orders", "kafkatopic.kafka.strata.dev/payments",
        "mirrorflow.kafka.strata.dev/primary-to-standby"]), names
    # defaults the API server applied from the schema
    stretch = cp.get_json("kafkacluster", "stretch", namespace=NS)
    assert stretch["spec"]["topologyKey"] == "topology.kubernetes.io/zone"
    assert stretch["spec"]["storage"]["retainOnDelete"] is True
    assert stretch["spec"]["listeners"] == [{"name": "plain", "port": 9092, "tls": False,
                                             "authentication": "none"}]
    # ... and the schema rejects a broken one
    broken = m.example_docs(m.EXAMPLES / "single-zone.yaml")[0]
    broken["metadata"]["name"] = "broken"
    broken["spec"]["racks"][0]["brokers"] = -1
    with pytest.raises(KubectlError, match="brokers"):
        cp.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(broken))


def test_4_helm_install_watching_one_namespace(cp):
    cp.kubectl("create", "namespace", "ops")
    helm(cp, "install", "strata", str(m.CHART), "-n", "ops", "--set", f"watchNamespaces={{{NS}}}",
         "--set", "leaderElection.leaseName=strata-ops")
    cp.wait_until(lambda: ready_replicas(cp, "ops", "strata-strata-operator") == 2, timeout=120,
                  what="2 pods of the Helm-installed operator Ready")
    sa = "system:serviceaccount:ops:strata-strata-operator"
    assert can(cp, sa, "patch", f"kafkaclusters.{m.GROUP}", NS, "status")
    assert can(cp, sa, "delete", "pods", NS)
    assert not can(cp, sa, "get", f"kafkaclusters.{m.GROUP}", "default")
    assert not can(cp, sa, "list", f"kafkaclusters.{m.GROUP}", None)  # not cluster-wide
    assert can(cp, sa, "update", "leases.coordination.k8s.io", "ops", name="strata-ops")
    deployment = cp.get_json("deployment", "strata-strata-operator", namespace="ops")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["STRATA_WATCH_NAMESPACES"] == NS
    assert "strata" in helm(cp, "list", "-n", "ops", "-q").split()


def test_5_helm_uninstall_keeps_crds_and_resources(cp):
    helm(cp, "uninstall", "strata", "-n", "ops", "--wait")
    cp.wait_until(lambda: not cp.kubectl("get", "deployment", "-n", "ops", "-o", "name"), timeout=60,
                  what="the release's Deployment gone")
    assert not cp.kubectl("get", "roles,rolebindings", "-n", NS, "-o", "name").strip()
    for crd in ("kafkaclusters", "kafkatopics", "mirrorflows"):
        cp.kubectl("get", "crd", f"{crd}.{m.GROUP}")
    assert len(cp.items("kafkaclusters", namespace=NS)) == 4


def test_6_rendered_stretch_cluster_runs_in_its_zones(cp):
    reason = m.render_support()
    if reason:
        pytest.skip(reason)
    example = m.example_docs(m.EXAMPLES / "stretch-3-zone.yaml")[0]
    objs = m.render_example(m.EXAMPLES / "stretch-3-zone.yaml", f"ghcr.io/strata-dev/strata:{m.workspace_version()}")
    ns = "render"
    cp.kubectl("create", "namespace", ns)
    for obj in objs:
        # no KafkaCluster owns them here: without these the garbage collector would remove them
        obj["metadata"].pop("ownerReferences", None)
        obj["metadata"].pop("namespace", None)
    cp.apply("\n---\n".join(yaml.safe_dump(o) for o in objs), "-n", ns)
    statefulsets = m.broker_statefulsets(objs)
    want = sum(s["spec"]["replicas"] for s in statefulsets)
    zones = cp.node_zones()

    def all_ready():
        pods = [p for s in statefulsets for p in cp.ready_pods(
            ns, ",".join(f"{k}={v}" for k, v in s["spec"]["selector"]["matchLabels"].items()))]
        return pods if len(pods) == want else None
    pods = cp.wait_until(all_ready, timeout=180, what=f"{want} rendered broker pods Ready")
    racks = {r["name"]: r["zone"] for r in example["spec"]["racks"]}
    for sts in statefulsets:
        zone = m.pod_zone(sts["spec"]["template"]["spec"], "topology.kubernetes.io/zone")
        assert zone in racks.values()
        selector = sts["spec"]["selector"]["matchLabels"]
        for pod in [p for p in pods if selector.items() <= p["metadata"]["labels"].items()]:
            assert zones[pod["spec"]["nodeName"]] == zone, pod["metadata"]["name"]

    def bound():
        claims = cp.items("pvc", namespace=ns)
        return claims if len(claims) == want and all(c["status"].get("phase") == "Bound" for c in claims) else None
    for claim in cp.wait_until(bound, timeout=120, what=f"{want} claims Bound"):
        pv = cp.get_json("pv", claim["spec"]["volumeName"])
        owner = [p for p in pods if any(v.get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"]
                                        for v in p["spec"].get("volumes", []))]
        assert len(owner) == 1
        assert pv["metadata"]["labels"]["topology.kubernetes.io/zone"] == zones[owner[0]["spec"]["nodeName"]]
