//! Kafka's `__consumer_offsets` record format, byte for byte, so that the topic can be read by
//! Kafka tooling and mirrored to a Kafka cluster. Pure encode/decode, no I/O.
//!
//! Written: `OffsetCommitKey` v1 (`int16 1, string group, string topic, int32 partition`),
//! `OffsetCommitValue` v3 (`int16 3, int64 offset, int32 leader_epoch, string metadata,
//! int64 commit_timestamp`), `GroupMetadataKey` v2 (`int16 2, string group`) and
//! `GroupMetadataValue` v3 (`int16 3, string protocol_type, int32 generation, nullable string
//! protocol, nullable string leader, int64 current_state_timestamp, [member_id, nullable
//! group_instance_id, client_id, client_host, int32 rebalance_timeout, int32 session_timeout,
//! bytes subscription, bytes assignment]`). Read: offset values v0-v3 and group values v0-v3
//! (the non-flexible versions). Strings are int16-length UTF-8, bytes and arrays int32-length.

use bytes::{BufMut, Bytes, BytesMut};

/// A record that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The buffer ended inside a field.
    #[error("record truncated")]
    Truncated,
    /// A string field is not UTF-8.
    #[error("record string is not UTF-8")]
    NotUtf8,
    /// A negative length where one is not allowed.
    #[error("invalid length {0}")]
    InvalidLength(i64),
    /// A schema version this code does not read.
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion {
        /// Which schema.
        what: &'static str,
        /// The version found.
        version: i16,
    },
}

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// A committed offset (key versions 0 and 1).
    Offset {
        /// Group id.
        group: String,
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// Group metadata (key version 2).
    GroupMetadata {
        /// Group id.
        group: String,
    },
}

/// A committed offset value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The committed offset.
    pub offset: i64,
    /// Leader epoch of the committed offset, -1 when unknown.
    pub leader_epoch: i32,
    /// Client-supplied metadata.
    pub metadata: String,
    /// When the commit was received, ms since the epoch.
    pub commit_timestamp: i64,
}

/// One member in a group metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadataValue {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// Client id of the member's connection.
    pub client_id: String,
    /// Client host of the member's connection.
    pub client_host: String,
    /// Rebalance timeout, ms.
    pub rebalance_timeout_ms: i32,
    /// Session timeout, ms.
    pub session_timeout_ms: i32,
    /// Metadata of the member for the selected protocol.
    pub subscription: Bytes,
    /// Assignment of the member.
    pub assignment: Bytes,
}

/// Group metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// Protocol type ("consumer", "connect", ...); empty for a group that never had members.
    pub protocol_type: String,
    /// Current generation.
    pub generation: i32,
    /// Selected protocol.
    pub protocol: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// When the group entered its state, ms since the epoch (-1 when unknown).
    pub current_state_timestamp: i64,
    /// Members and their assignments.
    pub members: Vec<MemberMetadataValue>,
}

fn put_string(buf: &mut BytesMut, s: &str) {
    // Lengths above i16::MAX cannot come from the protocol (its strings are int16-length too).
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    buf.put_i16(len);
    buf.put_slice(&s.as_bytes()[..len as usize]);
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
    buf.put_slice(b);
}

/// Key of a committed offset (`OffsetCommitKey` v1).
pub fn encode_offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    put_string(&mut buf, group);
    put_string(&mut buf, topic);
    buf.put_i32(partition);
    buf.freeze()
}

/// Value of a committed offset (`OffsetCommitValue` v3).
pub fn encode_offset_value(value: &OffsetValue) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(3);
    buf.put_i64(value.offset);
    buf.put_i32(value.leader_epoch);
    put_string(&mut buf, &value.metadata);
    buf.put_i64(value.commit_timestamp);
    buf.freeze()
}

/// Key of group metadata (`GroupMetadataKey` v2).
pub fn encode_group_key(group: &str) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(2);
    put_string(&mut buf, group);
    buf.freeze()
}

/// Value of group metadata (`GroupMetadataValue` v3).
pub fn encode_group_value(value: &GroupMetadataValue) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(3);
    put_string(&mut buf, &value.protocol_type);
    buf.put_i32(value.generation);
    put_nullable_string(&mut buf, value.protocol.as_deref());
    put_nullable_string(&mut buf, value.leader.as_deref());
    buf.put_i64(value.current_state_timestamp);
    buf.put_i32(i32::try_from(value.members.len()).unwrap_or(i32::MAX));
    for m in &value.members {
        put_string(&mut buf, &m.member_id);
        put_nullable_string(&mut buf, m.group_instance_id.as_deref());
        put_string(&mut buf, &m.client_id);
        put_string(&mut buf, &m.client_host);
        buf.put_i32(m.rebalance_timeout_ms);
        buf.put_i32(m.session_timeout_ms);
        put_bytes(&mut buf, &m.subscription);
        put_bytes(&mut buf, &m.assignment);
    }
    buf.freeze()
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.buf.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let b = self.take(len as usize)?;
        let s = std::str::from_utf8(b).map_err(|_| RecordError::NotUtf8)?;
        Ok(Some(s.to_owned()))
    }

    fn string(&mut self) -> Result<String, RecordError> {
        self.nullable_string()?
            .ok_or(RecordError::InvalidLength(-1))
    }

    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }
}

