//! Link the `pledge` binary with packed relative relocations (DT_RELR, glibc 2.36 and later,
//! GNU ld 2.38 and later, lld 15 and later): the position-independent binary then carries its
//! relocations in a few KiB instead of a `.rela.dyn` section of some 300 KiB that the dynamic
//! loader reads in full at every start, which was part of the pledge's peak RSS.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bin=pledge=-Wl,-z,pack-relative-relocs");
    }
}
