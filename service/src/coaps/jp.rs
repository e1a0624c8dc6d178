//! Discovery of constrained join proxies (cBRSKI §10.1, CJP §5): a pledge multicasts
//! `GET coap://[ff02::fd]/.well-known/core?brski-jp=*` on its links; a join proxy (or a registrar
//! one hop away, answering as if it were one) replies `<>;brski-jp=PORT` in link format, and
//! the reply's source address with that port is where the pledge's DTLS goes. Plain CoAP
//! (RFC 7252 §8: a multicast request is NON, and so is its answer), sans I/O in [`answer`] and
//! [`join_ports`], with thin UDP shells.

use super::exchange::{Message, encode_uint, opt};
use brski_common::answer::CoapCode;
use brski_common::est::ContentFormat;
use coap_lite::{MessageClass, MessageType, Packet};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;
use tokio::net::UdpSocket;

/// All-CoAP-Nodes, link-local scope (RFC 7252 §12.8).
pub const ALL_COAP_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfd);
/// The CoAP port (RFC 7252 §12.6).
pub const COAP_PORT: u16 = 5683;
/// The link attribute naming a join port (CJP §5, IANA "brski-jp").
pub const BRSKI_JP: &str = "brski-jp";

/// The query a pledge sends.
pub fn query(mid: u16, token: &[u8]) -> Vec<u8> {
    Message {
        code: CoapCode(1),
        options: vec![
            (opt::URI_PATH, b".well-known".to_vec()),
            (opt::URI_PATH, b"core".to_vec()),
            (opt::URI_QUERY, format!("{BRSKI_JP}=*").into_bytes()),
        ],
        payload: Vec::new(),
    }
    .finish(MessageType::NonConfirmable, mid, token)
}

/// Whether a `/.well-known/core` query selects the join-port link `brski-jp=port` (RFC 6690
/// §4.1: a filter on an attribute, a trailing `*` matching by prefix; no filter selects every
/// link).
fn selects(query: &[String], port: u16) -> bool {
    match query.first().and_then(|q| q.split_once('=')) {
        None => query.is_empty(),
        Some((name, want)) => {
            let value = port.to_string();
            name == BRSKI_JP
                && match want.strip_suffix('*') {
                    Some(prefix) => value.starts_with(prefix),
                    None => value == want,
                }
        }
    }
}

/// The answer of a join proxy with join port `port` to `request`, when it is a GET of
/// `/.well-known/core` whose filter selects the join-port link: 2.05 with `<>;brski-jp=PORT`
/// (CJP §5), NON to a NON request, a piggybacked ACK to a CON one. `None` otherwise (a
/// multicast request that matches nothing gets no answer, RFC 7252 §8.2).
pub fn answer(request: &[u8], port: u16) -> Option<Vec<u8>> {
    let p = Packet::from_bytes(request).ok()?;
    if p.header.code != MessageClass::Request(coap_lite::RequestType::Get) {
        return None;
    }
    let mut path = Vec::new();
    let mut query = Vec::new();
    for (number, values) in p.options() {
        for v in values {
            let text = String::from_utf8(v.clone()).ok()?;
            match *number {
                opt::URI_PATH => path.push(text),
                opt::URI_QUERY => query.push(text),
                _ => {}
            }
        }
    }
    if path != [".well-known", "core"] || !selects(&query, port) {
        return None;
    }
    let kind = match p.header.get_type() {
        MessageType::Confirmable => MessageType::Acknowledgement,
        _ => MessageType::NonConfirmable,
    };
    let mid = if kind == MessageType::Acknowledgement {
        p.header.message_id
    } else {
        p.header.message_id.wrapping_add(0x8000)
    };
    Some(
        Message {
            code: CoapCode::CONTENT,
            options: vec![(
                opt::CONTENT_FORMAT,
                encode_uint(u32::from(ContentFormat::LINK_FORMAT.0)),
            )],
            payload: format!("<>;{BRSKI_JP}={port}").into_bytes(),
        }
        .finish(kind, mid, p.get_token()),
    )
}

/// The join ports an answer to [`query`] with `token` names (CJP §5: possibly several links,
/// the value possibly quoted, other attributes ignored).
pub fn join_ports(answer: &[u8], token: &[u8]) -> Vec<u16> {
    let Ok(p) = Packet::from_bytes(answer) else {
        return Vec::new();
    };
    if p.get_token() != token
        || p.header.code != MessageClass::Response(coap_lite::ResponseType::Content)
    {
        return Vec::new();
    }
    let Ok(text) = std::str::from_utf8(&p.payload) else {
        return Vec::new();
    };
    text.split(',')
        .flat_map(|link| link.split(';').skip(1))
        .filter_map(|attr| attr.trim().split_once('='))
        .filter(|(name, _)| *name == BRSKI_JP)
        .filter_map(|(_, v)| v.trim_matches('"').parse::<u16>().ok())
        .filter(|port| *port != 0)
        .collect()
}

