//! Reconciles a `KafkaTopic` through the Kafka admin API, in the five steps of the operator
//! conventions: read (the topic, its cluster, competing topic objects), validate
//! ([`plan::desired`]), plan the change ([`plan::diff`] against what the cluster reports), apply
//! it through [`KafkaAdmin`], and write the status from what the cluster then reports.
//!
//! Safety rules: a partition decrease or replication-factor change is refused with a condition
//! and nothing changes; of two objects naming the same topic on the same cluster the older one
//! owns it and the newer gets a `TopicConflict` condition (and never touches or deletes it);
//! the topic is deleted in Kafka only with `deletionPolicy: Delete`, through a finalizer that is
//! present exactly while that policy is set, so `Retain` topics never wait on the operator.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;
use strata_api::{DeletionPolicy, KafkaCluster, KafkaTopic, KafkaTopicStatus};

use crate::conditions::{self, DesiredCondition, READY};
use crate::context::Context;
use crate::kafka::{AdminError, KafkaTarget, ObservedTopic};
use crate::topic::plan::{self, DesiredTopic, TopicAction};

/// Finalizer held by topics with `deletionPolicy: Delete` until the Kafka topic is deleted.
pub const FINALIZER: &str = "kafka.strata.dev/topic-deletion";

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "kafkatopic";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[source] kube::Error),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("KafkaTopic has no namespace")]
    NotNamespaced,
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesApi",
            Error::Admin(e) => e.reason(),
            Error::NotNamespaced => "NotNamespaced",
        }
    }
}

/// Entry point for the controller.
pub async fn reconcile(topic: Arc<KafkaTopic>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = topic.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<KafkaTopic> = Api::namespaced(ctx.client.clone(), &namespace);
    if topic.meta().deletion_timestamp.is_some() {
        return cleanup(&topic, &api, &namespace, &ctx).await;
    }

    // Validate.
    let desired = match plan::desired(&topic) {
        Ok(d) => d,
        Err(invalid) => {
            write_status(
                &api,
                &topic,
                None,
                None,
                DesiredCondition::new(READY, false, invalid.reason, invalid.message.clone()),
            )
            .await?;
            return Ok(Action::await_change());
        }
    };

    // Read: competing objects for the same topic.
    if let Some(owner) = older_owner(&topic, &desired, &namespace, &ctx).await? {
        let message = format!(
            "topic {} on cluster {} is already managed by KafkaTopic {owner}; \
             delete one of the two objects",
            desired.name, topic.spec.cluster_ref.name
        );
        write_status(
            &api,
            &topic,
            None,
            None,
            DesiredCondition::new(READY, false, "TopicConflict", message),
        )
        .await?;
        return Ok(Action::requeue(ctx.timing.waiting));
    }

    // Read: the cluster.
    let Some(target) = resolve_cluster(&topic, &namespace, &ctx).await? else {
        let message = format!(
            "KafkaCluster {} not found in namespace {namespace}",
            topic.spec.cluster_ref.name
        );
        write_status(
            &api,
            &topic,
            None,
            None,
            DesiredCondition::new(READY, false, "ClusterNotFound", message),
        )
        .await?;
        return Ok(Action::requeue(ctx.timing.waiting));
    };

    ensure_finalizer(&api, &topic).await?;

    match sync_topic(&topic, &desired, &target, &ctx).await {
        Ok(condition) => {
            let observed = ctx
                .admin
                .describe_topic(&target, &desired.name)
                .await
                .map_err(Error::Admin)?;
            write_status(&api, &topic, observed.as_ref(), Some(&desired), condition).await?;
            Ok(Action::requeue(ctx.timing.resync))
        }
        Err(e @ AdminError::Refused { .. }) => {
            let message = e.to_string();
            ctx.event(
                &*topic,
                EventType::Warning,
                e.reason(),
                "Sync",
                message.clone(),
            )
            .await;
            write_status(
                &api,
                &topic,
                None,
                None,
                DesiredCondition::new(READY, false, e.reason(), message),
            )
            .await?;
            Ok(Action::requeue(ctx.timing.resync))
        }
        Err(e) => {
            write_status(
                &api,
                &topic,
                None,
                None,
                DesiredCondition::new(READY, false, e.reason(), e.to_string()),
            )
            .await?;
            Err(Error::Admin(e))
        }
    }
}

