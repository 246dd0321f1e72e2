//! Kafka's clock: every timestamp on the wire and in a record batch (CreateTime, LogAppendTime,
//! commit and expiry times, group state times) is milliseconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time as Kafka writes it: milliseconds since the Unix epoch (0 for a clock set
/// before 1970, `i64::MAX` past the year 292 million).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_is_after_2020() {
        assert!(super::now_ms() > 1_577_836_800_000);
    }
}
