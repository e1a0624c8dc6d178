//! RFC 9148 (EST-coaps) Appendix A payloads, §5.3 multipart-core, and cBRSKI §6.7.5 `/crts`.

use brski_common::est::{
    AttrOrOid, ContentFormat, CsrAttrs, EstError, MultipartPart, RawOid, decode_certs_only,
    decode_crts_multipart, decode_multipart_core, decode_pkcs10, encode_certs_only,
    encode_crts_multipart, encode_multipart_core,
};
use brski_common::oid::{CHALLENGE_PASSWORD, EXTENSION_REQUEST};
use brski_common::test_vectors::{bytes, cert};
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::Extensions;

fn subject(cert: &Certificate) -> String {
    cert.tbs_certificate().subject().to_string()
}

#[test]
fn rfc9148_a_1_crts_response_decodes() {
    let der = bytes("est-coaps/A.1-crts-response-pkcs7.hex");
    let certs = decode_certs_only(&der).expect("A.1 decodes");
    assert_eq!(certs.len(), 1);
    let root = &certs[0];
    assert_eq!(
        subject(root),
        "CN=Root CA,OU=certification,O=Example Inc,L=LA,ST=CA,C=US"
    );
    assert_eq!(
        root.tbs_certificate().issuer(),
        root.tbs_certificate().subject(),
        "self-signed"
    );
    assert!(brski_common::pki::chain::signed_by(root, root));
    assert_eq!(encode_certs_only(&certs).expect("encodes"), der);
}

#[test]
fn rfc9148_a_2_sen_request_decodes() {
    let der = bytes("est-coaps/A.2-sen-request-csr.hex");
    let csr = decode_pkcs10(&der).expect("A.2 CSR decodes");
    assert_eq!(
        csr.info.subject.to_string(),
        "SERIALNUMBER=Wt1234,OU=IoT,O=example Inc,L=LA,ST=CA,C=US"
    );
    let oids: Vec<_> = csr.info.attributes.iter().map(|a| a.oid).collect();
    assert!(oids.contains(&CHALLENGE_PASSWORD), "{oids:?}");
    let ext_req = csr
        .info
        .attributes
        .iter()
        .find(|a| a.oid == EXTENSION_REQUEST)
        .expect("extensionRequest");
    let value = ext_req.values.iter().next().expect("one value");
    let exts = Extensions::from_der(&value.to_der().expect("der")).expect("Extensions");
    assert_eq!(
        exts.iter()
            .map(|e| e.extn_id.to_string())
            .collect::<Vec<_>>(),
        vec!["2.5.29.17"],
        "subjectAltName (HardwareModuleName otherName)"
    );
}

#[test]
fn rfc9148_a_2_sen_response_decodes_to_the_requested_cert() {
    let der = bytes("est-coaps/A.2-sen-response-pkcs7.hex");
    let certs = decode_certs_only(&der).expect("A.2 response decodes");
    assert_eq!(certs.len(), 1);
    let issued = &certs[0];
    assert_eq!(
        issued.tbs_certificate().issuer().to_string(),
        "CN=802.1AR CA,OU=certification,O=Example Inc,ST=CA,C=US"
    );
    let csr = decode_pkcs10(&bytes("est-coaps/A.2-sen-request-csr.hex")).expect("CSR");
    assert_eq!(issued.tbs_certificate().subject(), &csr.info.subject);
    assert_eq!(
        issued.tbs_certificate().subject_public_key_info(),
        &csr.info.public_key
    );
    assert_eq!(encode_certs_only(&certs).expect("encodes"), der);
}

#[test]
fn rfc9148_a_3_skg_request_decodes() {
    let csr = decode_pkcs10(&bytes("est-coaps/A.3-skg-request-csr.hex")).expect("A.3 CSR");
    assert_eq!(csr.info.subject.to_string(), "O=skg example");
}

#[test]
fn rfc9148_a_3_skg_response_multipart_decodes() {
    let body = bytes("est-coaps/A.3-skg-response-multipart.hex");
    let parts = decode_multipart_core(&body).expect("A.3 multipart decodes");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].content_format, ContentFormat::PKCS8);
    assert_eq!(parts[1].content_format, ContentFormat::PKCS7_CERTS_ONLY);
    let key = parts[0].representation.as_deref().expect("key present");
    let pkcs7 = parts[1].representation.as_deref().expect("cert present");
    assert_eq!(key.len(), 138);
    assert_eq!(pkcs7.len(), 467);
    assert_eq!(key, bytes("est-coaps/A.3-skg-response-part1-pkcs8.hex"));
    assert_eq!(pkcs7, bytes("est-coaps/A.3-skg-response-part2-pkcs7.hex"));
    let certs = decode_certs_only(pkcs7).expect("part 2 is certs-only");
    assert_eq!(certs.len(), 1);
    assert_eq!(subject(&certs[0]), "O=skg example");
    assert_eq!(encode_multipart_core(&parts), body);
}

