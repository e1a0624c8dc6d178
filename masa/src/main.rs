//! `masa`: MASA: the manufacturer's voucher signing service (RFC 8995 §5.5) and factory tooling.
#![forbid(unsafe_code)]

/// mimalloc: the request path allocates and frees many small buffers on every worker
/// thread; glibc's allocator spent ~9 % of the CPU of an enrollment on that (`testbed bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod config;
mod db;
mod error;
mod factory;
mod media;
mod pg;
mod server;
mod store;

use brski_common::cli::{GenerateArgs, InspectArgs};
use clap::{Args, CommandFactory, Parser, Subcommand};
use config::Ownership;
use error::MasaError;
use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// Create a MASA: vendor CA, voucher signer, TLS certificate, masa.toml and the database.
    Init(InitArgs),
    /// Serve requestvoucher and requestauditlog over HTTPS until SIGTERM.
    Serve(ConfigArg),
    /// Factory: issue an IDevID for a serial and write a pledge directory with pledge.toml.
    Mint(MintArgs),
    /// Factory for test fleets: mint COUNT IDevIDs into one PEM bundle (manufacturer CA, then
    /// certificate and key of each device) and record every device.
    MintBulk(MintBulkArgs),
    /// Record that a device was sold to the domain of a CA (for `ownership = "claimed"`).
    Claim(ClaimArgs),
    /// Forget the first owner of a device (for `ownership = "first-owner"`).
    Release(SerialArgs),
    /// Print the audit log of a device as RFC 8995 §5.8.1 JSON.
    AuditLog(AuditLogArgs),
    /// Decode an artifact (voucher, voucher-request, certificate, CSR, EST body, telemetry) to JSON.
    Inspect(InspectArgs),
    /// Check every key and file of masa.toml; one line per problem, non-zero exit when any.
    CheckConfig(ConfigArg),
    /// Write the man pages or a shell's completion script (for packagers).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Directory to create the MASA in.
    #[arg(long)]
    dir: PathBuf,
    /// Host name (or IP address) of the MASA, for its TLS certificate and the MASA URL.
    #[arg(long, default_value = "localhost")]
    name: String,
    /// HTTPS listen address.
    #[arg(long, default_value = config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Prometheus metrics listen address (plain HTTP, GET /metrics), or "off".
    #[arg(long, default_value = config::DEFAULT_METRICS_LISTEN)]
    metrics_listen: String,
    /// MASA URL put into IDevIDs (default: HOST:PORT from --name and the --listen port).
    #[arg(long)]
    masa_url: Option<String>,
    /// Ownership policy.
    #[arg(long, value_enum, default_value_t = Ownership::LogOnly)]
    ownership: Ownership,
}

#[derive(Debug, Args)]
struct ConfigArg {
    /// The MASA's masa.toml.
    #[arg(long)]
    config: PathBuf,
}

#[derive(Debug, Args)]
struct MintArgs {
    /// The MASA's masa.toml.
    #[arg(long)]
    config: PathBuf,
    /// The device serial number (IDevID subject serialNumber).
    #[arg(long)]
    serial: String,
    /// Pledge directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Registrar URL to put into pledge.toml.
    #[arg(long)]
    registrar: Option<String>,
    /// Make the IDevID key inside the TPM at this TCTI (`device:/dev/tpmrm0`,
    /// `swtpm:host=127.0.0.1,port=2321`) instead of a key file (build with --features tpm).
    #[arg(long, value_name = "TCTI")]
    tpm: Option<String>,
    /// Persistent handle for the TPM IDevID key.
    #[arg(long, value_name = "HANDLE", default_value = "0x81020000", value_parser = brski_common::cli::parse_handle, requires = "tpm")]
    tpm_handle: u32,
    /// Persistent handle for the IAK (the TPM's attestation key, certified beside the IDevID).
    #[arg(long, value_name = "HANDLE", default_value = "0x81020003", value_parser = brski_common::cli::parse_handle, requires = "tpm")]
    iak_handle: u32,
}

#[derive(Debug, Args)]
struct MintBulkArgs {
    /// The MASA's masa.toml.
    #[arg(long)]
    config: PathBuf,
    /// How many devices to mint.
    #[arg(long)]
    count: u32,
    /// Serial numbers are PREFIX-000001, PREFIX-000002, ...
    #[arg(long)]
    serial_prefix: String,
    /// The bundle file to write (mode 0600).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct ClaimArgs {
    /// The MASA's masa.toml.
    #[arg(long)]
    config: PathBuf,
    /// The device serial number.
    #[arg(long)]
    serial: String,
    /// The owner domain's CA certificate (PEM).
    #[arg(long)]
    domain_ca: PathBuf,
}

