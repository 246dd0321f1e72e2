//! Fetch: serves stored batch bytes straight from the log of a partition this broker leads,
//! bounded by the high watermark for consumers and by the log end for follower replicas (whose
//! fetch offset is their log end: it moves the leader's view of them, the ISR and the HW; a
//! last fetched epoch that disagrees with the leader's log answers with the diverging epoch),
//! `min_bytes` / `max_wait_ms` as a real long poll woken by appends, per-partition and response
//! `max_bytes` (KIP-74: the first non-empty partition always returns at least one whole batch),
//! and incremental fetch sessions (KIP-227).
//!
//! Follower fetching (KIP-392): a consumer's Fetch v11+ (client metadata: its `rack_id` and the
//! listener it came in on) may read from a follower, up to the follower's HW (offsets between
//! that HW and the follower's log end are not visible yet; beyond its log end is out of
//! range); the leader, with `replica.selector.class` set, answers such a consumer's partition
//! with `preferred_read_replica` and no records when another replica should serve it
//! ([`crate::replica_selector`]). Replicas and older consumers are served by leaders only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use strata_log::LogError;
use uuid::Uuid;

use crate::authz::Op;
use crate::broker::Broker;
use crate::fetch_session::{SessionPartition, SessionResolution};
use crate::handlers::RequestContext;
use crate::handlers::{check_leader_epoch, code, str_bytes};
use crate::metrics;
use crate::partition::{Partition, TopicPartition};
use crate::replica_selector::{self, ReplicaSelector};

struct Wanted {
    tp: TopicPartition,
    /// The principal may not read it (TOPIC_AUTHORIZATION_FAILED).
    denied: bool,
    topic_id: Uuid,
    /// The hosted partition (None when not hosted here), for its topic's byte counters.
    hosted: Option<Arc<Partition>>,
    fetch_offset: i64,
    /// Follower fetches: the epoch of the follower's last batch (-1 unknown).
    last_fetched_epoch: i32,
    /// Follower fetches: the follower's log start offset.
    log_start_offset: i64,
    max_bytes: i32,
    current_leader_epoch: i32,
    /// For incremental sessions: what the client last heard (None: always include).
    last_sent: Option<(i64, i64)>,
}

/// What a consumer's Fetch v11+ tells about its client (KIP-392).
struct ClientMetadata<'a> {
    /// `client.rack` ("" when the client names none).
    rack: &'a str,
    /// The listener the request came in on: a preferred read replica must be reachable there.
    listener: &'a str,
}

