"""Load and verdicts of the replicated-cluster suites (tests/cluster) and benchmark
(tests/bench/replication.sh).

Load: two independent clients write numbered values ``"<producer>.<seq>"`` (the format of Kafka's
``kafka-verifiable-producer --value-prefix``) with ``acks=all`` and record every acknowledgement
(partition, offset, value) from their delivery reports:

- :class:`VerifiableProducer`: Kafka's own ``kafka-verifiable-producer`` (the Java client), one
  JSON line per acknowledged or failed send;
- :class:`ConfluentLoad`: confluent-kafka (librdkafka) in a thread, records spread over the
  partitions by sequence number, delivery reports for every record.

Verdicts:

- :func:`check_records`: acknowledged records against everything read back: acknowledged records
  lost, values read more than once (duplicates), an offset with two values (two acks for one
  offset, or an acked offset holding another value), and values of one producer out of order
  within a partition;
- :func:`replicas_equal`: every replica's segment files dumped with Kafka's ``kafka-dump-log``
  (one JVM for all files) and compared batch by batch (offsets, producer state, leader epoch,
  CRC) up to the partition's high watermark.
"""
import json
import os
import re
import subprocess
import threading
import time
from collections import Counter, defaultdict, namedtuple
from pathlib import Path

from .brokers import KAFKA_SH, REPO_ROOT, kafka_tool
from .process import ManagedProcess, spawn_watchdog
from .util import wait_until

Ack = namedtuple("Ack", "partition offset value")
Ack.__doc__ = "One acknowledged record: partition, offset and value (str) from a delivery report."

FIGURES_PATH = Path(os.environ.get("STRATA_CLUSTER_FIGURES") or REPO_ROOT / "tests" / ".work" / "cluster-figures.jsonl")


