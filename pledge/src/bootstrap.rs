//! One bootstrap (RFC 8995 §5): provisional TLS, voucher request, voucher and pin checks,
//! voucher status, EST enrollment, enrollment status.

use crate::enroll;
use crate::error::{Failure, Step};
use crate::identity::Identity;
use crate::session::{ClientCert, Credentials, Exchange, ServerTrust, Session, Transport};
use crate::state::{Enrollment, LdevidKey, StateDir, StateFile};
use crate::timing::VOUCHER_RETRY_CAP;
use brski_common::brski::paths;
use brski_common::brski::pledge::{
    AcceptedVoucher, PledgeError, PledgeVoucherRequest, accept_voucher,
    build_pledge_voucher_request, validate_registrar,
};
use brski_common::envelope::Format;
use brski_common::est::media_type;
use brski_common::input::decode_base64_lenient;
use brski_common::keys::Signer;
use brski_common::oid::ID_KP_CMC_RA;
use brski_common::pki::chain::{TimeCheck, TrustPolicy};
use brski_common::pki::crl::RevocationError;
use brski_common::pki::ext::idevid_issuer;
use brski_common::telemetry::StatusTelemetry;
use brski_common::voucher::{Pin, PledgeExpectations};
use brski_service::crl::Revocation;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use x509_cert::Certificate;

/// Options of a bootstrap.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// How long to keep resending a request answered with 202 (RFC 8995 §5.6: up to 4 days).
    pub max_wait: Duration,
}

/// What a successful bootstrap produced, for the one-line report.
#[derive(Clone, Debug)]
pub struct Summary {
    pub serial: String,
    pub assertion: String,
    pub subject: String,
    pub issuer: String,
    pub not_after: String,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "enrolled: serial {}, voucher assertion {}, LDevID subject \"{}\" issued by \"{}\", valid until {}",
            self.serial, self.assertion, self.subject, self.issuer, self.not_after
        )
    }
}

/// The LDevID's subject, issuer and end of validity, for messages.
pub fn describe(cert: &Certificate) -> (String, String, String) {
    let tbs = cert.tbs_certificate();
    let not_after = time::OffsetDateTime::from(tbs.validity().not_after.to_system_time())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "?".into());
    (
        tbs.subject().to_string(),
        tbs.issuer().to_string(),
        not_after,
    )
}

/// The result of `pledge bootstrap`.
#[derive(Debug)]
pub enum Outcome {
    /// A valid enrollment was already there; nothing was sent.
    AlreadyEnrolled(Box<Enrollment>),
    Enrolled(Summary),
}

/// `pledge bootstrap`: enroll unless a valid enrollment is already on disk.
pub async fn bootstrap(id: &Identity, options: &Options) -> Result<Outcome, Failure> {
    let state = StateDir::new(id.state_dir());
    state.ensure()?;
    state.recover()?;
    match state.load_enrollment(&id.serial, id.time_check()) {
        Ok(e) => return Ok(Outcome::AlreadyEnrolled(Box::new(e))),
        Err(reason) => tracing::info!(serial = %id.serial, %reason, "not enrolled"),
    }
    attempt(id, &state, options).await.map(Outcome::Enrolled)
}

/// A server trusted only under `anchors` and carrying id-kp-cmcRA (an EST server found
/// dynamically, RFC 8995 §5.6.2, RFC 7030 §3.6.1).
fn anchored_server(anchors: Vec<Certificate>, time: TimeCheck) -> ServerTrust {
    ServerTrust::Anchored(
        TrustPolicy::new(anchors)
            .with_time(time)
            .with_required_eku(ID_KP_CMC_RA),
    )
}

/// Credentials for an [`anchored_server`], authenticating with `chain` and `key`.
pub fn anchored_credentials(
    chain: &[Vec<u8>],
    key: Arc<dyn Signer>,
    anchors: Vec<Certificate>,
    time: TimeCheck,
) -> Credentials {
    Credentials {
        client: Some(ClientCert {
            chain: chain.to_vec(),
            key,
        }),
        server: anchored_server(anchors, time),
        source_port: 0,
    }
}

