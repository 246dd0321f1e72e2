//! Partition state and the set of partitions this broker hosts. A partition owns its log and
//! its replica state: the role the metadata image gives this broker (leader or follower, with
//! the leader epoch), and as leader the followers' progress, the ISR and the high watermark
//! (HW = the smallest log end offset in the ISR). The HW is checkpointed and restored on open,
//! never taken from the log end: records above it may still be truncated by a new leader.
//! As leader a partition counts its ISR changes in the broker's shrink / expansion counters,
//! whoever made them; it caches its topic's byte counters for the request path.
//!
//! The only place that names partition directories (`<topic>-<partition>` under the log dir).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use strata_log::batch::{self, ProducedBy};
use strata_log::{AppendInfo, BatchHeader, FileLog, LogConfig, LogError, PartitionLog};
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::metrics::{BrokerMetrics, IsrCounters, TopicTraffic};

/// File in the log directory holding every hosted partition's high watermark (Kafka's name
/// and format).
const HW_CHECKPOINT_FILE: &str = "replication-offset-checkpoint";

/// A follower as its leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset (its last fetch offset); -1 before its first fetch.
    pub log_end_offset: i64,
    /// The follower's log start offset as its last fetch gave it; -1 before its first fetch.
    pub log_start_offset: i64,
    /// Last time its fetch reached the leader's log end offset.
    pub last_caught_up_ms: i64,
    pub last_fetch_ms: i64,
}

/// This broker's role for a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not assigned yet, or offline.
    None,
    Leader {
        replicas: Vec<i32>,
        isr: Vec<i32>,
        partition_epoch: i32,
        followers: BTreeMap<i32, FollowerProgress>,
        /// An ISR change sent to the controller and not yet answered.
        pending_isr: Option<Vec<i32>>,
    },
    Follower {
        leader: i32,
    },
}

/// One hosted partition.
pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    pub log: Arc<dyn PartitionLog>,
    dir: PathBuf,
    node_id: i32,
    leader_epoch: AtomicI32,
    /// As leader: the log end offset when this leader epoch began (where its own records start).
    leader_epoch_start: AtomicI64,
    high_watermark: AtomicI64,
    is_leader: AtomicBool,
    role: Mutex<Role>,
    /// The HW, for waiters (acks=all, commits).
    hw_watch: watch::Sender<i64>,
    /// Its topic's byte counters, looked up on first use.
    traffic: OnceLock<TopicTraffic>,
    /// The broker's ISR shrink / expansion counters.
    isr_counters: IsrCounters,
}

/// Why a leader's append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Leadership moved between the request's check and its append: the batch would carry
    /// the follower's epoch into a log the new leader never wrote (the fetcher could then not
    /// tell the two logs apart, and would never catch up).
    #[error("this broker no longer leads {topic}-{partition} (leader epoch {epoch})")]
    NotLeader {
        topic: String,
        partition: i32,
        epoch: i32,
    },
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A leader's append: what the log wrote and the leader epoch it was written at. Its
/// replication counts only while this broker still leads at that epoch
/// (`cluster::wait_high_watermark`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderAppend {
    pub info: AppendInfo,
    pub leader_epoch: i32,
}

/// An ISR change the leader wants the controller to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// An ISR change of a partition, on its way to the controller (`cluster::isr` sends it).
pub struct IsrRequest {
    pub partition: Arc<Partition>,
    pub proposal: IsrProposal,
}

/// What a follower's fetch position did at the leader.
pub struct FollowerFetch {
    pub high_watermark: i64,
    /// An ISR expansion to propose.
    pub expand: Option<IsrProposal>,
}

