//! Captured frames. A corpus file holds entries `[i16 api key][i16 version][i32 length][frame]`
//! (the frame without its own length prefix): request frames as real clients sent them
//! (`*.requests.bin`) and response frames as real brokers answered them (`*.responses.bin`).
//! `tests/fuzz/capture.py` records them through a proxy.
//!
//! Captured requests cover the APIs and versions clients chose; [`expand_requests`] re-encodes
//! each captured request at every version the broker advertises, so that every advertised API
//! and version has frames with real content.

use std::path::Path;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Decodable, Encodable};

/// One captured frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub key: i16,
    pub version: i16,
    pub bytes: Bytes,
}

/// Request and response frames of a corpus directory.
#[derive(Debug, Default)]
pub struct Corpus {
    pub requests: Vec<Frame>,
    pub responses: Vec<Frame>,
}

impl Corpus {
    /// Reads every `*.requests.bin` and `*.responses.bin` file of `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Corpus> {
        let mut corpus = Corpus::default();
        let mut paths: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        for path in paths {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let target = if name.ends_with(".requests.bin") {
                &mut corpus.requests
            } else if name.ends_with(".responses.bin") {
                &mut corpus.responses
            } else {
                continue;
            };
            let bytes = std::fs::read(&path)?;
            target.extend(parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
        }
        anyhow::ensure!(
            !corpus.requests.is_empty(),
            "no request frames in {}",
            dir.display()
        );
        Ok(corpus)
    }
}

/// Parses the entries of one corpus file.
pub fn parse(mut bytes: &[u8]) -> Result<Vec<Frame>, String> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 8 {
            return Err("truncated entry header".into());
        }
        let key = bytes.get_i16();
        let version = bytes.get_i16();
        let len = bytes.get_i32();
        let len = usize::try_from(len).map_err(|_| format!("negative length {len}"))?;
        if bytes.len() < len {
            return Err(format!("entry of {len} bytes, {} left", bytes.len()));
        }
        frames.push(Frame {
            key,
            version,
            bytes: Bytes::copy_from_slice(&bytes[..len]),
        });
        bytes.advance(len);
    }
    Ok(frames)
}

/// Encodes entries in the corpus format.
pub fn serialize(frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for f in frames {
        out.put_i16(f.key);
        out.put_i16(f.version);
        out.put_i32(f.bytes.len() as i32);
        out.put_slice(&f.bytes);
    }
    out.to_vec()
}

/// Adds, for every captured request, its re-encoding at each version in `versions(key)` that it
/// was not captured at. A request whose fields do not exist at a version is encoded with the
/// API's empty request instead, and an API no client was captured using (OffsetForLeaderEpoch,
/// the legacy AlterConfigs) gets its empty request at every version, so every (API, version)
/// pair has a frame.
pub fn expand_requests(
    captured: &[Frame],
    versions: impl Fn(ApiKey) -> Option<(i16, i16)>,
) -> Vec<Frame> {
    let mut out = captured.to_vec();
    let header = RequestHeader::default().with_client_id(Some("strata-fuzz".into()));
    for key in ALL_KEYS {
        let (Some((min, max)), Some(body)) = (versions(key), empty_request(key)) else {
            continue;
        };
        if captured.iter().any(|f| f.key == key as i16) {
            continue;
        }
        for v in min.max(key.valid_versions().min)..=max {
            let header = header.clone().with_request_api_key(key as i16);
            if let Some(bytes) = encode_request(key, v, &header, &body) {
                out.push(Frame {
                    key: key as i16,
                    version: v,
                    bytes,
                });
            }
        }
    }
    for f in captured {
        let Ok(key) = ApiKey::try_from(f.key) else {
            continue;
        };
        let Some((min, max)) = versions(key) else {
            continue;
        };
        let mut buf = f.bytes.clone();
        let Ok(header) = RequestHeader::decode(&mut buf, key.request_header_version(f.version))
        else {
            continue;
        };
        let Ok(body) = RequestKind::decode(key, &mut buf, f.version) else {
            continue;
        };
        for v in min.max(key.valid_versions().min)..=max {
            if v == f.version {
                continue;
            }
            let encoded = encode_request(key, v, &header, &body)
                .or_else(|| empty_request(key).and_then(|b| encode_request(key, v, &header, &b)));
            if let Some(bytes) = encoded {
                out.push(Frame {
                    key: f.key,
                    version: v,
                    bytes,
                });
            }
        }
    }
    out
}

