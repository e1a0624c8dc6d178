//! The BRSKI exchanges (RFC 8995 §5) as sans-I/O functions: each takes the bytes received and
//! what the role knows, and returns what to send or a typed error carrying the HTTP status that
//! RFC 8995 §5.6 gives it. The daemons wrap these in sockets, storage and policy.
//!
//! - [`pledge`]: build the pledge voucher-request (§5.2), verify the voucher (§5.6.1), then the
//!   registrar's certificate against the pin (§5.6.2).
//! - [`registrar`]: check the pledge voucher-request (§5.3), build the registrar voucher-request
//!   (§5.5), check the MASA's voucher before relaying it.
//! - [`masa`]: check the registrar voucher-request (§5.5.1–§5.5.6) and build the voucher (§5.6).
//! - [`pinning`]: what the voucher pins (cBRSKI §8.2, §8.3).

pub mod masa;
pub mod pinning;
pub mod pledge;
pub mod registrar;

use crate::voucher::DateTime;

/// Well-known paths (RFC 8995 §5, §8.3; RFC 7030 §3.2.2).
pub mod paths {
    pub const REQUEST_VOUCHER: &str = "/.well-known/brski/requestvoucher";
    pub const VOUCHER_STATUS: &str = "/.well-known/brski/voucher_status";
    pub const REQUEST_AUDIT_LOG: &str = "/.well-known/brski/requestauditlog";
    pub const ENROLL_STATUS: &str = "/.well-known/brski/enrollstatus";
    pub const CACERTS: &str = "/.well-known/est/cacerts";
    pub const CSRATTRS: &str = "/.well-known/est/csrattrs";
    pub const SIMPLE_ENROLL: &str = "/.well-known/est/simpleenroll";
    pub const SIMPLE_REENROLL: &str = "/.well-known/est/simplereenroll";
    /// Where pre-RFC drafts put requestvoucher; still called by old pledges (8995 §8.3.1).
    pub const LEGACY_REQUEST_VOUCHER: &str = "/.well-known/est/requestvoucher";

    /// The short names of the same resources over CoAP (cBRSKI §6.3, RFC 9148 §4.1 Table 1).
    pub const COAP: [(&str, &str); 7] = [
        (REQUEST_VOUCHER, "/.well-known/brski/rv"),
        (VOUCHER_STATUS, "/.well-known/brski/vs"),
        (ENROLL_STATUS, "/.well-known/brski/es"),
        (CACERTS, "/.well-known/est/crts"),
        (CSRATTRS, "/.well-known/est/att"),
        (SIMPLE_ENROLL, "/.well-known/est/sen"),
        (SIMPLE_REENROLL, "/.well-known/est/sren"),
    ];

    /// The CoAP path of `path` (itself when it has no short name).
    pub fn coap(path: &str) -> &str {
        COAP.iter()
            .find(|(long, _)| *long == path)
            .map_or(path, |(_, short)| short)
    }
}

/// An RFC 3339 `date-and-time` leaf for `instant`, in UTC and whole seconds (the fraction is
/// dropped): RFC 3339 §5.6 makes `time-secfrac` optional, and strict peers refuse it.
pub fn date_time(instant: time::OffsetDateTime) -> DateTime {
    let utc = instant.to_offset(time::UtcOffset::UTC);
    let text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    );
    // The text above is always a valid RFC 3339 date-time for years 0000-9999.
    DateTime::parse(&text).unwrap_or_else(|_| {
        DateTime::parse("1970-01-01T00:00:00Z").expect("constant RFC 3339 date-time")
    })
}

#[cfg(test)]
mod tests;
