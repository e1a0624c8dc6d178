//! The real `registrar` binary on loopback, driven by pledges (reqwest over provisional TLS)
//! and an in-test MASA: the RFC 8995 §5 exchange, EST (RFC 7030, §5.9), telemetry (§5.7,
//! §5.9.4), every refusal with its exact status, and a clean SIGTERM.

mod support;

use base64::Engine;
use brski_common::brski::{masa, paths, pledge};
use brski_common::envelope::Format;
use brski_common::est::{CsrAttrs, RequestedKey};
use brski_common::input::B64;
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::chain::TimeCheck;
use brski_common::pki::{NotAfter, name_from_parts, profile};
use brski_common::telemetry::StatusTelemetry;
use brski_common::voucher::Assertion;
use const_oid::db::rfc5912::SECP_256_R_1;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tempfile::TempDir;

const JSON: &str = "application/json";
const PKCS10: &str = "application/pkcs10";

/// A successful `/enrollstatus` sent with `http` (8995 §5.9.4).
async fn enroll_success(s: &Setup, http: &reqwest::Client) -> Answer {
    send(
        http.post(s.reg.url(paths::ENROLL_STATUS))
            .header(reqwest::header::CONTENT_TYPE, JSON)
            .body(success_json()),
    )
    .await
    .expect("enrollstatus")
}

fn success_json() -> Vec<u8> {
    StatusTelemetry::success().to_json().expect("json")
}

