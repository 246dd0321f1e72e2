//! Request handlers, one module per API group. `dispatch` takes a request the connection layer
//! decoded, calls its handler and encodes the response at the request's version. Handlers never
//! fail on what a client sent: bad input becomes an error code in the response.

use bytes::BytesMut;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::broker::Broker;

pub mod api_versions;
pub mod cluster;
pub mod configs;
pub mod controller;
pub mod fetch;
pub mod groups;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod topics;

/// Who sent a request: the header and the connection's peer.
pub struct RequestContext {
    pub header: RequestHeader,
    pub peer: std::net::SocketAddr,
    /// The kind of listener the request came in on.
    pub listener: api_versions::ListenerKind,
    /// Its name (`PLAINTEXT`, ...): Metadata answers with the brokers' endpoints of this name.
    pub listener_name: std::sync::Arc<str>,
}

impl RequestContext {
    pub fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }
}

/// What the connection writes back.
pub enum Reply {
    /// Nothing (produce with acks=0).
    None,
    /// Nothing, and the connection is closed: a produce with acks=0 failed, and closing is how
    /// Kafka tells such a producer to refresh its metadata. Carries the errors for the log.
    Close(String),
    /// The encoded response body.
    Encoded(BytesMut),
}

fn encode<T: Encodable>(resp: &T, version: i16) -> anyhow::Result<Reply> {
    let mut buf = BytesMut::with_capacity(resp.compute_size(version).unwrap_or(256));
    resp.encode(&mut buf, version)?;
    Ok(Reply::Encoded(buf))
}

/// Handles one decoded request and encodes its response at the request's version.
pub async fn dispatch(
    broker: &Broker,
    request: RequestKind,
    version: i16,
    ctx: &RequestContext,
) -> anyhow::Result<Reply> {
    macro_rules! route {
        ($req:expr, $handler:path) => {{
            let resp = $handler(broker, $req, version, ctx).await;
            encode(&resp, version)
        }};
    }
    match request {
        RequestKind::ApiVersions(req) => route!(req, api_versions::handle),
        RequestKind::Metadata(req) => route!(req, metadata::handle),
        RequestKind::Produce(req) => {
            let acks = req.acks;
            let resp = produce::handle(broker, req, version, ctx).await;
            if acks != 0 {
                return encode(&resp, version);
            }
            let errors: Vec<String> = resp
                .responses
                .iter()
                .flat_map(|t| {
                    t.partition_responses
                        .iter()
                        .filter(|p| p.error_code != code::NONE)
                        .map(move |p| format!("{}-{}: error {}", t.name.0, p.index, p.error_code))
                })
                .collect();
            if errors.is_empty() {
                Ok(Reply::None)
            } else {
                Ok(Reply::Close(errors.join(", ")))
            }
        }
        RequestKind::Fetch(req) => route!(req, fetch::handle),
        RequestKind::ListOffsets(req) => route!(req, offsets::list_offsets),
        RequestKind::OffsetForLeaderEpoch(req) => route!(req, offsets::offset_for_leader_epoch),
        RequestKind::DeleteRecords(req) => route!(req, offsets::delete_records),
        RequestKind::CreateTopics(req) => route!(req, topics::create_topics),
        RequestKind::DeleteTopics(req) => route!(req, topics::delete_topics),
        RequestKind::CreatePartitions(req) => route!(req, topics::create_partitions),
        RequestKind::DescribeConfigs(req) => route!(req, configs::describe_configs),
        RequestKind::AlterConfigs(req) => route!(req, configs::alter_configs),
        RequestKind::IncrementalAlterConfigs(req) => {
            route!(req, configs::incremental_alter_configs)
        }
        RequestKind::FindCoordinator(req) => route!(req, groups::find_coordinator),
        RequestKind::JoinGroup(req) => route!(req, groups::join_group),
        RequestKind::SyncGroup(req) => route!(req, groups::sync_group),
        RequestKind::Heartbeat(req) => route!(req, groups::heartbeat),
        RequestKind::LeaveGroup(req) => route!(req, groups::leave_group),
        RequestKind::OffsetCommit(req) => route!(req, groups::offset_commit),
        RequestKind::OffsetFetch(req) => route!(req, groups::offset_fetch),
        RequestKind::ListGroups(req) => route!(req, groups::list_groups),
        RequestKind::DescribeGroups(req) => route!(req, groups::describe_groups),
        RequestKind::DeleteGroups(req) => route!(req, groups::delete_groups),
        RequestKind::InitProducerId(req) => route!(req, cluster::init_producer_id),
        RequestKind::DescribeCluster(req) => route!(req, cluster::describe_cluster),
        RequestKind::DescribeQuorum(req) => route!(req, controller::describe_quorum),
        RequestKind::BrokerRegistration(req) => route!(req, controller::broker_registration),
        RequestKind::BrokerHeartbeat(req) => route!(req, controller::broker_heartbeat),
        RequestKind::AlterPartition(req) => route!(req, controller::alter_partition),
        RequestKind::AllocateProducerIds(req) => route!(req, controller::allocate_producer_ids),
        // The connection layer decodes only advertised APIs.
        _ => anyhow::bail!("request of an API that is not served"),
    }
}

/// Kafka error codes used by the handlers (names as in Kafka's `Errors`).
pub mod code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_REQUEST: i16 = 42;
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    pub const POLICY_VIOLATION: i16 = 44;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    pub const NOT_CONTROLLER: i16 = 41;
    pub const TOPIC_DELETION_DISABLED: i16 = 73;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const INVALID_RECORD: i16 = 87;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
}

/// A refusal: the error code and the message the client sees.
pub type Refusal = (i16, String);

pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Checks a client's view of the leader epoch against ours (KIP-320).
pub fn check_leader_epoch(client: i32, ours: i32) -> i16 {
    if client < 0 || client == ours {
        code::NONE
    } else if client > ours {
        code::UNKNOWN_LEADER_EPOCH
    } else {
        code::FENCED_LEADER_EPOCH
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_epoch_checks() {
        assert_eq!(check_leader_epoch(-1, 3), code::NONE);
        assert_eq!(check_leader_epoch(3, 3), code::NONE);
        assert_eq!(check_leader_epoch(4, 3), code::UNKNOWN_LEADER_EPOCH);
        assert_eq!(check_leader_epoch(2, 3), code::FENCED_LEADER_EPOCH);
    }
}
