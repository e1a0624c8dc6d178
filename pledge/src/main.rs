//! `pledge`: Pledge: zero-touch bootstrap of a device holding an IEEE 802.1AR IDevID (RFC 8995).
#![forbid(unsafe_code)]

mod bootstrap;
mod daemon;
mod discovery;
mod enroll;
mod error;
mod est_client;
mod identity;
mod session;
mod state;
mod timing;
mod tpm;

use brski_common::cli::{GenerateArgs, InspectArgs};
use clap::{Args, CommandFactory, Parser, Subcommand};
use error::Failure;
use identity::Identity;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "pledge",
    version,
    about = "Pledge: zero-touch bootstrap of a device holding an IEEE 802.1AR IDevID (RFC 8995)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Common {
    /// The pledge's configuration (`pledge.toml`, as written by `masa mint`).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The registrar's URL (`https://HOST:PORT`), overriding `registrar` in the configuration.
    #[arg(long, value_name = "URL")]
    registrar: Option<String>,
    /// Give up on a request the registrar keeps answering with 202 after this many seconds
    /// (RFC 8995 §5.6: 4 days).
    #[arg(long, value_name = "SECS", default_value_t = timing::DEFAULT_MAX_WAIT.as_secs())]
    max_wait: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One full bootstrap: voucher, then EST enrollment. Exit 0 when enrolled (or already
    /// enrolled), 2 when the registrar refused or the voucher or pin check failed, 1 otherwise.
    Bootstrap(Common),
    /// Daemon: bootstrap when not enrolled (retrying with backoff), then renew the LDevID
    /// before it expires.
    Run {
        #[command(flatten)]
        common: Common,
        /// Exit 0 once enrolled instead of staying to renew.
        #[arg(long)]
        once: bool,
        /// Renew when this fraction of the LDevID's lifetime has passed (0 < FRACTION < 1).
        #[arg(long, value_name = "FRACTION", default_value_t = 2.0 / 3.0, value_parser = parse_fraction)]
        renew_at: f64,
    },
    /// Check every key and file of pledge.toml; one line per problem, non-zero exit when any.
    /// `bootstrap` and `run` refuse to start on the same problems, in the same words.
    CheckConfig {
        /// The pledge's configuration (`pledge.toml`).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// A plain EST client (RFC 7030) for hosts that already trust their EST server: no
    /// voucher. Exit 0 on success, 2 when the server refused, 1 otherwise.
    Est {
        #[command(subcommand)]
        op: est_client::EstOp,
    },
    /// Decode an artifact (voucher, voucher-request, certificate, CSR, EST body, telemetry) to JSON.
    Inspect(InspectArgs),
    /// Write the man pages or a shell's completion script (for packagers).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if f > 0.0 && f < 1.0 {
        Ok(f)
    } else {
        Err(format!("{s} is not strictly between 0 and 1"))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Internal(format!("cannot start the runtime: {e}")))
}

fn bootstrap_options(common: &Common) -> bootstrap::Options {
    bootstrap::Options {
        max_wait: Duration::from_secs(common.max_wait),
    }
}

fn bootstrap_command(common: &Common) -> Result<String, Failure> {
    let id = Identity::load(&common.config, common.registrar.as_deref())?;
    let options = bootstrap_options(common);
    if id.discover {
        // No registrar configured: the daemon's discovery loop, once (RFC 8995 §4.1).
        let once = daemon::Options {
            once: true,
            renew_at: 0.5,
            bootstrap: options,
        };
        runtime()?.block_on(daemon::run(&id, &once))?;
        return Ok(format!("serial {}: done", id.serial));
    }
    match runtime()?.block_on(bootstrap::bootstrap(&id, &options))? {
        bootstrap::Outcome::Enrolled(summary) => Ok(summary.to_string()),
        bootstrap::Outcome::AlreadyEnrolled(e) => {
            let (subject, issuer, not_after) = bootstrap::describe(&e.ldevid);
            Ok(format!(
                "already enrolled: serial {}, registrar {}, LDevID subject \"{subject}\" issued by \"{issuer}\", valid until {not_after}",
                id.serial, e.state.registrar
            ))
        }
    }
}

fn run_command(common: &Common, once: bool, renew_at: f64) -> Result<(), Failure> {
    let id = Identity::load(&common.config, common.registrar.as_deref())?;
    let options = daemon::Options {
        once,
        renew_at,
        bootstrap: bootstrap_options(common),
    };
    runtime()?.block_on(daemon::run(&id, &options))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version are not errors; a bad command line is a configuration error.
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Inspect(args) => {
            return print_or_fail(args.run());
        }
        Command::Generate(args) => {
            return print_or_fail(args.run(Cli::command()));
        }
        Command::CheckConfig { config } => {
            let problems = identity::problems(&config);
            for p in &problems {
                eprintln!("pledge: check-config: {p}");
            }
            return if problems.is_empty() {
                println!("{}: OK", config.display());
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "pledge: {}: {} problem(s) found",
                    config.display(),
                    problems.len()
                );
                ExitCode::FAILURE
            };
        }
        Command::Est { op } => {
            brski_service::logging::init("pledge");
            runtime().and_then(|rt| {
                rt.block_on(est_client::run(&op))
                    .map(|out| println!("{out}"))
            })
        }
        Command::Bootstrap(common) => {
            brski_service::logging::init("pledge");
            bootstrap_command(&common).map(|line| println!("{line}"))
        }
        Command::Run {
            common,
            once,
            renew_at,
        } => {
            brski_service::logging::init("pledge");
            run_command(&common, once, renew_at)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("pledge: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

/// A TPM handle in hex or decimal (shared with `masa mint`).
use brski_common::cli::parse_handle;

/// The outcome of a subcommand that needs no configuration: its output, or one line on stderr.
fn print_or_fail(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("pledge: {reason}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renew_at_must_be_a_proper_fraction() {
        assert_eq!(parse_fraction("0.5"), Ok(0.5));
        for bad in ["0", "1", "1.5", "-0.1", "x", "NaN"] {
            assert!(parse_fraction(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn command_line_contract() {
        let cli = Cli::try_parse_from([
            "pledge",
            "bootstrap",
            "--config",
            "p/pledge.toml",
            "--registrar",
            "https://r:8443",
        ])
        .expect("bootstrap");
        assert!(matches!(cli.command, Command::Bootstrap(ref c)
            if c.registrar.as_deref() == Some("https://r:8443")
            && c.max_wait == timing::DEFAULT_MAX_WAIT.as_secs()));
        let cli = Cli::try_parse_from([
            "pledge",
            "run",
            "--config",
            "x",
            "--once",
            "--renew-at",
            "0.25",
            "--max-wait",
            "5",
        ])
        .expect("run");
        assert!(
            matches!(cli.command, Command::Run { once: true, renew_at, ref common }
            if renew_at == 0.25 && common.max_wait == 5)
        );
        assert!(Cli::try_parse_from(["pledge", "bootstrap"]).is_err());
    }
}
