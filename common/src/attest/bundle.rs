//! The `id-aa-attestation` CSR attribute (draft-ietf-lamps-csr-attestation-28 §4): an
//! `AttestationBundle` of `AttestationStatement`s, and the two TPM 2.0 statements this suite
//! carries in it.
//!
//! ```text
//! AttestationBundle ::= SEQUENCE {
//!    attestations SEQUENCE SIZE (1..MAX) OF AttestationStatement,
//!    certs SEQUENCE SIZE (1..MAX) OF LimitedCertChoices OPTIONAL }
//! AttestationStatement ::= SEQUENCE { type OBJECT IDENTIFIER, stmt ANY DEFINED BY type }
//! ```
//!
//! Drafts up to -21 called these `EvidenceBundle` and `EvidenceStatement`, the latter with a
//! third field `hint IA5String OPTIONAL`; the decoder reads both shapes, the encoder writes the
//! -28 one.

use super::AttestError;
use crate::est::RawOid;
use crate::oid::{ID_AA_ATTESTATION, TCG_ATTEST_TPM_CERTIFY, TPM_QUOTE_STATEMENT};
use der::asn1::{Ia5String, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Reader, Sequence, SliceReader, Tag, TagNumber, Tagged};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::request::CertReq;

/// Why an `id-aa-attestation` attribute or one of its statements could not be read or written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("AttestationBundle is malformed: {0}")]
    Malformed(String),
    #[error("the CSR has more than one id-aa-attestation attribute")]
    DuplicateAttribute,
    #[error("the id-aa-attestation attribute has {0} values, exactly one required")]
    AttributeValues(usize),
    #[error("AttestationBundle has no attestations")]
    Empty,
    #[error("statement {stmt_type} is malformed: {reason}")]
    MalformedStatement { stmt_type: String, reason: String },
    #[error("a statement with a hint cannot be written in the draft-28 shape")]
    HintNotInDraft28,
    #[error("AttestationBundle could not be encoded: {0}")]
    Encoding(String),
}

fn malformed(e: impl std::fmt::Display) -> BundleError {
    BundleError::Malformed(e.to_string())
}

fn encoding(e: impl std::fmt::Display) -> BundleError {
    BundleError::Encoding(e.to_string())
}

/// One `AttestationStatement` (§4.1). The type is a [`RawOid`], so statements of any format
/// are read (and can be skipped); `hint` is only ever set when reading the ≤ -21 shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationStatement {
    pub stmt_type: RawOid,
    pub stmt: Any,
    pub hint: Option<String>,
}

/// One entry of `certs` (`LimitedCertChoices`, §4.1): an X.509 certificate, or an
/// `OtherCertificateFormat` (`[3] IMPLICIT SEQUENCE { otherCertFormat OID, otherCert ANY }`),
/// kept as its DER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleCert {
    X509(Box<Certificate>),
    Other(Any),
}

/// An `AttestationBundle` (§4.1): the value of the `id-aa-attestation` attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationBundle {
    pub attestations: Vec<AttestationStatement>,
    pub certs: Vec<BundleCert>,
}

const OTHER_CERT_TAG: Tag = Tag::ContextSpecific {
    constructed: true,
    number: TagNumber(3),
};

impl AttestationBundle {
    /// Decode an AttestationBundle, or an EvidenceBundle of drafts ≤ -21 (statements with a
    /// hint). `attestations` must not be empty; `certs`, when present, neither.
    pub fn from_der(der: &[u8]) -> Result<Self, BundleError> {
        let mut reader = SliceReader::new(der).map_err(malformed)?;
        let bundle = reader
            .sequence(|r| {
                let attestations = r.sequence(|r| {
                    let mut out = Vec::new();
                    while !r.is_finished() {
                        out.push(r.sequence(decode_statement)?);
                    }
                    Ok::<_, der::Error>(out)
                })?;
                let certs = if r.is_finished() {
                    None
                } else {
                    Some(r.sequence(|r| {
                        let mut out = Vec::new();
                        while !r.is_finished() {
                            out.push(decode_cert(r)?);
                        }
                        Ok::<_, der::Error>(out)
                    })?)
                };
                Ok::<_, der::Error>((attestations, certs))
            })
            .map_err(malformed)?;
        reader.finish().map_err(malformed)?;
        let (attestations, certs) = bundle;
        if attestations.is_empty() {
            return Err(BundleError::Empty);
        }
        if certs.as_ref().is_some_and(Vec::is_empty) {
            return Err(BundleError::Malformed("certs is present but empty".into()));
        }
        Ok(Self {
            attestations,
            certs: certs.unwrap_or_default(),
        })
    }

