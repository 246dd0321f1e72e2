//! In-memory segment storage: segments are byte vectors and metadata writes are discarded, so a
//! `MemoryLog` behaves like a `FileLog` that never survives a restart.

use crate::error::LogError;
use crate::storage::{SegmentData, SegmentStore};
use bytes::Bytes;
use std::io;

/// Segment bytes held in memory.
#[derive(Debug, Default)]
pub struct MemorySegment {
    bytes: Vec<u8>,
}

impl SegmentData for MemorySegment {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }
    fn read_at(&self, position: u64, len: usize) -> io::Result<Bytes> {
        let start = usize::try_from(position).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        match start.checked_add(len) {
            Some(end) if end <= self.bytes.len() => {
                Ok(Bytes::copy_from_slice(&self.bytes[start..end]))
            }
            _ => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.bytes.truncate(len as usize);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    fn append_index_entries(
        &mut self,
        _offset_entries: &[u8],
        _time_entries: &[u8],
    ) -> io::Result<()> {
        Ok(())
    }
    fn write_indexes(&mut self, _offset_index: &[u8], _time_index: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn replace_contents(&mut self, contents: &[u8]) -> io::Result<()> {
        self.bytes = contents.to_vec();
        Ok(())
    }
}

/// Storage that keeps nothing beyond the process.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl SegmentStore for MemoryStore {
    type Data = MemorySegment;
    fn create_segment(&self, _base_offset: i64) -> Result<MemorySegment, LogError> {
        Ok(MemorySegment::default())
    }
    fn remove_segment(&self, _base_offset: i64, _data: MemorySegment) -> Result<(), LogError> {
        Ok(())
    }
    fn write_metadata(&self, _name: &str, _contents: &str) -> Result<(), LogError> {
        Ok(())
    }
}
