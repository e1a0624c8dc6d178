//! Voucher-status and enrollment-status telemetry (RFC 8995 §5.7, §5.9.4; cBRSKI CBOR form):
//! JSON and CBOR bodies; what decodes re-encodes.
#![no_main]
use brski_common::telemetry::StatusTelemetry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(t) = StatusTelemetry::from_json(data) {
        let _ = t.is_newer_version();
        let json = t.to_json().expect("decoded telemetry encodes");
        StatusTelemetry::from_json(&json).expect("re-encoded telemetry decodes");
    }
    if let Ok(t) = StatusTelemetry::from_cbor(data) {
        let cbor = t.to_cbor().expect("decoded telemetry encodes");
        StatusTelemetry::from_cbor(&cbor).expect("re-encoded telemetry decodes");
    }
});