    /// Encode in the draft-28 shape (`certs` omitted when empty).
    pub fn to_der(&self) -> Result<Vec<u8>, BundleError> {
        if self.attestations.is_empty() {
            return Err(BundleError::Empty);
        }
        let mut statements = Vec::new();
        for s in &self.attestations {
            if s.hint.is_some() {
                return Err(BundleError::HintNotInDraft28);
            }
            let oid = Any::new(Tag::ObjectIdentifier, s.stmt_type.as_bytes()).map_err(encoding)?;
            statements.push(sequence_of(&[oid, s.stmt.clone()])?);
        }
        let mut fields = vec![sequence_of(&statements)?];
        if !self.certs.is_empty() {
            let certs = self
                .certs
                .iter()
                .map(|c| match c {
                    BundleCert::X509(cert) => Any::encode_from(cert.as_ref()).map_err(encoding),
                    BundleCert::Other(any) => Ok(any.clone()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            fields.push(sequence_of(&certs)?);
        }
        sequence_of(&fields)?.to_der().map_err(encoding)
    }

    /// The X.509 certificates of `certs` (e.g. the IAK certificate and its chain).
    pub fn x509_certs(&self) -> impl Iterator<Item = &Certificate> {
        self.certs.iter().filter_map(|c| match c {
            BundleCert::X509(cert) => Some(cert.as_ref()),
            BundleCert::Other(_) => None,
        })
    }

    /// The statements of type `oid`.
    pub fn statements_of<'a>(
        &'a self,
        oid: &'a RawOid,
    ) -> impl Iterator<Item = &'a AttestationStatement> + 'a {
        self.attestations
            .iter()
            .filter(move |s| &s.stmt_type == oid)
    }

    /// The PKCS#10 attribute carrying this bundle (§4.3: one attribute, one value).
    pub fn to_attribute(&self) -> Result<Attribute, BundleError> {
        let value = Any::from_der(&self.to_der()?).map_err(encoding)?;
        let mut values = SetOfVec::new();
        values.insert(value).map_err(encoding)?;
        Ok(Attribute {
            oid: ID_AA_ATTESTATION,
            values,
        })
    }

    /// The bundle of a CSR's `id-aa-attestation` attribute; `None` without one. More than one
    /// attribute, or a number of values other than one, is an error (§4.3, COUNTS MAX 1).
    pub fn from_csr(req: &CertReq) -> Result<Option<Self>, BundleError> {
        let attr = crate::pki::csr::attribute(req, ID_AA_ATTESTATION)
            .map_err(|_| BundleError::DuplicateAttribute)?;
        let Some(attr) = attr else {
            return Ok(None);
        };
        match attr.values.as_slice() {
            [value] => Self::from_der(&value.to_der().map_err(malformed)?).map(Some),
            values => Err(BundleError::AttributeValues(values.len())),
        }
    }
}

fn sequence_of(items: &[Any]) -> Result<Any, BundleError> {
    let mut content = Vec::new();
    for item in items {
        item.encode_to_vec(&mut content).map_err(encoding)?;
    }
    Any::new(Tag::Sequence, content).map_err(encoding)
}

fn decode_statement<'a>(r: &mut SliceReader<'a>) -> der::Result<AttestationStatement> {
    let oid = Any::decode(r)?;
    if oid.tag() != Tag::ObjectIdentifier {
        return Err(der::Error::new(
            der::ErrorKind::TagUnexpected {
                expected: Some(Tag::ObjectIdentifier),
                actual: oid.tag(),
            },
            r.position(),
        ));
    }
    let stmt_type = RawOid::from_der_content(oid.value())
        .map_err(|_| der::Error::new(der::ErrorKind::OidMalformed, r.position()))?;
    let stmt = Any::decode(r)?;
    let hint = if r.is_finished() {
        None
    } else {
        Some(Ia5String::decode(r)?.to_string())
    };
    Ok(AttestationStatement {
        stmt_type,
        stmt,
        hint,
    })
}

fn decode_cert<'a>(r: &mut SliceReader<'a>) -> der::Result<BundleCert> {
    let any = Any::decode(r)?;
    match any.tag() {
        Tag::Sequence => Ok(BundleCert::X509(Box::new(any.decode_as()?))),
        tag if tag == OTHER_CERT_TAG => Ok(BundleCert::Other(any)),
        actual => Err(der::Error::new(
            der::ErrorKind::TagUnexpected {
                expected: Some(Tag::Sequence),
                actual,
            },
            r.position(),
        )),
    }
}

