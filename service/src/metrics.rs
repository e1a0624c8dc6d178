//! Prometheus metrics: the families both daemons share (connections and handshake failures of
//! the HTTPS and CoAPS listeners, database commits), and the admin listener that serves them
//! on `GET /metrics` in the Prometheus text format (or OpenMetrics when asked), apart from the
//! protocol listeners and on loopback by default (`metrics-listen`).
//!
//! The handles are cheap clones of shared atomics, handed explicitly to what counts. Labels
//! take values from small closed sets only (causes, outcomes, transports), never a serial
//! number or an address.

use prometheus_client::encoding::{prometheus_text, text as openmetrics_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use prometheus_client;

/// One label.
pub type Label = (&'static str, &'static str);
/// A counter family with one label.
pub type Counter1 = Family<[Label; 1], Counter>;
/// A counter family with two labels.
pub type Counter2 = Family<[Label; 2], Counter>;

/// A new registry whose metric names begin with `brski_`.
pub fn registry() -> Registry {
    Registry::with_prefix("brski")
}

/// Latency buckets in seconds, 1 ms to about 16 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Connections (TLS) or sessions (DTLS) of a listener: those open now and the handshakes that
/// failed, by cause.
#[derive(Clone, Debug, Default)]
pub struct ConnMetrics {
    /// Labels `transport` (`https`, `coaps`) and `cause`.
    pub handshake_failures: Counter2,
    /// Label `transport`.
    pub open: Family<[Label; 1], Gauge>,
}

impl ConnMetrics {
    /// Register the families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "handshake_failures",
            "TLS (https) and DTLS (coaps) handshakes that failed, by cause",
            m.handshake_failures.clone(),
        );
        registry.register(
            "open_connections",
            "TLS connections (https) and DTLS sessions (coaps) open now",
            m.open.clone(),
        );
        m
    }

    /// Count a failed handshake over `transport`.
    pub fn handshake_failed(&self, transport: &'static str, cause: &'static str) {
        self.handshake_failures
            .get_or_create(&[("transport", transport), ("cause", cause)])
            .inc();
    }

    /// One more open connection over `transport`, until the guard is dropped.
    pub fn opened(&self, transport: &'static str) -> OpenGuard {
        let gauge = self.open.get_or_create_owned(&[("transport", transport)]);
        gauge.inc();
        OpenGuard(gauge)
    }
}

/// Counts one open connection until dropped.
#[derive(Debug)]
pub struct OpenGuard(Gauge);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Committed write transactions (the SQLite group-commit writer's, PostgreSQL's): their
/// latency and how many writes each carried.
#[derive(Clone, Debug)]
pub struct DbMetrics {
    pub commit_seconds: Histogram,
    pub batch_size: Histogram,
}

impl Default for DbMetrics {
    fn default() -> Self {
        Self {
            commit_seconds: latency_histogram(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
        }
    }
}

impl DbMetrics {
    /// Register the families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "db_commit_duration_seconds",
            "Time of one database transaction of writes, from its start to the end of COMMIT",
            m.commit_seconds.clone(),
        );
        registry.register(
            "db_commit_batch_size",
            "Writes committed together by one database transaction",
            m.batch_size.clone(),
        );
        m
    }

    /// One transaction of `writes` writes committed after `took`.
    pub fn committed(&self, took: Duration, writes: usize) {
        self.commit_seconds.observe(took.as_secs_f64());
        self.batch_size.observe(writes as f64);
    }
}

/// Work done before each scrape (e.g. setting a gauge from the database).
pub type BeforeScrape =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static>;

/// The OpenMetrics Content-Type (OpenMetrics 1.0).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exposition of `registry`: OpenMetrics when `accept` names it, else the Prometheus text
/// format 0.0.4; with its Content-Type.
pub fn exposition(registry: &Registry, accept: Option<&str>) -> (&'static str, String) {
    let mut text = String::new();
    let openmetrics = accept.is_some_and(|a| a.contains("application/openmetrics-text"));
    let (content_type, written) = if openmetrics {
        (OPENMETRICS, openmetrics_text::encode(&mut text, registry))
    } else {
        (
            prometheus_text::CONTENT_TYPE,
            prometheus_text::encode(&mut text, registry),
        )
    };
    if written.is_err() {
        tracing::warn!("metrics could not be encoded");
    }
    (content_type, text)
}

