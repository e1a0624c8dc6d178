//! The data model: [`Voucher`] (RFC 8366bis §8.4) and [`VoucherRequest`] (RFC 8366bis §9.2)
//! and the types of their leaves.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::leaf::{
    Container, Leaf, LeafRef, LeafValue, Schema, VOUCHER_REQUEST_SCHEMA, VOUCHER_SCHEMA, mismatch,
};
use super::{DecodeError, EncodeError, VOUCHER_JSON_NAME, VOUCHER_REQUEST_JSON_NAME, cbor, json};
use crate::envelope::Format;
use crate::input::B64;

/// The `assertion` enumeration (RFC 8366bis §8.4; CBOR integers from the table in §8.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Assertion {
    /// The MASA positively verified ownership (sales integration).
    Verified,
    /// Minimal verification; the issuance was logged (audit model).
    Logged,
    /// The MASA verified a proximity proof (a pledge-signed request naming this registrar).
    Proximity,
    /// As `proximity`, with the proof relayed by a registrar-agent (BRSKI-PRM).
    AgentProximity,
}

impl Assertion {
    /// All values, in CBOR-integer order.
    pub const ALL: [Assertion; 4] = [
        Assertion::Verified,
        Assertion::Logged,
        Assertion::Proximity,
        Assertion::AgentProximity,
    ];

    /// The enum name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Assertion::Verified => "verified",
            Assertion::Logged => "logged",
            Assertion::Proximity => "proximity",
            Assertion::AgentProximity => "agent-proximity",
        }
    }

    /// The integer used in CBOR (RFC 8366bis §8.5).
    pub fn cbor_value(self) -> u64 {
        match self {
            Assertion::Verified => 0,
            Assertion::Logged => 1,
            Assertion::Proximity => 2,
            Assertion::AgentProximity => 3,
        }
    }

    /// The value with JSON name `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The value with CBOR integer `value`.
    pub fn from_cbor_value(value: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.cbor_value() == value)
    }
}

impl fmt::Display for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a text is not a `yang:date-and-time`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DateTimeError(String);

/// A `yang:date-and-time` value (RFC 6991 §3, an RFC 3339 date-time with offset, optional
/// fractional seconds). Keeps the text it was read from, so that re-encoding reproduces the
/// exact value (`.750` stays `.750`, offsets stay as written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DateTime {
    text: String,
    instant: OffsetDateTime,
}

impl DateTime {
    /// Parse an RFC 3339 date-time: `T` (or `t`) separator, `Z` or `±hh:mm` offset,
    /// fractional seconds optional.
    pub fn parse(text: &str) -> Result<Self, DateTimeError> {
        // The time crate accepts any separator byte; the YANG pattern wants `T`.
        if !matches!(text.as_bytes().get(10), Some(b'T' | b't')) {
            return Err(DateTimeError(
                "date and time must be separated by `T`".into(),
            ));
        }
        let instant =
            OffsetDateTime::parse(text, &Rfc3339).map_err(|e| DateTimeError(e.to_string()))?;
        Ok(Self {
            text: text.to_string(),
            instant,
        })
    }

    /// The RFC 3339 text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The point in time, with the offset it was written with.
    pub fn instant(&self) -> OffsetDateTime {
        self.instant
    }
}

impl TryFrom<OffsetDateTime> for DateTime {
    type Error = DateTimeError;

