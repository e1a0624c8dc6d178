//! The lab's scenarios: build the lab, disturb it, and judge every pledge.

use super::net::{self, ipn, tcp_connects, udp_sends, wait_until};
use super::{
    LAN_NS, Lab, LabOptions, MASA_ADDR, MASA_NS, MASA_PORT, PROXY_LAN_ADDR, PROXY_PORT,
    REGISTRAR_ADDR, REGISTRAR_COAPS_PORT, REGISTRAR_NS, REGISTRAR_PORT, log_contains, pledge_ns,
    serial, tail,
};
use crate::loopback::Binaries;
use crate::progress::Progress;
use anyhow::{Context, Result, bail};
use der::Decode;
use std::time::{Duration, Instant};
use x509_cert::Certificate;

/// The scenarios `testbed lab run --scenario` knows.
pub const SCENARIOS: [&str; 7] = [
    "happy",
    "masa-outage",
    "rogue-registrar",
    "link-flap",
    "registrar-restart",
    "constrained-stateful",
    "constrained-stateless",
];

/// How long the MASA's link is down in `masa-outage`.
pub const OUTAGE: Duration = Duration::from_secs(20);

fn deadline(name: &str) -> Duration {
    match name {
        "happy" => Duration::from_secs(60),
        _ => Duration::from_secs(100),
    }
}

/// Build the lab, run scenario `name`, print a verdict per pledge and overall, tear down.
/// `Ok(true)` only on a pass.
/// With `coaps`, the pledges are constrained ones behind the stateful constrained join proxy
/// (as in `constrained-stateful`).
pub fn run(
    bin: Binaries,
    name: &str,
    pledges: usize,
    broken_pledge: bool,
    coaps: bool,
) -> Result<bool> {
    if !SCENARIOS.contains(&name) {
        bail!("unknown scenario {name:?}; known: {}", SCENARIOS.join(", "));
    }
    let started = Instant::now();
    let options = LabOptions {
        pledges,
        rogue: name == "rogue-registrar",
        broken_pledge,
        constrained: coaps || name.starts_with("constrained-"),
        stateless: name == "constrained-stateless",
    };
    let result = Lab::up(bin, options).and_then(|mut lab| {
        println!(
            "lab up in {:.1}s: {pledges} pledges, run directory {}",
            started.elapsed().as_secs_f64(),
            lab.dir.display()
        );
        let r = drive(&mut lab, name);
        if !matches!(r, Ok(true)) {
            for log in ["proxy", "registrar", "masa"] {
                eprintln!("--- {log}.log (tail)\n{}", tail(&lab.log(log), 15));
            }
            eprintln!(
                "--- pledge-1.log (tail)\n{}",
                tail(&lab.log("pledge-1"), 15)
            );
        }
        r
    });
    let removed = net::teardown(Duration::from_secs(10));
    let removed = removed.map(|r| r.len()).unwrap_or(0);
    println!(
        "lab down: {removed} namespaces removed; total {:.1}s",
        started.elapsed().as_secs_f64()
    );
    result
}