pub async fn handle(
    broker: &Broker,
    req: FetchRequest,
    version: i16,
    ctx: &RequestContext,
) -> FetchResponse {
    let uses_ids = version >= 13;
    let replica = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let replica = (replica >= 0).then_some(replica);
    // Kafka's condition for client metadata: a consumer's Fetch v11+ (which added rack_id).
    let client = (replica.is_none() && version >= 11).then(|| ClientMetadata {
        rack: req.rack_id.as_str(),
        listener: &ctx.listener_name,
    });
    let image = broker.image();
    let mut last_epochs: BTreeMap<TopicPartition, i32> = BTreeMap::new();
    let mut log_starts: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let mut unknown_ids = Vec::new();
    let mut updates = Vec::new();
    let mut order: Vec<TopicPartition> = Vec::new();
    for t in &req.topics {
        let name = if uses_ids {
            match image.topic_by_id(t.topic_id) {
                Some(m) => m.name.clone(),
                None => {
                    unknown_ids.push((
                        t.topic_id,
                        t.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
                    ));
                    continue;
                }
            }
        } else {
            t.topic.0.to_string()
        };
        for p in &t.partitions {
            let tp = TopicPartition {
                topic: name.clone(),
                partition: p.partition,
            };
            order.push(tp.clone());
            last_epochs.insert(tp.clone(), p.last_fetched_epoch);
            log_starts.insert(tp.clone(), p.log_start_offset);
            updates.push((
                tp,
                SessionPartition {
                    fetch_offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes,
                    current_leader_epoch: p.current_leader_epoch,
                    last_high_watermark: -1,
                    last_log_start_offset: -1,
                },
            ));
        }
    }
    let forgotten: Vec<TopicPartition> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|f| {
            let name = if uses_ids {
                image
                    .topic_by_id(f.topic_id)
                    .map(|m| m.name.clone())
                    .unwrap_or_default()
            } else {
                f.topic.0.to_string()
            };
            f.partitions.iter().map(move |p| TopicPartition {
                topic: name.clone(),
                partition: *p,
            })
        })
        .collect();

    // Consumers (replica id -1) use sessions; version 7 introduced them. Followers send
    // full requests.
    let resolution = if version >= 7 && replica.is_none() {
        broker.fetch_sessions.resolve(
            req.session_id,
            req.session_epoch,
            updates.clone(),
            forgotten,
        )
    } else {
        SessionResolution::Full { session_id: 0 }
    };
    // Followers need CLUSTER_ACTION, consumers READ on each topic (also for the partitions an
    // incremental fetch leaves in its session).
    let follower_allowed = replica.is_some() && broker.may_cluster(ctx, Op::ClusterAction);
    let mut readable: BTreeMap<String, bool> = BTreeMap::new();
    // The hosted partition carries its topic id: no metadata copy on the fetch path.
    let mut wanted_of = |tp: TopicPartition, sp: SessionPartition, incremental: bool| {
        let hosted = broker.partitions.get(&tp.topic, tp.partition);
        let denied = if replica.is_some() {
            !follower_allowed
        } else {
            !*readable
                .entry(tp.topic.clone())
                .or_insert_with(|| broker.may_topic(ctx, Op::Read, &tp.topic))
        };
        Wanted {
            denied,
            topic_id: hosted.as_ref().map(|p| p.topic_id).unwrap_or_default(),
            hosted,
            last_fetched_epoch: last_epochs.get(&tp).copied().unwrap_or(-1),
            log_start_offset: log_starts.get(&tp).copied().unwrap_or(-1),
            tp,
            fetch_offset: sp.fetch_offset,
            max_bytes: sp.max_bytes,
            current_leader_epoch: sp.current_leader_epoch,
            last_sent: incremental.then_some((sp.last_high_watermark, sp.last_log_start_offset)),
        }
    };
    let (session_id, wanted): (i32, Vec<Wanted>) = match resolution {
        SessionResolution::Error(err) => {
            return FetchResponse::default()
                .with_error_code(err)
                .with_session_id(req.session_id);
        }
        SessionResolution::Full { session_id } => (
            session_id,
            updates
                .into_iter()
                .map(|(tp, sp)| wanted_of(tp, sp, false))
                .collect(),
        ),
        SessionResolution::Incremental {
            session_id,
            partitions,
        } => (
            session_id,
            partitions
                .into_iter()
                .map(|(tp, sp)| wanted_of(tp, sp, true))
                .collect(),
        ),
    };

    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let deadline = tokio::time::Instant::now() + max_wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if req.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        req.max_bytes as usize
    };
    let read = |broker: &Broker| read_all(broker, &wanted, max_bytes, replica, client.as_ref());
    let (mut parts, mut total, mut errors) = read(broker);
    // In Kafka's fetch purgatory while the long poll waits (a dropped request leaves it).
    let waiting = (total < min_bytes && !errors && tokio::time::Instant::now() < deadline)
        .then(|| metrics::waiting(&broker.metrics.fetch_purgatory));
    while total < min_bytes && !errors && tokio::time::Instant::now() < deadline {
        // Register interest before re-reading so that an append in between is not missed.
        let appended = broker.partitions.appended.notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        (parts, total, errors) = read(broker);
        if total >= min_bytes || errors {
            break;
        }
        tokio::select! {
            _ = &mut appended => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = broker.shutdown.cancelled() => break,
        }
        (parts, total, errors) = read(broker);
    }
    drop(waiting);
    if replica.is_some() {
        broker.metrics.replication_bytes_out.inc_by(total as u64);
    } else {
        for (w, data) in wanted.iter().zip(&parts) {
            let bytes = data.records.as_ref().map_or(0, |r| r.len());
            if let (Some(p), true) = (&w.hosted, bytes > 0) {
                p.traffic(&broker.metrics).bytes_out.inc_by(bytes as u64);
            }
        }
    }

    // Incremental responses carry only partitions with news.
    let mut sent = Vec::new();
    let mut by_topic: BTreeMap<(usize, String), (Uuid, Vec<PartitionData>)> = BTreeMap::new();
    let rank = |tp: &TopicPartition| {
        order
            .iter()
            .position(|o| o.topic == tp.topic)
            .unwrap_or(usize::MAX)
    };
    for (w, data) in wanted.iter().zip(parts) {
        if let Some((hw, start)) = w.last_sent {
            let has_records = data.records.as_ref().is_some_and(|r| !r.is_empty());
            // A preferred read replica is news too (Kafka's session always sends it).
            if !has_records
                && data.error_code == code::NONE
                && data.preferred_read_replica.0 < 0
                && hw == data.high_watermark
                && start == data.log_start_offset
            {
                continue;
            }
        }
        sent.push((w.tp.clone(), data.high_watermark, data.log_start_offset));
        by_topic
            .entry((rank(&w.tp), w.tp.topic.clone()))
            .or_insert_with(|| (w.topic_id, Vec::new()))
            .1
            .push(data);
    }
    broker.fetch_sessions.record_sent(session_id, &sent);

    let mut responses: Vec<FetchableTopicResponse> = by_topic
        .into_iter()
        .map(|((_, name), (id, partitions))| {
            FetchableTopicResponse::default()
                .with_topic(TopicName(str_bytes(name)))
                .with_topic_id(id)
                .with_partitions(partitions)
        })
        .collect();
    for (id, partitions) in unknown_ids {
        responses.push(
            FetchableTopicResponse::default()
                .with_topic_id(id)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|p| empty(p).with_error_code(code::UNKNOWN_TOPIC_ID))
                        .collect(),
                ),
        );
    }
    FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(responses)
}

