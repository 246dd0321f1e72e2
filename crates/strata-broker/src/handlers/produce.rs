//! Produce: appends client record batches to the logs of the partitions this broker leads, as
//! the client sent them (the log validates CRC-32C, assigns offsets, deduplicates idempotent
//! retries). Appends run on the blocking pool, never on the async workers. `acks=all` needs
//! `min.insync.replicas` in the ISR before the append (NOT_ENOUGH_REPLICAS otherwise) and
//! completes when the high watermark passes the batch (REQUEST_TIMED_OUT at `timeout_ms`,
//! NOT_LEADER_OR_FOLLOWER if leadership moves meanwhile). Mirror targets
//! (`strata.mirror.source`) take offset-preserving appends from strata-mirror only (see
//! [`crate::mirror_target`]). A write-fenced cluster (`crate::write_fence`) answers every
//! partition NOT_LEADER_OR_FOLLOWER, except to the mirror.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use strata_kafka::now_ms;
use strata_log::{LogError, BATCH_HEADER_LEN};

use crate::authz::Op;
use crate::broker::Broker;
use crate::cluster::{wait_high_watermark, HwWait};
use crate::handlers::RequestContext;
use crate::handlers::{code, str_bytes};
use crate::metrics;
use crate::mirror_target::{self, ProduceMode};
use crate::partition::{AppendError, LeaderAppend, Partition};
use crate::write_fence::{self, Fenced};

/// One partition's append, prepared on the request path and run on the blocking pool.
struct Job {
    topic: usize,
    slot: usize,
    partition: Arc<Partition>,
    records: bytes::Bytes,
    preserve: bool,
    min_isr: usize,
}

pub async fn handle(
    broker: &Broker,
    req: ProduceRequest,
    _version: i16,
    ctx: &RequestContext,
) -> ProduceResponse {
    let acks = req.acks;
    // Held until answered, taken before the check: a planned failover's drain waits for the
    // requests that passed the check before the fence (`write_fence::WriteFence::settled`).
    let mirror = write_fence::may_produce(ctx.client_id());
    let _admission = (!mirror).then(|| broker.write_fence.admit());
    // Once per request: an atomic load (and a clock read while a mandate is set).
    let fenced = broker.write_fence.check(now_ms).filter(|_| !mirror);
    if let Some(fenced) = fenced {
        return fenced_response(req, &fenced);
    }
    let image = broker.image();
    let mut out: Vec<(String, uuid::Uuid, Vec<PartitionProduceResponse>)> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    for topic in req.topic_data {
        let meta = if topic.name.0.is_empty() && !topic.topic_id.is_nil() {
            image.topic_by_id(topic.topic_id)
        } else {
            image.topics.get(topic.name.0.as_str())
        };
        let min_isr = meta.map_or(1, |m| broker.min_insync_replicas(m));
        let mode = meta.map_or(ProduceMode::Assign, |m| {
            mirror_target::produce_mode(&m.name, &m.configs, ctx.client_id())
        });
        let name = meta.map_or_else(|| topic.name.0.to_string(), |m| m.name.clone());
        let allowed = broker.may_topic(ctx, Op::Write, &name);
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for pd in topic.partition_data {
            let resp = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            if !allowed {
                partitions.push(resp.with_error_code(code::TOPIC_AUTHORIZATION_FAILED));
                continue;
            }
            if meta.is_none_or(|m| !m.partitions.contains_key(&pd.index)) {
                partitions.push(resp.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            }
            if !(-1..=1).contains(&acks) {
                partitions.push(resp.with_error_code(code::INVALID_REQUIRED_ACKS));
                continue;
            }
            let Some(partition) = broker.led_partition(&name, pd.index) else {
                partitions.push(resp.with_error_code(broker.not_led_error(&name, pd.index)));
                continue;
            };
            if acks == -1 {
                let isr = partition.isr().len();
                if isr < min_isr {
                    partitions.push(
                        resp.with_error_code(code::NOT_ENOUGH_REPLICAS)
                            .with_error_message(Some(str_bytes(format!(
                                "The size of the current ISR {isr} is insufficient to satisfy the min.isr requirement of {min_isr} for partition {name}-{}",
                                pd.index
                            )))),
                    );
                    continue;
                }
            }
            if mode == ProduceMode::Preserve && !broker.may_cluster(ctx, Op::ClusterAction) {
                // Keeping the source's offsets rewrites history: more than WRITE on the topic.
                partitions.push(
                    resp.with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
                        .with_error_message(Some(str_bytes(
                            "Offset-preserving appends need CLUSTER_ACTION on the cluster",
                        ))),
                );
                continue;
            }
            if let ProduceMode::Refused(message) = &mode {
                partitions.push(
                    resp.with_error_code(code::POLICY_VIOLATION)
                        .with_error_message(Some(str_bytes(message.clone()))),
                );
                continue;
            }
            let Some(records) = pd.records else {
                partitions.push(resp.with_error_code(code::CORRUPT_MESSAGE));
                continue;
            };
            if records.len() > BATCH_HEADER_LEN.min(17) && records[16] < 2 {
                // Message format v0/v1 (magic byte at offset 16) is not stored.
                partitions.push(resp.with_error_code(code::UNSUPPORTED_FOR_MESSAGE_FORMAT));
                continue;
            }
            jobs.push(Job {
                topic: out.len(),
                slot: partitions.len(),
                partition,
                records,
                preserve: mode == ProduceMode::Preserve,
                min_isr,
            });
            partitions.push(resp);
        }
        out.push((name, topic.topic_id, partitions));
    }

    // Appends leave the async workers: one blocking task for the request's partitions.
    let appended: Vec<(Job, Result<LeaderAppend, AppendError>)> = if jobs.is_empty() {
        Vec::new()
    } else {
        tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|job| {
                    let result = if job.preserve {
                        job.partition.append_preserving(&job.records)
                    } else {
                        let mut buf = job.records.to_vec();
                        job.partition.append_as_leader(&mut buf, now_ms())
                    };
                    (job, result)
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    };
    let mut any_new = false;
    for (job, result) in &appended {
        if result.as_ref().is_ok_and(|a| !a.info.duplicate) {
            any_new = true;
            job.partition
                .traffic(&broker.metrics)
                .bytes_in
                .inc_by(job.records.len() as u64);
        }
    }
    if any_new {
        broker.partitions.appended.notify_waiters();
    }
    // In Kafka's produce purgatory while acks=all waits for the ISR (a dropped request leaves it).
    let waiting = (acks == -1 && appended.iter().any(|(_, r)| r.is_ok()))
        .then(|| metrics::waiting(&broker.metrics.produce_purgatory));

    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let waits = appended.into_iter().map(|(job, result)| async move {
        let answer = match result {
            Ok(LeaderAppend { info, leader_epoch }) => {
                let mut error = None;
                if acks == -1 {
                    let end = info.last_offset + 1;
                    match wait_high_watermark(&job.partition, end, leader_epoch, timeout).await {
                        // Kafka's check at completion: the ISR that replicated the batch must
                        // still hold min.insync.replicas.
                        HwWait::Reached if job.partition.isr().len() < job.min_isr => {
                            error = Some((
                                code::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                                format!(
                                    "The ISR shrank below min.insync.replicas ({}) before the records were replicated",
                                    job.min_isr
                                ),
                            ))
                        }
                        HwWait::Reached => {}
                        HwWait::NotLeader => {
                            error = Some((
                                code::NOT_LEADER_OR_FOLLOWER,
                                "Leadership moved before the records were replicated".to_string(),
                            ))
                        }
                        HwWait::TimedOut => error = Some((
                            code::REQUEST_TIMED_OUT,
                            "The records were not replicated to the ISR within the request timeout"
                                .to_string(),
                        )),
                    }
                }
                Ok((info, error))
            }
            Err(e) => Err(e),
        };
        (job, answer)
    });
    let finished = futures::future::join_all(waits).await;
    drop(waiting);
    for (job, answer) in finished {
        let slot = &mut out[job.topic].2[job.slot];
        let resp = std::mem::take(slot);
        *slot = match answer {
            Ok((info, None)) => resp
                .with_base_offset(info.base_offset)
                .with_log_append_time_ms(info.log_append_time)
                .with_log_start_offset(job.partition.log_start_offset()),
            Ok((_, Some((code, message)))) => resp
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message))),
            Err(e) => {
                let (code, message) = produce_error(&e);
                if code == code::KAFKA_STORAGE_ERROR {
                    tracing::error!(topic = %job.partition.topic, partition = job.partition.index, error = %e, "append failed");
                } else {
                    tracing::debug!(topic = %job.partition.topic, partition = job.partition.index, error = %e, "append refused");
                }
                resp.with_error_code(code)
                    .with_error_message(Some(str_bytes(message)))
            }
        };
    }
    ProduceResponse::default().with_responses(
        out.into_iter()
            .map(|(name, id, partitions)| {
                TopicProduceResponse::default()
                    .with_name(TopicName(str_bytes(name)))
                    .with_topic_id(id)
                    .with_partition_responses(partitions)
            })
            .collect(),
    )
}

