//! The signed messages as each party receives them: the registrar a pledge voucher-request
//! (from the C.2.1 IDevID over TLS), the MASA a registrar voucher-request, the pledge a voucher
//! (nonce of C.2.1). The first byte chooses the party and the envelope format.
#![no_main]
use brski_common::brski::{masa, pledge, registrar};
use brski_common::pki::TimeCheck;
use brski_common::voucher::{Nonce, PledgeExpectations};
use der::Encode;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let fx = brski_fuzz::fixtures();
    let (selector, body) = brski_fuzz::split_first(data);
    let format = brski_fuzz::format(selector);
    match (selector / 3) % 3 {
        0 => {
            let registrar_der = fx.registrar.to_der().expect("fixture encodes");
            let client = [fx.pvr_idevid.clone(), fx.manufacturer_ca.clone()];
            let _ = registrar::check_pledge_voucher_request(
                format,
                body,
                &client,
                &registrar_der,
                &fx.anchors,
            );
        }
        1 => {
            let _ = masa::check_registrar_voucher_request(
                format,
                body,
                &fx.anchors,
                TimeCheck::Skip,
                selector & 0x80 != 0,
            );
        }
        _ => {
            let nonce = Nonce::from("-_XE9zK9q8Ll1qylMtLKeg");
            let expected = PledgeExpectations::new("00-D0-E5-F2-00-02", Some(nonce));
            let _ = pledge::accept_voucher(format, body, &fx.anchors, &expected);
        }
    }
});
