use super::grasp::*;
use crate::test_vectors;
use ciborium::Value;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv6Addr};

/// The CBOR diagnostic notation used by the vectors (arrays, unsigned integers, h'' bytes, text,
/// null and the RFC 8990 symbolic constants), parsed to a CBOR value.
fn diag(text: &str) -> Value {
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ")
        .replace("O_IPv6_LOCATOR", "103")
        .replace("IPPROTO_TCP", "6")
        .replace("M_FLOOD", "9");
    let chars: Vec<char> = body.chars().collect();
    let mut pos = 0;
    let v = parse_item(&chars, &mut pos);
    skip_ws(&chars, &mut pos);
    assert_eq!(pos, chars.len(), "trailing text in {body}");
    v
}

fn skip_ws(c: &[char], pos: &mut usize) {
    while c.get(*pos).is_some_and(|ch| ch.is_whitespace()) {
        *pos += 1;
    }
}

fn parse_item(c: &[char], pos: &mut usize) -> Value {
    skip_ws(c, pos);
    match c.get(*pos).copied().expect("item") {
        '[' => {
            *pos += 1;
            let mut items = Vec::new();
            loop {
                skip_ws(c, pos);
                if c.get(*pos) == Some(&']') {
                    *pos += 1;
                    return Value::Array(items);
                }
                items.push(parse_item(c, pos));
                skip_ws(c, pos);
                if c.get(*pos) == Some(&',') {
                    *pos += 1;
                }
            }
        }
        'h' => {
            *pos += 2;
            let start = *pos;
            while c.get(*pos) != Some(&'\'') {
                *pos += 1;
            }
            let hex_text: String = c[start..*pos].iter().collect();
            *pos += 1;
            Value::Bytes(hex::decode(hex_text).expect("hex"))
        }
        '"' => {
            *pos += 1;
            let start = *pos;
            while c.get(*pos) != Some(&'"') {
                *pos += 1;
            }
            let t: String = c[start..*pos].iter().collect();
            *pos += 1;
            Value::Text(t)
        }
        'n' => {
            assert_eq!(c[*pos..*pos + 3].iter().collect::<String>(), "nil");
            *pos += 3;
            Value::Null
        }
        _ => {
            let start = *pos;
            while c.get(*pos).is_some_and(char::is_ascii_digit) {
                *pos += 1;
            }
            let n: u64 = c[start..*pos]
                .iter()
                .collect::<String>()
                .parse()
                .expect("integer");
            Value::from(n)
        }
    }
}

fn vector(rel: &str) -> Vec<u8> {
    let text = String::from_utf8(test_vectors::read(rel)).expect("utf-8");
    let mut out = Vec::new();
    ciborium::ser::into_writer(&diag(&text), &mut out).expect("encode");
    out
}

const PROXY: &str = "rfc8995/4.1.1-grasp-an-proxy-example.diag";
const REGISTRAR: &str = "rfc8995/4.3-grasp-an-join-registrar-example.diag";

#[test]
fn rfc8995_4_1_1_an_proxy_example_decodes() {
    let flood = Flood::decode(&vector(PROXY)).expect("decode");
    let fe80_1: Ipv6Addr = "fe80::1".parse().expect("addr");
    assert_eq!(flood.session_id, 12_340_815);
    assert_eq!(flood.initiator, IpAddr::V6(fe80_1));
    assert_eq!(flood.ttl_ms, 180_000);
    assert_eq!(flood.entries.len(), 1);
    let o = &flood.entries[0].objective;
    assert_eq!((o.name.as_str(), o.flags, o.loop_count), ("AN_Proxy", 4, 1));
    assert_eq!(o.value, Some(Value::Text(String::new())));
    assert_eq!(
        flood.tcp_endpoints(AN_PROXY),
        vec![Endpoint {
            address: fe80_1,
            port: 4443,
            value: Some(String::new())
        }]
    );
    assert!(flood.tcp_endpoints(AN_JOIN_REGISTRAR).is_empty());
}

#[test]
fn rfc8995_4_1_1_an_proxy_builder_matches_the_example_byte_for_byte() {
    let built = Flood::an_proxy(12_340_815, "fe80::1".parse().expect("addr"), 4443);
    assert_eq!(built.encode().expect("encode"), vector(PROXY));
}

