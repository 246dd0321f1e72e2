//! Replication throttles as Kafka defines them: the dynamic broker configs
//! `leader.replication.throttled.rate` and `follower.replication.throttled.rate` (bytes/s, per
//! broker or as the cluster default) bound the replication traffic of the replicas the topic
//! configs `leader.replication.throttled.replicas` / `follower.replication.throttled.replicas`
//! name (`partition:broker` entries for this broker, or `*`). Only replicas outside the ISR are
//! throttled (catching up, e.g. added by a reassignment); in-sync replication is never slowed.
//! While a side's quota is used up, the leader answers throttled partitions without records
//! and the follower leaves them out of its fetches.

use std::time::Instant;

use parking_lot::Mutex;
use strata_controller::MetadataImage;

/// `leader.replication.throttled.rate`: bytes/s a leader sends to throttled followers.
pub const LEADER_THROTTLED_RATE: &str = "leader.replication.throttled.rate";
/// `follower.replication.throttled.rate`: bytes/s a follower fetches for throttled replicas.
pub const FOLLOWER_THROTTLED_RATE: &str = "follower.replication.throttled.rate";

/// The topic configs that name throttled replicas.
const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Which end of replication a quota bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Leader,
    Follower,
}

impl Side {
    fn rate_config(self) -> &'static str {
        match self {
            Side::Leader => LEADER_THROTTLED_RATE,
            Side::Follower => FOLLOWER_THROTTLED_RATE,
        }
    }

    fn replicas_config(self) -> &'static str {
        match self {
            Side::Leader => LEADER_REPLICAS,
            Side::Follower => FOLLOWER_REPLICAS,
        }
    }
}

/// A byte-rate quota: a bucket holding up to one second of the rate; bytes taken beyond it
/// leave it negative (the quota is exceeded) until the rate refills it.
pub struct ReplicationQuota {
    side: Side,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl ReplicationQuota {
    pub fn new(side: Side) -> ReplicationQuota {
        ReplicationQuota {
            side,
            bucket: Mutex::new(Bucket {
                tokens: 0.0,
                last: Instant::now(),
            }),
        }
    }

    /// This broker's rate of this side (bytes/s), `None` when unthrottled.
    pub fn rate(&self, image: &MetadataImage, broker: i32) -> Option<u64> {
        image
            .dynamic_broker_config(broker, self.side.rate_config())
            .and_then(|v| v.trim().parse::<u64>().ok())
    }

    fn refill(&self, rate: u64) -> parking_lot::MutexGuard<'_, Bucket> {
        let mut b = self.bucket.lock();
        let now = Instant::now();
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * rate as f64).min(rate as f64);
        b
    }

    /// Whether the quota is used up at `rate`.
    pub fn exceeded(&self, rate: u64) -> bool {
        self.refill(rate).tokens < 0.0
    }

    /// Counts `bytes` of throttled replication against the quota at `rate`.
    pub fn record(&self, rate: u64, bytes: usize) {
        self.refill(rate).tokens -= bytes as f64;
    }

    /// Whether `partition` of `topic` is throttled on this side of `broker`: named in the
    /// topic's throttled-replicas config for this broker (or all of them with `*`).
    pub fn is_throttled(
        &self,
        image: &MetadataImage,
        topic: &str,
        partition: i32,
        broker: i32,
    ) -> bool {
        image
            .topics
            .get(topic)
            .and_then(|t| t.configs.get(self.side.replicas_config()))
            .is_some_and(|list| names_replica(list, partition, broker))
    }
}

/// Whether a throttled-replicas list (`*`, or `partition:broker` entries) names this replica.
pub fn names_replica(list: &str, partition: i32, broker: i32) -> bool {
    list.split(',').map(str::trim).any(|entry| {
        if entry == "*" {
            return true;
        }
        let mut parts = entry.split(':');
        let p = parts.next().and_then(|p| p.trim().parse::<i32>().ok());
        let b = parts.next().and_then(|b| b.trim().parse::<i32>().ok());
        p == Some(partition) && b == Some(broker)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_lists_name_partition_broker_pairs_or_everything() {
        assert!(names_replica("0:1,1:2", 1, 2));
        assert!(!names_replica("0:1,1:2", 1, 1));
        assert!(names_replica("*", 7, 9));
        assert!(!names_replica("", 0, 1));
        assert!(!names_replica("garbage", 0, 1));
    }

    #[test]
    fn the_quota_is_exceeded_after_a_second_of_bytes_until_it_refills() {
        let q = ReplicationQuota::new(Side::Leader);
        let rate = 1_000_000;
        assert!(!q.exceeded(rate));
        q.record(rate, 3_000_000);
        assert!(q.exceeded(rate), "3 MB taken from a 1 MB/s quota");
        // Refilling the deficit takes time: pretend two seconds passed.
        q.bucket.lock().last -= std::time::Duration::from_secs(2);
        assert!(q.exceeded(rate), "still 1 MB short");
        q.bucket.lock().last -= std::time::Duration::from_secs(2);
        assert!(!q.exceeded(rate));
    }
}
