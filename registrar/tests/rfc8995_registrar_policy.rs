//! The real `registrar` binary: bounded telemetry (RFC 8995 §5.7, §5.9.4), the proximity
//! checks of §5.2/§5.3, the reduced-security default of §7.3, configuration checks at load and
//! `registrar check-config`, and log lines that a pledge cannot forge.

mod support;

use brski_common::brski::paths;
use brski_common::envelope::{self, Format};
use brski_common::keys::Signer;
use brski_common::telemetry::StatusTelemetry;
use brski_common::tls;
use brski_common::voucher::{Assertion, VoucherRequest};
use brski_service::https_client::{Connection, Target};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tempfile::TempDir;

const JSON: &str = "application/json";

fn report(status: bool, reason: Option<&str>) -> Vec<u8> {
    let mut t = StatusTelemetry::success();
    t.status = status;
    t.reason = reason.map(str::to_string);
    t.to_json().expect("json")
}

async fn stored_reports(reg: &RegistrarProc, serial: &str) -> i64 {
    db_int(
        &reg.dir,
        "SELECT COUNT(*) FROM telemetry WHERE serial = ?1",
        "SELECT COUNT(*) FROM telemetry WHERE serial = $1",
        serial,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_7_telemetry_body_larger_than_4_kib_is_413_and_not_stored() {
    let s = setup().await;
    let p = s.pledge("TEL-BIG");
    p.obtain_voucher(&s.reg, &s.vendor).await;
    let huge = "x".repeat(8 * 1024);
    for path in [paths::VOUCHER_STATUS, paths::ENROLL_STATUS] {
        let a = p.post(&s.reg, path, JSON, report(false, Some(&huge))).await;
        assert_eq!(a.status, 413, "{path}: {}", a.text());
        assert!(a.text().contains("4096 bytes"), "{}", a.text());
    }
    assert_eq!(stored_reports(&s.reg, "TEL-BIG").await, 0);
    assert!(
        !s.reg.log().contains(&huge[..1000]),
        "the body is not logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_7_reason_is_stored_once_truncated_and_logged_short() {
    let s = setup().await;
    let p = s.pledge("TEL-LONG");
    p.obtain_voucher(&s.reg, &s.vendor).await;
    let reason = "r".repeat(3000);
    let a = p
        .post(
            &s.reg,
            paths::VOUCHER_STATUS,
            JSON,
            report(false, Some(&reason)),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        db_int(
            &s.reg.dir,
            "SELECT length(reason) FROM telemetry WHERE serial = ?1",
            "SELECT length(reason)::BIGINT FROM telemetry WHERE serial = $1",
            "TEL-LONG"
        )
        .await,
        1024,
        "reason truncated to 1024 characters"
    );
    // The body is not stored a second time next to its reason column.
    assert_eq!(
        db_int(
            &s.reg.dir,
            "SELECT length(body) FROM telemetry WHERE serial = ?1",
            "SELECT length(body)::BIGINT FROM telemetry WHERE serial = $1",
            "TEL-LONG"
        )
        .await,
        0
    );
    assert!(
        !s.reg.log().contains(&reason[..300]),
        "log holds a short reason"
    );
    assert!(s.reg.log().contains(&reason[..200]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_7_voucher_status_without_a_voucher_is_404() {
    let s = setup().await;
    let p = s.pledge("TEL-NOVOUCHER");
    let a = p
        .post(&s.reg, paths::VOUCHER_STATUS, JSON, report(true, None))
        .await;
    assert_eq!(a.status, 404, "{}", a.text());
    assert!(a.text().contains("no voucher"), "{}", a.text());
    assert_eq!(stored_reports(&s.reg, "TEL-NOVOUCHER").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_9_4_enrollstatus_without_an_enrollment_attempt_is_404() {
    let s = setup().await;
    let p = s.pledge("TEL-NOENROLL");
    let a = p
        .post(&s.reg, paths::ENROLL_STATUS, JSON, report(false, Some("x")))
        .await;
    assert_eq!(a.status, 404, "{}", a.text());
    assert!(
        a.text().contains("not attempted enrollment"),
        "{}",
        a.text()
    );
    assert_eq!(stored_reports(&s.reg, "TEL-NOENROLL").await, 0);
    // After the voucher (the precondition of enrollment, §5.9.3) it is taken.
    p.obtain_voucher(&s.reg, &s.vendor).await;
    let a = p
        .post(&s.reg, paths::ENROLL_STATUS, JSON, report(false, Some("x")))
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_7_reports_per_pledge_are_limited_with_429_and_retry_after() {
    let s = setup().await;
    let p = s.pledge("TEL-FLOOD");
    p.obtain_voucher(&s.reg, &s.vendor).await;
    for n in 0..10 {
        let a = p
            .post(
                &s.reg,
                paths::VOUCHER_STATUS,
                JSON,
                report(true, Some(&format!("r{n}"))),
            )
            .await;
        assert_eq!(a.status, 200, "report {n}: {}", a.text());
    }
    let a = p
        .post(
            &s.reg,
            paths::VOUCHER_STATUS,
            JSON,
            report(false, Some("r10")),
        )
        .await;
    assert_eq!(a.status, 429, "{}", a.text());
    let retry: u64 = a
        .headers
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(stored_reports(&s.reg, "TEL-FLOOD").await, 10);
    // The other kind has its own budget.
    let a = p
        .post(&s.reg, paths::ENROLL_STATUS, JSON, report(true, None))
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
}

/// A PVR like the pledge's, with `assertion` replaced.
fn pvr_with_assertion(p: &Pledge, registrar_cert: &[u8], assertion: Option<Assertion>) -> Vec<u8> {
    let base = p.pvr(Format::Cms, registrar_cert);
    let mut request: VoucherRequest = base.request.clone();
    request.assertion = assertion;
    let payload = request.to_payload(Format::Cms).expect("payload");
    envelope::sign(
        Format::Cms,
        &payload,
        &*p.idevid.key as &dyn Signer,
        std::slice::from_ref(&p.idevid.cert),
    )
    .expect("sign")
}

/// A raw HTTPS connection presenting `p`'s IDevID.
async fn connection(reg: &RegistrarProc, p: &Pledge) -> Connection {
    let signer: Arc<dyn Signer> = p.idevid.key.clone();
    let ck = tls::certified_key(&[p.idevid.der()], signer).expect("key");
    let config = tls::client_config(Some(ck), Arc::new(tls::ProvisionalVerifier)).expect("tls");
    Connection::connect(
        &Target::parse(&reg.base()).expect("target"),
        Arc::new(config),
        Duration::from_secs(10),
    )
    .await
    .expect("connect")
}

async fn post_on(conn: &mut Connection, body: &[u8]) -> Result<u16, String> {
    conn.request(
        http::Method::POST,
        paths::REQUEST_VOUCHER,
        Some(Format::Cms.media_type()),
        None,
        body,
        Duration::from_secs(10),
    )
    .await
    .map(|r| r.status)
    .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_3_proximity_failure_is_401_and_closes_the_connection() {
    let s = setup().await;
    let p = s.pledge("PROX-1");
    let cert = p.registrar_cert(&s.reg).await;
    let mut other = cert.clone();
    let last = other.len() - 1;
    other[last] ^= 1;
    for (what, body) in [
        (
            "other registrar cert",
            p.pvr(Format::Cms, &other).bytes.clone(),
        ),
        (
            "assertion verified",
            pvr_with_assertion(&p, &cert, Some(Assertion::Verified)),
        ),
        (
            "assertion logged",
            pvr_with_assertion(&p, &cert, Some(Assertion::Logged)),
        ),
    ] {
        let mut conn = connection(&s.reg, &p).await;
        assert_eq!(post_on(&mut conn, &body).await, Ok(401), "{what}");
        // The registrar closed the connection: a second request on it fails.
        let again = post_on(&mut conn, &body).await;
        assert!(again.is_err(), "{what}: second request answered {again:?}");
    }
    assert_eq!(s.masa.calls(), 0, "no voucher requested");
    // An absent assertion is the RFC examples' form and is accepted (documented interop).
    let mut conn = connection(&s.reg, &p).await;
    let body = pvr_with_assertion(&p, &cert, None);
    assert_eq!(post_on(&mut conn, &body).await, Ok(200));
    // A good request keeps the connection open.
    let body = p.pvr(Format::Cms, &cert).bytes;
    assert_eq!(post_on(&mut conn, &body).await, Ok(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_7_3_init_defaults_to_pending_and_auto_is_explained() {
    let tmp = TempDir::new().expect("tempdir");
    let vendor = Vendor::new("Vendor");
    let ca_file = vendor.write_ca(tmp.path());
    let dir = tmp.path().join("registrar");
    let out = tokio::process::Command::new(registrar_bin())
        .arg("init")
        .arg("--dir")
        .arg(&dir)
        .args(["--domain", "registrar.example", "--vendor-ca"])
        .arg(&ca_file)
        .output()
        .await
        .expect("init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.join("registrar.toml")).expect("config");
    assert!(text.contains("accept = \"pending\""), "{text}");
    assert!(text.contains("RFC 8995 §7.3"), "{text}");
    // A config without `accept` is pending as well.
    assert!(
        text.contains("metrics-listen = \"127.0.0.1:9464\""),
        "{text}"
    );
    // A port of its own for the metrics of this test's registrar.
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("accept ="))
        .map(|l| match l.starts_with("metrics-listen =") {
            true => "metrics-listen = \"127.0.0.1:0\"\n".to_string(),
            false => format!("{l}\n"),
        })
        .collect();
    std::fs::write(dir.join("registrar.toml"), without).expect("write");
    let masa = start_masa(Arc::new(vendor), MasaMode::Issue).await;
    let addr: std::net::SocketAddr = text
        .lines()
        .find_map(|l| l.strip_prefix("listen = "))
        .expect("listen")
        .trim_matches('"')
        .parse()
        .expect("addr");
    let reg = RegistrarProc::start(&dir, addr).await;
    assert!(
        reg.log().contains("accept=\"pending\"") || reg.log().contains("accept=pending"),
        "{}",
        reg.log()
    );
    drop(masa);
}

fn bad_config(dir: &std::path::Path, from: &str, to: &str) {
    edit_config(dir, |t| {
        assert!(t.contains(from), "{from} in config");
        t.replace(from, to)
    });
}

/// `registrar init` in `tmp` for `vendor`'s devices: its directory and registrar.toml.
async fn initialised(tmp: &TempDir, vendor: &Vendor) -> (std::path::PathBuf, std::path::PathBuf) {
    let ca_file = vendor.write_ca(tmp.path());
    let dir = tmp.path().join("registrar");
    init_registrar(&dir, &ca_file, &[]).await;
    let config = dir.join("registrar.toml");
    (dir, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrar_toml_values_out_of_range_refuse_start_and_check_config_lists_each() {
    let (tmp, vendor) = (TempDir::new().expect("tempdir"), Vendor::new("Vendor"));
    let (dir, config) = initialised(&tmp, &vendor).await;
    let check = || async {
        tokio::process::Command::new(registrar_bin())
            .arg("check-config")
            .arg("--config")
            .arg(&config)
            .output()
            .await
            .expect("check-config")
    };
    let out = check().await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    bad_config(
        &dir,
        "ldevid-validity-days = 365",
        "ldevid-validity-days = 4000000",
    );
    let serve = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(registrar_bin())
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("serve must refuse to start, not run")
    .expect("serve");
    assert!(!serve.status.success());
    let err = String::from_utf8_lossy(&serve.stderr);
    assert!(
        err.contains("ldevid-validity-days = 4000000 is out of range 1..=36500"),
        "{err}"
    );

    bad_config(&dir, "retry-after = 5", "retry-after = 0");
    bad_config(&dir, "masa-timeout = 30", "masa-timeout = 0");
    // RFC 8994 §6.2.2: an ACP node name of the wrong shape.
    bad_config(
        &dir,
        "# acp-node-name = \"0+{serial}@acp.example.net\"",
        "acp-node-name = \"12+{serial}@acp.example.net\"",
    );
    // RFC 5280 §4.2.1.13: relying parties fetch the CRL over plain HTTP.
    bad_config(
        &dir,
        "# crl-url = \"http://registrar.example:8080/crl\"",
        "crl-url = \"https://registrar.example/crl\"",
    );
    bad_config(&dir, "crl-validity-hours = 24", "crl-validity-hours = 0");
    bad_config(
        &dir,
        "crl-listen = \"off\"",
        "crl-listen = \"crl.example:80\"",
    );
    // A registrar key that is not the registrar certificate's.
    std::fs::copy(dir.join("domain-ca.key.pem"), dir.join("registrar.key.pem")).expect("copy");
    std::fs::remove_file(dir.join("manufacturers/0.crt.pem")).expect("rm");
    let out = check().await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    for needle in [
        "retry-after = 0 is out of range 1..=3600",
        "masa-timeout = 0 is out of range 1..=3600",
        "ldevid-validity-days = 4000000 is out of range 1..=36500",
        "[csr-attributes]: invalid AcpNodeName: \"12+SN-0001@acp.example.net\": acp-address is neither 32 hex digits nor \"0\" (RFC 8994 §6.2.2)",
        "is not the key of registrar-cert",
        "0.crt.pem",
        "crl-url \"https://registrar.example/crl\": must be an http:// URL",
        "crl-validity-hours = 0 is out of range 1..=8784",
        "crl-listen \"crl.example:80\"",
    ] {
        assert_eq!(
            lines.iter().filter(|l| l.contains(needle)).count(),
            1,
            "one line with {needle:?}: {err}"
        );
    }
    assert_eq!(lines.len(), 10, "nine problems and the summary: {err}");

    // A registrar certificate without id-kp-cmcRA, not issued by the domain CA.
    let mut t = check_config_fixture_cert(&vendor);
    std::fs::write(dir.join("registrar.crt.pem"), std::mem::take(&mut t)).expect("write");
    let out = check().await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has no extended key usage id-kp-cmcRA"),
        "{err}"
    );
    assert!(err.contains("is not issued by the domain CA"), "{err}");
}

/// `registrar CMD --config CONFIG`, which must end within a minute.
async fn run_with_config(cmd: &'static str, config: std::path::PathBuf) -> std::process::Output {
    tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(registrar_bin())
            .arg(cmd)
            .arg("--config")
            .arg(&config)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("it ends")
    .expect(cmd)
}

/// A problem with a file is named by its key, in the same words from check-config and serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_and_serve_name_the_key_of_a_bad_file() {
    let tmp = TempDir::new().expect("tempdir");
    let (dir, config) = initialised(&tmp, &Vendor::new("Vendor")).await;
    let run = |cmd: &'static str| run_with_config(cmd, config.clone());
    std::fs::remove_file(dir.join("domain-ca.crt.pem")).expect("rm");
    let out = run("check-config").await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = err
        .lines()
        .find_map(|l| {
            l.split_once("check-config: domain-ca-cert: ")
                .map(|(_, w)| w)
        })
        .unwrap_or_else(|| panic!("a domain-ca-cert line: {err}"));
    let line = format!("domain-ca-cert: {line}");
    let serve = run("serve").await;
    assert!(!serve.status.success());
    assert!(
        String::from_utf8_lossy(&serve.stderr).contains(&line),
        "serve: {}, check-config said {line:?}",
        String::from_utf8_lossy(&serve.stderr)
    );
}

/// SPEC §9: a PCR reference file that does not parse, and a pcr-reference without
/// attestation, are named by check-config and refuse serve, in the same words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_and_serve_name_a_bad_pcr_reference() {
    let tmp = TempDir::new().expect("tempdir");
    let (dir, config) = initialised(&tmp, &Vendor::new("Vendor")).await;
    let run = |cmd: &'static str| run_with_config(cmd, config.clone());
    let pcrs = dir.join("pcrs.toml");
    std::fs::write(
        &pcrs,
        "pcrs = [0, 99]\n[[set]]\nname = \"x\"\nvalues = []\n",
    )
    .expect("write");
    let reference = format!("pcr-reference = {:?}", pcrs.display().to_string());
    for (attestation, words) in [
        (
            "attestation = \"require\"",
            "PCR 99 is beyond the 24 of a TPM 2.0 PC bank".to_string(),
        ),
        (
            "# attestation = \"require\"",
            "manufacturer pcr-reference needs attestation = \"record\" or \"require\"".to_string(),
        ),
    ] {
        let reference = reference.clone();
        edit_config(&dir, move |t| {
            t.lines()
                .map(|l| match l {
                    l if l.contains("attestation = ") => attestation.to_string(),
                    l if l.contains("pcr-reference = ") => reference.clone(),
                    l => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        });
        let out = run("check-config").await;
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains(&words), "check-config: {err}");
        let serve = run("serve").await;
        assert!(!serve.status.success());
        let serve_err = String::from_utf8_lossy(&serve.stderr);
        assert!(serve_err.contains(&words), "serve: {serve_err}");
    }
}

/// An IDevID-profile certificate (no id-kp-cmcRA) from the vendor CA, as PEM.
fn check_config_fixture_cert(vendor: &Vendor) -> String {
    pem(std::slice::from_ref(
        &vendor.mint("NOT-A-REGISTRAR", None).cert,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_an_announce_interval_out_of_range() {
    let out = tokio::process::Command::new(registrar_bin())
        .args(["serve", "--announce-interval", "0"])
        .output()
        .await
        .expect("serve");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("announce-interval"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const FORGED: &str = "2026-01-01T00:00:00Z  INFO pledges allow FORGED";

/// A serial holding a newline, a forged log line, ESC and a bidi override.
fn evil_serial() -> String {
    format!("EVIL\n{FORGED}\u{1b}[2J\u{202e}")
}

fn assert_log_not_forged(log: &str) {
    for line in log.lines() {
        assert!(
            !line.starts_with("2026-01-01T00:00:00"),
            "forged line: {line:?}"
        );
    }
    assert!(!log.contains('\u{1b}'), "raw ESC in the log");
    assert!(!log.contains('\u{202e}'), "raw bidi override in the log");
    let evil: Vec<&str> = log.lines().filter(|l| l.contains("EVIL")).collect();
    assert!(!evil.is_empty(), "the serial is logged: {log}");
    for line in evil {
        assert!(
            line.contains("pledges allow FORGED"),
            "escaped in place: {line:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_injection_through_a_telemetry_report_is_escaped() {
    let s = setup().await;
    let serial = evil_serial();
    let p = Pledge::new(&serial, s.vendor.mint(&serial, Some(&s.masa.url())));
    let reason = format!("bad\n{FORGED}\u{1b}[31m");
    let a = p
        .post(
            &s.reg,
            paths::VOUCHER_STATUS,
            JSON,
            report(false, Some(&reason)),
        )
        .await;
    assert_eq!(a.status, 404, "{}", a.text());
    assert_log_not_forged(&s.reg.log());
}

/// The whole exchange (voucher request, telemetry, EST) with the forged serial: every log line
/// the registrar writes about it. Needs the log formatter's escaping as well as this branch's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_injection_through_an_idevid_serial_number_is_escaped() {
    let s = setup().await;
    let serial = evil_serial();
    let p = Pledge::new(&serial, s.vendor.mint(&serial, Some(&s.masa.url())));
    let cert = p.registrar_cert(&s.reg).await;
    let pvr = p.pvr(Format::Cms, &cert);
    let a = p.request_voucher(&s.reg, &pvr).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let reason = format!("bad\n{FORGED}\u{1b}[31m");
    let a = p
        .post(
            &s.reg,
            paths::VOUCHER_STATUS,
            JSON,
            report(false, Some(&reason)),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_log_not_forged(&s.reg.log());
}
