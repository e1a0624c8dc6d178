//! The MASA's side of cBRSKI: finding the registrar's and the pledge's signers in the RVR's
//! x5bag (§8.1, §9.2.1), and what the voucher pins (§8.2, §8.3), with a two-level domain PKI
//! (cBRSKI Figure 1) and the registrar and pledge code around it.

mod support;

use brski_common::brski::pinning::{choose_pin, pinned_certificate};
use brski_common::brski::{masa, pledge, registrar};
use brski_common::envelope::{self, Format, cose};
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::chain::{TimeCheck, TrustPolicy};
use brski_common::pki::ext::spki_sha256;
use brski_common::pki::{self, issue, name_from_parts, profile, self_signed};
use brski_common::voucher::{
    Assertion, Nonce, Pin, PinForm, PledgeExpectations, Voucher, VoucherRequest,
};
use der::Encode;
use x509_cert::Certificate;

struct Party {
    key: SoftwareKey,
    cert: Certificate,
}

fn party(params: pki::CertificateParams, issuer: Option<&Party>) -> Party {
    let key = SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
    let cert = match issuer {
        Some(i) => issue(&params, key.public_key_spki(), Some(&i.cert), &i.key).expect("issue"),
        None => self_signed(&params, &key).expect("self-signed"),
    };
    Party { key, cert }
}

fn name(cn: &str) -> x509_cert::name::Name {
    name_from_parts(Some(cn), Some("Example"), None).expect("name")
}

/// cBRSKI Figure 1: domain CA (1) → sub-CA (2) → registrar (3); and a vendor CA with a pledge.
struct World {
    vendor: Party,
    masa_signer: Party,
    idevid: Party,
    root: Party,
    sub: Party,
    registrar: Party,
}

const SERIAL: &str = "JADA-8-2";

fn world() -> World {
    let vendor = party(profile::vendor_ca(name("Vendor CA")).expect("p"), None);
    let masa_signer = party(
        profile::masa_voucher_signer(name("MASA")).expect("p"),
        Some(&vendor),
    );
    let idevid = party(
        profile::idevid(SERIAL, Some("masa.example"), None).expect("p"),
        Some(&vendor),
    );
    let root = party(profile::domain_ca(name("Domain CA")).expect("p"), None);
    let sub = party(
        profile::domain_ca(name("Domain sub-CA")).expect("p"),
        Some(&root),
    );
    let registrar = party(
        profile::registrar(name("Registrar"), &["registrar.example"], &[]).expect("p"),
        Some(&sub),
    );
    World {
        vendor,
        masa_signer,
        idevid,
        root,
        sub,
        registrar,
    }
}

impl World {
    fn vendor_policy(&self) -> TrustPolicy {
        TrustPolicy::new(vec![self.vendor.cert.clone()])
    }

    fn registrar_spki(&self) -> Vec<u8> {
        self.registrar.key.public_key_spki().to_vec()
    }

    /// Registrar, sub-CA, domain CA: the chain the MASA validates, registrar first.
    fn full_chain(&self) -> Vec<Certificate> {
        vec![
            self.registrar.cert.clone(),
            self.sub.cert.clone(),
            self.root.cert.clone(),
        ]
    }

    /// A COSE PVR naming the registrar in `form` (cBRSKI §9.1.1), signed by the IDevID.
    fn pvr(&self, form: PinForm) -> (Nonce, Vec<u8>) {
        let mut r = VoucherRequest::new(SERIAL);
        r.assertion = Some(Assertion::Proximity);
        match form {
            PinForm::Cert => {
                r.proximity_registrar_cert = Some(self.registrar.cert.to_der().expect("der"))
            }
            PinForm::Pubk => r.proximity_registrar_pubk = Some(self.registrar_spki()),
            PinForm::PubkSha256 => {
                r.proximity_registrar_pubk_sha256 =
                    Some(spki_sha256(&self.registrar.cert).expect("sha256").to_vec())
            }
        }
        self.signed_pvr(r)
    }

    /// `r` with a fresh nonce, signed by the IDevID as a COSE PVR (cBRSKI §9.2.2).
    fn signed_pvr(&self, mut r: VoucherRequest) -> (Nonce, Vec<u8>) {
        let nonce = Nonce::generate().expect("nonce");
        r.nonce = Some(nonce.clone());
        let payload = r.to_payload(Format::Cose).expect("payload");
        let bytes = envelope::sign(Format::Cose, &payload, &self.idevid.key, &[]).expect("sign");
        (nonce, bytes)
    }

