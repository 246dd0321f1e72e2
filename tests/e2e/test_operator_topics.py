"""KafkaTopic end to end, against a real Strata broker and the reference Apache Kafka broker: the
operator runs out of cluster, its admin calls for the (fake-podded) KafkaCluster go to the real
broker on loopback, and every step is checked on the broker itself with confluent-kafka."""
from __future__ import annotations

import base64
import json
import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from harness.kube import condition, create_namespace, delete_namespace, has_condition, install_crds
from harness.util import unique_topic

pytestmark = pytest.mark.timeout(420)

CLUSTER = "kafka"
FINALIZER = "kafka.strata.dev/topic-deletion"


@pytest.fixture(scope="module")
def ns(cp, target_kind):
    install_crds(cp)
    name = create_namespace(cp, f"e2e-topics-{target_kind}")
    # the cluster the topics name; its pods are kwok's, its admin calls go to the real broker
    cp.apply(f"""
apiVersion: kafka.strata.dev/v1alpha1
kind: KafkaCluster
metadata: {{name: {CLUSTER}}}
spec:
  racks: [{{name: zone-a, zone: zone-a, brokers: 1}}]
  storage: {{size: 1Gi}}
  config: {{default.replication.factor: "1", min.insync.replicas: "1"}}
""", "-n", name)
    yield name
    delete_namespace(cp, name, wait=False)


@pytest.fixture(scope="module")
def operator(cp, ns, broker, module_operators):
    op = module_operators.start(holder_id=f"topics-{broker.kind}", namespaces=[ns], lease_namespace=ns,
                                overrides={f"{ns}/{CLUSTER}": broker.bootstrap})
    cp.wait_until(lambda: op.metric("strata_operator_leader") == 1, timeout=60, what="operator leading")
    yield op
    # delete this module's topics while the operator runs, so Delete-policy finalizers are honoured
    try:
        cp.kubectl("delete", "kafkatopics", "--all", "-n", ns, "--wait=true", timeout=90)
    finally:
        module_operators.stop(op)


@pytest.fixture(scope="module")
def admin(broker):
    # log_level 2: no reconnect noise once the module's broker is gone
    return AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000, "log_level": 2})


# --- helpers -----------------------------------------------------------------------------------

def topic_manifest(name, *, topic_name=None, partitions=None, rf=None, config=None, policy=None):
    spec = {"clusterRef": {"name": CLUSTER}}
    if topic_name:
        spec["topicName"] = topic_name
    if partitions is not None:
        spec["partitions"] = partitions
    if rf is not None:
        spec["replicationFactor"] = rf
    if config:
        spec["config"] = config
    if policy:
        spec["deletionPolicy"] = policy
    return json.dumps({"apiVersion": "kafka.strata.dev/v1alpha1", "kind": "KafkaTopic",
                       "metadata": {"name": name}, "spec": spec})


def kt(cp, ns, name):
    return cp.get_json("kafkatopic", name, namespace=ns)


def wait_kt(cp, ns, name, status, reason, what=None, timeout=60):
    def check():
        obj = kt(cp, ns, name)
        st = obj.get("status") or {}
        if st.get("observedGeneration") == obj["metadata"]["generation"] and \
                has_condition(obj, "Ready", status, reason):
            return obj
        return None
    try:
        return cp.wait_until(check, timeout=timeout, interval=0.3,
                             what=what or f"KafkaTopic {name} Ready={status} {reason}")
    except TimeoutError as e:
        raise AssertionError(f"{e}; status: {json.dumps(kt(cp, ns, name).get('status'), indent=1)}") from None


def broker_topics(admin):
    # all topics: asking for one by name could auto-create it
    return admin.list_topics(timeout=10).topics


def partitions_of(admin, topic):
    t = broker_topics(admin).get(topic)
    assert t is not None, f"topic {topic} not on the broker"
    assert t.error is None, t.error
    return t.partitions


