//! One TCP connection to one broker. Opening it performs the ApiVersions handshake (KIP-511
//! fallback included), so every request afterwards is sent at a negotiated version. Requests
//! are pipelined: a writer task sends frames in submission order and a reader task matches
//! responses to requests by correlation id, so callers never wait for each other's round trip
//! (the broker still handles a connection's requests one at a time, which is why the client
//! keeps separate connections for fetches and produces). Frames are length-checked before
//! anything is allocated. When
//! the connection breaks, every request waiting on it fails with [`Error::Io`] and the
//! connection reports itself closed so that the pool opens a new one; a request that times out
//! closes the connection too (as the Java client does), since the broker is not answering.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use parking_lot::Mutex;
use strata_kafka::frame::{read_frame, FrameError, FrameLimits};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::security::{Exchange, SaslCredentials, Security};
use crate::versions::{api_name, implemented, BrokerVersions};
use crate::Error;

/// Largest response frame accepted; anything bigger is treated as a broken stream.
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// `UNSUPPORTED_VERSION`: the ApiVersions reply to a too-new request (KIP-511).
const UNSUPPORTED_VERSION: i16 = 35;

/// A request waiting for its response.
struct Pending {
    key: ApiKey,
    version: i16,
    reply: oneshot::Sender<Result<Bytes, Error>>,
}

/// What the writer task is asked to do with a frame.
enum Expect {
    /// Register the request and deliver its response body.
    Response(Pending),
    /// No response will come (produce with acks=0): report once the frame is written.
    Written(oneshot::Sender<Result<(), Error>>),
}

struct Outgoing {
    correlation_id: i32,
    frame: Bytes,
    expect: Expect,
}

/// State shared by the handle and its two tasks.
struct Shared {
    addr: String,
    pending: Mutex<HashMap<i32, Pending>>,
    closed: AtomicBool,
    /// What closed the connection (its first failure), told to requests that come after it:
    /// a broker's TLS alert read just before the first request was sent, for one.
    reason: Mutex<Option<String>>,
}

/// A stream a connection runs on: TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<S: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for S {}

impl Shared {
    fn closed_error(&self) -> Error {
        let what = match &*self.reason.lock() {
            Some(reason) => format!("connection to {} is closed: {reason}", self.addr),
            None => format!("connection to {} is closed", self.addr),
        };
        Error::io(io::ErrorKind::ConnectionAborted, what)
    }

    /// Marks the connection closed and fails every request waiting on it.
    fn fail(&self, error: Error) {
        self.reason.lock().get_or_insert_with(|| error.to_string());
        self.closed.store(true, Ordering::SeqCst);
        let pending: Vec<Pending> = self.pending.lock().drain().map(|(_, p)| p).collect();
        for p in pending {
            let _ = p.reply.send(Err(error.clone()));
        }
    }
}

