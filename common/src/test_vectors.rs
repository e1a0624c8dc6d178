//! Locating the shared example artifacts (`shared/spec/vectors`) in tests.

use std::path::PathBuf;

/// The vectors directory: `$BRSKI_VECTORS`, or `shared/spec/vectors` beside the repository.
pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BRSKI_VECTORS") {
        return PathBuf::from(d);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for up in root.ancestors() {
        let candidate = up.join("shared/spec/vectors");
        if candidate.is_dir() {
            return candidate;
        }
    }
    root.join("../../shared/spec/vectors")
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
