"""strata-mirror across a crash and consumers across a switch of clusters, Strata broker ``a`` to
Strata broker ``b``, in both offset modes (``Translate`` + ``Prefixed`` and ``Preserve`` +
``Identity``).

- Kill -9 mid-stream: while records are being produced and mirrored, the mirror is killed with
  SIGKILL; the source keeps receiving records while it is down; a new process takes over. Nothing
  is lost: every partition of the target is the source partition, in order and intact, with at
  most re-copied stretches (each a rewind to an earlier record, never a skip). ``Translate``
  re-copies what was acknowledged after the last progress commit (the duplicates are counted
  and recorded as a figure); ``Preserve`` resumes from the target's log end offset, so there are
  no duplicates and every record sits at its source offset.
- Consumer group resume: group G consumes part of a source topic and commits; the mirror
  checkpoints G and commits its translated offsets on the target; G resumes on the target and
  misses no record after its source commit. ``Translate`` re-delivers fewer than
  ``offset.lag.max`` records per partition: offset syncs are at most ``offset.lag.max`` source
  offsets apart, and translation picks the last sync at or below the committed offset ``c``
  (sync ``u -> d`` gives ``d + 1``), so only records ``u + 1 .. c - 1`` come again. ``Preserve``
  re-delivers none: the committed offset is synced unchanged.
"""
import threading
import time

import pytest

from harness.data import (RecordProducer, committed_offsets, consume_group_partitioned, create_topic, produce,
                          read_all, record_counts, strip_provenance, wait_mirrored, watermarks)
from harness.mirror import flow_config, record_figure, remote_topic, skip_unless_preserve_accepted
from harness.util import unique_topic, wait_until

MODES = {
    "translate-prefixed": {"offsets": "Translate", "naming": "Prefixed"},
    "preserve-identity": {"offsets": "Preserve", "naming": "Identity"},
}
PARTITIONS = 4
OFFSET_LAG_MAX = 100
GROUP_RECORDS = 20_000  # 5,000 per partition
STOP_AT = {0: 1234, 1: 2777, 2: 3001, 3: 5000}  # G's source commit: where it stopped reading
PROGRESS_GROUP = "strata-mirror-a-b"  # where a Translate flow a -> b commits its progress


def _content(rec, identity):
    """What must survive mirroring: key, value, headers (provenance stripped), timestamp."""
    headers = strip_provenance(rec.headers) if identity else rec.headers
    return rec.key, rec.value, headers, rec.timestamp


def check_at_least_once(where, src, dst, identity):
    """``dst`` is ``src`` copied in order, possibly with rewinds (a stretch copied again after a
    restart) but with no record skipped, altered or invented. Returns (duplicates, rewinds)."""
    index = {r.key: i for i, r in enumerate(src)}
    pos = 0  # index in src of the next record expected on the target
    rewinds = 0
    for n, rec in enumerate(dst):
        i = index.get(rec.key)
        if i is None:
            raise AssertionError(f"{where}: target offset {rec.offset} holds key {rec.key!r}, not in the source")
        if _content(rec, identity) != _content(src[i], identity):
            raise AssertionError(f"{where}: target offset {rec.offset} differs from source offset {src[i].offset}: "
                                 f"{_content(rec, identity)!r:.300} != {_content(src[i], identity)!r:.300}")
        if i > pos:
            raise AssertionError(f"{where}: source offsets {src[pos].offset}..{src[i - 1].offset} are missing on the "
                                 f"target before target offset {rec.offset} (which holds source offset {src[i].offset})")
        if i < pos:
            rewinds += 1
        pos = i + 1
    if pos < len(src):
        raise AssertionError(f"{where}: the target ends at source offset {src[pos - 1].offset if pos else None}; "
                             f"source offsets {src[pos].offset}..{src[-1].offset} never arrived "
                             f"({len(src) - pos} records lost)")
    return len(dst) - len(src), rewinds


def wait_caught_up(mirror, remote, partitions, timeout=60):
    """Waits until the mirror reports no lag on any partition of ``remote``."""
    def caught_up():
        return all(mirror.metric("strata_mirror_records_lag", topic=remote, partition=p) == 0
                   for p in range(partitions))

    wait_until(caught_up, timeout, f"strata_mirror_records_lag == 0 on every partition of {remote}", interval=0.3)


