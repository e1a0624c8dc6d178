//! CoAP discovery for constrained BRSKI, over plain CoAP on port 5683 (RFC 7252 §8: a
//! multicast request is NON, and so is its answer), sans I/O with thin UDP shells:
//!
//! - a pledge multicasts `GET coap://[ff02::fd]/.well-known/core?brski-jp=*` on its links; a
//!   join proxy (or a registrar one hop away, answering as if it were one) replies
//!   `<>;brski-jp=PORT`, and the reply's source address with that port is where the pledge's
//!   DTLS goes (cBRSKI §10.1, CJP §5);
//! - a join proxy asks `?rt=brski*` for registrars; a registrar answers
//!   `<coaps://[addr]:port>;rt=brski` (stateful relaying) and, when it has a JPY port,
//!   `<jpy://[addr]:port>;rt=brski.rjp` (stateless relaying), and the proxy takes the stateless
//!   mode when it is offered (CJP §4.1, §5).

use super::exchange::{Message, encode_uint, opt};
use brski_common::answer::CoapCode;
use brski_common::discovery::link_format::{self, Link};
use brski_common::est::ContentFormat;
use coap_lite::{MessageClass, MessageType, Packet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;
use tokio::net::UdpSocket;

/// All-CoAP-Nodes, link-local scope (RFC 7252 §12.8).
pub const ALL_COAP_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfd);
/// All-CoAP-Nodes, site-local scope (RFC 7252 §12.8), where a join proxy looks for registrars
/// (CJP §5).
pub const ALL_COAP_NODES_SITE: Ipv6Addr = Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 0, 0xfd);
/// The CoAP port (RFC 7252 §12.6).
pub const COAP_PORT: u16 = 5683;
/// The CoAPS port (RFC 7252 §12.6), the default of a `coaps` URI.
pub const COAPS_PORT: u16 = 5684;
/// The link attribute naming a join port (CJP §5, IANA "brski-jp").
pub const BRSKI_JP: &str = "brski-jp";
/// The resource type of a registrar's CoAPS join port (cBRSKI §15.1).
pub const RT_BRSKI: &str = "brski";
/// The resource type of a registrar's JPY port (CJP §8).
pub const RT_BRSKI_RJP: &str = "brski.rjp";

/// How a join proxy relays to a registrar (CJP §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Per-pledge UDP flows to the registrar's CoAPS port (CJP §4.3).
    Stateful,
    /// JPY messages to the registrar's JPY port (CJP §4.4).
    Stateless,
}

/// A registrar's join endpoint, as its discovery answer names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrarLink {
    /// The relaying the endpoint takes.
    pub mode: ProxyMode,
    /// The registrar's CoAPS port (stateful) or JPY port (stateless).
    pub addr: SocketAddr,
}

impl RegistrarLink {
    /// The link a registrar answers with (CJP §5): `<coaps://[addr]:port>;rt=brski` or
    /// `<jpy://[addr]:port>;rt=brski.rjp`.
    pub fn link(&self) -> Link {
        let (scheme, rt) = match self.mode {
            ProxyMode::Stateful => ("coaps", RT_BRSKI),
            ProxyMode::Stateless => ("jpy", RT_BRSKI_RJP),
        };
        let host = match self.addr.ip() {
            IpAddr::V6(a) => format!("[{a}]"),
            IpAddr::V4(a) => a.to_string(),
        };
        Link::new(format!("{scheme}://{host}:{}", self.addr.port())).with("rt", rt)
    }

    /// The registrar endpoint a link names: `rt=brski.rjp` with a `jpy` URI (which must have
    /// a port), or `rt=brski` with a `coaps` URI (port 5684 by default); the path is unused
    /// (CJP §5). A link-local address takes `scope` (that of the answer).
    pub fn from_link(link: &Link, scope: u32) -> Option<Self> {
        let (mode, rest) = if link.has_rt(RT_BRSKI_RJP) {
            (ProxyMode::Stateless, link.target.strip_prefix("jpy://")?)
        } else if link.has_rt(RT_BRSKI) {
            (ProxyMode::Stateful, link.target.strip_prefix("coaps://")?)
        } else {
            return None;
        };
        let authority = rest.split('/').next()?;
        let (ip, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            let ip: Ipv6Addr = host.parse().ok()?;
            (IpAddr::V6(ip), after.strip_prefix(':'))
        } else {
            let (host, port) = match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            (IpAddr::V4(host.parse().ok()?), port)
        };
        let port = match (port, mode) {
            (Some(p), _) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
            (None, ProxyMode::Stateful) => COAPS_PORT,
            (None, ProxyMode::Stateless) => return None,
        };
        if ip.is_unspecified() || ip.is_multicast() {
            return None;
        }
        let addr = match ip {
            IpAddr::V6(v6) if v6.is_unicast_link_local() => {
                SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope))
            }
            ip => SocketAddr::new(ip, port),
        };
        Some(Self { mode, addr })
    }
}

