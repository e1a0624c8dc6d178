//! RFC 7030 Appendix A and §4.5.2 (as corrected by RFC 8951) examples, and the certs-only codec
//! checked against OpenSSL.

use brski_common::est::{
    self, AttrOrOid, CsrAttrs, EstError, RawOid, RequestedKey, decode_base64_body,
    decode_certs_only, decode_certs_only_body, decode_pkcs10, decode_pkcs10_body,
    encode_base64_body, encode_certs_only, encode_certs_only_body,
};
use brski_common::input::strip_comment_lines;
use brski_common::oid::{CHALLENGE_PASSWORD, EXTENSION_REQUEST, ID_DATA, ID_SIGNED_DATA};
use brski_common::test_vectors::{bytes, cert, read};
use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use const_oid::db::{rfc5639, rfc5912};
use der::asn1::{OctetString, PrintableStringRef, SetOfVec};
use der::{Any, Decode, Encode, Tagged};
use std::process::Command;
use x509_cert::Certificate;

const MAC_ADDRESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.1.1.1.22");

fn serial(cert: &Certificate) -> u128 {
    cert.tbs_certificate()
        .serial_number()
        .as_bytes()
        .iter()
        .fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
}

fn subject(cert: &Certificate) -> String {
    cert.tbs_certificate().subject().to_string()
}

fn any_oid(any: &Any) -> RawOid {
    assert_eq!(any.tag(), der::Tag::ObjectIdentifier);
    RawOid::from_der_content(any.value()).expect("OID value")
}

fn any_printable(any: &Any) -> String {
    let der = any.to_der().expect("der");
    PrintableStringRef::from_der(&der)
        .expect("PrintableString value")
        .as_str()
        .to_string()
}

fn oid(s: &str) -> RawOid {
    RawOid::new(s).expect("oid")
}

fn raw(oid: ObjectIdentifier) -> RawOid {
    RawOid::from(oid)
}

#[test]
fn rfc7030_a_1_cacerts_decode_to_the_rollover_set() {
    let body = read("rfc7030/A.1-cacerts-response.b64");
    let certs = decode_certs_only_body(strip_comment_lines(&body)).expect("A.1 decodes");
    let got: Vec<(u128, String)> = certs.iter().map(|c| (serial(c), subject(c))).collect();
    assert_eq!(
        got,
        vec![
            (11121883874307308188, "CN=estExampleCA OwO".to_string()),
            (1, "CN=estExampleCA NwO".to_string()),
            (2, "CN=estExampleCA OwN".to_string()),
            (16838569520216125969, "CN=estExampleCA NwN".to_string()),
        ]
    );
}

#[test]
fn rfc7030_a_1_cacerts_reencode_to_identical_der() {
    let der = bytes("rfc7030/A.1-cacerts-response.b64");
    let certs = decode_certs_only(&der).expect("A.1 decodes");
    assert_eq!(encode_certs_only(&certs).expect("encodes"), der);
}

#[test]
fn rfc7030_a_2_csrattrs_decode_to_the_six_requirements() {
    let body = read("rfc7030/A.2-csrattrs-response.b64");
    let attrs = CsrAttrs::from_body(strip_comment_lines(&body)).expect("A.2 decodes");
    assert_eq!(attrs.0.len(), 6, "{attrs:?}");
    assert_eq!(attrs.0[0], AttrOrOid::Oid(raw(MAC_ADDRESS)));
    let AttrOrOid::Attribute { oid: o, values } = &attrs.0[1] else {
        panic!("item 2 is an attribute: {:?}", attrs.0[1]);
    };
    assert_eq!(*o, oid("2.999.1"));
    assert_eq!(values.len(), 1);
    assert_eq!(any_printable(&values[0]), "Parse SET as 2.999.1 data");
    assert_eq!(attrs.0[2], AttrOrOid::Oid(raw(CHALLENGE_PASSWORD)));
    let AttrOrOid::Attribute { oid: o, values } = &attrs.0[3] else {
        panic!("item 4 is an attribute: {:?}", attrs.0[3]);
    };
    assert_eq!(*o, oid("2.999.2"));
    assert_eq!(values.len(), 3);
    assert_eq!(any_oid(&values[0]), oid("2.999.3"));
    assert_eq!(any_oid(&values[1]), oid("2.999.4"));
    assert_eq!(any_printable(&values[2]), "Parse SET as 2.999.2 data");
    assert_eq!(
        attrs.0[4],
        AttrOrOid::Oid(raw(rfc5639::BRAINPOOL_P_384_R_1))
    );
    assert_eq!(attrs.0[5], AttrOrOid::Oid(raw(rfc5912::ID_SHA_384)));

    assert!(attrs.requests_challenge_password());
    assert_eq!(
        attrs.requested_key(),
        Some(RequestedKey::Ec {
            curve: Some(rfc5639::BRAINPOOL_P_384_R_1)
        })
    );
    assert_eq!(attrs.requested_hash(), Some(rfc5912::ID_SHA_384));
    assert_eq!(attrs.requested_signature_algorithm(), None);
    assert!(attrs.requested_extensions().is_empty());
    assert_eq!(
        attrs.oids().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            "1.3.6.1.1.1.1.22",
            "1.2.840.113549.1.9.7",
            "1.3.36.3.3.2.8.1.1.11",
            "2.16.840.1.101.3.4.2.2"
        ]
    );
    assert_eq!(attrs.attribute(&oid("2.999.2")).map(<[Any]>::len), Some(3));
    assert!(attrs.attribute(&oid("2.999.9")).is_none());
}

