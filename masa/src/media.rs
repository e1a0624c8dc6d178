//! The HTTP surface of the voucher endpoints, without sockets: which envelope a Content-Type
//! names, which voucher format an Accept header asks for (RFC 8995 §5.6: 406 / 415), and whether
//! a body is the raw signed object or its base64 text (field leniency: answer in kind).

use base64::Engine;
use brski_common::envelope::Format;
use brski_common::input::{B64, decode_base64_lenient};
use std::borrow::Cow;

/// How a signed body travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEncoding {
    /// The binary (CMS, COSE) or JSON (JWS) form itself, as RFC 8995 §5 specifies.
    Raw,
    /// Its base64 text (RFC 4648 §4, white space and the URL alphabet tolerated).
    Base64,
}

impl BodyEncoding {
    /// `bytes` in this encoding (standard base64 with padding for [`BodyEncoding::Base64`]).
    pub fn encode(self, bytes: Vec<u8>) -> Vec<u8> {
        match self {
            Self::Raw => bytes,
            Self::Base64 => B64.encode(bytes).into_bytes(),
        }
    }

    /// Name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Base64 => "base64",
        }
    }
}

/// The envelope a request body of `format` holds: the body itself when it starts like that
/// format (DER SEQUENCE, JSON object, COSE tag or array), else its base64 decoding when that
/// does. Anything else is returned as it came, for the envelope decoder to refuse.
pub fn decode_body(format: Format, body: &[u8]) -> (Cow<'_, [u8]>, BodyEncoding) {
    if Format::detect(body) == Some(format) {
        return (Cow::Borrowed(body), BodyEncoding::Raw);
    }
    match decode_base64_lenient(body) {
        Some(decoded) if Format::detect(&decoded) == Some(format) => {
            (Cow::Owned(decoded), BodyEncoding::Base64)
        }
        _ => (Cow::Borrowed(body), BodyEncoding::Raw),
    }
}

/// The voucher format for an `Accept` header (RFC 9110 §12.5.1, RFC 8995 §5.6): the supported
/// media type with the highest q-value (earlier wins ties); `*/*` and `application/*` mean the
/// request's format, as does an absent or empty header. `None` when nothing acceptable is
/// offered (406). A q-value that does not parse counts as 1.
pub fn negotiate(accept: Option<&str>, request: Format) -> Option<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(request);
    };
    let mut offers: Vec<(u16, Format)> = Vec::new();
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        if media.is_empty() {
            continue;
        }
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1000, |(_, v)| qvalue(v.trim()));
        if q == 0 {
            continue;
        }
        let format = match media.as_str() {
            "*/*" | "application/*" => Some(request),
            other => Format::from_media_type(other),
        };
        if let Some(f) = format {
            offers.push((q, f));
        }
    }
    // Stable sort: among equal q-values the first listed wins.
    offers.sort_by_key(|o| std::cmp::Reverse(o.0));
    offers.first().map(|(_, f)| *f)
}

