//! Failover without Kubernetes: `strata dev --standby` runs the failover engine of
//! `strata-failover` over its two clusters, the same engine the operator runs for a
//! `MirrorFlow`, and a discovery address that always leads to the active one;
//! `strata active-standby` does the same for two clusters that run elsewhere; `strata failover
//! --to standby|primary` asks either to fail over and waits until it has.
//!
//! The files in the data folder play the parts of a `MirrorFlow`'s spec and status:
//! `failover-desired` holds the desired active side (`primary` or `standby`), `failover.json`
//! the engine's saved state (written before each step, so a restarted `strata dev` resumes).
//! The discovery address is a TCP relay: each connection is passed to the active cluster's
//! bootstrap broker, which then names its brokers in Metadata as usual.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use strata_failover::{round, Action, Driver, EngineConfig, FailoverState, FlowSides, Side};
use strata_flow::{FailoverMode, NamingMode, OffsetMode};
use strata_mirror::{Mirror, MirrorConfig, MirrorHandle, RunOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The engine's saved state, in the data folder.
pub const STATE_FILE: &str = "failover.json";
/// The desired active side, in the data folder.
pub const DESIRED_FILE: &str = "failover-desired";
/// How often the engine probes both clusters.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The two clusters of `strata dev --standby`, as the CLI names them.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevSide {
    Primary,
    Standby,
}

impl DevSide {
    fn side(self) -> Side {
        match self {
            DevSide::Primary => Side::Source,
            DevSide::Standby => Side::Target,
        }
    }

    fn of(side: Side) -> DevSide {
        match side {
            Side::Source => DevSide::Primary,
            Side::Target => DevSide::Standby,
        }
    }

    fn name(self) -> &'static str {
        match self {
            DevSide::Primary => "primary",
            DevSide::Standby => "standby",
        }
    }
}

#[derive(Args, Debug)]
pub struct FailoverArgs {
    /// The cluster to make active.
    #[arg(long, value_enum)]
    pub to: DevSide,
    /// The data folder of the running `strata dev --standby` or `strata active-standby`.
    #[arg(long, default_value = ".strata-dev")]
    pub data_dir: PathBuf,
    /// How long to wait for the failover to finish, in seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
pub struct ActiveStandbyArgs {
    /// Bootstrap servers of the primary cluster (`host:port,...`).
    #[arg(long)]
    pub primary: String,
    /// Bootstrap servers of the standby cluster.
    #[arg(long)]
    pub standby: String,
    /// Where to serve the discovery address (`host:port`).
    #[arg(long, default_value = "127.0.0.1:9094")]
    pub discovery: String,
    /// Folder for the engine's state and the desired side (see `strata failover`).
    #[arg(long, default_value = ".strata-failover")]
    pub data_dir: PathBuf,
    /// `preserve` (both clusters Strata: same offsets) or `translate` (any Kafka cluster).
    #[arg(long, value_enum, default_value = "preserve")]
    pub offsets: Offsets,
    /// Fail over by itself when the active cluster fails three probes in a row (one a second).
    #[arg(long)]
    pub automatic_failover: bool,
    /// Keep a rejoining cluster's divergent tail (copied to quarantine topics either way)
    /// instead of truncating it; failback then waits for a person.
    #[arg(long)]
    pub keep_divergent_tail: bool,
    /// Kafka client properties of every connection to the primary (the engine's and the
    /// mirror's): `security.protocol`, `sasl.mechanism`, `sasl.jaas.config`, `ssl.truststore.*`, `ssl.keystore.*`.
    #[arg(long, value_name = "FILE")]
    pub primary_config: Option<PathBuf>,
    /// The same toward the standby.
    #[arg(long, value_name = "FILE")]
    pub standby_config: Option<PathBuf>,
    /// Fence a cluster that has no write fence (Apache Kafka) with a DENY WRITE ACL for every
    /// principal on every topic (it needs an authorizer there, and the engine's and the
    /// mirror's principal among its super users, so the mirror can still write to it as the
    /// standby).
    #[arg(long)]
    pub fence_foreign_with_acl: bool,
}

/// The client properties in `path`, keys as Kafka names them.
fn client_properties(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let props =
        strata_kafka::config_providers::resolve(strata_mirror::mm2::parse_properties(&text))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            .props;
    strata_client::Security::from_properties(&props)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(props)
}

/// Offset modes of `strata active-standby`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offsets {
    Preserve,
    Translate,
}