/// Every partition of a fenced cluster answers NOT_LEADER_OR_FOLLOWER: clients keep the
/// records, refresh their metadata (Metadata v13+ tells the Java client to re-bootstrap) and
/// retry until their delivery timeout, so nothing is lost if they re-bootstrap to the active
/// cluster in time and nothing is appended here.
fn fenced_response(req: ProduceRequest, fenced: &Fenced) -> ProduceResponse {
    let message = str_bytes(fenced.message());
    ProduceResponse::default().with_responses(
        req.topic_data
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partition_data
                    .iter()
                    .map(|pd| {
                        PartitionProduceResponse::default()
                            .with_index(pd.index)
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(-1)
                            .with_error_code(code::NOT_LEADER_OR_FOLLOWER)
                            .with_error_message(Some(message.clone()))
                    })
                    .collect();
                TopicProduceResponse::default()
                    .with_name(t.name)
                    .with_topic_id(t.topic_id)
                    .with_partition_responses(partitions)
            })
            .collect(),
    )
}

/// Maps an append error onto the Kafka error code a producer understands.
fn produce_error(e: &AppendError) -> (i16, String) {
    let e = match e {
        AppendError::NotLeader { .. } => return (code::NOT_LEADER_OR_FOLLOWER, e.to_string()),
        AppendError::Log(e) => e,
    };
    let c = match e {
        LogError::CorruptBatch(_) => code::CORRUPT_MESSAGE,
        LogError::InvalidRecord(_) => code::INVALID_RECORD,
        LogError::RecordTooLarge => code::MESSAGE_TOO_LARGE,
        LogError::OutOfOrderSequence { .. } => code::OUT_OF_ORDER_SEQUENCE_NUMBER,
        LogError::InvalidProducerEpoch => code::INVALID_PRODUCER_EPOCH,
        LogError::UnsupportedMagic(_) => code::UNSUPPORTED_FOR_MESSAGE_FORMAT,
        _ => code::KAFKA_STORAGE_ERROR,
    };
    (c, e.to_string())
}
