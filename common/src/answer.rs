//! What a protocol step answers, whatever the transport: the answer classes, and the one table
//! of their HTTP status and CoAP response code (RFC 8075 §7, RFC 9148 §5.5 and §5.7, cBRSKI
//! §6.4, RFC 8516). The HTTPS and CoAP shells read their codes from [`Class::TABLE`] only.

use std::fmt;

/// A CoAP response code, `c.dd` (RFC 7252 §3, §12.1.2): the class in the top three bits, the
/// detail in the low five.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoapCode(pub u8);

impl CoapCode {
    pub const CHANGED: Self = Self::new(2, 4);
    pub const CONTENT: Self = Self::new(2, 5);
    pub const BAD_REQUEST: Self = Self::new(4, 0);
    pub const UNAUTHORIZED: Self = Self::new(4, 1);
    pub const FORBIDDEN: Self = Self::new(4, 3);
    pub const NOT_FOUND: Self = Self::new(4, 4);
    pub const NOT_ACCEPTABLE: Self = Self::new(4, 6);
    pub const REQUEST_ENTITY_TOO_LARGE: Self = Self::new(4, 13);
    pub const UNSUPPORTED_CONTENT_FORMAT: Self = Self::new(4, 15);
    /// RFC 8516 §3.
    pub const TOO_MANY_REQUESTS: Self = Self::new(4, 29);
    pub const INTERNAL_SERVER_ERROR: Self = Self::new(5, 0);
    pub const BAD_GATEWAY: Self = Self::new(5, 2);
    pub const SERVICE_UNAVAILABLE: Self = Self::new(5, 3);

    /// The code `class.detail`.
    pub const fn new(class: u8, detail: u8) -> Self {
        Self((class << 5) | (detail & 0x1f))
    }

    pub const fn class(self) -> u8 {
        self.0 >> 5
    }

    pub const fn detail(self) -> u8 {
        self.0 & 0x1f
    }
}

impl fmt::Display for CoapCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.class(), self.detail())
    }
}

/// How a step ended, as both transports can say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// The representation asked for (a GET: `/cacerts`, `/csrattrs`; RFC 9148 §5.5).
    Content,
    /// The POST did what it asked (voucher, enrollment, telemetry; RFC 9148 §5.5).
    Changed,
    /// Not yet: ask again after the time given (RFC 7030 §4.2.3, RFC 9148 §5.7).
    Pending,
    BadRequest,
    /// No or the wrong client authentication; after a proximity failure (RFC 8995 §5.3).
    Unauthorized,
    Forbidden,
    NotFound,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedContentFormat,
    TooManyRequests,
    /// A failure of this server (its database, its keys).
    Internal,
    /// The upstream (the MASA) unreachable, or its answer unusable (RFC 8995 §5.6).
    BadGateway,
    ServiceUnavailable,
}

impl Class {
    /// Each class with its HTTP status and its CoAP code. The pairs are RFC 8075 Table 2's,
    /// but for 401 ↔ 4.01 (RFC 9148 §5.5, cBRSKI §6.4; a proxy maps 4.01 to 403 for want of
    /// WWW-Authenticate), 202 ↔ 5.03 with Max-Age for Retry-After (RFC 9148 §5.7, cBRSKI
    /// §6.4) and 429 ↔ 4.29 (RFC 8516).
    pub const TABLE: [(Self, u16, CoapCode); 14] = [
        (Self::Content, 200, CoapCode::CONTENT),
        (Self::Changed, 200, CoapCode::CHANGED),
        (Self::Pending, 202, CoapCode::SERVICE_UNAVAILABLE),
        (Self::BadRequest, 400, CoapCode::BAD_REQUEST),
        (Self::Unauthorized, 401, CoapCode::UNAUTHORIZED),
        (Self::Forbidden, 403, CoapCode::FORBIDDEN),
        (Self::NotFound, 404, CoapCode::NOT_FOUND),
        (Self::NotAcceptable, 406, CoapCode::NOT_ACCEPTABLE),
        (
            Self::PayloadTooLarge,
            413,
            CoapCode::REQUEST_ENTITY_TOO_LARGE,
        ),
        (
            Self::UnsupportedContentFormat,
            415,
            CoapCode::UNSUPPORTED_CONTENT_FORMAT,
        ),
        (Self::TooManyRequests, 429, CoapCode::TOO_MANY_REQUESTS),
        (Self::Internal, 500, CoapCode::INTERNAL_SERVER_ERROR),
        (Self::BadGateway, 502, CoapCode::BAD_GATEWAY),
        (Self::ServiceUnavailable, 503, CoapCode::SERVICE_UNAVAILABLE),
    ];