impl Partition {
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// Whether this broker leads the partition now.
    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Acquire)
    }

    pub fn role(&self) -> Role {
        self.role.lock().clone()
    }

    /// Whether this broker follows the partition now (it may serve consumers up to its HW).
    pub fn is_follower(&self) -> bool {
        matches!(&*self.role.lock(), Role::Follower { .. })
    }

    /// The id of this broker.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The ISR as the leader knows it (empty on a follower).
    pub fn isr(&self) -> Vec<i32> {
        match &*self.role.lock() {
            Role::Leader { isr, .. } => isr.clone(),
            _ => Vec::new(),
        }
    }

    /// As leader: the sizes of the replica set and of the ISR (None on a follower).
    pub fn leader_replica_counts(&self) -> Option<(usize, usize)> {
        match &*self.role.lock() {
            Role::Leader { replicas, isr, .. } => Some((replicas.len(), isr.len())),
            _ => None,
        }
    }

    /// Its topic's byte counters (created in `metrics` on the first call, cached after).
    pub fn traffic(&self, metrics: &BrokerMetrics) -> &TopicTraffic {
        self.traffic
            .get_or_init(|| metrics.topic_traffic(&self.topic))
    }

    /// Watches the high watermark.
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.hw_watch.subscribe()
    }

    /// Becomes leader at `epoch` with the image's replicas and ISR. Followers start unknown;
    /// those in the ISR count as caught up now (as Kafka does), so they are not shrunk before
    /// their first fetch. Returns true when the role or epoch changed.
    pub fn make_leader(
        &self,
        epoch: i32,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        now_ms: i64,
    ) -> bool {
        let mut role = self.role.lock();
        if let Role::Leader {
            replicas: r,
            isr: i,
            partition_epoch: pe,
            followers,
            pending_isr,
        } = &mut *role
        {
            if self.leader_epoch() == epoch {
                // Same leadership: take the image's ISR when it is newer.
                if partition_epoch > *pe {
                    *pe = partition_epoch;
                    // The controller changed the ISR (a fenced follower left it, or the answer
                    // to this leader's AlterPartition arrived through the image first).
                    self.isr_counters.count(i, isr);
                    *i = isr.to_vec();
                    *r = replicas.to_vec();
                    *pending_isr = None;
                    // A reassignment removed replicas: their progress no longer counts.
                    followers.retain(|id, _| replicas.contains(id));
                    for id in replicas {
                        if *id != self.node_id {
                            followers.entry(*id).or_insert(FollowerProgress {
                                log_end_offset: -1,
                                log_start_offset: -1,
                                last_caught_up_ms: now_ms,
                                last_fetch_ms: -1,
                            });
                        }
                    }
                    drop(role);
                    self.maybe_advance_high_watermark();
                }
                return false;
            }
        }
        let followers = replicas
            .iter()
            .filter(|id| **id != self.node_id)
            .map(|id| {
                (
                    *id,
                    FollowerProgress {
                        log_end_offset: -1,
                        log_start_offset: -1,
                        last_caught_up_ms: now_ms,
                        last_fetch_ms: -1,
                    },
                )
            })
            .collect();
        *role = Role::Leader {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            partition_epoch,
            followers,
            pending_isr: None,
        };
        self.leader_epoch.store(epoch, Ordering::Release);
        self.leader_epoch_start
            .store(self.log_end_offset(), Ordering::Release);
        self.is_leader.store(true, Ordering::Release);
        drop(role);
        self.maybe_advance_high_watermark();
        true
    }

    /// Becomes a follower of `leader` at `epoch`. Returns true when the role or epoch changed.
    pub fn make_follower(&self, leader: i32, epoch: i32) -> bool {
        let mut role = self.role.lock();
        let same = matches!(&*role, Role::Follower { leader: l } if *l == leader)
            && self.leader_epoch() == epoch;
        if same {
            return false;
        }
        *role = Role::Follower { leader };
        self.is_leader.store(false, Ordering::Release);
        self.leader_epoch.store(epoch, Ordering::Release);
        true
    }

    /// Offline or unassigned: serves nothing.
    pub fn make_offline(&self, epoch: i32) {
        *self.role.lock() = Role::None;
        self.is_leader.store(false, Ordering::Release);
        self.leader_epoch.fetch_max(epoch, Ordering::AcqRel);
    }

    /// Appends client batches as leader at the current leader epoch. The role is held for
    /// the append (Kafka takes the read side of its leader-and-ISR lock): a request checked while
    /// this broker led is refused if it became a follower before the append, and a change of
    /// role waits for an append in progress (the new follower's fetcher then starts after it,
    /// and the leader's epoch check truncates it).
    pub fn append_as_leader(
        &self,
        records: &mut [u8],
        now_ms: i64,
    ) -> Result<LeaderAppend, AppendError> {
        let role = self.role.lock();
        self.check_leader(&role)?;
        let leader_epoch = self.leader_epoch();
        let info = self.log.append_as_leader(records, leader_epoch, now_ms)?;
        drop(role);
        self.maybe_advance_high_watermark();
        Ok(LeaderAppend { info, leader_epoch })
    }

    fn check_leader(&self, role: &Role) -> Result<(), AppendError> {
        match role {
            Role::Leader { .. } => Ok(()),
            _ => Err(AppendError::NotLeader {
                topic: self.topic.clone(),
                partition: self.index,
                epoch: self.leader_epoch(),
            }),
        }
    }

    /// Runs `apply` (a fetch answer's append, truncation or HW move) with the role held, if
    /// this broker still follows `leader` at `epoch`, the leader epoch the fetch was sent with;
    /// `None` otherwise. An answer that arrives after the partition changed role or epoch is
    /// dropped, as Kafka's fetcher drops a partition's data once its fetch state moved: applied
    /// to a log that now leads, it would put the old leader's batches after the new epoch's
    /// start; applied under a newer leader, it could be truncation advice from the old one.
    /// A change of role waits for an answer being applied.
    pub fn as_follower_of<T>(
        &self,
        leader: i32,
        epoch: i32,
        apply: impl FnOnce() -> T,
    ) -> Option<T> {
        let role = self.role.lock();
        let following = matches!(&*role, Role::Follower { leader: l } if *l == leader);
        if !following || self.leader_epoch() != epoch {
            return None;
        }
        let result = apply();
        drop(role);
        Some(result)
    }

    /// Appends a follower's fetched batches at their offsets (call inside `as_follower_of`).
    pub fn append_fetched(&self, records: &[u8]) -> Result<AppendInfo, LogError> {
        self.log.append_with_offsets(records)
    }

    /// A follower's view of the HW: the leader's, bounded by its own log end (call inside
    /// `as_follower_of`). Returns true when it moved (consumers reading from this follower may
    /// see more).
    pub fn follower_high_watermark(&self, leader_hw: i64) -> bool {
        let hw = leader_hw.min(self.log_end_offset());
        if hw > self.high_watermark() {
            self.set_high_watermark(hw);
            return true;
        }
        false
    }

    fn set_high_watermark(&self, hw: i64) {
        self.high_watermark.store(hw, Ordering::Release);
        self.hw_watch.send_replace(hw);
    }

    /// As leader: HW = the smallest log end offset in the maximal ISR, the ISR plus a follower
    /// whose expansion is on its way to the controller (KIP-841; followers of unknown position
    /// hold it where it is). Counting the joining follower before the controller commits it
    /// keeps the HW within its log: once committed it may be elected (a reassignment's new
    /// replica, a preferred election right after a restart), and a record acknowledged beyond
    /// its log end would be truncated from the others by its epoch. Never moves back. Returns
    /// true when it moved.
    pub fn maybe_advance_high_watermark(&self) -> bool {
        let role = self.role.lock();
        let Role::Leader {
            isr,
            followers,
            pending_isr,
            ..
        } = &*role
        else {
            return false;
        };
        let mut hw = self.log_end_offset();
        for id in isr.iter().chain(pending_isr.iter().flatten()) {
            if *id == self.node_id {
                continue;
            }
            match followers.get(id) {
                Some(f) if f.log_end_offset >= 0 => hw = hw.min(f.log_end_offset),
                _ => hw = hw.min(self.high_watermark()),
            }
        }
        if hw > self.high_watermark() {
            self.set_high_watermark(hw);
            return true;
        }
        false
    }

    /// Records a follower's fetch at `fetch_offset` (its log end offset; `log_start_offset`
    /// is the follower's own). Returns the HW to send it and an ISR expansion when the
    /// follower caught up, is not in the ISR and is `eligible` (an unfenced broker not in
    /// controlled shutdown, as the metadata image shows it).
    pub fn record_follower_fetch(
        &self,
        follower: i32,
        fetch_offset: i64,
        log_start_offset: i64,
        eligible: bool,
        now_ms: i64,
    ) -> Option<FollowerFetch> {
        let leo = self.log_end_offset();
        let expand = {
            let mut role = self.role.lock();
            let Role::Leader {
                isr,
                followers,
                partition_epoch,
                pending_isr,
                replicas,
            } = &mut *role
            else {
                return None;
            };
            if !replicas.contains(&follower) {
                return None;
            }
            let progress = followers.entry(follower).or_insert(FollowerProgress {
                log_end_offset: -1,
                log_start_offset: -1,
                last_caught_up_ms: -1,
                last_fetch_ms: -1,
            });
            progress.log_end_offset = fetch_offset.min(leo);
            progress.log_start_offset = log_start_offset;
            progress.last_fetch_ms = now_ms;
            if fetch_offset >= leo {
                progress.last_caught_up_ms = now_ms;
            }
            // Kafka's rule (KAFKA-7128): in sync at the HW and holding every record of earlier
            // epochs; a leader elected a moment ago may serve an HW below records its
            // predecessor committed, and a follower short of them must not join (and be
            // electable) on that HW alone.
            let in_sync = fetch_offset >= self.high_watermark()
                && fetch_offset >= self.leader_epoch_start.load(Ordering::Acquire);
            if !isr.contains(&follower) && in_sync && eligible && pending_isr.is_none() {
                let mut new_isr = isr.clone();
                new_isr.push(follower);
                new_isr.sort_unstable();
                *pending_isr = Some(new_isr.clone());
                Some(IsrProposal {
                    leader_epoch: self.leader_epoch(),
                    partition_epoch: *partition_epoch,
                    isr: new_isr,
                })
            } else {
                None
            }
        };
        self.maybe_advance_high_watermark();
        Some(FollowerFetch {
            high_watermark: self.high_watermark(),
            expand,
        })
    }

    /// As leader: followers in the ISR that have not caught up within `lag_max_ms` leave it.
    pub fn isr_shrink(&self, now_ms: i64, lag_max_ms: i64) -> Option<IsrProposal> {
        let mut role = self.role.lock();
        let Role::Leader {
            isr,
            followers,
            partition_epoch,
            pending_isr,
            ..
        } = &mut *role
        else {
            return None;
        };
        if pending_isr.is_some() {
            return None;
        }
        let leo = self.log.log_end_offset();
        let lagging: Vec<i32> = isr
            .iter()
            .copied()
            .filter(|id| *id != self.node_id)
            .filter(|id| {
                followers.get(id).is_none_or(|f| {
                    f.log_end_offset < leo && now_ms - f.last_caught_up_ms > lag_max_ms
                })
            })
            .collect();
        if lagging.is_empty() {
            return None;
        }
        let new_isr: Vec<i32> = isr
            .iter()
            .copied()
            .filter(|id| !lagging.contains(id))
            .collect();
        *pending_isr = Some(new_isr.clone());
        Some(IsrProposal {
            leader_epoch: self.leader_epoch(),
            partition_epoch: *partition_epoch,
            isr: new_isr,
        })
    }

    /// The controller's answer to `proposal`: the partition as it now stands, or None when the
    /// controller refused it (a later fetch or shrink check may propose again). The answer ends
    /// the proposal only while it is still the pending one: an answer that arrives after the
    /// image settled it, or after a newer proposal replaced it, changes nothing but the ISR a
    /// newer partition epoch brings.
    pub fn isr_answer(&self, proposal: &IsrProposal, applied: Option<(Vec<i32>, i32)>) {
        {
            let mut role = self.role.lock();
            let Role::Leader {
                isr,
                partition_epoch,
                pending_isr,
                ..
            } = &mut *role
            else {
                return;
            };
            if pending_isr.as_ref() == Some(&proposal.isr)
                && *partition_epoch == proposal.partition_epoch
                && self.leader_epoch() == proposal.leader_epoch
            {
                *pending_isr = None;
            }
            if let Some((new_isr, epoch)) = applied {
                if epoch >= *partition_epoch {
                    if epoch > *partition_epoch {
                        // A proposal made at the older partition epoch can no longer commit.
                        *pending_isr = None;
                    }
                    self.isr_counters.count(isr, &new_isr);
                    *isr = new_isr;
                    *partition_epoch = epoch;
                }
            }
        }
        self.maybe_advance_high_watermark();
    }

    /// Appends a mirror's batches at their own offsets (see [`crate::mirror_target`]): whole
    /// batches already below the log end offset are skipped as re-sends; the rest must start
    /// at or after it. Records, compression and timestamps are kept; each batch gets this
    /// partition's leader epoch. An idempotent batch keeps its producer id, epoch and
    /// sequence and becomes this partition's producer state, as a follower's fetched batch
    /// does: a producer that moves here at a failover and sends again a batch the mirror
    /// already carried gets the original offsets back instead of a second copy (producer ids
    /// this cluster hands out after its promotion start above the floor the promotion sets, so
    /// they do not collide with the source's). A transactional batch loses its producer
    /// identity and transaction markers are not copied (this broker keeps no transaction
    /// state), which leaves the markers' offsets as gaps. Returns the first batch's base
    /// offset; `duplicate` when nothing was new.
    pub fn append_preserving(&self, records: &[u8]) -> Result<LeaderAppend, AppendError> {
        // Held to the append, as in `append_as_leader`.
        let role = self.role.lock();
        self.check_leader(&role)?;
        let end = self.log.log_end_offset();
        let epoch = self.leader_epoch();
        let mut first: Option<BatchHeader> = None;
        let mut kept: Vec<u8> = Vec::with_capacity(records.len());
        let mut skipped = 0u64;
        // The mirror's client id is a claim anyone can make: its batches are checked record by
        // record like any producer's, only their offset ranges are taken as the source has them.
        for b in batch::validate_produced(records, ProducedBy::Mirror)? {
            let (pos, h) = (b.position, b.header);
            first.get_or_insert(h);
            if h.last_offset() < end {
                skipped += h.records_count as u64;
                continue;
            }
            if h.base_offset < end {
                return Err(LogError::InvalidRecord(format!(
                    "batch {}..={} straddles the log end offset {end}",
                    h.base_offset,
                    h.last_offset()
                ))
                .into());
            }
            if h.is_control() {
                continue;
            }
            let at = kept.len();
            kept.extend_from_slice(&records[pos..pos + h.total_size()]);
            let copy = &mut kept[at..];
            batch::set_partition_leader_epoch(copy, epoch);
            if h.is_transactional() {
                batch::clear_producer(copy);
            }
        }
        let first = first.ok_or_else(|| LogError::CorruptBatch("no record batch".into()))?;
        if kept.is_empty() {
            tracing::debug!(topic = %self.topic, partition = self.index, skipped,
                "nothing new in the mirror's append (re-sent batches or markers only)");
            let info = AppendInfo {
                base_offset: first.base_offset,
                last_offset: first.last_offset(),
                log_append_time: -1,
                record_count: 0,
                duplicate: true,
            };
            return Ok(LeaderAppend {
                info,
                leader_epoch: epoch,
            });
        }
        let mut info = self.log.append_with_offsets(&kept)?;
        drop(role);
        self.maybe_advance_high_watermark();
        info.base_offset = first.base_offset;
        Ok(LeaderAppend {
            info,
            leader_epoch: epoch,
        })
    }

    /// Whether `proposal` is still this leader's pending ISR change (neither answered nor
    /// settled by the image since).
    pub fn isr_pending(&self, proposal: &IsrProposal) -> bool {
        let role = self.role.lock();
        matches!(&*role, Role::Leader { pending_isr: Some(pending), partition_epoch, .. }
            if *pending == proposal.isr && *partition_epoch == proposal.partition_epoch)
            && self.leader_epoch() == proposal.leader_epoch
    }

    /// After truncation or DeleteRecords the high watermark stays within the log.
    pub fn clamp_high_watermark(&self) {
        let leo = self.log.log_end_offset();
        let start = self.log.log_start_offset();
        let hw = self.high_watermark().clamp(start, leo);
        if hw != self.high_watermark() {
            self.set_high_watermark(hw);
        }
    }

    /// Applies a tail truncation ordered through the controller: records written under an
    /// epoch below the truncation's leader epoch at offsets from its offset on are removed (a
    /// batch containing the offset goes whole, as in every truncation); records of that epoch
    /// or later were written after the truncation and stay, so applying it again (every image
    /// that carries it, a restart) changes nothing. Returns true when the log was truncated.
    pub fn apply_truncation(
        &self,
        truncation: strata_controller::LogTruncation,
    ) -> Result<bool, LogError> {
        // Held as a leader's append holds it: the truncation and a client append at the old
        // epoch do not interleave.
        let _role = self.role.lock();
        // Where the records of epochs below the truncation's end: the start of the first epoch
        // at or above it, or the log end when the log holds none (records written under epochs
        // the log never saw a batch of, e.g. after a restart bumped the epoch, count as below).
        let end_before = match self.log.latest_epoch() {
            Some(latest) if latest >= truncation.leader_epoch => {
                self.log
                    .end_offset_for_epoch(truncation.leader_epoch.saturating_sub(1))
                    .1
            }
            _ => self.log_end_offset(),
        };
        let end_before = end_before.min(self.log_end_offset());
        if end_before <= truncation.offset {
            return Ok(false);
        }
        self.truncate_to(truncation.offset)?;
        Ok(true)
    }

    /// Applies a producer reset ordered through the controller (`strata.producer.reset`): the
    /// producers whose newest batch was written under an epoch below `leader_epoch` (now or
    /// fetched later) are released from their sequences, their retries still answered as
    /// duplicates (see `strata_log::Log::reset_producers_before`). Applying it again (every image that
    /// carries it) changes nothing; after a restart the log rebuilt that state from its
    /// batches, so the next image applies it anew. Returns true when it was new here.
    pub fn apply_producer_reset(&self, leader_epoch: i32) -> bool {
        self.log.reset_producers_before(leader_epoch)
    }

    /// A follower's truncation (divergence or a leader behind it).
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        self.log.truncate_to(offset)?;
        self.clamp_high_watermark();
        Ok(())
    }
}

