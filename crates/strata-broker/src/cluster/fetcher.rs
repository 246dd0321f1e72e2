//! Replica fetchers: for each leader this broker follows partitions of, one task (per
//! `num.replica.fetchers` slot) that fetches from the leader's inter-broker listener with
//! Kafka's Fetch (replica id and broker epoch, each partition's leader epoch, fetch offset =
//! the follower's log end and its last fetched epoch). A diverging epoch in the answer
//! truncates the follower's log to where it agrees with the leader before it fetches again;
//! fetched batches are appended at their offsets, and the follower's HW follows the leader's,
//! bounded by its own log end. Appends and HW moves wake the consumers long-polling this
//! follower (KIP-392 follower fetching). Throttled replicas (`cluster::throttle`) sit out of a
//! fetch while this broker's follower quota is used up.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use parking_lot::Mutex;
use strata_client::NodeConnection;
use tokio::sync::Notify;

use crate::broker::Broker;
use crate::codes::{self as code, str_bytes};
use crate::partition::{Partition, TopicPartition};

/// One fetcher task's partitions.
struct Slot {
    partitions: Arc<Mutex<BTreeSet<TopicPartition>>>,
    wake: Arc<Notify>,
}

/// Every fetcher of this broker, by (leader, slot).
pub struct Fetchers {
    broker: Arc<Broker>,
    slots: Mutex<HashMap<(i32, usize), Slot>>,
}

impl Fetchers {
    pub fn new(broker: Arc<Broker>) -> Arc<Fetchers> {
        Arc::new(Fetchers {
            broker,
            slots: Mutex::new(HashMap::new()),
        })
    }

    fn slot_of(&self, tp: &TopicPartition) -> usize {
        let n = self.broker.config.cluster.num_replica_fetchers;
        let mut h: usize = tp.partition as usize;
        for b in tp.topic.bytes() {
            h = h.wrapping_mul(31).wrapping_add(b as usize);
        }
        h % n
    }

    /// Follows `tp` from `leader` (and from no one else).
    pub fn assign(&self, leader: i32, tp: TopicPartition) {
        let slot = self.slot_of(&tp);
        let mut slots = self.slots.lock();
        for ((l, _), s) in slots.iter() {
            if *l != leader {
                s.partitions.lock().remove(&tp);
            }
        }
        let entry = slots.entry((leader, slot)).or_insert_with(|| {
            let s = Slot {
                partitions: Arc::new(Mutex::new(BTreeSet::new())),
                wake: Arc::new(Notify::new()),
            };
            tokio::spawn(run(
                self.broker.clone(),
                leader,
                s.partitions.clone(),
                s.wake.clone(),
            ));
            s
        });
        if entry.partitions.lock().insert(tp) {
            entry.wake.notify_one();
        }
    }

    /// Stops following `tp`.
    pub fn remove(&self, tp: &TopicPartition) {
        for s in self.slots.lock().values() {
            s.partitions.lock().remove(tp);
        }
    }
}

/// The leader's inter-broker address from the image.
pub(crate) fn leader_address(broker: &Broker, leader: i32) -> Option<String> {
    let image = broker.image();
    let b = image.brokers.get(&leader)?;
    let name = &broker.config.cluster.inter_broker_listener;
    let e = b
        .endpoints
        .iter()
        .find(|e| &e.name == name)
        .or_else(|| b.endpoints.first())?;
    Some(if e.host.contains(':') {
        format!("[{}]:{}", e.host, e.port)
    } else {
        format!("{}:{}", e.host, e.port)
    })
}

