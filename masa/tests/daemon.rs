//! The `masa` binary end to end: `init`, `mint`, `serve` on loopback, `claim`, `release` and
//! `audit-log`, driven with voucher-requests built by the protocol core and checked with the
//! pledge's own verification and `openssl cms -verify`.

mod support;

use base64::Engine;
use brski_common::audit::{Assertion as LogAssertion, AuditLog};
use brski_common::brski::{paths, pledge};
use brski_common::envelope::Format;
use brski_common::input::B64;
use brski_common::pki::chain::{TimeCheck, TrustPolicy};
use brski_common::pki::ext::domain_id_base64;
use brski_common::voucher::{Assertion, Nonce, PledgeExpectations, Voucher};
use std::time::Duration;
use support::{Domain, Masa};

const CMS: &str = "application/voucher-cms+json";
const JWS: &str = "application/voucher-jws+json";
const COSE: &str = "application/voucher+cose";

fn vendor_policy(masa: &Masa) -> TrustPolicy {
    TrustPolicy::new(vec![masa.vendor_ca.clone()])
}

/// The pledge's checks (RFC 8995 §5.6.1) of a voucher for a request with `nonce`.
fn accept(
    masa: &Masa,
    format: Format,
    bytes: &[u8],
    serial: &str,
    nonce: Option<Nonce>,
) -> pledge::AcceptedVoucher {
    let nonceless = nonce.is_none();
    pledge::accept_voucher(
        format,
        bytes,
        &vendor_policy(masa),
        &PledgeExpectations::new(serial, nonce)
            .with_nonceless(nonceless)
            .with_trusted_time(time::OffsetDateTime::now_utc()),
    )
    .expect("the pledge accepts the voucher")
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// `openssl cms -verify` of a DER CMS voucher against the vendor CA; the verified content.
fn openssl_cms_verify(masa: &Masa, voucher: &[u8]) -> Vec<u8> {
    let dir = masa.tmp.path();
    let input = dir.join("voucher.der");
    let output = dir.join("voucher.json");
    std::fs::write(&input, voucher).expect("write voucher");
    let out = std::process::Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER"])
        .arg("-in")
        .arg(&input)
        .arg("-CAfile")
        .arg(masa.dir.join("vendor-ca.crt.pem"))
        .arg("-out")
        .arg(&output)
        .output()
        .expect("openssl must be installed to check CMS vouchers");
    assert!(
        out.status.success(),
        "openssl cms -verify failed: {}",
        text(&out.stderr)
    );
    std::fs::read(&output).expect("verified content")
}

#[tokio::test]
async fn rfc8995_5_6_voucher_in_each_format_pins_the_domain_ca() {
    let masa = Masa::start("log-only");
    let pledge = masa.mint("SN-HAPPY");
    let domain = Domain::new("Happy");
    let ca_der = domain.ca.der();

    // CMS, the default: also verified independently by openssl.
    let req = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);
    let (status, ct, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(ct, CMS);
    let content = openssl_cms_verify(&masa, &body);
    let voucher = Voucher::from_json(&content).expect("voucher JSON");
    assert_eq!(voucher.serial_number, "SN-HAPPY");
    assert_eq!(voucher.nonce.as_ref(), Some(&req.pvr.nonce));
    assert_eq!(voucher.pinned_domain_cert.as_deref(), Some(&ca_der[..]));
    assert_eq!(voucher.assertion, Some(Assertion::Proximity));
    assert!(
        voucher.expires_on.is_none(),
        "nonced vouchers do not expire"
    );
    let accepted = accept(
        &masa,
        Format::Cms,
        &body,
        "SN-HAPPY",
        Some(req.pvr.nonce.clone()),
    );
    pledge::validate_registrar(
        &accepted.pin,
        &[domain.registrar.der(), domain.ca.der()],
        TimeCheck::Now,
    )
    .expect("the registrar chains to the pin");

    // JWS and COSE by Accept, for requests in each format.
    for (request_format, accept_header, want) in [
        (Format::Cms, JWS, Format::Jws),
        (Format::Cms, COSE, Format::Cose),
        (Format::Jws, "*/*", Format::Jws),
        (
            Format::Cose,
            "application/voucher+cose, */*;q=0.1",
            Format::Cose,
        ),
        (
            Format::Jws,
            "text/plain;q=1, application/voucher-cms+json;q=0.5",
            Format::Cms,
        ),
    ] {
        let req = pledge.requests(&domain, request_format, &masa.vendor_ca);
        let (status, ct, body) = masa
            .post(
                paths::REQUEST_VOUCHER,
                Some(request_format.media_type()),
                Some(accept_header),
                req.rvr,
            )
            .await;
        assert_eq!(
            status,
            200,
            "{request_format:?} {accept_header}: {}",
            text(&body)
        );
        assert_eq!(ct, want.media_type(), "{accept_header}");
        let accepted = accept(&masa, want, &body, "SN-HAPPY", Some(req.pvr.nonce.clone()));
        assert_eq!(
            accepted.voucher.pinned_domain_cert.as_deref(),
            Some(&ca_der[..])
        );
        assert_eq!(accepted.voucher.serial_number, "SN-HAPPY");
    }
}

#[tokio::test]
async fn rfc8995_5_6_base64_request_gets_a_base64_voucher() {
    let masa = Masa::start("log-only");
    let pledge = masa.mint("SN-B64");
    let domain = Domain::new("B64");
    let req = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);
    let (status, ct, body) = masa.request_voucher(B64.encode(&req.rvr).as_bytes()).await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(ct, CMS);
    assert_ne!(body.first(), Some(&0x30), "the answer is not raw DER");
    let der = B64.decode(&body).expect("the answer is base64");
    let accepted = accept(&masa, Format::Cms, &der, "SN-B64", Some(req.pvr.nonce));
    assert_eq!(accepted.voucher.assertion, Some(Assertion::Proximity));
}

