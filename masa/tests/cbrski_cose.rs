//! The `masa` binary with cBRSKI requests: COSE voucher-requests in, COSE vouchers out
//! (application/voucher+cose, cBRSKI §9.2), and the pin chosen by §8.2 and §8.3.

mod support;

use brski_common::audit::AuditLog;
use brski_common::brski::{paths, pledge};
use brski_common::envelope::{Format, cose};
use brski_common::pki::chain::{TimeCheck, TrustPolicy};
use brski_common::pki::ext::{domain_id_base64, spki_sha256};
use brski_common::voucher::{Pin, PinForm, PledgeExpectations, Voucher};
use brski_service::files::read_certs;
use der::Encode;
use support::{Domain, Masa, Requests};

const COSE: &str = "application/voucher+cose";

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// POST a COSE RVR to `path`; the status and body, after checking the answer's media type.
async fn post_cose(masa: &Masa, path: &str, rvr: &[u8]) -> (u16, Vec<u8>) {
    let (status, ct, body) = masa.post(path, Some(COSE), None, rvr.to_vec()).await;
    if status == 200 && path == paths::REQUEST_VOUCHER {
        assert_eq!(ct, COSE);
    }
    (status, body)
}

/// The pledge's acceptance of `voucher` after the registrar removed its unprotected
/// certificates (cBRSKI §6.8), and the registrar's chain checked against the pin.
fn accepted_by_pledge(masa: &Masa, domain: &Domain, req: &Requests, voucher: &[u8]) -> Pin {
    let stripped = cose::strip_unprotected_certs(voucher).expect("strip");
    let accepted = pledge::accept_voucher(
        Format::Cose,
        &stripped,
        &TrustPolicy::new(vec![masa.vendor_ca.clone()]),
        &PledgeExpectations::for_request(&req.pvr.request)
            .with_trusted_time(time::OffsetDateTime::now_utc()),
    )
    .expect("the pledge accepts the voucher");
    pledge::validate_registrar(
        &accepted.pin,
        &[domain.registrar.der(), domain.ca.der()],
        TimeCheck::Now,
    )
    .expect("the registrar matches the pin");
    accepted.pin
}

#[tokio::test]
async fn cbrski_9_2_3_cose_voucher_carries_the_masa_chain_and_survives_the_strip() {
    let masa = Masa::start("log-only");
    let pledge = masa.mint("SN-COSE");
    let domain = Domain::new("Cose");
    let req = pledge.requests(&domain, Format::Cose, &masa.vendor_ca);
    let (status, body) = post_cose(&masa, paths::REQUEST_VOUCHER, &req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));

    // The signer's certificate protected (for the pledge), signer and vendor CA unprotected
    // (for the registrar, §9.2.3); the latter go when the registrar strips them (§6.8).
    let signer = read_certs(&masa.dir.join("masa-signer.crt.pem"))
        .expect("signer")
        .remove(0);
    assert_eq!(
        cose::parse(&body).expect("parse").certificates,
        vec![signer.clone(), signer.clone(), masa.vendor_ca.clone()]
    );
    let stripped = cose::strip_unprotected_certs(&body).expect("strip");
    assert_eq!(
        cose::parse(&stripped).expect("parse").certificates,
        vec![signer]
    );

    let pin = accepted_by_pledge(&masa, &domain, &req, &body);
    assert_eq!(pin, Pin::DomainCert(domain.ca.der()));
}

#[tokio::test]
async fn cbrski_8_3_key_named_registrar_gets_a_key_pin() {
    let masa = Masa::start("log-only");
    let pledge = masa.mint("SN-RPK");
    let domain = Domain::new("Rpk");
    let spki = domain
        .registrar
        .cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .expect("SPKI");
    for (form, want) in [
        (PinForm::Pubk, Pin::DomainPubk(spki.clone())),
        (
            PinForm::PubkSha256,
            Pin::DomainPubkSha256(spki_sha256(&domain.registrar.cert).expect("h").to_vec()),
        ),
        (PinForm::Cert, Pin::DomainCert(domain.ca.der())),
    ] {
        let req = pledge.cose_requests(&domain, &masa.vendor_ca, form);
        let (status, body) = post_cose(&masa, paths::REQUEST_VOUCHER, &req.rvr).await;
        assert_eq!(status, 200, "{form:?}: {}", text(&body));
        let voucher =
            Voucher::from_cbor(&cose::parse(&body).expect("parse").payload).expect("voucher");
        assert_eq!(voucher.pin(None), Some(want.clone()), "{form:?}");
        assert_eq!(accepted_by_pledge(&masa, &domain, &req, &body), want);
    }

    // The audit log names the domain by its CA whatever the pin's form (RFC 8995 §5.8.2).
    let req = pledge.cose_requests(&domain, &masa.vendor_ca, PinForm::Pubk);
    let (status, body) = post_cose(&masa, paths::REQUEST_AUDIT_LOG, &req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
    let log = AuditLog::from_json(&body).expect("log");
    let ca_id = domain_id_base64(&domain.ca.cert).expect("domainID");
    assert!(log.events.iter().all(|e| e.domain_id == ca_id), "{log:?}");
}

/// The `pinned-domain-cert` of a nonceless voucher for `domain` (RFC 8995 §7.3), as the pledge
/// accepts it.
async fn nonceless_pin(masa: &Masa, pledge: &support::Pledge, domain: &Domain) -> Option<Vec<u8>> {
    let (status, _, body) = masa.request_voucher(&pledge.nonceless_rvr(domain)).await;
    assert_eq!(status, 200, "{}", text(&body));
    let accepted = pledge::accept_voucher(
        Format::Cms,
        &body,
        &TrustPolicy::new(vec![masa.vendor_ca.clone()]),
        &PledgeExpectations::new(pledge.serial.clone(), None)
            .with_nonceless(true)
            .with_trusted_time(time::OffsetDateTime::now_utc()),
    )
    .expect("nonceless voucher");
    accepted.voucher.pinned_domain_cert
}

#[tokio::test]
async fn cbrski_8_2_two_level_domain_nonced_pins_the_sub_ca_nonceless_the_claimed_ca() {
    let masa = Masa::start("claimed");
    let pledge = masa.mint("SN-TWO");
    let domain = Domain::two_level("Two");
    let root = domain.root.as_ref().expect("root");
    let claim = |cert: &x509_cert::Certificate, file: &str| {
        let path = masa.tmp.path().join(file);
        std::fs::write(
            &path,
            brski_service::files::certs_to_pem(std::slice::from_ref(cert)),
        )
        .expect("write");
        let out = masa.cli(&[
            "claim",
            "--serial",
            "SN-TWO",
            "--domain-ca",
            path.to_str().expect("utf-8"),
        ]);
        assert!(out.status.success(), "{out:?}");
    };

    // Claimed by the domain CA: a nonceless voucher pins it, the least specific CA.
    claim(&root.cert, "root.pem");
    assert_eq!(
        nonceless_pin(&masa, &pledge, &domain).await,
        Some(root.der())
    );

    // A nonced voucher pins the most specific CA, the sub-CA.
    let req = pledge.cose_requests(&domain, &masa.vendor_ca, PinForm::Cert);
    let (status, body) = post_cose(&masa, paths::REQUEST_VOUCHER, &req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(
        accepted_by_pledge(&masa, &domain, &req, &body),
        Pin::DomainCert(domain.ca.der())
    );

    // Claimed by the sub-CA only: a nonceless voucher pins no higher than it.
    claim(&domain.ca.cert, "sub.pem");
    assert_eq!(
        nonceless_pin(&masa, &pledge, &domain).await,
        Some(domain.ca.der())
    );
}
