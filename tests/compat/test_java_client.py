"""The Apache Kafka Java client (kafka-clients 4.x) against each target broker.

The client runs in a small Java driver (tests/compat/java/Driver.java, compiled by
tests/env/install/java-client.sh against the jars of tests/env/install/kafka.sh) that pytest
invokes per step with JSON in and out; the scenarios shared with the kafkajs suite are in
driver_suite.py.
"""
import socket
import subprocess
import threading
from pathlib import Path

import pytest

import driver_suite as suite
from driver_suite import DAY_MS, assert_clean, end_offsets, now_ms
from harness import free_ports, unique_topic

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
JVM_FLAGS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx384m"]


@pytest.fixture(scope="session")
def jd():
    """The Java driver, compiled on first use (and again whenever Driver.java changes)."""
    proc = subprocess.run(["bash", str(ROOT / "tests/env/install/java-client.sh")], capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, f"tests/env/install/java-client.sh failed:\n{proc.stderr[-4000:]}"
    return JavaDriver(proc.stdout.strip().splitlines()[-1])


class JavaDriver(suite.Driver):
    prefix = "java"

    def __init__(self, classpath):
        self.classpath = classpath

    def argv(self, cmd, **args):
        return ["java", *JVM_FLAGS, "-cp", self.classpath, "Driver", cmd] + suite._argv(args)

    @staticmethod
    def timestamp_answer(offset, timestamp, end):
        # offsetsForTimes answers null for a partition without a record at or after the timestamp.
        return None if offset is None else {"offset": offset, "timestamp": timestamp}


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


@pytest.mark.parametrize("codec", suite.CODECS)
def test_produce_consume_100k(jd, broker, codec):
    suite.produce_consume_100k(jd, broker, codec)


def test_consumer_group_rebalance_and_restart(jd, target_kind, broker_factory, tmp_path):
    suite.consumer_group_rebalance_and_restart(jd, target_kind, broker_factory, tmp_path)


def test_admin_topics(jd, broker):
    def created_again(again):
        assert jd.failed_with(again, "TopicExistsException"), again

    def configs(bs, topic):
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
        assert jd.failed_with(bad, "InvalidConfigurationException"), bad

    topic = suite.admin_topics(jd, broker, {"retention.ms": 3600000}, created_again, configs)
    [gone] = jd.admin(broker.bootstrap, {"op": "describe_topic", "topic": topic})
    assert jd.failed_with(gone, "UnknownTopicOrPartitionException"), gone


def test_offsets_for_times(jd, broker):
    suite.offsets_by_timestamp(jd, broker)


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
