"""Kafka clients (librdkafka through confluent-kafka) on the host of the real-node cluster, run as
processes that resolve names through the cluster DNS (``ControlPlane.cluster_dns_command``), as a
machine inside the cluster network would: bootstrap through a Service name, then the brokers'
advertised pod names.

    kafka = HostKafka(cp)
    kafka.metadata("c-bootstrap.ns.svc:9092")          # {"brokers": {id: "host:port"}, ...}
    kafka.metadata(bootstrap, conf={"security.protocol": "SSL", ...})  # any command: client properties
    acked = kafka.produce(bootstrap, "t", 1000)        # [(partition, offset, value), ...]
    kafka.consume(bootstrap, "t", 1000)                # [(partition, offset, value), ...]
    kafka.consume(bootstrap, "t")                      # everything up to the end offsets
    kafka.describe_broker_configs(bootstrap, 0)        # {"log.retention.ms": "3600000", ...}
    kafka.fill(bootstrap, "t", 100000, 1024)           # a backlog, acks=1; returns its seconds
    kafka.catch_up(src, dst, "t", 6, client_id).result()  # samples of dst catching up with src
    with kafka.load(bootstrap, "t", seconds=60) as run:  # acks=all load in the background
        ...
    run.result()                                       # {"acked": [[p, o, "host.<seq>"], ...], "errors": {...}}

This file is also the client program itself (``python hostkafka.py COMMAND JSON``), which
prints one JSON document; it imports nothing from the harness so it runs from anywhere.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve()


# --- the client program ---------------------------------------------------------------------------

# Client properties every client of this run adds (security), from the ``conf`` argument.
EXTRA: dict = {}


def _conf(bootstrap: str, **extra) -> dict:
    return {"bootstrap.servers": bootstrap, "log_level": 3, **EXTRA, **extra}


def cmd_metadata(a: dict) -> dict:
    from confluent_kafka.admin import AdminClient
    admin = AdminClient(_conf(a["bootstrap"]))
    md = admin.list_topics(timeout=a.get("timeout", 20))
    return {"cluster_id": md.cluster_id, "controller_id": md.controller_id,
            "brokers": {str(b.id): f"{b.host}:{b.port}" for b in md.brokers.values()},
            "topics": {t: {str(p.id): {"leader": p.leader, "replicas": list(p.replicas), "isrs": list(p.isrs)}
                           for p in tm.partitions.values()}
                       for t, tm in md.topics.items() if not t.startswith("__")}}


def cmd_create_topic(a: dict) -> dict:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient(_conf(a["bootstrap"]))
    fut = admin.create_topics([NewTopic(a["topic"], a["partitions"], a["replication_factor"],
                                        config=a.get("config") or {})], operation_timeout=30)[a["topic"]]
    try:
        fut.result(timeout=60)
        return {"created": True}
    except KafkaException as e:  # the broker's answer, e.g. INVALID_REPLICATION_FACTOR
        err = e.args[0]
        return {"created": False, "error": err.name(), "message": err.str()}


def cmd_describe_broker_configs(a: dict) -> dict:
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
    admin = AdminClient(_conf(a["bootstrap"]))
    res = ConfigResource(ResourceType.BROKER, str(a["broker"]))
    configs = admin.describe_configs([res], request_timeout=30)[res].result(timeout=60)
    return {k: v.value for k, v in configs.items()}


def cmd_produce(a: dict) -> dict:
    from confluent_kafka import Producer
    p = Producer(_conf(a["bootstrap"], acks=a.get("acks", "all"), **{"enable.idempotence": True,
                                                                      "linger.ms": 5}))
    acked, errors = [], {}

    def report(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset(), msg.value().decode()))
        else:
            errors[err.name()] = errors.get(err.name(), 0) + 1
    prefix = a.get("prefix", "v")
    for i in range(a["count"]):
        while True:
            try:
                p.produce(a["topic"], key=f"k{i}".encode(), value=f"{prefix}-{i}".encode(), on_delivery=report)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(a.get("timeout", 60))
    return {"acked": acked, "errors": errors, "undelivered": left}


def cmd_consume(a: dict) -> dict:
    """Reads ``count`` records, or (count None) every partition up to its end offset at the start."""
    from confluent_kafka import Consumer, TopicPartition
    extra = {"client.id": a["client_id"]} if a.get("client_id") else {}
    c = Consumer(_conf(a["bootstrap"], **{"group.id": a.get("group", f"host-{os.getpid()}"),
                                          "auto.offset.reset": "earliest", "enable.auto.commit": False},
                       **extra))
    topic = a["topic"]
    md = c.list_topics(topic, timeout=20).topics[topic]
    if md.error is not None:
        raise SystemExit(f"topic {topic}: {md.error}")
    parts = sorted(md.partitions)
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1] for p in parts}
    next_offset = {p: 0 for p in parts}
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    want, records = a.get("count"), []

    def done():
        if want is not None:
            return len(records) >= want
        return all(next_offset[p] >= ends[p] for p in parts)
    deadline = time.monotonic() + a.get("timeout", 60)
    while not done() and time.monotonic() < deadline:
        for m in c.consume(500, timeout=1.0):
            if m.error() is None:
                records.append((m.partition(), m.offset(), m.value().decode()))
                next_offset[m.partition()] = m.offset() + 1
    if a.get("commit") and records:
        c.commit(asynchronous=False)
    c.close()
    return {"records": records, "ends": {str(p): e for p, e in ends.items()}}


def cmd_group_offsets(a: dict) -> dict:
    """Committed offsets of group ``group`` for ``topic``: {partition: offset}."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient
    conf = _conf(a["bootstrap"], **({"client.id": a["client_id"]} if a.get("client_id") else {}))
    admin = AdminClient(conf)
    parts = [TopicPartition(a["topic"], p) for p in range(a["partitions"])]
    fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(a["group"], parts)])[a["group"]]
    listed = fut.result(timeout=60)
    return {str(tp.partition): tp.offset for tp in listed.topic_partitions if tp.offset >= 0}


