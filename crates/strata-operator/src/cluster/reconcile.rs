//! Reconciles a `KafkaCluster` in the five steps of the operator conventions:
//! 1. read the cluster, its StatefulSets and broker pods;
//! 2. validate the spec into a [`ClusterPlan`] (an invalid spec becomes `Ready=False` with the
//!    reason and nothing is applied);
//! 3. build the desired objects ([`build`], pure) — after the drain has held back any rack
//!    whose leaving brokers still hold partitions (see [`drain`]: their replicas are moved to
//!    the remaining brokers first, throttled, or the scale-down is refused with a reason);
//! 4. apply them with server-side apply (ConfigMap first, then Services, the PDB and the
//!    StatefulSets that mount the ConfigMap), delete orphaned StatefulSets by label, and restart
//!    at most one outdated broker pod per pass when the cluster is healthy ([`roll`]);
//! 5. write the status from what the API server returned.
//!
//! Only steps 1, 4 and 5 touch the Kubernetes client; the Kafka admin calls (health snapshot,
//! reassignments, throttles, preferred elections) happen only when a restart, a leadership
//! restore or a scale-down needs them.

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
use strata_api::{BrokerStatus, KafkaCluster, KafkaClusterStatus, MirrorFlow};

use strata_api::DrainStatus;

use crate::apply::owned;
use crate::cluster::build::{build, ClusterChildren};
use crate::cluster::drain::{self, DrainInput, DrainStep};
use crate::cluster::health::Health;
use crate::cluster::plan::{plan, ClusterPlan, REPLICATION_LISTENER};
use crate::cluster::roll::{self, BrokerPod, RollStep};
use crate::conditions::{self, DesiredCondition, DEGRADED, PROGRESSING, READY};
use crate::context::Context;
use crate::kafka::{AdminError, KafkaTarget};
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
    #[error("the cluster's certificates: {0}")]
    Secrets(#[from] crate::cluster::secrets::SecretsError),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubernetesApi",
            Error::NotNamespaced => "NotNamespaced",
            Error::Secrets(_) => "CertificateSecrets",
        }
    }
}

