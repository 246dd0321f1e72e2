//! The mirror's bookkeeping records in MirrorMaker 2's binary layout, so that tools reading MM2
//! topics (e.g. `RemoteClusterUtils`, `MirrorClient`) read ours. Pure: encode and decode only.
//!
//! The layout is Kafka's `Struct` serialization: strings are an i16 length and UTF-8 bytes,
//! integers big-endian; values that MM2 versions carry an i16 version header (0) first.
//! - [`OffsetSync`]: key `(topic: string, partition: i32)`, value `(upstreamOffset: i64,
//!   downstreamOffset: i64)`, no version header; `topic` is the source topic.
//! - [`Checkpoint`]: key `(group: string, topic: string, partition: i32)`, value `version: i16`
//!   then `(upstreamOffset: i64, downstreamOffset: i64, metadata: string)`; `topic` is the
//!   remote (target) topic.
//! - [`Heartbeat`]: key `(sourceClusterAlias: string, targetClusterAlias: string)`, value
//!   `version: i16` then `(timestamp: i64)`.

use bytes::{BufMut, Bytes, BytesMut};

/// A record that does not have the layout it should.
#[derive(Debug, thiserror::Error)]
#[error("malformed {what} record: {reason}")]
pub struct DecodeError {
    pub what: &'static str,
    pub reason: String,
}

/// Source offset `upstream` of a partition was written at target offset `downstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetSync {
    pub topic: String,
    pub partition: i32,
    pub upstream: i64,
    pub downstream: i64,
}

/// A consumer group's committed source offset and its translation on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub group: String,
    /// The remote topic name on the target.
    pub topic: String,
    pub partition: i32,
    pub upstream: i64,
    pub downstream: i64,
    pub metadata: String,
}

/// Liveness of a flow: written to the target's `heartbeats` topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub source_alias: String,
    pub target_alias: String,
    pub timestamp: i64,
}

fn put_str(b: &mut BytesMut, s: &str) {
    let bytes = s.as_bytes();
    // Names here are topic, group and alias names, far below i16::MAX bytes.
    let len = i16::try_from(bytes.len()).unwrap_or(i16::MAX);
    b.put_i16(len);
    b.put_slice(&bytes[..len as usize]);
}

struct Reader<'a> {
    what: &'static str,
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(what: &'static str, bytes: &'a [u8]) -> Self {
        Reader { what, bytes }
    }
    fn fail(&self, reason: &str) -> DecodeError {
        DecodeError {
            what: self.what,
            reason: reason.to_string(),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(self.fail("truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, DecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        let len = self.i16()?;
        if len < 0 {
            return Err(self.fail("negative string length"));
        }
        let b = self.take(len as usize)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.fail("string is not UTF-8"))
    }
    fn version(&mut self) -> Result<(), DecodeError> {
        match self.i16()? {
            0 => Ok(()),
            v => Err(self.fail(&format!("unknown version {v}"))),
        }
    }
}

impl OffsetSync {
    pub fn key(&self) -> Bytes {
        let mut b = BytesMut::new();
        put_str(&mut b, &self.topic);
        b.put_i32(self.partition);
        b.freeze()
    }
    pub fn value(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(16);
        b.put_i64(self.upstream);
        b.put_i64(self.downstream);
        b.freeze()
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<OffsetSync, DecodeError> {
        let mut k = Reader::new("offset sync", key);
        let mut v = Reader::new("offset sync", value);
        Ok(OffsetSync {
            topic: k.string()?,
            partition: k.i32()?,
            upstream: v.i64()?,
            downstream: v.i64()?,
        })
    }
}

impl Checkpoint {
    pub fn key(&self) -> Bytes {
        let mut b = BytesMut::new();
        put_str(&mut b, &self.group);
        put_str(&mut b, &self.topic);
        b.put_i32(self.partition);
        b.freeze()
    }
    pub fn value(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i64(self.upstream);
        b.put_i64(self.downstream);
        put_str(&mut b, &self.metadata);
        b.freeze()
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Checkpoint, DecodeError> {
        let mut k = Reader::new("checkpoint", key);
        let mut v = Reader::new("checkpoint", value);
        let (group, topic, partition) = (k.string()?, k.string()?, k.i32()?);
        v.version()?;
        Ok(Checkpoint {
            group,
            topic,
            partition,
            upstream: v.i64()?,
            downstream: v.i64()?,
            metadata: v.string()?,
        })
    }
}

impl Heartbeat {
    pub fn key(&self) -> Bytes {
        let mut b = BytesMut::new();
        put_str(&mut b, &self.source_alias);
        put_str(&mut b, &self.target_alias);
        b.freeze()
    }
    pub fn value(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(10);
        b.put_i16(0);
        b.put_i64(self.timestamp);
        b.freeze()
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Heartbeat, DecodeError> {
        let mut k = Reader::new("heartbeat", key);
        let mut v = Reader::new("heartbeat", value);
        let (source_alias, target_alias) = (k.string()?, k.string()?);
        v.version()?;
        Ok(Heartbeat {
            source_alias,
            target_alias,
            timestamp: v.i64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_layout_is_mm2s() {
        let c = Checkpoint {
            group: "g".into(),
            topic: "a.t".into(),
            partition: 3,
            upstream: 10,
            downstream: 7,
            metadata: String::new(),
        };
        assert_eq!(
            &c.key()[..],
            &[0, 1, b'g', 0, 3, b'a', b'.', b't', 0, 0, 0, 3]
        );
        let v = c.value();
        assert_eq!(&v[..2], &[0, 0], "version header");
        assert_eq!(v.len(), 2 + 8 + 8 + 2);
        assert_eq!(Checkpoint::decode(&c.key(), &v).unwrap(), c);
    }

    #[test]
    fn offset_sync_and_heartbeat_round_trip() {
        let s = OffsetSync {
            topic: "orders".into(),
            partition: 1,
            upstream: 100,
            downstream: 42,
        };
        assert_eq!(s.value().len(), 16);
        assert_eq!(OffsetSync::decode(&s.key(), &s.value()).unwrap(), s);
        let h = Heartbeat {
            source_alias: "a".into(),
            target_alias: "b".into(),
            timestamp: 1234,
        };
        assert_eq!(Heartbeat::decode(&h.key(), &h.value()).unwrap(), h);
    }

    #[test]
    fn truncated_records_are_errors() {
        assert!(OffsetSync::decode(&[0, 5, b'a'], &[]).is_err());
        assert!(Checkpoint::decode(&[0, 0, 0, 0, 0, 0, 0, 0], &[0, 1]).is_err());
    }
}
