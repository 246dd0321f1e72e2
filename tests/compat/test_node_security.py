"""The nodes' own traffic over SASL_SSL: replica fetches and the controller quorum on both
brokers, the way Kafka configures it.

A 3-node cluster (all voters) of each kind whose inter-broker listener (INTERNAL) and CONTROLLER
listener are SASL_SSL with PLAIN: a certificate of the test's CA on each, the CA as the trust
store, ``sasl.mechanism.inter.broker.protocol`` and ``sasl.mechanism.controller.protocol`` PLAIN,
and the node identity ``broker`` in each listener's JAAS entry (``harness.cluster``'s
``secure_nodes``). Clients keep a PLAINTEXT listener.

1. The cluster forms, a topic with 3 replicas gets its full ISR (the followers fetch over
   SASL_SSL), 2,000 records produced with acks=all are read back; the leader killed with
   SIGKILL, a new one is elected (Raft over SASL_SSL) and 1,000 more records are acknowledged
   and read back with the first ones.
2. A client that speaks plaintext to the INTERNAL listener gets no answer (the listener closes
   it), and the cluster goes on.
3. Brokers that are not voters: node 4, with the right password, registers (the metadata log
   reaches it over its SASL_SSL inter-broker listener) and leads a partition replicated to two
   voters; node 5, whose own password is wrong, never registers and its log names the refused
   authentication.

4. Mutual TLS instead of SASL: INTERNAL and CONTROLLER are SSL listeners requiring client
   certificates, each node presents its listener's certificate, and the StandardAuthorizer
   knows the nodes by their certificate's subject (``super.users`` = User:CN=broker). Three
   voters and a fourth broker with such a certificate form the cluster, and the fourth leads a
   partition replicated to two voters with a full ISR and acks=all; a fifth broker whose
   certificate (of the same CA) names CN=intruder is not allowed ClusterAction, so it never
   registers, and the refusal is logged. A BrokerHeartbeat sent to a voter's CONTROLLER
   listener with a CN=intruder client certificate is answered CLUSTER_AUTHORIZATION_FAILED;
   the same request with a CN=broker certificate is not.

Each test makes its own cluster (about 20 s on Strata, 40 s on Kafka). In the compatibility
suites rather than beside the replicated-cluster suite's 6-node cluster, which stays up for the
whole of that package.
"""
import socket
import ssl
import struct

import pytest

from harness import data, unique_topic, wait_until
from harness.cluster import NODE_USER, make_cluster, node_jaas
from harness.tls import Certs

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def secure_cluster(target_kind, tmp_path):
    c = make_cluster(target_kind, tmp_path / "cluster", brokers=3, secure_nodes=Certs(tmp_path / "ca"),
                     props={"offsets.topic.replication.factor": "3", "min.insync.replicas": "2",
                            "group.initial.rebalance.delay.ms": "0"})
    try:
        yield c.start()
    finally:
        c.close()


def values(records):
    return [r.value for part in sorted(records) for r in records[part]]


def node_4_leads_a_partition(c, prefix):
    """Node 4 (not a voter) leads a partition replicated to voters 1 and 2 with a full ISR, and
    500 records produced with acks=all are read back."""
    topic = unique_topic(prefix)
    c.create_topic(topic, partitions=1, replication_factor=3, assignment=[[4, 1, 2]])
    c.wait_isr_full(topic)
    c.wait_partitions(topic, lambda ps: ps[0].leader == 4, "node 4 leading")
    data.produce(c.bootstrap([1, 2, 3, 4]), topic, 500, 1, extra={"acks": "all"})
    assert len(values(data.read_all(c.bootstrap([1, 2, 3, 4]), topic))) == 500


def test_replication_and_the_quorum_over_sasl_ssl(secure_cluster):
    c = secure_cluster
    topic = unique_topic("secure-nodes")
    c.create_topic(topic, partitions=1, replication_factor=3)
    c.wait_isr_full(topic)
    data.produce(c.bootstrap(), topic, 2000, 1, extra={"acks": "all"})
    first = data.read_all(c.bootstrap(), topic)
    assert len(values(first)) == 2000

    old = c.leader(topic)
    c.kill9(old)
    c.wait_partitions(topic, lambda ps: ps[0].leader not in (-1, old), "a new leader after SIGKILL")
    data.produce(c.healthy_bootstrap(), topic, 1000, 1, start=2000, extra={"acks": "all"})
    after = data.read_all(c.healthy_bootstrap(), topic)
    assert values(after)[:2000] == values(first) and len(values(after)) == 3000

    c.start_node(old)
    c.wait_isr_full(topic)


