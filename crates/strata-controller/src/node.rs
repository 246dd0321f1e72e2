//! One running quorum member: opens storage and Raft, decides how to join (bootstrap a new
//! quorum, wait for the leader, or rejoin after a lost volume), serves Raft frames, and runs the
//! leader's periodic duties (broker session expiry, observers as learners). The controller
//! operations themselves are in `quorum.rs`; their decisions in `controller.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::VoteResponse;
use openraft::{BasicNode, Config, Raft, ServerState};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::controller;
use crate::image::MetadataImage;
use crate::log_store::{LogStore, METADATA_LOG_DIR};
use crate::meta_properties::{self, MetaProperties};
use crate::metadata_quorum::{MetadataQuorum, Operation, QuorumView};
use crate::network::{Connection, Network, ProbeReply, RaftReply, RaftRequest, ReplicaProgress};
use crate::records::{CommandOutcome, MetadataCommand, MetadataRecord, TypeConfig};
use crate::state_machine::StateMachine;
use crate::types::{ControllerError, QuorumConfig, QuorumError};
use strata_kafka::timestamp::now_ms;

/// A node that started with an empty metadata log must not vote with it while a quorum with
/// history exists (KIP-853's lost-volume problem): it first catches up to the leader's commit.
#[derive(Debug, Default)]
pub struct Rejoin {
    /// Started with an empty log in a multi-voter quorum.
    pub started_pristine: bool,
    /// Evidence of an existing quorum was seen; votes are refused until caught up.
    pub rejoining: bool,
    /// Highest leader commit index seen while rejoining.
    pub target: u64,
    /// Caught up once: from then on a normal voter.
    pub done: bool,
}

pub struct Node {
    pub config: QuorumConfig,
    pub id: u64,
    pub cluster_id: String,
    pub raft: Raft<TypeConfig>,
    pub sm: StateMachine,
    log: LogStore,
    pub image_rx: watch::Receiver<Arc<MetadataImage>>,
    pub progress: Arc<ReplicaProgress>,
    pub caught_up_ms: Mutex<HashMap<u64, i64>>,
    /// Serialises controller operations on the leader (each decides on the image the
    /// previous one produced).
    pub op_lock: tokio::sync::Mutex<()>,
    /// Broker id → last heartbeat (leader only; reset when leadership changes).
    pub sessions: Mutex<HashMap<i32, Instant>>,
    pub rejoin: Mutex<Rejoin>,
    /// Learners being added (one `add_learner` at a time per id).
    adding_learners: Mutex<BTreeSet<u64>>,
    /// When the leader's entries or heartbeats last reached this node (followers, observers).
    leader_contact: Mutex<Option<Instant>>,
    pub stop: CancellationToken,
}

/// The Raft timers from Kafka's: a voter that hears nothing from the leader for
/// `controller.quorum.fetch.timeout.ms` becomes a candidate, and elections back off within
/// `controller.quorum.election.timeout.ms` more (openraft's one randomised timer spans both:
/// from the fetch timeout to the fetch timeout plus the election timeout). The leader's
/// heartbeats come every fifth of the election timeout, well within the fetch timeout.
pub fn raft_config(config: &QuorumConfig, cluster_id: &str) -> Result<Config, QuorumError> {
    let election = config.election_timeout_ms.max(100);
    let fetch = config.fetch_timeout_ms.max(100);
    Config {
        cluster_name: cluster_id.to_string(),
        election_timeout_min: fetch,
        election_timeout_max: fetch + election,
        heartbeat_interval: (election / 5).max(50).min(fetch / 2),
        install_snapshot_timeout: config.request_timeout_ms.max(election) * 4,
        ..Config::default()
    }
    .validate()
    .map_err(|e| QuorumError::Config(format!("raft configuration: {e}")))
}

/// Whether a node that last heard from the leader at `last_contact` still counts it as the
/// leader at `now` (Kafka: an observer or follower without a successful fetch for
/// `controller.quorum.fetch.timeout.ms` considers the leader lost and asks around).
pub fn leader_alive(last_contact: Option<Instant>, now: Instant, fetch_timeout: Duration) -> bool {
    last_contact.is_some_and(|t| now.saturating_duration_since(t) <= fetch_timeout)
}

