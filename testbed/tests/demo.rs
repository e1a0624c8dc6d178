//! `testbed demo`, the README's first command, on loopback with the real daemons (binaries built
//! by `cargo test --workspace`): every pledge enrolls, over HTTPS and over CoAPS, and with its
//! keys in a software TPM over both.

use std::process::Command;

fn demo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["demo", "--pledges", "2"])
        .args(args)
        .output()
        .expect("run testbed demo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "testbed demo {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 pledges enrolled"), "{stdout}");
    for serial in ["DEMO-0001", "DEMO-0002"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(serial))
            .unwrap_or_else(|| panic!("no line for {serial}: {stdout}"));
        assert!(
            line.contains("voucher: proximity") && line.contains("LDevID: subject"),
            "{line}"
        );
    }
    stdout
}

#[test]
fn demo_enrolls_over_https_and_coaps() {
    for transport in ["https", "coaps"] {
        let out = demo(&["--transport", transport]);
        assert!(
            out.contains(&format!("registrar on {transport}://")),
            "{out}"
        );
        assert!(!out.contains("keys: TPM"), "{out}");
    }
}

#[cfg(feature = "tpm")]
#[test]
fn demo_with_tpm_keys_enrolls_over_https_and_coaps() {
    for transport in ["https", "coaps"] {
        let out = demo(&["--tpm", "--transport", transport]);
        let in_tpm = out
            .lines()
            .filter(|l| l.contains("keys: TPM (LDevID at 0x81020001)"))
            .count();
        assert_eq!(in_tpm, 2, "{out}");
    }
}

/// `testbed demo --tpm --attest` (SPEC §9): every pledge's evidence is appraised and accepted,
/// and the registrar's `pledges list`, which the demo prints, shows it.
#[cfg(feature = "tpm")]
#[test]
fn demo_with_attestation_shows_each_accepted_appraisal() {
    let out = demo(&["--tpm", "--attest"]);
    assert!(out.contains("ATTESTATION"), "{out}");
    let accepted = out
        .lines()
        .filter(|l| l.starts_with("DEMO-") && l.ends_with("accepted (testbed-fw-1.0)"))
        .count();
    assert_eq!(accepted, 2, "{out}");
}

/// `--attest` needs `--tpm`.
#[test]
fn demo_attest_without_tpm_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["demo", "--pledges", "1", "--attest"])
        .output()
        .expect("run testbed demo --attest");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tpm"), "{stderr}");
}
