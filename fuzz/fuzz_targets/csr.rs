//! PKCS#10 certification requests (RFC 2986) as an EST server receives them (RFC 7030 §4.2):
//! DER or the base64 body, then what the registrar reads from an accepted one.
#![no_main]
use brski_common::{est, oid, pki};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = est::decode_pkcs10_body(data);
    let _ = est::decode_pkcs10(data);
    let _ = pki::csr::verify_csr(data);
    if let Ok(req) = pki::csr::parse_csr(data) {
        let _ = pki::csr::subject(&req).to_string();
        let _ = pki::csr::spki_der(&req);
        let _ = pki::csr::challenge_password(&req);
        let _ = pki::csr::attribute(&req, oid::ID_DATA);
        if let Ok(extensions) = pki::csr::requested_extensions(&req) {
            let _ = pki::ext::hardware_module_name_in(&extensions);
            let _ = pki::ext::masa_url_in(&extensions);
        }
        let _ = est::encode_pkcs10(&req);
    }
});
