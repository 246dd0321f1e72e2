//! `strata dev`: a local Strata cluster on loopback with its data in a local folder. With
//! `--brokers N` the cluster is N brokers in this one process forming one Kafka cluster with a
//! KRaft-like controller quorum, each configured exactly as a Kafka KRaft node (the
//! [`DevLayout`] decides ports, roles, racks and properties; pure, unit-tested). With
//! `--standby` a second cluster that `strata-mirror` keeps in step with the first (same topic
//! names, same offsets), as an active-standby pair runs in production, with the failover engine
//! of `strata-failover` and a discovery address that leads clients to the active one (see
//! [`crate::failover`]; `strata failover --to standby` fails over).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use strata_broker::{BrokerConfig, BrokerHandle};
use strata_flow::OffsetMode;

use crate::failover::LocalFailover;

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Folder for the cluster's data (kept across runs): `broker-<i>` per broker and, with
    /// several brokers, the cluster's `cluster.id`.
    #[arg(long, default_value = ".strata-dev")]
    pub data_dir: PathBuf,
    /// Client port of the first broker; broker i serves clients on port + i - 1 and, if it is
    /// a controller voter, the quorum on port + 100 + i - 1.
    #[arg(long, default_value_t = 9092)]
    pub port: u16,
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Number of brokers, one Kafka cluster in this process. The first min(N, 3) are
    /// controller voters (`process.roles=broker,controller`); internal topics get replication
    /// factor min(N, 3) and `min.insync.replicas` min(N, 2). 1 runs a single-node broker.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=MAX_BROKERS as i64))]
    pub brokers: u16,
    /// Racks (`broker.rack`) given to the brokers round-robin, comma-separated: with
    /// `--racks a,b,c` broker 1 is in a, broker 2 in b, broker 4 in a again.
    #[arg(long, value_delimiter = ',', value_name = "RACK,...")]
    pub racks: Vec<String>,
    /// Extra broker properties, `key=value` (Kafka names), applied to every broker after the
    /// defaults above; may repeat.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Also run a standby cluster and mirror every topic and consumer group into it. Each side
    /// is a single broker: not with `--brokers` above 1.
    #[arg(long)]
    pub standby: bool,
    /// Client port of the standby's broker (default: the first cluster's port + 1).
    #[arg(long, requires = "standby")]
    pub standby_port: Option<u16>,
    /// Port of the discovery address, which relays each new connection to the active
    /// cluster (default: the first cluster's port + 2).
    #[arg(long, requires = "standby")]
    pub discovery_port: Option<u16>,
    /// Fail over by itself when the active cluster fails three probes in a row (one a second);
    /// the active cluster then holds a write mandate and fences itself when the engine is gone.
    #[arg(long, requires = "standby")]
    pub automatic_failover: bool,
}

/// Brokers `--brokers` accepts: the controller ports start 100 above the client ports.
const MAX_BROKERS: u16 = 100;
/// Distance between a broker's client port and its controller port.
const CONTROLLER_PORT_OFFSET: u16 = 100;
/// Most controller voters: three survive one lost voter, more only slow the quorum down.
const MAX_VOTERS: u16 = 3;
/// How long the brokers of a multi-broker cluster may take to register and be unfenced.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Where the cluster's id is kept, below the data folder.
const CLUSTER_ID_FILE: &str = "cluster.id";

/// The dev cluster's brokers: where they listen, which vote, which rack, where their data is.
/// Built from the arguments and checked once; everything else is derived from it. Pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevLayout {
    pub host: String,
    pub port: u16,
    pub brokers: u16,
    pub racks: Vec<String>,
    pub data_dir: PathBuf,
    /// Broker `i` keeps its data in `<data_dir>/<dir_prefix>-<i>`.
    pub dir_prefix: &'static str,
    /// `cluster.id` of a multi-broker cluster (`None` for a single broker, which keeps the id
    /// it formatted its directory with).
    pub cluster_id: Option<String>,
}

