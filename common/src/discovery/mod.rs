//! Discovery of join proxies and registrars (RFC 8995 §4.1.1, §4.3): the GRASP M_FLOOD
//! message of RFC 8990 §2.8.11 carrying the `AN_Proxy` or `AN_join_registrar` objective with an
//! `O_IPv6_LOCATOR` (RFC 8990 §2.9.5.1); and the CoRE link format (RFC 6690) that constrained
//! discovery answers in (CJP §5, cBRSKI §10). Sans-I/O: bytes in, bytes out.

pub mod grasp;
pub mod link_format;

pub use grasp::{
    AN_JOIN_REGISTRAR, AN_PROXY, Endpoint, Flood, FloodEntry, GraspError, IPPROTO_TCP, Locator,
    Objective,
};

#[cfg(test)]
mod tests;
