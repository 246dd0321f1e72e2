//! Record batches in and out, through `kafka-protocol`'s batch codec (CRC, compression,
//! varint records). Pure: no I/O. On the way in, a fetched partition's bytes are split into
//! whole batches (a fetch response may end in a partial batch, which Kafka allows and which is
//! dropped here) by reading the two framing fields every batch starts with — base offset and
//! length — plus the fixed-position header fields kafka-protocol does not report (last offset
//! delta, max timestamp); each whole batch is then decoded by `strata_kafka::records` (decompression bounded). On the way
//! out, producer records become one v2 batch with `RecordBatchEncoder`.
//!
//! Header limitation: `kafka-protocol` keeps a record's headers in an ordered map, so a record
//! carrying the same header key twice decodes with that key once (the last value, at the first
//! key's position). The raw batch bytes are untouched, so offset-preserving mirroring copies
//! such records exactly; the producer refuses records with duplicate header keys rather than
//! silently drop one.

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as WireCompression, Record, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as WireTimestampType,
};

use crate::Error;

/// Bytes of a v2 batch header: base offset (8), length (4), partition leader epoch (4), magic
/// (1), crc (4), attributes (2), last offset delta (4), base timestamp (8), max timestamp (8),
/// producer id (8), producer epoch (2), base sequence (4), record count (4).
const BATCH_HEADER_BYTES: usize = 61;
const LENGTH_OFFSET: usize = 8;
const MAGIC_OFFSET: usize = 16;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const ATTRIBUTES_OFFSET: usize = 21;
const RECORDS_COUNT_OFFSET: usize = 57;
/// The control-batch bit of a v2 batch's attributes.
const CONTROL_FLAG: u8 = 0x20;
/// The bytes before the length field's coverage starts.
const LOG_OVERHEAD: usize = 12;

/// Compression codec of produced batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn wire(self) -> WireCompression {
        match self {
            Compression::None => WireCompression::None,
            Compression::Gzip => WireCompression::Gzip,
            Compression::Snappy => WireCompression::Snappy,
            Compression::Lz4 => WireCompression::Lz4,
            Compression::Zstd => WireCompression::Zstd,
        }
    }
}

/// What a record's timestamp means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when it appended the batch.
    LogAppendTime,
}

/// One record as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// In wire order; see the module note on duplicate keys.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// One whole record batch exactly as the broker sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBatch {
    pub base_offset: i64,
    /// Offset of the batch's last record (compaction may have removed records before it).
    pub last_offset: i64,
    /// Transaction markers and other control batches.
    pub control: bool,
    /// Records in the batch, as its header says.
    pub records_count: i32,
    /// The batch attributes (compression, timestamp type, transactional, control bits).
    pub attributes: i16,
    /// The batch's max timestamp, as its header says.
    pub max_timestamp: i64,
    pub bytes: Bytes,
}

/// A fetched partition's records, decoded, plus its whole batches.
#[derive(Debug, Default)]
pub(crate) struct DecodedRecords {
    pub(crate) records: Vec<FetchedRecord>,
    pub(crate) batches: Vec<RawBatch>,
    /// The whole batches as one slice of the response.
    pub(crate) raw: Bytes,
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(x)
}

/// Decodes the records of a fetched partition's bytes (the `records` field of a Fetch response
/// partition), as [`crate::Client::fetch`] does: whole batches only, control records left out,
/// decompression bounded.
pub fn decode_fetched_records(raw: &Bytes) -> Result<Vec<FetchedRecord>, Error> {
    Ok(decode_batches(raw, 0, true)?.records)
}