/// Credentials for an [`anchored_server`] without a client certificate (RFC 7030 §4.1.1:
/// `/cacerts` needs no client authentication).
pub fn anonymous_credentials(anchors: Vec<Certificate>, time: TimeCheck) -> Credentials {
    Credentials {
        client: None,
        server: anchored_server(anchors, time),
        source_port: 0,
    }
}

/// POST telemetry (RFC 8995 §5.7, §5.9.4): JSON over HTTPS, CBOR over CoAP (cBRSKI §6.5.1).
/// The answer is logged and otherwise ignored.
async fn report(session: &mut Session, step: Step, path: &str, telemetry: &StatusTelemetry) {
    let (encoded, media) = match session.transport() {
        Transport::Https => (telemetry.to_json(), media_type::JSON),
        Transport::Coaps => (telemetry.to_cbor(), media_type::CBOR),
    };
    let body = match encoded {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(%step, error = %e, "cannot encode telemetry");
            return;
        }
    };
    let x = Exchange::post(step, path, media, &body);
    match session.send(&x).await {
        Ok(r) => {
            tracing::info!(%step, status = r.status, reported = telemetry.status, "status reported")
        }
        Err(e) => tracing::warn!(%step, error = %e, "status report not delivered"),
    }
}

/// One bootstrap attempt, whatever is on disk: a fresh nonce, and every file rewritten.
pub async fn attempt(
    id: &Identity,
    state: &StateDir,
    options: &Options,
) -> Result<Summary, Failure> {
    let span = tracing::info_span!("bootstrap", serial = %id.serial, registrar = %id.registrar_url);
    run(id, state, options).instrument(span).await
}

async fn run(id: &Identity, state: &StateDir, options: &Options) -> Result<Summary, Failure> {
    // The IDevID key first: a TPM that is away or holds another key changes nothing on disk.
    let idevid_key = id.idevid_signer().inspect_err(|f| {
        tracing::warn!(step = "idevid-key", outcome = "failed", error = %f, "IDevID key unavailable")
    })?;
    state.forget()?;
    let time = id.time_check();
    let idevid = id
        .idevid()
        .ok_or_else(|| Failure::Config("no IDevID certificate".into()))?;

    // RFC 8995 §5.1 (cBRSKI §6.1): TLS or DTLS with the IDevID; the registrar's certificate
    // accepted provisionally.
    let provisional = Credentials {
        client: Some(ClientCert {
            chain: id.idevid_chain_der.clone(),
            key: idevid_key.clone(),
        }),
        server: ServerTrust::Provisional,
        source_port: 0,
    };
    let mut session = Session::open(&id.registrar, id.transport, &provisional).await?;
    tracing::info!(
        step = "connect",
        outcome = "provisional",
        transport = id.transport.name(),
        "connected; registrar certificate kept for the pin check"
    );

    // RFC 8995 §5.2: the pledge voucher-request, resent identically after 202 (§5.6).
    let pvr = build_pledge_voucher_request(
        id.format,
        &id.serial,
        session.server_cert(),
        idevid_key.as_ref(),
        &id.idevid_chain,
        id.trusted_now(),
    )
    .map_err(|e| Failure::Internal(format!("voucher-request: {e}")))?;
    let media = id.format.media_type();
    let request = Exchange::post(
        Step::RequestVoucher,
        paths::REQUEST_VOUCHER,
        media,
        &pvr.bytes,
    )
    .accepting(media);
    let response = session
        .send_until_done(&request, Some(VOUCHER_RETRY_CAP), options.max_wait)
        .await?;
    if response.status != 200 {
        return Err(Failure::Refused {
            step: Step::RequestVoucher,
            status: response.status,
            reason: response.reason(),
        });
    }

    // RFC 8995 §5.6.1: the voucher, verified with the manufacturer's anchor.
    let format = response
        .header("content-type")
        .and_then(Format::from_media_type)
        .unwrap_or(id.format);
    let voucher = voucher_bytes(format, response.body);
    let accepted = match imprint(id, format, &voucher, &pvr, idevid, session.server_chain()).await {
        Ok(a) => a,
        Err((step, failure)) => {
            tracing::warn!(step, outcome = "rejected", error = %failure, "voucher not accepted");
            voucher_status(
                &mut session,
                StatusTelemetry::failure(failure.telemetry_reason()),
            )
            .await;
            return Err(failure);
        }
    };
    let assertion = accepted
        .voucher
        .assertion
        .map(|a| a.as_str().to_string())
        .unwrap_or_else(|| "none".into());
    tracing::info!(step = "voucher", outcome = "accepted", %assertion, "voucher accepted; registrar pinned");
    voucher_status(&mut session, StatusTelemetry::success()).await;
    state.write_voucher_request(id.format, &pvr.bytes)?;
    state.write_voucher(format, &voucher)?;

    // RFC 8995 §5.9: EST on the now trusted connection; failures are reported (§5.9.4).
    let pin = accepted.pin.clone();
    let (key, signer, chain, cacerts) =
        match est(id, state, &mut session, idevid, &pin, options).await {
            Ok(x) => x,
            Err(failure) => {
                if !matches!(failure, Failure::Unreachable(_)) {
                    let t = StatusTelemetry::failure(failure.telemetry_reason());
                    report(&mut session, Step::EnrollStatus, paths::ENROLL_STATUS, &t).await;
                }
                return Err(failure);
            }
        };
    drop(session);
    let chain_der = chain_der(&chain)?;

    state.commit_enrollment(
        &key,
        &chain,
        &StateFile {
            enrolled: true,
            registrar: id.registrar_url.clone(),
            serial: id.serial.clone(),
            ldevid_tpm_handle: key.tpm_handle(),
        },
    )?;
    let (subject, issuer, not_after) = chain.first().map(describe).unwrap_or_default();
    tracing::info!(step = "enroll", outcome = "enrolled", %subject, %issuer, ldevid_tpm_handle = ?key.tpm_handle(), "LDevID stored");
    // A key left in the other LDevID slot by an earlier enrollment is of no use any more.
    if let Some((tcti, [_, other])) = id.ldevid_tpm() {
        match crate::tpm::evict(tcti, other) {
            Ok(true) => {
                tracing::info!(handle = %format_args!("{other:#010x}"), "evicted an old LDevID key")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(handle = %format_args!("{other:#010x}"), error = %e, "cannot evict an old LDevID key")
            }
        }
    }

    // RFC 8995 §5.9.4: success is reported on a new connection authenticated with the LDevID.
    enroll_status_success(id, signer, &chain_der, cacerts, time).await;
    Ok(Summary {
        serial: id.serial.clone(),
        assertion,
        subject,
        issuer,
        not_after,
    })
}

