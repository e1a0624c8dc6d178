//! GRASP DULL M_FLOOD over UDP (RFC 8990 §2.5.2, §2.8.11; RFC 8995 §4.1.1, §4.3): link-local
//! multicast to ALL_GRASP_NEIGHBORS on the GRASP port, sent periodically by announcers and
//! received by listeners, each flood tagged with the interface it arrived on.

use brski_common::discovery::{Flood, grasp::MAX_MESSAGE_SIZE};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// RFC 8990 §2.6: GRASP_LISTEN_PORT.
pub const GRASP_PORT: u16 = 7017;
/// RFC 8990 §2.6: ALL_GRASP_NEIGHBORS, link-local scope.
pub const ALL_GRASP_NEIGHBORS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x13);

/// A flood received on an interface.
#[derive(Clone, Debug)]
pub struct Heard {
    pub from: SocketAddrV6,
    /// The interface it arrived on (the zone of link-local locators).
    pub scope_id: u32,
    pub flood: Flood,
}

/// What an announcer sends on one interface: a fresh flood for each period.
pub type MakeFlood = Box<dyn Fn(u32) -> Option<Flood> + Send + Sync>;

/// Send `make(session_id)` to ALL_GRASP_NEIGHBORS on interface `ifindex` every `period` until
/// the task is dropped (RFC 8995 §4.1.1, §4.3). Send errors (e.g. the link is down) are logged
/// and retried at the next period.
pub async fn announce(ifindex: u32, period: Duration, make: MakeFlood) -> std::io::Result<()> {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))).await?;
    let to = SocketAddrV6::new(ALL_GRASP_NEIGHBORS, GRASP_PORT, 0, ifindex);
    let mut session_id: u32 = std::process::id().wrapping_mul(2_654_435_761);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        session_id = session_id.wrapping_add(1);
        let Some(flood) = make(session_id) else {
            continue;
        };
        match flood.encode() {
            Ok(bytes) => match socket.send_to(&bytes, to).await {
                Ok(_) => tracing::debug!(ifindex, session_id, "M_FLOOD sent"),
                Err(e) => tracing::debug!(ifindex, error = %e, "M_FLOOD not sent"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot encode M_FLOOD"),
        }
    }
}

/// Bind the GRASP port and join ALL_GRASP_NEIGHBORS on every interface with an IPv6
/// link-local address (or only on `only`, when given). Interfaces that appear later are joined
/// by [`listen`] as it goes.
pub fn bind_listener() -> std::io::Result<UdpSocket> {
    let std_socket =
        std::net::UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, GRASP_PORT)))?;
    std_socket.set_nonblocking(true)?;
    UdpSocket::from_std(std_socket)
}

fn join_all(socket: &UdpSocket, joined: &mut Vec<u32>, only: Option<u32>) {
    let Ok(ifs) = crate::netif::ipv6_interfaces() else {
        return;
    };
    for i in ifs.iter().filter(|i| i.is_link_local()) {
        if only.is_some_and(|o| o != i.index) || joined.contains(&i.index) {
            continue;
        }
        match socket.join_multicast_v6(&ALL_GRASP_NEIGHBORS, i.index) {
            Ok(()) => {
                tracing::debug!(interface = %i.name, "listening for GRASP M_FLOOD");
                joined.push(i.index);
            }
            // Already a member (e.g. after the link went down and up).
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => joined.push(i.index),
            Err(e) => tracing::debug!(interface = %i.name, error = %e, "cannot join ff02::13"),
        }
    }
}

/// Receive floods on `socket` and send the valid ones to `out` until `out` is closed.
/// Malformed messages are logged and dropped (RFC 8990 §2.8.1).
pub async fn listen(socket: UdpSocket, only: Option<u32>, out: mpsc::Sender<Heard>) {
    let mut joined = Vec::new();
    join_all(&socket, &mut joined, only);
    let mut rejoin = tokio::time::interval(Duration::from_secs(2));
    let mut buf = vec![0u8; MAX_MESSAGE_SIZE + 1];
    loop {
        tokio::select! {
            _ = rejoin.tick() => join_all(&socket, &mut joined, only),
            r = socket.recv_from(&mut buf) => {
                let (n, from) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "GRASP receive failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let SocketAddr::V6(from) = from else { continue };
                if only.is_some_and(|o| o != from.scope_id()) {
                    continue;
                }
                match buf.get(..n).map(Flood::decode) {
                    Some(Ok(flood)) => {
                        let heard = Heard { from, scope_id: from.scope_id(), flood };
                        if out.send(heard).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) => tracing::debug!(peer = %from, error = %e, "not a valid M_FLOOD"),
                    None => {}
                }
            }
        }
    }
}