/// Splits a fetched partition's bytes into whole batches (every one kept in `batches`) and,
/// with `decode`, decodes the records at or after `from_offset` into `records` (a batch may
/// start before the fetch offset; control records are left out). Without `decode` only the
/// batch headers are read, which is what forwarding batches unchanged needs.
pub(crate) fn decode_batches(
    raw: &Bytes,
    from_offset: i64,
    decode: bool,
) -> Result<DecodedRecords, Error> {
    let mut out = DecodedRecords::default();
    let mut pos = 0usize;
    while raw.len() - pos >= LOG_OVERHEAD {
        let length = be_i32(raw, pos + LENGTH_OFFSET);
        let Ok(length) = usize::try_from(length) else {
            return Err(Error::Protocol(format!(
                "record batch with length {length}"
            )));
        };
        let end = pos + LOG_OVERHEAD + length;
        if end > raw.len() {
            break; // a partial batch at the end of the response
        }
        if LOG_OVERHEAD + length < BATCH_HEADER_BYTES {
            // Too short for a v2 header: an old message-set entry or garbage.
            let magic = raw.get(pos + MAGIC_OFFSET).copied().unwrap_or(0);
            return Err(Error::Unsupported {
                api: "Fetch",
                reason: format!("record batch of {length} bytes with magic {magic}"),
            });
        }
        let magic = raw[pos + MAGIC_OFFSET];
        if magic != 2 {
            return Err(Error::Unsupported {
                api: "Fetch",
                reason: format!("message format v{magic} (only v2 record batches are read)"),
            });
        }
        let base_offset = be_i64(raw, pos);
        let last_offset = base_offset + i64::from(be_i32(raw, pos + LAST_OFFSET_DELTA_OFFSET));
        let max_timestamp = be_i64(raw, pos + MAX_TIMESTAMP_OFFSET);
        let records_count = be_i32(raw, pos + RECORDS_COUNT_OFFSET);
        let attributes = i16::from_be_bytes([
            raw[pos + ATTRIBUTES_OFFSET],
            raw[pos + ATTRIBUTES_OFFSET + 1],
        ]);
        let control = attributes & i16::from(CONTROL_FLAG) != 0;
        let bytes = raw.slice(pos..end);
        out.batches.push(RawBatch {
            base_offset,
            last_offset,
            control,
            records_count,
            attributes,
            max_timestamp,
            bytes: bytes.clone(),
        });
        pos = end;
        if !decode || control || last_offset < from_offset {
            continue;
        }
        let set = strata_kafka::records::decode_batch(&mut bytes.clone())
            .map_err(|e| Error::Protocol(format!("record batch at offset {base_offset}: {e}")))?;
        for r in set.records {
            if r.control || r.offset < from_offset {
                continue;
            }
            let (timestamp, timestamp_type) = match r.timestamp_type {
                WireTimestampType::Creation => (r.timestamp, TimestampType::CreateTime),
                // The broker stamps the batch's max timestamp; record deltas are the producer's.
                WireTimestampType::LogAppend => (max_timestamp, TimestampType::LogAppendTime),
            };
            out.records.push(FetchedRecord {
                offset: r.offset,
                timestamp,
                timestamp_type,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            });
        }
    }
    out.raw = raw.slice(0..pos);
    Ok(out)
}

/// One whole v2 batch with its base offset set to 0, as a Produce request must carry it.
pub(crate) fn with_base_offset_zero(batch: Bytes) -> Result<Bytes, Error> {
    check_one_batch(&batch)?;
    if be_i64(&batch, 0) == 0 {
        return Ok(batch);
    }
    let mut bytes = batch.to_vec();
    bytes[0..8].fill(0);
    Ok(Bytes::from(bytes))
}

impl RawBatch {
    /// Whether the batch can be produced again as it is, under a new producer stamp
    /// ([`crate::Producer::send_batch`]): a data batch, not transactional, with CreateTime
    /// timestamps and one record per offset (compacted batches have gaps, which brokers
    /// refuse on produce).
    pub fn reproducible(&self) -> bool {
        const TIMESTAMP_TYPE_FLAG: i16 = 0x08;
        const TRANSACTIONAL_FLAG: i16 = 0x10;
        !self.control
            && self.attributes & (TIMESTAMP_TYPE_FLAG | TRANSACTIONAL_FLAG) == 0
            && self.records_count > 0
            && self.last_offset - self.base_offset + 1 == i64::from(self.records_count)
    }
}

