//! Retry, routing and negotiation behaviour against a scripted broker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::mock::{api_versions, encode, metadata, MockBroker};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, CreateTopicsResponse, InitProducerIdRequest,
    InitProducerIdResponse, ListOffsetsResponse, ProduceRequest, ProduceResponse, ProducerId,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use strata_client::{
    Client, ClientConfig, Error, NewTopic, OffsetSpec, ProducerConfig, ProducerRecord,
    ResponseError,
};

const APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::ListOffsets, 1, 9),
];

fn config(addr: &str) -> ClientConfig {
    let mut c = ClientConfig::new([addr.to_string()]);
    c.retries = 3;
    c.retry_backoff = Duration::from_millis(5);
    c.retry_backoff_max = Duration::from_millis(20);
    c.request_timeout = Duration::from_secs(5);
    c
}

/// A mock whose CreateTopics answers with `codes[i]` on the i-th call (the last code repeats).
async fn create_topics_mock(codes: Vec<i16>) -> MockBroker {
    let calls = Arc::new(AtomicUsize::new(0));
    MockBroker::start(move |port| {
        Box::new(move |key, version, _body| match key {
            ApiKey::ApiVersions => encode(&api_versions(APIS), version),
            ApiKey::Metadata => encode(&metadata(port, &[]), version),
            ApiKey::CreateTopics => {
                let i = calls.fetch_add(1, Ordering::SeqCst);
                let code = codes[i.min(codes.len() - 1)];
                let result = CreatableTopicResult::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_error_code(code)
                    .with_num_partitions(if code == 0 { 3 } else { -1 })
                    .with_replication_factor(if code == 0 { 1 } else { -1 });
                encode(
                    &CreateTopicsResponse::default().with_topics(vec![result]),
                    version,
                )
            }
            _ => Vec::new(),
        })
    })
    .await
}

#[tokio::test]
async fn retriable_errors_are_retried_after_a_metadata_refresh() {
    let mock = create_topics_mock(vec![ResponseError::NotController.code(), 0]).await;
    let client = Client::connect(config(&mock.addr)).await.expect("connect");
    let metadata_before = mock.count(ApiKey::Metadata);
    let created = client
        .admin()
        .create_topic(&NewTopic::new("t"))
        .await
        .expect("second attempt succeeds");
    assert_eq!(created.partitions, 3);
    assert_eq!(mock.count(ApiKey::CreateTopics), 2);
    assert!(
        mock.count(ApiKey::Metadata) > metadata_before,
        "NOT_CONTROLLER refreshes the metadata before the retry"
    );
}

#[tokio::test]
async fn fatal_errors_are_not_retried_and_retries_are_bounded() {
    let mock = create_topics_mock(vec![ResponseError::PolicyViolation.code()]).await;
    let client = Client::connect(config(&mock.addr)).await.expect("connect");
    let err = client
        .admin()
        .create_topic(&NewTopic::new("t"))
        .await
        .expect_err("policy violation");
    assert!(
        matches!(&err, Error::Kafka { name, .. } if name == "POLICY_VIOLATION"),
        "{err:?}"
    );
    assert_eq!(mock.count(ApiKey::CreateTopics), 1, "fatal: one attempt");

    let mock = create_topics_mock(vec![ResponseError::NotController.code()]).await;
    let client = Client::connect(config(&mock.addr)).await.expect("connect");
    let err = client
        .admin()
        .create_topic(&NewTopic::new("t"))
        .await
        .expect_err("never the controller");
    assert!(err.is(ResponseError::NotController), "{err}");
    assert_eq!(
        mock.count(ApiKey::CreateTopics),
        4,
        "one attempt plus 3 retries"
    );
}

