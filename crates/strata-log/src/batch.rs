//! Magic-2 record batch headers, read and patched in place. Pure byte manipulation: nothing here
//! allocates per batch or touches the disk. Validation means: the declared length fits the buffer,
//! magic == 2, and CRC-32C over the bytes from `attributes` to the end of the batch matches.
//! Batches a producer sends are also checked record by record ([`validate_produced`]) before
//! they are appended; batches already in a log (replication, recovery) are not, as in Kafka.

use crate::config::TimestampType;
use crate::error::LogError;
use kafka_protocol::records::Compression;
use strata_kafka::record_check::{check_records, RecordsCheck, RecordsError};

/// Size of a magic-2 record batch header, from `base_offset` to `records_count` inclusive.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the part counted by `batch_length`: base offset (8) + length (4).
pub const LOG_OVERHEAD: usize = 12;

const BASE_OFFSET_AT: usize = 0;
const LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

/// The decoded fixed header of one magic-2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the length field (so the batch occupies `12 + batch_length` bytes).
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Decodes the header at the start of `buf` (at least [`BATCH_HEADER_LEN`] bytes) and checks
    /// its structure (magic, length, counts). Does not check the CRC or that the body is present.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, LogError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(LogError::CorruptBatch(format!(
                "{} bytes is shorter than a batch header",
                buf.len()
            )));
        }
        let magic = buf[MAGIC_AT] as i8;
        if magic != 2 {
            return Err(LogError::UnsupportedMagic(magic));
        }
        let header = BatchHeader {
            base_offset: i64_at(buf, BASE_OFFSET_AT),
            batch_length: i32_at(buf, LENGTH_AT),
            partition_leader_epoch: i32_at(buf, LEADER_EPOCH_AT),
            magic,
            crc: u32::from_be_bytes([
                buf[CRC_AT],
                buf[CRC_AT + 1],
                buf[CRC_AT + 2],
                buf[CRC_AT + 3],
            ]),
            attributes: i16_at(buf, ATTRIBUTES_AT),
            last_offset_delta: i32_at(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: i64_at(buf, BASE_TIMESTAMP_AT),
            max_timestamp: i64_at(buf, MAX_TIMESTAMP_AT),
            producer_id: i64_at(buf, PRODUCER_ID_AT),
            producer_epoch: i16_at(buf, PRODUCER_EPOCH_AT),
            base_sequence: i32_at(buf, BASE_SEQUENCE_AT),
            records_count: i32_at(buf, RECORDS_COUNT_AT),
        };
        if (header.batch_length as i64) < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(LogError::CorruptBatch(format!(
                "batch length {} is smaller than the header",
                header.batch_length
            )));
        }
        if header.records_count < 0 || header.last_offset_delta < 0 {
            return Err(LogError::CorruptBatch(format!(
                "negative record count {} or last offset delta {}",
                header.records_count, header.last_offset_delta
            )));
        }
        Ok(header)
    }

    /// Total bytes the batch occupies in a log, header included.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }
    /// Offset of the last record of the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    /// Offset following the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    /// Whether the batch carries transaction markers rather than data.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
    /// Whether the batch comes from an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
    /// Sequence number of the last record (wraps at i32::MAX like Kafka).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return self.base_sequence;
        }
        self.base_sequence.wrapping_add(self.last_offset_delta)
    }
    /// Compression codec of the records; unknown codecs are reported as corruption.
    pub fn compression(&self) -> Result<Compression, LogError> {
        match self.attributes & 0x7 {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(LogError::CorruptBatch(format!(
                "unknown compression codec {other}"
            ))),
        }
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
}

/// CRC-32C of a whole batch as stored in its header (covers `attributes` to the end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES_AT..).unwrap_or(&[]))
}

/// Checks that `batch` is exactly one complete batch whose CRC matches; returns its header.
pub fn validate_batch(batch: &[u8]) -> Result<BatchHeader, LogError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_size() != batch.len() {
        return Err(LogError::CorruptBatch(format!(
            "batch declares {} bytes but {} are present",
            header.total_size(),
            batch.len()
        )));
    }
    let actual = compute_crc(batch);
    if actual != header.crc {
        return Err(LogError::CorruptBatch(format!(
            "CRC mismatch: header {:#010x}, computed {actual:#010x}",
            header.crc
        )));
    }
    Ok(header)
}

/// Iterator over the batches of a buffer of back-to-back batches, validating each one.
/// Yields `(position, header)`; after the first error it yields nothing more.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    failed: bool,
}