    /// Format `instant` in RFC 3339 (years 0000–9999, whole-minute offsets).
    fn try_from(instant: OffsetDateTime) -> Result<Self, DateTimeError> {
        let text = instant
            .format(&Rfc3339)
            .map_err(|e| DateTimeError(e.to_string()))?;
        Ok(Self { text, instant })
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The system random number generator failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// A voucher(-request) `nonce` (RFC 8366bis §8.4; RFC 8995 §5.2). Opaque (SPEC §2.3, §10.1):
/// read from JSON it is the exact JSON string (real examples are base64url or hex-looking text,
/// not the standard base64 the YANG `binary` type implies); read from CBOR it is the bytes.
/// Echoed unchanged.
///
/// Equality is the exact comparison a pledge makes: two texts are equal when they are the same
/// string, two byte strings when they are the same bytes, and a byte string equals the text
/// that is its standard base64 (the form [`Nonce::json_string`] sends).
#[derive(Clone, Debug)]
pub enum Nonce {
    /// The JSON string, exactly as received or to be sent.
    Text(String),
    /// The CBOR byte string; sent in JSON as standard base64.
    Bytes(Vec<u8>),
}

impl Nonce {
    /// Length of [`Nonce::generate`]d nonces, within the YANG `length 8..32` (RFC 8366bis §8.4).
    pub const GENERATED_LEN: usize = 16;

    /// A fresh nonce of 16 random bytes from the system CSPRNG (RFC 8995 §5.2, §11.3).
    pub fn generate() -> Result<Self, RandomError> {
        let mut bytes = vec![0u8; Self::GENERATED_LEN];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| RandomError)?;
        Ok(Nonce::Bytes(bytes))
    }

    /// The YANG length range of `nonce`, in octets (RFC 8366bis §8.4: `binary`, `length 8..32`).
    pub const LENGTH: std::ops::RangeInclusive<usize> = 8..=32;

    /// The length the YANG `length` restriction is checked against: for bytes their number;
    /// for text the number of octets it decodes to as base64 (standard or url alphabet, padding
    /// optional: the `binary` encoding, and what real examples use), else, for text that is not
    /// base64 at all, its UTF-8 length (it is relayed as opaque octets).
    pub fn octet_len(&self) -> usize {
        match self {
            Nonce::Text(text) => json::decode_binary(text).map_or(text.len(), |b| b.len()),
            Nonce::Bytes(bytes) => bytes.len(),
        }
    }

    /// `self` when its [`Nonce::octet_len`] is within [`Nonce::LENGTH`] (what the decoders
    /// accept), else [`DecodeError::NonceLength`].
    pub fn checked(self) -> Result<Self, super::DecodeError> {
        let length = self.octet_len();
        if Self::LENGTH.contains(&length) {
            Ok(self)
        } else {
            Err(super::DecodeError::NonceLength { length })
        }
    }

    /// The JSON string form: the text itself, or standard base64 of the bytes.
    pub fn json_string(&self) -> Cow<'_, str> {
        match self {
            Nonce::Text(text) => Cow::Borrowed(text),
            Nonce::Bytes(bytes) => Cow::Owned(B64.encode(bytes)),
        }
    }

    /// The CBOR byte-string form: the bytes, or the text decoded as base64 (standard or url
    /// alphabet, padding optional). `None` when the text is not base64.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        match self {
            Nonce::Text(text) => json::decode_binary(text),
            Nonce::Bytes(bytes) => Some(bytes.clone()),
        }
    }
}

impl PartialEq for Nonce {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Nonce::Text(a), Nonce::Text(b)) => a == b,
            (Nonce::Bytes(a), Nonce::Bytes(b)) => a == b,
            (Nonce::Text(t), Nonce::Bytes(b)) | (Nonce::Bytes(b), Nonce::Text(t)) => {
                *t == B64.encode(b)
            }
        }
    }
}

impl Eq for Nonce {}

impl From<String> for Nonce {
    /// A nonce received as a JSON string, relayed unchanged (RFC 8995 §5.5).
    fn from(text: String) -> Self {
        Nonce::Text(text)
    }
}

impl From<&str> for Nonce {
    fn from(text: &str) -> Self {
        Nonce::Text(text.to_string())
    }
}

impl From<Vec<u8>> for Nonce {
    fn from(bytes: Vec<u8>) -> Self {
        Nonce::Bytes(bytes)
    }
}

/// An entry of the `extensions` leaf-list, `union { uint64; string }` (RFC 8366bis §8.4,
/// §8.6): the extension module's SID or its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExtensionId {
    Sid(u64),
    Name(String),
}

/// The key of extension data in CBOR (RFC 9254 §3.2: an absolute SID under tag 47, or a name).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CborExtensionKey {
    Sid(u64),
    Name(String),
}

impl fmt::Display for CborExtensionKey {
    /// CBOR diagnostic notation of the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CborExtensionKey::Sid(sid) => write!(f, "47({sid})"),
            CborExtensionKey::Name(name) => write!(f, "{name:?}"),
        }
    }
}

/// The data object of an extension (RFC 8366bis §8.6), kept as received so that it round-trips.
/// Its structure belongs to the extension's own module, so it is re-encoded only in the
/// encoding it came in.
#[derive(Clone, Debug, PartialEq)]
pub enum ExtensionData {
    /// A namespace-qualified JSON member, e.g. `"extension:example-my-extension": {…}`.
    Json {
        member: String,
        value: serde_json::Value,
    },
    /// A CBOR member keyed by tag 47 absolute SID or by a qualified name.
    Cbor {
        key: CborExtensionKey,
        value: ciborium::Value,
    },
}

