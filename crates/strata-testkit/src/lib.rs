//! Test support shared by the workspace's tests, each piece written once: [`TestBroker`], a
//! Strata broker running in the test's own process on a loopback port with its data in a
//! temporary directory, [`wait_for`], the deadline-bounded poll that replaces sleeps as
//! synchronisation, and [`free_port`]. A dev-dependency only: nothing in a shipped binary uses it.

use std::time::Duration;

use strata_broker::{BrokerConfig, BrokerHandle};
use strata_client::{Client, ClientConfig};

/// An in-process broker; its directory lives as long as it does.
pub struct TestBroker {
    pub handle: Option<BrokerHandle>,
    /// `127.0.0.1:<port>`, what the broker advertises.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    /// Starts a single-node broker with quick group joins; `extra` are broker properties
    /// (`key=value`) on top.
    pub async fn start(extra: &[&str]) -> TestBroker {
        let dir = tempfile::tempdir().expect("temp dir");
        // The broker advertises its configured port, so the port is chosen up front: bind an
        // ephemeral port, release it, and let the broker take it (retried if someone else did).
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port();
            let mut props = vec![
                "node.id=1".to_string(),
                format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
                format!("log.dirs={}", dir.path().display()),
                "group.initial.rebalance.delay.ms=0".to_string(),
                "offsets.topic.num.partitions=2".to_string(),
                "num.partitions=1".to_string(),
            ];
            props.extend(extra.iter().map(|s| s.to_string()));
            let config = BrokerConfig::load(None, &props).expect("broker config");
            match strata_broker::start(config).await {
                Ok(handle) => {
                    return TestBroker {
                        addr: handle.local_addr.to_string(),
                        handle: Some(handle),
                        _dir: dir,
                    }
                }
                Err(e) => last_error = Some(e),
            }
        }
        panic!("broker did not start: {last_error:?}");
    }

    /// Client settings for this broker with short timeouts and backoffs.
    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new([self.addr.clone()]);
        c.request_timeout = Duration::from_secs(10);
        c.retry_backoff = Duration::from_millis(20);
        c.retry_backoff_max = Duration::from_millis(200);
        c
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.config())
            .await
            .expect("client connects")
    }

    /// Graceful shutdown; the directory stays until the value is dropped.
    pub async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }
}

/// Polls `check` every 20 ms until it returns `Some`; panics naming `what` at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
        .port()
}
