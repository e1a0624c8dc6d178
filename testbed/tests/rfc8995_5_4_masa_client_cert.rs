//! RFC 8995 §5.4, §5.5.4: our registrar authenticates to a MASA that requires a TLS client
//! certificate (our own MASA with `require-client-cert = true`), with the real binaries; and a
//! client certificate other than the signer of the registrar voucher-request is refused.

mod support;

use std::process::Command;
use support::*;
use testbed::loopback::{SuiteOptions, run};

fn require_client_cert(s: &testbed::loopback::Suite) {
    let path = s.masa_config();
    let text = std::fs::read_to_string(&path).expect("masa.toml");
    let text = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("require-client-cert"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, format!("{text}\nrequire-client-cert = true\n")).expect("write");
}

fn masa_url(s: &testbed::loopback::Suite) -> String {
    let text = std::fs::read_to_string(s.masa_config()).expect("masa.toml");
    let value: toml::Value = toml::from_str(&text).expect("toml");
    value["masa-url"].as_str().expect("masa-url").to_string()
}

#[test]
fn rfc8995_5_4_registrar_is_accepted_by_a_masa_requiring_a_client_certificate() {
    let (_tmp, mut s) = suite(&SuiteOptions::default());
    require_client_cert(&s);
    s.start_masa().expect("masa serve");
    s.start_registrar().expect("registrar serve");
    let config = s.mint("MCC-0001").expect("mint");
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    let row = pledge_row(&s, "MCC-0001").expect("row");
    assert_eq!(row["state"], "enrolled");
}

#[test]
fn rfc8995_5_5_4_a_client_certificate_other_than_the_rvr_signer_is_refused_401() {
    let (tmp, mut s) = suite(&SuiteOptions::default());
    require_client_cert(&s);
    // The registrar presents another (self-signed, clientAuth) certificate to this MASA.
    let other_key = tmp.path().join("other.key.pem");
    let other_cert = tmp.path().join("other.crt.pem");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=not the registrar",
            "-days",
            "2",
            "-addext",
            "extendedKeyUsage=clientAuth",
            "-keyout",
        ])
        .arg(&other_key)
        .arg("-out")
        .arg(&other_cert))
    .expect("openssl req");
    let registrar_toml = s.registrar_config();
    let text = std::fs::read_to_string(&registrar_toml).expect("registrar.toml");
    std::fs::write(
        &registrar_toml,
        format!(
            "{text}\n[[masa]]\nurl = {:?}\nclient-cert = {:?}\nclient-key = {:?}\n",
            masa_url(&s),
            other_cert.display().to_string(),
            other_key.display().to_string()
        ),
    )
    .expect("write");
    s.start_masa().expect("masa serve");
    s.start_registrar().expect("registrar serve");
    let config = s.mint("MCC-0002").expect("mint");
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert!(!out.status.success(), "bootstrap must fail");
    // The MASA's 401 reaches the pledge as 401 (RFC 8995 §5.6).
    let err = stderr(&out);
    assert!(err.contains("401"), "pledge saw: {err}");
    let masa_log = std::fs::read_to_string(tmp.path().join("masa.log")).expect("masa log");
    assert!(masa_log.contains("401"), "masa log: {masa_log}");
}
