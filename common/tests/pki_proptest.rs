//! Decoders of the `pki` module on random and mutated input: they return `Ok` or `Err`, never
//! panic. Also a round-trip property of the RFC 4514 DN parser.

use brski_common::pki::csr::{
    challenge_password, parse_csr, requested_extensions, spki_der, verify_csr,
};
use brski_common::pki::ext::{hardware_module_name_in, masa_url_in, subject_key_identifier};
use brski_common::pki::{
    build_name, domain_id, hardware_module_name, has_eku, idevid_issuer, masa_base_uri, masa_url,
    parse_name, serial_number, spki_sha256,
};
use brski_common::test_vectors::bytes;
use const_oid::db::rfc4519;
use der::Decode;
use proptest::prelude::*;
use proptest::sample::Index;
use x509_cert::Certificate;

const CERTS: &[&str] = &[
    "rfc8995/C.1.5-pledge-idevid.crt.pem",
    "rfc8995/C.1.4-registrar.crt.pem",
    "cbrski/C-pledge.crt.pem",
    "cbrski/C-registrar.crt.pem",
];

const CSRS: &[&str] = &[
    "est-coaps/A.2-sen-request-csr.hex",
    "est-coaps/A.3-skg-request-csr.hex",
    "rfc7030/A.3-simpleenroll-request.b64",
    "csr-attestation/sample-tcgAttestTpmCertify.csr.pem",
];

/// Overwrite bytes at the chosen positions, then maybe truncate.
fn mutate(mut data: Vec<u8>, edits: &[(Index, u8)], cut: Option<Index>) -> Vec<u8> {
    if data.is_empty() {
        return data;
    }
    for (pos, byte) in edits {
        let i = pos.index(data.len());
        data[i] = *byte;
    }
    if let Some(cut) = cut {
        data.truncate(cut.index(data.len()));
    }
    data
}

fn read_everything(cert: &Certificate) {
    let _ = serial_number(cert);
    let _ = masa_url(cert).map(|u| u.map(|u| masa_base_uri(&u)));
    let _ = idevid_issuer(cert);
    let _ = domain_id(cert);
    let _ = subject_key_identifier(cert);
    let _ = hardware_module_name(cert);
    let _ = has_eku(cert, brski_common::oid::ID_KP_CMC_RA);
    let _ = spki_sha256(cert);
}

fn read_csr(der: &[u8]) {
    let _ = verify_csr(der);
    if let Ok(req) = parse_csr(der) {
        let _ = spki_der(&req);
        let _ = challenge_password(&req);
        if let Ok(exts) = requested_extensions(&req) {
            let _ = hardware_module_name_in(&exts);
            let _ = masa_url_in(&exts);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn verify_csr_random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        read_csr(&data);
    }

    #[test]
    fn verify_csr_mutated_vectors_never_panic(
        which in 0..CSRS.len(),
        edits in proptest::collection::vec((any::<Index>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<Index>()),
    ) {
        read_csr(&mutate(bytes(CSRS[which]), &edits, cut));
    }

    #[test]
    fn cert_readers_on_mutated_certificates_never_panic(
        which in 0..CERTS.len(),
        edits in proptest::collection::vec((any::<Index>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<Index>()),
    ) {
        let der = mutate(bytes(CERTS[which]), &edits, cut);
        if let Ok(cert) = Certificate::from_der(&der) {
            read_everything(&cert);
        }
    }

    #[test]
    fn cert_readers_on_random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(cert) = Certificate::from_der(&data) {
            read_everything(&cert);
        }
    }

    #[test]
    fn parse_name_and_masa_base_uri_never_panic(s in "\\PC{0,64}") {
        let _ = parse_name(&s);
        let _ = masa_base_uri(&s);
    }

    #[test]
    fn parse_name_dn_syntax_never_panics(s in "[A-Za-z0-9=,+#\\\\ ;\"<>.é]{0,48}") {
        let _ = parse_name(&s);
    }

    #[test]
    fn rfc4514_display_then_parse_round_trips(
        cn in "[A-Za-z0-9 ,+=#;<>\"\\\\.é-]{1,20}",
        org in "[A-Za-z0-9 ,+=#;<>\"\\\\.é-]{1,20}",
    ) {
        let name = build_name(&[(rfc4519::O, org.as_str()), (rfc4519::CN, cn.as_str())])
            .expect("valid values");
        prop_assert_eq!(parse_name(&name.to_string()).expect("parses"), name);
    }
}
