//! What the factory gave the pledge (`pledge.toml`, RFC 8995 §2.3, §9.1.3): its IDevID and
//! key, its serial number, the manufacturer's trust anchor, and where the registrar is.

use crate::error::Failure;
use crate::session::Transport;
use brski_common::envelope::Format;
use brski_common::keys::{Signer, SoftwareKey};
use brski_common::pki::TimeCheck;
use brski_common::pki::ext::serial_number;
use brski_service::config::{PledgeConfig, TpmKey};
use brski_service::files::{read_certs, read_key};
use brski_service::https_client::{Scheme, Target};
use der::Encode;
use std::path::Path;
use std::sync::Arc;
use x509_cert::Certificate;

/// The pledge's identity and configuration, checked for consistency.
#[derive(Clone, Debug)]
pub struct Identity {
    pub config: PledgeConfig,
    /// The serial number, equal to the IDevID subject's serialNumber (RFC 8995 §2.3.1).
    pub serial: String,
    /// The IDevID first, then any intermediates from the certificate file.
    pub idevid_chain: Vec<Certificate>,
    pub idevid_chain_der: Vec<Vec<u8>>,
    /// The IDevID private key: a file, or a TPM key opened for each bootstrap attempt.
    pub idevid_key: IdevidKey,
    /// The manufacturer's trust anchors for vouchers (RFC 8995 §5.6.1).
    pub manufacturer: Vec<Certificate>,
    /// The voucher format to request (default CMS, RFC 8995 §5.2).
    pub format: Format,
    /// The registrar's URL as given (or the join proxy's, see [`Identity::via`]).
    pub registrar_url: String,
    pub registrar: Target,
    /// HTTPS, or CoAP over DTLS (`transport` in `pledge.toml`, or the URL's scheme).
    pub transport: Transport,
    /// No registrar configured: find join proxies by discovery (RFC 8995 §4.1).
    pub discover: bool,
    /// The IAK certificate and its chain (`iak-cert`), sent with attestation evidence; empty
    /// when the pledge has no IAK.
    pub iak_chain: Vec<Certificate>,
}

/// Where the IDevID private key is (IEEE 802.1AR §6.2.3: ideally never outside a TPM).
#[derive(Clone, Debug)]
pub enum IdevidKey {
    File(Arc<SoftwareKey>),
    /// In the TPM named by `pledge.toml`'s `[tpm]`; opened (and compared with the IDevID's
    /// public key) at each bootstrap, so that a TPM that is away at start-up is retried.
    Tpm(TpmKey),
}

/// The voucher format named in `pledge.toml` (`cms`, `jws` or `cose`; default `cms`).
pub fn parse_format(name: Option<&str>) -> Result<Format, String> {
    match name.map(str::to_ascii_lowercase).as_deref() {
        None | Some("cms") => Ok(Format::Cms),
        Some("jws") => Ok(Format::Jws),
        Some("cose") => Ok(Format::Cose),
        Some(other) => Err(format!(
            "voucher-format: {other:?} is not one of cms, jws, cose"
        )),
    }
}

/// The transport named in `pledge.toml` (`https` or `coaps`; default `https`).
pub fn parse_transport(name: Option<&str>) -> Result<Option<Transport>, String> {
    name.map(|n| {
        Transport::parse(n).ok_or_else(|| format!("transport: {n:?} is not one of https, coaps"))
    })
    .transpose()
}

/// The IDevID handle and the two LDevID slots must be three different handles.
pub fn check_handles(t: &TpmKey) -> Result<(), String> {
    let [a, b] = t
        .ldevid_handles
        .unwrap_or(crate::tpm::DEFAULT_LDEVID_HANDLES);
    if a == b || a == t.idevid_handle || b == t.idevid_handle {
        return Err(format!(
            "tpm: idevid-handle {:#010x} and ldevid-handles {a:#010x}, {b:#010x} must all differ",
            t.idevid_handle
        ));
    }
    if let Some(iak) = t.iak_handle.filter(|h| [a, b, t.idevid_handle].contains(h)) {
        return Err(format!(
            "tpm: iak-handle {iak:#010x} must differ from idevid-handle and ldevid-handles"
        ));
    }
    Ok(())
}

/// A problem with one key of `pledge.toml`: the key, then what is wrong (the same words for
/// `pledge check-config` and for a start that refuses).
fn problem(key: &str, e: impl std::fmt::Display) -> String {
    format!("{key}: {e}")
}

