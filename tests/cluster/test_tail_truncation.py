"""Tail truncation of a mirror target (Strata-only: ``strata.mirror.truncate.offsets``, see
crates/strata-broker/src/mirror_target.rs), set with Kafka's ``kafka-configs`` on a 3-replica
topic of a 3-node cluster: every replica's log ends at the truncation offset, the high watermark
follows, a follower that was down when it happened truncates when it returns, and the config is
never stored. Offsets outside the log and topics that are not mirror targets are refused.

Runs on a 3-node Strata cluster of its own (the suite's 6-node cluster is not needed); Apache
Kafka has no such action, so the reference target is skipped.
"""
import pytest

from harness import kafka_tool, unique_topic, wait_until
from harness.cluster import CLUSTER_PROPS, make_cluster
from harness.replication import partition_batches, produce_sync

TRUNCATE = "strata.mirror.truncate.offsets"
SOURCE = "strata.mirror.source"
TOOL_TIMEOUT = 180


@pytest.fixture(scope="module")
def three_nodes(target_kind, tmp_path_factory):
    if target_kind != "strata":
        pytest.skip("strata.mirror.truncate.offsets is Strata's failover extension; Apache Kafka "
                    "has no tail truncation of a topic")
    c = make_cluster("strata", tmp_path_factory.mktemp("truncation-cluster"), brokers=3, props=CLUSTER_PROPS)
    try:
        c.start(timeout=60)
        yield c
    finally:
        c.close()


def topic_configs(c, topic, *args, check=True):
    return kafka_tool("configs", "--bootstrap-server", c.healthy_bootstrap(), "--entity-type", "topics",
                      "--entity-name", topic, *args, timeout=TOOL_TIMEOUT, check=check)


def log_ends(c, topic, nodes):
    """{node: log end offset} of partition 0 on ``nodes``, read from the segment files."""
    batches = partition_batches(c, topic, {0: nodes})
    return {n: (bs[-1].last + 1 if bs else 0) for (_, n), bs in batches.items()}


def high_watermark(c, topic):
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": c.healthy_bootstrap(), "group.id": "hw-reader", "log_level": 2})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        consumer.close()


def mirror_target_with_ten_records(c, name):
    topic = unique_topic(name)
    c.create_topic(topic, partitions=1, replication_factor=3)
    # One record per request: single-record batches, so every offset is a batch boundary.
    for i in range(10):
        acks, errors = produce_sync(c.healthy_bootstrap(), topic, [f"r{i}"])
        assert len(acks) == 1 and not errors, errors
    c.wait_isr_full(topic)
    wait_until(lambda: set(log_ends(c, topic, [1, 2, 3]).values()) == {10}, 60, "10 records on every replica")
    c.alter_topic_config(topic, {SOURCE: "east"})
    return topic


@pytest.mark.timeout(600)
def test_truncation_reaches_every_replica_even_one_that_was_down(three_nodes):
    c = three_nodes
    topic = mirror_target_with_ten_records(c, "truncate")
    replicas = c.partitions(topic)[0].replicas
    leader = c.leader(topic)
    down = next(n for n in replicas if n != leader)
    epoch_before = c.partitions(topic)[0].epoch

    # 1. A follower is down when the truncation is ordered.
    c.stop_node(down)
    c.wait_partitions(topic, lambda ps: down not in ps[0].isr, f"node {down} out of the ISR", timeout=60)

    # 2. kafka-configs truncates partition 0 to offset 5.
    topic_configs(c, topic, "--alter", "--add-config", f"{TRUNCATE}=0:5")
    up = [n for n in replicas if n != down]
    wait_until(lambda: set(log_ends(c, topic, up).values()) == {5}, 60,
               f"the replicas {up} truncated to 5")
    wait_until(lambda: high_watermark(c, topic) == 5, 30, "the high watermark at 5")

    # 3. Never stored: DescribeConfigs does not show it.
    described = topic_configs(c, topic, "--describe", "--all").stdout
    assert TRUNCATE not in described, described
    assert f"{SOURCE}=east" in described, described

    # 4. The follower that was down truncates when it returns.
    c.start_node(down)
    wait_until(lambda: set(log_ends(c, topic, replicas).values()) == {5}, 90,
               f"every replica {replicas} (with {down}, back) at 5")
    c.wait_isr_full(topic)
    assert high_watermark(c, topic) == 5
    # The truncation gave the partition a new leader epoch (how followers learn of it).
    assert c.partitions(topic)[0].epoch > epoch_before


def test_truncation_is_refused_outside_the_log_and_on_normal_topics(three_nodes):
    c = three_nodes
    topic = mirror_target_with_ten_records(c, "truncate-refused")
    for value, needle in [("0:11", "log end offset 10"), ("0:x", "partition:offset"),
                          ("3:1", "does not exist")]:
        out = topic_configs(c, topic, "--alter", "--add-config", f"{TRUNCATE}={value}", check=False)
        assert out.returncode != 0, out.stdout
        assert needle in out.stdout + out.stderr, out.stdout + out.stderr
    assert set(log_ends(c, topic, [1, 2, 3]).values()) == {10}

    normal = unique_topic("truncate-normal")
    c.create_topic(normal, partitions=1, replication_factor=3)
    out = topic_configs(c, normal, "--alter", "--add-config", f"{TRUNCATE}=0:0", check=False)
    assert out.returncode != 0, out.stdout
    assert "not a mirror target" in out.stdout + out.stderr, out.stdout + out.stderr