fn encode_request(
    key: ApiKey,
    version: i16,
    header: &RequestHeader,
    body: &RequestKind,
) -> Option<Bytes> {
    let mut out = BytesMut::new();
    let header = header.clone().with_request_api_version(version);
    header
        .encode(&mut out, key.request_header_version(version))
        .ok()?;
    body.encode(&mut out, version).ok()?;
    Some(out.freeze())
}

/// Every API an empty request can be built for (see [`empty_request`]).
const ALL_KEYS: [ApiKey; 33] = [
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::SyncGroup,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::DeleteRecords,
    ApiKey::InitProducerId,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::CreatePartitions,
    ApiKey::DeleteGroups,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::DescribeCluster,
    ApiKey::DescribeQuorum,
    ApiKey::BrokerRegistration,
    ApiKey::BrokerHeartbeat,
    ApiKey::AlterPartition,
    ApiKey::AllocateProducerIds,
    ApiKey::ElectLeaders,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
];

/// The API's request with every field at its default.
fn empty_request(key: ApiKey) -> Option<RequestKind> {
    use kafka_protocol::messages::*;
    Some(match key {
        ApiKey::Produce => RequestKind::Produce(ProduceRequest::default()),
        ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default()),
        ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(OffsetCommitRequest::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(OffsetFetchRequest::default()),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(FindCoordinatorRequest::default()),
        ApiKey::JoinGroup => RequestKind::JoinGroup(JoinGroupRequest::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(LeaveGroupRequest::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(SyncGroupRequest::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(DescribeGroupsRequest::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(DeleteRecordsRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()),
        ApiKey::OffsetForLeaderEpoch => {
            RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default())
        }
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(DescribeConfigsRequest::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default()),
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(CreatePartitionsRequest::default())
        }
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(DeleteGroupsRequest::default()),
        ApiKey::IncrementalAlterConfigs => {
            RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default())
        }
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::DescribeQuorum => RequestKind::DescribeQuorum(DescribeQuorumRequest::default()),
        ApiKey::BrokerRegistration => {
            RequestKind::BrokerRegistration(BrokerRegistrationRequest::default())
        }
        ApiKey::BrokerHeartbeat => RequestKind::BrokerHeartbeat(BrokerHeartbeatRequest::default()),
        ApiKey::AlterPartition => RequestKind::AlterPartition(AlterPartitionRequest::default()),
        ApiKey::AllocateProducerIds => {
            RequestKind::AllocateProducerIds(AllocateProducerIdsRequest::default())
        }
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(ElectLeadersRequest::default()),
        ApiKey::AlterPartitionReassignments => {
            RequestKind::AlterPartitionReassignments(AlterPartitionReassignmentsRequest::default())
        }
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default())
        }
        _ => return None,
    })
}

/// The (API, version) pairs of `frames`, sorted.
pub fn coverage(frames: &[Frame]) -> Vec<(i16, i16)> {
    let mut pairs: Vec<_> = frames.iter().map(|f| (f.key, f.version)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let frames = vec![
            Frame {
                key: 3,
                version: 12,
                bytes: Bytes::from_static(b"abc"),
            },
            Frame {
                key: 18,
                version: 0,
                bytes: Bytes::new(),
            },
        ];
        let parsed = parse(&serialize(&frames)).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!((parsed[0].key, parsed[0].version), (3, 12));
        assert_eq!(&parsed[0].bytes[..], b"abc");
        assert!(parse(&[0, 3, 0, 1, 0, 0, 0, 9, 1]).is_err());
    }

    #[test]
    fn expansion_covers_every_version() {
        let mut header_and_body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(12)
            .with_correlation_id(7)
            .encode(
                &mut header_and_body,
                ApiKey::Metadata.request_header_version(12),
            )
            .unwrap();
        kafka_protocol::messages::MetadataRequest::default()
            .encode(&mut header_and_body, 12)
            .unwrap();
        let captured = vec![Frame {
            key: ApiKey::Metadata as i16,
            version: 12,
            bytes: header_and_body.freeze(),
        }];
        let all = expand_requests(&captured, |k| (k == ApiKey::Metadata).then_some((0, 12)));
        let versions: Vec<i16> = coverage(&all).into_iter().map(|(_, v)| v).collect();
        assert_eq!(versions, (0..=12).collect::<Vec<_>>());
    }
}
