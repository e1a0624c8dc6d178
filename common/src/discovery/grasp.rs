//! GRASP M_FLOOD (RFC 8990 §2.8.11) with the BRSKI objectives `AN_Proxy` (RFC 8995 §4.1.1)
//! and `AN_join_registrar` (RFC 8995 §4.3).

use ciborium::Value;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};

/// RFC 8990 §2.8.11: the M_FLOOD message type.
pub const M_FLOOD: u64 = 9;
/// RFC 8990 §2.9.5.1: IPv6 locator option.
pub const O_IPV6_LOCATOR: u64 = 103;
/// RFC 8990 §2.9.5.2: IPv4 locator option.
pub const O_IPV4_LOCATOR: u64 = 104;
/// RFC 8990 §2.9.5.3: FQDN locator option.
pub const O_FQDN_LOCATOR: u64 = 105;
/// RFC 8990 §2.9.5.4: URI locator option.
pub const O_URI_LOCATOR: u64 = 106;
/// IANA protocol number of TCP (RFC 8995 §4.1.1: the mandatory transport).
pub const IPPROTO_TCP: u8 = 6;
/// RFC 8990 §2.10.1: objective flag F_SYNCH (bit 2); "sync-only" = 4 (RFC 8995 §4.1.1).
pub const F_SYNCH_ONLY: u8 = 4;
/// RFC 8995 §4.1.1: the join proxy's objective.
pub const AN_PROXY: &str = "AN_Proxy";
/// RFC 8995 §4.3: the registrar's objective.
pub const AN_JOIN_REGISTRAR: &str = "AN_join_registrar";
/// RFC 8995 §4.3: objective value naming RFC 7030 EST over TLS.
pub const EST_TLS: &str = "EST-TLS";
/// RFC 8990 §2.5.4.2 / §3.5.4: GRASP_DEF_MAX_SIZE, the largest message a node must accept.
pub const MAX_MESSAGE_SIZE: usize = 2048;
/// RFC 8995 §4.1.1: the flood's time to live, 180 000 ms.
pub const DEFAULT_TTL_MS: u32 = 180_000;

/// Why bytes are not a valid M_FLOOD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraspError {
    #[error("message of {0} bytes exceeds the GRASP maximum of 2048")]
    TooLarge(usize),
    #[error("not CBOR: {0}")]
    Cbor(String),
    #[error("trailing bytes after the CBOR message")]
    TrailingBytes,
    #[error("the message is not a CBOR array")]
    NotArray,
    #[error("message type {0} is not M_FLOOD (9)")]
    NotFlood(u64),
    #[error("the message type is not an unsigned integer")]
    BadMessageType,
    #[error("M_FLOOD needs at least 5 elements, got {0}")]
    TooShort(usize),
    #[error("session-id is not an unsigned 32-bit integer")]
    BadSessionId,
    #[error("initiator is not a 4- or 16-byte address (got {0} bytes)")]
    BadInitiator(usize),
    #[error("ttl is not an unsigned 32-bit integer")]
    BadTtl,
    #[error("flood entry {0} is not [objective, locator-option / []]")]
    BadEntry(usize),
    #[error("objective in entry {0} is malformed: {1}")]
    BadObjective(usize, &'static str),
    #[error("locator in entry {0} is malformed: {1}")]
    BadLocator(usize, &'static str),
    #[error("locator option {0} is not a known locator")]
    UnknownLocator(u64),
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// A GRASP objective (RFC 8990 §2.10): name, flags, loop count and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub name: String,
    pub flags: u8,
    pub loop_count: u8,
    /// Absent, or any CBOR item (RFC 8995 §4.1.1: empty text for `AN_Proxy`, §4.3: "EST-TLS").
    pub value: Option<Value>,
}

/// A locator option (RFC 8990 §2.9.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    /// `[O_IPv6_LOCATOR, ipv6-address, transport-proto, port-number]`.
    Ipv6 {
        address: Ipv6Addr,
        protocol: u8,
        port: Option<u16>,
    },
    /// `[O_IPv4_LOCATOR, ipv4-address, transport-proto, port-number]`.
    Ipv4 {
        address: Ipv4Addr,
        protocol: u8,
        port: Option<u16>,
    },
    /// `[O_FQDN_LOCATOR, text, transport-proto, port-number]`.
    Fqdn {
        name: String,
        protocol: u8,
        port: Option<u16>,
    },
    /// `[O_URI_LOCATOR, text, transport-proto, port-number / null]`.
    Uri {
        uri: String,
        protocol: u8,
        port: Option<u16>,
    },
}

