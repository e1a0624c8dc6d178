//! Constrained BRSKI end to end (cBRSKI, RFC 9148): the real `pledge` with `transport =
//! "coaps"` enrolls through the real `registrar` over CoAP and DTLS, with a COSE voucher from
//! the real `masa`; checked with openssl, the registrar's records and its log.

mod support;

use std::time::{Duration, Instant};
use support::*;
use testbed::loopback::SuiteOptions;

fn coaps() -> SuiteOptions {
    SuiteOptions {
        transport: "coaps".into(),
        ..SuiteOptions::default()
    }
}

fn registrar_log(s: &testbed::loopback::Suite) -> String {
    std::fs::read_to_string(s.dir.join("registrar.log")).expect("registrar log")
}

/// The registrar's outcome lines for `op` over CoAPS.
fn coaps_lines(log: &str, op: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(&format!(" {op} ")) && l.contains("transport=\"coaps\""))
        .map(str::to_string)
        .collect()
}

#[test]
fn cbrski_pledge_enrolls_over_coaps_with_a_cose_voucher() {
    let (_tmp, mut s) = started(&coaps());
    let config = s.mint("CB-0001").expect("mint");
    let toml = std::fs::read_to_string(&config).expect("pledge.toml");
    assert!(toml.contains("registrar = \"coaps://127.0.0.1:"), "{toml}");
    let dir = config.parent().expect("dir").to_path_buf();
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));

    // cBRSKI §6.2, §8: the voucher request and the voucher are COSE_Sign1 (CBOR tag 18).
    for file in ["voucher-request.vch", "voucher.vch"] {
        let bytes = std::fs::read(dir.join(file)).expect(file);
        assert_eq!(bytes.first(), Some(&0xd2), "{file} is a tagged COSE_Sign1");
    }
    // The LDevID verifies with OpenSSL against the domain CA.
    openssl_verifies_ldevid(&s, &dir);

    // One pledge record, with the transport and both reports (the second made with the
    // LDevID on a new DTLS session, RFC 8995 §5.9.4).
    let row = pledge_row(&s, "CB-0001").expect("row");
    assert_eq!(row["state"], "enrolled");
    assert_eq!(row["transport"], "coaps");
    assert_eq!(row["voucher_status"]["status"], true);
    assert_eq!(row["enrollstatus"]["status"], true);
    assert_eq!(row["enrollstatus"]["client_cert"], "ldevid");
    let log = registrar_log(&s);
    for op in [
        "requestvoucher",
        "voucher_status",
        "simpleenroll",
        "enrollstatus",
    ] {
        assert_eq!(coaps_lines(&log, op).len(), 1, "{op} over coaps: {log}");
    }
    // cBRSKI §6.7: the pledge does not ask /att when its CSR needs nothing from it.
    assert!(coaps_lines(&log, "csrattrs").is_empty(), "{log}");
    // cBRSKI §6.7.1: the voucher pins the domain's root CA, which anchors the new LDevID, so
    // the pledge never asks /crts.
    assert!(coaps_lines(&log, "cacerts").is_empty(), "{log}");
    let fingerprint = |pem: &std::path::Path| {
        let out = output(
            std::process::Command::new("openssl")
                .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
                .arg(pem),
        );
        assert!(out.status.success(), "openssl x509: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        fingerprint(&dir.join("domain-ca.crt.pem")),
        fingerprint(&s.registrar_dir.join("domain-ca.crt.pem")),
        "the pinned root is kept as the domain CA"
    );
    assert!(
        coaps_lines(&log, "requestvoucher")[0].contains("outcome=\"relayed\""),
        "{log}"
    );
    // The registrar's metrics count the bootstrap under transport coaps, none under https.
    let metrics = scrape_metrics(&s.dir.join("registrar.log"));
    for family in ["voucher_requests", "enrollments"] {
        let series = |transport: &str| {
            format!(
                "brski_registrar_{family}_total{{transport=\"{transport}\",outcome=\"issued\"}}"
            )
        };
        assert_eq!(sample(&metrics, &series("coaps")), Some(1.0), "{metrics}");
        assert_eq!(sample(&metrics, &series("https")), None, "{metrics}");
    }
    let stopped = s.stop().expect("stop");
    assert!(stopped.iter().all(|(_, st)| st.success()), "{stopped:?}");
}

#[test]
fn rfc9148_4_7_denied_pledge_gets_4_04_and_pending_pledge_5_03_then_enrolls() {
    let (_tmp, s) = started(&SuiteOptions {
        accept: "pending".into(),
        ..coaps()
    });
    denied_gets_404_and_pending_waits_then_enrolls(&s, "CB-DENY", "CB-PEND");
    // The same request was resent after Max-Age, and answered 5.03 then relayed.
    let lines = coaps_lines(&registrar_log(&s), "requestvoucher");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("serial=CB-PEND") && l.contains("outcome=\"pending\"")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("serial=CB-PEND") && l.contains("outcome=\"relayed\"")),
        "{lines:?}"
    );
}

