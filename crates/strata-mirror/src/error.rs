//! [`MirrorError`], what starting or running a flow can fail with; below every loop so that
//! each one names it without importing the crate root.

use crate::assignment::AssignmentError;
use crate::config::ConfigError;
use crate::policy::InvalidPattern;
use crate::records::DecodeError;

/// Everything starting or running a flow can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Assignment(#[from] AssignmentError),
    #[error("Kafka client: {0}")]
    Client(#[from] strata_client::Error),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("metrics endpoint: {0}")]
    Io(#[from] std::io::Error),
}

impl From<InvalidPattern> for MirrorError {
    fn from(e: InvalidPattern) -> Self {
        MirrorError::Config(e.into())
    }
}
