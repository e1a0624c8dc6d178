//! The registrar's state behind one interface: an SQLite file ([`crate::db`]: one instance,
//! writes group-committed, answered only once durable) or a PostgreSQL database ([`crate::pg`]:
//! several instances sharing it, each write committed before its answer).

use crate::config::RegistrarConfig;
use crate::db::{
    self, CertSummary, EnrollGate, LdevidStatus, NewAuditCheck, NewCertificate,
    NewNoncelessVoucher, NewTelemetry, NewVoucher, PledgeSummary, Policy, RevokeWhat, StoredLdevid,
    StoredNonceless, StoredVoucher, TelemetryContext, TelemetryStored, VoucherWithRequest,
};
use crate::pg;
use crate::server::StartError;
use brski_service::config::Database;
use brski_service::metrics::DbMetrics;
use brski_service::postgres::PgStore;
use brski_service::store::{Db, GroupCommit, StoreFault};

type R<T> = Result<T, StoreFault>;

/// Where the registrar's state is.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite { db: Db, writer: GroupCommit },
    Postgres(PgStore),
}

/// Runs `$body` with `$c` a pooled PostgreSQL connection.
macro_rules! on_pg {
    ($pg:expr, |$c:ident| $body:expr) => {{
        let $c = $pg.client().await?;
        Ok($body.await?)
    }};
}

/// Runs `$body` with `$tx` a PostgreSQL transaction, committed when `$body` succeeds.
macro_rules! in_tx {
    ($pg:expr, |$tx:ident| $body:expr) => {{
        let began = std::time::Instant::now();
        let mut client = $pg.client().await?;
        let $tx = client.transaction().await?;
        let value = $body.await?;
        $pg.commit($tx, began).await?;
        Ok(value)
    }};
}

impl Store {
    /// Open the database `config` names, bringing its schema up to date (SQLite: checking its
    /// integrity and starting the group-commit writer).
    pub async fn open(config: &RegistrarConfig) -> Result<Self, StartError> {
        Self::open_metered(config, DbMetrics::default()).await
    }

    /// [`Store::open`], the SQLite writer's commits observed in `metrics`.
    pub async fn open_metered(
        config: &RegistrarConfig,
        metrics: DbMetrics,
    ) -> Result<Self, StartError> {
        match &config.database {
            Database::Sqlite(path) => {
                let failed = |source| StartError::Database {
                    path: path.display().to_string(),
                    source,
                };
                let db = crate::server::open_db(path)?;
                if !db.integrity_ok().map_err(failed)? {
                    return Err(StartError::Integrity(path.display().to_string()));
                }
                let writer = GroupCommit::start_metered(path, metrics).map_err(failed)?;
                Ok(Self::Sqlite { db, writer })
            }
            Database::Postgres(url) => {
                let ca = brski_service::files::read_certs_der(config.database_ca.as_deref())?;
                Ok(Self::Postgres(
                    pg::open(url, &ca).await?.with_metrics(metrics),
                ))
            }
        }
    }

