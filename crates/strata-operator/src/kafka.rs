//! What the operator asks of a running Kafka cluster, behind the [`KafkaAdmin`] trait so that
//! reconcilers are unit-testable: a health snapshot (controller, metadata-quorum leader,
//! brokers, leader, replicas and ISR of every partition), the cluster operations of rolling
//! restarts and drains (preferred leader elections, partition reassignments, broker configs for
//! the replication throttles) and the topic calls of the `KafkaTopic` controller. [`ClientAdmin`] is the
//! real implementation over `strata-client`; it talks the public Kafka admin API only, so it
//! works against Strata and Apache Kafka alike.
//!
//! Where a cluster is reached is decided by [`BootstrapResolver::target`] and nowhere else:
//! normally the cluster's bootstrap Service (from its status, or derived from its spec), or — for tests that run brokers outside the cluster — an explicit
//! override per `namespace/name` (`--kafka-bootstrap-override`, documented as test-only).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use strata_client::{Client, ClientConfig, ConfigOp, ConfigSource, NewTopic};
use strata_failover::{Action as FailoverAction, FlowSides, Outcome as FailoverOutcome};

use kube::ResourceExt;
use strata_api::KafkaCluster;

use crate::names::ClusterNames;

/// The topic as the cluster reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedTopic {
    pub topic_id: Option<String>,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Dynamic topic-level values (set explicitly on the topic, not broker defaults).
    pub configs: BTreeMap<String, String>,
}

/// A Kafka cluster the operator talks to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KafkaTarget {
    /// `namespace/name` of the KafkaCluster, for messages.
    pub cluster: String,
    /// `host:port` to bootstrap from.
    pub bootstrap: String,
    /// The cluster has TLS or authenticating listeners: the operator reaches it over its
    /// internal listener with mutual TLS, with the credentials the cluster reconciler gave
    /// [`KafkaAdmin::set_credentials`].
    pub secured: bool,
}

/// Why an admin call failed. `Unreachable` and `Retriable` are requeued with backoff; `Refused`
/// is the cluster saying no (invalid request, policy), reported in status and re-checked at the
/// resync interval.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot reach Kafka cluster {cluster} at {bootstrap}: {source}")]
    Unreachable {
        cluster: String,
        bootstrap: String,
        #[source]
        source: strata_client::Error,
    },
    #[error("Kafka cluster {cluster} could not complete {what} yet: {source}")]
    Retriable {
        cluster: String,
        what: String,
        #[source]
        source: strata_client::Error,
    },
    #[error("Kafka cluster {cluster} refused {what}: {source}")]
    Refused {
        cluster: String,
        what: String,
        #[source]
        source: strata_client::Error,
    },
}

impl AdminError {
    /// A short CamelCase kind for conditions and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AdminError::Unreachable { .. } => "ClusterUnreachable",
            AdminError::Retriable { .. } => "ClusterBusy",
            AdminError::Refused { .. } => "KafkaRequestRefused",
        }
    }
}

/// One partition's replica placement as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReplicas {
    pub topic: String,
    pub partition: i32,
    /// `None` when the partition has no leader.
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

impl PartitionReplicas {
    /// ISR shorter than the replica set, or no leader at all (Kafka's under-replicated and
    /// offline partitions: either makes a restart unsafe).
    pub fn under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len() || self.leader.is_none()
    }

    /// The preferred leader: the first replica.
    pub fn preferred(&self) -> Option<i32> {
        self.replicas.first().copied()
    }

    pub fn label(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

/// What the cluster says about itself: the input of the rolling-restart health check and of
/// the scale-down guard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterSnapshot {
    /// The controller DescribeCluster (else Metadata) names. A KRaft cluster names a random
    /// broker there, not the active controller: see [`ClusterSnapshot::quorum_leader`].
    pub controller_id: Option<i32>,
    /// The active controller, leader of the metadata quorum, from DescribeQuorum; `None` when
    /// the call failed (a single-node broker, an older Kafka) or no leader is elected.
    pub quorum_leader: Option<i32>,
    pub brokers: BTreeSet<i32>,
    pub partitions: Vec<PartitionReplicas>,
    /// `min.insync.replicas` of each topic with an under-replicated partition (no other
    /// partition can be below it); a topic missing here counts as 1, Kafka's default.
    pub min_insync_replicas: BTreeMap<String, i32>,
}

