//! The signal that starts a graceful shutdown: SIGTERM (Kubernetes, `kill`) or SIGINT (Ctrl-C).

/// Which signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Terminate,
    Interrupt,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Terminate => "SIGTERM",
            Signal::Interrupt => "SIGINT",
        })
    }
}

/// Resolves on the first SIGTERM or SIGINT. Where the SIGTERM handler cannot be installed,
/// waits for SIGINT alone.
pub async fn shutdown_signal() -> Signal {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => Signal::Terminate,
                _ = tokio::signal::ctrl_c() => Signal::Interrupt,
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot install the SIGTERM handler; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
            Signal::Interrupt
        }
    }
}
