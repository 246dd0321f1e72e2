//! Raft traffic between nodes: the frame format (a Kafka request header v1 with
//! [`RAFT_API_KEY`], then a JSON [`RaftRequest`]; the answer is an i32 correlation id and a JSON
//! [`RaftReply`]) and the client side, one connection per target that is re-dialled after any
//! error. A [`Dialer`] opens the connections: plain TCP by default, or whatever the node's
//! listeners need (TLS, a SASL session) when it is given one. The serving side is `Quorum::handle_rpc`, reached through the controller listener
//! of a voter. An answer's length comes from the peer, so it is read with
//! `strata_kafka::frame::read_frame`: checked against [`MAX_FRAME`] first, and its buffer grows
//! only with the bytes that arrive.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use strata_kafka::frame::{read_frame, FrameError, FrameLimits};
use strata_kafka::timestamp::now_ms;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::records::TypeConfig;
use crate::types::RAFT_API_KEY;

/// Largest answer frame accepted (checked before allocating).
const MAX_FRAME: usize = 256 << 20;
/// An answer holds at least its correlation id.
const ANSWER_LIMITS: FrameLimits = FrameLimits {
    min: 4,
    max: MAX_FRAME,
};

/// A Raft frame body from another node.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Asks a voter whether it holds any metadata state (bootstrap decision).
    Probe,
}

/// The answer body.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Probe(ProbeReply),
    /// The frame could not be served (not started yet, undecodable).
    Error(String),
}

/// Decodes a Raft frame body: the first thing a voter does with every frame its controller
/// listener takes (JSON; serde sizes nothing by a count it has not read).
pub(crate) fn decode_request(body: &[u8]) -> Result<RaftRequest, serde_json::Error> {
    serde_json::from_slice(body)
}

/// One body of each kind of Raft request, as voters send them (AppendEntries with entries
/// carrying metadata records, a snapshot chunk): the seeds `strata-fuzz` mutates.
pub(crate) fn sample_requests() -> Vec<Vec<u8>> {
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, SnapshotMeta, Vote};

    use crate::image::{Endpoint, PartitionImage};
    use crate::records::{MetadataCommand, MetadataRecord};

    let log_id = |term, index| LogId::new(CommittedLeaderId::new(term, 1), index);
    let records = vec![
        MetadataRecord::RegisterBroker {
            id: 2,
            incarnation_id: uuid::Uuid::from_u128(0x5eed),
            rack: Some("b".into()),
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "10.0.0.2".into(),
                port: 9092,
                security_protocol: "PLAINTEXT".into(),
            }],
        },
        MetadataRecord::Partition {
            topic: "orders".into(),
            partition: 3,
            state: PartitionImage {
                replicas: vec![1, 2, 3],
                isr: vec![1, 2],
                leader: 1,
                leader_epoch: 4,
                partition_epoch: 9,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
                truncation: None,
                producer_reset_epoch: None,
            },
        },
        MetadataRecord::TopicConfigs {
            name: "orders".into(),
            configs: [("retention.ms".to_string(), "86400000".to_string())].into(),
        },
    ];
    let requests = [
        RaftRequest::Probe,
        RaftRequest::Vote(VoteRequest::new(Vote::new(7, 2), Some(log_id(6, 41)))),
        RaftRequest::AppendEntries(AppendEntriesRequest {
            vote: Vote::new_committed(7, 1),
            prev_log_id: Some(log_id(6, 41)),
            entries: vec![
                Entry {
                    log_id: log_id(7, 42),
                    payload: EntryPayload::Blank,
                },
                Entry {
                    log_id: log_id(7, 43),
                    payload: EntryPayload::Normal(MetadataCommand(records)),
                },
            ],
            leader_commit: Some(log_id(7, 42)),
        }),
        RaftRequest::InstallSnapshot(InstallSnapshotRequest {
            vote: Vote::new_committed(7, 1),
            meta: SnapshotMeta {
                last_log_id: Some(log_id(7, 40)),
                last_membership: Default::default(),
                snapshot_id: "7-40-1".into(),
            },
            offset: 0,
            data: br#"{"image":{"brokers":{},"topics":{}}}"#.to_vec(),
            done: true,
        }),
    ];
    requests
        .iter()
        .filter_map(|r| serde_json::to_vec(r).ok())
        .collect()
}

/// What a node says about its state when probed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReply {
    pub node_id: u64,
    pub cluster_id: String,
    /// No log entry, no vote, nothing purged.
    pub pristine: bool,
    /// Whether this node has seen a committed entry (a quorum existed).
    pub has_committed: bool,
}

/// What the leader learns from replication answers (for DescribeQuorum).
#[derive(Debug, Default)]
pub struct ReplicaProgress {
    /// Target → ms since the epoch of its last successful AppendEntries.
    pub last_fetch_ms: Mutex<HashMap<u64, i64>>,
}

