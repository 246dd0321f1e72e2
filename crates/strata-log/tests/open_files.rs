//! The process-wide budget of open segment files (its own test binary: the budget is global).

#[path = "it/common/mod.rs"]
mod common;

use common::*;
use strata_log::{open_files, FileLog, LogConfig, PartitionLog};

#[test]
fn segments_beyond_the_budget_are_closed_and_reopen_when_read() {
    const BUDGET: usize = 16;
    open_files::set_budget(BUDGET);
    let dir = tempfile::tempdir().unwrap();
    let one = simple(2, 0).len() as u64;
    let config = LogConfig {
        segment_bytes: one,
        ..LogConfig::default()
    };
    // 8 partitions of 10 one-batch segments: 80 segment files against a budget of 16.
    let logs: Vec<FileLog> = (0..8)
        .map(|p| FileLog::open(&dir.path().join(format!("t-{p}")), config.clone()).unwrap())
        .collect();
    for round in 0..10 {
        for log in &logs {
            log.append_as_leader(&mut simple(2, round), 0, 0).unwrap();
        }
    }
    let (budget, open) = open_files::usage();
    assert_eq!(budget, BUDGET);
    assert!(open <= BUDGET, "{open} segment files open");
    let held = descriptors_under(dir.path());
    assert!(held <= BUDGET, "{held} descriptors under the log directory");
    // Every record of every segment reads back (closed files reopen), and appends go on.
    for log in &logs {
        assert_eq!(read_all(log).len(), 20);
        log.append_as_leader(&mut simple(2, 99), 0, 0).unwrap();
        assert_eq!(log.log_end_offset(), 22);
    }
    assert!(descriptors_under(dir.path()) <= BUDGET);
    // A flush syncs segments whose files were closed after they were written.
    for log in &logs {
        log.flush().unwrap();
    }
    drop(logs);
    assert_eq!(descriptors_under(dir.path()), 0);
    assert_eq!(open_files::usage().1, 0);
    // Reopened from disk, under the same budget.
    for p in 0..8 {
        let log = FileLog::open(&dir.path().join(format!("t-{p}")), config.clone()).unwrap();
        assert_eq!(read_all(&log).len(), 22);
    }
}
