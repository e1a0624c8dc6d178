//! Errors: [`MasaError`] for the commands (a one-line reason on stderr, non-zero exit), and
//! [`Refusal`] for the HTTP endpoints (RFC 8995 §5.6 status with a text/plain reason).

use brski_common::brski::masa::RegistrarRequestError;
use brski_service::store::StoreError;
use std::path::PathBuf;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum MasaError {
    #[error(transparent)]
    Config(#[from] brski_service::config::ConfigError),
    #[error(transparent)]
    File(#[from] brski_service::files::FileError),
    #[error("database: {0}")]
    Database(#[from] StoreError),
    #[error("database: {0}")]
    Postgres(#[from] brski_service::postgres::PgError),
    #[error("certificate: {0}")]
    Pki(#[from] brski_common::pki::PkiError),
    #[error("name: {0}")]
    Name(#[from] brski_common::pki::NameError),
    #[error("key: {0}")]
    Key(#[from] brski_common::keys::KeyError),
    #[error("certificate extension: {0}")]
    Extension(#[from] brski_common::pki::ExtError),
    #[error("TLS: {0}")]
    Tls(#[from] brski_common::tls::TlsError),
    #[error("audit log: {0}")]
    Audit(#[from] brski_common::audit::AuditError),
    #[error("DER: {0}")]
    Der(#[from] der::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0} already exists; refusing to overwrite it")]
    Exists(PathBuf),
    #[error("serial {0:?} was never minted by this MASA")]
    UnknownSerial(String),
    #[error("serial {0:?} was already minted")]
    AlreadyMinted(String),
    #[error("{0}")]
    Invalid(String),
}

/// Why a voucher or audit-log request was refused. [`Refusal::status`] is the HTTP status
/// (RFC 8995 §5.6, §5.8.1); the Display text is the one-line reason sent as text/plain.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The Content-Type names no voucher-request format (RFC 8995 §5.6: 415).
    #[error("unsupported Content-Type {0:?}")]
    UnsupportedMediaType(String),
    /// Accept offers no voucher format this MASA signs (RFC 8995 §5.6: 406).
    #[error("cannot issue a voucher of the types in Accept {0:?}")]
    NotAcceptable(String),
    /// The registrar voucher-request failed a check of RFC 8995 §5.5 (status of the check).
    #[error("{0}")]
    Request(#[from] RegistrarRequestError),
    /// The serial was never minted by this MASA (RFC 8995 §5.6: 404).
    #[error("device {0:?} is unknown to this MASA")]
    UnknownDevice(String),
    /// The request names the serial with another IDevID or `idevid-issuer` than the one minted.
    #[error("the request's IDevID is not the one this MASA minted for {0:?}")]
    ForeignIdevid(String),
    /// A nonceless request (no nonce, or no pledge request) outside the claimed policy
    /// (RFC 8995 §5.5.4, §7.4: the MASA must know the registrar).
    #[error("nonceless voucher-requests are accepted only for claimed devices")]
    NoncelessNotAllowed,
    /// first-owner: another domain owns the device (RFC 8995 §5.6: 403).
    #[error("device {0:?} is owned by another domain")]
    OwnedByAnotherDomain(String),
    /// claimed: no sales record for the device (404).
    #[error("device {0:?} is not claimed by any domain")]
    NotClaimed(String),
    /// claimed: the registrar's chain does not reach the claimed domain CA (403).
    #[error("device {0:?} is claimed by another domain")]
    ClaimedByAnotherDomain(String),
    /// requestauditlog from a domain that never received a voucher for the device (404).
    #[error("no voucher for device {0:?} was ever issued to this domain")]
    NeverOwner(String),
    /// `require-client-cert`: the TLS client presented no certificate (RFC 8995 §5.4: 401).
    #[error(
        "a TLS client certificate is required: the registrar authenticates with the certificate that signs its voucher-request"
    )]
    ClientCertificateRequired,
    /// The TLS client certificate is not the voucher-request's signer (RFC 8995 §5.5.4: 401).
    #[error("the voucher-request is not signed with the key of the TLS client certificate {0:?}")]
    ClientCertificateNotSigner(String),
    /// A certificate of the registrar's chain is listed in its CRL (RFC 8995 §5.5.3: 403).
    #[error("certificate {0:?} of the registrar's chain is revoked")]
    Revoked(String),
    /// The CRL of a certificate of the registrar's chain cannot be fetched or verified: the
    /// MASA must be able to check it (RFC 8995 §5.5.3: 403).
    #[error("cannot check the revocation of {subject:?}: {reason}")]
    RevocationUnknown { subject: String, reason: String },
    /// The database cannot be reached now (503 with Retry-After); details are only logged.
    #[error("the MASA's database is unavailable; try again later")]
    Unavailable(String),
    /// A fault on the MASA's side (database, signing); details are only logged.
    #[error("internal error")]
    Internal(String),
}

impl From<brski_service::store::StoreFault> for MasaError {
    fn from(e: brski_service::store::StoreFault) -> Self {
        match e {
            brski_service::store::StoreFault::Sqlite(e) => Self::Database(e),
            brski_service::store::StoreFault::Postgres(e) => Self::Postgres(e),
        }
    }
}

impl From<brski_service::store::StoreFault> for Refusal {
    fn from(e: brski_service::store::StoreFault) -> Self {
        if e.is_unavailable() {
            Self::Unavailable(format!("database: {e}"))
        } else {
            Self::Internal(format!("database: {e}"))
        }
    }
}

/// RFC 8995 §5.5.3: a revoked certificate, or one whose CRL cannot be checked, refuses (403).
impl From<brski_common::pki::crl::RevocationError> for Refusal {
    fn from(e: brski_common::pki::crl::RevocationError) -> Self {
        use brski_common::pki::crl::RevocationError as R;
        match e {
            R::Revoked(subject) => Self::Revoked(subject),
            R::Unknown { subject, reason } => Self::RevocationUnknown { subject, reason },
            R::NoTrustedClock => Self::RevocationUnknown {
                subject: String::new(),
                reason: R::NoTrustedClock.to_string(),
            },
        }
    }
}

impl Refusal {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnsupportedMediaType(_) => 415,
            Self::NotAcceptable(_) => 406,
            Self::Request(e) => e.status(),
            Self::UnknownDevice(_)
            | Self::ForeignIdevid(_)
            | Self::NotClaimed(_)
            | Self::NeverOwner(_) => 404,
            Self::NoncelessNotAllowed
            | Self::OwnedByAnotherDomain(_)
            | Self::ClaimedByAnotherDomain(_) => 403,
            Self::ClientCertificateRequired | Self::ClientCertificateNotSigner(_) => 401,
            Self::Revoked(_) | Self::RevocationUnknown { .. } => 403,
            Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }

    /// Short label for the `outcome` log field.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::UnsupportedMediaType(_) => "unsupported-media-type",
            Self::NotAcceptable(_) => "not-acceptable",
            Self::Request(e) => match e.status() {
                400 => "bad-request",
                404 => "unknown-device",
                // Not signed as required, or inconsistent (RFC 8995 §5.6: 403).
                _ => "rejected-request",
            },
            Self::UnknownDevice(_) | Self::ForeignIdevid(_) => "unknown-device",
            Self::NoncelessNotAllowed => "nonceless-refused",
            Self::OwnedByAnotherDomain(_) => "owned-by-another-domain",
            Self::NotClaimed(_) => "not-claimed",
            Self::ClaimedByAnotherDomain(_) => "claimed-by-another-domain",
            Self::NeverOwner(_) => "never-owner",
            Self::ClientCertificateRequired => "client-certificate-required",
            Self::Revoked(_) => "revoked",
            Self::RevocationUnknown { .. } => "revocation-unknown",
            Self::ClientCertificateNotSigner(_) => "client-certificate-not-signer",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal-error",
        }
    }

    /// The reason text: one line.
    pub fn reason(&self) -> String {
        self.to_string().replace(['\r', '\n'], " ")
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Self::Internal(format!("database: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8995_5_6_statuses() {
        let cases = [
            (Refusal::UnsupportedMediaType("a/b".into()), 415),
            (Refusal::NotAcceptable("a/b".into()), 406),
            (
                Refusal::Request(RegistrarRequestError::NotRegistrationAuthority),
                403,
            ),
            (Refusal::Request(RegistrarRequestError::NonceMismatch), 403),
            (Refusal::UnknownDevice("s".into()), 404),
            (Refusal::ForeignIdevid("s".into()), 404),
            (Refusal::NoncelessNotAllowed, 403),
            (Refusal::OwnedByAnotherDomain("s".into()), 403),
            (Refusal::NotClaimed("s".into()), 404),
            (Refusal::ClaimedByAnotherDomain("s".into()), 403),
            (Refusal::NeverOwner("s".into()), 404),
            (Refusal::ClientCertificateRequired, 401),
            (Refusal::Revoked("CN=r".into()), 403),
            (
                Refusal::RevocationUnknown {
                    subject: "CN=r".into(),
                    reason: "unreachable".into(),
                },
                403,
            ),
            (Refusal::ClientCertificateNotSigner("CN=x".into()), 401),
            (Refusal::Internal("disk".into()), 500),
        ];
        for (refusal, status) in cases {
            assert_eq!(refusal.status(), status, "{refusal:?}");
            assert!(!refusal.reason().contains('\n'));
        }
        // Internal details stay in the log.
        assert_eq!(
            Refusal::Internal("secret path".into()).reason(),
            "internal error"
        );
    }
}
