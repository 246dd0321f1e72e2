"""Apache Kafka MirrorMaker 2 in dedicated mode (``tests/env/kafka/kafka.sh mirror-maker``) as a
managed process, the reference that strata-mirror is compared with.

    props = mm2_properties({"a": a.bootstrap, "b": b.bootstrap}, "a", "b", {"topics": "orders.*"})
    with MirrorMaker2Process(work_dir, props, clusters=["b"]) as mm2:   # connectors started
        mm2.wait_replicating("a", "b")                                   # a source task runs
        ...

The JVM runs in a session of its own with its log (stdout and stderr) in ``work_dir/mm2.log``; it
is stopped by PID (SIGTERM: MirrorMaker's shutdown hook stops the herders; SIGKILL after a grace
period) and a watchdog kills it when the test process that started it dies. ``kafka.sh`` execs
into ``java``, so ``pid`` is the JVM's own pid (the one whose memory is measured).

Readiness comes from MirrorMaker's log, the only signal it gives in dedicated mode (its REST
server is off): a flow ``a->b`` is *started* once its herder logged ``Finished creating
connector`` for the source, checkpoint and heartbeat connectors, and *replicating* once its
source task logged ``replicating N topic-partitions a->b`` (a source connector with no
topic-partitions to copy starts no task, hence two separate waits).
"""
import os
import re
import struct
import time
from collections import namedtuple
from pathlib import Path

from .brokers import KAFKA_SH
from .process import ManagedProcess

START_TIMEOUT = 180.0  # seconds until the connectors run: a JVM start on a busy 2-core machine
STOP_TIMEOUT = 45.0  # SIGTERM grace period: the herders stop their tasks and commit offsets

CONNECTORS = ("MirrorSourceConnector", "MirrorCheckpointConnector", "MirrorHeartbeatConnector")

# What a single-node cluster needs for MirrorMaker's own topics (Connect's config, offset and
# status topics, checkpoints, heartbeats, offset syncs): replication factor 1 everywhere.
SINGLE_NODE_PROPS = {
    "replication.factor": "1",
    "checkpoints.topic.replication.factor": "1",
    "heartbeats.topic.replication.factor": "1",
    "offset-syncs.topic.replication.factor": "1",
    "offset.storage.replication.factor": "1",
    "status.storage.replication.factor": "1",
    "config.storage.replication.factor": "1",
}


class MirrorMakerStartError(AssertionError):
    """MirrorMaker 2 did not start; the message carries the tail of its log."""


def mm2_properties(clusters, source, target, settings=None):
    """The text of an MM2 properties file: ``clusters`` ({alias: bootstrap}), the flow
    ``source->target`` enabled and its reverse disabled, SINGLE_NODE_PROPS, then ``settings``
    ({key: value}, in order; a key given twice keeps the later value)."""
    lines = [f"clusters={','.join(clusters)}"]
    lines += [f"{alias}.bootstrap.servers={bootstrap}" for alias, bootstrap in clusters.items()]
    lines += [f"{source}->{target}.enabled=true", f"{target}->{source}.enabled=false"]
    merged = dict(SINGLE_NODE_PROPS)
    merged.update({k: str(v) for k, v in (settings or {}).items()})
    lines += [f"{k}={v}" for k, v in merged.items()]
    return "\n".join(lines) + "\n"


