//! `registrar.toml`: what `registrar init` writes and `registrar serve` reads. Relative paths
//! are relative to the file's directory.

use brski_service::config::{ConfigError, Database, load, resolve};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What happens to a pledge of a known manufacturer that is neither allowed nor denied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Accept {
    /// Request a voucher at once (RFC 8995 §7.3: "accept all devices"), a reduced-security
    /// mode that must be chosen explicitly.
    Auto,
    /// Answer 202 + Retry-After until an administrator allows the serial (RFC 8995 §5.6);
    /// the default.
    #[default]
    Pending,
}

impl Accept {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Pending => "pending",
        }
    }
}

/// What the registrar does about attestation for one manufacturer's pledges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttestationMode {
    /// Nothing asked, nothing appraised.
    #[default]
    Off,
    /// Evidence asked for and appraised; the LDevID is issued whatever the result, which is
    /// stored with it.
    Record,
    /// Evidence asked for; without valid evidence nothing is issued (403 naming the failed
    /// check) and the refusal is stored.
    Require,
}

impl AttestationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Record => "record",
            Self::Require => "require",
        }
    }
}

/// The PCR reference file of a manufacturer (TOML):
///
/// ```toml
/// pcrs = [0, 1, 2, 3, 4, 5, 6, 7]   # SHA-256 bank, asked for in /csrattrs
/// [[set]]
/// name = "firmware 1.4"
/// values = ["<64 hex digits>", ...] # one per PCR, in ascending PCR order
/// ```
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct PcrReferenceFile {
    pcrs: Vec<u16>,
    #[serde(default, rename = "set")]
    sets: Vec<PcrReferenceSet>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct PcrReferenceSet {
    name: String,
    values: Vec<String>,
}

/// Read a PCR reference file; the error names the file and what is wrong.
pub fn load_pcr_policy(path: &Path) -> Result<brski_common::attest::enroll::PcrPolicy, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("pcr-reference {}: {e}", path.display()))?;
    let file: PcrReferenceFile =
        toml::from_str(&text).map_err(|e| format!("pcr-reference {}: {e}", path.display()))?;
    let bad = |what: String| format!("pcr-reference {}: {what}", path.display());
    if file.pcrs.is_empty() {
        return Err(bad("pcrs is empty".into()));
    }
    if let Some(p) = file.pcrs.iter().find(|p| **p > 23) {
        return Err(bad(format!(
            "PCR {p} is beyond the 24 of a TPM 2.0 PC bank"
        )));
    }
    if file.sets.is_empty() {
        return Err(bad("no [[set]] of accepted values".into()));
    }
    let sets = file
        .sets
        .into_iter()
        .map(|s| {
            let values = s
                .values
                .iter()
                .map(|v| hex::decode(v).map_err(|e| bad(format!("set {:?}: {e}", s.name))))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((s.name, values))
        })
        .collect::<Result<Vec<_>, String>>()?;
    brski_common::attest::enroll::PcrPolicy::new(file.pcrs, sets).map_err(|e| bad(e.to_string()))
}

/// One manufacturer whose IDevIDs may connect (RFC 8995 §5.3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Manufacturer {
    /// The manufacturer CA certificate(s) (PEM): trust anchors for IDevIDs (and for vouchers
    /// unless `voucher-ca` is set).
    pub ca: PathBuf,
    /// Trust anchors for this manufacturer's MASA voucher signatures (RFC 8995 §5.6);
    /// absent = `ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voucher_ca: Option<PathBuf>,
    /// MASA URL (`host:port` or a full URI) for IDevIDs without the MASA URL extension
    /// (RFC 8995 §2.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masa_url: Option<String>,
    /// Use `masa-url` even for IDevIDs that carry the MASA URL extension (RFC 8995 §5.4: the
    /// registrar MAY be configured with a MASA URL per manufacturer).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub masa_url_overrides: bool,
    /// Accept this manufacturer's IDevIDs past their notAfter (RFC 8995 §2.6.2); absent = the
    /// global `allow-expired-idevid`. notBefore is always checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_expired_idevid: Option<bool>,
    /// Where this manufacturer's IDevIDs carry the serial number (RFC 8995 §2.3.1).
    #[serde(default, skip_serializing_if = "is_default_serial_source")]
    pub serial_number_from: brski_common::pki::ext::SerialNumberSource,
    /// Attested enrollment of this manufacturer's pledges (SPEC §9): `off` (default),
    /// `record` or `require`.
    #[serde(default, skip_serializing_if = "is_attestation_off")]
    pub attestation: AttestationMode,
    /// PCR reference values (TOML, see `attestation::load_pcr_policy`): the PCRs the
    /// pledge is to quote and the accepted sets of their values. Absent: no quote is asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcr_reference: Option<PathBuf>,
}

fn is_attestation_off(m: &AttestationMode) -> bool {
    *m == AttestationMode::Off
}

fn is_default_serial_source(s: &brski_common::pki::ext::SerialNumberSource) -> bool {
    *s == brski_common::pki::ext::SerialNumberSource::default()
}

/// How the registrar talks to one MASA (RFC 8995 §5.4), selected by the MASA's base URI.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MasaSettings {
    /// The MASA URL as in the IDevID (`host:port` or `https://host:port/.well-known/brski`).
    pub url: String,
    /// CA certificate(s) for this MASA's TLS server certificate; absent = `masa-ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// TLS client certificate (chain, PEM) and key; absent = the registrar's own (which
    /// carries id-kp-clientAuth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// HTTP Basic credentials (RFC 7617) for a sales-integrated MASA; sent only over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// The audit-log check before enrollment (RFC 8995 §5.8.3, §11.4), `[audit-log]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AuditLogPolicy {
    /// Fetch the audit log after a successful voucher_status (RFC 8995 §5.8); `false` skips
    /// the check.
    #[serde(default = "default_true")]
    pub fetch: bool,
    /// How many other domains may appear in the log (prior owners).
    #[serde(default)]
    pub max_prior_owners: u32,
    /// Whether other domains' nonceless entries are tolerated (RFC 8995 §5.8.3: a nonceless
    /// voucher for another domain can be used at any time).
    #[serde(default)]
    pub allow_nonceless_entries: bool,
    /// Whether the log must show this domain's own entry.
    #[serde(default = "default_true")]
    pub require_own_entry: bool,
}