#[tokio::test]
async fn list_offsets_follows_a_leader_change() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mock = MockBroker::start(move |port| {
        Box::new(move |key, version, _body| match key {
            ApiKey::ApiVersions => encode(&api_versions(APIS), version),
            ApiKey::Metadata => encode(&metadata(port, &["t"]), version),
            ApiKey::ListOffsets => {
                let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                let p = ListOffsetsPartitionResponse::default()
                    .with_partition_index(0)
                    .with_error_code(if first {
                        ResponseError::NotLeaderOrFollower.code()
                    } else {
                        0
                    })
                    .with_offset(if first { -1 } else { 42 })
                    .with_timestamp(-1);
                encode(
                    &ListOffsetsResponse::default().with_topics(vec![
                        ListOffsetsTopicResponse::default()
                            .with_name(TopicName(StrBytes::from_static_str("t")))
                            .with_partitions(vec![p]),
                    ]),
                    version,
                )
            }
            _ => Vec::new(),
        })
    })
    .await;
    let client = Client::connect(config(&mock.addr)).await.expect("connect");
    let metadata_before = mock.count(ApiKey::Metadata);
    let listed = client
        .list_offsets("t", &[0], OffsetSpec::Latest)
        .await
        .expect("list offsets");
    assert_eq!(listed[&0].offset, 42);
    assert_eq!(mock.count(ApiKey::ListOffsets), 2);
    // The mock names "t" in every Metadata answer, so the bootstrap already cached it: the
    // only lookup is the refresh after NOT_LEADER_OR_FOLLOWER.
    assert_eq!(
        mock.count(ApiKey::Metadata),
        metadata_before + 1,
        "refreshed after NOT_LEADER_OR_FOLLOWER"
    );
}

#[tokio::test]
async fn an_unanswered_request_times_out_and_the_connection_is_replaced() {
    let mock = MockBroker::start(move |port| {
        Box::new(move |key, version, _body| match key {
            ApiKey::ApiVersions => encode(&api_versions(APIS), version),
            ApiKey::Metadata => encode(&metadata(port, &["t"]), version),
            _ => Vec::new(), // ListOffsets is never answered
        })
    })
    .await;
    let mut config = config(&mock.addr);
    config.request_timeout = Duration::from_millis(200);
    config.retries = 1;
    let client = Client::connect(config).await.expect("connect");
    let err = client
        .list_offsets("t", &[0], OffsetSpec::Latest)
        .await
        .expect_err("no answer");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("ListOffsets"), "{err}");
    assert_eq!(mock.count(ApiKey::ListOffsets), 2, "one retry");
    let versions_before = mock.count(ApiKey::ApiVersions);
    client
        .metadata(None)
        .await
        .expect("works on a new connection");
    assert!(
        mock.count(ApiKey::ApiVersions) > versions_before,
        "reconnected"
    );
}

#[tokio::test]
async fn negotiation_falls_back_to_an_older_api_versions_and_metadata() {
    // A broker that knows ApiVersions only up to v2 answers v3+ with a v0 UNSUPPORTED_VERSION
    // body (KIP-511), and serves neither DescribeCluster nor CreatePartitions.
    let mock = MockBroker::start(move |port| {
        Box::new(move |key, version, _body| match key {
            ApiKey::ApiVersions if version > 2 => encode(
                &ApiVersionsResponse::default()
                    .with_error_code(ResponseError::UnsupportedVersion.code())
                    .with_api_keys(api_versions(&[(ApiKey::ApiVersions, 0, 2)]).api_keys),
                0,
            ),
            ApiKey::ApiVersions => encode(
                &api_versions(&[(ApiKey::ApiVersions, 0, 2), (ApiKey::Metadata, 0, 5)]),
                version,
            ),
            ApiKey::Metadata => encode(&metadata(port, &["t"]), version),
            _ => Vec::new(),
        })
    })
    .await;
    let client = Client::connect(config(&mock.addr)).await.expect("connect");
    let versions: Vec<i16> = mock
        .log
        .lock()
        .iter()
        .filter(|(k, _)| *k == ApiKey::ApiVersions)
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(versions, vec![4, 2]);
    assert!(mock
        .log
        .lock()
        .iter()
        .any(|(k, v)| *k == ApiKey::Metadata && *v == 5));

    let cluster = client.describe_cluster().await.expect("via Metadata");
    assert_eq!(cluster.cluster_id, "mock");
    assert_eq!(cluster.controller_id, 1);
    assert_eq!(cluster.brokers.len(), 1);

    let err = client
        .admin()
        .create_partitions("t", 2)
        .await
        .expect_err("not served");
    assert!(
        matches!(
            err,
            Error::Unsupported {
                api: "CreatePartitions",
                ..
            }
        ),
        "{err:?}"
    );
}

