//! The registrar's side of RFC 8995 §5.3 and §5.5: checking the pledge voucher-request,
//! building the registrar voucher-request, and checking the voucher before relaying it.

use crate::envelope::{self, EnvelopeError, Format};
use crate::keys::Signer;
use crate::pki::chain::{ChainError, TimeCheck, TrustPolicy, same_key, validate_chain};
use crate::pki::ext::{idevid_issuer, serial_number};
use crate::voucher::{DecodeError, EncodeError, Voucher, VoucherRequest};
use der::{Decode, Encode};
use x509_cert::Certificate;

/// Why a pledge voucher-request was refused, with the status of 8995 §5.3 / §5.6.
#[derive(Debug, thiserror::Error)]
pub enum PledgeRequestError {
    #[error("no TLS client certificate")]
    NoClientCertificate,
    #[error("TLS client certificate is not an IDevID of a known manufacturer: {0}")]
    UnknownManufacturer(ChainError),
    #[error("IDevID subject has no serialNumber")]
    NoSerialNumber,
    #[error("malformed voucher-request: {0}")]
    Malformed(EnvelopeError),
    #[error("voucher-request is not signed by the TLS client's key: {0}")]
    SignerNotTlsClient(EnvelopeError),
    #[error("voucher-request payload: {0}")]
    Payload(#[from] DecodeError),
    #[error("serial-number {request:?} in the request differs from the IDevID's {idevid:?}")]
    SerialMismatch { idevid: String, request: String },
    #[error("proximity-registrar-cert (or -pubk, -pubk-sha256) is missing")]
    NoProximityCert,
    #[error("proximity-registrar-cert (or -pubk, -pubk-sha256) is not this registrar's")]
    ProximityMismatch,
    #[error("assertion {0:?} in a pledge voucher-request: RFC 8995 §5.2 requires \"proximity\"")]
    AssertionNotProximity(String),
}

impl PledgeRequestError {
    /// Whether this is a proximity failure (8995 §5.3: possible man-in-the-middle), after
    /// which the registrar closes the connection.
    pub fn is_proximity_failure(&self) -> bool {
        matches!(
            self,
            Self::NoProximityCert | Self::ProximityMismatch | Self::AssertionNotProximity(_)
        )
    }

    /// The HTTP status for this refusal (8995 §5.3, §5.6).
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) | Self::Payload(_) => 400,
            // 8995 §5.3: a proximity failure (possible MITM) is answered with 401.
            Self::NoClientCertificate
            | Self::NoProximityCert
            | Self::ProximityMismatch
            | Self::AssertionNotProximity(_) => 401,
            Self::UnknownManufacturer(_)
            | Self::NoSerialNumber
            | Self::SignerNotTlsClient(_)
            | Self::SerialMismatch { .. } => 403,
        }
    }
}

/// A pledge voucher-request that passed the registrar's checks.
#[derive(Clone, Debug)]
pub struct CheckedPledgeRequest {
    pub format: Format,
    /// The signed request exactly as received (becomes `prior-signed-voucher-request`).
    pub raw: Vec<u8>,
    pub request: VoucherRequest,
    /// The pledge's IDevID (the TLS client certificate) and its validated chain.
    pub idevid_chain: Vec<Certificate>,
    /// The serial number, taken from the IDevID (8995 §5.5), never from the request.
    pub serial_number: String,
}

impl CheckedPledgeRequest {
    /// The pledge's IDevID.
    pub fn idevid(&self) -> Option<&Certificate> {
        self.idevid_chain.first()
    }
}

/// Check a pledge voucher-request (8995 §5.3): the TLS client certificate is an IDevID of a
/// known manufacturer, it signed the request, its serialNumber equals the request's
/// `serial-number`, `proximity-registrar-cert` is the certificate this registrar presented
/// (`registrar_cert_der`) or `proximity-registrar-pubk` (`-sha256`) its key (cBRSKI §9), and
/// `assertion`, when present, is `proximity` (8995 §5.2).
///
/// An absent `assertion` is accepted: the voucher-request examples of RFC 8995 (JWS
/// appendix, cBRSKI) omit it, and `proximity-registrar-cert`, which is required here, is
/// the proximity evidence itself; the registrar voucher-request then carries none either.
pub fn check_pledge_voucher_request(
    format: Format,
    body: &[u8],
    tls_client_chain: &[Certificate],
    registrar_cert_der: &[u8],
    manufacturers: &TrustPolicy,
) -> Result<CheckedPledgeRequest, PledgeRequestError> {
    check_pledge_voucher_request_with(
        format,
        body,
        tls_client_chain,
        registrar_cert_der,
        manufacturers,
        &|chain| chain.first().and_then(serial_number),
    )
}