/// The discovery Services of the MirrorFlows in `namespace` with KafkaCluster `cluster` as a
/// side, sorted: clients bootstrap through them, so the listener certificates name them (the
/// cluster controller watches MirrorFlows that name one).
async fn discovery_services(
    ctx: &Context,
    namespace: &str,
    cluster: &str,
) -> Result<Vec<String>, Error> {
    let flows: Api<MirrorFlow> = Api::namespaced(ctx.client.clone(), namespace);
    let flows = flows
        .list(&ListParams::default())
        .await
        .map_err(kube_err("listing MirrorFlows"))?;
    let mut names: Vec<String> = flows
        .items
        .iter()
        .filter(|f| {
            [&f.spec.source, &f.spec.target]
                .iter()
                .any(|e| e.cluster_ref.as_ref().is_some_and(|r| r.name == cluster))
        })
        .filter_map(|f| f.spec.failover.discovery_service.clone())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

/// What the drain step decided.
struct Drain {
    /// Racks kept at their current brokers (by rack) because leaving brokers hold data or
    /// could not be checked.
    held: BTreeMap<String, Vec<i32>>,
    state: DrainState,
    /// `status.drain`: `None` once no drain is under way and its throttles are gone.
    status: Option<DrainStatus>,
}

enum DrainState {
    /// No broker is leaving, or the leaving ones hold nothing any more.
    Idle,
    /// Replicas are moving off the leaving brokers.
    Moving(String),
    /// The drain cannot keep the replication factor: nothing moved, nothing removed.
    Refused {
        reason: &'static str,
        message: String,
    },
    /// The cluster could not be read or refused a step; retried at the progress interval.
    Paused(String),
}

const DRAIN_REFUSED: &str = "DrainRefused";
const DRAIN_PAUSED: &str = "DrainPaused";
const DRAINING: &str = "DrainingBrokers";
const RESTART_STALLED: &str = "RestartStalled";
const UNDER_MIN_ISR: &str = "UnderMinIsrPartitions";
const SECURITY_CHANGE: &str = "SecurityChangeUnsupported";
/// Partitions named in the under-min-ISR condition; the rest are counted.
const NAMED_PARTITIONS: usize = 5;

/// Entry point for the controller.
pub async fn reconcile(cluster: Arc<KafkaCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = cluster.namespace().ok_or(Error::NotNamespaced)?;
    let name = cluster.name_any();
    let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    if cluster.meta().deletion_timestamp.is_some() {
        // Children go through owner references; PVCs follow the StatefulSets' retention policy.
        ctx.health.forget(&format!("{namespace}/{name}"));
        return Ok(Action::await_change());
    }
    let previous = cluster.status.clone().unwrap_or_default();

    // Step 2: validate.
    let mut plan = match plan(&cluster, &ctx.plan) {
        Ok(p) => p,
        Err(invalid) => {
            return refuse(
                &cluster,
                &ctx,
                &api,
                &previous,
                invalid.reason,
                invalid.message,
            )
            .await;
        }
    };

    // Step 3: hold back brokers that would leave with data on them, then build.
    // Brokers that exist now: what the status recorded, and what the StatefulSets run (the
    // status may be stale or lost, e.g. after a restore; the StatefulSets are the truth).
    let existing = list_stateful_sets(&ctx, &namespace, &name).await?;
    if let Some(message) = security_change(&plan, &existing) {
        return refuse(&cluster, &ctx, &api, &previous, SECURITY_CHANGE, message).await;
    }
    let current_ids = current_brokers(&plan, &previous, &existing);
    let drain = drain(&cluster, &mut plan, &current_ids, &previous, &ctx).await;
    let owner = cluster
        .controller_owner_ref(&())
        .ok_or(Error::NotNamespaced)?;
    if plan.secured() {
        // Before the pods that mount them. A listener's new certificate reaches running
        // brokers through the kubelet's update of the mounted files; a new internal one also
        // serves the brokers' own connections, read at start, so it restarts them in turn.
        let discovery = discovery_services(&ctx, &namespace, &name).await?;
        let ensured =
            crate::cluster::secrets::ensure(&ctx, &namespace, &plan, &owner, &discovery).await?;
        for secret in ensured.issued {
            ctx.event(
                &*cluster,
                EventType::Normal,
                "CertificateIssued",
                "Reconcile",
                format!("issued the certificate in Secret {secret} from the cluster CA"),
            )
            .await;
        }
        plan.internal_certificate = Some(ensured.internal_certificate);
    }
    let children = build(&plan);

    // Step 4: apply, delete orphans, roll.
    let (stateful_sets, storage_notes) = apply_children(&ctx, &namespace, children, &owner).await?;
    delete_orphans(&ctx, &namespace, &plan, &drain, &existing, &stateful_sets).await?;
    let pods = list_pods(&ctx, &namespace, &name).await?;
    if let Err(e) = label_pods(&ctx, &namespace, &plan, &pods).await {
        // Labels are for people and selectors of others; the status must still be written.
        tracing::warn!(cluster = %name, error = %e, "could not label broker pods");
    }
    let (broker_pods, unsettled) = observe_pods(&plan, &stateful_sets, &pods);
    let roll_outcome = roll(
        &cluster,
        &plan,
        &previous,
        &broker_pods,
        &unsettled,
        &namespace,
        &ctx,
    )
    .await?;

    // The partitions that refuse acks=all writes, from the last background check.
    let target = ctx.resolver.target(&cluster, &ctx.plan.cluster_domain);
    let health = ctx.health.observe(&ctx.admin, &target, ctx.timing.health);
    let below_min_isr = below_min_isr(&health, &previous);
    report_min_isr_change(&cluster, &health, &previous, &ctx).await;

    // Step 5: status.
    let status = status_from(
        &cluster,
        &plan,
        &previous,
        &Observed {
            drain: &drain,
            storage_notes: &storage_notes,
            pods: &broker_pods,
            roll: &roll_outcome,
            below_min_isr: below_min_isr.as_deref(),
        },
    );
    // A drain is re-checked as often as a rollout: the partitions leave the brokers through
    // Kafka, which sends Kubernetes no event; so is a leadership still to be restored.
    let busy = roll_outcome.state.is_some()
        || !roll_outcome.leadership_pending.is_empty()
        || !matches!(drain.state, DrainState::Idle)
        || drain.status.is_some()
        || status.ready_brokers < plan_broker_count(&plan);
    write_status(&api, &cluster, status).await?;
    Ok(Action::requeue(if busy || !unsettled.is_empty() {
        ctx.timing.progress
    } else if matches!(health, Health::Unknown) {
        ctx.timing.resync
    } else {
        // A cluster that answers (or is being asked) is looked at again at the health
        // interval: a replica falling out of sync sends Kubernetes no event.
        ctx.timing.health.min(ctx.timing.resync)
    }))
}

/// Writes `Ready=False` with `reason` and `message` (and a Warning event) for a spec the
/// operator will not build; nothing is applied until it changes.
async fn refuse(
    cluster: &KafkaCluster,
    ctx: &Context,
    api: &Api<KafkaCluster>,
    previous: &KafkaClusterStatus,
    reason: &'static str,
    message: String,
) -> Result<Action, Error> {
    ctx.event(
        cluster,
        EventType::Warning,
        reason,
        "Validate",
        message.clone(),
    )
    .await;
    let status = KafkaClusterStatus {
        observed_generation: cluster.meta().generation,
        conditions: conditions::merge(
            &previous.conditions,
            &[
                DesiredCondition::new(READY, false, reason, message),
                DesiredCondition::new(
                    PROGRESSING,
                    false,
                    reason,
                    "nothing is applied until the spec is fixed",
                ),
            ],
            cluster.meta().generation,
            Timestamp::now(),
        ),
        ..previous.clone()
    };
    write_status(api, cluster, status).await?;
    Ok(Action::await_change())
}

/// A running cluster cannot change between plaintext and secured in place: the controller
/// listener changes protocol and the inter-broker listener moves to the internal one, so
/// restarted and not yet restarted brokers could not reach each other and the rolling restart
/// would stall with the quorum split. Returns why, when the StatefulSets run the other kind.
fn security_change(plan: &ClusterPlan, existing: &[StatefulSet]) -> Option<String> {
    let internal = format!("tls-{REPLICATION_LISTENER}");
    let running = existing.iter().find(|sts| {
        let volumes = sts
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.volumes.as_ref());
        volumes.is_some_and(|v| v.iter().any(|v| v.name == internal)) != plan.secured()
    })?;
    let (from, to) = if plan.secured() {
        ("plaintext", "secured (TLS or authenticating listeners)")
    } else {
        ("secured", "plaintext")
    };
    Some(format!(
        "StatefulSet {} runs the cluster {from}, and the spec makes it {to}: the controller and \
         inter-broker listeners would change protocol under running brokers, which could not \
         reach each other during the rolling restart. Restore the listeners, or create a new \
         cluster with them and move the data (a MirrorFlow)",
        running.name_any()
    ))
}

/// The `Degraded` message for partitions that refuse acks=all writes, if any: from the last
/// answer, or (no answer since) the one the status already shows.
fn below_min_isr(health: &Health, previous: &KafkaClusterStatus) -> Option<String> {
    match health {
        Health::Answered(below) if below.is_empty() => None,
        Health::Answered(below) => {
            let mut message = below
                .iter()
                .take(NAMED_PARTITIONS)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            if below.len() > NAMED_PARTITIONS {
                message.push_str(&format!("; and {} more", below.len() - NAMED_PARTITIONS));
            }
            Some(format!(
                "{} partition(s) refuse acks=all writes: {message}. Bring back the brokers \
                 missing from their ISR (see kafka-topics --describe --under-min-isr-partitions)",
                below.len()
            ))
        }
        Health::Pending | Health::Unknown => previous
            .conditions
            .iter()
            .find(|c| c.type_ == DEGRADED && c.reason == UNDER_MIN_ISR && c.status == "True")
            .map(|c| c.message.clone()),
    }
}