class StreamProducer(threading.Thread):
    """Produces records ``start`` .. ``pause_at - 1`` at ``rate`` records per second (chunks sent
    on a fixed schedule), then waits for :attr:`go_on` (with a deadline) and produces
    ``pause_at`` .. ``stop - 1`` at full speed."""

    def __init__(self, bootstrap, topic, start, pause_at, stop, rate, chunk=250):
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.start_at, self.pause_at, self.stop_at, self.rate, self.chunk = start, pause_at, stop, rate, chunk
        self.reached_pause = threading.Event()
        self.go_on = threading.Event()
        self.error = None

    def run(self):
        try:
            producer = RecordProducer(self.bootstrap, self.topic, PARTITIONS, extra={"linger.ms": 2})
            began = time.monotonic()
            for lo in range(self.start_at, self.pause_at, self.chunk):
                due = began + (lo - self.start_at) / self.rate
                time.sleep(max(0.0, due - time.monotonic()))  # the production rate, not a wait for a condition
                producer.send(lo, min(self.chunk, self.pause_at - lo))
            self.reached_pause.set()
            if not self.go_on.wait(120):
                raise AssertionError("the producer was never told to go on")
            producer.send(self.pause_at, self.stop_at - self.pause_at)
        except BaseException as e:  # reported by the test thread
            self.error = e
        finally:
            self.reached_pause.set()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", list(MODES), ids=list(MODES))
def test_kill9_mid_stream_loses_nothing(strata_pair, mirror_factory, work_dir, mode):
    preserve = MODES[mode]["offsets"] == "Preserve"
    identity = MODES[mode]["naming"] == "Identity"
    if preserve:
        skip_unless_preserve_accepted(work_dir)
    a, b = strata_pair
    name = f"test_restart.kill9[{mode}]"
    topic = unique_topic("restart")
    create_topic(a.bootstrap, topic, PARTITIONS)
    config = flow_config("a", a.bootstrap, "b", b.bootstrap, topics={"include": ["restart-.*"]},
                         **MODES[mode])
    remote = remote_topic(config, topic)

    def count(bootstrap, t):
        return sum(record_counts(bootstrap, t).values())

    def progress():
        return committed_offsets(a.bootstrap, PROGRESS_GROUP, topic, PARTITIONS)

    produce(a.bootstrap, topic, 10_000, PARTITIONS)
    mirror = mirror_factory(config)
    # Records 10,000..29,999 are produced (5,000/s) while the mirror runs, 30,000..49,999 while it
    # is down.
    producer = StreamProducer(a.bootstrap, topic, 10_000, 30_000, 50_000, rate=5_000)
    producer.start()
    try:
        # Kill once the stream is flowing and (Translate) progress has been committed at least once.
        wait_until(lambda: producer.error or (count(b.bootstrap, remote) >= 20_000 and (preserve or progress())),
                   90, f"20,000 records mirrored to {remote} (and progress committed) while the source is "
                       f"produced to", interval=0.05)
        assert producer.error is None, f"producing to {topic} failed: {producer.error}"
        mirror.kill9()
        record_figure(name, "source_records_at_kill", count(a.bootstrap, topic))
        record_figure(name, "target_records_at_kill", count(b.bootstrap, remote))
        assert producer.reached_pause.wait(60) and producer.error is None, \
            f"producing to {topic} failed: {producer.error}"
    finally:
        producer.go_on.set()
        producer.join(120)
    assert not producer.is_alive(), "the producer did not finish within 120s"
    assert producer.error is None, f"producing to {topic} failed: {producer.error}"

    before = record_counts(b.bootstrap, remote)
    committed = progress()
    t0 = time.monotonic()
    mirror.start()
    wait_mirrored(a.bootstrap, b.bootstrap, topic, remote, timeout=120)
    wait_caught_up(mirror, remote, PARTITIONS)
    record_figure(name, "catch_up_after_restart_s", round(time.monotonic() - t0, 2))

    src = read_all(a.bootstrap, topic)
    dst = read_all(b.bootstrap, remote)
    assert sum(map(len, src.values())) == 50_000, f"source {topic} holds {sum(map(len, src.values()))} records"
    duplicates = {}
    for p in range(PARTITIONS):
        duplicates[p], rewinds = check_at_least_once(f"{topic}[{p}] -> {remote}[{p}]", src[p], dst[p], identity)
        if preserve:
            assert duplicates[p] == 0 and rewinds == 0, \
                f"{remote}[{p}]: {duplicates[p]} duplicates after a restart in Preserve mode"
            assert [r.offset for r in dst[p]] == [r.offset for r in src[p]], \
                f"{remote}[{p}]: target offsets differ from the source's"
        else:
            # The new process resumes exactly at the committed progress: what the target held
            # beyond it is copied again, nothing more.
            assert duplicates[p] == before[p] - committed.get(p, 0), \
                (f"{remote}[{p}]: {duplicates[p]} duplicates, but the target held {before[p]} records and "
                 f"the committed progress was {committed.get(p)}: the restart did not resume there")
    record_figure(name, "duplicates_per_partition", duplicates)
    record_figure(name, "duplicates_total", sum(duplicates.values()))
    if preserve:
        assert watermarks(b.bootstrap, remote) == watermarks(a.bootstrap, topic)
    assert mirror.running(), f"the restarted mirror exited:\n{mirror.log_tail()}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", list(MODES), ids=list(MODES))
