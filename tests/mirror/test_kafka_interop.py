"""strata-mirror between the reference Apache Kafka broker and a Strata broker, in both directions
(Kafka -> Strata and Strata -> Kafka), ``Translate`` offsets, Prefixed naming:

- content: 20,000 records over 4 partitions (keys, values, headers, CreateTime timestamps; lz4
  batches on the source, zstd batches written by the mirror) arrive identical, at the same
  offsets, in the same partitions;
- restart: the mirror is killed with SIGKILL while a producer is writing; after a restart nothing
  is lost, order per partition holds and the duplicates (at-least-once) are counted as a figure;
- group resume: a consumer group that committed on the source resumes on the target from the
  translated offsets without missing a record, re-reading at most ``offset.lag.max`` records per
  partition.

One Kafka broker (a JVM, slow to start) and one Strata broker serve the whole module; every test
uses topics and groups of its own.
"""
import threading
import time

import pytest

from harness.brokers import make_broker
from harness.data import (committed_offsets, consume_group_partitioned, create_topic, produce, read_all,
                          record_counts, wait_mirrored)
from harness.mirror import flow_config, record_figure
from harness.util import unique_topic, wait_until

pytestmark = pytest.mark.timeout(240)

BROKER_PROPS = {
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "4",
    "num.partitions": "1",
    "auto.create.topics.enable": "false",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "4",
}
PARTITIONS = 4


@pytest.fixture(scope="module")
def brokers(tmp_path_factory):
    """{"kafka": the reference Kafka broker, "strata": a Strata broker}, started once."""
    started = {}
    try:
        for kind in ("kafka", "strata"):
            b = make_broker(kind, tmp_path_factory.mktemp(f"interop-{kind}"), dict(BROKER_PROPS))
            b.start()
            started[kind] = b
        yield started
    finally:
        for b in started.values():
            b.stop()


class Route:
    """One direction: source and target broker, with the aliases the flow gives them."""

    def __init__(self, brokers, source, target):
        self.source, self.target = brokers[source], brokers[target]
        self.source_alias, self.target_alias = source, target

    def flow(self, topic, **overrides):
        return flow_config(self.source_alias, self.source.bootstrap, self.target_alias,
                           self.target.bootstrap, topics={"include": [topic]}, **overrides)

    def remote(self, topic):
        return f"{self.source_alias}.{topic}"

    def broker_logs(self, lines=20):
        return "".join(f"\n--- tail of {b.kind} broker log {b.log_path}:\n{b.log_tail(lines)}"
                       for b in (self.source, self.target))


@pytest.fixture(scope="module", params=[("kafka", "strata"), ("strata", "kafka")],
                ids=["kafka-to-strata", "strata-to-kafka"])
def route(request, brokers):
    return Route(brokers, *request.param)


def logs(mirror, route, lines=30):
    return f"\n--- tail of {mirror.log_path}:\n{mirror.log_tail(lines)}{route.broker_logs()}"


def wait_complete(route, topic, mirror, timeout=120):
    """Waits until every record of the source topic (by key) is on the target: counts alone do
    not tell, since duplicates can make up for missing records."""
    wait_mirrored(route.source.bootstrap, route.target.bootstrap, topic, route.remote(topic), timeout=timeout)
    want = {r.key for recs in read_all(route.source.bootstrap, topic).values() for r in recs}
    missing = {}

    def complete():
        have = {r.key for recs in read_all(route.target.bootstrap, route.remote(topic)).values() for r in recs}
        missing["keys"] = want - have
        return not missing["keys"]

    try:
        wait_until(complete, timeout, f"every record of {topic} on the target", interval=1.0)
    except AssertionError as e:
        keys = sorted(missing.get("keys", ()))
        raise AssertionError(f"{e}; {len(keys)} records missing, e.g. {keys[:5]}{logs(mirror, route)}") from None


def test_content_is_identical(route, mirror_factory):
    """20,000 records x 4 partitions, lz4-compressed on the source and re-compressed with zstd by
    the mirror, arrive on the other broker kind with the same offsets, keys, values, headers and
    timestamps."""
    topic = unique_topic("content")
    create_topic(route.source.bootstrap, topic, PARTITIONS)
    produce(route.source.bootstrap, topic, 20_000, PARTITIONS, compression="lz4")
    started = time.monotonic()
    m = mirror_factory(route.flow(topic, tuning={"compression": "zstd"}))
    wait_complete(route, topic, m)
    record_figure(f"interop.content[{route.source_alias}->{route.target_alias}]", "mirror_20k_s",
                  round(time.monotonic() - started, 2))
    src = read_all(route.source.bootstrap, topic)
    dst = read_all(route.target.bootstrap, route.remote(topic))
    assert sorted(dst) == list(range(PARTITIONS)), f"remote partitions {sorted(dst)}"
    for p in range(PARTITIONS):
        assert len(dst[p]) == len(src[p]), (
            f"partition {p}: {len(src[p])} source records, {len(dst[p])} remote records{logs(m, route)}")
        for s, d in zip(src[p], dst[p]):
            assert tuple(d) == tuple(s), f"partition {p}: source {s[:2]}... != remote {d[:2]}...: {s} / {d}"


