//! RFC 5280 §6 path validation on the RFC 8995 Appendix C certificates (all expired, so time
//! checks are off except where expiry is the point).

use super::chain::*;
use crate::test_vectors::cert;

fn anchors(files: &[&str]) -> TrustPolicy {
    TrustPolicy::new(files.iter().map(|f| cert(f)).collect()).with_time(TimeCheck::Skip)
}

#[test]
fn rfc8995_c_1_2_masa_cert_chains_to_c_1_1() {
    let masa = cert("rfc8995/C.1.2-masa.crt.pem");
    let policy = anchors(&["rfc8995/C.1.1-manufacturer-ca.crt.pem"]);
    let path = validate_chain(&masa, &[], &policy).expect("MASA chains to manufacturer CA");
    assert_eq!(path.len(), 2);
}

#[test]
fn rfc8995_c_1_5_idevid_does_not_chain_to_c_1_1() {
    let idevid = cert("rfc8995/C.1.5-pledge-idevid.crt.pem");
    let err = validate_chain(
        &idevid,
        &[],
        &anchors(&["rfc8995/C.1.1-manufacturer-ca.crt.pem"]),
    )
    .expect_err("C.1.5 is signed by the RSA CA of the same name");
    assert!(matches!(err, ChainError::Untrusted { .. }), "{err:?}");
    // ...and it does chain to the RSA-3072 CA that really issued it.
    validate_chain(
        &idevid,
        &[],
        &anchors(&["rfc8366bis/A.1-vendor-ca-rsa.crt.pem"]),
    )
    .expect("C.1.5 chains to the RSA CA");
}

#[test]
fn expired_certificate_is_rejected_when_time_is_checked() {
    let masa = cert("rfc8995/C.1.2-masa.crt.pem");
    let policy = anchors(&["rfc8995/C.1.1-manufacturer-ca.crt.pem"]).with_time(TimeCheck::Now);
    let err = validate_chain(&masa, &[], &policy).expect_err("expired");
    assert!(matches!(err, ChainError::Expired { .. }), "{err:?}");
}

#[test]
fn registrar_cert_has_cmc_ra_and_masa_cert_does_not() {
    let cmc_ra = crate::oid::ID_KP_CMC_RA;
    let reg = cert("rfc8995/C.1.4-registrar.crt.pem");
    validate_chain(
        &reg,
        &[],
        &anchors(&["rfc8995/C.1.3-owner-ca.crt.pem"]).with_required_eku(cmc_ra),
    )
    .expect("registrar has id-kp-cmcRA");
    let masa = cert("rfc8995/C.1.2-masa.crt.pem");
    let err = validate_chain(
        &masa,
        &[],
        &anchors(&["rfc8995/C.1.1-manufacturer-ca.crt.pem"]).with_required_eku(cmc_ra),
    )
    .expect_err("MASA cert has no cmcRA");
    assert!(matches!(err, ChainError::MissingEku { .. }), "{err:?}");
}

#[test]
fn a_certificate_whose_key_is_an_anchor_is_trusted_directly() {
    let reg = cert("rfc8995/C.1.4-registrar.crt.pem");
    let policy = anchors(&["rfc8995/C.1.4-registrar.crt.pem"]);
    let path = validate_chain(&reg, &[], &policy).expect("pinned EE");
    assert_eq!(path.len(), 1);
}

#[test]
fn chains_to_decides_as_validate_chain_does() {
    let masa = cert("rfc8995/C.1.2-masa.crt.pem");
    let idevid = cert("rfc8995/C.1.5-pledge-idevid.crt.pem");
    let manufacturer = anchors(&["rfc8995/C.1.1-manufacturer-ca.crt.pem"]);
    let cases = [
        (&masa, manufacturer.clone(), true),
        // Signed by another CA of the same name.
        (&idevid, manufacturer.clone(), false),
        (&masa, manufacturer.clone().with_time(TimeCheck::Now), false),
        (
            &masa,
            manufacturer.with_required_eku(crate::oid::ID_KP_CMC_RA),
            false,
        ),
    ];
    for (leaf, policy, valid) in cases {
        assert_eq!(chains_to(leaf, &[], &policy), valid);
        assert_eq!(validate_chain(leaf, &[], &policy).is_ok(), valid);
    }
}
