//! The way to the active controller. On the active controller itself every call goes straight
//! to the quorum; on any other node it is sent with Kafka's own message to the active
//! controller's CONTROLLER listener (BrokerRegistration, BrokerHeartbeat, AlterPartition,
//! AllocateProducerIds, and CreateTopics / DeleteTopics / CreatePartitions / AlterConfigs /
//! ElectLeaders / AlterPartitionReassignments for forwarded admin requests, and
//! IncrementalAlterConfigs for a mirror target's tail truncation), retried on another voter while the leader is unknown or moving,
//! until the deadline.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::alter_partition_request::{PartitionData, TopicData};
use kafka_protocol::messages::broker_registration_request::Listener as RegListener;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};
use parking_lot::Mutex;
use strata_client::{NodeConnection, Security};
use strata_controller::{
    ControllerError, ElectionResult, ElectionType, HeartbeatReply, NewTopic, PartitionImage,
    Quorum, RegisterBroker, TopicResult,
};
use strata_kafka::acl::{AclBinding, AclFilter};
use uuid::Uuid;

use crate::codes as code;
use crate::handlers::scram::ScramRequestChange;

const NOT_CONTROLLER: i16 = 41;

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Security protocol ids of BrokerRegistration.
pub fn security_protocol_id(name: &str) -> i16 {
    match name {
        "SSL" => 1,
        "SASL_PLAINTEXT" => 2,
        "SASL_SSL" => 3,
        _ => 0,
    }
}

pub fn security_protocol_name(id: i16) -> &'static str {
    match id {
        1 => "SSL",
        2 => "SASL_PLAINTEXT",
        3 => "SASL_SSL",
        _ => "PLAINTEXT",
    }
}

/// Connections to the voters' CONTROLLER listeners.
pub struct ControllerLink {
    quorum: Quorum,
    node_id: i32,
    voters: BTreeMap<i32, String>,
    conns: Mutex<HashMap<i32, Arc<NodeConnection>>>,
    request_timeout: Duration,
    /// How the controller listeners are reached (TLS, SASL).
    security: Security,
}

/// A failed remote call: a Kafka error from the controller, or no controller reached.
fn kafka(code: i16, message: Option<&StrBytes>) -> ControllerError {
    if code == NOT_CONTROLLER {
        return ControllerError::NotController { leader: None };
    }
    ControllerError::Kafka {
        code,
        message: message.map(|m| m.to_string()).unwrap_or_default(),
    }
}

/// The outcome of a response's only result: its error, or a missing result as an error.
fn only_result(result: Option<(i16, Option<&StrBytes>)>) -> Result<(), ControllerError> {
    match result {
        None => Err(kafka(code::UNKNOWN_SERVER_ERROR, None)),
        Some((code::NONE, _)) => Ok(()),
        Some((c, message)) => Err(kafka(c, message)),
    }
}

/// A forwarded admin request whose results a voter refused with NOT_CONTROLLER (it is not the
/// active controller, or no longer): the whole call is tried again on another voter, as a
/// top-level NOT_CONTROLLER is (see [`kafka`]), instead of passing the refusal to the client.
fn not_controller_anywhere(codes: impl IntoIterator<Item = i16>) -> Result<(), ControllerError> {
    if codes.into_iter().any(|c| c == NOT_CONTROLLER) {
        return Err(ControllerError::NotController { leader: None });
    }
    Ok(())
}

/// One topic's outcome in a forwarded admin response: its error, or a missing result.
fn topic_outcome(result: Option<(i16, Option<&StrBytes>)>) -> Result<(), (i16, String)> {
    match result {
        None => Err((code::UNKNOWN_SERVER_ERROR, "no result".to_string())),
        Some((code::NONE, _)) => Ok(()),
        Some((c, message)) => Err((c, message.map(|m| m.to_string()).unwrap_or_default())),
    }
}

impl ControllerLink {
    pub fn new(
        quorum: Quorum,
        node_id: i32,
        voters: BTreeMap<i32, String>,
        request_timeout: Duration,
        security: Security,
    ) -> Self {
        ControllerLink {
            quorum,
            node_id,
            voters,
            conns: Mutex::new(HashMap::new()),
            request_timeout,
            security,
        }
    }

