//! `testbed bench`: the load benchmark. Real `masa serve` and `registrar serve` processes on
//! loopback, driven by an in-process load generator acting as N pledges, each doing the full
//! RFC 8995 flow on its own TLS connection with its own IDevID and checking every answer as
//! the `pledge` binary does: voucher (§5.6.1), pin (§5.6.2), voucher status (§5.7), `/cacerts`
//! against the registrar (§5.9.1), `/csrattrs`, `/simpleenroll` with a fresh key (§5.9.3,
//! issued certificate for our key, chaining to the domain CA), and enrollment status on a new
//! connection authenticated with the LDevID (§5.9.4). One `pledge bootstrap` process is then
//! measured (wall time, peak RSS) against the same daemons.
//!
//! The fleet comes from `masa mint-bulk` (one PEM bundle, every device recorded by the MASA).
//!
//! Over `--transport coaps` the same flow runs as constrained pledges do it (cBRSKI, RFC 9148):
//! DTLS sessions, COSE voucher-requests and vouchers, CBOR telemetry, raw DER EST bodies, no
//! `/att` (cBRSKI §6.7), and `/crts` only when the pinned root CA does not anchor the LDevID
//! (§6.7.1).

use crate::loopback::{Binaries, StoreKind, Suite, SuiteOptions, run};
use crate::plot::Sample;
use crate::progress::{Counters, Progress};
use anyhow::{Context, Result, anyhow, bail, ensure};
use brski_common::brski::paths;
use brski_common::brski::pledge::{
    accept_voucher, build_pledge_voucher_request, pinned_root_ca, validate_registrar,
};
use brski_common::envelope::Format;
use brski_common::est::{self, CsrAttrs, media_type};
use brski_common::input::pem_blocks;
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::oid::ID_KP_CMC_RA;
use brski_common::pki::chain::{TimeCheck, TrustPolicy, validate_chain};
use brski_common::pki::csr::{CsrParams, build_csr};
use brski_common::pki::ext::idevid_issuer;
use brski_common::telemetry::StatusTelemetry;
use brski_common::voucher::PledgeExpectations;
use brski_service::https_client::{Response, Scheme, Target};
use brski_service::link::{ClientCert, Credentials, Link, ServerTrust, Transport};
use der::{Decode, Encode};
use http::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use x509_cert::Certificate;

const TIMEOUT: Duration = Duration::from_secs(60);
/// Failure reasons kept for the report (the count is always complete).
const MAX_REASONS: usize = 5;

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub pledges: usize,
    pub concurrency: usize,
    /// Load-generator threads, each with its own single-threaded runtime (default: the number
    /// of CPUs).
    pub threads: Option<usize>,
    /// Skip the `pledge bootstrap` measurement.
    pub skip_pledge: bool,
    /// Keep the working directory (keys, databases, daemon logs); its path is in the report.
    pub keep: bool,
    pub transport: Transport,
    /// Where the daemons keep their state.
    pub store: StoreKind,
    /// Instances of each daemon, behind HAProxy (PostgreSQL and HTTPS only).
    pub instances: usize,
    /// How many times a pledge starts its bootstrap again after a failure (RFC 8995 §5.6:
    /// a pledge whose bootstrap failed tries again), a second apart.
    pub retries: usize,
    /// Faults injected once this many enrollments are done.
    pub faults: Faults,
    /// Write the plot of the run's latencies (SVG) to this file.
    pub plot: Option<PathBuf>,
}

/// What goes wrong during the load, once `after` enrollments are done.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub after: usize,
    /// SIGKILL the last instance of the MASA and of the registrar.
    pub kill_instances: bool,
    /// Stop the PostgreSQL server and start it again 3 s later.
    pub restart_database: bool,
}

impl Faults {
    fn any(&self) -> bool {
        self.kill_instances || self.restart_database
    }
}

/// One device of the fleet.
struct Device {
    serial: String,
    chain: Vec<Certificate>,
    chain_der: Vec<Vec<u8>>,
    key: Arc<SoftwareKey>,
}

/// What every pledge shares: the manufacturer's anchor, the registrar's URL and transport.
struct Shared {
    manufacturer: TrustPolicy,
    registrar: Target,
    transport: Transport,
    retries: usize,
    /// Enrollments done so far.
    done: AtomicUsize,
    /// Enrollments and failures so far, for the progress line.
    progress: Arc<Counters>,
    /// Bootstraps started again after a failure, by what the failed attempt got.
    retried: std::sync::Mutex<std::collections::BTreeMap<String, usize>>,
}

