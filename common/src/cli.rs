//! Command-line pieces shared by the `masa`, `registrar` and `pledge` binaries.

use crate::inspect::{InspectOptions, inspect};
use std::path::PathBuf;

/// `inspect FILE [--trust-anchor FILE] [--no-time-check]`: decode any artifact of the suite to
/// JSON, with the signature verdict and signer chain when a trust anchor is given.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The artifact: PEM, DER, base64, hex or JSON (leading `#` comment lines are skipped).
    pub file: PathBuf,
    /// Trust anchor certificate(s) for verifying the signature (PEM, DER or base64).
    #[arg(long, value_name = "FILE")]
    pub trust_anchor: Option<PathBuf>,
    /// Do not check certificate validity periods (for expired example certificates).
    #[arg(long)]
    pub no_time_check: bool,
}

impl InspectArgs {
    /// Run the subcommand: the JSON description on success, a one-line reason otherwise.
    pub fn run(&self) -> Result<String, String> {
        let data = std::fs::read(&self.file)
            .map_err(|e| format!("cannot read {}: {e}", self.file.display()))?;
        let opts = match &self.trust_anchor {
            Some(p) => {
                let anchor =
                    std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                InspectOptions::with_anchor_file(&anchor, !self.no_time_check)
                    .map_err(|e| format!("{}: {e}", p.display()))?
            }
            None => InspectOptions::default(),
        };
        let value = inspect(&data, &opts).map_err(|e| format!("{}: {e}", self.file.display()))?;
        serde_json::to_string_pretty(&value).map_err(|e| e.to_string())
    }
}