fn empty(index: i32) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(BrokerId(-1))
        .with_aborted_transactions(None)
}

/// The leader throttle's rate when `follower`'s replication of `p` is throttled: a rate is
/// set for this broker, the replica is named throttled, and the follower is out of the ISR.
fn leader_throttle(broker: &Broker, p: &Partition, follower: i32) -> Option<u64> {
    let image = broker.image();
    let me = broker.config.node_id;
    let rate = broker.leader_quota.rate(&image, me)?;
    let named = broker
        .leader_quota
        .is_throttled(&image, &p.topic, p.index, me);
    (named && !p.isr().contains(&follower)).then_some(rate)
}

/// The replica other than this leader that a consumer should read `p` from, when
/// `replica.selector.class` names one.
fn preferred_read_replica(
    broker: &Broker,
    p: &Partition,
    client: &ClientMetadata<'_>,
    fetch_offset: i64,
    now_ms: i64,
) -> Option<i32> {
    let selector = broker.config.replica_selector;
    if selector == ReplicaSelector::LeaderOnly {
        return None;
    }
    let (leader, followers) = replica_selector::candidates(
        p,
        &broker.image(),
        client.listener,
        broker.config.rack.as_deref(),
        fetch_offset,
        now_ms,
    )?;
    selector.select(Some(client.rack), &leader, &followers)
}

