//! Configuration files shared between daemons: `pledge.toml`, written by `masa mint` (the
//! factory) and read by `pledge`. Relative paths are relative to the file's directory.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Errors reading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The value of a listener key that may be `off` (`metrics-listen`, `crl-listen`): an
/// address, or `None`.
pub fn listen_or_off(key: &str, text: &str) -> Result<Option<std::net::SocketAddr>, String> {
    match text.trim() {
        "off" => Ok(None),
        other => other
            .parse()
            .map(Some)
            .map_err(|e| format!("{key} {other:?}: {e} (an address:port, or \"off\")")),
    }
}

/// Whether `addr` can be bound now (TCP, or UDP for CoAPS and JPY): `check-config`'s "ports
/// free", bound and released at once as `serve` would bind them.
pub fn port_free(addr: std::net::SocketAddr, udp: bool) -> std::io::Result<()> {
    if udp {
        std::net::UdpSocket::bind(addr).map(drop)
    } else {
        std::net::TcpListener::bind(addr).map(drop)
    }
}

/// Read and parse a TOML file.
pub fn load<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Resolve `p` against the directory of the configuration file `config`.
pub fn resolve(config: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Where a daemon keeps its state (`database` in masa.toml and registrar.toml): an SQLite file
/// (a path, or `sqlite://PATH`; relative to the configuration file), the embedded default for
/// one instance; or a PostgreSQL database (`postgres://` or `postgresql://` URL) that several
/// instances share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Database {
    /// The SQLite path resolved against the directory of the configuration file `config`.
    pub fn resolved(self, config: &Path) -> Self {
        match self {
            Self::Sqlite(p) => Self::Sqlite(resolve(config, &p)),
            pg => pg,
        }
    }

    /// `sqlite` or `postgres`, for the log.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// The SQLite file, when the state is in one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(p) => Some(p),
            Self::Postgres(_) => None,
        }
    }
}

impl TryFrom<String> for Database {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            use std::str::FromStr;
            tokio_postgres::Config::from_str(&s).map_err(|e| format!("database URL: {e}"))?;
            return Ok(Self::Postgres(s));
        }
        let path = s.strip_prefix("sqlite://").unwrap_or(&s);
        if path.is_empty() || path.contains("://") {
            return Err(format!(
                "database {s:?} is neither an SQLite file (a path, or sqlite://PATH) nor a \
                 postgres:// URL"
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }
}

impl From<Database> for String {
    fn from(d: Database) -> String {
        match d {
            Database::Sqlite(p) => p.display().to_string(),
            Database::Postgres(url) => url,
        }
    }
}

/// Where the pledge's IDevID private key lives.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TpmKey {
    /// TCTI: `swtpm:host=127.0.0.1,port=2321`, `device:/dev/tpmrm0`, `tabrmd:...`.
    pub tcti: String,
    /// Persistent handle of the IDevID key (e.g. 0x81020000).
    pub idevid_handle: u32,
    /// The two persistent handles the LDevID key alternates between on renewal (default
    /// 0x81020001 and 0x81020002).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldevid_handles: Option<[u32; 2]>,
    /// Persistent handle of the IAK (e.g. 0x81020003), which certifies the LDevID key and
    /// quotes the PCRs for the registrar (attested enrollment). Without it the pledge sends no
    /// evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iak_handle: Option<u32>,
}

/// `pledge.toml`: what the factory gives a pledge.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PledgeConfig {
    /// The device serial number (the IDevID subject's serialNumber).
    pub serial_number: String,
    /// IDevID certificate (PEM; the chain up to, not including, the manufacturer CA may follow).
    pub idevid_cert: PathBuf,
    /// IDevID private key file (PEM). Absent when the key is in a TPM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idevid_key: Option<PathBuf>,
    /// The IDevID key in a TPM instead of a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmKey>,
    /// The IAK certificate (PEM; the chain up to, not including, the manufacturer CA may
    /// follow), sent with the attestation evidence. Needs `[tpm] iak-handle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iak_cert: Option<PathBuf>,
    /// The manufacturer's trust anchor for vouchers (8995 §9.1.3).
    pub manufacturer_anchor: PathBuf,
    /// Where enrollment results are written (default: the configuration file's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// The registrar's URL (`https://host:port`, or `coaps://host:port` for EST over CoAP,
    /// RFC 9148); without it the pledge discovers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registrar: Option<String>,
    /// `https` (default) or `coaps` (cBRSKI: CoAP over DTLS); a registrar URL's scheme must
    /// agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Voucher format to request: `cms` (default), `jws` or `cose`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voucher_format: Option<String>,
    /// Whether the pledge's clock is trusted for certificate and voucher validity (8995 §2.6.1).
    #[serde(default = "default_true")]
    pub trust_clock: bool,
    /// Whether a voucher without a nonce is accepted (8995 §7.2, a security reduction; default
    /// off): only with `trust-clock` and an `expires-on` not yet passed (§7.4.1, §11.1).
    #[serde(default)]
    pub accept_nonceless_vouchers: bool,
}

