//! A CoAP server over DTLS 1.2 (CoAPS, RFC 7252 §9; RFC 6347): one UDP socket, one DTLS
//! session per peer address, each in its own task, and an application handler that sees each
//! request with the session's peer certificate chain, as [`crate::https`] does for TLS.
//!
//! - The dispatcher task owns the socket's receiving side. A datagram from a peer with a
//!   session goes to that session's queue (dropped when the queue is full, so a stalled
//!   session blocks no one); a ClientHello from a new address is answered statelessly with a
//!   HelloVerifyRequest ([`dtls`]), and only one returning a valid cookie starts a session,
//!   within [`Limits::max_handshakes`] and [`Limits::max_sessions`].
//! - A session task runs the handshake (bounded by [`Limits::handshake_timeout`]), then the
//!   CoAP exchange layer ([`exchange`]), and ends on close_notify, an error, or
//!   [`Limits::idle_timeout`] without a datagram.
//! - Datagrams are sized for a path MTU of [`Limits::path_mtu`] (1024 by default; the IP and
//!   UDP headers are taken off per address family); answers larger than a block go block-wise
//!   (RFC 7959). OpenSSL honours a client's max_fragment_length extension (RFC 6066 §4).

pub mod call;
pub mod client;
pub mod dtls;
pub mod exchange;
pub mod jp;

use crate::https::ConnMemo;
use crate::metrics::ConnMetrics;
use brski_common::answer::CoapCode;
use brski_common::tls::ClientAuth;
use exchange::{Action, Exchange, ExchangeLimits};
use openssl::ssl::{ErrorCode, SslContext, SslStream};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, mpsc, watch};

pub use dtls::{DtlsError, Identity, IdentityKey, Peer};

/// A request method (RFC 7252 §12.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
    Fetch,
    /// Any other method code.
    Other(u8),
}

impl Method {
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Get,
            2 => Self::Post,
            3 => Self::Put,
            4 => Self::Delete,
            5 => Self::Fetch,
            other => Self::Other(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::Get => 1,
            Self::Post => 2,
            Self::Put => 3,
            Self::Delete => 4,
            Self::Fetch => 5,
            Self::Other(code) => code,
        }
    }
}

/// A CoAP request, its body reassembled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// Uri-Path segments.
    pub path: Vec<String>,
    /// Uri-Query items.
    pub query: Vec<String>,
    pub content_format: Option<u16>,
    pub accept: Option<u16>,
    pub payload: Vec<u8>,
}

/// A CoAP answer; block-wise transfer is the server's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub code: CoapCode,
    pub content_format: Option<u16>,
    /// Max-Age seconds (RFC 7252 §5.10.5; with 5.03, when to ask again).
    pub max_age: Option<u32>,
    /// Size1: the largest request body accepted (with 4.13, RFC 7959 §4).
    pub size1: Option<u32>,
    pub payload: Vec<u8>,
    /// End the DTLS session after this answer (close_notify; RFC 8995 §5.3 after a
    /// proximity failure).
    pub close: bool,
}

/// What the DTLS handshake established about the peer of one session.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub peer: SocketAddr,
    /// The certificate chain the peer presented, DER, end entity first; empty without one.
    pub peer_certs: Arc<Vec<Vec<u8>>>,
    /// What the application derived from this session, kept for its later requests.
    pub memo: ConnMemo,
    /// RFC 9266 `tls-exporter` (32 bytes), when the extended master secret (RFC 7627) was
    /// negotiated (RFC 9266 §4.2).
    pub channel_binding: Option<Arc<[u8]>>,
}

/// The application: one answer per request.
pub type Handler = Arc<
    dyn Fn(SessionInfo, Request) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync,
>;

