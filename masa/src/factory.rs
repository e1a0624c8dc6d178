//! The manufacturer's side: `masa init` (vendor CA, voucher signer, TLS certificate, config,
//! database) and `masa mint` (an IEEE 802.1AR IDevID with serialNumber and MASA URL extension,
//! RFC 8995 §2.3, plus the pledge's trust anchor and `pledge.toml`).

use crate::config::{MasaConfig, Ownership, default_masa_url, names};
use crate::db;
use crate::error::MasaError;
use crate::store::Store;
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::ext::idevid_issuer;
use brski_common::pki::{issue, name_from_parts, profile, self_signed};
use brski_service::config::{PledgeConfig, TpmKey};
use brski_service::files::{certs_to_pem, read_certs, read_key, write_atomic};
use der::Encode;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use x509_cert::Certificate;

/// Mode of private key files.
const KEY_MODE: u32 = 0o600;
/// Mode of certificates and configuration.
const PUBLIC_MODE: u32 = 0o644;

/// Files `masa mint` writes into the pledge directory.
pub mod pledge_names {
    pub const IDEVID_CERT: &str = "idevid.crt.pem";
    pub const IDEVID_KEY: &str = "idevid.key.pem";
    pub const IAK_CERT: &str = "iak.crt.pem";
    pub const MANUFACTURER_CA: &str = "manufacturer-ca.crt.pem";
    pub const CONFIG: &str = "pledge.toml";
}

/// What `masa init` is asked for.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub dir: PathBuf,
    pub name: String,
    pub listen: SocketAddr,
    /// `metrics-listen`: an address or `off`.
    pub metrics_listen: String,
    pub masa_url: Option<String>,
    pub ownership: Ownership,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MasaError + '_ {
    move |source| MasaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn new_key() -> Result<SoftwareKey, MasaError> {
    Ok(SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256)?)
}

fn write_cert(path: &Path, cert: &Certificate) -> Result<(), MasaError> {
    write_atomic(
        path,
        certs_to_pem(std::slice::from_ref(cert)).as_bytes(),
        PUBLIC_MODE,
    )?;
    Ok(())
}

fn write_key(path: &Path, key: &SoftwareKey) -> Result<(), MasaError> {
    write_atomic(path, key.to_pkcs8_pem().as_bytes(), KEY_MODE)?;
    Ok(())
}

/// The TLS server names for HOST: dNSName HOST (when it is not an IP address), the address
/// itself when it is one, and the loopback addresses when HOST is `localhost` or an address.
pub fn tls_names(host: &str) -> (Vec<String>, Vec<IpAddr>) {
    let loopback = [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    match host.parse::<IpAddr>() {
        Ok(ip) => {
            let mut ips = vec![ip];
            ips.extend(loopback.into_iter().filter(|l| *l != ip));
            (Vec::new(), ips)
        }
        Err(_) if host.eq_ignore_ascii_case("localhost") => {
            (vec![host.to_string()], loopback.to_vec())
        }
        Err(_) => (vec![host.to_string()], Vec::new()),
    }
}

/// `masa init`: create the vendor CA, the voucher signer and the TLS certificate (all P-256,
/// issued by the vendor CA), the database and `masa.toml` (written last, so its presence means
/// a complete directory). Refuses to overwrite an existing MASA.
pub fn init(opts: &InitOptions) -> Result<PathBuf, MasaError> {
    brski_service::metrics::parse_listen(&opts.metrics_listen).map_err(MasaError::Invalid)?;
    if opts.name.is_empty() || !opts.name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(MasaError::Invalid(format!(
            "--name {:?} is not a host name",
            opts.name
        )));
    }
    let masa_url = opts
        .masa_url
        .clone()
        .unwrap_or_else(|| default_masa_url(&opts.name, opts.listen));
    brski_common::pki::masa_base_uri(&masa_url)?;
    let dir = &opts.dir;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for existing in [names::CONFIG, names::VENDOR_CA_KEY, names::DATABASE] {
        let p = dir.join(existing);
        if p.exists() {
            return Err(MasaError::Exists(p));
        }
    }

    let vendor_key = new_key()?;
    let vendor_name = name_from_parts(Some(&format!("{} Vendor CA", opts.name)), None, None)?;
    let vendor_ca = self_signed(&profile::vendor_ca(vendor_name)?, &vendor_key)?;

    let signer_key = new_key()?;
    let signer_name = name_from_parts(
        Some(&format!("{} MASA voucher signer", opts.name)),
        None,
        None,
    )?;
    let signer = issue(
        &profile::masa_voucher_signer(signer_name)?,
        signer_key.public_key_spki(),
        Some(&vendor_ca),
        &vendor_key,
    )?;

    let tls_key = new_key()?;
    let (dns, ips) = tls_names(&opts.name);
    let dns_refs: Vec<&str> = dns.iter().map(String::as_str).collect();
    let tls_cert = issue(
        &profile::tls_server(&dns_refs, &ips)?,
        tls_key.public_key_spki(),
        Some(&vendor_ca),
        &vendor_key,
    )?;

    write_key(&dir.join(names::VENDOR_CA_KEY), &vendor_key)?;
    write_cert(&dir.join(names::VENDOR_CA_CERT), &vendor_ca)?;
    write_key(&dir.join(names::SIGNER_KEY), &signer_key)?;
    write_cert(&dir.join(names::SIGNER_CERT), &signer)?;
    write_key(&dir.join(names::TLS_KEY), &tls_key)?;
    write_cert(&dir.join(names::TLS_CERT), &tls_cert)?;

    drop(db::open(&dir.join(names::DATABASE))?);

    let mut config = MasaConfig::new(opts.listen, masa_url, opts.ownership);
    config.metrics_listen = opts.metrics_listen.clone();
    let path = dir.join(names::CONFIG);
    write_atomic(&path, config.render().as_bytes(), PUBLIC_MODE)?;
    Ok(path)
}

