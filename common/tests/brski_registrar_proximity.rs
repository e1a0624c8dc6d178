//! RFC 8995 §5.2/§5.3: the registrar's proximity checks of a pledge voucher-request:
//! `assertion` must be `proximity` when present, `proximity-registrar-cert` must be the
//! registrar's own certificate, and every proximity failure is 401.

use brski_common::brski::registrar::{PledgeRequestError, check_pledge_voucher_request};
use brski_common::envelope::{self, Format};
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::chain::TrustPolicy;
use brski_common::pki::{issue, name_from_parts, profile, self_signed};
use brski_common::voucher::{Assertion, VoucherRequest};
use der::Encode;
use x509_cert::Certificate;

fn key() -> SoftwareKey {
    SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key")
}

struct World {
    vendor: Certificate,
    idevid_key: SoftwareKey,
    idevid: Certificate,
    registrar_der: Vec<u8>,
}

fn world() -> World {
    let vendor_key = key();
    let vendor = self_signed(
        &profile::vendor_ca(name_from_parts(Some("Vendor"), None, None).expect("n")).expect("p"),
        &vendor_key,
    )
    .expect("ca");
    let idevid_key = key();
    let idevid = issue(
        &profile::idevid("SN-PROX", Some("masa.example:9443"), None).expect("p"),
        idevid_key.public_key_spki(),
        Some(&vendor),
        &vendor_key,
    )
    .expect("idevid");
    let domain_key = key();
    let domain = self_signed(
        &profile::domain_ca(name_from_parts(Some("Domain"), None, None).expect("n")).expect("p"),
        &domain_key,
    )
    .expect("domain");
    let reg_key = key();
    let registrar = issue(
        &profile::registrar(
            name_from_parts(Some("registrar"), None, None).expect("n"),
            &["registrar.example"],
            &[],
        )
        .expect("p"),
        reg_key.public_key_spki(),
        Some(&domain),
        &domain_key,
    )
    .expect("registrar");
    World {
        vendor,
        idevid_key,
        idevid,
        registrar_der: registrar.to_der().expect("der"),
    }
}

fn signed(w: &World, format: Format, assertion: Option<Assertion>, prox: &[u8]) -> Vec<u8> {
    let mut r = VoucherRequest::new("SN-PROX");
    r.assertion = assertion;
    r.proximity_registrar_cert = Some(prox.to_vec());
    let payload = r.to_payload(format).expect("payload");
    envelope::sign(
        format,
        &payload,
        &w.idevid_key,
        std::slice::from_ref(&w.idevid),
    )
    .expect("sign")
}

fn check(w: &World, format: Format, body: &[u8]) -> Result<(), PledgeRequestError> {
    check_pledge_voucher_request(
        format,
        body,
        std::slice::from_ref(&w.idevid),
        &w.registrar_der,
        &TrustPolicy::new(vec![w.vendor.clone()]),
    )
    .map(|_| ())
}

#[test]
fn rfc8995_5_2_assertion_other_than_proximity_is_a_401_proximity_failure() {
    let w = world();
    for format in [Format::Cms, Format::Jws] {
        for bad in [
            Assertion::Verified,
            Assertion::Logged,
            Assertion::AgentProximity,
        ] {
            let body = signed(&w, format, Some(bad), &w.registrar_der);
            let err = check(&w, format, &body).expect_err("not proximity");
            assert!(
                matches!(&err, PledgeRequestError::AssertionNotProximity(a) if a == bad.as_str()),
                "{format:?} {bad:?}: {err:?}"
            );
            assert_eq!(err.status(), 401);
            assert!(err.is_proximity_failure());
        }
        let body = signed(&w, format, Some(Assertion::Proximity), &w.registrar_der);
        check(&w, format, &body).expect("proximity accepted");
    }
}

#[test]
fn rfc8995_5_2_absent_assertion_is_accepted_as_in_the_rfc_examples() {
    let w = world();
    for format in [Format::Cms, Format::Jws] {
        let body = signed(&w, format, None, &w.registrar_der);
        check(&w, format, &body).expect("no assertion leaf, as the JWS examples");
    }
}

#[test]
fn rfc8995_5_3_proximity_registrar_cert_of_another_registrar_is_401() {
    let w = world();
    let mut other = w.registrar_der.clone();
    let last = other.len() - 1;
    other[last] ^= 0x01;
    let body = signed(&w, Format::Cms, Some(Assertion::Proximity), &other);
    let err = check(&w, Format::Cms, &body).expect_err("mismatch");
    assert!(
        matches!(err, PledgeRequestError::ProximityMismatch),
        "{err:?}"
    );
    assert_eq!(err.status(), 401);
    assert!(err.is_proximity_failure());
}
