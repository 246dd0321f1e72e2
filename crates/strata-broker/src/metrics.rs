//! The broker's event metrics and the pure rules behind its scrape-time gauges. Owns the metric
//! families that the request path records into (request latency per API, bytes per topic,
//! replication bytes, ISR shrinks and expands, purgatory sizes); [`crate::exposition`] registers
//! them beside the gauges it computes at each scrape from the partitions, the metadata image and
//! the group coordinator. Recording never allocates nor takes a lock of ours: request
//! histograms are created once per API and topic counters once per hosted partition, then used
//! through cached handles (the histogram's own lock is the library's).
//!
//! Every name has the `strata_broker_` prefix and follows the mirror's and the operator's style
//! (snake case, unit suffixes, `_total` on counters). Kafka's MBean each one stands for:
//!
//! | metric | type | Kafka |
//! |---|---|---|
//! | `strata_broker_request_duration_seconds{api}` | histogram | `RequestMetrics` `TotalTimeMs` (rate of `_count` = `RequestsPerSec`) |
//! | `strata_broker_request_errors_total{api,error}` | counter | `RequestMetrics` `ErrorsPerSec{request,error}`: error codes answered, one per partition (or topic, group, resource) result, NONE left out; `error` is Kafka's name (`NOT_ENOUGH_REPLICAS`) |
//! | `strata_broker_topic_bytes_in_total{topic}` | counter | `BrokerTopicMetrics` `BytesInPerSec` (client produce) |
//! | `strata_broker_topic_bytes_out_total{topic}` | counter | `BrokerTopicMetrics` `BytesOutPerSec` (consumer fetch) |
//! | `strata_broker_replication_bytes_in_total` | counter | `ReplicationBytesInPerSec` (fetched as follower) |
//! | `strata_broker_replication_bytes_out_total` | counter | `ReplicationBytesOutPerSec` (served to followers) |
//! | `strata_broker_isr_shrinks_total` | counter | `ReplicaManager` `IsrShrinksPerSec`: a partition led here lost ISR members (by this leader's AlterPartition, or by the controller when it fenced a follower) |
//! | `strata_broker_isr_expands_total` | counter | `ReplicaManager` `IsrExpandsPerSec` |
//! | `strata_broker_produce_purgatory_size` | gauge | `DelayedOperationPurgatory` `PurgatorySize` (Produce): acks=all requests waiting for the ISR |
//! | `strata_broker_fetch_purgatory_size` | gauge | `PurgatorySize` (Fetch): fetches long-polling for `min_bytes` |
//! | `strata_broker_partitions` | gauge | `ReplicaManager` `PartitionCount` |
//! | `strata_broker_leader_partitions` | gauge | `ReplicaManager` `LeaderCount` |
//! | `strata_broker_under_replicated_partitions` | gauge | `UnderReplicatedPartitions`: led here, ISR < replicas |
//! | `strata_broker_under_min_isr_partitions` | gauge | `UnderMinIsrPartitionCount`: led here, ISR < min.insync.replicas |
//! | `strata_broker_offline_partitions` | gauge | `OfflinePartitionsCount`: no leader in this broker's metadata image (cluster-wide: take the max over brokers) |
//! | `strata_broker_active_controller` | gauge | `ActiveControllerCount`: 1 on the active controller |
//! | `strata_broker_unclean_leader_elections_total` | counter | `ControllerStats` `UncleanLeaderElectionsPerSec`: counted in the metadata log, so every broker reports the cluster's count |
//! | `strata_broker_log_size_bytes{topic,partition}` | gauge | `Log` `Size`, every replica hosted here |
//! | `strata_broker_consumer_group_lag{group}` | gauge | the coordinator's lag of a group: Σ (high watermark − committed offset); high watermarks of partitions hosted elsewhere are sampled from their leaders every few seconds |

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use std::fmt::Write as _;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use parking_lot::Mutex;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use strata_controller::MetadataImage;

/// Request latency buckets, in seconds: sub-millisecond metadata calls up to long polls and
/// acks=all waits bounded by request timeouts.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 30.0,
];

/// Api keys are below this (Kafka 4.1 stops at 92); a larger one falls back to a lookup.
const API_KEY_SLOTS: usize = 128;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabel {
    api: String,
}

/// An API as Kafka names its requests (`Produce`, `Fetch`), written at encoding time.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct ApiName(ApiKey);

impl EncodeLabelValue for ApiName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        write!(encoder, "{:?}", self.0)
    }
}

/// An error code as Kafka's `Errors` names it (`NOT_ENOUGH_REPLICAS`), written at encoding time.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct ErrorName(i16);