async fn run(
    broker: Arc<Broker>,
    leader: i32,
    partitions: Arc<Mutex<BTreeSet<TopicPartition>>>,
    wake: Arc<Notify>,
) {
    let settings = broker.config.cluster.clone();
    let backoff = Duration::from_millis(settings.replica_fetch_backoff_ms.clamp(10, 1000));
    let timeout = Duration::from_millis(settings.replica_socket_timeout_ms).max(
        Duration::from_millis(settings.replica_fetch_wait_max_ms as u64 + 1000),
    );
    let mut conn: Option<(String, NodeConnection)> = None;
    loop {
        if broker.shutdown.is_cancelled() {
            return;
        }
        // Only partitions that still follow this leader.
        let parts: Vec<Arc<Partition>> = {
            let set = partitions.lock();
            set.iter()
                .filter_map(|tp| broker.partitions.get(&tp.topic, tp.partition))
                .filter(|p| matches!(p.role(), crate::partition::Role::Follower { leader: l } if l == leader))
                .collect()
        };
        if parts.is_empty() {
            tokio::select! {
                _ = broker.shutdown.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        let Some(addr) = leader_address(&broker, leader) else {
            tokio::time::sleep(backoff).await;
            continue;
        };
        if conn
            .as_ref()
            .is_none_or(|(a, c)| a != &addr || !c.is_open())
        {
            let client_id = format!("strata-replica-fetcher-{}", broker.config.node_id);
            match NodeConnection::open_secured(
                &addr,
                &client_id,
                Duration::from_secs(5),
                &broker.config.node_security.inter_broker,
            )
            .await
            {
                Ok(c) => conn = Some((addr.clone(), c)),
                Err(e) => {
                    tracing::debug!(leader, error = %e, "replica fetcher cannot connect");
                    conn = None;
                    tokio::select! {
                        _ = broker.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    continue;
                }
            }
        }
        let Some((_, c)) = conn.as_ref() else {
            continue;
        };
        let Ok(version) = c.version(ApiKey::Fetch) else {
            tracing::warn!(leader, "leader does not serve Fetch");
            tokio::time::sleep(backoff).await;
            continue;
        };
        // The follower's replication throttle: throttled replicas outside the ISR ask for at
        // most what the quota allows now (shared among them), and sit out while it is used up.
        let throttled = follower_throttled(&broker, &parts);
        let allowance = throttled
            .as_ref()
            .map(|(rate, _)| broker.follower_quota.allowance(*rate));
        let parts: Vec<Arc<Partition>> = match &throttled {
            Some((_, names)) if allowance == Some(0) => parts
                .into_iter()
                .filter(|p| !names.contains(&(p.topic.clone(), p.index)))
                .collect(),
            _ => parts,
        };
        if parts.is_empty() {
            tokio::select! {
                _ = broker.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            continue;
        }
        // The leader epoch each partition is fetched at: its answer applies only while the
        // partition still follows this leader at that epoch.
        let epochs: Vec<i32> = parts.iter().map(|p| p.leader_epoch()).collect();
        let mut req = build_request(&broker, &parts, &epochs, version);
        if let (Some((_, names)), Some(allowance)) = (&throttled, allowance) {
            cap_throttled(&mut req, names, allowance);
        }
        let result = tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            r = c.request_at(version, &req, timeout) => r,
        };
        match result {
            Ok(resp) => {
                if let Some((_, names)) = &throttled {
                    broker
                        .follower_quota
                        .record(throttled_bytes(&resp, &parts, names, version));
                }
                let b = broker.clone();
                let done = tokio::task::spawn_blocking(move || {
                    handle_response(&b, leader, &parts, &epochs, resp, version)
                })
                .await
                .unwrap_or(false);
                if !done {
                    tokio::time::sleep(backoff.min(Duration::from_millis(100))).await;
                }
            }
            Err(e) => {
                tracing::debug!(leader, error = %e, "replica fetch failed");
                conn = None;
                tokio::select! {
                    _ = broker.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
}

/// The follower throttle's rate and the throttled partitions among `parts` (named in their
/// topic's `follower.replication.throttled.replicas` for this broker, and out of the ISR), when
/// a rate is set for this broker.
fn follower_throttled(
    broker: &Broker,
    parts: &[Arc<Partition>],
) -> Option<(u64, Vec<(String, i32)>)> {
    let image = broker.image();
    let me = broker.config.node_id;
    let rate = broker.follower_quota.rate(&image, me)?;
    let names = parts
        .iter()
        .filter(|p| {
            broker
                .follower_quota
                .is_throttled(&image, &p.topic, p.index, me)
                && image
                    .partition(&p.topic, p.index)
                    .is_some_and(|x| !x.isr.contains(&me))
        })
        .map(|p| (p.topic.clone(), p.index))
        .collect();
    Some((rate, names))
}

/// Bounds the throttled partitions of a fetch request by the follower quota's `allowance`,
/// split evenly among them (at least one byte each: a leader still returns one whole batch).
fn cap_throttled(req: &mut FetchRequest, names: &[(String, i32)], allowance: usize) {
    if names.is_empty() {
        return;
    }
    let share = i32::try_from(allowance / names.len())
        .unwrap_or(i32::MAX)
        .max(1);
    for t in &mut req.topics {
        for fp in &mut t.partitions {
            if names.iter().any(|(topic, index)| {
                *index == fp.partition && topic.as_str() == t.topic.0.as_str()
            }) {
                fp.partition_max_bytes = fp.partition_max_bytes.min(share);
            }
        }
    }
}

/// Record bytes of a fetch answer that belong to throttled partitions.
fn throttled_bytes(
    resp: &FetchResponse,
    parts: &[Arc<Partition>],
    names: &[(String, i32)],
    version: i16,
) -> usize {
    let mut bytes = 0;
    for t in &resp.responses {
        for pd in &t.partitions {
            let throttled = parts.iter().any(|p| {
                p.index == pd.partition_index
                    && if version >= 13 {
                        p.topic_id == t.topic_id
                    } else {
                        p.topic.as_str() == t.topic.0.as_str()
                    }
                    && names.contains(&(p.topic.clone(), p.index))
            });
            if throttled {
                bytes += pd.records.as_ref().map_or(0, |r| r.len());
            }
        }
    }
    bytes
}

fn build_request(
    broker: &Broker,
    parts: &[Arc<Partition>],
    epochs: &[i32],
    version: i16,
) -> FetchRequest {
    let settings = &broker.config.cluster;
    let me = broker.config.node_id;
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (p, epoch) in parts.iter().zip(epochs) {
        let fp = FetchPartition::default()
            .with_partition(p.index)
            .with_current_leader_epoch(*epoch)
            .with_fetch_offset(p.log_end_offset())
            .with_last_fetched_epoch(p.log.latest_epoch().unwrap_or(-1))
            .with_log_start_offset(p.log_start_offset())
            .with_partition_max_bytes(settings.replica_fetch_max_bytes);
        match topics
            .iter_mut()
            .find(|t| t.topic_id == p.topic_id && t.topic.0.as_str() == p.topic.as_str())
        {
            Some(t) => t.partitions.push(fp),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(str_bytes(p.topic.clone())))
                    .with_topic_id(p.topic_id)
                    .with_partitions(vec![fp]),
            ),
        }
    }
    let mut req = FetchRequest::default()
        .with_max_wait_ms(settings.replica_fetch_wait_max_ms)
        .with_min_bytes(settings.replica_fetch_min_bytes)
        .with_max_bytes(settings.replica_fetch_response_max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    if version >= 15 {
        req = req.with_replica_state(
            ReplicaState::default()
                .with_replica_id(me.into())
                .with_replica_epoch(broker.epoch.load(Ordering::Acquire)),
        );
    } else {
        req = req.with_replica_id(me.into());
    }
    req
}

/// Applies a fetch answer from `leader` to the partitions that still follow it at the epoch
/// they were fetched at (`epochs`, by position in `parts`); false when nothing moved (back off
/// a little).
fn handle_response(
    broker: &Broker,
    leader: i32,
    parts: &[Arc<Partition>],
    epochs: &[i32],
    resp: FetchResponse,
    version: i16,
) -> bool {
    let mut progressed = false;
    if resp.error_code != code::NONE {
        tracing::debug!(error = resp.error_code, "replica fetch refused");
        return false;
    }
    for t in resp.responses {
        for pd in t.partitions {
            let Some((p, epoch)) = parts.iter().zip(epochs).find(|(p, _)| {
                p.index == pd.partition_index
                    && if version >= 13 {
                        p.topic_id == t.topic_id
                    } else {
                        p.topic.as_str() == t.topic.0.as_str()
                    }
            }) else {
                continue;
            };
            let applied = p.as_follower_of(leader, *epoch, || apply_partition(broker, p, pd));
            match applied {
                Some(moved) => progressed |= moved,
                None => tracing::debug!(topic = %p.topic, partition = p.index, leader, epoch,
                    "fetch answer dropped: the partition changed leader or epoch since"),
            }
        }
    }
    if progressed {
        broker.partitions.appended.notify_waiters();
    }
    progressed
}

/// Applies one partition's part of a fetch answer (inside `Partition::as_follower_of`); true
/// when the log or its HW moved.
fn apply_partition(broker: &Broker, p: &Partition, pd: PartitionData) -> bool {
    let mut progressed = false;
    match pd.error_code {
        code::NONE => {}
        code::OFFSET_OUT_OF_RANGE => {
            let leo = p.log_end_offset();
            let result = if leo < pd.log_start_offset {
                p.log
                    .truncate_fully_and_start_at(pd.log_start_offset)
                    .map(|_| p.clamp_high_watermark())
            } else {
                p.truncate_to(pd.high_watermark.max(0).min(leo))
            };
            tracing::warn!(topic = %p.topic, partition = p.index, leo,
                leader_hw = pd.high_watermark, "fetch offset out of range at the leader; truncated");
            if let Err(e) = result {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "truncation failed");
            }
            return false;
        }
        other => {
            tracing::debug!(topic = %p.topic, partition = p.index, error = other, "replica fetch partition error");
            return false;
        }
    }
    if pd.diverging_epoch.epoch >= 0 || pd.diverging_epoch.end_offset >= 0 {
        // Kafka's rule: truncate to the end of the leader's epoch as this log knows
        // it (or of the largest epoch below it), and never past the leader's end.
        let (_, own_end) = p.log.end_offset_for_epoch(pd.diverging_epoch.epoch);
        let to = own_end.min(pd.diverging_epoch.end_offset);
        let to = to.max(p.log_start_offset()).min(p.log_end_offset());
        tracing::info!(topic = %p.topic, partition = p.index, from = p.log_end_offset(), to,
            "log diverged from the leader's; truncating");
        if let Err(e) = p.truncate_to(to) {
            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "truncation failed");
        }
        return true;
    }
    if let Some(records) = pd.records.filter(|r| !r.is_empty()) {
        match p.append_fetched(&records) {
            Ok(_) => {
                broker
                    .metrics
                    .replication_bytes_in
                    .inc_by(records.len() as u64);
                progressed = true
            }
            Err(e) => {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e,
                    "cannot append fetched batches");
            }
        }
    }
    // A moved HW is news too: consumers reading from this follower see more.
    progressed |= p.follower_high_watermark(pd.high_watermark);
    progressed
}
