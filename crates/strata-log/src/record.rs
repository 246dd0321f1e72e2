//! Record-level access to a stored batch (keys, values, per-record timestamps), decompressing with
//! `strata-kafka` (bounded decompression). Only the slow paths use it: the null-key check of compacted topics, lookups by
//! timestamp and compaction. Appends and fetches never look inside a batch.

use crate::batch::BatchHeader;
use crate::config::TimestampType;
use crate::error::LogError;
use bytes::Bytes;
use kafka_protocol::records::Record;

/// Decodes every record of one complete batch. Record timestamps of LogAppendTime batches are
/// replaced by the batch's max timestamp, which is what Kafka reports for them.
pub fn decode_records(batch: &[u8]) -> Result<(BatchHeader, Vec<Record>), LogError> {
    let header = BatchHeader::parse(batch)?;
    let mut buf = Bytes::copy_from_slice(batch);
    let set = strata_kafka::records::decode_batch(&mut buf)
        .map_err(|e| LogError::CorruptBatch(format!("cannot decode records: {e}")))?;
    let mut records = set.records;
    if header.timestamp_type() == TimestampType::LogAppendTime {
        for r in &mut records {
            r.timestamp = header.max_timestamp;
        }
    }
    Ok((header, records))
}

/// Fails with `InvalidRecord` if a data batch contains a record without a key.
pub fn require_keys(batch: &[u8]) -> Result<(), LogError> {
    let (header, records) = decode_records(batch)?;
    if header.is_control() {
        return Ok(());
    }
    if records.iter().any(|r| r.key.is_none()) {
        return Err(LogError::InvalidRecord(
            "compacted topic cannot accept a record without a key".into(),
        ));
    }
    Ok(())
}
