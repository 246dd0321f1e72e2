//! Leader elections, partition reassignments, replication throttles and the under-replicated
//! view against a cluster of at least three brokers: always against three in-process Strata
//! brokers forming one quorum ([`strata_testkit::TestCluster`]), and against an external
//! cluster when `STRATA_CLIENT_CLUSTER_BOOTSTRAP` names one, e.g. the reference Apache Kafka
//! (`tests/env/kafka/kafka.sh start-cluster DIR --brokers 3` prints the bootstrap list), whose
//! answers are the expectation. Topic names carry a random suffix so that runs do not collide.

use std::time::Duration;

use bytes::Bytes;
use strata_client::{
    election_not_needed, Client, ClientConfig, ConfigOp, ConfigSource, ElectionType, NewTopic,
    ProducerConfig, ProducerRecord, ResponseError,
};
use strata_testkit::wait_for;

fn bootstrap() -> Option<String> {
    std::env::var("STRATA_CLIENT_CLUSTER_BOOTSTRAP")
        .ok()
        .filter(|s| !s.is_empty())
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32))
}

async fn replicas_of(client: &Client, topic: &str, partition: i32) -> (i32, Vec<i32>, Vec<i32>) {
    listed_replicas(client, topic, partition)
        .await
        .expect("the partition in Metadata")
}