/// [`check_pledge_voucher_request`] with the serial number read by `serial_of` from the
/// validated IDevID chain (end entity first, manufacturer anchor last), for manufacturers that
/// put it elsewhere than the subject serialNumber (8995 §2.3.1).
pub fn check_pledge_voucher_request_with(
    format: Format,
    body: &[u8],
    tls_client_chain: &[Certificate],
    registrar_cert_der: &[u8],
    manufacturers: &TrustPolicy,
    serial_of: &dyn Fn(&[Certificate]) -> Option<String>,
) -> Result<CheckedPledgeRequest, PledgeRequestError> {
    let client = tls_client_chain
        .first()
        .ok_or(PledgeRequestError::NoClientCertificate)?;
    let idevid_chain: Vec<Certificate> =
        validate_chain(client, &tls_client_chain[1..], manufacturers)
            .map_err(PledgeRequestError::UnknownManufacturer)?
            .into_iter()
            .cloned()
            .collect();
    let serial = serial_of(&idevid_chain).ok_or(PledgeRequestError::NoSerialNumber)?;

    // The only key trusted to sign the request is the TLS client's (8995 §5.3).
    let only_client = TrustPolicy::new(vec![client.clone()]).with_time(TimeCheck::Skip);
    let verified = envelope::verify(format, body, &only_client, std::slice::from_ref(client))
        .map_err(|e| match e {
            EnvelopeError::Malformed { .. } | EnvelopeError::UnsupportedAlgorithm(_) => {
                PledgeRequestError::Malformed(e)
            }
            other => PledgeRequestError::SignerNotTlsClient(other),
        })?;
    if !verified.signer().is_some_and(|s| same_key(s, client)) {
        return Err(PledgeRequestError::SignerNotTlsClient(
            EnvelopeError::SignerNotFound,
        ));
    }
    let request = VoucherRequest::from_payload(format, &verified.payload)?;
    if request.serial_number != serial {
        return Err(PledgeRequestError::SerialMismatch {
            idevid: serial,
            request: request.serial_number,
        });
    }
    check_proximity(&request, registrar_cert_der)?;
    match request.assertion {
        None | Some(crate::voucher::Assertion::Proximity) => {}
        Some(other) => {
            return Err(PledgeRequestError::AssertionNotProximity(
                other.as_str().to_string(),
            ));
        }
    }
    Ok(CheckedPledgeRequest {
        format,
        raw: body.to_vec(),
        request,
        idevid_chain,
        serial_number: serial,
    })
}

/// 8995 §5.3, cBRSKI §9: each proximity leaf the request carries names this registrar: its
/// certificate, its SubjectPublicKeyInfo, or that key's SHA-256; at least one is present.
fn check_proximity(
    request: &VoucherRequest,
    registrar_cert_der: &[u8],
) -> Result<(), PledgeRequestError> {
    let forms = [
        request.proximity_registrar_cert.as_deref(),
        request.proximity_registrar_pubk.as_deref(),
        request.proximity_registrar_pubk_sha256.as_deref(),
    ];
    if forms.iter().all(Option::is_none) {
        return Err(PledgeRequestError::NoProximityCert);
    }
    let spki = Certificate::from_der(registrar_cert_der)
        .ok()
        .and_then(|c| spki_der(&c))
        .ok_or(PledgeRequestError::ProximityMismatch)?;
    let sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki);
    let ours = [registrar_cert_der, &spki[..], sha256.as_ref()];
    if forms
        .iter()
        .zip(ours)
        .all(|(f, o)| f.is_none_or(|f| f == o))
    {
        Ok(())
    } else {
        Err(PledgeRequestError::ProximityMismatch)
    }
}

/// The DER SubjectPublicKeyInfo of `cert`.
fn spki_der(cert: &Certificate) -> Option<Vec<u8>> {
    cert.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .ok()
}

/// Build the registrar voucher-request (8995 §5.5): serial and `idevid-issuer` from the IDevID,
/// nonce and assertion carried forward, the whole signed pledge request as
/// `prior-signed-voucher-request`, and no `proximity-registrar-cert`.
pub fn build_registrar_voucher_request(
    pledge: &CheckedPledgeRequest,
    now: time::OffsetDateTime,
) -> VoucherRequest {
    let mut r = VoucherRequest::new(pledge.serial_number.clone());
    r.created_on = Some(super::date_time(now));
    r.nonce = pledge.request.nonce.clone();
    r.assertion = pledge.request.assertion;
    r.idevid_issuer = pledge.idevid().map(idevid_issuer);
    r.prior_signed_voucher_request = Some(pledge.raw.clone());
    r
}

