"""KafkaCluster end to end: the operator binary runs out of cluster (admin kubeconfig, leader
election on) against the real control plane of tests/env/k8s; the StatefulSet controller, the
scheduler, the garbage collector and kwok do the rest as in a real cluster. The broker pods are
fake, so the admin calls of the rolling-restart health check go to a real Strata broker on
loopback, those of the scale-down refusal to the reference Kafka broker and those of the
draining scale-down to a 3-node cluster, once Strata and once the reference Kafka
(--kafka-bootstrap-override).

Each test is a user's session in a namespace of its own, written as numbered steps."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml
from confluent_kafka.admin import AdminClient, NewTopic

from harness.brokers import make_broker
from harness.cluster import Cluster
from harness.kube import condition, events_for, has_condition, install_crds
from harness.operator import PodWatch, pod_ready, replay_availability
from harness.pytest_plugin import COMMON_PROPS
from harness.util import free_port

pytestmark = pytest.mark.timeout(420)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "deploy" / "examples"
ZONE = "topology.kubernetes.io/zone"
CLUSTER_LABEL = "kafka.strata.dev/cluster"
OWNED_KINDS = ("statefulsets", "services", "configmaps", "poddisruptionbudgets")

# namespaces the module's operator watches
NS_ROLL = "e2e-roll"
NS_INVALID = "e2e-invalid"
NS_INVALID_FLOW = "e2e-invalid-flow"
NS_DELETE = "e2e-delete"
EXAMPLE_NS = {name: f"e2e-ex-{name}" for name in ("single-zone", "stretch-3-zone", "active-standby")}
NS_SCALE = "e2e-scale"
# the drain test runs on both kinds of real cluster behind its KafkaCluster
NS_DRAIN = {"kafka": "e2e-drain", "strata": "e2e-drain-strata"}
NS_LEASE = "e2e-operator"

# The roll cluster: 3 racks x 2 brokers -> ids 0,1 | 100,101 | 200,201. The real
# Strata broker behind it is node 101, so DescribeCluster names broker 101 the controller.
ROLL_CLUSTER = "kafka"
CONTROLLER_ID = 101


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def strata_controller(tmp_path_factory):
    """The real broker the roll cluster's admin calls reach: Strata, node.id 101."""
    b = make_broker("strata", tmp_path_factory.mktemp("strata-101"),
                    dict(COMMON_PROPS, **{"node.id": str(CONTROLLER_ID)}), port=free_port())
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def kafka_port():
    """Port of the reference Kafka broker the scale-down test starts (known to the operator's
    overrides before the broker runs)."""
    return free_port()


@pytest.fixture(scope="module")
def drain_clusters(tmp_path_factory):
    """The 3-node clusters (ids 1-3) behind the drain test's KafkaCluster, the reference Kafka and
    Strata, laid out (their ports chosen, so the operator's overrides can name node 1) but
    started by the test. Strata creates __consumer_offsets at start (Kafka on first use): RF 2,
    so that its replicas on the leaving broker can move to the two that stay."""
    props = {"offsets.topic.replication.factor": "2", "offsets.topic.num.partitions": "3"}
    clusters = {kind: Cluster(kind, tmp_path_factory.mktemp(f"drain-{kind}"), brokers=3, racks=["a"],
                              props=props) for kind in NS_DRAIN}
    for cluster in clusters.values():
        cluster._layout()
    yield clusters
    for cluster in clusters.values():
        cluster.close()


@pytest.fixture(scope="module")
def operator(cp, module_operators, module_namespaces, strata_controller, kafka_port, drain_clusters):
    install_crds(cp)
    module_namespaces.make(NS_LEASE)
    op = module_operators.start(
        holder_id="cluster-e2e",
        namespaces=[NS_ROLL, NS_SCALE, *NS_DRAIN.values(), NS_INVALID, NS_INVALID_FLOW, NS_DELETE,
                    *EXAMPLE_NS.values()],
        lease_namespace=NS_LEASE, lease_name="strata-operator",
        # partitions below min.insync.replicas show within seconds, not the default 30 s
        extra_args=["--health-interval", "2"],
        overrides={f"{NS_ROLL}/{ROLL_CLUSTER}": strata_controller.bootstrap,
                   f"{NS_SCALE}/scale": f"127.0.0.1:{kafka_port}",
                   **{f"{NS_DRAIN[kind]}/drain": c.node(1).bootstrap for kind, c in drain_clusters.items()}})
    cp.wait_until(lambda: op.metric("strata_operator_leader") == 1, timeout=60,
                  what="the module's operator to hold the Lease")
    return op


# --- helpers -----------------------------------------------------------------------------------

def kc(cp, ns, name):
    return cp.get_json("kafkacluster", name, namespace=ns)


def wait_kc(cp, ns, name, pred, what, timeout=90):
    def check():
        obj = kc(cp, ns, name)
        return obj if pred(obj) else None
    try:
        return cp.wait_until(check, timeout=timeout, interval=0.3, what=what)
    except TimeoutError as e:
        st = kc(cp, ns, name).get("status")
        raise AssertionError(f"{e}; status of {ns}/{name}: {json.dumps(st, indent=1)}") from None


def reconciled(obj):
    st = obj.get("status") or {}
    return st.get("observedGeneration") == obj["metadata"]["generation"]


def ready(obj):
    return reconciled(obj) and has_condition(obj, "Ready", "True", "AllBrokersReady")


def children(cp, ns, cluster):
    """Names of the StatefulSets, Services, ConfigMaps, PDBs, pods and PVCs labelled for the cluster."""
    out = {}
    for kind in (*OWNED_KINDS, "pods", "persistentvolumeclaims"):
        out[kind] = sorted(o["metadata"]["name"] for o in cp.items(kind, namespace=ns,
                                                                   selector=f"{CLUSTER_LABEL}={cluster}"))
    return out


def assert_controlled_by(obj, owner):
    refs = obj["metadata"].get("ownerReferences") or []
    ctl = [r for r in refs if r.get("controller")]
    assert len(ctl) == 1, f"{obj['kind']} {obj['metadata']['name']}: ownerReferences {refs}"
    assert ctl[0]["kind"] == "KafkaCluster" and ctl[0]["uid"] == owner["metadata"]["uid"] \
        and ctl[0]["name"] == owner["metadata"]["name"], ctl


def assert_labels(obj, cluster, rack=None):
    labels = obj["metadata"].get("labels") or {}
    want = {"app.kubernetes.io/name": "strata", "app.kubernetes.io/instance": cluster,
            "app.kubernetes.io/managed-by": "strata-operator", CLUSTER_LABEL: cluster}
    if rack is not None:
        want["kafka.strata.dev/rack"] = rack
    missing = {k: v for k, v in want.items() if labels.get(k) != v}
    assert not missing, f"{obj['kind']} {obj['metadata']['name']} lacks labels {missing}: {labels}"


def properties(text):
    props = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            props[k.strip()] = v.strip()
    return props


def pods_by_name(cp, ns, cluster):
    return {p["metadata"]["name"]: p for p in cp.items("pods", namespace=ns, selector=f"{CLUSTER_LABEL}={cluster}")}


def uids(cp, ns, cluster):
    return {n: p["metadata"]["uid"] for n, p in pods_by_name(cp, ns, cluster).items()}


def expected_layout(spec):
    """[(rack, zone, block, [ids])] of a KafkaCluster spec created with its racks in this order."""
    return [(r["name"], r.get("zone"), i, [i * 100 + o for o in range(r["brokers"])])
            for i, r in enumerate(spec["racks"])]


