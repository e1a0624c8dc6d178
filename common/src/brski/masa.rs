//! The MASA's side of RFC 8995 §5.5 and §5.6: checking the registrar voucher-request and its
//! prior-signed pledge request, and building the voucher.

use super::pinning::{PinError, choose_pin, pinned_certificate};
use crate::envelope::{self, EnvelopeError, Format};
use crate::oid::ID_KP_CMC_RA;
use crate::pki::chain::{
    ChainError, TimeCheck, TrustPolicy, check_time, same_key, signed_by, validate_chain,
};
use crate::pki::ext::{idevid_issuer, serial_number};
use crate::voucher::{Assertion, DecodeError, Nonce, Pin, PinForm, Voucher, VoucherRequest};
use der::{Decode, Encode};
use x509_cert::Certificate;

/// Why a registrar voucher-request was refused, with the status of 8995 §5.6.
#[derive(Debug, thiserror::Error)]
pub enum RegistrarRequestError {
    #[error("malformed voucher-request: {0}")]
    Malformed(EnvelopeError),
    #[error("voucher-request payload: {0}")]
    Payload(#[from] DecodeError),
    #[error("voucher-request signature: {0}")]
    Signature(EnvelopeError),
    #[error("registrar certificate lacks id-kp-cmcRA")]
    NotRegistrationAuthority,
    #[error("registrar certificate: {0}")]
    RegistrarCertificate(ChainError),
    #[error("prior-signed-voucher-request is required")]
    NoPriorRequest,
    #[error("prior-signed-voucher-request is not signed by an IDevID of this manufacturer: {0}")]
    UnknownDevice(EnvelopeError),
    #[error("prior-signed-voucher-request: {0}")]
    PriorPayload(DecodeError),
    #[error("serial-number {request:?} differs from the pledge IDevID's {idevid:?}")]
    SerialMismatch { idevid: String, request: String },
    #[error("nonce differs from the pledge's")]
    NonceMismatch,
    #[error("idevid-issuer differs from the pledge IDevID's")]
    IdevidIssuerMismatch,
    #[error("prior-signed-voucher-request is signed with a certificate other than the device's")]
    NotTheKnownIdevid,
    #[error("the pledge's proximity-registrar-cert is not in the registrar's chain")]
    ProximityMismatch,
}

impl RegistrarRequestError {
    /// The HTTP status for this refusal (8995 §5.6: 403 for a request not signed correctly or
    /// inconsistent, 404 for a device the MASA does not know).
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) | Self::Payload(_) | Self::PriorPayload(_) => 400,
            Self::UnknownDevice(_) | Self::NotTheKnownIdevid => 404,
            Self::Signature(_)
            | Self::NotRegistrationAuthority
            | Self::RegistrarCertificate(_)
            | Self::NoPriorRequest
            | Self::SerialMismatch { .. }
            | Self::NonceMismatch
            | Self::IdevidIssuerMismatch
            | Self::ProximityMismatch => 403,
        }
    }
}

/// A registrar voucher-request that passed the MASA's checks.
#[derive(Clone, Debug)]
pub struct CheckedRegistrarRequest {
    pub format: Format,
    pub request: VoucherRequest,
    /// The registrar's chain as carried in the request: registrar certificate first.
    pub registrar_chain: Vec<Certificate>,
    /// The pledge's IDevID from the prior-signed request, when one was carried.
    pub idevid: Option<Certificate>,
    pub serial_number: String,
    pub nonce: Option<Nonce>,
    /// Whether the pledge's signed request proved proximity to this registrar (8995 §5.5.5).
    pub proximity: bool,
    /// How the pledge's request named the registrar (`proximity-registrar-cert`, `-pubk` or
    /// `-pubk-sha256`), when it did: the voucher pins in the same form (cBRSKI §8.3).
    pub proximity_form: Option<PinForm>,
}

impl CheckedRegistrarRequest {
    /// The certificate a nonced voucher pins (8995 §5.5.2, cBRSKI §8.2): the registrar's
    /// issuing CA (the most specific CA) when the request carries one, else the registrar
    /// certificate itself.
    pub fn domain_cert(&self) -> Option<&Certificate> {
        pinned_certificate(&self.registrar_chain, true, None)
    }

