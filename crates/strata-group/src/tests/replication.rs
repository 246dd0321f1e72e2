//! Writes complete when replicated: commits, assignments, static member replacements and
//! deletions are answered only once `wait_replicated` resolves, with Kafka's errors when it
//! fails, and a commit that was not replicated never becomes visible.

use super::*;
use crate::OffsetsLogError;

const NOT_COORDINATOR: i16 = 16;
const NOT_AVAILABLE: i16 = 15;

/// Two dynamic members joined (generation 1, not synced): their ids, leader first.
async fn joined_pair(c: &GroupCoordinator, group: &str) -> (String, String) {
    let (a, b) = tokio::join!(join_new(c, group, "a"), join_new(c, group, "b"));
    assert_eq!((a.error_code, b.error_code), (0, 0));
    assert_eq!(a.leader, a.member_id);
    (a.member_id.to_string(), b.member_id.to_string())
}

/// Follower, then leader sync at `generation`: their error codes, leader first. (A follower
/// that came after a failed store would find the next rebalance.)
async fn sync_pair(c: &GroupCoordinator, generation: i32, a: &str, b: &str) -> (i16, i16) {
    let assignments = [(a, "pa"), (b, "pb")];
    let (sb_, sa) = tokio::join!(
        sync(c, "g", generation, b, &[]),
        sync(c, "g", generation, a, &assignments)
    );
    (sa.error_code, sb_.error_code)
}

#[tokio::test(start_paused = true)]
async fn a_commit_is_answered_and_visible_only_once_replicated() {
    let (c, log) = setup();
    let ids = stable_group(&c, "g").await;
    let partition = c.partition_for("g");
    let before = log.len(partition);
    log.hold_replication(true);
    let commit = {
        let (c, member) = (c.clone(), ids[0].clone());
        tokio::spawn(async move {
            c.offset_commit(commit_request("g", 1, &member, &[("t", 0, 7)]), 9)
                .await
        })
    };
    settle().await;
    assert!(!commit.is_finished(), "answered before replication");
    assert_eq!(log.len(partition), before + 1, "appended at once");
    assert!(c.committed_offsets("g").is_empty());
    assert_eq!(
        fetch_v7(&c, "g", Some(&[("t", &[0])])).await,
        [("t".to_string(), 0, -1, -1)]
    );
    // The group is not locked while the commit waits.
    assert_eq!(heartbeat(&c, "g", 1, &ids[1]).await, 0);

    log.hold_replication(false);
    let response = commit.await.expect("commit task");
    assert_eq!(commit_errors(&response), [0]);
    assert_eq!(c.committed_offsets("g")[0].2, 7);
}

