//! RFC 8995 §5.7 (voucher_status) and §5.9.4 (enrollstatus) JSON telemetry.

use brski_common::telemetry::{ReasonContext, StatusTelemetry, TelemetryError, VERSION};
use brski_common::test_vectors::bytes;
use ciborium::Value;

#[test]
fn rfc8995_5_7_voucher_status_example_decodes() {
    let t = StatusTelemetry::from_json(&bytes("rfc8995/5.7-voucher-status-example.json"))
        .expect("5.7 example decodes");
    assert_eq!(t.version, 1);
    assert!(!t.status);
    assert_eq!(
        t.reason.as_deref(),
        Some("Informative human-readable message")
    );
    let context = t.reason_context.as_ref().expect("reason-context");
    assert_eq!(context.0.len(), 1);
    assert_eq!(context.get("additional"), Some(&Value::from("JSON")));
    assert!(t.unknown.is_empty());
    assert_eq!(
        String::from_utf8(t.to_json().expect("encodes")).expect("utf-8"),
        r#"{"version":1,"status":false,"reason":"Informative human-readable message","reason-context":{"additional":"JSON"}}"#
    );
}

#[test]
fn rfc8995_5_9_4_enrollstatus_example_decodes() {
    let t = StatusTelemetry::from_json(&bytes("rfc8995/5.9.4-enrollstatus-example.json"))
        .expect("5.9.4 example decodes");
    assert_eq!(t.version, 1);
    assert!(t.status);
    assert_eq!(
        t.reason.as_deref(),
        Some("Informative human readable message")
    );
    assert_eq!(
        t.reason_context.as_ref().and_then(|c| c.get("additional")),
        Some(&Value::from("JSON"))
    );
    let again = StatusTelemetry::from_json(&t.to_json().expect("encodes")).expect("re-decodes");
    assert_eq!(again, t);
}

#[test]
fn rfc8995_5_7_strict_encoding_of_built_reports() {
    assert_eq!(
        StatusTelemetry::success().to_json().expect("encodes"),
        br#"{"version":1,"status":true}"#
    );
    let failure = StatusTelemetry::failure("nonce mismatch").with_reason_context(
        ReasonContext::new()
            .with("expected", "abc")
            .with("attempt", 3)
            .with(
                "details",
                Value::Array(vec![Value::Null, Value::Bool(true)]),
            ),
    );
    assert_eq!(
        String::from_utf8(failure.to_json().expect("encodes")).expect("utf-8"),
        r#"{"version":1,"status":false,"reason":"nonce mismatch","reason-context":{"expected":"abc","attempt":3,"details":[null,true]}}"#
    );
    assert_eq!(VERSION, 1);
}

#[test]
fn rfc8995_5_7_lenient_decoding_of_deployed_forms() {
    // Earlier drafts of RFC 8995 print "version":"1"; some pledges send booleans as strings.
    let t = StatusTelemetry::from_json(br#"{"version":"1","status":"false","reason":null}"#)
        .expect("decodes");
    assert_eq!((t.version, t.status, t.reason.as_deref()), (1, false, None));
    assert_eq!(
        t.to_json().expect("encodes"),
        br#"{"version":1,"status":false}"#
    );
    let t = StatusTelemetry::from_json(br#"{"status":"TRUE","version":2,"reason-context":null}"#)
        .expect("decodes");
    assert!(t.status);
    assert!(t.is_newer_version());
    assert_eq!(t.reason_context, None);
}

#[test]
fn rfc8995_5_7_unknown_keys_are_ignored_and_reported() {
    let t = StatusTelemetry::from_json(
        br#"{"version":1,"Status":false,"status":true,"extra":{"a":1},"Reason":"x"}"#,
    )
    .expect("decodes");
    assert!(
        t.status,
        "keys are case-sensitive: \"Status\" is not \"status\""
    );
    assert_eq!(t.reason, None);
    assert_eq!(t.unknown, vec!["Status", "extra", "Reason"]);
    assert_eq!(
        t.to_json().expect("encodes"),
        br#"{"version":1,"status":true}"#
    );
}

#[test]
fn rfc8995_5_7_json_without_status_is_rejected() {
    assert!(matches!(
        StatusTelemetry::from_json(br#"{"version":1,"reason":"x"}"#),
        Err(TelemetryError::MissingField("status"))
    ));
}

#[test]
fn rfc8995_5_7_json_without_version_is_rejected() {
    assert!(matches!(
        StatusTelemetry::from_json(br#"{"status":true}"#),
        Err(TelemetryError::MissingField("version"))
    ));
}

#[test]
fn rfc8995_5_7_wrong_types_are_rejected() {
    let cases: [(&[u8], &str); 9] = [
        (br#"{"version":1,"status":1}"#, "status"),
        (br#"{"version":1,"status":"yes"}"#, "status"),
        (br#"{"version":-1,"status":true}"#, "version"),
        (br#"{"version":1.5,"status":true}"#, "version"),
        (br#"{"version":"one","status":true}"#, "version"),
        (br#"{"version":"+1","status":true}"#, "version"),
        (br#"{"version":true,"status":true}"#, "version"),
        (br#"{"version":1,"status":true,"reason":5}"#, "reason"),
        (
            br#"{"version":1,"status":true,"reason-context":"text"}"#,
            "reason-context",
        ),
    ];
    for (json, field) in cases {
        match StatusTelemetry::from_json(json) {
            Err(TelemetryError::WrongType { field: f, .. }) => {
                assert_eq!(f, field, "{}", String::from_utf8_lossy(json));
            }
            other => panic!("{}: {other:?}", String::from_utf8_lossy(json)),
        }
    }
}

#[test]
fn rfc8995_5_7_duplicate_and_malformed_json_is_rejected() {
    assert!(matches!(
        StatusTelemetry::from_json(br#"{"version":1,"status":true,"status":false}"#),
        Err(TelemetryError::DuplicateField("status"))
    ));
    assert!(matches!(
        StatusTelemetry::from_json(br#"{"version":1,"version":1,"status":true}"#),
        Err(TelemetryError::DuplicateField("version"))
    ));
    assert!(matches!(
        StatusTelemetry::from_json(br#"[1,true]"#),
        Err(TelemetryError::NotAMap)
    ));
    for bad in [&b""[..], b"{", br#"{"version":1,"status":true}x"#, b"\xff"] {
        assert!(
            matches!(
                StatusTelemetry::from_json(bad),
                Err(TelemetryError::Json(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn rfc8995_5_7_reason_context_without_json_form_is_rejected() {
    let t = StatusTelemetry::failure("x")
        .with_reason_context(ReasonContext(vec![(Value::Bytes(vec![1]), Value::Null)]));
    assert!(matches!(t.to_json(), Err(TelemetryError::NotJson(_))));
    // CBOR has no such limit.
    let back = StatusTelemetry::from_cbor(&t.to_cbor().expect("encodes")).expect("decodes");
    assert_eq!(back, t);
}