/// Plans and applies the change; returns the `Ready` condition to report.
async fn sync_topic(
    topic: &KafkaTopic,
    desired: &DesiredTopic,
    target: &KafkaTarget,
    ctx: &Context,
) -> Result<DesiredCondition, AdminError> {
    let observed = ctx.admin.describe_topic(target, &desired.name).await?;
    let name = &desired.name;
    match plan::diff(desired, observed.as_ref()) {
        TopicAction::InSync => Ok(ready()),
        TopicAction::Create {
            partitions,
            replication_factor,
            config,
        } => {
            ctx.admin
                .create_topic(target, name, partitions, replication_factor, &config)
                .await?;
            ctx.event(
                topic,
                EventType::Normal,
                "TopicCreated",
                "Create",
                format!("created topic {name} on {}", target.cluster),
            )
            .await;
            Ok(ready())
        }
        TopicAction::Alter {
            add_partitions_to,
            set,
            delete,
        } => {
            if let Some(total) = add_partitions_to {
                ctx.admin.create_partitions(target, name, total).await?;
                ctx.event(
                    topic,
                    EventType::Normal,
                    "PartitionsIncreased",
                    "Alter",
                    format!("topic {name} now has {total} partitions"),
                )
                .await;
            }
            if !set.is_empty() || !delete.is_empty() {
                ctx.admin
                    .alter_topic_config(target, name, &set, &delete)
                    .await?;
                let keys: Vec<&str> = set
                    .keys()
                    .map(String::as_str)
                    .chain(delete.iter().map(String::as_str))
                    .collect();
                ctx.event(
                    topic,
                    EventType::Normal,
                    "ConfigChanged",
                    "Alter",
                    format!("topic {name}: changed {}", keys.join(", ")),
                )
                .await;
            }
            Ok(ready())
        }
        TopicAction::Refused { reason, message } => {
            ctx.event(topic, EventType::Warning, reason, "Alter", message.clone())
                .await;
            Ok(DesiredCondition::new(READY, false, reason, message))
        }
    }
}

fn ready() -> DesiredCondition {
    DesiredCondition::new(
        READY,
        true,
        "TopicReady",
        "the topic exists with the settings of this resource",
    )
}

/// The older `KafkaTopic` (by creation time, then name) that names the same topic on the same
/// cluster, if any: that one owns the topic.
async fn older_owner(
    topic: &KafkaTopic,
    desired: &DesiredTopic,
    namespace: &str,
    ctx: &Context,
) -> Result<Option<String>, Error> {
    let api: Api<KafkaTopic> = Api::namespaced(ctx.client.clone(), namespace);
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(Error::Kube)?;
    let key = |t: &KafkaTopic| {
        (
            t.meta().creation_timestamp.clone().map(|t| t.0),
            t.name_any(),
        )
    };
    let mine = key(topic);
    Ok(all
        .items
        .iter()
        .filter(|other| other.uid() != topic.uid())
        // An object being deleted still owns the topic while its finalizer may delete it.
        .filter(|other| {
            other.meta().deletion_timestamp.is_none()
                || other.finalizers().iter().any(|f| f == FINALIZER)
        })
        .filter(|other| other.spec.cluster_ref == topic.spec.cluster_ref)
        .filter(|other| plan::desired(other).is_ok_and(|d| d.name == desired.name))
        .filter(|other| key(other) < mine)
        .map(ResourceExt::name_any)
        .next())
}

/// Where the topic's cluster is reached, or `None` when the cluster does not exist.
async fn resolve_cluster(
    topic: &KafkaTopic,
    namespace: &str,
    ctx: &Context,
) -> Result<Option<KafkaTarget>, Error> {
    let clusters: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), namespace);
    let name = &topic.spec.cluster_ref.name;
    let Some(cluster) = clusters.get_opt(name).await.map_err(Error::Kube)? else {
        return Ok(None);
    };
    Ok(Some(
        ctx.resolver.target(&cluster, &ctx.plan.cluster_domain),
    ))
}

