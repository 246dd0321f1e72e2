//! The names of Strata's one extension of the Kafka protocol, offset-preserving mirror appends
//! (`Preserve` mode), which both ends must spell alike: the broker (`strata_broker::mirror_target`)
//! and the mirror (`strata_mirror::preserve`).

/// The topic config that marks a mirror target; its value is the source cluster's alias.
pub const MIRROR_SOURCE_CONFIG: &str = "strata.mirror.source";

/// The client id of `strata-mirror`'s connections to the target in `Preserve` mode.
pub const PRESERVE_CLIENT_ID: &str = "strata-mirror-preserve";
