"""The operator and its brokers as pods on real nodes, driven as a user would: helm, kubectl,
Kafka's own tools and librdkafka from the host.

1. `helm install` of the chart runs the operator itself: two pods of the project's image under the
   chart's ServiceAccount, one holding the leader Lease, talking to the API server through the
   in-cluster `kubernetes` Service.
2. A KafkaCluster of 3 racks x 1 broker (one rack per zone) runs three broker pods from the image,
   each in its zone, on a volume of its node, serving Kafka at the address the operator wrote
   into its server.properties.
3. `kafka-topics` and confluent-kafka on the host create a topic, produce and consume through the
   cluster's bootstrap Service.
4. `kubectl delete pod` of a broker: the StatefulSet brings it back on the same volume, and it
   serves the records written before.
5. A config change rolls the brokers one at a time; each restarted broker reports the new value
   (DescribeConfigs).

The three brokers form one cluster (Metadata through the bootstrap Service lists all three), and
steps 3 and 4 run on it.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.brokers import kafka_tool
from harness.kube import events_for, has_condition
from harness.operator import PodWatch, replay_availability

pytestmark = pytest.mark.timeout(600)

NS = "kafka-nodes"
RELEASE, SYSTEM_NS = "strata-operator", "strata-system"
ZONES = ["zone-a", "zone-b", "zone-c"]
RECORDS = 3000
TOPIC = "orders-host"
NEW_RETENTION_MS = "7200000"


def cluster_yaml(name: str, zones: list[str]) -> str:
    racks = "\n".join(f"  - {{name: {z}, zone: {z}, brokers: 1}}" for z in zones)
    return f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {{name: {name}}}
spec:
  racks:
{racks}
  storage: {{size: 1Gi}}
"""


def ready_cluster(nodes, name):
    def ready():
        o = nodes.get_json("kafkacluster", name, namespace=NS)
        st = o.get("status") or {}
        return o if st.get("observedGeneration") == o["metadata"]["generation"] \
            and has_condition(o, "Ready", "True") else None
    return nodes.wait_until(ready, timeout=240, what=f"KafkaCluster {name} Ready")


def broker_pods(nodes, cluster):
    return {p["metadata"]["name"]: p for p in
            nodes.items("pods", namespace=NS, selector=f"kafka.strata.dev/cluster={cluster}")}


def pod_address(cluster: str, pod: str) -> str:
    return f"{pod}.{cluster}-brokers.{NS}.svc.cluster.local:9092"


class Cluster:
    def __init__(self, nodes, name):
        obj = ready_cluster(nodes, name)
        self.name = name
        self.bootstrap = obj["status"]["bootstrapAddress"]
        self.broker_ids = obj["status"]["brokerIds"]  # {rack: [ids]}


@pytest.fixture(scope="module")
def trio(nodes, operator_release, namespaces):
    namespaces.make(NS)
    nodes.apply(cluster_yaml("trio", ZONES), "-n", NS)
    return Cluster(nodes, "trio")


@pytest.fixture(scope="module")
def data_cluster(nodes, kafka, trio):
    """The cluster whose bootstrap Service the data steps use: trio, once its three brokers form
    one cluster."""
    listed = kafka.cluster_size(trio.bootstrap, 3)
    assert listed == 3, f"Metadata through trio's bootstrap Service lists {listed} of 3 brokers"
    return trio, 3