    fn entry(self) -> (Self, u16, CoapCode) {
        Self::TABLE
            .into_iter()
            .find(|(class, ..)| *class == self)
            .unwrap_or((self, 500, CoapCode::INTERNAL_SERVER_ERROR))
    }

    /// The HTTP status of this class.
    pub fn http_status(self) -> u16 {
        self.entry().1
    }

    /// The CoAP response code of this class.
    pub fn coap_code(self) -> CoapCode {
        self.entry().2
    }

    /// The class of a refusal answered with the HTTP status `status` (a 4xx or 5xx), when the
    /// table has one.
    pub fn of_http_refusal(status: u16) -> Option<Self> {
        Self::TABLE
            .into_iter()
            .find(|(_, http, _)| *http == status && status >= 400)
            .map(|(class, ..)| class)
    }

    /// The HTTP status a CoAP answer stands for: the table's, 5.03 with Max-Age as the
    /// pending 202 (RFC 9148 §4.7, cBRSKI §6.7.6), any other code by its class (RFC 8075 §7).
    pub fn http_status_of_coap(code: CoapCode, has_max_age: bool) -> u16 {
        if code == CoapCode::SERVICE_UNAVAILABLE {
            return if has_max_age { 202 } else { 503 };
        }
        Self::TABLE.into_iter().find(|(_, _, c)| *c == code).map_or(
            match code.class() {
                2 => 200,
                4 => 400,
                _ => 500,
            },
            |(_, http, _)| http,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8075 §7, Table 2: CoAP response code → HTTP status (the rows with one answer; the
    /// 2.02 / 2.03 / 4.02 rows have two and no class of ours).
    const RFC8075_TABLE_2: [(CoapCode, &[u16]); 17] = [
        (CoapCode::new(2, 1), &[201]),
        (CoapCode::CHANGED, &[200, 204]),
        (CoapCode::CONTENT, &[200]),
        (CoapCode::BAD_REQUEST, &[400]),
        (CoapCode::UNAUTHORIZED, &[403]),
        (CoapCode::FORBIDDEN, &[403]),
        (CoapCode::NOT_FOUND, &[404]),
        (CoapCode::new(4, 5), &[400]),
        (CoapCode::NOT_ACCEPTABLE, &[406]),
        (CoapCode::new(4, 12), &[412]),
        (CoapCode::REQUEST_ENTITY_TOO_LARGE, &[413]),
        (CoapCode::UNSUPPORTED_CONTENT_FORMAT, &[415]),
        (CoapCode::INTERNAL_SERVER_ERROR, &[500]),
        (CoapCode::new(5, 1), &[501]),
        (CoapCode::BAD_GATEWAY, &[502]),
        (CoapCode::SERVICE_UNAVAILABLE, &[503]),
        (CoapCode::new(5, 4), &[504]),
    ];

    /// Where this suite's pairs are not RFC 8075's, and why.
    const EXCEPTIONS: [(Class, u16, CoapCode); 3] = [
        // RFC 9148 §5.5, cBRSKI §6.4: EST's 401 is 4.01.
        (Class::Unauthorized, 401, CoapCode::UNAUTHORIZED),
        // RFC 9148 §5.7, cBRSKI §6.4: 202 + Retry-After is 5.03 + Max-Age.
        (Class::Pending, 202, CoapCode::SERVICE_UNAVAILABLE),
        // RFC 8516 §3 (after RFC 8075).
        (Class::TooManyRequests, 429, CoapCode::TOO_MANY_REQUESTS),
    ];

    #[test]
    fn every_class_is_in_the_table_once() {
        let all = [
            Class::Content,
            Class::Changed,
            Class::Pending,
            Class::BadRequest,
            Class::Unauthorized,
            Class::Forbidden,
            Class::NotFound,
            Class::NotAcceptable,
            Class::PayloadTooLarge,
            Class::UnsupportedContentFormat,
            Class::TooManyRequests,
            Class::Internal,
            Class::BadGateway,
            Class::ServiceUnavailable,
        ];
        for class in all {
            // No wildcard: a new class does not compile here until it is listed above.
            match class {
                Class::Content
                | Class::Changed
                | Class::Pending
                | Class::BadRequest
                | Class::Unauthorized
                | Class::Forbidden
                | Class::NotFound
                | Class::NotAcceptable
                | Class::PayloadTooLarge
                | Class::UnsupportedContentFormat
                | Class::TooManyRequests
                | Class::Internal
                | Class::BadGateway
                | Class::ServiceUnavailable => {}
            }
            let rows = Class::TABLE.iter().filter(|(c, ..)| *c == class).count();
            assert_eq!(rows, 1, "{class:?}");
        }
        assert_eq!(Class::TABLE.len(), all.len());
    }

    #[test]
    fn rfc8075_7_rfc9148_5_5_the_pairs_follow_the_mapping() {
        for (class, http, coap) in Class::TABLE {
            assert_eq!(class.http_status(), http);
            assert_eq!(class.coap_code(), coap);
            if EXCEPTIONS.contains(&(class, http, coap)) {
                continue;
            }
            let row = RFC8075_TABLE_2
                .iter()
                .find(|(c, _)| *c == coap)
                .unwrap_or_else(|| panic!("{class:?}: {coap} is not in RFC 8075 Table 2"));
            assert!(
                row.1.contains(&http),
                "{class:?}: {coap} is not HTTP {http}"
            );
        }
        // Refusals keep their number across: 4xx ↔ 4.xx, 5xx ↔ 5.xx (RFC 9148 §5.5).
        for (class, http, coap) in Class::TABLE {
            if http >= 400 {
                assert_eq!(u16::from(coap.class()), http / 100, "{class:?}");
                assert_eq!(u16::from(coap.detail()), http % 100, "{class:?}");
            }
        }
    }

    #[test]
    fn rfc9148_5_5_est_codes() {
        // GET answers 2.05, POST answers 2.04; both are HTTP 200.
        assert_eq!(Class::Content.coap_code().to_string(), "2.05");
        assert_eq!(Class::Changed.coap_code().to_string(), "2.04");
        assert_eq!(Class::Content.http_status(), 200);
        assert_eq!(Class::Changed.http_status(), 200);
        // 400, 401, 403, 404 and 503 have their equivalents.
        for (http, coap) in [
            (400, "4.00"),
            (401, "4.01"),
            (403, "4.03"),
            (404, "4.04"),
            (503, "5.03"),
        ] {
            let class = Class::of_http_refusal(http).expect("a class");
            assert_eq!(class.coap_code().to_string(), coap);
        }
        // cBRSKI §6.4: 406 and 415 too; 202 is a delayed answer, 5.03 with Max-Age.
        assert_eq!(Class::NotAcceptable.coap_code().to_string(), "4.06");
        assert_eq!(
            Class::UnsupportedContentFormat.coap_code().to_string(),
            "4.15"
        );
        assert_eq!(Class::Pending.coap_code(), CoapCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn refusal_classes_by_http_status() {
        for (class, http, _) in Class::TABLE {
            let back = Class::of_http_refusal(http);
            if http >= 400 {
                assert_eq!(back, Some(class));
            } else {
                assert_eq!(back, None);
            }
        }
        assert_eq!(Class::of_http_refusal(409), None);
        assert_eq!(Class::of_http_refusal(504), None);
    }

    #[test]
    fn rfc9148_4_7_coap_answers_as_http_statuses() {
        for (class, http, coap) in Class::TABLE {
            if class != Class::ServiceUnavailable && class != Class::Pending {
                assert_eq!(Class::http_status_of_coap(coap, false), http, "{coap}");
            }
        }
        assert_eq!(
            Class::http_status_of_coap(CoapCode::SERVICE_UNAVAILABLE, true),
            202
        );
        assert_eq!(
            Class::http_status_of_coap(CoapCode::SERVICE_UNAVAILABLE, false),
            503
        );
        assert_eq!(Class::http_status_of_coap(CoapCode::new(2, 1), false), 200);
        assert_eq!(Class::http_status_of_coap(CoapCode::new(4, 5), false), 400);
        assert_eq!(Class::http_status_of_coap(CoapCode::new(5, 4), false), 500);
    }

    #[test]
    fn coap_codes_print_as_c_dd() {
        assert_eq!(CoapCode::new(4, 13).to_string(), "4.13");
        assert_eq!(CoapCode::new(4, 13).0, 0x8d);
        assert_eq!(CoapCode::CONTENT.0, 0x45);
        assert_eq!(CoapCode::TOO_MANY_REQUESTS.to_string(), "4.29");
    }
}
