//! Replication lag of a flow from two probes: for every partition the mirror copies (the
//! topics its filter selects on the side it reads from, named on the other side as its
//! naming mode says), the reading side's high watermark minus the writing side's log end.
//! Pure: the probes are taken by the reconciler. Selection and naming are `strata-mirror`'s
//! own ([`TopicSelection`], [`ReplicationPolicy`]), so the operator counts exactly the
//! partitions the mirror copies.

use std::collections::BTreeMap;

use strata_mirror::{ReplicationPolicy, TopicSelection};

use crate::flow::plan::FlowPlan;
use crate::kafka::SideOffsets;

/// Lag of one partition: records on the active side not yet on the standby.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// High watermark on the side the mirror reads from.
    pub source_end: i64,
    /// Log end of the mirrored partition on the side it writes to (0 when not created yet).
    pub target_end: i64,
}

impl PartitionLag {
    /// Records still to copy (never negative: a standby ahead counts as caught up here; the
    /// mirror itself stops such a partition in Preserve mode).
    pub fn records(&self) -> i64 {
        (self.source_end - self.target_end).max(0)
    }
}

/// The flow's lag, partition by partition, reading `reading` and writing `writing`.
pub fn lag(plan: &FlowPlan, reading: &SideOffsets, writing: &SideOffsets) -> Vec<PartitionLag> {
    let config = plan.mirror_config();
    // The plan validated the filter; a failure here cannot happen, and counts nothing.
    let Ok(selection) = TopicSelection::compile(&config.topics) else {
        return Vec::new();
    };
    let policy = ReplicationPolicy::new(config.naming, &config.source.alias, &config.target.alias);
    let empty = BTreeMap::new();
    let mut out = Vec::new();
    for (topic, partitions) in &reading.end_offsets {
        if !policy.should_mirror(topic, selection.matches(topic)) {
            continue;
        }
        let remote = writing
            .end_offsets
            .get(&policy.remote_topic(topic))
            .unwrap_or(&empty);
        for (partition, end) in partitions {
            out.push(PartitionLag {
                topic: topic.clone(),
                partition: *partition,
                source_end: *end,
                target_end: remote.get(partition).copied().unwrap_or(0),
            });
        }
    }
    out
}

/// Sum of [`PartitionLag::records`].
pub fn total(lags: &[PartitionLag]) -> i64 {
    lags.iter().map(PartitionLag::records).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::plan::PlanContext;
    use crate::flow::plan::{plan, Referenced};
    use serde_json::json;
    use strata_api::{ActiveSide, KafkaCluster, MirrorFlow};

    fn side(offsets: &[(&str, i32, i64)]) -> SideOffsets {
        let mut s = SideOffsets::default();
        for (t, p, o) in offsets {
            s.end_offsets
                .entry((*t).to_owned())
                .or_default()
                .insert(*p, *o);
        }
        s
    }

    fn flow_plan(naming: &str, active: ActiveSide) -> FlowPlan {
        let flow: MirrorFlow = serde_json::from_value(json!({
            "apiVersion": "kafka.strata.dev/v1alpha1", "kind": "MirrorFlow",
            "metadata": {"name": "f", "namespace": "ns"},
            "spec": {"source": {"alias": "east", "clusterRef": {"name": "east"}},
                     "target": {"alias": "west", "clusterRef": {"name": "west"}},
                     "topics": {"include": ["orders.*"]}, "naming": naming},
        }))
        .unwrap();
        let cluster = |name: &str| -> KafkaCluster {
            serde_json::from_value(json!({
                "apiVersion": "kafka.strata.dev/v1alpha1", "kind": "KafkaCluster",
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"racks": [{"name": "r", "brokers": 1}], "storage": {"size": "1Gi"}},
            }))
            .unwrap()
        };
        let referenced = Referenced {
            source: Some(cluster("east")),
            target: Some(cluster("west")),
        };
        plan(&flow, &referenced, active, &PlanContext::new("img")).unwrap()
    }

    #[test]
    fn identity_lag_sums_selected_partitions_only() {
        let p = flow_plan("Identity", ActiveSide::Source);
        let east = side(&[
            ("orders", 0, 10),
            ("orders", 1, 5),
            ("other", 0, 99),
            ("__consumer_offsets", 0, 7),
        ]);
        let west = side(&[("orders", 0, 8)]);
        let l = lag(&p, &east, &west);
        assert_eq!(l.len(), 2);
        assert_eq!(total(&l), 2 + 5);
    }

    #[test]
    fn prefixed_names_are_looked_up_on_the_writing_side() {
        let p = flow_plan("Prefixed", ActiveSide::Source);
        let east = side(&[("orders", 0, 10)]);
        let west = side(&[("east.orders", 0, 10), ("orders", 0, 0)]);
        assert_eq!(total(&lag(&p, &east, &west)), 0);
        // Reversed: west is read, its topics land on east as west.<topic>.
        let p = flow_plan("Prefixed", ActiveSide::Target);
        let west = side(&[("orders", 0, 4), ("east.orders", 0, 10)]);
        let east = side(&[("west.orders", 0, 1)]);
        assert_eq!(
            total(&lag(&p, &west, &east)),
            3,
            "east.orders is a cycle, skipped"
        );
    }
}
