//! The exchange rules, message by message (RFC 7252 §4, §5.2; RFC 7959).

use super::*;

const CON: u8 = 0;
const NON: u8 = 1;

/// A request message: type, code, message ID, token, options (number, value), payload.
fn msg(kind: u8, code: u8, mid: u16, opts: &[(u16, Vec<u8>)], payload: &[u8]) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_version(1);
    p.header.set_type(match kind {
        CON => MessageType::Confirmable,
        NON => MessageType::NonConfirmable,
        2 => MessageType::Acknowledgement,
        _ => MessageType::Reset,
    });
    p.header.code = MessageClass::from(code);
    p.header.message_id = mid;
    p.set_token(vec![0x4d]);
    for (n, v) in opts {
        p.add_option(CoapOption::from(*n), v.clone());
    }
    p.payload = payload.to_vec();
    p.to_bytes_unlimited().expect("encodes")
}

fn path(segments: &[&str]) -> Vec<(u16, Vec<u8>)> {
    segments
        .iter()
        .map(|s| (opt::URI_PATH, s.as_bytes().to_vec()))
        .collect()
}

/// A Block1 option.
fn block1(num: u32, more: bool, szx: u8) -> (u16, Vec<u8>) {
    (opt::BLOCK1, Block { num, more, szx }.encode())
}

fn sent(actions: &[Action]) -> Vec<Packet> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(b) => Some(Packet::from_bytes(b).expect("a CoAP message")),
            Action::Dispatch(..) | Action::Close => None,
        })
        .collect()
}

fn dispatched(actions: &[Action]) -> Vec<(u64, Request)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Dispatch(id, r) => Some((*id, r.clone())),
            Action::Send(_) | Action::Close => None,
        })
        .collect()
}

fn code(p: &Packet) -> CoapCode {
    CoapCode(u8::from(p.header.code))
}

fn option(p: &Packet, n: u16) -> Option<Vec<u8>> {
    p.get_first_option(CoapOption::from(n)).cloned()
}

fn content(payload: &[u8]) -> Response {
    Response {
        code: CoapCode::CONTENT,
        content_format: Some(281),
        max_age: None,
        size1: None,
        payload: payload.to_vec(),
        close: false,
    }
}

#[test]
fn rfc7252_5_2_1_piggybacked_answer() {
    let mut ex = Exchange::new(ExchangeLimits::default(), 100);
    let t = Instant::now();
    let a = ex.on_message(
        &msg(CON, 1, 7, &path(&[".well-known", "est", "crts"]), b""),
        t,
    );
    let d = dispatched(&a);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1.path, [".well-known", "est", "crts"]);
    assert_eq!(d[0].1.method, Method::Get);
    let a = ex.on_response(d[0].0, content(b"abc"), t);
    let s = sent(&a);
    assert_eq!(s[0].header.get_type(), MessageType::Acknowledgement);
    assert_eq!(s[0].header.message_id, 7);
    assert_eq!(s[0].get_token(), [0x4d]);
    assert_eq!(code(&s[0]), CoapCode::CONTENT);
    assert_eq!(option(&s[0], opt::CONTENT_FORMAT), Some(vec![0x01, 0x19]));
    assert_eq!(s[0].payload, b"abc");
}

#[test]
fn rfc7252_4_5_a_duplicate_con_gets_the_cached_answer() {
    let mut ex = Exchange::new(ExchangeLimits::default(), 100);
    let t = Instant::now();
    let req = msg(CON, 2, 9, &path(&["x"]), b"body");
    let d = dispatched(&ex.on_message(&req, t));
    let first = ex.on_response(d[0].0, content(b"one"), t);
    let again = ex.on_message(&req, t + Duration::from_secs(3));
    assert!(
        dispatched(&again).is_empty(),
        "not handed to the application twice"
    );
    assert_eq!(again, first);
}

