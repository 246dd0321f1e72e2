//! The only place that maps a group id to its `__consumer_offsets` partition, exactly as Kafka
//! does: `Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions`.

/// Java's `String.hashCode()`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, wrapping.
pub fn java_string_hash_code(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// Partition of `__consumer_offsets` that holds `group_id`. `num_partitions` below 1 is treated as 1.
pub fn partition_for(group_id: &str, num_partitions: i32) -> i32 {
    // Kafka's Utils.abs maps i32::MIN to 0 (`n & 0x7fffffff`), unlike i32::abs.
    let positive = java_string_hash_code(group_id) & 0x7fff_ffff;
    positive % num_partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_code_matches_java() {
        assert_eq!(java_string_hash_code(""), 0);
        assert_eq!(java_string_hash_code("a"), 97);
        assert_eq!(java_string_hash_code("abc"), 96354);
        assert_eq!(java_string_hash_code("hello"), 99162322);
        // Overflowing strings wrap like Java ints.
        assert_eq!(java_string_hash_code("polygenelubricants"), i32::MIN);
        assert_eq!(java_string_hash_code("test-group"), 627_841_412);
        // Non-BMP characters hash as two UTF-16 surrogates.
        assert_eq!(java_string_hash_code("\u{1F600}"), 0xD83D * 31 + 0xDE00);
    }

    #[test]
    fn partition_matches_kafka() {
        assert_eq!(partition_for("abc", 50), 96354 % 50);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("test-group", 50), 12);
        assert_eq!(partition_for("console-consumer-12345", 50), 6);
        assert_eq!(partition_for("anything", 1), 0);
        assert_eq!(partition_for("anything", 0), 0);
    }
}
