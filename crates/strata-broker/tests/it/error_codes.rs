//! Per-API error codes of the real binary: each request a client can get wrong, with the code
//! Kafka answers it with (names as in Kafka's `Errors`). The differential suites in
//! `tests/compat` compare the same answers with the reference broker; these tests keep them
//! without one, one request at a time over a raw connection.

use crate::common::*;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const NOT_ENOUGH_REPLICAS: i16 = 19;
const INVALID_REQUIRED_ACKS: i16 = 21;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_CONFIG: i16 = 40;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

const TOPIC_RESOURCE: i8 = 2;

fn batch() -> Bytes {
    encode_batch(&[record("k", b"v".to_vec())], Compression::None)
}

fn produce_one(
    broker: &BrokerProcess,
    topic: &str,
    partition: i32,
    acks: i16,
    records: Bytes,
) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let resp: ProduceResponse = call(&mut broker.connect(), ApiKey::Produce, 9, &req);
    resp.responses[0].partition_responses[0].error_code
}

#[test]
fn produce_refusals() {
    let broker = BrokerProcess::start(&[]);
    create_topic(&broker, "t", 1, &[]);
    create_topic(&broker, "needs-two", 1, &[("min.insync.replicas", "2")]);
    let p = |topic: &str, partition: i32, acks: i16, records: Bytes| {
        produce_one(&broker, topic, partition, acks, records)
    };
    assert_eq!(p("t", 0, 1, batch()), NONE);
    assert_eq!(p("missing", 0, 1, batch()), UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(p("t", 1, 1, batch()), UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(p("t", 0, 2, batch()), INVALID_REQUIRED_ACKS);
    // One broker is an ISR of one.
    assert_eq!(p("needs-two", 0, -1, batch()), NOT_ENOUGH_REPLICAS);
    assert_eq!(p("needs-two", 0, 1, batch()), NONE);
    let mut corrupt = BytesMut::from(&batch()[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xFF;
    assert_eq!(p("t", 0, 1, corrupt.freeze()), CORRUPT_MESSAGE);
}

#[test]
fn fetch_list_offsets_and_delete_records() {
    let broker = BrokerProcess::start(&[]);
    create_topic(&broker, "t", 1, &[]);
    assert_eq!(produce_one(&broker, "t", 0, 1, batch()), NONE);
    let mut conn = broker.connect();

    let fetch = |conn: &mut _, partition: i32, offset: i64, epoch: i32| {
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_current_leader_epoch(epoch)
                    .with_partition_max_bytes(1 << 20)])]);
        let resp: FetchResponse = call(conn, ApiKey::Fetch, 12, &req);
        resp.responses[0].partitions[0].error_code
    };
    assert_eq!(fetch(&mut conn, 0, 0, -1), NONE);
    assert_eq!(fetch(&mut conn, 0, 2, -1), OFFSET_OUT_OF_RANGE);
    assert_eq!(fetch(&mut conn, 3, 0, -1), UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(fetch(&mut conn, 0, 0, 5), UNKNOWN_LEADER_EPOCH);

    let list = |conn: &mut _, topic: &str, partition: i32| {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(-1)])]);
        let resp: ListOffsetsResponse = call(conn, ApiKey::ListOffsets, 7, &req);
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.offset)
    };
    assert_eq!(list(&mut conn, "t", 0), (NONE, 1));
    assert_eq!(list(&mut conn, "t", 1).0, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(list(&mut conn, "missing", 0).0, UNKNOWN_TOPIC_OR_PARTITION);

    let delete = |conn: &mut _, offset: i64| {
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(offset)])]);
        let resp: DeleteRecordsResponse = call(conn, ApiKey::DeleteRecords, 2, &req);
        resp.topics[0].partitions[0].error_code
    };
    assert_eq!(delete(&mut conn, 5), OFFSET_OUT_OF_RANGE);
    assert_eq!(delete(&mut conn, 1), NONE);
}

