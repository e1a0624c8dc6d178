//! The whole RFC 8995 voucher exchange without sockets: pledge → registrar → MASA → registrar →
//! pledge, and every refusal on the way, with the status each role answers.

use super::{masa, pledge, registrar};
use crate::envelope::{EnvelopeError, Format};
use crate::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use crate::pki::chain::{ChainError, TimeCheck, TrustPolicy};
use crate::pki::{self, issue, name_from_parts, profile, self_signed};
use crate::voucher::{Assertion, CLOCK_SKEW, Nonce, PledgeExpectations, VoucherCheckError};
use der::Encode;
use x509_cert::Certificate;

struct Party {
    key: SoftwareKey,
    cert: Certificate,
}

impl Party {
    fn der(&self) -> Vec<u8> {
        self.cert.to_der().expect("der")
    }
}

fn key() -> SoftwareKey {
    SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key")
}

fn ca(cn: &str, vendor: bool) -> Party {
    let key = key();
    let name = name_from_parts(Some(cn), Some("Example"), None).expect("name");
    let params = if vendor {
        profile::vendor_ca(name)
    } else {
        profile::domain_ca(name)
    }
    .expect("params");
    let cert = self_signed(&params, &key).expect("ca");
    Party { key, cert }
}

fn issued(params: pki::CertificateParams, issuer: &Party) -> Party {
    let key = key();
    let cert = issue(
        &params,
        key.public_key_spki(),
        Some(&issuer.cert),
        &issuer.key,
    )
    .expect("issue");
    Party { key, cert }
}

struct World {
    vendor: Party,
    masa_signer: Party,
    idevid: Party,
    domain_ca: Party,
    registrar: Party,
}

fn world(serial: &str) -> World {
    let vendor = ca("Vendor CA", true);
    let masa_signer = issued(
        profile::masa_voucher_signer(name_from_parts(Some("MASA"), None, None).expect("n"))
            .expect("p"),
        &vendor,
    );
    let idevid = issued(
        profile::idevid(serial, Some("masa.example:9443"), None).expect("p"),
        &vendor,
    );
    let domain_ca = ca("Domain CA", false);
    let registrar = issued(
        profile::registrar(
            name_from_parts(Some("registrar"), None, None).expect("n"),
            &["registrar.example"],
            &[],
        )
        .expect("p"),
        &domain_ca,
    );
    World {
        vendor,
        masa_signer,
        idevid,
        domain_ca,
        registrar,
    }
}

fn vendor_policy(w: &World) -> TrustPolicy {
    TrustPolicy::new(vec![w.vendor.cert.clone()])
}

fn registrar_chain(w: &World) -> Vec<Certificate> {
    vec![w.registrar.cert.clone(), w.domain_ca.cert.clone()]
}

fn expectations(serial: &str, nonce: &Nonce) -> PledgeExpectations {
    PledgeExpectations {
        serial_number: serial.into(),
        nonce: Some(nonce.clone()),
        idevid_issuer: None,
        accepted_assertions: None,
        accept_nonceless: false,
        trusted_time: None,
        requested_pin: None,
    }
}

fn pvr(w: &World, format: Format, serial: &str) -> pledge::PledgeVoucherRequest {
    pledge::build_pledge_voucher_request(
        format,
        serial,
        &w.registrar.der(),
        &w.idevid.key,
        std::slice::from_ref(&w.idevid.cert),
        Some(time::OffsetDateTime::now_utc()),
    )
    .expect("pvr")
}

/// The registrar's check of a pledge request sent over `w`'s IDevID TLS session (8995 §5.3).
fn check_at_registrar(
    w: &World,
    format: Format,
    body: &[u8],
) -> Result<registrar::CheckedPledgeRequest, registrar::PledgeRequestError> {
    registrar::check_pledge_voucher_request(
        format,
        body,
        std::slice::from_ref(&w.idevid.cert),
        &w.registrar.der(),
        &vendor_policy(w),
    )
}

