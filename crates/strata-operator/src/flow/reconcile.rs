//! Reconciles a `MirrorFlow` in the five steps of the operator conventions:
//! 1. read the flow and the `KafkaCluster`s its `clusterRef`s name;
//! 2. validate into a [`FlowPlan`] (an invalid flow becomes `Ready=False` with the reason and
//!    a Warning event, and nothing is created), then probe both sides (Metadata,
//!    DescribeCluster, ListOffsets within `detection.timeoutSeconds`);
//! 3. build the desired objects ([`build`], pure) for the side that is active now;
//! 4. apply them with server-side apply: the ConfigMap with the flow file first, then the
//!    mirror's Service and StatefulSet that mount it, the discovery Service and its
//!    EndpointSlice last; discovery objects the spec no longer names are deleted by label;
//! 5. write the status (phase, active side, lag, conditions) from the probes and what the API
//!    server returned.
//!
//! Only steps 1, 4 and 5 touch the Kubernetes client; the probes are the only Kafka calls.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use strata_api::{ActiveSide, KafkaCluster, MirrorFlow, MirrorFlowStatus, MirrorPhase};
use strata_failover::{
    name, other, Action as FailoverAction, EngineConfig, FailoverState, FlowSides, Observation,
    Outcome, Phase, Reason, Step,
};
use strata_kafka::timestamp::now_ms;

use crate::apply::{apply, owned};
use crate::conditions::{self, DesiredCondition, DEGRADED, FENCED, PROGRESSING, READY};
use crate::context::Context;
use crate::flow::build::{build, Discovery, FlowChildren};
use crate::flow::credentials::{self, Credentials, CredentialsError};
use crate::flow::lag;
use crate::flow::plan::{plan, Endpoint, FlowPlan, InvalidFlow, Referenced, SidePlan};
use crate::kafka::{AdminError, KafkaTarget, SideOffsets, CHECKPOINTS_SUFFIX};
use crate::names;

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "mirrorflow";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API call failed while {action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("MirrorFlow has no namespace")]
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

/// Condition reasons of a valid flow.
pub mod reason {
    pub const MIRRORING: &str = "Mirroring";
    pub const MIRROR_STARTING: &str = "MirrorStarting";
    pub const RECONCILED: &str = "Reconciled";
    pub const AS_EXPECTED: &str = "AsExpected";
    pub const ACTIVE_UNREACHABLE: &str = "ActiveClusterUnreachable";
    pub const STANDBY_UNREACHABLE: &str = "StandbyClusterUnreachable";
    pub const DISCOVERY_TAKEN: &str = "DiscoveryServiceTaken";
    pub const FAILBACK_BLOCKED: &str = "FailbackBlocked";
    pub const STEP_FAILED: &str = "FailoverStepFailed";
    pub const STANDBY_REJOINING: &str = "StandbyRejoining";
    pub const MIRROR_STOPPED: &str = "MirrorStopped";
}

/// What one probe of a side found.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The side probed, for messages.
    pub side: String,
    pub outcome: Result<SideOffsets, String>,
}

impl Probe {
    pub fn ok(&self) -> Option<&SideOffsets> {
        self.outcome.as_ref().ok()
    }
}

/// Entry point for the controller.
pub async fn reconcile(flow: Arc<MirrorFlow>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = flow.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<MirrorFlow> = Api::namespaced(ctx.client.clone(), &namespace);
    if flow.meta().deletion_timestamp.is_some() {
        // Children go through owner references.
        return Ok(Action::await_change());
    }
    let previous = flow.status.clone().unwrap_or_default();

    // Step 1: read the referenced clusters, and the failover engine's saved state (a new flow
    // starts one whose first operation makes the desired side active).
    let referenced = read_clusters(&flow, &namespace, &ctx).await?;
    let mut state = previous
        .failover
        .clone()
        .unwrap_or_else(|| FailoverState::new(flow.spec.failover.active, now_ms()));

    // Step 2: validate, then probe both sides.
    let mut plan = match plan(&flow, &referenced, state.active, &ctx.plan) {
        Ok(p) => p,
        Err(invalid) => return refuse(&api, &flow, &previous, invalid, &ctx).await,
    };
    plan.set_mirror(state.mirror_from);
    // The secured sides' credentials: a Secret not there yet is a condition, looked at again.
    let credentials = match credentials::read(&ctx, &plan).await {
        Ok(c) => c,
        Err(CredentialsError::Invalid(invalid)) => {
            return refuse(&api, &flow, &previous, invalid, &ctx).await
        }
        Err(CredentialsError::Kube { action, source }) => {
            return Err(Error::Kube { action, source })
        }
    };
    plan.set_credentials_digest(credentials.mirror_digest.clone());
    let timeout = Duration::from_secs(
        u64::try_from(flow.spec.failover.detection.timeout_seconds.max(1)).unwrap_or(1),
    );
    let source = probe(&plan, plan.source(), timeout, &ctx, &credentials).await;
    let target = probe(&plan, plan.target(), timeout, &ctx, &credentials).await;
    let (active_probe, standby_probe) = match state.active {
        ActiveSide::Source => (&source, &target),
        ActiveSide::Target => (&target, &source),
    };
    // Lag of the mirror as it runs from the active side (None when it does not, or a side
    // did not answer).
    let lag = match (active_probe.ok(), standby_probe.ok()) {
        (Some(a), Some(s)) if state.mirror_from == Some(state.active) => {
            let mut running = plan.clone();
            running.set_mirror(Some(state.active));
            Some(lag::total(&lag::lag(&running, a, s)))
        }
        _ => None,
    };
    state.observe(
        &Observation {
            desired: flow.spec.failover.active,
            source_up: source.ok().is_some(),
            target_up: target.ok().is_some(),
            lag,
        },
        now_ms(),
    );

    // Steps 3 and 4 inside the engine's steps: each driver action builds and applies the
    // children for the state it leads to; the Kafka-side actions go through the admin.
    let owner = flow.controller_owner_ref(&()).ok_or(Error::NotNamespaced)?;
    let mut driver = FlowDriver {
        ctx: &ctx,
        api: &api,
        flow: &flow,
        namespace: &namespace,
        owner: &owner,
        plan: &mut plan,
        status: MirrorFlowStatus {
            failover: None,
            ..previous.clone()
        },
        written: flow.status.clone(),
        applied: None,
    };
    let sides = flow_sides(driver.plan, &ctx, &credentials);
    let waiting = drive(&mut state, &flow.spec.failover, &sides, &mut driver).await?;

    // The children as the final state wants them (idempotent when a step applied them).
    driver.plan.set_active(state.active);
    driver.plan.set_mirror(state.mirror_from);
    let applied = apply_children(&ctx, &namespace, &flow, build(driver.plan), &owner).await?;

    // Step 5: status.
    let status = status_from(
        &flow,
        driver.plan,
        &previous,
        &state,
        waiting.as_deref(),
        (&source, &target),
        lag,
        &applied,
    );
    events(&ctx, &flow, &previous, &status).await;
    let busy = state.operation.is_some() || state.rejoin.is_some();
    let settled = conditions::is_true(&status.conditions, READY) == Some(true);
    driver.write(status).await?;
    let interval = Duration::from_secs(
        u64::try_from(flow.spec.failover.detection.probe_interval_seconds.max(1)).unwrap_or(5),
    );
    Ok(Action::requeue(if settled && !busy {
        interval
    } else {
        interval.min(ctx.timing.progress)
    }))
}