def cmd_load(a: dict) -> dict:
    """acks=all, idempotent producer at a steady rate until SIGTERM or ``seconds``; every delivery
    report recorded. Prints {"progress": acked, "errors": n} lines every second while it runs; the
    returned document is the last line."""
    from confluent_kafka import Producer
    p = Producer(_conf(a["bootstrap"], acks="all", **{
        "enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": a.get("message_timeout_ms", 120000),
        "metadata.max.age.ms": 5000, "reconnect.backoff.max.ms": 1000}))
    acked, errors = [], {}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    def report(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset(), msg.value().decode()))
        else:
            errors[err.name()] = errors.get(err.name(), 0) + 1
    rate, i = a.get("rate", 200), 0
    t0 = last = time.monotonic()
    end = t0 + a["seconds"]
    while not stop and time.monotonic() < end:
        due = int((time.monotonic() - t0) * rate)
        while i < due:
            try:
                # "<producer>.<seq>", the value format of the replication checker (harness/replication.py)
                p.produce(a["topic"], key=f"k{i}".encode(), value=f"{a.get('prefix', 'host')}.{i}".encode(),
                          on_delivery=report)
                i += 1
            except BufferError:
                break
        p.poll(0.05)
        if time.monotonic() - last >= 1:
            last = time.monotonic()
            print(json.dumps({"progress": len(acked), "errors": sum(errors.values())}), flush=True)
    left = p.flush(a.get("flush_timeout", 120))
    return {"sent": i, "acked": acked, "errors": errors, "undelivered": left}


def cmd_fill(a: dict) -> dict:
    """``count`` records of ``size`` bytes as fast as librdkafka sends them (acks=1): a backlog."""
    from confluent_kafka import Producer
    p = Producer(_conf(a["bootstrap"], acks=1, **{"linger.ms": 20, "batch.size": 1 << 20,
                                                   "queue.buffering.max.kbytes": 1 << 20}))
    errors = {}

    def report(err, msg):
        if err is not None:
            errors[err.name()] = errors.get(err.name(), 0) + 1
    value = b"x" * a["size"]
    t0 = time.monotonic()
    for i in range(a["count"]):
        while True:
            try:
                p.produce(a["topic"], key=f"k{i}".encode(), value=value, on_delivery=report)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(a.get("timeout", 120))
    return {"errors": errors, "undelivered": left, "seconds": time.monotonic() - t0}


def _ends(consumer, topic: str, partitions: int) -> int:
    from confluent_kafka import TopicPartition
    return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions))


