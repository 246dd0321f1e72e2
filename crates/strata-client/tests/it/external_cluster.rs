//! The client against an external cluster, e.g. the reference Apache Kafka of `tests/env`
//! (`tests/env/kafka/kafka.sh start-broker DIR` prints its bootstrap address). Runs only when
//! `STRATA_CLIENT_BOOTSTRAP` names the cluster; topic and group names carry a random suffix so
//! that runs do not collide.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_client::{
    Client, ClientConfig, Compression, ConfigOp, ConfigSource, FetchPartitionSpec,
    FetchRequestSpec, NewTopic, OffsetSpec, ProducerConfig, ProducerRecord, ResponseError,
};

fn bootstrap() -> Option<String> {
    std::env::var("STRATA_CLIENT_BOOTSTRAP")
        .ok()
        .filter(|s| !s.is_empty())
}

#[tokio::test]
async fn admin_and_data_path_against_an_external_cluster() {
    let Some(bootstrap) = bootstrap() else {
        eprintln!("STRATA_CLIENT_BOOTSTRAP is not set; skipped");
        return;
    };
    let suffix: u32 = rand_suffix();
    let client = Client::connect(ClientConfig::new(bootstrap.split(',')))
        .await
        .expect("connect");
    let admin = client.admin();

    let cluster = client.describe_cluster().await.expect("describe cluster");
    assert!(!cluster.brokers.is_empty());
    let meta = client.metadata(None).await.expect("metadata");
    assert_eq!(meta.brokers, cluster.brokers);

    // Topics and configs.
    let name = format!("client-compat-{suffix}");
    let mut topic = NewTopic::new(&name);
    topic.partitions = Some(2);
    topic
        .configs
        .insert("retention.ms".into(), "3600000".into());
    let created = admin.create_topic(&topic).await.expect("create");
    assert_eq!(created.partitions, 2);
    assert!(created.topic_id.is_some());
    let err = admin.create_topic(&topic).await.expect_err("exists");
    assert!(err.is(ResponseError::TopicAlreadyExists), "{err}");
    admin.create_partitions(&name, 3).await.expect("grow");
    let err = admin.create_partitions(&name, 2).await.expect_err("shrink");
    assert!(err.is(ResponseError::InvalidPartitions), "{err}");
    let configs = admin.describe_topic_configs(&name).await.expect("configs");
    let retention = configs
        .iter()
        .find(|c| c.name == "retention.ms")
        .expect("retention.ms");
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    admin
        .incremental_alter_topic_configs(
            &name,
            &[
                ConfigOp::Set("cleanup.policy".into(), "compact".into()),
                ConfigOp::Delete("retention.ms".into()),
            ],
        )
        .await
        .expect("alter");
    let configs = admin.describe_topic_configs(&name).await.expect("configs");
    let cleanup = configs
        .iter()
        .find(|c| c.name == "cleanup.policy")
        .expect("cleanup.policy");
    assert_eq!(cleanup.value.as_deref(), Some("compact"));
    let broker_configs = admin
        .describe_broker_configs(cluster.brokers[0].id)
        .await
        .expect("broker configs");
    assert!(!broker_configs.is_empty());

    // Produce with every codec, then read back.
    let wait_for_partitions = Instant::now() + Duration::from_secs(30);
    loop {
        let m = client
            .metadata(Some(std::slice::from_ref(&name)))
            .await
            .expect("metadata");
        if m.topics
            .get(&name)
            .is_some_and(|t| t.partitions.len() == 3 && t.partitions.iter().all(|p| p.leader >= 0))
        {
            break;
        }
        assert!(Instant::now() < wait_for_partitions, "partitions not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut expected = Vec::new();
    for (i, compression) in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .enumerate()
    {
        let producer = client.producer(ProducerConfig {
            compression,
            ..ProducerConfig::default()
        });
        let mut deliveries = Vec::new();
        for j in 0..20 {
            let n = (i * 20 + j) as i64;
            let record = ProducerRecord {
                topic: name.clone(),
                partition: 1,
                key: Some(Bytes::from(format!("k{n}"))),
                value: Some(Bytes::from(format!("v{n}"))),
                headers: vec![("n".into(), Some(Bytes::from(n.to_string())))],
                timestamp: 1_000_000 + n,
            };
            expected.push(record.clone());
            deliveries.push(producer.send(record).await.expect("send"));
        }
        for (j, d) in deliveries.into_iter().enumerate() {
            assert_eq!(d.await.expect("delivered").offset, (i * 20 + j) as i64);
        }
        producer.close().await;
    }
    let mut records = Vec::new();
    let mut offset = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while records.len() < expected.len() {
        assert!(Instant::now() < deadline, "fetched {}", records.len());
        let mut spec = FetchRequestSpec::new([FetchPartitionSpec {
            topic: name.clone(),
            partition: 1,
            offset,
        }]);
        spec.max_wait_ms = 200;
        let mut result = client.fetch(spec).await.expect("fetch");
        let p = result
            .partitions
            .remove(&(name.clone(), 1))
            .expect("partition");
        assert!(p.error.is_none(), "{:?}", p.error);
        offset = p.next_offset;
        records.extend(p.records);
    }
    for (r, e) in records.iter().zip(&expected) {
        assert_eq!(r.key, e.key);
        assert_eq!(r.value, e.value);
        assert_eq!(r.timestamp, e.timestamp);
        assert_eq!(r.headers, e.headers);
    }
    // Raw batches copied into partition 2 keep their records and offsets.
    let mut offset = 0;
    while offset < 100 {
        let mut spec = FetchRequestSpec::new([FetchPartitionSpec {
            topic: name.clone(),
            partition: 1,
            offset,
        }]);
        spec.max_wait_ms = 0;
        let mut result = client.fetch(spec).await.expect("fetch");
        let p = result
            .partitions
            .remove(&(name.clone(), 1))
            .expect("partition");
        for batch in &p.batches {
            let base = client
                .produce_raw(&name, 2, batch.bytes.clone(), strata_client::Acks::All)
                .await
                .expect("produce raw");
            assert_eq!(base, batch.base_offset);
        }
        offset = p.next_offset;
    }
    let latest = client
        .list_offsets(&name, &[0, 1, 2], OffsetSpec::Latest)
        .await
        .expect("latest");
    assert_eq!(latest[&1].offset, 100);
    assert_eq!(latest[&0].offset, 0);
    assert_eq!(latest[&2].offset, 100);
    let by_time = client
        .list_offsets(&name, &[1], OffsetSpec::Timestamp(1_000_050))
        .await
        .expect("by time");
    assert_eq!(by_time[&1].offset, 50);

    // Group offsets.
    let group = format!("client-compat-group-{suffix}");
    let offsets = BTreeMap::from([((name.clone(), 0), 0), ((name.clone(), 1), 42)]);
    admin
        .commit_group_offsets(&group, &offsets)
        .await
        .expect("commit");
    assert_eq!(
        admin.fetch_group_offsets(&group).await.expect("fetch"),
        offsets
    );
    let groups = admin.list_groups().await.expect("list groups");
    assert!(groups.iter().any(|g| g.group_id == group), "{groups:?}");
    let described = admin
        .describe_groups(std::slice::from_ref(&group))
        .await
        .expect("describe groups");
    assert_eq!(described[0].state, "Empty");

    // ACLs: served by Kafka; without an authorizer it answers SECURITY_DISABLED.
    match admin.describe_acls().await {
        Ok(_) => {}
        Err(e) => assert!(e.is(ResponseError::SecurityDisabled), "{e}"),
    }

    admin.delete_topic(&name).await.expect("delete");
    let err = admin.delete_topic(&name).await.expect_err("deleted");
    assert!(err.is(ResponseError::UnknownTopicOrPartition), "{err}");
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32))
}
