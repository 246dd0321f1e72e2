//! The write path to `__consumer_offsets`: records are appended while the group's lock is held
//! (so the log's order per key matches memory), replication is awaited after the lock is
//! released, and only then is the client answered. Log errors become the response errors Kafka's
//! `GroupMetadataManager` answers. Also the shape of an answer that is not ready yet ([`Answer`]).

use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use super::Inner;
use crate::group::Group;
use crate::offsets_log::{OffsetsLogError, OffsetsRecord};
use crate::record;

pub(super) type Replication = Result<(), OffsetsLogError>;

/// Records in the local log of their partition, not yet known to be replicated.
pub(super) struct Appended {
    /// The log end offset after the records: later writes of the partition end further.
    pub end_offset: i64,
    wait: BoxFuture<'static, Replication>,
}

impl Appended {
    /// Waits for replication, then runs `then` with the outcome and returns what it returns.
    /// `then` runs even when the caller's future is dropped meanwhile (it carries on in a task),
    /// because the records are in the log whether or not anyone still waits for the answer.
    /// `None` only if that task died.
    pub async fn then<T: Send + 'static>(
        self,
        then: impl FnOnce(Replication) -> T + Send + 'static,
    ) -> Option<T> {
        let mut wait = self.wait;
        if let Some(outcome) = (&mut wait).now_or_never() {
            return Some(then(outcome));
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime.spawn(async move { then(wait.await) }).await.ok(),
            // No runtime to carry on after a drop: wait here.
            Err(_) => Some(then(wait.await)),
        }
    }

    /// Waits for replication in the background and logs a failure: for writes no client waits
    /// for (metadata of a group that became empty, tombstones of a deleted topic).
    pub fn detach(self, group_id: &str, what: &'static str) {
        let group_id = group_id.to_owned();
        let warn = move |outcome: Replication| {
            if let Err(e) = outcome {
                tracing::warn!(group = %group_id, error = %e, "{what} not replicated");
            }
        };
        let mut wait = self.wait;
        if let Some(outcome) = (&mut wait).now_or_never() {
            warn(outcome);
        } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { warn(wait.await) });
        }
    }
}

impl Inner {
    /// Appends records to the partition of `group_id`; call with the group's lock held.
    pub(super) fn append(
        &self,
        group_id: &str,
        records: Vec<OffsetsRecord>,
    ) -> Result<Appended, OffsetsLogError> {
        let partition = self.partition_for(group_id);
        let at = self.log.append(partition, records)?;
        let wait = self.log.wait_replicated(partition, at);
        Ok(Appended {
            end_offset: at.end_offset,
            wait,
        })
    }

    /// Appends the group metadata record for the group's current state.
    pub(super) fn store_group_metadata(&self, group: &Group) -> Result<Appended, OffsetsLogError> {
        let value = record::encode_group_value(&group.metadata_value());
        self.append(
            &group.id,
            vec![(record::encode_group_key(&group.id), Some(value))],
        )
    }
}

/// The answer to an offset commit (and a group deletion) whose records could not be written or
/// replicated: Kafka's `GroupMetadataManager.storeOffsets`. A timeout answers
/// COORDINATOR_NOT_AVAILABLE as Kafka's current coordinator does (the classic one passed
/// REQUEST_TIMED_OUT through); clients look for the coordinator again and retry on all three.
pub(super) fn commit_error(e: &OffsetsLogError) -> ResponseError {
    match e {
        OffsetsLogError::PartitionUnavailable(_)
        | OffsetsLogError::NotEnoughReplicas(_)
        | OffsetsLogError::Timeout(_) => ResponseError::CoordinatorNotAvailable,
        OffsetsLogError::NotLeader(_) | OffsetsLogError::Storage(_) => {
            ResponseError::NotCoordinator
        }
    }
}

/// The answer when group metadata (the assignment of a SyncGroup, a static member's new id)
/// could not be written or replicated: Kafka's `GroupMetadataManager.storeGroup`, which differs
/// from offsets in one case: a timeout answers REBALANCE_IN_PROGRESS, since the group rebalances
/// anyway.
pub(super) fn group_store_error(e: &OffsetsLogError) -> ResponseError {
    match e {
        OffsetsLogError::Timeout(_) => ResponseError::RebalanceInProgress,
        other => commit_error(other),
    }
}

/// What to do once appended records are replicated (or not): the next step of an answer.
pub(super) type AfterReplication<T> = Box<dyn FnOnce(Replication) -> Answer<T> + Send>;

/// A response available now, one that arrives when the rest of the group is ready, or one that
/// depends on the replication of records just appended.
pub(super) enum Answer<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
    Replicating(Appended, AfterReplication<T>),
}

impl<T: Send + 'static> Answer<T> {
    pub fn replicating(
        appended: Appended,
        then: impl FnOnce(Replication) -> Answer<T> + Send + 'static,
    ) -> Self {
        Answer::Replicating(appended, Box::new(then))
    }

    /// The response; `fallback` when a waiting sender was dropped (superseded) or a task died.
    pub async fn resolve(self, fallback: impl Fn() -> T) -> T {
        let mut answer = self;
        loop {
            answer = match answer {
                Answer::Now(response) => return response,
                Answer::Later(rx) => return rx.await.unwrap_or_else(|_| fallback()),
                Answer::Replicating(appended, then) => match appended.then(then).await {
                    Some(next) => next,
                    None => return fallback(),
                },
            }
        }
    }
}
