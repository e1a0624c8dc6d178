//! Conformance and rejection tests of the JWS envelope (draft-ietf-anima-jws-voucher §3, §8;
//! RFC 7515 §5, §7.2; RFC 8366bis App. A.4).

use base64::Engine;
use brski_common::envelope::{self, EnvelopeError, Format, jws};
use brski_common::input::{B64, B64URL, pem_blocks};
use brski_common::keys::{KeyError, SignatureAlgorithm, Signer, SoftwareKey, sign_fixed};
use brski_common::oid;
use brski_common::pki::chain::{ChainError, TimeCheck, TrustPolicy};
use brski_common::test_vectors::{bytes, cert, read};
use der::{Decode, Encode};
use proptest::prelude::*;
use serde_json::{Value, json};
use x509_cert::Certificate;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Private key, signer certificate and CA certificate of a jws-voucher §8 example.
fn key_and_chain(rel: &str) -> (SoftwareKey, Certificate, Certificate) {
    let text = String::from_utf8(read(rel)).expect("utf-8");
    let key = SoftwareKey::from_pem(&text).expect("key");
    let certs = pem_blocks(&text, &["CERTIFICATE"]).expect("certs");
    assert_eq!(certs.len(), 2, "{rel}: signer and CA certificate");
    let signer = Certificate::from_der(&certs[0]).expect("signer cert");
    let ca = Certificate::from_der(&certs[1]).expect("CA cert");
    (key, signer, ca)
}

fn no_time(anchors: Vec<Certificate>) -> TrustPolicy {
    TrustPolicy::new(anchors).with_time(TimeCheck::Skip)
}

fn json_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON")
}

fn c_1_2_masa() -> (SoftwareKey, Certificate) {
    let key = SoftwareKey::from_pem(
        &String::from_utf8(read("rfc8995/C.1.2-masa.key.pem")).expect("utf-8"),
    )
    .expect("key");
    (key, cert("rfc8995/C.1.2-masa.crt.pem"))
}

fn c_1_1_anchor() -> Certificate {
    cert("rfc8995/C.1.1-manufacturer-ca.crt.pem")
}

