//! `offsets: Preserve` between two in-process Strata brokers: target offsets equal source
//! offsets record by record, a restart resumes from the target's log end without duplicates,
//! group offsets carry over unchanged, and the broker's mirror-target extension refuses every
//! other writer, skips re-sent batches, and lets a promoted topic take normal producers.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use strata_client::{
    Acks, Client, ClientConfig, ConfigOp, FetchPartitionSpec, FetchRequestSpec, OffsetSpec,
    ProducerConfig, ProducerRecord, ResponseError,
};
use strata_flow::{NamingMode, OffsetMode};
use strata_kafka::preserve::{MIRROR_SOURCE_CONFIG, PRESERVE_CLIENT_ID};
use strata_mirror::{Mirror, MirrorConfig, RunOptions};

const WAIT: Duration = Duration::from_secs(20);

fn preserve_flow(source: &TestBroker, target: &TestBroker) -> MirrorConfig {
    let mut c = flow(("east", source), ("west", target));
    c.naming = NamingMode::Identity;
    c.offsets = OffsetMode::Preserve;
    c
}

async fn preserving_client(broker: &TestBroker) -> Client {
    let mut c = ClientConfig::new([broker.addr.clone()]);
    c.client_id = PRESERVE_CLIENT_ID.to_string();
    c.request_timeout = Duration::from_secs(10);
    Client::connect(c).await.expect("client connects")
}

async fn send_one(client: &Client, topic: &str) -> Result<i64, strata_client::Error> {
    let producer = client.producer(ProducerConfig::default());
    let delivery = producer
        .send(ProducerRecord {
            topic: topic.to_string(),
            partition: 0,
            key: None,
            value: Some(Bytes::from_static(b"local write")),
            headers: Vec::new(),
            timestamp: -1,
        })
        .await?;
    producer.flush().await.ok();
    let result = delivery.await.map(|m| m.offset);
    producer.close().await;
    result
}

/// (offset, key, value, headers, timestamp) of every record, by partition.
type Exact = BTreeMap<i32, Vec<(i64, Content)>>;