    /// The voucher's pin (cBRSKI §8.2, §8.3; see [`choose_pin`]): nonced when the request
    /// carries a nonce; `ceiling` is the highest certificate the MASA's policy lets a nonceless
    /// voucher pin for this domain.
    pub fn pin(&self, ceiling: Option<&Certificate>) -> Result<Pin, PinError> {
        choose_pin(
            &self.registrar_chain,
            self.nonce.is_some(),
            self.proximity_form,
            ceiling,
        )
    }
}

/// Whose signature the MASA expects on the prior-signed pledge voucher-request (8995 §5.5.5:
/// verified with the pledge's IDevID, as carried in the request or as known to the MASA).
#[derive(Clone, Copy, Debug)]
pub enum PledgeIdevid<'a> {
    /// Any IDevID that validates to these manufacturer anchors.
    Manufacturer(&'a TrustPolicy),
    /// Exactly `idevid`, the certificate this MASA recorded when the device was minted: only a
    /// request signed with its key and carrying these exact bytes is accepted. When one of the
    /// `manufacturer` anchors issued it (and is within its validity period), the MASA's own
    /// signature on it is not verified again (its validity period is, at the `manufacturer`
    /// policy's time); otherwise its path to an anchor is validated as for [`Self::Manufacturer`].
    Known {
        idevid: &'a Certificate,
        manufacturer: &'a TrustPolicy,
    },
}

impl PledgeIdevid<'_> {
    /// The manufacturer anchors either way.
    fn manufacturer(&self) -> &TrustPolicy {
        match self {
            Self::Manufacturer(m)
            | Self::Known {
                manufacturer: m, ..
            } => m,
        }
    }
}

/// A registrar voucher-request whose own signature checked out (8995 §5.5.1–§5.5.4); the
/// prior-signed pledge request is checked next, by [`Self::check_pledge_request`].
#[derive(Debug)]
pub struct SignedRegistrarRequest {
    checked: CheckedRegistrarRequest,
    /// Every certificate the request carried (a COSE pledge request's IDevID rides here).
    carried: Vec<Certificate>,
}

/// Check a registrar voucher-request (8995 §5.5.1–§5.5.6): signature by a certificate carried in
/// the request (an unknown domain CA is a temporary trust anchor, §5.5.2), id-kp-cmcRA on the
/// signer (§5.5.4), then the prior-signed pledge request: signed by an IDevID of this
/// manufacturer whose serial is the request's (§5.5.5), same nonce (§5.5.6), matching
/// `idevid-issuer`, and `proximity-registrar-cert` whose key is in the registrar's chain.
pub fn check_registrar_voucher_request(
    format: Format,
    body: &[u8],
    manufacturer: &TrustPolicy,
    time: TimeCheck,
    require_prior_request: bool,
) -> Result<CheckedRegistrarRequest, RegistrarRequestError> {
    verify_registrar_voucher_request(format, body, time)?.check_pledge_request(
        PledgeIdevid::Manufacturer(manufacturer),
        require_prior_request,
    )
}

/// The first half of [`check_registrar_voucher_request`]: the registrar's signature, its
/// id-kp-cmcRA and the payload (8995 §5.5.1–§5.5.4), so that the MASA can look the device up by
/// serial-number before checking the pledge's request.
pub fn verify_registrar_voucher_request(
    format: Format,
    body: &[u8],
    time: TimeCheck,
) -> Result<SignedRegistrarRequest, RegistrarRequestError> {
    let parsed = envelope::parse(format, body).map_err(RegistrarRequestError::Malformed)?;
    let policy = TrustPolicy::new(temporary_anchors(&parsed.certificates)).with_time(time);
    let verified = envelope::verify(format, body, &policy, &[]).map_err(|e| match e {
        EnvelopeError::Malformed { .. } => RegistrarRequestError::Malformed(e),
        other => RegistrarRequestError::Signature(other),
    })?;
    let signer = verified
        .signer()
        .ok_or(RegistrarRequestError::Signature(
            EnvelopeError::SignerNotFound,
        ))?
        .clone();
    if !crate::pki::ext::has_eku(&signer, ID_KP_CMC_RA) {
        return Err(RegistrarRequestError::NotRegistrationAuthority);
    }
    let registrar_chain = verified.chain.clone();
    let request = VoucherRequest::from_payload(format, &verified.payload)?;
    Ok(SignedRegistrarRequest {
        checked: CheckedRegistrarRequest {
            format,
            serial_number: request.serial_number.clone(),
            nonce: request.nonce.clone(),
            request,
            registrar_chain,
            idevid: None,
            proximity: false,
            proximity_form: None,
        },
        carried: parsed.certificates,
    })
}

