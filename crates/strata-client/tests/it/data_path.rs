//! Produce, ListOffsets and Fetch against an in-process Strata broker.

use std::time::{Duration, Instant};

use crate::common::TestBroker;
use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::records::{Compression as WireCompression, RecordBatchDecoder};
use strata_client::{
    Acks, Client, Compression, Error, FetchPartitionSpec, FetchRequestSpec, FetchedPartition,
    NewTopic, OffsetSpec, ProducerConfig, ProducerRecord, ResponseError, TimestampType,
};

async fn create(client: &Client, name: &str, partitions: i32) {
    let mut t = NewTopic::new(name);
    t.partitions = Some(partitions);
    client.admin().create_topic(&t).await.expect("create topic");
}

fn record(topic: &str, partition: i32, i: i64) -> ProducerRecord {
    ProducerRecord {
        topic: topic.into(),
        partition,
        key: (i % 3 != 0).then(|| Bytes::from(format!("key-{i}"))),
        value: (i % 7 != 6).then(|| Bytes::from(format!("value-{i}-").repeat(4))),
        headers: vec![
            ("seq".into(), Some(Bytes::from(i.to_string()))),
            ("empty".into(), Some(Bytes::new())),
            ("null".into(), None),
        ],
        timestamp: 1_700_000_000_000 + i,
    }
}

async fn fetch_one(client: &Client, topic: &str, partition: i32, offset: i64) -> FetchedPartition {
    let mut spec = FetchRequestSpec::new([FetchPartitionSpec {
        topic: topic.into(),
        partition,
        offset,
    }]);
    spec.max_wait_ms = 0;
    let mut result = client.fetch(spec).await.expect("fetch");
    result
        .partitions
        .remove(&(topic.to_string(), partition))
        .expect("partition in result")
}

/// Fetches `topic`-`partition` from `offset` until `count` records arrived.
async fn fetch_all(
    client: &Client,
    topic: &str,
    partition: i32,
    count: usize,
) -> Vec<strata_client::FetchedRecord> {
    let mut records = Vec::new();
    let mut offset = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while records.len() < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} records",
            records.len()
        );
        let p = fetch_one(client, topic, partition, offset).await;
        assert!(p.error.is_none(), "{:?}", p.error);
        offset = p.next_offset;
        records.extend(p.records);
    }
    records
}

#[tokio::test]
async fn every_codec_with_idempotence_round_trips_in_order() {
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    for (compression, wire) in [
        (Compression::None, WireCompression::None),
        (Compression::Gzip, WireCompression::Gzip),
        (Compression::Snappy, WireCompression::Snappy),
        (Compression::Lz4, WireCompression::Lz4),
        (Compression::Zstd, WireCompression::Zstd),
    ] {
        let topic = format!("codec-{compression:?}").to_lowercase();
        create(&client, &topic, 1).await;
        let producer = client.producer(ProducerConfig {
            compression,
            batch_size: 1024,
            ..ProducerConfig::default()
        });
        let mut deliveries = Vec::new();
        for i in 0..60 {
            deliveries.push(producer.send(record(&topic, 0, i)).await.expect("send"));
        }
        for (i, d) in deliveries.into_iter().enumerate() {
            let meta = d.await.expect("delivered");
            assert_eq!((meta.topic.as_str(), meta.partition), (topic.as_str(), 0));
            assert_eq!(
                meta.offset, i as i64,
                "{compression:?}: offsets in send order"
            );
        }
        producer.close().await;

        let records = fetch_all(&client, &topic, 0, 60).await;
        assert_eq!(records.len(), 60);
        for (i, r) in records.iter().enumerate() {
            let expected = record(&topic, 0, i as i64);
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.timestamp, expected.timestamp);
            assert_eq!(r.timestamp_type, TimestampType::CreateTime);
            assert_eq!(r.key, expected.key);
            assert_eq!(r.value, expected.value);
            assert_eq!(r.headers, expected.headers, "{compression:?} record {i}");
        }

        let p = fetch_one(&client, &topic, 0, 0).await;
        assert_eq!(p.high_watermark, 60);
        assert_eq!(p.log_start_offset, 0);
        assert!(p.batches.len() > 1, "batch_size splits the records");
        let infos = RecordBatchDecoder::decode_batch_info(&mut p.raw.clone()).expect("batches");
        assert_eq!(infos.len(), p.batches.len());
        let mut sequence = 0;
        for (info, batch) in infos.iter().zip(&p.batches) {
            assert_eq!(info.compression, wire);
            assert!(
                info.producer_id >= 0,
                "idempotent batches carry a producer id"
            );
            assert_eq!(
                info.base_sequence, sequence,
                "sequences continue across batches"
            );
            assert_eq!(info.min_offset, batch.base_offset);
            sequence += info.record_count;
        }
    }
}