#[test]
fn rfc8995_4_3_an_join_registrar_example_decodes_and_rebuilds() {
    let bytes = vector(REGISTRAR);
    let flood = Flood::decode(&bytes).expect("decode");
    let addr: Ipv6Addr = "fda3:79a6:f6ee:0:200:0:6400:1".parse().expect("addr");
    assert_eq!(
        flood.tcp_endpoints(AN_JOIN_REGISTRAR),
        vec![Endpoint {
            address: addr,
            port: 8443,
            value: Some("EST-TLS".into())
        }]
    );
    assert_eq!(flood.entries[0].objective.loop_count, 255);
    let built = Flood::an_join_registrar(51_804_321, addr, 8443);
    assert_eq!(built.encode().expect("encode"), bytes);
    assert_eq!(Flood::decode(&bytes).expect("again"), built);
}

#[test]
fn rfc8995_4_3_locator_examples() {
    // locator1..3 of the vector file, with the addresses written as bytes.
    let text = String::from_utf8(test_vectors::read("rfc8995/4.3-grasp-locator-examples.txt"))
        .expect("utf-8");
    let mut seen = 0;
    for line in text.lines().filter(|l| l.starts_with("locator")) {
        let inner = line
            .split_once('[')
            .and_then(|(_, r)| r.split_once(']'))
            .map(|(i, _)| i)
            .expect("brackets");
        let fields: Vec<&str> = inner.split(',').map(str::trim).collect();
        let addr: Ipv6Addr = fields[1].parse().expect("address");
        let diag_text = format!(
            "[M_FLOOD, 1, h'{}', 1000, [[\"AN_join_registrar\", 4, 255, \"EST-TLS\"], [O_IPv6_LOCATOR, h'{}', {}, {}]]]",
            hex::encode(addr.octets()),
            hex::encode(addr.octets()),
            fields[2],
            fields[3]
        );
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&diag(&diag_text), &mut bytes).expect("encode");
        let flood = Flood::decode(&bytes).expect("decode");
        let protocol: u8 = fields[2].parse().expect("protocol");
        let port = fields[3].parse::<u16>().ok();
        assert_eq!(
            flood.entries[0].locator,
            Some(Locator::Ipv6 {
                address: addr,
                protocol,
                port
            })
        );
        // Only TCP with a port is an endpoint (RFC 8995 §4.1.1).
        assert_eq!(
            flood.tcp_endpoints(AN_JOIN_REGISTRAR).len(),
            usize::from(protocol == IPPROTO_TCP)
        );
        seen += 1;
    }
    assert_eq!(seen, 3);
}

#[test]
fn link_local_endpoints_carry_the_arrival_scope() {
    let e = Endpoint {
        address: "fe80::1".parse().expect("addr"),
        port: 4443,
        value: None,
    };
    assert_eq!(e.socket_addr(7).scope_id(), 7);
    let ula = Endpoint {
        address: "fd00::1".parse().expect("addr"),
        ..e
    };
    assert_eq!(ula.socket_addr(7).scope_id(), 0);
}

fn encode(v: Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(&v, &mut out).expect("encode");
    out
}

fn flood_with(session: Value, initiator: Value, ttl: Value, entries: Vec<Value>) -> Vec<u8> {
    let mut items = vec![Value::from(9u8), session, initiator, ttl];
    items.extend(entries);
    encode(Value::Array(items))
}

fn good_entry() -> Value {
    Value::Array(vec![
        Value::Array(vec![
            Value::Text("AN_Proxy".into()),
            Value::from(4u8),
            Value::from(1u8),
            Value::Text(String::new()),
        ]),
        Value::Array(vec![
            Value::from(103u8),
            Value::Bytes(vec![0; 16]),
            Value::from(6u8),
            Value::from(4443u16),
        ]),
    ])
}

fn entry(objective: Vec<Value>, locator: Vec<Value>) -> Value {
    Value::Array(vec![Value::Array(objective), Value::Array(locator)])
}