/// What a failed bootstrap attempt got: the status of a refusal (over CoAPS its CoAP code:
/// the link reports codes as their HTTP statuses, RFC 8075), else `connection` (the
/// connection failed or broke off).
fn failure_kind(e: &anyhow::Error, coaps: bool) -> String {
    use brski_common::answer::Class;
    e.chain()
        .find_map(|cause| {
            let text = cause.to_string();
            let status: u16 = text.split(": ").nth(1)?.split(' ').next()?.parse().ok()?;
            if !coaps {
                return Some(status.to_string());
            }
            Class::TABLE
                .iter()
                .find(|(_, http, _)| *http == status)
                .map(|(_, _, coap)| coap.to_string())
        })
        .unwrap_or_else(|| "connection".into())
}

/// Run the benchmark; the JSON report.
pub fn bench(opts: &BenchOptions) -> Result<Value> {
    ensure!(opts.pledges >= 1, "--pledges must be at least 1");
    ensure!(opts.concurrency >= 1, "--concurrency must be at least 1");
    let bin = Binaries::locate()?;
    let tmp = tempfile::Builder::new().prefix("brski-bench-").tempdir()?;
    let dir = tmp.path();
    let options = SuiteOptions {
        transport: opts.transport.name().into(),
        store: opts.store,
        instances: opts.instances,
        ..SuiteOptions::default()
    };
    ensure!(
        !opts.faults.kill_instances || opts.instances >= 2,
        "killing an instance needs --instances 2 or more"
    );
    ensure!(
        !opts.faults.restart_database || opts.store == StoreKind::Postgres,
        "restarting the database needs --store postgres"
    );
    let mut suite = Suite::create(bin, dir, &options)?;

    let mint_start = Instant::now();
    let bundle = dir.join("fleet.pem");
    run(Command::new(&suite.bin.masa).args([
        "mint-bulk",
        "--config",
        path(&suite.masa_config())?,
        "--count",
        &opts.pledges.to_string(),
        "--serial-prefix",
        "BENCH",
        "--out",
        path(&bundle)?,
    ]))?;
    let (manufacturer, devices) = read_fleet(&bundle)?;
    ensure!(
        devices.len() == opts.pledges,
        "the bundle holds {} devices, not {}",
        devices.len(),
        opts.pledges
    );
    let pledge_toml = if opts.skip_pledge {
        None
    } else {
        Some(suite.mint("BENCH-PLEDGE")?)
    };
    let mint_s = mint_start.elapsed().as_secs_f64();

    suite.start_masa()?;
    suite.start_registrar()?;
    suite.start_instances()?;
    let shared = Arc::new(Shared {
        manufacturer: TrustPolicy::new(manufacturer).with_time(TimeCheck::Now),
        registrar: Target::parse_with_scheme(&suite.registrar_url())
            .map(|(_, t): (Scheme, Target)| t)?,
        transport: opts.transport,
        retries: opts.retries,
        done: AtomicUsize::new(0),
        progress: Arc::default(),
        retried: Default::default(),
    });

    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let host_verifies_per_s = p256_verifies_per_s(Duration::from_millis(300))?;
    // Each role's processes (every instance), then the load generator.
    let pids = [
        suite.pids("registrar"),
        suite.pids("masa"),
        vec![std::process::id()],
    ];
    let cpu_before = pids.clone().map(|p| sum(&p, cpu_ms));
    // PostgreSQL (its server processes) and HAProxy, when they run.
    let database_pid = suite.pg.as_ref().and_then(|pg| pg.pid());
    let balancer_pid = suite.balancer.as_ref().map(|b| b.pid());
    let others_before = [
        database_pid.and_then(cpu_ms_with_children),
        balancer_pid.and_then(cpu_ms),
    ];
    let switches_before = pids.clone().map(|p| sum(&p, context_switches));
    let steal_before = steal_and_total_ticks();
    let mut switches_after = [None; 3];
    let mut faults_done = Vec::new();
    let progress = Progress::start(opts.pledges, shared.progress.clone());
    let load = std::thread::scope(|scope| {
        let injector = opts
            .faults
            .any()
            .then(|| scope.spawn(|| inject(&suite, &shared, &opts.faults, opts.pledges)));
        let load = drive(
            shared.clone(),
            devices,
            opts.concurrency,
            threads.max(1),
            || {
                // Before the load threads end: a thread's switches go with it.
                switches_after = pids.clone().map(|p| sum(&p, context_switches));
            },
        );
        // The injector gives up once every pledge is done, whatever happened.
        shared.done.store(usize::MAX, Ordering::Release);
        progress.finish();
        if let Some(handle) = injector {
            faults_done = handle
                .join()
                .unwrap_or_else(|_| Err(anyhow!("fault injector panicked")))?;
        }
        anyhow::Ok(load)
    })?;
    // A killed instance is gone: its counters with it.
    let killed: Vec<u32> = faults_done.iter().filter_map(|f| f.1).collect();
    suite.instances.retain(|d| !killed.contains(&d.child.id()));
    let pids = pids.map(|p| {
        p.into_iter()
            .filter(|pid| !killed.contains(pid))
            .collect::<Vec<_>>()
    });
    let cpu_after = pids.clone().map(|p| sum(&p, cpu_ms));
    let others_after = [
        database_pid.and_then(cpu_ms_with_children),
        balancer_pid.and_then(cpu_ms),
    ];
    let others_per_enrollment = |i: usize| -> Option<f64> {
        let used =
            others_after.get(i).copied().flatten()? - others_before.get(i).copied().flatten()?;
        (load.ok > 0).then(|| round(used / load.ok as f64, 3))
    };
    // The host's speed again once the load is over: on a shared machine it can change during
    // a run, and the rate follows it.
    let host_verifies_after = p256_verifies_per_s(Duration::from_millis(300))?;
    let steal_pct = match (steal_before, steal_and_total_ticks()) {
        (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => {
            Some(round(100.0 * (s1 - s0) as f64 / (t1 - t0) as f64, 1))
        }
        _ => None,
    };
    let switches_per_enrollment = |i: usize| -> Option<f64> {
        let n = switches_after.get(i).copied().flatten()?
            - switches_before.get(i).copied().flatten()?;
        (load.ok > 0).then(|| round(n as f64 / load.ok as f64, 1))
    };
    let per_enrollment = |i: usize| -> Option<f64> {
        let used = cpu_after.get(i).copied().flatten()? - cpu_before.get(i).copied().flatten()?;
        (load.ok > 0).then(|| round(used / load.ok as f64, 3))
    };

    let registrar_rss = pids[0].iter().filter_map(|&p| vm_hwm_kb(p)).max();
    let masa_rss = pids[1].iter().filter_map(|&p| vm_hwm_kb(p)).max();
    let consistency = match &suite.pg {
        Some(pg) => Some(consistency(pg, &load.issued)?),
        None => None,
    };

    let pledge = match &pledge_toml {
        Some(config) => Some(measure_pledge(&suite, config)?),
        None => None,
    };

    let mut daemons_ok = true;
    for (name, status) in suite.stop()? {
        if !status.success() {
            daemons_ok = false;
            eprintln!("testbed: {name} exited with {status} on SIGTERM");
        }
    }

    let mut lat = load.latencies_ms.clone();
    lat.sort_by(f64::total_cmp);
    let rate = load.ok as f64 / load.elapsed.as_secs_f64();
    let store = match opts.store {
        StoreKind::Sqlite => "sqlite",
        StoreKind::Postgres => "postgres",
    };
    if let Some(file) = &opts.plot {
        let title = format!(
            "testbed bench: {} pledges over {}, {store}, concurrency {}",
            opts.pledges,
            opts.transport.name(),
            opts.concurrency
        );
        crate::plot::write(file, &title, &load.samples)?;
    }
    let workdir = if opts.keep {
        Some(tmp.keep().display().to_string())
    } else {
        None
    };
    Ok(json!({
        "transport": opts.transport.name(),
        "store": {
            "masa": store,
            "registrar": store,
        },
        "instances": suite.cluster.map_or(1, |c| c.instances),
        "faults": faults_done.iter().map(|f| f.0.clone()).collect::<Vec<_>>(),
        "retries": *shared.retried.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        "consistency": consistency,
        "workdir": workdir,
        "pledges": opts.pledges,
        "concurrency": opts.concurrency,
        "load_threads": threads,
        "enrollments": load.ok,
        "failures": load.failures,
        "failure_reasons": load.reasons,
        "duration_s": round(load.elapsed.as_secs_f64(), 3),
        "enrollments_per_s": round(rate, 1),
        "latency_ms": {
            "p50": round(percentile(&lat, 0.50), 1),
            "p90": round(percentile(&lat, 0.90), 1),
            "p99": round(percentile(&lat, 0.99), 1),
            "max": round(lat.last().copied().unwrap_or(0.0), 1),
        },
        "peak_rss_kb": { "registrar": registrar_rss, "masa": masa_rss },
        "cpu_ms_per_enrollment": {
            "registrar": per_enrollment(0),
            "masa": per_enrollment(1),
            "load_generator": per_enrollment(2),
            "database": others_per_enrollment(0),
            "balancer": others_per_enrollment(1),
        },
        "context_switches_per_enrollment": {
            "registrar": switches_per_enrollment(0),
            "masa": switches_per_enrollment(1),
            "load_generator": switches_per_enrollment(2),
        },
        "cpu_steal_pct": steal_pct,
        "host_p256_verifies_per_s": host_verifies_per_s.round(),
        "host_p256_verifies_per_s_after": host_verifies_after.round(),
        "pledge_bootstrap": pledge,
        "daemons_stopped_cleanly": daemons_ok,
        "mint_s": round(mint_s, 2),
    }))
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// The nearest-rank percentile of sorted `v` (0 when empty).
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = (p * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len()) - 1).copied().unwrap_or(0.0)
}

