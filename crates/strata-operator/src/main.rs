//! `strata-operator`: argument parsing, logging and signals; everything else is library code.
//!
//! `run` reconciles KafkaCluster, KafkaTopic and MirrorFlow resources; `render` prints the child objects
//! the operator would create for a custom-resource file, with no cluster needed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};
use strata_operator::cluster::plan::{BrokerCapabilities, PlanContext};
use strata_operator::context::Timing;
use strata_operator::kafka::BootstrapResolver;
use strata_operator::runtime::{self, RunConfig};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "strata-operator",
    version,
    about = "Kubernetes operator for Strata Kafka clusters"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Reconcile KafkaCluster, KafkaTopic and MirrorFlow resources (in or out of cluster; uses the
    /// in-cluster service account or $KUBECONFIG).
    Run(RunArgs),
    /// Print the objects the operator would create for the custom resources in a file.
    Render(RenderArgs),
}

#[derive(clap::Args, Debug)]
struct Common {
    /// Image of the broker pods when a KafkaCluster sets none.
    #[arg(long, env = "STRATA_BROKER_IMAGE", default_value_t = default_image())]
    broker_image: String,
    /// DNS domain of the Kubernetes cluster, used in broker addresses.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Namespace to watch; repeat for several. None watches all namespaces.
    #[arg(
        long = "namespace",
        env = "STRATA_WATCH_NAMESPACES",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,
    /// Run the controllers only while holding the leader Lease.
    #[arg(long, env = "STRATA_LEADER_ELECTION", default_value_t = true, action = ArgAction::Set)]
    leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "STRATA_LEASE_NAME", default_value = "strata-operator")]
    lease_name: String,
    /// Namespace of the leader-election Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Identity in the Lease; defaults to the host name.
    #[arg(long, env = "POD_NAME")]
    holder_id: Option<String>,
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "STRATA_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// TEST ONLY: send the Kafka admin calls for cluster NAMESPACE/NAME to HOST:PORT instead of
    /// its bootstrap Service, for end-to-end tests whose broker pods are simulated.
    #[arg(
        long = "kafka-bootstrap-override",
        value_name = "NAMESPACE/NAME=HOST:PORT",
        env = "STRATA_TEST_BOOTSTRAP_OVERRIDES",
        value_delimiter = ','
    )]
    bootstrap_overrides: Vec<String>,
    /// Seconds between re-checks while a rollout or pod start is under way.
    #[arg(long, default_value_t = 5, hide = true)]
    progress_interval: u64,
    /// Seconds a rolling restart may wait for the cluster to be fully replicated before the
    /// wait is reported as `Degraded=True RestartStalled` (it keeps waiting).
    #[arg(long, env = "STRATA_RESTART_WAIT_DEADLINE", default_value_t = 600)]
    restart_wait_deadline: u64,
    /// Seconds between checks of a reachable cluster for partitions below
    /// `min.insync.replicas` or without a leader (`Degraded=True UnderMinIsrPartitions`).
    #[arg(long, env = "STRATA_HEALTH_INTERVAL", default_value_t = 30)]
    health_interval: u64,
}

#[derive(clap::Args, Debug)]
struct RenderArgs {
    #[command(flatten)]
    common: Common,
    /// File with KafkaCluster / KafkaTopic / MirrorFlow resources (multi-document YAML);
    /// `-` reads standard input.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
}

fn default_image() -> String {
    format!("ghcr.io/strata-dev/strata:{}", env!("CARGO_PKG_VERSION"))
}

fn plan_context(common: &Common) -> PlanContext {
    PlanContext {
        broker_image: common.broker_image.clone(),
        cluster_domain: common.cluster_domain.clone(),
        capabilities: BrokerCapabilities::CURRENT,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Command::Render(render) => {
            let text = if render.file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&render.file)
            };
            let text = match text {
                Ok(t) => t,
                Err(e) => {
                    eprintln!(
                        "strata-operator: cannot read {}: {e}",
                        render.file.display()
                    );
                    return ExitCode::from(2);
                }
            };
            match strata_operator::render::render(&text, &plan_context(&render.common)) {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("strata-operator: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run(run) => {
            strata_process::init_logging();
            let resolver = match BootstrapResolver::with_overrides(
                run.bootstrap_overrides.iter().map(String::as_str),
            ) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("strata-operator: {e}");
                    return ExitCode::from(2);
                }
            };
            if !run.bootstrap_overrides.is_empty() {
                tracing::warn!(overrides = ?run.bootstrap_overrides,
                    "test-only Kafka bootstrap overrides in effect");
            }
            let holder_id = run.holder_id.clone().unwrap_or_else(hostname);
            let config = RunConfig {
                namespaces: run
                    .namespaces
                    .iter()
                    .filter(|n| !n.is_empty())
                    .cloned()
                    .collect(),
                leader_election: run.leader_election,
                lease_name: run.lease_name.clone(),
                lease_namespace: run.lease_namespace.clone(),
                holder_id,
                metrics_addr: run.metrics_addr,
                plan: plan_context(&run.common),
                resolver,
                timing: Timing {
                    progress: std::time::Duration::from_secs(run.progress_interval.max(1)),
                    restart_wait_deadline: std::time::Duration::from_secs(
                        run.restart_wait_deadline,
                    ),
                    health: std::time::Duration::from_secs(run.health_interval.max(1)),
                    ..Timing::default()
                },
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("strata-operator: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(async move {
                let shutdown = CancellationToken::new();
                let signals = shutdown.clone();
                tokio::spawn(async move {
                    let signal = strata_process::shutdown_signal().await;
                    tracing::info!(%signal, "shutting down");
                    signals.cancel();
                });
                match runtime::run(config, shutdown).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!(error = %e, "operator stopped");
                        ExitCode::FAILURE
                    }
                }
            })
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("strata-operator-{}", std::process::id()))
}
