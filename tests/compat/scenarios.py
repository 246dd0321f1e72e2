"""Shared pieces of the client compatibility suites: deterministic record sets with keys, headers
and timestamps, verifiers for what a client read back, and a consumer-group member that runs in its
own process (so a test can SIGKILL it).

Run as a script it is that group member:
    python scenarios.py member CLIENT BOOTSTRAP GROUP TOPIC
CLIENT is `confluent` or `kafka-python`. It prints `ASSIGNED p,p,..` after each assignment and
`R partition offset key` for every record it consumed (flushed before the offset is committed), so
what it saw survives a SIGKILL.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]

# One day in the past: well inside the default 7-day retention and never "in the future" for the
# broker's timestamp bounds (log.message.timestamp.after.max.ms is one hour in Kafka 4).
DAY_MS = 24 * 3600 * 1000


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclasses.dataclass(frozen=True)
class Rec:
    """One record as produced (expected) or as consumed (offset set)."""

    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple = ()  # ((name: str, value: bytes | None), ...) in order, duplicates allowed
    timestamp: int | None = None
    offset: int = -1
    index: int = -1  # position in the produced sequence (expected records only)


def make_records(n: int, partitions: int, base_ts: int | None = None, value_size: int = 100,
                 tag: str = "r") -> list[Rec]:
    """n records spread round-robin over `partitions`, each with a unique key, a value of about
    `value_size` bytes (compressible but record-specific), 0-3 headers (a name repeated on some
    records) and a distinct CreateTime timestamp (base_ts + i)."""
    if base_ts is None:
        base_ts = now_ms() - DAY_MS
    out = []
    for i in range(n):
        key = f"{tag}-key-{i:07d}".encode()
        body = f"{tag}|{i}|".encode()
        value = (body + b"payload-" * (value_size // 8 + 1))[:max(value_size, len(body))]
        nh = i % 4
        headers = []
        if nh >= 1:
            headers.append(("idx", str(i).encode()))
        if nh >= 2:
            headers.append(("src", f"gen-{i % 7}".encode()))
        if nh >= 3:
            headers.append(("idx", f"again-{i}".encode()))  # repeated header name
        out.append(Rec(partition=i % partitions, key=key, value=value, headers=tuple(headers),
                       timestamp=base_ts + i, index=i))
    return out


def norm_headers(headers) -> tuple:
    """Normalises a client's header representation (None, list of tuples, dict) to a tuple of
    (str, bytes|None) pairs."""
    if not headers:
        return ()
    if isinstance(headers, dict):
        headers = list(headers.items())
    out = []
    for k, v in headers:
        if isinstance(k, bytes):
            k = k.decode()
        if isinstance(v, str):
            v = v.encode()
        out.append((k, v))
    return tuple(out)


def verify_records(expected: list[Rec], consumed: list[Rec], *, check_timestamps: bool = True,
                   check_partition: bool = True) -> None:
    """Every expected record read back exactly once with key, value, headers and timestamp intact,
    nothing extra, and within each partition the offsets follow the production order."""
    by_key = {r.key: r for r in expected}
    assert len(by_key) == len(expected), "expected records must have unique keys"
    seen: dict[bytes, Rec] = {}
    problems = []
    for c in consumed:
        e = by_key.get(c.key)
        if e is None:
            problems.append(f"unexpected record key={c.key!r} p={c.partition} o={c.offset}")
        elif c.key in seen:
            problems.append(f"duplicate key={c.key!r} at p={c.partition} o={c.offset} "
                            f"(first at o={seen[c.key].offset})")
        else:
            seen[c.key] = c
            if c.value != e.value:
                problems.append(f"value mismatch key={c.key!r}: {c.value[:40]!r} != {e.value[:40]!r}")
            if norm_headers(c.headers) != norm_headers(e.headers):
                problems.append(f"headers mismatch key={c.key!r}: {c.headers!r} != {e.headers!r}")
            if check_timestamps and c.timestamp != e.timestamp:
                problems.append(f"timestamp mismatch key={c.key!r}: {c.timestamp} != {e.timestamp}")
            if check_partition and c.partition != e.partition:
                problems.append(f"partition mismatch key={c.key!r}: {c.partition} != {e.partition}")
        if len(problems) > 20:
            break
    missing = len(by_key) - len(seen)
    assert not problems, f"{len(problems)}+ problems, first: " + "\n".join(problems[:20])
    assert missing == 0, f"{missing} of {len(expected)} records never consumed"
    assert len(consumed) == len(expected)
    verify_partition_order(expected, consumed)


def verify_partition_order(expected: list[Rec], consumed: list[Rec]) -> None:
    """Within each partition, increasing offsets carry increasing production indexes, and the
    offsets are contiguous from the first one read."""
    index = {r.key: r.index for r in expected}
    per_part: dict[int, list[Rec]] = defaultdict(list)
    for c in consumed:
        per_part[c.partition].append(c)
    for p, recs in per_part.items():
        recs.sort(key=lambda r: r.offset)
        offs = [r.offset for r in recs]
        assert offs == list(range(offs[0], offs[0] + len(offs))), \
            f"partition {p}: offsets not contiguous: {offs[:5]}..{offs[-5:]}"
        idx = [index[r.key] for r in recs]
        bad = [(a, b) for a, b in zip(idx, idx[1:]) if b <= a]
        assert not bad, f"partition {p}: production order broken, e.g. index {bad[0][0]} before {bad[0][1]}"


# --------------------------------------------------------------------------------------------
# librdkafka (confluent-kafka) helpers, shared by the suites that need a neutral client for setup


def create_topic(bootstrap: str, topic: str, partitions: int, configs: dict | None = None,
                 timeout: float = 60) -> None:
    """Creates `topic` (RF 1) with the AdminClient and waits until every partition has a leader."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                        config=dict(configs or {}))], operation_timeout=30)[topic]
    fut.result(timeout)

    def ready():
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        return (md is not None and md.error is None and len(md.partitions) == partitions
                and all(pm.leader >= 0 for pm in md.partitions.values()))
    from harness import wait_until

    wait_until(ready, timeout, f"topic {topic} with {partitions} partitions led")


