//! Test support: builds real record batches with `kafka_protocol`'s encoder and decodes what the
//! log returns, plus constructors for both log implementations.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as WireTimestampType,
};
use std::path::Path;
use strata_log::{FileLog, LogConfig, MemoryLog, PartitionLog};

/// One record to encode: key, value (None = tombstone), timestamp.
pub type Rec<'a> = (Option<&'a str>, Option<&'a str>, i64);

/// Idempotent producer identity of a batch: (producer id, epoch, base sequence).
pub type Producer = (i64, i16, i32);

pub fn encode(records: &[Rec], compression: Compression, producer: Option<Producer>) -> Vec<u8> {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v, ts))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: WireTimestampType::Creation,
            offset: i as i64,
            sequence: if seq >= 0 {
                seq + i as i32
            } else {
                -1 + i as i32
            },
            timestamp: *ts,
            key: k.map(|s| Bytes::copy_from_slice(s.as_bytes())),
            value: v.map(|s| Bytes::copy_from_slice(s.as_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        recs.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode test batch");
    let mut out = buf.to_vec();
    if seq < 0 {
        // The encoder derives base sequence from the first record; plain producers use -1.
        out[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    out
}

/// Batch of `n` records with values `v<i>`, keys `k<i>`, timestamps `ts`.
pub fn simple(n: usize, ts: i64) -> Vec<u8> {
    let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let vals: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
    let recs: Vec<Rec> = (0..n)
        .map(|i| (Some(keys[i].as_str()), Some(vals[i].as_str()), ts))
        .collect();
    encode(&recs, Compression::None, None)
}

/// Decoded record: (offset, key, value, timestamp).
pub type Decoded = (i64, Option<String>, Option<String>, i64);

pub fn decode(bytes: &Bytes) -> Vec<Decoded> {
    let mut buf = bytes.clone();
    let sets = strata_kafka::records::decode_batches(&mut buf).expect("decode");
    sets.into_iter()
        .flat_map(|s| s.records)
        .map(|r| {
            (
                r.offset,
                r.key.map(|k| String::from_utf8_lossy(&k).into_owned()),
                r.value.map(|v| String::from_utf8_lossy(&v).into_owned()),
                r.timestamp,
            )
        })
        .collect()
}

/// Everything from the log start to the end, decoded.
pub fn read_all(log: &dyn PartitionLog) -> Vec<Decoded> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let slice = log.read(offset, 1 << 20, i64::MAX).expect("read");
        if slice.bytes.is_empty() {
            break;
        }
        let recs = decode(&slice.bytes);
        let last = recs.last().map(|r| r.0).expect("non-empty read");
        out.extend(recs.into_iter().filter(|r| r.0 >= offset));
        offset = last + 1;
    }
    out
}

/// A log under test plus whatever keeps its storage alive.
pub struct Subject {
    pub log: Box<dyn PartitionLog>,
    pub dir: Option<tempfile::TempDir>,
}

pub fn memory(config: LogConfig) -> Subject {
    Subject {
        log: Box::new(MemoryLog::new(config)),
        dir: None,
    }
}

pub fn file(config: LogConfig) -> Subject {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = FileLog::open(&dir.path().join("topic-0"), config).expect("open");
    Subject {
        log: Box::new(log),
        dir: Some(dir),
    }
}

pub fn reopen(dir: &Path, config: LogConfig) -> FileLog {
    FileLog::open(&dir.join("topic-0"), config).expect("reopen")
}

/// Descriptors this process holds open on files under `dir`.
pub fn descriptors_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}
