//! Finding join proxies when no registrar is configured (RFC 8995 §4.1): listen for GRASP
//! M_FLOOD with `AN_Proxy` (§4.1.1) and browse DNS-SD `_brski-proxy._tcp.local.` (App. B) at
//! the same time; over CoAPS, ask `coap://[ff02::fd]/.well-known/core?brski-jp=*` on every
//! link (cBRSKI §10.1, CJP §5) and browse `_brski-proxy._udp.local.` (cBRSKI §11.3). Try the
//! proxies heard, each attempt with a fresh nonce (a new voucher request), with an exponential
//! backoff per proxy; when every proxy has failed, keep listening.

use crate::bootstrap::{self, Summary};
use crate::error::Failure;
use crate::identity::Identity;
use crate::session::Transport;
use crate::state::StateDir;
use crate::timing::Backoff;
use brski_common::discovery::AN_PROXY;
use brski_service::coaps::jp;
use brski_service::https_client::Target;
use brski_service::{grasp, mdns, netif};
use std::net::{SocketAddr, SocketAddrV6};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Backoff after an attempt that could not reach the registrar or MASA (5xx, no connection).
const QUICK: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
/// RFC 8995 §4.1: after a rejection the proxy is retried with a backoff of up to one hour.
const SLOW: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(3600));

/// A proxy heard on the link.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddrV6,
    /// How it was heard: "GRASP", "DNS-SD", "CoAP".
    pub via: Vec<&'static str>,
    quick: Backoff,
    slow: Backoff,
    due: Instant,
}

/// Where the proxy is reached: the address as written in URLs, and the connect target (the
/// zone as interface index, which the resolver takes for link-local addresses).
pub fn proxy_target(addr: &SocketAddrV6, transport: Transport) -> (String, Target) {
    let url = netif::url(transport.name(), &SocketAddr::V6(*addr));
    let host = if addr.scope_id() != 0 {
        format!("{}%{}", addr.ip(), addr.scope_id())
    } else {
        addr.ip().to_string()
    };
    let authority = if addr.scope_id() != 0 {
        format!("[{}%25{}]:{}", addr.ip(), addr.scope_id(), addr.port())
    } else {
        format!("[{}]:{}", addr.ip(), addr.port())
    };
    (
        url,
        Target {
            host,
            port: addr.port(),
            authority,
        },
    )
}

