//! Issuing X.509 v3 certificates (RFC 5280 §4.1) with any [`Signer`], so that a CA key held in a
//! TPM issues the same way as a software key.
//!
//! The `TbsCertificate` is assembled here, its DER signed by the issuer's [`Signer`], and the
//! result checked: the signature must verify with the issuer key and the certificate must
//! re-encode to the bytes that were signed (what a verifier hashes).

use super::ext::{key_identifier, subject_key_id};
use super::name::NameError;
use crate::keys::{KeyError, Signer};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{BitString, Ia5StringRef, OctetString};
use der::{DateTime, Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::Version;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, Extensions};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

/// Why a certificate could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("subject public key is malformed: {0}")]
    MalformedSubjectKey(String),
    #[error("the signer's public key is malformed: {0}")]
    MalformedSignerKey(String),
    #[error("issuer certificate is malformed: {0}")]
    MalformedIssuer(String),
    #[error("issuer certificate is not a CA (basicConstraints cA is not TRUE)")]
    IssuerNotCa,
    #[error("issuer certificate's keyUsage lacks keyCertSign")]
    IssuerCannotSignCertificates,
    #[error("issuer's pathLenConstraint 0 forbids issuing a CA certificate")]
    PathLengthExceeded,
    #[error("the signing key is not the issuer certificate's key")]
    IssuerKeyMismatch,
    #[error("a self-signed certificate must be signed with the subject's own key")]
    SelfSignedKeyMismatch,
    #[error("invalid validity period: {0}")]
    InvalidValidity(String),
    #[error("serial number must be a positive integer of at most 20 octets")]
    InvalidSerial,
    #[error("a certificate with an empty subject needs a subjectAltName and cannot be a CA")]
    EmptySubject,
    #[error("extension {0} appears more than once")]
    DuplicateExtension(ObjectIdentifier),
    #[error("invalid {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("no random bytes for the serial number")]
    Random,
    #[error("signing failed: {0}")]
    Signing(KeyError),
    #[error("the issued certificate does not verify with the issuer key: {0}")]
    SignatureCheck(KeyError),
    #[error("DER encoding failed: {0}")]
    Encoding(String),
}

fn encoding(e: impl std::fmt::Display) -> PkiError {
    PkiError::Encoding(e.to_string())
}

/// The end of a validity period (RFC 5280 §4.1.2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotAfter {
    /// This instant (whole seconds; sub-second parts are dropped).
    At(OffsetDateTime),
    /// `99991231235959Z`: "no well-defined expiration date", what IDevIDs SHOULD carry
    /// (RFC 5280 §4.1.2.5, RFC 8995 §2.6.2).
    NoWellDefinedExpiration,
}

/// How far `not_before` of new certificates is set in the past, for peers with slow clocks.
pub const BACKDATE: time::Duration = time::Duration::minutes(5);

/// What goes into a certificate besides the keys and the issuer. Profiles in
/// [`super::profile`] fill it in for each certificate kind of the suite; every field can be
/// changed before calling [`issue`].
#[derive(Clone, Debug)]
pub struct CertificateParams {
    /// Subject DN (RFC 5280 §4.1.2.6).
    pub subject: Name,
    /// Serial number, big-endian unsigned (RFC 5280 §4.1.2.2: positive, at most 20 octets).
    pub serial: Vec<u8>,
    /// Start of the validity period.
    pub not_before: OffsetDateTime,
    /// End of the validity period.
    pub not_after: NotAfter,
    /// basicConstraints, encoded critical (RFC 5280 §4.2.1.9).
    pub basic_constraints: Option<BasicConstraints>,
    /// keyUsage, encoded critical (RFC 5280 §4.2.1.3).
    pub key_usage: Option<KeyUsage>,
    /// extKeyUsage purposes, non-critical; empty = no extension (RFC 5280 §4.2.1.12).
    pub extended_key_usage: Vec<ObjectIdentifier>,
    /// subjectAltName entries; critical only when the subject is empty (RFC 5280 §4.2.1.6).
    pub subject_alt_names: Vec<GeneralName>,
    /// Add a subjectKeyIdentifier: SHA-1 of the subjectPublicKey (RFC 5280 §4.2.1.2 method 1).
    pub subject_key_identifier: bool,
    /// Add an authorityKeyIdentifier to certificates that are not self-signed: the issuer's
    /// SKI, or SHA-1 of the issuer key when it has none (RFC 5280 §4.2.1.1).
    pub authority_key_identifier: bool,
    /// id-pe-masa-url, non-critical IA5String (RFC 8995 §2.3.2).
    pub masa_url: Option<String>,
    /// Further extensions, appended as given.
    pub extra_extensions: Vec<Extension>,
}

impl CertificateParams {
    /// Parameters for `subject` with a random serial, valid from [`BACKDATE`] ago for
    /// `lifetime`, with no extensions except the AKI.
    pub fn new(subject: Name, lifetime: time::Duration) -> Result<Self, PkiError> {
        let now = OffsetDateTime::now_utc();
        Ok(Self {
            subject,
            serial: random_serial()?,
            not_before: now - BACKDATE,
            not_after: NotAfter::At(now + lifetime),
            basic_constraints: None,
            key_usage: None,
            extended_key_usage: Vec::new(),
            subject_alt_names: Vec::new(),
            subject_key_identifier: false,
            authority_key_identifier: true,
            masa_url: None,
            extra_extensions: Vec::new(),
        })
    }

