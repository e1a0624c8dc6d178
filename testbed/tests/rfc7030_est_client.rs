//! `pledge est` (RFC 7030 without BRSKI) against the real registrar: a host that already holds
//! a certificate of the domain and trusts the domain CA fetches /cacerts and /csrattrs and
//! renews its certificate; the results are checked with openssl. /simpleenroll outside the
//! BRSKI flow is refused by this registrar's policy, and the client reports each refusal.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::*;
use testbed::loopback::{Suite, SuiteOptions, run};

/// `pledge est OP --server ... --trust-anchor ANCHOR --cert CERT --key KEY EXTRA...`.
fn est(s: &Suite, op: &str, anchor: &Path, cert: &Path, key: &Path, extra: &[&str]) -> Output {
    output(
        Command::new(&s.bin.pledge)
            .args(["est", op, "--server", &s.registrar_url(), "--trust-anchor"])
            .arg(anchor)
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .args(extra),
    )
}

fn public_key(args: &[&str], path: &Path) -> String {
    let out = run(Command::new("openssl").args(args).arg(path)).expect("openssl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn text_of(cert: &Path) -> String {
    let out = run(Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
            "-in",
        ])
        .arg(cert))
    .expect("openssl x509");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pledge_est_fetches_cacerts_and_csrattrs_and_reenrolls_with_an_ldevid() {
    let (tmp, s) = started(&SuiteOptions::default());
    let config = s.mint("EST-0001").expect("mint");
    let dir = config.parent().expect("dir").to_path_buf();
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    let domain_ca = openssl_verifies_ldevid(&s, &dir);
    let (cert, key) = (dir.join("ldevid.crt.pem"), dir.join("ldevid.key.pem"));
    let work = tmp.path().join("est");
    std::fs::create_dir_all(&work).expect("mkdir");

    // /cacerts: the domain CA.
    let cacerts = work.join("cacerts.pem");
    let out = est(
        &s,
        "cacerts",
        &domain_ca,
        &cert,
        &key,
        &["--out", path(&cacerts)],
    );
    assert!(out.status.success(), "cacerts: {}", stderr(&out));
    assert_eq!(support::cert(&cacerts), support::cert(&domain_ca));

    // /csrattrs: answered (the registrar's list, possibly empty).
    let out = est(&s, "csrattrs", &domain_ca, &cert, &key, &[]);
    assert!(out.status.success(), "csrattrs: {}", stderr(&out));

    // /simplereenroll: a new key, the same subject and subjectAltName, issued by the domain CA.
    let (new_cert, new_key) = (work.join("new.crt.pem"), work.join("new.key.pem"));
    let out = est(
        &s,
        "reenroll",
        &domain_ca,
        &cert,
        &key,
        &["--out-cert", path(&new_cert), "--out-key", path(&new_key)],
    );
    assert!(out.status.success(), "reenroll: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("simplereenroll: certificate for"));
    let verified = run(Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&domain_ca)
        .arg(&new_cert))
    .expect("openssl verify");
    assert!(String::from_utf8_lossy(&verified.stdout).contains(": OK"));
    assert_eq!(
        text_of(&new_cert),
        text_of(&cert),
        "subject and subjectAltName kept"
    );
    let new_pub = public_key(&["x509", "-noout", "-pubkey", "-in"], &new_cert);
    assert_eq!(new_pub, public_key(&["pkey", "-pubout", "-in"], &new_key));
    assert_ne!(
        new_pub,
        public_key(&["x509", "-noout", "-pubkey", "-in"], &cert)
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&new_key).expect("key").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the new key is private");

    // /simpleenroll is for IDevIDs at this registrar (RFC 8995 §5.9.3): refused with the LDevID.
    let (host_cert, host_key) = (work.join("host.crt.pem"), work.join("host.key.pem"));
    let host = |c: &Path, k: &Path| {
        est(
            &s,
            "enroll",
            &domain_ca,
            c,
            k,
            &[
                "--subject",
                "CN=host.example.net,O=Example",
                "--out-cert",
                path(&host_cert),
                "--out-key",
                path(&host_key),
            ],
        )
    };
    let out = host(&new_cert, &new_key);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("simpleenroll: registrar answered 403"),
        "{}",
        stderr(&out)
    );
    assert!(!host_cert.exists() && !host_key.exists());
    // With the IDevID: a subject other than the IDevID's is refused (400), and the IDevID's
    // own is refused too, its voucher having been spent on the LDevID (403, RFC 8995 §5.9.3).
    let idevid = (dir.join("idevid.crt.pem"), dir.join("idevid.key.pem"));
    let out = host(&idevid.0, &idevid.1);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("registrar answered 400: CSR subject differs"),
        "{}",
        stderr(&out)
    );
    let out = est(
        &s,
        "enroll",
        &domain_ca,
        &idevid.0,
        &idevid.1,
        &["--out-cert", path(&host_cert), "--out-key", path(&host_key)],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("registrar answered 403: LDevID")
            && stderr(&out).contains("was issued on this voucher already"),
        "{}",
        stderr(&out)
    );
    assert!(!host_cert.exists() && !host_key.exists());

    // The renewed certificate authenticates the next request.
    let again = work.join("cacerts-again.pem");
    let out = est(
        &s,
        "cacerts",
        &domain_ca,
        &new_cert,
        &new_key,
        &["--out", path(&again)],
    );
    assert!(
        out.status.success(),
        "cacerts with the new certificate: {}",
        stderr(&out)
    );
}

