//! Reconciles a `KafkaCluster` in the five steps of the operator conventions:
//! 1. read the cluster, its StatefulSets and broker pods;
//! 2. validate the spec into a [`ClusterPlan`] (an invalid spec becomes `Ready=False` with the
//!    reason and nothing is applied);
//! 3. build the desired objects ([`build`], pure) — after the scale-down guard has held back
//!    any rack whose leaving brokers still hold partitions;
//! 4. apply them with server-side apply (ConfigMap first, then Services, the PDB and the
//!    StatefulSets that mount the ConfigMap), delete orphaned StatefulSets by label, and restart
//!    at most one outdated broker pod per pass when the cluster is healthy ([`roll`]);
//! 5. write the status from what the API server returned.
//!
//! Only steps 1, 4 and 5 touch the Kubernetes client; the Kafka admin calls (health snapshot)
//! happen only when a restart or a scale-down needs them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use strata_api::{BrokerStatus, KafkaCluster, KafkaClusterStatus};

use crate::cluster::build::{build, ClusterChildren};
use crate::cluster::plan::{plan, ClusterPlan};
use crate::cluster::roll::{self, BrokerPod, RollStep};
use crate::conditions::{self, DesiredCondition, DEGRADED, PROGRESSING, READY};
use crate::context::Context;
use crate::names;

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "kafkacluster";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API call failed while {action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("KafkaCluster has no namespace")]
    NotNamespaced,
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubernetesApi",
            Error::NotNamespaced => "NotNamespaced",
        }
    }
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

/// What the scale-down guard decided.
struct ScaleDownGuard {
    /// Brokers that would leave but hold data (or could not be checked), by rack.
    held: BTreeMap<String, Vec<i32>>,
    /// The condition message naming the partitions, when something was held.
    message: Option<String>,
}

/// Entry point for the controller.
pub async fn reconcile(cluster: Arc<KafkaCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = cluster.namespace().ok_or(Error::NotNamespaced)?;
    let name = cluster.name_any();
    let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    if cluster.meta().deletion_timestamp.is_some() {
        // Children go through owner references; PVCs follow the StatefulSets' retention policy.
        return Ok(Action::await_change());
    }
    let previous = cluster.status.clone().unwrap_or_default();

    // Step 2: validate.
    let mut plan = match plan(&cluster, &ctx.plan) {
        Ok(p) => p,
        Err(invalid) => {
            ctx.event(
                &*cluster,
                EventType::Warning,
                invalid.reason,
                "Validate",
                invalid.message.clone(),
            )
            .await;
            let status = KafkaClusterStatus {
                observed_generation: cluster.meta().generation,
                conditions: conditions::merge(
                    &previous.conditions,
                    &[
                        DesiredCondition::new(
                            READY,
                            false,
                            invalid.reason,
                            invalid.message.clone(),
                        ),
                        DesiredCondition::new(
                            PROGRESSING,
                            false,
                            invalid.reason,
                            "nothing is applied until the spec is fixed",
                        ),
                    ],
                    cluster.meta().generation,
                    Timestamp::now(),
                ),
                ..previous.clone()
            };
            write_status(&api, &cluster, status).await?;
            return Ok(Action::await_change());
        }
    };

    // Step 3: hold back brokers that would leave with data on them, then build.
    // Brokers that exist now: what the status recorded, and what the StatefulSets run (the
    // status may be stale or lost, e.g. after a restore; the StatefulSets are the truth).
    let existing = list_stateful_sets(&ctx, &namespace, &name).await?;
    let current_ids = current_brokers(&plan, &previous, &existing);
    let guard = guard_scale_down(&cluster, &mut plan, &current_ids, &ctx).await;
    if let Some(message) = &guard.message {
        ctx.event(
            &*cluster,
            EventType::Warning,
            "ScaleDownBlocked",
            "ScaleDown",
            message.clone(),
        )
        .await;
    }
    let children = build(&plan);

    // Step 4: apply, delete orphans, roll.
    let owner = cluster
        .controller_owner_ref(&())
        .ok_or(Error::NotNamespaced)?;
    let (stateful_sets, storage_notes) = apply_children(&ctx, &namespace, children, &owner).await?;
    delete_orphans(&ctx, &namespace, &plan, &guard, &existing, &stateful_sets).await?;
    let pods = list_pods(&ctx, &namespace, &name).await?;
    if let Err(e) = label_pods(&ctx, &namespace, &plan, &pods).await {
        // Labels are for people and selectors of others; the status must still be written.
        tracing::warn!(cluster = %name, error = %e, "could not label broker pods");
    }
    let (broker_pods, unsettled) = observe_pods(&plan, &stateful_sets, &pods);
    let roll_state = roll(&cluster, &plan, &broker_pods, &unsettled, &namespace, &ctx).await?;

    // Step 5: status.
    let status = status_from(
        &cluster,
        &plan,
        &previous,
        &guard,
        &storage_notes,
        &broker_pods,
        &roll_state,
    );
    // A blocked scale-down is re-checked as often as a rollout: the partitions leave the
    // brokers through Kafka, which sends Kubernetes no event.
    let busy = roll_state.is_some()
        || guard.message.is_some()
        || status.ready_brokers < plan_broker_count(&plan);
    write_status(&api, &cluster, status).await?;
    Ok(Action::requeue(if busy || !unsettled.is_empty() {
        ctx.timing.progress
    } else {
        ctx.timing.resync
    }))
}