fn cbrski_registrar() -> (SoftwareKey, Certificate) {
    let key = SoftwareKey::from_pem(
        &String::from_utf8(read("cbrski/C-registrar.key.pem")).expect("utf-8"),
    )
    .expect("key");
    (key, cert("cbrski/C-registrar.crt.pem"))
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
        .push(DnType::CommonName, "JWS test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
    let leaf_key = KeyPair::generate_for(alg).expect("leaf key");
    let mut leaf_params = CertificateParams::new(vec!["masa.example".to_string()]).expect("params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "JWS test voucher signer");
    let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("leaf");
    let signer = SoftwareKey::from_der(&leaf_key.serialize_der()).expect("software key");
    (
        signer,
        Certificate::from_der(leaf.der()).expect("leaf cert"),
        Certificate::from_der(ca.der()).expect("CA cert"),
    )
}

/// A general-serialization JWS with the given protected header text, signed by `key` (or with
/// an empty signature when `key` is `None`).
fn craft(header: &str, payload: &[u8], key: Option<&dyn Signer>) -> Vec<u8> {
    let protected = B64URL.encode(header);
    let payload = B64URL.encode(payload);
    let signature = match key {
        Some(k) => sign_fixed(k, format!("{protected}.{payload}").as_bytes()).expect("sign"),
        None => Vec::new(),
    };
    serde_json::to_vec(&json!({
        "payload": payload,
        "signatures": [{"protected": protected, "signature": B64URL.encode(signature)}]
    }))
    .expect("JSON")
}

fn x5c_of(cert: &Certificate) -> String {
    B64.encode(cert.to_der().expect("DER"))
}

/// Apply `f` to the JSON of an envelope.
fn edit(envelope: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = json_value(envelope);
    f(&mut v);
    serde_json::to_vec(&v).expect("JSON")
}

fn malformed_reason(r: Result<envelope::Verified, EnvelopeError>) -> String {
    match r {
        Err(EnvelopeError::Malformed {
            format: Format::Jws,
            reason,
        }) => reason,
        other => panic!("expected Malformed(Jws), got {other:?}"),
    }
}

const PAYLOAD: &[u8] = br#"{"ietf-voucher:voucher":{"assertion":"logged","serial-number":"JWS-1","nonce":"abc","created-on":"2025-01-01T00:00:00Z"}}"#;

// ---------------------------------------------------------------------------------------------
// jws-voucher §8 examples

#[test]
fn jws_voucher_8_1_pvr_verifies() {
    let (_, signer, ca) = key_and_chain("jws-voucher/8.1-pvr.signer-key-and-chain.pem");
    let v = jws::verify(
        &bytes("jws-voucher/8.1-pvr.json"),
        &no_time(vec![ca.clone()]),
        &[],
    )
    .expect("8.1 PVR verifies");
    assert_eq!(v.format, Format::Jws);
    assert_eq!(
        json_value(&v.payload),
        json_value(&bytes("jws-voucher/8.1-pvr.payload.json"))
    );
    assert_eq!(v.chain, vec![signer, ca]);
}

#[test]
fn jws_voucher_8_2_rvr_verifies_with_cmc_ra() {
    let (_, signer, ca) = key_and_chain("jws-voucher/8.2-rvr.signer-key-and-chain.pem");
    let rvr = bytes("jws-voucher/8.2-rvr.json");
    let v = jws::verify(&rvr, &no_time(vec![ca.clone()]), &[]).expect("8.2 RVR verifies");
    assert_eq!(
        json_value(&v.payload),
        json_value(&bytes("jws-voucher/8.2-rvr.payload.json"))
    );
    assert_eq!(v.signer(), Some(&signer));

    // RFC 8995 §5.5.4: the MASA requires id-kp-cmcRA on the RVR signer.
    let policy = no_time(vec![ca]).with_required_eku(oid::ID_KP_CMC_RA);
    let v = jws::verify(&rvr, &policy, &[]).expect("8.2 RVR signer has cmcRA");
    assert_eq!(v.signer(), Some(&signer));
}

#[test]
fn jws_voucher_8_2_prior_signed_voucher_request_is_the_8_1_pvr() {
    let v = jws::parse(&bytes("jws-voucher/8.2-rvr.json")).expect("parse");
    let payload = json_value(&v.payload);
    let prior = payload["ietf-voucher-request:voucher"]["prior-signed-voucher-request"]
        .as_str()
        .expect("prior-signed-voucher-request is a string");
    let pvr = B64.decode(prior).expect("standard base64");
    assert_eq!(
        json_value(&pvr),
        json_value(&bytes("jws-voucher/8.1-pvr.json"))
    );
}

#[test]
fn jws_voucher_8_1_pvr_signer_lacks_cmc_ra() {
    let (_, _, ca) = key_and_chain("jws-voucher/8.1-pvr.signer-key-and-chain.pem");
    let policy = no_time(vec![ca]).with_required_eku(oid::ID_KP_CMC_RA);
    let r = jws::verify(&bytes("jws-voucher/8.1-pvr.json"), &policy, &[]);
    assert!(
        matches!(r, Err(EnvelopeError::Untrusted(ChainError::MissingEku { eku, .. })) if eku == oid::ID_KP_CMC_RA),
        "{r:?}"
    );
}

#[test]
fn jws_voucher_8_3_voucher_verifies() {
    let (_, signer, ca) = key_and_chain("jws-voucher/8.3-voucher.signer-key-and-chain.pem");
    let v = jws::verify(
        &bytes("jws-voucher/8.3-voucher.json"),
        &no_time(vec![ca.clone()]),
        &[],
    )
    .expect("8.3 voucher verifies");
    assert_eq!(
        json_value(&v.payload),
        json_value(&bytes("jws-voucher/8.3-voucher.payload.json"))
    );
    assert_eq!(v.chain, vec![signer, ca]);
}

#[test]
fn jws_voucher_8_3_voucher_is_not_trusted_under_the_site_ca() {
    let (_, _, site_ca) = key_and_chain("jws-voucher/8.2-rvr.signer-key-and-chain.pem");
    let r = jws::verify(
        &bytes("jws-voucher/8.3-voucher.json"),
        &no_time(vec![site_ca]),
        &[],
    );
    assert!(
        matches!(
            r,
            Err(EnvelopeError::Untrusted(ChainError::Untrusted { .. }))
        ),
        "{r:?}"
    );
}

#[test]
fn jws_voucher_8_parse_reports_alg_and_x5c() {
    let (_, signer, _) = key_and_chain("jws-voucher/8.1-pvr.signer-key-and-chain.pem");
    let p = jws::parse(&bytes("jws-voucher/8.1-pvr.json")).expect("parse");
    assert_eq!(p.format, Format::Jws);
    assert_eq!(p.algorithm, "ES256");
    assert_eq!(p.certificates, vec![signer]);
    assert_eq!(p.payload, bytes("jws-voucher/8.1-pvr.payload.json"));
    // The generic entry points dispatch to the same code.
    let g = envelope::parse(Format::Jws, &bytes("jws-voucher/8.1-pvr.json")).expect("parse");
    assert_eq!(g.payload, p.payload);
}

#[test]
fn rfc8366bis_a_4_jws_voucher_verifies() {
    let v = jws::verify(
        &bytes("rfc8366bis/A.4-jws-voucher.json"),
        &no_time(vec![c_1_1_anchor()]),
        &[],
    )
    .expect("A.4 verifies");
    assert_eq!(v.signer(), Some(&cert("rfc8995/C.1.2-masa.crt.pem")));
    let payload = json_value(&v.payload);
    assert_eq!(
        payload["ietf-voucher:voucher"]["serial-number"],
        "caffe-98745"
    );
    assert_eq!(payload["ietf-voucher:voucher"]["assertion"], "proximity");
}

// ---------------------------------------------------------------------------------------------
// Serializations (RFC 7515 §7.2)

#[test]
fn rfc7515_7_2_2_flattened_serialization_verifies() {
    let (_, signer, ca) = key_and_chain("jws-voucher/8.3-voucher.signer-key-and-chain.pem");
    let flat = edit(&bytes("jws-voucher/8.3-voucher.json"), |v| {
        let sig = v["signatures"][0].clone();
        let obj = v.as_object_mut().expect("object");
        obj.remove("signatures");
        obj.insert("protected".into(), sig["protected"].clone());
        obj.insert("signature".into(), sig["signature"].clone());
    });
    let v = jws::verify(&flat, &no_time(vec![ca]), &[]).expect("flattened verifies");
    assert_eq!(v.signer(), Some(&signer));
}

#[test]
fn rfc7515_7_2_1_second_signature_verifies_when_first_does_not() {
    let (_, signer, ca) = key_and_chain("jws-voucher/8.3-voucher.signer-key-and-chain.pem");
    let two = edit(&bytes("jws-voucher/8.3-voucher.json"), |v| {
        let good = v["signatures"][0].clone();
        let mut bad = good.clone();
        let sig = B64URL
            .decode(bad["signature"].as_str().expect("sig"))
            .expect("b64");
        let mut flipped = sig.clone();
        flipped[5] ^= 1;
        bad["signature"] = Value::String(B64URL.encode(flipped));
        v["signatures"] = json!([bad, good]);
    });
    let v = jws::verify(&two, &no_time(vec![ca.clone()]), &[]).expect("second verifies");
    assert_eq!(v.signer(), Some(&signer));

    // Neither verifies: the first signature's error is returned.
    let none = edit(&two, |v| {
        let bad = v["signatures"][0].clone();
        v["signatures"] = json!([bad.clone(), {"protected": B64URL.encode(r#"{"alg":"none"}"#), "signature": ""}]);
    });
    assert!(matches!(
        jws::verify(&none, &no_time(vec![ca]), &[]),
        Err(EnvelopeError::BadSignature)
    ));
}

#[test]
fn jws_voucher_3_2_x5c_with_escaped_slashes_verifies() {
    let (key, masa) = c_1_2_masa();
    let x5c = x5c_of(&masa);
    assert!(
        x5c.contains('/'),
        "the MASA certificate's base64 has a '/' to escape"
    );
    let header = format!(
        r#"{{"alg":"ES256","typ":"voucher-jws+json","x5c":["{}"]}}"#,
        x5c.replace('/', "\\/")
    );
    let env = craft(&header, PAYLOAD, Some(&key));
    let v = jws::verify(&env, &no_time(vec![c_1_1_anchor()]), &[]).expect("verifies");
    assert_eq!(v.signer(), Some(&masa));
}

#[test]
fn rfc7515_4_1_9_typ_with_media_type_prefix_is_accepted() {
    let (key, masa) = c_1_2_masa();
    let header = format!(
        r#"{{"alg":"ES256","typ":"Application/Voucher-JWS+JSON","x5c":["{}"]}}"#,
        x5c_of(&masa)
    );
    let env = craft(&header, PAYLOAD, Some(&key));
    assert!(jws::verify(&env, &no_time(vec![c_1_1_anchor()]), &[]).is_ok());
}

#[test]
fn rfc7515_7_2_1_x5c_in_unprotected_header_is_a_candidate() {
    let (key, masa) = c_1_2_masa();
    let env = craft(r#"{"alg":"ES256"}"#, PAYLOAD, Some(&key));
    let env = edit(&env, |v| {
        v["signatures"][0]["header"] = json!({"x5c": [x5c_of(&masa)]});
    });
    let v = jws::verify(&env, &no_time(vec![c_1_1_anchor()]), &[]).expect("verifies");
    assert_eq!(v.signer(), Some(&masa));
}

// ---------------------------------------------------------------------------------------------
// Round trips (jws-voucher §3)

fn round_trip(key: &SoftwareKey, chain: &[Certificate], anchor: Certificate, time: TimeCheck) {
    let env = jws::sign(PAYLOAD, key, chain).expect("sign");
    // The output is the general serialization with the jws-voucher §3.2 header.
    let v = json_value(&env);
    let protected = B64URL
        .decode(v["signatures"][0]["protected"].as_str().expect("protected"))
        .expect("b64url");
    let header = json_value(&protected);
    assert_eq!(header["alg"], key.algorithm().jws_alg());
    assert_eq!(header["typ"], "voucher-jws+json");
    let x5c: Vec<Vec<u8>> = header["x5c"]
        .as_array()
        .expect("x5c")
        .iter()
        .map(|c| {
            B64.decode(c.as_str().expect("string"))
                .expect("standard base64")
        })
        .collect();
    let chain_der: Vec<Vec<u8>> = chain.iter().map(|c| c.to_der().expect("DER")).collect();
    assert_eq!(x5c, chain_der);
    let sig = B64URL
        .decode(v["signatures"][0]["signature"].as_str().expect("signature"))
        .expect("b64url");
    assert_eq!(
        sig.len(),
        key.algorithm().ecdsa_scalar_len().map_or(64, |n| 2 * n),
        "fixed-size r||s or Ed25519 signature"
    );

    let policy = TrustPolicy::new(vec![anchor]).with_time(time);
    let verified = envelope::verify(Format::Jws, &env, &policy, &[]).expect("verify");
    assert_eq!(verified.payload, PAYLOAD);
    assert_eq!(verified.signer(), chain.first());
    let parsed = jws::parse(&env).expect("parse");
    assert_eq!(parsed.algorithm, key.algorithm().jws_alg());
    assert_eq!(parsed.certificates, chain);
}

#[test]
fn jws_voucher_3_round_trip_p256_rfc8995_masa() {
    let (key, masa) = c_1_2_masa();
    round_trip(&key, &[masa], c_1_1_anchor(), TimeCheck::Skip);
}

#[test]
fn jws_voucher_3_round_trip_p256_cbrski_registrar() {
    let (key, registrar) = cbrski_registrar();
    round_trip(
        &key,
        &[registrar],
        cert("cbrski/C-domain_ca.crt.pem"),
        TimeCheck::Skip,
    );
}

#[test]
fn jws_voucher_3_round_trip_es384() {
    let (key, leaf, ca) = rcgen_chain(&rcgen::PKCS_ECDSA_P384_SHA384);
    assert_eq!(key.algorithm(), SignatureAlgorithm::EcdsaP384Sha384);
    round_trip(&key, &[leaf, ca.clone()], ca, TimeCheck::Now);
}

#[test]
fn jws_voucher_3_round_trip_eddsa() {
    let (key, leaf, ca) = rcgen_chain(&rcgen::PKCS_ED25519);
    assert_eq!(key.algorithm(), SignatureAlgorithm::Ed25519);
    round_trip(&key, &[leaf, ca.clone()], ca, TimeCheck::Now);
}

#[test]
fn jws_voucher_3_without_x5c_signer_from_extra_or_anchor() {
    let (key, masa) = c_1_2_masa();
    let env = jws::sign(PAYLOAD, &key, &[]).expect("sign");
    let header = json_value(
        &B64URL
            .decode(
                json_value(&env)["signatures"][0]["protected"]
                    .as_str()
                    .expect("p"),
            )
            .expect("b64"),
    );
    assert!(header.get("x5c").is_none());
    // Signer certificate known out of band.
    let v = jws::verify(
        &env,
        &no_time(vec![c_1_1_anchor()]),
        std::slice::from_ref(&masa),
    )
    .expect("verifies with extra");
    assert_eq!(v.chain, vec![masa.clone(), c_1_1_anchor()]);
    // The anchor's own key signed.
    let v = jws::verify(&env, &no_time(vec![masa.clone()]), &[]).expect("anchor signed");
    assert_eq!(v.chain, vec![masa]);
    // Nothing to identify the signer with.
    assert!(matches!(
        jws::verify(&env, &no_time(vec![]), &[]),
        Err(EnvelopeError::SignerNotFound)
    ));
}

#[test]
fn jws_sign_rejects_a_chain_that_is_not_the_signers() {
    let (key, _) = c_1_2_masa();
    let r = jws::sign(PAYLOAD, &key, &[c_1_1_anchor()]);
    assert!(
        matches!(r, Err(EnvelopeError::Signing(KeyError::SigningFailed(_)))),
        "{r:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Tampering (RFC 7515 §5.2 step 8)

/// A payload changed after signing, still valid base64url: the signature no longer verifies
/// (`BadSignature`). A payload that is no longer base64url is `Malformed`, which is checked
/// before any signature.
#[test]
fn rfc7515_5_2_tampered_payload_is_rejected() {
    let (key, masa) = c_1_2_masa();
    let policy = no_time(vec![c_1_1_anchor()]);
    let env = jws::sign(PAYLOAD, &key, std::slice::from_ref(&masa)).expect("sign");
    let mut changed = PAYLOAD.to_vec();
    changed[30] ^= 0x01;
    let tampered = edit(&env, |v| {
        v["payload"] = Value::String(B64URL.encode(&changed))
    });
    assert!(matches!(
        jws::verify(&tampered, &policy, &[]),
        Err(EnvelopeError::BadSignature)
    ));
    let broken = edit(&env, |v| {
        let mut p = v["payload"].as_str().expect("payload").to_string();
        p.replace_range(10..11, "!");
        v["payload"] = Value::String(p);
    });
    assert!(malformed_reason(jws::verify(&broken, &policy, &[])).contains("payload"));
}

#[test]
fn rfc7515_5_2_tampered_signature_is_rejected() {
    let (_, _, ca) = key_and_chain("jws-voucher/8.3-voucher.signer-key-and-chain.pem");
    let tampered = edit(&bytes("jws-voucher/8.3-voucher.json"), |v| {
        let sig = B64URL
            .decode(v["signatures"][0]["signature"].as_str().expect("sig"))
            .expect("b64");
        let mut flipped = sig;
        flipped[40] ^= 0x80;
        v["signatures"][0]["signature"] = Value::String(B64URL.encode(flipped));
    });
    assert!(matches!(
        jws::verify(&tampered, &no_time(vec![ca]), &[]),
        Err(EnvelopeError::BadSignature)
    ));
}

#[test]
fn rfc8995_5_6_1_other_signer_is_untrusted() {
    let (key, registrar) = cbrski_registrar();
    let env = jws::sign(PAYLOAD, &key, std::slice::from_ref(&registrar)).expect("sign");
    let r = jws::verify(&env, &no_time(vec![c_1_1_anchor()]), &[]);
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
    let env = jws::sign(PAYLOAD, &key, std::slice::from_ref(&masa)).expect("sign");
    let policy = TrustPolicy::new(vec![c_1_1_anchor()]).with_time(TimeCheck::Now);
    let r = jws::verify(&env, &policy, &[]);
    assert!(
        matches!(r, Err(EnvelopeError::Untrusted(ChainError::Expired { .. }))),
        "{r:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Header rejections (RFC 7515 §4, §5.2; jws-voucher §3.2)

#[test]
fn rfc7518_3_6_alg_none_is_unsupported() {
    let env = craft(r#"{"alg":"none","typ":"voucher-jws+json"}"#, PAYLOAD, None);
    let r = jws::verify(&env, &no_time(vec![c_1_1_anchor()]), &[]);
    assert!(
        matches!(&r, Err(EnvelopeError::UnsupportedAlgorithm(a)) if a.contains("none")),
        "{r:?}"
    );
    // parse reports what the envelope names.
    assert_eq!(jws::parse(&env).expect("parse").algorithm, "none");
}

#[test]
fn rfc7518_3_1_unknown_alg_is_unsupported() {
    let (key, _) = c_1_2_masa();
    let env = craft(r#"{"alg":"RS256"}"#, PAYLOAD, Some(&key));
    assert!(matches!(
        jws::verify(&env, &no_time(vec![c_1_1_anchor()]), &[]),
        Err(EnvelopeError::UnsupportedAlgorithm(_))
    ));
}

#[test]
fn rfc7518_3_4_alg_must_match_the_key_type() {
    // An ES256 signature (64 bytes, like EdDSA) labelled EdDSA: the P-256 key is not tried.
    let (key, masa) = c_1_2_masa();
    let header = format!(r#"{{"alg":"EdDSA","x5c":["{}"]}}"#, x5c_of(&masa));
    let env = craft(&header, PAYLOAD, Some(&key));
    assert!(matches!(
        jws::verify(&env, &no_time(vec![c_1_1_anchor()]), &[]),
        Err(EnvelopeError::BadSignature)
    ));
}

#[test]
fn rfc7515_4_1_1_missing_or_unprotected_alg_is_malformed() {
    let (key, _) = c_1_2_masa();
    let policy = no_time(vec![c_1_1_anchor()]);
    let env = craft(r#"{"typ":"voucher-jws+json"}"#, PAYLOAD, Some(&key));
    assert!(malformed_reason(jws::verify(&env, &policy, &[])).contains("alg"));
    let env = edit(&env, |v| {
        v["signatures"][0]["header"] = json!({"alg": "ES256"})
    });
    assert!(malformed_reason(jws::verify(&env, &policy, &[])).contains("protected"));
    let env = craft(r#"{"alg":7}"#, PAYLOAD, Some(&key));
    assert!(malformed_reason(jws::verify(&env, &policy, &[])).contains("alg"));
}

#[test]
fn rfc7515_4_1_11_crit_is_rejected() {
    let (key, masa) = c_1_2_masa();
    let policy = no_time(vec![c_1_1_anchor()]);
    let header = format!(
        r#"{{"alg":"ES256","crit":["b64"],"b64":false,"x5c":["{}"]}}"#,
        x5c_of(&masa)
    );
    let env = craft(&header, PAYLOAD, Some(&key));
    assert!(malformed_reason(jws::verify(&env, &policy, &[])).contains("b64"));
    let env = craft(r#"{"alg":"ES256","crit":[]}"#, PAYLOAD, Some(&key));
    assert!(malformed_reason(jws::verify(&env, &policy, &[])).contains("crit"));
    let env = craft(r#"{"alg":"ES256","crit":[1]}"#, PAYLOAD, Some(&key));
    assert!(malformed_reason(jws::verify(&env, &policy, &[])).contains("crit"));
    // crit must be integrity protected.
    let env = craft(r#"{"alg":"ES256"}"#, PAYLOAD, Some(&key));
    let env = edit(&env, |v| {
        v["signatures"][0]["header"] = json!({"crit": ["exp"]})
    });
    assert!(malformed_reason(jws::verify(&env, &policy, &[])).contains("crit"));
}

#[test]
fn jws_voucher_3_2_wrong_typ_is_malformed() {
    let (key, masa) = c_1_2_masa();
    let header = format!(
        r#"{{"alg":"ES256","typ":"JWT","x5c":["{}"]}}"#,
        x5c_of(&masa)
    );
    let env = craft(&header, PAYLOAD, Some(&key));
    assert!(
        malformed_reason(jws::verify(&env, &no_time(vec![c_1_1_anchor()]), &[])).contains("typ")
    );
}

#[test]
fn rfc7515_5_2_duplicate_header_parameter_is_malformed() {
    let (key, masa) = c_1_2_masa();
    let header = format!(
        r#"{{"alg":"ES256","alg":"none","x5c":["{}"]}}"#,
        x5c_of(&masa)
    );
    let env = craft(&header, PAYLOAD, Some(&key));
    assert!(
        malformed_reason(jws::verify(&env, &no_time(vec![c_1_1_anchor()]), &[]))
            .contains("duplicate")
    );
}

#[test]
fn rfc7515_7_2_1_protected_and_unprotected_overlap_is_malformed() {
    let (key, masa) = c_1_2_masa();
    let header = format!(r#"{{"alg":"ES256","x5c":["{}"]}}"#, x5c_of(&masa));
    let env = craft(&header, PAYLOAD, Some(&key));
    let env = edit(&env, |v| v["signatures"][0]["header"] = json!({"x5c": []}));
    assert!(
        malformed_reason(jws::verify(&env, &no_time(vec![c_1_1_anchor()]), &[])).contains("x5c")
    );
}

#[test]
fn rfc7515_4_1_6_bad_x5c_is_malformed() {
    let (key, _) = c_1_2_masa();
    let policy = no_time(vec![c_1_1_anchor()]);
    let cases = [
        (r#"{"alg":"ES256","x5c":"MIIB"}"#, "not an array"),
        (r#"{"alg":"ES256","x5c":[5]}"#, "not a string"),
        (r#"{"alg":"ES256","x5c":["***"]}"#, "not base64"),
        (r#"{"alg":"ES256","x5c":["AAAA"]}"#, "not a certificate"),
    ];
    for (header, expected) in cases {
        let env = craft(header, PAYLOAD, Some(&key));
        let reason = malformed_reason(jws::verify(&env, &policy, &[]));
        assert!(reason.contains(expected), "{header}: {reason}");
        assert!(matches!(
            jws::parse(&env),
            Err(EnvelopeError::Malformed { .. })
        ));
    }
    let many = format!(
        r#"{{"alg":"ES256","x5c":[{}]}}"#,
        vec![format!("\"{}\"", x5c_of(&c_1_1_anchor())); jws::MAX_CERTIFICATES + 1].join(",")
    );
    let env = craft(&many, PAYLOAD, Some(&key));
    assert!(malformed_reason(jws::verify(&env, &policy, &[])).contains("more than"));
}

#[test]
fn rfc7518_3_4_signature_of_wrong_length_is_malformed() {
    let (key, masa) = c_1_2_masa();
    let env = jws::sign(PAYLOAD, &key, std::slice::from_ref(&masa)).expect("sign");
    let env = edit(&env, |v| {
        let sig = B64URL
            .decode(v["signatures"][0]["signature"].as_str().expect("sig"))
            .expect("b64");
        v["signatures"][0]["signature"] = Value::String(B64URL.encode(&sig[..63]));
    });
    assert!(
        malformed_reason(jws::verify(&env, &no_time(vec![c_1_1_anchor()]), &[])).contains("64")
    );
    let env = edit(&env, |v| v["signatures"][0]["signature"] = json!("a+b/"));
    assert!(
        malformed_reason(jws::verify(&env, &no_time(vec![c_1_1_anchor()]), &[]))
            .contains("base64url")
    );
}

#[test]
fn rfc7515_7_2_envelope_structure_errors_are_malformed() {
    let (key, masa) = c_1_2_masa();
    let policy = no_time(vec![c_1_1_anchor()]);
    let good = jws::sign(PAYLOAD, &key, std::slice::from_ref(&masa)).expect("sign");
    let sig0 = json_value(&good)["signatures"][0].clone();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not JSON"),
        (b"[1,2]".to_vec(), "not a JSON object"),
        (
            edit(&good, |v| {
                v.as_object_mut().expect("o").remove("payload");
            }),
            "no payload",
        ),
        (
            edit(&good, |v| v["payload"] = json!(3)),
            "payload is not a string",
        ),
        (
            edit(&good, |v| {
                v.as_object_mut().expect("o").remove("signatures");
            }),
            "no signature",
        ),
        (edit(&good, |v| v["signatures"] = json!([])), "empty"),
        (edit(&good, |v| v["signatures"] = json!({})), "not an array"),
        (
            edit(&good, |v| v["signatures"] = json!([1])),
            "not a JSON object",
        ),
        (
            edit(&good, |v| {
                v["signatures"] = Value::Array(vec![sig0.clone(); jws::MAX_SIGNATURES + 1])
            }),
            "at most",
        ),
        (
            edit(&good, |v| v["signature"] = sig0["signature"].clone()),
            "both",
        ),
        (
            edit(&good, |v| {
                v["signatures"][0]
                    .as_object_mut()
                    .expect("o")
                    .remove("protected");
            }),
            "no protected",
        ),
        (
            edit(&good, |v| v["signatures"][0]["protected"] = json!(1)),
            "\"protected\" is not a string",
        ),
        (
            edit(&good, |v| {
                v["signatures"][0]
                    .as_object_mut()
                    .expect("o")
                    .remove("signature");
            }),
            "no \"signature\"",
        ),
        (
            edit(&good, |v| v["signatures"][0]["signature"] = json!(null)),
            "\"signature\" is not a string",
        ),
        (
            edit(&good, |v| v["signatures"][0]["header"] = json!("x")),
            "\"header\" is not a JSON object",
        ),
        (
            edit(&good, |v| v["signatures"][0]["protected"] = json!("!!")),
            "protected header is not base64url",
        ),
        (
            edit(&good, |v| {
                v["signatures"][0]["protected"] = json!(B64URL.encode("[1]"))
            }),
            "protected header",
        ),
    ];
    for (env, expected) in cases {
        let reason = malformed_reason(jws::verify(&env, &policy, &[]));
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
        bytes("jws-voucher/8.1-pvr.json"),
        bytes("jws-voucher/8.3-voucher.json"),
        bytes("rfc8366bis/A.4-jws-voucher.json"),
    ]
}

fn header_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("ES256")),
        Just(json!("EdDSA")),
        Just(json!("none")),
        Just(json!("voucher-jws+json")),
        Just(json!(null)),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Value::String),
        Just(json!(["AAAA"])),
        Just(json!([])),
        Just(json!([1, "x"])),
        Just(json!({"a": 1})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn jws_decoders_never_panic_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let policy = no_time(vec![c_1_1_anchor()]);
        let _ = jws::parse(&data);
        let _ = jws::verify(&data, &policy, &[]);
    }

    #[test]
    fn jws_decoders_never_panic_on_mutated_vectors(
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
        let policy = no_time(vec![c_1_1_anchor()]);
        let _ = jws::parse(&data);
        if let Ok(v) = jws::verify(&data, &policy, &[]) {
            // Only a change the signature does not cover (JSON layout) can keep it valid.
            prop_assert!(!v.chain.is_empty());
        }
    }

    #[test]
    fn jws_random_headers_never_verify(
        names in proptest::collection::vec(
            prop_oneof![Just("alg"), Just("typ"), Just("x5c"), Just("crit"), Just("kid"), Just("b64")],
            0..6,
        ),
        values in proptest::collection::vec(header_value(), 6),
        unprotected in proptest::option::of(proptest::collection::vec((Just("x5c"), header_value()), 0..2)),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        signature in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let header: serde_json::Map<String, Value> =
            names.iter().zip(values).map(|(n, v)| (n.to_string(), v)).collect();
        let mut sig = json!({
            "protected": B64URL.encode(serde_json::to_vec(&header).expect("json")),
            "signature": B64URL.encode(&signature),
        });
        if let Some(u) = unprotected {
            sig["header"] = Value::Object(u.into_iter().map(|(n, v)| (n.to_string(), v)).collect());
        }
        let env = serde_json::to_vec(&json!({"payload": B64URL.encode(&payload), "signatures": [sig]}))
            .expect("json");
        let _ = jws::parse(&env);
        let r = jws::verify(&env, &no_time(vec![c_1_1_anchor()]), &[]);
        prop_assert!(r.is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn jws_sign_verify_round_trip_any_payload(payload in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (key, masa) = c_1_2_masa();
        let env = jws::sign(&payload, &key, std::slice::from_ref(&masa)).expect("sign");
        let v = jws::verify(&env, &no_time(vec![c_1_1_anchor()]), &[]).expect("verify");
        prop_assert_eq!(v.payload, payload);
    }
}
