//! `registrar certs list|revoke|crl`: the LDevIDs issued here, read and revoked in the
//! database directly (safe while `registrar serve` runs: SQLite WAL, or PostgreSQL), and the
//! domain CA's CRL of them (RFC 5280 §5). A revoked LDevID is refused in the TLS handshake
//! from the server's next connection on (RFC 7030 §3.3.2, [`crate::server::LdevidRefusal`])
//! and listed in the next CRL served.

use crate::config::RegistrarConfig;
use crate::db::{CertSummary, RevokeWhat};
use crate::store::Store;
use std::path::PathBuf;

/// `registrar certs ...`.
#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub action: CertsAction,
    /// The registrar's configuration file.
    #[arg(long, global = true, default_value = "registrar.toml")]
    pub config: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum CertsAction {
    /// Show the LDevIDs issued here: serial number, pledge, status, expiry.
    List {
        /// Only this pledge's (its serial number).
        #[arg(long, value_name = "SERIAL")]
        pledge: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke one LDevID by its serial number (hex, as `registrar certs list` shows it), or
    /// every LDevID of a pledge.
    Revoke {
        /// The LDevID's certificate serial number (hex; colons and case ignored).
        #[arg(required_unless_present = "pledge", conflicts_with = "pledge")]
        serial: Option<String>,
        /// Revoke every LDevID of this pledge (its serial number).
        #[arg(long, value_name = "SERIAL")]
        pledge: Option<String>,
        /// Why, as stored and given in refusals. Starting with an RFC 5280 reason
        /// (keyCompromise, affiliationChanged, superseded, cessationOfOperation,
        /// privilegeWithdrawn; any case, hyphens allowed), it is the CRL entry's reasonCode.
        #[arg(long, default_value = "revoked by the operator")]
        reason: String,
    },
    /// Print the domain CA's current CRL (PEM, or DER with --der), signed now: for
    /// publishing it where `crl-url` points when the registrar does not serve it itself.
    Crl {
        /// Write DER instead of PEM.
        #[arg(long)]
        der: bool,
        /// Write it to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// A certificate serial number as the `certificates` table keys it: upper-case hex.
fn normalise_serial(serial: &str) -> Result<String, String> {
    let hex: String = serial.chars().filter(|c| *c != ':').collect();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{serial:?} is not a hexadecimal serial number"));
    }
    Ok(hex.to_ascii_uppercase())
}

/// What an LDevID is now, in one word (and why, when revoked).
fn status(c: &CertSummary) -> String {
    match (&c.superseded_by, c.revoked) {
        (_, true) => match &c.revoked_reason {
            Some(reason) => format!("revoked: {reason}"),
            None => "revoked".into(),
        },
        (Some(next), false) => format!("renewed as {next}"),
        (None, false) if c.first_seen.is_some() => "in use".into(),
        (None, false) => "issued".into(),
    }
}

fn table(rows: &[CertSummary]) -> String {
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|c| {
            [
                c.cert_serial.clone(),
                c.pledge_serial.clone(),
                c.issued_at.clone(),
                c.not_after.clone(),
                status(c),
            ]
        })
        .collect();
    crate::pledges::columns(
        ["SERIAL", "PLEDGE", "ISSUED", "NOT_AFTER", "STATUS"],
        &cells,
    )
}

/// Run `registrar certs ...`; the text to print (empty when written to a file).
pub async fn run(args: &CertsArgs) -> Result<Vec<u8>, String> {
    let config = RegistrarConfig::load(&args.config).map_err(|e| e.to_string())?;
    let store = Store::open(&config).await.map_err(|e| e.to_string())?;
    match &args.action {
        CertsAction::List { pledge, json } => {
            let rows = store
                .list_certificates(pledge.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            let text = if *json {
                serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
            } else {
                table(&rows)
            };
            Ok(format!("{text}\n").into_bytes())
        }
        CertsAction::Revoke {
            serial,
            pledge,
            reason,
        } => {
            let what = match (serial, pledge) {
                (Some(s), None) => RevokeWhat::Serial(normalise_serial(s)?),
                (None, Some(p)) => RevokeWhat::Pledge(p.clone()),
                _ => return Err("give an LDevID serial number or --pledge SERIAL".into()),
            };
            let revoked = store
                .revoke(&what, reason)
                .await
                .map_err(|e| e.to_string())?;
            if revoked.is_empty() {
                return Err(match what {
                    RevokeWhat::Serial(s) => format!("no unrevoked LDevID with serial number {s}"),
                    RevokeWhat::Pledge(p) => format!("pledge {p} has no unrevoked LDevID"),
                });
            }
            Ok(revoked
                .iter()
                .map(|s| format!("LDevID {s} revoked\n"))
                .collect::<String>()
                .into_bytes())
        }
        CertsAction::Crl { der, out } => {
            let ca = crate::server::first_cert("domain-ca-cert", &config.domain_ca_cert)
                .map_err(|e| e.to_string())?;
            let key = crate::server::key_file("domain-ca-key", &config.domain_ca_key)
                .map_err(|e| e.to_string())?;
            let now = time::OffsetDateTime::now_utc();
            let rows = store
                .revoked_certificates(now)
                .await
                .map_err(|e| e.to_string())?;
            let validity = time::Duration::hours(i64::from(config.crl_validity_hours));
            let crl =
                crate::crl::build(&ca, &key, &rows, now, validity).map_err(|e| e.to_string())?;
            let bytes = if *der {
                crl
            } else {
                brski_common::input::to_pem("X509 CRL", &crl).into_bytes()
            };
            match out {
                Some(path) => {
                    brski_service::files::write_atomic(path, &bytes, 0o644)
                        .map_err(|e| e.to_string())?;
                    Ok(Vec::new())
                }
                None => Ok(bytes),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_read_as_hex_whatever_their_spelling() {
        assert_eq!(normalise_serial("0a:ff:01").as_deref(), Ok("0AFF01"));
        assert!(normalise_serial("xyz").is_err());
        assert!(normalise_serial("").is_err());
    }
}