/// One `[objective, (locator-option / [])]` of a flood.
#[derive(Debug, Clone, PartialEq)]
pub struct FloodEntry {
    pub objective: Objective,
    pub locator: Option<Locator>,
}

/// An M_FLOOD message (RFC 8990 §2.8.11).
#[derive(Debug, Clone, PartialEq)]
pub struct Flood {
    pub session_id: u32,
    /// The initiator's address (RFC 8995 §4.1.1: the proxy's link-local address).
    pub initiator: IpAddr,
    /// Milliseconds the information stays valid.
    pub ttl_ms: u32,
    pub entries: Vec<FloodEntry>,
}

/// A TCP endpoint announced for an objective, with the objective's value when it is text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: Ipv6Addr,
    pub port: u16,
    pub value: Option<String>,
}

impl Endpoint {
    /// The endpoint as a socket address; `scope_id` is the interface the flood arrived on,
    /// needed for link-local addresses (RFC 4007 §11).
    pub fn socket_addr(&self, scope_id: u32) -> SocketAddrV6 {
        let scope = if is_link_local(&self.address) {
            scope_id
        } else {
            0
        };
        SocketAddrV6::new(self.address, self.port, 0, scope)
    }
}

/// Whether `a` is in fe80::/10.
pub fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments().first().is_some_and(|s| s & 0xffc0 == 0xfe80)
}

impl Flood {
    /// RFC 8995 §4.1.1: a proxy announcing itself at `address` (its link-local address) and
    /// TCP `port`: `["AN_Proxy", 4, 1, ""]`.
    pub fn an_proxy(session_id: u32, address: Ipv6Addr, port: u16) -> Self {
        Self::single(session_id, address, AN_PROXY, 1, "", port)
    }

    /// RFC 8995 §4.3: a registrar announcing EST-TLS at `address` and TCP `port`:
    /// `["AN_join_registrar", 4, 255, "EST-TLS"]`.
    pub fn an_join_registrar(session_id: u32, address: Ipv6Addr, port: u16) -> Self {
        Self::single(session_id, address, AN_JOIN_REGISTRAR, 255, EST_TLS, port)
    }

    fn single(
        session_id: u32,
        address: Ipv6Addr,
        name: &str,
        loop_count: u8,
        value: &str,
        port: u16,
    ) -> Self {
        Self {
            session_id,
            initiator: IpAddr::V6(address),
            ttl_ms: DEFAULT_TTL_MS,
            entries: vec![FloodEntry {
                objective: Objective {
                    name: name.to_string(),
                    flags: F_SYNCH_ONLY,
                    loop_count,
                    value: Some(Value::Text(value.to_string())),
                },
                locator: Some(Locator::Ipv6 {
                    address,
                    protocol: IPPROTO_TCP,
                    port: Some(port),
                }),
            }],
        }
    }

    /// The TCP endpoints announced for `objective` with an IPv6 locator (RFC 8995 §4.1.1:
    /// TCP is mandatory; other transports and locator kinds are skipped).
    pub fn tcp_endpoints(&self, objective: &str) -> Vec<Endpoint> {
        self.entries
            .iter()
            .filter(|e| e.objective.name == objective)
            .filter_map(|e| match e.locator {
                Some(Locator::Ipv6 {
                    address,
                    protocol: IPPROTO_TCP,
                    port: Some(port),
                }) if port != 0 => Some(Endpoint {
                    address,
                    port,
                    value: match &e.objective.value {
                        Some(Value::Text(t)) => Some(t.clone()),
                        _ => None,
                    },
                }),
                _ => None,
            })
            .collect()
    }