/// The network checks: a pledge reaches the proxy, and only the proxy.
fn isolation(lab: &Lab) -> Result<()> {
    let p = pledge_ns(1);
    if !tcp_connects(REGISTRAR_NS, REGISTRAR_ADDR, REGISTRAR_PORT) {
        bail!("control: the registrar does not accept connections on its own address");
    }
    if !lab.options.constrained && !tcp_connects(&p, &format!("{PROXY_LAN_ADDR}%eth0"), PROXY_PORT)
    {
        bail!("pledge-1 cannot reach the join proxy at {PROXY_LAN_ADDR}%eth0");
    }
    if lab.options.constrained && !udp_sends(REGISTRAR_NS, REGISTRAR_ADDR, REGISTRAR_COAPS_PORT) {
        bail!("control: the registrar's own namespace cannot send to its CoAPS port");
    }
    if lab.options.constrained && udp_sends(&p, REGISTRAR_ADDR, REGISTRAR_COAPS_PORT) {
        bail!(
            "pledge-1 has a route to the registrar's CoAPS port [{REGISTRAR_ADDR}]:{REGISTRAR_COAPS_PORT}"
        );
    }
    for (what, host, port) in [
        ("registrar", REGISTRAR_ADDR, REGISTRAR_PORT),
        ("MASA", MASA_ADDR, MASA_PORT),
    ] {
        if tcp_connects(&p, host, port) {
            bail!("pledge-1 reached the {what} directly at [{host}]:{port}");
        }
    }
    if lab.options.constrained {
        println!(
            "isolation: pledge-1 has no route to the registrar's CoAPS port [{REGISTRAR_ADDR}]:{REGISTRAR_COAPS_PORT}; direct connections to the registrar [{REGISTRAR_ADDR}]:{REGISTRAR_PORT} and MASA [{MASA_ADDR}]:{MASA_PORT} fail"
        );
    } else {
        println!(
            "isolation: pledge-1 reaches the proxy [{PROXY_LAN_ADDR}%eth0]:{PROXY_PORT}; direct connections to the registrar [{REGISTRAR_ADDR}]:{REGISTRAR_PORT} and MASA [{MASA_ADDR}]:{MASA_PORT} fail"
        );
    }
    // The pledges have nothing but link-local addresses.
    for i in 1..=lab.options.pledges {
        let out = std::process::Command::new("ip")
            .args(["-n", &pledge_ns(i), "-6", "addr", "show", "scope", "global"])
            .output()?;
        if !out.stdout.is_empty() {
            bail!("pledge-{i} has a global address");
        }
    }
    Ok(())
}

fn enrolled_count(lab: &Lab) -> usize {
    (1..=lab.options.pledges)
        .filter(|i| lab.pledge_dir(*i).join("state.json").exists())
        .count()
}

fn set_lan(up: bool, pledges: usize) -> Result<()> {
    let state = if up { "up" } else { "down" };
    ipn(LAN_NS, &["link", "set", "to-proxy", state])?;
    for i in 1..=pledges {
        ipn(LAN_NS, &["link", "set", &format!("to-p{i}"), state])?;
    }
    Ok(())
}