/// Checks that `batch` is exactly one whole v2 record batch.
pub(crate) fn check_one_batch(batch: &[u8]) -> Result<(), Error> {
    let whole = batch.len() >= BATCH_HEADER_BYTES
        && usize::try_from(be_i32(batch, LENGTH_OFFSET)).ok() == Some(batch.len() - LOG_OVERHEAD);
    if !whole || batch[MAGIC_OFFSET] != 2 {
        return Err(Error::Protocol(
            "expected exactly one whole v2 record batch".into(),
        ));
    }
    Ok(())
}

/// A copy of a whole v2 batch re-stamped for producing: base offset 0, this producer's id,
/// epoch and base sequence, partition leader epoch -1, and the CRC-32C computed again (it
/// covers everything from the attributes on). Records, compression and timestamps are kept.
pub(crate) fn restamp(batch: &Bytes, stamp: ProducerStamp) -> Result<Bytes, Error> {
    const LEADER_EPOCH_OFFSET: usize = 12;
    const CRC_OFFSET: usize = 17;
    const PRODUCER_ID_OFFSET: usize = 43;
    check_one_batch(batch)?;
    let mut b = batch.to_vec();
    b[0..8].fill(0);
    b[LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4].copy_from_slice(&(-1i32).to_be_bytes());
    b[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&stamp.producer_id.to_be_bytes());
    b[PRODUCER_ID_OFFSET + 8..PRODUCER_ID_OFFSET + 10]
        .copy_from_slice(&stamp.producer_epoch.to_be_bytes());
    b[PRODUCER_ID_OFFSET + 10..PRODUCER_ID_OFFSET + 14]
        .copy_from_slice(&stamp.base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(Bytes::from(b))
}

/// A record to encode into a produced batch.
pub(crate) struct OutgoingRecord {
    pub(crate) timestamp: i64,
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: IndexMap<StrBytes, Option<Bytes>>,
}

/// Who wrote a batch: an idempotent producer's id, epoch and first sequence, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerStamp {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) base_sequence: i32,
}

impl ProducerStamp {
    /// A non-idempotent producer.
    pub(crate) const NONE: ProducerStamp = ProducerStamp {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}

/// Encodes `records` as one v2 batch (relative offsets 0..n).
pub(crate) fn encode_batch(
    records: &[OutgoingRecord],
    stamp: ProducerStamp,
    compression: Compression,
) -> Result<Bytes, Error> {
    let wire: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: stamp.producer_id,
            producer_epoch: stamp.producer_epoch,
            timestamp_type: WireTimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence stays constant;
            // a non-idempotent batch thus counts from -1 and gets base sequence -1.
            sequence: stamp.base_sequence.wrapping_add(i as i32),
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &wire,
        &RecordEncodeOptions {
            version: 2,
            compression: compression.wire(),
        },
    )
    .map_err(|e| Error::Protocol(format!("encoding a record batch: {e}")))?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    fn record(i: i64) -> OutgoingRecord {
        let mut headers = IndexMap::new();
        headers.insert(
            StrBytes::from_static_str("h"),
            Some(Bytes::from(format!("{i}"))),
        );
        headers.insert(StrBytes::from_static_str("null"), None);
        OutgoingRecord {
            timestamp: 1_000 + i,
            key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            headers,
        }
    }

    /// Rewrites a batch's base offset as the broker does on append.
    fn at_offset(batch: &Bytes, base: i64) -> Bytes {
        let mut b = batch.to_vec();
        b[0..8].copy_from_slice(&base.to_be_bytes());
        Bytes::from(b)
    }

