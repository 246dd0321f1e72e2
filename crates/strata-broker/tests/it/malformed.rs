//! Hostile input through the real binary on loopback: every shape of a count or length that
//! claims more than the frame holds (arrays, compact arrays, strings, bytes, nested arrays,
//! record and header counts inside batches), a decompression bomb and frames that announce more
//! bytes than they send. Each must cost the broker a closed connection or an error response,
//! never the process, and leave other connections and stored records as they were. Kafka's
//! behaviour is the expectation: it closes a connection whose request does not parse and answers
//! a produce of a corrupt batch with an error code.

use std::io::Write;
use std::time::Duration;

use crate::common::*;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse,
};
use kafka_protocol::records::Compression;

/// An unsigned varint claiming about a billion.
const HUGE_VARINT: [u8; 5] = [0xFF, 0xFF, 0xFF, 0xFF, 0x03];

fn be_i32(v: i32) -> [u8; 4] {
    v.to_be_bytes()
}

fn string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as i16).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

fn compact_string(s: &str) -> Vec<u8> {
    let mut v = vec![(s.len() + 1) as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The request is refused by closing its connection, and the broker keeps serving.
fn assert_closed_and_alive(broker: &BrokerProcess, what: &str, bytes: &[u8]) {
    let mut conn = broker.connect();
    match send(&mut conn, bytes) {
        Reply::Closed => {}
        other => panic!("{what}: expected the connection to be closed, got {other:?}"),
    }
    assert!(
        broker.alive_and_answering(),
        "{what}: the broker stopped answering"
    );
}

/// INVALID_RECORD: Kafka 4.1's answer to a produced batch whose records do not have the
/// structure their counts and lengths claim (probed with the same batches).
const INVALID_RECORD: i16 = 87;

/// A v2 batch header (CRC filled in) around hand-made record bytes.
fn raw_batch(records_count: i32, records: &[u8]) -> Bytes {
    raw_batch_with(Compression::None, records_count, 0, records)
}

/// A v2 batch of `compression` whose records section is `records` compressed, with the CRC
/// filled in.
fn raw_batch_with(
    compression: Compression,
    records_count: i32,
    last_offset_delta: i32,
    records: &[u8],
) -> Bytes {
    let (attributes, records) = match compression {
        Compression::None => (0, records.to_vec()),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(records).expect("gzip");
            (1, e.finish().expect("gzip"))
        }
        Compression::Zstd => (4, zstd::encode_all(records, 1).expect("zstd")),
        other => panic!("no raw batches of {other:?} here"),
    };
    let mut b = BytesMut::new();
    b.put_i64(0); // base offset
    b.put_i32((49 + records.len()) as i32); // batch length
    b.put_i32(-1); // partition leader epoch
    b.put_i8(2); // magic
    b.put_u32(0); // crc, below
    b.put_i16(attributes);
    b.put_i32(last_offset_delta);
    b.put_i64(1_700_000_000_000);
    b.put_i64(1_700_000_000_000);
    b.put_i64(-1); // producer id
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(records_count);
    b.put_slice(&records);
    strata_log::batch::update_crc(&mut b);
    b.freeze()
}

/// One record `k` → `v` whose header count is `header_count` (the varint given raw).
fn raw_record(header_count: &[u8]) -> Vec<u8> {
    let body = cat(&[&[0, 0, 0, 2, b'k', 2, b'v'], header_count]);
    let mut r = vec![(body.len() as u8) << 1];
    r.extend_from_slice(&body);
    r
}

fn produce(broker: &BrokerProcess, topic: &str, batch: Bytes, acks: i16) -> ProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    call(&mut broker.connect(), ApiKey::Produce, 9, &req)
}

fn produce_error(resp: &ProduceResponse) -> i16 {
    resp.responses[0].partition_responses[0].error_code
}

fn fetch_values(broker: &BrokerProcess, topic: &str) -> Vec<(Bytes, Bytes)> {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let resp: FetchResponse = call(&mut broker.connect(), ApiKey::Fetch, 12, &req);
    let mut records = resp.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    strata_kafka::records::decode_batches(&mut records)
        .expect("stored batches decode")
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| (r.key.unwrap_or_default(), r.value.unwrap_or_default()))
        .collect()
}

