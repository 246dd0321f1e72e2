//! An async Kafka client built on `kafka-protocol`, used by Strata's operator, mirror and CLI.
//! It speaks to Apache Kafka and to Strata brokers alike: every connection starts with
//! ApiVersions and each request uses the highest version both sides support. [`Client`] holds
//! the connections (per broker: one for admin and metadata, one for fetches, one for produces;
//! requests on each are pipelined) and the metadata cache; [`Admin`] wraps the admin APIs;
//! [`Admin::describe_quorum`] reports the KRaft metadata quorum; `placement` holds leader
//! elections, partition reassignments, broker configs and the under-replicated view; [`Producer`],
//! [`Client::fetch`] and [`Client::list_offsets`] are the data path. Errors are
//! one [`Error`] type whose [`Error::is_retriable`] drives the retries.
//!
//! Known limitation: `kafka-protocol` keeps record headers in a map, so a fetched record with
//! a repeated header key shows that key once ([`FetchedPartition::batches`] keeps the exact
//! bytes), and [`Producer::send`] refuses records with repeated header keys.

mod acl;
mod admin;
mod client;
mod config;
mod connection;
mod error;
mod fetch;
mod kafka_uuid;
mod metadata;
mod node;
pub mod pem;
mod placement;
mod producer;
mod quorum;
mod records;
mod security;
mod users;
mod versions;

pub use acl::{AclBinding, AclOperation, AclPatternType, AclPermission, AclResourceType};
pub use admin::{
    Admin, Committed, ConfigEntry, ConfigOp, ConfigSource, CreatedTopic, GroupDescription,
    GroupListing, GroupMember, NewTopic,
};
pub use client::{Client, Target};
pub use config::ClientConfig;
pub use connection::{decode_response, secured_stream, SecuredStream};
pub use error::{error_name, Error};
pub use fetch::{
    FetchPartitionSpec, FetchRequestSpec, FetchResult, FetchedPartition, ListedOffset, OffsetSpec,
};
pub use kafka_protocol::ResponseError;
pub use kafka_uuid::{kafka_uuid_string, parse_kafka_uuid, random_kafka_uuid};
pub use metadata::{
    BrokerInfo, ClusterDescription, ClusterMetadata, PartitionMetadata, TopicMetadata,
};
pub use node::NodeConnection;
pub use placement::{
    election_not_needed, ElectionType, OngoingReassignment, PartitionOutcomes, ReplicaChange,
    TopicPartition, UnderReplicated,
};
pub use producer::{
    Acks, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};
pub use quorum::{QuorumInfo, QuorumReplica, METADATA_TOPIC};
pub use records::{decode_fetched_records, Compression, FetchedRecord, RawBatch, TimestampType};
pub use security::{
    Exchange as SaslExchange, SaslCredentials, SaslMechanism, Security, SecurityProtocol,
};
