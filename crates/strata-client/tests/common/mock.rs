//! A scripted broker for the paths a healthy single Strata broker never takes (retriable
//! errors, old protocol versions): it decodes request headers with `kafka-protocol` and hands
//! each request to a test's handler, which returns the encoded response body.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers one request: (api, version, body) → encoded response body; an empty body leaves
/// the request unanswered.
pub type Handler = dyn Fn(ApiKey, i16, Bytes) -> Vec<u8> + Send + Sync;

pub struct MockBroker {
    pub addr: String,
    pub port: u16,
    /// Every request received, in order.
    pub log: Arc<Mutex<Vec<(ApiKey, i16)>>>,
}

impl MockBroker {
    pub async fn start(make: impl FnOnce(u16) -> Box<Handler>) -> MockBroker {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handler: Arc<Handler> = Arc::from(make(port));
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = log.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let handler = handler.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    loop {
                        let Ok(size) = stream.read_i32().await else {
                            return;
                        };
                        let mut frame = vec![0u8; size as usize];
                        if stream.read_exact(&mut frame).await.is_err() {
                            return;
                        }
                        let mut frame = Bytes::from(frame);
                        let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]]))
                            .expect("api key");
                        let version = i16::from_be_bytes([frame[2], frame[3]]);
                        let header =
                            RequestHeader::decode(&mut frame, key.request_header_version(version))
                                .expect("header");
                        seen.lock().push((key, version));
                        let body = handler(key, version, frame);
                        if body.is_empty() {
                            continue; // an empty answer means "never answer"
                        }
                        let mut out = BytesMut::new();
                        out.put_i32(0);
                        // An ApiVersions error reply is always a v0 body with a v0 header.
                        ResponseHeader::default()
                            .with_correlation_id(header.correlation_id)
                            .encode(&mut out, key.response_header_version(version))
                            .expect("response header");
                        out.put_slice(&body);
                        let len = (out.len() - 4) as i32;
                        out[0..4].copy_from_slice(&len.to_be_bytes());
                        if stream.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        MockBroker {
            addr: format!("127.0.0.1:{port}"),
            port,
            log,
        }
    }

    /// How many requests of `key` arrived.
    pub fn count(&self, key: ApiKey) -> usize {
        self.log.lock().iter().filter(|(k, _)| *k == key).count()
    }
}

pub fn encode<T: Encodable>(body: &T, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    body.encode(&mut buf, version).expect("encode response");
    buf.to_vec()
}

/// An ApiVersions response advertising `apis` as (api, min, max).
pub fn api_versions(apis: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        apis.iter()
            .map(|(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(*k as i16)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect(),
    )
}

/// Metadata naming this mock as broker 1 (and controller) with `topics` of one partition.
pub fn metadata(port: u16, topics: &[&str]) -> MetadataResponse {
    MetadataResponse::default()
        .with_cluster_id(Some(StrBytes::from_static_str("mock")))
        .with_controller_id(BrokerId(1))
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(1))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(i32::from(port))])
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    MetadataResponseTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.to_string()))))
                        .with_partitions(vec![MetadataResponsePartition::default()
                            .with_partition_index(0)
                            .with_leader_id(BrokerId(1))
                            .with_leader_epoch(0)
                            .with_replica_nodes(vec![BrokerId(1)])
                            .with_isr_nodes(vec![BrokerId(1)])])
                })
                .collect(),
        )
}
