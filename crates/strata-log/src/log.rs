//! The partition log: segments ordered by base offset (the last one is active), log start and end
//! offsets, producer state, leader-epoch cache and flush bookkeeping, behind one `RwLock` so reads
//! run concurrently and only wait while an append or a segment swap holds the write lock.
//! Generic over [`SegmentStore`]; `FileLog` and `MemoryLog` are the two instantiations.

use crate::batch::{self, validate_batches, BatchHeader, ProducedBy, BATCH_HEADER_LEN};
use crate::compaction::{clean_segment, KeyOffsetMap};
use crate::config::{LogConfig, TimestampType};
use crate::epoch_cache::LeaderEpochCache;
use crate::error::LogError;
use crate::file_store::FileStore;
use crate::index::{offset_before_timestamp, position_for};
use crate::memory_store::MemoryStore;
use crate::producer_state::{ProducerStateTable, SequenceCheck};
use crate::record::decode_records;
use crate::segment::Segment;
use crate::storage::{
    LoadedMetadata, LoadedSegment, SegmentData, SegmentStore, CLEANER_CHECKPOINT_FILE,
    LEADER_EPOCH_CHECKPOINT_FILE, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE,
};
use crate::{AppendInfo, MaintenanceReport, PartitionLog, ReadSlice};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::path::Path;
use tracing::{debug, warn};

/// A partition log stored in a directory with Kafka's layout.
pub type FileLog = Log<FileStore>;
/// A partition log held in memory.
pub type MemoryLog = Log<MemoryStore>;

/// Largest distance between a segment's base offset and an offset in it (Kafka's limit).
const MAX_RELATIVE_OFFSET: i64 = i32::MAX as i64;

struct LogState<D> {
    /// Never empty; the last entry is the active segment.
    segments: BTreeMap<i64, Segment<D>>,
    log_start_offset: i64,
    log_end_offset: i64,
    producers: ProducerStateTable,
    epochs: LeaderEpochCache,
    unflushed_messages: u64,
    last_flush_ms: Option<i64>,
    recovery_point: i64,
    /// Offset below which the log has been compacted.
    cleaner_checkpoint: i64,
}

impl<D: SegmentData> LogState<D> {
    fn active(&self) -> &Segment<D> {
        match self.segments.last_key_value() {
            Some((_, s)) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }
    fn active_mut(&mut self) -> &mut Segment<D> {
        match self.segments.last_entry() {
            Some(e) => e.into_mut(),
            None => unreachable!("a log always has an active segment"),
        }
    }
    fn active_base(&self) -> i64 {
        self.active().base_offset
    }
    fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size()).sum()
    }
}

/// A partition log over some segment storage. See [`PartitionLog`] for the operations.
pub struct Log<S: SegmentStore> {
    store: S,
    config: RwLock<LogConfig>,
    state: RwLock<LogState<S::Data>>,
    /// Serialises `maintain` so two compactions never race for the same segments.
    maintenance: Mutex<()>,
}

