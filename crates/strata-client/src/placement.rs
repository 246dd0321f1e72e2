//! Leadership and replica placement through Kafka's own admin APIs, so that the same calls work
//! against Apache Kafka and Strata: ElectLeaders (preferred or unclean, with a result per
//! partition), AlterPartitionReassignments (a target replica list, or `None` to cancel),
//! ListPartitionReassignments, IncrementalAlterConfigs on BROKER resources (one broker, or the
//! cluster-wide default `""`, as `kafka-configs --entity-type brokers` does; where the
//! replication throttles live) and the under-replicated partitions Metadata shows.
//!
//! Where each request goes follows Kafka's admin client: the partition APIs to the controller
//! (a KRaft broker forwards them to the quorum), a broker's own config to that broker, the
//! default broker config to any broker. Per-partition errors are answers and are returned, not
//! retried; only a request-level retriable error is retried. Request builders are pure.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ElectLeadersRequest,
    ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::admin::{incremental_alter_request, RESOURCE_BROKER};
use crate::client::Target;
use crate::metadata::ClusterMetadata;
use crate::{Admin, ConfigOp, Error};

/// Which leader ElectLeaders picks (`ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// The first replica of the assignment, if it is in the ISR.
    Preferred,
    /// Any live replica, even out of the ISR (may lose acknowledged records).
    Unclean,
}

impl ElectionType {
    fn code(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }
}

/// A partition by topic name and index.
pub type TopicPartition = (String, i32);

/// A reassignment request for one partition: its new replicas, or `None` to cancel.
pub type ReplicaChange = (TopicPartition, Option<Vec<i32>>);

/// One partition's outcome of ElectLeaders or AlterPartitionReassignments: `Ok` or the Kafka
/// error the controller gave it (`ELECTION_NOT_NEEDED` for a preferred leader already leading,
/// `NO_REASSIGNMENT_IN_PROGRESS` for a cancel of nothing, ...).
pub type PartitionOutcomes = BTreeMap<TopicPartition, Result<(), Error>>;

/// A reassignment the controller is carrying out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    /// The current replica set (target and leaving replicas together while it runs).
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// A partition that is under-replicated or has no leader, as Metadata reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnderReplicated {
    pub topic: String,
    pub partition: i32,
    /// `None` when the partition has no leader (offline).
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

