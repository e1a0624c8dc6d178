//! RFC 3339 §5.6 date-times written by the suite (`created-on`, `expires-on`, audit `date`):
//! UTC, whole seconds.

use brski_common::brski::date_time;
use time::macros::datetime;

#[test]
fn rfc3339_5_6_date_time_is_written_in_whole_seconds() {
    let d = date_time(datetime!(2026-03-04 05:06:07.891_234 UTC));
    assert_eq!(d.as_str(), "2026-03-04T05:06:07Z");
    // Another offset is converted to UTC; the fraction is dropped, not rounded.
    let d = date_time(datetime!(2026-03-04 23:59:59.999 -01:00));
    assert_eq!(d.as_str(), "2026-03-05T00:59:59Z");
    // A whole-second instant is unchanged.
    let d = date_time(datetime!(1970-01-01 00:00:00 UTC));
    assert_eq!(d.as_str(), "1970-01-01T00:00:00Z");
    assert_eq!(
        d.instant(),
        datetime!(1970-01-01 00:00:00 UTC),
        "the text parses back"
    );
}
