//! Certificate revocation lists (RFC 5280 §5) as fetched from a distribution point, checked
//! for each CA of the vectors.
#![no_main]
use brski_common::pki::crl;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let fx = brski_fuzz::fixtures();
    let now = time::OffsetDateTime::now_utc();
    for issuer in &fx.anchors.anchors {
        if let Ok(list) = crl::verify_crl(data, issuer, now) {
            let _ = list.is_revoked(&fx.registrar);
        }
    }
});