fn storage_err(config: &QuorumConfig, message: String) -> QuorumError {
    QuorumError::Storage {
        path: config.log_dir.clone(),
        message,
    }
}

impl Node {
    pub async fn start(config: QuorumConfig) -> Result<Arc<Node>, QuorumError> {
        if config.node_id < 0 {
            return Err(QuorumError::Config(format!(
                "node.id {} is negative",
                config.node_id
            )));
        }
        std::fs::create_dir_all(&config.log_dir)
            .map_err(|e| storage_err(&config, e.to_string()))?;
        let cluster_id = match meta_properties::read(&config.log_dir)
            .map_err(QuorumError::Config)?
        {
            Some(found) => meta_properties::check(
                &found,
                config.node_id,
                config.cluster_id.as_deref(),
                &config.log_dir,
            )
            .map_err(QuorumError::Config)?,
            None => {
                let meta = MetaProperties {
                    cluster_id: config
                        .cluster_id
                        .clone()
                        .unwrap_or_else(meta_properties::random_kafka_id),
                    node_id: config.node_id,
                    directory_id: meta_properties::random_kafka_id(),
                };
                meta_properties::write(&config.log_dir, &meta).map_err(QuorumError::Config)?;
                tracing::info!(dir = %config.log_dir.display(), cluster_id = %meta.cluster_id, "formatted log directory");
                meta.cluster_id
            }
        };
        let log = LogStore::open(&config.log_dir).map_err(|e| storage_err(&config, e))?;
        let sm = StateMachine::open(&config.log_dir.join(METADATA_LOG_DIR), &cluster_id)
            .map_err(|e| storage_err(&config, e))?;
        let pristine = log.is_pristine() && sm.subscribe().borrow().offset == 0;

        let raft_config = raft_config(&config, &cluster_id)?;
        let progress = Arc::new(ReplicaProgress::default());
        let network = Network {
            request_timeout: Duration::from_millis(config.request_timeout_ms.max(50)),
            progress: progress.clone(),
            dialer: config.dialer.clone(),
            voter_addrs: Arc::new(config.voters.values().cloned().collect()),
        };
        let id = config.node_id as u64;
        let raft = Raft::new(id, Arc::new(raft_config), network, log.clone(), sm.clone())
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        let image_rx = sm.subscribe();
        let is_voter = config.voters.contains_key(&config.node_id);
        let multi_voter = config.voters.len() > 1;
        let node = Arc::new(Node {
            id,
            cluster_id,
            raft,
            sm,
            log,
            image_rx,
            progress,
            caught_up_ms: Mutex::default(),
            op_lock: tokio::sync::Mutex::new(()),
            sessions: Mutex::default(),
            rejoin: Mutex::new(Rejoin {
                started_pristine: pristine && is_voter && multi_voter,
                ..Rejoin::default()
            }),
            adding_learners: Mutex::default(),
            leader_contact: Mutex::default(),
            stop: CancellationToken::new(),
            config,
        });

        if is_voter && !multi_voter {
            node.start_single_voter(pristine).await?;
        } else if is_voter && pristine {
            tokio::spawn(node.clone().bootstrap_loop());
        }
        tokio::spawn(node.clone().leader_duties());
        Ok(node)
    }

    fn voter_nodes(&self) -> BTreeMap<u64, BasicNode> {
        self.config
            .voters
            .iter()
            .map(|(id, addr)| (*id as u64, BasicNode::new(addr)))
            .collect()
    }

    /// A one-voter quorum initialises itself and elects itself at once (no election timeout).
    async fn start_single_voter(&self, pristine: bool) -> Result<(), QuorumError> {
        if pristine {
            self.raft
                .initialize(self.voter_nodes())
                .await
                .map_err(|e| QuorumError::Raft(format!("initialising the quorum: {e}")))?;
        }
        let _ = self.raft.trigger().elect().await;
        let id = self.id;
        let _ = self
            .raft
            .wait(Some(Duration::from_secs(5)))
            .metrics(
                |m| m.current_leader == Some(id) && m.state == ServerState::Leader,
                "single voter leads",
            )
            .await;
        Ok(())
    }

