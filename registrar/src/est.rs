//! EST for pledges (RFC 7030 §4, RFC 8995 §5.9): `/cacerts`, `/csrattrs`, `/simpleenroll`
//! for a pledge whose voucher was relayed, `/simplereenroll` for the holder of a current
//! LDevID. Bodies are base64 DER (RFC 8951 §3.2).

use crate::db::{self, EnrollGate, LdevidStatus, NewCertificate, Policy};
use crate::server::{Client, Registrar};
use crate::wire::Reject;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brski_common::est::{
    AttrOrOid, CsrAttrs, RawOid, decode_base64_body, encode_certs_only_body, media_type,
};
use brski_common::pki::chain::subject_string;
use brski_common::pki::csr::{spki_der, verify_csr};
use brski_common::pki::ext::serial_number;
use brski_common::pki::{NotAfter, issue, profile};
use brski_service::https::{ConnInfo, outcome_logged};
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ID_EC_PUBLIC_KEY, SECP_256_R_1};
use der::{Any, Encode};
use std::sync::Arc;
use x509_cert::Certificate;
use x509_cert::name::Name;
use x509_cert::request::CertReq;

/// The CSR attributes this registrar asks for (RFC 8995 §5.9.2, RFC 8951 §3.4): an EC key on
/// secp256r1, signed with ecdsa-with-SHA256.
pub fn csr_attrs() -> Result<CsrAttrs, der::Error> {
    Ok(CsrAttrs(vec![
        AttrOrOid::Attribute {
            oid: RawOid::from(ID_EC_PUBLIC_KEY),
            values: vec![Any::encode_from(&SECP_256_R_1)?],
        },
        AttrOrOid::Oid(RawOid::from(ECDSA_WITH_SHA_256)),
    ]))
}