fn path(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", p.display()))
}

/// The bundle of `masa mint-bulk`: the manufacturer CA, then certificate and key of each device.
fn read_fleet(bundle: &Path) -> Result<(Vec<Certificate>, Vec<Device>)> {
    let text =
        std::fs::read_to_string(bundle).with_context(|| format!("reading {}", bundle.display()))?;
    let certs = pem_blocks(&text, &["CERTIFICATE"])?;
    let keys = pem_blocks(&text, &["PRIVATE KEY"])?;
    let (ca, idevids) = certs.split_first().ok_or_else(|| anyhow!("empty bundle"))?;
    ensure!(
        idevids.len() == keys.len(),
        "bundle: certificates and keys differ in number"
    );
    let ca = Certificate::from_der(ca)?;
    let mut devices = Vec::with_capacity(keys.len());
    for (der, key) in idevids.iter().zip(keys) {
        let cert = Certificate::from_der(der)?;
        let key = SoftwareKey::from_der(&key)?;
        ensure!(
            cert.tbs_certificate().subject_public_key_info().to_der()? == key.public_key_spki(),
            "bundle: a key does not match its certificate"
        );
        let serial = brski_common::pki::ext::serial_number(&cert)
            .ok_or_else(|| anyhow!("bundle: an IDevID without serialNumber"))?;
        devices.push(Device {
            serial,
            chain: vec![cert],
            chain_der: vec![der.clone()],
            key: Arc::new(key),
        });
    }
    Ok((vec![ca], devices))
}

