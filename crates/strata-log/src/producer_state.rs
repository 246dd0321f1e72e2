//! Idempotent-producer state of one partition, following Kafka's ProducerStateManager: per producer
//! id the current epoch and the metadata of its last five batches. Pure: the log feeds it batch
//! headers (after offsets are assigned) and rebuilds it from a header scan on open.
//!
//! A producer reset ([`ProducerStateTable::reset_before`], ordered at a failover promotion)
//! releases every producer whose newest batch here was written under a partition leader epoch
//! below the reset's epoch from its sequence and epoch: its next batch is taken as a first batch,
//! as Kafka takes a producer it does not know, unless it is a retry of one of the producer's
//! retained batches, which is answered with the batch's original offsets. The producer moved to
//! the other cluster and may come back at any sequence; a batch it sent just before the move and
//! sends again after it (its answer lost in the move) is found among the batches the mirror
//! carried over with their producer identity. Whether a producer is released depends only on the
//! batches and the reset's epoch, so every replica judges the same way, whatever it held when
//! the reset reached it.

use crate::batch::BatchHeader;
use crate::error::LogError;
use std::collections::{HashMap, VecDeque};

/// How many recent batches per producer are remembered for duplicate detection.
pub const RETAINED_BATCHES_PER_PRODUCER: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The partition leader epoch the batch was written under.
    pub leader_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
    /// The partition leader epoch of the producer's newest batch here (control batches too).
    pub leader_epoch: i32,
}

impl ProducerEntry {
    fn new(header: &BatchHeader) -> ProducerEntry {
        ProducerEntry {
            epoch: header.producer_epoch,
            batches: VecDeque::new(),
            leader_epoch: header.partition_leader_epoch,
        }
    }

    fn duplicate_of(&self, header: &BatchHeader) -> Option<&BatchMetadata> {
        if header.producer_epoch != self.epoch || header.is_control() || header.base_sequence < 0 {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == header.last_sequence())
    }
}

/// Outcome of checking a request against producer state.
#[derive(Debug)]
pub(crate) enum SequenceCheck {
    /// Append; the map holds the producer entries as they will be after the append.
    Append(HashMap<i64, ProducerEntry>),
    /// A retry of an already written batch: its original offsets.
    Duplicate { first_offset: i64, last_offset: i64 },
}

#[derive(Debug, Default, Clone)]
pub(crate) struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    /// The latest producer reset, if any: a producer whose newest batch was written under a
    /// partition leader epoch below it is held to neither its sequence nor its epoch.
    reset_epoch: Option<i32>,
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq == last_seq.wrapping_add(1) || (next_seq == 0 && last_seq == i32::MAX)
}

/// The sequence rule for a batch that is not a duplicate: the next sequence of the producer's
/// epoch, or 0 in a new epoch.
fn check_sequence(entry: &ProducerEntry, h: &BatchHeader) -> Result<(), LogError> {
    if h.is_control() || h.base_sequence < 0 {
        return Ok(());
    }
    let expected = if h.producer_epoch != entry.epoch {
        0
    } else {
        match entry.batches.back() {
            Some(last) if !in_sequence(last.last_seq, h.base_sequence) => {
                last.last_seq.wrapping_add(1)
            }
            _ => return Ok(()),
        }
    };
    if h.base_sequence == expected {
        return Ok(());
    }
    Err(LogError::OutOfOrderSequence {
        producer_id: h.producer_id,
        expected,
        received: h.base_sequence,
    })
}

fn push_batch(entry: &mut ProducerEntry, header: &BatchHeader) {
    if header.is_control() || header.base_sequence < 0 {
        return;
    }
    entry.batches.push_back(BatchMetadata {
        first_seq: header.base_sequence,
        last_seq: header.last_sequence(),
        first_offset: header.base_offset,
        last_offset: header.last_offset(),
        leader_epoch: header.partition_leader_epoch,
    });
    while entry.batches.len() > RETAINED_BATCHES_PER_PRODUCER {
        entry.batches.pop_front();
    }
}

