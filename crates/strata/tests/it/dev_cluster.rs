//! `strata dev --brokers 3 --racks a,b,c` as a developer runs it: one process, one cluster of
//! three brokers that are all controller voters. The banner lists every broker with its rack;
//! the brokers report one cluster id, their racks and a quorum leader; a topic gets replication
//! factor 3 and takes `acks=all` writes; a second run reuses the kept `cluster.id`.

use std::net::TcpListener;
use std::time::Duration;

use crate::common::DevProcess;
use strata_client::{Client, ClientConfig, NewTopic, ProducerConfig, ProducerRecord};
use strata_testkit::wait_for;

/// A client port whose next two ports and the three 100 above are free too.
fn free_port_block() -> u16 {
    for _ in 0..50 {
        let base = strata_testkit::free_port();
        if base > u16::MAX - 110 {
            continue;
        }
        let ports = [0, 1, 2, 100, 101, 102].map(|d| base + d);
        let held: Vec<TcpListener> = ports
            .iter()
            .filter_map(|p| TcpListener::bind(("127.0.0.1", *p)).ok())
            .collect();
        if held.len() == ports.len() {
            return base;
        }
    }
    panic!("no free block of ports");
}

fn dev_args(port: u16, data: &std::path::Path) -> Vec<String> {
    vec![
        "--brokers".into(),
        "3".into(),
        "--racks".into(),
        "a,b,c".into(),
        "--port".into(),
        port.to_string(),
        "--data-dir".into(),
        data.display().to_string(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_form_one_cluster_with_racks_and_a_quorum() {
    let data = tempfile::tempdir().expect("temp dir");
    let port = free_port_block();
    let (mut dev, lines) = DevProcess::start(&dev_args(port, data.path())).await;
    let printed = lines.join("\n");
    let bootstrap = format!(
        "127.0.0.1:{port},127.0.0.1:{},127.0.0.1:{}",
        port + 1,
        port + 2
    );
    assert!(
        printed.contains(&format!("bootstrap.servers = {bootstrap}")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "broker 2          = 127.0.0.1:{} rack b, controller voter (quorum port {})",
            port + 1,
            port + 101
        )),
        "{printed}"
    );
    let kept = std::fs::read_to_string(data.path().join("cluster.id")).expect("cluster.id kept");
    let kept = kept.trim().to_owned();
    assert!(printed.contains(&kept), "{printed}");

    let client = Client::connect(ClientConfig::new(bootstrap.split(',').map(String::from)))
        .await
        .expect("cluster reachable");
    let described = client.describe_cluster().await.expect("DescribeCluster");
    assert_eq!(described.cluster_id, kept);
    let racks: Vec<(i32, Option<String>)> = described
        .brokers
        .iter()
        .map(|b| (b.id, b.rack.clone()))
        .collect();
    assert_eq!(
        racks,
        [
            (1, Some("a".to_owned())),
            (2, Some("b".to_owned())),
            (3, Some("c".to_owned()))
        ]
    );
    let quorum = wait_for("a quorum leader", Duration::from_secs(30), || {
        let admin = client.admin();
        async move {
            admin
                .describe_quorum()
                .await
                .ok()
                .filter(|q| q.leader_id.is_some())
        }
    })
    .await;
    let mut voters = quorum.voter_ids();
    voters.sort_unstable();
    assert_eq!(voters, [1, 2, 3]);
    assert!(
        voters.contains(&quorum.leader_id.unwrap_or(-1)),
        "{quorum:?}"
    );

    // The defaults of a 3-broker cluster: replication factor 3, acks=all writes succeed.
    let mut topic = NewTopic::new("orders");
    topic.partitions = Some(3);
    let created = client.admin().create_topic(&topic).await.expect("created");
    assert_eq!(created.replication_factor, 3);
    let producer = client.producer(ProducerConfig::default());
    let mut acks = Vec::new();
    for i in 0..30i64 {
        let record = ProducerRecord {
            topic: "orders".into(),
            partition: (i % 3) as i32,
            key: None,
            value: Some(format!("v{i}").into_bytes().into()),
            headers: vec![],
            timestamp: 1_700_000_000_000 + i,
        };
        acks.push(producer.send(record).await.expect("queued"));
    }
    for ack in acks {
        ack.await.expect("acknowledged by all in-sync replicas");
    }
    drop(producer);
    drop(client);
    let status = dev.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "strata dev stops cleanly on SIGTERM: {status:?}"
    );

    // The next run is the same cluster.
    let (mut again, lines) = DevProcess::start(&dev_args(port, data.path())).await;
    let printed = lines.join("\n");
    assert!(printed.contains(&format!("cluster.id {kept}")), "{printed}");
    let status = again.stop();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