/// A mock that takes Produce requests: each batch sent is recorded, and the i-th Produce is
/// answered with `codes[i]` (the last code repeats). InitProducerId hands out id 7 and bumps
/// the epoch it is given.
async fn produce_mock(
    codes: Vec<i16>,
) -> (
    MockBroker,
    Arc<parking_lot::Mutex<Vec<Bytes>>>,
    Arc<parking_lot::Mutex<Vec<(i64, i16)>>>,
) {
    let batches = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let inits = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen = batches.clone();
    let asked = inits.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let mock = MockBroker::start(move |port| {
        Box::new(move |key, version, mut body| match key {
            ApiKey::ApiVersions => encode(
                &api_versions(&[
                    (ApiKey::ApiVersions, 0, 4),
                    (ApiKey::Metadata, 1, 12),
                    (ApiKey::Produce, 3, 9),
                    (ApiKey::InitProducerId, 0, 4),
                ]),
                version,
            ),
            ApiKey::Metadata => encode(&metadata(port, &["t"]), version),
            ApiKey::InitProducerId => {
                let req = InitProducerIdRequest::decode(&mut body, version).expect("decode");
                asked.lock().push((req.producer_id.0, req.producer_epoch));
                let epoch = if req.producer_id.0 < 0 {
                    0
                } else {
                    req.producer_epoch + 1
                };
                encode(
                    &InitProducerIdResponse::default()
                        .with_producer_id(ProducerId(7))
                        .with_producer_epoch(epoch),
                    version,
                )
            }
            ApiKey::Produce => {
                let req = ProduceRequest::decode(&mut body, version).expect("decode");
                let data = &req.topic_data[0].partition_data[0];
                seen.lock().push(data.records.clone().expect("records"));
                let i = calls.fetch_add(1, Ordering::SeqCst);
                let code = codes[i.min(codes.len() - 1)];
                let p = PartitionProduceResponse::default()
                    .with_index(data.index)
                    .with_error_code(code)
                    .with_base_offset(if code == 0 { 100 } else { -1 });
                encode(
                    &ProduceResponse::default().with_responses(vec![
                        TopicProduceResponse::default()
                            .with_name(TopicName(StrBytes::from_static_str("t")))
                            .with_partition_responses(vec![p]),
                    ]),
                    version,
                )
            }
            _ => Vec::new(),
        })
    })
    .await;
    (mock, batches, inits)
}

fn value(v: &'static str) -> ProducerRecord {
    ProducerRecord {
        topic: "t".into(),
        partition: 0,
        value: Some(Bytes::from_static(v.as_bytes())),
        timestamp: 1,
        ..ProducerRecord::default()
    }
}

#[tokio::test]
async fn a_retried_batch_keeps_its_bytes_and_sequence() {
    let (mock, batches, _) = produce_mock(vec![ResponseError::NotLeaderOrFollower.code(), 0]).await;
    let client = Client::connect(config(&mock.addr)).await.expect("connect");
    let producer = client.producer(ProducerConfig::default());
    let delivered = producer
        .send(value("a"))
        .await
        .expect("send")
        .await
        .expect("delivered");
    assert_eq!(delivered.offset, 100);
    producer.close().await;
    let sent = batches.lock().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1], "the retry resends the same batch");
    let info = RecordBatchDecoder::decode_batch_info(&mut sent[0].clone()).expect("batch");
    assert_eq!((info[0].producer_id, info[0].base_sequence), (7, 0));
}