#[tokio::test]
async fn acks_one_and_zero_without_idempotence() {
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    create(&client, "acks", 1).await;

    let leader_acks = client.producer(ProducerConfig {
        acks: Acks::Leader,
        idempotence: false,
        ..ProducerConfig::default()
    });
    let first = leader_acks.send(record("acks", 0, 0)).await.expect("send");
    assert_eq!(first.await.expect("delivered").offset, 0);
    leader_acks.close().await;

    let fire_and_forget = client.producer(ProducerConfig {
        acks: Acks::None,
        ..ProducerConfig::default()
    });
    let second = fire_and_forget
        .send(record("acks", 0, 1))
        .await
        .expect("send");
    assert_eq!(
        second.await.expect("written").offset,
        -1,
        "acks=0 has no offset"
    );
    fire_and_forget.close().await;

    let records = fetch_all(&client, "acks", 0, 2).await;
    assert_eq!(records[1].timestamp, record("acks", 0, 1).timestamp);
    let p = fetch_one(&client, "acks", 0, 0).await;
    let infos = RecordBatchDecoder::decode_batch_info(&mut p.raw.clone()).expect("batches");
    assert!(infos
        .iter()
        .all(|i| i.producer_id == -1 && i.base_sequence == -1));
}

#[tokio::test]
async fn ordering_per_partition_with_many_small_batches() {
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    create(&client, "spread", 3).await;
    let producer = client.producer(ProducerConfig {
        batch_size: 300,
        linger: Duration::from_millis(1),
        max_in_flight: 2,
        compression: Compression::Lz4,
        ..ProducerConfig::default()
    });
    let mut deliveries = Vec::new();
    for i in 0..300 {
        let partition = (i % 3) as i32;
        deliveries.push((
            partition,
            producer
                .send(record("spread", partition, i))
                .await
                .expect("send"),
        ));
    }
    producer.flush().await.expect("flush");
    let mut next = [0i64; 3];
    for (partition, d) in deliveries {
        let meta = tokio::task::unconstrained(d)
            .now_or_never()
            .expect("resolved by flush")
            .expect("delivered");
        assert_eq!(meta.offset, next[partition as usize]);
        next[partition as usize] += 1;
    }
    producer.close().await;
    for partition in 0..3 {
        let records = fetch_all(&client, "spread", partition, 100).await;
        let seqs: Vec<i64> = records
            .iter()
            .map(|r| {
                let h = r.headers[0].1.as_ref().expect("seq header");
                std::str::from_utf8(h)
                    .expect("utf8")
                    .parse()
                    .expect("number")
            })
            .collect();
        let expected: Vec<i64> = (0..300).filter(|i| i % 3 == i64::from(partition)).collect();
        assert_eq!(seqs, expected, "partition {partition} in send order");
    }
}

#[tokio::test]
async fn fetch_from_the_middle_of_a_batch() {
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    create(&client, "middle", 1).await;
    let producer = client.producer(ProducerConfig {
        linger: Duration::from_secs(30),
        compression: Compression::Gzip,
        ..ProducerConfig::default()
    });
    let mut deliveries = Vec::new();
    for i in 0..10 {
        deliveries.push(producer.send(record("middle", 0, i)).await.expect("send"));
    }
    producer.close().await;
    for d in deliveries {
        d.await.expect("delivered by close");
    }
    let p = fetch_one(&client, "middle", 0, 5).await;
    assert_eq!(p.batches.len(), 1, "one batch for the whole flush");
    assert_eq!((p.batches[0].base_offset, p.batches[0].last_offset), (0, 9));
    let offsets: Vec<i64> = p.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![5, 6, 7, 8, 9]);
    assert_eq!(p.next_offset, 10);
}

#[tokio::test]
async fn list_offsets_earliest_latest_and_by_timestamp() {
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    create(&client, "times", 2).await;
    let producer = client.producer(ProducerConfig::default());
    for (i, ts) in [1_000, 2_000, 3_000].into_iter().enumerate() {
        let mut r = record("times", 0, i as i64);
        r.timestamp = ts;
        producer
            .send(r)
            .await
            .expect("send")
            .await
            .expect("delivered");
    }
    producer.close().await;

    let earliest = client
        .list_offsets("times", &[0, 1], OffsetSpec::Earliest)
        .await
        .expect("earliest");
    assert_eq!(earliest[&0].offset, 0);
    assert_eq!(earliest[&1].offset, 0);
    let latest = client
        .list_offsets("times", &[0, 1], OffsetSpec::Latest)
        .await
        .expect("latest");
    assert_eq!(latest[&0].offset, 3);
    assert_eq!(latest[&1].offset, 0);
    let at = client
        .list_offsets("times", &[0], OffsetSpec::Timestamp(1_500))
        .await
        .expect("by timestamp");
    assert_eq!((at[&0].offset, at[&0].timestamp), (1, 2_000));
    assert!(at[&0].leader_epoch.is_some());
    let after = client
        .list_offsets("times", &[0], OffsetSpec::Timestamp(10_000))
        .await
        .expect("after the last record");
    assert_eq!(after[&0].offset, -1);

    let mut config = broker.config();
    config.retries = 1;
    let impatient = Client::connect(config).await.expect("connect");
    let err = impatient
        .list_offsets("times", &[7], OffsetSpec::Latest)
        .await
        .expect_err("no partition 7");
    assert!(err.is(ResponseError::UnknownTopicOrPartition), "{err}");
}

