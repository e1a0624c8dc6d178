//! Network interfaces and scoped IPv6 addresses (RFC 4007 §11): the link-local addresses a
//! join proxy listens on and pledges reach it at carry the interface as their zone.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

/// One IPv6 address of an interface, from `/proc/net/if_inet6` (the current network namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Interface {
    pub name: String,
    pub index: u32,
    pub address: Ipv6Addr,
}

impl Ipv6Interface {
    /// Whether the address is link-local (fe80::/10).
    pub fn is_link_local(&self) -> bool {
        brski_common::discovery::grasp::is_link_local(&self.address)
    }
}

/// Why an address or interface could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum NetifError {
    #[error("cannot read the interface list: {0}")]
    Io(#[from] std::io::Error),
    #[error("no interface named {0:?}")]
    UnknownInterface(String),
    #[error("{0:?} is not an address with port (e.g. [fe80::1%eth0]:4443 or [fd00::1]:8443)")]
    BadAddress(String),
    #[error("interface {0:?} has no IPv6 address")]
    NoAddress(String),
}

/// Parse the lines of `/proc/net/if_inet6`: address (32 hex digits), index, prefix length,
/// scope, flags, name. Malformed lines are skipped.
pub fn parse_if_inet6(text: &str) -> Vec<Ipv6Interface> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [addr, index, _, _, _, name] = f.as_slice() else {
                return None;
            };
            let bytes: [u8; 16] = hex::decode(addr).ok()?.try_into().ok()?;
            Some(Ipv6Interface {
                name: (*name).to_string(),
                index: u32::from_str_radix(index, 16).ok()?,
                address: Ipv6Addr::from(bytes),
            })
        })
        .collect()
}

/// The IPv6 addresses of this network namespace's interfaces.
pub fn ipv6_interfaces() -> Result<Vec<Ipv6Interface>, NetifError> {
    Ok(parse_if_inet6(&std::fs::read_to_string(
        "/proc/net/if_inet6",
    )?))
}

/// The indexes of the interfaces with an IPv6 link-local address but loopback: the links
/// link-scope discovery is sent on, each once.
pub fn link_indexes() -> Vec<u32> {
    let mut v: Vec<u32> = ipv6_interfaces()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.is_link_local() && i.name != "lo")
        .map(|i| i.index)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The index of interface `name`.
pub fn interface_index(name: &str) -> Result<u32, NetifError> {
    if let Ok(text) = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        && let Ok(i) = text.trim().parse()
    {
        return Ok(i);
    }
    ipv6_interfaces()?
        .into_iter()
        .find(|i| i.name == name)
        .map(|i| i.index)
        .ok_or_else(|| NetifError::UnknownInterface(name.to_string()))
}

/// The name of the interface with index `index`, when it has an IPv6 address.
pub fn interface_name(index: u32) -> Option<String> {
    ipv6_interfaces()
        .ok()?
        .into_iter()
        .find(|i| i.index == index)
        .map(|i| i.name)
}

/// The preferred address of interface `name` for announcing: a global or unique-local address
/// when it has one, else its link-local address.
pub fn announce_address(name: &str) -> Result<Ipv6Interface, NetifError> {
    let all: Vec<Ipv6Interface> = ipv6_interfaces()?
        .into_iter()
        .filter(|i| i.name == name)
        .collect();
    all.iter()
        .find(|i| !i.is_link_local())
        .or_else(|| all.first())
        .cloned()
        .ok_or_else(|| NetifError::NoAddress(name.to_string()))
}

