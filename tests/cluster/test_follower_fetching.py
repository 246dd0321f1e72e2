"""Follower fetching (KIP-392): with ``replica.selector.class`` set to Kafka's
RackAwareReplicaSelector on every node (CLUSTER_PROPS), a Java consumer (kafka-console-consumer)
with ``client.rack=b`` reading a partition led in rack a (replicas 4 in rack a, 5 in rack b, 6 in
rack c) is sent by the leader to the rack-b follower and reads every record from it, including
records written after it had caught up (the follower's high watermark follows the leader's and
wakes its long poll); a consumer without ``client.rack`` reads from the leader only.

Which broker served each fetch comes from the Java consumer's own DEBUG log, the same client on
both implementations: ``AbstractFetch`` logs every fetch it adds (partition, position, target
node), ``FetchCollector`` logs each preferred read replica a leader names. About 15 s per
implementation (two consumer JVMs run side by side)."""
import os
import re

import pytest

from harness import KAFKA_SH, unique_topic, wait_until
from harness.process import ManagedProcess
from harness.replication import produce_sync

REPLICAS = [4, 5, 6]  # leader 4 (rack a), followers 5 (rack b) and 6 (rack c)
LEADER, RACK_B_FOLLOWER = 4, 5
BEFORE = 200  # records written before the consumers start
AFTER = 200  # records written once both consumers have read the first ones

# One line per fetch the consumer adds to a request; the target node ends the line (the position
# also names the leader, so the node is taken from the last "to node").
_FETCH_RE = re.compile(r"Added \w+ fetch request for partition (\S+) at position "
                       r"FetchPosition\{offset=(\d+).* to node \S+ \(id: (\d+) rack")
_PREFERRED_RE = re.compile(r"Updating preferred read replica for partition (\S+) to (\d+)")
_VALUE_RE = re.compile(r"^\d+\.\d+$")

_LOG4J = """status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
appender.fetch.type = File
appender.fetch.name = FETCH
appender.fetch.fileName = {path}
appender.fetch.layout.type = PatternLayout
appender.fetch.layout.pattern = %m%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
logger.fetch.name = org.apache.kafka.clients.consumer.internals.AbstractFetch
logger.fetch.level = DEBUG
logger.fetch.additivity = false
logger.fetch.appenderRef.fetch.ref = FETCH
logger.collect.name = org.apache.kafka.clients.consumer.internals.FetchCollector
logger.collect.level = DEBUG
logger.collect.additivity = false
logger.collect.appenderRef.fetch.ref = FETCH
"""


class FetchLoggingConsumer(ManagedProcess):
    """``kafka-console-consumer`` reading partition 0 of ``topic`` from the earliest offset (no
    group) until it has ``max_messages`` values, with ``client.rack`` = ``rack`` when given, and
    its fetch decisions logged at DEBUG to ``<work_dir>/<name>-fetch.log``."""

    what = "kafka-console-consumer"

    def __init__(self, work_dir, bootstrap, topic, name, max_messages, rack=None):
        super().__init__(work_dir / f"{name}.log")
        self.name, self.topic = name, topic
        self.fetch_log = work_dir / f"{name}-fetch.log"
        self.log4j = work_dir / f"{name}-log4j2.properties"
        self.log4j.write_text(_LOG4J.replace("{path}", str(self.fetch_log)))
        self.args = ["--bootstrap-server", bootstrap, "--topic", topic, "--partition", "0",
                     "--offset", "earliest", "--max-messages", str(max_messages), "--timeout-ms", "90000"]
        if rack is not None:
            self.args += ["--consumer-property", f"client.rack={rack}"]

    def start(self):
        env = dict(os.environ)
        # The later -D wins over kafka.sh's own log4j configuration.
        env["KAFKA_TOOL_OPTS"] = f"{env.get('KAFKA_TOOL_OPTS', '')} -Dlog4j2.configurationFile={self.log4j}"
        self._popen([str(KAFKA_SH), "tool", "console-consumer", *self.args], env=env)
        return self

    def values(self):
        return [line for line in self.log_text().splitlines() if _VALUE_RE.match(line)]

    def _debug_lines(self):
        try:
            return self.fetch_log.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def fetches(self):
        """[(fetch offset, target node id)] of the partition, in the order the consumer sent them."""
        out = []
        for line in self._debug_lines():
            m = _FETCH_RE.search(line)
            if m and m.group(1) == f"{self.topic}-0":
                out.append((int(m.group(2)), int(m.group(3))))
        return out

    def preferred(self):
        """Every preferred read replica a leader named for the partition."""
        return [int(m.group(2)) for m in map(_PREFERRED_RE.search, self._debug_lines())
                if m and m.group(1) == f"{self.topic}-0"]