    /// CBOR encoding (RFC 8990 §2.8.11).
    pub fn encode(&self) -> Result<Vec<u8>, GraspError> {
        let initiator = match self.initiator {
            IpAddr::V6(a) => a.octets().to_vec(),
            IpAddr::V4(a) => a.octets().to_vec(),
        };
        let mut items = vec![
            Value::from(M_FLOOD),
            Value::from(self.session_id),
            Value::Bytes(initiator),
            Value::from(self.ttl_ms),
        ];
        for e in &self.entries {
            let mut objective = vec![
                Value::Text(e.objective.name.clone()),
                Value::from(e.objective.flags),
                Value::from(e.objective.loop_count),
            ];
            if let Some(v) = &e.objective.value {
                objective.push(v.clone());
            }
            let locator = match &e.locator {
                None => Vec::new(),
                Some(l) => encode_locator(l),
            };
            items.push(Value::Array(vec![
                Value::Array(objective),
                Value::Array(locator),
            ]));
        }
        let mut out = Vec::new();
        ciborium::ser::into_writer(&Value::Array(items), &mut out)
            .map_err(|e| GraspError::Encode(e.to_string()))?;
        if out.len() > MAX_MESSAGE_SIZE {
            return Err(GraspError::TooLarge(out.len()));
        }
        Ok(out)
    }

    /// Decode one M_FLOOD (a whole UDP payload).
    pub fn decode(bytes: &[u8]) -> Result<Self, GraspError> {
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(GraspError::TooLarge(bytes.len()));
        }
        let mut rest = bytes;
        let value: Value =
            ciborium::de::from_reader(&mut rest).map_err(|e| GraspError::Cbor(e.to_string()))?;
        if !rest.is_empty() {
            return Err(GraspError::TrailingBytes);
        }
        Self::from_value(value)
    }

    /// An M_FLOOD from its CBOR data item.
    pub fn from_value(value: Value) -> Result<Self, GraspError> {
        let Value::Array(items) = value else {
            return Err(GraspError::NotArray);
        };
        let mut it = items.into_iter();
        let msg_type = it
            .next()
            .as_ref()
            .and_then(as_u64)
            .ok_or(GraspError::BadMessageType)?;
        if msg_type != M_FLOOD {
            return Err(GraspError::NotFlood(msg_type));
        }
        let rest: Vec<Value> = it.collect();
        let [session_id, initiator, ttl, entries @ ..] = rest.as_slice() else {
            return Err(GraspError::TooShort(rest.len() + 1));
        };
        if entries.is_empty() {
            return Err(GraspError::TooShort(rest.len() + 1));
        }
        let session_id = as_u64(session_id)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or(GraspError::BadSessionId)?;
        let initiator = match initiator {
            Value::Bytes(b) => address(b).ok_or(GraspError::BadInitiator(b.len()))?,
            _ => return Err(GraspError::BadInitiator(0)),
        };
        let ttl_ms = as_u64(ttl)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or(GraspError::BadTtl)?;
        let entries = entries
            .iter()
            .enumerate()
            .map(|(i, e)| decode_entry(i, e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            session_id,
            initiator,
            ttl_ms,
            entries,
        })
    }
}

