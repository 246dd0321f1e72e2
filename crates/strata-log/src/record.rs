//! Record-level access to a stored batch (keys, values, per-record timestamps), decompressing with
//! `strata-kafka` (bounded decompression). Only the slow paths use it: lookups by timestamp and
//! compaction. Fetches never look inside a batch; a produce checks its records' structure
//! without decoding them (`batch::validate_produced`).

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
