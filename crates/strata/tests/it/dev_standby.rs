//! `strata dev --standby` as a developer runs it: the binary starts two clusters and a mirror;
//! records produced to the first appear under the same topic name on the standby, and a
//! consumer group's committed offset reaches the standby (offsets preserved, never ahead of the
//! source); then `strata failover --to standby` makes the standby the active cluster: the
//! discovery address leads there, the fenced primary refuses writes.

use std::time::Duration;

use crate::common::DevProcess;
use strata_client::{
    Client, ClientConfig, FetchPartitionSpec, FetchRequestSpec, NewTopic, ProducerConfig,
    ProducerRecord,
};
use strata_testkit::{free_port, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_receives_records_and_group_offsets() {
    let data = tempfile::tempdir().expect("temp dir");
    let (port, standby_port) = (free_port(), free_port());
    let args: Vec<String> = vec![
        "--standby".into(),
        "--port".into(),
        port.to_string(),
        "--standby-port".into(),
        standby_port.to_string(),
        "--data-dir".into(),
        data.path().display().to_string(),
    ];
    let (mut dev, lines) = DevProcess::start(&args).await;
    let printed = lines.join("\n");
    assert!(
        printed.contains(&format!("bootstrap.servers = 127.0.0.1:{port}")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("standby           = 127.0.0.1:{standby_port}")),
        "{printed}"
    );

    let primary = Client::connect(ClientConfig::new([format!("127.0.0.1:{port}")]))
        .await
        .expect("primary reachable");
    // The standby carries the write fence: ordinary clients are sent back to the discovery
    // address; a client id the fence lets through reads it directly.
    let mut standby_config = ClientConfig::new([format!("127.0.0.1:{standby_port}")]);
    standby_config.client_id = "strata-failover-check".into();
    let standby = Client::connect(standby_config)
        .await
        .expect("standby reachable");
    let mut topic = NewTopic::new("orders");
    topic.partitions = Some(2);
    primary
        .admin()
        .create_topic(&topic)
        .await
        .expect("topic created");
    let producer = primary.producer(ProducerConfig::default());
    let mut acks = Vec::new();
    for i in 0..100i64 {
        let record = ProducerRecord {
            topic: "orders".into(),
            partition: (i % 2) as i32,
            key: Some(format!("k{i}").into_bytes().into()),
            value: Some(format!("v{i}").into_bytes().into()),
            headers: vec![],
            timestamp: 1_700_000_000_000 + i,
        };
        acks.push(producer.send(record).await.expect("queued"));
    }
    for ack in acks {
        ack.await.expect("acknowledged");
    }

    // Same name on the standby (Identity naming), every record, in order per partition.
    for partition in 0..2 {
        let values = wait_for("records on the standby", Duration::from_secs(60), || {
            let standby = standby.clone();
            async move {
                let spec = FetchRequestSpec::new(vec![FetchPartitionSpec {
                    topic: "orders".into(),
                    partition,
                    offset: 0,
                }]);
                let fetched = standby.fetch(spec).await.ok()?;
                let p = fetched.partitions.get(&("orders".to_string(), partition))?;
                let values: Vec<String> = p
                    .records
                    .iter()
                    .filter_map(|r| r.value.as_ref())
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect();
                (values.len() >= 50).then_some(values)
            }
        })
        .await;
        let expected: Vec<String> = (0..100)
            .filter(|i| i % 2 == partition as i64)
            .map(|i| format!("v{i}"))
            .collect();
        assert_eq!(values, expected, "partition {partition}");
    }

    // A group committed on the primary shows up on the standby, never ahead of the source.
    let committed = [(("orders".to_string(), 0), 30i64)].into_iter().collect();
    primary
        .admin()
        .commit_group_offsets("billing", &committed)
        .await
        .expect("commit on primary");
    let translated = wait_for("translated group offset", Duration::from_secs(60), || {
        let standby = standby.clone();
        async move {
            let offsets = standby.admin().fetch_group_offsets("billing").await.ok()?;
            offsets
                .get(&("orders".to_string(), 0))
                .copied()
                .filter(|o| *o >= 0)
        }
    })
    .await;
    assert!(
        translated <= 30,
        "translated offset {translated} must not pass the source's 30"
    );
    // Fail over: the CLI asks the running `strata dev` and waits until it is done.
    let discovery = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("discovery         = "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the banner prints the discovery address")
        .to_string();
    let out = tokio::task::spawn_blocking({
        let dir = data.path().to_path_buf();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
                .args([
                    "failover",
                    "--to",
                    "standby",
                    "--timeout",
                    "120",
                    "--data-dir",
                ])
                .arg(dir)
                .output()
                .expect("strata failover runs")
        }
    })
    .await
    .expect("joins");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("The standby is active"), "{said}");
    assert!(
        said.contains("records at risk 0"),
        "a planned failover drains first: {said}"
    );
    // Through discovery, a new client writes to the standby at the next offset.
    let via_discovery = Client::connect(ClientConfig::new([discovery]))
        .await
        .expect("discovery reachable");
    let producer = via_discovery.producer(ProducerConfig::default());
    let ack = producer
        .send(ProducerRecord {
            topic: "orders".into(),
            partition: 0,
            value: Some(b"after failover".to_vec().into()),
            ..ProducerRecord::default()
        })
        .await
        .expect("queued")
        .await
        .expect("acknowledged by the standby");
    assert_eq!(
        ack.offset, 50,
        "the standby continues the primary's offsets"
    );
    // The fenced primary refuses writes.
    let fenced = primary
        .producer(ProducerConfig {
            delivery_timeout: Duration::from_secs(3),
            ..ProducerConfig::default()
        })
        .send(ProducerRecord {
            topic: "orders".into(),
            partition: 0,
            value: Some(b"to the fenced primary".to_vec().into()),
            ..ProducerRecord::default()
        })
        .await
        .expect("queued")
        .await;
    assert!(
        fenced.is_err(),
        "the fenced primary took a write: {fenced:?}"
    );

    let status = dev.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "strata dev stops cleanly on SIGTERM: {status:?}"
    );
}
