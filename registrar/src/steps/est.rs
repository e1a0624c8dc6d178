//! EST for pledges (RFC 7030 §4, RFC 8995 §5.9): `/cacerts` for anyone (§4.1.1),
//! `/csrattrs`, `/simpleenroll` for a pledge whose voucher was relayed, `/simplereenroll` for
//! the holder of a current LDevID. The steps read and answer DER; the HTTP shell carries it
//! in base64 (RFC 8951 §3.2), a CoAP shell as it is (RFC 9148 §5.3).
//!
//! LDevIDs, one per voucher (RFC 8995 §5.9.3): `/simpleenroll` issues one LDevID per voucher;
//! the same request again (the same key: a lost answer) gets the same certificate, another key
//! gets 403 (renew with `/simplereenroll`, or obtain a new voucher, which revokes the pledge's
//! earlier LDevIDs). `/simplereenroll` supersedes the LDevID it renews; that one may renew again
//! (the same key gets the same certificate; another key a new one, revoking the unused one)
//! until the new LDevID is first used, and is revoked then. Revoked and superseded LDevIDs are
//! refused in the TLS handshake ([`crate::server::LdevidRefusal`]).

use super::{Declared, Media, Outcome, Payload, Peer, Refusal, base_type, unfinished};
use crate::config::CsrAttributes;
use crate::db::{self, EnrollGate, LdevidStatus, NewCertificate, Policy, StoredLdevid};
use crate::server::{Client, ManufacturerAnchors, Registrar};
use brski_common::answer::Class;
use brski_common::est::{AttrOrOid, CsrAttrs, RawOid, encode_certs_only, pop_linking_value};
use brski_common::oid::{CHALLENGE_PASSWORD, EXTENSION_REQUEST};
use brski_common::pki::chain::subject_string;
use brski_common::pki::crl::distribution_point_extension;
use brski_common::pki::csr::{challenge_password, requested_extensions, spki_der, verify_csr};
use brski_common::pki::ext::serial_number;
use brski_common::pki::ext::{cert_extensions, subject_alt_names};
use brski_common::pki::{NotAfter, issue, profile};
use const_oid::AssociatedOid;
use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ID_EC_PUBLIC_KEY, SECP_256_R_1};
use der::{Any, Decode, Encode};
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
/// `[csr-attributes]` (403 when the serial cannot form them), and TPM evidence when its
/// manufacturer (`attesting`, [`Registrar::attesting_manufacturer`]) wants it (SPEC §9).
fn enrollment_attrs(
    s: &Registrar,
    serial: &str,
    attesting: Option<&ManufacturerAnchors>,
) -> Result<(CsrAttrs, Vec<GeneralName>), Refusal> {
    let names = crate::config::csr_alt_names(&s.config.csr_attributes, serial).map_err(|e| {
        Refusal::new(
            Class::Forbidden,
            format!("serial number {serial:?} cannot form the [csr-attributes] names: {e}"),
        )
    })?;
    let mut attrs = csr_attrs(&s.config.csr_attributes, &names)
        .map_err(|e| Refusal::internal("encoding the CSR attributes", e))?;
    if let Some(request) = attesting.and_then(crate::attestation::request) {
        attrs.0.extend(
            request
                .to_attrs()
                .map_err(|e| Refusal::internal("encoding the evidence request", e))?,
        );
    }
    Ok((attrs, names))
}

/// What `/csrattrs` asks of the holder of the LDevID `current` about to renew it: its own
/// subjectAltName (RFC 7030 §4.2.2).
fn renewal_attrs(
    s: &Registrar,
    current: &Certificate,
) -> Result<(CsrAttrs, Vec<GeneralName>), Refusal> {
    let names = subject_alt_names(cert_extensions(current))
        .map_err(|e| Refusal::internal("reading the LDevID's subjectAltName", e))?;
    let attrs = csr_attrs(&s.config.csr_attributes, &names)
        .map_err(|e| Refusal::internal("encoding the CSR attributes", e))?;
    Ok((attrs, names))
}

