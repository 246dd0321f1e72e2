//! The controller's operations on the metadata image, written once against
//! [`MetadataQuorum`]: each starts an exclusive operation on the leader's committed image,
//! decides with the pure rules of `controller`, `leadership` and `reassignment`, and proposes
//! the records. [`crate::Quorum`] runs them on its Raft node; tests run them on a
//! [`crate::metadata_quorum::LocalQuorum`].

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_kafka::acl::{AclBinding, AclFilter};
use uuid::Uuid;

use crate::controller;
use crate::image::{MetadataImage, PartitionImage};
use crate::leadership::{self, ElectionResult, ElectionType};
use crate::metadata_quorum::{MetadataQuorum, Operation};
use crate::reassignment::{self, OngoingReassignment};
use crate::types::{ControllerError, NewTopic, TopicResult};

/// Starts an operation; returns it (exclusive until dropped) and the image it decides on.
pub(crate) async fn begin(
    q: &dyn MetadataQuorum,
) -> Result<(Operation<'_>, Arc<MetadataImage>), ControllerError> {
    let op = q.begin().await?;
    let image = op.image.clone();
    Ok((op, image))
}

/// AlterPartition from a partition leader: the new ISR, checked against epochs.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn alter_partition(
    q: &dyn MetadataQuorum,
    broker_id: i32,
    broker_epoch: i64,
    topic_id: Uuid,
    partition: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    new_isr: Vec<i32>,
) -> Result<PartitionImage, ControllerError> {
    let (_guard, image) = begin(q).await?;
    let (state, record) = controller::alter_partition(
        &image,
        broker_id,
        broker_epoch,
        topic_id,
        partition,
        leader_epoch,
        partition_epoch,
        &new_isr,
    )?;
    if let Some(record) = record {
        q.propose(vec![record]).await?;
    }
    Ok(state)
}

/// CreateTopics; returns each topic's outcome and the metadata offset that holds them.
pub(crate) async fn create_topics(
    q: &dyn MetadataQuorum,
    topics: Vec<NewTopic>,
    validate_only: bool,
) -> Result<(Vec<TopicResult>, u64), ControllerError> {
    let (_guard, image) = begin(q).await?;
    let (results, records) = controller::create_topics(&image, &topics, &mut rand::rng());
    if validate_only || records.is_empty() {
        return Ok((results, image.offset));
    }
    let outcome = q.propose(records).await?;
    Ok((results, outcome.index))
}

/// DeleteTopics by name; each topic's id or error, and the offset that holds the deletions.
pub(crate) async fn delete_topics(
    q: &dyn MetadataQuorum,
    names: Vec<String>,
) -> Result<(Vec<Result<Uuid, (i16, String)>>, u64), ControllerError> {
    let (_guard, image) = begin(q).await?;
    let (results, records) = controller::delete_topics(&image, &names);
    if records.is_empty() {
        return Ok((results, image.offset));
    }
    let outcome = q.propose(records).await?;
    Ok((results, outcome.index))
}

