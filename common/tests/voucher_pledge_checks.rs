//! The pledge's voucher checks, RFC 8995 §5.6.1 (SPEC §1.12 items 2–5), and the choice of pin
//! (RFC 8366bis §8; SPEC §2.7), against the published examples.

use base64::Engine;
use brski_common::input::B64;
use brski_common::pki::ext::idevid_issuer;
use brski_common::test_vectors::{bytes, cert};
use brski_common::voucher::{
    Assertion, DateTime, Nonce, Pin, PinForm, PledgeExpectations, Voucher, VoucherCheckError,
    VoucherRequest, validate_voucher,
};
use time::macros::datetime;

fn c_2_1_pvr() -> VoucherRequest {
    VoucherRequest::from_json(&bytes("rfc8995/C.2.1-pledge-voucher-request.econtent.json"))
        .expect("PVR")
}

fn c_2_3_voucher() -> Voucher {
    Voucher::from_json(&bytes("rfc8995/C.2.3-voucher.econtent.json")).expect("voucher")
}

fn nonceless_voucher() -> Voucher {
    Voucher::from_json(&bytes("rfc8366bis/8.3-voucher-nonceless.json")).expect("voucher")
}

#[test]
fn rfc8995_5_6_1_c_2_3_voucher_accepted_for_c_2_1_request() {
    let pvr = c_2_1_pvr();
    let expectations = PledgeExpectations::for_request(&pvr);
    assert_eq!(expectations.serial_number, "00-D0-E5-F2-00-02");
    assert_eq!(expectations.requested_pin, Some(PinForm::Cert));
    let pin = validate_voucher(&c_2_3_voucher(), &expectations).expect("accepted");
    assert_eq!(
        pin,
        Pin::DomainCert(bytes("rfc8995/C.1.4-registrar.crt.pem"))
    );
    assert_eq!(pin.form(), PinForm::Cert);
    assert_eq!(pin.as_bytes(), bytes("rfc8995/C.1.4-registrar.crt.pem"));
}

#[test]
fn rfc8995_5_6_1_base64url_nonce_compared_as_text() {
    // The example nonce is base64url; it must match as the exact string, and only so.
    let v = c_2_3_voucher();
    let sent = Nonce::Text("-_XE9zK9q8Ll1qylMtLKeg".into());
    assert!(
        validate_voucher(
            &v,
            &PledgeExpectations::new("00-D0-E5-F2-00-02", Some(sent))
        )
        .is_ok()
    );
    // The same bytes written in standard base64 are a different JSON string.
    let as_standard = Nonce::Text("+/XE9zK9q8Ll1qylMtLKeg".into());
    assert_eq!(
        validate_voucher(
            &v,
            &PledgeExpectations::new("00-D0-E5-F2-00-02", Some(as_standard))
        ),
        Err(VoucherCheckError::NonceMismatch)
    );
}

#[test]
fn rfc8995_5_6_1_serial_mismatch_rejected() {
    let mut v = c_2_3_voucher();
    v.serial_number = "00-D0-E5-F2-00-03".into();
    assert_eq!(
        validate_voucher(&v, &PledgeExpectations::for_request(&c_2_1_pvr())),
        Err(VoucherCheckError::SerialMismatch {
            expected: "00-D0-E5-F2-00-02".into(),
            found: "00-D0-E5-F2-00-03".into(),
        })
    );
}

#[test]
fn rfc8995_5_6_1_cbrski_c_5_voucher_rejected_for_c_3_request() {
    // The cBRSKI appendix artifacts are independent samples: the voucher's nonce is not the
    // PVR's, and a pledge that sent C.3 must refuse C.5.
    let pvr = VoucherRequest::from_cbor(&bytes("cbrski/C.3-pvr.payload.hex")).expect("PVR");
    let v = Voucher::from_cbor(&bytes("cbrski/C.5-voucher.payload.hex")).expect("voucher");
    assert_eq!(pvr.serial_number, v.serial_number);
    assert_eq!(
        validate_voucher(&v, &PledgeExpectations::for_request(&pvr)),
        Err(VoucherCheckError::NonceMismatch)
    );
    // With the nonce it did carry, the voucher passes; the PVR asked with a public key, the
    // voucher only pins a certificate, which is then used.
    let mut expectations = PledgeExpectations::for_request(&pvr);
    assert_eq!(expectations.requested_pin, Some(PinForm::Pubk));
    expectations.nonce = v.nonce.clone();
    assert!(matches!(
        validate_voucher(&v, &expectations),
        Ok(Pin::DomainCert(_))
    ));
}