/// The temporary trust anchors of a registrar voucher-request (8995 §5.5.2): the carried
/// certificates that no other carried certificate issued, the tops of the chains carried. A COSE
/// request's `x5bag` is unordered and also holds the pledge's chain (cBRSKI §8.1, §9.2.1), so
/// neither the position of a certificate nor its being self-signed finds the registrar's top.
fn temporary_anchors(carried: &[Certificate]) -> Vec<Certificate> {
    carried
        .iter()
        .filter(|c| {
            let issuer = c.tbs_certificate().issuer();
            !carried.iter().any(|other| {
                other.tbs_certificate().subject() == issuer
                    && !same_key(other, c)
                    && signed_by(c, other)
            })
        })
        .cloned()
        .collect()
}

impl SignedRegistrarRequest {
    /// The serial-number the registrar asks a voucher for.
    pub fn serial_number(&self) -> &str {
        &self.checked.serial_number
    }

    /// The certificate that signed the request (the registrar's, §5.5.4), for matching the
    /// TLS client certificate (§5.4).
    pub fn registrar_certificate(&self) -> Option<&Certificate> {
        self.checked.registrar_chain.first()
    }

    /// The second half of [`check_registrar_voucher_request`]: the prior-signed pledge request
    /// (8995 §5.5.5, §5.5.6), signed as `idevid` says.
    pub fn check_pledge_request(
        self,
        idevid: PledgeIdevid<'_>,
        require_prior_request: bool,
    ) -> Result<CheckedRegistrarRequest, RegistrarRequestError> {
        let Self {
            mut checked,
            carried,
        } = self;
        let Some(prior) = checked.request.prior_signed_voucher_request.clone() else {
            if require_prior_request {
                return Err(RegistrarRequestError::NoPriorRequest);
            }
            return Ok(checked);
        };
        let prior_format = Format::detect(&prior).unwrap_or(checked.format);
        // A COSE pledge request carries no certificates: its IDevID rides in the registrar
        // request's x5bag (cBRSKI §9.2.1).
        // The known IDevID, and whether it is trusted directly: its key is the only anchor
        // when a current anchor issued it; otherwise its path is validated in full.
        let (known, direct) = match idevid {
            PledgeIdevid::Manufacturer(_) => (None, None),
            PledgeIdevid::Known {
                idevid,
                manufacturer,
            } => {
                let issuer = idevid.tbs_certificate().issuer();
                let current_anchor = manufacturer.anchors.iter().any(|a| {
                    a.tbs_certificate().subject() == issuer
                        && check_time(a, manufacturer.time).is_ok()
                });
                let direct = current_anchor.then(|| {
                    let only = TrustPolicy::new(vec![idevid.clone()]).with_time(manufacturer.time);
                    let mut candidates = vec![idevid.clone()];
                    candidates.extend(carried.iter().cloned());
                    (only, candidates)
                });
                (Some(idevid), direct)
            }
        };
        let pledge = match &direct {
            Some((only, candidates)) => envelope::verify(prior_format, &prior, only, candidates)
                .map_err(|e| match e {
                    EnvelopeError::Untrusted(ChainError::Untrusted { .. }) => {
                        RegistrarRequestError::NotTheKnownIdevid
                    }
                    other => RegistrarRequestError::UnknownDevice(other),
                })?,
            None => envelope::verify(prior_format, &prior, idevid.manufacturer(), &carried)
                .map_err(RegistrarRequestError::UnknownDevice)?,
        };
        if known.is_some_and(|k| pledge.signer() != Some(k)) {
            return Err(RegistrarRequestError::NotTheKnownIdevid);
        }
        let idevid = pledge
            .signer()
            .ok_or(RegistrarRequestError::UnknownDevice(
                EnvelopeError::SignerNotFound,
            ))?
            .clone();
        let pvr = VoucherRequest::from_payload(prior_format, &pledge.payload)
            .map_err(RegistrarRequestError::PriorPayload)?;
        let idevid_serial = serial_number(&idevid).unwrap_or_default();
        if idevid_serial != checked.serial_number {
            return Err(RegistrarRequestError::SerialMismatch {
                idevid: idevid_serial,
                request: checked.serial_number,
            });
        }
        if pvr.nonce != checked.nonce {
            return Err(RegistrarRequestError::NonceMismatch);
        }
        if let Some(issuer) = &checked.request.idevid_issuer {
            if *issuer != idevid_issuer(&idevid) {
                return Err(RegistrarRequestError::IdevidIssuerMismatch);
            }
        }
        checked.proximity = proximity_in_chain(&pvr, &checked.registrar_chain)?;
        checked.proximity_form = pvr.proximity_form();
        checked.idevid = Some(idevid);
        Ok(checked)
    }
}

