"""Shared pieces of the suites that drive a client through a driver program (the kafkajs node
driver tests/compat/js/driver.js and the Java driver tests/compat/java/Driver.java).

Both drivers speak the same subcommands (produce, consume, admin, group-member) with `--name value`
arguments and answer in JSON lines. Records are derived from their index (key, value, two headers,
CreateTime timestamp), so the consuming side verifies every record it reads and reports counts,
mismatches, duplicates and out-of-order records per partition.

A suite subclasses ``Driver`` (how to start the driver, and the facts in which the clients differ)
and calls the scenario functions below from its own test functions.
"""
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

from harness import unique_topic, wait_until
from scenarios import CODECS, DAY_MS, now_ms  # noqa: F401  (re-exported for the suites)


def _argv(args):
    out = []
    for k, v in args.items():
        if v is None or v is False:
            continue
        for x in (v if isinstance(v, list) else [v]):
            out += [f"--{k}"] if x is True else [f"--{k}", str(x)]
    return out


class Driver:
    """One client's driver program. Subclasses provide ``argv`` and the per-client facts."""

    prefix = "drv"  # topic and group names start with it
    consume_end = "end"  # `ended` of a consume that read every expected record
    reports_errors = True  # produce answers carry `errors` and `first_error`
    error_key = "name"  # the field of an admin error that names it
    invalid_partitions = "InvalidPartitionsException"
    group_batch = None  # --batch of the produce steps of the group scenario (None: the default)

    def argv(self, cmd, **args):
        raise NotImplementedError

    @staticmethod
    def timestamp_answer(offset, timestamp, end):
        """What offsets_by_timestamp answers for one partition: the first record at or after the
        timestamp (offset, timestamp), or with none (offset and timestamp None) the end offset."""
        raise NotImplementedError

    def run(self, cmd, timeout=240, **args):
        """Runs one driver command and returns its JSON answer (the last stdout line)."""
        proc = subprocess.run(self.argv(cmd, **args), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        assert proc.returncode == 0 and lines, (
            f"driver {cmd} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        return json.loads(lines[-1])

    def produce(self, count, **args):
        """Runs `produce` and checks that every record was acknowledged."""
        r = self.run("produce", count=count, **args)
        if self.reports_errors:
            assert r["errors"] == 0, r["first_error"]
        assert r["acked"] == count, r
        return r

    def admin(self, bootstrap, *ops, timeout=120):
        return self.run("admin", timeout=timeout, bootstrap=bootstrap, ops=json.dumps(list(ops)))

    def admin1(self, bootstrap, op):
        """One admin operation that must succeed; returns its result."""
        [r] = self.admin(bootstrap, op)
        assert r["ok"], f"admin {op} failed: {r['error']}"
        return r["result"]

    def failed_with(self, r, name):
        return not r["ok"] and r["error"][self.error_key] == name

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
        # A record that failed verification has no index: null (node) or -1 (Java).
        return {i for e in self._of("records") for i in e["idx"] if i is not None and i >= 0}

    def first_offsets(self):
        first = {}
        for e in self._of("records"):
            first.setdefault(e["p"], e["offsets"][0])
        return first

    def mismatches(self):
        with self.lock:
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


def end_offsets(drv, bootstrap, topic):
    return {int(p): v["high"] for p, v in drv.admin1(bootstrap, {"op": "end_offsets", "topic": topic}).items()}


def topic_partitions(drv, bootstrap, topic):
    return drv.admin1(bootstrap, {"op": "describe_topic", "topic": topic})["partitions"]


# ------------------------------------------------------------------------------------ scenarios


def produce_consume_100k(drv, broker, codec):
    """100,000 records with keys, headers and timestamps survive a round trip with ``codec``."""
    n = 100_000
    topic = unique_topic(f"{drv.prefix}-{codec}")
    drv.admin1(broker.bootstrap, {"op": "create_topic", "topic": topic, "partitions": 4})
    ts_base = now_ms() - DAY_MS
    drv.produce(n, bootstrap=broker.bootstrap, topic=topic, compression=codec, **{"ts-base": ts_base})
    assert sum(end_offsets(drv, broker.bootstrap, topic).values()) == n
    c = drv.run("consume", bootstrap=broker.bootstrap, topic=topic, expect=n, timeout=200,
                **{"ts-base": ts_base})
    assert c["ended"] == drv.consume_end, c
    assert_clean(c, n)
    assert c["records"] == n
    assert len(c["partitions"]) == 4, c["partitions"]


def consumer_group_rebalance_and_restart(drv, target_kind, broker_factory, tmp_path):
    """3 members over 12 partitions; one leaves, one is SIGKILLed, every record is consumed;
    after a broker restart the committed offsets are intact and a new member resumes from them."""
    b = broker_factory(target_kind)
    topic, group = unique_topic(f"{drv.prefix}-grp"), unique_topic(f"{drv.prefix}-g")
    drv.admin1(b.bootstrap, {"op": "create_topic", "topic": topic, "partitions": 12})
    ts_base = now_ms() - DAY_MS
    members = []

    def spawn(name):
        m = drv.member(b.bootstrap, topic, group, ts_base, tmp_path, name)
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

    def consumed_all(upto):
        return lambda: set(range(upto)) <= set().union(*[m.indexes() for m in members])

    def produce(start, count):
        drv.produce(count, bootstrap=b.bootstrap, topic=topic, start=start, batch=drv.group_batch,
                    **{"ts-base": ts_base})

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

        ends = end_offsets(drv, b.bootstrap, topic)
        assert sum(ends.values()) == 9000
        committed = {int(p): o for p, o in drv.admin1(
            b.bootstrap, {"op": "fetch_committed", "group": group, "topic": topic}).items()}
        assert committed == ends, f"committed {committed} != end offsets {ends}"

        b.restart()

        def committed_after_restart():
            [r] = drv.admin(b.bootstrap, {"op": "fetch_committed", "group": group, "topic": topic})
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


def admin_topics(drv, broker, create_configs, check_created_again, check_configs):
    """Creates a topic with ``create_configs`` (then again: ``check_created_again(answer)``), lists
    and describes it, hands it to ``check_configs(bootstrap, topic)``, grows it from 3 to 6
    partitions (shrinking or keeping the count is refused) and deletes it. Returns the topic."""
    bs = broker.bootstrap
    topic = unique_topic(f"{drv.prefix}-adm")
    [created, again] = drv.admin(
        bs,
        {"op": "create_topic", "topic": topic, "partitions": 3, "configs": create_configs},
        {"op": "create_topic", "topic": topic, "partitions": 3})
    assert created == {"ok": True, "result": True}
    check_created_again(again)
    assert topic in drv.admin1(bs, {"op": "list_topics"})
    assert [p["partition"] for p in topic_partitions(drv, bs, topic)] == [0, 1, 2]

    check_configs(bs, topic)

    drv.admin1(bs, {"op": "create_partitions", "topic": topic, "count": 6})
    wait_until(lambda: len(topic_partitions(drv, bs, topic)) == 6, 30, "6 partitions in the metadata")
    [down, same] = drv.admin(bs, {"op": "create_partitions", "topic": topic, "count": 4},
                             {"op": "create_partitions", "topic": topic, "count": 6})
    assert drv.failed_with(down, drv.invalid_partitions), down
    assert drv.failed_with(same, drv.invalid_partitions), same
    assert len(topic_partitions(drv, bs, topic)) == 6

    drv.admin1(bs, {"op": "delete_topic", "topic": topic})
    wait_until(lambda: topic not in drv.admin1(bs, {"op": "list_topics"}), 30, "the topic to disappear")
    return topic


CONFIG_NAMES = ["retention.ms", "cleanup.policy", "max.message.bytes"]


def created_configs_then_legacy_alter(drv, bs, topic, between=None):
    """The configs of a topic ``admin_topics`` created, then (after ``between(drv, bs, topic)``,
    if given) the legacy AlterConfigs of two of them: what it does not name returns to its
    default."""
    def described():
        return drv.admin1(bs, {"op": "describe_configs", "topic": topic, "names": CONFIG_NAMES})

    cfg = described()
    assert cfg["retention.ms"] == {"value": "3600000", "default": False}
    assert cfg["max.message.bytes"] == {"value": "500000", "default": False}
    assert cfg["cleanup.policy"] == {"value": "delete", "default": True}
    if between is not None:
        between(drv, bs, topic)
    drv.admin1(bs, {"op": "alter_configs", "topic": topic,
                    "configs": {"retention.ms": 7200000, "cleanup.policy": "compact"}})
    cfg = described()
    assert cfg["retention.ms"] == {"value": "7200000", "default": False}
    assert cfg["cleanup.policy"] == {"value": "compact", "default": False}
    assert cfg["max.message.bytes"] == {"value": "1048588", "default": True}


def offsets_by_timestamp(drv, broker):
    """Offset lookups by timestamp, before, at, between and past the records of 3 partitions; each
    partition's answer is ``drv.timestamp_answer`` of the first record at or after the timestamp."""
    bs = broker.bootstrap
    topic = unique_topic(f"{drv.prefix}-ts")
    parts, n, step = 3, 300, 1000
    drv.admin1(bs, {"op": "create_topic", "topic": topic, "partitions": parts})
    base = now_ms() - DAY_MS
    # Record i goes to partition i % 3 (offset i // 3) with timestamp base + 1000 * i.
    drv.produce(n, bootstrap=bs, topic=topic, partitions=parts, partitioner="mod",
                **{"ts-base": base, "ts-step": step})

    def expected(ts):
        out = {}
        for p in range(parts):
            hits = [i for i in range(p, n, parts) if base + step * i >= ts]
            out[p] = (drv.timestamp_answer(hits[0] // parts, base + step * hits[0], n // parts) if hits
                      else drv.timestamp_answer(None, None, n // parts))
        return out

    queries = [base - 5000, base, base + step * 150, base + step * 151 + 1, base + step * (n - 1),
               base + step * n + 1]
    results = drv.admin(bs, *[{"op": "offsets_by_timestamp", "topic": topic, "timestamp": ts} for ts in queries])
    for ts, r in zip(queries, results):
        assert r["ok"], r
        got = {int(p): o for p, o in r["result"].items()}
        assert got == expected(ts), f"timestamp base+{ts - base}: {got} != {expected(ts)}"