/// The flow's two sides as the operator reaches them (test-only overrides included, and the
/// operator's own credentials of secured sides), for the engine's Kafka-side actions.
fn flow_sides(plan: &FlowPlan, ctx: &Context, credentials: &Credentials) -> FlowSides {
    let mut config = plan.mirror_config_for(ActiveSide::Source);
    config.source.bootstrap_servers = Some(kafka_target(plan, plan.source(), ctx).bootstrap);
    config.target.bootstrap_servers = Some(kafka_target(plan, plan.target(), ctx).bootstrap);
    config.mirror.source_security = credentials.source.clone();
    config.mirror.target_security = credentials.target.clone();
    let mut sides = FlowSides::new(config);
    sides.probe_timeout = Duration::from_secs(
        u64::try_from(plan.spec().failover.detection.timeout_seconds.max(1)).unwrap_or(1),
    );
    sides.fence_foreign_with_acl = plan.spec().failover.fence_foreign_cluster_with_acl;
    sides
}

/// Most engine actions one reconciliation runs (a failover takes about eight).
const MAX_ACTIONS_PER_PASS: usize = 32;

/// The engine's driver loop (see `strata_failover::engine`): ask for the next action, save
/// the state naming it in the status BEFORE running it, run it, report the outcome, save
/// again; stop when the engine waits or an action did not move the flow on. Returns the
/// engine's wait reason, if it waits for something.
async fn drive(
    state: &mut FailoverState,
    spec: &strata_api::FailoverSpec,
    sides: &FlowSides,
    driver: &mut FlowDriver<'_>,
) -> Result<Option<String>, Error> {
    let cfg = EngineConfig::from_spec(spec);
    for _ in 0..MAX_ACTIONS_PER_PASS {
        let action = state.next(&cfg, now_ms());
        match &action {
            FailoverAction::Idle => return Ok(None),
            FailoverAction::Wait(why) => return Ok(Some(why.clone())),
            _ => {}
        }
        // Persisted first: a replacement operator resumes this step (every step is idempotent).
        driver.save(state).await?;
        tracing::info!(flow = %driver.flow.name_any(), ?action, "failover step");
        let outcome = match &action {
            FailoverAction::StopMirror => driver.stop_mirror().await?,
            FailoverAction::StartMirror { from, .. } => driver.start_mirror(*from).await?,
            FailoverAction::PointDiscovery { side } => driver.point_discovery(*side).await?,
            kafka => driver.ctx.admin.failover_action(sides, kafka).await,
        };
        if let Outcome::Failed(why) = &outcome {
            tracing::warn!(flow = %driver.flow.name_any(), ?action, why, "failover step failed");
        }
        let progressed = state.report(&action, outcome, now_ms());
        driver.save(state).await?;
        if !progressed {
            return Ok(None);
        }
    }
    Ok(None)
}

/// The operator's side of the engine's actions: the mirror StatefulSet, the flow ConfigMap,
/// the discovery Service, and the status the engine's state is saved in.
struct FlowDriver<'a> {
    ctx: &'a Context,
    api: &'a Api<MirrorFlow>,
    flow: &'a MirrorFlow,
    namespace: &'a str,
    owner: &'a OwnerReference,
    plan: &'a mut FlowPlan,
    /// The status as this pass knows it, written with each save.
    status: MirrorFlowStatus,
    /// The status last written (or read), to skip identical writes.
    written: Option<MirrorFlowStatus>,
    applied: Option<Applied>,
}

/// How long stopping the mirror waits for its pods to exit before the step is retried.
const MIRROR_STOP_WAIT: Duration = Duration::from_secs(20);

