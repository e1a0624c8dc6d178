//! Property tests: the EST decoders never panic on random or mutated input, and the encoders
//! round-trip.

use brski_common::est::{
    ContentFormat, CsrAttrs, MultipartPart, RawOid, decode_base64_body, decode_certs_only,
    decode_certs_only_body, decode_crts_multipart, decode_multipart_core, decode_pkcs10,
    decode_pkcs10_body, encode_base64_body, encode_certs_only, encode_multipart_core,
};
use brski_common::test_vectors::bytes;
use brski_common::test_vectors::mutate;
use proptest::prelude::*;

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6)
}

const DER_VECTORS: [&str; 8] = [
    "rfc7030/A.1-cacerts-response.b64",
    "rfc7030/A.3-simpleenroll-response.b64",
    "rfc7030/A.3-simpleenroll-request.b64",
    "rfc7030/A.2-csrattrs-response.b64",
    "rfc7030/4.5.2-csrattrs-example.b64",
    "est-coaps/A.1-crts-response-pkcs7.hex",
    "est-coaps/A.2-sen-request-csr.hex",
    "est-coaps/A.3-skg-response-multipart.hex",
];

/// Run every DER/CBOR decoder on `data`; none may panic.
fn decode_all(data: &[u8]) {
    if let Ok(certs) = decode_certs_only(data) {
        let again = encode_certs_only(&certs).expect("decoded certificates re-encode");
        assert_eq!(decode_certs_only(&again).expect("re-decodes"), certs);
    }
    let _ = decode_pkcs10(data);
    if let Ok(attrs) = CsrAttrs::from_der(data) {
        let der = attrs.to_der().expect("decoded CsrAttrs re-encode");
        let again = CsrAttrs::from_der(&der).expect("re-decodes");
        assert_eq!(again.to_der().expect("stable"), der);
        let _ = (
            attrs.requested_key(),
            attrs.requested_hash(),
            attrs.requested_extensions(),
            attrs.requests_challenge_password(),
        );
    }
    if let Ok(parts) = decode_multipart_core(data) {
        assert_eq!(
            decode_multipart_core(&encode_multipart_core(&parts)).expect("re-decodes"),
            parts
        );
    }
    let _ = decode_crts_multipart(data);
    let _ = RawOid::from_der_content(data);
}

/// Run every base64-body decoder on `data`; none may panic.
fn decode_all_bodies(data: &[u8]) {
    let _ = decode_base64_body(data);
    let _ = decode_certs_only_body(data);
    let _ = decode_pkcs10_body(data);
    let _ = CsrAttrs::from_body(data);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        decode_all(&data);
        decode_all_bodies(&data);
    }

    #[test]
    fn mutated_vectors_never_panic(which in 0..DER_VECTORS.len(), edits in edits()) {
        let data = mutate(bytes(DER_VECTORS[which]), &edits);
        decode_all(&data);
        decode_all_bodies(&encode_base64_body(&data).into_bytes());
    }

    #[test]
    fn mutated_base64_bodies_never_panic(which in 0..DER_VECTORS.len(), edits in edits()) {
        let body = encode_base64_body(&bytes(DER_VECTORS[which])).into_bytes();
        decode_all_bodies(&mutate(body, &edits));
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,40}", dotted in "[0-9.]{0,40}") {
        let _ = RawOid::new(&text);
        if let Ok(oid) = RawOid::new(&dotted) {
            let normalized: Vec<String> = dotted
                .split('.')
                .map(|arc| arc.parse::<u128>().expect("valid arcs").to_string())
                .collect();
            prop_assert_eq!(oid.to_string(), normalized.join("."));
            prop_assert_eq!(RawOid::from_der_content(oid.as_bytes()).expect("valid"), oid);
        }
        let _ = ContentFormat::from_media_type(&text);
    }

    #[test]
    fn x690_8_19_oid_arcs_round_trip(
        first in 0u128..3,
        second in any::<u64>(),
        rest in prop::collection::vec(prop_oneof![0u128..200, any::<u128>()], 0..6),
    ) {
        let second = if first < 2 { u128::from(second % 40) } else { u128::from(second) };
        let mut arcs = vec![first, second];
        arcs.extend(rest);
        let dotted = arcs.iter().map(u128::to_string).collect::<Vec<_>>().join(".");
        let oid = RawOid::new(&dotted).expect("valid dotted OID");
        prop_assert_eq!(oid.arcs(), arcs);
        prop_assert_eq!(oid.to_string(), dotted.clone());
        prop_assert_eq!(&RawOid::from_der_content(oid.as_bytes()).expect("valid DER"), &oid);
        if let Some(known) = oid.to_object_identifier() {
            prop_assert_eq!(known.to_string(), dotted);
        }
    }

    #[test]
    fn base64_body_round_trips(data in prop::collection::vec(any::<u8>(), 0..400)) {
        let body = encode_base64_body(&data);
        prop_assert!(body.split("\r\n").all(|line| line.len() <= 64));
        if data.is_empty() {
            prop_assert!(body.is_empty());
        } else {
            prop_assert_eq!(decode_base64_body(body.as_bytes()).expect("decodes"), data);
        }
    }

    #[test]
    fn base64_body_ignores_inserted_white_space(
        data in prop::collection::vec(any::<u8>(), 1..200),
        spaces in prop::collection::vec((any::<usize>(), prop::sample::select(vec![' ', '\t', '\r', '\n'])), 0..20),
    ) {
        let mut body: Vec<char> = encode_base64_body(&data).chars().collect();
        for (pos, c) in spaces {
            let at = pos % (body.len() + 1);
            body.insert(at, c);
        }
        let body: String = body.into_iter().collect();
        prop_assert_eq!(decode_base64_body(body.as_bytes()).expect("decodes"), data);
    }

    #[test]
    fn multipart_round_trips(parts in prop::collection::vec(
        (any::<u16>(), prop::option::of(prop::collection::vec(any::<u8>(), 0..300))), 0..6)
    ) {
        let parts: Vec<MultipartPart> = parts
            .into_iter()
            .map(|(cf, representation)| MultipartPart { content_format: ContentFormat(cf), representation })
            .collect();
        prop_assert_eq!(decode_multipart_core(&encode_multipart_core(&parts)).expect("decodes"), parts);
    }
}
