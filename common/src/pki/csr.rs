//! PKCS#10 certification requests (RFC 2986): building one with any [`Signer`] (a TPM-held
//! LDevID key included), and checking a received one's self-signature (proof of possession,
//! RFC 2986 §3, RFC 7030 §3.4) with its attributes (RFC 2985 §5.4).

use crate::keys::{KeyError, Signer, verify_with_algorithm_id};
use crate::oid::{CHALLENGE_PASSWORD, EXTENSION_REQUEST};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, AnyRef, BitString, PrintableStringRef, SetOfVec, Utf8StringRef};
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::attr::Attribute;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::DirectoryString;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};

/// Why a CSR could not be built, parsed or accepted.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("CSR is malformed: {0}")]
    Malformed(String),
    #[error("CSR self-signature does not verify")]
    BadSignature,
    /// The key to be certified is of a type or size this suite does not sign for (RFC 7030
    /// §4.2.1: the server checks the request before it issues).
    #[error("CSR key not accepted: {0}")]
    KeyNotAccepted(String),
    #[error("unsupported CSR signature algorithm: {0}")]
    UnsupportedAlgorithm(String),
    #[error("CSR attribute {oid} is malformed: {reason}")]
    MalformedAttribute {
        oid: ObjectIdentifier,
        reason: String,
    },
    #[error("CSR attribute {0} appears more than once")]
    DuplicateAttribute(ObjectIdentifier),
    #[error("invalid challengePassword: {0}")]
    InvalidChallengePassword(String),
    #[error("signing the CSR failed: {0}")]
    Signing(KeyError),
    #[error("CSR could not be encoded: {0}")]
    Encoding(String),
}

fn encoding(e: impl std::fmt::Display) -> CsrError {
    CsrError::Encoding(e.to_string())
}

fn malformed(e: impl std::fmt::Display) -> CsrError {
    CsrError::Malformed(e.to_string())
}

/// Optional content of a CSR besides subject and key.
#[derive(Clone, Debug, Default)]
pub struct CsrParams {
    /// Requested extensions (e.g. subjectAltName), sent as one extensionRequest attribute
    /// (RFC 2985 §5.4.2); empty = no such attribute.
    pub extensions: Vec<Extension>,
    /// challengePassword (RFC 2985 §5.4.1): PrintableString when it fits, else UTF8String.
    /// EST puts the tls-unique value here for proof-of-possession linking (RFC 7030 §3.5).
    pub challenge_password: Option<String>,
    /// Further attributes, e.g. id-aa-attestation (draft-ietf-lamps-csr-attestation §4.3).
    pub attributes: Vec<Attribute>,
}

/// Build and sign a DER CSR for `signer`'s key (RFC 2986 §4).
pub fn build_csr(
    subject: &Name,
    signer: &dyn Signer,
    params: &CsrParams,
) -> Result<Vec<u8>, CsrError> {
    let public_key = SubjectPublicKeyInfoOwned::from_der(signer.public_key_spki())
        .map_err(|e| CsrError::Signing(KeyError::MalformedPublicKey(e.to_string())))?;
    let mut list = Vec::new();
    if let Some(pw) = &params.challenge_password {
        list.push(challenge_password_attribute(pw)?);
    }
    if !params.extensions.is_empty() {
        list.push(single_value_attribute(
            EXTENSION_REQUEST,
            Any::encode_from(&params.extensions).map_err(encoding)?,
        )?);
    }
    list.extend(params.attributes.iter().cloned());
    for (i, a) in list.iter().enumerate() {
        if list.iter().skip(i + 1).any(|b| b.oid == a.oid) {
            return Err(CsrError::DuplicateAttribute(a.oid));
        }
    }
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject.clone(),
        public_key,
        attributes: SetOfVec::try_from(list).map_err(encoding)?,
    };
    let info_der = info.to_der().map_err(encoding)?;
    let signature = signer.sign(&info_der).map_err(CsrError::Signing)?;
    CertReq {
        info,
        algorithm: signer.algorithm().algorithm_identifier(),
        signature: BitString::from_bytes(&signature).map_err(encoding)?,
    }
    .to_der()
    .map_err(encoding)
}

fn single_value_attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, CsrError> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).map_err(encoding)?,
    })
}

fn challenge_password_attribute(pw: &str) -> Result<Attribute, CsrError> {
    // RFC 2985 §5.4.1: SIZE (1..ub-challengePassword), ub = 255.
    if pw.is_empty() || pw.chars().count() > 255 {
        return Err(CsrError::InvalidChallengePassword(
            "must be 1 to 255 characters".into(),
        ));
    }
    let value = match PrintableStringRef::new(pw) {
        Ok(s) => Any::encode_from(&s),
        Err(_) => Any::encode_from(
            &Utf8StringRef::new(pw)
                .map_err(|e| CsrError::InvalidChallengePassword(e.to_string()))?,
        ),
    }
    .map_err(encoding)?;
    single_value_attribute(CHALLENGE_PASSWORD, value)
}

/// The three top-level parts of a CSR as they appear on the wire.
#[derive(der::Sequence)]
struct RawCertReq<'a> {
    info: AnyRef<'a>,
    algorithm: AnyRef<'a>,
    signature: AnyRef<'a>,
}

/// Decode a DER CSR without checking its signature (e.g. to display it).
pub fn parse_csr(der: &[u8]) -> Result<CertReq, CsrError> {
    CertReq::from_der(der).map_err(malformed)
}

