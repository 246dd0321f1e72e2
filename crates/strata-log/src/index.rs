//! Sparse per-segment indexes in Kafka's on-disk formats. Pure: entries live in memory, encoding
//! and decoding are byte-exact with Kafka (`.index`: relative offset u32 + position u32;
//! `.timeindex`: timestamp i64 + relative offset u32, all big-endian).

/// Bytes per `.index` entry.
pub const OFFSET_INDEX_ENTRY_LEN: usize = 8;
/// Bytes per `.timeindex` entry.
pub const TIME_INDEX_ENTRY_LEN: usize = 12;

/// `.index` entry: the last offset of a batch (relative to the segment base) and the batch's
/// byte position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetIndexEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// `.timeindex` entry: the largest timestamp seen so far and the (relative) last offset of the
/// batch that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeIndexEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl OffsetIndexEntry {
    pub fn encode(&self) -> [u8; OFFSET_INDEX_ENTRY_LEN] {
        let mut b = [0u8; OFFSET_INDEX_ENTRY_LEN];
        b[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        b[4..].copy_from_slice(&self.position.to_be_bytes());
        b
    }
}

impl TimeIndexEntry {
    pub fn encode(&self) -> [u8; TIME_INDEX_ENTRY_LEN] {
        let mut b = [0u8; TIME_INDEX_ENTRY_LEN];
        b[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        b[8..].copy_from_slice(&self.relative_offset.to_be_bytes());
        b
    }
}

pub(crate) fn encode_offset_index(entries: &[OffsetIndexEntry]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.encode()).collect()
}

pub(crate) fn encode_time_index(entries: &[TimeIndexEntry]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.encode()).collect()
}

/// Byte position from which to scan for `relative_offset`: the position of the last entry whose
/// offset is <= it, or 0.
pub(crate) fn position_for(entries: &[OffsetIndexEntry], relative_offset: u32) -> u32 {
    let n = entries.partition_point(|e| e.relative_offset <= relative_offset);
    if n == 0 {
        0
    } else {
        entries[n - 1].position
    }
}

/// Relative offset after which the first timestamp >= `timestamp` can occur: every record up to
/// the returned entry's offset has a smaller timestamp. `None` = scan from the segment start.
pub(crate) fn offset_before_timestamp(entries: &[TimeIndexEntry], timestamp: i64) -> Option<u32> {
    let n = entries.partition_point(|e| e.timestamp < timestamp);
    if n == 0 {
        None
    } else {
        Some(entries[n - 1].relative_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let idx = [
            OffsetIndexEntry {
                relative_offset: 9,
                position: 100,
            },
            OffsetIndexEntry {
                relative_offset: 19,
                position: 200,
            },
        ];
        assert_eq!(position_for(&idx, 5), 0);
        assert_eq!(position_for(&idx, 9), 100);
        assert_eq!(position_for(&idx, 25), 200);
        assert_eq!(encode_offset_index(&idx).len(), 16);
        let t = [
            TimeIndexEntry {
                timestamp: 10,
                relative_offset: 4,
            },
            TimeIndexEntry {
                timestamp: 20,
                relative_offset: 8,
            },
        ];
        assert_eq!(offset_before_timestamp(&t, 10), None);
        assert_eq!(offset_before_timestamp(&t, 11), Some(4));
        assert_eq!(offset_before_timestamp(&t, 99), Some(8));
    }
}