/// Writes a CamelCase name as SCREAMING_SNAKE_CASE.
struct ScreamingSnake<'a, W>(&'a mut W, bool);

impl<W: std::fmt::Write> std::fmt::Write for ScreamingSnake<'_, W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for c in s.chars() {
            if c.is_ascii_uppercase() && self.1 {
                self.0.write_char('_')?;
            }
            self.1 = true;
            self.0.write_char(c.to_ascii_uppercase())?;
        }
        Ok(())
    }
}

impl EncodeLabelValue for ErrorName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match ResponseError::try_from_code(self.0) {
            None => encoder.write_str("NONE"),
            Some(ResponseError::Unknown(code)) => write!(encoder, "UNKNOWN_{code}"),
            Some(known) => write!(ScreamingSnake(encoder, false), "{known}"),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    api: ApiName,
    error: ErrorName,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

/// The byte counters of one topic, cached by each hosted partition of it.
#[derive(Clone, Debug)]
pub struct TopicTraffic {
    /// Bytes appended from client produce requests.
    pub bytes_in: Counter,
    /// Bytes returned to consumers.
    pub bytes_out: Counter,
}

/// The ISR change counters, shared by every hosted partition.
#[derive(Clone, Debug, Default)]
pub struct IsrCounters {
    pub shrinks: Counter,
    pub expands: Counter,
}

impl IsrCounters {
    /// Counts the change from `before` to `after`: a member gone is a shrink, a member new an
    /// expansion (both when one replaced another).
    pub fn count(&self, before: &[i32], after: &[i32]) {
        if before.iter().any(|id| !after.contains(id)) {
            self.shrinks.inc();
        }
        if after.iter().any(|id| !before.contains(id)) {
            self.expands.inc();
        }
    }
}

/// The event metrics of one broker; see the module documentation for the names.
pub struct BrokerMetrics {
    request_latency: Family<ApiLabel, Histogram>,
    /// Cached per api key: the request path never builds a label.
    request_latency_by_key: Vec<OnceLock<Histogram>>,
    /// Keyed by copyable labels: counting an error builds no string.
    request_errors: Family<ErrorLabel, Counter>,
    bytes_in: Family<TopicLabel, Counter>,
    bytes_out: Family<TopicLabel, Counter>,
    pub replication_bytes_in: Counter,
    pub replication_bytes_out: Counter,
    /// Given to the partition set: partitions count their own ISR changes.
    pub isr: IsrCounters,
    pub produce_purgatory: Gauge,
    pub fetch_purgatory: Gauge,
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Holds one place in a purgatory gauge while alive.
pub struct Waiting<'a>(&'a Gauge);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Takes one place in `gauge` until the guard drops (also when the waiting future is dropped).
pub fn waiting(gauge: &Gauge) -> Waiting<'_> {
    gauge.inc();
    Waiting(gauge)
}