#[test]
fn rfc7030_a_2_csrattrs_reencode_to_identical_der() {
    let der = bytes("rfc7030/A.2-csrattrs-response.b64");
    let attrs = CsrAttrs::from_der(&der).expect("A.2 decodes");
    assert_eq!(attrs.to_der().expect("encodes"), der);
    let body = attrs.to_body().expect("body");
    assert_eq!(
        CsrAttrs::from_body(body.as_bytes()).expect("body decodes"),
        attrs
    );
}

#[test]
fn rfc8951_4_5_2_csrattrs_example_decodes_and_reencodes() {
    let der = bytes("rfc7030/4.5.2-csrattrs-example.b64");
    assert_eq!(&der[..4], &[0x30, 0x41, 0x06, 0x09]);
    let attrs = CsrAttrs::from_der(&der).expect("4.5.2 decodes");
    assert_eq!(attrs.0.len(), 4, "{attrs:?}");
    assert_eq!(attrs.0[0], AttrOrOid::Oid(raw(CHALLENGE_PASSWORD)));
    let AttrOrOid::Attribute { oid: o, values } = &attrs.0[1] else {
        panic!("item 2 is an attribute: {:?}", attrs.0[1]);
    };
    assert_eq!(*o, raw(rfc5912::ID_EC_PUBLIC_KEY));
    assert_eq!(
        values.iter().map(any_oid).collect::<Vec<_>>(),
        vec![raw(rfc5912::SECP_384_R_1)]
    );
    let AttrOrOid::Attribute { oid: o, values } = &attrs.0[2] else {
        panic!("item 3 is an attribute: {:?}", attrs.0[2]);
    };
    assert_eq!(*o, raw(EXTENSION_REQUEST));
    assert_eq!(
        values.iter().map(any_oid).collect::<Vec<_>>(),
        vec![raw(MAC_ADDRESS)]
    );
    assert_eq!(attrs.0[3], AttrOrOid::Oid(raw(rfc5912::ECDSA_WITH_SHA_384)));

    assert!(attrs.requests_challenge_password());
    assert_eq!(attrs.requested_extensions(), vec![raw(MAC_ADDRESS)]);
    assert_eq!(
        attrs.requested_key(),
        Some(RequestedKey::Ec {
            curve: Some(rfc5912::SECP_384_R_1)
        })
    );
    assert_eq!(attrs.requested_hash(), Some(rfc5912::ID_SHA_384));
    assert_eq!(
        attrs.requested_signature_algorithm(),
        Some(rfc5912::ECDSA_WITH_SHA_384)
    );
    assert_eq!(attrs.to_der().expect("encodes"), der);
}

#[test]
fn rfc8951_3_4_csrattrs_built_in_code_round_trip() {
    let attrs = CsrAttrs(vec![
        AttrOrOid::Attribute {
            oid: raw(rfc5912::RSA_ENCRYPTION),
            values: vec![Any::encode_from(&4096u32).expect("int")],
        },
        AttrOrOid::Oid(raw(rfc5912::ID_SHA_256)),
    ]);
    let der = attrs.to_der().expect("encodes");
    let back = CsrAttrs::from_der(&der).expect("decodes");
    assert_eq!(back, attrs);
    assert_eq!(
        back.requested_key(),
        Some(RequestedKey::Rsa { bits: Some(4096) })
    );
    assert_eq!(back.requested_hash(), Some(rfc5912::ID_SHA_256));
    assert!(!back.requests_challenge_password());
    // An empty response means "no requirements" (RFC 8951 §3.4).
    let empty = CsrAttrs::default();
    assert_eq!(empty.to_der().expect("encodes"), vec![0x30, 0x00]);
    assert_eq!(CsrAttrs::from_der(&[0x30, 0x00]).expect("decodes"), empty);
    assert_eq!(empty.requested_key(), None);
}

