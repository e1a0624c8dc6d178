//! `registrar proxy`: the RFC 8995 §4 circuit join proxy. It listens on the pledge link,
//! relays each TCP connection to the registrar byte for byte, announces itself on the pledge
//! link with GRASP `AN_Proxy` (§4.1.1) and DNS-SD `_brski-proxy._tcp` (App. B), and finds the
//! registrar by its `AN_join_registrar` floods (§4.3) or `_brski-registrar._tcp` when no
//! registrar address is given.

use brski_common::discovery::{AN_JOIN_REGISTRAR, Flood};
use brski_service::coaps::jp::{self, ProxyMode, RegistrarLink};
use brski_service::{grasp, mdns, netif};
use clap::Args;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Arguments of `registrar proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Where pledges connect: usually the pledge link's link-local address with its
    /// interface, e.g. `[fe80::1%lan0]:4443`.
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// The registrar's address (`[fd00::1]:8443`); discovered by GRASP/DNS-SD when absent.
    #[arg(long, value_name = "ADDR")]
    pub registrar: Option<String>,
    /// The interface to announce on (default: the zone of --listen).
    #[arg(long, value_name = "IFACE")]
    pub interface: Option<String>,
    /// Seconds between two AN_Proxy floods.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub announce_interval: u64,
    /// Relay CoAPS datagrams instead of TCP connections: the constrained join proxy (CJP §4).
    /// `--listen` is then a UDP address, and `--registrar` the registrar's CoAPS address
    /// (stateful) or JPY address (with --stateless). Without `--registrar` the registrar is
    /// discovered by CoAP (`?rt=brski*` on every other link, CJP §5) and its JPY endpoint,
    /// when it offers one, taken in stateless mode (CJP §4.1).
    #[arg(long)]
    pub udp: bool,
    /// With --udp: flows per pledge address (CJP §4.3: 2).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub max_flows_per_pledge: usize,
    /// With --udp: flows in all (CJP §4.3: 10 per interface).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_flows: usize,
    /// With --udp: seconds a flow lasts without a datagram either way (CJP §4.3: 30).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub flow_idle: u64,
    /// With --udp: the stateless mode (CJP §4.4): JPY messages to the registrar's JPY port
    /// (given or discovered), no state per pledge; the header key is rotated daily.
    #[arg(long)]
    pub stateless: bool,
    /// With --udp: the CoAP port on which `?brski-jp=*` discovery is answered (CJP §5).
    #[arg(long, value_name = "PORT", default_value_t = 5683)]
    pub coap_port: u16,
}

/// How often a constrained proxy asks for registrars until one answers.
const REGISTRAR_QUERY_EVERY: Duration = Duration::from_secs(3);
/// How long answers to one registrar query are collected.
const REGISTRAR_ANSWERS_FOR: Duration = Duration::from_secs(1);
/// How often a constrained proxy asks again for the registrar it found.
const REGISTRAR_RECHECK_EVERY: Duration = Duration::from_secs(30);
/// Re-checks in a row without an answer from the registrar before the proxy takes another.
const MISSES_BEFORE_MOVING: u32 = 3;

/// How long a TCP connect to the registrar may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight relays may finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(10);

/// The registrar to relay to, fixed or as last heard.
#[derive(Clone, Default)]
struct Upstream {
    fixed: Option<SocketAddr>,
    heard: Arc<Mutex<Option<(SocketAddr, Instant, Duration)>>>,
    /// Each (registrar, discovery method) once, for the log.
    seen: Arc<Mutex<Vec<(SocketAddr, &'static str)>>>,
}

impl Upstream {
    fn current(&self) -> Option<SocketAddr> {
        if let Some(f) = self.fixed {
            return Some(f);
        }
        let heard = self.heard.lock().ok()?;
        heard.and_then(|(addr, at, ttl)| (at.elapsed() < ttl).then_some(addr))
    }

    fn learn(&self, addr: SocketAddr, ttl: Duration, how: &'static str) {
        if let Ok(mut seen) = self.seen.lock()
            && !seen.contains(&(addr, how))
        {
            tracing::info!(registrar = %addr, via = how, "registrar discovered");
            seen.push((addr, how));
        }
        if let Ok(mut h) = self.heard.lock() {
            *h = Some((addr, Instant::now(), ttl));
        }
    }
}

/// Run the proxy until SIGTERM/SIGINT.
pub async fn run(args: &ProxyArgs) -> Result<(), String> {
    if args.udp {
        return run_udp(args).await;
    }
    let listen = netif::parse_scoped(&args.listen).map_err(|e| format!("--listen: {e}"))?;
    let fixed = args
        .registrar
        .as_deref()
        .map(netif::parse_scoped)
        .transpose()
        .map_err(|e| format!("--registrar: {e}"))?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().unwrap_or(listen);
    let upstream = Upstream {
        fixed,
        ..Upstream::default()
    };
    let mut background = Vec::new();
    let _browser = if fixed.is_none() {
        Some(discover(&upstream, &mut background)?)
    } else {
        None
    };
    let iface = match (&args.interface, local) {
        (Some(i), _) => Some(i.clone()),
        (None, SocketAddr::V6(a)) if a.scope_id() != 0 => netif::interface_name(a.scope_id()),
        _ => None,
    };
    let _mdns = match (&iface, local) {
        (Some(name), SocketAddr::V6(a)) => Some(announce(
            name,
            *a.ip(),
            a.port(),
            Duration::from_secs(args.announce_interval.max(1)),
            &upstream,
            &mut background,
        )?),
        _ => {
            tracing::warn!(listen = %local, "no interface to announce on; pledges must be told where the proxy is");
            None
        }
    };
    tracing::info!(listen = %local, registrar = ?fixed, "join proxy relaying");
    brski_service::notify::ready(&format!("relaying on {local}"));
    brski_service::notify::spawn_watchdog();

    let mut relays = tokio::task::JoinSet::new();
    let stop = brski_service::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => {
                let (pledge, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let to = upstream.current();
                relays.spawn(relay(pledge, peer, to));
            }
            Some(_) = relays.join_next(), if !relays.is_empty() => {}
        }
    }
    brski_service::notify::stopping();
    drop(listener);
    for t in background {
        t.abort();
    }
    let _ =
        tokio::time::timeout(DRAIN, async { while relays.join_next().await.is_some() {} }).await;
    tracing::info!("join proxy stopped");
    Ok(())
}

/// `registrar proxy --udp`: the constrained join proxy ([`crate::cjp`]), relaying to the
/// registrar given or discovered, in the mode given or discovered (CJP §4.1).
async fn run_udp(args: &ProxyArgs) -> Result<(), String> {
    let listen = netif::parse_scoped(&args.listen).map_err(|e| format!("--listen: {e}"))?;
    let socket = tokio::net::UdpSocket::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = socket.local_addr().unwrap_or(listen);
    let limits = crate::cjp::FlowLimits {
        per_pledge: args.max_flows_per_pledge.max(1),
        per_interface: args.max_flows.max(1),
        idle: Duration::from_secs(args.flow_idle.max(1)),
    };
    // Pledges find the proxy by CoAP discovery (CJP §5) and DNS-SD (cBRSKI §11.3) on the
    // pledge link.
    let iface = match (&args.interface, local) {
        (Some(i), _) => Some(i.clone()),
        (None, SocketAddr::V6(a)) if a.scope_id() != 0 => netif::interface_name(a.scope_id()),
        _ => None,
    };
    let want = args.stateless.then_some(ProxyMode::Stateless);
    brski_service::notify::spawn_watchdog();
    let pledge_link = iface
        .as_deref()
        .and_then(|i| netif::interface_index(i).ok());
    let discovered = args.registrar.is_none();
    let mut registrar = match args.registrar.as_deref() {
        Some(r) => RegistrarLink {
            mode: want.unwrap_or(ProxyMode::Stateful),
            addr: netif::parse_scoped(r).map_err(|e| format!("--registrar: {e}"))?,
        },
        None => {
            tracing::info!(mode = ?want, "looking for a registrar by CoAP (?rt=brski*)");
            // Up and working, as the TCP proxy is before it knows a registrar; pledges are
            // answered once one is found.
            brski_service::notify::ready("looking for a registrar");
            tokio::select! {
                found = discover_registrar(pledge_link, want) => found,
                () = brski_service::shutdown_signal() => return Ok(()),
            }
        }
    };
    // Not a join proxy before a registrar is known (CJP §4.1): pledges hear of it only now.
    let mut background = Vec::new();
    let _mdns = match &iface {
        Some(name) => announce_udp(name, local.port(), args.coap_port, &mut background)?,
        None => {
            tracing::warn!(listen = %local, "no interface to answer discovery on; pledges must be told where the proxy is");
            None
        }
    };
    let mut socket = Some(socket);
    loop {
        let socket = match socket.take() {
            Some(s) => s,
            None => bind_again(local).await?,
        };
        // A discovered registrar is asked for again while the relay runs; when it has moved,
        // the relay stops and starts again towards where it went.
        let moved = Arc::new(Mutex::new(None));
        let stop = {
            let moved = moved.clone();
            async move {
                if !discovered {
                    return brski_service::shutdown_signal().await;
                }
                tokio::select! {
                    next = registrar_moved(registrar, pledge_link, want) => {
                        if let Ok(mut m) = moved.lock() {
                            *m = Some(next);
                        }
                    }
                    () = brski_service::shutdown_signal() => {}
                }
            }
        };
        relay_udp(socket, registrar, limits, stop).await?;
        let next = moved.lock().ok().and_then(|mut m| m.take());
        match next {
            Some(next) => {
                tracing::info!(from = %registrar.addr, to = %next.addr, mode = ?next.mode, "the registrar moved; relaying to where it went");
                registrar = next;
            }
            None => break,
        }
    }
    brski_service::notify::stopping();
    for t in background {
        t.abort();
    }
    tracing::info!("join proxy stopped");
    Ok(())
}

/// The relay socket again, once the relay before (whose flow tasks were aborted, and let go
/// of the port as they end) has released `local`.
async fn bind_again(local: SocketAddr) -> Result<tokio::net::UdpSocket, String> {
    let mut attempts = 0;
    loop {
        match tokio::net::UdpSocket::bind(local).await {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(format!("cannot listen on {local} again: {e}")),
        }
    }
}

/// Relay CoAPS datagrams from `socket` to `registrar` in its mode until `stop`.
async fn relay_udp(
    socket: tokio::net::UdpSocket,
    registrar: RegistrarLink,
    limits: crate::cjp::FlowLimits,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let local = socket
        .local_addr()
        .map_err(|e| format!("the relay socket: {e}"))?;
    let to = registrar.addr;
    match registrar.mode {
        ProxyMode::Stateless => {
            let key = brski_common::jpy::HeaderKey::random()
                .map_err(|_| "no randomness for the JPY header key".to_string())?;
            tracing::info!(listen = %local, registrar = %to, "constrained join proxy relaying (stateless)");
            brski_service::notify::ready(&format!("relaying CoAPS on {local} as JPY"));
            crate::cjp::relay_stateless(
                socket,
                to,
                crate::cjp::HeaderKeys::new(key),
                crate::cjp::KEY_ROTATION,
                stop,
            )
            .await
            .map_err(|e| format!("JPY relay: {e}"))
        }
        ProxyMode::Stateful => {
            tracing::info!(listen = %local, registrar = %to, per_pledge = limits.per_pledge, flows = limits.per_interface, idle_s = limits.idle.as_secs(), "constrained join proxy relaying (stateful)");
            brski_service::notify::ready(&format!("relaying CoAPS on {local}"));
            crate::cjp::relay(socket, to, limits, stop).await;
            Ok(())
        }
    }
}

/// The registrar links that every link but the pledge link offers (`?rt=brski*`, CJP §5).
async fn registrars_offered(pledge_link: Option<u32>) -> Vec<RegistrarLink> {
    let mut found = Vec::new();
    for index in netif::link_indexes() {
        if Some(index) == pledge_link {
            continue;
        }
        match jp::find_registrars(index, None, REGISTRAR_ANSWERS_FOR).await {
            Ok(mut links) => found.append(&mut links),
            Err(e) => tracing::debug!(interface = index, error = %e, "registrar query not sent"),
        }
    }
    found
}

/// Ask for registrars until one offers an endpoint of the mode `want` (any when `None`:
/// stateless preferred, CJP §4.1).
async fn discover_registrar(pledge_link: Option<u32>, want: Option<ProxyMode>) -> RegistrarLink {
    loop {
        let found = registrars_offered(pledge_link).await;
        if let Some(r) = jp::choose(&found, want) {
            tracing::info!(registrar = %r.addr, mode = ?r.mode, via = "CoAP", "registrar discovered");
            return r;
        }
        tracing::debug!(offered = found.len(), "no registrar yet");
        tokio::time::sleep(REGISTRAR_QUERY_EVERY).await;
    }
}

/// Ask again, every [`REGISTRAR_RECHECK_EVERY`], for the registrar being relayed to; return
/// the one to relay to instead once it has moved ([`next_registrar`]).
async fn registrar_moved(
    current: RegistrarLink,
    pledge_link: Option<u32>,
    want: Option<ProxyMode>,
) -> RegistrarLink {
    let mut misses = 0;
    loop {
        tokio::time::sleep(REGISTRAR_RECHECK_EVERY).await;
        let offered = registrars_offered(pledge_link).await;
        if let Some(next) = next_registrar(current, &offered, want, &mut misses) {
            return next;
        }
    }
}

/// After one re-check that heard `offered`: the registrar to relay to instead of `current`,
/// once `current` has gone unheard [`MISSES_BEFORE_MOVING`] times in a row and another one of
/// the mode wanted answers (a registrar that answers no one keeps its pledges: it may only
/// be busy).
fn next_registrar(
    current: RegistrarLink,
    offered: &[RegistrarLink],
    want: Option<ProxyMode>,
    misses: &mut u32,
) -> Option<RegistrarLink> {
    if offered.contains(&current) {
        *misses = 0;
        return None;
    }
    *misses += 1;
    if *misses < MISSES_BEFORE_MOVING {
        return None;
    }
    jp::choose(offered, want)
}

/// Answer `?brski-jp=*` on the CoAP port `coap_port` of `iface` and announce
/// `_brski-proxy._udp` there, both naming the join port `port`.
fn announce_udp(
    iface: &str,
    port: u16,
    coap_port: u16,
    background: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Option<mdns::Announcement>, String> {
    let index = netif::interface_index(iface).map_err(|e| format!("--interface: {e}"))?;
    let socket = jp::bind_responder(coap_port, &[index])
        .map_err(|e| format!("cannot answer CoAP discovery on port {coap_port} of {iface}: {e}"))?;
    let links = vec![jp::join_port_link(port)];
    background.push(tokio::spawn(jp::respond(socket, move |_| links.clone())));
    let address = netif::announce_address(iface)
        .map_err(|e| format!("--interface: {e}"))?
        .address;
    tracing::info!(interface = %iface, %address, port, coap_port, "answering brski-jp discovery and announcing _brski-proxy._udp");
    Ok(dns_sd(mdns::BRSKI_PROXY_UDP, iface, address, port))
}

/// One pledge connection, relayed byte for byte (RFC 8995 §4).
async fn relay(mut pledge: TcpStream, peer: SocketAddr, to: Option<SocketAddr>) {
    let Some(to) = to else {
        tracing::warn!(%peer, outcome = "dropped", "no registrar known yet");
        return;
    };
    let mut registrar = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(%peer, registrar = %to, outcome = "unreachable", error = %e, "cannot reach the registrar");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, registrar = %to, outcome = "unreachable", "registrar connect timed out");
            return;
        }
    };
    let _ = pledge.set_nodelay(true);
    let _ = registrar.set_nodelay(true);
    tracing::info!(%peer, registrar = %to, "relaying");
    match tokio::io::copy_bidirectional(&mut pledge, &mut registrar).await {
        Ok((up, down)) => {
            tracing::info!(%peer, registrar = %to, outcome = "closed", bytes_up = up, bytes_down = down, "relay ended")
        }
        Err(e) => {
            tracing::info!(%peer, registrar = %to, outcome = "error", error = %e, "relay ended")
        }
    }
}

/// Learn the registrar from AN_join_registrar floods and `_brski-registrar._tcp`.
fn discover(
    upstream: &Upstream,
    background: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Option<mdns::Browser>, String> {
    let socket = grasp::bind_listener().map_err(|e| format!("cannot listen for GRASP: {e}"))?;
    let (tx, mut rx) = mpsc::channel(64);
    background.push(tokio::spawn(grasp::listen(socket, None, tx)));
    let up = upstream.clone();
    background.push(tokio::spawn(async move {
        while let Some(heard) = rx.recv().await {
            let ttl = Duration::from_millis(u64::from(heard.flood.ttl_ms));
            if let Some(e) = heard.flood.tcp_endpoints(AN_JOIN_REGISTRAR).first() {
                up.learn(SocketAddr::V6(e.socket_addr(heard.scope_id)), ttl, "GRASP");
            }
        }
    }));
    let (mtx, mut mrx) = mpsc::channel::<SocketAddrV6>(64);
    let browser = match mdns::browse(mdns::BRSKI_REGISTRAR, mtx) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!(error = %e, "no DNS-SD browsing");
            None
        }
    };
    let up = upstream.clone();
    background.push(tokio::spawn(async move {
        while let Some(addr) = mrx.recv().await {
            // DNS-SD records carry a TTL of their own; refresh like a GRASP flood.
            up.learn(SocketAddr::V6(addr), Duration::from_secs(180), "DNS-SD");
        }
    }));
    Ok(browser)
}

/// Announce the proxy (only while a registrar is known) on `iface`.
fn announce(
    iface: &str,
    address: Ipv6Addr,
    port: u16,
    period: Duration,
    upstream: &Upstream,
    background: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Option<mdns::Announcement>, String> {
    let index = netif::interface_index(iface).map_err(|e| format!("--interface: {e}"))?;
    let up = upstream.clone();
    let make: grasp::MakeFlood = Box::new(move |session| {
        up.current()
            .map(|_| Flood::an_proxy(session, address, port))
    });
    background.push(tokio::spawn(async move {
        if let Err(e) = grasp::announce(index, period, make).await {
            tracing::warn!(error = %e, "GRASP announcer stopped");
        }
    }));
    tracing::info!(interface = %iface, %address, port, "announcing AN_Proxy and _brski-proxy._tcp");
    Ok(dns_sd(mdns::BRSKI_PROXY, iface, address, port))
}

/// Announce the proxy's `service` on `iface` (logged when mDNS is not available).
fn dns_sd(service: &str, iface: &str, address: Ipv6Addr, port: u16) -> Option<mdns::Announcement> {
    let instance = format!("proxy-{}", std::process::id());
    match mdns::announce(service, &instance, iface, address, port) {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::warn!(interface = %iface, error = %e, "no DNS-SD announcement");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// RFC 8995 §4: what the pledge sends reaches the registrar unchanged, and back.
    #[tokio::test]
    async fn rfc8995_4_relays_byte_for_byte_both_ways() {
        let registrar = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let registrar_addr = registrar.local_addr().expect("addr");
        let upstream = tokio::spawn(async move {
            let (mut s, _) = registrar.accept().await.expect("accept");
            let mut got = vec![0u8; 256];
            s.read_exact(&mut got).await.expect("read");
            let reply: Vec<u8> = got.iter().rev().copied().collect();
            s.write_all(&reply).await.expect("write");
            got
        });
        let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxy_addr = proxy.local_addr().expect("addr");
        tokio::spawn(async move {
            let (s, peer) = proxy.accept().await.expect("accept");
            relay(s, peer, Some(registrar_addr)).await;
        });
        let sent: Vec<u8> = (0..=255u8).collect();
        let mut pledge = TcpStream::connect(proxy_addr).await.expect("connect");
        pledge.write_all(&sent).await.expect("write");
        let mut back = vec![0u8; 256];
        pledge.read_exact(&mut back).await.expect("read");
        assert_eq!(upstream.await.expect("join"), sent);
        assert_eq!(back, sent.iter().rev().copied().collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn without_a_registrar_the_pledge_connection_is_closed() {
        let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxy_addr = proxy.local_addr().expect("addr");
        tokio::spawn(async move {
            let (s, peer) = proxy.accept().await.expect("accept");
            relay(s, peer, None).await;
        });
        let mut pledge = TcpStream::connect(proxy_addr).await.expect("connect");
        let mut buf = [0u8; 1];
        assert_eq!(pledge.read(&mut buf).await.expect("eof"), 0);
    }

    /// CJP §4.1: the proxy keeps a discovered registrar while it answers, and takes another
    /// only after three re-checks in a row without it, preferring the stateless endpoint.
    #[test]
    fn cjp_4_1_a_discovered_registrar_is_left_only_after_it_stops_answering() {
        let link = |mode, port| RegistrarLink {
            mode,
            addr: SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        };
        let current = link(ProxyMode::Stateful, 5684);
        let stateful = link(ProxyMode::Stateful, 6684);
        let stateless = link(ProxyMode::Stateless, 6685);
        let mut misses = 0;
        // Still offered (beside others): stay, and the count starts again.
        assert_eq!(
            next_registrar(current, &[stateless, current], None, &mut misses),
            None
        );
        assert_eq!(misses, 0);
        // Unheard twice: stay; nobody heard at all: stay, whatever the count.
        assert_eq!(
            next_registrar(current, &[stateful], None, &mut misses),
            None
        );
        assert_eq!(next_registrar(current, &[], None, &mut misses), None);
        assert_eq!(misses, 2);
        assert_eq!(next_registrar(current, &[], None, &mut misses), None);
        // Unheard a fourth time with others answering: the stateless one (CJP §4.1).
        assert_eq!(
            next_registrar(current, &[stateful, stateless], None, &mut misses),
            Some(stateless)
        );
        // Heard again after a miss: the count is reset.
        let mut misses = 2;
        assert_eq!(next_registrar(current, &[current], None, &mut misses), None);
        assert_eq!(
            next_registrar(current, &[stateful], None, &mut misses),
            None
        );
        // With --stateless, only a stateless endpoint will do.
        let mut misses = 5;
        assert_eq!(
            next_registrar(
                current,
                &[stateful],
                Some(ProxyMode::Stateless),
                &mut misses
            ),
            None
        );
    }

    /// When the registrar moves, the relay in either mode stops with its flows, and the
    /// proxy's port is free for the relay towards the new one.
    #[tokio::test]
    async fn a_stopped_relay_gives_its_port_back() {
        for mode in [ProxyMode::Stateful, ProxyMode::Stateless] {
            let registrar = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let link = RegistrarLink {
                mode,
                addr: registrar.local_addr().expect("addr"),
            };
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let local = socket.local_addr().expect("addr");
            let limits = crate::cjp::FlowLimits {
                per_pledge: 2,
                per_interface: 10,
                idle: Duration::from_secs(30),
            };
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let relay = tokio::spawn(relay_udp(socket, link, limits, async {
                let _ = stopped.await;
            }));
            // A pledge's datagram opens a flow (stateful) or goes out as JPY (stateless).
            let pledge = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind");
            pledge.send_to(b"hello", local).await.expect("send");
            let mut buf = [0u8; 512];
            tokio::time::timeout(Duration::from_secs(5), registrar.recv_from(&mut buf))
                .await
                .expect("relayed in time")
                .expect("recv");
            stop.send(()).expect("stop");
            relay.await.expect("join").expect("relay");
            let again = tokio::time::timeout(Duration::from_secs(6), bind_again(local))
                .await
                .expect("in time")
                .expect("bound again");
            assert_eq!(again.local_addr().expect("addr"), local);
        }
    }

    #[test]
    fn a_fixed_registrar_wins_and_heard_ones_expire() {
        let a: SocketAddr = "[fd00::1]:8443".parse().expect("a");
        let heard = Upstream::default();
        assert_eq!(heard.current(), None);
        heard.learn(a, Duration::from_secs(60), "GRASP");
        assert_eq!(heard.current(), Some(a));
        heard.learn(a, Duration::ZERO, "GRASP");
        assert_eq!(heard.current(), None);
        let b: SocketAddr = "[fd00::2]:8443".parse().expect("b");
        let fixed = Upstream {
            fixed: Some(b),
            ..Upstream::default()
        };
        fixed.learn(a, Duration::from_secs(60), "DNS-SD");
        assert_eq!(fixed.current(), Some(b));
    }
}
