"""Partition reassignment with Kafka's own tool, ``kafka-reassign-partitions``, under acks=all load
from two idempotent clients: a move without a throttle and one with ``--throttle`` (the copy rate
of the new replica, measured on its disk, stays near the throttle, on Strata within 10% of it
measured over Kafka's quota window; the throttles are cleared by ``--verify`` once the move is
done), then a move that cannot finish (a tiny throttle) listed with
``--list`` and undone with ``--cancel``. Nothing acknowledged is lost, the replicas end equal, and
targets naming unknown brokers or a broker twice are refused with Kafka's error codes (sent with
kafka-python's admin client, as the tool refuses them itself) and change nothing. A reassignment
that gives every partition a new preferred replica while keeping its leader is followed, under
the same load, by ``kafka-leader-election --election-type preferred``: the leaderships land on
the new preferred replicas.

The topic lives on the broker-only nodes 4, 5, 6; replicas move to nodes 1 and 2 (same racks as
the replicas they replace: 4 and 1 are in rack a, 5 and 2 in rack b)."""
import json
import threading
import time

import pytest

from harness import unique_topic, wait_until
from harness.replication import (
    ConfluentLoad,
    VerifiableProducer,
    check_records,
    produce_sync,
    read_back,
    record_figure,
    replicas_equal,
)

ASSIGNMENT = [[4, 5, 6], [5, 6, 4], [6, 4, 5]]
PRELOAD_RECORDS = 5000  # 1 KiB each: about 5 MB per partition to copy
THROTTLE = 500_000  # bytes/s
# replication.quota.window.num x replication.quota.window.size.seconds (Kafka's defaults, also
# Strata's): the span over which a replication quota's rate is measured.
QUOTA_WINDOW = 11.0
RATE = 100
PROGRESS = 20


def preload(c, topic, partition):
    """About 5 MB of acks=all records in ``partition``, in batches of at most 16 KiB (the Java
    producer's default ``batch.size``; librdkafka's default of 1 MB would make every batch a
    fifth of the copy, and no throttle splits a batch); their acks (values without padding)."""
    values = [f"{90 + partition}.{i} " + "x" * 1000 for i in range(PRELOAD_RECORDS)]
    acks, errors = produce_sync(c.healthy_bootstrap(), topic, values, partition=partition, timeout=120,
                                idempotent=True, config={"batch.size": 16384})
    assert not errors and len(acks) == PRELOAD_RECORDS, f"preloading partition {partition}: {errors[:3]}"
    return [a._replace(value=a.value.split(" ", 1)[0]) for a in acks]


def plan(tmp_path, name, moves):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": t, "partition": p, "replicas": r, "log_dirs": ["any"] * len(r)} for t, p, r in moves]}))
    return path


def log_bytes(c, node, topic, partition):
    d = c.partition_dir(node, topic, partition)
    try:
        return sum(f.stat().st_size for f in d.glob("*.log"))
    except FileNotFoundError:
        return 0