    /// The registrar's check of `pvr` over the pledge's DTLS session (RFC 8995 §5.3).
    fn at_registrar(
        &self,
        pvr: &[u8],
    ) -> Result<registrar::CheckedPledgeRequest, registrar::PledgeRequestError> {
        registrar::check_pledge_voucher_request(
            Format::Cose,
            pvr,
            std::slice::from_ref(&self.idevid.cert),
            &self.registrar.cert.to_der().expect("der"),
            &self.vendor_policy(),
        )
    }

    /// The RVR for `pvr`, carrying the registrar and its sub-CA (not the domain CA) and the
    /// pledge's chain (cBRSKI §8.1, §9.2.1).
    fn rvr(&self, pvr: &[u8]) -> (registrar::CheckedPledgeRequest, Vec<u8>) {
        self.rvr_carrying(pvr, &[self.registrar.cert.clone(), self.sub.cert.clone()])
    }

    /// The RVR for `pvr` carrying `chain` (registrar first) and the pledge's chain.
    fn rvr_carrying(
        &self,
        pvr: &[u8],
        chain: &[Certificate],
    ) -> (registrar::CheckedPledgeRequest, Vec<u8>) {
        let checked = self
            .at_registrar(pvr)
            .expect("the registrar accepts the PVR");
        let rvr = registrar::sign_registrar_voucher_request(
            &checked,
            time::OffsetDateTime::now_utc(),
            &self.registrar.key,
            chain,
        )
        .expect("RVR");
        (checked, rvr)
    }

    /// The registrar's check of the MASA's `voucher` before relaying it (RFC 8995 §5.6).
    fn relay(
        &self,
        pledge: &registrar::CheckedPledgeRequest,
        voucher: &[u8],
    ) -> Result<Voucher, registrar::RelayError> {
        registrar::check_voucher_for_relay(
            Format::Cose,
            voucher,
            pledge,
            &self.vendor_policy(),
            &[self.registrar.cert.clone(), self.sub.cert.clone()],
        )
    }

    fn at_masa(&self, rvr: &[u8]) -> masa::CheckedRegistrarRequest {
        masa::check_registrar_voucher_request(
            Format::Cose,
            rvr,
            &self.vendor_policy(),
            TimeCheck::Now,
            true,
        )
        .expect("the MASA accepts the RVR")
    }

    /// The MASA's voucher for `checked`, pinned as cBRSKI §8.2/§8.3 choose, signed in COSE as
    /// the `masa` daemon signs it (§9.2.3): the signer protected, the chain unprotected.
    fn voucher(&self, checked: &masa::CheckedRegistrarRequest) -> Vec<u8> {
        self.voucher_pinning(checked, &checked.pin(None).expect("pin"))
    }

    /// The MASA's voucher for `checked` pinning `pin`, signed as [`World::voucher`].
    fn voucher_pinning(&self, checked: &masa::CheckedRegistrarRequest, pin: &Pin) -> Vec<u8> {
        let v = masa::build_voucher_pinning(
            checked,
            Assertion::Proximity,
            pin,
            time::OffsetDateTime::now_utc(),
            None,
        );
        cose::sign_with_x5chain(
            &v.to_payload(Format::Cose).expect("payload"),
            &self.masa_signer.key,
            std::slice::from_ref(&self.masa_signer.cert),
            &[self.masa_signer.cert.clone(), self.vendor.cert.clone()],
        )
        .expect("sign")
    }
}

/// `cose` with its unprotected x5bag reordered by `order` (indexes into the bag).
fn reorder_bag(cose: &[u8], order: &[usize]) -> Vec<u8> {
    support::edit_x5bag(cose, |bag| {
        *bag = order.iter().map(|&i| bag[i].clone()).collect()
    })
}

// ---------------------------------------------------------------------------------------------
// §8.1, §9.2.1: the RVR's x5bag

#[test]
fn cbrski_8_1_masa_finds_the_registrar_and_the_pledge_in_one_x5bag() {
    let w = world();
    let (_, pvr) = w.pvr(PinForm::Cert);
    let (_, rvr) = w.rvr(&pvr);
    // Registrar, sub-CA, then the pledge's IDevID and vendor CA: the only self-signed
    // certificate in the bag is the vendor's.
    let bag = cose::parse(&rvr).expect("parse").certificates;
    assert_eq!(
        bag,
        vec![
            w.registrar.cert.clone(),
            w.sub.cert.clone(),
            w.idevid.cert.clone(),
            w.vendor.cert.clone()
        ]
    );
    let checked = w.at_masa(&rvr);
    assert_eq!(
        checked.registrar_chain,
        vec![w.registrar.cert.clone(), w.sub.cert.clone()],
        "the registrar's chain ends at the top it carried, not at the vendor CA"
    );
    assert_eq!(checked.idevid.as_ref(), Some(&w.idevid.cert));
    assert!(checked.proximity);
}

