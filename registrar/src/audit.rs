//! The registrar's audit-log check (RFC 8995 §5.8, §5.8.3, §11.4): after a pledge reports a
//! successful voucher_status, the registrar sends the same registrar voucher-request to the
//! MASA's `/requestauditlog`, finds its own domainID in the log, and applies the `[audit-log]`
//! policy. A refusal (or a log that cannot be obtained) is recorded; `/simpleenroll` is then
//! refused with its reason (`EnrollGate::AuditLogRefused`).

use crate::config::AuditLogPolicy;
use crate::db::{self, NewAuditCheck};
use crate::server::Registrar;
use brski_common::audit::AuditLog;
use brski_common::envelope::Format;
use brski_common::pki::ext::{domain_id, masa_base_uri, spki_sha256};
use std::collections::BTreeSet;
use x509_cert::Certificate;

/// Why the audit log breaks the policy (RFC 8995 §5.8.3).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuditRefusal {
    #[error("{0} other domains")]
    OtherDomains(usize),
    #[error("{0} nonceless entries of other domains")]
    OtherNonceless(usize),
    #[error("no entry for this domain")]
    NoOwnEntry,
    #[error("audit log unavailable: {0}")]
    Unavailable(String),
}

/// The domainIDs this registrar can be pinned under (RFC 8995 §5.8.2), for each certificate
/// of its chain (registrar certificate and domain CA): `brski_common::pki::ext::domain_id`
/// (the MASA's own function: SKI, else the SPKI hash) and the SHA-256 of the SPKI. Both are
/// computed from this registrar's own certificates, so neither can name another domain.
pub fn own_domain_ids(chain: &[Certificate]) -> Vec<Vec<u8>> {
    let mut ids = Vec::new();
    for c in chain {
        ids.extend(domain_id(c).ok());
        ids.extend(spki_sha256(c).ok().map(|h| h.to_vec()));
    }
    ids
}

/// Apply `policy` to `log`; `Ok` describes what was seen.
pub fn evaluate(
    log: &AuditLog,
    own: &[Vec<u8>],
    policy: &AuditLogPolicy,
) -> Result<String, AuditRefusal> {
    let is_own = |e: &brski_common::audit::AuditEvent| {
        e.domain_id_bytes().is_some_and(|id| own.contains(&id))
    };
    let own_entries = log.events.iter().filter(|e| is_own(e)).count();
    let others: BTreeSet<&str> = log
        .events
        .iter()
        .filter(|e| !is_own(e))
        .map(|e| e.domain_id.as_str())
        .collect();
    let other_nonceless = log
        .events
        .iter()
        .filter(|e| !is_own(e) && e.nonce.is_none())
        .count();
    if others.len() > policy.max_prior_owners as usize {
        return Err(AuditRefusal::OtherDomains(others.len()));
    }
    if other_nonceless > 0 && !policy.allow_nonceless_entries {
        return Err(AuditRefusal::OtherNonceless(other_nonceless));
    }
    if own_entries == 0 && policy.require_own_entry {
        return Err(AuditRefusal::NoOwnEntry);
    }
    Ok(format!(
        "{own_entries} own entries, {} other domains",
        others.len()
    ))
}

/// Fetch and check the audit log of `serial`'s latest voucher (RFC 8995 §5.8.3), recording
/// the outcome. Called once the pledge reported voucher_status success; does nothing when
/// `[audit-log] fetch = false` or the voucher was not obtained with a stored request.
pub async fn check_after_voucher_status(s: &Registrar, serial: &str) {
    let policy = &s.config.audit_log;
    if !policy.fetch {
        return;
    }
    let latest = match s.store.latest_voucher_request(serial).await {
        Ok(Some(v)) => v,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(%serial, error = %e, "audit log: reading the stored voucher request");
            return;
        }
    };
    let (outcome, log) = fetch_and_evaluate(s, &latest, policy).await;
    let (passed, reason) = match &outcome {
        Ok(seen) => (true, seen.clone()),
        Err(refusal) => (false, refusal.to_string()),
    };
    if passed {
        tracing::info!(%serial, masa_url = %latest.masa_url, %reason, outcome = "passed", "audit log");
    } else {
        tracing::warn!(%serial, masa_url = %latest.masa_url, %reason, outcome = "refused", "audit log");
    }
    let stored = s
        .store
        .store_audit_check(&NewAuditCheck {
            serial,
            voucher_id: latest.voucher_id,
            passed,
            reason: &reason,
            log: log.as_deref(),
        })
        .await;
    if let Err(e) = stored {
        tracing::error!(%serial, error = %e, "audit log: storing the check");
    }
}

