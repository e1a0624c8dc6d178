//! TPM errors, and the mapping of TSS2 response codes onto them (TPM 2.0 Library Part 2 §6.6,
//! TCG TSS 2.0 Overview §6.1.2 for the layer byte).

/// What went wrong talking to a TPM. Every message names the TCTI, so that a log line tells
/// which TPM (device, simulator, resource manager) was meant.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// The TCTI string does not parse (`device:PATH`, `swtpm:host=H,port=P`, `mssim:...`,
    /// `tabrmd:...`).
    #[error("invalid TCTI {tcti:?}: {reason}")]
    InvalidTcti { tcti: String, reason: String },
    /// Nothing answers at the TCTI (no device, simulator stopped, connection lost).
    #[error("no TPM reachable at TCTI {tcti}: {reason}")]
    Unreachable { tcti: String, reason: String },
    /// No object at this persistent handle.
    #[error("TPM at {tcti}: no key at persistent handle {handle:#010x}")]
    NoKeyAtHandle { tcti: String, handle: u32 },
    /// The TPM asked to be retried (TPM_RC_RETRY, TPM_RC_YIELDED, TPM_RC_TESTING, out of object
    /// memory, ...) and still did after a few attempts.
    #[error("TPM at {tcti} is busy ({reason}); retry later")]
    Busy { tcti: String, reason: String },
    /// The TPM is in dictionary-attack lockout: DA-protected keys cannot be used until the
    /// lockout recovery time has passed or the lockout is reset (TPM_RC_LOCKOUT).
    #[error(
        "TPM at {tcti} is in dictionary-attack lockout; the key cannot be used until it recovers"
    )]
    Lockout { tcti: String },
    /// The TPM does not offer what was asked (curve, scheme), or this crate does not.
    #[error("TPM at {tcti}: unsupported: {what}")]
    Unsupported { tcti: String, what: String },
    /// Not a persistent handle that the owner hierarchy may use (0x81000000–0x817FFFFF).
    #[error("{0:#010x} is not an owner persistent handle (0x81000000..=0x817fffff)")]
    InvalidHandle(u32),
    /// The handle is reserved for the IDevID and may not receive an LDevID.
    #[error("persistent handle {0:#010x} is reserved for the IDevID")]
    ReservedHandle(u32),
    /// The persistent handle already holds a different key, which is left untouched.
    #[error("TPM at {tcti}: persistent handle {handle:#010x} already holds a different key")]
    HandleOccupied { tcti: String, handle: u32 },
    /// The object at the handle is not an unrestricted ECDSA signing key on P-256 or P-384.
    #[error("TPM at {tcti}: the object at {handle:#010x} is not a usable signing key: {reason}")]
    UnusableKey {
        tcti: String,
        handle: u32,
        reason: String,
    },
    /// The key at the handle is not the one this signer was opened with (it was evicted and
    /// replaced); nothing was signed.
    #[error("TPM at {tcti}: the key at {handle:#010x} changed since it was opened")]
    KeyChanged { tcti: String, handle: u32 },
    /// The TPM returned a signature that does not verify with the key's public key; it was
    /// withheld.
    #[error("TPM at {tcti}: the signature made with {handle:#010x} does not verify; withheld")]
    BadSignature { tcti: String, handle: u32 },
    /// Any other failure of a TPM command.
    #[error("TPM at {tcti}: {operation} failed: {reason}")]
    Other {
        tcti: String,
        operation: &'static str,
        reason: String,
    },
}

impl TpmError {
    /// Whether trying again later may succeed (TPM away, busy or locked out).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::Busy { .. } | Self::Lockout { .. }
        )
    }
}

impl From<TpmError> for super::super::KeyError {
    fn from(e: TpmError) -> Self {
        super::super::KeyError::Unavailable(e.to_string())
    }
}

