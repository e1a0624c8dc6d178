//! The pledge's session with the registrar: HTTPS (RFC 8995 §5) or CoAP over DTLS (RFC 9148,
//! cBRSKI §6), one persistent connection for the whole bootstrap. When the registrar closes an
//! idle connection, a new one is opened and must present the very certificate chain recorded
//! on the first one, since that chain is what the voucher request named and what the
//! voucher's pin was checked against (RFC 8995 §5: without persistent connections both ends
//! MUST re-check the certificates).
//!
//! The bootstrap speaks in HTTP terms ([`Exchange`], [`Response`]); over CoAP the client maps
//! them (`coaps::client::Client::exchange`: the short path of cBRSKI §6.3, content formats, the
//! code as the HTTP status it stands for, 5.03 with Max-Age as the pending 202).

use crate::error::{Failure, Step};
use crate::timing::pending_wait;
use brski_service::https_client::{Response, Target};
pub use brski_service::link::{ClientCert, Credentials, ServerTrust, Transport};
use brski_service::link::{Link, LinkError};
use http::Method;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The UDP port the pledge's last CoAPS session sent from: the next one (a retry, the
/// LDevID's enrollstatus, a renewal) sends from it again when it is free, so that a constrained
/// join proxy sees one flow per pledge (CJP §4.3 keeps at most 2 per address for 30 s).
static SOURCE_PORT: AtomicU16 = AtomicU16::new(0);

/// How long a TCP connect or a TLS or DTLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one request may take; the registrar may be waiting on the MASA (RFC 8995 §5.5).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A link failure as the pledge reports it: credentials it cannot use are its configuration's
/// fault, anything else leaves the registrar unreachable.
fn failure(e: LinkError) -> Failure {
    match e {
        LinkError::Credentials(reason) => Failure::Config(reason),
        other => Failure::Unreachable(other.to_string()),
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
        let credentials = Credentials {
            source_port: SOURCE_PORT.load(Ordering::Relaxed),
            ..credentials.clone()
        };
        let link = Link::open(transport, target, &credentials, CONNECT_TIMEOUT)
            .await
            .map_err(failure)?;
        if let Some(port) = link.source_port() {
            SOURCE_PORT.store(port, Ordering::Relaxed);
        }
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
        let link = self
            .link
            .reopen(&self.target, CONNECT_TIMEOUT)
            .await
            .map_err(failure)?;
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
            let answer = self
                .link
                .request(
                    &x.method,
                    x.path,
                    x.content_type,
                    x.accept,
                    &body,
                    REQUEST_TIMEOUT,
                )
                .await;
            match answer {
                Ok(r) => {
                    tracing::info!(step = %x.step, status = r.status, "registrar answered");
                    return Ok(r);
                }
                Err(e) if e.is_closed_connection() && !retried => {
                    tracing::debug!(step = %x.step, error = %e, "connection closed; resending");
                    retried = true;
                    self.reconnect(x.step).await?;
                }
                Err(e) => return Err(failure(e)),
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
    use proptest::prelude::*;

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
