"""The failover write fence (Strata-only, see crates/strata-broker/src/write_fence.rs), driven the
way an operator would: Kafka's ``kafka-configs`` sets and clears ``strata.write.fence`` (and the
write mandate) on the cluster-default broker resource, confluent-kafka and Kafka's Java producer
see their writes refused while it is set, and nothing is appended or lost.

The promotion's producer reset (``strata.producer.reset``, set with the fence's removal in one
``kafka-configs`` call): an idempotent producer whose sequence moved on elsewhere is accepted
again, new producer ids start at the floor, and confluent-kafka's idempotent producer goes on
writing. Producer ids are not visible through confluent-kafka, so the moved producer is the raw
client of ``harness.raw_producer``.

Apache Kafka has no such configs (it refuses them as unknown broker configs): the reference
target is skipped.
"""
import logging
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from harness import kafka_tool, unique_topic, wait_until
from harness.data import create_topic
from harness.raw_producer import (INVALID_CONFIG, NONE, NOT_LEADER_OR_FOLLOWER, OUT_OF_ORDER_SEQUENCE_NUMBER,
                                  incremental_alter_cluster_default, init_producer_id, produce_idempotent)
from harness.replication import VerifiableProducer, produce_sync

FENCE = "strata.write.fence"
MANDATE = "strata.write.mandate.expiry.ms"
RESET = "strata.producer.reset"
TOOL_TIMEOUT = 180


@pytest.fixture
def strata(broker, target_kind):
    if target_kind != "strata":
        pytest.skip("strata.write.fence and strata.write.mandate.expiry.ms are Strata's failover "
                    "extensions; Apache Kafka has no write fence")
    return broker


def configs(broker, *args, check=True):
    return kafka_tool("configs", "--bootstrap-server", broker.bootstrap, "--entity-type", "brokers",
                      "--entity-default", *args, timeout=TOOL_TIMEOUT, check=check)


def high_watermark(broker, topic):
    """Partition 0's high watermark, read as the failover tooling reads a fenced cluster: its
    client id (``strata-failover...``) still gets metadata."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "fence-check",
                  "client.id": "strata-failover-check", "log_level": 2})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


class LoggedProducer:
    """A confluent-kafka producer whose librdkafka log (``debug=msg``) is kept in :attr:`lines`."""

    def __init__(self, broker, name):
        self.lines = _Lines()
        logger = logging.getLogger(f"fence-{name}")
        logger.addHandler(self.lines)
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        self.producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0,
                                  "enable.idempotence": False, "message.timeout.ms": 4000, "debug": "msg",
                                  "logger": logger})

    def send(self, topic, value):
        """(error, offset) of one record's delivery report."""
        reports = []
        self.producer.produce(topic, value=value.encode(), partition=0,
                              on_delivery=lambda err, msg: reports.append((err, msg.offset())))
        assert self.producer.flush(30) == 0, "no delivery report"
        return reports[0]

    def logged(self, text):
        return any(text in line for line in self.lines.lines)


def refused_while_fenced(producer, topic, value, sign):
    """One record through ``producer``: librdkafka keeps it through the fence's answers (a
    leader error does not count as a retry; REBOOTSTRAP_REQUIRED sends it back to its bootstrap
    servers) until message.timeout.ms, so its delivery report says _MSG_TIMED_OUT; its log shows
    ``sign``. Raises unless both hold."""
    err, offset = producer.send(topic, value)
    assert err is not None, f"acknowledged at offset {offset} while fenced"
    assert err.code() == KafkaError._MSG_TIMED_OUT, err
    assert producer.logged(sign), f"no '{sign}' in librdkafka's log:\n" + "\n".join(producer.lines.lines[-20:])
    return True


