//! The registrar's Prometheus metrics (`metrics-listen`): after a known sequence of voucher
//! requests (RFC 8995 §5.2, §5.3, §5.6), an enrollment and a renewal (RFC 7030 §4.2) and a
//! failed TLS handshake, a scrape of `/metrics` passes `promtool check metrics` and counts
//! exactly what was done, by transport and outcome.

mod support;

use brski_common::brski::paths;
use brski_common::envelope::Format;
use brski_common::telemetry::StatusTelemetry;
use std::sync::Arc;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PKCS10: &str = "application/pkcs10";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_counts_the_requests_made_and_passes_promtool() {
    let s = setup_with(MasaMode::Issue, &["--accept", "pending"], |t| t).await;
    let addr = s.reg.metrics_addr().expect("metrics_addr= in the log");
    assert!(addr.ip().is_loopback(), "{addr}");

    // RFC 8995 §5.3: a pledge not yet allowed is pending (202); allowed, it gets its voucher.
    let p1 = s.pledge("SN-R1");
    let cert = p1.registrar_cert(&s.reg).await;
    let a = p1
        .request_voucher(&s.reg, &p1.pvr(Format::Cms, &cert))
        .await;
    assert_eq!(a.status, 202, "{}", a.text());
    assert!(s.reg.pledges(&["allow", "SN-R1"]).await.status.success());
    p1.obtain_voucher(&s.reg, &s.vendor).await;
    // A second pledge stays pending.
    let p2 = s.pledge("SN-R2");
    let cert = p2.registrar_cert(&s.reg).await;
    let a = p2
        .request_voucher(&s.reg, &p2.pvr(Format::Cms, &cert))
        .await;
    assert_eq!(a.status, 202, "{}", a.text());
    // The MASA refuses (RFC 8995 §5.6: relayed as it said it).
    s.masa
        .set_mode(MasaMode::Refuse(403, "not for this domain"));
    let a = p1
        .request_voucher(&s.reg, &p1.pvr(Format::Cms, &cert))
        .await;
    assert_eq!(a.status, 403, "{}", a.text());
    s.masa.set_mode(MasaMode::Issue);
    // A body that is no voucher-request.
    let a = p1
        .post(
            &s.reg,
            paths::REQUEST_VOUCHER,
            Format::Cms.media_type(),
            b"garbage".to_vec(),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text());

    // Enrollment, then renewal with the LDevID (RFC 7030 §4.2.1, §4.2.2).
    let k = Arc::new(key());
    let subject = p1.idevid.cert.tbs_certificate().subject().clone();
    let a = p1
        .post(
            &s.reg,
            paths::SIMPLE_ENROLL,
            PKCS10,
            csr_body(&subject, &*k),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let ldevid = single_cert(&a.body);
    let ldevid_client = client(&[der(&ldevid)], k.clone()).0;
    let a = send(
        ldevid_client
            .post(s.reg.url(paths::ENROLL_STATUS))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(StatusTelemetry::success().to_json().expect("json")),
    )
    .await
    .expect("enrollstatus");
    assert_eq!(a.status, 200, "{}", a.text());
    let a = send(
        ldevid_client
            .post(s.reg.url(paths::SIMPLE_REENROLL))
            .header(reqwest::header::CONTENT_TYPE, PKCS10)
            .body(csr_body(ldevid.tbs_certificate().subject(), &key())),
    )
    .await
    .expect("simplereenroll");
    assert_eq!(a.status, 200, "{}", a.text());

    // Bytes that are no TLS record: the handshake fails, and the connection is closed.
    let mut tcp = tokio::net::TcpStream::connect(s.reg.addr)
        .await
        .expect("connect");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest).await;

    let (status, content_type, scrape) = scrape_path(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    promtool_check(&scrape);
    let value = |series: &str| sample(&scrape, series);
    let voucher = |outcome: &str| {
        value(&format!(
            "brski_registrar_voucher_requests_total{{transport=\"https\",outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(voucher("pending"), Some(2.0), "{scrape}");
    assert_eq!(voucher("issued"), Some(1.0), "{scrape}");
    assert_eq!(voucher("forbidden"), Some(1.0), "{scrape}");
    assert_eq!(voucher("bad-request"), Some(1.0), "{scrape}");
    assert_eq!(
        scrape
            .lines()
            .filter(|l| l.starts_with("brski_registrar_voucher_requests_total{"))
            .count(),
        4,
        "no other outcome: {scrape}"
    );
    assert_eq!(
        value("brski_registrar_enrollments_total{transport=\"https\",outcome=\"issued\"}"),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        value("brski_registrar_renewals_total{transport=\"https\",outcome=\"issued\"}"),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        value("brski_registrar_pending_pledges"),
        Some(1.0),
        "{scrape}"
    );
    // Two requests reached the MASA and were answered (a voucher, a refusal).
    assert_eq!(s.masa.calls(), 2);
    assert_eq!(
        value(
            "brski_registrar_masa_request_duration_seconds_count\
             {resource=\"requestvoucher\",outcome=\"answered\"}"
        ),
        Some(2.0),
        "{scrape}"
    );
    assert_eq!(
        value("brski_handshake_failures_total{transport=\"https\",cause=\"protocol\"}"),
        Some(1.0),
        "{scrape}"
    );
    // The voucher and the LDevID were stored in committed transactions.
    assert!(
        value("brski_db_commit_batch_size_sum").is_some_and(|n| n >= 2.0),
        "{scrape}"
    );

    // Allowing the pending pledge empties the gauge (computed at each scrape).
    assert!(s.reg.pledges(&["allow", "SN-R2"]).await.status.success());
    let (_, _, scrape) = scrape_path(addr, "/metrics").await;
    assert_eq!(
        sample(&scrape, "brski_registrar_pending_pledges"),
        Some(0.0),
        "{scrape}"
    );
    assert_eq!(scrape_path(addr, "/").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_is_checked_by_init_check_config_and_serve() {
    let tmp = tempfile::TempDir::new().expect("tempdir");
    let vendor = Vendor::new("Vendor");
    let ca = vendor.write_ca(tmp.path());
    let bad = tokio::process::Command::new(registrar_bin())
        .arg("init")
        .arg("--dir")
        .arg(tmp.path().join("bad"))
        .args(["--domain", "registrar.example", "--vendor-ca"])
        .arg(&ca)
        .args(["--metrics-listen", "localhost"])
        .output()
        .await
        .expect("run init");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("metrics-listen \"localhost\""),
        "{bad:?}"
    );
    assert!(!tmp.path().join("bad").join("registrar.toml").exists());

    let dir = tmp.path().join("registrar");
    let addr = init_registrar(&dir, &ca, &[]).await;
    edit_config(&dir, |t| {
        t.replace(
            "metrics-listen = \"127.0.0.1:0\"",
            "metrics-listen = \"metrics.example:9464\"",
        )
    });
    let check = || async {
        tokio::process::Command::new(registrar_bin())
            .arg("check-config")
            .arg("--config")
            .arg(dir.join("registrar.toml"))
            .output()
            .await
            .expect("run check-config")
    };
    let out = check().await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("metrics-listen \"metrics.example:9464\""),
        "{stderr}"
    );
    // "off": no metrics listener, as the start line says.
    edit_config(&dir, |t| {
        t.replace(
            "metrics-listen = \"metrics.example:9464\"",
            "metrics-listen = \"off\"",
        )
    });
    assert!(check().await.status.success());
    let reg = RegistrarProc::start(&dir, addr).await;
    assert!(reg.log().contains("metrics_addr=off"), "{}", reg.log());
    assert_eq!(reg.metrics_addr(), None);
}
