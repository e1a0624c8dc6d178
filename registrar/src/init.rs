//! `registrar init`: create the domain CA, the registrar certificate (id-kp-cmcRA, RFC 8995
//! §5.5.4), copy the manufacturer and MASA anchors, write `registrar.toml` and the database.

use crate::config::{Accept, Manufacturer, RegistrarConfig, render};
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::{issue, name_from_parts, profile, self_signed};
use brski_service::config::Database;
use brski_service::files::{certs_to_pem, read_certs, write_atomic};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// `registrar init` arguments.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Directory to create the registrar's files in.
    #[arg(long)]
    pub dir: PathBuf,
    /// The owner's domain name (registrar certificate subject and subjectAltName).
    #[arg(long)]
    pub domain: String,
    /// Manufacturer CA certificate (PEM) whose IDevIDs may connect; repeat for several.
    #[arg(long = "vendor-ca", value_name = "FILE", required = true)]
    pub vendor_ca: Vec<PathBuf>,
    /// CA that issued the MASA's TLS certificate (default: the system roots).
    #[arg(long, value_name = "FILE")]
    pub masa_ca: Option<PathBuf>,
    /// HTTPS listen address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// CoAPS listen address (cBRSKI, RFC 9148); empty for none.
    #[arg(long, default_value = "[::]:5684", value_name = "ADDR")]
    pub coaps_listen: String,
    /// JPY listen address for stateless constrained join proxies (CJP §4.4); none by default.
    #[arg(long, default_value = "", value_name = "ADDR")]
    pub jpy_listen: String,
    /// Prometheus metrics listen address (plain HTTP, GET /metrics), or "off".
    #[arg(long, default_value = crate::config::DEFAULT_METRICS_LISTEN, value_name = "ADDR")]
    pub metrics_listen: String,
    /// CRL listen address (plain HTTP, the domain CA's CRL of revoked LDevIDs), or "off".
    #[arg(long, default_value = "off", value_name = "ADDR")]
    pub crl_listen: String,
    /// The CRL distribution point to write into every LDevID (an http:// URL); none by
    /// default.
    #[arg(long, value_name = "URL")]
    pub crl_url: Option<String>,
    /// What happens to a pledge of a known manufacturer that is not yet allowed: `pending`
    /// (wait for `registrar pledges allow`) or `auto` (accept every device, the reduced-security
    /// mode of RFC 8995 §7.3, never the default).
    #[arg(long, value_enum, default_value_t = Accept::Pending)]
    pub accept: Accept,
}

const KEY_MODE: u32 = 0o600;
const PUBLIC_MODE: u32 = 0o644;

fn write(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    write_atomic(path, data, mode).map_err(|e| e.to_string())
}

fn p256() -> Result<SoftwareKey, String> {
    SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256)
        .map_err(|e| format!("key generation: {e}"))
}

