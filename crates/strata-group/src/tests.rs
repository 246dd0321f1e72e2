//! Scenario tests of the coordinator through its public API, on an in-memory offsets log and
//! tokio's paused clock (timeouts fire when the test advances time, never by sleeping).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;

use crate::{ClientInfo, GroupConfig, GroupCoordinator, GroupState, InMemoryOffsetsLog};

const JOIN_V: i16 = 9;
const SYNC_V: i16 = 5;
const HB_V: i16 = 4;
const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn assert_encodes<M: Encodable>(message: &M, version: i16) {
    let mut buf = BytesMut::new();
    if let Err(e) = message.encode(&mut buf, version) {
        panic!("response does not encode at v{version}: {e}");
    }
}

fn setup() -> (GroupCoordinator, Arc<InMemoryOffsetsLog>) {
    let log = Arc::new(InMemoryOffsetsLog::new());
    let config = GroupConfig {
        max_group_size: 10,
        ..GroupConfig::default()
    };
    let c = GroupCoordinator::new(config, log.clone());
    // A single broker: it owns (and loads) every partition of __consumer_offsets.
    c.load().expect("load");
    (c, log)
}

fn join_request(group: &str, member_id: &str, instance: Option<&str>) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_member_id(sb(member_id))
        .with_group_instance_id(instance.map(sb))
        .with_protocol_type(sb("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(sb("range"))
            .with_metadata(Bytes::from(format!("sub-{}", instance.unwrap_or("x"))))])
}

/// A dynamic member's first join: MEMBER_ID_REQUIRED, then the join with that id (which waits
/// for the rebalance).
async fn join_new(c: &GroupCoordinator, group: &str, client: &str) -> JoinGroupResponse {
    let client_info = ClientInfo {
        client_id: client.into(),
        client_host: "/127.0.0.1".into(),
    };
    let first = c
        .join_group_from(join_request(group, "", None), JOIN_V, client_info.clone())
        .await;
    assert_eq!(first.error_code, code(ResponseError::MemberIdRequired));
    assert!(first.member_id.starts_with(&format!("{client}-")));
    assert_encodes(&first, JOIN_V);
    let response = c
        .join_group_from(
            join_request(group, &first.member_id, None),
            JOIN_V,
            client_info,
        )
        .await;
    assert_encodes(&response, JOIN_V);
    response
}

async fn rejoin(c: &GroupCoordinator, group: &str, member_id: &str) -> JoinGroupResponse {
    c.join_group(join_request(group, member_id, None), JOIN_V)
        .await
}

async fn sync(
    c: &GroupCoordinator,
    group: &str,
    generation: i32,
    member_id: &str,
    assignments: &[(&str, &str)],
) -> SyncGroupResponse {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id(generation)
        .with_member_id(sb(member_id))
        .with_protocol_type(Some(sb("consumer")))
        .with_protocol_name(Some(sb("range")))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(sb(m))
                        .with_assignment(Bytes::from(a.to_string()))
                })
                .collect(),
        );
    let response = c.sync_group(req, SYNC_V).await;
    assert_encodes(&response, SYNC_V);
    response
}

async fn heartbeat(c: &GroupCoordinator, group: &str, generation: i32, member_id: &str) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id(generation)
        .with_member_id(sb(member_id));
    c.heartbeat(req, HB_V).await.error_code
}

/// Lets spawned timer tasks run after the clock moved.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

async fn advance(d: Duration) {
    tokio::time::advance(d).await;
    settle().await;
}

