//! An HTTPS listener over tokio-rustls and hyper (HTTP/1.1 with persistent connections, as
//! 8995 §5 asks for BRSKI-EST). Each request carries a [`ConnInfo`] extension with the peer
//! address and the TLS peer's certificate chain, so handlers can authenticate the pledge by
//! its IDevID or LDevID. Every request is logged, unknown paths included.

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

/// Serve `app` over TLS on `listener` until `shutdown` completes, then stop accepting and let
/// in-flight requests finish (bounded by a drain timeout).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
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
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, outcome = "tls-rejected", "TLS handshake failed");
                    return;
                }
                Err(_) => {
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
            let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                let info = info.clone();
                let app = app.clone();
                async move {
                    let method = req.method().clone();
                    let path = req.uri().path().to_string();
                    req.extensions_mut().insert(info.clone());
                    let start = Instant::now();
                    let resp = app.oneshot(req).await;
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
                .header_read_timeout(Duration::from_secs(30))
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
