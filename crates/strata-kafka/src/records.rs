//! Record batches (magic v2) decoded with `kafka-protocol`, with decompression done here so that
//! it has a bound: a batch of a few kilobytes must not expand to gigabytes before any size check
//! applies. A batch may expand to [`uncompressed_limit`] of its compressed size; beyond that it is
//! refused as corrupt. Every place in the workspace that looks inside a batch (compaction, the
//! offsets topic, the client's fetch path) decodes through [`decode_batch`]; the workspace's
//! `clippy.toml` forbids `kafka-protocol`'s own unbounded entry points.
//!
//! Counts inside a batch (records, headers) are checked against the bytes that remain by the
//! patched `kafka-protocol` decoders (see `vendor/kafka-protocol`).

use std::io::Read;

use bytes::{Buf, Bytes};
use kafka_protocol::records::{Compression, RecordBatchDecoder, RecordSet};

/// No batch decompresses to more than this, whatever its compressed size.
pub const MAX_UNCOMPRESSED_BATCH_BYTES: usize = 64 << 20;
/// A batch may expand to this many times its compressed size (plus [`EXPANSION_ALLOWANCE`]).
pub const MAX_EXPANSION_FACTOR: usize = 256;
/// Small batches of very compressible data (zeros, repeated JSON) may always expand this far.
pub const EXPANSION_ALLOWANCE: usize = 1 << 20;

/// A batch that cannot be decoded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

/// The most bytes a compressed payload of `compressed_len` bytes may decompress to.
pub fn uncompressed_limit(compressed_len: usize) -> usize {
    compressed_len
        .saturating_mul(MAX_EXPANSION_FACTOR)
        .saturating_add(EXPANSION_ALLOWANCE)
        .min(MAX_UNCOMPRESSED_BATCH_BYTES)
}

/// Decodes the batch at the front of `buf` (advancing it past the batch).
pub fn decode_batch(buf: &mut Bytes) -> Result<RecordSet, DecodeError> {
    RecordBatchDecoder::decode_with_custom_compression(
        buf,
        Some(|payload: &mut Bytes, compression: Compression| {
            decompress(payload, compression).map_err(anyhow::Error::from)
        }),
    )
    .map_err(|e| DecodeError(e.to_string()))
}

/// Decodes every batch in `buf`.
pub fn decode_batches(buf: &mut Bytes) -> Result<Vec<RecordSet>, DecodeError> {
    let mut sets = Vec::new();
    while buf.has_remaining() {
        sets.push(decode_batch(buf)?);
    }
    Ok(sets)
}

/// Decompresses a batch's records payload, refusing output beyond [`uncompressed_limit`].
pub fn decompress(payload: &mut Bytes, compression: Compression) -> Result<Bytes, DecodeError> {
    let data = payload.split_to(payload.len());
    let limit = uncompressed_limit(data.len());
    match compression {
        Compression::None => Ok(data),
        Compression::Gzip => {
            read_bounded(flate2::read::MultiGzDecoder::new(&data[..]), limit, "gzip")
        }
        Compression::Lz4 => {
            let decoder =
                lz4::Decoder::new(&data[..]).map_err(|e| DecodeError(format!("lz4: {e}")))?;
            read_bounded(decoder, limit, "lz4")
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(&data[..])
                .map_err(|e| DecodeError(format!("zstd: {e}")))?;
            read_bounded(decoder, limit, "zstd")
        }
        Compression::Snappy => snappy(&data, limit),
    }
}

/// Reads a decompressing reader to its end, failing once it yields more than `limit` bytes.
fn read_bounded(reader: impl Read, limit: usize, codec: &str) -> Result<Bytes, DecodeError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError(format!("{codec}: {e}")))?;
    if out.len() > limit {
        return Err(too_large(codec, limit));
    }
    Ok(out.into())
}

fn too_large(codec: &str, limit: usize) -> DecodeError {
    DecodeError(format!(
        "{codec} batch expands beyond {limit} bytes, the limit for its compressed size"
    ))
}

/// The framing that Kafka's Java clients write (snappy-java's stream format): a 16-byte header,
/// then blocks of `[u32 length][raw snappy block]`. Without the header the payload is one raw
/// snappy block, as some clients write it.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