impl ClusterMetadata {
    /// Partitions whose ISR is shorter than their replica set, or that have no leader (-1),
    /// sorted by topic and partition. Pure.
    pub fn under_replicated(&self) -> Vec<UnderReplicated> {
        let mut out = Vec::new();
        for (name, topic) in &self.topics {
            for p in &topic.partitions {
                if p.under_replicated() || p.leader < 0 {
                    out.push(UnderReplicated {
                        topic: name.clone(),
                        partition: p.partition,
                        leader: (p.leader >= 0).then_some(p.leader),
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Groups partitions by topic, keeping each topic's partitions in the order given.
fn by_topic<'a, T>(items: impl IntoIterator<Item = (&'a str, T)>) -> BTreeMap<&'a str, Vec<T>> {
    let mut topics: BTreeMap<&str, Vec<T>> = BTreeMap::new();
    for (topic, item) in items {
        topics.entry(topic).or_default().push(item);
    }
    topics
}

impl Admin {
    /// Elects leaders for `partitions` (`None`: every partition, as
    /// `kafka-leader-election --all-topic-partitions`). Returns each partition's outcome; with
    /// `None` the controller reports only the partitions it considered.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<PartitionOutcomes, Error> {
        let c = &self.client;
        let timeout_ms = self.broker_timeout_ms();
        c.retry("ElectLeaders", || async move {
            let conn = c.connection_for(&Target::Controller).await?;
            let (_, resp) = conn
                .request(
                    |_| elect_leaders_request(election, partitions, timeout_ms),
                    c.timeout(),
                )
                .await?;
            Error::check("ElectLeaders", resp.error_code, None)?;
            let mut out = PartitionOutcomes::new();
            for t in resp.replica_election_results {
                for p in t.partition_result {
                    out.insert(
                        (t.topic.0.to_string(), p.partition_id),
                        Error::check("ElectLeaders", p.error_code, p.error_message.as_deref()),
                    );
                }
            }
            Ok(out)
        })
        .await
    }

    /// Starts (a replica list) or cancels (`None`) reassignments. Returns each partition's
    /// outcome; a request-level error (e.g. not authorized) fails the whole call.
    pub async fn alter_partition_reassignments(
        &self,
        changes: &[ReplicaChange],
    ) -> Result<PartitionOutcomes, Error> {
        if changes.is_empty() {
            return Ok(PartitionOutcomes::new());
        }
        let c = &self.client;
        let timeout_ms = self.broker_timeout_ms();
        c.retry("AlterPartitionReassignments", || async move {
            let conn = c.connection_for(&Target::Controller).await?;
            let (_, resp) = conn
                .request(
                    |_| alter_reassignments_request(changes, timeout_ms),
                    c.timeout(),
                )
                .await?;
            Error::check(
                "AlterPartitionReassignments",
                resp.error_code,
                resp.error_message.as_deref(),
            )?;
            let mut out = PartitionOutcomes::new();
            for t in resp.responses {
                for p in t.partitions {
                    out.insert(
                        (t.name.0.to_string(), p.partition_index),
                        Error::check(
                            "AlterPartitionReassignments",
                            p.error_code,
                            p.error_message.as_deref(),
                        ),
                    );
                }
            }
            Ok(out)
        })
        .await
    }

    /// The reassignments in progress, for `partitions` (`None`: all), sorted by topic and
    /// partition. Partitions that are not moving are absent.
    pub async fn list_partition_reassignments(
        &self,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<Vec<OngoingReassignment>, Error> {
        let c = &self.client;
        let timeout_ms = self.broker_timeout_ms();
        c.retry("ListPartitionReassignments", || async move {
            let conn = c.connection_for(&Target::Controller).await?;
            let (_, resp) = conn
                .request(
                    |_| list_reassignments_request(partitions, timeout_ms),
                    c.timeout(),
                )
                .await?;
            Error::check(
                "ListPartitionReassignments",
                resp.error_code,
                resp.error_message.as_deref(),
            )?;
            let ids = |v: Vec<BrokerId>| v.into_iter().map(|b| b.0).collect::<Vec<i32>>();
            let mut out: Vec<OngoingReassignment> = resp
                .topics
                .into_iter()
                .flat_map(|t| {
                    let topic = t.name.0.to_string();
                    t.partitions.into_iter().map(move |p| OngoingReassignment {
                        topic: topic.clone(),
                        partition: p.partition_index,
                        replicas: ids(p.replicas),
                        adding: ids(p.adding_replicas),
                        removing: ids(p.removing_replicas),
                    })
                })
                .collect();
            out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            Ok(out)
        })
        .await
    }

    /// Sets and deletes dynamic broker configs: of broker `broker` (sent to that broker), or
    /// with `None` the cluster-wide default every broker inherits (resource name `""`, sent to
    /// any broker), as `kafka-configs --entity-type brokers [--entity-name ID | --entity-default]`.
    pub async fn incremental_alter_broker_configs(
        &self,
        broker: Option<i32>,
        ops: &[ConfigOp],
    ) -> Result<(), Error> {
        if ops.is_empty() {
            return Ok(());
        }
        let c = &self.client;
        let name = broker.map(|id| id.to_string()).unwrap_or_default();
        let name = name.as_str();
        let target = &broker.map_or(Target::Any, Target::Broker);
        c.retry("IncrementalAlterConfigs", || async move {
            let conn = c.connection_for(target).await?;
            let (_, resp) = conn
                .request(
                    |_| incremental_alter_request(RESOURCE_BROKER, name, ops),
                    c.timeout(),
                )
                .await?;
            let result = resp
                .responses
                .into_iter()
                .find(|r| r.resource_type == RESOURCE_BROKER && r.resource_name.as_str() == name)
                .ok_or_else(|| {
                    Error::Protocol(format!(
                        "IncrementalAlterConfigs response does not mention broker {name:?}"
                    ))
                })?;
            Error::check(
                "IncrementalAlterConfigs",
                result.error_code,
                result.error_message.as_deref(),
            )
        })
        .await
    }

    /// Partitions that are under-replicated or leaderless, from a fresh Metadata request.
    pub async fn under_replicated_partitions(&self) -> Result<Vec<UnderReplicated>, Error> {
        Ok(self.client.metadata(None).await?.under_replicated())
    }
}

/// Whether a per-partition outcome means "already so": a preferred leader that already leads.
pub fn election_not_needed(outcome: &Result<(), Error>) -> bool {
    matches!(outcome, Err(e) if e.is(ResponseError::ElectionNotNeeded))
}

/// ElectLeaders (v1+: the election type is a field; v0 could only ask for preferred).
pub(crate) fn elect_leaders_request(
    election: ElectionType,
    partitions: Option<&[TopicPartition]>,
    timeout_ms: i32,
) -> ElectLeadersRequest {
    let topic_partitions = partitions.map(|ps| {
        by_topic(ps.iter().map(|(t, p)| (t.as_str(), *p)))
            .into_iter()
            .map(|(topic, partitions)| {
                TopicPartitions::default()
                    .with_topic(TopicName(sb(topic)))
                    .with_partitions(partitions)
            })
            .collect()
    });
    ElectLeadersRequest::default()
        .with_election_type(election.code())
        .with_topic_partitions(topic_partitions)
        .with_timeout_ms(timeout_ms)
}

pub(crate) fn alter_reassignments_request(
    changes: &[ReplicaChange],
    timeout_ms: i32,
) -> AlterPartitionReassignmentsRequest {
    let topics = by_topic(changes.iter().map(|((t, p), replicas)| {
        let partition = ReassignablePartition::default()
            .with_partition_index(*p)
            .with_replicas(
                replicas
                    .as_ref()
                    .map(|r| r.iter().copied().map(BrokerId).collect()),
            );
        (t.as_str(), partition)
    }));
    AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    ReassignableTopic::default()
                        .with_name(TopicName(sb(name)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

pub(crate) fn list_reassignments_request(
    partitions: Option<&[TopicPartition]>,
    timeout_ms: i32,
) -> ListPartitionReassignmentsRequest {
    let topics = partitions.map(|ps| {
        by_topic(ps.iter().map(|(t, p)| (t.as_str(), *p)))
            .into_iter()
            .map(|(name, indexes)| {
                ListPartitionReassignmentsTopics::default()
                    .with_name(TopicName(sb(name)))
                    .with_partition_indexes(indexes)
            })
            .collect()
    });
    ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{PartitionMetadata, TopicMetadata};
    use crate::versions::implemented;
    use bytes::BytesMut;
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::protocol::{Decodable, Encodable};

    /// Encodes at every version this client negotiates and decodes it back, as a broker would.
    fn round_trips<R: Encodable + Decodable + PartialEq + std::fmt::Debug>(key: ApiKey, req: &R) {
        let (lo, hi) = implemented(key);
        assert!(lo <= hi, "{key:?} has versions");
        for v in lo..=hi {
            let mut buf = BytesMut::new();
            req.encode(&mut buf, v)
                .unwrap_or_else(|e| panic!("{key:?} v{v}: {e}"));
            let back =
                R::decode(&mut buf.freeze(), v).unwrap_or_else(|e| panic!("{key:?} v{v}: {e}"));
            assert_eq!(&back, req, "{key:?} v{v}");
        }
    }

    fn tp(t: &str, p: i32) -> TopicPartition {
        (t.to_owned(), p)
    }

    #[test]
    fn elections_group_by_topic_and_null_means_all() {
        let ps = [tp("a", 1), tp("b", 0), tp("a", 0)];
        let req = elect_leaders_request(ElectionType::Unclean, Some(&ps), 5000);
        assert_eq!(req.election_type, 1);
        let tps = req.topic_partitions.as_ref().expect("listed");
        assert_eq!(tps.len(), 2);
        assert_eq!(tps[0].topic.0.as_str(), "a");
        assert_eq!(tps[0].partitions, [1, 0]);
        round_trips(ApiKey::ElectLeaders, &req);
        let all = elect_leaders_request(ElectionType::Preferred, None, 5000);
        assert_eq!(all.election_type, 0);
        assert!(all.topic_partitions.is_none());
        round_trips(ApiKey::ElectLeaders, &all);
    }

    #[test]
    fn a_cancel_is_a_null_replica_list() {
        let changes = [(tp("t", 0), Some(vec![3, 1, 2])), (tp("t", 1), None)];
        let req = alter_reassignments_request(&changes, 5000);
        let parts = &req.topics[0].partitions;
        assert_eq!(
            parts[0].replicas,
            Some(vec![BrokerId(3), BrokerId(1), BrokerId(2)])
        );
        assert_eq!(parts[1].replicas, None);
        round_trips(ApiKey::AlterPartitionReassignments, &req);
    }

    #[test]
    fn list_reassignments_of_some_or_all() {
        let req = list_reassignments_request(Some(&[tp("t", 2)]), 5000);
        let topics = req.topics.as_ref().expect("listed");
        assert_eq!(topics[0].partition_indexes, [2]);
        round_trips(ApiKey::ListPartitionReassignments, &req);
        let all = list_reassignments_request(None, 5000);
        assert!(all.topics.is_none());
        round_trips(ApiKey::ListPartitionReassignments, &all);
    }

    #[test]
    fn broker_config_requests_round_trip() {
        let ops = [
            ConfigOp::Set("leader.replication.throttled.rate".into(), "1000".into()),
            ConfigOp::Delete("follower.replication.throttled.rate".into()),
        ];
        for name in ["1", ""] {
            let req = incremental_alter_request(RESOURCE_BROKER, name, &ops);
            assert_eq!(req.resources[0].resource_type, 4);
            round_trips(ApiKey::IncrementalAlterConfigs, &req);
        }
    }

    #[test]
    fn under_replicated_counts_short_isr_and_missing_leaders() {
        let part = |partition, leader, replicas: &[i32], isr: &[i32]| PartitionMetadata {
            partition,
            leader,
            leader_epoch: 0,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            offline: vec![],
        };
        let mut meta = ClusterMetadata::default();
        meta.topics.insert(
            "t".into(),
            TopicMetadata {
                name: "t".into(),
                id: None,
                internal: false,
                partitions: vec![
                    part(2, -1, &[1], &[1]),
                    part(0, 1, &[1, 2, 3], &[1, 2, 3]),
                    part(1, 1, &[1, 2, 3], &[1, 3]),
                ],
            },
        );
        let urp = meta.under_replicated();
        let labels: Vec<(i32, Option<i32>)> = urp.iter().map(|u| (u.partition, u.leader)).collect();
        assert_eq!(labels, [(1, Some(1)), (2, None)]);
        assert_eq!(urp[0].isr, [1, 3]);
    }

    #[test]
    fn election_not_needed_is_recognised() {
        let not_needed = Error::check(
            "ElectLeaders",
            ResponseError::ElectionNotNeeded.code(),
            None,
        );
        assert!(election_not_needed(&not_needed));
        assert!(!election_not_needed(&Ok(())));
        let other = Error::check(
            "ElectLeaders",
            ResponseError::PreferredLeaderNotAvailable.code(),
            None,
        );
        assert!(!election_not_needed(&other));
    }
}
