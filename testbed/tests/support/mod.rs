//! Helpers shared by the cross-daemon tests.
#![allow(dead_code)]

use brski_common::input::pem_block;
use der::Decode;
use std::path::Path;
use std::process::{Command, Output};
use testbed::loopback::{Binaries, Suite, SuiteOptions, run};
use x509_cert::Certificate;

/// A suite in a fresh temporary directory (kept alive by the returned guard).
pub fn suite(opts: &SuiteOptions) -> (tempfile::TempDir, Suite) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = Binaries::locate().expect("binaries built by cargo test --workspace");
    let suite = Suite::create(bin, tmp.path(), opts).expect("masa init / registrar init");
    (tmp, suite)
}

/// A started suite.
pub fn started(opts: &SuiteOptions) -> (tempfile::TempDir, Suite) {
    let (tmp, mut s) = suite(opts);
    s.start_masa().expect("masa serve");
    s.start_registrar().expect("registrar serve");
    (tmp, s)
}

pub fn cert(path: &Path) -> Certificate {
    let pem = std::fs::read_to_string(path).expect("read cert");
    Certificate::from_der(&pem_block(&pem, &["CERTIFICATE"]).expect("pem")).expect("cert")
}

pub fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("run command")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `registrar pledges list --json`.
pub fn pledges(s: &Suite) -> serde_json::Value {
    let out = run(Command::new(&s.bin.registrar)
        .args(["pledges", "list", "--json", "--config"])
        .arg(s.registrar_config()))
    .expect("pledges list");
    serde_json::from_slice(&out.stdout).expect("json")
}

/// The row of `serial` in `pledges list --json`.
pub fn pledge_row(s: &Suite, serial: &str) -> Option<serde_json::Value> {
    pledges(s)
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["serial"] == serial).cloned())
}

/// curl to the registrar with the pledge's IDevID as client certificate; returns (status, body).
pub fn curl(
    s: &Suite,
    pledge_dir: &Path,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<&Path>,
) -> (u16, Vec<u8>) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-k", "-o", "-", "-w", "\n%{http_code}", "-X", method])
        .arg("--cert")
        .arg(pledge_dir.join("idevid.crt.pem"))
        .arg("--key")
        .arg(pledge_dir.join("idevid.key.pem"));
    if let Some(ct) = content_type {
        cmd.arg("-H").arg(format!("Content-Type: {ct}"));
    }
    if let Some(b) = body {
        cmd.arg("--data-binary").arg(format!("@{}", b.display()));
    }
    cmd.arg(format!("{}{path}", s.registrar_https_url()));
    let out = output(&mut cmd);
    assert!(out.status.success(), "curl failed: {}", stderr(&out));
    let text = out.stdout;
    let split = text.iter().rposition(|&b| b == b'\n').expect("status line");
    let status: u16 = String::from_utf8_lossy(&text[split + 1..])
        .trim()
        .parse()
        .expect("status");
    (status, text[..split].to_vec())
}

/// The MASA's state is readable and consistent: `PRAGMA integrity_check` of its SQLite file,
/// or, on PostgreSQL, every audit entry referring to a stored voucher.
pub fn masa_db_ok(s: &Suite) -> bool {
    match &s.pg {
        None => db_ok(&s.masa_dir.join("masa.db")),
        Some(pg) => {
            let orphans = pg
                .psql(
                    "masa",
                    "SELECT COUNT(*) FROM audit_log a LEFT JOIN vouchers v \
                     ON v.id = a.voucher_id WHERE v.id IS NULL",
                )
                .expect("psql");
            let logged = pg
                .psql("masa", "SELECT COUNT(*) FROM audit_log")
                .expect("psql");
            orphans == "0" && logged != "0"
        }
    }
}

