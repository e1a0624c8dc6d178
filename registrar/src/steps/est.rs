//! EST for pledges (RFC 7030 §4, RFC 8995 §5.9): `/cacerts` for anyone (§4.1.1),
//! `/csrattrs`, `/simpleenroll` for a pledge whose voucher was relayed, `/simplereenroll` for
//! the holder of a current LDevID. Bodies are base64 DER (RFC 8951 §3.2).
//!
//! LDevIDs, one per voucher (RFC 8995 §5.9.3): `/simpleenroll` issues one LDevID per voucher;
//! the same request again (the same key: a lost answer) gets the same certificate, another key
//! gets 403 (renew with `/simplereenroll`, or obtain a new voucher, which revokes the pledge's
//! earlier LDevIDs). `/simplereenroll` supersedes the LDevID it renews; that one may renew again
//! (the same key gets the same certificate; another key a new one, revoking the unused one)
//! until the new LDevID is first used, and is revoked then. Revoked and superseded LDevIDs are
//! refused in the TLS handshake ([`crate::server::LdevidRefusal`]).

use crate::config::CsrAttributes;
use crate::db::{self, EnrollGate, LdevidStatus, NewCertificate, Policy, StoredLdevid};
use crate::server::{Client, Registrar};
use crate::wire::{Refused, Reject};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brski_common::est::{
    AttrOrOid, CsrAttrs, RawOid, decode_base64_body, encode_certs_only_body, media_type,
    pop_linking_value,
};
use brski_common::oid::{CHALLENGE_PASSWORD, EXTENSION_REQUEST};
use brski_common::pki::chain::subject_string;
use brski_common::pki::csr::{challenge_password, requested_extensions, spki_der, verify_csr};
use brski_common::pki::ext::serial_number;
use brski_common::pki::ext::{cert_extensions, subject_alt_names};
use brski_common::pki::{NotAfter, issue, profile};
use brski_service::https::{ConnInfo, outcome_logged};
use const_oid::AssociatedOid;
use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ID_EC_PUBLIC_KEY, SECP_256_R_1};
use der::{Any, Decode, Encode};
use std::sync::Arc;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;
use x509_cert::request::CertReq;

/// The CSR attributes this registrar asks for (RFC 8995 §5.9.2, RFC 8951 §3.4): an EC key on
/// secp256r1, signed with ecdsa-with-SHA256; challengePassword when `[csr-attributes]`
/// requires POP linking (RFC 7030 §3.5, §4.5.2); and `names`, when there are any, as the
/// subjectAltName of an extensionRequest (RFC 8994 §6.2.2 for the ACP node name).
pub fn csr_attrs(config: &CsrAttributes, names: &[GeneralName]) -> Result<CsrAttrs, der::Error> {
    let mut attrs = vec![
        AttrOrOid::Attribute {
            oid: RawOid::from(ID_EC_PUBLIC_KEY),
            values: vec![Any::encode_from(&SECP_256_R_1)?],
        },
        AttrOrOid::Oid(RawOid::from(ECDSA_WITH_SHA_256)),
    ];
    if config.require_pop_linking {
        attrs.push(AttrOrOid::Oid(RawOid::from(CHALLENGE_PASSWORD)));
    }
    if !names.is_empty() {
        let san = x509_cert::ext::Extension {
            extn_id: SubjectAltName::OID,
            critical: false,
            extn_value: der::asn1::OctetString::new(SubjectAltName(names.to_vec()).to_der()?)?,
        };
        attrs.push(AttrOrOid::Attribute {
            oid: RawOid::from(EXTENSION_REQUEST),
            values: vec![Any::encode_from(&vec![san])?],
        });
    }
    Ok(CsrAttrs(attrs))
}

/// What `/csrattrs` asks of the pledge `serial` enrolling with its IDevID: the names of
/// `[csr-attributes]` (403 when the serial cannot form them).
fn enrollment_attrs(s: &Registrar, serial: &str) -> Result<(CsrAttrs, Vec<GeneralName>), Reject> {
    let names = crate::config::csr_alt_names(&s.config.csr_attributes, serial).map_err(|e| {
        Reject::new(
            403,
            format!("serial number {serial:?} cannot form the [csr-attributes] names: {e}"),
        )
    })?;
    let attrs = csr_attrs(&s.config.csr_attributes, &names)
        .map_err(|e| Reject::internal("encoding the CSR attributes", e))?;
    Ok((attrs, names))
}

