//! Property tests: telemetry decoders never panic; encoders round-trip.

use brski_common::telemetry::{ReasonContext, StatusTelemetry};
use brski_common::test_vectors::bytes;
use brski_common::test_vectors::mutate;
use ciborium::Value;
use proptest::prelude::*;

const VECTORS: [&str; 5] = [
    "cbrski/B.1-enrollstatus-success.cbor.hex",
    "cbrski/B.1-enrollstatus-failure.cbor.hex",
    "cbrski/B.2-voucher-status.cbor.hex",
    "rfc8995/5.7-voucher-status-example.json",
    "rfc8995/5.9.4-enrollstatus-example.json",
];

fn decode_both(data: &[u8]) {
    let decoded = [
        StatusTelemetry::from_json(data),
        StatusTelemetry::from_cbor(data),
    ];
    for t in decoded.into_iter().flatten() {
        // Whatever decodes re-encodes as CBOR, and that encoding is stable (bytes are
        // compared, so a NaN in reason-context does not defeat the check).
        let cbor = t.to_cbor().expect("CBOR encoding");
        let again = StatusTelemetry::from_cbor(&cbor).expect("re-decodes");
        assert_eq!(again.to_cbor().expect("CBOR encoding"), cbor);
        assert_eq!(
            (again.version, again.status, &again.reason),
            (t.version, t.status, &t.reason)
        );
        let _ = t.to_json();
    }
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ]
}

fn report() -> impl Strategy<Value = StatusTelemetry> {
    (
        any::<u64>(),
        any::<bool>(),
        prop::option::of("\\PC{0,30}"),
        prop::option::of(prop::collection::vec(("[a-z-]{1,8}", scalar()), 0..4)),
    )
        .prop_map(|(version, status, reason, context)| StatusTelemetry {
            version,
            status,
            reason,
            reason_context: context.map(|entries| {
                ReasonContext(
                    entries
                        .into_iter()
                        .map(|(k, v)| (Value::from(k), v))
                        .collect(),
                )
            }),
            unknown: Vec::new(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
        decode_both(&data);
    }

    #[test]
    fn random_json_text_never_panics(text in "[{}\\[\\]\":,0-9a-z \\-.]{0,80}") {
        decode_both(text.as_bytes());
    }

    #[test]
    fn mutated_vectors_never_panic(
        which in 0..VECTORS.len(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        decode_both(&mutate(bytes(VECTORS[which]), &edits));
    }

    #[test]
    fn reports_round_trip_through_json_and_cbor(t in report()) {
        prop_assert_eq!(&StatusTelemetry::from_cbor(&t.to_cbor().expect("cbor")).expect("decodes"), &t);
        prop_assert_eq!(&StatusTelemetry::from_json(&t.to_json().expect("json")).expect("decodes"), &t);
    }
}
