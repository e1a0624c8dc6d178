//! Logs through `tracing`: to the systemd journal when `JOURNAL_STREAM` is set (the process
//! runs under systemd), otherwise to stderr. `RUST_LOG` sets the filter (default `info`).
//!
//! Every field value and message written as a line is passed through
//! [`brski_common::input::escape_for_log`]: serial numbers, reasons and other text that comes
//! from pledges, registrars or MASAs cannot start a forged line (newline), move the cursor
//! (ESC) or reorder the line on display (bidi controls).

use brski_common::input::escape_for_log;
use std::fmt;
use tracing::field::Field;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{FormatFields, Writer};
use tracing_subscriber::prelude::*;

/// The field formatter of line logs: `name=value` pairs separated by spaces, the message bare,
/// every value escaped.
pub fn escaped_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(
        |w: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug| {
            let text = format!("{value:?}");
            let text = escape_for_log(&text);
            if field.name() == "message" {
                write!(w, "{text}")
            } else {
                write!(w, "{}={text}", field.name())
            }
        },
    )
    .delimited(" ")
}

/// The line-log layer writing to `writer`.
pub fn line_layer<S, W>(writer: W, ansi: bool) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(false)
        .fmt_fields(escaped_fields())
}

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
        .with(line_layer(
            std::io::stderr,
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn log_injection_through_fields_spans_and_messages_is_escaped() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(line_layer(buffer.clone(), false));
        let evil = "SN\n2026-01-01T00:00:00Z  INFO forged\u{1b}[2J\u{202e}";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", serial = %evil);
            let _entered = span.enter();
            tracing::info!(serial = %evil, reason = evil, "refused {evil}");
        });
        let out = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
        assert_eq!(out.lines().count(), 1, "one line: {out:?}");
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{202e}'),
            "{out:?}"
        );
        // The span's field, the message, the Display field and the str field (in its quotes)
        // are each escaped in place.
        assert_eq!(out.matches(r"SN\n2026-01-01T00:00:00Z").count(), 4, "{out}");
        assert!(out.contains(r"forged\u{1b}[2J\u{202e}"), "{out}");
        assert!(out.contains("serial=SN"), "{out}");
    }
}
