"""The CustomResourceDefinitions of crds/ on a real kube-apiserver, as a user meets them before any
operator runs: they install, `kubectl get` shows their printer columns, `kubectl explain` shows
the field documentation written in the Rust types, defaults are filled in by the API server and
objects that violate the schema are refused by the API server itself."""
from __future__ import annotations

import re

import pytest
from controlplane import KubectlError
from harness.kube import CRD_NAMES, create_namespace, delete_namespace, install_crds

pytestmark = pytest.mark.timeout(300)

NS = "crd-check"

CLUSTER = f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {{name: orders, namespace: {NS}}}
spec:
  racks:
  - {{name: zone-a, zone: zone-a, brokers: 3}}
  storage: {{size: 1Gi}}
"""

TOPIC = f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaTopic
metadata: {{name: payments, namespace: {NS}}}
spec:
  clusterRef: {{name: orders}}
  partitions: 6
  replicationFactor: 3
"""

MIRROR = f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: MirrorFlow
metadata: {{name: dr, namespace: {NS}}}
spec:
  source: {{alias: primary, clusterRef: {{name: orders}}}}
  target: {{alias: standby, bootstrapServers: "standby-kafka:9092"}}
"""


def headers(table: str) -> list[list[str]]:
    """The header rows of `kubectl get` output (one per kind listed)."""
    return [line.split() for line in table.splitlines() if line.startswith("NAME")]


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def ns(cp):
    install_crds(cp)
    create_namespace(cp, NS)
    yield NS
    delete_namespace(cp, NS)


def test_1_crds_install_and_are_established(cp):
    out = install_crds(cp)
    for name in CRD_NAMES:
        assert re.search(rf"customresourcedefinition.apiextensions.k8s.io/{re.escape(name)} "
                         r"(created|configured|unchanged)", out), out
    resources = cp.kubectl("api-resources", "--api-group=kafka.strata.dev", "--no-headers")
    rows = {r.split()[0]: r.split() for r in resources.splitlines()}
    assert set(rows) == {"kafkaclusters", "kafkatopics", "mirrorflows"}, resources
    # NAME SHORTNAMES APIVERSION NAMESPACED KIND
    assert rows["kafkaclusters"][1:] == ["kc", "kafka.strata.dev/v1alpha1", "true", "KafkaCluster"], resources
    assert rows["kafkatopics"][1:] == ["kt", "kafka.strata.dev/v1alpha1", "true", "KafkaTopic"], resources
    assert rows["mirrorflows"][1:] == ["mf", "kafka.strata.dev/v1alpha1", "true", "MirrorFlow"], resources


def test_2_printer_columns_and_defaults(cp, ns):
    # 1. a user creates one object of each kind
    cp.apply(CLUSTER + "---" + TOPIC + "---" + MIRROR)
    # 2. `kubectl get kc,kt,mf` prints one table per kind with the columns of the CRDs
    table = cp.kubectl("get", "kc,kt,mf", "-n", ns)
    assert headers(table) == [
        ["NAME", "READY", "BROKERS", "RACKS", "AGE"],
        ["NAME", "CLUSTER", "PARTITIONS", "REPLICATION", "READY", "AGE"],
        ["NAME", "PHASE", "ACTIVE", "LAG", "AGE"],
    ], table
    # the `strata` category lists all three kinds
    assert len(headers(cp.kubectl("get", "strata", "-n", ns))) == 3
    # 3. the columns read the status an operator writes
    cp.kubectl("patch", "kc", "orders", "-n", ns, "--subresource=status", "--type=merge", "-p",
               '{"status":{"readyBrokers":3,"racks":1,"conditions":[{"type":"Ready","status":"True",'
               '"reason":"AllBrokersReady","message":"3/3","lastTransitionTime":"2025-01-01T00:00:00Z"}]}}')
    cp.kubectl("patch", "kt", "payments", "-n", ns, "--subresource=status", "--type=merge", "-p",
               '{"status":{"partitions":6,"replicationFactor":3}}')
    row = cp.kubectl("get", "kc", "orders", "-n", ns, "--no-headers").split()
    assert row[:4] == ["orders", "True", "3", "1"], row
    row = cp.kubectl("get", "kt", "payments", "-n", ns, "--no-headers").split()
    assert row[:4] == ["payments", "orders", "6", "3"], row
    # 4. the API server filled in the schema defaults
    kc = cp.get_json("kc", "orders", namespace=ns)
    assert kc["spec"]["topologyKey"] == "topology.kubernetes.io/zone"
    assert kc["spec"]["controllerVoters"] == 3
    assert kc["spec"]["listeners"] == [{"name": "plain", "port": 9092, "tls": False, "authentication": "none"}]
    assert kc["spec"]["storage"]["retainOnDelete"] is True
    kt = cp.get_json("kt", "payments", namespace=ns)
    assert kt["spec"]["deletionPolicy"] == "Retain"
    # 5. the spec is not writable through /status and the status not through the main resource
    cp.kubectl("patch", "kc", "orders", "-n", ns, "--type=merge", "-p", '{"status":{"readyBrokers":0}}')
    assert cp.get_json("kc", "orders", namespace=ns)["status"]["readyBrokers"] == 3


def test_3_explain_shows_the_field_docs(cp, ns):
    def explain(path):
        return flat(cp.kubectl("explain", path))
    # the OpenAPI document is published a moment after the CRD is Established
    racks = cp.wait_until(lambda: explain("kafkacluster.spec.racks"), timeout=60,
                          what="kubectl explain kafkacluster.spec.racks")
    assert "Failure domains of the cluster." in racks, racks
    assert "Each rack becomes one StatefulSet" in racks, racks
    for field in ("brokers", "name", "zone", "nodeSelector"):
        assert re.search(rf"\b{field}\b", racks), (field, racks)
    assert "-required-" in racks
    policy = explain("kafkatopic.spec.deletionPolicy")
    assert "Retain" in policy and "Delete" in policy and "keeps the topic and its data" in policy, policy
    mirror = explain("mirrorflow.spec.failover.active")
    assert "starts a failover or a failback" in mirror, mirror


INVALID = [
    # (what, manifest, phrase of the API server's answer)
    ("negative broker count", f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {{name: bad-brokers, namespace: {NS}}}
spec:
  racks: [{{name: zone-a, zone: zone-a, brokers: -1}}]
  storage: {{size: 1Gi}}
""", r"spec\.racks\[0\]\.brokers.*should be greater than or equal to 0"),
    ("upper-case rack name", f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {{name: bad-rack, namespace: {NS}}}
spec:
  racks: [{{name: Zone-A, zone: zone-a, brokers: 1}}]
  storage: {{size: 1Gi}}
""", r"spec\.racks\[0\]\.name.*should match"),
    ("same rack twice", f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {{name: dup-rack, namespace: {NS}}}
spec:
  racks: [{{name: a, zone: zone-a, brokers: 1}}, {{name: a, zone: zone-b, brokers: 1}}]
  storage: {{size: 1Gi}}
""", r"spec\.racks\[1\].*Duplicate value"),
    ("missing storage", f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {{name: no-storage, namespace: {NS}}}
spec:
  racks: [{{name: a, zone: zone-a, brokers: 1}}]
""", r"spec\.storage: Required value"),
    ("unknown listener authentication", f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {{name: bad-auth, namespace: {NS}}}
spec:
  racks: [{{name: a, zone: zone-a, brokers: 1}}]
  storage: {{size: 1Gi}}
  listeners: [{{name: plain, port: 9092, authentication: kerberos}}]
""", r"spec\.listeners\[0\]\.authentication.*Unsupported value"),
    ("unknown deletionPolicy", f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaTopic
metadata: {{name: bad-policy, namespace: {NS}}}
spec:
  clusterRef: {{name: orders}}
  deletionPolicy: Destroy
""", r"spec\.deletionPolicy.*Unsupported value: \"Destroy\""),
    ("zero partitions", f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaTopic
metadata: {{name: zero-partitions, namespace: {NS}}}
spec:
  clusterRef: {{name: orders}}
  partitions: 0
""", r"spec\.partitions.*should be greater than or equal to 1"),
    ("topic without clusterRef", f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaTopic
metadata: {{name: no-cluster, namespace: {NS}}}
spec:
  partitions: 1
""", r"spec\.clusterRef: Required value"),
]


@pytest.mark.parametrize("what,manifest,answer", INVALID, ids=[i[0].replace(" ", "-") for i in INVALID])
def test_4_schema_violations_are_refused_by_the_api_server(cp, ns, what, manifest, answer):
    kind = re.search(r"kind: (\w+)", manifest).group(1)
    name = re.search(r"name: ([\w-]+), namespace", manifest).group(1)
    with pytest.raises(KubectlError) as refused:
        cp.apply(manifest)
    assert re.search(answer, str(refused.value)), f"{what}: {refused.value}"
    assert "is invalid" in str(refused.value), str(refused.value)
    # nothing was stored
    assert cp.kubectl("get", kind.lower(), name, "-n", ns, "--ignore-not-found", "-o", "name") == ""
