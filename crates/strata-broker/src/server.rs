//! The connection layer: accept loop, framing and the request/response cycle. A frame's length
//! is checked against `socket.request.max.bytes` before anything is allocated and its buffer
//! grows only with the bytes that arrive (`strata-kafka::frame`); a frame that cannot be decoded
//! closes that connection only, with a log line. Requests of one connection are
//! handled one at a time and answered in order, as Kafka does (its network layer mutes a channel
//! until the response is sent), which keeps responses ordered even when a fetch or join waits.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use strata_kafka::frame::{read_frame, FrameError, FrameLimits};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::broker::Broker;
use crate::handlers::api_versions::ListenerKind;
use crate::handlers::{self, api_versions};
use crate::sasl::{self, Authenticator, SaslSettings};
use crate::tls::TlsListener;

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("request of {size} bytes exceeds socket.request.max.bytes ({max})")]
    FrameTooLarge { size: i64, max: usize },
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("produce with acks=0 failed ({0}); closing the connection so the producer refreshes its metadata")]
    Acks0ProduceFailed(String),
    #[error("unsupported request: api key {api_key} version {version}")]
    Unsupported { api_key: i16, version: i16 },
    /// SASL: a request before or after the session, a failed authentication.
    #[error("{0}")]
    Authentication(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<FrameError> for ConnectionError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooLarge { size, max } => ConnectionError::FrameTooLarge { size, max },
            FrameError::TooSmall { .. } => ConnectionError::Malformed(e.to_string()),
            FrameError::Io(e) => ConnectionError::Io(e),
        }
    }
}

