//! Runtime shell shared by the BRSKI daemons: logging to the journal or stderr, systemd
//! notification, signal handling, an HTTPS listener and a CoAPS (DTLS 1.2) listener that hands each request the TLS peer's
//! certificate chain, SQLite and PostgreSQL storage, file helpers for keys and certificates, and CRL fetching.
#![forbid(unsafe_code)]

pub mod coaps;
pub mod config;
pub mod crl;
pub mod files;
pub mod grasp;
pub mod https;
pub mod https_client;
pub mod link;
pub mod logging;
pub mod mdns;
pub mod metrics;
pub mod netif;
pub mod notify;
#[doc(hidden)]
pub mod pg_server;
pub mod postgres;
pub mod store;

/// A future that completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
                _ = i.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
            }
        }
        _ => {
            // Without signal handlers, run until killed.
            std::future::pending::<()>().await;
        }
    }
}
