//! The active controller's decisions: given the applied image and a request, the records to
//! propose (or the Kafka error). Pure: no Raft, no clock; the quorum serialises the calls on
//! the leader, proposes the records and answers from the image they produce.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use rand::Rng;
use uuid::Uuid;

use crate::image::{MetadataImage, PartitionImage, TopicImage};
pub(crate) use crate::partition_rules::{
    change, check_replicas, eligible, invalid_assignment, kafka_error,
};
use crate::placement::{place, PlacementBroker};
use crate::records::MetadataRecord;
use crate::types::{ControllerError, HeartbeatReply, NewTopic, RegisterBroker, TopicResult};

pub const UNCLEAN_CONFIG: &str = "unclean.leader.election.enable";

/// `unclean.leader.election.enable` of a topic: topic config, else cluster config, else default.
pub fn unclean_allowed(image: &MetadataImage, topic: &TopicImage, default: bool) -> bool {
    topic
        .configs
        .get(UNCLEAN_CONFIG)
        .or_else(|| image.cluster_configs.get(UNCLEAN_CONFIG))
        .map_or(default, |v| v.trim().eq_ignore_ascii_case("true"))
}

fn check_epoch(image: &MetadataImage, id: i32, epoch: i64) -> Result<(), ControllerError> {
    match image.brokers.get(&id) {
        None => Err(kafka_error(
            ResponseError::BrokerIdNotRegistered,
            format!("Broker {id} is not registered."),
        )),
        Some(b) if b.epoch != epoch => Err(kafka_error(
            ResponseError::StaleBrokerEpoch,
            format!(
                "Expected broker epoch {}, but got broker epoch {epoch}.",
                b.epoch
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// Fences `id`: its leaderships move to live ISR members (or an unclean choice, or -1) and it
/// leaves every ISR that keeps another member.
pub fn fence(image: &MetadataImage, id: i32, unclean_default: bool) -> Vec<MetadataRecord> {
    let Some(b) = image.brokers.get(&id) else {
        return Vec::new();
    };
    let mut records = vec![MetadataRecord::BrokerState {
        id,
        fenced: true,
        in_controlled_shutdown: b.in_controlled_shutdown,
    }];
    let live = |r: i32| r != id && eligible(image, r);
    for (name, topic) in &image.topics {
        let unclean = unclean_allowed(image, topic, unclean_default);
        for (&pid, p) in &topic.partitions {
            if !p.isr.contains(&id) && p.leader != id {
                continue;
            }
            let mut n = p.clone();
            if n.isr.contains(&id) && n.isr.len() > 1 {
                n.isr.retain(|r| *r != id);
            }
            if n.leader == id {
                if let Some(l) = n
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| n.isr.contains(r) && live(*r))
                {
                    n.leader = l;
                } else if let Some(l) = n.replicas.iter().copied().find(|r| unclean && live(*r)) {
                    tracing::warn!(topic = %name, partition = pid, leader = l,
                        "unclean leader election: no in-sync replica is live; records may be lost");
                    n.leader = l;
                    n.isr = vec![l];
                    records.push(MetadataRecord::UncleanElection {
                        topic: name.clone(),
                        partition: pid,
                    });
                } else {
                    n.leader = -1;
                }
            }
            records.extend(change(name, pid, p, n));
        }
    }
    records
}

/// Unfences `id`: offline partitions with it in the ISR (or, unclean, as a replica) get it as
/// leader.
pub fn unfence(image: &MetadataImage, id: i32, unclean_default: bool) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::BrokerState {
        id,
        fenced: false,
        in_controlled_shutdown: false,
    }];
    for (name, topic) in &image.topics {
        let unclean = unclean_allowed(image, topic, unclean_default);
        for (&pid, p) in &topic.partitions {
            if p.leader != -1 || !p.replicas.contains(&id) {
                continue;
            }
            let mut n = p.clone();
            if p.isr.contains(&id) {
                n.leader = id;
            } else if unclean {
                tracing::warn!(topic = %name, partition = pid, leader = id,
                    "unclean leader election of a replica outside the ISR; records may be lost");
                n.leader = id;
                n.isr = vec![id];
                records.push(MetadataRecord::UncleanElection {
                    topic: name.clone(),
                    partition: pid,
                });
            } else {
                continue;
            }
            records.extend(change(name, pid, p, n));
        }
    }
    records
}

/// Whether some leadership of `id` could still move to another eligible ISR member.
fn leadership_movable(image: &MetadataImage, id: i32) -> bool {
    image
        .topics
        .values()
        .flat_map(|t| t.partitions.values())
        .any(|p| p.leader == id && p.isr.iter().any(|r| *r != id && eligible(image, *r)))
}

/// Controlled shutdown of `id`: leaderships move to other eligible ISR members, it leaves the
/// ISRs that keep another member.
pub fn controlled_shutdown(image: &MetadataImage, id: i32) -> Vec<MetadataRecord> {
    let Some(b) = image.brokers.get(&id) else {
        return Vec::new();
    };
    let mut records = Vec::new();
    if !b.in_controlled_shutdown {
        records.push(MetadataRecord::BrokerState {
            id,
            fenced: b.fenced,
            in_controlled_shutdown: true,
        });
    }
    let other = |r: i32| r != id && eligible(image, r);
    for (name, topic) in &image.topics {
        for (&pid, p) in &topic.partitions {
            let mut n = p.clone();
            if p.leader == id {
                let Some(l) = p
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| p.isr.contains(r) && other(*r))
                else {
                    continue;
                };
                n.leader = l;
                n.isr.retain(|r| *r != id);
            } else if p.isr.contains(&id) && p.isr.len() > 1 {
                n.isr.retain(|r| *r != id);
            }
            records.extend(change(name, pid, p, n));
        }
    }
    records
}

/// BrokerRegistration: a new incarnation of a live session is a duplicate.
pub fn register(
    image: &MetadataImage,
    reg: &RegisterBroker,
    session_alive: bool,
    unclean_default: bool,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let mut records = Vec::new();
    if let Some(b) = image.brokers.get(&reg.broker_id) {
        if b.incarnation_id != reg.incarnation_id && session_alive && !b.fenced {
            return Err(kafka_error(
                ResponseError::DuplicateBrokerRegistration,
                format!(
                    "Another broker is registered with that broker id {} (incarnation {}).",
                    reg.broker_id, b.incarnation_id
                ),
            ));
        }
        // The old incarnation's leaderships move away before it re-registers fenced.
        records.extend(fence(image, reg.broker_id, unclean_default));
    }
    records.push(MetadataRecord::RegisterBroker {
        id: reg.broker_id,
        incarnation_id: reg.incarnation_id,
        rack: reg.rack.clone(),
        endpoints: reg.endpoints.clone(),
    });
    Ok(records)
}

/// BrokerHeartbeat: the records it causes (the reply is read from the image afterwards).
pub fn heartbeat(
    image: &MetadataImage,
    id: i32,
    epoch: i64,
    metadata_offset: u64,
    want_fence: bool,
    want_shut_down: bool,
    unclean_default: bool,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    check_epoch(image, id, epoch)?;
    let Some(b) = image.brokers.get(&id) else {
        return Ok(Vec::new());
    };
    Ok(if want_shut_down {
        controlled_shutdown(image, id)
    } else if want_fence {
        if b.fenced {
            Vec::new()
        } else {
            fence(image, id, unclean_default)
        }
    } else if b.fenced && metadata_offset as i64 >= b.epoch {
        unfence(image, id, unclean_default)
    } else {
        Vec::new()
    })
}

/// The heartbeat answer from the image after the heartbeat's records were applied.
pub fn heartbeat_reply(
    image: &MetadataImage,
    id: i32,
    metadata_offset: u64,
    want_shut_down: bool,
) -> HeartbeatReply {
    let b = image.brokers.get(&id);
    HeartbeatReply {
        is_caught_up: b.is_some_and(|b| metadata_offset as i64 >= b.epoch),
        is_fenced: b.is_none_or(|b| b.fenced),
        should_shut_down: want_shut_down && !leadership_movable(image, id),
    }
}

/// AlterPartition with Kafka's checks. `Ok(None)` when the ISR is unchanged.
#[allow(clippy::too_many_arguments)]
pub fn alter_partition(
    image: &MetadataImage,
    broker_id: i32,
    broker_epoch: i64,
    topic_id: Uuid,
    partition: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    new_isr: &[i32],
) -> Result<(PartitionImage, Option<MetadataRecord>), ControllerError> {
    check_epoch(image, broker_id, broker_epoch).map_err(|e| match e {
        ControllerError::Kafka { message, .. } => {
            kafka_error(ResponseError::StaleBrokerEpoch, message)
        }
        other => other,
    })?;
    let topic = image.topic_by_id(topic_id).ok_or_else(|| {
        kafka_error(
            ResponseError::UnknownTopicId,
            format!("Unknown topic id {topic_id}."),
        )
    })?;
    let p = topic.partitions.get(&partition).ok_or_else(|| {
        kafka_error(
            ResponseError::UnknownTopicOrPartition,
            format!("Unknown partition {}-{partition}.", topic.name),
        )
    })?;
    if p.leader != broker_id {
        return Err(kafka_error(
            ResponseError::NotLeaderOrFollower,
            format!(
                "Broker {broker_id} is not the leader of {}-{partition} (leader {}).",
                topic.name, p.leader
            ),
        ));
    }
    if leader_epoch != p.leader_epoch {
        return Err(kafka_error(
            ResponseError::FencedLeaderEpoch,
            format!(
                "Leader epoch {leader_epoch} is not the current {}.",
                p.leader_epoch
            ),
        ));
    }
    if partition_epoch != p.partition_epoch {
        return Err(kafka_error(
            ResponseError::InvalidUpdateVersion,
            format!(
                "Partition epoch {partition_epoch} is not the current {}.",
                p.partition_epoch
            ),
        ));
    }
    let distinct: BTreeSet<i32> = new_isr.iter().copied().collect();
    if distinct.len() != new_isr.len() || !new_isr.contains(&p.leader) {
        return Err(kafka_error(
            ResponseError::InvalidRequest,
            format!(
                "Invalid ISR {new_isr:?}: it must contain the leader {} once.",
                p.leader
            ),
        ));
    }
    if let Some(r) = new_isr.iter().find(|r| !p.replicas.contains(r)) {
        return Err(kafka_error(
            ResponseError::InvalidRequest,
            format!("Invalid ISR {new_isr:?}: broker {r} is not a replica."),
        ));
    }
    if new_isr == p.isr.as_slice() {
        return Ok((p.clone(), None));
    }
    if let Some(r) = new_isr
        .iter()
        .find(|r| !p.isr.contains(r) && !eligible(image, **r))
    {
        return Err(kafka_error(
            ResponseError::IneligibleReplica,
            format!("Invalid ISR {new_isr:?}: broker {r} is fenced or shutting down."),
        ));
    }
    let mut n = p.clone();
    n.isr = new_isr.to_vec();
    // The added replicas caught up: the reassignment completes with this ISR change.
    crate::reassignment::try_complete(image, &mut n);
    let record = change(&topic.name, partition, p, n);
    let state = match &record {
        Some(MetadataRecord::Partition { state, .. }) => state.clone(),
        _ => p.clone(),
    };
    Ok((state, record))
}

fn placement_brokers(image: &MetadataImage) -> Vec<PlacementBroker> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced && !b.in_controlled_shutdown)
        .map(|b| PlacementBroker {
            id: b.id,
            rack: b.rack.clone(),
        })
        .collect()
}

