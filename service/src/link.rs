//! A pledge's link to a registrar, over either transport: HTTPS (RFC 8995 §5, RFC 7030) or CoAP
//! over DTLS (RFC 9148, cBRSKI §6). Requests and answers are in HTTP terms; over CoAP the client
//! maps them ([`coaps::client::Client::exchange`]). The registrar's chain is judged by the same
//! rule on both: provisionally (RFC 8995 §5.1) or under the domain CA (§5.6.2).

use crate::coaps;
use crate::https_client::{self, Connection, Response, Target};
use brski_common::keys::Signer;
use brski_common::pki::chain::TrustPolicy;
use brski_common::tls;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The transport to the registrar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// EST over HTTPS (RFC 7030, RFC 8995).
    Https,
    /// EST over CoAP and DTLS (RFC 9148, cBRSKI).
    Coaps,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Self::Https => "https",
            Self::Coaps => "coaps",
        }
    }

    /// `https` or `coaps`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "https" => Some(Self::Https),
            "coaps" => Some(Self::Coaps),
            _ => None,
        }
    }
}

/// How the registrar's certificate chain is judged.
#[derive(Clone, Debug)]
pub enum ServerTrust {
    /// RFC 8995 §5.1: accepted provisionally, its signatures checked as far as they can be.
    Provisional,
    /// Validated under this policy (the domain CA, and id-kp-cmcRA, RFC 8995 §5.6.2).
    Anchored(TrustPolicy),
}

/// A client certificate chain (IDevID or LDevID first, DER) and its key.
#[derive(Clone, Debug)]
pub struct ClientCert {
    pub chain: Vec<Vec<u8>>,
    pub key: Arc<dyn Signer>,
}

/// The pledge's credentials on a link, and how it judges the registrar.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The certificate the client authenticates with; none only over HTTPS and with an
    /// anchored server (RFC 7030 §4.1.1: `/cacerts` needs no client authentication).
    pub client: Option<ClientCert>,
    pub server: ServerTrust,
    /// Over CoAPS, the UDP port to send from when free (0: any; see
    /// [`coaps::client::ClientConfig::source_port`]).
    pub source_port: u16,
}

/// Why a link could not be opened or a request not answered.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The credentials cannot be used on this transport.
    #[error("{0}")]
    Credentials(String),
    #[error("{0}: no address")]
    NoAddress(String),
    #[error("{authority}: {source}")]
    Resolve {
        authority: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Https(#[from] https_client::ClientError),
    #[error("the registrar's certificate is not accepted: {0}")]
    ServerRefused(String),
    #[error(transparent)]
    Coaps(coaps::client::ClientError),
}

impl From<coaps::client::ClientError> for LinkError {
    fn from(e: coaps::client::ClientError) -> Self {
        match e {
            coaps::client::ClientError::ServerRefused(reason) => Self::ServerRefused(reason),
            other => Self::Coaps(other),
        }
    }
}

impl LinkError {
    /// The registrar had closed the connection: a new one may succeed.
    pub fn is_closed_connection(&self) -> bool {
        match self {
            Self::Https(e) => e.is_closed_connection(),
            Self::Coaps(e) => e.is_closed_connection(),
            _ => false,
        }
    }
}

impl Credentials {
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>, LinkError> {
        let unusable = |e: tls::TlsError| LinkError::Credentials(e.to_string());
        let client = match &self.client {
            Some(c) => Some(tls::certified_key(&c.chain, c.key.clone()).map_err(unusable)?),
            None => None,
        };
        let config = match (&self.server, client) {
            (ServerTrust::Provisional, Some(client)) => tls::provisional_client_config(client),
            (ServerTrust::Provisional, None) => {
                return Err(LinkError::Credentials(
                    "a provisional connection needs a client certificate (RFC 8995 §5.1)".into(),
                ));
            }
            (ServerTrust::Anchored(policy), client) => tls::client_config(
                client,
                Arc::new(tls::AnchoredServerVerifier::new(policy.clone())),
            ),
        };
        config.map(Arc::new).map_err(unusable)
    }

    fn dtls(&self) -> Result<coaps::client::ClientConfig, LinkError> {
        let client = self.client.as_ref().ok_or_else(|| {
            LinkError::Credentials("over CoAPS this client needs a client certificate".into())
        })?;
        // A key in software goes to OpenSSL as it is; one held in a TPM signs the digests
        // OpenSSL hands it.
        let key = match client.key.pkcs8_der() {
            Some(der) => coaps::IdentityKey::Pkcs8(der.to_vec()),
            None => coaps::IdentityKey::Signer(client.key.clone()),
        };
        let server_check = match &self.server {
            ServerTrust::Provisional => coaps::client::provisional(),
            ServerTrust::Anchored(policy) => coaps::client::anchored(policy.clone()),
        };
        Ok(coaps::client::ClientConfig {
            identity: coaps::Identity {
                chain: client.chain.clone(),
                key,
            },
            server_check,
            path_mtu: 1024,
            call: coaps::call::CallLimits::default(),
            source_port: self.source_port,
        })
    }
}

/// The connection to a registrar.
pub enum Link {
    Https {
        tls: Arc<rustls::ClientConfig>,
        conn: Connection,
    },
    Coaps {
        config: coaps::client::ClientConfig,
        client: coaps::client::Client,
    },
}

/// The registrar's address (the first the name resolves to).
async fn resolve(target: &Target) -> Result<SocketAddr, LinkError> {
    tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|source| LinkError::Resolve {
            authority: target.authority.clone(),
            source,
        })?
        .next()
        .ok_or_else(|| LinkError::NoAddress(target.authority.clone()))
}

