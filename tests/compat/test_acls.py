"""ACLs with Kafka's StandardAuthorizer semantics, managed by Kafka's ``kafka-acls`` and enforced
on Kafka clients (confluent-kafka) authenticated with SASL/PLAIN.

The module's broker (each target) runs ``authorizer.class.name`` =
``org.apache.kafka.metadata.authorizer.StandardAuthorizer`` with ``super.users`` = User:admin and
User:ANONYMOUS (the PLAINTEXT listener: the harness's readiness check, the Kafka reference's
controller and inter-broker traffic, and the tools below) and
``allow.everyone.if.no.acl.found=false``; alice and bob are PLAIN users of its SASL_PLAINTEXT
listener. Every ACL change goes through ``kafka-acls`` on the PLAINTEXT listener; a client waits
for the change with a deadline (the broker applies it from the metadata log). Against both
targets:

1. ``kafka-acls`` adds literal and prefixed ACLs, lists them (also per resource and per
   principal), and removes them.
2. Produce: refused with TOPIC_AUTHORIZATION_FAILED without WRITE, accepted once it is granted.
3. Consume in a group: GROUP_AUTHORIZATION_FAILED without READ on the group, records read once
   READ on the group and the topic are granted (prefixed ACLs).
4. Metadata lists only the topics the principal may describe (READ implies DESCRIBE); the
   authorized-operations fields of Metadata, DescribeCluster and DescribeGroups (KIP-430, asked
   by confluent-kafka's describe calls) name what the principal may do, everything for a super
   user.
5. DENY wins over ALLOW: an ALLOW of ALL to ``User:*`` on a prefix and a DENY of WRITE to alice
   on one topic under it: bob writes, alice does not.
6. Topic administration: create, delete and describe-configs are refused with
   TOPIC_AUTHORIZATION_FAILED without CREATE / DELETE / DESCRIBE_CONFIGS; CREATE on the
   cluster lets alice create topics.
7. A super user (admin over SASL) needs no ACL; a non-super user cannot manage ACLs
   (CLUSTER_AUTHORIZATION_FAILED in ``kafka-acls``).
8. ``allow.everyone.if.no.acl.found=true`` (a second broker): a topic without ACLs is open to
   everyone, a topic with an ACL for bob only is closed to alice.
9. Mutual TLS: the principal of a client certificate is its subject mapped by
   ``ssl.principal.mapping.rules`` (a rule, then DEFAULT); ACLs name those principals.
10. ACLs persist across a restart (the module's broker, restarted by the last test).
"""
from __future__ import annotations

import time

import pytest
from confluent_kafka import (Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, Producer,
                             TopicCollection, TopicPartition)
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, ConfigResource,
                                   NewTopic, ResourcePatternType, ResourceType)

from harness import data, kafka_tool, unique_topic, wait_until
from harness.pytest_plugin import COMMON_PROPS
from harness.sasl import client_conf, java_client_properties, listener_jaas_props, start_sasl_broker
from harness.tls import Certs, start_tls_broker

pytestmark = pytest.mark.timeout(300)

USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}
AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:admin;User:ANONYMOUS",
}


def start(kind, work, certs, allow_if_no_acl: bool):
    extra = {**AUTHORIZER, "allow.everyone.if.no.acl.found": str(allow_if_no_acl).lower()}
    for listener in ("sasl_plaintext", "sasl_ssl"):
        extra.update(listener_jaas_props(listener, USERS))
    return start_sasl_broker(kind, work, certs, COMMON_PROPS, extra)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("acls") / "ca")


@pytest.fixture(scope="module")
def acl_broker(target_kind, certs, tmp_path_factory):
    b = start(target_kind, tmp_path_factory.mktemp(f"{target_kind}-acls"), certs, allow_if_no_acl=False)
    try:
        yield b
    finally:
        b.broker.stop()


