"""The mirror's ``/metrics`` endpoint between two Strata brokers:

- every metric of the documented set is exposed in the Prometheus/OpenMetrics text format with
  the documented labels (``source``, ``target``, ``topic``, ``partition``; ``group`` for
  checkpoints; ``source``, ``target`` for heartbeats) and plausible values;
- replication lag and latency move: while the mirror is stopped with SIGSTOP a producer keeps
  writing to the source, and after SIGCONT ``records_lag`` is seen above zero and then back at 0,
  ``replication_latency_ms`` is seen at a large part of the pause and then back down.

While a mirror is SIGSTOPped its process cannot answer HTTP at all (its threads do not run, so a
scrape just times out); the tests therefore never scrape during a pause and observe the raised
values during catch-up, which a small ``tuning.fetchMaxBytes`` stretches over many fetch rounds.
Records carry the current time as CreateTime here so that latencies are meaningful.
"""
import re
import threading
import time
import urllib.request

import pytest
from confluent_kafka import Producer

from harness.data import commit_offsets, create_topic, value_of, wait_mirrored
from harness.mirror import flow_config, record_figure
from harness.util import wait_until

pytestmark = pytest.mark.timeout(240)

PARTITION_METRICS = {  # name of the family -> OpenMetrics type
    "strata_mirror_record_age_ms": "gauge",
    "strata_mirror_replication_latency_ms": "gauge",
    "strata_mirror_byte_rate": "gauge",
    "strata_mirror_bytes": "counter",
    "strata_mirror_records": "counter",
    "strata_mirror_records_lag": "gauge",
}
GROUP_METRICS = {"strata_mirror_checkpoint_latency_ms": "gauge"}
FLOW_METRICS = {"strata_mirror_heartbeat_latency_ms": "gauge"}

_SAMPLE_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)( [0-9.]+)?$')
_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class RecordWriter:
    """A producer of small batches (``per_batch`` records at most), records stamped with the
    current time, record ``i`` to partition ``i % partitions``. A fetch returns at least one whole
    batch, so only small batches let a small fetch size split catch-up into many fetch rounds."""

    def __init__(self, bootstrap, topic, partitions, per_batch=10, value_size=200):
        self.topic, self.partitions, self.next = topic, partitions, 0
        self.value_size = value_size
        self.errors = []
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                                  "batch.num.messages": per_batch, "enable.idempotence": True})

    def write(self, count):
        for _ in range(count):
            i = self.next
            self.producer.produce(self.topic, key=b"k%d" % i, value=value_of(i, self.value_size),
                                  partition=i % self.partitions,
                                  on_delivery=lambda err, msg: err and self.errors.append(err))
            self.next += 1
        self.producer.poll(0)

    def flush(self):
        left = self.producer.flush(60)
        assert left == 0 and not self.errors, f"{left} unacknowledged, errors {self.errors[:3]}"


def samples(mirror, name, topic=None):
    """{partition label (or group / ''): value} of one family from one scrape."""
    out = {}
    for n, labels, v in mirror.scrape(timeout=5):
        if n == name and (topic is None or labels.get("topic") == topic):
            out[labels.get("partition", labels.get("group", ""))] = v
    return out


