//! The CoAPS server's sans-I/O parts fed with datagrams as a DTLS peer sends them: the
//! ClientHello reader in front of the cookie exchange (RFC 6347 §4.2.1), and the CoAP exchange
//! layer (RFC 7252 messages, RFC 7959 Block1/Block2) with answers of a length the input
//! chooses and timers that fire. Whatever the exchange sends is a CoAP message that decodes.
#![no_main]
use brski_common::answer::CoapCode;
use brski_service::coaps::exchange::{Action, Exchange, ExchangeLimits};
use brski_service::coaps::{Response, dtls};
use coap_lite::Packet;
use std::time::{Duration, Instant};

// Input: records of `[op][len][len bytes]`. `op` bit 0: answer dispatched requests now; bits
// 1..: how far time moves before the datagram.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut exchange = Exchange::new(ExchangeLimits::default(), 0x1000);
    let mut now = Instant::now();
    let mut pending: Vec<(u64, usize)> = Vec::new();
    let mut rest = data;
    while let [op, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (datagram, next) = tail.split_at(len);
        rest = next;
        if let Some(hello) = dtls::client_hello(datagram) {
            let _ = hello.hello_verify_request(b"cookie");
            let _ = hello.session_start(datagram);
        }
        now += Duration::from_millis(u64::from(op >> 1) * 250);
        let mut actions = exchange.on_timer(now);
        actions.extend(exchange.on_message(datagram, now));
        if op & 1 == 1 {
            for (id, size) in pending.drain(..) {
                let answer = Response {
                    code: CoapCode::CONTENT,
                    content_format: Some(60),
                    max_age: None,
                    size1: None,
                    payload: vec![0x5a; size],
                    close: false,
                };
                actions.extend(exchange.on_response(id, answer, now));
            }
        }
        for action in actions {
            match action {
                Action::Send(bytes) => {
                    Packet::from_bytes(&bytes).expect("what the exchange sends decodes");
                }
                Action::Dispatch(id, request) => {
                    pending.push((id, request.payload.len() * 3 + usize::from(*op) * 7));
                }
                Action::Close => {}
            }
        }
    }
});
