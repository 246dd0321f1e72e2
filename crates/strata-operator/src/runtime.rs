//! The operator process: metrics/health endpoints, leader election, and the three controllers
//! (`KafkaCluster`, `KafkaTopic`, `MirrorFlow`) per watched namespace scope. Controllers run only while this
//! process holds the leader Lease; losing it ends the process (it restarts as a candidate), so
//! two replicas never act at once. SIGTERM stops the controllers gracefully (in-flight
//! reconciliations finish), releases the Lease so a standby takes over at once, then exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use strata_api::{KafkaCluster, KafkaTopic, MirrorFlow};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cluster::plan::PlanContext;
use crate::context::{object_key, Context, ErrorBackoff, Timing};
use crate::kafka::{BootstrapResolver, ClientAdmin};
use crate::leader::{LeaderElection, LeaseTiming};
use crate::metrics::Metrics;
use crate::{cluster, flow, names, topic};

/// Everything `strata-operator run` is configured with.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Namespaces to watch; empty watches all namespaces.
    pub namespaces: Vec<String>,
    pub leader_election: bool,
    pub lease_name: String,
    pub lease_namespace: String,
    pub holder_id: String,
    pub metrics_addr: SocketAddr,
    pub plan: PlanContext,
    pub resolver: BootstrapResolver,
    pub timing: Timing,
}

/// Runs the operator until `shutdown` fires or leadership is lost.
pub async fn run(config: RunConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::new());
    let (addr, http) =
        strata_process::serve_endpoints(config.metrics_addr, metrics.clone(), shutdown.clone())
            .await?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    // A standby that waits for the Lease is healthy and ready: it is doing its job.
    metrics.set_ready(true);

    let (leading_tx, mut leading_rx) = watch::channel(!config.leader_election);
    let stop_controllers = CancellationToken::new();
    // The election outlives the controllers: the Lease is released only after they stopped, so a
    // standby never starts while this process may still act.
    let stop_election = CancellationToken::new();
    let mut election = if config.leader_election {
        let api: Api<Lease> = Api::namespaced(client.clone(), &config.lease_namespace);
        let election = LeaderElection::new(
            api,
            &config.lease_name,
            &config.holder_id,
            LeaseTiming::default(),
        );
        tracing::info!(lease = %config.lease_name, namespace = %config.lease_namespace,
            holder = %config.holder_id, "waiting for leadership");
        Some(tokio::spawn(
            election.run(leading_tx, stop_election.clone()),
        ))
    } else {
        None
    };

    // Wait until we lead (or are told to stop). A closed channel means the election task
    // died: never act without the Lease.
    let mut result = Ok(());
    let leading = tokio::select! {
        _ = shutdown.cancelled() => false,
        led = leading_rx.wait_for(|l| *l) => match led {
            Ok(_) => true,
            Err(_) => {
                result = Err(anyhow::anyhow!("leader election stopped before acquiring the Lease"));
                false
            }
        },
    };
    if leading {
        metrics.set_leader(true);
        let ctx = Arc::new(Context {
            client: client.clone(),
            admin: Arc::new(ClientAdmin::default()),
            resolver: config.resolver.clone(),
            plan: config.plan.clone(),
            metrics: metrics.clone(),
            reporter: Reporter {
                controller: "strata-operator".to_owned(),
                instance: Some(config.holder_id.clone()),
            },
            backoff: ErrorBackoff::default(),
            timing: config.timing.clone(),
            health: Arc::default(),
        });
        let mut controllers = tokio::spawn(run_controllers(
            config.namespaces.clone(),
            ctx,
            stop_controllers.clone(),
        ));
        let mut lost = false;
        // Run until SIGTERM, or until the election ends early: that only happens when the
        // Lease was lost, and then this process must stop acting at once.
        match election.as_mut() {
            Some(handle) => {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    joined = handle => {
                        election = None;
                        lost = true;
                        result = match joined {
                            Ok(Err(e)) => Err(anyhow::Error::new(e)),
                            Ok(Ok(())) => Ok(()),
                            Err(e) => Err(anyhow::Error::new(e)),
                        };
                    }
                }
            }
            None => shutdown.cancelled().await,
        }
        stop_controllers.cancel();
        // In-flight reconciliations get a grace period, unless the Lease was lost: another
        // replica may already hold it, so then this process stops acting at once. A
        // controller stuck waiting (e.g. for a watch that never became ready) is aborted.
        let stopped = !lost
            && tokio::time::timeout(CONTROLLER_STOP_GRACE, &mut controllers)
                .await
                .is_ok();
        if !stopped {
            if !lost {
                tracing::warn!(grace = ?CONTROLLER_STOP_GRACE, "controllers did not stop in time");
            }
            // Aborting drops the JoinSet inside, which aborts every controller task; wait for
            // that before the Lease is released.
            controllers.abort();
            let _ = controllers.await;
        }
        metrics.set_leader(false);
    }
    stop_election.cancel();
    if let Some(handle) = election {
        let _ = handle.await;
    }
    shutdown.cancel();
    let _ = http.await;
    result
}

