//! The testbed: everything needed to run the whole BRSKI flow with the real binaries.
//!
//! [`loopback`] builds a manufacturer and a domain in a directory, starts `masa serve` and
//! `registrar serve` as child processes on loopback, and mints and bootstraps pledges with the
//! real `pledge` binary. `testbed demo` and the cross-daemon integration tests both use it.
#![forbid(unsafe_code)]

pub mod bench;
pub mod cluster;
pub mod lab;
pub mod loopback;
pub mod plot;
pub mod progress;
