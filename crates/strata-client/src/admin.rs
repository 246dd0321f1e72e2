//! Administration through the Kafka admin APIs: topics (CreateTopics, DeleteTopics,
//! CreatePartitions, sent to the controller), configs (DescribeConfigs and
//! IncrementalAlterConfigs; a topic to any broker, a broker resource to that broker) and
//! consumer groups (ListGroups on every broker; DescribeGroups, OffsetFetch and OffsetCommit on
//! the group's coordinator). Every call retries retriable errors with backoff (re-finding the
//! controller or coordinator first) and returns fatal ones as [`Error::Kafka`] at once.
//! Request builders are pure functions of the negotiated version, tested to encode at every
//! version this client negotiates.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    DescribeGroupsRequest, GroupId, IncrementalAlterConfigsRequest, ListGroupsRequest,
    OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::client::Target;
use crate::{Client, Error};

/// Config resource types (`ConfigResource.Type`).
const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// Admin operations; cheap to create with [`Client::admin`] and to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    pub(crate) client: Client,
}

/// A topic to create. `None` lets the broker choose (`num.partitions`,
/// `default.replication.factor`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i16>,
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic with broker defaults for partitions, replication factor and configs.
    pub fn new(name: impl Into<String>) -> Self {
        NewTopic {
            name: name.into(),
            ..NewTopic::default()
        }
    }
}

/// What the broker created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    /// The new topic's id (CreateTopics v7+).
    pub topic_id: Option<Uuid>,
    pub partitions: i32,
    pub replication_factor: i16,
}

/// One config of a topic or broker, as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for sensitive values and values that are not set.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
}

/// Where a config value comes from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    DynamicTopic,
    /// Set dynamically for this broker.
    DynamicBroker,
    /// Set dynamically as the default of every broker.
    DynamicDefaultBroker,
    /// From the broker's properties file.
    StaticBroker,
    /// The built-in default.
    Default,
    /// Any other source code (loggers, client metrics, groups, unknown).
    Unknown,
}

impl ConfigSource {
    fn from_code(code: i8) -> ConfigSource {
        match code {
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            _ => ConfigSource::Unknown,
        }
    }
}

