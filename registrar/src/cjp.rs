//! `registrar proxy --udp`: the constrained join proxy, in stateful mode
//! (draft-ietf-anima-constrained-join-proxy §4.3, [`relay`]) or stateless ([`relay_stateless`],
//! §4.4: JPY messages). Each pledge (address and port) gets a flow:
//! a UDP socket of its own towards the registrar's CoAPS port, so that the registrar sees one
//! peer per pledge and DTLS runs end to end; the proxy rewrites only the IP and UDP headers. A
//! flow ends after [`FlowLimits::idle`] without a datagram either way (CJP: 30 s). At most
//! [`FlowLimits::per_pledge`] flows per pledge address and [`FlowLimits::per_interface`] in all
//! (CJP: SHOULD 2 and 10); a datagram over the limit is answered with ICMP "administratively
//! prohibited" when the proxy may send ICMP (CAP_NET_RAW), and dropped.

use brski_common::jpy::{HeaderKey, JpyMessage};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// How many flows the proxy keeps, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct FlowLimits {
    /// Flows per pledge IP address.
    pub per_pledge: usize,
    /// Flows in all (the proxy serves one pledge link).
    pub per_interface: usize,
    /// A flow without a datagram for this long ends.
    pub idle: Duration,
}

impl Default for FlowLimits {
    /// CJP §4.3: 2 per pledge, 10 per interface, 30 s.
    fn default() -> Self {
        Self {
            per_pledge: 2,
            per_interface: 10,
            idle: Duration::from_secs(30),
        }
    }
}

/// Whether a datagram from a pledge may go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// The pledge has a flow.
    Existing,
    /// A new flow was opened for it.
    New,
    /// Over a limit (the reason, for the log).
    Refused(&'static str),
}

/// The flows and when each last carried a datagram, sans I/O.
#[derive(Debug, Default)]
pub struct FlowTable {
    limits: FlowLimits,
    last: HashMap<SocketAddr, Instant>,
}

impl FlowTable {
    pub fn new(limits: FlowLimits) -> Self {
        Self {
            limits,
            last: HashMap::new(),
        }
    }

    /// A datagram from `pledge` at `now`.
    pub fn admit(&mut self, pledge: SocketAddr, now: Instant) -> Admit {
        if let Some(t) = self.last.get_mut(&pledge) {
            *t = now;
            return Admit::Existing;
        }
        if self.last.len() >= self.limits.per_interface {
            return Admit::Refused("flows per interface");
        }
        let same_address = self.last.keys().filter(|a| a.ip() == pledge.ip()).count();
        if same_address >= self.limits.per_pledge {
            return Admit::Refused("flows per pledge address");
        }
        self.last.insert(pledge, now);
        Admit::New
    }

    /// A datagram from the registrar for `pledge`'s flow.
    pub fn touch(&mut self, pledge: SocketAddr, now: Instant) {
        if let Some(t) = self.last.get_mut(&pledge) {
            *t = now;
        }
    }

    /// End the flows idle at `now`; their pledges.
    pub fn expire(&mut self, now: Instant) -> Vec<SocketAddr> {
        let idle = self.limits.idle;
        let gone: Vec<SocketAddr> = self
            .last
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) >= idle)
            .map(|(a, _)| *a)
            .collect();
        for a in &gone {
            self.last.remove(a);
        }
        gone
    }

    /// Forget `pledge`'s flow at once.
    pub fn expire_now(&mut self, pledge: SocketAddr) {
        self.last.remove(&pledge);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.last.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

/// RFC 1071 Internet checksum.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The ICMP message refusing a datagram of `payload` from `pledge` to `local` (CJP §4.3):
/// ICMPv6 Destination Unreachable code 1 (RFC 4443 §3.1: as much of the invoking packet as
/// fits in the minimum MTU) or ICMPv4 type 3 code 13 (RFC 1812 §5.2.7.1: the IP header and
/// the first 8 bytes of its data). The invoking packet's IP and UDP headers are rebuilt (the
/// proxy received the payload only). `None` when the families differ.
pub fn administratively_prohibited(
    pledge: SocketAddr,
    local: SocketAddr,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let udp_len = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
    let mut udp = Vec::with_capacity(8 + payload.len());
    udp.extend_from_slice(&pledge.port().to_be_bytes());
    udp.extend_from_slice(&local.port().to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    match (pledge.ip(), local.ip()) {
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let mut invoking = vec![0x60, 0, 0, 0];
            invoking.extend_from_slice(&udp_len.to_be_bytes());
            invoking.extend_from_slice(&[17, 64]);
            invoking.extend_from_slice(&src.octets());
            invoking.extend_from_slice(&dst.octets());
            invoking.extend_from_slice(&udp);
            // 1280 − 40 (IPv6 header) − 8 (ICMPv6 header).
            invoking.truncate(1232);
            // The kernel fills in the ICMPv6 checksum (RFC 3542 §3.1).
            let mut m = vec![1, 1, 0, 0, 0, 0, 0, 0];
            m.extend_from_slice(&invoking);
            Some(m)
        }
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let total = 20u16.saturating_add(udp_len);
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&total.to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
            ip.extend_from_slice(&src.octets());
            ip.extend_from_slice(&dst.octets());
            let sum = checksum(&ip);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            ip.extend_from_slice(&udp[..8]);
            let mut m = vec![3, 13, 0, 0, 0, 0, 0, 0];
            m.extend_from_slice(&ip);
            let sum = checksum(&m);
            m[2..4].copy_from_slice(&sum.to_be_bytes());
            Some(m)
        }
        _ => None,
    }
}

