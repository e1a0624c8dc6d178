//! `testbed`: the lab in which the whole BRSKI flow runs: the loopback demo (and, later, the
//! network-namespace lab and the load generator).
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
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
    },
    /// Load benchmark: real `masa` and `registrar` on loopback, an in-process load generator
    /// acting as N pledges (full RFC 8995 flow each), then one `pledge bootstrap` measured.
    /// Prints one JSON object.
    Bench {
        /// How many pledges enroll.
        #[arg(long, default_value_t = 1000)]
        pledges: usize,
        /// How many pledges enroll at the same time.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Worker threads of the load generator (default: number of CPUs).
        #[arg(long)]
        threads: Option<usize>,
        /// Do not measure a `pledge bootstrap` process.
        #[arg(long)]
        skip_pledge: bool,
        /// Keep the working directory (keys, databases, daemon logs); its path is reported.
        #[arg(long)]
        keep: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { pledges, keep } => demo(pledges, keep),
        Command::Bench {
            pledges,
            concurrency,
            threads,
            skip_pledge,
            keep,
        } => testbed::bench::bench(&testbed::bench::BenchOptions {
            pledges,
            concurrency,
            threads,
            skip_pledge,
            keep,
        })
        .and_then(|report| {
            println!("{report}");
            let failures = report["failures"].as_u64().unwrap_or(u64::MAX);
            if failures > 0 || report["daemons_stopped_cleanly"] != true {
                bail!("{failures} failures (see failure_reasons)");
            }
            if report["pledge_bootstrap"]["ok"] == false {
                bail!("pledge bootstrap failed");
            }
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn demo(pledges: usize, keep: bool) -> Result<()> {
    if pledges == 0 {
        bail!("--pledges must be at least 1");
    }
    let bin = Binaries::locate()?;
    let tmp = tempfile::Builder::new().prefix("brski-demo-").tempdir()?;
    let dir = tmp.path().to_path_buf();
    let mut suite = Suite::create(bin, &dir, &SuiteOptions::default())?;
    suite.start_masa()?;
    suite.start_registrar()?;
    println!(
        "manufacturer: MASA on https://{}   domain: registrar on {}",
        suite.masa_addr,
        suite.registrar_url()
    );

    let serials: Vec<String> = (1..=pledges).map(|i| format!("DEMO-{i:04}")).collect();
    let mut configs = Vec::new();
    for s in &serials {
        configs.push(suite.mint(s)?);
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
        println!(
            "{}  voucher: {}  LDevID: subject \"{}\" issuer \"{}\"  {:.2}s",
            e.serial,
            e.assertion,
            e.ldevid_subject,
            e.ldevid_issuer,
            took.as_secs_f64()
        );
    }
    let stopped = suite.stop()?;
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
