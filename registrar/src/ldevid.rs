//! `registrar ldevid revoke SERIAL | --pledge SERIAL`: revoke LDevIDs in the database (safe
//! while `registrar serve` runs: SQLite WAL). The server refuses a revoked LDevID in the TLS
//! handshake from its next connection on (RFC 7030 §3.3.2, [`crate::server::LdevidRefusal`]).

use crate::config::RegistrarConfig;
use crate::db::RevokeWhat;
use crate::store::Store;
use std::path::PathBuf;

/// `registrar ldevid ...`.
#[derive(Debug, clap::Args)]
pub struct LdevidArgs {
    #[command(subcommand)]
    pub action: LdevidAction,
    /// The registrar's configuration file.
    #[arg(long, global = true, default_value = "registrar.toml")]
    pub config: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum LdevidAction {
    /// Revoke one LDevID by its serial number (hex, as `registrar pledges list` shows it), or
    /// every LDevID of a pledge.
    Revoke {
        /// The LDevID's certificate serial number (hex; colons and case ignored).
        #[arg(required_unless_present = "pledge", conflicts_with = "pledge")]
        serial: Option<String>,
        /// Revoke every LDevID of this pledge (its serial number).
        #[arg(long, value_name = "SERIAL")]
        pledge: Option<String>,
        /// Why, as stored and given in refusals.
        #[arg(long, default_value = "revoked by the operator")]
        reason: String,
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

/// Run `registrar ldevid ...`; the text to print.
pub async fn run(args: &LdevidArgs) -> Result<String, String> {
    let LdevidAction::Revoke {
        serial,
        pledge,
        reason,
    } = &args.action;
    let what = match (serial, pledge) {
        (Some(s), None) => RevokeWhat::Serial(normalise_serial(s)?),
        (None, Some(p)) => RevokeWhat::Pledge(p.clone()),
        _ => return Err("give an LDevID serial number or --pledge SERIAL".into()),
    };
    let config = RegistrarConfig::load(&args.config).map_err(|e| e.to_string())?;
    let store = Store::open(&config).await.map_err(|e| e.to_string())?;
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
        .map(|s| format!("LDevID {s} revoked"))
        .collect::<Vec<_>>()
        .join("\n"))
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