/// A raw ICMP socket of `pledge`'s family, when the process may have one.
fn icmp_socket(pledge: SocketAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    if pledge.is_ipv6() {
        Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
    } else {
        Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
    }
}

/// Refuse a datagram over the limits: ICMP when allowed (logged once when not).
fn refuse(pledge: SocketAddr, local: SocketAddr, payload: &[u8], why: &str, warned: &mut bool) {
    tracing::info!(%pledge, reason = why, outcome = "flow-limit", "datagram refused");
    let Some(message) = administratively_prohibited(pledge, local, payload) else {
        return;
    };
    let sent = icmp_socket(pledge).and_then(|s| {
        let to = match pledge {
            SocketAddr::V6(a) => {
                SocketAddr::V6(std::net::SocketAddrV6::new(*a.ip(), 0, 0, a.scope_id()))
            }
            SocketAddr::V4(a) => SocketAddr::V4(std::net::SocketAddrV4::new(*a.ip(), 0)),
        };
        s.send_to(&message, &to.into())
    });
    if let Err(e) = sent
        && !*warned
    {
        *warned = true;
        tracing::warn!(error = %e, "cannot send ICMP (needs CAP_NET_RAW); refused datagrams are dropped silently");
    }
}

/// One flow: the socket towards the registrar and the task relaying its answers.
struct Flow {
    upstream: Arc<UdpSocket>,
    answers: tokio::task::JoinHandle<()>,
}

/// Relay datagrams from `downstream` (the pledge link) to `registrar` until `stop`.
pub async fn relay(
    downstream: UdpSocket,
    registrar: SocketAddr,
    limits: FlowLimits,
    stop: impl std::future::Future<Output = ()>,
) {
    let downstream = Arc::new(downstream);
    let local = downstream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0u8; 16], 0)));
    let table = Arc::new(Mutex::new(FlowTable::new(limits)));
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    let mut sweep = tokio::time::interval(
        limits
            .idle
            .min(Duration::from_secs(5))
            .max(Duration::from_millis(100)),
    );
    let mut warned = false;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = sweep.tick() => {
                let gone = table.lock().unwrap_or_else(PoisonError::into_inner).expire(Instant::now());
                for pledge in gone {
                    if let Some(f) = flows.remove(&pledge) {
                        f.answers.abort();
                        tracing::info!(%pledge, outcome = "expired", "flow ended");
                    }
                }
            }
            received = downstream.recv_from(&mut buf) => {
                let (n, pledge) = match received {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "receive failed");
                        continue;
                    }
                };
                let datagram = &buf[..n];
                let admitted = table.lock().unwrap_or_else(PoisonError::into_inner).admit(pledge, Instant::now());
                match admitted {
                    Admit::Refused(why) => refuse(pledge, local, datagram, why, &mut warned),
                    Admit::Existing => {
                        if let Some(f) = flows.get(&pledge) {
                            let _ = f.upstream.send(datagram).await;
                        }
                    }
                    Admit::New => match open_flow(pledge, registrar, &downstream, &table).await {
                        Ok(f) => {
                            let _ = f.upstream.send(datagram).await;
                            flows.insert(pledge, f);
                        }
                        Err(e) => {
                            table.lock().unwrap_or_else(PoisonError::into_inner).expire_now(pledge);
                            tracing::warn!(%pledge, registrar = %registrar, error = %e, outcome = "unreachable", "cannot open a flow");
                        }
                    },
                }
            }
        }
    }
    for (_, f) in flows {
        f.answers.abort();
    }
}