/// Identifies a partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// The partitions this broker hosts, plus the signal fetchers wait on for new data.
pub struct PartitionSet {
    log_dir: PathBuf,
    node_id: i32,
    /// High watermarks read from the checkpoint at start, used when a partition opens.
    checkpointed: Mutex<HashMap<TopicPartition, i64>>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// Woken on every append; long-polling fetches wait on it.
    pub appended: Notify,
    /// Given to every partition opened.
    isr_counters: IsrCounters,
}

impl PartitionSet {
    pub fn new(log_dir: &Path, node_id: i32) -> PartitionSet {
        PartitionSet {
            log_dir: log_dir.to_path_buf(),
            node_id,
            checkpointed: Mutex::new(read_hw_checkpoint(log_dir)),
            partitions: RwLock::new(HashMap::new()),
            appended: Notify::new(),
            isr_counters: IsrCounters::default(),
        }
    }

    /// Partitions opened from now on count their ISR changes in `counters`.
    pub fn with_isr_counters(mut self, counters: IsrCounters) -> PartitionSet {
        self.isr_counters = counters;
        self
    }

    fn dir_of(&self, topic: &str, partition: i32) -> PathBuf {
        self.log_dir.join(format!("{topic}-{partition}"))
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .get(&TopicPartition {
                topic: topic.to_string(),
                partition,
            })
            .cloned()
    }