/// A voucher, the `ietf-voucher:voucher` container (RFC 8366bis §8.4). Field names are the
/// YANG leaf names; `None` is an absent leaf.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Voucher {
    pub assertion: Option<Assertion>,
    pub created_on: Option<DateTime>,
    pub domain_cert_revocation_checks: Option<bool>,
    pub expires_on: Option<DateTime>,
    /// The whole AKI extension value of the pledge's IDevID (RFC 8366bis §6.1).
    pub idevid_issuer: Option<Vec<u8>>,
    pub last_renewal_date: Option<DateTime>,
    pub nonce: Option<Nonce>,
    /// DER X.509 certificate.
    pub pinned_domain_cert: Option<Vec<u8>>,
    /// DER SubjectPublicKeyInfo (RFC 7250 §3).
    pub pinned_domain_pubk: Option<Vec<u8>>,
    /// SHA-256 of the DER SubjectPublicKeyInfo.
    pub pinned_domain_pubk_sha256: Option<Vec<u8>>,
    /// Mandatory.
    pub serial_number: String,
    pub additional_configuration_url: Option<String>,
    pub est_domain: Option<String>,
    pub manufacturer_proprietary: Option<Vec<u8>>,
    /// The `extensions` leaf-list; empty when absent.
    pub extensions: Vec<ExtensionId>,
    /// The extensions' data objects (RFC 8366bis §8.6).
    pub extension_data: Vec<ExtensionData>,
}

/// A voucher-request, the `ietf-voucher-request:voucher` container (RFC 8366bis §9.2): the
/// voucher leaves plus the request-only ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VoucherRequest {
    pub assertion: Option<Assertion>,
    pub created_on: Option<DateTime>,
    pub domain_cert_revocation_checks: Option<bool>,
    pub expires_on: Option<DateTime>,
    /// The whole AKI extension value of the pledge's IDevID (RFC 8366bis §6.1).
    pub idevid_issuer: Option<Vec<u8>>,
    pub last_renewal_date: Option<DateTime>,
    pub nonce: Option<Nonce>,
    pub pinned_domain_cert: Option<Vec<u8>>,
    pub pinned_domain_pubk: Option<Vec<u8>>,
    pub pinned_domain_pubk_sha256: Option<Vec<u8>>,
    /// Mandatory.
    pub serial_number: String,
    pub additional_configuration_url: Option<String>,
    pub est_domain: Option<String>,
    pub manufacturer_proprietary: Option<Vec<u8>>,
    /// The `extensions` leaf-list; empty when absent.
    pub extensions: Vec<ExtensionId>,
    /// The extensions' data objects (RFC 8366bis §8.6).
    pub extension_data: Vec<ExtensionData>,
    /// The whole signed pledge voucher-request (or the previous voucher, on renewal)
    /// (RFC 8995 §5.5; RFC 8366bis §10.1).
    pub prior_signed_voucher_request: Option<Vec<u8>>,
    /// DER of the registrar's TLS end-entity certificate (RFC 8995 §5.2).
    pub proximity_registrar_cert: Option<Vec<u8>>,
    /// SHA-256 of the registrar's SubjectPublicKeyInfo (cBRSKI §13).
    pub proximity_registrar_pubk_sha256: Option<Vec<u8>>,
    /// The registrar's DER SubjectPublicKeyInfo (cBRSKI §13).
    pub proximity_registrar_pubk: Option<Vec<u8>>,
    /// BRSKI-PRM.
    pub agent_provided_proximity_registrar_cert: Option<Vec<u8>>,
    /// BRSKI-PRM.
    pub agent_sign_cert: Option<Vec<u8>>,
    /// BRSKI-PRM.
    pub agent_signed_data: Option<Vec<u8>>,
}

/// Conversion of a stored field to a borrowed leaf value.
trait AsLeafRef {
    fn as_leaf_ref(&self) -> LeafRef<'_>;
}