impl ClusterSnapshot {
    /// The broker whose restart moves the controller: the quorum leader, else (when the
    /// quorum could not be described) the controller the cluster names.
    pub fn active_controller(&self) -> Option<i32> {
        self.quorum_leader.or(self.controller_id)
    }

    /// Partitions whose ISR is smaller than their replica set (`topic-partition` labels).
    pub fn under_replicated(&self) -> Vec<String> {
        self.partitions
            .iter()
            .filter(|p| p.under_replicated())
            .map(PartitionReplicas::label)
            .collect()
    }

    /// Partitions that refuse `acks=all` writes: led with fewer in-sync replicas than their
    /// topic's `min.insync.replicas`, or without a leader (offline), each said in words.
    pub fn below_min_isr(&self) -> Vec<String> {
        self.partitions
            .iter()
            .filter_map(|p| {
                if p.leader.is_none() {
                    return Some(format!("{} has no leader (offline)", p.label()));
                }
                let min = self.min_insync_replicas.get(&p.topic).copied().unwrap_or(1);
                (p.isr.len() < usize::try_from(min).unwrap_or(0)).then(|| {
                    format!(
                        "{} has {} in-sync replica(s) {:?}, min.insync.replicas {min}",
                        p.label(),
                        p.isr.len(),
                        p.isr
                    )
                })
            })
            .collect()
    }

    /// Partitions with a replica on any of `brokers`, with the replicas they have there.
    pub fn partitions_on(&self, brokers: &[i32]) -> Vec<(String, Vec<i32>)> {
        self.partitions
            .iter()
            .filter_map(|p| {
                let here: Vec<i32> = p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|r| brokers.contains(r))
                    .collect();
                (!here.is_empty()).then(|| (p.label(), here))
            })
            .collect()
    }
}

/// What one side of a mirror answers to a probe: Metadata (its topics and brokers),
/// DescribeCluster (its id) and ListOffsets (the end of every partition).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SideOffsets {
    pub cluster_id: String,
    pub brokers: usize,
    /// Latest offset (the high watermark) of every partition, by topic and partition.
    pub end_offsets: BTreeMap<String, BTreeMap<i32, i64>>,
    /// Newest record timestamp (ms) of every MirrorMaker-style checkpoints topic
    /// (`<source alias>.checkpoints.internal`) that holds records: when a mirror last wrote
    /// consumer-group checkpoints to this side.
    pub checkpoint_times: BTreeMap<String, i64>,
}

/// Suffix of the topic a mirror writes consumer-group checkpoints to on its target.
pub const CHECKPOINTS_SUFFIX: &str = ".checkpoints.internal";

/// A partition's move from its current replicas to new ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMove {
    pub topic: String,
    pub partition: i32,
    pub from: Vec<i32>,
    pub to: Vec<i32>,
}

impl PartitionMove {
    pub fn label(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

/// Partitions the cluster refused in a per-partition call, with Kafka's reason.
pub type Refusals = Vec<(String, String)>;

/// The admin calls the reconcilers make. Boxed futures keep the trait object-safe.
pub trait KafkaAdmin: Send + Sync + 'static {
    /// Gives the operator's client credentials for secured cluster `cluster`
    /// (`namespace/name`); `digest` changes when the material does.
    fn set_credentials(&self, cluster: &str, digest: &str, security: strata_client::Security) {
        let _ = (cluster, digest, security);
    }

    fn snapshot<'a>(
        &'a self,
        target: &'a KafkaTarget,
    ) -> BoxFuture<'a, Result<ClusterSnapshot, AdminError>>;