    /// Opens (creating when missing) the logs of partitions `from..to` of a topic.
    pub fn open_partitions(
        &self,
        topic: &str,
        topic_id: Uuid,
        from: i32,
        to: i32,
        config: &LogConfig,
    ) -> Result<(), LogError> {
        for index in from..to {
            let key = TopicPartition {
                topic: topic.to_string(),
                partition: index,
            };
            if self.partitions.read().contains_key(&key) {
                continue;
            }
            let dir = self.dir_of(topic, index);
            let log = FileLog::open(&dir, config.clone())?;
            let epoch = log.latest_epoch().unwrap_or(0).max(0);
            // Never the log end: what is above the checkpointed HW may be truncated later.
            let hw = self
                .checkpointed
                .lock()
                .get(&key)
                .copied()
                .unwrap_or(0)
                .clamp(log.log_start_offset(), log.log_end_offset());
            let partition = Arc::new(Partition {
                topic: topic.to_string(),
                topic_id,
                index,
                log: Arc::new(log),
                dir,
                node_id: self.node_id,
                leader_epoch: AtomicI32::new(epoch),
                leader_epoch_start: AtomicI64::new(0),
                high_watermark: AtomicI64::new(hw),
                is_leader: AtomicBool::new(false),
                role: Mutex::new(Role::None),
                hw_watch: watch::channel(hw).0,
                traffic: OnceLock::new(),
                isr_counters: self.isr_counters.clone(),
            });
            self.partitions.write().insert(key, partition);
        }
        Ok(())
    }

