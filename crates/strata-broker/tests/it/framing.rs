//! The connection layer of the real binary, through raw sockets: how frames are cut, answered
//! and refused. Kafka's network layer is the expectation: requests of one connection are
//! answered in order whatever the TCP segmentation, a frame is accepted up to
//! `socket.request.max.bytes` inclusive, an ApiVersions request newer than the broker is
//! answered in v0 with UNSUPPORTED_VERSION (KIP-511), and anything else the broker cannot
//! serve closes that connection only.

use std::io::Write;
use std::time::Duration;

use crate::common::*;
use bytes::{Buf, Bytes};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::Decodable;

fn metadata_frame(correlation_id: i32) -> Vec<u8> {
    encoded(
        ApiKey::Metadata,
        12,
        correlation_id,
        &MetadataRequest::default().with_topics(Some(Vec::new())),
    )
}

fn correlation_id(frame: &Bytes) -> i32 {
    frame.clone().get_i32()
}

#[test]
fn requests_written_together_are_answered_in_order() {
    let broker = BrokerProcess::start(&[]);
    let mut conn = broker.connect();
    let mut bytes = Vec::new();
    for id in [7, 8, 9] {
        bytes.extend(if id == 8 {
            metadata_frame(id)
        } else {
            api_versions_frame(id)
        });
    }
    conn.write_all(&bytes).expect("write");
    for id in [7, 8, 9] {
        match read_response(&mut conn) {
            Reply::Frame(frame) => assert_eq!(correlation_id(&frame), id),
            other => panic!("request {id}: {other:?}"),
        }
    }
}

#[test]
fn a_request_written_one_byte_at_a_time_is_answered() {
    let broker = BrokerProcess::start(&[]);
    let mut conn = broker.connect();
    for byte in metadata_frame(42) {
        conn.write_all(&[byte]).expect("write");
        conn.flush().expect("flush");
    }
    let Reply::Frame(mut frame) = read_response(&mut conn) else {
        panic!("no response");
    };
    assert_eq!(frame.get_i32(), 42);
    frame.advance(1); // tagged fields of response header v1
    let resp = MetadataResponse::decode(&mut frame, 12).expect("Metadata response");
    assert_eq!(resp.brokers.len(), 1);
}

#[test]
fn a_frame_of_exactly_the_limit_is_served_and_one_byte_more_closes_the_connection() {
    const LIMIT: usize = 4096;
    let broker = BrokerProcess::start(&[
        ("socket.request.max.bytes", "4096"),
        ("message.max.bytes", "1024"),
    ]);
    // A Metadata request padded with a long topic name to a given size after the length prefix.
    let frame_of = |size: usize| {
        let mut name_len = size;
        loop {
            let frame = metadata_frame_with(&["x".repeat(name_len).as_str()]);
            match (frame.len() - 4).cmp(&size) {
                std::cmp::Ordering::Equal => return frame,
                std::cmp::Ordering::Greater => name_len -= frame.len() - 4 - size,
                std::cmp::Ordering::Less => name_len += size - (frame.len() - 4),
            }
        }
    };
    let exact = frame_of(LIMIT);
    assert_eq!(exact.len(), LIMIT + 4);
    let mut conn = broker.connect();
    assert!(matches!(send(&mut conn, &exact), Reply::Frame(_)));
    let over = frame_of(LIMIT + 1);
    assert_eq!(over.len(), LIMIT + 5);
    assert!(matches!(send(&mut conn, &over), Reply::Closed));
    assert!(broker.alive_and_answering());
}

fn metadata_frame_with(topics: &[&str]) -> Vec<u8> {
    let req = MetadataRequest::default().with_topics(Some(
        topics
            .iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
            .collect(),
    ));
    encoded(ApiKey::Metadata, 12, 1, &req)
}

#[test]
fn sizes_below_a_request_header_close_the_connection() {
    let broker = BrokerProcess::start(&[]);
    for size in [-1i32, 0, 4, 7] {
        let mut bytes = size.to_be_bytes().to_vec();
        bytes.extend(vec![0u8; size.max(0) as usize]);
        let mut conn = broker.connect();
        assert!(
            matches!(send(&mut conn, &bytes), Reply::Closed),
            "frame size {size}"
        );
    }
    assert!(broker.alive_and_answering());
}

