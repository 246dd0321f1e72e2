//! One classic group's in-memory state and the pure rules over it: membership, static instance
//! ids, protocol selection, the leader, committed offsets, and the snapshot written to
//! `__consumer_offsets`. No I/O and no waiting: the coordinator drives the transitions and owns
//! the timers; this module only answers questions and records facts.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::record::{GroupMetadataValue, MemberMetadataValue, OffsetValue};

/// The state of a classic group, named exactly as Kafka names them on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members; may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted or unloaded.
    Dead,
}

impl GroupState {
    /// Kafka's name of the state ("Empty", "PreparingRebalance", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A join waiting for the rebalance to complete.
pub(crate) struct PendingJoin {
    pub reply: oneshot::Sender<JoinGroupResponse>,
    pub api_version: i16,
}

/// One member of a group.
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// Supported protocols in preference order, with this member's metadata for each.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub awaiting_join: Option<PendingJoin>,
    pub awaiting_sync: Option<oneshot::Sender<SyncGroupResponse>>,
    pub last_heartbeat: Instant,
    /// Distinguishes this member from an earlier one with the same id, for its expiry timer.
    pub incarnation: u64,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    pub fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Kafka's `shouldKeepAlive`: a member waiting on a join or sync is alive; the rebalance
    /// timeout governs it instead of the session timeout.
    pub fn session_deadline(&self) -> Option<Instant> {
        if self.awaiting_join.is_some() || self.awaiting_sync.is_some() {
            return None;
        }
        let timeout = std::time::Duration::from_millis(self.session_timeout_ms.max(0) as u64);
        Some(self.last_heartbeat + timeout)
    }
}

/// One group.
pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// Members in the order they joined (the first joiner leads).
    pub members: IndexMap<String, Member>,
    /// group.instance.id -> member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED that have not joined yet.
    pub pending_members: HashSet<String>,
    /// A member joined while the initial rebalance delay was running.
    pub new_member_added: bool,
    /// Bumped on every rebalance start and completion: a timer of an older epoch is stale.
    pub rebalance_epoch: u64,
    /// The current rebalance is still within `group.initial.rebalance.delay.ms`.
    pub in_initial_delay: bool,
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    /// Log end offset of the record behind each cached offset (or of the tombstone that removed
    /// it): a commit that is replicated after a later write of the same partition must not win.
    /// Offsets restored from the log have no entry (older than anything written since).
    pub offset_positions: HashMap<(String, i32), i64>,
    pub state_timestamp_ms: i64,
}

impl Group {
    pub fn new(id: String, now_ms: i64) -> Self {
        Self {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: HashSet::new(),
            new_member_added: false,
            rebalance_epoch: 0,
            in_initial_delay: false,
            offsets: BTreeMap::new(),
            offset_positions: HashMap::new(),
            state_timestamp_ms: now_ms,
        }
    }

    pub fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// Kafka's `isStaticMemberFenced`: the instance id is registered to another member id.
    pub fn is_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        match instance_id.and_then(|i| self.static_members.get(i)) {
            Some(registered) => registered != member_id,
            None => false,
        }
    }

    /// Protocols every current member supports.
    fn candidate_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return Vec::new();
        };
        let mut candidates: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in members {
            candidates.retain(|c| m.protocols.iter().any(|(n, _)| n == c));
        }
        candidates
    }

    /// Kafka's `supportsProtocols`: may a member with these protocols join?
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self
                .candidate_protocols()
                .iter()
                .any(|c| protocols.iter().any(|(n, _)| n == c))
    }

    /// Kafka's `selectProtocol`: each member votes for its most preferred candidate; most votes
    /// wins, ties go to the candidate listed first by the earliest member.
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == name) {
                    v.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes.into_iter().find(|(_, n)| *n == best).map(|(c, _)| c)
    }

    pub fn add_member(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        self.pending_members.remove(&member.id);
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member; a new leader is picked among the rest (a joined one if possible).
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.shift_remove(member_id)?;
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if self.is_leader(member_id) {
            self.leader = self
                .members
                .values()
                .find(|m| m.awaiting_join.is_some())
                .or_else(|| self.members.values().next())
                .map(|m| m.id.clone());
        }
        // An empty group keeps its protocol type, as Kafka's does (ListGroups and the group's
        // record still name it "consumer"; a group that never had members has none).
        if self.members.is_empty() {
            self.protocol = None;
        }
        Some(member)
    }

    /// Every member (and no pending one) has sent its join for this rebalance.
    pub fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// Largest rebalance timeout of the members, used for the join deadline.
    pub fn rebalance_timeout_ms(&self) -> i32 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// The group metadata record value for the current state.
    pub fn metadata_value(&self) -> GroupMetadataValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| MemberMetadataValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member {
            id: id.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::new()))
                .collect(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            last_heartbeat: Instant::now(),
            incarnation: 0,
        }
    }

    #[test]
    fn protocol_selection_votes_among_common_protocols() {
        let mut g = Group::new("g".into(), 0);
        g.add_member(member("a", &["range", "roundrobin", "sticky"]));
        g.add_member(member("b", &["sticky", "roundrobin"]));
        g.add_member(member("c", &["roundrobin", "sticky"]));
        // range is not common; roundrobin has a: 1 + c: 1 = 2 votes, sticky 1.
        assert_eq!(g.select_protocol().as_deref(), Some("roundrobin"));
        let fit = [("sticky".to_string(), Bytes::new())];
        let unfit = [("range".to_string(), Bytes::new())];
        assert!(g.supports_protocols("consumer", &fit));
        assert!(!g.supports_protocols("consumer", &unfit));
        assert!(!g.supports_protocols("connect", &fit));
    }

    #[test]
    fn leader_moves_when_leader_leaves() {
        let mut g = Group::new("g".into(), 0);
        g.add_member(member("a", &["range"]));
        g.add_member(member("b", &["range"]));
        assert!(g.is_leader("a"));
        g.remove_member("a");
        assert!(g.is_leader("b"));
        g.remove_member("b");
        assert_eq!(g.leader, None);
        assert_eq!(g.protocol_type.as_deref(), Some("consumer"));
    }

    #[test]
    fn state_names_are_kafkas() {
        let names: Vec<_> = [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        assert_eq!(
            names,
            [
                "Empty",
                "PreparingRebalance",
                "CompletingRebalance",
                "Stable",
                "Dead"
            ]
        );
    }
}