def test_consumer_group_resumes_on_target(strata_pair, mirror_factory, work_dir, mode):
    preserve = MODES[mode]["offsets"] == "Preserve"
    if preserve:
        skip_unless_preserve_accepted(work_dir)
    a, b = strata_pair
    name = f"test_restart.group_resume[{mode}]"
    topic = unique_topic("resume")
    group = unique_topic("group")
    create_topic(a.bootstrap, topic, PARTITIONS)
    produce(a.bootstrap, topic, GROUP_RECORDS, PARTITIONS)
    config = flow_config("a", a.bootstrap, "b", b.bootstrap, topics={"include": ["resume-.*"]},
                         mirror={"offsetLagMax": OFFSET_LAG_MAX}, **MODES[mode])
    remote = remote_topic(config, topic)
    mirror = mirror_factory(config)
    wait_mirrored(a.bootstrap, b.bootstrap, topic, remote, timeout=120)

    # G reads an uneven part of every partition on the source (all of partition 3), commits and
    # leaves.
    consume_group_partitioned(a.bootstrap, group, topic, until=STOP_AT)
    source_committed = committed_offsets(a.bootstrap, group, topic, PARTITIONS)
    assert source_committed == STOP_AT, f"G's commit on the source: {source_committed}, consumed up to {STOP_AT}"

    def synced():
        got = committed_offsets(b.bootstrap, group, remote, PARTITIONS)
        return got if set(got) == set(source_committed) else None

    try:
        target_committed = wait_until(synced, 60, f"group {group}'s offsets committed on the target for {remote}",
                                      interval=0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}; source commit {source_committed}; mirror log:\n{mirror.log_tail(30)}") from None
    record_figure(name, "source_committed", source_committed)
    record_figure(name, "target_committed", target_committed)
    if preserve:
        assert target_committed == source_committed, \
            f"Preserve syncs group offsets unchanged: target {target_committed} != source {source_committed}"

    src = read_all(a.bootstrap, topic)
    resumed = consume_group_partitioned(b.bootstrap, group, remote)
    duplicates = {}
    for p in range(PARTITIONS):
        c = source_committed[p]
        source_offset = {r.key: r.offset for r in src[p]}
        seen = [source_offset[r.key] for r in resumed.get(p, [])]
        seen_set = set(seen)
        missed = [r.offset for r in src[p] if r.offset >= c and r.offset not in seen_set]
        assert not missed, (f"{remote}[{p}]: G committed {c} on the source, resumed on the target at "
                            f"{target_committed[p]} and never saw source offsets {missed[:10]} "
                            f"({len(missed)} in all)")
        assert seen == sorted(seen), f"{remote}[{p}]: G saw source offsets out of order"
        duplicates[p] = sum(1 for o in seen if o < c)
    record_figure(name, "duplicates_per_partition", duplicates)
    if preserve:
        assert all(d == 0 for d in duplicates.values()), f"Preserve re-delivered records: {duplicates}"
    else:
        over = {p: d for p, d in duplicates.items() if d > OFFSET_LAG_MAX}
        assert not over, (f"re-delivered more than offset.lag.max={OFFSET_LAG_MAX} records on partitions {over} "
                          f"(source commit {source_committed}, target commit {target_committed})")
    assert mirror.running(), f"the mirror exited:\n{mirror.log_tail()}"