#[derive(Debug, Args)]
struct SerialArgs {
    /// The MASA's masa.toml.
    #[arg(long)]
    config: PathBuf,
    /// The device serial number.
    #[arg(long)]
    serial: String,
}

#[derive(Debug, Args)]
struct AuditLogArgs {
    /// The MASA's masa.toml.
    #[arg(long)]
    config: PathBuf,
    /// The device serial number.
    #[arg(long)]
    serial: String,
    /// Abridge as for registrars (RFC 8995 §5.8.1): latest nonced and nonceless entry per domain.
    #[arg(long)]
    abridged: bool,
}

async fn run(command: Command) -> Result<(), MasaError> {
    match command {
        Command::Init(a) => {
            let path = factory::init(&factory::InitOptions {
                dir: a.dir,
                name: a.name,
                listen: a.listen,
                metrics_listen: a.metrics_listen,
                masa_url: a.masa_url,
                ownership: a.ownership,
            })?;
            println!("created {}", path.display());
        }
        Command::Serve(a) => {
            brski_service::logging::init("masa");
            server::serve(&a.config).await?;
        }
        Command::Mint(a) => {
            let path = factory::mint(&factory::MintOptions {
                config: a.config,
                serial: a.serial.clone(),
                out: a.out,
                registrar: a.registrar,
                tpm: a.tpm.map(|tcti| factory::TpmTarget {
                    tcti,
                    handle: a.tpm_handle,
                    iak_handle: a.iak_handle,
                }),
            })
            .await?;
            println!("minted {} into {}", a.serial, path.display());
        }
        Command::MintBulk(a) => {
            let (path, count) = factory::mint_bulk(&factory::MintBulkOptions {
                config: a.config,
                count: a.count,
                serial_prefix: a.serial_prefix,
                out: a.out,
            })
            .await?;
            println!("minted {count} devices into {}", path.display());
        }
        Command::Claim(a) => {
            let (domain_id, ownership) = admin::claim(&a.config, &a.serial, &a.domain_ca).await?;
            println!("claimed {} for domainID {domain_id}", a.serial);
            if ownership != Ownership::Claimed {
                eprintln!(
                    "masa: note: ownership is {:?}; claims take effect with ownership = \"claimed\"",
                    ownership.as_str()
                );
            }
        }
        Command::Release(a) => {
            if admin::release(&a.config, &a.serial).await? {
                println!("released {}", a.serial);
            } else {
                println!("{} had no owner", a.serial);
            }
        }
        Command::AuditLog(a) => {
            println!(
                "{}",
                admin::audit_log(&a.config, &a.serial, a.abridged).await?
            );
        }
        Command::CheckConfig(a) => {
            let problems = config::MasaConfig::check(&a.config);
            for p in &problems {
                println!("{}", p.replace('\n', " "));
            }
            if !problems.is_empty() {
                return Err(MasaError::Invalid(format!(
                    "{}: {} problem(s)",
                    a.config.display(),
                    problems.len()
                )));
            }
            println!("{}: ok", a.config.display());
        }
        Command::Inspect(_) | Command::Generate(_) => {}
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => args.run().map(|out| println!("{out}")),
        Command::Generate(args) => args.run(Cli::command()).map(|out| println!("{out}")),
        command => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))
            .and_then(|rt| rt.block_on(run(command)).map_err(|e| e.to_string())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("masa: {}", reason.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_tpm_command_line() {
        let cli = Cli::try_parse_from([
            "masa",
            "mint",
            "--config",
            "m.toml",
            "--serial",
            "S",
            "--out",
            "p",
            "--tpm",
            "device:/dev/tpmrm0",
        ])
        .expect("--tpm");
        assert!(matches!(cli.command, Command::Mint(ref a)
            if a.tpm.as_deref() == Some("device:/dev/tpmrm0") && a.tpm_handle == 0x8102_0000));
        let cli = Cli::try_parse_from([
            "masa", "mint", "--config", "m.toml", "--serial", "S", "--out", "p",
        ])
        .expect("no --tpm");
        assert!(matches!(cli.command, Command::Mint(ref a) if a.tpm.is_none()));
        assert!(
            Cli::try_parse_from([
                "masa",
                "mint",
                "--config",
                "m.toml",
                "--serial",
                "S",
                "--out",
                "p",
                "--tpm-handle",
                "0x81020005",
            ])
            .is_err(),
            "--tpm-handle needs --tpm"
        );
    }
}
