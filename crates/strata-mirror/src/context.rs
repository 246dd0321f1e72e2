//! What the loops of one running flow share: the [`FlowContext`] (configuration, policy,
//! clients, topic plan, offset syncs, metrics, shutdown token) and the pacing helpers every loop
//! uses. Below the loops and below `flow`, which builds the context and starts them, so that no
//! loop imports anything from the module that starts it.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_client::{Client, FetchPartitionSpec, FetchRequestSpec};
use tokio_util::sync::CancellationToken;

use crate::assignment::PartitionAssignment;
use crate::config::MirrorConfig;
use crate::metrics::MirrorMetrics;
use crate::policy::{GroupSelection, ReplicationPolicy};
use crate::topics::MirroredTopics;
use crate::translation::OffsetSyncStore;

/// What every loop of a flow shares.
pub struct FlowContext {
    pub config: MirrorConfig,
    pub policy: ReplicationPolicy,
    pub groups: GroupSelection,
    pub assignment: PartitionAssignment,
    pub source: Client,
    pub target: Client,
    /// The target connection for offset-preserving appends (`offsets: Preserve` only).
    pub preserve: Option<Client>,
    pub topics: MirroredTopics,
    pub syncs: Mutex<OffsetSyncStore>,
    pub metrics: Arc<MirrorMetrics>,
    pub shutdown: CancellationToken,
}

impl FlowContext {
    /// A fetch of these source positions with the flow's fetch tuning.
    pub fn fetch_spec(&self, at: impl IntoIterator<Item = FetchPartitionSpec>) -> FetchRequestSpec {
        let t = &self.config.tuning;
        let mut spec = FetchRequestSpec::new(at);
        spec.min_bytes = t.fetch_min_bytes;
        spec.max_wait_ms = t.fetch_max_wait_ms;
        spec.max_bytes = t.fetch_max_bytes;
        spec
    }

    /// Sleeps for `d`, or less when the flow shuts down meanwhile.
    pub async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.shutdown.cancelled() => {}
        }
    }
}

/// How long a replication loop waits after its `failures`-th failed round in a row.
pub fn failure_backoff(failures: u32) -> Duration {
    Duration::from_millis(100 * u64::from(failures.min(20)))
}
