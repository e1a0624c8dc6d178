//! CMS SignedData vouchers (RFC 5652 §5, RFC 8366bis §7.1, RFC 8995 §3, §5.2, §5.5, App. C):
//! the published examples verify, what we sign verifies here and with OpenSSL, and every
//! rejection path reports its own error.
//!
//! All example certificates are expired, so time checks are off unless expiry is the point.

use ::cms::cert::{CertificateChoices, IssuerAndSerialNumber, OtherCertificateFormat};
use ::cms::content_info::{CmsVersion, ContentInfo};
use ::cms::revocation::RevocationInfoChoices;
use ::cms::signed_data::{CertificateSet, SignedData, SignerIdentifier, SignerInfo, SignerInfos};
use base64::Engine;
use brski_common::envelope::{self, EnvelopeError, Format, cms};
use brski_common::input::{B64, to_pem};
use brski_common::keys::{KeyError, SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::oid;
use brski_common::pki::chain::{ChainError, TimeCheck, TrustPolicy};
use brski_common::test_vectors::{bytes, cert, dir, read};
use const_oid::ObjectIdentifier;
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode, Tagged};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

const C_1_1: &str = "rfc8995/C.1.1-manufacturer-ca.crt.pem";
const C_1_2: &str = "rfc8995/C.1.2-masa.crt.pem";
const C_1_2_KEY: &str = "rfc8995/C.1.2-masa.key.pem";
const C_1_3: &str = "rfc8995/C.1.3-owner-ca.crt.pem";
const C_1_3_KEY: &str = "rfc8995/C.1.3-owner-ca.key.pem";
const C_1_4: &str = "rfc8995/C.1.4-registrar.crt.pem";
const C_1_4_KEY: &str = "rfc8995/C.1.4-registrar.key.pem";
const C_2_1: &str = "rfc8995/C.2.1-pledge-voucher-request.cms.b64";
const C_2_2: &str = "rfc8995/C.2.2-registrar-voucher-request.cms.b64";
const C_2_3: &str = "rfc8995/C.2.3-voucher.cms.b64";
const RSA_CA: &str = "rfc8366bis/A.1-vendor-ca-rsa.crt.pem";
const RSA_CA_KEY: &str = "rfc8366bis/A.1-vendor-ca-rsa.key.pem";

const PAYLOAD: &[u8] = br#"{"ietf-voucher:voucher":{"assertion":"logged","serial-number":"00-D0-E5-F2-00-02","nonce":"-_XE9zK9q8Ll1qylMtLKeg"}}"#;

// ---------------------------------------------------------------------------------------------
// Helpers

fn policy(anchor: &str) -> TrustPolicy {
    TrustPolicy::new(vec![cert(anchor)]).with_time(TimeCheck::Skip)
}

fn key(file: &str) -> SoftwareKey {
    let pem = String::from_utf8(read(file)).expect("utf-8 key file");
    SoftwareKey::from_pem(&pem).expect("vector key")
}

/// The eContent file of an example, without its header lines and the trailing newline the
/// file adds.
fn econtent(file: &str) -> Vec<u8> {
    let raw = read(file);
    let body = brski_common::input::strip_comment_lines(&raw);
    body.strip_suffix(b"\n").unwrap_or(body).to_vec()
}

fn assert_malformed(result: Result<impl std::fmt::Debug, EnvelopeError>, needle: &str) {
    match result {
        Err(EnvelopeError::Malformed {
            format: Format::Cms,
            reason,
        }) => assert!(
            reason.contains(needle),
            "reason {reason:?} does not mention {needle:?}"
        ),
        other => panic!("expected Malformed mentioning {needle:?}, got {other:?}"),
    }
}

/// Decode a CMS with the `cms` crate, let `f` change the SignedData, encode it again.
fn edit(der: &[u8], f: impl FnOnce(&mut SignedData)) -> Vec<u8> {
    let ci = ContentInfo::from_der(der).expect("ContentInfo");
    let mut sd: SignedData = ci.content.decode_as().expect("SignedData");
    f(&mut sd);
    ContentInfo {
        content_type: ci.content_type,
        content: Any::encode_from(&sd).expect("encode SignedData"),
    }
    .to_der()
    .expect("encode ContentInfo")
}

fn signer_infos(sd: &SignedData) -> Vec<SignerInfo> {
    sd.signer_infos.0.iter().cloned().collect()
}

fn set_signer_infos(sd: &mut SignedData, infos: Vec<SignerInfo>) {
    sd.signer_infos = SignerInfos::try_from(infos).expect("SignerInfos");
}

/// Change the one SignerInfo with `f`, then sign its (new) signed attributes with `key`.
fn edit_and_resign(der: &[u8], key: &dyn Signer, f: impl FnOnce(&mut SignerInfo)) -> Vec<u8> {
    edit(der, |sd| {
        let mut infos = signer_infos(sd);
        f(&mut infos[0]);
        let attrs = infos[0].signed_attrs.as_ref().expect("signed attributes");
        let sig = key.sign(&attrs.to_der().expect("attrs")).expect("sign");
        infos[0].signature = OctetString::new(sig).expect("octets");
        set_signer_infos(sd, infos);
    })
}

fn attr(oid: ObjectIdentifier, values: Vec<Any>) -> Attribute {
    Attribute {
        oid,
        values: SetOfVec::try_from(values).expect("values"),
    }
}

fn any_of<T: Encode>(v: &T) -> Any {
    Any::from_der(&v.to_der().expect("encode")).expect("any")
}

/// Replace the signed attributes of the SignerInfo, keeping the others.
fn with_attrs(info: &mut SignerInfo, keep: impl Fn(&Attribute) -> bool, add: Vec<Attribute>) {
    let mut attrs: Vec<Attribute> = info
        .signed_attrs
        .as_ref()
        .expect("attrs")
        .iter()
        .filter(|a| keep(a))
        .cloned()
        .collect();
    attrs.extend(add);
    info.signed_attrs = Some(SetOfVec::try_from(attrs).expect("attrs"));
}

/// Flip one bit of the byte in the middle of the first occurrence of `needle` in `der`.
fn flip_inside(der: &[u8], needle: &[u8]) -> Vec<u8> {
    let pos = der
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle occurs");
    let mut out = der.to_vec();
    out[pos + needle.len() / 2] ^= 0x01;
    out
}

fn signature_of(der: &[u8]) -> Vec<u8> {
    let ci = ContentInfo::from_der(der).expect("ContentInfo");
    let sd: SignedData = ci.content.decode_as().expect("SignedData");
    signer_infos(&sd)[0].signature.as_bytes().to_vec()
}

/// Flip one bit in the last byte of the signature (the low byte of ECDSA `s`, or of Ed25519
/// `S`): the DER stays well-formed, the signature is wrong.
fn flip_signature(der: &[u8]) -> Vec<u8> {
    let sig = signature_of(der);
    let pos = der
        .windows(sig.len())
        .position(|w| w == sig.as_slice())
        .expect("signature occurs");
    let mut out = der.to_vec();
    out[pos + sig.len() - 1] ^= 0x01;
    out
}

