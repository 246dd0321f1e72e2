//! The bounded fuzz run of the test command: mutated frames of every advertised API and version
//! of both listeners (client and controller, Raft frames included) through the broker's and the
//! client's decoders; no panic and no allocation over the bound.
//! `strata-fuzz decode --frames 10000000` is the long run.

use std::collections::BTreeSet;
use std::path::Path;

use kafka_protocol::messages::{ApiKey, RequestKind};
use strata_broker::handlers::api_versions::{decodable_min, supported_on, ListenerKind};
use strata_broker::server::{parse_frame_on, ListenerScope, ParsedFrame};
use strata_fuzz::alloc::CountingAlloc;
use strata_fuzz::corpus::{built_request, coverage, Corpus, Requests};
use strata_fuzz::decode::{self, AllocBound};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn corpus() -> Corpus {
    Corpus::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/corpus"))
        .expect("tests/fuzz/corpus")
}

/// Every (API, version) a listener of `kind` advertises that `frames` has no frame for.
fn missing(frames: &[strata_fuzz::corpus::Frame], kind: ListenerKind) -> Vec<String> {
    let have: BTreeSet<(i16, i16)> = coverage(frames).into_iter().collect();
    strata_fuzz::corpus::ALL_KEYS
        .iter()
        .filter_map(|&key| Some((key, supported_on(key, kind)?)))
        .flat_map(|(key, (min, max))| (min.max(decodable_min(key))..=max).map(move |v| (key, v)))
        .filter(|(key, v)| !have.contains(&(*key as i16, *v)))
        .map(|(key, v)| format!("{key:?} v{v}"))
        .collect()
}

#[test]
fn every_advertised_api_and_version_of_both_listeners_has_frames() {
    let requests = Requests::expand(&corpus());
    // The table of served APIs and the list here agree.
    for (key, _, _) in strata_broker::handlers::api_versions::served() {
        assert!(
            strata_fuzz::corpus::ALL_KEYS.contains(&key),
            "{key:?} missing here"
        );
    }
    let broker = missing(&requests.broker, ListenerKind::Broker);
    assert!(
        broker.is_empty(),
        "client listener: no frames for {broker:?}"
    );
    let controller = missing(&requests.controller, ListenerKind::Controller);
    assert!(
        controller.is_empty(),
        "controller listener: no frames for {controller:?}"
    );
}

#[test]
fn apis_no_client_was_captured_using_get_requests_with_content() {
    let requests = Requests::expand(&corpus());
    let built = strata_fuzz::corpus::ALL_KEYS
        .iter()
        .filter(|&&k| built_request(k, k.valid_versions().max).is_some());
    let mut checked = 0;
    for &key in built {
        for (kind, scope, frames) in [
            (
                ListenerKind::Broker,
                ListenerScope::CLIENT,
                &requests.broker,
            ),
            (
                ListenerKind::Controller,
                ListenerScope::VOTER_CONTROLLER,
                &requests.controller,
            ),
        ] {
            let Some((min, max)) = supported_on(key, kind) else {
                continue;
            };
            for v in min.max(decodable_min(key))..=max {
                let content = frames
                    .iter()
                    .filter(|f| (f.key, f.version) == (key as i16, v))
                    .filter_map(|f| match parse_frame_on(f.bytes.clone(), scope) {
                        Ok(ParsedFrame::Request { body, .. }) => Some(body),
                        _ => None,
                    })
                    .any(|body| Some(*body) != empty_of(key));
                assert!(content, "{key:?} v{v} ({kind:?}): only empty requests");
                checked += 1;
            }
        }
    }
    // OffsetForLeaderEpoch, AlterConfigs, ElectLeaders, the two reassignment APIs,
    // DescribeQuorum and the four broker-lifecycle APIs of the controller listener.
    assert!(checked >= 20, "{checked} (API, version) pairs checked");
}

/// The request of `key` with every field at its default.
fn empty_of(key: ApiKey) -> Option<RequestKind> {
    use kafka_protocol::messages::*;
    Some(match key {
        ApiKey::OffsetForLeaderEpoch => {
            RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default())
        }
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default()),
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(ElectLeadersRequest::default()),
        ApiKey::AlterPartitionReassignments => {
            RequestKind::AlterPartitionReassignments(AlterPartitionReassignmentsRequest::default())
        }
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default())
        }
        ApiKey::DescribeQuorum => RequestKind::DescribeQuorum(DescribeQuorumRequest::default()),
        ApiKey::BrokerRegistration => {
            RequestKind::BrokerRegistration(BrokerRegistrationRequest::default())
        }
        ApiKey::BrokerHeartbeat => RequestKind::BrokerHeartbeat(BrokerHeartbeatRequest::default()),
        ApiKey::AlterPartition => RequestKind::AlterPartition(AlterPartitionRequest::default()),
        ApiKey::AllocateProducerIds => {
            RequestKind::AllocateProducerIds(AllocateProducerIdsRequest::default())
        }
        _ => return None,
    })
}

#[test]
fn raft_frames_are_fuzzed_through_the_controller_listener_only() {
    let requests = Requests::expand(&corpus());
    let raft: Vec<_> = requests
        .controller
        .iter()
        .filter(|f| f.key == strata_controller::RAFT_API_KEY)
        .collect();
    assert_eq!(raft.len(), 4, "one frame of each Raft request kind");
    for f in raft {
        let Ok(ParsedFrame::Raft { body, .. }) =
            parse_frame_on(f.bytes.clone(), ListenerScope::VOTER_CONTROLLER)
        else {
            panic!("a voter's controller listener does not take a Raft frame");
        };
        strata_controller::raft_frames::decode(&body).expect("the quorum decodes it");
        assert!(
            strata_broker::server::parse_frame(f.bytes.clone()).is_err(),
            "a client listener takes a Raft frame"
        );
    }
    assert!(!requests
        .broker
        .iter()
        .any(|f| f.key == strata_controller::RAFT_API_KEY));
}

#[test]
fn mutated_frames_never_panic_or_allocate_past_the_bound() {
    let corpus = corpus();
    let requests = Requests::expand(&corpus);
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
        report.controller_request.decoded > 500,
        "{:?}",
        report.controller_request
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
