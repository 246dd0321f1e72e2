//! Key-based compaction of segment contents. Pure: works on byte buffers of whole segments, the
//! log decides which segments are cleanable and swaps the results in. Keeps the latest record per
//! key, drops tombstones whose timestamp is older than `delete.retention.ms`, keeps control batches,
//! and preserves offsets, timestamps, headers and producer fields of surviving records.

use crate::batch::{batches, restore_header_fields, BatchHeader};
use crate::error::LogError;
use crate::record::decode_records;
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions};
use std::collections::HashMap;

/// Latest offset of every key, accumulated over segments in offset order.
#[derive(Debug, Default)]
pub(crate) struct KeyOffsetMap {
    latest: HashMap<Bytes, i64>,
}

impl KeyOffsetMap {
    pub fn add_segment(&mut self, contents: &[u8]) -> Result<(), LogError> {
        for item in batches(contents) {
            let (position, h) = item?;
            if h.is_control() {
                continue;
            }
            let (_, records) = decode_records(&contents[position..position + h.total_size()])?;
            for r in records {
                if let Some(key) = r.key {
                    self.latest.insert(key, r.offset);
                }
            }
        }
        Ok(())
    }

    fn is_latest(&self, record: &Record) -> bool {
        match &record.key {
            Some(key) => self.latest.get(key) == Some(&record.offset),
            // Keyless records predate compaction being enabled; Kafka keeps nothing of them
            // either way, keeping them is the conservative choice.
            None => true,
        }
    }
}

/// Compacted contents of one segment.
pub(crate) fn clean_segment(
    contents: &[u8],
    keys: &KeyOffsetMap,
    now_ms: i64,
    delete_retention_ms: i64,
) -> Result<Vec<u8>, LogError> {
    let mut cleaned = Vec::with_capacity(contents.len());
    for item in batches(contents) {
        let (position, h) = item?;
        let batch = &contents[position..position + h.total_size()];
        if h.is_control() {
            cleaned.extend_from_slice(batch);
            continue;
        }
        let (_, records) = decode_records(batch)?;
        let total = records.len();
        let retained: Vec<Record> = records
            .into_iter()
            .filter(|r| {
                let expired_tombstone =
                    r.value.is_none() && r.timestamp.saturating_add(delete_retention_ms) <= now_ms;
                keys.is_latest(r) && !expired_tombstone
            })
            .collect();
        if retained.len() == total {
            cleaned.extend_from_slice(batch);
        } else if !retained.is_empty() {
            cleaned.extend_from_slice(&reencode(&h, &retained)?);
        }
    }
    Ok(cleaned)
}

/// Encodes the surviving records of a batch as a new batch with the original header fields.
fn reencode(original: &BatchHeader, records: &[Record]) -> Result<Vec<u8>, LogError> {
    let options = RecordEncodeOptions {
        version: 2,
        compression: original.compression()?,
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options)
        .map_err(|e| LogError::CorruptBatch(format!("cannot re-encode compacted batch: {e}")))?;
    let mut out = buf.to_vec();
    let positions: Vec<(usize, BatchHeader)> = batches(&out).collect::<Result<_, _>>()?;
    for (position, h) in positions {
        let base_sequence = if original.producer_id >= 0 && original.base_sequence >= 0 {
            // The encoder derives it from the first surviving record's sequence.
            h.base_sequence
        } else {
            original.base_sequence
        };
        restore_header_fields(
            &mut out[position..position + h.total_size()],
            original,
            base_sequence,
        );
    }
    Ok(out)
}
