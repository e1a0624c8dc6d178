//! The pledge's side of RFC 8995 §5.2 and §5.6.

use crate::envelope::{self, EnvelopeError, Format};
use crate::keys::Signer;
use crate::pki::chain::{ChainError, TimeCheck, TrustPolicy, validate_chain};
use crate::pki::crl::RevocationError;
use crate::voucher::{
    Assertion, DecodeError, EncodeError, Nonce, Pin, PledgeExpectations, RandomError, Voucher,
    VoucherCheckError, VoucherRequest, check_signing_time, validate_voucher,
};
use der::{Decode, Encode};
use x509_cert::Certificate;

/// Why the pledge could not build a request or did not accept a voucher.
#[derive(Debug, thiserror::Error)]
pub enum PledgeError {
    #[error("no random nonce: {0}")]
    Random(#[from] RandomError),
    #[error("cannot encode the voucher-request: {0}")]
    Encode(#[from] EncodeError),
    #[error("voucher signature: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error("voucher payload: {0}")]
    Payload(#[from] DecodeError),
    #[error("voucher rejected: {0}")]
    Voucher(#[from] VoucherCheckError),
    #[error("registrar certificate does not validate against the voucher's pin: {0}")]
    RegistrarNotPinned(String),
    #[error("registrar presented no certificate")]
    NoRegistrarCertificate,
    /// The voucher demands revocation checks of the domain certificates (RFC 8366bis
    /// `domain-cert-revocation-checks`) and they failed or could not be made.
    #[error("domain-cert-revocation-checks: {0}")]
    Revocation(#[from] RevocationError),
}

/// A signed pledge voucher-request, kept for its nonce and for resending the identical bytes
/// after a 202 (8995 §5.6).
#[derive(Clone, Debug)]
pub struct PledgeVoucherRequest {
    pub format: Format,
    pub bytes: Vec<u8>,
    pub nonce: Nonce,
    pub request: VoucherRequest,
}

/// Build and sign the pledge voucher-request (8995 §5.2): a fresh nonce, `assertion`
/// proximity, the pledge's serial, and `proximity-registrar-cert` = the registrar's TLS end-entity
/// certificate. `created_on` is given when the pledge has a clock it trusts.
pub fn build_pledge_voucher_request(
    format: Format,
    serial_number: &str,
    registrar_cert_der: &[u8],
    signer: &dyn Signer,
    idevid_chain: &[Certificate],
    created_on: Option<time::OffsetDateTime>,
) -> Result<PledgeVoucherRequest, PledgeError> {
    let nonce = Nonce::generate()?;
    let mut request = VoucherRequest::new(serial_number);
    request.assertion = Some(Assertion::Proximity);
    request.nonce = Some(nonce.clone());
    request.created_on = created_on.map(super::date_time);
    request.proximity_registrar_cert = Some(registrar_cert_der.to_vec());
    let payload = request.to_payload(format)?;
    // COSE PVRs carry no certificates: the registrar identifies the pledge by its DTLS client
    // certificate (cBRSKI §9.2.2). CMS and JWS carry the IDevID for the MASA (8995 §3).
    let chain = if format == Format::Cose {
        &[][..]
    } else {
        idevid_chain
    };
    let bytes = envelope::sign(format, &payload, signer, chain)?;
    Ok(PledgeVoucherRequest {
        format,
        bytes,
        nonce,
        request,
    })
}

/// A voucher the pledge accepted.
#[derive(Clone, Debug)]
pub struct AcceptedVoucher {
    pub voucher: Voucher,
    pub pin: Pin,
    /// The MASA's validated signing chain.
    pub masa_chain: Vec<Certificate>,
}

impl AcceptedVoucher {
    /// RFC 8366bis §8.4 `domain-cert-revocation-checks`: the pledge "MUST (true) or MUST NOT
    /// (false) verify the revocation status" of the domain certificates. Absent, normal PKIX
    /// behaviour applies, which this pledge practises without revocation checking.
    pub fn demands_revocation_checks(&self) -> bool {
        self.voucher.domain_cert_revocation_checks == Some(true)
    }
}

/// Verify a voucher (8995 §5.6.1): signature with the manufacturer's trust anchors and its
/// signingTime (§2.6.1), then serial, `idevid-issuer`, nonce, times, assertion and pin by
/// `expected`.
pub fn accept_voucher(
    format: Format,
    bytes: &[u8],
    manufacturer: &TrustPolicy,
    expected: &PledgeExpectations,
) -> Result<AcceptedVoucher, PledgeError> {
    let verified = envelope::verify(format, bytes, manufacturer, &[])?;
    check_signing_time(verified.signing_time, expected)?;
    let voucher = Voucher::from_payload(format, &verified.payload)?;
    let pin = validate_voucher(&voucher, expected)?;
    Ok(AcceptedVoucher {
        voucher,
        pin,
        masa_chain: verified.chain,
    })
}

/// The root CA a voucher pins (a self-signed CA certificate as `pinned-domain-cert`), which a
/// constrained pledge may take as its EST trust anchor before `/crts` (cBRSKI §6.7.1).
pub fn pinned_root_ca(pin: &Pin) -> Option<Certificate> {
    let Pin::DomainCert(der) = pin else {
        return None;
    };
    let cert = Certificate::from_der(der).ok()?;
    let tbs = cert.tbs_certificate();
    let is_ca = crate::pki::chain::extension::<x509_cert::ext::pkix::BasicConstraints>(&cert)
        .ok()
        .flatten()
        .is_some_and(|bc| bc.ca);
    (is_ca && tbs.subject() == tbs.issuer() && crate::pki::chain::signed_by(&cert, &cert))
        .then_some(cert)
}

/// Complete the provisional TLS state (8995 §5.6.2): the registrar's chain (end entity first, as
/// presented in the handshake) must validate against the pin as the sole trust anchor.
pub fn validate_registrar(
    pin: &Pin,
    registrar_chain_der: &[Vec<u8>],
    time: TimeCheck,
) -> Result<(), PledgeError> {
    let chain: Vec<Certificate> = registrar_chain_der
        .iter()
        .filter_map(|d| Certificate::from_der(d).ok())
        .collect();
    let leaf = chain.first().ok_or(PledgeError::NoRegistrarCertificate)?;
    let spki = leaf
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| PledgeError::RegistrarNotPinned(e.to_string()))?;
    match pin {
        Pin::DomainCert(der) => {
            let anchor = Certificate::from_der(der)
                .map_err(|e| PledgeError::RegistrarNotPinned(format!("pinned certificate: {e}")))?;
            validate_chain(
                leaf,
                &chain[1..],
                &TrustPolicy::new(vec![anchor]).with_time(time),
            )
            .map(|_| ())
            .map_err(|e: ChainError| PledgeError::RegistrarNotPinned(e.to_string()))
        }
        Pin::DomainPubk(pubk) => (pubk == &spki).then_some(()).ok_or_else(|| {
            PledgeError::RegistrarNotPinned("key differs from pinned-domain-pubk".into())
        }),
        Pin::DomainPubkSha256(hash) => {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki);
            (digest.as_ref() == hash.as_slice())
                .then_some(())
                .ok_or_else(|| {
                    PledgeError::RegistrarNotPinned(
                        "key differs from pinned-domain-pubk-sha256".into(),
                    )
                })
        }
    }
}