class CopyWatch:
    """Samples the log bytes of the new replicas every 0.1 s in a thread: the copy rate is taken
    between the first byte seen and the first sample at 95% of the final size."""

    def __init__(self, c, nodes, topic, partition):
        self.samples = []
        self._stop = threading.Event()
        self._read = lambda: sum(log_bytes(c, n, topic, partition) for n in nodes)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self._read()))
            self._stop.wait(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def window_rate(self, window=QUOTA_WINDOW):
        """The copy's highest rate measured as Kafka measures a replication quota (a
        ``SimpleRate``): at every sample, the bytes of the ``window`` seconds before it (from
        the last sample before the first byte) divided by that span, at least one second."""
        if not self.samples or not self.samples[-1][1]:
            return 0.0
        before = [t for t, b in self.samples if b == 0]
        t0 = before[-1] if before else self.samples[0][0]
        best = 0.0
        for t, b in self.samples:
            if t <= t0:
                continue
            ref_t = max(t0, t - window)
            ref_b = max((b2 for t2, b2 in self.samples if t2 <= ref_t), default=0)
            best = max(best, (b - ref_b) / max(t - ref_t, 1.0))
        return best

    def rate(self):
        """(bytes copied, bytes/s of the copy)."""
        final = self.samples[-1][1] if self.samples else 0
        started = next((t for t, b in self.samples if b > 0), None)
        reached = next((t for t, b in self.samples if b >= 0.95 * final), None)
        if not final or started is None or reached is None:
            return final, 0.0
        # Copied within one sample: at least this fast.
        return final, 0.95 * final / max(reached - started, 0.1)


def move(c, tmp_path, name, topic, partition, target, throttle=None):
    """Runs --execute (with --throttle when given) and --verify until the move is done; returns
    (bytes copied to the new replicas, their copy rate in bytes/s, the finishing --verify output)."""
    new = [r for r in target if r not in c.partitions(topic)[partition].replicas]
    path = plan(tmp_path, name, [(topic, partition, target)])
    args = ["--reassignment-json-file", str(path), "--execute"]
    if throttle is not None:
        args += ["--throttle", str(throttle)]
    verified = {}

    def done():
        v = c.tool("reassign-partitions", "--reassignment-json-file", str(path), "--verify", timeout=120).stdout
        verified["out"] = v
        return f"Reassignment of partition {topic}-{partition} is completed" in v

    with CopyWatch(c, new, topic, partition) as watch:
        out = c.tool("reassign-partitions", *args, timeout=120).stdout
        assert "Successfully started partition reassignment" in out, out
        wait_until(done, 300, f"{c.kind}: reassignment of {topic}-{partition} to {target}", interval=1.0)
    copied, rate = watch.rate()
    c.wait_partitions(topic, lambda ps: ps[partition].replicas == target and set(ps[partition].isr) == set(target),
                      f"partition {partition} on {target} with a full ISR", timeout=60)
    return copied, rate, watch.window_rate(), verified["out"]


def broker_throttles(c, node):
    out = c.tool("configs", "--describe", "--entity-type", "brokers", "--entity-name", str(node), timeout=60).stdout
    return [line for line in out.splitlines() if "replication.throttled.rate" in line]


@pytest.mark.timeout(900)
def test_reassign_partitions_throttled_verified_and_cancelled(healthy_cluster, target_kind, tmp_path):
    c = healthy_cluster
    topic = unique_topic("reassign")
    c.create_topic(topic, assignment=ASSIGNMENT)
    preloads = [preload(c, topic, p) for p in (0, 1, 2)]
    vp = VerifiableProducer(tmp_path, c.bootstrap(), topic, prefix=1, throughput=RATE).start()
    cl = ConfluentLoad(c.bootstrap(), topic, len(ASSIGNMENT), prefix=2, rate=RATE).start()
    try:
        vp.log.wait_acked(PROGRESS, 90, "before any move")
        cl.log.wait_acked(PROGRESS, 90, "before any move")

        # 1. Partition 0 from 4 to 1 (rack a to rack a), no throttle: leader 4 hands over.
        copied, rate, _, _ = move(c, tmp_path, "unthrottled", topic, 0, [1, 5, 6])
        record_figure("reassignment", f"{target_kind} unthrottled copy MB / MB/s",
                      f"{copied / 1e6:.1f} / {rate / 1e6:.2f}")

        # 2. Partition 1 from 5 to 2 with --throttle: the copy runs near the throttle, and --verify
        #    clears the broker and topic throttles once it is done.
        copied, rate, windowed, out = move(c, tmp_path, "throttled", topic, 1, [2, 6, 4], throttle=THROTTLE)
        record_figure("reassignment", f"{target_kind} throttled copy ({THROTTLE} B/s) MB / B/s from the "
                      f"first byte / highest B/s over the {QUOTA_WINDOW:.0f} s quota window",
                      f"{copied / 1e6:.1f} / {rate:.0f} / {windowed:.0f}")
        assert copied >= PRELOAD_RECORDS * 1000, f"{target_kind}: only {copied} bytes on the new replica"
        assert rate <= 2 * THROTTLE, f"{target_kind}: throttled to {THROTTLE} B/s, copied at {rate:.0f} B/s"
        if target_kind == "strata":
            # Strata bounds every throttled read by the quota (Kafka lets one fetch of up to
            # replica.fetch.max.bytes through before it checks, so only the bound above holds there).
            assert windowed <= 1.1 * THROTTLE, \
                f"strata: throttled to {THROTTLE} B/s, {windowed:.0f} B/s over the quota window"
        assert "Clearing broker-level throttles" in out, out
        for node in (2, 4, 5, 6):
            assert not broker_throttles(c, node), f"{target_kind}: throttle left on broker {node}"
        vp.log.wait_more(PROGRESS, 90, "after two moves")
        cl.log.wait_more(PROGRESS, 90, "after two moves")

        # 3. Partition 2 from 6 to 3 at 10 kB/s cannot finish soon: listed, then cancelled.
        path = plan(tmp_path, "cancelled", [(topic, 2, [4, 5, 3])])
        c.tool("reassign-partitions", "--reassignment-json-file", str(path), "--execute", "--throttle", "10000")
        listing = c.tool("reassign-partitions", "--list").stdout
        assert f"{topic}-2: replicas: 4,5,3,6. adding: 3. removing: 6." in listing, listing
        out = c.tool("reassign-partitions", "--reassignment-json-file", str(path), "--cancel").stdout
        assert f"Successfully cancelled partition reassignment for: {topic}-2" in out, out
        # Kafka's revert keeps the merged order without the added replica: 4, 5, 6.
        c.wait_partitions(topic, lambda ps: ps[2].replicas == [4, 5, 6] and set(ps[2].isr) == {4, 5, 6},
                          "partition 2 back on 4, 5, 6", timeout=60)
        assert "No partition reassignments found" in c.tool("reassign-partitions", "--list").stdout
        wait_until(lambda: not c.partition_dir(3, topic, 2).exists(), 60,
                   f"{target_kind}: the cancelled replica on node 3 deleted")
        vp.log.wait_more(PROGRESS, 90, "after the cancelled move")
        cl.log.wait_more(PROGRESS, 90, "after the cancelled move")
    finally:
        vp.stop()
        cl.stop()
    c.wait_isr_full(topic)
    acks = vp.acked + cl.acked + [a for acked in preloads for a in acked]
    res = check_records(acks, read_back(c.healthy_bootstrap(), topic, acked=acks))
    record_figure("reassignment", f"{target_kind} records", str(res))
    assert res.ok_for(target_kind), f"{target_kind}: {res}"
    diffs = replicas_equal(c, topic)
    assert not diffs, "\n".join(diffs)


def elected(out, topic, partitions):
    """{partition: "tool" | "already"} from kafka-leader-election's output: elected by this run,
    or already led by the preferred replica (the automatic rebalance, every 5 s here, may move
    a leadership first)."""
    how = {}
    for line in out.splitlines():
        kind = ("tool" if line.startswith("Successfully completed leader election (PREFERRED)") else
                "already" if line.startswith("Valid replica already elected") else None)
        if kind:
            listed = line.split(" for partitions ", 1)[-1]
            how.update({p: kind for p in partitions if f"{topic}-{p}" in [x.strip() for x in listed.split(",")]})
    return how


@pytest.mark.timeout(600)
def test_reassignment_then_preferred_election_under_load(healthy_cluster, target_kind, tmp_path):
    c = healthy_cluster
    topic = unique_topic("reassign-elect")
    c.create_topic(topic, assignment=ASSIGNMENT)
    # Each partition gets a new replica (1, 2, 3) as its preferred one and keeps its leader.
    targets = {0: [1, 4, 6], 1: [2, 5, 4], 2: [3, 6, 5]}
    vp = VerifiableProducer(tmp_path, c.bootstrap(), topic, prefix=1, throughput=RATE).start()
    cl = ConfluentLoad(c.bootstrap(), topic, len(ASSIGNMENT), prefix=2, rate=RATE).start()
    try:
        vp.log.wait_acked(PROGRESS, 90, "before the move")
        cl.log.wait_acked(PROGRESS, 90, "before the move")
        path = plan(tmp_path, "new-preferred", [(topic, p, r) for p, r in targets.items()])
        out = c.tool("reassign-partitions", "--reassignment-json-file", str(path), "--execute").stdout
        assert "Successfully started partition reassignment" in out, out

        def done():
            v = c.tool("reassign-partitions", "--reassignment-json-file", str(path), "--verify").stdout
            return all(f"Reassignment of partition {topic}-{p} is completed" in v for p in targets)

        wait_until(done, 300, f"{target_kind}: reassignment of {topic} to {targets}", interval=1.0)
        view = c.wait_partitions(topic, lambda ps: all(ps[p].replicas == r and set(ps[p].isr) == set(r)
                                                       for p, r in targets.items()),
                                 "every partition on its target with a full ISR", timeout=60)
        record_figure("reassignment", f"{target_kind} leaders after the move (preferred 1, 2, 3)",
                      str([view[p].leader for p in sorted(targets)]))
        election = tmp_path / "election.json"
        election.write_text(json.dumps({"partitions": [{"topic": topic, "partition": p} for p in targets]}))
        out = c.tool("leader-election", "--election-type", "preferred", "--path-to-json-file", str(election)).stdout
        how = elected(out, topic, targets)
        assert set(how) == set(targets), f"{target_kind}: partitions the tool did not report: {out}"
        record_figure("reassignment", f"{target_kind} preferred election after the move (tool / already)",
                      f"{sum(v == 'tool' for v in how.values())} / {sum(v == 'already' for v in how.values())}")
        c.wait_partitions(topic, lambda ps: all(ps[p].leader == r[0] for p, r in targets.items()),
                          "every partition led by its new preferred replica", timeout=30)
        vp.log.wait_more(PROGRESS, 90, "after the election")
        cl.log.wait_more(PROGRESS, 90, "after the election")
    finally:
        vp.stop()
        cl.stop()
    for load in (vp, cl):
        assert not load.log.errors, f"{target_kind}: sends failed: {dict(load.log.errors)} {load.log.error_examples[:3]}"
    res = check_records(vp.acked + cl.acked, read_back(c.healthy_bootstrap(), topic, acked=vp.acked + cl.acked))
    record_figure("reassignment", f"{target_kind} move + preferred election records", str(res))
    assert res.ok_for(target_kind), f"{target_kind}: {res}"
    diffs = replicas_equal(c, topic)
    assert not diffs, "\n".join(diffs)


@pytest.mark.timeout(300)
def test_reassignment_to_unknown_or_repeated_brokers_is_refused(healthy_cluster, target_kind):
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.errors import InvalidReplicationAssignmentError, UnknownTopicOrPartitionError

    c = healthy_cluster
    topic = unique_topic("reassign-bad")
    c.create_topic(topic, assignment=[[4, 5, 6]])
    admin = KafkaAdminClient(bootstrap_servers=c.healthy_bootstrap(), request_timeout_ms=30000)
    try:
        tp = TopicPartition(topic, 0)
        results = admin.alter_partition_reassignments({tp: [4, 5, 99]})
        assert results[tp] is InvalidReplicationAssignmentError, f"{target_kind}: unknown broker: {results}"
        results = admin.alter_partition_reassignments({tp: [4, 4, 5]})
        assert results[tp] is InvalidReplicationAssignmentError, f"{target_kind}: repeated broker: {results}"
        missing = TopicPartition(topic, 7)
        results = admin.alter_partition_reassignments({missing: [4, 5, 6]})
        assert results[missing] is UnknownTopicOrPartitionError, f"{target_kind}: unknown partition: {results}"
        assert admin.list_partition_reassignments() == {} or tp not in admin.list_partition_reassignments()
    finally:
        admin.close()
    assert c.partitions(topic)[0].replicas == [4, 5, 6]


@pytest.mark.timeout(600)
def test_brokers_killed_in_the_middle_of_a_reassignment(healthy_cluster, target_kind, tmp_path):
    """The new replica and then the leader being moved away are killed -9 while a throttled move
    copies: the partition keeps min.insync.replicas in its ISR throughout, the move resumes once
    they are back and completes, and nothing acknowledged is lost."""
    c = healthy_cluster
    topic = unique_topic("reassign-kill")
    c.create_topic(topic, assignment=[[4, 5, 6]])
    acks = preload(c, topic, 0)
    path = plan(tmp_path, "killed", [(topic, 0, [1, 5, 6])])
    c.tool("reassign-partitions", "--reassignment-json-file", str(path), "--execute", "--throttle", "200000")
    wait_until(lambda: log_bytes(c, 1, topic, 0) > 0, 60, f"{target_kind}: node 1 copying")
    c.kill9(1)
    view = c.wait_partitions(topic, lambda ps: ps[0].leader == 4, "leader 4 with node 1 down")
    assert {5, 6} <= set(view[0].isr), f"{target_kind}: ISR {view[0].isr} below min.insync.replicas"
    c.start_node(1)
    wait_until(lambda: log_bytes(c, 1, topic, 0) > 1_000_000, 120, f"{target_kind}: node 1 copying again")
    c.kill9(4)
    view = c.wait_partitions(topic, lambda ps: ps[0].leader in (5, 6), "a new leader with node 4 down")
    assert {5, 6} <= set(view[0].isr), f"{target_kind}: ISR {view[0].isr} below min.insync.replicas"
    more, errors = produce_sync(c.healthy_bootstrap(), topic, [f"3.{i}" for i in range(100)], idempotent=True)
    assert not errors and len(more) == 100, f"{target_kind}: writes during the move: {errors}"
    c.start_node(4)

    def done():
        out = c.tool("reassign-partitions", "--reassignment-json-file", str(path), "--verify", timeout=120).stdout
        return f"Reassignment of partition {topic}-0 is completed" in out

    wait_until(done, 300, f"{target_kind}: the interrupted reassignment completes", interval=2.0)
    c.wait_partitions(topic, lambda ps: ps[0].replicas == [1, 5, 6] and set(ps[0].isr) == {1, 5, 6},
                      "partition 0 on 1, 5, 6 with a full ISR", timeout=60)
    res = check_records(acks + more, read_back(c.healthy_bootstrap(), topic, acked=acks + more))
    record_figure("reassignment", f"{target_kind} interrupted move records", str(res))
    assert res.ok_for(target_kind), f"{target_kind}: {res}"
    diffs = replicas_equal(c, topic)
    assert not diffs, "\n".join(diffs)