    /// The voter to try: the known leader, else the next voter in turn.
    fn target(&self, attempt: usize) -> Option<(i32, String)> {
        if let Some(leader) = self.quorum.leader() {
            if attempt.is_multiple_of(2) {
                if let Some(addr) = self.voters.get(&leader) {
                    return Some((leader, addr.clone()));
                }
            }
        }
        if self.voters.is_empty() {
            return None;
        }
        let (id, addr) = self.voters.iter().nth(attempt % self.voters.len())?;
        Some((*id, addr.clone()))
    }

    async fn connection(&self, id: i32, addr: &str) -> Result<Arc<NodeConnection>, String> {
        if let Some(c) = self.conns.lock().get(&id).filter(|c| c.is_open()) {
            return Ok(c.clone());
        }
        let client_id = format!("strata-broker-{}-controller-link", self.node_id);
        let conn =
            NodeConnection::open_secured(addr, &client_id, self.request_timeout, &self.security)
                .await
                .map_err(|e| e.to_string())?;
        let conn = Arc::new(conn);
        self.conns.lock().insert(id, conn.clone());
        Ok(conn)
    }

    /// Runs `local` on the active controller, or sends the request `build` makes to it and
    /// converts the answer with `convert`; retries while no controller answers, up to `within`.
    pub async fn call<R, T, L, Fut>(
        &self,
        within: Duration,
        local: L,
        build: impl Fn(i16) -> R,
        convert: impl Fn(R::Response) -> Result<T, ControllerError>,
    ) -> Result<T, ControllerError>
    where
        R: Request,
        L: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ControllerError>>,
    {
        let deadline = tokio::time::Instant::now() + within;
        let mut attempt = 0usize;
        let mut last;
        loop {
            let result = if self.quorum.is_active() {
                local().await
            } else if let Some((id, addr)) = self.target(attempt) {
                if id == self.node_id {
                    local().await
                } else {
                    match self.connection(id, &addr).await {
                        Ok(conn) => match conn.request(&build, self.request_timeout).await {
                            Ok((_, resp)) => convert(resp),
                            Err(e) => {
                                self.conns.lock().remove(&id);
                                Err(ControllerError::Timeout(format!("controller {id}: {e}")))
                            }
                        },
                        Err(e) => Err(ControllerError::Timeout(format!("controller {id}: {e}"))),
                    }
                }
            } else {
                Err(ControllerError::NotController { leader: None })
            };
            match result {
                Err(ControllerError::NotController { .. }) => {
                    last = "the metadata quorum has no active controller".into();
                }
                Err(ControllerError::Timeout(m)) => last = m,
                other => return other,
            }
            attempt += 1;
            if tokio::time::Instant::now() >= deadline {
                return Err(ControllerError::Timeout(format!(
                    "no active controller answered within {} ms ({last})",
                    within.as_millis()
                )));
            }
            tokio::time::sleep(Duration::from_millis(if attempt < 4 { 50 } else { 200 })).await;
        }
    }

    pub async fn register(
        &self,
        reg: RegisterBroker,
        cluster_id: &str,
        within: Duration,
    ) -> Result<i64, ControllerError> {
        let listeners: Vec<RegListener> = reg
            .endpoints
            .iter()
            .map(|e| {
                RegListener::default()
                    .with_name(str_bytes(&e.name))
                    .with_host(str_bytes(&e.host))
                    .with_port(e.port)
                    .with_security_protocol(security_protocol_id(&e.security_protocol))
            })
            .collect();
        self.call(
            within,
            || self.quorum.register_broker(reg.clone()),
            |_| {
                BrokerRegistrationRequest::default()
                    .with_broker_id(reg.broker_id.into())
                    .with_cluster_id(str_bytes(cluster_id))
                    .with_incarnation_id(reg.incarnation_id)
                    .with_listeners(listeners.clone())
                    .with_rack(reg.rack.as_deref().map(str_bytes))
            },
            |r: BrokerRegistrationResponse| {
                if r.error_code != code::NONE {
                    return Err(kafka(r.error_code, None));
                }
                Ok(r.broker_epoch)
            },
        )
        .await
    }