    pub async fn policy(&self, serial: &str) -> R<Option<Policy>> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::policy(db, serial)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::policy(&c, serial)),
        }
    }

    pub async fn set_policy(&self, serial: &str, policy: Policy) -> R<()> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::set_policy(db, serial, policy)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::set_policy(&c, serial, policy)),
        }
    }

    pub async fn record_seen(
        &self,
        serial: &str,
        peer: &str,
        transport: &str,
        policy_if_new: Policy,
    ) -> R<Policy> {
        match self {
            Self::Sqlite { writer, .. } => {
                Ok(db::record_seen(writer, serial, peer, transport, policy_if_new).await?)
            }
            Self::Postgres(p) => {
                on_pg!(p, |c| pg::record_seen(
                    &c,
                    serial,
                    peer,
                    transport,
                    policy_if_new
                ))
            }
        }
    }

    pub async fn voucher_for_nonce(
        &self,
        serial: &str,
        idevid_sha256: &str,
        nonce: &str,
    ) -> R<Option<StoredVoucher>> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::voucher_for_nonce(db, serial, idevid_sha256, nonce)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::voucher_for_nonce(
                &c,
                serial,
                idevid_sha256,
                nonce
            )),
        }
    }

    pub async fn store_voucher(&self, v: &NewVoucher<'_>) -> R<i64> {
        match self {
            Self::Sqlite { writer, .. } => Ok(db::store_voucher(writer, v).await?),
            Self::Postgres(p) => in_tx!(p, |tx| pg::store_voucher(&tx, v)),
        }
    }

    pub async fn latest_voucher_request(&self, serial: &str) -> R<Option<VoucherWithRequest>> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::latest_voucher_request(db, serial)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::latest_voucher_request(&c, serial)),
        }
    }

    pub async fn store_audit_check(&self, a: &NewAuditCheck<'_>) -> R<()> {
        match self {
            Self::Sqlite { writer, .. } => Ok(db::store_audit_check(writer, a).await?),
            Self::Postgres(p) => on_pg!(p, |c| pg::store_audit_check(&c, a)),
        }
    }

    pub async fn store_nonceless_voucher(&self, v: &NewNoncelessVoucher<'_>) -> R<i64> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::store_nonceless_voucher(db, v)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::store_nonceless_voucher(&c, v)),
        }
    }

    pub async fn nonceless_vouchers(&self, serial: &str) -> R<Vec<StoredNonceless>> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::nonceless_vouchers(db, serial)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::nonceless_vouchers(&c, serial)),
        }
    }

    pub async fn telemetry_context(&self, serial: &str) -> R<TelemetryContext> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::telemetry_context(db, serial)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::telemetry_context(&c, serial)),
        }
    }

    pub async fn store_telemetry_limited(&self, t: &NewTelemetry<'_>) -> R<TelemetryStored> {
        match self {
            Self::Sqlite { writer, .. } => Ok(db::store_telemetry_limited(writer, t).await?),
            Self::Postgres(p) => in_tx!(p, |tx| pg::store_telemetry_limited(&tx, t)),
        }
    }

    pub async fn may_enroll(
        &self,
        serial: &str,
        idevid_sha256: &str,
    ) -> R<(Option<Policy>, EnrollGate)> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::may_enroll(db, serial, idevid_sha256)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::may_enroll(&c, serial, idevid_sha256)),
        }
    }

    pub async fn store_certificate(&self, cert: &NewCertificate<'_>) -> R<()> {
        match self {
            Self::Sqlite { writer, .. } => Ok(db::store_certificate(writer, cert).await?),
            Self::Postgres(p) => in_tx!(p, |tx| pg::store_certificate(&tx, cert)),
        }
    }

    pub async fn store_attestation(&self, a: &db::NewAttestation<'_>) -> R<()> {
        match self {
            Self::Sqlite { writer, .. } => Ok(db::store_attestation(writer, a).await?),
            Self::Postgres(p) => in_tx!(p, |tx| pg::store_attestation(&tx, a)),
        }
    }

    pub async fn ldevid_seen(&self, cert_serial: &str) -> R<()> {
        match self {
            Self::Sqlite { writer, .. } => Ok(db::ldevid_seen(writer, cert_serial).await?),
            Self::Postgres(p) => in_tx!(p, |tx| pg::ldevid_seen(&tx, cert_serial)),
        }
    }

    pub async fn ldevid_status(&self, cert_serial: &str, der: &[u8]) -> R<LdevidStatus> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::ldevid_status(db, cert_serial, der)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::ldevid_status(&c, cert_serial, der)),
        }
    }

    pub async fn certificate(&self, cert_serial: &str) -> R<Option<StoredLdevid>> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::certificate(db, cert_serial)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::certificate(&c, cert_serial)),
        }
    }

    pub async fn enrolled_on_voucher(&self, voucher_id: i64) -> R<Option<StoredLdevid>> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::enrolled_on_voucher(db, voucher_id)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::enrolled_on_voucher(&c, voucher_id)),
        }
    }

    pub async fn revoke(&self, what: &RevokeWhat, reason: &str) -> R<Vec<String>> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::revoke(db, what, reason)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::revoke(&c, what, reason)),
        }
    }

    pub async fn list_certificates(&self, pledge: Option<&str>) -> R<Vec<CertSummary>> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::list_certificates(db, pledge)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::list_certificates(&c, pledge)),
        }
    }

    pub async fn revoked_certificates(&self, now: time::OffsetDateTime) -> R<Vec<CertSummary>> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::revoked_certificates(db, now)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::revoked_certificates(&c, now)),
        }
    }

    /// How many pledges wait for approval (RFC 8995 §7.3).
    pub async fn pending_count(&self) -> R<i64> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::pending_count(db)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::pending_count(&c)),
        }
    }

    pub async fn list_pledges(&self) -> R<Vec<PledgeSummary>> {
        match self {
            Self::Sqlite { db, .. } => Ok(db::list_pledges(db)?),
            Self::Postgres(p) => on_pg!(p, |c| pg::list_pledges(&c)),
        }
    }
}