/// A new partition's state: leader = first eligible replica, ISR = eligible replicas.
fn new_partition(
    image: &MetadataImage,
    pid: i32,
    replicas: Vec<i32>,
) -> Result<PartitionImage, (i16, String)> {
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|r| eligible(image, *r))
        .collect();
    let Some(&leader) = isr.first() else {
        return Err(invalid_assignment(format!(
            "All brokers specified in the manual partition assignment for partition {pid} are fenced or in controlled shutdown."
        )));
    };
    Ok(PartitionImage {
        replicas,
        isr,
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
        truncation: None,
        producer_reset_epoch: None,
    })
}

fn build_topic(image: &MetadataImage, t: &NewTopic, rng: &mut impl Rng) -> TopicResult {
    let lists: Vec<Vec<i32>> = if !t.assignments.is_empty() {
        let expected = t.assignments.values().next().map(Vec::len);
        for (i, (pid, replicas)) in t.assignments.iter().enumerate() {
            if *pid != i as i32 {
                return Err(invalid_assignment(
                    "partitions should be a consecutive 0-based integer sequence".into(),
                ));
            }
            check_replicas(image, replicas, expected)?;
        }
        t.assignments.values().cloned().collect()
    } else {
        let partitions = if t.num_partitions == -1 {
            1
        } else {
            t.num_partitions
        };
        if partitions < 1 {
            return Err((
                ResponseError::InvalidPartitions.code(),
                "Number of partitions was set to an invalid non-positive value.".into(),
            ));
        }
        let rf = if t.replication_factor == -1 {
            1
        } else {
            t.replication_factor
        };
        if rf < 1 {
            return Err((
                ResponseError::InvalidReplicationFactor.code(),
                "Replication factor must be larger than 0, or -1 to use the default value.".into(),
            ));
        }
        place(&placement_brokers(image), partitions, rf as usize, 0, rng)
            .map_err(|e| (ResponseError::InvalidReplicationFactor.code(), e.0))?
    };
    let mut partitions = BTreeMap::new();
    for (pid, replicas) in lists.into_iter().enumerate() {
        partitions.insert(pid as i32, new_partition(image, pid as i32, replicas)?);
    }
    Ok(TopicImage {
        id: Uuid::new_v4(),
        name: t.name.clone(),
        partitions,
        configs: t.configs.clone(),
    })
}