/// One broker of a [`DevLayout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevBroker {
    /// `node.id`, from 1.
    pub node_id: u16,
    /// Client (PLAINTEXT) port.
    pub port: u16,
    /// Controller-quorum port, for voters only.
    pub controller_port: Option<u16>,
    pub rack: Option<String>,
    /// `log.dirs`.
    pub dir: PathBuf,
}

impl DevLayout {
    /// Checks the ports and racks of `args`.
    pub fn new(args: &DevArgs) -> anyhow::Result<DevLayout> {
        if args.brokers == 0 || args.brokers > MAX_BROKERS {
            anyhow::bail!("--brokers {} is outside 1..={MAX_BROKERS}", args.brokers);
        }
        if args.racks.iter().any(|r| r.trim().is_empty()) {
            anyhow::bail!("--racks {:?} has an empty rack name", args.racks.join(","));
        }
        if args.brokers > 1 {
            if args.standby {
                anyhow::bail!(
                    "--standby runs one broker per cluster; drop --brokers {} or --standby",
                    args.brokers
                );
            }
            if args.port == 0 {
                anyhow::bail!("--brokers {} needs a fixed --port, not 0", args.brokers);
            }
            let last = u32::from(args.port) + u32::from(CONTROLLER_PORT_OFFSET + args.brokers) - 1;
            if last > u32::from(u16::MAX) {
                anyhow::bail!(
                    "--port {} leaves no room for {} brokers (controller ports up to {last})",
                    args.port,
                    args.brokers
                );
            }
        }
        Ok(DevLayout {
            host: args.host.clone(),
            port: args.port,
            brokers: args.brokers,
            racks: args.racks.iter().map(|r| r.trim().to_owned()).collect(),
            data_dir: args.data_dir.clone(),
            dir_prefix: "broker",
            cluster_id: None,
        })
    }

    /// Whether the brokers form a quorum (else: one single-node broker, as before quorums).
    pub fn is_quorum(&self) -> bool {
        self.brokers > 1
    }

    /// Number of controller voters: the first brokers, at most three.
    pub fn voter_count(&self) -> u16 {
        self.brokers.min(MAX_VOTERS)
    }

    /// Every broker, by node id. `new` checked that the ports fit.
    pub fn brokers(&self) -> Vec<DevBroker> {
        (1..=self.brokers)
            .map(|node_id| {
                let port = self.port + (node_id - 1);
                let voter = self.is_quorum() && node_id <= self.voter_count();
                DevBroker {
                    node_id,
                    port,
                    controller_port: voter.then(|| port + CONTROLLER_PORT_OFFSET),
                    rack: (!self.racks.is_empty())
                        .then(|| self.racks[usize::from(node_id - 1) % self.racks.len()].clone()),
                    dir: self.data_dir.join(format!("{}-{node_id}", self.dir_prefix)),
                }
            })
            .collect()
    }

    /// The host other brokers and clients reach this one at: the listen address, or loopback
    /// when listening on every address.
    fn reachable_host(&self) -> &str {
        match self.host.as_str() {
            "0.0.0.0" | "" => "127.0.0.1",
            "::" | "[::]" => "::1",
            host => host,
        }
    }

