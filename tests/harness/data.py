"""Deterministic data for the mirror suites, through confluent-kafka (librdkafka): create topics,
produce numbered records, read a topic back partition by partition, wait until a mirror has
copied a topic, consume as a member of a consumer group.

Record ``i`` of a produced sequence goes to partition ``i % partitions`` with key ``b"k<i>"``, a
value derived from ``i`` (see :func:`value_of`), headers ``[("h", b"<i>"), ("h2", b"x")]`` and
CreateTime ``base_ts + i``. Every wait has a deadline and fails with what it saw.
"""
import time
import uuid
from collections import namedtuple

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .util import wait_until

PROVENANCE_HEADER = "strata.mirror.origin"

# One day in the past, fixed per test process: inside the default 7-day retention and never "in
# the future" for the brokers' timestamp bounds; the same record number always gets the same
# timestamp, even when a test produces in several calls.
BASE_TS = (int(time.time() * 1000) - 24 * 3600 * 1000) // 1000 * 1000

Rec = namedtuple("Rec", "offset key value headers timestamp")
Rec.__doc__ = "One record read back: offset, key, value, headers (list of (str, bytes)), CreateTime."


def key_of(i):
    """Key of record ``i``."""
    return b"k%d" % i


def index_of(key):
    """Record number of a key made by :func:`key_of`."""
    return int(key[1:])


def value_of(i, value_size=100):
    """Value of record ``i``: ``value_size`` bytes, compressible but unique to ``i``."""
    unit = b"value-%010d-" % i
    return (unit * (value_size // len(unit) + 1))[:value_size]


def headers_of(i):
    """Headers of record ``i``."""
    return [("h", b"%d" % i), ("h2", b"x")]


def _admin(bootstrap, extra=None):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000, **(extra or {})})


def topic_partitions(bootstrap, topic, timeout=10, extra=None):
    """Partition count of ``topic`` (0 when it does not exist or has no partitions yet)."""
    md = _admin(bootstrap, extra).list_topics(topic, timeout=timeout).topics.get(topic)
    if md is None or md.error is not None:
        return 0
    return len(md.partitions)


def create_topic(bootstrap, topic, partitions, configs=None, timeout=60):
    """Creates ``topic`` (replication factor 1) and waits until every partition has a leader."""
    admin = _admin(bootstrap)
    fut = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                        config={k: str(v) for k, v in (configs or {}).items()})],
                              operation_timeout=30)[topic]
    fut.result(timeout)

    def led():
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        return (md is not None and md.error is None and len(md.partitions) == partitions
                and all(pm.leader >= 0 for pm in md.partitions.values()))

    wait_until(led, timeout, f"topic {topic} with {partitions} led partitions on {bootstrap}")


class RecordProducer:
    """A confluent-kafka producer of numbered records (see the module docstring) to one topic,
    kept across :meth:`send` calls (an idempotent producer costs a round of requests to set up)."""

    def __init__(self, bootstrap, topic, partitions, *, compression="none", value_size=100, base_ts=None,
                 extra=None):
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.value_size = value_size
        self.base_ts = BASE_TS if base_ts is None else base_ts
        conf = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                "compression.codec": compression, "linger.ms": 20, "batch.size": 1048576,
                "queue.buffering.max.messages": 1000000, "queue.buffering.max.kbytes": 1048576,
                # Only failed deliveries call back: one callback per record would dominate the cost.
                "delivery.report.only.error": True}
        conf.update(extra or {})
        self.errors = []
        self._producer = Producer(conf)

    def _on_delivery(self, err, msg):
        if err is not None:
            self.errors.append(f"{err} (partition {msg.partition()}, key {msg.key()!r})")

    def send(self, start, count, timeout=180):
        """Produces records ``start`` .. ``start + count - 1``, flushes, and raises AssertionError
        on any delivery error or unacknowledged record."""
        p, topic, partitions, size, base_ts = (self._producer, self.topic, self.partitions, self.value_size,
                                               self.base_ts)
        on_delivery = self._on_delivery
        for i in range(start, start + count):
            args = dict(value=value_of(i, size), key=b"k%d" % i, partition=i % partitions,
                        headers=[("h", b"%d" % i), ("h2", b"x")], timestamp=base_ts + i,
                        on_delivery=on_delivery)
            while True:
                try:
                    p.produce(topic, **args)
                    break
                except BufferError:
                    p.poll(0.1)  # the local queue is full: serve delivery reports, then retry
        remaining = p.flush(timeout)
        assert remaining == 0, f"{remaining} records to {topic} on {self.bootstrap} unacknowledged after {timeout}s"
        assert not self.errors, (f"{len(self.errors)} delivery errors producing to {topic} on {self.bootstrap}, "
                                 f"first: {self.errors[:3]}")


