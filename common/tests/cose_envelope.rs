//! Conformance and rejection tests of the COSE_Sign1 envelope (cBRSKI §9.2, App. C;
//! RFC 9052 §3, §4; RFC 9360 §2).

use brski_common::envelope::{self, EnvelopeError, Format, cose};
use brski_common::keys::{KeyError, SignatureAlgorithm, Signer, SoftwareKey, sign_fixed};
use brski_common::oid;
use brski_common::pki::chain::{ChainError, TimeCheck, TrustPolicy};
use brski_common::test_vectors::{bytes, cert, read};
use ciborium::Value;
use der::{Decode, Encode};
use proptest::prelude::*;
use x509_cert::Certificate;

// ---------------------------------------------------------------------------------------------
// Helpers

fn key(rel: &str) -> SoftwareKey {
    SoftwareKey::from_pem(&String::from_utf8(read(rel)).expect("utf-8")).expect("key")
}

fn no_time(anchors: Vec<Certificate>) -> TrustPolicy {
    TrustPolicy::new(anchors).with_time(TimeCheck::Skip)
}

fn cbor(bytes: &[u8]) -> Value {
    ciborium::de::from_reader(bytes).expect("CBOR")
}

fn to_cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).expect("encode");
    out
}

fn int(n: i64) -> Value {
    Value::Integer(n.into())
}

fn der(c: &Certificate) -> Vec<u8> {
    c.to_der().expect("DER")
}

/// The four elements of a (tagged or untagged) COSE_Sign1.
fn elements(env: &[u8]) -> Vec<Value> {
    match cbor(env) {
        Value::Tag(18, inner) => match *inner {
            Value::Array(a) => a,
            other => panic!("not an array: {other:?}"),
        },
        Value::Array(a) => a,
        other => panic!("not COSE_Sign1: {other:?}"),
    }
}

fn pledge() -> Certificate {
    cert("cbrski/C-pledge.crt.pem")
}
fn registrar() -> (SoftwareKey, Certificate) {
    (
        key("cbrski/C-registrar.key.pem"),
        cert("cbrski/C-registrar.crt.pem"),
    )
}
fn domain_ca() -> Certificate {
    cert("cbrski/C-domain_ca.crt.pem")
}
fn masa_ca() -> Certificate {
    cert("cbrski/C-masa_ca.crt.pem")
}
fn c_1_2_masa() -> (SoftwareKey, Certificate) {
    (
        key("rfc8995/C.1.2-masa.key.pem"),
        cert("rfc8995/C.1.2-masa.crt.pem"),
    )
}
fn c_1_1_anchor() -> Certificate {
    cert("rfc8995/C.1.1-manufacturer-ca.crt.pem")
}

/// A CA and a leaf issued by it, both for `alg`, with the leaf's key as a [`SoftwareKey`].
fn rcgen_chain(alg: &'static rcgen::SignatureAlgorithm) -> (SoftwareKey, Certificate, Certificate) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate_for(alg).expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "COSE test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
    let leaf_key = KeyPair::generate_for(alg).expect("leaf key");
    let mut leaf_params = CertificateParams::new(vec!["masa.example".to_string()]).expect("params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "COSE test voucher signer");
    let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("leaf");
    let signer = SoftwareKey::from_der(&leaf_key.serialize_der()).expect("software key");
    (
        signer,
        Certificate::from_der(leaf.der()).expect("leaf cert"),
        Certificate::from_der(ca.der()).expect("CA cert"),
    )
}

/// A tagged COSE_Sign1 with the given protected header bytes and unprotected map, signed by
/// `key` over the RFC 9052 §4.4 Sig_structure (or carrying `signature` when given).
fn craft_raw(protected: Vec<u8>, unprotected: Value, payload: &[u8], key: &dyn Signer) -> Vec<u8> {
    let sig = sign_fixed(key, &cose::sig_structure1(&protected, payload)).expect("sign");
    to_cbor(&Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(protected),
            unprotected,
            Value::Bytes(payload.to_vec()),
            Value::Bytes(sig),
        ])),
    ))
}

fn craft(
    protected: Vec<(Value, Value)>,
    unprotected: Vec<(Value, Value)>,
    key: &dyn Signer,
) -> Vec<u8> {
    craft_raw(
        to_cbor(&Value::Map(protected)),
        Value::Map(unprotected),
        PAYLOAD,
        key,
    )
}