/// How long shutdown waits for the controllers to finish in-flight work.
const CONTROLLER_STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs the controllers for every namespace scope until `stop` fires.
async fn run_controllers(namespaces: Vec<String>, ctx: Arc<Context>, stop: CancellationToken) {
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().cloned().map(Some).collect()
    };
    // A JoinSet, so that aborting this future aborts every controller task with it.
    let mut tasks = tokio::task::JoinSet::new();
    for scope in scopes {
        tasks.spawn(cluster_controller(ctx.clone(), scope.clone(), stop.clone()));
        tasks.spawn(topic_controller(ctx.clone(), scope.clone(), stop.clone()));
        tasks.spawn(flow_controller(ctx.clone(), scope, stop.clone()));
    }
    while tasks.join_next().await.is_some() {}
}

fn api<K>(client: &Client, scope: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn cluster_controller(ctx: Arc<Context>, scope: Option<String>, stop: CancellationToken) {
    let client = &ctx.client;
    let managed = watcher::Config::default().labels(&names::managed_selector());
    Controller::new(api::<KafkaCluster>(client, &scope), watcher::Config::default())
        .owns(api::<StatefulSet>(client, &scope), managed.clone())
        .owns(api::<ConfigMap>(client, &scope), managed.clone())
        .owns(api::<Service>(client, &scope), managed.clone())
        .owns(api::<PodDisruptionBudget>(client, &scope), managed.clone())
        // The certificates of secured clusters: a deleted one is issued again at once.
        .owns(api::<Secret>(client, &scope), managed.clone())
        // Pods belong to StatefulSets, not to the cluster: map them back by label.
        .watches(api::<Pod>(client, &scope), managed, |pod: Pod| {
            let cluster = pod.labels().get(names::CLUSTER_LABEL).cloned();
            let namespace = pod.namespace();
            cluster.map(|c| ObjectRef::<KafkaCluster>::new(&c).within(namespace.as_deref().unwrap_or("default")))
        })
        // A flow's discovery Service is among its clusters' listener certificate names: a flow
        // that names one re-triggers its clusters (also on its status writes; a cluster's
        // reconcile is idempotent, and a plaintext cluster reads no flow).
        .watches(api::<MirrorFlow>(client, &scope), watcher::Config::default(), |flow: MirrorFlow| {
            let namespace = flow.namespace().unwrap_or_else(|| "default".to_owned());
            let clusters = if flow.spec.failover.discovery_service.is_some() {
                vec![flow.spec.source.cluster_ref, flow.spec.target.cluster_ref]
            } else {
                Vec::new()
            };
            clusters
                .into_iter()
                .flatten()
                .map(move |r| ObjectRef::<KafkaCluster>::new(&r.name).within(&namespace))
        })
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile_cluster, cluster_error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(controller = cluster::reconcile::CONTROLLER, error = %e, "controller event");
            }
        })
        .await;
}

async fn topic_controller(ctx: Arc<Context>, scope: Option<String>, stop: CancellationToken) {
    let client = &ctx.client;
    let controller = Controller::new(
        api::<KafkaTopic>(client, &scope),
        watcher::Config::default(),
    );
    let topics = controller.store();
    // A cluster that appears or changes (e.g. becomes reachable) re-triggers its topics.
    controller
        .watches(
            api::<KafkaCluster>(client, &scope),
            watcher::Config::default(),
            move |kc: KafkaCluster| {
                let namespace = kc.namespace();
                let name = kc.name_any();
                topics
                    .state()
                    .into_iter()
                    .filter(|t| t.namespace() == namespace && t.spec.cluster_ref.name == name)
                    .map(|t| ObjectRef::from_obj(&*t))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile_topic, topic_error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(controller = topic::reconcile::CONTROLLER, error = %e, "controller event");
            }
        })
        .await;
}