/// Parse a socket address, accepting an interface name as IPv6 zone: `[fe80::1%eth0]:4443`,
/// `[fe80::1%25eth0]:4443` (RFC 6874 in URLs), `[fe80::1%3]:4443`, `[fd00::1]:8443`,
/// `127.0.0.1:8443`. `index_of` maps an interface name to its index.
pub fn parse_scoped_with(
    s: &str,
    index_of: impl Fn(&str) -> Result<u32, NetifError>,
) -> Result<SocketAddr, NetifError> {
    let bad = || NetifError::BadAddress(s.chars().take(100).collect());
    let Some((host, zone_port)) = s.strip_prefix('[').and_then(|r| r.split_once('%')) else {
        return s.parse().map_err(|_| bad());
    };
    let (zone, port) = zone_port.split_once("]:").ok_or_else(bad)?;
    let zone = zone
        .strip_prefix("25")
        .filter(|z| !z.is_empty())
        .unwrap_or(zone);
    let address: Ipv6Addr = host.parse().map_err(|_| bad())?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if zone.is_empty() {
        return Err(bad());
    }
    let scope = match zone.parse::<u32>() {
        Ok(n) => n,
        Err(_) => index_of(zone)?,
    };
    Ok(SocketAddr::V6(SocketAddrV6::new(address, port, 0, scope)))
}

/// [`parse_scoped_with`] against this namespace's interfaces.
pub fn parse_scoped(s: &str) -> Result<SocketAddr, NetifError> {
    parse_scoped_with(s, interface_index)
}

/// An `https://` URL for `addr`, the zone written as `%25<interface name>` (RFC 6874) when the
/// interface is known, else as its index.
pub fn https_url(addr: &SocketAddr) -> String {
    url("https", addr)
}

/// A `scheme://` URL for `addr`, as [`https_url`].
pub fn url(scheme: &str, addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V6(a) if a.scope_id() != 0 => {
            let zone = interface_name(a.scope_id()).unwrap_or_else(|| a.scope_id().to_string());
            format!("{scheme}://[{}%25{zone}]:{}", a.ip(), a.port())
        }
        other => format!("{scheme}://{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "\
fe800000000000000000000000000001 00000003 40 20 80     lan0
fd000000000000000000000000000002 00000002 40 00 80     dom0
00000000000000000000000000000001 00000001 80 10 80       lo
zz 1 2 3
";

    #[test]
    fn if_inet6_lines_are_parsed_and_junk_skipped() {
        let ifs = parse_if_inet6(SAMPLE);
        assert_eq!(ifs.len(), 3);
        assert_eq!(ifs[0].name, "lan0");
        assert_eq!(ifs[0].index, 3);
        assert_eq!(ifs[0].address, "fe80::1".parse::<Ipv6Addr>().expect("addr"));
        assert!(ifs[0].is_link_local());
        assert!(!ifs[1].is_link_local());
    }

    fn lookup(name: &str) -> Result<u32, NetifError> {
        match name {
            "eth0" => Ok(4),
            other => Err(NetifError::UnknownInterface(other.into())),
        }
    }

    #[test]
    fn scoped_addresses_take_names_indices_and_rfc6874_escapes() {
        for s in [
            "[fe80::1%eth0]:4443",
            "[fe80::1%25eth0]:4443",
            "[fe80::1%4]:4443",
        ] {
            let a = parse_scoped_with(s, lookup).expect(s);
            let SocketAddr::V6(v6) = a else {
                panic!("not v6")
            };
            assert_eq!((v6.scope_id(), v6.port()), (4, 4443), "{s}");
        }
        let plain = parse_scoped_with("[fd00::1]:8443", lookup).expect("plain");
        assert_eq!(plain.port(), 8443);
        assert!(parse_scoped_with("127.0.0.1:1", lookup).is_ok());
    }

    #[test]
    fn bad_scoped_addresses_are_rejected() {
        assert!(matches!(
            parse_scoped_with("[fe80::1%wlan9]:1", lookup),
            Err(NetifError::UnknownInterface(n)) if n == "wlan9"
        ));
        for s in [
            "[fe80::1%]:1",
            "[fe80::1%eth0]",
            "[nope%eth0]:1",
            "x",
            "[fe80::1%eth0]:99999",
        ] {
            assert!(
                matches!(parse_scoped_with(s, lookup), Err(NetifError::BadAddress(_))),
                "{s}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn parsers_never_panic(s in ".{0,60}") {
            let _ = parse_scoped_with(&s, lookup);
            let _ = parse_if_inet6(&s);
        }
    }
}
