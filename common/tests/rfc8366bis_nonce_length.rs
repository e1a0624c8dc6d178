//! RFC 8366bis §8.4: the `nonce` leaf is `binary { length "8..32"; }`. The decoders refuse a
//! nonce outside that length with a typed error; the RFC examples' nonces are accepted.

use brski_common::voucher::{DecodeError, Nonce, Voucher, VoucherRequest};

fn request_json(nonce: &str) -> Vec<u8> {
    format!(
        r#"{{"ietf-voucher-request:voucher":{{"serial-number":"SN-1","nonce":{}}}}}"#,
        serde_json::to_string(nonce).expect("json string")
    )
    .into_bytes()
}

fn voucher_json(nonce: &str) -> Vec<u8> {
    format!(
        r#"{{"ietf-voucher:voucher":{{"serial-number":"SN-1","assertion":"logged","created-on":"2026-01-01T00:00:00Z","nonce":{}}}}}"#,
        serde_json::to_string(nonce).expect("json string")
    )
    .into_bytes()
}

#[test]
fn rfc8366bis_8_4_empty_or_short_json_nonce_is_refused() {
    // "" decodes as base64 to no octets; "AAAAAAA" (7 chars) to 5; 40 bytes of base64 text to
    // 30 octets is fine, 44 chars to 33 octets is not; a 33-octet non-base64 text is too long.
    for (nonce, length) in [
        ("", 0),
        ("AAAAAAA", 5),
        ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 33),
        ("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", 33),
        ("!!!!!!!", 7),
    ] {
        assert_eq!(
            VoucherRequest::from_json(&request_json(nonce)).map(|r| r.nonce),
            Err(DecodeError::NonceLength { length }),
            "request nonce {nonce:?}"
        );
        assert_eq!(
            Voucher::from_json(&voucher_json(nonce)).map(|v| v.nonce),
            Err(DecodeError::NonceLength { length }),
            "voucher nonce {nonce:?}"
        );
    }
    let err = VoucherRequest::from_json(&request_json("")).expect_err("empty");
    assert!(err.to_string().contains("nonce"), "{err}");
}

#[test]
fn rfc8366bis_8_4_nonces_within_8_to_32_octets_are_accepted() {
    // The nonces of the RFC 8995 / 8366bis / cBRSKI examples, then the bounds.
    for nonce in [
        "62a2e7693d82fcda2624de58fb6722e5",
        "5742698422680472",
        "-_XE9zK9q8Ll1qylMtLKeg",
        "TauvK+Y/cc2RfIFvpZzfKQ==",
        "VOUFT-WwrEv0NuAQEHoV7Q",
        "f4G6Vi1t8nKo/FieCVgpBg==",
        "base64encodedvalue==",
        "AAAAAAAAAAA",                                 // 8 octets
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", // 32 octets
        "!!!!!!!!",                                    // not base64: 8 octets of text
    ] {
        let r = VoucherRequest::from_json(&request_json(nonce)).expect(nonce);
        assert_eq!(
            r.nonce,
            Some(Nonce::Text(nonce.into())),
            "relayed unchanged"
        );
        Voucher::from_json(&voucher_json(nonce)).expect(nonce);
    }
}

#[test]
fn rfc8366bis_8_4_cbor_nonce_length_is_the_byte_string_length() {
    for (len, ok) in [(0, false), (7, false), (8, true), (32, true), (33, false)] {
        let mut r = VoucherRequest::new("SN-1");
        r.nonce = Some(Nonce::Bytes(vec![0x5a; len]));
        let cbor = r.to_cbor().expect("encode");
        let decoded = VoucherRequest::from_cbor(&cbor).map(|r| r.nonce);
        if ok {
            assert_eq!(decoded, Ok(Some(Nonce::Bytes(vec![0x5a; len]))), "{len}");
        } else {
            assert_eq!(
                decoded,
                Err(DecodeError::NonceLength { length: len }),
                "{len}"
            );
        }
    }
}

#[test]
fn rfc8366bis_8_4_generated_nonces_are_within_the_length() {
    let n = Nonce::generate().expect("nonce");
    assert!(Nonce::LENGTH.contains(&n.octet_len()));
}