/// The registrar a join proxy relays to among those discovered: a stateless endpoint when one
/// is offered, else a stateful one (CJP §4.1); `want` restricts the choice to one mode.
pub fn choose(found: &[RegistrarLink], want: Option<ProxyMode>) -> Option<RegistrarLink> {
    let pick = |mode| found.iter().copied().find(|r| r.mode == mode);
    match want {
        Some(mode) => pick(mode),
        None => pick(ProxyMode::Stateless).or_else(|| pick(ProxyMode::Stateful)),
    }
}

/// The link a join proxy (or a registrar one hop away) answers pledges with: `<>;brski-jp=PORT`.
pub fn join_port_link(port: u16) -> Link {
    Link::new("").with(BRSKI_JP, port.to_string())
}

/// `GET /.well-known/core?FILTER`, non-confirmable.
fn discovery_query(filter: &str, mid: u16, token: &[u8]) -> Vec<u8> {
    Message {
        code: CoapCode(1),
        options: vec![
            (opt::URI_PATH, b".well-known".to_vec()),
            (opt::URI_PATH, b"core".to_vec()),
            (opt::URI_QUERY, filter.as_bytes().to_vec()),
        ],
        payload: Vec::new(),
    }
    .finish(MessageType::NonConfirmable, mid, token)
}

/// The query a pledge sends.
pub fn query(mid: u16, token: &[u8]) -> Vec<u8> {
    discovery_query(&format!("{BRSKI_JP}=*"), mid, token)
}

/// The query a join proxy sends for registrars (both modes at once).
pub fn registrar_query(mid: u16, token: &[u8]) -> Vec<u8> {
    discovery_query(&format!("rt={RT_BRSKI}*"), mid, token)
}

/// The answer to `request` when it is a GET of `/.well-known/core` whose filter selects some
/// of `links` (RFC 6690 §4.1): 2.05 with those links, NON to a NON request, a piggybacked ACK
/// to a CON one. `None` otherwise (a multicast request that matches nothing gets no answer,
/// RFC 7252 §8.2).
pub fn answer(request: &[u8], links: &[Link]) -> Option<Vec<u8>> {
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
    if path != [".well-known", "core"] {
        return None;
    }
    let selected = link_format::select(links, &query);
    if selected.is_empty() {
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
            payload: link_format::encode(selected).into_bytes(),
        }
        .finish(kind, mid, p.get_token()),
    )
}

/// The links of a 2.05 answer to the query with `token`; none for anything else.
pub fn links(answer: &[u8], token: &[u8]) -> Vec<Link> {
    let Ok(p) = Packet::from_bytes(answer) else {
        return Vec::new();
    };
    if p.get_token() != token
        || p.header.code != MessageClass::Response(coap_lite::ResponseType::Content)
    {
        return Vec::new();
    }
    std::str::from_utf8(&p.payload)
        .map(link_format::parse)
        .unwrap_or_default()
}

/// The join ports an answer to [`query`] with `token` names (CJP §5: possibly several links,
/// the value possibly quoted, other attributes ignored).
pub fn join_ports(answer: &[u8], token: &[u8]) -> Vec<u16> {
    links(answer, token)
        .iter()
        .filter_map(|l| l.attribute(BRSKI_JP))
        .filter_map(|v| v.trim().parse::<u16>().ok())
        .filter(|port| *port != 0)
        .collect()
}

/// The registrar endpoints an answer to [`registrar_query`] with `token` names, link-local
/// addresses taking the answer's `scope`.
pub fn registrar_links(answer: &[u8], token: &[u8], scope: u32) -> Vec<RegistrarLink> {
    links(answer, token)
        .iter()
        .filter_map(|l| RegistrarLink::from_link(l, scope))
        .collect()
}

/// Answer discovery on `socket` with the links `links_for` gives for each asker, until the
/// task ends.
pub async fn respond(socket: UdpSocket, links_for: impl Fn(SocketAddr) -> Vec<Link>) {
    let mut buf = vec![0u8; 1500];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if let Some(reply) = answer(&buf[..n], &links_for(from)) {
            tracing::debug!(asker = %from, "CoAP discovery answered");
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

/// A socket on the CoAP port `port` that hears [`ALL_COAP_NODES`] and [`ALL_COAP_NODES_SITE`]
/// on each interface of `ifindexes`.
pub fn bind_responder(port: u16, ifindexes: &[u32]) -> std::io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))?;
    for &index in ifindexes {
        socket.join_multicast_v6(&ALL_COAP_NODES, index)?;
        socket.join_multicast_v6(&ALL_COAP_NODES_SITE, index)?;
    }
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// The address of this host that a datagram to `peer` leaves from (no datagram is sent).
pub fn local_address_towards(peer: SocketAddr) -> std::io::Result<IpAddr> {
    let any: SocketAddr = match peer {
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
    };
    let probe = std::net::UdpSocket::bind(any)?;
    probe.connect(peer)?;
    Ok(probe.local_addr()?.ip())
}