def test_kill9_mid_stream_loses_nothing(route, mirror_factory):
    """A producer writes 20,000 records in 40 chunks while the mirror runs; the mirror is SIGKILLed
    once about a quarter has reached the target, then started again. Every source record is on
    the target, per partition the first occurrences keep the source order and every record is
    intact; duplicates (re-sent after the kill, at-least-once) are reported as a figure."""
    topic = unique_topic("kill9")
    create_topic(route.source.bootstrap, topic, PARTITIONS)
    m = mirror_factory(route.flow(topic))
    remote = route.remote(topic)
    errors = []

    def writer():
        try:
            for chunk in range(40):
                produce(route.source.bootstrap, topic, 500, PARTITIONS, start=chunk * 500)
        except Exception as e:  # reported by the test thread
            errors.append(e)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        wait_until(lambda: sum(record_counts(route.target.bootstrap, remote).values()) >= 5000, 120,
                   "5000 records mirrored before the kill", interval=0.2)
        m.kill9()
        killed_at = sum(record_counts(route.target.bootstrap, remote).values())
        m.start()
    finally:
        t.join(180)
    assert not t.is_alive(), "the producer did not finish within 180 s"
    assert not errors, f"producing to the source failed: {errors[0]}"
    wait_complete(route, topic, m)

    src = read_all(route.source.bootstrap, topic)
    dst = read_all(route.target.bootstrap, remote)
    duplicates = 0
    for p in range(PARTITIONS):
        by_key = {r.key: r for r in src[p]}
        first, seen = [], set()
        for r in dst[p]:
            s = by_key.get(r.key)
            assert s is not None, f"partition {p}: remote record {r.key!r} is not in source partition {p}"
            assert (r.value, r.headers, r.timestamp) == (s.value, s.headers, s.timestamp), (
                f"partition {p}: record {r.key!r} altered: {r} vs {s}")
            if r.key in seen:
                duplicates += 1
            else:
                seen.add(r.key)
                first.append(r.key)
        assert first == [r.key for r in src[p]], (
            f"partition {p}: first occurrences on the target do not follow the source order "
            f"({len(first)} vs {len(src[p])} records){logs(m, route)}")
    test = f"interop.kill9[{route.source_alias}->{route.target_alias}]"
    record_figure(test, "target_records_at_kill", killed_at)
    record_figure(test, "duplicates", duplicates)


def test_group_resumes_on_target(route, mirror_factory):
    """A group consumes part of a topic on the source and commits (librdkafka drains partition
    by partition, so it ends with a partition read to the end, one read part-way, and partitions
    never read), then more records follow; the mirror (offset.lag.max 100) commits the translated
    offsets on the target. The same group then consumes the remote topic on the target: on every
    partition it receives every record at or after its source position (the earliest offset where
    it never committed, and the mirror commits nothing there) and re-reads at most offset.lag.max
    records."""
    lag_max = 100
    topic = unique_topic("resume")
    group = unique_topic("billing")
    create_topic(route.source.bootstrap, topic, PARTITIONS)
    produce(route.source.bootstrap, topic, 8000, PARTITIONS)
    consume_group_partitioned(route.source.bootstrap, group, topic, max_records=2777)
    committed = committed_offsets(route.source.bootstrap, group, topic, PARTITIONS)
    assert committed, f"group {group} committed nothing on the source"
    produce(route.source.bootstrap, topic, 2000, PARTITIONS, start=8000)

    m = mirror_factory(route.flow(topic, groups={"include": [group]}, mirror={"offsetLagMax": lag_max}))
    remote = route.remote(topic)
    wait_complete(route, topic, m)
    got = {}

    def translated():
        got.clear()
        got.update(committed_offsets(route.target.bootstrap, group, remote, PARTITIONS))
        return all(p in got and committed[p] - lag_max <= got[p] for p in committed)

    try:
        wait_until(translated, 60, f"group {group} translated within offset.lag.max on the target", interval=0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}; source offsets {committed}, target offsets {got}{logs(m, route)}") from None
    assert set(got) == set(committed), (
        f"the mirror committed partitions {sorted(got)} on the target, the group committed {sorted(committed)} "
        f"on the source{logs(m, route)}")

    src = read_all(route.source.bootstrap, topic)
    source_offset = {r.key: r.offset for recs in src.values() for r in recs}
    resumed = consume_group_partitioned(route.target.bootstrap, group, remote)
    test = f"interop.group_resume[{route.source_alias}->{route.target_alias}]"
    record_figure(test, "source_offsets", committed)
    record_figure(test, "target_offsets", got)
    for p in range(PARTITIONS):
        c = committed.get(p, src[p][0].offset)
        keys = [r.key for r in resumed.get(p, [])]
        want = [r.key for r in src[p] if r.offset >= c]
        missed = set(want) - set(keys)
        assert not missed, (f"partition {p}: resumed at target offset {got.get(p, 'earliest')} (source offset "
                            f"{c}) and missed {len(missed)} records{logs(m, route)}")
        reread = [k for k in keys if source_offset[k] < c]
        record_figure(test, f"reread_p{p}", len(reread))
        assert len(reread) <= lag_max, (
            f"partition {p}: {len(reread)} records re-read (source offset {c}, target offset {got.get(p)}), "
            f"more than offset.lag.max {lag_max}")
        assert keys[len(reread):] == want, f"partition {p}: records after the resume point out of order"