/// CreateTopics: each topic's outcome and the records of the created ones.
pub fn create_topics(
    image: &MetadataImage,
    topics: &[NewTopic],
    rng: &mut impl Rng,
) -> (Vec<TopicResult>, Vec<MetadataRecord>) {
    let mut results = Vec::new();
    let mut records = Vec::new();
    let mut names = BTreeSet::new();
    for t in topics {
        if image.topics.contains_key(&t.name) || !names.insert(t.name.clone()) {
            results.push(Err((
                ResponseError::TopicAlreadyExists.code(),
                format!("Topic '{}' already exists.", t.name),
            )));
            continue;
        }
        let result = build_topic(image, t, rng);
        if let Ok(topic) = &result {
            records.push(MetadataRecord::CreateTopic(topic.clone()));
        }
        results.push(result);
    }
    (results, records)
}

/// DeleteTopics by name.
#[allow(clippy::type_complexity)]
pub fn delete_topics(
    image: &MetadataImage,
    names: &[String],
) -> (Vec<Result<Uuid, (i16, String)>>, Vec<MetadataRecord>) {
    let mut deleted = BTreeSet::new();
    let mut records = Vec::new();
    let results = names
        .iter()
        .map(|name| match image.topics.get(name) {
            Some(t) => {
                if deleted.insert(name.clone()) {
                    records.push(MetadataRecord::DeleteTopic { name: name.clone() });
                }
                Ok(t.id)
            }
            None => Err((
                ResponseError::UnknownTopicOrPartition.code(),
                "This server does not host this topic-partition.".to_string(),
            )),
        })
        .collect();
    (results, records)
}