async fn fetch_and_evaluate(
    s: &Registrar,
    latest: &db::VoucherWithRequest,
    policy: &AuditLogPolicy,
) -> (Result<String, AuditRefusal>, Option<Vec<u8>>) {
    let unavailable = |e: String| (Err(AuditRefusal::Unavailable(e)), None);
    let base = match masa_base_uri(&latest.masa_url) {
        Ok(b) => b,
        Err(e) => return unavailable(e.to_string()),
    };
    let Some(format) = Format::from_media_type(&latest.request_format) else {
        return unavailable(format!("stored request format {:?}", latest.request_format));
    };
    let body = match s
        .masa
        .request_audit_log(&base, format, latest.rvr.clone())
        .await
    {
        Ok(b) => b,
        Err(e) => return unavailable(e.to_string()),
    };
    let log = match AuditLog::from_json(&body) {
        Ok(l) => l,
        Err(e) => return (Err(AuditRefusal::Unavailable(e.to_string())), Some(body)),
    };
    let own = own_domain_ids(&s.registrar_chain);
    (evaluate(&log, &own, policy), Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use brski_common::audit::{Assertion, AuditEvent};

    fn event(domain: &[u8], nonce: Option<&str>) -> AuditEvent {
        use base64::Engine;
        AuditEvent {
            date: "2026-01-01T00:00:00Z".into(),
            domain_id: base64::engine::general_purpose::STANDARD.encode(domain),
            nonce: nonce.map(str::to_string),
            assertion: Assertion::Logged,
            truncated: None,
        }
    }

    #[test]
    fn rfc8995_5_8_3_policy_counts_other_domains_and_nonceless_entries() {
        let own = vec![b"ours".to_vec()];
        let policy = AuditLogPolicy::default();
        let clean = AuditLog::new(vec![event(b"ours", Some("n1"))]);
        assert_eq!(
            evaluate(&clean, &own, &policy),
            Ok("1 own entries, 0 other domains".into())
        );
        let two = AuditLog::new(vec![
            event(b"a", Some("x")),
            event(b"b", Some("y")),
            event(b"b", Some("z")),
            event(b"ours", Some("n1")),
        ]);
        assert_eq!(
            evaluate(&two, &own, &policy),
            Err(AuditRefusal::OtherDomains(2))
        );
        assert_eq!(AuditRefusal::OtherDomains(2).to_string(), "2 other domains");
        let lenient = AuditLogPolicy {
            max_prior_owners: 2,
            ..policy.clone()
        };
        assert!(evaluate(&two, &own, &lenient).is_ok());
        let nonceless = AuditLog::new(vec![event(b"a", None), event(b"ours", Some("n"))]);
        assert_eq!(
            evaluate(&nonceless, &own, &lenient),
            Err(AuditRefusal::OtherNonceless(1))
        );
        let none_of_ours = AuditLog::new(vec![]);
        assert_eq!(
            evaluate(&none_of_ours, &own, &policy),
            Err(AuditRefusal::NoOwnEntry)
        );
        let optional = AuditLogPolicy {
            require_own_entry: false,
            ..policy
        };
        assert!(evaluate(&none_of_ours, &own, &optional).is_ok());
    }
}