/// Send `request` (made for `token`) to each of `to`, out of interface `ifindex` when that is
/// not 0, and hand every answer and where it came from to `heard` for `wait`.
async fn ask(
    to: &[SocketAddrV6],
    ifindex: u32,
    request: &[u8],
    wait: Duration,
    mut heard: impl FnMut(SocketAddrV6, &[u8]),
) -> std::io::Result<()> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV6,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if ifindex != 0 {
        socket.set_multicast_if_v6(ifindex)?;
    }
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())?;
    socket.set_nonblocking(true)?;
    let socket = UdpSocket::from_std(socket.into())?;
    // One destination unreachable (no route for a scope) is not the others' failure.
    let mut failed = None;
    let mut any_sent = false;
    for dest in to {
        match socket.send_to(request, dest).await {
            Ok(_) => any_sent = true,
            Err(e) => failed = Some(e),
        }
    }
    if let (false, Some(e)) = (any_sent, failed) {
        return Err(e);
    }
    let mut buf = vec![0u8; 1500];
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok((n, SocketAddr::V6(from)))) =
        tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
    {
        heard(from, &buf[..n]);
    }
    Ok(())
}

/// A fresh token and message ID.
fn token_and_mid() -> ([u8; 4], u16) {
    let mut token = [0u8; 4];
    let _ = openssl::rand::rand_bytes(&mut token);
    (token, u16::from_be_bytes([token[0], token[1]]))
}

