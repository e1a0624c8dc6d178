//! PostgreSQL storage: the backend for several instances of a daemon sharing one database
//! (SQLite stays the embedded default, [`crate::store`]).
//!
//! tokio-postgres with a deadpool pool: async and pipelined, maintained, and it speaks TLS
//! through rustls (tokio-postgres-rustls), the TLS stack the suite already uses; sqlx would
//! bring its own pool, macros and a second migration system. A URL
//! (`postgres://user@host:port/db?sslmode=require`) names the server; with `sslmode=require`
//! the server's certificate must validate under the configured CA certificates.
//!
//! Schema changes are versioned [`Migration`]s, applied by [`PgStore::migrate`] in one
//! transaction under an advisory lock, so that instances starting together apply each one
//! exactly once and none serves on a half-migrated schema.

use crate::metrics::DbMetrics;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::str::FromStr;
use std::sync::Arc;
use tokio_postgres::config::SslMode;

pub use deadpool_postgres::{GenericClient, Object as Client, Transaction};
pub use tokio_postgres::{Row, types::ToSql};

/// Why a PostgreSQL operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("database URL: {0}")]
    Url(String),
    #[error("PostgreSQL TLS: {0}")]
    Tls(String),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),
    #[error("schema of {component}: {reason}")]
    Schema { component: String, reason: String },
}

impl PgError {
    /// Whether a UNIQUE or PRIMARY KEY constraint refused the write (SQLSTATE 23505).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Postgres(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION))
    }

    /// Whether the server could not be reached or went away (the request may be answered
    /// "unavailable" and retried), as opposed to a refusal of the statement itself.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Pool(_) => true,
            Self::Postgres(e) => match e.code() {
                // Class 08 (connection exception), 57P01..57P03 (shutdown, cannot connect now).
                Some(c) => c.code().starts_with("08") || c.code().starts_with("57P"),
                // No SQLSTATE: the connection closed or its socket failed, or else a fault of
                // ours (a value that does not convert), which is not the server's absence.
                None => {
                    e.is_closed()
                        || std::error::Error::source(e)
                            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
                }
            },
            _ => false,
        }
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => Self::Postgres(e),
            other => Self::Pool(other.to_string()),
        }
    }
}

/// One versioned change of a component's schema; versions start at 1 and increase by one.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The advisory lock every migration transaction takes (any fixed number: it only has to be
/// the same in every instance of every daemon).
const MIGRATION_LOCK: i64 = 0x6272_736b_6931; // "brski1"

/// Most connections one instance keeps.
const POOL_SIZE: usize = 16;

/// A pool of connections to one PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Transactions committed by [`PgStore::commit`].
    metrics: DbMetrics,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// A pool for the database at `url`. `ca_certs` (DER) are the anchors a TLS server
    /// certificate must validate under; TLS is used when the URL asks for it (`sslmode=require`)
    /// and needs them. No connection is made here: the first use connects.
    pub fn connect(url: &str, ca_certs: &[Vec<u8>]) -> Result<Self, PgError> {
        let config =
            tokio_postgres::Config::from_str(url).map_err(|e| PgError::Url(e.to_string()))?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match config.get_ssl_mode() {
            SslMode::Disable => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
            SslMode::Prefer if ca_certs.is_empty() => {
                Manager::from_config(config, tokio_postgres::NoTls, manager_config)
            }
            _ => Manager::from_config(config, tls(ca_certs)?, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| PgError::Pool(e.to_string()))?;
        Ok(Self {
            pool,
            metrics: DbMetrics::default(),
        })
    }

    /// This store, its transactions' commits observed in `metrics`.
    pub fn with_metrics(self, metrics: DbMetrics) -> Self {
        Self { metrics, ..self }
    }

    /// Commit `tx`, begun at `began`: its latency is observed (one write per transaction).
    pub async fn commit(
        &self,
        tx: Transaction<'_>,
        began: std::time::Instant,
    ) -> Result<(), PgError> {
        tx.commit().await?;
        self.metrics.committed(began.elapsed(), 1);
        Ok(())
    }

    /// A connection from the pool.
    pub async fn client(&self) -> Result<Client, PgError> {
        Ok(self.pool.get().await?)
    }

    /// Bring `component`'s schema up to the last of `migrations`: those not yet recorded in
    /// `schema_migrations` are applied in order, all in one transaction under an advisory
    /// lock. Returns the versions applied now (none when the schema was current). A database
    /// that records a version this program does not know (a newer program migrated it) is
    /// refused.
    pub async fn migrate(
        &self,
        component: &str,
        migrations: &[Migration],
    ) -> Result<Vec<i32>, PgError> {
        let schema_error = |reason: String| PgError::Schema {
            component: component.to_string(),
            reason,
        };
        for (i, m) in migrations.iter().enumerate() {
            if usize::try_from(m.version).ok() != Some(i + 1) {
                return Err(schema_error(format!(
                    "migration {:?} is numbered {}, not {}",
                    m.name,
                    m.version,
                    i + 1
                )));
            }
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 component  TEXT NOT NULL,
                 version    INTEGER NOT NULL,
                 name       TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                 PRIMARY KEY (component, version)
             )",
        )
        .await?;
        let recorded: Vec<i32> = tx
            .query(
                "SELECT version FROM schema_migrations WHERE component = $1 ORDER BY version",
                &[&component],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let known = i32::try_from(migrations.len()).unwrap_or(i32::MAX);
        if let Some(newer) = recorded.iter().find(|v| **v > known) {
            return Err(schema_error(format!(
                "the database is at version {newer}, newer than this program's {known}"
            )));
        }
        let mut applied = Vec::new();
        for m in migrations.iter().filter(|m| !recorded.contains(&m.version)) {
            tx.batch_execute(m.sql)
                .await
                .map_err(|e| schema_error(format!("migration {} ({}): {e}", m.version, m.name)))?;
            tx.execute(
                "INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)",
                &[&component, &m.version, &m.name],
            )
            .await?;
            applied.push(m.version);
        }
        tx.commit().await?;
        if !applied.is_empty() {
            tracing::info!(component, versions = ?applied, "database schema migrated");
        }
        Ok(applied)
    }
}

/// rustls for the connection to PostgreSQL, validating the server under `ca_certs`.
fn tls(ca_certs: &[Vec<u8>]) -> Result<tokio_postgres_rustls::MakeRustlsConnect, PgError> {
    if ca_certs.is_empty() {
        return Err(PgError::Tls(
            "the URL asks for TLS but no CA certificate is configured to validate the server"
                .into(),
        ));
    }
    let mut roots = rustls::RootCertStore::empty();
    for der in ca_certs {
        roots
            .add(rustls::pki_types::CertificateDer::from(der.clone()))
            .map_err(|e| PgError::Tls(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}