/// A minimal self-signed v3 certificate for `key` (there is no Ed25519 example cert).
fn self_signed(key: &SoftwareKey, cn: &str) -> Certificate {
    make_cert(key, key.public_key_spki(), cn)
}

/// A minimal v3 certificate with subject and issuer `CN=cn`, carrying `spki`, signed by `key`.
fn make_cert(key: &SoftwareKey, spki: &[u8], cn: &str) -> Certificate {
    use std::str::FromStr;
    #[derive(der::Sequence)]
    struct Tbs {
        #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
        version: u8,
        serial: der::asn1::Uint,
        signature: spki::AlgorithmIdentifierOwned,
        issuer: x509_cert::name::Name,
        validity: x509_cert::time::Validity,
        subject: x509_cert::name::Name,
        spki: Any,
    }
    #[derive(der::Sequence)]
    struct Cert {
        tbs: Tbs,
        algorithm: spki::AlgorithmIdentifierOwned,
        signature: der::asn1::BitString,
    }
    let name = x509_cert::name::Name::from_str(&format!("CN={cn}")).expect("name");
    let tbs = Tbs {
        version: 2,
        serial: der::asn1::Uint::new(&[0x42, 0x17]).expect("serial"),
        signature: key.algorithm().algorithm_identifier(),
        issuer: name.clone(),
        validity: x509_cert::time::Validity::from_now(std::time::Duration::from_secs(86_400))
            .expect("validity"),
        subject: name,
        spki: Any::from_der(spki).expect("spki"),
    };
    let sig = key.sign(&tbs.to_der().expect("tbs")).expect("sign tbs");
    let der = Cert {
        tbs,
        algorithm: key.algorithm().algorithm_identifier(),
        signature: der::asn1::BitString::from_bytes(&sig).expect("bits"),
    }
    .to_der()
    .expect("cert");
    Certificate::from_der(&der).expect("certificate decodes")
}

/// Key, certificate chain and trust anchor for one signature algorithm.
struct Fixture {
    key: SoftwareKey,
    chain: Vec<Certificate>,
    policy: TrustPolicy,
    anchor_pem: String,
}

fn fixture(alg: SignatureAlgorithm) -> Fixture {
    let pem = |c: &Certificate| to_pem("CERTIFICATE", &c.to_der().expect("der"));
    match alg {
        // The MASA's voucher-signing key (C.1.2), chaining to the manufacturer CA (C.1.1).
        SignatureAlgorithm::EcdsaP256Sha256 => Fixture {
            key: key(C_1_2_KEY),
            chain: vec![cert(C_1_2)],
            policy: policy(C_1_1),
            anchor_pem: pem(&cert(C_1_1)),
        },
        // The owner CA (C.1.3) signing for itself.
        SignatureAlgorithm::EcdsaP384Sha384 => Fixture {
            key: key(C_1_3_KEY),
            chain: vec![cert(C_1_3)],
            policy: policy(C_1_3),
            anchor_pem: pem(&cert(C_1_3)),
        },
        SignatureAlgorithm::Ed25519 => {
            let key = SoftwareKey::generate(SignatureAlgorithm::Ed25519).expect("ed25519 key");
            let c = self_signed(&key, "Ed25519 voucher signer");
            Fixture {
                anchor_pem: pem(&c),
                policy: TrustPolicy::new(vec![c.clone()]).with_time(TimeCheck::Skip),
                chain: vec![c],
                key,
            }
        }
    }
}

fn openssl() -> Command {
    // CI installs OpenSSL; without it these tests fail rather than pass vacuously.
    let probe = Command::new("openssl").arg("version").output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "the openssl binary is required for the interoperability tests"
    );
    Command::new("openssl")
}

/// `openssl cms -verify` of `der` against the anchor; the exit status and the content written
/// (OpenSSL's diagnostics are printed, shown when a test fails).
fn openssl_verify(der: &[u8], anchor_pem: &str) -> (bool, Vec<u8>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("voucher.der");
    let anchor = tmp.path().join("anchor.pem");
    let out = tmp.path().join("out");
    std::fs::write(&input, der).expect("write cms");
    std::fs::write(&anchor, anchor_pem).expect("write anchor");
    let status = openssl()
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
        .arg(&input)
        .arg("-CAfile")
        .arg(&anchor)
        .args(["-purpose", "any", "-no_check_time", "-out"])
        .arg(&out)
        .output()
        .expect("run openssl");
    eprintln!("openssl: {}", String::from_utf8_lossy(&status.stderr));
    (
        status.status.success(),
        std::fs::read(&out).unwrap_or_default(),
    )
}

/// `openssl cms -sign` of PAYLOAD with a vector key and certificate, plus `extra` options.
fn openssl_sign(cert_file: &str, key_file: &str, extra: &[&str]) -> Vec<u8> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("payload.json");
    let out = tmp.path().join("signed.der");
    std::fs::write(&input, PAYLOAD).expect("write payload");
    let vector = |f: &str| -> PathBuf { dir().join(f) };
    let result = openssl()
        .args([
            "cms",
            "-sign",
            "-binary",
            "-nodetach",
            "-outform",
            "DER",
            "-in",
        ])
        .arg(&input)
        .arg("-signer")
        .arg(vector(cert_file))
        .arg("-inkey")
        .arg(vector(key_file))
        .args(extra)
        .arg("-out")
        .arg(&out)
        .output()
        .expect("run openssl");
    assert!(
        result.status.success(),
        "openssl cms -sign failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::read(&out).expect("signed output")
}

fn anchor_file_pem(file: &str) -> String {
    String::from_utf8(read(file)).expect("pem")
}

// ---------------------------------------------------------------------------------------------
// The published examples (RFC 8995 App. C.2, RFC 8366bis App. A)

#[test]
fn rfc8995_c_2_1_pvr_verifies_with_embedded_idevid() {
    let v = cms::verify(&bytes(C_2_1), &policy(C_1_1), &[]).expect("C.2.1 verifies");
    assert_eq!(v.format, Format::Cms);
    assert_eq!(
        v.payload,
        econtent("rfc8995/C.2.1-pledge-voucher-request.econtent.json")
    );
    assert_eq!(v.chain.len(), 2, "IDevID and manufacturer CA");
    assert_eq!(
        v.signer(),
        Some(&cert("rfc8995/C.2.1-pvr-signer-idevid.crt.pem"))
    );
    assert_eq!(v.chain[1], cert(C_1_1));
}

#[test]
fn rfc8995_c_2_2_rvr_verifies_with_cmc_ra() {
    let p = policy(C_1_3).with_required_eku(oid::ID_KP_CMC_RA);
    let v = cms::verify(&bytes(C_2_2), &p, &[]).expect("C.2.2 verifies");
    assert_eq!(
        v.payload,
        econtent("rfc8995/C.2.2-registrar-voucher-request.econtent.json")
    );
    assert_eq!(v.signer(), Some(&cert(C_1_4)));
}

