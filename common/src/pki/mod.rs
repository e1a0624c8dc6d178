//! Certificates of the suite: profiles, issuing, CSRs, chain validation and the BRSKI
//! extensions (MASA URL, HardwareModuleName, `idevid-issuer`).

pub mod chain;

pub use chain::{ChainError, TimeCheck, TrustPolicy, validate_chain};

#[cfg(test)]
mod chain_tests;
