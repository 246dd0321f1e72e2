//! A running mirror flow: [`Mirror::start`] connects to both clusters, creates the mirror's
//! topics, runs one topic sync, loads the offset syncs already on the target, builds the shared
//! [`FlowContext`] and then runs the loops (topic refresh, replication tasks, checkpoints,
//! heartbeats, ACL sync, `/metrics`) on one cancellation token and task tracker. Orchestration
//! only: the loops live in their own modules and take what they share from `context`. [`MirrorHandle::shutdown`] is the graceful stop: the
//! replication tasks finish the round in flight, wait for its acknowledgements and commit
//! progress before the handle returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use parking_lot::Mutex;
use strata_client::{Client, FetchPartitionSpec, FetchRequestSpec, OffsetSpec};
use strata_flow::OffsetMode;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::assignment::PartitionAssignment;
use crate::config::MirrorConfig;
use crate::context::FlowContext;
use crate::error::MirrorError;
use crate::metrics::MirrorMetrics;
use crate::policy::{GroupSelection, ReplicationPolicy, TopicSelection};
use crate::preserve::PreserveTask;
use crate::records::OffsetSync;
use crate::replication::ReplicationTask;
use crate::topics::TopicSync;
use crate::translation::OffsetSyncStore;
use crate::{acls, checkpoint, heartbeat};

/// How a process runs a flow, besides the flow's configuration.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub assignment: PartitionAssignment,
    /// Where to serve `/metrics`; `None` serves nothing.
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            assignment: PartitionAssignment::single(),
            metrics_addr: None,
        }
    }
}

/// Entry point of the library.
pub struct Mirror;

/// A started flow.
pub struct MirrorHandle {
    ctx: Arc<FlowContext>,
    tracker: TaskTracker,
    /// The bound `/metrics` address, when served.
    pub metrics_addr: Option<SocketAddr>,
}

impl Mirror {
    /// Starts a flow; returns once the first topic sync is done and the loops are running.
    pub async fn start(
        config: MirrorConfig,
        options: RunOptions,
    ) -> Result<MirrorHandle, MirrorError> {
        let (ctx, topic_sync) = build_context(config, options.assignment).await?;
        let metrics = ctx.metrics.clone();
        let tracker = TaskTracker::new();
        let metrics_addr = match options.metrics_addr {
            Some(addr) => {
                let (bound, task) =
                    strata_process::serve_endpoints(addr, metrics, ctx.shutdown.clone()).await?;
                tracker.spawn(async move {
                    let _ = task.await;
                });
                Some(bound)
            }
            None => None,
        };
        {
            let ctx = ctx.clone();
            tracker.spawn(async move {
                let mut tick = tokio::time::interval(ctx.config.refresh_topics_interval());
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = ctx.shutdown.cancelled() => break,
                    }
                    if let Err(e) = topic_sync.refresh().await {
                        tracing::warn!(error = %e, "topic refresh failed");
                    }
                }
            });
        }
        for task in 0..ctx.assignment.tasks {
            let replication = match ctx.config.offsets {
                OffsetMode::Translate => ReplicationTask::new(ctx.clone(), task).run().boxed(),
                OffsetMode::Preserve => PreserveTask::new(ctx.clone(), task).run().boxed(),
            };
            let shutdown = ctx.shutdown.clone();
            tracker.spawn(async move {
                if let Err(e) = replication.await {
                    tracing::error!(task, error = %e, "replication task failed; stopping the mirror");
                    shutdown.cancel();
                }
            });
        }
        if ctx.config.mirror.emit_checkpoints {
            tracker.spawn(checkpoint::run(ctx.clone()));
        }
        if ctx.config.mirror.emit_heartbeats && ctx.assignment.ordinal == 0 {
            tracker.spawn(heartbeat::run(ctx.clone()));
        }
        if ctx.config.sync.acls && ctx.assignment.ordinal == 0 {
            tracker.spawn(acls::run(ctx.clone()));
        }
        tracker.close();
        tracing::info!(
            source = %ctx.config.source.alias,
            target = %ctx.config.target.alias,
            topics = ctx.topics.read().len(),
            offsets = ?ctx.config.offsets,
            ordinal = ctx.assignment.ordinal,
            replicas = ctx.assignment.replicas,
            "mirror started"
        );
        Ok(MirrorHandle {
            ctx,
            tracker,
            metrics_addr,
        })
    }

    /// One checkpoint round of `config`'s flow over every partition, then nothing more: the
    /// final checkpoint of a failover, run after the mirror stopped so that consumer groups
    /// resume on the target where they were on the source (translated, or as they are in
    /// `Preserve` mode). Returns how many group checkpoints were written.
    pub async fn checkpoint_once(config: MirrorConfig) -> Result<usize, MirrorError> {
        let (ctx, _topic_sync) = build_context(config, PartitionAssignment::single()).await?;
        let producer = ctx.target.producer(ctx.config.producer());
        let written = checkpoint::checkpoint_once(&ctx, &producer).await;
        producer.close().await;
        written
    }
}

