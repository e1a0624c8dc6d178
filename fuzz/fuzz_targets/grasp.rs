//! GRASP M_FLOOD messages (RFC 8990 §2.8.11, RFC 8995 §4.1.1) as received on UDP port 7017:
//! what decodes re-encodes with every field we read unchanged, and its encoding settles.
//! Objective values are carried, not read (but for text, RFC 8995 §4.3 "EST-TLS"), so they are
//! held to less: a NaN never equals itself, and ciborium reads a small tagged bignum back as
//! an integer, so the first re-encoding of such a value may differ from the second.
#![no_main]
use brski_common::discovery::grasp::{self, Flood};
use ciborium::Value;

fn read_fields(f: &Flood) -> Flood {
    let mut f = f.clone();
    for e in &mut f.entries {
        if !matches!(e.objective.value, Some(Value::Text(_)) | None) {
            e.objective.value = Some(Value::Null);
        }
    }
    f
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(flood) = Flood::decode(data) {
        let proxies = flood.tcp_endpoints(grasp::AN_PROXY);
        let registrars = flood.tcp_endpoints(grasp::AN_JOIN_REGISTRAR);
        if let Ok(bytes) = flood.encode() {
            let again = Flood::decode(&bytes).expect("re-encoded flood decodes");
            assert_eq!(read_fields(&again), read_fields(&flood));
            assert_eq!(again.tcp_endpoints(grasp::AN_PROXY), proxies);
            assert_eq!(again.tcp_endpoints(grasp::AN_JOIN_REGISTRAR), registrars);
            let settled = again.encode().expect("encodes again");
            let resettled = Flood::decode(&settled)
                .expect("decodes again")
                .encode()
                .expect("encodes a third time");
            assert_eq!(resettled, settled, "the encoding does not settle");
        }
    }
});