#[test]
fn rfc7030_a_3_simpleenroll_request_decodes() {
    let body = read("rfc7030/A.3-simpleenroll-request.b64");
    let csr = decode_pkcs10_body(strip_comment_lines(&body)).expect("A.3 request decodes");
    assert_eq!(csr.info.subject.to_string(), "CN=demostep4 1368141352");
    let password = csr
        .info
        .attributes
        .iter()
        .find(|a| a.oid == CHALLENGE_PASSWORD)
        .expect("challengePassword attribute");
    let values: Vec<&Any> = password.values.iter().collect();
    assert_eq!(values.len(), 1);
    assert_eq!(any_printable(values[0]), "+rrCir/7+EYu50T4");
    let der = bytes("rfc7030/A.3-simpleenroll-request.b64");
    assert_eq!(est::encode_pkcs10(&csr).expect("encodes"), der);
    assert_eq!(
        decode_pkcs10_body(est::encode_pkcs10_body(&csr).expect("body").as_bytes())
            .expect("round trip"),
        csr
    );
}

#[test]
fn rfc7030_a_3_simpleenroll_response_decodes_to_serial_21() {
    let body = read("rfc7030/A.3-simpleenroll-response.b64");
    let certs = decode_certs_only_body(strip_comment_lines(&body)).expect("A.3 response decodes");
    assert_eq!(certs.len(), 1);
    assert_eq!(serial(&certs[0]), 21);
    assert_eq!(
        certs[0].tbs_certificate().issuer().to_string(),
        "CN=estExampleCA NwN"
    );
    assert_eq!(subject(&certs[0]), "CN=demostep4 1368141352");
    let der = bytes("rfc7030/A.3-simpleenroll-response.b64");
    assert_eq!(encode_certs_only(&certs).expect("encodes"), der);
}

#[test]
fn rfc8951_3_2_base64_with_crlf_and_spaces_anywhere_decodes() {
    let der = bytes("rfc7030/A.3-simpleenroll-response.b64");
    let body = encode_base64_body(&der);
    // Re-wrap at odd places with CRLF, LF, spaces and tabs.
    let mut messy = String::new();
    for (i, c) in body
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .enumerate()
    {
        match i % 37 {
            0 => messy.push_str("\r\n"),
            11 => messy.push(' '),
            23 => messy.push('\t'),
            29 => messy.push('\n'),
            _ => {}
        }
        messy.push(c);
    }
    messy.push_str("  \r\n");
    assert_eq!(decode_base64_body(messy.as_bytes()).expect("decodes"), der);
    let certs = decode_certs_only_body(messy.as_bytes()).expect("certs decode");
    assert_eq!(serial(&certs[0]), 21);
}

#[test]
fn rfc8951_3_2_certs_only_body_has_64_column_crlf_lines() {
    let certs = vec![cert("rfc8995/C.1.3-owner-ca.crt.pem")];
    let body = encode_certs_only_body(&certs).expect("encodes");
    assert!(body.ends_with("\r\n"));
    let lines: Vec<&str> = body.trim_end_matches("\r\n").split("\r\n").collect();
    assert!(lines.len() > 1);
    assert!(lines[..lines.len() - 1].iter().all(|l| l.len() == 64));
    assert!(lines.iter().all(|l| !l.contains('\n') && !l.is_empty()));
    assert_eq!(
        decode_certs_only_body(body.as_bytes()).expect("decodes"),
        certs
    );
}

fn our_certs() -> Vec<Certificate> {
    vec![
        cert("rfc8995/C.1.4-registrar.crt.pem"),
        cert("rfc8995/C.1.3-owner-ca.crt.pem"),
        cert("rfc8995/C.1.1-manufacturer-ca.crt.pem"),
    ]
}

#[test]
fn rfc7030_4_1_3_certs_only_round_trip_keeps_order() {
    let certs = our_certs();
    let der = encode_certs_only(&certs).expect("encodes");
    assert_eq!(decode_certs_only(&der).expect("decodes"), certs);
    // The structure is the degenerate SignedData of RFC 5272 §4.1.
    let ci = ContentInfo::from_der(&der).expect("ContentInfo");
    assert_eq!(ci.content_type, ID_SIGNED_DATA);
    let sd = SignedData::from_der(&ci.content.to_der().expect("der")).expect("SignedData");
    assert_eq!(sd.version, CmsVersion::V1);
    assert!(sd.digest_algorithms.is_empty());
    assert_eq!(sd.encap_content_info.econtent_type, ID_DATA);
    assert!(sd.encap_content_info.econtent.is_none());
    assert!(sd.signer_infos.0.is_empty());
    assert_eq!(sd.certificates.map(|c| c.0.len()), Some(3));
}