    /// Whether these parameters describe a CA certificate (basicConstraints cA TRUE).
    pub fn is_ca(&self) -> bool {
        self.basic_constraints.as_ref().is_some_and(|bc| bc.ca)
    }
}

/// 16 random octets forming a positive integer (RFC 5280 §4.1.2.2; CA/B forum asks for at
/// least 64 random bits). The top bit is cleared and the next one set, so the DER INTEGER is
/// always exactly 16 octets.
pub fn random_serial() -> Result<Vec<u8>, PkiError> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| PkiError::Random)?;
    b[0] = (b[0] & 0x3f) | 0x40;
    Ok(b.to_vec())
}

/// The TBSCertificate as this module encodes it (RFC 5280 §4.1); always version 3.
#[derive(der::Sequence)]
struct TbsOut {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    version: Version,
    serial_number: SerialNumber,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    validity: Validity,
    subject: Name,
    subject_public_key_info: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<Extensions>,
}

#[derive(der::Sequence)]
struct CertOut {
    tbs_certificate: TbsOut,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// Issue a certificate for the key `subject_spki_der` (DER SubjectPublicKeyInfo).
///
/// `issuer` is the CA certificate whose key `issuer_key` is, or `None` for a self-signed
/// certificate (then `issuer_key` must be the subject key). The issuer must be a CA whose
/// keyUsage, if present, allows keyCertSign (RFC 5280 §4.2.1.3, §4.2.1.9).
pub fn issue(
    params: &CertificateParams,
    subject_spki_der: &[u8],
    issuer: Option<&Certificate>,
    issuer_key: &dyn Signer,
) -> Result<Certificate, PkiError> {
    let subject_spki = SubjectPublicKeyInfoOwned::from_der(subject_spki_der)
        .map_err(|e| PkiError::MalformedSubjectKey(e.to_string()))?;
    if subject_spki.subject_public_key.as_bytes().is_none() {
        return Err(PkiError::MalformedSubjectKey(
            "public key BIT STRING has unused bits".into(),
        ));
    }
    let signer_spki = SubjectPublicKeyInfoOwned::from_der(issuer_key.public_key_spki())
        .map_err(|e| PkiError::MalformedSignerKey(e.to_string()))?;

    let (issuer_name, authority_key_id) = match issuer {
        None => {
            if signer_spki != subject_spki {
                return Err(PkiError::SelfSignedKeyMismatch);
            }
            (params.subject.clone(), None)
        }
        Some(ca) => {
            let tbs = ca.tbs_certificate();
            if *tbs.subject_public_key_info() != signer_spki {
                return Err(PkiError::IssuerKeyMismatch);
            }
            check_issuer(ca, params)?;
            (
                tbs.subject().clone(),
                Some(subject_key_id(ca).map_err(|e| PkiError::MalformedIssuer(e.to_string()))?),
            )
        }
    };

    let serial_number = serial_number(&params.serial)?;
    let validity = validity(params)?;
    let extensions = extensions(params, &subject_spki, authority_key_id)?;
    let signature_algorithm = issuer_key.algorithm().algorithm_identifier();

    let tbs = TbsOut {
        version: Version::V3,
        serial_number,
        signature: signature_algorithm.clone(),
        issuer: issuer_name,
        validity,
        subject: params.subject.clone(),
        subject_public_key_info: subject_spki,
        extensions: (!extensions.is_empty()).then_some(extensions),
    };
    let tbs_der = tbs.to_der().map_err(encoding)?;
    let signature = issuer_key.sign(&tbs_der).map_err(PkiError::Signing)?;
    // Checked through the memory of verified signatures, so validating the new certificate
    // later in this process (the LDevID's TLS chain, 8995 §5.9.4) costs a digest.
    super::chain::verified::check(
        issuer_key.public_key_spki(),
        &signature_algorithm,
        &tbs_der,
        &signature,
    )
    .map_err(PkiError::SignatureCheck)?;

    let cert_der = CertOut {
        tbs_certificate: tbs,
        signature_algorithm,
        signature: BitString::from_bytes(&signature).map_err(encoding)?,
    }
    .to_der()
    .map_err(encoding)?;
    let cert = Certificate::from_der(&cert_der).map_err(encoding)?;
    if cert.tbs_certificate().to_der().map_err(encoding)? != tbs_der {
        return Err(PkiError::Encoding(
            "TBSCertificate does not re-encode to the signed bytes".into(),
        ));
    }
    Ok(cert)
}

/// Issue a self-signed certificate for `key` (a root CA).
pub fn self_signed(params: &CertificateParams, key: &dyn Signer) -> Result<Certificate, PkiError> {
    issue(params, key.public_key_spki(), None, key)
}

fn check_issuer(ca: &Certificate, params: &CertificateParams) -> Result<(), PkiError> {
    let tbs = ca.tbs_certificate();
    let malformed = |e: der::Error| PkiError::MalformedIssuer(e.to_string());
    let bc = tbs
        .get_extension::<BasicConstraints>()
        .map_err(malformed)?
        .map(|(_, bc)| bc);
    let Some(bc) = bc.filter(|bc| bc.ca) else {
        return Err(PkiError::IssuerNotCa);
    };
    if let Some((_, ku)) = tbs.get_extension::<KeyUsage>().map_err(malformed)? {
        if !ku.0.contains(KeyUsages::KeyCertSign) {
            return Err(PkiError::IssuerCannotSignCertificates);
        }
    }
    if bc.path_len_constraint == Some(0) && params.is_ca() {
        return Err(PkiError::PathLengthExceeded);
    }
    Ok(())
}

/// The key identifier for the AKI: the issuer's SKI, else SHA-1 of its key (RFC 5280 §4.2.1.1).
fn serial_number(bytes: &[u8]) -> Result<SerialNumber, PkiError> {
    if bytes.iter().all(|&b| b == 0) {
        return Err(PkiError::InvalidSerial);
    }
    SerialNumber::new(bytes).map_err(|_| PkiError::InvalidSerial)
}

fn x509_time(t: OffsetDateTime) -> Result<Time, PkiError> {
    let secs = u64::try_from(t.unix_timestamp())
        .map_err(|_| PkiError::InvalidValidity(format!("{t} is before 1970")))?;
    let dt = DateTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map_err(|_| PkiError::InvalidValidity(format!("{t} is after 9999")))?;
    // UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5).
    Ok(Time::from(dt))
}

fn validity(params: &CertificateParams) -> Result<Validity, PkiError> {
    let not_before = x509_time(params.not_before)?;
    let not_after = match params.not_after {
        NotAfter::At(t) => x509_time(t)?,
        NotAfter::NoWellDefinedExpiration => Time::INFINITY,
    };
    if not_before.to_unix_duration() >= not_after.to_unix_duration() {
        return Err(PkiError::InvalidValidity(format!(
            "notBefore {not_before} is not before notAfter {not_after}"
        )));
    }
    Ok(Validity::new(not_before, not_after))
}

fn extension<T: Encode>(
    oid: ObjectIdentifier,
    critical: bool,
    value: &T,
) -> Result<Extension, PkiError> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(encoding)?).map_err(encoding)?,
    })
}

