//! FileLog-only behaviour: crash recovery, index rebuilding and state restored on reopen.

use crate::common::*;
use kafka_protocol::records::Compression;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use strata_log::{CleanupPolicy, FileLog, LogConfig, LogError, PartitionLog};

fn partition_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("topic-0")
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

#[test]
fn layout_uses_kafka_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let one = simple(2, 0).len() as u64;
    let log = FileLog::open(
        &partition_dir(&dir),
        LogConfig {
            segment_bytes: one,
            ..LogConfig::default()
        },
    )
    .unwrap();
    for _ in 0..3 {
        log.append_as_leader(&mut simple(2, 0), 0, 0).unwrap();
    }
    let names: Vec<String> = files_with_suffix(log.dir(), ".log")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "00000000000000000000.log",
            "00000000000000000002.log",
            "00000000000000000004.log"
        ]
    );
    assert_eq!(files_with_suffix(log.dir(), ".index").len(), 3);
    assert_eq!(files_with_suffix(log.dir(), ".timeindex").len(), 3);
    let path = log.dir().to_path_buf();
    log.delete().unwrap();
    assert!(!path.exists());
}

#[test]
fn torn_tail_is_truncated_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let mut sizes = Vec::new();
    {
        let log = FileLog::open(&partition_dir(&dir), config.clone()).unwrap();
        for i in 0..5 {
            let mut b = encode(
                &[(Some("k"), Some("v"), i), (Some("k"), Some("w"), i)],
                Compression::Gzip,
                None,
            );
            sizes.push(b.len());
            log.append_as_leader(&mut b, 0, 0).unwrap();
        }
    }
    let segment = files_with_suffix(&partition_dir(&dir), ".log").remove(0);
    let full_len = fs::metadata(&segment).unwrap().len();
    // A torn write: the first half of a valid batch, then garbage.
    let half = simple(3, 0);
    let mut f = OpenOptions::new().append(true).open(&segment).unwrap();
    f.write_all(&half[..half.len() / 2]).unwrap();
    f.write_all(&[0xde, 0xad, 0xbe, 0xef]).unwrap();
    drop(f);
    let log = reopen(dir.path(), config.clone());
    assert_eq!(fs::metadata(&segment).unwrap().len(), full_len);
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(read_all(&log).len(), 10);
    log.append_as_leader(&mut simple(1, 0), 0, 0).unwrap();
    assert_eq!(log.log_end_offset(), 11);
    drop(log);

    // A flipped bit in the last batch: that batch is dropped, earlier ones stay.
    let mut bytes = fs::read(&segment).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x55;
    fs::write(&segment, &bytes).unwrap();
    let log = reopen(dir.path(), config);
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(read_all(&log).len(), 10);
}

#[test]
fn corrupt_middle_segment_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let one = simple(2, 0).len() as u64;
    let config = LogConfig {
        segment_bytes: one * 2,
        ..LogConfig::default()
    };
    {
        let log = FileLog::open(&partition_dir(&dir), config.clone()).unwrap();
        for _ in 0..6 {
            log.append_as_leader(&mut simple(2, 0), 0, 0).unwrap();
        }
        assert_eq!(log.segment_count(), 3);
    }
    // No recovery point was written (never flushed), so every segment is CRC-checked.
    let second = files_with_suffix(&partition_dir(&dir), ".log").remove(1);
    let mut bytes = fs::read(&second).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 1;
    fs::write(&second, &bytes).unwrap();
    let log = reopen(dir.path(), config);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(read_all(&log).len(), 6);
}