impl AsLeafRef for Assertion {
    fn as_leaf_ref(&self) -> LeafRef<'_> {
        LeafRef::Assertion(*self)
    }
}
impl AsLeafRef for DateTime {
    fn as_leaf_ref(&self) -> LeafRef<'_> {
        LeafRef::DateTime(self)
    }
}
impl AsLeafRef for bool {
    fn as_leaf_ref(&self) -> LeafRef<'_> {
        LeafRef::Boolean(*self)
    }
}
impl AsLeafRef for Vec<u8> {
    fn as_leaf_ref(&self) -> LeafRef<'_> {
        LeafRef::Binary(self)
    }
}
impl AsLeafRef for Nonce {
    fn as_leaf_ref(&self) -> LeafRef<'_> {
        LeafRef::Nonce(self)
    }
}
impl AsLeafRef for String {
    fn as_leaf_ref(&self) -> LeafRef<'_> {
        LeafRef::Text(self)
    }
}

/// Conversion of a decoded leaf value to a field's type.
trait FromLeafValue: Sized {
    fn from_leaf_value(value: LeafValue) -> Option<Self>;
}

impl FromLeafValue for Assertion {
    fn from_leaf_value(value: LeafValue) -> Option<Self> {
        match value {
            LeafValue::Assertion(a) => Some(a),
            _ => None,
        }
    }
}
impl FromLeafValue for DateTime {
    fn from_leaf_value(value: LeafValue) -> Option<Self> {
        match value {
            LeafValue::DateTime(d) => Some(d),
            _ => None,
        }
    }
}
impl FromLeafValue for bool {
    fn from_leaf_value(value: LeafValue) -> Option<Self> {
        match value {
            LeafValue::Boolean(b) => Some(b),
            _ => None,
        }
    }
}
impl FromLeafValue for Vec<u8> {
    fn from_leaf_value(value: LeafValue) -> Option<Self> {
        match value {
            LeafValue::Binary(b) => Some(b),
            _ => None,
        }
    }
}
impl FromLeafValue for Nonce {
    fn from_leaf_value(value: LeafValue) -> Option<Self> {
        match value {
            LeafValue::Nonce(n) => Some(n),
            _ => None,
        }
    }
}
impl FromLeafValue for String {
    fn from_leaf_value(value: LeafValue) -> Option<Self> {
        match value {
            LeafValue::Text(s) => Some(s),
            _ => None,
        }
    }
}

fn put<T: FromLeafValue>(
    slot: &mut Option<T>,
    leaf: Leaf,
    value: LeafValue,
) -> Result<(), DecodeError> {
    *slot = Some(T::from_leaf_value(value).ok_or_else(|| mismatch(leaf))?);
    Ok(())
}

fn put_serial(slot: &mut String, value: LeafValue) -> Result<(), DecodeError> {
    *slot = String::from_leaf_value(value).ok_or_else(|| mismatch(Leaf::SerialNumber))?;
    Ok(())
}

fn put_extensions(slot: &mut Vec<ExtensionId>, value: LeafValue) -> Result<(), DecodeError> {
    match value {
        LeafValue::Extensions(list) => {
            *slot = list;
            Ok(())
        }
        _ => Err(mismatch(Leaf::Extensions)),
    }
}

fn push<'a, T: AsLeafRef>(out: &mut Vec<(Leaf, LeafRef<'a>)>, leaf: Leaf, field: &'a Option<T>) {
    if let Some(value) = field {
        out.push((leaf, value.as_leaf_ref()));
    }
}

/// The leaves a voucher and a voucher-request share, as `present` entries.
macro_rules! shared_leaves {
    ($self:ident, $out:ident) => {{
        push(&mut $out, Leaf::Assertion, &$self.assertion);
        push(&mut $out, Leaf::CreatedOn, &$self.created_on);
        push(
            &mut $out,
            Leaf::DomainCertRevocationChecks,
            &$self.domain_cert_revocation_checks,
        );
        push(&mut $out, Leaf::ExpiresOn, &$self.expires_on);
        push(&mut $out, Leaf::IdevidIssuer, &$self.idevid_issuer);
        push(&mut $out, Leaf::LastRenewalDate, &$self.last_renewal_date);
        push(&mut $out, Leaf::Nonce, &$self.nonce);
        push(&mut $out, Leaf::PinnedDomainCert, &$self.pinned_domain_cert);
        push(&mut $out, Leaf::PinnedDomainPubk, &$self.pinned_domain_pubk);
        push(
            &mut $out,
            Leaf::PinnedDomainPubkSha256,
            &$self.pinned_domain_pubk_sha256,
        );
        $out.push((Leaf::SerialNumber, LeafRef::Text(&$self.serial_number)));
        push(
            &mut $out,
            Leaf::AdditionalConfigurationUrl,
            &$self.additional_configuration_url,
        );
        push(&mut $out, Leaf::EstDomain, &$self.est_domain);
        push(
            &mut $out,
            Leaf::ManufacturerProprietary,
            &$self.manufacturer_proprietary,
        );
        if !$self.extensions.is_empty() {
            $out.push((Leaf::Extensions, LeafRef::Extensions(&$self.extensions)));
        }
    }};
}