#[test]
fn pledge_est_refuses_a_server_outside_its_trust_anchors() {
    let (tmp, s) = started(&SuiteOptions::default());
    let config = s.mint("EST-0002").expect("mint");
    let dir = config.parent().expect("dir").to_path_buf();
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    let (cert, key) = (dir.join("ldevid.crt.pem"), dir.join("ldevid.key.pem"));
    // The manufacturer CA does not issue the registrar's certificate (RFC 7030 §3.6.1).
    let vendor_ca = s.masa_dir.join("vendor-ca.crt.pem");
    let out_file: PathBuf = tmp.path().join("cacerts.pem");
    let out = est(
        &s,
        "cacerts",
        &vendor_ca,
        &cert,
        &key,
        &["--out", path(&out_file)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid peer certificate: UnknownIssuer"),
        "{}",
        stderr(&out)
    );
    assert!(!out_file.exists());
    // A key that is not the certificate's is refused before any connection.
    let other = s.mint("EST-0003").expect("mint");
    let other_key = other.parent().expect("dir").join("idevid.key.pem");
    let domain_ca = s.registrar_dir.join("domain-ca.crt.pem");
    let out = est(&s, "csrattrs", &domain_ca, &cert, &other_key, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not belong to"),
        "{}",
        stderr(&out)
    );
}

/// `pledge est OP --server ... --trust-anchor ANCHOR EXTRA...`: no client certificate.
fn anonymous(s: &Suite, op: &str, anchor: &Path, extra: &[&str]) -> Output {
    output(
        Command::new(&s.bin.pledge)
            .args(["est", op, "--server", &s.registrar_url(), "--trust-anchor"])
            .arg(anchor)
            .args(extra),
    )
}

/// RFC 7030 §4.1.1: /cacerts without client authentication; the server is still held to the
/// trust anchors, and what needs a client certificate is refused by the server or, for a
/// renewal, by the client itself.
#[test]
fn pledge_est_fetches_cacerts_without_a_client_certificate() {
    let (tmp, s) = started(&SuiteOptions::default());
    let domain_ca = s.registrar_dir.join("domain-ca.crt.pem");
    let cacerts = tmp.path().join("cacerts.pem");
    let out = anonymous(&s, "cacerts", &domain_ca, &["--out", path(&cacerts)]);
    assert!(out.status.success(), "cacerts: {}", stderr(&out));
    assert_eq!(support::cert(&cacerts), support::cert(&domain_ca));

    let vendor_ca = s.masa_dir.join("vendor-ca.crt.pem");
    let out = anonymous(&s, "cacerts", &vendor_ca, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid peer certificate: UnknownIssuer"),
        "{}",
        stderr(&out)
    );

    let out = anonymous(&s, "csrattrs", &domain_ca, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("registrar answered 401"),
        "{}",
        stderr(&out)
    );

    let new_cert = tmp.path().join("new.crt.pem");
    let out = anonymous(
        &s,
        "reenroll",
        &domain_ca,
        &[
            "--out-cert",
            path(&new_cert),
            "--out-key",
            path(&tmp.path().join("k.pem")),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("reenroll needs --cert and --key (or --tpm)"),
        "{}",
        stderr(&out)
    );
    assert!(!new_cert.exists());
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}