/// The flow between the two clusters: every topic and group, same names, short intervals.
pub fn flow(primary: &str, standby: &str, offsets: OffsetMode) -> MirrorConfig {
    let mut flow = MirrorConfig::new("primary", primary, "standby", standby);
    flow.naming = NamingMode::Identity;
    flow.offsets = offsets;
    flow.sync.checkpoint_interval_seconds = 5;
    flow.sync.heartbeat_interval_seconds = 5;
    flow.tuning.linger_ms = 5;
    flow.mirror.refresh_topics_interval_seconds = 5;
    flow
}

/// `strata active-standby`: the failover engine and discovery relay for two clusters run
/// elsewhere, until SIGINT/SIGTERM.
pub fn run_active_standby(args: ActiveStandbyArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(&args.discovery)
            .await
            .with_context(|| format!("binding the discovery address {}", args.discovery))?;
        let offsets = match args.offsets {
            Offsets::Preserve => OffsetMode::Preserve,
            Offsets::Translate => OffsetMode::Translate,
        };
        let mut flow = flow(&args.primary, &args.standby, offsets);
        if let Some(path) = &args.primary_config {
            flow.mirror.source_security = client_properties(path)?;
        }
        if let Some(path) = &args.standby_config {
            flow.mirror.target_security = client_properties(path)?;
        }
        let mut sides = FlowSides::new(flow);
        sides.fence_foreign_with_acl = args.fence_foreign_with_acl;
        let failover = LocalFailover::start(
            &args.data_dir,
            sides,
            listener,
            args.automatic_failover,
            !args.keep_divergent_tail,
        )
        .await?;
        println!("Strata active-standby is running.");
        println!("  discovery = {}", args.discovery);
        println!("  primary   = {}", args.primary);
        println!("  standby   = {}", args.standby);
        println!("  state     = {}", args.data_dir.join(STATE_FILE).display());
        strata_process::shutdown_signal().await;
        failover.shutdown().await;
        anyhow::Ok(())
    })
}