/// The TPM2_Certify statement, `tcg-attest-tpm-certify` (2.23.133.20.1), as in the TPM
/// appendix of the CSR-attestation drafts and their sample data:
/// `SEQUENCE { tpmSAttest OCTET STRING, signature OCTET STRING, tpmTPublic OCTET STRING
/// OPTIONAL }` with a marshalled TPMS_ATTEST, TPMT_SIGNATURE and the certified key's
/// TPMT_PUBLIC.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct TpmCertifyStatement {
    pub tpms_attest: OctetString,
    pub signature: OctetString,
    #[asn1(optional = "true")]
    pub tpmt_public: Option<OctetString>,
}

/// The TPM2_Quote statement of this suite, type [`TPM_QUOTE_STATEMENT`]. No TCG or IETF text
/// defines an ASN.1 statement for a TPM quote (the CSR-attestation drafts only give the
/// certify one), so this one mirrors it under this project's private arc:
///
/// ```text
/// TpmQuoteStatement ::= SEQUENCE {
///    tpmSAttest OCTET STRING,            -- TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE
///    signature  OCTET STRING,            -- TPMT_SIGNATURE by the IAK
///    pcrValues  SEQUENCE OF OCTET STRING OPTIONAL }
///                 -- the quoted PCR values, in the order of the quote's TPML_PCR_SELECTION
/// ```
///
/// The verifier appraises pcrDigest against its reference values; `pcrValues` only lets it say
/// which PCR differs.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct TpmQuoteStatement {
    pub tpms_attest: OctetString,
    pub signature: OctetString,
    #[asn1(optional = "true")]
    pub pcr_values: Option<Vec<OctetString>>,
}

/// The TPM statements of a bundle that this suite appraises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmEvidence {
    pub certify: Option<TpmCertifyStatement>,
    pub quote: Option<TpmQuoteStatement>,
}

impl TpmEvidence {
    /// Read the certify and quote statements of `bundle`; other statement types are ignored.
    /// draft-28 §4.3 allows several statements of one type, but this suite refuses a second
    /// certify or quote statement: which one was appraised would be ambiguous, and a genuine
    /// pledge never sends two ([`AttestError::DuplicateStatement`]).
    pub fn from_bundle(bundle: &AttestationBundle) -> Result<Self, AttestError> {
        let certify = single(bundle, &RawOid::from(TCG_ATTEST_TPM_CERTIFY), "certify")?;
        let quote = single(bundle, &quote_statement_oid(), "quote")?;
        Ok(Self {
            certify: certify.map(decode_stmt).transpose()?,
            quote: quote.map(decode_stmt).transpose()?,
        })
    }

    /// A bundle holding these statements and `certs`.
    pub fn to_bundle(&self, certs: Vec<BundleCert>) -> Result<AttestationBundle, BundleError> {
        let mut attestations = Vec::new();
        if let Some(c) = &self.certify {
            attestations.push(statement(RawOid::from(TCG_ATTEST_TPM_CERTIFY), c)?);
        }
        if let Some(q) = &self.quote {
            attestations.push(statement(quote_statement_oid(), q)?);
        }
        Ok(AttestationBundle {
            attestations,
            certs,
        })
    }
}

/// [`TPM_QUOTE_STATEMENT`] as a [`RawOid`] (its UUID arc exceeds `const_oid`'s 32 bits).
pub fn quote_statement_oid() -> RawOid {
    RawOid::from_der_content(TPM_QUOTE_STATEMENT).unwrap_or_else(|_| unreachable!())
}

fn single<'a>(
    bundle: &'a AttestationBundle,
    oid: &RawOid,
    kind: &'static str,
) -> Result<Option<&'a AttestationStatement>, AttestError> {
    let mut found = bundle.attestations.iter().filter(|s| &s.stmt_type == oid);
    let first = found.next();
    if found.next().is_some() {
        return Err(AttestError::DuplicateStatement(kind));
    }
    Ok(first)
}

fn decode_stmt<T: for<'a> Decode<'a, Error = der::Error>>(
    s: &AttestationStatement,
) -> Result<T, AttestError> {
    let malformed = |e: der::Error| {
        AttestError::Bundle(BundleError::MalformedStatement {
            stmt_type: s.stmt_type.to_string(),
            reason: e.to_string(),
        })
    };
    T::from_der(&s.stmt.to_der().map_err(malformed)?).map_err(malformed)
}

fn statement(stmt_type: RawOid, value: &impl Encode) -> Result<AttestationStatement, BundleError> {
    Ok(AttestationStatement {
        stmt_type,
        stmt: Any::from_der(&value.to_der().map_err(encoding)?).map_err(encoding)?,
        hint: None,
    })
}
