//! Partition ownership in a cluster: a coordinator serves only the groups of the
//! `__consumer_offsets` partitions it loaded, answers NOT_COORDINATOR for the others and
//! COORDINATOR_LOAD_IN_PROGRESS (or what Kafka answers instead) while one is loading.

use futures::FutureExt;
use parking_lot::Mutex;

use super::*;
use crate::{LogPosition, OffsetsLog, OffsetsLogError, OffsetsRecord};

const NOT_COORDINATOR: i16 = 16;
const LOADING: i16 = 14;

#[test]
fn error_codes_are_kafkas() {
    assert_eq!(code(ResponseError::NotCoordinator), NOT_COORDINATOR);
    assert_eq!(code(ResponseError::CoordinatorLoadInProgress), LOADING);
}

/// A coordinator over the default 50 partitions that loaded only the partition of "g"; "other"
/// lives on another partition.
fn owning_only_g() -> (GroupCoordinator, Arc<InMemoryOffsetsLog>) {
    let log = Arc::new(InMemoryOffsetsLog::new());
    let c = GroupCoordinator::new(GroupConfig::default(), log.clone());
    assert_ne!(c.partition_for("g"), c.partition_for("other"));
    (c, log)
}

fn fetch_request(group: &str) -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(sb("t")))
            .with_partition_indexes(vec![0])]))
}

fn describe_request(groups: &[&str]) -> DescribeGroupsRequest {
    DescribeGroupsRequest::default().with_groups(groups.iter().map(|g| GroupId(sb(g))).collect())
}

fn delete_request(groups: &[&str]) -> DeleteGroupsRequest {
    DeleteGroupsRequest::default()
        .with_groups_names(groups.iter().map(|g| GroupId(sb(g))).collect())
}

fn leave_request(group: &str, member_id: &str) -> LeaveGroupRequest {
    LeaveGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_member_id(sb(member_id))
        .with_members(vec![MemberIdentity::default().with_member_id(sb(member_id))])
}

#[tokio::test(start_paused = true)]
async fn groups_of_unowned_partitions_answer_not_coordinator() {
    let (c, _log) = owning_only_g();
    let owned = c.partition_for("g");
    assert!(!c.is_loaded(owned));
    assert!(c.owned_partitions().is_empty());
    assert_eq!(
        heartbeat(&c, "g", 0, "m").await,
        NOT_COORDINATOR,
        "a new coordinator owns nothing"
    );

    c.load_partition(owned).expect("load");
    assert!(c.is_loaded(owned));
    assert_eq!(c.owned_partitions(), [owned]);
    let ids = stable_group(&c, "g").await;
    c.offset_commit(commit_request("g", 1, &ids[0], &[("t", 0, 5)]), 9)
        .await;

    // Membership APIs: the error of the response.
    let join = c.join_group(join_request("other", "", None), JOIN_V).await;
    assert_encodes(&join, JOIN_V);
    assert_eq!(join.error_code, NOT_COORDINATOR);
    assert_eq!(
        sync(&c, "other", 1, "m", &[]).await.error_code,
        NOT_COORDINATOR
    );
    assert_eq!(heartbeat(&c, "other", 1, "m").await, NOT_COORDINATOR);
    let leave = c.leave_group(leave_request("other", "m"), 5).await;
    assert_encodes(&leave, 5);
    assert_eq!(
        (leave.error_code, leave.members.len()),
        (NOT_COORDINATOR, 0)
    );
    let leave_v0 = c.leave_group(leave_request("other", "m"), 0).await;
    assert_eq!(leave_v0.error_code, NOT_COORDINATOR);

    // OffsetCommit: every partition.
    let commit = c
        .offset_commit(
            commit_request("other", -1, "", &[("t", 0, 1), ("t", 1, 2)]),
            9,
        )
        .await;
    assert_eq!(commit_errors(&commit), [NOT_COORDINATOR, NOT_COORDINATOR]);

    // OffsetFetch: top level from v2, per partition before, per group from v8.
    let v7 = c.offset_fetch(fetch_request("other"), 7).await;
    assert_encodes(&v7, 7);
    assert_eq!((v7.error_code, v7.topics.len()), (NOT_COORDINATOR, 0));
    let v1 = c.offset_fetch(fetch_request("other"), 1).await;
    assert_encodes(&v1, 1);
    let p = &v1.topics[0].partitions[0];
    assert_eq!((p.error_code, p.committed_offset), (NOT_COORDINATOR, -1));
    let v8 = c
        .offset_fetch(
            OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(sb("g")))
                    .with_topics(None),
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(sb("other")))
                    .with_topics(None),
            ]),
            8,
        )
        .await;
    assert_encodes(&v8, 8);
    let errors: Vec<i16> = v8.groups.iter().map(|g| g.error_code).collect();
    assert_eq!(errors, [0, NOT_COORDINATOR]);
    assert_eq!(v8.groups[0].topics[0].partitions[0].committed_offset, 5);

    // Admin APIs: per group; ListGroups lists what is owned.
    let described = c
        .describe_groups(describe_request(&["g", "other"]), 5)
        .await;
    assert_encodes(&described, 5);
    let errors: Vec<i16> = described.groups.iter().map(|g| g.error_code).collect();
    assert_eq!(errors, [0, NOT_COORDINATOR]);
    let deleted = c.delete_groups(delete_request(&["other", "g"]), 2).await;
    let errors: Vec<i16> = deleted.results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        errors,
        [NOT_COORDINATOR, code(ResponseError::NonEmptyGroup)]
    );
    let listed = c.list_groups(ListGroupsRequest::default(), 4).await;
    assert_eq!(listed.error_code, 0);
    let names: Vec<&str> = listed
        .groups
        .iter()
        .map(|g| g.group_id.0.as_str())
        .collect();
    assert_eq!(names, ["g"]);
    assert_eq!(c.group_state("other"), None);
}