/// A Warning event when partitions start refusing acks=all writes, a Normal one when the
/// last of them accepts them again.
async fn report_min_isr_change(
    cluster: &KafkaCluster,
    health: &Health,
    previous: &KafkaClusterStatus,
    ctx: &Context,
) {
    let Health::Answered(below) = health else {
        return;
    };
    let shown = previous
        .conditions
        .iter()
        .any(|c| c.type_ == DEGRADED && c.reason == UNDER_MIN_ISR && c.status == "True");
    if !below.is_empty() && !shown {
        let message = below_min_isr(health, previous).unwrap_or_default();
        ctx.event(
            cluster,
            EventType::Warning,
            UNDER_MIN_ISR,
            "HealthCheck",
            message,
        )
        .await;
    } else if below.is_empty() && shown {
        ctx.event(
            cluster,
            EventType::Normal,
            "MinIsrRestored",
            "HealthCheck",
            "every partition has min.insync.replicas in sync again".to_owned(),
        )
        .await;
    }
}

fn plan_broker_count(plan: &ClusterPlan) -> i32 {
    i32::try_from(plan.brokers().len()).unwrap_or(i32::MAX)
}

/// Drains the brokers the new spec removes: while any of them holds a replica (or the cluster
/// cannot be asked) their racks are held at the current broker count, so nothing is deleted;
/// replicas not yet moving are reassigned to the remaining brokers ([`drain::plan_drain`]) with
/// the replication throttles set first. Once nothing is left on them the throttles are removed
/// and the racks are released, so the scale-down happens in this same pass.
async fn drain(
    cluster: &KafkaCluster,
    plan: &mut ClusterPlan,
    current_ids: &BTreeMap<String, Vec<i32>>,
    previous: &KafkaClusterStatus,
    ctx: &Context,
) -> Drain {
    let leaving: BTreeSet<i32> = plan.leaving_brokers(current_ids).into_iter().collect();
    let target = ctx.resolver.target(cluster, &ctx.plan.cluster_domain);
    let before = previous.drain.clone().unwrap_or_default();
    if leaving.is_empty() {
        return finish_drain(cluster, &target, previous, false, ctx).await;
    }
    let observed = async {
        let snapshot = ctx.admin.snapshot(&target).await?;
        let ongoing = ctx.admin.ongoing_reassignments(&target).await?;
        Ok::<_, AdminError>((snapshot, ongoing))
    }
    .await;
    let (snapshot, ongoing) = match observed {
        Ok(o) => o,
        Err(e) => {
            let message = format!(
                "scale-down of brokers {} paused: cannot read where their partitions are: {e}",
                join_ids(leaving.iter())
            );
            return hold(
                plan,
                current_ids,
                &leaving,
                DrainState::Paused(message),
                Some(before),
            );
        }
    };
    let mut racks: BTreeMap<i32, String> = BTreeMap::new();
    for (rack, ids) in current_ids {
        for id in ids {
            racks.insert(*id, rack.clone());
        }
    }
    for b in plan.brokers() {
        racks.insert(b.id, b.rack.clone());
    }
    let targets: BTreeSet<i32> = plan
        .brokers()
        .iter()
        .map(|b| b.id)
        .filter(|id| !leaving.contains(id) && snapshot.brokers.contains(id))
        .collect();
    let step = drain::plan_drain(DrainInput {
        leaving: &leaving,
        targets: &targets,
        racks: &racks,
        partitions: &snapshot.partitions,
        ongoing: &ongoing,
    });
    let (stranded, start) = match step {
        DrainStep::Drained => return finish_drain(cluster, &target, previous, true, ctx).await,
        DrainStep::Refused(r) => {
            let changed = previous
                .conditions
                .iter()
                .find(|c| c.type_ == DEGRADED)
                .is_none_or(|c| c.message != r.message);
            if changed {
                ctx.event(
                    cluster,
                    EventType::Warning,
                    DRAIN_REFUSED,
                    "Drain",
                    r.message.clone(),
                )
                .await;
            }
            let state = DrainState::Refused {
                reason: r.reason,
                message: r.message,
            };
            let status = DrainStatus {
                brokers: leaving.iter().copied().collect(),
                ..before
            };
            return hold(plan, current_ids, &leaving, state, Some(status));
        }
        DrainStep::Moving { stranded, start } => (stranded, start),
    };
    let mut status = DrainStatus {
        brokers: leaving.iter().copied().collect(),
        partitions_moving: i32::try_from(stranded.len()).unwrap_or(i32::MAX),
        partitions: stranded.iter().take(20).cloned().collect(),
        ..before
    };
    let message = format!(
        "draining brokers {}: {} partitions still have a replica there ({}{})",
        join_ids(leaving.iter()),
        stranded.len(),
        stranded
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        if stranded.len() > 10 { ", ..." } else { "" }
    );
    if !start.is_empty() {
        if let Err(e) = start_moves(cluster, &target, &start, &mut status, ctx).await {
            let message = format!("drain of brokers {} paused: {e}", join_ids(leaving.iter()));
            return hold(
                plan,
                current_ids,
                &leaving,
                DrainState::Paused(message),
                Some(status),
            );
        }
    }
    hold(
        plan,
        current_ids,
        &leaving,
        DrainState::Moving(message),
        Some(status),
    )
}

