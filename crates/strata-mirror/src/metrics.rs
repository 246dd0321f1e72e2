//! The mirror's metrics, served by `strata_process::serve_endpoints` (`/metrics`, Prometheus
//! text; `/healthz`, `/readyz`). Owns the registry; the replication, checkpoint and heartbeat loops only call the
//! recording methods. Every name has the `strata_mirror_` prefix; MirrorMaker 2's metric names
//! (`record-age-ms`, `byte-rate`, `replication-latency-ms`, `checkpoint-latency-ms`) become
//! snake case. Per-partition series carry `source`, `target`, `topic` (the remote topic) and
//! `partition`; checkpoint series carry `group`.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `strata_mirror_record_age_ms` | gauge | now − timestamp of the newest record fetched |
//! | `strata_mirror_replication_latency_ms` | gauge | now − timestamp of the newest record the target acknowledged |
//! | `strata_mirror_byte_rate` | gauge | bytes (keys+values+headers) mirrored per second, over the last second or more |
//! | `strata_mirror_bytes_total` | counter | bytes mirrored |
//! | `strata_mirror_records_total` | counter | records mirrored (acknowledged by the target) |
//! | `strata_mirror_records_lag` | gauge | source high watermark − next source offset to mirror |
//! | `strata_mirror_checkpoint_latency_ms` | gauge | time from reading a group's source offsets to its checkpoint (and offset commit) acknowledged on the target |
//! | `strata_mirror_heartbeat_latency_ms` | gauge | time a heartbeat took to be acknowledged by the target |

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use strata_kafka::now_ms;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabel {
    source: String,
    target: String,
    topic: String,
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    source: String,
    target: String,
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabel {
    source: String,
    target: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Bytes counted since `since`, for the byte rate.
struct RateWindow {
    since: Instant,
    bytes: u64,
}

/// The metrics of one flow; share it behind an `Arc`.
pub struct MirrorMetrics {
    source: String,
    target: String,
    registry: Registry,
    record_age: Family<PartitionLabel, Gauge>,
    latency: Family<PartitionLabel, Gauge>,
    byte_rate: Family<PartitionLabel, FloatGauge>,
    bytes: Family<PartitionLabel, Counter>,
    records: Family<PartitionLabel, Counter>,
    lag: Family<PartitionLabel, Gauge>,
    checkpoint_latency: Family<GroupLabel, Gauge>,
    heartbeat_latency: Family<FlowLabel, Gauge>,
    windows: Mutex<HashMap<(String, i32), RateWindow>>,
}

impl MirrorMetrics {
    pub fn new(source_alias: &str, target_alias: &str) -> MirrorMetrics {
        let mut registry = Registry::with_prefix("strata_mirror");
        let m = MirrorMetrics {
            source: source_alias.to_string(),
            target: target_alias.to_string(),
            record_age: Family::default(),
            latency: Family::default(),
            byte_rate: Family::default(),
            bytes: Family::default(),
            records: Family::default(),
            lag: Family::default(),
            checkpoint_latency: Family::default(),
            heartbeat_latency: Family::default(),
            windows: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register(
            "record_age_ms",
            "Age of the newest fetched record (now - record timestamp)",
            m.record_age.clone(),
        );
        registry.register(
            "replication_latency_ms",
            "Now - timestamp of the newest record acknowledged by the target",
            m.latency.clone(),
        );
        registry.register(
            "byte_rate",
            "Bytes mirrored per second",
            m.byte_rate.clone(),
        );
        registry.register("bytes", "Bytes mirrored", m.bytes.clone());
        registry.register(
            "records",
            "Records mirrored (acknowledged by the target)",
            m.records.clone(),
        );
        registry.register(
            "records_lag",
            "Source high watermark - next source offset to mirror",
            m.lag.clone(),
        );
        registry.register(
            "checkpoint_latency_ms",
            "Time from reading a group's source offsets to its checkpoint acknowledged on the target",
            m.checkpoint_latency.clone(),
        );
        registry.register(
            "heartbeat_latency_ms",
            "Time a heartbeat took to be acknowledged by the target",
            m.heartbeat_latency.clone(),
        );
        MirrorMetrics { registry, ..m }
    }

    fn partition(&self, topic: &str, partition: i32) -> PartitionLabel {
        PartitionLabel {
            source: self.source.clone(),
            target: self.target.clone(),
            topic: topic.to_string(),
            partition: partition.to_string(),
        }
    }

    /// A fetch returned records up to `newest_timestamp`.
    pub fn fetched(&self, topic: &str, partition: i32, newest_timestamp: i64) {
        if newest_timestamp >= 0 {
            self.record_age
                .get_or_create(&self.partition(topic, partition))
                .set((now_ms() - newest_timestamp).max(0));
        }
    }

    /// The target acknowledged `records` records of `bytes` bytes, the newest stamped
    /// `newest_timestamp`.
    pub fn acknowledged(
        &self,
        topic: &str,
        partition: i32,
        records: u64,
        bytes: u64,
        newest_timestamp: i64,
    ) {
        let label = self.partition(topic, partition);
        self.records.get_or_create(&label).inc_by(records);
        self.bytes.get_or_create(&label).inc_by(bytes);
        if newest_timestamp >= 0 {
            self.latency
                .get_or_create(&label)
                .set((now_ms() - newest_timestamp).max(0));
        }
        let mut windows = self.windows.lock();
        let w = windows
            .entry((topic.to_string(), partition))
            .or_insert_with(|| RateWindow {
                since: Instant::now(),
                bytes: 0,
            });
        w.bytes += bytes;
        let elapsed = w.since.elapsed();
        if elapsed >= Duration::from_secs(1) {
            self.byte_rate
                .get_or_create(&label)
                .set(w.bytes as f64 / elapsed.as_secs_f64());
            *w = RateWindow {
                since: Instant::now(),
                bytes: 0,
            };
        }
    }

    pub fn lag(&self, topic: &str, partition: i32, lag: i64) {
        self.lag
            .get_or_create(&self.partition(topic, partition))
            .set(lag.max(0));
    }

    pub fn checkpointed(&self, group: &str, took: Duration) {
        self.checkpoint_latency
            .get_or_create(&GroupLabel {
                source: self.source.clone(),
                target: self.target.clone(),
                group: group.to_string(),
            })
            .set(i64::try_from(took.as_millis()).unwrap_or(i64::MAX));
    }

    pub fn heartbeat(&self, took: Duration) {
        self.heartbeat_latency
            .get_or_create(&FlowLabel {
                source: self.source.clone(),
                target: self.target.clone(),
            })
            .set(i64::try_from(took.as_millis()).unwrap_or(i64::MAX));
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl strata_process::Exposition for MirrorMetrics {
    fn encode(&self) -> String {
        MirrorMetrics::encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_have_the_documented_names() {
        let m = MirrorMetrics::new("a", "b");
        m.fetched("a.t", 0, now_ms() - 50);
        m.acknowledged("a.t", 0, 3, 30, now_ms() - 60);
        m.lag("a.t", 0, 7);
        m.checkpointed("g", Duration::from_millis(12));
        let text = m.encode();
        for needle in [
            "strata_mirror_record_age_ms{",
            "strata_mirror_replication_latency_ms{",
            "strata_mirror_bytes_total{",
            r#"strata_mirror_records_total{source="a",target="b",topic="a.t",partition="0"} 3"#,
            r#"strata_mirror_records_lag{source="a",target="b",topic="a.t",partition="0"} 7"#,
            r#"strata_mirror_checkpoint_latency_ms{source="a",target="b",group="g"} 12"#,
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
    }
}
