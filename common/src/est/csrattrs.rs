//! CSR attributes (`application/csrattrs`, content format 285): RFC 7030 §4.5.2 with the ASN.1
//! fixed by RFC 8951 §3.4.
//!
//! ```text
//! CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
//! AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute {{AttrSet}} }
//! ```

use super::EstError;
use super::RawOid;
use super::body::{decode_base64_body, encode_base64_body};
use crate::oid::{CHALLENGE_PASSWORD, EXTENSION_REQUEST};
use const_oid::AssociatedOid;
use const_oid::ObjectIdentifier;
use const_oid::db::{rfc5639, rfc5912, rfc8410};
use der::asn1::SetOfVec;
use der::{Any, Decode, Encode, Sequence, Tag, Tagged};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::{Extension, Extensions};
use x509_cert::request::CertReq;

/// One requirement of a CSR attributes response (RFC 8951 §3.4). OIDs are [`RawOid`]s because
/// examples use arcs `const_oid` cannot hold (`2.999.1`, RFC 7030 §A.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttrOrOid {
    /// A bare OID: an attribute, extension, algorithm or curve the CSR should use.
    Oid(RawOid),
    /// An attribute with values, e.g. `extensionRequest` or `id-ecPublicKey {secp384r1}`.
    Attribute { oid: RawOid, values: Vec<Any> },
}

impl AttrOrOid {
    /// The OID (the bare OID, or the attribute type).
    pub fn oid(&self) -> &RawOid {
        match self {
            Self::Oid(oid) | Self::Attribute { oid, .. } => oid,
        }
    }
}

/// The key a CSR attributes response asks the client to generate (RFC 7030 §4.5.2,
/// RFC 8951 §3.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestedKey {
    /// An EC key, on `curve` when one is named.
    Ec { curve: Option<ObjectIdentifier> },
    /// An RSA key, of `bits` when given as the `rsaEncryption` attribute value.
    Rsa { bits: Option<u32> },
    /// An Ed25519 key (RFC 8410 §3).
    Ed25519,
    /// An Ed448 key (RFC 8410 §3).
    Ed448,
}

/// RFC 7030 §3.5, with the RFC 9266 `tls-exporter` channel binding in place of tls-unique
/// (which TLS 1.3 does not have): the challengePassword that links a CSR to the TLS connection
/// it is sent on, the base64 of the binding.
pub fn pop_linking_value(channel_binding: &[u8]) -> String {
    use base64::Engine;
    crate::input::B64.encode(channel_binding)
}

/// How a CSR falls short of the CSR attributes response it was meant to follow (RFC 7030
/// §4.5.2; RFC 8995 §5.9.2: the registrar asks, the pledge complies).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unmet {
    #[error("CSR key is not {0} as /csrattrs asks")]
    Key(String),
    #[error("CSR is not signed with {0} as /csrattrs asks")]
    SignatureAlgorithm(ObjectIdentifier),
    #[error("CSR does not request {0} as /csrattrs asks")]
    Missing(String),
    #[error("CSR requests {0}, which /csrattrs does not ask for")]
    Unasked(String),
    #[error("CSR has no challengePassword, which /csrattrs asks for (RFC 7030 §3.5)")]
    ChallengePassword,
    #[error("CSR extensionRequest is malformed: {0}")]
    Malformed(String),
}

/// The names of a subjectAltName extension value, each as its DER (for comparing as sets).
fn san_entries(ext: &Extension) -> Result<Vec<(Vec<u8>, GeneralName)>, Unmet> {
    let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
        .map_err(|e| Unmet::Malformed(format!("subjectAltName: {e}")))?;
    san.0
        .into_iter()
        .map(|n| {
            n.to_der()
                .map(|d| (d, n))
                .map_err(|e| Unmet::Malformed(e.to_string()))
        })
        .collect()
}

fn key_description(key: &RequestedKey) -> String {
    match key {
        RequestedKey::Ec { curve: Some(c) } if *c == rfc5912::SECP_256_R_1 => {
            "an EC key on secp256r1".into()
        }
        RequestedKey::Ec { curve: Some(c) } if *c == rfc5912::SECP_384_R_1 => {
            "an EC key on secp384r1".into()
        }
        RequestedKey::Ec { curve: Some(c) } => format!("an EC key on {c}"),
        RequestedKey::Ec { curve: None } => "an EC key".into(),
        RequestedKey::Rsa { .. } => "an RSA key".into(),
        RequestedKey::Ed25519 => "an Ed25519 key".into(),
        RequestedKey::Ed448 => "an Ed448 key".into(),
    }
}