/// Sets the throttles for `moves` (recording them in `status` before each call, so a failure
/// halfway still has them removed at the end), then starts the moves.
async fn start_moves(
    cluster: &KafkaCluster,
    target: &KafkaTarget,
    moves: &[crate::kafka::PartitionMove],
    status: &mut DrainStatus,
    ctx: &Context,
) -> Result<(), String> {
    let rate = cluster.spec.drain.throttle_bytes_per_second;
    if rate > 0 {
        // Throttles before the moves: an unthrottled move could saturate the brokers at once.
        let t = drain::throttles(moves);
        let rates = BTreeMap::from([
            (drain::LEADER_RATE.to_owned(), rate.to_string()),
            (drain::FOLLOWER_RATE.to_owned(), rate.to_string()),
        ]);
        for b in &t.brokers {
            if !status.throttled_brokers.contains(b) {
                status.throttled_brokers.push(*b);
            }
            ctx.admin
                .alter_broker_config(target, *b, &rates, &[])
                .await
                .map_err(|e| format!("setting the replication throttle on broker {b}: {e}"))?;
        }
        for (topic, (leaders, followers)) in &t.topics {
            if !status.throttled_topics.contains(topic) {
                status.throttled_topics.push(topic.clone());
            }
            let set = BTreeMap::from([
                (drain::LEADER_REPLICAS.to_owned(), leaders.clone()),
                (drain::FOLLOWER_REPLICAS.to_owned(), followers.clone()),
            ]);
            ctx.admin
                .alter_topic_config(target, topic, &set, &[])
                .await
                .map_err(|e| format!("setting the throttled replicas of topic {topic}: {e}"))?;
        }
    }
    let refused = ctx
        .admin
        .reassign(target, moves)
        .await
        .map_err(|e| format!("starting the reassignments: {e}"))?;
    let started = moves.len().saturating_sub(refused.len());
    if started > 0 {
        let shown: Vec<String> = moves
            .iter()
            .take(10)
            .map(|m| format!("{} {:?} -> {:?}", m.label(), m.from, m.to))
            .collect();
        ctx.event(
            cluster,
            EventType::Normal,
            "DrainStarted",
            "Drain",
            format!(
                "reassigning {started} partitions off leaving brokers{}: {}",
                if rate > 0 {
                    format!(" (throttled to {rate} B/s)")
                } else {
                    String::new()
                },
                shown.join(", ")
            ),
        )
        .await;
    }
    if let Some((partition, why)) = refused.first() {
        return Err(format!(
            "the cluster refused to move {} partitions, e.g. {partition}: {why}",
            refused.len()
        ));
    }
    Ok(())
}

/// No broker is leaving (any more), or the leaving ones hold nothing (`drained`): removes the
/// throttles a drain set, then reports no drain. Throttles that cannot be removed keep
/// `status.drain` and are retried; the racks are not held for them.
async fn finish_drain(
    cluster: &KafkaCluster,
    target: &KafkaTarget,
    previous: &KafkaClusterStatus,
    drained: bool,
    ctx: &Context,
) -> Drain {
    let Some(before) = previous.drain.clone() else {
        return Drain {
            held: BTreeMap::new(),
            state: DrainState::Idle,
            status: None,
        };
    };
    let mut left = before.clone();
    let keys = [
        drain::LEADER_REPLICAS.to_owned(),
        drain::FOLLOWER_REPLICAS.to_owned(),
    ];
    let mut failure = None;
    for topic in &before.throttled_topics {
        match ctx
            .admin
            .alter_topic_config(target, topic, &BTreeMap::new(), &keys)
            .await
        {
            // A topic deleted meanwhile has no throttle left.
            Ok(()) | Err(AdminError::Refused { .. }) => {
                left.throttled_topics.retain(|t| t != topic)
            }
            Err(e) => failure = Some(e.to_string()),
        }
    }
    let rates = [
        drain::LEADER_RATE.to_owned(),
        drain::FOLLOWER_RATE.to_owned(),
    ];
    for b in &before.throttled_brokers {
        match ctx
            .admin
            .alter_broker_config(target, *b, &BTreeMap::new(), &rates)
            .await
        {
            Ok(()) => left.throttled_brokers.retain(|x| x != b),
            Err(e) => failure = Some(e.to_string()),
        }
    }
    if let Some(e) = failure {
        return Drain {
            held: BTreeMap::new(),
            state: DrainState::Paused(format!(
                "the drain is done but its replication throttles could not all be removed: {e}"
            )),
            status: Some(DrainStatus {
                partitions_moving: 0,
                partitions: Vec::new(),
                ..left
            }),
        };
    }
    if drained {
        ctx.event(
            cluster,
            EventType::Normal,
            "DrainCompleted",
            "Drain",
            format!(
                "brokers {} hold no partition any more; replication throttles removed",
                join_ids(before.brokers.iter())
            ),
        )
        .await;
    }
    Drain {
        held: BTreeMap::new(),
        state: DrainState::Idle,
        status: None,
    }
}

/// Keeps every rack that has leaving brokers at its current broker count.
fn hold(
    plan: &mut ClusterPlan,
    current_ids: &BTreeMap<String, Vec<i32>>,
    leaving: &BTreeSet<i32>,
    state: DrainState,
    status: Option<DrainStatus>,
) -> Drain {
    let mut held = BTreeMap::new();
    for (rack, ids) in current_ids {
        if ids.iter().any(|id| leaving.contains(id)) {
            plan.hold_rack(rack, i32::try_from(ids.len()).unwrap_or(i32::MAX));
            held.insert(rack.clone(), ids.clone());
        }
    }
    Drain {
        held,
        state,
        status,
    }
}

