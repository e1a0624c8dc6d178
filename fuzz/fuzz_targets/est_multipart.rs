//! EST-coaps multipart-core bodies (RFC 8710, RFC 9148 §4.8) and the /crts response; what
//! decodes re-encodes.
#![no_main]
use brski_common::est;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(parts) = est::decode_multipart_core(data) {
        let again = est::decode_multipart_core(&est::encode_multipart_core(&parts))
            .expect("re-encoded multipart decodes");
        assert_eq!(parts, again);
    }
    let _ = est::decode_crts_multipart(data);
});