/// A qvalue in thousandths (RFC 9110 §12.4.2); unparsable → 1000.
fn qvalue(text: &str) -> u16 {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => (v * 1000.0).round() as u16,
        _ => 1000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CMS: &str = "application/voucher-cms+json";
    const JWS: &str = "application/voucher-jws+json";
    const COSE: &str = "application/voucher+cose";

    #[test]
    fn rfc8995_5_6_accept_picks_the_preferred_supported_format() {
        let cases: &[(Option<&str>, Format, Option<Format>)] = &[
            (None, Format::Jws, Some(Format::Jws)),
            (Some(""), Format::Cose, Some(Format::Cose)),
            (Some("*/*"), Format::Cms, Some(Format::Cms)),
            (Some("application/*"), Format::Jws, Some(Format::Jws)),
            (Some(CMS), Format::Jws, Some(Format::Cms)),
            (Some(JWS), Format::Cms, Some(Format::Jws)),
            (Some(COSE), Format::Cms, Some(Format::Cose)),
            (
                Some("application/voucher-cose+cbor"),
                Format::Cms,
                Some(Format::Cose),
            ),
            (
                Some("text/html, application/voucher-jws+json"),
                Format::Cms,
                Some(Format::Jws),
            ),
            (
                Some("application/voucher-cms+json;q=0.2, application/voucher+cose;q=0.9"),
                Format::Jws,
                Some(Format::Cose),
            ),
            (Some("application/voucher-cms+json; q=0"), Format::Cms, None),
            (
                Some("application/voucher-cms+json;q=0, */*;q=0.1"),
                Format::Jws,
                Some(Format::Jws),
            ),
            (
                Some("APPLICATION/VOUCHER-JWS+JSON"),
                Format::Cms,
                Some(Format::Jws),
            ),
            (Some("application/pkcs7-mime"), Format::Cms, None),
            (Some("text/plain, image/png"), Format::Cms, None),
            (Some(",,"), Format::Cms, None),
            (
                Some("application/voucher-jws+json;q=banana"),
                Format::Cms,
                Some(Format::Jws),
            ),
        ];
        for (accept, request, want) in cases {
            assert_eq!(negotiate(*accept, *request), *want, "{accept:?}");
        }
    }

    #[test]
    fn raw_bodies_stay_raw_and_base64_bodies_are_decoded() {
        let cms = [0x30, 0x03, 0x02, 0x01, 0x01];
        let (bytes, enc) = decode_body(Format::Cms, &cms);
        assert_eq!((bytes.as_ref(), enc), (&cms[..], BodyEncoding::Raw));

        let b64 = B64.encode(cms);
        let (bytes, enc) = decode_body(Format::Cms, b64.as_bytes());
        assert_eq!((bytes.as_ref(), enc), (&cms[..], BodyEncoding::Base64));

        // Wrapped base64 (RFC 8951 §3.2) and the URL alphabet without padding.
        let jws = br#"{"payload":"x?>"}"#;
        let wrapped = format!("{}\r\n", B64.encode(jws));
        let (bytes, enc) = decode_body(Format::Jws, wrapped.as_bytes());
        assert_eq!((bytes.as_ref(), enc), (&jws[..], BodyEncoding::Base64));
        let url = brski_common::input::B64URL.encode(jws);
        let (bytes, enc) = decode_body(Format::Jws, url.as_bytes());
        assert_eq!((bytes.as_ref(), enc), (&jws[..], BodyEncoding::Base64));

        let cose = [0xd2, 0x84, 0x40];
        let text = B64.encode(cose).into_bytes();
        let (bytes, enc) = decode_body(Format::Cose, &text);
        assert_eq!((bytes.as_ref(), enc), (&cose[..], BodyEncoding::Base64));
    }

    #[test]
    fn bodies_of_another_shape_are_passed_on_unchanged() {
        // Garbage, base64 of something that is not the format, and another format's bytes.
        for body in [
            &b"garbage"[..],
            B64.encode(b"hello").as_bytes(),
            &[0xd2, 0x84][..],
            &b""[..],
        ] {
            let (bytes, enc) = decode_body(Format::Cms, body);
            assert_eq!((bytes.as_ref(), enc), (body, BodyEncoding::Raw));
        }
    }

    #[test]
    fn answers_are_encoded_like_the_request() {
        assert_eq!(BodyEncoding::Raw.encode(vec![1, 2]), vec![1, 2]);
        assert_eq!(
            BodyEncoding::Base64.encode(vec![0x30, 0x00]),
            b"MAA=".to_vec()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn negotiate_never_panics(accept in ".{0,80}") {
            let _ = negotiate(Some(&accept), Format::Cms);
        }

        #[test]
        fn negotiate_on_media_like_text_never_panics(
            accept in "([a-z*]{0,12}/[a-z*+-]{0,20}(;q=[0-9.]{0,5})?, ?){0,4}"
        ) {
            let _ = negotiate(Some(&accept), Format::Jws);
        }

        #[test]
        fn decode_body_never_panics_and_raw_is_identity(
            body in proptest::collection::vec(any::<u8>(), 0..256)
        ) {
            for format in [Format::Cms, Format::Jws, Format::Cose] {
                let (bytes, enc) = decode_body(format, &body);
                if enc == BodyEncoding::Raw {
                    prop_assert_eq!(bytes.as_ref(), &body[..]);
                } else {
                    prop_assert_eq!(Format::detect(&bytes), Some(format));
                }
            }
        }

        #[test]
        fn base64_round_trips_through_decode_body(
            tail in proptest::collection::vec(any::<u8>(), 0..128)
        ) {
            let mut cms = vec![0x30];
            cms.extend(tail);
            let text = BodyEncoding::Base64.encode(cms.clone());
            let (bytes, enc) = decode_body(Format::Cms, &text);
            prop_assert_eq!(enc, BodyEncoding::Base64);
            prop_assert_eq!(bytes.as_ref(), &cms[..]);
        }
    }
}