def test_plaintext_to_the_internal_listener_gets_no_answer(secure_cluster):
    c = secure_cluster
    node = c.node(1)
    # ApiVersions v0, framed: a TLS listener reads it as a broken handshake and closes.
    request = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
    with socket.create_connection((node.host, node.internal_port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(request)) + request)
        s.settimeout(10)
        answer = b""
        try:
            while len(answer) < 4:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    assert len(answer) < 4 or struct.unpack(">i", answer[:4])[0] != len(answer) - 4 or answer[4:8] != b"\0\0\0\1", \
        f"a Kafka answer in plaintext: {answer[:64]!r}"
    assert c.registered() == {1, 2, 3}


def test_brokers_that_are_not_voters_join_with_the_right_password_only(target_kind, tmp_path):
    c = make_cluster(target_kind, tmp_path / "cluster", brokers=5, voters=3, secure_nodes=Certs(tmp_path / "ca"))
    try:
        c._layout()
        wrong = node_jaas("not-" + NODE_USER[1])
        c.node(5).overrides = {f"listener.name.{listener}.plain.sasl.jaas.config": wrong
                               for listener in ("internal", "controller")}
        for i in c.nodes:
            c.node(i).start()
        wait_until(lambda: c.registered(1) == {1, 2, 3, 4}, 120, "nodes 1 to 4 registered")
        log_says = ("Authentication failed", "authentication failed", "invalid credentials",
                    "Invalid username or password")
        wait_until(lambda: any(s in c.node(5).log_path.read_text(errors="replace") for s in log_says), 60,
                   "node 5's log to name the refused authentication")
        assert 5 not in c.registered(1), c.registered(1)
        c.stop_node(5)  # (the harness's waits ask every running node, and 5 serves no one)
        node_4_leads_a_partition(c, "secure-4")
    finally:
        c.close()


CLUSTER_AUTHORIZATION_FAILED = 31


def broker_heartbeat_error(node, certs, subject):
    """The error code of a BrokerHeartbeat v0 (for broker 4, epoch 0) sent to ``node``'s
    CONTROLLER listener by a client presenting a certificate whose subject is ``subject``."""
    cn = subject.removeprefix("CN=")
    crt, key, _ = certs.client(f"heartbeat-{cn}", subject=f"/{subject}")
    context = ssl.create_default_context(cafile=str(certs.ca))
    context.load_cert_chain(str(crt), str(key))
    client = b"heartbeat-probe"
    # header v2 (flexible): api key 63, version 0, correlation id, client id, no tagged fields
    header = struct.pack(">hhih", 63, 0, 7, len(client)) + client + b"\0"
    # broker id, broker epoch, current metadata offset, want fence, want shut down, no tags
    body = struct.pack(">iqq??", 4, 0, 0, False, False) + b"\0"
    request = header + body
    with socket.create_connection((node.host, node.controller_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=node.host) as s:
            s.sendall(struct.pack(">i", len(request)) + request)
            answer = b""
            while len(answer) < 4 or len(answer) < 4 + struct.unpack(">i", answer[:4])[0]:
                chunk = s.recv(4096)
                assert chunk, f"the CONTROLLER listener closed the connection ({subject})"
                answer += chunk
    # size, correlation id, header tags (one byte: none), throttle time, error code
    correlation, = struct.unpack(">i", answer[4:8])
    assert correlation == 7, answer
    return struct.unpack(">h", answer[13:15])[0]


MTLS_PROPS = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    # The nodes by their certificate; the harness's own clients come in on PLAINTEXT.
    "super.users": "User:CN=broker;User:ANONYMOUS",
}


def test_mutual_tls_between_the_nodes_with_certificate_principals(target_kind, tmp_path):
    c = make_cluster(target_kind, tmp_path / "cluster", brokers=5, voters=3, secure_nodes=Certs(tmp_path / "ca"),
                     node_auth="mtls", props=MTLS_PROPS)
    try:
        c._layout()
        c.node(5).cert_cn = "intruder"
        for i in c.nodes:
            c.node(i).start()
        wait_until(lambda: c.registered(1) == {1, 2, 3, 4}, 120, "nodes 1 to 4 registered")

        def refusal_logged():
            if target_kind == "kafka":  # the voters' authorizer log, for the intruder's Raft fetches
                return any("User:CN=intruder is Denied operation = CLUSTER_ACTION"
                           in c.node(i).log_path.read_text(errors="replace") for i in (1, 2, 3))
            # Strata: the intruder's registration, refused by the active controller
            return "refused the registration: CLUSTER_AUTHORIZATION_FAILED" in c.node(5).log_path.read_text()
        wait_until(refusal_logged, 60, "the intruder's refusal in a log")
        assert 5 not in c.registered(1), c.registered(1)
        c.stop_node(5)
        voter = c.node(1)
        certs = c.secure_nodes
        assert broker_heartbeat_error(voter, certs, "CN=intruder") == CLUSTER_AUTHORIZATION_FAILED
        assert broker_heartbeat_error(voter, certs, "CN=broker") != CLUSTER_AUTHORIZATION_FAILED
        node_4_leads_a_partition(c, "mtls-4")
    finally:
        c.close()