fn drive(lab: &mut Lab, name: &str) -> Result<bool> {
    isolation(lab)?;
    let n = lab.options.pledges;
    if name == "masa-outage" {
        ipn(MASA_NS, &["link", "set", "wan0", "down"])?;
        println!("masa-outage: the MASA's link is down");
    }
    let t0 = Instant::now();
    lab.start_pledges()?;
    // Enrolled (state written) and failed (exited non-zero) so far, on stderr's terminal.
    let progress = Progress::start(n, Default::default());
    let registrar_log = lab.log("registrar");
    match name {
        "masa-outage" => {
            while t0.elapsed() < OUTAGE {
                progress.set(enrolled_count(lab), 0);
                std::thread::sleep(Duration::from_millis(200));
            }
            let early = enrolled_count(lab);
            ipn(MASA_NS, &["link", "set", "wan0", "up"])?;
            progress.println(&format!(
                "masa-outage: link up again after {:.1}s; {early} pledges enrolled during the outage",
                t0.elapsed().as_secs_f64()
            ));
            if early > 0 {
                bail!("{early} pledges enrolled while the MASA was unreachable");
            }
        }
        "link-flap" => {
            wait_until(
                "a voucher request reaching the registrar",
                Duration::from_secs(60),
                || log_contains(&registrar_log, "requestvoucher"),
            )?;
            let before = enrolled_count(lab);
            set_lan(false, n)?;
            std::thread::sleep(Duration::from_secs(3));
            set_lan(true, n)?;
            progress.println(&format!(
                "link-flap: pledge LAN down for 3 s at {:.1}s, {before}/{n} pledges enrolled then",
                t0.elapsed().as_secs_f64()
            ));
        }
        "registrar-restart" => {
            wait_until(
                "a voucher request reaching the registrar",
                Duration::from_secs(60),
                || log_contains(&registrar_log, "requestvoucher"),
            )?;
            let before = enrolled_count(lab);
            if let Some(r) = lab.registrar.as_mut() {
                r.kill()?;
            }
            progress.println(&format!(
                "registrar-restart: registrar SIGKILLed at {:.1}s, {before}/{n} pledges enrolled then",
                t0.elapsed().as_secs_f64()
            ));
            std::thread::sleep(Duration::from_secs(1));
            lab.start_registrar()?;
            progress.println(&format!(
                "registrar-restart: registrar serving again at {:.1}s",
                t0.elapsed().as_secs_f64()
            ));
        }
        _ => {}
    }
    // Every pledge exits 0 once enrolled (`pledge run --once`), within the deadline.
    let limit = deadline(name);
    let mut statuses = vec![None; n];
    while t0.elapsed() < limit {
        for (i, p) in lab.pledges.iter_mut().enumerate() {
            if statuses[i].is_none() {
                statuses[i] = p.exited().map(|s| (s, t0.elapsed()));
            }
        }
        let exited = |ok: bool| {
            statuses
                .iter()
                .flatten()
                .filter(|(s, _)| s.success() == ok)
                .count()
        };
        progress.set(exited(true), exited(false));
        if statuses.iter().all(Option::is_some) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    progress.finish();
    for p in &mut lab.pledges {
        if p.exited().is_none() {
            let _ = p.kill();
        }
    }
    let registrar_list = lab.registrar_pledges().unwrap_or_default();
    let domain_ca = read_cert(&lab.registrar_dir().join("domain-ca.crt.pem"))?;
    let mut passed = 0;
    for i in 1..=n {
        let verdict = judge(lab, i, statuses[i - 1], limit, &domain_ca, &registrar_list);
        match verdict {
            Ok(line) => {
                passed += 1;
                println!("PASS {}  {line}", serial(i));
            }
            Err(e) => println!("FAIL {}  {e:#}", serial(i)),
        }
    }
    let heard = |via: &str| {
        (1..=n)
            .filter(|i| log_contains(&lab.log(&format!("pledge-{i}")), &format!("via=\"{via}\"")))
            .count()
    };
    let proxy_log = std::fs::read_to_string(lab.log("proxy")).unwrap_or_default();
    if lab.options.constrained {
        println!(
            "discovery: pledges that found the constrained proxy by CoAP brski-jp: {}/{n}, by DNS-SD _brski-proxy._udp: {}/{n}; flows the proxy opened: {}, pledges it relayed statelessly: {}",
            heard("CoAP"),
            heard("DNS-SD"),
            proxy_log.matches("outcome=\"flow\"").count(),
            proxy_log.matches("outcome=\"jpy\"").count()
        );
    } else {
        println!(
            "discovery: pledges that heard a proxy by GRASP AN_Proxy: {}/{n}, by DNS-SD _brski-proxy._tcp: {}/{n}; the proxy heard the registrar by GRASP: {}, by DNS-SD: {}",
            heard("GRASP"),
            heard("DNS-SD"),
            proxy_log.contains("via=\"GRASP\""),
            proxy_log.contains("via=\"DNS-SD\"")
        );
    }
    // The mode the pledges went through: per-pledge flows, or stateless JPY and no flows.
    if lab.options.constrained {
        let (flows, jpy) = (
            proxy_log.matches("outcome=\"flow\"").count(),
            proxy_log.matches("outcome=\"jpy\"").count(),
        );
        let right = if lab.options.stateless {
            flows == 0 && jpy >= n
        } else {
            jpy == 0 && flows >= n
        };
        if !right {
            println!("the proxy did not relay in its mode: {flows} flows, {jpy} stateless pledges");
            passed = 0;
        }
    }
    if name == "rogue-registrar" {
        let (relayed, what) = if lab.options.constrained {
            ("outcome=\"flow\"", "pledge flows")
        } else {
            ("relay ended", "pledge connections")
        };
        let relayed = std::fs::read_to_string(lab.log("rogue-proxy"))
            .map(|t| t.matches(relayed).count())
            .unwrap_or(0);
        println!("rogue-registrar: the rogue proxy relayed {relayed} {what}");
        // No LDevID may have come from the rogue domain.
        let toml = lab.dir.join("rogue").join("registrar.toml");
        let out = crate::loopback::run(
            std::process::Command::new(&lab.bin.registrar)
                .args(["pledges", "list", "--config"])
                .arg(&toml),
        )?;
        let issued = String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .filter(|l| l.split_whitespace().nth(5).is_some_and(|c| c != "-"))
            .count();
        println!("rogue-registrar: LDevIDs issued by the rogue registrar: {issued}");
        if issued > 0 {
            passed = 0;
        }
    }
    let pass = passed == n;
    println!(
        "{} scenario {name}: {passed}/{n} pledges enrolled with the real registrar in {:.1}s",
        if pass { "PASS" } else { "FAIL" },
        t0.elapsed().as_secs_f64()
    );
    Ok(pass)
}

/// The `error` of the last failed attempt in a pledge's log.
fn last_failure(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find(|l| l.contains("outcome=\"failed\""))
        .and_then(|l| l.split_once("error=").map(|(_, e)| e))
        .map(|e| e.split(" retry_in_ms").next().unwrap_or(e).to_string())
        .unwrap_or_else(|| "none logged".into())
}

fn read_cert(path: &std::path::Path) -> Result<Certificate> {
    let pem = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let der = brski_common::input::pem_block(&pem, &["CERTIFICATE"])?;
    Ok(Certificate::from_der(&der)?)
}

/// One pledge's verdict: exited 0; an LDevID signed by the real domain CA; enrolled through the
/// real proxy; the registrar's database records the LDevID it issued.
fn judge(
    lab: &Lab,
    i: usize,
    status: Option<(std::process::ExitStatus, Duration)>,
    limit: Duration,
    domain_ca: &Certificate,
    registrar_list: &str,
) -> Result<String> {
    let Some((status, took)) = status else {
        bail!(
            "not enrolled within {}s; last failure: {}",
            limit.as_secs(),
            last_failure(&lab.log(&format!("pledge-{i}")))
        );
    };
    if !status.success() {
        bail!("pledge exited with {status}");
    }
    let dir = lab.pledge_dir(i);
    let ldevid = read_cert(&dir.join("ldevid.crt.pem"))?;
    if !brski_common::pki::chain::signed_by(&ldevid, domain_ca) {
        bail!(
            "LDevID issued by \"{}\", not by the real domain CA",
            ldevid.tbs_certificate().issuer()
        );
    }
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("state.json"))?)?;
    let via = state["registrar"].as_str().unwrap_or("?").to_string();
    if !via.contains(&format!("[{PROXY_LAN_ADDR}%25")) {
        bail!("enrolled through {via}, not the lab's join proxy");
    }
    if lab.options.constrained && !via.starts_with("coaps://") {
        bail!("enrolled through {via}, not over CoAPS");
    }
    let row = registrar_list
        .lines()
        .find(|l| l.split_whitespace().next() == Some(serial(i).as_str()))
        .unwrap_or("");
    let cols: Vec<&str> = row.split_whitespace().collect();
    if cols.get(5).is_none_or(|c| *c == "-") {
        bail!("the registrar has no LDevID recorded for it: {row:?}");
    }
    let e = crate::loopback::read_enrollment(&dir, &serial(i))?;
    Ok(format!(
        "voucher {} via {via}, LDevID \"{}\" issued by \"{}\", enrollstatus {} ({:.1}s)",
        e.assertion,
        e.ldevid_subject,
        e.ldevid_issuer,
        cols.get(4).copied().unwrap_or("?"),
        took.as_secs_f64()
    ))
}
