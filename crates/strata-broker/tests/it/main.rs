//! strata-broker's integration tests, one module per file, linked into one test binary (one
//! link of the dependency graph instead of one per file).

mod common;
mod error_codes;
mod framing;
mod malformed;
mod replication_model;