/// What `/csrattrs` asks of the holder of the LDevID `current` about to renew it: its own
/// subjectAltName (RFC 7030 §4.2.2).
fn renewal_attrs(
    s: &Registrar,
    current: &Certificate,
) -> Result<(CsrAttrs, Vec<GeneralName>), Reject> {
    let names = subject_alt_names(cert_extensions(current))
        .map_err(|e| Reject::internal("reading the LDevID's subjectAltName", e))?;
    let attrs = csr_attrs(&s.config.csr_attributes, &names)
        .map_err(|e| Reject::internal("encoding the CSR attributes", e))?;
    Ok((attrs, names))
}

/// The CSR attributes for the client of `conn` (its IDevID or its LDevID).
async fn attrs_for_client(
    s: &Registrar,
    conn: &ConnInfo,
) -> Result<(CsrAttrs, Vec<GeneralName>), Reject> {
    match &*s.classify(conn)? {
        Client::Idevid { chain } => {
            let serial = s
                .idevid_serial(chain)
                .ok_or_else(|| Reject::new(403, "IDevID subject has no serialNumber"))?;
            enrollment_attrs(s, &serial)
        }
        Client::Ldevid { cert, der } => {
            ldevid_holder(s, cert, der, LdevidUse::Renewal).await?;
            renewal_attrs(s, cert)
        }
    }
}

/// SHA-256 of a DER certificate, lower-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
}

/// A certificate's serial number as upper-case hex (the `certificates` table key).
pub fn cert_serial_hex(cert: &Certificate) -> String {
    hex::encode_upper(cert.tbs_certificate().serial_number().as_bytes())
}

fn respond(content_type: &'static str, body: String) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn refused(path: &str, conn: &ConnInfo, refusal: impl Into<Refused>) -> Response {
    let refusal = refusal.into();
    let reject = &refusal.reject;
    let outcome = if reject.status == StatusCode::ACCEPTED {
        "pending"
    } else {
        "refused"
    };
    tracing::info!(
        peer = %conn.peer,
        status = reject.status.as_u16(),
        outcome,
        reason = %reject.reason,
        "{path}"
    );
    let status = reject.status;
    outcome_logged(refusal.into_response(), status)
}

/// What an LDevID is presented for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LdevidUse {
    /// `/simplereenroll` and the `/csrattrs` before it: a renewed LDevID whose successor is
    /// unused may still do this (RFC 7030 §4.2.2, a lost answer).
    Renewal,
    /// Anything else: only a current LDevID.
    Other,
}

/// The pledge holding the LDevID `cert` (`der` as presented), with its state; a current one
/// is recorded as in use (which revokes the LDevID it renewed). Refused: revoked, superseded,
/// unknown, and renewed ones except for [`LdevidUse::Renewal`].
pub async fn ldevid_holder(
    s: &Registrar,
    cert: &Certificate,
    der: &[u8],
    purpose: LdevidUse,
) -> Result<(String, LdevidStatus), Reject> {
    let cert_serial = cert_serial_hex(cert);
    let status = db::ldevid_status(&s.db, &cert_serial, der)
        .map_err(|e| Reject::internal("looking up the LDevID", e))?;
    let pledge_serial = match &status {
        LdevidStatus::Current {
            pledge_serial,
            seen,
        } => {
            if !seen {
                db::ldevid_seen(&s.writer, &cert_serial)
                    .await
                    .map_err(|e| Reject::internal("recording the LDevID's first use", e))?;
            }
            pledge_serial.clone()
        }
        LdevidStatus::Renewed { pledge_serial, .. } if purpose == LdevidUse::Renewal => {
            pledge_serial.clone()
        }
        LdevidStatus::Renewed { successor, .. } => {
            return Err(Reject::new(
                403,
                format!(
                    "client LDevID has been renewed; authenticate with its successor {successor}"
                ),
            ));
        }
        LdevidStatus::Superseded { .. } => {
            return Err(Reject::new(403, "client LDevID has been renewed already"));
        }
        LdevidStatus::Revoked { reason, .. } => {
            return Err(Reject::new(
                403,
                format!("client LDevID is revoked: {reason}"),
            ));
        }
        LdevidStatus::Unknown => {
            return Err(Reject::new(
                403,
                "client certificate is not an LDevID issued by this registrar",
            ));
        }
    };
    Ok((pledge_serial, status))
}

