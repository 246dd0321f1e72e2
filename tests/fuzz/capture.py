"""Records the corpus of tests/fuzz/corpus: request frames as real clients send them and response
frames as real brokers answer them, through a recording proxy. Run it again when the clients or
the served API versions change; the frames it writes are committed.

    tests/env/... installed; cargo build --release
    $STRATA_VENV/bin/python tests/fuzz/capture.py

Each client (librdkafka through confluent-kafka, kafka-python, Kafka's Java tools) runs one
session of admin, produce (every codec), group consume and offset calls against a Strata broker
and against the reference Kafka broker, each behind a proxy that the broker advertises as its
address. Requests are kept from the Strata sessions (clients then use the versions Strata
serves); responses from both brokers. At most PER_VERSION frames per (client, API, version) and
only frames up to MAX_FRAME bytes are kept.
"""
from __future__ import annotations

import socket
import struct
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from harness import unique_topic  # noqa: E402
from harness.brokers import kafka_tool, make_broker  # noqa: E402
from harness.util import free_ports  # noqa: E402

CORPUS = HERE / "corpus"
PER_VERSION = 12
MAX_FRAME = 64 * 1024


class RecordingProxy:
    """Forwards 127.0.0.1:port to a broker and records every frame in both directions."""

    def __init__(self, upstream_port: int, port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.requests: list[tuple[int, int, bytes]] = []
        self.responses: list[tuple[int, int, bytes]] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closed = True
        self.sock.close()

    def take(self):
        with self.lock:
            req, resp = self.requests, self.responses
            self.requests, self.responses = [], []
        return req, resp

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            pending: dict[int, tuple[int, int]] = {}
            threading.Thread(target=self._pump, args=(client, server, pending, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, pending, False), daemon=True).start()

    @staticmethod
    def _read_exact(s, n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _pump(self, src, dst, pending, is_request):
        try:
            while True:
                size = struct.unpack(">i", self._read_exact(src, 4))[0]
                frame = self._read_exact(src, size)
                if is_request:
                    key, version, corr = struct.unpack(">hhi", frame[:8])
                    pending[corr] = (key, version)
                    with self.lock:
                        self.requests.append((key, version, frame))
                else:
                    corr = struct.unpack(">i", frame[:4])[0]
                    kv = pending.pop(corr, None)
                    if kv is not None:
                        with self.lock:
                            self.responses.append((kv[0], kv[1], frame))
                dst.sendall(struct.pack(">i", size) + frame)
        except (EOFError, OSError):
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def librdkafka_session(bs):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                       NewPartitions, NewTopic)
    admin = AdminClient({"bootstrap.servers": bs})
    topic = unique_topic("cap-rd")
    for f in admin.create_topics([NewTopic(topic, 3, 1, config={"retention.ms": "3600000"})]).values():
        f.result(30)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin.describe_configs([res])[res].result(30)
    inc = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("segment.ms", "600000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([inc])[inc].result(30)
    admin.create_partitions([NewPartitions(topic, 4)])[topic].result(30)
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        for acks in ("all", "1", "0"):
            p = Producer({"bootstrap.servers": bs, "compression.type": codec, "acks": acks,
                          "linger.ms": 5, "enable.idempotence": acks == "all"})
            for i in range(200):
                p.produce(topic, key=b"k%d" % i, value=b"v" * (i % 50), headers=[("h", b"%d" % i)],
                          partition=i % 4)
            p.flush(30)
    group = unique_topic("cap-rd-g")
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got, deadline = 0, time.time() + 30
    while got < 500 and time.time() < deadline:
        m = c.poll(1)
        if m is not None and not m.error():
            got += 1
    c.commit(asynchronous=False)
    c.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
    c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.offsets_for_times([TopicPartition(topic, p, int(time.time() * 1000) - 60000) for p in range(4)], timeout=10)
    # A position with a leader epoch makes librdkafka validate it (OffsetForLeaderEpoch).
    c.unsubscribe()
    c.assign([TopicPartition(topic, 0, 5, leader_epoch=0)])
    deadline = time.time() + 10
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            break
    c.close()
    admin.list_consumer_groups().result(30)
    admin.describe_consumer_groups([group])[group].result(30)
    admin.delete_consumer_groups([group])[group].result(30)
    admin.delete_records([TopicPartition(topic, 0, 10)])
    for f in admin.delete_topics([topic]).values():
        f.result(30)


def kafka_python_session(bs):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
    admin = KafkaAdminClient(bootstrap_servers=bs)
    topic = unique_topic("cap-kp")
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    admin.create_partitions({topic: NewPartitions(3)})
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "7200000"})])
    for codec in (None, "gzip", "snappy", "lz4", "zstd"):
        p = KafkaProducer(bootstrap_servers=bs, compression_type=codec, acks="all")
        for i in range(100):
            p.send(topic, key=b"k%d" % i, value=b"x" * i, headers=[("h", b"1")])
        p.flush(30)
        p.close()
    group = unique_topic("cap-kp-g")
    c = KafkaConsumer(topic, bootstrap_servers=bs, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=5000)
    for n, _ in enumerate(c):
        if n >= 300:
            break
    c.commit()
    c.offsets_for_times({TopicPartition(topic, 0): int(time.time() * 1000) - 60000})
    c.end_offsets([TopicPartition(topic, 0)])
    c.close()
    admin.list_groups()
    admin.describe_groups([group])
    admin.list_group_offsets(group)
    admin.describe_cluster()
    admin.delete_topics([topic])
    admin.close()


