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
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;
use strata_api::{ActiveSide, KafkaCluster, MirrorFlow, MirrorFlowStatus, MirrorPhase};

use crate::apply::{apply, owned};
use crate::conditions::{self, DesiredCondition, DEGRADED, PROGRESSING, READY};
use crate::context::Context;
use crate::flow::build::{build, Discovery, FlowChildren};
use crate::flow::lag;
use crate::flow::plan::{plan, Endpoint, FlowPlan, InvalidFlow, Referenced, SidePlan};
use crate::kafka::{AdminError, KafkaTarget, SideOffsets};
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

    // Step 1: read the referenced clusters.
    let referenced = read_clusters(&flow, &namespace, &ctx).await?;
    // The side clients are on now: what the status recorded, else (a new flow) the spec's.
    let active = previous.active_cluster.unwrap_or(flow.spec.failover.active);

    // Step 2: validate, then probe both sides.
    let plan = match plan(&flow, &referenced, active, &ctx.plan) {
        Ok(p) => p,
        Err(invalid) => return refuse(&api, &flow, &previous, invalid, &ctx).await,
    };
    let timeout = Duration::from_secs(
        u64::try_from(flow.spec.failover.detection.timeout_seconds.max(1)).unwrap_or(1),
    );
    let reading = probe(&plan, plan.reading(), timeout, &ctx).await;
    let writing = probe(&plan, plan.writing(), timeout, &ctx).await;

    // Step 3: build.
    let children = build(&plan);

    // Steps 4 and 5: apply, then status.
    let owner = flow.controller_owner_ref(&()).ok_or(Error::NotNamespaced)?;
    let applied = apply_children(&ctx, &namespace, &flow, children, &owner).await?;
    let status = status_from(&flow, &plan, &previous, &reading, &writing, &applied);
    if degraded_changed(&previous, &status) {
        if let Some(c) = status
            .conditions
            .iter()
            .find(|c| c.type_ == DEGRADED && c.status == "True")
        {
            ctx.event(
                &*flow,
                EventType::Warning,
                &c.reason,
                "Probe",
                c.message.clone(),
            )
            .await;
        }
    }
    let settled = conditions::is_true(&status.conditions, READY) == Some(true);
    write_status(&api, &flow, status).await?;
    let interval = Duration::from_secs(
        u64::try_from(flow.spec.failover.detection.probe_interval_seconds.max(1)).unwrap_or(5),
    );
    Ok(Action::requeue(if settled {
        interval
    } else {
        interval.min(ctx.timing.progress)
    }))
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
    write_status(api, flow, status).await?;
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
        },
    }
}

/// Metadata + DescribeCluster + ListOffsets of `side` within `timeout`.
async fn probe(plan: &FlowPlan, side: &SidePlan, timeout: Duration, ctx: &Context) -> Probe {
    let target = kafka_target(plan, side, ctx);
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

fn degraded_changed(previous: &MirrorFlowStatus, status: &MirrorFlowStatus) -> bool {
    let find = |s: &MirrorFlowStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == DEGRADED)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    find(previous) != find(status)
}

