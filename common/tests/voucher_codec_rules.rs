//! Every rejection path of the voucher codecs, with the exact error, and the input leniencies
//! of SPEC §10.3 (RFC 7951 and RFC 9254 encodings of RFC 8366bis §8, §9; cBRSKI §15.2.2).

use brski_common::voucher::{
    Assertion, CborExtensionKey, DateTime, DecodeError, EncodeError, ExtensionData, ExtensionId,
    Nonce, Voucher, VoucherRequest,
};
use ciborium::Value;

fn voucher(inner: &str) -> Result<Voucher, DecodeError> {
    Voucher::from_json(format!(r#"{{"ietf-voucher:voucher":{{{inner}}}}}"#).as_bytes())
}

fn request(inner: &str) -> Result<VoucherRequest, DecodeError> {
    VoucherRequest::from_json(
        format!(r#"{{"ietf-voucher-request:voucher":{{{inner}}}}}"#).as_bytes(),
    )
}

fn wrong(leaf: &'static str, expected: &'static str) -> DecodeError {
    DecodeError::WrongType { leaf, expected }
}

fn cbor(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).expect("encode");
    out
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// `{2451: {entries…}}` with serial-number (delta 11) first unless `with_serial` is false.
fn cbor_voucher(with_serial: bool, entries: Vec<(Value, Value)>) -> Vec<u8> {
    let mut inner = Vec::new();
    if with_serial {
        inner.push((int(11), text("JADA123456789")));
    }
    inner.extend(entries);
    cbor(&Value::Map(vec![(int(2451), Value::Map(inner))]))
}

const SERIAL: &str = r#""serial-number":"JADA123456789""#;

// ---------------------------------------------------------------------------------------------
// JSON rejections

#[test]
fn rfc7951_json_syntax_errors_rejected() {
    for bad in [&b""[..], b"{", b"{\"ietf-voucher:voucher\":{}} x", b"\xff"] {
        assert!(
            matches!(Voucher::from_json(bad), Err(DecodeError::Json(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn rfc7951_top_level_must_be_an_object_with_the_container() {
    assert_eq!(Voucher::from_json(b"[]"), Err(DecodeError::NotAnObject));
    assert_eq!(Voucher::from_json(b"\"x\""), Err(DecodeError::NotAnObject));
    assert_eq!(
        Voucher::from_json(br#"{"voucher":{}}"#),
        Err(DecodeError::MissingContainer {
            expected: "ietf-voucher:voucher"
        })
    );
    assert_eq!(
        VoucherRequest::from_json(br#"{}"#),
        Err(DecodeError::MissingContainer {
            expected: "ietf-voucher-request:voucher"
        })
    );
    assert_eq!(
        Voucher::from_json(br#"{"ietf-voucher:voucher":[]}"#),
        Err(DecodeError::ContainerNotObject("ietf-voucher:voucher"))
    );
    // A request with both roots is ambiguous.
    assert_eq!(
        VoucherRequest::from_json(
            br#"{"ietf-voucher-request:voucher":{"serial-number":"a"},"ietf-voucher:voucher":{"serial-number":"b"}}"#
        ),
        Err(DecodeError::AmbiguousContainer)
    );
}

#[test]
fn rfc7951_duplicate_members_rejected() {
    assert_eq!(
        voucher(&format!(r#"{SERIAL},"serial-number":"OTHER""#)),
        Err(DecodeError::DuplicateMember("serial-number".into()))
    );
    // Even of an unknown leaf.
    assert_eq!(
        voucher(&format!(r#"{SERIAL},"x":1,"x":2"#)),
        Err(DecodeError::DuplicateMember("x".into()))
    );
    // Inside extension data.
    assert_eq!(
        voucher(&format!(r#"{SERIAL},"extension:e":{{"a":1,"a":2}}"#)),
        Err(DecodeError::DuplicateMember("a".into()))
    );
    // At the top level.
    assert_eq!(
        Voucher::from_json(
            br#"{"ietf-voucher:voucher":{"serial-number":"a"},"ietf-voucher:voucher":{"serial-number":"b"}}"#
        ),
        Err(DecodeError::DuplicateMember("ietf-voucher:voucher".into()))
    );
}

#[test]
fn rfc8366bis_8_4_serial_number_is_mandatory() {
    assert_eq!(
        voucher(r#""assertion":"logged""#),
        Err(DecodeError::MissingSerialNumber)
    );
    assert_eq!(
        request(r#""serial-number":null"#),
        Err(DecodeError::MissingSerialNumber)
    );
}

#[test]
fn rfc7951_wrong_types_name_the_leaf() {
    let cases: [(&str, DecodeError); 11] = [
        (
            r#""assertion":true"#,
            wrong("assertion", "an assertion name"),
        ),
        (
            r#""created-on":1476000000"#,
            wrong("created-on", "a date-and-time string"),
        ),
        (
            r#""domain-cert-revocation-checks":1"#,
            wrong("domain-cert-revocation-checks", "a boolean"),
        ),
        (
            r#""domain-cert-revocation-checks":"yes""#,
            wrong("domain-cert-revocation-checks", "a boolean"),
        ),
        (
            r#""pinned-domain-cert":["MIIB"]"#,
            wrong("pinned-domain-cert", "a base64 string"),
        ),
        (r#""nonce":12345678"#, wrong("nonce", "a string")),
        (r#""est-domain":{"a":1}"#, wrong("est-domain", "a string")),
        (r#""extensions":"example""#, wrong("extensions", "an array")),
        (
            r#""extensions":[true]"#,
            wrong("extensions", "uint64 or string entries"),
        ),
        (
            r#""extensions":[-1]"#,
            wrong("extensions", "uint64 or string entries"),
        ),
        (
            r#""expires-on":false"#,
            wrong("expires-on", "a date-and-time string"),
        ),
    ];
    for (member, error) in cases {
        assert_eq!(
            voucher(&format!("{SERIAL},{member}")),
            Err(error),
            "{member}"
        );
    }
    // The mandatory leaf too: a number is not coerced to a serial number.
    assert_eq!(
        voucher(r#""serial-number":12345"#),
        Err(wrong("serial-number", "a string"))
    );
    assert_eq!(
        request(&format!(r#"{SERIAL},"prior-signed-voucher-request":1"#)),
        Err(wrong("prior-signed-voucher-request", "a base64 string"))
    );
}

#[test]
fn rfc7951_bad_values_rejected() {
    assert_eq!(
        voucher(&format!(r#"{SERIAL},"idevid-issuer":"not base64!""#)),
        Err(DecodeError::InvalidBase64 {
            leaf: "idevid-issuer"
        })
    );
    // A mixed alphabet is neither standard nor url base64.
    assert_eq!(
        voucher(&format!(r#"{SERIAL},"pinned-domain-cert":"ab+_""#)),
        Err(DecodeError::InvalidBase64 {
            leaf: "pinned-domain-cert"
        })
    );
    assert_eq!(
        voucher(&format!(r#"{SERIAL},"assertion":"owned""#)),
        Err(DecodeError::UnknownAssertion("owned".into()))
    );
    assert_eq!(
        voucher(&format!(r#"{SERIAL},"assertion":7"#)),
        Err(DecodeError::UnknownAssertion("7".into()))
    );
    for bad in [
        "2016-10-07",
        "2016-10-07T19:31:42",
        "2016-10-07 19:31:42Z",
        "2016-13-07T19:31:42Z",
        "2016-10-07T19:31:42Zjunk",
        "",
    ] {
        assert!(
            matches!(
                voucher(&format!(r#"{SERIAL},"created-on":"{bad}""#)),
                Err(DecodeError::InvalidDateTime {
                    leaf: "created-on",
                    ..
                })
            ),
            "{bad}"
        );
    }
}

#[test]
fn rfc8366bis_voucher_root_only_for_vouchers() {
    // A voucher-request is no voucher, whatever its content.
    assert_eq!(
        Voucher::from_json(
            format!(r#"{{"ietf-voucher-request:voucher":{{{SERIAL}}}}}"#).as_bytes()
        ),
        Err(DecodeError::MissingContainer {
            expected: "ietf-voucher:voucher"
        })
    );
}

// ---------------------------------------------------------------------------------------------
// JSON leniency (SPEC §10.3)

#[test]
fn spec_10_3_string_booleans_accepted() {
    for (input, expected) in [
        ("\"true\"", true),
        ("\"false\"", false),
        ("\"TRUE\"", true),
        ("true", true),
        ("false", false),
    ] {
        let v = voucher(&format!(
            r#"{SERIAL},"domain-cert-revocation-checks":{input}"#
        ))
        .expect(input);
        assert_eq!(v.domain_cert_revocation_checks, Some(expected), "{input}");
    }
}

#[test]
fn spec_10_3_string_and_number_assertions_accepted() {
    for input in [r#""proximity""#, "2", r#""2""#] {
        let v = voucher(&format!(r#"{SERIAL},"assertion":{input}"#)).expect(input);
        assert_eq!(v.assertion, Some(Assertion::Proximity), "{input}");
    }
    // Output is the name.
    let v = voucher(&format!(r#"{SERIAL},"assertion":3"#)).expect("3");
    assert!(
        String::from_utf8(v.to_json().expect("json"))
            .expect("utf-8")
            .contains(r#""assertion":"agent-proximity""#)
    );
}

#[test]
fn spec_10_3_base64_variants_accepted() {
    // 0xfb 0xff 0xbf: standard "+/+/", url "-_-_"; 0xfb 0xff: "+/8=" or unpadded.
    for (input, expected) in [
        ("+/+/", vec![0xfb, 0xff, 0xbf]),
        ("-_-_", vec![0xfb, 0xff, 0xbf]),
        ("+/8=", vec![0xfb, 0xff]),
        ("+/8", vec![0xfb, 0xff]),
        ("-_8", vec![0xfb, 0xff]),
        ("+/\\n8=", vec![0xfb, 0xff]),
        ("", vec![]),
    ] {
        let v = voucher(&format!(r#"{SERIAL},"pinned-domain-cert":"{input}""#)).expect(input);
        assert_eq!(v.pinned_domain_cert, Some(expected.clone()), "{input}");
    }
    // Output is standard base64 with padding.
    let v = voucher(&format!(r#"{SERIAL},"pinned-domain-cert":"-_8""#)).expect("url");
    assert!(
        String::from_utf8(v.to_json().expect("json"))
            .expect("utf-8")
            .contains(r#""pinned-domain-cert":"+/8=""#)
    );
}

#[test]
fn spec_10_3_dates_with_and_without_fraction_and_offsets() {
    for input in [
        "2021-04-13T17:43:23-04:00",
        "2021-04-13T17:43:23.747-04:00",
        "2021-04-13T21:43:23.7Z",
        "2021-04-13T21:43:23.123456789Z",
        "2021-04-13t21:43:23z",
        "2021-04-13T21:43:23+00:00",
    ] {
        let v = voucher(&format!(r#"{SERIAL},"created-on":"{input}""#)).expect(input);
        let created = v.created_on.as_ref().expect("created-on");
        // The text is kept for re-encoding.
        assert_eq!(created.as_str(), input);
        let again = Voucher::from_json(&v.to_json().expect("json")).expect("again");
        assert_eq!(again, v);
    }
    let a = DateTime::parse("2021-04-13T17:43:23.747-04:00").expect("a");
    let b = DateTime::parse("2021-04-13T21:43:23.747Z").expect("b");
    assert_eq!(a.instant(), b.instant());
    assert_ne!(a, b, "different texts are different values");
    let formatted =
        DateTime::try_from(time::macros::datetime!(2022-12-06 20:23:30.708 UTC)).expect("fmt");
    assert_eq!(formatted.as_str(), "2022-12-06T20:23:30.708Z");
    assert!(DateTime::try_from(time::macros::datetime!(-0001-01-01 00:00 UTC)).is_err());
}

#[test]
fn spec_10_3_request_rooted_at_voucher_accepted() {
    let vr = VoucherRequest::from_json(
        br#"{"ietf-voucher:voucher":{"serial-number":"JADA123456789","nonce":"abcdefghijk","proximity-registrar-cert":"AQI="}}"#,
    )
    .expect("decode");
    assert_eq!(vr.serial_number, "JADA123456789");
    assert_eq!(vr.proximity_registrar_cert, Some(vec![1, 2]));
    // Re-encoded at the proper root.
    assert!(
        String::from_utf8(vr.to_json().expect("json"))
            .expect("utf-8")
            .starts_with(r#"{"ietf-voucher-request:voucher":{"#)
    );
}

#[test]
fn rfc8995_5_6_1_unknown_leaves_ignored() {
    let v = voucher(&format!(
        r#"{SERIAL},"future-leaf":{{"x":[1,2]}},"prior-signed-voucher-request":"AQI=","unknown":null"#
    ))
    .expect("decode");
    assert_eq!(v, Voucher::new("JADA123456789"));
    // Other top-level members are ignored too.
    let v = Voucher::from_json(
        format!(r#"{{"other":[1],"ietf-voucher:voucher":{{{SERIAL}}}}}"#).as_bytes(),
    )
    .expect("decode");
    assert_eq!(v, Voucher::new("JADA123456789"));
}

#[test]
fn spec_10_3_null_is_an_absent_leaf() {
    let v = voucher(&format!(r#"{SERIAL},"nonce":null,"assertion":null"#)).expect("decode");
    assert_eq!(v.nonce, None);
    assert_eq!(v.assertion, None);
}

#[test]
fn rfc7951_6_1_extension_sids_are_decimal_strings() {
    let v = voucher(&format!(
        r#"{SERIAL},"extensions":["305823299950",42,"my-ext","12ab"]"#
    ))
    .expect("decode");
    assert_eq!(
        v.extensions,
        vec![
            ExtensionId::Sid(305823299950),
            ExtensionId::Sid(42),
            ExtensionId::Name("my-ext".into()),
            ExtensionId::Name("12ab".into()),
        ]
    );
    assert!(
        String::from_utf8(v.to_json().expect("json"))
            .expect("utf-8")
            .contains(r#""extensions":["305823299950","42","my-ext","12ab"]"#)
    );
}

#[test]
fn rfc8366bis_8_3_json_output_is_compact_in_sid_order() {
    let mut vr = VoucherRequest::new("JADA123456789");
    vr.assertion = Some(Assertion::Proximity);
    vr.created_on = Some(DateTime::parse("2017-01-01T00:00:00.000Z").expect("date"));
    vr.nonce = Some(Nonce::Bytes(vec![1, 2, 3]));
    vr.proximity_registrar_pubk = Some(vec![4]);
    vr.proximity_registrar_pubk_sha256 = Some(vec![5]);
    vr.domain_cert_revocation_checks = Some(false);
    vr.est_domain = Some("est.example.com".into());
    vr.manufacturer_proprietary = Some(b"{\"a\":\"~~~\"}".to_vec());
    assert_eq!(
        String::from_utf8(vr.to_json().expect("json")).expect("utf-8"),
        concat!(
            r#"{"ietf-voucher-request:voucher":{"assertion":"proximity","#,
            r#""created-on":"2017-01-01T00:00:00.000Z","domain-cert-revocation-checks":false,"#,
            r#""nonce":"AQID","proximity-registrar-pubk-sha256":"BQ==","#,
            r#""proximity-registrar-pubk":"BA==","serial-number":"JADA123456789","#,
            r#""est-domain":"est.example.com","manufacturer-proprietary":"eyJhIjoifn5-In0"}}"#
        )
    );
}

// ---------------------------------------------------------------------------------------------
// CBOR rejections

#[test]
fn rfc9254_cbor_syntax_errors_rejected() {
    for bad in [&b""[..], &[0xa1][..], &[0xff][..], &[0x5f, 0x41][..]] {
        assert!(
            matches!(Voucher::from_cbor(bad), Err(DecodeError::Cbor(_))),
            "{bad:?}"
        );
    }
    let mut good = cbor_voucher(true, vec![]);
    assert!(Voucher::from_cbor(&good).is_ok());
    good.push(0x00);
    assert_eq!(Voucher::from_cbor(&good), Err(DecodeError::TrailingBytes));
}

#[test]
fn rfc9254_top_level_must_be_a_map_with_the_container() {
    assert_eq!(
        Voucher::from_cbor(&cbor(&Value::Array(vec![]))),
        Err(DecodeError::NotAnObject)
    );
    assert_eq!(
        Voucher::from_cbor(&cbor(&Value::Map(vec![(int(2501), Value::Map(vec![]))]))),
        Err(DecodeError::MissingContainer {
            expected: "ietf-voucher:voucher"
        })
    );
    assert_eq!(
        VoucherRequest::from_cbor(&cbor_voucher(true, vec![])),
        Err(DecodeError::MissingContainer {
            expected: "ietf-voucher-request:voucher"
        })
    );
    assert_eq!(
        Voucher::from_cbor(&cbor(&Value::Map(vec![(int(2451), int(0))]))),
        Err(DecodeError::ContainerNotObject("ietf-voucher:voucher"))
    );
    let serial = || Value::Map(vec![(int(11), text("JADA123456789"))]);
    assert_eq!(
        Voucher::from_cbor(&cbor(&Value::Map(vec![
            (int(2451), serial()),
            (text("ietf-voucher:voucher"), serial()),
        ]))),
        Err(DecodeError::AmbiguousContainer)
    );
}

#[test]
fn rfc9254_same_leaf_under_two_keys_rejected() {
    assert_eq!(
        Voucher::from_cbor(&cbor_voucher(
            true,
            vec![(text("serial-number"), text("OTHER"))]
        )),
        Err(DecodeError::DuplicateLeaf("serial-number"))
    );
    assert_eq!(
        Voucher::from_cbor(&cbor_voucher(
            true,
            vec![
                (int(7), Value::Bytes(vec![1; 8])),
                (
                    Value::Tag(47, Box::new(int(2458))),
                    Value::Bytes(vec![2; 8])
                ),
            ]
        )),
        Err(DecodeError::DuplicateLeaf("nonce"))
    );
    let ext = || Value::Tag(47, Box::new(int(305823299950)));
    assert_eq!(
        Voucher::from_cbor(&cbor_voucher(true, vec![(ext(), int(1)), (ext(), int(2))])),
        Err(DecodeError::DuplicateMember("47(305823299950)".into()))
    );
}

#[test]
fn rfc9254_serial_number_is_mandatory() {
    assert_eq!(
        Voucher::from_cbor(&cbor_voucher(false, vec![(int(1), int(1))])),
        Err(DecodeError::MissingSerialNumber)
    );
    assert_eq!(
        Voucher::from_cbor(&cbor_voucher(false, vec![(int(11), Value::Null)])),
        Err(DecodeError::MissingSerialNumber)
    );
}

#[test]
fn rfc9254_wrong_types_name_the_leaf() {
    let cases: [((Value, Value), DecodeError); 9] = [
        (
            (int(1), Value::Bool(true)),
            wrong("assertion", "an enumeration integer"),
        ),
        (
            (int(2), int(1_476_000_000)),
            wrong("created-on", "a date-and-time text string"),
        ),
        (
            (int(3), int(0)),
            wrong("domain-cert-revocation-checks", "a boolean"),
        ),
        (
            (int(5), text("BBgw")),
            wrong("idevid-issuer", "a byte string"),
        ),
        ((int(7), text("abc")), wrong("nonce", "a byte string")),
        (
            (int(13), Value::Bytes(vec![1])),
            wrong("est-domain", "a text string"),
        ),
        ((int(15), int(1)), wrong("extensions", "an array")),
        (
            (int(15), Value::Array(vec![Value::Float(1.5)])),
            wrong("extensions", "uint64 or text entries"),
        ),
        (
            (int(15), Value::Array(vec![int(-1)])),
            wrong("extensions", "uint64 or text entries"),
        ),
    ];
    for (entry, error) in cases {
        assert_eq!(
            Voucher::from_cbor(&cbor_voucher(true, vec![entry.clone()])),
            Err(error),
            "{entry:?}"
        );
    }
    assert_eq!(
        Voucher::from_cbor(&cbor_voucher(false, vec![(int(11), Value::Bytes(vec![]))])),
        Err(wrong("serial-number", "a text string"))
    );
}

#[test]
fn rfc9254_bad_values_rejected() {
    assert_eq!(
        Voucher::from_cbor(&cbor_voucher(true, vec![(int(1), int(9))])),
        Err(DecodeError::UnknownAssertion("9".into()))
    );
    assert_eq!(
        Voucher::from_cbor(&cbor_voucher(true, vec![(int(1), int(-1))])),
        Err(DecodeError::UnknownAssertion("-1".into()))
    );
    assert_eq!(
        Voucher::from_cbor(&cbor_voucher(true, vec![(int(1), text("owned"))])),
        Err(DecodeError::UnknownAssertion("owned".into()))
    );
    assert!(matches!(
        Voucher::from_cbor(&cbor_voucher(true, vec![(int(4), text("tomorrow"))])),
        Err(DecodeError::InvalidDateTime {
            leaf: "expires-on",
            ..
        })
    ));
}

// ---------------------------------------------------------------------------------------------
// CBOR keys: deltas, tag 47, names (cBRSKI §15.2.2); unknown keys ignored

#[test]
fn cbrski_15_2_2_mixed_keys_accepted() {
    let bytes = cbor(&Value::Map(vec![(
        text("ietf-voucher:voucher"),
        Value::Map(vec![
            (text("assertion"), text("logged")),
            (Value::Tag(47, Box::new(int(2462))), text("JADA123456789")),
            (int(7), Value::Bytes(vec![1, 2, 3, 4, 5, 6, 7, 8])),
            (text("pinned-domain-pubk"), Value::Bytes(vec![9])),
        ]),
    )]));
    let v = Voucher::from_cbor(&bytes).expect("decode");
    assert_eq!(v.assertion, Some(Assertion::Logged));
    assert_eq!(v.serial_number, "JADA123456789");
    assert_eq!(v.nonce, Some(Nonce::Bytes(vec![1, 2, 3, 4, 5, 6, 7, 8])));
    assert_eq!(v.pinned_domain_pubk, Some(vec![9]));
    // Re-encoded with deltas: {2451: {1: 1, 7: h'…', 9: h'09', 11: "JADA…"}}.
    assert_eq!(
        v.to_cbor().expect("cbor"),
        cbor(&Value::Map(vec![(
            int(2451),
            Value::Map(vec![
                (int(1), int(1)),
                (int(7), Value::Bytes(vec![1, 2, 3, 4, 5, 6, 7, 8])),
                (int(9), Value::Bytes(vec![9])),
                (int(11), text("JADA123456789")),
            ])
        )]))
    );
}

#[test]
fn rfc9254_unknown_keys_ignored_and_extension_data_kept() {
    let v = Voucher::from_cbor(&cbor_voucher(
        true,
        vec![
            (int(99), int(1)),
            (int(-5), int(1)),
            (Value::Tag(47, Box::new(int(2499))), int(1)),
            (Value::Tag(47, Box::new(int(2514))), int(1)),
            (Value::Tag(99, Box::new(int(1))), int(1)),
            (Value::Bytes(vec![1]), int(1)),
            (text("future-leaf"), int(1)),
            (text("example-ext:data"), Value::Map(vec![(int(1), int(2))])),
            (Value::Tag(47, Box::new(int(60000))), Value::Bool(true)),
        ],
    ))
    .expect("decode");
    assert_eq!(
        v.extension_data,
        vec![
            ExtensionData::Cbor {
                key: CborExtensionKey::Name("example-ext:data".into()),
                value: Value::Map(vec![(int(1), int(2))]),
            },
            ExtensionData::Cbor {
                key: CborExtensionKey::Sid(60000),
                value: Value::Bool(true),
            },
        ]
    );
    let mut expected = Voucher::new("JADA123456789");
    expected.extension_data = v.extension_data.clone();
    assert_eq!(v, expected);
    assert_eq!(
        Voucher::from_cbor(&v.to_cbor().expect("cbor")).expect("again"),
        v
    );
}

#[test]
fn rfc9254_indefinite_length_items_accepted() {
    // {2451: {_ 11: (_ "JADA", "123456789"), 7: (_ h'0102', h'030405060708')}}
    let bytes = [
        0xa1, 0x19, 0x09, 0x93, 0xbf, 0x0b, 0x7f, 0x64, b'J', b'A', b'D', b'A', 0x69, b'1', b'2',
        b'3', b'4', b'5', b'6', b'7', b'8', b'9', 0xff, 0x07, 0x5f, 0x42, 0x01, 0x02, 0x46, 0x03,
        0x04, 0x05, 0x06, 0x07, 0x08, 0xff, 0xff,
    ];
    let v = Voucher::from_cbor(&bytes).expect("decode");
    assert_eq!(v.serial_number, "JADA123456789");
    assert_eq!(v.nonce, Some(Nonce::Bytes(vec![1, 2, 3, 4, 5, 6, 7, 8])));
}

// ---------------------------------------------------------------------------------------------
// Encoding rules

#[test]
fn rfc9254_text_nonce_needs_a_base64_form() {
    let mut v = Voucher::new("JADA123456789");
    v.nonce = Some(Nonce::Text("-_XE9zK9q8Ll1qylMtLKeg".into()));
    let decoded = Voucher::from_cbor(&v.to_cbor().expect("cbor")).expect("decode");
    assert_eq!(
        decoded.nonce.as_ref().and_then(Nonce::to_bytes),
        Nonce::Text("-_XE9zK9q8Ll1qylMtLKeg".into()).to_bytes()
    );
    v.nonce = Some(Nonce::Text("not base64!".into()));
    assert_eq!(v.to_cbor(), Err(EncodeError::NonceNotBinary));
}

#[test]
fn rfc8366bis_8_6_extension_data_stays_in_its_encoding() {
    let mut v = Voucher::new("JADA123456789");
    v.extension_data.push(ExtensionData::Cbor {
        key: CborExtensionKey::Name("example-ext:data".into()),
        value: int(1),
    });
    assert_eq!(
        v.to_json(),
        Err(EncodeError::ExtensionDataFormat(
            "\"example-ext:data\"".into()
        ))
    );
    let mut vr = VoucherRequest::new("JADA123456789");
    vr.extension_data.push(ExtensionData::Json {
        member: "extension:x".into(),
        value: serde_json::json!({}),
    });
    assert_eq!(
        vr.to_cbor(),
        Err(EncodeError::ExtensionDataFormat("extension:x".into()))
    );
}

#[test]
fn rfc8366bis_9_3_request_cbor_uses_request_deltas() {
    let mut vr = VoucherRequest::new("S");
    vr.proximity_registrar_pubk_sha256 = Some(vec![1]);
    vr.proximity_registrar_pubk = Some(vec![2]);
    vr.pinned_domain_pubk = Some(vec![3]);
    vr.pinned_domain_pubk_sha256 = Some(vec![4]);
    vr.manufacturer_proprietary = Some(vec![5]);
    vr.agent_signed_data = Some(vec![6]);
    vr.extensions = vec![ExtensionId::Name("e".into()), ExtensionId::Sid(7)];
    assert_eq!(
        vr.to_cbor().expect("cbor"),
        cbor(&Value::Map(vec![(
            int(2501),
            Value::Map(vec![
                (int(11), Value::Bytes(vec![1])),
                (int(12), Value::Bytes(vec![2])),
                (int(13), text("S")),
                (int(16), Value::Bytes(vec![6])),
                (int(17), Value::Bytes(vec![3])),
                (int(18), Value::Bytes(vec![4])),
                (int(21), Value::Array(vec![text("e"), int(7)])),
                (int(22), Value::Bytes(vec![5])),
            ])
        )]))
    );
    assert_eq!(
        VoucherRequest::from_cbor(&vr.to_cbor().expect("cbor")).expect("decode"),
        vr
    );
}

// ---------------------------------------------------------------------------------------------
// Resource limits

#[test]
fn deeply_nested_input_is_an_error_not_a_stack_overflow() {
    let mut json = br#"{"ietf-voucher:voucher":{"serial-number":"x","extension:e":"#.to_vec();
    json.extend(std::iter::repeat_n(b'[', 100_000));
    assert!(matches!(
        Voucher::from_json(&json),
        Err(DecodeError::Json(_))
    ));

    let mut cbor_bytes = vec![0xa1, 0x19, 0x09, 0x93, 0xa1, 0x0b];
    cbor_bytes.extend(std::iter::repeat_n(0x81, 100_000));
    cbor_bytes.push(0x00);
    assert!(matches!(
        Voucher::from_cbor(&cbor_bytes),
        Err(DecodeError::Cbor(_))
    ));
}

#[test]
fn huge_declared_lengths_are_an_error_not_an_allocation() {
    // {2451: {11: bstr of length 2^64-1}} with no content, and the same for an array.
    for header in [0x5b, 0x7b, 0x9b, 0xbb] {
        let mut cbor_bytes = vec![0xa1, 0x19, 0x09, 0x93, 0xa1, 0x0b, header];
        cbor_bytes.extend([0xff; 8]);
        assert!(
            matches!(Voucher::from_cbor(&cbor_bytes), Err(DecodeError::Cbor(_))),
            "{header:#x}"
        );
    }
}