fn join_ids<'a>(ids: impl Iterator<Item = &'a i32>) -> String {
    ids.map(i32::to_string).collect::<Vec<_>>().join(", ")
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
    crate::apply::apply(&ctx.client, namespace, obj)
        .await
        .map_err(kube_err(format!(
            "applying {} {}",
            K::kind(&()),
            obj.name_any()
        )))
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
/// the drain holds the rack because its brokers still carry data, or the rack's id block is
/// unknown (its brokers could not be checked).
async fn delete_orphans(
    ctx: &Context,
    namespace: &str,
    plan: &ClusterPlan,
    drain: &Drain,
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
        if wanted.contains(&name) || drain.held.contains_key(&rack) {
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

/// What the roll step decided, for the status.
#[derive(Default)]
struct RollOutcome {
    state: Option<RollState>,
    /// Restarted brokers whose preferred leaderships are still to be restored.
    leadership_pending: Vec<i32>,
    /// Since when a restart has been waiting (RFC 3339), while it waits.
    waiting_since: Option<String>,
    /// Set once the wait is past the deadline: the `Degraded` message.
    stalled: Option<String>,
}

/// Restores the leaderships of brokers restarted earlier once the cluster is fully replicated,
/// then restarts at most one outdated broker, if it is safe now.
async fn roll(
    cluster: &KafkaCluster,
    plan: &ClusterPlan,
    previous: &KafkaClusterStatus,
    pods: &[BrokerPod],
    unsettled: &[String],
    namespace: &str,
    ctx: &Context,
) -> Result<RollOutcome, Error> {
    let mut pending: BTreeSet<i32> = previous.leadership_pending.iter().copied().collect();
    let restart = roll::restart_pending(pods);
    if !restart && (pending.is_empty() || !unsettled.is_empty()) {
        return Ok(RollOutcome {
            leadership_pending: pending.into_iter().collect(),
            ..RollOutcome::default()
        });
    }
    let expected: Vec<(String, i32)> = plan
        .brokers()
        .iter()
        .map(|b| (b.pod.clone(), b.id))
        .collect();
    let target = ctx.resolver.target(cluster, &ctx.plan.cluster_domain);
    let health = ctx.admin.snapshot(&target).await.map_err(|e| e.to_string());
    let all_ready = expected
        .iter()
        .all(|(name, _)| pods.iter().any(|p| &p.name == name && p.ready));
    if let (Ok(snapshot), true, false) = (&health, all_ready, pending.is_empty()) {
        if snapshot.under_replicated().is_empty() {
            restore_leadership(cluster, &target, snapshot, &mut pending, ctx).await;
        }
    }
    let mut outcome = RollOutcome {
        leadership_pending: pending.iter().copied().collect(),
        ..RollOutcome::default()
    };
    if !restart {
        return Ok(outcome);
    }
    match roll::next_step(&expected, pods, health.as_ref().map_err(Clone::clone)) {
        RollStep::UpToDate => Ok(outcome),
        RollStep::Wait { reason, message } => {
            let now = Timestamp::now();
            let since = previous
                .restart_waiting_since
                .as_deref()
                .and_then(|s| s.parse::<Timestamp>().ok())
                .unwrap_or(now);
            let waited = now.as_second().saturating_sub(since.as_second());
            let deadline =
                i64::try_from(ctx.timing.restart_wait_deadline.as_secs()).unwrap_or(i64::MAX);
            if waited > deadline {
                let stalled = format!(
                    "the rolling restart has waited {waited}s (deadline {deadline}s): {message}"
                );
                let already = previous
                    .conditions
                    .iter()
                    .any(|c| c.type_ == DEGRADED && c.reason == RESTART_STALLED);
                if !already {
                    ctx.event(
                        cluster,
                        EventType::Warning,
                        RESTART_STALLED,
                        "RollingRestart",
                        stalled.clone(),
                    )
                    .await;
                }
                outcome.stalled = Some(stalled);
            } else if reason == "UnderReplicatedPartitions"
                && !previous
                    .conditions
                    .iter()
                    .any(|c| c.type_ == PROGRESSING && c.reason == reason)
            {
                ctx.event(
                    cluster,
                    EventType::Normal,
                    "RestartPaused",
                    "RollingRestart",
                    message.clone(),
                )
                .await;
            }
            outcome.waiting_since = Some(since.to_string());
            outcome.state = Some(RollState { reason, message });
            Ok(outcome)
        }
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
                pending.insert(broker_id);
                outcome.leadership_pending = pending.into_iter().collect();
                outcome.state = Some(RollState {
                    reason: "RollingRestart".to_owned(),
                    message,
                });
                return Ok(outcome);
            }
            outcome.state = Some(RollState {
                reason: "RollingRestart".to_owned(),
                message: format!("waiting for pod {pod} to be recreated"),
            });
            Ok(outcome)
        }
    }
}

/// Runs the preferred leader election that gives restarted brokers their leaderships back
/// (the cluster is fully replicated, so they have rejoined every ISR). A failed call keeps them
/// pending for the next pass; partitions the cluster refuses are reported, not retried.
async fn restore_leadership(
    cluster: &KafkaCluster,
    target: &KafkaTarget,
    snapshot: &crate::kafka::ClusterSnapshot,
    pending: &mut BTreeSet<i32>,
    ctx: &Context,
) {
    let partitions = roll::leadership_to_restore(snapshot, pending);
    if partitions.is_empty() {
        pending.clear();
        return;
    }
    match ctx.admin.elect_preferred(target, &partitions).await {
        Ok(refused) => {
            {
                let (type_, note) = if refused.is_empty() {
                    (
                        EventType::Normal,
                        format!(
                            "preferred leader election moved {} partitions back to restarted \
                             brokers {}",
                            partitions.len(),
                            join_ids(pending.iter())
                        ),
                    )
                } else {
                    (
                        EventType::Warning,
                        format!(
                            "preferred leader election for restarted brokers {}: {} of {} \
                             partitions refused, e.g. {}: {}",
                            join_ids(pending.iter()),
                            refused.len(),
                            partitions.len(),
                            refused[0].0,
                            refused[0].1
                        ),
                    )
                };
                ctx.event(cluster, type_, "LeadershipRestored", "RollingRestart", note)
                    .await;
            }
            pending.clear();
        }
        Err(e) => {
            tracing::warn!(cluster = %cluster.name_any(), error = %e,
                "preferred leader election after a restart failed; retried");
        }
    }
}

/// What this pass found, besides the spec's plan: the input of the status.
struct Observed<'a> {
    drain: &'a Drain,
    storage_notes: &'a [String],
    pods: &'a [BrokerPod],
    roll: &'a RollOutcome,
    /// The `Degraded` message for partitions that refuse acks=all writes.
    below_min_isr: Option<&'a str>,
}