#[tokio::test(start_paused = true)]
async fn load_partition_restores_committed_offsets_and_generation() {
    let (first, log) = setup();
    let ids = stable_group(&first, "g").await;
    first
        .offset_commit(
            commit_request("g", 1, &ids[0], &[("t", 0, 7), ("t", 1, 8)]),
            9,
        )
        .await;
    first
        .offset_commit(commit_request("other", -1, "", &[("x", 0, 3)]), 9)
        .await;
    first.shutdown();

    // The partition's new leader loads only the partition of "g".
    let c = GroupCoordinator::new(GroupConfig::default(), log.clone());
    c.load_partition(c.partition_for("g")).expect("load");
    assert_eq!(
        c.committed_offsets("g"),
        [
            ("t".to_string(), 0, 7, Some("meta".to_string())),
            ("t".to_string(), 1, 8, Some("meta".to_string())),
        ]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    assert_eq!(heartbeat(&c, "g", 1, &ids[2]).await, 0);
    assert_eq!(
        heartbeat(&c, "g", 0, &ids[2]).await,
        code(ResponseError::IllegalGeneration)
    );
    let described = c.describe_groups(describe_request(&["g"]), 5).await;
    assert_eq!(described.groups[0].members.len(), 3);
    assert_eq!(&described.groups[0].members[2].member_assignment[..], b"p2");

    // "other" was not loaded: not served, and nothing of it is in memory.
    assert!(c.committed_offsets("other").is_empty());
    assert_eq!(
        c.loaded_offsets(),
        [(
            "g".to_string(),
            vec![("t".to_string(), 0, 7), ("t".to_string(), 1, 8)]
        )]
    );
    let fetch = c.offset_fetch(fetch_request("other"), 7).await;
    assert_eq!(fetch.error_code, NOT_COORDINATOR);
    c.load_partition(c.partition_for("other")).expect("load");
    assert_eq!(
        fetch_v7(&c, "other", None).await,
        [("x".to_string(), 0, 3, 3)]
    );
    let served: Vec<String> = c.loaded_offsets().into_iter().map(|(g, _)| g).collect();
    assert_eq!(served, ["g", "other"]);
    // Loading a loaded partition again changes nothing.
    c.load_partition(c.partition_for("g")).expect("reload");
    assert_eq!(c.committed_offsets("g").len(), 2);
    assert_eq!(
        c.load_partition(50),
        Err(OffsetsLogError::PartitionUnavailable(50))
    );
}

#[tokio::test(start_paused = true)]
async fn unload_answers_waiting_joins_and_disowns_the_partition() {
    let (c, _log) = setup();
    let partition = c.partition_for("g");
    let ids = stable_group(&c, "g").await;
    c.offset_commit(commit_request("g", 1, &ids[0], &[("t", 0, 4)]), 9)
        .await;
    // A fourth member starts a rebalance and waits for the others to rejoin.
    let c2 = c.clone();
    let waiting = tokio::spawn(async move { join_new(&c2, "g", "d").await });
    settle().await;
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));

    c.unload_partition(partition);
    let response = waiting.await.expect("join task");
    assert_eq!(response.error_code, NOT_COORDINATOR);
    assert!(!c.is_loaded(partition));
    assert!(!c.owned_partitions().contains(&partition));
    assert_eq!(c.owned_partitions().len(), 49);
    assert_eq!(c.group_state("g"), None);
    assert!(c.committed_offsets("g").is_empty());
    assert_eq!(heartbeat(&c, "g", 1, &ids[0]).await, NOT_COORDINATOR);
    assert_eq!(rejoin(&c, "g", &ids[0]).await.error_code, NOT_COORDINATOR);
    // The unloaded group's timers do nothing once their deadlines pass.
    advance(Duration::from_millis(REBALANCE_MS as u64 + 1)).await;

    // Leading the partition again brings back what the log holds: the synced generation.
    c.load_partition(partition).expect("load");
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    assert_eq!(heartbeat(&c, "g", 1, &ids[0]).await, 0);
    assert_eq!(c.committed_offsets("g")[0].2, 4);
}

