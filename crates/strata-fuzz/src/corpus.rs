//! Captured frames. A corpus file holds entries `[i16 api key][i16 version][i32 length][frame]`
//! (the frame without its own length prefix): request frames as real clients sent them
//! (`*.requests.bin`) and response frames as real brokers answered them (`*.responses.bin`).
//! `tests/fuzz/capture.py` records them through a proxy.
//!
//! Captured requests cover the APIs and versions clients chose; [`expand_requests`] re-encodes
//! each captured request at every version a listener advertises, and builds requests with
//! topics, partitions and configs ([`built_request`]) for the APIs no client was captured using
//! (the replication, admin and controller-listener APIs), so that every advertised API and
//! version has frames with real content. [`Requests::expand`] does it for both listener tables
//! and adds the metadata quorum's Raft frames, which a voter's controller listener takes.

use std::path::Path;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use strata_broker::handlers::api_versions::{self, ListenerKind};

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

/// The request frames a driver mutates, per listener.
#[derive(Debug, Default)]
pub struct Requests {
    /// For a client listener (`strata_broker::server::parse_frame`).
    pub broker: Vec<Frame>,
    /// For the controller listener of a voter: its API table's requests and Raft frames
    /// (api key [`strata_controller::RAFT_API_KEY`], JSON bodies).
    pub controller: Vec<Frame>,
}

impl Requests {
    /// Expands the captured requests for each listener's table and adds Raft frames.
    pub fn expand(corpus: &Corpus) -> Requests {
        let broker = expand_requests(&corpus.requests, |k| {
            api_versions::supported_on(k, ListenerKind::Broker)
        });
        let mut controller = expand_requests(&corpus.requests, |k| {
            api_versions::supported_on(k, ListenerKind::Controller)
        });
        controller.extend(raft_frames());
        Requests { broker, controller }
    }
}

/// One frame of each Raft request kind, as voters send them (request header v1, JSON body).
pub fn raft_frames() -> Vec<Frame> {
    strata_controller::raft_frames::samples()
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let mut b = BytesMut::new();
            b.put_i16(strata_controller::RAFT_API_KEY);
            b.put_i16(0);
            b.put_i32(i as i32 + 1);
            b.put_i16(-1); // null client id
            b.put_slice(&body);
            Frame {
                key: strata_controller::RAFT_API_KEY,
                version: 0,
                bytes: b.freeze(),
            }
        })
        .collect()
}