#[tokio::test]
async fn rfc8995_5_8_1_audit_log_after_a_voucher() {
    let masa = Masa::start("log-only");
    let pledge = masa.mint("SN-AUDIT");
    let domain = Domain::new("Audit");
    let req = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);

    // Before any voucher the domain has never owned the device.
    let (status, _, body) = masa.request_audit_log(&req.rvr).await;
    assert_eq!(status, 404, "{}", text(&body));

    let (status, _, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));

    let (status, ct, body) = masa.request_audit_log(&req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(ct, "application/json");
    let log = AuditLog::from_json(&body).expect("RFC 8995 §5.8.1 JSON");
    assert_eq!(log.version, 1);
    assert_eq!(log.events.len(), 1);
    let event = &log.events[0];
    let nonce = req.pvr.nonce.json_string().into_owned();
    let domain_id = domain_id_base64(&domain.ca.cert).expect("domainID");
    assert_eq!(event.nonce.as_deref(), Some(nonce.as_str()));
    assert_eq!(event.domain_id, domain_id);
    assert_eq!(event.assertion, LogAssertion::Proximity);
    event.date_time().expect("RFC 3339 date");

    // The operator's view of the same log.
    let out = masa.cli(&["audit-log", "--serial", "SN-AUDIT"]);
    assert!(out.status.success(), "{out:?}");
    let printed = AuditLog::from_json(&out.stdout).expect("printed JSON");
    assert_eq!(printed.events, log.events);

    // A second voucher for the same domain: registrars get the abridged log (the latest nonced
    // event, truncated 1), the operator the full one.
    let second = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);
    let (status, _, body) = masa.request_voucher(&second.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
    let (status, _, body) = masa.request_audit_log(&req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
    let abridged = AuditLog::from_json(&body).expect("log");
    assert_eq!(abridged.events.len(), 1);
    let second_nonce = second.pvr.nonce.json_string().into_owned();
    assert_eq!(
        abridged.events[0].nonce.as_deref(),
        Some(second_nonce.as_str())
    );
    assert_eq!(abridged.events[0].truncated, Some(1));
    assert_eq!(abridged.truncation.nonced_duplicates, 1);
    let out = masa.cli(&["audit-log", "--serial", "SN-AUDIT"]);
    assert_eq!(
        AuditLog::from_json(&out.stdout).expect("log").events.len(),
        2
    );
    let out = masa.cli(&["audit-log", "--serial", "SN-AUDIT", "--abridged"]);
    assert_eq!(AuditLog::from_json(&out.stdout).expect("log"), abridged);

    // A domain that never received a voucher for the device gets 404 (never-owner).
    let stranger = Domain::new("Stranger");
    let other = pledge.requests(&stranger, Format::Cms, &masa.vendor_ca);
    let (status, _, body) = masa.request_audit_log(&other.rvr).await;
    assert_eq!(status, 404, "{}", text(&body));

    // Unknown serials fail on the command line.
    let out = masa.cli(&["audit-log", "--serial", "NO-SUCH"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("never minted"), "{out:?}");
}

#[tokio::test]
async fn rfc8995_5_5_4_registrar_without_cmc_ra_is_refused_403() {
    let masa = Masa::start("log-only");
    let pledge = masa.mint("SN-RA");
    let domain = Domain::without_cmc_ra("NoRA");
    let req = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);
    let (status, ct, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 403, "{}", text(&body));
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert!(text(&body).contains("id-kp-cmcRA"), "{}", text(&body));
}

#[tokio::test]
async fn rfc8995_5_6_serial_never_minted_is_404() {
    let masa = Masa::start("log-only");
    let pledge = masa.unminted("SN-GHOST");
    let domain = Domain::new("Ghost");
    let req = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);
    let (status, _, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 404, "{}", text(&body));
    assert!(text(&body).contains("unknown"), "{}", text(&body));

    // A second IDevID for a minted serial (same vendor CA, not the one minted) is not the device.
    masa.mint("SN-TWIN");
    let twin = masa.unminted("SN-TWIN");
    let req = twin.requests(&domain, Format::Cms, &masa.vendor_ca);
    let (status, _, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 404, "{}", text(&body));
    assert!(
        text(&body).contains("not the one this MASA minted"),
        "{}",
        text(&body)
    );
}

