//! Two `registrar serve` instances sharing one PostgreSQL database (issue 15): what an operator
//! decides through one holds on the other at once, and a pledge whose voucher went through one
//! enrolls through the other.

mod support;

use brski_common::brski::paths;
use brski_common::envelope::Format;
use std::net::SocketAddr;
use support::*;

/// The `database` line of a configuration replaced by `url`.
fn on_database(url: String) -> impl FnOnce(String) -> String {
    move |text| {
        text.lines()
            .map(|l| match l.starts_with("database = ") {
                true => format!("database = \"{url}\""),
                false => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A second instance of the registrar of `s`: the same configuration, keys and certificates in
/// a directory of its own, listening on another port.
async fn second_instance(s: &Setup) -> RegistrarProc {
    let dir = s.tmp.path().join("registrar-2");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&s.reg.dir)
        .arg(&dir)
        .status()
        .expect("cp");
    assert!(copied.success());
    for name in [
        "registrar.log",
        "registrar.db",
        "registrar.db-wal",
        "registrar.db-shm",
    ] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let first = s.reg.addr;
    edit_config(&dir, |t| {
        t.replace(
            &format!("listen = \"{first}\""),
            &format!("listen = \"{addr}\""),
        )
    });
    RegistrarProc::start(&dir, addr).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_policy_vouchers_and_enrollment() {
    let pg = brski_service::pg_server::PgServer::start().expect("a PostgreSQL server");
    pg.create_database("registrar").expect("create database");
    let s = setup_with(
        MasaMode::Issue,
        &["--accept", "pending"],
        on_database(pg.url("registrar")),
    )
    .await;
    let b = second_instance(&s).await;
    assert_ne!(s.reg.addr, b.addr);

    // Pending on A; allowed through B's configuration; A then relays the voucher request.
    let p = s.pledge("SN-TWO");
    let cert = p.registrar_cert(&s.reg).await;
    assert_eq!(cert, p.registrar_cert(&b).await, "one registrar identity");
    let pvr = p.pvr(Format::Cms, &cert);
    let a = p.request_voucher(&s.reg, &pvr).await;
    assert_eq!(a.status, 202, "{}", a.text());
    let out = pledges_cmd(&b.dir, &["allow", "SN-TWO"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = p.request_voucher(&s.reg, &pvr).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(s.masa.calls(), 1);

    // The voucher went through A: B lets the pledge enroll.
    let key = key();
    let subject = p.idevid.cert.tbs_certificate().subject().clone();
    let enrolled = p
        .post(
            &b,
            paths::SIMPLE_ENROLL,
            "application/pkcs10",
            csr_body(&subject, &key),
        )
        .await;
    assert_eq!(enrolled.status, 200, "{}", enrolled.text());
    let ldevid = single_cert(&enrolled.body);
    let listed = s.reg.pledge("SN-TWO").await.expect("listed through A");
    assert_eq!(listed["ldevid_serial"], cert_serial_hex(&ldevid));
    assert_eq!(listed["vouchers"], 1);

    // Denied through A: B refuses it at once (RFC 8995 §5.3: 404).
    let q = s.pledge("SN-DENIED");
    let out = pledges_cmd(&s.reg.dir, &["deny", "SN-DENIED"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = q.request_voucher(&b, &q.pvr(Format::Cms, &cert)).await;
    assert_eq!(a.status, 404, "{}", a.text());
    assert_eq!(s.masa.calls(), 1, "a denied pledge reaches no MASA");
}