    pub async fn heartbeat(
        &self,
        broker_id: i32,
        epoch: i64,
        offset: u64,
        want_fence: bool,
        want_shut_down: bool,
        within: Duration,
    ) -> Result<HeartbeatReply, ControllerError> {
        self.call(
            within,
            || {
                self.quorum
                    .heartbeat(broker_id, epoch, offset, want_fence, want_shut_down)
            },
            |_| {
                BrokerHeartbeatRequest::default()
                    .with_broker_id(broker_id.into())
                    .with_broker_epoch(epoch)
                    .with_current_metadata_offset(offset as i64)
                    .with_want_fence(want_fence)
                    .with_want_shut_down(want_shut_down)
            },
            |r: BrokerHeartbeatResponse| {
                if r.error_code != code::NONE {
                    return Err(kafka(r.error_code, None));
                }
                Ok(HeartbeatReply {
                    is_caught_up: r.is_caught_up,
                    is_fenced: r.is_fenced,
                    should_shut_down: r.should_shut_down,
                })
            },
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn alter_partition(
        &self,
        broker_id: i32,
        broker_epoch: i64,
        topic_id: Uuid,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
        within: Duration,
    ) -> Result<PartitionImage, ControllerError> {
        self.call(
            within,
            || {
                self.quorum.alter_partition(
                    broker_id,
                    broker_epoch,
                    topic_id,
                    partition,
                    leader_epoch,
                    partition_epoch,
                    isr.clone(),
                )
            },
            |version| {
                let mut p = PartitionData::default()
                    .with_partition_index(partition)
                    .with_leader_epoch(leader_epoch)
                    .with_partition_epoch(partition_epoch);
                if version >= 3 {
                    p = p.with_new_isr_with_epochs(
                        isr.iter()
                            .map(|id| {
                                alter_partition_request::BrokerState::default()
                                    .with_broker_id((*id).into())
                                    .with_broker_epoch(-1)
                            })
                            .collect(),
                    );
                } else {
                    p = p.with_new_isr(isr.iter().map(|id| (*id).into()).collect());
                }
                AlterPartitionRequest::default()
                    .with_broker_id(broker_id.into())
                    .with_broker_epoch(broker_epoch)
                    .with_topics(vec![TopicData::default()
                        .with_topic_id(topic_id)
                        .with_partitions(vec![p])])
            },
            |r: AlterPartitionResponse| {
                if r.error_code != code::NONE {
                    return Err(kafka(r.error_code, None));
                }
                let p = r
                    .topics
                    .first()
                    .and_then(|t| t.partitions.first())
                    .ok_or_else(|| kafka(code::UNKNOWN_SERVER_ERROR, None))?;
                if p.error_code != code::NONE {
                    return Err(kafka(p.error_code, None));
                }
                Ok(PartitionImage {
                    replicas: Vec::new(),
                    isr: p.isr.iter().map(|b| b.0).collect(),
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    adding_replicas: Vec::new(),
                    removing_replicas: Vec::new(),
                    truncation: None,
                    producer_reset_epoch: None,
                })
            },
        )
        .await
    }

    pub async fn allocate_producer_ids(
        &self,
        broker_id: i32,
        broker_epoch: i64,
        within: Duration,
    ) -> Result<(i64, i32), ControllerError> {
        self.call(
            within,
            || self.quorum.allocate_producer_ids(broker_id, broker_epoch),
            |_| {
                AllocateProducerIdsRequest::default()
                    .with_broker_id(broker_id.into())
                    .with_broker_epoch(broker_epoch)
            },
            |r: AllocateProducerIdsResponse| {
                if r.error_code != code::NONE {
                    return Err(kafka(r.error_code, None));
                }
                Ok((r.producer_id_start.0, r.producer_id_len))
            },
        )
        .await
    }

    /// CreateTopics with topics the broker already validated. Remote results carry no image,
    /// so the caller reads the created topics from its own image once it has caught up.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
        within: Duration,
    ) -> Result<Vec<TopicResult>, ControllerError> {
        let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
        self.call(
            within,
            || async {
                let (results, offset) = self
                    .quorum
                    .create_topics(topics.clone(), validate_only)
                    .await?;
                let _ = offset;
                Ok(results)
            },
            |_| {
                CreateTopicsRequest::default()
                    .with_validate_only(validate_only)
                    .with_timeout_ms(within.as_millis() as i32)
                    .with_topics(
                        topics
                            .iter()
                            .map(|t| {
                                CreatableTopic::default()
                                    .with_name(str_bytes(&t.name).into())
                                    .with_num_partitions(if t.assignments.is_empty() {
                                        t.num_partitions
                                    } else {
                                        -1
                                    })
                                    .with_replication_factor(if t.assignments.is_empty() {
                                        t.replication_factor
                                    } else {
                                        -1
                                    })
                                    .with_assignments(
                                        t.assignments
                                            .iter()
                                            .map(|(p, r)| {
                                                CreatableReplicaAssignment::default()
                                                    .with_partition_index(*p)
                                                    .with_broker_ids(
                                                        r.iter().map(|b| (*b).into()).collect(),
                                                    )
                                            })
                                            .collect(),
                                    )
                                    .with_configs(
                                        t.configs
                                            .iter()
                                            .map(|(k, v)| {
                                                CreatableTopicConfig::default()
                                                    .with_name(str_bytes(k))
                                                    .with_value(Some(str_bytes(v)))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            },
            |r: CreateTopicsResponse| {
                not_controller_anywhere(r.topics.iter().map(|t| t.error_code))?;
                Ok(names
                    .iter()
                    .map(|name| {
                        let t = r.topics.iter().find(|t| t.name.0.as_str() == name);
                        topic_outcome(t.map(|t| (t.error_code, t.error_message.as_ref())))?;
                        let t = t.expect("checked by topic_outcome");
                        // Filled from the image by the caller.
                        Ok(strata_controller::TopicImage {
                            id: t.topic_id,
                            name: name.clone(),
                            partitions: BTreeMap::new(),
                            configs: BTreeMap::new(),
                        })
                    })
                    .collect())
            },
        )
        .await
    }

    pub async fn delete_topics(
        &self,
        names: Vec<String>,
        within: Duration,
    ) -> Result<Vec<Result<Uuid, (i16, String)>>, ControllerError> {
        self.call(
            within,
            || async { Ok(self.quorum.delete_topics(names.clone()).await?.0) },
            |_| {
                DeleteTopicsRequest::default()
                    .with_timeout_ms(within.as_millis() as i32)
                    .with_topics(
                        names
                            .iter()
                            .map(|n| {
                                DeleteTopicState::default().with_name(Some(str_bytes(n).into()))
                            })
                            .collect(),
                    )
                    .with_topic_names(names.iter().map(|n| str_bytes(n).into()).collect())
            },
            |r: DeleteTopicsResponse| {
                not_controller_anywhere(r.responses.iter().map(|t| t.error_code))?;
                Ok(names
                    .iter()
                    .map(|name| {
                        let t = r
                            .responses
                            .iter()
                            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name));
                        topic_outcome(t.map(|t| (t.error_code, t.error_message.as_ref())))?;
                        Ok(t.expect("checked by topic_outcome").topic_id)
                    })
                    .collect())
            },
        )
        .await
    }

    pub async fn create_partitions(
        &self,
        topic: String,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
        within: Duration,
    ) -> Result<(), ControllerError> {
        self.call(
            within,
            || async {
                self.quorum
                    .create_partitions(topic.clone(), count, assignments.clone(), validate_only)
                    .await
                    .map(|_| ())
            },
            |_| {
                CreatePartitionsRequest::default()
                    .with_validate_only(validate_only)
                    .with_timeout_ms(within.as_millis() as i32)
                    .with_topics(vec![CreatePartitionsTopic::default()
                        .with_name(str_bytes(&topic).into())
                        .with_count(count)
                        .with_assignments(assignments.as_ref().map(|a| {
                            a.iter()
                                .map(|r| {
                                    CreatePartitionsAssignment::default()
                                        .with_broker_ids(r.iter().map(|b| (*b).into()).collect())
                                })
                                .collect()
                        }))])
            },
            |r: CreatePartitionsResponse| {
                only_result(
                    r.results
                        .first()
                        .map(|t| (t.error_code, t.error_message.as_ref())),
                )
            },
        )
        .await
    }

    /// Replaces the config overrides of a topic, one broker or the cluster defaults; with
    /// `producer_reset` (the cluster defaults only, checked by the caller) a producer reset
    /// with that floor in the same metadata-log entry, forwarded as the
    /// `strata.producer.reset` entry of the AlterConfigs request.
    pub async fn set_configs(
        &self,
        target: ConfigTarget,
        configs: BTreeMap<String, String>,
        producer_reset: Option<i64>,
        within: Duration,
    ) -> Result<(), ControllerError> {
        let (resource_type, resource_name) = match &target {
            ConfigTarget::Topic(t) => (2, t.clone()),
            ConfigTarget::Broker(id) => (4, id.to_string()),
            ConfigTarget::ClusterDefault => (4, String::new()),
        };
        self.call(
            within,
            || async {
                match &target {
                    ConfigTarget::Topic(t) => {
                        self.quorum
                            .set_topic_configs(t.clone(), configs.clone())
                            .await
                    }
                    ConfigTarget::Broker(id) => {
                        self.quorum.set_broker_configs(*id, configs.clone()).await
                    }
                    ConfigTarget::ClusterDefault => {
                        self.quorum
                            .set_cluster_configs_resetting_producers(
                                configs.clone(),
                                producer_reset,
                            )
                            .await
                    }
                }
                .map(|_| ())
            },
            |_| {
                AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(str_bytes(&resource_name))
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.clone()))
                            .chain(producer_reset.map(|floor| {
                                (
                                    strata_kafka::failover::PRODUCER_RESET_CONFIG,
                                    floor.to_string(),
                                )
                            }))
                            .map(|(k, v)| {
                                AlterableConfig::default()
                                    .with_name(str_bytes(k))
                                    .with_value(Some(str_bytes(&v)))
                            })
                            .collect(),
                    )])
            },
            |r: AlterConfigsResponse| {
                only_result(
                    r.responses
                        .first()
                        .map(|res| (res.error_code, res.error_message.as_ref())),
                )
            },
        )
        .await
    }