/// Connects to both clusters, creates the mirror's topics, runs one topic sync and loads the
/// offset syncs already on the target: the context every loop of the flow shares.
async fn build_context(
    config: MirrorConfig,
    assignment: PartitionAssignment,
) -> Result<(Arc<FlowContext>, TopicSync), MirrorError> {
    config.validate()?;
    let policy = ReplicationPolicy::new(config.naming, &config.source.alias, &config.target.alias);
    let selection = TopicSelection::compile(&config.topics)?;
    let groups = GroupSelection::compile(&config.groups)?;
    let source = Client::connect(config.source_client()).await?;
    let target = Client::connect(config.target_client()).await?;
    let preserving = config.offsets == OffsetMode::Preserve;
    let preserve = match preserving {
        true => Some(Client::connect(config.preserve_client()).await?),
        false => None,
    };
    let topic_sync = TopicSync::new(
        source.clone(),
        target.clone(),
        policy.clone(),
        selection,
        config.sync.topic_configs,
        config.mirror.replication_factor,
    )
    .preserving_offsets(preserving.then(|| config.source.alias.clone()));
    topic_sync.ensure_internal_topics().await?;
    topic_sync.refresh().await?;
    let mut syncs = OffsetSyncStore::new();
    load_offset_syncs(&target, &policy.offset_syncs_topic(), &mut syncs).await?;
    let metrics = Arc::new(MirrorMetrics::new(
        &config.source.alias,
        &config.target.alias,
    ));
    let ctx = Arc::new(FlowContext {
        policy,
        groups,
        assignment,
        source,
        target,
        preserve,
        topics: topic_sync.topics(),
        syncs: Mutex::new(syncs),
        metrics,
        shutdown: CancellationToken::new(),
        config,
    });
    Ok((ctx, topic_sync))
}

/// How long [`MirrorHandle::shutdown`] waits for the rounds in flight.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

impl MirrorHandle {
    /// Stops gracefully: in-flight rounds finish and progress is committed, within
    /// [`SHUTDOWN_GRACE`]. A round still waiting on a cluster that stopped answering then (a
    /// network cut makes every request run into its timeout and retries) is left to end on its
    /// own: it copies nothing more, since its fetches get no answer, and a failover stopping
    /// the mirror must not wait for it (the promoted side refuses mirror appends anyway).
    pub async fn shutdown(self) {
        self.ctx.shutdown.cancel();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_ms = SHUTDOWN_GRACE.as_millis() as u64,
                "mirror rounds still wait on a cluster that does not answer; stopping without them"
            );
        }
    }

    /// Waits until the flow stops by itself (a fatal error) or `shutdown` is called elsewhere.
    pub async fn stopped(&self) {
        self.ctx.shutdown.cancelled().await;
    }

    /// The flow's token, to stop it from a signal handler.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.ctx.shutdown.clone()
    }

    /// Waits for every loop to end after the token fired.
    pub async fn join(self) {
        self.tracker.wait().await;
    }

    pub fn metrics(&self) -> &MirrorMetrics {
        &self.ctx.metrics
    }

    /// The translation of committed source offset `c` of a source partition, from the syncs
    /// this process knows.
    pub fn translate(&self, topic: &str, partition: i32, c: i64) -> Option<i64> {
        self.ctx.syncs.lock().translate(topic, partition, c)
    }

    /// Source topics currently mirrored, with their remote names.
    pub fn mirrored_topics(&self) -> Vec<(String, String)> {
        self.ctx
            .topics
            .read()
            .iter()
            .map(|(t, plan)| (t.clone(), plan.remote.clone()))
            .collect()
    }
}

/// Reads the offset-syncs topic from its start to its end into `store`.
async fn load_offset_syncs(
    target: &Client,
    topic: &str,
    store: &mut OffsetSyncStore,
) -> Result<(), MirrorError> {
    let earliest = target
        .list_offsets(topic, &[0], OffsetSpec::Earliest)
        .await?;
    let latest = target.list_offsets(topic, &[0], OffsetSpec::Latest).await?;
    let (Some(from), Some(to)) = (earliest.get(&0), latest.get(&0)) else {
        return Ok(());
    };
    let (mut at, end) = (from.offset, to.offset);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut loaded = 0usize;
    while at < end {
        if Instant::now() > deadline {
            tracing::warn!(
                topic,
                at,
                end,
                "offset syncs not fully loaded in time; continuing"
            );
            break;
        }
        let mut spec = FetchRequestSpec::new([FetchPartitionSpec {
            topic: topic.to_string(),
            partition: 0,
            offset: at,
        }]);
        spec.max_wait_ms = 100;
        let fetched = target.fetch(spec).await?;
        let Some(fp) = fetched.partitions.into_values().next() else {
            break;
        };
        if let Some(e) = fp.error {
            if !e.is_retriable() {
                return Err(e.into());
            }
            continue;
        }
        for rec in &fp.records {
            let (Some(k), Some(v)) = (&rec.key, &rec.value) else {
                continue;
            };
            match OffsetSync::decode(k, v) {
                Ok(sync) => {
                    store.record(&sync);
                    loaded += 1;
                }
                Err(e) => tracing::warn!(offset = rec.offset, error = %e, "skipping offset sync"),
            }
        }
        at = fp.next_offset.max(at + 1);
    }
    tracing::info!(topic, loaded, "offset syncs loaded");
    Ok(())
}