fn default_true() -> bool {
    true
}

impl PledgeConfig {
    /// Load `pledge.toml` and resolve its paths against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut c: Self = load(path)?;
        c.idevid_cert = resolve(path, &c.idevid_cert);
        c.idevid_key = c.idevid_key.map(|k| resolve(path, &k));
        c.iak_cert = c.iak_cert.map(|k| resolve(path, &k));
        c.manufacturer_anchor = resolve(path, &c.manufacturer_anchor);
        c.state_dir = Some(resolve(
            path,
            c.state_dir.as_deref().unwrap_or(Path::new(".")),
        ));
        if c.idevid_key.is_none() && c.tpm.is_none() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                reason: "either idevid-key or [tpm] is required".into(),
            });
        }
        let iak_handle = c.tpm.as_ref().and_then(|t| t.iak_handle);
        if c.iak_cert.is_some() != iak_handle.is_some() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                reason: "iak-cert and [tpm] iak-handle go together".into(),
            });
        }
        Ok(c)
    }

    /// The state directory (after [`Self::load`], always set).
    pub fn state_dir(&self) -> &Path {
        self.state_dir.as_deref().unwrap_or(Path::new("."))
    }
}

#[cfg(test)]
mod pledge_example_tests {
    use super::{PledgeConfig, TpmKey};

    /// The commented example the packages install as /etc/brski/pledge.toml.example.
    const EXAMPLE: &str = include_str!("../../packaging/pledge.toml.example");

    #[test]
    fn the_packaged_pledge_example_parses_and_its_commented_keys_are_real() {
        let active: PledgeConfig = toml::from_str(EXAMPLE).expect("example as shipped");
        assert_eq!(
            active.state_dir.as_deref(),
            Some("/var/lib/brski-pledge".as_ref())
        );
        // Every commented-out `key = value` and `[tpm]` line, switched on: unknown or misspelt
        // keys are refused (deny_unknown_fields), so the example cannot name keys that are not.
        let all: String = EXAMPLE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with('[')
                        || rest
                            .split_once(" = ")
                            .is_some_and(|(k, _)| !k.contains(' ')) =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let full: PledgeConfig = toml::from_str(&all).expect("example with every key");
        assert!(full.registrar.is_some() && full.transport.is_some());
        assert!(full.voucher_format.is_some());
        assert_eq!(
            full.tpm,
            Some(TpmKey {
                tcti: "device:/dev/tpmrm0".into(),
                idevid_handle: 0x8102_0000,
                ldevid_handles: Some([0x8102_0001, 0x8102_0002]),
                iak_handle: Some(0x8102_0003),
            })
        );
    }
}

#[cfg(test)]
mod database_tests {
    use super::Database;
    use std::path::{Path, PathBuf};

    #[test]
    fn database_is_an_sqlite_path_or_a_postgres_url_and_nothing_else() {
        let parse = |s: &str| Database::try_from(s.to_string());
        assert_eq!(
            parse("masa.db"),
            Ok(Database::Sqlite(PathBuf::from("masa.db")))
        );
        assert_eq!(
            parse("sqlite:///var/lib/brski/masa.db"),
            Ok(Database::Sqlite(PathBuf::from("/var/lib/brski/masa.db")))
        );
        for url in [
            "postgres://masa@db/masa?sslmode=require",
            "postgresql://u@h:5433/d",
        ] {
            assert_eq!(parse(url), Ok(Database::Postgres(url.into())));
        }
        for bad in ["", "sqlite://", "ftp://host/file", "postgres://u@[::1"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        // Relative SQLite paths are the configuration file's neighbours; URLs stay as given.
        let config = Path::new("/etc/brski/masa.toml");
        assert_eq!(
            Database::Sqlite("masa.db".into()).resolved(config),
            Database::Sqlite("/etc/brski/masa.db".into())
        );
        let pg = Database::Postgres("postgres://u@h/d".into());
        assert_eq!(pg.clone().resolved(config), pg);
        assert_eq!(String::from(pg), "postgres://u@h/d");
    }
}