/// A handshaken connection to one broker.
pub(crate) struct Connection {
    shared: Arc<Shared>,
    versions: BrokerVersions,
    client_id: StrBytes,
    next_correlation: AtomicI32,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    tasks: [JoinHandle<()>; 2],
    /// When the broker ends this connection's SASL session (`connections.max.reauth.ms`): the
    /// connection counts as closed a little before, so the pool opens a new one.
    session_end: Option<tokio::time::Instant>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Connection {
    /// Opens a TCP connection to `addr` and negotiates versions, all within `timeout`.
    pub(crate) async fn open(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Connection, Error> {
        Connection::open_secured(addr, client_id, timeout, &Security::default()).await
    }

    /// Opens a connection to `addr` as `security` says (TLS handshake, ApiVersions, SASL),
    /// all within `timeout`.
    pub(crate) async fn open_secured(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        security: &Security,
    ) -> Result<Connection, Error> {
        let connect_error = |source: io::Error| Error::Connect {
            addr: addr.to_string(),
            source,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let stream = dial(addr, deadline, timeout, security).await?;
        let mut conn = Connection::spawn(addr, client_id, stream);
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let versions = conn.handshake(remaining).await;
        let negotiated = match (versions, &security.sasl) {
            (Ok(versions), Some(creds)) => {
                conn.versions = versions;
                conn.authenticate(creds, deadline).await.map(|lifetime| {
                    // Reconnect at 90% of the session, as clients re-authenticate then.
                    conn.session_end = (lifetime > 0).then(|| {
                        tokio::time::Instant::now()
                            + Duration::from_millis(lifetime as u64 * 9 / 10)
                    });
                    conn.versions.clone()
                })
            }
            (other, _) => other,
        };
        match negotiated {
            Ok(versions) => {
                conn.versions = versions;
                Ok(conn)
            }
            Err(e) => {
                conn.close();
                Err(match e {
                    Error::Timeout { what } => connect_error(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("handshake: {what}"),
                    )),
                    other => other,
                })
            }
        }
    }

    fn spawn(addr: &str, client_id: &str, stream: Box<dyn Stream>) -> Connection {
        let shared = Arc::new(Shared {
            addr: addr.to_string(),
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            reason: Mutex::new(None),
        });
        let (read, write) = tokio::io::split(stream);
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(shared.clone(), write, rx));
        let reader = tokio::spawn(read_loop(shared.clone(), read));
        Connection {
            shared,
            versions: BrokerVersions::default(),
            client_id: StrBytes::from_string(client_id.to_string()),
            next_correlation: AtomicI32::new(0),
            outgoing: tx,
            tasks: [writer, reader],
            session_end: None,
        }
    }

    /// SaslHandshake and the mechanism's SaslAuthenticate exchange by `deadline`; returns the
    /// session lifetime the broker gives (0: none).
    async fn authenticate(
        &self,
        creds: &SaslCredentials,
        deadline: tokio::time::Instant,
    ) -> Result<i64, Error> {
        let versions = (
            self.versions.negotiate(ApiKey::SaslHandshake)?,
            self.versions.negotiate(ApiKey::SaslAuthenticate)?,
        );
        let mut peer = Pipelined {
            conn: self,
            deadline,
        };
        sasl_exchange(&mut peer, creds, versions).await
    }

    /// Sends ApiVersions at the highest version we know, falling back to the version the
    /// broker names when it answers UNSUPPORTED_VERSION in the v0 format (KIP-511).
    async fn handshake(&self, timeout: Duration) -> Result<BrokerVersions, Error> {
        let (_, ours_max) = implemented(ApiKey::ApiVersions);
        let mut version = ours_max;
        for _ in 0..2 {
            let mut req = ApiVersionsRequest::default();
            if version >= 3 {
                req = req
                    .with_client_software_name(StrBytes::from_static_str("strata-client"))
                    .with_client_software_version(StrBytes::from_static_str(env!(
                        "CARGO_PKG_VERSION"
                    )));
            }
            let body = self
                .roundtrip(ApiKey::ApiVersions, version, &req, timeout)
                .await?;
            // The error code leads the body in every version, so it can be read before
            // knowing which version the broker answered with.
            let code = body
                .get(0..2)
                .map(|b| i16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(|| Error::Protocol("empty ApiVersions response".into()))?;
            let answered_at = if code == UNSUPPORTED_VERSION {
                0
            } else {
                version
            };
            let resp = ApiVersionsResponse::decode(&mut body.clone(), answered_at)
                .map_err(|e| Error::Protocol(format!("ApiVersions v{answered_at}: {e}")))?;
            if code == UNSUPPORTED_VERSION {
                let broker_max = resp
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map(|k| k.max_version)
                    .unwrap_or(0);
                if broker_max >= version {
                    break;
                }
                version = broker_max;
                continue;
            }
            Error::check("ApiVersions", resp.error_code, None)?;
            return BrokerVersions::advertised(
                resp.api_keys
                    .iter()
                    .map(|k| (k.api_key, k.min_version, k.max_version)),
            );
        }
        Err(Error::Unsupported {
            api: "ApiVersions",
            reason: format!(
                "{} refused every ApiVersions version tried",
                self.shared.addr
            ),
        })
    }

    /// Whether the connection broke or was closed; a closed connection is never reused.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
            || self.outgoing.is_closed()
            || self
                .session_end
                .is_some_and(|end| tokio::time::Instant::now() >= end)
    }

    /// Closes the connection, failing whatever waits on it.
    pub(crate) fn close(&self) {
        self.shared.fail(self.shared.closed_error());
        for t in &self.tasks {
            t.abort();
        }
    }

    /// The version this connection will use for `key`.
    pub(crate) fn version(&self, key: ApiKey) -> Result<i16, Error> {
        self.versions.negotiate(key)
    }

    /// The version this connection will use for `key`, for a connection dedicated to that API
    /// (produce, fetch). When the broker's advertisement leaves no usable version the connection
    /// is closed as well, so the next attempt negotiates again on a new one: a garbled ApiVersions
    /// answer must not poison a long-lived connection, and a broker that really lacks the API
    /// gives the same error again.
    pub(crate) fn dedicated_version(&self, key: ApiKey) -> Result<i16, Error> {
        self.versions.negotiate(key).inspect_err(|_| self.close())
    }

    /// The broker's advertised range for `key`.
    pub(crate) fn broker_range(&self, key: ApiKey) -> Option<(i16, i16)> {
        self.versions.range(key)
    }

    /// Sends a request built for the negotiated version and decodes its response.
    ///
    /// Cancellation: dropping the future abandons the response (it is discarded when it
    /// arrives); the request itself may or may not have reached the broker.
    pub(crate) async fn request<R: Request>(
        &self,
        build: impl FnOnce(i16) -> R,
        timeout: Duration,
    ) -> Result<(i16, R::Response), Error> {
        let key = api_key::<R>()?;
        let version = self.version(key)?;
        let req = build(version);
        let resp = self.request_at(key, version, &req, timeout).await?;
        Ok((version, resp))
    }

    /// Sends `req` at `version` and decodes its response.
    pub(crate) async fn request_at<R: Request>(
        &self,
        key: ApiKey,
        version: i16,
        req: &R,
        timeout: Duration,
    ) -> Result<R::Response, Error> {
        let mut body = self.roundtrip(key, version, req, timeout).await?;
        decode_body(key, version, &mut body)
    }

    /// Sends a request that the broker does not answer (produce with acks=0); returns once
    /// the frame is written.
    pub(crate) async fn send_without_response<R: Request>(
        &self,
        version: i16,
        req: &R,
    ) -> Result<(), Error> {
        let key = api_key::<R>()?;
        let (correlation_id, frame) = self.frame(key, version, req)?;
        let (tx, rx) = oneshot::channel();
        self.submit(Outgoing {
            correlation_id,
            frame,
            expect: Expect::Written(tx),
        })?;
        rx.await.unwrap_or_else(|_| Err(self.shared.closed_error()))
    }

    async fn roundtrip<R: Encodable>(
        &self,
        key: ApiKey,
        version: i16,
        req: &R,
        timeout: Duration,
    ) -> Result<Bytes, Error> {
        let (correlation_id, frame) = self.frame(key, version, req)?;
        let (tx, rx) = oneshot::channel();
        self.submit(Outgoing {
            correlation_id,
            frame,
            expect: Expect::Response(Pending {
                key,
                version,
                reply: tx,
            }),
        })?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.shared.closed_error()),
            Err(_) => {
                tracing::debug!(broker = %self.shared.addr, api = api_name(key), "request timed out; closing the connection");
                self.close();
                Err(Error::Timeout {
                    what: format!(
                        "{} v{version} to {} got no response within {} ms",
                        api_name(key),
                        self.shared.addr,
                        timeout.as_millis()
                    ),
                })
            }
        }
    }

    fn submit(&self, out: Outgoing) -> Result<(), Error> {
        if self.is_closed() {
            return Err(self.shared.closed_error());
        }
        self.outgoing
            .send(out)
            .map_err(|_| self.shared.closed_error())
    }

    /// `[size][request header][body]` with the next correlation id.
    fn frame<R: Encodable>(
        &self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> Result<(i32, Bytes), Error> {
        let correlation_id = self.next_correlation.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let frame = encode_request(key, version, correlation_id, &self.client_id, req)?;
        Ok((correlation_id, frame))
    }
}