impl Default for AuditLogPolicy {
    fn default() -> Self {
        Self {
            fetch: true,
            max_prior_owners: 0,
            allow_nonceless_entries: false,
            require_own_entry: true,
        }
    }
}

/// What `/csrattrs` asks of a pledge's CSR beyond the key type (RFC 7030 §4.5, RFC 8995
/// §5.9.2), `[csr-attributes]`. Each name is a template: `{serial}` becomes the pledge's serial
/// number. The names are asked for in an extensionRequest subjectAltName, checked in every
/// `/simpleenroll` CSR (400 naming what is missing) and put into the LDevID.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CsrAttributes {
    /// The ACP node name (RFC 8994 §6.2.2), an otherName AcpNodeName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acp_node_name: Option<String>,
    /// dNSName entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// rfc822Name entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rfc822_names: Vec<String>,
    /// RFC 7030 §3.5: every CSR must carry the TLS channel binding (RFC 9266 `tls-exporter`,
    /// base64) as challengePassword; `/csrattrs` then lists challengePassword. A CSR that
    /// carries one is checked whatever this says.
    #[serde(default)]
    pub require_pop_linking: bool,
}

/// The subjectAltName entries of `[csr-attributes]` for the pledge `serial`.
pub fn csr_alt_names(
    c: &CsrAttributes,
    serial: &str,
) -> Result<Vec<x509_cert::ext::pkix::name::GeneralName>, brski_common::pki::PkiError> {
    use brski_common::pki::profile::{acp_node_name, alt_names, rfc822_name};
    let fill = |t: &String| t.replace("{serial}", serial);
    let mut names = Vec::new();
    if let Some(t) = &c.acp_node_name {
        names.push(acp_node_name(&fill(t))?);
    }
    for t in &c.dns_names {
        let name = fill(t);
        if !brski_common::pki::profile::is_dns_name(&name) {
            return Err(brski_common::pki::PkiError::InvalidField {
                field: "dNSName",
                reason: format!("{name:?} is not a DNS name"),
            });
        }
        names.extend(alt_names(&[&name], &[])?);
    }
    for t in &c.rfc822_names {
        names.push(rfc822_name(&fill(t))?);
    }
    Ok(names)
}

/// When a stored nonceless voucher (RFC 8995 §7.2) is relayed to a pledge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UseNonceless {
    /// Only when the MASA cannot be reached.
    #[default]
    WhenMasaUnreachable,
    /// Always, without asking the MASA.
    Always,
    /// Never.
    Never,
}

impl UseNonceless {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WhenMasaUnreachable => "when-masa-unreachable",
            Self::Always => "always",
            Self::Never => "never",
        }
    }
}

/// `registrar.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RegistrarConfig {
    /// HTTPS listener address (BRSKI-EST and EST, RFC 8995 §5.1).
    pub listen: SocketAddr,
    /// CoAPS listener address (cBRSKI, RFC 9148; DTLS 1.2), e.g. `[::]:5684`; empty or absent:
    /// no CoAPS listener.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub coaps_listen: String,
    /// JPY listener address: JPY messages of stateless constrained join proxies (CJP §4.4,
    /// §4.5) carrying the DTLS of the pledges behind them; empty or absent: none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jpy_listen: String,
    /// Address of the metrics listener (plain HTTP, `GET /metrics`), or `off`; absent: off.
    #[serde(default = "off")]
    pub metrics_listen: String,
    /// Address of the CRL listener (plain HTTP, `GET` at the path of `crl-url`, else `/crl`),
    /// or `off`; absent: off.
    #[serde(default = "off")]
    pub crl_listen: String,
    /// The CRL distribution point written into every LDevID (RFC 5280 §4.2.1.13), an
    /// `http://` URL; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_url: Option<String>,
    /// Hours from a CRL's thisUpdate to its nextUpdate (RFC 5280 §5.1.2.5).
    #[serde(default = "default_crl_validity_hours")]
    pub crl_validity_hours: u32,
    /// The owner's domain name.
    pub domain: String,
    /// Pledge acceptance policy.
    #[serde(default)]
    pub accept: Accept,
    /// Retry-After (seconds) sent with 202 for pending pledges (RFC 8995 §5.6).
    #[serde(default = "default_retry_after")]
    pub retry_after: u32,
    /// The registrar certificate (id-kp-cmcRA) and its key.
    pub registrar_cert: PathBuf,
    pub registrar_key: PathBuf,
    /// The domain CA certificate and key (pinned by vouchers, issues LDevIDs).
    pub domain_ca_cert: PathBuf,
    pub domain_ca_key: PathBuf,
    /// CA(s) that issued the MASAs' TLS certificates; absent = the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masa_ca: Option<PathBuf>,
    /// Where the state is: an SQLite file (one instance), or a `postgres://` URL (several
    /// instances sharing it).
    pub database: Database,
    /// With PostgreSQL over TLS (`?sslmode=require`): the CA certificates (PEM) the database
    /// server's certificate must validate under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_ca: Option<PathBuf>,
    /// Timeout of one voucher request to a MASA, in seconds.
    #[serde(default = "default_masa_timeout")]
    pub masa_timeout: u32,
    /// LDevID validity in days.
    #[serde(default = "default_ldevid_days")]
    pub ldevid_validity_days: u32,
    /// LDevID subject (RFC 4514), `{serial}` replaced by the pledge's serial number; absent =
    /// the CSR subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldevid_subject: Option<String>,
    /// Whether a `/simpleenroll` CSR subject must equal the IDevID subject.
    #[serde(default = "default_true")]
    pub csr_subject_must_match_idevid: bool,
    /// Accept IDevIDs past their notAfter (RFC 8995 §2.6.2).
    #[serde(default = "default_true")]
    pub allow_expired_idevid: bool,
    /// The manufacturers whose IDevIDs may connect.
    #[serde(default, rename = "manufacturer")]
    pub manufacturers: Vec<Manufacturer>,
    /// When stored nonceless vouchers are relayed (RFC 8995 §7.2).
    #[serde(default)]
    pub use_nonceless_vouchers: UseNonceless,
    /// Per-MASA client settings (RFC 8995 §5.4).
    #[serde(default, rename = "masa", skip_serializing_if = "Vec::is_empty")]
    pub masas: Vec<MasaSettings>,
    /// The audit-log check (RFC 8995 §5.8.3).
    #[serde(default)]
    pub audit_log: AuditLogPolicy,
    /// What `/csrattrs` asks for and every CSR is checked against (RFC 7030 §4.5).
    #[serde(default)]
    pub csr_attributes: CsrAttributes,
}

