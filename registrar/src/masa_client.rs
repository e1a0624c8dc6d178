//! The registrar's HTTPS client to MASAs (BRSKI-MASA, RFC 8995 §5.4): one reqwest client per
//! configured MASA (and one for all others), so connections to a MASA are pooled and reused.
//! The MASA's TLS certificate is verified by webpki (RFC 6125 DNS-ID / iPAddress) against that
//! MASA's CA, the global MASA CA, or the system roots; the registrar authenticates with a TLS
//! client certificate (its own, id-kp-clientAuth, unless configured otherwise) and, for
//! sales-integrated MASAs, HTTP Basic credentials (sent over TLS only: the client is
//! https-only). Answers are read incrementally up to [`MAX_ANSWER`].

use brski_common::envelope::Format;
use brski_common::input::decode_base64_lenient;
use der::Encode;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::Duration;
use x509_cert::Certificate;

/// How long establishing a connection to a MASA may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle pooled connection to a MASA is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// The longest MASA error reason relayed to the pledge.
const MAX_REASON: usize = 200;
/// The largest MASA answer read (a voucher or an audit log is a few KiB; the pledge itself
/// stops at 1 MB).
pub const MAX_ANSWER: usize = 256 * 1024;

/// Why a MASA client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("MASA CA certificate: {0}")]
    Anchor(String),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS client certificate: {0}")]
    ClientCert(String),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Why a voucher (or audit log) could not be obtained from the MASA.
#[derive(Debug, thiserror::Error)]
pub enum MasaError {
    #[error("MASA unreachable: {0}")]
    Unreachable(String),
    /// The MASA answered a non-200 status: relayed to the pledge (RFC 8995 §5.6).
    #[error("MASA answered {status}: {reason}")]
    Refused {
        status: u16,
        reason: String,
        retry_after: Option<String>,
    },
    #[error("MASA answered with Content-Type {0:?}, not a voucher format")]
    NotAVoucher(String),
    #[error("MASA answer exceeds {MAX_ANSWER} bytes")]
    TooLarge,
}

impl MasaError {
    /// The status for the pledge (RFC 8995 §5.6): the MASA's own 4xx, and its 503 (with
    /// Retry-After), relayed as they are; 502 when the MASA is unreachable or its answer
    /// cannot be used.
    pub fn status(&self) -> u16 {
        match self {
            Self::Refused { status, .. } if (400..500).contains(status) || *status == 503 => {
                *status
            }
            _ => 502,
        }
    }

    /// The MASA's Retry-After, when it is relayed.
    pub fn retry_after(&self) -> Option<&str> {
        match self {
            Self::Refused {
                retry_after: Some(r),
                status: 503,
                ..
            } => Some(r),
            _ => None,
        }
    }

    /// Whether the MASA could not be reached at all (a stored nonceless voucher may then be
    /// used, RFC 8995 §7.2).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable(_))
            || matches!(self, Self::Refused { status, .. } if *status >= 500)
    }
}

/// A voucher as the MASA sent it.
#[derive(Clone, Debug)]
pub struct MasaVoucher {
    pub format: Format,
    /// The voucher's media type: the MASA's Content-Type when it names a voucher format, else
    /// the detected format's (RFC 8995 §5.6, liberal acceptance).
    pub content_type: String,
    /// The signed voucher (base64 already decoded when the MASA sent it so).
    pub body: Vec<u8>,
}

/// One MASA's TLS and credential settings.
#[derive(Clone, Debug, Default)]
pub struct EndpointSettings {
    /// Anchors for the MASA's TLS certificate; empty = the system roots.
    pub anchors: Vec<Certificate>,
    /// The TLS client certificate chain (DER, end entity first) with its key, and the same as
    /// PEM (used with the system roots).
    pub client: Option<ClientIdentity>,
    /// HTTP Basic credentials.
    pub basic: Option<(String, String)>,
}

