//! strata's integration tests, one module per file, linked into one test binary (one
//! link of the dependency graph instead of one per file).

mod common;
mod dev_cluster;
mod dev_standby;