#[tokio::test(start_paused = true)]
async fn a_commit_that_is_not_replicated_fails_and_stays_invisible() {
    let (c, log) = setup();
    let ids = stable_group(&c, "g").await;
    let partition = c.partition_for("g");
    let commit = |offset: i64| {
        let (c, member) = (c.clone(), ids[0].clone());
        async move {
            let response = c
                .offset_commit(
                    commit_request("g", 1, &member, &[("t", 0, offset), ("u", 1, offset)]),
                    9,
                )
                .await;
            assert_encodes(&response, 9);
            commit_errors(&response)
        }
    };
    assert_eq!(commit(1).await, [0, 0]);

    // Kafka's mapping of a failed write, for commits.
    let cases: [(crate::FailureFn, i16); 4] = [
        (OffsetsLogError::NotEnoughReplicas, NOT_AVAILABLE),
        (OffsetsLogError::Timeout, NOT_AVAILABLE),
        (OffsetsLogError::PartitionUnavailable, NOT_AVAILABLE),
        (OffsetsLogError::NotLeader, NOT_COORDINATOR),
    ];
    for (failure, expected) in cases {
        log.fail_replication(Some(failure));
        let appended = log.len(partition);
        assert_eq!(
            commit(2).await,
            [expected, expected],
            "{:?}",
            failure(partition)
        );
        assert_eq!(
            log.len(partition),
            appended + 2,
            "the records are in the local log"
        );
        assert_eq!(
            c.committed_offsets("g")
                .iter()
                .map(|(_, _, offset, _)| *offset)
                .collect::<Vec<_>>(),
            [1, 1],
            "the failed commit is not visible"
        );
    }
    log.fail_replication(None);

    // A failed append: nothing in the log either.
    for (failure, expected) in [
        (
            OffsetsLogError::NotLeader as crate::FailureFn,
            NOT_COORDINATOR,
        ),
        (OffsetsLogError::NotEnoughReplicas, NOT_AVAILABLE),
    ] {
        log.fail_appends(Some(failure));
        let appended = log.len(partition);
        assert_eq!(commit(3).await, [expected, expected]);
        assert_eq!(log.len(partition), appended);
    }
    log.fail_appends(None);

    // Replication that fails after being held: decided when it resolves.
    log.hold_replication(true);
    let pending = tokio::spawn(commit(4));
    settle().await;
    log.fail_replication(Some(OffsetsLogError::NotEnoughReplicas));
    log.hold_replication(false);
    assert_eq!(
        pending.await.expect("commit task"),
        [NOT_AVAILABLE, NOT_AVAILABLE]
    );
    log.fail_replication(None);
    assert_eq!(commit(5).await, [0, 0]);
    assert_eq!(c.committed_offsets("g")[0].2, 5);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_commit_still_lands_once_replicated() {
    let (c, log) = setup();
    let ids = stable_group(&c, "g").await;
    log.hold_replication(true);
    let dropped = tokio::time::timeout(
        Duration::from_millis(10),
        c.offset_commit(commit_request("g", 1, &ids[0], &[("t", 0, 11)]), 9),
    )
    .await;
    assert!(dropped.is_err(), "the commit waited for replication");
    log.hold_replication(false);
    settle().await;
    assert_eq!(c.committed_offsets("g")[0].2, 11);
}

#[tokio::test(start_paused = true)]
async fn the_assignment_is_delivered_once_replicated() {
    let (c, log) = setup();
    let (a, b) = joined_pair(&c, "g").await;
    log.hold_replication(true);
    let syncs = {
        let (c, a, b) = (c.clone(), a.clone(), b.clone());
        tokio::spawn(async move { sync_pair(&c, 1, &a, &b).await })
    };
    settle().await;
    assert!(!syncs.is_finished());
    assert_eq!(c.group_state("g"), Some(GroupState::CompletingRebalance));
    assert_eq!(heartbeat(&c, "g", 1, &b).await, 0);
    log.hold_replication(false);
    assert_eq!(syncs.await.expect("sync task"), (0, 0));
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    assert_eq!(&sync(&c, "g", 1, &b, &[]).await.assignment[..], b"pb");
}

#[tokio::test(start_paused = true)]
async fn an_assignment_that_is_not_replicated_starts_a_new_rebalance() {
    let (c, log) = setup();
    let (a, b) = joined_pair(&c, "g").await;
    // Kafka's mapping for group metadata: as for commits, except a timeout.
    let cases: [(crate::FailureFn, i16); 3] = [
        (OffsetsLogError::NotEnoughReplicas, NOT_AVAILABLE),
        (
            OffsetsLogError::Timeout,
            code(ResponseError::RebalanceInProgress),
        ),
        (OffsetsLogError::NotLeader, NOT_COORDINATOR),
    ];
    for (generation, (failure, expected)) in (1..).zip(cases) {
        log.fail_replication(Some(failure));
        assert_eq!(
            sync_pair(&c, generation, &a, &b).await,
            (expected, expected)
        );
        assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
        let (ra, rb) = tokio::join!(rejoin(&c, "g", &a), rejoin(&c, "g", &b));
        assert_eq!((ra.error_code, rb.error_code), (0, 0));
        assert_eq!(ra.generation_id, generation + 1);
    }
    log.fail_replication(None);
    assert_eq!(sync_pair(&c, 4, &a, &b).await, (0, 0));
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
}

#[tokio::test(start_paused = true)]
async fn a_static_replacement_that_is_not_replicated_is_undone() {
    let (c, log) = setup();
    let static_join =
        |member_id: &str| c.join_group(join_request("s", member_id, Some("i-b")), JOIN_V);
    let (a, b) = tokio::join!(
        c.join_group(join_request("s", "", Some("i-a")), JOIN_V),
        static_join("")
    );
    let assignments = [(a.member_id.as_str(), "pa"), (b.member_id.as_str(), "pb")];
    let (sa, sb_) = tokio::join!(
        sync(&c, "s", 1, &a.member_id, &assignments),
        sync(&c, "s", 1, &b.member_id, &[])
    );
    assert_eq!((sa.error_code, sb_.error_code), (0, 0));

    // b restarts, but the group metadata naming its new id is not replicated.
    log.fail_replication(Some(OffsetsLogError::NotEnoughReplicas));
    let failed = static_join("").await;
    assert_encodes(&failed, JOIN_V);
    assert_eq!(failed.error_code, NOT_AVAILABLE);
    // The old member id is still b's: not fenced, same place and assignment.
    let hb = HeartbeatRequest::default()
        .with_group_id(GroupId(sb("s")))
        .with_generation_id(1)
        .with_member_id(b.member_id.clone())
        .with_group_instance_id(Some(sb("i-b")));
    assert_eq!(c.heartbeat(hb, HB_V).await.error_code, 0);
    let described = c
        .describe_groups(
            DescribeGroupsRequest::default().with_groups(vec![GroupId(sb("s"))]),
            5,
        )
        .await;
    let members = &described.groups[0].members;
    assert_eq!(members[1].member_id, b.member_id);
    assert_eq!(&members[1].member_assignment[..], b"pb");
    assert_eq!(c.group_state("s"), Some(GroupState::Stable));

    log.fail_replication(None);
    let replaced = static_join("").await;
    assert_eq!(replaced.error_code, 0);
    assert_ne!(replaced.member_id, b.member_id);
    assert_eq!(
        sync(&c, "s", 1, &replaced.member_id, &[]).await.assignment[..],
        b"pb"[..]
    );
}

#[tokio::test(start_paused = true)]
async fn a_deletion_is_answered_once_its_tombstones_are_replicated() {
    let (c, log) = setup();
    for group in ["solo", "solo2"] {
        c.offset_commit(commit_request(group, -1, "", &[("t", 0, 1)]), 9)
            .await;
    }
    let delete = |group: &str| {
        let c = c.clone();
        let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb(group))]);
        async move { c.delete_groups(req, 2).await.results[0].error_code }
    };
    log.fail_replication(Some(OffsetsLogError::Timeout));
    assert_eq!(delete("solo").await, NOT_AVAILABLE);
    log.fail_replication(None);

    log.hold_replication(true);
    let pending = tokio::spawn(delete("solo2"));
    settle().await;
    assert!(!pending.is_finished());
    log.hold_replication(false);
    assert_eq!(pending.await.expect("delete task"), 0);
    assert_eq!(c.group_state("solo2"), None);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_commit_to_a_log_whose_appends_block_appends_off_the_runtime_thread() {
    let (c, log) = setup();
    let ids = stable_group(&c, "g").await;
    log.set_blocking(true);
    let before = log.append_threads().len();
    let response = c
        .offset_commit(commit_request("g", 1, &ids[0], &[("t", 0, 11)]), 9)
        .await;
    assert_eq!(commit_errors(&response), [0]);
    assert_eq!(c.committed_offsets("g")[0].2, 11);
    let threads = log.append_threads();
    assert_eq!(threads.len(), before + 1, "one append");
    // The runtime runs on this thread alone: the append ran on another (the blocking pool).
    assert_ne!(threads[before], std::thread::current().id());
}