#[test]
fn rfc8995_c_2_2_prior_signed_voucher_request_is_c_2_1() {
    let v = cms::verify(&bytes(C_2_2), &policy(C_1_3), &[]).expect("C.2.2 verifies");
    let json: serde_json::Value = serde_json::from_slice(&v.payload).expect("JSON");
    let prior = json["ietf-voucher-request:voucher"]["prior-signed-voucher-request"]
        .as_str()
        .expect("prior-signed-voucher-request is a string");
    let prior = B64.decode(prior).expect("base64");
    assert_eq!(prior, bytes(C_2_1));
    // ...and the embedded PVR verifies in its own right (RFC 8995 §5.5.5).
    let pvr = cms::verify(&prior, &policy(C_1_1), &[]).expect("inner PVR verifies");
    assert_eq!(
        pvr.payload,
        econtent("rfc8995/C.2.1-pledge-voucher-request.econtent.json")
    );
}

#[test]
fn rfc8995_c_2_3_voucher_verifies() {
    let v = cms::verify(&bytes(C_2_3), &policy(C_1_1), &[]).expect("C.2.3 verifies");
    assert_eq!(v.payload, econtent("rfc8995/C.2.3-voucher.econtent.json"));
    assert_eq!(v.chain, vec![cert(C_1_2), cert(C_1_1)]);
}

#[test]
fn rfc8995_c_2_3_voucher_verifies_through_the_envelope_interface() {
    let der = bytes(C_2_3);
    assert_eq!(Format::detect(&der), Some(Format::Cms));
    let v = envelope::verify(Format::Cms, &der, &policy(C_1_1), &[]).expect("verifies");
    assert_eq!(v.payload, econtent("rfc8995/C.2.3-voucher.econtent.json"));
    let p = envelope::parse(Format::Cms, &der).expect("parses");
    assert_eq!(p.payload, v.payload);
}

#[test]
fn rfc8366bis_a_2_voucher_request_verifies() {
    let v = cms::verify(
        &bytes("rfc8366bis/A.2-voucher-request.cms.b64"),
        &policy(C_1_1),
        &[],
    )
    .expect("A.2 verifies");
    assert_eq!(
        v.signer(),
        Some(&cert("rfc8366bis/A.1-idevid-00-D0-E5-F2-00-02.crt.pem"))
    );
    let json: serde_json::Value = serde_json::from_slice(&v.payload).expect("JSON");
    assert_eq!(
        json["ietf-voucher-request:voucher"]["nonce"],
        "4vTsppS2CeqBzhEdoifM2g"
    );
}

#[test]
fn rfc8366bis_a_3_voucher_verifies() {
    let v = cms::verify(
        &bytes("rfc8366bis/A.3-voucher.cms.b64"),
        &policy(C_1_1),
        &[],
    )
    .expect("A.3 verifies");
    assert_eq!(v.signer(), Some(&cert("rfc8366bis/A.1-masa.crt.pem")));
    let json: serde_json::Value = serde_json::from_slice(&v.payload).expect("JSON");
    assert_eq!(json["ietf-voucher:voucher"]["assertion"], "logged");
}

#[test]
fn rfc8995_5_6_1_voucher_against_wrong_manufacturer_is_untrusted() {
    let err = cms::verify(&bytes(C_2_3), &policy(C_1_3), &[]).expect_err("wrong anchor");
    assert!(
        matches!(err, EnvelopeError::Untrusted(ChainError::Untrusted { .. })),
        "{err:?}"
    );
}

#[test]
fn rfc8995_5_5_4_rvr_signer_without_cmc_ra_is_rejected() {
    // The MASA requires id-kp-cmcRA on the RVR signer; the MASA's own cert lacks it.
    let p = policy(C_1_1).with_required_eku(oid::ID_KP_CMC_RA);
    let err = cms::verify(&bytes(C_2_3), &p, &[]).expect_err("no cmcRA");
    assert!(
        matches!(err, EnvelopeError::Untrusted(ChainError::MissingEku { .. })),
        "{err:?}"
    );
}

#[test]
fn rfc8995_c_2_3_expired_signer_rejected_with_time_checks() {
    let p = policy(C_1_1).with_time(TimeCheck::Now);
    let err = cms::verify(&bytes(C_2_3), &p, &[]).expect_err("expired");
    assert!(
        matches!(err, EnvelopeError::Untrusted(ChainError::Expired { .. })),
        "{err:?}"
    );
}

#[test]
fn rfc8995_c_2_3_tampered_econtent_is_a_digest_mismatch() {
    let der = bytes(C_2_3);
    let tampered = flip_inside(&der, &econtent("rfc8995/C.2.3-voucher.econtent.json"));
    let err = cms::verify(&tampered, &policy(C_1_1), &[]).expect_err("tampered");
    assert!(matches!(err, EnvelopeError::DigestMismatch), "{err:?}");
}

#[test]
fn rfc8995_c_2_3_tampered_signature_is_bad_signature() {
    let err =
        cms::verify(&flip_signature(&bytes(C_2_3)), &policy(C_1_1), &[]).expect_err("tampered");
    assert!(matches!(err, EnvelopeError::BadSignature), "{err:?}");
}

#[test]
fn rfc8995_c_2_2_parse_returns_payload_certificates_and_algorithm() {
    let p = cms::parse(&bytes(C_2_2)).expect("parses");
    assert_eq!(p.format, Format::Cms);
    assert_eq!(
        p.payload,
        econtent("rfc8995/C.2.2-registrar-voucher-request.econtent.json")
    );
    assert_eq!(p.certificates.len(), 2);
    assert_eq!(p.certificates[0], cert(C_1_4), "signer first");
    assert_eq!(p.certificates[1], cert(C_1_3));
    assert_eq!(p.algorithm, "ecdsa-with-SHA256");
}

#[test]
fn rfc5652_11_3_signing_time_of_c_2_1() {
    let t = cms::signing_time(&bytes(C_2_1)).expect("signingTime present");
    assert_eq!(t, time::macros::datetime!(2021-04-13 21:43:23 UTC));
    assert_eq!(cms::signing_time(b"not cms"), None);
}

// ---------------------------------------------------------------------------------------------
// Signing

fn round_trip(alg: SignatureAlgorithm) {
    let f = fixture(alg);
    assert_eq!(f.key.algorithm(), alg);
    let der = cms::sign(PAYLOAD, &f.key, &f.chain).expect("sign");
    let v = cms::verify(&der, &f.policy, &[]).expect("own signature verifies");
    assert_eq!(v.payload, PAYLOAD);
    assert_eq!(v.signer(), f.chain.first());
    let p = cms::parse(&der).expect("parses");
    assert_eq!(p.payload, PAYLOAD);
    assert_eq!(p.certificates.first(), f.chain.first());
}

#[test]
fn rfc8366bis_7_1_round_trip_p256() {
    round_trip(SignatureAlgorithm::EcdsaP256Sha256);
}

#[test]
fn rfc8366bis_7_1_round_trip_p384() {
    round_trip(SignatureAlgorithm::EcdsaP384Sha384);
}

#[test]
fn rfc8419_round_trip_ed25519() {
    round_trip(SignatureAlgorithm::Ed25519);
}