#[test]
fn rejections_name_what_is_wrong() {
    let b16 = || Value::Bytes(vec![0; 16]);
    let one = || Value::from(1u8);
    let obj = || {
        vec![
            Value::Text("AN_Proxy".into()),
            Value::from(4u8),
            Value::from(1u8),
        ]
    };
    let cases: Vec<(Vec<u8>, GraspError)> = vec![
        (vec![0u8; 2049], GraspError::TooLarge(2049)),
        (vec![0xff], GraspError::Cbor(String::new())),
        (
            [encode(Value::Array(vec![])), vec![0]].concat(),
            GraspError::TrailingBytes,
        ),
        (encode(Value::from(9u8)), GraspError::NotArray),
        (
            encode(Value::Array(vec![Value::from(1u8)])),
            GraspError::NotFlood(1),
        ),
        (
            encode(Value::Array(vec![Value::Text("x".into())])),
            GraspError::BadMessageType,
        ),
        (
            encode(Value::Array(vec![Value::from(9u8), one(), b16(), one()])),
            GraspError::TooShort(4),
        ),
        (
            flood_with(Value::from(1u64 << 32), b16(), one(), vec![good_entry()]),
            GraspError::BadSessionId,
        ),
        (
            flood_with(one(), Value::Bytes(vec![0; 5]), one(), vec![good_entry()]),
            GraspError::BadInitiator(5),
        ),
        (
            flood_with(one(), b16(), Value::from(-1), vec![good_entry()]),
            GraspError::BadTtl,
        ),
        (
            flood_with(one(), b16(), one(), vec![Value::Array(vec![])]),
            GraspError::BadEntry(0),
        ),
        (
            flood_with(one(), b16(), one(), vec![entry(vec![], vec![])]),
            GraspError::BadObjective(0, "not 3 or 4 elements"),
        ),
        (
            flood_with(
                one(),
                b16(),
                one(),
                vec![entry(
                    vec![Value::Text(String::new()), one(), one()],
                    vec![],
                )],
            ),
            GraspError::BadObjective(0, "empty name"),
        ),
        (
            flood_with(
                one(),
                b16(),
                one(),
                vec![entry(
                    vec![Value::Text("a".into()), Value::from(256u16), one()],
                    vec![],
                )],
            ),
            GraspError::BadObjective(0, "flags not 0..255"),
        ),
        (
            flood_with(
                one(),
                b16(),
                one(),
                vec![entry(
                    vec![Value::Text("a".into()), one(), Value::from(0u8)],
                    vec![],
                )],
            ),
            GraspError::BadObjective(0, "loop-count 0"),
        ),
        (
            flood_with(
                one(),
                b16(),
                one(),
                vec![entry(obj(), vec![Value::from(103u8), b16(), one()])],
            ),
            GraspError::BadLocator(0, "not 4 elements"),
        ),
        (
            flood_with(
                one(),
                b16(),
                one(),
                vec![entry(
                    obj(),
                    vec![Value::from(103u8), Value::Bytes(vec![0; 4]), one(), one()],
                )],
            ),
            GraspError::BadLocator(0, "IPv6 address is not 16 bytes"),
        ),
        (
            flood_with(
                one(),
                b16(),
                one(),
                vec![entry(
                    obj(),
                    vec![Value::from(103u8), b16(), one(), Value::from(70000u32)],
                )],
            ),
            GraspError::BadLocator(0, "port not 0..65535"),
        ),
        (
            flood_with(
                one(),
                b16(),
                one(),
                vec![entry(obj(), vec![Value::from(99u8), b16(), one(), one()])],
            ),
            GraspError::UnknownLocator(99),
        ),
    ];
    for (bytes, expected) in cases {
        let got = Flood::decode(&bytes).expect_err("must be rejected");
        match (&got, &expected) {
            (GraspError::Cbor(_), GraspError::Cbor(_)) => {}
            _ => assert_eq!(got, expected),
        }
    }
}