def produce(bootstrap, topic, count, partitions, *, compression="none", start=0, value_size=100,
            base_ts=None, extra=None, timeout=180):
    """Produces records ``start`` .. ``start + count - 1`` (see the module docstring), flushes,
    and raises AssertionError on any delivery error or unacknowledged record."""
    RecordProducer(bootstrap, topic, partitions, compression=compression, value_size=value_size,
                   base_ts=base_ts, extra=extra).send(start, count, timeout)


# Answers a partition leader gives while it cannot serve offsets yet: Kafka's new leader answers
# OFFSET_NOT_AVAILABLE until its high watermark has caught up (KIP-207), and a leadership may move.
_WATERMARK_RETRY = {KafkaError.OFFSET_NOT_AVAILABLE, KafkaError.LEADER_NOT_AVAILABLE,
                    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError._TIMED_OUT}


def watermark_offsets(consumer, topic, partition, timeout=10):
    """(low, high) of one partition, asked again while its leader cannot answer yet, for up to
    ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    while True:
        left = max(1.0, deadline - time.monotonic())
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=left)
        except KafkaException as e:
            if e.args[0].code() not in _WATERMARK_RETRY or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def _reader(bootstrap, extra=None):
    conf = {"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False, "enable.auto.offset.store": False,
            "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 8388608,
            "fetch.wait.max.ms": 100}
    conf.update(extra or {})
    return Consumer(conf)


def watermarks(bootstrap, topic, timeout=10):
    """{partition: (low, high)} of ``topic``."""
    n = topic_partitions(bootstrap, topic, timeout)
    c = _reader(bootstrap)
    try:
        return {p: watermark_offsets(c, topic, p, timeout) for p in range(n)}
    finally:
        c.close()


def read_all(bootstrap, topic, *, timeout=60, extra=None):
    """Every record of every partition of ``topic`` from the earliest offset up to the high
    watermark read at call time: {partition: [Rec, ...]} in offset order. ``extra``: client
    settings for both the metadata lookup and the reader (a ``client.id``, say)."""
    n = topic_partitions(bootstrap, topic, extra=extra)
    assert n > 0, f"topic {topic} does not exist on {bootstrap}"
    c = _reader(bootstrap, extra)
    try:
        marks = {p: watermark_offsets(c, topic, p, 30) for p in range(n)}
        out = {p: [] for p in range(n)}
        pending = {p for p, (low, high) in marks.items() if high > low}
        high = {p: marks[p][1] for p in range(n)}
        if pending:
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                got = {p: (len(out[p]), marks[p]) for p in sorted(pending)}
                raise AssertionError(f"reading {topic} on {bootstrap}: not at the high watermark after "
                                     f"{timeout}s; partition: (records read, (low, high)) = {got}")
            for m in c.consume(num_messages=10000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(err)
                p, o = m.partition(), m.offset()
                if o >= high[p]:
                    pending.discard(p)
                    continue
                out[p].append(Rec(o, m.key(), m.value(), m.headers() or [], m.timestamp()[1]))
                if o == high[p] - 1:
                    pending.discard(p)
        return out
    finally:
        c.close()


def record_counts(bootstrap, topic):
    """{partition: high - low} of ``topic`` ({} when it does not exist)."""
    return {p: high - low for p, (low, high) in watermarks(bootstrap, topic).items()}


def wait_mirrored(source, target, src_topic, dst_topic, *, timeout=120):
    """Waits until every partition of ``dst_topic`` on ``target`` holds at least as many records
    as the same partition of ``src_topic`` on ``source``."""
    seen = {}

    def done():
        src = record_counts(source, src_topic)
        dst = record_counts(target, dst_topic)
        seen.update(source=src, target=dst)
        return bool(src) and all(dst.get(p, -1) >= n for p, n in src.items())

    try:
        wait_until(done, timeout, f"{src_topic}@{source} mirrored to {dst_topic}@{target}", interval=0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}; records per partition: source {seen.get('source')}, "
                             f"target {seen.get('target')}") from None


def consume_group_partitioned(bootstrap, group, topic, *, max_records=None, until=None, commit=True,
                              timeout=60, extra=None):
    """Consumes ``topic`` as a member of ``group`` (subscribe, ``auto.offset.reset=earliest``):
    ``max_records`` records, or, when None, everything up to the high watermarks read at
    assignment; ``until`` ({partition: offset}) stops a partition before that offset (records
    from it on are dropped, neither returned nor committed). With ``commit``, commits the position
    after the last record consumed of each partition (synchronously), then leaves the group.
    Returns {partition: [Rec, ...]}."""
    until = dict(until or {})
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000,
            "fetch.wait.max.ms": 100}
    conf.update(extra or {})
    c = Consumer(conf)
    assigned = []
    c.subscribe([topic], on_assign=lambda consumer, parts: assigned.extend(parts))
    out = {}
    position = {}  # partition -> next offset to consume
    high = None  # partition -> high watermark at assignment
    consumed = 0
    deadline = time.monotonic() + timeout

    def finished():
        if max_records is not None:
            return consumed >= max_records
        return high is not None and all(position.get(p, 0) >= min(h, until.get(p, h)) for p, h in high.items())

    try:
        while not finished():
            if time.monotonic() > deadline:
                state = ("no assignment yet" if high is None else "partition: (position, high watermark) = "
                         + str({p: (position.get(p), h) for p, h in high.items()}))
                raise AssertionError(
                    f"group {group} on {bootstrap}: consumed {consumed} records of {topic} in {timeout}s, "
                    f"wanted {max_records if max_records is not None else 'all'}; {state}")
            want = 1000 if max_records is None else min(1000, max_records - consumed)
            for m in c.consume(num_messages=want, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(err)
                p = m.partition()
                if p in until and m.offset() >= until[p]:
                    continue
                out.setdefault(p, []).append(Rec(m.offset(), m.key(), m.value(), m.headers() or [],
                                                 m.timestamp()[1]))
                position[p] = m.offset() + 1
                consumed += 1
            if high is None and assigned:
                parts = sorted(tp.partition for tp in assigned)
                committed = {tp.partition: tp.offset for tp in c.committed(
                    [TopicPartition(topic, p) for p in parts], timeout=10)}
                marks = {p: watermark_offsets(c, topic, p) for p in parts}
                for p in parts:
                    start = committed[p] if committed[p] >= 0 else marks[p][0]
                    position[p] = max(position.get(p, start), start)
                high = {p: marks[p][1] for p in parts}
        if commit:
            offsets = [TopicPartition(topic, p, recs[-1].offset + 1) for p, recs in out.items() if recs]
            if offsets:
                c.commit(offsets=offsets, asynchronous=False)
        return out
    finally:
        c.close()


def consume_group(bootstrap, group, topic, *, max_records=None, commit=True, timeout=60):
    """:func:`consume_group_partitioned`, flattened: the records of all partitions, partition by
    partition."""
    parts = consume_group_partitioned(bootstrap, group, topic, max_records=max_records, commit=commit,
                                      timeout=timeout)
    return [r for p in sorted(parts) for r in parts[p]]


def commit_offsets(bootstrap, group, topic, offsets):
    """Commits {partition: offset} for ``group`` without joining it (admin-style commit)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        c.close()