/// `strata failover`: writes the desired side and waits until `strata dev` has made it active
/// and the other one mirrors it again (or cannot: then says why).
pub fn run(args: FailoverArgs) -> anyhow::Result<()> {
    let state_path = args.data_dir.join(STATE_FILE);
    anyhow::ensure!(
        state_path.exists(),
        "{} does not exist: is `strata dev --standby --data-dir {}` running?",
        state_path.display(),
        args.data_dir.display()
    );
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let wanted = args.to.side();
    // After an automatic failover the desired side still names the old active side, and only a
    // change of the desired side starts a failover (`failback: Manual`): acknowledge the side
    // that is active first, then ask for the wanted one.
    if let Some(state) = read_state(&state_path)? {
        if state.desired_seen == wanted && state.active != wanted && state.operation.is_none() {
            let active = DevSide::of(state.active);
            println!(
                "acknowledging the automatic failover to the {} before failing back",
                active.name()
            );
            write_atomically(&args.data_dir.join(DESIRED_FILE), active.name().as_bytes())?;
            loop {
                if read_state(&state_path)?.is_some_and(|s| s.desired_seen == state.active) {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the engine did not take the desired side within {} s (state in {})",
                    args.timeout,
                    state_path.display()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    write_atomically(&args.data_dir.join(DESIRED_FILE), args.to.name().as_bytes())?;
    let mut said = String::new();
    loop {
        let state = read_state(&state_path)?;
        if let Some(state) = &state {
            if state.active == wanted && state.operation.is_none() && state.rejoin.is_none() {
                print_done(state, args.to);
                return Ok(());
            }
            if let Some(blocked) = &state.blocked {
                anyhow::bail!("the failover to {} is blocked: {blocked}", args.to.name());
            }
            let now = describe(state);
            if now != said {
                println!("{now}");
                said = now;
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the {} did not become active within {} s (state in {})",
            args.to.name(),
            args.timeout,
            state_path.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn describe(state: &FailoverState) -> String {
    match (&state.operation, &state.rejoin) {
        (Some(op), _) => format!(
            "{:?}: step {:?} of failover {}",
            state.phase(),
            op.step,
            op.id
        ),
        (None, Some(r)) => format!(
            "{:?}: the {} rejoins as the standby",
            state.phase(),
            DevSide::of(r.side).name()
        ),
        (None, None) => format!("{:?}: waiting for the engine", state.phase()),
    }
}

fn print_done(state: &FailoverState, to: DevSide) {
    println!("The {} is active; the other cluster mirrors it.", to.name());
    if let Some(last) = &state.last {
        println!(
            "  failover {}: {:?}, {} ms until discovery pointed at the {}, records at risk {}{}, \
             fence {}",
            last.id,
            last.reason,
            last.duration_ms,
            DevSide::of(last.to).name(),
            last.records_at_risk,
            if last.records_at_risk_exact {
                " (counted)"
            } else {
                " (estimated)"
            },
            if last.fence_confirmed {
                "confirmed"
            } else {
                "not confirmed"
            },
        );
    }
}

fn read_state(path: &Path) -> anyhow::Result<Option<FailoverState>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn read_desired(data_dir: &Path, fallback: Side) -> Side {
    match std::fs::read_to_string(data_dir.join(DESIRED_FILE)) {
        Ok(s) => match s.trim() {
            "primary" => Side::Source,
            "standby" => Side::Target,
            other => {
                tracing::warn!(
                    value = other,
                    "{DESIRED_FILE} names neither primary nor standby"
                );
                fallback
            }
        },
        Err(_) => fallback,
    }
}

/// Where the discovery relay sends new connections: the active side's bootstrap address.
#[derive(Clone)]
pub struct Discovery {
    active: Arc<AtomicU8>,
    addresses: Arc<[String; 2]>,
}

impl Discovery {
    fn new(primary: String, standby: String, active: Side) -> Self {
        let d = Discovery {
            active: Arc::new(AtomicU8::new(0)),
            addresses: Arc::new([primary, standby]),
        };
        d.point(active);
        d
    }

    fn point(&self, side: Side) {
        self.active.store(DevSide::of(side) as u8, Ordering::SeqCst);
    }

    fn address(&self) -> &str {
        &self.addresses[self.active.load(Ordering::SeqCst) as usize]
    }

    /// Relays connections to `listener` until `stop`.
    pub async fn serve(self, listener: TcpListener, stop: CancellationToken) {
        loop {
            let (mut client, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "discovery accept failed");
                        continue;
                    }
                },
                _ = stop.cancelled() => return,
            };
            let to = self.address().to_string();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut server = match TcpStream::connect(&to).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::info!(to, error = %e, "discovery: the active cluster does not answer");
                        return;
                    }
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = stop.cancelled() => {}
                }
            });
        }
    }
}

/// Fault injection for crash tests: the process exits at once (status
/// [`CRASH_EXIT_STATUS`], nothing stopped or saved) when it is about to save the first state
/// at the point this variable names ([`FailoverState::progress`], e.g. `Promote`), that is
/// after the action before it ran and before its outcome is saved. The engine started again
/// must then run that action again and finish the failover.
pub const CRASH_BEFORE_SAVING_ENV: &str = "STRATA_FAILOVER_CRASH_BEFORE_SAVING";
/// The exit status of a crash asked for with [`CRASH_BEFORE_SAVING_ENV`].
pub const CRASH_EXIT_STATUS: i32 = 86;

/// The local driver: state in the data folder, the mirror in this process, the relay above.
struct LocalDriver {
    data_dir: PathBuf,
    sides: FlowSides,
    mirror: Option<MirrorHandle>,
    discovery: Discovery,
    /// The point to crash at ([`CRASH_BEFORE_SAVING_ENV`]).
    crash_before: Option<String>,
    /// The point of the last state saved.
    saved_at: Option<String>,
}

impl Driver for LocalDriver {
    async fn save(&mut self, state: &FailoverState) -> Result<(), String> {
        let progress = state.progress();
        if self.crash_before.as_ref() == Some(&progress)
            && self.saved_at.as_ref() != Some(&progress)
        {
            eprintln!("{CRASH_BEFORE_SAVING_ENV}: exiting before saving the state at {progress}");
            std::process::exit(CRASH_EXIT_STATUS);
        }
        let json = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
        write_atomically(&self.data_dir.join(STATE_FILE), &json).map_err(|e| format!("{e:#}"))?;
        self.saved_at = Some(progress);
        Ok(())
    }

    async fn stop_mirror(&mut self) -> Result<(), String> {
        if let Some(mirror) = self.mirror.take() {
            mirror.shutdown().await;
        }
        Ok(())
    }

    async fn start_mirror(&mut self, from: Side) -> Result<(), String> {
        self.stop_mirror().await?;
        let flow = self.sides.direction(from);
        let mirror = Mirror::start(flow, RunOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        self.mirror = Some(mirror);
        Ok(())
    }

    async fn point_discovery(&mut self, side: Side) -> Result<(), String> {
        self.discovery.point(side);
        Ok(())
    }
}

/// The failover engine of `strata dev --standby` and `strata active-standby`, with its
/// discovery relay, running until [`shutdown`](Self::shutdown).
pub struct LocalFailover {
    /// Where the discovery relay listens.
    pub discovery: std::net::SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    relay: tokio::task::JoinHandle<()>,
}

impl LocalFailover {
    /// Loads the saved state from `data_dir` (or starts a new flow with the primary active),
    /// restarts the mirror the state says runs (retrying while a cluster is down), probes every
    /// second from then on, and relays
    /// connections to `listener` to the active cluster. `automatic`: fail over by itself;
    /// `truncate_tail`: truncate a rejoining cluster's divergent tail once it is copied.
    pub async fn start(
        data_dir: &Path,
        sides: FlowSides,
        listener: TcpListener,
        automatic: bool,
        truncate_tail: bool,
    ) -> anyhow::Result<LocalFailover> {
        let now = strata_kafka::now_ms;
        let state_path = data_dir.join(STATE_FILE);
        let mut state = match read_state(&state_path)? {
            Some(s) => s,
            None => FailoverState::new(read_desired(data_dir, Side::Source), now()),
        };
        let relay_to = Discovery::new(
            sides
                .config
                .source
                .bootstrap_servers
                .clone()
                .unwrap_or_default(),
            sides
                .config
                .target
                .bootstrap_servers
                .clone()
                .unwrap_or_default(),
            state.active,
        );
        let mut spec = strata_flow::FailoverSpec {
            mode: if automatic {
                FailoverMode::Automatic
            } else {
                FailoverMode::Manual
            },
            ..Default::default()
        };
        spec.failback.truncate_unreplicated_tail = truncate_tail;
        spec.detection.probe_interval_seconds = PROBE_INTERVAL.as_secs() as i32;
        let cfg = EngineConfig::from_spec(&spec);
        let mut driver = LocalDriver {
            data_dir: data_dir.to_path_buf(),
            sides: sides.clone(),
            mirror: None,
            discovery: relay_to.clone(),
            crash_before: std::env::var(CRASH_BEFORE_SAVING_ENV).ok(),
            // Loaded or new, this state is saved next: a crash point is one reached later.
            saved_at: Some(state.progress()),
        };
        driver.save(&state).await.map_err(anyhow::Error::msg)?;
        let stop = CancellationToken::new();
        let discovery = listener.local_addr()?;
        let relay = tokio::spawn(relay_to.serve(listener, stop.clone()));
        let data_dir = data_dir.to_path_buf();
        let engine_stop = stop.clone();
        let task = tokio::spawn(async move {
            let mut last_wait = String::new();
            loop {
                // The mirror the state says runs (after a restart, or after a start that failed
                // because a cluster was down) is started again, round after round, until it runs.
                if let (Some(from), None) = (state.mirror_from, driver.mirror.as_ref()) {
                    if let Err(e) = driver.start_mirror(from).await {
                        tracing::info!(error = e, "the mirror cannot start yet");
                    }
                }
                let desired = read_desired(&data_dir, state.desired_seen);
                match round(&mut state, &cfg, &sides, desired, &mut driver, now).await {
                    Ok(Action::Wait(why)) if why != last_wait => {
                        tracing::info!(phase = ?state.phase(), "failover waits for {why}");
                        last_wait = why;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = e, "failover round failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(PROBE_INTERVAL) => {}
                    _ = engine_stop.cancelled() => break,
                }
            }
            let _ = driver.stop_mirror().await;
        });
        Ok(LocalFailover {
            discovery,
            stop,
            task,
            relay,
        })
    }

    /// Stops the engine (after the round in flight), the mirror and the relay.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
        let _ = self.relay.await;
    }
}