def all_pods_ready_and_current(cp, ns, cluster, expected_pods):
    """Every expected pod Ready and on its StatefulSet's update revision."""
    sts = {s["metadata"]["name"]: s for s in cp.items("statefulsets", namespace=ns,
                                                      selector=f"{CLUSTER_LABEL}={cluster}")}
    pods = pods_by_name(cp, ns, cluster)
    if sorted(pods) != sorted(expected_pods):
        return False
    for name, p in pods.items():
        owner = next(r["name"] for r in p["metadata"]["ownerReferences"] if r["kind"] == "StatefulSet")
        if p["metadata"]["labels"].get("controller-revision-hash") != sts[owner]["status"].get("updateRevision"):
            return False
        if not pod_ready(p):
            return False
    return True


def assert_broker_id_labels(cp, ns, obj):
    """Each broker pod carries kafka.strata.dev/broker-id=<its id> (set by the operator, since a
    StatefulSet's pods share one template)."""
    name = obj["metadata"]["name"]
    want = {b["pod"]: str(b["id"]) for b in obj["status"]["brokers"]}

    def got():
        return {n: p["metadata"]["labels"].get("kafka.strata.dev/broker-id")
                for n, p in pods_by_name(cp, ns, name).items()}
    try:
        cp.wait_until(lambda: got() == want, timeout=20, what=f"broker-id labels on the pods of {name}")
    except TimeoutError:
        raise AssertionError(f"pods of {name} lack kafka.strata.dev/broker-id labels: want {want}, "
                             f"got {got()}") from None


