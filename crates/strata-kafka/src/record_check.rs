//! The structure of every record inside a magic-2 batch, checked the way Kafka's broker reads a
//! produced batch before appending it (`LogValidator`, with its skip-key-value iterator): the
//! batch holds exactly its declared number of records, each record's varint length covers exactly
//! its fields, key, value and header lengths stay inside the record, header counts and header key
//! lengths are not negative, and nothing follows the last record. Negative key, value and header
//! value lengths mean null, as Kafka reads them.
//!
//! Nothing is decoded into values and nothing is sized by a count: keys and values are skipped,
//! and a compressed payload is streamed through its decompressor (gzip, lz4, zstd) with the bound
//! of [`crate::records::uncompressed_limit`], so checking a batch costs a fixed amount of memory
//! whatever it claims. Snappy payloads are decompressed whole (their block format announces its
//! length, which is checked against the same bound first). Pure: no state, no I/O.

use std::io::{BufRead, BufReader, Read};

use kafka_protocol::records::Compression;

use crate::records::{snappy, uncompressed_limit};

/// What [`check_records`] counted in a well-formed batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordsCheck {
    pub records: u32,
    /// Records whose key is null.
    pub null_keys: u32,
}

/// Why a batch's records were refused.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// The records do not have the structure their lengths and counts claim: Kafka answers
    /// INVALID_RECORD.
    #[error("{0}")]
    Malformed(String),
    /// The compressed payload does not decompress, or expands beyond its bound.
    #[error("{0}")]
    Decompression(String),
}

/// Checks the `count` records of a batch whose records section (everything after the 61-byte
/// header) is `payload`, compressed with `compression`.
pub fn check_records(
    payload: &[u8],
    count: i32,
    compression: Compression,
) -> Result<RecordsCheck, RecordsError> {
    let count = u32::try_from(count)
        .map_err(|_| RecordsError::Malformed(format!("negative record count {count}")))?;
    let limit = uncompressed_limit(payload.len());
    match compression {
        Compression::None => walk(payload, count),
        Compression::Gzip => walk_stream(flate2::read::MultiGzDecoder::new(payload), count, limit),
        Compression::Lz4 => {
            let decoder = lz4::Decoder::new(payload).map_err(|e| decompression("lz4", &e))?;
            walk_stream(decoder, count, limit)
        }
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::new(payload).map_err(|e| decompression("zstd", &e))?;
            walk_stream(decoder, count, limit)
        }
        Compression::Snappy => {
            let data =
                snappy(payload, limit).map_err(|e| RecordsError::Decompression(e.to_string()))?;
            walk(&data[..], count)
        }
    }
}

fn decompression(codec: &str, e: &dyn std::fmt::Display) -> RecordsError {
    RecordsError::Decompression(format!("{codec}: {e}"))
}

/// Streams a decompressor's output through the walk, failing once it passes `limit` bytes.
fn walk_stream(reader: impl Read, count: u32, limit: usize) -> Result<RecordsCheck, RecordsError> {
    let bounded = Bounded {
        inner: reader,
        left: limit as u64,
        limit,
    };
    walk(BufReader::with_capacity(16 * 1024, bounded), count)
}

/// A reader that fails (rather than ends) when its inner reader yields more than `limit` bytes,
/// so that a walk can tell a bomb from a truncated payload.
struct Bounded<R> {
    inner: R,
    left: u64,
    limit: usize,
}

/// The error kind [`Bounded`] fails with; any other error comes from the decompressor.
const TOO_LARGE: std::io::ErrorKind = std::io::ErrorKind::FileTooLarge;

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One byte more than allowed means the payload expands beyond the limit.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::new(
                    TOO_LARGE,
                    format!(
                        "batch expands beyond {} bytes, the limit for its compressed size",
                        self.limit
                    ),
                )),
            };
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// The records section as the walk reads it: bytes in order, with the position of the record
/// being read so that no field crosses the record's declared length.
struct Records<B> {
    input: B,
    /// Bytes left in the current record.
    left_in_record: usize,
}

