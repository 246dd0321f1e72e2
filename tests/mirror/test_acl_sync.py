"""Topic ACL sync (``sync.acls``, MM2's ``sync.topic.acls.enabled``):

- against a Strata broker and the reference Apache Kafka broker, each with Kafka's
  StandardAuthorizer class, the literal topic ACLs of a mirrored topic reach its remote topic the
  way MirrorMaker 2 maps them: ``ALLOW ALL`` becomes ``ALLOW READ``, ``DENY`` entries are copied,
  ``ALLOW WRITE`` is not (only the mirror writes a remote topic), prefixed patterns and ACLs of
  topics that are not mirrored are left alone. One broker serves as both ends of the flow
  (aliases ``a`` and ``b``, remote ``a.orders``);
- a source without an authorizer (its ACL calls answer SECURITY_DISABLED, as Kafka's do without
  one) turns the sync off with one log line while records keep flowing.
"""
import pytest
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, ResourcePatternType, ResourceType)

from harness.brokers import make_broker
from harness.data import create_topic, produce, wait_mirrored
from harness.mirror import flow_config
from harness.util import wait_until

pytestmark = pytest.mark.timeout(240)

AUTHORIZER_PROPS = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:ANONYMOUS",
    "allow.everyone.if.no.acl.found": "true",
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "2",
    "auto.create.topics.enable": "false",
}


def topic_acl(name, principal, op, perm, pattern=ResourcePatternType.LITERAL):
    return AclBinding(ResourceType.TOPIC, name, pattern, principal, "*", op, perm)


def acls_of(admin, topic):
    """{(principal, operation, permission)} of the literal ACLs on ``topic``."""
    flt = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, None, None,
                           AclOperation.ANY, AclPermissionType.ANY)
    return {(b.principal, b.operation, b.permission_type)
            for b in admin.describe_acls(flt).result(timeout=30)}


@pytest.mark.parametrize("kind", ["strata", "kafka"])
def test_topic_acls_follow_mirrormaker_2s_mapping(kind, tmp_path, mirror_factory):
    kafka = make_broker(kind, tmp_path / kind, AUTHORIZER_PROPS)
    with kafka:
        create_topic(kafka.bootstrap, "orders", 1)
        create_topic(kafka.bootstrap, "payments", 1)
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        allow, deny = AclPermissionType.ALLOW, AclPermissionType.DENY
        wanted = [
            topic_acl("orders", "User:alice", AclOperation.ALL, allow),
            topic_acl("orders", "User:bob", AclOperation.WRITE, allow),
            topic_acl("orders", "User:mallory", AclOperation.READ, deny),
            topic_acl("ord", "User:carol", AclOperation.READ, allow, ResourcePatternType.PREFIXED),
            topic_acl("payments", "User:dave", AclOperation.READ, allow),
        ]
        for f in admin.create_acls(wanted).values():
            f.result(timeout=30)
        produce(kafka.bootstrap, "orders", 50, 1)
        cfg = flow_config("a", kafka.bootstrap, "b", kafka.bootstrap,
                          topics={"include": ["orders"]}, sync={"acls": True})
        mirror = mirror_factory(cfg)
        wait_mirrored(kafka.bootstrap, kafka.bootstrap, "orders", "a.orders")
        expected = {("User:alice", AclOperation.READ, allow),
                    ("User:mallory", AclOperation.READ, deny)}
        try:
            wait_until(lambda: acls_of(admin, "a.orders") >= expected, 60, "ACLs on a.orders")
        except AssertionError as e:
            raise AssertionError(f"{e}; have {acls_of(admin, 'a.orders')}\n{mirror.log_tail()}") from None
        assert acls_of(admin, "a.orders") == expected, "ALLOW WRITE must not be copied"
        topics = admin.list_topics(timeout=30).topics
        assert "a.payments" not in topics
        everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                      AclOperation.ANY, AclPermissionType.ANY)
        names = {(b.name, b.resource_pattern_type) for b in admin.describe_acls(everything).result(timeout=30)}
        assert ("a.ord", ResourcePatternType.PREFIXED) not in names, names


def test_a_source_without_acls_turns_the_sync_off(strata_pair, mirror_factory):
    a, b = strata_pair
    create_topic(a.bootstrap, "clicks", 1)
    produce(a.bootstrap, "clicks", 20, 1)
    mirror = mirror_factory(flow_config("a", a.bootstrap, "b", b.bootstrap, sync={"acls": True}))
    wait_mirrored(a.bootstrap, b.bootstrap, "clicks", "a.clicks")
    wait_until(lambda: "topic ACL sync is off" in mirror.log_text(), 30, "the ACL sync off line")
    produce(a.bootstrap, "clicks", 20, 1, start=20)
    wait_mirrored(a.bootstrap, b.bootstrap, "clicks", "a.clicks")
    assert mirror.log_text().count("topic ACL sync is off") == 1
    assert "topic ACL sync failed" not in mirror.log_text()
