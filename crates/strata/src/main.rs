//! `strata`: the project's command line. `strata dev` runs a local cluster on loopback (the
//! embedded default a newcomer starts with); `strata bench` prints figures. Thin: parsing and
//! wiring only, the work is in the library crates.

mod bench;
mod dev;

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
}

fn main() -> std::process::ExitCode {
    strata_process::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dev(args) => dev::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