/// Three dynamic members joined and synced: returns their member ids (leader first).
async fn stable_group(c: &GroupCoordinator, group: &str) -> Vec<String> {
    let (a, b, d) = tokio::join!(
        join_new(c, group, "a"),
        join_new(c, group, "b"),
        join_new(c, group, "c")
    );
    for r in [&a, &b, &d] {
        assert_eq!(r.error_code, 0);
        assert_eq!(r.generation_id, 1);
        assert_eq!(r.leader, a.member_id);
        assert_eq!(r.protocol_name.as_deref(), Some("range"));
        assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    }
    let ids = vec![
        a.member_id.to_string(),
        b.member_id.to_string(),
        d.member_id.to_string(),
    ];
    let assignments: Vec<(&str, &str)> = ids
        .iter()
        .zip(["p0", "p1", "p2"])
        .map(|(m, p)| (m.as_str(), p))
        .collect();
    let (sa, sb_, sc) = tokio::join!(
        sync(c, group, 1, &ids[1], &[]),
        sync(c, group, 1, &ids[2], &[]),
        sync(c, group, 1, &ids[0], &assignments),
    );
    assert_eq!((sa.error_code, sb_.error_code, sc.error_code), (0, 0, 0));
    assert_eq!(&sa.assignment[..], b"p1");
    assert_eq!(&sb_.assignment[..], b"p2");
    assert_eq!(&sc.assignment[..], b"p0");
    assert_eq!(sc.protocol_name.as_deref(), Some("range"));
    assert_eq!(c.group_state(group), Some(GroupState::Stable));
    ids
}

#[tokio::test(start_paused = true)]
async fn three_members_join_and_sync_with_a_leader() {
    let (c, _log) = setup();
    let started = tokio::time::Instant::now();
    let (a, b, d) = tokio::join!(
        join_new(&c, "g", "a"),
        join_new(&c, "g", "b"),
        join_new(&c, "g", "c")
    );
    // The initial rebalance delay (3 s) held the first generation back for late joiners, and
    // was extended once (as Kafka's InitialDelayedJoin does) because b and c joined during it.
    assert_eq!(started.elapsed(), Duration::from_millis(6000));
    assert_eq!(a.members.len(), 3, "the leader gets the member list");
    assert!(b.members.is_empty() && d.members.is_empty());
    assert_eq!(&a.members[1].metadata[..], b"sub-x");
    assert_eq!(a.leader, a.member_id);
    // Versions without the v7 fields still encode.
    let old = c.join_group(join_request("g", &b.member_id, None), 6).await;
    assert_encodes(&old, 6);
}

#[tokio::test(start_paused = true)]
async fn initial_delay_is_extended_while_members_keep_joining() {
    let (c, _log) = setup();
    let started = tokio::time::Instant::now();
    let late = async {
        tokio::time::sleep(Duration::from_millis(2000)).await;
        join_new(&c, "g", "late").await
    };
    let (first, second) = tokio::join!(join_new(&c, "g", "early"), late);
    assert_eq!(first.generation_id, 1);
    assert_eq!(second.generation_id, 1);
    assert_eq!(first.members.len(), 2);
    // 3 s delay, extended once by 3 s because a member arrived during it.
    assert_eq!(started.elapsed(), Duration::from_millis(6000));
}

#[tokio::test(start_paused = true)]
async fn fourth_member_triggers_rebalance_and_everyone_rejoins() {
    let (c, _log) = setup();
    let ids = stable_group(&c, "g").await;
    let c2 = c.clone();
    let fourth = tokio::spawn(async move { join_new(&c2, "g", "d").await });
    settle().await;
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        heartbeat(&c, "g", 1, &ids[1]).await,
        code(ResponseError::RebalanceInProgress)
    );
    let (a, b, d) = tokio::join!(
        rejoin(&c, "g", &ids[0]),
        rejoin(&c, "g", &ids[1]),
        rejoin(&c, "g", &ids[2])
    );
    let fourth = fourth.await.expect("join task");
    for r in [&a, &b, &d, &fourth] {
        assert_eq!(r.error_code, 0);
        assert_eq!(r.generation_id, 2);
        assert_eq!(r.leader.as_str(), ids[0]);
    }
    assert_eq!(a.members.len(), 4);
    assert_eq!(c.group_state("g"), Some(GroupState::CompletingRebalance));
    assert_eq!(heartbeat(&c, "g", 2, &ids[1]).await, 0);
    assert_eq!(
        heartbeat(&c, "g", 1, &ids[1]).await,
        code(ResponseError::IllegalGeneration)
    );
}