/// What `masa mint` is asked for.
#[derive(Clone, Debug)]
pub struct MintOptions {
    pub config: PathBuf,
    pub serial: String,
    pub out: PathBuf,
    pub registrar: Option<String>,
    /// Make the IDevID key inside this TPM instead of a key file.
    pub tpm: Option<TpmTarget>,
}

/// Where `masa mint --tpm` makes the IDevID key.
#[derive(Clone, Debug)]
pub struct TpmTarget {
    /// TCTI configuration string (`device:/dev/tpmrm0`, `swtpm:host=H,port=P`, ...).
    pub tcti: String,
    /// Persistent handle to put the key at (`masa mint --tpm-handle`, default 0x81020000: the
    /// TCG DevID guidance leaves the handle to the platform).
    pub handle: u32,
    /// Persistent handle of the IAK (`masa mint --iak-handle`, default 0x81020003).
    pub iak_handle: u32,
}

/// The IDevID key: a software key, or the public keys of the IDevID and IAK made inside a TPM.
enum IdevidKey {
    Software(SoftwareKey),
    Tpm(TpmDeviceKeys),
}

/// The SubjectPublicKeyInfos of the keys `masa mint --tpm` made.
#[derive(Debug)]
struct TpmDeviceKeys {
    idevid: Vec<u8>,
    iak: Vec<u8>,
}

impl IdevidKey {
    fn public_key_spki(&self) -> &[u8] {
        match self {
            Self::Software(k) => k.public_key_spki(),
            Self::Tpm(keys) => &keys.idevid,
        }
    }
}

/// The IDevID key (TCG IDevID template: non-restricted ECDSA P-256 signing key in the
/// Endorsement hierarchy, SPEC §8.2) and the IAK (TCG IAK template: restricted) made inside the
/// TPM and persisted at `target`'s handles, after the IAK has certified the IDevID key
/// (TPM2_Certify, appraised here): the two are in one TPM.
#[cfg(feature = "tpm")]
async fn tpm_device_keys(target: &TpmTarget) -> Result<TpmDeviceKeys, MasaError> {
    use brski_common::keys::tpm::{
        TpmConfig, TpmCurve, create_iak_key, create_idevid_key, prove_same_tpm,
    };
    let target = target.clone();
    tokio::task::spawn_blocking(move || {
        let config = TpmConfig::new(&target.tcti).map_err(|e| MasaError::Invalid(e.to_string()))?;
        let idevid = create_idevid_key(&config, target.handle, TpmCurve::P256)
            .map_err(|e| MasaError::Invalid(format!("IDevID key: {e}")))?;
        create_iak_key(&config, target.iak_handle)
            .map_err(|e| MasaError::Invalid(format!("IAK: {e}")))?;
        let iak = prove_same_tpm(&config, target.handle, target.iak_handle)
            .map_err(|e| MasaError::Invalid(format!("IDevID key: {e}")))?;
        Ok(TpmDeviceKeys {
            idevid: idevid.public_key_spki().to_vec(),
            iak: iak.spki,
        })
    })
    .await
    .map_err(|e| MasaError::Invalid(format!("TPM keys: {e}")))?
}