/// The metrics listen address `registrar init` writes: loopback (the MASA's is 9465).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

fn off() -> String {
    "off".into()
}
fn default_crl_validity_hours() -> u32 {
    24
}

/// The path of the CRL on `crl-listen` when `crl-url` names none.
pub const DEFAULT_CRL_PATH: &str = "/crl";
/// `crl-validity-hours`: an hour to a year.
pub const CRL_VALIDITY_HOURS_RANGE: std::ops::RangeInclusive<u32> = 1..=8784;
fn default_retry_after() -> u32 {
    5
}
fn default_masa_timeout() -> u32 {
    30
}
fn default_ldevid_days() -> u32 {
    365
}
fn default_true() -> bool {
    true
}

/// A UDP listener address `text` of key `key`: `None` when empty, `Err` when not an address
/// with a port from 1 to 65535.
fn udp_listen(key: &str, text: &str, port_hint: &str) -> Result<Option<SocketAddr>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<SocketAddr>() {
        Ok(a) if a.port() == 0 => Err(format!(
            "{key} {text:?}: the port must be 1 to 65535 ({port_hint})"
        )),
        Ok(a) => Ok(Some(a)),
        Err(e) => Err(format!(
            "{key} {text:?} is not an address:port such as \"[::]:5684\" ({e})"
        )),
    }
}

impl RegistrarConfig {
    /// The CoAPS listener address, `None` when off; `Err` when `coaps-listen` is not an
    /// address with a port from 1 to 65535.
    pub fn coaps_addr(&self) -> Result<Option<SocketAddr>, String> {
        udp_listen("coaps-listen", &self.coaps_listen, "CoAPS: 5684")
    }

    /// The JPY listener address, `None` when off (CJP has no default port).
    pub fn jpy_addr(&self) -> Result<Option<SocketAddr>, String> {
        let jpy = udp_listen("jpy-listen", &self.jpy_listen, "no default")?;
        if jpy.is_some() && self.coaps_addr()?.is_none() {
            return Err("jpy-listen needs coaps-listen (JPY carries the CoAPS sessions)".into());
        }
        Ok(jpy)
    }

    /// The metrics listener address, `None` when `metrics-listen` is `off`.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, String> {
        brski_service::metrics::parse_listen(&self.metrics_listen)
    }

    /// The CRL listener address, `None` when `crl-listen` is `off`.
    pub fn crl_addr(&self) -> Result<Option<SocketAddr>, String> {
        brski_service::config::listen_or_off("crl-listen", &self.crl_listen)
    }

    /// The path `crl-listen` serves the CRL at: that of `crl-url`, else [`DEFAULT_CRL_PATH`].
    pub fn crl_path(&self) -> String {
        match self.crl_url.as_deref().and_then(|u| crl_url_path(u).ok()) {
            Some(path) => path.to_string(),
            None => DEFAULT_CRL_PATH.into(),
        }
    }

    /// Load `registrar.toml`, check it ([`RegistrarConfig::validate`]) and resolve its paths
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let c = Self::load_unchecked(path)?;
        let problems = c.validate();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                reason: problems.join("; "),
            });
        }
        Ok(c)
    }

    /// Parse `registrar.toml` and resolve its paths, without checking the values.
    pub fn load_unchecked(path: &Path) -> Result<Self, ConfigError> {
        let mut c: Self = load(path)?;
        c.registrar_cert = resolve(path, &c.registrar_cert);
        c.registrar_key = resolve(path, &c.registrar_key);
        c.domain_ca_cert = resolve(path, &c.domain_ca_cert);
        c.domain_ca_key = resolve(path, &c.domain_ca_key);
        c.masa_ca = c.masa_ca.map(|p| resolve(path, &p));
        c.database = c.database.resolved(path);
        c.database_ca = c.database_ca.map(|p| resolve(path, &p));
        for m in &mut c.manufacturers {
            m.ca = resolve(path, &m.ca);
            m.voucher_ca = m.voucher_ca.take().map(|p| resolve(path, &p));
            m.pcr_reference = m.pcr_reference.take().map(|p| resolve(path, &p));
        }
        for m in &mut c.masas {
            m.ca = m.ca.take().map(|p| resolve(path, &p));
            m.client_cert = m.client_cert.take().map(|p| resolve(path, &p));
            m.client_key = m.client_key.take().map(|p| resolve(path, &p));
        }
        Ok(c)
    }
}

