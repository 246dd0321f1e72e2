//! The `KafkaCluster` controller's pure steps: [`plan`] validates a resource into a
//! [`ClusterPlan`], [`build`] turns a plan into the Kubernetes objects to apply;
//! [`reconcile`] and [`roll`] are the steps that talk to the API server and the brokers.

pub mod build;
pub mod certs;
pub mod drain;
pub mod health;
pub mod plan;
pub mod reconcile;
pub mod roll;
pub mod secrets;

pub use build::ClusterChildren;
pub use plan::{
    BrokerCapabilities, BrokerPlan, ClusterPlan, InvalidSpec, PlanContext, PlanWarning,
};