/// Why reading stopped: the input's own error, or the end of the input / the record.
enum Stop {
    Io(std::io::Error),
    End(&'static str),
}

impl<B: BufRead> Records<B> {
    fn fill(&mut self) -> Result<&[u8], Stop> {
        match self.input.fill_buf() {
            Ok(buf) => Ok(buf),
            Err(e) => Err(Stop::Io(e)),
        }
    }

    fn byte(&mut self) -> Result<u8, Stop> {
        if self.left_in_record == 0 {
            return Err(Stop::End("a field runs past the end of its record"));
        }
        let b = *self
            .fill()?
            .first()
            .ok_or(Stop::End("the records end inside a record"))?;
        self.input.consume(1);
        self.left_in_record -= 1;
        Ok(b)
    }

    /// Skips `n` bytes of the current record without copying them.
    fn skip(&mut self, n: usize) -> Result<(), Stop> {
        if n > self.left_in_record {
            return Err(Stop::End("a length runs past the end of its record"));
        }
        let mut left = n;
        while left > 0 {
            let available = self.fill()?.len();
            if available == 0 {
                return Err(Stop::End("the records end inside a record"));
            }
            let step = available.min(left);
            self.input.consume(step);
            left -= step;
        }
        self.left_in_record -= n;
        Ok(())
    }

    /// The raw (unzigzagged) bits of a varint of at most `max_bytes` bytes, as Kafka's
    /// `ByteUtils` reads them (bits beyond the type are dropped).
    fn raw_varint(&mut self, max_bytes: u32) -> Result<u64, Stop> {
        let mut raw: u64 = 0;
        for i in 0..max_bytes {
            let b = self.byte()?;
            raw |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(raw);
            }
        }
        Err(Stop::End("a varint is longer than its type"))
    }