#[test]
fn api_versions_newer_than_the_broker_is_answered_in_v0_with_the_supported_range() {
    let broker = BrokerProcess::start(&[]);
    let mut conn = broker.connect();
    let frame = frame(ApiKey::ApiVersions, 99, 5, &[]);
    let Reply::Frame(mut body) = send(&mut conn, &frame) else {
        panic!("no ApiVersions response");
    };
    assert_eq!(body.get_i32(), 5);
    let resp = ApiVersionsResponse::decode(&mut body, 0).expect("v0 response");
    assert_eq!(resp.error_code, 35, "UNSUPPORTED_VERSION");
    let own = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .expect("ApiVersions in the table");
    assert_eq!((own.min_version, own.max_version), (0, 4));
    // The connection stays usable: the client retries at a version the broker named.
    let resp: ApiVersionsResponse = call(
        &mut conn,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    assert_eq!(resp.error_code, 0);
}

#[test]
fn apis_and_versions_not_served_close_that_connection_only() {
    let broker = BrokerProcess::start(&[]);
    let mut other = broker.connect();
    let cases: [(&str, Vec<u8>); 3] = [
        ("an unknown api key", frame_raw(9_999, 0)),
        (
            "an API not advertised (AddPartitionsToTxn)",
            frame(ApiKey::AddPartitionsToTxn, 3, 1, &[0; 16]),
        ),
        (
            "a Metadata version beyond the advertised range",
            frame_raw(ApiKey::Metadata as i16, 99),
        ),
    ];
    for (what, bytes) in cases {
        let mut conn = broker.connect();
        assert!(matches!(send(&mut conn, &bytes), Reply::Closed), "{what}");
        assert!(
            matches!(send(&mut other, &api_versions_frame(1)), Reply::Frame(_)),
            "another connection after {what}"
        );
    }
}

/// A frame with a v1 request header of any api key and version, and no body.
fn frame_raw(api_key: i16, version: i16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(10i32.to_be_bytes());
    out.extend(api_key.to_be_bytes());
    out.extend(version.to_be_bytes());
    out.extend(1i32.to_be_bytes());
    out.extend((-1i16).to_be_bytes()); // null client id
    out
}

/// A frame of the metadata quorum's own protocol (api key 0x7A00, header v1, JSON body), as
/// voters send each other.
fn raft_frame(correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(((10 + body.len()) as i32).to_be_bytes());
    out.extend(strata_controller::RAFT_API_KEY.to_be_bytes());
    out.extend(0i16.to_be_bytes());
    out.extend(correlation_id.to_be_bytes());
    out.extend((-1i16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn raft_frames_reach_only_the_controller_listener_of_a_voter() {
    // Kafka closes a connection that sends an api key it does not know; a client port must
    // treat the quorum's frames that way, whether or not the node is a voter.
    let standalone = BrokerProcess::start(&[]);
    let (voter, controller_port) = BrokerProcess::start_voter(&[]);
    let probe = raft_frame(5, br#""Probe""#);
    let garbage = raft_frame(6, b"{\"AppendEntries\": [1, 2");
    for (what, broker) in [("single node", &standalone), ("voter", &voter)] {
        let mut other = broker.connect();
        for bytes in [&probe, &garbage] {
            let mut conn = broker.connect();
            assert!(
                matches!(send(&mut conn, bytes), Reply::Closed),
                "{what}: a raft frame on the client port was served"
            );
            assert!(
                matches!(send(&mut other, &api_versions_frame(1)), Reply::Frame(_)),
                "{what}: another connection after a raft frame"
            );
        }
        let log = broker.log();
        assert!(
            log.contains("unsupported request: api key 31232"),
            "{what}: {log}"
        );
        assert!(!log.contains("undecodable raft frame"), "{what}: {log}");
    }
    // The voter's controller listener is where they belong: answered with the correlation id
    // and the quorum's JSON.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", controller_port)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let Reply::Frame(answer) = send(&mut conn, &probe) else {
        panic!("the controller listener did not answer a raft probe");
    };
    assert_eq!(correlation_id(&answer), 5);
    let json = String::from_utf8_lossy(&answer[4..]);
    assert!(json.contains("\"Probe\""), "{json}");
}

#[test]
fn a_client_that_stops_reading_does_not_stop_the_broker() {
    let broker = BrokerProcess::start(&[]);
    let mut greedy = broker.connect();
    // Many requests whose responses are never read fill the socket buffers both ways.
    let burst: Vec<u8> = (0..50_000).flat_map(metadata_frame).collect();
    greedy
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let _ = greedy.write_all(&burst);
    assert!(broker.alive_and_answering());
}