/// `GET /.well-known/est/cacerts` (RFC 7030 §4.1): the domain CA as certs-only CMS, to any
/// client, with or without a client certificate (§4.1.1).
pub async fn cacerts(
    State(s): State<Arc<Registrar>>,
    Extension(conn): Extension<ConnInfo>,
) -> Response {
    match encode_certs_only_body(std::slice::from_ref(&s.domain_ca)) {
        Ok(body) => {
            tracing::info!(peer = %conn.peer, status = 200, outcome = "served", "cacerts");
            outcome_logged(respond(media_type::PKCS7_CERTS_ONLY, body), StatusCode::OK)
        }
        Err(e) => Reject::internal("encoding /cacerts", e).into_response(),
    }
}

/// `GET /.well-known/est/csrattrs` (RFC 7030 §4.5, RFC 8995 §5.9.2): what this client's CSR
/// must hold.
pub async fn csrattrs(
    State(s): State<Arc<Registrar>>,
    Extension(conn): Extension<ConnInfo>,
) -> Response {
    let body = attrs_for_client(&s, &conn).await.and_then(|(attrs, _)| {
        attrs
            .to_body()
            .map_err(|e| Reject::internal("encoding the CSR attributes", e))
    });
    match body {
        Ok(body) => {
            tracing::info!(peer = %conn.peer, status = 200, outcome = "served", "csrattrs");
            outcome_logged(respond(media_type::CSRATTRS, body), StatusCode::OK)
        }
        Err(r) => refused("csrattrs", &conn, r),
    }
}

/// The CSR of a `/simpleenroll` or `/simplereenroll` body, checked (RFC 7030 §4.2.1,
/// RFC 8995 §5.9.2): base64 DER PKCS#10, a key this suite accepts, self-signature valid
/// (proof of possession), what `attrs` asked for, and a challengePassword, when there is one,
/// equal to the TLS channel binding of `conn` (RFC 7030 §3.5; the RFC 9266 `tls-exporter`).
fn checked_csr(
    headers: &HeaderMap,
    body: &[u8],
    attrs: &CsrAttrs,
    conn: &ConnInfo,
) -> Result<CertReq, Reject> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    if let Some(ct) = content_type {
        if ct != media_type::PKCS10 {
            return Err(Reject::new(
                415,
                format!("Content-Type {ct:?}: a CSR is application/pkcs10"),
            ));
        }
    }
    let der = decode_base64_body(body).map_err(|e| Reject::new(400, e))?;
    let csr = verify_csr(&der).map_err(|e| Reject::new(400, e))?;
    attrs.check_csr(&csr).map_err(|e| Reject::new(400, e))?;
    if let Some(password) = challenge_password(&csr).map_err(|e| Reject::new(400, e))? {
        let linked = conn
            .channel_binding
            .as_deref()
            .is_some_and(|cb| pop_linking_value(cb) == password);
        if !linked {
            return Err(Reject::new(
                400,
                "CSR challengePassword is not the channel binding of this TLS connection \
                 (RFC 7030 §3.5, RFC 9266 tls-exporter)",
            ));
        }
    }
    Ok(csr)
}

fn same_name(a: &Name, b: &Name) -> bool {
    matches!((a.to_der(), b.to_der()), (Ok(x), Ok(y)) if x == y)
}

fn rfc3339_of(t: &x509_cert::time::Time) -> String {
    let secs = i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(db::rfc3339)
        .unwrap_or_else(|_| secs.to_string())
}

/// How an LDevID came to be: on a voucher, or renewing another.
#[derive(Clone, Copy, Debug)]
enum Origin<'a> {
    Voucher(i64),
    Renewal(&'a str),
}

