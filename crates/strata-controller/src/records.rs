//! The metadata records: what the Raft log carries and how each one changes the
//! [`MetadataImage`]. One Raft entry holds one [`MetadataCommand`], a list of records applied
//! atomically (like a KRaft atomic batch). Pure: applying a record touches only the image.

use std::collections::BTreeMap;
use std::io::Cursor;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::image::PRODUCER_ID_BLOCK_SIZE;
use crate::image::{
    BrokerImage, Endpoint, MetadataImage, PartitionImage, ScramCredential, TopicImage,
};

openraft::declare_raft_types!(
    /// The Raft types of the metadata quorum: Kafka node ids as `u64`, `host:port` nodes.
    pub TypeConfig:
        D = MetadataCommand,
        R = CommandOutcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The application payload of one Raft entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataCommand(pub Vec<MetadataRecord>);

/// What applying one entry produced (returned to the proposer by `client_write`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// Raft index the entry was applied at (the metadata offset that holds it).
    pub index: u64,
    /// First id of a producer-id block allocated by this entry.
    pub producer_id_start: Option<i64>,
}

/// One change of the metadata image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A (re-)registration; the broker's epoch becomes the entry's index, it starts fenced.
    RegisterBroker {
        id: i32,
        incarnation_id: Uuid,
        rack: Option<String>,
        endpoints: Vec<Endpoint>,
    },
    /// Fencing / controlled-shutdown state of a registered broker.
    BrokerState {
        id: i32,
        fenced: bool,
        in_controlled_shutdown: bool,
    },
    /// A new topic with all its partitions.
    CreateTopic(TopicImage),
    /// The new state of one partition (new partitions included).
    Partition {
        topic: String,
        partition: i32,
        state: PartitionImage,
    },
    /// A leader was elected from outside the ISR (counted, records may be lost).
    UncleanElection {
        topic: String,
        partition: i32,
    },
    DeleteTopic {
        name: String,
    },
    TopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    ClusterConfigs(BTreeMap<String, String>),
    /// The dynamic configs of one broker (replaces the previous set).
    BrokerConfigs {
        id: i32,
        configs: BTreeMap<String, String>,
    },
    /// Hands the next producer-id block to `broker_id`.
    AllocateProducerIds {
        broker_id: i32,
    },
    /// No producer id below `floor` is handed out any more (a producer reset); the next block
    /// starts at `floor` or later.
    ProducerIdFloor {
        floor: i64,
    },
    /// Sets (`Some`) or removes (`None`) the SCRAM credential of one user and mechanism.
    ScramCredential {
        user: String,
        mechanism: String,
        credential: Option<ScramCredential>,
    },
    /// Adds (`present`) or removes one ACL.
    Acl {
        binding: strata_kafka::acl::AclBinding,
        present: bool,
    },
}

/// The replicated state: the image plus counters that are not part of the public image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicatedState {
    pub image: MetadataImage,
    /// Unclean leader elections ever made.
    pub unclean_elections: u64,
}

impl ReplicatedState {
    /// Applies the records of the entry at `index`.
    pub fn apply(&mut self, index: u64, command: &MetadataCommand) -> CommandOutcome {
        let mut outcome = CommandOutcome {
            index,
            producer_id_start: None,
        };
        for record in &command.0 {
            if let Some(start) = self.apply_record(index, record) {
                outcome.producer_id_start = Some(start);
            }
        }
        self.image.offset = index;
        outcome
    }

