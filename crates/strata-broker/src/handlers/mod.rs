//! Request handlers, one module per API group. `dispatch` takes a request the connection layer
//! decoded, calls its handler and encodes the response at the request's version. Handlers never
//! fail on what a client sent: bad input becomes an error code in the response.

use bytes::BytesMut;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;

use crate::broker::Broker;

pub mod acls;
pub mod api_versions;
pub mod cluster;
pub mod configs;
pub mod controller;
pub mod error_codes;
pub mod fetch;
pub mod groups;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod replicas;
pub mod scram;
pub mod topics;

/// Who sent a request: the header and the connection's peer.
pub struct RequestContext {
    pub header: RequestHeader,
    pub peer: std::net::SocketAddr,
    /// The kind of listener the request came in on.
    pub listener: api_versions::ListenerKind,
    /// Its name (`PLAINTEXT`, ...): Metadata answers with the brokers' endpoints of this name.
    pub listener_name: std::sync::Arc<str>,
    /// Who authenticated the connection (`User:<name>`), `User:ANONYMOUS` without SASL.
    pub principal: std::sync::Arc<str>,
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

/// Handles one decoded request of `key` and encodes its response at the request's version;
/// the error codes of the response are counted in the broker's metrics.
pub async fn dispatch(
    broker: &Broker,
    key: ApiKey,
    request: RequestKind,
    version: i16,
    ctx: &RequestContext,
) -> anyhow::Result<Reply> {
    let count = |resp: &dyn error_codes::ErrorCodes| {
        resp.each_error_code(&mut |code| broker.metrics.count_error(key, code))
    };
    macro_rules! route {
        ($req:expr, $handler:path) => {{
            let resp = $handler(broker, $req, version, ctx).await;
            count(&resp);
            encode(&resp, version)
        }};
    }
    match request {
        RequestKind::ApiVersions(req) => route!(req, api_versions::handle),
        RequestKind::Metadata(req) => route!(req, metadata::handle),
        RequestKind::Produce(req) => {
            let acks = req.acks;
            let resp = produce::handle(broker, req, version, ctx).await;
            count(&resp);
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
        RequestKind::OffsetDelete(req) => route!(req, groups::offset_delete),
        RequestKind::InitProducerId(req) => route!(req, cluster::init_producer_id),
        RequestKind::DescribeCluster(req) => route!(req, cluster::describe_cluster),
        RequestKind::DescribeQuorum(req) => route!(req, controller::describe_quorum),
        RequestKind::BrokerRegistration(req) => route!(req, controller::broker_registration),
        RequestKind::BrokerHeartbeat(req) => route!(req, controller::broker_heartbeat),
        RequestKind::AlterPartition(req) => route!(req, controller::alter_partition),
        RequestKind::AllocateProducerIds(req) => route!(req, controller::allocate_producer_ids),
        RequestKind::ElectLeaders(req) => route!(req, replicas::elect_leaders),
        RequestKind::AlterPartitionReassignments(req) => {
            route!(req, replicas::alter_partition_reassignments)
        }
        RequestKind::ListPartitionReassignments(req) => {
            route!(req, replicas::list_partition_reassignments)
        }
        RequestKind::SaslHandshake(req) => route!(req, scram::sasl_handshake),
        RequestKind::SaslAuthenticate(req) => route!(req, scram::sasl_authenticate),
        RequestKind::AlterUserScramCredentials(req) => {
            route!(req, scram::alter_user_scram_credentials)
        }
        RequestKind::DescribeClientQuotas(req) => route!(req, scram::describe_client_quotas),
        RequestKind::DescribeUserScramCredentials(req) => {
            route!(req, scram::describe_user_scram_credentials)
        }
        RequestKind::DescribeAcls(req) => route!(req, acls::describe_acls),
        RequestKind::CreateAcls(req) => route!(req, acls::create_acls),
        RequestKind::DeleteAcls(req) => route!(req, acls::delete_acls),
        // The connection layer decodes only advertised APIs.
        _ => anyhow::bail!("request of an API that is not served"),
    }
}

/// Kafka error codes (names as in Kafka's `Errors`), kept in [`crate::codes`].
pub use crate::codes as code;

pub use crate::codes::{str_bytes, Refusal};

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
