//! Partition reassignment as KIP-455 defines it: a new target replica list is merged into the
//! partition (target first, then the replicas being removed), the added replicas catch up and
//! join the ISR, and once every target replica is in sync the partition takes the target list
//! (leaving the ISR of the removed ones, the leader moving if it was removed). A reassignment
//! can be replaced by another or cancelled (back to the replicas before it, minus those it
//! added). Pure: image in, records out.

use kafka_protocol::error::ResponseError;

use crate::image::{MetadataImage, PartitionImage};
use crate::partition_rules::{change, check_replicas, eligible, kafka_error};
use crate::records::MetadataRecord;
use crate::types::ControllerError;

/// One partition's reassignment as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub removing_replicas: Vec<i32>,
}

/// Completes `p`'s reassignment in place when every target replica is in the ISR: replicas
/// become the target, the removed replicas leave the ISR, a removed leader hands over to the
/// first eligible target replica. No-op when there is no reassignment or it cannot complete.
pub fn try_complete(image: &MetadataImage, p: &mut PartitionImage) {
    if !p.is_reassigning() {
        return;
    }
    let target = p.target_replicas();
    if !target.iter().all(|r| p.isr.contains(r)) {
        return;
    }
    p.isr.retain(|r| target.contains(r));
    if !target.contains(&p.leader) {
        p.leader = target
            .iter()
            .copied()
            .find(|r| eligible(image, *r))
            .unwrap_or(-1);
    }
    p.replicas = target;
    p.adding_replicas.clear();
    p.removing_replicas.clear();
}

/// AlterPartitionReassignments for one partition: `Some(target)` starts (or replaces) a
/// reassignment, `None` cancels the ongoing one. Returns the records (none when nothing
/// changes) or Kafka's error for the partition.
/// `allow_rf_change` false (AlterPartitionReassignments v1, KIP-860) refuses a target whose
/// length differs from the partition's replication factor.
pub fn alter(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
    allow_rf_change: bool,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let p = image
        .partition(topic, partition)
        .ok_or_else(|| {
            kafka_error(
                ResponseError::UnknownTopicOrPartition,
                "This server does not host this topic-partition.",
            )
        })?
        .clone();
    let mut n = match target {
        Some(target) => {
            check_replicas(image, target, None)
                .map_err(|(code, message)| ControllerError::Kafka { code, message })?;
            let rf = p.replicas.len() - p.adding_replicas.len();
            if !allow_rf_change && target.len() != rf {
                return Err(kafka_error(
                    ResponseError::InvalidReplicationFactor,
                    format!(
                        "The replication factor is changed from {rf} to {} but allowReplicationFactorChange is false.",
                        target.len()
                    ),
                ));
            }
            start(&p, target)
        }
        None => {
            if !p.is_reassigning() {
                return Err(kafka_error(
                    ResponseError::NoReassignmentInProgress,
                    format!("No ongoing reassignment for partition {topic}-{partition}."),
                ));
            }
            revert(image, &p)
        }
    };
    try_complete(image, &mut n);
    Ok(change(topic, partition, &p, n).into_iter().collect())
}

/// The partition with `target` merged in (from its current replica list, which holds an
/// ongoing reassignment's added replicas too).
fn start(p: &PartitionImage, target: &[i32]) -> PartitionImage {
    let current = &p.replicas;
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| !current.contains(r))
        .collect();
    let removing: Vec<i32> = current
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let mut n = p.clone();
    n.replicas = target.iter().chain(&removing).copied().collect();
    n.adding_replicas = adding;
    n.removing_replicas = removing;
    // Replicas an earlier reassignment added and this one keeps are not in sync yet either.
    for r in &p.adding_replicas {
        if target.contains(r) && !n.isr.contains(r) && !n.adding_replicas.contains(r) {
            n.adding_replicas.push(*r);
        }
    }
    n
}