/// Reads every wanted partition once; returns the data, the bytes read and whether any
/// partition must be answered at once, without waiting (an error, a diverging epoch, a
/// preferred read replica). A follower's read also records its position (ISR, HW).
fn read_all(
    broker: &Broker,
    wanted: &[Wanted],
    max_bytes: usize,
    replica: Option<i32>,
    client: Option<&ClientMetadata<'_>>,
) -> (Vec<PartitionData>, usize, bool) {
    let mut out = Vec::with_capacity(wanted.len());
    let mut total = 0usize;
    let mut errors = false;
    let now = strata_kafka::now_ms();
    // Kafka's leader proposes only followers that may join the ISR: registered, not fenced,
    // not in controlled shutdown (the controller refuses the others, and a pending expansion
    // holds the HW back until it answers).
    let isr_eligible = replica.is_some_and(|follower| {
        broker
            .image()
            .brokers
            .get(&follower)
            .is_some_and(|b| !b.fenced && !b.in_controlled_shutdown)
    });
    for w in wanted {
        if w.denied {
            errors = true;
            out.push(empty(w.tp.partition).with_error_code(code::TOPIC_AUTHORIZATION_FAILED));
            continue;
        }
        let Some(p) = broker.partitions.get(&w.tp.topic, w.tp.partition) else {
            errors = true;
            let code = match broker.image().partition(&w.tp.topic, w.tp.partition) {
                Some(_) => code::NOT_LEADER_OR_FOLLOWER,
                None => code::UNKNOWN_TOPIC_OR_PARTITION,
            };
            out.push(empty(w.tp.partition).with_error_code(code));
            continue;
        };
        let epoch_error = check_leader_epoch(w.current_leader_epoch, p.leader_epoch());
        // A follower serves consumers with client metadata (Kafka's fetchOnlyLeader is false).
        let serves = p.is_leader() || (client.is_some() && p.is_follower());
        if epoch_error == code::NONE && !serves {
            errors = true;
            out.push(
                empty(w.tp.partition)
                    .with_error_code(broker.not_led_error(&w.tp.topic, w.tp.partition)),
            );
            continue;
        }
        if epoch_error != code::NONE {
            errors = true;
            out.push(empty(w.tp.partition).with_error_code(epoch_error));
            continue;
        }
        // Kafka asks the selector before reading (and before the offset checks); a consumer
        // sent elsewhere gets the partition's offsets and no records, at once.
        if let Some(id) =
            client.and_then(|c| preferred_read_replica(broker, &p, c, w.fetch_offset, now))
        {
            errors = true;
            out.push(
                empty(w.tp.partition)
                    .with_high_watermark(p.high_watermark())
                    .with_last_stable_offset(p.high_watermark())
                    .with_log_start_offset(p.log_start_offset())
                    .with_preferred_read_replica(BrokerId(id))
                    .with_records(Some(Bytes::new())),
            );
            continue;
        }
        let mut upper = p.high_watermark();
        // A follower's divergence is checked first (Kafka's order): one whose last epoch ends
        // earlier here truncates.
        if let (Some(_), true) = (replica, w.last_fetched_epoch >= 0) {
            let (epoch, end) = p.log.end_offset_for_epoch(w.last_fetched_epoch);
            if epoch != w.last_fetched_epoch || end < w.fetch_offset {
                let mut data = empty(w.tp.partition)
                    .with_high_watermark(p.high_watermark())
                    .with_last_stable_offset(p.high_watermark())
                    .with_log_start_offset(p.log_start_offset())
                    .with_records(Some(Bytes::new()));
                data.diverging_epoch.epoch = epoch;
                data.diverging_epoch.end_offset = end;
                out.push(data);
                errors = true;
                continue;
            }
        }
        if w.fetch_offset > p.log_end_offset() || w.fetch_offset < p.log_start_offset() {
            // Outside this log (a follower whose log is longer, or a stale consumer position):
            // out of range, and a follower's claim does not count as its progress here.
            errors = true;
            out.push(
                empty(w.tp.partition)
                    .with_high_watermark(p.high_watermark())
                    .with_last_stable_offset(p.high_watermark())
                    .with_log_start_offset(p.log_start_offset())
                    .with_error_code(code::OFFSET_OUT_OF_RANGE),
            );
            continue;
        }
        if let Some(follower) = replica {
            let hw_before = p.high_watermark();
            if let Some(fetch) = p.record_follower_fetch(
                follower,
                w.fetch_offset,
                w.log_start_offset,
                isr_eligible,
                now,
            ) {
                if let Some(proposal) = fetch.expand {
                    broker.propose_isr(p.clone(), proposal);
                }
                // Consumers long-polling this partition see records once the HW passes them.
                if fetch.high_watermark > hw_before {
                    broker.partitions.appended.notify_waiters();
                }
            }
            upper = p.log_end_offset();
        }
        // The leader's replication throttle: an out-of-sync follower of a throttled replica
        // gets at most what the quota allows now, and no records while it is used up.
        let allowance = replica
            .and_then(|follower| leader_throttle(broker, &p, follower))
            .map(|rate| broker.leader_quota.allowance(rate));
        if allowance == Some(0) {
            upper = w.fetch_offset;
        }
        let hw = p.high_watermark();
        let start = p.log_start_offset();
        let base = empty(w.tp.partition)
            .with_high_watermark(hw)
            .with_last_stable_offset(hw)
            .with_log_start_offset(start);
        let budget = if total >= max_bytes {
            0
        } else {
            (w.max_bytes.max(0) as usize)
                .min(max_bytes - total)
                .min(allowance.unwrap_or(usize::MAX))
        };
        // KIP-74: while nothing has been returned yet, one whole batch may exceed the limits.
        let limit = if total == 0 { budget.max(1) } else { budget };
        if limit == 0 || w.fetch_offset == upper {
            out.push(base.with_records(Some(Bytes::new())));
            continue;
        }
        match p.log.read(w.fetch_offset, limit, upper) {
            Ok(slice) => {
                if total > 0 && slice.bytes.len() > budget {
                    out.push(base.with_records(Some(Bytes::new())));
                    continue;
                }
                total += slice.bytes.len();
                if allowance.is_some() {
                    broker.leader_quota.record(slice.bytes.len());
                }
                out.push(base.with_records(Some(slice.bytes)));
            }
            Err(LogError::OffsetOutOfRange { .. }) => {
                errors = true;
                out.push(base.with_error_code(code::OFFSET_OUT_OF_RANGE));
            }
            Err(e) => {
                errors = true;
                tracing::error!(topic = %w.tp.topic, partition = w.tp.partition, error = %e, "read failed");
                out.push(base.with_error_code(code::KAFKA_STORAGE_ERROR));
            }
        }
    }
    (out, total, errors)
}