def value_parts(value):
    """(producer, seq) of a value ``"<producer>.<seq>"``, or None for anything else."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if value is None:
        return None
    producer, sep, seq = value.rpartition(".")
    if not sep or not seq.isdigit():
        return None
    return producer, int(seq)


class _AckLog:
    """Acknowledgements and failures of one producer, shared between its reader and the test."""

    def __init__(self):
        self.acked = []
        self.ack_times = []  # wall-clock time of each acknowledgement, in the order of `acked`
        self.errors = Counter()  # error name -> count
        self.error_examples = []
        self._lock = threading.Lock()

    def ack(self, partition, offset, value):
        with self._lock:
            self.acked.append(Ack(partition, offset, value))
            self.ack_times.append(time.time())

    def fail(self, name, detail):
        with self._lock:
            self.errors[name] += 1
            if len(self.error_examples) < 5:
                self.error_examples.append(f"{name}: {detail}")

    @property
    def acked_count(self):
        return len(self.acked)

    def wait_acked(self, count, timeout, what=""):
        """Waits until at least ``count`` records are acknowledged in total."""
        wait_until(lambda: self.acked_count >= count, timeout,
                   f"{count} acknowledged records{(' ' + what) if what else ''} (have {self.acked_count}; "
                   f"errors {dict(self.errors)})", interval=0.1)

    def wait_more(self, more, timeout, what=""):
        """Waits until ``more`` records beyond those acknowledged now are acknowledged."""
        self.wait_acked(self.acked_count + more, timeout, what)

    def first_ack_after(self, t):
        """Wall-clock time of the first acknowledgement after ``t`` (None if none yet)."""
        with self._lock:
            return next((a for a in self.ack_times if a > t), None)

    def saw(self, error_name):
        return self.errors.get(error_name, 0) > 0


class VerifiableProducer(ManagedProcess):
    """``kafka-verifiable-producer`` (Kafka's Java client) writing ``"<prefix>.<n>"`` values to
    ``topic`` at ``throughput`` records/s (``max_messages`` -1: until stopped), ``acks=all``,
    idempotent unless ``idempotent`` is False (then ``retries=0``, so a broker error reaches the
    delivery report at once). ``config`` adds producer properties. Acks and errors are read off
    its stdout into :attr:`log` (an ``_AckLog``); its stderr goes to ``<work_dir>/<name>.log``.
    Stop it with :meth:`stop` (SIGTERM: the tool closes its producer, which completes the sends
    in flight)."""

    what = "kafka-verifiable-producer"

    def __init__(self, work_dir, bootstrap, topic, *, prefix=1, throughput=500, max_messages=-1,
                 idempotent=True, config=None, name=None):
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        self.name = name or f"verifiable-producer-{prefix}"
        super().__init__(work_dir / f"{self.name}.log")
        self.bootstrap, self.topic, self.prefix = bootstrap, topic, prefix
        self.throughput, self.max_messages = throughput, max_messages
        props = {"linger.ms": "5", "request.timeout.ms": "10000", "delivery.timeout.ms": "120000",
                 "retry.backoff.ms": "100", "metadata.max.age.ms": "5000"}
        if idempotent:
            props.update({"enable.idempotence": "true", "retries": "2147483647",
                          "max.in.flight.requests.per.connection": "5"})
        else:
            props.update({"enable.idempotence": "false", "retries": "0"})
        props.update({k: str(v) for k, v in (config or {}).items()})
        self.config_path = work_dir / f"{self.name}.properties"
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        self.log = _AckLog()
        self.started = threading.Event()
        self.finished = threading.Event()
        self._reader = None

    def start(self):
        cmd = [str(KAFKA_SH), "tool", "verifiable-producer", "--bootstrap-server", self.bootstrap,
               "--topic", self.topic, "--acks", "-1", "--value-prefix", str(self.prefix),
               "--max-messages", str(self.max_messages), "--throughput", str(self.throughput),
               "--producer.config", str(self.config_path)]
        with open(self.log_path, "ab") as err:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=err, start_new_session=True)
        self.pid = self._proc.pid
        self._paused = False
        spawn_watchdog(self.pid)
        self._reader = threading.Thread(target=self._read, name=self.name, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        for raw in self._proc.stdout:
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            name = ev.get("name")
            if name == "producer_send_success":
                self.log.ack(ev["partition"], ev["offset"], ev["value"])
            elif name == "producer_send_error":
                exc = ev.get("exception", "unknown").rsplit(".", 1)[-1]
                self.log.fail(exc, ev.get("message", ""))
            elif name == "startup_complete":
                self.started.set()
        self.finished.set()

    def wait_done(self, timeout):
        """Waits until the tool has exited by itself (``max_messages`` sent) and its output is read."""
        wait_until(lambda: self.finished.is_set(), timeout, f"{self.name} to finish", interval=0.1)
        self._proc.wait(timeout=30)

    def stop(self, timeout=60):
        clean = super().stop(timeout)
        if self._reader is not None:
            self._reader.join(timeout=30)
        return clean

    @property
    def acked(self):
        return list(self.log.acked)


def producer_config(bootstrap, idempotent=True):
    """confluent-kafka settings of the loads: acks=all, linger 5 ms, 10 s request timeout, 120 s
    delivery timeout, metadata refreshed every 5 s (librdkafka's default of 5 min can leave a
    producer on a dead leader), idempotent unless ``idempotent`` is False (then no retries)."""
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
            "request.timeout.ms": 10000, "message.timeout.ms": 120000, "retry.backoff.ms": 100,
            "topic.metadata.refresh.interval.ms": 5000, "socket.timeout.ms": 10000, "log_level": 2}
    if idempotent:
        conf["enable.idempotence"] = True
    else:
        conf.update({"enable.idempotence": False, "message.send.max.retries": 0})
    return conf


class ConfluentLoad:
    """A confluent-kafka producer in a thread writing ``"<prefix>.<seq>"`` values to ``topic``,
    record ``seq`` to partition ``seq % partitions``, at ``rate`` records/s (None: as fast as the
    client takes them), ``acks=all``, idempotent unless ``idempotent`` is False (then no retries:
    a broker error reaches the delivery report at once). ``count``: stop after that many records
    (None: until :meth:`stop`). Delivery reports land in :attr:`log`."""

    def __init__(self, bootstrap, topic, partitions, *, prefix=2, rate=500, count=None, idempotent=True,
                 value_size=0, config=None):
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.prefix, self.rate, self.count = prefix, rate, count
        self.padding = b"" if value_size <= 0 else b" " * value_size
        conf = producer_config(bootstrap, idempotent)
        conf.update(config or {})
        self.conf = conf
        self.log = _AckLog()
        self.sent = 0
        self.error = None
        self._stop = threading.Event()
        self._thread = None
        self._producer = None

    def start(self):
        from confluent_kafka import Producer
        self._producer = Producer(self.conf)
        self._thread = threading.Thread(target=self._run, name=f"confluent-load-{self.prefix}", daemon=True)
        self._thread.start()
        return self

    def _on_delivery(self, err, msg):
        value = msg.value()
        value = value.split(b" ", 1)[0].decode() if value is not None else None
        if err is not None:
            self.log.fail(err.name(), f"{err.str()} (partition {msg.partition()}, value {value})")
        else:
            self.log.ack(msg.partition(), msg.offset(), value)

    def _run(self):
        p = self._producer
        t0 = time.monotonic()
        try:
            while not self._stop.is_set() and (self.count is None or self.sent < self.count):
                if self.rate:
                    due = t0 + self.sent / self.rate
                    now = time.monotonic()
                    if due > now:
                        p.poll(min(due - now, 0.05))  # pacing: serve delivery reports meanwhile
                        continue
                seq = self.sent
                value = f"{self.prefix}.{seq}".encode()
                if self.padding:
                    value = value + self.padding[len(value):] if len(value) < len(self.padding) else value
                try:
                    p.produce(self.topic, value=value, partition=seq % self.partitions,
                              on_delivery=self._on_delivery)
                except BufferError:
                    p.poll(0.05)  # the local queue is full: serve delivery reports, then retry
                    continue
                self.sent += 1
                p.poll(0)
        except Exception as e:  # surfaced by stop()
            self.error = e

    def stop(self, flush_timeout=150):
        """Stops producing and waits for every outstanding delivery report."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        left = self._producer.flush(flush_timeout) if self._producer is not None else 0
        if self.error is not None:
            raise self.error
        assert left == 0, f"{left} records to {self.topic} without a delivery report after {flush_timeout}s"

    def wait_done(self, timeout):
        """Waits until ``count`` records are produced and reported."""
        wait_until(lambda: self.sent >= (self.count or 0), timeout, "all records produced", interval=0.1)
        self.stop(timeout)

    @property
    def acked(self):
        return list(self.log.acked)


def produce_sync(bootstrap, topic, values, partition=0, timeout=60, idempotent=False, config=None):
    """Produces ``values`` to one partition with ``acks=all`` and returns (acks, errors) from the
    delivery reports (no retries when not idempotent: a broker error is reported as is).
    ``config`` adds producer settings."""
    from confluent_kafka import Producer
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, "log_level": 2,
            "message.timeout.ms": int(timeout * 1000), "request.timeout.ms": 10000}
    if not idempotent:
        conf.update({"enable.idempotence": False, "message.send.max.retries": 0})
    else:
        conf.update({"enable.idempotence": True})
    conf.update(config or {})
    p = Producer(conf)
    acks, errors = [], []

    def report(err, msg):
        if err is None:
            acks.append(Ack(msg.partition(), msg.offset(), msg.value().decode()))
        else:
            errors.append(err.name())

    for v in values:
        p.produce(topic, value=v.encode() if isinstance(v, str) else v, partition=partition, on_delivery=report)
    left = p.flush(timeout + 10)
    assert left == 0, f"{left} records without a delivery report after {timeout}s"
    return acks, errors