fn encode_locator(l: &Locator) -> Vec<Value> {
    let port = |p: &Option<u16>| p.map_or(Value::Null, Value::from);
    match l {
        Locator::Ipv6 {
            address,
            protocol,
            port: p,
        } => vec![
            Value::from(O_IPV6_LOCATOR),
            Value::Bytes(address.octets().to_vec()),
            Value::from(*protocol),
            port(p),
        ],
        Locator::Ipv4 {
            address,
            protocol,
            port: p,
        } => vec![
            Value::from(O_IPV4_LOCATOR),
            Value::Bytes(address.octets().to_vec()),
            Value::from(*protocol),
            port(p),
        ],
        Locator::Fqdn {
            name,
            protocol,
            port: p,
        } => vec![
            Value::from(O_FQDN_LOCATOR),
            Value::Text(name.clone()),
            Value::from(*protocol),
            port(p),
        ],
        Locator::Uri {
            uri,
            protocol,
            port: p,
        } => vec![
            Value::from(O_URI_LOCATOR),
            Value::Text(uri.clone()),
            Value::from(*protocol),
            port(p),
        ],
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Integer(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

fn as_u8(v: &Value) -> Option<u8> {
    as_u64(v).and_then(|n| u8::try_from(n).ok())
}

fn address(b: &[u8]) -> Option<IpAddr> {
    if let Ok(a) = <[u8; 16]>::try_from(b) {
        Some(IpAddr::V6(Ipv6Addr::from(a)))
    } else if let Ok(a) = <[u8; 4]>::try_from(b) {
        Some(IpAddr::V4(Ipv4Addr::from(a)))
    } else {
        None
    }
}

fn decode_entry(i: usize, e: &Value) -> Result<FloodEntry, GraspError> {
    let Value::Array(parts) = e else {
        return Err(GraspError::BadEntry(i));
    };
    let [objective, locator] = parts.as_slice() else {
        return Err(GraspError::BadEntry(i));
    };
    Ok(FloodEntry {
        objective: decode_objective(i, objective)?,
        locator: decode_locator(i, locator)?,
    })
}

fn decode_objective(i: usize, v: &Value) -> Result<Objective, GraspError> {
    let Value::Array(parts) = v else {
        return Err(GraspError::BadObjective(i, "not an array"));
    };
    let (name, flags, loop_count, value) = match parts.as_slice() {
        [n, f, l] => (n, f, l, None),
        [n, f, l, v] => (n, f, l, Some(v.clone())),
        _ => return Err(GraspError::BadObjective(i, "not 3 or 4 elements")),
    };
    let Value::Text(name) = name else {
        return Err(GraspError::BadObjective(i, "name is not text"));
    };
    if name.is_empty() {
        return Err(GraspError::BadObjective(i, "empty name"));
    }
    let flags = as_u8(flags).ok_or(GraspError::BadObjective(i, "flags not 0..255"))?;
    let loop_count =
        as_u8(loop_count).ok_or(GraspError::BadObjective(i, "loop-count not 0..255"))?;
    if loop_count == 0 {
        return Err(GraspError::BadObjective(i, "loop-count 0"));
    }
    Ok(Objective {
        name: name.clone(),
        flags,
        loop_count,
        value,
    })
}

fn decode_locator(i: usize, v: &Value) -> Result<Option<Locator>, GraspError> {
    let Value::Array(parts) = v else {
        return Err(GraspError::BadLocator(i, "not an array"));
    };
    if parts.is_empty() {
        return Ok(None);
    }
    let [kind, addr, protocol, port] = parts.as_slice() else {
        return Err(GraspError::BadLocator(i, "not 4 elements"));
    };
    let kind = as_u64(kind).ok_or(GraspError::BadLocator(i, "option is not an integer"))?;
    let protocol = as_u8(protocol).ok_or(GraspError::BadLocator(i, "protocol not 0..255"))?;
    let port = match port {
        Value::Null => None,
        p => Some(
            as_u64(p)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or(GraspError::BadLocator(i, "port not 0..65535"))?,
        ),
    };
    let text = |v: &Value| match v {
        Value::Text(t) if !t.is_empty() => Ok(t.clone()),
        _ => Err(GraspError::BadLocator(i, "not non-empty text")),
    };
    Ok(Some(match kind {
        O_IPV6_LOCATOR => match addr {
            Value::Bytes(b) => Locator::Ipv6 {
                address: <[u8; 16]>::try_from(b.as_slice())
                    .map(Ipv6Addr::from)
                    .map_err(|_| GraspError::BadLocator(i, "IPv6 address is not 16 bytes"))?,
                protocol,
                port,
            },
            _ => return Err(GraspError::BadLocator(i, "IPv6 address is not bytes")),
        },
        O_IPV4_LOCATOR => match addr {
            Value::Bytes(b) => Locator::Ipv4 {
                address: <[u8; 4]>::try_from(b.as_slice())
                    .map(Ipv4Addr::from)
                    .map_err(|_| GraspError::BadLocator(i, "IPv4 address is not 4 bytes"))?,
                protocol,
                port,
            },
            _ => return Err(GraspError::BadLocator(i, "IPv4 address is not bytes")),
        },
        O_FQDN_LOCATOR => Locator::Fqdn {
            name: text(addr)?,
            protocol,
            port,
        },
        O_URI_LOCATOR => Locator::Uri {
            uri: text(addr)?,
            protocol,
            port,
        },
        other => return Err(GraspError::UnknownLocator(other)),
    }))
}