/// The base64 body of `/csrattrs`.
pub fn csrattrs_body() -> Result<String, String> {
    csr_attrs()
        .map_err(|e| e.to_string())?
        .to_body()
        .map_err(|e| e.to_string())
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

fn refused(path: &str, conn: &ConnInfo, reject: Reject) -> Response {
    tracing::info!(
        peer = %conn.peer,
        status = reject.status.as_u16(),
        outcome = "refused",
        reason = %reject.reason,
        "{path}"
    );
    let status = reject.status;
    outcome_logged(reject.into_response(), status)
}

/// `GET /.well-known/est/cacerts` (RFC 7030 §4.1): the domain CA as certs-only CMS.
pub async fn cacerts(
    State(s): State<Arc<Registrar>>,
    Extension(conn): Extension<ConnInfo>,
) -> Response {
    if let Err(r) = s.classify(&conn) {
        return refused("cacerts", &conn, r);
    }
    match encode_certs_only_body(std::slice::from_ref(&s.domain_ca)) {
        Ok(body) => {
            tracing::info!(peer = %conn.peer, status = 200, outcome = "served", "cacerts");
            outcome_logged(respond(media_type::PKCS7_CERTS_ONLY, body), StatusCode::OK)
        }
        Err(e) => Reject::internal("encoding /cacerts", e).into_response(),
    }
}

/// `GET /.well-known/est/csrattrs` (RFC 7030 §4.5, RFC 8995 §5.9.2).
pub async fn csrattrs(
    State(s): State<Arc<Registrar>>,
    Extension(conn): Extension<ConnInfo>,
) -> Response {
    if let Err(r) = s.classify(&conn) {
        return refused("csrattrs", &conn, r);
    }
    tracing::info!(peer = %conn.peer, status = 200, outcome = "served", "csrattrs");
    outcome_logged(
        respond(media_type::CSRATTRS, s.csrattrs_body.clone()),
        StatusCode::OK,
    )
}

/// The CSR of a `/simpleenroll` or `/simplereenroll` body, checked (RFC 7030 §4.2.1,
/// RFC 8995 §5.9.2): base64 DER PKCS#10, self-signature valid (proof of possession), an EC
/// P-256 key signed with ecdsa-with-SHA256 as `/csrattrs` asks.
fn checked_csr(headers: &HeaderMap, body: &[u8]) -> Result<CertReq, Reject> {
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
    let key_alg = &csr.info.public_key.algorithm;
    let curve = key_alg
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if key_alg.oid != ID_EC_PUBLIC_KEY || curve != Some(SECP_256_R_1) {
        return Err(Reject::new(
            400,
            "CSR key is not an EC key on secp256r1 as /csrattrs asks",
        ));
    }
    if csr.algorithm.oid != ECDSA_WITH_SHA_256 {
        return Err(Reject::new(
            400,
            "CSR is not signed with ecdsa-with-SHA256 as /csrattrs asks",
        ));
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

/// Issue an LDevID for `subject` and the CSR's key (RFC 8995 §5.9.3), store it (superseding
/// the pledge's previous ones) and answer it as certs-only CMS.
async fn issue_and_store(
    s: &Registrar,
    pledge_serial: &str,
    subject: Name,
    csr: &CertReq,
    renewed_from: Option<&str>,
) -> Result<Certificate, Reject> {
    let spki = spki_der(csr).map_err(|e| Reject::new(400, e))?;
    let mut params = profile::ldevid(subject).map_err(|e| Reject::internal("LDevID profile", e))?;
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
            renewed_from,
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
    result: Result<(String, Certificate), Reject>,
) -> Response {
    match result {
        Ok((serial, cert)) => {
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

async fn enroll(
    s: &Registrar,
    conn: &ConnInfo,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Certificate), Reject> {
    let client = s.classify(conn)?;
    let chain = match &*client {
        Client::Idevid { chain } => chain,
        Client::Ldevid { .. } => {
            return Err(Reject::new(
                403,
                "/simpleenroll is for IDevIDs; renew an LDevID with /simplereenroll",
            ));
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
            return Err(Reject::new(403, format!("pledge {serial} is denied")));
        }
        Some(Policy::Pending) => {
            return Err(Reject::new(
                403,
                format!("pledge {serial} is not approved yet"),
            ));
        }
        _ => {}
    }
    match gate {
        EnrollGate::Open => {}
        EnrollGate::NoVoucher => {
            return Err(Reject::new(
                403,
                format!("pledge {serial} has no voucher from this registrar"),
            ));
        }
        EnrollGate::OtherIdevid => {
            return Err(Reject::new(
                403,
                format!("the latest voucher for {serial} was obtained by another IDevID"),
            ));
        }
        EnrollGate::VoucherFailed => {
            return Err(Reject::new(
                403,
                format!("pledge {serial} reported that its voucher failed"),
            ));
        }
        EnrollGate::AuditLogRefused(reason) => {
            return Err(Reject::new(
                403,
                format!("audit log of the voucher for {serial} refused: {reason}"),
            ));
        }
    }
    let csr = checked_csr(headers, body)?;
    let idevid_subject = idevid.tbs_certificate().subject();
    if s.config.csr_subject_must_match_idevid && !same_name(&csr.info.subject, idevid_subject) {
        return Err(Reject::new(
            400,
            "CSR subject differs from the IDevID subject",
        ));
    }
    let subject = match &s.config.ldevid_subject {
        Some(template) => crate::config::subject_from_template(template, &serial)
            .map_err(|e| Reject::internal("ldevid-subject template", e))?,
        None => csr.info.subject.clone(),
    };
    let cert = issue_and_store(s, &serial, subject, &csr, None).await?;
    Ok((serial, cert))
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
) -> Result<(String, Certificate), Reject> {
    let client = s.classify(conn)?;
    let (current, der) = match &*client {
        Client::Ldevid { cert, der } => (cert, der),
        Client::Idevid { .. } => {
            return Err(Reject::new(
                403,
                "/simplereenroll needs the current LDevID as client certificate",
            ));
        }
    };
    let current_serial = cert_serial_hex(current);
    let serial = match db::ldevid_status(&s.db, &current_serial, der)
        .map_err(|e| Reject::internal("looking up the LDevID", e))?
    {
        LdevidStatus::Current { pledge_serial } => pledge_serial,
        LdevidStatus::Superseded { .. } => {
            return Err(Reject::new(403, "client LDevID has been renewed already"));
        }
        LdevidStatus::Revoked { .. } => {
            return Err(Reject::new(403, "client LDevID is revoked"));
        }
        LdevidStatus::Unknown => {
            return Err(Reject::new(
                403,
                "client certificate is not an LDevID issued by this registrar",
            ));
        }
    };
    if db::policy(&s.db, &serial).map_err(|e| Reject::internal("reading the pledge policy", e))?
        == Some(Policy::Denied)
    {
        return Err(Reject::new(403, format!("pledge {serial} is denied")));
    }
    let csr = checked_csr(headers, body)?;
    if !same_name(&csr.info.subject, current.tbs_certificate().subject()) {
        return Err(Reject::new(
            400,
            "CSR subject differs from the LDevID being renewed (RFC 7030 §4.2.2)",
        ));
    }
    let subject = current.tbs_certificate().subject().clone();
    let cert = issue_and_store(s, &serial, subject, &csr, Some(&current_serial)).await?;
    Ok((serial, cert))
}

#[cfg(test)]
mod tests {
    use super::*;
    use brski_common::est::RequestedKey;

    #[test]
    fn rfc8995_5_9_2_csrattrs_ask_for_p256_and_ecdsa_sha256() {
        let body = csrattrs_body().expect("encodes");
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
    }
}
