//! A CoAP client over DTLS 1.2 (CoAPS, RFC 7252 §9.1), the pledge's side of RFC 9148 and
//! cBRSKI: one DTLS session with one server, authenticated with a certificate, one request at a
//! time ([`super::call`]). The server's certificate chain is judged by the caller's
//! [`ServerCheck`] once the handshake is done and before any request is sent (the pledge's
//! provisional acceptance, cBRSKI §6.1; or an anchored check).

use super::call::{Call, CallError, CallLimits, Step};
use super::dtls::{CIPHERS, Identity, Pipe};
use super::{Method, Request, Response};
use crate::https_client;
use brski_common::answer::Class;
use brski_common::brski::paths;
use brski_common::est::ContentFormat;
use brski_common::pki::chain::{TrustPolicy, validate_chain};
use der::Decode;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use openssl::error::ErrorStack;
use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslStream, SslVerifyMode,
    SslVersion,
};
use openssl::x509::X509;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// Judges the server's certificate chain (DER, end entity first); `Err` names the reason.
pub type ServerCheck = Arc<dyn Fn(&[Vec<u8>]) -> Result<(), String> + Send + Sync>;

fn decode_chain(chain: &[Vec<u8>]) -> Result<Vec<x509_cert::Certificate>, String> {
    chain
        .iter()
        .map(|d| x509_cert::Certificate::from_der(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("a certificate does not decode: {e}"))
}

/// RFC 8995 §5.1 (cBRSKI §6.1): the registrar accepted provisionally, its chain's signatures
/// checked as far as they can be (the TLS client's `ProvisionalVerifier` rule).
pub fn provisional() -> ServerCheck {
    Arc::new(|chain: &[Vec<u8>]| {
        brski_common::tls::presented_chain_signatures(&decode_chain(chain)?)
            .map_err(|e| e.to_string())
    })
}

/// A server whose chain validates under `policy` (the TLS client's `AnchoredServerVerifier`
/// rule).
pub fn anchored(policy: TrustPolicy) -> ServerCheck {
    Arc::new(move |chain: &[Vec<u8>]| {
        let certs = decode_chain(chain)?;
        let (leaf, rest) = certs.split_first().ok_or("no certificate")?;
        validate_chain(leaf, rest, &policy)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

/// A CoAP answer in the terms of an HTTP one: the code as the HTTP status it stands for
/// ([`Class::http_status_of_coap`]: 5.03 with Max-Age is the pending 202), the content format
/// as Content-Type, Max-Age as Retry-After.
pub fn as_http(answer: &Response) -> https_client::Response {
    let mut headers = HeaderMap::new();
    let media = answer
        .content_format
        .and_then(|cf| ContentFormat(cf).media_type());
    if let Some(v) = media.and_then(|m| HeaderValue::from_str(m).ok()) {
        headers.insert(CONTENT_TYPE, v);
    }
    if let Some(age) = answer.max_age {
        headers.insert(RETRY_AFTER, HeaderValue::from(age));
    }
    https_client::Response {
        status: Class::http_status_of_coap(answer.code, answer.max_age.is_some()),
        headers,
        body: answer.payload.clone(),
    }
}

/// How a client connects.
#[derive(Clone)]
pub struct ClientConfig {
    /// The client's certificate chain and key (an IDevID or an LDevID).
    pub identity: Identity,
    pub server_check: ServerCheck,
    /// Path MTU the datagrams are sized for (cBRSKI: 1024).
    pub path_mtu: u16,
    pub call: CallLimits,
    /// The UDP port to send from, when free (0: any). A constrained join proxy keeps a flow
    /// per pledge address and port for 30 s and at most 2 per address (CJP §4.3): a pledge
    /// that opens its next session from the same port stays within one flow.
    pub source_port: u16,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientConfig({:?})", self.identity)
    }
}

/// Why a CoAPS exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("UDP: {0}")]
    Io(#[from] std::io::Error),
    #[error("DTLS set-up: {0}")]
    Setup(#[from] openssl::error::ErrorStack),
    #[error("DTLS set-up: {0}")]
    Key(#[from] super::DtlsError),
    #[error("DTLS handshake with {peer} failed: {reason}")]
    Handshake { peer: SocketAddr, reason: String },
    #[error("DTLS handshake with {0} timed out")]
    HandshakeTimeout(SocketAddr),
    #[error("the server's certificate is not accepted: {0}")]
    ServerRefused(String),
    #[error("the DTLS session ended")]
    Closed,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("CoAP: {0}")]
    Call(#[from] CallError),
}

impl ClientError {
    /// The session is gone (the server closed it, or forgot it): a new one may succeed.
    pub fn is_closed_connection(&self) -> bool {
        matches!(
            self,
            Self::Closed | Self::Call(CallError::NotAcknowledged(_) | CallError::Reset)
        )
    }
}

/// The process's one DTLS client context: versions, suites, groups and options are the same
/// for every session, so they are set once; each session sets its own certificate and key.
/// A bare context: `SslConnector::builder` would load the system's CA store, which a client
/// judging the server by `server_check` does not use.
fn client_context() -> Result<SslContext, ErrorStack> {
    static CONTEXT: OnceLock<SslContext> = OnceLock::new();
    if let Some(ctx) = CONTEXT.get() {
        return Ok(ctx.clone());
    }
    let mut b = SslContextBuilder::new(SslMethod::dtls_client())?;
    b.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
    b.set_max_proto_version(Some(SslVersion::DTLS1_2))?;
    b.set_cipher_list(CIPHERS)?;
    b.set_groups_list("P-256:P-384")?;
    b.set_options(SslOptions::NO_QUERY_MTU | SslOptions::NO_TICKET);
    // The chain is judged by `server_check` once it is complete (see the module doc).
    b.set_verify(SslVerifyMode::NONE);
    Ok(CONTEXT.get_or_init(|| b.build()).clone())
}

/// Retransmission check of an unfinished handshake (OpenSSL resends its flight when its
/// timer has run out and it is called).
const HANDSHAKE_TICK: Duration = Duration::from_millis(250);

/// A DTLS session with one server.
pub struct Client {
    socket: UdpSocket,
    stream: SslStream<Pipe>,
    peer: SocketAddr,
    peer_certs: Vec<Vec<u8>>,
    channel_binding: Option<Vec<u8>>,
    limits: CallLimits,
    next_mid: u16,
    closed: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "coaps::Client({})", self.peer)
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // OpenSSL's generator fails only when it cannot be seeded; zeros are then still valid
    // (message IDs and tokens need not be secret, RFC 7252 §5.3.1).
    let _ = openssl::rand::rand_bytes(&mut b);
    b
}

impl Client {
    /// Handshake with `peer` within `timeout`, then check the server's chain.
    pub async fn connect(
        peer: SocketAddr,
        config: &ClientConfig,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let local = |port: u16| -> SocketAddr {
            if peer.is_ipv4() {
                ([0, 0, 0, 0], port).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, port).into()
            }
        };
        let socket = match UdpSocket::bind(local(config.source_port)).await {
            Ok(s) => s,
            Err(e) if config.source_port != 0 => {
                tracing::debug!(port = config.source_port, error = %e, "source port taken; another one");
                UdpSocket::bind(local(0)).await?
            }
            Err(e) => return Err(e.into()),
        };
        socket.connect(peer).await?;
        let (leaf, rest) = config
            .identity
            .chain
            .split_first()
            .ok_or(super::DtlsError::NoCertificate)
            .map_err(|e| ClientError::Handshake {
                peer,
                reason: e.to_string(),
            })?;
        let context = client_context()?;
        let mut ssl = Ssl::new(&context)?;
        let leaf = X509::from_der(leaf)?;
        ssl.set_certificate(&leaf)?;
        for der in rest {
            ssl.add_chain_cert(X509::from_der(der)?)?;
        }
        let (key, sigalgs) = config.identity.key.for_client()?;
        ssl.set_private_key(&key)?;
        if let Some(sigalgs) = sigalgs {
            brski_openssl_key::set_client_sigalgs(&mut ssl, sigalgs)?;
        }
        let overhead = if peer.is_ipv4() { 28 } else { 48 };
        ssl.set_mtu(u32::from(config.path_mtu).saturating_sub(overhead))?;
        let stream = SslStream::new(ssl, Pipe::default())?;
        let [hi, lo] = random::<2>();
        let mut client = Self {
            socket,
            stream,
            peer,
            peer_certs: Vec::new(),
            channel_binding: None,
            limits: config.call,
            next_mid: u16::from_be_bytes([hi, lo]),
            closed: false,
        };
        tokio::time::timeout(timeout, client.handshake())
            .await
            .map_err(|_| ClientError::HandshakeTimeout(peer))??;
        let ssl = client.stream.ssl();
        // On the client side OpenSSL's peer chain starts with the server's certificate.
        client.peer_certs = ssl
            .peer_cert_chain()
            .map(|chain| chain.iter().filter_map(|c| c.to_der().ok()).collect())
            .unwrap_or_default();
        client.channel_binding = (ssl.extms_support() == Some(true))
            .then(|| {
                let mut out = [0u8; 32];
                ssl.export_keying_material(&mut out, "EXPORTER-Channel-Binding", None)
                    .ok()
                    .map(|()| out.to_vec())
            })
            .flatten();
        if let Err(reason) = (config.server_check)(&client.peer_certs) {
            client.close().await;
            return Err(ClientError::ServerRefused(reason));
        }
        Ok(client)
    }

    async fn handshake(&mut self) -> Result<(), ClientError> {
        let mut buf = vec![0u8; 65536];
        loop {
            let result = self.stream.connect();
            self.flush().await?;
            match result {
                Ok(()) => return Ok(()),
                Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => {}
                Err(e) => {
                    return Err(ClientError::Handshake {
                        peer: self.peer,
                        reason: e
                            .ssl_error()
                            .map_or_else(|| e.to_string(), ToString::to_string),
                    });
                }
            }
            tokio::select! {
                r = self.socket.recv(&mut buf) => {
                    let n = r?;
                    self.stream.get_mut().inbox.push_back(buf[..n].to_vec());
                }
                () = tokio::time::sleep(HANDSHAKE_TICK) => {}
            }
        }
    }

    /// Send what OpenSSL wrote.
    async fn flush(&mut self) -> Result<(), ClientError> {
        for d in std::mem::take(&mut self.stream.get_mut().outbox) {
            self.socket.send(&d).await?;
        }
        Ok(())
    }

    /// The UDP port this session sends from.
    pub fn local_port(&self) -> Option<u16> {
        self.socket.local_addr().ok().map(|a| a.port())
    }

    /// The server's certificate chain as presented, end entity first.
    pub fn peer_certs(&self) -> &[Vec<u8>] {
        &self.peer_certs
    }

    /// RFC 9266 `tls-exporter` of this session, when the extended master secret was
    /// negotiated.
    pub fn channel_binding(&self) -> Option<&[u8]> {
        self.channel_binding.as_deref()
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// One request and its (reassembled) answer, within `timeout`.
    pub async fn request(
        &mut self,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        let token = random::<8>().to_vec();
        let (mut call, first) =
            Call::start(request, token, self.next_mid, self.limits, Instant::now());
        self.next_mid = call.next_mid();
        self.write(&first).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        let mut plain = vec![0u8; 65536];
        loop {
            let timer = call
                .deadline()
                .map(tokio::time::Instant::from_std)
                .unwrap_or(deadline)
                .min(deadline);
            let steps = tokio::select! {
                r = self.socket.recv(&mut buf) => {
                    let n = r?;
                    self.stream.get_mut().inbox.push_back(buf[..n].to_vec());
                    let mut steps = Vec::new();
                    loop {
                        match self.stream.ssl_read(&mut plain) {
                            Ok(n) => steps.extend(call.on_message(&plain[..n], Instant::now())),
                            Err(e) if e.code() == ErrorCode::WANT_READ => break,
                            Err(_) => {
                                self.closed = true;
                                break;
                            }
                        }
                    }
                    // Alerts and handshake retransmissions OpenSSL answered.
                    self.flush().await?;
                    steps
                }
                () = tokio::time::sleep_until(timer) => {
                    if tokio::time::Instant::now() >= deadline {
                        self.next_mid = call.next_mid();
                        return Err(ClientError::Timeout(timeout));
                    }
                    call.on_timer(Instant::now())
                }
            };
            self.next_mid = call.next_mid();
            for step in steps {
                match step {
                    Step::Send(bytes) => self.write(&bytes).await?,
                    Step::Done(r) => return Ok(r),
                    Step::Failed(e) => return Err(e.into()),
                }
            }
            if self.closed {
                return Err(ClientError::Closed);
            }
        }
    }

    /// A request in HTTP terms (an EST or BRSKI path, media types), sent as CoAP: the path's
    /// short name (cBRSKI §6.3, RFC 9148 §4.1), content formats for media types; the answer
    /// [`as_http`].
    pub async fn exchange(
        &mut self,
        method: &http::Method,
        path: &str,
        content_type: Option<&str>,
        accept: Option<&str>,
        body: &[u8],
        timeout: Duration,
    ) -> Result<https_client::Response, ClientError> {
        let method = if method == http::Method::POST {
            Method::Post
        } else {
            Method::Get
        };
        let format = |media: Option<&str>| {
            media
                .and_then(ContentFormat::from_media_type)
                .map(|cf| cf.0)
        };
        let request = Request {
            content_format: format(content_type),
            accept: format(accept),
            payload: body.to_vec(),
            ..Request::new(method, paths::coap(path))
        };
        self.request(request, timeout).await.map(|r| as_http(&r))
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        if let Err(e) = self.stream.ssl_write(bytes) {
            tracing::debug!(peer = %self.peer, error = %e, "DTLS write failed");
            self.closed = true;
            return Err(ClientError::Closed);
        }
        self.flush().await
    }

    /// End the session with close_notify.
    pub async fn close(&mut self) {
        if !self.closed {
            let _ = self.stream.shutdown();
            let _ = self.flush().await;
            self.closed = true;
        }
    }
}

/// A dropped session still ends with close_notify (sent without waiting), so that the server
/// frees it at once rather than after its idle timeout.
impl Drop for Client {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let _ = self.stream.shutdown();
        for d in std::mem::take(&mut self.stream.get_mut().outbox) {
            let _ = self.socket.try_send(&d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brski_common::answer::CoapCode;

    fn coap(code: CoapCode, cf: Option<u16>, max_age: Option<u32>) -> Response {
        Response {
            content_format: cf,
            max_age,
            payload: b"x".to_vec(),
            ..Response::empty(code)
        }
    }

    #[test]
    fn rfc9148_coap_answers_read_as_the_http_ones_they_stand_for() {
        let r = as_http(&coap(CoapCode::CHANGED, Some(836), None));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/voucher+cose"));
        assert_eq!(r.body, b"x");
        // RFC 9148 §4.7: 5.03 with Max-Age is "pending": 202 with Retry-After.
        let r = as_http(&coap(CoapCode::SERVICE_UNAVAILABLE, None, Some(7)));
        assert_eq!((r.status, r.header("retry-after")), (202, Some("7")));
        let r = as_http(&coap(CoapCode::SERVICE_UNAVAILABLE, None, None));
        assert_eq!(r.status, 503);
        for (code, status) in [
            (CoapCode::FORBIDDEN, 403),
            (CoapCode::UNAUTHORIZED, 401),
            (CoapCode::NOT_FOUND, 404),
            (CoapCode::BAD_GATEWAY, 502),
            (CoapCode::UNSUPPORTED_CONTENT_FORMAT, 415),
        ] {
            assert_eq!(as_http(&coap(code, None, None)).status, status, "{code}");
        }
        // A format without a media type of ours carries no Content-Type.
        assert_eq!(
            as_http(&coap(CoapCode::CONTENT, Some(9999), None)).header("content-type"),
            None
        );
    }

    #[test]
    fn cbrski_6_3_requests_go_to_the_short_paths() {
        assert_eq!(paths::coap(paths::REQUEST_VOUCHER), "/.well-known/brski/rv");
        assert_eq!(paths::coap(paths::SIMPLE_REENROLL), "/.well-known/est/sren");
        assert_eq!(paths::coap("/other"), "/other");
    }
}