#[test]
fn rfc8995_5_6_1_unsolicited_nonce_rejected() {
    // A voucher bound to some nonce, while this pledge sent none.
    let expectations = PledgeExpectations::new("00-D0-E5-F2-00-02", None).with_nonceless(true);
    assert_eq!(
        validate_voucher(&c_2_3_voucher(), &expectations),
        Err(VoucherCheckError::NonceMismatch)
    );
}

#[test]
fn rfc8995_5_6_1_nonceless_voucher_needs_policy() {
    let v = nonceless_voucher();
    let sent = Some(Nonce::Text("62a2e7693d82fcda2624de58fb6722e5".into()));
    let issuer = v.idevid_issuer.clone();
    assert_eq!(
        validate_voucher(
            &v,
            &PledgeExpectations::new("JADA123456789", sent.clone())
                .with_idevid_issuer(issuer.clone())
        ),
        Err(VoucherCheckError::NonceMissing)
    );
    assert_eq!(
        validate_voucher(
            &v,
            &PledgeExpectations::new("JADA123456789", None).with_idevid_issuer(issuer)
        ),
        Err(VoucherCheckError::NonceMissing)
    );
    // Accepted by local policy (RFC 8995 §7.2) with a trusted clock before its expires-on
    // (2016-10-21T19:31:42Z).
    let expectations = PledgeExpectations::new("JADA123456789", sent)
        .with_nonceless(true)
        .with_idevid_issuer(v.idevid_issuer.clone());
    assert!(matches!(
        validate_voucher(
            &v,
            &expectations
                .clone()
                .with_trusted_time(datetime!(2016-10-21 19:00:00 UTC))
        ),
        Ok(Pin::DomainCert(_))
    ));
}

#[test]
fn rfc8995_7_2_nonceless_voucher_without_a_trusted_clock_is_refused() {
    // The policy allows nonceless vouchers, but without a trusted clock nothing bounds the
    // voucher's use (RFC 8995 §2.6.1, §11.1).
    let v = nonceless_voucher();
    let expectations = PledgeExpectations::new("JADA123456789", None)
        .with_nonceless(true)
        .with_idevid_issuer(v.idevid_issuer.clone());
    let err = validate_voucher(&v, &expectations);
    assert_eq!(err, Err(VoucherCheckError::NoncelessWithoutTrustedClock));
    assert_eq!(
        err.err().map(|e| e.to_string()).as_deref(),
        Some("voucher has no nonce, and without a trusted clock its expires-on cannot be checked")
    );
}

#[test]
fn rfc8995_7_2_nonceless_voucher_without_expires_on_is_refused() {
    let mut v = nonceless_voucher();
    v.expires_on = None;
    let expectations = PledgeExpectations::new("JADA123456789", None)
        .with_nonceless(true)
        .with_idevid_issuer(v.idevid_issuer.clone())
        .with_trusted_time(datetime!(2016-10-21 19:00:00 UTC));
    let err = validate_voucher(&v, &expectations);
    assert_eq!(err, Err(VoucherCheckError::NoncelessWithoutExpiry));
    assert_eq!(
        err.err().map(|e| e.to_string()).as_deref(),
        Some("voucher has no nonce and no expires-on")
    );
    // A voucher with a nonce needs no expires-on.
    let mut nonced = c_2_3_voucher();
    nonced.expires_on = None;
    assert!(
        validate_voucher(
            &nonced,
            &PledgeExpectations::for_request(&c_2_1_pvr())
                .with_nonceless(true)
                .with_trusted_time(datetime!(2021-04-13 21:50:00 UTC))
        )
        .is_ok()
    );
}

#[test]
fn rfc8995_5_6_1_expired_nonceless_voucher_rejected_with_trusted_clock() {
    // expires-on is 2016-10-21T19:31:42Z.
    let v = nonceless_voucher();
    let base = PledgeExpectations::new("JADA123456789", None)
        .with_nonceless(true)
        .with_idevid_issuer(v.idevid_issuer.clone());
    assert!(
        validate_voucher(
            &v,
            &base
                .clone()
                .with_trusted_time(datetime!(2016-10-21 19:31:41 UTC))
        )
        .is_ok()
    );
    assert_eq!(
        validate_voucher(
            &v,
            &base
                .clone()
                .with_trusted_time(datetime!(2016-10-21 19:31:42 UTC))
        ),
        Err(VoucherCheckError::Expired {
            expires_on: "2016-10-21T19:31:42Z".into()
        })
    );
    // The same instant written in another offset.
    assert_eq!(
        validate_voucher(
            &v,
            &base.with_trusted_time(datetime!(2016-10-21 16:00:00 -04:00))
        ),
        Err(VoucherCheckError::Expired {
            expires_on: "2016-10-21T19:31:42Z".into()
        })
    );
}

