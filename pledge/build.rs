//! A link option of the `pledge` binary that lowers its peak resident memory (issue 5). It
//! changes how the executable is laid out and loaded, not what it does.
//!
//! - `link/hot-text.ld`: the functions `pledge bootstrap` runs are placed together at the start
//!   of `.text`, so that the kernel's 64 KiB fault-around maps few windows of code instead of
//!   nearly all of it. Patterns that match nothing are ignored; `link/hot-text.py` says how to
//!   regenerate the file. Needs a linker that reads `INSERT` scripts (GNU ld, lld).
//!
//! `PLEDGE_DEFAULT_LINK=1` leaves it out (a linker without `INSERT` scripts, such as gold).
//! (Packed relative relocations, `-z pack-relative-relocs`, would save another ~350 KiB but make
//! the binary require glibc 2.36; devices often run older C libraries, so they are not used.)

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/hot-text.ld");
    println!("cargo:rerun-if-env-changed=PLEDGE_DEFAULT_LINK");
    if env::var_os("PLEDGE_DEFAULT_LINK").is_some_and(|v| v == "1") {
        return;
    }
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os != "linux" || !matches!(target_env.as_str(), "gnu" | "musl") {
        return;
    }
    if let Some(dir) = env::var_os("CARGO_MANIFEST_DIR") {
        let script = Path::new(&dir).join("link").join("hot-text.ld");
        if script.is_file() {
            println!("cargo:rustc-link-arg-bins=-T");
            println!("cargo:rustc-link-arg-bins={}", script.display());
        }
    }
}