/// `[size][request header][body]` of `req`.
fn encode_request<R: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &StrBytes,
    req: &R,
) -> Result<Bytes, Error> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()));
    let encode_error = |e: &dyn std::fmt::Display| {
        Error::Protocol(format!("encoding {} v{version}: {e}", api_name(key)))
    };
    let mut buf = BytesMut::with_capacity(64 + req.compute_size(version).unwrap_or(0));
    buf.put_i32(0);
    header
        .encode(&mut buf, key.request_header_version(version))
        .map_err(|e| encode_error(&e))?;
    req.encode(&mut buf, version)
        .map_err(|e| encode_error(&e))?;
    let len = i32::try_from(buf.len() - 4)
        .map_err(|_| Error::Protocol(format!("{} request too large", api_name(key))))?;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Where the requests of a SASL exchange go: a connection's pipeline or a raw stream.
trait SaslPeer {
    fn addr(&self) -> &str;
    /// Sends `req` and returns the response body.
    async fn call<R: Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> Result<Bytes, Error>;
}

/// SaslHandshake, then the mechanism's SaslAuthenticate tokens, at `versions` (handshake,
/// authenticate); returns the session lifetime the broker gives (0: none).
async fn sasl_exchange(
    peer: &mut impl SaslPeer,
    creds: &SaslCredentials,
    versions: (i16, i16),
) -> Result<i64, Error> {
    use kafka_protocol::messages::{
        SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
        SaslHandshakeResponse,
    };
    let addr = peer.addr().to_string();
    let refused = |m: String| Error::Authentication(format!("{addr}: {m}"));
    let mechanism = creds.mechanism.name();
    let req = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    let mut body = peer.call(ApiKey::SaslHandshake, versions.0, &req).await?;
    let resp: SaslHandshakeResponse = decode_body(ApiKey::SaslHandshake, versions.0, &mut body)?;
    if resp.error_code != 0 {
        let enabled: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(refused(format!(
            "the listener does not enable {mechanism} (it enables {})",
            enabled.join(", ")
        )));
    }
    let mut exchange = Exchange::new(creds);
    let mut server: Option<Bytes> = None;
    let mut lifetime = 0;
    while let Some(token) = exchange.next(server.as_deref()).map_err(&refused)? {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let mut body = peer
            .call(ApiKey::SaslAuthenticate, versions.1, &req)
            .await?;
        let resp: SaslAuthenticateResponse =
            decode_body(ApiKey::SaslAuthenticate, versions.1, &mut body)?;
        if resp.error_code != 0 {
            return Err(refused(
                resp.error_message
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| format!("SASL error {}", resp.error_code)),
            ));
        }
        lifetime = resp.session_lifetime_ms;
        server = Some(resp.auth_bytes);
    }
    Ok(lifetime)
}