impl Log<FileStore> {
    /// Opens (creating if missing) the partition directory `dir` and recovers it: the tail after
    /// the persisted recovery point is CRC-checked and truncated at the first torn or corrupt
    /// batch, indexes are rebuilt where they disagree with the data, producer state and the
    /// leader-epoch cache are restored.
    pub fn open(dir: &Path, config: LogConfig) -> Result<FileLog, LogError> {
        let (store, segments) = FileStore::open(dir)?;
        let number = |name: &str| -> Result<Option<i64>, LogError> {
            Ok(store
                .read_metadata(name)?
                .and_then(|s| s.trim().parse().ok()))
        };
        let metadata = LoadedMetadata {
            log_start_offset: number(LOG_START_OFFSET_FILE)?,
            recovery_point: number(RECOVERY_POINT_FILE)?,
            leader_epoch_checkpoint: store.read_metadata(LEADER_EPOCH_CHECKPOINT_FILE)?,
            cleaner_checkpoint: number(CLEANER_CHECKPOINT_FILE)?,
        };
        Log::recover(store, config, segments, metadata)
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// Deletes the partition directory and everything in it (DeleteTopics).
    pub fn delete(self) -> Result<(), LogError> {
        let dir = self.store.dir().to_path_buf();
        drop(self);
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }
}

impl Log<MemoryStore> {
    /// An empty in-memory log starting at offset 0.
    pub fn new(config: LogConfig) -> MemoryLog {
        match Log::recover(MemoryStore, config, Vec::new(), LoadedMetadata::default()) {
            Ok(log) => log,
            Err(e) => unreachable!("in-memory storage cannot fail: {e}"),
        }
    }
}

impl<S: SegmentStore> Log<S> {
    fn recover(
        store: S,
        config: LogConfig,
        loaded: Vec<LoadedSegment<S::Data>>,
        metadata: LoadedMetadata,
    ) -> Result<Log<S>, LogError> {
        let recovery_point = metadata.recovery_point.unwrap_or(i64::MIN);
        let bases: Vec<i64> = loaded.iter().map(|l| l.base_offset).collect();
        let mut segments = BTreeMap::new();
        let mut producers = ProducerStateTable::default();
        let mut scanned_epochs = LeaderEpochCache::default();
        let mut corrupt_from: Option<i64> = None;
        for (i, l) in loaded.into_iter().enumerate() {
            if corrupt_from.is_some() {
                warn!(
                    base_offset = l.base_offset,
                    "removing segment after a corrupt segment"
                );
                store.remove_segment(l.base_offset, l.data)?;
                continue;
            }
            let next_base = bases.get(i + 1).copied();
            let is_last = next_base.is_none();
            let verify_crc = next_base.is_none_or(|next| next > recovery_point);
            let mut segment = Segment::new(l.base_offset, l.data);
            let (headers, valid_len) = segment.scan(verify_crc)?;
            if valid_len < segment.size() {
                warn!(
                    base_offset = l.base_offset,
                    valid_len,
                    size = segment.size(),
                    "truncating torn or corrupt tail of segment"
                );
                segment.data.truncate(valid_len)?;
                corrupt_from = Some(l.base_offset);
            }
            segment.rebuild(&headers, config.index_interval_bytes);
            if !is_last && corrupt_from.is_none() {
                segment.seal_in_memory();
            }
            segment.persist_indexes_if_changed(&l.offset_index, &l.time_index)?;
            for (_, h) in &headers {
                producers.observe(h);
                scanned_epochs.assign(h.partition_leader_epoch, h.base_offset);
            }
            segment.roll_base_ms = headers
                .first()
                .map(|(_, h)| h.max_timestamp)
                .filter(|&t| t >= 0);
            segments.insert(segment.base_offset, segment);
        }
        if segments.is_empty() {
            let base = metadata.log_start_offset.unwrap_or(0).max(0);
            segments.insert(base, Segment::new(base, store.create_segment(base)?));
        }
        let (first_base, log_end_offset) = {
            let first = segments.values().next().map_or(0, |s| s.base_offset);
            let last = segments.values().next_back().map_or(0, |s| s.next_offset);
            (first, last)
        };
        let log_start_offset = metadata
            .log_start_offset
            .unwrap_or(first_base)
            .max(first_base)
            .min(log_end_offset);
        let mut epochs = metadata
            .leader_epoch_checkpoint
            .as_deref()
            .and_then(LeaderEpochCache::from_checkpoint)
            .unwrap_or_default();
        let stored_epochs = epochs.clone();
        for (epoch, start) in scanned_epochs.entries() {
            epochs.assign(*epoch, *start);
        }
        epochs.truncate_from_end(log_end_offset);
        epochs.truncate_from_start(log_start_offset);
        if epochs != stored_epochs {
            store.write_metadata(LEADER_EPOCH_CHECKPOINT_FILE, &epochs.to_checkpoint())?;
        }
        producers.truncate_from(log_end_offset);
        debug!(
            log_start_offset,
            log_end_offset,
            segments = segments.len(),
            "log recovered"
        );
        Ok(Log {
            store,
            config: RwLock::new(config),
            state: RwLock::new(LogState {
                segments,
                log_start_offset,
                log_end_offset,
                producers,
                epochs,
                unflushed_messages: 0,
                last_flush_ms: None,
                recovery_point: metadata.recovery_point.unwrap_or(0).min(log_end_offset),
                cleaner_checkpoint: metadata.cleaner_checkpoint.unwrap_or(first_base),
            }),
            maintenance: Mutex::new(()),
        })
    }

