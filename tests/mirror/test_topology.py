"""Mirror topologies between Strata brokers, checked with librdkafka (confluent-kafka) clients:

- topic configs and partition increases made on a source topic after mirroring started reach the
  remote topic, and the new partitions carry mirrored records;
- active-active A <-> B with ``Prefixed`` naming and with ``Identity`` naming: every record reaches
  the other side exactly once and never comes back (no ``a.b.x`` topics, no re-mirrored records),
  and nothing moves any more once both flows are idle;
- hub-and-spoke: two sources into one central cluster keep their topics apart (``s1.t``, ``s2.t``)
  with the right content, and a group of one source is translated with that source's offset syncs
  only (each flow writes ``mm2-offset-syncs.<source>.internal`` on the hub, as MM2 names the topic
  with ``offset-syncs.topic.location=target``);
- a MirrorMaker 2 properties file and the equivalent flow YAML produce the same remote topics,
  content and translated group offsets.

Every wait has a deadline; figures (propagation times) are printed, not asserted.
"""
import re
import time

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewPartitions)

from harness.data import (BASE_TS, PROVENANCE_HEADER, commit_offsets, committed_offsets, create_topic, headers_of,
                          index_of, produce, read_all, record_counts, strip_provenance, value_of,
                          wait_mirrored, watermarks)
from harness.mirror import flow_config, record_figure
from harness.util import wait_until

pytestmark = pytest.mark.timeout(300)

# The intervals flow_config sets; a "full cycle" of a flow is one topic refresh plus one fetch wait.
REFRESH_S = 1.0
FETCH_WAIT_S = 0.1
QUIET_WINDOW_S = 2 * (REFRESH_S + FETCH_WAIT_S)


# --- helpers ---------------------------------------------------------------------------------

def _admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def topic_names(bootstrap):
    """Names of the topics of a cluster."""
    return set(_admin(bootstrap).list_topics(timeout=10).topics)


def topic_overrides(bootstrap, topic):
    """{name: value} of the configs set on ``topic`` itself (DYNAMIC_TOPIC_CONFIG)."""
    admin = _admin(bootstrap)  # kept referenced until the future resolves
    res = ConfigResource("topic", topic)
    entries = admin.describe_configs([res])[res].result(timeout=30)
    dynamic = ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    return {name: e.value for name, e in entries.items()
            if getattr(e.source, "value", e.source) == dynamic}


def alter_topic(bootstrap, topic, set_configs=None, delete=()):
    """Incremental alter configs of ``topic``: SET ``set_configs``, DELETE ``delete``."""
    ops = [ConfigEntry(k, str(v), incremental_operation=AlterConfigOpType.SET)
           for k, v in (set_configs or {}).items()]
    ops += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in delete]
    admin = _admin(bootstrap)
    res = ConfigResource("topic", topic, incremental_configs=ops)
    admin.incremental_alter_configs([res])[res].result(timeout=30)


def total(bootstrap, topic):
    return sum(record_counts(bootstrap, topic).values())


def logs(*mirrors, lines=30):
    """The log tails of ``mirrors``, for failure messages."""
    return "".join(f"\n--- tail of {m.log_path}:\n{m.log_tail(lines)}" for m in mirrors)


def wait_idle(mirror, remote_topics, partitions, timeout=90):
    """Waits until ``mirror`` reports ``strata_mirror_records_lag`` 0 for every partition of every
    topic in ``remote_topics`` (each with ``partitions`` partitions)."""
    seen = {}

    def idle():
        lag = {(l["topic"], l["partition"]): v for n, l, v in mirror.scrape()
               if n == "strata_mirror_records_lag" and l.get("topic") in remote_topics}
        seen.clear()
        seen.update(lag)
        want = {(t, str(p)) for t in remote_topics for p in range(partitions)}
        return want <= set(lag) and all(v == 0 for v in lag.values())

    try:
        wait_until(idle, timeout, f"mirror {mirror.pid} idle on {sorted(remote_topics)}", interval=0.3)
    except AssertionError as e:
        raise AssertionError(f"{e}; records_lag seen: {seen}{logs(mirror)}") from None


def observe_quiet(snapshot, what, mirrors):
    """Samples ``snapshot()`` over QUIET_WINDOW_S (a full refresh + fetch cycle with margin) and
    fails as soon as it differs from the first sample: once the flows are idle nothing may move."""
    base = snapshot()
    end = time.monotonic() + QUIET_WINDOW_S
    while time.monotonic() < end:
        time.sleep(0.3)  # sampling period of a fixed observation window (not a wait for a condition)
        now = snapshot()
        assert now == base, (f"{what} changed after the flows were idle:\nbefore {base}\nafter  {now}"
                             f"{logs(*mirrors)}")
    return base


