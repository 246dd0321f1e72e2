//! `strata`: the project's command line. `strata dev` runs a local cluster on loopback (the
//! embedded default a newcomer starts with); `strata bench` prints figures. Thin: parsing and
//! wiring only, the work is in the library crates.

mod bench;
mod dev;
mod failover;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "strata",
    version,
    about = "Kafka-compatible streaming for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a local cluster on loopback and print its bootstrap address.
    Dev(dev::DevArgs),
    /// Print benchmark figures (never asserted).
    Bench(bench::BenchArgs),
    /// Make the primary or the standby of a running `strata dev --standby` or
    /// `strata active-standby` the active cluster.
    Failover(failover::FailoverArgs),
    /// Mirror a primary cluster into a standby, fail over between them, and serve a discovery
    /// address that leads to the active one (the operator's MirrorFlow, without Kubernetes).
    ActiveStandby(failover::ActiveStandbyArgs),
}

fn main() -> std::process::ExitCode {
    strata_process::init_logging();
    // `strata dev` runs its brokers in this process.
    strata_process::raise_open_files_limit();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dev(args) => dev::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Failover(args) => failover::run(args),
        Command::ActiveStandby(args) => failover::run_active_standby(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