/// `openssl verify -CAfile domain-ca.crt.pem CERT`.
fn openssl_verify(reg: &RegistrarProc, cert: &x509_cert::Certificate, name: &str) {
    let path = reg.dir.join(name);
    std::fs::write(&path, pem(std::slice::from_ref(cert))).expect("write cert");
    let out = std::process::Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(reg.dir.join("domain-ca.crt.pem"))
        .arg(&path)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_happy_path_voucher_est_telemetry_and_reenroll() {
    let s = setup().await;
    let p = s.pledge("SN-HAPPY");
    for key_file in ["registrar.key.pem", "domain-ca.key.pem"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.reg.dir.join(key_file))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key_file}");
    }

    // 8995 §5.1: the registrar presents its certificate and the domain CA.
    let registrar_cert = p.registrar_cert(&s.reg).await;
    assert_eq!(registrar_cert, der(&s.reg.cert()));
    assert_eq!(
        p.seen.chain.lock().expect("lock").get(1),
        Some(&der(&s.reg.domain_ca()))
    );

    // 8995 §5.2-§5.6: voucher relayed, verified by the pledge, pinning the domain CA.
    let pvr = p.pvr(Format::Cms, &registrar_cert);
    let a = p.request_voucher(&s.reg, &pvr).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.content_type(), "application/voucher-cms+json");
    let accepted = p.accept(&s.vendor, Format::Cms, &a.body, &pvr);
    assert_eq!(accepted.voucher.assertion, Some(Assertion::Proximity));
    assert_eq!(
        accepted.voucher.pinned_domain_cert,
        Some(der(&s.reg.domain_ca()))
    );
    assert_eq!(s.masa.calls(), 1);

    // 8995 §5.5: what the MASA got is a registrar voucher-request signed by the registrar,
    // carrying the pledge's request unchanged.
    let (ct, rvr) = s
        .masa
        .state
        .last_request
        .lock()
        .expect("lock")
        .clone()
        .expect("MASA was asked");
    assert_eq!(ct, "application/voucher-cms+json");
    let checked = masa::check_registrar_voucher_request(
        Format::Cms,
        &rvr,
        &s.vendor.policy(),
        TimeCheck::Now,
        true,
    )
    .expect("RVR verifies");
    assert_eq!(checked.registrar_chain[0], s.reg.cert());
    assert_eq!(checked.serial_number, "SN-HAPPY");
    assert_eq!(
        checked.request.prior_signed_voucher_request.as_deref(),
        Some(pvr.bytes.as_slice())
    );
    assert!(checked.request.proximity_registrar_cert.is_none());

    // 8995 §5.7: voucher status.
    let a = p
        .post(&s.reg, paths::VOUCHER_STATUS, JSON, success_json())
        .await;
    assert_eq!(a.status, 200, "{}", a.text());

    // 8995 §5.9.1, RFC 7030 §4.1: /cacerts with curl, presenting the IDevID.
    let cert_file = s.tmp.path().join("idevid.crt.pem");
    let key_file = s.tmp.path().join("idevid.key.pem");
    std::fs::write(&cert_file, pem(std::slice::from_ref(&p.idevid.cert))).expect("write");
    std::fs::write(&key_file, p.idevid.key.to_pkcs8_pem()).expect("write");
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--fail", "-k", "--cert"])
        .arg(&cert_file)
        .arg("--key")
        .arg(&key_file)
        .arg(s.reg.url(paths::CACERTS))
        .output()
        .await
        .expect("curl must be installed");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("text");
    assert!(
        text.trim()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=\r\n".contains(&b)),
        "base64 body: {text}"
    );
    let cas = brski_common::est::decode_certs_only_body(text.as_bytes()).expect("certs-only");
    assert_eq!(cas, vec![s.reg.domain_ca()]);

    // 8995 §5.9.2: /csrattrs asks for P-256.
    let a = p.get(&s.reg, paths::CSRATTRS).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type(), "application/csrattrs");
    let attrs = CsrAttrs::from_body(&a.body).expect("csrattrs");
    assert_eq!(
        attrs.requested_key(),
        Some(RequestedKey::Ec {
            curve: Some(SECP_256_R_1)
        })
    );

    // 8995 §5.9.3: /simpleenroll with the IDevID subject.
    let ldevid_key = Arc::new(key());
    let subject = p.idevid.cert.tbs_certificate().subject().clone();
    let a = p
        .post(
            &s.reg,
            paths::SIMPLE_ENROLL,
            PKCS10,
            csr_body(&subject, &*ldevid_key),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        a.content_type(),
        "application/pkcs7-mime; smime-type=certs-only"
    );
    let ldevid = single_cert(&a.body);
    assert_eq!(ldevid.tbs_certificate().subject(), &subject);
    assert_eq!(
        der::Encode::to_der(ldevid.tbs_certificate().subject_public_key_info()).expect("spki"),
        ldevid_key.public_key_spki()
    );
    openssl_verify(&s.reg, &ldevid, "ldevid.crt.pem");

    // 8995 §5.9.4: enrollstatus on a new connection authenticated by the LDevID.
    let (ldevid_http, _) = client(&[der(&ldevid)], ldevid_key.clone());
    let a = enroll_success(&s, &ldevid_http).await;
    assert_eq!(a.status, 200, "{}", a.text());

    let entry = s.reg.pledge("SN-HAPPY").await.expect("listed");
    assert_eq!(entry["state"], "enrolled");
    assert_eq!(entry["voucher_assertion"], "proximity");
    assert_eq!(entry["voucher_status"]["status"], true);
    assert_eq!(entry["voucher_status"]["client_cert"], "idevid");
    assert_eq!(entry["enrollstatus"]["status"], true);
    assert_eq!(entry["enrollstatus"]["client_cert"], "ldevid");
    assert_eq!(entry["ldevid_serial"], cert_serial_hex(&ldevid));
    let year = time::OffsetDateTime::now_utc().year() + 1;
    assert!(
        entry["ldevid_not_after"]
            .as_str()
            .is_some_and(|t| t.starts_with(&year.to_string())),
        "{entry}"
    );
    let table = s.reg.pledges(&["list"]).await;
    assert!(table.status.success());
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.starts_with("SERIAL"), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("SN-HAPPY")
            && l.contains("enrolled")
            && l.contains("proximity")),
        "{table}"
    );

    // RFC 7030 §4.2.2: /simplereenroll with the LDevID, same subject, new key.
    let renewed_key = key();
    let a = send(
        ldevid_http
            .post(s.reg.url(paths::SIMPLE_REENROLL))
            .header(reqwest::header::CONTENT_TYPE, PKCS10)
            .body(csr_body(ldevid.tbs_certificate().subject(), &renewed_key)),
    )
    .await
    .expect("simplereenroll");
    assert_eq!(a.status, 200, "{}", a.text());
    let renewed = single_cert(&a.body);
    assert_ne!(cert_serial_hex(&renewed), cert_serial_hex(&ldevid));
    assert_eq!(renewed.tbs_certificate().subject(), &subject);
    openssl_verify(&s.reg, &renewed, "renewed.crt.pem");
    let entry = s.reg.pledge("SN-HAPPY").await.expect("listed");
    assert_eq!(entry["ldevid_serial"], cert_serial_hex(&renewed));
    assert_eq!(entry["certificates"], 2);

    // The renewed LDevID is superseded; until its successor is used it may renew again (a
    // lost answer): the same key gets the same certificate (RFC 7030 §4.2.2).
    let a = send(
        ldevid_http
            .post(s.reg.url(paths::SIMPLE_REENROLL))
            .header(reqwest::header::CONTENT_TYPE, PKCS10)
            .body(csr_body(ldevid.tbs_certificate().subject(), &renewed_key)),
    )
    .await
    .expect("simplereenroll");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(single_cert(&a.body), renewed);
    // Once the renewed one is in use, the old one is revoked.
    let (renewed_http, _) = client(&[der(&renewed)], Arc::new(renewed_key));
    let a = enroll_success(&s, &renewed_http).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = send(
        ldevid_http
            .post(s.reg.url(paths::SIMPLE_REENROLL))
            .header(reqwest::header::CONTENT_TYPE, PKCS10)
            .body(csr_body(ldevid.tbs_certificate().subject(), &key())),
    )
    .await
    .expect("simplereenroll");
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(
        a.text().contains("is revoked: superseded by"),
        "{}",
        a.text()
    );
    assert_eq!(a.content_type(), "text/plain; charset=utf-8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_2_voucher_in_jws_cose_base64_and_per_accept() {
    let s = setup().await;
    let p = s.pledge("SN-FORMATS");
    let cert = p.registrar_cert(&s.reg).await;
    for format in [Format::Jws, Format::Cose] {
        let pvr = p.pvr(format, &cert);
        let a = p.request_voucher(&s.reg, &pvr).await;
        assert_eq!(a.status, 200, "{format:?}: {}", a.text());
        assert_eq!(a.content_type(), format.media_type());
        p.accept(&s.vendor, format, &a.body, &pvr);
    }

    // A base64 body is answered in base64 (field leniency; the voucher itself unchanged).
    let pvr = p.pvr(Format::Cms, &cert);
    let a = p
        .post(
            &s.reg,
            paths::REQUEST_VOUCHER,
            Format::Cms.media_type(),
            B64.encode(&pvr.bytes),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let voucher = brski_common::est::decode_base64_body(&a.body).expect("base64 answer");
    p.accept(&s.vendor, Format::Cms, &voucher, &pvr);

    // The pledge's Accept reaches the MASA: a JWS request answered with a CMS voucher.
    let pvr = p.pvr(Format::Jws, &cert);
    let a = send(
        p.http
            .post(s.reg.url(paths::REQUEST_VOUCHER))
            .header(reqwest::header::CONTENT_TYPE, Format::Jws.media_type())
            .header(reqwest::header::ACCEPT, Format::Cms.media_type())
            .body(pvr.bytes.clone()),
    )
    .await
    .expect("request");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.content_type(), Format::Cms.media_type());
    p.accept(&s.vendor, Format::Cms, &a.body, &pvr);

    // The legacy path works too (8995 §8.3.1).
    let pvr = p.pvr(Format::Cms, &cert);
    let a = p
        .post(
            &s.reg,
            paths::LEGACY_REQUEST_VOUCHER,
            Format::Cms.media_type(),
            pvr.bytes.clone(),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    p.accept(&s.vendor, Format::Cms, &a.body, &pvr);
    assert_eq!(s.masa.calls(), 5);
    // One pooled connection to the MASA for all five requests.
    let peers = s.masa.state.peers.lock().expect("lock").clone();
    assert_eq!(peers.len(), 5);
    assert!(peers.iter().all(|p| *p == peers[0]), "{peers:?}");
    let entry = s.reg.pledge("SN-FORMATS").await.expect("listed");
    assert_eq!(entry["vouchers"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_6_same_nonce_gets_the_stored_voucher_again() {
    let s = setup().await;
    let p = s.pledge("SN-RETRY");
    let cert = p.registrar_cert(&s.reg).await;
    let pvr = p.pvr(Format::Cms, &cert);
    let first = p.request_voucher(&s.reg, &pvr).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let again = p.request_voucher(&s.reg, &pvr).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.body, first.body, "identical voucher bytes");
    assert_eq!(s.masa.calls(), 1, "the MASA is asked once");
    p.accept(&s.vendor, Format::Cms, &again.body, &pvr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_3_unknown_manufacturer_is_refused_in_the_tls_handshake() {
    let s = setup().await;
    let stranger = Vendor::new("Stranger");
    let p = Pledge::new(
        "SN-STRANGER",
        stranger.mint("SN-STRANGER", Some(&s.masa.url())),
    );
    let result = send(p.http.get(s.reg.url(paths::CACERTS))).await;
    assert!(result.is_err(), "handshake must fail: {result:?}");
    let pvr = p.pvr(Format::Cms, &der(&s.reg.cert()));
    let result = send(
        p.http
            .post(s.reg.url(paths::REQUEST_VOUCHER))
            .header(reqwest::header::CONTENT_TYPE, Format::Cms.media_type())
            .body(pvr.bytes.clone()),
    )
    .await;
    assert!(result.is_err(), "handshake must fail: {result:?}");
    assert_eq!(s.masa.calls(), 0);
    assert!(s.reg.pledge("SN-STRANGER").await.is_none());
    assert!(s.reg.log().contains("tls-rejected"), "{}", s.reg.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_3_registrar_refuses_bad_pledge_requests() {
    let s = setup().await;
    let p = s.pledge("SN-BAD");
    let cert = p.registrar_cert(&s.reg).await;

    // Signed by another key (another IDevID of the same serial) → 403.
    let other = s.vendor.mint("SN-BAD", Some(&s.masa.url()));
    let forged = pledge::build_pledge_voucher_request(
        Format::Cms,
        "SN-BAD",
        &cert,
        &*other.key,
        std::slice::from_ref(&other.cert),
        None,
    )
    .expect("pvr");
    let a = p.request_voucher(&s.reg, &forged).await;
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(
        a.text().contains("not signed by the TLS client"),
        "{}",
        a.text()
    );

    // serial-number differs from the IDevID's → 403.
    let wrong_serial = pledge::build_pledge_voucher_request(
        Format::Cms,
        "SN-SOMEONE-ELSE",
        &cert,
        &*p.idevid.key,
        std::slice::from_ref(&p.idevid.cert),
        None,
    )
    .expect("pvr");
    let a = p.request_voucher(&s.reg, &wrong_serial).await;
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(a.text().contains("serial-number"), "{}", a.text());

    // proximity-registrar-cert of another registrar → 401 (8995 §5.3).
    let other_ca = Vendor::new("Other Domain");
    let other_registrar = issued(
        &profile::registrar(
            name_from_parts(Some("other registrar"), None, None).expect("name"),
            &["other.example"],
            &[],
        )
        .expect("params"),
        &other_ca.ca,
    );
    let mitm = p.pvr(Format::Cms, &other_registrar.der());
    let a = p.request_voucher(&s.reg, &mitm).await;
    assert_eq!(a.status, 401, "{}", a.text());
    assert!(
        a.text().contains("proximity-registrar-cert"),
        "{}",
        a.text()
    );

    // Unknown Content-Type → 415; Accept without a voucher format → 406.
    let good = p.pvr(Format::Cms, &cert);
    let a = p
        .post(
            &s.reg,
            paths::REQUEST_VOUCHER,
            "application/json",
            good.bytes.clone(),
        )
        .await;
    assert_eq!(a.status, 415, "{}", a.text());
    let a = send(
        p.http
            .post(s.reg.url(paths::REQUEST_VOUCHER))
            .header(reqwest::header::CONTENT_TYPE, Format::Cms.media_type())
            .header(reqwest::header::ACCEPT, "text/html")
            .body(good.bytes.clone()),
    )
    .await
    .expect("request");
    assert_eq!(a.status, 406, "{}", a.text());

    // Unknown resources → 404.
    let a = p.get(&s.reg, "/.well-known/brski/nothing-here").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.content_type(), "text/plain; charset=utf-8");

    assert_eq!(s.masa.calls(), 0, "nothing reached the MASA");
    assert!(
        s.reg.pledge("SN-BAD").await.is_none(),
        "refused requests store nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_6_masa_down_is_502() {
    let s = setup().await;
    let closed = format!("127.0.0.1:{}", free_port());
    let p = Pledge::new("SN-NOMASA", s.vendor.mint("SN-NOMASA", Some(&closed)));
    let cert = p.registrar_cert(&s.reg).await;
    let a = p.request_voucher(&s.reg, &p.pvr(Format::Cms, &cert)).await;
    assert_eq!(a.status, 502, "{}", a.text());
    assert!(a.text().starts_with("MASA unreachable"), "{}", a.text());
    let entry = s.reg.pledge("SN-NOMASA").await.expect("pledge recorded");
    assert_eq!(entry["vouchers"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_6_masa_refusal_is_relayed_with_its_status_and_reason() {
    let s = setup_with(
        MasaMode::Refuse(403, "device SN-REFUSED is not sold to this domain"),
        &[],
        |t| t,
    )
    .await;
    let p = s.pledge("SN-REFUSED");
    let cert = p.registrar_cert(&s.reg).await;
    let a = p.request_voucher(&s.reg, &p.pvr(Format::Cms, &cert)).await;
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(a.text().contains("403"), "{}", a.text());
    assert!(a.text().contains("not sold to this domain"), "{}", a.text());
    assert_eq!(s.masa.calls(), 1);

    // A voucher that does not verify with the pledge's manufacturer is not relayed → 502.
    s.masa.set_mode(MasaMode::IssueWithForeignKey);
    let a = p.request_voucher(&s.reg, &p.pvr(Format::Cms, &cert)).await;
    assert_eq!(a.status, 502, "{}", a.text());
    assert!(
        a.text().starts_with("voucher from the MASA rejected"),
        "{}",
        a.text()
    );
    let entry = s.reg.pledge("SN-REFUSED").await.expect("pledge recorded");
    assert_eq!(entry["vouchers"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_3_denied_pledge_is_404() {
    let s = setup().await;
    let out = s.reg.pledges(&["deny", "SN-DENIED"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = s.pledge("SN-DENIED");
    let cert = p.registrar_cert(&s.reg).await;
    let a = p.request_voucher(&s.reg, &p.pvr(Format::Cms, &cert)).await;
    assert_eq!(a.status, 404, "{}", a.text());
    assert_eq!(s.masa.calls(), 0);
    let entry = s.reg.pledge("SN-DENIED").await.expect("listed");
    assert_eq!(entry["state"], "denied");
    assert_eq!(entry["vouchers"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_6_pending_pledge_gets_202_until_allowed() {
    let s = setup_with(MasaMode::Issue, &["--accept", "pending"], |t| t).await;
    let p = s.pledge("SN-PENDING");
    let cert = p.registrar_cert(&s.reg).await;
    let pvr = p.pvr(Format::Cms, &cert);
    let a = p.request_voucher(&s.reg, &pvr).await;
    assert_eq!(a.status, 202, "{}", a.text());
    assert_eq!(
        a.headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    assert_eq!(s.masa.calls(), 0);
    assert_eq!(
        s.reg.pledge("SN-PENDING").await.expect("recorded")["state"],
        "pending"
    );
    // Still pending on retry.
    let a = p.request_voucher(&s.reg, &pvr).await;
    assert_eq!(a.status, 202, "{}", a.text());

    let out = s.reg.pledges(&["allow", "SN-PENDING"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 8995 §5.6: the pledge resends the identical bytes.
    let a = p.request_voucher(&s.reg, &pvr).await;
    assert_eq!(a.status, 200, "{}", a.text());
    p.accept(&s.vendor, Format::Cms, &a.body, &pvr);
    assert_eq!(
        s.reg.pledge("SN-PENDING").await.expect("recorded")["state"],
        "allowed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_9_enrollment_refusals() {
    let s = setup().await;
    let p = s.pledge("SN-EARLY");
    let subject = p.idevid.cert.tbs_certificate().subject().clone();
    let k = key();

    // Before any voucher → 403.
    let a = p
        .post(&s.reg, paths::SIMPLE_ENROLL, PKCS10, csr_body(&subject, &k))
        .await;
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(a.text().contains("no voucher"), "{}", a.text());

    // After a voucher whose voucher_status reported failure → 403.
    p.obtain_voucher(&s.reg, &s.vendor).await;
    let failed = StatusTelemetry::failure("pin does not match")
        .to_json()
        .expect("json");
    let a = p.post(&s.reg, paths::VOUCHER_STATUS, JSON, failed).await;
    assert_eq!(a.status, 200);
    let a = p
        .post(&s.reg, paths::SIMPLE_ENROLL, PKCS10, csr_body(&subject, &k))
        .await;
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(a.text().contains("voucher failed"), "{}", a.text());
    let entry = s.reg.pledge("SN-EARLY").await.expect("listed");
    assert_eq!(entry["voucher_status"]["status"], false);
    assert_eq!(entry["voucher_status"]["reason"], "pin does not match");

    // A new voucher reopens enrollment.
    p.obtain_voucher(&s.reg, &s.vendor).await;
    let a = p
        .post(&s.reg, paths::SIMPLE_ENROLL, PKCS10, csr_body(&subject, &k))
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let ldevid = single_cert(&a.body);

    // /simplereenroll with an IDevID → 403.
    let a = p
        .post(
            &s.reg,
            paths::SIMPLE_REENROLL,
            PKCS10,
            csr_body(&subject, &k),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.text());

    // /simpleenroll with an LDevID → 403.
    let (ldevid_http, _) = client(&[der(&ldevid)], Arc::new(k));
    let a = send(
        ldevid_http
            .post(s.reg.url(paths::SIMPLE_ENROLL))
            .header(reqwest::header::CONTENT_TYPE, PKCS10)
            .body(csr_body(&subject, &key())),
    )
    .await
    .expect("request");
    assert_eq!(a.status, 403, "{}", a.text());

    // An LDevID is no IDevID: requestvoucher → 403.
    let cert = p.registrar_cert(&s.reg).await;
    let a = send(
        ldevid_http
            .post(s.reg.url(paths::REQUEST_VOUCHER))
            .header(reqwest::header::CONTENT_TYPE, Format::Cms.media_type())
            .body(p.pvr(Format::Cms, &cert).bytes),
    )
    .await
    .expect("request");
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(a.text().contains("not an IDevID"), "{}", a.text());

    // Another IDevID with the same serial obtains the latest voucher: the first may no longer
    // enroll on it.
    let twin = Pledge::new("SN-EARLY", s.vendor.mint("SN-EARLY", Some(&s.masa.url())));
    twin.obtain_voucher(&s.reg, &s.vendor).await;
    let a = p
        .post(
            &s.reg,
            paths::SIMPLE_ENROLL,
            PKCS10,
            csr_body(&subject, &key()),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(a.text().contains("another IDevID"), "{}", a.text());

    // A certificate of the domain CA that this registrar did not issue by EST → 403 for
    // /simplereenroll and telemetry.
    let ca = s.reg.domain_ca_party();
    let stray = issued(&profile::ldevid(subject.clone()).expect("params"), &ca);
    let (stray_http, _) = client(&[stray.der()], stray.key.clone());
    let a = send(
        stray_http
            .post(s.reg.url(paths::SIMPLE_REENROLL))
            .header(reqwest::header::CONTENT_TYPE, PKCS10)
            .body(csr_body(&subject, &*stray.key)),
    )
    .await
    .expect("request");
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(a.text().contains("not an LDevID issued by this registrar"));
    let a = send(
        stray_http
            .post(s.reg.url(paths::ENROLL_STATUS))
            .header(reqwest::header::CONTENT_TYPE, JSON)
            .body(success_json()),
    )
    .await
    .expect("request");
    assert_eq!(a.status, 403, "{}", a.text());

    // A denied pledge cannot enroll or renew.
    let out = s.reg.pledges(&["deny", "SN-EARLY"]).await;
    assert!(out.status.success());
    let a = p
        .post(
            &s.reg,
            paths::SIMPLE_ENROLL,
            PKCS10,
            csr_body(&subject, &key()),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.text());
    let a = send(
        ldevid_http
            .post(s.reg.url(paths::SIMPLE_REENROLL))
            .header(reqwest::header::CONTENT_TYPE, PKCS10)
            .body(csr_body(&subject, &key())),
    )
    .await
    .expect("request");
    assert_eq!(a.status, 403, "{}", a.text());
    let entry = s.reg.pledge("SN-EARLY").await.expect("listed");
    assert_eq!(entry["certificates"], 1);
    assert_eq!(entry["state"], "denied");
}

/// A CSR whose signature no longer verifies.
fn tampered_csr(subject: &x509_cert::name::Name) -> String {
    let mut der = brski_common::pki::build_csr(subject, &key(), &Default::default()).expect("csr");
    let last = der.len() - 1;
    der[last] ^= 0x01;
    brski_common::est::encode_base64_body(&der)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_malformed_bodies_are_400_and_store_nothing() {
    let s = setup().await;
    let p = s.pledge("SN-MALFORMED");
    let cert = p.registrar_cert(&s.reg).await;

    // requestvoucher: garbage in each format.
    for format in [Format::Cms, Format::Jws, Format::Cose] {
        let a = p
            .post(
                &s.reg,
                paths::REQUEST_VOUCHER,
                format.media_type(),
                b"\x30\x03\x02\x01".to_vec(),
            )
            .await;
        assert_eq!(a.status, 400, "{format:?}: {}", a.text());
    }
    assert!(s.reg.pledge("SN-MALFORMED").await.is_none());
    assert_eq!(s.masa.calls(), 0);

    let pvr = p.pvr(Format::Cms, &cert);
    let a = p.request_voucher(&s.reg, &pvr).await;
    assert_eq!(a.status, 200, "{}", a.text());

    // Telemetry: not JSON, JSON without "status", wrong type; and an unsupported
    // Content-Type (415).
    for path in [paths::VOUCHER_STATUS, paths::ENROLL_STATUS] {
        for body in [
            &b"{not json"[..],
            br#"{"version":1}"#,
            br#"{"version":1,"status":"maybe"}"#,
        ] {
            let a = p.post(&s.reg, path, JSON, body.to_vec()).await;
            assert_eq!(
                a.status,
                400,
                "{path} {:?}: {}",
                String::from_utf8_lossy(body),
                a.text()
            );
        }
        let a = p.post(&s.reg, path, "text/xml", success_json()).await;
        assert_eq!(a.status, 415, "{path}: {}", a.text());
    }

    // simpleenroll: not base64, base64 of garbage, bad signature, wrong key type, wrong subject.
    let subject = p.idevid.cert.tbs_certificate().subject().clone();
    let p384 = SoftwareKey::generate(SignatureAlgorithm::EcdsaP384Sha384).expect("key");
    let other_subject = name_from_parts(Some("someone else"), None, None).expect("name");
    for (what, body) in [
        ("not base64", "!!! not base64 !!!".to_string()),
        ("not a CSR", B64.encode(b"\x30\x03\x02\x01\x00")),
        ("bad signature", tampered_csr(&subject)),
        ("P-384 key", csr_body(&subject, &p384)),
        ("other subject", csr_body(&other_subject, &key())),
    ] {
        let a = p.post(&s.reg, paths::SIMPLE_ENROLL, PKCS10, body).await;
        assert_eq!(a.status, 400, "{what}: {}", a.text());
    }
    let a = p
        .post(
            &s.reg,
            paths::SIMPLE_ENROLL,
            "text/plain",
            csr_body(&subject, &key()),
        )
        .await;
    assert_eq!(a.status, 415, "{}", a.text());

    let entry = s.reg.pledge("SN-MALFORMED").await.expect("listed");
    assert_eq!(entry["vouchers"], 1);
    assert_eq!(entry["telemetry_reports"], 0);
    assert_eq!(entry["certificates"], 0);
    assert!(entry["voucher_status"].is_null());
    assert!(entry["enrollstatus"].is_null());
    assert!(entry["ldevid_serial"].is_null());

    // simplereenroll: garbage and a subject other than the LDevID's.
    let k = Arc::new(key());
    let a = p
        .post(
            &s.reg,
            paths::SIMPLE_ENROLL,
            PKCS10,
            csr_body(&subject, &*k),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let ldevid = single_cert(&a.body);
    let (ldevid_http, _) = client(&[der(&ldevid)], k);
    for (what, body) in [
        ("not base64", "%%%".to_string()),
        ("bad signature", tampered_csr(&subject)),
        ("other subject", csr_body(&other_subject, &key())),
    ] {
        let a = send(
            ldevid_http
                .post(s.reg.url(paths::SIMPLE_REENROLL))
                .header(reqwest::header::CONTENT_TYPE, PKCS10)
                .body(body),
        )
        .await
        .expect("request");
        assert_eq!(a.status, 400, "{what}: {}", a.text());
    }
    let entry = s.reg.pledge("SN-MALFORMED").await.expect("listed");
    assert_eq!(entry["certificates"], 1);
    assert_eq!(entry["ldevid_serial"], cert_serial_hex(&ldevid));
    assert_eq!(entry["telemetry_reports"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_2_8_manufacturer_masa_url_for_idevids_without_the_extension() {
    let tmp = TempDir::new().expect("tempdir");
    let vendor = Arc::new(Vendor::new("Vendor"));
    let masa = start_masa(vendor.clone(), MasaMode::Issue).await;
    let ca_file = vendor.write_ca(tmp.path());
    let dir = tmp.path().join("registrar");
    let addr = init_registrar(&dir, &ca_file, &[]).await;
    let p = Pledge::new("SN-NOEXT", vendor.mint("SN-NOEXT", None));

    let reg = RegistrarProc::start(&dir, addr).await;
    let cert = p.registrar_cert(&reg).await;
    let a = p.request_voucher(&reg, &p.pvr(Format::Cms, &cert)).await;
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(a.text().contains("no MASA URL"), "{}", a.text());
    drop(reg);

    let url = masa.url();
    edit_config(&dir, |t| {
        t.replace(
            "# masa-url = \"masa.example.com:9443\"",
            &format!("masa-url = \"{url}\""),
        )
    });
    let reg = RegistrarProc::start(&dir, addr).await;
    let p = Pledge::new("SN-NOEXT", p.idevid);
    p.obtain_voucher(&reg, &vendor).await;
    assert_eq!(masa.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_2_6_2_expired_idevid_accepted_only_when_configured() {
    let s = setup().await;
    let mut params = profile::idevid("SN-OLD", Some(&s.masa.url()), None).expect("params");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = NotAfter::At(now - time::Duration::days(1));
    let old = issued(&params, &s.vendor.ca);
    let p = Pledge::new("SN-OLD", old);
    p.obtain_voucher(&s.reg, &s.vendor).await;

    // allow-expired-idevid = false: the handshake is refused.
    let tmp = TempDir::new().expect("tempdir");
    let ca_file = s.vendor.write_ca(tmp.path());
    let dir = tmp.path().join("strict");
    let addr = init_registrar(&dir, &ca_file, &[]).await;
    edit_config(&dir, |t| {
        t.replace(
            "allow-expired-idevid = true",
            "allow-expired-idevid = false",
        )
    });
    let strict = RegistrarProc::start(&dir, addr).await;
    let p = Pledge::new("SN-OLD", p.idevid);
    assert!(send(p.http.get(strict.url(paths::CACERTS))).await.is_err());
    // A current IDevID still connects.
    let fresh = s.pledge("SN-FRESH");
    assert_eq!(fresh.get(&strict, paths::CACERTS).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_9_3_ldevid_subject_template() {
    let s = setup_with(MasaMode::Issue, &[], |t| {
        t.replace(
            "# ldevid-subject = \"CN={serial},O=example.com\"",
            "ldevid-subject = \"CN={serial},O=registrar.example\"",
        )
        .replace(
            "csr-subject-must-match-idevid = true",
            "csr-subject-must-match-idevid = false",
        )
    })
    .await;
    let p = s.pledge("SN-TEMPLATE");
    p.obtain_voucher(&s.reg, &s.vendor).await;
    let any_subject = name_from_parts(Some("whatever"), None, None).expect("name");
    let a = p
        .post(
            &s.reg,
            paths::SIMPLE_ENROLL,
            PKCS10,
            csr_body(&any_subject, &key()),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let ldevid = single_cert(&a.body);
    let expected = brski_common::pki::parse_name("CN=SN-TEMPLATE,O=registrar.example").expect("dn");
    assert_eq!(ldevid.tbs_certificate().subject(), &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_leaves_a_consistent_database() {
    let mut s = setup_with(MasaMode::SlowIssue(Duration::from_secs(2)), &[], |t| t).await;
    let p = Arc::new(s.pledge("SN-DRAIN"));
    let cert = p.registrar_cert(&s.reg).await;
    let pvr = p.pvr(Format::Cms, &cert);
    let in_flight = {
        let p = p.clone();
        let url = s.reg.url(paths::REQUEST_VOUCHER);
        let body = pvr.bytes.clone();
        tokio::spawn(async move {
            send(
                p.http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, Format::Cms.media_type())
                    .body(body),
            )
            .await
        })
    };
    // Wait until the registrar is waiting on the MASA, then SIGTERM it.
    for _ in 0..100 {
        if s.masa.calls() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.masa.calls(), 1);
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &s.reg.pid().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());

    let a = in_flight
        .await
        .expect("join")
        .expect("in-flight request finishes");
    assert_eq!(a.status, 200, "{}", a.text());
    p.accept(&s.vendor, Format::Cms, &a.body, &pvr);

    let status = tokio::time::timeout(Duration::from_secs(30), s.reg.child.wait())
        .await
        .expect("registrar exits")
        .expect("wait");
    assert!(status.success(), "exit status {status}: {}", s.reg.log());
    assert!(
        tokio::net::TcpStream::connect(s.reg.addr).await.is_err(),
        "no longer listening"
    );
    assert!(s.reg.log().contains("registrar stopped"), "{}", s.reg.log());

    if !on_postgres() {
        let db = brski_service::store::Db::open(&s.reg.dir.join("registrar.db"), "SELECT 1;")
            .expect("open db");
        assert!(db.integrity_ok().expect("check"));
        drop(db);
    }
    let entry = s.reg.pledge("SN-DRAIN").await.expect("listed");
    assert_eq!(entry["vouchers"], 1);
    assert_eq!(entry["voucher_assertion"], "proximity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_failures_exit_non_zero_with_a_one_line_reason() {
    let tmp = TempDir::new().expect("tempdir");
    let vendor = Vendor::new("Vendor");
    let ca_file = vendor.write_ca(tmp.path());
    let dir = tmp.path().join("registrar");

    async fn run(args: &[&std::ffi::OsStr]) -> std::process::Output {
        tokio::process::Command::new(registrar_bin())
            .args(args)
            .output()
            .await
            .expect("run registrar")
    }
    fn assert_fails(out: &std::process::Output, needle: &str) {
        assert!(!out.status.success(), "must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("registrar: "), "{err}");
        assert!(err.contains(needle), "{needle:?} in {err}");
    }

    // A vendor CA file that does not exist.
    let out = run(&[
        "init".as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
        "--domain".as_ref(),
        "d.example".as_ref(),
        "--vendor-ca".as_ref(),
        tmp.path().join("missing.pem").as_os_str(),
    ])
    .await;
    assert_fails(&out, "missing.pem");
    assert!(!dir.join("registrar.toml").exists());

    // init works once, then refuses to overwrite.
    init_registrar(&dir, &ca_file, &["--accept", "pending"]).await;
    let text = std::fs::read_to_string(dir.join("registrar.toml")).expect("config");
    assert!(text.contains("accept = \"pending\""), "{text}");
    let out = run(&[
        "init".as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
        "--domain".as_ref(),
        "d.example".as_ref(),
        "--vendor-ca".as_ref(),
        ca_file.as_os_str(),
    ])
    .await;
    assert_fails(&out, "refusing to overwrite");

    // An empty database lists no pledges.
    assert_eq!(list_json(&dir).await, serde_json::json!([]));

    // serve and pledges with a missing or broken configuration.
    let missing = tmp.path().join("nowhere.toml");
    let out = run(&["serve".as_ref(), "--config".as_ref(), missing.as_os_str()]).await;
    assert_fails(&out, "nowhere.toml");
    let out = run(&[
        "pledges".as_ref(),
        "list".as_ref(),
        "--config".as_ref(),
        missing.as_os_str(),
    ])
    .await;
    assert_fails(&out, "nowhere.toml");
    edit_config(&dir, |t| {
        t.replace("retry-after = 5", "retry-after = \"soon\"")
    });
    let out = run(&[
        "serve".as_ref(),
        "--config".as_ref(),
        dir.join("registrar.toml").as_os_str(),
    ])
    .await;
    assert_fails(&out, "retry-after");

    // A registrar key that does not belong to its certificate.
    edit_config(&dir, |t| {
        t.replace("retry-after = \"soon\"", "retry-after = 5")
            .replace(
                "registrar-key = \"registrar.key.pem\"",
                "registrar-key = \"domain-ca.key.pem\"",
            )
    });
    let out = run(&[
        "serve".as_ref(),
        "--config".as_ref(),
        dir.join("registrar.toml").as_os_str(),
    ])
    .await;
    assert_fails(&out, "is not the key of");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_4_the_masa_tls_certificate_is_verified() {
    // Without masa-ca the system roots apply, which do not know the vendor CA → 502.
    let s = setup_with(MasaMode::Issue, &[], |t| {
        t.replace("masa-ca = \"masa-ca.crt.pem\"", "")
    })
    .await;
    let p = s.pledge("SN-ROOTS");
    let cert = p.registrar_cert(&s.reg).await;
    let a = p.request_voucher(&s.reg, &p.pvr(Format::Cms, &cert)).await;
    assert_eq!(a.status, 502, "{}", a.text());
    assert!(a.text().starts_with("MASA unreachable"), "{}", a.text());
    assert!(a.text().contains("UnknownIssuer"), "{}", a.text());
    assert_eq!(s.masa.calls(), 0);

    // A MASA certificate from the right CA but for another name → 502 (RFC 6125 check).
    let tmp = TempDir::new().expect("tempdir");
    let mut vendor = Vendor::new("Vendor");
    vendor.masa_tls = issued(
        &profile::tls_server(&["masa.example"], &[]).expect("params"),
        &vendor.ca,
    );
    let vendor = Arc::new(vendor);
    let masa = start_masa(vendor.clone(), MasaMode::Issue).await;
    let ca_file = vendor.write_ca(tmp.path());
    let dir = tmp.path().join("registrar");
    let addr = init_registrar(&dir, &ca_file, &[]).await;
    let reg = RegistrarProc::start(&dir, addr).await;
    let p = Pledge::new("SN-NAME", vendor.mint("SN-NAME", Some(&masa.url())));
    let cert = p.registrar_cert(&reg).await;
    let a = p.request_voucher(&reg, &p.pvr(Format::Cms, &cert)).await;
    assert_eq!(a.status, 502, "{}", a.text());
    assert!(a.text().starts_with("MASA unreachable"), "{}", a.text());
    assert!(a.text().contains("not valid for name"), "{}", a.text());
    assert_eq!(masa.calls(), 0);
}

/// Each request makes one line at info: the handler's outcome line where it logged one, the
/// access line of `https::serve` otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_logged_once_at_info() {
    let s = setup().await;
    let p = s.pledge("SN-LOG");
    p.obtain_voucher(&s.reg, &s.vendor).await;
    let a = p.get(&s.reg, paths::CACERTS).await;
    assert_eq!(a.status, 200);
    let a = p.get(&s.reg, "/.well-known/est/nowhere").await;
    assert_eq!(a.status, 404);
    // No handler runs for a method the route does not take: only the access line tells.
    let a = p.get(&s.reg, paths::SIMPLE_ENROLL).await;
    assert_eq!(a.status, 405);

    let log = s.reg.log();
    let lines = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(lines("outcome=\"relayed\""), 1, "{log}");
    assert_eq!(lines("outcome=\"served\""), 1, "{log}");
    assert_eq!(
        lines("path=\"/.well-known/est/nowhere\" outcome=\"unknown-path\""),
        1,
        "{log}"
    );
    for handled in [
        paths::REQUEST_VOUCHER,
        paths::CACERTS,
        "/.well-known/est/nowhere",
    ] {
        assert_eq!(lines(&format!("path=\"{handled}\" status=")), 0, "{log}");
    }
    assert_eq!(
        lines(&format!(
            "method=GET path=\"{}\" status=405",
            paths::SIMPLE_ENROLL
        )),
        1,
        "{log}"
    );
}
