//! Waiting: `Retry-After` after a 202 (RFC 8995 §5.6, RFC 7030 §4.2.3, RFC 9110 §10.2.3) and
//! exponential backoff with jitter between attempts (RFC 8995 §4.1).

use std::time::{Duration, SystemTime};

/// RFC 8995 §5.6: the pledge caps `Retry-After` at 60 seconds for the voucher request.
pub const VOUCHER_RETRY_CAP: Duration = Duration::from_secs(60);
/// RFC 8995 §5.6: keep retrying a pending voucher request for up to 4 days.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(4 * 24 * 3600);
/// The wait when a 202 carries no usable `Retry-After` (the server MUST send one).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Never resend sooner than this, even when told `Retry-After: 0`.
const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Parse a `Retry-After` value (RFC 9110 §10.2.3): delay-seconds, or an IMF-fixdate taken
/// relative to `now` (a date in the past means no delay).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits to fit: as long as it gets; the caller caps it.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, format)
        .ok()?
        .assume_utc();
    let now = time::OffsetDateTime::from(now);
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

/// How long to wait before resending after a 202: the `Retry-After` value (60 s when absent
/// or unreadable), at least 1 s, at most `cap` when given.
pub fn pending_wait(retry_after: Option<&str>, cap: Option<Duration>, now: SystemTime) -> Duration {
    let wait = retry_after
        .and_then(|v| parse_retry_after(v, now))
        .unwrap_or(DEFAULT_RETRY_AFTER)
        .max(MIN_RETRY_AFTER);
    match cap {
        Some(cap) => wait.min(cap),
        None => wait,
    }
}

/// Exponential backoff: `first`, doubling up to `max`, each delay varied by ±20 % so that many
/// pledges restarted together do not retry in lockstep.
#[derive(Clone, Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        jitter(base, random_fraction()).min(self.max)
    }

    /// Start over from the first delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// `base` scaled by a factor between 0.8 and 1.2 chosen by `fraction` in [0, 1].
fn jitter(base: Duration, fraction: f64) -> Duration {
    base.mul_f64(0.8 + 0.4 * fraction.clamp(0.0, 1.0))
}

/// A random number in [0, 1]; 0.5 if the system has no randomness to give.
fn random_fraction() -> f64 {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; 4];
    match aws_lc_rs::rand::SystemRandom::new().fill(&mut b) {
        Ok(()) => f64::from(u32::from_be_bytes(b)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn epoch(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rfc9110_10_2_3_delay_seconds_and_http_date() {
        let now = epoch(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 5 ", now), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "-1", "1.5", "soon", "Sunday, 06-Nov-94 08:49:37 GMT"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn rfc8995_5_6_retry_after_is_capped_at_60_seconds_for_vouchers() {
        let now = epoch(0);
        let cap = Some(VOUCHER_RETRY_CAP);
        assert_eq!(pending_wait(Some("3600"), cap, now), VOUCHER_RETRY_CAP);
        assert_eq!(pending_wait(Some("2"), cap, now), Duration::from_secs(2));
        assert_eq!(pending_wait(Some("0"), cap, now), MIN_RETRY_AFTER);
        assert_eq!(pending_wait(None, cap, now), DEFAULT_RETRY_AFTER);
        assert_eq!(pending_wait(Some("junk"), cap, now), DEFAULT_RETRY_AFTER);
        assert_eq!(
            pending_wait(Some("3600"), None, now),
            Duration::from_secs(3600),
            "EST waits as long as asked (RFC 7030 §4.2.3)"
        );
    }

    #[test]
    fn backoff_doubles_to_the_maximum_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let bases = [1u64, 2, 4, 8, 16, 32, 60, 60];
        for base in bases {
            let d = b.next_delay();
            let base = Duration::from_secs(base);
            assert!(d >= base.mul_f64(0.8), "{d:?} < 0.8 × {base:?}");
            assert!(d <= base.mul_f64(1.2).min(Duration::from_secs(60)), "{d:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(1200));
        assert_eq!(jitter(Duration::from_secs(10), 0.0), Duration::from_secs(8));
        assert_eq!(
            jitter(Duration::from_secs(10), 1.0),
            Duration::from_secs(12)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn retry_after_parser_never_panics(s in ".{0,60}", now in 0u64..4_000_000_000) {
            let _ = parse_retry_after(&s, epoch(now));
            let w = pending_wait(Some(&s), Some(VOUCHER_RETRY_CAP), epoch(now));
            prop_assert!(w >= MIN_RETRY_AFTER && w <= VOUCHER_RETRY_CAP);
        }

        #[test]
        fn http_dates_round_trip(secs in 0u64..4_000_000_000, delta in 0u64..100_000) {
            let at = time::OffsetDateTime::from(epoch(secs + delta));
            let format = time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            );
            let text = at.format(format).expect("format");
            prop_assert_eq!(parse_retry_after(&text, epoch(secs)), Some(Duration::from_secs(delta)));
        }
    }
}