def cmd_ends(a: dict) -> dict:
    """The sum of ``topic``'s end offsets over its ``partitions``, or null when it does not exist."""
    from confluent_kafka import Consumer, KafkaException
    c = Consumer(_conf(a["bootstrap"], **{"group.id": f"ends-{os.getpid()}", "client.id": a["client_id"]}))
    try:
        md = c.list_topics(a["topic"], timeout=20).topics[a["topic"]]
        if md.error is not None or len(md.partitions) < a["partitions"]:
            return {"end": None}
        return {"end": _ends(c, a["topic"], a["partitions"])}
    except KafkaException:
        return {"end": None}
    finally:
        c.close()


def cmd_catch_up(a: dict) -> dict:
    """Watches ``topic`` on ``target`` until its end offsets add up to those of ``source``
    (read once at the start): prints {"progress": 1} once it has read both, then returns the
    samples [[unix time, records on the target], ...] taken every 20 ms."""
    from confluent_kafka import Consumer
    conf = {"group.id": f"catch-up-{os.getpid()}", "client.id": a["client_id"]}
    src, dst = Consumer(_conf(a["source"], **conf)), Consumer(_conf(a["target"], **conf))
    want = _ends(src, a["topic"], a["partitions"])
    samples = [[time.time(), _ends(dst, a["topic"], a["partitions"])]]
    print(json.dumps({"progress": 1, "errors": 0}), flush=True)
    deadline = time.monotonic() + a["timeout"]
    while samples[-1][1] < want and time.monotonic() < deadline:
        time.sleep(0.02)  # sampling interval
        samples.append([time.time(), _ends(dst, a["topic"], a["partitions"])])
    src.close()
    dst.close()
    return {"source_end": want, "samples": samples}


COMMANDS = {"metadata": cmd_metadata, "create-topic": cmd_create_topic, "produce": cmd_produce,
            "consume": cmd_consume, "group-offsets": cmd_group_offsets,
            "describe-broker-configs": cmd_describe_broker_configs, "load": cmd_load, "fill": cmd_fill,
            "ends": cmd_ends, "catch-up": cmd_catch_up}


def main() -> None:
    args = json.loads(sys.argv[2])
    EXTRA.update(args.pop("conf", None) or {})
    out = COMMANDS[sys.argv[1]](args)
    print(json.dumps(out), flush=True)


# --- the test side --------------------------------------------------------------------------------

