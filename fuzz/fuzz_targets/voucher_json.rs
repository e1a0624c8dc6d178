//! Voucher and voucher-request JSON payloads (the CMS and JWS eContent).
#![no_main]
use brski_common::envelope::Format;

libfuzzer_sys::fuzz_target!(|data: &[u8]| brski_fuzz::check_voucher(Format::Jws, data));
