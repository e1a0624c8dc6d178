//! EST hardening with the real `registrar` binary (RFC 7030, RFC 8995 §5.9): `/cacerts`
//! without a client certificate, one LDevID per voucher, superseded and revoked LDevIDs
//! refused in the TLS handshake, renewal safe to repeat after a lost answer and keeping its
//! subject and names, 202 for a pending pledge, and CSRs whose key is not accepted. Each
//! refusal with its exact status and reason.

mod support;

use brski_common::brski::paths;
use brski_common::est::{CsrAttrs, pop_linking_value};
use brski_common::keys::{Signer, SoftwareKey};
use brski_common::pki::csr::{CsrParams, build_csr};
use brski_common::pki::ext::subject_alt_names;
use brski_common::pki::profile;
use brski_common::telemetry::StatusTelemetry;
use std::sync::Arc;
use support::*;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::name::Name;

const JSON: &str = "application/json";
const PKCS10: &str = "application/pkcs10";

/// A pledge of `s` that obtained a voucher.
async fn vouchered(s: &Setup, serial: &str) -> Pledge {
    let p = s.pledge(serial);
    p.obtain_voucher(&s.reg, &s.vendor).await;
    p
}

/// A pledge of `s` with a voucher and its first LDevID (in use) with the key.
async fn enrolled(s: &Setup, serial: &str) -> (Pledge, Arc<SoftwareKey>, Certificate) {
    let p = vouchered(s, serial).await;
    let k = Arc::new(key());
    let a = simple_enroll(s, &p, &*k).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let cert = single_cert(&a.body);
    let a = enroll_status(s, &cert, &k).await.expect("enrollstatus");
    assert_eq!(a.status, 200, "{}", a.text());
    (p, k, cert)
}

/// `/simpleenroll` of `p` for `key` with the IDevID subject.
async fn simple_enroll(s: &Setup, p: &Pledge, key: &dyn Signer) -> Answer {
    let subject = p.idevid.cert.tbs_certificate().subject().clone();
    p.post(
        &s.reg,
        paths::SIMPLE_ENROLL,
        PKCS10,
        csr_body(&subject, key),
    )
    .await
}

/// An HTTPS client on a new connection authenticated by `cert` and `key`.
fn ldevid_client(cert: &Certificate, key: &Arc<SoftwareKey>) -> reqwest::Client {
    client(&[der(cert)], key.clone()).0
}

/// `/simplereenroll` of the holder of `cert` (a client on a new connection) for `new_key`.
async fn renew(
    s: &Setup,
    cert: &Certificate,
    key: &Arc<SoftwareKey>,
    new_key: &dyn Signer,
) -> Result<Answer, reqwest::Error> {
    send(
        ldevid_client(cert, key)
            .post(s.reg.url(paths::SIMPLE_REENROLL))
            .header(reqwest::header::CONTENT_TYPE, PKCS10)
            .body(csr_body(cert.tbs_certificate().subject(), new_key)),
    )
    .await
}

/// `/enrollstatus` success, authenticated by `cert` on a new connection.
async fn enroll_status(
    s: &Setup,
    cert: &Certificate,
    key: &Arc<SoftwareKey>,
) -> Result<Answer, reqwest::Error> {
    send(
        ldevid_client(cert, key)
            .post(s.reg.url(paths::ENROLL_STATUS))
            .header(reqwest::header::CONTENT_TYPE, JSON)
            .body(StatusTelemetry::success().to_json().expect("json")),
    )
    .await
}

/// `old` (held with `key`) is refused in the handshake as revoked by its successor `new`'s
/// first use (RFC 7030 §4.2.2).
async fn assert_superseded_in_use(
    s: &Setup,
    old: &Certificate,
    key: &Arc<SoftwareKey>,
    new: &Certificate,
) {
    let reason = format!(
        "LDevID {} is revoked: superseded by {}, which is in use",
        cert_serial_hex(old),
        cert_serial_hex(new)
    );
    assert_refused_in_tls(s, old, key, &reason).await;
}