#[cfg(not(feature = "tpm"))]
async fn tpm_device_keys(_target: &TpmTarget) -> Result<TpmDeviceKeys, MasaError> {
    Err(MasaError::Invalid(
        "--tpm: this masa was built without TPM support (build with --features tpm)".into(),
    ))
}

/// RFC 8995 §2.3.1: the serial goes into the subject serialNumber (X520SerialNumber, at most 64
/// characters); refuse what a pledge could not present or a log line could not show: blank
/// serials, control characters (C0, DEL, C1) and the Unicode bidirectional controls (U+061C,
/// U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), which make a serial display as another.
pub fn check_serial(serial: &str) -> Result<(), MasaError> {
    let refuse = |why: &str| {
        Err(MasaError::Invalid(format!(
            "serial {serial:?} {why}; a serial is 1 to 64 printable characters without '/'"
        )))
    };
    if serial.trim().is_empty() {
        return refuse("is blank");
    }
    if serial.chars().count() > 64 {
        return refuse("is longer than 64 characters");
    }
    if let Some(c) = serial
        .chars()
        .find(|c| c.is_control() || is_bidi_control(*c))
    {
        return refuse(&format!(
            "contains the control character U+{:04X}",
            u32::from(c)
        ));
    }
    if serial.contains('/') {
        return refuse("contains '/'");
    }
    Ok(())
}

/// The Unicode bidirectional formatting characters (Unicode Standard Annex #9, §2).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `masa mint`: issue an IDevID for `serial` (P-256 key, serialNumber, MASA URL extension,
/// notAfter 99991231235959Z), write it with its key (0600), the manufacturer CA and
/// `pledge.toml` into the pledge directory, and record the device. A serial is minted once.
///
/// With [`MintOptions::tpm`] the key is made inside the TPM (IEEE 802.1AR §8, TCG IDevID
/// template) and never written; the IDevID then carries a HardwareModuleName (RFC 4108 §5)
/// with the TPM 2.0 hwType (2.23.133.1.2) and the device serial's UTF-8 octets as
/// hwSerialNum, and `pledge.toml` names the TCTI and handle instead of a key file.
pub async fn mint(opts: &MintOptions) -> Result<PathBuf, MasaError> {
    check_serial(&opts.serial)?;
    let cfg = MasaConfig::load(&opts.config)?;
    let vendor_ca = read_certs(&cfg.vendor_ca_cert)?
        .into_iter()
        .next()
        .ok_or_else(|| MasaError::Invalid("vendor CA file holds no certificate".into()))?;
    let vendor_key = read_key(&cfg.vendor_ca_key)?;
    let store = Store::open(&cfg, false).await?;
    mint_with(&store, &cfg, &vendor_ca, &vendor_key, opts).await
}