    fn varlong(&mut self) -> Result<i64, Stop> {
        let raw = self.raw_varint(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn varint(&mut self) -> Result<i32, Stop> {
        let raw = self.raw_varint(5)? as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// A byte length: null (any negative length, as Kafka reads them) or skipped.
    fn skip_nullable(&mut self) -> Result<bool, Stop> {
        let len = self.varint()?;
        match usize::try_from(len) {
            Ok(len) => self.skip(len).map(|()| false),
            Err(_) => Ok(true),
        }
    }

    /// Whether the input is exhausted (no byte follows).
    fn at_end(&mut self) -> Result<bool, Stop> {
        Ok(self.fill()?.is_empty())
    }
}

fn walk(input: impl BufRead, count: u32) -> Result<RecordsCheck, RecordsError> {
    let mut r = Records {
        input,
        left_in_record: 0,
    };
    let mut check = RecordsCheck::default();
    // Each record takes at least one byte, so the loop ends with the input whatever the count.
    for i in 0..count {
        if r.at_end().map_err(|s| stopped(s, i))? {
            return Err(RecordsError::Malformed(format!(
                "the batch declares {count} records and holds {i}"
            )));
        }
        // The record's length is read before the record starts.
        r.left_in_record = 5;
        let len = r.varint().map_err(|s| stopped(s, i))?;
        r.left_in_record = usize::try_from(len).map_err(|_| {
            RecordsError::Malformed(format!("record {i} has a negative length {len}"))
        })?;
        if record(&mut r).map_err(|s| stopped(s, i))? {
            check.null_keys += 1;
        }
        if r.left_in_record != 0 {
            return Err(RecordsError::Malformed(format!(
                "record {i} declares {len} bytes and its fields take {}",
                len as usize - r.left_in_record
            )));
        }
        check.records += 1;
    }
    if !r.at_end().map_err(|s| stopped(s, count))? {
        return Err(RecordsError::Malformed(format!(
            "bytes follow the last of the {count} records the batch declares"
        )));
    }
    Ok(check)
}

/// Reads one record's fields; true when its key is null.
fn record<B: BufRead>(r: &mut Records<B>) -> Result<bool, Stop> {
    r.byte()?; // attributes
    r.varlong()?; // timestamp delta
    r.varint()?; // offset delta
    let null_key = r.skip_nullable()?;
    r.skip_nullable()?; // value
    let headers = r.varint()?;
    if headers < 0 {
        return Err(Stop::End("a record has a negative header count"));
    }
    // Each header takes at least two bytes, so this ends with the record whatever the count.
    for _ in 0..headers {
        let key_len = r.varint()?;
        let key_len = usize::try_from(key_len)
            .map_err(|_| Stop::End("a header key has a negative length"))?;
        r.skip(key_len)?;
        r.skip_nullable()?; // header value
    }
    Ok(null_key)
}

fn stopped(stop: Stop, record: u32) -> RecordsError {
    match stop {
        Stop::Io(e) if e.kind() == TOO_LARGE => RecordsError::Decompression(e.to_string()),
        Stop::Io(e) => RecordsError::Decompression(format!("decompressing record {record}: {e}")),
        Stop::End(what) => RecordsError::Malformed(format!("record {record}: {what}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    const HEADER_LEN: usize = 61;

    fn varint(v: i64, out: &mut Vec<u8>) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    /// Record fields (after the length) with the given key, value and raw header section.
    fn fields(key: Option<&[u8]>, value: Option<&[u8]>, headers: &[u8]) -> Vec<u8> {
        let mut f = vec![0];
        varint(5, &mut f);
        varint(0, &mut f);
        for part in [key, value] {
            match part {
                Some(p) => {
                    varint(p.len() as i64, &mut f);
                    f.extend_from_slice(p);
                }
                None => varint(-1, &mut f),
            }
        }
        f.extend_from_slice(headers);
        f
    }

    fn with_length(fields: &[u8], len: i64) -> Vec<u8> {
        let mut r = Vec::new();
        varint(len, &mut r);
        r.extend_from_slice(fields);
        r
    }

    fn good() -> Vec<u8> {
        let f = fields(Some(b"k"), Some(b"v"), &[0]);
        with_length(&f, f.len() as i64)
    }

    fn header_section(count: i64, headers: &[(i64, &[u8], i64, &[u8])]) -> Vec<u8> {
        let mut h = Vec::new();
        varint(count, &mut h);
        for (kl, k, vl, v) in headers {
            varint(*kl, &mut h);
            h.extend_from_slice(k);
            varint(*vl, &mut h);
            h.extend_from_slice(v);
        }
        h
    }

    fn malformed(payload: &[u8], count: i32) -> String {
        match check_records(payload, count, Compression::None) {
            Err(RecordsError::Malformed(m)) => m,
            other => panic!("expected a malformed batch, got {other:?}"),
        }
    }

    #[test]
    fn well_formed_records_pass_and_null_keys_are_counted() {
        let null_key = fields(None, Some(b"v"), &header_section(1, &[(1, b"h", -1, b"")]));
        let mut payload = good();
        payload.extend(with_length(&null_key, null_key.len() as i64));
        // Any negative key or value length is null, as Kafka reads it.
        let odd = fields(None, None, &[0]);
        let mut odd = odd.clone();
        odd[3] = 9; // key length -5 (zigzag 9)
        payload.extend(with_length(&odd, odd.len() as i64));
        let check = check_records(&payload, 3, Compression::None).unwrap();
        assert_eq!(
            check,
            RecordsCheck {
                records: 3,
                null_keys: 2
            }
        );
        assert_eq!(
            check_records(&[], 0, Compression::None).unwrap(),
            RecordsCheck::default()
        );
    }

    #[test]
    fn each_shape_of_a_bad_count_or_length_is_malformed() {
        let g = good();
        let f = fields(Some(b"k"), Some(b"v"), &[0]);
        let two = [g.clone(), g.clone()].concat();
        let cases: Vec<(&str, Vec<u8>, i32)> = vec![
            ("count above the records", g.clone(), 2),
            ("huge count", g.clone(), i32::MAX),
            ("count below the records", two, 1),
            ("trailing bytes", [g.clone(), vec![0, 0]].concat(), 1),
            ("length beyond the batch", with_length(&f, 100), 1),
            ("length short of the fields", with_length(&f, 3), 1),
            ("negative record length", with_length(&f, -1), 1),
            (
                "key beyond the record",
                {
                    let mut k = f.clone();
                    k[3] = 100; // key length 50
                    with_length(&k, k.len() as i64)
                },
                1,
            ),
            (
                "huge header count",
                {
                    let h = fields(Some(b"k"), Some(b"v"), &header_section(0x3FFF_FFFF, &[]));
                    with_length(&h, h.len() as i64)
                },
                1,
            ),
            (
                "negative header count",
                {
                    let h = fields(Some(b"k"), Some(b"v"), &header_section(-1, &[]));
                    with_length(&h, h.len() as i64)
                },
                1,
            ),
            (
                "negative header key length",
                {
                    let h = fields(
                        Some(b"k"),
                        Some(b"v"),
                        &header_section(1, &[(-1, b"", 1, b"x")]),
                    );
                    with_length(&h, h.len() as i64)
                },
                1,
            ),
            (
                "header value beyond the record",
                {
                    let h = fields(
                        Some(b"k"),
                        Some(b"v"),
                        &header_section(1, &[(1, b"h", 40, b"x")]),
                    );
                    with_length(&h, h.len() as i64)
                },
                1,
            ),
            (
                "bytes after the last header",
                {
                    let h = [f.clone(), vec![0]].concat();
                    with_length(&h, h.len() as i64)
                },
                1,
            ),
            (
                "varint too long",
                [vec![0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], f.clone()].concat(),
                1,
            ),
        ];
        for (what, payload, count) in cases {
            let message = malformed(&payload, count);
            assert!(!message.is_empty(), "{what}");
        }
    }

    fn record(offset: i64, value: Vec<u8>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: offset as i32,
            timestamp: 1_700_000_000_000 + offset,
            key: (offset % 2 == 0).then(|| Bytes::from(format!("k{offset}"))),
            value: Some(Bytes::from(value)),
            headers: [(
                kafka_protocol::protocol::StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"x")),
            )]
            .into_iter()
            .collect(),
        }
    }

    /// (records section, count) of a batch encoded by `kafka-protocol`.
    fn encoded(records: &[Record], compression: Compression) -> (Bytes, i32) {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        let count = i32::from_be_bytes([buf[57], buf[58], buf[59], buf[60]]);
        (buf.freeze().slice(HEADER_LEN..), count)
    }

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn batches_of_every_codec_pass_and_a_wrong_count_does_not() {
        let records: Vec<Record> = (0..40).map(|i| record(i, vec![i as u8; 300])).collect();
        for codec in CODECS {
            let (payload, count) = encoded(&records, codec);
            assert_eq!(
                check_records(&payload, count, codec).unwrap(),
                RecordsCheck {
                    records: 40,
                    null_keys: 20
                },
                "{codec:?}"
            );
            assert!(
                matches!(
                    check_records(&payload, count + 1, codec),
                    Err(RecordsError::Malformed(_))
                ),
                "{codec:?}"
            );
            assert!(
                matches!(
                    check_records(&payload, i32::MAX, codec),
                    Err(RecordsError::Malformed(_))
                ),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn a_bomb_or_a_broken_stream_is_a_decompression_error() {
        let (bomb, count) = encoded(&[record(0, vec![0; 40 << 20])], Compression::Zstd);
        let err = check_records(&bomb, count, Compression::Zstd).unwrap_err();
        assert!(
            matches!(&err, RecordsError::Decompression(m) if m.contains("expands beyond")),
            "{err}"
        );
        let (gzip, count) = encoded(&[record(0, vec![1; 1000])], Compression::Gzip);
        let cut = &gzip[..gzip.len() - 8];
        assert!(matches!(
            check_records(cut, count, Compression::Gzip),
            Err(RecordsError::Decompression(_) | RecordsError::Malformed(_))
        ));
        assert!(matches!(
            check_records(b"not gzip at all", 1, Compression::Gzip),
            Err(RecordsError::Decompression(_))
        ));
    }
}