impl BrokerMetrics {
    pub fn new() -> Self {
        BrokerMetrics {
            request_latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
            request_latency_by_key: (0..API_KEY_SLOTS).map(|_| OnceLock::new()).collect(),
            request_errors: Family::default(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            replication_bytes_in: Counter::default(),
            replication_bytes_out: Counter::default(),
            isr: IsrCounters::default(),
            produce_purgatory: Gauge::default(),
            fetch_purgatory: Gauge::default(),
        }
    }

    /// Registers every event metric (names without the registry's `strata_broker` prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "request_duration_seconds",
            "Time from a request's decoding to its encoded response, by API (Kafka's request name)",
            self.request_latency.clone(),
        );
        registry.register(
            "request_errors",
            "Error codes answered, by API and Kafka's error name (one per partition, topic, group or resource result)",
            self.request_errors.clone(),
        );
        registry.register(
            "topic_bytes_in",
            "Bytes of record batches appended from client produce requests, by topic",
            self.bytes_in.clone(),
        );
        registry.register(
            "topic_bytes_out",
            "Bytes of record batches returned to consumers, by topic",
            self.bytes_out.clone(),
        );
        registry.register(
            "replication_bytes_in",
            "Bytes of record batches fetched from leaders as a follower",
            self.replication_bytes_in.clone(),
        );
        registry.register(
            "replication_bytes_out",
            "Bytes of record batches returned to follower replicas",
            self.replication_bytes_out.clone(),
        );
        registry.register(
            "isr_shrinks",
            "ISR shrinks of partitions led here (asked by this leader or made by the controller)",
            self.isr.shrinks.clone(),
        );
        registry.register(
            "isr_expands",
            "ISR expansions of partitions led here",
            self.isr.expands.clone(),
        );
        registry.register(
            "produce_purgatory_size",
            "Produce requests (acks=all) waiting for the ISR to replicate their records",
            self.produce_purgatory.clone(),
        );
        registry.register(
            "fetch_purgatory_size",
            "Fetch requests long-polling for min_bytes (consumers and followers)",
            self.fetch_purgatory.clone(),
        );
    }

    /// The latency series of an API, labelled with Kafka's request name (`Produce`, `Fetch`).
    fn latency_series(&self, key: ApiKey) -> Histogram {
        self.request_latency.get_or_create_owned(&ApiLabel {
            api: format!("{key:?}"),
        })
    }

    /// Records one request of `key` that took `took`; the API's series is created on its first
    /// request and cached by api key.
    pub fn observe_request(&self, key: ApiKey, took: Duration) {
        let seconds = took.as_secs_f64();
        match self.request_latency_by_key.get(key as i16 as usize) {
            Some(slot) => slot
                .get_or_init(|| self.latency_series(key))
                .observe(seconds),
            None => self.latency_series(key).observe(seconds),
        }
    }

    /// Counts one error code answered to a request of `key` (NONE is not counted).
    pub fn count_error(&self, key: ApiKey, code: i16) {
        if code != 0 {
            self.request_errors
                .get_or_create(&ErrorLabel {
                    api: ApiName(key),
                    error: ErrorName(code),
                })
                .inc();
        }
    }

    /// The byte counters of `topic` (a partition caches them on first use).
    pub fn topic_traffic(&self, topic: &str) -> TopicTraffic {
        let label = TopicLabel {
            topic: topic.to_string(),
        };
        TopicTraffic {
            bytes_in: self.bytes_in.get_or_create_owned(&label),
            bytes_out: self.bytes_out.get_or_create_owned(&label),
        }
    }
}

/// High watermarks of partitions hosted on other brokers, as their leaders last answered
/// (`cluster::end_offsets` samples them), by (topic, partition).
#[derive(Debug, Default)]
pub struct RemoteEnds(Mutex<HashMap<(String, i32), i64>>);

impl RemoteEnds {
    /// Replaces every sampled end offset.
    pub fn replace(&self, ends: HashMap<(String, i32), i64>) {
        *self.0.lock() = ends;
    }

    /// A copy, for one scrape.
    pub fn snapshot(&self) -> HashMap<(String, i32), i64> {
        self.0.lock().clone()
    }
}

/// A partition this broker leads, as the health gauges count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedPartition {
    pub replicas: usize,
    pub isr: usize,
    pub min_isr: usize,
}

/// The replication gauges of the partitions led here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaderHealth {
    pub leaders: usize,
    /// ISR smaller than the replica set.
    pub under_replicated: usize,
    /// ISR smaller than min.insync.replicas: acks=all writes are refused.
    pub under_min_isr: usize,
}

impl LeaderHealth {
    pub fn of(led: impl IntoIterator<Item = LedPartition>) -> LeaderHealth {
        let mut h = LeaderHealth::default();
        for p in led {
            h.leaders += 1;
            if p.isr < p.replicas {
                h.under_replicated += 1;
            }
            if p.isr < p.min_isr {
                h.under_min_isr += 1;
            }
        }
        h
    }
}

/// Partitions without a leader in `image` (Kafka's OfflinePartitionsCount).
pub fn offline_partitions(image: &MetadataImage) -> usize {
    image
        .topics
        .values()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.leader < 0)
        .count()
}

/// A group's lag: Σ over its committed partitions of (end − committed), each at least 0.
/// `end_of` gives a partition's high watermark where this broker knows it; partitions it does
/// not know, and offsets never committed (negative), are left out. `None` when no partition
/// could be counted.
pub fn group_lag(
    committed: impl IntoIterator<Item = (String, i32, i64)>,
    end_of: impl Fn(&str, i32) -> Option<i64>,
) -> Option<i64> {
    let mut lag = None;
    for (topic, partition, offset) in committed {
        if offset < 0 {
            continue;
        }
        if let Some(end) = end_of(&topic, partition) {
            *lag.get_or_insert(0) += (end - offset).max(0);
        }
    }
    lag
}

/// What `/readyz` looks at, read from the broker at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessView {
    pub shutting_down: bool,
    /// The epoch of the latest registration (-1 before the first).
    pub broker_epoch: i64,
    /// The controller's latest heartbeat answer unfenced this broker.
    pub unfenced: bool,
    /// This broker is fenced in its own metadata image.
    pub fenced_in_image: bool,
    /// Milliseconds since the controller last answered a heartbeat (None: never).
    pub heartbeat_age_ms: Option<i64>,
    /// `broker.session.timeout.ms`: without an answer for this long, the controller has fenced us.
    pub session_timeout_ms: i64,
    pub serving: bool,
    /// The metadata offset the partitions follow, and the offset of the applied image.
    pub reconciled_offset: u64,
    pub image_offset: u64,
}