/// One pledge's outcome: when it started and how long it took (none when the load itself
/// failed), and its serial with its LDevID's serial number, or why it failed.
struct Outcome {
    sample: Option<Sample>,
    result: Result<(String, String), String>,
}

impl Outcome {
    fn load_failed(reason: String) -> Self {
        Self {
            sample: None,
            result: Err(reason),
        }
    }
}

struct LoadResult {
    ok: usize,
    /// Each pledge told of its LDevID: the pledge's serial and the LDevID's serial number.
    issued: Vec<(String, String)>,
    failures: usize,
    reasons: Vec<String>,
    latencies_ms: Vec<f64>,
    /// Every enrollment, successful or not, in the order they ended per thread.
    samples: Vec<Sample>,
    elapsed: Duration,
}

/// Run the load on `threads` threads, each with its own single-threaded runtime and its share
/// of the `concurrency` pledges in flight, taking devices from one shared queue (no work
/// stealing between them: the generator's own overhead stays small). `when_done` runs once
/// every thread has finished its work and before any has ended.
fn drive(
    shared: Arc<Shared>,
    devices: Vec<Device>,
    concurrency: usize,
    threads: usize,
    when_done: impl FnOnce(),
) -> LoadResult {
    let devices = Arc::new(devices);
    let next = Arc::new(AtomicUsize::new(0));
    let in_flight = concurrency.min(devices.len());
    let threads = threads.min(in_flight).max(1);
    // Each thread sends its outcomes, then waits for `hold` to be released before it ends. A
    // thread that panics drops its sender too, so collecting never waits for it.
    let (sender, finished) = std::sync::mpsc::channel();
    let hold = std::sync::RwLock::new(());
    let start = Instant::now();
    let (elapsed, outcomes) = std::thread::scope(|scope| {
        let held = hold
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let share = in_flight / threads + usize::from(t < in_flight % threads);
            let (shared, devices, next) = (shared.clone(), devices.clone(), next.clone());
            let (sender, hold) = (sender.clone(), &hold);
            handles.push(scope.spawn(move || {
                let out = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(run_pledges(&shared, &devices, &next, share, start)))
                    .unwrap_or_else(|e| vec![Outcome::load_failed(format!("load runtime: {e}"))]);
                let _ = sender.send(out);
                drop(sender);
                drop(hold.read());
            }));
        }
        drop(sender);
        let mut all: Vec<Vec<Outcome>> = finished.iter().collect();
        let elapsed = start.elapsed();
        when_done();
        drop(held);
        for h in handles {
            if h.join().is_err() {
                all.push(vec![Outcome::load_failed("load thread panicked".into())]);
            }
        }
        (elapsed, all)
    });
    let mut result = LoadResult {
        ok: 0,
        issued: Vec::with_capacity(devices.len()),
        failures: 0,
        reasons: Vec::new(),
        latencies_ms: Vec::with_capacity(devices.len()),
        samples: Vec::with_capacity(devices.len()),
        elapsed,
    };
    for o in outcomes.into_iter().flatten() {
        if let Some(sample) = o.sample {
            result.samples.push(sample);
        }
        match o.result {
            Ok(issued) => {
                result.ok += 1;
                result
                    .latencies_ms
                    .push(o.sample.map_or(0.0, |s| s.latency_ms));
                result.issued.push(issued);
            }
            Err(reason) => {
                result.failures += 1;
                if result.reasons.len() < MAX_REASONS {
                    result.reasons.push(reason);
                }
            }
        }
    }
    result
}

