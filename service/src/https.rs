//! An HTTPS listener over tokio-rustls and hyper (HTTP/1.1 with persistent connections, as
//! 8995 §5 asks for BRSKI-EST). Each request carries a [`ConnInfo`] extension with the peer
//! address and the TLS peer's certificate chain, so handlers can authenticate the pledge by
//! its IDevID or LDevID. Every request is logged, unknown paths included.

use crate::metrics::ConnMetrics;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// What the TLS layer established about the peer of one connection.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The peer's certificate chain, end entity first (DER); empty without client auth.
    pub peer_certs: Arc<Vec<Vec<u8>>>,
    /// What the application derived from this connection's TLS session (e.g. the validated
    /// client identity), kept for the connection's later requests.
    pub memo: ConnMemo,
    /// The RFC 9266 `tls-exporter` channel binding of the connection (32 bytes), against which
    /// an EST server checks a CSR's challengePassword (RFC 7030 §3.5).
    pub channel_binding: Option<Arc<[u8]>>,
}

/// RFC 9266 §2: the `tls-exporter` channel binding, 32 bytes exported with the label
/// "EXPORTER-Channel-Binding" and no context (TLS 1.3; in TLS 1.2 rustls offers the extended
/// master secret, RFC 7627, which RFC 9266 §4.2 requires for it to be unique).
pub fn tls_exporter<S>(conn: &rustls::ConnectionCommon<S>) -> Option<Vec<u8>> {
    conn.export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
        .ok()
}

/// A once-set slot shared by all requests of one connection.
#[derive(Clone, Default)]
pub struct ConnMemo(Arc<std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>>);

impl ConnMemo {
    /// The value set earlier on this connection, when it is a `T`.
    pub fn get<T: std::any::Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.0.get()?.clone().downcast().ok()
    }

    /// Set the value once; later calls leave the first value in place.
    pub fn set<T: std::any::Any + Send + Sync>(&self, value: Arc<T>) {
        let _ = self.0.set(value);
    }
}

impl std::fmt::Debug for ConnMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "ConnMemo(set)"
        } else {
            "ConnMemo(empty)"
        })
    }
}

/// On a response whose handler has logged the request's outcome at info level, with the
/// status it logged: [`serve`] then writes its access line for that request at debug level
/// only, so that each request makes one line at info. A response whose status is no longer
/// the one logged (say, it failed after the outcome line) keeps its access line.
#[derive(Clone, Copy, Debug)]
pub struct OutcomeLogged(pub http::StatusCode);

/// `resp`, marked as logged by its handler with the status `logged` ([`OutcomeLogged`]).
pub fn outcome_logged(
    mut resp: axum::response::Response,
    logged: http::StatusCode,
) -> axum::response::Response {
    resp.extensions_mut().insert(OutcomeLogged(logged));
    resp
}

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// What one server lets its clients hold: bodies are read whole by the server before the
/// application sees them, within a size, a deadline and a budget shared by all connections,
/// so that stalled or dripping bodies cannot hold memory or connections without bound.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request body (413 beyond it).
    pub max_body: usize,
    /// Time to receive a whole body once its headers are in (408 after it).
    pub body_timeout: Duration,
    /// Bytes all requests being read or served may hold together (503 + Retry-After beyond).
    pub body_budget: usize,
    /// Concurrent connections from one peer address; more are closed at accept. A join proxy
    /// relays every pledge from its own address, so this is generous.
    pub per_peer_connections: usize,
    /// Concurrent connections in all; more are closed at accept.
    pub max_connections: usize,
    /// Time to receive a request's headers, including the wait for the next request on a
    /// kept-alive connection.
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 256 * 1024,
            body_timeout: Duration::from_secs(10),
            body_budget: 32 * 1024 * 1024,
            per_peer_connections: 256,
            max_connections: 4096,
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// Bytes held by request bodies, shared by the connections of one server.
#[derive(Debug)]
struct Budget {
    limit: usize,
    used: std::sync::atomic::AtomicUsize,
}

