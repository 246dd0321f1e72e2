//! Offset translation: the [`OffsetSyncStore`] keeps, per source partition, the offset syncs
//! (source offset `u` was written at target offset `d`) and maps a group's committed source
//! offset to a target offset. Pure: no client; fed by the replication loop and, at start, by the
//! offset-syncs topic.
//!
//! The rule ([`translate`]): for a committed source offset `c` (the next record the group would
//! read), take the sync with the greatest `u <= c`.
//! - `c == u`: the group has not read record `u`, so the answer is `d`, where `u` lives;
//! - `c > u`: the group read `u`, so the answer is `d + 1` — never `d + (c - u)`;
//! - no sync at or below `c`: no answer (nothing is committed on the target).
//!
//! Why this loses nothing: every source record at or after `c` is written to the target after
//! record `u` was written at `d` (partition order is kept, and a restarted mirror re-writes
//! from an earlier position, i.e. again after `d`), so all of them sit above `d`, and when
//! `c == u` record `u` itself sits at `d`. The answer can lag the exact position (duplicates,
//! bounded by the sync spacing `offset.lag.max` and by syncing at the end of each fetch of a
//! caught-up partition), never lead it.
//!
//! The MirrorMaker 2 pitfalls this avoids: KAFKA-12468 (translated offsets ahead of the data,
//! from extrapolating `d + (c - u)` across gaps — compaction, transaction markers, skipped
//! records — and across stale syncs after a restart) and KAFKA-12635 (offsets translated from
//! a sync above `c` or onto an empty target partition, so consumers skip or see negative lag).
//! Here the only arithmetic is `d + 1` for a record known to be consumed, a `c` below every
//! known sync gets no translation, and syncs only ever come from acknowledged writes.

use std::collections::{BTreeMap, HashMap};

use crate::records::OffsetSync;

/// How many syncs are kept per partition (older ones only help groups far behind).
const SYNCS_PER_PARTITION: usize = 256;

/// The target offset for committed source offset `c`, from `syncs` sorted by upstream offset.
pub fn translate(syncs: &BTreeMap<i64, i64>, c: i64) -> Option<i64> {
    let (&u, &d) = syncs.range(..=c).next_back()?;
    Some(if c == u { d } else { d + 1 })
}

/// Offset syncs of many partitions, by (source topic, partition).
#[derive(Debug, Default)]
pub struct OffsetSyncStore {
    partitions: HashMap<(String, i32), BTreeMap<i64, i64>>,
}

impl OffsetSyncStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a sync. A later sync for the same source offset replaces the earlier one (after
    /// a restart the record was written again, higher up); both would be safe.
    pub fn record(&mut self, sync: &OffsetSync) {
        let syncs = self
            .partitions
            .entry((sync.topic.clone(), sync.partition))
            .or_default();
        syncs.insert(sync.upstream, sync.downstream);
        // Keep the newest-by-offset syncs; drop the lowest ones beyond the cap.
        while syncs.len() > SYNCS_PER_PARTITION {
            syncs.pop_first();
        }
    }

    /// The translation of committed source offset `c` of (`topic`, `partition`), if any.
    pub fn translate(&self, topic: &str, partition: i32, c: i64) -> Option<i64> {
        self.partitions
            .get(&(topic.to_string(), partition))
            .and_then(|s| translate(s, c))
    }

    /// The latest sync of a partition, by source offset.
    pub fn latest(&self, topic: &str, partition: i32) -> Option<(i64, i64)> {
        self.partitions
            .get(&(topic.to_string(), partition))
            .and_then(|s| s.last_key_value().map(|(u, d)| (*u, *d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_at_a_sync_and_one_past_it_beyond() {
        let s: BTreeMap<i64, i64> = [(10, 100), (20, 130)].into_iter().collect();
        assert_eq!(translate(&s, 5), None, "below every sync: no answer");
        assert_eq!(translate(&s, 10), Some(100));
        assert_eq!(translate(&s, 15), Some(101), "never 105");
        assert_eq!(translate(&s, 20), Some(130));
        assert_eq!(translate(&s, 1_000), Some(131));
    }

    #[test]
    fn store_keeps_partitions_apart() {
        let mut store = OffsetSyncStore::new();
        store.record(&OffsetSync {
            topic: "t".into(),
            partition: 0,
            upstream: 5,
            downstream: 7,
        });
        assert_eq!(store.translate("t", 0, 6), Some(8));
        assert_eq!(store.translate("t", 1, 6), None);
        assert_eq!(store.latest("t", 0), Some((5, 7)));
    }

    /// A simulated mirror: source offsets with gaps (compaction, markers), copied to the target
    /// in order but with restarts that re-copy from an earlier point, syncs taken every
    /// `sync_every` copies and at the end. For every committed offset `c` that translates, the
    /// target from the translated offset on must hold every source record >= c.
    fn check_no_loss(
        source: &[i64],
        restarts: &[(usize, usize)],
        sync_every: usize,
    ) -> Result<(), TestCaseError> {
        // Build the target log: a sequence of source offsets.
        let mut target: Vec<i64> = Vec::new();
        let mut syncs = BTreeMap::new();
        let mut i = 0usize;
        let mut restarts = restarts.iter().copied().peekable();
        let mut copied = 0usize;
        while i < source.len() {
            if let Some(&(at, back)) = restarts.peek() {
                if copied == at {
                    restarts.next();
                    i = i.saturating_sub(back);
                }
            }
            target.push(source[i]);
            if copied.is_multiple_of(sync_every) || i + 1 == source.len() {
                syncs.insert(source[i], (target.len() - 1) as i64);
            }
            copied += 1;
            i += 1;
        }
        let last = *source.last().unwrap_or(&0);
        for c in 0..=last + 1 {
            let Some(d) = translate(&syncs, c) else {
                continue;
            };
            prop_assert!(d >= 0 && d as usize <= target.len());
            let rest: std::collections::BTreeSet<i64> =
                target[d as usize..].iter().copied().collect();
            for s in source.iter().filter(|&&s| s >= c) {
                prop_assert!(rest.contains(s), "c={c} d={d} lost {s}");
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn translation_never_skips_an_uncommitted_record(
            gaps in proptest::collection::vec(1i64..4, 1..60),
            restarts in proptest::collection::vec((0usize..80, 0usize..20), 0..4),
            sync_every in 1usize..10,
        ) {
            let mut source = Vec::new();
            let mut o = 0;
            for g in gaps { o += g; source.push(o); }
            let mut restarts = restarts;
            restarts.sort();
            restarts.dedup_by_key(|r| r.0);
            check_no_loss(&source, &restarts, sync_every)?;
        }
    }
}
