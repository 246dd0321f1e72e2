"""Follower fetching (KIP-392): with ``replica.selector.class`` set to Kafka's
RackAwareReplicaSelector on every node (CLUSTER_PROPS), a Java consumer (kafka-console-consumer)
with ``client.rack=b`` reading a partition led in rack a (replicas 4 in rack a, 5 in rack b, 6 in
rack c) is sent by the leader to the rack-b follower and reads every record from it, including
records written after it had caught up (the follower's high watermark follows the leader's and
wakes its long poll: the consumers wait up to 60 s per fetch, the records arrive well before);
a consumer without ``client.rack`` reads from the leader only.

Then the answers themselves, request by request (built and decoded by kafka-python's protocol
layer, sent to one chosen node): the leader names the follower of the client's rack in
``preferred_read_replica`` with no records (in an incremental fetch session too), and serves a
client of its own rack, of no rack or of a rack without a replica; a follower serves a
consumer's Fetch v11+ up to its high watermark, answers an offset beyond its log end with
OFFSET_OUT_OF_RANGE and a Fetch v10 (no client metadata) with NOT_LEADER_OR_FOLLOWER, like a
broker that holds no replica. With the third replica frozen (SIGSTOP) the leader's HW cannot
pass what that replica holds: records written meanwhile (acks=1) reach follower 5's log but stay
invisible there, at and above its HW.

Which broker served each fetch comes from the Java consumer's own DEBUG log, the same client on
both implementations: ``AbstractFetch`` logs every fetch it adds (partition, position, target
node), ``FetchCollector`` logs each preferred read replica a leader names. About 10 s per
implementation on top of the shared cluster (two consumer JVMs run side by side)."""
import os
import re

import pytest

from harness import KAFKA_SH, unique_topic, wait_until
from harness.process import ManagedProcess
from harness.replication import produce_sync

NONE, OFFSET_OUT_OF_RANGE, NOT_LEADER_OR_FOLLOWER = 0, 1, 6

REPLICAS = [4, 5, 6]  # leader 4 (rack a), followers 5 (rack b) and 6 (rack c)
LEADER, RACK_B_FOLLOWER = 4, 5
BEFORE = 200  # records written before the consumers start
AFTER = 200  # records written once both consumers have read the first ones
FETCH_MAX_WAIT_MS = 60000
WOKEN_WITHIN = 20  # seconds, well below FETCH_MAX_WAIT_MS

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
        # Long polls outlast the test's deadlines: records written while the consumer waits
        # arrive in time only if the serving broker's long poll wakes when its HW moves.
        props = {"fetch.max.wait.ms": FETCH_MAX_WAIT_MS, "request.timeout.ms": FETCH_MAX_WAIT_MS + 30000}
        if rack is not None:
            props["client.rack"] = rack
        for k, v in props.items():
            self.args += ["--consumer-property", f"{k}={v}"]

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
            wait_until(lambda: len(consumer.values()) >= total, WOKEN_WITHIN,
                       f"{consumer.name} consumer reading the {AFTER} later records, its fetch waiting "
                       f"up to {FETCH_MAX_WAIT_MS} ms ({target_kind})")
    finally:
        # kill -9: a consumer closing waits (up to 30 s) for the long poll it has in flight.
        in_b.kill9()
        no_rack.kill9()

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


def _fetch_response(admin, node_id, topic, offset, version, rack=None, session=(0, -1)):
    """One consumer Fetch (replica id -1, no wait) sent to ``node_id``: partition 0 of ``topic``
    at ``offset`` (``topic`` None: no partition, as an incremental fetch with nothing new to
    say), in fetch session ``session`` (id, epoch; (0, -1): none); returns the response."""
    from kafka.protocol.consumer import FetchRequest
    T = FetchRequest.FetchTopic
    P = T.FetchPartition
    topics = [] if topic is None else [
        T(topic=topic, partitions=[P(partition=0, fetch_offset=offset, partition_max_bytes=1 << 20)])]
    fields = dict(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0,
                  session_id=session[0], session_epoch=session[1], forgotten_topics_data=[],
                  topics=topics)
    if rack is not None:
        fields["rack_id"] = rack
    req = FetchRequest(min_version=version, max_version=version, **fields)

    async def go():
        return await admin._manager.send(req, node_id=node_id)

    return admin._manager.run(go)


def _fetch(admin, node_id, topic, offset, version, rack=None):
    """The partition answer of a Fetch of partition 0 at ``offset`` outside any session."""
    [t] = _fetch_response(admin, node_id, topic, offset, version, rack).responses
    [part] = t.partitions
    return part


def _answer(part):
    """(error, high watermark, preferred read replica or None, has records) of a partition answer."""
    preferred = getattr(part, "preferred_read_replica", -1)
    return part.error_code, part.high_watermark, preferred, bool(part.records)