#[test]
fn rfc8366bis_7_1_signed_data_shape() {
    let f = fixture(SignatureAlgorithm::EcdsaP256Sha256);
    let chain = vec![cert(C_1_2), cert(C_1_1)];
    let der = cms::sign(PAYLOAD, &f.key, &chain).expect("sign");
    let ci = ContentInfo::from_der(&der).expect("DER ContentInfo");
    assert_eq!(ci.content_type, rfc5911::ID_SIGNED_DATA);
    let sd: SignedData = ci.content.decode_as().expect("SignedData");
    // RFC 5652 §5.1: version 3 since eContentType is not id-data.
    assert_eq!(sd.version, CmsVersion::V3);
    assert_eq!(
        sd.encap_content_info.econtent_type,
        oid::ID_CT_ANIMA_JSON_VOUCHER
    );
    let econtent = sd.encap_content_info.econtent.as_ref().expect("eContent");
    assert_eq!(econtent.value(), PAYLOAD);
    let digests: Vec<_> = sd.digest_algorithms.iter().map(|a| a.oid).collect();
    assert_eq!(digests, vec![rfc5912::ID_SHA_256]);
    let certs = sd.certificates.as_ref().expect("certificates");
    assert_eq!(certs.0.len(), 2);

    let infos = signer_infos(&sd);
    assert_eq!(infos.len(), 1);
    let si = &infos[0];
    assert_eq!(si.version, CmsVersion::V1);
    let masa = cert(C_1_2);
    assert_eq!(
        si.sid,
        SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: masa.tbs_certificate().issuer().clone(),
            serial_number: masa.tbs_certificate().serial_number().clone(),
        })
    );
    assert_eq!(si.digest_alg.oid, rfc5912::ID_SHA_256);
    assert_eq!(si.signature_algorithm.oid, rfc5912::ECDSA_WITH_SHA_256);
    let attrs = si.signed_attrs.as_ref().expect("signed attributes");
    let types: Vec<_> = attrs.iter().map(|a| a.oid).collect();
    assert_eq!(types.len(), 3);
    for t in [
        rfc5911::ID_CONTENT_TYPE,
        rfc5911::ID_SIGNING_TIME,
        rfc5911::ID_MESSAGE_DIGEST,
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    let value = |t| {
        let a = attrs.iter().find(|a| a.oid == t).expect("attribute");
        assert_eq!(a.values.len(), 1);
        a.values.iter().next().expect("value").clone()
    };
    assert_eq!(
        value(rfc5911::ID_CONTENT_TYPE)
            .decode_as::<ObjectIdentifier>()
            .expect("oid"),
        oid::ID_CT_ANIMA_JSON_VOUCHER
    );
    let md = value(rfc5911::ID_MESSAGE_DIGEST);
    assert_eq!(
        md.value(),
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, PAYLOAD).as_ref()
    );
    // RFC 5652 §11.3: a current signingTime is a UTCTime.
    assert_eq!(value(rfc5911::ID_SIGNING_TIME).tag(), der::Tag::UtcTime);
    let t = cms::signing_time(&der).expect("signingTime");
    let skew = (time::OffsetDateTime::now_utc() - t).abs();
    assert!(skew < time::Duration::minutes(5), "signingTime {t}");
}

#[test]
fn rfc8419_ed25519_uses_sha512_digest() {
    let f = fixture(SignatureAlgorithm::Ed25519);
    let der = cms::sign(PAYLOAD, &f.key, &f.chain).expect("sign");
    let sd: SignedData = ContentInfo::from_der(&der)
        .expect("ci")
        .content
        .decode_as()
        .expect("sd");
    let si = &signer_infos(&sd)[0];
    assert_eq!(si.digest_alg.oid, rfc5912::ID_SHA_512);
    assert_eq!(
        si.signature_algorithm.oid,
        const_oid::db::rfc8410::ID_ED_25519
    );
    assert_eq!(cms::parse(&der).expect("parse").algorithm, "id-Ed25519");
}

#[test]
fn sign_without_signer_certificate_fails() {
    let f = fixture(SignatureAlgorithm::EcdsaP256Sha256);
    let err = cms::sign(PAYLOAD, &f.key, &[]).expect_err("no chain");
    assert!(
        matches!(err, EnvelopeError::Signing(KeyError::SigningFailed(_))),
        "{err:?}"
    );
}

