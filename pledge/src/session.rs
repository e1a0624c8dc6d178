//! The pledge's session with the registrar: HTTPS (RFC 8995 §5) or CoAP over DTLS (RFC 9148,
//! cBRSKI §6), one persistent connection for the whole bootstrap. When the registrar closes an
//! idle connection, a new one is opened and must present the very certificate chain recorded
//! on the first one, since that chain is what the voucher request named and what the
//! voucher's pin was checked against (RFC 8995 §5: without persistent connections both ends
//! MUST re-check the certificates).
//!
//! The bootstrap speaks in HTTP terms ([`Exchange`], [`Response`]); over CoAP the path is the
//! short one (cBRSKI §6.3), media types are content formats, and the answer's code is its HTTP
//! status by [`Class::http_status_of_coap`] (5.03 with Max-Age is the pending 202, its Max-Age
//! the Retry-After).

use crate::error::{Failure, Step};
use crate::timing::pending_wait;
use brski_common::answer::Class;
use brski_common::brski::paths;
use brski_common::est::ContentFormat;
use brski_common::keys::Signer;
use brski_common::pki::chain::{TrustPolicy, validate_chain};
use brski_common::tls;
use brski_service::coaps;
use brski_service::https_client::{Connection, Response, Target};
use http::{HeaderMap, HeaderValue, Method};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use x509_cert::Certificate;

/// How long a TCP connect or a TLS or DTLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one request may take; the registrar may be waiting on the MASA (RFC 8995 §5.5).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

fn unreachable(e: impl std::fmt::Display) -> Failure {
    Failure::Unreachable(e.to_string())
}

/// The transport to the registrar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// EST over HTTPS (RFC 7030, RFC 8995).
    Https,
    /// EST over CoAP and DTLS (RFC 9148, cBRSKI).
    Coaps,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Self::Https => "https",
            Self::Coaps => "coaps",
        }
    }
}

/// How the registrar's certificate chain is judged.
#[derive(Clone, Debug)]
pub enum ServerTrust {
    /// RFC 8995 §5.1: accepted provisionally, its signatures checked as far as they can be.
    Provisional,
    /// Validated under this policy (the domain CA, and id-kp-cmcRA, RFC 8995 §5.6.2).
    Anchored(TrustPolicy),
}

