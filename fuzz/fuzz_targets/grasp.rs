//! GRASP M_FLOOD messages (RFC 8990 §2.8.11, RFC 8995 §4.1.1) as received on UDP port 7017;
//! what decodes re-encodes.
#![no_main]
use brski_common::discovery::grasp::{self, Flood};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(flood) = Flood::decode(data) {
        let _ = flood.tcp_endpoints(grasp::AN_PROXY);
        let _ = flood.tcp_endpoints(grasp::AN_JOIN_REGISTRAR);
        if let Ok(bytes) = flood.encode() {
            let again = Flood::decode(&bytes).expect("re-encoded flood decodes");
            assert_eq!(flood, again);
        }
    }
});
