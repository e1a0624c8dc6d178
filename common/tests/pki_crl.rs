//! RFC 5280 §5 CRLs and §4.2.1.13 CRL distribution points, sans-I/O (`pki::crl`), as the MASA
//! uses them for the registrar's chain (RFC 8995 §5.5.3).

use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::crl::{
    CrlError, RevocationError, build_crl, crl_checks, distribution_point_extension,
    distribution_points, verify_crl,
};
use brski_common::pki::{issue, name_from_parts, profile, self_signed};
use time::{Duration, OffsetDateTime};
use x509_cert::Certificate;

fn key() -> SoftwareKey {
    SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key")
}

fn make_ca(cn: &str, key: &SoftwareKey) -> Certificate {
    let p = profile::domain_ca(name_from_parts(Some(cn), None, None).expect("name")).expect("p");
    self_signed(&p, key).expect("CA")
}

fn leaf(ca: &Certificate, ca_key: &SoftwareKey, uris: &[&str]) -> Certificate {
    let mut p =
        profile::ldevid(name_from_parts(Some("leaf"), None, None).expect("name")).expect("p");
    for uri in uris {
        p.extra_extensions
            .push(distribution_point_extension(uri).expect("CRL DP"));
    }
    issue(&p, key().public_key_spki(), Some(ca), ca_key).expect("leaf")
}

fn serial(c: &Certificate) -> Vec<u8> {
    c.tbs_certificate().serial_number().as_bytes().to_vec()
}

#[test]
fn rfc5280_4_2_1_13_http_distribution_points_are_listed() {
    let k = key();
    let ca = make_ca("CRL CA", &k);
    assert!(distribution_points(&ca).expect("none").is_empty());
    let c = leaf(&ca, &k, &["http://crl.example/ca.crl"]);
    assert_eq!(
        distribution_points(&c).expect("dp"),
        vec!["http://crl.example/ca.crl".to_string()]
    );
    // Only http URIs are fetched.
    let c = leaf(&ca, &k, &["ldap://crl.example/cn=ca"]);
    assert!(distribution_points(&c).expect("dp").is_empty());
}

#[test]
fn rfc5280_5_listed_serials_are_revoked_and_others_not() {
    let k = key();
    let ca = make_ca("CRL CA", &k);
    let (a, b) = (leaf(&ca, &k, &[]), leaf(&ca, &k, &[]));
    let now = OffsetDateTime::now_utc();
    let der = build_crl(&ca, &k, &[&serial(&a)], now, Some(now + Duration::hours(1))).expect("CRL");
    let crl = verify_crl(&der, &ca, now).expect("verifies");
    assert!(crl.is_revoked(&a));
    assert!(!crl.is_revoked(&b));
    assert!(crl.next_update.is_some());
    // An empty CRL revokes nothing.
    let der = build_crl(&ca, &k, &[], now, None).expect("CRL");
    assert!(!verify_crl(&der, &ca, now).expect("verifies").is_revoked(&a));
}

#[test]
fn rfc5280_6_3_3_unusable_crls_are_refused() {
    let k = key();
    let ca = make_ca("CRL CA", &k);
    let now = OffsetDateTime::now_utc();
    // Signed with another key under the CA's name.
    let der = build_crl(&ca, &key(), &[], now, None).expect("CRL");
    assert!(matches!(
        verify_crl(&der, &ca, now),
        Err(CrlError::BadSignature(_))
    ));
    // Issued by another CA.
    let other_key = key();
    let other = make_ca("Other CA", &other_key);
    let der = build_crl(&other, &other_key, &[], now, None).expect("CRL");
    assert!(matches!(
        verify_crl(&der, &ca, now),
        Err(CrlError::WrongIssuer { .. })
    ));
    // Past its nextUpdate.
    let der = build_crl(
        &ca,
        &k,
        &[],
        now - Duration::hours(2),
        Some(now - Duration::hours(1)),
    )
    .expect("CRL");
    assert!(matches!(
        verify_crl(&der, &ca, now),
        Err(CrlError::Stale(_))
    ));
    // Not a CRL; trailing bytes.
    assert!(matches!(
        verify_crl(b"junk", &ca, now),
        Err(CrlError::Malformed(_))
    ));
    let mut der = build_crl(&ca, &k, &[], now, None).expect("CRL");
    der.push(0);
    assert!(matches!(
        verify_crl(&der, &ca, now),
        Err(CrlError::Malformed(_))
    ));
}

#[test]
fn rfc8366bis_8_4_demanded_revocation_checks_need_a_crl_for_every_issued_certificate() {
    let k = key();
    let ca = make_ca("CRL CA", &k);
    let with_dp = leaf(&ca, &k, &["http://crl.example/ca.crl"]);
    let without = leaf(&ca, &k, &[]);
    // One CRL, verified with the issuer found in the chain; the self-signed CA needs none.
    let chain = [with_dp.clone(), ca.clone()];
    let checks = crl_checks(&chain, true).expect("checks");
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].cert, &with_dp);
    assert_eq!(checks[0].issuer, &ca);
    assert_eq!(
        checks[0].uris,
        vec!["http://crl.example/ca.crl".to_string()]
    );
    // Demanded: a certificate naming no distribution point cannot be checked.
    let chain = [without.clone(), ca.clone()];
    assert_eq!(
        crl_checks(&chain, true).map(|c| c.len()),
        Err(RevocationError::Unknown {
            subject: "CN=leaf".into(),
            reason: "it names no http CRL distribution point".into()
        })
    );
    // Not demanded (the MASA's "if they are present", RFC 8995 §5.5.3): nothing to check.
    assert!(crl_checks(&chain, false).expect("checks").is_empty());
    // A CRL whose issuer is not presented cannot be verified.
    assert_eq!(
        crl_checks(std::slice::from_ref(&with_dp), false).map(|c| c.len()),
        Err(RevocationError::Unknown {
            subject: "CN=leaf".into(),
            reason: "its issuer is not in the chain, so its CRL cannot be verified".into()
        })
    );
}
