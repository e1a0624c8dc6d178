//! Media types (RFC 7030 §4, RFC 8995 §5) and CoAP content formats (RFC 9148 §9.1, cBRSKI §6.5).

/// HTTP media types of EST and BRSKI bodies.
pub mod media_type {
    /// RFC 7030 §4.1.3, §4.2.3: certs-only CMS (`/cacerts`, `/simpleenroll` responses).
    pub const PKCS7_CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";
    /// RFC 7030 §4.4.2: server-generated key wrapped in CMS.
    pub const PKCS7_SERVER_GENERATED_KEY: &str =
        "application/pkcs7-mime; smime-type=server-generated-key";
    /// RFC 7030 §4.2.1: PKCS#10 request.
    pub const PKCS10: &str = "application/pkcs10";
    /// RFC 7030 §4.5.2: CSR attributes.
    pub const CSRATTRS: &str = "application/csrattrs";
    /// RFC 7030 §4.4.2: unencrypted private key.
    pub const PKCS8: &str = "application/pkcs8";
    /// RFC 9148 §5.3: a single DER certificate.
    pub const PKIX_CERT: &str = "application/pkix-cert";
    /// RFC 8710 §2: CBOR array of content format / representation pairs.
    pub const MULTIPART_CORE: &str = "application/multipart-core";
    /// RFC 8995 §5.7, §5.8.1, §5.9.4: telemetry and the audit log over HTTP.
    pub const JSON: &str = "application/json";
    /// cBRSKI §6.5.1: telemetry over CoAP.
    pub const CBOR: &str = "application/cbor";
    /// cBRSKI §15.4: COSE-signed voucher and voucher-request.
    pub const VOUCHER_COSE: &str = "application/voucher+cose";
    /// RFC 6690 §7.1: CoRE link format (discovery).
    pub const LINK_FORMAT: &str = "application/link-format";
}

/// A CoAP Content-Format number (RFC 7252 §12.3). Unknown numbers are representable, so that a
/// multipart body with a format this crate does not know still decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentFormat(pub u16);

impl ContentFormat {
    /// `application/link-format` (RFC 6690).
    pub const LINK_FORMAT: Self = Self(40);
    /// `application/json` (RFC 7252 §12.3).
    pub const JSON: Self = Self(50);
    /// `application/cbor` (RFC 7049 §7.4); telemetry, cBRSKI §6.5.1.
    pub const CBOR: Self = Self(60);
    /// `application/multipart-core` (RFC 8710 §5.2).
    pub const MULTIPART_CORE: Self = Self(62);
    /// `application/pkcs7-mime; smime-type=server-generated-key` (RFC 9148 §9.1).
    pub const PKCS7_SERVER_GENERATED_KEY: Self = Self(280);
    /// `application/pkcs7-mime; smime-type=certs-only` (RFC 9148 §9.1).
    pub const PKCS7_CERTS_ONLY: Self = Self(281);
    /// `application/pkcs8` (RFC 9148 §9.1).
    pub const PKCS8: Self = Self(284);
    /// `application/csrattrs` (RFC 9148 §9.1).
    pub const CSRATTRS: Self = Self(285);
    /// `application/pkcs10` (RFC 9148 §9.1).
    pub const PKCS10: Self = Self(286);
    /// `application/pkix-cert` (RFC 9148 §9.1).
    pub const PKIX_CERT: Self = Self(287);
    /// `application/voucher+cose` (cBRSKI §15.4).
    pub const VOUCHER_COSE: Self = Self(836);

    const TABLE: [(Self, &'static str); 11] = [
        (Self::LINK_FORMAT, media_type::LINK_FORMAT),
        (Self::JSON, media_type::JSON),
        (Self::CBOR, media_type::CBOR),
        (Self::MULTIPART_CORE, media_type::MULTIPART_CORE),
        (
            Self::PKCS7_SERVER_GENERATED_KEY,
            media_type::PKCS7_SERVER_GENERATED_KEY,
        ),
        (Self::PKCS7_CERTS_ONLY, media_type::PKCS7_CERTS_ONLY),
        (Self::PKCS8, media_type::PKCS8),
        (Self::CSRATTRS, media_type::CSRATTRS),
        (Self::PKCS10, media_type::PKCS10),
        (Self::PKIX_CERT, media_type::PKIX_CERT),
        (Self::VOUCHER_COSE, media_type::VOUCHER_COSE),
    ];

    /// The media type registered for this content format, if this crate knows it.
    pub fn media_type(self) -> Option<&'static str> {
        Self::TABLE
            .iter()
            .find(|(cf, _)| *cf == self)
            .map(|(_, mt)| *mt)
    }

    /// The content format of a media type. Case, white space around `;` and `=`, and quotes
    /// around parameter values are ignored (RFC 9110 §8.3.1).
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        let wanted = normalize_media_type(media_type);
        Self::TABLE
            .iter()
            .find(|(_, mt)| normalize_media_type(mt) == wanted)
            .map(|(cf, _)| *cf)
    }
}

impl From<u16> for ContentFormat {
    fn from(value: u16) -> Self {
        Self(value)
    }
}

impl From<ContentFormat> for u16 {
    fn from(value: ContentFormat) -> Self {
        value.0
    }
}

/// `type/subtype;name=value…` lower-cased, without white space and quotes.
fn normalize_media_type(media_type: &str) -> String {
    let mut parts = media_type.split(';');
    let mut out = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    for param in parts {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        out.push(';');
        out.push_str(&name.trim().to_ascii_lowercase());
        out.push('=');
        out.push_str(&value.trim().trim_matches('"').to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_map_both_ways() {
        assert_eq!(
            ContentFormat::from_media_type("Application/PKCS7-mime;smime-type=\"certs-only\""),
            Some(ContentFormat::PKCS7_CERTS_ONLY)
        );
        assert_eq!(
            ContentFormat::from_media_type(
                "application/pkcs7-mime; smime-type=server-generated-key"
            ),
            Some(ContentFormat::PKCS7_SERVER_GENERATED_KEY)
        );
        assert_eq!(
            ContentFormat::from_media_type("application/pkcs7-mime"),
            None
        );
        assert_eq!(ContentFormat::from_media_type("text/plain"), None);
        for (cf, mt) in ContentFormat::TABLE {
            assert_eq!(ContentFormat::from_media_type(mt), Some(cf));
            assert_eq!(cf.media_type(), Some(mt));
        }
        assert_eq!(ContentFormat(9999).media_type(), None);
    }
}