    /// The topic as the cluster has it, or `None` when it does not exist.
    fn describe_topic<'a>(
        &'a self,
        target: &'a KafkaTarget,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ObservedTopic>, AdminError>>;

    fn create_topic<'a>(
        &'a self,
        target: &'a KafkaTarget,
        name: &'a str,
        partitions: Option<i32>,
        replication_factor: Option<i32>,
        config: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), AdminError>>;

    fn create_partitions<'a>(
        &'a self,
        target: &'a KafkaTarget,
        name: &'a str,
        total: i32,
    ) -> BoxFuture<'a, Result<(), AdminError>>;

    fn alter_topic_config<'a>(
        &'a self,
        target: &'a KafkaTarget,
        name: &'a str,
        set: &'a BTreeMap<String, String>,
        delete: &'a [String],
    ) -> BoxFuture<'a, Result<(), AdminError>>;

    /// Deletes the topic; a topic that does not exist counts as deleted.
    fn delete_topic<'a>(
        &'a self,
        target: &'a KafkaTarget,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>>;

    /// Partitions with a reassignment in progress (ListPartitionReassignments).
    fn ongoing_reassignments<'a>(
        &'a self,
        target: &'a KafkaTarget,
    ) -> BoxFuture<'a, Result<BTreeSet<(String, i32)>, AdminError>>;

    /// Starts the moves (AlterPartitionReassignments); returns the partitions refused.
    fn reassign<'a>(
        &'a self,
        target: &'a KafkaTarget,
        moves: &'a [PartitionMove],
    ) -> BoxFuture<'a, Result<Refusals, AdminError>>;

    /// Preferred leader election (ElectLeaders) for `partitions`; returns those that failed
    /// (a preferred leader already leading is not a failure).
    fn elect_preferred<'a>(
        &'a self,
        target: &'a KafkaTarget,
        partitions: &'a [(String, i32)],
    ) -> BoxFuture<'a, Result<Refusals, AdminError>>;

    /// Sets and deletes dynamic configs of broker `broker` (IncrementalAlterConfigs).
    fn alter_broker_config<'a>(
        &'a self,
        target: &'a KafkaTarget,
        broker: i32,
        set: &'a BTreeMap<String, String>,
        delete: &'a [String],
    ) -> BoxFuture<'a, Result<(), AdminError>>;

    /// The probe of a mirror side: Metadata, DescribeCluster, then ListOffsets (latest) of
    /// every partition. Not cancellation-safe in the sense that a cached client may be left
    /// half-used; the caller's timeout only drops the answer.
    fn end_offsets<'a>(
        &'a self,
        target: &'a KafkaTarget,
    ) -> BoxFuture<'a, Result<SideOffsets, AdminError>>;

    /// Runs one of the failover engine's Kafka-side actions (fence, mandate, drain check,
    /// final checkpoint, promotion, quarantine) on the sides of a flow.
    fn failover_action<'a>(
        &'a self,
        sides: &'a FlowSides,
        action: &'a FailoverAction,
    ) -> BoxFuture<'a, FailoverOutcome>;
}

/// Maps a KafkaCluster to the address its admin calls go to.
#[derive(Debug, Clone, Default)]
pub struct BootstrapResolver {
    overrides: HashMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid --kafka-bootstrap-override {0:?}: expected NAMESPACE/NAME=HOST:PORT")]
pub struct InvalidOverride(String);

impl BootstrapResolver {
    /// Parses `namespace/name=host:port` entries.
    pub fn with_overrides<'a>(
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, InvalidOverride> {
        let mut overrides = HashMap::new();
        for entry in entries {
            let (key, addr) = entry
                .split_once('=')
                .ok_or_else(|| InvalidOverride(entry.to_owned()))?;
            if !key.contains('/') || !addr.contains(':') {
                return Err(InvalidOverride(entry.to_owned()));
            }
            overrides.insert(key.trim().to_owned(), addr.trim().to_owned());
        }
        Ok(Self { overrides })
    }