/// A TLS client identity.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    pub chain: Vec<Vec<u8>>,
    pub key: Arc<dyn brski_common::keys::Signer>,
    /// Certificate chain and key as PEM.
    pub pem: Vec<u8>,
}

#[derive(Clone, Debug)]
struct Endpoint {
    http: reqwest::Client,
    basic: Option<(String, String)>,
}

/// Presents one client certificate to every server that asks.
#[derive(Debug)]
struct FixedClientCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

impl Endpoint {
    fn new(settings: &EndpointSettings, timeout: Duration) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(timeout)
            .pool_idle_timeout(POOL_IDLE)
            .redirect(reqwest::redirect::Policy::none());
        if !settings.anchors.is_empty() {
            let mut roots = rustls::RootCertStore::empty();
            for ca in &settings.anchors {
                let der = ca
                    .to_der()
                    .map_err(|e| ClientError::Anchor(e.to_string()))?;
                roots.add(CertificateDer::from(der))?;
            }
            let tls = rustls::ClientConfig::builder_with_provider(brski_common::tls::provider())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots);
            let tls = match &settings.client {
                Some(id) => {
                    let ck = brski_common::tls::certified_key(&id.chain, id.key.clone())
                        .map_err(|e| ClientError::ClientCert(e.to_string()))?;
                    tls.with_client_cert_resolver(Arc::new(FixedClientCert(ck)))
                }
                None => tls.with_no_client_auth(),
            };
            builder = builder.tls_backend_preconfigured(tls);
        } else if let Some(id) = &settings.client {
            builder = builder.identity(
                reqwest::Identity::from_pem(&id.pem)
                    .map_err(|e| ClientError::ClientCert(error_chain(&e)))?,
            );
        }
        Ok(Self {
            http: builder.build()?,
            basic: settings.basic.clone(),
        })
    }
}

/// The process-wide MASA client.
#[derive(Clone, Debug)]
pub struct MasaClient {
    default: Endpoint,
    /// Configured MASAs by base URI (`https://authority/.well-known/brski`).
    per_masa: Vec<(String, Endpoint)>,
    /// Round-trip latency of each request, by resource and outcome.
    latency: crate::metrics::MasaLatency,
}

/// What the MASA answered, read up to [`MAX_ANSWER`].
struct Answer {
    status: http::StatusCode,
    content_type: String,
    retry_after: Option<String>,
    body: Vec<u8>,
}

