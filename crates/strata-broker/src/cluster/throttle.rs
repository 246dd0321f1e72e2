//! Replication throttles as Kafka defines them: the dynamic broker configs
//! `leader.replication.throttled.rate` and `follower.replication.throttled.rate` (bytes/s, per
//! broker or as the cluster default) bound the replication traffic of the replicas the topic
//! configs `leader.replication.throttled.replicas` / `follower.replication.throttled.replicas`
//! name (`partition:broker` entries for this broker, or `*`). Only replicas outside the ISR are
//! throttled (catching up, e.g. added by a reassignment); in-sync replication is never slowed.
//! A throttled read takes at most what the side's quota allows at that moment (the leader
//! caps what it returns, the follower what it asks for); while the quota is used up, the
//! leader answers throttled partitions without records and the follower leaves them out of
//! its fetches.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

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

/// A byte-rate quota measured as Kafka's `ReplicationQuotaManager` measures it (a `SimpleRate`):
/// bytes recorded in the last `replication.quota.window.num` windows of
/// `replication.quota.window.size.seconds`, divided by the time since the oldest of those
/// windows began (at least one window). Unlike Kafka, which only checks the rate before a
/// fetch and then lets the fetch bring up to `replica.fetch.max.bytes`, every throttled read
/// is bounded by [`ReplicationQuota::allowance`], the bytes that keep the measured rate at the
/// bound: a copy runs at the rate instead of one fetch ahead of it.
pub struct ReplicationQuota {
    side: Side,
    window: Duration,
    windows: usize,
    samples: Mutex<VecDeque<Sample>>,
}

/// The bytes recorded in one window, which began at `start`.
#[derive(Debug, Clone, Copy)]
struct Sample {
    start: Instant,
    bytes: f64,
}

impl ReplicationQuota {
    /// A quota over `windows` windows of `window` each (Kafka: 11 of 1 s).
    pub fn new(side: Side, windows: usize, window: Duration) -> ReplicationQuota {
        ReplicationQuota {
            side,
            window: window.max(Duration::from_millis(1)),
            windows: windows.max(1),
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// This broker's rate of this side (bytes/s), `None` when unthrottled.
    pub fn rate(&self, image: &MetadataImage, broker: i32) -> Option<u64> {
        image
            .dynamic_broker_config(broker, self.side.rate_config())
            .and_then(|v| v.trim().parse::<u64>().ok())
    }

    /// Drops the windows that ended more than `windows` windows ago; returns the bytes of the
    /// rest and the time the measurement spans (since the oldest kept window began, at least
    /// one window).
    fn measure(&self, samples: &mut VecDeque<Sample>, now: Instant) -> (f64, Duration) {
        let span = self.window * self.windows as u32;
        while samples
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.start) >= span)
        {
            samples.pop_front();
        }
        let bytes = samples.iter().map(|s| s.bytes).sum();
        let elapsed = samples
            .front()
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s.start));
        (bytes, elapsed.max(self.window))
    }

    fn allowance_at(&self, rate: u64, now: Instant) -> usize {
        let mut samples = self.samples.lock();
        let (bytes, elapsed) = self.measure(&mut samples, now);
        let allowed = rate as f64 * elapsed.as_secs_f64() - bytes;
        if allowed <= 0.0 {
            0
        } else {
            allowed.min(usize::MAX as f64) as usize
        }
    }

    /// The bytes that can be taken now without the measured rate going over `rate`; 0 while
    /// the quota is used up.
    pub fn allowance(&self, rate: u64) -> usize {
        self.allowance_at(rate, Instant::now())
    }

    /// Whether the quota is used up at `rate`.
    pub fn exceeded(&self, rate: u64) -> bool {
        self.allowance(rate) == 0
    }

    fn record_at(&self, bytes: usize, now: Instant) {
        if bytes == 0 {
            return;
        }
        let mut samples = self.samples.lock();
        self.measure(&mut samples, now);
        match samples.back_mut() {
            Some(s) if now.saturating_duration_since(s.start) < self.window => {
                s.bytes += bytes as f64
            }
            _ => samples.push_back(Sample {
                start: now,
                bytes: bytes as f64,
            }),
        }
    }

    /// Counts `bytes` of throttled replication against the quota.
    pub fn record(&self, bytes: usize) {
        self.record_at(bytes, Instant::now());
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

    fn quota() -> ReplicationQuota {
        ReplicationQuota::new(Side::Leader, 11, Duration::from_secs(1))
    }

    #[test]
    fn a_fresh_quota_allows_one_window_of_the_rate() {
        let q = quota();
        let t0 = Instant::now();
        assert_eq!(q.allowance_at(500_000, t0), 500_000);
        q.record_at(500_000, t0);
        assert_eq!(
            q.allowance_at(500_000, t0),
            0,
            "one second of bytes taken at once"
        );
        // Half a second later the span is still the one-window minimum: nothing more.
        assert_eq!(q.allowance_at(500_000, t0 + Duration::from_millis(500)), 0);
        // Two seconds after the first byte: two seconds of the rate, one of them taken.
        assert_eq!(
            q.allowance_at(500_000, t0 + Duration::from_secs(2)),
            500_000
        );
    }

    #[test]
    fn reads_bounded_by_the_allowance_hold_the_rate_over_kafkas_window() {
        // A copy that takes whatever the allowance gives, every 100 ms, for 20 s: the bytes of
        // every 11 s window stay at the rate (plus the first window's allowance).
        let q = quota();
        let rate = 500_000u64;
        let t0 = Instant::now();
        let mut copied = vec![];
        for tick in 0..200u64 {
            let now = t0 + Duration::from_millis(100 * tick);
            let take = q.allowance_at(rate, now);
            q.record_at(take, now);
            copied.push((tick, take));
        }
        let total: usize = copied.iter().map(|(_, b)| b).sum();
        let expected = rate as f64 * 20.0;
        assert!(
            (total as f64) <= expected * 1.06 && (total as f64) >= expected * 0.9,
            "{total} bytes in 20 s at {rate} B/s"
        );
        for start in 0..90 {
            let window: usize = copied[start..start + 110].iter().map(|(_, b)| b).sum();
            assert!(
                window as f64 <= rate as f64 * 11.0 * 1.1,
                "{window} bytes in the 11 s from tick {start}"
            );
        }
    }

    #[test]
    fn the_quota_forgets_bytes_older_than_its_windows() {
        let q = quota();
        let t0 = Instant::now();
        q.record_at(3_000_000, t0);
        assert!(
            q.allowance_at(1_000_000, t0 + Duration::from_secs(2)) == 0,
            "3 MB in 2 s"
        );
        assert_eq!(
            q.allowance_at(1_000_000, t0 + Duration::from_secs(4)),
            1_000_000,
            "4 s of 1 MB/s, 3 MB of them taken"
        );
        // Past the 11 windows, the old bytes no longer count.
        assert_eq!(
            q.allowance_at(1_000_000, t0 + Duration::from_secs(12)),
            1_000_000
        );
    }
}
