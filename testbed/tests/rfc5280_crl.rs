//! The registrar's CRL of revoked LDevIDs (RFC 5280 §5) and its distribution point in every
//! LDevID (§4.2.1.13), checked with openssl as a relying party would: it fetches the CRL
//! from the distribution point itself (`openssl verify -crl_download`), checks its signature
//! under the domain CA (`openssl crl -verify`) and refuses a revoked LDevID
//! (`openssl verify -crl_check`). `registrar certs list|revoke|crl` drive it.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::*;
use testbed::loopback::{Suite, SuiteOptions, free_port};

fn openssl(args: &[&str]) -> Output {
    output(Command::new("openssl").args(args))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `registrar certs ARGS --config ...`; it must succeed.
fn certs(s: &Suite, args: &[&str]) -> String {
    let out = output(
        Command::new(&s.bin.registrar)
            .arg("certs")
            .args(args)
            .arg("--config")
            .arg(s.registrar_config()),
    );
    assert!(out.status.success(), "certs {args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// GET `url` (plain HTTP) into `file` with curl; the status.
fn fetch(url: &str, file: &Path) -> u16 {
    let out = output(Command::new("curl").args(["-sS", "-o", p(file), "-w", "%{http_code}", url]));
    assert!(out.status.success(), "curl {url}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("status")
}

/// `openssl verify -crl_check` of `cert` under the domain CA, the CRL fetched by openssl from
/// the certificate's distribution point.
fn verify_downloading_the_crl(domain_ca: &Path, cert: &Path) -> Output {
    openssl(&[
        "verify",
        "-crl_check",
        "-crl_download",
        "-CAfile",
        p(domain_ca),
        p(cert),
    ])
}

/// `openssl crl -verify -text` of the CRL `file` (`DER` or `PEM`) under `ca`: whether the
/// signature verified, and the text.
fn crl_verified(file: &Path, form: &str, ca: &Path) -> (bool, String) {
    let out = openssl(&[
        "crl",
        "-inform",
        form,
        "-in",
        p(file),
        "-CAfile",
        p(ca),
        "-noout",
        "-verify",
        "-text",
    ]);
    let t = text(&out);
    (out.status.success() && t.contains("verify OK"), t)
}

fn serial_of(cert: &Path) -> String {
    let out = openssl(&["x509", "-noout", "-serial", "-in", p(cert)]);
    text(&out)
        .trim()
        .strip_prefix("serial=")
        .expect("serial=")
        .to_string()
}

fn enrolled(s: &Suite, serial: &str) -> PathBuf {
    let config = s.mint(serial).expect("mint");
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert!(out.status.success(), "bootstrap {serial}: {}", stderr(&out));
    config.parent().expect("dir").join("ldevid.crt.pem")
}

#[test]
fn revoked_ldevids_are_in_the_crl_at_their_distribution_point_and_openssl_refuses_them() {
    let (tmp, mut s) = suite(&SuiteOptions::default());
    let port = free_port().expect("port");
    let url = format!("http://127.0.0.1:{port}/crl/domain.crl");
    edit_registrar_config(&s, |t| {
        t.replace(
            "crl-listen = \"off\"",
            &format!("crl-listen = \"127.0.0.1:{port}\""),
        )
        .replace(
            "# crl-url = \"http://registrar.example:8080/crl\"",
            &format!("crl-url = \"{url}\""),
        )
    });
    s.start_masa().expect("masa serve");
    s.start_registrar().expect("registrar serve");
    let domain_ca = s.registrar_dir.join("domain-ca.crt.pem");
    let work = tmp.path().join("crl");
    std::fs::create_dir_all(&work).expect("mkdir");

    let one = enrolled(&s, "CRL-0001");
    let two = enrolled(&s, "CRL-0002");
    // RFC 5280 §4.2.1.13: each LDevID names where its CRL is.
    for cert in [&one, &two] {
        let out = openssl(&[
            "x509",
            "-noout",
            "-ext",
            "crlDistributionPoints",
            "-in",
            p(cert),
        ]);
        assert!(text(&out).contains(&format!("URI:{url}")), "{}", text(&out));
    }
    let listed = certs(&s, &["list"]);
    let (serial_one, serial_two) = (serial_of(&one), serial_of(&two));
    for serial in [&serial_one, &serial_two] {
        let row = listed
            .lines()
            .find(|l| l.starts_with(serial.as_str()))
            .unwrap_or_else(|| panic!("{serial} in {listed}"));
        assert!(!row.contains("revoked"), "{row}");
    }

    // Nothing revoked yet: the CRL verifies under the domain CA and lists nothing; openssl,
    // fetching it from the distribution point, accepts both LDevIDs.
    let crl = work.join("before.crl");
    assert_eq!(fetch(&url, &crl), 200);
    let (verified, t) = crl_verified(&crl, "DER", &domain_ca);
    assert!(verified, "{t}");
    assert!(t.contains("No Revoked Certificates"), "{t}");
    assert!(t.contains("X509v3 CRL Number"), "{t}");
    assert!(t.contains("X509v3 Authority Key Identifier"), "{t}");
    assert!(t.contains("Next Update"), "{t}");
    for cert in [&one, &two] {
        let out = verify_downloading_the_crl(&domain_ca, cert);
        assert!(
            out.status.success() && text(&out).contains(": OK"),
            "{}",
            text(&out)
        );
    }

    // Revoke the first: the next CRL lists it, with the operator's reason code.
    let said = certs(
        &s,
        &["revoke", &serial_one, "--reason", "keyCompromise: lost"],
    );
    assert_eq!(said.trim(), format!("LDevID {serial_one} revoked"));
    let crl = work.join("after.crl");
    assert_eq!(fetch(&url, &crl), 200);
    let (verified, t) = crl_verified(&crl, "DER", &domain_ca);
    assert!(verified, "{t}");
    assert!(t.contains(&format!("Serial Number: {serial_one}")), "{t}");
    assert!(!t.contains(&format!("Serial Number: {serial_two}")), "{t}");
    assert!(t.contains("Key Compromise"), "{t}");
    let out = verify_downloading_the_crl(&domain_ca, &one);
    assert!(!out.status.success(), "a revoked LDevID: {}", text(&out));
    assert!(text(&out).contains("certificate revoked"), "{}", text(&out));
    let out = verify_downloading_the_crl(&domain_ca, &two);
    assert!(out.status.success(), "{}", text(&out));
    let row = certs(&s, &["list", "--pledge", "CRL-0001"]);
    assert!(row.contains("revoked: keyCompromise: lost"), "{row}");

    // The same CRL beside /cacerts on the HTTPS listener, and from `registrar certs crl`.
    let https = work.join("https.crl");
    let out = output(Command::new("curl").args([
        "-sS",
        "-k",
        "-o",
        p(&https),
        "-w",
        "%{http_code} %{content_type}",
        &format!("{}/.well-known/est/crl", s.registrar_https_url()),
    ]));
    assert_eq!(text(&out).trim(), "200 application/pkix-crl");
    let pem = work.join("certs.crl.pem");
    certs(&s, &["crl", "--out", p(&pem)]);
    for (file, form) in [(&https, "DER"), (&pem, "PEM")] {
        let (verified, t) = crl_verified(file, form, &domain_ca);
        assert!(verified, "{t}");
        assert!(t.contains(&format!("Serial Number: {serial_one}")), "{t}");
    }

    // Under another CA the signature does not verify; other paths are not the CRL.
    let vendor_ca = s.masa_dir.join("vendor-ca.crt.pem");
    let (verified, t) = crl_verified(&crl, "DER", &vendor_ca);
    assert!(!verified, "{t}");
    let other = work.join("other");
    assert_eq!(fetch(&format!("http://127.0.0.1:{port}/crl"), &other), 404);

    // The registrar itself refuses the revoked LDevID at the TLS handshake.
    let out = output(
        Command::new(&s.bin.pledge)
            .args([
                "est",
                "cacerts",
                "--server",
                &s.registrar_url(),
                "--trust-anchor",
            ])
            .arg(&domain_ca)
            .arg("--cert")
            .arg(&one)
            .arg("--key")
            .arg(one.with_file_name("ldevid.key.pem")),
    );
    assert!(!out.status.success(), "{}", text(&out));
}