impl ServerTrust {
    /// The check of a presented chain (DER, end entity first), the same on both transports.
    fn check(&self, chain: &[Vec<u8>]) -> Result<(), String> {
        use der::Decode;
        let certs = chain
            .iter()
            .map(|d| Certificate::from_der(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("a certificate does not decode: {e}"))?;
        match self {
            Self::Provisional => tls::presented_chain_signatures(&certs).map_err(|e| e.to_string()),
            Self::Anchored(policy) => {
                let (leaf, rest) = certs.split_first().ok_or("no certificate")?;
                validate_chain(leaf, rest, policy)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// The pledge's credentials on a session, and how it judges the registrar.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The pledge's chain (IDevID or LDevID first), DER.
    pub chain: Vec<Vec<u8>>,
    pub key: Arc<dyn Signer>,
    pub server: ServerTrust,
}

impl Credentials {
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>, Failure> {
        let internal = |e: tls::TlsError| Failure::Internal(e.to_string());
        let client = tls::certified_key(&self.chain, self.key.clone()).map_err(internal)?;
        let config = match &self.server {
            ServerTrust::Provisional => tls::provisional_client_config(client),
            ServerTrust::Anchored(policy) => tls::client_config(
                Some(client),
                Arc::new(tls::AnchoredServerVerifier::new(policy.clone())),
            ),
        };
        config.map(Arc::new).map_err(internal)
    }

    fn dtls(&self) -> Result<coaps::client::ClientConfig, Failure> {
        let key_pkcs8 = self.key.pkcs8_der().ok_or_else(|| {
            Failure::Config(
                "coaps needs the key in software: OpenSSL's DTLS cannot sign with a TPM-held key \
                 here (use transport = \"https\")"
                    .into(),
            )
        })?;
        let server = self.server.clone();
        Ok(coaps::client::ClientConfig {
            identity: coaps::Identity {
                chain: self.chain.clone(),
                key_pkcs8: key_pkcs8.to_vec(),
            },
            server_check: Arc::new(move |chain: &[Vec<u8>]| server.check(chain)),
            path_mtu: 1024,
            call: coaps::call::CallLimits::default(),
        })
    }
}

/// A request to send, possibly several times (after 202 or a closed connection).
#[derive(Clone, Debug)]
pub struct Exchange<'a> {
    pub step: Step,
    pub method: Method,
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub body: &'a [u8],
}

impl<'a> Exchange<'a> {
    pub fn get(step: Step, path: &'a str, accept: Option<&'a str>) -> Self {
        Self {
            step,
            method: Method::GET,
            path,
            content_type: None,
            accept,
            body: &[],
        }
    }

    pub fn post(step: Step, path: &'a str, content_type: &'a str, body: &'a [u8]) -> Self {
        Self {
            step,
            method: Method::POST,
            path,
            content_type: Some(content_type),
            accept: None,
            body,
        }
    }

    pub fn accepting(mut self, accept: &'a str) -> Self {
        self.accept = Some(accept);
        self
    }
}

/// The connection under a session.
enum Link {
    Https {
        tls: Arc<rustls::ClientConfig>,
        conn: Connection,
    },
    Coaps {
        config: coaps::client::ClientConfig,
        client: coaps::client::Client,
    },
}

impl Link {
    async fn open(
        transport: Transport,
        target: &Target,
        credentials: &Credentials,
    ) -> Result<Self, Failure> {
        match transport {
            Transport::Https => {
                let tls = credentials.tls()?;
                let conn = Connection::connect(target, tls.clone(), CONNECT_TIMEOUT)
                    .await
                    .map_err(unreachable)?;
                Ok(Self::Https { tls, conn })
            }
            Transport::Coaps => {
                let config = credentials.dtls()?;
                let client = coaps::client::Client::connect(
                    resolve(target).await?,
                    &config,
                    CONNECT_TIMEOUT,
                )
                .await
                .map_err(|e| match e {
                    coaps::client::ClientError::ServerRefused(reason) => Failure::Unreachable(
                        format!("the registrar's certificate is not accepted: {reason}"),
                    ),
                    other => unreachable(other),
                })?;
                Ok(Self::Coaps { config, client })
            }
        }
    }

    async fn reopen(&self, target: &Target) -> Result<Self, Failure> {
        match self {
            Self::Https { tls, .. } => {
                let conn = Connection::connect(target, tls.clone(), CONNECT_TIMEOUT)
                    .await
                    .map_err(unreachable)?;
                Ok(Self::Https {
                    tls: tls.clone(),
                    conn,
                })
            }
            Self::Coaps { config, .. } => {
                let client =
                    coaps::client::Client::connect(resolve(target).await?, config, CONNECT_TIMEOUT)
                        .await
                        .map_err(unreachable)?;
                Ok(Self::Coaps {
                    config: config.clone(),
                    client,
                })
            }
        }
    }

    fn peer_certs(&self) -> &[Vec<u8>] {
        match self {
            Self::Https { conn, .. } => conn.peer_certs(),
            Self::Coaps { client, .. } => client.peer_certs(),
        }
    }

    fn channel_binding(&self) -> Option<&[u8]> {
        match self {
            Self::Https { conn, .. } => conn.channel_binding(),
            Self::Coaps { client, .. } => client.channel_binding(),
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Self::Https { conn, .. } => conn.is_closed(),
            Self::Coaps { client, .. } => client.is_closed(),
        }
    }

    /// One request; `Err(true, _)` when the connection was found closed.
    async fn request(
        &mut self,
        x: &Exchange<'_>,
        body: &[u8],
    ) -> Result<Response, (bool, Failure)> {
        match self {
            Self::Https { conn, .. } => conn
                .request(
                    x.method.clone(),
                    x.path,
                    x.content_type,
                    x.accept,
                    body,
                    REQUEST_TIMEOUT,
                )
                .await
                .map_err(|e| (e.is_closed_connection(), unreachable(e))),
            Self::Coaps { client, .. } => {
                let method = if x.method == Method::POST {
                    coaps::Method::Post
                } else {
                    coaps::Method::Get
                };
                let content_format = |media: Option<&str>| {
                    media
                        .and_then(ContentFormat::from_media_type)
                        .map(|cf| cf.0)
                };
                let request = coaps::Request {
                    content_format: content_format(x.content_type),
                    accept: content_format(x.accept),
                    payload: body.to_vec(),
                    ..coaps::Request::new(method, paths::coap(x.path))
                };
                let answer = client
                    .request(request, REQUEST_TIMEOUT)
                    .await
                    .map_err(|e| (e.is_closed_connection(), unreachable(e)))?;
                Ok(as_http(&answer))
            }
        }
    }
}

/// A CoAP answer in the terms of an HTTP one (see the module doc).
fn as_http(answer: &coaps::Response) -> Response {
    let mut headers = HeaderMap::new();
    let media = answer
        .content_format
        .and_then(|cf| ContentFormat(cf).media_type());
    if let Some(v) = media.and_then(|m| HeaderValue::from_str(m).ok()) {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    if let Some(age) = answer.max_age {
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from(age));
    }
    Response {
        status: Class::http_status_of_coap(answer.code, answer.max_age.is_some()),
        headers,
        body: answer.payload.clone(),
    }
}

/// The registrar's address (the first the name resolves to).
async fn resolve(target: &Target) -> Result<SocketAddr, Failure> {
    tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| Failure::Unreachable(format!("{}: {e}", target.authority)))?
        .next()
        .ok_or_else(|| Failure::Unreachable(format!("{}: no address", target.authority)))
}

/// A session with one registrar.
pub struct Session {
    target: Target,
    transport: Transport,
    link: Link,
    /// The registrar's chain from the first handshake, end entity first (DER).
    server_chain: Vec<Vec<u8>>,
}

impl Session {
    /// Connect and record the registrar's certificate chain.
    pub async fn open(
        target: &Target,
        transport: Transport,
        credentials: &Credentials,
    ) -> Result<Self, Failure> {
        let link = Link::open(transport, target, credentials).await?;
        let server_chain = link.peer_certs().to_vec();
        if server_chain.is_empty() {
            return Err(Failure::Unreachable(
                "the registrar presented no certificate".into(),
            ));
        }
        Ok(Self {
            target: target.clone(),
            transport,
            link,
            server_chain,
        })
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The registrar's certificate chain as presented, end entity first.
    pub fn server_chain(&self) -> &[Vec<u8>] {
        &self.server_chain
    }

    /// The registrar's end-entity certificate (DER).
    pub fn server_cert(&self) -> &[u8] {
        self.server_chain.first().map(Vec::as_slice).unwrap_or(&[])
    }

    async fn reconnect(&mut self, step: Step) -> Result<(), Failure> {
        let link = self.link.reopen(&self.target).await?;
        // RFC 8995 §5: "check each subsequent connections for the same certificates": the
        // whole chain validated against the pin, not only its end entity.
        if link.peer_certs() != self.server_chain.as_slice() {
            return Err(Failure::Protocol {
                step,
                reason: "the registrar presented another certificate chain on a new connection"
                    .into(),
            });
        }
        tracing::debug!(registrar = %self.target.authority, transport = self.transport.name(), "reconnected");
        self.link = link;
        Ok(())
    }

    /// Send once (again on a new connection if the registrar had closed this one).
    pub async fn send(&mut self, x: &Exchange<'_>) -> Result<Response, Failure> {
        self.send_made(x, &|_| Ok(x.body.to_vec())).await
    }

    /// Send once a body made for the connection it goes on: `make` gets the connection's
    /// channel binding (RFC 9266 `tls-exporter`), as a CSR linked to its TLS connection needs
    /// (RFC 7030 §3.5), and makes the body anew for a new connection.
    pub async fn send_made(
        &mut self,
        x: &Exchange<'_>,
        make: &MakeBody<'_>,
    ) -> Result<Response, Failure> {
        if self.link.is_closed() {
            self.reconnect(x.step).await?;
        }
        let mut retried = false;
        loop {
            let body = make(self.link.channel_binding())?;
            match self.link.request(x, &body).await {
                Ok(r) => {
                    tracing::info!(step = %x.step, status = r.status, "registrar answered");
                    return Ok(r);
                }
                Err((true, e)) if !retried => {
                    tracing::debug!(step = %x.step, error = %e, "connection closed; resending");
                    retried = true;
                    self.reconnect(x.step).await?;
                }
                Err((_, e)) => return Err(e),
            }
        }
    }

    /// Send, and while the registrar answers 202, wait as its `Retry-After` says (at most
    /// `cap` each time) and resend the identical request (RFC 8995 §5.6, RFC 7030 §4.2.3),
    /// until `max_wait` has passed. Returns the first answer that is not 202.
    pub async fn send_until_done(
        &mut self,
        x: &Exchange<'_>,
        cap: Option<Duration>,
        max_wait: Duration,
    ) -> Result<Response, Failure> {
        self.send_made_until_done(x, &|_| Ok(x.body.to_vec()), cap, max_wait)
            .await
    }

    /// [`Self::send_until_done`] with a body made per connection ([`Self::send_made`]).
    pub async fn send_made_until_done(
        &mut self,
        x: &Exchange<'_>,
        make: &MakeBody<'_>,
        cap: Option<Duration>,
        max_wait: Duration,
    ) -> Result<Response, Failure> {
        let start = Instant::now();
        loop {
            let response = self.send_made(x, make).await?;
            if response.status != 202 {
                return Ok(response);
            }
            let wait = pending_wait(response.header("retry-after"), cap, SystemTime::now());
            let waited = start.elapsed();
            if waited + wait > max_wait {
                return Err(Failure::PendingTooLong {
                    step: x.step,
                    waited_secs: waited.as_secs(),
                });
            }
            tracing::info!(
                step = %x.step,
                outcome = "pending",
                retry_in_s = wait.as_secs(),
                "registrar answered 202; resending the same request later"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// Makes a request body for a connection, given its channel binding.
pub type MakeBody<'a> = dyn Fn(Option<&[u8]>) -> Result<Vec<u8>, Failure> + Sync + 'a;

#[cfg(test)]
mod tests {
    use super::*;
    use brski_common::answer::CoapCode;
    use proptest::prelude::*;

    fn coap(code: CoapCode, cf: Option<u16>, max_age: Option<u32>) -> coaps::Response {
        coaps::Response {
            content_format: cf,
            max_age,
            payload: b"x".to_vec(),
            ..coaps::Response::empty(code)
        }
    }

    #[test]
    fn rfc9148_coap_answers_read_as_the_http_ones_the_bootstrap_knows() {
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn reason_text_is_one_bounded_line(body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let r = Response { status: 500, headers: http::HeaderMap::new(), body };
            let reason = r.reason();
            prop_assert!(reason.chars().count() <= 200);
            prop_assert!(!reason.chars().any(char::is_control));
        }

        #[test]
        fn registrar_url_parser_never_panics(s in ".{0,80}") {
            let _ = Target::parse(&s);
            if let Ok(t) = Target::parse(&format!("https://{s}")) {
                prop_assert!(t.port != 0 && !t.host.is_empty());
            }
        }
    }
}