/// CreatePartitions: grows `topic` to `count` partitions.
pub(crate) async fn create_partitions(
    q: &dyn MetadataQuorum,
    topic: String,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> Result<u64, ControllerError> {
    let (_guard, image) = begin(q).await?;
    let records = controller::create_partitions(
        &image,
        &topic,
        count,
        assignments.as_deref(),
        &mut rand::rng(),
    )?;
    if validate_only {
        return Ok(image.offset);
    }
    Ok(q.propose(records).await?.index)
}

/// Replaces a topic's config overrides (already validated by the broker).
pub(crate) async fn set_topic_configs(
    q: &dyn MetadataQuorum,
    topic: String,
    configs: BTreeMap<String, String>,
) -> Result<u64, ControllerError> {
    let (_guard, image) = begin(q).await?;
    if !image.topics.contains_key(&topic) {
        return Err(controller::kafka_error(
            kafka_protocol::error::ResponseError::UnknownTopicOrPartition,
            format!("Topic '{topic}' does not exist."),
        ));
    }
    let record = crate::records::MetadataRecord::TopicConfigs {
        name: topic,
        configs,
    };
    Ok(q.propose(vec![record]).await?.index)
}

/// Replaces the cluster-wide dynamic broker configs.
pub(crate) async fn set_cluster_configs(
    q: &dyn MetadataQuorum,
    configs: BTreeMap<String, String>,
) -> Result<u64, ControllerError> {
    set_cluster_configs_resetting_producers(q, configs, None).await
}

/// Replaces the cluster-wide dynamic broker configs and, with `producer_reset`, resets
/// every partition's producer state with that producer-id floor (see
/// [`controller::reset_producers`]), all in one metadata-log entry: a broker applies the
/// reset in the same image that lifts a write fence. Returns the metadata offset.
pub(crate) async fn set_cluster_configs_resetting_producers(
    q: &dyn MetadataQuorum,
    configs: BTreeMap<String, String>,
    producer_reset: Option<i64>,
) -> Result<u64, ControllerError> {
    let (_guard, image) = begin(q).await?;
    let mut records = vec![crate::records::MetadataRecord::ClusterConfigs(configs)];
    if let Some(floor) = producer_reset {
        records.extend(controller::reset_producers(&image, floor));
    }
    Ok(q.propose(records).await?.index)
}

/// One change of a SCRAM credential: set (`Some`, already derived from the salted password
/// by the broker) or delete (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramChange {
    pub user: String,
    pub mechanism: String,
    pub credential: Option<crate::image::ScramCredential>,
}

/// AlterUserScramCredentials: the changes that can be made are made in one metadata-log entry;
/// deleting a credential that does not exist is RESOURCE_NOT_FOUND (that change only, as
/// Kafka). Returns each change's outcome and the offset that holds them.
pub(crate) async fn alter_scram_credentials(
    q: &dyn MetadataQuorum,
    changes: Vec<ScramChange>,
) -> Result<(Vec<Result<(), (i16, String)>>, u64), ControllerError> {
    const RESOURCE_NOT_FOUND: i16 = 91;
    let (_guard, image) = begin(q).await?;
    let mut records = Vec::new();
    let outcomes = changes
        .into_iter()
        .map(|c| {
            let exists = image
                .scram_credentials
                .get(&c.user)
                .is_some_and(|m| m.contains_key(&c.mechanism));
            if c.credential.is_none() && !exists {
                return Err((
                    RESOURCE_NOT_FOUND,
                    format!(
                        "Attempt to delete a user credential that does not exist: {} {}",
                        c.user, c.mechanism
                    ),
                ));
            }
            records.push(crate::records::MetadataRecord::ScramCredential {
                user: c.user,
                mechanism: c.mechanism,
                credential: c.credential,
            });
            Ok(())
        })
        .collect();
    let offset = if records.is_empty() {
        image.offset
    } else {
        q.propose(records).await?.index
    };
    Ok((outcomes, offset))
}

/// CreateAcls (bindings already checked by the broker): the ones not present yet are added
/// in one metadata-log entry (creating an existing ACL is not an error, as in Kafka).
pub(crate) async fn create_acls(
    q: &dyn MetadataQuorum,
    bindings: Vec<AclBinding>,
) -> Result<u64, ControllerError> {
    let (_guard, image) = begin(q).await?;
    let records: Vec<_> = bindings
        .into_iter()
        .filter(|b| !image.acls.contains(b))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|binding| crate::records::MetadataRecord::Acl {
            binding,
            present: true,
        })
        .collect();
    if records.is_empty() {
        return Ok(image.offset);
    }
    Ok(q.propose(records).await?.index)
}