/// The value of `metrics-listen`: an address, or `off`.
pub fn parse_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    crate::config::listen_or_off("metrics-listen", text)
}

/// The metrics listener's routes: `GET /metrics` (running `before` ahead of each scrape), 404
/// for any other path.
pub fn router(registry: Arc<Registry>, before: Option<BeforeScrape>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/metrics",
            get(move |headers: http::HeaderMap| {
                let registry = registry.clone();
                let before = before.clone();
                async move {
                    if let Some(before) = before {
                        before().await;
                    }
                    let accept = headers
                        .get(http::header::ACCEPT)
                        .and_then(|v| v.to_str().ok());
                    let (content_type, body) = exposition(&registry, accept);
                    ([(http::header::CONTENT_TYPE, content_type)], body)
                }
            }),
        )
        .fallback(|| async { (http::StatusCode::NOT_FOUND, "not found\n") })
}

/// Bind `addr` and serve `app` on it over plain HTTP/1.1 in a task of its own until
/// `shutdown` completes (the metrics and CRL listeners, apart from the pledges' TLS); the
/// bound address (port 0 picks a free one).
pub async fn spawn_plain(
    addr: SocketAddr,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    what: &'static str,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, listener = what, "plain HTTP listener failed");
        }
    });
    Ok(local)
}

/// The value of the sample `series` (name and labels as exposed) in the exposition `scrape`.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// `promtool check metrics` (Debian `prometheus`) on `scrape`: the exposition format and
/// Prometheus' naming conventions. For tests: `Err` says what promtool said.
#[doc(hidden)]
pub fn promtool_check(scrape: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("promtool (apt-get install prometheus): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(scrape.as_bytes())
            .map_err(|e| format!("writing to promtool: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("promtool: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics: {}{}\n{scrape}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Bind `addr` and serve `registry` on it ([`router`], [`spawn_plain`]).
pub async fn spawn(
    addr: SocketAddr,
    registry: Arc<Registry>,
    before: Option<BeforeScrape>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    spawn_plain(addr, router(registry, before), shutdown, "metrics").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_found_by_its_whole_series() {
        let scrape = "# TYPE x counter\nx_total{a=\"1\"} 3\nx_total{a=\"12\"} 7\nx_total 2.5\n";
        assert_eq!(sample(scrape, "x_total{a=\"1\"}"), Some(3.0));
        assert_eq!(sample(scrape, "x_total{a=\"12\"}"), Some(7.0));
        assert_eq!(sample(scrape, "x_total"), Some(2.5));
        assert_eq!(sample(scrape, "x"), None);
    }

    #[test]
    fn listen_is_an_address_or_off() {
        assert_eq!(parse_listen("off"), Ok(None));
        assert_eq!(
            parse_listen("127.0.0.1:9464"),
            Ok(Some("127.0.0.1:9464".parse().expect("addr")))
        );
        assert!(parse_listen("localhost").is_err());
    }

    #[test]
    fn open_connections_count_down_when_closed() {
        let mut registry = registry();
        let conns = ConnMetrics::register(&mut registry);
        let one = conns.opened("https");
        let two = conns.opened("https");
        conns.handshake_failed("https", "timeout");
        drop(one);
        let (content_type, text) = exposition(&registry, None);
        assert_eq!(content_type, prometheus_text::CONTENT_TYPE);
        assert!(
            text.contains("brski_open_connections{transport=\"https\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "brski_handshake_failures_total{transport=\"https\",cause=\"timeout\"} 1\n"
            ),
            "{text}"
        );
        drop(two);
        let (_, text) = exposition(&registry, Some("application/openmetrics-text"));
        assert!(
            text.contains("brski_open_connections{transport=\"https\"} 0\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