@pytest.mark.timeout(300)
def test_rack_b_consumer_reads_from_the_rack_b_follower(healthy_cluster, target_kind, tmp_path):
    c = healthy_cluster
    assert [c.rack_of(r) for r in REPLICAS] == ["a", "b", "c"]
    topic = unique_topic("ffetch")
    c.create_topic(topic, assignment=[REPLICAS])
    assert c.leader(topic) == LEADER, f"{target_kind}: {c.partitions(topic)}"
    first = [f"1.{i}" for i in range(BEFORE)]
    acks, errors = produce_sync(c.bootstrap(), topic, first)
    assert not errors and len(acks) == BEFORE, f"{target_kind}: {errors}"

    total = BEFORE + AFTER
    in_b = FetchLoggingConsumer(tmp_path, c.bootstrap(), topic, "rack-b", total, rack="b").start()
    no_rack = FetchLoggingConsumer(tmp_path, c.bootstrap(), topic, "no-rack", total).start()
    try:
        for consumer in (in_b, no_rack):
            wait_until(lambda: len(consumer.values()) >= BEFORE, 120,
                       f"{consumer.name} consumer reading the first {BEFORE} records ({target_kind})")
        # Written now: the rack-b consumer waits on the follower, whose HW must follow the leader's.
        second = [f"2.{i}" for i in range(AFTER)]
        acks, errors = produce_sync(c.bootstrap(), topic, second)
        assert not errors and len(acks) == AFTER, f"{target_kind}: {errors}"
        for consumer in (in_b, no_rack):
            code = consumer.wait_exit(120)
            assert code == 0, f"{target_kind}: {consumer.name} consumer exited {code}:\n{consumer.log_tail(30)}"
    finally:
        in_b.stop()
        no_rack.stop()

    for consumer in (in_b, no_rack):
        assert consumer.values() == first + second, \
            f"{target_kind}: {consumer.name} consumer read {len(consumer.values())} values, not the {total} written"

    # client.rack=b: the leader names the rack-b follower once; every later fetch goes there,
    # among them all fetches at the offsets written after the consumer had caught up.
    fetches = in_b.fetches()
    assert fetches, f"{target_kind}: no fetch in {in_b.fetch_log}"
    assert fetches[0][1] == LEADER, f"{target_kind}: first fetch {fetches[0]} not sent to the leader"
    assert set(in_b.preferred()) == {RACK_B_FOLLOWER}, \
        f"{target_kind}: preferred read replicas named {in_b.preferred()}"
    redirected = next(i for i, (_, node) in enumerate(fetches) if node != LEADER)
    assert {node for _, node in fetches[redirected:]} == {RACK_B_FOLLOWER}, \
        f"{target_kind}: fetches after the redirect: {fetches[redirected:]}"
    late = [(offset, node) for offset, node in fetches if offset >= BEFORE]
    assert late and {node for _, node in late} == {RACK_B_FOLLOWER}, f"{target_kind}: {late}"

    # No client.rack: the leader serves every fetch and names no other replica.
    fetches = no_rack.fetches()
    assert fetches and {node for _, node in fetches} == {LEADER}, f"{target_kind}: {fetches}"
    assert not no_rack.preferred(), f"{target_kind}: {no_rack.preferred()}"