/// Replace element `i` of a COSE_Sign1, keeping its tag.
fn replace(env: &[u8], i: usize, v: Value) -> Vec<u8> {
    let mut items = elements(env);
    items[i] = v;
    to_cbor(&Value::Tag(18, Box::new(Value::Array(items))))
}

fn malformed_reason(r: Result<envelope::Verified, EnvelopeError>) -> String {
    match r {
        Err(EnvelopeError::Malformed {
            format: Format::Cose,
            reason,
        }) => reason,
        other => panic!("expected Malformed(Cose), got {other:?}"),
    }
}

/// `{2451: {1: 2, 11: "COSE-1"}}`: a small CBOR voucher.
const PAYLOAD: &[u8] = &[
    0xa1, 0x19, 0x09, 0x93, 0xa2, 0x01, 0x02, 0x0b, 0x66, b'C', b'O', b'S', b'E', b'-', b'1',
];

// ---------------------------------------------------------------------------------------------
// cBRSKI App. C examples

#[test]
fn cbrski_c_3_pvr_verifies_with_the_pledge_certificate() {
    let v = cose::verify(
        &bytes("cbrski/C.3-pvr.cose.hex"),
        &no_time(vec![masa_ca()]),
        &[pledge()],
    )
    .expect("C.3 PVR verifies");
    assert_eq!(v.format, Format::Cose);
    assert_eq!(v.payload, bytes("cbrski/C.3-pvr.payload.hex"));
    assert_eq!(v.chain, vec![pledge(), masa_ca()]);
}

#[test]
fn cbrski_c_3_pvr_with_the_registrar_certificate_is_not_verified() {
    // The envelope carries no certificates (cBRSKI §9.2.2); neither the registrar's key nor
    // the anchor's made the signature.
    let (_, registrar) = registrar();
    let r = cose::verify(
        &bytes("cbrski/C.3-pvr.cose.hex"),
        &no_time(vec![masa_ca()]),
        &[registrar],
    );
    assert!(matches!(r, Err(EnvelopeError::BadSignature)), "{r:?}");
}

#[test]
fn cbrski_c_4_rvr_verifies_from_its_x5bag() {
    let (_, registrar) = registrar();
    let rvr = bytes("cbrski/C.4-rvr.cose.hex");
    let policy = no_time(vec![domain_ca()]).with_required_eku(oid::ID_KP_CMC_RA);
    let v = cose::verify(&rvr, &policy, &[]).expect("C.4 RVR verifies from x5bag alone");
    assert_eq!(v.payload, bytes("cbrski/C.4-rvr.payload.hex"));
    let bag = cose::parse(&rvr).expect("parse").certificates;
    assert_eq!(bag.len(), 2);
    // The signer is the x5bag registrar certificate: same key as C-registrar, another DN.
    assert_eq!(v.signer(), Some(&bag[0]));
    assert_ne!(bag[0], registrar);
    assert_eq!(
        bag[0].tbs_certificate().subject_public_key_info(),
        registrar.tbs_certificate().subject_public_key_info()
    );
    // It chains straight to C-domain_ca: no `extra` needed.
    assert_eq!(v.chain, vec![bag[0].clone(), domain_ca()]);
}

#[test]
fn cbrski_c_4_rvr_prior_signed_voucher_request_is_the_c_3_pvr() {
    let v = cose::parse(&bytes("cbrski/C.4-rvr.cose.hex")).expect("parse");
    let Value::Map(top) = cbor(&v.payload) else {
        panic!("payload is not a map")
    };
    let (_, Value::Map(leaves)) = &top[0] else {
        panic!("no voucher-request container")
    };
    let prior = leaves
        .iter()
        .find(|(k, _)| *k == int(9))
        .map(|(_, v)| v.clone())
        .expect("SID delta 9: prior-signed-voucher-request");
    assert_eq!(prior, Value::Bytes(bytes("cbrski/C.3-pvr.cose.hex")));
}

#[test]
fn cbrski_c_5_voucher_verifies_with_the_masa_ca_key() {
    let v = cose::verify(
        &bytes("cbrski/C.5-voucher.cose.hex"),
        &no_time(vec![masa_ca()]),
        &[],
    )
    .expect("C.5 voucher verifies");
    assert_eq!(v.payload, bytes("cbrski/C.5-voucher.payload.hex"));
    assert_eq!(v.chain, vec![masa_ca()]);
    // Not with the domain CA as the only anchor.
    assert!(matches!(
        cose::verify(
            &bytes("cbrski/C.5-voucher.cose.hex"),
            &no_time(vec![domain_ca()]),
            &[]
        ),
        Err(EnvelopeError::BadSignature)
    ));
}