def check_cluster_objects(cp, ns, obj, zones):
    """The children, pods, volumes and status of a Ready KafkaCluster ``obj`` match its spec."""
    name = obj["metadata"]["name"]
    spec = obj["spec"]
    layout = expected_layout(spec)
    all_ids = [i for _, _, _, ids in layout for i in ids]

    # StatefulSets: one per rack, OnDelete, zone affinity, PVC template, retention policy
    for rack, zone, block, ids in layout:
        sts = cp.get_json("statefulset", f"{name}-{rack}", namespace=ns)
        assert_controlled_by(sts, obj)
        assert_labels(sts, name, rack)
        assert sts["spec"]["replicas"] == len(ids)
        assert sts["spec"]["updateStrategy"]["type"] == "OnDelete", sts["spec"]["updateStrategy"]
        assert sts["spec"]["serviceName"] == f"{name}-brokers"
        assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["data"]
        assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] \
            == spec["storage"]["size"]
        retain = "Retain" if spec["storage"].get("retainOnDelete", True) else "Delete"
        assert sts["spec"].get("persistentVolumeClaimRetentionPolicy", {}).get("whenDeleted") == retain, \
            sts["spec"].get("persistentVolumeClaimRetentionPolicy")
        terms = (((sts["spec"]["template"]["spec"].get("affinity") or {}).get("nodeAffinity") or {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms", [])
        exprs = [e for t in terms for e in t.get("matchExpressions", [])]
        if zone:
            assert {"key": ZONE, "operator": "In", "values": [zone]} in exprs, terms
        else:
            assert not [e for e in exprs if e["key"] == ZONE], terms
        assert sts["spec"]["template"]["metadata"]["labels"].get("kafka.strata.dev/rack") == rack

    # Services, PodDisruptionBudget
    headless = cp.get_json("service", f"{name}-brokers", namespace=ns)
    bootstrap = cp.get_json("service", f"{name}-bootstrap", namespace=ns)
    pdb = cp.get_json("poddisruptionbudget", name, namespace=ns)
    for o in (headless, bootstrap, pdb):
        assert_controlled_by(o, obj)
        assert_labels(o, name)
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"].get("publishNotReadyAddresses") in (True, None)
    assert 9092 in [p["port"] for p in bootstrap["spec"]["ports"]], bootstrap["spec"]["ports"]
    assert bootstrap["spec"]["selector"].get(CLUSTER_LABEL) == name
    assert pdb["spec"].get("maxUnavailable") == 1, pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"].get(CLUSTER_LABEL) == name

    # ConfigMap: one server.properties per broker
    cm = cp.get_json("configmap", f"{name}-config", namespace=ns)
    assert_controlled_by(cm, obj)
    assert_labels(cm, name)
    keys = sorted(f"{name}-{rack}-{o}.properties" for rack, _, _, ids in layout for o in range(len(ids)))
    assert sorted(cm["data"]) == keys, sorted(cm["data"])
    voters = None
    for rack, zone, block, ids in layout:
        for o, bid in enumerate(ids):
            pod = f"{name}-{rack}-{o}"
            p = properties(cm["data"][f"{pod}.properties"])
            assert p["node.id"] == str(bid), (pod, p)
            assert p["broker.rack"] == rack, (pod, p)
            assert f"{pod}.{name}-brokers.{ns}.svc.cluster.local:9092" in p["advertised.listeners"], p
            assert "broker" in p["process.roles"].split(","), p
            assert p["log.dirs"], p
            for key in ("default.replication.factor", "min.insync.replicas"):
                if key in spec.get("config", {}):
                    assert p[key] == spec["config"][key], (key, p)
            v = p["controller.quorum.voters"]
            assert voters in (None, v), f"brokers disagree on the voters: {voters} vs {v}"
            voters = v
    voter_ids = sorted(int(x.split("@")[0]) for x in voters.split(","))
    assert len(voter_ids) == min(spec.get("controllerVoters", 3), len(all_ids)), voters
    assert set(voter_ids) <= set(all_ids), voters
    for rack, _, _, ids in layout:
        for o, bid in enumerate(ids):
            roles = properties(cm["data"][f"{name}-{rack}-{o}.properties"])["process.roles"].split(",")
            assert ("controller" in roles) == (bid in voter_ids), (bid, roles, voter_ids)

    # Pods: created by the StatefulSet controller, placed in their rack's zone, labelled with ids
    pods = pods_by_name(cp, ns, name)
    want_pods = {f"{name}-{rack}-{o}": (rack, zone, bid) for rack, zone, _, ids in layout
                 for o, bid in enumerate(ids)}
    assert sorted(pods) == sorted(want_pods), sorted(pods)
    for pname, (rack, zone, bid) in want_pods.items():
        p = pods[pname]
        assert pod_ready(p), pname
        if zone:
            assert zones[p["spec"]["nodeName"]] == zone, (pname, p["spec"]["nodeName"], zone)
        assert p["metadata"]["labels"].get("kafka.strata.dev/rack") == rack

    # PVCs: one per broker, bound to a volume of the rack's zone
    pvcs = {c["metadata"]["name"]: c for c in cp.items("pvc", namespace=ns)}
    for pname, (rack, zone, _) in want_pods.items():
        claim = pvcs.get(f"data-{pname}")
        assert claim is not None, f"no PVC data-{pname}: {sorted(pvcs)}"
        assert claim["status"].get("phase") == "Bound", claim["status"]
        if zone:
            pv = cp.get_json("pv", claim["spec"]["volumeName"])
            assert pv["metadata"]["labels"][ZONE] == zone

    # Status
    st = obj["status"]
    assert st["observedGeneration"] == obj["metadata"]["generation"]
    assert st["brokerIds"] == {rack: ids for rack, _, _, ids in layout}, st["brokerIds"]
    assert st["rackIdBlocks"] == {rack: block for rack, _, block, _ in layout}, st["rackIdBlocks"]
    assert st["readyBrokers"] == len(all_ids) and st["racks"] == len(layout)
    assert sorted((b["id"], b["rack"], b["pod"], b["ready"]) for b in st["brokers"]) == \
        sorted((bid, rack, pname, True) for pname, (rack, _, bid) in want_pods.items()), st["brokers"]
    assert st["bootstrapAddress"].startswith(f"{name}-bootstrap.{ns}.svc") and \
        st["bootstrapAddress"].endswith(":9092"), st["bootstrapAddress"]
    return voter_ids


# --- 1. the examples -------------------------------------------------------------------------

@pytest.mark.parametrize("example", list(EXAMPLE_NS))
def test_example(cp, operator, namespaces, example):
    path = EXAMPLES / f"{example}.yaml"
    assert path.is_file(), f"{path} is missing"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    clusters = [d for d in docs if d["kind"] == "KafkaCluster"]
    topics = [d for d in docs if d["kind"] == "KafkaTopic"]
    assert clusters, f"{path} has no KafkaCluster"
    ns = namespaces.make(EXAMPLE_NS[example])
    zones = cp.node_zones()

    # 1. the user applies the example as its header says
    cp.kubectl("apply", "-n", ns, "-f", str(path))

    for spec_doc in clusters:
        name = spec_doc["metadata"]["name"]
        # 2. the operator creates the children, the StatefulSet controller pods and PVCs,
        #    kwok runs the pods; the cluster turns Ready for its current generation
        obj = wait_kc(cp, ns, name, ready, f"KafkaCluster {name} Ready", timeout=120)
        voters = check_cluster_objects(cp, ns, obj, zones)
        # 3. Degraded tells about the layout: one rack cannot survive the loss of its zone
        racks_with_voters = {r for r, _, _, ids in expected_layout(obj["spec"]) if set(ids) & set(voters)}
        if len(racks_with_voters) >= 3:
            assert has_condition(obj, "Degraded", "False", "AsExpected"), condition(obj, "Degraded")
        else:
            assert has_condition(obj, "Degraded", "True", "FewerThanThreeVoterRacks"), condition(obj, "Degraded")
        assert has_condition(obj, "Progressing", "False", "Reconciled"), condition(obj, "Progressing")
        # `kubectl get kc` shows the state
        row = cp.kubectl("get", "kc", name, "-n", ns, "--no-headers").split()
        assert row[1:4] == ["True", str(obj["status"]["readyBrokers"]), str(len(obj["spec"]["racks"]))], row

    # 4. the example's topics are reconciled against a cluster whose broker pods are fake and
    #    whose bootstrap Service cannot be reached from this out-of-cluster operator: they say so
    for t in topics:
        def unreachable():
            kt = cp.get_json("kafkatopic", t["metadata"]["name"], namespace=ns)
            c = condition(kt, "Ready")
            return kt if c and c["status"] == "False" else None
        kt = cp.wait_until(unreachable, timeout=60, what=f"KafkaTopic {t['metadata']['name']} Ready=False")
        c = condition(kt, "Ready")
        assert c["reason"] == "ClusterUnreachable", c
        assert f"{t['spec']['clusterRef']['name']}-bootstrap.{ns}.svc" in c["message"], c

    # 5. a MirrorFlow gets its mirror (a ConfigMap with the flow file, a StatefulSet in the
    #    standby's zone) and its discovery Service on the active cluster's brokers
    for m in (d for d in docs if d["kind"] == "MirrorFlow"):
        check_flow_objects(cp, ns, m, {c["metadata"]["name"]: c for c in clusters}, zones)

    # 6. every broker pod is labelled with its id
    for spec_doc in clusters:
        assert_broker_id_labels(cp, ns, kc(cp, ns, spec_doc["metadata"]["name"]))


def flow_children(cp, ns, flow):
    """Names of the objects labelled for MirrorFlow `flow`, by kind."""
    return {kind: sorted(o["metadata"]["name"] for o in cp.items(
        kind, namespace=ns, selector=f"kafka.strata.dev/mirrorflow={flow}"))
        for kind in ("configmaps", "services", "statefulsets", "endpointslices")}


def check_flow_objects(cp, ns, spec_doc, clusters, zones):
    name = spec_doc["metadata"]["name"]
    spec = spec_doc["spec"]
    source = spec["source"]["clusterRef"]["name"]
    target = spec["target"]["clusterRef"]["name"]
    discovery = spec["failover"]["discoveryService"]

    def reconciled_flow():
        mf = cp.get_json("mirrorflow", name, namespace=ns)
        st = mf.get("status") or {}
        return mf if st.get("observedGeneration") == mf["metadata"]["generation"] else None
    mf = cp.wait_until(reconciled_flow, timeout=60, what=f"MirrorFlow {name} reconciled")
    kids = flow_children(cp, ns, name)
    assert kids["configmaps"] == [f"{name}-mirror-config"], kids
    assert kids["statefulsets"] == [f"{name}-mirror"], kids
    assert sorted(kids["services"]) == sorted([f"{name}-mirror", discovery]), kids
    owner = mf["metadata"]["uid"]
    for kind, child in (("configmap", f"{name}-mirror-config"), ("statefulset", f"{name}-mirror"),
                        ("service", discovery)):
        obj = cp.get_json(kind, child, namespace=ns)
        refs = obj["metadata"].get("ownerReferences", [])
        assert [(r["kind"], r["uid"], r.get("controller")) for r in refs] == [("MirrorFlow", owner, True)], refs

    # the flow file reads the active cluster (the source) and writes the standby
    cm = cp.get_json("configmap", f"{name}-mirror-config", namespace=ns)
    flow_file = yaml.safe_load(cm["data"]["flow.yaml"])
    assert flow_file["source"]["alias"] == spec["source"]["alias"], flow_file
    assert flow_file["source"]["bootstrapServers"] == f"{source}-bootstrap.{ns}.svc:9092", flow_file
    assert flow_file["target"]["bootstrapServers"] == f"{target}-bootstrap.{ns}.svc:9092", flow_file
    assert (flow_file["offsets"], flow_file["naming"]) == (spec["offsets"], spec["naming"])

    # the mirror StatefulSet runs the operator's image's strata-mirror, pinned to the standby's
    # zones; it stays at 0 replicas until the failover engine has set the flow up (fenced the
    # standby, promoted the active side), which needs both clusters reachable
    sts = cp.get_json("statefulset", f"{name}-mirror", namespace=ns)
    assert sts["spec"]["replicas"] == 0, sts["spec"]
    assert f"--replicas" in sts["spec"]["template"]["spec"]["containers"][0]["args"]
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["/usr/local/bin/strata-mirror"], container
    assert any(p["name"] == "metrics" for p in container["ports"]), container["ports"]
    standby_zones = {r["zone"] for r in clusters[target]["spec"]["racks"]}
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert set(terms[0]["matchExpressions"][0]["values"]) == standby_zones, terms

    assert standby_zones <= set(zones.values()), (standby_zones, zones)

    # the discovery Service selects the active cluster's broker pods, on port 9092
    svc = cp.get_json("service", discovery, namespace=ns)
    assert svc["spec"]["selector"] == {"app.kubernetes.io/component": "broker", CLUSTER_LABEL: source}, svc["spec"]
    assert [p["port"] for p in svc["spec"]["ports"]] == [9092]
    endpoints = cp.items("endpointslices", namespace=ns, selector=f"kubernetes.io/service-name={discovery}")
    addresses = {a for e in endpoints for ep in e.get("endpoints") or [] for a in ep["addresses"]}
    broker_ips = {p["status"].get("podIP") for p in cp.items("pods", namespace=ns,
                                                              selector=f"{CLUSTER_LABEL}={source}")}
    assert addresses <= broker_ips, (addresses, broker_ips)

    # status: the active side, the engine's saved state, and why it is not Ready (the
    # out-of-cluster operator cannot reach the fake brokers' bootstrap Services); `kubectl get
    # mf` shows Phase and Active
    def degraded():
        mf = cp.get_json("mirrorflow", name, namespace=ns)
        c = condition(mf, "Degraded")
        return mf if c and c["status"] == "True" else None
    mf = cp.wait_until(degraded, timeout=60, what=f"MirrorFlow {name} Degraded")
    st = mf["status"]
    assert st["activeCluster"] == "source", st
    assert st["failover"]["active"] == "source" and "mirrorFrom" not in st["failover"], st["failover"]
    assert condition(mf, "Ready")["status"] == "False", condition(mf, "Ready")
    c = condition(mf, "Degraded")
    assert (c["status"], c["reason"]) == ("True", "ActiveClusterUnreachable"), c
    assert f"{source}-bootstrap.{ns}.svc" in c["message"], c
    row = cp.kubectl("get", "mf", name, "-n", ns, "--no-headers").split()
    assert row[1:3] == [st["phase"], "source"], row


# --- 2. rolling restart and the health-check pause --------------------------------

ROLL_MANIFEST = f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata:
  name: {ROLL_CLUSTER}
spec:
  racks:
  - {{name: zone-a, zone: zone-a, brokers: 2}}
  - {{name: zone-b, zone: zone-b, brokers: 2}}
  - {{name: zone-c, zone: zone-c, brokers: 2}}
  storage: {{size: 1Gi}}
  config:
    default.replication.factor: "3"
    min.insync.replicas: "2"
"""
ROLL_PODS = [f"{ROLL_CLUSTER}-{r}-{o}" for r in ("zone-a", "zone-b", "zone-c") for o in (0, 1)]
POD_OF_ID = {0: "kafka-zone-a-0", 1: "kafka-zone-a-1", 100: "kafka-zone-b-0", 101: "kafka-zone-b-1",
             200: "kafka-zone-c-0", 201: "kafka-zone-c-1"}
# every broker that is not the controller by id, the controller (101) last
ROLL_ORDER = [POD_OF_ID[i] for i in (0, 1, 100, 200, 201, 101)]


def patch_config(cp, ns, key, value):
    cp.kubectl("patch", "kafkacluster", ROLL_CLUSTER, "-n", ns, "--type=merge",
               "-p", json.dumps({"spec": {"config": {key: value}}}))


def restart_events(cp, ns):
    return events_for(cp, ns, ROLL_CLUSTER, "RestartingBroker")


def sts_revisions(cp, ns):
    return {s["metadata"]["name"]: s.get("status", {}).get("updateRevision")
            for s in cp.items("statefulsets", namespace=ns, selector=f"{CLUSTER_LABEL}={ROLL_CLUSTER}")}


def wait_new_template(cp, ns, old):
    """Waits until the operator has applied a new pod template to every rack's StatefulSet and
    the StatefulSet controller has computed its new revision."""
    cp.wait_until(lambda: all(rev and rev != old.get(n) for n, rev in sts_revisions(cp, ns).items()),
                  timeout=60, interval=0.3, what="a new template revision on every StatefulSet")


def check_roll(cp, ns, watch, before, restart_events_before):
    """The roll seen by ``watch`` restarted the pods of ``before`` (name -> uid) one at a time in
    ROLL_ORDER, with at most one broker unavailable at any moment, and the operator announced each
    restart with an Event, in the same order."""
    worst, deletions = replay_availability(watch.snapshot(), ROLL_PODS)
    restarted = [name for name, uid in deletions if uid == before.get(name)]
    # kwok v0.8.0 sometimes deletes a pod by name twice (its pod-delete stage races with the
    # StatefulSet controller recreating the pod), killing the brand-new replacement; such extra
    # deletions of up-to-date pods are not the operator's doing and are only reported.
    spurious = [(name, uid) for name, uid in deletions if uid != before.get(name)]
    if spurious:
        print(f"deletions of fresh pods (kwok double delete): {spurious}")
    assert restarted == ROLL_ORDER, f"restart order {restarted}, want {ROLL_ORDER}\npod events:\n{watch.describe()}"
    assert worst <= 1, f"{worst} broker pods were unavailable at once during the roll\n{watch.describe()}"
    evs = restart_events(cp, ns)[restart_events_before:]
    announced = [int(re.search(r"broker (\d+)", e["message"]).group(1)) for e in evs]
    assert announced == [0, 1, 100, 200, 201, 101], [e["message"] for e in evs]


def wait_roll_done(cp, ns, timeout=120):
    cp.wait_until(lambda: all_pods_ready_and_current(cp, ns, ROLL_CLUSTER, ROLL_PODS), timeout=timeout,
                  interval=0.3, what="every broker pod restarted onto the new template and Ready")
    return wait_kc(cp, ns, ROLL_CLUSTER, lambda o: ready(o) and has_condition(o, "Progressing", "False", "Reconciled"),
                   "Progressing=False Reconciled after the roll")


def test_rolling_restart_and_health_pause(cp, operator, namespaces, strata_controller):
    ns = namespaces.make(NS_ROLL)
    admin = AdminClient({"bootstrap.servers": strata_controller.bootstrap, "log_level": 2})
    zones = cp.node_zones()

    # 1. a 3-zone cluster, 2 brokers per zone
    cp.apply(ROLL_MANIFEST, "-n", ns)
    obj = wait_kc(cp, ns, ROLL_CLUSTER, ready, "the cluster Ready", timeout=120)
    check_cluster_objects(cp, ns, obj, zones)
    assert obj["status"]["brokerIds"] == {"zone-a": [0, 1], "zone-b": [100, 101], "zone-c": [200, 201]}
    md = admin.list_topics(timeout=10)
    assert md.controller_id == CONTROLLER_ID, f"the real broker reports controller {md.controller_id}"
    before = uids(cp, ns, ROLL_CLUSTER)
    cm_before = cp.get_json("configmap", f"{ROLL_CLUSTER}-config", namespace=ns)["data"]

    # 2. a config change rolls the brokers one at a time, the controller (101) last, and never
    #    has two brokers down at once
    watch = PodWatch(cp.bin_dir / "kubectl", cp.env, ns, f"{CLUSTER_LABEL}={ROLL_CLUSTER}").start()
    try:
        cp.wait_until(lambda: len(watch.snapshot()) >= len(ROLL_PODS), timeout=30, what="the pod watch listing")
        t0 = time.monotonic()
        revisions = sts_revisions(cp, ns)
        patch_config(cp, ns, "log.retention.hours", "48")
        wait_new_template(cp, ns, revisions)
        wait_roll_done(cp, ns)
        roll_seconds = time.monotonic() - t0
    finally:
        watch.stop()
    check_roll(cp, ns, watch, before, restart_events_before=0)
    after = uids(cp, ns, ROLL_CLUSTER)
    assert all(after[p] != before[p] for p in ROLL_PODS), "a broker kept its old pod"
    cm = cp.get_json("configmap", f"{ROLL_CLUSTER}-config", namespace=ns)["data"]
    for key, text in cm.items():
        assert properties(text).get("log.retention.hours") == "48", key
        assert properties(text)["node.id"] == properties(cm_before[key])["node.id"]
    print(f"roll of 6 brokers took {roll_seconds:.1f}s")

    # 3. with the cluster's broker down the health check fails: the next roll waits
    base = uids(cp, ns, ROLL_CLUSTER)
    strata_controller.stop()
    revisions = sts_revisions(cp, ns)
    patch_config(cp, ns, "log.retention.hours", "72")
    wait_new_template(cp, ns, revisions)
    obj = wait_kc(cp, ns, ROLL_CLUSTER,
                  lambda o: reconciled(o) and has_condition(o, "Progressing", "True", "HealthCheckFailed"),
                  "Progressing=True HealthCheckFailed while the broker is down", timeout=60)
    assert "restart paused" in condition(obj, "Progressing")["message"]
    # ... and keeps waiting over several re-checks (progress interval 1 s)
    n0 = operator.metric("strata_operator_reconciliations_total", controller="kafkacluster")
    cp.wait_until(lambda: operator.metric("strata_operator_reconciliations_total", controller="kafkacluster") >= n0 + 3,
                  timeout=60, what="three more reconciliations while paused")
    assert uids(cp, ns, ROLL_CLUSTER) == base, "a broker was restarted although the health check failed"
    assert len(restart_events(cp, ns)) == 6
    assert has_condition(kc(cp, ns, ROLL_CLUSTER), "Progressing", "True", "HealthCheckFailed")

    # 4. the broker comes back: the roll resumes and completes in the same order
    watch = PodWatch(cp.bin_dir / "kubectl", cp.env, ns, f"{CLUSTER_LABEL}={ROLL_CLUSTER}").start()
    try:
        cp.wait_until(lambda: len(watch.snapshot()) >= len(ROLL_PODS), timeout=30, what="the pod watch listing")
        strata_controller.start()
        wait_roll_done(cp, ns)
    finally:
        watch.stop()
    check_roll(cp, ns, watch, base, restart_events_before=6)

    # 5. every broker pod is labelled with its id
    assert_broker_id_labels(cp, ns, kc(cp, ns, ROLL_CLUSTER))


# --- 3. scale-down drains -----------------------------------------------------------------------

SCALE_MANIFEST = """
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata:
  name: scale
spec:
  racks:
  - {name: zone-a, zone: zone-a, brokers: 2}
  - {name: zone-b, zone: zone-b, brokers: 1}
  - {name: zone-c, zone: zone-c, brokers: 1}
  storage: {size: 1Gi}
"""


def test_scale_down_waits_until_leaving_broker_is_empty(cp, operator, namespaces, kafka_port, tmp_path):
    # The admin calls of this cluster go to the reference Kafka broker, node 1: unlike Strata
    # (which creates __consumer_offsets at start) it holds no partition until a topic is created.
    ns = namespaces.make(NS_SCALE)
    kafka = make_broker("kafka", tmp_path / "kafka", dict(COMMON_PROPS), port=kafka_port)
    kafka.start()
    try:
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap, "log_level": 2})
        assert admin.list_topics(timeout=10).brokers.keys() == {1}

        # 1. a cluster with ids zone-a [0, 1], zone-b [100], zone-c [200]
        cp.apply(SCALE_MANIFEST, "-n", ns)
        obj = wait_kc(cp, ns, "scale", ready, "scale Ready")
        assert obj["status"]["brokerIds"] == {"zone-a": [0, 1], "zone-b": [100], "zone-c": [200]}
        base = uids(cp, ns, "scale")

        # 2. broker 1 holds a partition
        admin.create_topics([NewTopic("pinned", num_partitions=1, replication_factor=1)])["pinned"].result(30)
        cp.wait_until(lambda: "pinned" in admin.list_topics(timeout=10).topics, timeout=30, what="topic pinned")
        assert admin.list_topics(timeout=10).topics["pinned"].partitions[0].replicas == [1]

        # 3. scaling zone-a down to 1 broker would remove broker 1, and no other broker of the
        #    spec is registered to take its replica: the drain is refused, nothing changes
        cp.kubectl("patch", "kafkacluster", "scale", "-n", ns, "--type=json", "-p",
                   '[{"op":"replace","path":"/spec/racks/0/brokers","value":1}]')
        obj = wait_kc(cp, ns, "scale",
                      lambda o: reconciled(o) and has_condition(o, "Degraded", "True", "NotEnoughBrokers"),
                      "Degraded=True NotEnoughBrokers", timeout=60)
        msg = condition(obj, "Degraded")["message"]
        assert "pinned-0 has 1 replicas and only 0 brokers would remain" in msg, msg
        assert "no broker was removed" in msg, msg
        assert "__consumer_offsets" not in msg, msg
        assert has_condition(obj, "Progressing", "False", "DrainRefused"), condition(obj, "Progressing")
        assert obj["status"]["brokerIds"]["zone-a"] == [0, 1]
        assert obj["status"]["drain"]["brokers"] == [1], obj["status"].get("drain")
        assert cp.get_json("statefulset", "scale-zone-a", namespace=ns)["spec"]["replicas"] == 2
        assert uids(cp, ns, "scale") == base
        warnings = [e for e in events_for(cp, ns, "scale", "DrainRefused") if e["type"] == "Warning"]
        assert warnings and "pinned-0" in warnings[-1]["message"], warnings
        assert admin.list_topics(timeout=10).topics["pinned"].partitions[0].replicas == [1]

        # 4. the partition goes away (a user deletes or reassigns it): the scale-down proceeds
        #    on the operator's own re-check, without any change to Kubernetes objects
        admin.delete_topics(["pinned"])["pinned"].result(30)
        cp.wait_until(lambda: "pinned" not in admin.list_topics(timeout=10).topics, timeout=30,
                      what="topic pinned deleted")
        t0 = time.monotonic()
        n0 = operator.metric("strata_operator_reconciliations_total", controller="kafkacluster")
        try:
            obj = wait_kc(cp, ns, "scale",
                          lambda o: ready(o) and o["status"]["brokerIds"].get("zone-a") == [0]
                          and not has_condition(o, "Degraded", "True", "NotEnoughBrokers"),
                          "the scale-down to proceed once broker 1 holds nothing", timeout=75)
        except AssertionError as e:
            n1 = operator.metric("strata_operator_reconciliations_total", controller="kafkacluster")
            raise AssertionError(f"{e}\n(the operator ran {n1 - n0:.0f} KafkaCluster reconciliations in "
                                 f"{time.monotonic() - t0:.0f}s of waiting)") from None
        print(f"scale-down went ahead {time.monotonic() - t0:.1f}s after the partition was deleted")
        cp.wait_until(lambda: "scale-zone-a-1" not in pods_by_name(cp, ns, "scale"), timeout=60,
                      what="pod scale-zone-a-1 gone")
        assert cp.get_json("statefulset", "scale-zone-a", namespace=ns)["spec"]["replicas"] == 1
        assert obj["status"]["readyBrokers"] == 3
        assert has_condition(obj, "Degraded", "False", "AsExpected"), condition(obj, "Degraded")
        # retainOnDelete (default true) keeps the volume of the removed broker
        assert cp.kubectl("get", "pvc", "data-scale-zone-a-1", "-n", ns, "-o", "name").strip()
        assert uids(cp, ns, "scale") == {n: u for n, u in base.items() if n != "scale-zone-a-1"}, \
            "the scale-down restarted other brokers"

        # 5. reordering the racks in the spec changes no id and restarts nothing
        base = uids(cp, ns, "scale")
        revisions = {s["metadata"]["name"]: s["status"].get("updateRevision")
                     for s in cp.items("statefulsets", namespace=ns, selector=f"{CLUSTER_LABEL}=scale")}
        racks = kc(cp, ns, "scale")["spec"]["racks"]
        cp.kubectl("patch", "kafkacluster", "scale", "-n", ns, "--type=merge", "-p",
                   json.dumps({"spec": {"racks": [racks[2], racks[0], racks[1]]}}))
        obj = wait_kc(cp, ns, "scale", ready, "the reordered spec reconciled")
        assert obj["status"]["brokerIds"] == {"zone-a": [0], "zone-b": [100], "zone-c": [200]}
        assert obj["status"]["rackIdBlocks"] == {"zone-a": 0, "zone-b": 1, "zone-c": 2}
        assert uids(cp, ns, "scale") == base
        assert {s["metadata"]["name"]: s["status"].get("updateRevision")
                for s in cp.items("statefulsets", namespace=ns, selector=f"{CLUSTER_LABEL}=scale")} == revisions

        # 6. removing rack zone-c (broker 200 holds nothing): its StatefulSet goes, its id block stays
        racks = kc(cp, ns, "scale")["spec"]["racks"]
        cp.kubectl("patch", "kafkacluster", "scale", "-n", ns, "--type=merge", "-p",
                   json.dumps({"spec": {"racks": [r for r in racks if r["name"] != "zone-c"]}}))
        obj = wait_kc(cp, ns, "scale", lambda o: ready(o) and "zone-c" not in o["status"]["brokerIds"],
                      "rack zone-c removed")
        cp.wait_until(lambda: not cp.kubectl("get", "statefulset", "scale-zone-c", "-n", ns,
                                             "--ignore-not-found", "-o", "name"),
                      timeout=60, what="StatefulSet scale-zone-c deleted")
        assert obj["status"]["rackIdBlocks"].get("zone-c") == 2, obj["status"]["rackIdBlocks"]

        # 7. a new rack gets a new id block: the removed rack's ids are never reused
        cp.kubectl("patch", "kafkacluster", "scale", "-n", ns, "--type=json", "-p", json.dumps(
            [{"op": "add", "path": "/spec/racks/-", "value": {"name": "zone-c-2", "zone": "zone-c", "brokers": 1}}]))
        obj = wait_kc(cp, ns, "scale", lambda o: ready(o) and "zone-c-2" in o["status"]["brokerIds"],
                      "rack zone-c-2 added", timeout=120)
        assert obj["status"]["brokerIds"] == {"zone-a": [0], "zone-b": [100], "zone-c-2": [300]}, \
            obj["status"]["brokerIds"]
        assert obj["status"]["rackIdBlocks"] == {"zone-a": 0, "zone-b": 1, "zone-c": 2, "zone-c-2": 3}
        cm = cp.get_json("configmap", "scale-config", namespace=ns)["data"]
        assert properties(cm["scale-zone-c-2-0.properties"])["node.id"] == "300"
    finally:
        kafka.stop()


DRAIN_MANIFEST = """
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata:
  name: drain
spec:
  racks:
  - {name: a, zone: zone-a, brokers: 4}
  storage: {size: 1Gi}
  drain: {throttleBytesPerSecond: 10000000}
"""


def topic_throttles(kafka, topic):
    """The topic's *.replication.throttled.replicas values that are set (name -> value)."""
    from confluent_kafka.admin import ConfigResource
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = kafka.admin()  # held: its futures fail once the client is collected
    configs = admin.describe_configs([res])[res].result(30)
    return {k: v.value for k, v in configs.items()
            if k.endswith("replication.throttled.replicas") and v.value}


@pytest.mark.parametrize("kind", list(NS_DRAIN))
def test_scale_down_drains_the_leaving_broker_first(cp, operator, namespaces, drain_clusters, kind):
    # Rack a's 4 brokers have ids 0-3; the real cluster behind it (Strata or the reference
    # Kafka) runs nodes 1-3 (id 0 is a pod only). Removing broker 3 moves its replicas to the
    # registered brokers that stay (1 and 2), throttled, before its pod goes.
    ns = namespaces.make(NS_DRAIN[kind])
    kafka = drain_clusters[kind].start()
    t0 = time.monotonic()

    # 1. a one-rack cluster of 4 brokers; topics with replicas on broker 3
    cp.apply(DRAIN_MANIFEST, "-n", ns)
    obj = wait_kc(cp, ns, "drain", ready, "drain Ready", timeout=120)
    assert obj["status"]["brokerIds"] == {"a": [0, 1, 2, 3]}
    kafka.create_topic("moving", assignment=[[3, 1], [2, 3], [1, 2]])
    kafka.create_topic("staying", assignment=[[1, 2]])
    kafka.create_topic("wide", assignment=[[1, 2, 3]])
    base = uids(cp, ns, "drain")

    # 2. scaling to 3 brokers removes broker 3; wide-0 (RF 3) would have only brokers 1 and 2
    #    left (0 is not registered): the drain is refused, nothing moves, nothing is removed
    cp.kubectl("patch", "kafkacluster", "drain", "-n", ns, "--type=json", "-p",
               '[{"op":"replace","path":"/spec/racks/0/brokers","value":3}]')
    obj = wait_kc(cp, ns, "drain",
                  lambda o: reconciled(o) and has_condition(o, "Degraded", "True", "NotEnoughBrokers"),
                  "Degraded=True NotEnoughBrokers", timeout=60)
    msg = condition(obj, "Degraded")["message"]
    assert "wide-0 has 3 replicas and only 2 brokers would remain" in msg, msg
    assert has_condition(obj, "Progressing", "False", "DrainRefused"), condition(obj, "Progressing")
    assert cp.get_json("statefulset", "drain-a", namespace=ns)["spec"]["replicas"] == 4
    assert uids(cp, ns, "drain") == base
    assert {p: v.replicas for p, v in kafka.partitions("moving").items()} == {0: [3, 1], 1: [2, 3], 2: [1, 2]}
    assert not events_for(cp, ns, "drain", "DrainStarted")

    # 3. the user deletes topic wide: the drain goes ahead on the operator's own re-check, moves
    #    broker 3's replicas to 1 and 2 (throttled), then broker 3's pod goes
    admin = kafka.admin()  # held: its futures fail once the client is collected
    admin.delete_topics(["wide"])["wide"].result(30)
    kafka.wait_partitions("moving", lambda ps: all(3 not in p.replicas and set(p.isr) == set(p.replicas)
                                                   for p in ps.values()),
                          "no replica of moving on broker 3", timeout=90)
    obj = wait_kc(cp, ns, "drain",
                  lambda o: ready(o) and o["status"]["brokerIds"].get("a") == [0, 1, 2]
                  and "drain" not in o["status"],
                  "the drain done and broker 3 removed", timeout=90)
    # (one rack stays Degraded for its layout, no longer for the drain)
    assert condition(obj, "Degraded")["reason"] not in ("NotEnoughBrokers", "DrainPaused"), condition(obj, "Degraded")
    cp.wait_until(lambda: "drain-a-3" not in pods_by_name(cp, ns, "drain"), timeout=60, what="pod drain-a-3 gone")
    assert cp.get_json("statefulset", "drain-a", namespace=ns)["spec"]["replicas"] == 3
    parts = kafka.partitions("moving")
    assert {p: sorted(v.replicas) for p, v in parts.items()} == {0: [1, 2], 1: [1, 2], 2: [1, 2]}, parts
    assert parts[0].replicas[1] == 1 and parts[1].replicas[0] == 2, "the staying replicas keep their place"
    assert kafka.partitions("staying")[0].replicas == [1, 2]
    # throttles were set for the move and are gone afterwards
    started = [e for e in events_for(cp, ns, "drain", "DrainStarted") if e["type"] == "Normal"]
    assert started and "throttled to 10000000 B/s" in started[-1]["message"], started
    assert "moving-0" in started[-1]["message"] and "staying" not in started[-1]["message"]
    assert events_for(cp, ns, "drain", "DrainCompleted")
    assert topic_throttles(kafka, "moving") == {}
    out = kafka_tool_configs(kafka, "describe", "--entity-type", "brokers", "--entity-name", "3")
    assert "throttled.rate" not in out, out
    assert uids(cp, ns, "drain") == {n: u for n, u in base.items() if n != "drain-a-3"}

    # 4. a topic that needs 2 in-sync replicas loses one when broker 2 stops: Degraded says which
    #    partition refuses acks=all writes (with a Warning event), and clears once broker 2 is back
    kafka.create_topic("guarded", assignment=[[1, 2]], configs={"min.insync.replicas": "2"})
    kafka.stop_node(2)
    obj = wait_kc(cp, ns, "drain", lambda o: has_condition(o, "Degraded", "True", "UnderMinIsrPartitions"),
                  "Degraded=True UnderMinIsrPartitions", timeout=120)
    msg = condition(obj, "Degraded")["message"]
    assert "guarded-0 has 1 in-sync replica(s) [1], min.insync.replicas 2" in msg, msg
    assert "moving" not in msg and "staying" not in msg, msg
    warnings = [e for e in events_for(cp, ns, "drain", "UnderMinIsrPartitions") if e["type"] == "Warning"]
    assert warnings and "guarded-0" in warnings[-1]["message"], warnings
    kafka.start_node(2)
    obj = wait_kc(cp, ns, "drain", lambda o: condition(o, "Degraded")["reason"] != "UnderMinIsrPartitions",
                  "the under-min-ISR condition cleared", timeout=180)
    assert events_for(cp, ns, "drain", "MinIsrRestored")
    print(f"drain test took {time.monotonic() - t0:.1f}s")


def kafka_tool_configs(kafka, *args):
    from harness.brokers import kafka_tool
    return kafka_tool("configs", "--bootstrap-server", kafka.node(1).bootstrap, f"--{args[0]}", *args[1:]).stdout


# --- 4. invalid specs -------------------------------------------------------------------------

def invalid_cluster(name, racks="[{name: a, zone: zone-a, brokers: 3}]", extra=""):
    return f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {{name: {name}}}
spec:
  racks: {racks}
  storage: {{size: 1Gi}}
{extra}
"""


INVALID = {
    "ReservedProperty": invalid_cluster("reserved", extra='  config: {node.id: "7"}'),
    # the internal mutual-TLS listener of a secured cluster listens on 9091
    "DuplicateListener-internal": invalid_cluster("tls", extra="  listeners: [{name: secure, port: 9091, tls: true}]"),
    # SASL/PLAIN keeps its users in the brokers' configuration, which the operator does not render
    "UnsupportedListener": invalid_cluster(
        "sasl", extra="  listeners: [{name: plain, port: 9092, authentication: plain}]"),
    "MinInsyncAboveReplication": invalid_cluster(
        "insync", extra='  config: {default.replication.factor: "2", min.insync.replicas: "3"}'),
    "ReplicationAboveBrokers": invalid_cluster("replication", extra='  config: {default.replication.factor: "5"}'),
    "NoBrokers": invalid_cluster("empty", racks="[{name: a, zone: zone-a, brokers: 0}]"),
    "DuplicateListener": invalid_cluster(
        "ports", extra="  listeners: [{name: one, port: 9092}, {name: two, port: 9092}]"),
    "BrokerIdCollision": invalid_cluster("huge", racks="[{name: a, zone: zone-a, brokers: 101}]"),
}


def test_invalid_specs_create_nothing(cp, operator, namespaces):
    ns = namespaces.make(NS_INVALID)
    # 1. the user applies clusters the API server accepts but the operator cannot build
    cp.apply("---".join(INVALID.values()), "-n", ns)
    for key, manifest in INVALID.items():
        reason = key.split("-")[0]
        name = re.search(r"name: ([a-z-]+)\}", manifest).group(1)
        # 2. each says why in Ready=False, with the same reason on a Warning event
        obj = wait_kc(cp, ns, name, lambda o: reconciled(o) and condition(o, "Ready") is not None,
                      f"a Ready condition on {name}", timeout=60)
        c = condition(obj, "Ready")
        assert (c["status"], c["reason"]) == ("False", reason), f"{name}: {c}"
        assert c["message"], c
        cp.wait_until(lambda: [e for e in events_for(cp, ns, name, reason) if e["type"] == "Warning"],
                      timeout=30, what=f"a Warning event {reason} on {name}")
    # 3. nothing was created for any of them
    for key, manifest in INVALID.items():
        name = re.search(r"name: ([a-z-]+)\}", manifest).group(1)
        assert not any(children(cp, ns, name).values()), (name, children(cp, ns, name))
        for kind, child in (("configmap", f"{name}-config"), ("service", f"{name}-brokers"),
                            ("service", f"{name}-bootstrap"), ("poddisruptionbudget", name),
                            ("statefulset", f"{name}-a")):
            assert not cp.kubectl("get", kind, child, "-n", ns, "--ignore-not-found", "-o", "name"), (kind, child)
    # 4. fixing a spec is picked up: the cluster gets built
    cp.kubectl("patch", "kafkacluster", "reserved", "-n", ns, "--type=json",
               "-p", '[{"op":"remove","path":"/spec/config/node.id"}]')
    obj = wait_kc(cp, ns, "reserved", ready, "the fixed cluster Ready", timeout=90)
    assert children(cp, ns, "reserved")["statefulsets"] == ["reserved-a"]
    # the others still have nothing
    assert not any(children(cp, ns, "tls").values())


def flow_manifest(name, source, target, extra=""):
    return f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: MirrorFlow
metadata: {{name: {name}}}
spec:
  source: {source}
  target: {target}
{extra}
"""


EXTERNAL_A = '{alias: a, bootstrapServers: "10.0.0.1:9092"}'
EXTERNAL_B = '{alias: b, bootstrapServers: "10.0.0.2:9092"}'
INVALID_FLOWS = {
    "PreserveNeedsStrataClusters": flow_manifest(
        "foreign", EXTERNAL_A, EXTERNAL_B, "  naming: Identity\n  offsets: Preserve"),
    "PreserveNeedsIdentityNaming": flow_manifest("prefixed", EXTERNAL_A, EXTERNAL_B, "  offsets: Preserve"),
    "InvalidEndpoint": flow_manifest(
        "both", '{alias: a, bootstrapServers: "10.0.0.1:9092", clusterRef: {name: x}}', EXTERNAL_B),
    "ClusterNotFound": flow_manifest("missing", "{alias: a, clusterRef: {name: nowhere}}", EXTERNAL_B),
    # SASL towards an external side, from a Secret that does not exist
    "SecretNotFound": flow_manifest(
        "nosecret", EXTERNAL_A,
        '{alias: b, bootstrapServers: "10.0.0.2:9092", sasl: {mechanism: plain, secretName: absent}}'),
}


def test_invalid_flows_create_nothing(cp, operator, namespaces):
    ns = namespaces.make(NS_INVALID_FLOW)
    # 1. the user applies flows the API server accepts but the operator cannot run
    cp.apply("---".join(INVALID_FLOWS.values()), "-n", ns)
    for reason, manifest in INVALID_FLOWS.items():
        name = re.search(r"name: ([a-z-]+)\}", manifest).group(1)
        # 2. each says why in Ready=False, with the same reason on a Warning event
        def refused():
            mf = cp.get_json("mirrorflow", name, namespace=ns)
            c = condition(mf, "Ready")
            return c if c and (mf.get("status") or {}).get("observedGeneration") == mf["metadata"]["generation"] else None
        c = cp.wait_until(refused, timeout=60, what=f"a Ready condition on MirrorFlow {name}")
        assert (c["status"], c["reason"]) == ("False", reason), f"{name}: {c}"
        assert c["message"], c
        cp.wait_until(lambda: [e for e in events_for(cp, ns, name, reason) if e["type"] == "Warning"],
                      timeout=30, what=f"a Warning event {reason} on {name}")
    # 3. nothing was created for any of them
    for manifest in INVALID_FLOWS.values():
        name = re.search(r"name: ([a-z-]+)\}", manifest).group(1)
        assert not any(flow_children(cp, ns, name).values()), (name, flow_children(cp, ns, name))
    # 4. fixing one (Translate between two external clusters) gets it its mirror
    cp.kubectl("patch", "mirrorflow", "foreign", "-n", ns, "--type=merge",
               "-p", '{"spec":{"offsets":"Translate"}}')
    cp.wait_until(lambda: flow_children(cp, ns, "foreign")["statefulsets"] == ["foreign-mirror"],
                  timeout=60, what="the fixed flow's mirror StatefulSet")
    assert not any(flow_children(cp, ns, "prefixed").values())


# --- 5. deleting a cluster ---------------------------------------------------------------------

def test_delete_keeps_or_drops_volumes(cp, operator, namespaces):
    ns = namespaces.make(NS_DELETE)
    manifest = """
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {name: keep}
spec:
  racks: [{name: r, zone: zone-c, brokers: 2}]
  storage: {size: 1Gi}
---
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {name: drop}
spec:
  racks: [{name: r, zone: zone-c, brokers: 2}]
  storage: {size: 1Gi, retainOnDelete: false}
"""
    # 1. two clusters, one keeping its volumes (the default) and one not
    cp.apply(manifest, "-n", ns)
    for name in ("keep", "drop"):
        wait_kc(cp, ns, name, ready, f"{name} Ready")
        cp.wait_until(lambda: len([c for c in cp.items("pvc", namespace=ns)
                                   if c["metadata"]["name"].startswith(f"data-{name}-")
                                   and c["status"].get("phase") == "Bound"]) == 2,
                      timeout=60, what=f"2 PVCs of {name} Bound")
    policy = {n: cp.get_json("statefulset", f"{n}-r", namespace=ns)["spec"]["persistentVolumeClaimRetentionPolicy"]
              for n in ("keep", "drop")}
    assert policy["keep"]["whenDeleted"] == "Retain" and policy["drop"]["whenDeleted"] == "Delete", policy

    # 2. deleting the KafkaClusters: the garbage collector removes everything they own
    cp.kubectl("delete", "kafkacluster", "keep", "drop", "-n", ns, "--wait=true", timeout=60)

    def gone():
        left = {n: {k: v for k, v in children(cp, ns, n).items() if k != "persistentvolumeclaims" and v}
                for n in ("keep", "drop")}
        return not any(left.values())
    cp.wait_until(gone, timeout=90, what="StatefulSets, Services, ConfigMaps, PDBs and pods garbage-collected")

    # 3. the volumes of `keep` stay, those of `drop` go
    def claims():
        return sorted(c["metadata"]["name"] for c in cp.items("pvc", namespace=ns))
    cp.wait_until(lambda: claims() == ["data-keep-r-0", "data-keep-r-1"], timeout=90,
                  what=f"only keep's PVCs left (now {claims()})")


# --- 6. leader election -------------------------------------------------------------------------

NS_LEADER = "e2e-leader"


def lease_holder(cp, ns, name="strata-operator"):
    lease = cp.get_json("lease", name, namespace=ns)
    return lease["spec"].get("holderIdentity") or ""


def test_only_the_lease_holder_acts_and_a_standby_takes_over(cp, operators, namespaces):
    install_crds(cp)
    ns = namespaces.make(NS_LEADER)
    common = dict(namespaces=[ns], lease_namespace=ns, lease_name="strata-operator")

    # 1. operator A starts first and takes the Lease
    a = operators.start(holder_id="op-a", **common)
    cp.wait_until(lambda: a.metric("strata_operator_leader") == 1, timeout=30, what="op-a leading")
    assert lease_holder(cp, ns) == "op-a"

    # 2. operator B starts as a standby
    b = operators.start(holder_id="op-b", **common)
    cp.wait_until(lambda: b.metric("strata_operator_leader") == 0, timeout=30, what="op-b reporting standby")

    # 3. a cluster is reconciled by A alone
    cp.apply("""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {name: le}
spec:
  racks: [{name: zone-a, zone: zone-a, brokers: 1}]
  storage: {size: 1Gi}
""", "-n", ns)
    wait_kc(cp, ns, "le", ready, "le Ready (reconciled by op-a)")
    assert (a.metric("strata_operator_reconciliations_total", controller="kafkacluster") or 0) > 0
    assert (b.metric("strata_operator_reconciliations_total", controller="kafkacluster") or 0) == 0, \
        "the standby reconciled"
    assert b.metric("strata_operator_leader") == 0 and lease_holder(cp, ns) == "op-a"
    assert b.running()
    assert (a.metric("strata_operator_reconcile_duration_seconds_count", controller="kafkacluster") or 0) > 0
    # both are ready for their Deployment: the standby is doing its job by waiting
    assert a.http("/readyz")[0] == 200 and b.http("/readyz")[0] == 200

    # 4. A is stopped (SIGTERM): it releases the Lease and B takes over within a few seconds
    t0 = time.monotonic()
    a.terminate()
    assert a.wait_exit(20) == 0, f"op-a exited with {a.returncode}"
    cp.wait_until(lambda: b.metric("strata_operator_leader") == 1, timeout=15, interval=0.2,
                  what="op-b leading after op-a released the Lease")
    takeover = time.monotonic() - t0
    assert lease_holder(cp, ns) == "op-b"
    print(f"takeover after SIGTERM of the leader: {takeover:.1f}s")
    # faster than the 15 s lease duration: A released the Lease rather than letting it expire
    assert takeover < 10, f"takeover took {takeover:.1f}s"

    # 5. B reconciles a new change: a second rack
    cp.kubectl("patch", "kafkacluster", "le", "-n", ns, "--type=json", "-p",
               '[{"op":"add","path":"/spec/racks/-","value":{"name":"zone-b","zone":"zone-b","brokers":1}}]')
    obj = wait_kc(cp, ns, "le", lambda o: ready(o) and o["status"]["brokerIds"] == {"zone-a": [0], "zone-b": [100]},
                  "op-b reconciling the new rack")
    assert cp.get_json("statefulset", "le-zone-b", namespace=ns)["spec"]["replicas"] == 1
    assert b.metric("strata_operator_reconciliations_total", controller="kafkacluster") > 0
    assert obj["status"]["readyBrokers"] == 2

    # 6. a leader that loses its Lease to someone else stops
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    cp.kubectl("patch", "lease", "strata-operator", "-n", ns, "--type=merge", "-p", json.dumps(
        {"spec": {"holderIdentity": "intruder", "renewTime": now, "acquireTime": now, "leaseDurationSeconds": 60}}))
    code = b.wait_exit(30)
    assert code is not None, "op-b kept running after losing the Lease"
    assert lease_holder(cp, ns) == "intruder"
    print(f"op-b exited with {code} after losing the Lease")
