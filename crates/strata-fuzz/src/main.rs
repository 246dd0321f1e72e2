//! `strata-fuzz`: mutation fuzzing on the stable toolchain (see the library docs).
//!
//!   strata-fuzz decode [--frames N | --seconds S] [--seed S]   in process, prints figures
//!   strata-fuzz wire --bootstrap HOST:PORT [--frames N] [--pid PID] [--out FILE]
//!   strata-fuzz auth [--sasl HOST:PORT] [--tls HOST:PORT --ca FILE [--tls-sasl]] --user U
//!       --password P [--sessions N] [--out FILE]
//!
//! Each exits non-zero when something broke: a panic or an allocation over the bound (decode), a
//! broker that stopped answering (wire, auth), a valid session refused or a faulty one served
//! (auth).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use strata_fuzz::alloc::{rss_kib, CountingAlloc};
use strata_fuzz::auth::{self, AuthConfig};
use strata_fuzz::corpus::{Corpus, Requests};
use strata_fuzz::decode::{self, AllocBound};
use strata_fuzz::wire::{self, WireConfig};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[derive(Parser)]
#[command(
    name = "strata-fuzz",
    about = "Mutation fuzzing of Strata's decoders and brokers"
)]
struct Args {
    /// Directory of captured frames (`*.requests.bin`, `*.responses.bin`).
    #[arg(long, global = true, default_value_os_t = default_corpus())]
    corpus: PathBuf,
    /// Seed of the mutations: the same seed gives the same frames.
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mutated frames through the broker's request decoding and the client's response and
    /// record decoding, in this process.
    Decode {
        #[arg(long, default_value_t = 1_000_000)]
        frames: u64,
        /// Stop after this many seconds even if fewer frames were tried.
        #[arg(long)]
        seconds: Option<u64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mutated request frames over TCP to a running broker.
    Wire {
        #[arg(long)]
        bootstrap: String,
        #[arg(long, default_value_t = 10_000)]
        frames: usize,
        #[command(flatten)]
        live: LiveArgs,
    },
    /// SASL exchanges and TLS handshakes, one fault per session, over TCP to a running
    /// broker's SASL_PLAINTEXT and SSL/SASL_SSL listeners.
    Auth {
        /// A SASL_PLAINTEXT listener.
        #[arg(long)]
        sasl: Option<String>,
        /// An SSL or SASL_SSL listener.
        #[arg(long)]
        tls: Option<String>,
        /// The `--tls` listener is SASL_SSL: sessions authenticate after the handshake.
        #[arg(long)]
        tls_sasl: bool,
        /// The PEM certificates the broker's certificate chains to (needed with `--tls`).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// A user whose password works with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
        #[arg(long)]
        user: String,
        #[arg(long)]
        password: String,
        #[arg(long, default_value_t = 2_000)]
        sessions: usize,
        #[command(flatten)]
        live: LiveArgs,
    },
    /// Writes the frames a `wire` run with the same seed sends (length prefix included), in the
    /// corpus entry format, to reproduce one.
    Frames {
        #[arg(long, default_value_t = 10_000)]
        frames: usize,
        #[arg(long)]
        out: PathBuf,
    },
}

/// What every run against a live broker takes.
#[derive(clap::Args)]
struct LiveArgs {
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long one read waits for the broker's answer.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// The broker's process id, for its memory figures.
    #[arg(long)]
    pid: Option<u32>,
    /// Write the report as JSON here (a wire report with per-frame outcomes).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl LiveArgs {
    /// The broker's resident memory now and at its peak (KiB), as the summary line shows it.
    fn rss(&self) -> (Option<(u64, u64)>, String) {
        let rss = self.pid.and_then(rss_kib);
        let shown = rss
            .map(|(now, peak)| format!("{now}/{peak}"))
            .unwrap_or_else(|| "n/a".into());
        (rss, shown)
    }

