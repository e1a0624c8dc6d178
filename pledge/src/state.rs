//! The pledge's state directory. Every file is written atomically (temporary file, fsync,
//! rename), in an order that makes any crash recoverable:
//!
//! - bootstrap: `voucher-request.*`, `voucher.*`, `domain-ca.crt.pem`, `ldevid.key.pem`,
//!   `ldevid.crt.pem`, and `state.json` last. Without a valid `state.json` the pledge is not
//!   enrolled and a rerun starts over, overwriting whatever an interrupted run left.
//! - renewal: the new pair is first staged as `ldevid-renew.key.pem` + `ldevid-renew.crt.pem`,
//!   then installed over `ldevid.*`, then the staged files are removed. A complete staged pair
//!   found at start-up is (re)installed, an incomplete one discarded, so `ldevid.key.pem` and
//!   `ldevid.crt.pem` always end up belonging together.
//!
//! With the LDevID key in a TPM, `ldevid.tpm` (`{"handle": H, "public-key": hex SPKI}`) takes
//! the place of `ldevid.key.pem` (and `ldevid-renew.tpm` of `ldevid-renew.key.pem`): no private
//! key is ever written, and whether the reference belongs to the certificate is checked
//! without the TPM. `state.json` then also records the handle (`ldevid-tpm-handle`).

use crate::error::Failure;
use brski_common::envelope::Format;
use brski_common::keys::{Signer, SoftwareKey};
use brski_common::pki::chain::{TimeCheck, TrustPolicy, validate_chain};
use brski_service::files::{certs_to_pem, read_certs, read_key, write_atomic};
use der::Encode;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use x509_cert::Certificate;

pub const LDEVID_CERT: &str = "ldevid.crt.pem";
pub const LDEVID_KEY: &str = "ldevid.key.pem";
pub const DOMAIN_CA: &str = "domain-ca.crt.pem";
pub const STATE: &str = "state.json";
pub const RENEW_CERT: &str = "ldevid-renew.crt.pem";
pub const RENEW_KEY: &str = "ldevid-renew.key.pem";
pub const LDEVID_TPM: &str = "ldevid.tpm";
pub const RENEW_TPM: &str = "ldevid-renew.tpm";

/// Private keys: owner only.
const KEY_MODE: u32 = 0o600;
/// Certificates, vouchers and state: not secret.
const PUBLIC_MODE: u32 = 0o644;

/// The file a voucher of `format` is kept in (RFC 8366bis §12.4 and jws-voucher file
/// extensions: `.vcj` CMS, `.vjj` JWS; cBRSKI `.vch` COSE).
pub fn voucher_file(format: Format) -> &'static str {
    match format {
        Format::Cms => "voucher.vcj",
        Format::Jws => "voucher.vjj",
        Format::Cose => "voucher.vch",
    }
}

/// The file the pledge's own voucher-request of `format` is kept in (same extensions: the
/// voucher-request media types are the voucher's, RFC 8995 §3.1).
pub fn voucher_request_file(format: Format) -> &'static str {
    match format {
        Format::Cms => "voucher-request.vcj",
        Format::Jws => "voucher-request.vjj",
        Format::Cose => "voucher-request.vch",
    }
}

/// Every file this module writes (temporary copies of them are cleaned up at start-up).
const OWN_FILES: [&str; 14] = [
    LDEVID_CERT,
    LDEVID_KEY,
    LDEVID_TPM,
    DOMAIN_CA,
    STATE,
    RENEW_CERT,
    RENEW_KEY,
    RENEW_TPM,
    "voucher.vcj",
    "voucher.vjj",
    "voucher.vch",
    "voucher-request.vcj",
    "voucher-request.vjj",
    "voucher-request.vch",
];

/// `ldevid.tpm`: where the TPM-resident LDevID key is, and its public key (SubjectPublicKeyInfo,
/// hex), so that it can be matched with the certificate without asking the TPM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TpmLdevid {
    pub handle: u32,
    pub public_key: String,
}

impl TpmLdevid {
    pub fn new(handle: u32, spki: &[u8]) -> Self {
        Self {
            handle,
            public_key: hex::encode(spki),
        }
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let t: Self =
            serde_json::from_slice(bytes).map_err(|e| format!("{LDEVID_TPM} is malformed: {e}"))?;
        t.spki()?;
        Ok(t)
    }