async fn flow_controller(ctx: Arc<Context>, scope: Option<String>, stop: CancellationToken) {
    let client = &ctx.client;
    let managed = watcher::Config::default().labels(&names::managed_selector());
    let controller = Controller::new(
        api::<MirrorFlow>(client, &scope),
        watcher::Config::default(),
    );
    let flows = controller.store();
    controller
        .owns(api::<StatefulSet>(client, &scope), managed.clone())
        .owns(api::<ConfigMap>(client, &scope), managed.clone())
        .owns(api::<Service>(client, &scope), managed.clone())
        .owns(api::<EndpointSlice>(client, &scope), managed)
        // A referenced cluster that appears or changes (its racks, its address) re-triggers
        // the flows that name it.
        .watches(
            api::<KafkaCluster>(client, &scope),
            watcher::Config::default(),
            move |kc: KafkaCluster| {
                let namespace = kc.namespace();
                let name = kc.name_any();
                flows
                    .state()
                    .into_iter()
                    .filter(|f| {
                        f.namespace() == namespace
                            && [&f.spec.source, &f.spec.target]
                                .iter()
                                .any(|s| s.cluster_ref.as_ref().is_some_and(|r| r.name == name))
                    })
                    .map(|f| ObjectRef::from_obj(&*f))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile_flow, flow_error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(controller = flow::reconcile::CONTROLLER, error = %e, "controller event");
            }
        })
        .await;
}

/// Runs one reconcile of `controller` with its metrics and per-object backoff bookkeeping.
async fn measured<K, E, F>(
    controller: &'static str,
    obj: Arc<K>,
    ctx: Arc<Context>,
    reconcile: impl FnOnce(Arc<K>, Arc<Context>) -> F,
) -> Result<Action, E>
where
    K: kube::Resource,
    F: std::future::Future<Output = Result<Action, E>>,
{
    let started = Instant::now();
    let key = format!("{controller}:{}", object_key(&*obj));
    let result = reconcile(obj, ctx.clone()).await;
    ctx.metrics.reconciled(controller, started.elapsed());
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    result
}

/// After a failed reconcile of `controller`: counts it and requeues after the object's backoff.
fn requeue_failed<K: kube::Resource>(
    controller: &'static str,
    obj: &K,
    reason: &'static str,
    error: &dyn std::fmt::Display,
    ctx: &Context,
) -> Action {
    let key = format!("{controller}:{}", object_key(obj));
    ctx.metrics.failed(controller, reason);
    let delay = ctx.backoff.failed(&key);
    tracing::warn!(object = %key, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn reconcile_flow(
    obj: Arc<MirrorFlow>,
    ctx: Arc<Context>,
) -> Result<Action, flow::reconcile::Error> {
    measured(
        flow::reconcile::CONTROLLER,
        obj,
        ctx,
        flow::reconcile::reconcile,
    )
    .await
}

fn flow_error_policy(
    obj: Arc<MirrorFlow>,
    error: &flow::reconcile::Error,
    ctx: Arc<Context>,
) -> Action {
    requeue_failed(
        flow::reconcile::CONTROLLER,
        &*obj,
        error.reason(),
        error,
        &ctx,
    )
}

async fn reconcile_cluster(
    obj: Arc<KafkaCluster>,
    ctx: Arc<Context>,
) -> Result<Action, cluster::reconcile::Error> {
    measured(
        cluster::reconcile::CONTROLLER,
        obj,
        ctx,
        cluster::reconcile::reconcile,
    )
    .await
}

fn cluster_error_policy(
    obj: Arc<KafkaCluster>,
    error: &cluster::reconcile::Error,
    ctx: Arc<Context>,
) -> Action {
    requeue_failed(
        cluster::reconcile::CONTROLLER,
        &*obj,
        error.reason(),
        error,
        &ctx,
    )
}

async fn reconcile_topic(
    obj: Arc<KafkaTopic>,
    ctx: Arc<Context>,
) -> Result<Action, topic::reconcile::Error> {
    measured(
        topic::reconcile::CONTROLLER,
        obj,
        ctx,
        topic::reconcile::reconcile,
    )
    .await
}

fn topic_error_policy(
    obj: Arc<KafkaTopic>,
    error: &topic::reconcile::Error,
    ctx: Arc<Context>,
) -> Action {
    requeue_failed(
        topic::reconcile::CONTROLLER,
        &*obj,
        error.reason(),
        error,
        &ctx,
    )
}
