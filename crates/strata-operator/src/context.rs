//! What every reconciliation shares: the Kubernetes client, the Kafka admin, the resolver of
//! bootstrap addresses, the defaults validation needs, metrics, the event reporter and the
//! per-object error backoff. Built once by the runtime, handed to the controllers in an `Arc`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use parking_lot::Mutex;

use crate::cluster::health::HealthChecks;
use crate::cluster::plan::PlanContext;
use crate::kafka::{BootstrapResolver, KafkaAdmin};
use crate::metrics::Metrics;

/// Shared state of the controllers.
pub struct Context {
    pub client: Client,
    pub admin: Arc<dyn KafkaAdmin>,
    pub resolver: BootstrapResolver,
    pub plan: PlanContext,
    pub metrics: Arc<Metrics>,
    pub reporter: Reporter,
    pub backoff: ErrorBackoff,
    pub timing: Timing,
    /// The last partition-health answer of every cluster (see [`HealthChecks`]).
    pub health: Arc<HealthChecks>,
}

/// Requeue intervals; tests shorten them.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Periodic re-check of an object that is in its desired state (drift detection).
    pub resync: Duration,
    /// Re-check while something is under way (a rolling restart, pods starting).
    pub progress: Duration,
    /// Re-check of a condition another object will resolve (missing cluster, conflict).
    pub waiting: Duration,
    /// How long a rolling restart waits for a fully replicated cluster before the wait is
    /// reported as stalled (it keeps waiting: restarting then could lose availability).
    pub restart_wait_deadline: Duration,
    /// Re-check of a reachable cluster's partitions (below `min.insync.replicas`, offline)
    /// while nothing else is under way: Kafka sends Kubernetes no event when a replica falls
    /// out of sync.
    pub health: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(300),
            progress: Duration::from_secs(5),
            waiting: Duration::from_secs(30),
            restart_wait_deadline: Duration::from_secs(600),
            health: Duration::from_secs(30),
        }
    }
}

impl Context {
    /// Publishes a Kubernetes Event about `obj`. Failing to publish is logged, never fatal:
    /// events are for people, the status is the record.
    pub async fn event<K>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) where
        K: Resource<DynamicType = ()>,
    {
        // A recorder per event: kube's recorder folds events with the same reason about the same
        // object into one, which would hide the second broker restart of a rollout.
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }
}

/// Exponential backoff per object for failed reconciliations: 5 s doubling up to 5 min, reset
/// by the next success. Keeps one object's failures from hammering the API or a dead cluster
/// while others reconcile normally.
#[derive(Debug)]
pub struct ErrorBackoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Default for ErrorBackoff {
    fn default() -> Self {
        Self::new(Duration::from_secs(5), Duration::from_secs(300))
    }
}

impl ErrorBackoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure of `key` and returns how long to wait before retrying.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock();
        let n = failures.entry(key.to_owned()).or_insert(0);
        let delay = self.base.saturating_mul(1u32 << (*n).min(16));
        *n = n.saturating_add(1);
        delay.min(self.max)
    }

    /// Forgets the failures of `key` after a successful reconciliation.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().remove(key);
    }
}

/// `namespace/name` of an object, the key of backoff and messages.
pub fn object_key<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let b = ErrorBackoff::new(Duration::from_secs(5), Duration::from_secs(60));
        let delays: Vec<u64> = (0..6).map(|_| b.failed("ns/a").as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
        assert_eq!(
            b.failed("ns/b").as_secs(),
            5,
            "objects back off independently"
        );
        b.succeeded("ns/a");
        assert_eq!(b.failed("ns/a").as_secs(), 5);
    }
}
