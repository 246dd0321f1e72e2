//! `offsets: Preserve`: the replication loop for a Strata target, where every record keeps its
//! source offset. Record batches are forwarded as the source returned them (not decoded,
//! decompressed or re-encoded: records, compression and timestamps travel unchanged; the
//! broker keeps idempotent producers' ids and sequences as its own producer state and drops
//! transactional identities and transaction markers) with the broker's
//! offset-preserving append, which only topics marked
//! [`MIRROR_SOURCE_CONFIG`](strata_kafka::preserve::MIRROR_SOURCE_CONFIG) accept and only from
//! [`PRESERVE_CLIENT_ID`](strata_kafka::preserve::PRESERVE_CLIENT_ID) (the broker side is
//! `strata_broker::mirror_target`).
//!
//! Progress needs no bookkeeping: the target's log end offset *is* the next source offset to
//! mirror, so a partition resumes from it after any restart or crash, and batches re-sent after
//! a lost acknowledgement are skipped by the broker. Hence no duplicates on the target, ever,
//! and no offset syncs: a consumer's committed source offset is valid on the target as it is.
//!
//! Before a partition resumes, the last record the target holds is compared with the source's
//! record at that offset: a target that does not hold the source's records (written while the
//! topic was promoted, or the source was recreated) cannot be made equal again, so that
//! partition stops with an error in the log instead of writing at wrong offsets; so does one
//! whose target is ahead of the source or refuses a batch as straddling its log end. A source
//! position that fell out of range moves to the source's earliest offset (retention deleted
//! what the mirror had not copied yet: nothing the mirror could do). An append that fails
//! otherwise re-reads that partition's log end offset; the other partitions go on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use strata_client::{Acks, FetchPartitionSpec, FetchRequestSpec, OffsetSpec, ResponseError};

use crate::context::{failure_backoff, FlowContext};
use crate::error::MirrorError;

/// One owned partition: the remote topic and the next source offset to copy.
#[derive(Debug, Clone)]
struct Position {
    remote: String,
    next: i64,
}

/// One replication task in Preserve mode.
pub struct PreserveTask {
    ctx: Arc<FlowContext>,
    task: u32,
    positions: BTreeMap<(String, i32), Position>,
    /// Partitions stopped because the target is ahead of the source.
    diverged: BTreeSet<(String, i32)>,
}

impl PreserveTask {
    pub fn new(ctx: Arc<FlowContext>, task: u32) -> PreserveTask {
        PreserveTask {
            ctx,
            task,
            positions: BTreeMap::new(),
            diverged: BTreeSet::new(),
        }
    }

