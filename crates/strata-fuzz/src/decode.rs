//! The in-process driver: mutated frames through the decoders the broker and the client use,
//! with every panic caught and counted and the bytes allocated while decoding one frame held to
//! [`AllocBound`]. Needs [`crate::alloc::CountingAlloc`] as the global allocator for the memory
//! figures (without it they read zero).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestKind, ResponseKind};
use rand::Rng;
use serde::Serialize;

use crate::alloc;
use crate::corpus::{Corpus, Frame, Requests};
use crate::mutate::Mutator;

/// The most one frame may make a decoder allocate: `factor` times its length plus `slack`, and
/// for a record batch twice what decompression may produce from it
/// (`strata_kafka::records::uncompressed_limit`). The factor covers the decoded form of small
/// elements (a 3-byte struct on the wire becomes a struct of strings, vectors and maps in
/// memory) and the doubling growth of vectors.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AllocBound {
    pub factor: usize,
    pub slack: usize,
}

impl AllocBound {
    pub const DEFAULT: AllocBound = AllocBound {
        factor: 128,
        slack: 256 * 1024,
    };

    fn allows(&self, target: Target, input: usize, allocated: usize) -> bool {
        let decompressed = match target {
            Target::RecordBatch => 2 * strata_kafka::records::uncompressed_limit(input),
            Target::BrokerRequest | Target::ControllerRequest | Target::ClientResponse => 0,
        };
        allocated
            <= input
                .saturating_mul(self.factor)
                .saturating_add(self.slack)
                .saturating_add(decompressed)
    }
}

/// What the decoders are fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// `strata_broker::server::parse_frame`: request header and body.
    BrokerRequest,
    /// `strata_broker::server::parse_frame_on` as the controller listener of a voter takes
    /// frames: its API table, and Raft frames whose JSON body is then decoded as the quorum
    /// decodes it.
    ControllerRequest,
    /// `strata_client::decode_response` plus the records of every fetched partition.
    ClientResponse,
    /// Record batches: `strata_kafka::records::decode_batches` and the produce path's batch and
    /// record validation (`strata_log::batch::validate_produced`).
    RecordBatch,
}

const TARGETS: [Target; 4] = [
    Target::BrokerRequest,
    Target::ControllerRequest,
    Target::ClientResponse,
    Target::RecordBatch,
];

/// Counts for one target.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TargetCounts {
    pub tried: u64,
    pub decoded: u64,
    pub refused: u64,
    pub panics: u64,
    pub over_bound: u64,
    /// The most bytes decoding one frame allocated, and that frame's length.
    pub max_allocated: usize,
    pub max_allocated_input: usize,
    /// The highest allocated/input ratio among frames of at least 1 KiB.
    pub max_ratio: f64,
}

/// A frame worth keeping: it panicked a decoder or allocated beyond the bound.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub target: Target,
    pub key: i16,
    pub version: i16,
    pub allocated: usize,
    pub panic: Option<String>,
    pub hex: String,
}

/// The outcome of a run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub frames: u64,
    pub seed: u64,
    pub seconds: f64,
    pub bound: AllocBound,
    pub broker_request: TargetCounts,
    pub controller_request: TargetCounts,
    pub client_response: TargetCounts,
    pub record_batch: TargetCounts,
    pub findings: Vec<Finding>,
    /// (API key, version) pairs the request frames of both listeners covered (Raft frames
    /// count as one).
    pub request_coverage: usize,
}

impl Report {
    pub fn panics(&self) -> u64 {
        self.counts().iter().map(|c| c.panics).sum()
    }

    pub fn over_bound(&self) -> u64 {
        self.counts().iter().map(|c| c.over_bound).sum()
    }

    fn counts(&self) -> [&TargetCounts; 4] {
        [
            &self.broker_request,
            &self.controller_request,
            &self.client_response,
            &self.record_batch,
        ]
    }
}