/// A SASL exchange on an open connection, each request within what is left until `deadline`.
struct Pipelined<'a> {
    conn: &'a Connection,
    deadline: tokio::time::Instant,
}

impl SaslPeer for Pipelined<'_> {
    fn addr(&self) -> &str {
        &self.conn.shared.addr
    }

    async fn call<R: Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> Result<Bytes, Error> {
        let remaining = self
            .deadline
            .saturating_duration_since(tokio::time::Instant::now());
        self.conn.roundtrip(key, version, req, remaining).await
    }
}

/// A SASL exchange on a stream nothing else uses yet: one request at a time, by `deadline`.
struct RawPeer<'a> {
    stream: &'a mut Box<dyn Stream>,
    addr: &'a str,
    client_id: StrBytes,
    correlation: i32,
    deadline: tokio::time::Instant,
}

impl SaslPeer for RawPeer<'_> {
    fn addr(&self) -> &str {
        self.addr
    }

    async fn call<R: Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> Result<Bytes, Error> {
        let addr = self.addr;
        self.correlation += 1;
        let sent = self.correlation;
        let frame = encode_request(key, version, sent, &self.client_id, req)?;
        let stream = &mut *self.stream;
        let answer = async {
            stream.write_all(&frame).await?;
            read_frame(
                stream,
                FrameLimits {
                    min: 4,
                    max: 1 << 20,
                },
            )
            .await
        };
        let frame = match tokio::time::timeout_at(self.deadline, answer).await {
            Err(_) => {
                return Err(timed_out(
                    addr,
                    format!("no {} answer in time", api_name(key)),
                ))
            }
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => {
                return Err(Error::io(
                    io::ErrorKind::ConnectionReset,
                    format!("{addr} closed the connection during {}", api_name(key)),
                ))
            }
            Ok(Err(e)) => {
                return Err(Error::Protocol(format!(
                    "{} from {addr}: {e}",
                    api_name(key)
                )))
            }
        };
        let mut frame = frame.freeze();
        let answered = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        if answered != sent {
            return Err(Error::Protocol(format!(
                "{} answer from {addr} with correlation id {answered}, expected {sent}",
                api_name(key)
            )));
        }
        decode_header(key, version, &mut frame)?;
        Ok(frame)
    }
}