    /// Seals the active segment and starts a new one at `base_offset`.
    fn roll(&self, st: &mut LogState<S::Data>, base_offset: i64) -> Result<(), LogError> {
        st.active_mut().seal()?;
        let data = self.store.create_segment(base_offset)?;
        st.segments
            .insert(base_offset, Segment::new(base_offset, data));
        debug!(base_offset, "rolled new segment");
        Ok(())
    }

    /// Makes room for a batch: rolls by size, time or offset range, or re-bases an empty active
    /// segment so the batch's offsets are representable.
    fn prepare_for_batch(
        &self,
        st: &mut LogState<S::Data>,
        h: &BatchHeader,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let active = st.active();
        let size = h.total_size() as u64;
        let offset_overflow = h.last_offset() - active.base_offset > MAX_RELATIVE_OFFSET;
        if active.is_empty() {
            if h.base_offset != active.base_offset
                && (offset_overflow || h.base_offset > active.base_offset)
            {
                let old_base = active.base_offset;
                if let Some(old) = st.segments.remove(&old_base) {
                    self.store.remove_segment(old_base, old.data)?;
                }
                let data = self.store.create_segment(h.base_offset)?;
                st.segments
                    .insert(h.base_offset, Segment::new(h.base_offset, data));
            }
            return Ok(());
        }
        let full =
            active.size() + size > config.segment_bytes || active.size() + size > u32::MAX as u64;
        let old = active
            .roll_base_ms
            .is_some_and(|t| now_ms.saturating_sub(t) > config.segment_ms);
        if full || old || offset_overflow {
            self.roll(st, h.base_offset)?;
        }
        Ok(())
    }

    /// Writes validated batches whose offsets are final.
    fn write_batches(
        &self,
        st: &mut LogState<S::Data>,
        records: &[u8],
        headers: &[(usize, BatchHeader)],
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let mut epochs_changed = false;
        for (position, h) in headers {
            self.prepare_for_batch(st, h, config, now_ms)?;
            let bytes = &records[*position..*position + h.total_size()];
            st.active_mut()
                .append_batch(bytes, h, config.index_interval_bytes, now_ms)?;
            st.log_end_offset = h.next_offset();
            st.unflushed_messages += h.records_count as u64;
            epochs_changed |= st.epochs.assign(h.partition_leader_epoch, h.base_offset);
        }
        if epochs_changed {
            self.store
                .write_metadata(LEADER_EPOCH_CHECKPOINT_FILE, &st.epochs.to_checkpoint())?;
        }
        if st.unflushed_messages >= config.flush_messages {
            self.flush_locked(st)?;
        }
        Ok(())
    }

    fn flush_locked(&self, st: &mut LogState<S::Data>) -> Result<(), LogError> {
        for segment in st.segments.values_mut().filter(|s| s.unflushed) {
            segment.data.sync()?;
            segment.unflushed = false;
        }
        st.unflushed_messages = 0;
        if st.recovery_point != st.log_end_offset {
            st.recovery_point = st.log_end_offset;
            self.store
                .write_metadata(RECOVERY_POINT_FILE, &st.recovery_point.to_string())?;
        }
        Ok(())
    }

    fn out_of_range(st: &LogState<S::Data>, offset: i64) -> LogError {
        LogError::OffsetOutOfRange {
            offset,
            log_start: st.log_start_offset,
            log_end: st.log_end_offset,
        }
    }

    /// Removes the oldest segment (never the active one); returns its size.
    fn delete_oldest_segment(&self, st: &mut LogState<S::Data>) -> Result<u64, LogError> {
        if st.segments.len() <= 1 {
            return Ok(0);
        }
        let Some((base, segment)) = st.segments.pop_first() else {
            return Ok(0);
        };
        let size = segment.size();
        self.store.remove_segment(base, segment.data)?;
        Ok(size)
    }

    /// Raises the log start offset to at least the first segment's base and persists it.
    fn advance_log_start(&self, st: &mut LogState<S::Data>, offset: i64) -> Result<(), LogError> {
        let first_base = st.segments.keys().next().copied().unwrap_or(offset);
        let new_start = offset.max(first_base).max(st.log_start_offset);
        if new_start != st.log_start_offset {
            st.log_start_offset = new_start;
            self.store
                .write_metadata(LOG_START_OFFSET_FILE, &new_start.to_string())?;
            if st.epochs.truncate_from_start(new_start) {
                self.store
                    .write_metadata(LEADER_EPOCH_CHECKPOINT_FILE, &st.epochs.to_checkpoint())?;
            }
        }
        Ok(())
    }

