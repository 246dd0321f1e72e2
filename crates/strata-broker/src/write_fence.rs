//! The write fence of active-standby failover: whether this cluster may take writes from
//! ordinary clients now. Two cluster-wide dynamic broker configs decide it
//! ([`WRITE_FENCE_CONFIG`] and [`MANDATE_EXPIRY_CONFIG`], see `strata_kafka::failover`):
//!
//! - a non-empty `strata.write.fence` fences the cluster (its value, the failover id, is in
//!   the errors clients get);
//! - a `strata.write.mandate.expiry.ms` above 0 fences it once this broker's wall clock is
//!   past that time (a cluster cut off from the failover engine stops taking writes on its
//!   own).
//!
//! While fenced, Produce answers NOT_LEADER_OR_FOLLOWER, Metadata v13+ REBOOTSTRAP_REQUIRED
//! and the group writes (JoinGroup, SyncGroup, OffsetCommit) COORDINATOR_NOT_AVAILABLE — except
//! for the clients of the failover itself, named by their client id ([`may_produce`],
//! [`sees_metadata`], [`may_commit_offsets`]): a fenced standby is written by the mirror only,
//! and Kafka's admin tools still see its metadata.
//!
//! Promotion lifts the fence together with a producer reset (`strata.producer.reset`, an
//! action on the cluster-default broker resource, never stored): in the same metadata-log
//! entry every partition gets a new leader epoch at which each replica releases the producers
//! of older epochs from their sequences (`Partition::apply_producer_reset`; their retries are
//! still recognised), and producer ids restart at the reset's floor, so producers that come over
//! from the other cluster neither trip over sequences this cluster remembers from before nor
//! share an id with a producer of this cluster. No transaction can be open (the broker serves none). `cluster::reconcile` applies
//! a fence at once ([`WriteFence::tighten`]) but lifts it only after the partitions applied
//! the image, so the reset is in place before the first write.
//!
//! The state follows the metadata image (`cluster::reconcile` calls [`WriteFence::follow`]);
//! the request path reads it with [`WriteFence::check`]: one atomic load, plus one clock read
//! only while a mandate is set. Pure apart from the atomics: no image, no client.
//!
//! A planned failover's drain must know when the fence holds every write: a produce request
//! checked just before the fence arrived may still be appending. Each ordinary client's produce
//! request holds a [`WriteFence::admit`] admission from before its check until it is answered;
//! [`WriteFence::settled`] names the fence once it is set and no admission is left (the
//! admission is counted before the check and the fence stored before the count is read, both
//! sequentially consistent: a request either sees the fence or is counted). The broker adds
//! its partitions' replication to that (`strata.write.fence.drained`, see
//! `strata_kafka::failover`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use parking_lot::RwLock;
use strata_kafka::failover::{MANDATE_EXPIRY_CONFIG, WRITE_FENCE_CONFIG};
use strata_kafka::preserve::PRESERVE_CLIENT_ID;

/// Client ids of the Translate mirror's producers (`strata-mirror-<source>-<target>`).
const MIRROR_CLIENT_PREFIX: &str = "strata-mirror-";

/// Client-id prefixes of the failover's own clients: the mirror, the operator and the failover
/// engine. They read metadata and write group offsets (the final checkpoint) on a fenced
/// cluster.
const FAILOVER_CLIENT_PREFIXES: &[&str] = &["strata-mirror", "strata-operator", "strata-failover"];

/// The Java AdminClient's default client id (`adminclient-<n>`): Kafka's own tools
/// (`kafka-configs`, `kafka-topics`) must keep working on a fenced cluster, to inspect it and
/// to lift the fence; admin requests are never fenced, so their metadata need not be either.
const JAVA_ADMIN_CLIENT_PREFIX: &str = "adminclient-";

/// `deadline` when writes are allowed: never past.
const NO_DEADLINE: i64 = i64::MAX;

/// Why the cluster refuses writes now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fenced {
    /// `strata.write.fence` is set to this failover id.
    Failover(String),
    /// The write mandate expired at this time (Unix ms).
    MandateExpired(i64),
}

impl Fenced {
    /// The message clients get with the error.
    pub fn message(&self) -> String {
        match self {
            Fenced::Failover(id) => format!(
                "cluster is write-fenced by failover {id} ({WRITE_FENCE_CONFIG}); clients must \
                 re-bootstrap to the active cluster"
            ),
            Fenced::MandateExpired(at) => format!(
                "cluster is write-fenced: its write mandate expired at {} ({MANDATE_EXPIRY_CONFIG}={at}); \
                 clients must re-bootstrap to the active cluster",
                format_utc(*at)
            ),
        }
    }
}

/// The fence as the image last set it.
pub struct WriteFence {
    /// The wall-clock time (Unix ms) from which writes are refused: [`i64::MIN`] when fenced
    /// outright, the mandate's expiry, or [`NO_DEADLINE`].
    deadline: AtomicI64,
    /// The failover id while `strata.write.fence` is set (read only to build the answer).
    fence_id: RwLock<Option<String>>,
    /// Produce requests of ordinary clients admitted and not yet answered.
    admitted: AtomicUsize,
}