/// What the server lets its clients hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Path MTU the datagrams are sized for (cBRSKI: 1024).
    pub path_mtu: u16,
    /// Sessions at once (established or handshaking).
    pub max_sessions: usize,
    /// Sessions from one IP address.
    pub per_peer_sessions: usize,
    /// Handshakes at once.
    pub max_handshakes: usize,
    pub handshake_timeout: Duration,
    /// A session without a datagram for this long ends.
    pub idle_timeout: Duration,
    /// Datagrams queued for one session; more are dropped.
    pub session_queue: usize,
    pub exchange: ExchangeLimits,
    /// How long sessions get to finish their requests after the shutdown signal.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            path_mtu: 1024,
            max_sessions: 4096,
            per_peer_sessions: 256,
            max_handshakes: 256,
            handshake_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(300),
            session_queue: 32,
            exchange: ExchangeLimits::default(),
            drain_timeout: Duration::from_secs(20),
        }
    }
}

impl Limits {
    /// Largest datagram to `peer`: the path MTU less the IP and UDP headers, and behind a
    /// stateless join proxy the JPY message around it (CJP §4.5.2: the header and up to 6 bytes
    /// of CBOR).
    fn datagram(&self, peer: &Peer) -> u32 {
        let headers = if peer.addr.is_ipv4() { 28 } else { 48 };
        let jpy = peer.jpy.as_ref().map_or(0, |h| h.len() + 6);
        u32::from(self.path_mtu).saturating_sub(headers + u32::try_from(jpy).unwrap_or(u32::MAX))
    }
}

/// One session as the dispatcher knows it.
struct Entry {
    id: u64,
    queue: mpsc::Sender<Vec<u8>>,
    established: Arc<AtomicBool>,
}

struct Shared {
    socket: Arc<UdpSocket>,
    /// The JPY port: stateless join proxies' messages (CJP §4.4).
    jpy: Option<Arc<UdpSocket>>,
    ssl: SslContext,
    cookies: Arc<dtls::CookieKey>,
    handler: Handler,
    limits: Limits,
    sessions: Mutex<HashMap<Peer, Entry>>,
    handshakes: Arc<Semaphore>,
    next_id: AtomicU64,
    stop: watch::Receiver<bool>,
    conns: ConnMetrics,
}

impl Shared {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<Peer, Entry>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Send `datagram` to `peer`: as it is, or behind a stateless proxy in a JPY message with
    /// the header the proxy sent (CJP §4.5: echoed unchanged) to the proxy.
    async fn send(&self, peer: &Peer, datagram: &[u8]) -> std::io::Result<usize> {
        match (&peer.jpy, &self.jpy) {
            (None, _) => self.socket.send_to(datagram, peer.addr).await,
            (Some(header), Some(jpy)) => {
                let message = brski_common::jpy::JpyMessage {
                    header: header.to_vec(),
                    content: datagram.to_vec(),
                };
                jpy.send_to(&message.encode(), peer.addr).await
            }
            (Some(_), None) => Ok(0),
        }
    }
}

/// A JPY message from a stateless join proxy at `from`: the session it belongs to and its
/// datagram; `None` (dropped silently, CJP §4.5.2) when it is not one.
fn unwrap_jpy(from: SocketAddr, bytes: &[u8]) -> Option<(Peer, Vec<u8>)> {
    match brski_common::jpy::JpyMessage::decode(bytes) {
        Ok(m) => Some((
            Peer {
                addr: from,
                jpy: Some(Arc::from(m.header)),
            },
            m.content,
        )),
        Err(e) => {
            tracing::debug!(proxy = %from, error = %e, "not a JPY message: dropped");
            None
        }
    }
}