/// One full exchange in `format`; returns the voucher bytes the pledge receives.
fn exchange(w: &World, format: Format) -> (pledge::PledgeVoucherRequest, Vec<u8>) {
    let serial = "SN-0001";
    let pvr = pvr(w, format, serial);
    let checked = check_at_registrar(w, format, &pvr.bytes).expect("registrar accepts the PVR");
    let rvr = registrar::sign_registrar_voucher_request(
        &checked,
        time::OffsetDateTime::now_utc(),
        &w.registrar.key,
        &registrar_chain(w),
    )
    .expect("rvr");
    let masa_checked = masa::check_registrar_voucher_request(
        format,
        &rvr,
        &vendor_policy(w),
        TimeCheck::Now,
        true,
    )
    .expect("MASA accepts the RVR");
    assert!(masa_checked.proximity, "proximity proven");
    assert_eq!(masa_checked.serial_number, serial);
    let pinned = masa_checked.domain_cert().expect("pin").clone();
    assert_eq!(pinned, w.domain_ca.cert, "the most specific CA is pinned");
    let voucher = masa::build_voucher(
        &masa_checked,
        Assertion::Proximity,
        &pinned,
        time::OffsetDateTime::now_utc(),
        None,
    )
    .expect("voucher");
    let signed = crate::envelope::sign(
        format,
        &voucher.to_payload(format).expect("payload"),
        &w.masa_signer.key,
        &[w.masa_signer.cert.clone(), w.vendor.cert.clone()],
    )
    .expect("sign voucher");
    registrar::check_voucher_for_relay(
        format,
        &signed,
        &checked,
        &vendor_policy(w),
        &registrar_chain(w),
    )
    .expect("registrar relays");
    (pvr, signed)
}

#[test]
fn rfc8995_5_full_exchange_in_each_format() {
    let w = world("SN-0001");
    for format in [Format::Cms, Format::Jws, Format::Cose] {
        let (pvr, voucher) = exchange(&w, format);
        let accepted = pledge::accept_voucher(
            format,
            &voucher,
            &vendor_policy(&w),
            &expectations("SN-0001", &pvr.nonce),
        )
        .expect("pledge accepts the voucher");
        pledge::validate_registrar(
            &accepted.pin,
            &[w.registrar.der(), w.domain_ca.der()],
            TimeCheck::Now,
        )
        .expect("registrar chains to the pin");
    }
}

#[test]
fn rfc8995_2_6_1_cms_signing_time_in_the_future_is_refused() {
    let w = world("SN-0001");
    let (pvr, voucher) = exchange(&w, Format::Cms);
    let payload = crate::envelope::parse(Format::Cms, &voucher)
        .expect("parse")
        .payload;
    let chain = [w.masa_signer.cert.clone(), w.vendor.cert.clone()];
    let signed_at =
        |at| crate::envelope::cms::sign_at(&payload, &w.masa_signer.key, &chain, at).expect("sign");
    let now = time::OffsetDateTime::now_utc();
    let trusting = PledgeExpectations {
        trusted_time: Some(now),
        ..expectations("SN-0001", &pvr.nonce)
    };
    let accept = |bytes: &[u8], expected: &PledgeExpectations| {
        pledge::accept_voucher(Format::Cms, bytes, &vendor_policy(&w), expected)
    };
    // Within the allowed skew of a trusted clock.
    let near = signed_at(now + CLOCK_SKEW - time::Duration::seconds(30));
    let accepted = accept(&near, &trusting).expect("accepted");
    assert!(accepted.voucher.created_on.is_some());
    // An hour ahead: refused, naming the signingTime (UTCTime has whole seconds).
    let ahead = now + time::Duration::hours(1);
    let far = signed_at(ahead);
    let err = accept(&far, &trusting).expect_err("signed in the future");
    let shown = ahead
        .replace_nanosecond(0)
        .expect("whole second")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    assert!(
        matches!(
            &err,
            pledge::PledgeError::Voucher(VoucherCheckError::SignedInFuture { signing_time })
                if *signing_time == shown
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "voucher rejected: voucher signingTime {shown} is in the future (more than 300 s ahead of this pledge's clock)"
        )
    );
    // Without a trusted clock the time stamps are not judged (§2.6.1: MAY ignore them).
    accept(&far, &expectations("SN-0001", &pvr.nonce)).expect("no trusted clock");
}