#[tokio::test(start_paused = true)]
async fn silent_member_is_removed_after_session_timeout() {
    let (c, _log) = setup();
    let ids = stable_group(&c, "g").await;
    // a and b heartbeat every 4 s; c stays silent past its 10 s session timeout.
    for _ in 0..2 {
        advance(Duration::from_millis(4000)).await;
        assert_eq!(heartbeat(&c, "g", 1, &ids[0]).await, 0);
        assert_eq!(heartbeat(&c, "g", 1, &ids[1]).await, 0);
    }
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    advance(Duration::from_millis(2500)).await;
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        heartbeat(&c, "g", 1, &ids[0]).await,
        code(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        heartbeat(&c, "g", 1, &ids[2]).await,
        code(ResponseError::UnknownMemberId)
    );
    let (a, b) = tokio::join!(rejoin(&c, "g", &ids[0]), rejoin(&c, "g", &ids[1]));
    assert_eq!((a.generation_id, b.generation_id), (2, 2));
    assert_eq!(a.members.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn member_that_does_not_rejoin_is_dropped_at_rebalance_timeout() {
    let (c, _log) = setup();
    let ids = stable_group(&c, "g").await;
    let started = tokio::time::Instant::now();
    // a and b rejoin; c keeps heartbeating (so its session stays alive) but never rejoins.
    let c2 = c.clone();
    let silent = ids[2].clone();
    let keep_alive = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(3000)).await;
            if heartbeat(&c2, "g", 1, &silent).await != code(ResponseError::RebalanceInProgress) {
                return;
            }
        }
    });
    let (a, b) = tokio::join!(rejoin(&c, "g", &ids[0]), rejoin(&c, "g", &ids[1]));
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(REBALANCE_MS as u64)
    );
    assert_eq!((a.generation_id, b.generation_id), (2, 2));
    assert_eq!(a.members.len(), 2);
    keep_alive.abort();
}

#[tokio::test(start_paused = true)]
async fn leave_group_triggers_rebalance() {
    let (c, _log) = setup();
    let ids = stable_group(&c, "g").await;
    let req = LeaveGroupRequest::default()
        .with_group_id(GroupId(sb("g")))
        .with_members(vec![
            MemberIdentity::default().with_member_id(sb(&ids[2])),
            MemberIdentity::default().with_member_id(sb("nobody")),
        ]);
    let response = c.leave_group(req, 5).await;
    assert_encodes(&response, 5);
    assert_eq!(response.error_code, 0);
    let errors: Vec<i16> = response.members.iter().map(|m| m.error_code).collect();
    assert_eq!(errors, [0, code(ResponseError::UnknownMemberId)]);
    assert_eq!(
        heartbeat(&c, "g", 1, &ids[0]).await,
        code(ResponseError::RebalanceInProgress)
    );
    let (a, b) = tokio::join!(rejoin(&c, "g", &ids[0]), rejoin(&c, "g", &ids[1]));
    assert_eq!((a.generation_id, b.generation_id), (2, 2));
    // v0 leave of the rest: the group empties out.
    for id in &ids[..2] {
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(sb("g")))
            .with_member_id(sb(id));
        let response = c.leave_group(req, 0).await;
        assert_encodes(&response, 0);
        assert_eq!(response.error_code, 0);
    }
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
}

async fn static_join(c: &GroupCoordinator, member_id: &str, instance: &str) -> JoinGroupResponse {
    c.join_group(join_request("s", member_id, Some(instance)), JOIN_V)
        .await
}

