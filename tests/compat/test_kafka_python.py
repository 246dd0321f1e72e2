"""kafka-python (pure-Python client, PyPI) against each target broker."""

from __future__ import annotations

import threading
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import InvalidPartitionsError, KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from harness import unique_topic, wait_until

from scenarios import CODECS, MemberProcess, Rec, make_records, now_ms, verify_records

N_RECORDS = 100_000


def kp_admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)


def kp_create_topic(bootstrap, topic, partitions, configs=None):
    admin = kp_admin(bootstrap)
    try:
        admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1,
                                     "configs": dict(configs or {})}}, wait_for_metadata=True)
    finally:
        admin.close()


def kp_produce(bootstrap, topic, recs, codec=None, timeout=300):
    """Sends `recs` (explicit partition, key, value, headers, timestamp), flushes once and asserts
    every send was acknowledged."""
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=codec,
                      linger_ms=20, batch_size=256 * 1024,
                      max_request_size=4 * 1024 * 1024)
    try:
        futures = [p.send(topic, value=r.value, key=r.key, partition=r.partition,
                          headers=list(r.headers), timestamp_ms=r.timestamp) for r in recs]
        p.flush(timeout=timeout)
        failed = [f for f in futures if not f.succeeded()]
        assert not failed, f"{len(failed)} sends failed, first: {failed[0].exception!r}"
        return [f.value for f in futures]
    finally:
        p.close(timeout=30)


def kp_read_all(bootstrap, topic, partitions, timeout=300):
    """Reads every partition from its beginning to its end offset with manual assignment."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                      max_partition_fetch_bytes=4 * 1024 * 1024)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out = []
        deadline = time.monotonic() + timeout

        def done():
            return all(c.position(tp) >= end[tp] for tp in tps)
        while not done():
            assert time.monotonic() < deadline, f"read of {topic} incomplete: {len(out)} records"
            for tp, msgs in c.poll(timeout_ms=500, max_records=20000).items():
                for m in msgs:
                    out.append(Rec(partition=m.partition, offset=m.offset, key=m.key,
                                   value=m.value, headers=tuple(m.headers or ()),
                                   timestamp=m.timestamp))
                    assert m.timestamp_type == 0, "CreateTime expected"
        return out
    finally:
        c.close(autocommit=False)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_100k(broker, codec):
    topic = unique_topic(f"kp-{codec}")
    partitions = 4
    kp_create_topic(broker.bootstrap, topic, partitions)
    recs = make_records(N_RECORDS, partitions, tag=codec)
    meta = kp_produce(broker.bootstrap, topic, recs, None if codec == "none" else codec)
    # The acknowledged offsets are the per-partition sequence numbers of the sends.
    seq = {}
    for r, md in zip(recs, meta):
        assert md.partition == r.partition
        assert md.offset == seq.get(r.partition, 0), f"acked offset {md.offset} for {r.key!r}"
        seq[r.partition] = md.offset + 1

    got = kp_read_all(broker.bootstrap, topic, partitions)
    verify_records(recs, got)


class _Member:
    """An in-process kafka-python group member with a thread of its own that polls, records what
    it consumed and commits it (a member polled from a shared thread can miss rebalances)."""

    def __init__(self, bootstrap, group, topic):
        self.seen: list[tuple[int, int, bytes]] = []
        self.assigned: set[int] = set()
        self.c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                               auto_offset_reset="earliest", enable_auto_commit=False,
                               session_timeout_ms=6000, heartbeat_interval_ms=1000)
        self._stop = threading.Event()
        self.error = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                offs = {}
                for tp, msgs in self.c.poll(timeout_ms=500, max_records=500).items():
                    for m in msgs:
                        self.seen.append((m.partition, m.offset, m.key))
                        offs[tp] = OffsetAndMetadata(m.offset + 1, "", -1)
                if offs:
                    try:
                        self.c.commit(offs)
                    except KafkaError:
                        pass  # a rebalance raced the commit: the records come again
                self.assigned = {tp.partition for tp in self.c.assignment()}
        except Exception as e:  # surfaced by close()
            self.error = e
        finally:
            self.assigned = set()
            self.c.close(autocommit=False)

    def close(self):
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "group member thread did not stop"
        assert self.error is None, f"group member failed: {self.error!r}"


def kp_committed(bootstrap, group, tps):
    """The group's committed offsets for `tps` (OffsetFetch through the admin client)."""
    admin = kp_admin(bootstrap)
    try:
        res = admin.list_group_offsets({group: tps})[group]
    finally:
        admin.close()
    return [res[tp].offset if tp in res else None for tp in tps]


def _keys(seen):
    return {k for _, _, k in seen}


