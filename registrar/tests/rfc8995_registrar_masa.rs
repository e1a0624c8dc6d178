//! The registrar as client of the MASA (RFC 8995 §5.4–§5.8, §7.2): TLS client certificate and
//! Basic credentials, the MASA's answers relayed as they are, bounded answers, liberal voucher
//! acceptance, per-manufacturer voucher anchors and settings, the audit-log check before EST,
//! and nonceless vouchers fetched ahead of time. The real `registrar` binary and an in-test MASA.

mod support;

use base64::Engine;
use brski_common::audit::{Assertion, AuditEvent};
use brski_common::brski::paths;
use brski_common::envelope::Format;
use brski_common::pki::chain::TrustPolicy;
use brski_common::pki::{NotAfter, name_from_parts, profile, self_signed};
use brski_common::telemetry::StatusTelemetry;
use std::sync::Arc;
use support::*;
use tempfile::TempDir;

const JSON: &str = "application/json";
const PKCS10: &str = "application/pkcs10";

struct Setup {
    _tmp: TempDir,
    vendor: Arc<Vendor>,
    masa: TestMasa,
    reg: RegistrarProc,
}

/// A registrar initialised first, then the MASA (which may then require the registrar's
/// domain CA as TLS client anchor), then `edit` applied and the registrar started.
async fn setup_with(
    mode: MasaMode,
    require_client_cert: bool,
    edit: impl FnOnce(String, &TestMasa) -> String,
) -> Setup {
    let tmp = TempDir::new().expect("tempdir");
    let vendor = Arc::new(Vendor::new("Vendor"));
    let ca_file = vendor.write_ca(tmp.path());
    let dir = tmp.path().join("registrar");
    let addr = init_registrar(&dir, &ca_file, &[]).await;
    let client_auth = require_client_cert.then(|| {
        let domain_ca =
            brski_service::files::read_certs(&dir.join("domain-ca.crt.pem")).expect("domain CA");
        brski_common::tls::ClientAuth {
            // RFC 8995 §5.4: a TLS client certificate with id-kp-clientAuth.
            policies: vec![
                TrustPolicy::new(domain_ca).with_required_eku(brski_common::oid::ID_KP_CLIENT_AUTH),
            ],
            ..Default::default()
        }
    });
    let masa = start_masa_with(vendor.clone(), mode, client_auth).await;
    edit_config(&dir, |t| edit(t, &masa));
    let reg = RegistrarProc::start(&dir, addr).await;
    Setup {
        _tmp: tmp,
        vendor,
        masa,
        reg,
    }
}

async fn setup(mode: MasaMode) -> Setup {
    setup_with(mode, false, |t, _| t).await
}

impl Setup {
    fn pledge(&self, serial: &str) -> Pledge {
        Pledge::new(serial, self.vendor.mint(serial, Some(&self.masa.url())))
    }

    async fn ask(&self, p: &Pledge) -> Answer {
        let cert = p.registrar_cert(&self.reg).await;
        p.request_voucher(&self.reg, &p.pvr(Format::Cms, &cert))
            .await
    }
}

fn success_json() -> Vec<u8> {
    StatusTelemetry::success().to_json().expect("json")
}

