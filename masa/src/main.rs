//! `masa`: MASA: the manufacturer's voucher signing service (RFC 8995 §5.5) and factory tooling.
#![forbid(unsafe_code)]

use brski_common::cli::InspectArgs;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "masa",
    version,
    about = "MASA: the manufacturer's voucher signing service (RFC 8995 §5.5) and factory tooling"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode an artifact (voucher, voucher-request, certificate, CSR, EST body, telemetry) to JSON.
    Inspect(InspectArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => args.run().map(|out| println!("{out}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("masa: {reason}");
            ExitCode::FAILURE
        }
    }
}
