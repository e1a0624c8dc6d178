//! Conformance of the voucher data model and codecs with the published examples
//! (RFC 8995 §3.3, §5.6, App. C; RFC 8366 §5.2; draft-ietf-anima-rfc8366bis §8.3, §8.5, §9.3,
//! App. A; draft-ietf-anima-jws-voucher §3, §8; cBRSKI §9.1, App. C).

use base64::Engine;
use brski_common::input::{B64, B64URL, pem_blocks};
use brski_common::pki::ext::idevid_issuer;
use brski_common::test_vectors::{bytes, cert, read};
use brski_common::voucher::{
    Assertion, CborExtensionKey, DateTime, EncodeError, ExtensionData, ExtensionId, Leaf, Nonce,
    VOUCHER_LEAF_SIDS, VOUCHER_MODULE_SID, VOUCHER_REQUEST_LEAF_SIDS, VOUCHER_REQUEST_MODULE_SID,
    VOUCHER_REQUEST_SID, VOUCHER_SID, Voucher, VoucherRequest,
};
use ciborium::Value;
use der::{Decode, Encode};

/// The eContent octets of a CMS SignedData vector (RFC 5652 §5.2).
fn cms_econtent(rel: &str) -> Vec<u8> {
    let der = bytes(rel);
    let ci = cms::content_info::ContentInfo::from_der(&der).expect("ContentInfo");
    let sd: cms::signed_data::SignedData = ci.content.decode_as().expect("SignedData");
    let econtent = sd.encap_content_info.econtent.expect("eContent");
    econtent
        .decode_as::<der::asn1::OctetString>()
        .expect("OCTET STRING")
        .as_bytes()
        .to_vec()
}

/// The certificates of a PEM vector, in order.
fn pem_certs(rel: &str) -> Vec<Vec<u8>> {
    let text = String::from_utf8(read(rel)).expect("utf-8");
    pem_blocks(&text, &["CERTIFICATE"]).expect("PEM")
}

fn date(text: &str) -> Option<DateTime> {
    Some(DateTime::parse(text).expect("date"))
}

fn subject(der: &[u8]) -> String {
    x509_cert::Certificate::from_der(der)
        .expect("certificate")
        .tbs_certificate()
        .subject()
        .to_string()
}

/// What `base64encodedvalue==` decodes to: 13 bytes beginning 6D AB 1E (the trailing bits
/// are not zero, so only a lenient decoder accepts it).
fn assert_placeholder(value: &Option<Vec<u8>>) {
    let v = value.as_ref().expect("placeholder present");
    assert_eq!(v.len(), 13);
    assert_eq!(&v[..3], &[0x6d, 0xab, 0x1e]);
}

fn json_value(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("JSON")
}

fn voucher_round_trip(v: &Voucher) {
    let json = v.to_json().expect("to_json");
    assert_eq!(&Voucher::from_json(&json).expect("re-decode"), v);
}

fn request_round_trip(vr: &VoucherRequest) {
    let json = vr.to_json().expect("to_json");
    assert_eq!(&VoucherRequest::from_json(&json).expect("re-decode"), vr);
}

// ---------------------------------------------------------------------------------------------
// RFC 8995 §3.3 and §5.6 shape examples

#[test]
fn rfc8995_3_3_example1_pvr_decodes() {
    let vr = VoucherRequest::from_json(&bytes("rfc8995/3.3-example1-pvr.json")).expect("decode");
    assert_eq!(vr.assertion, Some(Assertion::Proximity));
    assert_eq!(
        vr.nonce,
        Some(Nonce::Text("62a2e7693d82fcda2624de58fb6722e5".into()))
    );
    assert_eq!(vr.serial_number, "JADA123456789");
    assert_eq!(vr.created_on, date("2017-01-01T00:00:00.000Z"));
    assert_placeholder(&vr.proximity_registrar_cert);
    assert_eq!(vr.prior_signed_voucher_request, None);
    assert_eq!(vr.idevid_issuer, None);
    request_round_trip(&vr);
}