#[test]
fn rfc9148_pledge_run_renews_over_coaps_with_sren() {
    let (_tmp, mut s) = support::suite(&coaps());
    edit_registrar_config(&s, |t| {
        t.replace("ldevid-validity-days = 365", "ldevid-validity-days = 1")
    });
    s.start_masa().expect("masa serve");
    s.start_registrar().expect("registrar serve");
    let config = s.mint("CB-RENEW").expect("mint");
    let dir = config.parent().expect("dir").to_path_buf();
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    let first = cert(&dir.join("ldevid.crt.pem"));
    let mut child = s
        .pledge("run", &config)
        .expect("cmd")
        .args(["--renew-at", "0.003"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn pledge run");
    let start = Instant::now();
    while cert(&dir.join("ldevid.crt.pem")) == first {
        if start.elapsed() > Duration::from_secs(45) {
            let _ = child.kill();
            panic!("pledge run did not renew: {}", registrar_log(&s));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = registrar_log(&s);
    let renewals = coaps_lines(&log, "simplereenroll");
    assert!(
        renewals.iter().any(|l| l.contains("outcome=\"renewed\"")),
        "{log}"
    );
}

#[test]
fn cjp_4_3_pledge_enrolls_through_the_stateful_constrained_join_proxy() {
    let (_tmp, s) = started(&coaps());
    let (mut proxy, url) = s.start_udp_proxy(&[]).expect("registrar proxy --udp");
    let config = s.mint("CB-CJP").expect("mint");
    let out = output(
        s.pledge("bootstrap", &config)
            .expect("cmd")
            .args(["--registrar", &url]),
    );
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    assert_eq!(pledge_row(&s, "CB-CJP").expect("row")["state"], "enrolled");

    // The pledge's sessions (the IDevID one, then the LDevID one for enrollstatus) leave from
    // one UDP port, so the proxy keeps one flow for it (CJP §4.3 allows 2 per address); the
    // registrar sees that flow's upstream port, never the pledge's own.
    let proxy_log = std::fs::read_to_string(&proxy.log).expect("proxy log");
    let upstreams: Vec<&str> = proxy_log
        .lines()
        .filter(|l| l.contains("outcome=\"flow\""))
        .filter_map(|l| l.split("upstream=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert_eq!(upstreams.len(), 1, "{proxy_log}");
    let log = registrar_log(&s);
    let voucher = coaps_lines(&log, "requestvoucher");
    assert!(
        voucher
            .iter()
            .any(|l| l.contains("serial=CB-CJP") && l.contains(&format!("peer={}", upstreams[0]))),
        "{voucher:?} {upstreams:?}"
    );
    let status = coaps_lines(&log, "enrollstatus");
    assert!(
        status
            .iter()
            .any(|l| l.contains(&format!("peer={}", upstreams[0]))),
        "{status:?} {upstreams:?}"
    );
    let stopped = proxy.stop(Duration::from_secs(10)).expect("stop");
    assert!(stopped.success(), "{stopped}");
}

#[test]
fn cjp_4_4_pledge_enrolls_through_the_stateless_constrained_join_proxy() {
    let (_tmp, s) = started(&coaps());
    let (mut proxy, url) = s
        .start_udp_proxy(&["--stateless"])
        .expect("registrar proxy --udp --stateless");
    let config = s.mint("CB-JPY").expect("mint");
    let out = output(
        s.pledge("bootstrap", &config)
            .expect("cmd")
            .args(["--registrar", &url]),
    );
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    let row = pledge_row(&s, "CB-JPY").expect("row");
    assert_eq!(row["state"], "enrolled");
    assert_eq!(row["enrollstatus"]["status"], true);

    // The proxy kept nothing per pledge: one JPY upstream socket, one line for the pledge;
    // the registrar saw that socket as the peer of both of the pledge's DTLS sessions.
    let proxy_log = std::fs::read_to_string(&proxy.log).expect("proxy log");
    let upstream = proxy_log
        .lines()
        .find(|l| l.contains("JPY relay (stateless)"))
        .and_then(|l| l.split("upstream=").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .expect("the JPY upstream socket")
        .to_string();
    assert_eq!(
        proxy_log.matches("outcome=\"jpy\"").count(),
        1,
        "{proxy_log}"
    );
    let log = registrar_log(&s);
    for op in ["requestvoucher", "enrollstatus"] {
        assert!(
            coaps_lines(&log, op)
                .iter()
                .any(|l| l.contains(&format!("peer={upstream}"))),
            "{op} from {upstream}: {log}"
        );
    }
    let stopped = proxy.stop(Duration::from_secs(10)).expect("stop");
    assert!(stopped.success(), "{stopped}");
}

/// cBRSKI §6.7: the pledge makes its CSR without asking `/att`. When the registrar wants
/// names (`[csr-attributes]`), it refuses that CSR with 4.00; the pledge then asks `/att` and
/// sends a CSR that carries them, on the same key.
#[test]
fn cbrski_6_7_att_only_after_the_registrar_refuses_a_csr_without_it() {
    let (_tmp, mut s) = support::suite(&coaps());
    edit_registrar_config(&s, |t| {
        t.replace(
            "# dns-names = [\"{serial}.pledges.example.net\"]",
            "dns-names = [\"{serial}.pledges.example.net\"]",
        )
    });
    s.start_masa().expect("masa serve");
    s.start_registrar().expect("registrar serve");
    let config = s.mint("CB-ATT").expect("mint");
    let dir = config.parent().expect("dir").to_path_buf();
    let out = output(&mut s.pledge("bootstrap", &config).expect("cmd"));
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    let log = registrar_log(&s);
    let enrolls = coaps_lines(&log, "simpleenroll");
    assert_eq!(enrolls.len(), 2, "{log}");
    assert!(enrolls[0].contains("outcome=\"refused\""), "{}", enrolls[0]);
    assert!(
        enrolls[1].contains("outcome=\"enrolled\""),
        "{}",
        enrolls[1]
    );
    assert_eq!(coaps_lines(&log, "csrattrs").len(), 1, "{log}");
    let printed = output(
        std::process::Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(dir.join("ldevid.crt.pem")),
    );
    let printed = String::from_utf8_lossy(&printed.stdout).to_lowercase();
    assert!(
        printed.contains("dns:cb-att.pledges.example.net"),
        "{printed}"
    );
    assert_eq!(pledge_row(&s, "CB-ATT").expect("row")["state"], "enrolled");
}
