//! One segment of a partition log: its record bytes (through [`SegmentData`]), its sparse
//! indexes kept in memory and mirrored to the index files, and summary facts (next offset, max
//! timestamp) the log needs for rolling, retention and lookups. Knows nothing about other segments.

use crate::batch::{validate_batch, BatchHeader, BATCH_HEADER_LEN};
use crate::error::LogError;
use crate::index::{
    encode_offset_index, encode_time_index, position_for, OffsetIndexEntry, TimeIndexEntry,
};
use crate::storage::SegmentData;
use bytes::Bytes;

pub(crate) struct Segment<D> {
    pub base_offset: i64,
    pub data: D,
    /// Offset after the last batch, or the base offset when empty.
    pub next_offset: i64,
    /// Largest batch max timestamp, -1 if none.
    pub max_timestamp: i64,
    /// Base offset of the batch carrying `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    last_offset_of_max_timestamp: i64,
    pub offset_index: Vec<OffsetIndexEntry>,
    pub time_index: Vec<TimeIndexEntry>,
    bytes_since_index_entry: u64,
    /// Time from which `segment.ms` is counted (first append, or first batch's timestamp on open).
    pub roll_base_ms: Option<i64>,
    /// Whether appended data may not be durable yet.
    pub unflushed: bool,
}

impl<D: SegmentData> Segment<D> {
    pub fn new(base_offset: i64, data: D) -> Segment<D> {
        Segment {
            base_offset,
            data,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            last_offset_of_max_timestamp: -1,
            offset_index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index_entry: 0,
            roll_base_ms: None,
            unflushed: false,
        }
    }

