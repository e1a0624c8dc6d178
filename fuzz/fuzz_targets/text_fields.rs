//! The short text values read from the network, certificates and configuration files:
//! distinguished names and the registrar's LDevID subject template, MASA URLs, HTTPS targets,
//! scoped socket addresses, YANG date-times, media types and algorithm names.
#![no_main]
use brski_common::envelope::Format;
use brski_common::est::ContentFormat;
use brski_common::keys::SignatureAlgorithm;
use brski_common::pki;
use brski_common::voucher::DateTime;
use brski_service::{https_client::Target, netif};

#[allow(dead_code)]
#[path = "../../registrar/src/config.rs"]
mod registrar_config;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = pki::parse_name(text) {
        let printed = name.to_string();
        let _ = pki::parse_name(&printed);
    }
    let _ = registrar_config::subject_from_template(text, "00-D0-E5-F2-00-02");
    let _ = registrar_config::subject_from_template("CN={serial}", text);
    let _ = pki::masa_base_uri(text);
    let _ = Target::parse(text);
    let _ = netif::parse_scoped_with(text, |_| Ok(1));
    if let Ok(t) = DateTime::parse(text) {
        let _ = t.instant();
    }
    let _ = Format::from_media_type(text);
    let _ = ContentFormat::from_media_type(text);
    let _ = SignatureAlgorithm::from_jws_alg(text);
});