/// Run `registrar init`.
pub fn run(args: &InitArgs) -> Result<PathBuf, String> {
    let dir = &args.dir;
    let config_path = dir.join("registrar.toml");
    if config_path.exists() {
        return Err(format!(
            "{} exists; refusing to overwrite an initialised registrar",
            config_path.display()
        ));
    }
    brski_service::metrics::parse_listen(&args.metrics_listen)?;
    brski_service::config::listen_or_off("crl-listen", &args.crl_listen)?;
    if let Some(url) = &args.crl_url {
        crate::config::crl_url_path(url).map_err(|e| format!("--crl-url {url:?}: {e}"))?;
    }
    // Read every input before writing anything.
    let mut vendors = Vec::new();
    for path in &args.vendor_ca {
        vendors.push(read_certs(path).map_err(|e| e.to_string())?);
    }
    let masa_ca = args
        .masa_ca
        .as_deref()
        .map(read_certs)
        .transpose()
        .map_err(|e| e.to_string())?;
    let domain = args.domain.trim();
    if domain.is_empty() {
        return Err("--domain must not be empty".into());
    }

    let mut dns: Vec<&str> = Vec::new();
    let mut ips: Vec<IpAddr> = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    match domain.parse::<IpAddr>() {
        Ok(ip) if !ips.contains(&ip) => ips.push(ip),
        Ok(_) => {}
        Err(_) => dns.push(domain),
    }
    if !dns.contains(&"localhost") {
        dns.push("localhost");
    }

    let ca_key = p256()?;
    let ca_name = name_from_parts(Some(&format!("{domain} Domain CA")), Some(domain), None)
        .map_err(|e| format!("domain CA name: {e}"))?;
    let ca_params = profile::domain_ca(ca_name).map_err(|e| format!("domain CA: {e}"))?;
    let ca_cert = self_signed(&ca_params, &ca_key).map_err(|e| format!("domain CA: {e}"))?;

    let reg_key = p256()?;
    let reg_name = name_from_parts(Some(&format!("{domain} registrar")), Some(domain), None)
        .map_err(|e| format!("registrar name: {e}"))?;
    let reg_params =
        profile::registrar(reg_name, &dns, &ips).map_err(|e| format!("registrar: {e}"))?;
    let reg_cert = issue(
        &reg_params,
        reg_key.public_key_spki(),
        Some(&ca_cert),
        &ca_key,
    )
    .map_err(|e| format!("registrar certificate: {e}"))?;

    std::fs::create_dir_all(dir.join("manufacturers"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    write(
        &dir.join("domain-ca.key.pem"),
        ca_key.to_pkcs8_pem().as_bytes(),
        KEY_MODE,
    )?;
    write(
        &dir.join("domain-ca.crt.pem"),
        certs_to_pem(std::slice::from_ref(&ca_cert)).as_bytes(),
        PUBLIC_MODE,
    )?;
    write(
        &dir.join("registrar.key.pem"),
        reg_key.to_pkcs8_pem().as_bytes(),
        KEY_MODE,
    )?;
    write(
        &dir.join("registrar.crt.pem"),
        certs_to_pem(std::slice::from_ref(&reg_cert)).as_bytes(),
        PUBLIC_MODE,
    )?;
    let mut manufacturers = Vec::new();
    for (n, certs) in vendors.iter().enumerate() {
        let rel = PathBuf::from(format!("manufacturers/{n}.crt.pem"));
        write(&dir.join(&rel), certs_to_pem(certs).as_bytes(), PUBLIC_MODE)?;
        manufacturers.push(Manufacturer {
            ca: rel,
            ..Manufacturer::default()
        });
    }
    let masa_ca_path = match &masa_ca {
        Some(certs) => {
            write(
                &dir.join("masa-ca.crt.pem"),
                certs_to_pem(certs).as_bytes(),
                PUBLIC_MODE,
            )?;
            Some(PathBuf::from("masa-ca.crt.pem"))
        }
        None => None,
    };
    let config = RegistrarConfig {
        listen: args.listen,
        coaps_listen: args.coaps_listen.clone(),
        jpy_listen: args.jpy_listen.clone(),
        metrics_listen: args.metrics_listen.clone(),
        crl_listen: args.crl_listen.clone(),
        crl_url: args.crl_url.clone(),
        crl_validity_hours: 24,
        domain: domain.to_string(),
        accept: args.accept,
        retry_after: 5,
        registrar_cert: "registrar.crt.pem".into(),
        registrar_key: "registrar.key.pem".into(),
        domain_ca_cert: "domain-ca.crt.pem".into(),
        domain_ca_key: "domain-ca.key.pem".into(),
        masa_ca: masa_ca_path,
        database: Database::Sqlite("registrar.db".into()),
        database_ca: None,
        masa_timeout: 30,
        ldevid_validity_days: 365,
        ldevid_subject: None,
        csr_subject_must_match_idevid: true,
        allow_expired_idevid: true,
        manufacturers,
        use_nonceless_vouchers: Default::default(),
        masas: Vec::new(),
        audit_log: Default::default(),
        csr_attributes: Default::default(),
    };
    crate::server::open_db(&dir.join("registrar.db")).map_err(|e| e.to_string())?;
    // Last: an interrupted init leaves no registrar.toml and can simply be rerun.
    write(&config_path, render(&config).as_bytes(), PUBLIC_MODE)?;
    Ok(config_path)
}
