//! Raft traffic between nodes: the frame format (a Kafka request header v1 with
//! [`RAFT_API_KEY`], then a JSON [`RaftRequest`]; the answer is an i32 correlation id and a JSON
//! [`RaftReply`]) and the client side, one TCP connection per target that is re-dialled after
//! any error. The serving side is `Quorum::handle_rpc`, reached through the broker's listener.

use std::collections::HashMap;
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::records::TypeConfig;
use crate::types::RAFT_API_KEY;

/// Largest answer frame accepted (checked before allocating).
const MAX_FRAME: usize = 256 << 20;

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

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Dials other nodes for Raft.
#[derive(Clone)]
pub struct Network {
    pub request_timeout: Duration,
    pub progress: Arc<ReplicaProgress>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Connection {
        Connection {
            target,
            addr: node.addr.clone(),
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
    stream: Option<TcpStream>,
    correlation: i32,
    request_timeout: Duration,
    progress: Arc<ReplicaProgress>,
}

impl Connection {
    /// A connection outside Raft (probes).
    pub fn probe_to(addr: &str, timeout: Duration) -> Connection {
        Connection {
            target: 0,
            addr: addr.to_string(),
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
            let s = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| CallError::Unreachable(self.addr.clone(), e))?;
            let _ = s.set_nodelay(true);
            self.stream = Some(s);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(CallError::Protocol("no connection".into()));
        };
        stream.write_all(&frame).await?;
        let len = stream.read_i32().await?;
        if len < 4 || len as usize > MAX_FRAME {
            return Err(CallError::Protocol(format!("answer frame of {len} bytes")));
        }
        let answered = stream.read_i32().await?;
        if answered != correlation {
            return Err(CallError::Protocol(format!(
                "correlation id {answered}, expected {correlation}"
            )));
        }
        let mut body = vec![0u8; len as usize - 4];
        stream.read_exact(&mut body).await?;
        serde_json::from_slice(&body).map_err(|e| CallError::Protocol(e.to_string()))
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