#[tokio::test(start_paused = true)]
async fn static_member_rejoin_keeps_generation_and_assignment() {
    let (c, _log) = setup();
    let (a, b) = tokio::join!(static_join(&c, "", "i-a"), static_join(&c, "", "i-b"));
    assert_eq!((a.error_code, b.error_code), (0, 0));
    assert_eq!(a.generation_id, 1);
    assert_eq!(a.members[0].group_instance_id.as_deref(), Some("i-a"));
    let assignments = [(a.member_id.as_str(), "pa"), (b.member_id.as_str(), "pb")];
    let (_sa, sb_) = tokio::join!(
        sync(&c, "s", 1, &a.member_id, &assignments),
        sync(&c, "s", 1, &b.member_id, &[])
    );
    assert_eq!(&sb_.assignment[..], b"pb");

    // b restarts: same instance id, no member id. No rebalance.
    let b2 = static_join(&c, "", "i-b").await;
    assert_eq!(b2.error_code, 0);
    assert_eq!(b2.generation_id, 1);
    assert_ne!(b2.member_id, b.member_id);
    assert_eq!(c.group_state("s"), Some(GroupState::Stable));
    let s2 = sync(&c, "s", 1, &b2.member_id, &[]).await;
    assert_eq!(s2.error_code, 0);
    assert_eq!(&s2.assignment[..], b"pb");

    // The replaced member id is fenced.
    let hb = HeartbeatRequest::default()
        .with_group_id(GroupId(sb("s")))
        .with_generation_id(1)
        .with_member_id(b.member_id.clone())
        .with_group_instance_id(Some(sb("i-b")));
    assert_eq!(
        c.heartbeat(hb, HB_V).await.error_code,
        code(ResponseError::FencedInstanceId)
    );
    let old = static_join(&c, &b.member_id, "i-b").await;
    assert_eq!(old.error_code, code(ResponseError::FencedInstanceId));

    // The static leader restarting gets the member list and skips the assignment (v9).
    let a2 = static_join(&c, "", "i-a").await;
    assert_eq!(a2.leader, a2.member_id);
    assert!(a2.skip_assignment);
    assert_eq!(a2.members.len(), 2);
    assert_eq!(c.group_state("s"), Some(GroupState::Stable));

    // Leaving by instance id.
    let req = LeaveGroupRequest::default()
        .with_group_id(GroupId(sb("s")))
        .with_members(vec![
            MemberIdentity::default().with_group_instance_id(Some(sb("i-b")))
        ]);
    assert_eq!(c.leave_group(req, 5).await.members[0].error_code, 0);
    assert_eq!(c.group_state("s"), Some(GroupState::PreparingRebalance));
}

fn commit_request(
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &[(&str, i32, i64)],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset) in offsets {
        let p = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(3)
            .with_committed_metadata(Some(sb("meta")));
        match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(sb(member_id))
        .with_topics(topics)
}