def ck_produce(bootstrap: str, topic: str, recs: list[Rec], extra: dict | None = None,
               timeout: float = 180) -> None:
    """Produces `recs` (explicit partition, key, value, headers, timestamp) in bulk, flushes once
    and asserts every record was acknowledged."""
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20,
            "queue.buffering.max.messages": max(len(recs) + 10, 100000),
            "queue.buffering.max.kbytes": 1048576}
    conf.update(extra or {})
    p = Producer(conf)
    errors = []
    acked = [0]

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[0] += 1

    for r in recs:
        p.produce(topic, value=r.value, key=r.key, partition=r.partition,
                  headers=list(r.headers) or None, timestamp=r.timestamp or 0,
                  on_delivery=on_delivery)
        if len(p) > 200000:
            p.poll(0)
    remaining = p.flush(timeout)
    assert remaining == 0, f"{remaining} records still unacknowledged after {timeout}s"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[0]}"
    assert acked[0] == len(recs)


def ck_read_all(bootstrap: str, topic: str, partitions: int, timeout: float = 180,
                extra: dict | None = None) -> list[Rec]:
    """Reads every partition of `topic` from the beginning to the end offset (partition EOF) with
    manual assignment and returns the records read."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition, OFFSET_BEGINNING

    conf = {"bootstrap.servers": bootstrap, "group.id": f"reader-{topic}-{time.monotonic_ns()}",
            "enable.auto.commit": False, "enable.partition.eof": True,
            "auto.offset.reset": "earliest"}
    conf.update(extra or {})
    c = Consumer(conf)
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out: list[Rec] = []
        at_eof: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(at_eof) < partitions:
            assert time.monotonic() < deadline, \
                f"read of {topic} incomplete after {timeout}s: {len(out)} records, eof {sorted(at_eof)}"
            for m in c.consume(10000, 0.5):
                err = m.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, f"consume error: {err}"
                    at_eof.add(m.partition())
                    continue
                at_eof.discard(m.partition())
                out.append(Rec(partition=m.partition(), key=m.key(), value=m.value(),
                               headers=norm_headers(m.headers()), timestamp=m.timestamp()[1],
                               offset=m.offset()))
        return out
    finally:
        c.close()


def ck_committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int] | None:
    """The offsets `group` committed for each partition of `topic` (OffsetFetch through a consumer
    of the group that does not join it), or None while the coordinator cannot answer.

    AdminClient.list_consumer_group_offsets is avoided: librdkafka (2.16 and kcat's 2.0) crashes
    in rd_kafka_cgrp_op when an admin OffsetFetch gets a coordinator error, e.g. just after a
    broker restart."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        res = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
    except KafkaException:
        return None
    finally:
        c.close()
    if any(tp.error is not None for tp in res):
        return None
    return [tp.offset for tp in sorted(res, key=lambda tp: tp.partition)]


# --------------------------------------------------------------------------------------------
# Group member in its own process


class MemberProcess:
    """A consumer-group member running `scenarios.py member ...` in a subprocess."""

    def __init__(self, client: str, bootstrap: str, group: str, topic: str, out_path: str):
        self.out_path = out_path
        self._out = open(out_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "member", client, bootstrap, group, topic],
            stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def lines(self) -> list[str]:
        with open(self.out_path, "rb") as f:
            data = f.read().decode(errors="replace")
        # A SIGKILL can leave a partial last line: keep only complete ones.
        return data.split("\n")[:-1]

    def assignment(self) -> set[int]:
        """The partitions the member holds according to its last ASSIGNED/REVOKED line."""
        last: set[int] = set()
        for line in self.lines():
            if line.startswith("ASSIGNED"):
                parts = line.split(" ", 1)
                last = {int(x) for x in parts[1].split(",") if x} if len(parts) > 1 else set()
            elif line.startswith("REVOKED"):
                last = set()
        return last

    def consumed(self) -> list[tuple[int, int, bytes]]:
        out = []
        for line in self.lines():
            if line.startswith("R "):
                _, p, o, k = line.split(" ", 3)
                out.append((int(p), int(o), k.encode()))
        return out

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._out.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if not self._out.closed:
            self._out.close()


def _member_confluent(bootstrap, group, topic):
    from confluent_kafka import Consumer, TopicPartition, KafkaException

    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))

    def on_assign(consumer, parts):
        print("ASSIGNED " + ",".join(str(p.partition) for p in sorted(parts, key=lambda p: p.partition)),
              flush=True)

    def on_revoke(consumer, parts):
        print("REVOKED", flush=True)

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 1000})
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    while running[0]:
        msgs = c.consume(500, 0.5)
        offs = {}
        for m in msgs:
            if m.error():
                continue
            sys.stdout.write(f"R {m.partition()} {m.offset()} {m.key().decode()}\n")
            offs[m.partition()] = m.offset() + 1
        sys.stdout.flush()
        if offs:
            try:
                c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offs.items()],
                         asynchronous=False)
            except KafkaException:
                pass  # rebalance in progress: the records will be redelivered (at least once)
    c.close()