async fn ensure_finalizer(api: &Api<KafkaTopic>, topic: &KafkaTopic) -> Result<(), Error> {
    let has = topic.finalizers().iter().any(|f| f == FINALIZER);
    let wants = topic.spec.deletion_policy == DeletionPolicy::Delete;
    if has == wants {
        return Ok(());
    }
    let mut finalizers: Vec<String> = topic
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if wants {
        finalizers.push(FINALIZER.to_owned());
    }
    patch_finalizers(api, topic, finalizers).await
}

/// Replaces the finalizer list, guarded by a JSON-patch `test` of the list we read so that a
/// concurrent change by someone else makes the patch fail instead of being overwritten.
async fn patch_finalizers(
    api: &Api<KafkaTopic>,
    topic: &KafkaTopic,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    let current = topic.finalizers();
    let patch: serde_json::Value = if current.is_empty() {
        // Guarded by the resourceVersion we read: a finalizer someone added meanwhile is not
        // silently replaced.
        json!([
            { "op": "test", "path": "/metadata/resourceVersion", "value": topic.resource_version() },
            { "op": "add", "path": "/metadata/finalizers", "value": finalizers },
        ])
    } else {
        json!([
            { "op": "test", "path": "/metadata/finalizers", "value": current },
            { "op": "replace", "path": "/metadata/finalizers", "value": finalizers },
        ])
    };
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(|e| Error::Kube(kube::Error::SerdeError(e)))?;
    api.patch(
        &topic.name_any(),
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}

/// Deletion: delete the Kafka topic when the policy says so and this object owns the topic,
/// then release the finalizer. A missing cluster or topic counts as deleted.
async fn cleanup(
    topic: &KafkaTopic,
    api: &Api<KafkaTopic>,
    namespace: &str,
    ctx: &Context,
) -> Result<Action, Error> {
    if !topic.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    if topic.spec.deletion_policy == DeletionPolicy::Delete {
        if let Ok(desired) = plan::desired(topic) {
            let conflicted = older_owner(topic, &desired, namespace, ctx)
                .await?
                .is_some();
            if !conflicted {
                if let Some(target) = resolve_cluster(topic, namespace, ctx).await? {
                    ctx.admin.delete_topic(&target, &desired.name).await?;
                    ctx.event(
                        topic,
                        EventType::Normal,
                        "TopicDeleted",
                        "Delete",
                        format!("deleted topic {} from {}", desired.name, target.cluster),
                    )
                    .await;
                }
            }
        }
    }
    let remaining: Vec<String> = topic
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    patch_finalizers(api, topic, remaining).await?;
    Ok(Action::await_change())
}

/// Writes the status when it differs from what the object already has.
async fn write_status(
    api: &Api<KafkaTopic>,
    topic: &KafkaTopic,
    observed: Option<&ObservedTopic>,
    desired: Option<&DesiredTopic>,
    ready: DesiredCondition,
) -> Result<(), Error> {
    let previous = topic.status.clone().unwrap_or_default();
    let generation = topic.meta().generation;
    let conditions =
        conditions::merge(&previous.conditions, &[ready], generation, Timestamp::now());
    let status = KafkaTopicStatus {
        observed_generation: generation,
        conditions,
        topic_id: observed
            .and_then(|o| o.topic_id.clone())
            .or(previous.topic_id.clone()),
        partitions: observed.map(|o| o.partitions).or(previous.partitions),
        replication_factor: observed
            .map(|o| o.replication_factor)
            .or(previous.replication_factor),
        managed_config: match desired {
            Some(d) => d.config.keys().cloned().collect(),
            None => previous.managed_config.clone(),
        },
    };
    if topic.status.as_ref() == Some(&status) {
        return Ok(());
    }
    crate::apply::apply_status(api, "KafkaTopic", &topic.name_any(), &status)
        .await
        .map_err(Error::Kube)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use strata_api::KafkaTopic;

    use super::*;
    use crate::kafka::ObservedTopic;
    use crate::testing::{context, cr_path, typed, FakeAdmin, FakeApi};

    const NS: &str = "kafka";

    fn cluster(api: &FakeApi) {
        api.insert(
            &cr_path("kafkaclusters", NS, "prod"),
            json!({
                "apiVersion": "kafka.strata.dev/v1alpha1", "kind": "KafkaCluster",
                "metadata": {"name": "prod", "namespace": NS},
                "spec": {"racks": [{"name": "a", "brokers": 3}], "storage": {"size": "1Gi"}},
            }),
        );
    }

    fn topic(api: &FakeApi, name: &str, spec: serde_json::Value) -> String {
        let path = cr_path("kafkatopics", NS, name);
        let mut spec = spec;
        spec["clusterRef"] = json!({"name": "prod"});
        api.insert(
            &path,
            json!({
                "apiVersion": "kafka.strata.dev/v1alpha1", "kind": "KafkaTopic",
                "metadata": {"name": name, "namespace": NS},
                "spec": spec,
            }),
        );
        path
    }

    async fn run(api: &FakeApi, ctx: &Arc<Context>, path: &str) -> Result<Action, Error> {
        let obj: KafkaTopic = typed(api, path).expect("topic stored");
        reconcile(Arc::new(obj), ctx.clone()).await
    }

    fn ready(api: &FakeApi, path: &str) -> (String, String) {
        let t: KafkaTopic = typed(api, path).expect("topic stored");
        let c = t
            .status
            .expect("status written")
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready condition");
        (c.status, c.reason)
    }

    #[tokio::test]
    async fn creates_the_topic_and_reports_it() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        let ctx = context(client, admin.clone());
        cluster(&api);
        let path = topic(
            &api,
            "orders",
            json!({"partitions": 6, "replicationFactor": 3,
            "config": {"retention.ms": "3600000"}, "deletionPolicy": "Delete"}),
        );
        run(&api, &ctx, &path).await.expect("reconciled");
        assert_eq!(admin.writes(), ["create orders"]);
        assert_eq!(ready(&api, &path), ("True".into(), "TopicReady".into()));
        let t: KafkaTopic = typed(&api, &path).expect("stored");
        assert_eq!(t.finalizers(), [FINALIZER]);
        let status = t.status.expect("status");
        assert_eq!(status.partitions, Some(6));
        assert_eq!(status.replication_factor, Some(3));
        assert_eq!(status.topic_id.as_deref(), Some("id-orders"));
        assert_eq!(status.managed_config, ["retention.ms"]);
        // A second pass finds the topic in sync and changes nothing.
        run(&api, &ctx, &path).await.expect("reconciled");
        assert_eq!(admin.writes(), ["create orders"]);
    }

    #[tokio::test]
    async fn grows_partitions_and_changes_only_listed_config() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        admin.topics.lock().insert(
            "orders".into(),
            ObservedTopic {
                topic_id: Some("x".into()),
                partitions: 3,
                replication_factor: 1,
                configs: [
                    ("retention.ms".to_owned(), "1".to_owned()),
                    ("segment.ms".to_owned(), "9".to_owned()),
                ]
                .into(),
            },
        );
        let ctx = context(client, admin.clone());
        cluster(&api);
        let path = topic(
            &api,
            "orders",
            json!({"partitions": 5, "config": {"retention.ms": "2"}}),
        );
        run(&api, &ctx, &path).await.expect("reconciled");
        assert_eq!(
            admin.writes(),
            ["partitions orders 5", r#"config orders {"retention.ms"}"#]
        );
        let observed = admin.topics.lock().get("orders").cloned().expect("topic");
        assert_eq!(
            observed.configs.get("segment.ms").map(String::as_str),
            Some("9"),
            "unlisted keys untouched"
        );
        assert_eq!(ready(&api, &path).0, "True");
        let t: KafkaTopic = typed(&api, &path).expect("stored");
        assert!(
            t.finalizers().is_empty(),
            "Retain topics carry no finalizer"
        );
    }

    #[tokio::test]
    async fn refuses_a_partition_decrease_and_changes_nothing() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        admin.topics.lock().insert(
            "orders".into(),
            ObservedTopic {
                topic_id: None,
                partitions: 6,
                replication_factor: 1,
                configs: Default::default(),
            },
        );
        let ctx = context(client, admin.clone());
        cluster(&api);
        let path = topic(
            &api,
            "orders",
            json!({"partitions": 3, "config": {"retention.ms": "2"}}),
        );
        run(&api, &ctx, &path).await.expect("reconciled");
        assert!(admin.writes().is_empty(), "{:?}", admin.writes());
        assert_eq!(
            ready(&api, &path),
            ("False".into(), "PartitionDecreaseRefused".into())
        );
    }

    #[tokio::test]
    async fn delete_policy_decides_whether_the_topic_goes() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        let ctx = context(client, admin.clone());
        cluster(&api);
        let kept = topic(&api, "kept", json!({"deletionPolicy": "Retain"}));
        let gone = topic(&api, "gone", json!({"deletionPolicy": "Delete"}));
        run(&api, &ctx, &kept).await.expect("reconciled");
        run(&api, &ctx, &gone).await.expect("reconciled");
        assert_eq!(admin.writes(), ["create kept", "create gone"]);

        // Retain: no finalizer, so the API server deletes the object at once; Kafka keeps it.
        let t: KafkaTopic = typed(&api, &kept).expect("stored");
        assert!(t.finalizers().is_empty());
        // Delete: the finalizer holds the object until the topic is deleted.
        api.update(&gone, |o| {
            o["metadata"]["deletionTimestamp"] = json!("2026-01-01T01:00:00Z")
        });
        run(&api, &ctx, &gone).await.expect("cleaned up");
        assert_eq!(
            admin.writes(),
            ["create kept", "create gone", "delete gone"]
        );
        assert!(api.get(&gone).is_none(), "finalizer released, object gone");
        assert!(admin.topics.lock().contains_key("kept"));
    }

    #[tokio::test]
    async fn the_newer_of_two_objects_for_one_topic_is_in_conflict() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        let ctx = context(client, admin.clone());
        cluster(&api);
        let older = topic(&api, "orders", json!({"deletionPolicy": "Delete"}));
        let newer = topic(
            &api,
            "orders-dup",
            json!({"topicName": "orders", "deletionPolicy": "Delete", "partitions": 9}),
        );
        run(&api, &ctx, &older).await.expect("reconciled");
        run(&api, &ctx, &newer).await.expect("reconciled");
        assert_eq!(admin.writes(), ["create orders"]);
        assert_eq!(
            ready(&api, &newer),
            ("False".into(), "TopicConflict".into())
        );
        assert_eq!(ready(&api, &older).0, "True");
        // Deleting the newer object must not delete the topic the older one owns.
        api.update(&newer, |o| {
            o["metadata"]["deletionTimestamp"] = json!("2026-01-01T01:00:00Z");
            o["metadata"]["finalizers"] = json!([FINALIZER]);
        });
        run(&api, &ctx, &newer).await.expect("cleaned up");
        assert_eq!(admin.writes(), ["create orders"]);
        assert!(api.get(&newer).is_none());
    }

    #[tokio::test]
    async fn an_unreachable_cluster_is_reported_and_retried() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        *admin.unreachable.lock() = true;
        let ctx = context(client, admin.clone());
        cluster(&api);
        let path = topic(&api, "orders", json!({}));
        let err = run(&api, &ctx, &path)
            .await
            .expect_err("admin failure is an error");
        assert_eq!(err.reason(), "ClusterUnreachable");
        assert_eq!(
            ready(&api, &path),
            ("False".into(), "ClusterUnreachable".into())
        );
    }

    #[tokio::test]
    async fn a_missing_cluster_is_a_condition() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        let ctx = context(client, admin.clone());
        let path = topic(&api, "orders", json!({}));
        run(&api, &ctx, &path).await.expect("reconciled");
        assert_eq!(
            ready(&api, &path),
            ("False".into(), "ClusterNotFound".into())
        );
        assert!(admin.calls.lock().is_empty());
    }
}