fn commit_errors(r: &OffsetCommitResponse) -> Vec<i16> {
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

async fn fetch_v7(
    c: &GroupCoordinator,
    group: &str,
    topics: Option<&[(&str, &[i32])]>,
) -> Vec<(String, i32, i64, i32)> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partition_indexes(ps.to_vec())
                })
                .collect()
        }));
    let response = c.offset_fetch(req, 7).await;
    assert_encodes(&response, 7);
    assert_eq!(response.error_code, 0);
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                )
            })
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn commit_and_fetch_offsets() {
    let (c, log) = setup();
    let ids = stable_group(&c, "g").await;
    let partition = c.partition_for("g");
    let before = log.len(partition);
    let r = c
        .offset_commit(
            commit_request("g", 1, &ids[1], &[("t", 0, 10), ("t", 1, 11), ("u", 0, 5)]),
            9,
        )
        .await;
    assert_encodes(&r, 9);
    assert_eq!(commit_errors(&r), [0, 0, 0]);
    assert_eq!(log.len(partition), before + 3, "persisted before the reply");

    let requested: &[(&str, &[i32])] = &[("t", &[0, 1, 2]), ("nope", &[0])];
    assert_eq!(
        fetch_v7(&c, "g", Some(requested)).await,
        [
            ("t".to_string(), 0, 10, 3),
            ("t".to_string(), 1, 11, 3),
            ("t".to_string(), 2, -1, -1),
            ("nope".to_string(), 0, -1, -1),
        ]
    );
    assert_eq!(fetch_v7(&c, "g", None).await.len(), 3);

    // v8+: the groups array, including an unknown group.
    let req = OffsetFetchRequest::default()
        .with_require_stable(true)
        .with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(sb("g")))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(TopicName(sb("u")))
                    .with_partition_indexes(vec![0])])),
            OffsetFetchRequestGroup::default().with_group_id(GroupId(sb("other"))),
        ]);
    let response = c.offset_fetch(req, 9).await;
    assert_encodes(&response, 9);
    assert_eq!(response.groups.len(), 2);
    let p = &response.groups[0].topics[0].partitions[0];
    assert_eq!(
        (p.committed_offset, p.metadata.as_deref()),
        (5, Some("meta"))
    );
    assert!(response.groups[1].topics.is_empty());

    assert_eq!(
        c.committed_offsets("g"),
        [
            ("t".to_string(), 0, 10, Some("meta".to_string())),
            ("t".to_string(), 1, 11, Some("meta".to_string())),
            ("u".to_string(), 0, 5, Some("meta".to_string())),
        ]
    );
    c.remove_topic_offsets("t");
    assert_eq!(c.committed_offsets("g").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn commits_outside_the_current_generation_are_refused() {
    let (c, log) = setup();
    let ids = stable_group(&c, "g").await;
    let offsets = [("t", 0, 1)];
    let stale = c
        .offset_commit(commit_request("g", 0, &ids[0], &offsets), 9)
        .await;
    assert_eq!(
        commit_errors(&stale),
        [code(ResponseError::IllegalGeneration)]
    );
    let unknown = c
        .offset_commit(commit_request("g", 1, "who", &offsets), 9)
        .await;
    assert_eq!(
        commit_errors(&unknown),
        [code(ResponseError::UnknownMemberId)]
    );
    let admin = c
        .offset_commit(commit_request("g", -1, "", &offsets), 9)
        .await;
    assert_eq!(
        commit_errors(&admin),
        [code(ResponseError::UnknownMemberId)]
    );
    assert!(c.committed_offsets("g").is_empty());

    // Standalone commits create an Empty group that only holds offsets.
    let standalone = c
        .offset_commit(commit_request("solo", -1, "", &offsets), 2)
        .await;
    assert_encodes(&standalone, 2);
    assert_eq!(commit_errors(&standalone), [0]);
    assert_eq!(c.group_state("solo"), Some(GroupState::Empty));

    // A log that refuses the append: nothing is acknowledged or remembered.
    log.set_failing(true);
    let failed = c
        .offset_commit(commit_request("g", 1, &ids[0], &offsets), 9)
        .await;
    assert_eq!(
        commit_errors(&failed),
        [code(ResponseError::CoordinatorNotAvailable)]
    );
    assert!(c.committed_offsets("g").is_empty());
}

#[tokio::test(start_paused = true)]
async fn restart_restores_offsets_and_groups_from_the_log() {
    let (c, log) = setup();
    let ids = stable_group(&c, "g").await;
    c.offset_commit(
        commit_request("g", 1, &ids[0], &[("t", 0, 7), ("t", 1, 8)]),
        9,
    )
    .await;
    c.offset_commit(commit_request("g", 1, &ids[0], &[("t", 0, 9)]), 9)
        .await;
    c.offset_commit(commit_request("solo", -1, "", &[("x", 0, 1)]), 9)
        .await;
    c.remove_topic_offsets("x");
    c.shutdown();

    let restarted = GroupCoordinator::new(GroupConfig::default(), log.clone());
    restarted.load().expect("load");
    assert_eq!(
        restarted.committed_offsets("g"),
        [
            ("t".to_string(), 0, 9, Some("meta".to_string())),
            ("t".to_string(), 1, 8, Some("meta".to_string())),
        ]
    );
    assert!(restarted.committed_offsets("solo").is_empty());
    // The group metadata written at sync brought the members back, Stable at generation 1.
    assert_eq!(restarted.group_state("g"), Some(GroupState::Stable));
    assert_eq!(heartbeat(&restarted, "g", 1, &ids[1]).await, 0);
    let described = restarted
        .describe_groups(
            DescribeGroupsRequest::default().with_groups(vec![GroupId(sb("g"))]),
            5,
        )
        .await;
    assert_eq!(described.groups[0].members.len(), 3);
    assert_eq!(&described.groups[0].members[1].member_assignment[..], b"p1");
    assert_eq!(described.groups[0].members[0].client_id.as_str(), "a");
}

#[tokio::test(start_paused = true)]
async fn delete_groups_only_when_empty() {
    let (c, log) = setup();
    let ids = stable_group(&c, "g").await;
    c.offset_commit(commit_request("solo", -1, "", &[("t", 0, 1)]), 9)
        .await;
    let req = DeleteGroupsRequest::default().with_groups_names(vec![
        GroupId(sb("g")),
        GroupId(sb("solo")),
        GroupId(sb("missing")),
    ]);
    let response = c.delete_groups(req, 2).await;
    assert_encodes(&response, 2);
    let errors: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        errors,
        [
            code(ResponseError::NonEmptyGroup),
            0,
            code(ResponseError::GroupIdNotFound)
        ]
    );
    assert_eq!(c.group_state("solo"), None);
    assert!(c.committed_offsets("solo").is_empty());
    assert_eq!(heartbeat(&c, "g", 1, &ids[0]).await, 0);

    let restarted = GroupCoordinator::new(GroupConfig::default(), log.clone());
    restarted.load().expect("load");
    assert_eq!(
        restarted.group_state("solo"),
        None,
        "tombstones were written"
    );
}