#[test]
fn missing_or_damaged_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 100,
        ..LogConfig::default()
    };
    {
        let log = FileLog::open(&partition_dir(&dir), config.clone()).unwrap();
        for i in 0..40 {
            log.append_as_leader(&mut simple(3, 1000 + i), 0, 0)
                .unwrap();
        }
        assert!(log.segment_count() > 2);
        // As at a clean shutdown: the active segment's index entries are written by a flush.
        log.flush().unwrap();
    }
    let pdir = partition_dir(&dir);
    let indexes: Vec<PathBuf> = files_with_suffix(&pdir, "index");
    let before: Vec<Vec<u8>> = indexes.iter().map(|p| fs::read(p).unwrap()).collect();
    assert!(before.iter().any(|b| !b.is_empty()));
    // Delete one offset index, truncate a time index mid-entry, fill another with garbage.
    fs::remove_file(&indexes[0]).unwrap();
    let t = &indexes[1];
    let len = fs::metadata(t).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(t)
        .unwrap()
        .set_len(len.saturating_sub(5))
        .unwrap();
    fs::write(&indexes[2], [0xffu8; 16]).unwrap();
    let log = reopen(dir.path(), config);
    let after: Vec<Vec<u8>> = indexes.iter().map(|p| fs::read(p).unwrap()).collect();
    assert_eq!(before, after);
    assert_eq!(read_all(&log).len(), 120);
    assert_eq!(log.offset_for_timestamp(1020).unwrap(), Some((60, 1020)));
}

#[test]
fn reopen_restores_log_start_producers_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let one = simple(2, 0).len() as u64;
    let config = LogConfig {
        segment_bytes: one,
        ..LogConfig::default()
    };
    let idempotent = |seq| {
        encode(
            &[(Some("k"), Some("v"), 0)],
            Compression::None,
            Some((9, 2, seq)),
        )
    };
    {
        let log = FileLog::open(&partition_dir(&dir), config.clone()).unwrap();
        for epoch in [0, 0, 2, 4] {
            log.append_as_leader(&mut simple(2, 0), epoch, 0).unwrap();
        }
        log.append_as_leader(&mut idempotent(0), 4, 0).unwrap();
        log.append_as_leader(&mut idempotent(1), 4, 0).unwrap();
        assert_eq!(log.delete_records_before(3).unwrap(), 3);
        log.flush().unwrap();
    }
    let log = reopen(dir.path(), config.clone());
    assert_eq!(log.log_start_offset(), 3);
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.latest_epoch(), Some(4));
    assert_eq!(log.end_offset_for_epoch(0), (0, 4));
    assert_eq!(log.end_offset_for_epoch(3), (2, 6));
    let dup = log.append_as_leader(&mut idempotent(1), 4, 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 9);
    assert!(matches!(
        log.append_as_leader(&mut idempotent(5), 4, 0),
        Err(LogError::OutOfOrderSequence { .. })
    ));
    log.append_as_leader(&mut idempotent(2), 4, 0).unwrap();
    assert_eq!(log.log_end_offset(), 11);
    drop(log);
    // Without the epoch checkpoint the cache is rebuilt from batch headers.
    fs::remove_file(partition_dir(&dir).join("leader-epoch-checkpoint")).unwrap();
    let log = reopen(dir.path(), config);
    assert_eq!(log.end_offset_for_epoch(2), (2, 6));
    assert_eq!(log.log_start_offset(), 3);
}

#[test]
fn compaction_survives_reopen_and_ignores_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1,
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    };
    {
        let log = FileLog::open(&partition_dir(&dir), config.clone()).unwrap();
        for v in ["1", "2", "3", "4"] {
            let mut b = encode(
                &[(Some("k"), Some(v), 0), (Some("x"), Some(v), 0)],
                Compression::Zstd,
                None,
            );
            log.append_as_leader(&mut b, 0, 0).unwrap();
        }
        // The active segment (offsets 6, 7) is not part of the key map, so offsets 4, 5 survive.
        assert_eq!(log.maintain(0).unwrap().segments_compacted, 2);
        assert_eq!(read_all(&log).len(), 4);
    }
    fs::write(
        partition_dir(&dir).join("00000000000000000000.log.cleaned"),
        b"partial",
    )
    .unwrap();
    let log = reopen(dir.path(), config);
    assert!(files_with_suffix(log.dir(), ".cleaned").is_empty());
    let got = read_all(&log);
    assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), [4, 5, 6, 7]);
    assert_eq!(log.log_end_offset(), 8);
}