/// The raw `TSS2_RC` of a tss-esapi error, or `None` for a wrapper (argument) error.
///
/// tss-esapi 7 keeps the numeric code private; its `Display` of the format-0/format-1 code is
/// `Response code value: 0x…`, which is parsed here (checked by a property test).
pub(crate) fn raw_rc(e: &tss_esapi::Error) -> Option<u32> {
    use tss_esapi::constants::response_code::Tss2ResponseCode as Rc;
    let text = match e {
        tss_esapi::Error::Tss2Error(Rc::FormatZero(rc)) => rc.to_string(),
        tss_esapi::Error::Tss2Error(Rc::FormatOne(rc)) => rc.to_string(),
        tss_esapi::Error::Tss2Error(Rc::Success) => return Some(0),
        tss_esapi::Error::WrapperError(_) => return None,
    };
    let hex = text.rsplit("0x").next()?;
    u32::from_str_radix(hex.trim(), 16).ok()
}

/// TSS2 layer numbers (bits 16..24 of a `TSS2_RC`).
const LAYER_TPM: u32 = 0;
const LAYER_ESYS: u32 = 7;
const LAYER_TCTI: u32 = 10;
/// A resource manager relaying a TPM response code.
const LAYER_RESMGR_TPM: u32 = 11;

/// TSS2 base codes that mean the transport failed (TSS2_BASE_RC_NO_CONNECTION, _TRY_AGAIN,
/// _IO_ERROR).
const BASE_TRANSPORT: [u32; 3] = [8, 9, 10];

/// Format-1 TPM error numbers (TPM 2.0 Part 2 §6.6.3, without RC_FMT1).
const RC1_HANDLE: u32 = 0x0b;
const RC1_CURVE: u32 = 0x26;
/// Format-0 warnings (without RC_WARN).
const WARN_OBJECT_MEMORY: u32 = 0x02;
const WARN_SESSION_MEMORY: u32 = 0x03;
const WARN_MEMORY: u32 = 0x04;
const WARN_OBJECT_HANDLES: u32 = 0x06;
const WARN_YIELDED: u32 = 0x08;
const WARN_CANCELED: u32 = 0x09;
const WARN_TESTING: u32 = 0x0a;
const WARN_NV_RATE: u32 = 0x20;
const WARN_LOCKOUT: u32 = 0x21;
const WARN_RETRY: u32 = 0x22;
const WARN_NV_UNAVAILABLE: u32 = 0x23;
/// Format-0 errors (without RC_VER1).
pub(crate) const RC0_NV_DEFINED: u32 = 0x4c;

/// How a response code is understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RcClass {
    Success,
    /// The TCTI (transport) failed.
    Transport,
    /// TPM_RC_HANDLE: the handle names no object.
    Handle,
    /// A warning asking to resubmit later.
    Busy,
    Lockout,
    /// TPM_RC_CURVE: the curve is not implemented.
    Curve,
    /// A format-0 error with this number (without RC_VER1).
    Error0(u32),
    /// Anything else.
    Other,
}

/// Classify a raw `TSS2_RC`.
pub(crate) fn classify(rc: u32) -> RcClass {
    if rc == 0 {
        return RcClass::Success;
    }
    let layer = (rc >> 16) & 0xff;
    match layer {
        LAYER_TCTI => return RcClass::Transport,
        LAYER_ESYS if BASE_TRANSPORT.contains(&(rc & 0xffff)) => return RcClass::Transport,
        LAYER_TPM | LAYER_RESMGR_TPM => {}
        _ => return RcClass::Other,
    }
    let code = rc & 0xffff;
    if code & 0x80 != 0 {
        // Format 1: error number in bits 0..6, handle/parameter/session number above.
        return match code & 0x3f {
            RC1_HANDLE => RcClass::Handle,
            RC1_CURVE => RcClass::Curve,
            _ => RcClass::Other,
        };
    }
    if code & 0x0400 != 0 {
        // Vendor-defined (TPM 2.0 Part 2 §6.6.2, bit T).
        return RcClass::Other;
    }
    let number = code & 0x7f;
    if code & 0x0800 != 0 {
        return match number {
            WARN_LOCKOUT => RcClass::Lockout,
            WARN_OBJECT_MEMORY | WARN_SESSION_MEMORY | WARN_MEMORY | WARN_OBJECT_HANDLES
            | WARN_YIELDED | WARN_CANCELED | WARN_TESTING | WARN_NV_RATE | WARN_RETRY
            | WARN_NV_UNAVAILABLE => RcClass::Busy,
            _ => RcClass::Other,
        };
    }
    if code & 0x0100 != 0 {
        return RcClass::Error0(number);
    }
    RcClass::Other
}