/// DeleteAcls: removes the ACLs each filter matches, in one metadata-log entry; returns what
/// each filter deleted (an ACL two filters match is reported by both, as in Kafka).
pub(crate) async fn delete_acls(
    q: &dyn MetadataQuorum,
    filters: Vec<AclFilter>,
) -> Result<Vec<Vec<AclBinding>>, ControllerError> {
    let (_guard, image) = begin(q).await?;
    let matched: Vec<Vec<AclBinding>> = filters
        .iter()
        .map(|f| {
            image
                .acls
                .iter()
                .filter(|b| f.matches(b))
                .cloned()
                .collect()
        })
        .collect();
    let records: Vec<_> = matched
        .iter()
        .flatten()
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|binding| crate::records::MetadataRecord::Acl {
            binding,
            present: false,
        })
        .collect();
    if !records.is_empty() {
        q.propose(records).await?;
    }
    Ok(matched)
}

/// Replaces the dynamic configs of one broker (already validated by the broker).
pub(crate) async fn set_broker_configs(
    q: &dyn MetadataQuorum,
    broker_id: i32,
    configs: BTreeMap<String, String>,
) -> Result<u64, ControllerError> {
    let (_guard, _image) = begin(q).await?;
    let record = crate::records::MetadataRecord::BrokerConfigs {
        id: broker_id,
        configs,
    };
    Ok(q.propose(vec![record]).await?.index)
}

/// Tail truncation of a mirror target's partitions (offsets already checked by the
/// broker against the leaders' logs); see [`controller::truncate_partitions`]. Returns the
/// metadata offset that holds it.
pub(crate) async fn truncate_partitions(
    q: &dyn MetadataQuorum,
    topic: String,
    offsets: Vec<(i32, i64)>,
) -> Result<u64, ControllerError> {
    let (_guard, image) = begin(q).await?;
    let records = controller::truncate_partitions(&image, &topic, &offsets)?;
    Ok(q.propose(records).await?.index)
}

/// ElectLeaders: each partition's outcome (see [`leadership::elect`]) and the metadata
/// offset that holds the elections.
pub(crate) async fn elect_leaders(
    q: &dyn MetadataQuorum,
    kind: ElectionType,
    partitions: Option<Vec<(String, i32)>>,
) -> Result<(Vec<(String, i32, ElectionResult)>, u64), ControllerError> {
    let (_guard, image) = begin(q).await?;
    let (results, records) = leadership::elect(&image, kind, partitions.as_deref());
    if records.is_empty() {
        return Ok((results, image.offset));
    }
    Ok((results, q.propose(records).await?.index))
}