def test_1_helm_install_runs_the_operator_as_pods(nodes, operator_release):
    dep = nodes.get_json("deployment", RELEASE, namespace=SYSTEM_NS)
    assert dep["status"].get("availableReplicas") == dep["spec"]["replicas"] == 2, dep["status"]
    pods = nodes.ready_pods(SYSTEM_NS, "app.kubernetes.io/name=strata-operator")
    assert len(pods) == 2, [p["metadata"]["name"] for p in pods]
    version = nodes.get_json("deployment", RELEASE, namespace=SYSTEM_NS)["metadata"]["labels"][
        "app.kubernetes.io/version"]
    for pod in pods:
        spec, status = pod["spec"], pod["status"]
        assert spec["nodeName"].startswith("real-zone-"), spec["nodeName"]
        assert spec["serviceAccountName"] == RELEASE
        (container,) = spec["containers"]
        assert container["image"] == f"ghcr.io/strata-dev/strata:{version}"
        assert container["command"] == ["/usr/local/bin/strata-operator"]
        (cstatus,) = status["containerStatuses"]
        assert cstatus["ready"] and "running" in cstatus["state"], cstatus
        assert cstatus["restartCount"] == 0, cstatus
        assert cstatus["containerID"].startswith("containerd://"), cstatus
    # one of them leads: it took the Lease through the API server, in cluster, with its token
    names = {p["metadata"]["name"] for p in pods}

    def holder():
        lease = nodes.get_json("lease", "strata-operator", namespace=SYSTEM_NS)
        return lease["spec"].get("holderIdentity") in names and lease["spec"]["holderIdentity"]
    leader = nodes.wait_until(holder, timeout=60, what="an operator pod holding the Lease")
    log = nodes.kubectl("logs", "-n", SYSTEM_NS, leader)
    assert "forbidden" not in log.lower(), log[-2000:]


def test_2_three_racks_run_real_broker_pods(nodes, kafka, trio):
    pods = broker_pods(nodes, "trio")
    assert sorted(pods) == [f"trio-{z}-0" for z in ZONES], sorted(pods)
    config = nodes.get_json("configmap", "trio-config", namespace=NS)["data"]
    zones = nodes.node_zones()
    for name, pod in pods.items():
        rack = name.removeprefix("trio-").removesuffix("-0")
        broker_id = trio.broker_ids[rack][0]
        # in its zone, on its node's volume
        assert zones[pod["spec"]["nodeName"]] == rack, (name, pod["spec"]["nodeName"])
        claim = nodes.get_json("pvc", f"data-{name}", namespace=NS)
        pv = nodes.get_json("pv", claim["spec"]["volumeName"])
        assert pv["metadata"]["labels"]["topology.kubernetes.io/zone"] == rack
        # a real process from the image
        (cstatus,) = pod["status"]["containerStatuses"]
        assert cstatus["ready"] and "running" in cstatus["state"], cstatus
        assert cstatus["image"].startswith("ghcr.io/strata-dev/strata:"), cstatus
        props = dict(line.split("=", 1) for line in config[f"{name}.properties"].splitlines()
                     if "=" in line and not line.startswith("#"))
        assert props["node.id"] == str(broker_id) and props["broker.rack"] == rack, props
        # it serves Kafka at the address the operator advertised for it
        md = kafka.metadata(pod_address("trio", name))
        assert md["brokers"][str(broker_id)] == pod_address("trio", name), md["brokers"]


def test_3_host_clients_produce_and_consume_through_the_bootstrap_service(nodes, kafka, data_cluster):
    cluster, rf = data_cluster
    dns = nodes.cluster_dns_command
    kafka_tool("topics", "--bootstrap-server", cluster.bootstrap, "--create", "--topic", TOPIC,
               "--partitions", "3", "--replication-factor", rf, wrap=dns)
    described = kafka_tool("topics", "--bootstrap-server", cluster.bootstrap, "--describe", "--topic", TOPIC,
                           wrap=dns).stdout
    assert len(re.findall(r"Partition: \d", described)) == 3, described
    acked = kafka.produce(cluster.bootstrap, TOPIC, RECORDS)
    assert len(acked) == RECORDS
    read = kafka.consume(cluster.bootstrap, TOPIC, RECORDS)
    assert sorted(read) == sorted(acked)
    # order within each partition is the order of the acknowledgements
    for p in range(3):
        assert [r for r in read if r[0] == p] == sorted(r for r in acked if r[0] == p)
    listed = kafka_tool("topics", "--bootstrap-server", cluster.bootstrap, "--list", wrap=dns).stdout.split()
    assert TOPIC in listed