/// A parse error of the file (TOML quotes the line, over several lines) on one line.
fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// What `idevid-cert` holds.
struct IdevidChain {
    chain: Vec<Certificate>,
    chain_der: Vec<Vec<u8>>,
    /// The IDevID's SubjectPublicKeyInfo (DER).
    spki: Vec<u8>,
}

/// The IAK certificate chain (`iak-cert`), when there is one.
fn iak_chain(config: &PledgeConfig) -> Result<Vec<Certificate>, String> {
    let Some(path) = &config.iak_cert else {
        return Ok(Vec::new());
    };
    let chain = read_certs(path).map_err(|e| problem("iak-cert", e))?;
    if chain.is_empty() {
        return Err(problem(
            "iak-cert",
            format!("{}: no certificate", path.display()),
        ));
    }
    Ok(chain)
}

/// The IDevID chain (`idevid-cert`), its DER, and the IDevID's public key.
fn idevid_chain(config: &PledgeConfig) -> Result<IdevidChain, String> {
    let chain = read_certs(&config.idevid_cert).map_err(|e| problem("idevid-cert", e))?;
    let idevid = chain.first().ok_or_else(|| {
        problem(
            "idevid-cert",
            format!("{}: no certificate", config.idevid_cert.display()),
        )
    })?;
    let der = |e: der::Error| {
        problem(
            "idevid-cert",
            format!("{}: {e}", config.idevid_cert.display()),
        )
    };
    let spki = idevid
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(der)?;
    let chain_der = chain
        .iter()
        .map(|c| c.to_der())
        .collect::<Result<Vec<_>, _>>()
        .map_err(der)?;
    Ok(IdevidChain {
        chain,
        chain_der,
        spki,
    })
}

/// `serial-number` equals the IDevID subject's serialNumber (RFC 8995 §2.3.1).
fn check_serial(config: &PledgeConfig, idevid: &Certificate) -> Result<String, String> {
    let serial = serial_number(idevid).ok_or_else(|| {
        problem(
            "idevid-cert",
            format!(
                "{}: the IDevID subject has no serialNumber",
                config.idevid_cert.display()
            ),
        )
    })?;
    if serial != config.serial_number {
        return Err(problem(
            "serial-number",
            format!(
                "{:?} differs from the IDevID's serialNumber {serial:?}",
                config.serial_number
            ),
        ));
    }
    Ok(serial)
}

/// `idevid-key` (its key belongs to the IDevID), or `[tpm]` (TCTI and handles).
fn idevid_key(config: &PledgeConfig, idevid_spki: Option<&[u8]>) -> Result<IdevidKey, String> {
    match &config.tpm {
        Some(tpm_key) => {
            crate::tpm::check_tcti(&tpm_key.tcti).map_err(|e| problem("tpm", e))?;
            check_handles(tpm_key)?;
            Ok(IdevidKey::Tpm(tpm_key.clone()))
        }
        None => {
            let key_path = config
                .idevid_key
                .as_deref()
                .ok_or_else(|| problem("idevid-key", "idevid-key or [tpm] is required"))?;
            let key = read_key(key_path).map_err(|e| problem("idevid-key", e))?;
            if idevid_spki.is_some_and(|spki| spki != key.public_key_spki()) {
                return Err(problem(
                    "idevid-key",
                    format!(
                        "{}: the key does not belong to the IDevID certificate",
                        key_path.display()
                    ),
                ));
            }
            Ok(IdevidKey::File(Arc::new(key)))
        }
    }
}

/// `manufacturer-anchor`: the voucher trust anchors (RFC 8995 §9.1.3).
fn manufacturer(config: &PledgeConfig) -> Result<Vec<Certificate>, String> {
    let anchors =
        read_certs(&config.manufacturer_anchor).map_err(|e| problem("manufacturer-anchor", e))?;
    if anchors.is_empty() {
        return Err(problem(
            "manufacturer-anchor",
            format!("{}: no certificate", config.manufacturer_anchor.display()),
        ));
    }
    Ok(anchors)
}