    /// Writes `report` with the broker's memory figures to `--out`, when given.
    fn write(&self, report: &impl serde::Serialize, rss: Option<(u64, u64)>) -> anyhow::Result<()> {
        let Some(out) = &self.out else {
            return Ok(());
        };
        let mut value = serde_json::to_value(report)?;
        if let Some((now, peak)) = rss {
            value["rss_kib"] = now.into();
            value["peak_rss_kib"] = peak.into();
        }
        std::fs::write(out, serde_json::to_vec(&value)?)?;
        Ok(())
    }
}

fn default_corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/corpus")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Command::Auth { .. } = args.command {
        return run_auth(args);
    }
    let corpus = Corpus::load(&args.corpus)?;
    let requests = Requests::expand(&corpus);
    match args.command {
        Command::Decode {
            frames,
            seconds,
            json,
        } => {
            let report = decode::run(
                &corpus,
                &requests,
                frames,
                seconds.map(Duration::from_secs),
                args.seed,
                AllocBound::DEFAULT,
            );
            let rss = rss_kib(std::process::id());
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "strata-fuzz decode: {} frames in {:.1} s (seed {}, {} request API/version pairs of both listeners)",
                    report.frames, report.seconds, report.seed, report.request_coverage
                );
                for (name, c) in [
                    ("broker requests", &report.broker_request),
                    ("controller requests", &report.controller_request),
                    ("client responses", &report.client_response),
                    ("record batches", &report.record_batch),
                ] {
                    println!(
                        "  {name:<19} {:>9} tried, {:>8} decoded, {:>9} refused, {} panics, {} over the bound; most allocated for one frame {} bytes (input {} bytes), worst ratio {:.1}x",
                        c.tried, c.decoded, c.refused, c.panics, c.over_bound, c.max_allocated, c.max_allocated_input, c.max_ratio
                    );
                }
                println!(
                    "  bound: {}x the frame + {} KiB; process peak RSS {} KiB",
                    report.bound.factor,
                    report.bound.slack / 1024,
                    rss.map(|r| r.1).unwrap_or(0)
                );
                for f in &report.findings {
                    println!(
                        "  FINDING {:?} api {} v{} allocated {} panic {:?}: {}",
                        f.target, f.key, f.version, f.allocated, f.panic, f.hex
                    );
                }
            }
            if report.panics() > 0 || report.over_bound() > 0 {
                std::process::exit(1);
            }
        }
        Command::Auth { .. } => unreachable!("handled above"),
        Command::Frames { frames, out } => {
            let entries: Vec<strata_fuzz::corpus::Frame> =
                wire::frames(&requests.broker, frames, args.seed)
                    .into_iter()
                    .map(|(key, bytes)| strata_fuzz::corpus::Frame {
                        key,
                        version: -1,
                        bytes,
                    })
                    .collect();
            std::fs::write(out, strata_fuzz::corpus::serialize(&entries))?;
        }
        Command::Wire {
            bootstrap,
            frames,
            live,
        } => {
            let config = WireConfig {
                bootstrap,
                frames,
                seed: args.seed,
                concurrency: live.concurrency,
                timeout: Duration::from_millis(live.timeout_ms),
                probe_every: 250,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let report = runtime.block_on(wire::run(&config, &requests.broker));
            let (rss, shown) = live.rss();
            println!(
                "strata-fuzz wire {}: {} frames in {:.1} s: {} responses, {} closed, {} no answer; probes {} ({} failed); broker RSS now/peak {shown} KiB",
                config.bootstrap,
                report.frames,
                report.seconds,
                report.responses,
                report.closed,
                report.no_answer,
                report.probes,
                report.failed_probes,
            );
            live.write(&report, rss)?;
            if report.failed_probes > 0 {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

fn run_auth(args: Args) -> anyhow::Result<()> {
    let Command::Auth {
        sasl,
        tls,
        tls_sasl,
        ca,
        user,
        password,
        sessions,
        live,
    } = args.command
    else {
        unreachable!("run_auth takes the auth command")
    };
    anyhow::ensure!(
        sasl.is_some() || tls.is_some(),
        "give --sasl, --tls or both"
    );
    let tls_client = match (&tls, &ca) {
        (None, _) => None,
        (Some(_), None) => anyhow::bail!("--tls needs --ca"),
        (Some(_), Some(ca)) => {
            // The chain is verified, the host name is not (the sessions dial an address).
            let props = [
                ("security.protocol", "SSL".to_string()),
                ("ssl.truststore.type", "PEM".into()),
                ("ssl.truststore.location", ca.display().to_string()),
                ("ssl.endpoint.identification.algorithm", String::new()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let security = strata_client::Security::from_properties(&props)
                .map_err(|e| anyhow::anyhow!("--ca: {e}"))?;
            security.tls
        }
    };
    let config = AuthConfig {
        sasl,
        tls,
        tls_sasl,
        tls_client,
        user,
        password,
        sessions,
        seed: args.seed,
        concurrency: live.concurrency,
        timeout: Duration::from_millis(live.timeout_ms),
        probe_every: 50,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime.block_on(auth::run(&config));
    let (rss, shown) = live.rss();
    println!(
        "strata-fuzz auth: {} sessions in {:.1} s (seed {}); probes {} ({} failed); {} findings; broker RSS now/peak {shown} KiB",
        report.sessions,
        report.seconds,
        report.seed,
        report.probes,
        report.failed_probes,
        report.findings.len(),
    );
    for (what, outcomes) in &report.outcomes {
        let counts: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
        println!("  {what:<22} {}", counts.join(", "));
    }
    for f in &report.findings {
        println!(
            "  FINDING session {} {:?} {:?} {}: {:?}",
            f.session, f.layer, f.fault, f.mechanism, f.outcome
        );
    }
    live.write(&report, rss)?;
    if report.failed_probes > 0 || !report.findings.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
