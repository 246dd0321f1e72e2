"""The Apache Kafka Java client (kafka-clients 4.x) against each target broker.

The client runs in a small Java driver (tests/compat/java/Driver.java, compiled by
tests/env/install/java-client.sh against the jars of tests/env/install/kafka.sh) that pytest
invokes per step with JSON in and out. Records are derived from their index (key, value, two
headers, CreateTime timestamp), so the consuming side verifies every record it reads and reports
counts, mismatches, duplicates and out-of-order records per partition.
"""
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness import free_ports, unique_topic, wait_until

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
DAY_MS = 24 * 3600 * 1000
JVM_FLAGS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx384m"]


def now_ms():
    return int(time.time() * 1000)


@pytest.fixture(scope="session")
def jd():
    """The Java driver, compiled on first use (and again whenever Driver.java changes)."""
    proc = subprocess.run(["bash", str(ROOT / "tests/env/install/java-client.sh")], capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, f"tests/env/install/java-client.sh failed:\n{proc.stderr[-4000:]}"
    return JavaDriver(proc.stdout.strip().splitlines()[-1])


def _argv(args):
    out = []
    for k, v in args.items():
        if v is None or v is False:
            continue
        for x in (v if isinstance(v, list) else [v]):
            out += [f"--{k}"] if x is True else [f"--{k}", str(x)]
    return out


class JavaDriver:
    def __init__(self, classpath):
        self.classpath = classpath

    def argv(self, cmd, **args):
        return ["java", *JVM_FLAGS, "-cp", self.classpath, "Driver", cmd] + _argv(args)

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
    """A group member in its own JVM; its JSON-line events are collected by a reader thread."""

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
        return {i for e in self._of("records") for i in e["idx"] if i >= 0}

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


def end_offsets(jd, bootstrap, topic):
    return {int(p): v["high"] for p, v in jd.admin1(bootstrap, {"op": "end_offsets", "topic": topic}).items()}


# ------------------------------------------------------------------------------------ proxy


class DroppingProxy:
    """A TCP proxy on 127.0.0.1 in front of one broker that understands Kafka request framing.

    While armed, each time another ``every`` bytes of Produce requests went through, it breaks the
    connection that carried the Produce request completing the step, alternating two ways:
    "response_lost" forwards the whole request and then drops the connection when the broker's
    response to it (same correlation id) arrives, so the broker has applied a request the client
    never hears about; "request_cut" forwards half of the request and drops the connection.
    """

    PRODUCE = 0

    def __init__(self, listen_port, target_port, every, max_drops):
        self.target_port = target_port
        self.every = every
        self.max_drops = max_drops
        self.armed = False
        self.lock = threading.Lock()
        self.produce_bytes = 0
        self.next_drop_at = every
        self.drops = {"response_lost": 0, "request_cut": 0}
        self.connections = 0
        self.closed = False
        self.socks = set()
        self.listener = socket.create_server(("127.0.0.1", listen_port))
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def total_drops(self):
        with self.lock:
            return sum(self.drops.values())

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            state = {"kill_corr": None}
            with self.lock:
                self.connections += 1
                self.socks.update((client, server))
            threading.Thread(target=self._up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, state), daemon=True).start()

    @staticmethod
    def _read_exact(sock, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _drop(self, *socks):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _up(self, client, server, state):
        try:
            while True:
                head = self._read_exact(client, 4)
                if head is None:
                    break
                body = self._read_exact(client, int.from_bytes(head, "big"))
                if body is None:
                    break
                api_key = int.from_bytes(body[0:2], "big")
                corr = int.from_bytes(body[4:8], "big", signed=True)
                mode = None
                if api_key == self.PRODUCE:
                    with self.lock:
                        self.produce_bytes += len(body)
                        if (self.armed and self.produce_bytes >= self.next_drop_at
                                and sum(self.drops.values()) < self.max_drops):
                            self.next_drop_at = self.produce_bytes + self.every
                            mode = "response_lost" if sum(self.drops.values()) % 2 == 0 else "request_cut"
                            if mode == "request_cut":
                                self.drops[mode] += 1
                if mode == "request_cut":
                    server.sendall(head + body[: len(body) // 2])
                    self._drop(client, server)
                    return
                if mode == "response_lost":
                    state["kill_corr"] = corr
                server.sendall(head + body)
        except OSError:
            pass
        self._drop(client, server)

    def _down(self, server, client, state):
        try:
            while True:
                head = self._read_exact(server, 4)
                if head is None:
                    break
                body = self._read_exact(server, int.from_bytes(head, "big"))
                if body is None:
                    break
                corr = int.from_bytes(body[0:4], "big", signed=True)
                if state["kill_corr"] is not None and corr == state["kill_corr"]:
                    with self.lock:
                        self.drops["response_lost"] += 1
                    break
                client.sendall(head + body)
        except OSError:
            pass
        self._drop(client, server)

    def close(self):
        self.closed = True
        self._drop(self.listener)
        with self.lock:
            socks = list(self.socks)
        self._drop(*socks)


# ------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_100k(jd, broker, codec):
    """100,000 records with keys, headers and timestamps survive a round trip per codec."""
    n = 100_000
    topic = unique_topic(f"java-{codec}")
    jd.admin1(broker.bootstrap, {"op": "create_topic", "topic": topic, "partitions": 4})
    ts_base = now_ms() - DAY_MS
    p = jd.run("produce", bootstrap=broker.bootstrap, topic=topic, count=n, compression=codec,
               **{"ts-base": ts_base})
    assert p["errors"] == 0, p["first_error"]
    assert p["acked"] == n
    assert sum(end_offsets(jd, broker.bootstrap, topic).values()) == n
    c = jd.run("consume", bootstrap=broker.bootstrap, topic=topic, expect=n, timeout=200,
               **{"ts-base": ts_base})
    assert c["ended"] == "end", c
    assert_clean(c, n)
    assert c["records"] == n
    assert len(c["partitions"]) == 4, c["partitions"]


def test_consumer_group_rebalance_and_restart(jd, target_kind, broker_factory, tmp_path):
    """3 members over 12 partitions; one leaves, one is SIGKILLed, every record is consumed;
    after a broker restart the committed offsets are intact and a new member resumes from them."""
    b = broker_factory(target_kind)
    topic, group = unique_topic("java-grp"), unique_topic("java-g")
    jd.admin1(b.bootstrap, {"op": "create_topic", "topic": topic, "partitions": 12})
    ts_base = now_ms() - DAY_MS
    members = []

    def spawn(name):
        m = jd.member(b.bootstrap, topic, group, ts_base, tmp_path, name)
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
        r = jd.run("produce", bootstrap=b.bootstrap, topic=topic, count=count, start=start,
                   **{"ts-base": ts_base})
        assert r["errors"] == 0 and r["acked"] == count, r

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

        ends = end_offsets(jd, b.bootstrap, topic)
        assert sum(ends.values()) == 9000
        committed = {int(p): o for p, o in jd.admin1(
            b.bootstrap, {"op": "fetch_committed", "group": group, "topic": topic}).items()}
        assert committed == ends, f"committed {committed} != end offsets {ends}"

        b.restart()

        def committed_after_restart():
            [r] = jd.admin(b.bootstrap, {"op": "fetch_committed", "group": group, "topic": topic})
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


def test_admin_topics(jd, broker):
    bs = broker.bootstrap
    topic = unique_topic("java-adm")
    [created, again] = jd.admin(
        bs,
        {"op": "create_topic", "topic": topic, "partitions": 3, "configs": {"retention.ms": 3600000}},
        {"op": "create_topic", "topic": topic, "partitions": 3})
    assert created == {"result": True, "ok": True}
    assert not again["ok"] and again["error"]["name"] == "TopicExistsException", again
    assert topic in jd.admin1(bs, {"op": "list_topics"})
    assert [p["partition"] for p in jd.admin1(bs, {"op": "describe_topic", "topic": topic})["partitions"]] == [0, 1, 2]

    cfg = jd.admin1(bs, {"op": "describe_configs", "topic": topic})
    assert cfg["retention.ms"]["value"] == "3600000"
    assert cfg["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG"
    assert cfg["cleanup.policy"]["value"] == "delete"

    jd.admin1(bs, {"op": "alter_configs", "topic": topic,
                   "configs": {"cleanup.policy": "compact", "max.message.bytes": 500000}})
    cfg = jd.admin1(bs, {"op": "describe_configs", "topic": topic})
    assert cfg["cleanup.policy"]["value"] == "compact"
    assert cfg["max.message.bytes"]["value"] == "500000"
    assert cfg["retention.ms"]["value"] == "3600000"  # incremental: untouched entries stay
    jd.admin1(bs, {"op": "alter_configs", "topic": topic, "delete": ["retention.ms"]})
    cfg = jd.admin1(bs, {"op": "describe_configs", "topic": topic})
    assert cfg["retention.ms"]["value"] == "604800000" and cfg["retention.ms"]["default"] is True, cfg["retention.ms"]
    [bad] = jd.admin(bs, {"op": "alter_configs", "topic": topic, "configs": {"cleanup.policy": "bogus"}})
    assert not bad["ok"] and bad["error"]["name"] == "InvalidConfigurationException", bad

    jd.admin1(bs, {"op": "create_partitions", "topic": topic, "count": 6})
    wait_until(lambda: len(jd.admin1(bs, {"op": "describe_topic", "topic": topic})["partitions"]) == 6,
               30, "6 partitions in the metadata")
    [down, same] = jd.admin(bs, {"op": "create_partitions", "topic": topic, "count": 4},
                            {"op": "create_partitions", "topic": topic, "count": 6})
    assert not down["ok"] and down["error"]["name"] == "InvalidPartitionsException", down
    assert not same["ok"] and same["error"]["name"] == "InvalidPartitionsException", same
    assert len(jd.admin1(bs, {"op": "describe_topic", "topic": topic})["partitions"]) == 6

    jd.admin1(bs, {"op": "delete_topic", "topic": topic})
    wait_until(lambda: topic not in jd.admin1(bs, {"op": "list_topics"}), 30, "the topic to disappear")
    [gone] = jd.admin(bs, {"op": "describe_topic", "topic": topic})
    assert not gone["ok"] and gone["error"]["name"] == "UnknownTopicOrPartitionException", gone


def test_offsets_for_times(jd, broker):
    bs = broker.bootstrap
    topic = unique_topic("java-ts")
    parts, n, step = 3, 300, 1000
    jd.admin1(bs, {"op": "create_topic", "topic": topic, "partitions": parts})
    base = now_ms() - DAY_MS
    # Record i goes to partition i % 3 (offset i // 3) with timestamp base + 1000 * i.
    r = jd.run("produce", bootstrap=bs, topic=topic, count=n, partitions=parts, partitioner="mod",
               **{"ts-base": base, "ts-step": step})
    assert r["errors"] == 0 and r["acked"] == n, r

    def expected(ts):
        out = {}
        for p in range(parts):
            hits = [i for i in range(p, n, parts) if base + step * i >= ts]
            out[p] = {"offset": hits[0] // parts, "timestamp": base + step * hits[0]} if hits else None
        return out

    queries = [base - 5000, base, base + step * 150, base + step * 151 + 1, base + step * (n - 1),
               base + step * n + 1]
    results = jd.admin(bs, *[{"op": "offsets_by_timestamp", "topic": topic, "timestamp": ts} for ts in queries])
    for ts, r in zip(queries, results):
        assert r["ok"], r
        got = {int(p): o for p, o in r["result"].items()}
        assert got == expected(ts), f"timestamp base+{ts - base}: {got} != {expected(ts)}"


def test_idempotent_producer_exactly_once_through_dropping_proxy(jd, target_kind, broker_factory):
    """The client with its defaults (enable.idempotence=true, acks=all) behind a proxy that breaks
    connections mid-produce, including after the broker applied a request whose response the client
    never got: every record ends up in the log exactly once, in order per partition."""
    n = 20_000
    broker_port, proxy_port = free_ports(2)
    proxy = DroppingProxy(proxy_port, broker_port, every=150_000, max_drops=8)
    try:
        b = broker_factory(target_kind, port=broker_port, advertised_port=proxy_port)
        bs = f"127.0.0.1:{proxy_port}"  # the broker advertises the proxy: all traffic goes through it
        topic = unique_topic("java-eos")
        jd.admin1(bs, {"op": "create_topic", "topic": topic, "partitions": 4})
        ts_base = now_ms() - DAY_MS
        proxy.armed = True
        p = jd.run("produce", timeout=280, bootstrap=bs, topic=topic, count=n, **{"ts-base": ts_base},
                   prop=["batch.size=8192"])
        proxy.armed = False
        assert p["errors"] == 0, p["first_error"]
        assert p["acked"] == n
        assert proxy.drops["response_lost"] >= 3 and proxy.drops["request_cut"] >= 3, proxy.drops
        assert proxy.connections > proxy.total_drops(), proxy.connections  # the client reconnected

        assert sum(end_offsets(jd, bs, topic).values()) == n, "the log holds duplicates or lost records"
        c = jd.run("consume", bootstrap=bs, topic=topic, expect=n, timeout=200, **{"ts-base": ts_base})
        assert c["ended"] == "end", c
        assert_clean(c, n)
        assert c["records"] == n
        assert b.running()
    finally:
        proxy.close()
