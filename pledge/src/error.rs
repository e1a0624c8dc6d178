//! Why a bootstrap or renewal failed, and what that means for the exit code and for retrying.

use brski_common::brski::pledge::PledgeError;
use std::fmt;

/// The exchange a failure happened in (RFC 8995 §5, RFC 7030 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    RequestVoucher,
    VoucherStatus,
    CaCerts,
    CsrAttrs,
    SimpleEnroll,
    SimpleReenroll,
    EnrollStatus,
}

impl Step {
    /// The resource name, as used in logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::RequestVoucher => "requestvoucher",
            Self::VoucherStatus => "voucher_status",
            Self::CaCerts => "cacerts",
            Self::CsrAttrs => "csrattrs",
            Self::SimpleEnroll => "simpleenroll",
            Self::SimpleReenroll => "simplereenroll",
            Self::EnrollStatus => "enrollstatus",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed bootstrap, renewal or configuration.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Configuration or credential files of the pledge itself.
    #[error("{0}")]
    Config(String),
    /// Writing or reading the state directory.
    #[error("{0}")]
    Storage(String),
    /// The registrar could not be reached or the connection broke (TCP, TLS, HTTP framing).
    #[error("registrar unreachable: {0}")]
    Unreachable(String),
    /// The registrar answered with an error status (RFC 8995 §5.6, RFC 7030 §4.2.3).
    #[error("{step}: registrar answered {status}{}", reason_suffix(.reason))]
    Refused {
        step: Step,
        status: u16,
        reason: String,
    },
    /// The registrar kept answering 202 for longer than the configured limit (RFC 8995 §5.6).
    #[error("{step}: still pending after {waited_secs} s, giving up")]
    PendingTooLong { step: Step, waited_secs: u64 },
    /// The voucher failed the checks of RFC 8995 §5.6.1.
    #[error("{0}")]
    Voucher(PledgeError),
    /// The registrar's TLS certificate does not validate against the voucher's pin (§5.6.2).
    #[error("registrar certificate is not pinned by the voucher ({0})")]
    NotPinned(String),
    /// An answer that does not make sense (malformed body, certificate for another key...).
    #[error("{step}: {reason}")]
    Protocol { step: Step, reason: String },
    /// A local operation failed (key generation, signing, encoding).
    #[error("{0}")]
    Internal(String),
    /// The TPM holding the pledge's keys failed (the reason names the TCTI). `transient`: it
    /// was unreachable, busy or in dictionary-attack lockout.
    #[error("{reason}")]
    #[cfg_attr(not(feature = "tpm"), allow(dead_code))]
    Tpm { reason: String, transient: bool },
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

impl Failure {
    /// The process exit code: 1 for local configuration, storage and connectivity problems,
    /// 2 for a rejection by the registrar (or MASA) and for a failed voucher or pin check.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_)
            | Self::Storage(_)
            | Self::Unreachable(_)
            | Self::Internal(_)
            | Self::Tpm { .. } => 1,
            Self::Refused { .. }
            | Self::PendingTooLong { .. }
            | Self::Voucher(_)
            | Self::NotPinned(_)
            | Self::Protocol { .. } => 2,
        }
    }

    /// Whether retrying soon may help: the registrar or the MASA behind it is unreachable, or
    /// answered with a server error (502 MASA unreachable, 503 shutting down, ...), or the TPM
    /// is away, busy or locked out.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable(_) => true,
            Self::Tpm { transient, .. } => *transient,
            Self::Refused { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// Whether the daemon cannot continue at all (its own configuration or storage is broken).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Config(_) | Self::Storage(_))
    }

    /// A short reason for telemetry (RFC 8995 §5.7: human readable, no attack-useful detail).
    pub fn telemetry_reason(&self) -> String {
        match self {
            Self::Voucher(e) => e.to_string(),
            Self::NotPinned(_) => "registrar certificate is not pinned by the voucher".into(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brski_common::voucher::VoucherCheckError;

    #[test]
    fn exit_codes_separate_local_problems_from_rejections() {
        assert_eq!(Failure::Config("x".into()).exit_code(), 1);
        assert_eq!(Failure::Storage("x".into()).exit_code(), 1);
        assert_eq!(Failure::Unreachable("x".into()).exit_code(), 1);
        let refused = Failure::Refused {
            step: Step::RequestVoucher,
            status: 403,
            reason: "refused".into(),
        };
        assert_eq!(refused.exit_code(), 2);
        assert_eq!(
            refused.to_string(),
            "requestvoucher: registrar answered 403: refused"
        );
        assert_eq!(
            Failure::Voucher(PledgeError::Voucher(VoucherCheckError::NonceMismatch)).exit_code(),
            2
        );
        assert_eq!(Failure::NotPinned("x".into()).exit_code(), 2);
        assert!(
            Failure::NotPinned("detail".into())
                .to_string()
                .starts_with("registrar certificate is not pinned by the voucher")
        );
    }

    #[test]
    fn only_unreachable_and_server_errors_are_transient() {
        assert!(Failure::Unreachable("x".into()).is_transient());
        for (status, transient) in [(502, true), (503, true), (500, true), (404, false)] {
            let f = Failure::Refused {
                step: Step::CaCerts,
                status,
                reason: String::new(),
            };
            assert_eq!(f.is_transient(), transient, "{status}");
            assert_eq!(
                f.to_string(),
                format!("cacerts: registrar answered {status}")
            );
        }
        assert!(!Failure::NotPinned("x".into()).is_transient());
        assert!(Failure::Config("x".into()).is_fatal());
        let tpm_away = Failure::Tpm {
            reason: "no TPM reachable at TCTI device:/dev/tpmrm0".into(),
            transient: true,
        };
        assert!(tpm_away.is_transient() && !tpm_away.is_fatal());
        assert_eq!(tpm_away.exit_code(), 1);
        assert_eq!(
            tpm_away.to_string(),
            "no TPM reachable at TCTI device:/dev/tpmrm0"
        );
        let wrong_handle = Failure::Tpm {
            reason: "no key".into(),
            transient: false,
        };
        assert!(!wrong_handle.is_transient() && !wrong_handle.is_fatal());
        assert!(!Failure::Unreachable("x".into()).is_fatal());
    }
}
