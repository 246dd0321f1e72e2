//! What the broker serves on `strata.metrics.address` through `strata_process::serve_endpoints`:
//! `/metrics` (the event metrics of [`crate::metrics`] plus gauges computed at each scrape from
//! the hosted partitions, the metadata image, the quorum and the group coordinator), `/healthz`
//! and `/readyz` ([`crate::metrics::readiness`] over the broker's state). Reads the broker,
//! changes nothing; the scrape-time work is proportional to the partitions and groups hosted
//! here and never runs on the request path.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use strata_kafka::now_ms;

use crate::broker::Broker;
use crate::metrics::{self, LeaderHealth, LedPartition, ReadinessView};

/// The broker's endpoints; serve it with `strata_process::serve_endpoints`.
pub struct BrokerExposition {
    broker: Arc<Broker>,
    registry: Registry,
}

impl BrokerExposition {
    pub fn new(broker: Arc<Broker>) -> BrokerExposition {
        let mut registry = Registry::with_prefix("strata_broker");
        broker.metrics.register(&mut registry);
        registry.register_collector(Box::new(BrokerState {
            broker: broker.clone(),
        }));
        BrokerExposition { broker, registry }
    }

    /// What `/readyz` looks at, now.
    pub fn readiness_view(&self) -> ReadinessView {
        let b = &self.broker;
        let image = b.image();
        let last = b.last_heartbeat_ms.load(Ordering::Acquire);
        ReadinessView {
            shutting_down: b.shutting_down.load(Ordering::Acquire) || b.shutdown.is_cancelled(),
            broker_epoch: b.epoch.load(Ordering::Acquire),
            unfenced: *b.ready.borrow(),
            fenced_in_image: image
                .brokers
                .get(&b.config.node_id)
                .is_some_and(|me| me.fenced),
            heartbeat_age_ms: (last >= 0).then(|| (now_ms() - last).max(0)),
            session_timeout_ms: i64::try_from(b.config.cluster.session_timeout_ms)
                .unwrap_or(i64::MAX),
            serving: *b.serving.borrow(),
            reconciled_offset: *b.reconciled.borrow(),
            image_offset: image.offset,
        }
    }
}

impl strata_process::Exposition for BrokerExposition {
    fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; a collector's error would only cut the text short.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding the metrics failed");
        }
        out
    }

    fn readiness(&self) -> Result<(), String> {
        metrics::readiness(&self.readiness_view())
    }
}

/// The gauges computed at each scrape.
struct BrokerState {
    broker: Arc<Broker>,
}

impl fmt::Debug for BrokerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerState")
            .field("node_id", &self.broker.config.node_id)
            .finish()
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), fmt::Error> {
    let g = ConstGauge::new(value);
    let metric = encoder.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(metric)
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for BrokerState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let b = &self.broker;
        let image = b.image();
        let mut hosted = b.partitions.all();
        let health = LeaderHealth::of(hosted.iter().filter_map(|p| {
            let (replicas, isr) = p.leader_replica_counts()?;
            let min_isr = image
                .topics
                .get(&p.topic)
                .map_or(b.config.min_insync_replicas.max(1) as usize, |t| {
                    b.min_insync_replicas(t)
                });
            Some(LedPartition {
                replicas,
                isr,
                min_isr,
            })
        }));
        gauge(
            &mut encoder,
            "partitions",
            "Partition replicas hosted on this broker",
            count(hosted.len()),
        )?;
        gauge(
            &mut encoder,
            "leader_partitions",
            "Partitions this broker leads",
            count(health.leaders),
        )?;
        gauge(
            &mut encoder,
            "under_replicated_partitions",
            "Partitions led here whose ISR is smaller than their replica set",
            count(health.under_replicated),
        )?;
        gauge(
            &mut encoder,
            "under_min_isr_partitions",
            "Partitions led here whose ISR is below min.insync.replicas (acks=all refused)",
            count(health.under_min_isr),
        )?;
        gauge(
            &mut encoder,
            "offline_partitions",
            "Partitions without a leader in this broker's metadata image (cluster-wide)",
            count(metrics::offline_partitions(&image)),
        )?;
        {
            // Replicated in the metadata log: every broker reports the cluster's count.
            let c = ConstCounter::new(b.quorum.unclean_elections());
            let metric = encoder.encode_descriptor(
                "unclean_leader_elections",
                "Unclean leader elections the controller made (cluster-wide, from the metadata log)",
                None,
                c.metric_type(),
            )?;
            c.encode(metric)?;
        }
        let (segment_file_budget, segment_files_open) = strata_log::open_files::usage();
        gauge(
            &mut encoder,
            "log_segment_files_open",
            "Segment files open now (the least recently used close beyond the budget)",
            count(segment_files_open),
        )?;
        gauge(
            &mut encoder,
            "log_segment_files_budget",
            "Segment files kept open at most (half the soft open-files limit)",
            count(segment_file_budget),
        )?;
        gauge(
            &mut encoder,
            "active_controller",
            "1 on the active controller of the metadata quorum, else 0",
            i64::from(b.quorum.is_active()),
        )?;

        {
            let mut sizes = encoder.encode_descriptor(
                "log_size_bytes",
                "Bytes of the log of each partition replica hosted here",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            hosted.sort_by(|a, b| (&a.topic, a.index).cmp(&(&b.topic, b.index)));
            for p in &hosted {
                let partition = p.index.to_string();
                let labels = [
                    ("topic", p.topic.as_str()),
                    ("partition", partition.as_str()),
                ];
                let size = i64::try_from(p.log.size_bytes()).unwrap_or(i64::MAX);
                ConstGauge::new(size).encode(sizes.encode_family(&labels)?)?;
            }
        }

        let mut lag = encoder.encode_descriptor(
            "consumer_group_lag",
            "Records between each group's committed offsets and the high watermarks, for the groups \
             coordinated here (high watermarks of partitions hosted elsewhere sampled every few seconds)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        let remote = b.remote_ends.snapshot();
        let end_of = |topic: &str, partition: i32| match b.partitions.get(topic, partition) {
            Some(p) => Some(p.high_watermark()),
            None => remote.get(&(topic.to_string(), partition)).copied(),
        };
        for (group, committed) in b.groups.loaded_offsets() {
            if let Some(records) = metrics::group_lag(committed, end_of) {
                let labels = [("group", group.as_str())];
                ConstGauge::new(records).encode(lag.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
