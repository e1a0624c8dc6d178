//! The encoding of a signed body over HTTP: raw binary, or base64 from lenient clients and
//! MASAs.

use brski_common::envelope::Format;
use brski_common::input::decode_base64_lenient;

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
    }
}
