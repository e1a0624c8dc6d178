//! SQLite storage through sqlx: WAL journal with `synchronous=FULL`, so that a committed
//! transaction survives a crash or SIGKILL (the MASA's audit log entry is durable before the
//! voucher leaves, RFC 8995 §5.6).

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

pub use sqlx::SqlitePool;

/// Open (creating if needed) the database at `url` (`sqlite:PATH` or a bare path) and apply
/// `schema` (idempotent `CREATE ... IF NOT EXISTS` statements).
pub async fn open(url: &str, schema: &'static str) -> Result<SqlitePool, sqlx::Error> {
    let url = if url.starts_with("sqlite:") {
        url.to_string()
    } else {
        format!("sqlite:{url}")
    };
    let options = SqliteConnectOptions::from_str(&url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    sqlx::raw_sql(schema).execute(&pool).await?;
    Ok(pool)
}

/// Check the database's integrity (`PRAGMA integrity_check`); `Ok(true)` when it says "ok".
pub async fn integrity_ok(pool: &SqlitePool) -> Result<bool, sqlx::Error> {
    let row: (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(pool)
        .await?;
    Ok(row.0 == "ok")
}

/// Begin a write transaction that takes the write lock at once (`BEGIN IMMEDIATE`). A deferred
/// transaction that reads and then writes can fail with SQLITE_BUSY at once when another writer
/// commits in between (the busy timeout does not apply to that upgrade); this one waits instead.
pub async fn begin_write(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}
