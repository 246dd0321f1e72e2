//! The replication loop of one task: fetch the owned source partitions from their leaders,
//! produce every record to the same partition of the remote topic (key, value, headers and
//! timestamp kept; provenance header added under `Identity`), and advance a partition's position
//! only once the target acknowledged everything fetched for it (at-least-once).
//!
//! Progress is committed as the source consumer group `strata-mirror-<source>-<target>`
//! (admin-style commits, no members), every `progressCommitIntervalMs` and at shutdown, and read
//! back at start. Why the source and not a `mm2-offsets.*.internal` topic on the target: a
//! commit is one idempotent request to the coordinator, reading it back is one OffsetFetch
//! (no topic to scan or compact), tools (`kafka-consumer-groups --describe`) show the mirror's
//! lag for free, and since the commit happens strictly after the target's acknowledgement,
//! losing it (crash, broken source link) only causes re-reads. A partition with no committed
//! progress starts at the source's earliest offset (`auto.offset.reset=earliest`, as MM2).
//!
//! The loop also emits offset syncs (see [`crate::translation`] for why they make translation
//! safe): for the first acknowledged record of a partition after (re)start, then for every
//! acknowledged record `offset.lag.max` or more source offsets past the last sync, and for the
//! last record of a fetch that leaves the partition caught up (so idle consumers translate
//! exactly). Syncs are thus at most `offset.lag.max` apart, which bounds checkpoint duplicates.
//!
//! Cancellation: only the fetch (which changes nothing) races the shutdown token; a round that
//! produced records always runs to its acknowledgements, then progress is committed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_client::{
    FetchPartitionSpec, FetchRequestSpec, FetchResult, FetchedRecord, OffsetSpec, Producer,
    ProducerRecord, ResponseError,
};
use strata_flow::NamingMode;

use crate::context::{failure_backoff, FlowContext};
use crate::error::MirrorError;
use crate::policy::PROVENANCE_HEADER;
use crate::records::OffsetSync;

/// Where one owned partition stands.
#[derive(Debug, Clone)]
struct PartitionPosition {
    remote: String,
    /// Next source offset to mirror: everything below it is acknowledged by the target.
    acked: i64,
    /// Next source offset to fetch: records below it were handed to the producer (equal to
    /// `acked` when nothing is in flight).
    fetched: i64,
    /// Last value committed to the progress group.
    committed: i64,
    /// Source offset of the last offset sync emitted, if any since start.
    last_sync: Option<i64>,
}

/// Bytes a record takes in a batch beyond its key, value and headers (an upper estimate).
const RECORD_FRAMING: usize = 24;

/// One partition's records of a dispatched round, waiting for acknowledgements.
struct Sent {
    key: (String, i32),
    /// (source offsets, delivery) of each batch queued: the target offsets follow the first.
    deliveries: Vec<(Vec<i64>, strata_client::DeliveryFuture)>,
    next_offset: i64,
    high_watermark: i64,
    bytes: u64,
    newest: i64,
}

/// One replication task of a flow.
pub struct ReplicationTask {
    ctx: Arc<FlowContext>,
    task: u32,
    positions: BTreeMap<(String, i32), PartitionPosition>,
    /// Progress read from the source group at start.
    stored: BTreeMap<(String, i32), i64>,
    /// Records skipped because their provenance names the target.
    pub skipped: u64,
}

impl ReplicationTask {
    pub fn new(ctx: Arc<FlowContext>, task: u32) -> ReplicationTask {
        ReplicationTask {
            ctx,
            task,
            positions: BTreeMap::new(),
            stored: BTreeMap::new(),
            skipped: 0,
        }
    }