class GroupConsumer:
    """A confluent-kafka consumer in a thread, member of ``group``, subscribed to ``topic`` from the
    earliest offset: records every (partition, offset, value) it consumes in :attr:`consumed` and
    commits its position synchronously after every poll that advanced it (a failed commit is
    counted in :attr:`commit_errors` and retried after the next poll). Partitions taken away by a
    rebalance are not committed any more by this member."""

    def __init__(self, bootstrap, group, topic, name, config=None):
        from confluent_kafka import Consumer
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                "auto.offset.reset": "earliest", "enable.auto.commit": False,
                "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 100,
                "log_level": 2}
        conf.update(config or {})
        self.topic, self.name = topic, name
        self.consumed = []
        self.commits_ok = 0
        self.commit_errors = Counter()
        self.error = None
        self._consumer = Consumer(conf)
        self._pending = {}  # partition -> next offset, not yet committed
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._consumer.subscribe([self.topic], on_revoke=self._on_revoke)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def _on_revoke(self, consumer, partitions):
        for tp in partitions:
            self._pending.pop(tp.partition, None)

    def _run(self):
        from confluent_kafka import KafkaError, KafkaException, TopicPartition
        c = self._consumer
        try:
            while not self._stop.is_set():
                for m in c.consume(num_messages=500, timeout=0.2):
                    err = m.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            self.commit_errors["consume " + err.name()] += 1
                        continue
                    value = m.value().split(b" ", 1)[0].decode() if m.value() is not None else None
                    self.consumed.append(Ack(m.partition(), m.offset(), value))
                    self._pending[m.partition()] = m.offset() + 1
                if self._pending:
                    offsets = [TopicPartition(self.topic, p, o) for p, o in self._pending.items()]
                    try:
                        c.commit(offsets=offsets, asynchronous=False)
                        self.commits_ok += 1
                        for tp in offsets:
                            if self._pending.get(tp.partition) == tp.offset:
                                del self._pending[tp.partition]
                    except KafkaException as e:
                        self.commit_errors[e.args[0].name()] += 1
        except Exception as e:  # surfaced by stop()
            self.error = e

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._consumer.close()
        if self.error is not None:
            raise self.error