/// The handshake with `cert` fails, and the registrar logged `reason` as why.
async fn assert_refused_in_tls(
    s: &Setup,
    cert: &Certificate,
    key: &Arc<SoftwareKey>,
    reason: &str,
) {
    let err = enroll_status(s, cert, key)
        .await
        .expect_err("the TLS handshake must fail");
    // TLS 1.3: the client's handshake is done before the server judges its certificate, so
    // the client reads either the server's alert or, when the alert and the close outrun its
    // request, a connection closed before it could be used. Never an HTTP answer.
    let said = format!("{err:?}").to_lowercase();
    assert!(
        said.contains("alert") || said.contains("connection was not ready"),
        "the client gets a TLS alert: {err:?}"
    );
    // The server logs the refusal as the alert leaves: wait for the line.
    let logged = || {
        s.reg
            .log()
            .lines()
            .any(|l| l.contains("tls-rejected") && l.contains(reason))
    };
    for _ in 0..100 {
        if logged() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("registrar log names {reason:?}: {}", s.reg.log());
}

/// `curl` without a client certificate; (status, body).
async fn curl_anonymous(s: &Setup, method: &str, path: &str) -> (u16, Vec<u8>) {
    let content_type = match path {
        paths::REQUEST_VOUCHER => "application/voucher-cms+json",
        paths::VOUCHER_STATUS | paths::ENROLL_STATUS => JSON,
        _ => PKCS10,
    };
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-k", "-o", "-", "-w", "\n%{http_code}", "-X", method])
        .arg("-H")
        .arg(format!("Content-Type: {content_type}"))
        .args(["--data-binary", ""])
        .arg(s.reg.url(path))
        .output()
        .await
        .expect("curl must be installed");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = out.stdout;
    let split = text.iter().rposition(|&b| b == b'\n').expect("status line");
    let status = String::from_utf8_lossy(&text[split + 1..])
        .trim()
        .parse()
        .expect("status");
    (status, text[..split].to_vec())
}

/// `openssl ARGS`, which must succeed; its standard output.
async fn openssl_out(args: &[&std::ffi::OsStr]) -> String {
    String::from_utf8_lossy(&openssl(args).await.stdout).into_owned()
}

async fn registrar_cli(s: &Setup, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(registrar_bin())
        .args(args)
        .arg("--config")
        .arg(s.reg.dir.join("registrar.toml"))
        .output()
        .await
        .expect("run registrar")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7030_4_1_1_cacerts_without_client_certificate() {
    let s = setup().await;
    // GET /cacerts without a client certificate: 200, a certs-only body openssl parses.
    let (status, body) = curl_anonymous(&s, "GET", paths::CACERTS).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let p7 = s.tmp.path().join("cacerts.p7");
    let b64: String = String::from_utf8(body)
        .expect("text")
        .split_whitespace()
        .collect();
    let wrapped: Vec<String> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    std::fs::write(
        &p7,
        format!(
            "-----BEGIN PKCS7-----\n{}\n-----END PKCS7-----\n",
            wrapped.join("\n")
        ),
    )
    .expect("write");
    let printed = openssl_out(&[
        "pkcs7".as_ref(),
        "-print_certs".as_ref(),
        "-noout".as_ref(),
        "-in".as_ref(),
        p7.as_os_str(),
    ])
    .await;
    assert!(
        printed.contains("registrar.example Domain CA"),
        "the domain CA: {printed}"
    );
    // Every other resource needs an IDevID or LDevID: 401.
    for (method, path) in [
        ("POST", paths::REQUEST_VOUCHER),
        ("POST", paths::VOUCHER_STATUS),
        ("POST", paths::ENROLL_STATUS),
        ("GET", paths::CSRATTRS),
        ("POST", paths::SIMPLE_ENROLL),
        ("POST", paths::SIMPLE_REENROLL),
    ] {
        let (status, body) = curl_anonymous(&s, method, path).await;
        assert_eq!(
            (status, String::from_utf8_lossy(&body).trim()),
            (401, "no TLS client certificate"),
            "{method} {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_9_3_one_ldevid_per_voucher() {
    let s = setup().await;
    let (p, k1, first) = enrolled(&s, "SN-ONCE").await;
    // The same key again (the answer was lost): the same certificate.
    let a = simple_enroll(&s, &p, &*k1).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(single_cert(&a.body), first);
    // Another key on the same voucher: refused, nothing issued.
    for _ in 0..3 {
        let a = simple_enroll(&s, &p, &key()).await;
        assert_eq!(
            (a.status, a.text().trim().to_string()),
            (
                403,
                format!(
                    "LDevID {} was issued on this voucher already: renew it with /simplereenroll, or obtain a new voucher (RFC 8995 §5.9.3)",
                    cert_serial_hex(&first)
                )
            )
        );
    }
    let entry = s.reg.pledge("SN-ONCE").await.expect("listed");
    assert_eq!(entry["certificates"], 1);
    // A new voucher allows a new LDevID, and revokes the first.
    p.obtain_voucher(&s.reg, &s.vendor).await;
    let k2 = Arc::new(key());
    let a = simple_enroll(&s, &p, &*k2).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let second = single_cert(&a.body);
    assert_refused_in_tls(
        &s,
        &first,
        &k1,
        &format!(
            "LDevID {} is revoked: superseded by {}",
            cert_serial_hex(&first),
            cert_serial_hex(&second)
        ),
    )
    .await;
    let a = enroll_status(&s, &second, &k2).await.expect("enrollstatus");
    assert_eq!(a.status, 200, "{}", a.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7030_4_2_2_lost_renewal_answer_renews_again() {
    let s = setup().await;
    let (_, k1, l1) = enrolled(&s, "SN-LOST").await;

    // The renewal is read and answered, and the answer thrown away.
    let k2 = Arc::new(key());
    let lost = ldevid_client(&l1, &k1)
        .post(s.reg.url(paths::SIMPLE_REENROLL))
        .header(reqwest::header::CONTENT_TYPE, PKCS10)
        .body(csr_body(l1.tbs_certificate().subject(), &*k2))
        .send()
        .await
        .expect("sent");
    drop(lost);
    let entry = s.reg.pledge("SN-LOST").await.expect("listed");
    assert_eq!(entry["certificates"], 2);
    let l2_serial = entry["ldevid_serial"].as_str().expect("serial").to_string();

    // The old LDevID may renew again: the same key gets the same certificate.
    let a = renew(&s, &l1, &k1, &*k2).await.expect("renew");
    assert_eq!(a.status, 200, "{}", a.text());
    let l2 = single_cert(&a.body);
    assert_eq!(cert_serial_hex(&l2), l2_serial);
    // Nothing else: the renewed LDevID is not for telemetry.
    let a = enroll_status(&s, &l1, &k1).await.expect("status");
    assert_eq!(
        (a.status, a.text().trim().to_string()),
        (
            403,
            format!("client LDevID has been renewed; authenticate with its successor {l2_serial}")
        )
    );
    // Another key: a new certificate; the unused one is revoked.
    let k3 = Arc::new(key());
    let a = renew(&s, &l1, &k1, &*k3).await.expect("renew");
    assert_eq!(a.status, 200, "{}", a.text());
    let l3 = single_cert(&a.body);
    assert_ne!(l3, l2);
    assert_refused_in_tls(
        &s,
        &l2,
        &k2,
        &format!(
            "LDevID {l2_serial} is revoked: superseded by {}",
            cert_serial_hex(&l3)
        ),
    )
    .await;
    // Once the new one is used, the old one is revoked: refused in the handshake.
    assert_eq!(
        enroll_status(&s, &l3, &k3).await.expect("status").status,
        200
    );
    assert_superseded_in_use(&s, &l1, &k1, &l3).await;
    let entry = s.reg.pledge("SN-LOST").await.expect("listed");
    assert_eq!(entry["ldevid_serial"], cert_serial_hex(&l3));
    assert_eq!(entry["certificates"], 3);
}

/// An LDevID's first use is recorded with the report it authenticates (one write), and also
/// when that report is refused before it is stored: either way the LDevID it renewed is
/// revoked (RFC 7030 §4.2.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7030_4_2_2_first_use_is_recorded_even_by_a_refused_report() {
    let s = setup().await;
    let (_, k1, l1) = enrolled(&s, "SN-FIRST-USE").await;
    let k2 = Arc::new(key());
    let a = renew(&s, &l1, &k1, &*k2).await.expect("renew");
    assert_eq!(a.status, 200, "{}", a.text());
    let l2 = single_cert(&a.body);
    let a = send(
        ldevid_client(&l2, &k2)
            .post(s.reg.url(paths::ENROLL_STATUS))
            .header(reqwest::header::CONTENT_TYPE, JSON)
            .body("{\"version\": "),
    )
    .await
    .expect("sent");
    assert_eq!(a.status, 400, "{}", a.text());
    assert_superseded_in_use(&s, &l1, &k1, &l2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7030_3_3_2_revoked_ldevid_is_refused_in_the_handshake() {
    let s = setup().await;
    let (p, k1, l1) = enrolled(&s, "SN-REVOKE").await;
    let serial = cert_serial_hex(&l1);
    let out = registrar_cli(
        &s,
        &[
            "ldevid",
            "revoke",
            &serial.to_lowercase(),
            "--reason",
            "device stolen",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("LDevID {serial} revoked")
    );
    assert_refused_in_tls(
        &s,
        &l1,
        &k1,
        &format!("LDevID {serial} is revoked: device stolen"),
    )
    .await;
    // Revoking again, or an unknown serial: non-zero exit with the reason.
    let out = registrar_cli(&s, &["certs", "revoke", &serial]).await;
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("registrar: no unrevoked LDevID with serial number {serial}")
    );
    // --pledge revokes all of a pledge's LDevIDs (after a new voucher: the new one).
    p.obtain_voucher(&s.reg, &s.vendor).await;
    let k2 = Arc::new(key());
    let l2 = single_cert(&simple_enroll(&s, &p, &*k2).await.body);
    let out = registrar_cli(&s, &["ldevid", "revoke", "--pledge", "SN-REVOKE"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_refused_in_tls(
        &s,
        &l2,
        &k2,
        &format!(
            "LDevID {} is revoked: revoked by the operator",
            cert_serial_hex(&l2)
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7030_4_2_3_pending_pledge_at_simpleenroll_gets_202_with_retry_after() {
    let mut s = setup().await;
    let p = vouchered(&s, "SN-WAIT").await;
    // The operator switches to `accept = pending` and restarts; the pledge asks again (202),
    // which makes it pending, and enrolls on the voucher it already has.
    let _ = s.reg.child.kill().await;
    edit_config(&s.reg.dir, |t| {
        t.replace("accept = \"auto\"", "accept = \"pending\"")
            .replace("retry-after = 5", "retry-after = 7")
    });
    s.reg = RegistrarProc::start(&s.reg.dir, s.reg.addr).await;
    let cert = p.registrar_cert(&s.reg).await;
    let a = p
        .request_voucher(&s.reg, &p.pvr(brski_common::envelope::Format::Cms, &cert))
        .await;
    assert_eq!(a.status, 202, "{}", a.text());
    let k = key();
    let a = simple_enroll(&s, &p, &k).await;
    assert_eq!(
        (a.status, a.text().trim()),
        (202, "pledge SN-WAIT is waiting for approval; retry later")
    );
    assert_eq!(
        a.headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    assert_eq!(
        s.reg.pledge("SN-WAIT").await.expect("listed")["certificates"],
        0
    );
    let out = s.reg.pledges(&["allow", "SN-WAIT"]).await;
    assert!(out.status.success());
    let a = simple_enroll(&s, &p, &k).await;
    assert_eq!(a.status, 200, "{}", a.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7030_4_2_1_csr_with_rsa_512_key_is_refused_naming_the_key() {
    let s = setup().await;
    let p = vouchered(&s, "SN-RSA512").await;
    let dir = s.tmp.path();
    let (key_file, csr_file) = (dir.join("rsa512.key"), dir.join("rsa512.csr"));
    let mut args: Vec<&std::ffi::OsStr> = ["req", "-new", "-newkey", "rsa:512", "-nodes"]
        .into_iter()
        .chain(["-subj", "/CN=small", "-outform", "DER", "-keyout"])
        .map(std::ffi::OsStr::new)
        .collect();
    args.extend([key_file.as_os_str(), "-out".as_ref(), csr_file.as_os_str()]);
    openssl(&args).await;
    let csr = std::fs::read(&csr_file).expect("csr");
    let a = p
        .post(
            &s.reg,
            paths::SIMPLE_ENROLL,
            PKCS10,
            brski_common::est::encode_base64_body(&csr),
        )
        .await;
    assert_eq!(
        (a.status, a.text().trim()),
        (
            400,
            "CSR key not accepted: RSA key of 512 bits; 2048 to 8192 bits are accepted"
        )
    );
    assert_eq!(
        s.reg.pledge("SN-RSA512").await.expect("listed")["certificates"],
        0
    );
}

fn csr_der(subject: &Name, key: &dyn Signer, params: CsrParams) -> Vec<u8> {
    build_csr(subject, key, &params).expect("csr")
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7030_3_5_challenge_password_is_checked_against_the_channel_binding() {
    let s = setup().await;
    let p = vouchered(&s, "SN-POP").await;
    let subject = p.idevid.cert.tbs_certificate().subject().clone();
    let mut conn = est_connection(&s, &[p.idevid.der()], p.idevid.key.clone()).await;
    let other = est_connection(&s, &[p.idevid.der()], p.idevid.key.clone()).await;
    let binding = conn.channel_binding().expect("binding").to_vec();
    assert_eq!(binding.len(), 32, "RFC 9266: 32 bytes");
    assert_ne!(other.channel_binding(), Some(binding.as_slice()));
    let k = key();
    // The binding of another connection: refused.
    let mismatch = CsrParams {
        challenge_password: Some(pop_linking_value(other.channel_binding().expect("b"))),
        ..CsrParams::default()
    };
    let (status, body) = post_csr(
        &mut conn,
        paths::SIMPLE_ENROLL,
        &csr_der(&subject, &k, mismatch),
    )
    .await;
    assert_eq!(
        (status, text(&body)),
        (
            400,
            "CSR challengePassword is not the channel binding of this TLS connection (RFC 7030 §3.5, RFC 9266 tls-exporter)".into()
        )
    );
    // Any other value: refused the same way.
    let (status, _) = post_csr(
        &mut conn,
        paths::SIMPLE_ENROLL,
        &csr_der(
            &subject,
            &k,
            CsrParams {
                challenge_password: Some("secret".into()),
                ..CsrParams::default()
            },
        ),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        s.reg.pledge("SN-POP").await.expect("listed")["certificates"],
        0
    );
    // This connection's binding: enrolled.
    let matching = CsrParams {
        challenge_password: Some(pop_linking_value(&binding)),
        ..CsrParams::default()
    };
    let (status, body) = post_csr(
        &mut conn,
        paths::SIMPLE_ENROLL,
        &csr_der(&subject, &k, matching),
    )
    .await;
    assert_eq!(status, 200, "{}", text(&body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7030_3_5_csr_without_channel_binding_is_refused_when_required() {
    let s = setup_with(MasaMode::Issue, &[], |t| {
        t.replace("require-pop-linking = false", "require-pop-linking = true")
    })
    .await;
    let p = vouchered(&s, "SN-POP-REQ").await;
    let a = p.get(&s.reg, paths::CSRATTRS).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let attrs = CsrAttrs::from_body(&a.body).expect("csrattrs");
    assert!(attrs.requests_challenge_password(), "RFC 7030 §4.5.2");
    let a = simple_enroll(&s, &p, &key()).await;
    assert_eq!(
        (a.status, a.text().trim()),
        (
            400,
            "CSR has no challengePassword, which /csrattrs asks for (RFC 7030 §3.5)"
        )
    );
    let subject = p.idevid.cert.tbs_certificate().subject().clone();
    let mut conn = est_connection(&s, &[p.idevid.der()], p.idevid.key.clone()).await;
    let binding = conn.channel_binding().expect("binding").to_vec();
    let params = CsrParams {
        challenge_password: Some(pop_linking_value(&binding)),
        ..CsrParams::default()
    };
    let (status, body) = post_csr(
        &mut conn,
        paths::SIMPLE_ENROLL,
        &csr_der(&subject, &key(), params),
    )
    .await;
    assert_eq!(status, 200, "{}", text(&body));
}

/// `openssl x509 -text` of `cert`.
async fn openssl_text(s: &Setup, cert: &Certificate, name: &str) -> String {
    let path = s.tmp.path().join(name);
    std::fs::write(&path, pem(std::slice::from_ref(cert))).expect("write");
    openssl_out(&[
        "x509".as_ref(),
        "-noout".as_ref(),
        "-text".as_ref(),
        "-in".as_ref(),
        path.as_os_str(),
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8995_5_9_2_csr_that_ignores_csrattrs_is_refused_and_the_ldevid_carries_the_san() {
    let s = setup_with(MasaMode::Issue, &[], |t| {
        t.replace(
            "# acp-node-name = \"0+{serial}@acp.example.net\"",
            "acp-node-name = \"fd89b714f3db00000200000064000000+{serial}@acp.example.net\"",
        )
        .replace(
            "# dns-names = [\"{serial}.pledges.example.net\"]",
            "dns-names = [\"{serial}.pledges.example.net\"]",
        )
    })
    .await;
    let p = vouchered(&s, "SN-SAN").await;
    let subject = p.idevid.cert.tbs_certificate().subject().clone();
    // /csrattrs asks for both names in an extensionRequest subjectAltName.
    let a = p.get(&s.reg, paths::CSRATTRS).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let attrs = CsrAttrs::from_body(&a.body).expect("csrattrs");
    let templates = attrs.extension_templates();
    let acp = profile::acp_node_name("fd89b714f3db00000200000064000000+SN-SAN@acp.example.net")
        .expect("acp");
    let dns = profile::alt_names(&["SN-SAN.pledges.example.net"], &[]).expect("dns");
    assert_eq!(
        subject_alt_names(&templates).expect("san"),
        vec![acp.clone(), dns[0].clone()]
    );
    // A CSR that ignores them: 400 naming what is missing.
    let a = simple_enroll(&s, &p, &key()).await;
    assert_eq!(
        (a.status, a.text().trim()),
        (
            400,
            "CSR does not request subjectAltName otherName AcpNodeName \"fd89b714f3db00000200000064000000+SN-SAN@acp.example.net\" as /csrattrs asks"
        )
    );
    // One name more than asked: 400 naming it.
    let mut extra = templates.clone();
    let mut names = vec![acp.clone(), dns[0].clone()];
    names.extend(profile::alt_names(&["other.example"], &[]).expect("dns"));
    extra[0].extn_value =
        der::asn1::OctetString::new(der::Encode::to_der(&SubjectAltName(names)).expect("der"))
            .expect("octets");
    let with = |extensions: Vec<x509_cert::ext::Extension>, k: &dyn Signer| {
        brski_common::est::encode_base64_body(&csr_der(
            &subject,
            k,
            CsrParams {
                extensions,
                ..CsrParams::default()
            },
        ))
    };
    let a = p
        .post(&s.reg, paths::SIMPLE_ENROLL, PKCS10, with(extra, &key()))
        .await;
    assert_eq!(
        (a.status, a.text().trim()),
        (
            400,
            "CSR requests subjectAltName dNSName \"other.example\", which /csrattrs does not ask for"
        )
    );
    assert_eq!(
        s.reg.pledge("SN-SAN").await.expect("listed")["certificates"],
        0
    );
    // The template followed: the LDevID carries the names.
    let k = Arc::new(key());
    let a = p
        .post(
            &s.reg,
            paths::SIMPLE_ENROLL,
            PKCS10,
            with(templates.clone(), &*k),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let ldevid = single_cert(&a.body);
    let printed = openssl_text(&s, &ldevid, "san.crt.pem").await;
    assert!(
        printed.contains("X509v3 Subject Alternative Name"),
        "{printed}"
    );
    assert!(
        printed.contains("DNS:SN-SAN.pledges.example.net"),
        "{printed}"
    );
    assert!(
        printed.contains("othername:") && printed.contains("1.3.6.1.5.5.7.8.10"),
        "the AcpNodeName otherName: {printed}"
    );
    // RFC 7030 §4.2.2: a renewal keeps subject and subjectAltName.
    let renewing = ldevid_client(&ldevid, &k);
    let post = |body: String| {
        renewing
            .post(s.reg.url(paths::SIMPLE_REENROLL))
            .header(reqwest::header::CONTENT_TYPE, PKCS10)
            .body(body)
    };
    let a = send(post(with(Vec::new(), &key()))).await.expect("renew");
    assert_eq!(
        (a.status, a.text().trim()),
        (
            400,
            "CSR does not request subjectAltName otherName AcpNodeName \"fd89b714f3db00000200000064000000+SN-SAN@acp.example.net\" as /csrattrs asks"
        )
    );
    let a = send(post(with(templates, &key()))).await.expect("renew");
    assert_eq!(a.status, 200, "{}", a.text());
    let renewed = single_cert(&a.body);
    assert_eq!(
        subject_alt_names(brski_common::pki::ext::cert_extensions(&renewed)).expect("san"),
        vec![acp, dns[0].clone()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7030_4_2_2_renewal_keeps_the_subject_and_the_names() {
    let s = setup().await;
    let (_, k1, l1) = enrolled(&s, "SN-RENAME").await;
    let subject = l1.tbs_certificate().subject().clone();
    let reenroll = |subject: Name, extensions: Vec<x509_cert::ext::Extension>| {
        let body = brski_common::est::encode_base64_body(&csr_der(
            &subject,
            &key(),
            CsrParams {
                extensions,
                ..CsrParams::default()
            },
        ));
        send(
            ldevid_client(&l1, &k1)
                .post(s.reg.url(paths::SIMPLE_REENROLL))
                .header(reqwest::header::CONTENT_TYPE, PKCS10)
                .body(body),
        )
    };
    // Another subject: 400, nothing issued.
    let other = brski_common::pki::parse_name("serialNumber=SN-OTHER").expect("name");
    let a = reenroll(other, vec![]).await.expect("sent");
    assert_eq!(
        (a.status, a.text().trim()),
        (
            400,
            "CSR subject differs from the LDevID being renewed (RFC 7030 §4.2.2)"
        )
    );
    // The same subject with a subjectAltName the LDevID does not have: 400.
    let names = profile::alt_names(&["renamed.example"], &[]).expect("dns");
    let san = x509_cert::ext::Extension {
        extn_id: <SubjectAltName as const_oid::AssociatedOid>::OID,
        critical: false,
        extn_value: der::asn1::OctetString::new(
            der::Encode::to_der(&SubjectAltName(names)).expect("der"),
        )
        .expect("octets"),
    };
    let a = reenroll(subject.clone(), vec![san]).await.expect("sent");
    assert_eq!(
        (a.status, a.text().trim()),
        (
            400,
            "CSR requests a subjectAltName the LDevID being renewed does not have (RFC 7030 §4.2.2)"
        )
    );
    assert_eq!(
        s.reg.pledge("SN-RENAME").await.expect("listed")["certificates"],
        1
    );
    // The same subject and no names: renewed.
    let a = reenroll(subject, vec![]).await.expect("sent");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        single_cert(&a.body).tbs_certificate().subject(),
        l1.tbs_certificate().subject()
    );
}
