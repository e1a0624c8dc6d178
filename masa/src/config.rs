//! `masa.toml`: where the MASA listens, the MASA URL it puts into IDevIDs, its ownership policy
//! (RFC 8995 §5.5.4, §7.4), the nonceless voucher lifetime (§5.6), and its files. Relative paths
//! are relative to the configuration file's directory.

use brski_service::config::{ConfigError, Database, load, resolve};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Default HTTPS listen address (DESIGN: MASA 9443).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9443";
/// Default metrics listen address that `masa init` writes: loopback (the registrar's is 9464).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9465";
/// Default nonceless voucher lifetime in seconds: 20 minutes (RFC 8995 §5.6).
pub const DEFAULT_NONCELESS_LIFETIME: u64 = 1200;
/// Longest nonceless voucher lifetime accepted: 10 years (a voucher outliving the registrar
/// certificate is cut at its notAfter anyway). Keeps `now + lifetime` far inside `time`'s range.
pub const MAX_NONCELESS_LIFETIME: u64 = 10 * 365 * 24 * 3600;

/// File names `masa init` writes, and the defaults of the path keys.
pub mod names {
    pub const CONFIG: &str = "masa.toml";
    pub const DATABASE: &str = "masa.db";
    pub const VENDOR_CA_CERT: &str = "vendor-ca.crt.pem";
    pub const VENDOR_CA_KEY: &str = "vendor-ca.key.pem";
    pub const SIGNER_CERT: &str = "masa-signer.crt.pem";
    pub const SIGNER_KEY: &str = "masa-signer.key.pem";
    pub const TLS_CERT: &str = "masa-tls.crt.pem";
    pub const TLS_KEY: &str = "masa-tls.key.pem";
}

/// Which registrars get vouchers for a device (RFC 8995 §5.5.4, §7.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Ownership {
    /// Any registrar whose request verifies; the voucher asserts `logged` (or `proximity`).
    #[default]
    LogOnly,
    /// Trust on first use: the first domain to get a voucher owns the device until released.
    FirstOwner,
    /// Only devices claimed for a domain CA (`masa claim`), only for that domain; `verified`.
    Claimed,
}

impl Ownership {
    /// The spelling used in `masa.toml` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LogOnly => "log-only",
            Self::FirstOwner => "first-owner",
            Self::Claimed => "claimed",
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9443))
}
fn metrics_off() -> String {
    "off".into()
}
fn default_lifetime() -> u64 {
    DEFAULT_NONCELESS_LIFETIME
}
fn default_database() -> Database {
    Database::Sqlite(names::DATABASE.into())
}
fn default_vendor_ca_cert() -> PathBuf {
    names::VENDOR_CA_CERT.into()
}
fn default_vendor_ca_key() -> PathBuf {
    names::VENDOR_CA_KEY.into()
}
fn default_signer_cert() -> PathBuf {
    names::SIGNER_CERT.into()
}
fn default_signer_key() -> PathBuf {
    names::SIGNER_KEY.into()
}
fn default_tls_cert() -> PathBuf {
    names::TLS_CERT.into()
}
fn default_tls_key() -> PathBuf {
    names::TLS_KEY.into()
}

/// The contents of `masa.toml`. Every key but `masa-url` has a default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MasaConfig {
    /// HTTPS listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address of the metrics listener (plain HTTP, `GET /metrics`), or `off`; absent: off.
    #[serde(default = "metrics_off")]
    pub metrics_listen: String,
    /// The id-pe-masa-url value put into IDevIDs (RFC 8995 §2.3.2).
    pub masa_url: String,
    /// Ownership policy.
    #[serde(default)]
    pub ownership: Ownership,
    /// Lifetime of nonceless vouchers in seconds (RFC 8995 §5.6).
    #[serde(default = "default_lifetime")]
    pub nonceless_voucher_lifetime: u64,
    /// Demand a TLS client certificate whose key signed the registrar voucher-request
    /// (RFC 8995 §5.4, §5.5.4). Without it a certificate is asked for but optional.
    #[serde(default)]
    pub require_client_cert: bool,
    /// Where the state is: an SQLite file (one instance), or a `postgres://` URL (several
    /// instances sharing it).
    #[serde(default = "default_database")]
    pub database: Database,
    /// With PostgreSQL over TLS (`?sslmode=require`): the CA certificates (PEM) the database
    /// server's certificate must validate under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_ca: Option<PathBuf>,
    /// Manufacturer CA certificate (the pledges' trust anchor).
    #[serde(default = "default_vendor_ca_cert")]
    pub vendor_ca_cert: PathBuf,
    /// Manufacturer CA private key (signs IDevIDs in `masa mint`).
    #[serde(default = "default_vendor_ca_key")]
    pub vendor_ca_key: PathBuf,
    /// Voucher-signing certificate (issued by the vendor CA).
    #[serde(default = "default_signer_cert")]
    pub signer_cert: PathBuf,
    /// Voucher-signing private key.
    #[serde(default = "default_signer_key")]
    pub signer_key: PathBuf,
    /// HTTPS server certificate.
    #[serde(default = "default_tls_cert")]
    pub tls_cert: PathBuf,
    /// HTTPS server private key.
    #[serde(default = "default_tls_key")]
    pub tls_key: PathBuf,
}