/// Iterates (and fully validates) the batches in `buf`.
pub fn batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter {
        buf,
        position: 0,
        failed: false,
    }
}

impl<'a> BatchIter<'a> {
    /// Byte position of the next batch (after iteration: the length of the valid prefix).
    pub fn position(&self) -> usize {
        self.position
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(usize, BatchHeader), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.position..];
        let result = (|| {
            if rest.len() < LOG_OVERHEAD {
                return Err(LogError::CorruptBatch("truncated batch length".into()));
            }
            let length = i32_at(rest, LENGTH_AT);
            if length < 0 || LOG_OVERHEAD + length as usize > rest.len() {
                return Err(LogError::CorruptBatch(format!(
                    "batch length {length} exceeds the {} bytes available",
                    rest.len() - LOG_OVERHEAD
                )));
            }
            validate_batch(&rest[..LOG_OVERHEAD + length as usize])
        })();
        match result {
            Ok(header) => {
                let at = self.position;
                self.position += header.total_size();
                Some(Ok((at, header)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Validates every batch in `buf`; the whole buffer must consist of complete valid batches.
pub fn validate_batches(buf: &[u8]) -> Result<Vec<(usize, BatchHeader)>, LogError> {
    if buf.is_empty() {
        return Err(LogError::CorruptBatch("no record batches".into()));
    }
    batches(buf).collect()
}

/// Who sent the batches of a produce, which decides how much of Kafka's produce validation
/// applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducedBy {
    /// A producer; offsets are assigned here, so a batch's offset range must match its record
    /// count, as Kafka's `LogValidator` requires.
    Client,
    /// strata-mirror copying batches at their source offsets: a batch compacted on the source
    /// keeps its offset range with fewer records (Kafka's cleaner keeps the last offset delta
    /// for the producer's state), so only the structure of its records is checked.
    Mirror,
}

/// One batch of a produce that passed [`validate_produced`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducedBatch {
    /// Byte position of the batch in the produced buffer.
    pub position: usize,
    pub header: BatchHeader,
    pub records: RecordsCheck,
}

/// Validates the batches of a produce before anything of it is appended: each batch as
/// [`validate_batches`] does (length, magic, CRC), then every record inside it (declared count
/// present, varint lengths inside their record, header counts and lengths, nothing after the
/// last record; compressed batches streamed through the bounded decompressor). The one check of
/// producer data, on every topic: a batch a consumer could not read is refused with
/// `InvalidRecord` (INVALID_RECORD, Kafka's answer), one that does not decompress with
/// `CorruptBatch`.
pub fn validate_produced(buf: &[u8], by: ProducedBy) -> Result<Vec<ProducedBatch>, LogError> {
    validate_batches(buf)?
        .into_iter()
        .map(|(position, header)| {
            if by == ProducedBy::Client {
                check_offset_range(&header)?;
            }
            let batch = &buf[position..position + header.total_size()];
            let records = check_records(
                &batch[BATCH_HEADER_LEN..],
                header.records_count,
                header.compression()?,
            )
            .map_err(|e| match e {
                RecordsError::Malformed(m) => {
                    LogError::InvalidRecord(format!("batch at byte {position}: {m}"))
                }
                RecordsError::Decompression(m) => {
                    LogError::CorruptBatch(format!("batch at byte {position}: {m}"))
                }
            })?;
            Ok(ProducedBatch {
                position,
                header,
                records,
            })
        })
        .collect()
}

/// Kafka's check of a produced batch's header: at least one record, and as many offsets as
/// records.
fn check_offset_range(h: &BatchHeader) -> Result<(), LogError> {
    if h.records_count <= 0 {
        return Err(LogError::InvalidRecord(format!(
            "invalid reported count for record batch: {}",
            h.records_count
        )));
    }
    if i64::from(h.last_offset_delta) + 1 != i64::from(h.records_count) {
        return Err(LogError::InvalidRecord(format!(
            "inconsistent batch offset range [0, {}] and count of records {}",
            h.last_offset_delta, h.records_count
        )));
    }
    Ok(())
}

/// Writes the base offset (not covered by the CRC). The setters below expect a batch that passed
/// validation and panic on a buffer shorter than [`BATCH_HEADER_LEN`] (a caller bug).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch (not covered by the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Recomputes and stores the CRC of a complete batch.
pub fn update_crc(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Removes the batch's producer identity (producer id, epoch and base sequence -1, not
/// transactional) and recomputes the CRC: for batches copied from another cluster, whose
/// producer ids mean nothing here and would collide with this cluster's own.
pub fn clear_producer(batch: &mut [u8]) {
    let attributes = i16_at(batch, ATTRIBUTES_AT) & !TRANSACTIONAL_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&(-1i64).to_be_bytes());
    batch[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&(-1i16).to_be_bytes());
    batch[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&(-1i32).to_be_bytes());
    update_crc(batch);
}

/// Marks the batch as LogAppendTime with `append_time_ms` as its max timestamp (Kafka leaves the
/// base timestamp alone; readers use the max timestamp for every record) and recomputes the CRC.
pub fn set_log_append_time(batch: &mut [u8], append_time_ms: i64) {
    let attributes = i16_at(batch, ATTRIBUTES_AT) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&append_time_ms.to_be_bytes());
    update_crc(batch);
}

/// Copies the header fields a rewrite must keep (leader epoch, attributes except compression,
/// max timestamp, producer id/epoch, base sequence) from `original` into `rewritten`, then
/// recomputes the CRC. Used by compaction after re-encoding a batch's surviving records.
pub(crate) fn restore_header_fields(
    rewritten: &mut [u8],
    original: &BatchHeader,
    base_sequence: i32,
) {
    set_partition_leader_epoch(rewritten, original.partition_leader_epoch);
    let compression_bits = i16_at(rewritten, ATTRIBUTES_AT) & 0x7;
    let attributes = (original.attributes & !0x7) | compression_bits;
    rewritten[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    if original.timestamp_type() == TimestampType::LogAppendTime {
        rewritten[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8]
            .copy_from_slice(&original.max_timestamp.to_be_bytes());
    }
    rewritten[PRODUCER_ID_AT..PRODUCER_ID_AT + 8]
        .copy_from_slice(&original.producer_id.to_be_bytes());
    rewritten[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2]
        .copy_from_slice(&original.producer_epoch.to_be_bytes());
    rewritten[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&base_sequence.to_be_bytes());
    update_crc(rewritten);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_batch() -> Vec<u8> {
        // Header-only batch with zero records: structurally valid for these tests.
        let mut b = vec![0u8; BATCH_HEADER_LEN];
        b[LENGTH_AT..LENGTH_AT + 4]
            .copy_from_slice(&((BATCH_HEADER_LEN - LOG_OVERHEAD) as i32).to_be_bytes());
        b[MAGIC_AT] = 2;
        b[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4].copy_from_slice(&3i32.to_be_bytes());
        b[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&(-1i64).to_be_bytes());
        update_crc(&mut b);
        b
    }

    #[test]
    fn parse_and_patch_header() {
        let mut b = sample_batch();
        let h = validate_batch(&b).unwrap();
        assert_eq!(h.last_offset(), 3);
        assert!(!h.has_producer_id());
        set_base_offset(&mut b, 100);
        set_partition_leader_epoch(&mut b, 7);
        set_log_append_time(&mut b, 12345);
        let h = validate_batch(&b).unwrap();
        assert_eq!(h.base_offset, 100);
        assert_eq!(h.partition_leader_epoch, 7);
        assert_eq!(h.max_timestamp, 12345);
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    }

    #[test]
    fn rejects_bad_crc_magic_and_torn_batches() {
        let mut b = sample_batch();
        b[BASE_TIMESTAMP_AT] ^= 1;
        assert!(matches!(validate_batch(&b), Err(LogError::CorruptBatch(_))));
        let mut b = sample_batch();
        b[MAGIC_AT] = 1;
        assert!(matches!(
            validate_batch(&b),
            Err(LogError::UnsupportedMagic(1))
        ));
        let mut two = sample_batch();
        two.extend_from_slice(&sample_batch()[..30]);
        let results: Vec<_> = batches(&two).collect();
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        assert!(results[1].is_err());
    }

    #[test]
    fn a_producer_batch_needs_one_offset_per_record_a_mirrored_one_does_not() {
        // No record and offsets 0..=3: what compaction can leave of a batch on a source.
        let b = sample_batch();
        assert!(matches!(
            validate_produced(&b, ProducedBy::Client),
            Err(LogError::InvalidRecord(_))
        ));
        let mirrored = validate_produced(&b, ProducedBy::Mirror).unwrap();
        assert_eq!(mirrored[0].records.records, 0);
        // Four records declared, none present: refused whoever sends it.
        let mut lying = sample_batch();
        lying[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&4i32.to_be_bytes());
        update_crc(&mut lying);
        for by in [ProducedBy::Client, ProducedBy::Mirror] {
            assert!(matches!(
                validate_produced(&lying, by),
                Err(LogError::InvalidRecord(_))
            ));
        }
    }
}
