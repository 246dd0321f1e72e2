//! Kafka's wire rules that every Strata crate shares, each written once: reading a
//! length-prefixed frame without trusting its length, decoding record batches with a bound on
//! what decompression may produce, checking the structure of every record a producer sends
//! (`record_check`), the topic-name rule, Kafka's configuration names and types
//! (`properties`), Kafka's millisecond clock, and the names of Strata's one protocol extension
//! (`preserve`), Kafka's ACL model and authorization rule (`acl`). Pure: no broker state, no client state, no Kubernetes.
//!
//! Every reader of untrusted bytes in the workspace (the broker's connections, the client's
//! responses, stored batches) goes through this crate, so a guard added here covers all of them.
//! The array, string and record counts inside messages are guarded one level further down, in the
//! `kafka-protocol` decoders themselves (see `vendor/kafka-protocol` and the README).

pub mod acl;
pub mod config_providers;
pub mod failover;
pub mod frame;
pub mod jaas;
pub mod preserve;
pub mod properties;
pub mod properties_file;
pub mod record_check;
pub mod records;
pub mod scram;
pub mod timestamp;
pub mod topic_name;

pub use timestamp::now_ms;