    /// Drops one partition and deletes its directory (this broker is no longer a replica).
    pub fn remove_partition(&self, topic: &str, partition: i32) -> std::io::Result<()> {
        let key = TopicPartition {
            topic: topic.to_string(),
            partition,
        };
        let removed = self.partitions.write().remove(&key);
        let dir = removed.map_or_else(|| self.dir_of(topic, partition), |p| p.dir.clone());
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Partition directories on disk (`<topic>-<n>`) that are not open: leftovers of topics
    /// deleted or reassigned while this broker was down.
    pub fn unopened_dirs(&self) -> Vec<(String, i32)> {
        let Ok(entries) = std::fs::read_dir(&self.log_dir) else {
            return Vec::new();
        };
        let open = self.partitions.read();
        entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let (topic, n) = name.rsplit_once('-')?;
                let n: i32 = n.parse().ok()?;
                if topic.starts_with("__cluster_metadata") {
                    return None;
                }
                let key = TopicPartition {
                    topic: topic.to_string(),
                    partition: n,
                };
                (!open.contains_key(&key)).then(|| (topic.to_string(), n))
            })
            .collect()
    }

    /// Writes every open partition's HW to the checkpoint file (atomically).
    pub fn checkpoint_high_watermarks(&self) -> std::io::Result<()> {
        let mut entries: Vec<(TopicPartition, i64)> = self
            .partitions
            .read()
            .iter()
            .map(|(k, p)| (k.clone(), p.high_watermark()))
            .collect();
        entries.sort();
        let mut text = format!("0\n{}\n", entries.len());
        for (tp, hw) in &entries {
            text.push_str(&format!("{} {} {}\n", tp.topic, tp.partition, hw));
        }
        let path = self.log_dir.join(HW_CHECKPOINT_FILE);
        let tmp = self.log_dir.join(format!("{HW_CHECKPOINT_FILE}.tmp"));
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)
    }

    /// Drops every partition of a topic and deletes its directories.
    pub fn remove_topic(&self, topic: &str) -> std::io::Result<()> {
        let removed: Vec<Arc<Partition>> = {
            let mut map = self.partitions.write();
            let keys: Vec<_> = map.keys().filter(|k| k.topic == topic).cloned().collect();
            keys.into_iter().filter_map(|k| map.remove(&k)).collect()
        };
        for p in removed {
            // Readers may still hold the partition; unlinking open files is safe on Unix.
            match std::fs::remove_dir_all(&p.dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Applies a new log configuration to every partition of a topic.
    pub fn reconfigure(&self, topic: &str, config: &LogConfig) {
        for p in self.of_topic(topic) {
            p.log.set_config(config.clone());
        }
    }

    pub fn of_topic(&self, topic: &str) -> Vec<Arc<Partition>> {
        let mut v: Vec<_> = self
            .partitions
            .read()
            .values()
            .filter(|p| p.topic == topic)
            .cloned()
            .collect();
        v.sort_by_key(|p| p.index);
        v
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Periodic log maintenance (retention, compaction, time-based roll and flush).
    pub fn maintain(&self, now_ms: i64) {
        for p in self.all() {
            match p.log.maintain(now_ms) {
                Ok(report) => {
                    if report.segments_deleted > 0 || report.segments_compacted > 0 {
                        tracing::info!(
                            topic = %p.topic,
                            partition = p.index,
                            deleted = report.segments_deleted,
                            compacted = report.segments_compacted,
                            bytes = report.bytes_reclaimed,
                            "log maintenance"
                        );
                    }
                    p.clamp_high_watermark();
                }
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "log maintenance failed")
                }
            }
        }
    }

    /// Flushes every log (graceful shutdown).
    pub fn flush_all(&self) {
        for p in self.all() {
            if let Err(e) = p.log.flush() {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "flush failed");
            }
        }
    }
}

