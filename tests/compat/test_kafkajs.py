"""kafkajs (2.2.x) against each target broker.

kafkajs runs in a node driver (tests/compat/js/driver.js, installed by tests/env/install/node.sh)
that pytest invokes per step with JSON in and out. Records are derived from their index (key,
value, two headers, CreateTime timestamp), so the consuming side verifies every record it reads
and reports counts, mismatches, duplicates and out-of-order records per partition.
"""
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness import unique_topic, wait_until

HERE = Path(__file__).resolve().parent
JS_DIR = HERE / "js"
ROOT = HERE.parents[1]
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
DAY_MS = 24 * 3600 * 1000


def now_ms():
    return int(time.time() * 1000)


@pytest.fixture(scope="session")
def js():
    """The node driver, installed (npm ci) on first use."""
    proc = subprocess.run(["bash", str(ROOT / "tests/env/install/node.sh")], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, f"tests/env/install/node.sh failed:\n{proc.stderr[-4000:]}"
    return JsDriver()


def _argv(args):
    out = []
    for k, v in args.items():
        if v is None or v is False:
            continue
        for x in (v if isinstance(v, list) else [v]):
            out += [f"--{k}"] if x is True else [f"--{k}", str(x)]
    return out


class JsDriver:
    def argv(self, cmd, **args):
        return ["node", str(JS_DIR / "driver.js"), cmd] + _argv(args)

    def run(self, cmd, timeout=240, **args):
        """Runs one driver command and returns its JSON answer (the last stdout line)."""
        proc = subprocess.run(self.argv(cmd, **args), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        assert proc.returncode == 0 and lines, (
            f"driver {cmd} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        return json.loads(lines[-1])

    def admin(self, bootstrap, *ops, timeout=120):
        return self.run("admin", timeout=timeout, bootstrap=bootstrap, ops=json.dumps(list(ops)))

    def admin1(self, bootstrap, op):
        """One admin operation that must succeed; returns its result."""
        [r] = self.admin(bootstrap, op)
        assert r["ok"], f"admin {op} failed: {r['error']}"
        return r["result"]

    def member(self, bootstrap, topic, group, ts_base, log_dir, name):
        return Member(self.argv("group-member", bootstrap=bootstrap, topic=topic, group=group,
                                **{"session-timeout": 6000, "ts-base": ts_base}), log_dir, name)


class Member:
    """A group member in its own process; its JSON-line events are collected by a reader thread."""

    def __init__(self, argv, log_dir, name):
        self.name = name
        self.stderr = open(Path(log_dir) / f"{name}.stderr", "w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        self.events = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                with self.lock:
                    self.events.append(json.loads(line))

    def _of(self, ev):
        with self.lock:
            return [e for e in self.events if e.get("ev") == ev]

    def assignment(self):
        a = self._of("assigned")
        return set(a[-1]["partitions"]) if a else None

    def indexes(self):
        return {i for e in self._of("records") for i in e["idx"] if i is not None}

    def first_offsets(self):
        first = {}
        for e in self._of("records"):
            first.setdefault(e["p"], e["offsets"][0])
        return first

    def mismatches(self):
        return max([e.get("mismatches", 0) for e in self.events] or [0])

    def leave(self, timeout=60):
        """Graceful stop: closing stdin makes the member leave the group and exit."""
        self.proc.stdin.close()
        wait_until(lambda: self.proc.poll() is not None, timeout, f"member {self.name} to leave")
        self.reader.join(timeout)
        assert self.proc.returncode == 0, f"member {self.name} exited with {self.proc.returncode}"
        assert self._of("stopped"), f"member {self.name} did not report its graceful stop"

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.reader.join(30)

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.stderr.close()
        # Shown by pytest only when the test failed.
        tail = Path(self.stderr.name).read_text(errors="replace").splitlines()[-20:]
        print(f"--- member {self.name} (exit {self.proc.returncode}), stderr tail:", *tail, sep="\n")


def assert_clean(summary, expect):
    assert summary["mismatches"] == 0, summary["first_mismatch"]
    assert summary["duplicates"] == 0, summary
    assert summary["out_of_order"] == 0, summary
    assert summary["out_of_range"] == 0, summary
    assert summary["distinct"] == expect, summary


def end_offsets(js, bootstrap, topic):
    return {int(p): v["high"] for p, v in js.admin1(bootstrap, {"op": "end_offsets", "topic": topic}).items()}


# ------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_100k(js, broker, codec):
    """100,000 records with keys, headers and timestamps survive a round trip per codec."""
    n = 100_000
    topic = unique_topic(f"kjs-{codec}")
    js.admin1(broker.bootstrap, {"op": "create_topic", "topic": topic, "partitions": 4})
    ts_base = now_ms() - DAY_MS
    p = js.run("produce", bootstrap=broker.bootstrap, topic=topic, count=n, compression=codec,
               **{"ts-base": ts_base})
    assert p["acked"] == n
    assert sum(end_offsets(js, broker.bootstrap, topic).values()) == n
    c = js.run("consume", bootstrap=broker.bootstrap, topic=topic, expect=n, timeout=200,
               **{"ts-base": ts_base})
    assert c["ended"] == "complete", c
    assert_clean(c, n)
    assert c["records"] == n
    assert len(c["partitions"]) == 4, c["partitions"]


def test_consumer_group_rebalance_and_restart(js, target_kind, broker_factory, tmp_path):
    """3 members over 12 partitions; one leaves, one is SIGKILLed, every record is consumed;
    after a broker restart the committed offsets are intact and a new member resumes from them."""
    b = broker_factory(target_kind)
    topic, group = unique_topic("kjs-grp"), unique_topic("kjs-g")
    js.admin1(b.bootstrap, {"op": "create_topic", "topic": topic, "partitions": 12})
    ts_base = now_ms() - DAY_MS
    members = []

    def spawn(name):
        m = js.member(b.bootstrap, topic, group, ts_base, tmp_path, name)
        members.append(m)
        return m

    def balanced(ms):
        def check():
            assigned = [m.assignment() for m in ms]
            if any(a is None for a in assigned):
                return False
            # Every partition owned once, in equal shares (both assignors in use split 12 evenly).
            return (set().union(*assigned) == set(range(12))
                    and all(len(a) == 12 // len(ms) for a in assigned))
        return check

    def consumed_all(upto, ms=None):
        return lambda: set(range(upto)) <= set().union(*[m.indexes() for m in (ms or members)])

    def produce(start, count):
        r = js.run("produce", bootstrap=b.bootstrap, topic=topic, count=count, start=start, batch=500,
                   **{"ts-base": ts_base})
        assert r["acked"] == count

    try:
        a, bm, c = spawn("a"), spawn("b"), spawn("c")
        wait_until(balanced([a, bm, c]), 90, "3 members sharing 12 partitions")
        produce(0, 3000)
        wait_until(consumed_all(3000), 90, "records 0..3000 consumed by the group")

        a.leave()
        wait_until(balanced([bm, c]), 60, "2 members sharing 12 partitions after a graceful leave")
        produce(3000, 3000)
        wait_until(consumed_all(6000), 90, "records 0..6000 consumed after the leave")

        bm.kill9()
        produce(6000, 3000)  # part of it lands on the dead member's partitions
        wait_until(lambda: c.assignment() == set(range(12)), 60,
                   "the survivor to own all 12 partitions after the session timeout")
        wait_until(consumed_all(9000), 90, "records 0..9000 consumed after the SIGKILL")
        c.leave()
        assert all(m.mismatches() == 0 for m in members), [m.mismatches() for m in members]

        ends = end_offsets(js, b.bootstrap, topic)
        assert sum(ends.values()) == 9000
        committed = {int(p): o for p, o in js.admin1(
            b.bootstrap, {"op": "fetch_committed", "group": group, "topic": topic}).items()}
        assert committed == ends, f"committed {committed} != end offsets {ends}"

        b.restart()

        def committed_after_restart():
            [r] = js.admin(b.bootstrap, {"op": "fetch_committed", "group": group, "topic": topic})
            return r["ok"] and {int(p): o for p, o in r["result"].items()}
        after = wait_until(committed_after_restart, 90, "committed offsets readable after the restart")
        assert after == committed

        produce(9000, 1200)
        d = spawn("d")
        wait_until(lambda: set(range(9000, 10200)) <= d.indexes(), 90, "the resumed member to read 9000..10200")
        d.leave()
        assert min(d.indexes()) >= 9000, "the resumed member re-read records before its committed offsets"
        assert d.mismatches() == 0
        for p, first in d.first_offsets().items():
            assert first == committed[p], f"partition {p}: resumed at {first}, committed {committed[p]}"
    finally:
        for m in members:
            m.cleanup()


def test_admin_topics(js, broker):
    bs = broker.bootstrap
    topic = unique_topic("kjs-adm")
    [created, again] = js.admin(
        bs,
        {"op": "create_topic", "topic": topic, "partitions": 3,
         "configs": {"retention.ms": 3600000, "max.message.bytes": 500000}},
        {"op": "create_topic", "topic": topic, "partitions": 3})
    assert created == {"ok": True, "result": True}
    # kafkajs answers `false` for a topic that already exists (TOPIC_ALREADY_EXISTS).
    assert again == {"ok": True, "result": False}
    assert topic in js.admin1(bs, {"op": "list_topics"})
    assert len(js.admin1(bs, {"op": "describe_topic", "topic": topic})["partitions"]) == 3

    names = ["retention.ms", "cleanup.policy", "max.message.bytes"]
    cfg = js.admin1(bs, {"op": "describe_configs", "topic": topic, "names": names})
    assert cfg["retention.ms"] == {"value": "3600000", "default": False}
    assert cfg["max.message.bytes"] == {"value": "500000", "default": False}
    assert cfg["cleanup.policy"] == {"value": "delete", "default": True}

    js.admin1(bs, {"op": "alter_configs", "topic": topic,
                   "configs": {"retention.ms": 7200000, "cleanup.policy": "compact"}})
    cfg = js.admin1(bs, {"op": "describe_configs", "topic": topic, "names": names})
    assert cfg["retention.ms"] == {"value": "7200000", "default": False}
    assert cfg["cleanup.policy"] == {"value": "compact", "default": False}
    # kafkajs uses the (non-incremental) AlterConfigs API: entries not named return to their default.
    assert cfg["max.message.bytes"] == {"value": "1048588", "default": True}

    js.admin1(bs, {"op": "create_partitions", "topic": topic, "count": 6})
    wait_until(lambda: len(js.admin1(bs, {"op": "describe_topic", "topic": topic})["partitions"]) == 6,
               30, "6 partitions in the metadata")
    [down, same] = js.admin(bs, {"op": "create_partitions", "topic": topic, "count": 4},
                            {"op": "create_partitions", "topic": topic, "count": 6})
    assert not down["ok"] and down["error"]["type"] == "INVALID_PARTITIONS", down
    assert not same["ok"] and same["error"]["type"] == "INVALID_PARTITIONS", same
    assert len(js.admin1(bs, {"op": "describe_topic", "topic": topic})["partitions"]) == 6

    js.admin1(bs, {"op": "delete_topic", "topic": topic})
    wait_until(lambda: topic not in js.admin1(bs, {"op": "list_topics"}), 30, "the topic to disappear")


def test_offsets_by_timestamp(js, broker):
    bs = broker.bootstrap
    topic = unique_topic("kjs-ts")
    parts, n, step = 3, 300, 1000
    js.admin1(bs, {"op": "create_topic", "topic": topic, "partitions": parts})
    base = now_ms() - DAY_MS
    # Record i goes to partition i % 3 (offset i // 3) with timestamp base + 1000 * i.
    js.run("produce", bootstrap=bs, topic=topic, count=n, partitions=parts, partitioner="mod",
           **{"ts-base": base, "ts-step": step})

    def expected(ts):
        out = {}
        for p in range(parts):
            hits = [i // parts for i in range(p, n, parts) if base + step * i >= ts]
            out[p] = hits[0] if hits else n // parts  # none: kafkajs answers the end offset
        return out

    queries = [base - 5000, base, base + step * 150, base + step * 151 + 1, base + step * (n - 1),
               base + step * n + 1]
    results = js.admin(bs, *[{"op": "offsets_by_timestamp", "topic": topic, "timestamp": ts} for ts in queries])
    for ts, r in zip(queries, results):
        assert r["ok"], r
        got = {int(p): o for p, o in r["result"].items()}
        assert got == expected(ts), f"timestamp base+{ts - base}: {got} != {expected(ts)}"
