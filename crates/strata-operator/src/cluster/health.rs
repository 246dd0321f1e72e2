//! Partitions that refuse `acks=all` writes (fewer in-sync replicas than `min.insync.replicas`,
//! or no leader), checked against the cluster itself in the background so that a reconcile
//! never waits on a cluster that does not answer. A reconcile reads the last answer and starts
//! a new check when that answer is older than the health interval.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::kafka::{KafkaAdmin, KafkaTarget};

/// The last health check of every cluster, by `namespace/name`.
#[derive(Default)]
pub struct HealthChecks {
    clusters: Mutex<HashMap<String, Check>>,
}

#[derive(Default)]
struct Check {
    /// When the last check ended.
    ended: Option<Instant>,
    running: bool,
    /// What it found; `None` when the cluster did not answer.
    below_min_isr: Option<Vec<String>>,
}

/// What a reconcile knows of a cluster's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// No check has ended yet (one is running).
    Pending,
    /// The last check got no answer.
    Unknown,
    /// The partitions below `min.insync.replicas` or offline, in words (empty: none).
    Answered(Vec<String>),
}

impl HealthChecks {
    /// The last answer for `target`, starting a check in the background when none runs and the
    /// last one ended more than `every` ago.
    pub fn observe(
        self: &Arc<Self>,
        admin: &Arc<dyn KafkaAdmin>,
        target: &KafkaTarget,
        every: Duration,
    ) -> Health {
        let mut clusters = self.clusters.lock();
        let check = clusters.entry(target.cluster.clone()).or_default();
        let stale = check.ended.is_none_or(|t| t.elapsed() >= every);
        if stale && !check.running {
            check.running = true;
            let checks = self.clone();
            let admin = admin.clone();
            let target = target.clone();
            tokio::spawn(async move {
                let found = match admin.snapshot(&target).await {
                    Ok(snapshot) => Some(snapshot.below_min_isr()),
                    Err(e) => {
                        tracing::debug!(cluster = %target.cluster, error = %e,
                            "partition health check got no answer");
                        None
                    }
                };
                let mut clusters = checks.clusters.lock();
                let check = clusters.entry(target.cluster.clone()).or_default();
                check.running = false;
                check.ended = Some(Instant::now());
                check.below_min_isr = found;
            });
        }
        match (&check.ended, &check.below_min_isr) {
            (None, _) => Health::Pending,
            (Some(_), None) => Health::Unknown,
            (Some(_), Some(below)) => Health::Answered(below.clone()),
        }
    }

    /// Forgets a deleted cluster.
    pub fn forget(&self, cluster: &str) {
        self.clusters.lock().remove(cluster);
    }
}
