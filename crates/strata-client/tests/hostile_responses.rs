//! A broker that answers with lies: a scripted server on loopback whose responses announce
//! arrays, compact arrays, strings, bytes, compact bytes, record counts and header counts far
//! beyond the bytes it sends. Every client call must come back with an error, the process must
//! not abort, and what the client allocates must stay near what it received (the unpatched
//! `kafka-protocol` reserves gigabytes for such counts before reading an element).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use common::mock::{api_versions, encode, metadata, MockBroker};
use kafka_protocol::messages::ApiKey;
use strata_client::{Client, ClientConfig, FetchPartitionSpec, FetchRequestSpec};

/// Counts the live bytes of the whole process and their peak (one test in this binary, so
/// nothing else allocates meanwhile).
struct PeakAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are only bookkeeping.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// An unsigned varint claiming about a billion (a compact length or count).
const HUGE_VARINT: [u8; 5] = [0xFF, 0xFF, 0xFF, 0xFF, 0x03];
const HUGE: i32 = 0x7FFF_FFFF;

fn string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as i16).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

/// A magic-2 batch of one record whose header count is `header_count` (raw varint), declaring
/// `records_count` records, with a correct CRC.
fn batch(records_count: i32, header_count: &[u8]) -> Vec<u8> {
    let body = [&[0, 0, 0, 2, b'k', 2, b'v'][..], header_count].concat();
    let mut records = vec![(body.len() as u8) << 1];
    records.extend_from_slice(&body);
    let mut b = BytesMut::new();
    b.put_i64(0);
    b.put_i32((49 + records.len()) as i32);
    b.put_i32(0);
    b.put_i8(2);
    b.put_u32(0);
    b.put_i16(0);
    b.put_i32(records_count.max(1) - 1);
    b.put_i64(1_700_000_000_000);
    b.put_i64(1_700_000_000_000);
    b.put_i64(-1);
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(records_count);
    b.put_slice(&records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.to_vec()
}

/// A Fetch v4 response for partition 0 of `t` whose records field is `records` (raw, length
/// prefix included).
fn fetch_v4(records: &[u8]) -> Vec<u8> {
    [
        &0i32.to_be_bytes()[..], // throttle
        &1i32.to_be_bytes(),     // responses
        &string("t"),
        &1i32.to_be_bytes(), // partitions
        &0i32.to_be_bytes(),
        &0i16.to_be_bytes(),
        &10i64.to_be_bytes(),   // high watermark
        &10i64.to_be_bytes(),   // last stable offset
        &(-1i32).to_be_bytes(), // aborted transactions: null
        records,
    ]
    .concat()
}

/// A Fetch v12 (flexible) response for partition 0 of `t` whose records field is `records`
/// (compact, length prefix included).
fn fetch_v12(records: &[u8]) -> Vec<u8> {
    [
        &0i32.to_be_bytes()[..], // throttle
        &0i16.to_be_bytes(),     // error code
        &0i32.to_be_bytes(),     // session id
        &[2],                    // responses: one
        &[2, b't'],
        &[2], // partitions: one
        &0i32.to_be_bytes(),
        &0i16.to_be_bytes(),
        &10i64.to_be_bytes(),
        &10i64.to_be_bytes(),
        &0i64.to_be_bytes(),    // log start offset
        &[0],                   // aborted transactions: null
        &(-1i32).to_be_bytes(), // preferred read replica
        records,
        &[0, 0, 0], // tagged fields of the partition, the topic, the response
    ]
    .concat()
}

fn with_i32_length(bytes: &[u8]) -> Vec<u8> {
    [&(bytes.len() as i32).to_be_bytes()[..], bytes].concat()
}

fn with_compact_length(bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() < 127);
    [&[(bytes.len() + 1) as u8][..], bytes].concat()
}

/// One lie: what Metadata and Fetch answer, at which versions.
struct Case {
    what: &'static str,
    metadata: (i16, Option<Vec<u8>>),
    fetch: (i16, Vec<u8>),
}