/// Runs `frames` mutated frames (or until `deadline`) through the decoders.
pub fn run(
    corpus: &Corpus,
    requests: &Requests,
    frames: u64,
    deadline: Option<Duration>,
    seed: u64,
    bound: AllocBound,
) -> Report {
    let batches = record_batches(corpus);
    let mut m = Mutator::new(seed);
    let mut counts: [TargetCounts; 4] = Default::default();
    let mut findings = Vec::new();
    let start = Instant::now();
    // Panics are expected to be caught; keep their messages out of the output.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut done = 0;
    while done < frames {
        if deadline.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        done += 1;
        let target = match m.rng().random_range(0..20) {
            0..=9 => Target::BrokerRequest,
            10..=11 if !requests.controller.is_empty() => Target::ControllerRequest,
            12..=16 if !corpus.responses.is_empty() => Target::ClientResponse,
            _ if !batches.is_empty() => Target::RecordBatch,
            _ => Target::BrokerRequest,
        };
        let (key, version, input) = match target {
            Target::BrokerRequest => pick_and_mutate(&mut m, &requests.broker),
            Target::ControllerRequest => pick_and_mutate(&mut m, &requests.controller),
            Target::ClientResponse => {
                let (key, version, input) = pick_and_mutate(&mut m, &corpus.responses);
                // Now and then decode the bytes as another API's response.
                if m.rng().random_bool(0.05) {
                    let other = &corpus.responses[m.rng().random_range(0..corpus.responses.len())];
                    (other.key, other.version, input)
                } else {
                    (key, version, input)
                }
            }
            Target::RecordBatch => {
                let (_, _, input) = pick_and_mutate_batch(&mut m, &batches);
                (-1, -1, input)
            }
        };
        let input = if m.rng().random_bool(0.02) {
            m.random_bytes(4096)
        } else {
            input
        };
        let c = &mut counts[TARGETS.iter().position(|t| *t == target).unwrap_or(0)];
        c.tried += 1;
        let len = input.len();
        let baseline = alloc::reset_peak();
        let result = catch_unwind(AssertUnwindSafe(|| {
            decode(target, key, version, input.clone())
        }));
        let allocated = usize::try_from(alloc::peak().saturating_sub(baseline)).unwrap_or(0);
        if allocated > c.max_allocated {
            c.max_allocated = allocated;
            c.max_allocated_input = len;
        }
        if len >= 1024 {
            c.max_ratio = c.max_ratio.max(allocated as f64 / len as f64);
        }
        let over = !bound.allows(target, len, allocated);
        if over {
            c.over_bound += 1;
        }
        let panic = match result {
            Ok(true) => {
                c.decoded += 1;
                None
            }
            Ok(false) => {
                c.refused += 1;
                None
            }
            Err(payload) => {
                c.panics += 1;
                Some(
                    payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default(),
                )
            }
        };
        if (over || panic.is_some()) && findings.len() < 20 {
            findings.push(Finding {
                target,
                key,
                version,
                allocated,
                panic,
                hex: hex(&input),
            });
        }
    }
    std::panic::set_hook(hook);
    let [broker_request, controller_request, client_response, record_batch] = counts;
    Report {
        frames: done,
        seed,
        seconds: start.elapsed().as_secs_f64(),
        bound,
        broker_request,
        controller_request,
        client_response,
        record_batch,
        findings,
        request_coverage: crate::corpus::coverage(
            &[&requests.broker[..], &requests.controller[..]].concat(),
        )
        .len(),
    }
}