/// `state-dir`: a directory the pledge can write its voucher and LDevID into.
fn check_state_dir(config: &PledgeConfig) -> Result<(), String> {
    let dir = config.state_dir();
    if !dir.is_dir() {
        return Err(problem(
            "state-dir",
            format!("{} is not a directory", dir.display()),
        ));
    }
    let probe = dir.join(format!(".pledge-write-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| {
            problem(
                "state-dir",
                format!("{} is not writable: {e}", dir.display()),
            )
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Where the registrar is, and how to reach it.
struct Reach {
    url: String,
    target: Target,
    transport: Transport,
    discover: bool,
}

/// Where the registrar is and the transport (`registrar`, `transport`); `registrar` is the
/// command line's URL, which overrides the file's.
fn registrar_target(config: &PledgeConfig, registrar: Option<&str>) -> Result<Reach, String> {
    let configured = parse_transport(config.transport.as_deref())?;
    let registrar_url = registrar
        .map(str::to_string)
        .or_else(|| config.registrar.clone());
    let discover = registrar_url.is_none();
    let mut transport = configured.unwrap_or(Transport::Https);
    let (registrar_url, target) = match registrar_url {
        Some(url) => {
            let (scheme, t) =
                Target::parse_with_scheme(&url).map_err(|e| problem("registrar", e))?;
            let by_scheme = match scheme {
                Scheme::Https => Transport::Https,
                Scheme::Coaps => Transport::Coaps,
            };
            if configured.is_some_and(|c| c != by_scheme) {
                return Err(problem(
                    "transport",
                    format!(
                        "{:?} differs from the registrar URL's scheme ({url})",
                        transport.name()
                    ),
                ));
            }
            transport = by_scheme;
            (url, t)
        }
        // Replaced per attempt by the proxy found (`Identity::via`).
        None => (
            String::new(),
            Target {
                host: String::new(),
                port: 0,
                authority: String::new(),
            },
        ),
    };
    Ok(Reach {
        url: registrar_url,
        target,
        transport,
        discover,
    })
}

/// The voucher format: `voucher-format`, or COSE for a constrained pledge (cBRSKI §6.2).
fn voucher_format(config: &PledgeConfig, transport: Transport) -> Result<Format, String> {
    match (config.voucher_format.as_deref(), transport) {
        (None, Transport::Coaps) => Ok(Format::Cose),
        (name, _) => parse_format(name),
    }
}

/// Every problem of the configuration at `path`, one line each naming its key; none when the
/// pledge would start (`pledge check-config`).
pub fn problems(config_path: &Path) -> Vec<String> {
    let config = match PledgeConfig::load(config_path) {
        Ok(c) => c,
        Err(e) => return vec![one_line(&e)],
    };
    let mut found = Vec::new();
    let spki = match idevid_chain(&config) {
        Ok(IdevidChain { chain, spki, .. }) => {
            if let Err(e) = chain
                .first()
                .map_or(Ok(String::new()), |c| check_serial(&config, c))
            {
                found.push(e);
            }
            Some(spki)
        }
        Err(e) => {
            found.push(e);
            None
        }
    };
    found.extend(idevid_key(&config, spki.as_deref()).err());
    found.extend(manufacturer(&config).err());
    found.extend(iak_chain(&config).err());
    found.extend(check_state_dir(&config).err());
    match registrar_target(&config, None) {
        Ok(reach) => found.extend(voucher_format(&config, reach.transport).err()),
        Err(e) => found.push(e),
    }
    found
}

impl Identity {
    /// Load `pledge.toml` and the files it names; `registrar` overrides its registrar URL.
    /// Refuses on the first of the problems [`problems`] lists, in the same words.
    pub fn load(config_path: &Path, registrar: Option<&str>) -> Result<Self, Failure> {
        let config = PledgeConfig::load(config_path).map_err(|e| Failure::Config(one_line(&e)))?;
        let at = |e: String| Failure::Config(format!("{}: {e}", config_path.display()));
        let IdevidChain {
            chain: idevid_chain,
            chain_der: idevid_chain_der,
            spki,
        } = idevid_chain(&config).map_err(at)?;
        let idevid_key = idevid_key(&config, Some(&spki)).map_err(at)?;
        let idevid = idevid_chain
            .first()
            .ok_or_else(|| at(problem("idevid-cert", "no certificate")))?;
        let serial = check_serial(&config, idevid).map_err(at)?;
        let manufacturer = manufacturer(&config).map_err(at)?;
        check_state_dir(&config).map_err(at)?;
        let Reach {
            url: registrar_url,
            target: registrar,
            transport,
            discover,
        } = registrar_target(&config, registrar).map_err(at)?;
        let format = voucher_format(&config, transport).map_err(at)?;
        let iak_chain = iak_chain(&config).map_err(at)?;
        Ok(Self {
            iak_chain,
            config,
            serial,
            idevid_chain,
            idevid_chain_der,
            idevid_key,
            manufacturer,
            format,
            registrar_url,
            registrar,
            transport,
            discover,
        })
    }

    /// The same identity, talking to the registrar through `target` (a join proxy found by
    /// discovery, RFC 8995 §4.1), recorded as `url`.
    pub fn via(&self, url: String, target: Target) -> Self {
        Self {
            registrar_url: url,
            registrar: target,
            ..self.clone()
        }
    }

    /// The state directory (RFC 8995 does not name one; `pledge.toml` may).
    pub fn state_dir(&self) -> &Path {
        self.config.state_dir()
    }

    /// How certificate validity is checked: against the clock when it is trusted, else not at
    /// all (RFC 8995 §2.6.1).
    pub fn time_check(&self) -> TimeCheck {
        if self.config.trust_clock {
            TimeCheck::Now
        } else {
            TimeCheck::Skip
        }
    }

    /// Now, when the pledge trusts its clock.
    pub fn trusted_now(&self) -> Option<time::OffsetDateTime> {
        self.config.trust_clock.then(time::OffsetDateTime::now_utc)
    }

    /// The IDevID certificate.
    pub fn idevid(&self) -> Option<&Certificate> {
        self.idevid_chain.first()
    }

    /// The IDevID signer: the key file's, or the TPM key (two `TPM2_ReadPublic`, and a
    /// [`Failure::Tpm`] naming the TCTI when the TPM is away or holds another key there).
    pub fn idevid_signer(&self) -> Result<Arc<dyn Signer>, Failure> {
        match &self.idevid_key {
            IdevidKey::File(key) => Ok(key.clone()),
            IdevidKey::Tpm(t) => {
                let idevid = self
                    .idevid()
                    .ok_or_else(|| Failure::Config("no IDevID certificate".into()))?;
                let spki = idevid
                    .tbs_certificate()
                    .subject_public_key_info()
                    .to_der()
                    .map_err(|e| Failure::Config(format!("IDevID: {e}")))?;
                crate::tpm::open(&t.tcti, t.idevid_handle, &spki, "IDevID")
            }
        }
    }

    /// The TCTI and IAK handle when the pledge can attest (SPEC §9): keys in a TPM, an IAK
    /// and its certificate.
    pub fn iak(&self) -> Option<(&str, u32)> {
        match &self.idevid_key {
            IdevidKey::Tpm(t) if !self.iak_chain.is_empty() => {
                t.iak_handle.map(|h| (t.tcti.as_str(), h))
            }
            _ => None,
        }
    }

    /// The TCTI and LDevID handles when the pledge's keys are in a TPM.
    pub fn ldevid_tpm(&self) -> Option<(&str, [u32; 2])> {
        match &self.idevid_key {
            IdevidKey::File(_) => None,
            IdevidKey::Tpm(t) => Some((
                t.tcti.as_str(),
                t.ldevid_handles
                    .unwrap_or(crate::tpm::DEFAULT_LDEVID_HANDLES),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voucher_format_names() {
        assert_eq!(parse_format(None), Ok(Format::Cms));
        assert_eq!(parse_format(Some("CMS")), Ok(Format::Cms));
        assert_eq!(parse_format(Some("jws")), Ok(Format::Jws));
        assert_eq!(parse_format(Some("cose")), Ok(Format::Cose));
        assert!(parse_format(Some("cbor")).is_err());
    }

    #[test]
    fn tpm_handles_must_all_differ() {
        let mut t = TpmKey {
            tcti: "device:/dev/tpmrm0".into(),
            idevid_handle: 0x8102_0000,
            ldevid_handles: None,
            iak_handle: Some(0x8102_0003),
        };
        assert_eq!(check_handles(&t), Ok(()));
        t.ldevid_handles = Some([0x8102_0003, 0x8102_0004]);
        assert!(check_handles(&t).is_err_and(|e| e.contains("iak-handle 0x81020003")));
        t.iak_handle = None;
        t.ldevid_handles = Some([0x8102_0003, 0x8102_0004]);
        assert_eq!(check_handles(&t), Ok(()));
        for bad in [[0x8102_0003, 0x8102_0003], [0x8102_0000, 0x8102_0004]] {
            t.ldevid_handles = Some(bad);
            assert!(check_handles(&t).is_err(), "{bad:x?}");
        }
        t.ldevid_handles = None;
        t.idevid_handle = crate::tpm::DEFAULT_LDEVID_HANDLES[1];
        assert!(check_handles(&t).is_err());
    }
}
