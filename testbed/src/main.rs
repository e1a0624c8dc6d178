//! `testbed`: the lab in which the whole BRSKI flow runs: the loopback demo (and, later, the
//! network-namespace lab and the load generator).
#![forbid(unsafe_code)]

/// mimalloc: the request path allocates and frees many small buffers on every worker
/// thread; glibc's allocator spent ~9 % of the CPU of an enrollment on that (`testbed bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, Result, bail};
use brski_service::link::Transport;
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Instant;
use testbed::loopback::{Binaries, Suite, SuiteOptions, read_enrollment};

#[derive(Debug, Parser)]
#[command(
    name = "testbed",
    version,
    about = "BRSKI testbed: the whole flow with the real daemons"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything on loopback, no root: a manufacturer and a domain in a temporary directory,
    /// `masa serve` and `registrar serve` as child processes, and N pledges minted and
    /// bootstrapped with the real `pledge` binary.
    Demo {
        /// How many pledges to enroll.
        #[arg(long, default_value_t = 3)]
        pledges: usize,
        /// Keep the working directory (keys, databases, logs) and print its path.
        #[arg(long)]
        keep: bool,
        /// Give every pledge its own software TPM (swtpm, started and stopped here): the
        /// IDevID key is minted inside it and the LDevID key generated there (build with
        /// --features tpm).
        #[arg(long)]
        tpm: bool,
        /// Attested enrollment (with --tpm): each software TPM gets a simulated measured boot,
        /// the registrar requires TPM evidence (the IAK certifies the LDevID key and quotes
        /// PCRs 0-5 and 7 against its reference values), and `registrar pledges list` is shown.
        #[arg(long, requires = "tpm")]
        attest: bool,
        /// The pledges' transport: `https` (RFC 8995) or `coaps` (EST over CoAP and DTLS,
        /// RFC 9148 and cBRSKI, with COSE vouchers).
        #[arg(long, default_value = "https", value_parser = ["https", "coaps"])]
        transport: String,
    },
    /// Load benchmark: real `masa` and `registrar` on loopback, an in-process load generator
    /// acting as N pledges (full RFC 8995 flow each), then one `pledge bootstrap` measured.
    /// Prints one JSON object per transport, one per line. While stderr is a terminal, a
    /// progress line there shows enrollments so far, the current rate, failures and the time.
    Bench {
        /// How many pledges enroll.
        #[arg(long, default_value_t = 1000)]
        pledges: usize,
        /// How many pledges enroll at the same time; several (`1,8,64`) run one after the
        /// other, each on fresh daemons.
        #[arg(long, default_value = "64", value_delimiter = ',')]
        concurrency: Vec<usize>,
        /// Load-generator threads, each with its own single-threaded runtime (default: number
        /// of CPUs).
        #[arg(long)]
        threads: Option<usize>,
        /// Do not measure a `pledge bootstrap` process.
        #[arg(long)]
        skip_pledge: bool,
        /// Keep the working directory (keys, databases, daemon logs); its path is reported.
        #[arg(long)]
        keep: bool,
        /// The pledges' transport; several (`https,coaps`) run one after the other with the
        /// same options, each on fresh daemons.
        #[arg(long, default_value = "https", value_delimiter = ',', value_parser = ["https", "coaps"])]
        transport: Vec<String>,
        /// Where the MASA and the registrar keep their state: `sqlite` (their files) or
        /// `postgres` (one PostgreSQL server started for the run); several (`sqlite,postgres`)
        /// run one after the other, each with every transport.
        #[arg(long, default_value = "sqlite", value_delimiter = ',', value_parser = ["sqlite", "postgres"])]
        store: Vec<String>,
        /// Instances of each daemon on the PostgreSQL runs over HTTPS, behind HAProxy (mode
        /// tcp, health-checked); the SQLite and CoAPS runs keep one instance each.
        #[arg(long, default_value_t = 1)]
        instances: usize,
        /// How many times a pledge starts its bootstrap again after a failure, a second apart.
        #[arg(long, default_value_t = 0)]
        retries: usize,
        /// SIGKILL the last MASA and registrar instance once this many enrollments are done
        /// (with --instances 2 or more).
        #[arg(long)]
        kill_after: Option<usize>,
        /// Stop PostgreSQL for 3 s once this many enrollments are done (postgres runs).
        #[arg(long)]
        restart_db_after: Option<usize>,
        /// Draw the run's latencies into this SVG file: each enrollment's latency against when
        /// it started (failures in red), and their distribution with p50 and p99. Several runs
        /// (lists in --store, --transport, --concurrency) write one file each, the values that
        /// vary added before `.svg`: `lat.svg` becomes `lat-coaps-c8.svg` and so on.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<std::path::PathBuf>,
    },
    /// The network-namespace lab (root): pledges with only IPv6 link-local addresses find a
    /// join proxy and enroll through it.
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
}

