//! `pledge`: Pledge: zero-touch bootstrap of a device holding an IEEE 802.1AR IDevID (RFC 8995).
#![forbid(unsafe_code)]

use brski_common::cli::InspectArgs;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
            eprintln!("pledge: {reason}");
            ExitCode::FAILURE
        }
    }
}
