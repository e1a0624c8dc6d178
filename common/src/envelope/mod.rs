//! Signed envelopes for vouchers and voucher-requests, behind one interface:
//! CMS SignedData (`application/voucher-cms+json`, RFC 8366bis §7.1), JWS general JSON
//! serialization (`application/voucher-jws+json`, draft-ietf-anima-jws-voucher §3) and
//! COSE_Sign1 (`application/voucher+cose`, cBRSKI §9.2).
//!
//! Signing takes the payload bytes, a [`Signer`] and the certificate chain to carry; verifying
//! takes the envelope bytes and a [`TrustPolicy`] and returns the payload with the signer's
//! validated chain. [`parse`] decodes without verifying (for inspection, and for reading a
//! request before its signer is known).

pub mod cms;
pub mod cose;
pub mod jws;

use crate::keys::{KeyError, Signer};
use crate::pki::chain::{ChainError, TrustPolicy};
use x509_cert::Certificate;

/// The three signed forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Cms,
    Jws,
    Cose,
}

impl Format {
    /// The media type (RFC 8366bis §12.4, jws-voucher §6.1, cBRSKI §15.4).
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Cms => "application/voucher-cms+json",
            Self::Jws => "application/voucher-jws+json",
            Self::Cose => "application/voucher+cose",
        }
    }

    /// The format for a media type, ignoring parameters and case; accepts the pre-rename
    /// `application/voucher-cose+cbor`.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        let base = media_type.split(';').next()?.trim().to_ascii_lowercase();
        match base.as_str() {
            "application/voucher-cms+json" => Some(Self::Cms),
            "application/voucher-jws+json" => Some(Self::Jws),
            "application/voucher+cose" | "application/voucher-cose+cbor" => Some(Self::Cose),
            _ => None,
        }
    }

    /// Guess the format from the first bytes: DER SEQUENCE (CMS), JSON object (JWS), CBOR tag 18
    /// or array of four (COSE).
    pub fn detect(bytes: &[u8]) -> Option<Self> {
        match bytes.iter().find(|b| !b.is_ascii_whitespace())? {
            0x30 => Some(Self::Cms),
            b'{' => Some(Self::Jws),
            0xd2 | 0x84 => Some(Self::Cose),
            _ => None,
        }
    }
}

/// Why an envelope could not be produced or was not accepted. Each failure of verification has
/// its own variant, so that callers (and tests) can tell a tampered payload from a tampered
/// signature, an unknown signer or an expired one.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("malformed {format:?} envelope: {reason}")]
    Malformed { format: Format, reason: String },
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    #[error("the envelope names no certificate whose key made the signature")]
    SignerNotFound,
    #[error("content digest does not match the signed messageDigest attribute")]
    DigestMismatch,
    #[error("signature does not verify with the signer's key")]
    BadSignature,
    #[error("signer is not trusted: {0}")]
    Untrusted(#[from] ChainError),
    #[error("signing failed: {0}")]
    Signing(#[from] KeyError),
}

/// A verified envelope.
#[derive(Clone, Debug)]
pub struct Verified {
    pub format: Format,
    /// The signed payload bytes, exactly as signed.
    pub payload: Vec<u8>,
    /// The signer's validated chain: signer certificate first, up to the anchor.
    pub chain: Vec<Certificate>,
    /// The signingTime attribute of the CMS signer that verified (RFC 5652 §11.3); `None` when
    /// absent, and for JWS and COSE, which have none.
    pub signing_time: Option<time::OffsetDateTime>,
}

impl Verified {
    /// The signer's certificate.
    pub fn signer(&self) -> Option<&Certificate> {
        self.chain.first()
    }
}

/// An envelope decoded without verification.
#[derive(Clone, Debug)]
pub struct Parsed {
    pub format: Format,
    pub payload: Vec<u8>,
    /// Certificates the envelope carries (CMS `certificates`, JWS `x5c`, COSE `x5bag`/`x5chain`).
    pub certificates: Vec<Certificate>,
    /// The signature algorithm named in the envelope.
    pub algorithm: String,
}

/// Sign `payload` in `format` with `signer`, carrying `chain` (signer certificate first).
pub fn sign(
    format: Format,
    payload: &[u8],
    signer: &dyn Signer,
    chain: &[Certificate],
) -> Result<Vec<u8>, EnvelopeError> {
    match format {
        Format::Cms => cms::sign(payload, signer, chain),
        Format::Jws => jws::sign(payload, signer, chain),
        Format::Cose => cose::sign(payload, signer, chain),
    }
}

/// Verify an envelope of `format` under `policy`. `extra` are certificates known out of band
/// that may identify the signer or complete its chain (the TLS client certificate for a COSE
/// PVR, cBRSKI §9.2.2).
pub fn verify(
    format: Format,
    bytes: &[u8],
    policy: &TrustPolicy,
    extra: &[Certificate],
) -> Result<Verified, EnvelopeError> {
    match format {
        Format::Cms => cms::verify(bytes, policy, extra),
        Format::Jws => jws::verify(bytes, policy, extra),
        Format::Cose => cose::verify(bytes, policy, extra),
    }
}

/// Decode an envelope without verifying it.
pub fn parse(format: Format, bytes: &[u8]) -> Result<Parsed, EnvelopeError> {
    match format {
        Format::Cms => cms::parse(bytes),
        Format::Jws => jws::parse(bytes),
        Format::Cose => cose::parse(bytes),
    }
}

/// Find the signer among `candidates` (the first whose key verifies `check`) and validate its
/// chain under `policy`, using all candidates as the intermediate pool. Shared by the JWS and
/// COSE verifiers, whose signer is identified only by the key that made the signature.
pub(crate) fn find_signer_and_validate(
    candidates: &[Certificate],
    policy: &TrustPolicy,
    check: impl Fn(&[u8]) -> Result<(), KeyError>,
) -> Result<Vec<Certificate>, EnvelopeError> {
    use der::Encode;
    let mut found_signer = false;
    let mut last_err = None;
    let all = candidates.iter().chain(policy.anchors.iter());
    for cert in all {
        let Ok(spki) = cert.tbs_certificate().subject_public_key_info().to_der() else {
            continue;
        };
        match check(&spki) {
            Ok(()) => {
                found_signer = true;
                match crate::pki::chain::validate_chain(cert, candidates, policy) {
                    Ok(chain) => return Ok(chain.into_iter().cloned().collect()),
                    Err(e) => last_err = Some(e),
                }
            }
            Err(KeyError::UnsupportedAlgorithm(a)) => {
                return Err(EnvelopeError::UnsupportedAlgorithm(a));
            }
            Err(_) => {}
        }
    }
    match (found_signer, last_err) {
        (_, Some(e)) => Err(EnvelopeError::Untrusted(e)),
        (false, None) if candidates.is_empty() && policy.anchors.is_empty() => {
            Err(EnvelopeError::SignerNotFound)
        }
        _ => Err(EnvelopeError::BadSignature),
    }
}
