//! The pledge's checks of a voucher whose signature has been verified (RFC 8995 §5.6.1;
//! RFC 8366bis §6.1, §8.4; SPEC §1.12 items 2–5), and the choice of the pin (RFC 8366bis §8,
//! §9; SPEC §2.7). Sans I/O: the caller supplies its clock, if it trusts one.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::excerpt;
use super::model::{Assertion, Nonce, Voucher, VoucherRequest};

/// The forms in which a registrar or domain is named: a certificate, a public key
/// (SubjectPublicKeyInfo) or the SHA-256 of a public key (cBRSKI §8.3, §13).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PinForm {
    /// `pinned-domain-cert` / `proximity-registrar-cert`.
    Cert,
    /// `pinned-domain-pubk` / `proximity-registrar-pubk`.
    Pubk,
    /// `pinned-domain-pubk-sha256` / `proximity-registrar-pubk-sha256`.
    PubkSha256,
}

/// The trust anchor a voucher installs (RFC 8995 §5.6.2; RFC 8366bis §8.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pin {
    /// `pinned-domain-cert`: DER certificate (an end-entity or a CA).
    DomainCert(Vec<u8>),
    /// `pinned-domain-pubk`: DER SubjectPublicKeyInfo (RFC 7250 §3).
    DomainPubk(Vec<u8>),
    /// `pinned-domain-pubk-sha256`: SHA-256 of the DER SubjectPublicKeyInfo.
    DomainPubkSha256(Vec<u8>),
}

impl Pin {
    /// The form of this pin.
    pub fn form(&self) -> PinForm {
        match self {
            Pin::DomainCert(_) => PinForm::Cert,
            Pin::DomainPubk(_) => PinForm::Pubk,
            Pin::DomainPubkSha256(_) => PinForm::PubkSha256,
        }
    }

    /// The pinned bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Pin::DomainCert(b) | Pin::DomainPubk(b) | Pin::DomainPubkSha256(b) => b,
        }
    }
}

/// The order in which a voucher's pins, or a request's proximity forms, are considered when
/// nothing else decides (RFC 8366bis §8, §9).
const PREFERENCE: [PinForm; 3] = [PinForm::PubkSha256, PinForm::Pubk, PinForm::Cert];

impl Voucher {
    /// The pin of `form`, if the voucher carries it.
    pub fn pin_of_form(&self, form: PinForm) -> Option<Pin> {
        match form {
            PinForm::Cert => self.pinned_domain_cert.clone().map(Pin::DomainCert),
            PinForm::Pubk => self.pinned_domain_pubk.clone().map(Pin::DomainPubk),
            PinForm::PubkSha256 => self
                .pinned_domain_pubk_sha256
                .clone()
                .map(Pin::DomainPubkSha256),
        }
    }

    /// The pin to use (RFC 8366bis §8; SPEC §2.7): the one matching the proximity form the
    /// pledge put in its request (`requested`), else the first present of
    /// `pinned-domain-pubk-sha256`, `pinned-domain-pubk`, `pinned-domain-cert`.
    pub fn pin(&self, requested: Option<PinForm>) -> Option<Pin> {
        requested
            .into_iter()
            .chain(PREFERENCE)
            .find_map(|form| self.pin_of_form(form))
    }
}

impl VoucherRequest {
    /// The proximity form this request uses, the first present of
    /// `proximity-registrar-pubk-sha256`, `proximity-registrar-pubk`,
    /// `proximity-registrar-cert` (RFC 8366bis §9).
    pub fn proximity_form(&self) -> Option<PinForm> {
        PREFERENCE.into_iter().find(|form| match form {
            PinForm::PubkSha256 => self.proximity_registrar_pubk_sha256.is_some(),
            PinForm::Pubk => self.proximity_registrar_pubk.is_some(),
            PinForm::Cert => self.proximity_registrar_cert.is_some(),
        })
    }
}

