//! Jws envelopes: decoded, verified, and for COSE stripped of carried certificates.
#![no_main]
use brski_common::envelope::Format;

libfuzzer_sys::fuzz_target!(|data: &[u8]| brski_fuzz::check_envelope(Format::Jws, data));
