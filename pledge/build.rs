//! Link options of the `pledge` binary that lower its peak resident memory (issue 5). They
//! change how the executable is laid out and loaded, not what it does.
//!
//! - `-z pack-relative-relocs` (RELR): the position-independent executable's ~19,000 relative
//!   relocations take 4 KiB instead of 450 KiB, which the dynamic loader reads at every start.
//!   Needs glibc 2.36 (the binary then requires `GLIBC_ABI_DT_RELR`) or musl 1.2.4.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os == "linux" && matches!(target_env.as_str(), "gnu" | "musl") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