/// Accepts connections until shutdown; each connection runs in its own task on `tracker`. On
/// an SSL listener (`tls`) each connection first completes its TLS handshake; one that fails
/// (plaintext sent to the port, an untrusted or missing client certificate, a handshake that
/// never completes) is closed with a log line naming the peer. On a SASL listener (`sasl`)
/// each connection authenticates before anything but ApiVersions is served.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    tracker: TaskTracker,
    scope: ListenerScope,
    name: Arc<str>,
    tls: Option<Arc<TlsListener>>,
    sasl: Option<Arc<SaslSettings>>,
) {
    loop {
        let accepted = tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let broker = broker.clone();
                let name = name.clone();
                let tls = tls.clone();
                let auth = sasl.clone().map(Authenticator::new);
                let span = tracing::info_span!("connection", %peer, listener = %name);
                tracker.spawn(
                    async move {
                        let mut peer = Peer {
                            addr: peer,
                            scope,
                            listener: name,
                            principal: Arc::from(sasl::ANONYMOUS),
                        };
                        let result = match tls {
                            None => connection(broker, stream, peer, auth).await,
                            Some(tls) => match tls.accept(stream).await {
                                Ok(stream) => {
                                    // A client certificate names the principal (SASL, if
                                    // the listener has it, authenticates afterwards).
                                    match tls.principal(&stream) {
                                        Ok(Some(p)) => peer.principal = Arc::from(p),
                                        Ok(None) => {}
                                        Err(e) => {
                                            tracing::info!(error = %e, "client certificate refused; connection closed");
                                            return;
                                        }
                                    }
                                    connection(broker, stream, peer, auth).await
                                }
                                Err(e) => {
                                    tracing::info!(error = %e, "TLS handshake failed; connection closed");
                                    return;
                                }
                            },
                        };
                        match result {
                            Ok(()) => tracing::debug!("connection closed"),
                            Err(ConnectionError::Io(e)) => {
                                tracing::debug!(error = %e, "connection closed")
                            }
                            // Kafka logs failed authentications at INFO too.
                            Err(ConnectionError::Authentication(reason)) => {
                                tracing::info!(%reason, "closing connection")
                            }
                            Err(e) => tracing::warn!(error = %e, "closing connection"),
                        }
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    broker: Arc<Broker>,
    mut stream: S,
    peer: Peer,
    mut auth: Option<Authenticator>,
) -> Result<(), ConnectionError> {
    let limits = FrameLimits {
        min: 8,
        max: broker.config.socket_request_max_bytes,
    };
    let mut out = BytesMut::with_capacity(64 * 1024);
    loop {
        // Between requests a shutdown closes the connection; a request being handled finishes.
        // A frame cut short by the shutdown was never handled, so nothing is lost with it.
        // Before a SASL session, requests are held to Kafka's `sasl.server.max.receive.size`
        // (512 KiB): an unauthenticated peer cannot make the broker buffer a large frame.
        let limits = match &auth {
            Some(a) if !a.authenticated() => FrameLimits {
                max: limits.max.min(sasl::MAX_UNAUTHENTICATED_FRAME),
                ..limits
            },
            _ => limits,
        };
        let frame = tokio::select! {
            _ = broker.shutdown.cancelled() => return Ok(()),
            frame = read_frame(&mut stream, limits) => match frame? {
                Some(frame) => frame.freeze(),
                None => return Ok(()),
            },
        };
        out.clear();
        let outcome = handle_frame(&broker, &peer, frame, &mut out, auth.as_mut()).await?;
        let close = match outcome {
            Outcome::Silent => continue,
            Outcome::Respond => None,
            Outcome::RespondAndClose { delay, reason } => {
                // A failed authentication is answered late (brute force slows down) and
                // ends the connection.
                if !delay.is_zero() {
                    tokio::select! {
                        _ = broker.shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                Some(reason)
            }
        };
        stream.write_all(&out).await?;
        // A TLS stream holds the records it has not sent yet until flushed.
        stream.flush().await?;
        if let Some(reason) = close {
            let _ = stream.shutdown().await;
            return Err(ConnectionError::Authentication(reason));
        }
    }
}

/// What the connection does with a handled frame.
enum Outcome {
    /// Write the response in `out`.
    Respond,
    /// Nothing to write (produce with acks=0).
    Silent,
    /// Write the response after `delay`, then close (SASL refusals).
    RespondAndClose {
        delay: std::time::Duration,
        reason: String,
    },
}

/// A request frame whose header and body decoded.
pub enum ParsedFrame {
    /// ApiVersions at a version not served, answered in v0 (KIP-511).
    ApiVersionsTooNew { correlation_id: i32 },
    /// A Raft frame of another quorum member (see [`ListenerScope`]): its JSON
    /// body, answered by `Quorum::handle_rpc`.
    Raft { correlation_id: i32, body: Bytes },
    /// A request of an advertised API at an advertised version.
    Request {
        key: ApiKey,
        version: i16,
        header: RequestHeader,
        body: Box<RequestKind>,
    },
}

/// Checks and decodes one request frame of a client listener (without its length prefix).
/// `strata-fuzz` drives it directly with mutated frames.
pub fn parse_frame(frame: Bytes) -> Result<ParsedFrame, ConnectionError> {
    parse_frame_on(frame, ListenerScope::CLIENT)
}

/// What one listener takes: the API table of its kind and the quorum's Raft frames
/// ([`strata_controller::RAFT_API_KEY`]) only where a quorum member is reached: the controller
/// listener of a voter, and the inter-broker listener of a broker that is not a voter (the
/// leader replicates the metadata log to observers there). Anywhere else a Raft frame is an
/// unknown API key and closes its connection, as Kafka does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerScope {
    pub kind: ListenerKind,
    pub raft: bool,
}

impl ListenerScope {
    /// A client (or inter-broker) listener.
    pub const CLIENT: ListenerScope = ListenerScope {
        kind: ListenerKind::Broker,
        raft: false,
    };
    /// The controller listener of a voter.
    pub const VOTER_CONTROLLER: ListenerScope = ListenerScope {
        kind: ListenerKind::Controller,
        raft: true,
    };
}

/// The Raft frame of another quorum member: `[i16 api key][i16 version][i32 correlation id]
/// [i16 client id length][client id][JSON body]` (see `strata-controller`).
fn raft_frame(frame: Bytes) -> Result<ParsedFrame, ConnectionError> {
    if frame.len() < 10 {
        return Err(ConnectionError::Malformed(
            "raft frame shorter than its header".into(),
        ));
    }
    let correlation_id = frame.slice(4..8).get_i32();
    let client_len = frame.slice(8..10).get_i16();
    let start = 10 + client_len.max(0) as usize;
    if start > frame.len() {
        return Err(ConnectionError::Malformed(
            "raft frame shorter than its header".into(),
        ));
    }
    Ok(ParsedFrame::Raft {
        correlation_id,
        body: frame.slice(start..),
    })
}

/// Checks and decodes one request frame (without its length prefix) as a listener of `scope`
/// takes it. This is the only place the broker decodes requests and tells Raft frames apart.
pub fn parse_frame_on(frame: Bytes, scope: ListenerScope) -> Result<ParsedFrame, ConnectionError> {
    if frame.len() < 8 {
        return Err(ConnectionError::Malformed(format!(
            "frame of {} bytes is shorter than a request header",
            frame.len()
        )));
    }
    let api_key = frame.slice(0..2).get_i16();
    if scope.raft && api_key == strata_controller::RAFT_API_KEY {
        return raft_frame(frame);
    }
    let kind = scope.kind;
    let version = frame.slice(2..4).get_i16();
    let correlation_id = frame.slice(4..8).get_i32();
    let Ok(key) = ApiKey::try_from(api_key) else {
        return Err(ConnectionError::Unsupported { api_key, version });
    };
    let supported = api_versions::supported_on(key, kind);
    // KIP-511: an ApiVersions at any version not served is answered in v0 with the full table
    // (Kafka answers negative versions too).
    let served = |(min, max): (i16, i16)| (min..=max).contains(&version);
    if key == ApiKey::ApiVersions && supported.is_some_and(|range| !served(range)) {
        return Ok(ParsedFrame::ApiVersionsTooNew { correlation_id });
    }
    let Some((min, max)) = supported else {
        return Err(ConnectionError::Unsupported { api_key, version });
    };
    if version < min.max(api_versions::decodable_min(key)) || version > max {
        return Err(ConnectionError::Unsupported { api_key, version });
    }
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, key.request_header_version(version))
        .map_err(|e| ConnectionError::Malformed(format!("request header: {e:#}")))?;
    let body = RequestKind::decode(key, &mut buf, version)
        .map_err(|e| ConnectionError::Malformed(format!("{key:?} v{version}: {e:#}")))?;
    Ok(ParsedFrame::Request {
        key,
        version,
        header,
        body: Box::new(body),
    })
}

/// Who is at the other end of a connection, and where it connected.
struct Peer {
    addr: SocketAddr,
    scope: ListenerScope,
    /// The listener's name.
    listener: Arc<str>,
    /// What its requests run as without SASL: `User:ANONYMOUS`, or the mapped subject of its
    /// client certificate.
    principal: Arc<str>,
}

/// Decodes one request frame and writes the length-prefixed response into `out`; `auth` is
/// the connection's SASL state on a SASL listener (its principal replaces the peer's).
async fn handle_frame(
    broker: &Broker,
    peer: &Peer,
    frame: Bytes,
    out: &mut BytesMut,
    auth: Option<&mut Authenticator>,
) -> Result<Outcome, ConnectionError> {
    let scope = peer.scope;
    let kind = scope.kind;
    let parsed = parse_frame_on(frame, scope)?;
    // A Raft frame is never held, nor the SASL exchange before it: an observer's inter-broker
    // listener takes the metadata log it needs before it can serve anyone.
    let held = match &parsed {
        ParsedFrame::Raft { .. } => false,
        ParsedFrame::Request { key, .. } => !matches!(
            key,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        ),
        _ => true,
    };
    if held && kind == ListenerKind::Broker && !*broker.serving.borrow() {
        // Not serving clients yet: hold the request until the broker is (Kafka does not read
        // client requests before its first unfencing either).
        let mut serving = broker.serving.subscribe();
        tokio::select! {
            _ = serving.wait_for(|s| *s) => {}
            _ = broker.shutdown.cancelled() => return Ok(Outcome::Silent),
        }
    }
    let (key, version, header, body) = match parsed {
        ParsedFrame::Raft {
            correlation_id,
            body,
        } => {
            // Another node's Raft traffic runs as its SASL (or certificate) principal, which
            // must be allowed ClusterAction where requests are authorized.
            let principal = match auth.as_deref() {
                None => peer.principal.clone(),
                Some(auth) => auth
                    .admit_raft(std::time::Instant::now())
                    .map_err(|refused| ConnectionError::Authentication(refused.0))?,
            };
            if !broker.may_send_raft(&principal, peer.addr.ip()) {
                return Err(ConnectionError::Authentication(format!(
                    "{principal} may not send Raft frames: ClusterAction on the cluster is needed"
                )));
            }
            let answer = broker.quorum.handle_rpc(body).await;
            out.put_i32(4 + answer.len() as i32);
            out.put_i32(correlation_id);
            out.put_slice(&answer);
            return Ok(Outcome::Respond);
        }
        ParsedFrame::ApiVersionsTooNew { correlation_id } => {
            let body = api_versions::unsupported_version_response(kind);
            encode_response(out, ApiKey::ApiVersions, 0, correlation_id, &body)?;
            return Ok(Outcome::Respond);
        }
        ParsedFrame::Request {
            key,
            version,
            header,
            body,
        } => (key, version, header, body),
    };
    let correlation_id = header.correlation_id;
    let principal: Arc<str> = match auth {
        None => peer.principal.clone(),
        Some(auth) if auth.takes(key) => {
            let next = match *body {
                RequestKind::SaslHandshake(req) => {
                    let (resp, next) = auth.handshake(&req);
                    encode_response(out, key, version, correlation_id, &resp)?;
                    next
                }
                RequestKind::SaslAuthenticate(req) => {
                    let image = broker.image();
                    let nonce = server_nonce();
                    let now = std::time::Instant::now();
                    let (resp, next) = auth.authenticate(&req, version, &image, &nonce, now);
                    encode_response(out, key, version, correlation_id, &resp)?;
                    next
                }
                _ => unreachable!("the authenticator takes only SASL requests"),
            };
            return Ok(match next {
                sasl::Next::Continue => Outcome::Respond,
                sasl::Next::Close { delay, reason } => Outcome::RespondAndClose { delay, reason },
            });
        }
        Some(auth) => auth
            .admit(key, std::time::Instant::now())
            .map_err(|refused| ConnectionError::Authentication(refused.0))?,
    };
    let span = tracing::debug_span!(
        "request",
        api = ?key,
        version,
        correlation_id,
        client = header.client_id.as_deref().unwrap_or("")
    );
    let ctx = handlers::RequestContext {
        header,
        peer: peer.addr,
        listener: kind,
        listener_name: peer.listener.clone(),
        principal,
    };
    let started = std::time::Instant::now();
    let reply = handlers::dispatch(broker, key, *body, version, &ctx)
        .instrument(span)
        .await
        .map_err(|e| ConnectionError::Malformed(format!("{key:?} v{version}: {e:#}")))?;
    broker.metrics.observe_request(key, started.elapsed());
    match reply {
        handlers::Reply::None => Ok(Outcome::Silent),
        handlers::Reply::Close(errors) => Err(ConnectionError::Acks0ProduceFailed(errors)),
        handlers::Reply::Encoded(body) => {
            write_frame(out, key, version, correlation_id, |b| {
                b.put_slice(&body);
                Ok(())
            })?;
            Ok(Outcome::Respond)
        }
    }
}

/// A SCRAM server nonce: 24 random bytes, base64 (printable, no comma).
fn server_nonce() -> String {
    use base64::Engine;
    let bytes: [u8; 24] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Writes `[size][response header][body]` for `body` encoded at `version`.
pub fn encode_response<T: Encodable>(
    out: &mut BytesMut,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<(), ConnectionError> {
    write_frame(out, key, version, correlation_id, |b| {
        body.encode(b, version)
            .map_err(|e| ConnectionError::Malformed(format!("encoding response: {e}")))
    })
}

fn write_frame(
    out: &mut BytesMut,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: impl FnOnce(&mut BytesMut) -> Result<(), ConnectionError>,
) -> Result<(), ConnectionError> {
    let start = out.len();
    out.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(out, key.response_header_version(version))
        .map_err(|e| ConnectionError::Malformed(format!("encoding response header: {e}")))?;
    body(out)?;
    let len = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}