impl MasaConfig {
    /// A configuration with the default file names.
    pub fn new(listen: SocketAddr, masa_url: String, ownership: Ownership) -> Self {
        Self {
            listen,
            metrics_listen: DEFAULT_METRICS_LISTEN.into(),
            masa_url,
            ownership,
            nonceless_voucher_lifetime: DEFAULT_NONCELESS_LIFETIME,
            require_client_cert: false,
            database: default_database(),
            database_ca: None,
            vendor_ca_cert: default_vendor_ca_cert(),
            vendor_ca_key: default_vendor_ca_key(),
            signer_cert: default_signer_cert(),
            signer_key: default_signer_key(),
            tls_cert: default_tls_cert(),
            tls_key: default_tls_key(),
        }
    }

    /// Load `path` and resolve every file path against its directory; every value is checked
    /// ([`MasaConfig::problems`]) so that none can fail later at request time.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut c: Self = load(path)?;
        let problems = c.problems();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                reason: problems.join("; "),
            });
        }
        c.resolve(path);
        Ok(c)
    }

    /// Every file path resolved against the directory of the configuration file `path`.
    fn resolve(&mut self, path: &Path) {
        self.database = self.database.clone().resolved(path);
        for p in [
            &mut self.vendor_ca_cert,
            &mut self.vendor_ca_key,
            &mut self.signer_cert,
            &mut self.signer_key,
            &mut self.tls_cert,
            &mut self.tls_key,
        ] {
            *p = resolve(path, p);
        }
        if let Some(ca) = &mut self.database_ca {
            *ca = resolve(path, ca);
        }
    }

    /// What is wrong with the values (not the files): one line per problem, naming the key.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(1..=MAX_NONCELESS_LIFETIME).contains(&self.nonceless_voucher_lifetime) {
            out.push(format!(
                "nonceless-voucher-lifetime = {} is out of range: 1 to {MAX_NONCELESS_LIFETIME} \
                 seconds (RFC 8995 §5.6 suggests about 1200)",
                self.nonceless_voucher_lifetime
            ));
        }
        if let Err(e) = brski_common::pki::masa_base_uri(&self.masa_url) {
            out.push(format!("masa-url: {e}"));
        }
        if let Err(e) = self.metrics_addr() {
            out.push(e);
        }
        out
    }

    /// The metrics listener's address, `None` when `metrics-listen` is `off`.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, String> {
        brski_service::metrics::parse_listen(&self.metrics_listen)
    }

    /// `masa check-config`: every key and file of `path` checked (DESIGN's CLI contract); one
    /// line per problem, empty when `masa serve` would start with it.
    pub fn check(path: &Path) -> Vec<String> {
        let mut c: Self = match load(path) {
            Ok(c) => c,
            Err(e) => return vec![e.to_string()],
        };
        let mut out: Vec<String> = c
            .problems()
            .into_iter()
            .map(|p| format!("{}: {p}", path.display()))
            .collect();
        // Ports free, in the words `masa serve` refuses with.
        let metrics = c.metrics_addr().ok().flatten();
        for (key, addr) in [("listen", Some(c.listen)), ("metrics-listen", metrics)] {
            if let Some(addr) = addr {
                // The words of `MasaError::Bind`, which `masa serve` refuses with (this file is
                // also built into the config fuzz target, without the error module);
                // `check_config_and_serve_name_a_listen_port_in_use` holds them equal.
                if let Err(source) = brski_service::config::port_free(addr, false) {
                    out.push(format!("{key}: cannot listen on {addr}: {source}"));
                }
            }
        }
        c.resolve(path);
        let cert =
            |key: &str, file: &Path, out: &mut Vec<String>| match brski_service::files::read_certs(
                file,
            ) {
                Ok(certs) if certs.is_empty() => {
                    out.push(format!("{key}: {}: no certificate", file.display()));
                    None
                }
                Ok(mut certs) => Some(certs.remove(0)),
                Err(e) => {
                    out.push(format!("{key}: {e}"));
                    None
                }
            };
        let key = |name: &str, file: &Path, out: &mut Vec<String>| {
            brski_service::files::read_key(file)
                .map_err(|e| out.push(format!("{name}: {e}")))
                .ok()
        };
        let pairs = [
            ("vendor-ca", &c.vendor_ca_cert, &c.vendor_ca_key),
            ("signer", &c.signer_cert, &c.signer_key),
            ("tls", &c.tls_cert, &c.tls_key),
        ];
        for (what, cert_file, key_file) in pairs {
            let certificate = cert(&format!("{what}-cert"), cert_file, &mut out);
            let private = key(&format!("{what}-key"), key_file, &mut out);
            if let (Some(certificate), Some(private)) = (certificate, private) {
                use brski_common::keys::Signer;
                use der::Encode;
                let spki = certificate
                    .tbs_certificate()
                    .subject_public_key_info()
                    .to_der()
                    .unwrap_or_default();
                if spki != private.public_key_spki() {
                    out.push(format!(
                        "{what}-key: {} is not the key of {}",
                        key_file.display(),
                        cert_file.display()
                    ));
                }
            }
        }
        if let Some(dir) = c.database.sqlite_path().and_then(Path::parent) {
            if !dir.as_os_str().is_empty() && !dir.is_dir() {
                out.push(format!(
                    "database: directory {} does not exist",
                    dir.display()
                ));
            }
        }
        if let Some(ca) = &c.database_ca {
            match brski_service::files::read_certs(ca) {
                Ok(certs) if certs.is_empty() => {
                    out.push(format!("database-ca: {}: no certificate", ca.display()))
                }
                Ok(_) => {}
                Err(e) => out.push(format!("database-ca: {e}")),
            }
        }
        out
    }

    /// The lifetime of nonceless vouchers.
    pub fn nonceless_lifetime(&self) -> time::Duration {
        let secs = self.nonceless_voucher_lifetime.min(MAX_NONCELESS_LIFETIME);
        time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    /// `masa.toml` text: every key preceded by a comment saying what it does.
    pub fn render(&self) -> String {
        let s = |v: &str| toml::Value::String(v.to_string()).to_string();
        let p = |v: &Path| s(&v.to_string_lossy());
        format!(
            "\
# masa.toml: the BRSKI MASA (RFC 8995 §5.5, §5.6). Relative paths are relative to the
# directory of this file.

# listen: address:port of the HTTPS server (POST /.well-known/brski/requestvoucher and
#   /.well-known/brski/requestauditlog).
listen = {listen}

# metrics-listen: address:port of the Prometheus metrics listener (plain HTTP, GET /metrics),
#   kept apart from the protocol listener; loopback by default, as it has no authentication.
#   \"off\" (or no such key): none. Port 0 picks a free port, logged at start.
metrics-listen = {metrics_listen}

# masa-url: the id-pe-masa-url value `masa mint` puts into IDevIDs (RFC 8995 §2.3.2). Normally
#   an authority \"host:port\"; registrars then POST to https://<masa-url>/.well-known/brski/...
masa-url = {masa_url}

# ownership: which registrars get vouchers (RFC 8995 §5.5.4, §7.4).
#   \"log-only\"    (default) any registrar whose voucher-request verifies; the voucher asserts
#                 \"logged\", or \"proximity\" when the pledge's signed request proves it.
#   \"first-owner\" trust on first use: the first domain that gets a voucher owns the device;
#                 registrars of other domains are refused (403) until `masa release --serial S`.
#   \"claimed\"     only devices with a sales record (`masa claim --serial S --domain-ca FILE`),
#                 only for registrars whose chain validates to that domain CA (others: 403,
#                 unclaimed devices: 404); the voucher asserts \"verified\". Nonceless
#                 voucher-requests (no pledge request, no nonce) are accepted only here.
ownership = {ownership}

# nonceless-voucher-lifetime: seconds a nonceless voucher stays valid (its expires-on; never
#   past the registrar certificate's notAfter). RFC 8995 §5.6 recommends about 20 minutes.
nonceless-voucher-lifetime = {lifetime}

# require-client-cert: when true the TLS handshake demands a client certificate (any chain: the
#   registrars' CAs are not known in advance) and a voucher or audit-log request is refused (401)
#   unless its voucher-request was signed with the key of that certificate (RFC 8995 §5.4,
#   §5.5.4). When false (the default) a client certificate is asked for but optional; one that
#   is presented must still be the voucher-request's signer.
{require_client_cert}

# database: SQLite file holding minted devices, owners, claims, issued vouchers and the audit
#   log (RFC 8995 §5.8). `masa claim`, `release` and `audit-log` use it while the server runs.
#   Several `masa serve` instances share a PostgreSQL database instead:
#   database = \"postgres://masa@db.example.com/masa?sslmode=require\", with database-ca naming
#   the CA certificates (PEM) its TLS certificate must validate under.
database = {database}

# vendor-ca-cert, vendor-ca-key: the manufacturer CA. It issues IDevIDs (`masa mint`), the voucher
#   signer and the TLS certificate; pledges trust it for vouchers.
vendor-ca-cert = {vendor_ca_cert}
vendor-ca-key = {vendor_ca_key}

# signer-cert, signer-key: the voucher-signing certificate and key (RFC 8366bis §7.1).
signer-cert = {signer_cert}
signer-key = {signer_key}

# tls-cert, tls-key: the HTTPS server certificate (subjectAltName = the MASA's name) and key.
tls-cert = {tls_cert}
tls-key = {tls_key}
",
            listen = s(&self.listen.to_string()),
            metrics_listen = s(&self.metrics_listen),
            masa_url = s(&self.masa_url),
            ownership = s(self.ownership.as_str()),
            lifetime = self.nonceless_voucher_lifetime,
            require_client_cert = if self.require_client_cert {
                "require-client-cert = true"
            } else {
                "# require-client-cert = false"
            },
            database = s(&String::from(self.database.clone())),
            vendor_ca_cert = p(&self.vendor_ca_cert),
            vendor_ca_key = p(&self.vendor_ca_key),
            signer_cert = p(&self.signer_cert),
            signer_key = p(&self.signer_key),
            tls_cert = p(&self.tls_cert),
            tls_key = p(&self.tls_key),
        )
    }
}