    /// Runs until the flow's shutdown token fires, then commits progress and returns.
    pub async fn run(mut self) -> Result<(), MirrorError> {
        let ctx = self.ctx.clone();
        let group = ctx.policy.progress_group();
        self.stored = ctx.source.admin().fetch_group_offsets(&group).await?;
        let mut producer = ctx.target.producer(ctx.config.producer());
        let mut last_commit = Instant::now();
        let mut failures = 0u32;
        // Records handed to the producer and not yet settled: the next fetch runs while the
        // target acknowledges them.
        let mut pending: Vec<Sent> = Vec::new();
        while !ctx.shutdown.is_cancelled() {
            if let Err(e) = self.assign().await {
                tracing::warn!(task = self.task, error = %e, "cannot assign partitions");
            }
            if self.positions.is_empty() {
                ctx.pause(Duration::from_millis(200)).await;
                continue;
            }
            let fetch = {
                let (source, spec, shutdown) =
                    (ctx.source.clone(), self.fetch_spec(), ctx.shutdown.clone());
                async move {
                    tokio::select! {
                        r = source.fetch(spec) => Some(r),
                        _ = shutdown.cancelled() => None,
                    }
                }
            };
            let in_flight = std::mem::take(&mut pending);
            let (fetched, settled) = tokio::join!(fetch, self.settle(&producer, in_flight));
            let outcome = match (settled, fetched) {
                (Err(e), _) => Err(e),
                (Ok(()), None) => break,
                (Ok(()), Some(Err(e))) => Err(e.into()),
                (Ok(()), Some(Ok(fetched))) => {
                    self.dispatch(&producer, fetched).await.map(|sent| {
                        pending = sent;
                    })
                }
            };
            match outcome {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    let pause = failure_backoff(failures);
                    tracing::warn!(task = self.task, error = %e, ?pause,
                        "replication round failed; re-reading from the last acknowledged offsets");
                    // Whatever was in flight is re-read; a fresh producer, since the failed
                    // one may hold batches that will never succeed.
                    pending.clear();
                    for pos in self.positions.values_mut() {
                        pos.fetched = pos.acked;
                    }
                    producer.close().await;
                    producer = ctx.target.producer(ctx.config.producer());
                    ctx.pause(pause).await;
                }
            }
            if last_commit.elapsed() >= ctx.config.progress_commit_interval() {
                self.commit_progress().await;
                last_commit = Instant::now();
            }
        }
        if let Err(e) = self.settle(&producer, pending).await {
            tracing::warn!(task = self.task, error = %e, "last round not acknowledged; it will be re-read");
        }
        producer.close().await;
        self.commit_progress().await;
        tracing::info!(
            task = self.task,
            skipped = self.skipped,
            "replication task stopped"
        );
        Ok(())
    }

    /// Adds newly mirrored partitions this task owns, drops ones no longer mirrored.
    async fn assign(&mut self) -> Result<(), MirrorError> {
        let plans = self.ctx.topics.read().clone();
        self.positions
            .retain(|(t, p), _| plans.get(t).is_some_and(|plan| *p < plan.partitions));
        for (topic, plan) in &plans {
            let mut fresh = Vec::new();
            for p in 0..plan.partitions {
                let key = (topic.clone(), p);
                if self.ctx.assignment.task_of(topic, p) == Some(self.task)
                    && !self.positions.contains_key(&key)
                {
                    match self.stored.get(&key) {
                        Some(&offset) => {
                            self.positions.insert(key, position(&plan.remote, offset));
                        }
                        None => fresh.push(p),
                    }
                }
            }
            if fresh.is_empty() {
                continue;
            }
            let earliest = self
                .ctx
                .source
                .list_offsets(topic, &fresh, OffsetSpec::Earliest)
                .await?;
            for (p, listed) in earliest {
                tracing::info!(
                    topic,
                    partition = p,
                    offset = listed.offset,
                    "mirroring partition"
                );
                self.positions
                    .insert((topic.clone(), p), position(&plan.remote, listed.offset));
            }
        }
        Ok(())
    }

    fn fetch_spec(&self) -> FetchRequestSpec {
        let at = self
            .positions
            .iter()
            .map(|((topic, p), pos)| FetchPartitionSpec {
                topic: topic.clone(),
                partition: *p,
                offset: pos.fetched,
            });
        self.ctx.fetch_spec(at)
    }

    /// Hands what one fetch returned to the producer (without waiting for acknowledgements)
    /// and moves each partition's fetch position past it.
    async fn dispatch(
        &mut self,
        producer: &Producer,
        fetched: FetchResult,
    ) -> Result<Vec<Sent>, MirrorError> {
        let ctx = self.ctx.clone();
        let mut sent = Vec::new();
        for ((topic, p), fp) in fetched.partitions {
            let key = (topic.clone(), p);
            let Some(pos) = self.positions.get_mut(&key) else {
                continue;
            };
            if let Some(e) = fp.error {
                if e.is(ResponseError::OffsetOutOfRange) && pos.fetched == pos.acked {
                    let earliest = ctx
                        .source
                        .list_offsets(&topic, &[p], OffsetSpec::Earliest)
                        .await?;
                    if let Some(l) = earliest.get(&p) {
                        tracing::warn!(topic, partition = p, from = pos.acked, to = l.offset,
                            "position out of range on the source (retention?); restarting at the earliest offset");
                        pos.acked = l.offset;
                        pos.fetched = l.offset;
                    }
                } else {
                    tracing::debug!(topic, partition = p, error = %e, "fetch error");
                }
                continue;
            }
            let mut s = Sent {
                key: key.clone(),
                deliveries: Vec::with_capacity(fp.batches.len()),
                next_offset: fp.next_offset.max(pos.fetched),
                high_watermark: fp.high_watermark,
                bytes: 0,
                newest: -1,
            };
            // Under Prefixed naming records stay byte-identical, so a whole source batch is
            // produced again as it is (no re-encoding, no re-compression) unless one of its
            // records must be skipped; otherwise, and under Identity (which adds a header),
            // record by record.
            let whole_batches = ctx.policy.naming() == NamingMode::Prefixed;
            let batch_size = ctx.config.producer().batch_size.max(1);
            let mut records = fp.records.into_iter().peekable();
            for batch in &fp.batches {
                let mut in_batch = Vec::new();
                while let Some(r) = records.next_if(|r| r.offset <= batch.last_offset) {
                    if r.offset >= pos.fetched {
                        in_batch.push(r);
                    }
                }
                if in_batch.is_empty() {
                    continue;
                }
                let as_is = whole_batches
                    && batch.reproducible()
                    && batch.base_offset >= pos.fetched
                    && in_batch.len() == batch.records_count as usize
                    && !in_batch
                        .iter()
                        .any(|r| ctx.policy.from_target(provenance(r)));
                if as_is {
                    s.bytes += in_batch.iter().map(record_bytes).sum::<u64>();
                    s.newest = s.newest.max(batch.max_timestamp);
                    let delivery = producer.send_batch(&pos.remote, p, batch).await?;
                    let upstream = in_batch.iter().map(|r| r.offset).collect();
                    s.deliveries.push((upstream, delivery));
                    continue;
                }
                // Record by record, in chunks of at most `batch.size` bytes, each queued as
                // one batch of its own.
                let mut chunk: Vec<ProducerRecord> = Vec::new();
                let mut upstream: Vec<i64> = Vec::new();
                let mut chunk_bytes = 0usize;
                for rec in in_batch {
                    let Some(new_chain) = ctx.policy.skip_record(provenance(&rec)) else {
                        self.skipped += 1;
                        continue;
                    };
                    let mut headers = rec.headers;
                    if ctx.policy.naming() == NamingMode::Identity {
                        headers.retain(|(k, _)| k != PROVENANCE_HEADER);
                        headers.push((PROVENANCE_HEADER.to_string(), Some(Bytes::from(new_chain))));
                    }
                    let record = ProducerRecord {
                        topic: pos.remote.clone(),
                        partition: p,
                        key: rec.key,
                        value: rec.value,
                        headers,
                        // A negative timestamp would mean "now" to the producer.
                        timestamp: rec.timestamp.max(0),
                    };
                    let size = produced_bytes(&record);
                    // Payload plus the record framing (length, attributes, deltas, varints).
                    let framed = size as usize + RECORD_FRAMING;
                    if !chunk.is_empty() && chunk_bytes + framed > batch_size {
                        let delivery = producer.send_records(&pos.remote, p, &chunk).await?;
                        s.deliveries.push((std::mem::take(&mut upstream), delivery));
                        chunk.clear();
                        chunk_bytes = 0;
                    }
                    s.bytes += size;
                    s.newest = s.newest.max(rec.timestamp);
                    chunk_bytes += framed;
                    chunk.push(record);
                    upstream.push(rec.offset);
                }
                if !chunk.is_empty() {
                    let delivery = producer.send_records(&pos.remote, p, &chunk).await?;
                    s.deliveries.push((upstream, delivery));
                }
            }
            pos.fetched = s.next_offset;
            ctx.metrics.fetched(&pos.remote, p, s.newest);
            ctx.metrics
                .lag(&pos.remote, p, s.high_watermark - pos.acked);
            sent.push(s);
        }
        Ok(sent)
    }

    /// Waits for the target's acknowledgements of one dispatched round, advances the
    /// acknowledged positions and emits offset syncs.
    async fn settle(&mut self, producer: &Producer, sent: Vec<Sent>) -> Result<(), MirrorError> {
        if sent.is_empty() {
            return Ok(());
        }
        let ctx = self.ctx.clone();
        producer.flush().await?;
        for s in sent {
            let mut acked = Vec::with_capacity(s.deliveries.len());
            for (upstream, delivery) in s.deliveries {
                let base = delivery.await?.offset;
                // -1: acknowledged without an offset (acks=0, or a duplicate the broker did not
                // place); such records yield no offset syncs.
                if base >= 0 {
                    acked.extend(upstream.into_iter().zip(base..));
                }
            }
            let count = acked.len() as u64;
            let Some(pos) = self.positions.get_mut(&s.key) else {
                continue;
            };
            pos.acked = s.next_offset;
            ctx.metrics
                .acknowledged(&pos.remote, s.key.1, count, s.bytes, s.newest);
            ctx.metrics
                .lag(&pos.remote, s.key.1, s.high_watermark - pos.acked);
            let caught_up = pos.acked >= s.high_watermark;
            let last = acked.len().saturating_sub(1);
            for (i, &(upstream, downstream)) in acked.iter().enumerate() {
                let due = match pos.last_sync {
                    None => true,
                    Some(u) => {
                        upstream - u >= ctx.config.mirror.offset_lag_max
                            || (i == last && caught_up && upstream != u)
                    }
                };
                if !due {
                    continue;
                }
                pos.last_sync = Some(upstream);
                let sync = OffsetSync {
                    topic: s.key.0.clone(),
                    partition: s.key.1,
                    upstream,
                    downstream,
                };
                ctx.syncs.lock().record(&sync);
                let record = ProducerRecord {
                    topic: ctx.policy.offset_syncs_topic(),
                    partition: 0,
                    key: Some(sync.key()),
                    value: Some(sync.value()),
                    headers: Vec::new(),
                    timestamp: -1,
                };
                // The sync topic is a record of what happened; the store above already
                // serves translation, so its delivery is not awaited here.
                if let Err(e) = producer.send(record).await {
                    tracing::warn!(error = %e, "cannot write offset sync");
                }
            }
        }
        Ok(())
    }

    /// Commits acknowledged positions to the progress group; a failure is logged (the next
    /// commit carries the same positions, and a lost commit only causes re-reads).
    async fn commit_progress(&mut self) {
        let changed: BTreeMap<(String, i32), i64> = self
            .positions
            .iter()
            .filter(|(_, pos)| pos.acked != pos.committed)
            .map(|(k, pos)| (k.clone(), pos.acked))
            .collect();
        if changed.is_empty() {
            return;
        }
        let group = self.ctx.policy.progress_group();
        match self
            .ctx
            .source
            .admin()
            .commit_group_offsets(&group, &changed)
            .await
        {
            Ok(()) => {
                for (k, offset) in changed {
                    if let Some(pos) = self.positions.get_mut(&k) {
                        pos.committed = offset;
                    }
                    self.stored.insert(k, offset);
                }
            }
            Err(e) => tracing::warn!(group, error = %e, "cannot commit mirror progress"),
        }
    }
}

/// The provenance chain a record arrived with.
fn provenance(r: &FetchedRecord) -> Option<&[u8]> {
    r.headers
        .iter()
        .find(|(k, _)| k == PROVENANCE_HEADER)
        .and_then(|(_, v)| v.as_deref())
}

/// Key, value and header bytes of a fetched record (the byte-rate metric's measure).
fn record_bytes(r: &FetchedRecord) -> u64 {
    payload_bytes(&r.key, &r.value, &r.headers)
}

fn produced_bytes(r: &ProducerRecord) -> u64 {
    payload_bytes(&r.key, &r.value, &r.headers)
}

fn payload_bytes(
    key: &Option<Bytes>,
    value: &Option<Bytes>,
    headers: &[(String, Option<Bytes>)],
) -> u64 {
    (key.as_ref().map_or(0, Bytes::len)
        + value.as_ref().map_or(0, Bytes::len)
        + headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len))
            .sum::<usize>()) as u64
}

fn position(remote: &str, offset: i64) -> PartitionPosition {
    PartitionPosition {
        remote: remote.to_string(),
        acked: offset,
        fetched: offset,
        committed: offset,
        last_sync: None,
    }
}