/// `Container::set` for the leaves a voucher and a voucher-request share; the caller adds the
/// match arms for the other leaves.
macro_rules! set_shared {
    ($self:ident, $leaf:ident, $value:ident, $($other:tt)*) => {
        match $leaf {
            Leaf::Assertion => put(&mut $self.assertion, $leaf, $value),
            Leaf::CreatedOn => put(&mut $self.created_on, $leaf, $value),
            Leaf::DomainCertRevocationChecks => {
                put(&mut $self.domain_cert_revocation_checks, $leaf, $value)
            }
            Leaf::ExpiresOn => put(&mut $self.expires_on, $leaf, $value),
            Leaf::IdevidIssuer => put(&mut $self.idevid_issuer, $leaf, $value),
            Leaf::LastRenewalDate => put(&mut $self.last_renewal_date, $leaf, $value),
            Leaf::Nonce => put(&mut $self.nonce, $leaf, $value),
            Leaf::PinnedDomainCert => put(&mut $self.pinned_domain_cert, $leaf, $value),
            Leaf::PinnedDomainPubk => put(&mut $self.pinned_domain_pubk, $leaf, $value),
            Leaf::PinnedDomainPubkSha256 => {
                put(&mut $self.pinned_domain_pubk_sha256, $leaf, $value)
            }
            Leaf::SerialNumber => put_serial(&mut $self.serial_number, $value),
            Leaf::AdditionalConfigurationUrl => {
                put(&mut $self.additional_configuration_url, $leaf, $value)
            }
            Leaf::EstDomain => put(&mut $self.est_domain, $leaf, $value),
            Leaf::ManufacturerProprietary => {
                put(&mut $self.manufacturer_proprietary, $leaf, $value)
            }
            Leaf::Extensions => put_extensions(&mut $self.extensions, $value),
            $($other)*
        }
    };
}

impl Container for Voucher {
    const SCHEMA: &'static Schema = &VOUCHER_SCHEMA;

    fn set(&mut self, leaf: Leaf, value: LeafValue) -> Result<(), DecodeError> {
        set_shared!(self, leaf, value, _ => Err(mismatch(leaf)))
    }

    fn present(&self) -> Vec<(Leaf, LeafRef<'_>)> {
        let mut out = Vec::with_capacity(16);
        shared_leaves!(self, out);
        out
    }

    fn extension_data(&self) -> &[ExtensionData] {
        &self.extension_data
    }

    fn push_extension_data(&mut self, data: ExtensionData) {
        self.extension_data.push(data);
    }
}

impl Container for VoucherRequest {
    const SCHEMA: &'static Schema = &VOUCHER_REQUEST_SCHEMA;

    fn set(&mut self, leaf: Leaf, value: LeafValue) -> Result<(), DecodeError> {
        set_shared!(self, leaf, value,
            Leaf::PriorSignedVoucherRequest => {
                put(&mut self.prior_signed_voucher_request, leaf, value)
            }
            Leaf::ProximityRegistrarCert => put(&mut self.proximity_registrar_cert, leaf, value),
            Leaf::ProximityRegistrarPubkSha256 => {
                put(&mut self.proximity_registrar_pubk_sha256, leaf, value)
            }
            Leaf::ProximityRegistrarPubk => put(&mut self.proximity_registrar_pubk, leaf, value),
            Leaf::AgentProvidedProximityRegistrarCert => {
                put(&mut self.agent_provided_proximity_registrar_cert, leaf, value)
            }
            Leaf::AgentSignCert => put(&mut self.agent_sign_cert, leaf, value),
            Leaf::AgentSignedData => put(&mut self.agent_signed_data, leaf, value),
        )
    }