/// A new flow for `pledge`: a socket of its own towards the registrar (a unique source port,
/// CJP §4.3), and the task sending the registrar's answers back from the proxy's port.
async fn open_flow(
    pledge: SocketAddr,
    registrar: SocketAddr,
    downstream: &Arc<UdpSocket>,
    table: &Arc<Mutex<FlowTable>>,
) -> std::io::Result<Flow> {
    let any: SocketAddr = if registrar.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let upstream = Arc::new(UdpSocket::bind(any).await?);
    upstream.connect(registrar).await?;
    tracing::info!(%pledge, registrar = %registrar, upstream = %upstream.local_addr()?, outcome = "flow", "relaying");
    let (up, down, table) = (upstream.clone(), downstream.clone(), table.clone());
    let answers = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = up.recv(&mut buf).await {
            table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .touch(pledge, Instant::now());
            let _ = down.send_to(&buf[..n], pledge).await;
        }
    });
    Ok(Flow { upstream, answers })
}

/// How long a header key seals new headers (CJP §4.5.1: rotated rarely, e.g. daily); headers
/// of the key before still open, so a pledge mid-handshake at a rotation is not cut off.
pub const KEY_ROTATION: Duration = Duration::from_secs(24 * 3600);

/// The stateless proxy's header keys: the current one and the one before.
pub struct HeaderKeys {
    current: HeaderKey,
    previous: Option<HeaderKey>,
}

impl HeaderKeys {
    pub fn new(current: HeaderKey) -> Self {
        Self {
            current,
            previous: None,
        }
    }

    /// A new current key; the current one becomes the previous.
    pub fn rotate(&mut self, next: HeaderKey) {
        self.previous = Some(std::mem::replace(&mut self.current, next));
    }

    pub fn seal(&self, pledge: SocketAddr) -> Option<Vec<u8>> {
        self.current.seal(pledge)
    }

    pub fn open(&self, header: &[u8]) -> Option<SocketAddr> {
        self.current
            .open(header)
            .or_else(|| self.previous.as_ref().and_then(|k| k.open(header)))
    }
}

/// Pledges logged once each (bounded; then no more lines).
const LOGGED_PLEDGES: usize = 4096;