/// The proxies heard so far and the listeners that hear them.
pub struct Discovery {
    heard: mpsc::Receiver<(SocketAddrV6, &'static str)>,
    pub proxies: Vec<Proxy>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _browser: Option<mdns::Browser>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Browse DNS-SD `service`, passing what is found to `tx`.
fn browse(
    service: &str,
    tx: mpsc::Sender<(SocketAddrV6, &'static str)>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Option<mdns::Browser> {
    let (mtx, mut mrx) = mpsc::channel(64);
    tasks.push(tokio::spawn(async move {
        while let Some(addr) = mrx.recv().await {
            if tx.send((addr, "DNS-SD")).await.is_err() {
                return;
            }
        }
    }));
    match mdns::browse(service, mtx) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!(error = %e, "DNS-SD browsing unavailable");
            None
        }
    }
}

/// How often a pledge asks for constrained join proxies until it hears one, and after.
const COAP_QUERY_EVERY: (Duration, Duration) = (Duration::from_secs(3), Duration::from_secs(30));
/// How long answers to one query are collected.
const COAP_ANSWERS_FOR: Duration = Duration::from_secs(1);

/// Ask every link for constrained join proxies (CJP §5), again and again.
async fn query_links(out: mpsc::Sender<(SocketAddrV6, &'static str)>) {
    loop {
        let mut heard = false;
        for index in netif::link_indexes() {
            let to = SocketAddrV6::new(jp::ALL_COAP_NODES, jp::COAP_PORT, 0, index);
            let sent = jp::find(to, COAP_ANSWERS_FOR, |proxy| {
                heard = true;
                let _ = out.try_send((proxy, "CoAP"));
            })
            .await;
            if let Err(e) = sent {
                tracing::debug!(interface = index, error = %e, "join proxy query not sent");
            }
            if out.is_closed() {
                return;
            }
        }
        let every = if heard {
            COAP_QUERY_EVERY.1
        } else {
            COAP_QUERY_EVERY.0
        };
        tokio::time::sleep(every).await;
    }
}

impl Discovery {
    /// Start listening for join proxies of `transport`: GRASP floods and DNS-SD for HTTPS,
    /// CoAP queries and DNS-SD for CoAPS.
    pub fn start(transport: Transport) -> Result<Self, Failure> {
        let (tx, heard) = mpsc::channel(64);
        if transport == Transport::Coaps {
            let mut tasks = vec![tokio::spawn(query_links(tx.clone()))];
            let browser = browse(mdns::BRSKI_PROXY_UDP, tx, &mut tasks);
            tracing::info!(
                "looking for constrained join proxies (CoAP brski-jp, DNS-SD _brski-proxy._udp)"
            );
            return Ok(Self {
                heard,
                proxies: Vec::new(),
                tasks,
                _browser: browser,
            });
        }
        let socket = grasp::bind_listener()
            .map_err(|e| Failure::Internal(format!("cannot listen for GRASP M_FLOOD: {e}")))?;
        let (gtx, mut grx) = mpsc::channel(64);
        let mut tasks = vec![tokio::spawn(grasp::listen(socket, None, gtx))];
        let to_proxies = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(h) = grx.recv().await {
                for e in h.flood.tcp_endpoints(AN_PROXY) {
                    if to_proxies
                        .send((e.socket_addr(h.scope_id), "GRASP"))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }));
        let browser = browse(mdns::BRSKI_PROXY, tx, &mut tasks);
        tracing::info!("listening for join proxies (GRASP AN_Proxy, DNS-SD _brski-proxy._tcp)");
        Ok(Self {
            heard,
            proxies: Vec::new(),
            tasks,
            _browser: browser,
        })
    }

    fn learn(&mut self, (addr, via): (SocketAddrV6, &'static str)) {
        if addr.port() == 0 {
            return;
        }
        if let Some(p) = self.proxies.iter_mut().find(|p| p.addr == addr) {
            if !p.via.contains(&via) {
                tracing::info!(proxy = %addr, via, "join proxy also announced");
                p.via.push(via);
            }
            return;
        }
        tracing::info!(proxy = %addr, via, "join proxy discovered");
        self.proxies.push(Proxy {
            addr,
            via: vec![via],
            quick: Backoff::new(QUICK.0, QUICK.1),
            slow: Backoff::new(SLOW.0, SLOW.1),
            due: Instant::now(),
        });
    }

    /// The proxy to try next: the one due longest ago; waits for one to be due or heard.
    pub async fn next(&mut self) -> Option<SocketAddrV6> {
        loop {
            while let Ok(addr) = self.heard.try_recv() {
                self.learn(addr);
            }
            let now = Instant::now();
            if let Some(p) = self
                .proxies
                .iter()
                .filter(|p| p.due <= now)
                .min_by_key(|p| p.due)
            {
                return Some(p.addr);
            }
            let earliest = self.proxies.iter().map(|p| p.due).min();
            tokio::select! {
                heard = self.heard.recv() => match heard {
                    Some(addr) => self.learn(addr),
                    None => return None,
                },
                () = async {
                    match earliest {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
    }

    /// Record the failure of an attempt through `addr`; the delay until it is tried again.
    pub fn failed(&mut self, addr: SocketAddrV6, transient: bool) -> Duration {
        let Some(p) = self.proxies.iter_mut().find(|p| p.addr == addr) else {
            return Duration::ZERO;
        };
        let delay = if transient {
            p.quick.next_delay()
        } else {
            p.slow.next_delay()
        };
        p.due = Instant::now() + delay;
        delay
    }

    /// Bootstrap through the proxies heard until one attempt succeeds (or the configuration or
    /// storage is broken).
    pub async fn bootstrap(
        &mut self,
        id: &Identity,
        state: &StateDir,
        options: &bootstrap::Options,
    ) -> Result<Summary, Failure> {
        loop {
            let Some(addr) = self.next().await else {
                return Err(Failure::Internal("discovery stopped".into()));
            };
            let (url, target) = proxy_target(&addr, id.transport);
            let via = id.via(url, target);
            tracing::info!(serial = %id.serial, proxy = %addr, "bootstrapping through the join proxy");
            match bootstrap::attempt(&via, state, options).await {
                Ok(summary) => return Ok(summary),
                Err(f) if f.is_fatal() => return Err(f),
                Err(f) => {
                    let delay = self.failed(addr, f.is_transient());
                    tracing::warn!(
                        serial = %id.serial,
                        proxy = %addr,
                        outcome = "failed",
                        error = %f,
                        retry_in_ms = delay.as_millis() as u64,
                        "attempt through the proxy failed"
                    );
                    brski_service::notify::status(&format!(
                        "attempt through {addr} failed ({f}); listening for proxies"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_proxies_are_reached_with_their_zone() {
        let addr = SocketAddrV6::new("fe80::1".parse().expect("addr"), 4443, 0, 9);
        let (_, t) = proxy_target(&addr, Transport::Https);
        assert_eq!(t.host, "fe80::1%9");
        assert_eq!(t.port, 4443);
        assert_eq!(t.authority, "[fe80::1%259]:4443");
        let ula = SocketAddrV6::new("fd00::1".parse().expect("addr"), 8443, 0, 0);
        let (url, t) = proxy_target(&ula, Transport::Https);
        assert_eq!(
            (url.as_str(), t.host.as_str()),
            ("https://[fd00::1]:8443", "fd00::1")
        );
        let (url, _) = proxy_target(&ula, Transport::Coaps);
        assert_eq!(url, "coaps://[fd00::1]:8443");
    }

    #[tokio::test]
    async fn each_proxy_backs_off_on_its_own() {
        let (tx, heard) = mpsc::channel(8);
        let mut d = Discovery {
            heard,
            proxies: Vec::new(),
            tasks: Vec::new(),
            _browser: None,
        };
        let a = SocketAddrV6::new("fe80::1".parse().expect("a"), 1, 0, 2);
        let b = SocketAddrV6::new("fe80::2".parse().expect("b"), 1, 0, 2);
        tx.send((a, "GRASP")).await.expect("send");
        tx.send((b, "GRASP")).await.expect("send");
        tx.send((a, "DNS-SD")).await.expect("duplicate");
        let first = d.next().await.expect("proxy");
        assert_eq!(d.proxies.len(), 2);
        assert_eq!(d.proxies[0].via, ["GRASP", "DNS-SD"]);
        // A rejection sends that proxy to the slow backoff; the other is tried at once.
        assert!(d.failed(first, false) >= Duration::from_secs(48));
        let second = d.next().await.expect("proxy");
        assert_ne!(first, second);
        let quick = d.failed(second, true);
        assert!(quick <= Duration::from_millis(1200));
        // Both failed: the next one comes when the quick backoff has passed.
        let start = Instant::now();
        assert_eq!(d.next().await, Some(second));
        assert!(start.elapsed() >= quick);
    }
}
