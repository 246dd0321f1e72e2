//! Request handlers, one module per API group. `dispatch` decodes the body of a request with
//! `kafka-protocol`, calls the handler and encodes its response at the request's version.
//! Handlers never fail on what a client sent: bad input becomes an error code in the response;
//! only an undecodable body is an `Err` (the connection layer then closes the connection).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::broker::Broker;

pub mod admin;
pub mod api_versions;
pub mod cluster;
pub mod fetch;
pub mod groups;
pub mod metadata;
pub mod offsets;
pub mod produce;

/// Who sent a request: the header and the connection's peer.
pub struct RequestContext {
    pub header: RequestHeader,
    pub peer: std::net::SocketAddr,
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
    /// The encoded response body.
    Encoded(BytesMut),
}

fn encode<T: Encodable>(resp: &T, version: i16) -> anyhow::Result<Reply> {
    let mut buf = BytesMut::with_capacity(resp.compute_size(version).unwrap_or(256));
    resp.encode(&mut buf, version)?;
    Ok(Reply::Encoded(buf))
}

/// Decodes, handles and encodes one request.
pub async fn dispatch(
    broker: &Broker,
    key: ApiKey,
    version: i16,
    ctx: &RequestContext,
    mut body: Bytes,
) -> anyhow::Result<Reply> {
    macro_rules! route {
        ($req:ty, $handler:path) => {{
            let req = <$req>::decode(&mut body, version)?;
            let resp = $handler(broker, req, version, ctx).await;
            encode(&resp, version)
        }};
    }
    match key {
        ApiKey::ApiVersions => route!(ApiVersionsRequest, api_versions::handle),
        ApiKey::Metadata => route!(MetadataRequest, metadata::handle),
        ApiKey::Produce => {
            let req = ProduceRequest::decode(&mut body, version)?;
            let acks = req.acks;
            let resp = produce::handle(broker, req, version, ctx).await;
            if acks == 0 {
                Ok(Reply::None)
            } else {
                encode(&resp, version)
            }
        }
        ApiKey::Fetch => route!(FetchRequest, fetch::handle),
        ApiKey::ListOffsets => route!(ListOffsetsRequest, offsets::list_offsets),
        ApiKey::OffsetForLeaderEpoch => {
            route!(
                OffsetForLeaderEpochRequest,
                offsets::offset_for_leader_epoch
            )
        }
        ApiKey::DeleteRecords => route!(DeleteRecordsRequest, offsets::delete_records),
        ApiKey::CreateTopics => route!(CreateTopicsRequest, admin::create_topics),
        ApiKey::DeleteTopics => route!(DeleteTopicsRequest, admin::delete_topics),
        ApiKey::CreatePartitions => route!(CreatePartitionsRequest, admin::create_partitions),
        ApiKey::DescribeConfigs => route!(DescribeConfigsRequest, admin::describe_configs),
        ApiKey::AlterConfigs => route!(AlterConfigsRequest, admin::alter_configs),
        ApiKey::IncrementalAlterConfigs => {
            route!(
                IncrementalAlterConfigsRequest,
                admin::incremental_alter_configs
            )
        }
        ApiKey::FindCoordinator => route!(FindCoordinatorRequest, groups::find_coordinator),
        ApiKey::JoinGroup => route!(JoinGroupRequest, groups::join_group),
        ApiKey::SyncGroup => route!(SyncGroupRequest, groups::sync_group),
        ApiKey::Heartbeat => route!(HeartbeatRequest, groups::heartbeat),
        ApiKey::LeaveGroup => route!(LeaveGroupRequest, groups::leave_group),
        ApiKey::OffsetCommit => route!(OffsetCommitRequest, groups::offset_commit),
        ApiKey::OffsetFetch => route!(OffsetFetchRequest, groups::offset_fetch),
        ApiKey::ListGroups => route!(ListGroupsRequest, groups::list_groups),
        ApiKey::DescribeGroups => route!(DescribeGroupsRequest, groups::describe_groups),
        ApiKey::DeleteGroups => route!(DeleteGroupsRequest, groups::delete_groups),
        ApiKey::InitProducerId => route!(InitProducerIdRequest, cluster::init_producer_id),
        ApiKey::DescribeCluster => route!(DescribeClusterRequest, cluster::describe_cluster),
        other => anyhow::bail!("{other:?} is not served"),
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
    pub const TOPIC_DELETION_DISABLED: i16 = 73;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const INVALID_RECORD: i16 = 87;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
}

/// Kafka's topic-name rule: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > 249 {
        return Err(format!(
            "Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return Err(format!(
            "Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

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
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_eu-west").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("has space").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }

    #[test]
    fn leader_epoch_checks() {
        assert_eq!(check_leader_epoch(-1, 3), code::NONE);
        assert_eq!(check_leader_epoch(3, 3), code::NONE);
        assert_eq!(check_leader_epoch(4, 3), code::UNKNOWN_LEADER_EPOCH);
        assert_eq!(check_leader_epoch(2, 3), code::FENCED_LEADER_EPOCH);
    }
}