#[test]
fn oversized_counts_and_lengths_close_the_connection_only() {
    let broker = BrokerProcess::start(&[]);
    // A connection that lives through everything below and a record stored before it.
    let mut bystander = broker.connect();
    assert!(matches!(
        send(&mut bystander, &api_versions_frame(1)),
        Reply::Frame(_)
    ));
    create_topic(&broker, "kept", 1, &[]);
    let kept = encode_batch(&[record("a", b"before".to_vec())], Compression::None);
    assert_eq!(produce_error(&produce(&broker, "kept", kept, -1)), 0);

    let huge = be_i32(0x7FFF_FFFF);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // Metadata v0: the topics array claims 2^31-1 entries.
        ("array", frame(ApiKey::Metadata, 0, 2, &huge)),
        // Metadata v12: a compact topics array claiming about a billion entries.
        (
            "compact array",
            frame(ApiKey::Metadata, 12, 3, &cat(&[&HUGE_VARINT, &[0, 0, 0]])),
        ),
        // CreateTopics v4: a topic name announcing 32767 bytes, three sent.
        (
            "string",
            frame(
                ApiKey::CreateTopics,
                4,
                4,
                &cat(&[&be_i32(1), &0x7FFFi16.to_be_bytes(), b"abc"]),
            ),
        ),
        // CreateTopics v5 (flexible): a compact topic name announcing about a billion bytes.
        (
            "compact string",
            frame(
                ApiKey::CreateTopics,
                5,
                10,
                &cat(&[&[2], &HUGE_VARINT, b"abc"]),
            ),
        ),
        // SyncGroup v3: the assignments array of the original report.
        (
            "assignments array",
            frame(
                ApiKey::SyncGroup,
                3,
                5,
                &cat(&[
                    &string("g"),
                    &be_i32(1),
                    &string("m"),
                    &(-1i16).to_be_bytes(),
                    &huge,
                ]),
            ),
        ),
        // SyncGroup v3: one assignment whose bytes announce 2^31-1.
        (
            "bytes",
            frame(
                ApiKey::SyncGroup,
                3,
                6,
                &cat(&[
                    &string("g"),
                    &be_i32(1),
                    &string("m"),
                    &(-1i16).to_be_bytes(),
                    &be_i32(1),
                    &string("m"),
                    &huge,
                ]),
            ),
        ),
        // SyncGroup v5 (flexible): compact bytes announcing about a billion.
        (
            "compact bytes",
            frame(
                ApiKey::SyncGroup,
                5,
                7,
                &cat(&[
                    &compact_string("g"),
                    &be_i32(1),
                    &compact_string("m"),
                    &[0, 0, 0],
                    &[2],
                    &compact_string("m"),
                    &HUGE_VARINT,
                ]),
            ),
        ),
        // CreateTopics v4: a valid topic whose configs array claims 2^31-1 entries.
        (
            "nested array",
            frame(
                ApiKey::CreateTopics,
                4,
                8,
                &cat(&[
                    &be_i32(1),
                    &string("t"),
                    &be_i32(1),
                    &1i16.to_be_bytes(),
                    &be_i32(0),
                    &huge,
                ]),
            ),
        ),
        // ListOffsets v5: topics[0].partitions claims 2^31-1 entries.
        (
            "nested array in ListOffsets",
            frame(
                ApiKey::ListOffsets,
                5,
                9,
                &cat(&[&be_i32(-1), &[0], &be_i32(1), &string("t"), &huge]),
            ),
        ),
    ];
    for (what, bytes) in &cases {
        assert_closed_and_alive(&broker, what, bytes);
    }

    // The bystander connection and the stored record are untouched.
    assert!(matches!(
        send(&mut bystander, &api_versions_frame(2)),
        Reply::Frame(_)
    ));
    assert_eq!(
        fetch_values(&broker, "kept"),
        vec![(Bytes::from_static(b"a"), Bytes::from_static(b"before"))]
    );
    // One log line per closed connection, naming the reason.
    let log = broker.log();
    assert!(log.contains("closing connection"), "{log}");
    assert!(log.contains("exceeds the"), "{log}");
    assert!(
        broker.peak_rss_kib() < 128 * 1024,
        "peak RSS {} KiB",
        broker.peak_rss_kib()
    );
}

#[test]
fn corrupt_record_and_header_counts_and_bombs_get_an_error_response() {
    let broker = BrokerProcess::start(&[]);
    // Compacted topics look inside every batch (every record needs a key), so their produce
    // path decodes records.
    create_topic(&broker, "compacted", 1, &[("cleanup.policy", "compact")]);

    let cases: Vec<(&str, Bytes)> = vec![
        ("record count", raw_batch(0x7FFF_FFFF, &raw_record(&[0]))),
        ("header count", raw_batch(1, &raw_record(&HUGE_VARINT))),
        (
            "gzip bomb",
            encode_batch(&[record("k", vec![0; 40 << 20])], Compression::Gzip),
        ),
        (
            "zstd bomb",
            encode_batch(&[record("k", vec![0; 40 << 20])], Compression::Zstd),
        ),
    ];
    for (what, batch) in cases {
        assert!(
            batch.len() < 1 << 20,
            "{what}: batch of {} bytes",
            batch.len()
        );
        let code = produce_error(&produce(&broker, "compacted", batch, -1));
        assert_ne!(code, 0, "{what}: the corrupt batch was accepted");
        assert!(
            broker.alive_and_answering(),
            "{what}: the broker stopped answering"
        );
    }
    // Nothing of it was stored; a good record still is.
    let good = encode_batch(&[record("k", b"good".to_vec())], Compression::Gzip);
    assert_eq!(produce_error(&produce(&broker, "compacted", good, -1)), 0);
    assert_eq!(
        fetch_values(&broker, "compacted"),
        vec![(Bytes::from_static(b"k"), Bytes::from_static(b"good"))]
    );
    // The bombs were refused before expanding: far below their 40 MiB.
    assert!(
        broker.peak_rss_kib() < 128 * 1024,
        "peak RSS {} KiB",
        broker.peak_rss_kib()
    );
}