#[test]
fn rfc8995_5_6_1_pledge_rejects_voucher_for_another_nonce() {
    let w = world("SN-0001");
    let (_, voucher) = exchange(&w, Format::Cms);
    let other = Nonce::generate().expect("nonce");
    let err = pledge::accept_voucher(
        Format::Cms,
        &voucher,
        &vendor_policy(&w),
        &expectations("SN-0001", &other),
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
fn rfc8995_5_6_1_pledge_rejects_voucher_from_another_manufacturer() {
    let w = world("SN-0001");
    let (pvr, voucher) = exchange(&w, Format::Cms);
    let other = ca("Other Vendor", true);
    let err = pledge::accept_voucher(
        Format::Cms,
        &voucher,
        &TrustPolicy::new(vec![other.cert]),
        &expectations("SN-0001", &pvr.nonce),
    )
    .expect_err("untrusted MASA");
    assert!(
        matches!(
            err,
            pledge::PledgeError::Envelope(EnvelopeError::Untrusted(ChainError::Untrusted { .. }))
        ),
        "{err:?}"
    );
}

#[test]
fn rfc8995_5_6_2_pledge_refuses_a_registrar_the_voucher_does_not_pin() {
    let w = world("SN-0001");
    let (pvr, voucher) = exchange(&w, Format::Cms);
    let accepted = pledge::accept_voucher(
        Format::Cms,
        &voucher,
        &vendor_policy(&w),
        &expectations("SN-0001", &pvr.nonce),
    )
    .expect("accepted");
    let rogue_ca = ca("Rogue Domain", false);
    let rogue = issued(
        profile::registrar(
            name_from_parts(Some("rogue"), None, None).expect("n"),
            &["rogue"],
            &[],
        )
        .expect("p"),
        &rogue_ca,
    );
    let err = pledge::validate_registrar(
        &accepted.pin,
        &[rogue.der(), rogue_ca.der()],
        TimeCheck::Now,
    )
    .expect_err("not pinned");
    assert!(
        matches!(err, pledge::PledgeError::RegistrarNotPinned(_)),
        "{err:?}"
    );
}

#[test]
fn rfc8995_5_3_registrar_refuses_request_signed_by_another_key() {
    let w = world("SN-0001");
    // Signed by a different IDevID of the same manufacturer, sent over the first one's TLS.
    let other = issued(
        profile::idevid("SN-0001", None, None).expect("p"),
        &w.vendor,
    );
    let pvr = pledge::build_pledge_voucher_request(
        Format::Cms,
        "SN-0001",
        &w.registrar.der(),
        &other.key,
        std::slice::from_ref(&other.cert),
        None,
    )
    .expect("pvr");
    let err =
        check_at_registrar(&w, Format::Cms, &pvr.bytes).expect_err("signer is not the TLS client");
    assert!(
        matches!(err, registrar::PledgeRequestError::SignerNotTlsClient(_)),
        "{err:?}"
    );
    assert_eq!(err.status(), 403);
}

#[test]
fn rfc8995_5_3_registrar_refuses_serial_mismatch_and_foreign_proximity_cert() {
    let w = world("SN-0001");
    let wrong_serial = pvr(&w, Format::Cms, "SN-9999");
    let err =
        check_at_registrar(&w, Format::Cms, &wrong_serial.bytes).expect_err("serial mismatch");
    assert!(
        matches!(err, registrar::PledgeRequestError::SerialMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(err.status(), 403);

    let good = pvr(&w, Format::Cms, "SN-0001");
    let other_reg = ca("Another", false);
    let err = registrar::check_pledge_voucher_request(
        Format::Cms,
        &good.bytes,
        std::slice::from_ref(&w.idevid.cert),
        &other_reg.der(),
        &vendor_policy(&w),
    )
    .expect_err("proximity cert is not ours");
    assert!(
        matches!(err, registrar::PledgeRequestError::ProximityMismatch),
        "{err:?}"
    );
    assert_eq!(err.status(), 401);
}

#[test]
fn rfc8995_5_3_registrar_refuses_unknown_manufacturer_and_garbage() {
    let w = world("SN-0001");
    let good = pvr(&w, Format::Cms, "SN-0001");
    let other = ca("Other Vendor", true);
    let err = registrar::check_pledge_voucher_request(
        Format::Cms,
        &good.bytes,
        std::slice::from_ref(&w.idevid.cert),
        &w.registrar.der(),
        &TrustPolicy::new(vec![other.cert]),
    )
    .expect_err("unknown manufacturer");
    assert!(
        matches!(err, registrar::PledgeRequestError::UnknownManufacturer(_)),
        "{err:?}"
    );
    let err = check_at_registrar(&w, Format::Cms, b"\x30\x03\x02\x01").expect_err("garbage");
    assert_eq!(err.status(), 400, "{err:?}");
}

#[test]
fn rfc8995_5_5_4_masa_refuses_registrar_without_cmc_ra() {
    let w = world("SN-0001");
    let good = pvr(&w, Format::Cms, "SN-0001");
    let checked = check_at_registrar(&w, Format::Cms, &good.bytes).expect("ok");
    // A TLS-only certificate from the same domain CA: no id-kp-cmcRA.
    let not_ra = issued(
        profile::tls_server(&["x.example"], &[]).expect("p"),
        &w.domain_ca,
    );
    let rvr = registrar::sign_registrar_voucher_request(
        &checked,
        time::OffsetDateTime::now_utc(),
        &not_ra.key,
        &[not_ra.cert.clone(), w.domain_ca.cert.clone()],
    )
    .expect("rvr");
    let err = masa::check_registrar_voucher_request(
        Format::Cms,
        &rvr,
        &vendor_policy(&w),
        TimeCheck::Now,
        true,
    )
    .expect_err("no cmcRA");
    assert!(
        matches!(err, masa::RegistrarRequestError::NotRegistrationAuthority),
        "{err:?}"
    );
    assert_eq!(err.status(), 403);
}

#[test]
fn rfc8995_5_5_masa_refuses_unknown_device_and_missing_prior_request() {
    let w = world("SN-0001");
    let good = pvr(&w, Format::Cms, "SN-0001");
    let checked = check_at_registrar(&w, Format::Cms, &good.bytes).expect("ok");
    let rvr = registrar::sign_registrar_voucher_request(
        &checked,
        time::OffsetDateTime::now_utc(),
        &w.registrar.key,
        &registrar_chain(&w),
    )
    .expect("rvr");
    let other = ca("Other Vendor", true);
    let err = masa::check_registrar_voucher_request(
        Format::Cms,
        &rvr,
        &TrustPolicy::new(vec![other.cert]),
        TimeCheck::Now,
        true,
    )
    .expect_err("another manufacturer's device");
    assert_eq!(err.status(), 404, "{err:?}");

    let mut bare =
        registrar::build_registrar_voucher_request(&checked, time::OffsetDateTime::now_utc());
    bare.prior_signed_voucher_request = None;
    let signed = crate::envelope::sign(
        Format::Cms,
        &bare.to_payload(Format::Cms).expect("payload"),
        &w.registrar.key,
        &registrar_chain(&w),
    )
    .expect("sign");
    let err = masa::check_registrar_voucher_request(
        Format::Cms,
        &signed,
        &vendor_policy(&w),
        TimeCheck::Now,
        true,
    )
    .expect_err("no prior request");
    assert!(
        matches!(err, masa::RegistrarRequestError::NoPriorRequest),
        "{err:?}"
    );
}

#[test]
fn rfc8995_5_5_6_masa_refuses_nonce_and_serial_that_differ_from_the_pledge() {
    let w = world("SN-0001");
    let good = pvr(&w, Format::Cms, "SN-0001");
    let checked = check_at_registrar(&w, Format::Cms, &good.bytes).expect("ok");
    for (tamper, want_nonce) in [(true, true), (false, false)] {
        let mut r =
            registrar::build_registrar_voucher_request(&checked, time::OffsetDateTime::now_utc());
        if tamper {
            r.nonce = Some(Nonce::generate().expect("nonce"));
        } else {
            r.serial_number = "SN-OTHER".into();
        }
        let signed = crate::envelope::sign(
            Format::Cms,
            &r.to_payload(Format::Cms).expect("payload"),
            &w.registrar.key,
            &registrar_chain(&w),
        )
        .expect("sign");
        let err = masa::check_registrar_voucher_request(
            Format::Cms,
            &signed,
            &vendor_policy(&w),
            TimeCheck::Now,
            true,
        )
        .expect_err("inconsistent");
        if want_nonce {
            assert!(
                matches!(err, masa::RegistrarRequestError::NonceMismatch),
                "{err:?}"
            );
        } else {
            assert!(
                matches!(err, masa::RegistrarRequestError::SerialMismatch { .. }),
                "{err:?}"
            );
        }
        assert_eq!(err.status(), 403);
    }
}

#[test]
fn rfc8995_5_5_5_masa_refuses_a_registrar_the_pledge_did_not_see() {
    let w = world("SN-0001");
    let good = pvr(&w, Format::Cms, "SN-0001");
    let checked = check_at_registrar(&w, Format::Cms, &good.bytes).expect("ok");
    // Another domain's registrar relays the (captured) pledge request.
    let other_ca = ca("Other Domain", false);
    let other = issued(
        profile::registrar(
            name_from_parts(Some("other"), None, None).expect("n"),
            &["o"],
            &[],
        )
        .expect("p"),
        &other_ca,
    );
    let rvr = registrar::sign_registrar_voucher_request(
        &checked,
        time::OffsetDateTime::now_utc(),
        &other.key,
        &[other.cert.clone(), other_ca.cert.clone()],
    )
    .expect("rvr");
    let err = masa::check_registrar_voucher_request(
        Format::Cms,
        &rvr,
        &vendor_policy(&w),
        TimeCheck::Now,
        true,
    )
    .expect_err("proximity");
    assert!(
        matches!(err, masa::RegistrarRequestError::ProximityMismatch),
        "{err:?}"
    );
}

/// The RVR a registrar sends for `w`'s pledge request in `format`.
fn rvr_for(w: &World, format: Format) -> Vec<u8> {
    let good = pvr(w, format, "SN-0001");
    let checked = check_at_registrar(w, format, &good.bytes).expect("registrar accepts");
    sign_rvr(w, &checked)
}

fn sign_rvr(w: &World, checked: &registrar::CheckedPledgeRequest) -> Vec<u8> {
    registrar::sign_registrar_voucher_request(
        checked,
        time::OffsetDateTime::now_utc(),
        &w.registrar.key,
        &registrar_chain(w),
    )
    .expect("rvr")
}

/// The CMS RVR for a pledge "SN-0001" signing with `key` and presenting `chain`, accepted by
/// a registrar trusting the vendor CA under `time`.
fn rvr_from(w: &World, key: &SoftwareKey, chain: &[Certificate], time: TimeCheck) -> Vec<u8> {
    let pvr = pledge::build_pledge_voucher_request(
        Format::Cms,
        "SN-0001",
        &w.registrar.der(),
        key,
        chain,
        Some(time::OffsetDateTime::now_utc()),
    )
    .expect("pvr");
    let checked = registrar::check_pledge_voucher_request(
        Format::Cms,
        &pvr.bytes,
        chain,
        &w.registrar.der(),
        &vendor_policy(w).with_time(time),
    )
    .expect("registrar accepts");
    sign_rvr(w, &checked)
}

/// The path error of a refusal for an IDevID that does not validate.
fn untrusted_idevid(err: &masa::RegistrarRequestError) -> Option<&ChainError> {
    match err {
        masa::RegistrarRequestError::UnknownDevice(EnvelopeError::Untrusted(e)) => Some(e),
        _ => None,
    }
}

fn check_known(
    rvr: &[u8],
    format: Format,
    known: &Certificate,
    manufacturer: &TrustPolicy,
) -> Result<masa::CheckedRegistrarRequest, masa::RegistrarRequestError> {
    let signed =
        masa::verify_registrar_voucher_request(format, rvr, TimeCheck::Now).expect("RVR verifies");
    assert_eq!(signed.serial_number(), "SN-0001");
    signed.check_pledge_request(
        masa::PledgeIdevid::Known {
            idevid: known,
            manufacturer,
        },
        true,
    )
}

#[test]
fn rfc8995_5_5_5_masa_verifies_the_pledge_request_with_the_idevid_it_minted() {
    for format in [Format::Cms, Format::Jws, Format::Cose] {
        let w = world("SN-0001");
        let rvr = rvr_for(&w, format);
        let checked = check_known(&rvr, format, &w.idevid.cert, &vendor_policy(&w))
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert!(checked.proximity, "{format:?}");
        assert_eq!(checked.idevid.as_ref(), Some(&w.idevid.cert), "{format:?}");
    }
}

#[test]
fn rfc8995_5_5_5_masa_refuses_a_pledge_request_not_signed_with_the_known_idevid() {
    let w = world("SN-0001");
    let rvr = rvr_for(&w, Format::Cms);
    let policy = vendor_policy(&w);

    // The record names another certificate (same serial, another key): refused, although
    // the vendor CA issued the one that signed.
    let other = issued(
        profile::idevid("SN-0001", Some("masa.example:9443"), None).expect("p"),
        &w.vendor,
    );
    let err = check_known(&rvr, Format::Cms, &other.cert, &policy).expect_err("other key");
    assert!(
        matches!(err, masa::RegistrarRequestError::NotTheKnownIdevid),
        "{err:?}"
    );
    assert_eq!(err.status(), 404);

    // Same key, other bytes (re-issued with another serial number): refused as not the
    // certificate on record.
    let reissued = issue(
        &profile::idevid("SN-0001", Some("masa.example:9443"), None).expect("p"),
        w.idevid.key.public_key_spki(),
        Some(&w.vendor.cert),
        &w.vendor.key,
    )
    .expect("reissue");
    assert_ne!(reissued, w.idevid.cert);
    let err = check_known(&rvr, Format::Cms, &reissued, &policy).expect_err("other bytes");
    assert!(
        matches!(err, masa::RegistrarRequestError::NotTheKnownIdevid),
        "{err:?}"
    );
    assert_eq!(err.status(), 404);

    // The record's issuer is no longer a configured manufacturer anchor.
    let elsewhere = TrustPolicy::new(vec![ca("Other Vendor", true).cert]);
    let err = check_known(&rvr, Format::Cms, &w.idevid.cert, &elsewhere)
        .expect_err("issuer not an anchor");
    assert!(
        matches!(untrusted_idevid(&err), Some(ChainError::Untrusted { .. })),
        "{err:?}"
    );
}

#[test]
fn rfc8995_5_5_5_masa_checks_the_validity_of_the_known_idevid() {
    let w = world("SN-0001");
    let mut params = profile::idevid("SN-0001", Some("masa.example:9443"), None).expect("p");
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(20);
    params.not_after =
        pki::issue::NotAfter::At(time::OffsetDateTime::now_utc() - time::Duration::days(10));
    let expired = issue(
        &params,
        w.idevid.key.public_key_spki(),
        Some(&w.vendor.cert),
        &w.vendor.key,
    )
    .expect("expired");
    // A pledge whose IDevID has expired, accepted by a registrar that ignores IDevID expiry
    // (8995 §2.6.2); the MASA checks the time of the certificate on record.
    let rvr = rvr_from(
        &w,
        &w.idevid.key,
        std::slice::from_ref(&expired),
        TimeCheck::Skip,
    );
    let err =
        check_known(&rvr, Format::Cms, &expired, &vendor_policy(&w)).expect_err("expired record");
    assert!(
        matches!(untrusted_idevid(&err), Some(ChainError::Expired { .. })),
        "{err:?}"
    );
}

#[test]
fn rfc8995_5_5_5_masa_validates_a_known_idevid_issued_under_an_intermediate() {
    let w = world("SN-0001");
    let factory = issued(
        profile::vendor_ca(name_from_parts(Some("Factory CA"), None, None).expect("n")).expect("p"),
        &w.vendor,
    );
    let idevid = issued(
        profile::idevid("SN-0001", Some("masa.example:9443"), None).expect("p"),
        &factory,
    );
    let chain = [idevid.cert.clone(), factory.cert.clone()];
    let rvr = rvr_from(&w, &idevid.key, &chain, TimeCheck::Now);
    let ok = check_known(&rvr, Format::Cms, &idevid.cert, &vendor_policy(&w))
        .expect("validated through the factory CA");
    assert_eq!(ok.idevid.as_ref(), Some(&idevid.cert));
    // The same device when the MASA recorded another certificate for the serial.
    let err = check_known(&rvr, Format::Cms, &w.idevid.cert, &vendor_policy(&w))
        .expect_err("not the recorded certificate");
    assert!(
        matches!(err, masa::RegistrarRequestError::NotTheKnownIdevid),
        "{err:?}"
    );
}

#[test]
fn rfc8995_5_5_5_masa_refuses_a_known_idevid_whose_vendor_ca_has_expired() {
    let w = world("SN-0001");
    let rvr = rvr_for(&w, Format::Cms);
    // The vendor CA as configured at the MASA, with the same name and key but expired.
    let mut params =
        profile::vendor_ca(w.vendor.cert.tbs_certificate().subject().clone()).expect("p");
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(20);
    params.not_after =
        pki::issue::NotAfter::At(time::OffsetDateTime::now_utc() - time::Duration::days(10));
    let expired = self_signed(&params, &w.vendor.key).expect("expired CA");
    let err = check_known(
        &rvr,
        Format::Cms,
        &w.idevid.cert,
        &TrustPolicy::new(vec![expired]),
    )
    .expect_err("expired vendor CA");
    assert!(
        matches!(untrusted_idevid(&err), Some(ChainError::Expired { .. })),
        "{err:?}"
    );
}
