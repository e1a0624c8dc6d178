//! RFC 8995 end to end with the real `masa`, `registrar` and `pledge` binaries on loopback,
//! checked with independent tools (openssl, curl, promtool), and every rejection with its
//! status or exit code.

mod support;

use brski_common::brski::pledge::build_pledge_voucher_request;
use brski_common::envelope::Format;
use brski_common::est::decode_certs_only_body;
use brski_common::keys::SoftwareKey;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;
use testbed::loopback::{SuiteOptions, read_enrollment, run};

#[test]
fn rfc8995_happy_path_checked_with_openssl_and_curl() {
    let (_tmp, mut s) = started(&SuiteOptions::default());
    let config = s.mint("E2E-0001").expect("mint");
    let dir = config.parent().expect("dir").to_path_buf();
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));

    // The voucher verifies with OpenSSL against the manufacturer CA.
    let vendor_ca = s.masa_dir.join("vendor-ca.crt.pem");
    let content = dir.join("voucher.json");
    run(Command::new("openssl")
        .args([
            "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-in",
        ])
        .arg(dir.join("voucher.vcj"))
        .arg("-CAfile")
        .arg(&vendor_ca)
        .arg("-out")
        .arg(&content))
    .expect("openssl cms -verify");
    let voucher: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&content).expect("content")).expect("json");
    assert_eq!(voucher["ietf-voucher:voucher"]["serial-number"], "E2E-0001");

    // The LDevID verifies with OpenSSL against the domain CA.
    let domain_ca = openssl_verifies_ldevid(&s, &dir);
    let e = read_enrollment(&dir, "E2E-0001").expect("enrollment");
    assert_eq!(
        e.ldevid_issuer,
        cert(&domain_ca).tbs_certificate().subject().to_string()
    );

    // curl as an EST client fetches /cacerts.
    let (status, body) = curl(&s, &dir, "GET", "/.well-known/est/cacerts", None, None);
    assert_eq!(status, 200);
    let certs = decode_certs_only_body(&body).expect("certs-only");
    assert!(
        certs.contains(&cert(&domain_ca)),
        "cacerts holds the domain CA"
    );

    // The registrar recorded the telemetry.
    let row = pledge_row(&s, "E2E-0001").expect("row");
    assert_eq!(row["state"], "enrolled");
    assert_eq!(row["voucher_status"]["status"], true);
    assert_eq!(row["enrollstatus"]["status"], true);

    // The metrics of both daemons pass promtool and count this one bootstrap.
    let masa = scrape_metrics(&s.dir.join("masa.log"));
    assert_eq!(
        sample(&masa, "brski_masa_voucher_requests_total"),
        Some(1.0),
        "{masa}"
    );
    assert_eq!(
        sample(&masa, "brski_masa_vouchers_issued_total"),
        Some(1.0),
        "{masa}"
    );
    let registrar = scrape_metrics(&s.dir.join("registrar.log"));
    for family in ["voucher_requests", "enrollments"] {
        let series =
            format!("brski_registrar_{family}_total{{transport=\"https\",outcome=\"issued\"}}");
        assert_eq!(sample(&registrar, &series), Some(1.0), "{registrar}");
    }
    assert_eq!(
        sample(
            &registrar,
            "brski_registrar_masa_request_duration_seconds_count\
             {resource=\"requestvoucher\",outcome=\"answered\"}"
        ),
        Some(1.0),
        "{registrar}"
    );
    let stopped = s.stop().expect("stop");
    assert!(
        stopped.iter().all(|(_, st)| st.success()),
        "clean SIGTERM exits: {stopped:?}"
    );
    assert!(registrar_db_ok(&s));
    assert!(masa_db_ok(&s));
}

