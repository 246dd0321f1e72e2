//! Errors of the storage engine. Every variant maps onto one Kafka error code the broker returns
//! (`Io` -> KAFKA_STORAGE_ERROR, `CorruptBatch` -> CORRUPT_MESSAGE, and so on).

/// Failure of a log operation.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The disk failed underneath the log, or the process could not open a file.
    #[error("log i/o failed: {0}{hint}", hint = io_hint(.0))]
    Io(#[source] std::io::Error),
    /// A record batch fails length, structure or CRC checks.
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    /// A record is not acceptable for this log (e.g. a null key on a compacted topic).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The requested offset is outside `[log_start, log_end]`.
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// A record batch is larger than `max.message.bytes`.
    #[error("record batch exceeds max.message.bytes")]
    RecordTooLarge,
    /// An idempotent producer skipped or reordered sequence numbers.
    #[error("out of order sequence for producer {producer_id}: expected {expected}, received {received}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        received: i32,
    },
    /// An idempotent producer wrote with an epoch older than the current one (it is fenced).
    #[error("producer epoch is older than the current epoch")]
    InvalidProducerEpoch,
    /// A retried batch was detected; the log answers with the original offsets instead.
    #[error("duplicate sequence")]
    DuplicateSequence,
    /// Only magic 2 record batches are stored.
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
}

impl From<std::io::Error> for LogError {
    fn from(e: std::io::Error) -> Self {
        LogError::Io(e)
    }
}

/// What a person can do about an I/O error the log cannot deal with itself.
fn io_hint(e: &std::io::Error) -> &'static str {
    if crate::open_files::is_out_of_descriptors(e) {
        " (out of file descriptors: raise the open-files limit (`ulimit -n`, systemd \
         `LimitNOFILE`) or hold fewer partitions)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_descriptors_says_what_to_do() {
        let e = LogError::Io(std::io::Error::from_raw_os_error(24));
        let text = e.to_string();
        assert!(text.contains("open-files limit"), "{text}");
        let other = LogError::Io(std::io::Error::from_raw_os_error(5)).to_string();
        assert!(!other.contains("open-files limit"), "{other}");
    }
}
