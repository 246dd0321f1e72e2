"""librdkafka through confluent-kafka (PyPI) against each target broker."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewPartitions, NewTopic, OffsetSpec, ResourceType)

from harness import unique_topic, wait_until

from scenarios import (CODECS, MemberProcess, Rec, ck_committed, ck_produce, ck_read_all,
                       create_topic, make_records, now_ms, verify_records)

N_RECORDS = 100_000


@pytest.mark.timeout(600)
@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_100k(broker, codec):
    topic = unique_topic(f"ck-{codec}")
    partitions = 4
    create_topic(broker.bootstrap, topic, partitions)
    recs = make_records(N_RECORDS, partitions, tag=codec)
    ck_produce(broker.bootstrap, topic, recs, {"compression.codec": codec})

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique_topic("wm")})
    try:
        marks = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)]
    finally:
        c.close()
    assert marks == [(0, N_RECORDS // partitions)] * partitions

    got = ck_read_all(broker.bootstrap, topic, partitions)
    verify_records(recs, got)


def _commit(consumer, topic, msgs):
    offs = {}
    for m in msgs:
        offs[m.partition()] = m.offset() + 1
    if not offs:
        return
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offs.items()],
                        asynchronous=False)
    except KafkaException:
        pass  # a rebalance raced the commit: the records come again (at least once)


class _Member:
    """An in-process group member polled by the test thread; records what it consumed."""

    def __init__(self, bootstrap, group, topic):
        self.topic = topic
        self.assigned: set[int] = set()
        self.seen: list[tuple[int, int, bytes]] = []
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                           "auto.offset.reset": "earliest", "enable.auto.commit": False,
                           "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
        self.c.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.open = True

    def _on_assign(self, consumer, parts):
        self.assigned = {p.partition for p in parts}

    def _on_revoke(self, consumer, parts):
        self.assigned = set()

    def pump(self, timeout=0.2):
        if not self.open:
            return
        msgs = [m for m in self.c.consume(500, timeout) if m.error() is None]
        for m in msgs:
            self.seen.append((m.partition(), m.offset(), m.key()))
        _commit(self.c, self.topic, msgs)

    def close(self):
        if self.open:
            self.c.close()
            self.open = False


def _keys(seen):
    return {k for _, _, k in seen}


@pytest.mark.timeout(300)
def test_group_rebalance_commit_restart(broker, tmp_path):
    bs = broker.bootstrap
    partitions = 12
    per_phase = 100  # records per partition per phase
    topic = unique_topic("ck-grp")
    group = unique_topic("ck-grp-g")
    create_topic(bs, topic, partitions)

    phase_a = make_records(per_phase * partitions, partitions, tag="a")
    ck_produce(bs, topic, phase_a)

    dying = MemberProcess("confluent", bs, group, topic, str(tmp_path / "dying.out"))
    m2 = _Member(bs, group, topic)
    m3 = _Member(bs, group, topic)
    try:
        all_parts = set(range(partitions))

        def settled_a():
            m2.pump()
            m3.pump()
            a1, a2, a3 = dying.assignment(), m2.assigned, m3.assigned
            seen = _keys(m2.seen) | _keys(m3.seen) | {k for _, _, k in dying.consumed()}
            return (a1 and a2 and a3 and not (a1 & a2) and not (a1 & a3) and not (a2 & a3)
                    and a1 | a2 | a3 == all_parts and {r.key for r in phase_a} <= seen)
        wait_until(settled_a, 120, "three members sharing 12 partitions and phase A consumed")
        dead_parts = dying.assignment()

        # A member dies without leaving: the group notices only when its session times out.
        dying.kill9()
        phase_b = make_records(per_phase * partitions, partitions, tag="b")
        ck_produce(bs, topic, phase_b)

        def settled_b():
            m2.pump()
            m3.pump()
            return (m2.assigned | m3.assigned == all_parts
                    and {r.key for r in phase_b} <= _keys(m2.seen) | _keys(m3.seen))
        wait_until(settled_b, 120, "survivors taking over the dead member's partitions")
        assert dead_parts <= m2.assigned | m3.assigned

        # A member leaves cleanly.
        m3.close()
        phase_c = make_records(per_phase * partitions, partitions, tag="c")
        ck_produce(bs, topic, phase_c)

        def settled_c():
            m2.pump()
            return m2.assigned == all_parts and {r.key for r in phase_c} <= _keys(m2.seen)
        wait_until(settled_c, 120, "last member owning all partitions and phase C consumed")

        total = 3 * per_phase
        tps = [TopicPartition(topic, p) for p in range(partitions)]

        def all_committed():
            m2.pump()
            return [tp.offset for tp in m2.c.committed(tps, timeout=10)] == [total] * partitions
        wait_until(all_committed, 60, "every partition committed up to its end")

        every = {r.key for r in phase_a + phase_b + phase_c}
        seen = _keys(m2.seen) | _keys(m3.seen) | {k for _, _, k in dying.consumed()}
        assert every <= seen, f"{len(every - seen)} records never consumed by any member"
        assert seen <= every
    finally:
        dying.stop()
        m2.close()
        m3.close()

    broker.restart()

    committed = wait_until(lambda: ck_committed(bs, group, topic, partitions), 90,
                           "OffsetFetch answered after restart")
    assert committed == [total] * partitions

    phase_d = make_records(10 * partitions, partitions, tag="d")
    ck_produce(bs, topic, phase_d)
    m4 = _Member(bs, group, topic)
    try:
        wait_until(lambda: (m4.pump(), {r.key for r in phase_d} <= _keys(m4.seen))[1], 120,
                   "new member consuming the records produced after the restart")
        redelivered = [(p, o, k) for p, o, k in m4.seen if o < total]
        assert not redelivered, f"re-delivered below the committed offset: {redelivered[:5]}"
        assert sorted(m4.seen) == sorted(set(m4.seen))
        assert _keys(m4.seen) == {r.key for r in phase_d}
    finally:
        m4.close()


def _describe_configs(admin, topic):
    res = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
    (fut,) = res.values()
    return fut.result(30)


def _partition_count(admin, topic):
    d = admin.describe_topics(TopicCollection([topic]))[topic].result(30)
    return len(d.partitions)


@pytest.mark.timeout(180)
def test_admin_topic_lifecycle(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = unique_topic("ck-admin")
    configs = {"retention.ms": "86400000", "max.message.bytes": "200000",
               "cleanup.policy": "delete"}
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                  config=configs)])[topic].result(30)

    with pytest.raises(KafkaException) as exc:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    assert exc.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    wait_until(lambda: _partition_count(admin, topic) == 3, 30, "3 partitions described")
    d = admin.describe_topics(TopicCollection([topic]))[topic].result(30)
    assert sorted(p.id for p in d.partitions) == [0, 1, 2]
    assert all(len(p.replicas) == 1 and p.leader is not None for p in d.partitions)

    cfg = _describe_configs(admin, topic)
    for k, v in configs.items():
        assert cfg[k].value == v, k
        assert cfg[k].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, k
    assert cfg["segment.bytes"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    admin.incremental_alter_configs([ConfigResource(
        ResourceType.TOPIC, topic, incremental_configs=[
            ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])]
    )[ConfigResource(ResourceType.TOPIC, topic)].result(30)
    wait_until(lambda: _describe_configs(admin, topic)["retention.ms"].value == "3600000", 30,
               "retention.ms altered")
    cfg = _describe_configs(admin, topic)
    assert cfg["max.message.bytes"].value == "200000"  # incremental: untouched keys stay

    admin.create_partitions([NewPartitions(topic, 6)])[topic].result(30)
    wait_until(lambda: _partition_count(admin, topic) == 6, 30, "6 partitions after increase")
    rec = Rec(partition=5, key=b"k5", value=b"in-new-partition", timestamp=now_ms())
    ck_produce(broker.bootstrap, topic, [rec])

    with pytest.raises(KafkaException) as exc:
        admin.create_partitions([NewPartitions(topic, 2)])[topic].result(30)
    assert exc.value.args[0].code() == KafkaError.INVALID_PARTITIONS
    assert _partition_count(admin, topic) == 6

    admin.delete_topics([topic])[topic].result(30)
    wait_until(lambda: topic not in admin.list_topics(timeout=10).topics, 60, "topic deleted")
    with pytest.raises(KafkaException) as exc:
        admin.describe_topics(TopicCollection([topic]))[topic].result(30)
    assert exc.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


@pytest.mark.timeout(120)
def test_list_offsets_by_timestamp(broker):
    bs = broker.bootstrap
    topic = unique_topic("ck-ts")
    create_topic(bs, topic, 2)
    base = now_ms() - 3600_000
    n = 100
    # Partition 0 at base + 1000*i, partition 1 half a second later; in several batches.
    recs = [Rec(partition=p, key=f"{p}-{i}".encode(), value=b"v", timestamp=base + 1000 * i + 500 * p)
            for i in range(n) for p in range(2)]
    for chunk in range(0, len(recs), 40):
        ck_produce(bs, topic, recs[chunk:chunk + 40], {"compression.codec": "lz4"})

    c = Consumer({"bootstrap.servers": bs, "group.id": unique_topic("ts")})
    try:
        def lookup(ts):
            res = c.offsets_for_times([TopicPartition(topic, p, ts) for p in range(2)], timeout=15)
            for tp in res:
                assert tp.error is None, tp.error
            return [tp.offset for tp in res]

        assert lookup(base + 37_000) == [37, 37]        # exact hit on p0, p1's 37th is later
        assert lookup(base + 37_001) == [38, 37]
        assert lookup(base + 37_500) == [38, 37]
        assert lookup(base - 10_000) == [0, 0]          # before everything: the first record
        assert lookup(base + 99_000) == [99, 99]
        assert lookup(base + 99_501) == [-1, -1]        # after everything: no offset
        assert [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                for p in range(2)] == [(0, n), (0, n)]
    finally:
        c.close()

    admin = AdminClient({"bootstrap.servers": bs})
    res = admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.for_timestamp(base + 50_000),
                              TopicPartition(topic, 1): OffsetSpec.max_timestamp()})
    got = {tp.partition: f.result(15) for tp, f in res.items()}
    assert got[0].offset == 50 and got[0].timestamp == base + 50_000
    assert got[1].offset == n - 1 and got[1].timestamp == base + 1000 * (n - 1) + 500