#[test]
fn flush_by_message_count_and_time_sets_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: 3,
        flush_ms: 1000,
        ..LogConfig::default()
    };
    let log = FileLog::open(&partition_dir(&dir), config).unwrap();
    let recovery_point = || fs::read_to_string(partition_dir(&dir).join("recovery-point")).ok();
    log.append_as_leader(&mut simple(2, 0), 0, 0).unwrap();
    assert_eq!(recovery_point(), None);
    log.append_as_leader(&mut simple(2, 0), 0, 0).unwrap();
    assert_eq!(recovery_point().as_deref(), Some("4"));
    log.append_as_leader(&mut simple(1, 0), 0, 0).unwrap();
    assert!(!log.maintain(0).unwrap().flushed);
    assert!(log.maintain(1000).unwrap().flushed);
    assert_eq!(recovery_point().as_deref(), Some("5"));
}

#[test]
fn a_segment_holds_one_descriptor_and_its_indexes_reach_disk_when_sealed_or_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let one = simple(2, 0).len() as u64;
    let config = LogConfig {
        segment_bytes: one * 4,
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let log = FileLog::open(&partition_dir(&dir), config.clone()).unwrap();
    for _ in 0..10 {
        log.append_as_leader(&mut simple(2, 0), 0, 0).unwrap();
    }
    let logs = files_with_suffix(log.dir(), ".log");
    assert_eq!(logs.len(), 3, "4 + 4 + 2 batches");
    assert_eq!(
        descriptors_under(log.dir()),
        logs.len(),
        "one open file per segment, its .log"
    );
    let offset_index = files_with_suffix(log.dir(), ".index");
    let time_index = files_with_suffix(log.dir(), ".timeindex");
    let size = |p: &PathBuf| fs::metadata(p).unwrap().len();
    // Sealed segments: written when the next segment started (3 offset entries of 8 bytes,
    // time entries of 12 bytes).
    assert_eq!(size(&offset_index[0]), 3 * 8);
    assert!(size(&time_index[0]) >= 12);
    // The active segment's entries are held until the log is flushed.
    assert_eq!(size(&offset_index[2]), 0);
    log.flush().unwrap();
    assert_eq!(size(&offset_index[2]), 8);
    let on_disk: Vec<Vec<u8>> = offset_index.iter().map(|p| fs::read(p).unwrap()).collect();
    drop(log);
    assert_eq!(descriptors_under(&partition_dir(&dir)), 0);
    // Reopened: the rebuilt indexes equal what was written, read back the same way.
    let log = FileLog::open(&partition_dir(&dir), config).unwrap();
    let again: Vec<Vec<u8>> = offset_index.iter().map(|p| fs::read(p).unwrap()).collect();
    assert_eq!(again, on_disk);
    assert_eq!(log.log_end_offset(), 20);
}

#[test]
fn index_entries_held_back_are_written_once_they_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(
        &partition_dir(&dir),
        LogConfig {
            index_interval_bytes: 1,
            ..LogConfig::default()
        },
    )
    .unwrap();
    // One offset entry (8 bytes) and one time entry (12 bytes) per batch after the first:
    // more than 8 KiB after about 420 batches, all in the one active segment.
    for i in 0..600 {
        log.append_as_leader(&mut simple(1, i), 0, 0).unwrap();
    }
    let index = files_with_suffix(log.dir(), ".index").remove(0);
    let written = fs::metadata(&index).unwrap().len();
    assert!(written > 0 && written.is_multiple_of(8), "{written} bytes");
    assert!(written < 599 * 8, "the latest entries are still held back");
    log.flush().unwrap();
    assert_eq!(fs::metadata(&index).unwrap().len(), 599 * 8);
}