/// `in_flight` pledges at a time on this thread's runtime, until the queue is empty; each
/// outcome has the enrollment's start (since `load_start`) and latency, and what it got.
async fn run_pledges(
    shared: &Arc<Shared>,
    devices: &Arc<Vec<Device>>,
    next: &Arc<AtomicUsize>,
    in_flight: usize,
    load_start: Instant,
) -> Vec<Outcome> {
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (shared, devices, next) = (shared.clone(), devices.clone(), next.clone());
        workers.spawn(async move {
            let mut out: Vec<Outcome> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(device) = devices.get(i) else { break };
                let t = Instant::now();
                let mut r = enroll(&shared, device).await;
                for _ in 0..shared.retries {
                    let Err(e) = &r else { break };
                    *shared
                        .retried
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(failure_kind(e, shared.transport == Transport::Coaps))
                        .or_default() += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    r = enroll(&shared, device).await;
                }
                let sample = Sample {
                    start_s: t.duration_since(load_start).as_secs_f64(),
                    latency_ms: t.elapsed().as_secs_f64() * 1000.0,
                    ok: r.is_ok(),
                };
                if r.is_ok() {
                    shared.done.fetch_add(1, Ordering::AcqRel);
                    shared.progress.enrolled.fetch_add(1, Ordering::Relaxed);
                } else {
                    shared.progress.failed.fetch_add(1, Ordering::Relaxed);
                }
                out.push(Outcome {
                    sample: Some(sample),
                    result: r
                        .map(|ldevid| (device.serial.clone(), ldevid))
                        .map_err(|e| format!("{}: {e:#}", device.serial)),
                });
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(o) => all.extend(o),
            Err(e) => all.push(Outcome::load_failed(format!("load task failed: {e}"))),
        }
    }
    all
}

async fn send(
    link: &mut Link,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    accept: Option<&str>,
    body: &[u8],
) -> Result<Response> {
    let r = link
        .request(&method, path, content_type, accept, body, TIMEOUT)
        .await
        .with_context(|| path.to_string())?;
    if r.status != 200 {
        bail!("{path}: {} {}", r.status, r.reason());
    }
    Ok(r)
}

/// A certs-only answer: base64 over HTTPS (RFC 8951), DER over CoAP (RFC 9148 §4.3).
fn certs_only(body: &[u8], coaps: bool) -> Result<Vec<Certificate>> {
    Ok(if coaps {
        est::decode_certs_only(body)?
    } else {
        est::decode_certs_only_body(body)?
    })
}

/// §5.9.1: `/cacerts` (`/crts`), which must validate the registrar's chain.
async fn domain_ca(link: &mut Link, server_chain: &[Vec<u8>], coaps: bool) -> Result<TrustPolicy> {
    let r = send(
        link,
        Method::GET,
        paths::CACERTS,
        None,
        Some(media_type::PKCS7_CERTS_ONLY),
        &[],
    )
    .await?;
    let cacerts = certs_only(&r.body, coaps)?;
    let registrar_chain = server_chain
        .iter()
        .map(|c| Certificate::from_der(c))
        .collect::<Result<Vec<_>, _>>()?;
    let (leaf, rest) = registrar_chain
        .split_first()
        .ok_or_else(|| anyhow!("no registrar certificate"))?;
    let domain = TrustPolicy::new(cacerts).with_time(TimeCheck::Now);
    validate_chain(leaf, rest, &domain)
        .context("the CA certificates do not validate the registrar")?;
    Ok(domain)
}