    /// AlterUserScramCredentials on the active controller: `changes` are checked by the caller;
    /// the active controller derives the stored credentials from the salted passwords (so a
    /// forwarded change is Kafka's own request). Returns the refusals by user (none: all made).
    pub async fn alter_scram_credentials(
        &self,
        changes: &[ScramRequestChange],
        within: Duration,
    ) -> Result<BTreeMap<String, (i16, String)>, ControllerError> {
        use kafka_protocol::messages::alter_user_scram_credentials_request as ausc;
        self.call(
            within,
            || async {
                let derived = changes.iter().map(ScramRequestChange::derive).collect();
                let (outcomes, _) = self.quorum.alter_scram_credentials(derived).await?;
                let mut refused = BTreeMap::new();
                for (change, outcome) in changes.iter().zip(outcomes) {
                    if let Err(e) = outcome {
                        refused.entry(change.user.clone()).or_insert(e);
                    }
                }
                Ok(refused)
            },
            |_| {
                let mut req = AlterUserScramCredentialsRequest::default();
                for c in changes {
                    match &c.upsert {
                        None => req.deletions.push(
                            ausc::ScramCredentialDeletion::default()
                                .with_name(str_bytes(&c.user))
                                .with_mechanism(c.mechanism.scram_type()),
                        ),
                        Some(u) => req.upsertions.push(
                            ausc::ScramCredentialUpsertion::default()
                                .with_name(str_bytes(&c.user))
                                .with_mechanism(c.mechanism.scram_type())
                                .with_iterations(u.iterations)
                                .with_salt(u.salt.clone().into())
                                .with_salted_password(u.salted_password.clone().into()),
                        ),
                    }
                }
                req
            },
            |r: AlterUserScramCredentialsResponse| {
                not_controller_anywhere(r.results.iter().map(|x| x.error_code))?;
                Ok(r.results
                    .iter()
                    .filter(|x| x.error_code != code::NONE)
                    .map(|x| {
                        let message = x.error_message.as_ref().map(|m| m.to_string());
                        (
                            x.user.to_string(),
                            (x.error_code, message.unwrap_or_default()),
                        )
                    })
                    .collect())
            },
        )
        .await
    }