/// Issue an LDevID for `subject`, `alt_names` and the CSR's key (RFC 8995 §5.9.3) and store it
/// ([`db::store_certificate`] says what it does to the pledge's others).
async fn issue_and_store(
    s: &Registrar,
    pledge_serial: &str,
    subject: Name,
    alt_names: &[GeneralName],
    csr: &CertReq,
    origin: Origin<'_>,
) -> Result<Certificate, Reject> {
    let spki = spki_der(csr).map_err(|e| Reject::new(400, e))?;
    let mut params = profile::ldevid(subject).map_err(|e| Reject::internal("LDevID profile", e))?;
    params.subject_alt_names = alt_names.to_vec();
    params.not_after = NotAfter::At(
        time::OffsetDateTime::now_utc()
            + time::Duration::days(i64::from(s.config.ldevid_validity_days)),
    );
    let cert = issue(&params, &spki, Some(&s.domain_ca), &s.domain_ca_key)
        .map_err(|e| Reject::internal("issuing the LDevID", e))?;
    let der = cert
        .to_der()
        .map_err(|e| Reject::internal("encoding the LDevID", e))?;
    let cert_serial = cert_serial_hex(&cert);
    let validity = cert.tbs_certificate().validity();
    db::store_certificate(
        &s.writer,
        &NewCertificate {
            cert_serial: &cert_serial,
            pledge_serial,
            subject: &subject_string(&cert),
            not_before: &rfc3339_of(&validity.not_before),
            not_after: &rfc3339_of(&validity.not_after),
            der: &der,
            renewed_from: match origin {
                Origin::Renewal(from) => Some(from),
                Origin::Voucher(_) => None,
            },
            voucher_id: match origin {
                Origin::Voucher(id) => Some(id),
                Origin::Renewal(_) => None,
            },
            spki_sha256: &fingerprint(&spki),
        },
    )
    .await
    .map_err(|e| Reject::internal("storing the LDevID", e))?;
    Ok(cert)
}

fn certs_only(cert: &Certificate) -> Response {
    match encode_certs_only_body(std::slice::from_ref(cert)) {
        Ok(body) => respond(media_type::PKCS7_CERTS_ONLY, body),
        Err(e) => Reject::internal("encoding the LDevID response", e).into_response(),
    }
}

/// The response to an enrollment: the issued LDevID as certs-only, or the refusal; logged.
fn answer_issued(
    step: &'static str,
    outcome: &'static str,
    conn: &ConnInfo,
    result: Result<Issued, Refused>,
) -> Response {
    match result {
        Ok(Issued {
            serial,
            cert,
            again,
        }) => {
            let outcome = if again { "issued-before" } else { outcome };
            tracing::info!(
                %serial,
                peer = %conn.peer,
                status = 200,
                ldevid = %cert_serial_hex(&cert),
                outcome,
                "{step}"
            );
            outcome_logged(certs_only(&cert), StatusCode::OK)
        }
        Err(r) => refused(step, conn, r),
    }
}

/// `POST /.well-known/est/simpleenroll` (RFC 7030 §4.2.1, RFC 8995 §5.9.3).
pub async fn simple_enroll(
    State(s): State<Arc<Registrar>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer_issued(
        "simpleenroll",
        "enrolled",
        &conn,
        enroll(&s, &conn, &headers, &body).await,
    )
}

/// An LDevID to answer: issued now, or `again` (the one issued for the same key before, whose
/// answer the client did not get).
struct Issued {
    serial: String,
    cert: Certificate,
    again: bool,
}

/// `stored` again when it certifies the key of `csr` and is still valid to hand out.
fn same_key_again(stored: &StoredLdevid, csr: &CertReq) -> Result<Option<Certificate>, Reject> {
    let spki = spki_der(csr).map_err(|e| Reject::new(400, e))?;
    if stored.revoked || stored.spki_sha256.as_deref() != Some(fingerprint(&spki).as_str()) {
        return Ok(None);
    }
    Certificate::from_der(&stored.der)
        .map(Some)
        .map_err(|e| Reject::internal("decoding a stored LDevID", e))
}