fn extensions(
    params: &CertificateParams,
    subject_spki: &SubjectPublicKeyInfoOwned,
    authority_key_id: Option<Vec<u8>>,
) -> Result<Extensions, PkiError> {
    let empty_subject = params.subject.is_empty();
    if empty_subject && (params.subject_alt_names.is_empty() || params.is_ca()) {
        return Err(PkiError::EmptySubject);
    }
    let mut exts = Vec::new();
    if let Some(bc) = &params.basic_constraints {
        exts.push(extension(BasicConstraints::OID, true, bc)?);
    }
    if let Some(ku) = &params.key_usage {
        exts.push(extension(KeyUsage::OID, true, ku)?);
    }
    if !params.extended_key_usage.is_empty() {
        let eku = ExtendedKeyUsage(params.extended_key_usage.clone());
        exts.push(extension(ExtendedKeyUsage::OID, false, &eku)?);
    }
    if params.subject_key_identifier {
        let ski = SubjectKeyIdentifier(
            OctetString::new(key_identifier(subject_spki).to_vec()).map_err(encoding)?,
        );
        exts.push(extension(SubjectKeyIdentifier::OID, false, &ski)?);
    }
    if let Some(key_id) = authority_key_id.filter(|_| params.authority_key_identifier) {
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(key_id).map_err(encoding)?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        };
        exts.push(extension(AuthorityKeyIdentifier::OID, false, &aki)?);
    }
    if !params.subject_alt_names.is_empty() {
        let san = SubjectAltName(params.subject_alt_names.clone());
        exts.push(extension(SubjectAltName::OID, empty_subject, &san)?);
    }
    if let Some(url) = &params.masa_url {
        check_masa_url(url)?;
        let value = Ia5StringRef::new(url).map_err(|e| PkiError::InvalidField {
            field: "masa_url",
            reason: e.to_string(),
        })?;
        exts.push(extension(crate::oid::ID_PE_MASA_URL, false, &value)?);
    }
    exts.extend(params.extra_extensions.iter().cloned());
    for (i, e) in exts.iter().enumerate() {
        if exts.iter().skip(i + 1).any(|o| o.extn_id == e.extn_id) {
            return Err(PkiError::DuplicateExtension(e.extn_id));
        }
    }
    Ok(exts)
}

/// A MASA URL is an authority or URI: visible ASCII, no spaces (RFC 8995 §2.3.2, RFC 3986).
pub(crate) fn check_masa_url(url: &str) -> Result<(), PkiError> {
    if url.is_empty() || !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(PkiError::InvalidField {
            field: "masa_url",
            reason: format!("{url:?} is empty or not visible ASCII"),
        });
    }
    Ok(())
}