def assert_same_records(src, dst, what):
    """``dst`` (read_all of the remote topic) holds exactly ``src`` (read_all of the source topic):
    same partitions, and per partition the same keys, values, headers and timestamps in order."""
    assert sorted(src) == sorted(dst), f"{what}: partitions {sorted(src)} != {sorted(dst)}"
    for p in src:
        a = [(r.key, r.value, r.headers, r.timestamp) for r in src[p]]
        b = [(r.key, r.value, r.headers, r.timestamp) for r in dst[p]]
        if a != b:
            diff = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            raise AssertionError(
                f"{what}, partition {p}: {len(a)} source records, {len(b)} remote records; first "
                f"difference at index {diff}: source {a[diff] if diff < len(a) else None} "
                f"remote {b[diff] if diff < len(b) else None}")


def assert_produced(recs_by_partition, origins, partitions, what):
    """Records read back are exactly the produced records of ``origins`` (ranges of record numbers,
    one per producing cluster; see harness.data), each once, in its partition (i % partitions),
    with value, headers (provenance header aside) and timestamp intact, and per partition the
    records of each origin in their production order (origins may interleave)."""
    indexes = [i for r in origins for i in r]
    seen = []
    for p, recs in recs_by_partition.items():
        idx = [index_of(r.key) for r in recs]
        for origin in origins:
            mine = [i for i in idx if i in origin]
            assert mine == sorted(mine), f"{what}, partition {p}: production order broken: {mine[:20]}..."
        for r, i in zip(recs, idx):
            assert i % partitions == p, f"{what}: record {i} in partition {p}"
            assert r.value == value_of(i), f"{what}: value of record {i} differs: {r.value[:40]!r}"
            assert strip_provenance(r.headers) == headers_of(i), f"{what}: headers of record {i}: {r.headers}"
            assert r.timestamp == BASE_TS + i, f"{what}: timestamp of record {i}: {r.timestamp}"
        seen += idx
    dupes = len(seen) - len(set(seen))
    missing = set(indexes) - set(seen)
    extra = set(seen) - set(indexes)
    assert not dupes and not missing and not extra, (
        f"{what}: {dupes} duplicates, {len(missing)} missing (e.g. {sorted(missing)[:5]}), "
        f"{len(extra)} unexpected (e.g. {sorted(extra)[:5]})")


# --- topic config and partition changes ----------------------------------------------------

def test_config_changes_and_partition_increase_reach_the_target(strata_pair, mirror_factory):
    """Configs set on the source topic are copied when the remote topic is created; later SETs and
    DELETEs of source configs and a partition increase reach the remote topic while the flow runs,
    and the new partitions receive the records produced to them, intact."""
    a, b = strata_pair
    create_topic(a.bootstrap, "orders", 2, {"retention.ms": "3600000", "segment.ms": "600000"})
    produce(a.bootstrap, "orders", 200, 2)
    m = mirror_factory(flow_config("a", a.bootstrap, "b", b.bootstrap, topics={"include": ["orders"]}))
    wait_mirrored(a.bootstrap, b.bootstrap, "orders", "a.orders")
    initial = topic_overrides(b.bootstrap, "a.orders")
    assert initial.get("retention.ms") == "3600000" and initial.get("segment.ms") == "600000", (
        f"remote topic a.orders created without the source's configs: overrides {initial}{logs(m)}")

    changed = {"retention.ms": "7200000", "cleanup.policy": "compact", "max.message.bytes": "2097152"}
    alter_topic(a.bootstrap, "orders", changed, delete=["segment.ms"])
    admin = _admin(a.bootstrap)
    admin.create_partitions([NewPartitions("orders", 4)])["orders"].result(timeout=30)
    wait_until(lambda: len(watermarks(a.bootstrap, "orders")) == 4, 30, "4 partitions of orders on a")
    t0 = time.monotonic()
    seen = {}

    def grown():
        seen["partitions"] = len(watermarks(b.bootstrap, "a.orders"))
        return seen["partitions"] == 4

    def synced():
        seen["overrides"] = topic_overrides(b.bootstrap, "a.orders")
        return seen["overrides"] == changed

    try:
        wait_until(grown, 60, "a.orders grown to 4 partitions on b", interval=0.3)
        record_figure("topology.config_partitions", "partition_increase_s", round(time.monotonic() - t0, 2))
        wait_until(synced, 60, "config changes of orders on a.orders", interval=0.3)
        record_figure("topology.config_partitions", "config_sync_s", round(time.monotonic() - t0, 2))
    except AssertionError as e:
        raise AssertionError(f"{e}; last seen on b: {seen}{logs(m)}") from None

    # Records 200..599 spread over 4 partitions: 100 into each of the new partitions 2 and 3.
    produce(a.bootstrap, "orders", 400, 4, start=200)
    wait_mirrored(a.bootstrap, b.bootstrap, "orders", "a.orders")
    src, dst = read_all(a.bootstrap, "orders"), read_all(b.bootstrap, "a.orders")
    assert len(dst[2]) == 100 and len(dst[3]) == 100, (
        f"new partitions hold {len(dst[2])} and {len(dst[3])} records, want 100 each{logs(m)}")
    assert_same_records(src, dst, "a.orders after the partition increase")


