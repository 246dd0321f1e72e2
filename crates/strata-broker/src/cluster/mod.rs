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

/// Waits until the partition's HW reaches `offset` (acks=all, offset commits).
pub async fn wait_high_watermark(partition: &Partition, offset: i64, within: Duration) -> HwWait {
    let mut hw = partition.watch_high_watermark();
    let wait = async {
        loop {
            if *hw.borrow_and_update() >= offset {
                return HwWait::Reached;
            }
            if !partition.is_leader() {
                return HwWait::NotLeader;
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