    fn present(&self) -> Vec<(Leaf, LeafRef<'_>)> {
        let mut out = Vec::with_capacity(24);
        shared_leaves!(self, out);
        push(
            &mut out,
            Leaf::PriorSignedVoucherRequest,
            &self.prior_signed_voucher_request,
        );
        push(
            &mut out,
            Leaf::ProximityRegistrarCert,
            &self.proximity_registrar_cert,
        );
        push(
            &mut out,
            Leaf::ProximityRegistrarPubkSha256,
            &self.proximity_registrar_pubk_sha256,
        );
        push(
            &mut out,
            Leaf::ProximityRegistrarPubk,
            &self.proximity_registrar_pubk,
        );
        push(
            &mut out,
            Leaf::AgentProvidedProximityRegistrarCert,
            &self.agent_provided_proximity_registrar_cert,
        );
        push(&mut out, Leaf::AgentSignCert, &self.agent_sign_cert);
        push(&mut out, Leaf::AgentSignedData, &self.agent_signed_data);
        out
    }

    fn extension_data(&self) -> &[ExtensionData] {
        &self.extension_data
    }

    fn push_extension_data(&mut self, data: ExtensionData) {
        self.extension_data.push(data);
    }
}

impl Voucher {
    /// A voucher for `serial_number` with no other leaf.
    pub fn new(serial_number: impl Into<String>) -> Self {
        Self {
            serial_number: serial_number.into(),
            ..Self::default()
        }
    }

    /// Decode RFC 7951 JSON rooted at `ietf-voucher:voucher` (RFC 8366bis §8.3), leniently
    /// (SPEC §10.3).
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        json::decode(bytes, &[VOUCHER_JSON_NAME])
    }

    /// Encode as compact RFC 7951 JSON (RFC 8366bis §8.3).
    pub fn to_json(&self) -> Result<Vec<u8>, EncodeError> {
        json::encode(self)
    }

    /// Decode YANG-CBOR (RFC 9254) rooted at SID 2451 or its name, with delta, tag-47 absolute
    /// or name keys (cBRSKI §15.2.2).
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, DecodeError> {
        cbor::decode(bytes)
    }

    /// Encode as YANG-CBOR with delta SID keys (RFC 8366bis §8.5, cBRSKI §9.1).
    pub fn to_cbor(&self) -> Result<Vec<u8>, EncodeError> {
        cbor::encode(self)
    }

    /// Decode the payload of a signed envelope: JSON for CMS and JWS, CBOR for COSE.
    pub fn from_payload(format: Format, bytes: &[u8]) -> Result<Self, DecodeError> {
        match format {
            Format::Cms | Format::Jws => Self::from_json(bytes),
            Format::Cose => Self::from_cbor(bytes),
        }
    }

    /// Encode as the payload of an envelope of `format`.
    pub fn to_payload(&self, format: Format) -> Result<Vec<u8>, EncodeError> {
        match format {
            Format::Cms | Format::Jws => self.to_json(),
            Format::Cose => self.to_cbor(),
        }
    }
}

impl VoucherRequest {
    /// A voucher-request for `serial_number` with no other leaf.
    pub fn new(serial_number: impl Into<String>) -> Self {
        Self {
            serial_number: serial_number.into(),
            ..Self::default()
        }
    }