fn key_matches(key: &RequestedKey, spki: &spki::SubjectPublicKeyInfoOwned) -> bool {
    let oid = spki.algorithm.oid;
    match key {
        RequestedKey::Ec { curve } => {
            let named = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            oid == rfc5912::ID_EC_PUBLIC_KEY && curve.is_none_or(|c| named == Some(c))
        }
        RequestedKey::Rsa { .. } => oid == rfc5912::RSA_ENCRYPTION,
        RequestedKey::Ed25519 => oid == rfc8410::ID_ED_25519,
        RequestedKey::Ed448 => oid == rfc8410::ID_ED_448,
    }
}

/// A CSR attributes response (RFC 8951 §3.4). An empty list means no requirements; entries the
/// client does not understand are ignored by it (RFC 7030 §4.5.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CsrAttrs(pub Vec<AttrOrOid>);

/// `Attribute ::= SEQUENCE { type OBJECT IDENTIFIER, values SET SIZE (1..MAX) OF ANY }`
/// (RFC 5912 §2), with the type read as a raw TLV so that any OID is accepted.
#[derive(Sequence)]
struct AttributeDer {
    oid: Any,
    values: SetOfVec<Any>,
}

fn oid_from_any(any: &Any) -> Result<RawOid, EstError> {
    if any.tag() != Tag::ObjectIdentifier {
        return Err(EstError::Malformed(format!(
            "CsrAttrs: expected an OBJECT IDENTIFIER, found {}",
            any.tag()
        )));
    }
    RawOid::from_der_content(any.value())
}

fn oid_to_any(oid: &RawOid) -> Result<Any, EstError> {
    Any::new(Tag::ObjectIdentifier, oid.as_bytes()).map_err(|e| EstError::Encode(e.to_string()))
}

/// Named EC curves that may appear as a bare OID (RFC 5480 §2.1.1.1, RFC 5639 §4.1).
const CURVES: [ObjectIdentifier; 6] = [
    rfc5912::SECP_256_R_1,
    rfc5912::SECP_384_R_1,
    rfc5912::SECP_521_R_1,
    rfc5639::BRAINPOOL_P_256_R_1,
    rfc5639::BRAINPOOL_P_384_R_1,
    rfc5639::BRAINPOOL_P_512_R_1,
];

/// Hash algorithms (RFC 5754 §2).
const HASHES: [ObjectIdentifier; 4] = [
    rfc5912::ID_SHA_224,
    rfc5912::ID_SHA_256,
    rfc5912::ID_SHA_384,
    rfc5912::ID_SHA_512,
];

/// Signature algorithms and the hash each uses (RFC 5758 §3.2, RFC 4055 §5).
const SIGNATURE_HASHES: [(ObjectIdentifier, ObjectIdentifier); 7] = [
    (rfc5912::ECDSA_WITH_SHA_224, rfc5912::ID_SHA_224),
    (rfc5912::ECDSA_WITH_SHA_256, rfc5912::ID_SHA_256),
    (rfc5912::ECDSA_WITH_SHA_384, rfc5912::ID_SHA_384),
    (rfc5912::ECDSA_WITH_SHA_512, rfc5912::ID_SHA_512),
    (rfc5912::SHA_256_WITH_RSA_ENCRYPTION, rfc5912::ID_SHA_256),
    (rfc5912::SHA_384_WITH_RSA_ENCRYPTION, rfc5912::ID_SHA_384),
    (rfc5912::SHA_512_WITH_RSA_ENCRYPTION, rfc5912::ID_SHA_512),
];

/// Decode an `Any` as `T` (re-reading its DER).
fn any_as<T: for<'a> Decode<'a>>(any: &Any) -> Option<T> {
    any.to_der().ok().and_then(|der| T::from_der(&der).ok())
}

