//! The MASA's state in PostgreSQL, shared by several `masa serve` instances: the tables of the
//! SQLite schema ([`crate::db`]) as versioned migrations (component `masa`), and the same
//! operations. A voucher, its audit entry and the ownership decision are one transaction that
//! commits before the voucher leaves (RFC 8995 §5.6); first-owner is decided by the owners
//! table's primary key, so two instances racing for one serial record one owner.

use crate::db::{Device, DomainRecord, IssuedVoucher};
use brski_common::audit::{Assertion, AuditEvent};
use brski_service::postgres::{GenericClient, Migration, PgError, PgStore};

/// The schema, by version.
pub const MIGRATIONS: [Migration; 1] = [Migration {
    version: 1,
    name: "devices, owners, claims, vouchers, audit log",
    sql: "
CREATE TABLE devices (
    serial        TEXT PRIMARY KEY,
    idevid_issuer BYTEA NOT NULL,
    idevid_cert   BYTEA NOT NULL,
    minted_at     TEXT NOT NULL
);
CREATE TABLE owners (
    serial      TEXT PRIMARY KEY REFERENCES devices(serial),
    domain_id   TEXT NOT NULL,
    domain_cert BYTEA NOT NULL,
    since       TEXT NOT NULL
);
CREATE TABLE claims (
    serial     TEXT PRIMARY KEY REFERENCES devices(serial),
    domain_id  TEXT NOT NULL,
    domain_ca  BYTEA NOT NULL,
    claimed_at TEXT NOT NULL
);
CREATE TABLE vouchers (
    id         BIGSERIAL PRIMARY KEY,
    serial     TEXT NOT NULL REFERENCES devices(serial),
    created_on TEXT NOT NULL,
    expires_on TEXT,
    format     TEXT NOT NULL,
    domain_id  TEXT NOT NULL,
    nonce      TEXT,
    assertion  TEXT NOT NULL,
    voucher    BYTEA NOT NULL
);
CREATE TABLE audit_log (
    id            BIGSERIAL PRIMARY KEY,
    serial        TEXT NOT NULL REFERENCES devices(serial),
    idevid_issuer BYTEA NOT NULL,
    date          TEXT NOT NULL,
    domain_id     TEXT NOT NULL,
    nonce         TEXT,
    assertion     TEXT NOT NULL,
    voucher_id    BIGINT NOT NULL REFERENCES vouchers(id)
);
CREATE INDEX audit_log_by_serial ON audit_log (serial, id);
",
}];

/// The pool for `url`, its schema brought up to date.
pub async fn open(url: &str, ca_certs: &[Vec<u8>]) -> Result<PgStore, PgError> {
    let store = PgStore::connect(url, ca_certs)?;
    store.migrate("masa", &MIGRATIONS).await?;
    Ok(store)
}

/// Record a minted device; `Ok(false)` when the serial was minted before.
pub async fn insert_device(c: &impl GenericClient, device: &Device) -> Result<bool, PgError> {
    let done = c
        .execute(
            &c.prepare_cached(
                "INSERT INTO devices (serial, idevid_issuer, idevid_cert, minted_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (serial) DO NOTHING",
            )
            .await?,
            &[
                &device.serial,
                &device.idevid_issuer,
                &device.idevid_cert,
                &crate::db::now(),
            ],
        )
        .await?;
    Ok(done == 1)
}

/// The device minted with `serial`.
pub async fn device(c: &impl GenericClient, serial: &str) -> Result<Option<Device>, PgError> {
    let row = c
        .query_opt(
            &c.prepare_cached(
                "SELECT serial, idevid_issuer, idevid_cert FROM devices WHERE serial = $1",
            )
            .await?,
            &[&serial],
        )
        .await?;
    Ok(row.map(|r| Device {
        serial: r.get(0),
        idevid_issuer: r.get(1),
        idevid_cert: r.get(2),
    }))
}

async fn domain_record(
    c: &impl GenericClient,
    sql: &str,
    serial: &str,
) -> Result<Option<DomainRecord>, PgError> {
    let row = c.query_opt(sql, &[&serial]).await?;
    Ok(row.map(|r| DomainRecord {
        domain_id: r.get(0),
        cert: r.get(1),
    }))
}