#[tokio::test]
async fn rfc8995_5_5_6_nonce_mismatch_between_rvr_and_pvr_is_403() {
    let masa = Masa::start("log-only");
    let pledge = masa.mint("SN-NONCE");
    let domain = Domain::new("Nonce");
    let (_, rvr) = pledge.edited_rvr(&domain, &masa.vendor_ca, |r| {
        r.nonce = Some(Nonce::generate().expect("nonce"));
    });
    let (status, _, body) = masa.request_voucher(&rvr).await;
    assert_eq!(status, 403, "{}", text(&body));
    assert!(text(&body).contains("nonce"), "{}", text(&body));
}

#[tokio::test]
async fn rfc8995_5_6_garbage_body_is_400_and_nothing_is_stored() {
    let masa = Masa::start("log-only");
    masa.mint("SN-GARBAGE");
    for body in [b"garbage".to_vec(), vec![0x30, 0x82, 0xff], Vec::new()] {
        let (status, ct, reply) = masa.request_voucher(&body).await;
        assert_eq!(status, 400, "{body:?}: {}", text(&reply));
        assert!(ct.starts_with("text/plain"));
        assert_eq!(text(&reply).lines().count(), 1, "one-line reason");
    }
    let out = masa.cli(&["audit-log", "--serial", "SN-GARBAGE"]);
    assert!(out.status.success(), "{out:?}");
    let log = AuditLog::from_json(&out.stdout).expect("log");
    assert!(log.events.is_empty(), "{log:?}");
}