impl CsrAttrs {
    /// RFC 8951 §3.4: decode the DER. Attributes must carry at least one value.
    pub fn from_der(der: &[u8]) -> Result<Self, EstError> {
        let malformed = |e: der::Error| EstError::Malformed(format!("CsrAttrs: {e}"));
        let items = Vec::<Any>::from_der(der).map_err(malformed)?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(match item.tag() {
                Tag::ObjectIdentifier => AttrOrOid::Oid(oid_from_any(&item)?),
                Tag::Sequence => {
                    let attr = item
                        .to_der()
                        .and_then(|d| AttributeDer::from_der(&d))
                        .map_err(malformed)?;
                    let oid = oid_from_any(&attr.oid)?;
                    if attr.values.is_empty() {
                        return Err(EstError::Malformed(format!(
                            "CsrAttrs: attribute {oid} has no values"
                        )));
                    }
                    AttrOrOid::Attribute {
                        oid,
                        values: attr.values.into_vec(),
                    }
                }
                other => {
                    return Err(EstError::Malformed(format!(
                        "CsrAttrs: {other} is neither an OID nor an Attribute"
                    )));
                }
            });
        }
        Ok(Self(out))
    }

    /// RFC 8951 §3.4: the DER (attribute values in DER `SET OF` order).
    pub fn to_der(&self) -> Result<Vec<u8>, EstError> {
        let encode = |e: der::Error| EstError::Encode(e.to_string());
        let mut items = Vec::with_capacity(self.0.len());
        for item in &self.0 {
            items.push(match item {
                AttrOrOid::Oid(oid) => oid_to_any(oid)?,
                AttrOrOid::Attribute { oid, values } => {
                    if values.is_empty() {
                        return Err(EstError::Encode(format!(
                            "CsrAttrs: attribute {oid} has no values"
                        )));
                    }
                    let attr = AttributeDer {
                        oid: oid_to_any(oid)?,
                        values: SetOfVec::try_from(values.clone()).map_err(encode)?,
                    };
                    Any::encode_from(&attr).map_err(encode)?
                }
            });
        }
        items.to_der().map_err(encode)
    }

    /// RFC 8951 §3.2: decode the base64 body of `/csrattrs`.
    pub fn from_body(body: &[u8]) -> Result<Self, EstError> {
        Self::from_der(&decode_base64_body(body)?)
    }

    /// RFC 8951 §3.2: the base64 body of `/csrattrs`.
    pub fn to_body(&self) -> Result<String, EstError> {
        Ok(encode_base64_body(&self.to_der()?))
    }

    /// The bare OIDs, in order.
    pub fn oids(&self) -> impl Iterator<Item = &RawOid> {
        self.0.iter().filter_map(|item| match item {
            AttrOrOid::Oid(oid) => Some(oid),
            AttrOrOid::Attribute { .. } => None,
        })
    }

    /// The values of the first attribute of type `oid`.
    pub fn attribute(&self, oid: &RawOid) -> Option<&[Any]> {
        self.0.iter().find_map(|item| match item {
            AttrOrOid::Attribute { oid: o, values } if o == oid => Some(values.as_slice()),
            _ => None,
        })
    }

    /// Whether `oid` appears, as a bare OID or as an attribute type.
    pub fn mentions(&self, oid: &RawOid) -> bool {
        self.0.iter().any(|item| item.oid() == oid)
    }

    /// RFC 7030 §3.5, §4.5.2: the server asks for the tls-unique value in the CSR's
    /// challengePassword (proof of possession linked to the TLS session).
    pub fn requests_challenge_password(&self) -> bool {
        self.0.iter().any(|item| *item.oid() == CHALLENGE_PASSWORD)
    }

    /// RFC 7030 §4.5.2, RFC 8951 §3.4: the extensions asked for through `extensionRequest`
    /// attributes, whether a value is a bare OID (the RFC 8951 example) or an `Extensions`
    /// template (whose `extnID`s are returned). Other value forms are ignored.
    pub fn requested_extensions(&self) -> Vec<RawOid> {
        let mut out = Vec::new();
        for item in &self.0 {
            let AttrOrOid::Attribute { oid, values } = item else {
                continue;
            };
            if *oid != EXTENSION_REQUEST {
                continue;
            }
            for value in values {
                if value.tag() == Tag::ObjectIdentifier {
                    if let Ok(ext) = RawOid::from_der_content(value.value()) {
                        out.push(ext);
                    }
                } else if let Some(exts) = any_as::<Extensions>(value) {
                    out.extend(exts.iter().map(|e| RawOid::from(e.extn_id)));
                }
            }
        }
        out
    }

    /// RFC 7030 §4.5.2, RFC 8951 §3.4: the extensions to request with the values given, from
    /// every `Extensions` value of an `extensionRequest` attribute (e.g. a subjectAltName with
    /// the names the server will certify, RFC 8995 §5.9.2).
    pub fn extension_templates(&self) -> Vec<Extension> {
        self.0
            .iter()
            .filter_map(|item| match item {
                AttrOrOid::Attribute { oid, values } if *oid == EXTENSION_REQUEST => Some(values),
                _ => None,
            })
            .flatten()
            .filter_map(any_as::<Extensions>)
            .flatten()
            .collect()
    }

    /// Whether `csr` follows this response: the key type and curve, the signature algorithm,
    /// a challengePassword when one is asked for (its value is the caller's to check), and
    /// every extension of [`Self::extension_templates`] with its value; a subjectAltName with
    /// exactly the names asked for (none missing, none added).
    pub fn check_csr(&self, csr: &CertReq) -> Result<(), Unmet> {
        if let Some(key) = self.requested_key() {
            if !key_matches(&key, &csr.info.public_key) {
                return Err(Unmet::Key(key_description(&key)));
            }
        }
        if let Some(alg) = self.requested_signature_algorithm() {
            if csr.algorithm.oid != alg {
                return Err(Unmet::SignatureAlgorithm(alg));
            }
        }
        if self.requests_challenge_password()
            && !csr
                .info
                .attributes
                .iter()
                .any(|a| a.oid == CHALLENGE_PASSWORD)
        {
            return Err(Unmet::ChallengePassword);
        }
        let requested = crate::pki::csr::requested_extensions(csr)
            .map_err(|e| Unmet::Malformed(e.to_string()))?;
        for asked in self.extension_templates() {
            let got = requested.iter().find(|e| e.extn_id == asked.extn_id);
            if asked.extn_id != SubjectAltName::OID {
                if got.is_none_or(|g| g.extn_value != asked.extn_value) {
                    return Err(Unmet::Missing(format!(
                        "extension {} with the value given",
                        asked.extn_id
                    )));
                }
                continue;
            }
            let asked_names = san_entries(&asked)?;
            let got_names = match got {
                Some(g) => san_entries(g)?,
                None => Vec::new(),
            };
            let describe = crate::pki::profile::describe_general_name;
            if let Some((_, n)) = asked_names
                .iter()
                .find(|(d, _)| !got_names.iter().any(|(g, _)| g == d))
            {
                return Err(Unmet::Missing(format!("subjectAltName {}", describe(n))));
            }
            if let Some((_, n)) = got_names
                .iter()
                .find(|(d, _)| !asked_names.iter().any(|(a, _)| a == d))
            {
                return Err(Unmet::Unasked(format!("subjectAltName {}", describe(n))));
            }
        }
        Ok(())
    }

    /// RFC 7030 §4.5.2: the key type (and curve or size) asked for by the first entry that names
    /// one: `id-ecPublicKey` with a curve value, `rsaEncryption` with a size value, or a bare
    /// `id-ecPublicKey`, `rsaEncryption`, named curve, `id-Ed25519` or `id-Ed448`.
    pub fn requested_key(&self) -> Option<RequestedKey> {
        self.0.iter().find_map(|item| match item {
            AttrOrOid::Attribute { oid, values } if *oid == rfc5912::ID_EC_PUBLIC_KEY => {
                Some(RequestedKey::Ec {
                    curve: values.iter().find_map(any_as::<ObjectIdentifier>),
                })
            }
            AttrOrOid::Attribute { oid, values } if *oid == rfc5912::RSA_ENCRYPTION => {
                Some(RequestedKey::Rsa {
                    bits: values.iter().find_map(any_as::<u32>),
                })
            }
            AttrOrOid::Attribute { .. } => None,
            AttrOrOid::Oid(oid) => {
                let oid = oid.to_object_identifier()?;
                if oid == rfc5912::ID_EC_PUBLIC_KEY {
                    Some(RequestedKey::Ec { curve: None })
                } else if oid == rfc5912::RSA_ENCRYPTION {
                    Some(RequestedKey::Rsa { bits: None })
                } else if oid == rfc8410::ID_ED_25519 {
                    Some(RequestedKey::Ed25519)
                } else if oid == rfc8410::ID_ED_448 {
                    Some(RequestedKey::Ed448)
                } else if CURVES.contains(&oid) {
                    Some(RequestedKey::Ec { curve: Some(oid) })
                } else {
                    None
                }
            }
        })
    }

    /// RFC 7030 §4.5.2: the first signature algorithm named by a bare OID (e.g.
    /// `ecdsa-with-SHA384`).
    pub fn requested_signature_algorithm(&self) -> Option<ObjectIdentifier> {
        self.oids()
            .filter_map(RawOid::to_object_identifier)
            .find(|oid| SIGNATURE_HASHES.iter().any(|(sig, _)| sig == oid))
    }

    /// RFC 7030 §4.5.2: the hash the CSR should be signed with: the first bare OID that is a hash
    /// algorithm, or the hash of a named signature algorithm.
    pub fn requested_hash(&self) -> Option<ObjectIdentifier> {
        self.oids()
            .filter_map(RawOid::to_object_identifier)
            .find_map(|oid| {
                if HASHES.contains(&oid) {
                    return Some(oid);
                }
                SIGNATURE_HASHES
                    .iter()
                    .find(|(sig, _)| *sig == oid)
                    .map(|(_, hash)| *hash)
            })
    }
}
