//! Process plumbing that every Strata binary shares, each piece written once: structured logs
//! ([`init_logging`]), the open-files limit ([`raise_open_files_limit`]), the signal that starts a graceful shutdown ([`shutdown_signal`]) and the
//! small HTTP server for `/metrics`, `/healthz` and `/readyz` ([`serve_endpoints`]). For
//! binaries only: libraries never install a subscriber or listen for signals.

mod endpoints;
mod limits;
mod logging;
mod signal;

pub use endpoints::{serve_endpoints, Exposition};
pub use limits::raise_open_files_limit;
pub use logging::init_logging;
pub use signal::{shutdown_signal, Signal};
