//! Voucher and voucher-request CBOR payloads (the COSE payload).
#![no_main]
use brski_common::envelope::Format;

libfuzzer_sys::fuzz_target!(|data: &[u8]| brski_fuzz::check_voucher(Format::Cose, data));