    /// The public key (DER SubjectPublicKeyInfo).
    pub fn spki(&self) -> Result<Vec<u8>, String> {
        hex::decode(&self.public_key).map_err(|e| format!("{LDEVID_TPM}: public-key: {e}"))
    }

    fn to_json(&self) -> Result<Vec<u8>, Failure> {
        let mut out = serde_json::to_vec_pretty(self)
            .map_err(|e| Failure::Storage(format!("cannot encode {LDEVID_TPM}: {e}")))?;
        out.push(b'\n');
        Ok(out)
    }
}

/// The LDevID private key: a file, or a key inside the TPM.
#[derive(Clone, Debug)]
pub enum LdevidKey {
    File(Arc<SoftwareKey>),
    Tpm(TpmLdevid),
}

impl LdevidKey {
    /// The public key (DER SubjectPublicKeyInfo).
    pub fn spki(&self) -> Result<Vec<u8>, String> {
        match self {
            Self::File(k) => Ok(k.public_key_spki().to_vec()),
            Self::Tpm(t) => t.spki(),
        }
    }

    /// The TPM handle, for a TPM key.
    pub fn tpm_handle(&self) -> Option<u32> {
        match self {
            Self::File(_) => None,
            Self::Tpm(t) => Some(t.handle),
        }
    }

    /// The signer: the software key, or the TPM key at its handle in the TPM at `tcti`,
    /// checked to be the recorded one.
    pub fn signer(&self, tcti: Option<&str>) -> Result<Arc<dyn Signer>, Failure> {
        match self {
            Self::File(k) => Ok(k.clone()),
            Self::Tpm(t) => {
                let tcti = tcti.ok_or_else(|| {
                    Failure::Config(format!(
                        "the LDevID key is in a TPM ({LDEVID_TPM}) but pledge.toml has no [tpm]"
                    ))
                })?;
                crate::tpm::open(
                    tcti,
                    t.handle,
                    &t.spki().map_err(Failure::Storage)?,
                    "LDevID",
                )
            }
        }
    }

    fn belongs_to(&self, cert: &Certificate) -> bool {
        self.spki().is_ok_and(|spki| spki_matches(&spki, cert))
    }
}

/// `state.json`: written last, so that `enrolled: true` is only ever seen with complete
/// credentials next to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    pub enrolled: bool,
    /// The registrar the pledge enrolled with.
    pub registrar: String,
    pub serial: String,
    /// The persistent handle of the LDevID key, when it is in a TPM.
    #[serde(
        default,
        rename = "ldevid-tpm-handle",
        skip_serializing_if = "Option::is_none"
    )]
    pub ldevid_tpm_handle: Option<u32>,
}

impl StateFile {
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("{STATE} is malformed: {e}"))
    }

    pub fn to_json(&self) -> Result<Vec<u8>, Failure> {
        let mut out = serde_json::to_vec_pretty(self)
            .map_err(|e| Failure::Storage(format!("cannot encode {STATE}: {e}")))?;
        out.push(b'\n');
        Ok(out)
    }
}

/// A complete, consistent enrollment found on disk.
#[derive(Debug)]
pub struct Enrollment {
    pub state: StateFile,
    pub ldevid: Certificate,
    /// Certificates between the LDevID and the domain CA, if any.
    pub intermediates: Vec<Certificate>,
    pub key: LdevidKey,
    pub domain_ca: Vec<Certificate>,
}

impl Enrollment {
    pub fn not_before(&self) -> SystemTime {
        self.ldevid
            .tbs_certificate()
            .validity()
            .not_before
            .to_system_time()
    }

    pub fn not_after(&self) -> SystemTime {
        self.ldevid
            .tbs_certificate()
            .validity()
            .not_after
            .to_system_time()
    }

    /// When to renew: after `fraction` of the LDevID's lifetime has passed.
    pub fn renewal_time(&self, fraction: f64) -> SystemTime {
        renewal_time(self.not_before(), self.not_after(), fraction)
    }

    /// The TLS client chain: the LDevID and its intermediates (DER).
    pub fn chain_der(&self) -> Result<Vec<Vec<u8>>, Failure> {
        std::iter::once(&self.ldevid)
            .chain(&self.intermediates)
            .map(|c| c.to_der())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Failure::Storage(format!("{LDEVID_CERT}: {e}")))
    }
}