class HostKafka:
    """Runs the client program through ``cp.cluster_dns_command`` with the test's Python."""

    def __init__(self, cp, python: str | None = None):
        self.cp = cp
        self.python = python or sys.executable

    def command(self, name: str, **args) -> list[str]:
        # -I: the script's directory (harness/, whose operator.py would shadow the standard
        # library's) stays off sys.path
        return self.cp.cluster_dns_command([self.python, "-I", str(SCRIPT), name, json.dumps(args)])

    def run(self, name: str, timeout_s: float = 180, **args):
        proc = subprocess.run(self.command(name, **args), capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0:
            raise AssertionError(f"host client {name} {args} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.splitlines()[-1])

    def metadata(self, bootstrap: str, timeout: float = 20, conf: dict | None = None) -> dict:
        return self.run("metadata", bootstrap=bootstrap, timeout=timeout, conf=conf)

    def cluster_size(self, bootstrap: str, expected: int, settle: float = 60, timeout: float = 120) -> int:
        """How many brokers Metadata through ``bootstrap`` lists, waiting for ``expected``. A
        broker that lists only itself for ``settle`` seconds is a cluster of one (a broker that
        does not replicate yet); once two or more are listed, the rest get ``timeout``. Until the
        first answer, a failing client (the Service's name not in the cluster DNS yet, its
        endpoints not programmed yet) is retried for ``timeout``; its last error is raised then."""
        first_deadline = time.monotonic() + timeout
        while True:
            try:
                md = self.metadata(bootstrap)
                break
            except AssertionError:
                if time.monotonic() >= first_deadline:
                    raise
                time.sleep(1)  # poll interval of the deadline loop
        deadline, joining = time.monotonic() + settle, False
        while True:
            n = len(md["brokers"])
            if n >= expected:
                return n
            if n >= 2 and not joining:  # one cluster forming: give the others time to register
                deadline, joining = time.monotonic() + timeout, True
            if time.monotonic() >= deadline:
                return n
            time.sleep(0.5)  # poll interval of the deadline loop
            md = self.metadata(bootstrap)

    def create_topic(self, bootstrap: str, topic: str, partitions: int, replication_factor: int,
                     config: dict | None = None, conf: dict | None = None) -> dict:
        return self.run("create-topic", bootstrap=bootstrap, topic=topic, partitions=partitions,
                        replication_factor=replication_factor, config=config or {}, conf=conf)

    def produce(self, bootstrap: str, topic: str, count: int, prefix: str = "v",
                conf: dict | None = None) -> list[tuple]:
        out = self.run("produce", bootstrap=bootstrap, topic=topic, count=count, prefix=prefix, conf=conf)
        assert not out["errors"] and not out["undelivered"], f"produce to {topic}: {out['errors']}"
        return [tuple(r) for r in out["acked"]]

    def consume(self, bootstrap: str, topic: str, count: int | None = None, timeout: float = 60,
                client_id: str | None = None, group: str | None = None,
                conf: dict | None = None) -> list[tuple]:
        """``count`` records, or (None) every record up to the partitions' end offsets; with
        ``group``, commits the position reached as that group."""
        out = self.run("consume", bootstrap=bootstrap, topic=topic, count=count, timeout=timeout,
                       group=group or f"check-{time.monotonic_ns()}", commit=bool(group),
                       client_id=client_id, timeout_s=timeout + 120, conf=conf)
        return [tuple(r) for r in out["records"]]

    def group_offsets(self, bootstrap: str, group: str, topic: str, partitions: int,
                      client_id: str | None = None) -> dict[int, int]:
        out = self.run("group-offsets", bootstrap=bootstrap, group=group, topic=topic,
                       partitions=partitions, client_id=client_id)
        return {int(p): o for p, o in out.items()}

    def describe_broker_configs(self, bootstrap: str, broker: int) -> dict:
        return self.run("describe-broker-configs", bootstrap=bootstrap, broker=broker)

    def fill(self, bootstrap: str, topic: str, count: int, size: int) -> float:
        """Writes a backlog of ``count`` records of ``size`` bytes (acks=1); returns its seconds."""
        out = self.run("fill", bootstrap=bootstrap, topic=topic, count=count, size=size, timeout_s=600)
        assert not out["errors"] and not out["undelivered"], f"fill {topic}: {out}"
        return out["seconds"]

    def ends(self, bootstrap: str, topic: str, partitions: int, client_id: str) -> int | None:
        """The sum of ``topic``'s end offsets, or None while it lacks partitions."""
        return self.run("ends", bootstrap=bootstrap, topic=topic, partitions=partitions, client_id=client_id)["end"]

    def catch_up(self, source: str, target: str, topic: str, partitions: int, client_id: str,
                 timeout: float = 300) -> "LoadRun":
        """Watches ``target`` catch up with ``source`` in the background; ``acked()`` is 1 once it
        has read where both stand, ``result()`` returns its samples (see ``cmd_catch_up``)."""
        return LoadRun(self.command("catch-up", source=source, target=target, topic=topic, partitions=partitions,
                                    client_id=client_id, timeout=timeout), timeout)

    def load(self, bootstrap: str, topic: str, seconds: float, rate: int = 200, prefix: str = "host") -> "LoadRun":
        """``prefix``: the producer part of the values (``"<prefix>.<seq>"``); loads whose records
        are checked together need different ones."""
        return LoadRun(self.command("load", bootstrap=bootstrap, topic=topic, seconds=seconds, rate=rate,
                                    prefix=prefix), seconds)


class LoadRun:
    """A background acks=all load; ``acked()`` is its latest count of acknowledged records,
    ``stop()`` ends it early, ``result()`` waits for its report."""

    def __init__(self, argv: list[str], seconds: float):
        # stderr (librdkafka's log) in a file: a full pipe would block the producer
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                     stdin=subprocess.DEVNULL)
        self.seconds = seconds
        self._progress = {"progress": 0, "errors": 0}
        self._last = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            doc = json.loads(line)
            if "progress" in doc:
                self._progress = doc
            else:
                self._last = doc

    def acked(self) -> int:
        return self._progress["progress"]

    def errors(self) -> int:
        return self._progress["errors"]

    def __enter__(self) -> "LoadRun":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.stop()
            try:
                self.proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def result(self, timeout: float | None = None) -> dict:
        self.proc.wait(timeout=timeout or self.seconds + 240)
        self._reader.join(timeout=30)
        if self.proc.returncode != 0 or self._last is None:
            self._stderr.seek(0)
            raise AssertionError(f"load exited {self.proc.returncode}:\n{self._stderr.read()[-3000:]}")
        return self._last


if __name__ == "__main__":
    main()
