//! EST message encodings, shared by the HTTPS transport (RFC 7030 §4, RFC 8951, RFC 8995 §5.9)
//! and the CoAPS transport (RFC 9148 §5.3, cBRSKI §6.7.5).
//!
//! - certs-only CMS ("CMC Simple PKI Response", RFC 5272 §4.1): [`encode_certs_only`],
//!   [`decode_certs_only`];
//! - PKCS#10 requests: [`decode_pkcs10`], [`encode_pkcs10`] (parsing only; signature checks live in
//!   `pki`);
//! - CSR attributes (RFC 8951 §3.4): [`CsrAttrs`], with OIDs as [`RawOid`] (any arcs);
//! - the HTTP body form, base64 of the DER (RFC 8951 §3.2): [`encode_base64_body`],
//!   [`decode_base64_body`] and the `*_body` variants of the codecs above;
//! - media types ([`media_type`]), CoAP content formats ([`ContentFormat`]) and
//!   `application/multipart-core` ([`encode_multipart_core`], [`decode_multipart_core`]).

mod body;
mod certs_only;
mod csrattrs;
mod media;
mod multipart;
mod raw_oid;

pub use body::{
    decode_base64_body, decode_pkcs10, decode_pkcs10_body, encode_base64_body, encode_pkcs10,
    encode_pkcs10_body,
};
pub use certs_only::{
    decode_certs_only, decode_certs_only_body, encode_certs_only, encode_certs_only_body,
};
pub use csrattrs::{AttrOrOid, CsrAttrs, RequestedKey, Unmet, pop_linking_value};
pub use media::{ContentFormat, media_type};
pub use multipart::{
    MultipartPart, decode_crts_multipart, decode_multipart_core, encode_crts_multipart,
    encode_multipart_core,
};
pub use raw_oid::RawOid;

/// Why an EST body could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum EstError {
    /// The body holds nothing but white space.
    #[error("EST body is empty")]
    EmptyBody,
    /// The body is not base64 (RFC 4648 §4, standard alphabet) once white space is removed.
    #[error("EST body is not valid base64: {0}")]
    BadBase64(String),
    /// The bytes do not decode as the expected structure.
    #[error("malformed {0}")]
    Malformed(String),
    /// A CMS message that is not a certs-only Simple PKI Response (RFC 5272 §4.1).
    #[error("not a certs-only CMS message: {0}")]
    NotCertsOnly(&'static str),
    /// A certs-only message, or a `/crts` multipart body, without any certificate.
    #[error("the message carries no certificate")]
    NoCertificates,
    /// A multipart part whose content format is not the one the resource returns.
    #[error("unexpected content format {0}")]
    UnexpectedContentFormat(u16),
    /// DER encoding failed (lengths out of range).
    #[error("encoding failed: {0}")]
    Encode(String),
}
