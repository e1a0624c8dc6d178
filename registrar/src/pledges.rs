//! `registrar pledges list|allow|deny`: the pledge policy and state, read and written in the
//! database directly (safe while `registrar serve` runs: SQLite WAL).

use crate::config::RegistrarConfig;
use crate::db::{PledgeSummary, Policy, StatusReport};
use crate::store::Store;
use std::path::PathBuf;

/// `registrar pledges ...`.
#[derive(Debug, clap::Args)]
pub struct PledgesArgs {
    #[command(subcommand)]
    pub action: PledgesAction,
    /// The registrar's configuration file.
    #[arg(long, global = true, default_value = "registrar.toml")]
    pub config: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum PledgesAction {
    /// Show every known pledge: state, voucher, telemetry, LDevID.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Allow a serial number (RFC 8995 §5.3 pledge policy); releases a pending pledge.
    Allow { serial: String },
    /// Deny a serial number: its voucher requests are answered 404 (RFC 8995 §5.3).
    Deny { serial: String },
}

fn status_text(s: &Option<StatusReport>) -> String {
    match s {
        None => "-".into(),
        Some(r) if r.status => "ok".into(),
        Some(r) => match &r.reason {
            Some(reason) => format!("failed: {reason}"),
            None => "failed".into(),
        },
    }
}

fn table(rows: &[PledgeSummary]) -> String {
    let header = [
        "SERIAL",
        "STATE",
        "ASSERTION",
        "VOUCHER_STATUS",
        "ENROLLSTATUS",
        "LDEVID",
        "NOT_AFTER",
        "AUDIT_LOG",
        "LAST_SEEN",
        "TRANSPORT",
        "ATTESTATION",
    ];
    let cells: Vec<[String; 11]> = rows
        .iter()
        .map(|r| {
            [
                r.serial.clone(),
                r.state.clone(),
                r.voucher_assertion.clone().unwrap_or_else(|| "-".into()),
                status_text(&r.voucher_status),
                status_text(&r.enrollstatus),
                r.ldevid_serial.clone().unwrap_or_else(|| "-".into()),
                r.ldevid_not_after.clone().unwrap_or_else(|| "-".into()),
                r.audit_log.clone().unwrap_or_else(|| "-".into()),
                r.last_seen.clone().unwrap_or_else(|| "-".into()),
                r.transport.clone().unwrap_or_else(|| "-".into()),
                r.attestation
                    .as_ref()
                    .map(|a| a.text())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    columns(header, &cells)
}

/// `cells` under `header`, each column as wide as its widest cell, two spaces apart.
pub fn columns<const N: usize>(header: [&str; N], cells: &[[String; N]]) -> String {
    let mut widths: [usize; N] = header.map(str::len);
    for row in cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: &[String]| {
        row.iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(&header.map(String::from));
    for row in cells {
        out.push('\n');
        out.push_str(&line(row));
    }
    out
}

/// Run `registrar pledges ...`; the text to print.
pub async fn run(args: &PledgesArgs) -> Result<String, String> {
    let config = RegistrarConfig::load(&args.config).map_err(|e| e.to_string())?;
    let store = Store::open(&config).await.map_err(|e| e.to_string())?;
    match &args.action {
        PledgesAction::List { json } => {
            let rows = store.list_pledges().await.map_err(|e| e.to_string())?;
            if *json {
                serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())
            } else {
                Ok(table(&rows))
            }
        }
        PledgesAction::Allow { serial } => store
            .set_policy(serial, Policy::Allowed)
            .await
            .map(|()| format!("pledge {serial} allowed"))
            .map_err(|e| e.to_string()),
        PledgesAction::Deny { serial } => store
            .set_policy(serial, Policy::Denied)
            .await
            .map(|()| format!("pledge {serial} denied"))
            .map_err(|e| e.to_string()),
    }
}