def acls(broker, *args, check=True):
    return kafka_tool("acls", "--bootstrap-server", broker.plaintext, *args, timeout=120, check=check)


def conf(broker, user):
    return client_conf(broker.sasl_plaintext, "PLAIN", user, USERS[user])


def create_topic(broker, topic):
    data.create_topic(broker.plaintext, topic, 1)


def produce_outcome(broker, user, topic, n=5, client=None):
    """The error of each record's delivery (None: written); ``client``: the client settings
    (else alice's or bob's SASL/PLAIN settings by ``user``). A record librdkafka refuses at once
    (its metadata already says the topic is not authorized) counts with that error."""
    producer = Producer({**(client or conf(broker, user)), "acks": "all", "message.timeout.ms": 15000,
                         "enable.idempotence": False})
    outcomes = []
    for i in range(n):
        try:
            producer.produce(topic, f"{user}-{i}".encode(), on_delivery=lambda err, msg: outcomes.append(err))
        except KafkaException as e:
            outcomes.append(e.args[0])
    producer.flush(30)
    return outcomes


def produces(broker, user, topic, client=None) -> bool:
    outcomes = produce_outcome(broker, user, topic, client=client)
    return len(outcomes) == 5 and not any(outcomes)


def refused_code(broker, user, topic, client=None):
    outcomes = produce_outcome(broker, user, topic, client=client)
    codes = {e.code() for e in outcomes if e is not None}
    return codes.pop() if len(codes) == 1 and len(outcomes) == 5 and all(outcomes) else None