/// CreatePartitions: records of the new partitions.
pub fn create_partitions(
    image: &MetadataImage,
    topic: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
    rng: &mut impl Rng,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let t = image.topics.get(topic).ok_or_else(|| {
        kafka_error(
            ResponseError::UnknownTopicOrPartition,
            "This server does not host this topic-partition.",
        )
    })?;
    let current = t.partitions.len() as i32;
    if count < current {
        return Err(kafka_error(
            ResponseError::InvalidPartitions,
            format!("Topic currently has {current} partitions, which is higher than the requested {count}."),
        ));
    }
    if count == current {
        return Err(kafka_error(
            ResponseError::InvalidPartitions,
            format!("Topic already has {current} partitions."),
        ));
    }
    let add = (count - current) as usize;
    let rf = t.partitions.values().next().map_or(1, |p| p.replicas.len());
    let to_error = |(code, message): (i16, String)| ControllerError::Kafka { code, message };
    let lists = match assignments {
        Some(lists) => {
            if lists.len() != add {
                return Err(kafka_error(
                    ResponseError::InvalidReplicaAssignment,
                    format!("Attempted to add {add} additional partition(s), but only {} assignment(s) were specified.", lists.len()),
                ));
            }
            for l in lists {
                check_replicas(image, l, Some(rf)).map_err(to_error)?;
            }
            lists.to_vec()
        }
        None => place(&placement_brokers(image), add as i32, rf, current, rng)
            .map_err(|e| kafka_error(ResponseError::InvalidReplicationFactor, e.0))?,
    };
    let mut records = Vec::new();
    for (i, replicas) in lists.into_iter().enumerate() {
        let pid = current + i as i32;
        records.push(MetadataRecord::Partition {
            topic: topic.to_string(),
            partition: pid,
            state: new_partition(image, pid, replicas).map_err(to_error)?,
        });
    }
    Ok(records)
}

