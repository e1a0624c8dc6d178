//! Logs through `tracing`: to the systemd journal when `JOURNAL_STREAM` is set (the process
//! runs under systemd), otherwise to stderr. `RUST_LOG` sets the filter (default `info`).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// Install the global subscriber for the daemon `name`.
pub fn init(name: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            let _ = registry
                .with(journald.with_syslog_identifier(name.to_string()))
                .try_init();
            return;
        }
    }
    let _ = registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false),
        )
        .try_init();
}
