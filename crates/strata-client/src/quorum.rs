//! The metadata quorum as DescribeQuorum (API key 55) reports it: the active controller (the
//! quorum leader), its epoch, the voters and the observers of `__cluster_metadata-0`. Kafka 4
//! brokers answer it on their client listener (forwarding to the active controller), and so do
//! Strata brokers run as a KRaft-like quorum, so it is sent to any broker, as Kafka's
//! `Admin.describeMetadataQuorum` does. The request builder and the response reading are pure
//! functions, tested without a broker.

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::ReplicaState;
use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::Target;
use crate::{Admin, Error};

/// The topic of the metadata log; its partition 0 is the quorum.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// The metadata quorum: who leads it and how far each member has replicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumInfo {
    /// Node id of the active controller; `None` while no leader is elected (the wire's -1).
    pub leader_id: Option<i32>,
    /// The leader's epoch (the Raft term).
    pub leader_epoch: i32,
    /// High watermark of the metadata log.
    pub high_watermark: i64,
    /// The voters, as the leader reports them.
    pub voters: Vec<QuorumReplica>,
    /// Nodes that replicate the metadata log without voting (brokers that are not
    /// controllers).
    pub observers: Vec<QuorumReplica>,
}

/// One member of the quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    pub replica_id: i32,
    /// End offset of its copy of the metadata log, -1 when unknown.
    pub log_end_offset: i64,
    /// When the leader last heard a fetch from it (ms since the epoch); `None` before
    /// DescribeQuorum v1 or when unknown.
    pub last_fetch_timestamp: Option<i64>,
    /// When it was last caught up with the leader (ms since the epoch); `None` before v1 or
    /// when unknown.
    pub last_caught_up_timestamp: Option<i64>,
}

impl QuorumInfo {
    /// Ids of the voters, in the order the leader reported them.
    pub fn voter_ids(&self) -> Vec<i32> {
        self.voters.iter().map(|r| r.replica_id).collect()
    }
}

impl Admin {
    /// Describes the metadata quorum (DescribeQuorum on any broker, which answers or forwards
    /// to the active controller). Fails with [`Error::Unsupported`] against a broker that does
    /// not serve the API (a Strata broker running as a single node, a ZooKeeper-mode Kafka).
    pub async fn describe_quorum(&self) -> Result<QuorumInfo, Error> {
        let c = &self.client;
        c.retry("DescribeQuorum", || async move {
            let conn = c.connection_for(&Target::Any).await?;
            let (version, resp) = conn
                .request(|_| describe_quorum_request(), c.timeout())
                .await?;
            quorum_info(version, resp)
        })
        .await
    }
}

/// DescribeQuorum for `__cluster_metadata` partition 0 (the same at every version).
pub(crate) fn describe_quorum_request() -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])])
}

