//! Kafka error codes the broker answers with (names as in Kafka's `Errors`), with the refusal
//! type and string helper every answer is built with. A leaf: the handlers, the broker and its
//! cluster modules all take their codes from here.

use kafka_protocol::protocol::StrBytes;

/// A refusal: the error code and the message the client sees.
pub type Refusal = (i16, String);

/// A protocol string from any string.
pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub const NONE: i16 = 0;
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const INVALID_CONFIG: i16 = 40;
pub const INVALID_REQUEST: i16 = 42;
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
pub const POLICY_VIOLATION: i16 = 44;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
pub const SECURITY_DISABLED: i16 = 54;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const REQUEST_TIMED_OUT: i16 = 7;
pub const NOT_COORDINATOR: i16 = 16;
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
pub const NOT_CONTROLLER: i16 = 41;
pub const TOPIC_DELETION_DISABLED: i16 = 73;
pub const FENCED_LEADER_EPOCH: i16 = 74;
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
pub const INVALID_RECORD: i16 = 87;
pub const INVALID_UPDATE_VERSION: i16 = 95;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
/// KIP-1102: the client must re-bootstrap (Metadata v13+ top-level error).
pub const REBOOTSTRAP_REQUIRED: i16 = 129;