async fn run(case: &Case) -> Result<(), String> {
    let (metadata_version, metadata_lie) = (case.metadata.0, case.metadata.1.clone());
    let (fetch_version, fetch_body) = (case.fetch.0, case.fetch.1.clone());
    let mock = MockBroker::start(move |port| {
        Box::new(move |key, version, _body| match key {
            ApiKey::ApiVersions => encode(
                &api_versions(&[
                    (ApiKey::ApiVersions, 0, 3),
                    (ApiKey::Metadata, metadata_version, metadata_version),
                    (ApiKey::Fetch, fetch_version, fetch_version),
                ]),
                version,
            ),
            ApiKey::Metadata => metadata_lie
                .clone()
                .unwrap_or_else(|| encode(&metadata(port, &["t"]), version)),
            ApiKey::Fetch => fetch_body.clone(),
            _ => Vec::new(),
        })
    })
    .await;
    let mut config = ClientConfig::new([mock.addr.clone()]);
    config.retries = 1;
    config.retry_backoff = Duration::from_millis(5);
    config.retry_backoff_max = Duration::from_millis(10);
    config.request_timeout = Duration::from_secs(5);
    let client = match Client::connect(config).await {
        Ok(c) => c,
        Err(e) => return Err(format!("connect: {e}")),
    };
    let mut spec = FetchRequestSpec::new([FetchPartitionSpec {
        topic: "t".into(),
        partition: 0,
        offset: 0,
    }]);
    spec.max_wait_ms = 0;
    let result = client
        .fetch(spec)
        .await
        .map_err(|e| format!("fetch: {e}"))?;
    match result.partitions.values().find_map(|p| p.error.as_ref()) {
        Some(e) => Err(format!("fetched partition: {e}")),
        None => Ok(()),
    }
}

#[test]
fn oversized_counts_in_responses_fail_the_call_and_cost_little_memory() {
    let huge = HUGE.to_be_bytes();
    let metadata_v1 = |brokers: &[u8]| -> Vec<u8> {
        [brokers, &1i32.to_be_bytes(), &0i32.to_be_bytes()].concat()
    };
    let cases = vec![
        Case {
            what: "array (Metadata v1 brokers)",
            metadata: (1, Some(metadata_v1(&huge))),
            fetch: (4, Vec::new()),
        },
        Case {
            what: "compact array (Metadata v12 brokers)",
            metadata: (12, Some([&0i32.to_be_bytes()[..], &HUGE_VARINT].concat())),
            fetch: (4, Vec::new()),
        },
        Case {
            what: "string (Metadata v1 broker host)",
            metadata: (
                1,
                Some(
                    [
                        &1i32.to_be_bytes()[..],
                        &1i32.to_be_bytes(),
                        &0x7FFFi16.to_be_bytes(),
                        b"abc",
                    ]
                    .concat(),
                ),
            ),
            fetch: (4, Vec::new()),
        },
        Case {
            what: "bytes (Fetch v4 records)",
            metadata: (1, None),
            fetch: (4, fetch_v4(&[&huge[..], &[0; 16]].concat())),
        },
        Case {
            what: "compact bytes (Fetch v12 records)",
            metadata: (12, None),
            fetch: (12, fetch_v12(&[&HUGE_VARINT[..], &[0; 16]].concat())),
        },
        Case {
            what: "compact string (Fetch v12 topic name)",
            metadata: (12, None),
            fetch: (
                12,
                [
                    &0i32.to_be_bytes()[..],
                    &0i16.to_be_bytes(),
                    &0i32.to_be_bytes(),
                    &[2],
                    &HUGE_VARINT,
                    b"t",
                ]
                .concat(),
            ),
        },
        Case {
            what: "nested array (Fetch v4 partitions)",
            metadata: (1, None),
            fetch: (
                4,
                [
                    &0i32.to_be_bytes()[..],
                    &1i32.to_be_bytes(),
                    &string("t"),
                    &huge,
                ]
                .concat(),
            ),
        },
        Case {
            what: "record count (Fetch v4 batch)",
            metadata: (1, None),
            fetch: (4, fetch_v4(&with_i32_length(&batch(HUGE, &[0])))),
        },
        Case {
            what: "header count (Fetch v12 batch)",
            metadata: (12, None),
            fetch: (
                12,
                fetch_v12(&with_compact_length(&batch(
                    1,
                    &[0xFE, 0xFF, 0xFF, 0xFF, 0x03],
                ))),
            ),
        },
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The scripted answers are well formed without the lie: the same client reads them.
    let honest = Case {
        what: "honest",
        metadata: (12, None),
        fetch: (4, fetch_v4(&with_i32_length(&batch(1, &[0])))),
    };
    runtime
        .block_on(run(&honest))
        .expect("an honest answer is read");
    for case in &cases {
        let baseline = LIVE.load(Ordering::Relaxed);
        PEAK.store(baseline, Ordering::Relaxed);
        let outcome = runtime.block_on(run(case));
        let grown = PEAK.load(Ordering::Relaxed).saturating_sub(baseline);
        println!("{}: {outcome:?}; peak growth {grown} bytes", case.what);
        assert!(outcome.is_err(), "{}: the lie was accepted", case.what);
        assert!(
            grown < 8 << 20,
            "{}: the client's memory grew by {grown} bytes",
            case.what
        );
    }
}