# --- verdicts ------------------------------------------------------------------------------------

class RecordCheck:
    """What :func:`check_records` found. ``lost``: acknowledged records whose value is not read
    back; ``duplicates``: values read more than once (extra copies); ``conflicts``: offsets with two
    values (two acks for one offset, or an acknowledged offset that holds another value);
    ``reordered``: records of one producer whose sequence goes back within a partition;
    ``unacked_read``: records read back that no delivery report acknowledged (failed or
    unreported sends that were written anyway; allowed); ``acked_without_offset``: delivery reports
    that carried no offset (only the record's presence is checked for those)."""

    def __init__(self):
        self.acked = 0
        self.read = 0
        self.lost = []
        self.duplicates = []
        self.conflicts = []
        self.reordered = []
        self.unacked_read = 0
        self.acked_without_offset = 0

    @property
    def ok(self):
        return not (self.lost or self.duplicates or self.conflicts or self.reordered)

    @property
    def resent(self):
        """Duplicates whose copies all sit in one partition: a producer that re-sent in-flight
        batches to the same partition after bumping its epoch (KIP-360), which the broker
        appends as new records (the copies may have other batches between them)."""
        return [d for d in self.duplicates if len({p for p, _ in d[1]}) == 1]

    def ok_for(self, kind):
        """The verdict for a target: Strata is held to no duplicate at all; the Kafka reference
        may keep a producer's re-sent batches (seen in CI with the Java and librdkafka idempotent
        producers during leader kills, rack loss and rolling restarts), so re-sends into the same
        partition are counted, not failed; the later copy of such a record reads as going back
        once, which is the re-send, not a reordering. Loss, conflicts and any other reordering
        fail either target."""
        if kind != "kafka":
            return self.ok
        resent = self.resent
        resent_values = {d[0] for d in resent}
        reordered = [r for r in self.reordered if r[2] not in resent_values]
        return not (self.lost or self.conflicts or reordered
                    or [d for d in self.duplicates if d not in resent])

    def counts(self):
        return {"acked": self.acked, "read": self.read, "lost": len(self.lost),
                "duplicates": len(self.duplicates), "conflicts": len(self.conflicts),
                "reordered": len(self.reordered), "unacked_read": self.unacked_read,
                "acked_without_offset": self.acked_without_offset}

    def __str__(self):
        parts = [", ".join(f"{k} {v}" for k, v in self.counts().items())]
        for name in ("lost", "duplicates", "conflicts", "reordered"):
            items = getattr(self, name)
            if items:
                parts.append(f"first {name}: {items[:5]}")
        return "; ".join(parts)


