//! Property tests of the voucher codecs: no input makes a decoder panic (random bytes and
//! mutated example artifacts), and every model value survives JSON (RFC 7951) and CBOR
//! (RFC 9254) encoding unchanged.

use brski_common::test_vectors::bytes;
use brski_common::voucher::{
    Assertion, DateTime, ExtensionId, Leaf, Nonce, Voucher, VoucherRequest,
};
use ciborium::Value;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use time::{OffsetDateTime, UtcOffset};

const JSON_VECTORS: [&str; 12] = [
    "rfc8995/3.3-example1-pvr.json",
    "rfc8995/3.3-example2-rvr.json",
    "rfc8995/5.6-voucher-example.json",
    "rfc8995/C.2.1-pledge-voucher-request.econtent.json",
    "rfc8995/C.2.2-registrar-voucher-request.econtent.json",
    "rfc8995/C.2.3-voucher.econtent.json",
    "rfc8366/5.2-voucher-nonceless.json",
    "rfc8366bis/8.3-voucher-with-extension.json",
    "jws-voucher/8.1-pvr.payload.json",
    "jws-voucher/8.2-rvr.payload.json",
    "jws-voucher/8.3-voucher.payload.json",
    "jws-voucher/3-voucher-data-example.json",
];

const CBOR_VECTORS: [&str; 3] = [
    "cbrski/C.3-pvr.payload.hex",
    "cbrski/C.4-rvr.payload.hex",
    "cbrski/C.5-voucher.payload.hex",
];

/// A mutation of a byte string: replace, insert or delete at a position (taken modulo the
/// length), or truncate.
#[derive(Clone, Debug)]
enum Mutation {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut data: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = data.len();
        match *m {
            Mutation::Replace(i, b) if len > 0 => data[i % len] = b,
            Mutation::Insert(i, b) => data.insert(i % (len + 1), b),
            Mutation::Delete(i) if len > 0 => {
                data.remove(i % len);
            }
            Mutation::Truncate(i) => data.truncate(i % (len + 1)),
            _ => {}
        }
    }
    data
}

/// Decode with every decoder; each returns Ok or Err, none panics.
fn decode_all(data: &[u8]) {
    let _ = Voucher::from_json(data);
    let _ = VoucherRequest::from_json(data);
    let _ = Voucher::from_cbor(data);
    let _ = VoucherRequest::from_cbor(data);
}

fn binary() -> impl Strategy<Value = Option<Vec<u8>>> {
    option::of(vec(any::<u8>(), 0..48))
}

fn date() -> impl Strategy<Value = Option<DateTime>> {
    option::of(
        (0i64..253_402_300_799, 0u32..1_000_000_000, -1439i32..1440).prop_filter_map(
            "representable",
            |(secs, nanos, offset_minutes)| {
                let utc = OffsetDateTime::from_unix_timestamp(secs)
                    .ok()?
                    .replace_nanosecond(nanos)
                    .ok()?;
                let offset = UtcOffset::from_whole_seconds(offset_minutes * 60).ok()?;
                DateTime::try_from(utc.checked_to_offset(offset)?).ok()
            },
        ),
    )
}

fn extension_ids() -> impl Strategy<Value = Vec<ExtensionId>> {
    vec(
        prop_oneof![
            any::<u64>().prop_map(ExtensionId::Sid),
            "[a-z][a-z0-9-]{0,20}".prop_map(ExtensionId::Name),
        ],
        0..4,
    )
}

fn voucher() -> impl Strategy<Value = Voucher> {
    (
        (
            option::of(select(Assertion::ALL.to_vec())),
            date(),
            option::of(any::<bool>()),
            date(),
            binary(),
            date(),
            option::of(vec(any::<u8>(), Nonce::LENGTH).prop_map(Nonce::Bytes)),
        ),
        (
            binary(),
            binary(),
            binary(),
            "\\PC{0,24}",
            option::of("\\PC{0,24}"),
            option::of("\\PC{0,24}"),
            binary(),
            extension_ids(),
        ),
    )
        .prop_map(
            |(
                (assertion, created_on, checks, expires_on, idevid_issuer, last_renewal, nonce),
                (cert, pubk, pubk_sha256, serial, url, est, proprietary, extensions),
            )| Voucher {
                assertion,
                created_on,
                domain_cert_revocation_checks: checks,
                expires_on,
                idevid_issuer,
                last_renewal_date: last_renewal,
                nonce,
                pinned_domain_cert: cert,
                pinned_domain_pubk: pubk,
                pinned_domain_pubk_sha256: pubk_sha256,
                serial_number: serial,
                additional_configuration_url: url,
                est_domain: est,
                manufacturer_proprietary: proprietary,
                extensions,
                extension_data: Vec::new(),
            },
        )
}