def test_metrics_are_exposed_with_documented_names_and_labels(strata_pair, mirror_factory):
    """One flow a -> b with a topic of 2 partitions and a consumer group on the source: the
    endpoint serves the OpenMetrics text format (HELP/TYPE lines, well-formed samples, ``# EOF``),
    every documented family with its type and exactly its documented labels, and values that
    match what was mirrored (records counted per partition, lag 0, bytes > 0)."""
    a, b = strata_pair
    create_topic(a.bootstrap, "named", 2)
    writer = RecordWriter(a.bootstrap, "named", 2)
    writer.write(100)
    writer.flush()
    commit_offsets(a.bootstrap, "billing", "named", {0: 10, 1: 20})
    m = mirror_factory(flow_config("a", a.bootstrap, "b", b.bootstrap, topics={"include": ["named"]}))
    wait_mirrored(a.bootstrap, b.bootstrap, "named", "a.named")

    wanted = set(PARTITION_METRICS) | set(GROUP_METRICS) | set(FLOW_METRICS)
    scraped = {}

    def every_family_present():
        # The byte rate is computed over windows of at least a second of acknowledgements, so
        # keep a trickle of records flowing until it appears.
        writer.write(2)
        writer.flush()
        with urllib.request.urlopen(m.metrics_url, timeout=5) as r:
            scraped.update(text=r.read().decode(), ctype=r.headers.get("Content-Type", ""))
        present = {line.split()[2] for line in scraped["text"].splitlines() if line.startswith("# TYPE ")}
        return wanted <= present

    try:
        wait_until(every_family_present, 60, "every documented metric family", interval=0.3)
    except AssertionError as e:
        raise AssertionError(f"{e}; last scrape:\n{scraped.get('text')}\n{m.log_tail(30)}") from None
    text, ctype = scraped["text"], scraped["ctype"]
    assert "openmetrics-text" in ctype or "text/plain" in ctype, f"Content-Type {ctype!r}"

    lines = text.splitlines()
    assert lines[-1] == "# EOF", f"OpenMetrics text must end with '# EOF', ends with {lines[-1]!r}"
    types, helps, parsed = {}, set(), []
    for line in lines[:-1]:
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            types[family] = kind
        elif line.startswith("# HELP "):
            helps.add(line.split(" ", 3)[2])
        else:
            match = _SAMPLE_LINE.match(line)
            assert match, f"malformed sample line {line!r}"
            labels = dict(_LABEL_PAIR.findall(match.group(2) or ""))
            parsed.append((match.group(1), labels, float(match.group(3))))
    for family, kind in {**PARTITION_METRICS, **GROUP_METRICS, **FLOW_METRICS}.items():
        assert types.get(family) == kind, f"{family}: TYPE {types.get(family)!r}, want {kind!r}"
        assert family in helps, f"{family} has no HELP line"

    def family_of(sample_name):
        for family, kind in types.items():
            if sample_name == family or (kind == "counter" and sample_name == family + "_total"):
                return family
        return None

    by_family = {}
    for name, labels, value in parsed:
        family = family_of(name)
        assert family is not None, f"sample {name} belongs to no declared family"
        if types[family] == "counter":
            assert name == family + "_total", f"counter sample {name} must be named {family}_total"
        by_family.setdefault(family, []).append((labels, value))
    expectations = [(PARTITION_METRICS, {"source", "target", "topic", "partition"}),
                    (GROUP_METRICS, {"source", "target", "group"}),
                    (FLOW_METRICS, {"source", "target"})]
    for families, label_names in expectations:
        for family in families:
            assert by_family.get(family), f"{family} has no samples"
            for labels, value in by_family[family]:
                assert set(labels) == label_names, f"{family} labels {sorted(labels)}, want {sorted(label_names)}"
                assert labels["source"] == "a" and labels["target"] == "b", f"{family} labels {labels}"
                assert value >= 0, f"{family}{labels} = {value}"

    per_partition = {}
    for family in PARTITION_METRICS:
        for labels, value in by_family[family]:
            assert labels["topic"] == "a.named", f"{family}: unexpected topic label {labels}"
            per_partition.setdefault(family, {})[labels["partition"]] = value
    for family in PARTITION_METRICS:
        if family != "strata_mirror_byte_rate":  # needs a second of traffic per partition
            assert set(per_partition[family]) == {"0", "1"}, f"{family} partitions {per_partition[family]}"
    records = per_partition["strata_mirror_records"]
    assert 100 <= sum(records.values()) <= writer.next, (
        f"records_total {records} for {writer.next} records produced (100 before the first scrape)")
    assert records["0"] >= 50 and records["1"] >= 50, f"records_total per partition {records}"
    assert all(v > 0 for v in per_partition["strata_mirror_bytes"].values()), per_partition["strata_mirror_bytes"]
    groups = {labels["group"] for labels, _ in by_family["strata_mirror_checkpoint_latency_ms"]}
    assert groups == {"billing"}, f"checkpoint_latency_ms groups {groups}"


