//! Scenario suite run against every `PartitionLog` implementation.

use crate::common::*;
use kafka_protocol::records::Compression;
use strata_log::batch::validate_batches;
use strata_log::{CleanupPolicy, LogConfig, LogError, TimestampType};

type Make = fn(LogConfig) -> Subject;

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory_log { $( #[test] fn $name() { super::$name(super::memory); } )* }
        mod file_log { $( #[test] fn $name() { super::$name(super::file); } )* }
    };
}

suite!(
    round_trip_all_compressions,
    corrupt_batch_rejects_whole_request,
    read_semantics,
    rolls_by_size_and_time,
    retention_by_time_and_bytes,
    compaction,
    compaction_respects_dirty_ratio_and_lag,
    delete_records_before,
    truncate_to,
    timestamp_lookup,
    epoch_cache,
    idempotent_producers,
    producer_reset,
    log_append_time,
    validation_errors,
    follower_append_with_offsets,
);

fn round_trip_all_compressions(make: Make) {
    let s = make(LogConfig::default());
    let mut expected = Vec::new();
    let mut next = 0;
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let recs: Vec<(String, String)> = (0..5)
            .map(|i| {
                (
                    format!("key-{compression:?}-{i}"),
                    format!("value-{i}").repeat(20),
                )
            })
            .collect();
        let input: Vec<Rec> = recs
            .iter()
            .map(|(k, v)| (Some(k.as_str()), Some(v.as_str()), 1000 + next))
            .collect();
        let mut batch = encode(&input, compression, None);
        let info = s.log.append_as_leader(&mut batch, 3, 5000).unwrap();
        assert_eq!(
            (info.base_offset, info.last_offset, info.record_count),
            (next, next + 4, 5)
        );
        assert!(!info.duplicate);
        for (i, (k, v)) in recs.iter().enumerate() {
            expected.push((
                next + i as i64,
                Some(k.clone()),
                Some(v.clone()),
                1000 + next,
            ));
        }
        next += 5;
    }
    assert_eq!(s.log.log_end_offset(), 25);
    let slice = s.log.read(0, usize::MAX, i64::MAX).unwrap();
    let headers = validate_batches(&slice.bytes).unwrap();
    assert_eq!(headers.len(), 5);
    assert!(headers.iter().all(|(_, h)| h.partition_leader_epoch == 3));
    assert_eq!(decode(&slice.bytes), expected);
}

fn corrupt_batch_rejects_whole_request(make: Make) {
    let s = make(LogConfig::default());
    let mut good = simple(2, 10);
    s.log.append_as_leader(&mut good, 0, 0).unwrap();
    let mut request = simple(3, 10);
    let mut bad = simple(3, 10);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    request.extend_from_slice(&bad);
    let err = s.log.append_as_leader(&mut request, 0, 0).unwrap_err();
    assert!(matches!(err, LogError::CorruptBatch(_)), "{err:?}");
    let mut torn = simple(3, 10);
    torn.truncate(torn.len() - 4);
    assert!(matches!(
        s.log.append_as_leader(&mut torn, 0, 0),
        Err(LogError::CorruptBatch(_))
    ));
    let mut old_magic = simple(1, 10);
    old_magic[16] = 1;
    assert!(matches!(
        s.log.append_as_leader(&mut old_magic, 0, 0),
        Err(LogError::UnsupportedMagic(1))
    ));
    assert_eq!(s.log.log_end_offset(), 2);
    assert_eq!(read_all(&*s.log).len(), 2);
}

fn read_semantics(make: Make) {
    let s = make(LogConfig::default());
    let mut sizes = Vec::new();
    for _ in 0..4 {
        let mut b = simple(5, 1);
        sizes.push(b.len());
        s.log.append_as_leader(&mut b, 0, 0).unwrap();
    }
    // Offset in the middle of the second batch returns the whole batch.
    let slice = s.log.read(7, sizes[1], i64::MAX).unwrap();
    assert_eq!(slice.first_offset, 5);
    assert_eq!(slice.bytes.len(), sizes[1]);
    // max_bytes smaller than a batch still returns one whole batch (KIP-74).
    let slice = s.log.read(0, 1, i64::MAX).unwrap();
    assert_eq!(slice.bytes.len(), sizes[0]);
    // max_bytes covering 2.5 batches returns 2.
    let slice = s
        .log
        .read(0, sizes[0] * 2 + sizes[0] / 2, i64::MAX)
        .unwrap();
    assert_eq!(decode(&slice.bytes).len(), 10);
    // High watermark bound: only batches whose last offset is below it.
    let slice = s.log.read(0, usize::MAX, 12).unwrap();
    assert_eq!(decode(&slice.bytes).len(), 10);
    let slice = s.log.read(10, usize::MAX, 12).unwrap();
    assert!(slice.bytes.is_empty());
    assert_eq!(slice.first_offset, -1);
    // At the end: empty; beyond: out of range.
    assert!(s.log.read(20, 100, i64::MAX).unwrap().bytes.is_empty());
    assert!(matches!(
        s.log.read(21, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange {
            offset: 21,
            log_start: 0,
            log_end: 20
        })
    ));
}

fn rolls_by_size_and_time(make: Make) {
    let one = simple(3, 0).len() as u64;
    let config = LogConfig {
        segment_bytes: one * 2,
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let s = make(config);
    for i in 0..5 {
        let mut b = simple(3, i);
        s.log.append_as_leader(&mut b, 0, 100).unwrap();
    }
    assert_eq!(s.log.segment_count(), 3);
    assert_eq!(read_all(&*s.log).len(), 15);
    assert_eq!(s.log.size_bytes(), one * 5);
    // Time-based roll: only when the active segment is non-empty and old enough.
    assert!(!s.log.maintain(1100).unwrap().rolled);
    assert!(s.log.maintain(1101).unwrap().rolled);
    assert_eq!(s.log.segment_count(), 4);
    assert!(
        !s.log.maintain(10_000).unwrap().rolled,
        "empty active segment must not roll"
    );
    // An append to an old active segment rolls too.
    let mut b = simple(1, 0);
    s.log.append_as_leader(&mut b, 0, 20_000).unwrap();
    let mut b = simple(1, 0);
    s.log.append_as_leader(&mut b, 0, 21_001).unwrap();
    assert_eq!(s.log.segment_count(), 5);
    assert_eq!(read_all(&*s.log).len(), 17);
}

fn retention_by_time_and_bytes(make: Make) {
    let one = simple(2, 0).len() as u64;
    let config = LogConfig {
        segment_bytes: one,
        retention_ms: 1000,
        ..LogConfig::default()
    };
    let s = make(config.clone());
    for ts in [100, 200, 300, 5000] {
        let mut b = simple(2, ts);
        s.log.append_as_leader(&mut b, 0, ts).unwrap();
    }
    assert_eq!(s.log.segment_count(), 4);
    // now - retention = 1250: segments with max ts 100 and 200 go, 300 stays.
    let report = s.log.maintain(1250).unwrap();
    assert_eq!(report.segments_deleted, 2);
    assert_eq!(report.bytes_reclaimed, 2 * one);
    assert_eq!(s.log.log_start_offset(), 4);
    assert!(matches!(
        s.log.read(0, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Far future: everything expired but the active segment survives.
    s.log.maintain(1_000_000).unwrap();
    assert_eq!(s.log.segment_count(), 1);
    assert_eq!(s.log.log_start_offset(), 6);
    assert_eq!(read_all(&*s.log).len(), 2);

    let s = make(LogConfig {
        segment_bytes: one,
        retention_ms: -1,
        retention_bytes: (one * 2) as i64,
        ..LogConfig::default()
    });
    for _ in 0..5 {
        let mut b = simple(2, 0);
        s.log.append_as_leader(&mut b, 0, 0).unwrap();
    }
    let report = s.log.maintain(0).unwrap();
    assert_eq!(report.segments_deleted, 3);
    assert_eq!(s.log.size_bytes(), one * 2);
    assert_eq!(s.log.log_start_offset(), 6);
    let s = make(LogConfig {
        retention_bytes: 0,
        retention_ms: -1,
        ..LogConfig::default()
    });
    let mut b = simple(2, 0);
    s.log.append_as_leader(&mut b, 0, 0).unwrap();
    assert_eq!(
        s.log.maintain(0).unwrap().segments_deleted,
        0,
        "active segment is never deleted"
    );
}

fn compacted_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        delete_retention_ms: 1000,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

fn compaction(make: Make) {
    let s = make(compacted_config(200));
    let writes: Vec<Rec> = vec![
        (Some("a"), Some("a1"), 100),
        (Some("b"), Some("b1"), 100),
        (Some("a"), Some("a2"), 100),
        (Some("c"), Some("c1"), 100),
        (Some("b"), None, 100),
        (Some("d"), Some("d1"), 5000),
        (Some("a"), Some("a3"), 5000),
    ];
    // Two records per batch (gzip for some) so compaction has to rewrite batches.
    for (i, chunk) in writes.chunks(2).enumerate() {
        let compression = if i % 2 == 0 {
            Compression::None
        } else {
            Compression::Gzip
        };
        let mut b = encode(chunk, compression, None);
        s.log.append_as_leader(&mut b, 0, 0).unwrap();
    }
    // The last record goes into the active segment on its own, via the follower path.
    let mut tail = encode(&[(Some("a"), Some("a4"), 6000)], Compression::None, None);
    tail[..8].copy_from_slice(&7i64.to_be_bytes());
    s.log.append_with_offsets(&tail).unwrap();
    assert!(s.log.segment_count() > 1);
    let before_end = s.log.log_end_offset();

    // Tombstone of "b" (ts 100) is kept while delete.retention.ms has not passed.
    let report = s.log.maintain(500).unwrap();
    assert!(report.segments_compacted > 0);
    let got = read_all(&*s.log);
    let summary: Vec<(i64, Option<String>, Option<String>)> = got
        .iter()
        .map(|r| (r.0, r.1.clone(), r.2.clone()))
        .collect();
    let owned = |o: i64, k: &str, v: Option<&str>| (o, Some(k.to_string()), v.map(str::to_string));
    assert_eq!(
        summary,
        vec![
            owned(3, "c", Some("c1")),
            owned(4, "b", None),
            owned(5, "d", Some("d1")),
            owned(6, "a", Some("a3")),
            owned(7, "a", Some("a4")),
        ]
    );
    assert_eq!(s.log.log_end_offset(), before_end);
    // Timestamps survive re-encoding.
    assert!(got.iter().any(|r| r.0 == 5 && r.3 == 5000));
    // Every stored batch still has a valid CRC.
    let all = s.log.read(0, usize::MAX, i64::MAX).unwrap();
    validate_batches(&all.bytes).unwrap();

    // Later the tombstone expires (ts 100 + 1000 <= now). New dirty data is needed to clean again.
    let mut b = encode(&[(Some("e"), Some("e1"), 7000)], Compression::None, None);
    s.log.append_as_leader(&mut b, 0, 0).unwrap();
    let mut b = encode(&[(Some("f"), Some("f1"), 7000)], Compression::None, None);
    s.log.append_as_leader(&mut b, 0, 0).unwrap();
    s.log.maintain(2000).unwrap();
    let keys: Vec<(i64, Option<String>)> =
        read_all(&*s.log).into_iter().map(|r| (r.0, r.1)).collect();
    assert!(
        !keys.contains(&(4, Some("b".into()))),
        "expired tombstone removed: {keys:?}"
    );
    assert!(keys.contains(&(7, Some("a".into()))));
    assert!(
        keys.iter().any(|k| k.1.as_deref() == Some("f")),
        "active segment untouched"
    );
    // Reads from a compacted-away offset start at the next surviving batch.
    let slice = s.log.read(0, usize::MAX, i64::MAX).unwrap();
    assert!(slice.first_offset >= 3);
}

fn compaction_respects_dirty_ratio_and_lag(make: Make) {
    let mut config = compacted_config(1);
    config.min_cleanable_dirty_ratio = 0.5;
    config.min_compaction_lag_ms = 10_000;
    let s = make(config.clone());
    for v in ["1", "2", "3"] {
        let mut b = encode(&[(Some("k"), Some(v), 1000)], Compression::None, None);
        s.log.append_as_leader(&mut b, 0, 0).unwrap();
    }
    // Lag not reached: nothing cleaned.
    assert_eq!(s.log.maintain(5000).unwrap().segments_compacted, 0);
    assert_eq!(read_all(&*s.log).len(), 3);
    assert!(s.log.maintain(20_000).unwrap().segments_compacted > 0);
    assert_eq!(read_all(&*s.log).len(), 2);
    // Clean section only: dirty ratio 0 -> no cleaning.
    assert_eq!(s.log.maintain(30_000).unwrap().segments_compacted, 0);
}

fn delete_records_before(make: Make) {
    let one = simple(2, 0).len() as u64;
    let s = make(LogConfig {
        segment_bytes: one,
        ..LogConfig::default()
    });
    for _ in 0..4 {
        let mut b = simple(2, 0);
        s.log.append_as_leader(&mut b, 0, 0).unwrap();
    }
    assert_eq!(s.log.delete_records_before(3).unwrap(), 3);
    assert_eq!(s.log.log_start_offset(), 3);
    assert_eq!(
        s.log.segment_count(),
        3,
        "only segments wholly below are deleted"
    );
    assert!(matches!(
        s.log.read(2, 10, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // A read at the new start returns the batch containing it.
    assert_eq!(s.log.read(3, 10, i64::MAX).unwrap().first_offset, 2);
    assert_eq!(read_all(&*s.log).len(), 5);
    assert_eq!(
        s.log.delete_records_before(1).unwrap(),
        3,
        "never moves backwards"
    );
    assert!(matches!(
        s.log.delete_records_before(9),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(s.log.delete_records_before(8).unwrap(), 8);
    assert_eq!(s.log.segment_count(), 1);
    assert!(read_all(&*s.log).is_empty());
    let mut b = simple(1, 0);
    assert_eq!(s.log.append_as_leader(&mut b, 0, 0).unwrap().base_offset, 8);
}

fn truncate_to(make: Make) {
    let one = simple(2, 0).len() as u64;
    let s = make(LogConfig {
        segment_bytes: one * 2,
        ..LogConfig::default()
    });
    for epoch in 0..5 {
        let mut b = simple(2, 0);
        s.log.append_as_leader(&mut b, epoch, 0).unwrap();
    }
    assert_eq!(s.log.segment_count(), 3);
    s.log.truncate_to(6).unwrap();
    assert_eq!(s.log.log_end_offset(), 6);
    assert_eq!(s.log.latest_epoch(), Some(2));
    // Truncating inside a batch removes the whole batch.
    s.log.truncate_to(3).unwrap();
    assert_eq!(s.log.log_end_offset(), 2);
    assert_eq!(s.log.segment_count(), 1);
    assert_eq!(read_all(&*s.log).len(), 2);
    s.log.truncate_to(10).unwrap();
    assert_eq!(
        s.log.log_end_offset(),
        2,
        "truncating above the end is a no-op"
    );
    let mut b = simple(2, 0);
    assert_eq!(s.log.append_as_leader(&mut b, 7, 0).unwrap().base_offset, 2);
    assert_eq!(s.log.end_offset_for_epoch(0), (0, 2));
    s.log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!(
        (s.log.log_start_offset(), s.log.log_end_offset()),
        (100, 100)
    );
    assert_eq!(s.log.latest_epoch(), None);
}

fn timestamp_lookup(make: Make) {
    let s = make(LogConfig {
        segment_bytes: 300,
        index_interval_bytes: 1,
        ..LogConfig::default()
    });
    let mut ts = 1000;
    for _ in 0..10 {
        let recs: Vec<Rec> = (0..3)
            .map(|i| (Some("k"), Some("v"), ts + i * 10))
            .collect();
        let mut b = encode(&recs, Compression::Lz4, None);
        s.log.append_as_leader(&mut b, 0, 0).unwrap();
        ts += 100;
    }
    assert!(s.log.segment_count() > 1);
    assert_eq!(s.log.offset_for_timestamp(0).unwrap(), Some((0, 1000)));
    assert_eq!(s.log.offset_for_timestamp(1015).unwrap(), Some((2, 1020)));
    assert_eq!(s.log.offset_for_timestamp(1500).unwrap(), Some((15, 1500)));
    assert_eq!(s.log.offset_for_timestamp(1921).unwrap(), None);
    assert_eq!(s.log.max_timestamp().unwrap(), Some((29, 1920)));
    // An out-of-order timestamp becomes the max.
    let mut b = encode(
        &[(Some("k"), Some("v"), 50), (Some("k"), Some("v"), 9999)],
        Compression::None,
        None,
    );
    s.log.append_as_leader(&mut b, 0, 0).unwrap();
    assert_eq!(s.log.max_timestamp().unwrap(), Some((31, 9999)));
}

fn epoch_cache(make: Make) {
    let s = make(LogConfig::default());
    assert_eq!(s.log.end_offset_for_epoch(0), (-1, -1));
    assert_eq!(s.log.latest_epoch(), None);
    for epoch in [1, 1, 3, 3, 5] {
        let mut b = simple(2, 0);
        s.log.append_as_leader(&mut b, epoch, 0).unwrap();
    }
    assert_eq!(s.log.latest_epoch(), Some(5));
    assert_eq!(s.log.end_offset_for_epoch(1), (1, 4));
    assert_eq!(s.log.end_offset_for_epoch(2), (1, 4));
    assert_eq!(s.log.end_offset_for_epoch(3), (3, 8));
    assert_eq!(s.log.end_offset_for_epoch(5), (5, 10));
    assert_eq!(s.log.end_offset_for_epoch(0), (0, 0));
    assert_eq!(s.log.end_offset_for_epoch(6), (-1, -1));
}

fn idempotent_producers(make: Make) {
    let s = make(LogConfig::default());
    let batch = |seq: i32, epoch: i16| {
        encode(
            &[(Some("k"), Some("v"), 0), (Some("k"), Some("w"), 0)],
            Compression::None,
            Some((42, epoch, seq)),
        )
    };
    let first = s.log.append_as_leader(&mut batch(0, 0), 0, 0).unwrap();
    s.log.append_as_leader(&mut batch(2, 0), 0, 0).unwrap();
    // Retry of the first batch: original offsets, nothing written.
    let dup = s.log.append_as_leader(&mut batch(0, 0), 0, 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(
        (dup.base_offset, dup.last_offset),
        (first.base_offset, first.last_offset)
    );
    assert_eq!(s.log.log_end_offset(), 4);
    // Gap in sequence.
    assert!(matches!(
        s.log.append_as_leader(&mut batch(6, 0), 0, 0),
        Err(LogError::OutOfOrderSequence {
            producer_id: 42,
            expected: 4,
            received: 6
        })
    ));
    // Bump epoch: must restart at 0; then the old epoch is fenced.
    assert!(matches!(
        s.log.append_as_leader(&mut batch(4, 1), 0, 0),
        Err(LogError::OutOfOrderSequence { .. })
    ));
    s.log.append_as_leader(&mut batch(0, 1), 0, 0).unwrap();
    assert!(matches!(
        s.log.append_as_leader(&mut batch(4, 0), 0, 0),
        Err(LogError::InvalidProducerEpoch)
    ));
    // A different, unknown producer may start at any sequence.
    let mut other = encode(
        &[(Some("k"), Some("v"), 0)],
        Compression::None,
        Some((7, 0, 100)),
    );
    s.log.append_as_leader(&mut other, 0, 0).unwrap();
    assert_eq!(s.log.log_end_offset(), 7);
}

/// A producer reset at leader epoch 4: the leader's producers of epoch 3 may start again at
/// any sequence, and a follower that applies the reset before it catches up on those epoch-3
/// batches ends with the same state as the leader.
fn producer_reset(make: Make) {
    let batch = |pid: i64, seq: i32| {
        encode(
            &[(Some("k"), Some("v"), 0), (Some("k"), Some("w"), 0)],
            Compression::None,
            Some((pid, 0, seq)),
        )
    };
    let leader = make(LogConfig::default());
    leader
        .log
        .append_as_leader(&mut batch(42, 0), 3, 0)
        .unwrap();
    leader
        .log
        .append_as_leader(&mut batch(42, 2), 3, 0)
        .unwrap();
    leader.log.append_as_leader(&mut batch(7, 0), 3, 0).unwrap();
    // Producer 42 wrote up to sequence 3 here, then elsewhere up to 49.
    assert!(matches!(
        leader.log.append_as_leader(&mut batch(42, 50), 3, 0),
        Err(LogError::OutOfOrderSequence { expected: 4, .. })
    ));
    assert!(leader.log.reset_producers_before(4));
    assert!(!leader.log.reset_producers_before(4));
    let resumed = leader
        .log
        .append_as_leader(&mut batch(42, 50), 4, 0)
        .unwrap();
    assert!(!resumed.duplicate);
    assert_eq!(leader.log.log_end_offset(), 8);

    // A follower that was down during the reset: it learns of it, then fetches everything.
    let follower = make(LogConfig::default());
    assert!(follower.log.reset_producers_before(4));
    let slice = leader.log.read(0, usize::MAX, i64::MAX).unwrap();
    follower.log.append_with_offsets(&slice.bytes).unwrap();
    assert_eq!(follower.log.log_end_offset(), 8);
    for log in [&leader.log, &follower.log] {
        // Producer 7 (epoch 3 only) is released: a retry of its batch is a duplicate, any
        // other sequence is a first batch; producer 42 continues at 52.
        assert!(
            log.append_as_leader(&mut batch(7, 0), 5, 0)
                .unwrap()
                .duplicate
        );
        assert!(
            !log.append_as_leader(&mut batch(7, 100), 5, 0)
                .unwrap()
                .duplicate
        );
        assert!(matches!(
            log.append_as_leader(&mut batch(42, 4), 5, 0),
            Err(LogError::OutOfOrderSequence { expected: 52, .. })
        ));
        // A retry of the batch written after the reset is still recognised.
        assert!(
            log.append_as_leader(&mut batch(42, 50), 5, 0)
                .unwrap()
                .duplicate
        );
    }
}

fn log_append_time(make: Make) {
    let s = make(LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    });
    let mut b = encode(
        &[(Some("k"), Some("v"), 5), (Some("k"), Some("v"), 6)],
        Compression::Snappy,
        None,
    );
    let info = s.log.append_as_leader(&mut b, 0, 777).unwrap();
    assert_eq!(info.log_append_time, 777);
    let slice = s.log.read(0, usize::MAX, i64::MAX).unwrap();
    let headers = validate_batches(&slice.bytes).unwrap();
    assert_eq!(headers[0].1.max_timestamp, 777);
    assert_eq!(headers[0].1.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(s.log.offset_for_timestamp(700).unwrap(), Some((0, 777)));
}

fn validation_errors(make: Make) {
    let s = make(LogConfig {
        max_message_bytes: 100,
        ..LogConfig::default()
    });
    let mut big = simple(20, 0);
    assert!(matches!(
        s.log.append_as_leader(&mut big, 0, 0),
        Err(LogError::RecordTooLarge)
    ));
    let s = make(compacted_config(1 << 20));
    let mut keyless = encode(
        &[(Some("k"), Some("v"), 0), (None, Some("v"), 0)],
        Compression::Zstd,
        None,
    );
    assert!(matches!(
        s.log.append_as_leader(&mut keyless, 0, 0),
        Err(LogError::InvalidRecord(_))
    ));
    assert_eq!(s.log.log_end_offset(), 0);
}

fn follower_append_with_offsets(make: Make) {
    let s = make(LogConfig {
        segment_bytes: 1 << 20,
        ..LogConfig::default()
    });
    let mut leader_batches = Vec::new();
    for (base, epoch) in [(0i64, 1i32), (10, 1), (12, 4)] {
        let mut b = simple(2, base);
        b[..8].copy_from_slice(&base.to_be_bytes());
        b[12..16].copy_from_slice(&epoch.to_be_bytes());
        leader_batches.extend_from_slice(&b);
    }
    let info = s.log.append_with_offsets(&leader_batches).unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset, info.record_count),
        (0, 13, 6)
    );
    assert_eq!(s.log.log_end_offset(), 14);
    assert_eq!(s.log.end_offset_for_epoch(1), (1, 12));
    // Reading inside the gap returns the next batch.
    assert_eq!(
        s.log.read(5, usize::MAX, i64::MAX).unwrap().first_offset,
        10
    );
    // Going backwards is refused.
    let mut stale = simple(1, 0);
    stale[..8].copy_from_slice(&13i64.to_be_bytes());
    assert!(s.log.append_with_offsets(&stale).is_err());
    assert_eq!(s.log.log_end_offset(), 14);
}
