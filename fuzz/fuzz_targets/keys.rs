//! Private keys from files (PKCS#8 or SEC1, DER or PEM), the PKCS#8 reader that hands EC keys
//! to OpenSSL for DTLS (which must agree with OpenSSL's own reading), and the ECDSA signature
//! converters applied to signatures received in JWS, COSE and CMS.
#![no_main]
use brski_common::keys::{self, SoftwareKey};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = SoftwareKey::from_der(data);
    if let Ok(key) = brski_service::coaps::dtls::private_key(data)
        && let Ok(theirs) = openssl::pkey::PKey::private_key_from_pkcs8(data)
        && theirs.ec_key().is_ok()
    {
        // An EC key read both ways is the same key (OpenSSL alone may accept a point that
        // is not d·G; ours refuses it and falls back to OpenSSL's reading).
        assert_eq!(
            key.public_key_to_der().ok(),
            theirs.public_key_to_der().ok(),
            "our PKCS#8 reading differs from OpenSSL's"
        );
    }
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