#[test]
fn cbrski_8_1_x5bag_order_does_not_matter() {
    let w = world();
    let (_, pvr) = w.pvr(PinForm::Cert);
    let (_, rvr) = w.rvr(&pvr);
    for order in [[3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2], [0, 2, 1, 3]] {
        let checked = w.at_masa(&reorder_bag(&rvr, &order));
        assert_eq!(
            checked.registrar_chain,
            vec![w.registrar.cert.clone(), w.sub.cert.clone()],
            "{order:?}"
        );
        assert_eq!(checked.idevid.as_ref(), Some(&w.idevid.cert), "{order:?}");
    }
}

#[test]
fn cbrski_8_1_x5bag_with_the_domain_ca_validates_to_it() {
    let w = world();
    let (_, pvr) = w.pvr(PinForm::Cert);
    let (_, rvr) = w.rvr_carrying(&pvr, &w.full_chain());
    assert_eq!(w.at_masa(&rvr).registrar_chain, w.full_chain());
}

// ---------------------------------------------------------------------------------------------
// §8.2: which certificate is pinned

/// `chain` pins `want` in a voucher with or without a nonce, in certificate form.
fn assert_pins(chain: &[Certificate], nonced: bool, want: &Certificate) {
    assert_eq!(pinned_certificate(chain, nonced, None), Some(want));
    for requested in [None, Some(PinForm::Cert)] {
        assert_eq!(
            choose_pin(chain, nonced, requested, None).expect("pin"),
            Pin::DomainCert(want.to_der().expect("der"))
        );
    }
}

#[test]
fn cbrski_8_2_nonced_voucher_pins_the_most_specific_ca() {
    let w = world();
    let chain = w.full_chain();
    assert_pins(&chain, true, &w.sub.cert);
    // Through the MASA: a nonced RVR carrying the whole chain.
    let (_, pvr) = w.pvr(PinForm::Cert);
    let checked = w.at_masa(&w.rvr_carrying(&pvr, &chain).1);
    assert_eq!(checked.domain_cert(), Some(&w.sub.cert));
    assert_eq!(
        checked.pin(None).expect("pin"),
        Pin::DomainCert(w.sub.cert.to_der().expect("der"))
    );
}

#[test]
fn cbrski_8_2_nonceless_voucher_pins_the_least_specific_ca() {
    let w = world();
    assert_pins(&w.full_chain(), false, &w.root.cert);
}

#[test]
fn cbrski_8_2_nonceless_voucher_pins_no_higher_than_the_policy_allows() {
    let w = world();
    let chain = w.full_chain();
    // The MASA's policy for this domain allows the sub-CA at most.
    assert_eq!(
        pinned_certificate(&chain, false, Some(&w.sub.cert)),
        Some(&w.sub.cert)
    );
    // A ceiling above the chain carried: the chain's top.
    let short = [w.registrar.cert.clone(), w.sub.cert.clone()];
    assert_eq!(
        pinned_certificate(&short, false, Some(&w.root.cert)),
        Some(&w.sub.cert)
    );
    // The ceiling does not lower a nonced voucher's pin.
    assert_eq!(
        pinned_certificate(&chain, true, Some(&w.root.cert)),
        Some(&w.sub.cert)
    );
}

#[test]
fn cbrski_8_2_a_registrar_without_ca_pins_itself() {
    let w = world();
    let alone = [w.registrar.cert.clone()];
    for nonced in [true, false] {
        assert_pins(&alone, nonced, &w.registrar.cert);
    }
    assert!(pinned_certificate(&[], true, None).is_none());
    assert!(choose_pin(&[], true, None, None).is_err());
}

// ---------------------------------------------------------------------------------------------
// §8.3: the pin's form follows the PVR's proximity form

/// The whole cBRSKI exchange for a PVR in `form`: registrar, MASA, registrar relay, pledge.
fn exchange(form: PinForm) -> (World, Pin) {
    let w = world();
    let (nonce, pvr) = w.pvr(form);
    let (at_registrar, rvr) = w.rvr(&pvr);
    let checked = w.at_masa(&rvr);
    assert_eq!(checked.proximity_form, Some(form));
    let voucher = w.voucher(&checked);
    let relayed = w
        .relay(&at_registrar, &voucher)
        .expect("the registrar relays the voucher");
    assert_eq!(relayed.nonce, Some(nonce.clone()));
    let request =
        VoucherRequest::from_payload(Format::Cose, &cose::parse(&pvr).expect("parse").payload)
            .expect("PVR payload");
    let expectations = PledgeExpectations::for_request(&request);
    assert_eq!(expectations.nonce, Some(nonce));
    let accepted = pledge::accept_voucher(
        Format::Cose,
        &cose::strip_unprotected_certs(&voucher).expect("strip"),
        &w.vendor_policy(),
        &expectations,
    )
    .expect("the pledge accepts the voucher");
    pledge::validate_registrar(
        &accepted.pin,
        &[
            w.registrar.cert.to_der().expect("der"),
            w.sub.cert.to_der().expect("der"),
        ],
        TimeCheck::Now,
    )
    .expect("the registrar matches the pin");
    (w, accepted.pin)
}