impl FlowDriver<'_> {
    async fn save(&mut self, state: &FailoverState) -> Result<(), Error> {
        let status = MirrorFlowStatus {
            failover: Some(state.clone()),
            ..self.status.clone()
        };
        self.write(status).await
    }

    async fn write(&mut self, status: MirrorFlowStatus) -> Result<(), Error> {
        // Compared as written: the engine's state also holds the last probe round, which is
        // not saved, so equal saved states may differ as values.
        let as_saved = |s: &MirrorFlowStatus| serde_json::to_value(s).ok();
        if self.written.as_ref().and_then(as_saved) == as_saved(&status) {
            return Ok(());
        }
        write_status(self.api, self.flow, &status).await?;
        self.written = Some(status);
        Ok(())
    }

    async fn apply(&mut self) -> Result<(), Error> {
        let applied = apply_children(
            self.ctx,
            self.namespace,
            self.flow,
            build(self.plan),
            self.owner,
        )
        .await?;
        self.applied = Some(applied);
        Ok(())
    }

    /// Scales the mirror to zero and waits (bounded) until its pods are gone, so nothing
    /// writes behind the failover. Still running: the step fails and is retried.
    async fn stop_mirror(&mut self) -> Result<Outcome, Error> {
        self.plan.set_mirror(None);
        self.apply().await?;
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), self.namespace);
        let selector = names::FlowNames::new(&self.flow.name_any(), self.namespace)
            .selector()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let deadline = tokio::time::Instant::now() + MIRROR_STOP_WAIT;
        loop {
            let left = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(kube_err("listing mirror pods"))?
                .items
                .len();
            if left == 0 {
                return Ok(Outcome::Done);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Outcome::Failed(format!(
                    "{left} mirror pod(s) still running after {} s",
                    MIRROR_STOP_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Rewrites the flow file to mirror from `from` and scales the mirror back up.
    async fn start_mirror(&mut self, from: ActiveSide) -> Result<Outcome, Error> {
        self.plan.set_mirror(Some(from));
        self.apply().await?;
        Ok(Outcome::Done)
    }

    /// Points the discovery Service at `side`'s brokers (or its external address).
    async fn point_discovery(&mut self, side: ActiveSide) -> Result<Outcome, Error> {
        self.plan.set_active(side);
        self.apply().await?;
        match self
            .applied
            .as_ref()
            .and_then(|a| a.discovery_problem.clone())
        {
            Some(problem) => Ok(Outcome::Failed(problem)),
            None => Ok(Outcome::Done),
        }
    }
}

/// Reads the `KafkaCluster`s the flow's `clusterRef`s name (`None`: not referenced or absent).
async fn read_clusters(
    flow: &MirrorFlow,
    namespace: &str,
    ctx: &Context,
) -> Result<Referenced, Error> {
    let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), namespace);
    let source = get_cluster(&api, flow.spec.source.cluster_ref.as_ref()).await?;
    let target = get_cluster(&api, flow.spec.target.cluster_ref.as_ref()).await?;
    Ok(Referenced { source, target })
}

async fn get_cluster(
    api: &Api<KafkaCluster>,
    reference: Option<&strata_api::ClusterReference>,
) -> Result<Option<KafkaCluster>, Error> {
    match reference {
        Some(r) => api
            .get_opt(&r.name)
            .await
            .map_err(kube_err(format!("reading KafkaCluster {}", r.name))),
        None => Ok(None),
    }
}

/// An invalid flow: `Ready=False` with the reason, a Warning event, nothing applied. A
/// missing cluster is looked at again (its creation also triggers the flow); anything else
/// waits for a change of the flow.
async fn refuse(
    api: &Api<MirrorFlow>,
    flow: &MirrorFlow,
    previous: &MirrorFlowStatus,
    invalid: InvalidFlow,
    ctx: &Context,
) -> Result<Action, Error> {
    let already = previous
        .conditions
        .iter()
        .any(|c| c.type_ == READY && c.reason == invalid.reason && c.message == invalid.message);
    if !already {
        ctx.event(
            flow,
            EventType::Warning,
            invalid.reason,
            "Validate",
            invalid.message.clone(),
        )
        .await;
    }
    let generation = flow.meta().generation;
    let status = MirrorFlowStatus {
        observed_generation: generation,
        conditions: conditions::merge(
            &previous.conditions,
            &[
                DesiredCondition::new(READY, false, invalid.reason, invalid.message.clone()),
                DesiredCondition::new(
                    PROGRESSING,
                    false,
                    invalid.reason,
                    "nothing is applied until the flow is fixed",
                ),
            ],
            generation,
            Timestamp::now(),
        ),
        ..previous.clone()
    };
    if flow.status.as_ref() != Some(&status) {
        write_status(api, flow, &status).await?;
    }
    Ok(if invalid.waits_for_another_object() {
        Action::requeue(ctx.timing.waiting)
    } else {
        Action::await_change()
    })
}

/// Where the operator reaches `side`: a `KafkaCluster` through the resolver (which honours
/// the test-only overrides), an external side at its bootstrap list.
pub fn kafka_target(plan: &FlowPlan, side: &SidePlan, ctx: &Context) -> KafkaTarget {
    match &side.endpoint {
        Endpoint::Cluster(c) => ctx
            .resolver
            .resolve(plan.namespace(), &c.name, &c.bootstrap),
        Endpoint::External(e) => KafkaTarget {
            cluster: format!("{} ({})", side.alias, e.bootstrap),
            bootstrap: e.bootstrap.clone(),
            secured: false,
        },
    }
}

/// Metadata + DescribeCluster + ListOffsets of `side` within `timeout`.
async fn probe(
    plan: &FlowPlan,
    side: &SidePlan,
    timeout: Duration,
    ctx: &Context,
    credentials: &Credentials,
) -> Probe {
    let mut target = kafka_target(plan, side, ctx);
    credentials::load(ctx, &mut target, credentials.of(side));
    let outcome = match tokio::time::timeout(timeout, ctx.admin.end_offsets(&target)).await {
        Ok(Ok(offsets)) => Ok(offsets),
        Ok(Err(e)) => Err(probe_error(&e)),
        Err(_) => Err(format!(
            "{} did not answer Metadata, DescribeCluster and ListOffsets within {} s",
            side.describe(),
            timeout.as_secs()
        )),
    };
    Probe {
        side: side.describe(),
        outcome,
    }
}

fn probe_error(e: &AdminError) -> String {
    e.to_string()
}

/// What the API server returned for the objects that feed the status.
struct Applied {
    stateful_set: StatefulSet,
    /// Why the discovery Service was left alone, if it was.
    discovery_problem: Option<String>,
}

async fn apply_children(
    ctx: &Context,
    namespace: &str,
    flow: &MirrorFlow,
    children: FlowChildren,
    owner: &OwnerReference,
) -> Result<Applied, Error> {
    // Destructured without `..` so that a new child cannot be forgotten here.
    let FlowChildren {
        config_map,
        mirror_service,
        stateful_set,
        discovery,
    } = children;
    let client = &ctx.client;
    let name_of = |kind: &str, name: String| format!("applying {kind} {name}");
    // The ConfigMap first: the mirror pods mount it.
    let cm_name = config_map.name_any();
    apply::<ConfigMap>(client, namespace, &owned(config_map, owner))
        .await
        .map_err(kube_err(name_of("ConfigMap", cm_name)))?;
    let svc_name = mirror_service.name_any();
    apply::<Service>(client, namespace, &owned(mirror_service, owner))
        .await
        .map_err(kube_err(name_of("Service", svc_name)))?;
    let sts_name = stateful_set.name_any();
    let stateful_set = apply::<StatefulSet>(client, namespace, &owned(stateful_set, owner))
        .await
        .map_err(kube_err(name_of("StatefulSet", sts_name)))?;
    let discovery_problem = apply_discovery(ctx, namespace, flow, discovery, owner).await?;
    Ok(Applied {
        stateful_set,
        discovery_problem,
    })
}

/// Applies the discovery Service (and its EndpointSlice), and deletes the discovery objects
/// of this flow that are no longer wanted (a renamed Service, a slice of a side that is no
/// longer active). A Service of that name the flow does not own is left alone and reported.
async fn apply_discovery(
    ctx: &Context,
    namespace: &str,
    flow: &MirrorFlow,
    discovery: Option<Discovery>,
    owner: &OwnerReference,
) -> Result<Option<String>, Error> {
    let client = &ctx.client;
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let selector = format!(
        "{}={},{}={}",
        names::MIRRORFLOW_LABEL,
        flow.name_any(),
        names::COMPONENT_LABEL,
        "discovery"
    );
    let (wanted_service, wanted_slice) = match &discovery {
        Some(d) => (
            Some(d.service.name_any()),
            d.endpoint_slice.as_ref().map(|s| s.name_any()),
        ),
        None => (None, None),
    };
    let mut problem = None;
    if let Some(Discovery {
        service,
        endpoint_slice,
    }) = discovery
    {
        let name = service.name_any();
        let existing = services
            .get_opt(&name)
            .await
            .map_err(kube_err(format!("reading Service {name}")))?;
        let ours = |s: &Service| {
            s.owner_references()
                .iter()
                .any(|o| o.uid == owner.uid && o.controller == Some(true))
        };
        let type_of = |s: &Service| {
            s.spec
                .as_ref()
                .and_then(|s| s.type_.clone())
                .unwrap_or_else(|| "ClusterIP".to_owned())
        };
        match existing {
            Some(e) if !ours(&e) => {
                problem = Some(format!(
                    "Service {name} exists and is not managed by this MirrorFlow; the \
                     discovery address is not changed (delete that Service or choose another \
                     spec.failover.discoveryService)"
                ));
            }
            existing => {
                // ClusterIP <-> ExternalName is not an in-place change: the allocated cluster
                // IP would have to be released. Recreate the Service instead.
                if let Some(e) = existing.filter(|e| type_of(e) != type_of(&service)) {
                    delete(&services, &e.name_any(), "Service").await?;
                }
                apply::<Service>(client, namespace, &owned(service, owner))
                    .await
                    .map_err(kube_err(format!("applying Service {name}")))?;
                if let Some(slice) = endpoint_slice {
                    let slice_name = slice.name_any();
                    apply::<EndpointSlice>(client, namespace, &owned(slice, owner))
                        .await
                        .map_err(kube_err(format!("applying EndpointSlice {slice_name}")))?;
                }
            }
        }
    }
    // Orphans: discovery objects of this flow that are not wanted (by label, so objects of
    // other owners are never touched).
    let lp = ListParams::default().labels(&selector);
    for s in services
        .list(&lp)
        .await
        .map_err(kube_err("listing discovery Services"))?
    {
        if Some(s.name_any()) != wanted_service && owned_by(&s, owner) {
            delete(&services, &s.name_any(), "Service").await?;
        }
    }
    for s in slices
        .list(&lp)
        .await
        .map_err(kube_err("listing discovery EndpointSlices"))?
    {
        if Some(s.name_any()) != wanted_slice && owned_by(&s, owner) {
            delete(&slices, &s.name_any(), "EndpointSlice").await?;
        }
    }
    Ok(problem)
}

fn owned_by<K: Resource>(obj: &K, owner: &OwnerReference) -> bool {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == owner.uid)
}