/// Reads the quorum out of a response received at `version`: the top-level error first, then
/// the metadata partition's own.
pub(crate) fn quorum_info(version: i16, resp: DescribeQuorumResponse) -> Result<QuorumInfo, Error> {
    Error::check(
        "DescribeQuorum",
        resp.error_code,
        resp.error_message.as_deref(),
    )?;
    let partition = resp
        .topics
        .into_iter()
        .filter(|t| t.topic_name.0.as_str() == METADATA_TOPIC)
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == 0)
        .ok_or_else(|| {
            Error::Protocol(format!(
                "DescribeQuorum response does not mention {METADATA_TOPIC}-0"
            ))
        })?;
    Error::check(
        "DescribeQuorum",
        partition.error_code,
        partition.error_message.as_deref(),
    )?;
    let replica = |r: ReplicaState| QuorumReplica {
        replica_id: r.replica_id.0,
        log_end_offset: r.log_end_offset,
        last_fetch_timestamp: (version >= 1 && r.last_fetch_timestamp >= 0)
            .then_some(r.last_fetch_timestamp),
        last_caught_up_timestamp: (version >= 1 && r.last_caught_up_timestamp >= 0)
            .then_some(r.last_caught_up_timestamp),
    };
    Ok(QuorumInfo {
        leader_id: Some(partition.leader_id.0).filter(|id| *id >= 0),
        leader_epoch: partition.leader_epoch,
        high_watermark: partition.high_watermark,
        voters: partition.current_voters.into_iter().map(replica).collect(),
        observers: partition.observers.into_iter().map(replica).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::implemented;
    use bytes::BytesMut;
    use kafka_protocol::messages::describe_quorum_response::{
        PartitionData as RespPartition, TopicData as RespTopic,
    };
    use kafka_protocol::messages::{ApiKey, BrokerId};
    use kafka_protocol::protocol::{Decodable, Encodable};
    use kafka_protocol::ResponseError;

    fn state(id: i32, leo: i64, ts: i64) -> ReplicaState {
        ReplicaState::default()
            .with_replica_id(BrokerId(id))
            .with_log_end_offset(leo)
            .with_last_fetch_timestamp(ts)
            .with_last_caught_up_timestamp(ts)
    }

    fn response(leader: i32, partition_error: i16) -> DescribeQuorumResponse {
        DescribeQuorumResponse::default().with_topics(vec![RespTopic::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![RespPartition::default()
                .with_partition_index(0)
                .with_error_code(partition_error)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(7)
                .with_high_watermark(42)
                .with_current_voters(vec![state(1, 42, 1000), state(2, 40, 900)])
                .with_observers(vec![state(4, 41, -1)])])])
    }

    #[test]
    fn request_encodes_at_every_negotiable_version() {
        let (lo, hi) = implemented(ApiKey::DescribeQuorum);
        assert_eq!((lo, hi), (0, 2));
        for v in lo..=hi {
            let mut buf = BytesMut::new();
            describe_quorum_request()
                .encode(&mut buf, v)
                .unwrap_or_else(|e| panic!("v{v}: {e}"));
            let back = DescribeQuorumRequest::decode(&mut buf.freeze(), v).expect("decodes");
            assert_eq!(back.topics[0].topic_name.0.as_str(), METADATA_TOPIC);
            assert_eq!(back.topics[0].partitions[0].partition_index, 0);
        }
    }

    #[test]
    fn reads_leader_voters_and_observers_at_every_version() {
        for v in 0..=2 {
            let mut buf = BytesMut::new();
            response(2, 0).encode(&mut buf, v).expect("encodes");
            let resp = DescribeQuorumResponse::decode(&mut buf.freeze(), v).expect("decodes");
            let q = quorum_info(v, resp).expect("no error");
            assert_eq!(q.leader_id, Some(2));
            assert_eq!(q.leader_epoch, 7);
            assert_eq!(q.high_watermark, 42);
            assert_eq!(q.voter_ids(), [1, 2]);
            assert_eq!(q.observers[0].replica_id, 4);
            assert_eq!(q.observers[0].last_fetch_timestamp, None, "-1 is unknown");
            let ts = if v >= 1 { Some(1000) } else { None };
            assert_eq!(q.voters[0].last_fetch_timestamp, ts, "v{v}");
        }
    }

    #[test]
    fn no_leader_and_errors() {
        let q = quorum_info(2, response(-1, 0)).expect("no error");
        assert_eq!(q.leader_id, None);
        let e = quorum_info(2, response(1, ResponseError::NotLeaderOrFollower.code()))
            .expect_err("partition error");
        assert!(
            e.is(ResponseError::NotLeaderOrFollower) && e.is_retriable(),
            "{e}"
        );
        let top = response(1, 0).with_error_code(ResponseError::ClusterAuthorizationFailed.code());
        let e = quorum_info(2, top).expect_err("top-level error");
        assert!(e.is(ResponseError::ClusterAuthorizationFailed), "{e}");
        let empty = DescribeQuorumResponse::default();
        assert!(matches!(quorum_info(2, empty), Err(Error::Protocol(_))));
    }
}