/// Reads Kafka's `replication-offset-checkpoint` (version, count, then `topic partition hw`).
fn read_hw_checkpoint(log_dir: &Path) -> HashMap<TopicPartition, i64> {
    let Ok(text) = std::fs::read_to_string(log_dir.join(HW_CHECKPOINT_FILE)) else {
        return HashMap::new();
    };
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let topic = parts.next()?.to_string();
            let partition = parts.next()?.parse().ok()?;
            let hw = parts.next()?.parse().ok()?;
            Some((TopicPartition { topic, partition }, hw))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isr_changes_from_the_controller_and_from_answers_are_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let counters = IsrCounters::default();
        let set = PartitionSet::new(dir.path(), 1).with_isr_counters(counters.clone());
        set.open_partitions("t", Uuid::new_v4(), 0, 1, &LogConfig::default())
            .unwrap();
        let p = set.get("t", 0).unwrap();
        let counts = || (counters.shrinks.get(), counters.expands.get());
        // Becoming leader is no ISR change.
        assert!(p.make_leader(1, 1, &[1, 2, 3], &[1, 2, 3], 0));
        assert_eq!(counts(), (0, 0));
        assert_eq!(p.leader_replica_counts(), Some((3, 3)));
        // The controller fenced follower 2: a newer partition epoch in the image.
        assert!(!p.make_leader(1, 2, &[1, 2, 3], &[1, 3], 0));
        assert_eq!(counts(), (1, 0));
        assert_eq!(p.leader_replica_counts(), Some((3, 2)));
        // This leader's expansion, answered by the controller, then seen again in the image.
        let expansion = IsrProposal {
            leader_epoch: 1,
            partition_epoch: 2,
            isr: vec![1, 2, 3],
        };
        p.isr_answer(&expansion, Some((vec![1, 2, 3], 3)));
        assert_eq!(counts(), (1, 1));
        assert!(!p.make_leader(1, 3, &[1, 2, 3], &[1, 2, 3], 0));
        assert_eq!(counts(), (1, 1));
        // A follower counts nothing and has no leader view.
        assert!(p.make_follower(2, 2));
        assert_eq!(p.leader_replica_counts(), None);
    }

    /// One single-record batch (offset 0 in the batch; the log assigns the offset).
    fn one_record() -> Vec<u8> {
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let record = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 1,
            key: None,
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: Default::default(),
        };
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            [record].iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    /// Partition 0 of a new one-partition `topic` on node `node`, its log in `dir`.
    fn hosted(dir: &tempfile::TempDir, node: i32, topic: &str) -> Arc<Partition> {
        let set = PartitionSet::new(dir.path(), node);
        set.open_partitions(topic, Uuid::new_v4(), 0, 1, &LogConfig::default())
            .unwrap();
        set.get(topic, 0).unwrap()
    }

    #[test]
    fn a_partition_that_became_a_follower_refuses_a_leader_append() {
        let dir = tempfile::tempdir().unwrap();
        let p = hosted(&dir, 1, "f");
        assert!(p.make_leader(1, 1, &[1, 2], &[1, 2], 0));
        p.append_as_leader(&mut one_record(), 1).unwrap();
        // A request checked while this broker led reaches the log after the new leader took
        // over: it is refused, and nothing is written at the follower's epoch.
        assert!(p.make_follower(2, 2));
        let refused = p.append_as_leader(&mut one_record(), 1).unwrap_err();
        assert!(
            matches!(refused, AppendError::NotLeader { epoch: 2, .. }),
            "{refused}"
        );
        let preserved = p.append_preserving(&one_record()).unwrap_err();
        assert!(
            matches!(preserved, AppendError::NotLeader { .. }),
            "{preserved}"
        );
        assert_eq!((p.log_end_offset(), p.log.latest_epoch()), (1, Some(1)));
    }

    #[test]
    fn a_fetch_answer_applies_only_while_following_its_leader_at_its_epoch() {
        let dir = tempfile::tempdir().unwrap();
        // Node 1's log, whose batches node 2 fetches.
        let leader_dir = tempfile::tempdir().unwrap();
        let leader = hosted(&leader_dir, 1, "g");
        assert!(leader.make_leader(1, 1, &[1, 2], &[1, 2], 0));
        leader.append_as_leader(&mut one_record(), 1).unwrap();
        let fetched = leader.log.read(0, 1 << 20, 1).unwrap().bytes;

        let p = hosted(&dir, 2, "g");
        assert!(p.make_follower(1, 1));
        // Sent at epoch 1 to node 1, answered while that still holds: applied.
        let applied = p.as_follower_of(1, 1, || p.append_fetched(&fetched));
        assert!(matches!(applied, Some(Ok(_))));
        assert_eq!(p.log_end_offset(), 1);
        // This broker became the leader at epoch 2 while the next answer was on its way: the
        // old leader's batches do not land after the new epoch's start.
        assert!(p.make_leader(2, 2, &[1, 2], &[1, 2], 0));
        assert!(p
            .as_follower_of(1, 1, || p.append_fetched(&fetched))
            .is_none());
        // Following node 1 again at a newer epoch: an answer to the older fetch is dropped too.
        assert!(p.make_follower(1, 3));
        assert!(p.as_follower_of(1, 2, || p.truncate_to(0)).is_none());
        assert!(p.as_follower_of(3, 3, || p.truncate_to(0)).is_none());
        assert_eq!(p.log_end_offset(), 1);
        assert!(p.as_follower_of(1, 3, || p.truncate_to(0)).is_some());
        assert_eq!(p.log_end_offset(), 0);
    }

    #[test]
    fn an_ineligible_follower_is_not_proposed_and_does_not_hold_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let p = hosted(&dir, 1, "e");
        assert!(p.make_leader(1, 1, &[1, 2, 3], &[1, 2], 0));
        for _ in 0..3 {
            p.append_as_leader(&mut one_record(), 1).unwrap();
        }
        p.record_follower_fetch(2, 3, 0, true, 1).unwrap();
        // Follower 3 caught up, but it is fenced or shutting down: no expansion.
        let fetched = p.record_follower_fetch(3, 3, 0, false, 1).unwrap();
        assert!(fetched.expand.is_none());
        p.append_as_leader(&mut one_record(), 2).unwrap();
        assert_eq!(
            p.record_follower_fetch(2, 4, 0, true, 2)
                .unwrap()
                .high_watermark,
            4,
            "the HW follows the ISR alone"
        );
        // Eligible again, it joins as usual.
        let joined = p.record_follower_fetch(3, 4, 0, true, 3).unwrap();
        assert_eq!(joined.expand.unwrap().isr, vec![1, 2, 3]);
    }

    #[test]
    fn a_joining_follower_holds_the_high_watermark_before_the_controller_commits_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = hosted(&dir, 1, "j");
        assert!(p.make_leader(1, 1, &[1, 2, 3], &[1, 2], 0));
        for _ in 0..3 {
            p.append_as_leader(&mut one_record(), 1).unwrap();
        }
        p.record_follower_fetch(2, 3, 0, true, 1).unwrap();
        assert_eq!(p.high_watermark(), 3);
        // Follower 3 reached the HW: its expansion goes to the controller.
        let joined = p.record_follower_fetch(3, 3, 0, true, 1).unwrap();
        let proposal = joined.expand.unwrap();
        assert_eq!(proposal.isr, vec![1, 2, 3]);
        assert!(p.isr_pending(&proposal));
        // More records, which follower 2 fetches and follower 3 does not yet: the HW waits for
        // follower 3 (the controller may commit it and elect it), as it would in the ISR.
        p.append_as_leader(&mut one_record(), 2).unwrap();
        p.append_as_leader(&mut one_record(), 2).unwrap();
        assert_eq!(
            p.record_follower_fetch(2, 5, 0, true, 2)
                .unwrap()
                .high_watermark,
            3
        );
        assert_eq!(
            p.record_follower_fetch(3, 5, 0, true, 2)
                .unwrap()
                .high_watermark,
            5
        );
        // An answer to another proposal (an older one, say) leaves this one pending.
        let other = IsrProposal {
            isr: vec![1, 2],
            ..proposal.clone()
        };
        p.isr_answer(&other, None);
        assert!(p.isr_pending(&proposal));
        // The controller refused it: it holds the HW no more.
        p.isr_answer(&proposal, None);
        assert!(!p.isr_pending(&proposal));
        p.append_as_leader(&mut one_record(), 3).unwrap();
        assert_eq!(
            p.record_follower_fetch(2, 6, 0, true, 3)
                .unwrap()
                .high_watermark,
            6
        );
        // Proposed again, then settled by the image (a newer partition epoch) instead of an
        // answer: no longer pending, and a late answer to it changes nothing.
        let again = p
            .record_follower_fetch(3, 6, 0, true, 4)
            .unwrap()
            .expand
            .unwrap();
        assert!(!p.make_leader(1, 2, &[1, 2, 3], &[1, 2, 3], 4));
        assert!(!p.isr_pending(&again));
        p.isr_answer(&again, None);
        assert_eq!(p.isr(), vec![1, 2, 3]);
    }

    #[test]
    fn a_follower_short_of_the_leaders_epoch_start_does_not_join_the_isr() {
        // Node 2's log with three records, fetched by node 1 as a follower (its HW stays 0).
        let other_dir = tempfile::tempdir().unwrap();
        let other = hosted(&other_dir, 2, "e");
        assert!(other.make_leader(1, 1, &[1, 2], &[2], 0));
        for _ in 0..3 {
            other.append_as_leader(&mut one_record(), 1).unwrap();
        }
        let fetched = other.log.read(0, 1 << 20, 3).unwrap().bytes;
        let dir = tempfile::tempdir().unwrap();
        let p = hosted(&dir, 1, "e");
        assert!(p.make_follower(2, 1));
        p.as_follower_of(2, 1, || p.append_fetched(&fetched))
            .unwrap()
            .unwrap();
        assert_eq!((p.log_end_offset(), p.high_watermark()), (3, 0));
        // Elected with follower 2 in the ISR and not yet heard from: the HW stays at 0, below
        // this epoch's start (3).
        assert!(p.make_leader(2, 2, &[1, 2, 3], &[1, 2], 0));
        assert_eq!(p.high_watermark(), 0);
        // Follower 3 at offset 1 is at the HW but short of records of earlier epochs.
        assert!(p
            .record_follower_fetch(3, 1, 0, true, 1)
            .unwrap()
            .expand
            .is_none());
        let joined = p.record_follower_fetch(3, 3, 0, true, 1).unwrap();
        assert_eq!(joined.expand.unwrap().isr, vec![1, 2, 3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_acks_all_wait_ends_when_leadership_moves_even_if_the_hw_then_passes_it() {
        use crate::cluster::{wait_high_watermark, HwWait};
        use std::time::Duration;
        // The new leader's (node 2) log: another record at offset 0, at epoch 2.
        let other_dir = tempfile::tempdir().unwrap();
        let other = hosted(&other_dir, 2, "w");
        assert!(other.make_leader(2, 2, &[1, 2], &[2], 0));
        other.append_as_leader(&mut one_record(), 1).unwrap();
        let theirs = other.log.read(0, 1 << 20, 1).unwrap().bytes;

        let dir = tempfile::tempdir().unwrap();
        let p = hosted(&dir, 1, "w");
        assert!(p.make_leader(1, 1, &[1, 2], &[1, 2], 0));
        let ours = p.append_as_leader(&mut one_record(), 1).unwrap();
        assert_eq!((ours.info.last_offset, ours.leader_epoch), (0, 1));
        let waiter = {
            let p = p.clone();
            tokio::spawn(async move {
                wait_high_watermark(&p, 1, ours.leader_epoch, Duration::from_secs(10)).await
            })
        };
        // Node 2 takes over without the record; this broker follows it, truncates its record
        // away, fetches node 2's record at the same offset and learns node 2's HW: the HW
        // passes offset 0, which now holds another record.
        assert!(p.make_follower(2, 2));
        p.as_follower_of(2, 2, || {
            p.truncate_to(0).unwrap();
            p.append_fetched(&theirs).unwrap();
            p.follower_high_watermark(1);
        })
        .unwrap();
        assert_eq!(p.high_watermark(), 1);
        assert_eq!(waiter.await.unwrap(), HwWait::NotLeader);
        // Leading again at a later epoch does not revive the wait either.
        assert!(p.make_leader(3, 3, &[1, 2], &[1], 0));
        assert_eq!(
            wait_high_watermark(&p, 1, ours.leader_epoch, Duration::from_secs(1)).await,
            HwWait::NotLeader
        );
    }

    #[test]
    fn a_tail_truncation_removes_the_older_epochs_tail_once() {
        let dir = tempfile::tempdir().unwrap();
        let set = PartitionSet::new(dir.path(), 1);
        set.open_partitions("m", Uuid::new_v4(), 0, 1, &LogConfig::default())
            .unwrap();
        let p = set.get("m", 0).unwrap();
        assert!(p.make_leader(3, 1, &[1], &[1], 0));
        for _ in 0..10 {
            p.append_as_leader(&mut one_record(), 1).unwrap();
        }
        assert_eq!((p.log_end_offset(), p.high_watermark()), (10, 10));
        let truncation = strata_controller::LogTruncation {
            offset: 5,
            leader_epoch: 4,
        };
        // The leader of epoch 3 learns of the truncation of epoch 4: the tail goes, the HW follows.
        assert!(p.apply_truncation(truncation).unwrap());
        assert_eq!((p.log_end_offset(), p.high_watermark()), (5, 5));
        // Leading at epoch 4, it appends again; the same marker (every later image, a restart)
        // leaves those records alone.
        assert!(p.make_leader(4, 2, &[1], &[1], 0));
        for _ in 0..3 {
            p.append_as_leader(&mut one_record(), 1).unwrap();
        }
        assert!(!p.apply_truncation(truncation).unwrap());
        assert_eq!(p.log_end_offset(), 8);
        // A replica that never had records beyond the offset has nothing to remove.
        set.open_partitions("m", Uuid::new_v4(), 1, 2, &LogConfig::default())
            .unwrap();
        let short = set.get("m", 1).unwrap();
        assert!(short.make_follower(2, 3));
        assert!(!short.apply_truncation(truncation).unwrap());
        assert_eq!(short.log_end_offset(), 0);
    }

    #[test]
    fn a_tail_truncation_reaches_records_of_epochs_the_leader_moved_past_without_writing() {
        // Records written at epoch 0; restarts moved the leadership to epoch 3 with no batch of
        // epochs 1-3 in the log; the truncation comes with epoch 4.
        let dir = tempfile::tempdir().unwrap();
        let p = hosted(&dir, 1, "m");
        assert!(p.make_leader(0, 0, &[1], &[1], 0));
        for _ in 0..10 {
            p.append_as_leader(&mut one_record(), 1).unwrap();
        }
        assert!(p.make_leader(3, 3, &[1], &[1], 0));
        let truncation = strata_controller::LogTruncation {
            offset: 5,
            leader_epoch: 4,
        };
        assert!(p.apply_truncation(truncation).unwrap());
        assert_eq!((p.log_end_offset(), p.high_watermark()), (5, 5));
        assert!(!p.apply_truncation(truncation).unwrap(), "applied once");
    }
}