/// RFC 8995 §5.6.1, §5.6.2: the voucher's checks, then the registrar's chain against its pin,
/// then the revocation checks the voucher may demand (RFC 8366bis §8.4). A refusal names its
/// step.
async fn imprint(
    id: &Identity,
    format: Format,
    voucher: &[u8],
    pvr: &PledgeVoucherRequest,
    idevid: &Certificate,
    server_chain: &[Vec<u8>],
) -> Result<AcceptedVoucher, (&'static str, Failure)> {
    let time = id.time_check();
    let mut expected = PledgeExpectations::for_request(&pvr.request)
        .with_idevid_issuer(Some(idevid_issuer(idevid)));
    expected.trusted_time = id.trusted_now();
    // RFC 8995 §7.2: nonceless vouchers only when pledge.toml says so.
    expected.accept_nonceless = id.config.accept_nonceless_vouchers;
    let manufacturer = TrustPolicy::new(id.manufacturer.clone()).with_time(time);
    let accepted = accept_voucher(format, voucher, &manufacturer, &expected)
        .map_err(|e| ("voucher", Failure::Voucher(e)))?;
    if accepted.voucher.created_on.is_none() {
        // RFC 8366bis §8.4: created-on is optional ("primarily for human consumption and
        // auditing"); the voucher is accepted, and its absence noted.
        tracing::info!(
            step = "voucher",
            "the voucher has no created-on (optional in RFC 8366bis); its age is not checked"
        );
    }
    validate_registrar(&accepted.pin, server_chain, time).map_err(|e| {
        let detail = match e {
            PledgeError::RegistrarNotPinned(detail) => detail,
            other => other.to_string(),
        };
        ("pin", Failure::NotPinned(detail))
    })?;
    if accepted.demands_revocation_checks() {
        revocation_checks(id, server_chain)
            .await
            .map_err(|e| ("revocation", Failure::Voucher(PledgeError::Revocation(e))))?;
        tracing::info!(
            step = "revocation",
            outcome = "good",
            "the registrar's chain is not revoked"
        );
    }
    Ok(accepted)
}