async fn mint_with(
    store: &Store,
    cfg: &MasaConfig,
    vendor_ca: &Certificate,
    vendor_key: &SoftwareKey,
    opts: &MintOptions,
) -> Result<PathBuf, MasaError> {
    if store.device(&opts.serial).await?.is_some() {
        return Err(MasaError::AlreadyMinted(opts.serial.clone()));
    }
    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(io(out))?;
    for existing in [pledge_names::IDEVID_KEY, pledge_names::CONFIG] {
        let p = out.join(existing);
        if p.exists() {
            return Err(MasaError::Exists(p));
        }
    }
    let key = match &opts.tpm {
        None => IdevidKey::Software(new_key()?),
        Some(target) => IdevidKey::Tpm(tpm_device_keys(target).await?),
    };
    let hardware_module = (brski_common::oid::TCG_TPM2_HW_TYPE, opts.serial.as_bytes());
    let mut idevid_profile = profile::idevid(
        &opts.serial,
        Some(&cfg.masa_url),
        opts.tpm.as_ref().map(|_| hardware_module),
    )?;
    if opts.tpm.is_some() {
        // The IAK's certify showed the key is fixedTPM (SPEC §8.2).
        idevid_profile
            .extra_extensions
            .push(profile::certificate_policies(&[
                brski_common::oid::TCG_CAP_VERIFIED_TPM_RESIDENCY,
                brski_common::oid::TCG_CAP_VERIFIED_TPM_FIXED,
            ])?);
    }
    let idevid = issue(
        &idevid_profile,
        key.public_key_spki(),
        Some(vendor_ca),
        vendor_key,
    )?;
    let iak = match &key {
        IdevidKey::Tpm(keys) => Some(issue(
            &profile::iak(&opts.serial, hardware_module)?,
            &keys.iak,
            Some(vendor_ca),
            vendor_key,
        )?),
        IdevidKey::Software(_) => None,
    };
    let device = db::Device {
        serial: opts.serial.clone(),
        idevid_issuer: idevid_issuer(&idevid),
        idevid_cert: idevid.to_der()?,
    };
    let pledge = PledgeConfig {
        serial_number: opts.serial.clone(),
        idevid_cert: pledge_names::IDEVID_CERT.into(),
        idevid_key: match key {
            IdevidKey::Software(_) => Some(pledge_names::IDEVID_KEY.into()),
            IdevidKey::Tpm(_) => None,
        },
        tpm: opts.tpm.as_ref().map(|t| TpmKey {
            tcti: t.tcti.clone(),
            idevid_handle: t.handle,
            ldevid_handles: None,
            iak_handle: Some(t.iak_handle),
        }),
        iak_cert: iak.as_ref().map(|_| pledge_names::IAK_CERT.into()),
        manufacturer_anchor: pledge_names::MANUFACTURER_CA.into(),
        state_dir: None,
        registrar: opts.registrar.clone(),
        voucher_format: None,
        transport: None,
        trust_clock: true,
        // RFC 8995 §7.2: accepting nonceless vouchers is a security reduction, off unless the
        // operator sets it (and then only with a trusted clock and expires-on, §7.4.1).
        accept_nonceless_vouchers: false,
    };
    // The device row commits only after the files are written; the write lock held meanwhile
    // makes a concurrent mint of the same serial wait and then fail.
    store
        .mint(std::slice::from_ref(&device), || {
            let pledge_toml = toml::to_string(&pledge)
                .map_err(|e| MasaError::Invalid(format!("cannot write pledge.toml: {e}")))?;
            if let IdevidKey::Software(key) = &key {
                write_key(&out.join(pledge_names::IDEVID_KEY), key)?;
            }
            write_cert(&out.join(pledge_names::IDEVID_CERT), &idevid)?;
            if let Some(iak) = &iak {
                write_cert(&out.join(pledge_names::IAK_CERT), iak)?;
            }
            write_cert(&out.join(pledge_names::MANUFACTURER_CA), vendor_ca)?;
            let path = out.join(pledge_names::CONFIG);
            write_atomic(&path, pledge_toml.as_bytes(), PUBLIC_MODE)?;
            Ok(path)
        })
        .await
}

/// What `masa mint-bulk` is asked for.
#[derive(Clone, Debug)]
pub struct MintBulkOptions {
    pub config: PathBuf,
    pub count: u32,
    pub serial_prefix: String,
    /// The bundle file to write (0600: it holds private keys).
    pub out: PathBuf,
}

