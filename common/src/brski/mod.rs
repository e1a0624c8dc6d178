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

    /// A BRSKI or EST resource as a CoAPS registrar serves it: its RFC 8995 / RFC 7030 path,
    /// its short path (cBRSKI §6.3, RFC 9148 §4.1 Table 1), the resource type and content
    /// formats `/.well-known/core` lists (cBRSKI Appendix E, RFC 9148 §4.1), its
    /// Uri-Path-Abbrev value (draft-ietf-core-uri-path-abbrev §3) and whether it takes a POST.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct CoapResource {
        pub long: &'static str,
        pub short: &'static str,
        pub rt: &'static str,
        pub ct: &'static str,
        pub abbrev: u32,
        pub post: bool,
    }

    impl CoapResource {
        /// The operation's RFC 8995 / RFC 7030 name (`requestvoucher`, `cacerts`, ...).
        pub fn operation(&self) -> &'static str {
            self.long.rsplit('/').next().unwrap_or(self.long)
        }
    }

    /// The resources of a CoAPS registrar.
    pub const COAP: [CoapResource; 7] = [
        CoapResource {
            long: REQUEST_VOUCHER,
            short: "/.well-known/brski/rv",
            rt: "brski.rv",
            ct: "836",
            abbrev: 402,
            post: true,
        },
        CoapResource {
            long: VOUCHER_STATUS,
            short: "/.well-known/brski/vs",
            rt: "brski.vs",
            ct: "50 60",
            abbrev: 403,
            post: true,
        },
        CoapResource {
            long: ENROLL_STATUS,
            short: "/.well-known/brski/es",
            rt: "brski.es",
            ct: "50 60",
            abbrev: 401,
            post: true,
        },
        CoapResource {
            long: CACERTS,
            short: "/.well-known/est/crts",
            rt: "ace.est.crts",
            ct: "281 287 62",
            abbrev: 301,
            post: false,
        },
        CoapResource {
            long: SIMPLE_ENROLL,
            short: "/.well-known/est/sen",
            rt: "ace.est.sen",
            ct: "281 287",
            abbrev: 302,
            post: true,
        },
        CoapResource {
            long: SIMPLE_REENROLL,
            short: "/.well-known/est/sren",
            rt: "ace.est.sren",
            ct: "281 287",
            abbrev: 303,
            post: true,
        },
        CoapResource {
            long: CSRATTRS,
            short: "/.well-known/est/att",
            rt: "ace.est.att",
            ct: "285",
            abbrev: 306,
            post: false,
        },
    ];

    /// The resource at `path`, by its long or its short name.
    pub fn coap_resource(path: &str) -> Option<&'static CoapResource> {
        COAP.iter().find(|r| r.long == path || r.short == path)
    }

    /// The CoAP path of `path` (itself when it has no short name).
    pub fn coap(path: &str) -> &str {
        COAP.iter()
            .find(|r| r.long == path)
            .map_or(path, |r| r.short)
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
