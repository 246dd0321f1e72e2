//! Leader-epoch cache: the start offset of every leader epoch seen in the log, as used by
//! OffsetForLeaderEpoch and follower truncation. Pure; the log persists it in Kafka's
//! `leader-epoch-checkpoint` text format (`0\n<count>\n<epoch> <start_offset>\n...`).

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LeaderEpochCache {
    /// (epoch, start offset), strictly increasing in both.
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    /// Records that `epoch` starts at `start_offset`; returns whether the cache changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        match self.entries.last() {
            Some(&(latest, _)) if epoch <= latest => false,
            _ => {
                // Entries starting at or after the new epoch's start are stale.
                self.entries.retain(|&(_, start)| start < start_offset);
                self.entries.push((epoch, start_offset));
                true
            }
        }
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|&(e, _)| e)
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested < 0 {
            return (-1, -1);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some(&(_, higher_start)) = self.entries.iter().find(|&&(e, _)| e > requested) else {
            return (-1, -1);
        };
        match self.entries.iter().rev().find(|&&(e, _)| e <= requested) {
            Some(&(floor, _)) => (floor, higher_start),
            None => (requested, higher_start),
        }
    }

    /// Drops epochs starting at or after `end_offset` (log truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < end_offset);
        before != self.entries.len()
    }

    /// Drops epochs wholly below `start_offset`, moving the one containing it to start there.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let Some(floor) = self.entries.iter().rposition(|&(_, s)| s <= start_offset) else {
            return false;
        };
        let changed = floor > 0 || self.entries[floor].1 != start_offset;
        self.entries.drain(..floor);
        self.entries[0].1 = start_offset;
        changed
    }

    pub fn to_checkpoint(&self) -> String {
        let mut s = format!("0\n{}\n", self.entries.len());
        for (e, o) in &self.entries {
            s.push_str(&format!("{e} {o}\n"));
        }
        s
    }

    /// Parses a checkpoint file; `None` if it is malformed (the caller rebuilds from the log).
    pub fn from_checkpoint(text: &str) -> Option<LeaderEpochCache> {
        let mut lines = text.lines();
        if lines.next()?.trim() != "0" {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        let mut cache = LeaderEpochCache::default();
        for _ in 0..count {
            let mut parts = lines.next()?.split_whitespace();
            let epoch: i32 = parts.next()?.parse().ok()?;
            let start: i64 = parts.next()?.parse().ok()?;
            cache.assign(epoch, start);
        }
        Some(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_follow_kafka() {
        let mut c = LeaderEpochCache::default();
        assert_eq!(c.end_offset_for(0, 10), (-1, -1));
        c.assign(1, 0);
        c.assign(3, 10);
        c.assign(5, 20);
        assert!(!c.assign(4, 25));
        assert_eq!(c.end_offset_for(5, 30), (5, 30));
        assert_eq!(c.end_offset_for(3, 30), (3, 20));
        assert_eq!(c.end_offset_for(4, 30), (3, 20));
        assert_eq!(c.end_offset_for(0, 30), (0, 0));
        assert_eq!(c.end_offset_for(6, 30), (-1, -1));
        let round = LeaderEpochCache::from_checkpoint(&c.to_checkpoint());
        assert_eq!(round.as_ref(), Some(&c));
        c.truncate_from_end(10);
        assert_eq!(c.latest_epoch(), Some(1));
        c.assign(7, 12);
        c.truncate_from_start(15);
        assert_eq!(c.entries, vec![(7, 15)]);
        assert_eq!(LeaderEpochCache::from_checkpoint("garbage"), None);
    }
}
