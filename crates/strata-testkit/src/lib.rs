//! Test support shared by the workspace's tests, each piece written once: [`TestBroker`], a
//! Strata broker running in the test's own process on a loopback port with its data in a
//! temporary directory, [`TestCluster`], several such brokers forming one replicated cluster
//! (all controller voters), [`wait_for`], the deadline-bounded poll that replaces sleeps as
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

/// In-process brokers forming one cluster: node ids 1..=n, by default every one a controller
/// voter (`process.roles=broker,controller`), configured as Kafka KRaft nodes are; their directories
/// live as long as the value does.
pub struct TestCluster {
    pub brokers: Vec<BrokerHandle>,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts `n` brokers and returns once each is registered, unfenced and sees all of them;
    /// `extra` are broker properties (`key=value`) given to every broker.
    pub async fn start(n: usize, extra: &[&str]) -> TestCluster {
        TestCluster::start_with_voters(n, n, extra).await
    }

    /// Like [`TestCluster::start`], with only nodes `1..=voters` controller voters; the others
    /// are brokers only (`process.roles=broker`, no controller listener) that follow the quorum
    /// as observers.
    pub async fn start_with_voters(n: usize, voters: usize, extra: &[&str]) -> TestCluster {
        assert!((1..=n).contains(&voters), "1..={n} voters");
        let dir = tempfile::tempdir().expect("temp dir");
        // Ports are chosen up front (brokers advertise them); a port taken meanwhile fails the
        // start, and the whole cluster is tried again on other ports.
        let mut last_error = None;
        for _ in 0..3 {
            let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
            let quorum = ports
                .iter()
                .take(voters)
                .enumerate()
                .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
                .collect::<Vec<_>>()
                .join(",");
            let mut brokers = Vec::new();
            for (i, (port, controller)) in ports.iter().enumerate() {
                let node = i + 1;
                let (roles, listeners) = if node <= voters {
                    (
                        "broker,controller",
                        format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}"),
                    )
                } else {
                    ("broker", format!("PLAINTEXT://127.0.0.1:{port}"))
                };
                let mut props = vec![
                    format!("node.id={node}"),
                    format!("process.roles={roles}"),
                    format!("listeners={listeners}"),
                    format!("advertised.listeners=PLAINTEXT://127.0.0.1:{port}"),
                    format!("controller.quorum.voters={quorum}"),
                    "controller.listener.names=CONTROLLER".to_string(),
                    "inter.broker.listener.name=PLAINTEXT".to_string(),
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
                        .to_string(),
                    "cluster.id=q1Sh-9_ISia_zwGINzRvyQ".to_string(),
                    format!(
                        "log.dirs={}",
                        dir.path().join(format!("node{node}")).display()
                    ),
                    "group.initial.rebalance.delay.ms=0".to_string(),
                    "offsets.topic.num.partitions=2".to_string(),
                    format!("offsets.topic.replication.factor={}", n.min(3)),
                    "num.partitions=1".to_string(),
                    // The last voters to stop have no quorum to move their leaderships: do
                    // not wait the default 10 s for it.
                    "controlled.shutdown.timeout.ms=2000".to_string(),
                ];
                props.extend(extra.iter().map(|s| s.to_string()));
                let config = BrokerConfig::load(None, &props).expect("broker config");
                match strata_broker::start(config).await {
                    Ok(handle) => brokers.push(handle),
                    Err(e) => {
                        last_error = Some(e);
                        break;
                    }
                }
            }
            if brokers.len() < n {
                for b in brokers.into_iter().rev() {
                    b.shutdown().await;
                }
                continue;
            }
            let ids: Vec<i32> = (1..=n as i32).collect();
            let formed = async {
                for b in &brokers {
                    b.wait_ready().await?;
                }
                for b in &brokers {
                    b.wait_sees_live(&ids).await?;
                }
                anyhow::Ok(())
            };
            match tokio::time::timeout(Duration::from_secs(60), formed).await {
                Ok(Ok(())) => return TestCluster { brokers, _dir: dir },
                Ok(Err(e)) => panic!("the {n} brokers did not form a cluster: {e:#}"),
                Err(_) => panic!("the {n} brokers did not form a cluster within 60 s"),
            }
        }
        panic!("cluster did not start: {last_error:?}");
    }

    /// `127.0.0.1:<port>` of every broker, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(|b| b.local_addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Stops the brokers, the highest node id first (controlled shutdowns, the quorum last).
    pub async fn stop(self) {
        for b in self.brokers.into_iter().rev() {
            b.shutdown().await;
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