/// Decodes a record key (offset keys v0/v1, group keys v2).
pub fn decode_key(key: &[u8]) -> Result<RecordKey, RecordError> {
    let mut r = Reader { buf: key };
    match r.i16()? {
        0 | 1 => Ok(RecordKey::Offset {
            group: r.string()?,
            topic: r.string()?,
            partition: r.i32()?,
        }),
        2 => Ok(RecordKey::GroupMetadata { group: r.string()? }),
        version => Err(RecordError::UnsupportedVersion {
            what: "key",
            version,
        }),
    }
}

/// Decodes a committed offset value, versions 0 to 3.
pub fn decode_offset_value(value: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut r = Reader { buf: value };
    let version = r.i16()?;
    match version {
        0..=2 => {
            let offset = r.i64()?;
            let metadata = r.string()?;
            let commit_timestamp = r.i64()?;
            Ok(OffsetValue {
                offset,
                leader_epoch: -1,
                metadata,
                commit_timestamp,
            })
        }
        3 => Ok(OffsetValue {
            offset: r.i64()?,
            leader_epoch: r.i32()?,
            metadata: r.string()?,
            commit_timestamp: r.i64()?,
        }),
        version => Err(RecordError::UnsupportedVersion {
            what: "offset value",
            version,
        }),
    }
}

/// Decodes a group metadata value, versions 0 to 3.
pub fn decode_group_value(value: &[u8]) -> Result<GroupMetadataValue, RecordError> {
    let mut r = Reader { buf: value };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnsupportedVersion {
            what: "group metadata value",
            version,
        });
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    let mut members = Vec::new();
    for _ in 0..count.max(0) {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { Some(r.i32()?) } else { None };
        let session_timeout_ms = r.i32()?;
        members.push(MemberMetadataValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            // v0 had no rebalance timeout: Kafka used the session timeout for both.
            rebalance_timeout_ms: rebalance_timeout_ms.unwrap_or(session_timeout_ms),
            session_timeout_ms,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_key_golden() {
        let key = encode_offset_key("g", "t", 3);
        assert_eq!(&key[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3][..]);
        assert_eq!(
            decode_key(&key),
            Ok(RecordKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3
            })
        );
    }

    #[test]
    fn offset_value_golden() {
        let value = OffsetValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_timestamp: 1000,
        };
        let bytes = encode_offset_value(&value);
        assert_eq!(
            &bytes[..],
            &[
                0, 3, // version
                0, 0, 0, 0, 0, 0, 0, 42, // offset
                0, 0, 0, 7, // leader epoch
                0, 1, b'm', // metadata
                0, 0, 0, 0, 0, 0, 3, 232, // commit timestamp
            ][..]
        );
        assert_eq!(decode_offset_value(&bytes), Ok(value));
    }

    #[test]
    fn offset_value_v1_from_older_kafka_is_read() {
        // v1: offset, metadata, commit timestamp, expire timestamp.
        let bytes = [
            0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 10,
        ];
        let v = decode_offset_value(&bytes);
        assert_eq!(
            v,
            Ok(OffsetValue {
                offset: 5,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 9
            })
        );
    }

    #[test]
    fn group_key_and_value_golden() {
        assert_eq!(&encode_group_key("g")[..], &[0, 2, 0, 1, b'g'][..]);
        let value = GroupMetadataValue {
            protocol_type: "c".into(),
            generation: 2,
            protocol: Some("r".into()),
            leader: None,
            current_state_timestamp: 1,
            members: vec![MemberMetadataValue {
                member_id: "m".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "h".into(),
                rebalance_timeout_ms: 5,
                session_timeout_ms: 6,
                subscription: Bytes::from_static(&[1]),
                assignment: Bytes::from_static(&[2, 3]),
            }],
        };
        let bytes = encode_group_value(&value);
        assert_eq!(
            &bytes[..],
            &[
                0, 3, // version
                0, 1, b'c', // protocol type
                0, 0, 0, 2, // generation
                0, 1, b'r', // protocol
                255, 255, // leader: null
                0, 0, 0, 0, 0, 0, 0, 1, // current state timestamp
                0, 0, 0, 1, // one member
                0, 1, b'm', 255, 255, 0, 1, b'c', 0, 1, b'h', // ids
                0, 0, 0, 5, 0, 0, 0, 6, // timeouts
                0, 0, 0, 1, 1, // subscription
                0, 0, 0, 2, 2, 3, // assignment
            ][..]
        );
        assert_eq!(decode_group_value(&bytes), Ok(value));
    }

    #[test]
    fn truncated_and_unknown_records_are_errors() {
        let key = encode_offset_key("group", "topic", 0);
        for cut in 0..key.len() {
            assert!(decode_key(&key[..cut]).is_err());
        }
        assert!(matches!(
            decode_key(&[0, 9]),
            Err(RecordError::UnsupportedVersion { .. })
        ));
        assert!(decode_offset_value(&[0, 4]).is_err());
        assert!(decode_group_value(&[0, 3, 0, 5, b'a']).is_err());
    }
}
