//! The bounded fuzz run of the test command: mutated frames of every advertised API and version
//! through the broker's and the client's decoders; no panic and no allocation over the bound.
//! `strata-fuzz decode --frames 10000000` is the long run.

use std::collections::BTreeSet;
use std::path::Path;

use strata_fuzz::alloc::CountingAlloc;
use strata_fuzz::corpus::{coverage, expand_requests, Corpus};
use strata_fuzz::decode::{self, AllocBound};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn corpus() -> Corpus {
    Corpus::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/corpus"))
        .expect("tests/fuzz/corpus")
}

#[test]
fn every_advertised_api_and_version_has_frames() {
    let corpus = corpus();
    let requests = expand_requests(
        &corpus.requests,
        strata_broker::handlers::api_versions::supported,
    );
    let have: BTreeSet<(i16, i16)> = coverage(&requests).into_iter().collect();
    let missing: Vec<String> = strata_broker::handlers::api_versions::served()
        .flat_map(|(key, min, max)| {
            let from = min.max(strata_broker::handlers::api_versions::decodable_min(key));
            (from..=max).map(move |v| (key, v))
        })
        .filter(|(key, v)| !have.contains(&(*key as i16, *v)))
        .map(|(key, v)| format!("{key:?} v{v}"))
        .collect();
    assert!(missing.is_empty(), "no frames for {missing:?}");
}

#[test]
fn mutated_frames_never_panic_or_allocate_past_the_bound() {
    let corpus = corpus();
    let requests = expand_requests(
        &corpus.requests,
        strata_broker::handlers::api_versions::supported,
    );
    let report = decode::run(
        &corpus,
        &requests,
        300_000,
        None,
        20261204,
        AllocBound::DEFAULT,
    );
    assert_eq!(report.frames, 300_000);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert_eq!(report.panics(), 0);
    assert_eq!(report.over_bound(), 0);
    // The mutations reach the decoders behind the header checks: some frames still decode.
    assert!(
        report.broker_request.decoded > 1000,
        "{:?}",
        report.broker_request
    );
    assert!(
        report.client_response.decoded > 1000,
        "{:?}",
        report.client_response
    );
    assert!(
        report.record_batch.decoded > 1000,
        "{:?}",
        report.record_batch
    );
    // The counting allocator is installed: a decoded frame allocates something.
    assert!(report.broker_request.max_allocated > 0);
}