/// Escape a value for an RFC 4514 string (§2.4).
fn escape_rfc4514(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, ch) in value.chars().enumerate() {
        let special = matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (ch == '#' || ch == ' '))
            || (i == last && ch == ' ');
        if special {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The LDevID subject for `serial` from an `ldevid-subject` template.
pub fn subject_from_template(
    template: &str,
    serial: &str,
) -> Result<x509_cert::name::Name, brski_common::pki::NameError> {
    brski_common::pki::parse_name(&template.replace("{serial}", &escape_rfc4514(serial)))
}

/// Quote `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The commented `registrar.toml` that `registrar init` writes.
pub fn render(c: &RegistrarConfig) -> String {
    let path = |p: &Path| toml_string(&p.to_string_lossy());
    let mut out = String::new();
    out.push_str(
        "# registrar.toml: BRSKI registrar (RFC 8995) configuration, written by `registrar init`.\n\
         # Relative paths are relative to this file's directory.\n\n",
    );
    out.push_str(&format!(
        "# Address of the HTTPS listener for pledges (BRSKI-EST, RFC 8995 §5.1) and EST (RFC 7030).\n\
         listen = {}\n\n",
        toml_string(&c.listen.to_string())
    ));
    out.push_str(&format!(
        "# Address of the CoAPS listener (DTLS 1.2) for constrained pledges: cBRSKI /.well-known/brski\n\
         # and EST-coaps /.well-known/est (RFC 9148). Empty: no CoAPS listener.\n\
         coaps-listen = {}\n\n",
        toml_string(&c.coaps_listen)
    ));
    out.push_str(&format!(
        "# Address of the JPY listener for stateless constrained join proxies (CJP §4.4): their\n\
         # JPY messages carry the DTLS of the pledges behind them. Empty: none.\n\
         jpy-listen = {}\n\n",
        toml_string(&c.jpy_listen)
    ));
    out.push_str(&format!(
        "# Address of the Prometheus metrics listener (plain HTTP, GET /metrics), apart from the\n\
         # pledges' listeners; loopback by default, as it has no authentication. \"off\" (or no\n\
         # such key): none. Port 0 picks a free port, logged at start.\n\
         metrics-listen = {}\n\n",
        toml_string(&c.metrics_listen)
    ));
    out.push_str(&format!(
        "# Address of the CRL listener (plain HTTP): the domain CA's CRL of the revoked and\n\
         # superseded LDevIDs (RFC 5280 §5), at the path of crl-url (else /crl). \"off\" (or no\n\
         # such key): none. The HTTPS listener serves it too, at /.well-known/est/crl.\n\
         crl-listen = {}\n\n",
        toml_string(&c.crl_listen)
    ));
    match &c.crl_url {
        Some(url) => out.push_str(&format!(
            "# The CRL distribution point written into every LDevID (RFC 5280 §4.2.1.13): the\n\
             # http:// URL at which relying parties fetch the CRL (normally crl-listen's).\n\
             crl-url = {}\n\n",
            toml_string(url)
        )),
        None => out.push_str(
            "# The CRL distribution point written into every LDevID (RFC 5280 §4.2.1.13): the\n\
             # http:// URL at which relying parties fetch the CRL (normally crl-listen's).\n\
             # Absent: LDevIDs name none.\n\
             # crl-url = \"http://registrar.example:8080/crl\"\n\n",
        ),
    }
    out.push_str(&format!(
        "# Hours from a CRL's thisUpdate to its nextUpdate. A new CRL is signed after half of\n\
         # them, or at the first fetch after a revocation.\n\
         crl-validity-hours = {}\n\n",
        c.crl_validity_hours
    ));
    out.push_str(&format!(
        "# The owner's domain name (registrar certificate subject and subjectAltName).\n\
         domain = {}\n\n",
        toml_string(&c.domain)
    ));
    out.push_str(&format!(
        "# Pledges of a known manufacturer that are neither allowed nor denied:\n\
         #   \"pending\" (the default) answer 202 + Retry-After until\n\
         #             `registrar pledges allow SERIAL`;\n\
         #   \"auto\"    request a voucher from the MASA at once for every device of a configured\n\
         #             manufacturer: RFC 8995 §7.3 \"accept all devices\", a reduced-security mode\n\
         #             in which anyone holding such a device (stolen, or meant for another owner)\n\
         #             can join this domain. Choose it only where that is acceptable.\n\
         # `registrar pledges deny SERIAL` refuses a pledge (404, RFC 8995 §5.3).\n\
         accept = {}\n\n",
        toml_string(c.accept.as_str())
    ));
    out.push_str(&format!(
        "# Retry-After seconds sent with 202 to pending pledges (they wait at most 60 s, RFC 8995 §5.6).\n\
         retry-after = {}\n\n",
        c.retry_after
    ));
    out.push_str(&format!(
        "# This registrar's certificate (id-kp-cmcRA, RFC 8995 §5.5.4) and key: the TLS server\n\
         # identity for pledges and the signer of registrar voucher-requests.\n\
         registrar-cert = {}\n\
         registrar-key = {}\n\n",
        path(&c.registrar_cert),
        path(&c.registrar_key)
    ));
    out.push_str(&format!(
        "# The domain CA: pinned by vouchers (RFC 8995 §5.6), issues LDevIDs (RFC 8995 §5.9.3).\n\
         domain-ca-cert = {}\n\
         domain-ca-key = {}\n\n",
        path(&c.domain_ca_cert),
        path(&c.domain_ca_key)
    ));
    match &c.masa_ca {
        Some(p) => out.push_str(&format!(
            "# CA certificate(s) that issued the MASAs' TLS certificates (RFC 8995 §5.4).\n\
             # Remove this line to verify MASAs against the system roots instead.\n\
             masa-ca = {}\n\n",
            path(p)
        )),
        None => out.push_str(
            "# CA certificate(s) that issued the MASAs' TLS certificates (RFC 8995 §5.4).\n\
             # Absent: MASAs are verified against the system roots.\n\
             # masa-ca = \"masa-ca.crt.pem\"\n\n",
        ),
    }
    out.push_str(&format!(
        "# Where pledges, vouchers, telemetry and issued LDevIDs are kept: an SQLite file (one\n\
         # instance), or a PostgreSQL database that several `registrar serve` instances share:\n\
         #   database = \"postgres://registrar@db.example.com/registrar?sslmode=require\"\n\
         # with database-ca naming the CA certificate(s) of the database server.\n\
         database = {}\n\n",
        toml_string(&String::from(c.database.clone()))
    ));
    if let Some(ca) = &c.database_ca {
        out.push_str(&format!("database-ca = {}\n\n", path(ca)));
    }
    out.push_str(&format!(
        "# Timeout of one voucher request to a MASA, in seconds.\n\
         masa-timeout = {}\n\n",
        c.masa_timeout
    ));
    out.push_str(&format!(
        "# Validity of issued LDevIDs, in days.\n\
         ldevid-validity-days = {}\n\n",
        c.ldevid_validity_days
    ));
    match &c.ldevid_subject {
        Some(s) => out.push_str(&format!(
            "# LDevID subject (RFC 4514 string); {{serial}} is replaced by the pledge's serial number.\n\
             ldevid-subject = {}\n\n",
            toml_string(s)
        )),
        None => out.push_str(
            "# LDevID subject (RFC 4514 string); {serial} is replaced by the pledge's serial number.\n\
             # Absent: the subject of the pledge's CSR.\n\
             # ldevid-subject = \"CN={serial},O=example.com\"\n\n",
        ),
    }
    out.push_str(&format!(
        "# Whether the subject of a /simpleenroll CSR must equal the pledge's IDevID subject.\n\
         csr-subject-must-match-idevid = {}\n\n",
        c.csr_subject_must_match_idevid
    ));
    out.push_str(&format!(
        "# Accept IDevIDs past their notAfter date (RFC 8995 §2.6.2).\n\
         allow-expired-idevid = {}\n\n",
        c.allow_expired_idevid
    ));
    out.push_str(&format!(
        "# When a stored nonceless voucher (`registrar vouchers fetch`, RFC 8995 §7.2) is relayed:\n\
         #   \"when-masa-unreachable\", \"always\" (without asking the MASA) or \"never\".\n\
         use-nonceless-vouchers = {}\n\n",
        toml_string(c.use_nonceless_vouchers.as_str())
    ));
    let ca = &c.csr_attributes;
    out.push_str(
        "# What /csrattrs asks of every CSR besides an EC P-256 key signed with ecdsa-with-SHA256\n\
         # (RFC 7030 §4.5, RFC 8995 §5.9.2). A /simpleenroll CSR that does not follow it gets 400\n\
         # naming what is missing; the names are put into the LDevID, and a /simplereenroll CSR\n\
         # must keep the subject and subjectAltName of the LDevID it renews (RFC 7030 §4.2.2).\n\
         # In names, {serial} is the pledge's serial number.\n\
         #   acp-node-name        subjectAltName otherName AcpNodeName (RFC 8994 §6.2.2):\n\
         #                        [32 hex digits or \"0\"][+rsub[+extension]]@acp-domain-name;\n\
         #   dns-names            subjectAltName dNSName entries;\n\
         #   rfc822-names         subjectAltName rfc822Name entries (local-part@domain);\n\
         #   require-pop-linking  RFC 7030 §3.5: every CSR must carry the TLS channel binding\n\
         #                        (RFC 9266 tls-exporter, base64) as its challengePassword; a CSR\n\
         #                        that carries a challengePassword is checked in any case.\n\
         [csr-attributes]\n",
    );
    match &ca.acp_node_name {
        Some(t) => out.push_str(&format!("acp-node-name = {}\n", toml_string(t))),
        None => out.push_str("# acp-node-name = \"0+{serial}@acp.example.net\"\n"),
    }
    let list = |v: &[String]| {
        toml::Value::Array(v.iter().cloned().map(toml::Value::String).collect()).to_string()
    };
    if ca.dns_names.is_empty() {
        out.push_str("# dns-names = [\"{serial}.pledges.example.net\"]\n");
    } else {
        out.push_str(&format!("dns-names = {}\n", list(&ca.dns_names)));
    }
    if ca.rfc822_names.is_empty() {
        out.push_str("# rfc822-names = [\"{serial}@pledges.example.net\"]\n");
    } else {
        out.push_str(&format!("rfc822-names = {}\n", list(&ca.rfc822_names)));
    }
    out.push_str(&format!(
        "require-pop-linking = {}\n\n",
        ca.require_pop_linking
    ));
    let a = &c.audit_log;
    out.push_str(&format!(
        "# The MASA audit-log check (RFC 8995 §5.8.3, §11.4): after a pledge's successful\n\
         # voucher_status the registrar fetches the log from the MASA; EST enrollment is refused\n\
         # (403) when the log breaks this policy. `fetch = false` skips the check.\n\
         #   max-prior-owners        how many other domains may appear in the log;\n\
         #   allow-nonceless-entries whether other domains' nonceless entries are tolerated;\n\
         #   require-own-entry       whether the log must show this domain's voucher.\n\
         [audit-log]\n\
         fetch = {}\n\
         max-prior-owners = {}\n\
         allow-nonceless-entries = {}\n\
         require-own-entry = {}\n\n",
        a.fetch, a.max_prior_owners, a.allow_nonceless_entries, a.require_own_entry
    ));
    out.push_str(
        "# Manufacturers whose IDevIDs may connect, one [[manufacturer]] table each:\n\
         #   ca                   the manufacturer CA certificate(s), trust anchors for IDevIDs\n\
         #                        (and for vouchers unless voucher-ca is set);\n\
         #   voucher-ca           trust anchors for this manufacturer's vouchers (RFC 8995 §5.6);\n\
         #   masa-url             MASA for IDevIDs without the MASA URL extension (RFC 8995 §2.8),\n\
         #                        \"host:port\";\n\
         #   masa-url-overrides   true: use masa-url even when the IDevID names a MASA (§5.4);\n\
         #   allow-expired-idevid this manufacturer's value of allow-expired-idevid (§2.6.2);\n\
         #   serial-number-from   where its IDevIDs carry the serial number (§2.3.1):\n\
         #                        \"subject-serial-number\" (default), \"subject-common-name\"\n\
         #                        or \"hardware-module-name\" (the SAN's hwSerialNum);\n\
         #   attestation          attested enrollment: \"off\" (default), \"record\" (ask for\n\
         #                        TPM evidence, issue anyway, store the appraisal) or \"require\"\n\
         #                        (no LDevID without valid evidence);\n\
         #   pcr-reference        TOML file of the PCRs to quote and the accepted values.\n",
    );
    for m in &c.manufacturers {
        out.push_str(&format!("[[manufacturer]]\nca = {}\n", path(&m.ca)));
        match &m.voucher_ca {
            Some(p) => out.push_str(&format!("voucher-ca = {}\n", path(p))),
            None => out.push_str("# voucher-ca = \"manufacturers/voucher-ca.crt.pem\"\n"),
        }
        match &m.masa_url {
            Some(u) => out.push_str(&format!("masa-url = {}\n", toml_string(u))),
            None => out.push_str("# masa-url = \"masa.example.com:9443\"\n"),
        }
        if m.masa_url_overrides {
            out.push_str("masa-url-overrides = true\n");
        } else {
            out.push_str("# masa-url-overrides = true\n");
        }
        match m.allow_expired_idevid {
            Some(b) => out.push_str(&format!("allow-expired-idevid = {b}\n")),
            None => out.push_str("# allow-expired-idevid = false\n"),
        }
        if is_default_serial_source(&m.serial_number_from) {
            out.push_str("# serial-number-from = \"subject-serial-number\"\n");
        } else {
            out.push_str(&format!(
                "serial-number-from = {}\n",
                toml_string(m.serial_number_from.as_str())
            ));
        }
        if is_attestation_off(&m.attestation) {
            out.push_str("# attestation = \"require\"\n");
        } else {
            out.push_str(&format!(
                "attestation = {}\n",
                toml_string(m.attestation.as_str())
            ));
        }
        match &m.pcr_reference {
            Some(p) => out.push_str(&format!("pcr-reference = {}\n", path(p))),
            None => out.push_str("# pcr-reference = \"manufacturers/pcr-reference.toml\"\n"),
        }
        out.push('\n');
    }
    out.push_str(
        "# Per-MASA client settings (RFC 8995 §5.4), one [[masa]] table each, selected by url\n\
         # (the MASA URL as the IDevID or masa-url names it):\n\
         #   ca                     CA certificate(s) of this MASA's TLS certificate (default masa-ca);\n\
         #   client-cert/client-key TLS client certificate and key (default: registrar-cert/-key,\n\
         #                          which carry id-kp-clientAuth);\n\
         #   username/password      HTTP Basic credentials for a sales-integrated MASA (TLS only).\n",
    );
    if c.masas.is_empty() {
        out.push_str(
            "# [[masa]]\n# url = \"masa.example.com:9443\"\n# ca = \"masa-ca.crt.pem\"\n\
             # username = \"registrar\"\n# password = \"secret\"\n",
        );
    }
    for m in &c.masas {
        out.push_str(&format!("[[masa]]\nurl = {}\n", toml_string(&m.url)));
        for (key, value) in [
            ("ca", &m.ca),
            ("client-cert", &m.client_cert),
            ("client-key", &m.client_key),
        ] {
            if let Some(p) = value {
                out.push_str(&format!("{key} = {}\n", path(p)));
            }
        }
        for (key, value) in [("username", &m.username), ("password", &m.password)] {
            if let Some(v) = value {
                out.push_str(&format!("{key} = {}\n", toml_string(v)));
            }
        }
        out.push('\n');
    }
    out
}

/// Allowed range of `retry-after`, seconds (RFC 8995 §5.6: the pledge waits at most 60 s
/// between attempts anyway; 0 would make it spin).
pub const RETRY_AFTER_RANGE: std::ops::RangeInclusive<u32> = 1..=3600;
/// Allowed range of `masa-timeout`, seconds.
pub const MASA_TIMEOUT_RANGE: std::ops::RangeInclusive<u32> = 1..=3600;
/// Allowed range of `ldevid-validity-days`: at least a day, at most 100 years (a notAfter that
/// stays far from the end of the X.509 GeneralizedTime range).
pub const LDEVID_VALIDITY_DAYS_RANGE: std::ops::RangeInclusive<u32> = 1..=36500;

/// The path of `crl-url`, which must be an `http://` URL with a host and a path: relying
/// parties fetch CRLs over plain HTTP (RFC 5280 §4.2.1.13; RFC 8995 §5.5.3 checks these).
pub fn crl_url_path(url: &str) -> Result<&str, String> {
    let (_, path) = brski_service::crl::http_uri_parts(url).map_err(|e| {
        format!("must be an http:// URL (relying parties fetch CRLs over plain HTTP): {e}")
    })?;
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if path.is_empty() || path == "/" {
        return Err("has no path (such as http://registrar.example:8080/crl)".into());
    }
    Ok(path)
}

fn out_of_range(key: &str, value: u32, range: &std::ops::RangeInclusive<u32>) -> Option<String> {
    (!range.contains(&value)).then(|| {
        format!(
            "{key} = {value} is out of range {}..={}",
            range.start(),
            range.end()
        )
    })
}

impl RegistrarConfig {
    /// Every problem of the values themselves (ranges, templates, URLs), one line each, so
    /// that nothing panics at request time. Files are checked by `registrar check-config`.
    pub fn validate(&self) -> Vec<String> {
        let mut problems: Vec<String> = [
            out_of_range("retry-after", self.retry_after, &RETRY_AFTER_RANGE),
            out_of_range("masa-timeout", self.masa_timeout, &MASA_TIMEOUT_RANGE),
            out_of_range(
                "ldevid-validity-days",
                self.ldevid_validity_days,
                &LDEVID_VALIDITY_DAYS_RANGE,
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Err(e) = self.coaps_addr() {
            problems.push(e);
        } else if let Err(e) = self.jpy_addr() {
            problems.push(e);
        }
        if let Err(e) = self.metrics_addr() {
            problems.push(e);
        }
        if let Err(e) = self.crl_addr() {
            problems.push(e);
        }
        if let Some(url) = &self.crl_url {
            if let Err(e) = crl_url_path(url) {
                problems.push(format!("crl-url {url:?}: {e}"));
            }
        }
        problems.extend(out_of_range(
            "crl-validity-hours",
            self.crl_validity_hours,
            &CRL_VALIDITY_HOURS_RANGE,
        ));
        if self.manufacturers.is_empty() {
            problems.push("at least one [[manufacturer]] is required".into());
        }
        if self.domain.trim().is_empty() {
            problems.push("domain must not be empty".into());
        }
        if let Some(template) = &self.ldevid_subject {
            if let Err(e) = subject_from_template(template, "serial") {
                problems.push(format!("ldevid-subject: {e}"));
            }
        }
        // A serial of letters, digits and a hyphen, as IDevIDs carry them: a template that
        // fails with it is wrong whatever the pledge.
        if let Err(e) = csr_alt_names(&self.csr_attributes, "SN-0001") {
            problems.push(format!("[csr-attributes]: {e}"));
        }
        for m in &self.manufacturers {
            if let Some(url) = &m.masa_url {
                if let Err(e) = brski_common::pki::ext::masa_base_uri(url) {
                    problems.push(format!("manufacturer masa-url {url:?}: {e}"));
                }
            }
            if m.masa_url_overrides && m.masa_url.is_none() {
                problems.push("manufacturer masa-url-overrides = true needs a masa-url".into());
            }
            if m.pcr_reference.is_some() && m.attestation == AttestationMode::Off {
                problems.push(
                    "manufacturer pcr-reference needs attestation = \"record\" or \"require\""
                        .into(),
                );
            }
        }
        for m in &self.masas {
            if let Err(e) = brski_common::pki::ext::masa_base_uri(&m.url) {
                problems.push(format!("[[masa]] url {:?}: {e}", m.url));
            }
            if m.client_cert.is_some() != m.client_key.is_some() {
                problems.push(format!(
                    "[[masa]] {}: client-cert and client-key go together",
                    m.url
                ));
            }
            if m.username.is_some() != m.password.is_some() {
                problems.push(format!(
                    "[[masa]] {}: username and password go together",
                    m.url
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RegistrarConfig {
        RegistrarConfig {
            listen: "127.0.0.1:8443".parse().expect("addr"),
            coaps_listen: "[::]:5684".into(),
            jpy_listen: String::new(),
            metrics_listen: DEFAULT_METRICS_LISTEN.into(),
            crl_listen: "[::]:8080".into(),
            crl_url: Some("http://registrar.example.com:8080/crl/domain.crl".into()),
            crl_validity_hours: 12,
            domain: "example.com".into(),
            accept: Accept::Pending,
            retry_after: 7,
            registrar_cert: "registrar.crt.pem".into(),
            registrar_key: "registrar.key.pem".into(),
            domain_ca_cert: "domain-ca.crt.pem".into(),
            domain_ca_key: "domain-ca.key.pem".into(),
            masa_ca: Some("masa-ca.crt.pem".into()),
            database: Database::Sqlite("registrar.db".into()),
            database_ca: None,
            masa_timeout: 30,
            ldevid_validity_days: 90,
            ldevid_subject: Some("CN={serial},O=Example \"Inc\"".into()),
            csr_subject_must_match_idevid: false,
            allow_expired_idevid: true,
            manufacturers: vec![
                Manufacturer {
                    ca: "manufacturers/0.crt.pem".into(),
                    voucher_ca: Some("manufacturers/0.voucher.pem".into()),
                    masa_url: Some("masa.example:9443".into()),
                    masa_url_overrides: true,
                    allow_expired_idevid: Some(false),
                    serial_number_from:
                        brski_common::pki::ext::SerialNumberSource::HardwareModuleName,
                    attestation: AttestationMode::Require,
                    pcr_reference: Some("manufacturers/0.pcrs.toml".into()),
                },
                Manufacturer {
                    ca: "manufacturers/1.crt.pem".into(),
                    ..Manufacturer::default()
                },
            ],
            use_nonceless_vouchers: UseNonceless::Always,
            masas: vec![MasaSettings {
                url: "masa.example:9443".into(),
                ca: Some("masa.pem".into()),
                client_cert: Some("c.pem".into()),
                client_key: Some("k.pem".into()),
                username: Some("u".into()),
                password: Some("p\"w".into()),
            }],
            audit_log: AuditLogPolicy {
                fetch: false,
                max_prior_owners: 2,
                allow_nonceless_entries: true,
                require_own_entry: false,
            },
            csr_attributes: CsrAttributes {
                acp_node_name: Some("fd89b714f3db00000200000064000000+{serial}@acp.example".into()),
                dns_names: vec!["{serial}.pledges.example".into()],
                rfc822_names: vec!["{serial}@pledges.example".into()],
                require_pop_linking: true,
            },
        }
    }

    #[test]
    fn rendered_file_parses_back_to_the_same_values() {
        let c = sample();
        let text = render(&c);
        let back: RegistrarConfig = toml::from_str(&text).expect("parses");
        assert_eq!(back, c);
        // Every key is documented by a comment line above it.
        for key in [
            "listen =",
            "coaps-listen =",
            "metrics-listen =",
            "accept =",
            "retry-after =",
            "masa-ca =",
            "ldevid-validity-days =",
            "allow-expired-idevid =",
            "use-nonceless-vouchers =",
            "[audit-log]",
            "[csr-attributes]",
            "[[masa]]",
        ] {
            let i = text.find(key).expect("key present");
            assert!(
                text[..i]
                    .trim_end()
                    .lines()
                    .last()
                    .is_some_and(|l| l.starts_with('#'))
            );
        }
    }

    #[test]
    fn defaults_apply_when_keys_are_absent() {
        let text = "listen = \"127.0.0.1:1\"\ndomain = \"d\"\nregistrar-cert = \"a\"\n\
                    registrar-key = \"b\"\ndomain-ca-cert = \"c\"\ndomain-ca-key = \"d\"\n\
                    database = \"e\"\n[[manufacturer]]\nca = \"m\"\n";
        let c: RegistrarConfig = toml::from_str(text).expect("parses");
        // RFC 8995 §7.3: accepting every device is never the default.
        assert_eq!(c.accept, Accept::Pending);
        assert_eq!(c.retry_after, 5);
        assert_eq!(c.ldevid_validity_days, 365);
        assert!(c.allow_expired_idevid);
        assert!(c.csr_subject_must_match_idevid);
        assert_eq!(c.masa_ca, None);
        assert_eq!(c.ldevid_subject, None);
        // RFC 8995 §5.8.3: the audit log is checked unless configured otherwise.
        assert_eq!(c.audit_log, AuditLogPolicy::default());
        assert!(c.audit_log.fetch && c.audit_log.require_own_entry);
        assert_eq!(c.use_nonceless_vouchers, UseNonceless::WhenMasaUnreachable);
        assert_eq!(c.manufacturers[0].allow_expired_idevid, None);
        // No CoAPS listener unless one is configured.
        assert_eq!(c.coaps_addr(), Ok(None));
        // No metrics listener unless one is configured.
        assert_eq!(c.metrics_addr(), Ok(None));
    }

    #[test]
    fn metrics_listen_is_an_address_or_off() {
        let mut c = sample();
        assert_eq!(
            c.metrics_addr(),
            Ok(Some(DEFAULT_METRICS_LISTEN.parse().expect("addr")))
        );
        c.metrics_listen = "off".into();
        assert_eq!(c.metrics_addr(), Ok(None));
        c.metrics_listen = "localhost:9464".into();
        assert!(c.validate().iter().any(|p| p.starts_with("metrics-listen")));
    }

    #[test]
    fn rfc7252_6_2_coaps_listen_is_an_address_with_a_port() {
        let mut c = sample();
        assert_eq!(c.coaps_addr(), Ok(Some("[::]:5684".parse().expect("addr"))));
        for bad in ["5684", "[::]", "[::]:0", "localhost:5684", "1.2.3.4:99999"] {
            c.coaps_listen = bad.into();
            assert!(c.coaps_addr().is_err(), "{bad}");
            assert!(
                c.validate().iter().any(|p| p.starts_with("coaps-listen")),
                "{bad}"
            );
        }
        c.coaps_listen = " ".into();
        assert_eq!(c.coaps_addr(), Ok(None));
    }

    #[test]
    fn cjp_4_4_jpy_listen_is_an_address_and_needs_coaps() {
        let mut c = sample();
        assert_eq!(c.jpy_addr(), Ok(None));
        c.jpy_listen = "[::]:5685".into();
        assert_eq!(c.jpy_addr(), Ok(Some("[::]:5685".parse().expect("addr"))));
        c.jpy_listen = "[::]:0".into();
        assert!(c.validate().iter().any(|p| p.starts_with("jpy-listen")));
        c.jpy_listen = "[::]:5685".into();
        c.coaps_listen = String::new();
        assert!(
            c.validate()
                .iter()
                .any(|p| p.contains("needs coaps-listen"))
        );
    }

    #[test]
    fn rfc8994_6_2_2_csr_attribute_templates_are_checked_at_load() {
        let mut c = sample();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        for (field, value, problem) in [
            ("acp", "node@", "acp-domain-name is not a DNS name"),
            (
                "acp",
                "123+{serial}@acp.example",
                "acp-address is neither 32 hex digits nor \"0\"",
            ),
            (
                "acp",
                "0+bad_sub@acp.example",
                "rsub is not a DNS subdomain",
            ),
            ("dns", "{serial}..example", "is not a DNS name"),
            ("rfc822", "{serial}", "is not local-part@domain"),
        ] {
            let mut broken = sample();
            match field {
                "acp" => broken.csr_attributes.acp_node_name = Some(value.into()),
                "dns" => broken.csr_attributes.dns_names = vec![value.into()],
                _ => broken.csr_attributes.rfc822_names = vec![value.into()],
            }
            let problems = broken.validate();
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with("[csr-attributes]: ") && p.contains(problem)),
                "{value}: {problems:?}"
            );
        }
        c.csr_attributes = CsrAttributes::default();
        assert!(c.validate().is_empty());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let mut text = render(&sample());
        text.insert_str(0, "colour = \"blue\"\n");
        assert!(toml::from_str::<RegistrarConfig>(&text).is_err());
    }

    #[test]
    fn template_escapes_the_serial() {
        use brski_common::pki::ext::name_serial_number;
        let name = subject_from_template("serialNumber={serial},O=Example", "a,b+c=d")
            .expect("valid template");
        assert_eq!(name_serial_number(&name).as_deref(), Some("a,b+c=d"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn random_toml_never_panics(text in "\\PC{0,400}") {
            let _ = toml::from_str::<RegistrarConfig>(&text);
        }

        #[test]
        fn any_serial_round_trips_through_the_template(serial in "\\PC{1,40}") {
            use brski_common::pki::ext::name_serial_number;
            if let Ok(name) = subject_from_template("serialNumber={serial}", &serial) {
                proptest::prop_assert_eq!(name_serial_number(&name), Some(serial));
            }
        }
    }
}