#[test]
fn rfc8995_5_3_idevid_of_an_unknown_manufacturer_is_refused() {
    let (_tmp, s) = started(&SuiteOptions::default());
    // Another manufacturer mints a pledge configured for our registrar.
    let (_tmp2, other) = suite(&SuiteOptions::default());
    let config = other.mint("FOREIGN-1").expect("mint");
    let mut toml = std::fs::read_to_string(&config).expect("toml");
    toml = toml.replace(&other.registrar_url(), &s.registrar_url());
    std::fs::write(&config, toml).expect("write");
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert!(!out.status.success(), "must be refused");
    assert!(
        pledge_row(&s, "FOREIGN-1").is_none(),
        "nothing stored for it"
    );
}

/// A PVR built by the test: `signer_dir`'s key signs a request for `serial`.
fn pvr_file(
    s: &testbed::loopback::Suite,
    signer_dir: &std::path::Path,
    serial: &str,
    out: &std::path::Path,
) {
    let key = SoftwareKey::from_pem(
        &std::fs::read_to_string(signer_dir.join("idevid.key.pem")).expect("key"),
    )
    .expect("key");
    let idevid = cert(&signer_dir.join("idevid.crt.pem"));
    let registrar =
        std::fs::read_to_string(s.registrar_dir.join("registrar.crt.pem")).expect("registrar cert");
    let registrar_der = brski_common::input::pem_block(&registrar, &["CERTIFICATE"]).expect("pem");
    let pvr =
        build_pledge_voucher_request(Format::Cms, serial, &registrar_der, &key, &[idevid], None)
            .expect("pvr");
    std::fs::write(out, &pvr.bytes).expect("write pvr");
}

#[test]
fn rfc8995_5_3_request_signed_by_another_key_or_for_another_serial_is_403() {
    let (tmp, s) = started(&SuiteOptions::default());
    let a = s
        .mint("E2E-A")
        .expect("mint")
        .parent()
        .expect("dir")
        .to_path_buf();
    let b = s
        .mint("E2E-B")
        .expect("mint")
        .parent()
        .expect("dir")
        .to_path_buf();
    let ct = Some("application/voucher-cms+json");
    // Signed by B's IDevID key, sent over A's TLS session.
    let other_key = tmp.path().join("other-key.cms");
    pvr_file(&s, &b, "E2E-A", &other_key);
    let (status, _) = curl(
        &s,
        &a,
        "POST",
        "/.well-known/brski/requestvoucher",
        ct,
        Some(&other_key),
    );
    assert_eq!(status, 403);
    // Signed by A, but for B's serial.
    let wrong_serial = tmp.path().join("wrong-serial.cms");
    pvr_file(&s, &a, "E2E-B", &wrong_serial);
    let (status, _) = curl(
        &s,
        &a,
        "POST",
        "/.well-known/brski/requestvoucher",
        ct,
        Some(&wrong_serial),
    );
    assert_eq!(status, 403);
    // The well-formed request from A itself is accepted (the checks above are the only difference).
    let good = tmp.path().join("good.cms");
    pvr_file(&s, &a, "E2E-A", &good);
    let (status, _) = curl(
        &s,
        &a,
        "POST",
        "/.well-known/brski/requestvoucher",
        ct,
        Some(&good),
    );
    assert_eq!(status, 200);
}

#[test]
fn rfc8995_5_3_denied_pledge_gets_404_and_pending_pledge_202_then_enrolls() {
    let (_tmp, s) = started(&SuiteOptions {
        accept: "pending".into(),
        ..SuiteOptions::default()
    });
    denied_gets_404_and_pending_waits_then_enrolls(&s, "E2E-DENY", "E2E-PEND");
}