/// The first owner of `serial`.
pub async fn owner(c: &impl GenericClient, serial: &str) -> Result<Option<DomainRecord>, PgError> {
    domain_record(
        c,
        "SELECT domain_id, domain_cert FROM owners WHERE serial = $1",
        serial,
    )
    .await
}

/// Make `domain` the owner of `serial` unless it has one; `Ok(true)` when it became the owner.
/// An insert racing another transaction's for the same serial waits for it to end.
pub async fn insert_owner_if_none(
    c: &impl GenericClient,
    serial: &str,
    domain: &DomainRecord,
) -> Result<bool, PgError> {
    let done = c
        .execute(
            &c.prepare_cached(
                "INSERT INTO owners (serial, domain_id, domain_cert, since) VALUES ($1, $2, $3, $4)
             ON CONFLICT (serial) DO NOTHING",
            )
            .await?,
            &[&serial, &domain.domain_id, &domain.cert, &crate::db::now()],
        )
        .await?;
    Ok(done == 1)
}

/// Forget the owner of `serial`; `Ok(false)` when it had none.
pub async fn release(c: &impl GenericClient, serial: &str) -> Result<bool, PgError> {
    let done = c
        .execute(
            &c.prepare_cached("DELETE FROM owners WHERE serial = $1")
                .await?,
            &[&serial],
        )
        .await?;
    Ok(done > 0)
}

/// The claim on `serial`.
pub async fn claim(c: &impl GenericClient, serial: &str) -> Result<Option<DomainRecord>, PgError> {
    domain_record(
        c,
        "SELECT domain_id, domain_ca FROM claims WHERE serial = $1",
        serial,
    )
    .await
}

/// Record (or replace) the claim of `domain` on `serial`.
pub async fn set_claim(
    c: &impl GenericClient,
    serial: &str,
    domain: &DomainRecord,
) -> Result<(), PgError> {
    c.execute(
        &c.prepare_cached(
            "INSERT INTO claims (serial, domain_id, domain_ca, claimed_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (serial) DO UPDATE SET domain_id = excluded.domain_id,
             domain_ca = excluded.domain_ca, claimed_at = excluded.claimed_at",
        )
        .await?,
        &[&serial, &domain.domain_id, &domain.cert, &crate::db::now()],
    )
    .await?;
    Ok(())
}

/// Store an issued voucher and its audit entry (RFC 8995 §5.8.1) in the caller's transaction.
/// The voucher's id.
pub async fn record_voucher(c: &impl GenericClient, v: &IssuedVoucher<'_>) -> Result<i64, PgError> {
    let row = c
        .query_one(
            &c.prepare_cached(
                "INSERT INTO vouchers (serial, created_on, expires_on, format, domain_id, nonce,
                                   assertion, voucher)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .await?,
            &[
                &v.serial,
                &v.created_on,
                &v.expires_on,
                &v.format,
                &v.domain_id,
                &v.nonce,
                &v.assertion,
                &v.voucher,
            ],
        )
        .await?;
    let id: i64 = row.get(0);
    c.execute(
        &c.prepare_cached(
            "INSERT INTO audit_log (serial, idevid_issuer, date, domain_id, nonce, assertion,
                                voucher_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?,
        &[
            &v.serial,
            &v.idevid_issuer,
            &v.created_on,
            &v.domain_id,
            &v.nonce,
            &v.assertion,
            &id,
        ],
    )
    .await?;
    Ok(id)
}

/// The audit log of `serial`, oldest first.
pub async fn audit_events(
    c: &impl GenericClient,
    serial: &str,
) -> Result<Vec<AuditEvent>, PgError> {
    let rows = c
        .query(
            &c.prepare_cached("SELECT date, domain_id, nonce, assertion FROM audit_log WHERE serial = $1 ORDER BY id").await?,
            &[&serial],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AuditEvent {
            date: r.get(0),
            domain_id: r.get(1),
            nonce: r.get(2),
            assertion: Assertion::from_text(r.get::<_, &str>(3)),
            truncated: None,
        })
        .collect())
}