    /// CreateAcls on the active controller (bindings checked by the caller).
    pub async fn create_acls(
        &self,
        bindings: &[AclBinding],
        within: Duration,
    ) -> Result<(), ControllerError> {
        self.call(
            within,
            || async { self.quorum.create_acls(bindings.to_vec()).await.map(|_| ()) },
            |_| {
                CreateAclsRequest::default()
                    .with_creations(bindings.iter().map(AclBinding::creation).collect())
            },
            |r: CreateAclsResponse| {
                not_controller_anywhere(r.results.iter().map(|x| x.error_code))?;
                r.results
                    .iter()
                    .try_for_each(|x| only_result(Some((x.error_code, x.error_message.as_ref()))))
            },
        )
        .await
    }

    /// DeleteAcls on the active controller: what each filter deleted.
    pub async fn delete_acls(
        &self,
        filters: &[AclFilter],
        within: Duration,
    ) -> Result<Vec<Vec<AclBinding>>, ControllerError> {
        self.call(
            within,
            || async { self.quorum.delete_acls(filters.to_vec()).await },
            |_| {
                DeleteAclsRequest::default()
                    .with_filters(filters.iter().map(AclFilter::delete_filter).collect())
            },
            |r: DeleteAclsResponse| {
                not_controller_anywhere(r.filter_results.iter().map(|x| x.error_code))?;
                r.filter_results
                    .iter()
                    .map(|x| {
                        only_result(Some((x.error_code, x.error_message.as_ref())))?;
                        Ok(x.matching_acls
                            .iter()
                            .map(AclBinding::from_matching_acl)
                            .collect())
                    })
                    .collect()
            },
        )
        .await
    }