fn voucher_request() -> impl Strategy<Value = VoucherRequest> {
    (
        voucher(),
        (
            binary(),
            binary(),
            binary(),
            binary(),
            binary(),
            binary(),
            binary(),
        ),
    )
        .prop_map(
            |(v, (prior, cert, sha256, pubk, agent_cert, sign_cert, signed))| VoucherRequest {
                assertion: v.assertion,
                created_on: v.created_on,
                domain_cert_revocation_checks: v.domain_cert_revocation_checks,
                expires_on: v.expires_on,
                idevid_issuer: v.idevid_issuer,
                last_renewal_date: v.last_renewal_date,
                nonce: v.nonce,
                pinned_domain_cert: v.pinned_domain_cert,
                pinned_domain_pubk: v.pinned_domain_pubk,
                pinned_domain_pubk_sha256: v.pinned_domain_pubk_sha256,
                serial_number: v.serial_number,
                additional_configuration_url: v.additional_configuration_url,
                est_domain: v.est_domain,
                manufacturer_proprietary: v.manufacturer_proprietary,
                extensions: v.extensions,
                extension_data: Vec::new(),
                prior_signed_voucher_request: prior,
                proximity_registrar_cert: cert,
                proximity_registrar_pubk_sha256: sha256,
                proximity_registrar_pubk: pubk,
                agent_provided_proximity_registrar_cert: agent_cert,
                agent_sign_cert: sign_cert,
                agent_signed_data: signed,
            },
        )
}

/// Any CBOR value, a few levels deep.
fn cbor_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|i| Value::Integer(i.into())),
        any::<u64>().prop_map(|i| Value::Integer(i.into())),
        any::<bool>().prop_map(Value::Bool),
        vec(any::<u8>(), 0..16).prop_map(Value::Bytes),
        "\\PC{0,16}".prop_map(Value::Text),
        Just(Value::Null),
        any::<f64>().prop_map(Value::Float),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((inner.clone(), inner.clone()), 0..6).prop_map(Value::Map),
            (0u64..64, inner).prop_map(|(tag, v)| Value::Tag(tag, Box::new(v))),
        ]
    })
}

/// Keys that hit the leaves: deltas, tag-47 absolute SIDs and names.
fn cbor_key() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..30).prop_map(|i| Value::Integer(i.into())),
        (2440u64..2530).prop_map(|sid| Value::Tag(47, Box::new(Value::Integer(sid.into())))),
        select(Leaf::ALL.to_vec()).prop_map(|leaf| Value::Text(leaf.name().into())),
        cbor_value(),
    ]
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[A-Za-z0-9+/=_:.-]{0,24}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            vec(("[a-z:-]{0,12}", inner), 0..6)
                .prop_map(|members| serde_json::Value::Object(members.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(data in vec(any::<u8>(), 0..512)) {
        decode_all(&data);
    }

    #[test]
    fn random_json_shaped_input_never_panics(
        inner in "[\"{}\\[\\]:,0-9a-z\\- ]{0,200}",
    ) {
        decode_all(format!(r#"{{"ietf-voucher:voucher":{{{inner}}}}}"#).as_bytes());
        decode_all(format!(r#"{{"ietf-voucher-request:voucher":{inner}}}"#).as_bytes());
    }

    #[test]
    fn mutated_json_vectors_never_panic(
        which in 0..JSON_VECTORS.len(),
        mutations in vec(mutation(), 1..8),
    ) {
        decode_all(&mutate(bytes(JSON_VECTORS[which]), &mutations));
    }

    #[test]
    fn mutated_cbor_vectors_never_panic(
        which in 0..CBOR_VECTORS.len(),
        mutations in vec(mutation(), 1..8),
    ) {
        decode_all(&mutate(bytes(CBOR_VECTORS[which]), &mutations));
    }

    #[test]
    fn random_cbor_containers_never_panic(
        members in vec((cbor_key(), cbor_value()), 0..12),
    ) {
        for root in [2451u64, 2501] {
            let doc = Value::Map(vec![(Value::Integer(root.into()), Value::Map(members.clone()))]);
            let mut data = Vec::new();
            ciborium::ser::into_writer(&doc, &mut data).expect("encode");
            decode_all(&data);
        }
    }

    #[test]
    fn random_json_containers_never_panic(
        members in vec((select(Leaf::ALL.to_vec()), json_value()), 0..12),
    ) {
        let inner: serde_json::Map<String, serde_json::Value> = members
            .into_iter()
            .map(|(leaf, v)| (leaf.name().to_string(), v))
            .collect();
        for root in ["ietf-voucher:voucher", "ietf-voucher-request:voucher"] {
            let doc = serde_json::json!({ root: inner.clone() });
            decode_all(&serde_json::to_vec(&doc).expect("encode"));
        }
    }

    #[test]
    fn voucher_survives_json(v in voucher()) {
        let json = v.to_json().expect("to_json");
        prop_assert_eq!(Voucher::from_json(&json).expect("from_json"), v);
    }

    #[test]
    fn voucher_survives_cbor(v in voucher()) {
        let cbor = v.to_cbor().expect("to_cbor");
        let decoded = Voucher::from_cbor(&cbor).expect("from_cbor");
        // Re-encoding is byte-identical.
        prop_assert_eq!(decoded.to_cbor().expect("to_cbor"), cbor);
        prop_assert_eq!(decoded, v);
    }

    #[test]
    fn voucher_request_survives_json_and_cbor(vr in voucher_request()) {
        let json = vr.to_json().expect("to_json");
        prop_assert_eq!(&VoucherRequest::from_json(&json).expect("from_json"), &vr);
        let cbor = vr.to_cbor().expect("to_cbor");
        prop_assert_eq!(VoucherRequest::from_cbor(&cbor).expect("from_cbor"), vr);
    }
}
