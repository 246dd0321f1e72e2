"""Requests that name a topic or a partition that does not exist, API by API, answered as the
reference Kafka broker answers them. Each request is built, sent and decoded by kafka-python's
protocol layer (the same request classes its consumer, producer and admin client send); a
librdkafka consumer's commit shows what an application sees.

The topic ``present`` has two partitions; ``missing-*`` topics never exist. Every request names
a missing topic, partition 5 of ``present`` (out of range) and, where the API writes, a valid
partition too, so that one request shows the refusal and that the valid part still succeeds.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from kafka import KafkaAdminClient
from kafka.protocol.admin import (
    AlterConfigsRequest,
    CreatePartitionsRequest,
    DeleteRecordsRequest,
    DeleteTopicsRequest,
    DescribeConfigsRequest,
    IncrementalAlterConfigsRequest,
)
from kafka.protocol.consumer import (
    FetchRequest,
    ListOffsetsRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
    OffsetForLeaderEpochRequest,
)
from kafka.protocol.metadata import FindCoordinatorRequest, MetadataRequest
from kafka.protocol.producer import ProduceRequest
from kafka.record.memory_records import MemoryRecordsBuilder

from harness import unique_topic, wait_until

from scenarios import create_topic

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
UNKNOWN_TOPIC_ID = 100
# COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR: retried by clients.
COORDINATOR_NOT_READY = (14, 15, 16)
TOPIC = 2  # ConfigResource type

# Request versions both brokers serve, so that Strata and Kafka read the same bytes: the
# highest versions that still name topics (later Produce, Fetch, OffsetCommit and OffsetFetch
# versions carry topic ids instead).
MAX_VERSION = {
    ProduceRequest: 11,
    FetchRequest: 12,
    OffsetCommitRequest: 9,
    OffsetFetchRequest: 9,
    DeleteTopicsRequest: 6,
}


class Wire:
    """kafka-python's network layer, one connection set per broker: sends one request and
    returns the decoded response."""

    def __init__(self, bootstrap):
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)

    def send(self, request):
        async def go():
            return await self.admin._manager.send(request)

        return self.admin._manager.run(go)

    def find_coordinator(self, group):
        """Asks for the group's coordinator until there is one, as a consumer does before it
        commits (Kafka creates its offsets topic on the first such request)."""
        def found():
            resp = self.send(FindCoordinatorRequest(key=group, key_type=0, max_version=3))
            return resp.error_code == NONE

        wait_until(found, 60, f"a coordinator for {group}")

    def commit(self, group, topics):
        """OffsetCommit of a group with no members (as `kafka-consumer-groups --reset-offsets`
        and standalone consumers commit), retried while the coordinator is still loading, as
        clients retry it."""
        def answered():
            resp = self.send(request(OffsetCommitRequest, group_id=group,
                                     generation_id_or_member_epoch=-1, member_id="",
                                     topics=topics))
            loading = any(p.error_code in COORDINATOR_NOT_READY
                          for t in resp.topics for p in t.partitions)
            return None if loading else resp

        return wait_until(answered, 60, f"an OffsetCommit answer for {group}")

    def groups(self):
        return {g["group_id"] for g in self.admin.list_groups()}

    def close(self):
        self.admin.close()


def request(cls, **fields):
    return cls(max_version=MAX_VERSION.get(cls, cls.max_version), **fields)


@pytest.fixture(scope="module")
def wire(broker):
    w = Wire(broker.bootstrap)
    yield w
    w.close()


@pytest.fixture(scope="module")
def present(broker):
    topic = unique_topic("present")
    create_topic(broker.bootstrap, topic, 2)
    return topic


def codes(topics, name="name", parts="partitions", index="partition_index", error="error_code"):
    """{(topic, partition): error code} of a per-partition response."""
    return {
        (getattr(t, name), getattr(p, index)): getattr(p, error)
        for t in topics
        for p in getattr(t, parts)
    }


def mixed(T, P, missing, present, name="name", parts="partitions", index="partition_index", **fields):
    """A request's topics: partition 0 of ``missing``, partitions 0 and 5 of ``present``, each
    partition with ``fields``."""
    def topic(t, indexes):
        return T(**{name: t, parts: [P(**{index: i}, **fields) for i in indexes]})
    return [topic(missing, [0]), topic(present, [0, 5])]


def refused_but_valid(missing, present):
    """What Kafka answers a ``mixed`` request: the missing topic and the out-of-range partition
    refused, the valid partition served."""
    return {
        (missing, 0): UNKNOWN_TOPIC_OR_PARTITION,
        (present, 0): NONE,
        (present, 5): UNKNOWN_TOPIC_OR_PARTITION,
    }


def one_record():
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1024)
    builder.append(timestamp=None, key=b"k", value=b"v")
    builder.close()
    return builder.buffer()


def test_offset_commit_refuses_missing_topics_and_partitions(wire, present):
    missing = unique_topic("missing")
    group = unique_topic("group")
    wire.find_coordinator(group)
    T, P = OffsetCommitRequest.OffsetCommitRequestTopic, OffsetCommitRequest.OffsetCommitRequestTopic.OffsetCommitRequestPartition
    resp = wire.commit(group, mixed(T, P, missing, present, committed_offset=0))
    assert codes(resp.topics) == refused_but_valid(missing, present)
    # The valid partition was committed; nothing was stored for the refused ones.
    G = OffsetFetchRequest.OffsetFetchRequestGroup
    F = G.OffsetFetchRequestTopics
    fetched = wire.send(request(OffsetFetchRequest, groups=[G(group_id=group, topics=[
        F(name=present, partition_indexes=[0, 5]), F(name=missing, partition_indexes=[0])])]))
    assert {(t.name, p.partition_index): (p.committed_offset, p.error_code)
            for g in fetched.groups for t in g.topics for p in t.partitions} == {
        (present, 0): (0, NONE),
        (present, 5): (-1, NONE),
        (missing, 0): (-1, NONE),
    }


def test_offset_commit_of_missing_topics_only_creates_no_group(wire, present):
    group = unique_topic("group")
    wire.find_coordinator(group)
    T, P = OffsetCommitRequest.OffsetCommitRequestTopic, OffsetCommitRequest.OffsetCommitRequestTopic.OffsetCommitRequestPartition
    resp = wire.commit(group, [
        T(name=unique_topic("missing"), partitions=[P(partition_index=0, committed_offset=1)])])
    assert [p.error_code for t in resp.topics for p in t.partitions] == [UNKNOWN_TOPIC_OR_PARTITION]
    assert group not in wire.groups()
    # The same commit naming a partition that exists does create the group.
    resp = wire.commit(group, [T(name=present, partitions=[P(partition_index=0, committed_offset=0)])])
    assert codes(resp.topics) == {(present, 0): NONE}
    assert group in wire.groups()


def test_librdkafka_commit_of_a_missing_topic_reports_the_error(broker, present):
    missing = unique_topic("missing")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique_topic("group"),
                  "enable.auto.commit": False})
    try:
        with pytest.raises(KafkaException) as failed:
            c.commit(offsets=[TopicPartition(missing, 0, 5)], asynchronous=False)
        assert failed.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART", failed.value
        done = c.commit(offsets=[TopicPartition(present, 0, 0)], asynchronous=False)
        assert [(tp.topic, tp.partition, tp.error) for tp in done] == [(present, 0, None)]
    finally:
        c.close()


def test_list_offsets(wire, present):
    missing = unique_topic("missing")
    T = ListOffsetsRequest.ListOffsetsTopic
    P = T.ListOffsetsPartition
    resp = wire.send(request(ListOffsetsRequest, replica_id=-1,
                             topics=mixed(T, P, missing, present, timestamp=-1)))
    assert codes(resp.topics) == refused_but_valid(missing, present)


def test_offset_for_leader_epoch(wire, present):
    missing = unique_topic("missing")
    T = OffsetForLeaderEpochRequest.OffsetForLeaderTopic
    P = T.OffsetForLeaderPartition
    resp = wire.send(request(OffsetForLeaderEpochRequest, replica_id=-1, topics=mixed(
        T, P, missing, present, name="topic", index="partition", leader_epoch=0)))
    assert codes(resp.topics, name="topic", index="partition") == refused_but_valid(missing, present)


def test_produce(wire, present):
    missing = unique_topic("missing")
    T = ProduceRequest.TopicProduceData
    P = T.PartitionProduceData
    resp = wire.send(request(ProduceRequest, acks=1, timeout_ms=10000, topic_data=mixed(
        T, P, missing, present, parts="partition_data", index="index", records=one_record())))
    assert codes(resp.responses, parts="partition_responses", index="index") == \
        refused_but_valid(missing, present)


def test_fetch(wire, present):
    missing = unique_topic("missing")
    T = FetchRequest.FetchTopic
    P = T.FetchPartition
    resp = wire.send(request(FetchRequest, replica_id=-1, max_wait_ms=0, min_bytes=0, topics=mixed(
        T, P, missing, present, name="topic", index="partition", fetch_offset=0,
        partition_max_bytes=1024)))
    assert codes(resp.responses, name="topic") == refused_but_valid(missing, present)
    # From v13 on a fetch names topics by id: an id no topic has is UNKNOWN_TOPIC_ID.
    unknown_id = uuid.uuid4()
    by_id = wire.send(FetchRequest(min_version=13, max_version=16, replica_id=-1, max_wait_ms=0,
                                   min_bytes=0, topics=[T(topic_id=unknown_id, partitions=[
                                       P(partition=0, fetch_offset=0, partition_max_bytes=1024)])]))
    assert [(t.topic_id, p.partition_index, p.error_code)
            for t in by_id.responses for p in t.partitions] == [(unknown_id, 0, UNKNOWN_TOPIC_ID)]


def test_delete_records(wire, present):
    missing = unique_topic("missing")
    T = DeleteRecordsRequest.DeleteRecordsTopic
    P = T.DeleteRecordsPartition
    resp = wire.send(request(DeleteRecordsRequest, timeout_ms=10000,
                             topics=mixed(T, P, missing, present, offset=0)))
    assert codes(resp.topics) == refused_but_valid(missing, present)


def test_metadata_without_auto_creation(wire, present):
    missing = unique_topic("missing")
    T = MetadataRequest.MetadataRequestTopic
    resp = wire.send(request(MetadataRequest, allow_auto_topic_creation=False,
                             topics=[T(name=missing), T(name=present)]))
    assert {t.name: (t.error_code, len(t.partitions)) for t in resp.topics} == {
        missing: (UNKNOWN_TOPIC_OR_PARTITION, 0),
        present: (NONE, 2),
    }
    # From v10 on a topic may be named by id alone.
    unknown_id = uuid.uuid4()
    resp = wire.send(MetadataRequest(min_version=10, max_version=12, allow_auto_topic_creation=False,
                                     topics=[T(name=None, topic_id=unknown_id)]))
    assert [(t.topic_id, t.error_code) for t in resp.topics] == [(unknown_id, UNKNOWN_TOPIC_ID)]


def test_topic_admin_apis(wire, present):
    missing = unique_topic("missing")
    deleted = wire.send(request(DeleteTopicsRequest, timeout_ms=10000, topics=[
        DeleteTopicsRequest.DeleteTopicState(name=missing)]))
    assert [(r.name, r.error_code) for r in deleted.responses] == [(missing, UNKNOWN_TOPIC_OR_PARTITION)]
    unknown_id = uuid.uuid4()
    deleted = wire.send(request(DeleteTopicsRequest, timeout_ms=10000, topics=[
        DeleteTopicsRequest.DeleteTopicState(name=None, topic_id=unknown_id)]))
    assert [(r.topic_id, r.error_code) for r in deleted.responses] == [(unknown_id, UNKNOWN_TOPIC_ID)]
    CT = CreatePartitionsRequest.CreatePartitionsTopic
    grown = wire.send(request(CreatePartitionsRequest, timeout_ms=10000, validate_only=True,
                              topics=[CT(name=missing, count=3, assignments=None)]))
    assert [(r.name, r.error_code) for r in grown.results] == [(missing, UNKNOWN_TOPIC_OR_PARTITION)]


def test_config_apis(wire, present):
    missing = unique_topic("missing")
    DR = DescribeConfigsRequest.DescribeConfigsResource
    described = wire.send(request(DescribeConfigsRequest, resources=[
        DR(resource_type=TOPIC, resource_name=missing, configuration_keys=None)]))
    assert [(r.resource_name, r.error_code) for r in described.results] == [
        (missing, UNKNOWN_TOPIC_OR_PARTITION)]
    AR = AlterConfigsRequest.AlterConfigsResource
    altered = wire.send(request(AlterConfigsRequest, validate_only=False, resources=[
        AR(resource_type=TOPIC, resource_name=missing,
           configs=[AR.AlterableConfig(name="retention.ms", value="60000")])]))
    assert [(r.resource_name, r.error_code) for r in altered.responses] == [
        (missing, UNKNOWN_TOPIC_OR_PARTITION)]
    IR = IncrementalAlterConfigsRequest.AlterConfigsResource
    incremental = wire.send(request(IncrementalAlterConfigsRequest, validate_only=False, resources=[
        IR(resource_type=TOPIC, resource_name=missing,
           configs=[IR.AlterableConfig(name="retention.ms", config_operation=0, value="60000")])]))
    assert [(r.resource_name, r.error_code) for r in incremental.responses] == [
        (missing, UNKNOWN_TOPIC_OR_PARTITION)]