/// Adds, for every captured request, its re-encoding at each version in `versions(key)` that it
/// was not captured at. A request whose fields do not exist at a version is encoded with the
/// API's built request instead ([`built_request`], else its empty one), and an API no client
/// was captured using (OffsetForLeaderEpoch, the legacy AlterConfigs, the controller
/// listener's APIs, ...) gets its built request at every version, so every (API, version) pair
/// has a frame.
pub fn expand_requests(
    captured: &[Frame],
    versions: impl Fn(ApiKey) -> Option<(i16, i16)>,
) -> Vec<Frame> {
    let mut out = captured.to_vec();
    let header = RequestHeader::default().with_client_id(Some("strata-fuzz".into()));
    for key in ALL_KEYS {
        let Some((min, max)) = versions(key) else {
            continue;
        };
        if captured.iter().any(|f| f.key == key as i16) {
            continue;
        }
        for v in min.max(key.valid_versions().min)..=max {
            let header = header.clone().with_request_api_key(key as i16);
            let Some(body) = built_request(key, v).or_else(|| empty_request(key)) else {
                continue;
            };
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
            let encoded = encode_request(key, v, &header, &body).or_else(|| {
                built_request(key, v)
                    .or_else(|| empty_request(key))
                    .and_then(|b| encode_request(key, v, &header, &b))
            });
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

/// Every API an empty request can be built for (see [`empty_request`]): every API of either
/// listener's table.
pub const ALL_KEYS: [ApiKey; 42] = [
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
    ApiKey::OffsetDelete,
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
    ApiKey::DescribeAcls,
    ApiKey::CreateAcls,
    ApiKey::DeleteAcls,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
    ApiKey::DescribeUserScramCredentials,
    ApiKey::AlterUserScramCredentials,
    ApiKey::DescribeClientQuotas,
];

/// A request of `key` at `version` with content (topics, partitions, configs, listeners) for
/// the APIs no captured client uses, each field set only at the versions that have it; None for
/// the others.
pub fn built_request(key: ApiKey, version: i16) -> Option<RequestKind> {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    let s = |v: &str| StrBytes::from_string(v.to_string());
    let topic = |v: &str| TopicName(s(v));
    let topic_id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    Some(match key {
        ApiKey::OffsetDelete => {
            use offset_delete_request::*;
            RequestKind::OffsetDelete(
                OffsetDeleteRequest::default()
                    .with_group_id(GroupId(s("fuzz-group")))
                    .with_topics(vec![OffsetDeleteRequestTopic::default()
                        .with_name(topic("orders"))
                        .with_partitions(vec![
                            OffsetDeleteRequestPartition::default().with_partition_index(0),
                            OffsetDeleteRequestPartition::default().with_partition_index(1),
                        ])]),
            )
        }
        ApiKey::OffsetForLeaderEpoch => {
            use offset_for_leader_epoch_request::*;
            let partition = |p: i32| {
                OffsetForLeaderPartition::default()
                    .with_partition(p)
                    .with_current_leader_epoch(3)
                    .with_leader_epoch(2)
            };
            let mut req = OffsetForLeaderEpochRequest::default().with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(topic("orders"))
                    .with_partitions(vec![partition(0), partition(1)]),
                OffsetForLeaderTopic::default()
                    .with_topic(topic("payments"))
                    .with_partitions(vec![partition(5)]),
            ]);
            if version >= 3 {
                req = req.with_replica_id(BrokerId(-1));
            }
            RequestKind::OffsetForLeaderEpoch(req)
        }
        ApiKey::AlterConfigs => {
            use alter_configs_request::*;
            let config = |name: &str, value: Option<&str>| {
                AlterableConfig::default()
                    .with_name(s(name))
                    .with_value(value.map(s))
            };
            RequestKind::AlterConfigs(AlterConfigsRequest::default().with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("orders"))
                        .with_configs(vec![
                            config("retention.ms", Some("86400000")),
                            config("cleanup.policy", Some("compact,delete")),
                            config("min.insync.replicas", None),
                        ]),
                    AlterConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(s("1"))
                        .with_configs(vec![config(
                            "log.retention.check.interval.ms",
                            Some("1000"),
                        )]),
                ]))
        }
        ApiKey::ElectLeaders => {
            use elect_leaders_request::*;
            RequestKind::ElectLeaders(
                ElectLeadersRequest::default()
                    .with_election_type(if version >= 1 { 1 } else { 0 })
                    .with_timeout_ms(30_000)
                    .with_topic_partitions(Some(vec![
                        TopicPartitions::default()
                            .with_topic(topic("orders"))
                            .with_partitions(vec![0, 1, 2]),
                        TopicPartitions::default()
                            .with_topic(topic("payments"))
                            .with_partitions(vec![7]),
                    ])),
            )
        }
        ApiKey::AlterPartitionReassignments => {
            use alter_partition_reassignments_request::*;
            let partition = |p: i32, replicas: Option<Vec<i32>>| {
                ReassignablePartition::default()
                    .with_partition_index(p)
                    .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))
            };
            RequestKind::AlterPartitionReassignments(
                AlterPartitionReassignmentsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(vec![ReassignableTopic::default()
                        .with_name(topic("orders"))
                        .with_partitions(vec![
                            partition(0, Some(vec![1, 2, 3])),
                            partition(1, Some(vec![3, 1, 2])),
                            partition(2, None),
                        ])]),
            )
        }
        ApiKey::ListPartitionReassignments => {
            use list_partition_reassignments_request::*;
            RequestKind::ListPartitionReassignments(
                ListPartitionReassignmentsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(Some(vec![ListPartitionReassignmentsTopics::default()
                        .with_name(topic("orders"))
                        .with_partition_indexes(vec![0, 1, 2])])),
            )
        }
        // Resource type 2 = topic, pattern 3 = literal, operation 3 = read, permission 3 = allow.
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(
            DescribeAclsRequest::default()
                .with_resource_type_filter(2)
                .with_resource_name_filter(Some(s("orders")))
                .with_pattern_type_filter(3)
                .with_principal_filter(Some(s("User:alice")))
                .with_operation(3)
                .with_permission_type(3),
        ),
        ApiKey::CreateAcls => {
            use create_acls_request::*;
            RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![
                AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(s("orders"))
                    .with_resource_pattern_type(3)
                    .with_principal(s("User:alice"))
                    .with_host(s("*"))
                    .with_operation(3)
                    .with_permission_type(3),
            ]))
        }
        ApiKey::DeleteAcls => {
            use delete_acls_request::*;
            RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![
                DeleteAclsFilter::default()
                    .with_resource_type_filter(2)
                    .with_resource_name_filter(Some(s("orders")))
                    .with_pattern_type_filter(3)
                    .with_principal_filter(Some(s("User:alice")))
                    .with_host_filter(Some(s("*")))
                    .with_operation(3)
                    .with_permission_type(3),
            ]))
        }
        ApiKey::SaslHandshake => {
            RequestKind::SaslHandshake(SaslHandshakeRequest::default().with_mechanism(s("PLAIN")))
        }
        ApiKey::SaslAuthenticate => {
            RequestKind::SaslAuthenticate(SaslAuthenticateRequest::default().with_auth_bytes(
                bytes::Bytes::from_static(b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL"),
            ))
        }
        ApiKey::DescribeUserScramCredentials => {
            use describe_user_scram_credentials_request::*;
            RequestKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsRequest::default()
                    .with_users(Some(vec![UserName::default().with_name(s("alice"))])),
            )
        }
        // Mechanism 2 = SCRAM-SHA-512.
        ApiKey::AlterUserScramCredentials => {
            use alter_user_scram_credentials_request::*;
            RequestKind::AlterUserScramCredentials(
                AlterUserScramCredentialsRequest::default()
                    .with_upsertions(vec![ScramCredentialUpsertion::default()
                        .with_name(s("alice"))
                        .with_mechanism(2)
                        .with_iterations(8192)
                        .with_salt(bytes::Bytes::from_static(b"salt-of-sixteen!"))
                        .with_salted_password(bytes::Bytes::from_static(&[7; 64]))])
                    .with_deletions(vec![ScramCredentialDeletion::default()
                        .with_name(s("bob"))
                        .with_mechanism(1)]),
            )
        }
        // Match type 0 = exact.
        ApiKey::DescribeClientQuotas => {
            use describe_client_quotas_request::*;
            RequestKind::DescribeClientQuotas(
                DescribeClientQuotasRequest::default().with_components(vec![
                    ComponentData::default()
                        .with_entity_type(s("user"))
                        .with_match_type(0)
                        .with_match(Some(s("alice"))),
                ]),
            )
        }
        ApiKey::DescribeQuorum => {
            use describe_quorum_request::*;
            RequestKind::DescribeQuorum(DescribeQuorumRequest::default().with_topics(vec![
                TopicData::default()
                    .with_topic_name(topic("__cluster_metadata"))
                    .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
            ]))
        }
        ApiKey::BrokerRegistration => {
            use broker_registration_request::*;
            let mut req = BrokerRegistrationRequest::default()
                .with_broker_id(BrokerId(2))
                .with_cluster_id(s("MkU3OEVBNTcwNTJENDM2Qg"))
                .with_incarnation_id(topic_id)
                .with_listeners(vec![
                    Listener::default()
                        .with_name(s("PLAINTEXT"))
                        .with_host(s("10.0.0.2"))
                        .with_port(9092)
                        .with_security_protocol(0),
                    Listener::default()
                        .with_name(s("EXTERNAL"))
                        .with_host(s("broker-2.example.com"))
                        .with_port(9094)
                        .with_security_protocol(1),
                ])
                .with_features(vec![Feature::default()
                    .with_name(s("metadata.version"))
                    .with_min_supported_version(1)
                    .with_max_supported_version(21)])
                .with_rack(Some(s("zone-b")));
            if version >= 2 {
                req = req.with_log_dirs(vec![topic_id]);
            }
            if version >= 3 {
                req = req.with_previous_broker_epoch(41);
            }
            RequestKind::BrokerRegistration(req)
        }
        ApiKey::BrokerHeartbeat => {
            let mut req = BrokerHeartbeatRequest::default()
                .with_broker_id(BrokerId(2))
                .with_broker_epoch(41)
                .with_current_metadata_offset(1234)
                .with_want_shut_down(true);
            if version >= 1 {
                req = req.with_offline_log_dirs(vec![topic_id]);
            }
            RequestKind::BrokerHeartbeat(req)
        }
        ApiKey::AlterPartition => {
            use alter_partition_request::*;
            let isr = [2, 3];
            let mut partition = PartitionData::default()
                .with_partition_index(4)
                .with_leader_epoch(6)
                .with_partition_epoch(11);
            partition = if version >= 3 {
                partition.with_new_isr_with_epochs(
                    isr.iter()
                        .map(|&b| {
                            BrokerState::default()
                                .with_broker_id(BrokerId(b))
                                .with_broker_epoch(40 + i64::from(b))
                        })
                        .collect(),
                )
            } else {
                partition.with_new_isr(isr.iter().map(|&b| BrokerId(b)).collect())
            };
            RequestKind::AlterPartition(
                AlterPartitionRequest::default()
                    .with_broker_id(BrokerId(2))
                    .with_broker_epoch(41)
                    .with_topics(vec![TopicData::default()
                        .with_topic_id(topic_id)
                        .with_partitions(vec![partition])]),
            )
        }
        ApiKey::AllocateProducerIds => RequestKind::AllocateProducerIds(
            AllocateProducerIdsRequest::default()
                .with_broker_id(BrokerId(2))
                .with_broker_epoch(41),
        ),
        _ => return None,
    })
}

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
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(OffsetDeleteRequest::default()),
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
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(DescribeAclsRequest::default()),
        ApiKey::CreateAcls => RequestKind::CreateAcls(CreateAclsRequest::default()),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(DeleteAclsRequest::default()),
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(SaslHandshakeRequest::default()),
        ApiKey::SaslAuthenticate => {
            RequestKind::SaslAuthenticate(SaslAuthenticateRequest::default())
        }
        ApiKey::DescribeUserScramCredentials => {
            RequestKind::DescribeUserScramCredentials(DescribeUserScramCredentialsRequest::default())
        }
        ApiKey::AlterUserScramCredentials => {
            RequestKind::AlterUserScramCredentials(AlterUserScramCredentialsRequest::default())
        }
        ApiKey::DescribeClientQuotas => {
            RequestKind::DescribeClientQuotas(DescribeClientQuotasRequest::default())
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
