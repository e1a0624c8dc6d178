//! The MASA's Prometheus metrics (`metrics-listen`): after a known sequence of voucher
//! requests (RFC 8995 §5.5, §5.6), a scrape of `/metrics` passes `promtool check metrics` and
//! counts exactly the requests, vouchers and refusals (by reason) that were made.

mod support;

use brski_common::envelope::Format;
use support::{Domain, Masa, promtool_check, sample, scrape_path};

#[tokio::test]
async fn scrape_counts_the_voucher_requests_made_and_passes_promtool() {
    let masa = Masa::start("log-only");
    let addr = masa.metrics_addr().expect("metrics_addr= in the log");
    assert!(addr.ip().is_loopback(), "{addr}");

    // Two vouchers issued.
    let domain = Domain::new("Metrics");
    let issued: Vec<_> = ["SN-M1", "SN-M2"].map(|serial| masa.mint(serial)).into();
    for pledge in &issued {
        let req = pledge.requests(&domain, Format::Cms, &masa.vendor_ca);
        let (status, _, body) = masa.request_voucher(&req.rvr).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    // Refused: a serial never minted (404), garbage twice (400), a nonceless request, without
    // the pledge's, under log-only (403, RFC 8995 §5.5.4).
    let ghost = masa.unminted("SN-GHOST");
    let req = ghost.requests(&domain, Format::Cms, &masa.vendor_ca);
    assert_eq!(masa.request_voucher(&req.rvr).await.0, 404);
    assert_eq!(masa.request_voucher(b"garbage").await.0, 400);
    assert_eq!(masa.request_voucher(&[0x30, 0x82, 0xff]).await.0, 400);
    let pledge = masa.mint("SN-M3");
    assert_eq!(
        masa.request_voucher(&pledge.nonceless_rvr(&domain)).await.0,
        403
    );
    // An audit-log request (RFC 8995 §5.8.1) is not a voucher request.
    let req = issued[0].requests(&domain, Format::Cms, &masa.vendor_ca);
    assert_eq!(masa.request_audit_log(&req.rvr).await.0, 200);

    let (status, content_type, scrape) = scrape_path(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    promtool_check(&scrape);
    let value = |series: &str| sample(&scrape, series);
    assert_eq!(
        value("brski_masa_voucher_requests_total"),
        Some(6.0),
        "{scrape}"
    );
    assert_eq!(
        value("brski_masa_vouchers_issued_total"),
        Some(2.0),
        "{scrape}"
    );
    for (reason, n) in [
        ("unknown-device", 1.0),
        ("bad-request", 2.0),
        ("rejected-request", 1.0),
    ] {
        let series = format!("brski_masa_voucher_refusals_total{{reason=\"{reason}\"}}");
        assert_eq!(value(&series), Some(n), "{series}: {scrape}");
    }
    assert_eq!(
        scrape
            .lines()
            .filter(|l| l.starts_with("brski_masa_voucher_refusals_total{"))
            .count(),
        3,
        "no other refusal reason: {scrape}"
    );
    // Every voucher issued is one committed write (SQLite group commit or a PostgreSQL
    // transaction), so the commits carried at least two.
    let writes = value("brski_db_commit_batch_size_sum").expect("batch size");
    assert!(writes >= 2.0, "{scrape}");
    assert!(
        scrape.contains("# TYPE brski_open_connections gauge"),
        "{scrape}"
    );

    // OpenMetrics when asked for; 404 elsewhere.
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .expect("scrape");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(resp.text().await.expect("body").ends_with("# EOF\n"));
    assert_eq!(scrape_path(addr, "/").await.0, 404);
    assert_eq!(scrape_path(addr, "/metrics/x").await.0, 404);
}

#[test]
fn metrics_listen_is_checked_by_init_and_check_config() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("m");
    let d = dir.to_str().expect("utf-8");
    let out = support::masa(&["init", "--dir", d, "--metrics-listen", "nowhere"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("metrics-listen"),
        "{out:?}"
    );
    let out = support::masa(&["init", "--dir", d]);
    assert!(out.status.success(), "{out:?}");
    let config = dir.join("masa.toml");
    let text = std::fs::read_to_string(&config).expect("masa.toml");
    assert!(
        text.contains("metrics-listen = \"127.0.0.1:9465\""),
        "{text}"
    );
    let c = config.to_str().expect("utf-8");
    for (value, ok) in [("off", true), ("[::1]:0", true), ("localhost:9465", false)] {
        std::fs::write(
            &config,
            text.replace(
                "metrics-listen = \"127.0.0.1:9465\"",
                &format!("metrics-listen = \"{value}\""),
            ),
        )
        .expect("write");
        let out = support::masa(&["check-config", "--config", c]);
        assert_eq!(out.status.success(), ok, "{value}: {out:?}");
        if !ok {
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("metrics-listen"),
                "{out:?}"
            );
        }
    }
}
