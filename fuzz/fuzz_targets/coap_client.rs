//! The CoAPS client's sans-I/O parts fed with datagrams as a registrar (or anyone on the path
//! of a join proxy) sends them: one request's exchange (RFC 7252 retransmission and separate
//! answers, RFC 7959 Block1/Block2 reassembly) and the answer read as an HTTP one; and the
//! CoAP discovery (CJP §5): a join proxy's answer, and the join ports and registrar endpoints
//! read from the links of an answer (RFC 6690 link format). Whatever the client sends is a CoAP
//! message that decodes; an answer it hands over is within its body limit.
#![no_main]
use brski_service::coaps::call::{Call, CallLimits, Step};
use brski_service::coaps::client::as_http;
use brski_service::coaps::{Method, Request, jp};
use coap_lite::Packet;
use std::time::{Duration, Instant};

const TOKEN: [u8; 1] = [0x42];

// Input: `[body size][records]`, records `[op][len][len bytes]`. `op` bit 0: the datagram
// takes the message ID last sent; bits 1..: how far time moves before it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((size, mut rest)) = data.split_first() else {
        return;
    };
    let limits = CallLimits {
        block_size: 64,
        max_body: 4096,
    };
    let request = Request {
        content_format: Some(836),
        accept: Some(836),
        payload: vec![0xa5; usize::from(*size) * 3],
        ..Request::new(Method::Post, "/.well-known/brski/rv")
    };
    let mut now = Instant::now();
    let (mut call, first) = Call::start(request, TOKEN.to_vec(), 0x4000, limits, now);
    let mut last_mid = Packet::from_bytes(&first)
        .expect("the first request decodes")
        .header
        .message_id;
    while let [op, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (datagram, next) = tail.split_at(len);
        rest = next;
        let _ = jp::answer(datagram, &[jp::join_port_link(5684)]);
        let _ = jp::join_ports(datagram, &TOKEN);
        for r in jp::registrar_links(datagram, &TOKEN, 1) {
            // What is read back names the same endpoint.
            assert_eq!(jp::RegistrarLink::from_link(&r.link(), 1), Some(r));
        }
        let mut datagram = datagram.to_vec();
        if op & 1 == 1 && datagram.len() >= 4 {
            datagram[2..4].copy_from_slice(&last_mid.to_be_bytes());
        }
        now += Duration::from_millis(u64::from(op >> 1) * 250);
        let mut steps = call.on_timer(now);
        steps.extend(call.on_message(&datagram, now));
        for step in steps {
            match step {
                Step::Send(bytes) => {
                    let p = Packet::from_bytes(&bytes).expect("what the client sends decodes");
                    last_mid = p.header.message_id;
                }
                Step::Done(r) => {
                    assert!(r.payload.len() <= limits.max_body);
                    let _ = as_http(&r);
                    return;
                }
                Step::Failed(_) => return,
            }
        }
    }
});