/// One full bootstrap, checked as the `pledge` binary checks it; the LDevID's serial number
/// (hex).
async fn enroll(shared: &Shared, d: &Device) -> Result<String> {
    let idevid = d.chain.first().ok_or_else(|| anyhow!("no IDevID"))?;
    let coaps = shared.transport == Transport::Coaps;
    // RFC 8995 §5.1 (cBRSKI §6.1): provisional TLS or DTLS with the IDevID.
    let provisional = Credentials {
        client: Some(ClientCert {
            chain: d.chain_der.clone(),
            key: d.key.clone(),
        }),
        server: ServerTrust::Provisional,
        source_port: 0,
    };
    let mut link = Link::open(shared.transport, &shared.registrar, &provisional, TIMEOUT).await?;
    let server_chain = link.peer_certs().to_vec();
    let server_cert = server_chain
        .first()
        .ok_or_else(|| anyhow!("registrar presented no certificate"))?;

    // §5.2: the pledge voucher-request; §5.6.1 the voucher; §5.6.2 the pin.
    let now = time::OffsetDateTime::now_utc();
    let format = if coaps { Format::Cose } else { Format::Cms };
    let pvr = build_pledge_voucher_request(
        format,
        &d.serial,
        server_cert,
        d.key.as_ref(),
        &d.chain,
        Some(now),
    )?;
    let media = format.media_type();
    let r = send(
        &mut link,
        Method::POST,
        paths::REQUEST_VOUCHER,
        Some(media),
        Some(media),
        &pvr.bytes,
    )
    .await?;
    ensure!(
        r.header("content-type").and_then(Format::from_media_type) == Some(format),
        "voucher Content-Type {:?}",
        r.header("content-type")
    );
    let mut expected = PledgeExpectations::for_request(&pvr.request)
        .with_idevid_issuer(Some(idevid_issuer(idevid)));
    expected.trusted_time = Some(now);
    let accepted = accept_voucher(format, &r.body, &shared.manufacturer, &expected)?;
    validate_registrar(&accepted.pin, &server_chain, TimeCheck::Now)?;

    // §5.7: voucher status (cBRSKI §6.5.1: CBOR over CoAP).
    let (ok, telemetry) = if coaps {
        (StatusTelemetry::success().to_cbor()?, media_type::CBOR)
    } else {
        (StatusTelemetry::success().to_json()?, media_type::JSON)
    };
    send(
        &mut link,
        Method::POST,
        paths::VOUCHER_STATUS,
        Some(telemetry),
        None,
        &ok,
    )
    .await?;

    // §5.9.1: the domain CA, which must validate the registrar's chain. Bodies are base64
    // over HTTPS (RFC 8951), DER over CoAP (RFC 9148 §4.3). A constrained pledge whose voucher
    // pins the domain's root CA asks `/crts` only if that root does not anchor its LDevID
    // (cBRSKI §6.7.1), and asks `/att` not at all (cBRSKI §6.7); the registrar here asks for
    // nothing a default CSR lacks.
    let pinned_root = if coaps {
        pinned_root_ca(&accepted.pin)
    } else {
        None
    };
    let mut domain = match &pinned_root {
        Some(root) => TrustPolicy::new(vec![root.clone()]).with_time(TimeCheck::Now),
        None => domain_ca(&mut link, &server_chain, coaps).await?,
    };
    if !coaps {
        // §5.9.2: CSR attributes; the registrar asks for P-256.
        let r = send(
            &mut link,
            Method::GET,
            paths::CSRATTRS,
            None,
            Some(media_type::CSRATTRS),
            &[],
        )
        .await?;
        CsrAttrs::from_body(&r.body)?;
    }

    // §5.9.3: a new key, its CSR, the LDevID.
    let key = SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256)?;
    let csr = build_csr(
        idevid.tbs_certificate().subject(),
        &key,
        &CsrParams::default(),
    )?;
    let body = if coaps {
        csr
    } else {
        est::encode_base64_body(&csr).into_bytes()
    };
    let r = send(
        &mut link,
        Method::POST,
        paths::SIMPLE_ENROLL,
        Some(media_type::PKCS10),
        Some(media_type::PKCS7_CERTS_ONLY),
        &body,
    )
    .await?;
    let mut issued = certs_only(&r.body, coaps)?;
    let i = issued
        .iter()
        .position(|c| {
            c.tbs_certificate()
                .subject_public_key_info()
                .to_der()
                .is_ok_and(|spki| spki == key.public_key_spki())
        })
        .ok_or_else(|| anyhow!("the issued certificate is not for the new key"))?;
    let ldevid = issued.remove(i);
    if pinned_root.is_some() && validate_chain(&ldevid, &issued, &domain).is_err() {
        domain = domain_ca(&mut link, &server_chain, coaps).await?;
    }
    validate_chain(&ldevid, &issued, &domain)
        .context("the LDevID does not validate to the domain CA")?;
    drop(link);
    let ldevid_serial = hex::encode_upper(ldevid.tbs_certificate().serial_number().as_bytes());

    // §5.9.4: success reported on a new connection with the LDevID.
    let anchored = Credentials {
        client: Some(ClientCert {
            chain: vec![ldevid.to_der()?],
            key: Arc::new(key) as Arc<dyn Signer>,
        }),
        server: ServerTrust::Anchored(domain.with_required_eku(ID_KP_CMC_RA)),
        source_port: 0,
    };
    let mut link = Link::open(shared.transport, &shared.registrar, &anchored, TIMEOUT).await?;
    send(
        &mut link,
        Method::POST,
        paths::ENROLL_STATUS,
        Some(telemetry),
        None,
        &ok,
    )
    .await?;
    Ok(ldevid_serial)
}

