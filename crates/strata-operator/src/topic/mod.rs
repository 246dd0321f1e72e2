//! The `KafkaTopic` controller: [`plan`] (pure) validates a resource into a [`DesiredTopic`]
//! and diffs it against what the cluster reports; [`reconcile`] applies that through the
//! Kafka admin API.

pub mod plan;
pub mod reconcile;

pub use plan::{desired, diff, DesiredTopic, InvalidTopic, TopicAction};
