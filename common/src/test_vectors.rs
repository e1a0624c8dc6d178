//! Locating the RFCs' example artifacts (`vectors/` at the repository root) in tests.

use std::path::PathBuf;

/// The vectors directory: `$BRSKI_VECTORS`, or `vectors/` at the root of this repository.
pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BRSKI_VECTORS").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../vectors")
}

/// Read a vector file, with its `#` header lines, as bytes.
pub fn read(rel: &str) -> Vec<u8> {
    let path = dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("vector {}: {e}", path.display()))
}

/// A vector file decoded to the artifact's bytes (base64, hex or PEM, headers skipped).
pub fn bytes(rel: &str) -> Vec<u8> {
    let (_, mut items) =
        crate::input::artifact_bytes(&read(rel)).unwrap_or_else(|e| panic!("vector {rel}: {e}"));
    items.swap_remove(0)
}

/// A certificate from a vector file (PEM or hex).
pub fn cert(rel: &str) -> x509_cert::Certificate {
    use der::Decode;
    x509_cert::Certificate::from_der(&bytes(rel)).unwrap_or_else(|e| panic!("cert {rel}: {e}"))
}

/// Apply `edits` (position, byte, kind) to `base`: overwrite, insert, delete or truncate. The
/// property tests feed decoders vector bytes mutated this way.
pub fn mutate(mut base: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(pos, byte, kind) in edits {
        if base.is_empty() {
            base.push(byte);
            continue;
        }
        let i = pos % base.len();
        match kind % 4 {
            0 => base[i] = byte,
            1 => base.insert(i, byte),
            2 => {
                base.remove(i);
            }
            _ => base.truncate(i),
        }
    }
    base
}
