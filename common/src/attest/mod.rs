//! Attested enrollment: TPM 2.0 evidence in a CSR (draft-ietf-lamps-csr-attestation-28, TCG
//! "TPM 2.0 Keys for Device Identity and Attestation"), and its appraisal by the registrar.
//!
//! The pledge's LDevID key is certified by its IAK (TPM2_Certify) and the IAK quotes the PCRs
//! (TPM2_Quote); both ride in the CSR's `id-aa-attestation` attribute ([`bundle`]). [`tpm`]
//! decodes the TPM structures. The functions here are the appraisal checks, each failing with
//! its own [`AttestError`] variant so that the registrar can record and show which one failed;
//! [`appraise_certify`] and [`appraise_quote`] run them in a fixed order. Trust in the IAK
//! itself (its certificate chain, the device it names) is the caller's.

pub mod bundle;
pub mod enroll;
pub mod tpm;

pub use bundle::{
    AttestationBundle, AttestationStatement, BundleCert, BundleError, TpmCertifyStatement,
    TpmEvidence, TpmQuoteStatement, quote_statement_oid,
};
pub use tpm::{
    Attested, HashAlg, PcrBank, PcrSelection, PublicKey, TpmError, TpmsAttest, TpmtPublic,
    TpmtSignature,
};

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912;
use tpm::{TPM_ST_ATTEST_CERTIFY, TPM_ST_ATTEST_QUOTE, attr};

/// Which appraisal check failed. Each check has its own variant; [`Self::check`] names it
/// in a stable form for storage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    #[error("attestation bundle: {0}")]
    Bundle(#[from] BundleError),
    #[error("{part} is malformed: {error}")]
    Malformed { part: &'static str, error: TpmError },
    #[error("the evidence has no {0} statement")]
    MissingStatement(&'static str),
    #[error("the evidence has more than one {0} statement")]
    DuplicateStatement(&'static str),
    #[error("the certify statement has no tpmTPublic")]
    MissingCertifiedPublic,
    #[error("{part} is of attestation type {found:#06x}, {expected:#06x} expected")]
    WrongAttestType {
        part: &'static str,
        expected: u16,
        found: u16,
    },
    #[error("signature not accepted: {0}")]
    UnsupportedSignature(String),
    #[error("the certify info is not signed by the attestation key")]
    CertifySignature,
    #[error("the quote is not signed by the attestation key")]
    QuoteSignature,
    #[error("the attestation key's TPMT_PUBLIC does not hold the key of its certificate")]
    SignerPublicMismatch,
    #[error("the attestation key is not a restricted signing key in a TPM (lacks {0})")]
    SignerNotRestricted(String),
    #[error("the certified key is not the CSR's public key")]
    CertifiedKeyNotCsrKey,
    #[error("the certified Name is not the Name of the certified TPMT_PUBLIC")]
    CertifiedNameMismatch,
    #[error("the certified key lacks {0}")]
    CertifiedKeyAttributes(String),
    #[error("the certify info's qualifying data is not the expected value")]
    CertifyQualifyingData,
    #[error("the quote's qualifying data is not the expected value")]
    QuoteQualifyingData,
    #[error("the quoted PCR values do not hash to the quote's PCR digest")]
    PcrValuesMismatch,
    #[error("the quote covers other PCRs than every accepted PCR set")]
    PcrSelectionNotAccepted,
    #[error("the quote's PCR digest matches none of the accepted PCR sets")]
    PcrDigestNotAccepted,
    #[error("PCR reference set is invalid: {0}")]
    InvalidPcrSet(String),
    #[error("the CSR carries no attestation evidence (id-aa-attestation)")]
    MissingEvidence,
    #[error("the evidence carries no IAK certificate")]
    MissingIakCertificate,
    #[error("the IAK certificate does not chain to the manufacturer: {0}")]
    IakChain(String),
    #[error(
        "the IAK certificate does not say the IAK is restricted (tcg-cap-verifiedTPMRestricted)"
    )]
    IakNotRestricted,
    #[error("the IAK certificate names another device than the IDevID ({0} differs)")]
    OtherDevice(String),
    #[error("the session has no channel binding to derive the qualifying data from")]
    NoChannelBinding,
}

impl AttestError {
    /// A stable snake_case name of the failed check (for the registrar's records).
    pub fn check(&self) -> &'static str {
        match self {
            Self::Bundle(_) => "bundle",
            Self::Malformed { .. } => "malformed",
            Self::MissingStatement(_) => "missing_statement",
            Self::DuplicateStatement(_) => "duplicate_statement",
            Self::MissingCertifiedPublic => "missing_certified_public",
            Self::WrongAttestType { .. } => "attest_type",
            Self::UnsupportedSignature(_) => "signature_scheme",
            Self::CertifySignature => "certify_signature",
            Self::QuoteSignature => "quote_signature",
            Self::SignerPublicMismatch => "signer_public",
            Self::SignerNotRestricted(_) => "signer_restricted",
            Self::CertifiedKeyNotCsrKey => "certified_key_is_csr_key",
            Self::CertifiedNameMismatch => "certified_name",
            Self::CertifiedKeyAttributes(_) => "certified_key_attributes",
            Self::CertifyQualifyingData => "certify_qualifying_data",
            Self::QuoteQualifyingData => "quote_qualifying_data",
            Self::PcrValuesMismatch => "pcr_values",
            Self::PcrSelectionNotAccepted => "pcr_selection",
            Self::PcrDigestNotAccepted => "pcr_digest",
            Self::InvalidPcrSet(_) => "pcr_reference_set",
            Self::MissingEvidence => "evidence",
            Self::MissingIakCertificate => "iak_certificate",
            Self::IakChain(_) => "iak_chain",
            Self::IakNotRestricted => "iak_restricted",
            Self::OtherDevice(_) => "same_device",
            Self::NoChannelBinding => "channel_binding",
        }
    }
}

