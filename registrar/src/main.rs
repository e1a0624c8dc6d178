//! `registrar`: Registrar: the domain's BRSKI and EST registration authority (RFC 8995 §5.1-§5.9).
#![forbid(unsafe_code)]

/// mimalloc: the request path allocates and frees many small buffers on every worker
/// thread; glibc's allocator spent ~9 % of the CPU of an enrollment on that (`testbed bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod announcer;
mod attestation;
mod audit;
mod certs;
mod check_config;
mod cjp;
mod coap;
mod config;
mod crl;
mod db;
mod http;
mod init;
mod masa_client;
mod metrics;
mod pg;
mod pledges;
mod proxy;
mod server;
mod steps;
mod store;
mod vouchers;
mod wire;

use brski_common::cli::{GenerateArgs, InspectArgs};
use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "registrar",
    version,
    about = "Registrar: the domain's BRSKI and EST registration authority (RFC 8995 §5.1-§5.9)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the domain CA, the registrar certificate, registrar.toml and the database.
    Init(init::InitArgs),
    /// Serve pledges over HTTPS (BRSKI-EST and EST) until SIGTERM.
    Serve {
        /// The registrar's configuration file.
        #[arg(long, default_value = "registrar.toml")]
        config: PathBuf,
        /// Announce the registrar on this interface (GRASP AN_join_registrar and DNS-SD
        /// `_brski-registrar._tcp`, RFC 8995 §4.3) and, with CoAPS on, answer CoAP discovery
        /// there (`?rt=brski*` from join proxies, `?brski-jp=*` from pledges, CJP §5);
        /// repeatable.
        #[arg(long, value_name = "IFACE")]
        announce: Vec<String>,
        /// Seconds between two AN_join_registrar floods (RFC 8995 §4.3: default 60), 1..=86400.
        #[arg(long, value_name = "SECS", default_value_t = 60,
              value_parser = clap::value_parser!(u64).range(1..=86400))]
        announce_interval: u64,
    },
    /// Check registrar.toml and every file it names; one line per problem, non-zero exit on any.
    CheckConfig {
        /// The registrar's configuration file.
        #[arg(long, default_value = "registrar.toml")]
        config: PathBuf,
    },
    /// RFC 8995 §4 circuit join proxy: relay pledge connections to the registrar.
    Proxy(proxy::ProxyArgs),
    /// List, allow or deny pledges.
    Pledges(pledges::PledgesArgs),
    /// List and revoke LDevIDs (refused in the TLS handshake and listed in the CRL from then
    /// on); print the domain CA's CRL.
    #[command(alias = "ldevid")]
    Certs(certs::CertsArgs),
    /// Fetch nonceless vouchers ahead of time (RFC 8995 §7.2).
    Vouchers(vouchers::VouchersArgs),
    /// Decode an artifact (voucher, voucher-request, certificate, CSR, EST body, telemetry) to JSON.
    Inspect(InspectArgs),
    /// Write the man pages or a shell's completion script (for packagers).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Init(args) => {
            let path = init::run(&args)?;
            eprintln!("registrar: wrote {}", path.display());
            Ok(())
        }
        Command::Serve {
            config,
            announce,
            announce_interval,
        } => {
            brski_service::logging::init("registrar");
            let config = config::RegistrarConfig::load(&config).map_err(|e| e.to_string())?;
            let period = std::time::Duration::from_secs(announce_interval);
            let constrained = announcer::Constrained {
                coaps: config.coaps_addr()?.map(|a| a.port()),
                jpy: config.jpy_addr()?.map(|a| a.port()),
                coap_port: brski_service::coaps::jp::COAP_PORT,
            };
            let _announcing =
                announcer::start(&announce, config.listen.port(), constrained, period)?;
            server::serve(config).await.map_err(|e| e.to_string())
        }
        Command::CheckConfig { config } => {
            let problems = check_config::problems(&config);
            for p in &problems {
                eprintln!(
                    "registrar: check-config: {}",
                    masa_client::one_line(p, 2000)
                );
            }
            if problems.is_empty() {
                println!("{}: OK", config.display());
                Ok(())
            } else {
                Err(format!(
                    "{}: {} problem(s) found",
                    config.display(),
                    problems.len()
                ))
            }
        }
        Command::Proxy(args) => {
            brski_service::logging::init("registrar-proxy");
            proxy::run(&args).await
        }
        Command::Pledges(args) => pledges::run(&args).await.map(|out| println!("{out}")),
        Command::Certs(args) => certs::run(&args).await.and_then(|out| {
            use std::io::Write;
            std::io::stdout()
                .write_all(&out)
                .map_err(|e| format!("standard output: {e}"))
        }),
        Command::Vouchers(args) => vouchers::run(&args).await.map(|out| println!("{out}")),
        Command::Inspect(args) => args.run().map(|out| println!("{out}")),
        Command::Generate(args) => args.run(Cli::command()).map(|out| println!("{out}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One process-wide rustls provider (aws-lc-rs) for every TLS configuration.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("registrar: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            // One line, whatever the error's own formatting (TOML errors span several).
            eprintln!("registrar: {}", masa_client::one_line(&reason, 2000));
            ExitCode::FAILURE
        }
    }
}
