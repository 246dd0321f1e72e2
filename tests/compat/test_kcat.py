"""librdkafka through the `kcat` command-line client (Debian's package) against each target broker.

kcat cannot set per-message timestamps or per-message headers: records get the CreateTime
librdkafka stamps at produce time (checked to lie within the produce run), and the headers given
with -H on the command line (varied here per partition, one kcat run per partition). kcat has no
admin mode: topics are created with confluent-kafka's AdminClient, and a group's committed offsets
are read with a confluent-kafka consumer of that group.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess

import pytest
from confluent_kafka import Consumer, TopicPartition

from harness import unique_topic, wait_until

from scenarios import CODECS, Rec, ck_committed, create_topic, make_records, now_ms, verify_records

KCAT = shutil.which("kcat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat not installed (tests/env/install/kcat.sh)")

N_RECORDS = 100_000
SEP = b"\x01"
FMT = r"%p\x01%o\x01%T\x01%k\x01%s\x01%h\n"


def kcat_produce(bootstrap, topic, recs, *, partition=None, headers=(), codec="none", timeout=300):
    """Feeds `key<TAB>value` lines to one `kcat -P` run; returns its stderr."""
    cmd = [KCAT, "-P", "-b", bootstrap, "-t", topic, "-K", r"\t", "-z", codec,
           "-X", "linger.ms=20", "-X", "queue.buffering.max.messages=1000000",
           "-X", "acks=all"]
    if partition is not None:
        cmd += ["-p", str(partition)]
    for name, value in headers:
        cmd += ["-H", f"{name}={value.decode()}"]
    data = b"".join(r.key + b"\t" + r.value + b"\n" for r in recs)
    res = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout)
    assert res.returncode == 0, f"kcat -P failed ({res.returncode}): {res.stderr.decode()[-2000:]}"
    assert b"Delivery failed" not in res.stderr, res.stderr.decode()[-2000:]
    return res.stderr


def parse_headers(s: bytes) -> tuple:
    if not s:
        return ()
    out = []
    for item in s.split(b","):
        name, _, value = item.partition(b"=")
        out.append((name.decode(), value))
    return tuple(out)


def kcat_consume_all(bootstrap, topic, timeout=300) -> list[Rec]:
    """`kcat -C -o beginning -e` over all partitions, parsed from the -f format."""
    res = subprocess.run([KCAT, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
                          "-f", FMT], capture_output=True, timeout=timeout)
    assert res.returncode == 0, f"kcat -C failed ({res.returncode}): {res.stderr.decode()[-2000:]}"
    out = []
    lines = res.stdout.split(b"\n")
    assert lines[-1] == b""
    for line in lines[:-1]:
        p, o, t, k, v, h = line.split(SEP)
        out.append(Rec(partition=int(p), offset=int(o), timestamp=int(t), key=k, value=v,
                       headers=parse_headers(h)))
    return out


@pytest.mark.timeout(600)
@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_100k(broker, codec):
    topic = unique_topic(f"kcat-{codec}")
    partitions = 4
    create_topic(broker.bootstrap, topic, partitions)
    base = make_records(N_RECORDS, partitions, tag=codec)
    # One kcat run per partition, each with its own header set (kcat's -H applies to a whole run).
    recs = []
    for r in base:
        hdrs = (("part", str(r.partition).encode()), ("src", b"kcat"))
        if r.partition % 2:
            hdrs += (("part", b"odd"),)  # repeated header name
        recs.append(Rec(partition=r.partition, key=r.key, value=r.value, headers=hdrs,
                        index=r.index))
    t0 = now_ms()
    for p in range(partitions):
        mine = [r for r in recs if r.partition == p]
        kcat_produce(broker.bootstrap, topic, mine, partition=p, headers=mine[0].headers,
                     codec=codec)
    t1 = now_ms()

    got = kcat_consume_all(broker.bootstrap, topic)
    verify_records(recs, got, check_timestamps=False)
    # kcat cannot choose timestamps: librdkafka's CreateTime must fall within the produce run.
    bad = [r for r in got if not (t0 - 1000 <= r.timestamp <= t1 + 1000)]
    assert not bad, f"{len(bad)} timestamps outside [{t0}, {t1}], e.g. {bad[0].timestamp}"


def test_metadata_listing(broker):
    topic = unique_topic("kcat-md")
    create_topic(broker.bootstrap, topic, 5, {"retention.ms": "3600000"})

    def listing():
        res = subprocess.run([KCAT, "-L", "-J", "-b", broker.bootstrap, "-t", topic],
                             capture_output=True, timeout=60)
        assert res.returncode == 0, res.stderr.decode()
        md = json.loads(res.stdout)
        (t,) = [t for t in md["topics"] if t["topic"] == topic]
        return md, t
    wait_until(lambda: len(listing()[1]["partitions"]) == 5, 30, "5 partitions listed")
    md, t = listing()
    broker_ids = {b["id"] for b in md["brokers"]}
    assert len(broker_ids) == 1
    assert "error" not in t or not t["error"]
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2, 3, 4]
    for p in t["partitions"]:
        assert p["leader"] in broker_ids
        assert [r["id"] for r in p["replicas"]] == [p["leader"]]
        assert [r["id"] for r in p["isrs"]] == [p["leader"]]
    (b,) = md["brokers"]
    assert b["name"].rsplit(":", 1)[1] == str(broker.port)

    # The plain-text listing names the topic with its partition count as well.
    res = subprocess.run([KCAT, "-L", "-b", broker.bootstrap, "-t", topic], capture_output=True,
                         timeout=60, check=True)
    assert f'topic "{topic}" with 5 partitions' in res.stdout.decode()


class KcatMember:
    """A `kcat -G` balanced consumer printing `partition offset key` lines."""

    def __init__(self, bootstrap, group, topic, tmp_path, name):
        self.out_path = tmp_path / f"{name}.out"
        self.err_path = tmp_path / f"{name}.err"
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [KCAT, "-b", bootstrap, "-G", group, "-u", "-f", r"%p %o %k\n",
             "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000",
             "-X", "auto.offset.reset=earliest", "-X", "auto.commit.interval.ms=200", topic],
            stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL)

    def consumed(self):
        data = self.out_path.read_bytes().split(b"\n")[:-1]
        out = []
        for line in data:
            p, o, k = line.split(b" ", 2)
            out.append((int(p), int(o), k))
        return out

    def keys(self):
        return {k for _, _, k in self.consumed()}

    def assignment(self) -> set[int]:
        last: set[int] = set()
        for line in self.err_path.read_text(errors="replace").splitlines():
            if "rebalanced" in line and "assigned:" in line:
                last = {int(x) for x in re.findall(r"\[(\d+)\]", line.split("assigned:", 1)[1])}
            elif "rebalanced" in line and "revoked:" in line:
                last = set()
        return last

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)

    def close(self):
        self.signal(signal.SIGTERM)
        self._out.close()
        self._err.close()


@pytest.mark.timeout(300)
def test_group_rebalance_commit_restart(broker, tmp_path):
    bs = broker.bootstrap
    partitions = 12
    topic = unique_topic("kcat-grp")
    group = unique_topic("kcat-grp-g")
    create_topic(bs, topic, partitions)
    all_parts = set(range(partitions))

    members = [KcatMember(bs, group, topic, tmp_path, f"m{i}") for i in range(3)]
    try:
        def spread():
            a = [m.assignment() for m in members]
            return all(a) and sum(len(x) for x in a) == partitions and set().union(*a) == all_parts
        wait_until(spread, 120, "three kcat members sharing 12 partitions")

        phase_a = make_records(1200, partitions, tag="a")
        kcat_produce(bs, topic, phase_a)
        wait_until(lambda: {r.key for r in phase_a} <= set().union(*(m.keys() for m in members)),
                   120, "phase A consumed by the group")

        dying, leaving, last = members
        dying.signal(signal.SIGKILL)  # no LeaveGroup: noticed when its session times out
        phase_b = make_records(1200, partitions, tag="b")
        kcat_produce(bs, topic, phase_b)
        wait_until(lambda: {r.key for r in phase_b} <= leaving.keys() | last.keys(), 120,
                   "survivors consuming the dead member's partitions too")
        assert leaving.assignment() | last.assignment() == all_parts

        leaving.signal(signal.SIGTERM)  # clean close: LeaveGroup
        phase_c = make_records(1200, partitions, tag="c")
        kcat_produce(bs, topic, phase_c)
        wait_until(lambda: {r.key for r in phase_c} <= last.keys(), 120,
                   "last member consuming everything")
        assert last.assignment() == all_parts

        c = Consumer({"bootstrap.servers": bs, "group.id": unique_topic("kcat-wm")})
        try:
            ends = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in range(partitions)]
        finally:
            c.close()
        assert sum(ends) == 3600

        def committed():
            return ck_committed(bs, group, topic, partitions)
        wait_until(lambda: committed() == ends, 60, "kcat's auto-commit reaching the end offsets")
        last.signal(signal.SIGTERM)

        every = {r.key for r in phase_a + phase_b + phase_c}
        seen = set().union(*(m.keys() for m in members))
        assert every <= seen, f"{len(every - seen)} records never consumed"
    finally:
        for m in members:
            m.close()

    broker.restart()
    after = wait_until(committed, 90, "OffsetFetch answered after restart")
    assert after == ends

    phase_d = make_records(120, partitions, tag="d")
    kcat_produce(bs, topic, phase_d)
    new = KcatMember(bs, group, topic, tmp_path, "new")
    try:
        wait_until(lambda: {r.key for r in phase_d} <= new.keys(), 120,
                   "new member consuming the post-restart records")
        redelivered = [(p, o) for p, o, _ in new.consumed() if o < ends[p]]
        assert not redelivered, f"re-delivered below the committed offsets: {redelivered[:5]}"
        assert new.keys() == {r.key for r in phase_d}
        assert len(new.consumed()) == len(phase_d)
    finally:
        new.close()


@pytest.mark.timeout(120)
def test_query_offsets_by_timestamp(broker):
    bs = broker.bootstrap
    topic = unique_topic("kcat-ts")
    create_topic(bs, topic, 1)
    # Three kcat runs: librdkafka stamps CreateTime, so each run's records share a narrow time
    # window; the timestamps are read back and then looked up with `kcat -Q`.
    for run in range(3):
        kcat_produce(bs, topic, make_records(50, 1, tag=f"q{run}"), partition=0)
    recs = sorted(kcat_consume_all(bs, topic), key=lambda r: r.offset)
    assert [r.offset for r in recs] == list(range(150))
    times = [r.timestamp for r in recs]

    def expected(ts):
        for r in recs:
            if r.timestamp >= ts:
                return r.offset
        return -1

    def query(ts):
        res = subprocess.run([KCAT, "-Q", "-b", bs, "-t", f"{topic}:0:{ts}"], capture_output=True,
                             timeout=60)
        assert res.returncode == 0, res.stderr.decode()
        m = re.search(rb"\[0\]\s+offset\s+(-?\d+)", res.stdout)
        assert m, res.stdout
        return int(m.group(1))

    targets = sorted({times[0] - 5000, times[0], times[49], times[49] + 1, times[50], times[100],
                      times[-1], times[-1] + 1, times[-1] + 60_000})
    for ts in targets:
        assert query(ts) == expected(ts), f"ListOffsets for timestamp {ts}"
    assert expected(times[-1] + 1) == -1  # the "no such record" answer is exercised too
