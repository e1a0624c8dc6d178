//! The cBRSKI App. C examples through the code that consumes them: the registrar's check of the
//! C.3 PVR (RFC 8995 §5.3), the MASA's check of the C.4 RVR (§5.5), the pledge's acceptance of
//! the C.5 voucher (§5.6.1). The envelopes alone are checked in `cose_envelope.rs`.

mod support;

use brski_common::brski::{masa, pledge, registrar};
use brski_common::envelope::{EnvelopeError, Format, cose};
use brski_common::pki::chain::{ChainError, TimeCheck, TrustPolicy};
use brski_common::pki::ext::idevid_issuer;
use brski_common::test_vectors::{bytes, cert};
use brski_common::voucher::{Pin, PinForm, PledgeExpectations, VoucherCheckError, VoucherRequest};
use ciborium::Value;
use der::Encode;
use x509_cert::Certificate;

fn pvr() -> Vec<u8> {
    bytes("cbrski/C.3-pvr.cose.hex")
}
fn rvr() -> Vec<u8> {
    bytes("cbrski/C.4-rvr.cose.hex")
}
fn voucher() -> Vec<u8> {
    bytes("cbrski/C.5-voucher.cose.hex")
}
fn pledge_cert() -> Certificate {
    cert("cbrski/C-pledge.crt.pem")
}
fn registrar_cert() -> Certificate {
    cert("cbrski/C-registrar.crt.pem")
}
fn manufacturer(time: TimeCheck) -> TrustPolicy {
    TrustPolicy::new(vec![cert("cbrski/C-masa_ca.crt.pem")]).with_time(time)
}
fn spki(c: &Certificate) -> Vec<u8> {
    c.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .expect("SPKI")
}

/// C.4 with `extra` added to its unprotected x5bag (the signature still verifies).
fn rvr_with(extra: &Certificate) -> Vec<u8> {
    support::edit_x5bag(&rvr(), |bag| {
        bag.push(Value::Bytes(extra.to_der().expect("DER")));
    })
}

/// The registrar's check of C.3 from a TLS client with `client`, at a registrar with
/// `registrar`'s certificate (RFC 8995 §5.3).
fn at_registrar(
    client: Certificate,
    registrar: &Certificate,
    time: TimeCheck,
) -> Result<registrar::CheckedPledgeRequest, registrar::PledgeRequestError> {
    registrar::check_pledge_voucher_request(
        Format::Cose,
        &pvr(),
        &[client],
        &registrar.to_der().expect("DER"),
        &manufacturer(time),
    )
}

/// The MASA's check of C.4 with the pledge's certificate added to its x5bag, clocks off.
fn at_masa_with_pledge_in_bag() -> masa::CheckedRegistrarRequest {
    masa::check_registrar_voucher_request(
        Format::Cose,
        &rvr_with(&pledge_cert()),
        &manufacturer(TimeCheck::Skip),
        TimeCheck::Skip,
        true,
    )
    .expect("the MASA finds both signers in the x5bag")
}

// ---------------------------------------------------------------------------------------------
// C.3 at the registrar (RFC 8995 §5.3; cBRSKI §9.2.2)

#[test]
fn cbrski_c_3_pvr_is_accepted_by_the_registrar_it_names() {
    // The DTLS client certificate identifies the pledge (the PVR carries none); clocks on: the
    // IDevID (to 9999) and C-masa_ca (to 2032) are current.
    let checked = at_registrar(pledge_cert(), &registrar_cert(), TimeCheck::Now)
        .expect("the registrar accepts C.3");
    assert_eq!(checked.serial_number, "JADA123456789");
    assert_eq!(checked.raw, pvr());
    assert_eq!(checked.idevid(), Some(&pledge_cert()));
    // C.3 names the registrar by its key (`proximity-registrar-pubk`, cBRSKI §9).
    assert_eq!(checked.request.proximity_form(), Some(PinForm::Pubk));
    assert_eq!(
        checked.request.proximity_registrar_pubk,
        Some(spki(&registrar_cert()))
    );
}