/// The sum of `f` over `pids` (`None` if any is unknown).
fn sum<T: std::iter::Sum>(pids: &[u32], f: impl Fn(u32) -> Option<T>) -> Option<T> {
    pids.iter().map(|&p| f(p)).sum()
}

/// Wait until `faults.after` enrollments are done (or the load is over), then inject the
/// faults; what was done, with the process ID of each instance killed.
fn inject(
    suite: &Suite,
    shared: &Shared,
    faults: &Faults,
    pledges: usize,
) -> Result<Vec<(String, Option<u32>)>> {
    let after = faults.after.min(pledges.saturating_sub(1));
    while shared.done.load(Ordering::Acquire) < after {
        std::thread::sleep(Duration::from_millis(10));
    }
    if shared.done.load(Ordering::Acquire) == usize::MAX {
        return Ok(Vec::new());
    }
    let mut done = Vec::new();
    if faults.kill_instances {
        for name in ["registrar", "masa"] {
            let last = suite
                .instances
                .iter()
                .rev()
                .find(|d| d.name == name)
                .ok_or_else(|| anyhow!("no second {name} instance to kill"))?;
            crate::loopback::signal(&last.child, "KILL")?;
            done.push((
                format!(
                    "SIGKILL {name} instance (pid {}) after {after} enrollments",
                    last.child.id()
                ),
                Some(last.child.id()),
            ));
        }
    }
    if faults.restart_database {
        let pg = suite
            .pg
            .as_ref()
            .ok_or_else(|| anyhow!("no PostgreSQL server to restart"))?;
        pg.stop().map_err(|e| anyhow!(e))?;
        std::thread::sleep(Duration::from_secs(3));
        pg.restart().map_err(|e| anyhow!(e))?;
        done.push((
            format!("PostgreSQL stopped for 3 s after {after} enrollments"),
            None,
        ));
    }
    Ok(done)
}

/// What the database holds against what the pledges were told (issue 15): every LDevID a
/// pledge received is in `pg_dump` of the registrar's database, no two pledges were told the
/// same serial number, and no MASA audit entry lacks its voucher.
fn consistency(
    pg: &brski_service::pg_server::PgServer,
    issued: &[(String, String)],
) -> Result<Value> {
    let dump = pg.dump("registrar").map_err(|e| anyhow!(e))?;
    // The rows of `COPY public.certificates (cert_serial, ...) FROM stdin;` up to `\.`.
    let stored: std::collections::HashSet<&str> = dump
        .lines()
        .skip_while(|l| !l.starts_with("COPY public.certificates (cert_serial,"))
        .skip(1)
        .take_while(|l| *l != "\\.")
        .filter_map(|l| l.split('\t').next())
        .collect();
    let told: std::collections::HashSet<&str> = issued.iter().map(|(_, s)| s.as_str()).collect();
    let missing = told.iter().filter(|s| !stored.contains(*s)).count();
    let q = |db: &str, sql: &str| -> Result<u64> {
        pg.psql(db, sql)
            .map_err(|e| anyhow!(e))?
            .parse()
            .context("a count")
    };
    Ok(json!({
        "ldevids_told": issued.len(),
        "ldevids_told_twice": issued.len() - told.len(),
        "ldevids_told_missing_from_dump": missing,
        "registrar_certificates": q("registrar", "SELECT COUNT(*) FROM certificates")?,
        "masa_vouchers": q("masa", "SELECT COUNT(*) FROM vouchers")?,
        "masa_audit_entries_without_voucher": q(
            "masa",
            "SELECT COUNT(*) FROM audit_log a LEFT JOIN vouchers v ON v.id = a.voucher_id \
             WHERE v.id IS NULL",
        )?,
    }))
}

/// ECDSA P-256 verifications per second on one thread of this host now, over `for_at_least`:
/// a yardstick for the host's speed at the time of a run, which varies on shared machines.
pub fn p256_verifies_per_s(for_at_least: Duration) -> Result<f64> {
    let key = SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256)?;
    let message = b"testbed bench host speed";
    let signature = key.sign(message)?;
    let oid = const_oid::db::rfc5912::ECDSA_WITH_SHA_256;
    let start = Instant::now();
    let mut n = 0u32;
    while n == 0 || start.elapsed() < for_at_least {
        brski_common::keys::verify_signature(key.public_key_spki(), oid, message, &signature)?;
        n += 1;
    }
    Ok(f64::from(n) / start.elapsed().as_secs_f64())
}