#[test]
fn sign_with_certificate_of_another_key_fails() {
    let f = fixture(SignatureAlgorithm::EcdsaP256Sha256);
    let err = cms::sign(PAYLOAD, &f.key, &[cert(C_1_4)]).expect_err("wrong cert");
    assert!(
        matches!(err, EnvelopeError::Signing(KeyError::SigningFailed(_))),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Tampering with what we sign

#[test]
fn tampered_econtent_is_a_digest_mismatch() {
    for alg in [
        SignatureAlgorithm::EcdsaP256Sha256,
        SignatureAlgorithm::EcdsaP384Sha384,
        SignatureAlgorithm::Ed25519,
    ] {
        let f = fixture(alg);
        let der = cms::sign(PAYLOAD, &f.key, &f.chain).expect("sign");
        let err = cms::verify(&flip_inside(&der, PAYLOAD), &f.policy, &[]).expect_err("tampered");
        assert!(
            matches!(err, EnvelopeError::DigestMismatch),
            "{alg:?}: {err:?}"
        );
    }
}

#[test]
fn tampered_signature_is_bad_signature() {
    for alg in [
        SignatureAlgorithm::EcdsaP256Sha256,
        SignatureAlgorithm::EcdsaP384Sha384,
        SignatureAlgorithm::Ed25519,
    ] {
        let f = fixture(alg);
        let der = cms::sign(PAYLOAD, &f.key, &f.chain).expect("sign");
        let err = cms::verify(&flip_signature(&der), &f.policy, &[]).expect_err("tampered");
        assert!(
            matches!(err, EnvelopeError::BadSignature),
            "{alg:?}: {err:?}"
        );
    }
}

#[test]
fn signer_not_chaining_to_anchor_is_untrusted() {
    // The registrar (C.1.4, issued by the owner CA) is not a manufacturer-issued signer.
    let der = cms::sign(PAYLOAD, &key(C_1_4_KEY), &[cert(C_1_4)]).expect("sign");
    let err = cms::verify(&der, &policy(C_1_1), &[]).expect_err("untrusted");
    assert!(
        matches!(err, EnvelopeError::Untrusted(ChainError::Untrusted { .. })),
        "{err:?}"
    );
    // ...while it is trusted by its own domain CA.
    cms::verify(&der, &policy(C_1_3), &[]).expect("domain CA anchor");
}

#[test]
fn expired_signer_is_rejected_with_time_checks() {
    let der = cms::sign(PAYLOAD, &key(C_1_2_KEY), &[cert(C_1_2)]).expect("sign");
    let p = policy(C_1_1).with_time(TimeCheck::Now);
    let err = cms::verify(&der, &p, &[]).expect_err("C.1.2 expired in 2023");
    assert!(
        matches!(err, EnvelopeError::Untrusted(ChainError::Expired { .. })),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Finding the signer (RFC 5652 §5.3 SignerIdentifier)

fn without_certificates(der: &[u8]) -> Vec<u8> {
    edit(der, |sd| sd.certificates = None)
}

#[test]
fn signer_missing_everywhere_is_signer_not_found() {
    let der = without_certificates(&bytes(C_2_3));
    let err = cms::verify(&der, &policy(C_1_1), &[]).expect_err("no signer cert");
    assert!(matches!(err, EnvelopeError::SignerNotFound), "{err:?}");
}

#[test]
fn signer_from_extra_certificates() {
    let der = without_certificates(&bytes(C_2_3));
    let v = cms::verify(&der, &policy(C_1_1), &[cert(C_1_2)]).expect("signer from extra");
    assert_eq!(v.chain, vec![cert(C_1_2), cert(C_1_1)]);
}

#[test]
fn signer_from_trust_anchors() {
    let der = without_certificates(&bytes(C_2_3));
    let p = TrustPolicy::new(vec![cert(C_1_2)]).with_time(TimeCheck::Skip);
    let v = cms::verify(&der, &p, &[]).expect("signer is a pinned anchor");
    assert_eq!(v.chain, vec![cert(C_1_2)]);
}

fn with_sid(der: &[u8], sid: SignerIdentifier) -> Vec<u8> {
    edit(der, |sd| {
        let mut infos = signer_infos(sd);
        infos[0].sid = sid;
        infos[0].version = CmsVersion::V3;
        set_signer_infos(sd, infos);
    })
}

#[test]
fn rfc5652_5_3_subject_key_identifier_signer() {
    // C.1.3 carries a subjectKeyIdentifier extension.
    let f = fixture(SignatureAlgorithm::EcdsaP384Sha384);
    let ski = f.chain[0]
        .tbs_certificate()
        .get_extension::<SubjectKeyIdentifier>()
        .expect("extension decodes")
        .expect("C.1.3 has an SKI")
        .1;
    let der = with_sid(
        &cms::sign(PAYLOAD, &f.key, &f.chain).expect("sign"),
        SignerIdentifier::SubjectKeyIdentifier(ski),
    );
    let v = cms::verify(&der, &f.policy, &[]).expect("SKI signer verifies");
    assert_eq!(v.signer(), f.chain.first());
}

#[test]
fn rfc5652_5_3_key_identifier_of_cert_without_ski_extension() {
    // C.1.2 has no SKI extension: the RFC 5280 §4.2.1.2 method 1 identifier names it.
    let masa = cert(C_1_2);
    let key_bits = masa
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes();
    let id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, key_bits);
    let ski = SubjectKeyIdentifier(OctetString::new(id.as_ref()).expect("octets"));
    let der = with_sid(&bytes(C_2_3), SignerIdentifier::SubjectKeyIdentifier(ski));
    let v = cms::verify(&der, &policy(C_1_1), &[]).expect("computed key id matches");
    assert_eq!(v.signer(), Some(&masa));
}

#[test]
fn unknown_subject_key_identifier_is_signer_not_found() {
    let ski = SubjectKeyIdentifier(OctetString::new([0xAB; 20]).expect("octets"));
    let der = with_sid(&bytes(C_2_3), SignerIdentifier::SubjectKeyIdentifier(ski));
    let err = cms::verify(&der, &policy(C_1_1), &[]).expect_err("nobody has that key id");
    assert!(matches!(err, EnvelopeError::SignerNotFound), "{err:?}");
}

#[test]
fn several_signer_infos_succeed_if_one_verifies() {
    let f = fixture(SignatureAlgorithm::EcdsaP256Sha256);
    let good = cms::sign(PAYLOAD, &f.key, &f.chain).expect("sign");
    let bad_sig = signature_of(&flip_signature(&good));
    let both = edit(&good, |sd| {
        let mut infos = signer_infos(sd);
        let mut broken = infos[0].clone();
        broken.signature = OctetString::new(bad_sig.clone()).expect("octets");
        infos.push(broken);
        set_signer_infos(sd, infos);
    });
    let v = cms::verify(&both, &f.policy, &[]).expect("one SignerInfo verifies");
    assert_eq!(v.payload, PAYLOAD);

    // All broken: the furthest failure is reported (bad signature beats unknown signer).
    let none = edit(&good, |sd| {
        let mut infos = signer_infos(sd);
        infos[0].signature = OctetString::new(bad_sig.clone()).expect("octets");
        let mut stranger = infos[0].clone();
        stranger.sid = SignerIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(
            OctetString::new([1u8; 20]).expect("octets"),
        ));
        infos.push(stranger);
        set_signer_infos(sd, infos);
    });
    let err = cms::verify(&none, &f.policy, &[]).expect_err("none verifies");
    assert!(matches!(err, EnvelopeError::BadSignature), "{err:?}");
}

#[test]
fn too_many_signer_infos_are_malformed() {
    let f = fixture(SignatureAlgorithm::EcdsaP256Sha256);
    let der = cms::sign(PAYLOAD, &f.key, &f.chain).expect("sign");
    let many = edit(&der, |sd| {
        let one = signer_infos(sd).remove(0);
        let infos = (0..=cms::MAX_SIGNER_INFOS)
            .map(|i| {
                let mut si = one.clone();
                si.signature = OctetString::new(vec![i as u8; 8]).expect("octets");
                si
            })
            .collect();
        set_signer_infos(sd, infos);
    });
    assert_malformed(cms::verify(&many, &f.policy, &[]), "SignerInfos");
}

// ---------------------------------------------------------------------------------------------
// Signed attributes and content types (RFC 5652 §5.3, §11; RFC 8366bis §7.1)

fn p256_signed() -> (Fixture, Vec<u8>) {
    let f = fixture(SignatureAlgorithm::EcdsaP256Sha256);
    let der = cms::sign(PAYLOAD, &f.key, &f.chain).expect("sign");
    (f, der)
}

#[test]
fn rfc8366bis_7_1_voucher_content_type_requires_signed_attributes() {
    let (f, der) = p256_signed();
    let stripped = edit(&der, |sd| {
        let mut infos = signer_infos(sd);
        infos[0].signed_attrs = None;
        // A valid signature directly over the content: only the missing attributes are wrong.
        infos[0].signature = OctetString::new(f.key.sign(PAYLOAD).expect("sign")).expect("os");
        set_signer_infos(sd, infos);
    });
    assert_malformed(cms::verify(&stripped, &f.policy, &[]), "signed attributes");
}

#[test]
fn rfc5652_5_4_id_data_without_signed_attributes_verifies() {
    let (f, der) = p256_signed();
    let plain = edit(&der, |sd| {
        sd.version = CmsVersion::V1;
        sd.encap_content_info.econtent_type = oid::ID_DATA;
        let mut infos = signer_infos(sd);
        infos[0].signed_attrs = None;
        infos[0].signature = OctetString::new(f.key.sign(PAYLOAD).expect("sign")).expect("os");
        set_signer_infos(sd, infos);
    });
    let v = cms::verify(&plain, &f.policy, &[]).expect("signature over the content");
    assert_eq!(v.payload, PAYLOAD);
    // The same without attributes, tampered, fails on the signature (no digest to compare).
    let err = cms::verify(&flip_inside(&plain, PAYLOAD), &f.policy, &[]).expect_err("tampered");
    assert!(matches!(err, EnvelopeError::BadSignature), "{err:?}");
}

#[test]
fn rfc5652_11_1_content_type_attribute_must_match() {
    // C.2.3 says contentType id-data in its signed attributes; claim a voucher type instead.
    let der = edit(&bytes(C_2_3), |sd| {
        sd.encap_content_info.econtent_type = oid::ID_CT_ANIMA_JSON_VOUCHER;
    });
    assert_malformed(cms::verify(&der, &policy(C_1_1), &[]), "contentType");
}

#[test]
fn rfc5652_11_1_content_type_attribute_is_required() {
    let (f, der) = p256_signed();
    let resigned = edit_and_resign(&der, &f.key, |si| {
        with_attrs(si, |a| a.oid != rfc5911::ID_CONTENT_TYPE, vec![]);
    });
    assert_malformed(cms::verify(&resigned, &f.policy, &[]), "contentType");
}

#[test]
fn rfc5652_11_2_message_digest_attribute_is_required() {
    let (f, der) = p256_signed();
    let resigned = edit_and_resign(&der, &f.key, |si| {
        with_attrs(si, |a| a.oid != rfc5911::ID_MESSAGE_DIGEST, vec![]);
    });
    assert_malformed(cms::verify(&resigned, &f.policy, &[]), "messageDigest");
}

#[test]
fn rfc5652_11_2_wrong_message_digest_is_a_digest_mismatch() {
    let (f, der) = p256_signed();
    let resigned = edit_and_resign(&der, &f.key, |si| {
        with_attrs(
            si,
            |a| a.oid != rfc5911::ID_MESSAGE_DIGEST,
            vec![attr(
                rfc5911::ID_MESSAGE_DIGEST,
                vec![any_of(&OctetString::new([0u8; 32]).expect("os"))],
            )],
        );
    });
    let err = cms::verify(&resigned, &f.policy, &[]).expect_err("digest differs");
    assert!(matches!(err, EnvelopeError::DigestMismatch), "{err:?}");
}

#[test]
fn rfc5652_11_multi_valued_content_type_is_malformed() {
    let (f, der) = p256_signed();
    let resigned = edit_and_resign(&der, &f.key, |si| {
        with_attrs(
            si,
            |a| a.oid != rfc5911::ID_CONTENT_TYPE,
            vec![attr(
                rfc5911::ID_CONTENT_TYPE,
                vec![
                    any_of(&oid::ID_CT_ANIMA_JSON_VOUCHER),
                    any_of(&oid::ID_DATA),
                ],
            )],
        );
    });
    assert_malformed(
        cms::verify(&resigned, &f.policy, &[]),
        "more than one value",
    );
}

#[test]
fn rfc5652_5_3_duplicate_message_digest_attribute_is_malformed() {
    let (f, der) = p256_signed();
    let resigned = edit_and_resign(&der, &f.key, |si| {
        // A second messageDigest attribute next to the original one.
        let second = attr(
            rfc5911::ID_MESSAGE_DIGEST,
            vec![any_of(&OctetString::new([9u8; 32]).expect("os"))],
        );
        with_attrs(si, |_| true, vec![second]);
    });
    assert_malformed(cms::verify(&resigned, &f.policy, &[]), "appears twice");
}

#[test]
fn rfc5652_5_3_empty_signed_attributes_are_malformed() {
    let (f, der) = p256_signed();
    let resigned = edit_and_resign(&der, &f.key, |si| {
        si.signed_attrs = Some(SetOfVec::new());
    });
    assert_malformed(
        cms::verify(&resigned, &f.policy, &[]),
        "empty signed attributes",
    );
}

#[test]
fn rfc5652_11_attribute_without_value_is_malformed() {
    let (f, der) = p256_signed();
    let resigned = edit_and_resign(&der, &f.key, |si| {
        with_attrs(
            si,
            |a| a.oid != rfc5911::ID_CONTENT_TYPE,
            vec![attr(rfc5911::ID_CONTENT_TYPE, vec![])],
        );
    });
    assert_malformed(cms::verify(&resigned, &f.policy, &[]), "has no value");
}

#[test]
fn key_type_signature_algorithm_with_unsupported_digest_is_reported() {
    // id-data without signed attributes, so the digest algorithm only selects the hash of an
    // id-ecPublicKey signature algorithm; SHA-1 is not offered.
    let (f, der) = p256_signed();
    let plain = edit(&der, |sd| {
        sd.encap_content_info.econtent_type = oid::ID_DATA;
        let mut infos = signer_infos(sd);
        infos[0].signed_attrs = None;
        infos[0].digest_alg.oid = rfc5912::ID_SHA_1;
        infos[0].signature_algorithm.oid = rfc5912::ID_EC_PUBLIC_KEY;
        infos[0].signature = OctetString::new(f.key.sign(PAYLOAD).expect("sign")).expect("os");
        set_signer_infos(sd, infos);
    });
    let err = cms::verify(&plain, &f.policy, &[]).expect_err("SHA-1");
    assert!(
        matches!(err, EnvelopeError::UnsupportedAlgorithm(_)),
        "{err:?}"
    );
}

#[test]
fn signer_certificate_with_unusable_key_is_malformed() {
    // A certificate named by the SignerInfo whose EC key has no named curve.
    let (f, der) = p256_signed();
    let spki = spki::SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: rfc5912::ID_EC_PUBLIC_KEY,
            parameters: None,
        },
        subject_public_key: der::asn1::BitString::from_bytes(&[4u8; 65]).expect("bits"),
    };
    let broken = make_cert(&f.key, &spki.to_der().expect("spki"), "broken key");
    let named = with_sid(
        &without_certificates(&der),
        SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: broken.tbs_certificate().issuer().clone(),
            serial_number: broken.tbs_certificate().serial_number().clone(),
        }),
    );
    assert_malformed(
        cms::verify(&named, &f.policy, &[broken]),
        "signer public key",
    );
}