/// A byte stream Raft frames travel on, ready for the first frame (TLS and SASL done).
pub trait RaftStream: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> RaftStream for T {}

/// A connection being opened.
pub type DialFuture = Pin<Box<dyn Future<Output = std::io::Result<Box<dyn RaftStream>>> + Send>>;

/// Opens the connection to another node's listener at `addr` (`voter`: its controller
/// listener; else an observer's inter-broker listener).
pub trait Dial: Send + Sync {
    fn dial(&self, addr: &str, voter: bool) -> DialFuture;
}

/// How Raft connections are opened: plain TCP unless the node gives a [`Dial`].
#[derive(Clone, Default)]
pub struct Dialer(Option<Arc<dyn Dial>>);

impl Dialer {
    pub fn new(dial: Arc<dyn Dial>) -> Dialer {
        Dialer(Some(dial))
    }

    async fn open(&self, addr: &str, voter: bool) -> std::io::Result<Box<dyn RaftStream>> {
        match &self.0 {
            Some(dial) => dial.dial(addr, voter).await,
            None => {
                let s = TcpStream::connect(addr).await?;
                let _ = s.set_nodelay(true);
                Ok(Box::new(s))
            }
        }
    }
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Dialer(secured)"
        } else {
            "Dialer(tcp)"
        })
    }
}

/// Dials other nodes for Raft.
#[derive(Clone)]
pub struct Network {
    pub request_timeout: Duration,
    pub progress: Arc<ReplicaProgress>,
    pub dialer: Dialer,
    /// The voters' controller-listener addresses (any other target is an observer).
    pub voter_addrs: Arc<Vec<String>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Connection {
        Connection {
            target,
            addr: node.addr.clone(),
            voter: self.voter_addrs.contains(&node.addr),
            dialer: self.dialer.clone(),
            stream: None,
            correlation: 0,
            request_timeout: self.request_timeout,
            progress: self.progress.clone(),
        }
    }
}

/// Why one call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot connect to {0}: {1}")]
    Unreachable(String, std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("bad answer: {0}")]
    Protocol(String),
}

/// One connection to one target.
pub struct Connection {
    target: u64,
    addr: String,
    voter: bool,
    dialer: Dialer,
    stream: Option<Box<dyn RaftStream>>,
    correlation: i32,
    request_timeout: Duration,
    progress: Arc<ReplicaProgress>,
}

/// Reads one answer frame `[i32 size][i32 correlation id][JSON RaftReply]` and decodes it.
async fn read_answer<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    correlation: i32,
) -> Result<RaftReply, CallError> {
    let frame = match read_frame(stream, ANSWER_LIMITS).await {
        Ok(Some(frame)) => frame,
        Ok(None) => {
            return Err(CallError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the peer closed the connection before answering",
            )))
        }
        Err(FrameError::Io(e)) => return Err(CallError::Io(e)),
        Err(e) => return Err(CallError::Protocol(format!("answer: {e}"))),
    };
    let answered = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    if answered != correlation {
        return Err(CallError::Protocol(format!(
            "correlation id {answered}, expected {correlation}"
        )));
    }
    serde_json::from_slice(&frame[4..]).map_err(|e| CallError::Protocol(e.to_string()))
}

impl Connection {
    /// A connection outside Raft (probes of the voters).
    pub fn probe_to(addr: &str, timeout: Duration, dialer: &Dialer) -> Connection {
        Connection {
            target: 0,
            addr: addr.to_string(),
            voter: true,
            dialer: dialer.clone(),
            stream: None,
            correlation: 0,
            request_timeout: timeout,
            progress: Arc::default(),
        }
    }

    /// Sends one request and reads its answer; the connection is dropped on any failure.
    pub async fn call(
        &mut self,
        request: &RaftRequest,
        timeout: Duration,
    ) -> Result<RaftReply, CallError> {
        let result = tokio::time::timeout(timeout, self.call_inner(request))
            .await
            .unwrap_or(Err(CallError::Timeout));
        if result.is_err() {
            // A timeout may cut a frame in half (reading is not cancellation-safe): never reuse.
            self.stream = None;
        }
        result
    }

    async fn call_inner(&mut self, request: &RaftRequest) -> Result<RaftReply, CallError> {
        let body = serde_json::to_vec(request).map_err(|e| CallError::Protocol(e.to_string()))?;
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let mut frame = BytesMut::with_capacity(14 + body.len());
        frame.put_i32((2 + 2 + 4 + 2 + body.len()) as i32);
        frame.put_i16(RAFT_API_KEY);
        frame.put_i16(0);
        frame.put_i32(correlation);
        frame.put_i16(-1);
        frame.put_slice(&body);
        if self.stream.is_none() {
            let s = self
                .dialer
                .open(&self.addr, self.voter)
                .await
                .map_err(|e| CallError::Unreachable(self.addr.clone(), e))?;
            self.stream = Some(s);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(CallError::Protocol("no connection".into()));
        };
        stream.write_all(&frame).await?;
        read_answer(stream, correlation).await
    }