    /// `controller.quorum.voters`: `id@host:port` of each voter.
    fn quorum_voters(&self) -> String {
        self.brokers()
            .iter()
            .filter_map(|b| {
                b.controller_port
                    .map(|p| format!("{}@{}:{p}", b.node_id, self.reachable_host()))
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Each broker's properties (`key=value`, Kafka's names), by node id, before the user's
    /// `--override`s (which the broker applies after these, so they win).
    pub fn properties(&self) -> Vec<Vec<String>> {
        let host = &self.host;
        self.brokers()
            .iter()
            .map(|b| {
                let mut props = vec![format!("node.id={}", b.node_id)];
                if self.is_quorum() {
                    let mut listeners = format!("PLAINTEXT://{host}:{}", b.port);
                    let roles = match b.controller_port {
                        Some(p) => {
                            listeners.push_str(&format!(",CONTROLLER://{host}:{p}"));
                            "broker,controller"
                        }
                        None => "broker",
                    };
                    let replication = self.brokers.min(3);
                    props.extend([
                        format!("process.roles={roles}"),
                        format!("listeners={listeners}"),
                        format!(
                            "advertised.listeners=PLAINTEXT://{}:{}",
                            self.reachable_host(),
                            b.port
                        ),
                        format!("controller.quorum.voters={}", self.quorum_voters()),
                        "controller.listener.names=CONTROLLER".to_owned(),
                        "inter.broker.listener.name=PLAINTEXT".to_owned(),
                        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
                            .to_owned(),
                    ]);
                    if let Some(id) = &self.cluster_id {
                        props.push(format!("cluster.id={id}"));
                    }
                    props.extend([
                        format!("offsets.topic.replication.factor={replication}"),
                        format!("default.replication.factor={replication}"),
                        format!("min.insync.replicas={}", self.brokers.min(2)),
                    ]);
                } else {
                    props.push(format!("listeners=PLAINTEXT://{host}:{}", b.port));
                }
                if let Some(rack) = &b.rack {
                    props.push(format!("broker.rack={rack}"));
                }
                props.extend([
                    format!("log.dirs={}", b.dir.display()),
                    "group.initial.rebalance.delay.ms=0".to_owned(),
                    "offsets.topic.num.partitions=10".to_owned(),
                ]);
                props
            })
            .collect()
    }
}

/// The cluster id kept in `<data_dir>/cluster.id`, made on the first run and reused after.
/// A first run over the directory of an earlier single-broker run adopts the id that broker
/// formatted `broker-1` with (from its `meta.properties`), so the broker's data stays its own.
pub fn cluster_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(CLUSTER_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if strata_client::parse_kafka_uuid(id).is_none() {
                anyhow::bail!(
                    "{} holds {id:?}, not a Kafka cluster id (22 characters of URL-safe \
                     base64); restore it, or delete {} to start a new cluster",
                    path.display(),
                    data_dir.display()
                );
            }
            return Ok(id.to_owned());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let id = formatted_cluster_id(&data_dir.join("broker-1"))
        .unwrap_or_else(|| strata_client::kafka_uuid_string(strata_client::random_kafka_uuid()));
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    // Written aside and renamed: a crash never leaves a half-written id behind.
    let partial = data_dir.join(format!("{CLUSTER_ID_FILE}.partial"));
    std::fs::write(&partial, format!("{id}\n"))
        .and_then(|()| std::fs::rename(&partial, &path))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

/// `cluster.id` from the `meta.properties` of a formatted log directory, if it has one.
fn formatted_cluster_id(log_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log_dir.join("meta.properties")).ok()?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "cluster.id")
        .map(|(_, v)| v.trim().to_owned())
        .filter(|id| strata_client::parse_kafka_uuid(id).is_some())
}

async fn start_broker(
    properties: Vec<String>,
    overrides: &[String],
) -> anyhow::Result<BrokerHandle> {
    let mut props = properties;
    props.extend(overrides.iter().cloned());
    let config = BrokerConfig::load(None, &props)?;
    strata_broker::start(config).await
}

/// The running brokers of the first cluster, by node id.
struct RunningCluster {
    brokers: Vec<(DevBroker, BrokerHandle)>,
}

impl RunningCluster {
    /// Starts every broker, then (for a quorum) waits until each is registered and unfenced and
    /// every broker's metadata lists all of them.
    /// `start` returns once a broker's listeners are bound, without waiting for the others,
    /// so all of them start before the first wait. On failure the started ones are stopped.
    async fn start(layout: &DevLayout, overrides: &[String]) -> anyhow::Result<RunningCluster> {
        let mut cluster = RunningCluster {
            brokers: Vec::new(),
        };
        for (broker, props) in layout.brokers().into_iter().zip(layout.properties()) {
            match start_broker(props, overrides).await {
                Ok(handle) => cluster.brokers.push((broker, handle)),
                Err(e) => {
                    cluster.shutdown().await;
                    return Err(e.context(format!("starting broker {}", broker.node_id)));
                }
            }
        }
        if layout.is_quorum() {
            let ids: Vec<i32> = cluster
                .brokers
                .iter()
                .map(|(b, _)| i32::from(b.node_id))
                .collect();
            let ready = async {
                for (broker, handle) in &cluster.brokers {
                    handle
                        .wait_ready()
                        .await
                        .with_context(|| format!("broker {} did not join", broker.node_id))?;
                }
                // Every broker answers clients with the whole cluster before it is announced.
                for (broker, handle) in &cluster.brokers {
                    handle.wait_sees_live(&ids).await.with_context(|| {
                        format!("broker {} did not see the cluster", broker.node_id)
                    })?;
                }
                anyhow::Ok(())
            };
            let outcome = tokio::select! {
                r = tokio::time::timeout(READY_TIMEOUT, ready) => match r {
                    Ok(r) => r,
                    Err(_) => Err(anyhow::anyhow!(
                        "the {} brokers did not form a cluster within {} s; see the log above",
                        layout.brokers,
                        READY_TIMEOUT.as_secs()
                    )),
                },
                // Ctrl-C while the quorum forms: stop the brokers started so far.
                _ = strata_process::shutdown_signal() => Err(anyhow::anyhow!("interrupted while the brokers were starting")),
            };
            if let Err(e) = outcome {
                cluster.shutdown().await;
                return Err(e);
            }
        }
        Ok(cluster)
    }

