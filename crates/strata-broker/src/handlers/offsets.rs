//! Offset lookups and log-start moves: ListOffsets (earliest, latest, max timestamp, by
//! timestamp), OffsetForLeaderEpoch (for follower and consumer truncation checks) and
//! DeleteRecords (advances the log start offset).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use strata_log::LogError;

use crate::authz::Op;
use crate::broker::Broker;
use crate::handlers::RequestContext;
use crate::handlers::{check_leader_epoch, code};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
/// ListOffsets' replica id of a consumer; any other (a broker, or -2 for debugging) is told the
/// log end offset as the latest offset, as Kafka does (isolation applies to clients only).
const CONSUMER_REPLICA_ID: i32 = -1;

pub async fn list_offsets(
    broker: &Broker,
    req: ListOffsetsRequest,
    version: i16,
    ctx: &RequestContext,
) -> ListOffsetsResponse {
    let from_client = req.replica_id.0 == CONSUMER_REPLICA_ID;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let allowed = broker.may_topic(ctx, Op::Describe, &t.name.0);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    if !allowed {
                        return resp.with_error_code(code::TOPIC_AUTHORIZATION_FAILED);
                    }
                    let Some(part) = broker.led_partition(&t.name.0, p.partition_index) else {
                        return resp.with_error_code(broker.not_led_error(&t.name.0, p.partition_index));
                    };
                    let epoch_error = check_leader_epoch(p.current_leader_epoch, part.leader_epoch());
                    if epoch_error != code::NONE {
                        return resp.with_error_code(epoch_error);
                    }
                    let epoch = part.leader_epoch();
                    let found = match p.timestamp {
                        LATEST if from_client => Ok(Some((part.high_watermark(), -1))),
                        LATEST => Ok(Some((part.log_end_offset(), -1))),
                        EARLIEST | EARLIEST_LOCAL => Ok(Some((part.log_start_offset(), -1))),
                        LATEST_TIERED => Ok(Some((-1, -1))),
                        MAX_TIMESTAMP => part.log.max_timestamp(),
                        ts if ts >= 0 => part.log.offset_for_timestamp(ts),
                        _ => Ok(Some((-1, -1))),
                    };
                    match found {
                        Ok(Some((offset, timestamp))) => resp
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            // The leader epoch field exists from v4 on.
                            .with_leader_epoch(if offset >= 0 && version >= 4 {
                                epoch
                            } else {
                                -1
                            }),
                        Ok(None) => resp,
                        Err(e) => {
                            tracing::error!(topic = %t.name.0, partition = p.partition_index, error = %e, "offset lookup failed");
                            resp.with_error_code(code::KAFKA_STORAGE_ERROR)
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

pub async fn offset_for_leader_epoch(
    broker: &Broker,
    req: OffsetForLeaderEpochRequest,
    _version: i16,
    ctx: &RequestContext,
) -> OffsetForLeaderEpochResponse {
    // Followers ask as the cluster (CLUSTER_ACTION), consumers per topic (DESCRIBE).
    let follower = req.replica_id.0 >= 0;
    let cluster_allowed = follower && broker.may_cluster(ctx, Op::ClusterAction);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let allowed = if follower {
                cluster_allowed
            } else {
                broker.may_topic(ctx, Op::Describe, &t.topic.0)
            };
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    if !allowed {
                        return resp.with_error_code(code::TOPIC_AUTHORIZATION_FAILED);
                    }
                    let Some(part) = broker.led_partition(&t.topic.0, p.partition) else {
                        return resp.with_error_code(broker.not_led_error(&t.topic.0, p.partition));
                    };
                    let epoch_error =
                        check_leader_epoch(p.current_leader_epoch, part.leader_epoch());
                    if epoch_error != code::NONE {
                        return resp.with_error_code(epoch_error);
                    }
                    let (epoch, end) = if p.leader_epoch >= part.leader_epoch() {
                        (part.leader_epoch(), part.log_end_offset())
                    } else {
                        part.log.end_offset_for_epoch(p.leader_epoch)
                    };
                    resp.with_leader_epoch(epoch).with_end_offset(end)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

pub async fn delete_records(
    broker: &Broker,
    req: DeleteRecordsRequest,
    _version: i16,
    ctx: &RequestContext,
) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let allowed = broker.may_topic(ctx, Op::Delete, &t.name.0);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    if !allowed {
                        return resp.with_error_code(code::TOPIC_AUTHORIZATION_FAILED);
                    }
                    let Some(part) = broker.led_partition(&t.name.0, p.partition_index) else {
                        return resp.with_error_code(broker.not_led_error(&t.name.0, p.partition_index));
                    };
                    let hw = part.high_watermark();
                    // -1 means "up to the high watermark"; beyond it is out of range.
                    let target = if p.offset == -1 { hw } else { p.offset };
                    if target < 0 || target > hw {
                        return resp.with_error_code(code::OFFSET_OUT_OF_RANGE);
                    }
                    match part.log.delete_records_before(target) {
                        Ok(low) => {
                            part.clamp_high_watermark();
                            resp.with_low_watermark(low)
                        }
                        Err(LogError::OffsetOutOfRange { .. }) => {
                            resp.with_error_code(code::OFFSET_OUT_OF_RANGE)
                        }
                        Err(e) => {
                            tracing::error!(topic = %t.name.0, partition = p.partition_index, error = %e, "delete records failed");
                            resp.with_error_code(code::KAFKA_STORAGE_ERROR)
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