def committed_offsets(bootstrap, group, topic, partitions, timeout=10):
    """{partition: committed offset} of ``group`` on ``topic`` (partitions without a commit are
    left out), read with the admin API so no member joins the group."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    admin = _admin(bootstrap)
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    res = admin.list_consumer_group_offsets([req], request_timeout=timeout)[group].result(timeout)
    return {tp.partition: tp.offset for tp in res.topic_partitions if tp.offset >= 0 and tp.error is None}


def strip_provenance(headers):
    """``headers`` without the mirror's provenance header."""
    return [(k, v) for k, v in (headers or []) if k != PROVENANCE_HEADER]


def produce_and_consume(conf, topic, n, prefix):
    """Produces ``prefix-0`` .. ``prefix-(n-1)`` (idempotent, acks=all) with the client settings
    ``conf`` (a secured listener's, say), then reads them back in a consumer group that commits;
    returns the values read, in order (a single partition)."""
    producer = Producer({**conf, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    delivered = []
    for i in range(n):
        producer.produce(topic, f"{prefix}-{i}".encode(), on_delivery=lambda err, msg: delivered.append(err))
    assert producer.flush(60) == 0
    assert len(delivered) == n and not any(delivered), [e for e in delivered if e][:3]
    consumer = Consumer({**conf, "group.id": f"{topic}-group", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    values = []
    deadline = time.monotonic() + 60
    try:
        while len(values) < n and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            values.append(msg.value())
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return values