/// A readable description of a tss-esapi error, with its numeric code.
pub(crate) fn describe(e: &tss_esapi::Error) -> String {
    match raw_rc(e) {
        Some(rc) if classify(rc) == RcClass::Transport => {
            format!("connection to the TPM failed (TSS2_RC {rc:#x})")
        }
        Some(rc) if (rc >> 16) & 0xff == LAYER_TPM || (rc >> 16) & 0xff == LAYER_RESMGR_TPM => {
            format!("{e} (TPM_RC {rc:#x})")
        }
        Some(rc) => format!("TSS error (TSS2_RC {rc:#x})"),
        None => format!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tss_esapi::constants::response_code::Tss2ResponseCode;

    fn err(rc: u32) -> tss_esapi::Error {
        tss_esapi::Error::Tss2Error(Tss2ResponseCode::from(rc))
    }

    #[test]
    fn raw_rc_reads_back_the_code() {
        for rc in [0x0a000a, 0x922, 0x18b, 0x70001, 0xffff_ffff, 1] {
            assert_eq!(raw_rc(&err(rc)), Some(rc));
        }
        assert_eq!(raw_rc(&err(0)), Some(0));
        let wrapper = tss_esapi::Error::WrapperError(tss_esapi::WrapperErrorKind::InvalidParam);
        assert_eq!(raw_rc(&wrapper), None);
    }

    #[test]
    fn tpm2_part2_6_6_codes_are_classified() {
        // TPM_RC_HANDLE on handle 1 (ReadPublic of an empty persistent handle).
        assert_eq!(classify(0x18b), RcClass::Handle);
        assert_eq!(classify(0x0a6), RcClass::Curve);
        assert_eq!(classify(0x2a6), RcClass::Curve);
        assert_eq!(classify(0x922), RcClass::Busy); // TPM_RC_RETRY
        assert_eq!(classify(0x908), RcClass::Busy); // TPM_RC_YIELDED
        assert_eq!(classify(0x90a), RcClass::Busy); // TPM_RC_TESTING
        assert_eq!(classify(0x902), RcClass::Busy); // TPM_RC_OBJECT_MEMORY
        assert_eq!(classify(0x921), RcClass::Lockout);
        assert_eq!(classify(0x14c), RcClass::Error0(RC0_NV_DEFINED));
        assert_eq!(classify(0x98e), RcClass::Other); // TPM_RC_AUTH_FAIL
        // The same TPM codes relayed by a resource manager.
        assert_eq!(classify(0x0b_0921), RcClass::Lockout);
        assert_eq!(classify(0x0b_018b), RcClass::Handle);
        // Transport failures: TCTI layer, and ESYS reporting an I/O error.
        assert_eq!(classify(0x0a_000a), RcClass::Transport);
        assert_eq!(classify(0x0a_0008), RcClass::Transport);
        assert_eq!(classify(0x07_000a), RcClass::Transport);
        assert_eq!(classify(0x07_0005), RcClass::Other);
        assert_eq!(classify(0), RcClass::Success);
    }

    #[test]
    fn transport_errors_are_described_as_connection_failures() {
        assert!(describe(&err(0x0a_000a)).contains("connection to the TPM failed"));
        assert!(describe(&err(0x921)).contains("0x921"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_response_code_round_trips_and_classifies(rc in any::<u32>()) {
            prop_assert_eq!(raw_rc(&err(rc)), Some(rc));
            let _ = classify(rc);
            let _ = describe(&err(rc));
        }
    }
}