fn openssl(args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command is needed for this interoperability test");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn rfc7030_4_1_3_openssl_lists_our_certs_only_certs() {
    let certs = our_certs();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("certs.p7b");
    std::fs::write(&path, encode_certs_only(&certs).expect("encodes")).expect("write");
    let out = openssl(&[
        "pkcs7",
        "-print_certs",
        "-inform",
        "DER",
        "-in",
        path.to_str().expect("utf-8 path"),
    ]);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let listed = brski_common::input::pem_blocks(&text, &["CERTIFICATE"]).expect("PEM");
    let expected: Vec<Vec<u8>> = certs.iter().map(|c| c.to_der().expect("der")).collect();
    assert_eq!(listed, expected, "openssl output:\n{text}");
}

#[test]
fn rfc7030_4_1_3_openssl_certs_only_decodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = dir.path().join("in.pem");
    let p7b = dir.path().join("out.p7b");
    let mut text = String::new();
    for name in [
        "rfc8995/C.1.3-owner-ca.crt.pem",
        "rfc8995/C.1.4-registrar.crt.pem",
    ] {
        text.push_str(&String::from_utf8(read(name)).expect("utf-8"));
    }
    std::fs::write(&pem, text).expect("write");
    openssl(&[
        "crl2pkcs7",
        "-nocrl",
        "-certfile",
        pem.to_str().expect("utf-8 path"),
        "-outform",
        "DER",
        "-out",
        p7b.to_str().expect("utf-8 path"),
    ]);
    let der = std::fs::read(&p7b).expect("read");
    let mut got: Vec<Vec<u8>> = decode_certs_only(&der)
        .expect("OpenSSL's certs-only decodes")
        .iter()
        .map(|c| c.to_der().expect("der"))
        .collect();
    let mut expected = vec![
        bytes("rfc8995/C.1.3-owner-ca.crt.pem"),
        bytes("rfc8995/C.1.4-registrar.crt.pem"),
    ];
    // OpenSSL writes the SET OF in DER order, which need not be the file order.
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

// ---- rejections ----

/// A ContentInfo wrapping a SignedData built from parts.
fn signed_data(
    econtent_type: ObjectIdentifier,
    econtent: Option<Any>,
    certs: Option<Vec<Certificate>>,
    signer_infos: Vec<SignerInfo>,
) -> Vec<u8> {
    let certificates = certs.map(|c| {
        CertificateSet::try_from(
            c.into_iter()
                .map(CertificateChoices::Certificate)
                .collect::<Vec<_>>(),
        )
        .expect("set")
    });
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type,
            econtent,
        },
        certificates,
        crls: None,
        signer_infos: SignerInfos::try_from(signer_infos).expect("set"),
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&sd).expect("any"),
    }
    .to_der()
    .expect("der")
}

#[test]
fn rfc7030_truncated_der_is_malformed() {
    let der = bytes("rfc7030/A.3-simpleenroll-response.b64");
    for cut in [1, 10, der.len() / 2, der.len() - 1] {
        assert!(
            matches!(decode_certs_only(&der[..cut]), Err(EstError::Malformed(_))),
            "cut at {cut}"
        );
    }
    let csr = bytes("rfc7030/A.3-simpleenroll-request.b64");
    assert!(matches!(
        decode_pkcs10(&csr[..csr.len() - 3]),
        Err(EstError::Malformed(_))
    ));
    let attrs = bytes("rfc7030/A.2-csrattrs-response.b64");
    assert!(matches!(
        CsrAttrs::from_der(&attrs[..attrs.len() - 2]),
        Err(EstError::Malformed(_))
    ));
    // Trailing data after the DER is not accepted either.
    let mut long = der.clone();
    long.push(0);
    assert!(matches!(
        decode_certs_only(&long),
        Err(EstError::Malformed(_))
    ));
}

#[test]
fn rfc8951_3_2_wrong_base64_is_rejected() {
    for body in [
        &b"MIIC!AAA"[..],
        b"MIIC-_AA",
        b"MIIB=AAA",
        b"QUJD\xffREVG",
        b"A",
    ] {
        assert!(
            matches!(decode_base64_body(body), Err(EstError::BadBase64(_))),
            "{body:?}"
        );
        assert!(matches!(
            decode_certs_only_body(body),
            Err(EstError::BadBase64(_))
        ));
        assert!(matches!(
            CsrAttrs::from_body(body),
            Err(EstError::BadBase64(_))
        ));
        assert!(matches!(
            decode_pkcs10_body(body),
            Err(EstError::BadBase64(_))
        ));
    }
    assert!(matches!(
        decode_certs_only_body(b"\r\n  \r\n"),
        Err(EstError::EmptyBody)
    ));
}