/// What the pledge knows and accepts, for [`validate_voucher`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PledgeExpectations {
    /// The pledge's own serial number (the serialNumber of its IDevID subject, RFC 8995 §2.3.1).
    pub serial_number: String,
    /// The nonce of the request this voucher answers; `None` when none was sent.
    pub nonce: Option<Nonce>,
    /// The `idevid-issuer` value of the pledge's IDevID (RFC 8366bis §6.1; see
    /// [`crate::pki::ext::idevid_issuer`]). A voucher carrying `idevid-issuer` must equal it; with `None`,
    /// such a voucher is rejected.
    pub idevid_issuer: Option<Vec<u8>>,
    /// Acceptable assertions (RFC 8366 YANG); `None` accepts any, including none.
    pub accepted_assertions: Option<Vec<Assertion>>,
    /// Whether a voucher without a nonce is accepted (local policy, RFC 8995 §5.6.1, §7.2); even
    /// then only with a trusted clock and an `expires-on` still ahead (§7.4.1, §11.1).
    pub accept_nonceless: bool,
    /// Now, when the pledge trusts its clock: then `expires-on`, `created-on` and the CMS
    /// signingTime are enforced (RFC 8995 §2.6.1).
    pub trusted_time: Option<OffsetDateTime>,
    /// The proximity form the pledge's request used, to pick the matching pin.
    pub requested_pin: Option<PinForm>,
}

impl PledgeExpectations {
    /// Expectations for `serial_number` and the nonce sent; nonceless vouchers refused, any
    /// assertion accepted, no `idevid-issuer`, no trusted clock.
    pub fn new(serial_number: impl Into<String>, nonce: Option<Nonce>) -> Self {
        Self {
            serial_number: serial_number.into(),
            nonce,
            idevid_issuer: None,
            accepted_assertions: None,
            accept_nonceless: false,
            trusted_time: None,
            requested_pin: None,
        }
    }

    /// Expectations matching the pledge voucher-request `pvr` that was sent: its serial, nonce
    /// and proximity form.
    pub fn for_request(pvr: &VoucherRequest) -> Self {
        Self {
            requested_pin: pvr.proximity_form(),
            ..Self::new(pvr.serial_number.clone(), pvr.nonce.clone())
        }
    }

    /// Set the pledge's `idevid-issuer` value.
    pub fn with_idevid_issuer(mut self, idevid_issuer: Option<Vec<u8>>) -> Self {
        self.idevid_issuer = idevid_issuer;
        self
    }

    /// Accept only these assertions.
    pub fn with_accepted_assertions(mut self, assertions: &[Assertion]) -> Self {
        self.accepted_assertions = Some(assertions.to_vec());
        self
    }

    /// Accept (or refuse) nonceless vouchers.
    pub fn with_nonceless(mut self, accept: bool) -> Self {
        self.accept_nonceless = accept;
        self
    }

    /// Enforce `expires-on` against `now`.
    pub fn with_trusted_time(mut self, now: OffsetDateTime) -> Self {
        self.trusted_time = Some(now);
        self
    }
}

/// Why a pledge refuses a voucher (RFC 8995 §5.6.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoucherCheckError {
    #[error("voucher is for serial-number {found:?}, this pledge is {expected:?}")]
    SerialMismatch { expected: String, found: String },
    #[error("voucher idevid-issuer does not match this pledge's IDevID")]
    IdevidIssuerMismatch,
    #[error("voucher nonce is not the nonce this pledge sent")]
    NonceMismatch,
    #[error("voucher has no nonce and nonceless vouchers are not accepted")]
    NonceMissing,
    #[error("voucher has no nonce, and without a trusted clock its expires-on cannot be checked")]
    NoncelessWithoutTrustedClock,
    #[error("voucher has no nonce and no expires-on")]
    NoncelessWithoutExpiry,
    #[error("voucher assertion {0:?} is not accepted")]
    AssertionNotAccepted(Option<Assertion>),
    #[error("voucher expired at {expires_on}")]
    Expired { expires_on: String },
    #[error(
        "voucher created-on {created_on} is in the future (more than {} s ahead of this pledge's clock)",
        CLOCK_SKEW.whole_seconds()
    )]
    CreatedInFuture { created_on: String },
    #[error(
        "voucher signingTime {signing_time} is in the future (more than {} s ahead of this pledge's clock)",
        CLOCK_SKEW.whole_seconds()
    )]
    SignedInFuture { signing_time: String },
    #[error("voucher pins no domain certificate or key")]
    NoPin,
}

