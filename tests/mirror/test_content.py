"""What strata-mirror writes is what the source holds: five topics of 8 partitions, one per
compression codec (none, gzip, snappy, lz4, zstd), 200,000 records each, produced with
confluent-kafka in that codec (half before the mirror starts, half while it runs), mirrored by
one mirror process from Strata broker ``a`` to Strata broker ``b``.

Proved per partition, record by record and in order: key, value, headers and CreateTime
timestamp on the target equal the source's, with nothing missing and nothing duplicated.

- ``Translate`` + ``Prefixed``: remote topics are ``a.<topic>`` and records are byte-identical
  (no header added).
- ``Preserve`` + ``Identity``: remote topics keep their names, carry the topic config
  ``strata.mirror.source=a``, and every record sits at its source offset (watermarks equal); the
  provenance header, where present, names ``a`` and is stripped before comparing; a plain
  confluent-kafka producer writing to such a topic fails with POLICY_VIOLATION.
"""
import time

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from harness.data import (PROVENANCE_HEADER, create_topic, produce, read_all, strip_provenance,
                          wait_mirrored, watermarks)
from harness.mirror import flow_config, record_figure, remote_topic, skip_unless_preserve_accepted
from harness.util import unique_topic, wait_until

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 8
RECORDS = 200_000
MODES = {
    "translate-prefixed": {"offsets": "Translate", "naming": "Prefixed"},
    "preserve-identity": {"offsets": "Preserve", "naming": "Identity"},
}


def _short(rec):
    """A record for a failure message: long values cut."""
    return tuple(f"{x[:40]!r}..({len(x)} bytes)" if isinstance(x, bytes) and len(x) > 40 else x for x in rec)


def assert_same_partition(where, src, dst):
    """``src`` and ``dst`` (lists of comparable tuples) are equal; otherwise the message shows the
    counts and the first position where they differ."""
    if src == dst:
        return
    first = next((i for i, (s, d) in enumerate(zip(src, dst)) if s != d), min(len(src), len(dst)))
    s = _short(src[first]) if first < len(src) else "<none>"
    d = _short(dst[first]) if first < len(dst) else "<none>"
    raise AssertionError(f"{where}: source has {len(src)} records, target {len(dst)}; first difference "
                         f"at position {first}:\n  source {s}\n  target {d}")


def compare_topic(a, b, topic, remote, *, identity, offsets):
    """Reads ``topic`` on ``a`` and ``remote`` on ``b`` and compares them partition by partition;
    returns the number of provenance headers seen on the target."""
    src = read_all(a.bootstrap, topic, timeout=120)
    dst = read_all(b.bootstrap, remote, timeout=120)
    assert sorted(dst) == sorted(src), f"{remote} has partitions {sorted(dst)}, source {topic} {sorted(src)}"
    provenance = 0
    for p in sorted(src):
        if identity:
            d = []
            for r in dst[p]:
                chain = [v for k, v in r.headers if k == PROVENANCE_HEADER]
                if chain:
                    assert chain == [b"a"], \
                        f"{remote}[{p}] offset {r.offset}: provenance should name source 'a' once, got {chain}"
                    provenance += 1
                    r = r._replace(headers=strip_provenance(r.headers))
                d.append(r)
        else:
            d = dst[p]
        if offsets:
            s = src[p]
        else:
            s = [r[1:] for r in src[p]]
            d = [r[1:] for r in d]
        assert_same_partition(f"{topic}[{p}] -> {remote}[{p}]", s, d)
    return provenance


def topic_config(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([res])[res].result(30)
    return {k: e.value for k, e in entries.items()}


def produce_to_preserved_topic(bootstrap, topic):
    """Produces one record with a plain confluent-kafka producer; returns the delivery error."""
    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 30000})
    p.produce(topic, key=b"intruder", value=b"x", partition=0,
              on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(60) == 0, f"produce to {topic} neither acknowledged nor failed within 60s"
    return errors[0]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", list(MODES), ids=list(MODES))
def test_mirrored_content_equals_source(strata_pair, mirror_factory, work_dir, mode):
    if MODES[mode]["offsets"] == "Preserve":
        skip_unless_preserve_accepted(work_dir)
    a, b = strata_pair
    name = f"test_content[{mode}]"
    topics = {codec: unique_topic(f"content-{codec}") for codec in CODECS}
    for topic in topics.values():
        create_topic(a.bootstrap, topic, PARTITIONS)

    half = RECORDS // 2
    t0 = time.monotonic()
    for codec, topic in topics.items():
        produce(a.bootstrap, topic, half, PARTITIONS, compression=codec)
    record_figure(name, "produce_first_half_s", round(time.monotonic() - t0, 2))

    config = flow_config("a", a.bootstrap, "b", b.bootstrap, topics={"include": ["content-.*"]},
                         **MODES[mode])
    t_mirror = time.monotonic()
    mirror = mirror_factory(config)
    for codec, topic in topics.items():
        produce(a.bootstrap, topic, RECORDS - half, PARTITIONS, compression=codec, start=half)
    remotes = {codec: remote_topic(config, topic) for codec, topic in topics.items()}
    for codec, topic in topics.items():
        wait_mirrored(a.bootstrap, b.bootstrap, topic, remotes[codec], timeout=180)
    mirrored_s = time.monotonic() - t_mirror
    total = RECORDS * len(CODECS)
    record_figure(name, "mirror_all_s", round(mirrored_s, 2))
    record_figure(name, "mirror_records_per_s", round(total / mirrored_s))

    def caught_up():
        lags = [mirror.metric("strata_mirror_records_lag", topic=remotes[c], partition=p)
                for c in CODECS for p in range(PARTITIONS)]
        return all(lag == 0 for lag in lags)

    wait_until(caught_up, 60, "strata_mirror_records_lag == 0 for every mirrored partition", interval=0.5)
    for codec in CODECS:
        mirrored = mirror.metric("strata_mirror_records_total", topic=remotes[codec])
        assert mirrored is not None and mirrored >= RECORDS, \
            f"strata_mirror_records_total for {remotes[codec]} is {mirrored}, expected >= {RECORDS}"

    t_cmp = time.monotonic()
    preserve = MODES[mode]["offsets"] == "Preserve"
    identity = MODES[mode]["naming"] == "Identity"
    provenance = 0
    for codec, topic in topics.items():
        provenance += compare_topic(a, b, topic, remotes[codec], identity=identity, offsets=preserve)
        if preserve:
            assert watermarks(b.bootstrap, remotes[codec]) == watermarks(a.bootstrap, topic), \
                f"{remotes[codec]}: watermarks differ from the source's"
    record_figure(name, "compare_s", round(time.monotonic() - t_cmp, 2))
    if identity:
        record_figure(name, "provenance_headers_on_target", provenance)

    if preserve:
        remote = remotes["zstd"]
        cfg = topic_config(b.bootstrap, remote)
        assert cfg.get("strata.mirror.source") == "a", \
            f"{remote} on the target should carry strata.mirror.source=a, has {cfg.get('strata.mirror.source')!r}"
        err = produce_to_preserved_topic(b.bootstrap, remote)
        assert err is not None and err.code() == KafkaError.POLICY_VIOLATION, \
            f"a plain producer writing to the Preserve target {remote} should get POLICY_VIOLATION (44), got {err}"
        print(f"plain producer on {remote}: {err}")
        assert watermarks(b.bootstrap, remote) == watermarks(a.bootstrap, topics["zstd"]), \
            f"the refused produce changed {remote}"
    assert mirror.running(), f"the mirror exited during the test:\n{mirror.log_tail()}"
