//! `pledge inspect` on the published examples: decode, verify with a trust anchor, and refuse
//! tampered artifacts with a one-line reason and a non-zero exit code.

use brski_common::test_vectors::{bytes, dir};
use std::path::Path;
use std::process::{Command, Output};

fn inspect(file: &Path, anchor: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pledge"));
    cmd.arg("inspect").arg(file).arg("--no-time-check");
    if let Some(a) = anchor {
        cmd.arg("--trust-anchor").arg(dir().join(a));
    }
    cmd.output().expect("run pledge")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// A one-line reason on stderr and a failure exit code.
fn assert_refused(out: &Output, reason: &str) {
    assert!(!out.status.success(), "must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(reason), "reason {reason:?} in {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

#[test]
fn rfc8995_c_2_3_voucher_verifies_with_the_manufacturer_ca() {
    let out = inspect(
        &dir().join("rfc8995/C.2.3-voucher.cms.b64"),
        Some("rfc8995/C.1.1-manufacturer-ca.crt.pem"),
    );
    let v = json(&out);
    assert_eq!(v["artifact"], "voucher");
    let voucher = &v["content"]["ietf-voucher:voucher"];
    assert_eq!(voucher["serial-number"], "00-D0-E5-F2-00-02");
    assert_eq!(voucher["assertion"], "logged");
    assert_eq!(voucher["nonce"], "-_XE9zK9q8Ll1qylMtLKeg");
    assert_eq!(v["signature"]["verdict"], "verified");
    let chain = v["signature"]["signer_chain"].as_array().expect("chain");
    assert_eq!(chain[0]["subject"], "CN=highway-test.example.com MASA");
    assert_eq!(chain[1]["subject"], "CN=highway-test.example.com CA");
}

#[test]
fn rfc8995_c_2_3_voucher_with_a_flipped_payload_byte_is_refused() {
    let der = bytes("rfc8995/C.2.3-voucher.cms.b64");
    let at = der
        .windows(8)
        .position(|w| w == b"\"logged\"")
        .expect("assertion in eContent");
    let mut tampered = der.clone();
    tampered[at + 1] ^= 0x01; // "logged" -> "mogged"
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("tampered.der");
    std::fs::write(&file, &tampered).expect("write");
    assert_refused(
        &inspect(&file, Some("rfc8995/C.1.1-manufacturer-ca.crt.pem")),
        "content digest does not match",
    );
    // Without a trust anchor it still decodes, and says the signature was not checked.
    let v = json(&inspect(&file, None));
    assert_eq!(
        v["signature"]["verdict"],
        "not checked (no trust anchor given)"
    );
}

#[test]
fn voucher_from_another_manufacturer_is_refused() {
    assert_refused(
        &inspect(
            &dir().join("rfc8995/C.2.3-voucher.cms.b64"),
            Some("rfc8995/C.1.3-owner-ca.crt.pem"),
        ),
        "signer is not trusted",
    );
}

#[test]
fn cbrski_c_5_and_jws_8_3_vouchers_verify() {
    let cose = json(&inspect(
        &dir().join("cbrski/C.5-voucher.cose.hex"),
        Some("cbrski/C-masa_ca.crt.pem"),
    ));
    assert_eq!(cose["envelope"]["format"], "cose");
    assert_eq!(
        cose["content"]["ietf-voucher:voucher"]["serial-number"],
        "JADA123456789"
    );
    assert_eq!(cose["signature"]["verdict"], "verified");
    // The JWS key-and-chain file: the private key is skipped, the certificates are anchors.
    let jws = json(&inspect(
        &dir().join("jws-voucher/8.3-voucher.json"),
        Some("jws-voucher/8.3-voucher.signer-key-and-chain.pem"),
    ));
    assert_eq!(jws["envelope"]["format"], "jws");
    assert_eq!(
        jws["content"]["ietf-voucher:voucher"]["assertion"],
        "logged"
    );
    assert_eq!(jws["signature"]["verdict"], "verified");
}

#[test]
fn unknown_input_is_refused_with_a_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("junk.txt");
    std::fs::write(&file, b"# header\nthis is not an artifact\n").expect("write");
    assert_refused(&inspect(&file, None), "not an artifact this tool knows");
    assert_refused(&inspect(&tmp.path().join("missing"), None), "cannot read");
    // A trust anchor file with no certificate.
    let out = Command::new(env!("CARGO_BIN_EXE_pledge"))
        .arg("inspect")
        .arg(dir().join("rfc8995/C.2.3-voucher.cms.b64"))
        .arg("--trust-anchor")
        .arg(&file)
        .output()
        .expect("run");
    assert_refused(&out, "holds no certificate");
}