    fn apply_record(&mut self, index: u64, record: &MetadataRecord) -> Option<i64> {
        let image = &mut self.image;
        match record {
            MetadataRecord::RegisterBroker {
                id,
                incarnation_id,
                rack,
                endpoints,
            } => {
                image.brokers.insert(
                    *id,
                    BrokerImage {
                        id: *id,
                        epoch: index as i64,
                        incarnation_id: *incarnation_id,
                        rack: rack.clone(),
                        endpoints: endpoints.clone(),
                        fenced: true,
                        in_controlled_shutdown: false,
                    },
                );
            }
            MetadataRecord::BrokerState {
                id,
                fenced,
                in_controlled_shutdown,
            } => {
                if let Some(b) = image.brokers.get_mut(id) {
                    b.fenced = *fenced;
                    b.in_controlled_shutdown = *in_controlled_shutdown;
                }
            }
            MetadataRecord::CreateTopic(topic) => {
                image.topics.insert(topic.name.clone(), topic.clone());
            }
            MetadataRecord::Partition {
                topic,
                partition,
                state,
            } => {
                if let Some(t) = image.topics.get_mut(topic) {
                    t.partitions.insert(*partition, state.clone());
                }
            }
            MetadataRecord::UncleanElection { .. } => self.unclean_elections += 1,
            MetadataRecord::DeleteTopic { name } => {
                image.topics.remove(name);
            }
            MetadataRecord::TopicConfigs { name, configs } => {
                if let Some(t) = image.topics.get_mut(name) {
                    t.configs = configs.clone();
                }
            }
            MetadataRecord::ClusterConfigs(configs) => image.cluster_configs = configs.clone(),
            MetadataRecord::BrokerConfigs { id, configs } => {
                if configs.is_empty() {
                    image.broker_configs.remove(id);
                } else {
                    image.broker_configs.insert(*id, configs.clone());
                }
            }
            MetadataRecord::AllocateProducerIds { .. } => {
                let start = image.next_producer_id;
                image.next_producer_id = start + PRODUCER_ID_BLOCK_SIZE;
                return Some(start);
            }
            MetadataRecord::ProducerIdFloor { floor } => {
                image.producer_id_floor = image.producer_id_floor.max(*floor);
                image.next_producer_id = image.next_producer_id.max(*floor);
            }
            MetadataRecord::ScramCredential {
                user,
                mechanism,
                credential,
            } => match credential {
                Some(c) => {
                    image
                        .scram_credentials
                        .entry(user.clone())
                        .or_default()
                        .insert(mechanism.clone(), c.clone());
                }
                None => {
                    if let Some(by_mechanism) = image.scram_credentials.get_mut(user) {
                        by_mechanism.remove(mechanism);
                        if by_mechanism.is_empty() {
                            image.scram_credentials.remove(user);
                        }
                    }
                }
            },
            MetadataRecord::Acl { binding, present } => {
                if *present {
                    image.acls.insert(binding.clone());
                } else {
                    image.acls.remove(binding);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_epoch_is_the_entry_index_and_blocks_never_repeat() {
        let mut state = ReplicatedState::default();
        let reg = MetadataRecord::RegisterBroker {
            id: 1,
            incarnation_id: Uuid::new_v4(),
            rack: None,
            endpoints: vec![],
        };
        state.apply(7, &MetadataCommand(vec![reg]));
        assert_eq!(state.image.brokers[&1].epoch, 7);
        assert!(state.image.brokers[&1].fenced);
        let alloc = |s: &mut ReplicatedState, i, b| {
            s.apply(
                i,
                &MetadataCommand(vec![MetadataRecord::AllocateProducerIds { broker_id: b }]),
            )
            .producer_id_start
        };
        let a = alloc(&mut state, 8, 1);
        let b = alloc(&mut state, 9, 2);
        assert_eq!(a, Some(0));
        assert_eq!(b, Some(PRODUCER_ID_BLOCK_SIZE));
        assert_eq!(state.image.offset, 9);
    }

    #[test]
    fn scram_credentials_are_set_replaced_and_removed_per_mechanism() {
        let mut state = ReplicatedState::default();
        let cred = |i| ScramCredential {
            salt: vec![1],
            stored_key: vec![2],
            server_key: vec![3],
            iterations: i,
        };
        let set = |m: &str, c| MetadataRecord::ScramCredential {
            user: "alice".into(),
            mechanism: m.into(),
            credential: c,
        };
        state.apply(
            1,
            &MetadataCommand(vec![
                set("SCRAM-SHA-256", Some(cred(4096))),
                set("SCRAM-SHA-512", Some(cred(8192))),
            ]),
        );
        state.apply(
            2,
            &MetadataCommand(vec![set("SCRAM-SHA-512", Some(cred(9000)))]),
        );
        assert_eq!(
            state.image.scram_credentials["alice"]["SCRAM-SHA-512"].iterations,
            9000
        );
        state.apply(3, &MetadataCommand(vec![set("SCRAM-SHA-256", None)]));
        assert_eq!(state.image.scram_credentials["alice"].len(), 1);
        state.apply(4, &MetadataCommand(vec![set("SCRAM-SHA-512", None)]));
        assert!(state.image.scram_credentials.is_empty());
        // Keys never show in Debug output.
        assert!(!format!("{:?}", cred(1)).contains("stored_key"));
    }

    #[test]
    fn a_producer_id_floor_raises_the_next_block_and_never_lowers_it() {
        let mut state = ReplicatedState::default();
        let floor = |f| MetadataRecord::ProducerIdFloor { floor: f };
        let alloc = MetadataRecord::AllocateProducerIds { broker_id: 1 };
        state.apply(1, &MetadataCommand(vec![alloc.clone()]));
        state.apply(2, &MetadataCommand(vec![floor(5_000)]));
        let start = state.apply(3, &MetadataCommand(vec![alloc.clone()]));
        assert_eq!(start.producer_id_start, Some(5_000));
        assert_eq!(state.image.producer_id_floor, 5_000);
        // A floor below what was handed out changes nothing but the recorded floor.
        state.apply(4, &MetadataCommand(vec![floor(10)]));
        let next = state.apply(5, &MetadataCommand(vec![alloc]));
        assert_eq!(next.producer_id_start, Some(5_000 + PRODUCER_ID_BLOCK_SIZE));
        assert_eq!(state.image.producer_id_floor, 5_000);
    }
}
