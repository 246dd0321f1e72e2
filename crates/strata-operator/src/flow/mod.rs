//! The `MirrorFlow` controller's pure steps: [`plan`] validates a resource (with the clusters it
//! references and the side that is active now) into a [`FlowPlan`], [`build`] turns a plan
//! into the Kubernetes objects to apply, [`lag`] measures how far the standby is behind;
//! [`credentials`] reads the Secrets of secured sides;
//! [`reconcile`] is the step that talks to the API server and the clusters.

pub mod build;
pub mod credentials;
pub mod lag;
pub mod plan;
pub mod reconcile;

pub use build::FlowChildren;
pub use plan::{FlowPlan, InvalidFlow, Referenced};