def test_lag_and_latency_rise_during_a_pause_and_recover(strata_pair, mirror_factory):
    """The mirror is SIGSTOPped for six seconds while a producer writes a bounded number of
    records to the source; after SIGCONT repeated scrapes (deadline-bounded) see
    ``records_lag`` above 0 and then back at 0 on every partition, and
    ``replication_latency_ms`` reach at least half the pause and then fall below half its peak
    (a trickle of fresh records keeps flowing so that the gauge is refreshed after catch-up).
    ``tuning.fetchMaxBytes`` of 1 KiB with batches of one 1 KiB record makes catch-up take one
    fetch round per record (a round takes well under a millisecond on loopback, hence the fast
    scrapes)."""
    pause_s = 6.0
    a, b = strata_pair
    create_topic(a.bootstrap, "metered", 2)
    writer = RecordWriter(a.bootstrap, "metered", 2, per_batch=1, value_size=1024)
    writer.write(200)
    writer.flush()
    cfg = flow_config("a", a.bootstrap, "b", b.bootstrap, topics={"include": ["metered"]},
                      tuning={"fetchMaxBytes": 1024})
    m = mirror_factory(cfg)
    wait_mirrored(a.bootstrap, b.bootstrap, "metered", "a.metered")
    wait_until(lambda: samples(m, "strata_mirror_records_lag", "a.metered") == {"0": 0, "1": 0}, 60,
               "records_lag 0 on both partitions before the pause")

    m.pause()
    paused_at = time.monotonic()
    try:
        # 60 records every 100 ms for the whole pause: a bounded count (about 3600).
        while time.monotonic() - paused_at < pause_s:
            writer.write(60)
            time.sleep(0.1)  # pacing of the producer during the pause
        writer.flush()
    finally:
        m.resume()
    resumed_at = time.monotonic()
    paused_ms = (resumed_at - paused_at) * 1000
    backlog = writer.next - 200

    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            writer.write(4)
            stop.wait(0.1)  # pacing of the trickle producer

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()
    series = []  # (seconds since resume, total lag, max latency)

    def recovered():
        lag = samples(m, "strata_mirror_records_lag", "a.metered")
        latency = samples(m, "strata_mirror_replication_latency_ms", "a.metered")
        series.append((round(time.monotonic() - resumed_at, 2), sum(lag.values()), max(latency.values())))
        peak_lag = max(s[1] for s in series)
        peak_latency = max(s[2] for s in series)
        return (peak_lag > 0 and series[-1][1] == 0 and peak_latency >= paused_ms / 2
                and series[-1][2] <= peak_latency / 2)

    try:
        wait_until(recovered, 60, "lag and latency to rise and recover after the pause", interval=0.01)
    except AssertionError as e:
        shown = series if len(series) <= 60 else series[:40] + ["..."] + series[-20:]
        raise AssertionError(f"{e}; pause {paused_ms:.0f} ms, backlog {backlog} records; "
                             f"(s since resume, lag, latency ms) series: {shown}\n{m.log_tail(30)}") from None
    finally:
        stop.set()
        feeder.join(10)
    writer.flush()

    peak_lag = max(s[1] for s in series)
    peak_latency = max(s[2] for s in series)
    caught_up_at = next(t for t, lag, _ in series if lag == 0 and t >= next(t2 for t2, l2, _ in series if l2 > 0))
    test = "metrics.pause_resume"
    record_figure(test, "pause_ms", round(paused_ms))
    record_figure(test, "backlog_records", backlog)
    record_figure(test, "peak_records_lag", peak_lag)
    record_figure(test, "peak_replication_latency_ms", peak_latency)
    record_figure(test, "catch_up_s", caught_up_at)
    record_figure(test, "latency_after_recovery_ms", series[-1][2])
    record_figure(test, "scrapes", len(series))
    wait_mirrored(a.bootstrap, b.bootstrap, "metered", "a.metered")
