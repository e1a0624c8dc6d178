//! Network namespaces, veth pairs and a bridge, driven with iproute2 (`ip`). Every namespace
//! is named with [`PREFIX`] so that [`teardown`] finds all of them, even after a crash.

use anyhow::{Context, Result, bail};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The prefix of every namespace the lab creates.
pub const PREFIX: &str = "brskilab-";

/// Run `ip ARGS...`; an error with its stderr when it fails.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `ip -n NS ARGS...`.
pub fn ipn(ns: &str, args: &[&str]) -> Result<()> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    ip(&all)
}

/// Run a program inside namespace `ns` to completion; whether it succeeded.
pub fn exec_ok(ns: &str, program: &str, args: &[&str]) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The lab's namespaces that exist now.
pub fn lab_namespaces() -> Result<Vec<String>> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .stdin(Stdio::null())
        .output()
        .context("running ip netns list (install iproute2)")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_string)
        .collect())
}

/// The processes running in namespace `ns`.
pub fn pids(ns: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .stdin(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn kill(pids: &[u32], signal: &str) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stop every process in the lab's namespaces (SIGTERM, SIGKILL after `grace`) and delete the
/// namespaces (their veth pairs and the bridge go with them). Returns what was removed.
pub fn teardown(grace: Duration) -> Result<Vec<String>> {
    let namespaces = lab_namespaces()?;
    let all: Vec<u32> = namespaces.iter().flat_map(|n| pids(n)).collect();
    kill(&all, "TERM");
    let start = Instant::now();
    while start.elapsed() < grace && namespaces.iter().any(|n| !pids(n).is_empty()) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for n in &namespaces {
        kill(&pids(n), "KILL");
    }
    for n in &namespaces {
        // A namespace whose last process is still exiting may refuse once; try again.
        let mut tries = 0;
        while let Err(e) = ip(&["netns", "del", n]) {
            tries += 1;
            if tries > 20 {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(namespaces)
}

/// Create namespace `name` with loopback up, DAD off and addresses kept on link down, so that
/// links are usable at once and static addresses survive a link flap.
pub fn add_namespace(name: &str) -> Result<()> {
    ip(&["netns", "add", name])?;
    ipn(name, &["link", "set", "lo", "up"])?;
    for key in [
        "net.ipv6.conf.all.accept_dad=0",
        "net.ipv6.conf.default.accept_dad=0",
        "net.ipv6.conf.all.keep_addr_on_down=1",
        "net.ipv6.conf.default.keep_addr_on_down=1",
        "net.ipv6.conf.all.forwarding=0",
    ] {
        if !exec_ok(name, "sysctl", &["-q", "-w", key]) {
            bail!("sysctl {key} failed in {name}");
        }
    }
    Ok(())
}

/// A veth pair: `a_if` in `a`, `b_if` in `b`.
pub fn veth(a: &str, a_if: &str, b: &str, b_if: &str) -> Result<()> {
    ipn(
        a,
        &[
            "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b,
        ],
    )
}

/// Add `addr` (with prefix length) to `dev` in `ns` without DAD, and bring `dev` up.
pub fn addr_up(ns: &str, dev: &str, addr: &str) -> Result<()> {
    ipn(ns, &["-6", "addr", "add", addr, "dev", dev, "nodad"])?;
    ipn(ns, &["link", "set", dev, "up"])
}

/// Wait until `check` holds, or fail with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    loop {
        if check() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("{what}: not after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a TCP connection from namespace `ns` to `host` (may carry a `%zone`) and `port`
/// succeeds within two seconds.
pub fn tcp_connects(ns: &str, host: &str, port: u16) -> bool {
    bash_within_2s(ns, &format!("exec 3<>/dev/tcp/{host}/{port}"))
}

fn bash_within_2s(ns: &str, script: &str) -> bool {
    exec_ok(ns, "timeout", &["2", "bash", "-c", script])
}

/// Whether a UDP datagram to `[host]:port` can leave namespace `ns` (a route exists): a
/// sender without a route fails at once with "Network is unreachable".
pub fn udp_sends(ns: &str, host: &str, port: u16) -> bool {
    bash_within_2s(ns, &format!("exec 3<>/dev/udp/{host}/{port} && echo x >&3"))
}