/// The revocation checks a voucher demands (RFC 8366bis `domain-cert-revocation-checks`) of the
/// registrar's chain, through the CRL distribution points it names; they need a trusted clock.
async fn revocation_checks(id: &Identity, chain_der: &[Vec<u8>]) -> Result<(), RevocationError> {
    use der::Decode;
    let now = id.trusted_now().ok_or(RevocationError::NoTrustedClock)?;
    let chain = chain_der
        .iter()
        .map(|d| Certificate::from_der(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RevocationError::Unknown {
            subject: String::new(),
            reason: format!("a certificate of the chain does not decode: {e}"),
        })?;
    Revocation::default().check_chain(&chain, true, now).await
}

/// A voucher body: raw as RFC 8995 §5.6 says, or base64 from registrars that encode it anyway.
fn voucher_bytes(format: Format, body: Vec<u8>) -> Vec<u8> {
    let looks_binary = match format {
        Format::Cms => body.first() == Some(&0x30),
        Format::Jws => body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'),
        Format::Cose => true,
    };
    if looks_binary {
        body
    } else {
        decode_base64_lenient(&body).unwrap_or(body)
    }
}

async fn voucher_status(session: &mut Session, telemetry: StatusTelemetry) {
    report(
        session,
        Step::VoucherStatus,
        paths::VOUCHER_STATUS,
        &telemetry,
    )
    .await;
}

fn chain_der(chain: &[Certificate]) -> Result<Vec<Vec<u8>>, Failure> {
    use der::Encode;
    chain
        .iter()
        .map(|c| c.to_der())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::Internal(e.to_string()))
}

pub(crate) async fn enroll_status_success(
    id: &Identity,
    key: Arc<dyn Signer>,
    chain: &[Vec<u8>],
    cacerts: Vec<Certificate>,
    time: TimeCheck,
) {
    let credentials = anchored_credentials(chain, key, cacerts, time);
    match Session::open(&id.registrar, id.transport, &credentials).await {
        Ok(mut s) => {
            report(
                &mut s,
                Step::EnrollStatus,
                paths::ENROLL_STATUS,
                &StatusTelemetry::success(),
            )
            .await
        }
        Err(e) => {
            tracing::warn!(step = "enrollstatus", error = %e, "cannot connect with the LDevID to report enrollment")
        }
    }
}

/// The new LDevID key: where it is kept, and its signer.
type NewKey = (LdevidKey, Arc<dyn Signer>);

/// A new LDevID key of `alg`: in software, or inside the TPM in the first LDevID slot (the
/// TPM LDevID template is P-256; another requested algorithm is logged and not honoured).
pub fn new_ldevid_key(
    id: &Identity,
    alg: brski_common::keys::SignatureAlgorithm,
    slot: Option<u32>,
) -> Result<NewKey, Failure> {
    match id.ldevid_tpm() {
        None => {
            let key = Arc::new(enroll::generate_key(alg)?);
            Ok((LdevidKey::File(key.clone()), key))
        }
        Some((tcti, handles)) => {
            if alg != brski_common::keys::SignatureAlgorithm::EcdsaP256Sha256 {
                tracing::warn!(requested = ?alg, "the TPM LDevID key is P-256; requested algorithm not honoured");
            }
            let handle = slot.unwrap_or(handles[0]);
            let signer = crate::tpm::create_ldevid(tcti, handle)?;
            let reference = crate::state::TpmLdevid::new(handle, signer.public_key_spki());
            tracing::info!(handle = %format_args!("{handle:#010x}"), "LDevID key created in the TPM");
            Ok((LdevidKey::Tpm(reference), signer))
        }
    }
}

