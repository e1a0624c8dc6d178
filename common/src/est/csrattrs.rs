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
use const_oid::ObjectIdentifier;
use const_oid::db::{rfc5639, rfc5912, rfc8410};
use der::asn1::SetOfVec;
use der::{Any, Decode, Encode, Sequence, Tag, Tagged};
use x509_cert::ext::Extensions;

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