def check_records(acks, records):
    """Compares acknowledged records with what was read back.

    ``acks``: iterable of :class:`Ack`. ``records``: {partition: [(offset, value), ...]} or
    {partition: [Rec, ...]} (anything with ``offset`` and ``value``), values as str or bytes.
    """
    res = RecordCheck()
    read_at = {}  # (partition, offset) -> value
    where = defaultdict(list)  # value -> [(partition, offset)]
    by_partition = {}
    for p, recs in records.items():
        rows = []
        for r in recs:
            off, val = (r.offset, r.value) if hasattr(r, "offset") else (r[0], r[1])
            if isinstance(val, bytes):
                val = val.split(b" ", 1)[0].decode(errors="replace")
            if (p, off) in read_at and read_at[(p, off)] != val:
                res.conflicts.append(("read twice with two values", p, off, read_at[(p, off)], val))
            read_at[(p, off)] = val
            where[val].append((p, off))
            rows.append((off, val))
        rows.sort()
        by_partition[p] = rows
        res.read += len(rows)
    acked_at = {}
    acked_values = set()
    for a in acks:
        res.acked += 1
        acked_values.add(a.value)
        if a.offset is None or a.offset < 0:
            # A delivery report without an offset: librdkafka gives one when a retried batch is
            # answered DUPLICATE_SEQUENCE_NUMBER (the leader already holds it but no longer knows
            # its offset, as Kafka's new leader may after a failover). The record is acknowledged;
            # where it sits is unknown, so only its presence is checked.
            res.acked_without_offset += 1
            if a.value not in where:
                res.lost.append(a)
            continue
        prev = acked_at.get((a.partition, a.offset))
        if prev is not None and prev != a.value:
            res.conflicts.append(("two acks for one offset", a.partition, a.offset, prev, a.value))
        acked_at[(a.partition, a.offset)] = a.value
        got = read_at.get((a.partition, a.offset))
        if a.value not in where:
            res.lost.append(a)
        elif got is not None and got != a.value:
            res.conflicts.append(("acked offset holds another value", a.partition, a.offset, a.value, got))
        elif got is None:
            res.conflicts.append(("acked value read at another offset", a.partition, a.offset, a.value,
                                  where[a.value][0]))
    for val, places in where.items():
        if len(places) > 1:
            res.duplicates.append((val, places))
        if val not in acked_values:
            res.unacked_read += 1
    for p, rows in by_partition.items():
        last = {}
        for off, val in rows:
            parts = value_parts(val)
            if parts is None:
                continue
            producer, seq = parts
            if producer in last and seq < last[producer][1]:
                res.reordered.append((p, off, val, "after", last[producer][0]))
            last[producer] = (off, seq)
    return res


def read_back(bootstrap, topic, timeout=120, extra=None, acked=()):
    """Everything in ``topic`` up to the high watermarks: {partition: [Rec, ...]}.

    ``acked``: acknowledged records whose offsets the high watermarks should cover before the
    read, waited for up to ``timeout``. A leader elected a moment ago serves the high watermark
    it knew as a follower until its followers fetch from it, so the last acknowledged records
    can sit above it for that moment, on Kafka as on Strata (a fetcher drops the answer that
    would have told it more once it leads). When the wait runs out the read goes ahead and the
    check reports what is missing.
    """
    from .data import read_all, watermarks
    need = {}
    for a in acked:
        if a.offset is not None and a.offset >= 0:
            need[a.partition] = max(need.get(a.partition, 0), a.offset + 1)
    if need:
        def covered():
            marks = watermarks(bootstrap, topic)
            # (None: a partition whose watermarks were not answered in time)
            return all((marks.get(p) or (0, 0))[1] >= end for p, end in need.items())
        try:
            wait_until(covered, timeout, "the high watermarks to cover the acknowledged records", interval=0.2)
        except AssertionError:
            pass  # read what there is: the check names what is missing
    return read_all(bootstrap, topic, timeout=timeout, extra=extra)


Batch = namedtuple("Batch", "base last count producer_id producer_epoch base_sequence leader_epoch crc valid")
Batch.__doc__ = "One record batch as kafka-dump-log prints it."

_BATCH_RE = re.compile(
    r"baseOffset: (\d+) lastOffset: (\d+) count: (\d+) baseSequence: (-?\d+) lastSequence: -?\d+ "
    r"producerId: (-?\d+) producerEpoch: (-?\d+) partitionLeaderEpoch: (-?\d+) .*?crc: (\d+) isvalid: (\w+)")


