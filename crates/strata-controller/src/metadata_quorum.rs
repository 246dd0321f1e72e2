//! The seam between the controller and the replicated metadata log: [`MetadataQuorum`] is all
//! that the controller's operations (`quorum.rs`) need from a quorum — start an exclusive
//! operation on the image of every committed entry (on the leader), propose records and wait
//! until they are applied, read the committed image, and who leads and who votes.
//! [`crate::node::Node`] implements it with openraft; `LocalQuorum` (tests) with memory alone
//! (one node that commits what it is given at once), so that operations run without Raft.
//! Raft-only matters (frames between nodes, DescribeQuorum's replica progress, joining a
//! quorum, snapshots) stay on the node.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::image::MetadataImage;
use crate::records::{CommandOutcome, MetadataRecord};
use crate::types::ControllerError;

/// Who leads the quorum and who votes, as one node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumView {
    pub node_id: i32,
    /// The active controller (`None` while there is none, or it has not been heard from).
    pub leader: Option<i32>,
    pub voters: Vec<i32>,
}

impl QuorumView {
    /// Whether this node is the active controller.
    pub fn is_leader(&self) -> bool {
        self.leader == Some(self.node_id)
    }
}

/// One controller operation in progress: exclusive on its quorum until dropped, deciding on
/// `image` (every committed entry applied).
pub struct Operation<'a> {
    pub image: Arc<MetadataImage>,
    _exclusive: tokio::sync::MutexGuard<'a, ()>,
}

impl<'a> Operation<'a> {
    pub fn new(image: Arc<MetadataImage>, exclusive: tokio::sync::MutexGuard<'a, ()>) -> Self {
        Operation {
            image,
            _exclusive: exclusive,
        }
    }
}

/// A replicated metadata log as the controller uses it.
pub trait MetadataQuorum: Send + Sync {
    /// The image of the entries applied on this node; changes on every applied entry.
    fn committed(&self) -> watch::Receiver<Arc<MetadataImage>>;

    /// Who leads and who votes.
    fn view(&self) -> QuorumView;

    /// Starts an operation on the leader: operations run one at a time, each on the image the
    /// previous one produced. NOT_CONTROLLER elsewhere; a timeout when no quorum answers.
    fn begin(&self) -> BoxFuture<'_, Result<Operation<'_>, ControllerError>>;

    /// Appends `records` as one entry; resolves once it is committed and applied here.
    fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'_, Result<CommandOutcome, ControllerError>>;
}

/// A quorum of one node in memory: always the leader, every proposal committed and applied at
/// once. For running controller operations without Raft (tests); nothing is kept on disk.
#[cfg(test)]
pub struct LocalQuorum {
    node_id: i32,
    state: parking_lot::Mutex<crate::records::ReplicatedState>,
    image_tx: watch::Sender<Arc<MetadataImage>>,
    exclusive: tokio::sync::Mutex<()>,
}

#[cfg(test)]
impl LocalQuorum {
    pub fn new(node_id: i32, cluster_id: &str) -> LocalQuorum {
        let mut state = crate::records::ReplicatedState::default();
        state.image.cluster_id = cluster_id.to_string();
        let (image_tx, _) = watch::channel(Arc::new(state.image.clone()));
        LocalQuorum {
            node_id,
            state: parking_lot::Mutex::new(state),
            image_tx,
            exclusive: tokio::sync::Mutex::new(()),
        }
    }
}

#[cfg(test)]
impl MetadataQuorum for LocalQuorum {
    fn committed(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image_tx.subscribe()
    }

    fn view(&self) -> QuorumView {
        QuorumView {
            node_id: self.node_id,
            leader: Some(self.node_id),
            voters: vec![self.node_id],
        }
    }

    fn begin(&self) -> BoxFuture<'_, Result<Operation<'_>, ControllerError>> {
        Box::pin(async move {
            let exclusive = self.exclusive.lock().await;
            Ok(Operation::new(self.image_tx.borrow().clone(), exclusive))
        })
    }

    fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'_, Result<CommandOutcome, ControllerError>> {
        Box::pin(async move {
            let mut state = self.state.lock();
            let index = state.image.offset + 1;
            let outcome = state.apply(index, &crate::records::MetadataCommand(records));
            self.image_tx.send_replace(Arc::new(state.image.clone()));
            Ok(outcome)
        })
    }
}