/// An offsets log that runs a probe when a partition is read: the coordinator is then loading it.
struct ProbedLog {
    log: InMemoryOffsetsLog,
    probe: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl OffsetsLog for ProbedLog {
    fn append(
        &self,
        partition: i32,
        records: Vec<OffsetsRecord>,
    ) -> Result<LogPosition, OffsetsLogError> {
        self.log.append(partition, records)
    }

    fn read_all(&self, partition: i32) -> Result<Vec<OffsetsRecord>, OffsetsLogError> {
        let probe = self.probe.lock().take();
        if let Some(probe) = probe {
            probe();
        }
        self.log.read_all(partition)
    }
}

fn probed_log() -> Arc<ProbedLog> {
    Arc::new(ProbedLog {
        log: InMemoryOffsetsLog::new(),
        probe: Mutex::new(None),
    })
}

/// Requests answered while the partition of "g" loads, in the order the probe made them.
#[derive(Debug, Default)]
struct DuringLoad {
    join: i16,
    sync: i16,
    heartbeat: i16,
    commit: Vec<i16>,
    fetch: i16,
    describe: i16,
    delete: i16,
    list: i16,
    listed: usize,
    loaded: bool,
}

fn probe_requests(c: &GroupCoordinator, member_id: &str) -> DuringLoad {
    // Each of these answers without waiting, so polling once is enough.
    let now = |f: futures::future::BoxFuture<'_, i16>| f.now_or_never().expect("answers at once");
    let member = member_id.to_owned();
    DuringLoad {
        join: now(async {
            c.join_group(join_request("g", "", None), JOIN_V)
                .await
                .error_code
        }
        .boxed()),
        sync: now(async { sync(c, "g", 1, &member, &[]).await.error_code }.boxed()),
        heartbeat: now(heartbeat(c, "g", 1, &member).boxed()),
        commit: c
            .offset_commit(commit_request("g", 1, &member, &[("t", 0, 9)]), 9)
            .now_or_never()
            .map(|r| commit_errors(&r))
            .expect("answers at once"),
        fetch: now(async { c.offset_fetch(fetch_request("g"), 7).await.error_code }.boxed()),
        describe: now(async {
            c.describe_groups(describe_request(&["g"]), 5).await.groups[0].error_code
        }
        .boxed()),
        delete: now(async {
            c.delete_groups(delete_request(&["g"]), 2).await.results[0].error_code
        }
        .boxed()),
        list: now(async {
            c.list_groups(ListGroupsRequest::default(), 4)
                .await
                .error_code
        }
        .boxed()),
        listed: c
            .list_groups(ListGroupsRequest::default(), 4)
            .now_or_never()
            .map_or(0, |r| r.groups.len()),
        loaded: c.is_loaded(c.partition_for("g")),
    }
}

#[tokio::test(start_paused = true)]
async fn requests_during_a_load_answer_load_in_progress() {
    let log = probed_log();
    let first = GroupCoordinator::new(GroupConfig::default(), log.clone());
    first.load().expect("load");
    let ids = stable_group(&first, "g").await;
    first
        .offset_commit(commit_request("other", -1, "", &[("x", 0, 1)]), 9)
        .await;
    first.shutdown();

    let c = GroupCoordinator::new(GroupConfig::default(), log.clone());
    c.load_partition(c.partition_for("other"))
        .expect("load other");
    let seen = Arc::new(Mutex::new(None));
    {
        let (c, seen, member) = (c.clone(), seen.clone(), ids[1].clone());
        *log.probe.lock() = Some(Box::new(move || {
            *seen.lock() = Some(probe_requests(&c, &member));
        }));
    }
    c.load_partition(c.partition_for("g")).expect("load g");
    let seen = seen.lock().take().expect("probe ran");
    assert_eq!(seen.join, LOADING);
    // Kafka: the rebalance state is lost, so the group starts over at JoinGroup...
    assert_eq!(seen.sync, code(ResponseError::RebalanceInProgress));
    // ...and heartbeats are answered blindly.
    assert_eq!(seen.heartbeat, 0);
    assert_eq!(seen.commit, [LOADING]);
    assert_eq!(seen.fetch, LOADING);
    assert_eq!(seen.describe, LOADING);
    assert_eq!(seen.delete, LOADING);
    // ListGroups lists what is loaded and says more is coming.
    assert_eq!((seen.list, seen.listed), (LOADING, 1));
    assert!(!seen.loaded);

    assert!(c.is_loaded(c.partition_for("g")));
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    assert_eq!(heartbeat(&c, "g", 1, &ids[1]).await, 0);
    let listed = c.list_groups(ListGroupsRequest::default(), 4).await;
    assert_eq!((listed.error_code, listed.groups.len()), (0, 2));
}

#[tokio::test(start_paused = true)]
async fn a_partition_unloaded_while_loading_stays_unowned() {
    let log = probed_log();
    let first = GroupCoordinator::new(GroupConfig::default(), log.clone());
    first.load().expect("load");
    first
        .offset_commit(commit_request("g", -1, "", &[("t", 0, 1)]), 9)
        .await;

    let c = GroupCoordinator::new(GroupConfig::default(), log.clone());
    let partition = c.partition_for("g");
    {
        let c = c.clone();
        *log.probe.lock() = Some(Box::new(move || c.unload_partition(partition)));
    }
    c.load_partition(partition).expect("load");
    assert!(!c.is_loaded(partition));
    assert!(c.committed_offsets("g").is_empty());
    assert_eq!(heartbeat(&c, "g", 0, "m").await, NOT_COORDINATOR);
}

#[tokio::test(start_paused = true)]
async fn a_partition_that_cannot_be_read_stays_unowned() {
    let (first, log) = setup();
    first
        .offset_commit(commit_request("g", -1, "", &[("t", 0, 1)]), 9)
        .await;
    let c = GroupCoordinator::new(GroupConfig::default(), log.clone());
    let partition = c.partition_for("g");
    log.fail_reads(Some(OffsetsLogError::NotLeader));
    assert_eq!(
        c.load_partition(partition),
        Err(OffsetsLogError::NotLeader(partition))
    );
    assert!(!c.is_loaded(partition));
    assert_eq!(
        c.offset_fetch(fetch_request("g"), 7).await.error_code,
        NOT_COORDINATOR
    );
    log.fail_reads(None);
    c.load_partition(partition).expect("load");
    assert_eq!(c.committed_offsets("g").len(), 1);
}
