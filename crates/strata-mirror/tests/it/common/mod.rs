//! Test support of the mirror suites: flows between in-process brokers (`strata-testkit`), a
//! source-data producer, a whole-topic reader and record comparison.

#![allow(dead_code)]

use std::collections::BTreeMap;

use bytes::Bytes;
use strata_client::{
    Client, FetchPartitionSpec, FetchRequestSpec, FetchedRecord, NewTopic, OffsetSpec,
    ProducerConfig, ProducerRecord,
};
use strata_mirror::MirrorConfig;
pub use strata_testkit::{wait_for, TestBroker};

/// A flow between two test brokers with short intervals.
pub fn flow(source: (&str, &TestBroker), target: (&str, &TestBroker)) -> MirrorConfig {
    let mut c = MirrorConfig::new(source.0, &source.1.addr, target.0, &target.1.addr);
    c.sync.checkpoint_interval_seconds = 1;
    c.sync.heartbeat_interval_seconds = 1;
    c.tuning.fetch_max_wait_ms = 100;
    c.tuning.linger_ms = 1;
    c.mirror.refresh_topics_interval_seconds = 1;
    c.mirror.progress_commit_interval_ms = 200;
    c.mirror.offset_lag_max = 10;
    c
}

pub async fn create_topic(client: &Client, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut t = NewTopic::new(name);
    t.partitions = Some(partitions);
    t.configs = configs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    client.admin().create_topic(&t).await.expect("create topic");
}

/// Produces `n` records round-robin over `partitions`, numbered from `first`, with a key, two
/// headers (one null) and a distinct timestamp each.
pub async fn produce(client: &Client, topic: &str, partitions: i32, first: usize, n: usize) {
    let producer = client.producer(ProducerConfig::default());
    let mut deliveries = Vec::new();
    for i in first..first + n {
        let record = ProducerRecord {
            topic: topic.to_string(),
            partition: (i % partitions as usize) as i32,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i}-{}", "x".repeat(i % 50)))),
            headers: vec![
                ("n".to_string(), Some(Bytes::from(i.to_string()))),
                ("empty".to_string(), None),
            ],
            timestamp: 1_700_000_000_000 + i as i64,
        };
        deliveries.push(producer.send(record).await.expect("send"));
    }
    producer.flush().await.expect("flush");
    for d in deliveries {
        d.await.expect("delivered");
    }
    producer.close().await;
}

/// Every record of every partition of `topic`, by partition.
pub async fn read_all(client: &Client, topic: &str) -> BTreeMap<i32, Vec<FetchedRecord>> {
    let meta = client
        .metadata(Some(&[topic.to_string()]))
        .await
        .expect("metadata");
    let Some(t) = meta.topics.get(topic) else {
        return BTreeMap::new();
    };
    let partitions: Vec<i32> = t.partitions.iter().map(|p| p.partition).collect();
    let ends = client
        .list_offsets(topic, &partitions, OffsetSpec::Latest)
        .await
        .expect("list offsets");
    let mut out = BTreeMap::new();
    for p in partitions {
        let end = ends.get(&p).map_or(0, |l| l.offset);
        let mut records: Vec<FetchedRecord> = Vec::new();
        let mut at = 0;
        while at < end {
            let mut spec = FetchRequestSpec::new([FetchPartitionSpec {
                topic: topic.to_string(),
                partition: p,
                offset: at,
            }]);
            spec.max_wait_ms = 50;
            let fetched = client.fetch(spec).await.expect("fetch");
            let fp = fetched
                .partitions
                .into_values()
                .next()
                .expect("partition in fetch");
            assert!(fp.error.is_none(), "fetch {topic}-{p}: {:?}", fp.error);
            records.extend(
                fp.records
                    .into_iter()
                    .filter(|r| r.offset >= at && r.offset < end),
            );
            at = fp.next_offset.max(at);
        }
        out.insert(p, records);
    }
    out
}

pub async fn count(client: &Client, topic: &str) -> usize {
    let meta = client.metadata(Some(&[topic.to_string()])).await;
    let Ok(meta) = meta else { return 0 };
    let Some(t) = meta.topics.get(topic) else {
        return 0;
    };
    let partitions: Vec<i32> = t.partitions.iter().map(|p| p.partition).collect();
    match client
        .list_offsets(topic, &partitions, OffsetSpec::Latest)
        .await
    {
        Ok(ends) => ends.values().map(|l| l.offset as usize).sum(),
        Err(_) => 0,
    }
}

/// What a comparison looks at: key, value, headers, timestamp.
pub type Content = (
    Option<Bytes>,
    Option<Bytes>,
    Vec<(String, Option<Bytes>)>,
    i64,
);

/// The record without the mirror's provenance header, for comparisons.
pub fn content(r: &FetchedRecord) -> Content {
    let headers = r
        .headers
        .iter()
        .filter(|(k, _)| k != strata_mirror::PROVENANCE_HEADER)
        .cloned()
        .collect();
    (r.key.clone(), r.value.clone(), headers, r.timestamp)
}