async fn enroll(
    s: &Registrar,
    conn: &ConnInfo,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Issued, Refused> {
    let client = s.classify(conn)?;
    let chain = match &*client {
        Client::Idevid { chain } => chain,
        Client::Ldevid { .. } => {
            return Err(Reject::new(
                403,
                "/simpleenroll is for IDevIDs; renew an LDevID with /simplereenroll",
            )
            .into());
        }
    };
    let idevid = chain
        .first()
        .ok_or_else(|| Reject::new(401, "no TLS client certificate"))?;
    let serial = serial_number(idevid)
        .ok_or_else(|| Reject::new(403, "IDevID subject has no serialNumber"))?;
    // The IDevID exactly as presented in TLS, as when the voucher was obtained.
    let idevid_der = conn
        .peer_certs
        .first()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (policy, gate) = db::may_enroll(&s.db, &serial, &fingerprint(idevid_der))
        .map_err(|e| Reject::internal("reading the pledge state", e))?;
    match policy {
        Some(Policy::Denied) => {
            return Err(Reject::new(403, format!("pledge {serial} is denied")).into());
        }
        // RFC 7030 §4.2.3: a request the registrar cannot answer yet is 202 + Retry-After.
        Some(Policy::Pending) => {
            return Err(Refused {
                reject: Reject::new(
                    202,
                    format!("pledge {serial} is waiting for approval; retry later"),
                ),
                retry_after: Some(u64::from(s.config.retry_after)),
            });
        }
        _ => {}
    }
    let voucher_id = match gate {
        EnrollGate::Open { voucher_id } => voucher_id,
        EnrollGate::NoVoucher => {
            return Err(Reject::new(
                403,
                format!("pledge {serial} has no voucher from this registrar"),
            )
            .into());
        }
        EnrollGate::OtherIdevid => {
            return Err(Reject::new(
                403,
                format!("the latest voucher for {serial} was obtained by another IDevID"),
            )
            .into());
        }
        EnrollGate::VoucherFailed => {
            return Err(Reject::new(
                403,
                format!("pledge {serial} reported that its voucher failed"),
            )
            .into());
        }
        EnrollGate::AuditLogRefused(reason) => {
            return Err(Reject::new(
                403,
                format!("audit log of the voucher for {serial} refused: {reason}"),
            )
            .into());
        }
    };
    let (attrs, names) = enrollment_attrs(s, &serial)?;
    let csr = checked_csr(headers, body, &attrs, conn)?;
    let idevid_subject = idevid.tbs_certificate().subject();
    if s.config.csr_subject_must_match_idevid && !same_name(&csr.info.subject, idevid_subject) {
        return Err(Reject::new(400, "CSR subject differs from the IDevID subject").into());
    }
    // RFC 8995 §5.9.3: one LDevID per voucher.
    if let Some(prior) = db::enrolled_on_voucher(&s.db, voucher_id)
        .map_err(|e| Reject::internal("reading the LDevIDs", e))?
    {
        if !prior.superseded {
            if let Some(cert) = same_key_again(&prior, &csr)? {
                return Ok(Issued {
                    serial,
                    cert,
                    again: true,
                });
            }
        }
        return Err(Reject::new(
            403,
            format!(
                "LDevID {} was issued on this voucher already: renew it with /simplereenroll, \
                 or obtain a new voucher (RFC 8995 §5.9.3)",
                prior.cert_serial
            ),
        )
        .into());
    }
    let subject = match &s.config.ldevid_subject {
        Some(template) => crate::config::subject_from_template(template, &serial)
            .map_err(|e| Reject::internal("ldevid-subject template", e))?,
        None => csr.info.subject.clone(),
    };
    let cert = issue_and_store(
        s,
        &serial,
        subject,
        &names,
        &csr,
        Origin::Voucher(voucher_id),
    )
    .await?;
    Ok(Issued {
        serial,
        cert,
        again: false,
    })
}

/// `POST /.well-known/est/simplereenroll` (RFC 7030 §4.2.2): the client's current LDevID is
/// renewed; the CSR subject must equal it.
pub async fn simple_reenroll(
    State(s): State<Arc<Registrar>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer_issued(
        "simplereenroll",
        "renewed",
        &conn,
        reenroll(&s, &conn, &headers, &body).await,
    )
}

async fn reenroll(
    s: &Registrar,
    conn: &ConnInfo,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Issued, Refused> {
    let client = s.classify(conn)?;
    let (current, der) = match &*client {
        Client::Ldevid { cert, der } => (cert, der),
        Client::Idevid { .. } => {
            return Err(Reject::new(
                403,
                "/simplereenroll needs the current LDevID as client certificate",
            )
            .into());
        }
    };
    let current_serial = cert_serial_hex(current);
    let (serial, status) = ldevid_holder(s, current, der, LdevidUse::Renewal).await?;
    if db::policy(&s.db, &serial).map_err(|e| Reject::internal("reading the pledge policy", e))?
        == Some(Policy::Denied)
    {
        return Err(Reject::new(403, format!("pledge {serial} is denied")).into());
    }
    let (attrs, names) = renewal_attrs(s, current)?;
    let csr = checked_csr(headers, body, &attrs, conn)?;
    if !same_name(&csr.info.subject, current.tbs_certificate().subject()) {
        return Err(Reject::new(
            400,
            "CSR subject differs from the LDevID being renewed (RFC 7030 §4.2.2)",
        )
        .into());
    }
    // The attributes ask for the LDevID's own subjectAltName; without one, none is renewed.
    if names.is_empty()
        && !requested_extensions(&csr)
            .map_err(|e| Reject::new(400, e))?
            .iter()
            .all(|e| e.extn_id != SubjectAltName::OID)
    {
        return Err(Reject::new(
            400,
            "CSR requests a subjectAltName the LDevID being renewed does not have \
             (RFC 7030 §4.2.2)",
        )
        .into());
    }
    // A renewal whose answer was lost: the same key gets the same certificate.
    if let LdevidStatus::Renewed { successor, .. } = &status {
        let stored = db::certificate(&s.db, successor)
            .map_err(|e| Reject::internal("reading the LDevIDs", e))?;
        if let Some(cert) = stored
            .map(|st| same_key_again(&st, &csr))
            .transpose()?
            .flatten()
        {
            return Ok(Issued {
                serial,
                cert,
                again: true,
            });
        }
    }
    let subject = current.tbs_certificate().subject().clone();
    let cert = issue_and_store(
        s,
        &serial,
        subject,
        &names,
        &csr,
        Origin::Renewal(&current_serial),
    )
    .await?;
    Ok(Issued {
        serial,
        cert,
        again: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use brski_common::est::RequestedKey;

    #[test]
    fn rfc8995_5_9_2_csrattrs_ask_for_p256_and_ecdsa_sha256() {
        let body = csr_attrs(&CsrAttributes::default(), &[])
            .expect("encodes")
            .to_body()
            .expect("body");
        let attrs = CsrAttrs::from_body(body.as_bytes()).expect("decodes");
        assert_eq!(
            attrs.requested_key(),
            Some(RequestedKey::Ec {
                curve: Some(SECP_256_R_1)
            })
        );
        assert_eq!(
            attrs.requested_signature_algorithm(),
            Some(ECDSA_WITH_SHA_256)
        );
        assert!(!attrs.requests_challenge_password());
        assert!(attrs.extension_templates().is_empty());
    }

    #[test]
    fn rfc8994_6_2_2_csrattrs_carry_the_acp_node_name_and_pop_linking() {
        let config = CsrAttributes {
            acp_node_name: Some("0+{serial}@acp.example".into()),
            require_pop_linking: true,
            ..CsrAttributes::default()
        };
        let names = crate::config::csr_alt_names(&config, "SN-7").expect("names");
        let attrs = csr_attrs(&config, &names).expect("encodes");
        assert!(attrs.requests_challenge_password());
        let templates = attrs.extension_templates();
        assert_eq!(templates.len(), 1);
        assert_eq!(
            subject_alt_names(&templates).expect("san"),
            vec![brski_common::pki::profile::acp_node_name("0+SN-7@acp.example").expect("name")]
        );
    }
}