impl ProducerStateTable {
    /// Validates leader-appended batches (offsets and leader epoch already assigned) in order.
    pub fn check(&self, headers: &[BatchHeader]) -> Result<SequenceCheck, LogError> {
        let mut staged: HashMap<i64, ProducerEntry> = HashMap::new();
        for h in headers.iter().filter(|h| h.has_producer_id()) {
            let current = staged
                .get(&h.producer_id)
                .or_else(|| self.producers.get(&h.producer_id))
                .cloned();
            let mut entry = match current {
                None => ProducerEntry::new(h),
                Some(entry) => {
                    if let Some(dup) = entry.duplicate_of(h) {
                        return Ok(SequenceCheck::Duplicate {
                            first_offset: dup.first_offset,
                            last_offset: dup.last_offset,
                        });
                    }
                    if self.released(&entry) {
                        if h.producer_epoch == entry.epoch {
                            entry
                        } else {
                            ProducerEntry::new(h)
                        }
                    } else {
                        if h.producer_epoch < entry.epoch {
                            return Err(LogError::InvalidProducerEpoch);
                        }
                        check_sequence(&entry, h)?;
                        if h.producer_epoch != entry.epoch {
                            ProducerEntry::new(h)
                        } else {
                            entry
                        }
                    }
                }
            };
            entry.leader_epoch = h.partition_leader_epoch;
            push_batch(&mut entry, h);
            staged.insert(h.producer_id, entry);
        }
        Ok(SequenceCheck::Append(staged))
    }

    /// Whether the latest producer reset released this producer from its sequence and epoch.
    fn released(&self, entry: &ProducerEntry) -> bool {
        self.reset_epoch.is_some_and(|e| entry.leader_epoch < e)
    }

    /// Installs entries produced by a successful [`check`](Self::check).
    pub fn commit(&mut self, staged: HashMap<i64, ProducerEntry>) {
        self.producers.extend(staged);
    }

    /// Records a batch without validation (replication, a mirror's offset-preserving append,
    /// rebuild on open).
    pub fn observe(&mut self, h: &BatchHeader) {
        if !h.has_producer_id() {
            return;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry::new(h));
        if h.producer_epoch != entry.epoch {
            *entry = ProducerEntry::new(h);
        }
        entry.leader_epoch = h.partition_leader_epoch;
        push_batch(entry, h);
    }

    /// Forgets batches at or above `offset` (log truncation) and producers left without any; a
    /// producer's newest batch is then the newest one left, as a rebuild from the log finds it.
    pub fn truncate_from(&mut self, offset: i64) {
        self.producers.retain(|_, entry| {
            let had_batches = !entry.batches.is_empty();
            entry.batches.retain(|b| b.last_offset < offset);
            if let Some(newest) = entry.batches.back() {
                entry.leader_epoch = newest.leader_epoch;
            }
            !had_batches || !entry.batches.is_empty()
        });
    }

    /// A producer reset: every producer whose newest batch was written under a partition leader
    /// epoch below `leader_epoch` (now, or when such batches are appended later) is released from
    /// its sequence and epoch; its retained batches still answer retries. Returns false when a
    /// reset of that epoch or a later one was already applied (applying it again changes nothing).
    pub fn reset_before(&mut self, leader_epoch: i32) -> bool {
        if self.reset_epoch.is_some_and(|e| leader_epoch <= e) {
            return false;
        }
        self.reset_epoch = Some(leader_epoch);
        true
    }

    /// An empty table that keeps the latest producer reset (the log was emptied; producers of
    /// batches of older epochs fetched again stay released).
    pub fn emptied(&self) -> ProducerStateTable {
        ProducerStateTable {
            producers: HashMap::new(),
            reset_epoch: self.reset_epoch,
        }
    }