fn status_from(
    cluster: &KafkaCluster,
    plan: &ClusterPlan,
    previous: &KafkaClusterStatus,
    observed: &Observed,
) -> KafkaClusterStatus {
    let Observed {
        drain,
        storage_notes,
        pods,
        roll,
        below_min_isr,
    } = *observed;
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
    let progressing = match (&roll.state, &drain.state) {
        (Some(r), _) => {
            DesiredCondition::new(PROGRESSING, true, r.reason.clone(), r.message.clone())
        }
        (None, DrainState::Moving(m)) => DesiredCondition::new(PROGRESSING, true, DRAINING, m),
        (None, DrainState::Refused { message, .. }) => {
            DesiredCondition::new(PROGRESSING, false, DRAIN_REFUSED, message)
        }
        (None, DrainState::Paused(m)) => DesiredCondition::new(PROGRESSING, true, DRAIN_PAUSED, m),
        (None, DrainState::Idle) if !all_ready => DesiredCondition::new(
            PROGRESSING,
            true,
            "BrokersStarting",
            format!("{ready_count}/{total} brokers ready"),
        ),
        (None, DrainState::Idle) => DesiredCondition::new(
            PROGRESSING,
            false,
            "Reconciled",
            "the cluster matches its spec",
        ),
    };
    let drain_problem = match &drain.state {
        DrainState::Refused { reason, message } => Some((*reason, message)),
        DrainState::Paused(message) => Some((DRAIN_PAUSED, message)),
        DrainState::Idle | DrainState::Moving(_) => None,
    };
    let degraded = match (drain_problem, plan.warnings().first()) {
        // Writes failing comes first: it is what the users of the cluster see.
        _ if below_min_isr.is_some() => DesiredCondition::new(
            DEGRADED,
            true,
            UNDER_MIN_ISR,
            below_min_isr.unwrap_or_default(),
        ),
        (Some((reason, m)), _) => DesiredCondition::new(DEGRADED, true, reason, m.clone()),
        (None, _) if roll.stalled.is_some() => DesiredCondition::new(
            DEGRADED,
            true,
            RESTART_STALLED,
            roll.stalled.clone().unwrap_or_default(),
        ),
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
    for (rack, ids) in &drain.held {
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
        drain: drain.status.clone(),
        leadership_pending: roll.leadership_pending.clone(),
        restart_waiting_since: roll.waiting_since.clone(),
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
    crate::apply::apply_status(api, "KafkaCluster", &cluster.name_any(), &status)
        .await
        .map_err(kube_err("writing status"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

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
            ..ClusterSnapshot::default()
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
            admin.calls.lock().iter().all(|c| c == "snapshot"),
            "no admin call but the health check without a restart or scale-down"
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
                leader: Some(0),
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

    /// Reconciles until the `Degraded` condition has `reason` (the health check runs in the
    /// background, so its answer shows in a later pass), or panics after 5 s.
    async fn reconcile_until_degraded(api: &FakeApi, ctx: &Arc<Context>, reason: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            run(api, ctx).await.expect("reconciled");
            if condition(api, "Degraded").1 == reason {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Degraded never became {reason}: {:?}",
                condition(api, "Degraded")
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn partitions_below_min_insync_replicas_show_as_degraded_until_they_recover() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        let mut lagging = placed("orders", 0, &[0, 1, 2]);
        lagging.isr = vec![0];
        let mut offline = placed("orders", 1, &[1, 2, 0]);
        offline.leader = None;
        offline.isr = vec![];
        let mut relaxed = placed("logs", 0, &[0, 1, 2]);
        relaxed.isr = vec![0];
        *admin.snapshot.lock() = ClusterSnapshot {
            min_insync_replicas: [("orders".to_owned(), 2)].into(),
            ..healthy(0, vec![lagging, offline, relaxed])
        };
        let mut ctx = context(client, admin.clone());
        Arc::get_mut(&mut ctx).expect("one owner").timing.health = Duration::ZERO;
        insert_cluster(&api, one_rack(3, json!({})));
        run(&api, &ctx).await.expect("reconciled");
        settle(&api, "a", "rev1");

        // 1. The check's answer: orders-0 below its minimum of 2, orders-1 offline; logs-0 (one
        //    in-sync replica, minimum 1) accepts writes and is not named.
        reconcile_until_degraded(&api, &ctx, "UnderMinIsrPartitions").await;
        let (status, _, message) = condition(&api, "Degraded");
        assert_eq!(status, "True");
        assert!(
            message.contains("orders-0 has 1 in-sync replica(s) [0], min.insync.replicas 2"),
            "{message}"
        );
        assert!(message.contains("orders-1 has no leader"), "{message}");
        assert!(message.starts_with("2 partition(s)"), "{message}");
        assert!(!message.contains("logs-0"), "{message}");
        assert_eq!(events(&api, "UnderMinIsrPartitions").len(), 1);
        assert_eq!(
            condition(&api, "Ready").0,
            "True",
            "the pods are still ready"
        );

        // 2. The cluster stops answering: what was last seen stays shown.
        *admin.unreachable.lock() = true;
        // Two checks started since: the first of them (unanswered) has ended.
        let calls = admin.calls.lock().len();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while admin.calls.lock().len() < calls + 2 {
            assert!(std::time::Instant::now() < deadline, "no health check ran");
            run(&api, &ctx).await.expect("reconciled");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        run(&api, &ctx).await.expect("reconciled");
        assert_eq!(condition(&api, "Degraded").1, "UnderMinIsrPartitions");
        assert_eq!(
            events(&api, "UnderMinIsrPartitions").len(),
            1,
            "reported once"
        );

        // 3. The replicas catch up and the leader returns: the condition clears, with an event.
        *admin.unreachable.lock() = false;
        *admin.snapshot.lock() = healthy(
            0,
            vec![
                placed("orders", 0, &[0, 1, 2]),
                placed("orders", 1, &[1, 2, 0]),
            ],
        );
        //    (One rack stays Degraded for its layout, no longer for the partitions.)
        reconcile_until_degraded(&api, &ctx, "FewerThanThreeVoterRacks").await;
        assert_eq!(events(&api, "MinIsrRestored").len(), 1);
    }

    fn placed(topic: &str, partition: i32, replicas: &[i32]) -> PartitionReplicas {
        PartitionReplicas {
            topic: topic.into(),
            partition,
            leader: replicas.first().copied(),
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
        }
    }

    fn events(api: &FakeApi, reason: &str) -> Vec<Value> {
        api.log()
            .into_iter()
            .filter(|l| l.path.ends_with("/events") && l.body["reason"] == reason)
            .map(|l| l.body)
            .collect()
    }

    fn drain_status(api: &FakeApi) -> Option<strata_api::DrainStatus> {
        let c: KafkaCluster = typed(api, &cluster_path()).expect("stored");
        c.status.expect("status").drain
    }

    fn pending(api: &FakeApi) -> Vec<i32> {
        let c: KafkaCluster = typed(api, &cluster_path()).expect("stored");
        c.status.expect("status").leadership_pending
    }

    #[tokio::test]
    async fn a_restarted_broker_gets_its_leaderships_back_before_the_next_restart() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        // Broker 0's partition is led by 1, as after broker 0 came back from a restart.
        let mut t0 = placed("t", 0, &[0, 1, 2]);
        t0.leader = Some(1);
        *admin.snapshot.lock() = healthy(1, vec![t0, placed("t", 1, &[2, 0, 1])]);
        let ctx = context(client, admin.clone());
        insert_cluster(&api, one_rack(3, json!({})));
        run(&api, &ctx).await.expect("reconciled");
        settle(&api, "a", "rev1");
        run(&api, &ctx).await.expect("reconciled");
        api.update(&sts_path("a"), |o| {
            o["status"]["updateRevision"] = json!("rev2")
        });

        // 1. Broker 0 restarts first; it is remembered for the election.
        run(&api, &ctx).await.expect("reconciled");
        assert!(api.get(&pod_path("c-a-0")).is_none(), "c-a-0 restarted");
        assert_eq!(pending(&api), [0]);
        assert!(!admin.writes().iter().any(|w| w.starts_with("elect")));

        // 2. While its replacement is not ready, nothing is elected or restarted.
        run(&api, &ctx).await.expect("reconciled");
        assert!(!admin.writes().iter().any(|w| w.starts_with("elect")));
        assert_eq!(pending(&api), [0]);

        // 3. Back and fully replicated: t-0 is elected back to broker 0, then broker 2 restarts.
        settle(&api, "a", "rev2");
        run(&api, &ctx).await.expect("reconciled");
        assert_eq!(
            admin
                .writes()
                .iter()
                .filter(|w| w.starts_with("elect"))
                .collect::<Vec<_>>(),
            ["elect t-0"]
        );
        assert_eq!(admin.snapshot.lock().partitions[0].leader, Some(0));
        assert!(
            api.get(&pod_path("c-a-2")).is_none(),
            "c-a-2 restarted next"
        );
        assert_eq!(pending(&api), [2]);
        assert_eq!(events(&api, "LeadershipRestored").len(), 1);
    }

    #[tokio::test]
    async fn a_restart_waiting_past_its_deadline_is_reported_stalled() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        let mut sick = placed("t", 0, &[0, 1, 2]);
        sick.isr = vec![0, 1];
        *admin.snapshot.lock() = healthy(0, vec![sick]);
        let ctx = context(client, admin.clone());
        insert_cluster(&api, one_rack(3, json!({})));
        run(&api, &ctx).await.expect("reconciled");
        settle(&api, "a", "rev1");
        api.update(&sts_path("a"), |o| {
            o["status"]["updateRevision"] = json!("rev2")
        });
        run(&api, &ctx).await.expect("reconciled");
        let c: KafkaCluster = typed(&api, &cluster_path()).expect("stored");
        let since = c.status.expect("status").restart_waiting_since;
        assert!(since.is_some(), "the wait is timed");
        assert_ne!(condition(&api, "Degraded").1, "RestartStalled");
        assert_eq!(events(&api, "RestartPaused").len(), 1);

        // The wait began long before the deadline (600 s in tests).
        api.update(&cluster_path(), |o| {
            o["status"]["restartWaitingSince"] = json!("2020-01-01T00:00:00Z")
        });
        run(&api, &ctx).await.expect("reconciled");
        run(&api, &ctx).await.expect("reconciled");
        let (status, reason, message) = condition(&api, "Degraded");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("True", "RestartStalled")
        );
        assert!(message.contains("t-0"), "{message}");
        assert_eq!(events(&api, "RestartStalled").len(), 1, "one Warning");
        assert!(
            !api.writes().iter().any(|w| w.starts_with("DELETE")),
            "still no restart"
        );

        // Healthy again: the restart goes ahead and the stall clears.
        admin.snapshot.lock().partitions[0].isr = vec![0, 1, 2];
        run(&api, &ctx).await.expect("reconciled");
        assert!(api.writes().iter().any(|w| w.starts_with("DELETE")));
        assert_ne!(condition(&api, "Degraded").1, "RestartStalled");
        let c: KafkaCluster = typed(&api, &cluster_path()).expect("stored");
        assert_eq!(c.status.expect("status").restart_waiting_since, None);
    }

    #[tokio::test]
    async fn a_scale_down_drains_the_leaving_broker_first() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        *admin.snapshot.lock() = healthy(
            0,
            vec![placed("orders", 4, &[2, 0]), placed("other", 0, &[0, 1])],
        );
        let ctx = context(client, admin.clone());
        insert_cluster(&api, one_rack(3, json!({})));
        run(&api, &ctx).await.expect("reconciled");
        settle(&api, "a", "rev1");
        run(&api, &ctx).await.expect("reconciled");

        // 1. Scaling to 2 brokers removes broker 2: its replica moves to broker 1 (the only
        //    staying broker without one), in its place, with throttles set first.
        api.update(&cluster_path(), |o| {
            o["spec"]["racks"][0]["brokers"] = json!(2);
            o["spec"]["drain"] = json!({"throttleBytesPerSecond": 1000});
        });
        run(&api, &ctx).await.expect("reconciled");
        let writes = admin.writes();
        let reassign = writes
            .iter()
            .position(|w| w == "reassign orders-4->[1, 0]")
            .unwrap_or_else(|| panic!("orders-4 moved to [1, 0]: {writes:?}"));
        let throttle = writes
            .iter()
            .position(|w| w.starts_with("config orders"))
            .expect("topic throttle set");
        assert!(throttle < reassign, "throttles before the move: {writes:?}");
        for b in [0, 1, 2] {
            assert_eq!(
                admin.broker_configs.lock()[&b].get("follower.replication.throttled.rate"),
                Some(&"1000".to_owned()),
                "broker {b} throttled"
            );
        }
        assert!(!writes.iter().any(|w| w.contains("other")), "{writes:?}");
        assert_eq!(api.get(&sts_path("a")).expect("sts")["spec"]["replicas"], 3);
        let (status, reason, message) = condition(&api, "Progressing");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("True", "DrainingBrokers")
        );
        assert!(message.contains("orders-4"), "{message}");
        let drain = drain_status(&api).expect("drain status");
        assert_eq!(drain.brokers, [2]);
        assert_eq!(drain.partitions_moving, 1);
        assert_eq!(drain.partitions, ["orders-4"]);
        assert_eq!(drain.throttled_topics, ["orders"]);
        assert_eq!(drain.throttled_brokers, [0, 1, 2]);
        assert_eq!(events(&api, "DrainStarted").len(), 1);

        // 2. While it moves nothing is started again and the broker stays.
        run(&api, &ctx).await.expect("reconciled");
        let reassigns = admin
            .writes()
            .iter()
            .filter(|w| w.starts_with("reassign"))
            .count();
        assert_eq!(reassigns, 1);
        assert_eq!(api.get(&sts_path("a")).expect("sts")["spec"]["replicas"], 3);

        // 3. Once the move is done the throttles go and so does the broker, in one pass.
        admin.finish_moves();
        admin.calls.lock().clear();
        run(&api, &ctx).await.expect("reconciled");
        assert_eq!(api.get(&sts_path("a")).expect("sts")["spec"]["replicas"], 2);
        let writes = admin.writes();
        assert!(
            writes.iter().any(|w| w.starts_with("config orders")
                && w.contains("leader.replication.throttled.replicas")),
            "{writes:?}"
        );
        for b in [0, 1, 2] {
            assert!(
                admin.broker_configs.lock()[&b].is_empty(),
                "broker {b} unthrottled"
            );
        }
        assert_eq!(drain_status(&api), None);
        assert_eq!(events(&api, "DrainCompleted").len(), 1);
        assert_ne!(condition(&api, "Progressing").1, "DrainingBrokers");
        let c: KafkaCluster = typed(&api, &cluster_path()).expect("stored");
        assert_eq!(
            c.status.expect("status").broker_ids.get("a"),
            Some(&vec![0, 1])
        );
    }

    #[tokio::test]
    async fn a_drain_that_cannot_keep_the_replication_factor_is_refused() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        *admin.snapshot.lock() = healthy(0, vec![placed("orders", 4, &[0, 1, 2])]);
        let ctx = context(client, admin.clone());
        insert_cluster(&api, one_rack(3, json!({})));
        run(&api, &ctx).await.expect("reconciled");
        settle(&api, "a", "rev1");
        run(&api, &ctx).await.expect("reconciled");

        api.update(&cluster_path(), |o| {
            o["spec"]["racks"][0]["brokers"] = json!(2)
        });
        run(&api, &ctx).await.expect("reconciled");
        run(&api, &ctx).await.expect("reconciled");
        assert_eq!(
            api.get(&sts_path("a")).expect("sts")["spec"]["replicas"],
            3,
            "nothing scaled down"
        );
        assert!(
            admin.writes().is_empty(),
            "nothing moved: {:?}",
            admin.writes()
        );
        let (status, reason, message) = condition(&api, "Degraded");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("True", "NotEnoughBrokers")
        );
        assert!(
            message.contains("orders-4 has 3 replicas and only 2 brokers would remain"),
            "{message}"
        );
        assert_eq!(condition(&api, "Progressing").1, "DrainRefused");
        assert_eq!(
            events(&api, "DrainRefused").len(),
            1,
            "one Warning, not one per pass"
        );
        let c: KafkaCluster = typed(&api, &cluster_path()).expect("stored");
        assert_eq!(
            c.status.expect("status").broker_ids.get("a"),
            Some(&vec![0, 1, 2])
        );
    }

    #[tokio::test]
    async fn a_removed_rack_is_refused_when_too_few_racks_remain() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        *admin.snapshot.lock() = ClusterSnapshot {
            brokers: [0, 100, 200].into(),
            ..healthy(0, vec![placed("wide", 0, &[0, 100, 200])])
        };
        let ctx = context(client, admin.clone());
        insert_cluster(
            &api,
            json!({"racks": [{"name": "a", "zone": "zone-a", "brokers": 1},
                             {"name": "b", "zone": "zone-b", "brokers": 1},
                             {"name": "c", "zone": "zone-c", "brokers": 1}],
                   "storage": {"size": "1Gi"}}),
        );
        run(&api, &ctx).await.expect("reconciled");
        api.update(&cluster_path(), |o| {
            o["spec"]["racks"] = json!([{"name": "a", "zone": "zone-a", "brokers": 2},
                                        {"name": "b", "zone": "zone-b", "brokers": 1}]);
        });
        // Broker 1 (rack a's new one) is registered too: enough brokers, not enough racks.
        admin.snapshot.lock().brokers.insert(1);
        run(&api, &ctx).await.expect("reconciled");
        assert!(api.get(&sts_path("c")).is_some(), "rack c kept");
        assert!(admin.writes().is_empty(), "{:?}", admin.writes());
        let (status, reason, message) = condition(&api, "Degraded");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("True", "NotEnoughRacks")
        );
        assert!(
            message.contains("only 2 racks would remain (a, b)"),
            "{message}"
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
    async fn a_running_cluster_is_not_switched_between_plaintext_and_secured() {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        let ctx = context(client, admin.clone());
        insert_cluster(&api, one_rack(3, json!({})));
        run(&api, &ctx).await.expect("reconciled");
        let before = api.get(&sts_path("a")).expect("statefulset");
        api.update(&cluster_path(), |o| {
            o["spec"]["listeners"] = json!([{"name": "tls", "port": 9094, "tls": true}]);
        });
        let writes_before = api.writes().len();
        let action = run(&api, &ctx).await.expect("reconciled");
        assert_eq!(action, Action::await_change());
        let (status, reason, message) = condition(&api, "Ready");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", SECURITY_CHANGE)
        );
        assert!(message.contains("StatefulSet c-a"), "{message}");
        // Nothing applied: no Secret, the StatefulSet as it was.
        let writes: Vec<String> = api.writes()[writes_before..]
            .iter()
            .filter(|w| !w.contains("/events"))
            .cloned()
            .collect();
        assert_eq!(writes, [format!("PATCH {}/status", cluster_path())]);
        assert_eq!(api.get(&sts_path("a")), Some(before));
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
                leader: Some(2),
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
        assert_eq!(condition(&api, "Progressing").1, "DrainingBrokers");
        assert!(
            admin.writes().iter().any(|w| w == "reassign orders-0->[0]"),
            "{:?}",
            admin.writes()
        );
    }
}