#[test]
fn rfc9148_a_4_att_response_equals_rfc7030_a_2() {
    let coap = bytes("est-coaps/A.4-att-response-csrattrs.hex");
    let http = bytes("rfc7030/A.2-csrattrs-response.b64");
    assert_eq!(coap.len(), 126);
    assert_eq!(coap, http);
    let attrs = CsrAttrs::from_der(&coap).expect("A.4 decodes");
    assert_eq!(attrs, CsrAttrs::from_der(&http).expect("A.2 decodes"));
    assert!(attrs.mentions(&RawOid::new("2.999.1").expect("oid")));
    assert!(matches!(&attrs.0[0], AttrOrOid::Oid(o) if o.to_string() == "1.3.6.1.1.1.1.22"));
}

#[test]
fn rfc9148_5_3_multipart_example_decodes() {
    let body = bytes("est-coaps/5.3-multipart-example.hex");
    let parts = decode_multipart_core(&body).expect("decodes");
    assert_eq!(
        parts,
        vec![
            MultipartPart::new(
                ContentFormat(284),
                hex::decode("0123456789abcdef").expect("hex")
            ),
            MultipartPart::new(
                ContentFormat(281),
                hex::decode("fedcba9876543210").expect("hex")
            ),
        ]
    );
    assert_eq!(encode_multipart_core(&parts), body);
}

fn domain_certs() -> Vec<Certificate> {
    vec![
        cert("cbrski/C-domain_ca.crt.pem"),
        cert("cbrski/C-masa_ca.crt.pem"),
    ]
}

#[test]
fn cbrski_6_7_5_crts_multipart_round_trip() {
    let certs = domain_certs();
    let body = encode_crts_multipart(&certs).expect("encodes");
    // 0x84: array of 2 × 2 items; then 287 as 0x19 0x01 0x1f and the first bstr header.
    assert_eq!(&body[..4], &[0x84, 0x19, 0x01, 0x1f]);
    let first_len = certs[0].to_der().expect("der").len();
    assert_eq!(
        body[4], 0x59,
        "two-byte bstr length for a {first_len}-byte cert"
    );
    assert_eq!(
        usize::from(u16::from_be_bytes([body[5], body[6]])),
        first_len
    );
    assert_eq!(decode_crts_multipart(&body).expect("decodes"), certs);
}

#[test]
fn cbrski_6_7_5_crts_multipart_rejections() {
    let pkcs7 = bytes("est-coaps/A.1-crts-response-pkcs7.hex");
    let wrong_format =
        encode_multipart_core(&[MultipartPart::new(ContentFormat::PKCS7_CERTS_ONLY, pkcs7)]);
    assert!(matches!(
        decode_crts_multipart(&wrong_format),
        Err(EstError::UnexpectedContentFormat(281))
    ));
    let null_part = encode_multipart_core(&[MultipartPart {
        content_format: ContentFormat::PKIX_CERT,
        representation: None,
    }]);
    assert!(matches!(
        decode_crts_multipart(&null_part),
        Err(EstError::Malformed(_))
    ));
    let not_a_cert = encode_multipart_core(&[MultipartPart::new(
        ContentFormat::PKIX_CERT,
        vec![0x30, 0x00],
    )]);
    assert!(matches!(
        decode_crts_multipart(&not_a_cert),
        Err(EstError::Malformed(_))
    ));
    assert!(matches!(
        decode_crts_multipart(&[0x80]),
        Err(EstError::NoCertificates)
    ));
    assert!(matches!(
        encode_crts_multipart(&[]),
        Err(EstError::NoCertificates)
    ));
}

#[test]
fn rfc8710_2_multipart_structure_violations_are_malformed() {
    let cases: [(&str, &[u8]); 9] = [
        ("empty input", &[]),
        ("not an array", &[0xa0]),
        ("odd element count", &[0x81, 0x00]),
        (
            "format above 65535",
            &[0x82, 0x1a, 0x00, 0x01, 0x00, 0x00, 0x40],
        ),
        ("negative format", &[0x82, 0x20, 0x40]),
        ("text representation", &[0x82, 0x00, 0x61, b'a']),
        ("text format", &[0x82, 0x61, b'a', 0x40]),
        ("trailing data", &[0x80, 0x00]),
        ("truncated bstr", &[0x82, 0x00, 0x45, 0x01]),
    ];
    for (what, body) in cases {
        assert!(
            matches!(decode_multipart_core(body), Err(EstError::Malformed(_))),
            "{what}"
        );
    }
    // The empty collection is valid (RFC 8710 §4).
    assert_eq!(decode_multipart_core(&[0x80]).expect("empty"), Vec::new());
    assert_eq!(encode_multipart_core(&[]), vec![0x80]);
}