# --- active-active ---------------------------------------------------------------------------

LOOPED = re.compile(r"^(a|b)\.(a|b)\.")


def test_active_active_prefixed_never_loops(strata_pair, mirror_factory):
    """a -> b and b -> a, Prefixed, every topic selected: records produced on both sides (before
    and while the flows run) arrive once on the other side as ``<alias>.orders``; no topic of the
    form ``a.b.*``/``b.a.*`` is ever created and, once both flows are idle, no record count moves
    during a further full refresh + fetch cycle."""
    a, b = strata_pair
    for broker in (a, b):
        create_topic(broker.bootstrap, "orders", 3)
    produce(a.bootstrap, "orders", 600, 3, start=0)
    produce(b.bootstrap, "orders", 900, 3, start=100_000)
    ab = mirror_factory(flow_config("a", a.bootstrap, "b", b.bootstrap), name="ab")
    ba = mirror_factory(flow_config("b", b.bootstrap, "a", a.bootstrap), name="ba")
    produce(a.bootstrap, "orders", 300, 3, start=600)
    produce(b.bootstrap, "orders", 300, 3, start=100_900)
    wait_mirrored(a.bootstrap, b.bootstrap, "orders", "a.orders")
    wait_mirrored(b.bootstrap, a.bootstrap, "orders", "b.orders")
    wait_idle(ab, {"a.orders"}, 3)
    wait_idle(ba, {"b.orders"}, 3)

    def snapshot():
        names = {"a": topic_names(a.bootstrap), "b": topic_names(b.bootstrap)}
        looped = sorted(f"{side}:{t}" for side, ts in names.items() for t in ts if LOOPED.match(t))
        counts = {"a:orders": total(a.bootstrap, "orders"), "a:b.orders": total(a.bootstrap, "b.orders"),
                  "b:orders": total(b.bootstrap, "orders"), "b:a.orders": total(b.bootstrap, "a.orders")}
        return looped, counts

    looped, counts = observe_quiet(snapshot, "topics and record counts", [ab, ba])
    assert looped == [], f"topics mirrored back to where they came from: {looped}{logs(ab, ba)}"
    assert counts == {"a:orders": 900, "a:b.orders": 1200, "b:orders": 1200, "b:a.orders": 900}, (
        f"record counts after both flows went idle: {counts}{logs(ab, ba)}")
    assert_same_records(read_all(a.bootstrap, "orders"), read_all(b.bootstrap, "a.orders"), "a.orders on b")
    assert_same_records(read_all(b.bootstrap, "orders"), read_all(a.bootstrap, "b.orders"), "b.orders on a")


