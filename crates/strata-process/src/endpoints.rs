//! The HTTP endpoints of a process: `/metrics` (Prometheus text, OpenMetrics content type),
//! `/healthz` (the process answers) and `/readyz` (200 when the process says it is ready, else
//! 503 with a one-line reason). Serves until its cancellation token fires.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

/// What a process exposes over its endpoints.
pub trait Exposition: Send + Sync + 'static {
    /// The metrics in the Prometheus text exposition format.
    fn encode(&self) -> String;

    /// Whether `/readyz` answers 200 (else 503 "starting").
    fn ready(&self) -> bool {
        true
    }

    /// `/readyz`: `Ok` answers 200, `Err(reason)` answers 503 with the reason (one line). By
    /// default [`Exposition::ready`], with the reason "starting".
    fn readiness(&self) -> Result<(), String> {
        if self.ready() {
            Ok(())
        } else {
            Err("starting".to_string())
        }
    }
}

/// Binds `addr` (port 0 picks a free port) and serves the endpoints until `shutdown` fires.
/// Returns the bound address once listening, and the serving task.
pub async fn serve_endpoints<E: Exposition>(
    addr: SocketAddr,
    exposition: Arc<E>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = Router::new()
        .route("/metrics", get(metrics::<E>))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready::<E>))
        .with_state(exposition);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics endpoint failed");
        }
    });
    Ok((local, task))
}

async fn metrics<E: Exposition>(State(e): State<Arc<E>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        e.encode(),
    )
}

async fn ready<E: Exposition>(State(e): State<Arc<E>>) -> impl IntoResponse {
    match e.readiness() {
        Ok(()) => (StatusCode::OK, "ready".to_string()),
        // One line: a probe's output and `curl` show it as it is.
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            reason.replace(['\r', '\n'], " "),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    struct Fixed(AtomicBool);

    impl Exposition for Fixed {
        fn encode(&self) -> String {
            "up 1\n".into()
        }
        fn ready(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        conn.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_health_and_readiness_until_cancelled() {
        let state = Arc::new(Fixed(AtomicBool::new(false)));
        let shutdown = CancellationToken::new();
        let (addr, task) = serve_endpoints(
            "127.0.0.1:0".parse().unwrap(),
            state.clone(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let metrics = get(addr, "/metrics").await;
        assert!(
            metrics.contains("application/openmetrics-text"),
            "{metrics}"
        );
        assert!(metrics.ends_with("up 1\n"), "{metrics}");
        assert!(get(addr, "/healthz").await.ends_with("ok"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        state.0.store(true, Ordering::Relaxed);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        shutdown.cancel();
        task.await.unwrap();
    }

    struct Reasoned;

    impl Exposition for Reasoned {
        fn encode(&self) -> String {
            String::new()
        }
        fn readiness(&self) -> Result<(), String> {
            Err("fenced:\nwaiting for the controller".into())
        }
    }

    #[tokio::test]
    async fn readiness_reason_is_one_line_in_the_503_body() {
        let shutdown = CancellationToken::new();
        let (addr, task) = serve_endpoints(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(Reasoned),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let answer = get(addr, "/readyz").await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(
            answer.ends_with("\r\n\r\nfenced: waiting for the controller"),
            "{answer}"
        );
        shutdown.cancel();
        task.await.unwrap();
    }
}