/// A share of the [`Budget`], given back when dropped.
struct Held {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Held {
    /// Take `n` more bytes; `false` (and nothing taken) when the budget cannot give them.
    fn take(&mut self, n: usize) -> bool {
        use std::sync::atomic::Ordering::AcqRel;
        let taken = self
            .budget
            .used
            .fetch_update(AcqRel, std::sync::atomic::Ordering::Acquire, |used| {
                used.checked_add(n).filter(|t| *t <= self.budget.limit)
            })
            .is_ok();
        if taken {
            self.bytes += n;
        }
        taken
    }
}

impl Held {
    /// Give back every byte held.
    fn release(&mut self) {
        self.budget.used.fetch_sub(
            std::mem::take(&mut self.bytes),
            std::sync::atomic::Ordering::AcqRel,
        );
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.release();
    }
}

/// Why a request body was not read whole.
#[derive(Debug, thiserror::Error)]
enum BodyRefusal {
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error("request body not received within {0:?}")]
    Timeout(Duration),
    #[error("the server holds too many unfinished request bodies; retry later")]
    Busy,
    #[error("request body unreadable: {0}")]
    Unreadable(String),
}

impl BodyRefusal {
    fn response(&self) -> http::Response<axum::body::Body> {
        let status = match self {
            Self::TooLarge(_) => http::StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout(_) => http::StatusCode::REQUEST_TIMEOUT,
            Self::Busy => http::StatusCode::SERVICE_UNAVAILABLE,
            Self::Unreadable(_) => http::StatusCode::BAD_REQUEST,
        };
        let mut resp = http::Response::new(axum::body::Body::from(format!("{self}\n")));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        // The rest of the body is not read: the connection cannot carry another request.
        h.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        if matches!(self, Self::Busy) {
            h.insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
        }
        resp
    }
}

/// How long, at most, the rest of a refused body is read and thrown away so that its client
/// can read the refusal (see [`discard`]).
const DISCARD_TIME: Duration = Duration::from_secs(1);

/// The declared length of a request body (`Content-Length`), when there is one.
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Read `body` whole within `limits`, holding its bytes in `held`.
async fn read_body(
    headers: &http::HeaderMap,
    body: &mut Incoming,
    limits: &Limits,
    held: &mut Held,
) -> Result<axum::body::Bytes, BodyRefusal> {
    use http_body_util::BodyExt;
    if declared_length(headers).is_some_and(|n| n > limits.max_body as u64) {
        return Err(BodyRefusal::TooLarge(limits.max_body));
    }
    let collect = async {
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyRefusal::Unreadable(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if out.len() + data.len() > limits.max_body {
                return Err(BodyRefusal::TooLarge(limits.max_body));
            }
            if !held.take(data.len()) {
                return Err(BodyRefusal::Busy);
            }
            out.extend_from_slice(&data);
        }
        Ok(axum::body::Bytes::from(out))
    };
    tokio::time::timeout(limits.body_timeout, collect)
        .await
        .map_err(|_| BodyRefusal::Timeout(limits.body_timeout))?
}

/// Read and throw away what is left of a refused body, holding none of it, for at most
/// [`DISCARD_TIME`] and `max_body` more bytes (nothing when the declared rest is larger).
/// A client that sends its whole body before reading the answer (most do) would otherwise
/// find the connection reset under it and never see the 413 or 503 (a lingering close, as
/// RFC 9112 §9.6 describes for servers that close).
async fn discard(headers: &http::HeaderMap, body: &mut Incoming, limits: &Limits) {
    use http_body_util::BodyExt;
    let cap = limits.max_body as u64;
    if declared_length(headers).is_some_and(|n| n > cap.saturating_mul(2)) {
        return;
    }
    let drain = async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                seen += data.len() as u64;
                if seen > cap.saturating_mul(2) {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_TIME, drain).await;
}

/// Open connections per peer address.
#[derive(Debug, Default)]
struct Peers {
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    total: std::sync::atomic::AtomicUsize,
}

/// One admitted connection, counted until dropped.
struct Admitted {
    peers: Arc<Peers>,
    ip: std::net::IpAddr,
}

