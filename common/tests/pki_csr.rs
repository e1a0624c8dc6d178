//! PKCS#10 certification requests (RFC 2986): our own, the EST and EST-coaps examples, and the
//! CSR-attestation sample; every rejection path with its exact error.
//!
//! The OpenSSL check FAILS when `openssl` is not installed: CI installs it.

use brski_common::keys::{KeyError, SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::oid::{
    CHALLENGE_PASSWORD, EXTENSION_REQUEST, ID_AA_ATTESTATION, ID_KP_CLIENT_AUTH, TCG_TPM2_HW_TYPE,
};
use brski_common::pki::csr::{
    CsrError, CsrParams, attribute, build_csr, challenge_password, parse_csr, requested_extensions,
    spki_der, subject, verify_csr,
};
use brski_common::pki::ext::{hardware_module_name_in, name_serial_number};
use brski_common::pki::{
    TimeCheck, TrustPolicy, issue, name_from_parts, parse_name, profile, self_signed,
    validate_chain,
};
use brski_common::test_vectors::bytes;
use const_oid::AssociatedOid;
use der::asn1::{Any, BitString, OctetString, SetOfVec};
use der::{Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use std::process::Command;
use x509_cert::attr::Attribute;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};

fn key(alg: SignatureAlgorithm) -> SoftwareKey {
    SoftwareKey::generate(alg).expect("key")
}

fn san_extension() -> Extension {
    let mut names = profile::alt_names(&["pledge.example"], &[]).expect("alt names");
    names.push(profile::hardware_module_name(TCG_TPM2_HW_TYPE, b"TPM-42").expect("hmn"));
    Extension {
        extn_id: SubjectAltName::OID,
        critical: false,
        extn_value: OctetString::new(SubjectAltName(names).to_der().expect("der")).expect("octets"),
    }
}

fn sample_params() -> CsrParams {
    CsrParams {
        extensions: vec![san_extension()],
        challenge_password: Some("q0Zc+/Pw5QmBGdzJ1NZnJg==".into()),
        attributes: Vec::new(),
    }
}

fn sample_subject() -> Name {
    name_from_parts(Some("pledge"), Some("Vendor"), Some("JADA-7")).expect("name")
}

fn openssl_req_verify(der: &[u8]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("req.der");
    std::fs::write(&path, der).expect("write");
    let out = Command::new("openssl")
        .args(["req", "-inform", "DER", "-noout", "-verify", "-in"])
        .arg(&path)
        .output()
        .expect("`openssl` must be installed to run this test (CI installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("verify OK"), text)
}

fn round_trip(alg: SignatureAlgorithm) {
    let k = key(alg);
    let der = build_csr(&sample_subject(), &k, &sample_params()).expect("build");
    let req = verify_csr(&der).expect("verifies");
    assert_eq!(subject(&req), &sample_subject());
    assert_eq!(spki_der(&req).expect("spki"), k.public_key_spki());
    assert_eq!(req.algorithm.oid, alg.oid());
    assert_eq!(
        requested_extensions(&req).expect("extensions"),
        vec![san_extension()]
    );
    assert_eq!(
        challenge_password(&req).expect("pw").as_deref(),
        Some("q0Zc+/Pw5QmBGdzJ1NZnJg==")
    );
    let hmn = hardware_module_name_in(&requested_extensions(&req).expect("ext"))
        .expect("hmn")
        .expect("present");
    assert_eq!(hmn.hw_type, TCG_TPM2_HW_TYPE);
    assert_eq!(hmn.hw_serial_num.as_bytes(), b"TPM-42");
    assert_eq!(name_serial_number(subject(&req)).as_deref(), Some("JADA-7"));

    let (ok, text) = openssl_req_verify(&der);
    assert!(ok, "openssl req -verify: {text}");

    // One flipped signature byte: we and OpenSSL both refuse it.
    let mut bad = der.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    assert!(matches!(verify_csr(&bad), Err(CsrError::BadSignature)));
    assert!(!openssl_req_verify(&bad).0);

    // The registrar issues an LDevID for the CSR key, which validates under its CA.
    let ca_key = key(SignatureAlgorithm::EcdsaP256Sha256);
    let ca = self_signed(
        &profile::domain_ca(parse_name("CN=Domain CA").expect("name")).expect("params"),
        &ca_key,
    )
    .expect("ca");
    let ldevid = issue(
        &profile::ldevid(subject(&req).clone()).expect("params"),
        &spki_der(&req).expect("spki"),
        Some(&ca),
        &ca_key,
    )
    .expect("ldevid");
    validate_chain(
        &ldevid,
        &[],
        &TrustPolicy::new(vec![ca])
            .with_time(TimeCheck::Now)
            .with_required_eku(ID_KP_CLIENT_AUTH),
    )
    .expect("ldevid validates");
}

#[test]
fn rfc2986_round_trip_p256() {
    round_trip(SignatureAlgorithm::EcdsaP256Sha256);
}

#[test]
fn rfc2986_round_trip_p384() {
    round_trip(SignatureAlgorithm::EcdsaP384Sha384);
}

#[test]
fn rfc2986_round_trip_ed25519() {
    round_trip(SignatureAlgorithm::Ed25519);
}

#[test]
fn rfc2986_minimal_csr_has_no_attributes() {
    let k = key(SignatureAlgorithm::EcdsaP256Sha256);
    let der = build_csr(&sample_subject(), &k, &CsrParams::default()).expect("build");
    let req = verify_csr(&der).expect("verifies");
    assert!(req.info.attributes.is_empty());
    assert_eq!(requested_extensions(&req).expect("none"), vec![]);
    assert_eq!(challenge_password(&req).expect("none"), None);
}

#[test]
fn rfc9148_a_2_csr_verifies() {
    let req = verify_csr(&bytes("est-coaps/A.2-sen-request-csr.hex")).expect("verifies");
    assert_eq!(
        subject(&req).to_string(),
        "SERIALNUMBER=Wt1234,OU=IoT,O=example Inc,L=LA,ST=CA,C=US"
    );
    assert_eq!(name_serial_number(subject(&req)).as_deref(), Some("Wt1234"));
    assert!(challenge_password(&req).expect("pw").is_some());
}

#[test]
fn rfc9148_a_3_csr_verifies() {
    let req = verify_csr(&bytes("est-coaps/A.3-skg-request-csr.hex")).expect("verifies");
    assert_eq!(subject(&req).to_string(), "O=skg example");
}

#[test]
fn rfc7030_a_3_rsa_csr_verifies() {
    let req = verify_csr(&bytes("rfc7030/A.3-simpleenroll-request.b64")).expect("verifies");
    assert_eq!(subject(&req).to_string(), "CN=demostep4 1368141352");
    assert_eq!(
        challenge_password(&req).expect("pw").as_deref(),
        Some("+rrCir/7+EYu50T4")
    );
    let mut bad = bytes("rfc7030/A.3-simpleenroll-request.b64");
    let last = bad.len() - 1;
    bad[last] ^= 0x80;
    assert!(matches!(verify_csr(&bad), Err(CsrError::BadSignature)));
}

#[test]
fn rfc9148_a_2_flipped_signature_byte_is_bad_signature() {
    let mut der = bytes("est-coaps/A.2-sen-request-csr.hex");
    let last = der.len() - 1;
    der[last] ^= 0x01;
    assert!(matches!(verify_csr(&der), Err(CsrError::BadSignature)));
}

#[test]
fn csr_attestation_sample_parses_but_does_not_verify() {
    let der = bytes("csr-attestation/sample-tcgAttestTpmCertify.csr.pem");
    let req = parse_csr(&der).expect("parses");
    let evidence = attribute(&req, ID_AA_ATTESTATION)
        .expect("single")
        .expect("id-aa-attestation present");
    assert_eq!(evidence.values.len(), 1);
    assert!(matches!(verify_csr(&der), Err(CsrError::BadSignature)));
}

#[test]
fn rfc2986_truncated_or_padded_csr_is_malformed() {
    let k = key(SignatureAlgorithm::EcdsaP256Sha256);
    let der = build_csr(&sample_subject(), &k, &sample_params()).expect("build");
    for len in [0, 1, 2, 10, der.len() / 2, der.len() - 1] {
        let err = verify_csr(&der[..len]).expect_err("truncated");
        assert!(matches!(err, CsrError::Malformed(_)), "{len}: {err:?}");
    }
    let mut padded = der.clone();
    padded.push(0);
    assert!(matches!(verify_csr(&padded), Err(CsrError::Malformed(_))));
}

fn resign_with(
    req: &CertReq,
    algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
) -> Vec<u8> {
    CertReq {
        info: req.info.clone(),
        algorithm,
        signature,
    }
    .to_der()
    .expect("der")
}

#[test]
fn rfc2986_unsupported_signature_algorithm() {
    let k = key(SignatureAlgorithm::EcdsaP256Sha256);
    let req = parse_csr(&build_csr(&sample_subject(), &k, &sample_params()).expect("build"))
        .expect("parse");
    // id-RSASSA-PSS (RFC 4055) and DSA with SHA-256 are not accepted.
    for oid in ["1.2.840.113549.1.1.10", "2.16.840.1.101.3.4.3.2"] {
        let der = resign_with(
            &req,
            AlgorithmIdentifierOwned {
                oid: const_oid::ObjectIdentifier::new_unwrap(oid),
                parameters: None,
            },
            req.signature.clone(),
        );
        let err = verify_csr(&der).expect_err(oid);
        assert!(
            matches!(err, CsrError::UnsupportedAlgorithm(_)),
            "{oid}: {err:?}"
        );
    }
}

#[test]
fn rfc2986_signature_with_unused_bits_is_malformed() {
    let k = key(SignatureAlgorithm::EcdsaP256Sha256);
    let req = parse_csr(&build_csr(&sample_subject(), &k, &sample_params()).expect("build"))
        .expect("parse");
    let raw = req.signature.raw_bytes().to_vec();
    let der = resign_with(
        &req,
        req.algorithm.clone(),
        BitString::new(1, raw).expect("bits"),
    );
    assert!(matches!(verify_csr(&der), Err(CsrError::Malformed(_))));
}

#[test]
fn rfc2986_signature_is_checked_over_the_received_bytes() {
    // CertificationRequestInfo with its attribute SET out of DER order (extensionRequest
    // before the shorter challengePassword): re-encoding would sort it and break the check.
    #[derive(der::Sequence)]
    struct UnsortedInfo {
        version: Version,
        subject: Name,
        public_key: SubjectPublicKeyInfoOwned,
        #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
        attributes: Vec<Attribute>,
    }
    #[derive(der::Sequence)]
    struct RawReq {
        info: Any,
        algorithm: AlgorithmIdentifierOwned,
        signature: BitString,
    }
    let k = key(SignatureAlgorithm::EcdsaP256Sha256);
    let built = parse_csr(&build_csr(&sample_subject(), &k, &sample_params()).expect("build"))
        .expect("parse");
    let by_oid = |oid| {
        attribute(&built, oid)
            .expect("single")
            .expect("present")
            .clone()
    };
    let info_der = UnsortedInfo {
        version: Version::V1,
        subject: sample_subject(),
        public_key: SubjectPublicKeyInfoOwned::from_der(k.public_key_spki()).expect("spki"),
        attributes: vec![by_oid(EXTENSION_REQUEST), by_oid(CHALLENGE_PASSWORD)],
    }
    .to_der()
    .expect("info");
    let signature = k.sign(&info_der).expect("sign");
    let der = RawReq {
        info: Any::from_der(&info_der).expect("any"),
        algorithm: k.algorithm().algorithm_identifier(),
        signature: BitString::from_bytes(&signature).expect("bits"),
    }
    .to_der()
    .expect("req");
    let req = verify_csr(&der).expect("verifies over the received bytes");
    assert_ne!(req.info.to_der().expect("re-encoded"), info_der);
    assert!(openssl_req_verify(&der).0);
}

#[test]
fn rfc2985_build_rejections() {
    let k = key(SignatureAlgorithm::EcdsaP256Sha256);
    for pw in [String::new(), "x".repeat(256)] {
        let params = CsrParams {
            challenge_password: Some(pw),
            ..CsrParams::default()
        };
        assert!(matches!(
            build_csr(&sample_subject(), &k, &params),
            Err(CsrError::InvalidChallengePassword(_))
        ));
    }
    // A non-PrintableString password goes out as UTF8String and reads back.
    let params = CsrParams {
        challenge_password: Some("pässwort_1".into()),
        ..CsrParams::default()
    };
    let req =
        verify_csr(&build_csr(&sample_subject(), &k, &params).expect("build")).expect("verify");
    assert_eq!(
        challenge_password(&req).expect("pw").as_deref(),
        Some("pässwort_1")
    );
    // challengePassword given twice.
    let mut params = sample_params();
    params.attributes.push(Attribute {
        oid: CHALLENGE_PASSWORD,
        values: SetOfVec::try_from(vec![
            Any::encode_from(&der::asn1::PrintableStringRef::new("x").expect("ps")).expect("any"),
        ])
        .expect("set"),
    });
    assert!(matches!(
        build_csr(&sample_subject(), &k, &params),
        Err(CsrError::DuplicateAttribute(oid)) if oid == CHALLENGE_PASSWORD
    ));
}

#[derive(Debug)]
struct FailingSigner(SoftwareKey);

impl Signer for FailingSigner {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.0.algorithm()
    }
    fn public_key_spki(&self) -> &[u8] {
        self.0.public_key_spki()
    }
    fn sign(&self, _: &[u8]) -> Result<Vec<u8>, KeyError> {
        Err(KeyError::Unavailable("no TPM".into()))
    }
}

#[test]
fn rfc2986_build_reports_signer_failure() {
    let signer = FailingSigner(key(SignatureAlgorithm::EcdsaP256Sha256));
    let err = build_csr(&sample_subject(), &signer, &CsrParams::default()).expect_err("fails");
    assert!(
        matches!(err, CsrError::Signing(KeyError::Unavailable(_))),
        "{err:?}"
    );
}

/// A CSR whose attributes are `attrs`, signed by `k` (the accessors do not need a signature).
fn csr_with_attributes(attrs: Vec<Attribute>) -> CertReq {
    let k = key(SignatureAlgorithm::EcdsaP256Sha256);
    let info = CertReqInfo {
        version: Version::V1,
        subject: sample_subject(),
        public_key: SubjectPublicKeyInfoOwned::from_der(k.public_key_spki()).expect("spki"),
        attributes: SetOfVec::try_from(attrs).expect("set"),
    };
    let signature = k.sign(&info.to_der().expect("der")).expect("sign");
    let der = CertReq {
        info,
        algorithm: k.algorithm().algorithm_identifier(),
        signature: BitString::from_bytes(&signature).expect("bits"),
    }
    .to_der()
    .expect("der");
    verify_csr(&der).expect("verifies")
}

fn attr(oid: const_oid::ObjectIdentifier, values: Vec<Any>) -> Attribute {
    Attribute {
        oid,
        values: SetOfVec::try_from(values).expect("set"),
    }
}

#[test]
fn rfc2985_5_4_attribute_rejections() {
    let exts = Any::encode_from(&vec![san_extension()]).expect("any");
    let integer = Any::encode_from(&5u8).expect("any");

    let two_attrs = csr_with_attributes(vec![
        attr(EXTENSION_REQUEST, vec![exts.clone()]),
        attr(EXTENSION_REQUEST, vec![integer.clone()]),
    ]);
    assert!(matches!(
        requested_extensions(&two_attrs),
        Err(CsrError::DuplicateAttribute(oid)) if oid == EXTENSION_REQUEST
    ));

    let two_values = csr_with_attributes(vec![attr(
        EXTENSION_REQUEST,
        vec![exts.clone(), integer.clone()],
    )]);
    assert!(matches!(
        requested_extensions(&two_values),
        Err(CsrError::MalformedAttribute { oid, .. }) if oid == EXTENSION_REQUEST
    ));

    let wrong_type = csr_with_attributes(vec![
        attr(EXTENSION_REQUEST, vec![integer.clone()]),
        attr(CHALLENGE_PASSWORD, vec![integer]),
    ]);
    assert!(matches!(
        requested_extensions(&wrong_type),
        Err(CsrError::MalformedAttribute { oid, .. }) if oid == EXTENSION_REQUEST
    ));
    assert!(matches!(
        challenge_password(&wrong_type),
        Err(CsrError::MalformedAttribute { oid, .. }) if oid == CHALLENGE_PASSWORD
    ));
}

/// A CSR made by `openssl req -newkey ARG` (DER).
fn openssl_csr(newkey: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            newkey,
            "-nodes",
            "-subj",
            "/CN=small",
        ])
        .args(["-outform", "DER", "-keyout"])
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(dir.path().join("req.der"))
        .output()
        .expect("`openssl` must be installed to run this test (CI installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.path().join("req.der")).expect("req")
}

#[test]
fn rfc7030_4_2_1_rsa_512_key_is_named_not_a_bad_signature() {
    let der = openssl_csr("rsa:512");
    let err = verify_csr(&der).expect_err("RSA-512");
    assert!(
        matches!(&err, CsrError::KeyNotAccepted(r) if r == "RSA key of 512 bits; 2048 to 8192 bits are accepted"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "CSR key not accepted: RSA key of 512 bits; 2048 to 8192 bits are accepted"
    );
    // An accepted size still verifies.
    verify_csr(&openssl_csr("rsa:2048")).expect("RSA-2048");
}

#[test]
fn rfc7030_4_2_1_curve_that_is_not_accepted_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = dir.path().join("p521.pem");
    let out = Command::new("openssl")
        .args(["ecparam", "-name", "secp521r1", "-out"])
        .arg(&params)
        .output()
        .expect("openssl");
    assert!(out.status.success());
    let der = openssl_csr(&format!("ec:{}", params.display()));
    let err = verify_csr(&der).expect_err("P-521");
    assert_eq!(
        err.to_string(),
        "CSR key not accepted: EC key on curve 1.3.132.0.35; P-256 and P-384 are accepted"
    );
}
