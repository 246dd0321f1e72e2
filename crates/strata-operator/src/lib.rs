//! The Strata operator: reconciles `KafkaCluster` resources onto StatefulSets per rack (zone)
//! and `KafkaTopic` resources onto topics through the Kafka admin API.
//!
//! Layout follows the reconcile steps: [`cluster::plan`] / [`topic::plan`] validate a resource
//! into a checked value, [`cluster::build`] turns a plan into Kubernetes objects (pure),
//! `*::reconcile` reads, applies and writes status, [`cluster::roll`] decides rolling restarts.
//! [`names`] is the only place child names, labels and broker ids are spelled. [`runtime`]
//! wires controllers, leader election ([`leader`]) and metrics ([`metrics`]).

pub mod apply;
pub mod cluster;
pub mod conditions;
pub mod context;
pub mod flow;
pub mod kafka;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod render;
pub mod runtime;
pub mod topic;

#[cfg(test)]
mod testing;