/// The CSR attributes for `peer` (its IDevID or its LDevID).
async fn attrs_for_client(
    s: &Registrar,
    peer: &Peer,
) -> Result<(CsrAttrs, Vec<GeneralName>), Refusal> {
    match &*s.classify(peer)? {
        Client::Idevid { chain } => {
            let serial = s.idevid_serial(chain).ok_or_else(|| {
                Refusal::new(Class::Forbidden, "IDevID subject has no serialNumber")
            })?;
            enrollment_attrs(s, &serial, s.attesting_manufacturer(chain))
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

/// `der` as the body of a done GET (RFC 9148 §5.5: 2.05), logged.
fn served(op: &str, peer: &Peer, media: Media, der: Vec<u8>) -> Outcome {
    tracing::info!(
        peer = %peer.addr,
        transport = peer.transport.as_str(), status = peer.transport.status(Class::Content),
        outcome = "served",
        "{op}"
    );
    Outcome::Done {
        class: Class::Content,
        payload: Some(Payload {
            format: Declared::of(media),
            bytes: der,
        }),
    }
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
) -> Result<(String, LdevidStatus), Refusal> {
    let (pledge_serial, status, first_use) =
        ldevid_holder_unrecorded(s, cert, der, purpose).await?;
    if let Some(cert_serial) = first_use {
        s.store
            .ldevid_seen(&cert_serial)
            .await
            .map_err(|e| Refusal::store("recording the LDevID's first use", e))?;
    }
    Ok((pledge_serial, status))
}

/// [`ldevid_holder`] without the write: the LDevID's serial comes back when this is its first
/// use, for the caller to record in its own write (one commit for the request).
pub async fn ldevid_holder_unrecorded(
    s: &Registrar,
    cert: &Certificate,
    der: &[u8],
    purpose: LdevidUse,
) -> Result<(String, LdevidStatus, Option<String>), Refusal> {
    let cert_serial = cert_serial_hex(cert);
    let status = s
        .store
        .ldevid_status(&cert_serial, der)
        .await
        .map_err(|e| Refusal::store("looking up the LDevID", e))?;
    let (pledge_serial, first_use) = match &status {
        LdevidStatus::Current {
            pledge_serial,
            seen,
        } => (pledge_serial.clone(), (!seen).then_some(cert_serial)),
        LdevidStatus::Renewed { pledge_serial, .. } if purpose == LdevidUse::Renewal => {
            (pledge_serial.clone(), None)
        }
        LdevidStatus::Renewed { successor, .. } => {
            return Err(Refusal::new(
                Class::Forbidden,
                format!(
                    "client LDevID has been renewed; authenticate with its successor {successor}"
                ),
            ));
        }
        LdevidStatus::Superseded { .. } => {
            return Err(Refusal::new(
                Class::Forbidden,
                "client LDevID has been renewed already",
            ));
        }
        LdevidStatus::Revoked { reason, .. } => {
            return Err(Refusal::new(
                Class::Forbidden,
                format!("client LDevID is revoked: {reason}"),
            ));
        }
        LdevidStatus::Unknown => {
            return Err(Refusal::new(
                Class::Forbidden,
                "client certificate is not an LDevID issued by this registrar",
            ));
        }
    };
    Ok((pledge_serial, status, first_use))
}

/// `/cacerts` (RFC 7030 §4.1; `/crts`, RFC 9148 §4.1): the domain CA as certs-only CMS, to
/// any client, with or without a client certificate (§4.1.1).
pub fn cacerts(s: &Registrar, peer: &Peer) -> Outcome {
    match encode_certs_only(std::slice::from_ref(&s.domain_ca)) {
        Ok(der) => served("cacerts", peer, Media::CertsOnly, der),
        Err(e) => unfinished("cacerts", peer, Refusal::internal("encoding /cacerts", e)),
    }
}

/// `/csrattrs` (RFC 7030 §4.5, RFC 8995 §5.9.2; `/att`, RFC 9148 §4.1): what this client's
/// CSR must hold.
pub async fn csrattrs(s: &Registrar, peer: &Peer) -> Outcome {
    let der = attrs_for_client(s, peer).await.and_then(|(attrs, _)| {
        attrs
            .to_der()
            .map_err(|e| Refusal::internal("encoding the CSR attributes", e))
    });
    match der {
        Ok(der) => served("csrattrs", peer, Media::CsrAttrs, der),
        Err(r) => unfinished("csrattrs", peer, r),
    }
}

/// A `/simpleenroll` or `/simplereenroll` (`/sen`, `/sren`).
#[derive(Clone, Debug)]
pub struct EnrollRequest {
    pub peer: Peer,
    /// The body's declared format; none declared is taken for PKCS#10.
    pub content_format: Option<Declared>,
    /// The CSR's DER, or why the transport could not decode the body to DER (RFC 8951 §3.2
    /// base64 over HTTP): refused (400) where the CSR is read, after the client's checks.
    pub csr: Result<Vec<u8>, String>,
}

/// The CSR of an enrollment, checked (RFC 7030 §4.2.1, RFC 8995 §5.9.2): DER PKCS#10, a key
/// this suite accepts, self-signature valid (proof of possession), what `attrs` asked for,
/// and a challengePassword, when there is one, equal to the channel binding of the client's
/// connection (RFC 7030 §3.5; the RFC 9266 `tls-exporter`).
fn checked_csr(req: &EnrollRequest, attrs: &CsrAttrs) -> Result<CertReq, Refusal> {
    if let Some(declared) = &req.content_format {
        if declared.media != Some(Media::Pkcs10) {
            return Err(Refusal::new(
                Class::UnsupportedContentFormat,
                format!(
                    "Content-Type {:?}: a CSR is application/pkcs10",
                    base_type(&declared.label)
                ),
            ));
        }
    }
    let der = req
        .csr
        .as_ref()
        .map_err(|e| Refusal::new(Class::BadRequest, e))?;
    let csr = verify_csr(der).map_err(|e| Refusal::new(Class::BadRequest, e))?;
    attrs
        .check_csr(&csr)
        .map_err(|e| Refusal::new(Class::BadRequest, e))?;
    if let Some(password) =
        challenge_password(&csr).map_err(|e| Refusal::new(Class::BadRequest, e))?
    {
        let linked = req
            .peer
            .channel_binding
            .as_deref()
            .is_some_and(|cb| pop_linking_value(cb) == password);
        if !linked {
            return Err(Refusal::new(
                Class::BadRequest,
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
/// ([`db::store_certificate`] says what it does to the pledge's others), with the appraisal of
/// the CSR's evidence. Evidence that proved the key TPM-resident puts the TCG policies
/// tcg-cap-verifiedTPMResidency and -Fixed into the LDevID (SPEC §8.2).
async fn issue_and_store(
    s: &Registrar,
    pledge_serial: &str,
    subject: Name,
    alt_names: &[GeneralName],
    csr: &CertReq,
    origin: Origin<'_>,
    verdict: Option<&crate::attestation::Verdict>,
) -> Result<Certificate, Refusal> {
    let spki = spki_der(csr).map_err(|e| Refusal::new(Class::BadRequest, e))?;
    let mut params =
        profile::ldevid(subject).map_err(|e| Refusal::internal("LDevID profile", e))?;
    params.subject_alt_names = alt_names.to_vec();
    if let Some(url) = &s.config.crl_url {
        // RFC 5280 §4.2.1.13: where relying parties find out that it was revoked.
        params.extra_extensions.push(
            distribution_point_extension(url)
                .map_err(|e| Refusal::internal("the CRL distribution point", e))?,
        );
    }
    if verdict.is_some_and(crate::attestation::Verdict::proved_residency) {
        params.extra_extensions.push(
            profile::certificate_policies(&[
                brski_common::oid::TCG_CAP_VERIFIED_TPM_RESIDENCY,
                brski_common::oid::TCG_CAP_VERIFIED_TPM_FIXED,
            ])
            .map_err(|e| Refusal::internal("the TCG certificate policies", e))?,
        );
    }
    params.not_after = NotAfter::At(
        time::OffsetDateTime::now_utc()
            + time::Duration::days(i64::from(s.config.ldevid_validity_days)),
    );
    let cert = issue(&params, &spki, Some(&s.domain_ca), &s.domain_ca_key)
        .map_err(|e| Refusal::internal("issuing the LDevID", e))?;
    let der = cert
        .to_der()
        .map_err(|e| Refusal::internal("encoding the LDevID", e))?;
    let cert_serial = cert_serial_hex(&cert);
    let validity = cert.tbs_certificate().validity();
    s.store
        .store_certificate(&NewCertificate {
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
            attestation: verdict.map(|v| v.record(pledge_serial, Some(&cert_serial))),
        })
        .await
        .map_err(|e| Refusal::store("storing the LDevID", e))?;
    Ok(cert)
}

/// The outcome of an enrollment: the issued LDevID as certs-only (RFC 9148 §5.5: 2.04), or
/// pending or refused; logged.
fn answer_issued(
    step: &'static str,
    outcome: &'static str,
    peer: &Peer,
    result: Result<Issued, Outcome>,
) -> Outcome {
    let Issued {
        serial,
        cert,
        again,
    } = match result {
        Ok(issued) => issued,
        Err(stopped) => return unfinished(step, peer, stopped),
    };
    let der = match encode_certs_only(std::slice::from_ref(&cert)) {
        Ok(der) => der,
        Err(e) => {
            let refusal = Refusal::internal("encoding the LDevID response", e);
            return unfinished(step, peer, refusal);
        }
    };
    let outcome = if again { "issued-before" } else { outcome };
    tracing::info!(
        %serial,
        peer = %peer.addr,
        transport = peer.transport.as_str(), status = peer.transport.status(Class::Changed),
        ldevid = %cert_serial_hex(&cert),
        outcome,
        "{step}"
    );
    Outcome::Done {
        class: Class::Changed,
        payload: Some(Payload {
            format: Declared::of(Media::CertsOnly),
            bytes: der,
        }),
    }
}

/// `/simpleenroll` (RFC 7030 §4.2.1, RFC 8995 §5.9.3; `/sen`, RFC 9148 §4.1).
pub async fn simple_enroll(s: &Registrar, req: &EnrollRequest) -> Outcome {
    let outcome = answer_issued("simpleenroll", "enrolled", &req.peer, enroll(s, req).await);
    s.metrics.enrollment(req.peer.transport, &outcome);
    outcome
}

/// An LDevID to answer: issued now, or `again` (the one issued for the same key before, whose
/// answer the client did not get).
struct Issued {
    serial: String,
    cert: Certificate,
    again: bool,
}

/// `stored` again when it certifies the key of `csr` and is still valid to hand out.
fn same_key_again(stored: &StoredLdevid, csr: &CertReq) -> Result<Option<Certificate>, Refusal> {
    let spki = spki_der(csr).map_err(|e| Refusal::new(Class::BadRequest, e))?;
    if stored.revoked || stored.spki_sha256.as_deref() != Some(fingerprint(&spki).as_str()) {
        return Ok(None);
    }
    Certificate::from_der(&stored.der)
        .map(Some)
        .map_err(|e| Refusal::internal("decoding a stored LDevID", e))
}

async fn enroll(s: &Registrar, req: &EnrollRequest) -> Result<Issued, Outcome> {
    let client = s.classify(&req.peer)?;
    let chain = match &*client {
        Client::Idevid { chain } => chain,
        Client::Ldevid { .. } => {
            return Err(Refusal::new(
                Class::Forbidden,
                "/simpleenroll is for IDevIDs; renew an LDevID with /simplereenroll",
            )
            .into());
        }
    };
    let idevid = chain
        .first()
        .ok_or_else(|| Refusal::new(Class::Unauthorized, "no TLS client certificate"))?;
    let serial = serial_number(idevid)
        .ok_or_else(|| Refusal::new(Class::Forbidden, "IDevID subject has no serialNumber"))?;
    // The IDevID exactly as presented in TLS, as when the voucher was obtained.
    let idevid_der = req
        .peer
        .certs
        .first()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (policy, gate) = s
        .store
        .may_enroll(&serial, &fingerprint(idevid_der))
        .await
        .map_err(|e| Refusal::store("reading the pledge state", e))?;
    match policy {
        Some(Policy::Denied) => {
            return Err(
                Refusal::new(Class::Forbidden, format!("pledge {serial} is denied")).into(),
            );
        }
        // RFC 7030 §4.2.3: a request the registrar cannot answer yet is 202 + Retry-After.
        Some(Policy::Pending) => {
            return Err(Outcome::Pending {
                reason: format!("pledge {serial} is waiting for approval; retry later"),
                retry_after: u64::from(s.config.retry_after),
            });
        }
        _ => {}
    }
    let voucher_id = match gate {
        EnrollGate::Open { voucher_id } => voucher_id,
        EnrollGate::NoVoucher => {
            return Err(Refusal::new(
                Class::Forbidden,
                format!("pledge {serial} has no voucher from this registrar"),
            )
            .into());
        }
        EnrollGate::OtherIdevid => {
            return Err(Refusal::new(
                Class::Forbidden,
                format!("the latest voucher for {serial} was obtained by another IDevID"),
            )
            .into());
        }
        EnrollGate::VoucherFailed => {
            return Err(Refusal::new(
                Class::Forbidden,
                format!("pledge {serial} reported that its voucher failed"),
            )
            .into());
        }
        EnrollGate::AuditLogRefused(reason) => {
            return Err(Refusal::new(
                Class::Forbidden,
                format!("audit log of the voucher for {serial} refused: {reason}"),
            )
            .into());
        }
    };
    let attesting = s.attesting_manufacturer(chain);
    let (attrs, names) = enrollment_attrs(s, &serial, attesting)?;
    let csr = checked_csr(req, &attrs)?;
    let idevid_subject = idevid.tbs_certificate().subject();
    if s.config.csr_subject_must_match_idevid && !same_name(&csr.info.subject, idevid_subject) {
        return Err(Refusal::new(
            Class::BadRequest,
            "CSR subject differs from the IDevID subject",
        )
        .into());
    }
    // RFC 8995 §5.9.3: one LDevID per voucher.
    if let Some(prior) = s
        .store
        .enrolled_on_voucher(voucher_id)
        .await
        .map_err(|e| Refusal::store("reading the LDevIDs", e))?
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
        return Err(Refusal::new(
            Class::Forbidden,
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
            .map_err(|e| Refusal::internal("ldevid-subject template", e))?,
        None => csr.info.subject.clone(),
    };
    // SPEC §9: the evidence that the CSR's key is in the device's TPM, as the manufacturer
    // of the IDevID asks.
    let verdict = attesting.and_then(|m| crate::attestation::appraise(m, idevid, &csr, &req.peer));
    if let Some(v) = &verdict {
        s.metrics.attestation(
            v.mode.as_str(),
            v.appraisal.failed_check().unwrap_or("accepted"),
        );
        if let Some(refusal) = v.refusal() {
            s.store
                .store_attestation(&v.record(&serial, None))
                .await
                .map_err(|e| Refusal::store("recording the attestation refusal", e))?;
            return Err(refusal.into());
        }
        if let Err(e) = &v.appraisal.result {
            tracing::warn!(%serial, check = e.check(), reason = %e, "attestation failed; issuing (attestation = \"record\")");
        }
    }
    let cert = issue_and_store(
        s,
        &serial,
        subject,
        &names,
        &csr,
        Origin::Voucher(voucher_id),
        verdict.as_ref(),
    )
    .await?;
    Ok(Issued {
        serial,
        cert,
        again: false,
    })
}

/// `/simplereenroll` (RFC 7030 §4.2.2; `/sren`, RFC 9148 §4.1): the client's current LDevID
/// is renewed; the CSR subject must equal it.
pub async fn simple_reenroll(s: &Registrar, req: &EnrollRequest) -> Outcome {
    let outcome = answer_issued(
        "simplereenroll",
        "renewed",
        &req.peer,
        reenroll(s, req).await,
    );
    s.metrics.renewal(req.peer.transport, &outcome);
    outcome
}

async fn reenroll(s: &Registrar, req: &EnrollRequest) -> Result<Issued, Outcome> {
    let client = s.classify(&req.peer)?;
    let (current, der) = match &*client {
        Client::Ldevid { cert, der } => (cert, der),
        Client::Idevid { .. } => {
            return Err(Refusal::new(
                Class::Forbidden,
                "/simplereenroll needs the current LDevID as client certificate",
            )
            .into());
        }
    };
    let current_serial = cert_serial_hex(current);
    let (serial, status) = ldevid_holder(s, current, der, LdevidUse::Renewal).await?;
    if s.store
        .policy(&serial)
        .await
        .map_err(|e| Refusal::store("reading the pledge policy", e))?
        == Some(Policy::Denied)
    {
        return Err(Refusal::new(Class::Forbidden, format!("pledge {serial} is denied")).into());
    }
    let (attrs, names) = renewal_attrs(s, current)?;
    let csr = checked_csr(req, &attrs)?;
    if !same_name(&csr.info.subject, current.tbs_certificate().subject()) {
        return Err(Refusal::new(
            Class::BadRequest,
            "CSR subject differs from the LDevID being renewed (RFC 7030 §4.2.2)",
        )
        .into());
    }
    // The attributes ask for the LDevID's own subjectAltName; without one, none is renewed.
    if names.is_empty()
        && !requested_extensions(&csr)
            .map_err(|e| Refusal::new(Class::BadRequest, e))?
            .iter()
            .all(|e| e.extn_id != SubjectAltName::OID)
    {
        return Err(Refusal::new(
            Class::BadRequest,
            "CSR requests a subjectAltName the LDevID being renewed does not have \
             (RFC 7030 §4.2.2)",
        )
        .into());
    }
    // A renewal whose answer was lost: the same key gets the same certificate.
    if let LdevidStatus::Renewed { successor, .. } = &status {
        let stored = s
            .store
            .certificate(successor)
            .await
            .map_err(|e| Refusal::store("reading the LDevIDs", e))?;
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
        None,
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