    fn has_log(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.last_log_index.is_some()
            || m.membership_config
                .membership()
                .voter_ids()
                .next()
                .is_some()
    }

    /// A pristine voter of a multi-voter quorum: the lowest voter initialises the quorum once
    /// every voter answers that it is pristine too; any voter with committed state means an
    /// existing quorum, which this node rejoins through replication.
    async fn bootstrap_loop(self: Arc<Self>) {
        let timeout = Duration::from_millis(self.config.request_timeout_ms.max(100));
        let lowest = self.config.voters.keys().next().copied() == Some(self.config.node_id);
        loop {
            if self.stop.is_cancelled() || self.has_log() {
                return;
            }
            let others: Vec<(i32, String)> = self
                .config
                .voters
                .iter()
                .filter(|(id, _)| **id != self.config.node_id)
                .map(|(id, a)| (*id, a.clone()))
                .collect();
            let dialer = &self.config.dialer;
            let probes = others.iter().map(|(_, addr)| async move {
                let mut c = Connection::probe_to(addr, timeout, dialer);
                match c.call(&RaftRequest::Probe, timeout).await {
                    Ok(RaftReply::Probe(p)) => Some(p),
                    _ => None,
                }
            });
            let replies: Vec<Option<ProbeReply>> = futures::future::join_all(probes).await;
            if replies.iter().flatten().any(|p| p.has_committed) {
                let mut r = self.rejoin.lock();
                if !r.rejoining && !r.done {
                    r.rejoining = true;
                    tracing::warn!(node = self.id, "metadata log is empty but the quorum has committed state: rejoining it (no votes until caught up)");
                }
                return;
            }
            let all_pristine = replies
                .iter()
                .all(|p| p.as_ref().is_some_and(|p| p.pristine));
            if all_pristine && lowest {
                tracing::info!(
                    node = self.id,
                    "all voters are new: initialising the metadata quorum"
                );
                match self.raft.initialize(self.voter_nodes()).await {
                    Ok(()) => {
                        let _ = self.raft.trigger().elect().await;
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "initialising the quorum"),
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    fn probe_reply(&self) -> ProbeReply {
        let m = self.raft.metrics().borrow().clone();
        ProbeReply {
            node_id: self.id,
            cluster_id: self.cluster_id.clone(),
            pristine: self.log.is_pristine() && m.last_log_index.is_none(),
            has_committed: m.last_applied.is_some(),
        }
    }

    /// Catch-up check of a rejoining node after it received entries.
    fn check_caught_up(&self) {
        let last = self.raft.metrics().borrow().last_log_index;
        let mut r = self.rejoin.lock();
        if r.rejoining && last.is_some_and(|l| l >= r.target) {
            r.rejoining = false;
            r.done = true;
            tracing::info!(node = self.id, index = ?last, "rejoined the metadata quorum: caught up to the leader's commit");
        }
    }

    /// Serves one Raft frame body.
    pub async fn handle_rpc(&self, body: Bytes) -> Bytes {
        let reply = match crate::network::decode_request(&body) {
            Err(e) => RaftReply::Error(format!("undecodable raft frame: {e}")),
            Ok(_) if self.stop.is_cancelled() => RaftReply::Error("node is shutting down".into()),
            Ok(RaftRequest::Probe) => RaftReply::Probe(self.probe_reply()),
            Ok(RaftRequest::Vote(req)) => {
                if self.refuses_vote(req.last_log_id.map(|l| l.index)) {
                    let m = self.raft.metrics().borrow().clone();
                    RaftReply::Vote(Ok(VoteResponse {
                        vote: m.vote,
                        vote_granted: false,
                        last_log_id: None,
                    }))
                } else {
                    RaftReply::Vote(self.raft.vote(req).await)
                }
            }
            Ok(RaftRequest::AppendEntries(req)) => {
                let commit = req.leader_commit.map(|c| c.index);
                self.note_leader_commit(commit);
                let r = self.raft.append_entries(req).await;
                if r.as_ref().is_ok_and(|a| a.is_success()) {
                    *self.leader_contact.lock() = Some(Instant::now());
                }
                self.check_caught_up();
                RaftReply::AppendEntries(r)
            }
            Ok(RaftRequest::InstallSnapshot(req)) => {
                let r = self.raft.install_snapshot(req).await;
                self.check_caught_up();
                RaftReply::InstallSnapshot(r)
            }
        };
        match serde_json::to_vec(&reply) {
            Ok(v) => Bytes::from(v),
            Err(e) => Bytes::from(format!("{{\"Error\":\"{e}\"}}")),
        }
    }

    /// Whether a pristine-started node must refuse this vote: it is rejoining, or its log is
    /// still empty and the candidate has history beyond the bootstrap entry.
    fn refuses_vote(&self, candidate_last_index: Option<u64>) -> bool {
        let empty = self.raft.metrics().borrow().last_log_index.is_none();
        let mut r = self.rejoin.lock();
        if !r.started_pristine || r.done {
            return false;
        }
        if !r.rejoining && empty && candidate_last_index.is_some_and(|i| i > 0) {
            r.rejoining = true;
            tracing::warn!(node = self.id, "metadata log is empty but a candidate has history: rejoining (no votes until caught up)");
        }
        r.rejoining
    }

    fn note_leader_commit(&self, commit: Option<u64>) {
        let Some(commit) = commit else { return };
        let last = self.raft.metrics().borrow().last_log_index;
        let mut r = self.rejoin.lock();
        if !r.started_pristine || r.done {
            return;
        }
        if !r.rejoining && last.is_none_or(|l| l < commit) && commit > 0 {
            r.rejoining = true;
            tracing::warn!(
                node = self.id,
                commit,
                "metadata log is behind an existing quorum: rejoining (no votes until caught up)"
            );
        }
        if r.rejoining {
            r.target = r.target.max(commit);
        } else if last.is_some_and(|l| l >= commit) {
            // Caught up without ever lagging behind a commit (fresh bootstrap).
            r.done = true;
        }
    }

    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// The active controller as this node knows it: itself when it leads, else the leader
    /// Raft names as long as that leader was heard from within the fetch timeout (`None`
    /// after: the leader is lost, requests go to the voters in turn).
    pub fn leader(&self) -> Option<i32> {
        if self.is_leader() {
            return Some(self.config.node_id);
        }
        let known = self.raft.metrics().borrow().current_leader?;
        let fetch_timeout = Duration::from_millis(self.config.fetch_timeout_ms.max(100));
        leader_alive(*self.leader_contact.lock(), Instant::now(), fetch_timeout)
            .then_some(known as i32)
    }

    fn not_controller(&self) -> ControllerError {
        ControllerError::NotController {
            leader: self.leader(),
        }
    }

    /// The write deadline: a few request timeouts.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms.max(500) * 4)
    }

    /// Starts a controller operation: takes the operation lock and returns the image that
    /// holds every committed entry (linearizable read on the leader).
    pub async fn begin(
        &self,
    ) -> Result<(tokio::sync::MutexGuard<'_, ()>, Arc<MetadataImage>), ControllerError> {
        if !self.is_leader() {
            return Err(self.not_controller());
        }
        let guard = self.op_lock.lock().await;
        match tokio::time::timeout(self.write_timeout(), self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => {}
            Ok(Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(
                f,
            )))) => {
                return Err(ControllerError::NotController {
                    leader: f.leader_id.map(|l| l as i32),
                })
            }
            Ok(Err(e)) => {
                return Err(ControllerError::Timeout(format!(
                    "metadata quorum unavailable: {e}"
                )))
            }
            Err(_) => {
                return Err(ControllerError::Timeout(
                    "metadata quorum unavailable: no quorum answered in time".into(),
                ))
            }
        }
        let image = self.image_rx.borrow().clone();
        Ok((guard, image))
    }

    /// Proposes records and returns once they are committed and applied here.
    pub async fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<CommandOutcome, ControllerError> {
        match tokio::time::timeout(
            self.write_timeout(),
            self.raft.client_write(MetadataCommand(records)),
        )
        .await
        {
            Ok(Ok(resp)) => Ok(resp.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(ControllerError::NotController {
                    leader: f.leader_id.map(|l| l as i32),
                })
            }
            Ok(Err(e)) => Err(ControllerError::Timeout(format!(
                "metadata quorum unavailable: {e}"
            ))),
            Err(_) => Err(ControllerError::Timeout(
                "metadata quorum unavailable: the write was not committed in time".into(),
            )),
        }
    }

    /// Adds a registered broker that is not a voter as a learner, in the background.
    pub fn ensure_learner(self: &Arc<Self>, broker_id: i32, image: &MetadataImage) {
        if self.config.voters.contains_key(&broker_id) || broker_id < 0 {
            return;
        }
        let id = broker_id as u64;
        let known = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .is_some();
        if known {
            return;
        }
        let Some(endpoint) = image.brokers.get(&broker_id).and_then(|b| {
            b.endpoints
                .iter()
                .find(|e| e.name == self.config.inter_broker_listener)
                .cloned()
        }) else {
            tracing::warn!(broker = broker_id, listener = %self.config.inter_broker_listener,
                "registered broker has no inter-broker endpoint; not adding it as an observer");
            return;
        };
        if !self.adding_learners.lock().insert(id) {
            return;
        }
        let node = self.clone();
        tokio::spawn(async move {
            let addr = format!("{}:{}", endpoint.host, endpoint.port);
            match node
                .raft
                .add_learner(id, BasicNode::new(&addr), false)
                .await
            {
                Ok(_) => {
                    tracing::info!(broker = broker_id, %addr, "added observer to the metadata quorum")
                }
                Err(e) => tracing::warn!(broker = broker_id, error = %e, "adding observer"),
            }
            node.adding_learners.lock().remove(&id);
        });
    }

    /// Leader duties every tick: sessions start anew on a new term, observers are (re-)added,
    /// brokers whose session expired are fenced.
    async fn leader_duties(self: Arc<Self>) {
        let tick = Duration::from_millis((self.config.election_timeout_ms / 5).clamp(50, 250));
        let session_timeout = Duration::from_millis(self.config.broker_session_timeout_ms);
        let rebalance_every = Duration::from_millis(self.config.leader_imbalance_check_interval_ms);
        let mut last_rebalance = Instant::now();
        let mut rebalance_again = false;
        let mut led_term = None;
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
            if !self.is_leader() {
                led_term = None;
                continue;
            }
            let term = self.raft.metrics().borrow().current_term;
            let image = self.image_rx.borrow().clone();
            if led_term != Some(term) {
                led_term = Some(term);
                let now = Instant::now();
                let mut sessions = self.sessions.lock();
                sessions.clear();
                for id in image.brokers.keys() {
                    sessions.insert(*id, now);
                }
            }
            for id in image.brokers.keys() {
                self.ensure_learner(*id, &image);
            }
            let expired: Vec<i32> = {
                let sessions = self.sessions.lock();
                image
                    .brokers
                    .values()
                    .filter(|b| !b.fenced)
                    .filter(|b| {
                        sessions
                            .get(&b.id)
                            .is_none_or(|t| t.elapsed() > session_timeout)
                    })
                    .map(|b| b.id)
                    .collect()
            };
            for id in expired {
                if let Err(e) = self.fence_expired(id, session_timeout).await {
                    tracing::warn!(broker = id, error = %e, "fencing a broker whose session expired");
                }
            }
            if self.config.auto_leader_rebalance
                && (rebalance_again || last_rebalance.elapsed() >= rebalance_every)
            {
                last_rebalance = Instant::now();
                // More partitions than one round elects: the next round at the next tick.
                rebalance_again = self.rebalance_leaders().await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "automatic leader rebalance");
                    false
                });
            }
        }
    }

    /// One round of the automatic leader rebalance (`auto.leader.rebalance.enable`); true when
    /// partitions were left for another round.
    async fn rebalance_leaders(&self) -> Result<bool, ControllerError> {
        let (_guard, image) = self.begin().await?;
        let (records, more) = crate::leadership::rebalance(&image);
        if !records.is_empty() {
            self.propose(records).await?;
        }
        Ok(more)
    }

    async fn fence_expired(
        &self,
        id: i32,
        session_timeout: Duration,
    ) -> Result<(), ControllerError> {
        let (_guard, image) = self.begin().await?;
        let still_expired = self
            .sessions
            .lock()
            .get(&id)
            .is_none_or(|t| t.elapsed() > session_timeout);
        if !still_expired || image.brokers.get(&id).is_none_or(|b| b.fenced) {
            return Ok(());
        }
        tracing::info!(broker = id, "broker session expired: fencing it");
        let records = controller::fence(&image, id, self.config.unclean_leader_election);
        self.propose(records).await.map(|_| ())
    }

    pub fn session_alive(&self, id: i32) -> bool {
        let timeout = Duration::from_millis(self.config.broker_session_timeout_ms);
        self.sessions
            .lock()
            .get(&id)
            .is_some_and(|t| t.elapsed() <= timeout)
    }

    pub fn touch_session(&self, id: i32) {
        self.sessions.lock().insert(id, Instant::now());
    }

    pub fn last_fetch_ms(&self, id: u64) -> i64 {
        self.progress
            .last_fetch_ms
            .lock()
            .get(&id)
            .copied()
            .unwrap_or(-1)
    }

    pub fn note_caught_up(&self, id: u64, at: i64) {
        self.caught_up_ms.lock().insert(id, at);
    }

    pub fn caught_up_ms(&self, id: u64) -> i64 {
        self.caught_up_ms.lock().get(&id).copied().unwrap_or(-1)
    }

    pub async fn shutdown(&self) {
        self.stop.cancel();
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }
}