    /// `host:port` of every broker's client listener, comma-separated.
    fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(|(_, h)| h.local_addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Stops the brokers, highest node id first: the brokers that only serve go before the
    /// controller voters, so the quorum outlives every broker's controlled shutdown.
    async fn shutdown(self) {
        for (_, handle) in self.brokers.into_iter().rev() {
            handle.shutdown().await;
        }
    }
}

pub fn run(args: DevArgs) -> anyhow::Result<()> {
    let mut layout = DevLayout::new(&args)?;
    if layout.is_quorum() {
        layout.cluster_id = Some(cluster_id(&layout.data_dir)?);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let primary = RunningCluster::start(&layout, &args.overrides).await?;
        let mut standby = None;
        if args.standby {
            let port = match args.standby_port {
                Some(p) => p,
                None => args.port.checked_add(1).ok_or_else(|| {
                    anyhow::anyhow!("--port {} leaves no port for the standby", args.port)
                })?,
            };
            // `new` refused --standby with several brokers: one single-node broker.
            let standby_layout = DevLayout {
                port,
                racks: Vec::new(),
                dir_prefix: "standby",
                ..layout.clone()
            };
            let props = standby_layout.properties().remove(0);
            let broker = start_broker(props, &args.overrides).await?;
            let discovery_port = match args.discovery_port {
                Some(p) => p,
                None => args.port.checked_add(2).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--port {} leaves no port for the discovery address",
                        args.port
                    )
                })?,
            };
            let listener = tokio::net::TcpListener::bind((args.host.as_str(), discovery_port))
                .await
                .with_context(|| {
                    format!(
                        "binding the discovery address {}:{discovery_port}",
                        args.host
                    )
                })?;
            let flow = crate::failover::flow(
                &primary.bootstrap(),
                &broker.local_addr.to_string(),
                OffsetMode::Preserve,
            );
            let failover = LocalFailover::start(
                &args.data_dir,
                strata_failover::FlowSides::new(flow),
                listener,
                args.automatic_failover,
                true,
            )
            .await?;
            standby = Some((broker, failover));
        }
        if layout.is_quorum() {
            println!(
                "Strata dev cluster is running: {} brokers, cluster.id {}.",
                layout.brokers,
                layout.cluster_id.as_deref().unwrap_or_default()
            );
        } else {
            println!("Strata dev cluster is running.");
        }
        println!("  bootstrap.servers = {}", primary.bootstrap());
        if layout.is_quorum() || !layout.racks.is_empty() {
            for (broker, handle) in &primary.brokers {
                let mut about = Vec::new();
                if let Some(rack) = &broker.rack {
                    about.push(format!("rack {rack}"));
                }
                if let Some(p) = broker.controller_port {
                    about.push(format!("controller voter (quorum port {p})"));
                }
                let label = format!("broker {}", broker.node_id);
                println!("  {label:<17} = {} {}", handle.local_addr, about.join(", "));
            }
        }
        if let Some((broker, failover)) = &standby {
            let discovery = failover.discovery;
            println!(
                "  standby           = {} (mirrored from the first: same topic names and offsets)",
                broker.local_addr
            );
            println!(
                "  discovery         = {discovery} (leads to the active cluster; \
                 `strata failover --to standby` fails over)"
            );
        }
        println!("  data              = {}", args.data_dir.display());
        println!("Press Ctrl-C to stop.");
        strata_process::shutdown_signal().await;
        // The mirror first: it commits its progress while both brokers still serve.
        if let Some((broker, failover)) = standby {
            failover.shutdown().await;
            broker.shutdown().await;
        }
        primary.shutdown().await;
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        dev: DevArgs,
    }

    fn args(line: &[&str]) -> DevArgs {
        Cli::try_parse_from(std::iter::once("dev").chain(line.iter().copied()))
            .expect("arguments parse")
            .dev
    }

    fn layout(line: &[&str]) -> DevLayout {
        DevLayout::new(&args(line)).expect("valid layout")
    }

    #[test]
    fn six_brokers_over_three_racks() {
        let mut l = layout(&[
            "--brokers",
            "6",
            "--racks",
            "a,b,c",
            "--port",
            "19092",
            "--data-dir",
            "/data",
        ]);
        l.cluster_id = Some("GMGIt6MeR5yhaNFzxj8JXA".to_owned());
        let props = l.properties();
        assert_eq!(props.len(), 6);
        let voters = "controller.quorum.voters=1@127.0.0.1:19192,2@127.0.0.1:19193,\
                      3@127.0.0.1:19194";
        assert_eq!(
            props[0],
            [
                "node.id=1",
                "process.roles=broker,controller",
                "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19192",
                "advertised.listeners=PLAINTEXT://127.0.0.1:19092",
                voters,
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "cluster.id=GMGIt6MeR5yhaNFzxj8JXA",
                "offsets.topic.replication.factor=3",
                "default.replication.factor=3",
                "min.insync.replicas=2",
                "broker.rack=a",
                "log.dirs=/data/broker-1",
                "group.initial.rebalance.delay.ms=0",
                "offsets.topic.num.partitions=10",
            ]
        );
        // Broker 4 only serves: no controller listener, same voters, rack a again.
        assert_eq!(
            props[3],
            [
                "node.id=4",
                "process.roles=broker",
                "listeners=PLAINTEXT://127.0.0.1:19095",
                "advertised.listeners=PLAINTEXT://127.0.0.1:19095",
                voters,
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "cluster.id=GMGIt6MeR5yhaNFzxj8JXA",
                "offsets.topic.replication.factor=3",
                "default.replication.factor=3",
                "min.insync.replicas=2",
                "broker.rack=a",
                "log.dirs=/data/broker-4",
                "group.initial.rebalance.delay.ms=0",
                "offsets.topic.num.partitions=10",
            ]
        );
        let get = |p: &[String], key: &str| -> String {
            p.iter()
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
                .unwrap_or_default()
                .to_owned()
        };
        let racks: Vec<String> = props.iter().map(|p| get(p, "broker.rack")).collect();
        assert_eq!(racks, ["a", "b", "c", "a", "b", "c"]);
        let roles: Vec<String> = props.iter().map(|p| get(p, "process.roles")).collect();
        assert_eq!(
            roles,
            [
                "broker,controller",
                "broker,controller",
                "broker,controller",
                "broker",
                "broker",
                "broker"
            ]
        );
        let ports: Vec<String> = props.iter().map(|p| get(p, "listeners")).collect();
        assert_eq!(ports[5], "PLAINTEXT://127.0.0.1:19097");
        assert!(props
            .iter()
            .all(|p| get(p, "cluster.id") == "GMGIt6MeR5yhaNFzxj8JXA"));
    }

    #[test]
    fn small_clusters_cap_replication_and_voters() {
        let l = layout(&["--brokers", "2"]);
        assert_eq!(l.voter_count(), 2);
        let p = &l.properties()[1];
        assert!(
            p.contains(&"process.roles=broker,controller".to_owned()),
            "{p:?}"
        );
        assert!(p.contains(&"default.replication.factor=2".to_owned()));
        assert!(p.contains(&"offsets.topic.replication.factor=2".to_owned()));
        assert!(p.contains(&"min.insync.replicas=2".to_owned()));
        assert!(
            !p.iter().any(|kv| kv.starts_with("broker.rack=")),
            "no --racks"
        );
        assert!(
            !p.iter().any(|kv| kv.starts_with("cluster.id=")),
            "none given"
        );
    }

    #[test]
    fn one_broker_is_the_single_node_broker_of_before() {
        let l = layout(&["--data-dir", "/d"]);
        assert_eq!(
            l.properties(),
            [[
                "node.id=1",
                "listeners=PLAINTEXT://127.0.0.1:9092",
                "log.dirs=/d/broker-1",
                "group.initial.rebalance.delay.ms=0",
                "offsets.topic.num.partitions=10",
            ]]
        );
        let racked = layout(&["--racks", "x"]).properties();
        assert!(racked[0].contains(&"broker.rack=x".to_owned()));
        assert!(!racked[0].iter().any(|kv| kv.starts_with("process.roles")));
    }

    #[test]
    fn listening_everywhere_advertises_loopback() {
        let l = layout(&["--brokers", "3", "--host", "0.0.0.0"]);
        let p = &l.properties()[0];
        assert!(
            p.contains(&"listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9192".to_owned())
        );
        assert!(p.contains(&"advertised.listeners=PLAINTEXT://127.0.0.1:9092".to_owned()));
        assert!(p.iter().any(|kv| kv.contains("1@127.0.0.1:9192")));
    }

    #[test]
    fn refused_layouts() {
        let refuse = |line: &[&str]| {
            DevLayout::new(&args(line))
                .expect_err("refused")
                .to_string()
        };
        assert!(refuse(&["--brokers", "3", "--standby"]).contains("--standby"));
        assert!(refuse(&["--brokers", "3", "--port", "0"]).contains("fixed --port"));
        assert!(refuse(&["--brokers", "3", "--port", "65450"]).contains("no room"));
        assert!(refuse(&["--racks", "a,,b"]).contains("empty rack"));
        // clap bounds the count.
        let cli = Cli::try_parse_from(["dev", "--brokers", "0"]);
        assert!(cli.is_err());
        let cli = Cli::try_parse_from(["dev", "--brokers", "101"]);
        assert!(cli.is_err());
        // The largest layout that fits.
        let l = layout(&["--brokers", "100", "--port", "65336"]);
        assert_eq!(l.brokers().last().map(|b| b.port), Some(65435));
    }

    #[test]
    fn cluster_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("dev");
        let id = cluster_id(&data).expect("made");
        assert!(strata_client::parse_kafka_uuid(&id).is_some(), "{id}");
        assert_eq!(cluster_id(&data).expect("read"), id);
        let text = std::fs::read_to_string(data.join(CLUSTER_ID_FILE)).expect("written");
        assert_eq!(text.trim(), id);
        std::fs::write(data.join(CLUSTER_ID_FILE), "not-an-id\n").expect("overwrite");
        let err = cluster_id(&data).expect_err("malformed").to_string();
        assert!(err.contains("not a Kafka cluster id"), "{err}");
    }

    #[test]
    fn cluster_id_adopts_a_single_broker_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = dir.path().join("broker-1");
        std::fs::create_dir_all(&broker).expect("mkdir");
        std::fs::write(
            broker.join("meta.properties"),
            "version=1\nnode.id=1\ncluster.id=GMGIt6MeR5yhaNFzxj8JXA\n",
        )
        .expect("write");
        assert_eq!(
            cluster_id(dir.path()).expect("adopted"),
            "GMGIt6MeR5yhaNFzxj8JXA"
        );
    }
}