/// Build and sign the registrar voucher-request in the pledge's format, carrying
/// `registrar_chain` (registrar certificate first, up to the domain CA) for the MASA to pin from.
/// A COSE request also carries the pledge's chain, since a COSE pledge request has none
/// (cBRSKI §8.1, §9.2.1).
pub fn sign_registrar_voucher_request(
    pledge: &CheckedPledgeRequest,
    now: time::OffsetDateTime,
    signer: &dyn Signer,
    registrar_chain: &[Certificate],
) -> Result<Vec<u8>, RelayError> {
    let request = build_registrar_voucher_request(pledge, now);
    let payload = request.to_payload(pledge.format)?;
    let mut carried = registrar_chain.to_vec();
    if pledge.format == Format::Cose {
        carried.extend(pledge.idevid_chain.iter().cloned());
    }
    Ok(envelope::sign(pledge.format, &payload, signer, &carried)?)
}

/// Why the registrar will not relay a voucher from the MASA.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot encode the registrar voucher-request: {0}")]
    Encode(#[from] EncodeError),
    #[error("voucher from the MASA does not verify: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error("voucher from the MASA: {0}")]
    Payload(#[from] DecodeError),
    #[error("voucher from the MASA is for serial-number {0:?}")]
    SerialMismatch(String),
    #[error("voucher from the MASA does not carry the pledge's nonce")]
    NonceMismatch,
    #[error(
        "voucher from the MASA pins a certificate or key that is not in this registrar's chain"
    )]
    PinNotOurs,
    #[error("voucher from the MASA carries a nonce; a nonceless voucher was requested")]
    NotNonceless,
    #[error("nonceless voucher from the MASA has no expires-on")]
    NoExpiry,
    #[error("nonceless voucher from the MASA expired at {0}")]
    Expired(String),
}

/// Check the MASA's voucher before relaying it (8995 §5.6): signed by the pledge's
/// manufacturer, for this pledge and nonce, pinning a certificate of this registrar's chain.
pub fn check_voucher_for_relay(
    format: Format,
    bytes: &[u8],
    pledge: &CheckedPledgeRequest,
    manufacturers: &TrustPolicy,
    registrar_chain: &[Certificate],
) -> Result<Voucher, RelayError> {
    let voucher = verified_voucher(
        format,
        bytes,
        &pledge.serial_number,
        manufacturers,
        registrar_chain,
    )?;
    if voucher.nonce.is_some() && voucher.nonce != pledge.request.nonce {
        return Err(RelayError::NonceMismatch);
    }
    Ok(voucher)
}

/// Check a nonceless voucher obtained ahead of time (8995 §7.2): as [`check_voucher_for_relay`]
/// for `serial`, without a nonce, with an `expires-on` later than `now`.
pub fn check_nonceless_voucher(
    format: Format,
    bytes: &[u8],
    serial: &str,
    manufacturers: &TrustPolicy,
    registrar_chain: &[Certificate],
    now: time::OffsetDateTime,
) -> Result<Voucher, RelayError> {
    let voucher = verified_voucher(format, bytes, serial, manufacturers, registrar_chain)?;
    if voucher.nonce.is_some() {
        return Err(RelayError::NotNonceless);
    }
    let expires = voucher.expires_on.as_ref().ok_or(RelayError::NoExpiry)?;
    if expires.instant() <= now {
        return Err(RelayError::Expired(expires.as_str().to_string()));
    }
    Ok(voucher)
}

/// A voucher signed under `manufacturers`, for `serial`, pinning a certificate of this
/// registrar's chain, or this registrar's key (cBRSKI §8.3).
fn verified_voucher(
    format: Format,
    bytes: &[u8],
    serial: &str,
    manufacturers: &TrustPolicy,
    registrar_chain: &[Certificate],
) -> Result<Voucher, RelayError> {
    let verified = envelope::verify(format, bytes, manufacturers, &[])?;
    let voucher = Voucher::from_payload(format, &verified.payload)?;
    if voucher.serial_number != serial {
        return Err(RelayError::SerialMismatch(voucher.serial_number));
    }
    if let Some(pinned) = &voucher.pinned_domain_cert {
        let ours = registrar_chain
            .iter()
            .any(|c| c.to_der().is_ok_and(|d| &d == pinned));
        if !ours {
            return Err(RelayError::PinNotOurs);
        }
    }
    let key = registrar_chain.first().and_then(spki_der);
    if let Some(pubk) = &voucher.pinned_domain_pubk {
        if key.as_ref() != Some(pubk) {
            return Err(RelayError::PinNotOurs);
        }
    }
    if let Some(hash) = &voucher.pinned_domain_pubk_sha256 {
        let ours = key.is_some_and(|k| {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &k).as_ref() == hash.as_slice()
        });
        if !ours {
            return Err(RelayError::PinNotOurs);
        }
    }
    Ok(voucher)
}