/// Deletes an object; one already gone counts as deleted.
async fn delete<K>(api: &Api<K>, name: &str, kind: &str) -> Result<(), Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(kube_err(format!("deleting {kind} {name}"))(e)),
    }
}

/// Events a user must see: a failover starting and finishing, and a new problem.
async fn events(
    ctx: &Context,
    flow: &MirrorFlow,
    previous: &MirrorFlowStatus,
    status: &MirrorFlowStatus,
) {
    let op_id = |s: &MirrorFlowStatus| {
        s.failover
            .as_ref()
            .and_then(|f| f.operation.as_ref())
            .filter(|op| op.reason != Reason::Initial)
            .map(|op| (op.id.clone(), op.reason, op.from, op.to))
    };
    if let Some((id, reason, from, to)) =
        op_id(status).filter(|op| Some(op) != op_id(previous).as_ref())
    {
        ctx.event(
            flow,
            EventType::Normal,
            "FailoverStarted",
            "Failover",
            format!(
                "failover {id} ({reason:?}) from the {} to the {} started",
                name(from),
                name(to)
            ),
        )
        .await;
    }
    if let Some(last) = status
        .last_failover
        .as_ref()
        .filter(|l| Some(*l) != previous.last_failover.as_ref())
    {
        ctx.event(
            flow,
            EventType::Normal,
            "FailoverCompleted",
            "Failover",
            format!(
                "clients are pointed at the {} after {:.1} s; {} record(s) at risk",
                name(last.to),
                last.duration_seconds,
                last.records_at_risk
            ),
        )
        .await;
    }
    let problem = |s: &MirrorFlowStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == DEGRADED && c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    if let Some((reason, message)) = problem(status) {
        if problem(previous).map(|p| p.0) != Some(reason.clone()) {
            ctx.event(flow, EventType::Warning, &reason, "Probe", message)
                .await;
        }
    }
}

/// When the running mirror last wrote consumer-group checkpoints to the side it writes: the
/// newest record of `<reading alias>.checkpoints.internal` there (None when it wrote none yet,
/// or that side did not answer).
fn last_checkpoint(
    plan: &FlowPlan,
    state: &FailoverState,
    (source, target): (&Probe, &Probe),
) -> Option<Time> {
    let from = state.mirror_from?;
    let writing = match other(from) {
        ActiveSide::Source => source,
        ActiveSide::Target => target,
    };
    let topic = format!("{}{CHECKPOINTS_SUFFIX}", plan.side(from).alias);
    let ms = *writing.ok()?.checkpoint_times.get(&topic)?;
    Timestamp::from_millisecond(ms).ok().map(Time)
}

