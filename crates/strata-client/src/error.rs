//! The client's one error type and its classification. Pure: no I/O. A Kafka error code from a
//! response becomes [`Error::Kafka`] carrying Kafka's own name for it (`TOPIC_ALREADY_EXISTS`);
//! whether an error is worth retrying follows `kafka_protocol::ResponseError::is_retriable`
//! for Kafka codes and treats network failures and timeouts as retriable.

use std::io;

use kafka_protocol::ResponseError;

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker answered with a Kafka error code.
    #[error("{api} failed: {name} ({code}){}", .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        /// The API whose response carried the code (`"CreateTopics"`).
        api: &'static str,
        /// The numeric Kafka error code.
        code: i16,
        /// Kafka's name of the code (`"TOPIC_ALREADY_EXISTS"`).
        name: String,
        /// The broker's error message, when the response has one.
        message: Option<String>,
    },
    /// Reading from or writing to an established connection failed (including the broker
    /// closing it).
    #[error("connection error: {0}")]
    Io(#[source] io::Error),
    /// No TCP connection could be opened to `addr`.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// A connection attempt, a request or a delivery did not complete in time.
    #[error("timed out: {what}")]
    Timeout { what: String },
    /// A response could not be decoded or did not match the request.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No broker address is known or reachable.
    #[error("no broker available")]
    NoBrokerAvailable,
    /// The broker does not serve the API (or no version both sides speak), or the request
    /// cannot be expressed with what the broker serves.
    #[error("{api} is not supported: {reason}")]
    Unsupported { api: &'static str, reason: String },
    /// The producer was closed before the record could be delivered.
    #[error("producer closed: {0}")]
    Closed(String),
    /// TLS or SASL did not let the connection in (untrusted certificate, wrong password,
    /// mechanism not enabled): retrying would not help.
    #[error("authentication failed: {0}")]
    Authentication(String),
}

impl Clone for Error {
    /// `std::io::Error` is not `Clone`: a copy keeps its kind and message. Used where one
    /// failure must reach several waiters (every record of a failed batch).
    fn clone(&self) -> Self {
        let copy_io = |e: &io::Error| io::Error::new(e.kind(), e.to_string());
        match self {
            Error::Kafka {
                api,
                code,
                name,
                message,
            } => Error::Kafka {
                api,
                code: *code,
                name: name.clone(),
                message: message.clone(),
            },
            Error::Io(e) => Error::Io(copy_io(e)),
            Error::Connect { addr, source } => Error::Connect {
                addr: addr.clone(),
                source: copy_io(source),
            },
            Error::Timeout { what } => Error::Timeout { what: what.clone() },
            Error::Protocol(m) => Error::Protocol(m.clone()),
            Error::NoBrokerAvailable => Error::NoBrokerAvailable,
            Error::Unsupported { api, reason } => Error::Unsupported {
                api,
                reason: reason.clone(),
            },
            Error::Closed(m) => Error::Closed(m.clone()),
            Error::Authentication(m) => Error::Authentication(m.clone()),
        }
    }
}

impl Error {
    /// The error for a non-zero Kafka error code.
    pub(crate) fn kafka(api: &'static str, code: i16, message: Option<&str>) -> Error {
        Error::Kafka {
            api,
            code,
            name: error_name(code),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }
    }

    /// `Ok` for code 0, else [`Error::Kafka`].
    pub(crate) fn check(api: &'static str, code: i16, message: Option<&str>) -> Result<(), Error> {
        if code == 0 {
            Ok(())
        } else {
            Err(Error::kafka(api, code, message))
        }
    }

    /// Whether the same request may succeed when tried again: retriable Kafka codes (as Kafka
    /// classifies them), connection failures, timeouts, and no broker being reachable.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kafka { code, .. } => {
                ResponseError::try_from_code(*code).is_some_and(|e| e.is_retriable())
            }
            Error::Io(_)
            | Error::Connect { .. }
            | Error::Timeout { .. }
            | Error::NoBrokerAvailable => true,
            Error::Protocol(_)
            | Error::Unsupported { .. }
            | Error::Closed(_)
            | Error::Authentication(_) => false,
        }
    }

    /// The Kafka error code, for [`Error::Kafka`].
    pub fn code(&self) -> Option<i16> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether this is the given Kafka error (`err.is(ResponseError::TopicAlreadyExists)`).
    pub fn is(&self, e: ResponseError) -> bool {
        self.code() == Some(e.code())
    }

    /// Whether the cached cluster metadata may be what made the request fail: leadership or
    /// controller moved, a topic appeared or vanished, or the connection broke.
    pub(crate) fn invalidates_metadata(&self) -> bool {
        match self {
            Error::Kafka { code, .. } => matches!(
                ResponseError::try_from_code(*code),
                Some(
                    ResponseError::NotLeaderOrFollower
                        | ResponseError::UnknownTopicOrPartition
                        | ResponseError::FencedLeaderEpoch
                        | ResponseError::UnknownLeaderEpoch
                        | ResponseError::LeaderNotAvailable
                        | ResponseError::NotController
                        | ResponseError::UnknownTopicId
                        | ResponseError::InconsistentTopicId
                        | ResponseError::BrokerNotAvailable
                        | ResponseError::ReplicaNotAvailable
                )
            ),
            Error::Io(_) | Error::Connect { .. } | Error::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Whether a group coordinator must be looked up again.
    pub(crate) fn invalidates_coordinator(&self) -> bool {
        match self {
            Error::Kafka { code, .. } => matches!(
                ResponseError::try_from_code(*code),
                Some(
                    ResponseError::NotCoordinator
                        | ResponseError::CoordinatorNotAvailable
                        | ResponseError::CoordinatorLoadInProgress
                )
            ),
            Error::Io(_) | Error::Connect { .. } | Error::Timeout { .. } => true,
            _ => false,
        }
    }

    /// An I/O error on a connection, from a kind and a message.
    pub(crate) fn io(kind: io::ErrorKind, message: impl Into<String>) -> Error {
        Error::Io(io::Error::new(kind, message.into()))
    }
}

/// Kafka's name of an error code, as in Kafka's `Errors` enum (`UNKNOWN_TOPIC_OR_PARTITION`).
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE_{c}"),
        Some(e) => screaming_snake(&format!("{e}")),
    }
}

