//! The registrar-side bounds of status telemetry (RFC 8995 §5.7, §5.9.4).

use brski_common::telemetry::{
    MAX_BODY_BYTES, MAX_STORED_REASON_CHARS, StatusTelemetry, truncate_chars,
};

#[test]
fn rfc8995_5_7_truncation_counts_characters_not_bytes() {
    assert_eq!(truncate_chars("abc", 5), "abc");
    assert_eq!(truncate_chars("abcdef", 3), "abc");
    // Multi-byte characters are never split.
    assert_eq!(truncate_chars("éé中中", 3), "éé中");
    let long = "中".repeat(MAX_STORED_REASON_CHARS + 10);
    assert_eq!(
        truncate_chars(&long, MAX_STORED_REASON_CHARS)
            .chars()
            .count(),
        MAX_STORED_REASON_CHARS
    );
}

#[test]
fn rfc8995_5_7_a_stored_size_reason_fits_in_the_body_limit() {
    // A report whose reason has the stored length (ASCII) is well under the body limit, so
    // the limit never refuses what the registrar would keep.
    let t = StatusTelemetry::failure("r".repeat(MAX_STORED_REASON_CHARS));
    assert!(t.to_json().expect("json").len() < MAX_BODY_BYTES);
    assert!(t.to_cbor().expect("cbor").len() < MAX_BODY_BYTES);
}
