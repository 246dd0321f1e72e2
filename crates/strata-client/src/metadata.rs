//! The cluster as Metadata and DescribeCluster describe it, and the client's cache of it.
//! Pure: conversions from responses and lookups; the client decides when to refresh. Topics
//! whose entry carries an error (unknown, invalid name, being created) are left out of a
//! [`ClusterMetadata`], so `topics.get(name)` answers "does it exist and is it usable".

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::MetadataResponse;
use uuid::Uuid;

/// What one Metadata request returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    /// The controller the broker named (`None` when it named none, i.e. -1).
    pub controller_id: Option<i32>,
    pub brokers: Vec<BrokerInfo>,
    pub topics: BTreeMap<String, TopicMetadata>,
}

/// A broker and the address it advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`, bracketing IPv6 literals.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A topic and its partitions, sorted by partition index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    /// The topic id (Metadata v10+), `None` when the broker sent none.
    pub id: Option<Uuid>,
    pub internal: bool,
    pub partitions: Vec<PartitionMetadata>,
}

impl TopicMetadata {
    /// The partition with index `partition`.
    pub fn partition(&self, partition: i32) -> Option<&PartitionMetadata> {
        self.partitions.iter().find(|p| p.partition == partition)
    }
}

/// One partition: its leader (-1 when none), leader epoch (-1 when unknown) and replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
}

impl PartitionMetadata {
    /// Fewer in-sync replicas than replicas.
    pub fn under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }
}

/// What DescribeCluster returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: String,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
}

impl ClusterMetadata {
    /// Converts a Metadata response; topics with a topic-level error are left out.
    pub(crate) fn from_response(resp: MetadataResponse) -> ClusterMetadata {
        let mut brokers: Vec<BrokerInfo> = resp
            .brokers
            .into_iter()
            .map(|b| BrokerInfo {
                id: b.node_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.map(|r| r.to_string()),
            })
            .collect();
        brokers.sort_by_key(|b| b.id);
        let topics = resp
            .topics
            .into_iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| {
                let name = t.name?.0.to_string();
                let mut partitions: Vec<PartitionMetadata> = t
                    .partitions
                    .into_iter()
                    .map(|p| PartitionMetadata {
                        partition: p.partition_index,
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                        offline: p.offline_replicas.iter().map(|b| b.0).collect(),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                let topic = TopicMetadata {
                    name: name.clone(),
                    id: (!t.topic_id.is_nil()).then_some(t.topic_id),
                    internal: t.is_internal,
                    partitions,
                };
                Some((name, topic))
            })
            .collect();
        ClusterMetadata {
            cluster_id: resp.cluster_id.map(|c| c.to_string()),
            controller_id: (resp.controller_id.0 >= 0).then_some(resp.controller_id.0),
            brokers,
            topics,
        }
    }

    /// The broker with id `id`.
    pub fn broker(&self, id: i32) -> Option<&BrokerInfo> {
        self.brokers.iter().find(|b| b.id == id)
    }

    /// The topic whose id is `id`.
    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicMetadata> {
        self.topics.values().find(|t| t.id == Some(id))
    }
}

/// The client's cached view: the last metadata plus when it was fetched and whether an error
/// made it suspect.
#[derive(Debug, Default)]
pub(crate) struct MetadataCache {
    pub(crate) meta: ClusterMetadata,
    fetched_at: Option<Instant>,
    stale: bool,
}

impl MetadataCache {
    /// Takes in a response. `requested` are the topics asked for (`None` = all): those not
    /// in the response no longer exist and are dropped; other cached topics are kept.
    pub(crate) fn update(&mut self, fresh: ClusterMetadata, requested: Option<&[String]>) {
        match requested {
            None => self.meta = fresh,
            Some(names) => {
                for name in names {
                    self.meta.topics.remove(name);
                }
                self.meta.cluster_id = fresh.cluster_id;
                self.meta.controller_id = fresh.controller_id;
                self.meta.brokers = fresh.brokers;
                self.meta.topics.extend(fresh.topics);
            }
        }
        self.fetched_at = Some(Instant::now());
        self.stale = false;
    }