/// `masa mint-bulk`: the factory for test fleets (load benchmarks). Issues `count` IDevIDs
/// exactly as `masa mint` does (serials `PREFIX-000001`, ...), records all devices in one
/// transaction, and writes one PEM bundle: the manufacturer CA certificate, then for each
/// device its IDevID certificate followed by its PKCS#8 key. The rows commit only after the
/// bundle is written; any serial minted before refuses the whole batch.
pub async fn mint_bulk(opts: &MintBulkOptions) -> Result<(PathBuf, u32), MasaError> {
    if opts.count == 0 {
        return Err(MasaError::Invalid("--count must be at least 1".into()));
    }
    let serials: Vec<String> = (1..=opts.count)
        .map(|i| format!("{}-{i:06}", opts.serial_prefix))
        .collect();
    for s in &serials {
        check_serial(s)?;
    }
    if opts.out.exists() {
        return Err(MasaError::Exists(opts.out.clone()));
    }
    let cfg = MasaConfig::load(&opts.config)?;
    let vendor_ca = read_certs(&cfg.vendor_ca_cert)?
        .into_iter()
        .next()
        .ok_or_else(|| MasaError::Invalid("vendor CA file holds no certificate".into()))?;
    let vendor_key = read_key(&cfg.vendor_ca_key)?;
    let mut bundle = certs_to_pem(std::slice::from_ref(&vendor_ca));
    let mut devices = Vec::with_capacity(serials.len());
    for serial in serials {
        let key = new_key()?;
        let idevid = issue(
            &profile::idevid(&serial, Some(&cfg.masa_url), None)?,
            key.public_key_spki(),
            Some(&vendor_ca),
            &vendor_key,
        )?;
        bundle.push_str(&certs_to_pem(std::slice::from_ref(&idevid)));
        bundle.push_str(&key.to_pkcs8_pem());
        devices.push(db::Device {
            serial,
            idevid_issuer: idevid_issuer(&idevid),
            idevid_cert: idevid.to_der()?,
        });
    }
    let store = Store::open(&cfg, false).await?;
    store
        .mint(&devices, || {
            write_atomic(&opts.out, bundle.as_bytes(), KEY_MODE)?;
            Ok((opts.out.clone(), opts.count))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_names_cover_the_loopback_for_local_hosts() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(
            tls_names("localhost"),
            (vec!["localhost".to_string()], vec![v4, v6])
        );
        assert_eq!(tls_names("127.0.0.1"), (vec![], vec![v4, v6]));
        let ten: IpAddr = "10.1.2.3".parse().expect("ip");
        assert_eq!(tls_names("10.1.2.3"), (vec![], vec![ten, v4, v6]));
        assert_eq!(
            tls_names("masa.example.com"),
            (vec!["masa.example.com".to_string()], vec![])
        );
    }

    #[cfg(not(feature = "tpm"))]
    #[tokio::test]
    async fn mint_tpm_without_the_feature_says_how_to_build() {
        let target = TpmTarget {
            tcti: "device:/dev/tpmrm0".into(),
            handle: 0x8102_0000,
            iak_handle: 0x8102_0003,
        };
        let err = tpm_device_keys(&target).await.expect_err("not built");
        assert!(
            matches!(&err, MasaError::Invalid(m) if m.contains("--features tpm")),
            "{err}"
        );
    }

    #[cfg(feature = "tpm")]
    #[tokio::test]
    async fn mint_tpm_names_an_absent_tpm() {
        // Nothing listens on port 1 of the loopback.
        let target = TpmTarget {
            tcti: "swtpm:host=127.0.0.1,port=1".into(),
            handle: 0x8102_0000,
            iak_handle: 0x8102_0003,
        };
        let err = tpm_device_keys(&target).await.expect_err("no TPM");
        assert!(
            matches!(&err, MasaError::Invalid(m) if m.contains("no TPM reachable at TCTI swtpm:host=127.0.0.1,port=1")),
            "{err}"
        );
    }

    #[test]
    fn rfc8995_2_3_1_serials_are_checked() {
        for good in ["SN-0001", "0123456789", &"x".repeat(64), "Ünïcode"] {
            check_serial(good).expect(good);
        }
        for bad in [
            "",
            "   ",
            &"x".repeat(65),
            "a\nb",
            "a/b",
            "tab\t",
            "del\u{7f}",
            "nel\u{85}",
            "\u{202E}NS",
            "a\u{061C}b",
            "a\u{2067}b",
            "a\u{200F}",
        ] {
            assert!(
                matches!(check_serial(bad), Err(MasaError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