def test_4_deleted_broker_pod_returns_with_its_data(nodes, kafka, data_cluster):
    cluster, _ = data_cluster
    pod_name = f"{cluster.name}-zone-a-0"
    before = nodes.get_json("pod", pod_name, namespace=NS)
    claim = nodes.get_json("pvc", f"data-{pod_name}", namespace=NS)
    volume = Path(nodes.get_json("pv", claim["spec"]["volumeName"])["spec"]["local"]["path"])
    def segment_files():
        return {p.relative_to(volume): (p.stat().st_ino, p.stat().st_size)
                for p in volume.rglob(f"{TOPIC}-*/*.log")}
    segments = segment_files()
    assert segments and sum(size for _, size in segments.values()) > 0, f"no segment of {TOPIC} on {volume}"

    nodes.kubectl("delete", "pod", pod_name, "-n", NS, "--wait=true", timeout=120)

    def back():
        p = nodes.get_json("pod", pod_name, namespace=NS)
        ready = p["metadata"]["uid"] != before["metadata"]["uid"] and any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        return p if ready else None
    after = nodes.wait_until(back, timeout=180, what=f"{pod_name} recreated and Ready")
    assert after["spec"]["nodeName"] == before["spec"]["nodeName"]
    assert nodes.get_json("pvc", f"data-{pod_name}", namespace=NS)["metadata"]["uid"] == claim["metadata"]["uid"]
    # the same segment files on the same volume, and the records served again: the files kept
    # their inodes and sizes, so the broker opened what it had written (a broker that lost its
    # data and fetched it again from the other replicas would have written new files)
    now = segment_files()
    for name, (inode, size) in segments.items():
        assert name in now and now[name][0] == inode and now[name][1] >= size, \
            f"{name}: before (inode, size) {(inode, size)}, after {now.get(name)}"
    read = nodes.wait_until(lambda: (lambda r: r if len(r) == RECORDS else None)(
        kafka.consume(cluster.bootstrap, TOPIC, RECORDS, timeout=20)),
        timeout=120, what=f"{RECORDS} records of {TOPIC} after the restart")
    assert sorted(v for _, _, v in read) == sorted(f"v-{i}" for i in range(RECORDS))


def test_5_config_change_rolls_brokers_one_at_a_time(nodes, kafka, trio):
    pods = broker_pods(nodes, "trio")
    ids = {name: int(p["metadata"]["labels"]["kafka.strata.dev/broker-id"]) for name, p in pods.items()}
    for name, broker_id in ids.items():
        configs = kafka.describe_broker_configs(pod_address("trio", name), broker_id)
        assert configs.get("log.retention.ms") != NEW_RETENTION_MS, configs
    uids = {name: p["metadata"]["uid"] for name, p in pods.items()}
    with PodWatch(nodes.bin_dir / "kubectl", nodes.env, NS, "kafka.strata.dev/cluster=trio") as watch:
        nodes.kubectl("patch", "kafkacluster", "trio", "-n", NS, "--type=merge",
                      "-p", f'{{"spec":{{"config":{{"log.retention.ms":"{NEW_RETENTION_MS}"}}}}}}')

        def rolled():
            now = {n: p for n, p in broker_pods(nodes, "trio").items()}
            return sorted(now) == sorted(uids) and all(
                now[n]["metadata"]["uid"] != uids[n] and nodes.ready_pods(NS, f"statefulset.kubernetes.io/pod-name={n}")
                for n in now)
        nodes.wait_until(rolled, timeout=420, interval=1, what="every trio broker restarted and Ready")
        ready_cluster(nodes, "trio")
    worst, deletions = replay_availability(watch.snapshot(), sorted(uids))
    assert worst <= 1, f"{worst} brokers down at once:\n{watch.describe()}"
    assert sorted(n for n, _ in deletions) == sorted(uids), deletions
    assert len(events_for(nodes, NS, "trio", "RestartingBroker")) >= 3
    # each broker process read the new server.properties
    for name, broker_id in ids.items():
        configs = nodes.wait_until(
            lambda: kafka.describe_broker_configs(pod_address("trio", name), broker_id),
            timeout=60, what=f"DescribeConfigs of broker {broker_id}")
        assert configs.get("log.retention.ms") == NEW_RETENTION_MS, (name, configs)