#[test]
fn rfc7252_5_2_2_slow_answer_is_separate() {
    let mut ex = Exchange::new(ExchangeLimits::default(), 100);
    let t = Instant::now();
    let req = msg(CON, 2, 11, &path(&["rv"]), b"pvr");
    let d = dispatched(&ex.on_message(&req, t));
    let deadline = ex.next_deadline().expect("an empty ACK is due");
    assert!(ex.on_timer(t).is_empty());
    let acks = sent(&ex.on_timer(deadline));
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].header.get_type(), MessageType::Acknowledgement);
    assert_eq!(acks[0].header.code, MessageClass::Empty);
    assert_eq!(acks[0].header.message_id, 11);
    // A retransmission of the request now gets the empty ACK again.
    let dup = sent(&ex.on_message(&req, deadline));
    assert_eq!(dup[0].header.code, MessageClass::Empty);
    // The answer: a CON with a new message ID and the request's token.
    let s = sent(&ex.on_response(d[0].0, content(b"voucher"), deadline));
    assert_eq!(s[0].header.get_type(), MessageType::Confirmable);
    assert_ne!(s[0].header.message_id, 11);
    assert_eq!(s[0].get_token(), [0x4d]);
    let mid = s[0].header.message_id;
    // Retransmitted until acknowledged.
    let later = ex.next_deadline().expect("retransmission");
    assert_eq!(sent(&ex.on_timer(later))[0].header.message_id, mid);
    let [hi, lo] = mid.to_be_bytes();
    assert!(ex.on_message(&[0x60, 0, hi, lo], later).is_empty());
    assert_eq!(ex.unacknowledged(), 0);
    assert_eq!(ex.next_deadline(), None);
}

#[test]
fn rfc7959_2_4_large_answers_go_in_block2_with_size2() {
    let mut ex = Exchange::new(ExchangeLimits::default(), 100);
    let t = Instant::now();
    let body: Vec<u8> = (0..1300u32).map(|i| i as u8).collect();
    let d = dispatched(&ex.on_message(&msg(CON, 1, 1, &path(&["crts"]), b""), t));
    let s = sent(&ex.on_response(d[0].0, content(&body), t));
    let b = Block::decode(&option(&s[0], opt::BLOCK2).expect("Block2")).expect("block");
    assert_eq!((b.num, b.more, b.size()), (0, true, 512));
    assert_eq!(option(&s[0], opt::SIZE2), Some(encode_uint(1300)));
    let mut got = s[0].payload.clone();
    for (mid, num) in [(2u16, 1u32), (3, 2)] {
        let want = Block {
            num,
            more: false,
            szx: 5,
        };
        let a = ex.on_message(
            &msg(
                CON,
                1,
                mid,
                &[path(&["crts"]), vec![(opt::BLOCK2, want.encode())]].concat(),
                b"",
            ),
            t,
        );
        assert!(dispatched(&a).is_empty(), "served from the kept answer");
        let s = sent(&a);
        got.extend_from_slice(&s[0].payload);
        let b = Block::decode(&option(&s[0], opt::BLOCK2).expect("Block2")).expect("block");
        assert_eq!(b.more, num == 1);
    }
    assert_eq!(got, body);
    // A smaller block size asked for is used.
    let want = Block {
        num: 0,
        more: false,
        szx: 2,
    };
    let d = dispatched(&ex.on_message(
        &msg(
            CON,
            1,
            4,
            &[path(&["crts"]), vec![(opt::BLOCK2, want.encode())]].concat(),
            b"",
        ),
        t,
    ));
    let s = sent(&ex.on_response(d[0].0, content(&body), t));
    assert_eq!(s[0].payload.len(), 64);
}

#[test]
fn rfc7959_2_5_block1_bodies_are_reassembled() {
    let mut ex = Exchange::new(ExchangeLimits::default(), 100);
    let t = Instant::now();
    let body: Vec<u8> = (0..600u32).map(|i| (i * 7) as u8).collect();
    let blocks: Vec<&[u8]> = body.chunks(256).collect();
    let mut last = Vec::new();
    for (i, chunk) in blocks.iter().enumerate() {
        let b = Block {
            num: i as u32,
            more: i + 1 < blocks.len(),
            szx: 4,
        };
        let mut opts = path(&["sen"]);
        opts.push((opt::CONTENT_FORMAT, encode_uint(286)));
        opts.push((opt::BLOCK1, b.encode()));
        last = ex.on_message(&msg(CON, 2, 20 + i as u16, &opts, chunk), t);
        if b.more {
            let s = sent(&last);
            assert_eq!(code(&s[0]), CONTINUE);
            assert_eq!(
                Block::decode(&option(&s[0], opt::BLOCK1).expect("Block1")),
                Some(b)
            );
        }
    }
    let d = dispatched(&last);
    assert_eq!(d[0].1.payload, body);
    assert_eq!(d[0].1.content_format, Some(286));
    let s = sent(&ex.on_response(d[0].0, Response::empty(CoapCode::CHANGED), t));
    let echoed = Block::decode(&option(&s[0], opt::BLOCK1).expect("Block1")).expect("block");
    assert_eq!((echoed.num, echoed.more), (2, false));
}

