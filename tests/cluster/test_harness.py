"""The harness of this suite checked on its own, without brokers: the replication checker finds each
kind of fault it reports, a node's server.properties is a Kafka KRaft node's, the namespace
network cuts exactly one node off from the others (clients still reach it), heals, and leaves
nothing behind, and the node operations work on a Strata node."""
import socket
import subprocess
import sys

import pytest

from harness.cluster import CLUSTER_PROPS, make_cluster, metadata_request
from harness.netns import BridgeNetwork, NetworkUnavailable
from harness.replication import Ack, check_records, produce_sync, read_back
from harness.util import wait_until

from .conftest import CLUSTER_TARGETS

# Once per test command: in the pytest that runs this suite on Strata, not again in the one
# that runs it on the Kafka reference.
pytestmark = pytest.mark.skipif("strata" not in CLUSTER_TARGETS,
                                reason="the harness's own tests run in the pytest that runs this suite on Strata")


def test_checker_counts_lost_duplicate_conflicting_and_reordered_records():
    acks = [Ack(0, 0, "1.0"), Ack(0, 1, "1.1"), Ack(0, 2, "1.2"), Ack(1, 0, "2.0"), Ack(1, 1, "2.1"),
            Ack(1, 2, "2.2"), Ack(1, 2, "9.9"), Ack(0, 9, "1.9")]
    read = {0: [(0, "1.0"), (1, "1.1"), (2, "1.2"), (3, "1.2"),  # 1.2 written twice
                (4, "1.9")],  # acked at offset 9, read at 4
            1: [(0, "2.0"), (1, "7.5"), (2, "2.2"), (3, "2.1")]}  # 2.1 after 2.2; offset 1 holds 7.5
    res = check_records(acks, read)
    assert [a.value for a in res.lost] == ["9.9"]
    assert [d[0] for d in res.duplicates] == ["1.2"]
    kinds = sorted(c[0] for c in res.conflicts)
    assert kinds == ["acked offset holds another value", "acked value read at another offset",
                     "two acks for one offset"], res.conflicts
    assert [(r[0], r[1]) for r in res.reordered] == [(1, 3)]
    assert res.unacked_read == 1 and not res.ok

    clean = check_records(acks[:6], {0: [(0, "1.0"), (1, "1.1"), (2, "1.2")],
                                     1: [(0, b"2.0"), (1, b"2.1"), (2, b"2.2   ")]})
    assert clean.ok and clean.counts()["lost"] == 0 and clean.read == 6, clean

    # a delivery report without an offset (librdkafka's answer to DUPLICATE_SEQUENCE_NUMBER): the
    # record must be there, anywhere; absent, it is lost
    no_offset = check_records([Ack(0, None, "1.0"), Ack(0, -1, "1.5")], {0: [(3, "1.0")]})
    assert [a.value for a in no_offset.lost] == ["1.5"] and not no_offset.conflicts, no_offset
    assert no_offset.acked_without_offset == 2

    # a re-sent batch (copies in one partition) is tolerated on the Kafka reference only; copies
    # in two partitions fail both
    acks = [Ack(0, 0, "1.0"), Ack(0, 2, "1.1")]
    resent = check_records(acks, {0: [(0, "1.0"), (1, "1.1"), (2, "1.1")]})
    assert resent.resent and resent.ok_for("kafka") and not resent.ok_for("strata"), resent
    apart = check_records(acks, {0: [(0, "1.0"), (2, "1.1")], 1: [(0, "1.1")]})
    assert not apart.resent and not apart.ok_for("kafka"), apart


