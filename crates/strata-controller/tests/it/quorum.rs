//! Quorums of real `Quorum`s on loopback: each node gets a tiny TCP server that does what the
//! broker does with Raft frames (strip the request header, call `handle_rpc`, answer with the
//! correlation id and the returned body). Every wait has a deadline.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::RwLock;
use strata_controller::{
    ControllerError, Endpoint, MetadataImage, NewTopic, Quorum, QuorumConfig, RegisterBroker,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

type Slot = Arc<RwLock<Option<Quorum>>>;

/// The broker's part: serve Raft frames of one node.
async fn serve(listener: TcpListener, slot: Slot) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(serve_conn(stream, slot.clone()));
    }
}

async fn serve_conn(mut stream: TcpStream, slot: Slot) -> std::io::Result<()> {
    loop {
        let len = stream.read_i32().await? as usize;
        let mut frame = vec![0u8; len];
        stream.read_exact(&mut frame).await?;
        let api_key = i16::from_be_bytes([frame[0], frame[1]]);
        assert_eq!(api_key, strata_controller::RAFT_API_KEY);
        let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let client_len = i16::from_be_bytes([frame[8], frame[9]]);
        let body_at = 10 + client_len.max(0) as usize;
        let Some(quorum) = slot.read().clone() else {
            return Ok(());
        };
        let reply = quorum
            .handle_rpc(Bytes::copy_from_slice(&frame[body_at..]))
            .await;
        let mut out = Vec::with_capacity(8 + reply.len());
        out.extend_from_slice(&((4 + reply.len()) as i32).to_be_bytes());
        out.extend_from_slice(&correlation.to_be_bytes());
        out.extend_from_slice(&reply);
        stream.write_all(&out).await?;
    }
}

struct TestNode {
    id: i32,
    port: u16,
    slot: Slot,
    dir: PathBuf,
}

impl TestNode {
    fn q(&self) -> Quorum {
        self.slot.read().clone().expect("node is running")
    }
}

struct Cluster {
    _root: tempfile::TempDir,
    nodes: Vec<TestNode>,
    voters: BTreeMap<i32, String>,
}

fn config(id: i32, voters: &BTreeMap<i32, String>, dir: PathBuf) -> QuorumConfig {
    QuorumConfig {
        node_id: id,
        cluster_id: Some("strata-test-cluster-01".into()),
        voters: voters.clone(),
        log_dir: dir,
        election_timeout_ms: 400,
        fetch_timeout_ms: 1000,
        request_timeout_ms: 400,
        broker_session_timeout_ms: 1500,
        unclean_leader_election: false,
        inter_broker_listener: "INTERNAL".into(),
        auto_leader_rebalance: false,
        leader_imbalance_check_interval_ms: 300_000,
        dialer: Default::default(),
    }
}

impl Cluster {
    /// Nodes `ids`, of which `voter_ids` are voters; all started.
    async fn start(ids: &[i32], voter_ids: &[i32]) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        let mut voters = BTreeMap::new();
        for &id in ids {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let slot: Slot = Arc::default();
            tokio::spawn(serve(listener, slot.clone()));
            if voter_ids.contains(&id) {
                voters.insert(id, format!("127.0.0.1:{port}"));
            }
            nodes.push(TestNode {
                id,
                port,
                slot,
                dir: root.path().join(format!("node-{id}")),
            });
        }
        let cluster = Cluster {
            _root: root,
            nodes,
            voters,
        };
        let starts = cluster.nodes.iter().map(|n| cluster.start_node(n.id));
        futures::future::join_all(starts).await;
        cluster
    }

    async fn start_node(&self, id: i32) {
        let n = self.node(id);
        let q = Quorum::start(config(id, &self.voters, n.dir.clone()))
            .await
            .expect("start");
        *n.slot.write() = Some(q);
    }

    async fn stop_node(&self, id: i32) {
        let q = self.node(id).slot.write().take().expect("running");
        q.shutdown().await;
    }

    fn node(&self, id: i32) -> &TestNode {
        self.nodes.iter().find(|n| n.id == id).expect("node")
    }

    fn running(&self) -> Vec<Quorum> {
        self.nodes
            .iter()
            .filter_map(|n| n.slot.read().clone())
            .collect()
    }

    async fn leader(&self, deadline: Duration) -> Quorum {
        let running = self.running();
        wait_for(deadline, "a leader", || {
            let running = running.clone();
            async move { running.into_iter().find(|q| q.is_active()) }
        })
        .await
    }
}