def test_active_active_identity_never_loops(strata_pair, mirror_factory):
    """a -> b and b -> a, Identity: both clusters' ``orders`` end up holding each side's own
    records plus the other side's, each exactly once, in production order per partition; records
    that crossed carry the provenance header naming their origin and nothing else changed; no
    prefixed copy exists and, once idle, nothing moves during a further full cycle."""
    a, b = strata_pair
    for broker in (a, b):
        create_topic(broker.bootstrap, "orders", 3)
    a_idx, b_idx = range(0, 800), range(100_000, 101_000)
    produce(a.bootstrap, "orders", 500, 3, start=0)
    produce(b.bootstrap, "orders", 600, 3, start=100_000)
    ab = mirror_factory(flow_config("a", a.bootstrap, "b", b.bootstrap, naming="Identity"), name="ab")
    ba = mirror_factory(flow_config("b", b.bootstrap, "a", a.bootstrap, naming="Identity"), name="ba")
    produce(a.bootstrap, "orders", 300, 3, start=500)
    produce(b.bootstrap, "orders", 400, 3, start=100_600)
    want = len(a_idx) + len(b_idx)
    seen = {}

    def both_full():
        seen.update(a=total(a.bootstrap, "orders"), b=total(b.bootstrap, "orders"))
        return seen["a"] >= want and seen["b"] >= want

    try:
        wait_until(both_full, 120, f"{want} records in orders on both sides", interval=0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}; records seen: {seen}{logs(ab, ba)}") from None
    wait_idle(ab, {"orders"}, 3)
    wait_idle(ba, {"orders"}, 3)

    def snapshot():
        names = topic_names(a.bootstrap) | topic_names(b.bootstrap)
        prefixed = sorted(t for t in names if t.startswith(("a.orders", "b.orders")) or LOOPED.match(t))
        return prefixed, total(a.bootstrap, "orders"), total(b.bootstrap, "orders")

    prefixed, on_a, on_b = observe_quiet(snapshot, "topics and record counts", [ab, ba])
    assert prefixed == [], f"Identity flows created prefixed or looped topics: {prefixed}{logs(ab, ba)}"
    assert (on_a, on_b) == (want, want), (
        f"orders holds {on_a} records on a and {on_b} on b, want {want} on each (own + other side's, "
        f"each once){logs(ab, ba)}")

    for side, broker, own, other, other_alias in (("a", a, a_idx, b_idx, "b"), ("b", b, b_idx, a_idx, "a")):
        recs = read_all(broker.bootstrap, "orders")
        assert_produced(recs, [own, other], 3, f"orders on {side}")
        for p, rs in recs.items():
            for r in rs:
                i = index_of(r.key)
                origin = [v for k, v in r.headers if k == PROVENANCE_HEADER]
                want_origin = [] if i in own else [other_alias.encode()]
                assert origin == want_origin, (
                    f"orders on {side}, record {i} (partition {p}): provenance {origin}, want {want_origin}")


# --- hub and spoke ---------------------------------------------------------------------------

def test_hub_and_spoke_keeps_sources_apart(strata_factory, mirror_factory):
    """s1 -> c and s2 -> c, Prefixed, both sources with a topic ``events`` (different partition
    counts and content): c holds ``s1.events`` and ``s2.events``, each an exact copy of its source
    (partitions, keys, values, headers, timestamps), one checkpoints topic per source, and no
    unprefixed ``events``."""
    s1, s2, c = strata_factory("s1"), strata_factory("s2"), strata_factory("c")
    create_topic(s1.bootstrap, "events", 2)
    create_topic(s2.bootstrap, "events", 3)
    produce(s1.bootstrap, "events", 400, 2, start=0)
    produce(s2.bootstrap, "events", 600, 3, start=100_000)
    m1 = mirror_factory(flow_config("s1", s1.bootstrap, "c", c.bootstrap, topics={"include": ["events"]}), name="s1c")
    m2 = mirror_factory(flow_config("s2", s2.bootstrap, "c", c.bootstrap, topics={"include": ["events"]}), name="s2c")
    wait_mirrored(s1.bootstrap, c.bootstrap, "events", "s1.events")
    wait_mirrored(s2.bootstrap, c.bootstrap, "events", "s2.events")
    wait_idle(m1, {"s1.events"}, 2)
    wait_idle(m2, {"s2.events"}, 3)
    names = topic_names(c.bootstrap)
    for t in ("s1.events", "s2.events", "s1.checkpoints.internal", "s2.checkpoints.internal", "heartbeats"):
        assert t in names, f"{t} missing on the hub; topics: {sorted(names)}{logs(m1, m2)}"
    assert "events" not in names, f"an unprefixed events topic exists on the hub{logs(m1, m2)}"
    assert_same_records(read_all(s1.bootstrap, "events"), read_all(c.bootstrap, "s1.events"), "s1.events on c")
    assert_same_records(read_all(s2.bootstrap, "events"), read_all(c.bootstrap, "s2.events"), "s2.events on c")