/// A produce request's admission (see the module doc); released when dropped.
pub struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Default for WriteFence {
    fn default() -> Self {
        WriteFence {
            deadline: AtomicI64::new(NO_DEADLINE),
            fence_id: RwLock::new(None),
            admitted: AtomicUsize::new(0),
        }
    }
}

impl WriteFence {
    /// Takes the fence and the mandate from the cluster-wide dynamic broker configs. A mandate
    /// that does not parse (the broker validates it on the way in) counts as none.
    pub fn follow(&self, cluster_configs: &BTreeMap<String, String>) {
        let (fence, deadline) = Self::decide(cluster_configs);
        // The id first: a request that sees the new deadline finds the id that goes with it.
        *self.fence_id.write() = fence;
        self.deadline.store(deadline, Ordering::SeqCst);
    }

    /// Follows `cluster_configs` only if they fence earlier than the current state does (a
    /// fence set, a mandate shortened); a lift waits for [`WriteFence::follow`].
    pub fn tighten(&self, cluster_configs: &BTreeMap<String, String>) {
        let (_, deadline) = Self::decide(cluster_configs);
        if deadline < self.deadline.load(Ordering::Acquire) {
            self.follow(cluster_configs);
        }
    }

    /// The failover id and the deadline (`i64::MIN`: fenced now) the configs set.
    fn decide(cluster_configs: &BTreeMap<String, String>) -> (Option<String>, i64) {
        let fence = cluster_configs
            .get(WRITE_FENCE_CONFIG)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let mandate = cluster_configs
            .get(MANDATE_EXPIRY_CONFIG)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|v| *v > 0);
        let deadline = match (&fence, mandate) {
            (Some(_), _) => i64::MIN,
            (None, Some(expiry)) => expiry,
            (None, None) => NO_DEADLINE,
        };
        (fence, deadline)
    }

    /// Whether writes are refused now; `now_ms` is called only while a mandate is set.
    pub fn check(&self, now_ms: impl FnOnce() -> i64) -> Option<Fenced> {
        let deadline = self.deadline.load(Ordering::SeqCst);
        if deadline == NO_DEADLINE {
            return None;
        }
        if deadline == i64::MIN {
            let id = self.fence_id.read().clone().unwrap_or_default();
            return Some(Fenced::Failover(id));
        }
        (now_ms() >= deadline).then_some(Fenced::MandateExpired(deadline))
    }
}

impl WriteFence {
    /// Admits an ordinary client's produce request: taken before [`WriteFence::check`], held
    /// until the request is answered.
    pub fn admit(&self) -> Admission<'_> {
        self.admitted.fetch_add(1, Ordering::SeqCst);
        Admission(&self.admitted)
    }

    /// The failover id of the fence once it holds every ordinary client's write: set, and no
    /// produce request admitted before it still running. None while unfenced, fenced only by
    /// an expired mandate, or while such a request runs.
    pub fn settled(&self) -> Option<String> {
        let Some(Fenced::Failover(id)) = self.check(|| i64::MIN) else {
            return None;
        };
        (self.admitted.load(Ordering::SeqCst) == 0).then_some(id)
    }
}

/// May this client produce on a fenced cluster? The offset-preserving mirror and the
/// Translate mirror's producers: they are how a standby is written.
pub fn may_produce(client_id: &str) -> bool {
    client_id == PRESERVE_CLIENT_ID || client_id.starts_with(MIRROR_CLIENT_PREFIX)
}

/// Does this client get normal metadata (not REBOOTSTRAP_REQUIRED) on a fenced cluster? The
/// failover's clients and Kafka's admin tools.
pub fn sees_metadata(client_id: &str) -> bool {
    is_failover_client(client_id) || client_id.starts_with(JAVA_ADMIN_CLIENT_PREFIX)
}

/// May this client commit group offsets on a fenced cluster (the failover's final
/// checkpoint)?
pub fn may_commit_offsets(client_id: &str) -> bool {
    is_failover_client(client_id)
}

fn is_failover_client(client_id: &str) -> bool {
    FAILOVER_CLIENT_PREFIXES
        .iter()
        .any(|p| client_id.starts_with(p))
}