fn malformed(part: &'static str) -> impl FnOnce(TpmError) -> AttestError {
    move |error| AttestError::Malformed { part, error }
}

/// The attestation key (IAK) as the verifier knows it: the SubjectPublicKeyInfo of its
/// certificate, and, when the device sent it, its TPMT_PUBLIC (checked to hold the same key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerKey {
    spki_der: Vec<u8>,
    public: Option<TpmtPublic>,
}

impl SignerKey {
    /// An attestation key known by its SubjectPublicKeyInfo (DER) only, e.g. from the IAK
    /// certificate.
    pub fn from_spki(spki_der: &[u8]) -> Self {
        Self {
            spki_der: spki_der.to_vec(),
            public: None,
        }
    }

    /// An attestation key known by its TPMT_PUBLIC (its key gives the SPKI).
    pub fn from_public(public: TpmtPublic) -> Result<Self, AttestError> {
        Ok(Self {
            spki_der: public
                .spki_der()
                .map_err(malformed("attestation key TPMT_PUBLIC"))?,
            public: Some(public),
        })
    }

    /// An attestation key known by its certificate's SPKI and its TPMT_PUBLIC, which must
    /// hold the same key ([`AttestError::SignerPublicMismatch`]).
    pub fn with_public(spki_der: &[u8], public: TpmtPublic) -> Result<Self, AttestError> {
        let key = Self::from_public(public)?;
        if key.spki_der != spki_der {
            return Err(AttestError::SignerPublicMismatch);
        }
        Ok(key)
    }

    /// The SubjectPublicKeyInfo (DER).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The TPMT_PUBLIC, when known.
    pub fn public(&self) -> Option<&TpmtPublic> {
        self.public.as_ref()
    }
}