    pub fn size(&self) -> u64 {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn relative(&self, offset: i64) -> u32 {
        (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32
    }

    /// Updates in-memory indexes and summary facts for a batch at `position`; returns the
    /// encoded index entries to persist. Mirrors Kafka's LogSegment.append.
    fn index_batch(&mut self, position: u64, h: &BatchHeader, interval: u64) -> (Vec<u8>, Vec<u8>) {
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.base_offset;
            self.last_offset_of_max_timestamp = h.last_offset();
        }
        let mut offset_entries = Vec::new();
        let mut time_entries = Vec::new();
        if self.bytes_since_index_entry > interval {
            let entry = OffsetIndexEntry {
                relative_offset: self.relative(h.last_offset()),
                position: position.min(u32::MAX as u64) as u32,
            };
            self.offset_index.push(entry);
            offset_entries.extend_from_slice(&entry.encode());
            if let Some(t) = self.time_entry_candidate() {
                self.time_index.push(t);
                time_entries.extend_from_slice(&t.encode());
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += h.total_size() as u64;
        self.next_offset = h.next_offset();
        (offset_entries, time_entries)
    }

    fn time_entry_candidate(&self) -> Option<TimeIndexEntry> {
        let newer = match self.time_index.last() {
            Some(last) => self.max_timestamp > last.timestamp,
            None => self.max_timestamp >= 0,
        };
        newer.then(|| TimeIndexEntry {
            timestamp: self.max_timestamp,
            relative_offset: self.relative(self.last_offset_of_max_timestamp),
        })
    }

    /// Appends one batch whose offsets are final.
    pub fn append_batch(
        &mut self,
        batch: &[u8],
        h: &BatchHeader,
        interval: u64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let position = self.data.len();
        self.data.append(batch)?;
        let (offset_entries, time_entries) = self.index_batch(position, h, interval);
        self.data
            .append_index_entries(&offset_entries, &time_entries)?;
        self.roll_base_ms.get_or_insert(now_ms);
        self.unflushed = true;
        Ok(())
    }

    /// Adds the final time-index entry when the segment stops being active (Kafka does the same
    /// on roll so the time index covers the whole segment).
    pub fn seal(&mut self) -> Result<(), LogError> {
        if let Some(t) = self.time_entry_candidate() {
            self.time_index.push(t);
            self.data.append_index_entries(&[], &t.encode())?;
        }
        self.data.seal()?;
        Ok(())
    }

    /// Same as [`seal`](Self::seal) for in-memory state only (rebuilds compare before writing).
    pub fn seal_in_memory(&mut self) {
        if let Some(t) = self.time_entry_candidate() {
            self.time_index.push(t);
        }
    }

    /// Header of the batch at `position`, checked for structure and for fitting in the segment.
    pub fn header_at(&self, position: u64) -> Result<BatchHeader, LogError> {
        let available = self.size().saturating_sub(position);
        let len = (BATCH_HEADER_LEN as u64).min(available) as usize;
        let bytes = self.data.read_at(position, len)?;
        let h = BatchHeader::parse(&bytes)?;
        if h.total_size() as u64 > available {
            return Err(LogError::CorruptBatch(format!(
                "batch at position {position} extends past the end of the segment"
            )));
        }
        Ok(h)
    }

    /// First batch whose last offset is >= `offset`, with its position.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let mut position = position_for(&self.offset_index, self.relative(offset)) as u64;
        while position < self.size() {
            let h = self.header_at(position)?;
            if h.last_offset() >= offset {
                return Ok(Some((position, h)));
            }
            position += h.total_size() as u64;
        }
        Ok(None)
    }

    pub fn read(&self, position: u64, len: usize) -> Result<Bytes, LogError> {
        Ok(self.data.read_at(position, len)?)
    }

    /// Scans the batches of the segment from the start. With `verify_crc` every batch is read and
    /// CRC-checked, otherwise only headers are read. Stops at the first invalid batch; returns the
    /// valid batches and the length of the valid prefix. I/O failures are errors, not corruption.
    pub fn scan(&self, verify_crc: bool) -> Result<(Vec<(u64, BatchHeader)>, u64), LogError> {
        let mut headers = Vec::new();
        let mut position = 0u64;
        let mut expected_min_offset = self.base_offset;
        while position < self.size() {
            let h = match self.header_at(position) {
                Ok(h) => h,
                Err(LogError::Io(e)) => return Err(LogError::Io(e)),
                Err(_) => break,
            };
            if h.base_offset < expected_min_offset {
                break;
            }
            if verify_crc {
                let bytes = self.data.read_at(position, h.total_size())?;
                if validate_batch(&bytes).is_err() {
                    break;
                }
            }
            headers.push((position, h));
            expected_min_offset = h.next_offset();
            position += h.total_size() as u64;
        }
        Ok((headers, position))
    }

    /// Recomputes indexes and summary facts from the segment's batch headers (in memory only).
    pub fn rebuild(&mut self, headers: &[(u64, BatchHeader)], interval: u64) {
        self.offset_index.clear();
        self.time_index.clear();
        self.bytes_since_index_entry = 0;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = -1;
        self.last_offset_of_max_timestamp = -1;
        self.next_offset = self.base_offset;
        for (position, h) in headers {
            self.index_batch(*position, h, interval);
        }
    }

    /// Writes the in-memory indexes to the index files unless they already hold exactly that.
    pub fn persist_indexes_if_changed(
        &mut self,
        offset_file: &[u8],
        time_file: &[u8],
    ) -> Result<(), LogError> {
        let offsets = encode_offset_index(&self.offset_index);
        let times = encode_time_index(&self.time_index);
        if offsets != offset_file || times != time_file {
            self.data.write_indexes(&offsets, &times)?;
        }
        Ok(())
    }

    pub fn persist_indexes(&mut self) -> Result<(), LogError> {
        let offsets = encode_offset_index(&self.offset_index);
        let times = encode_time_index(&self.time_index);
        self.data.write_indexes(&offsets, &times)?;
        Ok(())
    }

    /// Cuts the segment at `position` (a batch boundary) and rebuilds its indexes.
    pub fn truncate_at(&mut self, position: u64, interval: u64) -> Result<(), LogError> {
        self.data.truncate(position)?;
        let (headers, _) = self.scan(false)?;
        self.rebuild(&headers, interval);
        self.persist_indexes()?;
        self.unflushed = true;
        Ok(())
    }
}
