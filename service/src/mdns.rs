//! mDNS/DNS-SD announcement and browsing of the BRSKI services (RFC 8995 App. B, §8.6):
//! `_brski-proxy._tcp.local.` on the pledge link and `_brski-registrar._tcp.local.` towards the
//! proxies.

use mdns_sd::{IfKind, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo};
use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};
use std::time::Duration;
use tokio::sync::mpsc;

/// RFC 8995 §8.6: the join proxy's DNS-SD service type.
pub const BRSKI_PROXY: &str = "_brski-proxy._tcp.local.";
/// cBRSKI §11.3: the constrained join proxy's DNS-SD service type (CoAPS over UDP).
pub const BRSKI_PROXY_UDP: &str = "_brski-proxy._udp.local.";
/// RFC 8995 §8.6, App. B: the registrar's DNS-SD service type.
pub const BRSKI_REGISTRAR: &str = "_brski-registrar._tcp.local.";

/// Why mDNS could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MdnsError {
    #[error("mDNS: {0}")]
    Daemon(#[from] mdns_sd::Error),
}

/// A running mDNS responder; the service is withdrawn when it is dropped.
pub struct Announcement {
    daemon: ServiceDaemon,
    fullname: String,
}

impl Drop for Announcement {
    fn drop(&mut self) {
        let _ = self.daemon.unregister(&self.fullname);
        let _ = self.daemon.shutdown();
    }
}

/// Announce `service_type` at `address`:`port` on interface `interface` only.
pub fn announce(
    service_type: &str,
    instance: &str,
    interface: &str,
    address: Ipv6Addr,
    port: u16,
) -> Result<Announcement, MdnsError> {
    let daemon = ServiceDaemon::new()?;
    daemon.disable_interface(IfKind::All)?;
    daemon.enable_interface(IfKind::Name(interface.to_string()))?;
    let host = format!("{instance}.local.");
    let mut info = ServiceInfo::new(
        service_type,
        instance,
        &host,
        IpAddr::V6(address),
        port,
        None::<std::collections::HashMap<String, String>>,
    )?;
    info.set_interfaces(vec![IfKind::Name(interface.to_string())]);
    let fullname = info.get_fullname().to_string();
    daemon.register(info)?;
    Ok(Announcement { daemon, fullname })
}

/// A running browser; stops when dropped.
pub struct Browser {
    daemon: ServiceDaemon,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.daemon.shutdown();
    }
}

/// Browse for `service_type` on all IPv6 interfaces and send every resolved IPv6 endpoint to
/// `out` (link-local ones with the interface as scope).
pub fn browse(service_type: &str, out: mpsc::Sender<SocketAddrV6>) -> Result<Browser, MdnsError> {
    let daemon = ServiceDaemon::new()?;
    let events = daemon.browse(service_type)?;
    std::thread::spawn(move || {
        loop {
            match events.recv_timeout(Duration::from_secs(1)) {
                Ok(ServiceEvent::ServiceResolved(s)) => {
                    let port = s.get_port();
                    for ip in s.get_addresses() {
                        let ScopedIp::V6(v6) = ip else { continue };
                        let scope = if brski_common::discovery::grasp::is_link_local(v6.addr()) {
                            v6.scope_id().index
                        } else {
                            0
                        };
                        let addr = SocketAddrV6::new(*v6.addr(), port, 0, scope);
                        tracing::debug!(service = %s.get_fullname(), %addr, "mDNS service resolved");
                        if out.blocking_send(addr).is_err() {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(mdns_sd::RecvTimeoutError::Timeout) => {
                    if out.is_closed() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    Ok(Browser { daemon })
}
