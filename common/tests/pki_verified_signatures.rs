//! The memory of verified certificate signatures (`pki::chain::verified`): a remembered
//! signature never lets a different certificate, a different issuer key or an expired
//! certificate through, and the memory stays bounded.

use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::chain::{ChainError, remembered, signed_by, verified, verify_issued_by};
use brski_common::pki::{
    CertificateParams, NotAfter, TimeCheck, TrustPolicy, issue, parse_name, profile, self_signed,
    validate_chain,
};
use der::{Decode, Encode};
use time::{Duration, OffsetDateTime};
use x509_cert::Certificate;

fn key() -> SoftwareKey {
    SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key")
}

fn ca(key: &SoftwareKey) -> Certificate {
    self_signed(
        &profile::domain_ca(parse_name("CN=Domain CA,O=Owner").expect("name")).expect("params"),
        key,
    )
    .expect("CA")
}

fn leaf(ca: &Certificate, ca_key: &SoftwareKey, params: &CertificateParams) -> Certificate {
    issue(params, key().public_key_spki(), Some(ca), ca_key).expect("issue")
}

fn ldevid_params(cn: &str) -> CertificateParams {
    profile::ldevid(parse_name(&format!("CN={cn},O=Owner")).expect("name")).expect("params")
}

/// `cert` with the last octet of its serial number changed, the signature kept.
fn with_other_serial(cert: &Certificate) -> Certificate {
    let mut der = cert.to_der().expect("der");
    let serial = cert.tbs_certificate().serial_number().as_bytes().to_vec();
    let at = der
        .windows(serial.len())
        .position(|w| w == serial.as_slice())
        .expect("serial in DER")
        + serial.len()
        - 1;
    der[at] ^= 0x01;
    Certificate::from_der(&der).expect("still a certificate")
}

#[test]
fn rfc5280_6_1_3_remembered_signature_does_not_cover_a_changed_certificate() {
    let ca_key = key();
    let ca = ca(&ca_key);
    let cert = leaf(&ca, &ca_key, &ldevid_params("a"));
    verify_issued_by(&cert, &ca).expect("verifies");
    // Remembered now: checking again still succeeds.
    assert!(signed_by(&cert, &ca));
    // The same signature over another TBSCertificate must be checked, and fails.
    let forged = with_other_serial(&cert);
    assert_ne!(forged.to_der().expect("der"), cert.to_der().expect("der"));
    assert!(!signed_by(&forged, &ca));
    assert!(verify_issued_by(&forged, &ca).is_err());
    let policy = TrustPolicy::new(vec![ca.clone()]);
    assert_eq!(
        validate_chain(&forged, &[], &policy).expect_err("forged"),
        ChainError::Untrusted {
            subject: "CN=a,O=Owner".into()
        }
    );
    // And the failure is not remembered as a success either.
    assert!(!signed_by(&forged, &ca));
}

#[test]
fn rfc5280_6_1_3_remembered_signature_does_not_cover_another_issuer_key() {
    let ca_key = key();
    let ca = ca(&ca_key);
    let cert = leaf(&ca, &ca_key, &ldevid_params("b"));
    assert!(signed_by(&cert, &ca));
    // Another CA under the same name with another key: the issuer name matches, the key does not.
    let impostor = self::ca(&key());
    assert_eq!(
        impostor.tbs_certificate().subject(),
        ca.tbs_certificate().subject()
    );
    assert!(!signed_by(&cert, &impostor));
    let policy = TrustPolicy::new(vec![impostor]);
    assert!(matches!(
        validate_chain(&cert, &[], &policy),
        Err(ChainError::Untrusted { .. })
    ));
}

#[test]
fn rfc5280_4_1_2_5_remembered_signature_does_not_skip_the_validity_check() {
    let ca_key = key();
    let ca = ca(&ca_key);
    let mut params = ldevid_params("c");
    let not_after = OffsetDateTime::now_utc() + Duration::days(1);
    params.not_after = NotAfter::At(not_after);
    let cert = leaf(&ca, &ca_key, &params);
    let policy = TrustPolicy::new(vec![ca.clone()]);
    validate_chain(&cert, &[], &policy).expect("valid today");
    let later = policy.with_time(TimeCheck::At(not_after + Duration::days(1)));
    assert!(matches!(
        validate_chain(&cert, &[], &later),
        Err(ChainError::Expired { .. })
    ));
}

#[test]
fn memory_stays_within_its_capacity() {
    let ca_key = key();
    let ca = ca(&ca_key);
    let params = ldevid_params("d");
    let first = leaf(&ca, &ca_key, &params);
    assert!(signed_by(&first, &ca));
    for _ in 0..verified::CAPACITY + 16 {
        assert!(signed_by(&leaf(&ca, &ca_key, &params), &ca));
        assert!(verified::len() <= verified::CAPACITY);
    }
    // The oldest entry was forgotten, and the certificate still verifies the slow way.
    assert!(signed_by(&first, &ca));
}

#[test]
fn an_issued_certificate_is_remembered_as_verified_by_its_issuer_only() {
    let ca_key = key();
    let issuer = ca(&ca_key);
    let cert = leaf(&issuer, &ca_key, &ldevid_params("issued"));
    // `issue` checked its own signature: validating the certificate later costs no
    // public-key operation.
    assert!(remembered(&cert, &issuer));
    assert!(!remembered(&cert, &ca(&key())));
    assert!(!remembered(&with_other_serial(&cert), &issuer));
}