/// Ask `to` (the multicast group on an interface, or one address) for join proxies and
/// collect the answers for `wait`: each replying address with the join ports it named, handed
/// to `found` as it comes.
pub async fn find(
    to: SocketAddrV6,
    wait: Duration,
    mut found: impl FnMut(SocketAddrV6),
) -> std::io::Result<()> {
    let (token, mid) = token_and_mid();
    let mut seen = Vec::new();
    ask(&[to], 0, &query(mid, &token), wait, |from, answer| {
        for port in join_ports(answer, &token) {
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
    })
    .await
}

/// Ask for registrars on the link of interface `ifindex` (All-CoAP-Nodes of link and site
/// scope, CJP §5), or at one address `at`, and collect the endpoints named for `wait`.
pub async fn find_registrars(
    ifindex: u32,
    at: Option<SocketAddrV6>,
    wait: Duration,
) -> std::io::Result<Vec<RegistrarLink>> {
    let (token, mid) = token_and_mid();
    let to = match at {
        Some(a) => vec![a],
        None => vec![
            SocketAddrV6::new(ALL_COAP_NODES, COAP_PORT, 0, ifindex),
            SocketAddrV6::new(ALL_COAP_NODES_SITE, COAP_PORT, 0, ifindex),
        ],
    };
    let mut found: Vec<RegistrarLink> = Vec::new();
    ask(
        &to,
        ifindex,
        &registrar_query(mid, &token),
        wait,
        |from, answer| {
            let scope = if from.scope_id() != 0 {
                from.scope_id()
            } else {
                ifindex
            };
            for r in registrar_links(answer, &token, scope) {
                if !found.contains(&r) {
                    found.push(r);
                }
            }
        },
    )
    .await?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjp_5_a_query_for_brski_jp_gets_the_join_port() {
        let q = query(0x1234, &[7, 7]);
        let a = answer(&q, &[join_port_link(5684)]).expect("an answer");
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
        let jp = |port| [join_port_link(port)];
        assert!(answer(&with_query("rt=brski*", &[".well-known", "core"]), &jp(1)).is_none());
        assert!(answer(&with_query("brski-jp=*", &["other"]), &jp(1)).is_none());
        let core = [".well-known", "core"];
        assert!(answer(&with_query("brski-jp=5684", &core), &jp(5684)).is_some());
        assert!(answer(&with_query("brski-jp=56*", &core), &jp(5684)).is_some());
        assert!(answer(&with_query("brski-jp=1", &core), &jp(5684)).is_none());
        // A CON query without a filter is answered with a piggybacked ACK.
        let a = answer(&with_query("", &[".well-known", "core"]), &jp(4000)).expect("answer");
        let p = Packet::from_bytes(&a).expect("coap");
        assert_eq!(p.header.get_type(), MessageType::Acknowledgement);
        assert_eq!(p.header.message_id, 9);
        assert!(answer(b"\xff\x00", &jp(1)).is_none());
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
        let responder = tokio::spawn(respond(socket, |_| vec![join_port_link(6001)]));
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

    fn registrar_answer(links: &[Link], token: &[u8]) -> Vec<u8> {
        answer(&registrar_query(5, token), links).expect("an answer")
    }

    #[test]
    fn cjp_5_a_registrar_answers_the_proxy_query_with_both_endpoints() {
        let stateful = RegistrarLink {
            mode: ProxyMode::Stateful,
            addr: "[fd00::1]:5684".parse().expect("addr"),
        };
        let stateless = RegistrarLink {
            mode: ProxyMode::Stateless,
            addr: "[fd00::1]:5685".parse().expect("addr"),
        };
        let links = [join_port_link(5684), stateful.link(), stateless.link()];
        let a = registrar_answer(&links, &[9]);
        let p = Packet::from_bytes(&a).expect("coap");
        assert_eq!(
            p.payload,
            b"<coaps://[fd00::1]:5684>;rt=brski,<jpy://[fd00::1]:5685>;rt=brski.rjp"
        );
        let found = registrar_links(&a, &[9], 0);
        assert_eq!(found, vec![stateful, stateless]);
        // CJP §4.1: the stateless endpoint is taken when offered, unless a mode is asked for.
        assert_eq!(choose(&found, None), Some(stateless));
        assert_eq!(choose(&found, Some(ProxyMode::Stateful)), Some(stateful));
        assert_eq!(choose(&found[..1], None), Some(stateful));
        assert_eq!(choose(&found[..1], Some(ProxyMode::Stateless)), None);
        // A pledge asking the same registrar hears only its join port.
        assert_eq!(
            join_ports(&answer(&query(1, &[2]), &links).expect("a"), &[2]),
            vec![5684]
        );
        // Another token's answer is not ours.
        assert!(registrar_links(&a, &[8], 0).is_empty());
    }

    #[test]
    fn cjp_5_registrar_links_other_implementations_may_send() {
        let read =
            |target: &str, rt: &str| RegistrarLink::from_link(&Link::new(target).with("rt", rt), 7);
        // The path is unused; coaps defaults to 5684; a jpy URI must have a port.
        assert_eq!(
            read("coaps://[fd00::2]/b", "brski").map(|r| r.addr),
            Some("[fd00::2]:5684".parse().expect("a"))
        );
        assert_eq!(read("jpy://[fd00::2]", "brski.rjp"), None);
        assert_eq!(
            read("jpy://192.0.2.1:7000", "brski.rjp").map(|r| (r.mode, r.addr)),
            Some((ProxyMode::Stateless, "192.0.2.1:7000".parse().expect("a")))
        );
        // A link-local address takes the answer's scope.
        assert_eq!(
            read("coaps://[fe80::1]:5684", "brski").map(|r| r.addr),
            Some(SocketAddr::V6(SocketAddrV6::new(
                "fe80::1".parse().expect("a"),
                5684,
                0,
                7
            )))
        );
        // A scheme that does not fit the resource type, a relation list, junk.
        assert_eq!(read("coap://[fd00::2]:5683", "brski"), None);
        assert_eq!(read("coaps://[fd00::2]:5684", "brski.rv"), None);
        assert!(read("coaps://[fd00::2]:5684", "core.rd brski").is_some());
        assert_eq!(read("coaps://[::]:5684", "brski"), None);
        assert_eq!(read("coaps://[ff02::fd]:5684", "brski"), None);
        assert_eq!(read("coaps://[fd00::2]:0", "brski"), None);
        assert_eq!(read("coaps://[fd00::2:5684", "brski"), None);
        assert_eq!(read("jpy://host:5684", "brski.rjp"), None);
    }

    #[tokio::test]
    async fn a_proxy_finds_the_registrar_that_answers() {
        let socket = UdpSocket::bind("[::1]:0").await.expect("bind");
        let at = match socket.local_addr().expect("addr") {
            SocketAddr::V6(a) => a,
            SocketAddr::V4(_) => unreachable!("bound to ::1"),
        };
        // The registrar names the address the asker reaches it at.
        let responder = tokio::spawn(respond(socket, move |from| {
            let ip = local_address_towards(from).expect("a route back");
            vec![
                RegistrarLink {
                    mode: ProxyMode::Stateful,
                    addr: SocketAddr::new(ip, 5684),
                }
                .link(),
            ]
        }));
        let found = find_registrars(0, Some(at), Duration::from_millis(500))
            .await
            .expect("find");
        responder.abort();
        assert_eq!(
            found,
            vec![RegistrarLink {
                mode: ProxyMode::Stateful,
                addr: "[::1]:5684".parse().expect("a"),
            }]
        );
    }
}