    /// Runs until the flow's shutdown token fires; a round in flight finishes first.
    pub async fn run(mut self) -> Result<(), MirrorError> {
        let ctx = self.ctx.clone();
        let mut failures = 0u32;
        while !ctx.shutdown.is_cancelled() {
            if let Err(e) = self.assign().await {
                tracing::warn!(task = self.task, error = %e, "cannot assign partitions");
            }
            if self.positions.is_empty() {
                ctx.pause(Duration::from_millis(200)).await;
                continue;
            }
            let fetched = tokio::select! {
                r = ctx.source.fetch(self.fetch_spec()) => r,
                _ = ctx.shutdown.cancelled() => break,
            };
            let outcome = match fetched {
                Ok(fetched) => self.round(fetched).await,
                Err(e) => Err(e.into()),
            };
            match outcome {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    let pause = failure_backoff(failures);
                    tracing::warn!(task = self.task, error = %e, ?pause,
                        "replication round failed; resuming from the target's log end offsets");
                    // The target's log end offset is the truth; re-read it.
                    self.positions.clear();
                    ctx.pause(pause).await;
                }
            }
        }
        tracing::info!(task = self.task, "replication task stopped");
        Ok(())
    }

    /// Adds owned partitions at the target's log end offset; drops ones no longer mirrored.
    async fn assign(&mut self) -> Result<(), MirrorError> {
        let plans = self.ctx.topics.read().clone();
        self.positions
            .retain(|(t, p), _| plans.get(t).is_some_and(|plan| *p < plan.partitions));
        for (topic, plan) in &plans {
            let fresh: Vec<i32> = (0..plan.partitions)
                .filter(|&p| {
                    let key = (topic.clone(), p);
                    self.ctx.assignment.task_of(topic, p) == Some(self.task)
                        && !self.positions.contains_key(&key)
                        && !self.diverged.contains(&key)
                })
                .collect();
            if fresh.is_empty() {
                continue;
            }
            let ends = self
                .ctx
                .target
                .list_offsets(&plan.remote, &fresh, OffsetSpec::Latest)
                .await?;
            let resuming: Vec<(i32, i64)> = ends
                .iter()
                .filter(|(_, l)| l.offset > 0)
                .map(|(p, l)| (*p, l.offset - 1))
                .collect();
            for (p, why) in self.differences(topic, &plan.remote, &resuming).await? {
                self.stop_partition(&(topic.clone(), p), &why);
            }
            for (p, end) in ends {
                if self.diverged.contains(&(topic.clone(), p)) {
                    continue;
                }
                tracing::info!(
                    topic,
                    partition = p,
                    offset = end.offset,
                    "mirroring partition, offsets preserved"
                );
                self.positions.insert(
                    (topic.clone(), p),
                    Position {
                        remote: plan.remote.clone(),
                        next: end.offset,
                    },
                );
            }
        }
        Ok(())
    }

    /// For each (partition, offset): why the target's record at that offset is not the
    /// source's (key, value, headers and timestamp compared), if it is not. Offsets the source
    /// no longer has, or that hold no record on the target, cannot be compared and pass.
    async fn differences(
        &self,
        topic: &str,
        remote: &str,
        at: &[(i32, i64)],
    ) -> Result<Vec<(i32, String)>, MirrorError> {
        if at.is_empty() {
            return Ok(Vec::new());
        }
        let read = |client: &strata_client::Client, name: &str| {
            let spec = self
                .ctx
                .fetch_spec(at.iter().map(|&(p, offset)| FetchPartitionSpec {
                    topic: name.to_string(),
                    partition: p,
                    offset,
                }));
            let client = client.clone();
            async move {
                let mut spec = spec;
                spec.max_wait_ms = 0;
                client.fetch(spec).await
            }
        };
        let (source, target) = tokio::join!(
            read(&self.ctx.source, topic),
            read(&self.ctx.target, remote)
        );
        let (source, target) = (source?, target?);
        let mut out = Vec::new();
        for &(p, offset) in at {
            let record = |fetched: &strata_client::FetchResult, name: &str| {
                fetched
                    .partitions
                    .get(&(name.to_string(), p))
                    .and_then(|fp| fp.records.iter().find(|r| r.offset == offset))
                    .map(|r| {
                        (
                            r.timestamp,
                            r.key.clone(),
                            r.value.clone(),
                            r.headers.clone(),
                        )
                    })
            };
            let (Some(theirs), Some(ours)) = (record(&source, topic), record(&target, remote))
            else {
                continue;
            };
            if theirs != ours {
                out.push((
                    p,
                    format!(
                        "the target's record at offset {offset} is not the source's (records \
                         were written to the remote topic while it was not a mirror target?)"
                    ),
                ));
            }
        }
        Ok(out)
    }

    fn fetch_spec(&self) -> FetchRequestSpec {
        let at = self
            .positions
            .iter()
            .map(|((topic, p), pos)| FetchPartitionSpec {
                topic: topic.clone(),
                partition: *p,
                offset: pos.next,
            });
        let mut spec = self.ctx.fetch_spec(at);
        spec.decode_records = false;
        spec
    }

    /// Appends what one fetch returned, all partitions concurrently, and advances each
    /// partition that the target acknowledged.
    async fn round(&mut self, fetched: strata_client::FetchResult) -> Result<(), MirrorError> {
        let ctx = self.ctx.clone();
        let preserve = ctx
            .preserve
            .as_ref()
            .expect("Preserve flows have an offset-preserving target client");
        struct Send {
            key: (String, i32),
            remote: String,
            bytes: bytes::Bytes,
            records: u64,
            newest: i64,
            next: i64,
            high_watermark: i64,
        }
        let mut sends = Vec::new();
        for (key, fp) in fetched.partitions {
            let Some(pos) = self.positions.get(&key) else {
                continue;
            };
            if let Some(e) = fp.error {
                if e.is(ResponseError::OffsetOutOfRange) {
                    self.out_of_range(&key).await?;
                } else {
                    tracing::debug!(topic = %key.0, partition = key.1, error = %e, "fetch error");
                }
                continue;
            }
            // The first batch may start before the position (a fetch inside a batch).
            let skip = fp
                .batches
                .iter()
                .take_while(|b| b.last_offset < pos.next)
                .count();
            let kept = &fp.batches[skip..];
            ctx.metrics
                .lag(&pos.remote, key.1, fp.high_watermark - pos.next);
            let Some(last) = kept.last() else {
                continue;
            };
            let start = fp.raw.len() - kept.iter().map(|b| b.bytes.len()).sum::<usize>();
            let newest = kept.iter().map(|b| b.max_timestamp).max().unwrap_or(-1);
            ctx.metrics.fetched(&pos.remote, key.1, newest);
            sends.push(Send {
                remote: pos.remote.clone(),
                bytes: fp.raw.slice(start..),
                records: kept
                    .iter()
                    .filter(|b| !b.control)
                    .map(|b| u64::try_from(b.records_count).unwrap_or(0))
                    .sum(),
                newest,
                next: last.last_offset + 1,
                high_watermark: fp.high_watermark,
                key,
            });
        }
        let appends = sends.iter().map(|s| {
            preserve.produce_preserving_offsets(&s.remote, s.key.1, s.bytes.clone(), Acks::All)
        });
        let results = futures::future::join_all(appends).await;
        for (s, result) in sends.into_iter().zip(results) {
            match result {
                Ok(_) => {
                    if let Some(pos) = self.positions.get_mut(&s.key) {
                        pos.next = s.next;
                    }
                    ctx.metrics.acknowledged(
                        &s.remote,
                        s.key.1,
                        s.records,
                        s.bytes.len() as u64,
                        s.newest,
                    );
                    ctx.metrics
                        .lag(&s.remote, s.key.1, s.high_watermark - s.next);
                }
                Err(e) if e.is(ResponseError::InvalidRecord) => {
                    self.stop_partition(&s.key, &format!("the target refused a batch: {e}"));
                }
                Err(e) => {
                    // Resume this partition from the target's log end offset; a promoted topic
                    // (POLICY_VIOLATION) leaves the flow at the next topic refresh.
                    tracing::warn!(topic = %s.key.0, partition = s.key.1, error = %e,
                        "offset-preserving append failed; re-reading the target's log end offset");
                    self.positions.remove(&s.key);
                }
            }
        }
        Ok(())
    }

    /// Stops mirroring a partition whose offsets can no longer be kept equal.
    fn stop_partition(&mut self, key: &(String, i32), why: &str) {
        let remote = self.positions.remove(key).map(|p| p.remote);
        tracing::error!(topic = %key.0, partition = key.1, remote = ?remote, why,
            "offsets cannot be preserved for this partition; it is no longer mirrored \
             (restart the mirror after repairing or deleting the remote topic)");
        self.diverged.insert(key.clone());
    }

    /// The source no longer has the position: catch up to its earliest offset, or stop the
    /// partition when the target is ahead of the source.
    async fn out_of_range(&mut self, key: &(String, i32)) -> Result<(), MirrorError> {
        let (topic, p) = (&key.0, key.1);
        let earliest = self
            .ctx
            .source
            .list_offsets(topic, &[p], OffsetSpec::Earliest)
            .await?;
        let latest = self
            .ctx
            .source
            .list_offsets(topic, &[p], OffsetSpec::Latest)
            .await?;
        let (Some(first), Some(end)) = (earliest.get(&p), latest.get(&p)) else {
            return Ok(());
        };
        let Some(pos) = self.positions.get_mut(key) else {
            return Ok(());
        };
        if pos.next < first.offset {
            tracing::warn!(topic, partition = p, from = pos.next, to = first.offset,
                "records deleted on the source before they were mirrored; continuing at the source's earliest offset");
            pos.next = first.offset;
        } else if pos.next > end.offset {
            let why = format!(
                "the target ends at {} but the source at {} (was the source topic recreated?)",
                pos.next, end.offset
            );
            self.stop_partition(key, &why);
        }
        Ok(())
    }
}