/// Serve CoAPS on `socket` with `identity`, clients authenticated by `auth`, requests answered
/// by `handler`, until `shutdown` completes; then sessions finish their requests (at most
/// [`Limits::drain_timeout`]) and close.
pub async fn serve(
    socket: UdpSocket,
    identity: &Identity,
    auth: ClientAuth,
    handler: Handler,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DtlsError> {
    serve_with_jpy(socket, None, identity, auth, handler, limits, shutdown).await
}

/// [`serve`], and on `jpy` the JPY messages of stateless join proxies (CJP §4.4, §4.5): each
/// (proxy address, header) is a peer of its own, answered in JPY messages with the same header.
pub async fn serve_with_jpy(
    socket: UdpSocket,
    jpy: Option<UdpSocket>,
    identity: &Identity,
    auth: ClientAuth,
    handler: Handler,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DtlsError> {
    let conns = ConnMetrics::default();
    serve_jpy_metered(
        socket, jpy, identity, auth, handler, limits, conns, shutdown,
    )
    .await
}

/// [`serve_with_jpy`], counting open sessions and failed handshakes in `conns` (transport
/// `coaps`).
#[allow(clippy::too_many_arguments)]
pub async fn serve_jpy_metered(
    socket: UdpSocket,
    jpy: Option<UdpSocket>,
    identity: &Identity,
    auth: ClientAuth,
    handler: Handler,
    limits: Limits,
    conns: ConnMetrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DtlsError> {
    let cookies = Arc::new(dtls::CookieKey::random()?);
    let ssl = dtls::server_context(identity, auth, cookies.clone())?;
    let (stop_tx, stop) = watch::channel(false);
    let shared = Arc::new(Shared {
        jpy: jpy.map(Arc::new),
        socket: Arc::new(socket),
        ssl,
        cookies,
        handler,
        limits,
        sessions: Mutex::new(HashMap::new()),
        handshakes: Arc::new(Semaphore::new(limits.max_handshakes)),
        next_id: AtomicU64::new(0),
        stop,
        conns,
    });
    let mut tasks = tokio::task::JoinSet::new();
    let mut buf = vec![0u8; 65536];
    let mut jpy_buf = vec![0u8; 65536];
    let jpy_socket = shared.jpy.clone();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            received = shared.socket.recv_from(&mut buf) => match received {
                Ok((n, peer)) => dispatch(&shared, &mut tasks, peer.into(), &buf[..n]).await,
                Err(e) => {
                    tracing::debug!(error = %e, "CoAPS receive failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            received = recv_jpy(jpy_socket.as_deref(), &mut jpy_buf) => {
                if let Some((peer, datagram)) = received {
                    dispatch(&shared, &mut tasks, peer, &datagram).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    let _ = stop_tx.send(true);
    // Sessions still get their datagrams while they finish.
    let drain = async {
        loop {
            tokio::select! {
                received = shared.socket.recv_from(&mut buf) => if let Ok((n, peer)) = received {
                    forward(&shared, &peer.into(), &buf[..n]);
                },
                received = recv_jpy(jpy_socket.as_deref(), &mut jpy_buf) => {
                    if let Some((peer, datagram)) = received {
                        forward(&shared, &peer, &datagram);
                    }
                },
                joined = tasks.join_next() => if joined.is_none() { break },
            }
        }
    };
    if tokio::time::timeout(limits.drain_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!("CoAPS drain timeout: closing remaining sessions");
    }
    Ok(())
}

/// The next JPY message on `socket` (never, without one): its peer and datagram, or `None`
/// for one to drop.
async fn recv_jpy(socket: Option<&UdpSocket>, buf: &mut [u8]) -> Option<(Peer, Vec<u8>)> {
    let Some(socket) = socket else {
        return std::future::pending().await;
    };
    match socket.recv_from(buf).await {
        Ok((n, from)) => unwrap_jpy(from, &buf[..n]),
        Err(e) => {
            tracing::debug!(error = %e, "JPY receive failed");
            tokio::time::sleep(Duration::from_millis(10)).await;
            None
        }
    }
}

/// Hand `datagram` to its session; `false` when `peer` has none.
fn forward(shared: &Shared, peer: &Peer, datagram: &[u8]) -> bool {
    let sessions = shared.sessions();
    let Some(entry) = sessions.get(peer) else {
        return false;
    };
    if entry.queue.try_send(datagram.to_vec()).is_err() {
        tracing::debug!(%peer, "CoAPS session queue full: datagram dropped");
    }
    true
}

async fn dispatch(
    shared: &Arc<Shared>,
    tasks: &mut tokio::task::JoinSet<()>,
    peer: Peer,
    datagram: &[u8],
) {
    let hello = dtls::client_hello(datagram);
    let established = shared
        .sessions()
        .get(&peer)
        .map(|e| e.established.load(Ordering::Acquire));
    match (&hello, established) {
        // A handshake in progress, or the records of a session.
        (_, Some(false)) | (None, Some(true)) => {
            forward(shared, &peer, datagram);
            return;
        }
        (None, None) => return,
        // A new ClientHello, or one from a client that restarted on the same address
        // (RFC 6347 §4.2.8): the cookie exchange first.
        (Some(_), _) => {}
    }
    let Some(hello) = hello else { return };
    if !shared.cookies.valid(&peer, hello.cookie) {
        let cookie = shared.cookies.cookie(&peer, shared.cookies.window_now());
        let hvr = hello.hello_verify_request(&cookie);
        let _ = shared.send(&peer, &hvr).await;
        return;
    }
    let Ok(permit) = shared.handshakes.clone().try_acquire_owned() else {
        tracing::info!(%peer, outcome = "handshake-limit", "DTLS handshake refused: too many at once");
        return;
    };
    {
        let sessions = shared.sessions();
        let same_ip = sessions
            .keys()
            .filter(|a| a.addr.ip() == peer.addr.ip())
            .count();
        let replacing = sessions.contains_key(&peer);
        if !replacing
            && (sessions.len() >= shared.limits.max_sessions
                || same_ip >= shared.limits.per_peer_sessions)
        {
            tracing::info!(%peer, outcome = "session-limit", "DTLS session refused: too many open");
            return;
        }
    }
    let start = hello.session_start(datagram);
    let (queue, inbox) = mpsc::channel(shared.limits.session_queue);
    let established = Arc::new(AtomicBool::new(false));
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    shared.sessions().insert(
        peer.clone(),
        Entry {
            id,
            queue,
            established: established.clone(),
        },
    );
    let shared = shared.clone();
    tasks.spawn(async move {
        let _open = shared.conns.opened("coaps");
        session(&shared, peer.clone(), start, inbox, established, permit).await;
        let mut sessions = shared.sessions();
        if sessions.get(&peer).is_some_and(|e| e.id == id) {
            sessions.remove(&peer);
        }
    });
}

/// Send what OpenSSL wrote.
async fn flush(shared: &Shared, stream: &mut SslStream<dtls::Pipe>, peer: &Peer) {
    for d in std::mem::take(&mut stream.get_mut().outbox) {
        if let Err(e) = shared.send(peer, &d).await {
            tracing::debug!(%peer, error = %e, "CoAPS send failed");
        }
    }
}

/// The chain the client presented, end entity first.
fn presented_chain(ssl: &openssl::ssl::SslRef) -> Vec<Vec<u8>> {
    let mut chain: Vec<Vec<u8>> = ssl
        .peer_certificate()
        .and_then(|c| c.to_der().ok())
        .into_iter()
        .collect();
    if let Some(rest) = ssl.peer_cert_chain() {
        chain.extend(rest.iter().filter_map(|c| c.to_der().ok()));
    }
    chain
}

/// Retransmission check of an unfinished handshake (OpenSSL resends its flight when its
/// timer has run out and it is called).
const HANDSHAKE_TICK: Duration = Duration::from_millis(500);

async fn session(
    shared: &Shared,
    peer: Peer,
    start: [Vec<u8>; 2],
    mut inbox: mpsc::Receiver<Vec<u8>>,
    established: Arc<AtomicBool>,
    handshake: tokio::sync::OwnedSemaphorePermit,
) {
    let limits = shared.limits;
    let ssl = match dtls::session_ssl(&shared.ssl, &peer, limits.datagram(&peer)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "DTLS session not created");
            return;
        }
    };
    let mut stream = match SslStream::new(ssl, dtls::Pipe::starting_with(start)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "DTLS session not created");
            return;
        }
    };
    // The handshake.
    let deadline = tokio::time::Instant::now() + limits.handshake_timeout;
    loop {
        let result = stream.accept();
        flush(shared, &mut stream, &peer).await;
        match result {
            Ok(()) => break,
            Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => {}
            Err(e) => {
                let reason = e
                    .ssl_error()
                    .map_or_else(|| e.to_string(), ToString::to_string);
                shared.conns.handshake_failed("coaps", "protocol");
                tracing::info!(%peer, reason = %reason, outcome = "dtls-rejected", "DTLS handshake failed");
                return;
            }
        }
        tokio::select! {
            d = inbox.recv() => match d {
                Some(d) => stream.get_mut().inbox.push_back(d),
                None => return,
            },
            () = tokio::time::sleep(HANDSHAKE_TICK) => {}
            () = tokio::time::sleep_until(deadline) => {
                shared.conns.handshake_failed("coaps", "timeout");
                tracing::info!(%peer, outcome = "dtls-timeout", "DTLS handshake timed out");
                return;
            }
        }
    }
    drop(handshake);
    established.store(true, Ordering::Release);
    let ssl = stream.ssl();
    let channel_binding = (ssl.extms_support() == Some(true))
        .then(|| {
            let mut out = [0u8; 32];
            ssl.export_keying_material(&mut out, "EXPORTER-Channel-Binding", None)
                .ok()
                .map(|()| Arc::<[u8]>::from(out.to_vec()))
        })
        .flatten();
    let info = SessionInfo {
        peer: peer.addr,
        peer_certs: Arc::new(presented_chain(ssl)),
        memo: ConnMemo::default(),
        channel_binding,
    };
    tracing::debug!(%peer, cipher = ssl.current_cipher().map_or("-", |c| c.name()), certs = info.peer_certs.len(), "DTLS session established");

    let mut first_mid = [0u8; 2];
    let _ = openssl::rand::rand_bytes(&mut first_mid);
    let mut exchange = Exchange::new(limits.exchange, u16::from_be_bytes(first_mid));
    let (answers_tx, mut answers) =
        mpsc::channel::<(u64, Response)>(limits.exchange.max_in_flight + 1);
    let mut stop = shared.stop.clone();
    let mut stopping = *stop.borrow();
    let mut idle = tokio::time::Instant::now() + limits.idle_timeout;
    let mut buf = vec![0u8; 65536];
    let mut closing = false;
    loop {
        if closing || stopping && exchange.in_flight() == 0 && exchange.unacknowledged() == 0 {
            break;
        }
        let timer = exchange
            .next_deadline()
            .map(tokio::time::Instant::from_std)
            .unwrap_or(idle)
            .min(idle);
        let actions = tokio::select! {
            d = inbox.recv() => {
                let Some(d) = d else { break };
                idle = tokio::time::Instant::now() + limits.idle_timeout;
                stream.get_mut().inbox.push_back(d);
                let mut actions = Vec::new();
                let mut closed = false;
                loop {
                    match stream.ssl_read(&mut buf) {
                        Ok(n) => actions.extend(exchange.on_message(&buf[..n], Instant::now())),
                        Err(e) if e.code() == ErrorCode::WANT_READ => break,
                        Err(e) => {
                            if e.code() != ErrorCode::ZERO_RETURN {
                                tracing::debug!(%peer, error = %e, "DTLS read failed");
                            }
                            closed = true;
                            break;
                        }
                    }
                }
                // Alerts and retransmitted handshake messages OpenSSL answered.
                flush(shared, &mut stream, &peer).await;
                if closed {
                    break;
                }
                actions
            }
            Some((id, response)) = answers.recv() => exchange.on_response(id, response, Instant::now()),
            () = tokio::time::sleep_until(timer) => {
                if tokio::time::Instant::now() >= idle {
                    tracing::debug!(%peer, "DTLS session idle: closed");
                    break;
                }
                exchange.on_timer(Instant::now())
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                Vec::new()
            }
        };
        for action in actions {
            match action {
                Action::Send(bytes) => {
                    if let Err(e) = stream.ssl_write(&bytes) {
                        tracing::debug!(%peer, error = %e, "DTLS write failed");
                    }
                }
                Action::Close => closing = true,
                Action::Dispatch(id, request) => {
                    let handler = shared.handler.clone();
                    let info = info.clone();
                    let tx = answers_tx.clone();
                    tokio::spawn(async move {
                        let response = handler(info, request).await;
                        let _ = tx.send((id, response)).await;
                    });
                }
            }
        }
        flush(shared, &mut stream, &peer).await;
    }
    let _ = stream.shutdown();
    flush(shared, &mut stream, &peer).await;
}

#[cfg(test)]
mod tests;