@pytest.mark.timeout(300)
def test_fetch_answers_of_leader_and_followers(healthy_cluster, target_kind):
    from kafka import KafkaAdminClient
    c = healthy_cluster
    topic = unique_topic("ffetch-wire")
    c.create_topic(topic, assignment=[REPLICAS])
    assert c.leader(topic) == LEADER, f"{target_kind}: {c.partitions(topic)}"
    written = 100
    acks, errors = produce_sync(c.bootstrap(), topic, [f"1.{i}" for i in range(written)])
    assert not errors and len(acks) == written, f"{target_kind}: {errors}"
    admin = KafkaAdminClient(bootstrap_servers=c.bootstrap(), request_timeout_ms=30000)
    try:
        def at(node, offset=0, version=12, rack=None):
            return _answer(_fetch(admin, node, topic, offset, version, rack))

        # The followers learn the leader's HW with their next fetch.
        for follower in (5, 6):
            wait_until(lambda: at(follower)[:2] == (NONE, written), 30,
                       f"follower {follower} serving up to HW {written} ({target_kind})")
        answers = {
            "leader, client in rack b": at(LEADER, rack="b"),
            "leader, client in rack c": at(LEADER, rack="c"),
            "leader, client in its own rack a": at(LEADER, rack="a"),
            "leader, client without rack": at(LEADER, rack=""),
            "leader, client in a rack without replica": at(LEADER, rack="z"),
            "follower 5 at offset 0": at(5),
            "follower 5 at its log end": at(5, offset=written),
            "follower 5 beyond its log end": at(5, offset=written + 50)[:1],
            "follower 5, Fetch v10": at(5, version=10)[:1],
            "node 1, no replica": at(1)[:1],
        }
        # In a fetch session the leader's answer naming a replica is sent even when nothing
        # else changed: a session opened without a rack, then an incremental fetch from rack b.
        opened = _fetch_response(admin, LEADER, topic, written, 12, rack="", session=(0, 0))
        assert opened.error_code == NONE and opened.session_id != 0, f"{target_kind}: {opened}"
        incremental = _fetch_response(admin, LEADER, None, 0, 12, rack="b", session=(opened.session_id, 1))
        answers["leader, incremental fetch from rack b"] = [
            (t.topic, _answer(p)) for t in incremental.responses for p in t.partitions]
    finally:
        admin.close()
    assert answers == {
        "leader, client in rack b": (NONE, written, 5, False),
        "leader, client in rack c": (NONE, written, 6, False),
        "leader, client in its own rack a": (NONE, written, -1, True),
        "leader, client without rack": (NONE, written, -1, True),
        "leader, client in a rack without replica": (NONE, written, -1, True),
        "follower 5 at offset 0": (NONE, written, -1, True),
        "follower 5 at its log end": (NONE, written, -1, False),
        "follower 5 beyond its log end": (OFFSET_OUT_OF_RANGE,),
        "follower 5, Fetch v10": (NOT_LEADER_OR_FOLLOWER,),
        "node 1, no replica": (NOT_LEADER_OR_FOLLOWER,),
        "leader, incremental fetch from rack b": [(topic, (NONE, written, 5, False))],
    }, f"{target_kind}: {answers}"


@pytest.mark.timeout(300)
def test_follower_hides_offsets_above_its_high_watermark(healthy_cluster, target_kind):
    from confluent_kafka import Producer
    from kafka import KafkaAdminClient
    c = healthy_cluster
    topic = unique_topic("ffetch-hw")
    c.create_topic(topic, assignment=[REPLICAS])
    hw = 100
    acks, errors = produce_sync(c.bootstrap(), topic, [f"1.{i}" for i in range(hw)])
    assert not errors and len(acks) == hw, f"{target_kind}: {errors}"
    admin = KafkaAdminClient(bootstrap_servers=c.bootstrap(), request_timeout_ms=30000)
    try:
        def at(node, offset):
            return _answer(_fetch(admin, node, topic, offset, 12))

        wait_until(lambda: at(5, 0)[:2] == (NONE, hw), 30, f"follower 5 at HW {hw} ({target_kind})")
        # Replica 6 frozen while in the ISR: the HW stays at what it holds until it is dropped
        # (replica.lag.time.max.ms, 6 s), and that window is the one this test reads in.
        c.sigstop(6)
        p = Producer({"bootstrap.servers": c.bootstrap(), "acks": "1", "linger.ms": 0, "log_level": 2})
        for i in range(10):
            p.produce(topic, f"2.{i}".encode(), partition=0)
        assert p.flush(30) == 0, f"{target_kind}: 10 acks=1 records not acknowledged"
        # Follower 5 holds them once an offset past them is no longer out of range there.
        wait_until(lambda: at(5, hw + 10)[0] == NONE, 5, f"follower 5 holding offsets {hw}..{hw + 9}")
        at_hw, above_hw = at(5, hw), at(5, hw + 5)
        leader = at(LEADER, hw)
    finally:
        admin.close()
        c.sigcont(6)
    # Read after the follower's answers: the leader's HW had not moved, so neither had the follower's.
    assert leader[:2] == (NONE, hw), \
        f"{target_kind}: the leader's HW moved before the follower was read (machine too slow?): {leader}"
    assert at_hw == (NONE, hw, -1, False), f"{target_kind}: {at_hw}"
    assert above_hw == (NONE, hw, -1, False), f"{target_kind}: {above_hw}"