    /// Tail truncation of a mirror target's partitions (`(partition, offset)`, checked by the
    /// caller against the leaders' logs). Forwarded as IncrementalAlterConfigs setting
    /// `strata.mirror.truncate.offsets`, the request a client sends.
    pub async fn truncate_partitions(
        &self,
        topic: &str,
        offsets: &[(i32, i64)],
        within: Duration,
    ) -> Result<(), ControllerError> {
        use kafka_protocol::messages::incremental_alter_configs_request as iac;
        let value = offsets
            .iter()
            .map(|(p, o)| format!("{p}:{o}"))
            .collect::<Vec<_>>()
            .join(",");
        self.call(
            within,
            || async {
                self.quorum
                    .truncate_partitions(topic.to_string(), offsets.to_vec())
                    .await
                    .map(|_| ())
            },
            |_| {
                IncrementalAlterConfigsRequest::default().with_resources(vec![
                    iac::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(str_bytes(topic))
                        .with_configs(vec![iac::AlterableConfig::default()
                            .with_name(str_bytes(strata_kafka::failover::TRUNCATE_OFFSETS_CONFIG))
                            .with_config_operation(0)
                            .with_value(Some(str_bytes(&value)))]),
                ])
            },
            |r: IncrementalAlterConfigsResponse| {
                only_result(
                    r.responses
                        .first()
                        .map(|res| (res.error_code, res.error_message.as_ref())),
                )
            },
        )
        .await
    }