/// Answer join-proxy discovery on `socket` (bound to the CoAP port, joined to
/// [`ALL_COAP_NODES`] on the pledge link) with join port `port`, until the task ends.
pub async fn respond(socket: UdpSocket, port: u16) {
    let mut buf = vec![0u8; 1500];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if let Some(reply) = answer(&buf[..n], port) {
            tracing::debug!(pledge = %from, port, "join proxy discovery answered");
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

/// A socket on the CoAP port `port` that hears [`ALL_COAP_NODES`] on interface `ifindex`.
pub fn bind_responder(port: u16, ifindex: u32) -> std::io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))?;
    socket.join_multicast_v6(&ALL_COAP_NODES, ifindex)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// Ask `to` (the multicast group on an interface, or one address) for join proxies and
/// collect the answers for `wait`: each replying address with the join ports it named, handed
/// to `found` as it comes.
pub async fn find(
    to: SocketAddrV6,
    wait: Duration,
    mut found: impl FnMut(SocketAddrV6),
) -> std::io::Result<()> {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))).await?;
    let mut token = [0u8; 4];
    let _ = openssl::rand::rand_bytes(&mut token);
    let mid = u16::from_be_bytes([token[0], token[1]]);
    socket.send_to(&query(mid, &token), to).await?;
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 1500];
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok((n, SocketAddr::V6(from)))) =
        tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
    {
        for port in join_ports(&buf[..n], &token) {
            let scope = if from.scope_id() != 0 {
                from.scope_id()
            } else {
                to.scope_id()
            };
            let proxy = SocketAddrV6::new(*from.ip(), port, 0, scope);
            if !seen.contains(&proxy) {
                seen.push(proxy);
                found(proxy);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjp_5_a_query_for_brski_jp_gets_the_join_port() {
        let q = query(0x1234, &[7, 7]);
        let a = answer(&q, 5684).expect("an answer");
        let p = Packet::from_bytes(&a).expect("coap");
        assert_eq!(p.header.get_type(), MessageType::NonConfirmable);
        assert_eq!(p.payload, b"<>;brski-jp=5684");
        assert_eq!(join_ports(&a, &[7, 7]), vec![5684]);
        // Another token is another query's answer.
        assert!(join_ports(&a, &[8]).is_empty());
    }

    #[test]
    fn rfc6690_4_1_other_filters_and_paths_get_no_answer_from_the_proxy() {
        let with_query = |q: &str, path: &[&str]| {
            let mut options: Vec<(u16, Vec<u8>)> = path
                .iter()
                .map(|s| (opt::URI_PATH, s.as_bytes().to_vec()))
                .collect();
            if !q.is_empty() {
                options.push((opt::URI_QUERY, q.as_bytes().to_vec()));
            }
            Message {
                code: CoapCode(1),
                options,
                payload: Vec::new(),
            }
            .finish(MessageType::Confirmable, 9, &[1])
        };
        assert!(answer(&with_query("rt=brski*", &[".well-known", "core"]), 1).is_none());
        assert!(answer(&with_query("brski-jp=*", &["other"]), 1).is_none());
        let core = [".well-known", "core"];
        assert!(answer(&with_query("brski-jp=5684", &core), 5684).is_some());
        assert!(answer(&with_query("brski-jp=56*", &core), 5684).is_some());
        assert!(answer(&with_query("brski-jp=1", &core), 5684).is_none());
        // A CON query without a filter is answered with a piggybacked ACK.
        let a = answer(&with_query("", &[".well-known", "core"]), 4000).expect("answer");
        let p = Packet::from_bytes(&a).expect("coap");
        assert_eq!(p.header.get_type(), MessageType::Acknowledgement);
        assert_eq!(p.header.message_id, 9);
        assert!(answer(b"\xff\x00", 1).is_none());
    }

    #[test]
    fn cjp_5_several_links_quoted_values_and_other_attributes() {
        let a = Message {
            code: CoapCode::CONTENT,
            options: vec![(opt::CONTENT_FORMAT, vec![40])],
            payload: b"<>;brski-jp=8485, <>;brski-jp=\"8486\";var=\"c509 v2\",</x>;rt=a".to_vec(),
        }
        .finish(MessageType::NonConfirmable, 1, &[3]);
        assert_eq!(join_ports(&a, &[3]), vec![8485, 8486]);
    }

    #[tokio::test]
    async fn a_pledge_finds_the_proxy_that_answers_and_its_port() {
        let socket = UdpSocket::bind("[::1]:0").await.expect("bind");
        let at = match socket.local_addr().expect("addr") {
            SocketAddr::V6(a) => a,
            SocketAddr::V4(_) => unreachable!("bound to ::1"),
        };
        let responder = tokio::spawn(respond(socket, 6001));
        let mut found = Vec::new();
        find(at, Duration::from_millis(500), |p| found.push(p))
            .await
            .expect("find");
        responder.abort();
        assert_eq!(
            found,
            vec![SocketAddrV6::new(Ipv6Addr::LOCALHOST, 6001, 0, 0)]
        );
    }
}