#[test]
fn other_locator_kinds_and_empty_locators_round_trip() {
    let flood = Flood {
        session_id: 7,
        initiator: IpAddr::V4("192.0.2.1".parse().expect("v4")),
        ttl_ms: 60_000,
        entries: vec![
            FloodEntry {
                objective: Objective {
                    name: AN_JOIN_REGISTRAR.into(),
                    flags: 4,
                    loop_count: 255,
                    value: None,
                },
                locator: Some(Locator::Fqdn {
                    name: "registrar.example".into(),
                    protocol: 6,
                    port: Some(443),
                }),
            },
            FloodEntry {
                objective: Objective {
                    name: AN_PROXY.into(),
                    flags: 4,
                    loop_count: 1,
                    value: None,
                },
                locator: None,
            },
            FloodEntry {
                objective: Objective {
                    name: AN_PROXY.into(),
                    flags: 4,
                    loop_count: 1,
                    value: Some(Value::Text(String::new())),
                },
                locator: Some(Locator::Ipv4 {
                    address: "192.0.2.1".parse().expect("v4"),
                    protocol: 6,
                    port: Some(4443),
                }),
            },
            FloodEntry {
                objective: Objective {
                    name: "other".into(),
                    flags: 0,
                    loop_count: 3,
                    value: Some(Value::from(5u8)),
                },
                locator: Some(Locator::Uri {
                    uri: "coaps://[fd00::1]".into(),
                    protocol: 17,
                    port: None,
                }),
            },
        ],
    };
    let bytes = flood.encode().expect("encode");
    assert_eq!(Flood::decode(&bytes).expect("decode"), flood);
    // None of these is a TCP endpoint with an IPv6 locator.
    assert!(flood.tcp_endpoints(AN_PROXY).is_empty());
    assert!(flood.tcp_endpoints(AN_JOIN_REGISTRAR).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Flood::decode(&bytes);
    }

    #[test]
    fn mutated_vectors_never_panic(
        which in 0usize..2,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = vector(if which == 0 { PROXY } else { REGISTRAR });
        for (i, b) in edits {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        if let Ok(f) = Flood::decode(&bytes) {
            // Whatever decodes re-encodes and decodes to the same message.
            let again = f.encode().expect("encode");
            let twice = Flood::decode(&again).expect("decode").encode().expect("encode");
            prop_assert_eq!(twice, again);
        }
    }

    #[test]
    fn built_announcements_round_trip(session in any::<u32>(), addr in any::<[u8; 16]>(), port in 1u16..) {
        let a = Ipv6Addr::from(addr);
        for f in [Flood::an_proxy(session, a, port), Flood::an_join_registrar(session, a, port)] {
            let decoded = Flood::decode(&f.encode().expect("encode")).expect("decode");
            prop_assert_eq!(&decoded, &f);
        }
        let p = Flood::an_proxy(session, a, port);
        prop_assert_eq!(p.tcp_endpoints(AN_PROXY).len(), 1);
    }
}

/// Found by the `grasp` fuzz target: an objective value holding a NaN decodes and re-encodes to
/// the same bytes (its value never compares equal to itself, its bytes do).
#[test]
fn objective_value_with_a_nan_re_encodes_to_the_same_bytes() {
    let flood = Flood {
        session_id: 8,
        initiator: IpAddr::V6(Ipv6Addr::LOCALHOST),
        ttl_ms: 180_000,
        entries: vec![FloodEntry {
            objective: Objective {
                name: AN_JOIN_REGISTRAR.into(),
                flags: 4,
                loop_count: 255,
                value: Some(Value::Array(vec![
                    Value::Tag(21, Box::new(Value::Float(f64::NAN))),
                    Value::Text("EST-TLS".into()),
                ])),
            },
            locator: None,
        }],
    };
    let bytes = flood.encode().expect("encodes");
    let again = Flood::decode(&bytes).expect("decodes");
    assert_eq!(again.encode().expect("encodes again"), bytes);
    assert_eq!(again.entries[0].objective.name, AN_JOIN_REGISTRAR);
}

/// Found by the `grasp` fuzz target: ciborium reads a small tagged bignum (tag 2) back as a
/// plain integer, so an objective value holding one re-encodes differently once, then settles;
/// the fields the pledge reads are unchanged.
#[test]
fn objective_value_with_a_small_bignum_settles_after_one_round() {
    let mut flood = Flood::an_join_registrar(9, Ipv6Addr::LOCALHOST, 8443);
    flood.entries[0].objective.value = Some(Value::Tag(2, Box::new(Value::Bytes(vec![]))));
    let first = flood.encode().expect("encodes");
    let again = Flood::decode(&first).expect("decodes");
    let settled = again.encode().expect("encodes again");
    let resettled = Flood::decode(&settled)
        .expect("decodes again")
        .encode()
        .expect("encodes a third time");
    assert_ne!(first, settled, "the bignum came back as an integer");
    assert_eq!(resettled, settled);
    assert_eq!(
        again.tcp_endpoints(AN_JOIN_REGISTRAR)[0]
            .socket_addr(0)
            .port(),
        8443
    );
}