@pytest.mark.timeout(300)
def test_group_rebalance_commit_restart(broker, tmp_path):
    bs = broker.bootstrap
    partitions = 12
    per_phase = 100
    topic = unique_topic("kp-grp")
    group = unique_topic("kp-grp-g")
    kp_create_topic(bs, topic, partitions)
    all_parts = set(range(partitions))

    phase_a = make_records(per_phase * partitions, partitions, tag="a")
    kp_produce(bs, topic, phase_a)

    dying = MemberProcess("kafka-python", bs, group, topic, str(tmp_path / "dying.out"))
    m2 = _Member(bs, group, topic)
    m3 = _Member(bs, group, topic)
    try:
        def settled_a():
            a1, a2, a3 = dying.assignment(), m2.assigned, m3.assigned
            seen = _keys(m2.seen) | _keys(m3.seen) | {k for _, _, k in dying.consumed()}
            return (a1 and a2 and a3 and not (a1 & a2) and not (a1 & a3) and not (a2 & a3)
                    and a1 | a2 | a3 == all_parts and {r.key for r in phase_a} <= seen)
        wait_until(settled_a, 120, "three members sharing 12 partitions and phase A consumed")
        dead_parts = dying.assignment()

        dying.kill9()  # no LeaveGroup: noticed when its session times out
        phase_b = make_records(per_phase * partitions, partitions, tag="b")
        kp_produce(bs, topic, phase_b)

        def settled_b():
            return (m2.assigned | m3.assigned == all_parts
                    and {r.key for r in phase_b} <= _keys(m2.seen) | _keys(m3.seen))
        wait_until(settled_b, 120, "survivors taking over the dead member's partitions")
        assert dead_parts <= m2.assigned | m3.assigned

        m3.close()  # clean leave
        phase_c = make_records(per_phase * partitions, partitions, tag="c")
        kp_produce(bs, topic, phase_c)

        def settled_c():
            return m2.assigned == all_parts and {r.key for r in phase_c} <= _keys(m2.seen)
        wait_until(settled_c, 120, "last member owning all partitions and phase C consumed")

        total = 3 * per_phase
        tps = [TopicPartition(topic, p) for p in range(partitions)]

        wait_until(lambda: kp_committed(bs, group, tps) == [total] * partitions, 60,
                   "every partition committed up to its end")

        every = {r.key for r in phase_a + phase_b + phase_c}
        seen = _keys(m2.seen) | _keys(m3.seen) | {k for _, _, k in dying.consumed()}
        assert every <= seen, f"{len(every - seen)} records never consumed by any member"
        assert seen <= every
    finally:
        dying.stop()
        m2.close()
        m3.close()

    broker.restart()

    committed = wait_until(lambda: kp_committed(bs, group, tps), 90,
                           "OffsetFetch answered after restart")
    assert committed == [total] * partitions

    phase_d = make_records(10 * partitions, partitions, tag="d")
    kp_produce(bs, topic, phase_d)
    m4 = _Member(bs, group, topic)
    try:
        wait_until(lambda: {r.key for r in phase_d} <= _keys(m4.seen), 120,
                   "new member consuming the records produced after the restart")
        redelivered = [(p, o, k) for p, o, k in m4.seen if o < total]
        assert not redelivered, f"re-delivered below the committed offset: {redelivered[:5]}"
        assert len(m4.seen) == len(set(m4.seen))
        assert _keys(m4.seen) == {r.key for r in phase_d}
    finally:
        m4.close()


def _topic_configs(admin, topic):
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                 config_filter="all")
    return res["topic"][topic]


def _partition_count(admin, topic):
    (t,) = admin.describe_topics([topic])
    assert t["error_code"] == 0, t
    return len(t["partitions"])


@pytest.mark.timeout(180)
def test_admin_topic_lifecycle(broker):
    admin = kp_admin(broker.bootstrap)
    try:
        topic = unique_topic("kp-admin")
        configs = {"retention.ms": "86400000", "max.message.bytes": "200000",
                   "cleanup.policy": "delete"}
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1,
                                     "configs": configs}})
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})

        wait_until(lambda: _partition_count(admin, topic) == 3, 30, "3 partitions described")
        (t,) = admin.describe_topics([topic])
        assert sorted(p["partition_index"] for p in t["partitions"]) == [0, 1, 2]
        assert all(len(p["replica_nodes"]) == 1 and p["leader_id"] >= 0 for p in t["partitions"])

        cfg = _topic_configs(admin, topic)
        for k, v in configs.items():
            assert cfg[k]["value"] == v, (k, cfg[k])
        assert "segment.bytes" in cfg

        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                            {"retention.ms": "3600000"})])
        wait_until(lambda: _topic_configs(admin, topic)["retention.ms"]["value"] == "3600000", 30,
                   "retention.ms altered")
        assert _topic_configs(admin, topic)["max.message.bytes"]["value"] == "200000"

        admin.create_partitions({topic: 6})
        wait_until(lambda: _partition_count(admin, topic) == 6, 30, "6 partitions after increase")
        kp_produce(broker.bootstrap, topic,
                   [Rec(partition=5, key=b"k5", value=b"in-new-partition", timestamp=now_ms())])

        with pytest.raises(InvalidPartitionsError):
            admin.create_partitions({topic: 2})
        assert _partition_count(admin, topic) == 6

        admin.delete_topics([topic])
        wait_until(lambda: topic not in admin.list_topics(), 60, "topic deleted")
    finally:
        admin.close()


@pytest.mark.timeout(120)
def test_offsets_for_times(broker):
    bs = broker.bootstrap
    topic = unique_topic("kp-ts")
    kp_create_topic(bs, topic, 2)
    base = now_ms() - 3600_000
    n = 100
    recs = [Rec(partition=p, key=f"{p}-{i}".encode(), value=b"v", timestamp=base + 1000 * i + 500 * p)
            for i in range(n) for p in range(2)]
    for chunk in range(0, len(recs), 40):
        kp_produce(bs, topic, recs[chunk:chunk + 40], "gzip")

    c = KafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(2)]

        def lookup(ts):
            res = c.offsets_for_times({tp: ts for tp in tps})
            return [None if res[tp] is None else res[tp].offset for tp in tps]

        assert lookup(base + 37_000) == [37, 37]
        assert lookup(base + 37_001) == [38, 37]
        assert lookup(base + 37_500) == [38, 37]
        assert lookup(base - 10_000) == [0, 0]
        assert lookup(base + 99_000) == [99, 99]
        assert lookup(base + 99_501) == [None, None]  # after everything: no offset
        res = c.offsets_for_times({tps[1]: base + 42_400})
        assert res[tps[1]].timestamp == base + 42_500
        assert c.beginning_offsets(tps) == {tp: 0 for tp in tps}
        assert c.end_offsets(tps) == {tp: n for tp in tps}
    finally:
        c.close(autocommit=False)
