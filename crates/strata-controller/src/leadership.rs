//! Leader elections on request (ElectLeaders: preferred or unclean) and the automatic leader
//! rebalance (`auto.leader.rebalance.enable`): which partitions get a new leader and why the
//! others do not, with Kafka's error codes. Pure: image in, records out.

use kafka_protocol::error::ResponseError;

use crate::image::{MetadataImage, PartitionImage};
use crate::partition_rules::{change, eligible};
use crate::records::MetadataRecord;

/// ElectLeaders' election types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership to the preferred (first) replica if it is live and in sync.
    Preferred,
    /// Elect a leader for a partition without one, from outside the ISR if need be.
    Unclean,
}

impl ElectionType {
    /// The wire value (0 preferred, 1 unclean).
    pub fn from_wire(v: i8) -> Option<ElectionType> {
        match v {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// One partition's election outcome: `Ok` when a leader was elected, else Kafka's error.
pub type ElectionResult = Result<(), (i16, String)>;

fn error(e: ResponseError, message: String) -> (i16, String) {
    (e.code(), message)
}

/// The partition with its new leader, or why there is none.
fn elect_one(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    p: &PartitionImage,
    kind: ElectionType,
) -> Result<(PartitionImage, bool), (i16, String)> {
    let mut n = p.clone();
    match kind {
        ElectionType::Preferred => {
            let Some(preferred) = p.preferred_leader() else {
                return Err(error(
                    ResponseError::PreferredLeaderNotAvailable,
                    format!("Partition {topic}-{partition} has no replicas."),
                ));
            };
            if p.leader == preferred {
                return Err(error(
                    ResponseError::ElectionNotNeeded,
                    "Leader election not needed for topic partition.".into(),
                ));
            }
            if !p.isr.contains(&preferred) || !eligible(image, preferred) {
                return Err(error(
                    ResponseError::PreferredLeaderNotAvailable,
                    format!(
                        "Failed to elect leader for partition {topic}-{partition} under strategy PREFERRED: the preferred replica {preferred} is not live and in sync (ISR {:?}).",
                        p.isr
                    ),
                ));
            }
            n.leader = preferred;
            Ok((n, false))
        }
        ElectionType::Unclean => {
            if p.leader >= 0 {
                return Err(error(
                    ResponseError::ElectionNotNeeded,
                    "Leader election not needed for topic partition.".into(),
                ));
            }
            if let Some(l) = p
                .replicas
                .iter()
                .copied()
                .find(|r| p.isr.contains(r) && eligible(image, *r))
            {
                n.leader = l;
                return Ok((n, false));
            }
            let Some(l) = p.replicas.iter().copied().find(|r| eligible(image, *r)) else {
                return Err(error(
                    ResponseError::EligibleLeadersNotAvailable,
                    format!(
                        "Failed to elect leader for partition {topic}-{partition} under strategy UNCLEAN: no replica is live."
                    ),
                ));
            };
            n.leader = l;
            n.isr = vec![l];
            Ok((n, true))
        }
    }
}

/// ElectLeaders. `partitions` None means every partition; then, as in Kafka, partitions that
/// needed no election are left out of the results.
pub fn elect(
    image: &MetadataImage,
    kind: ElectionType,
    partitions: Option<&[(String, i32)]>,
) -> (Vec<(String, i32, ElectionResult)>, Vec<MetadataRecord>) {
    let mut results = Vec::new();
    let mut records = Vec::new();
    let mut one = |topic: &str, partition: i32, p: Option<&PartitionImage>| -> ElectionResult {
        let Some(p) = p else {
            return Err(error(
                ResponseError::UnknownTopicOrPartition,
                "This server does not host this topic-partition.".into(),
            ));
        };
        let (n, unclean) = elect_one(image, topic, partition, p, kind)?;
        if unclean {
            tracing::warn!(%topic, partition, leader = n.leader,
                "unclean leader election on request: records may be lost");
            records.push(MetadataRecord::UncleanElection {
                topic: topic.to_string(),
                partition,
            });
        }
        records.extend(change(topic, partition, p, n));
        Ok(())
    };
    match partitions {
        Some(wanted) => {
            for (topic, partition) in wanted {
                let r = one(topic, *partition, image.partition(topic, *partition));
                results.push((topic.clone(), *partition, r));
            }
        }
        None => {
            for t in image.topics.values() {
                for (i, p) in &t.partitions {
                    let r = one(&t.name, *i, Some(p));
                    if !matches!(&r, Err((c, _)) if *c == ResponseError::ElectionNotNeeded.code()) {
                        results.push((t.name.clone(), *i, r));
                    }
                }
            }
        }
    }
    (results, records)
}

/// Preferred elections one rebalance round proposes at most; more wait for the next round,
/// which then starts at once (KRaft's controller bounds its rounds the same way).
pub const MAX_ELECTIONS_PER_ROUND: usize = 1000;

/// The automatic leader rebalance, as KRaft's controller does it: a preferred election for every
/// partition whose leader is not its preferred (first) replica while that replica is live and
/// in sync. (`leader.imbalance.per.broker.percentage` is a ZooKeeper-mode setting Kafka's KRaft
/// controller does not read: with a share threshold, the last partitions of a broker that
/// rejoined their ISRs after the round that moved the others back would stay led elsewhere.)
/// Returns the records and whether partitions were left for the next round.
pub fn rebalance(image: &MetadataImage) -> (Vec<MetadataRecord>, bool) {
    let mut records = Vec::new();
    let mut elected = 0;
    for t in image.topics.values() {
        for (i, p) in &t.partitions {
            let Some(r) = p.preferred_leader() else {
                continue;
            };
            if p.leader == r {
                continue;
            }
            if elected == MAX_ELECTIONS_PER_ROUND {
                return (records, true);
            }
            if let Ok((n, _)) = elect_one(image, &t.name, *i, p, ElectionType::Preferred) {
                tracing::info!(topic = %t.name, partition = i, from = p.leader, to = r,
                    "leader rebalance: leadership back to the preferred replica");
                records.extend(change(&t.name, *i, p, n));
                elected += 1;
            }
        }
    }
    (records, false)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::image::{BrokerImage, TopicImage};

    fn image(parts: &[(&[i32], &[i32], i32)], fenced: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in 1..=3 {
            image.brokers.insert(
                id,
                BrokerImage {
                    id,
                    epoch: 1,
                    incarnation_id: Uuid::nil(),
                    rack: None,
                    endpoints: vec![],
                    fenced: fenced.contains(&id),
                    in_controlled_shutdown: false,
                },
            );
        }
        let partitions = parts
            .iter()
            .enumerate()
            .map(|(i, (replicas, isr, leader))| {
                (
                    i as i32,
                    PartitionImage {
                        replicas: replicas.to_vec(),
                        isr: isr.to_vec(),
                        leader: *leader,
                        leader_epoch: 0,
                        partition_epoch: 0,
                        adding_replicas: vec![],
                        removing_replicas: vec![],
                        truncation: None,
                        producer_reset_epoch: None,
                    },
                )
            })
            .collect();
        image.topics.insert(
            "t".into(),
            TopicImage {
                id: Uuid::nil(),
                name: "t".into(),
                partitions,
                configs: BTreeMap::new(),
            },
        );
        image
    }

    fn code(r: &ElectionResult) -> i16 {
        r.as_ref().err().map_or(0, |e| e.0)
    }

    #[test]
    fn preferred_elections_move_leaders_back_or_say_why_not() {
        let img = image(
            &[
                (&[1, 2, 3], &[1, 2, 3], 2), // elected
                (&[2, 1, 3], &[1, 2, 3], 2), // not needed
                (&[3, 1, 2], &[1, 2], 1),    // preferred out of sync
            ],
            &[],
        );
        let wanted: Vec<(String, i32)> = (0..4).map(|i| ("t".to_string(), i)).collect();
        let (results, records) = elect(&img, ElectionType::Preferred, Some(&wanted));
        let codes: Vec<i16> = results.iter().map(|r| code(&r.2)).collect();
        assert_eq!(codes, vec![0, 84, 80, 3]);
        assert_eq!(records.len(), 1);
        match &records[0] {
            MetadataRecord::Partition { state, .. } => {
                assert_eq!(state.leader, 1);
                assert_eq!(state.leader_epoch, 1);
            }
            other => panic!("{other:?}"),
        }
        // Every partition: those that needed nothing are left out.
        let (results, _) = elect(&img, ElectionType::Preferred, None);
        assert_eq!(results.len(), 2);
    }

    #[test]
    fn unclean_elections_only_for_partitions_without_a_leader() {
        let img = image(
            &[
                (&[1, 2, 3], &[1], -1), // 1 fenced: 2 elected unclean
                (&[1, 2, 3], &[1, 2, 3], 2),
            ],
            &[1],
        );
        let wanted: Vec<(String, i32)> = (0..2).map(|i| ("t".to_string(), i)).collect();
        let (results, records) = elect(&img, ElectionType::Unclean, Some(&wanted));
        assert_eq!(code(&results[0].2), 0);
        assert_eq!(code(&results[1].2), 84);
        assert!(records
            .iter()
            .any(|r| matches!(r, MetadataRecord::UncleanElection { .. })));
    }

    #[test]
    fn rebalance_moves_every_partition_back_to_a_live_in_sync_preferred_replica() {
        // Broker 1 prefers 2 partitions and leads neither; broker 2 leads what it prefers.
        let img = image(
            &[
                (&[1, 2, 3], &[1, 2, 3], 2),
                (&[1, 3, 2], &[1, 2, 3], 3),
                (&[2, 1, 3], &[1, 2, 3], 2),
            ],
            &[],
        );
        let (records, more) = rebalance(&img);
        assert_eq!(records.len(), 2);
        assert!(!more);
        // One partition of many not led by its preferred replica still moves back (no share
        // threshold): broker 1 leads 19 of the 20 it prefers.
        let mut parts: Vec<(&[i32], &[i32], i32)> = vec![(&[1, 2, 3], &[1, 2, 3], 1); 19];
        parts.push((&[1, 2, 3], &[1, 2, 3], 2));
        let (records, _) = rebalance(&image(&parts, &[]));
        assert_eq!(records.len(), 1);
        // A fenced preferred replica, or one outside the ISR, gets nothing back.
        let img = image(&[(&[1, 2, 3], &[2, 3], 2)], &[1]);
        assert!(rebalance(&img).0.is_empty());
        let img = image(&[(&[1, 2, 3], &[2, 3], 2)], &[]);
        assert!(rebalance(&img).0.is_empty());
    }
}
