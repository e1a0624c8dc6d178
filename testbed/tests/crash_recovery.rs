//! RFC 8995 under a registrar crash: 50 pledges (`pledge run --once`) bootstrap at once, the
//! registrar is killed with SIGKILL mid-run and restarted; every pledge ends enrolled, neither
//! database is corrupt, and every record committed before the kill is still there.

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::*;
use testbed::loopback::SuiteOptions;

const PLEDGES: usize = 50;

#[test]
fn registrar_sigkill_during_50_concurrent_bootstraps() {
    let (_tmp, mut s) = started(&SuiteOptions::default());
    let configs: Vec<_> = (0..PLEDGES)
        .map(|i| s.mint(&format!("CRASH-{i:03}")).expect("mint"))
        .collect();
    let mut children: Vec<Child> = configs
        .iter()
        .map(|c| {
            s.pledge("run", c)
                .expect("cmd")
                .arg("--once")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn pledge run")
        })
        .collect();

    // Let some pledges get through, then crash the registrar.
    let start = Instant::now();
    loop {
        let rows = pledges(&s);
        let progressed = rows
            .as_array()
            .map(|r| {
                r.iter()
                    .filter(|p| p["vouchers"].as_i64().unwrap_or(0) > 0)
                    .count()
            })
            .unwrap_or(0);
        if progressed >= 5 || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    s.registrar
        .as_mut()
        .expect("registrar")
        .kill()
        .expect("SIGKILL");
    let before = pledges(&s);
    assert!(
        registrar_db_ok(&s),
        "registrar database intact after SIGKILL"
    );

    std::thread::sleep(Duration::from_millis(500));
    s.start_registrar().expect("restart registrar");

    let deadline = Instant::now() + Duration::from_secs(240);
    for (i, child) in children.iter_mut().enumerate() {
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("pledge {i} did not enroll in time");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(status.success(), "pledge {i}: {status}");
    }
    for c in &configs {
        assert!(c.parent().expect("dir").join("ldevid.crt.pem").exists());
    }

    let after = pledges(&s);
    let rows = after.as_array().expect("rows");
    assert_eq!(
        rows.iter().filter(|r| r["state"] == "enrolled").count(),
        PLEDGES
    );
    // Every record committed before the kill is still there.
    for old in before.as_array().expect("rows") {
        let serial = &old["serial"];
        let new = rows
            .iter()
            .find(|r| &r["serial"] == serial)
            .expect("row survived the crash");
        for counter in ["vouchers", "telemetry_reports", "certificates"] {
            assert!(
                new[counter].as_i64() >= old[counter].as_i64(),
                "{serial} lost {counter}: {} -> {}",
                old[counter],
                new[counter]
            );
        }
    }
    let stopped = s.stop().expect("stop");
    assert!(stopped.iter().all(|(_, st)| st.success()), "{stopped:?}");
    assert!(registrar_db_ok(&s));
    assert!(masa_db_ok(&s));
}