def test_fence_set_and_cleared_with_kafka_configs(strata, tmp_path):
    topic = unique_topic("fence")
    create_topic(strata.bootstrap, topic, 1)

    # 1. Before the fence: writes are acknowledged.
    acks, errors = produce_sync(strata.bootstrap, topic, [f"before-{i}" for i in range(5)])
    assert len(acks) == 5 and not errors, errors
    warm = LoggedProducer(strata, "warm")
    assert warm.send(topic, "warm")[0] is None
    vp = VerifiableProducer(tmp_path, strata.bootstrap, topic, prefix=7, throughput=50, idempotent=False,
                            config={"metadata.max.age.ms": "60000"}).start()
    try:
        vp.log.wait_acked(10, 90, "from kafka-verifiable-producer before the fence")

        # 2. kafka-configs fences the cluster; DescribeConfigs shows the fence.
        configs(strata, "--alter", "--add-config", f"{FENCE}=f123")
        out = configs(strata, "--describe").stdout
        assert f"{FENCE}=f123" in out, out

        # 3. confluent-kafka: a producer that knows the leader is answered NOT_LEADER_OR_FOLLOWER
        #    (then re-bootstraps: librdkafka sends Metadata v13); a new one re-bootstraps from its
        #    first Metadata. The Java producer sees the fence's message with its
        #    NotLeaderOrFollowerException.
        wait_until(lambda: refused_while_fenced(warm, topic, "while-fenced", "Not leader for partition"), 30,
                   "the warm confluent-kafka producer refused by the fence")
        fresh = LoggedProducer(strata, "fresh")
        assert refused_while_fenced(fresh, topic, "fresh", "re-bootstrap")
        wait_until(lambda: vp.log.saw("NotLeaderOrFollowerException"), 60,
                   f"the Java producer refused by the fence (errors {dict(vp.log.errors)})")
        assert any("write-fenced by failover f123" in e for e in vp.log.error_examples), vp.log.error_examples
        fenced_at = high_watermark(strata, topic)
        java_acked = vp.log.acked_count

        # 4. Nothing is appended while fenced (a few more refused attempts first).
        for i in range(2):
            assert refused_while_fenced(warm, topic, f"while-fenced-{i}", "re-bootstrap")
        assert high_watermark(strata, topic) == fenced_at
        assert all(a.offset < fenced_at for a in vp.acked), "a record acknowledged above the fence point"

        # 5. Clearing the fence lets both clients write again.
        configs(strata, "--alter", "--delete-config", FENCE)
        assert FENCE not in configs(strata, "--describe").stdout
        acks, errors = produce_sync(strata.bootstrap, topic, ["after"])
        assert len(acks) == 1 and not errors, errors
        assert acks[0].offset >= fenced_at
        assert wait_until(lambda: warm.send(topic, "warm-after")[0] is None, 60,
                          "the warm producer writing again")
        vp.log.wait_acked(java_acked + 10, 120, "from kafka-verifiable-producer after the fence")
    finally:
        vp.stop()
        configs(strata, "--alter", "--delete-config", FENCE, check=False)

    # 6. Nothing acknowledged before the fence was lost.
    # (5 + the warm producer's 2 + "after" + the Java producer's acknowledged records.)
    hw = high_watermark(strata, topic)
    assert hw == 5 + 2 + 1 + vp.log.acked_count, (hw, vp.log.acked_count)


def test_an_expired_mandate_fences_until_renewed(strata):
    topic = unique_topic("mandate")
    create_topic(strata.bootstrap, topic, 1)
    far_future = 32503680000000  # year 3000
    configs(strata, "--alter", "--add-config", f"{MANDATE}={far_future}")
    try:
        acks, errors = produce_sync(strata.bootstrap, topic, ["within-mandate"])
        assert len(acks) == 1 and not errors, errors

        # 1. A mandate in the past: the cluster fences itself.
        configs(strata, "--alter", "--add-config", f"{MANDATE}=1000")
        producer = LoggedProducer(strata, "mandate")
        wait_until(lambda: refused_while_fenced(producer, topic, "expired", "re-bootstrap"), 30,
                   "confluent-kafka refused once the mandate expired")
        assert high_watermark(strata, topic) == 1

        # 2. Renewed: writes resume.
        configs(strata, "--alter", "--add-config", f"{MANDATE}={far_future}")
        acks, errors = produce_sync(strata.bootstrap, topic, ["renewed"])
        assert len(acks) == 1 and not errors, errors
        assert acks[0].offset == 1
    finally:
        configs(strata, "--alter", "--delete-config", MANDATE, check=False)


def test_fence_is_refused_on_a_single_broker(strata):
    out = kafka_tool("configs", "--bootstrap-server", strata.bootstrap, "--entity-type", "brokers",
                     "--entity-name", "1", "--alter", "--add-config", f"{FENCE}=f1",
                     timeout=TOOL_TIMEOUT, check=False)
    assert out.returncode != 0
    assert "cluster-wide" in out.stdout + out.stderr, out.stdout + out.stderr