    /// Where `cluster` is reached: its override, else the address its status reports, else the
    /// bootstrap Service the names module derives from the spec (before the first status).
    /// A secured cluster (TLS or authenticating listeners) is reached on its internal
    /// listener through the bootstrap Service.
    pub fn target(&self, cluster: &KafkaCluster, cluster_domain: &str) -> KafkaTarget {
        let namespace = cluster.namespace().unwrap_or_else(|| "default".to_owned());
        let secured = is_secured(cluster);
        let default = if secured {
            ClusterNames::new(&cluster.name_any(), &namespace, cluster_domain)
                .bootstrap_address(crate::cluster::plan::REPLICATION_PORT)
        } else {
            in_cluster_bootstrap(cluster, cluster_domain)
        };
        KafkaTarget {
            secured,
            ..self.resolve(&namespace, &cluster.name_any(), &default)
        }
    }

    /// The target for cluster `namespace/name` whose in-cluster bootstrap address is `default`.
    pub fn resolve(&self, namespace: &str, name: &str, default: &str) -> KafkaTarget {
        let cluster = format!("{namespace}/{name}");
        let bootstrap = self
            .overrides
            .get(&cluster)
            .cloned()
            .unwrap_or_else(|| default.to_owned());
        KafkaTarget {
            cluster,
            bootstrap,
            secured: false,
        }
    }
}

/// Whether `cluster` has a listener with TLS or authentication (and so the internal mutual-TLS
/// listener the operator's admin calls use).
pub fn is_secured(cluster: &KafkaCluster) -> bool {
    cluster
        .spec
        .listeners
        .iter()
        .any(|l| l.tls || l.authentication != strata_api::Authentication::None)
}

/// The address pods inside the Kubernetes cluster bootstrap from: the one `cluster`'s status
/// reports, else the bootstrap Service the names module derives from its spec (before the
/// first status). Never a test override: this is what the operator writes into pods.
pub fn in_cluster_bootstrap(cluster: &KafkaCluster, cluster_domain: &str) -> String {
    let namespace = cluster.namespace().unwrap_or_else(|| "default".to_owned());
    cluster
        .status
        .as_ref()
        .and_then(|s| s.bootstrap_address.clone())
        .unwrap_or_else(|| {
            let port = cluster.spec.listeners.first().map_or(9092, |l| l.port);
            ClusterNames::new(&cluster.name_any(), &namespace, cluster_domain)
                .bootstrap_address(port)
        })
}

/// [`KafkaAdmin`] over `strata-client`, with one cached client per bootstrap address (a client
/// whose call failed with a connection error is dropped and rebuilt on the next call).
pub struct ClientAdmin {
    clients: Mutex<HashMap<String, Client>>,
    /// The operator's TLS credentials per secured cluster (`namespace/name`): a digest of the
    /// material (part of the cached client's key, so a renewed certificate makes a new
    /// client) and the client security.
    credentials: Mutex<HashMap<String, (String, strata_client::Security)>>,
    request_timeout: Duration,
}

impl Default for ClientAdmin {
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}

impl ClientAdmin {
    pub fn new(request_timeout: Duration) -> Self {
        Self {
            clients: Mutex::new(HashMap::new()),
            credentials: Mutex::new(HashMap::new()),
            request_timeout,
        }
    }

    /// The cache key of `target`'s client and the security it connects with.
    fn key(&self, target: &KafkaTarget) -> Result<(String, strata_client::Security), AdminError> {
        if !target.secured {
            return Ok((target.bootstrap.clone(), strata_client::Security::default()));
        }
        match self.credentials.lock().get(&target.cluster) {
            Some((digest, security)) => {
                Ok((format!("{}#{digest}", target.bootstrap), security.clone()))
            }
            None => Err(AdminError::Unreachable {
                cluster: target.cluster.clone(),
                bootstrap: target.bootstrap.clone(),
                source: strata_client::Error::Protocol(
                    "the operator's certificate for this secured cluster is not loaded yet \
                     (the KafkaCluster's reconciliation issues and loads it)"
                        .into(),
                ),
            }),
        }
    }