def topic_configs(admin, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([res])[res].result(timeout=15)


def topic_id(admin, topic):
    from confluent_kafka import TopicCollection
    return str(admin.describe_topics(TopicCollection([topic]))[topic].result(timeout=15).topic_id)


def same_uuid(a, b):
    """Whether two topic ids name the same UUID, whichever of Kafka's base64 form or the
    hyphenated form each is written in."""
    def parse(x):
        x = str(x)
        if len(x) == 22:
            return uuid.UUID(bytes=base64.urlsafe_b64decode(x.replace("+", "-").replace("/", "_") + "=="))
        return uuid.UUID(x)
    return parse(a) == parse(b)


def assert_kafka_topic_id(obj, admin, topic):
    """status.topicId is the id Kafka assigned, written as Kafka prints it (the CRD's own doc:
    "base64 UUID as Kafka prints it")."""
    # Kafka's own tools print Uuid.toString(): URL-safe base64 without padding. librdkafka
    # prints standard base64, so compare the UUIDs and check the alphabet separately.
    ours, theirs = obj["status"].get("topicId"), topic_id(admin, topic)
    assert ours and same_uuid(ours, theirs), f"status.topicId {ours!r}, the broker says {theirs!r}"
    assert len(ours) == 22 and not set(ours) & set("+/="), f"not Kafka's URL-safe form: {ours!r}"


def wait_broker(cp, pred, what, timeout=30):
    return cp.wait_until(pred, timeout=timeout, interval=0.3, what=what)


# --- scenarios ---------------------------------------------------------------------------------

def test_create_grow_configure_and_refusals(cp, ns, operator, admin):
    name = unique_topic("orders")
    # 1. a topic with 3 partitions and two config keys
    cp.apply(topic_manifest(name, partitions=3, rf=1,
                            config={"retention.ms": "3600000", "cleanup.policy": "delete"}), "-n", ns)
    obj = wait_kt(cp, ns, name, "True", "TopicReady")
    st = obj["status"]
    assert (st["partitions"], st["replicationFactor"]) == (3, 1), st
    assert sorted(st["managedConfig"]) == ["cleanup.policy", "retention.ms"], st
    assert len(partitions_of(admin, name)) == 3
    assert st.get("topicId") and same_uuid(st["topicId"], topic_id(admin, name)), \
        (st.get("topicId"), topic_id(admin, name))
    cfg = topic_configs(admin, name)
    assert cfg["retention.ms"].value == "3600000" and not cfg["retention.ms"].is_default
    assert cfg["cleanup.policy"].value == "delete"
    assert FINALIZER not in (obj["metadata"].get("finalizers") or []), "Retain topics need no finalizer"
    row = cp.kubectl("get", "kt", name, "-n", ns, "--no-headers").split()
    assert row[1:5] == [CLUSTER, "3", "1", "True"], row

    # 2. more partitions
    cp.kubectl("patch", "kt", name, "-n", ns, "--type=merge", "-p", '{"spec":{"partitions":5}}')
    obj = wait_kt(cp, ns, name, "True", "TopicReady")
    assert obj["status"]["partitions"] == 5
    assert len(partitions_of(admin, name)) == 5

    # 3. config: change one key, add one, then remove one -> back to the broker default
    cp.kubectl("patch", "kt", name, "-n", ns, "--type=merge", "-p",
               '{"spec":{"config":{"retention.ms":"7200000","max.message.bytes":"2000000"}}}')
    wait_kt(cp, ns, name, "True", "TopicReady")
    cfg = wait_broker(cp, lambda: (lambda c: c if c["retention.ms"].value == "7200000" else None)(
        topic_configs(admin, name)), "retention.ms=7200000 on the broker")
    assert cfg["max.message.bytes"].value == "2000000" and cfg["cleanup.policy"].value == "delete"
    cp.kubectl("patch", "kt", name, "-n", ns, "--type=json", "-p",
               '[{"op":"remove","path":"/spec/config/retention.ms"}]')
    obj = wait_kt(cp, ns, name, "True", "TopicReady")
    assert sorted(obj["status"]["managedConfig"]) == ["cleanup.policy", "max.message.bytes"], obj["status"]
    cfg = topic_configs(admin, name)
    assert cfg["retention.ms"].is_default, (cfg["retention.ms"].value, cfg["retention.ms"].source)
    assert cfg["retention.ms"].value == "604800000", cfg["retention.ms"].value
    assert cfg["max.message.bytes"].value == "2000000"

    # 4. fewer partitions: refused, nothing changes on the broker
    cp.kubectl("patch", "kt", name, "-n", ns, "--type=merge", "-p", '{"spec":{"partitions":2}}')
    obj = wait_kt(cp, ns, name, "False", "PartitionDecreaseRefused")
    assert "5" in condition(obj, "Ready")["message"], condition(obj, "Ready")
    assert obj["status"]["partitions"] == 5
    assert len(partitions_of(admin, name)) == 5
    # back to 5: Ready again
    cp.kubectl("patch", "kt", name, "-n", ns, "--type=merge", "-p", '{"spec":{"partitions":5}}')
    wait_kt(cp, ns, name, "True", "TopicReady")

    # 5. another replication factor: refused, nothing changes on the broker
    cp.kubectl("patch", "kt", name, "-n", ns, "--type=merge", "-p", '{"spec":{"replicationFactor":2}}')
    obj = wait_kt(cp, ns, name, "False", "ReplicationFactorChangeRefused")
    assert obj["status"]["replicationFactor"] == 1
    assert all(len(p.replicas) == 1 for p in partitions_of(admin, name).values())
    assert len(partitions_of(admin, name)) == 5

    # 6. the topic id in the status is written the way Kafka tools print it
    assert_kafka_topic_id(obj, admin, name)


def test_deletion_policy(cp, ns, operator, admin):
    kept, dropped = unique_topic("kept"), unique_topic("dropped")
    # 1. one topic with the default policy (Retain), one with Delete
    cp.apply(topic_manifest(kept, partitions=1) + "\n---\n" + topic_manifest(dropped, partitions=2, policy="Delete"),
             "-n", ns)
    obj_kept = wait_kt(cp, ns, kept, "True", "TopicReady")
    obj_dropped = wait_kt(cp, ns, dropped, "True", "TopicReady")
    assert FINALIZER not in (obj_kept["metadata"].get("finalizers") or [])
    assert FINALIZER in (obj_dropped["metadata"].get("finalizers") or []), obj_dropped["metadata"]
    assert {kept, dropped} <= set(broker_topics(admin))
    # partitions unset in the spec would take the broker's num.partitions; here both set
    assert len(partitions_of(admin, dropped)) == 2

    # 2. deleting the Retain object leaves the topic
    cp.kubectl("delete", "kt", kept, "-n", ns, "--wait=true", timeout=60)
    # 3. deleting the Delete object deletes the topic, then the object goes
    cp.kubectl("delete", "kt", dropped, "-n", ns, "--wait=true", timeout=60)
    wait_broker(cp, lambda: dropped not in broker_topics(admin), f"topic {dropped} deleted on the broker")
    assert kept in broker_topics(admin), f"topic {kept} was deleted although its policy is Retain"
    # switching a topic to Delete adds the finalizer, back to Retain removes it
    other = unique_topic("switch")
    cp.apply(topic_manifest(other, partitions=1), "-n", ns)
    wait_kt(cp, ns, other, "True", "TopicReady")
    cp.kubectl("patch", "kt", other, "-n", ns, "--type=merge", "-p", '{"spec":{"deletionPolicy":"Delete"}}')
    cp.wait_until(lambda: FINALIZER in (kt(cp, ns, other)["metadata"].get("finalizers") or []), timeout=30,
                  what="finalizer added for deletionPolicy Delete")
    cp.kubectl("patch", "kt", other, "-n", ns, "--type=merge", "-p", '{"spec":{"deletionPolicy":"Retain"}}')
    cp.wait_until(lambda: FINALIZER not in (kt(cp, ns, other)["metadata"].get("finalizers") or []), timeout=30,
                  what="finalizer removed for deletionPolicy Retain")
    cp.kubectl("delete", "kt", other, "-n", ns, "--wait=true", timeout=60)
    assert other in broker_topics(admin)


def test_two_objects_for_one_topic(cp, ns, operator, admin):
    topic = unique_topic("Shared_Topic.v1")  # a Kafka name Kubernetes does not allow as object name
    # 1. the first object creates the topic
    cp.apply(topic_manifest("shared-first", topic_name=topic, partitions=2), "-n", ns)
    wait_kt(cp, ns, "shared-first", "True", "TopicReady")
    assert len(partitions_of(admin, topic)) == 2
    # 2. a second, newer object for the same topic is refused and changes nothing
    cp.apply(topic_manifest("shared-second", topic_name=topic, partitions=4, policy="Delete"), "-n", ns)
    obj = wait_kt(cp, ns, "shared-second", "False", "TopicConflict")
    assert "shared-first" in condition(obj, "Ready")["message"], condition(obj, "Ready")
    assert len(partitions_of(admin, topic)) == 2
    assert has_condition(kt(cp, ns, "shared-first"), "Ready", "True", "TopicReady")
    # 3. deleting the newer object (policy Delete) must not delete the topic the older one owns
    cp.kubectl("delete", "kt", "shared-second", "-n", ns, "--wait=true", timeout=60)
    assert topic in broker_topics(admin), "deleting the conflicting object deleted the topic"
    assert len(partitions_of(admin, topic)) == 2
    obj = kt(cp, ns, "shared-first")
    assert has_condition(obj, "Ready", "True", "TopicReady"), condition(obj, "Ready")
    cp.kubectl("delete", "kt", "shared-first", "-n", ns, "--wait=true", timeout=60)


def test_errors_are_reported(cp, ns, operator, admin):
    # 1. a topic on a cluster that does not exist
    cp.apply(json.dumps({"apiVersion": "kafka.strata.dev/v1alpha1", "kind": "KafkaTopic",
                         "metadata": {"name": "orphan"}, "spec": {"clusterRef": {"name": "nope"}}}), "-n", ns)
    obj = wait_kt(cp, ns, "orphan", "False", "ClusterNotFound")
    assert "nope" in condition(obj, "Ready")["message"]
    # 2. a config the broker refuses
    bad = unique_topic("bad")
    cp.apply(topic_manifest(bad, partitions=1, config={"cleanup.policy": "shred"}), "-n", ns)
    obj = wait_kt(cp, ns, bad, "False", "KafkaRequestRefused")
    assert bad not in broker_topics(admin)
    # 3. a topic created outside the operator is adopted, not recreated
    outside = unique_topic("outside")
    admin.create_topics([NewTopic(outside, num_partitions=2, replication_factor=1)])[outside].result(30)
    before = topic_id(admin, outside)
    cp.apply(topic_manifest(outside, partitions=3), "-n", ns)
    obj = wait_kt(cp, ns, outside, "True", "TopicReady")
    assert same_uuid(obj["status"]["topicId"], before) and topic_id(admin, outside) == before
    assert len(partitions_of(admin, outside)) == 3
    cp.kubectl("delete", "kt", "orphan", bad, outside, "-n", ns, "--wait=true", timeout=60)
    assert outside in broker_topics(admin)