async fn exact(client: &Client, topic: &str) -> Exact {
    read_all(client, topic)
        .await
        .into_iter()
        .map(|(p, rs)| (p, rs.iter().map(|r| (r.offset, content(r))).collect()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_preserved_across_restarts_and_groups_need_no_translation() {
    let source = TestBroker::start(&[]).await;
    let target = TestBroker::start(&[]).await;
    let src = source.client().await;
    let dst = target.client().await;
    create_topic(&src, "orders", 3, &[]).await;
    produce(&src, "orders", 3, 0, 1500).await;

    let mirror = Mirror::start(preserve_flow(&source, &target), RunOptions::default())
        .await
        .expect("mirror starts");
    wait_for("1500 records on the target", WAIT, || async {
        (count(&dst, "orders").await >= 1500).then_some(())
    })
    .await;
    assert_eq!(exact(&dst, "orders").await, exact(&src, "orders").await);

    // The remote topic is a mirror target: marked, and closed to other producers.
    let configs = dst.admin().describe_topic_configs("orders").await.unwrap();
    let marker = configs.iter().find(|c| c.name == MIRROR_SOURCE_CONFIG);
    assert_eq!(marker.and_then(|c| c.value.as_deref()), Some("east"));
    let refused = send_one(&dst, "orders")
        .await
        .expect_err("a normal producer must be refused");
    assert!(refused.is(ResponseError::PolicyViolation), "{refused}");
    assert!(
        refused.to_string().contains(MIRROR_SOURCE_CONFIG),
        "{refused}"
    );

    // Stop, write more, start again: the target resumes at its own log end, no duplicate.
    mirror.shutdown().await;
    produce(&src, "orders", 3, 1500, 600).await;
    let mirror = Mirror::start(preserve_flow(&source, &target), RunOptions::default())
        .await
        .expect("mirror restarts");
    wait_for("2100 records on the target", WAIT, || async {
        (count(&dst, "orders").await >= 2100).then_some(())
    })
    .await;
    assert_eq!(count(&dst, "orders").await, 2100, "no duplicates");
    assert_eq!(exact(&dst, "orders").await, exact(&src, "orders").await);

    // A group's committed source offsets arrive on the target unchanged.
    let committed: BTreeMap<(String, i32), i64> = [
        (("orders".to_string(), 0), 321),
        (("orders".to_string(), 2), 700),
    ]
    .into();
    src.admin()
        .commit_group_offsets("billing", &committed)
        .await
        .unwrap();
    let synced = wait_for("the group's offsets on the target", WAIT, || async {
        let got = dst.admin().fetch_group_offsets("billing").await.ok()?;
        (got.len() == 2).then_some(got)
    })
    .await;
    assert_eq!(synced, committed);

    // Promotion: without the marker the topic is a normal topic again.
    mirror.shutdown().await;
    dst.admin()
        .incremental_alter_topic_configs("orders", &[ConfigOp::Delete(MIRROR_SOURCE_CONFIG.into())])
        .await
        .unwrap();
    let end = dst
        .list_offsets("orders", &[0], OffsetSpec::Latest)
        .await
        .unwrap()[&0]
        .offset;
    assert_eq!(send_one(&dst, "orders").await.expect("promoted topic"), end);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_skips_resent_batches_and_refuses_misplaced_ones() {
    let source = TestBroker::start(&[]).await;
    let target = TestBroker::start(&[]).await;
    let src = source.client().await;
    let dst = target.client().await;
    let mirror_side = preserving_client(&target).await;
    create_topic(&src, "t", 1, &[]).await;
    produce(&src, "t", 1, 0, 50).await;
    create_topic(&dst, "t", 1, &[(MIRROR_SOURCE_CONFIG, "east")]).await;
    create_topic(&dst, "plain", 1, &[]).await;

    let mut spec = FetchRequestSpec::new([FetchPartitionSpec {
        topic: "t".into(),
        partition: 0,
        offset: 0,
    }]);
    spec.decode_records = false;
    let fetched = src.fetch(spec).await.unwrap();
    let raw = fetched.partitions.into_values().next().unwrap().raw;
    assert!(!raw.is_empty());

    let base = mirror_side
        .produce_preserving_offsets("t", 0, raw.clone(), Acks::All)
        .await
        .expect("first append");
    assert_eq!(base, 0);
    let end = |c: &Client| {
        let c = c.clone();
        async move { c.list_offsets("t", &[0], OffsetSpec::Latest).await.unwrap()[&0].offset }
    };
    assert_eq!(end(&dst).await, 50);
    // A re-send (lost acknowledgement, restarted mirror) is a no-op, not an error.
    mirror_side
        .produce_preserving_offsets("t", 0, raw.clone(), Acks::All)
        .await
        .expect("re-send is accepted");
    assert_eq!(end(&dst).await, 50);
    assert_eq!(exact(&dst, "t").await, exact(&src, "t").await);
    // Idempotent producers' ids travel with their batches: the target's producer state, so a
    // producer that moves to it at a failover has its retries recognised.
    let producer_ids = |c: &Client| {
        let c = c.clone();
        async move {
            let spec = FetchRequestSpec::new([FetchPartitionSpec {
                topic: "t".into(),
                partition: 0,
                offset: 0,
            }]);
            let fetched = c.fetch(spec).await.unwrap();
            let fp = fetched.partitions.into_values().next().unwrap();
            fp.batches
                .iter()
                .map(|b| i64::from_be_bytes(b.bytes[43..51].try_into().unwrap()))
                .collect::<Vec<_>>()
        }
    };
    let source_ids = producer_ids(&src).await;
    assert!(source_ids.iter().all(|&id| id >= 0), "{source_ids:?}");
    assert_eq!(producer_ids(&dst).await, source_ids);

    // The mirror's client cannot preserve offsets into a topic that is not a mirror target.
    let e = mirror_side
        .produce_preserving_offsets("plain", 0, raw, Acks::All)
        .await
        .expect_err("unmarked topic");
    assert!(e.is(ResponseError::PolicyViolation), "{e}");
    assert!(e.to_string().contains("not a mirror target"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preserve_refuses_an_existing_topic_with_records() {
    let source = TestBroker::start(&[]).await;
    let target = TestBroker::start(&[]).await;
    let src = source.client().await;
    let dst = target.client().await;
    create_topic(&src, "taken", 1, &[]).await;
    create_topic(&src, "fresh", 1, &[]).await;
    produce(&src, "taken", 1, 0, 10).await;
    produce(&src, "fresh", 1, 0, 10).await;
    create_topic(&dst, "taken", 1, &[]).await;
    send_one(&dst, "taken").await.expect("local record");

    let mirror = Mirror::start(preserve_flow(&source, &target), RunOptions::default())
        .await
        .expect("mirror starts");
    wait_for("the fresh topic mirrored", WAIT, || async {
        (count(&dst, "fresh").await >= 10).then_some(())
    })
    .await;
    let mirrored: Vec<String> = mirror
        .mirrored_topics()
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert!(mirrored.contains(&"fresh".to_string()), "{mirrored:?}");
    assert!(!mirrored.contains(&"taken".to_string()), "{mirrored:?}");
    assert_eq!(
        count(&dst, "taken").await,
        1,
        "the local record is untouched"
    );
    mirror.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_written_while_promoted_is_not_resumed_blindly() {
    let source = TestBroker::start(&[]).await;
    let target = TestBroker::start(&[]).await;
    let src = source.client().await;
    let dst = target.client().await;
    create_topic(&src, "orders", 2, &[]).await;
    produce(&src, "orders", 2, 0, 100).await;
    let mirror = Mirror::start(preserve_flow(&source, &target), RunOptions::default())
        .await
        .expect("mirror starts");
    wait_for("100 records on the target", WAIT, || async {
        (count(&dst, "orders").await >= 100).then_some(())
    })
    .await;
    mirror.shutdown().await;

    // Promoted, written to locally, then marked again by hand: partition 0 now holds a record
    // the source does not have at that offset.
    let marker = |op| async {
        dst.admin()
            .incremental_alter_topic_configs("orders", &[op])
            .await
            .unwrap()
    };
    marker(ConfigOp::Delete(MIRROR_SOURCE_CONFIG.into())).await;
    let local = send_one(&dst, "orders").await.expect("promoted topic");
    marker(ConfigOp::Set(MIRROR_SOURCE_CONFIG.into(), "east".into())).await;
    produce(&src, "orders", 2, 100, 100).await;

    let mirror = Mirror::start(preserve_flow(&source, &target), RunOptions::default())
        .await
        .expect("mirror restarts");
    let ends = |c: &Client| {
        let c = c.clone();
        async move {
            c.list_offsets("orders", &[0, 1], OffsetSpec::Latest)
                .await
                .unwrap()
                .into_iter()
                .map(|(p, l)| (p, l.offset))
                .collect::<BTreeMap<i32, i64>>()
        }
    };
    wait_for("partition 1 caught up", WAIT, || async {
        (ends(&dst).await[&1] == ends(&src).await[&1]).then_some(())
    })
    .await;
    // Partition 0 is stopped, not resumed past the local record at source offsets.
    assert_eq!(ends(&dst).await[&0], local + 1);
    let p0 = &read_all(&dst, "orders").await[&0];
    assert_eq!(
        p0.last().map(|r| r.value.clone()),
        Some(Some(Bytes::from_static(b"local write")))
    );
    mirror.shutdown().await;
}
