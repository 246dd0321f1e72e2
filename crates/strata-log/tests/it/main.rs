//! strata-log's integration tests, one module per file, linked into one test binary (one
//! link of the dependency graph instead of one per file). `open_files.rs` stays apart: the
//! budget of open files it sets is process-wide.

mod common;
mod file_log;
mod model;
mod scenarios;
