//! ApiVersions: the table of APIs and versions this broker serves. An API missing here is not
//! advertised and its requests close the connection. Produce is advertised from v0 although
//! requests below v3 (message format v0/v1) are refused: librdkafka derives feature flags from
//! the advertised ranges, and older releases switch compression off when Produce v0-v2 are
//! missing from the range.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use crate::broker::Broker;
use crate::handlers::code;
use crate::handlers::RequestContext;

/// (api, min, max) served. The codec's own range bounds what is decodable.
const SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    // SASL (KIP-43, KIP-152): v0 handshakes (tokens without Kafka framing) are not served.
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // No client quotas are enforced: every filter matches nothing.
    (ApiKey::DescribeClientQuotas, 0, 1),
    // Without an authorizer answered as Kafka answers them (SECURITY_DISABLED).
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

/// What a CONTROLLER listener serves: the quorum's and the controller's APIs (broker
/// lifecycle, ISR changes, producer-id blocks, forwarded topic, config, election and
/// reassignment changes, SCRAM credentials and ACLs).
const CONTROLLER_SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 4),
    // A SASL_PLAINTEXT or SASL_SSL controller listener authenticates the other nodes.
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::BrokerRegistration, 0, 4),
    (ApiKey::BrokerHeartbeat, 0, 1),
    (ApiKey::AlterPartition, 2, 3),
    (ApiKey::AllocateProducerIds, 0, 0),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

/// Which table a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Broker,
    Controller,
}

fn table_of(kind: ListenerKind) -> &'static [(ApiKey, i16, i16)] {
    match kind {
        ListenerKind::Broker => SERVED,
        ListenerKind::Controller => CONTROLLER_SERVED,
    }
}

/// The advertised (min, max) of an API on a listener of `kind`, or None.
pub fn supported_on(key: ApiKey, kind: ListenerKind) -> Option<(i16, i16)> {
    table_of(kind)
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| (*min, (*max).min(key.valid_versions().max)))
}

/// The advertised (min, max) of an API, or None when it is not served.
pub fn supported(key: ApiKey) -> Option<(i16, i16)> {
    SERVED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| (*min, *max))
}

/// Every served API with its advertised (min, max).
pub fn served() -> impl Iterator<Item = (ApiKey, i16, i16)> {
    SERVED.iter().copied()
}

/// The lowest version the codec decodes; below it a request is refused even if advertised.
pub fn decodable_min(key: ApiKey) -> i16 {
    key.valid_versions().min
}

fn table(kind: ListenerKind) -> Vec<ApiVersion> {
    table_of(kind)
        .iter()
        .filter_map(|(k, _, _)| {
            let (min, max) = supported_on(*k, kind)?;
            Some(
                ApiVersion::default()
                    .with_api_key(*k as i16)
                    .with_min_version(min)
                    .with_max_version(max),
            )
        })
        .collect()
}

pub async fn handle(
    _broker: &Broker,
    _req: ApiVersionsRequest,
    _version: i16,
    ctx: &RequestContext,
) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(code::NONE)
        .with_api_keys(table(ctx.listener))
}

/// The v0 reply to an ApiVersions request newer than we serve (KIP-511).
pub fn unsupported_version_response(kind: ListenerKind) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(code::UNSUPPORTED_VERSION)
        .with_api_keys(table(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_ranges_stay_within_the_codec() {
        for (key, min, max) in SERVED.iter().chain(CONTROLLER_SERVED) {
            let codec = key.valid_versions();
            assert!(*max <= codec.max, "{key:?} max {max} > codec {}", codec.max);
            assert!(min <= max, "{key:?}");
            if *key != ApiKey::Produce {
                assert!(*min >= codec.min, "{key:?} min {min} < codec {}", codec.min);
            }
        }
    }
}
