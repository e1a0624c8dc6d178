//! SQLite storage through sqlx: WAL journal with `synchronous=FULL`, so that a committed
//! transaction survives a crash or SIGKILL (the MASA's audit log entry is durable before the
//! voucher leaves, RFC 8995 §5.6).

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub use sqlx::SqlitePool;

/// Open (creating if needed) the database at `url` (`sqlite:PATH` or a bare path) and apply
/// `schema` (idempotent `CREATE ... IF NOT EXISTS` statements).
pub async fn open(url: &str, schema: &'static str) -> Result<SqlitePool, sqlx::Error> {
    let options = options(url)?;
    // One reader connection per CPU (2 to 8): each is a thread of its own, and more readers
    // than cores only add context switches (`testbed bench`).
    let readers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    let pool = SqlitePoolOptions::new()
        .max_connections(readers as u32)
        .connect_with(options)
        .await?;
    sqlx::raw_sql(schema).execute(&pool).await?;
    Ok(pool)
}

/// The connection settings every connection uses (WAL, `synchronous=FULL`).
fn options(url: &str) -> Result<SqliteConnectOptions, sqlx::Error> {
    let url = if url.starts_with("sqlite:") {
        url.to_string()
    } else {
        format!("sqlite:{url}")
    };
    Ok(SqliteConnectOptions::from_str(&url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        // Database pages are read through a memory map instead of a pread per page: every
        // write invalidates the other connections' page caches, so reads are frequent.
        .pragma("mmap_size", "268435456"))
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

/// The future of one write, borrowing the writer's connection.
pub type WriteFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'c>>;

/// Called once the batch of a write is committed (`None`) or failed to commit.
type Finish = Box<dyn FnOnce(Option<&sqlx::Error>) + Send>;

/// What a write left: whether it failed (its changes are then rolled back) and how to answer it.
struct Outcome {
    failed: bool,
    finish: Finish,
}

type Run = Box<
    dyn for<'c> FnOnce(
            &'c mut SqliteConnection,
        ) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'c>>
        + Send,
>;

/// One write waiting for the next transaction.
struct Job {
    run: Run,
    /// Whether it needs a savepoint of its own to be undone alone (it may change the database
    /// with more than one statement).
    savepoint: bool,
}

/// Most writes committed by one transaction.
const MAX_BATCH: usize = 256;

/// Most scheduler rounds the writer waits for more writes before it begins a transaction.
const MAX_GATHER_ROUNDS: usize = 4;

/// Group commit: one task owns a write connection and runs the writes of concurrent requests
/// in one transaction, with one fsync for all of them. [`GroupCommit::write`] returns only after
/// the transaction holding the write is committed (`synchronous=FULL`), so durability is that of
/// a transaction per write; a write that fails is undone alone (a savepoint each, or SQLite's
/// own statement atomicity for [`GroupCommit::write_statement`]).
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Open the writer's own connection to the database at `url` (already created by [`open`])
    /// and start its task on the current Tokio runtime. The task ends when every handle is
    /// dropped.
    pub async fn start(url: &str) -> Result<Self, sqlx::Error> {
        let conn = options(url)?.connect().await?;
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run_writer(conn, queue));
        Ok(Self { jobs })
    }

    /// Run `write` in the next group transaction, in a savepoint of its own; its result once
    /// that transaction committed. An error of `write` rolls back its own changes only.
    pub async fn write<T, F>(&self, write: F) -> Result<T, sqlx::Error>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> WriteFuture<'c, T> + Send + 'static,
    {
        self.submit(true, write).await
    }

    /// As [`GroupCommit::write`] for a write that changes the database with ONE statement
    /// (reads aside): SQLite undoes a failed statement by itself, so no savepoint (and no round
    /// trip to the database for one) is needed.
    pub async fn write_statement<T, F>(&self, write: F) -> Result<T, sqlx::Error>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> WriteFuture<'c, T> + Send + 'static,
    {
        self.submit(false, write).await
    }

    async fn submit<T, F>(&self, savepoint: bool, write: F) -> Result<T, sqlx::Error>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> WriteFuture<'c, T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<Result<T, sqlx::Error>>();
        let run: Run = Box::new(move |conn| {
            Box::pin(async move {
                match write(conn).await {
                    Ok(value) => Outcome {
                        failed: false,
                        finish: Box::new(move |commit_error| {
                            let _ = answer.send(match commit_error {
                                None => Ok(value),
                                Some(e) => Err(not_committed(e)),
                            });
                        }),
                    },
                    Err(e) => Outcome {
                        failed: true,
                        finish: Box::new(move |_| {
                            let _ = answer.send(Err(e));
                        }),
                    },
                }
            })
        });
        self.jobs
            .send(Job { run, savepoint })
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answered.await.map_err(|_| {
            sqlx::Error::Protocol("group commit: the write was abandoned uncommitted".into())
        })?
    }
}

