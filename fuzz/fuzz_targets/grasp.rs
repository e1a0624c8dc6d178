//! GRASP M_FLOOD messages (RFC 8990 §2.8.11, RFC 8995 §4.1.1) as received on UDP port 7017;
//! what decodes re-encodes, and the re-encoding is stable. (Bytes are compared, not values: an
//! objective value may hold a NaN, which never equals itself.)
#![no_main]
use brski_common::discovery::grasp::{self, Flood};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(flood) = Flood::decode(data) {
        let _ = flood.tcp_endpoints(grasp::AN_PROXY);
        let _ = flood.tcp_endpoints(grasp::AN_JOIN_REGISTRAR);
        if let Ok(bytes) = flood.encode() {
            let again = Flood::decode(&bytes).expect("re-encoded flood decodes");
            assert_eq!(again.session_id, flood.session_id);
            assert_eq!(again.entries.len(), flood.entries.len());
            assert_eq!(again.encode().expect("encodes again"), bytes);
        }
    }
});
