//! Revocation checks of a certificate chain through the CRL distribution points its
//! certificates name (RFC 5280 §6.3): the MASA's check of the registrar's chain (RFC 8995
//! §5.5.3), and the pledge's of the registrar's when a voucher demands it (RFC 8366bis
//! `domain-cert-revocation-checks`). Each CRL is fetched (bounded size and time), verified with
//! the issuing certificate of the chain and kept until its nextUpdate; a listed serial, or a CRL
//! that cannot be fetched or verified, refuses. Which CRLs, and checking them, are
//! `brski_common::pki::crl`.

use brski_common::pki::crl::{RevocationError, VerifiedCrl, crl_checks, verify_crl};
use der::Encode;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_cert::Certificate;

/// Largest CRL accepted.
pub const MAX_CRL: usize = 1024 * 1024;
/// How long a CRL fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// CRLs kept at most (the oldest-expiring entries go first).
const MAX_CACHED: usize = 256;

/// CRLs by (URI, issuer key), each until its nextUpdate.
#[derive(Default)]
pub struct Revocation {
    cache: Mutex<HashMap<(String, Vec<u8>), VerifiedCrl>>,
}

impl Revocation {
    /// Refuse when a certificate of `chain` (end entity first) is revoked at `now`, or when a
    /// CRL it needs cannot be fetched or verified; `required` as [`crl_checks`] says.
    pub async fn check_chain(
        &self,
        chain: &[Certificate],
        required: bool,
        now: OffsetDateTime,
    ) -> Result<(), RevocationError> {
        for check in crl_checks(chain, required)? {
            let mut last = String::new();
            let mut crl = None;
            for uri in &check.uris {
                match self.crl(uri, check.issuer, now).await {
                    Ok(c) => {
                        crl = Some(c);
                        break;
                    }
                    Err(e) => last = format!("CRL {uri}: {e}"),
                }
            }
            let subject = brski_common::pki::chain::subject_string(check.cert);
            let crl = crl.ok_or(RevocationError::Unknown {
                subject: subject.clone(),
                reason: last,
            })?;
            if crl.is_revoked(check.cert) {
                return Err(RevocationError::Revoked(subject));
            }
        }
        Ok(())
    }

    /// The verified CRL at `uri` for certificates of `issuer`, from the cache while current.
    async fn crl(
        &self,
        uri: &str,
        issuer: &Certificate,
        now: OffsetDateTime,
    ) -> Result<VerifiedCrl, String> {
        let issuer_key = issuer
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| e.to_string())?;
        let key = (uri.to_string(), issuer_key);
        if let Ok(cache) = self.cache.lock() {
            if let Some(c) = cache.get(&key) {
                if c.next_update.is_some_and(|n| n > now) {
                    return Ok(c.clone());
                }
            }
        }
        let der = fetch(uri).await?;
        let crl = verify_crl(&der, issuer, now).map_err(|e| e.to_string())?;
        if crl.next_update.is_some() {
            if let Ok(mut cache) = self.cache.lock() {
                cache.retain(|_, c| c.next_update.is_some_and(|n| n > now));
                if cache.len() < MAX_CACHED {
                    cache.insert(key, crl.clone());
                }
            }
        }
        Ok(crl)
    }
}

/// GET `uri` (http only, RFC 5280 §4.2.1.13: a DER CRL) within [`FETCH_TIMEOUT`] and
/// [`MAX_CRL`].
/// The authority and path of an `http://` URI (scheme in any case; RFC 3986 §3), the path
/// `/` when absent: where a CRL distribution point (RFC 5280 §4.2.1.13) is fetched.
pub fn http_uri_parts(uri: &str) -> Result<(&str, &str), String> {
    let rest = uri
        .get(7..)
        .filter(|_| {
            uri.get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
        })
        .ok_or("not an http:// URI")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err("no usable host in the URI".into());
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the path is not visible ASCII".into());
    }
    Ok((authority, path))
}

async fn fetch(uri: &str) -> Result<Vec<u8>, String> {
    let (authority, path) = http_uri_parts(uri)?;
    let addr = if authority.starts_with('[')
        || authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(addr.as_str())
            .await
            .map_err(|e| format!("unreachable: {e}"))?;
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: application/pkix-crl\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("unreachable: {e}"))?;
        let mut response = Vec::new();
        // Headers are small: a CRL plus 16 KiB is the most read.
        let limit = u64::try_from(MAX_CRL + 16 * 1024).unwrap_or(u64::MAX);
        (&mut stream)
            .take(limit + 1)
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if response.len() as u64 > limit {
            return Err(format!("larger than {MAX_CRL} bytes"));
        }
        Ok::<_, String>(response)
    };
    let response = tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .map_err(|_| format!("no answer within {} s", FETCH_TIMEOUT.as_secs()))??;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("not an HTTP response")?;
    let head = String::from_utf8_lossy(response.get(..split).unwrap_or_default()).into_owned();
    let body = response.get(split + 4..).unwrap_or_default();
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default();
    if status != "200" {
        return Err(format!("HTTP status {status:?}"));
    }
    if body.len() > MAX_CRL {
        return Err(format!("larger than {MAX_CRL} bytes"));
    }
    Ok(body.to_vec())
}
