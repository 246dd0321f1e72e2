//! Operator metrics in Prometheus text format, served by `strata_process::serve_endpoints`:
//! `/metrics`, `/healthz` (the process is alive) and `/readyz` (the controllers are running, or
//! the process is a healthy standby waiting for the leader Lease). Owns the metric registry;
//! reconcilers only call [`Metrics::reconciled`] / [`Metrics::failed`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    controller: String,
    reason: String,
}

/// The operator's metrics; cheap to share behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    reconciliations: Family<ControllerLabel, Counter>,
    failures: Family<ErrorLabel, Counter>,
    duration: Family<ControllerLabel, Histogram>,
    leader: Gauge,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("strata_operator");
        let reconciliations = Family::<ControllerLabel, Counter>::default();
        let failures = Family::<ErrorLabel, Counter>::default();
        let duration = Family::<ControllerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
        });
        let leader = Gauge::default();
        registry.register(
            "reconciliations",
            "Reconciliations run, by controller",
            reconciliations.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, by controller and error reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation, by controller",
            duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this process holds the leader Lease and runs the controllers",
            leader.clone(),
        );
        Self {
            registry,
            reconciliations,
            failures,
            duration,
            leader,
            ready: AtomicBool::new(false),
        }
    }

    /// Records one finished reconciliation of `controller`.
    pub fn reconciled(&self, controller: &str, took: Duration) {
        let label = ControllerLabel {
            controller: controller.to_owned(),
        };
        self.reconciliations.get_or_create(&label).inc();
        self.duration
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }

    /// Records a failed reconciliation of `controller`; `reason` is a short error kind.
    pub fn failed(&self, controller: &str, reason: &str) {
        self.failures
            .get_or_create(&ErrorLabel {
                controller: controller.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Marks the process ready for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl strata_process::Exposition for Metrics {
    fn encode(&self) -> String {
        Metrics::encode(self)
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_text_format() {
        let m = Metrics::new();
        m.reconciled("kafkacluster", Duration::from_millis(20));
        m.failed("kafkatopic", "ClusterUnreachable");
        m.set_leader(true);
        let text = m.encode();
        assert!(
            text.contains(r#"strata_operator_reconciliations_total{controller="kafkacluster"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"strata_operator_reconcile_errors_total{controller="kafkatopic",reason="ClusterUnreachable"} 1"#), "{text}");
        assert!(text.contains("strata_operator_leader 1"), "{text}");
        assert!(
            text.contains("strata_operator_reconcile_duration_seconds_bucket"),
            "{text}"
        );
    }
}