#[test]
fn rfc8995_3_3_example2_rvr_decodes() {
    // Note the spaces before ':' in this example.
    let vr = VoucherRequest::from_json(&bytes("rfc8995/3.3-example2-rvr.json")).expect("decode");
    assert_eq!(vr.assertion, Some(Assertion::Proximity));
    assert_eq!(
        vr.nonce,
        Some(Nonce::Text("62a2e7693d82fcda2624de58fb6722e5".into()))
    );
    assert_eq!(vr.created_on, date("2017-01-01T00:00:02.000Z"));
    assert_eq!(vr.serial_number, "JADA123456789");
    assert_placeholder(&vr.idevid_issuer);
    assert_placeholder(&vr.prior_signed_voucher_request);
    assert_eq!(vr.proximity_registrar_cert, None);
    request_round_trip(&vr);
}

#[test]
fn rfc8995_3_3_example3_nonceless_rvr_decodes() {
    let vr = VoucherRequest::from_json(&bytes("rfc8995/3.3-example3-rvr-nonceless.json"))
        .expect("decode");
    assert_eq!(vr.nonce, None);
    assert_eq!(vr.assertion, None);
    assert_eq!(vr.created_on, date("2017-01-01T00:00:02.000Z"));
    assert_placeholder(&vr.idevid_issuer);
    assert_eq!(vr.serial_number, "JADA123456789");
    request_round_trip(&vr);
}

#[test]
fn rfc8995_5_6_voucher_example_decodes() {
    let v = Voucher::from_json(&bytes("rfc8995/5.6-voucher-example.json")).expect("decode");
    assert_eq!(
        v.nonce,
        Some(Nonce::Text("62a2e7693d82fcda2624de58fb6722e5".into()))
    );
    assert_eq!(v.assertion, Some(Assertion::Logged));
    assert_placeholder(&v.pinned_domain_cert);
    assert_eq!(v.serial_number, "JADA123456789");
    assert_eq!(v.created_on, None);
    voucher_round_trip(&v);
}

// ---------------------------------------------------------------------------------------------
// RFC 8366 §5.2 and rfc8366bis §8.3 examples

#[test]
fn rfc8366_5_2_ephemeral_voucher_decodes() {
    for rel in [
        "rfc8366/5.2-voucher-ephemeral.json",
        "rfc8366bis/8.3-voucher-ephemeral.json",
    ] {
        let v = Voucher::from_json(&bytes(rel)).expect(rel);
        assert_eq!(v.created_on, date("2016-10-07T19:31:42Z"), "{rel}");
        assert_eq!(v.assertion, Some(Assertion::Logged), "{rel}");
        assert_eq!(v.serial_number, "JADA123456789", "{rel}");
        assert_placeholder(&v.idevid_issuer);
        assert_placeholder(&v.pinned_domain_cert);
        // The nonce stays the exact JSON text.
        assert_eq!(
            v.nonce,
            Some(Nonce::Text("base64encodedvalue==".into())),
            "{rel}"
        );
        assert_eq!(v.expires_on, None, "{rel}");
        voucher_round_trip(&v);
    }
}

#[test]
fn rfc8366_5_2_nonceless_voucher_with_string_boolean_decodes() {
    // RFC 8366 writes "domain-cert-revocation-checks": "true" (a string); rfc8366bis fixes it.
    for rel in [
        "rfc8366/5.2-voucher-nonceless.json",
        "rfc8366bis/8.3-voucher-nonceless.json",
    ] {
        let v = Voucher::from_json(&bytes(rel)).expect(rel);
        assert_eq!(v.created_on, date("2016-10-07T19:31:42Z"), "{rel}");
        assert_eq!(v.expires_on, date("2016-10-21T19:31:42Z"), "{rel}");
        assert_eq!(v.last_renewal_date, date("2017-10-07T19:31:42Z"), "{rel}");
        assert_eq!(v.assertion, Some(Assertion::Verified), "{rel}");
        assert_eq!(v.domain_cert_revocation_checks, Some(true), "{rel}");
        assert_eq!(v.nonce, None, "{rel}");
        assert_eq!(v.serial_number, "JADA123456789", "{rel}");
        // Output is strict: a JSON boolean.
        let out = json_value(&v.to_json().expect("to_json"));
        assert_eq!(
            out["ietf-voucher:voucher"]["domain-cert-revocation-checks"],
            serde_json::Value::Bool(true)
        );
        voucher_round_trip(&v);
    }
}

