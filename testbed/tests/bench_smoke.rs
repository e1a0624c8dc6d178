//! Smoke test of `testbed bench`: a small run of the load benchmark against the real daemons
//! (binaries built by `cargo test --workspace`), over HTTPS and over CoAPS in one invocation,
//! prints one JSON object per transport with the documented fields and no failures; `--plot`
//! draws each run's latencies into an SVG file.

mod support;

/// `testbed bench --pledges 20 --concurrency 4 ARGS`: its reports.
fn bench(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["--pledges", "20", "--concurrency", "4"];
    all.extend_from_slice(args);
    support::bench_reports(&all)
}

#[test]
fn bench_small_run_reports_zero_failures_and_the_json_shape() {
    let reports = bench(&["--transport", "https,coaps"]);
    assert_eq!(reports.len(), 2, "{reports:?}");
    for (report, transport) in reports.iter().zip(["https", "coaps"]) {
        assert_eq!(report["transport"], transport);
        check(report);
    }
}

/// `--store sqlite,postgres`: the same run with the daemons' state in their SQLite files, then
/// in a PostgreSQL server started for the run; one report each, saying where the state was.
#[test]
fn bench_runs_on_sqlite_and_on_postgres_in_one_invocation() {
    let reports = bench(&["--store", "sqlite,postgres", "--skip-pledge"]);
    assert_eq!(reports.len(), 2, "{reports:?}");
    for (report, store) in reports.iter().zip(["sqlite", "postgres"]) {
        assert_eq!(report["store"]["masa"], store, "{report}");
        assert_eq!(report["store"]["registrar"], store, "{report}");
        assert_eq!(report["enrollments"], 20, "{report}");
        assert_eq!(report["failures"], 0, "{report}");
        assert_eq!(report["daemons_stopped_cleanly"], true, "{report}");
    }
}

fn check(report: &serde_json::Value) {
    assert_eq!(report["pledges"], 20);
    assert_eq!(report["concurrency"], 4);
    assert_eq!(report["enrollments"], 20);
    assert_eq!(report["failures"], 0, "{report}");
    assert!(report["enrollments_per_s"].as_f64().expect("rate") > 0.0);
    let lat = &report["latency_ms"];
    let (p50, p90, p99) = (
        lat["p50"].as_f64().expect("p50"),
        lat["p90"].as_f64().expect("p90"),
        lat["p99"].as_f64().expect("p99"),
    );
    assert!(0.0 < p50 && p50 <= p90 && p90 <= p99, "{lat}");
    for daemon in ["registrar", "masa"] {
        assert!(
            report["peak_rss_kb"][daemon].as_u64().expect("rss") > 0,
            "{daemon}"
        );
    }
    for process in ["registrar", "masa", "load_generator"] {
        // Each enrollment is at least one TLS connection the registrar and the load generator
        // wait on, so their threads switch at least once.
        let n = report["context_switches_per_enrollment"][process]
            .as_f64()
            .expect("context switches");
        assert!(n > 0.0, "{process}: {n}");
    }
    let steal = report["cpu_steal_pct"].as_f64().expect("steal");
    assert!((0.0..=100.0).contains(&steal), "{steal}");
    for when in ["host_p256_verifies_per_s", "host_p256_verifies_per_s_after"] {
        let host = report[when].as_f64().expect("host speed");
        assert!(host >= 1.0, "{when}: {host}");
    }
    let pledge = &report["pledge_bootstrap"];
    assert_eq!(pledge["ok"], true, "{pledge}");
    assert!(pledge["wall_ms"].as_f64().expect("wall") > 0.0);
    assert!(pledge["peak_rss_kb"].as_u64().expect("pledge rss") > 0);
    assert_eq!(report["daemons_stopped_cleanly"], true);
}

/// `--concurrency 1,8`: one report per concurrency, each on fresh daemons; `--plot` draws one
/// SVG per run, named after its concurrency, with a dot per enrollment.
#[test]
fn bench_runs_each_concurrency_given() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plot = dir.path().join("lat.svg");
    let plot = plot.to_str().expect("UTF-8 path");
    let reports = support::bench_reports(&[
        "--pledges",
        "16",
        "--concurrency",
        "1,8",
        "--skip-pledge",
        "--plot",
        plot,
    ]);
    assert_eq!(reports.len(), 2, "{reports:?}");
    for (report, concurrency) in reports.iter().zip([1, 8]) {
        assert_eq!(report["concurrency"], concurrency, "{report}");
        assert_eq!(report["enrollments"], 16, "{report}");
        let file = dir.path().join(format!("lat-c{concurrency}.svg"));
        let svg =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        testbed::plot::check_tags(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert_eq!(svg.matches("<circle ").count(), 16, "{svg}");
        assert!(svg.contains("latency (ms)"), "{svg}");
        // xmllint (Debian libxml2-utils, scripts/install-deps.sh) parses it as XML.
        if let Ok(out) = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg(&file)
            .output()
        {
            assert!(
                out.status.success(),
                "xmllint {}: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert!(
        !dir.path().join("lat.svg").exists(),
        "one file per run only"
    );
}
