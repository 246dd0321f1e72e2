//! `strata dev`: a local Strata cluster on loopback with its data in a local folder. Today one
//! broker; the same command grows more brokers and a standby cluster.

use std::path::PathBuf;

use clap::Args;
use strata_broker::BrokerConfig;

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
}

pub fn run(args: DevArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut props = vec![
            "node.id=1".to_string(),
            format!("listeners=PLAINTEXT://{}:{}", args.host, args.port),
            format!("log.dirs={}", args.data_dir.join("broker-1").display()),
            "group.initial.rebalance.delay.ms=0".to_string(),
            "offsets.topic.num.partitions=10".to_string(),
        ];
        props.extend(args.overrides.iter().cloned());
        let config = BrokerConfig::load(None, &props)?;
        let handle = strata_broker::start(config).await?;
        println!("Strata dev cluster is running.");
        println!("  bootstrap.servers = {}", handle.local_addr);
        println!("  data              = {}", args.data_dir.display());
        println!("Press Ctrl-C to stop.");
        strata_broker::process::shutdown_signal().await;
        handle.shutdown().await;
        anyhow::Ok(())
    })
}
