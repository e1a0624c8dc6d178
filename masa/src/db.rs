//! The MASA's durable state in SQLite (through `brski_service::store`: WAL, synchronous=FULL):
//! devices minted by the factory, first-owner records, sales claims, issued vouchers and the
//! audit log of RFC 8995 §5.8.1. A voucher and its audit entry are written in one transaction
//! that commits before the voucher is sent (RFC 8995 §5.6: the log is updated when the voucher
//! is issued).

use brski_common::audit::{Assertion, AuditEvent};
use sqlx::{Row, SqliteConnection, SqlitePool};

/// The schema; every statement is idempotent.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS devices (
    serial        TEXT PRIMARY KEY NOT NULL,
    idevid_issuer BLOB NOT NULL,
    idevid_cert   BLOB NOT NULL,
    minted_at     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS owners (
    serial      TEXT PRIMARY KEY NOT NULL REFERENCES devices(serial),
    domain_id   TEXT NOT NULL,
    domain_cert BLOB NOT NULL,
    since       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    serial     TEXT PRIMARY KEY NOT NULL REFERENCES devices(serial),
    domain_id  TEXT NOT NULL,
    domain_ca  BLOB NOT NULL,
    claimed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS vouchers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    serial     TEXT NOT NULL REFERENCES devices(serial),
    created_on TEXT NOT NULL,
    expires_on TEXT,
    format     TEXT NOT NULL,
    domain_id  TEXT NOT NULL,
    nonce      TEXT,
    assertion  TEXT NOT NULL,
    voucher    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    serial        TEXT NOT NULL REFERENCES devices(serial),
    idevid_issuer BLOB NOT NULL,
    date          TEXT NOT NULL,
    domain_id     TEXT NOT NULL,
    nonce         TEXT,
    assertion     TEXT NOT NULL,
    voucher_id    INTEGER NOT NULL REFERENCES vouchers(id)
);
CREATE INDEX IF NOT EXISTS audit_log_by_serial ON audit_log(serial, id);
";

/// Open (creating if needed) the database at `path`.
pub async fn open(path: &std::path::Path) -> Result<SqlitePool, crate::error::MasaError> {
    let text = path.to_str().ok_or_else(|| {
        crate::error::MasaError::Invalid(format!("{}: not UTF-8", path.display()))
    })?;
    Ok(brski_service::store::open(text, SCHEMA).await?)
}

/// The group-commit writer of the database at `path` (opened by [`open`] first).
pub async fn writer(
    path: &std::path::Path,
) -> Result<brski_service::store::GroupCommit, crate::error::MasaError> {
    let text = path.to_str().ok_or_else(|| {
        crate::error::MasaError::Invalid(format!("{}: not UTF-8", path.display()))
    })?;
    Ok(brski_service::store::GroupCommit::start(text).await?)
}

/// A device the factory minted.
#[derive(Clone, Debug)]
pub struct Device {
    pub serial: String,
    /// `idevid-issuer` of its IDevID (RFC 8366bis §6.1).
    pub idevid_issuer: Vec<u8>,
    /// DER of its IDevID.
    pub idevid_cert: Vec<u8>,
}

/// A domain that owns a device (first-owner) or claimed it (claimed).
#[derive(Clone, Debug)]
pub struct DomainRecord {
    /// base64 domainID (RFC 8995 §5.8.2).
    pub domain_id: String,
    /// DER of the domain certificate (the pinned cert, or the claimed domain CA).
    pub cert: Vec<u8>,
}

/// What is recorded when a voucher is issued.
#[derive(Clone, Debug)]
pub struct IssuedVoucher<'a> {
    pub serial: &'a str,
    pub idevid_issuer: &'a [u8],
    /// `created-on` of the voucher, which is also the audit entry's `date`.
    pub created_on: &'a str,
    pub expires_on: Option<&'a str>,
    pub format: &'a str,
    pub domain_id: &'a str,
    /// The nonce as its JSON string; `None` for a nonceless voucher.
    pub nonce: Option<&'a str>,
    pub assertion: &'a str,
    pub voucher: &'a [u8],
}

fn now() -> String {
    brski_common::brski::date_time(time::OffsetDateTime::now_utc())
        .as_str()
        .to_string()
}

pub use brski_service::store::begin_write;