#[test]
fn cbrski_c_3_pvr_is_refused_by_another_registrar_and_from_another_client() {
    let another = cert("rfc8995/C.1.4-registrar.crt.pem");
    let err =
        at_registrar(pledge_cert(), &another, TimeCheck::Now).expect_err("another registrar's key");
    assert!(
        matches!(err, registrar::PledgeRequestError::ProximityMismatch),
        "{err:?}"
    );
    assert_eq!(err.status(), 401);

    // A client whose certificate the manufacturer did not issue.
    let err = at_registrar(registrar_cert(), &registrar_cert(), TimeCheck::Skip)
        .expect_err("not an IDevID");
    assert!(
        matches!(err, registrar::PledgeRequestError::UnknownManufacturer(_)),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// C.4 at the MASA (RFC 8995 §5.5; cBRSKI §8.1, §9.2.1)

#[test]
fn cbrski_c_4_rvr_is_refused_with_clocks_on_the_registrar_certificate_expired() {
    // The x5bag's registrar certificate was valid until 2025-12-05 11:37:59 UTC.
    let err = masa::verify_registrar_voucher_request(Format::Cose, &rvr(), TimeCheck::Now)
        .expect_err("expired registrar certificate");
    let masa::RegistrarRequestError::Signature(EnvelopeError::Untrusted(ChainError::Expired {
        subject,
        not_after,
    })) = &err
    else {
        panic!("expected an expired registrar certificate, got {err:?}")
    };
    assert!(
        subject.contains("Custom-ER Commercial Buildings Registrar"),
        "{subject}"
    );
    assert!(not_after.starts_with("2025-12-05"), "{not_after}");
    assert_eq!(err.status(), 403);
}

#[test]
fn cbrski_c_4_rvr_as_published_lacks_the_pledge_chain_in_its_x5bag() {
    // cBRSKI -31 §8.1/§9.2.1 puts the pledge's chain in the RVR's x5bag; the C.4 example
    // predates that (its bag is the registrar's two certificates), and the C.3 PVR carries no
    // certificate, so a MASA that relies on the bag finds no signer for the PVR.
    let bag = cose::parse(&rvr()).expect("parse").certificates;
    assert_eq!(bag.len(), 2);
    assert!(!bag.contains(&pledge_cert()));
    let err = masa::check_registrar_voucher_request(
        Format::Cose,
        &rvr(),
        &manufacturer(TimeCheck::Skip),
        TimeCheck::Skip,
        true,
    )
    .expect_err("no PVR signer in the x5bag");
    assert!(
        matches!(
            err,
            masa::RegistrarRequestError::UnknownDevice(EnvelopeError::BadSignature)
        ),
        "{err:?}"
    );
    assert_eq!(err.status(), 404);
}

/// The checks the MASA makes of a C.4 request it accepted.
fn assert_c_4_accepted(checked: &masa::CheckedRegistrarRequest) {
    let bag = cose::parse(&rvr()).expect("parse").certificates;
    assert_eq!(checked.format, Format::Cose);
    assert_eq!(checked.serial_number, "JADA123456789");
    assert_eq!(checked.idevid.as_ref(), Some(&pledge_cert()));
    assert_eq!(
        checked.request.idevid_issuer,
        Some(idevid_issuer(&pledge_cert()))
    );
    // The registrar signer and the top of its chain, both found in the x5bag.
    assert_eq!(checked.registrar_chain, bag);
    // The PVR named the registrar's key, which the bag's registrar certificate carries.
    assert!(checked.proximity);
    assert_eq!(checked.proximity_form, Some(PinForm::Pubk));
}

#[test]
fn cbrski_c_4_rvr_with_the_pledge_certificate_in_its_x5bag_is_accepted() {
    assert_c_4_accepted(&at_masa_with_pledge_in_bag());
}

#[test]
fn cbrski_c_4_rvr_is_accepted_by_a_masa_that_knows_the_pledge_idevid() {
    // The MASA's own record of the device supplies the PVR's signer (RFC 8995 §5.5.5).
    let known = pledge_cert();
    let manufacturer = manufacturer(TimeCheck::Skip);
    let checked = masa::verify_registrar_voucher_request(Format::Cose, &rvr(), TimeCheck::Skip)
        .expect("the registrar's signature verifies")
        .check_pledge_request(
            masa::PledgeIdevid::Known {
                idevid: &known,
                manufacturer: &manufacturer,
            },
            true,
        )
        .expect("the PVR verifies with the known IDevID");
    assert_c_4_accepted(&checked);
}

#[test]
fn cbrski_c_4_voucher_pins_the_registrar_key_and_the_ca_of_c_5() {
    let checked = at_masa_with_pledge_in_bag();
    // cBRSKI §8.3: C.3 asked by key, so the voucher pins the registrar's key.
    assert_eq!(
        checked.pin(None).expect("pin"),
        Pin::DomainPubk(spki(&registrar_cert()))
    );
    // §8.2: in certificate form, the most specific CA: the one C.5 pins, byte for byte.
    let c_5 = brski_common::voucher::Voucher::from_cbor(&bytes("cbrski/C.5-voucher.payload.hex"))
        .expect("C.5 payload");
    assert_eq!(
        checked.domain_cert().map(|c| c.to_der().expect("DER")),
        c_5.pinned_domain_cert
    );
}

// ---------------------------------------------------------------------------------------------
// C.5 at the pledge (RFC 8995 §5.6.1, §5.6.2)

fn c_3_expectations() -> PledgeExpectations {
    let pvr = VoucherRequest::from_cbor(&bytes("cbrski/C.3-pvr.payload.hex")).expect("C.3");
    PledgeExpectations::for_request(&pvr)
}

#[test]
fn cbrski_c_5_voucher_is_refused_by_the_pledge_that_sent_c_3() {
    // The appendix samples are independent: C.5's nonce is not C.3's.
    let err = pledge::accept_voucher(
        Format::Cose,
        &voucher(),
        &manufacturer(TimeCheck::Now),
        &c_3_expectations(),
    )
    .expect_err("nonce mismatch");
    assert!(
        matches!(
            err,
            pledge::PledgeError::Voucher(VoucherCheckError::NonceMismatch)
        ),
        "{err:?}"
    );
}

#[test]
fn cbrski_c_5_voucher_with_its_own_nonce_is_accepted_and_pins_the_registrars_ca() {
    let c_5 = brski_common::voucher::Voucher::from_cbor(&bytes("cbrski/C.5-voucher.payload.hex"))
        .expect("C.5 payload");
    let mut expectations = c_3_expectations();
    expectations.nonce = c_5.nonce.clone();
    // Signed by the C-masa_ca key itself; the clock is on for it (valid to 2032).
    let accepted = pledge::accept_voucher(
        Format::Cose,
        &voucher(),
        &manufacturer(TimeCheck::Now),
        &expectations,
    )
    .expect("accepted");
    assert_eq!(accepted.masa_chain, vec![cert("cbrski/C-masa_ca.crt.pem")]);
    // C.3 asked by key, C.5 pins only a certificate: that one is used.
    assert!(matches!(accepted.pin, Pin::DomainCert(_)));
    let registrar = vec![registrar_cert().to_der().expect("DER")];
    pledge::validate_registrar(&accepted.pin, &registrar, TimeCheck::Skip)
        .expect("C-registrar chains to the pinned CA (same key as C-domain_ca)");
    // With the clock on, C-registrar (valid to 2025-12-08) has expired.
    let err = pledge::validate_registrar(&accepted.pin, &registrar, TimeCheck::Now)
        .expect_err("expired registrar certificate");
    assert!(
        matches!(err, pledge::PledgeError::RegistrarNotPinned(ref r) if r.contains("expired")),
        "{err:?}"
    );
}

#[test]
fn cbrski_c_5_voucher_does_not_verify_with_the_masa_tls_certificate() {
    let masa_tls = TrustPolicy::new(vec![cert("cbrski/C-masa.crt.pem")]).with_time(TimeCheck::Skip);
    let err = pledge::accept_voucher(Format::Cose, &voucher(), &masa_tls, &c_3_expectations())
        .expect_err("another key");
    assert!(
        matches!(
            err,
            pledge::PledgeError::Envelope(EnvelopeError::BadSignature)
        ),
        "{err:?}"
    );
}