fn timed_out(addr: &str, what: String) -> Error {
    Error::Connect {
        addr: addr.to_string(),
        source: io::Error::new(io::ErrorKind::TimedOut, what),
    }
}

/// A TCP connection to `addr`, inside TLS when `security` says so, by `deadline`.
async fn dial(
    addr: &str,
    deadline: tokio::time::Instant,
    timeout: Duration,
    security: &Security,
) -> Result<Box<dyn Stream>, Error> {
    let ms = timeout.as_millis();
    let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => {
            return Err(Error::Connect {
                addr: addr.to_string(),
                source,
            })
        }
        Err(_) => return Err(timed_out(addr, format!("no connection within {ms} ms"))),
    };
    let _ = stream.set_nodelay(true);
    let Some(tls) = &security.tls else {
        return Ok(Box::new(stream));
    };
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| Error::Authentication(format!("TLS server name {host}: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    match tokio::time::timeout_at(deadline, connector.connect(name, stream)).await {
        Ok(Ok(tls_stream)) => Ok(Box::new(tls_stream)),
        Ok(Err(e)) => Err(Error::Authentication(format!(
            "TLS handshake with {addr}: {e}"
        ))),
        Err(_) => Err(timed_out(addr, format!("no TLS handshake within {ms} ms"))),
    }
}

/// A byte stream to a peer, secured and authenticated, on which nothing else was sent.
pub trait SecuredStream: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<S: AsyncRead + AsyncWrite + Send + Sync + Unpin> SecuredStream for S {}

/// A connection to `addr` secured as `security` says (TLS handshake, then SaslHandshake v1 and
/// SaslAuthenticate v1 when it names a SASL user), all within `timeout`, and nothing else: for
/// peers that speak their own frames once authenticated (Raft between the nodes of a cluster).
/// A session lifetime the broker gives is not followed: the broker closes the connection at its
/// end and the caller dials again.
pub async fn secured_stream(
    addr: &str,
    client_id: &str,
    timeout: Duration,
    security: &Security,
) -> Result<Box<dyn SecuredStream>, Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut stream = dial(addr, deadline, timeout, security).await?;
    if let Some(creds) = &security.sasl {
        let mut peer = RawPeer {
            stream: &mut stream,
            addr,
            client_id: StrBytes::from_string(client_id.to_string()),
            correlation: 0,
            deadline,
        };
        sasl_exchange(&mut peer, creds, (1, 1)).await?;
    }
    Ok(Box::new(stream))
}

/// The API key of a request type.
pub(crate) fn api_key<R: Request>() -> Result<ApiKey, Error> {
    ApiKey::try_from(R::KEY).map_err(|()| Error::Protocol(format!("unknown api key {}", R::KEY)))
}