    /// Marks the cache suspect: the next lookup refreshes it.
    pub(crate) fn invalidate(&mut self) {
        self.stale = true;
    }

    /// Whether the cache must be refreshed before routing by it.
    pub(crate) fn needs_refresh(&self, max_age: Duration) -> bool {
        self.stale || self.fetched_at.is_none_or(|t| t.elapsed() >= max_age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn topic(
        name: &str,
        error: i16,
        partitions: &[(i32, &[i32], &[i32])],
    ) -> MetadataResponseTopic {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.into()))))
            .with_error_code(error)
            .with_topic_id(Uuid::from_u128(7))
            .with_partitions(
                partitions
                    .iter()
                    .map(|(i, replicas, isr)| {
                        MetadataResponsePartition::default()
                            .with_partition_index(*i)
                            .with_leader_id(BrokerId(replicas[0]))
                            .with_leader_epoch(3)
                            .with_replica_nodes(replicas.iter().map(|b| BrokerId(*b)).collect())
                            .with_isr_nodes(isr.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect(),
            )
    }

    fn response() -> MetadataResponse {
        MetadataResponse::default()
            .with_cluster_id(Some(StrBytes::from_static_str("c1")))
            .with_controller_id(BrokerId(2))
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(2))
                    .with_host(StrBytes::from_static_str("b2"))
                    .with_port(9092),
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("::1"))
                    .with_port(9093)
                    .with_rack(Some(StrBytes::from_static_str("zone-a"))),
            ])
            .with_topics(vec![
                topic("orders", 0, &[(1, &[2, 1], &[2]), (0, &[1, 2], &[1, 2])]),
                topic("missing", 3, &[]),
            ])
    }

    #[test]
    fn converts_a_metadata_response() {
        let m = ClusterMetadata::from_response(response());
        assert_eq!(m.cluster_id.as_deref(), Some("c1"));
        assert_eq!(m.controller_id, Some(2));
        assert_eq!(m.brokers[0].id, 1, "sorted by id");
        assert_eq!(m.brokers[0].address(), "[::1]:9093");
        assert_eq!(m.brokers[0].rack.as_deref(), Some("zone-a"));
        assert_eq!(m.brokers[1].address(), "b2:9092");
        assert!(
            !m.topics.contains_key("missing"),
            "errored topics are left out"
        );
        let orders = &m.topics["orders"];
        assert_eq!(orders.id, Some(Uuid::from_u128(7)));
        assert_eq!(orders.partitions[0].partition, 0, "sorted by index");
        assert!(!orders.partitions[0].under_replicated());
        assert!(orders.partitions[1].under_replicated());
        assert_eq!(orders.partition(1).map(|p| p.leader), Some(2));
        assert_eq!(
            m.topic_by_id(Uuid::from_u128(7)).map(|t| t.name.as_str()),
            Some("orders")
        );
    }

    #[test]
    fn no_controller_is_none() {
        let m = ClusterMetadata::from_response(response().with_controller_id(BrokerId(-1)));
        assert_eq!(m.controller_id, None);
    }

    #[test]
    fn partial_updates_keep_other_topics_and_drop_vanished_ones() {
        let mut cache = MetadataCache::default();
        assert!(cache.needs_refresh(Duration::from_secs(60)));
        cache.update(ClusterMetadata::from_response(response()), None);
        assert!(!cache.needs_refresh(Duration::from_secs(60)));
        assert!(cache.needs_refresh(Duration::ZERO));

        let other = response().with_topics(vec![topic("payments", 0, &[(0, &[1], &[1])])]);
        cache.update(
            ClusterMetadata::from_response(other),
            Some(&["payments".to_string()]),
        );
        assert!(cache.meta.topics.contains_key("orders"));
        assert!(cache.meta.topics.contains_key("payments"));

        let gone = response().with_topics(vec![topic("orders", 3, &[])]);
        cache.update(
            ClusterMetadata::from_response(gone),
            Some(&["orders".to_string()]),
        );
        assert!(!cache.meta.topics.contains_key("orders"));
        assert!(cache.meta.topics.contains_key("payments"));

        cache.invalidate();
        assert!(cache.needs_refresh(Duration::from_secs(60)));
    }
}