/// `not_before + fraction × (not_after − not_before)`; `not_after` when the period is empty.
pub fn renewal_time(not_before: SystemTime, not_after: SystemTime, fraction: f64) -> SystemTime {
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_before
        .checked_add(lifetime.mul_f64(fraction.clamp(0.0, 1.0)))
        .unwrap_or(not_after)
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

fn storage(e: impl std::fmt::Display) -> Failure {
    Failure::Storage(e.to_string())
}

fn spki_matches(spki: &[u8], cert: &Certificate) -> bool {
    cert.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .is_ok_and(|c| c == spki)
}

impl StateDir {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, data: &[u8], mode: u32) -> Result<(), Failure> {
        write_atomic(&self.path(name), data, mode).map_err(storage)
    }

    fn remove(&self, name: &str) -> Result<(), Failure> {
        match std::fs::remove_file(self.path(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Failure::Storage(format!(
                "cannot remove {}: {e}",
                self.path(name).display()
            ))),
        }
    }

    fn sync_dir(&self) {
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
    }

    /// Create the directory when missing (owner only).
    pub fn ensure(&self) -> Result<(), Failure> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| Failure::Storage(format!("{}: {e}", self.dir.display())))
    }

    /// Clean up after a crash: remove temporary files of ours, and finish or discard an
    /// interrupted renewal.
    pub fn recover(&self) -> Result<(), Failure> {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let ours = OWN_FILES
                    .iter()
                    .any(|f| name.starts_with(&format!(".{f}.tmp.")));
                if ours {
                    tracing::info!(file = %name, "removing a temporary file left by a crash");
                    self.remove(&name)?;
                }
            }
        }
        if self.path(RENEW_CERT).exists() {
            let staged = read_certs(&self.path(RENEW_CERT)).ok().and_then(|certs| {
                let first = certs.first()?;
                let key = self.read_key_for(first, RENEW_TPM, RENEW_KEY)?;
                Some((certs, key))
            });
            if let Some((certs, key)) = staged {
                tracing::info!("completing an interrupted renewal");
                self.install(&key, &certs)?;
            } else {
                tracing::warn!("discarding an incomplete staged renewal");
            }
        }
        self.remove(RENEW_CERT)?;
        self.remove(RENEW_KEY)?;
        self.remove(RENEW_TPM)?;
        self.sync_dir();
        Ok(())
    }

    /// The key reference in `tpm_file`, else the key in `key_file`, that belongs to `cert`.
    fn read_key_for(
        &self,
        cert: &Certificate,
        tpm_file: &str,
        key_file: &str,
    ) -> Option<LdevidKey> {
        let tpm = std::fs::read(self.path(tpm_file))
            .ok()
            .and_then(|b| TpmLdevid::from_json(&b).ok())
            .map(LdevidKey::Tpm);
        let file = || {
            read_key(&self.path(key_file))
                .ok()
                .map(|k| LdevidKey::File(Arc::new(k)))
        };
        tpm.filter(|k| k.belongs_to(cert))
            .or_else(|| file().filter(|k| k.belongs_to(cert)))
    }

    /// The enrollment on disk, or why there is none usable: `state.json` says enrolled for
    /// this serial, the key belongs to the LDevID, and the LDevID validates to the domain CA
    /// (with validity checked as `time` says).
    pub fn load_enrollment(&self, serial: &str, time: TimeCheck) -> Result<Enrollment, String> {
        let bytes = match std::fs::read(self.path(STATE)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!("no {STATE}"));
            }
            Err(e) => return Err(format!("{STATE}: {e}")),
        };
        let state = StateFile::from_json(&bytes)?;
        if !state.enrolled {
            return Err(format!("{STATE} says not enrolled"));
        }
        if state.serial != serial {
            return Err(format!(
                "{STATE} is for serial {:?}, not {serial:?}",
                state.serial
            ));
        }
        let mut chain = read_certs(&self.path(LDEVID_CERT)).map_err(|e| e.to_string())?;
        if chain.is_empty() {
            return Err(format!("{LDEVID_CERT} holds no certificate"));
        }
        let ldevid = chain.remove(0);
        let key = self
            .read_key_for(&ldevid, LDEVID_TPM, LDEVID_KEY)
            .ok_or_else(|| {
                if self.path(LDEVID_TPM).exists() {
                    format!("neither {LDEVID_TPM} nor {LDEVID_KEY} belongs to {LDEVID_CERT}")
                } else {
                    format!("{LDEVID_KEY} does not belong to {LDEVID_CERT}")
                }
            })?;
        let domain_ca = read_certs(&self.path(DOMAIN_CA)).map_err(|e| e.to_string())?;
        validate_chain(
            &ldevid,
            &chain,
            &TrustPolicy::new(domain_ca.clone()).with_time(time),
        )
        .map_err(|e| format!("LDevID: {e}"))?;
        Ok(Enrollment {
            state,
            ldevid,
            intermediates: chain,
            key,
            domain_ca,
        })
    }

    /// Start over: remove `state.json`, so that nothing claims an enrollment until a new one
    /// is complete.
    pub fn forget(&self) -> Result<(), Failure> {
        self.remove(STATE)?;
        self.sync_dir();
        Ok(())
    }

    /// Keep the accepted voucher (RFC 8995 §5.6.1).
    pub fn write_voucher(&self, format: Format, voucher: &[u8]) -> Result<(), Failure> {
        self.write(voucher_file(format), voucher, PUBLIC_MODE)
    }

    /// Keep the pledge's own voucher-request (RFC 8995 §5.2), for audit.
    pub fn write_voucher_request(&self, format: Format, request: &[u8]) -> Result<(), Failure> {
        self.write(voucher_request_file(format), request, PUBLIC_MODE)
    }

    /// Keep the domain CA certificates from `/cacerts` (RFC 8995 §5.9.1).
    pub fn write_domain_ca(&self, certs: &[Certificate]) -> Result<(), Failure> {
        self.write(DOMAIN_CA, certs_to_pem(certs).as_bytes(), PUBLIC_MODE)
    }

    /// Write the key (file or TPM reference) as `key_file` / `tpm_file`.
    fn write_key(&self, key: &LdevidKey, key_file: &str, tpm_file: &str) -> Result<(), Failure> {
        match key {
            LdevidKey::File(k) => self.write(key_file, k.to_pkcs8_pem().as_bytes(), KEY_MODE),
            LdevidKey::Tpm(t) => self.write(tpm_file, &t.to_json()?, PUBLIC_MODE),
        }
    }

    /// Install the key and the chain as the LDevID; the other kind of key file is removed,
    /// and an existing `state.json` is updated with the TPM handle.
    fn install(&self, key: &LdevidKey, chain: &[Certificate]) -> Result<(), Failure> {
        self.write_key(key, LDEVID_KEY, LDEVID_TPM)?;
        self.write(LDEVID_CERT, certs_to_pem(chain).as_bytes(), PUBLIC_MODE)?;
        match key {
            LdevidKey::File(_) => self.remove(LDEVID_TPM)?,
            LdevidKey::Tpm(_) => self.remove(LDEVID_KEY)?,
        }
        let state = std::fs::read(self.path(STATE))
            .ok()
            .and_then(|bytes| StateFile::from_json(&bytes).ok())
            .filter(|s| s.ldevid_tpm_handle != key.tpm_handle());
        if let Some(mut state) = state {
            state.ldevid_tpm_handle = key.tpm_handle();
            self.write(STATE, &state.to_json()?, PUBLIC_MODE)?;
        }
        Ok(())
    }

    /// Complete a bootstrap: the LDevID key, its certificate chain, then `state.json`.
    pub fn commit_enrollment(
        &self,
        key: &LdevidKey,
        chain: &[Certificate],
        state: &StateFile,
    ) -> Result<(), Failure> {
        self.install(key, chain)?;
        self.write(STATE, &state.to_json()?, PUBLIC_MODE)
    }

    /// Replace the LDevID after a renewal: stage the new pair, install it, remove the stage.
    pub fn commit_renewal(&self, key: &LdevidKey, chain: &[Certificate]) -> Result<(), Failure> {
        self.write_key(key, RENEW_KEY, RENEW_TPM)?;
        self.write(RENEW_CERT, certs_to_pem(chain).as_bytes(), PUBLIC_MODE)?;
        self.install(key, chain)?;
        self.remove(RENEW_CERT)?;
        self.remove(RENEW_KEY)?;
        self.remove(RENEW_TPM)?;
        self.sync_dir();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brski_common::keys::SignatureAlgorithm;
    use brski_common::pki::{issue, name_from_parts, profile, self_signed};
    use proptest::prelude::*;

    struct Fixture {
        dir: tempfile::TempDir,
        state: StateDir,
        ca_key: SoftwareKey,
        ca: Certificate,
    }

    fn key() -> SoftwareKey {
        SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key")
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let ca_key = key();
        let ca = self_signed(
            &profile::domain_ca(name_from_parts(Some("Domain CA"), None, None).expect("n"))
                .expect("p"),
            &ca_key,
        )
        .expect("ca");
        Fixture {
            dir,
            state,
            ca_key,
            ca,
        }
    }

    impl Fixture {
        fn ldevid(&self, key: &SoftwareKey) -> Certificate {
            let params =
                profile::ldevid(name_from_parts(Some("pledge"), None, Some("SN-1")).expect("n"))
                    .expect("p");
            issue(&params, key.public_key_spki(), Some(&self.ca), &self.ca_key).expect("issue")
        }

        fn enrolled(&self) -> (SoftwareKey, Certificate) {
            let k = key();
            let c = self.ldevid(&k);
            self.state
                .write_domain_ca(std::slice::from_ref(&self.ca))
                .expect("ca");
            self.state
                .commit_enrollment(&file_key(&k), std::slice::from_ref(&c), &state_file())
                .expect("commit");
            (k, c)
        }
    }

    fn state_file() -> StateFile {
        StateFile {
            enrolled: true,
            registrar: "https://registrar.example:8443".into(),
            serial: "SN-1".into(),
            ldevid_tpm_handle: None,
        }
    }

    fn file_key(k: &SoftwareKey) -> LdevidKey {
        let copy = SoftwareKey::from_pem(&k.to_pkcs8_pem()).expect("copy");
        LdevidKey::File(Arc::new(copy))
    }

    /// A TPM key reference for the public key of `k` (the private half stays in the test).
    fn tpm_key(handle: u32, k: &SoftwareKey) -> LdevidKey {
        LdevidKey::Tpm(TpmLdevid::new(handle, k.public_key_spki()))
    }

    /// Whether any file of the directory holds a PEM private key.
    fn any_private_key(dir: &Path) -> bool {
        std::fs::read_dir(dir).expect("dir").flatten().any(|e| {
            std::fs::read(e.path())
                .map(|b| String::from_utf8_lossy(&b).contains("PRIVATE KEY"))
                .unwrap_or(false)
        })
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn commit_then_load_round_trips_with_private_key_owner_only() {
        let f = fixture();
        let (k, c) = f.enrolled();
        let e = f
            .state
            .load_enrollment("SN-1", TimeCheck::Now)
            .expect("enrolled");
        assert_eq!(e.ldevid, c);
        assert_eq!(e.key.spki().expect("spki"), k.public_key_spki());
        assert_eq!(e.state, state_file());
        assert_eq!(mode(&f.state.path(LDEVID_KEY)), 0o600);
        assert_eq!(mode(&f.state.path(LDEVID_CERT)), 0o644);
    }

    #[test]
    fn not_enrolled_without_state_json_for_this_serial() {
        let f = fixture();
        assert_eq!(
            f.state.load_enrollment("SN-1", TimeCheck::Now).err(),
            Some("no state.json".to_string())
        );
        f.enrolled();
        let err = f
            .state
            .load_enrollment("SN-2", TimeCheck::Now)
            .expect_err("other serial");
        assert!(err.contains("is for serial"), "{err}");
        f.state.forget().expect("forget");
        assert!(!f.state.path(STATE).exists());
        assert!(f.state.load_enrollment("SN-1", TimeCheck::Now).is_err());
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_not_an_enrollment() {
        let f = fixture();
        f.enrolled();
        // A crash between the key and the certificate of a new bootstrap.
        std::fs::write(f.state.path(LDEVID_KEY), key().to_pkcs8_pem()).expect("write");
        let err = f
            .state
            .load_enrollment("SN-1", TimeCheck::Now)
            .expect_err("mismatch");
        assert_eq!(err, "ldevid.key.pem does not belong to ldevid.crt.pem");
    }

    #[test]
    fn an_ldevid_from_another_ca_is_not_an_enrollment() {
        let f = fixture();
        f.enrolled();
        let other = fixture();
        other
            .state
            .write_domain_ca(std::slice::from_ref(&other.ca))
            .expect("write");
        std::fs::copy(other.state.path(DOMAIN_CA), f.state.path(DOMAIN_CA)).expect("copy");
        let err = f
            .state
            .load_enrollment("SN-1", TimeCheck::Now)
            .expect_err("untrusted");
        assert!(err.starts_with("LDevID: no path"), "{err}");
    }

    #[test]
    fn renewal_replaces_the_pair_and_leaves_no_stage() {
        let f = fixture();
        f.enrolled();
        let k2 = key();
        let c2 = f.ldevid(&k2);
        f.state
            .commit_renewal(&file_key(&k2), std::slice::from_ref(&c2))
            .expect("renew");
        assert!(!f.state.path(RENEW_CERT).exists());
        assert!(!f.state.path(RENEW_KEY).exists());
        let e = f.state.load_enrollment("SN-1", TimeCheck::Now).expect("ok");
        assert_eq!(e.ldevid, c2);
    }

    #[test]
    fn recover_completes_a_renewal_interrupted_between_key_and_certificate() {
        let f = fixture();
        let (_, c1) = f.enrolled();
        let k2 = key();
        let c2 = f.ldevid(&k2);
        // Staged pair written, then the new key installed, then a crash.
        f.state
            .write(RENEW_KEY, k2.to_pkcs8_pem().as_bytes(), KEY_MODE)
            .expect("w");
        f.state
            .write(
                RENEW_CERT,
                certs_to_pem(std::slice::from_ref(&c2)).as_bytes(),
                PUBLIC_MODE,
            )
            .expect("w");
        f.state
            .write(LDEVID_KEY, k2.to_pkcs8_pem().as_bytes(), KEY_MODE)
            .expect("w");
        assert!(f.state.load_enrollment("SN-1", TimeCheck::Now).is_err());
        f.state.recover().expect("recover");
        let e = f.state.load_enrollment("SN-1", TimeCheck::Now).expect("ok");
        assert_eq!(e.ldevid, c2);
        assert_ne!(e.ldevid, c1);
        assert!(!f.state.path(RENEW_KEY).exists());
    }

    #[test]
    fn recover_discards_a_stage_without_certificate_and_temporary_files() {
        let f = fixture();
        let (_, c1) = f.enrolled();
        f.state
            .write(RENEW_KEY, key().to_pkcs8_pem().as_bytes(), KEY_MODE)
            .expect("w");
        let tmp = f.dir.path().join(".ldevid.key.pem.tmp.4242");
        std::fs::write(&tmp, b"-----BEGIN PRIVATE KEY-----\nhalf").expect("w");
        let foreign = f.dir.path().join(".other.tmp.1");
        std::fs::write(&foreign, b"not ours").expect("w");
        f.state.recover().expect("recover");
        assert!(!f.state.path(RENEW_KEY).exists());
        assert!(!tmp.exists(), "temporary file of ours removed");
        assert!(foreign.exists(), "files of others are left alone");
        let e = f.state.load_enrollment("SN-1", TimeCheck::Now).expect("ok");
        assert_eq!(e.ldevid, c1);
    }

    #[test]
    fn tpm_enrollment_keeps_only_a_reference_and_the_handle_in_state_json() {
        let f = fixture();
        let k = key();
        let c = f.ldevid(&k);
        f.state
            .write_domain_ca(std::slice::from_ref(&f.ca))
            .expect("ca");
        let mut st = state_file();
        st.ldevid_tpm_handle = Some(0x8102_0001);
        f.state
            .commit_enrollment(&tpm_key(0x8102_0001, &k), std::slice::from_ref(&c), &st)
            .expect("commit");
        assert!(!f.state.path(LDEVID_KEY).exists());
        assert!(!any_private_key(f.dir.path()));
        let e = f.state.load_enrollment("SN-1", TimeCheck::Now).expect("ok");
        assert_eq!(e.key.tpm_handle(), Some(0x8102_0001));
        assert_eq!(e.key.spki().expect("spki"), k.public_key_spki());
        assert_eq!(e.state, st);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(f.state.path(STATE)).expect("state"))
                .expect("json");
        assert_eq!(json["ldevid-tpm-handle"], 0x8102_0001u32);

        // Renewal into the other slot updates ldevid.tpm and state.json together.
        let k2 = key();
        let c2 = f.ldevid(&k2);
        f.state
            .commit_renewal(&tpm_key(0x8102_0002, &k2), std::slice::from_ref(&c2))
            .expect("renew");
        let e = f.state.load_enrollment("SN-1", TimeCheck::Now).expect("ok");
        assert_eq!((e.ldevid, e.key.tpm_handle()), (c2, Some(0x8102_0002)));
        assert_eq!(e.state.ldevid_tpm_handle, Some(0x8102_0002));
        assert!(!f.state.path(RENEW_TPM).exists() && !f.state.path(RENEW_CERT).exists());
        assert!(!any_private_key(f.dir.path()));
    }

    #[test]
    fn a_tpm_reference_to_another_key_is_not_an_enrollment() {
        let f = fixture();
        f.enrolled();
        // A crash after ldevid.tpm of a new bootstrap was written: it names another key.
        f.state
            .write_key(&tpm_key(0x8102_0001, &key()), LDEVID_KEY, LDEVID_TPM)
            .expect("w");
        f.state.remove(LDEVID_KEY).expect("rm");
        let err = f
            .state
            .load_enrollment("SN-1", TimeCheck::Now)
            .expect_err("mismatch");
        assert_eq!(
            err,
            "neither ldevid.tpm nor ldevid.key.pem belongs to ldevid.crt.pem"
        );
        // A malformed reference is no key either.
        std::fs::write(
            f.state.path(LDEVID_TPM),
            b"{\"handle\": 1, \"public-key\": \"zz\"}",
        )
        .expect("w");
        assert!(f.state.load_enrollment("SN-1", TimeCheck::Now).is_err());
    }

    #[test]
    fn recover_completes_a_tpm_renewal_interrupted_after_the_stage() {
        let f = fixture();
        let k1 = key();
        let c1 = f.ldevid(&k1);
        f.state
            .write_domain_ca(std::slice::from_ref(&f.ca))
            .expect("ca");
        let mut st = state_file();
        st.ldevid_tpm_handle = Some(0x8102_0001);
        f.state
            .commit_enrollment(&tpm_key(0x8102_0001, &k1), std::slice::from_ref(&c1), &st)
            .expect("commit");
        let k2 = key();
        let c2 = f.ldevid(&k2);
        f.state
            .write_key(&tpm_key(0x8102_0002, &k2), RENEW_KEY, RENEW_TPM)
            .expect("w");
        f.state
            .write(
                RENEW_CERT,
                certs_to_pem(std::slice::from_ref(&c2)).as_bytes(),
                PUBLIC_MODE,
            )
            .expect("w");
        // Crash: ldevid.tpm rewritten, not yet the certificate.
        f.state
            .write_key(&tpm_key(0x8102_0002, &k2), LDEVID_KEY, LDEVID_TPM)
            .expect("w");
        assert!(f.state.load_enrollment("SN-1", TimeCheck::Now).is_err());
        f.state.recover().expect("recover");
        let e = f.state.load_enrollment("SN-1", TimeCheck::Now).expect("ok");
        assert_eq!((e.ldevid, e.key.tpm_handle()), (c2, Some(0x8102_0002)));
        assert_eq!(e.state.ldevid_tpm_handle, Some(0x8102_0002));
        assert!(!f.state.path(RENEW_TPM).exists());
    }

    #[test]
    fn renewal_time_is_the_fraction_of_the_lifetime() {
        let nb = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let na = nb + Duration::from_secs(300);
        assert_eq!(
            renewal_time(nb, na, 2.0 / 3.0),
            nb + Duration::from_secs(200)
        );
        assert_eq!(renewal_time(nb, na, 0.0), nb);
        assert_eq!(renewal_time(nb, na, 7.0), na, "clamped");
        assert_eq!(renewal_time(na, nb, 0.5), na, "empty period");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn state_json_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = StateFile::from_json(&bytes);
        }

        #[test]
        fn ldevid_tpm_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = TpmLdevid::from_json(&bytes);
        }

        #[test]
        fn mutated_ldevid_tpm_never_panics(pos in 0usize..400, byte in any::<u8>()) {
            let mut bytes = TpmLdevid::new(0x8102_0001, &[0x30, 0x59, 0x30, 0x13]).to_json().expect("json");
            let i = pos % bytes.len();
            bytes[i] = byte;
            let _ = TpmLdevid::from_json(&bytes);
        }

        #[test]
        fn mutated_state_json_never_panics(pos in 0usize..200, byte in any::<u8>()) {
            let mut bytes = state_file().to_json().expect("json");
            let i = pos % bytes.len();
            bytes[i] = byte;
            let _ = StateFile::from_json(&bytes);
        }
    }
}
