//! Configuration files: `pledge.toml` (brski-service), `masa.toml`, `registrar.toml` and the
//! registrar's PCR reference files (attested enrollment, SPEC §9). The
//! MASA's and registrar's loaders live in their binary crates, which have no library target;
//! their `config.rs` modules are compiled in here as they are (they depend only on
//! brski-common and brski-service). Each file is loaded and checked as the daemon does at
//! start; what loads is rendered and must load again. The first byte chooses the file.
#![no_main]
use brski_service::config::PledgeConfig;

#[allow(dead_code)]
#[path = "../../masa/src/config.rs"]
mod masa_config;
#[allow(dead_code)]
#[path = "../../registrar/src/config.rs"]
mod registrar_config;

use masa_config::MasaConfig;
use registrar_config::RegistrarConfig;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (selector, text) = brski_fuzz::split_first(data);
    match selector % 4 {
        0 => {
            if let Ok(c) = brski_fuzz::with_file(text, PledgeConfig::load) {
                let rendered = toml::to_string(&c).expect("a loaded pledge.toml renders");
                brski_fuzz::with_file(rendered.as_bytes(), PledgeConfig::load)
                    .expect("a rendered pledge.toml loads");
            }
        }
        1 => {
            if let Ok(c) = brski_fuzz::with_file(text, MasaConfig::load) {
                let _ = c.nonceless_lifetime();
                brski_fuzz::with_file(c.render().as_bytes(), MasaConfig::load)
                    .expect("a rendered masa.toml loads");
            }
        }
        3 => {
            if let Ok(policy) = brski_fuzz::with_file(text, registrar_config::load_pcr_policy) {
                assert!(!policy.pcrs.is_empty() && !policy.sets.is_empty());
                let _ = policy.request();
            }
        }
        _ => {
            if let Ok(c) = brski_fuzz::with_file(text, RegistrarConfig::load) {
                let rendered = registrar_config::render(&c);
                brski_fuzz::with_file(rendered.as_bytes(), RegistrarConfig::load)
                    .expect("a rendered registrar.toml loads");
            }
        }
    }
});