/// One change of IncrementalAlterConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    /// Set `name` to `value`.
    Set(String, String),
    /// Remove the override of `name` (back to the broker's value).
    Delete(String),
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// `consumer` for consumer groups, empty for groups used only to commit offsets.
    pub protocol_type: String,
    /// The group state (`Stable`, `Empty`, ...), from ListGroups v4+.
    pub state: Option<String>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable` or `Dead` (also for a
    /// group that does not exist).
    pub state: String,
    pub protocol_type: String,
    /// The chosen assignor (`range`, `cooperative-sticky`, ...), empty unless stable.
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
}

/// Admin calls name their topic explicitly: an unknown topic is an answer, not metadata that
/// has yet to propagate, so it is not retried (as in Kafka's admin client).
fn retriable(e: &Error) -> bool {
    e.is_retriable() && !e.is(ResponseError::UnknownTopicOrPartition)
}

fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

impl Admin {
    /// The client this admin uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How long the broker may take for an operation: a little less than the request timeout,
    /// so that its REQUEST_TIMED_OUT arrives before the client gives up.
    pub(crate) fn broker_timeout_ms(&self) -> i32 {
        let t = self.client.timeout();
        let margin = (t / 10).min(std::time::Duration::from_secs(1));
        i32::try_from(t.saturating_sub(margin).as_millis()).unwrap_or(i32::MAX)
    }

    /// Asks the controller whether it would create `topic` as given (CreateTopics with
    /// `validateOnly`): nothing is created; the error is the one creating it would get.
    pub async fn validate_topic(&self, topic: &NewTopic) -> Result<(), Error> {
        self.create_topics(topic, true).await.map(|_| ())
    }

    /// One CreateTopics of `topic` on the controller (retried while retriable): the response
    /// version and the topic's result.
    async fn create_topics(
        &self,
        topic: &NewTopic,
        validate_only: bool,
    ) -> Result<(i16, CreatableTopicResult), Error> {
        let c = &self.client;
        let timeout_ms = self.broker_timeout_ms();
        c.retry_if("CreateTopics", retriable, || async move {
            let conn = c.connection_for(&Target::Controller).await?;
            let (version, resp) = conn
                .request(
                    |_| create_topics_request(topic, timeout_ms, validate_only),
                    c.timeout(),
                )
                .await?;
            let result = resp
                .topics
                .into_iter()
                .find(|t| t.name.0.as_str() == topic.name)
                .ok_or_else(|| {
                    Error::Protocol(format!(
                        "CreateTopics response does not mention {}",
                        topic.name
                    ))
                })?;
            Error::check(
                "CreateTopics",
                result.error_code,
                result.error_message.as_deref(),
            )?;
            Ok((version, result))
        })
        .await
    }

    /// Creates a topic (CreateTopics on the controller).
    pub async fn create_topic(&self, topic: &NewTopic) -> Result<CreatedTopic, Error> {
        let c = &self.client;
        let (version, result) = self.create_topics(topic, false).await?;
        c.invalidate_metadata();
        let mut created = CreatedTopic {
            topic_id: (!result.topic_id.is_nil()).then_some(result.topic_id),
            partitions: if version >= 5 {
                result.num_partitions
            } else {
                -1
            },
            replication_factor: if version >= 5 {
                result.replication_factor
            } else {
                -1
            },
        };
        if created.partitions < 0 || created.replication_factor < 0 {
            // Before CreateTopics v5 the response does not say what the defaults resolved to.
            if let Ok(meta) = c.topic_metadata(&topic.name).await {
                created.partitions = meta.partitions.len() as i32;
                created.replication_factor = meta
                    .partitions
                    .first()
                    .map_or(-1, |p| p.replicas.len() as i16);
                created.topic_id = created.topic_id.or(meta.id);
            }
        }
        Ok(created)
    }

    /// Deletes a topic (DeleteTopics on the controller).
    pub async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        let c = &self.client;
        let timeout_ms = self.broker_timeout_ms();
        c.retry_if("DeleteTopics", retriable, || async move {
            let conn = c.connection_for(&Target::Controller).await?;
            let (_, resp) = conn
                .request(|v| delete_topics_request(v, name, timeout_ms), c.timeout())
                .await?;
            let result = resp
                .responses
                .into_iter()
                .find(|r| r.name.as_ref().is_some_and(|n| n.0.as_str() == name))
                .ok_or_else(|| {
                    Error::Protocol(format!("DeleteTopics response does not mention {name}"))
                })?;
            Error::check(
                "DeleteTopics",
                result.error_code,
                result.error_message.as_deref(),
            )
        })
        .await?;
        c.invalidate_metadata();
        Ok(())
    }

    /// Raises a topic's partition count to `total` (CreatePartitions on the controller); a
    /// decrease or no change fails with INVALID_PARTITIONS.
    pub async fn create_partitions(&self, name: &str, total: i32) -> Result<(), Error> {
        let c = &self.client;
        let timeout_ms = self.broker_timeout_ms();
        c.retry_if("CreatePartitions", retriable, || async move {
            let conn = c.connection_for(&Target::Controller).await?;
            let (_, resp) = conn
                .request(
                    |_| create_partitions_request(name, total, timeout_ms),
                    c.timeout(),
                )
                .await?;
            let result = resp
                .results
                .into_iter()
                .find(|r| r.name.0.as_str() == name)
                .ok_or_else(|| {
                    Error::Protocol(format!("CreatePartitions response does not mention {name}"))
                })?;
            Error::check(
                "CreatePartitions",
                result.error_code,
                result.error_message.as_deref(),
            )
        })
        .await?;
        c.invalidate_metadata();
        Ok(())
    }

    /// Every config of a topic with its effective value and source.
    pub async fn describe_topic_configs(&self, name: &str) -> Result<Vec<ConfigEntry>, Error> {
        self.describe_configs(Target::Any, RESOURCE_TOPIC, name, None)
            .await
    }

    /// Every config of a broker, asked of that broker.
    pub async fn describe_broker_configs(&self, broker_id: i32) -> Result<Vec<ConfigEntry>, Error> {
        self.describe_configs(
            Target::Broker(broker_id),
            RESOURCE_BROKER,
            &broker_id.to_string(),
            None,
        )
        .await
    }

    /// One config of a broker by name, asked of that broker (None when it answers none: a
    /// broker answers only the names it knows).
    pub async fn describe_broker_config(
        &self,
        broker_id: i32,
        key: &str,
    ) -> Result<Option<String>, Error> {
        let entries = self
            .describe_configs(
                Target::Broker(broker_id),
                RESOURCE_BROKER,
                &broker_id.to_string(),
                Some(key),
            )
            .await?;
        Ok(entries
            .into_iter()
            .find(|e| e.name == key)
            .and_then(|e| e.value))
    }

    /// The cluster-wide default broker configs (resource name `""`), asked of any broker: what
    /// `kafka-configs --entity-type brokers --entity-default --describe` shows.
    pub async fn describe_default_broker_configs(&self) -> Result<Vec<ConfigEntry>, Error> {
        self.describe_configs(Target::Any, RESOURCE_BROKER, "", None)
            .await
    }

    async fn describe_configs(
        &self,
        target: Target,
        resource_type: i8,
        name: &str,
        key: Option<&str>,
    ) -> Result<Vec<ConfigEntry>, Error> {
        let c = &self.client;
        let target = &target;
        c.retry_if("DescribeConfigs", retriable, || async move {
            let conn = c.connection_for(target).await?;
            let (_, resp) = conn
                .request(
                    |_| {
                        DescribeConfigsRequest::default().with_resources(vec![
                            DescribeConfigsResource::default()
                                .with_resource_type(resource_type)
                                .with_resource_name(sb(name))
                                .with_configuration_keys(key.map(|k| vec![sb(k)])),
                        ])
                    },
                    c.timeout(),
                )
                .await?;
            let result = resp
                .results
                .into_iter()
                .find(|r| r.resource_type == resource_type && r.resource_name.as_str() == name)
                .ok_or_else(|| {
                    Error::Protocol(format!("DescribeConfigs response does not mention {name}"))
                })?;
            Error::check(
                "DescribeConfigs",
                result.error_code,
                result.error_message.as_deref(),
            )?;
            Ok(result
                .configs
                .into_iter()
                .map(|e| ConfigEntry {
                    name: e.name.to_string(),
                    value: e.value.map(|v| v.to_string()),
                    source: ConfigSource::from_code(e.config_source),
                    read_only: e.read_only,
                    sensitive: e.is_sensitive,
                })
                .collect())
        })
        .await
    }

    /// Sets and deletes topic config overrides in one IncrementalAlterConfigs request.
    pub async fn incremental_alter_topic_configs(
        &self,
        name: &str,
        ops: &[ConfigOp],
    ) -> Result<(), Error> {
        if ops.is_empty() {
            return Ok(());
        }
        let c = &self.client;
        c.retry_if("IncrementalAlterConfigs", retriable, || async move {
            let conn = c.connection_for(&Target::Any).await?;
            let (_, resp) = conn
                .request(
                    |_| incremental_alter_request(RESOURCE_TOPIC, name, ops),
                    c.timeout(),
                )
                .await?;
            let result = resp
                .responses
                .into_iter()
                .find(|r| r.resource_name.as_str() == name)
                .ok_or_else(|| {
                    Error::Protocol(format!(
                        "IncrementalAlterConfigs response does not mention {name}"
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

    /// Every group on every broker (ListGroups is answered per coordinator), sorted by id.
    /// Fails when any broker cannot be asked.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, Error> {
        let c = &self.client;
        let brokers = c.metadata(Some(&[])).await?.brokers;
        let asks = brokers.iter().map(|b| {
            let id = b.id;
            c.retry("ListGroups", move || async move {
                let conn = c.broker_connection(id).await?;
                let (version, resp) = conn
                    .request(|_| ListGroupsRequest::default(), c.timeout())
                    .await?;
                Error::check("ListGroups", resp.error_code, None)?;
                Ok(resp
                    .groups
                    .into_iter()
                    .map(|g| GroupListing {
                        group_id: g.group_id.0.to_string(),
                        protocol_type: g.protocol_type.to_string(),
                        state: (version >= 4).then(|| g.group_state.to_string()),
                    })
                    .collect::<Vec<_>>())
            })
        });
        let mut all = BTreeMap::new();
        for listed in futures::future::try_join_all(asks).await? {
            for g in listed {
                all.insert(g.group_id.clone(), g);
            }
        }
        Ok(all.into_values().collect())
    }

    /// Describes groups on their coordinators, in the order asked.
    pub async fn describe_groups(&self, groups: &[String]) -> Result<Vec<GroupDescription>, Error> {
        let asks = groups.iter().map(|g| self.describe_group(g));
        futures::future::try_join_all(asks).await
    }

    async fn describe_group(&self, group: &str) -> Result<GroupDescription, Error> {
        self.client
            .coordinator_request(
                group,
                |_| DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))]),
                |_, resp| {
                    let g = resp
                        .groups
                        .into_iter()
                        .find(|g| g.group_id.0.as_str() == group)
                        .ok_or_else(|| {
                            Error::Protocol(format!(
                                "DescribeGroups response does not mention {group}"
                            ))
                        })?;
                    if g.error_code == ResponseError::GroupIdNotFound.code() {
                        return Ok(GroupDescription {
                            group_id: group.to_string(),
                            state: "Dead".into(),
                            protocol_type: String::new(),
                            protocol: String::new(),
                            members: Vec::new(),
                        });
                    }
                    Error::check("DescribeGroups", g.error_code, g.error_message.as_deref())?;
                    Ok(GroupDescription {
                        group_id: g.group_id.0.to_string(),
                        state: g.group_state.to_string(),
                        protocol_type: g.protocol_type.to_string(),
                        protocol: g.protocol_data.to_string(),
                        members: g
                            .members
                            .into_iter()
                            .map(|m| GroupMember {
                                member_id: m.member_id.to_string(),
                                group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                                client_id: m.client_id.to_string(),
                                client_host: m.client_host.to_string(),
                            })
                            .collect(),
                    })
                },
            )
            .await
    }

    /// A group's committed offsets by (topic, partition); partitions without a committed
    /// offset are absent, and so is everything for a group that does not exist.
    pub async fn fetch_group_offsets(
        &self,
        group: &str,
    ) -> Result<BTreeMap<(String, i32), i64>, Error> {
        Ok(self
            .fetch_group_commits(group)
            .await?
            .into_iter()
            .map(|(k, c)| (k, c.offset))
            .collect())
    }

    /// Like [`Admin::fetch_group_offsets`], with each commit's metadata string.
    pub async fn fetch_group_commits(
        &self,
        group: &str,
    ) -> Result<BTreeMap<(String, i32), Committed>, Error> {
        self.client
            .coordinator_request(
                group,
                |v| offset_fetch_request(v, group),
                |version, resp| {
                    let mut out = BTreeMap::new();
                    let mut keep = |topic: &str,
                                    partition: i32,
                                    offset: i64,
                                    metadata: Option<StrBytes>,
                                    code: i16| {
                        Error::check("OffsetFetch", code, None)?;
                        if offset >= 0 {
                            let metadata = metadata.map(|m| m.to_string()).unwrap_or_default();
                            out.insert(
                                (topic.to_string(), partition),
                                Committed { offset, metadata },
                            );
                        }
                        Ok::<(), Error>(())
                    };
                    if version >= 8 {
                        let g = resp
                            .groups
                            .into_iter()
                            .find(|g| g.group_id.0.as_str() == group)
                            .ok_or_else(|| {
                                Error::Protocol(format!(
                                    "OffsetFetch response does not mention {group}"
                                ))
                            })?;
                        Error::check("OffsetFetch", g.error_code, None)?;
                        for t in g.topics {
                            for p in t.partitions {
                                keep(
                                    &t.name.0,
                                    p.partition_index,
                                    p.committed_offset,
                                    p.metadata,
                                    p.error_code,
                                )?;
                            }
                        }
                    } else {
                        Error::check("OffsetFetch", resp.error_code, None)?;
                        for t in resp.topics {
                            for p in t.partitions {
                                keep(
                                    &t.name.0,
                                    p.partition_index,
                                    p.committed_offset,
                                    p.metadata,
                                    p.error_code,
                                )?;
                            }
                        }
                    }
                    Ok(out)
                },
            )
            .await
    }

    /// Commits offsets as an admin (generation -1, no member id), as `kafka-consumer-groups
    /// --reset-offsets` does. The coordinator refuses this while the group has members; that
    /// refusal is returned as [`Error::Kafka`].
    pub async fn commit_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<(), Error> {
        let commits = offsets
            .iter()
            .map(|(k, &offset)| {
                let metadata = String::new();
                (k.clone(), Committed { offset, metadata })
            })
            .collect();
        self.commit_group_commits(group, &commits).await
    }

    /// Like [`Admin::commit_group_offsets`], with a metadata string per commit.
    pub async fn commit_group_commits(
        &self,
        group: &str,
        commits: &BTreeMap<(String, i32), Committed>,
    ) -> Result<(), Error> {
        if commits.is_empty() {
            return Ok(());
        }
        self.client
            .coordinator_request(
                group,
                |_| offset_commit_request(group, commits),
                |_, resp| {
                    for t in resp.topics {
                        for p in t.partitions {
                            Error::check("OffsetCommit", p.error_code, None)?;
                        }
                    }
                    Ok(())
                },
            )
            .await
    }
}