    #[cfg(test)]
    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    fn append(t: &mut ProducerStateTable, h: BatchHeader) -> Result<SequenceCheck, LogError> {
        let r = t.check(&[h])?;
        if let SequenceCheck::Append(staged) = r {
            t.commit(staged.clone());
            return Ok(SequenceCheck::Append(staged));
        }
        Ok(r)
    }

    #[test]
    fn sequence_rules() {
        let mut t = ProducerStateTable::default();
        // Unknown producer: any sequence accepted.
        assert!(matches!(
            append(&mut t, header(1, 0, 7, 3, 0)),
            Ok(SequenceCheck::Append(_))
        ));
        // Next in sequence.
        assert!(matches!(
            append(&mut t, header(1, 0, 10, 2, 3)),
            Ok(SequenceCheck::Append(_))
        ));
        // Retry of the first batch.
        assert!(matches!(
            append(&mut t, header(1, 0, 7, 3, 99)),
            Ok(SequenceCheck::Duplicate {
                first_offset: 0,
                last_offset: 2
            })
        ));
        // Gap.
        assert!(matches!(
            append(&mut t, header(1, 0, 13, 1, 5)),
            Err(LogError::OutOfOrderSequence {
                expected: 12,
                received: 13,
                ..
            })
        ));
        // New epoch must restart at 0.
        assert!(matches!(
            append(&mut t, header(1, 1, 5, 1, 5)),
            Err(LogError::OutOfOrderSequence { expected: 0, .. })
        ));
        assert!(append(&mut t, header(1, 1, 0, 1, 5)).is_ok());
        // Old epoch is fenced.
        assert!(matches!(
            append(&mut t, header(1, 0, 12, 1, 6)),
            Err(LogError::InvalidProducerEpoch)
        ));
        // Wrap-around.
        let mut t = ProducerStateTable::default();
        assert!(append(&mut t, header(2, 0, i32::MAX, 1, 0)).is_ok());
        assert!(append(&mut t, header(2, 0, 0, 1, 1)).is_ok());
    }

    #[test]
    fn keeps_last_five_batches_and_truncates() {
        let mut t = ProducerStateTable::default();
        for i in 0..8 {
            t.observe(&header(1, 0, i, 1, i as i64));
        }
        assert_eq!(t.entry(1).map(|e| e.batches.len()), Some(5));
        t.truncate_from(6);
        assert_eq!(
            t.entry(1)
                .and_then(|e| e.batches.back())
                .map(|b| b.last_offset),
            Some(5)
        );
        t.truncate_from(0);
        assert!(t.entry(1).is_none());
    }

    fn at_epoch(mut h: BatchHeader, leader_epoch: i32) -> BatchHeader {
        h.partition_leader_epoch = leader_epoch;
        h
    }

    fn duplicate_at(r: Result<SequenceCheck, LogError>) -> Option<i64> {
        match r {
            Ok(SequenceCheck::Duplicate { first_offset, .. }) => Some(first_offset),
            _ => None,
        }
    }