#[tokio::test]
async fn rfc8995_5_6_unknown_content_type_is_415_and_unsupported_accept_is_406() {
    let masa = Masa::start("log-only");
    let pledge = masa.mint("SN-MEDIA");
    let domain = Domain::new("Media");
    let req = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);
    for ct in [Some("application/json"), Some("text/plain"), None] {
        let (status, _, body) = masa
            .post(paths::REQUEST_VOUCHER, ct, None, req.rvr.clone())
            .await;
        assert_eq!(status, 415, "{ct:?}: {}", text(&body));
    }
    for accept in ["application/pkcs7-mime", "application/voucher-cms+json;q=0"] {
        let (status, _, body) = masa
            .post(
                paths::REQUEST_VOUCHER,
                Some(CMS),
                Some(accept),
                req.rvr.clone(),
            )
            .await;
        assert_eq!(status, 406, "{accept}: {}", text(&body));
    }
    // None of this was logged; the same request then succeeds.
    let (status, _, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
    let out = masa.cli(&["audit-log", "--serial", "SN-MEDIA"]);
    let log = AuditLog::from_json(&out.stdout).expect("log");
    assert_eq!(log.events.len(), 1);

    // Two Accept fields form one list: the JWS offer in the second one is taken.
    let accepted_jws = masa
        .client()
        .post(masa.url(paths::REQUEST_VOUCHER))
        .header("content-type", CMS)
        .header("accept", "image/png")
        .header("accept", JWS)
        .body(pledge.requests(&domain, Format::Cms, &masa.vendor_ca).rvr)
        .send()
        .await
        .expect("response");
    assert_eq!(accepted_jws.status().as_u16(), 200);
    assert_eq!(
        accepted_jws
            .headers()
            .get("content-type")
            .map(|v| v.as_bytes()),
        Some(JWS.as_bytes())
    );

    // Oversized bodies are refused before any parsing.
    let (status, _, _) = masa.request_voucher(&vec![0x30; 300 * 1024]).await;
    assert_eq!(status, 413);

    // Paths other than the two endpoints are 404.
    let (status, _, _) = masa
        .post("/.well-known/est/simpleenroll", Some(CMS), None, req.rvr)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn rfc8995_5_5_4_log_only_refuses_nonceless_requests_403() {
    let masa = Masa::start("log-only");
    let pledge = masa.mint("SN-NONCELESS");
    let domain = Domain::new("Nonceless");
    let (status, _, body) = masa.request_voucher(&pledge.nonceless_rvr(&domain)).await;
    assert_eq!(status, 403, "{}", text(&body));
    let (_, rvr) = pledge.edited_rvr(&domain, &masa.vendor_ca, |_| {});
    let (status, _, body) = masa.request_voucher(&rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
}

#[tokio::test]
async fn first_owner_refuses_a_second_domain_until_released() {
    let masa = Masa::start("first-owner");
    let pledge = masa.mint("SN-TOFU");
    let first = Domain::new("First");
    let second = Domain::new("Second");

    let req = pledge.requests(&first, Format::Cms, &masa.vendor_ca);
    let (status, _, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
    // The owner may come back (renewal, RFC 8995 §5.5.1).
    let again = pledge.requests(&first, Format::Jws, &masa.vendor_ca);
    let (status, _, body) = masa
        .post(paths::REQUEST_VOUCHER, Some(JWS), None, again.rvr)
        .await;
    assert_eq!(status, 200, "{}", text(&body));

    let req2 = pledge.requests(&second, Format::Cms, &masa.vendor_ca);
    let (status, _, body) = masa.request_voucher(&req2.rvr).await;
    assert_eq!(status, 403, "{}", text(&body));
    assert!(
        text(&body).contains("owned by another domain"),
        "{}",
        text(&body)
    );

    let out = masa.cli(&["release", "--serial", "SN-TOFU"]);
    assert!(out.status.success(), "{out:?}");
    let (status, _, body) = masa.request_voucher(&req2.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
    let accepted = accept(&masa, Format::Cms, &body, "SN-TOFU", Some(req2.pvr.nonce));
    assert_eq!(
        accepted.voucher.pinned_domain_cert,
        Some(second.ca.der()),
        "the new owner is pinned"
    );
    // Now the first domain is the stranger.
    let (status, _, _) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 403);

    let out = masa.cli(&["release", "--serial", "NO-SUCH"]);
    assert!(!out.status.success());
}

#[tokio::test]
async fn claimed_policy_unclaimed_404_other_domain_403_nonceless_voucher_expires() {
    let masa = Masa::start_with("claimed", |t| {
        t.replace(
            "nonceless-voucher-lifetime = 1200",
            "nonceless-voucher-lifetime = 600",
        )
    });
    let pledge = masa.mint("SN-CLAIM");
    let owner = Domain::new("Owner");
    let other = Domain::new("Other");

    let req = pledge.requests(&owner, Format::Cms, &masa.vendor_ca);
    let (status, _, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 404, "unclaimed: {}", text(&body));

    let ca_file = masa.tmp.path().join("owner-ca.pem");
    owner.write_ca(&ca_file);
    let out = masa.cli(&[
        "claim",
        "--serial",
        "SN-CLAIM",
        "--domain-ca",
        ca_file.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{out:?}");

    let other_req = pledge.requests(&other, Format::Cms, &masa.vendor_ca);
    let (status, _, body) = masa.request_voucher(&other_req.rvr).await;
    assert_eq!(status, 403, "other domain: {}", text(&body));
    let (status, _, body) = masa.request_voucher(&pledge.nonceless_rvr(&other)).await;
    assert_eq!(status, 403, "other domain, nonceless: {}", text(&body));

    // Nonced request from the owner: verified, no expiry.
    let (status, _, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
    let accepted = accept(&masa, Format::Cms, &body, "SN-CLAIM", Some(req.pvr.nonce));
    assert_eq!(accepted.voucher.assertion, Some(Assertion::Verified));
    assert!(accepted.voucher.expires_on.is_none());

    // Nonceless request from the owner: a voucher with expires-on = now + lifetime.
    let before = time::OffsetDateTime::now_utc();
    let (status, _, body) = masa.request_voucher(&pledge.nonceless_rvr(&owner)).await;
    assert_eq!(status, 200, "{}", text(&body));
    let accepted = accept(&masa, Format::Cms, &body, "SN-CLAIM", None);
    let v = &accepted.voucher;
    assert_eq!(v.assertion, Some(Assertion::Verified));
    assert!(v.nonce.is_none());
    assert_eq!(v.pinned_domain_cert, Some(owner.ca.der()));
    let expires = v.expires_on.as_ref().expect("expires-on").instant();
    let lifetime = expires - before;
    assert!(
        lifetime > time::Duration::seconds(590) && lifetime <= time::Duration::seconds(605),
        "{lifetime}"
    );

    // Both vouchers are in the log; the nonceless one with a null nonce.
    let out = masa.cli(&["audit-log", "--serial", "SN-CLAIM"]);
    let log = AuditLog::from_json(&out.stdout).expect("log");
    assert_eq!(log.events.len(), 2);
    assert!(log.events[0].nonce.is_some());
    assert!(log.events[1].nonce.is_none());
    assert!(
        log.events
            .iter()
            .all(|e| e.assertion == LogAssertion::Verified)
    );

    // Claims need a minted serial.
    let out = masa.cli(&[
        "claim",
        "--serial",
        "NO-SUCH",
        "--domain-ca",
        ca_file.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_request_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut masa = Masa::start("log-only");
    let pledge = masa.mint("SN-TERM");
    let domain = Domain::new("Term");
    let req = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);

    let tls = brski_common::tls::anchored_client_config(
        None,
        vec![masa.vendor_ca.clone()],
        TimeCheck::Now,
    )
    .expect("tls config");
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", masa.port))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut stream = connector.connect(name, tcp).await.expect("handshake");

    // Headers and half of the body, then SIGTERM while the server waits for the rest.
    let (first, rest) = req.rvr.split_at(req.rvr.len() / 2);
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {CMS}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        paths::REQUEST_VOUCHER,
        req.rvr.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(first).await.expect("write");
    stream.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;
    masa.sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(masa.running(), "the server waits for the in-flight request");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", masa.port)).is_err(),
        "no new connections after SIGTERM"
    );

    stream.write_all(rest).await.expect("write rest");
    stream.flush().await.expect("flush");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read response");
    let response = text(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let status = masa.wait(Duration::from_secs(15));
    assert!(status.success(), "exit status {status}: {}", masa.log());

    // The voucher's audit entry is durable and the database is consistent.
    if masa.pg.is_none() {
        let db = masa.dir.join("masa.db");
        let db = brski_service::store::Db::open(&db, "SELECT 1;").expect("open database");
        assert!(db.integrity_ok().expect("check"), "PRAGMA integrity_check");
    }
    let count = masa
        .count("SELECT COUNT(*) FROM audit_log WHERE serial = 'SN-TERM'")
        .await;
    assert_eq!(count, 1);
    let log = masa.log();
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("voucher issued"), "{log}");
}

#[tokio::test]
async fn rfc8995_5_6_jws_request_in_base64_is_answered_in_base64() {
    let masa = Masa::start("log-only");
    let pledge = masa.mint("SN-JWS64");
    let domain = Domain::new("Jws64");
    let req = pledge.requests(&domain, Format::Jws, &masa.vendor_ca);
    let (status, ct, body) = masa
        .post(
            paths::REQUEST_VOUCHER,
            Some(JWS),
            None,
            B64.encode(&req.rvr).into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{}", text(&body));
    assert_eq!(ct, JWS);
    let json = B64.decode(&body).expect("base64 answer");
    let accepted = accept(&masa, Format::Jws, &json, "SN-JWS64", Some(req.pvr.nonce));
    assert_eq!(accepted.voucher.pinned_domain_cert, Some(domain.ca.der()));
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn init_and_mint_write_what_the_contract_names() {
    use brski_common::pki::ext::{masa_url, serial_number};
    use brski_service::config::PledgeConfig;
    use brski_service::files::read_certs;

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("m");
    let d = dir.to_str().expect("utf-8");
    let out = support::masa(&["init", "--dir", d, "--listen", "127.0.0.1:9555"]);
    assert!(out.status.success(), "{out:?}");
    for f in [
        "vendor-ca.crt.pem",
        "masa-signer.crt.pem",
        "masa-tls.crt.pem",
        "masa.toml",
        "masa.db",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    for key in [
        "vendor-ca.key.pem",
        "masa-signer.key.pem",
        "masa-tls.key.pem",
    ] {
        assert_eq!(mode(&dir.join(key)), 0o600, "{key}");
    }
    let toml = std::fs::read_to_string(dir.join("masa.toml")).expect("masa.toml");
    for key in [
        "listen",
        "masa-url",
        "ownership",
        "nonceless-voucher-lifetime",
        "database",
    ] {
        assert!(toml.contains(&format!("# {key}")), "{key} is documented");
    }
    assert!(toml.contains("ownership = \"log-only\""), "{toml}");

    // The TLS certificate names localhost and the loopback addresses (checked by openssl).
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(dir.join("masa-tls.crt.pem"))
        .output()
        .expect("openssl must be installed");
    let san = text(&out.stdout);
    for name in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
    ] {
        assert!(san.contains(name), "{san}");
    }
    // The voucher signer and TLS certificates chain to the vendor CA.
    let out = std::process::Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(dir.join("vendor-ca.crt.pem"))
        .arg(dir.join("masa-signer.crt.pem"))
        .arg(dir.join("masa-tls.crt.pem"))
        .output()
        .expect("openssl must be installed");
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A second init into the same directory is refused.
    let out = support::masa(&["init", "--dir", d]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("already exists"), "{out:?}");

    let config = dir.join("masa.toml");
    let c = config.to_str().expect("utf-8");
    let pledge_dir = tmp.path().join("p");
    let p = pledge_dir.to_str().expect("utf-8");
    let out = support::masa(&[
        "mint",
        "--config",
        c,
        "--serial",
        "SN-CLI",
        "--out",
        p,
        "--registrar",
        "https://r.example:8443",
    ]);
    assert!(out.status.success(), "{out:?}");
    let cfg = PledgeConfig::load(&pledge_dir.join("pledge.toml")).expect("pledge.toml");
    assert_eq!(cfg.serial_number, "SN-CLI");
    assert_eq!(cfg.registrar.as_deref(), Some("https://r.example:8443"));
    assert_eq!(cfg.idevid_cert, pledge_dir.join("idevid.crt.pem"));
    assert_eq!(
        cfg.manufacturer_anchor,
        pledge_dir.join("manufacturer-ca.crt.pem")
    );
    assert_eq!(mode(&pledge_dir.join("idevid.key.pem")), 0o600);
    let idevid = read_certs(&cfg.idevid_cert).expect("idevid").remove(0);
    assert_eq!(serial_number(&idevid).as_deref(), Some("SN-CLI"));
    assert_eq!(
        masa_url(&idevid).expect("extension").as_deref(),
        Some("localhost:9555"),
        "HOST:PORT from --name and --listen"
    );
    assert_eq!(
        std::fs::read(&cfg.manufacturer_anchor).expect("anchor"),
        std::fs::read(dir.join("vendor-ca.crt.pem")).expect("vendor CA")
    );
    let out = std::process::Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&cfg.manufacturer_anchor)
        .arg(&cfg.idevid_cert)
        .output()
        .expect("openssl must be installed");
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A serial is minted once.
    let again = tmp.path().join("p2");
    let out = support::masa(&[
        "mint",
        "--config",
        c,
        "--serial",
        "SN-CLI",
        "--out",
        again.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("already minted"), "{out:?}");
    assert!(!again.join("idevid.key.pem").exists());

    // --masa-url overrides, --name as an IP address, --ownership.
    let dir2 = tmp.path().join("m2");
    let out = support::masa(&[
        "init",
        "--dir",
        dir2.to_str().expect("utf-8"),
        "--name",
        "10.0.0.7",
        "--masa-url",
        "masa.example.com",
        "--ownership",
        "claimed",
    ]);
    assert!(out.status.success(), "{out:?}");
    let toml = std::fs::read_to_string(dir2.join("masa.toml")).expect("masa.toml");
    assert!(toml.contains("masa-url = \"masa.example.com\""), "{toml}");
    assert!(toml.contains("ownership = \"claimed\""), "{toml}");
    assert!(toml.contains("listen = \"127.0.0.1:9443\""), "{toml}");

    // Bad input: a one-line reason and a failure status, never a panic.
    for args in [
        vec!["init", "--dir", d, "--ownership", "anyone"],
        vec![
            "mint",
            "--config",
            "/nonexistent/masa.toml",
            "--serial",
            "X",
            "--out",
            p,
        ],
        vec!["mint", "--config", c, "--serial", "", "--out", p],
        vec!["serve", "--config", "/nonexistent/masa.toml"],
    ] {
        let out = support::masa(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(!text(&out.stderr).contains("panicked"), "{args:?}: {out:?}");
        assert!(!text(&out.stderr).trim().is_empty(), "{args:?}");
    }
}

#[tokio::test]
async fn a_device_row_whose_idevid_does_not_parse_is_a_500_and_changes_nothing() {
    let masa = Masa::start("log-only");
    let pledge = masa.mint("SN-BROKEN");
    let domain = Domain::new("Broken");
    let req = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);
    let corrupted = masa
        .execute(
            "UPDATE devices SET idevid_cert = x'3000' WHERE serial = 'SN-BROKEN'",
            "UPDATE devices SET idevid_cert = '\\x3000'::bytea WHERE serial = 'SN-BROKEN'",
        )
        .await;
    assert_eq!(corrupted, 1, "corrupt the row");
    let (status, _, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 500, "{}", text(&body));
    let vouchers = masa
        .count("SELECT COUNT(*) FROM audit_log WHERE serial = 'SN-BROKEN'")
        .await;
    assert_eq!(vouchers, 0, "no voucher was logged");

    // Another device is still served.
    let other = masa.mint("SN-FINE");
    let req = other.requests(&domain, Format::Cms, &masa.vendor_ca);
    let (status, _, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));
}

/// With its state in PostgreSQL, a MASA whose database goes away answers 503 with Retry-After
/// (the registrar may try again), and serves again once the database is back, without a
/// restart of its own; what was committed before is still there.
#[tokio::test]
async fn database_unavailable_is_503_with_retry_after_and_passes() {
    let masa = Masa::start_on(true, "first-owner", |t| t);
    let pg = masa.pg.as_ref().expect("postgres");
    let pledge = masa.mint("SN-PGDOWN");
    let domain = Domain::new("Down");
    let req = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);
    let (status, _, body) = masa.request_voucher(&req.rvr).await;
    assert_eq!(status, 200, "{}", text(&body));

    pg.stop().expect("stop PostgreSQL");
    let again = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);
    let response = masa
        .client()
        .post(masa.url(paths::REQUEST_VOUCHER))
        .header("content-type", CMS)
        .body(again.rvr.clone())
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    assert!(
        masa.log().contains("outcome=\"unavailable\""),
        "{}",
        masa.log()
    );

    pg.restart().expect("start PostgreSQL again");
    let mut status = 0;
    for _ in 0..20 {
        let (s, _, _) = masa.request_voucher(&again.rvr).await;
        status = s;
        if s == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "served again: {}", masa.log());
    assert_eq!(
        masa.count("SELECT COUNT(*) FROM audit_log WHERE serial = 'SN-PGDOWN'")
            .await,
        2,
        "both vouchers logged, nothing lost"
    );
}

/// Issue 15: two MASA instances on one PostgreSQL database under first-owner, and two domains
/// asking for the same 100 devices at once, each domain through the other instance for half
/// of them: each device gets exactly one owner, the other domain is refused with 403, and the
/// audit log holds one entry per device, naming the domain that was answered 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_owner_race_over_two_instances_gives_each_device_one_owner() {
    let one = std::sync::Arc::new(Masa::start_on(true, "first-owner", |t| t));
    let two = std::sync::Arc::new(one.another_instance());
    let domains = [Domain::new("Red"), Domain::new("Blue")];
    let ids: Vec<String> = domains
        .iter()
        .map(|d| domain_id_base64(&d.ca.cert).expect("domainID"))
        .collect();
    let pledges: Vec<_> = (0..100)
        .map(|i| one.mint(&format!("SN-RACE-{i:03}")))
        .collect();
    let mut asks = tokio::task::JoinSet::new();
    for (i, p) in pledges.iter().enumerate() {
        for (d, domain) in domains.iter().enumerate() {
            let rvr = p.requests(domain, Format::Cms, &one.vendor_ca).rvr;
            let masa = if (i + d) % 2 == 0 {
                one.clone()
            } else {
                two.clone()
            };
            let serial = p.serial.clone();
            asks.spawn(async move { (serial, d, masa.request_voucher(&rvr).await.0) });
        }
    }
    let mut answers = std::collections::BTreeMap::<String, Vec<(usize, u16)>>::new();
    while let Some(joined) = asks.join_next().await {
        let (serial, d, status) = joined.expect("task");
        answers.entry(serial).or_default().push((d, status));
    }
    assert_eq!(answers.len(), 100);
    let audited: std::collections::BTreeMap<String, String> = one
        .text_pairs("SELECT serial, domain_id FROM audit_log WHERE serial LIKE 'SN-RACE-%'")
        .await
        .into_iter()
        .collect();
    let owners: std::collections::BTreeMap<String, String> = one
        .text_pairs("SELECT serial, domain_id FROM owners WHERE serial LIKE 'SN-RACE-%'")
        .await
        .into_iter()
        .collect();
    let entries = one
        .count("SELECT COUNT(*) FROM audit_log WHERE serial LIKE 'SN-RACE-%'")
        .await;
    assert_eq!(
        entries, 100,
        "one audit entry per device, none for a refusal"
    );
    for (serial, mut got) in answers {
        got.sort();
        let statuses: Vec<u16> = got.iter().map(|(_, s)| *s).collect();
        assert!(
            statuses == [200, 403] || statuses == [403, 200],
            "{serial}: {got:?}"
        );
        let winner = got.iter().find(|(_, s)| *s == 200).map(|(d, _)| *d);
        let winner_id = &ids[winner.expect("a winner")];
        assert_eq!(owners.get(&serial), Some(winner_id), "{serial}: owner");
        assert_eq!(audited.get(&serial), Some(winner_id), "{serial}: audit log");
    }
    assert!(
        two.log().contains("outcome="),
        "the second instance answered"
    );
}