/// A committed group offset with its metadata string (empty when none was given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub metadata: String,
}

fn create_topics_request(
    topic: &NewTopic,
    timeout_ms: i32,
    validate_only: bool,
) -> CreateTopicsRequest {
    let configs = topic
        .configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(sb(k.clone()))
                .with_value(Some(sb(v.clone())))
        })
        .collect();
    CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(sb(topic.name.clone())))
            .with_num_partitions(topic.partitions.unwrap_or(-1))
            .with_replication_factor(topic.replication_factor.unwrap_or(-1))
            .with_configs(configs)])
        .with_timeout_ms(timeout_ms)
        .with_validate_only(validate_only)
}

fn delete_topics_request(version: i16, name: &str, timeout_ms: i32) -> DeleteTopicsRequest {
    let req = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
    if version >= 6 {
        req.with_topics(vec![
            DeleteTopicState::default().with_name(Some(TopicName(sb(name))))
        ])
    } else {
        req.with_topic_names(vec![TopicName(sb(name))])
    }
}

fn create_partitions_request(name: &str, total: i32, timeout_ms: i32) -> CreatePartitionsRequest {
    CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(sb(name)))
            .with_count(total)
            .with_assignments(None)])
        .with_timeout_ms(timeout_ms)
}

pub(crate) fn incremental_alter_request(
    resource_type: i8,
    name: &str,
    ops: &[ConfigOp],
) -> IncrementalAlterConfigsRequest {
    let configs = ops
        .iter()
        .map(|op| match op {
            ConfigOp::Set(k, v) => AlterableConfig::default()
                .with_name(sb(k.clone()))
                .with_config_operation(OP_SET)
                .with_value(Some(sb(v.clone()))),
            ConfigOp::Delete(k) => AlterableConfig::default()
                .with_name(sb(k.clone()))
                .with_config_operation(OP_DELETE)
                .with_value(None),
        })
        .collect();
    IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(sb(name))
        .with_configs(configs)])
}

