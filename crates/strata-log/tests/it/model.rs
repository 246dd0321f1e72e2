//! Property test: random appends, rolls (tiny segments), truncations, log-start moves and reopens
//! checked against a plain vector model, on both implementations.

use crate::common::*;
use proptest::prelude::*;
use strata_log::{FileLog, LogConfig, MemoryLog, PartitionLog};

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Truncate(u8),
    DeleteBefore(u8),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1usize..5).prop_map(Op::Append),
        1 => any::<u8>().prop_map(Op::Truncate),
        1 => any::<u8>().prop_map(Op::DeleteBefore),
        1 => Just(Op::Reopen),
    ]
}

/// Model: batches as (base offset, record count) plus the log start offset.
#[derive(Default)]
struct Model {
    batches: Vec<(i64, usize)>,
    log_start: i64,
    end: i64,
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 200,
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

fn check(log: &dyn PartitionLog, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_end_offset(), model.end);
    prop_assert_eq!(log.log_start_offset(), model.log_start);
    let expected: Vec<i64> = model
        .batches
        .iter()
        .flat_map(|&(base, n)| base..base + n as i64)
        .filter(|&o| o >= model.log_start)
        .collect();
    let got: Vec<i64> = read_all(log).into_iter().map(|r| r.0).collect();
    prop_assert_eq!(got, expected);
    Ok(())
}

fn apply(log: &dyn PartitionLog, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Append(n) => {
            let info = log.append_as_leader(&mut simple(n, 0), 0, 0).unwrap();
            prop_assert_eq!(info.base_offset, model.end);
            model.batches.push((model.end, n));
            model.end += n as i64;
        }
        Op::Truncate(x) => {
            let span = model.end - model.log_start;
            let target = model.log_start + (span * x as i64) / 255;
            log.truncate_to(target).unwrap();
            if target < model.end {
                model.batches.retain(|&(base, _)| base < target);
                model.end = target;
                // A batch straddling the target is removed whole.
                if let Some(&(base, n)) = model.batches.last() {
                    if base + n as i64 > target {
                        model.batches.pop();
                        model.end = base;
                    }
                }
                if target <= model.log_start {
                    model.log_start = target;
                }
                model.end = model.end.max(model.log_start);
            }
        }
        Op::DeleteBefore(x) => {
            let span = model.end - model.log_start;
            let target = model.log_start + (span * x as i64) / 255;
            let new_start = log.delete_records_before(target).unwrap();
            model.log_start = model.log_start.max(target);
            prop_assert_eq!(new_start, model.log_start);
        }
        Op::Reopen => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn memory_log_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let log = MemoryLog::new(config());
        let mut model = Model::default();
        for op in &ops {
            apply(&log, &mut model, op)?;
            check(&log, &model)?;
        }
    }

    #[test]
    fn file_log_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topic-0");
        let mut log = FileLog::open(&path, config()).unwrap();
        let mut model = Model::default();
        for op in &ops {
            if let Op::Reopen = op {
                drop(log);
                log = FileLog::open(&path, config()).unwrap();
            }
            apply(&log, &mut model, op)?;
            check(&log, &model)?;
        }
    }
}
