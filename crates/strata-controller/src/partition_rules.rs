//! The rules every change of a partition follows, shared by the controller's requests and
//! by reassignments: which brokers may lead or join an ISR, the change record with its epochs,
//! the checks of a replica list, and Kafka's errors for them. Pure, below both.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;

use crate::image::{MetadataImage, PartitionImage};
use crate::records::MetadataRecord;
use crate::types::ControllerError;

pub(crate) fn kafka_error(e: ResponseError, message: impl Into<String>) -> ControllerError {
    ControllerError::Kafka {
        code: e.code(),
        message: message.into(),
    }
}

/// May this broker lead or join an ISR (registered, unfenced, not shutting down)?
pub(crate) fn eligible(image: &MetadataImage, id: i32) -> bool {
    image
        .brokers
        .get(&id)
        .is_some_and(|b| !b.fenced && !b.in_controlled_shutdown)
}

/// The record for a partition change, with epochs bumped: a new leader bumps both epochs, an
/// ISR or replica change the partition epoch. `None` when nothing changed.
pub(crate) fn change(
    topic: &str,
    partition: i32,
    old: &PartitionImage,
    mut new: PartitionImage,
) -> Option<MetadataRecord> {
    if new.leader != old.leader {
        new.leader_epoch = old.leader_epoch + 1;
        new.partition_epoch = old.partition_epoch + 1;
    } else if new.isr != old.isr
        || new.replicas != old.replicas
        || new.adding_replicas != old.adding_replicas
        || new.removing_replicas != old.removing_replicas
    {
        new.leader_epoch = old.leader_epoch;
        new.partition_epoch = old.partition_epoch + 1;
    } else {
        return None;
    }
    Some(MetadataRecord::Partition {
        topic: topic.to_string(),
        partition,
        state: new,
    })
}

pub(crate) fn invalid_assignment(message: String) -> (i16, String) {
    (ResponseError::InvalidReplicaAssignment.code(), message)
}

pub(crate) fn check_replicas(
    image: &MetadataImage,
    replicas: &[i32],
    expected_len: Option<usize>,
) -> Result<(), (i16, String)> {
    if replicas.is_empty() {
        return Err(invalid_assignment(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    if let Some(n) = expected_len.filter(|n| *n != replicas.len()) {
        return Err(invalid_assignment(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {n} replica(s).",
            replicas.len()
        )));
    }
    let mut seen = BTreeSet::new();
    for r in replicas {
        if !seen.insert(*r) {
            return Err(invalid_assignment(format!(
                "The manual partition assignment includes the broker {r} more than once."
            )));
        }
        if !image.brokers.contains_key(r) {
            return Err(invalid_assignment(format!(
                "The manual partition assignment includes broker {r}, but no such broker is registered."
            )));
        }
    }
    Ok(())
}