/// The MASA URL for IDevIDs from the server name and listen port (RFC 8995 §2.3.2: an
/// authority `host:port`; IPv6 literals in brackets).
pub fn default_masa_url(host: &str, listen: SocketAddr) -> String {
    let port = listen.port();
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_config_loads_back_with_paths_resolved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(names::CONFIG);
        let mut cfg = MasaConfig::new(
            "127.0.0.1:9555".parse().expect("addr"),
            "masa.example:9555".into(),
            Ownership::FirstOwner,
        );
        cfg.nonceless_voucher_lifetime = 77;
        std::fs::write(&path, cfg.render()).expect("write");
        let loaded = MasaConfig::load(&path).expect("load");
        assert_eq!(loaded.listen, cfg.listen);
        assert_eq!(loaded.masa_url, "masa.example:9555");
        assert_eq!(loaded.ownership, Ownership::FirstOwner);
        assert_eq!(loaded.nonceless_voucher_lifetime, 77);
        assert_eq!(
            loaded.database,
            Database::Sqlite(dir.path().join("masa.db"))
        );
        assert_eq!(loaded.signer_key, dir.path().join("masa-signer.key.pem"));
        assert_eq!(loaded.nonceless_lifetime(), time::Duration::seconds(77));
        assert_eq!(
            loaded.metrics_addr(),
            Ok(Some(DEFAULT_METRICS_LISTEN.parse().expect("addr")))
        );
    }

    #[test]
    fn minimal_config_takes_the_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "masa-url = \"localhost:9443\"\n").expect("write");
        let loaded = MasaConfig::load(&path).expect("load");
        assert_eq!(loaded.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(loaded.ownership, Ownership::LogOnly);
        assert_eq!(loaded.nonceless_voucher_lifetime, 1200);
        assert_eq!(loaded.tls_cert, dir.path().join("masa-tls.crt.pem"));
        assert_eq!(loaded.metrics_addr(), Ok(None));
    }

    #[test]
    fn invalid_configs_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        for (text, needle) in [
            ("masa-url = \"x:1\"\nownership = \"anyone\"\n", "ownership"),
            (
                "masa-url = \"x:1\"\nnonceless-voucher-lifetime = 0\n",
                "lifetime",
            ),
            ("masa-url = \"x:1\"\nsurprise = 1\n", "surprise"),
            (
                "masa-url = \"x:1\"\nnonceless-voucher-lifetime = 9223372036854775807\n",
                "nonceless-voucher-lifetime = 9223372036854775807 is out of range",
            ),
            (
                "masa-url = \"x:1\"\nrequire-client-cert = \"yes\"\n",
                "require-client-cert",
            ),
            ("masa-url = \"has space\"\n", "masa-url"),
            ("listen = \"nowhere\"\nmasa-url = \"x:1\"\n", "listen"),
            (
                "masa-url = \"x:1\"\nmetrics-listen = \"localhost\"\n",
                "metrics-listen",
            ),
        ] {
            std::fs::write(&path, text).expect("write");
            let err = MasaConfig::load(&path).expect_err(text);
            assert!(
                matches!(err, ConfigError::Invalid { .. }),
                "{text}: {err:?}"
            );
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn masa_url_is_host_and_listen_port() {
        let listen: SocketAddr = "0.0.0.0:9443".parse().expect("addr");
        assert_eq!(default_masa_url("localhost", listen), "localhost:9443");
        assert_eq!(default_masa_url("10.0.0.1", listen), "10.0.0.1:9443");
        assert_eq!(default_masa_url("::1", listen), "[::1]:9443");
    }
}