/// The stateless mode (CJP §4.4, §4.5): every datagram from a pledge on `downstream` goes to
/// the registrar's JPY port `registrar` as `[header, datagram]`, the header sealing the pledge
/// with the proxy's key; every JPY message from the registrar whose header opens goes to that
/// pledge. Nothing is kept per pledge. The upstream socket is connected, so only the
/// registrar's datagrams reach it; a message that does not decode or whose header does not
/// open is dropped silently (CJP §4.5.1).
pub async fn relay_stateless(
    downstream: UdpSocket,
    registrar: SocketAddr,
    mut keys: HeaderKeys,
    rotation: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let any: SocketAddr = if registrar.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let upstream = UdpSocket::bind(any).await?;
    upstream.connect(registrar).await?;
    tracing::info!(upstream = %upstream.local_addr()?, %registrar, "JPY relay (stateless)");
    let mut down_buf = vec![0u8; 65536];
    let mut up_buf = vec![0u8; 65536];
    let mut logged = HashSet::new();
    let mut rotate = tokio::time::interval_at(tokio::time::Instant::now() + rotation, rotation);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            _ = rotate.tick() => match HeaderKey::random() {
                Ok(k) => {
                    keys.rotate(k);
                    tracing::info!("JPY header key rotated");
                }
                Err(_) => tracing::warn!("no randomness for a new JPY header key; the old one stays"),
            },
            received = downstream.recv_from(&mut down_buf) => {
                let Ok((n, pledge)) = received else { continue };
                let Some(header) = keys.seal(pledge) else {
                    tracing::debug!(%pledge, outcome = "dropped", "a pledge address a JPY header cannot carry");
                    continue;
                };
                if logged.len() < LOGGED_PLEDGES && logged.insert(pledge) {
                    tracing::info!(%pledge, outcome = "jpy", "relaying (stateless)");
                }
                let message = JpyMessage { header, content: down_buf[..n].to_vec() };
                let _ = upstream.send(&message.encode()).await;
            }
            received = upstream.recv(&mut up_buf) => {
                let Ok(n) = received else { continue };
                let Ok(message) = JpyMessage::decode(&up_buf[..n]) else {
                    tracing::debug!(outcome = "dropped", "not a JPY message");
                    continue;
                };
                let Some(pledge) = keys.open(&message.header) else {
                    tracing::debug!(outcome = "dropped", "a JPY header this proxy did not seal");
                    continue;
                };
                let _ = downstream.send_to(&message.content, pledge).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn cjp_4_3_two_flows_per_pledge_ten_per_interface_then_refused() {
        let now = Instant::now();
        let mut t = FlowTable::new(FlowLimits::default());
        assert_eq!(t.admit(addr("[fe80::1]:1000"), now), Admit::New);
        assert_eq!(t.admit(addr("[fe80::1]:1000"), now), Admit::Existing);
        assert_eq!(t.admit(addr("[fe80::1]:1001"), now), Admit::New);
        assert_eq!(
            t.admit(addr("[fe80::1]:1002"), now),
            Admit::Refused("flows per pledge address")
        );
        for i in 2..10 {
            assert_eq!(t.admit(addr(&format!("[fe80::{i}]:1000")), now), Admit::New);
        }
        assert_eq!(t.len(), 10);
        assert_eq!(
            t.admit(addr("[fe80::99]:1000"), now),
            Admit::Refused("flows per interface")
        );
    }

    #[test]
    fn cjp_4_3_flows_end_after_30_s_without_a_datagram_either_way() {
        let t0 = Instant::now();
        let mut t = FlowTable::new(FlowLimits::default());
        let (a, b) = (addr("[fe80::1]:1"), addr("[fe80::2]:1"));
        t.admit(a, t0);
        t.admit(b, t0);
        // The registrar answered b's flow at 20 s.
        t.touch(b, t0 + Duration::from_secs(20));
        assert!(t.expire(t0 + Duration::from_secs(29)).is_empty());
        assert_eq!(t.expire(t0 + Duration::from_secs(30)), vec![a]);
        assert_eq!(t.expire(t0 + Duration::from_secs(50)), vec![b]);
        assert!(t.is_empty());
        // A new flow for a again.
        assert_eq!(t.admit(a, t0 + Duration::from_secs(51)), Admit::New);
    }

    #[test]
    fn rfc4443_3_1_administratively_prohibited_carries_the_invoking_packet() {
        let payload = [0x16u8; 2000];
        let m =
            administratively_prohibited(addr("[fe80::1]:4000"), addr("[fe80::2]:5684"), &payload)
                .expect("v6");
        assert_eq!(
            &m[..2],
            &[1, 1],
            "Destination Unreachable, administratively prohibited"
        );
        assert_eq!(
            m.len(),
            1240,
            "at most the minimum MTU less the IPv6 header"
        );
        let invoking = &m[8..];
        assert_eq!(invoking[0] >> 4, 6);
        assert_eq!(invoking[6], 17, "UDP");
        assert_eq!(
            &invoking[8..24],
            &"fe80::1"
                .parse::<std::net::Ipv6Addr>()
                .expect("ip")
                .octets()
        );
        assert_eq!(&invoking[40..42], &4000u16.to_be_bytes());
        assert_eq!(&invoking[42..44], &5684u16.to_be_bytes());
        assert_eq!(&invoking[44..46], &2008u16.to_be_bytes());
    }

    #[test]
    fn rfc1812_icmpv4_administratively_prohibited_has_valid_checksums() {
        let m = administratively_prohibited(addr("10.0.0.9:4000"), addr("10.0.0.1:5684"), b"hello")
            .expect("v4");
        assert_eq!(&m[..2], &[3, 13]);
        assert_eq!(checksum(&m), 0, "ICMP checksum");
        assert_eq!(checksum(&m[8..28]), 0, "IP header checksum");
        assert_eq!(m.len(), 8 + 20 + 8);
        assert_eq!(
            administratively_prohibited(addr("10.0.0.9:1"), addr("[::1]:1"), b""),
            None
        );
    }

    /// Two pledges behind the proxy reach a registrar (an echo server) each from a port of
    /// its own, and get their answers back.
    #[tokio::test]
    async fn cjp_4_3_each_pledge_gets_a_port_of_its_own_towards_the_registrar() {
        let registrar = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let registrar_addr = registrar.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_by_registrar = seen.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = registrar.recv_from(&mut buf).await {
                seen_by_registrar.lock().expect("lock").push(from);
                let mut reply = buf[..n].to_vec();
                reply.reverse();
                let _ = registrar.send_to(&reply, from).await;
            }
        });
        let proxy = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let proxy_addr = proxy.local_addr().expect("addr");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let limits = FlowLimits {
            per_pledge: 2,
            ..FlowLimits::default()
        };
        let relay = tokio::spawn(relay(proxy, registrar_addr, limits, async {
            let _ = stop_rx.await;
        }));
        let mut pledges = Vec::new();
        for _ in 0..3 {
            let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            s.connect(proxy_addr).await.expect("connect");
            pledges.push(s);
        }
        let mut buf = [0u8; 1500];
        for (i, p) in pledges.iter().take(2).enumerate() {
            for _ in 0..2 {
                p.send(&[i as u8, 1, 2]).await.expect("send");
                let n = tokio::time::timeout(Duration::from_secs(5), p.recv(&mut buf))
                    .await
                    .expect("an answer")
                    .expect("recv");
                assert_eq!(&buf[..n], &[2, 1, i as u8]);
            }
        }
        // A third flow from the same address is over the limit: no answer; with CAP_NET_RAW
        // the proxy's ICMP "administratively prohibited" reaches the pledge's socket as an
        // error (Linux: EHOSTUNREACH for ICMPv4 code 13, EACCES for ICMPv6 code 1), without it
        // nothing comes.
        pledges[2].send(&[9]).await.expect("send");
        match tokio::time::timeout(Duration::from_millis(300), pledges[2].recv(&mut buf)).await {
            Err(_) => {}
            Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::HostUnreachable, "{e}"),
            Ok(Ok(n)) => panic!("an answer over the limit: {:?}", &buf[..n]),
        }
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[0], seen[1], "one upstream port per pledge");
        assert_eq!(seen[2], seen[3]);
        assert_ne!(seen[0], seen[2], "a port of its own for each pledge");
        let _ = stop_tx.send(());
        relay.await.expect("relay ends on stop");
    }

    /// A registrar's JPY port that answers each message with its content reversed under the
    /// same header, and, first, sends `extra` messages of its own.
    async fn jpy_registrar(extra: Vec<Vec<u8>>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, proxy)) = socket.recv_from(&mut buf).await {
                let m = JpyMessage::decode(&buf[..n]).expect("the proxy sends JPY messages");
                for e in &extra {
                    let _ = socket.send_to(e, proxy).await;
                }
                let mut content = m.content.clone();
                content.reverse();
                let answer = JpyMessage {
                    header: m.header,
                    content,
                };
                let _ = socket.send_to(&answer.encode(), proxy).await;
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn cjp_4_4_stateless_answers_reach_the_pledge_and_forged_headers_are_dropped() {
        let key = HeaderKey::from_bytes([1; 16], &[2; 32]).expect("key");
        // A forged header and garbage, sent by the registrar before each answer.
        let forged = JpyMessage {
            header: vec![0; 32],
            content: b"forged".to_vec(),
        }
        .encode();
        let (registrar, echo) = jpy_registrar(vec![forged, b"garbage".to_vec()]).await;
        let proxy = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let proxy_addr = proxy.local_addr().expect("addr");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn(relay_stateless(
            proxy,
            registrar,
            HeaderKeys::new(key),
            KEY_ROTATION,
            async {
                let _ = stop_rx.await;
            },
        ));
        let pledge = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        pledge.connect(proxy_addr).await.expect("connect");
        let mut buf = [0u8; 2048];
        for round in 0..3u8 {
            pledge.send(&[round, 1, 2, 3]).await.expect("send");
            let n = tokio::time::timeout(Duration::from_secs(5), pledge.recv(&mut buf))
                .await
                .expect("an answer")
                .expect("recv");
            // Only the answer under the proxy's own header arrives, never the forged one.
            assert_eq!(&buf[..n], &[3, 2, 1, round]);
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(200), pledge.recv(&mut buf))
                .await
                .is_err(),
            "nothing else reached the pledge"
        );
        let _ = stop_tx.send(());
        relay.await.expect("join").expect("relay");
        echo.abort();
    }

    #[test]
    fn cjp_4_5_1_headers_of_the_key_before_a_rotation_still_open() {
        let pledge: SocketAddr = "10.0.0.7:4000".parse().expect("addr");
        let mut keys = HeaderKeys::new(HeaderKey::from_bytes([1; 16], &[1; 32]).expect("key"));
        let old = keys.seal(pledge).expect("header");
        keys.rotate(HeaderKey::from_bytes([2; 16], &[2; 32]).expect("key"));
        let new = keys.seal(pledge).expect("header");
        assert_ne!(old, new);
        assert_eq!(keys.open(&old), Some(pledge));
        assert_eq!(keys.open(&new), Some(pledge));
        keys.rotate(HeaderKey::from_bytes([3; 16], &[3; 32]).expect("key"));
        assert_eq!(keys.open(&old), None, "two rotations ago");
    }
}