    fn rpc_error<E: std::error::Error>(&self, e: CallError) -> RPCError<u64, BasicNode, E> {
        match e {
            CallError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(&e)),
            _ => RPCError::Network(NetworkError::new(&e)),
        }
    }

    fn unexpected<E: std::error::Error>(&self, reply: RaftReply) -> RPCError<u64, BasicNode, E> {
        let e = CallError::Protocol(format!("unexpected answer {reply:?}"));
        RPCError::Network(NetworkError::new(&e))
    }
}

#[allow(clippy::result_large_err)]
impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let timeout = self
            .request_timeout
            .min(option.hard_ttl().max(Duration::from_millis(50)));
        let reply = match self.call(&RaftRequest::AppendEntries(rpc), timeout).await {
            Ok(r) => r,
            Err(CallError::Timeout) => {
                return Err(RPCError::Timeout(Timeout {
                    action: openraft::RPCTypes::AppendEntries,
                    id: 0,
                    target: self.target,
                    timeout,
                }))
            }
            Err(e) => return Err(self.rpc_error(e)),
        };
        match reply {
            RaftReply::AppendEntries(Ok(r)) => {
                self.progress
                    .last_fetch_ms
                    .lock()
                    .insert(self.target, now_ms());
                Ok(r)
            }
            RaftReply::AppendEntries(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let timeout = self.request_timeout.max(option.hard_ttl());
        match self.call(&RaftRequest::InstallSnapshot(rpc), timeout).await {
            Ok(RaftReply::InstallSnapshot(Ok(r))) => Ok(r),
            Ok(RaftReply::InstallSnapshot(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(self.unexpected(other)),
            Err(e) => Err(self.rpc_error(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let timeout = self
            .request_timeout
            .min(option.hard_ttl().max(Duration::from_millis(50)));
        match self.call(&RaftRequest::Vote(rpc), timeout).await {
            Ok(RaftReply::Vote(Ok(r))) => Ok(r),
            Ok(RaftReply::Vote(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(self.unexpected(other)),
            Err(e) => Err(self.rpc_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    thread_local! {
        // Const-initialised and without a destructor, so the allocator may touch it any time.
        static LARGEST: Cell<usize> = const { Cell::new(0) };
    }

    /// Remembers the largest single allocation of each thread.
    struct LargestAllocation;

    fn note(size: usize) {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    }

    // SAFETY: every call is forwarded to `System` unchanged; `note` is bookkeeping only.
    unsafe impl GlobalAlloc for LargestAllocation {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            unsafe { System.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static ALLOC: LargestAllocation = LargestAllocation;

    /// A peer on loopback that reads one request and answers with `announced` as the frame
    /// size, the request's correlation id and `sent`, then closes the connection.
    async fn peer(announced: i32, sent: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let len = s.read_i32().await.expect("request size");
            let mut request = vec![0; len as usize];
            s.read_exact(&mut request).await.expect("request");
            let mut answer = announced.to_be_bytes().to_vec();
            answer.extend_from_slice(&request[4..8]);
            answer.extend_from_slice(sent);
            let _ = s.write_all(&answer).await;
        });
        addr
    }

    // On one thread, so that the peer, the client and the allocation record share it.
    #[tokio::test(flavor = "current_thread")]
    async fn an_answer_announcing_the_maximum_costs_only_what_arrives() {
        let addr = peer(MAX_FRAME as i32, b"{\"Probe\":").await;
        LARGEST.with(|l| l.set(0));
        let mut conn = Connection::probe_to(&addr, Duration::from_secs(10), &Dialer::default());
        let err = conn
            .call(&RaftRequest::Probe, Duration::from_secs(10))
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(&err, CallError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "{err}"
        );
        let largest = LARGEST.with(Cell::get);
        assert!(
            largest <= 2 * strata_kafka::frame::INITIAL_CAPACITY,
            "a 256 MiB announcement with 13 bytes sent allocated {largest} bytes at once"
        );
    }

    #[test]
    fn the_sample_of_each_request_kind_decodes() {
        let samples = sample_requests();
        assert_eq!(samples.len(), 4);
        for body in &samples {
            let decoded = decode_request(body);
            assert!(
                decoded.is_ok(),
                "{}: {decoded:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_answer_over_the_maximum_is_refused_before_reading_it() {
        let addr = peer(MAX_FRAME as i32 + 1, b"").await;
        let mut conn = Connection::probe_to(&addr, Duration::from_secs(10), &Dialer::default());
        let err = conn
            .call(&RaftRequest::Probe, Duration::from_secs(10))
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(&err, CallError::Protocol(m) if m.contains("exceeds the limit")),
            "{err}"
        );
    }
}