    fn apply_retention(
        &self,
        st: &mut LogState<S::Data>,
        config: &LogConfig,
        now_ms: i64,
        report: &mut MaintenanceReport,
    ) -> Result<(), LogError> {
        if config.retention_ms >= 0 {
            let horizon = now_ms.saturating_sub(config.retention_ms);
            while st.segments.len() > 1 {
                let Some(oldest) = st.segments.values().next() else {
                    break;
                };
                let newest_timestamp = if oldest.max_timestamp >= 0 {
                    oldest.max_timestamp
                } else {
                    oldest.roll_base_ms.unwrap_or(i64::MIN)
                };
                if newest_timestamp >= horizon {
                    break;
                }
                report.bytes_reclaimed += self.delete_oldest_segment(st)?;
                report.segments_deleted += 1;
            }
        }
        if config.retention_bytes >= 0 {
            let mut total = st.size_bytes();
            while st.segments.len() > 1 {
                let Some(oldest) = st.segments.values().next() else {
                    break;
                };
                let remaining = total - oldest.size();
                if remaining < config.retention_bytes as u64 {
                    break;
                }
                let size = self.delete_oldest_segment(st)?;
                total -= size;
                report.bytes_reclaimed += size;
                report.segments_deleted += 1;
            }
        }
        if report.segments_deleted > 0 {
            let first_base = st
                .segments
                .keys()
                .next()
                .copied()
                .unwrap_or(st.log_start_offset);
            self.advance_log_start(st, first_base)?;
        }
        Ok(())
    }

    /// Compacts the cleanable segments when the dirty ratio calls for it. The new contents are
    /// computed under the read lock; the swap takes the write lock and skips segments that
    /// changed meanwhile (truncation or deletion).
    fn compact(
        &self,
        config: &LogConfig,
        now_ms: i64,
        report: &mut MaintenanceReport,
    ) -> Result<(), LogError> {
        struct Plan {
            base_offset: i64,
            old_size: u64,
            next_offset: i64,
            cleaned: Vec<u8>,
        }
        let (plans, cleaned_up_to) = {
            let st = self.state.read();
            let active_base = st.active_base();
            let lag_horizon = now_ms.saturating_sub(config.min_compaction_lag_ms);
            let mut cleanable = Vec::new();
            for segment in st.segments.values() {
                if segment.base_offset == active_base
                    || (config.min_compaction_lag_ms > 0 && segment.max_timestamp > lag_horizon)
                {
                    break;
                }
                cleanable.push(segment);
            }
            let Some(last) = cleanable.last() else {
                return Ok(());
            };
            let upper_bound = st
                .segments
                .range(last.base_offset + 1..)
                .next()
                .map_or(st.log_end_offset, |(base, _)| *base);
            let (mut clean, mut dirty) = (0u64, 0u64);
            for (i, segment) in cleanable.iter().enumerate() {
                let end = cleanable.get(i + 1).map_or(upper_bound, |s| s.base_offset);
                if end <= st.cleaner_checkpoint {
                    clean += segment.size();
                } else {
                    dirty += segment.size();
                }
            }
            if dirty == 0
                || (dirty as f64) / ((clean + dirty) as f64) < config.min_cleanable_dirty_ratio
            {
                return Ok(());
            }
            let mut contents = Vec::with_capacity(cleanable.len());
            let mut keys = KeyOffsetMap::default();
            for segment in &cleanable {
                let bytes = segment.read(0, segment.size() as usize)?;
                keys.add_segment(&bytes)?;
                contents.push(bytes);
            }
            let mut plans = Vec::new();
            for (segment, bytes) in cleanable.iter().zip(contents) {
                let cleaned = clean_segment(&bytes, &keys, now_ms, config.delete_retention_ms)?;
                if cleaned[..] != bytes[..] {
                    plans.push(Plan {
                        base_offset: segment.base_offset,
                        old_size: segment.size(),
                        next_offset: segment.next_offset,
                        cleaned,
                    });
                }
            }
            (plans, upper_bound)
        };
        let mut st = self.state.write();
        let active_base = st.active_base();
        for plan in plans {
            if plan.base_offset == active_base {
                continue;
            }
            let Some(segment) = st.segments.get_mut(&plan.base_offset) else {
                continue;
            };
            if segment.size() != plan.old_size {
                continue;
            }
            segment.data.replace_contents(&plan.cleaned)?;
            let headers: Vec<(u64, BatchHeader)> = batch::batches(&plan.cleaned)
                .map(|r| r.map(|(p, h)| (p as u64, h)))
                .collect::<Result<_, _>>()?;
            segment.rebuild(&headers, config.index_interval_bytes);
            segment.seal_in_memory();
            // Compaction never moves the end of a segment: the next segment starts there.
            segment.next_offset = plan.next_offset;
            segment.persist_indexes()?;
            report.segments_compacted += 1;
            report.bytes_reclaimed += plan.old_size.saturating_sub(plan.cleaned.len() as u64);
        }
        if cleaned_up_to > st.cleaner_checkpoint {
            st.cleaner_checkpoint = cleaned_up_to;
            self.store
                .write_metadata(CLEANER_CHECKPOINT_FILE, &cleaned_up_to.to_string())?;
        }
        Ok(())
    }