#[tokio::test]
async fn a_fatal_error_bumps_the_epoch_and_restarts_sequences() {
    let (mock, batches, inits) =
        produce_mock(vec![0, ResponseError::MessageTooLarge.code(), 0]).await;
    let client = Client::connect(config(&mock.addr)).await.expect("connect");
    let producer = client.producer(ProducerConfig::default());
    producer
        .send(value("a"))
        .await
        .expect("send")
        .await
        .expect("first delivered");
    let err = producer
        .send(value("b"))
        .await
        .expect("send")
        .await
        .expect_err("too large");
    assert!(err.is(ResponseError::MessageTooLarge), "{err}");
    assert!(!err.is_retriable());
    producer
        .send(value("c"))
        .await
        .expect("send")
        .await
        .expect("third delivered");
    producer.close().await;

    assert_eq!(
        *inits.lock(),
        vec![(-1, -1), (7, 0)],
        "an id, then a bump of epoch 0"
    );
    let stamps: Vec<(i16, i32)> = batches
        .lock()
        .iter()
        .map(|b| {
            let info = RecordBatchDecoder::decode_batch_info(&mut b.clone()).expect("batch");
            (info[0].producer_epoch, info[0].base_sequence)
        })
        .collect();
    assert_eq!(stamps, vec![(0, 0), (0, 1), (1, 0)]);
}

/// A mock whose DescribeQuorum answers NOT_LEADER_OR_FOLLOWER first (an election under way),
/// then leader 2 of voters 1-3 with observer 4.
async fn quorum_mock() -> MockBroker {
    use kafka_protocol::messages::describe_quorum_response::{
        PartitionData, ReplicaState, TopicData,
    };
    use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
    let calls = Arc::new(AtomicUsize::new(0));
    MockBroker::start(move |port| {
        Box::new(move |key, version, mut body| match key {
            ApiKey::ApiVersions => encode(
                &api_versions(&[
                    (ApiKey::ApiVersions, 0, 4),
                    (ApiKey::Metadata, 1, 12),
                    (ApiKey::DescribeQuorum, 0, 2),
                ]),
                version,
            ),
            ApiKey::Metadata => encode(&metadata(port, &[]), version),
            ApiKey::DescribeQuorum => {
                let req = DescribeQuorumRequest::decode(&mut body, version).expect("request");
                assert_eq!(req.topics[0].topic_name.0.as_str(), "__cluster_metadata");
                assert_eq!(req.topics[0].partitions[0].partition_index, 0);
                let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                let replica = |id| ReplicaState::default().with_replica_id(BrokerId(id));
                let partition = PartitionData::default()
                    .with_partition_index(0)
                    .with_error_code(if first {
                        ResponseError::NotLeaderOrFollower.code()
                    } else {
                        0
                    })
                    .with_leader_id(BrokerId(if first { -1 } else { 2 }))
                    .with_leader_epoch(5)
                    .with_current_voters(vec![replica(1), replica(2), replica(3)])
                    .with_observers(vec![replica(4)]);
                let resp = DescribeQuorumResponse::default()
                    .with_topics(vec![TopicData::default()
                        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
                        .with_partitions(vec![partition])]);
                encode(&resp, version)
            }
            _ => Vec::new(),
        })
    })
    .await
}

#[tokio::test]
async fn describe_quorum_retries_an_election_and_reports_the_leader() {
    let mock = quorum_mock().await;
    let client = Client::connect(config(&mock.addr)).await.expect("connect");
    let quorum = client.admin().describe_quorum().await.expect("described");
    assert_eq!(quorum.leader_id, Some(2));
    assert_eq!(quorum.leader_epoch, 5);
    assert_eq!(quorum.voter_ids(), [1, 2, 3]);
    assert_eq!(quorum.observers.len(), 1);
    assert_eq!(mock.count(ApiKey::DescribeQuorum), 2, "retried once");
}

#[tokio::test]
async fn describe_quorum_is_unsupported_where_not_advertised() {
    let mock = create_topics_mock(vec![0]).await;
    let client = Client::connect(config(&mock.addr)).await.expect("connect");
    let err = client
        .admin()
        .describe_quorum()
        .await
        .expect_err("not served");
    assert!(
        matches!(
            err,
            Error::Unsupported {
                api: "DescribeQuorum",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(mock.count(ApiKey::DescribeQuorum), 0);
}