fn not_committed(e: &sqlx::Error) -> sqlx::Error {
    sqlx::Error::Protocol(format!("group commit: the transaction did not commit: {e}"))
}

async fn run_writer(mut conn: SqliteConnection, mut queue: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        // Let the requests that are ready to run now queue their writes too, as long as more
        // keep coming (a few rounds at most): a bigger batch shares one fsync and the WAL pages
        // it writes. No timer: under light load this costs one trip through the scheduler.
        for _ in 0..MAX_GATHER_ROUNDS {
            tokio::task::yield_now().await;
            let before = batch.len();
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if batch.len() == before || batch.len() >= MAX_BATCH {
                break;
            }
        }
        let mut rest = batch.into_iter();
        while rest.len() > 0 {
            run_batch(&mut conn, &mut rest).await;
        }
    }
    let _ = conn.close().await;
}

/// One transaction for jobs taken from `jobs`; dropping a job unanswered tells its caller it was
/// not committed. Control statements are sent together where they can be: `BEGIN` with the
/// first savepoint, the release of one savepoint with the start of the next, the last release
/// with `COMMIT`. A failed one-statement write ends the transaction early (SQLite may have
/// rolled back the whole transaction for some errors); the jobs left go to the next one.
async fn run_batch(conn: &mut SqliteConnection, jobs: &mut std::vec::IntoIter<Job>) {
    // Control statements not sent yet; the first starts the transaction.
    let mut pending = vec!["BEGIN IMMEDIATE"];
    let mut open_savepoint = false;
    let mut finishes = Vec::new();
    for job in jobs.by_ref() {
        if job.savepoint {
            if open_savepoint {
                pending.push("RELEASE write");
            }
            pending.push("SAVEPOINT write");
            open_savepoint = true;
        }
        if !pending.is_empty() {
            let sql = std::mem::take(&mut pending).join("; ");
            if sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await
                .is_err()
            {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                return;
            }
        }
        let outcome = (job.run)(&mut *conn).await;
        let failed = outcome.failed;
        finishes.push(outcome.finish);
        if failed && job.savepoint {
            // Undo this write alone; the savepoint is gone afterwards.
            if sqlx::raw_sql("ROLLBACK TO write; RELEASE write")
                .execute(&mut *conn)
                .await
                .is_err()
            {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                return;
            }
            open_savepoint = false;
        } else if failed {
            break;
        }
    }
    if open_savepoint {
        pending.push("RELEASE write");
    }
    pending.push("COMMIT");
    let committed = sqlx::raw_sql(sqlx::AssertSqlSafe(pending.join("; ")))
        .execute(&mut *conn)
        .await;
    if committed.is_err() {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    }
    let error = committed.err();
    for finish in finishes {
        finish(error.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str =
        "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY NOT NULL, v INTEGER NOT NULL);";

    async fn setup(dir: &tempfile::TempDir) -> (SqlitePool, GroupCommit) {
        let url = dir.path().join("t.db").to_string_lossy().to_string();
        let pool = open(&url, SCHEMA).await.expect("open");
        let writer = GroupCommit::start(&url).await.expect("writer");
        (pool, writer)
    }

    fn insert(
        writer: &GroupCommit,
        k: &str,
        v: i64,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + use<> {
        insert_with(writer, k, v, true)
    }

    fn insert_statement(
        writer: &GroupCommit,
        k: &str,
        v: i64,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + use<> {
        insert_with(writer, k, v, false)
    }

    /// One INSERT through [`GroupCommit::write`] (`savepoint`) or `write_statement`.
    fn insert_with(
        writer: &GroupCommit,
        k: &str,
        v: i64,
        savepoint: bool,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + use<> {
        let writer = writer.clone();
        let job = insert_job(k.to_string(), v);
        async move {
            if savepoint {
                writer.write(job).await
            } else {
                writer.write_statement(job).await
            }
        }
    }

    fn insert_job(
        k: String,
        v: i64,
    ) -> impl for<'c> FnOnce(&'c mut SqliteConnection) -> WriteFuture<'c, u64> + Send + 'static
    {
        move |conn| {
            Box::pin(async move {
                Ok(sqlx::query("INSERT INTO t (k, v) VALUES (?, ?)")
                    .bind(k)
                    .bind(v)
                    .execute(conn)
                    .await?
                    .rows_affected())
            })
        }
    }

    async fn rows(pool: &SqlitePool) -> Vec<(String, i64)> {
        sqlx::query_as("SELECT k, v FROM t ORDER BY k")
            .fetch_all(pool)
            .await
            .expect("select")
    }

    #[tokio::test]
    async fn a_write_is_committed_when_it_returns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pool, writer) = setup(&dir).await;
        assert_eq!(insert(&writer, "a", 1).await.expect("insert"), 1);
        // Another connection sees it at once: it was committed before the answer.
        assert_eq!(rows(&pool).await, vec![("a".to_string(), 1)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_all_commit_and_a_failing_one_is_undone_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pool, writer) = setup(&dir).await;
        insert(&writer, "dup", 0).await.expect("first");
        let mut tasks = Vec::new();
        for i in 0..100_i64 {
            tasks.push(tokio::spawn(insert(&writer, &format!("k{i:03}"), i)));
        }
        // A write that changes a row and then fails: its change must not survive.
        let failing = {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(|conn| {
                        Box::pin(async move {
                            sqlx::query("UPDATE t SET v = 99 WHERE k = 'dup'")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("INSERT INTO t (k, v) VALUES ('dup', 1)")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .await
            })
        };
        for t in tasks {
            assert_eq!(t.await.expect("join").expect("insert"), 1);
        }
        let err = failing.await.expect("join").expect_err("duplicate key");
        assert!(
            matches!(err, sqlx::Error::Database(ref e) if e.is_unique_violation()),
            "{err:?}"
        );
        let all = rows(&pool).await;
        assert_eq!(all.len(), 101);
        assert!(all.contains(&("dup".to_string(), 0)));
        assert!(all.contains(&("k099".to_string(), 99)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn statement_and_savepoint_writes_mix_and_failures_are_undone_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pool, writer) = setup(&dir).await;
        insert(&writer, "dup", 0).await.expect("first");
        let mut tasks = Vec::new();
        let mut failing = Vec::new();
        for i in 0..120_i64 {
            let k = format!("k{i:03}");
            match i % 4 {
                0 => tasks.push(tokio::spawn(insert(&writer, &k, i))),
                1 | 2 => tasks.push(tokio::spawn(insert_statement(&writer, &k, i))),
                // A one-statement write that fails (duplicate key) among the others.
                _ => failing.push(tokio::spawn(insert_statement(&writer, "dup", i))),
            }
        }
        for t in tasks {
            assert_eq!(t.await.expect("join").expect("insert"), 1);
        }
        for t in failing {
            let err = t.await.expect("join").expect_err("duplicate key");
            assert!(
                matches!(err, sqlx::Error::Database(ref e) if e.is_unique_violation()),
                "{err:?}"
            );
        }
        let all = rows(&pool).await;
        assert_eq!(all.len(), 1 + 90);
        assert!(all.contains(&("dup".to_string(), 0)));
        assert!(all.contains(&("k118".to_string(), 118)));
        assert!(!all.iter().any(|(k, _)| k == "k003"));
        // The writer goes on.
        assert_eq!(insert_statement(&writer, "z", 1).await.expect("insert"), 1);
    }

    #[tokio::test]
    async fn a_failing_write_is_answered_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_pool, writer) = setup(&dir).await;
        let err = writer
            .write(|conn| {
                Box::pin(async move {
                    sqlx::raw_sql("CREATE TABLE nope (x")
                        .execute(conn)
                        .await
                        .map(|_| ())
                })
            })
            .await
            .expect_err("syntax error");
        assert!(matches!(err, sqlx::Error::Database(_)), "{err:?}");
        // The writer goes on after a failed write.
        assert_eq!(insert(&writer, "b", 2).await.expect("insert"), 1);
    }
}