/// Verify a TPMT_SIGNATURE over `message` with the SPKI `spki_der`: ECDSA or RSASSA
/// (PKCS#1 v1.5) with SHA-256, -384 or -512. `bad` is the error for a signature that does not
/// verify.
fn verify_tpm_signature(
    spki_der: &[u8],
    message: &[u8],
    signature: &TpmtSignature,
    bad: AttestError,
) -> Result<(), AttestError> {
    let unsupported = |what: &str| Err(AttestError::UnsupportedSignature(what.to_string()));
    let (oid, sig): (ObjectIdentifier, Vec<u8>) = match signature {
        TpmtSignature::Ecdsa { hash, r, s } => {
            let oid = match hash {
                HashAlg::Sha256 => rfc5912::ECDSA_WITH_SHA_256,
                HashAlg::Sha384 => rfc5912::ECDSA_WITH_SHA_384,
                HashAlg::Sha512 => rfc5912::ECDSA_WITH_SHA_512,
                HashAlg::Sha1 => return unsupported("ECDSA with SHA-1"),
            };
            // r || s, each left-padded to the longer one, then DER (RFC 5480 §2.2 form).
            let len = r.len().max(s.len());
            let mut fixed = Vec::with_capacity(2 * len);
            for v in [r, s] {
                fixed.extend(std::iter::repeat_n(0, len - v.len()));
                fixed.extend_from_slice(v);
            }
            let der = crate::keys::ecdsa_fixed_to_der(&fixed).map_err(|_| bad.clone())?;
            (oid, der)
        }
        TpmtSignature::Rsassa { hash, sig } => {
            let oid = match hash {
                HashAlg::Sha256 => rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                HashAlg::Sha384 => rfc5912::SHA_384_WITH_RSA_ENCRYPTION,
                HashAlg::Sha512 => rfc5912::SHA_512_WITH_RSA_ENCRYPTION,
                HashAlg::Sha1 => return unsupported("RSASSA with SHA-1"),
            };
            (oid, sig.clone())
        }
        TpmtSignature::Rsapss { .. } => return unsupported("RSAPSS"),
    };
    match crate::keys::verify_signature(spki_der, oid, message, &sig) {
        Ok(()) => Ok(()),
        Err(crate::keys::KeyError::BadSignature) => Err(bad),
        Err(e) => Err(AttestError::UnsupportedSignature(e.to_string())),
    }
}

/// Verify the signature of attestation evidence by `signer`, then decode the TPMS_ATTEST and
/// check its type.
fn verify_attest(
    attest: &[u8],
    signature: &[u8],
    signer: &SignerKey,
    expected_type: u16,
) -> Result<(TpmsAttest, TpmtSignature), AttestError> {
    let (part, sig_part, bad) = if expected_type == TPM_ST_ATTEST_CERTIFY {
        (
            "certify info",
            "certify signature",
            AttestError::CertifySignature,
        )
    } else {
        ("quote", "quote signature", AttestError::QuoteSignature)
    };
    let sig = TpmtSignature::decode(signature).map_err(malformed(sig_part))?;
    verify_tpm_signature(&signer.spki_der, attest, &sig, bad)?;
    let info = TpmsAttest::decode(attest).map_err(malformed(part))?;
    if info.attest_type != expected_type {
        return Err(AttestError::WrongAttestType {
            part,
            expected: expected_type,
            found: info.attest_type,
        });
    }
    Ok((info, sig))
}

/// The certify info (marshalled TPMS_ATTEST) is signed by `signer` with the TPMT_SIGNATURE
/// `signature`, and is of type TPM_ST_ATTEST_CERTIFY (TPM 2.0 Part 3 §18.2).
pub fn verify_certify(
    attest: &[u8],
    signature: &[u8],
    signer: &SignerKey,
) -> Result<TpmsAttest, AttestError> {
    verify_attest(attest, signature, signer, TPM_ST_ATTEST_CERTIFY).map(|(info, _)| info)
}

/// The quote (marshalled TPMS_ATTEST) is signed by `signer` and is of type
/// TPM_ST_ATTEST_QUOTE (TPM 2.0 Part 3 §18.4). Returns it with the signature's hash, which
/// is also the hash of its pcrDigest.
pub fn verify_quote(
    attest: &[u8],
    signature: &[u8],
    signer: &SignerKey,
) -> Result<(TpmsAttest, HashAlg), AttestError> {
    verify_attest(attest, signature, signer, TPM_ST_ATTEST_QUOTE)
        .map(|(info, sig)| (info, sig.hash()))
}