#[test]
fn topic_administration() {
    let broker = BrokerProcess::start(&[]);
    create_topic(&broker, "t", 2, &[]);
    let mut conn = broker.connect();

    let create = |conn: &mut _, topic: CreatableTopic| {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![topic]);
        let resp: CreateTopicsResponse = call(conn, ApiKey::CreateTopics, 7, &req);
        resp.topics[0].error_code
    };
    let topic = |name: &str, partitions: i32, rf: i16| {
        CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)
    };
    assert_eq!(
        create(&mut conn, topic("bad name", 1, 1)),
        INVALID_TOPIC_EXCEPTION
    );
    assert_eq!(create(&mut conn, topic("t", 1, 1)), TOPIC_ALREADY_EXISTS);
    assert_eq!(create(&mut conn, topic("u", 0, 1)), INVALID_PARTITIONS);
    assert_eq!(
        create(&mut conn, topic("u", 1, 2)),
        INVALID_REPLICATION_FACTOR
    );
    let bad_config = topic("u", 1, 1).with_configs(vec![CreatableTopicConfig::default()
        .with_name(str_bytes("retention.ms"))
        .with_value(Some(str_bytes("soon")))]);
    assert_eq!(create(&mut conn, bad_config), INVALID_CONFIG);

    let grow = |conn: &mut _, name: &str, count: i32| {
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(name))
                .with_count(count)
                .with_assignments(None)]);
        let resp: CreatePartitionsResponse = call(conn, ApiKey::CreatePartitions, 3, &req);
        resp.results[0].error_code
    };
    assert_eq!(grow(&mut conn, "t", 1), INVALID_PARTITIONS);
    assert_eq!(grow(&mut conn, "t", 2), INVALID_PARTITIONS);
    assert_eq!(grow(&mut conn, "missing", 3), UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(grow(&mut conn, "t", 3), NONE);

    let delete = |conn: &mut _, name: &str| {
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topic_names(vec![topic_name(name)]);
        let resp: DeleteTopicsResponse = call(conn, ApiKey::DeleteTopics, 5, &req);
        resp.responses[0].error_code
    };
    assert_eq!(delete(&mut conn, "missing"), UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(delete(&mut conn, "t"), NONE);
}

#[test]
fn topic_configs() {
    let broker = BrokerProcess::start(&[]);
    create_topic(&broker, "t", 1, &[]);
    let mut conn = broker.connect();

    let describe = |conn: &mut _, name: &str| {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(str_bytes(name)),
        ]);
        let resp: DescribeConfigsResponse = call(conn, ApiKey::DescribeConfigs, 4, &req);
        resp.results[0].error_code
    };
    assert_eq!(describe(&mut conn, "t"), NONE);
    assert_eq!(describe(&mut conn, "missing"), UNKNOWN_TOPIC_OR_PARTITION);

    let alter = |conn: &mut _, name: &str, key: &str, value: &str| {
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(str_bytes(name))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(str_bytes(key))
                    .with_config_operation(0)
                    .with_value(Some(str_bytes(value)))]),
        ]);
        let resp: IncrementalAlterConfigsResponse =
            call(conn, ApiKey::IncrementalAlterConfigs, 1, &req);
        resp.responses[0].error_code
    };
    assert_eq!(alter(&mut conn, "t", "retention.ms", "60000"), NONE);
    assert_eq!(
        alter(&mut conn, "t", "retention.ms", "soon"),
        INVALID_CONFIG
    );
    assert_eq!(alter(&mut conn, "t", "no.such.config", "1"), INVALID_CONFIG);
    assert_eq!(
        alter(&mut conn, "missing", "retention.ms", "60000"),
        UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn groups() {
    let broker = BrokerProcess::start(&[]);
    create_topic(&broker, "t", 1, &[]);
    let mut conn = broker.connect();

    let commit = |conn: &mut _, topic: &str, partition: i32| {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(0)])]);
        let resp: OffsetCommitResponse = call(conn, ApiKey::OffsetCommit, 8, &req);
        resp.topics[0].partitions[0].error_code
    };
    assert_eq!(commit(&mut conn, "t", 0), NONE);
    assert_eq!(commit(&mut conn, "t", 1), UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(commit(&mut conn, "missing", 0), UNKNOWN_TOPIC_OR_PARTITION);

    // A session timeout below group.min.session.timeout.ms (6 s by default).
    let mut metadata = BytesMut::new();
    metadata.put_i16(0);
    metadata.put_i32(0);
    metadata.put_i32(-1);
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(str_bytes("h")))
        .with_session_timeout_ms(10)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(str_bytes("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(str_bytes("range"))
            .with_metadata(metadata.freeze())]);
    let resp: JoinGroupResponse = call(&mut conn, ApiKey::JoinGroup, 5, &join);
    assert_eq!(resp.error_code, INVALID_SESSION_TIMEOUT);
}