impl Link {
    /// Connect to `target` over `transport` with `credentials`, within `timeout`.
    pub async fn open(
        transport: Transport,
        target: &Target,
        credentials: &Credentials,
        timeout: Duration,
    ) -> Result<Self, LinkError> {
        match transport {
            Transport::Https => {
                let tls = credentials.tls()?;
                let conn = Connection::connect(target, tls.clone(), timeout).await?;
                Ok(Self::Https { tls, conn })
            }
            Transport::Coaps => {
                let config = credentials.dtls()?;
                let addr = resolve(target).await?;
                let client = coaps::client::Client::connect(addr, &config, timeout).await?;
                Ok(Self::Coaps { config, client })
            }
        }
    }

    /// A new connection with the same credentials.
    pub async fn reopen(&self, target: &Target, timeout: Duration) -> Result<Self, LinkError> {
        match self {
            Self::Https { tls, .. } => {
                let conn = Connection::connect(target, tls.clone(), timeout).await?;
                Ok(Self::Https {
                    tls: tls.clone(),
                    conn,
                })
            }
            Self::Coaps { config, .. } => {
                let addr = resolve(target).await?;
                let client = coaps::client::Client::connect(addr, config, timeout).await?;
                Ok(Self::Coaps {
                    config: config.clone(),
                    client,
                })
            }
        }
    }

    pub fn transport(&self) -> Transport {
        match self {
            Self::Https { .. } => Transport::Https,
            Self::Coaps { .. } => Transport::Coaps,
        }
    }

    /// The UDP port a CoAPS link sends from.
    pub fn source_port(&self) -> Option<u16> {
        match self {
            Self::Https { .. } => None,
            Self::Coaps { client, .. } => client.local_port(),
        }
    }

    /// The registrar's chain as presented, end entity first.
    pub fn peer_certs(&self) -> &[Vec<u8>] {
        match self {
            Self::Https { conn, .. } => conn.peer_certs(),
            Self::Coaps { client, .. } => client.peer_certs(),
        }
    }

    /// RFC 9266 `tls-exporter` of the connection.
    pub fn channel_binding(&self) -> Option<&[u8]> {
        match self {
            Self::Https { conn, .. } => conn.channel_binding(),
            Self::Coaps { client, .. } => client.channel_binding(),
        }
    }

    pub fn is_closed(&self) -> bool {
        match self {
            Self::Https { conn, .. } => conn.is_closed(),
            Self::Coaps { client, .. } => client.is_closed(),
        }
    }

    /// One request, in HTTP terms, answered within `timeout`.
    pub async fn request(
        &mut self,
        method: &http::Method,
        path: &str,
        content_type: Option<&str>,
        accept: Option<&str>,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, LinkError> {
        match self {
            Self::Https { conn, .. } => Ok(conn
                .request(method.clone(), path, content_type, accept, body, timeout)
                .await?),
            Self::Coaps { client, .. } => Ok(client
                .exchange(method, path, content_type, accept, body, timeout)
                .await?),
        }
    }
}