#[derive(Debug, Subcommand)]
enum LabAction {
    /// Build the namespaces and start MASA, registrar, join proxy and the pledges; leave them
    /// running (logs in the run directory).
    Up {
        #[arg(long, default_value_t = 5)]
        pledges: usize,
    },
    /// Build the lab, run a scenario, print a verdict per pledge and overall, tear down; exit
    /// 0 only on a pass.
    Run {
        /// happy, masa-outage, rogue-registrar, link-flap, registrar-restart,
        /// constrained-stateful or constrained-stateless.
        #[arg(long)]
        scenario: String,
        #[arg(long, default_value_t = 5)]
        pledges: usize,
        /// Give pledge 1 a wrong manufacturer trust anchor (the verdict must fail).
        #[arg(long)]
        broken_pledge: bool,
        /// `coaps`: constrained pledges behind the stateful constrained join proxy.
        #[arg(long, default_value = "https", value_parser = ["https", "coaps"])]
        transport: String,
    },
    /// Remove every namespace and process of the lab (also after a crash of `lab up`).
    Down,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo {
            pledges,
            keep,
            tpm,
            attest,
            transport,
        } => demo(pledges, keep, tpm, attest, &transport),
        Command::Lab { action } => lab(action),
        Command::Bench {
            pledges,
            concurrency,
            threads,
            skip_pledge,
            keep,
            transport,
            store,
            instances,
            retries,
            kill_after,
            restart_db_after,
            plot,
        } => {
            // Which values vary between the runs: they name each run's plot.
            let several = [store.len(), transport.len(), concurrency.len()].map(|n| n > 1);
            store
                .iter()
                .flat_map(|s| transport.iter().map(move |t| (s, t)))
                .flat_map(|(s, t)| concurrency.iter().map(move |&c| (s, t, c)))
                .try_for_each(|(store, name, concurrency)| {
                    let plot = plot.as_deref().map(|base| {
                        let parts = [store.clone(), name.clone(), format!("c{concurrency}")];
                        let parts: Vec<String> = parts
                            .into_iter()
                            .zip(several)
                            .filter_map(|(part, varies)| varies.then_some(part))
                            .collect();
                        testbed::plot::run_path(base, &parts)
                    });
                    let transport = Transport::parse(name).ok_or_else(|| {
                        anyhow::anyhow!("transport {name:?} is not one of https, coaps")
                    })?;
                    let store = match store.as_str() {
                        "postgres" => testbed::loopback::StoreKind::Postgres,
                        _ => testbed::loopback::StoreKind::Sqlite,
                    };
                    let postgres = store == testbed::loopback::StoreKind::Postgres;
                    let clustered = postgres && transport == Transport::Https;
                    let report = testbed::bench::bench(&testbed::bench::BenchOptions {
                        pledges,
                        concurrency,
                        threads,
                        skip_pledge,
                        keep,
                        transport,
                        store,
                        instances: if clustered { instances } else { 1 },
                        retries,
                        faults: testbed::bench::Faults {
                            after: kill_after.or(restart_db_after).unwrap_or(0),
                            kill_instances: clustered && instances > 1 && kill_after.is_some(),
                            restart_database: postgres && restart_db_after.is_some(),
                        },
                        plot,
                    })?;
                    println!("{report}");
                    let failures = report["failures"].as_u64().unwrap_or(u64::MAX);
                    if failures > 0 || report["daemons_stopped_cleanly"] != true {
                        bail!("{name}: {failures} failures (see failure_reasons)");
                    }
                    let c = &report["consistency"];
                    if !c.is_null()
                        && (c["ldevids_told_missing_from_dump"] != 0
                            || c["ldevids_told_twice"] != 0
                            || c["masa_audit_entries_without_voucher"] != 0)
                    {
                        bail!("{name}: the database does not hold what the pledges were told: {c}");
                    }
                    if report["pledge_bootstrap"]["ok"] == false {
                        bail!("{name}: pledge bootstrap failed");
                    }
                    Ok(())
                })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn lab(action: LabAction) -> Result<()> {
    use testbed::lab;
    match action {
        LabAction::Up { pledges } => {
            let mut l = lab::Lab::up(
                Binaries::locate()?,
                lab::LabOptions {
                    pledges,
                    rogue: false,
                    broken_pledge: false,
                    constrained: false,
                    stateless: false,
                },
            )?;
            l.start_pledges()?;
            println!(
                "lab up: {pledges} pledges started; logs in {}; `testbed lab down` removes it",
                l.dir.join("logs").display()
            );
            Ok(())
        }
        LabAction::Run {
            scenario,
            pledges,
            broken_pledge,
            transport,
        } => {
            let coaps = transport == "coaps";
            if lab::scenario::run(
                Binaries::locate()?,
                &scenario,
                pledges,
                broken_pledge,
                coaps,
            )? {
                Ok(())
            } else {
                bail!("scenario {scenario} failed")
            }
        }
        LabAction::Down => {
            let removed = lab::net::teardown(std::time::Duration::from_secs(10))?;
            let dir = lab::run_dir();
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            println!("lab down: {} namespaces removed", removed.len());
            Ok(())
        }
    }
}

/// The pledges' software TPMs, one per pledge, stopped when dropped.
#[cfg(feature = "tpm")]
type Tpms = Vec<brski_common::keys::tpm::swtpm::Swtpm>;
#[cfg(not(feature = "tpm"))]
type Tpms = Vec<()>;

/// Mint `serial`, into a fresh swtpm of its own when `tpm`, which then goes through the
/// testbed's simulated measured boot when `attest`.
#[cfg(feature = "tpm")]
fn mint_demo_pledge(
    suite: &Suite,
    serial: &str,
    tpm: bool,
    attest: bool,
    tpms: &mut Tpms,
) -> Result<std::path::PathBuf> {
    if !tpm {
        return suite.mint(serial);
    }
    let sim = testbed::loopback::start_swtpm(&suite.dir.join("swtpm").join(serial))?;
    let config = suite.mint_tpm(serial, &sim.tcti())?;
    if attest {
        testbed::loopback::simulate_boot(&sim.config())?;
    }
    tpms.push(sim);
    Ok(config)
}

#[cfg(not(feature = "tpm"))]
fn mint_demo_pledge(
    suite: &Suite,
    serial: &str,
    tpm: bool,
    _attest: bool,
    _tpms: &mut Tpms,
) -> Result<std::path::PathBuf> {
    if tpm {
        bail!("--tpm: this testbed was built without TPM support (build with --features tpm)");
    }
    suite.mint(serial)
}

fn demo(pledges: usize, keep: bool, tpm: bool, attest: bool, transport: &str) -> Result<()> {
    if pledges == 0 {
        bail!("--pledges must be at least 1");
    }
    if tpm && cfg!(not(feature = "tpm")) {
        bail!("--tpm: this testbed was built without TPM support (build with --features tpm)");
    }
    let bin = Binaries::locate()?;
    let tmp = tempfile::Builder::new().prefix("brski-demo-").tempdir()?;
    let dir = tmp.path().to_path_buf();
    let options = SuiteOptions {
        transport: transport.to_string(),
        ..SuiteOptions::default()
    };
    let mut suite = Suite::create(bin, &dir, &options)?;
    if attest {
        suite.set_attestation(
            "require",
            Some(&testbed::loopback::simulated_boot_reference()),
        )?;
    }
    suite.start_masa()?;
    suite.start_registrar()?;
    println!(
        "manufacturer: MASA on https://{}   domain: registrar on {}",
        suite.masa_addr,
        suite.registrar_url()
    );

    let serials: Vec<String> = (1..=pledges).map(|i| format!("DEMO-{i:04}")).collect();
    let mut configs = Vec::new();
    let mut tpms = Tpms::new();
    for s in &serials {
        configs.push(mint_demo_pledge(&suite, s, tpm, attest, &mut tpms)?);
    }
    if tpm {
        println!("{} software TPMs started, one per pledge", tpms.len());
    }
    if attest {
        println!(
            "attested enrollment required: TPM2_Certify of the LDevID key and TPM2_Quote of PCRs \
             0-5 and 7 by each pledge's IAK"
        );
    }
    // Bootstrap all pledges at once, each with the real `pledge` binary.
    let mut running = Vec::new();
    for (serial, config) in serials.iter().zip(&configs) {
        let started = Instant::now();
        let child = suite
            .pledge("bootstrap", config)?
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("starting pledge {serial}"))?;
        running.push((serial, config, started, child));
    }
    let mut failures = 0;
    for (serial, config, started, child) in running {
        let out = child.wait_with_output()?;
        let took = started.elapsed();
        if !out.status.success() {
            failures += 1;
            println!(
                "{serial}  FAILED after {:.2}s: {}",
                took.as_secs_f64(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            continue;
        }
        let state_dir = config.parent().unwrap_or(&dir);
        let e = read_enrollment(state_dir, serial)?;
        let keys = match e.ldevid_tpm_handle {
            Some(handle) => format!("  keys: TPM (LDevID at {handle:#010x})"),
            None if tpm => {
                failures += 1;
                "  FAILED: the LDevID key is not in the TPM".into()
            }
            None => String::new(),
        };
        println!(
            "{}  voucher: {}  LDevID: subject \"{}\" issuer \"{}\"{keys}  {:.2}s",
            e.serial,
            e.assertion,
            e.ldevid_subject,
            e.ldevid_issuer,
            took.as_secs_f64()
        );
    }
    if attest {
        // The registrar's record of each appraisal, as an operator sees it.
        let out = testbed::loopback::run(
            std::process::Command::new(&suite.bin.registrar)
                .args(["pledges", "list", "--config"])
                .arg(suite.registrar_config()),
        )?;
        println!(
            "registrar pledges list:\n{}",
            String::from_utf8_lossy(&out.stdout).trim_end()
        );
    }
    let stopped = suite.stop()?;
    drop(tpms);
    for (name, status) in stopped {
        if !status.success() {
            failures += 1;
            println!("{name} exited with {status} on SIGTERM");
        }
    }
    if keep {
        let kept = tmp.keep();
        println!("working directory kept: {}", kept.display());
    }
    if failures > 0 {
        bail!("{failures} of {pledges} pledges or daemons failed");
    }
    println!("{pledges} pledges enrolled");
    Ok(())
}