#[test]
fn rfc7959_2_9_3_oversize_bodies_get_4_13_with_size1() {
    let limits = ExchangeLimits {
        max_body: 1000,
        ..ExchangeLimits::default()
    };
    let mut ex = Exchange::new(limits, 100);
    let t = Instant::now();
    // Announced by Size1.
    let mut opts = path(&["sen"]);
    opts.push(block1(0, true, 4));
    opts.push((opt::SIZE1, encode_uint(5000)));
    let s = sent(&ex.on_message(&msg(CON, 2, 1, &opts, &[0; 256]), t));
    assert_eq!(code(&s[0]), CoapCode::REQUEST_ENTITY_TOO_LARGE);
    assert_eq!(option(&s[0], opt::SIZE1), Some(encode_uint(1000)));
    // Found out block by block.
    let mut refused_at = None;
    for i in 0..5u16 {
        let mut opts = path(&["sen"]);
        opts.push(block1(u32::from(i), true, 4));
        let answer = sent(&ex.on_message(&msg(CON, 2, 10 + i, &opts, &[0; 256]), t));
        if code(&answer[0]) == CoapCode::REQUEST_ENTITY_TOO_LARGE {
            refused_at = Some(i);
            break;
        }
        assert_eq!(code(&answer[0]), CONTINUE);
    }
    // The fourth block would make 1024 bytes.
    assert_eq!(refused_at, Some(3));
    // In one message.
    let s = sent(&ex.on_message(&msg(CON, 2, 30, &path(&["sen"]), &[0; 1001]), t));
    assert_eq!(code(&s[0]), CoapCode::REQUEST_ENTITY_TOO_LARGE);
}

#[test]
fn rfc7959_2_9_2_blocks_out_of_order_get_4_08() {
    let mut ex = Exchange::new(ExchangeLimits::default(), 100);
    let t = Instant::now();
    let mut opts = path(&["sen"]);
    opts.push(block1(1, true, 4));
    let s = sent(&ex.on_message(&msg(CON, 2, 1, &opts, &[0; 256]), t));
    assert_eq!(code(&s[0]), REQUEST_ENTITY_INCOMPLETE);
}

#[test]
fn rfc7252_5_4_1_unknown_critical_options_get_4_02() {
    let mut ex = Exchange::new(ExchangeLimits::default(), 100);
    let t = Instant::now();
    let mut opts = path(&["crts"]);
    opts.push((2049, b"x".to_vec()));
    let s = sent(&ex.on_message(&msg(CON, 1, 1, &opts, b""), t));
    assert_eq!(code(&s[0]), BAD_OPTION);
    // An unknown elective one is ignored.
    let mut opts = path(&["crts"]);
    opts.push((2048, b"x".to_vec()));
    assert_eq!(
        dispatched(&ex.on_message(&msg(CON, 1, 2, &opts, b""), t)).len(),
        1
    );
}

#[test]
fn uri_path_abbrev_stands_for_its_well_known_path() {
    let mut ex = Exchange::new(ExchangeLimits::default(), 100);
    let t = Instant::now();
    // 402: /.well-known/brski/rv (0x0192); 0: /.well-known/core (the empty uint).
    for (mid, value, expected) in [
        (1, vec![0x01, 0x92], vec![".well-known", "brski", "rv"]),
        (2, vec![], vec![".well-known", "core"]),
        (3, vec![0x01, 0x32], vec![".well-known", "est", "att"]),
    ] {
        let d = dispatched(
            &ex.on_message(&msg(CON, 2, mid, &[(opt::URI_PATH_ABBREV, value)], b"x"), t),
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].1.path, expected);
    }
    // An unknown value, a repeated option and one beside Uri-Path: 4.02, never 4.04.
    let refused = |mid: u16, opts: Vec<(u16, Vec<u8>)>, ex: &mut Exchange| {
        let s = sent(&ex.on_message(&msg(CON, 1, mid, &opts, b""), t));
        assert_eq!(code(&s[0]), BAD_OPTION, "{opts:?}");
    };
    refused(10, vec![(opt::URI_PATH_ABBREV, vec![0x01, 0xf4])], &mut ex);
    refused(
        11,
        vec![
            (opt::URI_PATH_ABBREV, vec![0]),
            (opt::URI_PATH_ABBREV, vec![0]),
        ],
        &mut ex,
    );
    let mut both = path(&[".well-known"]);
    both.push((opt::URI_PATH_ABBREV, vec![0]));
    refused(12, both, &mut ex);
    // The draft's initial registry, whole (§3), from the two tables that hold it.
    for (value, path) in [
        (0, "/.well-known/core"),
        (1, "/.well-known/rd"),
        (2, "/.well-known/edhoc"),
        (301, "/.well-known/est/crts"),
        (302, "/.well-known/est/sen"),
        (303, "/.well-known/est/sren"),
        (304, "/.well-known/est/skg"),
        (305, "/.well-known/est/skc"),
        (306, "/.well-known/est/att"),
        (401, "/.well-known/brski/es"),
        (402, "/.well-known/brski/rv"),
        (403, "/.well-known/brski/vs"),
    ] {
        assert_eq!(super::abbreviated_path(value), Some(path), "{value}");
    }
    assert_eq!(super::abbreviated_path(300), None);
}

