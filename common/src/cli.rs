//! Command-line pieces shared by the `masa`, `registrar` and `pledge` binaries.

use crate::inspect::{InspectOptions, inspect};
use std::path::{Path, PathBuf};

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

/// A TPM handle in hex (`0x81020000`) or decimal.
pub fn parse_handle(s: &str) -> Result<u32, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("{s:?} is not a TPM handle (e.g. 0x81020000)"))
}

/// `generate man|bash|zsh|fish --out DIR`: the manual pages (one per subcommand) or a shell's
/// completion script, rendered from the same clap definitions as `--help`, so that they never
/// drift from it. Hidden from `--help`: it is for packagers (`scripts/package.sh`).
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// What to write.
    #[arg(value_enum)]
    pub what: Generated,
    /// Directory to write into (created when missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// What `generate` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Generated {
    /// man(7) pages, section 1: `NAME.1` and `NAME-SUBCOMMAND.1` for each visible subcommand.
    Man,
    /// A bash completion script (`NAME`).
    Bash,
    /// A zsh completion function (`_NAME`).
    Zsh,
    /// A fish completion script (`NAME.fish`).
    Fish,
}

impl GenerateArgs {
    /// Write the files for `cmd` (the binary's whole clap `Command`); returns their paths, one
    /// per line.
    pub fn run(&self, cmd: clap::Command) -> Result<String, String> {
        let out = &self.out;
        std::fs::create_dir_all(out)
            .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        let written = match self.what {
            Generated::Man => man_pages(cmd, out),
            Generated::Bash => completion(clap_complete::Shell::Bash, cmd, out),
            Generated::Zsh => completion(clap_complete::Shell::Zsh, cmd, out),
            Generated::Fish => completion(clap_complete::Shell::Fish, cmd, out),
        };
        let written = written.map_err(|e| format!("cannot write into {}: {e}", out.display()))?;
        let lines: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        Ok(lines.join("\n"))
    }
}

/// One page for the command and one for each subcommand that `--help` lists, recursively; each
/// page's footer names the program and its version.
fn man_pages(cmd: clap::Command, out: &Path) -> std::io::Result<Vec<PathBuf>> {
    fn each(
        cmd: clap::Command,
        source: &str,
        out: &Path,
        written: &mut Vec<PathBuf>,
    ) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            each(sub.clone(), source, out, written)?;
        }
        let page = clap_mangen::Man::new(cmd).source(source);
        written.push(page.generate_to(out)?);
        Ok(())
    }
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let source = format!(
        "{} {}",
        cmd.get_name(),
        cmd.get_version().unwrap_or_default()
    );
    let mut written = Vec::new();
    each(cmd, source.trim(), out, &mut written)?;
    Ok(written)
}

fn completion(
    shell: clap_complete::Shell,
    mut cmd: clap::Command,
    out: &Path,
) -> std::io::Result<Vec<PathBuf>> {
    let name = cmd.get_name().to_string();
    Ok(vec![clap_complete::generate_to(
        shell, &mut cmd, name, out,
    )?])
}

#[cfg(test)]
mod tests {
    use super::parse_handle;

    #[test]
    fn tpm_handles_parse_in_hex_or_decimal() {
        assert_eq!(parse_handle("0x81020000"), Ok(0x8102_0000));
        assert_eq!(parse_handle("0X81020001"), Ok(0x8102_0001));
        assert_eq!(parse_handle("2164391936"), Ok(0x8102_0000));
        for bad in ["", "0x", "0xzz", "-1", "0x100000000"] {
            assert!(parse_handle(bad).is_err(), "{bad:?}");
        }
    }
}