def test_hub_and_spoke_translates_groups_with_their_own_source_syncs(strata_factory, mirror_factory):
    """Both flows into the hub write offset syncs there (``mm2-offset-syncs.s1.internal`` and
    ``mm2-offset-syncs.s2.internal``), and both sources have a topic ``events``. A group of s1 must
    be translated with s1's syncs only: s1 lost its first 100 records to retention, so source
    offset ``u`` of s1 lives at ``u - 100`` on the hub, while s2's syncs (every record, offset lag
    1) map ``u`` to ``u``. After the s1 flow restarts (it reloads the syncs topic), a group of s1
    committed at 250 must be committed on the hub at or below the hub offset of s1's record 250
    (150) and at most offset.lag.max below it; anything above skips records on the hub."""
    s1, s2, c = strata_factory("s1"), strata_factory("s2"), strata_factory("c")
    create_topic(s1.bootstrap, "events", 1)
    create_topic(s2.bootstrap, "events", 1)
    produce(s1.bootstrap, "events", 300, 1, start=0)
    produce(s2.bootstrap, "events", 300, 1, start=100_000)
    tp = TopicPartition("events", 0, 100)
    admin = _admin(s1.bootstrap)
    admin.delete_records([tp])[tp].result(timeout=30)
    assert watermarks(s1.bootstrap, "events")[0] == (100, 300)
    lag_max = 100
    cfg1 = flow_config("s1", s1.bootstrap, "c", c.bootstrap, topics={"include": ["events"]},
                       mirror={"offsetLagMax": lag_max})
    cfg2 = flow_config("s2", s2.bootstrap, "c", c.bootstrap, topics={"include": ["events"]},
                       mirror={"offsetLagMax": 1})
    m1 = mirror_factory(cfg1, name="s1c")
    m2 = mirror_factory(cfg2, name="s2c")
    wait_mirrored(s1.bootstrap, c.bootstrap, "events", "s1.events")
    wait_mirrored(s2.bootstrap, c.bootstrap, "events", "s2.events")
    wait_idle(m1, {"s1.events"}, 1)
    wait_idle(m2, {"s2.events"}, 1)
    wait_until(lambda: total(c.bootstrap, "mm2-offset-syncs.s2.internal") >= 300, 60,
               "s2's offset syncs on the hub")
    m1.restart()

    on_hub = {index_of(r.key): r.offset for r in read_all(c.bootstrap, "s1.events")[0]}
    assert on_hub[250] == 150, f"s1's record 250 is at hub offset {on_hub[250]}, expected 150"
    commit_offsets(s1.bootstrap, "billing", "events", {0: 250})
    got = {}

    def translated():
        got.update(committed_offsets(c.bootstrap, "billing", "s1.events", 1))
        return 0 in got

    try:
        wait_until(translated, 60, "group billing of s1 committed on the hub", interval=0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}{logs(m1)}") from None
    d = got[0]
    record_figure("topology.hub_translation", "translated_offset", d)
    assert d <= 150, (
        f"group billing of s1 committed at source offset 250 was committed on the hub at s1.events "
        f"offset {d}, past offset 150 where s1's record 250 lives: a consumer failing over to the hub "
        f"skips {d - 150} records. The s1 flow translated with syncs of the s2 flow (same source "
        f"topic name 'events').{logs(m1)}")
    assert d >= 150 - lag_max, f"translated offset {d} is more than offset.lag.max below 150{logs(m1)}"


# --- MM2 properties vs. YAML -----------------------------------------------------------------

MM2_TEMPLATE = """\
# The flow a -> {target}, as a MirrorMaker 2 dedicated-mode file.
clusters = a, {target}
a.bootstrap.servers = {source_bs}
{target}.bootstrap.servers = {target_bs}
a->{target}.enabled = true
{target}->a.enabled = false
topics = orders-.*
topics.exclude = .*-tmp
groups = billing-.*
replication.policy.class = org.apache.kafka.connect.mirror.DefaultReplicationPolicy
sync.topic.configs.enabled = true
sync.group.offsets.enabled = true
sync.group.offsets.interval.seconds = 1
emit.checkpoints.interval.seconds = 1
emit.heartbeats.interval.seconds = 1
refresh.topics.interval.seconds = 1
offset.lag.max = 10
tasks.max = 2
replication.factor = 1
{target}.producer.linger.ms = 5
a.consumer.fetch.max.wait.ms = 100
strata.test.unknown.setting = 1
"""