#[test]
fn rfc5272_4_1_signed_message_is_not_certs_only() {
    // A signed voucher has signerInfos and eContent.
    let voucher = bytes("rfc8995/C.2.3-voucher.cms.b64");
    assert!(matches!(
        decode_certs_only(&voucher),
        Err(EstError::NotCertsOnly("SignedData has signerInfos"))
    ));
}

#[test]
fn rfc5272_4_1_econtent_is_not_certs_only() {
    let econtent =
        Any::encode_from(&OctetString::new(vec![1, 2, 3]).expect("octets")).expect("any");
    let der = signed_data(ID_DATA, Some(econtent), Some(our_certs()), Vec::new());
    assert!(matches!(
        decode_certs_only(&der),
        Err(EstError::NotCertsOnly("SignedData carries eContent"))
    ));
}

#[test]
fn rfc5272_4_1_econtent_type_must_be_id_data() {
    let der = signed_data(
        brski_common::oid::ID_CT_ANIMA_JSON_VOUCHER,
        None,
        Some(our_certs()),
        Vec::new(),
    );
    assert!(matches!(
        decode_certs_only(&der),
        Err(EstError::NotCertsOnly("eContentType is not id-data"))
    ));
}

#[test]
fn rfc5652_3_content_type_must_be_signed_data() {
    let der = ContentInfo {
        content_type: ID_DATA,
        content: Any::encode_from(&OctetString::new(vec![0]).expect("octets")).expect("any"),
    }
    .to_der()
    .expect("der");
    assert!(matches!(
        decode_certs_only(&der),
        Err(EstError::NotCertsOnly("content type is not id-signedData"))
    ));
}

#[test]
fn rfc7030_4_1_3_no_certificates_is_rejected() {
    assert!(matches!(
        encode_certs_only(&[]),
        Err(EstError::NoCertificates)
    ));
    let absent = signed_data(ID_DATA, None, None, Vec::new());
    assert!(matches!(
        decode_certs_only(&absent),
        Err(EstError::NoCertificates)
    ));
    let empty = signed_data(ID_DATA, None, Some(Vec::new()), Vec::new());
    assert!(matches!(
        decode_certs_only(&empty),
        Err(EstError::NoCertificates)
    ));
}

#[test]
fn rfc5272_4_1_signer_info_built_in_code_is_rejected() {
    let signer = cert("rfc8995/C.1.3-owner-ca.crt.pem");
    let algorithm = spki::AlgorithmIdentifierOwned {
        oid: rfc5912::ID_SHA_256,
        parameters: None,
    };
    let info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::from(&signer),
        digest_alg: algorithm.clone(),
        signed_attrs: None,
        signature_algorithm: algorithm,
        signature: OctetString::new(vec![0; 8]).expect("octets"),
        unsigned_attrs: None,
    };
    let der = signed_data(ID_DATA, None, Some(vec![signer]), vec![info]);
    assert!(matches!(
        decode_certs_only(&der),
        Err(EstError::NotCertsOnly("SignedData has signerInfos"))
    ));
}

#[test]
fn rfc8951_3_4_csrattrs_rejections() {
    // Attribute 2.999.1 with an empty SET of values.
    let empty_values = [
        0x30, 0x09, 0x30, 0x07, 0x06, 0x03, 0x88, 0x37, 0x01, 0x31, 0x00,
    ];
    assert!(matches!(
        CsrAttrs::from_der(&empty_values),
        Err(EstError::Malformed(_))
    ));
    // An INTEGER is neither an OID nor an Attribute.
    assert!(matches!(
        CsrAttrs::from_der(&[0x30, 0x03, 0x02, 0x01, 0x05]),
        Err(EstError::Malformed(_))
    ));
    // Not a SEQUENCE at all.
    assert!(matches!(
        CsrAttrs::from_der(&[0x06, 0x03, 0x88, 0x37, 0x01]),
        Err(EstError::Malformed(_))
    ));
    // Encoding refuses an attribute without values.
    let bad = CsrAttrs(vec![AttrOrOid::Attribute {
        oid: oid("2.999.1"),
        values: Vec::new(),
    }]);
    assert!(matches!(bad.to_der(), Err(EstError::Encode(_))));
}