#[tokio::test(start_paused = true)]
async fn describe_and_list_report_kafka_state_names() {
    let (c, _log) = setup();
    stable_group(&c, "g").await;
    c.offset_commit(commit_request("solo", -1, "", &[("t", 0, 1)]), 9)
        .await;
    let described = c
        .describe_groups(
            DescribeGroupsRequest::default().with_groups(vec![
                GroupId(sb("g")),
                GroupId(sb("solo")),
                GroupId(sb("nope")),
            ]),
            5,
        )
        .await;
    assert_encodes(&described, 5);
    let states: Vec<&str> = described
        .groups
        .iter()
        .map(|g| g.group_state.as_str())
        .collect();
    assert_eq!(states, ["Stable", "Empty", "Dead"]);
    let g = &described.groups[0];
    assert_eq!(
        (g.protocol_type.as_str(), g.protocol_data.as_str()),
        ("consumer", "range")
    );
    assert_eq!(g.members[0].client_host.as_str(), "/127.0.0.1");
    assert_eq!(&g.members[0].member_metadata[..], b"sub-x");
    assert_eq!(&g.members[0].member_assignment[..], b"p0");

    let list = |states: Vec<&str>, types: Vec<&str>| {
        let c = c.clone();
        let req = ListGroupsRequest::default()
            .with_states_filter(states.into_iter().map(sb).collect())
            .with_types_filter(types.into_iter().map(sb).collect());
        async move {
            let response = c.list_groups(req, 5).await;
            assert_encodes(&response, 5);
            response
                .groups
                .iter()
                .map(|g| (g.group_id.0.to_string(), g.group_state.to_string()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(vec![], vec![]).await,
        [
            ("g".to_string(), "Stable".to_string()),
            ("solo".to_string(), "Empty".to_string())
        ]
    );
    assert_eq!(list(vec!["stable"], vec![]).await.len(), 1);
    assert_eq!(list(vec![], vec!["consumer"]).await.len(), 0);
    assert_eq!(list(vec![], vec!["Classic"]).await.len(), 2);
    let v0 = c.list_groups(ListGroupsRequest::default(), 0).await;
    assert_encodes(&v0, 0);
}

#[tokio::test(start_paused = true)]
async fn join_errors() {
    let (c, _log) = setup();
    let mut bad_timeout = join_request("g", "", None);
    bad_timeout.session_timeout_ms = 1000;
    assert_eq!(
        c.join_group(bad_timeout, JOIN_V).await.error_code,
        code(ResponseError::InvalidSessionTimeout)
    );
    let empty_protocol = join_request("g", "", None).with_protocol_type(sb(""));
    assert_eq!(
        c.join_group(empty_protocol, JOIN_V).await.error_code,
        code(ResponseError::InconsistentGroupProtocol)
    );
    assert_eq!(
        rejoin(&c, "nogroup", "ghost").await.error_code,
        code(ResponseError::UnknownMemberId)
    );
    let ids = stable_group(&c, "g").await;
    let other_protocol = join_request("g", "", None).with_protocols(vec![
        JoinGroupRequestProtocol::default().with_name(sb("roundrobin")),
    ]);
    assert_eq!(
        c.join_group(other_protocol, JOIN_V).await.error_code,
        code(ResponseError::InconsistentGroupProtocol)
    );
    let wrong_generation = sync(&c, "g", 7, &ids[0], &[]).await;
    assert_eq!(
        wrong_generation.error_code,
        code(ResponseError::IllegalGeneration)
    );
    let wrong_name = SyncGroupRequest::default()
        .with_group_id(GroupId(sb("g")))
        .with_generation_id(1)
        .with_member_id(sb(&ids[0]))
        .with_protocol_name(Some(sb("sticky")));
    assert_eq!(
        c.sync_group(wrong_name, 5).await.error_code,
        code(ResponseError::InconsistentGroupProtocol)
    );
}

#[tokio::test(start_paused = true)]
async fn group_max_size_is_enforced() {
    let log = Arc::new(InMemoryOffsetsLog::new());
    let config = GroupConfig {
        max_group_size: 1,
        ..GroupConfig::default()
    };
    let c = GroupCoordinator::new(config, log);
    c.load().expect("load");
    let first = c.join_group(join_request("g", "", None), JOIN_V).await;
    assert_eq!(first.error_code, code(ResponseError::MemberIdRequired));
    let second = c.join_group(join_request("g", "", None), JOIN_V).await;
    assert_eq!(second.error_code, code(ResponseError::GroupMaxSizeReached));
}

#[tokio::test(start_paused = true)]
async fn shutdown_wakes_pending_joins() {
    let (c, _log) = setup();
    let c2 = c.clone();
    let pending = tokio::spawn(async move { join_new(&c2, "g", "a").await });
    settle().await;
    c.shutdown();
    let response = pending.await.expect("join task");
    assert_eq!(response.error_code, code(ResponseError::NotCoordinator));
    assert_eq!(
        c.join_group(join_request("g", "", None), JOIN_V)
            .await
            .error_code,
        code(ResponseError::CoordinatorNotAvailable)
    );
}

#[tokio::test(start_paused = true)]
async fn old_join_versions_get_member_ids_without_a_second_round_trip() {
    let (c, _log) = setup();
    let response = c.join_group(join_request("g", "", None), 3).await;
    assert_encodes(&response, 3);
    assert_eq!(response.error_code, 0);
    assert_eq!(response.generation_id, 1);
    assert_eq!(response.protocol_name.as_deref(), Some("range"));
}

mod ownership;
mod replication;

fn offset_delete_topics(
    topic: &str,
    partitions: &[i32],
) -> Vec<offset_delete_request::OffsetDeleteRequestTopic> {
    vec![offset_delete_request::OffsetDeleteRequestTopic::default()
        .with_name(TopicName(sb(topic)))
        .with_partitions(
            partitions
                .iter()
                .map(|p| {
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(*p)
                })
                .collect(),
        )]
}

#[tokio::test(start_paused = true)]
async fn offset_delete_drops_offsets_of_topics_no_member_subscribes_to() {
    let (c, log) = setup();
    // A group that only holds offsets: deleted, a partition without one answered too.
    c.offset_commit(
        commit_request("solo", -1, "", &[("t", 0, 5), ("t", 1, 6)]),
        2,
    )
    .await;
    let outcome = c
        .offset_delete("solo", &offset_delete_topics("t", &[0, 2]))
        .await
        .expect("group found");
    assert_eq!(
        outcome,
        [(("t".to_string(), 0), 0), (("t".to_string(), 2), 0)]
    );
    let left: Vec<(String, i32)> = c
        .committed_offsets("solo")
        .into_iter()
        .map(|(t, p, _, _)| (t, p))
        .collect();
    assert_eq!(left, [("t".to_string(), 1)]);

    // Members whose subscriptions name no topic (metadata that is not Kafka's consumer
    // protocol counts as subscribed to nothing, as in Kafka): the offsets go.
    let ids = stable_group(&c, "g").await;
    c.offset_commit(commit_request("g", 1, &ids[0], &[("t", 0, 9)]), 9)
        .await;
    assert_eq!(
        c.offset_delete("g", &offset_delete_topics("t", &[0]))
            .await
            .expect("group found"),
        [(("t".to_string(), 0), 0)]
    );
    assert!(c.committed_offsets("g").is_empty());

    // An unknown group; a log that refuses the tombstones keeps the offsets.
    assert_eq!(
        c.offset_delete("nobody", &offset_delete_topics("t", &[0]))
            .await,
        Err(code(ResponseError::GroupIdNotFound))
    );
    log.set_failing(true);
    assert!(c
        .offset_delete("solo", &offset_delete_topics("t", &[1]))
        .await
        .is_err());
    assert_eq!(c.committed_offsets("solo").len(), 1);
}