def test_mm2_properties_and_yaml_drive_the_same_flow(strata_factory, mirror_factory):
    """The same flow from one source, once from a flow YAML into b1 and once from an MM2
    properties file into b2 (topic include/exclude regexes, group filter, offset.lag.max, tasks,
    client prefixes): both targets get the same remote topics (internal topics compared modulo the
    target alias), the same topic configs, the same content, and the same translated offsets of
    the selected group (none for the group the filter leaves out). The properties the mirror does
    not know are reported in its log."""
    a = strata_factory("a")
    b1, b2 = strata_factory("b1"), strata_factory("b2")
    create_topic(a.bootstrap, "orders-eu", 3, {"retention.ms": "86400000"})
    create_topic(a.bootstrap, "orders-tmp", 1)
    create_topic(a.bootstrap, "payments", 1)
    produce(a.bootstrap, "orders-eu", 300, 3)
    produce(a.bootstrap, "orders-tmp", 10, 1)
    produce(a.bootstrap, "payments", 10, 1)
    source_offsets = {0: 50, 1: 100, 2: 37}
    commit_offsets(a.bootstrap, "billing-eu", "orders-eu", source_offsets)
    commit_offsets(a.bootstrap, "audit", "orders-eu", {0: 10, 1: 10, 2: 10})

    yaml_flow = flow_config("a", a.bootstrap, "b1", b1.bootstrap,
                            topics={"include": ["orders-.*"], "exclude": [".*-tmp"]},
                            groups={"include": ["billing-.*"]},
                            mirror={"offsetLagMax": 10, "tasks": 2, "replicationFactor": 1})
    m_yaml = mirror_factory(yaml_flow, name="yaml")
    props = MM2_TEMPLATE.format(target="b2", source_bs=a.bootstrap, target_bs=b2.bootstrap)
    m_props = mirror_factory(mm2_properties=props, source="a", target="b2", name="props")
    both = (m_yaml, m_props)
    for target in (b1, b2):
        wait_mirrored(a.bootstrap, target.bootstrap, "orders-eu", "a.orders-eu")
    for m in both:
        wait_idle(m, {"a.orders-eu"}, 3)

    got = {}

    def translated():
        # A translation only moves forward as syncs accumulate; once both flows are idle they
        # converge on their final values, which must agree.
        for name, target in (("b1", b1), ("b2", b2)):
            got[name] = committed_offsets(target.bootstrap, "billing-eu", "a.orders-eu", 3)
        return all(len(v) == 3 for v in got.values()) and got["b1"] == got["b2"]

    try:
        wait_until(translated, 60, "billing-eu translated alike on b1 and b2", interval=0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}; seen {got}{logs(*both)}") from None

    def visible_topics(target, alias):
        return sorted(t.replace(f".{alias}.", ".<target>.") for t in topic_names(target.bootstrap)
                      if not t.startswith("__"))

    names1, names2 = visible_topics(b1, "b1"), visible_topics(b2, "b2")
    assert names1 == names2, f"remote topics differ: yaml flow {names1}, properties flow {names2}{logs(*both)}"
    assert "a.orders-eu" in names1 and not {"a.orders-tmp", "a.payments"} & set(names1), (
        f"topic filters not applied: {names1}")
    cfg1, cfg2 = topic_overrides(b1.bootstrap, "a.orders-eu"), topic_overrides(b2.bootstrap, "a.orders-eu")
    assert cfg1 == cfg2 and cfg1.get("retention.ms") == "86400000", f"configs: yaml {cfg1}, properties {cfg2}"
    r1, r2 = read_all(b1.bootstrap, "a.orders-eu"), read_all(b2.bootstrap, "a.orders-eu")
    assert_same_records(read_all(a.bootstrap, "orders-eu"), r1, "a.orders-eu via YAML")
    assert_same_records(r1, r2, "a.orders-eu via properties vs via YAML")

    assert got["b1"] == got["b2"], f"translated offsets differ: yaml {got['b1']}, properties {got['b2']}"
    for p, c_off in source_offsets.items():
        assert c_off - 10 <= got["b1"][p] <= c_off, (
            f"partition {p}: source offset {c_off} translated to {got['b1'][p]} (fresh target, "
            f"offset.lag.max 10){logs(*both)}")
    for name, target in (("b1", b1), ("b2", b2)):
        assert committed_offsets(target.bootstrap, "audit", "a.orders-eu", 3) == {}, (
            f"group audit (not selected) was synced to {name}")
    assert "strata.test.unknown.setting" in m_props.log_text(), (
        f"the unknown MM2 property is not reported in the log{logs(m_props)}")