/// Writes frames in submission order; a request is registered before its frame is written so
/// that the reader can always match the response.
async fn write_loop(
    shared: Arc<Shared>,
    mut write: impl AsyncWrite + Unpin,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(out) = rx.recv().await {
        if shared.closed.load(Ordering::SeqCst) {
            reject(out, shared.closed_error());
            continue;
        }
        let written = match out.expect {
            Expect::Response(p) => {
                shared.pending.lock().insert(out.correlation_id, p);
                None
            }
            Expect::Written(tx) => Some(tx),
        };
        // TLS holds what it encrypted until flushed; on TCP the flush does nothing.
        let sent = match write.write_all(&out.frame).await {
            Ok(()) => write.flush().await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(()) => {
                if let Some(tx) = written {
                    let _ = tx.send(Ok(()));
                }
            }
            Err(e) => {
                let error = Error::io(e.kind(), format!("writing to {}: {e}", shared.addr));
                if let Some(tx) = written {
                    let _ = tx.send(Err(error.clone()));
                }
                shared.fail(error);
            }
        }
    }
}

fn reject(out: Outgoing, error: Error) {
    match out.expect {
        Expect::Response(p) => {
            let _ = p.reply.send(Err(error));
        }
        Expect::Written(tx) => {
            let _ = tx.send(Err(error));
        }
    }
}

/// Decodes a response header (after the correlation id was read) and leaves `frame` at the body.
fn decode_header(key: ApiKey, version: i16, frame: &mut Bytes) -> Result<(), Error> {
    ResponseHeader::decode(frame, key.response_header_version(version))
        .map(|_| ())
        .map_err(|e| Error::Protocol(format!("{} response header: {e:#}", api_name(key))))
}

/// Decodes a response body.
fn decode_body<T: Decodable>(key: ApiKey, version: i16, body: &mut Bytes) -> Result<T, Error> {
    T::decode(body, version)
        .map_err(|e| Error::Protocol(format!("decoding {} v{version}: {e:#}", api_name(key))))
}

/// Decodes one response frame (without its length prefix) of `key` at `version` exactly as a
/// connection does: header, then body. Public so that fuzzing drives the client's decoders with
/// the bytes a hostile or broken broker could send.
pub fn decode_response(key: ApiKey, version: i16, frame: Bytes) -> Result<ResponseKind, Error> {
    let mut frame = frame;
    decode_header(key, version, &mut frame)?;
    ResponseKind::decode(key, &mut frame, version)
        .map_err(|e| Error::Protocol(format!("decoding {} v{version}: {e:#}", api_name(key))))
}

/// Reads response frames and hands each body to the request with its correlation id.
async fn read_loop(shared: Arc<Shared>, mut read: impl AsyncRead + Unpin) {
    let limits = FrameLimits {
        min: 4,
        max: MAX_RESPONSE_BYTES,
    };
    let error = loop {
        let frame = match read_frame(&mut read, limits).await {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                break Error::io(
                    io::ErrorKind::ConnectionReset,
                    format!("{} closed the connection", shared.addr),
                )
            }
            Err(FrameError::Io(e)) => {
                break Error::io(e.kind(), format!("reading from {}: {e}", shared.addr))
            }
            Err(e) => break Error::Protocol(format!("response from {}: {e}", shared.addr)),
        };
        let mut frame = frame.freeze();
        let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let Some(p) = shared.pending.lock().remove(&correlation_id) else {
            break Error::Protocol(format!(
                "response with unknown correlation id {correlation_id} from {}",
                shared.addr
            ));
        };
        let result = decode_header(p.key, p.version, &mut frame).map(|()| frame);
        // The waiter may have given up (cancelled); its response is then dropped.
        let _ = p.reply.send(result);
    };
    tracing::debug!(broker = %shared.addr, %error, "connection closed");
    shared.fail(error);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_connection_says_what_closed_it() {
        let shared = Shared {
            addr: "127.0.0.1:9093".into(),
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            reason: Mutex::new(None),
        };
        assert_eq!(
            shared.closed_error().to_string(),
            Error::io(
                io::ErrorKind::ConnectionAborted,
                "connection to 127.0.0.1:9093 is closed"
            )
            .to_string()
        );
        shared.fail(Error::io(
            io::ErrorKind::InvalidData,
            "received fatal alert: CertificateRequired",
        ));
        shared.fail(Error::io(io::ErrorKind::ConnectionReset, "later"));
        let said = shared.closed_error().to_string();
        assert!(
            said.contains("is closed") && said.contains("CertificateRequired"),
            "{said}"
        );
        assert!(!said.contains("later"), "{said}");
    }
}