/// Feeds one input to `target`; true when it decoded.
pub fn decode(target: Target, key: i16, version: i16, input: Bytes) -> bool {
    match target {
        Target::BrokerRequest => strata_broker::server::parse_frame(input).is_ok(),
        Target::ControllerRequest => {
            use strata_broker::server::{parse_frame_on, ListenerScope, ParsedFrame};
            match parse_frame_on(input, ListenerScope::VOTER_CONTROLLER) {
                Ok(ParsedFrame::Raft { body, .. }) => {
                    strata_controller::raft_frames::decode(&body).is_ok()
                }
                Ok(_) => true,
                Err(_) => false,
            }
        }
        Target::ClientResponse => {
            let Ok(key) = ApiKey::try_from(key) else {
                return false;
            };
            match strata_client::decode_response(key, version, input) {
                Ok(ResponseKind::Fetch(resp)) => {
                    for t in &resp.responses {
                        for p in &t.partitions {
                            if let Some(records) = &p.records {
                                let _ = strata_client::decode_fetched_records(records);
                            }
                        }
                    }
                    true
                }
                Ok(_) => true,
                Err(_) => false,
            }
        }
        Target::RecordBatch => {
            use strata_log::batch::{validate_produced, ProducedBy};
            let log_ok = validate_produced(&input, ProducedBy::Client).is_ok();
            let _ = validate_produced(&input, ProducedBy::Mirror);
            let decoded = strata_kafka::records::decode_batches(&mut input.clone()).is_ok();
            log_ok || decoded
        }
    }
}

fn pick_and_mutate(m: &mut Mutator, frames: &[Frame]) -> (i16, i16, Bytes) {
    let f = &frames[m.rng().random_range(0..frames.len())];
    let other = &frames[m.rng().random_range(0..frames.len())];
    if m.rng().random_bool(0.03) {
        return (f.key, f.version, f.bytes.clone());
    }
    (f.key, f.version, m.mutate(&f.bytes, &other.bytes))
}

/// Mutates a record batch and, most of the time, repairs its length and CRC so that the record
/// decoders behind the CRC check see the damage.
fn pick_and_mutate_batch(m: &mut Mutator, batches: &[Bytes]) -> (i16, i16, Bytes) {
    let b = &batches[m.rng().random_range(0..batches.len())];
    let other = &batches[m.rng().random_range(0..batches.len())];
    let mutated = m.mutate(b, other);
    if mutated.len() < strata_log::BATCH_HEADER_LEN || m.rng().random_bool(0.2) {
        return (-1, -1, mutated);
    }
    let mut fixed = BytesMut::from(&mutated[..]);
    let length = (fixed.len() - 12) as i32;
    fixed[8..12].copy_from_slice(&length.to_be_bytes());
    strata_log::batch::update_crc(&mut fixed);
    (-1, -1, fixed.freeze())
}

/// The record batches inside the corpus: Produce requests' and Fetch responses' records.
pub fn record_batches(corpus: &Corpus) -> Vec<Bytes> {
    let mut out = Vec::new();
    for f in &corpus.requests {
        if f.key != ApiKey::Produce as i16 {
            continue;
        }
        if let Ok(strata_broker::server::ParsedFrame::Request { body, .. }) =
            strata_broker::server::parse_frame(f.bytes.clone())
        {
            let RequestKind::Produce(ProduceRequest { topic_data, .. }) = *body else {
                continue;
            };
            for t in topic_data {
                for p in t.partition_data {
                    out.extend(p.records.into_iter().flat_map(split_batches));
                }
            }
        }
    }
    for f in &corpus.responses {
        let Ok(key) = ApiKey::try_from(f.key) else {
            continue;
        };
        if let Ok(ResponseKind::Fetch(resp)) =
            strata_client::decode_response(key, f.version, f.bytes.clone())
        {
            for t in resp.responses {
                for p in t.partitions {
                    out.extend(p.records.into_iter().flat_map(split_batches));
                }
            }
        }
    }
    out
}

/// Splits concatenated batches (each `[i64 base offset][i32 length][...]`).
fn split_batches(records: Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut pos = 0;
    while records.len() >= pos + 12 {
        let len = i32::from_be_bytes([
            records[pos + 8],
            records[pos + 9],
            records[pos + 10],
            records[pos + 11],
        ]);
        let Ok(len) = usize::try_from(len) else { break };
        let end = pos + 12 + len;
        if end > records.len() {
            break;
        }
        out.push(records.slice(pos..end));
        pos = end;
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().take(4096).map(|x| format!("{x:02x}")).collect()
}
