//! Strata's Kafka-wire-compatible broker as a library: the binary and the `strata dev` runner
//! both call [`start`], which opens the log directory, binds the client listener and returns a
//! handle that shuts the broker down gracefully (stop accepting, let in-flight requests finish,
//! flush every log).

pub mod broker;
pub mod config;
pub mod fetch_session;
pub mod handlers;
pub mod metadata;
pub mod mirror_target;
pub mod partition;
pub mod server;
pub mod topic_config;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

pub use broker::Broker;
pub use config::BrokerConfig;

/// A running broker.
pub struct BrokerHandle {
    pub broker: Arc<Broker>,
    /// The address the client listener is bound to.
    pub local_addr: SocketAddr,
    tracker: TaskTracker,
}

/// Opens the broker's storage, binds its listener and starts serving.
pub async fn start(config: BrokerConfig) -> anyhow::Result<BrokerHandle> {
    let bind = config.client_listener().bind_addr()?;
    let broker = tokio::task::spawn_blocking(move || Broker::open(config)).await??;
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    let local_addr = listener.local_addr()?;
    let tracker = TaskTracker::new();
    tracker.spawn(server::serve(broker.clone(), listener, tracker.clone()));
    tracker.spawn(broker.clone().run_maintenance());
    tracing::info!(
        node_id = broker.config.node_id,
        listener = %local_addr,
        advertised = %format!("{}:{}", broker.config.advertised().host, broker.config.advertised().port),
        log_dir = %broker.config.log_dir.display(),
        cluster_id = %broker.metadata.cluster_id(),
        "broker started"
    );
    Ok(BrokerHandle {
        broker,
        local_addr,
        tracker,
    })
}

impl BrokerHandle {
    /// Graceful shutdown: stop accepting and reading new requests, wait (up to the grace
    /// period) for requests in flight, then flush every log.
    pub async fn shutdown(self) {
        let grace = Duration::from_millis(self.broker.config.shutdown_grace_ms);
        self.broker.shutdown.cancel();
        self.broker.groups.shutdown();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish within the grace period");
        }
        let broker = self.broker.clone();
        let _ = tokio::task::spawn_blocking(move || broker.partitions.flush_all()).await;
        tracing::info!("broker stopped");
    }
}