    /// First record at or after `from_offset` in a batch with timestamp >= `ts`, scanning one segment.
    fn search_segment_for_timestamp(
        segment: &Segment<S::Data>,
        ts: i64,
        log_start: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let mut position = offset_before_timestamp(&segment.time_index, ts)
            .map_or(0, |rel| position_for(&segment.offset_index, rel) as u64);
        while position < segment.size() {
            let h = segment.header_at(position)?;
            if h.max_timestamp >= ts && h.last_offset() >= log_start {
                let bytes = segment.read(position, h.total_size())?;
                let (_, records) = decode_records(&bytes)?;
                if let Some(r) = records
                    .iter()
                    .find(|r| r.timestamp >= ts && r.offset >= log_start)
                {
                    return Ok(Some((r.offset, r.timestamp)));
                }
            }
            position += h.total_size() as u64;
        }
        Ok(None)
    }
}

impl<S: SegmentStore> PartitionLog for Log<S> {
    fn append_as_leader(
        &self,
        records: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let config = self.config();
        let produced = batch::validate_produced(records, ProducedBy::Client)?;
        for b in &produced {
            if b.header.total_size() > config.max_message_bytes {
                return Err(LogError::RecordTooLarge);
            }
            if config.cleanup_policy.compact && !b.header.is_control() && b.records.null_keys > 0 {
                return Err(LogError::InvalidRecord(
                    "compacted topic cannot accept a record without a key".into(),
                ));
            }
        }
        let mut headers: Vec<(usize, BatchHeader)> =
            produced.iter().map(|b| (b.position, b.header)).collect();
        let log_append_time = match config.message_timestamp_type {
            TimestampType::LogAppendTime => now_ms,
            TimestampType::CreateTime => -1,
        };
        let mut st = self.state.write();
        let first_offset = st.log_end_offset;
        let mut next_offset = first_offset;
        for (_, h) in headers.iter_mut() {
            h.base_offset = next_offset;
            h.partition_leader_epoch = leader_epoch;
            if log_append_time >= 0 {
                h.max_timestamp = log_append_time;
            }
            next_offset = h.next_offset();
        }
        let plain: Vec<BatchHeader> = headers.iter().map(|(_, h)| *h).collect();
        let staged = match st.producers.check(&plain)? {
            SequenceCheck::Duplicate {
                first_offset,
                last_offset,
            } => {
                return Ok(AppendInfo {
                    base_offset: first_offset,
                    last_offset,
                    log_append_time,
                    record_count: (last_offset - first_offset + 1) as u64,
                    duplicate: true,
                })
            }
            SequenceCheck::Append(staged) => staged,
        };
        for (position, h) in &headers {
            let batch = &mut records[*position..*position + h.total_size()];
            batch::set_base_offset(batch, h.base_offset);
            batch::set_partition_leader_epoch(batch, leader_epoch);
            if log_append_time >= 0 {
                batch::set_log_append_time(batch, log_append_time);
            }
        }
        let record_count = plain.iter().map(|h| h.records_count as u64).sum();
        self.write_batches(&mut st, records, &headers, &config, now_ms)?;
        st.producers.commit(staged);
        Ok(AppendInfo {
            base_offset: first_offset,
            last_offset: next_offset - 1,
            log_append_time,
            record_count,
            duplicate: false,
        })
    }