    /// ElectLeaders on the active controller; each partition's outcome.
    pub async fn elect_leaders(
        &self,
        kind: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
        within: Duration,
    ) -> Result<Vec<(String, i32, ElectionResult)>, ControllerError> {
        self.call(
            within,
            || async { Ok(self.quorum.elect_leaders(kind, partitions.clone()).await?.0) },
            |_| {
                ElectLeadersRequest::default()
                    .with_election_type(match kind {
                        ElectionType::Preferred => 0,
                        ElectionType::Unclean => 1,
                    })
                    .with_timeout_ms(within.as_millis() as i32)
                    .with_topic_partitions(partitions.as_ref().map(|ps| {
                        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                        for (t, p) in ps {
                            by_topic.entry(t).or_default().push(*p);
                        }
                        by_topic
                            .into_iter()
                            .map(|(t, ps)| {
                                elect_leaders_request::TopicPartitions::default()
                                    .with_topic(str_bytes(t).into())
                                    .with_partitions(ps)
                            })
                            .collect()
                    }))
            },
            |r: ElectLeadersResponse| {
                if r.error_code != code::NONE {
                    return Err(kafka(r.error_code, None));
                }
                not_controller_anywhere(
                    r.replica_election_results
                        .iter()
                        .flat_map(|t| t.partition_result.iter().map(|p| p.error_code)),
                )?;
                Ok(r.replica_election_results
                    .iter()
                    .flat_map(|t| {
                        t.partition_result.iter().map(|p| {
                            let outcome =
                                topic_outcome(Some((p.error_code, p.error_message.as_ref())));
                            (t.topic.0.to_string(), p.partition_id, outcome)
                        })
                    })
                    .collect())
            },
        )
        .await
    }

    /// AlterPartitionReassignments on the active controller; each partition's outcome in the
    /// order of `changes`.
    pub async fn alter_reassignments(
        &self,
        changes: Vec<(String, i32, Option<Vec<i32>>)>,
        allow_rf_change: bool,
        within: Duration,
    ) -> Result<Vec<Result<(), (i16, String)>>, ControllerError> {
        self.call(
            within,
            || async {
                let (results, _) = self
                    .quorum
                    .alter_reassignments(changes.clone(), allow_rf_change)
                    .await?;
                Ok(results
                    .into_iter()
                    .map(|r| {
                        r.map_err(|e| match e {
                            ControllerError::Kafka { code, message } => (code, message),
                            other => (code::REQUEST_TIMED_OUT, other.to_string()),
                        })
                    })
                    .collect())
            },
            |_| {
                let mut topics: Vec<alter_partition_reassignments_request::ReassignableTopic> =
                    Vec::new();
                for (t, p, target) in &changes {
                    let partition =
                        alter_partition_reassignments_request::ReassignablePartition::default()
                            .with_partition_index(*p)
                            .with_replicas(
                                target
                                    .as_ref()
                                    .map(|r| r.iter().map(|b| (*b).into()).collect()),
                            );
                    match topics.iter_mut().find(|x| x.name.0.as_str() == t) {
                        Some(x) => x.partitions.push(partition),
                        None => topics.push(
                            alter_partition_reassignments_request::ReassignableTopic::default()
                                .with_name(str_bytes(t).into())
                                .with_partitions(vec![partition]),
                        ),
                    }
                }
                AlterPartitionReassignmentsRequest::default()
                    .with_timeout_ms(within.as_millis() as i32)
                    .with_allow_replication_factor_change(allow_rf_change)
                    .with_topics(topics)
            },
            |r: AlterPartitionReassignmentsResponse| {
                if r.error_code != code::NONE {
                    return Err(kafka(r.error_code, r.error_message.as_ref()));
                }
                Ok(changes
                    .iter()
                    .map(|(t, p, _)| {
                        let found = r
                            .responses
                            .iter()
                            .filter(|x| x.name.0.as_str() == t)
                            .flat_map(|x| x.partitions.iter())
                            .find(|x| x.partition_index == *p);
                        topic_outcome(found.map(|x| (x.error_code, x.error_message.as_ref())))
                    })
                    .collect())
            },
        )
        .await
    }
}

/// Whose configs a change replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigTarget {
    Topic(String),
    /// One broker's dynamic configs (the BROKER resource named by its id).
    Broker(i32),
    /// The cluster-wide dynamic defaults (the BROKER resource with an empty name).
    ClusterDefault,
}