/// VmHWM (peak resident set) of a live process, in KiB, from `/proc/<pid>/status`.
pub fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system, all threads) a live process has used, in milliseconds, from
/// `/proc/<pid>/stat` (clock ticks of 10 ms, the Linux USER_HZ).
pub fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are space separated.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of proc(5); utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10.0)
}

/// CPU time in milliseconds of a process and of its children, live (`/proc/*/stat` naming
/// it as parent) or ended and waited for (cutime, cstime): PostgreSQL's server processes.
pub fn cpu_ms_with_children(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // cutime and cstime are fields 16 and 17 of proc(5).
    let waited: f64 = fields.get(13)?.parse::<f64>().ok()? + fields.get(14)?.parse::<f64>().ok()?;
    let live: f64 = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| parent(child) == Some(pid))
        .filter_map(cpu_ms)
        .sum();
    Some(cpu_ms(pid)? + waited * 10.0 + live)
}

/// The parent process ID of `pid`.
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Context switches (voluntary and involuntary, all threads) of a live process, from
/// `/proc/<pid>/task/*/status`; far steadier between runs than times on a shared machine.
pub fn context_switches(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        total += status
            .lines()
            .filter_map(|l| {
                l.strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            })
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(total)
}

/// Steal and total ticks of all CPUs from `/proc/stat` (the time a virtual machine's CPUs
/// waited for the host: figures of a run with much steal are not comparable).
pub fn steal_and_total_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user]
    let steal = *ticks.get(7)?;
    let total = ticks.iter().take(8).sum();
    Some((steal, total))
}

/// Run `pledge bootstrap` once: wall time, peak RSS (from `/usr/bin/time -v` when present,
/// else VmHWM sampled while it runs), and whether it enrolled.
fn measure_pledge(suite: &Suite, config: &Path) -> Result<Value> {
    let gnu_time = Path::new("/usr/bin/time");
    let mut cmd = if gnu_time.is_file() {
        let mut c = Command::new(gnu_time);
        c.arg("-v").arg(&suite.bin.pledge);
        c
    } else {
        Command::new(&suite.bin.pledge)
    };
    cmd.arg("bootstrap")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let child = cmd.spawn().context("starting pledge bootstrap")?;
    let sampled = if gnu_time.is_file() {
        None
    } else {
        Some(sample_hwm(child.id(), start))
    };
    let out = child.wait_with_output()?;
    let wall = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rss = match sampled {
        Some(h) => h.join().ok().flatten(),
        None => stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
            .and_then(|v| v.trim().parse::<u64>().ok()),
    };
    let error = (!out.status.success()).then(|| {
        stderr
            .lines()
            .find(|l| l.starts_with("pledge:"))
            .unwrap_or("failed")
            .to_string()
    });
    Ok(json!({
        "ok": out.status.success(),
        "wall_ms": round(wall.as_secs_f64() * 1000.0, 1),
        "peak_rss_kb": rss,
        "error": error,
    }))
}

fn sample_hwm(pid: u32, start: Instant) -> std::thread::JoinHandle<Option<u64>> {
    std::thread::spawn(move || {
        let mut peak = None;
        while start.elapsed() < Duration::from_secs(120) {
            match vm_hwm_kb(pid) {
                Some(v) => peak = Some(peak.map_or(v, |p: u64| p.max(v))),
                None => break,
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        peak
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.90), 90.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn cpu_time_of_this_process_grows_when_it_works() {
        let before = cpu_ms(std::process::id()).expect("stat");
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = cpu_ms(std::process::id()).expect("stat");
        assert!(after - before >= 20.0, "{before} -> {after}");
    }

    #[test]
    fn context_switches_of_this_process_grow_when_it_sleeps() {
        let before = context_switches(std::process::id()).expect("status");
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(2));
        }
        let after = context_switches(std::process::id()).expect("status");
        assert!(after >= before + 5, "{before} -> {after}");
    }

    #[test]
    fn steal_is_part_of_the_total() {
        let (steal, total) = steal_and_total_ticks().expect("/proc/stat");
        assert!(total > 0 && steal <= total, "{steal} of {total}");
    }

    #[test]
    fn host_speed_counts_verifications_that_succeed() {
        let rate = p256_verifies_per_s(Duration::from_millis(20)).expect("verifies");
        assert!(rate > 0.0);
    }

    #[test]
    fn vm_hwm_of_this_process_is_positive() {
        let kb = vm_hwm_kb(std::process::id()).expect("VmHWM");
        assert!(kb > 0);
    }
}