#[test]
fn rfc8995_5_6_1_expires_on_also_applies_to_nonced_vouchers() {
    let mut v = c_2_3_voucher();
    v.expires_on = Some(DateTime::parse("2021-04-13T18:03:24.589-04:00").expect("date"));
    let expectations = PledgeExpectations::for_request(&c_2_1_pvr());
    assert!(validate_voucher(&v, &expectations).is_ok());
    assert_eq!(
        validate_voucher(
            &v,
            &expectations.with_trusted_time(datetime!(2021-04-14 00:00:00 UTC))
        ),
        Err(VoucherCheckError::Expired {
            expires_on: "2021-04-13T18:03:24.589-04:00".into()
        })
    );
}

#[test]
fn rfc8995_2_6_1_voucher_created_in_the_future_is_refused() {
    // created-on is 2021-04-13T17:43:24.589-04:00, i.e. 21:43:24.589Z; the skew is 5 minutes.
    let v = c_2_3_voucher();
    let expectations = PledgeExpectations::for_request(&c_2_1_pvr());
    assert!(
        validate_voucher(
            &v,
            &expectations
                .clone()
                .with_trusted_time(datetime!(2021-04-13 21:38:25 UTC))
        )
        .is_ok(),
        "within the allowed skew"
    );
    let err = validate_voucher(
        &v,
        &expectations
            .clone()
            .with_trusted_time(datetime!(2021-04-13 21:38:24 UTC)),
    );
    assert_eq!(
        err,
        Err(VoucherCheckError::CreatedInFuture {
            created_on: "2021-04-13T17:43:24.589-04:00".into()
        })
    );
    assert_eq!(
        err.err().map(|e| e.to_string()).as_deref(),
        Some(
            "voucher created-on 2021-04-13T17:43:24.589-04:00 is in the future (more than 300 s ahead of this pledge's clock)"
        )
    );
    // Without a trusted clock created-on is not judged (RFC 8995 §2.6.1: MAY ignore it).
    assert!(validate_voucher(&v, &expectations).is_ok());
}

#[test]
fn rfc8366bis_8_4_voucher_without_created_on_is_accepted() {
    // created-on is optional in RFC 8366bis ("primarily for human consumption and auditing").
    let mut v = c_2_3_voucher();
    v.created_on = None;
    let expectations = PledgeExpectations::for_request(&c_2_1_pvr())
        .with_trusted_time(datetime!(2021-04-13 21:50:00 UTC));
    assert!(matches!(
        validate_voucher(&v, &expectations),
        Ok(Pin::DomainCert(_))
    ));
}

#[test]
fn rfc8366bis_6_1_idevid_issuer_must_match() {
    // The cBRSKI pledge IDevID has an AKI; the C.4 RVR carries it as idevid-issuer.
    let idevid = cert("cbrski/C-pledge.crt.pem");
    let own = idevid_issuer(&idevid);
    let mut v = Voucher::from_cbor(&bytes("cbrski/C.5-voucher.payload.hex")).expect("voucher");
    v.idevid_issuer = Some(own.clone());
    let expectations =
        PledgeExpectations::new("JADA123456789", v.nonce.clone()).with_idevid_issuer(Some(own));
    assert!(validate_voucher(&v, &expectations).is_ok());

    // Another issuer's key identifier.
    let other = idevid_issuer(&cert("jws-voucher/8.1-pvr.signer-key-and-chain.pem"));
    assert_eq!(
        validate_voucher(&v, &expectations.clone().with_idevid_issuer(Some(other))),
        Err(VoucherCheckError::IdevidIssuerMismatch)
    );
    // A pledge with no idevid-issuer value cannot match one.
    assert_eq!(
        validate_voucher(&v, &expectations.with_idevid_issuer(None)),
        Err(VoucherCheckError::IdevidIssuerMismatch)
    );
}

#[test]
fn rfc8995_5_6_1_assertion_policy() {
    let v = c_2_3_voucher();
    let expectations = PledgeExpectations::for_request(&c_2_1_pvr());
    assert_eq!(
        validate_voucher(
            &v,
            &expectations
                .clone()
                .with_accepted_assertions(&[Assertion::Proximity, Assertion::Verified])
        ),
        Err(VoucherCheckError::AssertionNotAccepted(Some(
            Assertion::Logged
        )))
    );
    assert!(
        validate_voucher(
            &v,
            &expectations
                .clone()
                .with_accepted_assertions(&[Assertion::Logged])
        )
        .is_ok()
    );
    // rfc8366bis made assertion optional; a policy list requires one.
    let mut without = v.clone();
    without.assertion = None;
    assert!(validate_voucher(&without, &expectations).is_ok());
    assert_eq!(
        validate_voucher(
            &without,
            &expectations.with_accepted_assertions(&Assertion::ALL)
        ),
        Err(VoucherCheckError::AssertionNotAccepted(None))
    );
}

