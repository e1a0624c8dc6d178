//! An HTTPS client connection: one TLS session (tokio-rustls) carrying HTTP/1.1 requests one
//! after the other over hyper's client connection API. BRSKI-EST SHOULD use one persistent
//! connection (RFC 8995 §5), and the pledge must keep the registrar's certificate chain from
//! the handshake to validate it against the voucher's pin later (RFC 8995 §5.6.2): both need
//! the TLS session itself, which a pooling client such as reqwest hides.

use http::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use http::{Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The largest response body accepted (vouchers, certificates and telemetry are a few KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// Why a connection or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {authority} failed: {source}")]
    Tls {
        authority: String,
        source: std::io::Error,
    },
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("cannot build the request: {0}")]
    Request(#[from] http::Error),
    #[error("response body: {0}")]
    Body(String),
}

impl ClientError {
    /// Whether the connection was closed before a response arrived (e.g. the server dropped an
    /// idle persistent connection), so that the request may be sent again on a new one.
    pub fn is_closed_connection(&self) -> bool {
        match self {
            Self::Http(e) => e.is_closed() || e.is_incomplete_message() || e.is_canceled(),
            _ => false,
        }
    }
}

/// Where to connect: an `https://HOST[:PORT]` URL without path, query or user info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address, without the brackets of an IPv6 literal.
    pub host: String,
    pub port: u16,
    /// `HOST:PORT` as written in the `Host` header (IPv6 literals in brackets).
    pub authority: String,
}

/// The schemes a registrar URL may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Https,
    /// CoAP over DTLS (RFC 7252 §6.2), port 5684 by default.
    Coaps,
}

impl Target {
    /// Parse `https://HOST[:PORT][/]` (port 443 by default).
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        match Self::parse_with_scheme(url)? {
            (Scheme::Https, t) => Ok(t),
            (Scheme::Coaps, _) => Err(ClientError::InvalidUrl {
                url: url.chars().take(200).collect(),
                reason: "the scheme must be https",
            }),
        }
    }

    /// Parse `https://HOST[:PORT][/]` or `coaps://HOST[:PORT][/]` (ports 443 and 5684 by
    /// default).
    pub fn parse_with_scheme(url: &str) -> Result<(Scheme, Self), ClientError> {
        let invalid = |reason| ClientError::InvalidUrl {
            url: url.chars().take(200).collect(),
            reason,
        };
        let uri: http::Uri = url.parse().map_err(|_| invalid("not a URI"))?;
        let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("https") => Scheme::Https,
            Some("coaps") => Scheme::Coaps,
            _ => return Err(invalid("the scheme must be https or coaps")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user information is not supported"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid("a path or query is not supported"));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if bare.is_empty() {
            return Err(invalid("no host"));
        }
        let default_port = match scheme {
            Scheme::Https => 443,
            Scheme::Coaps => 5684,
        };
        let port = authority.port_u16().unwrap_or(default_port);
        if port == 0 {
            return Err(invalid("port 0"));
        }
        Ok((
            scheme,
            Self {
                host: bare.to_string(),
                port,
                authority: format!("{host}:{port}"),
            },
        ))
    }
}

/// A response read in full.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value when it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as a one-line reason for logs and error messages (RFC 8995 §5.6: a plain-text
    /// reason): the first line, control characters removed, at most 200 characters.
    pub fn reason(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect()
    }
}