    #[test]
    fn round_trips_every_codec_and_one_batch_per_encode() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            for stamp in [
                ProducerStamp::NONE,
                ProducerStamp {
                    producer_id: 7,
                    producer_epoch: 1,
                    base_sequence: 40,
                },
            ] {
                let records: Vec<_> = (0..5).map(record).collect();
                let batch = encode_batch(&records, stamp, compression).unwrap();
                let infos = RecordBatchDecoder::decode_batch_info(&mut batch.clone()).unwrap();
                assert_eq!(infos.len(), 1, "{compression:?} {stamp:?}: one batch");
                assert_eq!(infos[0].base_sequence, stamp.base_sequence);
                assert_eq!(infos[0].producer_id, stamp.producer_id);
                let decoded = decode_batches(&at_offset(&batch, 100), 0, true).unwrap();
                assert_eq!(decoded.records.len(), 5);
                for (i, r) in decoded.records.iter().enumerate() {
                    let i = i as i64;
                    assert_eq!(r.offset, 100 + i);
                    assert_eq!(r.timestamp, 1_000 + i);
                    assert_eq!(r.timestamp_type, TimestampType::CreateTime);
                    assert_eq!(r.key, (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))));
                    assert_eq!(r.value, Some(Bytes::from(format!("v{i}"))));
                    assert_eq!(
                        r.headers,
                        vec![
                            ("h".to_string(), Some(Bytes::from(format!("{i}")))),
                            ("null".to_string(), None)
                        ]
                    );
                }
                assert_eq!(decoded.batches.len(), 1);
                assert_eq!(decoded.batches[0].base_offset, 100);
                assert_eq!(decoded.batches[0].last_offset, 104);
                assert_eq!(decoded.raw.len(), batch.len());
            }
        }
    }

    #[test]
    fn partial_trailing_batches_are_dropped_and_early_records_skipped() {
        let a = encode_batch(
            &[record(0), record(1)],
            ProducerStamp::NONE,
            Compression::None,
        )
        .unwrap();
        let b = encode_batch(&[record(2)], ProducerStamp::NONE, Compression::Lz4).unwrap();
        let mut raw = at_offset(&a, 10).to_vec();
        raw.extend_from_slice(&at_offset(&b, 12));
        raw.extend_from_slice(&at_offset(&b, 13)[..20]);
        let raw = Bytes::from(raw);
        let decoded = decode_batches(&raw, 11, true).unwrap();
        let offsets: Vec<i64> = decoded.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![11, 12]);
        assert_eq!(decoded.batches.len(), 2);
        assert_eq!(decoded.raw.len(), a.len() + b.len());
        assert!(decode_batches(&Bytes::from_static(&[0; 11]), 0, true)
            .unwrap()
            .batches
            .is_empty());
    }

    #[test]
    fn raw_batches_are_rebased_to_offset_zero() {
        let a = encode_batch(
            &[record(0), record(1)],
            ProducerStamp::NONE,
            Compression::None,
        )
        .unwrap();
        let moved = at_offset(&a, 77);
        let rebased = with_base_offset_zero(moved).unwrap();
        assert_eq!(rebased, a, "only the base offset changes");
        let two = Bytes::from([a.to_vec(), a.to_vec()].concat());
        assert!(with_base_offset_zero(two).is_err(), "one batch only");
        assert!(with_base_offset_zero(a.slice(0..20)).is_err());
    }

    #[test]
    fn corrupt_and_old_formats_are_errors() {
        let a = encode_batch(&[record(0)], ProducerStamp::NONE, Compression::None).unwrap();
        let mut corrupt = a.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert!(matches!(
            decode_batches(&Bytes::from(corrupt), 0, true),
            Err(Error::Protocol(_))
        ));
        let mut old = a.to_vec();
        old[MAGIC_OFFSET] = 1;
        assert!(matches!(
            decode_batches(&Bytes::from(old), 0, true),
            Err(Error::Unsupported { .. })
        ));
        let mut negative = a.to_vec();
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(decode_batches(&Bytes::from(negative), 0, true).is_err());
    }
}