#[tokio::test]
async fn fetch_long_polls_until_data_arrives() {
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    create(&client, "poll", 1).await;

    // Nothing to read: the broker holds the fetch for max_wait_ms.
    let mut empty = FetchRequestSpec::new([FetchPartitionSpec {
        topic: "poll".into(),
        partition: 0,
        offset: 0,
    }]);
    empty.max_wait_ms = 300;
    let started = Instant::now();
    let result = client.fetch(empty).await.expect("fetch");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert!(result.partitions[&("poll".to_string(), 0)]
        .records
        .is_empty());

    // A long poll returns with the record once it is produced, well before max_wait_ms.
    let mut waiting = FetchRequestSpec::new([FetchPartitionSpec {
        topic: "poll".into(),
        partition: 0,
        offset: 0,
    }]);
    waiting.max_wait_ms = 20_000;
    let poller = client.clone();
    let started = Instant::now();
    let fetch = tokio::spawn(async move { poller.fetch(waiting).await });
    let producer = client.producer(ProducerConfig::default());
    producer
        .send(record("poll", 0, 0))
        .await
        .expect("send")
        .await
        .expect("delivered");
    let result = fetch.await.expect("task").expect("fetch");
    assert!(started.elapsed() < Duration::from_secs(15));
    let p = &result.partitions[&("poll".to_string(), 0)];
    assert_eq!(p.records.len(), 1);
    assert_eq!(p.records[0].key, record("poll", 0, 0).key);
    producer.close().await;
}

#[tokio::test]
async fn fetch_reports_partition_errors() {
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    create(&client, "errs", 1).await;
    let mut spec = FetchRequestSpec::new([
        FetchPartitionSpec {
            topic: "errs".into(),
            partition: 0,
            offset: 42,
        },
        FetchPartitionSpec {
            topic: "nope".into(),
            partition: 0,
            offset: 0,
        },
    ]);
    spec.max_wait_ms = 0;
    let result = client.fetch(spec).await.expect("fetch");
    let out_of_range = &result.partitions[&("errs".to_string(), 0)];
    let err = out_of_range
        .error
        .as_ref()
        .expect("offset 42 is out of range");
    assert!(err.is(ResponseError::OffsetOutOfRange), "{err}");
    let unknown = &result.partitions[&("nope".to_string(), 0)];
    let err = unknown.error.as_ref().expect("unknown topic");
    assert!(err.is(ResponseError::UnknownTopicOrPartition), "{err}");
}

#[tokio::test]
async fn producer_refuses_what_it_cannot_send_faithfully() {
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    let producer = client.producer(ProducerConfig::default());
    let mut dup = record("any", 0, 0);
    dup.headers.push(("seq".into(), None));
    let err = producer.send(dup).await.expect_err("duplicate header key");
    assert!(
        matches!(err, Error::Unsupported { api: "Produce", .. }),
        "{err:?}"
    );
    let mut negative = record("any", 0, 0);
    negative.partition = -1;
    assert!(producer.send(negative).await.is_err());
    producer.close().await;
}

#[tokio::test]
async fn producer_fails_records_of_a_missing_partition_after_the_delivery_timeout() {
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    create(&client, "small", 1).await;
    let producer = client.producer(ProducerConfig {
        delivery_timeout: Duration::from_millis(500),
        ..ProducerConfig::default()
    });
    let ok = producer.send(record("small", 0, 0)).await.expect("send");
    let lost = producer.send(record("small", 5, 0)).await.expect("send");
    assert_eq!(ok.await.expect("delivered").offset, 0);
    let err = lost.await.expect_err("partition 5 does not exist");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    producer.close().await;
}

#[tokio::test]
async fn raw_batches_copy_to_another_topic_unchanged() {
    let broker = TestBroker::start(&[]).await;
    let client = broker.client().await;
    create(&client, "source", 1).await;
    create(&client, "copy", 1).await;
    let producer = client.producer(ProducerConfig {
        batch_size: 400,
        compression: Compression::Zstd,
        ..ProducerConfig::default()
    });
    let mut deliveries = Vec::new();
    for i in 0..30 {
        deliveries.push(producer.send(record("source", 0, i)).await.expect("send"));
    }
    producer.close().await;
    for d in deliveries {
        d.await.expect("delivered");
    }

    let mut offset = 0;
    while offset < 30 {
        let p = fetch_one(&client, "source", 0, offset).await;
        assert!(p.error.is_none(), "{:?}", p.error);
        for batch in &p.batches {
            let base = client
                .produce_raw("copy", 0, batch.bytes.clone(), Acks::All)
                .await
                .expect("produce raw");
            assert_eq!(base, batch.base_offset, "same offsets in an empty copy");
        }
        offset = p.next_offset;
    }
    let original = fetch_all(&client, "source", 0, 30).await;
    let copied = fetch_all(&client, "copy", 0, 30).await;
    assert_eq!(original, copied);
}
