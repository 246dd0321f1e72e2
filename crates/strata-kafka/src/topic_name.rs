//! Kafka's topic-name rule (`org.apache.kafka.common.internals.Topic.validate`): 1 to 249
//! characters of `[a-zA-Z0-9._-]`, neither `.` nor `..`. The one place that states it; the
//! broker refuses CreateTopics with these messages, the operator turns them into a condition,
//! and the `KafkaTopic` schema's pattern is checked against it by a test in `strata-api`.

/// Longest topic name Kafka accepts.
pub const MAX_LEN: usize = 249;

/// Whether `c` may appear in a topic name (also in names built from topic names, such as a
/// mirror's source-cluster alias).
pub fn is_legal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Checks `name`; the error is Kafka's own message for the first rule broken.
pub fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_LEN {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {MAX_LEN} characters, topic name: {name}"
        ));
    }
    if !name.chars().all(is_legal_char) {
        return Err(format!(
            "Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate("orders.v1_eu-west").is_ok());
        assert!(validate("").is_err());
        assert!(validate(".").is_err());
        assert!(validate("..").is_err());
        assert!(validate("...").is_ok());
        assert!(validate("has space").is_err());
        assert!(validate("é").is_err());
        assert!(validate(&"x".repeat(250)).is_err());
        assert!(validate(&"x".repeat(249)).is_ok());
    }
}
