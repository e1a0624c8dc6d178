//! Reading certificates and keys, and writing files atomically (write to a temporary file in
//! the same directory, fsync, rename, fsync the directory), so that a crash never leaves a
//! half-written credential behind.

use brski_common::input::{pem_blocks, to_pem};
use brski_common::keys::SoftwareKey;
use der::{Decode, Encode};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use x509_cert::Certificate;

/// Errors reading or writing credential files.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no certificate found")]
    NoCertificate { path: PathBuf },
    #[error("{path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The DER of every certificate in a PEM file, in order (e.g. `database-ca`); none without a
/// file.
pub fn read_certs_der(path: Option<&Path>) -> Result<Vec<Vec<u8>>, FileError> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    read_certs(path)?
        .iter()
        .map(der::Encode::to_der)
        .collect::<Result<_, _>>()
        .map_err(|e| FileError::Malformed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// All certificates in a PEM file, in order.
pub fn read_certs(path: &Path) -> Result<Vec<Certificate>, FileError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let blocks = pem_blocks(&text, &["CERTIFICATE"]).map_err(|e| FileError::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let certs = blocks
        .iter()
        .map(|d| Certificate::from_der(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FileError::Malformed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(FileError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// A private key from a PEM file.
pub fn read_key(path: &Path) -> Result<SoftwareKey, FileError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    SoftwareKey::from_pem(&text).map_err(|e| FileError::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Certificates as a PEM document.
pub fn certs_to_pem(certs: &[Certificate]) -> String {
    certs
        .iter()
        .filter_map(|c| c.to_der().ok())
        .map(|d| to_pem("CERTIFICATE", &d))
        .collect()
}

/// Write `data` to `path` atomically with permissions `mode` (e.g. 0o600 for keys).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), FileError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(data).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