#[allow(clippy::too_many_arguments)]
fn status_from(
    flow: &MirrorFlow,
    plan: &FlowPlan,
    previous: &MirrorFlowStatus,
    state: &FailoverState,
    waiting: Option<&str>,
    (source, target): (&Probe, &Probe),
    lag: Option<i64>,
    applied: &Applied,
) -> MirrorFlowStatus {
    let generation = flow.meta().generation;
    let wanted = if plan.mirror_running() {
        plan.replicas()
    } else {
        0
    };
    let sts_status = applied.stateful_set.status.as_ref();
    let ready_pods = sts_status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let observed =
        sts_status.and_then(|s| s.observed_generation) == applied.stateful_set.metadata.generation;
    let pods_ready = observed && ready_pods >= wanted;
    let (active_probe, standby_probe) = match state.active {
        ActiveSide::Source => (source, target),
        ActiveSide::Target => (target, source),
    };

    let degraded = if let Some(blocked) = &state.blocked {
        let reason = blocked
            .split(':')
            .next()
            .unwrap_or(reason::FAILBACK_BLOCKED);
        DesiredCondition::new(DEGRADED, true, reason.to_owned(), blocked.clone())
    } else if let Err(e) = &active_probe.outcome {
        DesiredCondition::new(DEGRADED, true, reason::ACTIVE_UNREACHABLE, e.clone())
    } else if let Err(e) = &standby_probe.outcome {
        DesiredCondition::new(DEGRADED, true, reason::STANDBY_UNREACHABLE, e.clone())
    } else if let Some(problem) = &applied.discovery_problem {
        DesiredCondition::new(DEGRADED, true, reason::DISCOVERY_TAKEN, problem.clone())
    } else if let Some(e) = &state.last_error {
        DesiredCondition::new(DEGRADED, true, reason::STEP_FAILED, e.clone())
    } else {
        DesiredCondition::new(DEGRADED, false, reason::AS_EXPECTED, "no problem found")
    };
    let mirroring = format!(
        "mirroring {} -> {} with {ready_pods}/{wanted} mirror pods ready",
        plan.reading().describe(),
        plan.writing().describe()
    );
    // What the engine is doing, if anything: an operation's step, a standby rejoining.
    let busy = match (&state.operation, &state.rejoin) {
        (Some(op), _) => {
            let what = if op.reason == Reason::Initial {
                format!(
                    "setting up: making the {} active and the {} its standby",
                    name(op.to),
                    name(op.from)
                )
            } else {
                format!(
                    "failover {} ({:?}) from the {} to the {}",
                    op.id,
                    op.reason,
                    name(op.from),
                    name(op.to)
                )
            };
            Some((
                format!("{:?}", op.step),
                format!("{what}: step {:?}{}", op.step, waiting_note(waiting)),
            ))
        }
        (None, Some(rejoin)) => Some((
            reason::STANDBY_REJOINING.to_owned(),
            format!(
                "the {} rejoins as the standby of the {}{}",
                name(rejoin.side),
                name(state.active),
                waiting_note(waiting)
            ),
        )),
        (None, None) if state.mirror_from != Some(state.active) => Some((
            reason::MIRROR_STOPPED.to_owned(),
            format!("the mirror does not run{}", waiting_note(waiting)),
        )),
        (None, None) => None,
    };
    let ready = match (&busy, pods_ready, degraded.status) {
        (Some((reason, message)), _, _) => {
            DesiredCondition::new(READY, false, reason.clone(), message.clone())
        }
        (None, false, _) => {
            DesiredCondition::new(READY, false, reason::MIRROR_STARTING, mirroring.clone())
        }
        (None, true, true) => DesiredCondition::new(
            READY,
            false,
            degraded.reason.clone(),
            degraded.message.clone(),
        ),
        (None, true, false) => {
            DesiredCondition::new(READY, true, reason::MIRRORING, mirroring.clone())
        }
    };
    let progressing = match (&busy, pods_ready) {
        (Some((reason, message)), _) => {
            DesiredCondition::new(PROGRESSING, true, reason.clone(), message.clone())
        }
        (None, false) => {
            DesiredCondition::new(PROGRESSING, true, reason::MIRROR_STARTING, mirroring)
        }
        (None, true) => DesiredCondition::new(
            PROGRESSING,
            false,
            reason::RECONCILED,
            "the mirror matches its spec",
        ),
    };
    let mut wanted_conditions = vec![ready, progressing, degraded];
    // Fenced: whether the side that gave up being active confirmed its write fence.
    let fence = match (&state.operation, &state.last) {
        (Some(op), _) if op.step > Step::Fence => Some((op.from, op.fence_confirmed)),
        (None, Some(last)) => Some((last.from, last.fence_confirmed)),
        _ => None,
    };
    if let Some((side, confirmed)) = fence {
        let alias = &plan.side(side).alias;
        wanted_conditions.push(if confirmed {
            DesiredCondition::new(
                FENCED,
                true,
                "FenceConfirmed",
                format!("the {} ({alias}) refuses client writes", name(side)),
            )
        } else {
            DesiredCondition::new(
                FENCED,
                false,
                "FenceUnconfirmed",
                format!(
                    "the {} ({alias}) could not be write-fenced (unreachable, or a foreign \
                     cluster without fenceForeignClusterWithAcl); promotion waits for its write \
                     mandate to run out",
                    name(side)
                ),
            )
        });
    }
    MirrorFlowStatus {
        observed_generation: generation,
        conditions: conditions::merge(
            &previous.conditions,
            &wanted_conditions,
            generation,
            Timestamp::now(),
        ),
        phase: Some(match state.phase() {
            Phase::Mirroring => MirrorPhase::Mirroring,
            Phase::FailingOver => MirrorPhase::FailingOver,
            Phase::FailedOver => MirrorPhase::FailedOver,
            Phase::FailingBack => MirrorPhase::FailingBack,
            Phase::Degraded => MirrorPhase::Degraded,
        }),
        active_cluster: Some(state.active),
        lag_records: lag,
        last_checkpoint_time: last_checkpoint(plan, state, (source, target))
            .or_else(|| previous.last_checkpoint_time.clone()),
        last_failover: state.last.as_ref().map(|l| strata_api::FailoverRecord {
            time: Time(Timestamp::from_millisecond(l.started_ms).unwrap_or(Timestamp::UNIX_EPOCH)),
            reason: format!("{:?}", l.reason),
            records_at_risk: l.records_at_risk,
            duration_seconds: l.duration_ms as f64 / 1000.0,
            from: l.from,
            to: l.to,
        }),
        failover: Some(state.clone()),
    }
}