/// Decode a DER CSR and verify its self-signature with the key it carries (RFC 2986 §3):
/// ECDSA P-256/P-384, RSA PKCS#1 v1.5 and Ed25519.
///
/// The signature is checked over the CertificationRequestInfo bytes exactly as received, so
/// a requester that encodes its attribute SET out of DER order is still accepted.
pub fn verify_csr(der: &[u8]) -> Result<CertReq, CsrError> {
    let req = parse_csr(der)?;
    let raw = RawCertReq::from_der(der).map_err(malformed)?;
    let info_der = raw.info.to_der().map_err(malformed)?;
    let signature = req
        .signature
        .as_bytes()
        .ok_or_else(|| CsrError::Malformed("signature BIT STRING has unused bits".into()))?;
    let spki_der = spki_der(&req)?;
    accepted_key(&req.info.public_key)?;
    match verify_with_algorithm_id(&spki_der, &req.algorithm, &info_der, signature) {
        Ok(()) => Ok(req),
        Err(KeyError::BadSignature | KeyError::MalformedSignature) => Err(CsrError::BadSignature),
        Err(KeyError::UnsupportedAlgorithm(alg)) => Err(CsrError::UnsupportedAlgorithm(alg)),
        Err(e) => Err(CsrError::Malformed(e.to_string())),
    }
}

/// Smallest and largest RSA modulus accepted, in bits (what aws-lc-rs verifies).
pub const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// Whether the key to be certified is one this suite verifies and issues for: an EC key on
/// P-256 or P-384, an RSA key of [`RSA_BITS`], or Ed25519. Checked before the self-signature,
/// so that a small or unknown key is named as such rather than as a bad signature.
pub fn accepted_key(spki: &SubjectPublicKeyInfoOwned) -> Result<(), CsrError> {
    use const_oid::db::{rfc5912, rfc8410};
    let oid = spki.algorithm.oid;
    if oid == rfc5912::ID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        return match curve {
            Some(c) if c == rfc5912::SECP_256_R_1 || c == rfc5912::SECP_384_R_1 => Ok(()),
            Some(c) => Err(CsrError::KeyNotAccepted(format!(
                "EC key on curve {c}; P-256 and P-384 are accepted"
            ))),
            None => Err(CsrError::KeyNotAccepted(
                "EC key without a named curve".into(),
            )),
        };
    }
    if oid == rfc5912::RSA_ENCRYPTION {
        let bits = rsa_modulus_bits(spki).ok_or_else(|| {
            CsrError::KeyNotAccepted("RSA key whose modulus does not decode".into())
        })?;
        return if RSA_BITS.contains(&bits) {
            Ok(())
        } else {
            Err(CsrError::KeyNotAccepted(format!(
                "RSA key of {bits} bits; {} to {} bits are accepted",
                RSA_BITS.start(),
                RSA_BITS.end()
            )))
        };
    }
    if oid == rfc8410::ID_ED_25519 {
        return Ok(());
    }
    Err(CsrError::KeyNotAccepted(format!("key type {oid}")))
}

/// The size in bits of an RSA public key's modulus (RFC 8017 §A.1.1).
fn rsa_modulus_bits(spki: &SubjectPublicKeyInfoOwned) -> Option<usize> {
    #[derive(der::Sequence)]
    struct RsaPublicKey<'a> {
        modulus: der::asn1::UintRef<'a>,
        public_exponent: der::asn1::UintRef<'a>,
    }
    let key = RsaPublicKey::from_der(spki.subject_public_key.as_bytes()?).ok()?;
    let bytes = key.modulus.as_bytes();
    let first = bytes.first()?;
    Some(bytes.len() * 8 - first.leading_zeros() as usize)
}

/// The requested subject DN.
pub fn subject(req: &CertReq) -> &Name {
    &req.info.subject
}

/// The DER SubjectPublicKeyInfo of the key to be certified (for [`super::issue::issue`]).
pub fn spki_der(req: &CertReq) -> Result<Vec<u8>, CsrError> {
    req.info.public_key.to_der().map_err(malformed)
}

/// The attribute `oid`, if present; more than one is an error.
pub fn attribute(req: &CertReq, oid: ObjectIdentifier) -> Result<Option<&Attribute>, CsrError> {
    let mut found = req.info.attributes.iter().filter(|a| a.oid == oid);
    let first = found.next();
    if found.next().is_some() {
        return Err(CsrError::DuplicateAttribute(oid));
    }
    Ok(first)
}

fn single_value(req: &CertReq, oid: ObjectIdentifier) -> Result<Option<&Any>, CsrError> {
    let Some(attr) = attribute(req, oid)? else {
        return Ok(None);
    };
    match attr.values.as_slice() {
        [value] => Ok(Some(value)),
        values => Err(CsrError::MalformedAttribute {
            oid,
            reason: format!("{} values, SINGLE VALUE required", values.len()),
        }),
    }
}

/// The extensions of the extensionRequest attribute (RFC 2985 §5.4.2); empty when absent.
pub fn requested_extensions(req: &CertReq) -> Result<Vec<Extension>, CsrError> {
    match single_value(req, EXTENSION_REQUEST)? {
        None => Ok(Vec::new()),
        Some(value) => {
            value
                .decode_as::<Vec<Extension>>()
                .map_err(|e| CsrError::MalformedAttribute {
                    oid: EXTENSION_REQUEST,
                    reason: e.to_string(),
                })
        }
    }
}

/// The challengePassword attribute value (RFC 2985 §5.4.1), if present.
pub fn challenge_password(req: &CertReq) -> Result<Option<String>, CsrError> {
    let Some(value) = single_value(req, CHALLENGE_PASSWORD)? else {
        return Ok(None);
    };
    let ds = value
        .decode_as::<DirectoryString>()
        .map_err(|e: der::Error| CsrError::MalformedAttribute {
            oid: CHALLENGE_PASSWORD,
            reason: e.to_string(),
        })?;
    Ok(Some(ds.value().into_owned()))
}