class MirrorMaker2Process(ManagedProcess):
    """One MirrorMaker 2 JVM in dedicated mode. ``properties`` (text) is written to
    ``work_dir/mm2.properties``; ``clusters`` restricts the herders to flows whose target is
    one of these aliases (``--clusters``); ``heap`` overrides the JVM heap options of kafka.sh
    (``KAFKA_HEAP_OPTS``)."""

    what = "MirrorMaker 2"

    def __init__(self, work_dir, properties, *, clusters=None, heap=None):
        self.work_dir = Path(work_dir).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.properties = properties
        self.clusters = list(clusters or [])
        self.heap = heap
        self.properties_path = self.work_dir / "mm2.properties"
        super().__init__(self.work_dir / "mm2.log")
        self._log_start = 0  # byte offset in the log where the current run begins

    def command(self):
        cmd = [str(KAFKA_SH), "mirror-maker", str(self.properties_path)]
        if self.clusters:
            cmd += ["--clusters", *self.clusters]
        return cmd

    # --- lifecycle --------------------------------------------------------------------------

    def start(self, timeout=START_TIMEOUT, flows=None):
        """Starts the JVM and waits (deadline ``timeout``) until every flow of ``flows``
        (``[(source, target)]``; default: the enabled flows of the properties whose target is in
        ``clusters``) has started its three connectors. An exit or a missed deadline raises
        MirrorMakerStartError with the log tail."""
        if self.running():
            raise AssertionError(f"{self!r} already runs")
        self.properties_path.write_text(self.properties)
        env = dict(os.environ)
        if self.heap:
            env["KAFKA_HEAP_OPTS"] = self.heap
        with open(self.log_path, "ab") as log:
            self._log_start = log.tell()
        self._popen(self.command(), cwd=self.work_dir, env=env)
        flows = flows if flows is not None else self.enabled_flows()
        try:
            # The connector lines do not name the flow: with N flows, each appears N times.
            for connector in CONNECTORS:
                self.wait_log(rf"Finished creating connector {connector}\b", timeout,
                              f"{connector} created for {len(flows)} flow(s)", count=max(1, len(flows)))
        except BaseException:
            self.kill9()
            raise
        return self

    def enabled_flows(self):
        """[(source, target)] of the ``X->Y.enabled=true`` lines whose target is in ``clusters``
        (every enabled flow when ``clusters`` is empty)."""
        flows = re.findall(r"^\s*([^\s#=]+)->([^\s.=]+)\.enabled\s*=\s*true\s*$", self.properties, re.M)
        return [(s, t) for s, t in flows if not self.clusters or t in self.clusters]

    def wait_replicating(self, source, target, timeout=START_TIMEOUT):
        """Waits until the source task of ``source->target`` replicates (its ``replicating N
        topic-partitions`` line); returns N."""
        m = self.wait_log(rf"replicating (\d+) topic-partitions {re.escape(source)}->{re.escape(target)}",
                          timeout, f"source task replicating {source}->{target}")
        return int(m.group(1))

    def wait_log(self, pattern, timeout, what, count=1):
        """Waits until the log of the current run matches ``pattern`` (a regex) ``count`` times;
        returns the last match. Raises MirrorMakerStartError (with the log tail) when the JVM
        exits or the deadline passes first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            matches = list(rx.finditer(self.run_log()))
            if len(matches) >= count:
                return matches[-1]
            if self._proc is not None and self._proc.poll() is not None:
                raise MirrorMakerStartError(
                    f"MirrorMaker 2 exited with status {self._proc.returncode} before {what}; "
                    f"tail of {self.log_path}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise MirrorMakerStartError(f"MirrorMaker 2: no {what} within {timeout}s; "
                                            f"tail of {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.2)  # poll interval of the deadline loop

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait up to ``timeout`` seconds (the herders stop their tasks and commit
        offsets), then SIGKILL. True on a clean exit in time; idempotent."""
        return super().stop(timeout)

    # --- observation ------------------------------------------------------------------------

    def run_log(self):
        """The log of the current (or last) run."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def errors(self):
        """The ERROR lines of the current run's log, each with the first line of its exception
        (the line after it, when that names one): [(message, exception or '')]."""
        out = []
        lines = self.run_log().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"^\[[^\]]+\] ERROR ", line):
                nxt = lines[i + 1] if i + 1 < len(lines) else ""
                exc = nxt.strip() if re.match(r"^[\w.$]+(Exception|Error)\b", nxt.strip()) else ""
                out.append((line, exc))
        return out


# --- MirrorMaker 2's bookkeeping records -----------------------------------------------------
#
# Kafka's Struct serialization (org.apache.kafka.connect.mirror.Checkpoint, Heartbeat,
# OffsetSync): strings are an int16 length and UTF-8 bytes, integers big-endian; the values of
# Checkpoint and Heartbeat start with an int16 version header (0).

class _Reader:
    def __init__(self, what, data):
        self.what, self.data, self.pos = what, bytes(data or b""), 0

    def take(self, fmt):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError(f"{self.what}: truncated at byte {self.pos} of {len(self.data)}: {self.data!r}")
        (v,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return v

    def string(self):
        n = self.take(">h")
        if n < 0:
            raise ValueError(f"{self.what}: negative string length {n}")
        if self.pos + n > len(self.data):
            raise ValueError(f"{self.what}: string of {n} bytes truncated: {self.data!r}")
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def version(self):
        v = self.take(">h")
        if v != 0:
            raise ValueError(f"{self.what}: unknown version {v}")

    def done(self):
        if self.pos != len(self.data):
            raise ValueError(f"{self.what}: {len(self.data) - self.pos} trailing bytes: {self.data!r}")


Checkpoint = namedtuple("Checkpoint", "group topic partition upstream downstream metadata")
Checkpoint.__doc__ = "An MM2 checkpoint: group, remote topic, partition, upstream/downstream offsets, metadata."
Heartbeat = namedtuple("Heartbeat", "source target timestamp")


def decode_checkpoint(key, value):
    """A record of ``<source>.checkpoints.internal`` -> Checkpoint (ValueError if malformed)."""
    k, v = _Reader("checkpoint key", key), _Reader("checkpoint value", value)
    group, topic, partition = k.string(), k.string(), k.take(">i")
    k.done()
    v.version()
    upstream, downstream, metadata = v.take(">q"), v.take(">q"), v.string()
    v.done()
    return Checkpoint(group, topic, partition, upstream, downstream, metadata)


def decode_heartbeat(key, value):
    """A record of a ``heartbeats`` topic -> Heartbeat (ValueError if malformed)."""
    k, v = _Reader("heartbeat key", key), _Reader("heartbeat value", value)
    source, target = k.string(), k.string()
    k.done()
    v.version()
    ts = v.take(">q")
    v.done()
    return Heartbeat(source, target, ts)


def decode_offset_sync(key, value):
    """A record of ``mm2-offset-syncs.<cluster>.internal`` -> (topic, partition, upstream,
    downstream); no version header."""
    k, v = _Reader("offset sync key", key), _Reader("offset sync value", value)
    topic, partition = k.string(), k.take(">i")
    k.done()
    upstream, downstream = v.take(">q"), v.take(">q")
    v.done()
    return topic, partition, upstream, downstream
