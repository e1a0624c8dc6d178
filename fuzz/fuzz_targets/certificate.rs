//! Certificates and chains as a TLS peer or an envelope presents them (consecutive DER, leaf
//! first): every BRSKI extension reader on the leaf, then path validation with the rest as the
//! pool, against the vectors' anchors and against the leaf's own issuer among the rest.
#![no_main]
use brski_common::pki::{self, TimeCheck, TrustPolicy, chain, crl, ext};
use brski_common::{inspect, oid};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let certs = brski_fuzz::certificates(data);
    let Some((leaf, pool)) = certs.split_first() else {
        return;
    };
    let _ = ext::serial_number(leaf);
    if let Ok(Some(url)) = ext::masa_url(leaf) {
        let _ = ext::masa_base_uri(&url);
    }
    let _ = ext::idevid_issuer(leaf);
    let _ = ext::subject_key_identifier(leaf);
    let _ = ext::domain_id_base64(leaf);
    let _ = ext::spki_sha256(leaf);
    for source in [
        ext::SerialNumberSource::SubjectSerialNumber,
        ext::SerialNumberSource::SubjectCommonName,
        ext::SerialNumberSource::HardwareModuleName,
    ] {
        let _ = ext::serial_number_from(leaf, source);
    }
    let _ = ext::hardware_module_name(leaf);
    let _ = ext::has_eku(leaf, oid::ID_KP_CMC_RA);
    let _ = crl::distribution_points(leaf);
    let _ = inspect::cert_summary(leaf);
    let _ = chain::subject_string(leaf);
    let fx = brski_fuzz::fixtures();
    let _ = pki::validate_chain(leaf, pool, &fx.anchors);
    if let Some(issuer) = pool.last() {
        let _ = chain::signed_by(leaf, issuer);
        let _ = chain::same_key(leaf, issuer);
        let policy = TrustPolicy::new(vec![issuer.clone()])
            .with_time(TimeCheck::Now)
            .with_required_eku(oid::ID_KP_CMC_RA);
        let _ = pki::validate_chain(leaf, pool, &policy);
    }
});