#[test]
fn rfc8995_5_5_4_masa_refuses_a_registrar_without_cmc_ra() {
    use brski_common::pki::{issue, profile};
    let (_tmp, mut s) = started(&SuiteOptions::default());
    s.registrar
        .take()
        .expect("registrar")
        .stop(Duration::from_secs(10))
        .expect("stop");
    // Replace the registrar's certificate with a TLS-only one from the same domain CA.
    let ca_key = SoftwareKey::from_pem(
        &std::fs::read_to_string(s.registrar_dir.join("domain-ca.key.pem")).expect("ca key"),
    )
    .expect("key");
    let ca = cert(&s.registrar_dir.join("domain-ca.crt.pem"));
    let key = SoftwareKey::generate(brski_common::keys::SignatureAlgorithm::EcdsaP256Sha256)
        .expect("key");
    let params =
        profile::tls_server(&["localhost"], &["127.0.0.1".parse().expect("ip")]).expect("params");
    let tls_only = issue(
        &params,
        brski_common::keys::Signer::public_key_spki(&key),
        Some(&ca),
        &ca_key,
    )
    .expect("issue");
    std::fs::write(
        s.registrar_dir.join("registrar.crt.pem"),
        brski_service::files::certs_to_pem(&[tls_only, ca]),
    )
    .expect("write");
    std::fs::write(
        s.registrar_dir.join("registrar.key.pem"),
        key.to_pkcs8_pem(),
    )
    .expect("write");
    s.start_registrar().expect("restart");
    let config = s.mint("E2E-NORA").expect("mint");
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let reason = stderr(&out);
    // RFC 8995 §5.6: the MASA's 403 and its reason reach the pledge as they are.
    assert!(
        reason.contains("registrar answered 403")
            && reason.contains("MASA answered 403: registrar certificate lacks id-kp-cmcRA"),
        "registrar relays the MASA's 403: {reason}"
    );
    assert!(
        !config
            .parent()
            .expect("dir")
            .join("ldevid.crt.pem")
            .exists()
    );
}

#[test]
fn rfc8995_5_6_the_masas_404_reaches_the_pledge_as_404() {
    // A MASA that issues vouchers only for claimed devices, and a device nobody claimed.
    let (_tmp, s) = started(&SuiteOptions {
        ownership: "claimed".into(),
        ..SuiteOptions::default()
    });
    let config = s.mint("E2E-UNCLAIMED").expect("mint");
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let reason = stderr(&out);
    assert!(
        reason.contains("registrar answered 404")
            && reason.contains(
                "MASA answered 404: device \"E2E-UNCLAIMED\" is not claimed by any domain"
            ),
        "registrar relays the MASA's 404 with its reason: {reason}"
    );
    assert!(
        !config
            .parent()
            .expect("dir")
            .join("ldevid.crt.pem")
            .exists()
    );
}

#[test]
fn rfc8995_masa_down_registrar_answers_502_and_pledge_run_retries() {
    let (_tmp, mut s) = suite(&SuiteOptions::default());
    s.start_registrar().expect("registrar only");
    let config = s.mint("E2E-RETRY").expect("mint");
    let dir = config.parent().expect("dir").to_path_buf();
    let (status, _) = {
        let pvr = dir.join("probe.cms");
        pvr_file(&s, &dir, "E2E-RETRY", &pvr);
        curl(
            &s,
            &dir,
            "POST",
            "/.well-known/brski/requestvoucher",
            Some("application/voucher-cms+json"),
            Some(&pvr),
        )
    };
    assert_eq!(status, 502, "MASA unreachable");
    let mut run_cmd = s.pledge("run", &config).expect("cmd");
    let mut child = run_cmd
        .arg("--once")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().expect("wait").is_none(),
        "pledge run keeps retrying"
    );
    s.start_masa().expect("masa back");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "pledge run did not enroll after the MASA returned"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success());
    assert!(dir.join("ldevid.crt.pem").exists());
}

