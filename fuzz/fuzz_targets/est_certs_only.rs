//! EST certs-only CMS (RFC 7030 §4.1.3, §4.2.3), DER and base64 body, and the base64 body
//! decoder itself; what decodes re-encodes.
#![no_main]
use brski_common::est;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = est::decode_base64_body(data);
    let _ = est::decode_certs_only_body(data);
    if let Ok(certs) = est::decode_certs_only(data) {
        let der = est::encode_certs_only(&certs).expect("decoded certificates encode");
        let again = est::decode_certs_only(&der).expect("re-encoded certs-only decodes");
        assert_eq!(certs, again);
    }
});