pub(crate) fn snappy(data: &[u8], limit: usize) -> Result<Bytes, DecodeError> {
    let raw_len = |block: &[u8]| {
        snap::raw::decompress_len(block).map_err(|e| DecodeError(format!("snappy: {e}")))
    };
    let decode = |block: &[u8], out: &mut [u8]| {
        snap::raw::Decoder::new()
            .decompress(block, out)
            .map_err(|e| DecodeError(format!("snappy: {e}")))
    };
    if !data.starts_with(XERIAL_MAGIC) {
        // The uncompressed length is announced in the block: check it before allocating.
        let len = raw_len(data)?;
        if len > limit {
            return Err(too_large("snappy", limit));
        }
        let mut out = vec![0; len];
        let written = decode(data, &mut out)?;
        out.truncate(written);
        return Ok(out.into());
    }
    let mut rest = data
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| DecodeError("snappy: truncated stream header".into()))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| DecodeError("snappy: truncated block length".into()))?;
        let len = u32::from_be_bytes(*len) as usize;
        let block = tail
            .get(..len)
            .ok_or_else(|| DecodeError("snappy: block longer than the payload".into()))?;
        rest = &tail[len..];
        let start = out.len();
        let grown = start
            .checked_add(raw_len(block)?)
            .filter(|&n| n <= limit)
            .ok_or_else(|| too_large("snappy", limit))?;
        out.resize(grown, 0);
        let written = decode(block, &mut out[start..])?;
        out.truncate(start + written);
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

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
            // The encoder starts a new batch where offset - sequence changes.
            sequence: offset as i32,
            timestamp: 1_700_000_000_000 + offset,
            key: Some(Bytes::from(format!("k{offset}"))),
            value: Some(Bytes::from(value)),
            headers: Default::default(),
        }
    }

    fn batch(records: &[Record], compression: Compression) -> Bytes {
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
        buf.freeze()
    }

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips() {
        let records: Vec<Record> = (0..50).map(|i| record(i, vec![i as u8; 300])).collect();
        for codec in CODECS {
            let mut buf = batch(&records, codec);
            let mut two = BytesMut::from(&buf[..]);
            two.extend_from_slice(&buf);
            let set = decode_batch(&mut buf).unwrap();
            assert_eq!(set.records.len(), 50, "{codec:?}");
            assert_eq!(set.records[7].value.as_deref(), Some(&[7u8; 300][..]));
            assert!(buf.is_empty());
            assert_eq!(decode_batches(&mut two.freeze()).unwrap().len(), 2);
        }
    }

    #[test]
    fn highly_compressible_batches_within_the_allowance_decode() {
        // 512 KiB of zeros in one record: thousands of times smaller compressed, still accepted.
        let records = vec![record(0, vec![0; 512 * 1024])];
        for codec in CODECS {
            let set = decode_batch(&mut batch(&records, codec)).unwrap();
            assert_eq!(set.records[0].value.as_ref().unwrap().len(), 512 * 1024);
        }
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        // gzip and zstd squeeze 40 MiB of zeros into a few KiB: far beyond 256x + 1 MiB.
        let records = vec![record(0, vec![0; 40 << 20])];
        for codec in [Compression::Gzip, Compression::Zstd] {
            let mut b = batch(&records, codec);
            assert!(b.len() < 1 << 20, "{codec:?}: {} bytes compressed", b.len());
            let err = decode_batch(&mut b).map(|_| ()).unwrap_err();
            assert!(
                err.to_string().contains("expands beyond"),
                "{codec:?}: {err}"
            );
        }
        // lz4 expands at most ~255x, so only the absolute cap applies: 80 MiB is refused.
        // (Snappy expands at most ~21x; its length claims are covered below.)
        let records = vec![record(0, vec![0; 80 << 20])];
        let err = decode_batch(&mut batch(&records, Compression::Lz4))
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("expands beyond"), "lz4: {err}");
    }

    #[test]
    fn a_raw_snappy_length_claim_is_checked_before_allocating() {
        // A raw snappy block announcing 4 GiB of output.
        let mut claim = Vec::new();
        let mut n: u64 = 0xFFFF_FFFF;
        while n >= 0x80 {
            claim.push((n as u8) | 0x80);
            n >>= 7;
        }
        claim.push(n as u8);
        claim.extend_from_slice(&[0; 8]);
        let err = decompress(&mut Bytes::from(claim), Compression::Snappy).unwrap_err();
        assert!(err.to_string().contains("expands beyond"), "{err}");
    }

    #[test]
    fn uncompressed_limit_is_proportional_and_capped() {
        assert_eq!(uncompressed_limit(0), EXPANSION_ALLOWANCE);
        assert_eq!(uncompressed_limit(1000), 256_000 + EXPANSION_ALLOWANCE);
        assert_eq!(uncompressed_limit(usize::MAX), MAX_UNCOMPRESSED_BATCH_BYTES);
    }
}