#[test]
fn unsupported_digest_algorithm_is_reported() {
    let der = edit(&bytes(C_2_3), |sd| {
        let mut infos = signer_infos(sd);
        infos[0].digest_alg.oid = rfc5912::ID_SHA_1;
        set_signer_infos(sd, infos);
    });
    let err = cms::verify(&der, &policy(C_1_1), &[]).expect_err("SHA-1");
    assert!(
        matches!(err, EnvelopeError::UnsupportedAlgorithm(_)),
        "{err:?}"
    );
}

#[test]
fn unsupported_signature_algorithm_is_reported() {
    let der = edit(&bytes(C_2_3), |sd| {
        let mut infos = signer_infos(sd);
        infos[0].signature_algorithm.oid = ObjectIdentifier::new_unwrap("1.2.3.4");
        set_signer_infos(sd, infos);
    });
    let err = cms::verify(&der, &policy(C_1_1), &[]).expect_err("unknown algorithm");
    assert!(
        matches!(err, EnvelopeError::UnsupportedAlgorithm(_)),
        "{err:?}"
    );
}

#[test]
fn ec_public_key_as_signature_algorithm_uses_the_digest_algorithm() {
    let der = edit(&bytes(C_2_3), |sd| {
        let mut infos = signer_infos(sd);
        infos[0].signature_algorithm.oid = rfc5912::ID_EC_PUBLIC_KEY;
        set_signer_infos(sd, infos);
    });
    let v = cms::verify(&der, &policy(C_1_1), &[]).expect("verifies as ecdsa-with-SHA256");
    assert_eq!(v.payload, econtent("rfc8995/C.2.3-voucher.econtent.json"));
}

