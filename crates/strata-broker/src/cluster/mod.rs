//! This broker as a member of a replicated cluster: its link to the active controller, its
//! lifecycle (registration, heartbeats, fencing, controlled shutdown), the reconciliation of its
//! partitions with the metadata image (leader / follower / removed), the replica fetchers that
//! keep its follower partitions in step with their leaders (within the replication throttles),
//! the ISR upkeep of the partitions it leads, and the end offsets of partitions hosted
//! elsewhere that the groups it coordinates committed on (for the lag metric) or that a tail
//! truncation names (`log_bounds`).

pub mod end_offsets;
pub mod fetcher;
pub mod isr;
pub mod lifecycle;
pub mod link;
pub mod log_bounds;
pub mod reconcile;
pub mod throttle;

use std::time::Duration;

use crate::partition::Partition;

/// How a wait for the high watermark ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HwWait {
    Reached,
    /// The broker stopped leading the partition while waiting.
    NotLeader,
    TimedOut,
}

/// Waits until the partition's HW reaches `offset` (acks=all, offset commits) for records this
/// broker appended as leader at `leader_epoch`. Each HW read is compared only after a check
/// that this broker still leads at that epoch: once it stops, an HW it reaches says nothing
/// about those records. As a follower it may have truncated them and fetched the new leader's records at
/// the same offsets (whose HW then passes them), or, leading again at a later epoch, it may
/// hold records another leader wrote there in between; answering the wait from that HW would
/// acknowledge records that are gone.
pub async fn wait_high_watermark(
    partition: &Partition,
    offset: i64,
    leader_epoch: i32,
    within: Duration,
) -> HwWait {
    let mut hw = partition.watch_high_watermark();
    let wait = async {
        loop {
            // The HW first, then the role: a follower's HW moves only after the role changed
            // (both under the partition's role), so an HW seen here that came from following
            // is always caught by the check after it.
            let reached = *hw.borrow_and_update() >= offset;
            if !partition.is_leader() || partition.leader_epoch() != leader_epoch {
                return HwWait::NotLeader;
            }
            if reached {
                return HwWait::Reached;
            }
            // Wakes on every HW move; leadership changes are seen at the next check.
            match tokio::time::timeout(Duration::from_millis(100), hw.changed()).await {
                Ok(Ok(())) | Err(_) => {}
                Ok(Err(_)) => return HwWait::NotLeader,
            }
        }
    };
    tokio::time::timeout(within, wait)
        .await
        .unwrap_or(HwWait::TimedOut)
}