/// The registrar's state is readable and consistent: `PRAGMA integrity_check` of its SQLite
/// file, or, on PostgreSQL, every issued certificate tied to a stored voucher.
pub fn registrar_db_ok(s: &Suite) -> bool {
    match &s.pg {
        None => db_ok(&s.registrar_dir.join("registrar.db")),
        Some(pg) => {
            let orphans = pg
                .psql(
                    "registrar",
                    "SELECT COUNT(*) FROM certificates c LEFT JOIN vouchers v \
                     ON v.id = c.voucher_id WHERE c.voucher_id IS NOT NULL AND v.id IS NULL",
                )
                .expect("psql");
            let pledges = pg
                .psql("registrar", "SELECT COUNT(*) FROM pledges")
                .expect("psql");
            orphans == "0" && pledges != "0"
        }
    }
}

/// `PRAGMA integrity_check` of an SQLite database file.
pub fn db_ok(path: &Path) -> bool {
    brski_service::store::Db::open(path, "SELECT 1;")
        .expect("open db")
        .integrity_ok()
        .expect("integrity_check")
}

/// RFC 8995 §5.3 (RFC 9148 §4.7 over CoAP): `denied` is refused with 404 (4.04); `pending`
/// waits on 202 (5.03 + Max-Age) until `registrar pledges allow`, then enrolls.
pub fn denied_gets_404_and_pending_waits_then_enrolls(s: &Suite, denied: &str, pending: &str) {
    let registrar = |action: &str, serial: &str| {
        run(Command::new(&s.bin.registrar)
            .args(["pledges", action, serial, "--config"])
            .arg(s.registrar_config()))
        .expect("registrar pledges");
    };
    let denied_config = s.mint(denied).expect("mint");
    registrar("deny", denied);
    let out = output(&mut s.pledge("bootstrap", &denied_config).expect("cmd"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));

    let pending_config = s.mint(pending).expect("mint");
    let mut child = s
        .pledge("bootstrap", &pending_config)
        .expect("cmd")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = std::time::Instant::now();
    while !pledge_row(s, pending).is_some_and(|r| r["state"] == "pending") {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "pledge never became pending"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the pledge waits while pending"
    );
    registrar("allow", pending);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pledge_row(s, pending).expect("row")["state"], "enrolled");
}

/// `openssl verify` accepts the pledge's LDevID in `pledge_dir` against the suite's domain CA;
/// the domain CA file.
pub fn openssl_verifies_ldevid(s: &Suite, pledge_dir: &Path) -> std::path::PathBuf {
    let domain_ca = s.registrar_dir.join("domain-ca.crt.pem");
    let verified = run(Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&domain_ca)
        .arg(pledge_dir.join("ldevid.crt.pem")))
    .expect("openssl verify");
    assert!(String::from_utf8_lossy(&verified.stdout).contains(": OK"));
    domain_ca
}

/// Edit the registrar's configuration before it starts.
pub fn edit_registrar_config(s: &Suite, edit: impl FnOnce(String) -> String) {
    let path = s.registrar_config();
    let text = std::fs::read_to_string(&path).expect("registrar.toml");
    std::fs::write(&path, edit(text)).expect("write registrar.toml");
}

/// `testbed bench ARGS` (the binary built by cargo test): its reports, one JSON object per
/// line, after it exited successfully.
pub fn bench_reports(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run testbed bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "testbed bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// A scrape of the metrics listener of the daemon logging to `log` (the address it logged as
/// `metrics_addr=`), by curl; checked by `promtool check metrics` (Debian `prometheus`).
pub fn scrape_metrics(log: &Path) -> String {
    let text = std::fs::read_to_string(log).expect("daemon log");
    let addr = text
        .split("metrics_addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|a| a.trim_matches('"').to_string())
        .expect("metrics_addr= in the log");
    let out =
        output(Command::new("curl").args(["-sS", "--fail", &format!("http://{addr}/metrics")]));
    assert!(out.status.success(), "curl /metrics: {}", stderr(&out));
    let scrape = String::from_utf8(out.stdout).expect("utf-8 scrape");
    brski_service::metrics::promtool_check(&scrape).unwrap_or_else(|e| panic!("{e}"));
    scrape
}

/// The value of one series in a scrape.
#[allow(unused_imports)]
pub use brski_service::metrics::sample;