/// How far ahead of a trusted clock a voucher's `created-on` or signingTime may be: the MASA's
/// clock and the pledge's differ a little (RFC 8995 §2.6.1). The same five minutes that
/// certificates are backdated by ([`crate::pki::issue::BACKDATE`]).
pub const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// Whether `t` is later than the trusted `now` by more than [`CLOCK_SKEW`].
pub fn in_the_future(t: OffsetDateTime, now: OffsetDateTime) -> bool {
    t > now + CLOCK_SKEW
}

/// RFC 8995 §2.6.1: with a trusted clock, the CMS signingTime (RFC 5652 §11.3), when present,
/// is not in the future.
pub fn check_signing_time(
    signing_time: Option<OffsetDateTime>,
    expected: &PledgeExpectations,
) -> Result<(), VoucherCheckError> {
    match (signing_time, expected.trusted_time) {
        (Some(t), Some(now)) if in_the_future(t, now) => Err(VoucherCheckError::SignedInFuture {
            signing_time: t.format(&Rfc3339).unwrap_or_else(|_| t.to_string()),
        }),
        _ => Ok(()),
    }
}

/// The pledge's checks of a voucher whose signature verified with the manufacturer trust
/// anchor (RFC 8995 §5.6.1): serial number, `idevid-issuer`, nonce (exact, SPEC §2.3),
/// `expires-on` and `created-on` when the clock is trusted (§2.6.1; `created-on` is optional
/// in RFC 8366bis §8.4), assertion policy, and presence of a pin. Returns
/// the pin to validate the registrar's TLS server chain against (RFC 8995 §5.6.2). Unknown
/// leaves were already ignored by the decoder.
pub fn validate_voucher(
    voucher: &Voucher,
    expected: &PledgeExpectations,
) -> Result<Pin, VoucherCheckError> {
    if voucher.serial_number != expected.serial_number {
        return Err(VoucherCheckError::SerialMismatch {
            expected: expected.serial_number.clone(),
            found: excerpt(&voucher.serial_number),
        });
    }
    if let Some(issuer) = &voucher.idevid_issuer {
        if expected.idevid_issuer.as_deref() != Some(issuer.as_slice()) {
            return Err(VoucherCheckError::IdevidIssuerMismatch);
        }
    }
    match (&voucher.nonce, &expected.nonce) {
        (Some(received), Some(sent)) if received == sent => {}
        // A different nonce, or one this pledge never sent.
        (Some(_), _) => return Err(VoucherCheckError::NonceMismatch),
        (None, _) if !expected.accept_nonceless => return Err(VoucherCheckError::NonceMissing),
        // RFC 8995 §7.2, §11.1: a nonceless voucher proves no freshness; what bounds its use
        // is its validity period (§7.4.1), which only a trusted clock can check (§2.6.1).
        (None, _) if expected.trusted_time.is_none() => {
            return Err(VoucherCheckError::NoncelessWithoutTrustedClock);
        }
        (None, _) if voucher.expires_on.is_none() => {
            return Err(VoucherCheckError::NoncelessWithoutExpiry);
        }
        (None, _) => {}
    }
    if let (Some(expires_on), Some(now)) = (&voucher.expires_on, expected.trusted_time) {
        if now >= expires_on.instant() {
            return Err(VoucherCheckError::Expired {
                expires_on: expires_on.to_string(),
            });
        }
    }
    if let (Some(created_on), Some(now)) = (&voucher.created_on, expected.trusted_time) {
        if in_the_future(created_on.instant(), now) {
            return Err(VoucherCheckError::CreatedInFuture {
                created_on: created_on.to_string(),
            });
        }
    }
    if let Some(accepted) = &expected.accepted_assertions {
        match voucher.assertion {
            Some(a) if accepted.contains(&a) => {}
            other => return Err(VoucherCheckError::AssertionNotAccepted(other)),
        }
    }
    voucher
        .pin(expected.requested_pin)
        .ok_or(VoucherCheckError::NoPin)
}