/// The Raft node as the controller's operations see it.
impl MetadataQuorum for Node {
    fn committed(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image_rx.clone()
    }

    fn view(&self) -> QuorumView {
        QuorumView {
            node_id: self.config.node_id,
            leader: self.leader(),
            voters: self.config.voters.keys().copied().collect(),
        }
    }

    fn begin(&self) -> futures::future::BoxFuture<'_, Result<Operation<'_>, ControllerError>> {
        Box::pin(async move {
            let (exclusive, image) = Node::begin(self).await?;
            Ok(Operation::new(image, exclusive))
        })
    }

    fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> futures::future::BoxFuture<'_, Result<CommandOutcome, ControllerError>> {
        Box::pin(Node::propose(self, records))
    }
}

pub fn now() -> i64 {
    now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(election: u64, fetch: u64) -> QuorumConfig {
        QuorumConfig {
            node_id: 1,
            cluster_id: None,
            voters: BTreeMap::new(),
            log_dir: std::path::PathBuf::new(),
            election_timeout_ms: election,
            fetch_timeout_ms: fetch,
            request_timeout_ms: 2000,
            broker_session_timeout_ms: 9000,
            unclean_leader_election: false,
            inter_broker_listener: "PLAINTEXT".into(),
            auto_leader_rebalance: false,
            leader_imbalance_check_interval_ms: 300_000,
            dialer: Default::default(),
        }
    }

    #[test]
    fn a_follower_stands_for_election_after_the_fetch_timeout() {
        // Kafka's defaults: fetch timeout 2 s, election timeout 1 s.
        let c = raft_config(&config(1000, 2000), "c").unwrap();
        assert_eq!(
            (c.election_timeout_min, c.election_timeout_max),
            (2000, 3000)
        );
        assert!(c.heartbeat_interval < c.election_timeout_min / 2);
        let c = raft_config(&config(400, 5000), "c").unwrap();
        assert_eq!(
            (c.election_timeout_min, c.election_timeout_max),
            (5000, 5400)
        );
    }

    #[test]
    fn the_leader_is_lost_once_unheard_for_the_fetch_timeout() {
        let now = Instant::now();
        let timeout = Duration::from_secs(2);
        assert!(!leader_alive(None, now, timeout));
        assert!(leader_alive(Some(now), now, timeout));
        assert!(leader_alive(Some(now), now + timeout, timeout));
        assert!(!leader_alive(
            Some(now),
            now + timeout + Duration::from_millis(1),
            timeout
        ));
    }
}