fn plan_broker_count(plan: &ClusterPlan) -> i32 {
    i32::try_from(plan.brokers().len()).unwrap_or(i32::MAX)
}

/// Finds brokers that the new spec removes; if any still hold partitions (or the cluster cannot
/// be asked), raises their racks back to the previous broker count so nothing is deleted.
async fn guard_scale_down(
    cluster: &KafkaCluster,
    plan: &mut ClusterPlan,
    current_ids: &BTreeMap<String, Vec<i32>>,
    ctx: &Context,
) -> ScaleDownGuard {
    let leaving = plan.leaving_brokers(current_ids);
    let mut guard = ScaleDownGuard {
        held: BTreeMap::new(),
        message: None,
    };
    if leaving.is_empty() {
        return guard;
    }
    let target = ctx.resolver.target(cluster, &ctx.plan.cluster_domain);
    let message =
        match ctx.admin.snapshot(&target).await {
            Ok(snapshot) => {
                let stranded = snapshot.partitions_on(&leaving);
                if stranded.is_empty() {
                    return guard;
                }
                let shown: Vec<String> = stranded
                    .iter()
                    .take(20)
                    .map(|(p, on)| format!("{p} (on {})", join_ids(on)))
                    .collect();
                let more = stranded.len().saturating_sub(shown.len());
                format!(
                "scale-down refused: leaving brokers {} still hold {} partition replicas: {}{}; \
                 move them off (kafka-reassign-partitions) and the scale-down proceeds",
                join_ids(&leaving),
                stranded.len(),
                shown.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            )
            }
            Err(e) => format!(
                "scale-down of brokers {} paused: cannot verify they hold no partitions: {e}",
                join_ids(&leaving)
            ),
        };
    for (rack, ids) in current_ids {
        let leaving_here: Vec<i32> = ids
            .iter()
            .copied()
            .filter(|id| leaving.contains(id))
            .collect();
        if !leaving_here.is_empty() {
            plan.hold_rack(rack, i32::try_from(ids.len()).unwrap_or(i32::MAX));
            guard.held.insert(rack.clone(), ids.clone());
        }
    }
    guard.message = Some(message);
    guard
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Server-side applies one object with the operator's field manager.
async fn apply<K>(ctx: &Context, namespace: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let name = obj.name_any();
    api.patch(
        &name,
        &PatchParams::apply(names::FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(kube_err(format!("applying {} {name}", K::kind(&()))))
}

fn owned<K: Resource>(
    mut obj: K,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> K {
    obj.meta_mut().owner_references = Some(vec![owner.clone()]);
    obj
}

/// Applies the children in dependency order: the ConfigMap the pods mount first, the
/// StatefulSets last. Returns the StatefulSets as the API server has them.
async fn apply_children(
    ctx: &Context,
    namespace: &str,
    children: ClusterChildren,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Result<(Vec<StatefulSet>, Vec<String>), Error> {
    // Destructured without `..` so that a new child cannot be forgotten here.
    let ClusterChildren {
        config_map,
        headless_service,
        bootstrap_service,
        stateful_sets,
        pod_disruption_budget,
    } = children;
    apply::<ConfigMap>(ctx, namespace, &owned(config_map, owner)).await?;
    apply::<Service>(ctx, namespace, &owned(headless_service, owner)).await?;
    apply::<Service>(ctx, namespace, &owned(bootstrap_service, owner)).await?;
    apply::<PodDisruptionBudget>(ctx, namespace, &owned(pod_disruption_budget, owner)).await?;
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
    let mut applied = Vec::with_capacity(stateful_sets.len());
    let mut notes = Vec::new();
    for mut sts in stateful_sets {
        let name = sts.name_any();
        if let Some(existing) = api
            .get_opt(&name)
            .await
            .map_err(kube_err(format!("reading StatefulSet {name}")))?
        {
            if let Some(note) = keep_claim_templates(&mut sts, &existing) {
                notes.push(note);
            }
        }
        applied.push(apply::<StatefulSet>(ctx, namespace, &owned(sts, owner)).await?);
    }
    Ok((applied, notes))
}

/// `volumeClaimTemplates` of a StatefulSet are immutable: a changed storage size or class
/// would make every apply fail. Keeps the existing claim settings in `desired` and returns a
/// note for the `Degraded` condition instead.
fn keep_claim_templates(desired: &mut StatefulSet, existing: &StatefulSet) -> Option<String> {
    let claim = |sts: &StatefulSet| {
        sts.spec
            .as_ref()
            .and_then(|s| s.volume_claim_templates.as_ref())
            .and_then(|t| t.first())
            .and_then(|t| t.spec.as_ref())
            .map(|spec| {
                let size = spec
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get("storage"))
                    .map(|q| q.0.clone());
                (size, spec.storage_class_name.clone())
            })
    };
    let (Some((old_size, old_class)), Some((new_size, new_class))) =
        (claim(existing), claim(desired))
    else {
        return None;
    };
    if (&old_size, &old_class) == (&new_size, &new_class) {
        return None;
    }
    let template = desired
        .spec
        .as_mut()
        .and_then(|s| s.volume_claim_templates.as_mut())
        .and_then(|t| t.first_mut())
        .and_then(|t| t.spec.as_mut())?;
    template.storage_class_name = old_class.clone();
    if let (Some(size), Some(requests)) = (
        old_size.clone(),
        template
            .resources
            .as_mut()
            .and_then(|r| r.requests.as_mut()),
    ) {
        requests.insert(
            "storage".to_owned(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity(size),
        );
    }
    Some(format!(
        "StatefulSet {} keeps its volumes ({} {}): volumeClaimTemplates cannot change in place; \
         expand the PersistentVolumeClaims directly if the StorageClass allows it, or revert \
         spec.storage to match",
        existing.name_any(),
        old_size.as_deref().unwrap_or("default size"),
        old_class.as_deref().unwrap_or("default class"),
    ))
}

/// Deletes StatefulSets of this cluster that the plan no longer has (a removed rack), unless
/// the scale-down guard holds the rack because its brokers still carry data.
async fn list_stateful_sets(
    ctx: &Context,
    namespace: &str,
    cluster: &str,
) -> Result<Vec<StatefulSet>, Error> {
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(api
        .list(&ListParams::default().labels(&names::cluster_selector(cluster)))
        .await
        .map_err(kube_err("listing StatefulSets"))?
        .items)
}

/// Broker ids by rack that exist now: the status's record joined with the ids the existing
/// StatefulSets' replica counts imply (for racks whose id block is known).
fn current_brokers(
    plan: &ClusterPlan,
    previous: &KafkaClusterStatus,
    existing: &[StatefulSet],
) -> BTreeMap<String, Vec<i32>> {
    let blocks = plan.rack_id_blocks();
    let mut ids = previous.broker_ids.clone();
    for sts in existing {
        let Some(rack) = sts.labels().get(names::RACK_LABEL) else {
            continue;
        };
        let Some(block) = blocks.get(rack) else {
            continue;
        };
        let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let entry = ids.entry(rack.clone()).or_default();
        for ordinal in 0..replicas {
            let id = names::broker_id(*block, ordinal);
            if !entry.contains(&id) {
                entry.push(id);
            }
        }
        entry.sort_unstable();
    }
    ids
}

/// Deletes StatefulSets of this cluster that the plan no longer has (a removed rack), unless
/// the scale-down guard holds the rack because its brokers still carry data, or the rack's id
/// block is unknown (its brokers could not be checked).
async fn delete_orphans(
    ctx: &Context,
    namespace: &str,
    plan: &ClusterPlan,
    guard: &ScaleDownGuard,
    existing: &[StatefulSet],
    desired: &[StatefulSet],
) -> Result<(), Error> {
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
    let wanted: BTreeSet<String> = desired.iter().map(ResourceExt::name_any).collect();
    let blocks = plan.rack_id_blocks();
    for sts in existing {
        let name = sts.name_any();
        let rack = sts
            .labels()
            .get(names::RACK_LABEL)
            .cloned()
            .unwrap_or_default();
        if wanted.contains(&name) || guard.held.contains_key(&rack) {
            continue;
        }
        if !blocks.contains_key(&rack) {
            tracing::warn!(statefulset = %name, %rack,
                "keeping the StatefulSet of an unknown rack: its broker ids cannot be checked");
            continue;
        }
        tracing::info!(statefulset = %name, "deleting StatefulSet of a removed rack");
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(kube_err(format!("deleting StatefulSet {name}"))(e)),
        }
    }
    Ok(())
}

async fn list_pods(ctx: &Context, namespace: &str, cluster: &str) -> Result<Vec<Pod>, Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(api
        .list(&ListParams::default().labels(&names::cluster_selector(cluster)))
        .await
        .map_err(kube_err("listing broker pods"))?
        .items)
}

/// Puts each broker's own labels (`broker-id`, `controller-voter`) on its pod. The pods of a
/// rack share one StatefulSet template, so these per-pod labels cannot come from it.
async fn label_pods(
    ctx: &Context,
    namespace: &str,
    plan: &ClusterPlan,
    pods: &[Pod],
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    for broker in plan.brokers() {
        let Some(pod) = pods.iter().find(|p| p.name_any() == broker.pod) else {
            continue;
        };
        let wanted = plan.names().broker_pod_labels(broker.id, broker.voter);
        let current = pod.labels();
        let stale_voter = !broker.voter && current.contains_key(names::CONTROLLER_VOTER_LABEL);
        if wanted.iter().all(|(k, v)| current.get(k) == Some(v)) && !stale_voter {
            continue;
        }
        let mut labels = serde_json::Map::new();
        for (k, v) in wanted {
            labels.insert(k, json!(v));
        }
        if stale_voter {
            labels.insert(
                names::CONTROLLER_VOTER_LABEL.to_owned(),
                serde_json::Value::Null,
            );
        }
        let patch = json!({ "metadata": { "labels": labels } });
        match api
            .patch(&broker.pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            // The pod went away meanwhile; its successor is labelled on the next pass.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(kube_err(format!("labelling pod {}", broker.pod))(e)),
        }
    }
    Ok(())
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        && pod.meta().deletion_timestamp.is_none()
}

/// The broker pods the plan expects, as observed, and the StatefulSets whose controller has
/// not yet caught up with their template (their pods' revisions cannot be judged yet).
fn observe_pods(
    plan: &ClusterPlan,
    stateful_sets: &[StatefulSet],
    pods: &[Pod],
) -> (Vec<BrokerPod>, Vec<String>) {
    let mut unsettled = Vec::new();
    let mut update_revision: BTreeMap<String, Option<String>> = BTreeMap::new();
    for sts in stateful_sets {
        let status = sts.status.as_ref();
        let settled = status
            .and_then(|s| s.observed_generation)
            .zip(sts.meta().generation)
            .is_some_and(|(observed, generation)| observed >= generation);
        if !settled {
            unsettled.push(sts.name_any());
        }
        update_revision.insert(
            sts.name_any(),
            status
                .and_then(|s| s.update_revision.clone())
                .filter(|_| settled),
        );
    }
    let mut observed = Vec::new();
    for broker in plan.brokers() {
        let Some(pod) = pods.iter().find(|p| p.name_any() == broker.pod) else {
            continue;
        };
        let sts_name = plan.names().stateful_set(&broker.rack);
        let revision = pod.labels().get("controller-revision-hash");
        let outdated = match update_revision.get(&sts_name) {
            Some(Some(update)) => revision.is_some_and(|r| r != update),
            _ => false,
        };
        observed.push(BrokerPod {
            name: broker.pod.clone(),
            broker_id: broker.id,
            ready: pod_ready(pod),
            outdated,
        });
    }
    (observed, unsettled)
}

/// A rolling restart in progress: the `Progressing` reason and message.
struct RollState {
    reason: String,
    message: String,
}

/// Restarts at most one outdated broker, if it is safe now.
async fn roll(
    cluster: &KafkaCluster,
    plan: &ClusterPlan,
    pods: &[BrokerPod],
    unsettled: &[String],
    namespace: &str,
    ctx: &Context,
) -> Result<Option<RollState>, Error> {
    if !unsettled.is_empty() && !roll::restart_pending(pods) {
        return Ok(None);
    }
    if !roll::restart_pending(pods) {
        return Ok(None);
    }
    let expected: Vec<(String, i32)> = plan
        .brokers()
        .iter()
        .map(|b| (b.pod.clone(), b.id))
        .collect();
    let target = ctx.resolver.target(cluster, &ctx.plan.cluster_domain);
    let health = ctx.admin.snapshot(&target).await.map_err(|e| e.to_string());
    match roll::next_step(&expected, pods, health.as_ref().map_err(Clone::clone)) {
        RollStep::UpToDate => Ok(None),
        RollStep::Wait { reason, message } => Ok(Some(RollState { reason, message })),
        RollStep::Restart {
            pod,
            broker_id,
            remaining,
        } => {
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
            let current = api
                .get_opt(&pod)
                .await
                .map_err(kube_err(format!("reading pod {pod}")))?;
            if let Some(current) = current {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: current.uid(),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                // A delete, not an eviction: the disruption controller keeps an evicted pod's
                // name in the budget's disruptedPods for up to two minutes, and a StatefulSet
                // brings the pod back under the same name, so evictions stall every restart.
                match api.delete(&pod, &params).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => return Err(kube_err(format!("restarting pod {pod}"))(e)),
                }
                let message = format!(
                    "restarting broker {broker_id} (pod {pod}) for a configuration change; \
                     {} broker(s) left to restart after it",
                    remaining - 1
                );
                tracing::info!(%pod, broker_id, remaining, "restarting broker");
                ctx.event(
                    cluster,
                    EventType::Normal,
                    "RestartingBroker",
                    "RollingRestart",
                    message.clone(),
                )
                .await;
                return Ok(Some(RollState {
                    reason: "RollingRestart".to_owned(),
                    message,
                }));
            }
            Ok(Some(RollState {
                reason: "RollingRestart".to_owned(),
                message: format!("waiting for pod {pod} to be recreated"),
            }))
        }
    }
}

fn status_from(
    cluster: &KafkaCluster,
    plan: &ClusterPlan,
    previous: &KafkaClusterStatus,
    guard: &ScaleDownGuard,
    storage_notes: &[String],
    pods: &[BrokerPod],
    roll_state: &Option<RollState>,
) -> KafkaClusterStatus {
    let generation = cluster.meta().generation;
    let brokers: Vec<BrokerStatus> = plan
        .brokers()
        .iter()
        .map(|b| BrokerStatus {
            id: b.id,
            rack: b.rack.clone(),
            pod: b.pod.clone(),
            ready: pods.iter().any(|p| p.name == b.pod && p.ready),
        })
        .collect();
    let total = brokers.len();
    let ready_count = brokers.iter().filter(|b| b.ready).count();
    let not_ready: Vec<&str> = brokers
        .iter()
        .filter(|b| !b.ready)
        .map(|b| b.pod.as_str())
        .take(5)
        .collect();
    let all_ready = ready_count == total && total > 0;
    let ready = if all_ready {
        DesiredCondition::new(
            READY,
            true,
            "AllBrokersReady",
            format!("{ready_count}/{total} brokers ready"),
        )
    } else {
        DesiredCondition::new(
            READY,
            false,
            "BrokersNotReady",
            format!(
                "{ready_count}/{total} brokers ready; waiting for {}",
                not_ready.join(", ")
            ),
        )
    };
    let progressing = match (roll_state, &guard.message) {
        (Some(r), _) => {
            DesiredCondition::new(PROGRESSING, true, r.reason.clone(), r.message.clone())
        }
        (None, Some(m)) => DesiredCondition::new(PROGRESSING, false, "ScaleDownBlocked", m.clone()),
        (None, None) if !all_ready => DesiredCondition::new(
            PROGRESSING,
            true,
            "BrokersStarting",
            format!("{ready_count}/{total} brokers ready"),
        ),
        (None, None) => DesiredCondition::new(
            PROGRESSING,
            false,
            "Reconciled",
            "the cluster matches its spec",
        ),
    };
    let degraded = match (&guard.message, plan.warnings().first()) {
        (Some(m), _) => DesiredCondition::new(DEGRADED, true, "ScaleDownBlocked", m.clone()),
        (None, _) if !storage_notes.is_empty() => DesiredCondition::new(
            DEGRADED,
            true,
            "StorageChangeUnsupported",
            storage_notes.join("; "),
        ),
        (None, Some(first)) => DesiredCondition::new(
            DEGRADED,
            true,
            first.reason,
            plan.warnings()
                .iter()
                .map(|w| w.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (None, None) => DesiredCondition::new(DEGRADED, false, "AsExpected", "no problem found"),
    };
    let mut broker_ids = plan.broker_ids();
    for (rack, ids) in &guard.held {
        broker_ids
            .entry(rack.clone())
            .or_insert_with(|| ids.clone());
    }
    KafkaClusterStatus {
        observed_generation: generation,
        conditions: conditions::merge(
            &previous.conditions,
            &[ready, progressing, degraded],
            generation,
            Timestamp::now(),
        ),
        brokers,
        bootstrap_address: Some(plan.bootstrap_address()),
        broker_ids,
        rack_id_blocks: plan.rack_id_blocks(),
        ready_brokers: i32::try_from(ready_count).unwrap_or(i32::MAX),
        racks: i32::try_from(cluster.spec.racks.len()).unwrap_or(i32::MAX),
    }
}

async fn write_status(
    api: &Api<KafkaCluster>,
    cluster: &KafkaCluster,
    status: KafkaClusterStatus,
) -> Result<(), Error> {
    if cluster.status.as_ref() == Some(&status) {
        return Ok(());
    }
    match api
        .patch_status(
            &cluster.name_any(),
            // Server-side apply, so map keys dropped from the status (a removed rack) disappear.
            &PatchParams::apply(crate::names::FIELD_MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": strata_api::API_VERSION,
                "kind": "KafkaCluster",
                "status": status,
            })),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Deleted meanwhile (e.g. its namespace is going away): nothing left to report on.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(kube_err("writing status")(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{json, Value};
    use strata_api::KafkaCluster;

    use super::*;
    use crate::kafka::{ClusterSnapshot, PartitionReplicas};
    use crate::testing::{context, cr_path, typed, FakeAdmin, FakeApi};

    const NS: &str = "kafka";

    fn cluster_path() -> String {
        cr_path("kafkaclusters", NS, "c")
    }

    fn sts_path(rack: &str) -> String {
        format!("/apis/apps/v1/namespaces/{NS}/statefulsets/c-{rack}")
    }

    fn pod_path(name: &str) -> String {
        format!("/api/v1/namespaces/{NS}/pods/{name}")
    }

    fn insert_cluster(api: &FakeApi, spec: Value) {
        api.insert(
            &cluster_path(),
            json!({
                "apiVersion": "kafka.strata.dev/v1alpha1", "kind": "KafkaCluster",
                "metadata": {"name": "c", "namespace": NS},
                "spec": spec,
            }),
        );
    }

    fn one_rack(brokers: i32, config: Value) -> Value {
        json!({"racks": [{"name": "a", "zone": "zone-a", "brokers": brokers}],
               "storage": {"size": "1Gi"}, "config": config})
    }

    async fn run(api: &FakeApi, ctx: &Arc<Context>) -> Result<Action, Error> {
        let obj: KafkaCluster = typed(api, &cluster_path()).expect("cluster stored");
        reconcile(Arc::new(obj), ctx.clone()).await
    }

    fn condition(api: &FakeApi, type_: &str) -> (String, String, String) {
        let c: KafkaCluster = typed(api, &cluster_path()).expect("stored");
        let cond = c
            .status
            .expect("status written")
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .expect("condition present");
        (cond.status, cond.reason, cond.message)
    }

    /// Plays the StatefulSet controller: marks the StatefulSet as observed at `revision` and
    /// (re)creates missing pods at that revision, Ready.
    fn settle(api: &FakeApi, rack: &str, revision: &str) {
        let path = sts_path(rack);
        let sts = api.get(&path).expect("statefulset applied");
        let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(0);
        let generation = sts["metadata"]["generation"].clone();
        api.update(&path, |o| {
            o["status"] = json!({"observedGeneration": generation, "updateRevision": revision,
                                 "replicas": replicas});
        });
        for ordinal in 0..replicas {
            let name = format!("c-{rack}-{ordinal}");
            if api.get(&pod_path(&name)).is_none() {
                let id = ordinal; // block 0
                api.insert(
                    &pod_path(&name),
                    json!({"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": name, "namespace": NS, "labels": {
                               "kafka.strata.dev/cluster": "c", "kafka.strata.dev/rack": rack,
                               "kafka.strata.dev/broker-id": id.to_string(),
                               "app.kubernetes.io/managed-by": "strata-operator",
                               "app.kubernetes.io/component": "broker",
                               "controller-revision-hash": revision}},
                           "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                );
            }
        }
    }

    fn healthy(controller: i32, partitions: Vec<PartitionReplicas>) -> ClusterSnapshot {
        ClusterSnapshot {
            controller_id: Some(controller),
            quorum_leader: None,
            brokers: [0, 1, 2].into(),
            partitions,
        }
    }

    #[tokio::test]
    async fn creates_children_in_order_and_reports_status() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        let ctx = context(client, admin.clone());
        insert_cluster(&api, one_rack(3, json!({})));
        run(&api, &ctx).await.expect("reconciled");
        let writes: Vec<String> = api
            .writes()
            .into_iter()
            .filter(|w| !w.contains("/events"))
            .collect();
        assert_eq!(
            writes,
            [
                format!("PATCH /api/v1/namespaces/{NS}/configmaps/c-config"),
                format!("PATCH /api/v1/namespaces/{NS}/services/c-brokers"),
                format!("PATCH /api/v1/namespaces/{NS}/services/c-bootstrap"),
                format!("PATCH /apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/c"),
                format!("PATCH /apis/apps/v1/namespaces/{NS}/statefulsets/c-a"),
                format!("PATCH {}/status", cluster_path()),
            ]
        );
        let sts = api.get(&sts_path("a")).expect("statefulset");
        assert_eq!(
            sts["metadata"]["ownerReferences"][0]["kind"],
            "KafkaCluster"
        );
        assert_eq!(sts["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(sts["spec"]["updateStrategy"]["type"], "OnDelete");
        assert_eq!(condition(&api, "Ready").1, "BrokersNotReady");
        assert!(
            admin.calls.lock().is_empty(),
            "no admin call without a restart or scale-down"
        );

        settle(&api, "a", "rev1");
        run(&api, &ctx).await.expect("reconciled");
        assert_eq!(condition(&api, "Ready").0, "True");
        let pod = api.get(&pod_path("c-a-2")).expect("pod");
        assert_eq!(pod["metadata"]["labels"]["kafka.strata.dev/broker-id"], "2");
        assert_eq!(
            pod["metadata"]["labels"]["kafka.strata.dev/controller-voter"],
            "true"
        );
        let c: KafkaCluster = typed(&api, &cluster_path()).expect("stored");
        let status = c.status.expect("status");
        assert_eq!(status.broker_ids.get("a"), Some(&vec![0, 1, 2]));
        assert_eq!(status.rack_id_blocks.get("a"), Some(&0));
        assert_eq!(status.ready_brokers, 3);
        assert_eq!(status.observed_generation, c.metadata.generation);
        assert!(status
            .bootstrap_address
            .is_some_and(|a| a.starts_with("c-bootstrap.kafka.svc")));
    }

    #[tokio::test]
    async fn a_config_change_restarts_one_broker_at_a_time_controller_last() {
        let restarted = config_change_restarts(healthy(1, vec![])).await;
        assert_eq!(
            restarted,
            ["c-a-0", "c-a-2", "c-a-1"],
            "controller (broker 1) last"
        );
    }

    #[tokio::test]
    async fn the_quorum_leader_restarts_last() {
        let snapshot = ClusterSnapshot {
            quorum_leader: Some(0),
            ..healthy(2, vec![])
        };
        let restarted = config_change_restarts(snapshot).await;
        assert_eq!(
            restarted,
            ["c-a-1", "c-a-2", "c-a-0"],
            "quorum leader (broker 0) last, not DescribeCluster's controller (broker 2)"
        );
    }

    /// Pods restarted, in order, by a config change of a settled 3-broker cluster whose admin
    /// snapshot is `snapshot`.
    async fn config_change_restarts(snapshot: ClusterSnapshot) -> Vec<String> {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        *admin.snapshot.lock() = snapshot;
        let ctx = context(client, admin.clone());
        insert_cluster(&api, one_rack(3, json!({})));
        run(&api, &ctx).await.expect("reconciled");
        settle(&api, "a", "rev1");
        run(&api, &ctx).await.expect("reconciled");
        let hash_before = api.get(&sts_path("a")).expect("sts")["spec"]["template"]["metadata"]
            ["annotations"]["kafka.strata.dev/config-hash"]
            .clone();

        // The user changes a broker property: the pod template changes, the StatefulSet
        // controller computes a new update revision, no pod restarts by itself (OnDelete).
        api.update(&cluster_path(), |o| {
            o["spec"]["config"] = json!({"log.retention.hours": "24"});
            o["metadata"]["generation"] = json!(2);
        });
        let mut restarted = Vec::new();
        for _ in 0..12 {
            api.clear_log();
            run(&api, &ctx).await.expect("reconciled");
            let deleted: Vec<String> = api
                .writes()
                .into_iter()
                .filter(|w| w.starts_with("DELETE") && w.contains("/pods/"))
                .collect();
            assert!(deleted.len() <= 1, "one pod at a time: {deleted:?}");
            restarted.extend(
                deleted
                    .iter()
                    .map(|d| d.rsplit('/').next().unwrap_or("").to_owned()),
            );
            settle(&api, "a", "rev2");
            if restarted.len() == 3 {
                break;
            }
        }
        let hash_after = api.get(&sts_path("a")).expect("sts")["spec"]["template"]["metadata"]
            ["annotations"]["kafka.strata.dev/config-hash"]
            .clone();
        assert_ne!(
            hash_before, hash_after,
            "config change must change the pod template"
        );
        run(&api, &ctx).await.expect("reconciled");
        assert_eq!(condition(&api, "Progressing").0, "False");
        assert_eq!(condition(&api, "Ready").0, "True");
        restarted
    }

    #[tokio::test]
    async fn a_restart_waits_for_a_healthy_cluster() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        *admin.snapshot.lock() = healthy(
            0,
            vec![PartitionReplicas {
                topic: "t".into(),
                partition: 0,
                replicas: vec![0, 1, 2],
                isr: vec![0, 1],
            }],
        );
        let ctx = context(client, admin.clone());
        insert_cluster(&api, one_rack(3, json!({})));
        run(&api, &ctx).await.expect("reconciled");
        settle(&api, "a", "rev1");
        api.update(&sts_path("a"), |o| {
            o["status"]["updateRevision"] = json!("rev2")
        });
        api.clear_log();
        run(&api, &ctx).await.expect("reconciled");
        assert!(
            !api.writes().iter().any(|w| w.starts_with("DELETE")),
            "{:?}",
            api.writes()
        );
        let (status, reason, message) = condition(&api, "Progressing");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("True", "UnderReplicatedPartitions")
        );
        assert!(message.contains("t-0"), "{message}");

        *admin.unreachable.lock() = true;
        run(&api, &ctx).await.expect("reconciled");
        assert_eq!(condition(&api, "Progressing").1, "HealthCheckFailed");
        assert!(!api.writes().iter().any(|w| w.starts_with("DELETE")));
    }

    #[tokio::test]
    async fn a_scale_down_that_would_strand_data_is_refused() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        *admin.snapshot.lock() = healthy(
            0,
            vec![PartitionReplicas {
                topic: "orders".into(),
                partition: 4,
                replicas: vec![0, 2],
                isr: vec![0, 2],
            }],
        );
        let ctx = context(client, admin.clone());
        insert_cluster(&api, one_rack(3, json!({})));
        run(&api, &ctx).await.expect("reconciled");
        settle(&api, "a", "rev1");
        run(&api, &ctx).await.expect("reconciled");

        api.update(&cluster_path(), |o| {
            o["spec"]["racks"][0]["brokers"] = json!(2)
        });
        run(&api, &ctx).await.expect("reconciled");
        assert_eq!(
            api.get(&sts_path("a")).expect("sts")["spec"]["replicas"],
            3,
            "nothing scaled down"
        );
        let (status, reason, message) = condition(&api, "Degraded");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("True", "ScaleDownBlocked")
        );
        assert!(message.contains("orders-4 (on 2)"), "{message}");
        let c: KafkaCluster = typed(&api, &cluster_path()).expect("stored");
        assert_eq!(
            c.status.expect("status").broker_ids.get("a"),
            Some(&vec![0, 1, 2])
        );

        // Once the partition moved off broker 2, the scale-down goes ahead.
        admin.snapshot.lock().partitions[0].replicas = vec![0, 1];
        run(&api, &ctx).await.expect("reconciled");
        assert_eq!(api.get(&sts_path("a")).expect("sts")["spec"]["replicas"], 2);
        // (A single rack stays Degraded for its layout, but no longer for the scale-down.)
        assert_ne!(condition(&api, "Degraded").1, "ScaleDownBlocked");
        let c: KafkaCluster = typed(&api, &cluster_path()).expect("stored");
        assert_eq!(
            c.status.expect("status").broker_ids.get("a"),
            Some(&vec![0, 1])
        );
    }

    #[tokio::test]
    async fn an_invalid_spec_applies_nothing() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        let ctx = context(client, admin.clone());
        insert_cluster(
            &api,
            one_rack(
                3,
                json!({"min.insync.replicas": "3", "default.replication.factor": "2"}),
            ),
        );
        let action = run(&api, &ctx).await.expect("reconciled");
        assert_eq!(action, Action::await_change());
        let writes: Vec<String> = api
            .writes()
            .into_iter()
            .filter(|w| !w.contains("/events"))
            .collect();
        assert_eq!(writes, [format!("PATCH {}/status", cluster_path())]);
        let (status, reason, _) = condition(&api, "Ready");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "MinInsyncAboveReplication")
        );
        assert!(
            api.log()
                .iter()
                .any(|l| l.path.ends_with("/events")
                    && l.body["reason"] == "MinInsyncAboveReplication"),
            "a Warning event is published"
        );
    }

    #[tokio::test]
    async fn a_removed_rack_keeps_its_ids_and_loses_its_statefulset() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        let ctx = context(client, admin.clone());
        insert_cluster(
            &api,
            json!({"racks": [{"name": "a", "zone": "zone-a", "brokers": 1},
                             {"name": "b", "zone": "zone-b", "brokers": 1},
                             {"name": "c", "zone": "zone-c", "brokers": 1}],
                   "storage": {"size": "1Gi"}}),
        );
        run(&api, &ctx).await.expect("reconciled");
        assert!(api.get(&sts_path("b")).is_some());
        api.update(&cluster_path(), |o| {
            o["spec"]["racks"] = json!([{"name": "c", "zone": "zone-c", "brokers": 1},
                                        {"name": "a", "zone": "zone-a", "brokers": 1}]);
        });
        run(&api, &ctx).await.expect("reconciled");
        assert!(
            api.get(&sts_path("b")).is_none(),
            "empty removed rack's StatefulSet deleted"
        );
        let c: KafkaCluster = typed(&api, &cluster_path()).expect("stored");
        let status = c.status.expect("status");
        assert_eq!(status.broker_ids.get("a"), Some(&vec![0]));
        assert_eq!(
            status.broker_ids.get("c"),
            Some(&vec![200]),
            "reordering keeps ids"
        );
        assert_eq!(
            status.rack_id_blocks.get("b"),
            Some(&1),
            "removed rack's block stays reserved"
        );
    }

    #[tokio::test]
    async fn a_storage_change_is_reported_not_applied() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        let ctx = context(client, admin.clone());
        insert_cluster(&api, one_rack(1, json!({})));
        run(&api, &ctx).await.expect("reconciled");
        api.update(&cluster_path(), |o| {
            o["spec"]["storage"]["size"] = json!("5Gi")
        });
        run(&api, &ctx).await.expect("reconciled");
        let sts = api.get(&sts_path("a")).expect("sts");
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
            "1Gi"
        );
        let (status, reason, message) = condition(&api, "Degraded");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("True", "StorageChangeUnsupported")
        );
        assert!(message.contains("c-a"), "{message}");
    }

    #[tokio::test]
    async fn a_scale_down_is_checked_even_when_the_status_was_lost() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        *admin.snapshot.lock() = healthy(
            0,
            vec![PartitionReplicas {
                topic: "orders".into(),
                partition: 0,
                replicas: vec![2],
                isr: vec![2],
            }],
        );
        let ctx = context(client, admin.clone());
        insert_cluster(&api, one_rack(3, json!({})));
        run(&api, &ctx).await.expect("reconciled");
        // A restore brings the resource back without its status, and with fewer brokers.
        api.update(&cluster_path(), |o| {
            o.as_object_mut().map(|m| m.remove("status"));
            o["spec"]["racks"][0]["brokers"] = json!(2);
        });
        run(&api, &ctx).await.expect("reconciled");
        assert_eq!(api.get(&sts_path("a")).expect("sts")["spec"]["replicas"], 3);
        assert_eq!(condition(&api, "Degraded").1, "ScaleDownBlocked");
    }
}
