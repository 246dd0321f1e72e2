//! Brokers that are not controller voters (`process.roles=broker`, no controller listener)
//! follow the metadata quorum as observers, as in a KRaft cluster whose controllers are a
//! subset of the nodes: three voters and one broker-only node form one cluster, the quorum
//! lists the broker as an observer that has caught up, and the broker serves the cluster's
//! current metadata and takes replicas that join the ISR.

use std::time::Duration;

use strata_client::{Client, ClientConfig, NewTopic};
use strata_testkit::{wait_for, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_only_node_follows_the_quorum_as_an_observer() {
    // `start_with_voters` returns once every broker, the observer included, is registered,
    // unfenced and sees all four: an observer that receives no metadata never gets there.
    let cluster = TestCluster::start_with_voters(4, 3, &[]).await;
    let client = Client::connect(ClientConfig::new(cluster.bootstrap().split(',')))
        .await
        .expect("connect");

    let quorum = wait_for(
        "broker 4 caught up as an observer",
        Duration::from_secs(30),
        || async {
            let q = client.admin().describe_quorum().await.ok()?;
            let caught_up = q
                .observers
                .iter()
                .any(|o| o.replica_id == 4 && o.log_end_offset >= q.high_watermark);
            caught_up.then_some(q)
        },
    )
    .await;
    assert_eq!(quorum.voter_ids(), vec![1, 2, 3], "{quorum:?}");
    assert!(
        quorum.leader_id.is_some_and(|l| (1..=3).contains(&l)),
        "{quorum:?}"
    );

    let name = format!(
        "observer-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let mut topic = NewTopic::new(&name);
    topic.partitions = Some(4);
    topic.replication_factor = Some(3);
    client.admin().create_topic(&topic).await.expect("create");

    // The observer answers with the new topic from its own metadata image, and its replicas
    // are in sync like every other broker's.
    let observer = cluster.brokers[3].local_addr.to_string();
    let direct = Client::connect(ClientConfig::new([observer.as_str()]))
        .await
        .expect("connect to broker 4");
    let on_observer = wait_for(
        "the topic, fully in sync, in broker 4's metadata",
        Duration::from_secs(30),
        || async {
            let meta = direct
                .metadata(Some(std::slice::from_ref(&name)))
                .await
                .ok()?;
            let parts: Vec<_> = (0..4)
                .map(|p| meta.topics.get(&name)?.partition(p).cloned())
                .collect::<Option<_>>()?;
            let in_sync = parts
                .iter()
                .all(|p| p.replicas.len() == 3 && p.replicas.iter().all(|r| p.isr.contains(r)));
            in_sync.then_some(parts)
        },
    )
    .await;
    assert!(
        on_observer.iter().any(|p| p.replicas.contains(&4)),
        "broker 4 holds no replica: {on_observer:?}"
    );
    cluster.stop().await;
}
