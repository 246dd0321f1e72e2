//! Strata's Kafka-wire-compatible broker as a library: the binary and the `strata dev` runner
//! both call [`start`], which opens the log directory and the metadata quorum, binds every
//! listener (client listeners and the CONTROLLER listener of a voter) and returns a handle;
//! [`BrokerHandle::wait_ready`] waits until the controller has unfenced the broker (with
//! `strata.metrics.address` set, `/metrics`, `/healthz` and `/readyz` are served from the
//! start, so a probe sees the broker register and catch up), and
//! [`BrokerHandle::shutdown`] shuts it down gracefully (controlled shutdown: leaderships move
//! away first; then stop accepting, let in-flight requests finish, flush every log).

pub mod authz;
pub mod broker;
pub mod cluster;
pub mod codes;
pub mod config;
pub mod exposition;
pub mod fetch_session;
pub mod handlers;
pub mod metrics;
pub mod mirror_target;
pub mod partition;
pub mod replica_selector;
pub mod sasl;
pub mod server;
pub mod ssl_principal;
pub mod tls;
pub mod topic_config;
pub mod write_fence;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

pub use broker::Broker;
pub use config::BrokerConfig;

use crate::handlers::api_versions::ListenerKind;
use crate::server::ListenerScope;

/// A running broker.
pub struct BrokerHandle {
    pub broker: Arc<Broker>,
    /// The address the client listener is bound to.
    pub local_addr: SocketAddr,
    /// The address `/metrics`, `/healthz` and `/readyz` are served on (`strata.metrics.address`).
    pub metrics_addr: Option<SocketAddr>,
    tracker: TaskTracker,
    /// Tasks that end with the broker (lifecycle, reconcile, fetchers, ISR).
    background: TaskTracker,
}

/// Opens the broker's storage and quorum, binds its listeners and starts serving. A single-node
/// broker (no `process.roles`) returns once it serves; a cluster member returns at once (its
/// peers may not run yet): [`BrokerHandle::wait_ready`] waits for it to join.
pub async fn start(config: BrokerConfig) -> anyhow::Result<BrokerHandle> {
    let mut bound = Vec::new();
    for l in &config.listeners {
        let tls = match config.tls.get(&l.name) {
            Some(settings) => Some(
                tls::TlsListener::load(settings.clone())
                    .map_err(|e| anyhow::anyhow!("listener {} (SSL): {e}", l.name))?,
            ),
            None => None,
        };
        let addr = l.bind_addr()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({}): {e}", l.name))?;
        let roles = config.cluster.roles;
        let scope = if config.is_controller_listener(&l.name) {
            ListenerScope {
                kind: ListenerKind::Controller,
                // A voter takes Raft traffic only through its controller listener.
                raft: roles.is_some_and(|r| r.controller),
            }
        } else {
            ListenerScope {
                kind: ListenerKind::Broker,
                // A broker that is not a voter follows the quorum as an observer: the leader
                // replicates to it at its inter-broker endpoint (it has no controller listener).
                raft: roles.is_some_and(|r| !r.controller)
                    && l.name
                        .eq_ignore_ascii_case(&config.cluster.inter_broker_listener),
            }
        };
        let sasl = config.sasl.get(&l.name).cloned().map(Arc::new);
        bound.push((l.name.clone(), scope, listener, tls, sasl));
    }
    let client_name = config.client_listener().name.clone();
    let standalone = config.cluster.roles.is_none();
    let broker = Broker::open(config).await?;
    let metrics_addr = match broker.config.metrics_address {
        Some(addr) => {
            let exposition = Arc::new(exposition::BrokerExposition::new(broker.clone()));
            let (bound, _task) =
                strata_process::serve_endpoints(addr, exposition, broker.shutdown.clone())
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot serve metrics on {addr} (strata.metrics.address): {e}"
                        )
                    })?;
            Some(bound)
        }
        None => None,
    };
    let tracker = TaskTracker::new();
    let background = TaskTracker::new();
    let mut local_addr = None;
    for (name, scope, listener, tls, sasl) in bound {
        if name == client_name && local_addr.is_none() {
            local_addr = Some(listener.local_addr()?);
        }
        if let Some(tls) = &tls {
            tracker.spawn(tls.clone().watch(broker.shutdown.clone()));
        }
        tracker.spawn(server::serve(
            broker.clone(),
            listener,
            tracker.clone(),
            scope,
            Arc::from(name.as_str()),
            tls,
            sasl,
        ));
    }
    let local_addr = local_addr.ok_or_else(|| anyhow::anyhow!("no client listener"))?;
    let fetchers = cluster::fetcher::Fetchers::new(broker.clone());
    background.spawn(cluster::lifecycle::run(broker.clone()));
    background.spawn(cluster::reconcile::run(broker.clone(), fetchers));
    if metrics_addr.is_some() {
        // Only the group lag gauge reads them.
        background.spawn(cluster::end_offsets::run(broker.clone()));
    }
    if let Some(rx) = broker.isr_rx.lock().take() {
        background.spawn(cluster::isr::run(broker.clone(), rx));
    }
    tracker.spawn(broker.clone().run_maintenance());
    tracing::info!(
        node_id = broker.config.node_id,
        listener = %local_addr,
        metrics = ?metrics_addr,
        advertised = %format!("{}:{}", broker.config.advertised().host, broker.config.advertised().port),
        log_dir = %broker.config.log_dir.display(),
        cluster_id = %broker.cluster_id(),
        roles = ?broker.config.cluster.roles,
        "broker started"
    );
    let handle = BrokerHandle {
        broker,
        local_addr,
        metrics_addr,
        tracker,
        background,
    };
    if standalone {
        handle.wait_ready().await?;
        handle.broker.migrate_legacy_metadata().await?;
        // A single node has every broker its offsets topic needs: create it now, as a
        // single-node broker always has, so group requests work without a FindCoordinator.
        if !handlers::groups::ensure_offsets_topic(&handle.broker).await {
            anyhow::bail!("cannot create {}", broker::OFFSETS_TOPIC);
        }
        handle.broker.serving.send_replace(true);
    }
    Ok(handle)
}

