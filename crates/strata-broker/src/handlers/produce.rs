//! Produce: appends client record batches to partition logs as the client sent them (the log
//! validates CRC-32C, assigns offsets, deduplicates idempotent retries). acks 0, 1 and all are
//! accepted; with one replica the in-sync set is this broker alone, so `acks=all` on a topic whose
//! `min.insync.replicas` exceeds 1 fails with NOT_ENOUGH_REPLICAS, as Kafka does. Mirror
//! targets (`strata.mirror.source`) take offset-preserving appends from strata-mirror only
//! (see [`crate::mirror_target`]).

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use strata_kafka::now_ms;
use strata_log::{LogError, BATCH_HEADER_LEN};

use crate::broker::Broker;
use crate::handlers::RequestContext;
use crate::handlers::{code, str_bytes};
use crate::mirror_target::{self, ProduceMode};

pub async fn handle(
    broker: &Broker,
    req: ProduceRequest,
    _version: i16,
    ctx: &RequestContext,
) -> ProduceResponse {
    let acks = req.acks;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut appended = false;
    for topic in req.topic_data {
        let meta = if topic.name.0.is_empty() && !topic.topic_id.is_nil() {
            broker.metadata.topic_by_id(topic.topic_id)
        } else {
            broker.metadata.topic(&topic.name.0)
        };
        let min_isr = meta
            .as_ref()
            .and_then(|m| m.configs.get("min.insync.replicas"))
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(broker.config.min_insync_replicas);
        let mode = meta.as_ref().map_or(ProduceMode::Assign, |m| {
            mirror_target::produce_mode(&m.name, &m.configs, ctx.client_id())
        });
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for pd in topic.partition_data {
            let mut resp = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let partition = meta
                .as_ref()
                .and_then(|m| broker.partitions.get(&m.name, pd.index));
            let Some(partition) = partition else {
                partitions.push(resp.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            if !(-1..=1).contains(&acks) {
                partitions.push(resp.with_error_code(code::INVALID_REQUIRED_ACKS));
                continue;
            }
            if acks == -1 && min_isr > 1 {
                partitions.push(
                    resp.with_error_code(code::NOT_ENOUGH_REPLICAS)
                        .with_error_message(Some(str_bytes(format!(
                            "The size of the current ISR 1 is insufficient to satisfy the min.isr requirement of {min_isr}"
                        )))),
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
            let result = if mode == ProduceMode::Preserve {
                partition.append_preserving(&records)
            } else {
                let mut buf = records.to_vec();
                partition.append_as_leader(&mut buf, now_ms())
            };
            match result {
                Ok(info) => {
                    appended |= !info.duplicate;
                    resp = resp
                        .with_base_offset(info.base_offset)
                        .with_log_append_time_ms(info.log_append_time)
                        .with_log_start_offset(partition.log_start_offset());
                }
                Err(e) => {
                    let (code, message) = produce_error(&e);
                    if code == code::KAFKA_STORAGE_ERROR {
                        tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "append failed");
                    } else {
                        tracing::debug!(topic = %partition.topic, partition = partition.index, error = %e, "append refused");
                    }
                    resp = resp
                        .with_error_code(code)
                        .with_error_message(Some(str_bytes(message)));
                }
            }
            partitions.push(resp);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(TopicName(str_bytes(
                    meta.map(|m| m.name)
                        .unwrap_or_else(|| topic.name.0.to_string()),
                )))
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if appended {
        broker.partitions.appended.notify_waiters();
    }
    ProduceResponse::default().with_responses(responses)
}

/// Maps a log error onto the Kafka error code a producer understands.
fn produce_error(e: &LogError) -> (i16, String) {
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
