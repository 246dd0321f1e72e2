//! Kafka's text form of a UUID (topic ids, `cluster.id`), as `org.apache.kafka.common.Uuid`
//! prints and parses it: the 16 bytes in URL-safe base64 without padding, 22 characters.
//! Pure: no I/O.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

/// `id` as Kafka prints it (`kafka-topics --describe`, `kafka-storage random-uuid`).
pub fn kafka_uuid_string(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// Parses Kafka's text form; `None` unless `text` is 22 characters of URL-safe base64 that
/// decode to 16 bytes.
pub fn parse_kafka_uuid(text: &str) -> Option<Uuid> {
    if text.len() != 22 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    Uuid::from_slice(&bytes).ok()
}

/// A new random id as Kafka's `Uuid.randomUuid()` makes one: version 4, and drawn again when
/// its text starts with `-` (Kafka's tools would read such an id as an option) or it is one of
/// the ids Kafka reserves (nil, and `AAAAAAAAAAAAAAAAAAAAAQ` of the metadata topic).
pub fn random_kafka_uuid() -> Uuid {
    loop {
        let id = Uuid::new_v4();
        if id.as_u128() > 1 && !kafka_uuid_string(id).starts_with('-') {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_parses_as_kafka_does() {
        // kafka-topics prints this topic id for 18c188b7-a31e-479c-a168-d173c63f095c.
        let id = Uuid::from_u128(0x18c188b7_a31e_479c_a168_d173c63f095c);
        assert_eq!(kafka_uuid_string(id), "GMGIt6MeR5yhaNFzxj8JXA");
        assert_eq!(parse_kafka_uuid("GMGIt6MeR5yhaNFzxj8JXA"), Some(id));
        assert_eq!(
            kafka_uuid_string(Uuid::from_u128(1)),
            "AAAAAAAAAAAAAAAAAAAAAQ"
        );
    }

    #[test]
    fn refuses_what_is_not_an_id() {
        assert_eq!(parse_kafka_uuid(""), None);
        assert_eq!(parse_kafka_uuid("GMGIt6MeR5yhaNFzxj8JX"), None, "21 chars");
        assert_eq!(
            parse_kafka_uuid("GMGIt6MeR5yhaNFzxj8JXA=="),
            None,
            "padding"
        );
        assert_eq!(
            parse_kafka_uuid("GMGIt6MeR5yhaNFzxj8J+A"),
            None,
            "not URL-safe"
        );
        assert_eq!(
            parse_kafka_uuid("18c188b7-a31e-479c-a168-d173c63f095c"),
            None
        );
    }

    #[test]
    fn random_ids_are_usable() {
        for _ in 0..200 {
            let text = kafka_uuid_string(random_kafka_uuid());
            assert_eq!(text.len(), 22);
            assert!(!text.starts_with('-'), "{text}");
            assert!(parse_kafka_uuid(&text).is_some());
        }
    }
}