async fn wait_for<T, F, Fut>(deadline: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Retries a controller operation on whichever node leads until it is not a leadership error.
async fn on_leader<T, F, Fut>(cluster: &Cluster, mut op: F) -> Result<T, ControllerError>
where
    F: FnMut(Quorum) -> Fut,
    Fut: Future<Output = Result<T, ControllerError>>,
{
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let leader = cluster.leader(Duration::from_secs(20)).await;
        match op(leader).await {
            Err(ControllerError::NotController { .. } | ControllerError::Timeout(_))
                if Instant::now() < end =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

fn registration(id: i32, port: u16) -> RegisterBroker {
    RegisterBroker {
        broker_id: id,
        incarnation_id: Uuid::new_v4(),
        rack: None,
        endpoints: vec![Endpoint {
            name: "INTERNAL".into(),
            host: "127.0.0.1".into(),
            port,
            security_protocol: "PLAINTEXT".into(),
        }],
    }
}

fn topic(name: &str, partitions: i32, rf: i16) -> NewTopic {
    NewTopic {
        name: name.into(),
        num_partitions: partitions,
        replication_factor: rf,
        assignments: BTreeMap::new(),
        configs: BTreeMap::new(),
    }
}

fn assigned(name: &str, replicas: Vec<i32>, configs: &[(&str, &str)]) -> NewTopic {
    NewTopic {
        name: name.into(),
        num_partitions: -1,
        replication_factor: -1,
        assignments: [(0, replicas)].into(),
        configs: configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

async fn wait_image(
    q: &Quorum,
    what: &str,
    pred: impl Fn(&MetadataImage) -> bool,
) -> Arc<MetadataImage> {
    let mut rx = q.image();
    let image = tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|i| pred(i)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("image channel")
        .clone();
    image
}

/// Registers and unfences brokers on a single-voter quorum; returns their epochs.
async fn live_brokers(q: &Quorum, ids: &[i32]) -> BTreeMap<i32, i64> {
    let mut epochs = BTreeMap::new();
    for &id in ids {
        let epoch = q.register_broker(registration(id, 1)).await.unwrap();
        let reply = q
            .heartbeat(id, epoch, u64::MAX / 2, false, false)
            .await
            .unwrap();
        assert!(!reply.is_fenced && reply.is_caught_up);
        epochs.insert(id, epoch);
    }
    epochs
}

fn code(e: ControllerError) -> i16 {
    match e {
        ControllerError::Kafka { code, .. } => code,
        other => panic!("expected a Kafka error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_voter_becomes_leader_at_once_and_restarts() {
    let cluster = Cluster::start(&[1], &[1]).await;
    let q = cluster.node(1).q();
    assert!(q.is_active(), "a single voter leads when start returns");
    assert_eq!(q.cluster_id(), "strata-test-cluster-01");
    live_brokers(&q, &[1]).await;
    let (results, offset) = q
        .create_topics(vec![topic("t", 3, 1)], false)
        .await
        .unwrap();
    assert!(results[0].is_ok());
    assert!(q.wait_applied(offset, Duration::from_secs(5)).await);
    let d = q.describe();
    assert_eq!(d.leader_id, 1);
    assert!(d.high_watermark > offset as i64);

    cluster.stop_node(1).await;
    cluster.start_node(1).await;
    let q = cluster.node(1).q();
    assert!(
        q.is_active(),
        "a single voter leads again when start returns"
    );
    let image = wait_image(&q, "topic after restart", |i| i.topics.contains_key("t")).await;
    assert_eq!(image.topics["t"].partitions.len(), 3);

    // A different node id on the same directory is refused.
    cluster.stop_node(1).await;
    let mut wrong = config(2, &cluster.voters, cluster.node(1).dir.clone());
    wrong.voters = [(2, "127.0.0.1:1".to_string())].into();
    let err = Quorum::start(wrong).await.err().expect("refused");
    assert!(err.to_string().contains("node.id"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_voters_replicate_and_fail_over() {
    let cluster = Cluster::start(&[1, 2, 3], &[1, 2, 3]).await;
    let leader = cluster.leader(Duration::from_secs(20)).await;
    for id in [1, 2, 3] {
        let epoch = on_leader(&cluster, |q| async move {
            q.register_broker(registration(id, 1)).await
        })
        .await
        .unwrap();
        on_leader(&cluster, |q| async move {
            q.heartbeat(id, epoch, u64::MAX / 2, false, false).await
        })
        .await
        .unwrap();
    }
    let (results, _) = on_leader(&cluster, |q| async move {
        q.create_topics(vec![topic("first", 6, 3)], false).await
    })
    .await
    .unwrap();
    let created = results[0].clone().unwrap();
    assert!(created
        .partitions
        .values()
        .all(|p| p.replicas.len() == 3 && p.isr.len() == 3));
    for q in cluster.running() {
        wait_image(&q, "topic everywhere", |i| i.topics.contains_key("first")).await;
    }
    let d = leader.describe();
    assert_eq!(d.voters.len(), 3);
    assert!(d.voters.iter().all(|v| v.log_end_offset > 0), "{d:?}");

    // Kill the leader: another voter takes over and topic creation resumes.
    let old = leader.describe().leader_id;
    cluster.stop_node(old).await;
    let new_leader = cluster.leader(Duration::from_secs(10)).await;
    assert_ne!(new_leader.describe().leader_id, old);
    let (results, _) = on_leader(&cluster, |q| async move {
        q.create_topics(vec![topic("second", 1, 1)], false).await
    })
    .await
    .unwrap();
    assert!(results[0].is_ok());
    for q in cluster.running() {
        wait_image(&q, "second topic", |i| i.topics.contains_key("second")).await;
    }
    // A non-leader answers with the leader it knows.
    let follower = cluster
        .running()
        .into_iter()
        .find(|q| !q.is_active())
        .unwrap();
    match follower.create_topics(vec![topic("x", 1, 1)], false).await {
        Err(ControllerError::NotController { leader }) => {
            assert_eq!(leader, Some(new_leader.describe().leader_id))
        }
        other => panic!("expected NotController, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wiped_voter_rejoins_without_a_second_quorum() {
    init_logs();
    let cluster = Cluster::start(&[1, 2, 3], &[1, 2, 3]).await;
    cluster.leader(Duration::from_secs(20)).await;
    let epoch = on_leader(&cluster, |q| async move {
        q.register_broker(registration(1, 1)).await
    })
    .await
    .unwrap();
    on_leader(&cluster, |q| async move {
        q.heartbeat(1, epoch, u64::MAX / 2, false, false).await
    })
    .await
    .unwrap();
    let (results, offset) = on_leader(&cluster, |q| async move {
        q.create_topics(vec![topic("before", 1, 1)], false).await
    })
    .await
    .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    // Voter 1 (the lowest id, the one that bootstraps a new quorum) loses its volume.
    cluster.stop_node(1).await;
    std::fs::remove_dir_all(&cluster.node(1).dir).unwrap();
    cluster.start_node(1).await;
    let q1 = cluster.node(1).q();
    wait_image(&q1, "the wiped voter catches up", |i| {
        i.topics.contains_key("before")
    })
    .await;
    assert!(q1.wait_applied(offset, Duration::from_secs(5)).await);
    // One quorum: everybody agrees on the leader, and new writes reach the wiped voter.
    let (results, _) = on_leader(&cluster, |q| async move {
        q.create_topics(vec![topic("after", 1, 1)], false).await
    })
    .await
    .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    wait_image(&q1, "new writes reach it", |i| {
        i.topics.contains_key("after")
    })
    .await;
    // A follower learns the leader from its next append or heartbeat: wait for agreement.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let leaders = loop {
        let leaders: Vec<i32> = cluster
            .running()
            .iter()
            .map(|q| q.describe().leader_id)
            .collect();
        if leaders.iter().all(|l| *l == leaders[0] && *l > 0) {
            break leaders;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no agreement on the leader: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // It is a voter again: with another voter down, 1 and the rest still form a quorum.
    let other = if leaders[0] == 2 { 3 } else { 2 };
    cluster.stop_node(other).await;
    let (results, _) = on_leader(&cluster, |q| async move {
        q.create_topics(vec![topic("with-1", 1, 1)], false).await
    })
    .await
    .unwrap();
    assert!(results[0].is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn observer_follows_after_registration() {
    init_logs();
    let cluster = Cluster::start(&[1, 4], &[1]).await;
    let leader = cluster.node(1).q();
    assert!(leader.is_active());
    let observer = cluster.node(4).q();
    assert!(!observer.is_active());
    let epoch = leader
        .register_broker(registration(4, cluster.node(4).port))
        .await
        .unwrap();
    leader
        .heartbeat(4, epoch, u64::MAX / 2, false, false)
        .await
        .unwrap();
    let (results, _) = leader
        .create_topics(vec![topic("seen", 1, 1)], false)
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    wait_image(&observer, "the observer's image", |i| {
        i.brokers.contains_key(&4) && i.topics.contains_key("seen")
    })
    .await;
    let d = leader.describe();
    assert_eq!(
        d.observers.iter().map(|o| o.replica_id).collect::<Vec<_>>(),
        vec![4]
    );
    assert_eq!(observer.leader(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missed_heartbeats_fence_and_move_leadership() {
    let cluster = Cluster::start(&[9], &[9]).await;
    let q = cluster.node(9).q();
    let epochs = live_brokers(&q, &[1, 2, 3]).await;
    let (results, _) = q
        .create_topics(
            vec![
                assigned("clean", vec![1, 2], &[]),
                assigned(
                    "unclean",
                    vec![1, 2],
                    &[("unclean.leader.election.enable", "true")],
                ),
                assigned("moves", vec![1, 3], &[]),
            ],
            false,
        )
        .await
        .unwrap();
    // The ISRs of "clean" and "unclean" shrink to the leader alone.
    for r in &results[..2] {
        let t = r.clone().unwrap();
        let p = &t.partitions[&0];
        let shrunk = q
            .alter_partition(
                1,
                epochs[&1],
                t.id,
                0,
                p.leader_epoch,
                p.partition_epoch,
                vec![1],
            )
            .await
            .unwrap();
        assert_eq!(shrunk.isr, vec![1]);
        assert_eq!(shrunk.partition_epoch, p.partition_epoch + 1);
    }
    // Brokers 2 and 3 keep heartbeating, broker 1 goes silent.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for id in [2, 3] {
            q.heartbeat(id, epochs[&id], u64::MAX / 2, false, false)
                .await
                .unwrap();
        }
        if q.image().borrow().brokers[&1].fenced {
            break;
        }
        assert!(Instant::now() < deadline, "broker 1 was never fenced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let image = q.image().borrow().clone();
    let clean = image.partition("clean", 0).unwrap();
    assert_eq!(
        (clean.leader, clean.isr.clone()),
        (-1, vec![1]),
        "offline, ISR never empty"
    );
    let unclean = image.partition("unclean", 0).unwrap();
    assert_eq!((unclean.leader, unclean.isr.clone()), (2, vec![2]));
    let moved = image.partition("moves", 0).unwrap();
    assert_eq!((moved.leader, moved.isr.clone()), (3, vec![3]));
    assert_eq!(moved.leader_epoch, 1);
    assert_eq!(q.unclean_elections(), 1);
    assert!(!image.brokers[&2].fenced && !image.brokers[&3].fenced);

    // Broker 1 comes back: the offline partition gets it as leader again.
    let reply = q
        .heartbeat(1, epochs[&1], u64::MAX / 2, false, false)
        .await
        .unwrap();
    assert!(!reply.is_fenced);
    let clean = q.image().borrow().partition("clean", 0).unwrap().clone();
    assert_eq!(clean.leader, 1);

    // Controlled shutdown of broker 3 moves its leadership to 1 (back in the ISR of "moves"
    // only through AlterPartition, so here 3 has no alternative and keeps leading).
    let reply = q
        .heartbeat(3, epochs[&3], u64::MAX / 2, false, true)
        .await
        .unwrap();
    assert!(reply.should_shut_down);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alter_partition_checks_like_kafka() {
    let cluster = Cluster::start(&[9], &[9]).await;
    let q = cluster.node(9).q();
    let epochs = live_brokers(&q, &[1, 2, 3]).await;
    let (results, _) = q
        .create_topics(vec![assigned("t", vec![1, 2, 3], &[])], false)
        .await
        .unwrap();
    let t = results[0].clone().unwrap();
    let p = t.partitions[&0].clone();
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]));
    let alter = |broker: i32, epoch: i64, id: Uuid, part: i32, le: i32, pe: i32, isr: Vec<i32>| {
        let q = q.clone();
        async move {
            q.alter_partition(broker, epoch, id, part, le, pe, isr)
                .await
        }
    };
    let (le, pe) = (p.leader_epoch, p.partition_epoch);
    assert_eq!(
        code(
            alter(1, epochs[&1] + 100, t.id, 0, le, pe, vec![1])
                .await
                .unwrap_err()
        ),
        77
    );
    assert_eq!(
        code(
            alter(1, epochs[&1], Uuid::new_v4(), 0, le, pe, vec![1])
                .await
                .unwrap_err()
        ),
        100
    );
    assert_eq!(
        code(
            alter(1, epochs[&1], t.id, 5, le, pe, vec![1])
                .await
                .unwrap_err()
        ),
        3
    );
    assert_eq!(
        code(
            alter(2, epochs[&2], t.id, 0, le, pe, vec![2])
                .await
                .unwrap_err()
        ),
        6
    );
    assert_eq!(
        code(
            alter(1, epochs[&1], t.id, 0, le + 1, pe, vec![1])
                .await
                .unwrap_err()
        ),
        74
    );
    assert_eq!(
        code(
            alter(1, epochs[&1], t.id, 0, le, pe + 1, vec![1])
                .await
                .unwrap_err()
        ),
        95
    );
    assert_eq!(
        code(
            alter(1, epochs[&1], t.id, 0, le, pe, vec![2, 3])
                .await
                .unwrap_err()
        ),
        42
    );
    assert_eq!(
        code(
            alter(1, epochs[&1], t.id, 0, le, pe, vec![1, 7])
                .await
                .unwrap_err()
        ),
        42
    );
    // Unchanged ISR: the current state.
    assert_eq!(
        alter(1, epochs[&1], t.id, 0, le, pe, vec![1, 2, 3])
            .await
            .unwrap(),
        p
    );
    let shrunk = alter(1, epochs[&1], t.id, 0, le, pe, vec![1, 2])
        .await
        .unwrap();
    assert_eq!(
        (
            shrunk.isr.clone(),
            shrunk.partition_epoch,
            shrunk.leader_epoch
        ),
        (vec![1, 2], pe + 1, le)
    );
    // A fenced broker cannot join the ISR.
    q.heartbeat(3, epochs[&3], u64::MAX / 2, true, false)
        .await
        .unwrap();
    let e = alter(1, epochs[&1], t.id, 0, le, pe + 1, vec![1, 2, 3])
        .await
        .unwrap_err();
    assert_eq!(code(e), 107);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn topics_producer_ids_and_errors() {
    let cluster = Cluster::start(&[9], &[9]).await;
    let q = cluster.node(9).q();
    let epochs = live_brokers(&q, &[1, 2]).await;
    let mut starts = std::collections::BTreeSet::new();
    for _ in 0..5 {
        for id in [1, 2] {
            let (start, len) = q.allocate_producer_ids(id, epochs[&id]).await.unwrap();
            assert_eq!(len as i64, strata_controller::PRODUCER_ID_BLOCK_SIZE);
            assert!(starts.insert(start), "block {start} handed out twice");
        }
    }
    assert_eq!(
        code(
            q.allocate_producer_ids(1, epochs[&1] + 1)
                .await
                .unwrap_err()
        ),
        77
    );

    let (results, offset) = q.create_topics(vec![topic("v", 2, 2)], true).await.unwrap();
    assert_eq!(results[0].as_ref().unwrap().partitions.len(), 2);
    assert!(
        !q.image().borrow().topics.contains_key("v"),
        "validate_only writes nothing"
    );
    assert_eq!(offset, q.image().borrow().offset);
    let (results, _) = q
        .create_topics(
            vec![
                topic("big", 1, 3),
                topic("zero", 0, 1),
                topic("ok", 4, 2),
                topic("ok", 1, 1),
            ],
            false,
        )
        .await
        .unwrap();
    let err = results[0].clone().unwrap_err();
    assert_eq!(
        err,
        (
            38,
            "Replication factor: 3 larger than available brokers: 2.".to_string()
        )
    );
    assert_eq!(results[1].clone().unwrap_err().0, 37);
    assert!(results[2].is_ok());
    assert_eq!(results[3].clone().unwrap_err().0, 36);
    let bad = NewTopic {
        assignments: [(0, vec![1, 1])].into(),
        ..topic("dup", -1, -1)
    };
    let gap = NewTopic {
        assignments: [(0, vec![1]), (2, vec![2])].into(),
        ..topic("gap", -1, -1)
    };
    let unknown = NewTopic {
        assignments: [(0, vec![5])].into(),
        ..topic("unknown", -1, -1)
    };
    let (results, _) = q
        .create_topics(vec![bad, gap, unknown], false)
        .await
        .unwrap();
    assert!(
        results.iter().all(|r| r.as_ref().unwrap_err().0 == 39),
        "{results:?}"
    );

    assert_eq!(
        code(
            q.create_partitions("ok".into(), 2, None, false)
                .await
                .unwrap_err()
        ),
        37
    );
    q.create_partitions("ok".into(), 6, None, false)
        .await
        .unwrap();
    assert_eq!(q.image().borrow().topics["ok"].partitions.len(), 6);
    let (deleted, _) = q
        .delete_topics(vec!["ok".into(), "nope".into()])
        .await
        .unwrap();
    assert!(deleted[0].is_ok());
    assert_eq!(deleted[1].clone().unwrap_err().0, 3);
    assert!(!q.image().borrow().topics.contains_key("ok"));
    q.set_cluster_configs([("log.retention.ms".to_string(), "1000".to_string())].into())
        .await
        .unwrap();
    assert_eq!(
        q.image().borrow().cluster_configs["log.retention.ms"],
        "1000"
    );

    // A producer reset with the configs in one entry: every partition gets a reset epoch
    // and producer ids restart at the floor.
    q.create_topics(vec![topic("reset", 2, 1)], false)
        .await
        .unwrap();
    let before = q.image().borrow().topics["reset"].partitions[&0].leader_epoch;
    let floor = 1_000_000_000;
    q.set_cluster_configs_resetting_producers(BTreeMap::new(), Some(floor))
        .await
        .unwrap();
    {
        let image = q.image().borrow().clone();
        assert!(image.cluster_configs.is_empty());
        assert_eq!(image.producer_id_floor, floor);
        for p in image.topics["reset"].partitions.values() {
            assert_eq!(p.leader_epoch, before + 1);
            assert_eq!(p.producer_reset_epoch, Some(before + 1));
        }
    }
    let (start, _) = q.allocate_producer_ids(1, epochs[&1]).await.unwrap();
    assert_eq!(start, floor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_released_for_shutdown_is_fenced_and_re_registers_at_once() {
    let cluster = Cluster::start(&[1], &[1]).await;
    let q = cluster.node(1).q();
    let epochs = live_brokers(&q, &[1, 2]).await;
    let reply = q
        .heartbeat(2, epochs[&2], u64::MAX / 2, false, true)
        .await
        .unwrap();
    assert!(reply.should_shut_down, "nothing to move: released");
    // (Broker 1 sends no heartbeats here, so its own 1.5 s session may run out meanwhile on a
    // loaded machine: only broker 2 is looked at.)
    wait_image(&q, "broker 2 fenced once released", |i| {
        i.brokers.get(&2).is_some_and(|b| b.fenced)
    })
    .await;
    // Its next incarnation starts within the old session: accepted, not a duplicate.
    let epoch = q.register_broker(registration(2, 1)).await.unwrap();
    assert!(epoch > epochs[&2]);
}

/// The segment files of a node's metadata log, in offset order.
fn metadata_segments(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir.join("__cluster_metadata-0"))
        .expect("metadata log directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_torn_metadata_log_tail_is_truncated_on_start() {
    let cluster = Cluster::start(&[1], &[1]).await;
    let q = cluster.node(1).q();
    live_brokers(&q, &[1]).await;
    let (results, _) = q
        .create_topics(vec![topic("kept", 2, 1)], false)
        .await
        .unwrap();
    assert!(results[0].is_ok());
    cluster.stop_node(1).await;

    // A crash in the middle of a write: the start of a record batch (base offset, a length far
    // beyond what follows, part of the header) and nothing more.
    let segments = metadata_segments(&cluster.node(1).dir);
    let last = segments.last().expect("a segment");
    let intact = std::fs::metadata(last).unwrap().len();
    let mut torn = Vec::new();
    torn.extend_from_slice(&1_000_000i64.to_be_bytes());
    torn.extend_from_slice(&4096i32.to_be_bytes());
    torn.extend_from_slice(&[0, 0, 0, 1, 2, 0x5a, 0x5a]);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(last).unwrap();
        f.write_all(&torn).unwrap();
        f.sync_all().unwrap();
    }

    cluster.start_node(1).await;
    let q = cluster.node(1).q();
    assert!(q.is_active(), "the node leads again after the truncation");
    assert_eq!(
        std::fs::metadata(last).unwrap().len(),
        intact,
        "the torn tail is cut off"
    );
    let image = wait_image(&q, "the topic written before the crash", |i| {
        i.topics.contains_key("kept")
    })
    .await;
    assert_eq!(image.topics["kept"].partitions.len(), 2);
    // The log goes on where the intact entries end.
    let (results, offset) = q
        .create_topics(vec![topic("after", 1, 1)], false)
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    assert!(q.wait_applied(offset, Duration::from_secs(5)).await);
    cluster.stop_node(1).await;
    cluster.start_node(1).await;
    let q = cluster.node(1).q();
    wait_image(&q, "both topics after another restart", |i| {
        i.topics.contains_key("kept") && i.topics.contains_key("after")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreadable_snapshot_stops_start_up_naming_the_file() {
    let cluster = Cluster::start(&[1], &[1]).await;
    live_brokers(&cluster.node(1).q(), &[1]).await;
    cluster.stop_node(1).await;
    let snapshot = cluster
        .node(1)
        .dir
        .join("__cluster_metadata-0")
        .join("snapshot.json");
    std::fs::write(&snapshot, b"{\"meta\": {\"last_log_id\": nul").unwrap();
    let err = Quorum::start(config(1, &cluster.voters, cluster.node(1).dir.clone()))
        .await
        .err()
        .expect("start-up refused");
    let message = err.to_string();
    assert!(
        message.contains(&snapshot.display().to_string())
            && message.contains("unreadable snapshot"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_observer_considers_the_leader_lost_after_the_fetch_timeout() {
    let cluster = Cluster::start(&[1, 4], &[1]).await;
    let leader = cluster.node(1).q();
    let epoch = leader
        .register_broker(registration(4, cluster.node(4).port))
        .await
        .unwrap();
    leader
        .heartbeat(4, epoch, u64::MAX / 2, false, false)
        .await
        .unwrap();
    let observer = cluster.node(4).q();
    wait_for(
        Duration::from_secs(20),
        "the observer following node 1",
        || {
            let observer = observer.clone();
            async move { (observer.leader() == Some(1)).then_some(()) }
        },
    )
    .await;
    // The leader stops; nothing reaches the observer any more. Raft alone would keep naming
    // node 1 forever; past controller.quorum.fetch.timeout.ms (1 s here) it is lost.
    cluster.stop_node(1).await;
    wait_for(
        Duration::from_secs(10),
        "the observer to consider the leader lost",
        || {
            let observer = observer.clone();
            async move { observer.leader().is_none().then_some(()) }
        },
    )
    .await;
    assert_eq!(observer.describe().leader_id, -1);
}

#[allow(dead_code)]
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
