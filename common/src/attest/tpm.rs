//! TPM 2.0 wire structures of attestation evidence (TPM 2.0 Library, Part 2: Structures):
//! `TPMS_ATTEST` (§10.12.12) of TPM2_Certify and TPM2_Quote, `TPMT_SIGNATURE` (§11.3.4) and
//! `TPMT_PUBLIC` (§12.2.4), with the object Name (Part 1 §16) and the X.509
//! `SubjectPublicKeyInfo` of a public area (RFC 5480 §2, RFC 8017 §A.1.1).
//!
//! The bytes come from the device, so every decoder checks each size against what is left and
//! against the structure's maximum, refuses trailing bytes, and returns a [`TpmError`].

use const_oid::db::rfc5912;
use der::Encode;
use der::asn1::{BitString, UintRef};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

/// `TPM_GENERATED_VALUE`: the magic that starts every structure the TPM signs (§6.2).
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_CERTIFY` (§6.9).
pub const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;
/// `TPM_ST_ATTEST_QUOTE` (§6.9).
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;

/// TPM_ALG_ID values used here (§6.3).
pub mod alg {
    pub const RSA: u16 = 0x0001;
    pub const SHA1: u16 = 0x0004;
    pub const HMAC: u16 = 0x0005;
    pub const AES: u16 = 0x0006;
    pub const KEYEDHASH: u16 = 0x0008;
    pub const XOR: u16 = 0x000a;
    pub const SHA256: u16 = 0x000b;
    pub const SHA384: u16 = 0x000c;
    pub const SHA512: u16 = 0x000d;
    pub const NULL: u16 = 0x0010;
    pub const RSASSA: u16 = 0x0014;
    pub const RSAES: u16 = 0x0015;
    pub const RSAPSS: u16 = 0x0016;
    pub const OAEP: u16 = 0x0017;
    pub const ECDSA: u16 = 0x0018;
    pub const ECDH: u16 = 0x0019;
    pub const ECDAA: u16 = 0x001a;
    pub const SM2: u16 = 0x001b;
    pub const ECSCHNORR: u16 = 0x001c;
    pub const ECMQV: u16 = 0x001d;
    pub const ECC: u16 = 0x0023;
    pub const SYMCIPHER: u16 = 0x0025;
}

/// TPM_ECC_CURVE values (§6.4).
pub mod curve {
    pub const NIST_P256: u16 = 0x0003;
    pub const NIST_P384: u16 = 0x0004;
    pub const NIST_P521: u16 = 0x0005;
}

/// Bits of TPMA_OBJECT (§8.3).
pub mod attr {
    pub const FIXED_TPM: u32 = 1 << 1;
    pub const ST_CLEAR: u32 = 1 << 2;
    pub const FIXED_PARENT: u32 = 1 << 4;
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    pub const ADMIN_WITH_POLICY: u32 = 1 << 7;
    pub const NO_DA: u32 = 1 << 10;
    pub const ENCRYPTED_DUPLICATION: u32 = 1 << 11;
    pub const RESTRICTED: u32 = 1 << 16;
    pub const DECRYPT: u32 = 1 << 17;
    pub const SIGN_ENCRYPT: u32 = 1 << 18;
    pub const X509_SIGN: u32 = 1 << 19;
}

/// The largest TPM2B this module accepts: TPM2B_PUBLIC_KEY_RSA holds up to 512 bytes
/// (MAX_RSA_KEY_BYTES for RSA-4096), every other field is shorter.
const MAX_TPM2B: usize = 512;
/// TPM2B_NAME: a TPM_ALG_ID and a digest of at most 64 bytes, or a 4-byte handle (§10.5.3).
const MAX_NAME: usize = 2 + 64;
/// TPM2B_DIGEST / TPM2B_DATA: sizeof(TPMU_HA), 64 bytes (§10.4.2, §10.4.3).
const MAX_DIGEST: usize = 64;
/// TPMS_PCR_SELECTION.sizeofSelect: PCR_SELECT_MAX; 32 bytes = 256 PCRs is ample (§10.6.2).
const MAX_PCR_SELECT: usize = 32;
/// TPML_PCR_SELECTION.count: HASH_COUNT, one selection per PCR bank (§10.9.7).
const MAX_PCR_BANKS: u32 = 16;

/// Why TPM bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TpmError {
    #[error("{structure}: truncated in {field}")]
    Truncated {
        structure: &'static str,
        field: &'static str,
    },
    #[error("{structure}: {field} has {size} bytes, at most {max} allowed")]
    TooLarge {
        structure: &'static str,
        field: &'static str,
        size: usize,
        max: usize,
    },
    #[error("{structure}: {count} bytes after the end")]
    Trailing {
        structure: &'static str,
        count: usize,
    },
    #[error("TPMS_ATTEST: magic {0:#010x} is not TPM_GENERATED_VALUE")]
    NotTpmGenerated(u32),
    #[error("{structure}: unsupported {field} {value:#06x}")]
    Unsupported {
        structure: &'static str,
        field: &'static str,
        value: u32,
    },
    #[error("{structure}: {reason}")]
    Invalid {
        structure: &'static str,
        reason: String,
    },
}

/// A big-endian cursor over TPM marshalled bytes (no padding, sizes before contents).
struct Reader<'a> {
    data: &'a [u8],
    structure: &'static str,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], structure: &'static str) -> Self {
        Self { data, structure }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], TpmError> {
        if self.data.len() < n {
            return Err(TpmError::Truncated {
                structure: self.structure,
                field,
            });
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], TpmError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, TpmError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, TpmError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, TpmError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, TpmError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A TPM2B: a 16-bit size, then that many bytes, at most `max`.
    fn tpm2b(&mut self, field: &'static str, max: usize) -> Result<Vec<u8>, TpmError> {
        let size = usize::from(self.u16(field)?);
        if size > max {
            return Err(TpmError::TooLarge {
                structure: self.structure,
                field,
                size,
                max,
            });
        }
        Ok(self.take(size, field)?.to_vec())
    }

    fn unsupported(&self, field: &'static str, value: impl Into<u32>) -> TpmError {
        TpmError::Unsupported {
            structure: self.structure,
            field,
            value: value.into(),
        }
    }

    fn finish(self) -> Result<(), TpmError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(TpmError::Trailing {
                structure: self.structure,
                count: self.data.len(),
            })
        }
    }
}

/// A hash algorithm of TPM evidence (TPMI_ALG_HASH, §9.27).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// The TPM_ALG_ID, or `None` for another value.
    pub fn from_tpm(id: u16) -> Option<Self> {
        match id {
            alg::SHA1 => Some(Self::Sha1),
            alg::SHA256 => Some(Self::Sha256),
            alg::SHA384 => Some(Self::Sha384),
            alg::SHA512 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The TPM_ALG_ID.
    pub fn tpm_id(self) -> u16 {
        match self {
            Self::Sha1 => alg::SHA1,
            Self::Sha256 => alg::SHA256,
            Self::Sha384 => alg::SHA384,
            Self::Sha512 => alg::SHA512,
        }
    }

    /// The digest length in bytes.
    pub fn digest_len(self) -> usize {
        self.aws().output_len()
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        aws_lc_rs::digest::digest(self.aws(), data)
            .as_ref()
            .to_vec()
    }

    fn aws(self) -> &'static aws_lc_rs::digest::Algorithm {
        match self {
            Self::Sha1 => &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &aws_lc_rs::digest::SHA256,
            Self::Sha384 => &aws_lc_rs::digest::SHA384,
            Self::Sha512 => &aws_lc_rs::digest::SHA512,
        }
    }
}

fn hash_alg(r: &Reader<'_>, id: u16, field: &'static str) -> Result<HashAlg, TpmError> {
    HashAlg::from_tpm(id).ok_or_else(|| r.unsupported(field, id))
}

/// TPMS_CLOCK_INFO (§10.11.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClockInfo {
    pub clock: u64,
    pub reset_count: u32,
    pub restart_count: u32,
    pub safe: bool,
}

/// The PCRs of one bank (TPMS_PCR_SELECTION, §10.6.2), indices ascending.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PcrBank {
    pub hash: HashAlg,
    pub pcrs: Vec<u16>,
}

/// TPML_PCR_SELECTION (§10.9.7): the PCRs a quote covers, bank by bank in marshalled order.
/// The quote's pcrDigest hashes the selected values in this order (Part 3 §18.4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PcrSelection(pub Vec<PcrBank>);

impl PcrSelection {
    /// The number of PCR values the selection covers.
    pub fn count(&self) -> usize {
        self.0.iter().map(|b| b.pcrs.len()).sum()
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, TpmError> {
        let count = r.u32("TPML_PCR_SELECTION.count")?;
        if count > MAX_PCR_BANKS {
            return Err(TpmError::TooLarge {
                structure: r.structure,
                field: "TPML_PCR_SELECTION.count",
                size: count as usize,
                max: MAX_PCR_BANKS as usize,
            });
        }
        let mut banks = Vec::new();
        for _ in 0..count {
            let id = r.u16("TPMS_PCR_SELECTION.hash")?;
            let hash = hash_alg(r, id, "TPMS_PCR_SELECTION.hash")?;
            let size = usize::from(r.u8("TPMS_PCR_SELECTION.sizeofSelect")?);
            if size > MAX_PCR_SELECT {
                return Err(TpmError::TooLarge {
                    structure: r.structure,
                    field: "TPMS_PCR_SELECTION.pcrSelect",
                    size,
                    max: MAX_PCR_SELECT,
                });
            }
            let bits = r.take(size, "TPMS_PCR_SELECTION.pcrSelect")?;
            // Octet i, bit j (least significant first) selects PCR 8i + j.
            let pcrs = (0..size * 8)
                .filter(|&n| bits[n / 8] & (1 << (n % 8)) != 0)
                .filter_map(|n| u16::try_from(n).ok())
                .collect();
            banks.push(PcrBank { hash, pcrs });
        }
        Ok(Self(banks))
    }
}

/// The type-specific part of a TPMS_ATTEST (TPMU_ATTEST, §10.12.11), for the two types this
/// suite appraises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attested {
    /// TPMS_CERTIFY_INFO (§10.12.3): the Name and Qualified Name of the certified object.
    Certify {
        name: Vec<u8>,
        qualified_name: Vec<u8>,
    },
    /// TPMS_QUOTE_INFO (§10.12.4): the quoted PCRs and the digest of their values.
    Quote {
        pcr_select: PcrSelection,
        pcr_digest: Vec<u8>,
    },
}

/// TPMS_ATTEST (§10.12.12), as signed by TPM2_Certify or TPM2_Quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmsAttest {
    /// The TPM_ST_ATTEST_* tag (kept for error messages; [`Self::attested`] follows it).
    pub attest_type: u16,
    /// The Qualified Name of the signing key.
    pub qualified_signer: Vec<u8>,
    /// The caller's qualifying data (a nonce for freshness).
    pub extra_data: Vec<u8>,
    pub clock_info: ClockInfo,
    pub firmware_version: u64,
    pub attested: Attested,
}

impl TpmsAttest {
    /// Decode a marshalled TPMS_ATTEST (the content of a TPM2B_ATTEST, without its size).
    /// The magic must be TPM_GENERATED_VALUE; the type certify or quote.
    pub fn decode(bytes: &[u8]) -> Result<Self, TpmError> {
        let mut r = Reader::new(bytes, "TPMS_ATTEST");
        let magic = r.u32("magic")?;
        if magic != TPM_GENERATED_VALUE {
            return Err(TpmError::NotTpmGenerated(magic));
        }
        let attest_type = r.u16("type")?;
        if attest_type != TPM_ST_ATTEST_CERTIFY && attest_type != TPM_ST_ATTEST_QUOTE {
            return Err(r.unsupported("type", attest_type));
        }
        let qualified_signer = r.tpm2b("qualifiedSigner", MAX_NAME)?;
        let extra_data = r.tpm2b("extraData", MAX_DIGEST)?;
        let clock_info = ClockInfo {
            clock: r.u64("clockInfo.clock")?,
            reset_count: r.u32("clockInfo.resetCount")?,
            restart_count: r.u32("clockInfo.restartCount")?,
            safe: match r.u8("clockInfo.safe")? {
                0 => false,
                1 => true,
                other => return Err(r.unsupported("clockInfo.safe", other)),
            },
        };
        let firmware_version = r.u64("firmwareVersion")?;
        let attested = if attest_type == TPM_ST_ATTEST_CERTIFY {
            Attested::Certify {
                name: r.tpm2b("certify.name", MAX_NAME)?,
                qualified_name: r.tpm2b("certify.qualifiedName", MAX_NAME)?,
            }
        } else {
            Attested::Quote {
                pcr_select: PcrSelection::decode(&mut r)?,
                pcr_digest: r.tpm2b("quote.pcrDigest", MAX_DIGEST)?,
            }
        };
        r.finish()?;
        Ok(Self {
            attest_type,
            qualified_signer,
            extra_data,
            clock_info,
            firmware_version,
            attested,
        })
    }
}

/// TPMT_SIGNATURE (§11.3.4) for the schemes an attestation key signs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TpmtSignature {
    /// TPM_ALG_RSASSA (PKCS#1 v1.5).
    Rsassa { hash: HashAlg, sig: Vec<u8> },
    /// TPM_ALG_RSAPSS.
    Rsapss { hash: HashAlg, sig: Vec<u8> },
    /// TPM_ALG_ECDSA: r and s as unsigned big-endian integers.
    Ecdsa {
        hash: HashAlg,
        r: Vec<u8>,
        s: Vec<u8>,
    },
}

impl TpmtSignature {
    /// Decode a marshalled TPMT_SIGNATURE (as tpm2-tools writes it by default).
    pub fn decode(bytes: &[u8]) -> Result<Self, TpmError> {
        let mut r = Reader::new(bytes, "TPMT_SIGNATURE");
        let sig_alg = r.u16("sigAlg")?;
        let out = match sig_alg {
            alg::RSASSA | alg::RSAPSS => {
                let id = r.u16("hash")?;
                let hash = hash_alg(&r, id, "hash")?;
                let sig = r.tpm2b("sig", MAX_TPM2B)?;
                if sig_alg == alg::RSASSA {
                    Self::Rsassa { hash, sig }
                } else {
                    Self::Rsapss { hash, sig }
                }
            }
            alg::ECDSA => {
                let id = r.u16("hash")?;
                let hash = hash_alg(&r, id, "hash")?;
                let r_ = r.tpm2b("signatureR", MAX_ECC_BYTES)?;
                let s = r.tpm2b("signatureS", MAX_ECC_BYTES)?;
                Self::Ecdsa { hash, r: r_, s }
            }
            other => return Err(r.unsupported("sigAlg", other)),
        };
        r.finish()?;
        Ok(out)
    }

    /// The hash algorithm the signature was made with.
    pub fn hash(&self) -> HashAlg {
        match self {
            Self::Rsassa { hash, .. } | Self::Rsapss { hash, .. } | Self::Ecdsa { hash, .. } => {
                *hash
            }
        }
    }
}

/// MAX_ECC_KEY_BYTES: P-521 coordinates and scalars.
const MAX_ECC_BYTES: usize = 66;

/// The key of a TPMT_PUBLIC (TPMU_PUBLIC_PARMS + TPMU_PUBLIC_ID, §12.2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// An RSA key: modulus and public exponent (0 in the TPM means 65537).
    Rsa {
        key_bits: u16,
        exponent: u32,
        modulus: Vec<u8>,
    },
    /// An ECC key on a TPM_ECC_CURVE, with its point.
    Ecc { curve: u16, x: Vec<u8>, y: Vec<u8> },
}

/// TPMT_PUBLIC (§12.2.4) of an RSA or ECC key; the marshalled bytes are kept, since the Name
/// hashes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmtPublic {
    /// nameAlg: the hash of the object's Name.
    pub name_alg: HashAlg,
    /// objectAttributes: bits of [`attr`].
    pub object_attributes: u32,
    pub auth_policy: Vec<u8>,
    /// The signing scheme of the key (TPM_ALG_NULL when the key takes any).
    pub scheme: u16,
    pub key: PublicKey,
    raw: Vec<u8>,
}

impl TpmtPublic {
    /// Decode a marshalled TPMT_PUBLIC (a TPM2B_PUBLIC without its 2-byte size).
    pub fn decode(bytes: &[u8]) -> Result<Self, TpmError> {
        let mut r = Reader::new(bytes, "TPMT_PUBLIC");
        let key_type = r.u16("type")?;
        if key_type != alg::RSA && key_type != alg::ECC {
            return Err(r.unsupported("type", key_type));
        }
        let name_id = r.u16("nameAlg")?;
        let name_alg = hash_alg(&r, name_id, "nameAlg")?;
        let object_attributes = r.u32("objectAttributes")?;
        let auth_policy = r.tpm2b("authPolicy", MAX_DIGEST)?;
        sym_def_object(&mut r)?;
        let scheme = asym_scheme(&mut r)?;
        let key = if key_type == alg::RSA {
            let key_bits = r.u16("keyBits")?;
            let exponent = r.u32("exponent")?;
            let modulus = r.tpm2b("unique.rsa", MAX_TPM2B)?;
            PublicKey::Rsa {
                key_bits,
                exponent,
                modulus,
            }
        } else {
            let curve = r.u16("curveID")?;
            let kdf = r.u16("kdf.scheme")?;
            if kdf != alg::NULL {
                r.u16("kdf.hashAlg")?;
            }
            let x = r.tpm2b("unique.ecc.x", MAX_ECC_BYTES)?;
            let y = r.tpm2b("unique.ecc.y", MAX_ECC_BYTES)?;
            PublicKey::Ecc { curve, x, y }
        };
        r.finish()?;
        Ok(Self {
            name_alg,
            object_attributes,
            auth_policy,
            scheme,
            key,
            raw: bytes.to_vec(),
        })
    }

    /// Whether every bit of `bits` (see [`attr`]) is set in objectAttributes.
    pub fn has(&self, bits: u32) -> bool {
        self.object_attributes & bits == bits
    }

    /// The marshalled TPMT_PUBLIC.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The object's Name (Part 1 §16): nameAlg (2 bytes) || H_nameAlg(TPMT_PUBLIC).
    pub fn name(&self) -> Vec<u8> {
        let mut name = self.name_alg.tpm_id().to_be_bytes().to_vec();
        name.extend(self.name_alg.digest(&self.raw));
        name
    }

    /// The key as an X.509 SubjectPublicKeyInfo (DER): id-ecPublicKey with the named curve and
    /// the uncompressed point (RFC 5480 §2), or rsaEncryption with RSAPublicKey (RFC 8017).
    pub fn spki_der(&self) -> Result<Vec<u8>, TpmError> {
        let invalid = |reason: String| TpmError::Invalid {
            structure: "TPMT_PUBLIC",
            reason,
        };
        let (algorithm, key_bits) = match &self.key {
            PublicKey::Ecc { curve, x, y } => {
                let (oid, size) = match *curve {
                    curve::NIST_P256 => (rfc5912::SECP_256_R_1, 32),
                    curve::NIST_P384 => (rfc5912::SECP_384_R_1, 48),
                    curve::NIST_P521 => (rfc5912::SECP_521_R_1, 66),
                    other => return Err(invalid(format!("unsupported curve {other:#06x}"))),
                };
                let mut point = vec![0x04];
                for c in [x, y] {
                    let c = strip_leading_zeros(c);
                    if c.len() > size {
                        return Err(invalid(format!("ECC coordinate longer than {size} bytes")));
                    }
                    point.extend(std::iter::repeat_n(0, size - c.len()));
                    point.extend_from_slice(c);
                }
                let params = der::Any::encode_from(&oid).map_err(|e| invalid(e.to_string()))?;
                let algorithm = AlgorithmIdentifierOwned {
                    oid: rfc5912::ID_EC_PUBLIC_KEY,
                    parameters: Some(params),
                };
                (algorithm, point)
            }
            PublicKey::Rsa {
                exponent, modulus, ..
            } => {
                if modulus.is_empty() {
                    return Err(invalid("empty RSA modulus".into()));
                }
                let e = if *exponent == 0 { 65537 } else { *exponent };
                let e = e.to_be_bytes();
                #[derive(der::Sequence)]
                struct RsaPublicKey<'a> {
                    n: UintRef<'a>,
                    e: UintRef<'a>,
                }
                let rsa = RsaPublicKey {
                    n: UintRef::new(modulus).map_err(|e| invalid(e.to_string()))?,
                    e: UintRef::new(&e).map_err(|e| invalid(e.to_string()))?,
                };
                let algorithm = AlgorithmIdentifierOwned {
                    oid: rfc5912::RSA_ENCRYPTION,
                    parameters: Some(der::asn1::Null.into()),
                };
                (algorithm, rsa.to_der().map_err(|e| invalid(e.to_string()))?)
            }
        };
        SubjectPublicKeyInfoOwned {
            algorithm,
            subject_public_key: BitString::from_bytes(&key_bits)
                .map_err(|e| invalid(e.to_string()))?,
        }
        .to_der()
        .map_err(|e| invalid(e.to_string()))
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

/// TPMT_SYM_DEF_OBJECT (§11.1.7): TPM_ALG_NULL, or an algorithm with keyBits and mode.
fn sym_def_object(r: &mut Reader<'_>) -> Result<(), TpmError> {
    let algorithm = r.u16("symmetric.algorithm")?;
    if algorithm != alg::NULL {
        r.u16("symmetric.keyBits")?;
        if algorithm != alg::XOR {
            r.u16("symmetric.mode")?;
        }
    }
    Ok(())
}

/// TPMT_RSA_SCHEME / TPMT_ECC_SCHEME (§11.2.4, §11.2.5): the scheme, then its hash (and
/// ECDAA's count) unless the scheme has no details.
fn asym_scheme(r: &mut Reader<'_>) -> Result<u16, TpmError> {
    let scheme = r.u16("scheme")?;
    match scheme {
        alg::NULL | alg::RSAES => {}
        alg::RSASSA
        | alg::RSAPSS
        | alg::OAEP
        | alg::ECDSA
        | alg::ECDH
        | alg::SM2
        | alg::ECSCHNORR
        | alg::ECMQV => {
            r.u16("scheme.hashAlg")?;
        }
        alg::ECDAA => {
            r.u16("scheme.hashAlg")?;
            r.u16("scheme.count")?;
        }
        other => return Err(r.unsupported("scheme", other)),
    }
    Ok(scheme)
}
