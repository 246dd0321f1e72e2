//! `strata-broker`: reads a Kafka-style `server.properties`, applies `--override key=value`
//! pairs and serves until SIGTERM or Ctrl-C, then shuts down gracefully.

use std::path::PathBuf;

use clap::Parser;
use strata_broker::BrokerConfig;

#[derive(Parser, Debug)]
#[command(
    name = "strata-broker",
    version,
    about = "Kafka-wire-compatible broker"
)]
struct Args {
    /// Kafka-style server.properties file.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Property overrides, `key=value` (Kafka property names); may repeat.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

fn main() -> std::process::ExitCode {
    strata_process::init_logging();
    strata_process::raise_open_files_limit();
    let args = Args::parse();
    let config = match BrokerConfig::load(args.config.as_deref(), &args.overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strata-broker: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().min(4)))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("strata-broker: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let handle = match strata_broker::start(config).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("strata-broker: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let signal = strata_process::shutdown_signal().await;
        tracing::info!(%signal, "shutting down");
        handle.shutdown().await;
        std::process::ExitCode::SUCCESS
    })
}