impl MasaClient {
    /// A client with `default` settings for any MASA and `per_masa` ones by base URI.
    pub fn new(
        default: &EndpointSettings,
        per_masa: &[(String, EndpointSettings)],
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            default: Endpoint::new(default, timeout)?,
            per_masa: per_masa
                .iter()
                .map(|(base, s)| Ok((base.clone(), Endpoint::new(s, timeout)?)))
                .collect::<Result<_, ClientError>>()?,
            latency: crate::metrics::MasaLatency::new_with_constructor(
                brski_service::metrics::latency_histogram,
            ),
        })
    }

    /// This client, its round trips observed in `latency`.
    pub fn with_latency(self, latency: crate::metrics::MasaLatency) -> Self {
        Self { latency, ..self }
    }

    fn endpoint(&self, base_uri: &str) -> &Endpoint {
        self.per_masa
            .iter()
            .find(|(b, _)| b.eq_ignore_ascii_case(base_uri))
            .map_or(&self.default, |(_, e)| e)
    }

    /// POST `body` to `{base}/{resource}` and read the answer, at most [`MAX_ANSWER`] bytes;
    /// the round trip is observed in the latency histogram.
    async fn post(
        &self,
        base_uri: &str,
        resource: &'static str,
        content_type: &str,
        accept: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Answer, MasaError> {
        let start = std::time::Instant::now();
        let answer = self
            .round_trip(base_uri, resource, content_type, accept, body)
            .await;
        let outcome = if answer.is_ok() { "answered" } else { "failed" };
        self.latency
            .get_or_create(&[("resource", resource), ("outcome", outcome)])
            .observe(start.elapsed().as_secs_f64());
        answer
    }

    async fn round_trip(
        &self,
        base_uri: &str,
        resource: &str,
        content_type: &str,
        accept: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Answer, MasaError> {
        let endpoint = self.endpoint(base_uri);
        let url = format!("{base_uri}/{resource}");
        let mut req = endpoint
            .http
            .post(&url)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(accept) = accept {
            req = req.header(http::header::ACCEPT, accept);
        }
        if let Some((user, password)) = &endpoint.basic {
            req = req.basic_auth(user, Some(password));
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| MasaError::Unreachable(error_chain(&e)))?;
        let status = resp.status();
        let header = |name: http::header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(http::header::CONTENT_TYPE).unwrap_or_default();
        let retry_after = header(http::header::RETRY_AFTER);
        if resp.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
            return Err(MasaError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| MasaError::Unreachable(error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(MasaError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            content_type,
            retry_after,
            body,
        })
    }

    fn refused(a: &Answer) -> MasaError {
        MasaError::Refused {
            status: a.status.as_u16(),
            reason: one_line(&String::from_utf8_lossy(&a.body), MAX_REASON),
            retry_after: a.retry_after.as_deref().map(|r| one_line(r, 40)),
        }
    }

    /// POST the registrar voucher-request to `{base}/requestvoucher` (RFC 8995 §5.5) with the
    /// PVR's media type and the pledge's Accept, and return the voucher of a 200 answer.
    pub async fn request_voucher(
        &self,
        base_uri: &str,
        format: Format,
        accept: Option<&str>,
        rvr: Vec<u8>,
    ) -> Result<MasaVoucher, MasaError> {
        let a = self
            .post(base_uri, "requestvoucher", format.media_type(), accept, rvr)
            .await?;
        if a.status != http::StatusCode::OK {
            return Err(Self::refused(&a));
        }
        voucher_answer(&a.content_type, a.body)
    }

    /// POST the registrar voucher-request to `{base}/requestauditlog` (RFC 8995 §5.8) and
    /// return the audit log of a 200 answer (JSON).
    pub async fn request_audit_log(
        &self,
        base_uri: &str,
        format: Format,
        rvr: Vec<u8>,
    ) -> Result<Vec<u8>, MasaError> {
        let a = self
            .post(
                base_uri,
                "requestauditlog",
                format.media_type(),
                Some("application/json"),
                rvr,
            )
            .await?;
        if a.status != http::StatusCode::OK {
            return Err(Self::refused(&a));
        }
        Ok(a.body)
    }
}

/// The voucher in a 200 answer. Liberal in what is accepted (RFC 8995 §5.6 implementations
/// differ): a voucher media type with the voucher raw or in base64, or `text/plain` /
/// `application/pkcs7-mime` (or no Content-Type) whose body is a base64 CMS voucher, which is
/// then relayed as `application/voucher-cms+json`.
pub fn voucher_answer(content_type: &str, body: Vec<u8>) -> Result<MasaVoucher, MasaError> {
    if let Some(format) = Format::from_media_type(content_type) {
        return Ok(MasaVoucher {
            format,
            content_type: content_type.to_string(),
            body,
        });
    }
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if matches!(
        essence.as_str(),
        "" | "text/plain" | "application/pkcs7-mime" | "application/octet-stream"
    ) {
        let decoded = if Format::detect(&body) == Some(Format::Cms) {
            Some(body)
        } else {
            decode_base64_lenient(&body).filter(|d| Format::detect(d) == Some(Format::Cms))
        };
        if let Some(cms) = decoded.filter(|d| is_cms_signed_data(d)) {
            return Ok(MasaVoucher {
                format: Format::Cms,
                content_type: Format::Cms.media_type().to_string(),
                body: cms,
            });
        }
    }
    Err(MasaError::NotAVoucher(one_line(content_type, 100)))
}

/// Whether `der` is a CMS ContentInfo holding SignedData (RFC 5652 §3, §5.1).
fn is_cms_signed_data(der: &[u8]) -> bool {
    brski_common::envelope::parse(Format::Cms, der).is_ok()
}

/// An error and its sources on one line (reqwest hides the interesting part in the sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    one_line(&out, 300)
}

/// `text` as one line of at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if flat.chars().count() > max {
        let mut cut: String = flat.chars().take(max).collect();
        cut.push('…');
        cut
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8995_5_6_a_base64_cms_voucher_in_text_plain_is_accepted() {
        let v = brski_common::test_vectors::bytes("rfc8995/C.2.3-voucher.cms.b64");
        let b64 = brski_common::est::encode_base64_body(&v).into_bytes();
        for ct in [
            "text/plain",
            "application/pkcs7-mime; smime-type=signed-data",
            "",
        ] {
            let got = voucher_answer(ct, b64.clone()).expect(ct);
            assert_eq!(got.format, Format::Cms);
            assert_eq!(got.content_type, "application/voucher-cms+json");
            assert_eq!(got.body, v);
        }
        // Text that is not a CMS voucher is still refused, naming the Content-Type.
        let err = voucher_answer("text/plain", b"no voucher here".to_vec()).expect_err("text");
        assert_eq!(
            err.to_string(),
            format!("MASA answered with Content-Type \"text/plain\", not a voucher format")
        );
        assert_eq!(err.status(), 502);
    }

    #[test]
    fn rfc8995_5_4_the_registrar_identity_also_works_with_the_system_roots() {
        use brski_common::keys::{SignatureAlgorithm, SoftwareKey};
        use brski_common::pki::{name_from_parts, profile, self_signed};
        let k = SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
        let params =
            profile::domain_ca(name_from_parts(Some("d"), None, None).expect("name")).expect("p");
        let cert = self_signed(&params, &k).expect("cert");
        let mut pem = brski_service::files::certs_to_pem(std::slice::from_ref(&cert)).into_bytes();
        pem.extend(k.to_pkcs8_pem().as_bytes());
        let settings = EndpointSettings {
            anchors: Vec::new(),
            client: Some(ClientIdentity {
                chain: vec![cert.to_der().expect("der")],
                key: Arc::new(k),
                pem,
            }),
            basic: None,
        };
        Endpoint::new(&settings, Duration::from_secs(1)).expect("client with identity");
        // A key file that is no key is refused when the client is built.
        let broken = EndpointSettings {
            client: settings.client.map(|c| ClientIdentity {
                pem: b"not pem".to_vec(),
                ..c
            }),
            ..EndpointSettings::default()
        };
        let err = Endpoint::new(&broken, Duration::from_secs(1)).expect_err("no identity");
        assert!(matches!(err, ClientError::ClientCert(_)), "{err}");
    }

    #[test]
    fn rfc8995_5_6_masa_statuses_map_to_the_pledge() {
        let refused = |status, retry: Option<&str>| MasaError::Refused {
            status,
            reason: "r".into(),
            retry_after: retry.map(str::to_string),
        };
        for s in [400, 403, 404, 406, 409, 415] {
            assert_eq!(refused(s, None).status(), s);
        }
        assert_eq!(refused(500, None).status(), 502);
        assert_eq!(refused(503, Some("30")).status(), 503);
        assert_eq!(refused(503, Some("30")).retry_after(), Some("30"));
        assert_eq!(MasaError::TooLarge.status(), 502);
        assert_eq!(MasaError::Unreachable("x".into()).status(), 502);
    }

    #[test]
    fn one_line_flattens_and_truncates() {
        assert_eq!(one_line("a\r\n b\tc\u{7}", 10), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn one_line_never_has_line_breaks(text in "\\PC*|[\\r\\n\\t a-z]*", max in 0usize..50) {
            let out = one_line(&text, max);
            proptest::prop_assert!(!out.contains('\n') && !out.contains('\r'));
            proptest::prop_assert!(out.chars().count() <= max + 1);
        }
    }
}