/// One TLS connection carrying HTTP/1.1 requests.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    peer_certs: Vec<Vec<u8>>,
    /// The RFC 9266 `tls-exporter` channel binding of this connection.
    channel_binding: Option<Vec<u8>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("authority", &self.authority)
            .field("peer_certs", &self.peer_certs.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connect to `target` over TCP and TLS with `tls`; `timeout` bounds each of the two.
    /// The HTTP/1.1 connection is driven by a task on the current runtime.
    pub async fn connect(
        target: &Target,
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let tcp = tokio::time::timeout(
            timeout,
            TcpStream::connect((target.host.as_str(), target.port)),
        )
        .await
        .map_err(|_| ClientError::Timeout("TCP connect"))?
        .map_err(|source| ClientError::Connect {
            authority: target.authority.clone(),
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        // The name is only used for SNI (which the BRSKI configurations switch off) and by
        // verifiers that check it; anything that is not a valid name becomes a placeholder.
        let name = ServerName::try_from(target.host.clone()).unwrap_or(ServerName::IpAddress(
            std::net::IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED).into(),
        ));
        let stream = tokio::time::timeout(timeout, TlsConnector::from(tls).connect(name, tcp))
            .await
            .map_err(|_| ClientError::Timeout("TLS handshake"))?
            .map_err(|source| ClientError::Tls {
                authority: target.authority.clone(),
                source,
            })?;
        let peer_certs = stream
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.as_ref().to_vec()).collect())
            .unwrap_or_default();
        let channel_binding = crate::https::tls_exporter(stream.get_ref().1);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "HTTPS client connection ended with an error");
            }
        });
        Ok(Self {
            sender,
            authority: target.authority.clone(),
            peer_certs,
            channel_binding,
        })
    }

    /// The RFC 9266 `tls-exporter` channel binding (32 bytes) of this connection: what an EST
    /// client puts in a CSR's challengePassword to bind it to this TLS session (RFC 7030 §3.5).
    pub fn channel_binding(&self) -> Option<&[u8]> {
        self.channel_binding.as_deref()
    }

    /// The server's certificate chain as presented in the handshake, end entity first (DER).
    pub fn peer_certs(&self) -> &[Vec<u8>] {
        &self.peer_certs
    }

    /// Whether the connection can no longer carry requests.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Send one request and read the whole response (at most [`MAX_BODY`] bytes), within
    /// `timeout`.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        accept: Option<&str>,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        let mut builder = Request::builder().method(method).uri(path).header(
            HOST,
            HeaderValue::from_str(&self.authority).map_err(http::Error::from)?,
        );
        if let Some(ct) = content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        if let Some(a) = accept {
            builder = builder.header(ACCEPT, a);
        }
        let request = builder.body(Full::new(Bytes::copy_from_slice(body)))?;
        let exchange = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let (parts, incoming) = response.into_parts();
            let body = Limited::new(incoming, MAX_BODY)
                .collect()
                .await
                .map_err(|e| ClientError::Body(e.to_string()))?
                .to_bytes();
            Ok::<_, ClientError>(Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: body.to_vec(),
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout("HTTP request"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_ipv6_literals() {
        let t = Target::parse("https://registrar.example:8443").expect("url");
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("registrar.example", 8443, "registrar.example:8443")
        );
        let t = Target::parse("HTTPS://[::1]:8443/").expect("url");
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("::1", 8443, "[::1]:8443")
        );
        assert_eq!(Target::parse("https://10.0.0.1").expect("url").port, 443);
    }

    #[test]
    fn coaps_urls_have_their_own_default_port() {
        let (scheme, t) = Target::parse_with_scheme("coaps://[::1]").expect("url");
        assert_eq!(scheme, Scheme::Coaps);
        assert_eq!(t.port, 5684);
        let (scheme, t) = Target::parse_with_scheme("coaps://127.0.0.1:6000").expect("url");
        assert_eq!((scheme, t.port), (Scheme::Coaps, 6000));
        assert!(
            Target::parse("coaps://127.0.0.1").is_err(),
            "not an https origin"
        );
        assert!(
            Target::parse_with_scheme("coap://127.0.0.1").is_err(),
            "no DTLS"
        );
    }

    #[test]
    fn rejects_what_is_not_an_https_origin() {
        for url in [
            "http://registrar:8443",
            "registrar:8443",
            "https://registrar:8443/est",
            "https://registrar:8443/?a=b",
            "https://user@registrar:8443",
            "https://registrar:0",
            "https://[]:1",
            "",
        ] {
            assert!(
                matches!(Target::parse(url), Err(ClientError::InvalidUrl { .. })),
                "{url:?}"
            );
        }
    }

    #[test]
    fn reason_is_the_first_non_empty_line_without_controls() {
        let r = Response {
            status: 403,
            headers: HeaderMap::new(),
            body: b"\r\n  refused \x07by policy \n second line".to_vec(),
        };
        assert_eq!(r.reason(), "refused by policy");
        let long = Response {
            body: vec![b'a'; 1000],
            ..r
        };
        assert_eq!(long.reason().len(), 200);
    }
}