/// `TopicAlreadyExists` → `TOPIC_ALREADY_EXISTS`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka() {
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(error_name(37), "INVALID_PARTITIONS");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE_9999");
    }

    #[test]
    fn retriable_versus_fatal() {
        let k = |code| Error::kafka("Test", code, None);
        for retriable in [
            ResponseError::NotLeaderOrFollower,
            ResponseError::UnknownTopicOrPartition,
            ResponseError::NotController,
            ResponseError::NotCoordinator,
            ResponseError::CoordinatorLoadInProgress,
            ResponseError::LeaderNotAvailable,
            ResponseError::FencedLeaderEpoch,
            ResponseError::RequestTimedOut,
            ResponseError::NotEnoughReplicas,
        ] {
            assert!(k(retriable.code()).is_retriable(), "{retriable:?}");
        }
        for fatal in [
            ResponseError::TopicAlreadyExists,
            ResponseError::InvalidPartitions,
            ResponseError::InvalidReplicationFactor,
            ResponseError::InvalidConfig,
            ResponseError::PolicyViolation,
            ResponseError::UnsupportedVersion,
            ResponseError::IllegalGeneration,
            ResponseError::UnknownMemberId,
            ResponseError::OutOfOrderSequenceNumber,
            ResponseError::TopicAuthorizationFailed,
            ResponseError::UnknownServerError,
        ] {
            assert!(!k(fatal.code()).is_retriable(), "{fatal:?}");
        }
        assert!(!k(12345).is_retriable(), "unknown codes are fatal");
        assert!(Error::io(io::ErrorKind::ConnectionReset, "reset").is_retriable());
        assert!(Error::Timeout { what: "x".into() }.is_retriable());
        assert!(Error::Connect {
            addr: "127.0.0.1:1".into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused)
        }
        .is_retriable());
        assert!(!Error::Protocol("bad".into()).is_retriable());
        assert!(!Error::Unsupported {
            api: "Fetch",
            reason: "x".into()
        }
        .is_retriable());
    }

    #[test]
    fn codes_and_matching() {
        let e = Error::kafka("CreateTopics", 36, Some("Topic 'a' already exists."));
        assert_eq!(e.code(), Some(36));
        assert!(e.is(ResponseError::TopicAlreadyExists));
        assert!(!e.is(ResponseError::InvalidPartitions));
        let text = e.to_string();
        assert!(text.contains("CreateTopics") && text.contains("TOPIC_ALREADY_EXISTS"));
        assert!(text.contains("already exists"), "{text}");
        assert_eq!(Error::NoBrokerAvailable.code(), None);
        let copy = Error::io(io::ErrorKind::BrokenPipe, "gone").clone();
        assert!(matches!(copy, Error::Io(ref e) if e.kind() == io::ErrorKind::BrokenPipe));
    }

    #[test]
    fn metadata_invalidation() {
        assert!(Error::kafka("Produce", 6, None).invalidates_metadata());
        assert!(Error::kafka("Fetch", 74, None).invalidates_metadata());
        assert!(!Error::kafka("CreateTopics", 36, None).invalidates_metadata());
        assert!(Error::kafka("OffsetFetch", 16, None).invalidates_coordinator());
        assert!(!Error::kafka("OffsetFetch", 22, None).invalidates_coordinator());
    }
}