    async fn client(&self, target: &KafkaTarget) -> Result<Client, AdminError> {
        let (key, security) = self.key(target)?;
        if let Some(c) = self.clients.lock().get(&key) {
            return Ok(c.clone());
        }
        let mut config = ClientConfig::new([target.bootstrap.clone()]);
        config.security = security;
        config.client_id = "strata-operator".to_owned();
        config.request_timeout = self.request_timeout;
        config.connect_timeout = Duration::from_secs(5);
        config.retries = 2;
        let client = Client::connect(config)
            .await
            .map_err(|source| AdminError::Unreachable {
                cluster: target.cluster.clone(),
                bootstrap: target.bootstrap.clone(),
                source,
            })?;
        self.clients.lock().insert(key, client.clone());
        Ok(client)
    }

    /// Classifies a failed call; transport failures also evict the cached client.
    fn fail(&self, target: &KafkaTarget, what: &str, source: strata_client::Error) -> AdminError {
        if source.is_retriable() && source.code().is_some() {
            // NOT_CONTROLLER, REQUEST_TIMED_OUT, ...: the cluster is busy, not saying no.
            return AdminError::Retriable {
                cluster: target.cluster.clone(),
                what: what.to_owned(),
                source,
            };
        }
        if source.code().is_none() {
            if let Ok((key, _)) = self.key(target) {
                self.clients.lock().remove(&key);
            }
            AdminError::Unreachable {
                cluster: target.cluster.clone(),
                bootstrap: target.bootstrap.clone(),
                source,
            }
        } else {
            AdminError::Refused {
                cluster: target.cluster.clone(),
                what: what.to_owned(),
                source,
            }
        }
    }
}

impl KafkaAdmin for ClientAdmin {
    fn set_credentials(&self, cluster: &str, digest: &str, security: strata_client::Security) {
        self.credentials
            .lock()
            .insert(cluster.to_owned(), (digest.to_owned(), security));
    }

    fn snapshot<'a>(
        &'a self,
        target: &'a KafkaTarget,
    ) -> BoxFuture<'a, Result<ClusterSnapshot, AdminError>> {
        Box::pin(async move {
            let client = self.client(target).await?;
            let metadata = client
                .metadata(None)
                .await
                .map_err(|e| self.fail(target, "Metadata", e))?;
            let controller_id = match client.describe_cluster().await {
                Ok(d) => Some(d.controller_id).filter(|id| *id >= 0),
                Err(_) => metadata.controller_id.filter(|id| *id >= 0),
            };
            // Best effort: without it the roll keeps the order DescribeCluster gives.
            let quorum_leader = match client.admin().describe_quorum().await {
                Ok(q) => q.leader_id,
                Err(e) => {
                    tracing::debug!(cluster = %target.cluster, error = %e, "DescribeQuorum failed");
                    None
                }
            };
            let mut partitions = Vec::new();
            for (name, topic) in &metadata.topics {
                for p in &topic.partitions {
                    partitions.push(PartitionReplicas {
                        topic: name.clone(),
                        partition: p.partition,
                        leader: (p.leader >= 0).then_some(p.leader),
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                    });
                }
            }
            partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            // Only a topic with a replica out of sync can be below its minimum: its
            // min.insync.replicas is asked for (best effort; 1, Kafka's default, without it).
            let mut min_insync_replicas = BTreeMap::new();
            let lagging: BTreeSet<&str> = partitions
                .iter()
                .filter(|p| p.leader.is_some() && p.isr.len() < p.replicas.len())
                .map(|p| p.topic.as_str())
                .collect();
            for topic in lagging {
                match client.admin().describe_topic_configs(topic).await {
                    Ok(configs) => {
                        if let Some(min) = configs
                            .iter()
                            .find(|c| c.name == "min.insync.replicas")
                            .and_then(|c| c.value.as_deref()?.parse::<i32>().ok())
                        {
                            min_insync_replicas.insert(topic.to_owned(), min);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(cluster = %target.cluster, topic, error = %e,
                            "DescribeConfigs for min.insync.replicas failed");
                    }
                }
            }
            Ok(ClusterSnapshot {
                controller_id,
                quorum_leader,
                brokers: metadata.brokers.iter().map(|b| b.id).collect(),
                partitions,
                min_insync_replicas,
            })
        })
    }