#[test]
fn cbrski_c_parse_reports_alg_and_certificates() {
    let p = cose::parse(&bytes("cbrski/C.3-pvr.cose.hex")).expect("parse");
    assert_eq!(p.algorithm, "ES256");
    assert!(p.certificates.is_empty());
    let g = envelope::parse(Format::Cose, &bytes("cbrski/C.4-rvr.cose.hex")).expect("parse");
    assert_eq!(g.format, Format::Cose);
    assert_eq!(g.certificates.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Round trips (cBRSKI §9.2; RFC 9052 §4.4)

fn round_trip(key: &SoftwareKey, chain: &[Certificate], anchor: Certificate, time: TimeCheck) {
    let env = cose::sign(PAYLOAD, key, chain).expect("sign");
    assert_eq!(env[0], 0xd2, "tag 18");
    let items = elements(&env);
    let expected_protected = match key.algorithm() {
        SignatureAlgorithm::EcdsaP256Sha256 => vec![0xa1, 0x01, 0x26],
        SignatureAlgorithm::EcdsaP384Sha384 => vec![0xa1, 0x01, 0x38, 0x22],
        SignatureAlgorithm::Ed25519 => vec![0xa1, 0x01, 0x27],
    };
    assert_eq!(items[0], Value::Bytes(expected_protected));
    let ders: Vec<Value> = chain.iter().map(|c| Value::Bytes(der(c))).collect();
    let expected_bag = match ders.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        _ => Some(Value::Array(ders.clone())),
    };
    match expected_bag {
        None => assert_eq!(items[1], Value::Map(vec![])),
        Some(bag) => assert_eq!(items[1], Value::Map(vec![(int(32), bag)])),
    }
    assert_eq!(items[2], Value::Bytes(PAYLOAD.to_vec()));
    let Value::Bytes(sig) = &items[3] else {
        panic!("signature")
    };
    assert_eq!(
        sig.len(),
        key.algorithm().ecdsa_scalar_len().map_or(64, |n| 2 * n)
    );

    let policy = TrustPolicy::new(vec![anchor]).with_time(time);
    let v = envelope::verify(Format::Cose, &env, &policy, &[]).expect("verify");
    assert_eq!(v.payload, PAYLOAD);
    assert_eq!(v.signer(), chain.first());
    let p = cose::parse(&env).expect("parse");
    assert_eq!(p.algorithm, key.algorithm().jws_alg());
    assert_eq!(p.certificates, chain);
}

#[test]
fn cbrski_9_2_round_trip_es256_cbrski_registrar() {
    let (key, registrar) = registrar();
    round_trip(&key, &[registrar], domain_ca(), TimeCheck::Skip);
}

#[test]
fn cbrski_9_2_round_trip_es256_rfc8995_masa() {
    let (key, masa) = c_1_2_masa();
    round_trip(&key, &[masa], c_1_1_anchor(), TimeCheck::Skip);
}

#[test]
fn cbrski_9_2_round_trip_es384() {
    let (key, leaf, ca) = rcgen_chain(&rcgen::PKCS_ECDSA_P384_SHA384);
    round_trip(&key, &[leaf, ca.clone()], ca, TimeCheck::Now);
}

#[test]
fn cbrski_9_2_round_trip_eddsa() {
    let (key, leaf, ca) = rcgen_chain(&rcgen::PKCS_ED25519);
    round_trip(&key, &[leaf, ca.clone()], ca, TimeCheck::Now);
}

#[test]
fn cbrski_9_2_2_pvr_without_certificates_verifies_with_extra() {
    let (key, registrar) = registrar();
    let env = cose::sign(PAYLOAD, &key, &[]).expect("sign");
    assert_eq!(elements(&env)[1], Value::Map(vec![]));
    let v = cose::verify(
        &env,
        &no_time(vec![domain_ca()]),
        std::slice::from_ref(&registrar),
    )
    .expect("verify");
    assert_eq!(v.chain, vec![registrar, domain_ca()]);
    assert!(matches!(
        cose::verify(&env, &no_time(vec![]), &[]),
        Err(EnvelopeError::SignerNotFound)
    ));
}

#[test]
fn cose_sign_rejects_a_chain_that_is_not_the_signers() {
    let (key, _) = registrar();
    let r = cose::sign(PAYLOAD, &key, &[domain_ca()]);
    assert!(
        matches!(r, Err(EnvelopeError::Signing(KeyError::SigningFailed(_)))),
        "{r:?}"
    );
}

#[test]
fn cbrski_9_2_3_protected_x5chain_survives_the_registrars_strip() {
    let (key, leaf, ca) = rcgen_chain(&rcgen::PKCS_ECDSA_P256_SHA256);
    let env = cose::sign_with_x5chain(
        PAYLOAD,
        &key,
        std::slice::from_ref(&leaf),
        &[leaf.clone(), ca.clone()],
    )
    .expect("sign");
    let items = elements(&env);
    // Protected {1: -7, 33: signer}; unprotected {32: [signer, CA]}.
    assert_eq!(
        cbor(match &items[0] {
            Value::Bytes(b) => b,
            other => panic!("protected: {other:?}"),
        }),
        Value::Map(vec![(int(1), int(-7)), (int(33), Value::Bytes(der(&leaf)))])
    );
    assert_eq!(
        items[1],
        Value::Map(vec![(
            int(32),
            Value::Array(vec![Value::Bytes(der(&leaf)), Value::Bytes(der(&ca))])
        )])
    );
    // The registrar removes the unprotected bag (§6.8); the pledge, which stores the CA and
    // not the signer's key, still finds the signer.
    let stripped = cose::strip_unprotected_certs(&env).expect("strip");
    assert_eq!(elements(&stripped)[1], Value::Map(vec![]));
    let v = cose::verify(&stripped, &TrustPolicy::new(vec![ca.clone()]), &[]).expect("verify");
    assert_eq!(v.chain, vec![leaf, ca.clone()]);
    // The protected chain must start with the signer's certificate.
    let r = cose::sign_with_x5chain(PAYLOAD, &key, &[ca], &[]);
    assert!(
        matches!(r, Err(EnvelopeError::Signing(KeyError::SigningFailed(_)))),
        "{r:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Header variants accepted (RFC 9052 §3, RFC 9360 §2)

#[test]
fn rfc9360_2_certificates_in_protected_x5chain_and_untagged_input() {
    let (key, registrar) = registrar();
    let policy = no_time(vec![domain_ca()]);
    // Protected x5chain holding one certificate as a bare bstr.
    let env = craft(
        vec![(int(1), int(-7)), (int(33), Value::Bytes(der(&registrar)))],
        vec![],
        &key,
    );
    let v = cose::verify(&env, &policy, &[]).expect("protected x5chain");
    assert_eq!(v.signer(), Some(&registrar));
    // Unprotected x5chain as an array; kid present and ignored; untagged.
    let env = craft(
        vec![(int(1), int(-7))],
        vec![
            (int(4), Value::Bytes(b"some other key".to_vec())),
            (int(33), Value::Array(vec![Value::Bytes(der(&registrar))])),
        ],
        &key,
    );
    let untagged = to_cbor(&Value::Array(elements(&env)));
    assert_eq!(untagged[0], 0x84);
    let v = cose::verify(&untagged, &policy, &[]).expect("untagged");
    assert_eq!(v.signer(), Some(&registrar));
    // crit naming only understood labels.
    let env = craft(
        vec![
            (int(1), int(-7)),
            (int(2), Value::Array(vec![int(33)])),
            (int(33), Value::Bytes(der(&registrar))),
        ],
        vec![],
        &key,
    );
    assert!(cose::verify(&env, &policy, &[]).is_ok());
}

// ---------------------------------------------------------------------------------------------
// cBRSKI §6.8: stripping unprotected certificates

#[test]
fn cbrski_6_8_strip_unprotected_certs_keeps_the_signature_valid() {
    let rvr = bytes("cbrski/C.4-rvr.cose.hex");
    let bag = cose::parse(&rvr).expect("parse").certificates;
    let stripped = cose::strip_unprotected_certs(&rvr).expect("strip");
    let items = elements(&stripped);
    assert_eq!(items[1], Value::Map(vec![]), "x5bag (32) removed");
    let original = elements(&rvr);
    assert_eq!(items[0], original[0]);
    assert_eq!(items[2], original[2]);
    assert_eq!(items[3], original[3]);
    assert!(
        cose::parse(&stripped)
            .expect("parse")
            .certificates
            .is_empty()
    );
    // Without the bag the signer is unknown; with it supplied out of band, it verifies.
    let policy = no_time(vec![domain_ca()]);
    assert!(matches!(
        cose::verify(&stripped, &policy, &[]),
        Err(EnvelopeError::BadSignature)
    ));
    let v = cose::verify(&stripped, &policy, &bag).expect("verifies with extra");
    assert_eq!(v.payload, bytes("cbrski/C.4-rvr.payload.hex"));
}

#[test]
fn cbrski_6_8_strip_keeps_other_parameters_and_untagged_form() {
    let (key, registrar) = registrar();
    let signed = cose::sign(PAYLOAD, &key, &[registrar.clone(), domain_ca()]).expect("sign");
    let stripped = cose::strip_unprotected_certs(&signed).expect("strip");
    assert_eq!(elements(&stripped)[1], Value::Map(vec![]));
    let v = cose::verify(
        &stripped,
        &no_time(vec![domain_ca()]),
        std::slice::from_ref(&registrar),
    )
    .expect("verifies");
    assert_eq!(v.payload, PAYLOAD);

    let env = craft(
        vec![(int(1), int(-7))],
        vec![
            (int(4), Value::Bytes(vec![1, 2])),
            (int(33), Value::Bytes(der(&registrar))),
            (int(32), Value::Bytes(der(&domain_ca()))),
        ],
        &key,
    );
    let untagged = to_cbor(&Value::Array(elements(&env)));
    let stripped = cose::strip_unprotected_certs(&untagged).expect("strip");
    assert_eq!(stripped[0], 0x84, "still untagged");
    assert_eq!(
        elements(&stripped)[1],
        Value::Map(vec![(int(4), Value::Bytes(vec![1, 2]))])
    );
    assert!(cose::verify(&stripped, &no_time(vec![domain_ca()]), &[registrar]).is_ok());
    assert!(matches!(
        cose::strip_unprotected_certs(b"\x01"),
        Err(EnvelopeError::Malformed { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Tampering (RFC 9052 §4.4)

/// A flipped payload byte inside the bstr leaves the CBOR well-formed: `BadSignature`.
#[test]
fn rfc9052_4_4_tampered_payload_is_bad_signature() {
    let mut env = bytes("cbrski/C.5-voucher.cose.hex");
    let payload = bytes("cbrski/C.5-voucher.payload.hex");
    let at = env
        .windows(payload.len())
        .position(|w| w == payload.as_slice())
        .expect("payload inside")
        + 40;
    env[at] ^= 0x01;
    assert!(matches!(
        cose::verify(&env, &no_time(vec![masa_ca()]), &[]),
        Err(EnvelopeError::BadSignature)
    ));
}

#[test]
fn rfc9052_4_4_tampered_signature_is_bad_signature() {
    let mut env = bytes("cbrski/C.3-pvr.cose.hex");
    let last = env.len() - 1;
    env[last] ^= 0x01;
    assert!(matches!(
        cose::verify(&env, &no_time(vec![masa_ca()]), &[pledge()]),
        Err(EnvelopeError::BadSignature)
    ));
}

#[test]
fn rfc8995_5_6_1_other_signer_is_untrusted() {
    let (key, registrar) = registrar();
    let env = cose::sign(PAYLOAD, &key, &[registrar]).expect("sign");
    let r = cose::verify(&env, &no_time(vec![masa_ca()]), &[]);
    assert!(
        matches!(
            r,
            Err(EnvelopeError::Untrusted(ChainError::Untrusted { .. }))
        ),
        "{r:?}"
    );
}

#[test]
fn rfc8995_5_6_1_expired_signer_is_untrusted() {
    let (key, masa) = c_1_2_masa();
    let env = cose::sign(PAYLOAD, &key, &[masa]).expect("sign");
    let r = cose::verify(&env, &TrustPolicy::new(vec![c_1_1_anchor()]), &[]);
    assert!(
        matches!(r, Err(EnvelopeError::Untrusted(ChainError::Expired { .. }))),
        "{r:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Rejections (RFC 9052 §3, §4.2; RFC 9360 §2)

#[test]
fn rfc9053_2_unsupported_algorithms() {
    let (key, registrar) = registrar();
    let policy = no_time(vec![domain_ca()]);
    for alg in [int(-257), int(0), Value::Text("ES256".into())] {
        let env = craft(
            vec![
                (int(1), alg.clone()),
                (int(33), Value::Bytes(der(&registrar))),
            ],
            vec![],
            &key,
        );
        let r = cose::verify(&env, &policy, &[]);
        assert!(
            matches!(r, Err(EnvelopeError::UnsupportedAlgorithm(_))),
            "{alg:?}: {r:?}"
        );
    }
    let env = craft(vec![(int(1), int(-257))], vec![], &key);
    assert_eq!(cose::parse(&env).expect("parse").algorithm, "-257");
}

#[test]
fn rfc9053_2_alg_must_match_the_key_type() {
    // A P-256 signature labelled EdDSA (-8; both 64 bytes): the P-256 key is not tried.
    let (key, registrar) = registrar();
    let env = craft(
        vec![(int(1), int(-8)), (int(33), Value::Bytes(der(&registrar)))],
        vec![],
        &key,
    );
    assert!(matches!(
        cose::verify(&env, &no_time(vec![domain_ca()]), &[]),
        Err(EnvelopeError::BadSignature)
    ));
}

#[test]
fn rfc9052_3_header_errors_are_malformed() {
    let (key, registrar) = registrar();
    let policy = no_time(vec![domain_ca()]);
    let cert = Value::Bytes(der(&registrar));
    let alg = (int(1), int(-7));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            craft_raw(vec![], Value::Map(vec![]), PAYLOAD, &key),
            "no alg",
        ),
        (
            craft(vec![], vec![alg.clone()], &key),
            "alg is not in the protected header",
        ),
        (
            craft(vec![(int(1), Value::Bytes(vec![7]))], vec![], &key),
            "alg is neither",
        ),
        (
            craft(
                vec![alg.clone(), (int(2), Value::Array(vec![int(99)]))],
                vec![],
                &key,
            ),
            "not understood",
        ),
        (
            craft(
                vec![alg.clone(), (int(2), Value::Array(vec![]))],
                vec![],
                &key,
            ),
            "crit is not a non-empty array",
        ),
        (
            craft(
                vec![alg.clone()],
                vec![(int(2), Value::Array(vec![int(4)]))],
                &key,
            ),
            "crit is not in the protected header",
        ),
        (
            craft(vec![alg.clone()], vec![alg.clone()], &key),
            "appears twice",
        ),
        (
            craft_raw(
                vec![0xa2, 0x01, 0x26, 0x01, 0x26],
                Value::Map(vec![]),
                PAYLOAD,
                &key,
            ),
            "appears twice",
        ),
        (
            craft(
                vec![alg.clone()],
                vec![(Value::Bytes(vec![1]), int(1))],
                &key,
            ),
            "label",
        ),
        (
            craft(
                vec![alg.clone()],
                vec![(int(32), Value::Array(vec![]))],
                &key,
            ),
            "neither a certificate",
        ),
        (
            craft(vec![alg.clone()], vec![(int(32), int(5))], &key),
            "neither a certificate",
        ),
        (
            craft(
                vec![alg.clone()],
                vec![(int(32), Value::Array(vec![cert.clone(), int(1)]))],
                &key,
            ),
            "entry 1 is not a byte string",
        ),
        (
            craft(
                vec![alg.clone()],
                vec![(int(33), Value::Bytes(vec![0x30, 0x00]))],
                &key,
            ),
            "not a certificate",
        ),
        (
            craft(
                vec![alg.clone()],
                vec![(
                    int(32),
                    Value::Array(vec![cert.clone(); cose::MAX_CERTIFICATES + 1]),
                )],
                &key,
            ),
            "more than",
        ),
        (
            craft_raw(vec![0x01], Value::Map(vec![]), PAYLOAD, &key),
            "protected header is not a map",
        ),
        (
            craft_raw(
                vec![0xa1, 0x01, 0x26, 0x00],
                Value::Map(vec![]),
                PAYLOAD,
                &key,
            ),
            "after the protected header",
        ),
    ];
    for (env, expected) in cases {
        let reason = malformed_reason(cose::verify(&env, &policy, &[]));
        assert!(
            reason.contains(expected),
            "expected {expected:?} in {reason:?}"
        );
        assert!(matches!(
            cose::parse(&env),
            Err(EnvelopeError::Malformed { .. })
        ));
    }
}

#[test]
fn rfc9052_4_2_structure_errors_are_malformed() {
    let good = bytes("cbrski/C.3-pvr.cose.hex");
    let policy = no_time(vec![masa_ca()]);
    let items = elements(&good);
    let mut trailing = good.clone();
    trailing.push(0x00);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "not CBOR"),
        (vec![0xff], "not CBOR"),
        (trailing, "after the COSE_Sign1"),
        (
            to_cbor(&Value::Tag(98, Box::new(Value::Array(items.clone())))),
            "tag 98",
        ),
        (to_cbor(&Value::Map(vec![])), "not an array"),
        (to_cbor(&Value::Array(items[..3].to_vec())), "3 elements"),
        (
            replace(&good, 0, Value::Map(vec![])),
            "protected header is not a byte string",
        ),
        (
            replace(&good, 1, Value::Bytes(vec![])),
            "unprotected header is not a map",
        ),
        (replace(&good, 2, Value::Null), "detached"),
        (replace(&good, 2, int(1)), "payload is not a byte string"),
        (
            replace(&good, 3, Value::Text("sig".into())),
            "signature is not a byte string",
        ),
        (replace(&good, 3, Value::Bytes(vec![0; 63])), "expected 64"),
    ];
    for (env, expected) in cases {
        let reason = malformed_reason(cose::verify(&env, &policy, &[pledge()]));
        assert!(
            reason.contains(expected),
            "expected {expected:?} in {reason:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests: decoding never panics

fn vector_envelopes() -> Vec<Vec<u8>> {
    vec![
        bytes("cbrski/C.3-pvr.cose.hex"),
        bytes("cbrski/C.4-rvr.cose.hex"),
        bytes("cbrski/C.5-voucher.cose.hex"),
    ]
}

fn cbor_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(int),
        Just(int(-7)),
        Just(int(32)),
        Just(int(33)),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Value::Bytes),
        "[ -~]{0,8}".prop_map(Value::Text),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        any::<f64>().prop_map(Value::Float),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(Value::Map),
            (0u64..40, inner).prop_map(|(t, v)| Value::Tag(t, Box::new(v))),
        ]
    })
}

fn label() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i64..5).prop_map(int),
        Just(int(32)),
        Just(int(33)),
        Just(Value::Text("x".into())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cose_decoders_never_panic_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let policy = no_time(vec![masa_ca()]);
        let _ = cose::parse(&data);
        let _ = cose::verify(&data, &policy, &[]);
        let _ = cose::strip_unprotected_certs(&data);
    }

    #[test]
    fn cose_decoders_never_panic_on_mutated_vectors(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut data = vector_envelopes().swap_remove(which);
        for (at, byte, op) in edits {
            let i = at.index(data.len().max(1));
            match op {
                0 if i < data.len() => data[i] = byte,
                1 if i < data.len() => { data.remove(i); }
                _ => data.insert(i.min(data.len()), byte),
            }
        }
        let policy = no_time(vec![masa_ca(), domain_ca()]);
        let _ = cose::parse(&data);
        let _ = cose::verify(&data, &policy, &[pledge()]);
        if let Ok(stripped) = cose::strip_unprotected_certs(&data) {
            // Stripping is idempotent and leaves a decodable envelope.
            prop_assert_eq!(cose::strip_unprotected_certs(&stripped).expect("strip again"), stripped);
        }
    }

    #[test]
    fn cose_random_headers_never_verify(
        protected in proptest::collection::vec((label(), cbor_value()), 0..4),
        unprotected in proptest::collection::vec((label(), cbor_value()), 0..4),
        payload in proptest::collection::vec(any::<u8>(), 0..32),
        signature in proptest::collection::vec(any::<u8>(), 0..100),
        tagged in any::<bool>(),
    ) {
        let arr = Value::Array(vec![
            Value::Bytes(to_cbor(&Value::Map(protected))),
            Value::Map(unprotected),
            Value::Bytes(payload),
            Value::Bytes(signature),
        ]);
        let env = to_cbor(&if tagged { Value::Tag(18, Box::new(arr)) } else { arr });
        let _ = cose::parse(&env);
        let _ = cose::strip_unprotected_certs(&env);
        prop_assert!(cose::verify(&env, &no_time(vec![masa_ca()]), &[pledge()]).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn cose_sign_verify_round_trip_any_payload(payload in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (key, registrar) = registrar();
        let env = cose::sign(&payload, &key, &[registrar]).expect("sign");
        let v = cose::verify(&env, &no_time(vec![domain_ca()]), &[]).expect("verify");
        prop_assert_eq!(v.payload, payload);
    }
}