fn waiting_note(waiting: Option<&str>) -> String {
    waiting.map_or_else(String::new, |w| format!("; waiting: {w}"))
}

async fn write_status(
    api: &Api<MirrorFlow>,
    flow: &MirrorFlow,
    status: &MirrorFlowStatus,
) -> Result<(), Error> {
    crate::apply::apply_status(api, "MirrorFlow", &flow.name_any(), status)
        .await
        .map_err(kube_err("writing status"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{json, Value};

    use super::*;
    use crate::testing::{context, cr_path, typed, FakeAdmin, FakeApi};

    const NS: &str = "kafka";
    const EAST: &str = "east-bootstrap.kafka.svc:9092";
    const WEST: &str = "west-bootstrap.kafka.svc:9092";

    fn flow_path() -> String {
        cr_path("mirrorflows", NS, "f")
    }

    fn insert_cluster(api: &FakeApi, name: &str, zone: &str) {
        api.insert(
            &cr_path("kafkaclusters", NS, name),
            json!({
                "apiVersion": "kafka.strata.dev/v1alpha1", "kind": "KafkaCluster",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"racks": [{"name": "r", "zone": zone, "brokers": 1}],
                         "storage": {"size": "1Gi"}},
            }),
        );
    }

    fn insert_flow(api: &FakeApi, spec: Value, status: Option<Value>) {
        let mut obj = json!({
            "apiVersion": "kafka.strata.dev/v1alpha1", "kind": "MirrorFlow",
            "metadata": {"name": "f", "namespace": NS},
            "spec": spec,
        });
        if let Some(s) = status {
            obj["status"] = s;
        }
        api.insert(&flow_path(), obj);
    }

    fn preserve() -> Value {
        json!({"source": {"alias": "east", "clusterRef": {"name": "east"}},
               "target": {"alias": "west", "clusterRef": {"name": "west"}},
               "naming": "Identity", "offsets": "Preserve",
               "failover": {"discoveryService": "kafka-active"}})
    }

    fn setup(spec: Value, status: Option<Value>) -> (FakeApi, Arc<FakeAdmin>, Arc<Context>) {
        let (client, api) = FakeApi::start();
        let admin = Arc::new(FakeAdmin::default());
        let ctx = context(client, admin.clone());
        insert_cluster(&api, "east", "zone-a");
        insert_cluster(&api, "west", "zone-b");
        insert_flow(&api, spec, status);
        admin.set_side(EAST, &[("orders", 0, 10), ("orders", 1, 4)]);
        admin.set_side(WEST, &[("orders", 0, 7)]);
        (api, admin, ctx)
    }

    async fn run(api: &FakeApi, ctx: &Arc<Context>) -> Result<Action, Error> {
        let obj: MirrorFlow = typed(api, &flow_path()).expect("flow stored");
        reconcile(Arc::new(obj), ctx.clone()).await
    }

    fn stored(api: &FakeApi) -> MirrorFlowStatus {
        typed::<MirrorFlow>(api, &flow_path())
            .and_then(|f| f.status)
            .expect("status written")
    }

    fn condition(api: &FakeApi, type_: &str) -> (String, String, String) {
        let c = stored(api)
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .expect("condition present");
        (c.status, c.reason, c.message)
    }

    fn writes(api: &FakeApi) -> Vec<String> {
        api.writes()
            .into_iter()
            .filter(|w| !w.contains("/events"))
            .collect()
    }

    fn events(api: &FakeApi, reason: &str) -> usize {
        api.log()
            .iter()
            .filter(|l| l.path.ends_with("/events") && l.body["reason"] == reason)
            .count()
    }

    /// Plays the StatefulSet controller: every wanted mirror pod is ready.
    fn settle(api: &FakeApi) {
        api.update(
            &format!("/apis/apps/v1/namespaces/{NS}/statefulsets/f-mirror"),
            |o| {
                let replicas = o["spec"]["replicas"].clone();
                let generation = o["metadata"]["generation"].clone();
                o["status"] = json!({"observedGeneration": generation, "replicas": replicas,
                                     "readyReplicas": replicas});
            },
        );
    }

    fn discovery_selector(api: &FakeApi) -> Value {
        api.get(&format!("/api/v1/namespaces/{NS}/services/kafka-active"))
            .expect("discovery Service applied")["spec"]["selector"]
            .clone()
    }

    fn flow_file(api: &FakeApi) -> Value {
        let cm = api
            .get(&format!(
                "/api/v1/namespaces/{NS}/configmaps/f-mirror-config"
            ))
            .expect("ConfigMap applied");
        serde_norway::from_str(cm["data"]["flow.yaml"].as_str().unwrap()).unwrap()
    }

    /// The engine's state of a flow that mirrors from `active` with nothing under way.
    fn steady(active: &str) -> Value {
        json!({"activeCluster": active, "failover": {
            "active": active, "desiredSeen": active, "mirrorFrom": active, "serial": 1}})
    }

    fn replicas(api: &FakeApi) -> i64 {
        api.get(&format!(
            "/apis/apps/v1/namespaces/{NS}/statefulsets/f-mirror"
        ))
        .expect("StatefulSet applied")["spec"]["replicas"]
            .as_i64()
            .unwrap()
    }

    #[tokio::test]
    async fn a_new_flow_is_set_up_by_the_engine_then_mirrors() {
        let (api, admin, ctx) = setup(preserve(), None);
        run(&api, &ctx).await.expect("reconciled");
        // The engine's first operation: fence the standby, promote the desired side, point
        // discovery at it, then start the mirror towards the standby.
        let actions = admin.failover_actions.lock().clone();
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert!(
            actions[0].starts_with("Fence { side: Target"),
            "{actions:?}"
        );
        assert!(
            actions[1].starts_with("Promote { side: Source"),
            "{actions:?}"
        );
        let w = writes(&api);
        assert_eq!(
            w[0],
            format!("PATCH {}/status", flow_path()),
            "saved before the first step"
        );
        let position = |suffix: &str| w.iter().position(|x| x.ends_with(suffix)).unwrap();
        assert!(position("/configmaps/f-mirror-config") < position("/statefulsets/f-mirror"));
        for path in [
            format!("/api/v1/namespaces/{NS}/configmaps/f-mirror-config"),
            format!("/apis/apps/v1/namespaces/{NS}/statefulsets/f-mirror"),
            format!("/api/v1/namespaces/{NS}/services/kafka-active"),
        ] {
            let obj = api.get(&path).unwrap();
            assert_eq!(obj["metadata"]["ownerReferences"][0]["kind"], "MirrorFlow");
            assert_eq!(obj["metadata"]["ownerReferences"][0]["controller"], true);
        }
        assert_eq!(discovery_selector(&api)["kafka.strata.dev/cluster"], "east");
        assert_eq!(flow_file(&api)["source"]["bootstrapServers"], EAST);
        assert_eq!(
            replicas(&api),
            1,
            "the mirror runs once the standby is fenced"
        );
        let status = stored(&api);
        assert_eq!(status.active_cluster, Some(ActiveSide::Source));
        assert_eq!(status.phase, Some(MirrorPhase::Mirroring));
        let state = status.failover.expect("engine state saved");
        assert_eq!(state.mirror_from, Some(ActiveSide::Source));
        assert!(state.operation.is_none() && state.rejoin.is_none());
        assert_eq!(condition(&api, READY).1, reason::MIRROR_STARTING);

        // The pods come up: the lag is measured now that the mirror runs.
        settle(&api);
        run(&api, &ctx).await.expect("reconciled");
        assert_eq!(stored(&api).lag_records, Some(3 + 4));
        admin.set_side(WEST, &[("orders", 0, 10), ("orders", 1, 4)]);
        run(&api, &ctx).await.expect("reconciled");
        let (status, reason, message) = condition(&api, READY);
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("True", reason::MIRRORING)
        );
        assert!(
            message.contains("east (KafkaCluster east) -> west"),
            "{message}"
        );
        assert_eq!(stored(&api).lag_records, Some(0));
        assert_eq!(condition(&api, DEGRADED).0, "False");
        assert_eq!(
            stored(&api).last_checkpoint_time,
            None,
            "no checkpoint written yet"
        );

        // The mirror writes checkpoints to the standby: their newest time is the status's.
        admin.set_checkpoint_time(WEST, "east.checkpoints.internal", 1_700_000_000_000);
        run(&api, &ctx).await.expect("reconciled");
        let when = stored(&api)
            .last_checkpoint_time
            .expect("checkpoint time reported");
        assert_eq!(when.0.as_millisecond(), 1_700_000_000_000);

        // Nothing changed: no status write, no engine action.
        api.clear_log();
        let before = admin.failover_actions.lock().len();
        run(&api, &ctx).await.expect("reconciled");
        assert!(!writes(&api).iter().any(|w| w.ends_with("/status")));
        assert_eq!(admin.failover_actions.lock().len(), before);
    }

    #[tokio::test]
    async fn a_planned_failover_saves_each_step_before_running_it() {
        let (api, admin, ctx) = setup(preserve(), Some(steady("source")));
        settle_after_first_run(&api, &ctx).await;
        // Every Kafka-side step finds itself saved in the status, and the mirror stopped
        // before the standby is promoted.
        let seen = api.clone();
        *admin.on_failover_action.lock() = Some(Box::new(move |action| {
            let flow: MirrorFlow = typed(&seen, &flow_path()).unwrap();
            let state = flow.status.unwrap().failover.unwrap();
            let step = state.operation.as_ref().map(|op| op.step);
            match action {
                FailoverAction::Fence { side, .. } if *side == ActiveSide::Source => {
                    assert_eq!(step, Some(Step::Fence))
                }
                FailoverAction::CheckDrained { .. } => assert_eq!(step, Some(Step::Drain)),
                FailoverAction::FinalCheckpoint { .. } => {
                    assert_eq!(step, Some(Step::FinalCheckpoint))
                }
                FailoverAction::Promote { .. } => {
                    assert_eq!(step, Some(Step::Promote));
                    let sts = seen
                        .get(&format!(
                            "/apis/apps/v1/namespaces/{NS}/statefulsets/f-mirror"
                        ))
                        .unwrap();
                    assert_eq!(sts["spec"]["replicas"], 0, "the mirror is stopped first");
                }
                _ => {}
            }
        }));
        admin.failover_actions.lock().clear();
        // The user flips the desired side (kubectl patch / GitOps).
        api.update(&flow_path(), |f| {
            f["spec"]["failover"]["active"] = json!("target");
            f["metadata"]["generation"] = json!(2);
        });
        // The first drain check finds records not yet copied: the failover waits for them.
        admin.failover_outcomes.lock().extend([
            Outcome::Fenced { confirmed: true },
            Outcome::Drained { lag: 5 },
        ]);
        run(&api, &ctx).await.expect("reconciled");
        let status = stored(&api);
        assert_eq!(status.phase, Some(MirrorPhase::FailingOver));
        assert_eq!(condition(&api, PROGRESSING).1, "Drain");
        assert_eq!(replicas(&api), 1, "the mirror keeps draining");
        assert_eq!(discovery_selector(&api)["kafka.strata.dev/cluster"], "east");

        // Drained: the rest of the failover and the reversed mirror in one pass.
        run(&api, &ctx).await.expect("reconciled");
        let actions: Vec<String> = admin
            .failover_actions
            .lock()
            .iter()
            .map(|a| a.split(' ').next().unwrap().to_owned())
            .collect();
        assert_eq!(
            actions,
            [
                "Fence",
                "CheckDrained",
                "CheckDrained",
                "FinalCheckpoint",
                "Promote",
                "Quarantine"
            ]
        );
        let status = stored(&api);
        assert_eq!(status.active_cluster, Some(ActiveSide::Target));
        assert_eq!(status.phase, Some(MirrorPhase::FailedOver));
        assert_eq!(discovery_selector(&api)["kafka.strata.dev/cluster"], "west");
        let file = flow_file(&api);
        assert_eq!(
            file["source"]["alias"], "west",
            "the mirror runs in reverse"
        );
        assert_eq!(replicas(&api), 1);
        let last = status.last_failover.expect("recorded");
        assert_eq!(
            (last.from, last.to),
            (ActiveSide::Source, ActiveSide::Target)
        );
        assert_eq!(
            (last.reason.as_str(), last.records_at_risk),
            ("DesiredActiveChanged", 0)
        );
        assert_eq!(condition(&api, FENCED).0, "True");
        assert_eq!(events(&api, "FailoverStarted"), 1);
        assert_eq!(events(&api, "FailoverCompleted"), 1);
    }

    /// One pass on a steady flow, with its pods then Ready.
    async fn settle_after_first_run(api: &FakeApi, ctx: &Arc<Context>) {
        run(api, ctx).await.expect("reconciled");
        settle(api);
    }

    #[tokio::test]
    async fn an_invalid_flow_creates_nothing() {
        let mut spec = preserve();
        spec["target"] = json!({"alias": "dr", "bootstrapServers": "10.0.0.1:9092"});
        let (api, _admin, ctx) = setup(spec, None);
        let action = run(&api, &ctx).await.expect("reconciled");
        assert_eq!(action, Action::await_change());
        assert_eq!(writes(&api), [format!("PATCH {}/status", flow_path())]);
        let (status, reason, _) = condition(&api, READY);
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", crate::flow::plan::reason::PRESERVE_NEEDS_STRATA)
        );
        assert_eq!(
            events(&api, crate::flow::plan::reason::PRESERVE_NEEDS_STRATA),
            1
        );
        // Once reported, the same refusal publishes no second event.
        run(&api, &ctx).await.expect("reconciled");
        assert_eq!(
            events(&api, crate::flow::plan::reason::PRESERVE_NEEDS_STRATA),
            1
        );
    }

    #[tokio::test]
    async fn a_missing_cluster_is_waited_for() {
        let mut spec = preserve();
        spec["target"]["clusterRef"]["name"] = json!("nowhere");
        let (api, _admin, ctx) = setup(spec, None);
        let action = run(&api, &ctx).await.expect("reconciled");
        assert_eq!(action, Action::requeue(ctx.timing.waiting));
        assert_eq!(writes(&api), [format!("PATCH {}/status", flow_path())]);
        assert_eq!(condition(&api, READY).1, "ClusterNotFound");
    }

    #[tokio::test]
    async fn an_unreachable_active_side_is_degraded() {
        let (api, admin, ctx) = setup(preserve(), Some(steady("source")));
        admin.sides.lock().remove(EAST);
        run(&api, &ctx).await.expect("reconciled");
        let status = stored(&api);
        assert_eq!(
            status.phase,
            Some(MirrorPhase::Mirroring),
            "Manual: no failover"
        );
        assert!(admin.failover_actions.lock().is_empty());
        assert_eq!(status.lag_records, None, "unknown, not zero");
        let (degraded, reason, message) = condition(&api, DEGRADED);
        assert_eq!(
            (degraded.as_str(), reason.as_str()),
            ("True", reason::ACTIVE_UNREACHABLE)
        );
        assert!(message.contains(EAST), "{message}");
        assert_eq!(events(&api, reason::ACTIVE_UNREACHABLE), 1);
        // The mirror is still deployed: it resumes by itself when the side is back.
        assert!(api
            .get(&format!(
                "/apis/apps/v1/namespaces/{NS}/statefulsets/f-mirror"
            ))
            .is_some());
    }

    #[tokio::test]
    async fn the_direction_and_discovery_follow_the_active_side() {
        let mut spec = preserve();
        spec["failover"]["active"] = json!("target");
        let (api, _admin, ctx) = setup(spec, Some(steady("target")));
        run(&api, &ctx).await.expect("reconciled");
        assert_eq!(discovery_selector(&api)["kafka.strata.dev/cluster"], "west");
        let file = flow_file(&api);
        assert_eq!(file["source"]["alias"], "west");
        assert_eq!(file["target"]["bootstrapServers"], EAST);
        // The mirror runs where it writes: east's zone.
        let sts = api
            .get(&format!(
                "/apis/apps/v1/namespaces/{NS}/statefulsets/f-mirror"
            ))
            .unwrap();
        let zones = &sts["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
            ["matchExpressions"][0]["values"];
        assert_eq!(zones, &json!(["zone-a"]));
        // Lag is counted from west to east now (west 7, east 10).
        assert_eq!(
            stored(&api).lag_records,
            Some(0),
            "west is behind east: nothing to copy"
        );
    }

    #[tokio::test]
    async fn a_discovery_service_of_another_owner_is_left_alone() {
        let (api, _admin, ctx) = setup(preserve(), Some(steady("source")));
        api.insert(
            &format!("/api/v1/namespaces/{NS}/services/kafka-active"),
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "kafka-active", "namespace": NS},
                   "spec": {"selector": {"app": "mine"}}}),
        );
        run(&api, &ctx).await.expect("reconciled");
        assert!(!writes(&api)
            .iter()
            .any(|w| w.ends_with("/services/kafka-active")));
        assert_eq!(discovery_selector(&api), json!({"app": "mine"}));
        assert_eq!(condition(&api, DEGRADED).1, reason::DISCOVERY_TAKEN);
    }

    #[tokio::test]
    async fn a_renamed_or_external_discovery_replaces_the_old_objects() {
        let spec = json!({"source": {"alias": "east", "clusterRef": {"name": "east"}},
                          "target": {"alias": "dr", "bootstrapServers": "10.0.0.1:9092,10.0.0.2:9092"},
                          "failover": {"discoveryService": "kafka-active", "active": "target"}});
        let (api, admin, ctx) = setup(spec.clone(), Some(steady("target")));
        admin.set_side("10.0.0.1:9092,10.0.0.2:9092", &[("orders", 0, 1)]);
        run(&api, &ctx).await.expect("reconciled");
        let slice = api
            .get(&format!(
                "/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices/kafka-active-external"
            ))
            .expect("EndpointSlice applied");
        assert_eq!(slice["endpoints"][1]["addresses"][0], "10.0.0.2");
        assert_eq!(discovery_selector(&api), Value::Null, "selector-less");

        // Renamed: the old Service and its slice go, the new one points at the same side.
        api.update(&flow_path(), |f| {
            f["spec"]["failover"]["discoveryService"] = json!("kafka");
        });
        api.clear_log();
        run(&api, &ctx).await.expect("reconciled");
        let w = writes(&api);
        assert!(
            w.contains(&format!(
                "DELETE /api/v1/namespaces/{NS}/services/kafka-active"
            )),
            "{w:?}"
        );
        assert!(
            w.contains(&format!(
            "DELETE /apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices/kafka-active-external"
        )),
            "{w:?}"
        );
        assert!(api
            .get(&format!("/api/v1/namespaces/{NS}/services/kafka"))
            .is_some());
    }
}
