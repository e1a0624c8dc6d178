//! cBRSKI §6.5.1 and Appendix B: status telemetry as CBOR with text keys.

use brski_common::telemetry::{ReasonContext, StatusTelemetry, TelemetryError};
use brski_common::test_vectors::bytes;
use ciborium::Value;

#[test]
fn cbrski_b_1_enrollstatus_success_decodes_and_reencodes() {
    let cbor = bytes("cbrski/B.1-enrollstatus-success.cbor.hex");
    assert_eq!(cbor.len(), 18);
    let t = StatusTelemetry::from_cbor(&cbor).expect("B.1 success decodes");
    assert_eq!(t, StatusTelemetry::success());
    assert_eq!(t.to_cbor().expect("encodes"), cbor);
    assert_eq!(StatusTelemetry::success().to_cbor().expect("encodes"), cbor);
}

#[test]
fn cbrski_b_1_enrollstatus_failure_decodes_and_reencodes() {
    let cbor = bytes("cbrski/B.1-enrollstatus-failure.cbor.hex");
    assert_eq!(cbor.len(), 69);
    let t = StatusTelemetry::from_cbor(&cbor).expect("B.1 failure decodes");
    assert_eq!(t.version, 1);
    assert!(!t.status);
    assert_eq!(
        t.reason.as_deref(),
        Some("<Informative human readable error message>")
    );
    assert_eq!(t.reason_context, None);
    assert_eq!(t.to_cbor().expect("encodes"), cbor);
}

#[test]
fn cbrski_b_2_voucher_status_decodes_and_reencodes() {
    let cbor = bytes("cbrski/B.2-voucher-status.cbor.hex");
    assert_eq!(cbor.len(), 107);
    let t = StatusTelemetry::from_cbor(&cbor).expect("B.2 decodes");
    assert_eq!(t.version, 1);
    assert!(!t.status);
    assert_eq!(
        t.reason.as_deref(),
        Some("Informative human-readable error message")
    );
    assert_eq!(
        t.reason_context,
        Some(ReasonContext(vec![(
            Value::from(0),
            Value::from("Additional information")
        )]))
    );
    assert!(t.unknown.is_empty());
    assert_eq!(t.to_cbor().expect("encodes"), cbor);
    // The integer key has a JSON form, and JSON → CBOR keeps the rest.
    let json = t.to_json().expect("JSON form");
    assert_eq!(
        String::from_utf8(json.clone()).expect("utf-8"),
        r#"{"version":1,"status":false,"reason":"Informative human-readable error message","reason-context":{"0":"Additional information"}}"#
    );
    let via_json = StatusTelemetry::from_json(&json).expect("decodes");
    assert_eq!(via_json.reason, t.reason);
    assert_eq!(
        via_json.reason_context.as_ref().and_then(|c| c.get("0")),
        Some(&Value::from("Additional information"))
    );
}

#[test]
fn cbrski_6_5_1_json_example_carries_over_to_cbor() {
    let t = StatusTelemetry::from_json(&bytes("rfc8995/5.7-voucher-status-example.json"))
        .expect("decodes");
    let cbor = t.to_cbor().expect("encodes");
    assert_eq!(cbor[0], 0xa4, "map of four");
    assert_eq!(StatusTelemetry::from_cbor(&cbor).expect("decodes"), t);
}

#[test]
fn cbrski_6_5_1_cbor_rejections() {
    let good = bytes("cbrski/B.1-enrollstatus-success.cbor.hex");
    let mut trailing = good.clone();
    trailing.push(0x00);
    assert!(matches!(
        StatusTelemetry::from_cbor(&trailing),
        Err(TelemetryError::Cbor(_))
    ));
    assert!(matches!(
        StatusTelemetry::from_cbor(&good[..good.len() - 1]),
        Err(TelemetryError::Cbor(_))
    ));
    assert!(matches!(
        StatusTelemetry::from_cbor(&[]),
        Err(TelemetryError::Cbor(_))
    ));
    assert!(matches!(
        StatusTelemetry::from_cbor(&[0x82, 0x01, 0xf5]),
        Err(TelemetryError::NotAMap)
    ));
    // {"version": 1}
    let no_status = [0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x01];
    assert!(matches!(
        StatusTelemetry::from_cbor(&no_status),
        Err(TelemetryError::MissingField("status"))
    ));
    // {"version": 1, "status": 1}
    let int_status = [
        0xa2, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x01, 0x66, b's', b't', b'a', b't',
        b'u', b's', 0x01,
    ];
    assert!(matches!(
        StatusTelemetry::from_cbor(&int_status),
        Err(TelemetryError::WrongType {
            field: "status",
            ..
        })
    ));
}

#[test]
fn cbrski_6_5_1_unknown_integer_keys_are_reported() {
    // {"version": 1, "status": true, 7: h''}
    let cbor = [
        0xa3, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x01, 0x66, b's', b't', b'a', b't',
        b'u', b's', 0xf5, 0x07, 0x40,
    ];
    let t = StatusTelemetry::from_cbor(&cbor).expect("decodes");
    assert!(t.status);
    assert_eq!(t.unknown, vec!["7"]);
}
