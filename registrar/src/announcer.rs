//! The registrar announces itself towards join proxies (RFC 8995 §4.3): GRASP M_FLOOD of
//! `AN_join_registrar` with an IPv6 locator, and DNS-SD `_brski-registrar._tcp` (App. B); and,
//! when it serves CoAPS, answers CoAP discovery on the same links (CJP §5): constrained join
//! proxies asking `?rt=brski*` hear its CoAPS and JPY endpoints, and pledges one hop away
//! asking `?brski-jp=*` hear its CoAPS port, as if it were a proxy (cBRSKI §10.1).

use brski_common::discovery::Flood;
use brski_service::coaps::jp::{self, ProxyMode, RegistrarLink};
use brski_service::{grasp, mdns, netif};
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The registrar's UDP endpoints that CoAP discovery names (their ports; the address is the
/// one the asker reaches the registrar at).
#[derive(Clone, Copy, Debug, Default)]
pub struct Constrained {
    /// The CoAPS port (`coaps-listen`), `None` when off.
    pub coaps: Option<u16>,
    /// The JPY port (`jpy-listen`), `None` when off.
    pub jpy: Option<u16>,
    /// The CoAP port discovery is answered on (5683).
    pub coap_port: u16,
}

/// What keeps the announcements running; they stop when it is dropped.
pub struct Announcements {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _mdns: Vec<mdns::Announcement>,
}

impl Drop for Announcements {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Announce the registrar's HTTPS `port` on each of `interfaces` every `period`, at the
/// interface's unique-local/global address (else its link-local one), and answer CoAP
/// discovery there for its `constrained` endpoints.
pub fn start(
    interfaces: &[String],
    port: u16,
    constrained: Constrained,
    period: Duration,
) -> Result<Announcements, String> {
    let mut tasks = Vec::new();
    let mut mdns_guards = Vec::new();
    let mut indexes = Vec::new();
    for name in interfaces {
        let iface = netif::announce_address(name).map_err(|e| format!("--announce {name}: {e}"))?;
        let address: Ipv6Addr = iface.address;
        tracing::info!(interface = %name, %address, port, "announcing AN_join_registrar and _brski-registrar._tcp");
        let make: grasp::MakeFlood =
            Box::new(move |session| Some(Flood::an_join_registrar(session, address, port)));
        let index = iface.index;
        indexes.push(index);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = grasp::announce(index, period, make).await {
                tracing::warn!(error = %e, "GRASP announcer stopped");
            }
        }));
        let instance = format!("registrar-{}", std::process::id());
        match mdns::announce(mdns::BRSKI_REGISTRAR, &instance, name, address, port) {
            Ok(a) => mdns_guards.push(a),
            Err(e) => tracing::warn!(interface = %name, error = %e, "no DNS-SD announcement"),
        }
    }
    if !indexes.is_empty() && constrained.coaps.is_some() {
        let socket = jp::bind_responder(constrained.coap_port, &indexes).map_err(|e| {
            format!(
                "cannot answer CoAP discovery on port {}: {e}",
                constrained.coap_port
            )
        })?;
        tracing::info!(coap_port = constrained.coap_port, coaps = ?constrained.coaps, jpy = ?constrained.jpy, "answering CoAP discovery for join proxies and pledges");
        tasks.push(tokio::spawn(jp::respond(socket, move |asker| {
            discovery_links(constrained, asker)
        })));
    }
    Ok(Announcements {
        tasks,
        _mdns: mdns_guards,
    })
}

/// The links the registrar answers `asker` with: its join port for pledges, and its CoAPS and
/// JPY endpoints at the address `asker` reaches it at (CJP §5).
fn discovery_links(
    c: Constrained,
    asker: SocketAddr,
) -> Vec<brski_common::discovery::link_format::Link> {
    let Some(coaps) = c.coaps else {
        return Vec::new();
    };
    let mut links = vec![jp::join_port_link(coaps)];
    let Ok(ip) = jp::local_address_towards(asker) else {
        return links;
    };
    links.push(
        RegistrarLink {
            mode: ProxyMode::Stateful,
            addr: SocketAddr::new(ip, coaps),
        }
        .link(),
    );
    if let Some(port) = c.jpy {
        links.push(
            RegistrarLink {
                mode: ProxyMode::Stateless,
                addr: SocketAddr::new(ip, port),
            }
            .link(),
        );
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjp_5_the_registrar_names_the_address_the_asker_reaches_it_at() {
        let asker: SocketAddr = "[::1]:40000".parse().expect("addr");
        let both = Constrained {
            coaps: Some(5684),
            jpy: Some(5685),
            coap_port: 5683,
        };
        let text = brski_common::discovery::link_format::encode(&discovery_links(both, asker));
        assert_eq!(
            text,
            "<>;brski-jp=5684,<coaps://[::1]:5684>;rt=brski,<jpy://[::1]:5685>;rt=brski.rjp"
        );
        let stateful_only = Constrained { jpy: None, ..both };
        assert_eq!(discovery_links(stateful_only, asker).len(), 2);
        // Without CoAPS there is nothing to relay to.
        let off = Constrained {
            coaps: None,
            ..both
        };
        assert!(discovery_links(off, asker).is_empty());
    }
}