fn missing(public: &TpmtPublic, bits: &[(u32, &'static str)]) -> Option<String> {
    let absent: Vec<&str> = bits
        .iter()
        .filter(|(bit, _)| !public.has(*bit))
        .map(|(_, name)| *name)
        .collect();
    (!absent.is_empty()).then(|| absent.join(", "))
}

/// The attestation key is a restricted signing key that cannot leave its TPM (restricted,
/// sign, fixedTPM): such a key signs only structures the TPM made itself (TPM 2.0 Part 1,
/// "restricted signing key"), so a certify or quote it signed is genuine.
pub fn check_signer_restricted(public: &TpmtPublic) -> Result<(), AttestError> {
    let needed = [
        (attr::RESTRICTED, "restricted"),
        (attr::SIGN_ENCRYPT, "sign"),
        (attr::FIXED_TPM, "fixedTPM"),
    ];
    missing(public, &needed).map_or(Ok(()), |m| Err(AttestError::SignerNotRestricted(m)))
}

/// The certified object is `certified` and its key is the CSR's: the SPKI of `certified`
/// equals `csr_spki_der`, and its Name is the one certified in `info`.
pub fn check_certified_key(
    info: &TpmsAttest,
    certified: &TpmtPublic,
    csr_spki_der: &[u8],
) -> Result<(), AttestError> {
    let spki = certified
        .spki_der()
        .map_err(malformed("certified TPMT_PUBLIC"))?;
    if spki != csr_spki_der {
        return Err(AttestError::CertifiedKeyNotCsrKey);
    }
    match &info.attested {
        Attested::Certify { name, .. } if *name == certified.name() => Ok(()),
        _ => Err(AttestError::CertifiedNameMismatch),
    }
}

/// The certified key was made in the TPM and cannot leave it: fixedTPM, fixedParent and
/// sensitiveDataOrigin (TPM 2.0 Part 2 §8.3; the TCG DevID key templates set all three).
pub fn check_certified_attributes(certified: &TpmtPublic) -> Result<(), AttestError> {
    let needed = [
        (attr::FIXED_TPM, "fixedTPM"),
        (attr::FIXED_PARENT, "fixedParent"),
        (attr::SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
    ];
    missing(certified, &needed).map_or(Ok(()), |m| Err(AttestError::CertifiedKeyAttributes(m)))
}

/// The evidence's qualifying data (extraData) is `expected`, the fresh value this enrollment
/// gave the pledge.
pub fn check_qualifying_data(info: &TpmsAttest, expected: &[u8]) -> Result<(), AttestError> {
    if info.extra_data == expected {
        return Ok(());
    }
    Err(match info.attested {
        Attested::Certify { .. } => AttestError::CertifyQualifyingData,
        Attested::Quote { .. } => AttestError::QuoteQualifyingData,
    })
}

/// Reference PCR values: the PCRs of `selection`, bank by bank, PCR indices ascending, one
/// value each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrSet {
    selection: PcrSelection,
    values: Vec<Vec<u8>>,
}

impl PcrSet {
    /// A set of `values` for `selection`: as many as it selects, each as long as its bank's
    /// hash.
    pub fn new(selection: PcrSelection, values: Vec<Vec<u8>>) -> Result<Self, AttestError> {
        if values.len() != selection.count() {
            return Err(AttestError::InvalidPcrSet(format!(
                "{} values for {} PCRs",
                values.len(),
                selection.count()
            )));
        }
        check_value_lengths(&selection, &values)?;
        Ok(Self { selection, values })
    }

    /// The selection.
    pub fn selection(&self) -> &PcrSelection {
        &self.selection
    }

    /// The values, in selection order.
    pub fn values(&self) -> &[Vec<u8>] {
        &self.values
    }

    /// The pcrDigest a TPM2_Quote over these values reports: `hash` of their concatenation in
    /// selection order (TPM 2.0 Part 3 §18.4).
    pub fn digest(&self, hash: HashAlg) -> Vec<u8> {
        hash.digest(&self.values.concat())
    }
}

fn check_value_lengths(selection: &PcrSelection, values: &[Vec<u8>]) -> Result<(), AttestError> {
    let lengths = selection
        .0
        .iter()
        .flat_map(|bank| bank.pcrs.iter().map(|_| bank.hash.digest_len()));
    match lengths.zip(values).find(|(len, v)| v.len() != *len) {
        Some((len, v)) => Err(AttestError::InvalidPcrSet(format!(
            "a {}-byte value in a bank of {len}-byte PCRs",
            v.len()
        ))),
        None => Ok(()),
    }
}

fn quote_parts(info: &TpmsAttest) -> Result<(&PcrSelection, &[u8]), AttestError> {
    match &info.attested {
        Attested::Quote {
            pcr_select,
            pcr_digest,
        } => Ok((pcr_select, pcr_digest)),
        Attested::Certify { .. } => Err(AttestError::WrongAttestType {
            part: "quote",
            expected: TPM_ST_ATTEST_QUOTE,
            found: info.attest_type,
        }),
    }
}

/// The PCR values the device reported with its quote hash (with `hash`, the quote signature's)
/// to the quote's pcrDigest.
pub fn check_reported_pcr_values(
    info: &TpmsAttest,
    hash: HashAlg,
    values: &[Vec<u8>],
) -> Result<(), AttestError> {
    let (_, digest) = quote_parts(info)?;
    if hash.digest(&values.concat()) != digest {
        return Err(AttestError::PcrValuesMismatch);
    }
    Ok(())
}

/// The quote's pcrDigest is the digest (with `hash`, the quote signature's) of one of the
/// `accepted` sets over the same selection; returns the index of the first that matches.
pub fn check_pcr_digest(
    info: &TpmsAttest,
    hash: HashAlg,
    accepted: &[PcrSet],
) -> Result<usize, AttestError> {
    let (selection, digest) = quote_parts(info)?;
    let mut same_selection = accepted
        .iter()
        .enumerate()
        .filter(|(_, set)| set.selection == *selection)
        .peekable();
    if same_selection.peek().is_none() {
        return Err(AttestError::PcrSelectionNotAccepted);
    }
    same_selection
        .find(|(_, set)| set.digest(hash) == digest)
        .map(|(i, _)| i)
        .ok_or(AttestError::PcrDigestNotAccepted)
}

/// The checks both statements start with: signed by `signer` and of `expected_type`; the
/// signer restricted when its TPMT_PUBLIC is known; the qualifying data.
fn appraise_signed(
    attest: &[u8],
    signature: &[u8],
    signer: &SignerKey,
    expected_type: u16,
    qualifying_data: &[u8],
) -> Result<(TpmsAttest, TpmtSignature), AttestError> {
    let (info, sig) = verify_attest(attest, signature, signer, expected_type)?;
    if let Some(public) = signer.public() {
        check_signer_restricted(public)?;
    }
    check_qualifying_data(&info, qualifying_data)?;
    Ok((info, sig))
}

/// Appraise a TPM2_Certify statement for a CSR, in this order: signed by `signer`
/// ([`verify_certify`]); the signer restricted when its TPMT_PUBLIC is known
/// ([`check_signer_restricted`]); the qualifying data ([`check_qualifying_data`]); the
/// certified key is the CSR's ([`check_certified_key`]) and TPM-resident
/// ([`check_certified_attributes`]). Returns the certify info.
pub fn appraise_certify(
    statement: &TpmCertifyStatement,
    signer: &SignerKey,
    csr_spki_der: &[u8],
    qualifying_data: &[u8],
) -> Result<TpmsAttest, AttestError> {
    let (info, _) = appraise_signed(
        statement.tpms_attest.as_bytes(),
        statement.signature.as_bytes(),
        signer,
        TPM_ST_ATTEST_CERTIFY,
        qualifying_data,
    )?;
    let certified = statement
        .tpmt_public
        .as_ref()
        .ok_or(AttestError::MissingCertifiedPublic)?;
    let certified =
        TpmtPublic::decode(certified.as_bytes()).map_err(malformed("certified TPMT_PUBLIC"))?;
    check_certified_key(&info, &certified, csr_spki_der)?;
    check_certified_attributes(&certified)?;
    Ok(info)
}

/// Appraise a TPM2_Quote statement, in this order: signed by `signer` ([`verify_quote`]); the
/// signer restricted when its TPMT_PUBLIC is known; the qualifying data; the reported PCR
/// values, when present, hash to the pcrDigest ([`check_reported_pcr_values`]); the pcrDigest
/// is that of one of the `accepted` sets ([`check_pcr_digest`]), whose index is returned.
pub fn appraise_quote(
    statement: &TpmQuoteStatement,
    signer: &SignerKey,
    qualifying_data: &[u8],
    accepted: &[PcrSet],
) -> Result<usize, AttestError> {
    let (info, sig) = appraise_signed(
        statement.tpms_attest.as_bytes(),
        statement.signature.as_bytes(),
        signer,
        TPM_ST_ATTEST_QUOTE,
        qualifying_data,
    )?;
    let hash = sig.hash();
    if let Some(values) = &statement.pcr_values {
        let values: Vec<Vec<u8>> = values.iter().map(|v| v.as_bytes().to_vec()).collect();
        check_reported_pcr_values(&info, hash, &values)?;
    }
    check_pcr_digest(&info, hash, accepted)
}

#[cfg(test)]
mod tests;