// ---------------------------------------------------------------------------------------------
// Malformed envelopes

#[test]
fn truncated_and_padded_input_is_malformed() {
    let der = bytes(C_2_3);
    assert_malformed(cms::verify(&der[..der.len() - 1], &policy(C_1_1), &[]), "");
    let mut padded = der.clone();
    padded.push(0);
    assert_malformed(cms::parse(&padded), "");
    assert_malformed(cms::parse(&[]), "");
    assert_malformed(cms::parse(b"{\"not\":\"cms\"}"), "");
}

#[test]
fn content_info_other_than_signed_data_is_malformed() {
    let der = bytes(C_2_3);
    let ci = ContentInfo::from_der(&der).expect("ci");
    let other = ContentInfo {
        content_type: oid::ID_DATA,
        content: ci.content,
    }
    .to_der()
    .expect("der");
    assert_malformed(cms::verify(&other, &policy(C_1_1), &[]), "id-signedData");
}

#[test]
fn unexpected_econtent_type_is_malformed() {
    let der = edit(&bytes(C_2_3), |sd| {
        sd.encap_content_info.econtent_type = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.5");
    });
    assert_malformed(cms::verify(&der, &policy(C_1_1), &[]), "eContentType");
    assert_malformed(cms::parse(&der), "eContentType");
}

#[test]
fn detached_content_is_malformed() {
    let der = edit(&bytes(C_2_3), |sd| sd.encap_content_info.econtent = None);
    assert_malformed(cms::verify(&der, &policy(C_1_1), &[]), "eContent");
}

#[test]
fn too_many_certificates_are_malformed() {
    let der = edit(&bytes(C_2_3), |sd| {
        let masa = CertificateChoices::Certificate(cert(C_1_2));
        let certs = vec![masa; cms::MAX_CERTIFICATES + 1];
        sd.certificates = Some(CertificateSet::try_from(certs).expect("set"));
    });
    assert_malformed(cms::verify(&der, &policy(C_1_1), &[]), "certificates");
    // At the limit it still verifies.
    let der = edit(&bytes(C_2_3), |sd| {
        let masa = CertificateChoices::Certificate(cert(C_1_2));
        let certs = vec![masa; cms::MAX_CERTIFICATES];
        sd.certificates = Some(CertificateSet::try_from(certs).expect("set"));
    });
    cms::verify(&der, &policy(C_1_1), &[]).expect("64 certificates are accepted");
}

#[test]
fn rfc5652_5_crls_unsigned_attributes_and_other_certificate_formats_are_ignored() {
    let der = edit(&bytes(C_2_3), |sd| {
        sd.crls = Some(RevocationInfoChoices(Default::default()));
        let mut certs: Vec<CertificateChoices> = sd
            .certificates
            .as_ref()
            .expect("certificates")
            .0
            .iter()
            .cloned()
            .collect();
        certs.push(CertificateChoices::Other(OtherCertificateFormat {
            other_cert_format: ObjectIdentifier::new_unwrap("1.2.3.4"),
            other_cert: any_of(&OctetString::new([1u8, 2, 3]).expect("os")),
        }));
        sd.certificates = Some(CertificateSet::try_from(certs).expect("set"));
        let mut infos = signer_infos(sd);
        infos[0].unsigned_attrs = Some(
            SetOfVec::try_from(vec![attr(
                ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14"),
                vec![any_of(&OctetString::new([5u8; 4]).expect("os"))],
            )])
            .expect("attrs"),
        );
        set_signer_infos(sd, infos);
    });
    let v = cms::verify(&der, &policy(C_1_1), &[]).expect("still verifies");
    assert_eq!(v.payload, econtent("rfc8995/C.2.3-voucher.econtent.json"));
    assert_eq!(
        cms::parse(&der).expect("parses").certificates,
        vec![cert(C_1_2)]
    );
}

#[test]
fn no_signer_info_is_malformed() {
    let der = edit(&bytes(C_2_3), |sd| set_signer_infos(sd, vec![]));
    assert_malformed(cms::verify(&der, &policy(C_1_1), &[]), "no SignerInfo");
    assert_malformed(cms::parse(&der), "no SignerInfo");
}

// ---------------------------------------------------------------------------------------------
// Interoperability with OpenSSL

#[test]
fn openssl_verifies_what_we_sign() {
    for alg in [
        SignatureAlgorithm::EcdsaP256Sha256,
        SignatureAlgorithm::EcdsaP384Sha384,
    ] {
        let f = fixture(alg);
        let der = cms::sign(PAYLOAD, &f.key, &f.chain).expect("sign");
        let (ok, out) = openssl_verify(&der, &f.anchor_pem);
        assert!(ok, "{alg:?}: openssl cms -verify failed");
        assert_eq!(out, PAYLOAD, "{alg:?}");

        let (ok, _) = openssl_verify(&flip_inside(&der, PAYLOAD), &f.anchor_pem);
        assert!(!ok, "{alg:?}: openssl accepted tampered content");
        let (ok, _) = openssl_verify(&flip_signature(&der), &f.anchor_pem);
        assert!(!ok, "{alg:?}: openssl accepted a tampered signature");
    }
}

