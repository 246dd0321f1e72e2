//! `strata bench`: prints figures, never asserts them. `memory` starts the `strata-broker`
//! binary that sits next to this executable on a free loopback port with an empty log
//! directory, waits until it accepts connections and reports its resident memory while idle.

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchKind,
}

#[derive(Subcommand, Debug)]
pub enum BenchKind {
    /// Resident memory of an idle broker.
    Memory {
        /// Broker binary (defaults to `strata-broker` beside this executable).
        #[arg(long)]
        broker: Option<PathBuf>,
    },
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        BenchKind::Memory { broker } => memory(broker),
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn memory(broker: Option<PathBuf>) -> anyhow::Result<()> {
    let bin = match broker {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .context("executable has no directory")?
            .join("strata-broker"),
    };
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(&bin)
        .arg("--override")
        .arg("node.id=1")
        .arg("--override")
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
        .arg("--override")
        .arg(format!("log.dirs={}", dir.path().display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "broker did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let start-up allocations settle before reading the figure.
    std::thread::sleep(Duration::from_secs(2));
    let rss_kib = rss_kib(running.0.id())?;
    println!("| figure | value |");
    println!("| --- | --- |");
    println!(
        "| idle broker RSS (50 offsets partitions, no other topics, a metadata quorum of one) | {:.1} MiB |",
        rss_kib as f64 / 1024.0
    );
    Ok(())
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let mut status = String::new();
    std::fs::File::open(format!("/proc/{pid}/status"))?.read_to_string(&mut status)?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS missing from /proc status")
}