/// AllocateProducerIds: only a registered broker of the current epoch gets a block.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    broker_id: i32,
    epoch: i64,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    check_epoch(image, broker_id, epoch).map_err(|e| match e {
        ControllerError::Kafka { message, .. } => {
            kafka_error(ResponseError::StaleBrokerEpoch, message)
        }
        other => other,
    })?;
    Ok(vec![MetadataRecord::AllocateProducerIds { broker_id }])
}

/// A tail truncation of partitions of `topic` (`(partition, offset)`; the broker checked the
/// offsets against the leader's log): each partition gets a new leader epoch (same leader,
/// same ISR) and the truncation marker of that epoch. The leader truncates before it leads at
/// the new epoch; followers truncate on the marker and, should they miss it, on the diverging
/// epoch their next fetch gets. A partition without a leader is refused: nothing could truncate
/// its log now. All or nothing.
pub fn truncate_partitions(
    image: &MetadataImage,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let Some(t) = image.topics.get(topic) else {
        return Err(kafka_error(
            ResponseError::UnknownTopicOrPartition,
            format!("Topic '{topic}' does not exist."),
        ));
    };
    let mut records = Vec::with_capacity(offsets.len());
    for &(partition, offset) in offsets {
        let Some(p) = t.partitions.get(&partition) else {
            return Err(kafka_error(
                ResponseError::UnknownTopicOrPartition,
                format!("Partition {topic}-{partition} does not exist."),
            ));
        };
        if p.leader < 0 {
            return Err(kafka_error(
                ResponseError::LeaderNotAvailable,
                format!(
                    "Partition {topic}-{partition} has no leader: its log cannot be truncated now."
                ),
            ));
        }
        let mut state = p.clone();
        state.leader_epoch = p.leader_epoch + 1;
        state.partition_epoch = p.partition_epoch + 1;
        state.truncation = Some(crate::image::LogTruncation {
            offset,
            leader_epoch: state.leader_epoch,
        });
        records.push(MetadataRecord::Partition {
            topic: topic.to_string(),
            partition,
            state,
        });
    }
    Ok(records)
}