    #[test]
    fn a_producer_reset_releases_older_producers_now_and_later_but_answers_their_retries() {
        let mut t = ProducerStateTable::default();
        for i in 0..3 {
            t.observe(&at_epoch(header(1, 0, i, 1, i as i64), 4));
        }
        t.observe(&at_epoch(header(2, 0, 0, 1, 3), 4));
        t.observe(&at_epoch(header(2, 0, 1, 1, 4), 5));
        // Producer 1 at sequence 2: sequence 50 would be out of order.
        assert!(matches!(
            t.check(&[at_epoch(header(1, 0, 50, 1, 5), 5)]),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        assert!(t.reset_before(5));
        // A retry of a batch written before the reset is still a duplicate...
        assert_eq!(
            duplicate_at(t.check(&[at_epoch(header(1, 0, 2, 1, 5), 5)])),
            Some(2)
        );
        // ...any other first sequence (or epoch) of a released producer is accepted...
        assert!(matches!(
            append(&mut t, at_epoch(header(1, 0, 50, 1, 5), 5)),
            Ok(SequenceCheck::Append(_))
        ));
        assert!(matches!(
            t.check(&[at_epoch(header(3, 0, 7, 1, 6), 5)]),
            Ok(SequenceCheck::Append(_))
        ));
        // ...and from then on it is held to its sequence again, older retries still answered.
        assert!(matches!(
            t.check(&[at_epoch(header(1, 0, 60, 1, 6), 5)]),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        assert_eq!(
            duplicate_at(t.check(&[at_epoch(header(1, 0, 1, 1, 6), 5)])),
            Some(1)
        );
        // Producer 2 wrote at the reset's epoch: not released.
        assert!(matches!(
            t.check(&[at_epoch(header(2, 0, 9, 1, 6), 5)]),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        // Older batches arriving later (a follower catching up) leave their producer released.
        t.observe(&at_epoch(header(4, 0, 9, 1, 6), 4));
        assert!(matches!(
            t.check(&[at_epoch(header(4, 0, 30, 1, 7), 5)]),
            Ok(SequenceCheck::Append(_))
        ));
        assert_eq!(
            duplicate_at(t.check(&[at_epoch(header(4, 0, 9, 1, 7), 5)])),
            Some(6)
        );
        // Applying the same reset again changes nothing; an emptied log keeps it.
        assert!(!t.reset_before(5));
        let mut emptied = t.emptied();
        emptied.observe(&at_epoch(header(4, 0, 9, 1, 6), 4));
        assert!(matches!(
            emptied.check(&[at_epoch(header(4, 3, 30, 1, 7), 5)]),
            Ok(SequenceCheck::Append(_))
        ));
    }

    #[test]
    fn a_truncated_first_batch_after_a_reset_leaves_the_producer_released() {
        // A follower fetched a released producer's first batch after the reset, then a new
        // leader without that batch made it truncate: it judges the producer as the leader does.
        let mut follower = ProducerStateTable::default();
        follower.observe(&at_epoch(header(1, 0, 0, 1, 0), 1));
        follower.reset_before(2);
        follower.observe(&at_epoch(header(1, 0, 40, 1, 1), 2));
        follower.truncate_from(1);
        let mut leader = ProducerStateTable::default();
        leader.observe(&at_epoch(header(1, 0, 0, 1, 0), 1));
        leader.reset_before(2);
        assert_eq!(follower.entry(1), leader.entry(1));
        assert!(matches!(
            follower.check(&[at_epoch(header(1, 0, 70, 1, 1), 3)]),
            Ok(SequenceCheck::Append(_))
        ));
    }

    #[test]
    fn a_lower_producer_epoch_accepted_after_a_reset_is_replayed_alike() {
        let mut leader = ProducerStateTable::default();
        leader.observe(&at_epoch(header(1, 3, 0, 1, 0), 1));
        leader.reset_before(2);
        let lower = at_epoch(header(1, 1, 0, 1, 1), 2);
        assert!(matches!(
            append(&mut leader, lower),
            Ok(SequenceCheck::Append(_))
        ));
        let mut follower = ProducerStateTable::default();
        follower.observe(&at_epoch(header(1, 3, 0, 1, 0), 1));
        follower.reset_before(2);
        follower.observe(&lower);
        assert_eq!(leader.entry(1), follower.entry(1));
    }

    #[test]
    fn multi_batch_request_is_checked_in_order() {
        let t = ProducerStateTable::default();
        let ok = t.check(&[header(1, 0, 0, 2, 0), header(1, 0, 2, 2, 2)]);
        assert!(matches!(ok, Ok(SequenceCheck::Append(_))));
        let bad = t.check(&[header(1, 0, 0, 2, 0), header(1, 0, 3, 2, 2)]);
        assert!(matches!(bad, Err(LogError::OutOfOrderSequence { .. })));
    }
}