/// Leader, replicas and ISR of a partition; `None` while the broker asked does not list it yet
/// (a new topic reaches each broker's metadata a little after CreateTopics returns).
async fn listed_replicas(
    client: &Client,
    topic: &str,
    partition: i32,
) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    let meta = client
        .metadata(Some(&[topic.to_owned()]))
        .await
        .expect("metadata");
    let p = meta.topics.get(topic)?.partition(partition)?.clone();
    Some((p.leader, p.replicas, p.isr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elections_reassignments_and_throttles_on_a_strata_cluster() {
    let cluster = strata_testkit::TestCluster::start(3, &[]).await;
    elections_reassignments_and_throttles(&cluster.bootstrap()).await;
    cluster.stop().await;
}

#[tokio::test]
async fn elections_reassignments_and_throttles_on_an_external_cluster() {
    let Some(bootstrap) = bootstrap() else {
        eprintln!("STRATA_CLIENT_CLUSTER_BOOTSTRAP is not set; skipped");
        return;
    };
    elections_reassignments_and_throttles(&bootstrap).await;
}

async fn elections_reassignments_and_throttles(bootstrap: &str) {
    let client = Client::connect(ClientConfig::new(bootstrap.split(',')))
        .await
        .expect("connect");
    let admin = client.admin();
    let brokers: Vec<i32> = client
        .metadata(Some(&[]))
        .await
        .expect("metadata")
        .brokers
        .iter()
        .map(|b| b.id)
        .collect();
    assert!(brokers.len() >= 3, "needs 3 brokers, has {brokers:?}");
    let name = format!("placement-{}", rand_suffix());
    let mut topic = NewTopic::new(&name);
    topic.partitions = Some(2);
    topic.replication_factor = Some(2);
    admin.create_topic(&topic).await.expect("create");
    let (_, initial, _) = wait_for("the topic's ISR", Duration::from_secs(30), || async {
        let r = listed_replicas(&client, &name, 0).await?;
        (r.2.len() == 2).then_some(r)
    })
    .await;
    let spare = *brokers
        .iter()
        .find(|b| !initial.contains(b))
        .expect("a broker without a replica");

    // 1. Nothing is under-replicated or moving in the new topic.
    let urp = admin.under_replicated_partitions().await.expect("urp");
    assert!(urp.iter().all(|u| u.topic != name), "{urp:?}");

    // 2. Bad reassignments: an unknown broker and a duplicate replica are refused per
    //    partition with INVALID_REPLICA_ASSIGNMENT, and nothing changes; an unknown partition
    //    is UNKNOWN_TOPIC_OR_PARTITION; a cancel with nothing moving is NO_REASSIGNMENT_IN_PROGRESS.
    let tp = |p: i32| (name.clone(), p);
    let outcomes = admin
        .alter_partition_reassignments(&[
            (tp(0), Some(vec![initial[0], 9999])),
            (tp(1), Some(vec![initial[0], initial[0]])),
            ((format!("{name}-missing"), 0), Some(vec![initial[0]])),
        ])
        .await
        .expect("answered");
    let code = |r: &Result<(), strata_client::Error>| r.as_ref().err().and_then(|e| e.code());
    assert_eq!(
        code(&outcomes[&tp(0)]),
        Some(ResponseError::InvalidReplicaAssignment.code()),
        "{outcomes:?}"
    );
    assert_eq!(
        code(&outcomes[&tp(1)]),
        Some(ResponseError::InvalidReplicaAssignment.code()),
        "{outcomes:?}"
    );
    assert_eq!(
        code(&outcomes[&(format!("{name}-missing"), 0)]),
        Some(ResponseError::UnknownTopicOrPartition.code()),
        "{outcomes:?}"
    );
    assert_eq!(replicas_of(&client, &name, 0).await.1, initial);
    let outcomes = admin
        .alter_partition_reassignments(&[(tp(0), None)])
        .await
        .expect("answered");
    assert_eq!(
        code(&outcomes[&tp(0)]),
        Some(ResponseError::NoReassignmentInProgress.code()),
        "{outcomes:?}"
    );

    // 3. Broker configs: the throttle rates per broker and as the cluster default.
    let leader_rate = "leader.replication.throttled.rate";
    let follower_rate = "follower.replication.throttled.rate";
    admin
        .incremental_alter_broker_configs(
            Some(brokers[0]),
            &[ConfigOp::Set(leader_rate.into(), "1000000".into())],
        )
        .await
        .expect("per-broker config");
    admin
        .incremental_alter_broker_configs(
            None,
            &[ConfigOp::Set(follower_rate.into(), "2000000".into())],
        )
        .await
        .expect("default config");
    let value = |entries: &[strata_client::ConfigEntry], key: &str| {
        entries
            .iter()
            .find(|e| e.name == key)
            .map(|e| (e.value.clone(), e.source))
    };
    let own = wait_for("the per-broker rate", Duration::from_secs(15), || async {
        let entries = admin.describe_broker_configs(brokers[0]).await.ok()?;
        value(&entries, leader_rate).filter(|(v, _)| v.as_deref() == Some("1000000"))
    })
    .await;
    assert_eq!(own.1, ConfigSource::DynamicBroker);
    let defaults = wait_for("the default rate", Duration::from_secs(15), || async {
        let entries = admin.describe_default_broker_configs().await.ok()?;
        value(&entries, follower_rate).filter(|(v, _)| v.as_deref() == Some("2000000"))
    })
    .await;
    assert_eq!(defaults.1, ConfigSource::DynamicDefaultBroker);
    let err = admin
        .incremental_alter_broker_configs(
            Some(brokers[0]),
            &[ConfigOp::Set(leader_rate.into(), "fast".into())],
        )
        .await
        .expect_err("not a number");
    // Kafka's controller answers a badly typed dynamic broker config with INVALID_REQUEST.
    assert!(err.is(ResponseError::InvalidRequest), "{err}");

    // 4. A throttled move stays in progress, shows in ListPartitionReassignments with its
    //    adding and removing replicas, and can be cancelled back to the old replicas.
    let producer = client.producer(ProducerConfig::default());
    let mut deliveries = Vec::new();
    for i in 0..40u32 {
        let value: Vec<u8> = (0..100_000u32)
            .map(|j| (j.wrapping_mul(2_654_435_761) ^ i) as u8)
            .collect();
        let record = ProducerRecord {
            topic: name.clone(),
            partition: 0,
            key: None,
            value: Some(Bytes::from(value)),
            headers: vec![],
            timestamp: -1,
        };
        deliveries.push(producer.send(record).await.expect("send"));
    }
    for d in deliveries {
        d.await.expect("delivered");
    }
    producer.close().await;
    for b in &brokers {
        admin
            .incremental_alter_broker_configs(
                Some(*b),
                &[
                    ConfigOp::Set(leader_rate.into(), "1".into()),
                    ConfigOp::Set(follower_rate.into(), "1".into()),
                ],
            )
            .await
            .expect("throttle");
    }
    let throttled_leaders = initial
        .iter()
        .map(|b| format!("0:{b}"))
        .collect::<Vec<_>>()
        .join(",");
    admin
        .incremental_alter_topic_configs(
            &name,
            &[
                ConfigOp::Set(
                    "leader.replication.throttled.replicas".into(),
                    throttled_leaders,
                ),
                ConfigOp::Set(
                    "follower.replication.throttled.replicas".into(),
                    format!("0:{spare}"),
                ),
            ],
        )
        .await
        .expect("topic throttles");
    let target = vec![spare, initial[1]];
    let outcomes = admin
        .alter_partition_reassignments(&[(tp(0), Some(target.clone()))])
        .await
        .expect("answered");
    assert!(outcomes[&tp(0)].is_ok(), "{outcomes:?}");
    let ongoing = admin
        .list_partition_reassignments(Some(&[tp(0)]))
        .await
        .expect("list");
    assert_eq!(ongoing.len(), 1, "{ongoing:?}");
    assert_eq!(ongoing[0].adding, [spare]);
    assert_eq!(ongoing[0].removing, [initial[0]]);
    let all = admin
        .list_partition_reassignments(None)
        .await
        .expect("list");
    assert!(
        all.iter().any(|r| r.topic == name && r.partition == 0),
        "{all:?}"
    );
    // The controller lists the reassignment at once; the broker answering Metadata may apply
    // it a moment later. The throttle keeps the new replica out of the ISR meanwhile.
    wait_for(
        "the moving partition's new replica out of the ISR",
        Duration::from_secs(15),
        || async {
            let urp = admin.under_replicated_partitions().await.expect("urp");
            urp.iter()
                .any(|u| u.topic == name && u.partition == 0)
                .then_some(())
        },
    )
    .await;
    let outcomes = admin
        .alter_partition_reassignments(&[(tp(0), None)])
        .await
        .expect("cancel");
    assert!(outcomes[&tp(0)].is_ok(), "{outcomes:?}");
    // Cancelling reverts to the old replica set (Kafka may keep the reassignment's order).
    let mut initial_set = initial.clone();
    initial_set.sort_unstable();
    wait_for("the cancel to finish", Duration::from_secs(30), || async {
        let ongoing = admin
            .list_partition_reassignments(Some(&[tp(0)]))
            .await
            .ok()?;
        let (_, mut replicas, _) = replicas_of(&client, &name, 0).await;
        replicas.sort_unstable();
        (ongoing.is_empty() && replicas == initial_set).then_some(())
    })
    .await;

    // 5. Without the throttles the same move completes: nothing listed, replicas equal the
    //    target, and it leaves the under-replicated view.
    for b in &brokers {
        admin
            .incremental_alter_broker_configs(
                Some(*b),
                &[
                    ConfigOp::Delete(leader_rate.into()),
                    ConfigOp::Delete(follower_rate.into()),
                ],
            )
            .await
            .expect("unthrottle");
    }
    admin
        .incremental_alter_broker_configs(None, &[ConfigOp::Delete(follower_rate.into())])
        .await
        .expect("default unthrottle");
    admin
        .incremental_alter_topic_configs(
            &name,
            &[
                ConfigOp::Delete("leader.replication.throttled.replicas".into()),
                ConfigOp::Delete("follower.replication.throttled.replicas".into()),
            ],
        )
        .await
        .expect("topic unthrottle");
    let outcomes = admin
        .alter_partition_reassignments(&[(tp(0), Some(target.clone()))])
        .await
        .expect("answered");
    assert!(outcomes[&tp(0)].is_ok(), "{outcomes:?}");
    wait_for("the move to finish", Duration::from_secs(60), || async {
        let ongoing = admin
            .list_partition_reassignments(Some(&[tp(0)]))
            .await
            .ok()?;
        let (_, replicas, isr) = replicas_of(&client, &name, 0).await;
        (ongoing.is_empty() && replicas == target && isr.len() == 2).then_some(())
    })
    .await;
    let entries = admin
        .describe_broker_configs(brokers[0])
        .await
        .expect("configs");
    assert_ne!(
        value(&entries, leader_rate).map(|(_, s)| s),
        Some(ConfigSource::DynamicBroker),
        "the per-broker throttle was removed"
    );

    // 6. Preferred election: afterwards the first replica leads; asking again is
    //    ELECTION_NOT_NEEDED; an unknown partition is UNKNOWN_TOPIC_OR_PARTITION.
    let outcomes = admin
        .elect_leaders(ElectionType::Preferred, Some(&[tp(0), tp(1)]))
        .await
        .expect("elect");
    for p in [tp(0), tp(1)] {
        let r = &outcomes[&p];
        assert!(r.is_ok() || election_not_needed(r), "{p:?}: {r:?}");
    }
    let (leader, replicas, _) = replicas_of(&client, &name, 0).await;
    assert_eq!(leader, replicas[0], "preferred replica leads");
    let again = admin
        .elect_leaders(ElectionType::Preferred, Some(&[tp(0)]))
        .await
        .expect("elect");
    assert!(election_not_needed(&again[&tp(0)]), "{again:?}");
    let unclean = admin
        .elect_leaders(ElectionType::Unclean, Some(&[tp(1)]))
        .await
        .expect("elect");
    assert!(
        election_not_needed(&unclean[&tp(1)]),
        "a partition with a leader needs no unclean election: {unclean:?}"
    );
    let missing = (format!("{name}-missing"), 0);
    let outcomes = admin
        .elect_leaders(
            ElectionType::Preferred,
            Some(std::slice::from_ref(&missing)),
        )
        .await
        .expect("elect");
    assert_eq!(
        code(&outcomes[&missing]),
        Some(ResponseError::UnknownTopicOrPartition.code()),
        "{outcomes:?}"
    );

    admin.delete_topic(&name).await.expect("delete");
}