/// The partition as it was before its reassignment: the added replicas leave the replica list
/// and the ISR; if one of them led, leadership goes back to an original in-sync replica.
fn revert(image: &MetadataImage, p: &PartitionImage) -> PartitionImage {
    let mut n = p.clone();
    n.replicas.retain(|r| !p.adding_replicas.contains(r));
    let isr: Vec<i32> = n
        .isr
        .iter()
        .copied()
        .filter(|r| !p.adding_replicas.contains(r))
        .collect();
    if !isr.is_empty() {
        n.isr = isr;
    }
    if p.adding_replicas.contains(&n.leader) {
        n.leader = n
            .replicas
            .iter()
            .copied()
            .find(|r| n.isr.contains(r) && eligible(image, *r))
            .unwrap_or(-1);
    }
    n.adding_replicas.clear();
    n.removing_replicas.clear();
    n
}

/// Every ongoing reassignment, or those of the named partitions.
pub fn list(
    image: &MetadataImage,
    partitions: Option<&[(String, i32)]>,
) -> Vec<OngoingReassignment> {
    let describe = |topic: &str, partition: i32, p: &PartitionImage| OngoingReassignment {
        topic: topic.to_string(),
        partition,
        replicas: p.replicas.clone(),
        adding_replicas: p.adding_replicas.clone(),
        removing_replicas: p.removing_replicas.clone(),
    };
    match partitions {
        Some(wanted) => wanted
            .iter()
            .filter_map(|(t, i)| {
                image
                    .partition(t, *i)
                    .filter(|p| p.is_reassigning())
                    .map(|p| describe(t, *i, p))
            })
            .collect(),
        None => image
            .topics
            .values()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|(_, p)| p.is_reassigning())
                    .map(|(i, p)| describe(&t.name, *i, p))
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::image::{BrokerImage, TopicImage};

    fn image(replicas: &[i32], isr: &[i32], leader: i32) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in 1..=6 {
            image.brokers.insert(
                id,
                BrokerImage {
                    id,
                    epoch: 1,
                    incarnation_id: Uuid::nil(),
                    rack: None,
                    endpoints: vec![],
                    fenced: false,
                    in_controlled_shutdown: false,
                },
            );
        }
        let p = PartitionImage {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 3,
            partition_epoch: 7,
            adding_replicas: vec![],
            removing_replicas: vec![],
            truncation: None,
            producer_reset_epoch: None,
        };
        image.topics.insert(
            "t".into(),
            TopicImage {
                id: Uuid::nil(),
                name: "t".into(),
                partitions: BTreeMap::from([(0, p)]),
                configs: BTreeMap::new(),
            },
        );
        image
    }

    fn applied(image: &mut MetadataImage, records: Vec<MetadataRecord>) -> PartitionImage {
        for r in records {
            if let MetadataRecord::Partition { state, .. } = r {
                image
                    .topics
                    .get_mut("t")
                    .unwrap()
                    .partitions
                    .insert(0, state);
            }
        }
        image.partition("t", 0).unwrap().clone()
    }

    #[test]
    fn a_move_merges_waits_for_the_isr_then_completes_and_moves_the_leader() {
        let mut img = image(&[1, 2, 3], &[1, 2, 3], 1);
        let records = alter(&img, "t", 0, Some(&[4, 2, 3]), true).unwrap();
        let p = applied(&mut img, records);
        assert_eq!(p.replicas, vec![4, 2, 3, 1]);
        assert_eq!(p.adding_replicas, vec![4]);
        assert_eq!(p.removing_replicas, vec![1]);
        assert_eq!(p.leader, 1, "the leader stays until the move completes");
        assert_eq!(p.partition_epoch, 8);
        assert_eq!(list(&img, None).len(), 1);

        // The new replica joins the ISR: the reassignment completes in the same change.
        let mut n = p.clone();
        n.isr.push(4);
        try_complete(&img, &mut n);
        assert_eq!(n.replicas, vec![4, 2, 3]);
        assert_eq!(n.isr, vec![2, 3, 4]);
        assert_eq!(n.leader, 4);
        assert!(!n.is_reassigning());
    }

    #[test]
    fn the_leaders_isr_expansion_completes_the_reassignment() {
        let mut img = image(&[1, 2, 3], &[1, 2, 3], 1);
        let p = {
            let r = alter(&img, "t", 0, Some(&[4, 2, 3]), true).unwrap();
            applied(&mut img, r)
        };
        let (state, record) = crate::controller::alter_partition(
            &img,
            1,
            1,
            Uuid::nil(),
            0,
            p.leader_epoch,
            p.partition_epoch,
            &[1, 2, 3, 4],
        )
        .unwrap();
        assert!(record.is_some());
        assert_eq!(state.replicas, vec![4, 2, 3]);
        assert_eq!(state.isr, vec![2, 3, 4]);
        assert_eq!(state.leader, 4, "the removed leader handed over");
        assert_eq!(state.leader_epoch, p.leader_epoch + 1);
    }

    #[test]
    fn shrinking_the_replica_list_completes_at_once() {
        let mut img = image(&[1, 2, 3], &[1, 2, 3], 2);
        let p = {
            let r = alter(&img, "t", 0, Some(&[1, 3]), true).unwrap();
            applied(&mut img, r)
        };
        assert_eq!(p.replicas, vec![1, 3]);
        assert_eq!(p.isr, vec![1, 3]);
        assert_eq!(p.leader, 1);
        assert_eq!(p.leader_epoch, 4);
        assert!(list(&img, None).is_empty());
    }

    #[test]
    fn cancel_restores_the_original_replicas_and_nothing_to_cancel_is_an_error() {
        let mut img = image(&[1, 2, 3], &[1, 2, 3], 1);
        let err = alter(&img, "t", 0, None, true).unwrap_err();
        assert!(
            matches!(err, ControllerError::Kafka { code: 85, .. }),
            "{err:?}"
        );
        {
            let r = alter(&img, "t", 0, Some(&[4, 5, 6]), true).unwrap();
            applied(&mut img, r)
        };
        let p = {
            let r = alter(&img, "t", 0, None, true).unwrap();
            applied(&mut img, r)
        };
        assert_eq!(p.replicas, vec![1, 2, 3]);
        assert_eq!(p.isr, vec![1, 2, 3]);
        assert!(!p.is_reassigning());
    }

    #[test]
    fn bad_targets_are_kafkas_errors_and_change_nothing() {
        let img = image(&[1, 2, 3], &[1, 2, 3], 1);
        for (target, code) in [(vec![1, 1, 2], 39), (vec![1, 9], 39), (vec![], 39)] {
            let err = alter(&img, "t", 0, Some(&target), true).unwrap_err();
            assert!(
                matches!(err, ControllerError::Kafka { code: c, .. } if c == code),
                "{target:?}: {err:?}"
            );
        }
        let err = alter(&img, "t", 5, Some(&[1, 2, 3]), true).unwrap_err();
        assert!(
            matches!(err, ControllerError::Kafka { code: 3, .. }),
            "{err:?}"
        );
        let err = alter(&img, "t", 0, Some(&[1, 2]), false).unwrap_err();
        assert!(
            matches!(err, ControllerError::Kafka { code: 38, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_replacing_reassignment_keeps_waiting_for_replicas_still_catching_up() {
        let mut img = image(&[1, 2, 3], &[1, 2, 3], 1);
        {
            let r = alter(&img, "t", 0, Some(&[4, 2, 3]), true).unwrap();
            applied(&mut img, r)
        };
        let p = {
            let r = alter(&img, "t", 0, Some(&[4, 5, 3]), true).unwrap();
            applied(&mut img, r)
        };
        assert_eq!(p.replicas, vec![4, 5, 3, 2, 1]);
        assert_eq!(p.adding_replicas, vec![5, 4]);
        assert_eq!(p.removing_replicas, vec![2, 1]);
    }
}
