//! The registrar's HTTPS client to MASAs (BRSKI-MASA, RFC 8995 §5.4): one reqwest client for
//! the whole process, so connections to a MASA are pooled and reused; the MASA's TLS
//! certificate is verified by webpki (RFC 6125 DNS-ID / iPAddress) against the configured MASA
//! CA, or the system roots when none is configured. No TLS client authentication.

use brski_common::envelope::Format;
use der::Encode;
use rustls::pki_types::CertificateDer;
use std::time::Duration;
use x509_cert::Certificate;

/// How long establishing a connection to a MASA may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle pooled connection to a MASA is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// The longest MASA error reason relayed to the pledge.
const MAX_REASON: usize = 200;

/// Why a MASA client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("MASA CA certificate: {0}")]
    Anchor(String),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Why a voucher could not be obtained from the MASA (all answered with 502 to the pledge).
#[derive(Debug, thiserror::Error)]
pub enum MasaError {
    #[error("MASA unreachable: {0}")]
    Unreachable(String),
    #[error("MASA answered {status}: {reason}")]
    Refused { status: u16, reason: String },
    #[error("MASA answered with Content-Type {0:?}, not a voucher format")]
    NotAVoucher(String),
}

/// A voucher as the MASA sent it.
#[derive(Clone, Debug)]
pub struct MasaVoucher {
    pub format: Format,
    /// The MASA's Content-Type header, relayed unchanged.
    pub content_type: String,
    pub body: Vec<u8>,
}

/// The process-wide MASA client.
#[derive(Clone, Debug)]
pub struct MasaClient {
    http: reqwest::Client,
}

impl MasaClient {
    /// A client trusting `masa_ca` (or the system roots when empty) with `timeout` per request.
    pub fn new(masa_ca: &[Certificate], timeout: Duration) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(timeout)
            .pool_idle_timeout(POOL_IDLE)
            .redirect(reqwest::redirect::Policy::none());
        if !masa_ca.is_empty() {
            let mut roots = rustls::RootCertStore::empty();
            for ca in masa_ca {
                let der = ca
                    .to_der()
                    .map_err(|e| ClientError::Anchor(e.to_string()))?;
                roots.add(CertificateDer::from(der))?;
            }
            let tls = rustls::ClientConfig::builder_with_provider(brski_common::tls::provider())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder = builder.tls_backend_preconfigured(tls);
        }
        Ok(Self {
            http: builder.build()?,
        })
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
        let url = format!("{base_uri}/requestvoucher");
        let mut req = self
            .http
            .post(&url)
            .header(http::header::CONTENT_TYPE, format.media_type())
            .body(rvr);
        if let Some(accept) = accept {
            req = req.header(http::header::ACCEPT, accept);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| MasaError::Unreachable(error_chain(&e)))?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = resp
            .bytes()
            .await
            .map_err(|e| MasaError::Unreachable(error_chain(&e)))?;
        if status != http::StatusCode::OK {
            return Err(MasaError::Refused {
                status: status.as_u16(),
                reason: one_line(&String::from_utf8_lossy(&body), MAX_REASON),
            });
        }
        let format = Format::from_media_type(&content_type)
            .ok_or_else(|| MasaError::NotAVoucher(content_type.clone()))?;
        Ok(MasaVoucher {
            format,
            content_type,
            body: body.to_vec(),
        })
    }
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