def test_producer_reset_at_promotion_lets_a_moved_producer_resume(strata):
    topic = unique_topic("producer-reset")
    create_topic(strata.bootstrap, topic, 1)
    librdkafka = Producer({"bootstrap.servers": strata.bootstrap, "enable.idempotence": True, "acks": "all",
                           "linger.ms": 0, "message.timeout.ms": 30000})

    def send(values):
        reports = []
        for v in values:
            librdkafka.produce(topic, value=v.encode(), partition=0,
                               on_delivery=lambda err, msg: reports.append((err, msg.offset())))
            librdkafka.poll(0)
        assert librdkafka.flush(60) == 0, "no delivery report"
        assert all(err is None for err, _ in reports), reports
        return [o for _, o in reports]

    # 1. Before the failover: librdkafka's idempotent producer and producer P write here; P is at
    #    sequence 4 on this cluster.
    assert send([f"before-{i}" for i in range(5)]) == [0, 1, 2, 3, 4]
    pid, epoch = init_producer_id(strata.bootstrap)
    assert produce_idempotent(strata.bootstrap, topic, pid, epoch, 0, 5) == (NONE, 5)

    # 2. P wrote up to sequence 49 on the other cluster meanwhile: here that is a gap, the error
    #    librdkafka takes as fatal.
    assert produce_idempotent(strata.bootstrap, topic, pid, epoch, 50, 5)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER

    # 3. Failback: the cluster is fenced, then promoted by one kafka-configs call that lifts the
    #    fence and resets the producers with a floor above every id handed out so far.
    configs(strata, "--alter", "--add-config", f"{FENCE}=f-reset")
    assert produce_idempotent(strata.bootstrap, topic, pid, epoch, 50, 5)[0] == NOT_LEADER_OR_FOLLOWER
    floor = int(time.time() * 1000) * 1024
    assert pid < floor
    configs(strata, "--alter", "--delete-config", FENCE, "--add-config", f"{RESET}={floor}")
    described = configs(strata, "--describe").stdout
    assert RESET not in described and FENCE not in described, described

    # 4. A retry of P's batch from before the reset still gets its original offset; P resumes at
    #    sequence 50; its retry is still recognised as a duplicate, its next batch follows on.
    assert produce_idempotent(strata.bootstrap, topic, pid, epoch, 0, 5) == (NONE, 5)
    assert produce_idempotent(strata.bootstrap, topic, pid, epoch, 50, 5) == (NONE, 10)
    assert produce_idempotent(strata.bootstrap, topic, pid, epoch, 50, 5) == (NONE, 10)
    assert produce_idempotent(strata.bootstrap, topic, pid, epoch, 55, 5) == (NONE, 15)
    assert produce_idempotent(strata.bootstrap, topic, pid, epoch, 70, 1)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER

    # 5. New producer ids start at the floor: none can collide with an id of the other cluster.
    new_pid, new_epoch = init_producer_id(strata.bootstrap)
    assert new_pid >= floor, (new_pid, floor)
    assert produce_idempotent(strata.bootstrap, topic, new_pid, new_epoch, 0, 1) == (NONE, 20)

    # 6. librdkafka's producer, which knows nothing of the reset, goes on writing.
    assert send([f"after-{i}" for i in range(5)]) == [21, 22, 23, 24, 25]
    assert high_watermark(strata, topic) == 26


@pytest.mark.parametrize("entity, value, expected", [
    (["--entity-default"], "-1", "Invalid value -1"),
    (["--entity-default"], "soon", "Invalid value soon"),
    (["--entity-name", "1"], "1000", "cluster-wide"),
])
def test_producer_reset_refuses_bad_values_and_single_brokers(strata, entity, value, expected):
    out = kafka_tool("configs", "--bootstrap-server", strata.bootstrap, "--entity-type", "brokers", *entity,
                     "--alter", "--add-config", f"{RESET}={value}", timeout=TOOL_TIMEOUT, check=False)
    assert out.returncode != 0
    assert expected in out.stdout + out.stderr, out.stdout + out.stderr


def test_producer_reset_is_an_action_that_cannot_be_deleted(strata):
    # kafka-configs refuses to delete a config the broker does not show, and confluent-kafka's
    # AdminClient to name the cluster default: the request is built here.
    error, message = incremental_alter_cluster_default(strata.bootstrap, [(RESET, 1, None)])
    assert error == INVALID_CONFIG and "only SET" in message, (error, message)
