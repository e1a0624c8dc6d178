//! An independent check of the `masa` binary's COSE vouchers: pycose (a Python COSE
//! implementation) verifies the signature with the MASA signer certificate's key and decodes
//! the payload (cBRSKI §9.2; RFC 9052 §4.4), through `scripts/pycose-verify.py`.
//!
//! The Python environment is `.venv` at the repository root (or `$BRSKI_PYVENV`), made by
//! `scripts/pyvenv.sh`, which `scripts/test.sh` runs first. Without it these tests fail.

mod support;

use brski_common::brski::paths;
use brski_common::envelope::{Format, cose};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{Domain, Masa};

const COSE: &str = "application/voucher+cose";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's Python; a clear failure when the venv was not made.
fn python() -> PathBuf {
    let venv = std::env::var_os("BRSKI_PYVENV")
        .filter(|v| !v.is_empty())
        .map_or_else(|| repo().join(".venv"), PathBuf::from);
    let python = venv.join("bin").join("python");
    assert!(
        python.exists(),
        "no Python venv with pycose at {}: run scripts/pyvenv.sh (scripts/test.sh does)",
        venv.display()
    );
    python
}

/// Run pycose-verify.py on `voucher` with the key of the certificate in `cert_pem`: the exit
/// code and the printed JSON.
fn pycose_verify(dir: &Path, voucher: &[u8], cert_pem: &Path) -> (i32, serde_json::Value) {
    let file = dir.join("voucher.cose");
    std::fs::write(&file, voucher).expect("write voucher");
    let out = Command::new(python())
        .arg(repo().join("scripts/pycose-verify.py"))
        .arg(&file)
        .arg(cert_pem)
        .output()
        .expect("run pycose-verify.py");
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "pycose-verify.py failed ({code}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_slice(&out.stdout).expect("JSON from pycose-verify.py");
    (code, json)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A COSE voucher issued by the real `masa serve` for a COSE request.
async fn issued_voucher(masa: &Masa, serial: &str) -> (Domain, support::Requests, Vec<u8>) {
    let pledge = masa.mint(serial);
    let domain = Domain::new("Pycose");
    let req = pledge.requests(&domain, Format::Cose, &masa.vendor_ca);
    let (status, ct, body) = masa
        .post(
            paths::REQUEST_VOUCHER,
            Some(COSE),
            Some(COSE),
            req.rvr.clone(),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ct, COSE);
    (domain, req, body)
}

#[tokio::test]
async fn cbrski_9_2_masa_voucher_verifies_with_pycose() {
    let masa = Masa::start("log-only");
    let (domain, req, voucher) = issued_voucher(&masa, "SN-PYCOSE").await;
    let signer_pem = masa.dir.join("masa-signer.crt.pem");

    for (what, bytes) in [
        ("as issued", voucher.clone()),
        (
            "as relayed to the pledge",
            cose::strip_unprotected_certs(&voucher).expect("strip"),
        ),
    ] {
        let (code, json) = pycose_verify(masa.tmp.path(), &bytes, &signer_pem);
        assert_eq!(code, 0, "{what}: {json}");
        assert_eq!(json["verified"], true, "{what}");
        assert_eq!(json["alg"], "ES256", "{what}");
        // Protected: alg (1) and x5chain (33); unprotected: x5bag (32) until stripped.
        assert_eq!(json["protected"], serde_json::json!([1, 33]), "{what}");
        // The payload, decoded by cbor2: SID 2451, serial-number (delta 11), nonce (7),
        // pinned-domain-cert (8), assertion (1) = proximity (2).
        let v = &json["payload"]["2451"];
        assert_eq!(v["11"], "SN-PYCOSE", "{what}: {json}");
        let nonce = req.pvr.nonce.to_bytes().expect("binary nonce");
        assert_eq!(v["7"], hex(&nonce), "{what}");
        assert_eq!(v["8"], hex(&domain.ca.der()), "{what}");
        assert_eq!(v["1"], 2, "{what}");
    }
    let (_, json) = pycose_verify(masa.tmp.path(), &voucher, &signer_pem);
    assert_eq!(json["unprotected"], serde_json::json!([32]));
}

#[tokio::test]
async fn cbrski_9_2_tampered_masa_voucher_fails_pycose() {
    let masa = Masa::start("log-only");
    let (_, _, voucher) = issued_voucher(&masa, "SN-TAMPER").await;
    let signer_pem = masa.dir.join("masa-signer.crt.pem");
    let payload = cose::parse(&voucher).expect("parse").payload;
    let at = voucher
        .windows(payload.len())
        .position(|w| w == payload)
        .expect("payload bytes in the envelope");
    let serial = payload
        .windows(b"SN-TAMPER".len())
        .position(|w| w == b"SN-TAMPER")
        .expect("serial in the payload");

    // A changed serial-number (the payload), and a changed signature.
    let mut other_serial = voucher.clone();
    other_serial[at + serial] = b'X';
    let mut other_signature = voucher.clone();
    let last = other_signature.len() - 1;
    other_signature[last] ^= 0x01;
    for (what, bytes) in [("payload", other_serial), ("signature", other_signature)] {
        let (code, json) = pycose_verify(masa.tmp.path(), &bytes, &signer_pem);
        assert_eq!(code, 1, "tampered {what}: {json}");
        assert_eq!(json["verified"], false, "tampered {what}");
    }

    // Another key (the vendor CA's) does not verify the untouched voucher either.
    let vendor_pem = masa.dir.join("vendor-ca.crt.pem");
    let (code, _) = pycose_verify(masa.tmp.path(), &voucher, &vendor_pem);
    assert_eq!(code, 1);
}