/// All committed offsets of `group`: v2-v7 with a null topic list, v8+ as a one-group batch.
fn offset_fetch_request(version: i16, group: &str) -> OffsetFetchRequest {
    if version >= 8 {
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(sb(group)))
            .with_topics(None)])
    } else {
        OffsetFetchRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_topics(None)
    }
}

fn offset_commit_request(
    group: &str,
    commits: &BTreeMap<(String, i32), Committed>,
) -> OffsetCommitRequest {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((topic, partition), c) in commits {
        topics.entry(topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(c.offset)
                .with_committed_metadata(Some(sb(&c.metadata))),
        );
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::default())
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(sb(name)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::implemented;
    use bytes::BytesMut;
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::protocol::Encodable;

    fn encodes<R: Encodable>(key: ApiKey, build: impl Fn(i16) -> R) {
        let (lo, hi) = implemented(key);
        for v in lo..=hi {
            let mut buf = BytesMut::new();
            build(v)
                .encode(&mut buf, v)
                .unwrap_or_else(|e| panic!("{key:?} v{v}: {e}"));
        }
    }

    #[test]
    fn admin_requests_encode_at_every_negotiable_version() {
        let mut topic = NewTopic::new("t");
        topic.partitions = Some(3);
        topic.configs.insert("retention.ms".into(), "1000".into());
        encodes(ApiKey::CreateTopics, |_| {
            create_topics_request(&topic, 1000, false)
        });
        encodes(ApiKey::DeleteTopics, |v| {
            delete_topics_request(v, "t", 1000)
        });
        encodes(ApiKey::CreatePartitions, |_| {
            create_partitions_request("t", 4, 1000)
        });
        encodes(ApiKey::IncrementalAlterConfigs, |_| {
            incremental_alter_request(
                RESOURCE_TOPIC,
                "t",
                &[
                    ConfigOp::Set("a".into(), "1".into()),
                    ConfigOp::Delete("b".into()),
                ],
            )
        });
        encodes(ApiKey::OffsetFetch, |v| offset_fetch_request(v, "g"));
        let offsets = BTreeMap::from([(("t".to_string(), 0), committed(5, "m"))]);
        encodes(ApiKey::OffsetCommit, |_| {
            offset_commit_request("g", &offsets)
        });
        encodes(ApiKey::ListGroups, |_| ListGroupsRequest::default());
        encodes(ApiKey::DescribeGroups, |_| {
            DescribeGroupsRequest::default().with_groups(vec![GroupId(sb("g"))])
        });
    }

    #[test]
    fn new_topic_defaults_to_the_broker() {
        let req = create_topics_request(&NewTopic::new("t"), 1000, false);
        assert_eq!(req.topics[0].num_partitions, -1);
        assert_eq!(req.topics[0].replication_factor, -1);
    }

    #[test]
    fn commit_groups_partitions_by_topic() {
        let offsets = BTreeMap::from([
            (("a".to_string(), 1), committed(10, "")),
            (("a".to_string(), 0), committed(5, "x")),
            (("b".to_string(), 0), committed(1, "")),
        ]);
        let req = offset_commit_request("g", &offsets);
        assert_eq!(req.generation_id_or_member_epoch, -1);
        assert_eq!(req.topics.len(), 2);
        assert_eq!(req.topics[0].partitions.len(), 2);
        let metadata = req.topics[0].partitions[0].committed_metadata.as_deref();
        assert_eq!(metadata, Some("x"));
    }

    fn committed(offset: i64, metadata: &str) -> Committed {
        let metadata = metadata.to_string();
        Committed { offset, metadata }
    }

    #[test]
    fn config_sources() {
        assert_eq!(ConfigSource::from_code(1), ConfigSource::DynamicTopic);
        assert_eq!(ConfigSource::from_code(4), ConfigSource::StaticBroker);
        assert_eq!(ConfigSource::from_code(5), ConfigSource::Default);
        assert_eq!(ConfigSource::from_code(-1), ConfigSource::Unknown);
        assert_eq!(ConfigSource::from_code(8), ConfigSource::Unknown);
    }
}
