//! Small decoders for what pledges send besides the signed artifacts: the encoding of a signed
//! body (raw binary, or base64 from lenient clients), the Accept header, and the one-line
//! `text/plain` refusals of RFC 8995 §5.6.

use axum::response::{IntoResponse, Response};
use brski_common::envelope::Format;
use brski_common::input::decode_base64_lenient;
use http::{HeaderValue, StatusCode, header};

/// How a signed body arrived; the answer uses the same encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEncoding {
    /// The binary artifact (RFC 8995 §5.2: no base64).
    Raw,
    /// base64 of the artifact (field leniency for older clients).
    Base64,
}

/// The artifact bytes of a signed body of `format`: the body itself when it looks like that
/// format, else its base64 decoding when that does; otherwise the raw body (which then fails
/// to verify as malformed).
pub fn signed_body(format: Format, body: &[u8]) -> (BodyEncoding, Vec<u8>) {
    if Format::detect(body) == Some(format) {
        return (BodyEncoding::Raw, body.to_vec());
    }
    match decode_base64_lenient(body) {
        Some(decoded) if Format::detect(&decoded) == Some(format) => {
            (BodyEncoding::Base64, decoded)
        }
        _ => (BodyEncoding::Raw, body.to_vec()),
    }
}

/// `bytes` in `encoding`.
pub fn encode_body(encoding: BodyEncoding, bytes: &[u8]) -> Vec<u8> {
    match encoding {
        BodyEncoding::Raw => bytes.to_vec(),
        BodyEncoding::Base64 => brski_common::est::encode_base64_body(bytes).into_bytes(),
    }
}

/// The media types of an Accept header with a non-zero quality, lowercased, without
/// parameters.
pub fn accept_media_types(accept: &str) -> Vec<String> {
    accept
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            if media.is_empty() {
                return None;
            }
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (!refused).then_some(media)
        })
        .collect()
}

/// Whether an Accept header allows a voucher of `media_type` (RFC 9110 §12.5.1 wildcards).
pub fn accept_allows(accept: &str, media_type: &str) -> bool {
    let wanted = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    accept_media_types(accept).iter().any(|m| {
        m == "*/*"
            || m == "application/*"
            || *m == wanted
            || Format::from_media_type(m)
                .zip(Format::from_media_type(&wanted))
                .is_some_and(|(a, b)| a == b)
    })
}

/// Whether an Accept header allows any voucher format this suite knows (else 406, RFC 8995
/// §5.6).
pub fn accept_allows_a_voucher(accept: &str) -> bool {
    [Format::Cms, Format::Jws, Format::Cose]
        .iter()
        .any(|f| accept_allows(accept, f.media_type()))
}

/// A refusal: the status and a one-line `text/plain` reason (RFC 8995 §5.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub status: StatusCode,
    pub reason: String,
}

impl Reject {
    pub fn new(status: u16, reason: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            reason: crate::masa_client::one_line(&reason.to_string(), 400),
        }
    }

    /// 500 for a failure of this registrar (database, signing), logged with its cause.
    pub fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "{what}");
        Self::new(500, format!("internal error: {what}"))
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let mut resp = (self.status, format!("{}\n", self.reason)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use brski_common::input::B64;

    #[test]
    fn raw_and_base64_bodies_are_told_apart() {
        let cms = [0x30u8, 0x82, 0x01, 0x00, 0x06];
        assert_eq!(
            signed_body(Format::Cms, &cms),
            (BodyEncoding::Raw, cms.to_vec())
        );
        let b64 = B64.encode(cms);
        assert_eq!(
            signed_body(Format::Cms, b64.as_bytes()),
            (BodyEncoding::Base64, cms.to_vec())
        );
        // base64 of a COSE_Sign1 starts with '0', which is also the first byte of raw CMS.
        let cose = [0xd2u8, 0x84, 0x43, 0xa1, 0x01, 0x26];
        let b64 = B64.encode(cose);
        assert!(b64.starts_with('0'));
        assert_eq!(
            signed_body(Format::Cose, b64.as_bytes()),
            (BodyEncoding::Base64, cose.to_vec())
        );
        let jws = br#"{"payload":"e30","signatures":[]}"#;
        assert_eq!(
            signed_body(Format::Jws, jws),
            (BodyEncoding::Raw, jws.to_vec())
        );
        let b64 = B64.encode(jws);
        assert_eq!(
            signed_body(Format::Jws, b64.as_bytes()),
            (BodyEncoding::Base64, jws.to_vec())
        );
        // Neither: the raw bytes go on and fail verification as malformed.
        assert_eq!(
            signed_body(Format::Cms, b"garbage!"),
            (BodyEncoding::Raw, b"garbage!".to_vec())
        );
    }

    #[test]
    fn base64_answers_decode_back() {
        let bytes = [0x30u8, 0x03, 0x02, 0x01, 0x05];
        let body = encode_body(BodyEncoding::Base64, &bytes);
        assert_eq!(
            signed_body(Format::Cms, &body),
            (BodyEncoding::Base64, bytes.to_vec())
        );
        assert_eq!(encode_body(BodyEncoding::Raw, &bytes), bytes.to_vec());
    }

    #[test]
    fn accept_headers() {
        assert!(accept_allows_a_voucher("application/voucher-cms+json"));
        assert!(accept_allows_a_voucher("text/html, */*;q=0.1"));
        assert!(accept_allows_a_voucher("application/voucher-cose+cbor"));
        assert!(!accept_allows_a_voucher("text/html"));
        assert!(!accept_allows_a_voucher("application/voucher-cms+json;q=0"));
        assert!(accept_allows(
            "application/voucher-jws+json, application/voucher-cms+json; q=0.5",
            "application/voucher-cms+json"
        ));
        assert!(!accept_allows(
            "application/voucher-jws+json",
            "application/voucher-cms+json"
        ));
        assert!(accept_allows("application/*", "application/voucher+cose"));
    }

    #[test]
    fn rejections_are_one_line_text() {
        let r = Reject::new(403, "two\nlines");
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.reason, "two lines");
        assert_eq!(
            Reject::new(1000, "x").status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn signed_body_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            for f in [Format::Cms, Format::Jws, Format::Cose] {
                let (enc, bytes) = signed_body(f, &body);
                if enc == BodyEncoding::Raw {
                    proptest::prop_assert_eq!(&bytes, &body);
                } else {
                    proptest::prop_assert_eq!(Format::detect(&bytes), Some(f));
                }
            }
        }

        #[test]
        fn accept_parsing_never_panics(accept in "\\PC{0,200}") {
            let _ = accept_allows_a_voucher(&accept);
            for m in accept_media_types(&accept) {
                proptest::prop_assert!(!m.is_empty());
            }
        }
    }
}
