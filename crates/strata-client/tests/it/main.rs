//! strata-client's integration tests, one module per file, linked into one test binary (one
//! link of the dependency graph instead of one per file).

mod admin;
#[path = "../common/mod.rs"]
mod common;
mod data_path;
mod external_cluster;
mod observers;
mod placement_external;
mod retries;
mod security;