/// A producer reset (`strata.producer.reset`, ordered at a failover promotion): every
/// partition gets a new leader epoch (same leader, same ISR) that is also its producer-reset
/// epoch, so each replica forgets the idempotent-producer state of batches written before it
/// — the leader before it leads at the new epoch, a replica that is down when it returns —
/// and no producer id below `floor` is handed out afterwards. A partition without a leader gets
/// the new epoch too: whichever replica leads it next starts without the old state.
pub fn reset_producers(image: &MetadataImage, floor: i64) -> Vec<MetadataRecord> {
    let mut records: Vec<MetadataRecord> = image
        .topics
        .values()
        .flat_map(|t| {
            t.partitions.iter().map(|(partition, p)| {
                let mut state = p.clone();
                state.leader_epoch = p.leader_epoch + 1;
                state.partition_epoch = p.partition_epoch + 1;
                state.producer_reset_epoch = Some(state.leader_epoch);
                MetadataRecord::Partition {
                    topic: t.name.clone(),
                    partition: *partition,
                    state,
                }
            })
        })
        .collect();
    records.push(MetadataRecord::ProducerIdFloor { floor });
    records
}

#[cfg(test)]
mod truncation_tests {
    use super::*;

    fn image() -> MetadataImage {
        let mut image = MetadataImage::default();
        let part = |leader| PartitionImage {
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader,
            leader_epoch: 4,
            partition_epoch: 9,
            adding_replicas: vec![],
            removing_replicas: vec![],
            truncation: None,
            producer_reset_epoch: None,
        };
        image.topics.insert(
            "m".into(),
            TopicImage {
                id: Uuid::nil(),
                name: "m".into(),
                partitions: BTreeMap::from([(0, part(2)), (1, part(-1))]),
                configs: BTreeMap::new(),
            },
        );
        image
    }

    #[test]
    fn truncation_bumps_the_leader_epoch_and_marks_it() {
        let records = truncate_partitions(&image(), "m", &[(0, 5)]).unwrap();
        let [MetadataRecord::Partition {
            partition, state, ..
        }] = records.as_slice()
        else {
            panic!("one partition record expected: {records:?}");
        };
        assert_eq!(*partition, 0);
        assert_eq!(
            (state.leader, state.leader_epoch, state.partition_epoch),
            (2, 5, 10)
        );
        assert_eq!(state.isr, vec![1, 2, 3]);
        assert_eq!(
            state.truncation,
            Some(crate::image::LogTruncation {
                offset: 5,
                leader_epoch: 5
            })
        );
    }

    #[test]
    fn a_producer_reset_gives_every_partition_a_reset_epoch_and_sets_the_floor() {
        let records = reset_producers(&image(), 1 << 40);
        let states: Vec<(i32, &PartitionImage)> = records
            .iter()
            .filter_map(|r| match r {
                MetadataRecord::Partition {
                    partition, state, ..
                } => Some((*partition, state)),
                _ => None,
            })
            .collect();
        assert_eq!(states.len(), 2, "{records:?}");
        for (partition, state) in states {
            let leader = if partition == 0 { 2 } else { -1 };
            assert_eq!(
                (state.leader, state.leader_epoch, state.partition_epoch),
                (leader, 5, 10)
            );
            assert_eq!(state.producer_reset_epoch, Some(5));
            assert_eq!(state.isr, vec![1, 2, 3]);
        }
        assert_eq!(
            records.last(),
            Some(&MetadataRecord::ProducerIdFloor { floor: 1 << 40 })
        );
    }

    #[test]
    fn truncation_of_a_leaderless_or_unknown_partition_is_refused_whole() {
        let code = |r: Result<Vec<MetadataRecord>, ControllerError>| match r {
            Err(ControllerError::Kafka { code, .. }) => code,
            other => panic!("refusal expected: {other:?}"),
        };
        assert_eq!(
            code(truncate_partitions(&image(), "m", &[(0, 5), (1, 5)])),
            ResponseError::LeaderNotAvailable.code()
        );
        assert_eq!(
            code(truncate_partitions(&image(), "m", &[(7, 5)])),
            ResponseError::UnknownTopicOrPartition.code()
        );
        assert_eq!(
            code(truncate_partitions(&image(), "x", &[(0, 5)])),
            ResponseError::UnknownTopicOrPartition.code()
        );
    }
}