#[test]
fn rfc8995_malformed_bodies_get_400_and_nothing_is_stored() {
    let (tmp, s) = started(&SuiteOptions::default());
    // An enrolled pledge, so that every endpoint (EST included) reaches its body parser.
    let config = s.mint("E2E-BAD").expect("mint");
    let dir = config.parent().expect("dir").to_path_buf();
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert!(out.status.success(), "{}", stderr(&out));
    let before = pledge_row(&s, "E2E-BAD").expect("row");

    let junk = tmp.path().join("junk");
    std::fs::write(&junk, b"\x30\x82\xff\xff not DER, not base64 {").expect("write");
    for (path, ct) in [
        (
            "/.well-known/brski/requestvoucher",
            "application/voucher-cms+json",
        ),
        ("/.well-known/brski/voucher_status", "application/json"),
        ("/.well-known/brski/enrollstatus", "application/json"),
        ("/.well-known/est/simpleenroll", "application/pkcs10"),
    ] {
        let (status, _) = curl(&s, &dir, "POST", path, Some(ct), Some(&junk));
        assert_eq!(status, 400, "{path}");
    }
    // /simplereenroll, authenticated by the LDevID.
    let ldevid_dir = tmp.path().join("as-ldevid");
    std::fs::create_dir_all(&ldevid_dir).expect("dir");
    std::fs::copy(
        dir.join("ldevid.crt.pem"),
        ldevid_dir.join("idevid.crt.pem"),
    )
    .expect("copy");
    std::fs::copy(
        dir.join("ldevid.key.pem"),
        ldevid_dir.join("idevid.key.pem"),
    )
    .expect("copy");
    let (status, _) = curl(
        &s,
        &ldevid_dir,
        "POST",
        "/.well-known/est/simplereenroll",
        Some("application/pkcs10"),
        Some(&junk),
    );
    assert_eq!(status, 400, "simplereenroll");

    let after = pledge_row(&s, "E2E-BAD").expect("row");
    for counter in ["vouchers", "telemetry_reports", "certificates"] {
        assert_eq!(before[counter], after[counter], "{counter} unchanged");
    }

    // The MASA too: a garbage registrar voucher-request is 400 and adds no audit entry.
    let audit = |s: &testbed::loopback::Suite| -> usize {
        let log = output(
            Command::new(&s.bin.masa)
                .args(["audit-log", "--serial", "E2E-BAD", "--config"])
                .arg(s.masa_config()),
        );
        assert!(log.status.success(), "{}", stderr(&log));
        let v: serde_json::Value = serde_json::from_slice(&log.stdout).expect("json");
        v["events"].as_array().map(|e| e.len()).unwrap_or(0)
    };
    let events = audit(&s);
    assert_eq!(events, 1, "one voucher, one audit entry");
    let out = output(
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(s.masa_dir.join("vendor-ca.crt.pem"))
            .args([
                "-H",
                "Content-Type: application/voucher-cms+json",
                "--data-binary",
            ])
            .arg(format!("@{}", junk.display()))
            .arg(format!(
                "https://localhost:{}/.well-known/brski/requestvoucher",
                s.masa_addr.port()
            )),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "400");
    assert_eq!(audit(&s), events);
}