    fn describe_topic<'a>(
        &'a self,
        target: &'a KafkaTarget,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ObservedTopic>, AdminError>> {
        Box::pin(async move {
            let client = self.client(target).await?;
            let metadata = client
                .metadata(Some(&[name.to_owned()]))
                .await
                .map_err(|e| self.fail(target, "Metadata", e))?;
            let Some(topic) = metadata.topics.get(name) else {
                return Ok(None);
            };
            let configs = client
                .admin()
                .describe_topic_configs(name)
                .await
                .map_err(|e| self.fail(target, "DescribeConfigs", e))?;
            let configs = configs
                .into_iter()
                .filter(|c| c.source == ConfigSource::DynamicTopic)
                .filter_map(|c| c.value.map(|v| (c.name, v)))
                .collect();
            let replication_factor = topic
                .partitions
                .iter()
                .map(|p| p.replicas.len())
                .max()
                .unwrap_or(0);
            Ok(Some(ObservedTopic {
                topic_id: topic.id.map(strata_client::kafka_uuid_string),
                partitions: i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX),
                replication_factor: i32::try_from(replication_factor).unwrap_or(i32::MAX),
                configs,
            }))
        })
    }

    fn create_topic<'a>(
        &'a self,
        target: &'a KafkaTarget,
        name: &'a str,
        partitions: Option<i32>,
        replication_factor: Option<i32>,
        config: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            let client = self.client(target).await?;
            let topic = NewTopic {
                name: name.to_owned(),
                partitions,
                replication_factor: replication_factor.and_then(|rf| i16::try_from(rf).ok()),
                configs: config.clone(),
            };
            match client.admin().create_topic(&topic).await {
                Ok(_) => Ok(()),
                // Metadata lagged behind a create that already happened: the next describe
                // sees it, and the diff takes over from there.
                Err(e) if e.is(kafka_protocol::ResponseError::TopicAlreadyExists) => Ok(()),
                Err(e) => Err(self.fail(target, &format!("creating topic {name}"), e)),
            }
        })
    }

    fn create_partitions<'a>(
        &'a self,
        target: &'a KafkaTarget,
        name: &'a str,
        total: i32,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            let client = self.client(target).await?;
            client
                .admin()
                .create_partitions(name, total)
                .await
                .map_err(|e| {
                    self.fail(
                        target,
                        &format!("growing topic {name} to {total} partitions"),
                        e,
                    )
                })
        })
    }

    fn alter_topic_config<'a>(
        &'a self,
        target: &'a KafkaTarget,
        name: &'a str,
        set: &'a BTreeMap<String, String>,
        delete: &'a [String],
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            let client = self.client(target).await?;
            let ops: Vec<ConfigOp> = set
                .iter()
                .map(|(k, v)| ConfigOp::Set(k.clone(), v.clone()))
                .chain(delete.iter().map(|k| ConfigOp::Delete(k.clone())))
                .collect();
            client
                .admin()
                .incremental_alter_topic_configs(name, &ops)
                .await
                .map_err(|e| self.fail(target, &format!("altering the config of topic {name}"), e))
        })
    }

    fn delete_topic<'a>(
        &'a self,
        target: &'a KafkaTarget,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            let client = self.client(target).await?;
            match client.admin().delete_topic(name).await {
                Ok(()) => Ok(()),
                Err(e) if e.is(kafka_protocol::ResponseError::UnknownTopicOrPartition) => Ok(()),
                Err(e) => Err(self.fail(target, &format!("deleting topic {name}"), e)),
            }
        })
    }

    fn ongoing_reassignments<'a>(
        &'a self,
        target: &'a KafkaTarget,
    ) -> BoxFuture<'a, Result<BTreeSet<(String, i32)>, AdminError>> {
        Box::pin(async move {
            let client = self.client(target).await?;
            let ongoing = client
                .admin()
                .list_partition_reassignments(None)
                .await
                .map_err(|e| self.fail(target, "ListPartitionReassignments", e))?;
            Ok(ongoing
                .into_iter()
                .map(|r| (r.topic, r.partition))
                .collect())
        })
    }

    fn reassign<'a>(
        &'a self,
        target: &'a KafkaTarget,
        moves: &'a [PartitionMove],
    ) -> BoxFuture<'a, Result<Refusals, AdminError>> {
        Box::pin(async move {
            let client = self.client(target).await?;
            let changes: Vec<strata_client::ReplicaChange> = moves
                .iter()
                .map(|m| ((m.topic.clone(), m.partition), Some(m.to.clone())))
                .collect();
            let outcomes = client
                .admin()
                .alter_partition_reassignments(&changes)
                .await
                .map_err(|e| self.fail(target, "AlterPartitionReassignments", e))?;
            Ok(outcomes
                .into_iter()
                .filter_map(|((t, p), r)| r.err().map(|e| (format!("{t}-{p}"), e.to_string())))
                .collect())
        })
    }

    fn elect_preferred<'a>(
        &'a self,
        target: &'a KafkaTarget,
        partitions: &'a [(String, i32)],
    ) -> BoxFuture<'a, Result<Refusals, AdminError>> {
        Box::pin(async move {
            if partitions.is_empty() {
                return Ok(Vec::new());
            }
            let client = self.client(target).await?;
            let outcomes = client
                .admin()
                .elect_leaders(strata_client::ElectionType::Preferred, Some(partitions))
                .await
                .map_err(|e| self.fail(target, "ElectLeaders", e))?;
            Ok(outcomes
                .into_iter()
                .filter(|(_, r)| !strata_client::election_not_needed(r))
                .filter_map(|((t, p), r)| r.err().map(|e| (format!("{t}-{p}"), e.to_string())))
                .collect())
        })
    }

    fn alter_broker_config<'a>(
        &'a self,
        target: &'a KafkaTarget,
        broker: i32,
        set: &'a BTreeMap<String, String>,
        delete: &'a [String],
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        Box::pin(async move {
            let client = self.client(target).await?;
            let ops: Vec<ConfigOp> = set
                .iter()
                .map(|(k, v)| ConfigOp::Set(k.clone(), v.clone()))
                .chain(delete.iter().map(|k| ConfigOp::Delete(k.clone())))
                .collect();
            client
                .admin()
                .incremental_alter_broker_configs(Some(broker), &ops)
                .await
                .map_err(|e| {
                    self.fail(
                        target,
                        &format!("altering the config of broker {broker}"),
                        e,
                    )
                })
        })
    }

    fn end_offsets<'a>(
        &'a self,
        target: &'a KafkaTarget,
    ) -> BoxFuture<'a, Result<SideOffsets, AdminError>> {
        Box::pin(async move {
            let client = self.client(target).await?;
            let metadata = client
                .metadata(None)
                .await
                .map_err(|e| self.fail(target, "Metadata", e))?;
            let described = client
                .describe_cluster()
                .await
                .map_err(|e| self.fail(target, "DescribeCluster", e))?;
            let mut end_offsets = BTreeMap::new();
            let mut checkpoint_times = BTreeMap::new();
            for (name, topic) in &metadata.topics {
                let partitions: Vec<i32> = topic.partitions.iter().map(|p| p.partition).collect();
                if partitions.is_empty() {
                    continue;
                }
                let listed = client
                    .list_offsets(name, &partitions, strata_client::OffsetSpec::Latest)
                    .await
                    .map_err(|e| self.fail(target, &format!("ListOffsets of {name}"), e))?;
                let holds_records = listed.values().any(|o| o.offset > 0);
                end_offsets.insert(
                    name.clone(),
                    listed.into_iter().map(|(p, o)| (p, o.offset)).collect(),
                );
                if name.ends_with(CHECKPOINTS_SUFFIX) && holds_records {
                    // Informational: a broker without ListOffsets v7 leaves it unknown.
                    if let Ok(newest) = client
                        .list_offsets(name, &partitions, strata_client::OffsetSpec::MaxTimestamp)
                        .await
                    {
                        if let Some(ts) = newest.values().map(|o| o.timestamp).max() {
                            if ts > 0 {
                                checkpoint_times.insert(name.clone(), ts);
                            }
                        }
                    }
                }
            }
            Ok(SideOffsets {
                cluster_id: described.cluster_id,
                brokers: described.brokers.len(),
                end_offsets,
                checkpoint_times,
            })
        })
    }

    fn failover_action<'a>(
        &'a self,
        sides: &'a FlowSides,
        action: &'a FailoverAction,
    ) -> BoxFuture<'a, FailoverOutcome> {
        Box::pin(sides.run(action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_and_resolve() {
        let r = BootstrapResolver::with_overrides(["kafka/prod=127.0.0.1:19092"]).expect("valid");
        assert_eq!(
            r.resolve("kafka", "prod", "prod-bootstrap.kafka.svc:9092")
                .bootstrap,
            "127.0.0.1:19092"
        );
        assert_eq!(
            r.resolve("kafka", "other", "other-bootstrap.kafka.svc:9092")
                .bootstrap,
            "other-bootstrap.kafka.svc:9092"
        );
        assert!(BootstrapResolver::with_overrides(["prod=127.0.0.1:1"]).is_err());
        assert!(BootstrapResolver::with_overrides(["a/b"]).is_err());
    }

    #[test]
    fn snapshot_finds_under_replicated_and_placed_partitions() {
        let snap = ClusterSnapshot {
            controller_id: Some(0),
            quorum_leader: None,
            brokers: [0, 1, 2].into(),
            partitions: vec![
                PartitionReplicas {
                    topic: "a".into(),
                    partition: 0,
                    leader: Some(0),
                    replicas: vec![0, 1, 2],
                    isr: vec![0, 1],
                },
                PartitionReplicas {
                    topic: "a".into(),
                    partition: 1,
                    leader: Some(1),
                    replicas: vec![1, 2],
                    isr: vec![1, 2],
                },
            ],
            ..ClusterSnapshot::default()
        };
        assert_eq!(snap.under_replicated(), ["a-0"]);
        assert_eq!(
            snap.partitions_on(&[2]),
            [("a-0".to_owned(), vec![2]), ("a-1".to_owned(), vec![2])]
        );
        assert!(snap.partitions_on(&[7]).is_empty());
        assert_eq!(
            snap.active_controller(),
            Some(0),
            "no quorum: DescribeCluster's"
        );
    }

    #[test]
    fn below_min_isr_names_led_partitions_short_of_their_minimum_and_offline_ones() {
        let part = |topic: &str, leader: Option<i32>, isr: &[i32]| PartitionReplicas {
            topic: topic.into(),
            partition: 0,
            leader,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
        };
        let snap = ClusterSnapshot {
            partitions: vec![
                part("a", Some(1), &[1]),
                part("b", Some(1), &[1, 2]),
                part("c", None, &[]),
                part("d", Some(1), &[1]),
            ],
            min_insync_replicas: [("a".to_owned(), 2), ("b".to_owned(), 2)].into(),
            ..ClusterSnapshot::default()
        };
        assert_eq!(
            snap.below_min_isr(),
            vec![
                "a-0 has 1 in-sync replica(s) [1], min.insync.replicas 2".to_owned(),
                "c-0 has no leader (offline)".to_owned(),
            ]
        );
    }

    #[test]
    fn the_quorum_leader_is_the_active_controller() {
        let snap = ClusterSnapshot {
            controller_id: Some(1),
            quorum_leader: Some(2),
            ..ClusterSnapshot::default()
        };
        assert_eq!(snap.active_controller(), Some(2));
        assert_eq!(ClusterSnapshot::default().active_controller(), None);
    }
}