def dump_batches(files, timeout=300):
    """{file: [Batch, ...]} of the segment files, read with ``kafka-dump-log`` in one JVM."""
    files = [str(f) for f in files]
    if not files:
        return {}
    out = kafka_tool("dump-log", "--files", ",".join(files), timeout=timeout).stdout
    result, current = {}, None
    for line in out.splitlines():
        if line.startswith("Dumping "):
            current = line[len("Dumping "):].strip()
            result[current] = []
            continue
        m = _BATCH_RE.search(line)
        if m and current is not None:
            base, last, count, bseq, pid, pepoch, lepoch, crc, valid = m.groups()
            result[current].append(Batch(int(base), int(last), int(count), int(pid), int(pepoch), int(bseq),
                                         int(lepoch), int(crc), valid == "true"))
    return result


def replica_logs(cluster, topic, partition, nodes):
    """Paths of the segment files of ``topic``-``partition`` on each of ``nodes``: {node: [path]}."""
    return {n: sorted(cluster.partition_dir(n, topic, partition).glob("*.log")) for n in nodes}


def partition_batches(cluster, topic, partitions_nodes):
    """{(partition, node): [Batch, ...]} in offset order, for ``partitions_nodes`` {partition:
    [node, ...]}, with one kafka-dump-log run for every file."""
    files = {}
    for p, nodes in partitions_nodes.items():
        for n, paths in replica_logs(cluster, topic, p, nodes).items():
            files[(p, n)] = paths
    dumped = dump_batches([f for paths in files.values() for f in paths])
    out = {}
    for key, paths in files.items():
        batches = [b for f in paths for b in dumped.get(str(f), [])]
        out[key] = sorted(batches, key=lambda b: b.base)
    return out


def replicas_equal(cluster, topic, high_watermarks=None):
    """Compares every replica of every partition of ``topic`` batch by batch up to the partition's
    high watermark. Returns a list of differences (empty when equal): a replica missing a batch
    below the high watermark, a batch differing from the leader's, an invalid batch.
    ``high_watermarks``: {partition: hw}; default: read from the leaders now."""
    parts = cluster.partitions(topic)
    assert parts, f"topic {topic} unknown to the cluster"
    if high_watermarks is None:
        high_watermarks = _high_watermarks(cluster.healthy_bootstrap(), topic, sorted(parts))
    batches = partition_batches(cluster, topic, {p: part.replicas for p, part in parts.items()})
    diffs = []
    for p, part in sorted(parts.items()):
        hw = high_watermarks[p]
        ref_node = part.leader if part.leader in part.replicas else part.replicas[0]
        views = {n: [b for b in batches[(p, n)] if b.base < hw] for n in part.replicas}
        ref = views[ref_node]
        covered = ref[-1].last + 1 if ref else 0
        if hw > 0 and covered < hw:
            diffs.append(f"partition {p}: leader {ref_node}'s batches end at {covered}, below the high watermark {hw}")
        for n, bs in views.items():
            bad = [b for b in bs if not b.valid]
            if bad:
                diffs.append(f"partition {p} node {n}: invalid batches {bad[:3]}")
            if n == ref_node:
                continue
            if bs != ref:
                first = next((i for i, (a, b) in enumerate(zip(ref, bs)) if a != b), min(len(ref), len(bs)))
                diffs.append(f"partition {p}: node {n} differs from leader {ref_node} below hw {hw} at batch "
                             f"{first}: leader {ref[first] if first < len(ref) else None}, "
                             f"replica {bs[first] if first < len(bs) else None} "
                             f"({len(ref)} vs {len(bs)} batches)")
    return diffs


def _high_watermarks(bootstrap, topic, partitions):
    from confluent_kafka import Consumer
    from .data import watermark_offsets
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "hw-reader", "log_level": 2})
    try:
        return {p: watermark_offsets(c, topic, p, 30)[1] for p in partitions}
    finally:
        c.close()


def high_watermarks(bootstrap, topic, partitions):
    """{partition: high watermark} of ``topic`` from its leaders."""
    return _high_watermarks(bootstrap, topic, partitions)


# --- figures -------------------------------------------------------------------------------------

def record_figure(test, name, value):
    """Prints a measured figure and appends it to tests/.work/cluster-figures.jsonl."""
    from .mirror import record_figure as _record
    _record(test, name, value, path=FIGURES_PATH)


def print_figures(path=FIGURES_PATH):
    from .mirror import print_figures as _print
    _print(path)