#[test]
fn records_unlike_their_counts_and_lengths_are_refused_on_a_plain_topic() {
    let broker = BrokerProcess::start(&[]);
    // cleanup.policy=delete: nothing but this check looks inside the batches.
    create_topic(&broker, "plain", 1, &[]);
    let one = raw_record(&[0]);
    let fields = &one[1..];
    let with_length = |len: u8| cat(&[&[len << 1], fields]);
    let cases: Vec<(&str, Vec<u8>, i32)> = vec![
        ("record count above the records", one.clone(), 2),
        ("huge record count", one.clone(), i32::MAX),
        ("record count below the records", cat(&[&one, &one]), 1),
        ("bytes after the last record", cat(&[&one, &[0, 0]]), 1),
        ("record length beyond the batch", with_length(60), 1),
        ("record length short of its fields", with_length(3), 1),
        (
            "huge header count",
            raw_record(&[0xFE, 0xFF, 0xFF, 0xFF, 0x03]),
            1,
        ),
        ("negative header count", raw_record(&HUGE_VARINT), 1),
        (
            "header key beyond the record",
            raw_record(&[2, 40, b'h']),
            1,
        ),
    ];
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        for (what, records, count) in &cases {
            // The offset range matches the count, so only the records themselves are wrong.
            let batch = raw_batch_with(compression, *count, count - 1, records);
            let code = produce_error(&produce(&broker, "plain", batch, -1));
            assert_eq!(
                code, INVALID_RECORD,
                "{what} ({compression:?}): error code {code}"
            );
        }
    }
    // Kafka's check of the header: as many offsets as records.
    let code = produce_error(&produce(
        &broker,
        "plain",
        raw_batch_with(Compression::None, 1, 5, &one),
        -1,
    ));
    assert_eq!(code, INVALID_RECORD, "offset range of 6 with 1 record");
    assert!(broker.alive_and_answering());

    // Nothing of it was stored; well-formed batches of every codec are, records with
    // null keys and headers included.
    let mut expected = Vec::new();
    for (i, compression) in [Compression::None, Compression::Gzip, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let value = format!("good-{i}").into_bytes();
        let batch = raw_batch_with(compression, 1, 0, &one);
        assert_eq!(produce_error(&produce(&broker, "plain", batch, -1)), 0);
        expected.push((Bytes::from_static(b"k"), Bytes::from_static(b"v")));
        let mut r = record("k2", value.clone());
        r.headers.insert(str_bytes("h"), None);
        let batch = encode_batch(&[r], compression);
        assert_eq!(produce_error(&produce(&broker, "plain", batch, -1)), 0);
        expected.push((Bytes::from_static(b"k2"), Bytes::from(value)));
    }
    assert_eq!(fetch_values(&broker, "plain"), expected);
}

#[test]
fn frames_that_announce_more_than_they_send_cost_little_memory() {
    let broker = BrokerProcess::start(&[]);
    let before = broker.peak_rss_kib();
    // Forty connections each announce a frame of just under socket.request.max.bytes (100 MiB)
    // and send eight bytes of it.
    let mut held = Vec::new();
    for i in 0..40u8 {
        let mut conn = broker.connect();
        let mut bytes = (104_857_599i32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0, 18, 0, 0, 0, 0, 0, i]);
        conn.write_all(&bytes).expect("write");
        held.push(conn);
    }
    wait_for(
        Duration::from_secs(10),
        "the broker to answer meanwhile",
        || broker.alive_and_answering(),
    );
    let after = broker.peak_rss_kib();
    assert!(
        after < before + 32 * 1024,
        "40 announced 100 MiB frames raised the peak RSS from {before} to {after} KiB"
    );
    drop(held);
    // A frame over the limit closes its connection at once.
    let mut conn = broker.connect();
    conn.write_all(&(104_857_601i32).to_be_bytes())
        .expect("write");
    assert!(matches!(read_response(&mut conn), Reply::Closed));
}
