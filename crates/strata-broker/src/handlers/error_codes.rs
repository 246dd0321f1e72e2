//! The error codes a response carries, as Kafka's `AbstractResponse.errorCounts()` counts them
//! for its `ErrorsPerSec{request,error}` meter: one per partition (or per topic, group,
//! resource) result, plus the top-level code where the response has one. Pure: reads a response,
//! allocates nothing; [`crate::metrics::BrokerMetrics::count_errors`] records what it yields.
//! Codes of NONE are left out (Kafka counts them too; here the request histogram's `_count`
//! already counts the requests).

use kafka_protocol::messages::*;

/// A response whose error codes can be listed.
pub trait ErrorCodes {
    /// Calls `f` with each error code of the response, NONE included.
    fn each_error_code(&self, f: &mut dyn FnMut(i16));
}

/// Responses with a top-level `error_code` and no nested result codes worth counting apart.
macro_rules! top_level {
    ($($t:ty),* $(,)?) => {$(
        impl ErrorCodes for $t {
            fn each_error_code(&self, f: &mut dyn FnMut(i16)) {
                f(self.error_code);
            }
        }
    )*};
}

top_level!(
    ApiVersionsResponse,
    InitProducerIdResponse,
    DescribeClusterResponse,
    JoinGroupResponse,
    SyncGroupResponse,
    HeartbeatResponse,
    ListGroupsResponse,
    BrokerRegistrationResponse,
    BrokerHeartbeatResponse,
    AllocateProducerIdsResponse,
    ListPartitionReassignmentsResponse,
    DescribeAclsResponse,
    SaslHandshakeResponse,
    SaslAuthenticateResponse,
    DescribeClientQuotasResponse,
);

/// Responses whose codes sit in `$list[..].$nested[..].error_code` (per partition), with
/// `$top` (true) when the response has a top-level code too.
macro_rules! per_partition {
    ($t:ty, $list:ident, $nested:ident, $top:tt) => {
        impl ErrorCodes for $t {
            fn each_error_code(&self, f: &mut dyn FnMut(i16)) {
                top_code!(self, f, $top);
                for topic in &self.$list {
                    for p in &topic.$nested {
                        f(p.error_code);
                    }
                }
            }
        }
    };
}

/// Responses whose codes sit in `$list[..].error_code` (per topic, group or resource).
macro_rules! per_entry {
    ($t:ty, $list:ident, $top:tt) => {
        impl ErrorCodes for $t {
            fn each_error_code(&self, f: &mut dyn FnMut(i16)) {
                top_code!(self, f, $top);
                for e in &self.$list {
                    f(e.error_code);
                }
            }
        }
    };
}

macro_rules! top_code {
    ($s:ident, $f:ident, true) => {
        $f($s.error_code)
    };
    ($s:ident, $f:ident, false) => {};
}

per_partition!(ProduceResponse, responses, partition_responses, false);
per_entry!(CreateAclsResponse, results, false);
per_entry!(DeleteAclsResponse, filter_results, false);
per_entry!(AlterUserScramCredentialsResponse, results, false);
per_entry!(DescribeUserScramCredentialsResponse, results, true);
per_partition!(FetchResponse, responses, partitions, true);
per_partition!(ListOffsetsResponse, topics, partitions, false);
per_partition!(OffsetForLeaderEpochResponse, topics, partitions, false);
per_partition!(DeleteRecordsResponse, topics, partitions, false);
per_partition!(OffsetCommitResponse, topics, partitions, false);
per_partition!(OffsetDeleteResponse, topics, partitions, true);
per_partition!(AlterPartitionResponse, topics, partitions, true);
per_partition!(
    ElectLeadersResponse,
    replica_election_results,
    partition_result,
    true
);
per_partition!(
    AlterPartitionReassignmentsResponse,
    responses,
    partitions,
    true
);
per_partition!(DescribeQuorumResponse, topics, partitions, true);
per_entry!(CreateTopicsResponse, topics, false);
per_entry!(DeleteTopicsResponse, responses, false);
per_entry!(CreatePartitionsResponse, results, false);
per_entry!(DescribeConfigsResponse, results, false);
per_entry!(AlterConfigsResponse, responses, false);
per_entry!(IncrementalAlterConfigsResponse, responses, false);
per_entry!(DescribeGroupsResponse, groups, false);
per_entry!(DeleteGroupsResponse, results, false);
per_entry!(LeaveGroupResponse, members, true);

impl ErrorCodes for MetadataResponse {
    fn each_error_code(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        for t in &self.topics {
            f(t.error_code);
            for p in &t.partitions {
                f(p.error_code);
            }
        }
    }
}

impl ErrorCodes for FindCoordinatorResponse {
    fn each_error_code(&self, f: &mut dyn FnMut(i16)) {
        // v4+ answers per key; before, one top-level code.
        if self.coordinators.is_empty() {
            f(self.error_code);
        }
        for c in &self.coordinators {
            f(c.error_code);
        }
    }
}

impl ErrorCodes for OffsetFetchResponse {
    fn each_error_code(&self, f: &mut dyn FnMut(i16)) {
        // v8+ answers per group; before, a top-level code and per-partition codes.
        f(self.error_code);
        for t in &self.topics {
            for p in &t.partitions {
                f(p.error_code);
            }
        }
        for g in &self.groups {
            f(g.error_code);
            for t in &g.topics {
                for p in &t.partitions {
                    f(p.error_code);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;

    fn codes_of(r: &dyn ErrorCodes) -> Vec<i16> {
        let mut out = vec![];
        r.each_error_code(&mut |c| out.push(c));
        out
    }

    #[test]
    fn produce_counts_one_code_per_partition() {
        let part =
            |code| produce_response::PartitionProduceResponse::default().with_error_code(code);
        let resp = ProduceResponse::default().with_responses(vec![
            produce_response::TopicProduceResponse::default().with_partition_responses(vec![
                part(codes::NONE),
                part(codes::NOT_ENOUGH_REPLICAS),
            ]),
            produce_response::TopicProduceResponse::default()
                .with_partition_responses(vec![part(codes::NOT_LEADER_OR_FOLLOWER)]),
        ]);
        assert_eq!(
            codes_of(&resp),
            vec![
                codes::NONE,
                codes::NOT_ENOUGH_REPLICAS,
                codes::NOT_LEADER_OR_FOLLOWER
            ]
        );
    }

    #[test]
    fn top_level_and_nested_codes_are_both_listed() {
        let resp = FetchResponse::default()
            .with_error_code(codes::NONE)
            .with_responses(vec![fetch_response::FetchableTopicResponse::default()
                .with_partitions(vec![fetch_response::PartitionData::default()
                    .with_error_code(codes::OFFSET_OUT_OF_RANGE)])]);
        assert_eq!(
            codes_of(&resp),
            vec![codes::NONE, codes::OFFSET_OUT_OF_RANGE]
        );
        let resp = CreateTopicsResponse::default()
            .with_topics(vec![create_topics_response::CreatableTopicResult::default(
            )
            .with_error_code(codes::TOPIC_ALREADY_EXISTS)]);
        assert_eq!(codes_of(&resp), vec![codes::TOPIC_ALREADY_EXISTS]);
        let resp = HeartbeatResponse::default().with_error_code(codes::NOT_COORDINATOR);
        assert_eq!(codes_of(&resp), vec![codes::NOT_COORDINATOR]);
    }
}
