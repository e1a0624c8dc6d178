//! Voucher and voucher-request data model (RFC 8366bis §8, §9) with JSON (RFC 7951) and
//! CBOR (YANG-SID, RFC 9254) codecs. Pure data, no crypto.
//!
//! * [`Voucher`] is the `ietf-voucher:voucher` container (RFC 8366bis §8.4), signed by the MASA.
//! * [`VoucherRequest`] is the `ietf-voucher-request:voucher` container (RFC 8366bis §9.2), the
//!   pledge's (PVR) and the registrar's (RVR) request.
//!
//! Both read JSON leniently (the real-world quirks of SPEC §10: string booleans, unpadded or
//! base64url binary, …) and write it strictly; both read CBOR with delta SIDs, absolute SIDs
//! (tag 47) or names, and write delta SIDs (cBRSKI §15.2.2). The pledge's checks of RFC 8995
//! §5.6.1 are [`validate_voucher`].

mod cbor;
mod check;
mod json;
mod leaf;
mod model;

pub use check::{
    CLOCK_SKEW, Pin, PinForm, PledgeExpectations, VoucherCheckError, check_signing_time,
    in_the_future, validate_voucher,
};
pub use leaf::{
    Leaf, VOUCHER_LEAF_SIDS, VOUCHER_MODULE_SID, VOUCHER_REQUEST_LEAF_SIDS,
    VOUCHER_REQUEST_MODULE_SID, VOUCHER_REQUEST_SID, VOUCHER_SID,
};
pub use model::{
    Assertion, CborExtensionKey, DateTime, DateTimeError, ExtensionData, ExtensionId, Nonce,
    RandomError, Voucher, VoucherRequest,
};

/// JSON member name of the voucher container (RFC 8366bis §8.3, RFC 7951 §4).
pub const VOUCHER_JSON_NAME: &str = "ietf-voucher:voucher";
/// JSON member name of the voucher-request container (RFC 8366bis §9.2, RFC 7951 §4).
pub const VOUCHER_REQUEST_JSON_NAME: &str = "ietf-voucher-request:voucher";

/// Why a voucher or voucher-request payload could not be decoded. Variants that concern a
/// leaf name it, with the RFC leaf name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("not valid CBOR: {0}")]
    Cbor(String),
    #[error("bytes follow the CBOR data item")]
    TrailingBytes,
    #[error("the top level is not a JSON object or CBOR map")]
    NotAnObject,
    #[error("no `{expected}` container at the top level")]
    MissingContainer { expected: &'static str },
    #[error("more than one voucher container at the top level")]
    AmbiguousContainer,
    #[error("the `{0}` container is not a JSON object or CBOR map")]
    ContainerNotObject(&'static str),
    #[error("member `{0}` appears more than once")]
    DuplicateMember(String),
    #[error("leaf `{0}` appears more than once (under different keys)")]
    DuplicateLeaf(&'static str),
    #[error("mandatory leaf `serial-number` is missing")]
    MissingSerialNumber,
    #[error("leaf `{leaf}` has the wrong type: expected {expected}")]
    WrongType {
        leaf: &'static str,
        expected: &'static str,
    },
    #[error("leaf `{leaf}` is not valid base64")]
    InvalidBase64 { leaf: &'static str },
    #[error("leaf `{leaf}` is not an RFC 3339 date-and-time: {reason}")]
    InvalidDateTime { leaf: &'static str, reason: String },
    #[error("leaf `assertion` has an unknown value {0:?}")]
    UnknownAssertion(String),
    /// The `nonce` is outside the YANG `binary { length "8..32"; }` (RFC 8366bis §8.4),
    /// measured as [`Nonce::octet_len`] says.
    #[error("leaf `nonce` is {length} octets long; RFC 8366bis §8.4 allows 8 to 32")]
    NonceLength { length: usize },
}

/// Why a voucher or voucher-request could not be encoded in the requested format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A nonce read from JSON is carried as CBOR bytes only when its text is base64.
    #[error("the nonce text is not base64, so it has no CBOR byte-string form")]
    NonceNotBinary,
    /// Extension data is kept in the encoding it arrived in: converting it needs the
    /// extension's own schema (RFC 8366bis §8.6).
    #[error("extension data `{0}` was read from the other encoding and cannot be re-encoded")]
    ExtensionDataFormat(String),
    #[error("JSON serialization failed: {0}")]
    Json(String),
    #[error("CBOR serialization failed: {0}")]
    Cbor(String),
}

/// The cut-off for attacker-supplied text repeated in error messages.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", text.get(..i).unwrap_or_default()),
        None => text.to_string(),
    }
}