    fn append_with_offsets(&self, records: &[u8]) -> Result<AppendInfo, LogError> {
        let config = self.config();
        let headers = validate_batches(records)?;
        let mut st = self.state.write();
        let mut expected = st.log_end_offset;
        for (_, h) in &headers {
            if h.base_offset < expected {
                return Err(LogError::InvalidRecord(format!(
                    "batch base offset {} is below the expected minimum {expected}",
                    h.base_offset
                )));
            }
            expected = h.next_offset();
        }
        let now_ms = headers.first().map_or(0, |(_, h)| h.max_timestamp);
        self.write_batches(&mut st, records, &headers, &config, now_ms)?;
        for (_, h) in &headers {
            st.producers.observe(h);
        }
        let (first, last) = match (headers.first(), headers.last()) {
            (Some((_, f)), Some((_, l))) => (f.base_offset, l.last_offset()),
            _ => unreachable!("validate_batches rejects empty input"),
        };
        Ok(AppendInfo {
            base_offset: first,
            last_offset: last,
            log_append_time: -1,
            record_count: headers.iter().map(|(_, h)| h.records_count as u64).sum(),
            duplicate: false,
        })
    }

    fn read(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<ReadSlice, LogError> {
        let st = self.state.read();
        if offset < st.log_start_offset || offset > st.log_end_offset {
            return Err(Self::out_of_range(&st, offset));
        }
        if offset == st.log_end_offset {
            return Ok(ReadSlice::empty());
        }
        let from = st
            .segments
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(base, _)| *base);
        for segment in st.segments.range(from..).map(|(_, s)| s) {
            let Some((position, first)) = segment.find_batch(offset)? else {
                continue;
            };
            if first.last_offset() >= max_offset {
                return Ok(ReadSlice::empty());
            }
            let available = (segment.size() - position) as usize;
            let want = max_bytes.min(available).max(first.total_size());
            let chunk = segment.read(position, want)?;
            let mut end = first.total_size();
            while end + BATCH_HEADER_LEN <= chunk.len() {
                let Ok(h) = BatchHeader::parse(&chunk[end..]) else {
                    break;
                };
                if end + h.total_size() > chunk.len() || h.last_offset() >= max_offset {
                    break;
                }
                end += h.total_size();
            }
            return Ok(ReadSlice {
                bytes: chunk.slice(..end),
                first_offset: first.base_offset,
            });
        }
        Ok(ReadSlice::empty())
    }

    fn log_start_offset(&self) -> i64 {
        self.state.read().log_start_offset
    }

    fn log_end_offset(&self) -> i64 {
        self.state.read().log_end_offset
    }

    fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let st = self.state.read();
        for segment in st.segments.values() {
            if segment.max_timestamp < ts || segment.next_offset <= st.log_start_offset {
                continue;
            }
            if let Some(found) =
                Self::search_segment_for_timestamp(segment, ts, st.log_start_offset)?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        let st = self.state.read();
        let mut best: Option<&Segment<S::Data>> = None;
        for segment in st.segments.values() {
            if segment.max_timestamp >= 0
                && best.is_none_or(|b| segment.max_timestamp > b.max_timestamp)
            {
                best = Some(segment);
            }
        }
        let Some(segment) = best else { return Ok(None) };
        let Some((position, h)) = segment.find_batch(segment.offset_of_max_timestamp)? else {
            return Ok(None);
        };
        let bytes = segment.read(position, h.total_size())?;
        let (_, records) = decode_records(&bytes)?;
        let found = records
            .iter()
            .find(|r| r.timestamp == segment.max_timestamp)
            .map_or((h.base_offset, segment.max_timestamp), |r| {
                (r.offset, r.timestamp)
            });
        Ok(Some(found))
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let st = self.state.read();
        st.epochs.end_offset_for(epoch, st.log_end_offset)
    }

    fn latest_epoch(&self) -> Option<i32> {
        self.state.read().epochs.latest_epoch()
    }

    fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        let config = self.config();
        let mut st = self.state.write();
        if offset >= st.log_end_offset {
            return Ok(());
        }
        let first_base = st.segments.keys().next().copied().unwrap_or(0);
        if offset < st.log_start_offset || offset <= first_base {
            drop(st);
            return self.truncate_fully_and_start_at(offset);
        }
        let doomed: Vec<i64> = st.segments.range(offset..).map(|(b, _)| *b).collect();
        for base in doomed {
            if let Some(segment) = st.segments.remove(&base) {
                self.store.remove_segment(base, segment.data)?;
            }
        }
        let new_end = {
            let active = st.active_mut();
            match active.find_batch(offset)? {
                Some((position, h)) => {
                    active.truncate_at(position, config.index_interval_bytes)?;
                    h.base_offset.min(offset)
                }
                None => {
                    // The segment may have been sealed; drop its final time-index entry.
                    let size = active.size();
                    active.truncate_at(size, config.index_interval_bytes)?;
                    offset
                }
            }
        };
        if new_end < st.log_start_offset {
            // Removing a batch that straddles the log start leaves nothing readable.
            let start = st.log_start_offset;
            drop(st);
            return self.truncate_fully_and_start_at(start);
        }
        st.log_end_offset = new_end;
        st.producers.truncate_from(new_end);
        if st.epochs.truncate_from_end(new_end) {
            self.store
                .write_metadata(LEADER_EPOCH_CHECKPOINT_FILE, &st.epochs.to_checkpoint())?;
        }
        st.cleaner_checkpoint = st.cleaner_checkpoint.min(new_end);
        if st.recovery_point > new_end {
            st.recovery_point = new_end;
            self.store
                .write_metadata(RECOVERY_POINT_FILE, &new_end.to_string())?;
        }
        Ok(())
    }

    fn reset_producers_before(&self, leader_epoch: i32) -> bool {
        self.state.write().producers.reset_before(leader_epoch)
    }

    fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), LogError> {
        let mut st = self.state.write();
        let all = std::mem::take(&mut st.segments);
        for (base, segment) in all {
            self.store.remove_segment(base, segment.data)?;
        }
        let data = self.store.create_segment(offset)?;
        st.segments.insert(offset, Segment::new(offset, data));
        st.log_start_offset = offset;
        st.log_end_offset = offset;
        st.recovery_point = offset;
        st.cleaner_checkpoint = offset;
        st.unflushed_messages = 0;
        st.producers = st.producers.emptied();
        st.epochs = LeaderEpochCache::default();
        self.store
            .write_metadata(LOG_START_OFFSET_FILE, &offset.to_string())?;
        self.store
            .write_metadata(RECOVERY_POINT_FILE, &offset.to_string())?;
        self.store
            .write_metadata(LEADER_EPOCH_CHECKPOINT_FILE, &st.epochs.to_checkpoint())?;
        Ok(())
    }

    fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let mut st = self.state.write();
        if offset > st.log_end_offset || offset < 0 {
            return Err(Self::out_of_range(&st, offset));
        }
        if offset <= st.log_start_offset {
            return Ok(st.log_start_offset);
        }
        if offset == st.log_end_offset && !st.active().is_empty() {
            let end = st.log_end_offset;
            self.roll(&mut st, end)?;
        }
        loop {
            let mut bases = st.segments.keys();
            let (Some(_), Some(&second)) = (bases.next(), bases.next()) else {
                break;
            };
            if second > offset {
                break;
            }
            self.delete_oldest_segment(&mut st)?;
        }
        self.advance_log_start(&mut st, offset)?;
        Ok(st.log_start_offset)
    }

    fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport, LogError> {
        let _serialised = self.maintenance.lock();
        let config = self.config();
        let mut report = MaintenanceReport::default();
        {
            let mut st = self.state.write();
            let active = st.active();
            if !active.is_empty()
                && active
                    .roll_base_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) > config.segment_ms)
            {
                let end = st.log_end_offset;
                self.roll(&mut st, end)?;
                report.rolled = true;
            }
            if config.cleanup_policy.delete {
                self.apply_retention(&mut st, &config, now_ms, &mut report)?;
            }
            let last_flush = *st.last_flush_ms.get_or_insert(now_ms);
            if st.unflushed_messages > 0 && now_ms.saturating_sub(last_flush) >= config.flush_ms {
                self.flush_locked(&mut st)?;
                st.last_flush_ms = Some(now_ms);
                report.flushed = true;
            }
        }
        if config.cleanup_policy.compact {
            self.compact(&config, now_ms, &mut report)?;
        }
        Ok(report)
    }

    fn flush(&self) -> Result<(), LogError> {
        let mut st = self.state.write();
        self.flush_locked(&mut st)
    }

    fn set_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    fn size_bytes(&self) -> u64 {
        self.state.read().size_bytes()
    }

    fn segment_count(&self) -> usize {
        self.state.read().segments.len()
    }
}
