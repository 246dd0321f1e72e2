//! The connection layer: accept loop, framing and the request/response cycle. A frame's length
//! is checked against `socket.request.max.bytes` before anything is allocated; a frame that
//! cannot be decoded closes that connection only, with a log line. Requests of one connection are
//! handled one at a time and answered in order, as Kafka does (its network layer mutes a channel
//! until the response is sent), which keeps responses ordered even when a fetch or join waits.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::broker::Broker;
use crate::handlers::{self, api_versions};

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("request of {size} bytes exceeds socket.request.max.bytes ({max})")]
    FrameTooLarge { size: i64, max: usize },
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("unsupported request: api key {api_key} version {version}")]
    Unsupported { api_key: i16, version: i16 },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Accepts connections until shutdown; each connection runs in its own task on `tracker`.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener, tracker: TaskTracker) {
    loop {
        let accepted = tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let broker = broker.clone();
                let span = tracing::info_span!("connection", %peer);
                tracker.spawn(
                    async move {
                        match connection(broker, stream, peer).await {
                            Ok(()) => tracing::debug!("connection closed"),
                            Err(ConnectionError::Io(e)) => {
                                tracing::debug!(error = %e, "connection closed")
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

async fn connection(
    broker: Arc<Broker>,
    mut stream: TcpStream,
    peer: SocketAddr,
) -> Result<(), ConnectionError> {
    let max = broker.config.socket_request_max_bytes;
    let mut out = BytesMut::with_capacity(64 * 1024);
    loop {
        // Between requests a shutdown closes the connection; a request being handled finishes.
        let size = tokio::select! {
            _ = broker.shutdown.cancelled() => return Ok(()),
            size = stream.read_i32() => match size {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e.into()),
            },
        };
        if size < 0 || size as usize > max {
            return Err(ConnectionError::FrameTooLarge {
                size: i64::from(size),
                max,
            });
        }
        if size < 8 {
            return Err(ConnectionError::Malformed(format!(
                "frame of {size} bytes is shorter than a request header"
            )));
        }
        let mut frame = BytesMut::zeroed(size as usize);
        stream.read_exact(&mut frame).await?;
        let frame = frame.freeze();

        out.clear();
        if let Some(()) = handle_frame(&broker, peer, frame, &mut out).await? {
            stream.write_all(&out).await?;
        }
    }
}

/// Decodes one request frame and writes the length-prefixed response into `out`.
/// Returns `None` when the request expects no response (produce with acks=0).
async fn handle_frame(
    broker: &Broker,
    peer: SocketAddr,
    frame: Bytes,
    out: &mut BytesMut,
) -> Result<Option<()>, ConnectionError> {
    let api_key = frame.slice(0..2).get_i16();
    let version = frame.slice(2..4).get_i16();
    let correlation_id = frame.slice(4..8).get_i32();
    let Ok(key) = ApiKey::try_from(api_key) else {
        return Err(ConnectionError::Unsupported { api_key, version });
    };
    let supported = api_versions::supported(key);
    if key == ApiKey::ApiVersions && supported.is_some_and(|(_, max)| version > max) {
        // KIP-511: answer a too-new ApiVersions with v0 and UNSUPPORTED_VERSION so the client
        // retries with a version we speak.
        let body = api_versions::unsupported_version_response(broker);
        encode_response(out, key, 0, correlation_id, &body)?;
        return Ok(Some(()));
    }
    let Some((min, max)) = supported else {
        return Err(ConnectionError::Unsupported { api_key, version });
    };
    if version < min.max(api_versions::decodable_min(key)) || version > max {
        return Err(ConnectionError::Unsupported { api_key, version });
    }
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, key.request_header_version(version))
        .map_err(|e| ConnectionError::Malformed(format!("request header: {e}")))?;
    let span = tracing::debug_span!(
        "request",
        api = ?key,
        version,
        correlation_id,
        client = header.client_id.as_deref().unwrap_or("")
    );
    let ctx = handlers::RequestContext { header, peer };
    let reply = handlers::dispatch(broker, key, version, &ctx, buf)
        .instrument(span)
        .await
        .map_err(|e| ConnectionError::Malformed(format!("{key:?} v{version}: {e}")))?;
    match reply {
        handlers::Reply::None => Ok(None),
        handlers::Reply::Encoded(body) => {
            write_frame(out, key, version, correlation_id, |b| {
                b.put_slice(&body);
                Ok(())
            })?;
            Ok(Some(()))
        }
    }
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