/// `2024-05-01T12:00:00.000Z` for Unix milliseconds (proleptic Gregorian, UTC).
fn format_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn never() -> i64 {
        panic!("the clock is read only while a mandate is set")
    }

    #[test]
    fn unset_or_empty_fence_lets_writes_through_without_reading_the_clock() {
        let fence = WriteFence::default();
        assert_eq!(fence.check(never), None);
        fence.follow(&configs(&[(WRITE_FENCE_CONFIG, "")]));
        assert_eq!(fence.check(never), None);
        fence.follow(&configs(&[(MANDATE_EXPIRY_CONFIG, "0")]));
        assert_eq!(fence.check(never), None);
    }

    #[test]
    fn a_fence_refuses_writes_and_clearing_it_lifts_it() {
        let fence = WriteFence::default();
        fence.follow(&configs(&[(WRITE_FENCE_CONFIG, "f123")]));
        let fenced = fence.check(never).expect("fenced");
        assert_eq!(fenced, Fenced::Failover("f123".into()));
        assert!(fenced.message().contains("failover f123"));
        assert!(fenced.message().contains("re-bootstrap"));
        fence.follow(&configs(&[]));
        assert_eq!(fence.check(never), None);
    }

    #[test]
    fn tighten_fences_at_once_but_never_lifts() {
        let fence = WriteFence::default();
        fence.tighten(&configs(&[(MANDATE_EXPIRY_CONFIG, "9999999999999")]));
        assert_eq!(fence.check(|| 0), None);
        fence.tighten(&configs(&[(WRITE_FENCE_CONFIG, "f1")]));
        assert_eq!(fence.check(never), Some(Fenced::Failover("f1".into())));
        fence.tighten(&configs(&[]));
        assert_eq!(fence.check(never), Some(Fenced::Failover("f1".into())));
        fence.follow(&configs(&[]));
        assert_eq!(fence.check(never), None);
    }

    #[test]
    fn the_fence_wins_over_a_valid_mandate() {
        let fence = WriteFence::default();
        fence.follow(&configs(&[
            (WRITE_FENCE_CONFIG, "f9"),
            (MANDATE_EXPIRY_CONFIG, "9999999999999"),
        ]));
        assert_eq!(fence.check(never), Some(Fenced::Failover("f9".into())));
    }

    #[test]
    fn a_mandate_fences_from_its_expiry_on() {
        let fence = WriteFence::default();
        fence.follow(&configs(&[(MANDATE_EXPIRY_CONFIG, "1714564800000")]));
        assert_eq!(fence.check(|| 1_714_564_799_999), None);
        let expired = fence.check(|| 1_714_564_800_000).expect("expired");
        assert_eq!(expired, Fenced::MandateExpired(1_714_564_800_000));
        assert!(
            expired.message().contains("2024-05-01T12:00:00.000Z"),
            "{}",
            expired.message()
        );
        // Renewing the mandate lifts the fence.
        fence.follow(&configs(&[(MANDATE_EXPIRY_CONFIG, "1714564900000")]));
        assert_eq!(fence.check(|| 1_714_564_800_000), None);
    }

    #[test]
    fn the_fence_settles_once_the_requests_admitted_before_it_are_answered() {
        let fence = WriteFence::default();
        let early = fence.admit();
        assert_eq!(fence.check(never), None);
        assert_eq!(fence.settled(), None, "not fenced");
        fence.follow(&configs(&[(WRITE_FENCE_CONFIG, "f1")]));
        assert_eq!(
            fence.settled(),
            None,
            "a request admitted before the fence still runs"
        );
        {
            // Admitted after the fence: refused at its check, released with its answer.
            let _late = fence.admit();
            assert!(fence.check(never).is_some());
        }
        assert_eq!(fence.settled(), None);
        drop(early);
        assert_eq!(fence.settled(), Some("f1".into()));
        // A mandate that expired fences, but is no failover's fence to drain.
        fence.follow(&configs(&[(MANDATE_EXPIRY_CONFIG, "1")]));
        assert!(fence.check(|| 2).is_some());
        assert_eq!(fence.settled(), None);
    }

    #[test]
    fn only_the_failover_clients_pass_a_fence() {
        assert!(may_produce(PRESERVE_CLIENT_ID));
        assert!(may_produce("strata-mirror-east-west"));
        assert!(!may_produce("strata-operator"));
        assert!(!may_produce("rdkafka"));
        assert!(!may_produce("console-producer"));
        for id in [
            "strata-mirror-preserve",
            "strata-operator-x",
            "strata-failover",
        ] {
            assert!(sees_metadata(id) && may_commit_offsets(id), "{id}");
        }
        for id in [
            "",
            "rdkafka",
            "consumer-g-1",
            "my-strata-mirror",
            "producer-1",
        ] {
            assert!(!sees_metadata(id) && !may_commit_offsets(id), "{id}");
        }
        assert!(sees_metadata("adminclient-1") && !may_commit_offsets("adminclient-1"));
    }

    /// The cost of the produce path's check, printed (a figure, not an assertion):
    /// `cargo test --release -p strata-broker write_fence::tests::check_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a benchmark: prints figures"]
    fn check_cost() {
        const N: u32 = 20_000_000;
        let run = |fence: &WriteFence| {
            let start = std::time::Instant::now();
            let mut fenced = 0u32;
            for _ in 0..N {
                fenced += u32::from(
                    std::hint::black_box(fence)
                        .check(strata_kafka::now_ms)
                        .is_some(),
                );
            }
            assert_eq!(fenced, 0);
            start.elapsed().as_nanos() as f64 / f64::from(N)
        };
        let fence = WriteFence::default();
        let none = run(&fence);
        fence.follow(&configs(&[(MANDATE_EXPIRY_CONFIG, "32503680000000")]));
        let mandate = run(&fence);
        println!("write fence check per produce request: no mandate {none:.1} ns, mandate set {mandate:.1} ns");
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }
}