def consume(broker, user, topic, group, n, timeout=30):
    """Reads up to ``n`` records in ``group`` within ``timeout`` s; returns (values, the first
    error code the consumer reported, or None)."""
    consumer = Consumer({**conf(broker, user), "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    values = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                return values, msg.error().code()
            values.append(msg.value())
    finally:
        consumer.close()
    return values, None


def visible_topics(broker, user):
    return set(AdminClient(conf(broker, user)).list_topics(timeout=10).topics)


def test_kafka_acls_add_list_remove(acl_broker):
    """kafka-acls adds a literal and a prefixed ACL, lists them per resource and per principal,
    and removes them."""
    topic = unique_topic("acl-list")
    acls(acl_broker, "--add", "--allow-principal", "User:alice", "--operation", "Read", "--topic", topic)
    acls(acl_broker, "--add", "--allow-principal", "User:bob", "--operation", "Write",
         "--topic", "acl-list-prefix-", "--resource-pattern-type", "prefixed")
    out = acls(acl_broker, "--list", "--topic", topic).stdout
    assert "User:alice" in out and "READ" in out and "User:bob" not in out, out
    out = acls(acl_broker, "--list", "--principal", "User:bob").stdout
    assert "acl-list-prefix-" in out and "PREFIXED" in out and "WRITE" in out, out
    out = acls(acl_broker, "--list").stdout
    assert topic in out and "acl-list-prefix-" in out, out
    acls(acl_broker, "--remove", "--force", "--allow-principal", "User:alice", "--operation", "Read",
         "--topic", topic)
    acls(acl_broker, "--remove", "--force", "--topic", "acl-list-prefix-", "--resource-pattern-type", "prefixed")
    out = acls(acl_broker, "--list").stdout
    assert topic not in out and "acl-list-prefix-" not in out, out


def test_produce_needs_write(acl_broker):
    """Without WRITE alice's records are refused with TOPIC_AUTHORIZATION_FAILED; once an ACL
    grants it, they are written."""
    topic = unique_topic("acl-produce")
    create_topic(acl_broker, topic)
    assert refused_code(acl_broker, "alice", topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    acls(acl_broker, "--add", "--allow-principal", "User:alice", "--operation", "Write",
         "--operation", "Describe", "--topic", topic)
    wait_until(lambda: produces(acl_broker, "alice", topic), 60, "alice to be allowed to write")
    # Bob has no ACL: still refused.
    assert refused_code(acl_broker, "bob", topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_consume_needs_group_and_topic_read(acl_broker):
    """A consumer in a group needs READ on the topic and on the group: without the group ACL
    the group refuses it (GROUP_AUTHORIZATION_FAILED); with both (prefixed) it reads."""
    topic = unique_topic("acl-consume")
    group = f"{topic}-group"
    create_topic(acl_broker, topic)
    acls(acl_broker, "--add", "--allow-principal", "User:bob", "--operation", "Write", "--topic", topic)
    wait_until(lambda: produces(acl_broker, "bob", topic), 60, "bob to be allowed to write")
    acls(acl_broker, "--add", "--allow-principal", "User:alice", "--operation", "Read",
         "--topic", "acl-consume", "--resource-pattern-type", "prefixed")
    _, error = consume(acl_broker, "alice", topic, group, 5)
    assert error == KafkaError.GROUP_AUTHORIZATION_FAILED, error
    acls(acl_broker, "--add", "--allow-principal", "User:alice", "--operation", "Read",
         "--group", "acl-consume", "--resource-pattern-type", "prefixed")
    values = wait_until(lambda: (r := consume(acl_broker, "alice", topic, group, 5))[0] and r[0],
                        90, "alice to read in her group")
    assert values[:5] == [f"bob-{i}".encode() for i in range(5)], values


def test_metadata_lists_only_describable_topics(acl_broker):
    """Alice sees the topics she may describe (READ implies DESCRIBE) and not the others."""
    mine, other = unique_topic("acl-visible"), unique_topic("acl-hidden")
    create_topic(acl_broker, mine)
    create_topic(acl_broker, other)
    acls(acl_broker, "--add", "--allow-principal", "User:alice", "--operation", "Read", "--topic", mine)
    topics = wait_until(lambda: (t := visible_topics(acl_broker, "alice")) and mine in t and t, 60,
                        "alice to see her topic")
    assert other not in topics, topics
    assert other in visible_topics(acl_broker, "admin")


def operations(future):
    return sorted(op.name for op in future.result().authorized_operations)


def described_operations(broker, user, topic, group):
    """The operations ``user`` may perform on ``topic``, the cluster and ``group``, as
    confluent-kafka's describe calls report them."""
    admin = AdminClient(conf(broker, user))
    topic_ops = operations(admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True,
                                                 request_timeout=30)[topic])
    cluster_ops = operations(admin.describe_cluster(include_authorized_operations=True, request_timeout=30))
    group_ops = operations(admin.describe_consumer_groups([group], include_authorized_operations=True,
                                                          request_timeout=30)[group])
    return topic_ops, cluster_ops, group_ops


TOPIC_OPERATIONS = sorted(["READ", "WRITE", "CREATE", "DESCRIBE", "DELETE", "ALTER", "DESCRIBE_CONFIGS",
                           "ALTER_CONFIGS"])
CLUSTER_OPERATIONS = sorted(["CREATE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE",
                             "ALTER", "DESCRIBE"])
GROUP_OPERATIONS = sorted(["READ", "DESCRIBE", "DELETE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"])


def test_authorized_operations_follow_the_acls(acl_broker):
    """Carol may READ a topic (DESCRIBE implied), DESCRIBE the cluster and READ a group: those are
    the operations reported; a super user is reported every operation of each resource type."""
    topic = unique_topic("acl-ops")
    group = f"{topic}-group"
    create_topic(acl_broker, topic)
    # The group exists with a commit (a classic, empty group), made by a super user.
    admin = AdminClient(conf(acl_broker, "admin"))
    admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 0)])],
                                       request_timeout=30)[group].result()
    acls(acl_broker, "--add", "--allow-principal", "User:carol", "--operation", "Read", "--topic", topic)
    acls(acl_broker, "--add", "--allow-principal", "User:carol", "--operation", "Describe", "--cluster")
    acls(acl_broker, "--add", "--allow-principal", "User:carol", "--operation", "Read", "--group", group)
    want = (["DESCRIBE", "READ"], ["DESCRIBE"], ["DESCRIBE", "READ"])
    got = wait_until(lambda: (g := described_operations(acl_broker, "carol", topic, group)) == want and g, 60,
                     "carol's operations to follow her ACLs")
    assert got == want
    assert described_operations(acl_broker, "admin", topic, group) == (TOPIC_OPERATIONS, CLUSTER_OPERATIONS,
                                                                      GROUP_OPERATIONS)