def _member_kafka_python(bootstrap, group, topic):
    from kafka import KafkaConsumer, TopicPartition, ConsumerRebalanceListener
    from kafka.structs import OffsetAndMetadata
    from kafka.errors import KafkaError

    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            print("REVOKED", flush=True)

        def on_partitions_assigned(self, assigned):
            print("ASSIGNED " + ",".join(str(p.partition) for p in sorted(assigned)), flush=True)

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=1000)
    c.subscribe([topic], listener=Listener())
    while running[0]:
        batches = c.poll(timeout_ms=500, max_records=500)
        offs = {}
        for tp, msgs in batches.items():
            for m in msgs:
                sys.stdout.write(f"R {m.partition} {m.offset} {m.key.decode()}\n")
                offs[tp] = OffsetAndMetadata(m.offset + 1, "", -1)
        sys.stdout.flush()
        if offs:
            try:
                c.commit(offs)
            except KafkaError:
                pass
    c.close()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "member":
        client, bootstrap, group, topic = sys.argv[2:]
        if client == "confluent":
            _member_confluent(bootstrap, group, topic)
        elif client == "kafka-python":
            _member_kafka_python(bootstrap, group, topic)
        else:
            sys.exit(f"unknown client {client}")
    else:
        sys.exit(__doc__)