/// Record a minted device; `Ok(false)` when the serial was minted before.
pub async fn insert_device(
    conn: &mut SqliteConnection,
    device: &Device,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO devices (serial, idevid_issuer, idevid_cert, minted_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(serial) DO NOTHING",
    )
    .bind(&device.serial)
    .bind(&device.idevid_issuer)
    .bind(&device.idevid_cert)
    .bind(now())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The device minted with `serial`.
pub async fn device(pool: &SqlitePool, serial: &str) -> Result<Option<Device>, sqlx::Error> {
    let row: Option<(String, Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT serial, idevid_issuer, idevid_cert FROM devices WHERE serial = ?")
            .bind(serial)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(serial, idevid_issuer, idevid_cert)| Device {
        serial,
        idevid_issuer,
        idevid_cert,
    }))
}

/// The first owner of `serial`.
pub async fn owner(
    conn: &mut SqliteConnection,
    serial: &str,
) -> Result<Option<DomainRecord>, sqlx::Error> {
    let row: Option<(String, Vec<u8>)> =
        sqlx::query_as("SELECT domain_id, domain_cert FROM owners WHERE serial = ?")
            .bind(serial)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(domain_id, cert)| DomainRecord { domain_id, cert }))
}

/// Make `domain` the owner of `serial`.
pub async fn set_owner(
    conn: &mut SqliteConnection,
    serial: &str,
    domain: &DomainRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO owners (serial, domain_id, domain_cert, since) VALUES (?, ?, ?, ?)")
        .bind(serial)
        .bind(&domain.domain_id)
        .bind(&domain.cert)
        .bind(now())
        .execute(conn)
        .await?;
    Ok(())
}

/// Forget the owner of `serial`; `Ok(false)` when it had none.
pub async fn release(pool: &SqlitePool, serial: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM owners WHERE serial = ?")
        .bind(serial)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The claim on `serial`.
pub async fn claim(
    conn: &mut SqliteConnection,
    serial: &str,
) -> Result<Option<DomainRecord>, sqlx::Error> {
    let row: Option<(String, Vec<u8>)> =
        sqlx::query_as("SELECT domain_id, domain_ca FROM claims WHERE serial = ?")
            .bind(serial)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(domain_id, cert)| DomainRecord { domain_id, cert }))
}

/// Record (or replace) the claim of `domain` on `serial`.
pub async fn set_claim(
    pool: &SqlitePool,
    serial: &str,
    domain: &DomainRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO claims (serial, domain_id, domain_ca, claimed_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(serial) DO UPDATE SET domain_id = excluded.domain_id,
             domain_ca = excluded.domain_ca, claimed_at = excluded.claimed_at",
    )
    .bind(serial)
    .bind(&domain.domain_id)
    .bind(&domain.cert)
    .bind(now())
    .execute(pool)
    .await?;
    Ok(())
}

/// Store an issued voucher and its audit entry (RFC 8995 §5.8.1 event) in `conn`'s open
/// transaction: one round trip to the database, two statements (the caller's transaction or
/// savepoint makes them one change). The voucher's id.
pub async fn record_voucher(
    conn: &mut SqliteConnection,
    v: &IssuedVoucher<'_>,
) -> Result<i64, sqlx::Error> {
    let rows = sqlx::query(
        "INSERT INTO vouchers (serial, created_on, expires_on, format, domain_id, nonce, assertion,
                               voucher)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id;
         INSERT INTO audit_log (serial, idevid_issuer, date, domain_id, nonce, assertion,
                                voucher_id)
         VALUES (?1, ?9, ?2, ?5, ?6, ?7, last_insert_rowid())",
    )
    .bind(v.serial)
    .bind(v.created_on)
    .bind(v.expires_on)
    .bind(v.format)
    .bind(v.domain_id)
    .bind(v.nonce)
    .bind(v.assertion)
    .bind(v.voucher)
    .bind(v.idevid_issuer)
    // Every statement runs only when the rows are read to the end.
    .fetch_all(&mut *conn)
    .await?;
    let row = rows.first().ok_or(sqlx::Error::RowNotFound)?;
    let id: i64 = row.try_get("id")?;
    Ok(id)
}