/// The root CA a voucher pins, when the pledge may take it as its EST trust anchor before
/// `/crts`: over CoAPS only (cBRSKI §6.7.1).
fn pinned_root(transport: Transport, pin: &Pin) -> Option<Certificate> {
    (transport == Transport::Coaps)
        .then(|| brski_common::brski::pledge::pinned_root_ca(pin))
        .flatten()
}

/// RFC 8995 §5.9.1–§5.9.3: `/cacerts`, `/csrattrs`, a new key, `/simpleenroll`. Over CoAPS
/// with a voucher pinning the domain's root CA, the optimised enrollment of cBRSKI §6.7.1:
/// `/sen` first, and `/crts` only when the pinned root does not anchor the new LDevID; and
/// `/att` only when the registrar refuses a CSR made without it (cBRSKI §6.7).
async fn est(
    id: &Identity,
    state: &StateDir,
    session: &mut Session,
    idevid: &Certificate,
    pin: &Pin,
    options: &Options,
) -> Result<
    (
        LdevidKey,
        Arc<dyn Signer>,
        Vec<Certificate>,
        Vec<Certificate>,
    ),
    Failure,
> {
    let time = id.time_check();
    let pinned_root = pinned_root(id.transport, pin);
    let mut cacerts = Vec::new();
    if pinned_root.is_none() {
        cacerts = enroll::cacerts(session, time).await?;
        state.write_domain_ca(&cacerts)?;
    }
    // cBRSKI §6.7: a constrained pledge SHOULD NOT ask `/att`, and makes its CSR with its
    // IDevID's subject; it asks only when the registrar refuses that CSR (4.00), then sends
    // one that follows the attributes. Over HTTPS it MUST ask first (RFC 8995 §5.9.2).
    let mut attrs_asked = id.transport != Transport::Coaps;
    let mut attrs = if attrs_asked {
        enroll::csrattrs(session).await?
    } else {
        None
    };
    let mut made: Option<NewKey> = None;
    let (key, signer, certs) = loop {
        let alg = enroll::key_algorithm(attrs.as_ref());
        let (key, signer) = match made.take() {
            Some((key, signer)) if signer.algorithm() == alg || id.ldevid_tpm().is_some() => {
                (key, signer)
            }
            _ => new_ldevid_key(id, alg, None)?,
        };
        let evidence_request = enroll::evidence_request(attrs.as_ref());
        let attest;
        let evidence: Option<&enroll::Evidence<'_>> =
            match (&evidence_request, id.iak(), key.tpm_handle()) {
                (Some(request), Some((tcti, iak)), Some(handle)) => {
                    attest = move |binding: &[u8]| {
                        crate::tpm::attestation(tcti, iak, handle, &id.iak_chain, request, binding)
                    };
                    Some(&attest)
                }
                (Some(_), _, _) => {
                    tracing::warn!(
                        step = "simpleenroll",
                        "the registrar asks for TPM attestation evidence, which this pledge cannot \
                         make (it needs its LDevID key in a TPM, iak-cert and [tpm] iak-handle)"
                    );
                    None
                }
                (None, _, _) => None,
            };
        let request = enroll::CsrRequest {
            subject: idevid.tbs_certificate().subject(),
            key: signer.as_ref(),
            extensions: enroll::requested_extensions(attrs.as_ref()),
            evidence,
        };
        tracing::info!(step = "simpleenroll", algorithm = ?signer.algorithm(), "requesting the LDevID");
        let enrolled = enroll::enroll(
            session,
            Step::SimpleEnroll,
            paths::SIMPLE_ENROLL,
            &request,
            options.max_wait,
        )
        .await;
        match enrolled {
            Ok(certs) => break (key, signer, certs),
            Err(Failure::Refused {
                status: 400,
                reason,
                ..
            }) if !attrs_asked => {
                tracing::info!(step = "csrattrs", %reason, "the CSR made without /att was refused; asking /att (cBRSKI §6.7)");
                attrs_asked = true;
                attrs = enroll::csrattrs(session).await?;
                made = Some((key, signer));
            }
            Err(e) => return Err(e),
        }
    };
    if let Some(root) = pinned_root {
        let anchors = vec![root];
        match enroll::check_issued(
            Step::SimpleEnroll,
            certs.clone(),
            signer.as_ref(),
            &anchors,
            time,
        ) {
            Ok(chain) => {
                tracing::info!(
                    step = "cacerts",
                    outcome = "pinned",
                    "the pinned root CA anchors the LDevID; /crts not needed (cBRSKI §6.7.1)"
                );
                state.write_domain_ca(&anchors)?;
                return Ok((key, signer, chain, anchors));
            }
            Err(e) => {
                tracing::info!(step = "cacerts", reason = %e, "the pinned root does not anchor the LDevID; asking /crts (cBRSKI §6.7.1)");
                cacerts = enroll::cacerts(session, time).await?;
                state.write_domain_ca(&cacerts)?;
            }
        }
    }
    let chain = enroll::check_issued(Step::SimpleEnroll, certs, signer.as_ref(), &cacerts, time)?;
    Ok((key, signer, chain, cacerts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// cBRSKI §6.7.1: only a self-signed CA pinned for a CoAPS pledge stands in for `/crts`.
    #[test]
    fn cbrski_6_7_1_only_a_pinned_root_ca_skips_crts_and_only_over_coaps() {
        use brski_common::keys::{SignatureAlgorithm, SoftwareKey};
        use brski_common::pki::issue::{CertificateParams, issue, self_signed};
        use der::Encode;
        use std::str::FromStr;
        use x509_cert::ext::pkix::BasicConstraints;
        use x509_cert::name::Name;
        let key = || SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
        let params = |cn: &str, ca: bool| {
            let mut p = CertificateParams::new(
                Name::from_str(&format!("CN={cn}")).expect("name"),
                time::Duration::days(1),
            )
            .expect("params");
            p.basic_constraints = ca.then_some(BasicConstraints {
                ca: true,
                path_len_constraint: None,
            });
            p
        };
        let root_key = key();
        let root = self_signed(&params("root", true), &root_key).expect("root");
        let sub_key = key();
        let sub = issue(
            &params("sub", true),
            sub_key.public_key_spki(),
            Some(&root),
            &root_key,
        )
        .expect("sub");
        let ee = issue(
            &params("ee", false),
            key().public_key_spki(),
            Some(&sub),
            &sub_key,
        )
        .expect("ee");
        let pin = |c: &Certificate| Pin::DomainCert(c.to_der().expect("der"));
        assert_eq!(
            pinned_root(Transport::Coaps, &pin(&root)),
            Some(root.clone())
        );
        assert_eq!(pinned_root(Transport::Https, &pin(&root)), None);
        // An intermediate CA or an end entity leaves the pledge to ask /crts.
        assert_eq!(pinned_root(Transport::Coaps, &pin(&sub)), None);
        assert_eq!(pinned_root(Transport::Coaps, &pin(&ee)), None);
        // A self-issued end entity is not a CA, whatever it signed.
        let lone_key = key();
        let lone = self_signed(&params("lone", false), &lone_key).expect("lone");
        assert_eq!(pinned_root(Transport::Coaps, &pin(&lone)), None);
        assert_eq!(
            pinned_root(
                Transport::Coaps,
                &Pin::DomainPubk(root_key.public_key_spki().to_vec())
            ),
            None
        );
        assert_eq!(
            pinned_root(Transport::Coaps, &Pin::DomainCert(vec![0x30, 0])),
            None
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn voucher_body_decoding_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            for format in [Format::Cms, Format::Jws, Format::Cose] {
                let _ = voucher_bytes(format, body.clone());
            }
        }
    }

    #[test]
    fn voucher_bodies_in_base64_are_decoded_raw_ones_kept() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x05];
        assert_eq!(voucher_bytes(Format::Cms, der.clone()), der);
        assert_eq!(voucher_bytes(Format::Cms, b"MAMCAQU=".to_vec()), der);
        let jws = br#" {"payload":"x"}"#.to_vec();
        assert_eq!(voucher_bytes(Format::Jws, jws.clone()), jws);
        let cose = vec![0xd2, 0x84];
        assert_eq!(voucher_bytes(Format::Cose, cose.clone()), cose);
        // Not base64 either: left as it is, for the verifier to reject.
        assert_eq!(voucher_bytes(Format::Cms, b"!!".to_vec()), b"!!".to_vec());
    }
}