#[test]
fn rfc8995_5_6_1_voucher_without_pin_rejected() {
    let mut v = c_2_3_voucher();
    v.pinned_domain_cert = None;
    assert_eq!(
        validate_voucher(&v, &PledgeExpectations::for_request(&c_2_1_pvr())),
        Err(VoucherCheckError::NoPin)
    );
}

#[test]
fn rfc8366bis_8_pin_order() {
    let mut v = Voucher::new("JADA123456789");
    assert_eq!(v.pin(None), None);
    v.pinned_domain_cert = Some(vec![1]);
    assert_eq!(v.pin(None), Some(Pin::DomainCert(vec![1])));
    v.pinned_domain_pubk = Some(vec![2]);
    assert_eq!(v.pin(None), Some(Pin::DomainPubk(vec![2])));
    v.pinned_domain_pubk_sha256 = Some(vec![3]);
    // Nonceless/no preference: pubk-sha256, pubk, cert.
    assert_eq!(v.pin(None), Some(Pin::DomainPubkSha256(vec![3])));
    // The form matching the request wins.
    assert_eq!(v.pin(Some(PinForm::Cert)), Some(Pin::DomainCert(vec![1])));
    assert_eq!(v.pin(Some(PinForm::Pubk)), Some(Pin::DomainPubk(vec![2])));
    // A requested form that is absent falls back to the order.
    v.pinned_domain_pubk = None;
    assert_eq!(
        v.pin(Some(PinForm::Pubk)),
        Some(Pin::DomainPubkSha256(vec![3]))
    );
}

#[test]
fn rfc8366bis_9_proximity_form_order() {
    let mut vr = VoucherRequest::new("x");
    assert_eq!(vr.proximity_form(), None);
    vr.proximity_registrar_cert = Some(vec![1]);
    assert_eq!(vr.proximity_form(), Some(PinForm::Cert));
    vr.proximity_registrar_pubk = Some(vec![2]);
    assert_eq!(vr.proximity_form(), Some(PinForm::Pubk));
    vr.proximity_registrar_pubk_sha256 = Some(vec![3]);
    assert_eq!(vr.proximity_form(), Some(PinForm::PubkSha256));
}

#[test]
fn rfc8995_5_2_generated_nonce_round_trips_through_a_masa_echo() {
    let nonce = Nonce::generate().expect("random");
    let Nonce::Bytes(raw) = &nonce else {
        panic!("generated nonces are bytes")
    };
    assert_eq!(raw.len(), Nonce::GENERATED_LEN);
    assert_ne!(nonce, Nonce::generate().expect("random"));
    // Sent in JSON as standard base64 ...
    let text = nonce.json_string().into_owned();
    assert_eq!(B64.decode(&text).expect("standard base64"), *raw);
    let mut pvr = VoucherRequest::new("JADA123456789");
    pvr.nonce = Some(nonce.clone());
    pvr.proximity_registrar_cert = Some(bytes("rfc8995/C.1.4-registrar.crt.pem"));
    let sent = VoucherRequest::from_json(&pvr.to_json().expect("json")).expect("decode");
    assert_eq!(sent.nonce, Some(Nonce::Text(text.clone())));
    // ... relayed unchanged by the registrar, echoed by the MASA, matched by the pledge.
    let mut rvr = VoucherRequest::new(sent.serial_number.clone());
    rvr.nonce = sent.nonce.clone();
    let mut v = Voucher::new(rvr.serial_number.clone());
    v.nonce = rvr.nonce.clone();
    v.pinned_domain_cert = Some(bytes("rfc8995/C.1.4-registrar.crt.pem"));
    let received = Voucher::from_json(&v.to_json().expect("json")).expect("decode");
    assert!(validate_voucher(&received, &PledgeExpectations::for_request(&pvr)).is_ok());
    // In CBOR the bytes travel as they are.
    assert_eq!(
        received.nonce.as_ref().and_then(Nonce::to_bytes),
        Some(raw.clone())
    );
}

#[test]
fn rfc8995_5_6_1_nonce_equality_is_exact() {
    let bytes_form = Nonce::Bytes(vec![0xfb, 0xff]);
    assert_eq!(bytes_form, Nonce::Text("+/8=".into()));
    assert_eq!(Nonce::Text("+/8=".into()), bytes_form);
    assert_ne!(bytes_form, Nonce::Text("-_8=".into()));
    assert_ne!(bytes_form, Nonce::Text("+/8".into()));
    assert_ne!(Nonce::Text("abc".into()), Nonce::Text("abd".into()));
    assert_ne!(Nonce::Bytes(vec![1]), Nonce::Bytes(vec![1, 0]));
    assert_eq!(Nonce::from("abc"), Nonce::Text("abc".into()));
    assert_eq!(Nonce::from(vec![1u8]), Nonce::Bytes(vec![1]));
}