def test_node_properties_are_a_kafka_kraft_nodes(tmp_path):
    c = make_cluster("strata", tmp_path, brokers=6, racks="a,b,c", props=CLUSTER_PROPS)
    c._layout()
    n1, n5 = c.nodes[1].properties(), c.nodes[5].properties()
    voters = ",".join(f"{i}@127.0.0.1:{c.nodes[i].controller_port}" for i in (1, 2, 3))
    assert n1["process.roles"] == "broker,controller" and n5["process.roles"] == "broker"
    assert n1["controller.quorum.voters"] == n5["controller.quorum.voters"] == voters
    assert n1["listeners"] == f"PLAINTEXT://127.0.0.1:{c.nodes[1].port},CONTROLLER://127.0.0.1:{c.nodes[1].controller_port}"
    assert n5["listeners"] == f"PLAINTEXT://127.0.0.1:{c.nodes[5].port}"
    assert n5["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{c.nodes[5].port}"
    for props, node_id, rack in ((n1, 1, "a"), (n5, 5, "b")):
        assert props["node.id"] == str(node_id) and props["broker.rack"] == rack
        assert props["controller.listener.names"] == "CONTROLLER"
        assert props["inter.broker.listener.name"] == "PLAINTEXT"
        assert props["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        assert props["cluster.id"] == c.cluster_id and props["log.dirs"] == str(c.nodes[node_id].data_dir)
        assert props["min.insync.replicas"] == "2"
    assert len({c.nodes[i].port for i in c.nodes} | {c.nodes[i].controller_port for i in c.nodes}) == 12


SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7000)); s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"hi"); c.close()
"""
CLIENT = r"""
import socket, sys
try:
    with socket.create_connection((sys.argv[1], 7000), timeout=1.0) as c:
        sys.exit(0 if c.recv(2) == b"hi" else 1)
except OSError:
    sys.exit(1)
"""


def test_namespace_network_isolates_one_node_and_leaves_nothing_behind():
    net = BridgeNetwork(3)
    try:
        net.open()
    except NetworkUnavailable as e:
        pytest.skip(f"network namespaces unavailable here: {e}")
    server = None
    try:
        server = subprocess.Popen(net.wrap(2, [sys.executable, "-c", SERVER, net.address(2)]),
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"

        def from_node(i):
            cmd = net.wrap(i, [sys.executable, "-c", CLIENT, net.address(2)])
            return subprocess.run(cmd, timeout=30).returncode == 0

        def from_client():
            try:
                with socket.create_connection((net.address(2), 7000), timeout=1.0) as s:
                    return s.recv(2) == b"hi"
            except OSError:
                return False

        assert from_node(1) and from_node(3) and from_client()
        net.isolate(2)
        assert not from_node(1) and not from_node(3), "node 2 still reachable from the other nodes"
        assert from_client(), "clients must still reach an isolated node"
        net.heal(2)
        wait_until(lambda: from_node(1) and from_node(3), 10, "node 2 reachable again after heal")
        net.isolate(1)
        assert not from_node(1) and from_node(3) and from_client(), "only node 1 is cut off"
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=30)
        net.close()
    assert net.leftovers() == [], f"left behind: {net.leftovers()}"



def test_strata_node_lifecycle_keeps_data(tmp_path):
    """The node operations on a one-node Strata cluster (a single voter; works before #16 too):
    start, SIGSTOP/SIGCONT, kill -9 and restart on the same data and address."""
    c = make_cluster("strata", tmp_path, brokers=1, voters=1, props=dict(CLUSTER_PROPS, **{
        "default.replication.factor": "1", "min.insync.replicas": "1", "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1", "transaction.state.log.min.isr": "1"}))
    try:
        c.start()
        assert c.registered(1) == {1}
        c.create_topic("lifecycle", partitions=1, replication_factor=1)
        acks, errors = produce_sync(c.bootstrap(), "lifecycle", [f"1.{i}" for i in range(100)], idempotent=True)
        assert len(acks) == 100 and not errors
        c.sigstop(1)
        assert c.healthy() == []
        with pytest.raises(OSError):
            metadata_request(c.nodes[1].host, c.nodes[1].port, topics=[], timeout=1.0)
        c.sigcont(1)
        c.wait_registered([1], timeout=30)
        pid = c.nodes[1].pid
        c.kill9(1)
        assert not c.nodes[1].running() and c.healthy() == []
        c.start_node(1, timeout=30)
        assert c.nodes[1].pid != pid
        res = check_records(acks, read_back(c.bootstrap(), "lifecycle"))
        assert res.ok and res.read == 100, res
    finally:
        c.close()
    assert not c.nodes[1].running()