impl BrokerHandle {
    /// Waits until the controller has registered and unfenced this broker.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let mut ready = self.broker.ready.subscribe();
        tokio::select! {
            r = ready.wait_for(|r| *r) => r.map(|_| ()).map_err(|_| anyhow::anyhow!("broker stopped")),
            _ = self.broker.shutdown.cancelled() => anyhow::bail!("broker stopped before it was ready"),
        }
    }

    /// Waits until this broker's metadata image shows each of `ids` registered and unfenced
    /// (what its Metadata and DescribeCluster answers list).
    pub async fn wait_sees_live(&self, ids: &[i32]) -> anyhow::Result<()> {
        let mut image = self.broker.watch_image();
        tokio::select! {
            r = image.wait_for(|i| ids.iter().all(|id| i.brokers.get(id).is_some_and(|b| !b.fenced))) => {
                r.map(|_| ()).map_err(|_| anyhow::anyhow!("broker stopped"))
            }
            _ = self.broker.shutdown.cancelled() => anyhow::bail!("broker stopped before it saw the cluster"),
        }
    }

    /// Graceful shutdown: controlled shutdown first (the controller moves this broker's
    /// leaderships away, within `controlled.shutdown.timeout.ms`), then stop accepting and
    /// reading new requests, wait (up to the grace period) for requests in flight, and flush
    /// every log.
    pub async fn shutdown(self) {
        let grace = Duration::from_millis(self.broker.config.shutdown_grace_ms);
        if self.broker.config.cluster.roles.is_some() {
            self.broker.shutting_down.store(true, Ordering::Release);
            let partitions = self.broker.partitions.clone();
            let broker = self.broker.clone();
            let released = async {
                loop {
                    // Released by the controller, or nothing left to lead.
                    if broker.released.load(Ordering::Acquire)
                        || partitions.all().iter().all(|p| !p.is_leader())
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
            if tokio::time::timeout(grace, released).await.is_err() {
                tracing::warn!("controlled shutdown: leaderships not moved within the timeout");
            }
        }
        self.broker.shutdown.cancel();
        self.broker.groups.shutdown();
        self.tracker.close();
        self.background.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish within the grace period");
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.background.wait()).await;
        let broker = self.broker.clone();
        let _ = tokio::task::spawn_blocking(move || {
            broker.partitions.flush_all();
            if let Err(e) = broker.partitions.checkpoint_high_watermarks() {
                tracing::warn!(error = %e, "cannot checkpoint high watermarks");
            }
        })
        .await;
        self.broker.quorum.shutdown().await;
        tracing::info!("broker stopped");
    }
}