def test_deny_wins_over_allow(acl_broker):
    """ALLOW ALL for everyone on a prefix, DENY WRITE for alice on one topic under it: bob
    writes, alice is refused."""
    prefix = unique_topic("acl-deny")
    topic = f"{prefix}-t"
    create_topic(acl_broker, topic)
    acls(acl_broker, "--add", "--allow-principal", "User:*", "--operation", "All", "--topic", prefix,
         "--resource-pattern-type", "prefixed")
    acls(acl_broker, "--add", "--deny-principal", "User:alice", "--operation", "Write", "--topic", topic)
    wait_until(lambda: produces(acl_broker, "bob", topic), 60, "bob to be allowed to write")
    assert refused_code(acl_broker, "alice", topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # DENY of WRITE does not deny DESCRIBE or READ.
    assert topic in visible_topics(acl_broker, "alice")


def admin_error(future):
    try:
        future.result(30)
    except KafkaException as e:
        return e.args[0].code()
    return None


def test_topic_administration_needs_its_operations(acl_broker):
    """CreateTopics, DeleteTopics and DescribeConfigs are refused per topic without CREATE,
    DELETE and DESCRIBE_CONFIGS; CREATE on the cluster lets alice create topics, DELETE on a
    topic lets her delete it."""
    existing, new = unique_topic("acl-admin"), unique_topic("acl-admin-new")
    create_topic(acl_broker, existing)
    admin = AdminClient(conf(acl_broker, "bob"))
    assert admin_error(admin.create_topics([NewTopic(new, 1, 1)])[new]) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert admin_error(admin.delete_topics([existing])[existing]) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    resource = ConfigResource(ConfigResource.Type.TOPIC, existing)
    assert admin_error(admin.describe_configs([resource])[resource]) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert existing in visible_topics(acl_broker, "admin"), "a refused delete must not delete"

    acls(acl_broker, "--add", "--allow-principal", "User:bob", "--operation", "Create", "--cluster")
    acls(acl_broker, "--add", "--allow-principal", "User:bob", "--operation", "Delete",
         "--operation", "DescribeConfigs", "--topic", existing)
    wait_until(lambda: admin_error(admin.create_topics([NewTopic(new, 1, 1)])[new])
               in (None, KafkaError.TOPIC_ALREADY_EXISTS), 60, "bob to create a topic")
    assert admin_error(admin.describe_configs([resource])[resource]) is None
    assert admin_error(admin.delete_topics([existing])[existing]) is None
    wait_until(lambda: existing not in visible_topics(acl_broker, "admin"), 60, "the topic to be deleted")


def test_super_user_and_acl_management(acl_broker, tmp_path):
    """admin (a super user) writes without ACLs; alice may not manage ACLs
    (CLUSTER_AUTHORIZATION_FAILED in kafka-acls)."""
    topic = unique_topic("acl-super")
    create_topic(acl_broker, topic)
    assert produces(acl_broker, "admin", topic)
    alice = java_client_properties(tmp_path / "alice.properties", "PLAIN", "alice", USERS["alice"])
    out = kafka_tool("acls", "--bootstrap-server", acl_broker.sasl_plaintext, "--command-config", alice,
                     "--add", "--allow-principal", "User:alice", "--operation", "All", "--topic", topic,
                     timeout=120, check=False)
    text = out.stdout + out.stderr
    assert "ClusterAuthorizationException" in text, text
    assert "User:alice" not in acls(acl_broker, "--list", "--topic", topic).stdout


def test_allow_everyone_if_no_acl_found(target_kind, certs, tmp_path):
    """With allow.everyone.if.no.acl.found=true a topic no ACL names is open to alice; a topic
    with an ACL (for bob) is not."""
    b = start(target_kind, tmp_path / "open", certs, allow_if_no_acl=True)
    try:
        open_topic, guarded = unique_topic("acl-open"), unique_topic("acl-guarded")
        create_topic(b, open_topic)
        create_topic(b, guarded)
        acls(b, "--add", "--allow-principal", "User:bob", "--operation", "Write", "--topic", guarded)
        assert produces(b, "alice", open_topic)
        wait_until(lambda: refused_code(b, "alice", guarded) == KafkaError.TOPIC_AUTHORIZATION_FAILED, 60,
                   "alice to be refused where bob has an ACL")
        assert produces(b, "bob", guarded)
    finally:
        b.broker.stop()


def test_client_certificate_principals(target_kind, tmp_path):
    """On a listener that requires client certificates the principal is the certificate's
    subject (RFC 2253, the last RDN first) mapped by ``ssl.principal.mapping.rules``:
    ``RULE:^CN=([^,]*)$/$1/L`` makes ``CN=Alice`` the principal ``User:alice``; a subject the
    rule does not match falls to ``DEFAULT`` (``/CN=svc/OU=ops`` is ``User:OU=ops,CN=svc``).
    ACLs for those principals let them write; a certificate of bob, without an ACL, is refused."""
    certs = Certs(tmp_path / "ca")
    extra = {**AUTHORIZER, "listener.name.mtls.ssl.principal.mapping.rules": "RULE:^CN=([^,]*)$/$1/L,DEFAULT"}
    b = start_tls_broker(target_kind, tmp_path / "b", certs, certs.server_inline(), COMMON_PROPS, extra)
    try:
        topic = unique_topic("acl-mtls")
        data.create_topic(b.broker.bootstrap, topic, 1)
        admin = AdminClient({"bootstrap.servers": b.broker.bootstrap})
        for principal in ("User:alice", "User:OU=ops,CN=svc"):
            binding = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, principal, "*",
                                 AclOperation.WRITE, AclPermissionType.ALLOW)
            for f in admin.create_acls([binding]).values():
                f.result(30)

        def mtls(crt_key):
            crt, key, _ = crt_key
            return {"bootstrap.servers": b.mtls, "security.protocol": "SSL", "ssl.ca.location": str(certs.ca),
                    "ssl.certificate.location": str(crt), "ssl.key.location": str(key),
                    "ssl.endpoint.identification.algorithm": "https"}

        alice, svc, bob = certs.client("Alice"), certs.client("svc", "/CN=svc/OU=ops"), certs.client("bob")
        wait_until(lambda: produces(b, "alice", topic, client=mtls(alice)), 60, "CN=Alice to write as alice")
        assert produces(b, "svc", topic, client=mtls(svc))
        assert refused_code(b, "bob", topic, client=mtls(bob)) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    finally:
        b.broker.stop()


def test_acls_survive_a_restart(acl_broker):
    """The ACLs are in the cluster metadata: after a restart alice still writes where an ACL
    lets her, and kafka-acls lists it."""
    topic = unique_topic("acl-restart")
    create_topic(acl_broker, topic)
    acls(acl_broker, "--add", "--allow-principal", "User:alice", "--operation", "Write", "--topic", topic)
    wait_until(lambda: produces(acl_broker, "alice", topic), 60, "alice to be allowed to write")
    acl_broker.restart()
    wait_until(lambda: produces(acl_broker, "alice", topic), 120, "alice to write after the restart")
    assert "User:alice" in acls(acl_broker, "--list", "--topic", topic).stdout