#[test]
fn rfc7252_4_3_pings_and_garbage() {
    let mut ex = Exchange::new(ExchangeLimits::default(), 100);
    let t = Instant::now();
    let s = sent(&ex.on_message(&[0x40, 0x00, 0x12, 0x34], t));
    assert_eq!(s[0].header.get_type(), MessageType::Reset);
    assert_eq!(s[0].header.message_id, 0x1234);
    assert!(ex.on_message(b"", t).is_empty());
    assert!(ex.on_message(&[0xff; 3], t).is_empty());
}

#[test]
fn rfc8995_5_3_a_closing_answer_ends_the_session_after_it() {
    let mut ex = Exchange::new(ExchangeLimits::default(), 100);
    let t = Instant::now();
    let d = dispatched(&ex.on_message(&msg(CON, 2, 5, &path(&["rv"]), b"x"), t));
    let refusal = Response {
        close: true,
        ..Response::diagnostic(CoapCode::UNAUTHORIZED, "proximity")
    };
    let a = ex.on_response(d[0].0, refusal, t);
    assert!(
        matches!(a.as_slice(), [Action::Send(_), Action::Close]),
        "{a:?}"
    );
    assert_eq!(code(&sent(&a)[0]), CoapCode::UNAUTHORIZED);
}

#[test]
fn non_requests_are_answered_non() {
    let mut ex = Exchange::new(ExchangeLimits::default(), 100);
    let t = Instant::now();
    let d = dispatched(&ex.on_message(&msg(NON, 1, 5, &path(&["crts"]), b""), t));
    let s = sent(&ex.on_response(d[0].0, content(b"x"), t));
    assert_eq!(s[0].header.get_type(), MessageType::NonConfirmable);
}

#[test]
fn rfc7252_3_every_class_code_encodes() {
    let transport = [CONTINUE, BAD_OPTION, REQUEST_ENTITY_INCOMPLETE];
    let table = brski_common::answer::Class::TABLE.map(|(_, _, code)| code);
    for code in table.into_iter().chain(transport) {
        let m = Message {
            code,
            options: Vec::new(),
            payload: Vec::new(),
        };
        let p =
            Packet::from_bytes(&m.finish(MessageType::Acknowledgement, 1, &[1])).expect("parses");
        assert_eq!(u8::from(p.header.code), code.0, "{code}");
    }
}

#[test]
fn block_values() {
    for b in [
        Block {
            num: 0,
            more: false,
            szx: 0,
        },
        Block {
            num: 1,
            more: true,
            szx: 6,
        },
        Block {
            num: (1 << 20) - 1,
            more: true,
            szx: 5,
        },
    ] {
        assert_eq!(Block::decode(&b.encode()), Some(b));
    }
    assert_eq!(Block::decode(&[0x07]), None);
    assert_eq!(Block::decode(&[0, 0, 0, 0]), None);
    assert_eq!(Block::szx_of(512), 5);
    assert_eq!(Block::szx_of(1024), 6);
    assert_eq!(Block::szx_of(2048), 6);
    assert_eq!(Block::szx_of(16), 0);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    #[test]
    fn messages_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let mut ex = Exchange::new(ExchangeLimits::default(), 1);
        let t = Instant::now();
        for a in ex.on_message(&bytes, t) {
            if let Action::Dispatch(id, _) = a {
                let _ = ex.on_response(id, content(&[0; 2000]), t);
            }
        }
        let _ = ex.on_timer(t + Duration::from_secs(10));
    }
}
