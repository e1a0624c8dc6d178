//! The registrar announces itself towards join proxies (RFC 8995 §4.3): GRASP M_FLOOD of
//! `AN_join_registrar` with an IPv6 locator, and DNS-SD `_brski-registrar._tcp` (App. B).

use brski_common::discovery::Flood;
use brski_service::{grasp, mdns, netif};
use std::net::Ipv6Addr;
use std::time::Duration;

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
/// interface's unique-local/global address (else its link-local one).
pub fn start(interfaces: &[String], port: u16, period: Duration) -> Result<Announcements, String> {
    let mut tasks = Vec::new();
    let mut mdns_guards = Vec::new();
    for name in interfaces {
        let iface = netif::announce_address(name).map_err(|e| format!("--announce {name}: {e}"))?;
        let address: Ipv6Addr = iface.address;
        tracing::info!(interface = %name, %address, port, "announcing AN_join_registrar and _brski-registrar._tcp");
        let make: grasp::MakeFlood =
            Box::new(move |session| Some(Flood::an_join_registrar(session, address, port)));
        let index = iface.index;
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
    Ok(Announcements {
        tasks,
        _mdns: mdns_guards,
    })
}