    /// Decode RFC 7951 JSON rooted at `ietf-voucher-request:voucher` (RFC 8995 §3.3), leniently
    /// (SPEC §10.3); a request rooted at `ietf-voucher:voucher`, as seen in the field, is
    /// accepted too.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        json::decode(bytes, &[VOUCHER_REQUEST_JSON_NAME, VOUCHER_JSON_NAME])
    }

    /// Encode as compact RFC 7951 JSON rooted at `ietf-voucher-request:voucher`.
    pub fn to_json(&self) -> Result<Vec<u8>, EncodeError> {
        json::encode(self)
    }

    /// Decode YANG-CBOR (RFC 9254) rooted at SID 2501 or its name, with delta, tag-47 absolute
    /// or name keys (cBRSKI §15.2.2).
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, DecodeError> {
        cbor::decode(bytes)
    }

    /// Encode as YANG-CBOR with delta SID keys (RFC 8366bis §9.3, cBRSKI §9.1).
    pub fn to_cbor(&self) -> Result<Vec<u8>, EncodeError> {
        cbor::encode(self)
    }

    /// Decode the payload of a signed envelope: JSON for CMS and JWS, CBOR for COSE.
    pub fn from_payload(format: Format, bytes: &[u8]) -> Result<Self, DecodeError> {
        match format {
            Format::Cms | Format::Jws => Self::from_json(bytes),
            Format::Cose => Self::from_cbor(bytes),
        }
    }

    /// Encode as the payload of an envelope of `format`.
    pub fn to_payload(&self, format: Format) -> Result<Vec<u8>, EncodeError> {
        match format {
            Format::Cms | Format::Jws => self.to_json(),
            Format::Cose => self.to_cbor(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::leaf::Kind;
    use super::*;

    #[test]
    fn set_rejects_a_value_of_another_type() {
        let mut v = Voucher::default();
        assert_eq!(
            v.set(Leaf::Nonce, LeafValue::Boolean(true)),
            Err(DecodeError::WrongType {
                leaf: "nonce",
                expected: "binary"
            })
        );
        assert_eq!(
            v.set(Leaf::SerialNumber, LeafValue::Binary(vec![1])),
            Err(DecodeError::WrongType {
                leaf: "serial-number",
                expected: "a string"
            })
        );
        assert_eq!(
            v.set(Leaf::Extensions, LeafValue::Text("x".into())),
            Err(DecodeError::WrongType {
                leaf: "extensions",
                expected: "a list of extension identifiers"
            })
        );
        // A request-only leaf is no leaf of a voucher.
        assert_eq!(
            v.set(Leaf::ProximityRegistrarCert, LeafValue::Binary(vec![1])),
            Err(DecodeError::WrongType {
                leaf: "proximity-registrar-cert",
                expected: "binary"
            })
        );
        assert_eq!(v, Voucher::default());
        let mut vr = VoucherRequest::default();
        assert!(
            vr.set(Leaf::ProximityRegistrarCert, LeafValue::Binary(vec![1]))
                .is_ok()
        );
        assert_eq!(vr.proximity_registrar_cert, Some(vec![1]));
    }

    #[test]
    fn every_voucher_leaf_is_stored_and_read_back() {
        // Each schema leaf set through `Container::set` is reported by `present`.
        let mut vr = VoucherRequest::default();
        for (leaf, _) in VOUCHER_REQUEST_SCHEMA.leaves {
            let value = match leaf.kind() {
                Kind::Assertion => LeafValue::Assertion(Assertion::Logged),
                Kind::DateTime => {
                    LeafValue::DateTime(DateTime::parse("2021-04-13T21:43:23.787Z").expect("date"))
                }
                Kind::Boolean => LeafValue::Boolean(true),
                Kind::Binary => LeafValue::Binary(vec![*leaf as u8]),
                Kind::Nonce => LeafValue::Nonce(Nonce::Bytes(vec![1; 8])),
                Kind::Text => LeafValue::Text(leaf.name().into()),
                Kind::Extensions => LeafValue::Extensions(vec![ExtensionId::Sid(1)]),
            };
            vr.set(*leaf, value).expect("set");
        }
        let present: Vec<Leaf> = vr.present().into_iter().map(|(l, _)| l).collect();
        assert_eq!(present.len(), VOUCHER_REQUEST_SCHEMA.leaves.len());
        for (leaf, _) in VOUCHER_REQUEST_SCHEMA.leaves {
            assert!(present.contains(leaf), "{leaf:?}");
        }
        let mut v = Voucher::default();
        for (leaf, _) in VOUCHER_SCHEMA.leaves {
            let value = vr
                .present()
                .into_iter()
                .find(|(l, _)| l == leaf)
                .map(|(_, r)| match r {
                    LeafRef::Assertion(a) => LeafValue::Assertion(a),
                    LeafRef::DateTime(d) => LeafValue::DateTime(d.clone()),
                    LeafRef::Boolean(b) => LeafValue::Boolean(b),
                    LeafRef::Binary(b) => LeafValue::Binary(b.to_vec()),
                    LeafRef::Nonce(n) => LeafValue::Nonce(n.clone()),
                    LeafRef::Text(s) => LeafValue::Text(s.into()),
                    LeafRef::Extensions(e) => LeafValue::Extensions(e.to_vec()),
                })
                .expect("shared leaf");
            v.set(*leaf, value).expect("set");
        }
        assert_eq!(v.present().len(), VOUCHER_SCHEMA.leaves.len());
        assert_eq!(v.serial_number, "serial-number");
        assert_eq!(
            v.pinned_domain_pubk_sha256,
            Some(vec![Leaf::PinnedDomainPubkSha256 as u8])
        );
    }
}