impl Peers {
    fn admit(self: &Arc<Self>, ip: std::net::IpAddr, limits: &Limits) -> Option<Admitted> {
        use std::sync::atomic::Ordering::AcqRel;
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = open.entry(ip).or_insert(0);
        if *mine >= limits.per_peer_connections
            || self.total.load(std::sync::atomic::Ordering::Acquire) >= limits.max_connections
        {
            return None;
        }
        *mine += 1;
        self.total.fetch_add(1, AcqRel);
        Some(Admitted {
            peers: self.clone(),
            ip,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self
            .peers
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
        self.peers
            .total
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Serve `app` over TLS on `listener` with the default [`Limits`] until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, tls, app, shutdown, Limits::default()).await
}

/// Serve `app` over TLS on `listener` within `limits` until `shutdown` completes, then stop
/// accepting and let in-flight requests finish (bounded by a drain timeout).
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
    limits: Limits,
) {
    serve_metered(listener, tls, app, shutdown, limits, ConnMetrics::default()).await
}

/// Why a TLS handshake failed, as a label of few values.
fn handshake_cause(e: &std::io::Error) -> &'static str {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) => {
            "peer-certificate"
        }
        Some(rustls::Error::AlertReceived(_)) => "alert-received",
        Some(rustls::Error::PeerIncompatible(_)) => "incompatible",
        Some(_) => "protocol",
        None => "io",
    }
}

/// [`serve_with`], counting open connections and failed handshakes in `conns`.
pub async fn serve_metered(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
    limits: Limits,
    conns: ConnMetrics,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let budget = Arc::new(Budget {
        limit: limits.body_budget,
        used: std::sync::atomic::AtomicUsize::new(0),
    });
    let peers = Arc::new(Peers::default());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(admitted) = peers.admit(peer.ip(), &limits) else {
            tracing::info!(%peer, outcome = "connection-limit", "connection refused: too many open");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        let budget = budget.clone();
        let conns = conns.clone();
        tokio::spawn(async move {
            let _admitted = admitted;
            let _open = conns.opened("https");
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    conns.handshake_failed("https", handshake_cause(&e));
                    tracing::info!(%peer, error = %e, outcome = "tls-rejected", "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    conns.handshake_failed("https", "timeout");
                    tracing::info!(%peer, outcome = "tls-timeout", "TLS handshake timed out");
                    return;
                }
            };
            let peer_certs: Vec<Vec<u8>> = tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| c.iter().map(|d| d.as_ref().to_vec()).collect())
                .unwrap_or_default();
            let info = ConnInfo {
                peer,
                peer_certs: Arc::new(peer_certs),
                memo: ConnMemo::default(),
                channel_binding: tls_exporter(tls.get_ref().1).map(Arc::from),
            };
            let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let info = info.clone();
                let app = app.clone();
                let budget = budget.clone();
                async move {
                    let method = req.method().clone();
                    let path = req.uri().path().to_string();
                    let start = Instant::now();
                    let (parts, mut body) = req.into_parts();
                    let mut held = Held { budget, bytes: 0 };
                    let resp = match read_body(&parts.headers, &mut body, &limits, &mut held).await
                    {
                        Ok(bytes) => {
                            let mut req =
                                http::Request::from_parts(parts, axum::body::Body::from(bytes));
                            req.extensions_mut().insert(info.clone());
                            app.oneshot(req).await
                        }
                        Err(refusal) => {
                            tracing::info!(peer = %info.peer, %method, path, outcome = "body-refused", reason = %refusal, "request refused");
                            held.release();
                            if matches!(refusal, BodyRefusal::TooLarge(_) | BodyRefusal::Busy) {
                                discard(&parts.headers, &mut body, &limits).await;
                            }
                            Ok(refusal.response())
                        }
                    };
                    drop(held);
                    if let Ok(r) = &resp {
                        let logged = r
                            .extensions()
                            .get::<OutcomeLogged>()
                            .is_some_and(|l| l.0 == r.status());
                        let (status, ms) = (r.status().as_u16(), start.elapsed().as_millis());
                        if logged {
                            tracing::debug!(peer = %info.peer, %method, path, status, ms = ms as u64, "request");
                        } else {
                            tracing::info!(peer = %info.peer, %method, path, status, ms = ms as u64, "request");
                        }
                    }
                    resp
                }
            });
            // Title-case header names (`Content-Type`): RFC 9110 §5.1 makes names
            // case-insensitive, but a widely deployed EST client matches them exactly.
            let conn = hyper::server::conn::http1::Builder::new()
                .title_case_headers(true)
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("drain timeout: closing remaining connections"),
    }
}
