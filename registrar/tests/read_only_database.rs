//! A read-only database is found when the registrar starts, not at the first request that
//! writes (issue 13: every request then got 500). The database directory is bind-mounted
//! read-only in a private mount namespace, which stops root too.

mod support;

use support::*;

/// `registrar ARGS` with `dir` read-only; `None` when this machine cannot make a private
/// read-only mount (not root, or no `unshare`).
async fn with_read_only_dir(dir: &std::path::Path, args: &str) -> Option<std::process::Output> {
    let script = format!(
        "mount --bind '{d}' '{d}' && mount -o remount,bind,ro '{d}' || exit 97; exec '{bin}' {args}",
        d = dir.display(),
        bin = registrar_bin(),
    );
    let out = tokio::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .await
        .ok()?;
    (out.status.code() != Some(97)).then_some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_refuses_start_and_check_config_names_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("registrar");
    let vendor = Vendor::new("RO Vendor");
    let vendor_ca = vendor.write_ca(tmp.path());
    init_registrar(&dir, &vendor_ca, &[]).await;
    // The file's permissions are the point, whichever backend the other tests use.
    use_sqlite(&dir);
    let config = dir.join("registrar.toml");
    let Some(out) =
        with_read_only_dir(&dir, &format!("serve --config '{}'", config.display())).await
    else {
        eprintln!("skipped: no private read-only mount here (needs root and unshare)");
        return;
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve must refuse: {err}");
    assert!(
        err.contains("registrar.db") && err.contains("not writable"),
        "{err}"
    );

    let out = with_read_only_dir(
        &dir,
        &format!("check-config --config '{}'", config.display()),
    )
    .await
    .expect("mount worked above");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check-config must report it: {err}");
    assert!(err.contains("registrar.db"), "{err}");

    // The same files, writable, serve (the refusal was the mount, nothing was damaged).
    let out = tokio::process::Command::new(registrar_bin())
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .await
        .expect("check-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