#[test]
fn cbrski_8_3_pubk_request_gets_pinned_domain_pubk() {
    let (w, pin) = exchange(PinForm::Pubk);
    assert_eq!(pin, Pin::DomainPubk(w.registrar_spki()));
}

#[test]
fn cbrski_8_3_pubk_sha256_request_gets_pinned_domain_pubk_sha256() {
    let (w, pin) = exchange(PinForm::PubkSha256);
    let hash = spki_sha256(&w.registrar.cert).expect("sha256");
    assert_eq!(pin, Pin::DomainPubkSha256(hash.to_vec()));
}

#[test]
fn cbrski_8_3_cert_request_gets_pinned_domain_cert() {
    let (w, pin) = exchange(PinForm::Cert);
    assert_eq!(pin, Pin::DomainCert(w.sub.cert.to_der().expect("der")));
}

#[test]
fn cbrski_8_3_the_registrar_relays_no_key_pin_but_its_own() {
    let w = world();
    let (_, pvr) = w.pvr(PinForm::Pubk);
    let (at_registrar, rvr) = w.rvr(&pvr);
    let checked = w.at_masa(&rvr);
    let other = SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key");
    for pin in [
        Pin::DomainPubk(other.public_key_spki().to_vec()),
        Pin::DomainPubkSha256(vec![0; 32]),
    ] {
        let signed = w.voucher_pinning(&checked, &pin);
        let err = w.relay(&at_registrar, &signed).expect_err("another key");
        assert!(matches!(err, registrar::RelayError::PinNotOurs), "{err:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// cBRSKI §9: the registrar accepts the key forms of proximity, for its own key only

#[test]
fn cbrski_9_registrar_checks_every_form_of_proximity() {
    let w = world();
    for form in [PinForm::Cert, PinForm::Pubk, PinForm::PubkSha256] {
        let (_, pvr) = w.pvr(form);
        w.at_registrar(&pvr).expect("its own registrar");
        let err = registrar::check_pledge_voucher_request(
            Format::Cose,
            &pvr,
            std::slice::from_ref(&w.idevid.cert),
            &w.sub.cert.to_der().expect("der"),
            &w.vendor_policy(),
        )
        .expect_err("another certificate and key");
        assert!(
            matches!(err, registrar::PledgeRequestError::ProximityMismatch),
            "{form:?}: {err:?}"
        );
        assert!(err.is_proximity_failure());
    }
    // None of the three forms; or two, one of which names another key: every form present
    // must name this registrar.
    let none = VoucherRequest::new(SERIAL);
    let mut mixed = VoucherRequest::new(SERIAL);
    mixed.proximity_registrar_cert = Some(w.registrar.cert.to_der().expect("der"));
    mixed.proximity_registrar_pubk = Some(w.sub.key.public_key_spki().to_vec());
    for (request, proximity_named) in [(none, false), (mixed, true)] {
        let (_, bytes) = w.signed_pvr(request);
        let err = w.at_registrar(&bytes).expect_err("refused");
        assert_eq!(
            matches!(err, registrar::PledgeRequestError::ProximityMismatch),
            proximity_named,
            "{err:?}"
        );
        assert!(err.is_proximity_failure());
    }
}

#[test]
fn cbrski_8_3_voucher_pin_is_read_back_in_the_form_it_was_written() {
    // The voucher carries exactly one pin leaf, of the chosen form.
    let w = world();
    let (_, pvr) = w.pvr(PinForm::PubkSha256);
    let (_, rvr) = w.rvr(&pvr);
    let checked = w.at_masa(&rvr);
    let pin = checked.pin(None).expect("pin");
    let signed = w.voucher(&checked);
    let back = Voucher::from_payload(Format::Cose, &cose::parse(&signed).expect("parse").payload)
        .expect("decode");
    assert_eq!(back.pin(None), Some(pin));
    assert!(back.pinned_domain_cert.is_none() && back.pinned_domain_pubk.is_none());
}