/// Ready (200) when registered, unfenced by a recent heartbeat answer, serving clients, and
/// the partitions follow the applied metadata; otherwise the first reason that is not met.
pub fn readiness(v: &ReadinessView) -> Result<(), String> {
    if v.shutting_down {
        return Err("shutting down".into());
    }
    if v.broker_epoch < 0 {
        return Err("not registered with the controller yet".into());
    }
    if !v.unfenced {
        return Err(
            "fenced: the controller has not unfenced this broker (metadata catching up)".into(),
        );
    }
    match v.heartbeat_age_ms {
        Some(age) if age <= v.session_timeout_ms => {}
        Some(age) => {
            return Err(format!(
                "no heartbeat answer from the controller for {age} ms (broker.session.timeout.ms {}): fenced",
                v.session_timeout_ms
            ))
        }
        None => return Err("no heartbeat answered by the controller yet".into()),
    }
    if v.fenced_in_image {
        return Err("fenced in the metadata image".into());
    }
    if !v.serving {
        return Err("not serving clients yet".into());
    }
    if v.reconciled_offset < v.image_offset {
        return Err(format!(
            "partitions follow metadata offset {}, the applied metadata is at {}",
            v.reconciled_offset, v.image_offset
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use strata_controller::{PartitionImage, TopicImage};

    use super::*;

    fn encode(m: &BrokerMetrics) -> String {
        let mut registry = Registry::with_prefix("strata_broker");
        m.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn event_metrics_have_the_documented_names() {
        let m = BrokerMetrics::new();
        m.observe_request(ApiKey::Produce, Duration::from_millis(3));
        m.observe_request(ApiKey::Produce, Duration::from_millis(40));
        m.observe_request(ApiKey::Fetch, Duration::from_millis(1));
        let t = m.topic_traffic("orders");
        t.bytes_in.inc_by(100);
        t.bytes_out.inc_by(30);
        // A second handle of the same topic shares the series.
        m.topic_traffic("orders").bytes_in.inc_by(5);
        m.replication_bytes_in.inc_by(7);
        m.count_error(ApiKey::Produce, 19);
        m.count_error(ApiKey::Produce, 19);
        m.count_error(ApiKey::Produce, 6);
        m.count_error(ApiKey::Produce, 0);
        m.count_error(ApiKey::Metadata, 3);
        m.count_error(ApiKey::Fetch, 9999);
        m.isr.count(&[1, 2, 3], &[1, 3]);
        let text = encode(&m);
        for needle in [
            r#"strata_broker_request_duration_seconds_count{api="Produce"} 2"#,
            r#"strata_broker_request_duration_seconds_count{api="Fetch"} 1"#,
            r#"strata_broker_request_duration_seconds_bucket{le="0.005",api="Produce"} 1"#,
            r#"strata_broker_topic_bytes_in_total{topic="orders"} 105"#,
            r#"strata_broker_topic_bytes_out_total{topic="orders"} 30"#,
            "strata_broker_replication_bytes_in_total 7",
            r#"strata_broker_request_errors_total{api="Produce",error="NOT_ENOUGH_REPLICAS"} 2"#,
            r#"strata_broker_request_errors_total{api="Produce",error="NOT_LEADER_OR_FOLLOWER"} 1"#,
            r#"strata_broker_request_errors_total{api="Metadata",error="UNKNOWN_TOPIC_OR_PARTITION"} 1"#,
            r#"strata_broker_request_errors_total{api="Fetch",error="UNKNOWN_9999"} 1"#,
            "strata_broker_replication_bytes_out_total 0",
            "strata_broker_isr_shrinks_total 1",
            "strata_broker_isr_expands_total 0",
            "strata_broker_produce_purgatory_size 0",
            "strata_broker_fetch_purgatory_size 0",
        ] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
        assert!(!text.contains(r#"error="NONE""#), "{text}");
    }

    #[test]
    fn isr_changes_count_as_shrinks_and_expansions() {
        let c = IsrCounters::default();
        c.count(&[1, 2, 3], &[1, 2, 3]);
        assert_eq!((c.shrinks.get(), c.expands.get()), (0, 0));
        c.count(&[1, 2, 3], &[1, 3]);
        assert_eq!((c.shrinks.get(), c.expands.get()), (1, 0));
        c.count(&[1, 3], &[1, 2, 3]);
        assert_eq!((c.shrinks.get(), c.expands.get()), (1, 1));
        // One member replaced by another: both.
        c.count(&[1, 2], &[1, 3]);
        assert_eq!((c.shrinks.get(), c.expands.get()), (2, 2));
    }

    #[test]
    fn a_purgatory_place_is_given_back_when_the_wait_ends_or_is_dropped() {
        let m = BrokerMetrics::new();
        let a = waiting(&m.produce_purgatory);
        {
            let _b = waiting(&m.produce_purgatory);
            assert_eq!(m.produce_purgatory.get(), 2);
        }
        assert_eq!(m.produce_purgatory.get(), 1);
        drop(a);
        assert_eq!(m.produce_purgatory.get(), 0);
    }

    #[test]
    fn leader_health_counts_under_replicated_and_under_min_isr() {
        let p = |replicas, isr, min_isr| LedPartition {
            replicas,
            isr,
            min_isr,
        };
        assert_eq!(LeaderHealth::of([]), LeaderHealth::default());
        let h = LeaderHealth::of([p(3, 3, 2), p(3, 2, 2), p(3, 1, 2), p(1, 1, 1)]);
        assert_eq!(
            h,
            LeaderHealth {
                leaders: 4,
                under_replicated: 2,
                under_min_isr: 1,
            }
        );
    }

    #[test]
    fn offline_partitions_are_those_without_a_leader() {
        let part = |leader| PartitionImage {
            replicas: vec![1, 2, 3],
            isr: vec![1],
            leader,
            leader_epoch: 1,
            partition_epoch: 1,
            adding_replicas: vec![],
            removing_replicas: vec![],
            truncation: None,
            producer_reset_epoch: None,
        };
        let mut image = MetadataImage::default();
        assert_eq!(offline_partitions(&image), 0);
        image.topics.insert(
            "t".into(),
            TopicImage {
                id: uuid::Uuid::new_v4(),
                name: "t".into(),
                partitions: BTreeMap::from([(0, part(1)), (1, part(-1)), (2, part(-1))]),
                configs: BTreeMap::new(),
            },
        );
        assert_eq!(offline_partitions(&image), 2);
    }

    #[test]
    fn group_lag_sums_known_partitions_only() {
        let ends = |t: &str, p: i32| match (t, p) {
            ("a", 0) => Some(100),
            ("a", 1) => Some(50),
            _ => None,
        };
        let committed = vec![
            ("a".to_string(), 0, 90),
            ("a".to_string(), 1, 50),
            // Unknown here: left out.
            ("b".to_string(), 0, 0),
            // Never committed.
            ("a".to_string(), 2, -1),
        ];
        assert_eq!(group_lag(committed, ends), Some(10));
        // Committed beyond the end (a truncated log): no negative lag.
        assert_eq!(group_lag(vec![("a".to_string(), 1, 70)], ends), Some(0));
        assert_eq!(group_lag(vec![("b".to_string(), 0, 1)], ends), None);
    }

    fn ready_view() -> ReadinessView {
        ReadinessView {
            shutting_down: false,
            broker_epoch: 12,
            unfenced: true,
            fenced_in_image: false,
            heartbeat_age_ms: Some(300),
            session_timeout_ms: 4000,
            serving: true,
            reconciled_offset: 40,
            image_offset: 40,
        }
    }

    #[test]
    fn ready_only_when_registered_unfenced_serving_and_caught_up() {
        assert_eq!(readiness(&ready_view()), Ok(()));
        let reason = |change: fn(&mut ReadinessView)| {
            let mut v = ready_view();
            change(&mut v);
            readiness(&v).expect_err("not ready")
        };
        assert!(reason(|v| v.broker_epoch = -1).contains("not registered"));
        assert!(reason(|v| v.unfenced = false).starts_with("fenced"));
        assert!(reason(|v| v.heartbeat_age_ms = Some(4001)).contains("no heartbeat answer"));
        assert!(reason(|v| v.heartbeat_age_ms = None).contains("no heartbeat"));
        assert!(reason(|v| v.fenced_in_image = true).contains("fenced in the metadata image"));
        assert!(reason(|v| v.serving = false).contains("not serving"));
        assert!(reason(|v| v.reconciled_offset = 39).contains("offset 39"));
        assert_eq!(reason(|v| v.shutting_down = true), "shutting down");
        // The first unmet condition is named.
        let mut v = ready_view();
        v.broker_epoch = -1;
        v.unfenced = false;
        assert!(readiness(&v).unwrap_err().contains("not registered"));
    }
}