/// Run openssl with `args`, returning whether it succeeded and its standard output.
fn openssl_run(args: &[&std::ffi::OsStr]) -> (bool, Vec<u8>) {
    let out = openssl().args(args).output().expect("run openssl");
    eprintln!("openssl: {}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), out.stdout)
}

#[test]
fn openssl_verifies_our_ed25519_signature_and_digest() {
    // `openssl cms -verify` cannot check Ed25519 SignerInfos with signed attributes (OpenSSL
    // issues 11915, 32248), so OpenSSL checks the parts: it parses the CMS, the Ed25519
    // signature over the DER signed attributes verifies with the certificate's key (RFC 8419
    // §3.1), and messageDigest is the SHA-512 of the content.
    let f = fixture(SignatureAlgorithm::Ed25519);
    let der = cms::sign(PAYLOAD, &f.key, &f.chain).expect("sign");
    let sd: SignedData = ContentInfo::from_der(&der)
        .expect("ci")
        .content
        .decode_as()
        .expect("sd");
    let si = &signer_infos(&sd)[0];
    let attrs = si.signed_attrs.as_ref().expect("signed attributes");
    let message_digest = attrs
        .iter()
        .find(|a| a.oid == rfc5911::ID_MESSAGE_DIGEST)
        .and_then(|a| a.values.iter().next())
        .expect("messageDigest")
        .value()
        .to_vec();

    let tmp = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| tmp.path().join(name);
    std::fs::write(path("cms.der"), &der).expect("write");
    std::fs::write(path("attrs.der"), attrs.to_der().expect("attrs")).expect("write");
    std::fs::write(path("sig.bin"), si.signature.as_bytes()).expect("write");
    let mut bad_sig = si.signature.as_bytes().to_vec();
    bad_sig[10] ^= 0x01;
    std::fs::write(path("bad-sig.bin"), bad_sig).expect("write");
    std::fs::write(path("payload"), PAYLOAD).expect("write");
    std::fs::write(path("cert.pem"), &f.anchor_pem).expect("write");
    let (ok, pubkey) = openssl_run(&[
        "x509".as_ref(),
        "-in".as_ref(),
        path("cert.pem").as_os_str(),
        "-noout".as_ref(),
        "-pubkey".as_ref(),
    ]);
    assert!(ok, "openssl x509 -pubkey");
    std::fs::write(path("pub.pem"), pubkey).expect("write");

    let (ok, _) = openssl_run(&[
        "cms".as_ref(),
        "-cmsout".as_ref(),
        "-print".as_ref(),
        "-inform".as_ref(),
        "DER".as_ref(),
        "-in".as_ref(),
        path("cms.der").as_os_str(),
    ]);
    assert!(ok, "openssl parses the CMS");

    let verify_sig = |sig: &str| {
        openssl_run(&[
            "pkeyutl".as_ref(),
            "-verify".as_ref(),
            "-pubin".as_ref(),
            "-inkey".as_ref(),
            path("pub.pem").as_os_str(),
            "-rawin".as_ref(),
            "-in".as_ref(),
            path("attrs.der").as_os_str(),
            "-sigfile".as_ref(),
            path(sig).as_os_str(),
        ])
        .0
    };
    assert!(
        verify_sig("sig.bin"),
        "openssl verifies the Ed25519 signature"
    );
    assert!(
        !verify_sig("bad-sig.bin"),
        "openssl rejects a tampered signature"
    );

    let (ok, sha512) = openssl_run(&[
        "dgst".as_ref(),
        "-sha512".as_ref(),
        "-binary".as_ref(),
        path("payload").as_os_str(),
    ]);
    assert!(ok, "openssl dgst");
    assert_eq!(sha512, message_digest);
}

#[test]
fn openssl_verifies_a_signed_chain_and_rejects_a_foreign_anchor() {
    let der = cms::sign(PAYLOAD, &key(C_1_2_KEY), &[cert(C_1_2), cert(C_1_1)]).expect("sign");
    let (ok, out) = openssl_verify(&der, &anchor_file_pem(C_1_1));
    assert!(ok);
    assert_eq!(out, PAYLOAD);
    let (ok, _) = openssl_verify(&der, &anchor_file_pem(C_1_3));
    assert!(!ok, "openssl accepted a voucher under the wrong anchor");
}

fn assert_verifies_openssl_output(der: &[u8], p: &TrustPolicy, signer: &str) {
    let v = cms::verify(der, p, &[]).expect("OpenSSL-made CMS verifies");
    assert_eq!(v.payload, PAYLOAD);
    assert_eq!(v.signer(), Some(&cert(signer)));
}

#[test]
fn openssl_signed_id_data_verifies() {
    // OpenSSL's default: id-data, v1, signed attributes incl. smimeCapabilities.
    let der = openssl_sign(C_1_2, C_1_2_KEY, &[]);
    assert_verifies_openssl_output(&der, &policy(C_1_1), C_1_2);
}

#[test]
fn openssl_signed_anima_json_voucher_verifies() {
    let der = openssl_sign(
        C_1_2,
        C_1_2_KEY,
        &["-econtent_type", "1.2.840.113549.1.9.16.1.40"],
    );
    assert_verifies_openssl_output(&der, &policy(C_1_1), C_1_2);
}

#[test]
fn openssl_signed_with_subject_key_identifier_verifies() {
    let der = openssl_sign(C_1_3, C_1_3_KEY, &["-keyid"]);
    let sd: SignedData = ContentInfo::from_der(&der)
        .expect("ci")
        .content
        .decode_as()
        .expect("sd");
    assert!(matches!(
        signer_infos(&sd)[0].sid,
        SignerIdentifier::SubjectKeyIdentifier(_)
    ));
    assert_verifies_openssl_output(&der, &policy(C_1_3), C_1_3);
}

#[test]
fn openssl_signed_without_attributes_verifies_for_id_data_only() {
    let der = openssl_sign(C_1_2, C_1_2_KEY, &["-noattr"]);
    assert_verifies_openssl_output(&der, &policy(C_1_1), C_1_2);
    let der = openssl_sign(
        C_1_2,
        C_1_2_KEY,
        &["-noattr", "-econtent_type", "1.2.840.113549.1.9.16.1.40"],
    );
    assert_malformed(cms::verify(&der, &policy(C_1_1), &[]), "signed attributes");
}

#[test]
fn openssl_signed_rsa_verifies() {
    // OpenSSL names rsaEncryption as the signature algorithm (RFC 3370 §3.2).
    let der = openssl_sign(RSA_CA, RSA_CA_KEY, &[]);
    assert_verifies_openssl_output(&der, &policy(RSA_CA), RSA_CA);
}

#[test]
fn openssl_accepts_the_published_voucher_too() {
    // Sanity check of the harness itself on C.2.3.
    let (ok, out) = openssl_verify(&bytes(C_2_3), &anchor_file_pem(C_1_1));
    assert!(ok);
    assert_eq!(out, econtent("rfc8995/C.2.3-voucher.econtent.json"));
    assert!(Path::new(&dir()).is_dir());
}

// ---------------------------------------------------------------------------------------------
// Robustness: no input makes the decoder panic

fn vectors() -> Vec<Vec<u8>> {
    vec![bytes(C_2_1), bytes(C_2_2), bytes(C_2_3)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let p = policy(C_1_1);
        let _ = cms::parse(&data);
        let _ = cms::verify(&data, &p, &[]);
        let _ = cms::signing_time(&data);
    }

    #[test]
    fn der_shaped_random_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        // A SEQUENCE header in front gets random bytes past the first check.
        let mut data = vec![0x30, 0x82, (body.len() >> 8) as u8, body.len() as u8];
        data.extend(body);
        let _ = cms::parse(&data);
        let _ = cms::verify(&data, &policy(C_1_1), &[]);
    }

    #[test]
    fn mutated_vectors_never_panic_nor_change_the_payload(
        which in 0usize..3,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let anchors = [C_1_1, C_1_3, C_1_1];
        let original = vectors().swap_remove(which);
        let payload = cms::parse(&original).expect("vector parses").payload;
        let mut data = original.clone();
        for (at, byte) in flips {
            let i = at.index(data.len());
            data[i] = byte;
        }
        if let Some(cut) = cut {
            data.truncate(cut.index(data.len() + 1));
        }
        let _ = cms::parse(&data);
        let _ = cms::signing_time(&data);
        if let Ok(v) = cms::verify(&data, &policy(anchors[which]), &[]) {
            // Whatever was changed, a verified payload is the signed one.
            prop_assert_eq!(v.payload, payload);
        }
    }
}
