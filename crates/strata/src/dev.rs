//! `strata dev`: a local Strata cluster on loopback with its data in a local folder, and with
//! `--standby` a second cluster that `strata-mirror` keeps in step with the first (same topic
//! names, consumer-group offsets translated), as an active-standby pair runs in production.

use std::path::{Path, PathBuf};

use clap::Args;
use strata_broker::{BrokerConfig, BrokerHandle};
use strata_flow::NamingMode;
use strata_mirror::{Mirror, MirrorConfig, RunOptions};

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Folder for the cluster's data (kept across runs).
    #[arg(long, default_value = ".strata-dev")]
    pub data_dir: PathBuf,
    /// Client port of the first broker.
    #[arg(long, default_value_t = 9092)]
    pub port: u16,
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Extra broker properties, `key=value` (Kafka names); may repeat.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Also run a standby cluster and mirror every topic and consumer group into it.
    #[arg(long)]
    pub standby: bool,
    /// Client port of the standby's broker (default: the first cluster's port + 1).
    #[arg(long, requires = "standby")]
    pub standby_port: Option<u16>,
}

async fn start_broker(
    host: &str,
    port: u16,
    dir: &Path,
    overrides: &[String],
) -> anyhow::Result<BrokerHandle> {
    let mut props = vec![
        "node.id=1".to_string(),
        format!("listeners=PLAINTEXT://{host}:{port}"),
        format!("log.dirs={}", dir.display()),
        "group.initial.rebalance.delay.ms=0".to_string(),
        "offsets.topic.num.partitions=10".to_string(),
    ];
    props.extend(overrides.iter().cloned());
    let config = BrokerConfig::load(None, &props)?;
    strata_broker::start(config).await
}

/// The dev flow: every topic and group, same names on both sides, short intervals so a
/// developer sees records and group offsets arrive within seconds.
fn standby_flow(primary: &str, standby: &str) -> MirrorConfig {
    let mut flow = MirrorConfig::new("primary", primary, "standby", standby);
    flow.naming = NamingMode::Identity;
    flow.sync.checkpoint_interval_seconds = 5;
    flow.sync.heartbeat_interval_seconds = 5;
    flow.tuning.linger_ms = 5;
    flow.mirror.refresh_topics_interval_seconds = 5;
    flow
}

pub fn run(args: DevArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let primary = start_broker(
            &args.host,
            args.port,
            &args.data_dir.join("broker-1"),
            &args.overrides,
        )
        .await?;
        let mut standby = None;
        if args.standby {
            let port = match args.standby_port {
                Some(p) => p,
                None => args.port.checked_add(1).ok_or_else(|| {
                    anyhow::anyhow!("--port {} leaves no port for the standby", args.port)
                })?,
            };
            let broker = start_broker(
                &args.host,
                port,
                &args.data_dir.join("standby-1"),
                &args.overrides,
            )
            .await?;
            let flow = standby_flow(
                &primary.local_addr.to_string(),
                &broker.local_addr.to_string(),
            );
            let mirror = Mirror::start(flow, RunOptions::default()).await?;
            standby = Some((broker, mirror));
        }
        println!("Strata dev cluster is running.");
        println!("  bootstrap.servers = {}", primary.local_addr);
        if let Some((broker, _)) = &standby {
            println!(
                "  standby           = {} (mirrored from the first: same topic names, \
                 group offsets translated)",
                broker.local_addr
            );
        }
        println!("  data              = {}", args.data_dir.display());
        println!("Press Ctrl-C to stop.");
        strata_process::shutdown_signal().await;
        // The mirror first: it commits its progress while both brokers still serve.
        if let Some((broker, mirror)) = standby {
            mirror.shutdown().await;
            broker.shutdown().await;
        }
        primary.shutdown().await;
        anyhow::Ok(())
    })
}
