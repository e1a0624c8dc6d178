//! The pledge's state directory. Every file is written atomically (temporary file, fsync,
//! rename), in an order that makes any crash recoverable:
//!
//! - bootstrap: `voucher.*`, `domain-ca.crt.pem`, `ldevid.key.pem`, `ldevid.crt.pem`, and
//!   `state.json` last. Without a valid `state.json` the pledge is not enrolled and a rerun
//!   starts over, overwriting whatever an interrupted run left.
//! - renewal: the new pair is first staged as `ldevid-renew.key.pem` + `ldevid-renew.crt.pem`,
//!   then installed over `ldevid.*`, then the staged files are removed. A complete staged pair
//!   found at start-up is (re)installed, an incomplete one discarded, so `ldevid.key.pem` and
//!   `ldevid.crt.pem` always end up belonging together.

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

/// Every file this module writes (temporary copies of them are cleaned up at start-up).
const OWN_FILES: [&str; 9] = [
    LDEVID_CERT,
    LDEVID_KEY,
    DOMAIN_CA,
    STATE,
    RENEW_CERT,
    RENEW_KEY,
    "voucher.vcj",
    "voucher.vjj",
    "voucher.vch",
];

/// `state.json`: written last, so that `enrolled: true` is only ever seen with complete
/// credentials next to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    pub enrolled: bool,
    /// The registrar the pledge enrolled with.
    pub registrar: String,
    pub serial: String,
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
    pub key: Arc<SoftwareKey>,
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

fn key_matches(key: &dyn Signer, cert: &Certificate) -> bool {
    cert.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .is_ok_and(|spki| spki == key.public_key_spki())
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
            let staged = read_certs(&self.path(RENEW_CERT))
                .ok()
                .zip(read_key(&self.path(RENEW_KEY)).ok())
                .filter(|(certs, key)| certs.first().is_some_and(|c| key_matches(key, c)));
            if let Some((certs, key)) = staged {
                tracing::info!("completing an interrupted renewal");
                self.install(&key, &certs)?;
            } else {
                tracing::warn!("discarding an incomplete staged renewal");
            }
        }
        self.remove(RENEW_CERT)?;
        self.remove(RENEW_KEY)?;
        self.sync_dir();
        Ok(())
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
        let key = read_key(&self.path(LDEVID_KEY)).map_err(|e| e.to_string())?;
        if !key_matches(&key, &ldevid) {
            return Err(format!("{LDEVID_KEY} does not belong to {LDEVID_CERT}"));
        }
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
            key: Arc::new(key),
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

    /// Keep the domain CA certificates from `/cacerts` (RFC 8995 §5.9.1).
    pub fn write_domain_ca(&self, certs: &[Certificate]) -> Result<(), Failure> {
        self.write(DOMAIN_CA, certs_to_pem(certs).as_bytes(), PUBLIC_MODE)
    }

    fn install(&self, key: &SoftwareKey, chain: &[Certificate]) -> Result<(), Failure> {
        self.write(LDEVID_KEY, key.to_pkcs8_pem().as_bytes(), KEY_MODE)?;
        self.write(LDEVID_CERT, certs_to_pem(chain).as_bytes(), PUBLIC_MODE)
    }

    /// Complete a bootstrap: the LDevID key, its certificate chain, then `state.json`.
    pub fn commit_enrollment(
        &self,
        key: &SoftwareKey,
        chain: &[Certificate],
        state: &StateFile,
    ) -> Result<(), Failure> {
        self.install(key, chain)?;
        self.write(STATE, &state.to_json()?, PUBLIC_MODE)
    }

    /// Replace the LDevID after a renewal: stage the new pair, install it, remove the stage.
    pub fn commit_renewal(&self, key: &SoftwareKey, chain: &[Certificate]) -> Result<(), Failure> {
        self.write(RENEW_KEY, key.to_pkcs8_pem().as_bytes(), KEY_MODE)?;
        self.write(RENEW_CERT, certs_to_pem(chain).as_bytes(), PUBLIC_MODE)?;
        self.install(key, chain)?;
        self.remove(RENEW_CERT)?;
        self.remove(RENEW_KEY)?;
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
                .commit_enrollment(&k, std::slice::from_ref(&c), &state_file())
                .expect("commit");
            (k, c)
        }
    }

    fn state_file() -> StateFile {
        StateFile {
            enrolled: true,
            registrar: "https://registrar.example:8443".into(),
            serial: "SN-1".into(),
        }
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
        assert_eq!(e.key.public_key_spki(), k.public_key_spki());
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
            .commit_renewal(&k2, std::slice::from_ref(&c2))
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
        fn mutated_state_json_never_panics(pos in 0usize..200, byte in any::<u8>()) {
            let mut bytes = state_file().to_json().expect("json");
            let i = pos % bytes.len();
            bytes[i] = byte;
            let _ = StateFile::from_json(&bytes);
        }
    }
}