/// The audit log of `serial`, oldest first.
pub async fn audit_events(pool: &SqlitePool, serial: &str) -> Result<Vec<AuditEvent>, sqlx::Error> {
    let rows: Vec<(String, String, Option<String>, String)> = sqlx::query_as(
        "SELECT date, domain_id, nonce, assertion FROM audit_log WHERE serial = ? ORDER BY id",
    )
    .bind(serial)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(date, domain_id, nonce, assertion)| AuditEvent {
            date,
            domain_id,
            nonce,
            assertion: Assertion::from_text(&assertion),
            truncated: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pool(dir: &tempfile::TempDir) -> SqlitePool {
        open(&dir.path().join("t.db")).await.expect("open")
    }

    fn device(serial: &str) -> Device {
        Device {
            serial: serial.into(),
            idevid_issuer: vec![4, 1, 0],
            idevid_cert: vec![0x30, 0],
        }
    }

    #[tokio::test]
    async fn devices_are_minted_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = pool(&dir).await;
        let mut conn = pool.acquire().await.expect("conn");
        assert!(
            insert_device(&mut conn, &device("A"))
                .await
                .expect("insert")
        );
        assert!(!insert_device(&mut conn, &device("A")).await.expect("again"));
        drop(conn);
        let d = super::device(&pool, "A").await.expect("q").expect("found");
        assert_eq!(d.idevid_issuer, vec![4, 1, 0]);
        assert!(super::device(&pool, "B").await.expect("q").is_none());
    }

    #[tokio::test]
    async fn owners_claims_and_the_audit_log_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = pool(&dir).await;
        let mut conn = pool.acquire().await.expect("conn");
        insert_device(&mut conn, &device("A"))
            .await
            .expect("insert");
        drop(conn);
        let dom = DomainRecord {
            domain_id: "ZG9t".into(),
            cert: vec![1, 2, 3],
        };
        let mut tx = begin_write(&pool).await.expect("begin");
        assert!(owner(&mut tx, "A").await.expect("q").is_none());
        set_owner(&mut tx, "A", &dom).await.expect("owner");
        for nonce in [Some("bm9uY2U="), None] {
            record_voucher(
                &mut tx,
                &IssuedVoucher {
                    serial: "A",
                    idevid_issuer: &[4],
                    created_on: "2024-01-01T00:00:00.000Z",
                    expires_on: None,
                    format: "cms",
                    domain_id: "ZG9t",
                    nonce,
                    assertion: "logged",
                    voucher: &[0x30],
                },
            )
            .await
            .expect("record");
        }
        tx.commit().await.expect("commit");
        let mut conn = pool.acquire().await.expect("conn");
        assert_eq!(
            owner(&mut conn, "A").await.expect("q").expect("owner").cert,
            vec![1, 2, 3]
        );
        drop(conn);
        let events = audit_events(&pool, "A").await.expect("events");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].nonce.as_deref(), Some("bm9uY2U="));
        assert_eq!(events[1].nonce, None);
        assert_eq!(events[1].assertion, Assertion::Logged);
        assert!(release(&pool, "A").await.expect("release"));
        assert!(!release(&pool, "A").await.expect("release again"));

        set_claim(&pool, "A", &dom).await.expect("claim");
        let other = DomainRecord {
            domain_id: "b3RoZXI=".into(),
            cert: vec![9],
        };
        set_claim(&pool, "A", &other).await.expect("re-claim");
        let mut conn = pool.acquire().await.expect("conn");
        let c = claim(&mut conn, "A").await.expect("q").expect("claim");
        assert_eq!((c.domain_id.as_str(), c.cert), ("b3RoZXI=", vec![9]));
    }

    #[tokio::test]
    async fn a_rolled_back_voucher_leaves_no_audit_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = pool(&dir).await;
        let mut conn = pool.acquire().await.expect("conn");
        insert_device(&mut conn, &device("A"))
            .await
            .expect("insert");
        drop(conn);
        let mut tx = begin_write(&pool).await.expect("begin");
        record_voucher(
            &mut tx,
            &IssuedVoucher {
                serial: "A",
                idevid_issuer: &[4],
                created_on: "2024-01-01T00:00:00Z",
                expires_on: None,
                format: "cms",
                domain_id: "ZG9t",
                nonce: None,
                assertion: "logged",
                voucher: &[0x30],
            },
        )
        .await
        .expect("record");
        drop(tx);
        assert!(audit_events(&pool, "A").await.expect("events").is_empty());
    }

    #[tokio::test]
    async fn unknown_serials_cannot_be_owned_or_logged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = pool(&dir).await;
        let dom = DomainRecord {
            domain_id: "x".into(),
            cert: vec![],
        };
        let mut tx = begin_write(&pool).await.expect("begin");
        assert!(set_owner(&mut tx, "nope", &dom).await.is_err());
    }
}
