//! The `strata-mirror` binary: parses arguments, loads the flow, runs it until SIGTERM/SIGINT,
//! then stops gracefully (in-flight records acknowledged, progress committed).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use strata_mirror::{Mirror, MirrorConfig, PartitionAssignment, RunOptions};

#[derive(Parser, Debug)]
#[command(
    name = "strata-mirror",
    version,
    about = "MirrorMaker-2-style replication between Kafka clusters"
)]
struct Args {
    /// Flow configuration (YAML or JSON in the MirrorFlow spec shape).
    #[arg(
        long,
        conflicts_with = "mm2_properties",
        required_unless_present = "mm2_properties"
    )]
    config: Option<PathBuf>,
    /// A MirrorMaker 2 properties file; needs --source and --target.
    #[arg(long, requires_all = ["source", "target"])]
    mm2_properties: Option<PathBuf>,
    /// Source cluster alias of the flow in --mm2-properties.
    #[arg(long)]
    source: Option<String>,
    /// Target cluster alias of the flow in --mm2-properties.
    #[arg(long)]
    target: Option<String>,
    /// This process's index among --replicas (a StatefulSet ordinal).
    #[arg(long, default_value_t = 0, env = "STRATA_MIRROR_ORDINAL")]
    ordinal: u32,
    /// Number of mirror processes sharing the flow's partitions.
    #[arg(long, default_value_t = 1, env = "STRATA_MIRROR_REPLICAS")]
    replicas: u32,
    /// Serve Prometheus metrics on this address (`/metrics`).
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    strata_process::init_logging();
    let args = Args::parse();
    let config = match (
        &args.config,
        &args.mm2_properties,
        &args.source,
        &args.target,
    ) {
        (Some(path), _, _, _) => MirrorConfig::load(path)?,
        (None, Some(path), Some(source), Some(target)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            MirrorConfig::from_mm2_properties(&text, source, target)?
        }
        _ => anyhow::bail!("give --config FILE, or --mm2-properties FILE --source A --target B"),
    };
    let assignment = PartitionAssignment::new(args.ordinal, args.replicas, config.mirror.tasks)?;
    let handle = Mirror::start(
        config,
        RunOptions {
            assignment,
            metrics_addr: args.metrics_addr,
        },
    )
    .await?;
    if let Some(addr) = handle.metrics_addr {
        tracing::info!(%addr, "serving /metrics");
    }
    tokio::select! {
        signal = strata_process::shutdown_signal() => tracing::info!(%signal, "stopping"),
        _ = handle.stopped() => tracing::error!("the mirror stopped on an error"),
    }
    handle.shutdown().await;
    tracing::info!("mirror stopped");
    Ok(())
}
