//! strata-mirror's integration tests, one module per file, linked into one test binary (one
//! link of the dependency graph instead of one per file).

mod binary;
mod common;
mod flow_spec;
mod mirror;
mod preserve;
