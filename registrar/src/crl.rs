//! The domain CA's CRL (RFC 5280 §5): the LDevIDs revoked or superseded here that have not
//! expired, signed by the domain CA. Served at `GET /.well-known/est/crl` beside `/cacerts`
//! and, on `crl-listen`, over plain HTTP at the path of `crl-url`, the distribution point
//! (§4.2.1.13) written into every LDevID. Built from the database when the revoked set
//! changes or half its validity has passed, so that `registrar certs revoke`, run as another
//! process or on another instance, shows in the next fetch.

use crate::db::CertSummary;
use crate::store::Store;
use axum::body::Bytes;
use brski_common::keys::Signer;
use brski_common::pki::crl::{CrlEntry, CrlError, build_crl_entries};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use x509_cert::Certificate;
use x509_cert::ext::pkix::crl::CrlReason;

/// The path of the CRL on the HTTPS listener, in the `/cacerts` neighbourhood.
pub const EST_CRL_PATH: &str = "/.well-known/est/crl";
/// RFC 5280 §5 and RFC 2585 §4.2: the media type of a DER CRL.
pub const PKIX_CRL: &str = "application/pkix-crl";

/// Why no CRL can be served.
#[derive(Debug, thiserror::Error)]
pub enum CrlFault {
    #[error("reading the revoked LDevIDs: {0}")]
    Store(#[from] brski_service::store::StoreFault),
    #[error("building the CRL: {0}")]
    Build(#[from] CrlError),
}

/// The reasonCode (RFC 5280 §5.3.1) of a stored revocation reason: `superseded` for an LDevID
/// that a renewal or a new enrollment replaced; the code an operator named in `registrar
/// certs revoke --reason` (`keyCompromise`, `key-compromise`, ...); otherwise none
/// (unspecified, which §5.3.1 says to leave out).
pub fn reason_code(reason: Option<&str>) -> Option<CrlReason> {
    let word: String = reason?
        .split_whitespace()
        .next()?
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    Some(match word.as_str() {
        "keycompromise" => CrlReason::KeyCompromise,
        "cacompromise" => CrlReason::CaCompromise,
        "affiliationchanged" => CrlReason::AffiliationChanged,
        "superseded" => CrlReason::Superseded,
        "cessationofoperation" => CrlReason::CessationOfOperation,
        "privilegewithdrawn" => CrlReason::PrivilegeWithdrawn,
        _ => return None,
    })
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// The CRL entry of a revoked LDevID: its serial, when it was revoked (its issue time for
/// rows revoked before the time was stored) and why.
fn entry(row: &CertSummary) -> Option<CrlEntry> {
    let serial = hex::decode(&row.cert_serial).ok()?;
    let revoked_at = row
        .revoked_at
        .as_deref()
        .and_then(parse_time)
        .or_else(|| parse_time(&row.issued_at))?;
    Some(CrlEntry {
        serial,
        revoked_at,
        reason: reason_code(row.revoked_reason.as_deref()),
    })
}

/// The CRL of `rows` at `now`, valid for `validity`.
pub fn build(
    ca: &Certificate,
    ca_key: &dyn Signer,
    rows: &[CertSummary],
    now: OffsetDateTime,
    validity: Duration,
) -> Result<Vec<u8>, CrlError> {
    let entries: Vec<CrlEntry> = rows.iter().filter_map(entry).collect();
    build_crl_entries(ca, ca_key, &entries, now, Some(now + validity))
}

struct Built {
    /// What it lists: (serial, revoked_at, reason) of each row.
    listed: Vec<(String, Option<String>, Option<String>)>,
    this_update: OffsetDateTime,
    der: Bytes,
}

fn listed(rows: &[CertSummary]) -> Vec<(String, Option<String>, Option<String>)> {
    rows.iter()
        .map(|r| {
            (
                r.cert_serial.clone(),
                r.revoked_at.clone(),
                r.revoked_reason.clone(),
            )
        })
        .collect()
}

/// The latest CRL this process built.
#[derive(Default)]
pub struct CrlCache {
    built: tokio::sync::Mutex<Option<Built>>,
}

impl std::fmt::Debug for CrlCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CrlCache")
    }
}

impl CrlCache {
    /// The current CRL (DER, shared with the cache, not copied): the cached one while it lists what the database says is revoked
    /// and less than half of `validity` has passed since its thisUpdate; a new one otherwise.
    pub async fn current(
        &self,
        store: &Store,
        ca: &Certificate,
        ca_key: &dyn Signer,
        validity: Duration,
    ) -> Result<Bytes, CrlFault> {
        let now = OffsetDateTime::now_utc();
        let rows = store.revoked_certificates(now).await?;
        let now_listed = listed(&rows);
        let mut built = self.built.lock().await;
        if let Some(b) = built.as_ref() {
            if b.listed == now_listed && now < b.this_update + validity / 2 {
                return Ok(b.der.clone());
            }
        }
        let der = Bytes::from(build(ca, ca_key, &rows, now, validity)?);
        *built = Some(Built {
            listed: now_listed,
            this_update: now,
            der: der.clone(),
        });
        Ok(der)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_come_from_the_rfc_5280_names_in_any_spelling() {
        assert_eq!(
            reason_code(Some("superseded by 0A1B")),
            Some(CrlReason::Superseded)
        );
        assert_eq!(
            reason_code(Some("key-compromise: lost laptop")),
            Some(CrlReason::KeyCompromise)
        );
        assert_eq!(
            reason_code(Some("cessationOfOperation")),
            Some(CrlReason::CessationOfOperation)
        );
        assert_eq!(reason_code(Some("revoked by the operator")), None);
        assert_eq!(reason_code(None), None);
    }
}
