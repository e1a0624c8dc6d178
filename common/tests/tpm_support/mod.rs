//! A swtpm per test, and tpm2-tools run against it (TPM integration tests).
// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

use brski_common::keys::tpm::TpmConfig;
use brski_common::keys::tpm::swtpm::Swtpm;
use std::process::Command;

/// A swtpm in its own temporary state directory.
pub struct Tpm {
    pub sim: Swtpm,
    dir: tempfile::TempDir,
}

impl Tpm {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = Swtpm::start(dir.path().join("state"))
            .expect("swtpm is required for the TPM tests (apt-get install swtpm swtpm-tools)");
        Self { sim, dir }
    }

    pub fn config(&self) -> TpmConfig {
        self.sim.config()
    }

    /// Run a tpm2-tools command against this TPM and return its standard output; the command
    /// must succeed.
    pub fn tool(&self, tool: &str, args: &[&str]) -> String {
        let out = self.tool_output(tool, args);
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 tool output")
    }

    pub fn tool_output(&self, tool: &str, args: &[&str]) -> std::process::Output {
        Command::new(tool)
            .args(args)
            .arg("-T")
            .arg(self.sim.tcti())
            .output()
            .unwrap_or_else(|e| panic!("tpm2-tools are required for the TPM tests: {tool}: {e}"))
    }

    /// The handles tpm2_getcap lists for `capability`.
    pub fn handles(&self, capability: &str) -> Vec<u32> {
        self.tool("tpm2_getcap", &[capability])
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- 0x"))
            .map(|h| u32::from_str_radix(h.trim(), 16).expect("hex handle"))
            .collect()
    }

    /// Make a primary key with tpm2_createprimary (`-G alg`, `-a attributes`) and persist it
    /// at `handle` with tpm2_evictcontrol.
    pub fn tools_key(&self, hierarchy: &str, alg: &str, attributes: &str, handle: u32) {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = dir.path().join("key.ctx");
        let ctx = ctx.to_str().expect("utf-8 path");
        self.tool(
            "tpm2_createprimary",
            &["-C", hierarchy, "-G", alg, "-a", attributes, "-c", ctx],
        );
        self.tool(
            "tpm2_evictcontrol",
            &["-C", "o", "-c", ctx, &hex_handle(handle)],
        );
        self.tool("tpm2_flushcontext", &["-t"]);
    }
}

impl Tpm {
    /// A path for `name` in this test's temporary directory.
    pub fn file(&self, name: &str) -> String {
        self.dir
            .path()
            .join(name)
            .to_str()
            .expect("utf-8 path")
            .to_string()
    }
}

/// A handle as tpm2-tools take it.
pub fn hex_handle(handle: u32) -> String {
    format!("{handle:#010x}")
}
