//! Several instances of each daemon on PostgreSQL behind HAProxy, under `testbed bench` load
//! (issue 15): the side-by-side run with SQLite, the loss of one instance of each daemon, and a
//! restart of PostgreSQL. The load generator starts a failed bootstrap again, as a pledge does
//! (RFC 8995 §5.6); every pledge must enroll, and the database must hold every LDevID a pledge
//! was told of (`pg_dump`), none told to two pledges, and no audit entry without its voucher.

mod support;

use serde_json::Value;

/// `testbed bench --pledges 40 --concurrency 8 --skip-pledge ARGS`: its reports, after it
/// exited successfully (which it does only when the consistency checks held).
fn bench(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--pledges", "40", "--concurrency", "8", "--skip-pledge"];
    all.extend_from_slice(args);
    support::bench_reports(&all)
}

/// Every pledge enrolled, and the database holds what they were told.
fn all_enrolled_and_consistent(report: &Value) {
    assert_eq!(report["enrollments"], 40, "{report}");
    assert_eq!(report["failures"], 0, "{report}");
    assert_eq!(report["daemons_stopped_cleanly"], true, "{report}");
    let c = &report["consistency"];
    assert_eq!(c["ldevids_told"], 40, "{report}");
    assert_eq!(c["ldevids_told_missing_from_dump"], 0, "{report}");
    assert_eq!(c["ldevids_told_twice"], 0, "{report}");
    assert_eq!(c["masa_audit_entries_without_voucher"], 0, "{report}");
    assert!(c["registrar_certificates"].as_u64() >= Some(40), "{report}");
    assert!(c["masa_vouchers"].as_u64() >= Some(40), "{report}");
}

#[test]
fn two_instances_on_postgres_run_beside_one_on_sqlite() {
    let reports = bench(&["--store", "sqlite,postgres", "--instances", "2"]);
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(reports[0]["store"]["registrar"], "sqlite");
    assert_eq!(reports[0]["instances"], 1);
    assert_eq!(reports[0]["consistency"], Value::Null);
    assert_eq!(reports[0]["enrollments"], 40);
    assert_eq!(reports[1]["store"]["registrar"], "postgres");
    assert_eq!(reports[1]["instances"], 2);
    all_enrolled_and_consistent(&reports[1]);
}

#[test]
fn losing_one_instance_of_each_daemon_loses_no_pledge_and_nothing_committed() {
    let reports = bench(&[
        "--store",
        "postgres",
        "--instances",
        "2",
        "--retries",
        "20",
        "--kill-after",
        "10",
    ]);
    let report = &reports[0];
    let faults = report["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 2, "{report}");
    assert!(
        faults[0]
            .as_str()
            .is_some_and(|f| f.starts_with("SIGKILL registrar"))
    );
    assert!(
        faults[1]
            .as_str()
            .is_some_and(|f| f.starts_with("SIGKILL masa"))
    );
    all_enrolled_and_consistent(report);
}

#[test]
fn a_postgres_restart_under_load_is_503_or_5_03_then_everything_enrolls() {
    let reports = bench(&[
        "--store",
        "postgres",
        "--transport",
        "https,coaps",
        "--retries",
        "20",
        "--restart-db-after",
        "10",
    ]);
    assert_eq!(reports.len(), 2, "{reports:?}");
    for (report, unavailable) in reports.iter().zip(["503", "5.03"]) {
        assert_eq!(
            report["faults"][0], "PostgreSQL stopped for 3 s after 10 enrollments",
            "{report}"
        );
        // While the database was away, pledges were told so (and tried again).
        assert!(
            report["retries"][unavailable].as_u64() > Some(0),
            "{unavailable}: {report}"
        );
        all_enrolled_and_consistent(report);
    }
}