def java_tools_session(bs):
    topic = unique_topic("cap-java")
    kafka_tool("topics", "--bootstrap-server", bs, "--create", "--topic", topic,
               "--partitions", "2", "--config", "cleanup.policy=compact")
    kafka_tool("topics", "--bootstrap-server", bs, "--describe", "--topic", topic)
    kafka_tool("topics", "--bootstrap-server", bs, "--alter", "--topic", topic, "--partitions", "3")
    kafka_tool("configs", "--bootstrap-server", bs, "--entity-type", "topics", "--entity-name", topic,
               "--alter", "--add-config", "min.cleanable.dirty.ratio=0.2")
    kafka_tool("configs", "--bootstrap-server", bs, "--entity-type", "topics", "--entity-name", topic,
               "--describe")
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        kafka_tool("console-producer", "--bootstrap-server", bs, "--topic", topic,
                   "--property", "parse.key=true", "--property", "key.separator=:",
                   "--compression-codec", codec,
                   input="".join(f"k{i}:value-{i}\n" for i in range(50)))
    group = unique_topic("cap-java-g")
    kafka_tool("console-consumer", "--bootstrap-server", bs, "--topic", topic, "--group", group,
               "--from-beginning", "--max-messages", "100", "--timeout-ms", "20000")
    kafka_tool("consumer-groups", "--bootstrap-server", bs, "--describe", "--group", group)
    kafka_tool("consumer-groups", "--bootstrap-server", bs, "--reset-offsets", "--group", group,
               "--topic", topic, "--to-earliest", "--execute")
    kafka_tool("get-offsets", "--bootstrap-server", bs, "--topic", topic, "--time", "-1")
    kafka_tool("broker-api-versions", "--bootstrap-server", bs)
    kafka_tool("topics", "--bootstrap-server", bs, "--delete", "--topic", topic)


SESSIONS = {"librdkafka": librdkafka_session, "kafka-python": kafka_python_session, "java": java_tools_session}


def keep(frames):
    """At most PER_VERSION frames of at most MAX_FRAME bytes per (API, version), spread over the run."""
    by = defaultdict(list)
    for key, version, frame in frames:
        if len(frame) <= MAX_FRAME:
            by[(key, version)].append((key, version, frame))
    out = []
    for kv in sorted(by):
        items = by[kv]
        step = max(1, len(items) // PER_VERSION)
        out.extend(items[::step][:PER_VERSION])
    return out


def write(path, frames):
    with open(path, "wb") as f:
        for key, version, frame in frames:
            f.write(struct.pack(">hhi", key, version, len(frame)) + frame)
    print(f"{path.name}: {len(frames)} frames, {path.stat().st_size} bytes")


def main():
    CORPUS.mkdir(exist_ok=True)
    props = {"group.initial.rebalance.delay.ms": "0", "offsets.topic.replication.factor": "1",
             "offsets.topic.num.partitions": "2", "num.partitions": "1",
             "transaction.state.log.replication.factor": "1", "transaction.state.log.min.isr": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("strata", "kafka"):
            proxy_port = free_ports(1)[0]
            broker = make_broker(kind, Path(tmp) / kind, props, advertised_port=proxy_port)
            broker.start()
            proxy = RecordingProxy(broker.port, proxy_port)
            try:
                for name, session in SESSIONS.items():
                    session(f"127.0.0.1:{proxy_port}")
                    time.sleep(1)  # let the last responses pass the proxy
                    requests, responses = proxy.take()
                    if kind == "strata":
                        write(CORPUS / f"{name}.requests.bin", keep(requests))
                    write(CORPUS / f"{name}-{kind}.responses.bin", keep(responses))
            finally:
                proxy.close()
                broker.stop()


if __name__ == "__main__":
    main()