async fn enroll(reg: &RegistrarProc, p: &Pledge) -> Answer {
    let subject = p.idevid.cert.tbs_certificate().subject().clone();
    p.post(
        reg,
        paths::SIMPLE_ENROLL,
        PKCS10,
        csr_body(&subject, &key()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_4_registrar_presents_its_certificate_and_basic_credentials_to_the_masa() {
    let s = setup_with(MasaMode::Issue, true, |t, masa| {
        format!(
            "{t}\n[[masa]]\nurl = \"{}\"\nusername = \"registrar-1\"\npassword = \"s3cret\"\n",
            masa.url()
        )
    })
    .await;
    let p = s.pledge("SN-MTLS");
    p.obtain_voucher(&s.reg, &s.vendor).await;
    let seen = s.masa.state.client_certs.lock().expect("lock").clone();
    assert_eq!(seen, vec![Some(der(&s.reg.cert()))]);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("registrar-1:s3cret")
    );
    let auth = s.masa.state.authorizations.lock().expect("lock").clone();
    assert_eq!(auth, vec![Some(expected)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_4_without_a_masa_table_the_registrar_certificate_is_still_presented() {
    let s = setup_with(MasaMode::Issue, true, |t, _| t).await;
    let p = s.pledge("SN-MTLS2");
    p.obtain_voucher(&s.reg, &s.vendor).await;
    let seen = s.masa.state.client_certs.lock().expect("lock").clone();
    assert_eq!(seen, vec![Some(der(&s.reg.cert()))]);
    // No credentials configured: none sent.
    assert_eq!(
        s.masa.state.authorizations.lock().expect("lock").clone(),
        vec![None]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_6_masa_4xx_reach_the_pledge_with_their_status_and_reason() {
    let s = setup(MasaMode::Issue).await;
    let p = s.pledge("SN-4XX");
    for (status, reason) in [
        (404, "device SN-4XX is unknown"),
        (403, "device SN-4XX is not sold to this domain"),
        (406, "no voucher format acceptable"),
    ] {
        s.masa.set_mode(MasaMode::Refuse(status, reason));
        let a = s.ask(&p).await;
        assert_eq!(a.status, status, "{}", a.text());
        assert_eq!(a.text(), format!("MASA answered {status}: {reason}\n"));
    }
    // The reason is one line, control characters removed.
    s.masa
        .set_mode(MasaMode::Refuse(404, "no such\r\ndevice\u{7} here"));
    let a = s.ask(&p).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.text(), "MASA answered 404: no such device here\n");
    // 503 with Retry-After reaches the pledge as such.
    s.masa
        .set_mode(MasaMode::RefuseRetryAfter(503, "busy", "17"));
    let a = s.ask(&p).await;
    assert_eq!(a.status, 503, "{}", a.text());
    assert_eq!(a.headers.get("retry-after").expect("Retry-After"), "17");
    // A MASA failure of its own (500) is 502.
    s.masa.set_mode(MasaMode::Refuse(500, "oops"));
    assert_eq!(s.ask(&p).await.status, 502);
    // Unreachable: 502.
    let closed = format!("127.0.0.1:{}", free_port());
    let gone = Pledge::new("SN-GONE", s.vendor.mint("SN-GONE", Some(&closed)));
    let a = s.ask(&gone).await;
    assert_eq!(a.status, 502, "{}", a.text());
    assert!(a.text().starts_with("MASA unreachable"), "{}", a.text());
    assert_eq!(s.reg.pledge("SN-4XX").await.expect("listed")["vouchers"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_6_a_masa_answer_over_256_kib_is_not_read() {
    let s = setup(MasaMode::HugeBody(1 << 20)).await;
    let a = s.ask(&s.pledge("SN-HUGE")).await;
    assert_eq!(a.status, 502, "{}", a.text());
    assert_eq!(a.text(), "MASA answer exceeds 262144 bytes\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_6_a_base64_cms_voucher_labelled_text_plain_is_relayed_as_a_voucher() {
    let s = setup(MasaMode::IssueBase64As("text/plain")).await;
    for (serial, ct) in [
        ("SN-TEXT", "text/plain"),
        ("SN-P7M", "application/pkcs7-mime; smime-type=signed-data"),
    ] {
        s.masa.set_mode(MasaMode::IssueBase64As(ct));
        let p = s.pledge(serial);
        let cert = p.registrar_cert(&s.reg).await;
        let pvr = p.pvr(Format::Cms, &cert);
        let a = p.request_voucher(&s.reg, &pvr).await;
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(a.content_type(), "application/voucher-cms+json");
        p.accept(&s.vendor, Format::Cms, &a.body, &pvr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8366bis_8_4_a_voucher_without_created_on_is_relayed_and_noted() {
    let s = setup(MasaMode::IssueWithoutCreatedOn).await;
    let a = s.ask(&s.pledge("SN-NOCREATED")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(
        s.reg
            .log()
            .contains("voucher from the MASA has no created-on"),
        "{}",
        s.reg.log()
    );
}

/// A voucher root that is not the IDevID root, and a signer under it.
fn voucher_root() -> (Party, Party) {
    let k = key();
    let params = profile::vendor_ca(
        name_from_parts(Some("Voucher root"), Some("Vendor"), None).expect("name"),
    )
    .expect("params");
    let root = Party {
        cert: self_signed(&params, &k).expect("root"),
        key: Arc::new(k),
    };
    let signer = issued(
        &profile::masa_voucher_signer(
            name_from_parts(Some("MASA signer 2"), Some("Vendor"), None).expect("name"),
        )
        .expect("params"),
        &root,
    );
    (root, signer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_6_voucher_ca_per_manufacturer() {
    let (root, signer) = voucher_root();
    let s = setup(MasaMode::Issue).await;
    *s.masa.state.voucher_signer.lock().expect("lock") = Some((
        signer.key.clone(),
        vec![signer.cert.clone(), root.cert.clone()],
    ));
    let p = s.pledge("SN-VCA");
    // Signed under a root the registrar has not been told about: not relayed.
    let a = s.ask(&p).await;
    assert_eq!(a.status, 502, "{}", a.text());
    assert!(a.text().starts_with("voucher from the MASA rejected"));

    // voucher-ca names that root for this manufacturer: relayed.
    let dir = s.reg.dir.clone();
    let addr = s.reg.addr;
    drop(s.reg);
    std::fs::write(
        dir.join("voucher-root.crt.pem"),
        pem(std::slice::from_ref(&root.cert)),
    )
    .expect("write");
    edit_config(&dir, |t| {
        t.replacen(
            "# voucher-ca = \"manufacturers/voucher-ca.crt.pem\"",
            "voucher-ca = \"voucher-root.crt.pem\"",
            1,
        )
    });
    let reg = RegistrarProc::start(&dir, addr).await;
    let cert = p.registrar_cert(&reg).await;
    let a = p.request_voucher(&reg, &p.pvr(Format::Cms, &cert)).await;
    assert_eq!(a.status, 200, "{}", a.text());
    // ...and the IDevID root alone no longer signs this manufacturer's vouchers.
    *s.masa.state.voucher_signer.lock().expect("lock") = None;
    let a = p.request_voucher(&reg, &p.pvr(Format::Cms, &cert)).await;
    assert_eq!(a.status, 502, "{}", a.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_6_a_voucher_is_checked_with_the_pledges_manufacturer_only() {
    let tmp = TempDir::new().expect("tempdir");
    let vendor = Arc::new(Vendor::new("Vendor"));
    let other = Vendor::new("Other");
    let masa = start_masa(vendor.clone(), MasaMode::Issue).await;
    let a_file = vendor.write_ca(tmp.path());
    let b_dir = tmp.path().join("other");
    std::fs::create_dir_all(&b_dir).expect("dir");
    let b_file = other.write_ca(&b_dir);
    let dir = tmp.path().join("registrar");
    let addr = init_registrar(
        &dir,
        &a_file,
        &["--vendor-ca", b_file.to_str().expect("path")],
    )
    .await;
    let reg = RegistrarProc::start(&dir, addr).await;
    // The MASA of Vendor signs with Other's MASA key: valid under a configured manufacturer,
    // but not under the pledge's.
    *masa.state.voucher_signer.lock().expect("lock") = Some((
        other.masa_signer.key.clone(),
        vec![other.masa_signer.cert.clone(), other.ca.cert.clone()],
    ));
    let p = Pledge::new("SN-CROSS", vendor.mint("SN-CROSS", Some(&masa.url())));
    let cert = p.registrar_cert(&reg).await;
    let a = p.request_voucher(&reg, &p.pvr(Format::Cms, &cert)).await;
    assert_eq!(a.status, 502, "{}", a.text());
    assert!(a.text().starts_with("voucher from the MASA rejected"));
}

fn other_domain_event(domain: &[u8], nonce: Option<&str>) -> AuditEvent {
    AuditEvent {
        date: "2025-06-01T00:00:00Z".into(),
        domain_id: base64::engine::general_purpose::STANDARD.encode(domain),
        nonce: nonce.map(str::to_string),
        assertion: Assertion::Logged,
        truncated: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_8_3_other_domains_in_the_audit_log_refuse_enrollment() {
    let s = setup(MasaMode::Issue).await;
    let p = s.pledge("SN-OWNED");
    p.obtain_voucher(&s.reg, &s.vendor).await;
    s.masa
        .state
        .audit
        .lock()
        .expect("lock")
        .get_mut("SN-OWNED")
        .expect("own event")
        .extend([
            other_domain_event(b"previous owner 1", Some("n1")),
            other_domain_event(b"previous owner 2", Some("n2")),
        ]);
    let a = p
        .post(&s.reg, paths::VOUCHER_STATUS, JSON, success_json())
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        s.masa
            .state
            .audit_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let a = enroll(&s.reg, &p).await;
    assert_eq!(a.status, 403, "{}", a.text());
    assert_eq!(
        a.text(),
        "audit log of the voucher for SN-OWNED refused: 2 other domains\n"
    );
    let entry = s.reg.pledge("SN-OWNED").await.expect("listed");
    assert_eq!(entry["audit_log"], "refused: 2 other domains");
    assert_eq!(entry["certificates"], 0);
    let table = s.reg.pledges(&["list"]).await;
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|h| h.contains("AUDIT_LOG")),
        "{table}"
    );
    assert!(table.contains("refused: 2 other domains"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_8_3_a_nonceless_entry_of_another_domain_refuses_enrollment() {
    let s = setup_with(MasaMode::Issue, false, |t, _| {
        t.replace("max-prior-owners = 0", "max-prior-owners = 1")
    })
    .await;
    let p = s.pledge("SN-NONCELESS-OTHER");
    p.obtain_voucher(&s.reg, &s.vendor).await;
    s.masa
        .state
        .audit
        .lock()
        .expect("lock")
        .get_mut("SN-NONCELESS-OTHER")
        .expect("own event")
        .push(other_domain_event(b"someone else", None));
    p.post(&s.reg, paths::VOUCHER_STATUS, JSON, success_json())
        .await;
    let a = enroll(&s.reg, &p).await;
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(
        a.text()
            .ends_with("refused: 1 nonceless entries of other domains\n"),
        "{}",
        a.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_8_3_a_clean_audit_log_enrolls() {
    let s = setup(MasaMode::Issue).await;
    let p = s.pledge("SN-CLEAN");
    p.obtain_voucher(&s.reg, &s.vendor).await;
    p.post(&s.reg, paths::VOUCHER_STATUS, JSON, success_json())
        .await;
    // The MASA got the very registrar voucher-request of the voucher.
    assert_eq!(
        s.masa
            .state
            .audit_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let a = enroll(&s.reg, &p).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let entry = s.reg.pledge("SN-CLEAN").await.expect("listed");
    assert_eq!(entry["audit_log"], "ok: 1 own entries, 0 other domains");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_8_3_fetch_false_skips_the_audit_log() {
    let s = setup_with(MasaMode::Issue, false, |t, _| {
        t.replace("fetch = true", "fetch = false")
    })
    .await;
    let p = s.pledge("SN-SKIP");
    p.obtain_voucher(&s.reg, &s.vendor).await;
    s.masa
        .state
        .audit
        .lock()
        .expect("lock")
        .get_mut("SN-SKIP")
        .expect("own event")
        .push(other_domain_event(b"previous owner", Some("x")));
    p.post(&s.reg, paths::VOUCHER_STATUS, JSON, success_json())
        .await;
    assert_eq!(
        s.masa
            .state
            .audit_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    let a = enroll(&s.reg, &p).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(s.reg.pledge("SN-SKIP").await.expect("listed")["audit_log"].is_null());
}

async fn vouchers_fetch(reg: &RegistrarProc, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(registrar_bin())
        .args(["vouchers", "fetch"])
        .args(args)
        .arg("--config")
        .arg(reg.dir.join("registrar.toml"))
        .output()
        .await
        .expect("run registrar vouchers fetch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_7_2_a_nonceless_voucher_fetched_ahead_is_relayed_when_the_masa_is_down() {
    let s = setup(MasaMode::Issue).await;
    // Not claimed: the MASA refuses a request without a prior-signed request.
    let out = vouchers_fetch(
        &s.reg,
        &["--serial", "SN-OFFLINE", "--masa-url", &s.masa.url()],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("MASA answered 4"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.masa
        .state
        .claimed
        .lock()
        .expect("lock")
        .push("SN-OFFLINE".into());
    let out = vouchers_fetch(
        &s.reg,
        &["--serial", "SN-OFFLINE", "--masa-url", &s.masa.url()],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("nonceless voucher 1 for SN-OFFLINE stored, expires-on 20"),
        "{stdout}"
    );
    // The RVR had neither nonce nor prior-signed request.
    let (_, rvr) = s
        .masa
        .state
        .last_request
        .lock()
        .expect("lock")
        .clone()
        .expect("asked");
    let signed = brski_common::brski::masa::verify_registrar_voucher_request(
        Format::Cms,
        &rvr,
        brski_common::pki::chain::TimeCheck::Now,
    )
    .expect("rvr");
    assert_eq!(signed.serial_number(), "SN-OFFLINE");

    // The pledge's MASA cannot be reached: the stored voucher is relayed.
    let calls = s.masa.calls();
    let closed = format!("127.0.0.1:{}", free_port());
    let p = Pledge::new("SN-OFFLINE", s.vendor.mint("SN-OFFLINE", Some(&closed)));
    let cert = p.registrar_cert(&s.reg).await;
    let pvr = p.pvr(Format::Cms, &cert);
    let a = p.request_voucher(&s.reg, &pvr).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let accepted = brski_common::brski::pledge::accept_voucher(
        Format::Cms,
        &a.body,
        &s.vendor.policy(),
        &brski_common::voucher::PledgeExpectations {
            accept_nonceless: true,
            trusted_time: Some(time::OffsetDateTime::now_utc()),
            ..brski_common::voucher::PledgeExpectations::for_request(&pvr.request)
        },
    )
    .expect("pledge accepts the nonceless voucher");
    assert!(accepted.voucher.nonce.is_none());
    assert!(accepted.voucher.expires_on.is_some());
    assert_eq!(s.masa.calls(), calls);
    // Another serial has no stored voucher: 502 as before.
    let q = Pledge::new("SN-OTHER", s.vendor.mint("SN-OTHER", Some(&closed)));
    assert_eq!(s.ask(&q).await.status, 502);
    // Refused with no voucher to carry its sighting, the new pledge is recorded all the same;
    // the relayed one was recorded with its voucher.
    for (serial, vouchers) in [("SN-OTHER", 0), ("SN-OFFLINE", 1)] {
        let entry = s.reg.pledge(serial).await.expect("listed");
        assert_eq!(entry["transport"], "https", "{entry}");
        assert!(entry["last_seen"].is_string(), "{entry}");
        assert_eq!(entry["vouchers"], vouchers, "{entry}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_7_3_use_nonceless_always_relays_without_asking_the_masa() {
    let s = setup_with(MasaMode::Issue, false, |t, _| {
        t.replace(
            "use-nonceless-vouchers = \"when-masa-unreachable\"",
            "use-nonceless-vouchers = \"always\"",
        )
    })
    .await;
    s.masa
        .state
        .claimed
        .lock()
        .expect("lock")
        .push("SN-ALWAYS".into());
    let out = vouchers_fetch(
        &s.reg,
        &["--serial", "SN-ALWAYS", "--masa-url", &s.masa.url()],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = s.masa.calls();
    let a = s.ask(&s.pledge("SN-ALWAYS")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(s.masa.calls(), calls, "the MASA was not asked");
    // A pledge without a stored voucher is still served by the MASA.
    let a = s.ask(&s.pledge("SN-FRESH")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(s.masa.calls(), calls + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_2_6_2_a_not_yet_valid_idevid_is_refused_even_when_expired_ones_are_allowed() {
    let s = setup(MasaMode::Issue).await;
    let mut params = profile::idevid("SN-FUTURE", Some(&s.masa.url()), None).expect("params");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(2);
    params.not_after = NotAfter::At(now + time::Duration::days(30));
    let future = Pledge::new("SN-FUTURE", issued(&params, &s.vendor.ca));
    assert!(
        send(future.http.get(s.reg.url(paths::CACERTS)))
            .await
            .is_err()
    );
    // An expired one is still accepted (allow-expired-idevid = true).
    let mut params = profile::idevid("SN-PAST", Some(&s.masa.url()), None).expect("params");
    params.not_before = now - time::Duration::days(30);
    params.not_after = NotAfter::At(now - time::Duration::days(1));
    let past = Pledge::new("SN-PAST", issued(&params, &s.vendor.ca));
    past.obtain_voucher(&s.reg, &s.vendor).await;
}

fn expired_idevid(vendor: &Vendor, serial: &str, masa_url: &str) -> Pledge {
    let mut params = profile::idevid(serial, Some(masa_url), None).expect("params");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = NotAfter::At(now - time::Duration::days(1));
    Pledge::new(serial, issued(&params, &vendor.ca))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_2_6_2_allow_expired_idevid_per_manufacturer() {
    // Manufacturer 0 (Strict) sets allow-expired-idevid = false; manufacturer 1 (Lenient)
    // keeps the global true.
    let tmp = TempDir::new().expect("tempdir");
    let strict = Arc::new(Vendor::new("Strict"));
    let lenient = Arc::new(Vendor::new("Lenient"));
    let strict_masa = start_masa(strict.clone(), MasaMode::Issue).await;
    let lenient_masa = start_masa(lenient.clone(), MasaMode::Issue).await;
    let strict_ca = strict.write_ca(tmp.path());
    let other = tmp.path().join("lenient");
    std::fs::create_dir_all(&other).expect("dir");
    let lenient_ca = lenient.write_ca(&other);
    let dir = tmp.path().join("registrar");
    let addr = init_registrar(
        &dir,
        &strict_ca,
        &["--vendor-ca", lenient_ca.to_str().expect("path")],
    )
    .await;
    // The lenient MASA's TLS certificate is under its own CA: a per-MASA `ca` (RFC 8995 §5.4).
    let lenient_url = lenient_masa.url();
    let lenient_ca_text = lenient_ca.display().to_string();
    edit_config(&dir, |t| {
        format!(
            "{}\n[[masa]]\nurl = \"{lenient_url}\"\nca = {:?}\n",
            t.replacen(
                "# allow-expired-idevid = false",
                "allow-expired-idevid = false",
                1,
            ),
            lenient_ca_text
        )
    });
    let reg = RegistrarProc::start(&dir, addr).await;

    let p = expired_idevid(&strict, "SN-EXPIRED", &strict_masa.url());
    let cert = p.registrar_cert(&reg).await;
    let a = p.request_voucher(&reg, &p.pvr(Format::Cms, &cert)).await;
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(a.text().starts_with("IDevID: certificate"), "{}", a.text());
    assert!(a.text().contains("has expired"), "{}", a.text());
    assert_eq!(strict_masa.calls(), 0);
    // A current IDevID of the strict manufacturer is served...
    Pledge::new(
        "SN-CURRENT",
        strict.mint("SN-CURRENT", Some(&strict_masa.url())),
    )
    .obtain_voucher(&reg, &strict)
    .await;
    // ...and an expired one of the lenient manufacturer too.
    expired_idevid(&lenient, "SN-OLD-OK", &lenient_masa.url())
        .obtain_voucher(&reg, &lenient)
        .await;
    assert_eq!(lenient_masa.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_4_a_manufacturer_masa_url_may_override_the_idevid_extension() {
    let s = setup_with(MasaMode::Issue, false, |t, masa| {
        t.replacen(
            "# masa-url = \"masa.example.com:9443\"\n# masa-url-overrides = true",
            &format!("masa-url = \"{}\"\nmasa-url-overrides = true", masa.url()),
            1,
        )
    })
    .await;
    let closed = format!("127.0.0.1:{}", free_port());
    let p = Pledge::new("SN-OVERRIDE", s.vendor.mint("SN-OVERRIDE", Some(&closed)));
    p.obtain_voucher(&s.reg, &s.vendor).await;
    assert_eq!(s.masa.calls(), 1);
}
