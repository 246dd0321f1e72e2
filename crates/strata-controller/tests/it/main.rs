//! strata-controller's integration tests, one module per file, linked into one test binary (one
//! link of the dependency graph instead of one per file).

mod quorum;
mod raft_store;