#[test]
fn rfc8366bis_8_3_voucher_with_extension_round_trips() {
    let v =
        Voucher::from_json(&bytes("rfc8366bis/8.3-voucher-with-extension.json")).expect("decode");
    assert_eq!(
        v.extensions,
        vec![ExtensionId::Name("example-my-extension".into())]
    );
    assert_eq!(
        v.extension_data,
        vec![ExtensionData::Json {
            member: "extension:example-my-extension".into(),
            value: serde_json::json!({"my-ext-leaf1": "my-ext-leaf1-data"}),
        }]
    );
    let json = String::from_utf8(v.to_json().expect("to_json")).expect("utf-8");
    assert!(
        json.contains(r#""extensions":["example-my-extension"]"#),
        "{json}"
    );
    assert!(
        json.ends_with(
            r#","extension:example-my-extension":{"my-ext-leaf1":"my-ext-leaf1-data"}}}"#
        ),
        "{json}"
    );
    voucher_round_trip(&v);
    // JSON extension data has no CBOR form without the extension's schema.
    assert_eq!(
        v.to_cbor(),
        Err(EncodeError::ExtensionDataFormat(
            "extension:example-my-extension".into()
        ))
    );
}

#[test]
fn rfc8366bis_8_3_voucher_with_extension_cbor_form_round_trips() {
    // The §8.3 CBOR example with concrete bytes, and the extensions key at the normative
    // delta 15 (SID 2466) instead of the example's 17.
    let ext_sid = 305823299950u64;
    let input = Value::Map(vec![(
        Value::Integer(2451.into()),
        Value::Map(vec![
            (Value::Integer(1.into()), Value::Integer(1.into())),
            (
                Value::Integer(2.into()),
                Value::Text("2016-10-07T19:31:42Z".into()),
            ),
            (Value::Integer(5.into()), Value::Bytes(vec![4, 0x18, 0x30])),
            // The example's nonce h'831D5198A6CA2C7F' (the YANG length is 8..32 octets).
            (
                Value::Integer(7.into()),
                Value::Bytes(vec![0x83, 0x1d, 0x51, 0x98, 0xa6, 0xca, 0x2c, 0x7f]),
            ),
            (Value::Integer(8.into()), Value::Bytes(vec![0x30, 0x82])),
            (
                Value::Integer(11.into()),
                Value::Text("JADA123456789".into()),
            ),
            (
                Value::Integer(15.into()),
                Value::Array(vec![Value::Integer(ext_sid.into())]),
            ),
            (
                Value::Tag(47, Box::new(Value::Integer(ext_sid.into()))),
                Value::Map(vec![(
                    Value::Integer(1.into()),
                    Value::Text("my-ext-leaf1-data".into()),
                )]),
            ),
        ]),
    )]);
    let mut encoded = Vec::new();
    ciborium::ser::into_writer(&input, &mut encoded).expect("encode");
    let v = Voucher::from_cbor(&encoded).expect("decode");
    assert_eq!(v.assertion, Some(Assertion::Logged));
    assert_eq!(v.extensions, vec![ExtensionId::Sid(ext_sid)]);
    assert_eq!(
        v.extension_data,
        vec![ExtensionData::Cbor {
            key: CborExtensionKey::Sid(ext_sid),
            value: Value::Map(vec![(
                Value::Integer(1.into()),
                Value::Text("my-ext-leaf1-data".into()),
            )]),
        }]
    );
    assert_eq!(v.to_cbor().expect("to_cbor"), encoded);
    assert_eq!(
        v.to_json(),
        Err(EncodeError::ExtensionDataFormat(format!("47({ext_sid})")))
    );
}

#[test]
fn rfc8366bis_8_3_cbor_example_key_17_is_not_extensions() {
    // The printed example puts `extensions` at key 17; the normative SID table says delta 15.
    // Key 17 (SID 2468) is no leaf of ietf-voucher, so it is ignored as unknown.
    let input = Value::Map(vec![(
        Value::Integer(2451.into()),
        Value::Map(vec![
            (
                Value::Integer(11.into()),
                Value::Text("JADA123456789".into()),
            ),
            (
                Value::Integer(17.into()),
                Value::Array(vec![Value::Integer(305823299950u64.into())]),
            ),
        ]),
    )]);
    let mut encoded = Vec::new();
    ciborium::ser::into_writer(&input, &mut encoded).expect("encode");
    let v = Voucher::from_cbor(&encoded).expect("decode");
    assert!(v.extensions.is_empty());
    assert_eq!(v, Voucher::new("JADA123456789"));
}

// ---------------------------------------------------------------------------------------------
// RFC 8995 Appendix C: the eContent of the signed examples

#[test]
fn rfc8995_c_2_1_pvr_econtent_decodes() {
    let econtent = cms_econtent("rfc8995/C.2.1-pledge-voucher-request.cms.b64");
    assert_eq!(
        econtent,
        bytes("rfc8995/C.2.1-pledge-voucher-request.econtent.json"),
        "the derived eContent file is the CMS eContent"
    );
    let vr = VoucherRequest::from_json(&econtent).expect("decode");
    assert_eq!(vr.assertion, Some(Assertion::Proximity));
    assert_eq!(vr.created_on, date("2021-04-13T17:43:23.747-04:00"));
    assert_eq!(vr.serial_number, "00-D0-E5-F2-00-02");
    assert_eq!(vr.nonce, Some(Nonce::Text("-_XE9zK9q8Ll1qylMtLKeg".into())));
    assert_eq!(
        vr.proximity_registrar_cert,
        Some(bytes("rfc8995/C.1.4-registrar.crt.pem"))
    );
    assert_eq!(vr.prior_signed_voucher_request, None);
    // Strict re-encoding gives the same JSON value (member order aside).
    assert_eq!(
        json_value(&vr.to_json().expect("to_json")),
        json_value(&econtent)
    );
    request_round_trip(&vr);
}

#[test]
fn rfc8995_c_2_2_rvr_econtent_decodes() {
    let econtent = cms_econtent("rfc8995/C.2.2-registrar-voucher-request.cms.b64");
    assert_eq!(
        econtent,
        bytes("rfc8995/C.2.2-registrar-voucher-request.econtent.json")
    );
    let vr = VoucherRequest::from_json(&econtent).expect("decode");
    assert_eq!(vr.assertion, Some(Assertion::Proximity));
    assert_eq!(vr.created_on, date("2021-04-13T21:43:23.787Z"));
    assert_eq!(vr.serial_number, "00-D0-E5-F2-00-02");
    assert_eq!(vr.nonce, Some(Nonce::Text("-_XE9zK9q8Ll1qylMtLKeg".into())));
    assert_eq!(
        vr.prior_signed_voucher_request,
        Some(bytes("rfc8995/C.2.1-pledge-voucher-request.cms.b64")),
        "prior-signed-voucher-request is the exact PVR CMS"
    );
    assert_eq!(vr.idevid_issuer, None);
    assert_eq!(vr.proximity_registrar_cert, None);
    assert_eq!(
        json_value(&vr.to_json().expect("to_json")),
        json_value(&econtent)
    );
    request_round_trip(&vr);
}

#[test]
fn rfc8995_c_2_3_voucher_econtent_decodes() {
    let econtent = cms_econtent("rfc8995/C.2.3-voucher.cms.b64");
    assert_eq!(econtent, bytes("rfc8995/C.2.3-voucher.econtent.json"));
    let v = Voucher::from_json(&econtent).expect("decode");
    assert_eq!(v.assertion, Some(Assertion::Logged));
    assert_eq!(v.created_on, date("2021-04-13T17:43:24.589-04:00"));
    assert_eq!(v.serial_number, "00-D0-E5-F2-00-02");
    assert_eq!(v.nonce, Some(Nonce::Text("-_XE9zK9q8Ll1qylMtLKeg".into())));
    assert_eq!(
        v.pinned_domain_cert,
        Some(bytes("rfc8995/C.1.4-registrar.crt.pem"))
    );
    assert_eq!(
        json_value(&v.to_json().expect("to_json")),
        json_value(&econtent)
    );
    voucher_round_trip(&v);
}

#[test]
fn rfc8995_c_2_voucher_request_is_not_a_voucher() {
    let econtent = bytes("rfc8995/C.2.1-pledge-voucher-request.econtent.json");
    assert_eq!(
        Voucher::from_json(&econtent),
        Err(brski_common::voucher::DecodeError::MissingContainer {
            expected: "ietf-voucher:voucher"
        })
    );
}

// ---------------------------------------------------------------------------------------------
// rfc8366bis Appendix A

#[test]
fn rfc8366bis_a_2_pvr_and_a_3_voucher_decode() {
    let vr = VoucherRequest::from_json(&cms_econtent("rfc8366bis/A.2-voucher-request.cms.b64"))
        .expect("PVR");
    assert_eq!(vr.assertion, Some(Assertion::Proximity));
    assert_eq!(vr.created_on, date("2022-07-10T17:08:18.598-04:00"));
    assert_eq!(vr.serial_number, "00-D0-E5-F2-00-02");
    assert_eq!(vr.nonce, Some(Nonce::Text("4vTsppS2CeqBzhEdoifM2g".into())));
    let registrar = vr.proximity_registrar_cert.clone().expect("registrar cert");
    assert!(
        subject(&registrar).contains("fountain-test.example.com"),
        "{}",
        subject(&registrar)
    );

    let v = Voucher::from_json(&cms_econtent("rfc8366bis/A.3-voucher.cms.b64")).expect("voucher");
    assert_eq!(v.assertion, Some(Assertion::Logged));
    assert_eq!(v.created_on, date("2022-07-10T17:08:18.720-04:00"));
    assert_eq!(v.nonce, vr.nonce);
    assert_eq!(v.pinned_domain_cert, Some(registrar));
    request_round_trip(&vr);
    voucher_round_trip(&v);
}

#[test]
fn rfc8366bis_a_4_jws_voucher_payload_decodes() {
    let jws = json_value(&bytes("rfc8366bis/A.4-jws-voucher.json"));
    let payload = B64URL
        .decode(jws["payload"].as_str().expect("payload"))
        .expect("base64url");
    let v = Voucher::from_json(&payload).expect("decode");
    assert_eq!(v.assertion, Some(Assertion::Proximity));
    assert_eq!(v.serial_number, "caffe-98745");
    assert_eq!(
        v.nonce,
        Some(Nonce::Text("62a2e7693d82fcda2624de58fb6722e5".into()))
    );
    assert_eq!(v.created_on, date("2025-10-15T00:00:00Z"));
    let pinned = v.pinned_domain_cert.clone().expect("pin");
    assert!(
        subject(&pinned).contains("CN=TestCA"),
        "{}",
        subject(&pinned)
    );
    assert_eq!(
        json_value(&v.to_json().expect("to_json")),
        json_value(&payload)
    );
}

// ---------------------------------------------------------------------------------------------
// draft-ietf-anima-jws-voucher §3.1 and §8 payloads

#[test]
fn jws_voucher_3_1_data_example_decodes() {
    let v = Voucher::from_json(&bytes("jws-voucher/3-voucher-data-example.json")).expect("decode");
    assert_eq!(v.assertion, Some(Assertion::Logged));
    assert_eq!(v.serial_number, "0123456789");
    assert_eq!(v.nonce, Some(Nonce::Text("5742698422680472".into())));
    assert_eq!(v.created_on, date("2022-07-08T03:01:24.618Z"));
    assert_placeholder(&v.pinned_domain_cert);
    voucher_round_trip(&v);
}

#[test]
fn jws_voucher_8_1_pvr_payload_decodes() {
    let payload = bytes("jws-voucher/8.1-pvr.payload.json");
    let vr = VoucherRequest::from_json(&payload).expect("decode");
    assert_eq!(vr.assertion, None, "the JWS PVR example has no assertion");
    assert_eq!(vr.serial_number, "kit-987654321");
    assert_eq!(
        vr.nonce,
        Some(Nonce::Text("TauvK+Y/cc2RfIFvpZzfKQ==".into()))
    );
    assert_eq!(vr.created_on, date("2024-11-29T09:34:16.426Z"));
    let registrar = vr.proximity_registrar_cert.clone().expect("registrar cert");
    assert!(subject(&registrar).contains("CN=MySiteRegistrar"));
    assert_eq!(
        json_value(&vr.to_json().expect("to_json")),
        json_value(&payload)
    );
    request_round_trip(&vr);
}

#[test]
fn jws_voucher_8_2_rvr_payload_decodes() {
    let payload = bytes("jws-voucher/8.2-rvr.payload.json");
    let vr = VoucherRequest::from_json(&payload).expect("decode");
    assert_eq!(vr.serial_number, "kit-987654321");
    assert_eq!(
        vr.nonce,
        Some(Nonce::Text("TauvK+Y/cc2RfIFvpZzfKQ==".into()))
    );
    assert_eq!(vr.created_on, date("2024-11-29T09:34:16.580Z"));
    // idevid-issuer is the 26-byte AKI extension value of the PVR signer's IDevID.
    let idevid = cert("jws-voucher/8.1-pvr.signer-key-and-chain.pem");
    let issuer = idevid_issuer(&idevid);
    assert_eq!(
        issuer,
        B64.decode("BBgwFoAUlU7Vft0KvopLzyjGaNB2fcQyB/U=")
            .expect("b64")
    );
    assert_eq!(&issuer[..6], &[0x04, 0x18, 0x30, 0x16, 0x80, 0x14]);
    assert_eq!(vr.idevid_issuer, Some(issuer));
    // prior-signed-voucher-request is the PVR's JWS JSON text.
    let prior = vr.prior_signed_voucher_request.clone().expect("prior");
    assert_eq!(
        json_value(&prior),
        json_value(&bytes("jws-voucher/8.1-pvr.json"))
    );
    assert_eq!(
        json_value(&vr.to_json().expect("to_json")),
        json_value(&payload)
    );
    request_round_trip(&vr);
}

#[test]
fn jws_voucher_8_3_voucher_payload_decodes() {
    let payload = bytes("jws-voucher/8.3-voucher.payload.json");
    let v = Voucher::from_json(&payload).expect("decode");
    assert_eq!(v.assertion, Some(Assertion::Logged));
    assert_eq!(v.serial_number, "kit-987654321");
    assert_eq!(
        v.nonce,
        Some(Nonce::Text("TauvK+Y/cc2RfIFvpZzfKQ==".into()))
    );
    assert_eq!(v.created_on, date("2024-11-29T09:34:17.029Z"));
    // The pin is MySiteCA, the issuer of the RVR signer (second certificate of its PEM).
    let rvr_chain = pem_certs("jws-voucher/8.2-rvr.signer-key-and-chain.pem");
    assert_eq!(rvr_chain.len(), 2);
    assert_eq!(v.pinned_domain_cert.as_ref(), Some(&rvr_chain[1]));
    assert!(subject(&rvr_chain[1]).contains("CN=MySiteCA"));
    assert_eq!(
        json_value(&v.to_json().expect("to_json")),
        json_value(&payload)
    );
    voucher_round_trip(&v);
}

// ---------------------------------------------------------------------------------------------
// cBRSKI Appendix C: CBOR payloads decode and re-encode to identical bytes

fn spki_der(c: &x509_cert::Certificate) -> Vec<u8> {
    c.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .expect("SPKI")
}

#[test]
fn cbrski_c_3_pvr_payload_decodes_and_reencodes() {
    let payload = bytes("cbrski/C.3-pvr.payload.hex");
    let vr = VoucherRequest::from_cbor(&payload).expect("decode");
    assert_eq!(vr.assertion, Some(Assertion::Proximity));
    assert_eq!(
        vr.nonce,
        Some(Nonce::Bytes(hex::decode("23BFBBC9C2BCF213").expect("hex")))
    );
    // Key 12 = SID 2513 = proximity-registrar-pubk: the registrar's SPKI.
    assert_eq!(
        vr.proximity_registrar_pubk,
        Some(spki_der(&cert("cbrski/C-registrar.crt.pem")))
    );
    assert_eq!(vr.proximity_registrar_pubk_sha256, None);
    assert_eq!(vr.serial_number, "JADA123456789");
    assert_eq!(vr.created_on, None);
    assert_eq!(vr.to_cbor().expect("to_cbor"), payload);
}

#[test]
fn cbrski_c_4_rvr_payload_decodes_and_reencodes() {
    let payload = bytes("cbrski/C.4-rvr.payload.hex");
    let vr = VoucherRequest::from_cbor(&payload).expect("decode");
    assert_eq!(vr.assertion, Some(Assertion::Proximity));
    assert_eq!(vr.created_on, date("2022-12-06T20:04:15.754Z"));
    // Key 5 = idevid-issuer: the AKI extension value of the pledge's IDevID.
    let expected_issuer =
        hex::decode("041830168014CB8D98CA74C51B58DDE7ACEF869A9443A8D666A6").expect("hex");
    assert_eq!(vr.idevid_issuer, Some(expected_issuer.clone()));
    assert_eq!(
        idevid_issuer(&cert("cbrski/C-pledge.crt.pem")),
        expected_issuer
    );
    assert_eq!(
        vr.nonce,
        Some(Nonce::Bytes(hex::decode("23BFBBC9C2BCF213").expect("hex")))
    );
    // Key 9 = prior-signed-voucher-request: the exact C.3 COSE bytes.
    assert_eq!(
        vr.prior_signed_voucher_request,
        Some(bytes("cbrski/C.3-pvr.cose.hex"))
    );
    assert_eq!(vr.serial_number, "JADA123456789");
    assert_eq!(vr.proximity_registrar_pubk, None);
    assert_eq!(vr.to_cbor().expect("to_cbor"), payload);
}

#[test]
fn cbrski_c_5_voucher_payload_decodes_and_reencodes() {
    let payload = bytes("cbrski/C.5-voucher.payload.hex");
    let v = Voucher::from_cbor(&payload).expect("decode");
    assert_eq!(v.assertion, Some(Assertion::Proximity));
    assert_eq!(v.created_on, date("2022-12-06T20:23:30.708Z"));
    // Key 3 = domain-cert-revocation-checks.
    assert_eq!(v.domain_cert_revocation_checks, Some(false));
    assert_eq!(
        v.nonce,
        Some(Nonce::Bytes(hex::decode("57EED786AD404907").expect("hex")))
    );
    // Key 8 = pinned-domain-cert: a 583-byte domain CA certificate with C-domain_ca's key.
    let pinned = v.pinned_domain_cert.clone().expect("pin");
    assert_eq!(pinned.len(), 583);
    let pinned_cert = x509_cert::Certificate::from_der(&pinned).expect("certificate");
    assert_eq!(
        spki_der(&pinned_cert),
        spki_der(&cert("cbrski/C-domain_ca.crt.pem"))
    );
    assert_eq!(v.serial_number, "JADA123456789");
    assert_eq!(v.to_cbor().expect("to_cbor"), payload);
}

#[test]
fn cbrski_c_payloads_survive_json_and_back() {
    // CBOR → model → JSON → model: binary nonces become their base64 text, which compares
    // equal (Nonce equality is by wire form).
    let v = Voucher::from_cbor(&bytes("cbrski/C.5-voucher.payload.hex")).expect("decode");
    let via_json = Voucher::from_json(&v.to_json().expect("to_json")).expect("re-decode");
    assert_eq!(via_json, v);
    assert_eq!(
        via_json.nonce,
        Some(Nonce::Text(
            B64.encode(hex::decode("57EED786AD404907").expect("hex"))
        ))
    );
    assert_eq!(
        via_json.to_cbor().expect("to_cbor"),
        bytes("cbrski/C.5-voucher.payload.hex")
    );
}

#[test]
fn cbrski_9_1_2_name_keys_decode_like_sid_keys() {
    // The C.4 RVR rewritten with the names of cBRSKI §9.1.2 (and a mix of tag-47 absolute
    // SIDs), cBRSKI §15.2.2.
    let sid_form = VoucherRequest::from_cbor(&bytes("cbrski/C.4-rvr.payload.hex")).expect("sid");
    let Value::Map(top) =
        ciborium::de::from_reader::<Value, _>(bytes("cbrski/C.4-rvr.payload.hex").as_slice())
            .expect("cbor")
    else {
        panic!("map")
    };
    let Value::Map(inner) = top[0].1.clone() else {
        panic!("inner map")
    };
    let renamed: Vec<(Value, Value)> = inner
        .into_iter()
        .map(|(k, v)| {
            let delta = k
                .as_integer()
                .map(u64::try_from)
                .expect("int")
                .expect("u64");
            let sid = VOUCHER_REQUEST_SID + delta;
            let leaf = VOUCHER_REQUEST_LEAF_SIDS
                .iter()
                .find(|(_, s)| *s == sid)
                .expect("known")
                .0;
            let key = if leaf == Leaf::Nonce {
                Value::Tag(47, Box::new(Value::Integer(sid.into())))
            } else {
                Value::Text(leaf.name().into())
            };
            (key, v)
        })
        .collect();
    for root in [
        Value::Text("ietf-voucher-request:voucher".into()),
        Value::Integer(VOUCHER_REQUEST_SID.into()),
        Value::Tag(47, Box::new(Value::Integer(VOUCHER_REQUEST_SID.into()))),
    ] {
        let doc = Value::Map(vec![(root, Value::Map(renamed.clone()))]);
        let mut encoded = Vec::new();
        ciborium::ser::into_writer(&doc, &mut encoded).expect("encode");
        let named = VoucherRequest::from_cbor(&encoded).expect("named");
        assert_eq!(named, sid_form);
        // Output always uses delta SIDs.
        assert_eq!(
            named.to_cbor().expect("to_cbor"),
            bytes("cbrski/C.4-rvr.payload.hex")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The normative SID tables (rfc8366bis §8.5, §9.3)

/// `(sid, kind, path)` rows of a `*-sid.txt` table.
fn sid_rows(rel: &str) -> Vec<(u64, String, String)> {
    String::from_utf8(read(rel))
        .expect("utf-8")
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let sid = parts.next()?.parse().ok()?;
            Some((sid, parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

fn check_sid_table(
    rel: &str,
    module: &str,
    module_sid: u64,
    container_sid: u64,
    table: &[(Leaf, u64)],
) {
    let rows = sid_rows(rel);
    let container_path = format!("/{module}:voucher");
    let mut leaf_rows = 0;
    for (sid, kind, path) in &rows {
        match kind.as_str() {
            "module" => {
                assert_eq!(path, module);
                assert_eq!(*sid, module_sid);
            }
            "data" if *path == container_path => assert_eq!(*sid, container_sid),
            "data" => {
                let name = path
                    .strip_prefix(&format!("{container_path}/"))
                    .unwrap_or_else(|| panic!("unexpected path {path}"));
                let leaf = Leaf::from_name(name).unwrap_or_else(|| panic!("unknown leaf {name}"));
                assert!(
                    table.contains(&(leaf, *sid)),
                    "{rel}: {name} = {sid} is not in the table"
                );
                leaf_rows += 1;
            }
            other => panic!("unexpected row kind {other}"),
        }
    }
    assert_eq!(
        leaf_rows,
        table.len(),
        "{rel}: every table entry is in the file"
    );
    assert_eq!(rows.len(), table.len() + 2);
    // SID order, strictly increasing.
    assert!(table.windows(2).all(|w| w[0].1 < w[1].1));
}

#[test]
fn rfc8366bis_8_5_voucher_sid_table_matches() {
    check_sid_table(
        "rfc8366bis/ietf-voucher-sid.txt",
        "ietf-voucher",
        VOUCHER_MODULE_SID,
        VOUCHER_SID,
        &VOUCHER_LEAF_SIDS,
    );
}

#[test]
fn rfc8366bis_9_3_voucher_request_sid_table_matches() {
    check_sid_table(
        "rfc8366bis/ietf-voucher-request-sid.txt",
        "ietf-voucher-request",
        VOUCHER_REQUEST_MODULE_SID,
        VOUCHER_REQUEST_SID,
        &VOUCHER_REQUEST_LEAF_SIDS,
    );
    // The ordering quirk: pubk-sha256 before pubk, pinned-domain-pubk* appended.
    let sid = |leaf| {
        VOUCHER_REQUEST_LEAF_SIDS
            .iter()
            .find(|(l, _)| *l == leaf)
            .map(|(_, s)| *s)
    };
    assert_eq!(sid(Leaf::ProximityRegistrarPubkSha256), Some(2512));
    assert_eq!(sid(Leaf::ProximityRegistrarPubk), Some(2513));
    assert_eq!(sid(Leaf::PinnedDomainPubk), Some(2518));
    assert_eq!(sid(Leaf::PinnedDomainPubkSha256), Some(2519));
}

#[test]
fn rfc8366bis_8_4_assertion_values() {
    for (a, name, int) in [
        (Assertion::Verified, "verified", 0),
        (Assertion::Logged, "logged", 1),
        (Assertion::Proximity, "proximity", 2),
        (Assertion::AgentProximity, "agent-proximity", 3),
    ] {
        assert_eq!(a.as_str(), name);
        assert_eq!(a.cbor_value(), int);
        assert_eq!(Assertion::from_name(name), Some(a));
        assert_eq!(Assertion::from_cbor_value(int), Some(a));
    }
    assert_eq!(Assertion::from_cbor_value(4), None);
    assert_eq!(Assertion::from_name("Logged"), None);
}