/// 8995 §5.5.5: the key of the pledge's `proximity-registrar-cert` (or `-pubk`, `-pubk-sha256`)
/// must be a key of the registrar's chain. `Ok(false)` when the pledge asked for no proximity.
fn proximity_in_chain(
    pvr: &VoucherRequest,
    chain: &[Certificate],
) -> Result<bool, RegistrarRequestError> {
    let spkis: Vec<Vec<u8>> = chain
        .iter()
        .filter_map(|c| c.tbs_certificate().subject_public_key_info().to_der().ok())
        .collect();
    if let Some(der) = &pvr.proximity_registrar_cert {
        let cert =
            Certificate::from_der(der).map_err(|_| RegistrarRequestError::ProximityMismatch)?;
        return if chain.iter().any(|c| same_key(c, &cert)) {
            Ok(true)
        } else {
            Err(RegistrarRequestError::ProximityMismatch)
        };
    }
    if let Some(pubk) = &pvr.proximity_registrar_pubk {
        return if spkis.iter().any(|s| s == pubk) {
            Ok(true)
        } else {
            Err(RegistrarRequestError::ProximityMismatch)
        };
    }
    if let Some(hash) = &pvr.proximity_registrar_pubk_sha256 {
        let found = spkis.iter().any(|s| {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s).as_ref() == hash.as_slice()
        });
        return if found {
            Ok(true)
        } else {
            Err(RegistrarRequestError::ProximityMismatch)
        };
    }
    Ok(false)
}

/// Build the voucher for a checked request (8995 §5.6): serial, nonce, assertion and
/// `pinned-domain-cert`; `expires-on` for nonceless vouchers. `idevid-issuer` is omitted
/// because serial numbers are unique within one MASA (8366bis §6.1).
pub fn build_voucher(
    checked: &CheckedRegistrarRequest,
    assertion: Assertion,
    pinned_domain_cert: &Certificate,
    now: time::OffsetDateTime,
    expires_on: Option<time::OffsetDateTime>,
) -> Result<Voucher, der::Error> {
    let pin = Pin::DomainCert(pinned_domain_cert.to_der()?);
    Ok(build_voucher_pinning(
        checked, assertion, &pin, now, expires_on,
    ))
}

/// [`build_voucher`] with any form of pin (`pinned-domain-cert`, `-pubk` or `-pubk-sha256`,
/// cBRSKI §8.3; see [`CheckedRegistrarRequest::pin`]).
pub fn build_voucher_pinning(
    checked: &CheckedRegistrarRequest,
    assertion: Assertion,
    pin: &Pin,
    now: time::OffsetDateTime,
    expires_on: Option<time::OffsetDateTime>,
) -> Voucher {
    let mut v = Voucher::new(checked.serial_number.clone());
    v.assertion = Some(assertion);
    v.created_on = Some(super::date_time(now));
    v.nonce = checked.nonce.clone();
    v.expires_on = expires_on.map(super::date_time);
    match pin {
        Pin::DomainCert(der) => v.pinned_domain_cert = Some(der.clone()),
        Pin::DomainPubk(spki) => v.pinned_domain_pubk = Some(spki.clone()),
        Pin::DomainPubkSha256(hash) => v.pinned_domain_pubk_sha256 = Some(hash.clone()),
    }
    v.domain_cert_revocation_checks = Some(false);
    v
}

/// Validate a certificate chain carried by a registrar against a configured domain anchor
/// (for the claimed-ownership policy: the request must come from the claimed domain).
pub fn chain_reaches(chain: &[Certificate], anchor: &Certificate, time: TimeCheck) -> bool {
    chain.first().is_some_and(|leaf| {
        validate_chain(
            leaf,
            &chain[1..],
            &TrustPolicy::new(vec![anchor.clone()]).with_time(time),
        )
        .is_ok()
    })
}
