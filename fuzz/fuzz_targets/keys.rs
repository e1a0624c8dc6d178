//! Private keys from files (PKCS#8 or SEC1, DER or PEM) and the ECDSA signature converters
//! applied to signatures received in JWS, COSE and CMS.
#![no_main]
use brski_common::keys::{self, SoftwareKey};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = SoftwareKey::from_der(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SoftwareKey::from_pem(text);
    }
    for scalar_len in [32, 48] {
        if let Ok(fixed) = keys::ecdsa_der_to_fixed(data, scalar_len) {
            keys::ecdsa_fixed_to_der(&fixed).expect("a converted signature converts back");
        }
    }
    let _ = keys::ecdsa_fixed_to_der(data);
});
