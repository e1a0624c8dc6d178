//! `pledge check-config`: one test per problem planted in a factory-fresh `pledge.toml` (issue
//! 16). Each problem is reported on one line naming its key, and `pledge bootstrap` refuses to
//! start on it in the same words (exit 1, before any network traffic).

mod harness;
use harness::*;

/// A factory pledge whose registrar is nobody (no connection is ever made: the configuration
/// is refused first).
fn fresh(serial: &str) -> PledgeDir {
    pledge_dir(&world(), serial, "cms", Some("https://127.0.0.1:9"))
}

async fn check(p: &PledgeDir) -> std::process::Output {
    pledge(&["check-config", "--config", &p.config.to_string_lossy()]).await
}

/// check-config names `expected` (with its key) on a line of its own, and so does a bootstrap.
async fn planted(p: &PledgeDir, expected: &str) {
    let out = check(p).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines: Vec<String> = stderr(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("pledge: check-config: ").map(str::to_string))
        .collect();
    assert_eq!(lines.len(), 1, "one problem, one line: {lines:?}");
    assert!(lines[0].contains(expected), "{lines:?} lacks {expected:?}");
    let out = pledge(&["bootstrap", "--config", &p.config.to_string_lossy()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        reason(&out).contains(&lines[0]),
        "bootstrap says {:?}, check-config said {:?}",
        reason(&out),
        lines[0]
    );
    assert!(!p.exists("ldevid.crt.pem") && !p.exists("voucher.cms"));
}

fn edit(p: &PledgeDir, f: impl FnOnce(String) -> String) {
    std::fs::write(&p.config, f(p.config_text())).expect("write");
}

#[tokio::test]
async fn a_factory_config_is_ok() {
    let p = fresh("SN-CC-OK");
    let out = check(&p).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).trim_end().ends_with(": OK"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[tokio::test]
async fn an_unknown_key_is_named() {
    let p = fresh("SN-CC-KEY");
    edit(&p, |t| format!("registar = \"https://x:1\"\n{t}"));
    planted(&p, "unknown field `registar`").await;
}

#[tokio::test]
async fn a_missing_idevid_cert() {
    let p = fresh("SN-CC-CERT");
    std::fs::remove_file(p.path("idevid.crt.pem")).expect("rm");
    planted(&p, "idevid-cert: ").await;
}

#[tokio::test]
async fn an_idevid_cert_that_is_not_a_certificate() {
    let p = fresh("SN-CC-NOTCERT");
    std::fs::write(p.path("idevid.crt.pem"), "not PEM\n").expect("write");
    planted(&p, "idevid-cert: ").await;
}

#[tokio::test]
async fn an_idevid_key_of_another_certificate() {
    let p = fresh("SN-CC-KEYPAIR");
    let other = fresh("SN-CC-OTHER");
    std::fs::copy(other.path("idevid.key.pem"), p.path("idevid.key.pem")).expect("copy");
    planted(&p, "idevid-key: ").await;
    let out = check(&p).await;
    assert!(stderr(&out).contains("the key does not belong to the IDevID certificate"));
}

#[tokio::test]
async fn an_unreadable_idevid_key() {
    let p = fresh("SN-CC-NOKEY");
    std::fs::write(
        p.path("idevid.key.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    planted(&p, "idevid-key: ").await;
}

#[tokio::test]
async fn a_serial_number_that_is_not_the_idevids() {
    let p = fresh("SN-CC-SERIAL");
    edit(&p, |t| t.replace("SN-CC-SERIAL", "SN-SOMEONE-ELSE"));
    planted(
        &p,
        "serial-number: \"SN-SOMEONE-ELSE\" differs from the IDevID's serialNumber \"SN-CC-SERIAL\"",
    )
    .await;
}

#[tokio::test]
async fn a_manufacturer_anchor_without_a_certificate() {
    let p = fresh("SN-CC-ANCHOR");
    std::fs::write(p.path("manufacturer-ca.crt.pem"), "").expect("write");
    planted(&p, "manufacturer-anchor: ").await;
}

#[tokio::test]
async fn a_state_dir_that_does_not_exist() {
    let p = fresh("SN-CC-STATE");
    edit(&p, |t| format!("state-dir = \"no/such/dir\"\n{t}"));
    planted(&p, "state-dir: ").await;
    let out = check(&p).await;
    assert!(
        stderr(&out).contains("is not a directory"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_registrar_url_that_does_not_parse() {
    let p = fresh("SN-CC-URL");
    edit(&p, |t| {
        t.replace("https://127.0.0.1:9", "ftp://127.0.0.1:9")
    });
    planted(&p, "registrar: ").await;
}

#[tokio::test]
async fn a_transport_that_does_not_exist() {
    let p = fresh("SN-CC-TRANSPORT");
    edit(&p, |t| format!("transport = \"udp\"\n{t}"));
    planted(&p, "transport: \"udp\" is not one of https, coaps").await;
}

#[tokio::test]
async fn a_voucher_format_that_does_not_exist() {
    let p = fresh("SN-CC-FORMAT");
    edit(&p, |t| {
        t.replace("voucher-format = \"cms\"", "voucher-format = \"xml\"")
    });
    planted(&p, "voucher-format: \"xml\" is not one of cms, jws, cose").await;
}

#[cfg(feature = "tpm")]
#[tokio::test]
async fn tpm_handles_that_collide() {
    let p = fresh("SN-CC-TPM");
    edit(&p, |t| {
        format!(
            "{}\n[tpm]\ntcti = \"device:/dev/tpmrm0\"\nidevid-handle = 2164391937\n",
            t.replace("idevid-key = \"idevid.key.pem\"\n", "")
        )
    });
    planted(&p, "tpm: idevid-handle 0x81020001 and ldevid-handles").await;
}

#[tokio::test]
async fn several_problems_are_each_on_a_line() {
    let p = fresh("SN-CC-MANY");
    std::fs::write(p.path("manufacturer-ca.crt.pem"), "").expect("write");
    edit(&p, |t| {
        format!(
            "transport = \"udp\"\n{}",
            t.replace("SN-CC-MANY", "SN-CC-NOT-MANY")
        )
    });
    let out = check(&p).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for key in ["serial-number: ", "manufacturer-anchor: ", "transport: "] {
        assert_eq!(
            err.lines()
                .filter(|l| l.starts_with(&format!("pledge: check-config: {key}")))
                .count(),
            1,
            "{key}: {err}"
        );
    }
    assert!(err.contains("3 problem(s) found"), "{err}");
}