/// AlterPartitionReassignments: per partition, `Some(target)` starts or replaces a
/// reassignment and `None` cancels it; each partition's outcome and the offset that holds
/// the changes.
#[allow(clippy::type_complexity)]
pub(crate) async fn alter_reassignments(
    q: &dyn MetadataQuorum,
    changes: Vec<(String, i32, Option<Vec<i32>>)>,
    allow_rf_change: bool,
) -> Result<(Vec<Result<(), ControllerError>>, u64), ControllerError> {
    let (_guard, mut image) = begin(q).await?;
    let mut results = Vec::new();
    let mut records = Vec::new();
    for (topic, partition, target) in &changes {
        match reassignment::alter(
            &image,
            topic,
            *partition,
            target.as_deref(),
            allow_rf_change,
        ) {
            Ok(rs) => {
                // Later changes of the same request see this one.
                let next = Arc::make_mut(&mut image);
                for r in &rs {
                    if let crate::records::MetadataRecord::Partition {
                        topic,
                        partition,
                        state,
                    } = r
                    {
                        if let Some(t) = next.topics.get_mut(topic) {
                            t.partitions.insert(*partition, state.clone());
                        }
                    }
                }
                records.extend(rs);
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    if records.is_empty() {
        return Ok((results, image.offset));
    }
    Ok((results, q.propose(records).await?.index))
}

/// ListPartitionReassignments from this node's image.
pub(crate) fn list_reassignments(
    q: &dyn MetadataQuorum,
    partitions: Option<&[(String, i32)]>,
) -> Vec<OngoingReassignment> {
    reassignment::list(&q.committed().borrow(), partitions)
}

/// AllocateProducerIds: a block no other broker ever gets; (first id, length).
pub(crate) async fn allocate_producer_ids(
    q: &dyn MetadataQuorum,
    broker_id: i32,
    broker_epoch: i64,
) -> Result<(i64, i32), ControllerError> {
    let (_guard, image) = begin(q).await?;
    let records = controller::allocate_producer_ids(&image, broker_id, broker_epoch)?;
    let outcome = q.propose(records).await?;
    let start = outcome.producer_id_start.ok_or_else(|| {
        ControllerError::Timeout("metadata quorum unavailable: no producer-id block".into())
    })?;
    Ok((start, crate::image::PRODUCER_ID_BLOCK_SIZE as i32))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::image::Endpoint;
    use crate::metadata_quorum::LocalQuorum;
    use crate::types::RegisterBroker;

    /// Registers brokers `ids` (racks a, b, c in turn) and unfences them, as the Raft
    /// controller does on their registration and first heartbeat.
    async fn live(q: &LocalQuorum, ids: &[i32]) {
        for &id in ids {
            let reg = RegisterBroker {
                broker_id: id,
                incarnation_id: Uuid::new_v4(),
                rack: Some(["a", "b", "c"][(id as usize - 1) % 3].to_string()),
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9000 + id as u16,
                    security_protocol: "PLAINTEXT".into(),
                }],
            };
            let (op, image) = begin(q).await.unwrap();
            let records = controller::register(&image, &reg, false, false).unwrap();
            let epoch = q.propose(records).await.unwrap().index as i64;
            drop(op);
            let (_op, image) = begin(q).await.unwrap();
            let records =
                controller::heartbeat(&image, id, epoch, image.offset, false, false, false)
                    .unwrap();
            q.propose(records).await.unwrap();
        }
    }

    fn new_topic(name: &str, partitions: i32, rf: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: rf,
            assignments: BTreeMap::new(),
            configs: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn topics_elections_and_reassignments_without_raft() {
        let q = LocalQuorum::new(1, "local");
        live(&q, &[1, 2, 3, 4]).await;
        let (results, offset) = create_topics(&q, vec![new_topic("t", 4, 3)], false)
            .await
            .unwrap();
        let created = results[0].clone().unwrap();
        assert_eq!(q.committed().borrow().offset, offset);
        for p in created.partitions.values() {
            let racks: std::collections::BTreeSet<_> =
                p.replicas.iter().map(|r| (r - 1) % 3).collect();
            assert_eq!(racks.len(), 3, "replicas on three racks: {p:?}");
            assert_eq!(p.leader, p.replicas[0]);
        }
        // A second request sees the first: the name is taken.
        let (results, _) = create_topics(&q, vec![new_topic("t", 1, 1)], false)
            .await
            .unwrap();
        assert!(results[0].is_err());

        // Preferred replicas lead already: nothing to elect.
        let (elections, _) =
            elect_leaders(&q, ElectionType::Preferred, Some(vec![("t".into(), 0)]))
                .await
                .unwrap();
        assert!(elections[0].2.is_err(), "{elections:?}");

        // A reassignment adds a replica that is not in the ISR yet: listed as ongoing.
        let p0 = &created.partitions[&0];
        let spare = (1..=4).find(|b| !p0.replicas.contains(b)).unwrap();
        let target = vec![spare, p0.replicas[1], p0.replicas[2]];
        let (outcomes, _) = alter_reassignments(&q, vec![("t".into(), 0, Some(target))], true)
            .await
            .unwrap();
        assert!(outcomes[0].is_ok(), "{outcomes:?}");
        let ongoing = list_reassignments(&q, None);
        assert_eq!(ongoing.len(), 1);
        assert_eq!(ongoing[0].adding_replicas, vec![spare]);
        assert_eq!(ongoing[0].removing_replicas, vec![p0.replicas[0]]);

        // Producer-id blocks never overlap.
        let image = q.committed().borrow().clone();
        let epoch = image.brokers[&2].epoch;
        let (a, len) = allocate_producer_ids(&q, 2, epoch).await.unwrap();
        let (b, _) = allocate_producer_ids(&q, 2, epoch).await.unwrap();
        assert!(b >= a + len as i64, "{a} + {len} then {b}");
    }
}