/// `openssl x509 -text` of a PEM certificate file.
fn openssl_text(cert: &std::path::Path) -> String {
    let out = run(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(cert))
    .expect("openssl x509");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn rfc8995_5_9_2_pledge_follows_csrattrs_names_and_pop_linking() {
    let (_tmp, mut s) = suite(&SuiteOptions::default());
    edit_registrar_config(&s, |t| {
        t.replace(
            "# acp-node-name = \"0+{serial}@acp.example.net\"",
            "acp-node-name = \"0+{serial}@acp.example.net\"",
        )
        .replace(
            "# dns-names = [\"{serial}.pledges.example.net\"]",
            "dns-names = [\"{serial}.pledges.example.net\"]",
        )
        .replace("require-pop-linking = false", "require-pop-linking = true")
    });
    s.start_masa().expect("masa serve");
    s.start_registrar().expect("registrar serve");
    let config = s.mint("E2E-SAN-1").expect("mint");
    let dir = config.parent().expect("dir").to_path_buf();
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    let printed = openssl_text(&dir.join("ldevid.crt.pem"));
    assert!(
        printed.contains("DNS:e2e-san-1.pledges.example.net")
            || printed.contains("DNS:E2E-SAN-1.pledges.example.net"),
        "{printed}"
    );
    assert!(
        printed.contains("othername:") && printed.contains("1.3.6.1.5.5.7.8.10"),
        "the AcpNodeName: {printed}"
    );
    assert_eq!(
        pledge_row(&s, "E2E-SAN-1").expect("row")["state"],
        "enrolled"
    );
}

#[test]
fn rfc7030_4_2_2_pledge_run_recovers_from_a_lost_renewal_answer() {
    let (tmp, mut s) = suite(&SuiteOptions::default());
    edit_registrar_config(&s, |t| {
        t.replace("ldevid-validity-days = 365", "ldevid-validity-days = 1")
    });
    s.start_masa().expect("masa serve");
    s.start_registrar().expect("registrar serve");
    let config = s.mint("E2E-LOST-1").expect("mint");
    let dir = config.parent().expect("dir").to_path_buf();
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    let first = cert(&dir.join("ldevid.crt.pem"));

    // A renewal with the pledge's LDevID whose answer never reaches it.
    let csr = brski_common::pki::build_csr(
        first.tbs_certificate().subject(),
        &SoftwareKey::generate(brski_common::keys::SignatureAlgorithm::EcdsaP256Sha256)
            .expect("key"),
        &Default::default(),
    )
    .expect("csr");
    let body = tmp.path().join("renew.b64");
    std::fs::write(&body, brski_common::est::encode_base64_body(&csr)).expect("write");
    let lost = output(
        Command::new("curl")
            .args(["-sS", "-k", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["-H", "Content-Type: application/pkcs10", "--data-binary"])
            .arg(format!("@{}", body.display()))
            .arg("--cert")
            .arg(dir.join("ldevid.crt.pem"))
            .arg("--key")
            .arg(dir.join("ldevid.key.pem"))
            .arg(format!(
                "{}/.well-known/est/simplereenroll",
                s.registrar_url()
            )),
    );
    assert_eq!(
        String::from_utf8_lossy(&lost.stdout),
        "200",
        "{}",
        stderr(&lost)
    );
    let lost_serial = pledge_row(&s, "E2E-LOST-1").expect("row")["ldevid_serial"].clone();

    for (from, to) in [
        ("ldevid.crt.pem", "old.crt.pem"),
        ("ldevid.key.pem", "old.key.pem"),
    ] {
        std::fs::copy(dir.join(from), tmp.path().join(to)).expect("copy");
    }
    // `pledge run` renews (at once: --renew-at) from the LDevID it has, on its own.
    let mut child = s
        .pledge("run", &config)
        .expect("cmd")
        .args(["--renew-at", "0.003"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn pledge run");
    let start = Instant::now();
    let renewed = loop {
        let now = cert(&dir.join("ldevid.crt.pem"));
        if now != first {
            break now;
        }
        if start.elapsed() > Duration::from_secs(45) {
            let _ = child.kill();
            panic!("pledge run did not renew after the lost answer");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let renewed_serial = hex::encode_upper(renewed.tbs_certificate().serial_number().as_bytes());
    assert_ne!(serde_json::Value::String(renewed_serial), lost_serial);
    // Once the new LDevID is used (the pledge reports the renewal with it), the old one is
    // refused in the TLS handshake. `pledge run` keeps running until then: on a loaded host
    // it may write the new LDevID well before it first uses it.
    let start = Instant::now();
    loop {
        let old = output(
            Command::new("curl")
                .args(["-sS", "-k", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg("--cert")
                .arg(tmp.path().join("old.crt.pem"))
                .arg("--key")
                .arg(tmp.path().join("old.key.pem"))
                .arg(format!("{}/.well-known/est/csrattrs", s.registrar_url())),
        );
        if !old.status.success() {
            assert_eq!(
                String::from_utf8_lossy(&old.stdout),
                "000",
                "no HTTP answer"
            );
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!(
                "the old LDevID is still let in: {}",
                String::from_utf8_lossy(&old.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    // The registrar logs the refusal after sending its alert: wait for the line.
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(s.dir.join("registrar.log")).expect("registrar log");
        if log
            .lines()
            .any(|l| l.contains("tls-rejected") && l.contains("which is in use"))
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rfc8995_7_2_stored_nonceless_voucher_is_accepted_only_by_pledge_policy() {
    // A MASA that issues nonceless vouchers only for claimed devices (RFC 8995 §7.4.1), a
    // registrar that relays a stored one without asking the MASA (§7.3 item 3).
    let (_tmp, mut s) = suite(&SuiteOptions {
        ownership: "claimed".into(),
        ..SuiteOptions::default()
    });
    let reg_toml = s.registrar_config();
    edit_registrar_config(&s, |text| {
        let always = text.replace(
            "use-nonceless-vouchers = \"when-masa-unreachable\"",
            "use-nonceless-vouchers = \"always\"",
        );
        assert_ne!(always, text, "{text}");
        always
    });
    s.start_masa().expect("masa serve");
    s.start_registrar().expect("registrar serve");
    let masa_url = format!("https://localhost:{}", s.masa_addr.port());
    let domain_ca = s.registrar_dir.join("domain-ca.crt.pem");
    let mut configs = Vec::new();
    for serial in ["E2E-OFFLINE-1", "E2E-OFFLINE-2"] {
        configs.push(s.mint(serial).expect("mint"));
        run(Command::new(&s.bin.masa)
            .args(["claim", "--config"])
            .arg(s.masa_config())
            .args(["--serial", serial, "--domain-ca"])
            .arg(&domain_ca))
        .expect("masa claim");
        run(Command::new(&s.bin.registrar)
            .args([
                "vouchers",
                "fetch",
                "--serial",
                serial,
                "--masa-url",
                &masa_url,
            ])
            .arg("--config")
            .arg(&reg_toml))
        .expect("registrar vouchers fetch");
    }

    // The pledge as the factory made it refuses a nonceless voucher.
    let text = std::fs::read_to_string(&configs[0]).expect("pledge.toml");
    assert!(text.contains("accept-nonceless-vouchers = false"), "{text}");
    let out = output(&mut s.pledge("bootstrap", &configs[0]).expect("cmd"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).lines().last(),
        Some(
            "pledge: voucher rejected: voucher has no nonce and nonceless vouchers are not accepted"
        )
    );
    let dir = configs[0].parent().expect("dir");
    assert!(!dir.join("state.json").exists());

    // With the policy on (and its trusted clock), the same kind of voucher enrolls.
    let text = std::fs::read_to_string(&configs[1]).expect("pledge.toml");
    std::fs::write(
        &configs[1],
        text.replace(
            "accept-nonceless-vouchers = false",
            "accept-nonceless-vouchers = true",
        ),
    )
    .expect("write");
    let out = output(&mut s.pledge("bootstrap", &configs[1]).expect("cmd"));
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    let dir = configs[1].parent().expect("dir");
    let e = read_enrollment(dir, "E2E-OFFLINE-2").expect("enrollment");
    assert_eq!(
        e.ldevid_issuer,
        cert(&domain_ca).tbs_certificate().subject().to_string()
    );
    let voucher = std::fs::read(dir.join("voucher.vcj")).expect("voucher");
    let parsed = brski_common::envelope::parse(Format::Cms, &voucher).expect("CMS");
    let v = brski_common::voucher::Voucher::from_payload(Format::Cms, &parsed.payload)
        .expect("voucher");
    assert!(v.nonce.is_none() && v.expires_on.is_some(), "{v:?}");
    let stopped = s.stop().expect("stop");
    assert!(stopped.iter().all(|(_, st)| st.success()), "{stopped:?}");
}
