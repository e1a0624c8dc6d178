//! EST CSR attributes (RFC 7030 §4.5.2, RFC 9908), DER and base64 body, with every accessor
//! the pledge uses, the attestation request among them (SPEC §9); what decodes re-encodes.
//! Also OIDs read from DER contents and text.
#![no_main]
use brski_common::attest::enroll::EvidenceRequest;
use brski_common::est::{CsrAttrs, RawOid};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = CsrAttrs::from_body(data);
    if let Ok(attrs) = CsrAttrs::from_der(data) {
        let oids: Vec<RawOid> = attrs.oids().cloned().collect();
        for oid in &oids {
            let _ = attrs.attribute(oid);
            let _ = attrs.mentions(oid);
            let _ = oid.to_string();
            let _ = oid.arcs();
        }
        let _ = attrs.requests_challenge_password();
        let _ = attrs.requested_extensions();
        let _ = attrs.requested_key();
        let _ = attrs.requested_signature_algorithm();
        let _ = attrs.requested_hash();
        if let Ok(Some(request)) = EvidenceRequest::from_csr_attrs(&attrs) {
            // What the pledge read, asked again, reads the same.
            let asked = CsrAttrs(request.to_attrs().expect("a read request encodes"));
            assert_eq!(EvidenceRequest::from_csr_attrs(&asked), Ok(Some(request)));
        }
        let der = attrs.to_der().expect("decoded CsrAttrs encode");
        let again = CsrAttrs::from_der(&der).expect("re-encoded CsrAttrs decode");
        assert_eq!(attrs, again);
    }
    if let Ok(oid) = RawOid::from_der_content(data) {
        let again: RawOid = oid.to_string().parse().expect("a printed OID parses");
        assert_eq!(oid, again);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<RawOid>();
    }
});