fn status_from(
    flow: &MirrorFlow,
    plan: &FlowPlan,
    previous: &MirrorFlowStatus,
    reading: &Probe,
    writing: &Probe,
    applied: &Applied,
) -> MirrorFlowStatus {
    let generation = flow.meta().generation;
    let lags = match (reading.ok(), writing.ok()) {
        (Some(r), Some(w)) => Some(lag::lag(plan, r, w)),
        _ => None,
    };
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

    let degraded = match (
        &reading.outcome,
        &writing.outcome,
        &applied.discovery_problem,
    ) {
        (Err(e), _, _) => {
            DesiredCondition::new(DEGRADED, true, reason::ACTIVE_UNREACHABLE, e.clone())
        }
        (_, Err(e), _) => {
            DesiredCondition::new(DEGRADED, true, reason::STANDBY_UNREACHABLE, e.clone())
        }
        (_, _, Some(problem)) => {
            DesiredCondition::new(DEGRADED, true, reason::DISCOVERY_TAKEN, problem.clone())
        }
        _ => DesiredCondition::new(DEGRADED, false, reason::AS_EXPECTED, "no problem found"),
    };
    let mirroring = format!(
        "mirroring {} -> {} with {ready_pods}/{wanted} mirror pods ready",
        plan.reading().describe(),
        plan.writing().describe()
    );
    let ready = if !pods_ready {
        DesiredCondition::new(READY, false, reason::MIRROR_STARTING, mirroring.clone())
    } else if degraded.status {
        DesiredCondition::new(
            READY,
            false,
            degraded.reason.clone(),
            degraded.message.clone(),
        )
    } else {
        DesiredCondition::new(READY, true, reason::MIRRORING, mirroring.clone())
    };
    let progressing = if pods_ready {
        DesiredCondition::new(
            PROGRESSING,
            false,
            reason::RECONCILED,
            "the mirror matches its spec",
        )
    } else {
        DesiredCondition::new(PROGRESSING, true, reason::MIRROR_STARTING, mirroring)
    };
    let phase = if reading.ok().is_some() {
        MirrorPhase::Mirroring
    } else {
        MirrorPhase::Degraded
    };
    MirrorFlowStatus {
        observed_generation: generation,
        conditions: conditions::merge(
            &previous.conditions,
            &[ready, progressing, degraded],
            generation,
            Timestamp::now(),
        ),
        phase: Some(phase),
        active_cluster: Some(plan.active()),
        lag_records: lags.as_deref().map(lag::total),
        last_checkpoint_time: previous.last_checkpoint_time.clone(),
        last_failover: previous.last_failover.clone(),
    }
}

/// The side named in `status.activeCluster`, for messages.
pub fn side_label(side: ActiveSide) -> &'static str {
    match side {
        ActiveSide::Source => "source",
        ActiveSide::Target => "target",
    }
}

async fn write_status(
    api: &Api<MirrorFlow>,
    flow: &MirrorFlow,
    status: MirrorFlowStatus,
) -> Result<(), Error> {
    if flow.status.as_ref() == Some(&status) {
        return Ok(());
    }
    match api
        .patch_status(
            &flow.name_any(),
            &PatchParams::apply(names::FIELD_MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": strata_api::API_VERSION,
                "kind": "MirrorFlow",
                "status": status,
            })),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Deleted meanwhile: nothing left to report on.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(kube_err("writing status")(e)),
    }
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

    #[tokio::test]
    async fn creates_children_in_order_and_reports_lag() {
        let (api, admin, ctx) = setup(preserve(), None);
        run(&api, &ctx).await.expect("reconciled");
        assert_eq!(
            writes(&api),
            [
                format!("PATCH /api/v1/namespaces/{NS}/configmaps/f-mirror-config"),
                format!("PATCH /api/v1/namespaces/{NS}/services/f-mirror"),
                format!("PATCH /apis/apps/v1/namespaces/{NS}/statefulsets/f-mirror"),
                format!("PATCH /api/v1/namespaces/{NS}/services/kafka-active"),
                format!("PATCH {}/status", flow_path()),
            ]
        );
        // Every child is controlled by the flow.
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
        let status = stored(&api);
        assert_eq!(status.active_cluster, Some(ActiveSide::Source));
        assert_eq!(status.phase, Some(MirrorPhase::Mirroring));
        assert_eq!(status.lag_records, Some(3 + 4));
        assert_eq!(condition(&api, READY).1, reason::MIRROR_STARTING);
        assert_eq!(condition(&api, PROGRESSING).0, "True");
        assert!(admin.calls.lock().contains(&format!("probe {EAST}")));

        // The pods come up and the standby catches up: Ready.
        settle(&api);
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

        // Nothing changed: nothing is written but the (identical) applies.
        api.clear_log();
        run(&api, &ctx).await.expect("reconciled");
        assert!(!writes(&api).iter().any(|w| w.ends_with("/status")));
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
        let (api, admin, ctx) = setup(preserve(), None);
        admin.sides.lock().remove(EAST);
        run(&api, &ctx).await.expect("reconciled");
        let status = stored(&api);
        assert_eq!(status.phase, Some(MirrorPhase::Degraded));
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
        let (api, _admin, ctx) = setup(preserve(), Some(json!({"activeCluster": "target"})));
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
        let (api, _admin, ctx) = setup(preserve(), None);
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
                          "failover": {"discoveryService": "kafka-active"}});
        let (api, admin, ctx) = setup(spec.clone(), Some(json!({"activeCluster": "target"})));
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
