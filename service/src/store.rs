//! SQLite storage (rusqlite, SQLite bundled): WAL journal with `synchronous=FULL`, so that a
//! committed transaction survives a crash or SIGKILL (the MASA's audit log entry is durable
//! before the voucher leaves, RFC 8995 §5.6).
//!
//! Reads run on the caller's thread, on one of a few reader connections: in WAL mode a reader
//! never waits for the writer, and a read of a warm database takes microseconds, less than a
//! hand-off to a database thread and back. Protocol writes go through [`GroupCommit`]: one
//! writer thread runs the writes of concurrent requests in one transaction with one fsync.

use crate::metrics::DbMetrics;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub use rusqlite::{self, Connection, OptionalExtension, Row, params};

/// Why a database operation failed.
/// A fault of either backend: the SQLite file or the PostgreSQL server.
#[derive(Debug, thiserror::Error)]
pub enum StoreFault {
    #[error(transparent)]
    Sqlite(#[from] StoreError),
    #[error(transparent)]
    Postgres(#[from] crate::postgres::PgError),
}

impl StoreFault {
    /// The database could not be reached: the request may be retried later (503 / 5.03).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Postgres(e) if e.is_unavailable())
    }
}

impl From<tokio_postgres::Error> for StoreFault {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Postgres(e.into())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database writer has stopped")]
    WriterStopped,
    #[error("starting the database writer thread: {0}")]
    WriterThread(std::io::Error),
    #[error("the transaction holding the write did not commit: {0}")]
    NotCommitted(String),
    /// A stored value this program cannot read back (e.g. an unknown enumeration value).
    #[error("unexpected value in the database: {0}")]
    Unexpected(String),
    /// The database cannot be written (read-only file, directory or file system): found at
    /// start, not at the first request.
    #[error("database {path} is not writable: {reason}")]
    ReadOnly { path: String, reason: String },
}

impl StoreError {
    /// Whether a UNIQUE or PRIMARY KEY constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How long a connection waits for a lock held by another process (an administrative
/// command beside the daemon) before it gives up with SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Most idle reader connections kept.
const MAX_IDLE_READERS: usize = 8;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// Open a connection with the settings every connection uses (WAL, `synchronous=FULL`,
/// foreign keys, busy timeout).
fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Why the database file at `path`, or the directory that holds it (SQLite writes its WAL and
/// shared-memory files there), cannot be written; `None` when both can.
fn not_writable(path: &Path) -> Option<String> {
    if path.exists() {
        if let Err(e) = std::fs::OpenOptions::new().write(true).open(path) {
            return Some(e.to_string());
        }
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let mut probe = path.as_os_str().to_os_string();
    probe.push(format!("-probe-{}", std::process::id()));
    let probe = PathBuf::from(probe);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) if dir.is_dir() => Some(format!("directory {}: {e}", dir.display())),
        Err(_) => None,
    }
}

/// Whether `conn` can write: a write transaction that changes the header (`user_version` set
/// to its own value) and is rolled back, so nothing changes on disk.
fn probe_writable(conn: &Connection) -> Result<()> {
    if conn.is_readonly(rusqlite::MAIN_DB)? {
        return Err(StoreError::Unexpected("opened read-only".into()));
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let written = conn.execute_batch(&format!("PRAGMA user_version = {version}"));
    conn.execute_batch("ROLLBACK")?;
    written?;
    Ok(())
}

/// The database for reads and for administrative writes (`registrar pledges allow`,
/// `masa claim`); cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
}

struct DbInner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Open (creating if needed) the database at `path` and apply `schema` (idempotent
    /// `CREATE ... IF NOT EXISTS` statements).
    pub fn open(path: &Path, schema: &str) -> Result<Self> {
        if let Some(reason) = not_writable(path) {
            return Err(StoreError::ReadOnly {
                path: path.display().to_string(),
                reason,
            });
        }
        let conn = connect(path)?;
        conn.execute_batch(schema)?;
        Ok(Self {
            inner: Arc::new(DbInner {
                path: path.to_path_buf(),
                idle: Mutex::new(vec![conn]),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn take(&self) -> Result<Connection> {
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => connect(&self.inner.path),
        }
    }

    fn give(&self, conn: Connection) {
        let mut idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }

    /// Run the reads of `f` on a reader connection, on this thread.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.take()?;
        let out = f(&conn);
        // A connection left inside a transaction (it cannot be, short of a bug in `f`) is
        // not reused.
        if conn.is_autocommit() {
            self.give(conn);
        }
        out
    }

    /// Run `f` in a write transaction of its own (`BEGIN IMMEDIATE`, so that it waits for
    /// the write lock instead of failing when it upgrades), committed before this returns;
    /// an error of `f` (of any type a [`StoreError`] converts into, so that a caller can roll
    /// back for reasons of its own) rolls it back. For administrative commands; the daemons'
    /// protocol writes go through [`GroupCommit`].
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.take()?;
        let out = (|| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(StoreError::from)?;
            let value = f(&tx)?;
            tx.commit().map_err(StoreError::from)?;
            Ok(value)
        })();
        if conn.is_autocommit() {
            self.give(conn);
        }
        out
    }

    /// `PRAGMA integrity_check`: `Ok(true)` when it says "ok".
    pub fn integrity_ok(&self) -> Result<bool> {
        self.read(|conn| {
            let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
            Ok(verdict == "ok")
        })
    }
}

/// Called once the batch of a write is committed (`None`) or failed to commit.
type Finish = Box<dyn FnOnce(Option<&str>) + Send>;

/// What a write left: whether it failed (its changes are then rolled back) and how to answer it.
struct Outcome {
    failed: bool,
    finish: Finish,
}

/// One write waiting for the next transaction.
struct Job {
    run: Box<dyn FnOnce(&Connection) -> Outcome + Send>,
    /// Whether it needs a savepoint of its own to be undone alone (it may change the database
    /// with more than one statement).
    savepoint: bool,
}

/// Most writes committed by one transaction.
const MAX_BATCH: usize = 256;

/// Group commit: one thread owns a write connection and runs the writes that concurrent
/// requests queued in one transaction, with one fsync for all of them. [`GroupCommit::write`]
/// returns only after the transaction holding the write is committed (`synchronous=FULL`), so
/// durability is that of a transaction per write; a write that fails is undone alone (a
/// savepoint each, or SQLite's own statement atomicity for [`GroupCommit::write_statement`]).
/// A transaction takes the first queued write and every write that queues before its COMMIT
/// begins (up to [`MAX_BATCH`]); those that queue during the COMMIT (its fsync) go to the next
/// one. Batches grow with the load, and no write waits for more.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Open the writer's own connection to the database at `path` (created by [`Db::open`])
    /// and start its thread. The thread ends when every handle is dropped, after the writes
    /// already queued.
    pub fn start(path: &Path) -> Result<Self> {
        Self::start_metered(path, DbMetrics::default())
    }

    /// [`GroupCommit::start`], observing each commit's latency and batch size in `metrics`.
    pub fn start_metered(path: &Path, metrics: DbMetrics) -> Result<Self> {
        let read_only = |reason: String| StoreError::ReadOnly {
            path: path.display().to_string(),
            reason,
        };
        let conn = connect(path).map_err(|e| read_only(e.to_string()))?;
        probe_writable(&conn).map_err(|e| read_only(e.to_string()))?;
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run_writer(conn, queue, &metrics))
            .map_err(StoreError::WriterThread)?;
        Ok(Self { jobs })
    }

    /// Run `write` in the next group transaction, in a savepoint of its own; its result once
    /// that transaction committed. An error of `write` rolls back its own changes only.
    pub async fn write<T, F>(&self, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(true, write).await
    }

    /// As [`GroupCommit::write`] for a write that changes the database with ONE statement
    /// (reads aside): SQLite undoes a failed statement by itself, so no savepoint is needed.
    pub async fn write_statement<T, F>(&self, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(false, write).await
    }

    async fn submit<T, F>(&self, savepoint: bool, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<Result<T>>();
        let run = Box::new(move |conn: &Connection| match write(conn) {
            Ok(value) => Outcome {
                failed: false,
                finish: Box::new(move |commit_error: Option<&str>| {
                    let _ = answer.send(match commit_error {
                        None => Ok(value),
                        Some(e) => Err(StoreError::NotCommitted(e.to_string())),
                    });
                }),
            },
            Err(e) => Outcome {
                failed: true,
                finish: Box::new(move |_| {
                    let _ = answer.send(Err(e));
                }),
            },
        });
        self.jobs
            .send(Job { run, savepoint })
            .map_err(|_| StoreError::WriterStopped)?;
        answered
            .await
            .map_err(|_| StoreError::NotCommitted("the write was abandoned uncommitted".into()))?
    }
}

/// The writer: each transaction takes the first write waiting and every one that queued before
/// its COMMIT begins (while the previous transaction committed, and while this one ran), and
/// never waits for more: a wait would add its delay to each write of a request at moderate
/// load, and under heavy load the queue fills during each fsync anyway.
fn run_writer(conn: Connection, queue: mpsc::Receiver<Job>, metrics: &DbMetrics) {
    while let Ok(first) = queue.recv() {
        run_batch(&conn, first, &queue, metrics);
    }
}

/// Answer every write of `finishes` with `error` (their changes are gone with the
/// transaction).
fn fail_all(finishes: Vec<Finish>, error: &str) {
    for finish in finishes {
        finish(Some(error));
    }
}

/// One transaction for `first` and the jobs in `queue`, up to [`MAX_BATCH`]; dropping a job
/// unanswered tells its caller it was not committed. A failed one-statement write after which
/// SQLite rolled back the whole transaction (it does so for a few errors, e.g. SQLITE_FULL) ends
/// it: the writes before it are answered as not committed, the jobs still queued go to the next
/// transaction.
fn run_batch(conn: &Connection, first: Job, queue: &mpsc::Receiver<Job>, metrics: &DbMetrics) {
    let began = Instant::now();
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Nothing ran. The first job is dropped, so its caller hears that it was not
        // committed (and the writer always makes progress); the rest try again.
        tracing::warn!(error = %e, "database writer: BEGIN failed");
        drop(first);
        return;
    }
    let mut finishes: Vec<Finish> = Vec::new();
    let mut first = Some(first);
    while let Some(job) = first.take().or_else(|| queue.try_recv().ok()) {
        if job.savepoint
            && let Err(e) = conn.execute_batch("SAVEPOINT write")
        {
            let _ = conn.execute_batch("ROLLBACK");
            fail_all(finishes, &format!("SAVEPOINT: {e}"));
            return;
        }
        let outcome = (job.run)(conn);
        let failed = outcome.failed;
        finishes.push(outcome.finish);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back: everything before is gone too.
            let error = "SQLite rolled back the transaction after a failed write";
            let mut finishes = finishes;
            let own = finishes.pop();
            fail_all(finishes, error);
            if let Some(own) = own {
                own(Some(error));
            }
            return;
        }
        if job.savepoint {
            let end = if failed {
                "ROLLBACK TO write; RELEASE write"
            } else {
                "RELEASE write"
            };
            if let Err(e) = conn.execute_batch(end) {
                let _ = conn.execute_batch("ROLLBACK");
                fail_all(finishes, &format!("savepoint: {e}"));
                return;
            }
        }
        if finishes.len() >= MAX_BATCH {
            break;
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            metrics.committed(began.elapsed(), finishes.len());
            for finish in finishes {
                finish(None);
            }
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            fail_all(finishes, &format!("COMMIT: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str =
        "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY NOT NULL, v INTEGER NOT NULL);";

    fn setup(dir: &tempfile::TempDir) -> (Db, GroupCommit) {
        let path = dir.path().join("t.db");
        let db = Db::open(&path, SCHEMA).expect("open");
        let writer = GroupCommit::start(&path).expect("writer");
        (db, writer)
    }

    /// One INSERT through [`GroupCommit::write`] (`savepoint`) or `write_statement`.
    fn insert_with(
        writer: &GroupCommit,
        k: &str,
        v: i64,
        savepoint: bool,
    ) -> impl Future<Output = Result<usize>> + use<> {
        let writer = writer.clone();
        let k = k.to_string();
        let job = move |conn: &Connection| {
            Ok(conn.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", params![k, v])?)
        };
        async move {
            if savepoint {
                writer.write(job).await
            } else {
                writer.write_statement(job).await
            }
        }
    }

    fn insert(
        writer: &GroupCommit,
        k: &str,
        v: i64,
    ) -> impl Future<Output = Result<usize>> + use<> {
        insert_with(writer, k, v, true)
    }

    fn rows(db: &Db) -> Vec<(String, i64)> {
        db.read(|conn| {
            let mut stmt = conn.prepare("SELECT k, v FROM t ORDER BY k")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .expect("select")
    }

    /// Writes that queue while a transaction runs join it instead of waiting for the next
    /// one: one commit of three writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_queued_while_a_transaction_runs_join_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let db = Db::open(&path, SCHEMA).expect("open");
        let mut registry = crate::metrics::registry();
        let writer =
            GroupCommit::start_metered(&path, DbMetrics::register(&mut registry)).expect("writer");
        let (running, is_running) = std::sync::mpsc::channel();
        let first = writer.clone();
        let slow = tokio::spawn(async move {
            first
                .write(move |conn: &Connection| {
                    running.send(()).expect("test waits");
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(conn.execute("INSERT INTO t (k, v) VALUES ('slow', 0)", [])?)
                })
                .await
        });
        tokio::task::spawn_blocking(move || is_running.recv().expect("slow write ran"))
            .await
            .expect("join");
        let (a, b) = tokio::join!(insert(&writer, "a", 1), insert(&writer, "b", 2));
        assert_eq!((a.expect("a"), b.expect("b")), (1, 1));
        assert_eq!(slow.await.expect("join").expect("slow"), 1);
        assert_eq!(rows(&db).len(), 3);
        let (_, text) = crate::metrics::exposition(&registry, None);
        assert!(
            text.contains("brski_db_commit_batch_size_count 1\n")
                && text.contains("brski_db_commit_batch_size_sum 3.0\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_write_is_committed_when_it_returns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, writer) = setup(&dir);
        assert_eq!(insert(&writer, "a", 1).await.expect("insert"), 1);
        // Another connection sees it at once: it was committed before the answer.
        assert_eq!(rows(&db), vec![("a".to_string(), 1)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_all_commit_and_a_failing_one_is_undone_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, writer) = setup(&dir);
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
                        conn.execute("UPDATE t SET v = 99 WHERE k = 'dup'", [])?;
                        conn.execute("INSERT INTO t (k, v) VALUES ('dup', 1)", [])?;
                        Ok(())
                    })
                    .await
            })
        };
        for t in tasks {
            assert_eq!(t.await.expect("join").expect("insert"), 1);
        }
        let err = failing.await.expect("join").expect_err("duplicate key");
        assert!(err.is_unique_violation(), "{err:?}");
        let all = rows(&db);
        assert_eq!(all.len(), 101);
        assert!(all.contains(&("dup".to_string(), 0)));
        assert!(all.contains(&("k099".to_string(), 99)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn statement_and_savepoint_writes_mix_and_failures_are_undone_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, writer) = setup(&dir);
        insert(&writer, "dup", 0).await.expect("first");
        let mut tasks = Vec::new();
        let mut failing = Vec::new();
        for i in 0..120_i64 {
            let k = format!("k{i:03}");
            match i % 4 {
                0 => tasks.push(tokio::spawn(insert(&writer, &k, i))),
                1 | 2 => tasks.push(tokio::spawn(insert_with(&writer, &k, i, false))),
                // A one-statement write that fails (duplicate key) among the others.
                _ => failing.push(tokio::spawn(insert_with(&writer, "dup", i, false))),
            }
        }
        for t in tasks {
            assert_eq!(t.await.expect("join").expect("insert"), 1);
        }
        for t in failing {
            let err = t.await.expect("join").expect_err("duplicate key");
            assert!(err.is_unique_violation(), "{err:?}");
        }
        let all = rows(&db);
        assert_eq!(all.len(), 1 + 90);
        assert!(all.contains(&("dup".to_string(), 0)));
        assert!(all.contains(&("k118".to_string(), 118)));
        assert!(!all.iter().any(|(k, _)| k == "k003"));
        // The writer goes on.
        assert_eq!(
            insert_with(&writer, "z", 1, false).await.expect("insert"),
            1
        );
    }

    #[tokio::test]
    async fn a_failing_write_is_answered_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_db, writer) = setup(&dir);
        let err = writer
            .write(|conn| Ok(conn.execute_batch("CREATE TABLE nope (x")?))
            .await
            .expect_err("syntax error");
        assert!(matches!(err, StoreError::Sqlite(_)), "{err:?}");
        // The writer goes on after a failed write.
        assert_eq!(insert(&writer, "b", 2).await.expect("insert"), 1);
    }

    #[test]
    fn an_administrative_write_commits_or_rolls_back_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, _writer) = setup(&dir);
        db.write::<_, StoreError>(|conn| {
            Ok(conn.execute("INSERT INTO t (k, v) VALUES ('a', 1)", [])?)
        })
        .expect("write");
        let err = db
            .write::<_, StoreError>(|conn| {
                conn.execute("INSERT INTO t (k, v) VALUES ('b', 2)", [])?;
                conn.execute("INSERT INTO t (k, v) VALUES ('a', 3)", [])?;
                Ok(())
            })
            .expect_err("duplicate");
        assert!(err.is_unique_violation(), "{err:?}");
        assert_eq!(rows(&db), vec![("a".to_string(), 1)]);
        assert!(db.integrity_ok().expect("integrity"));

        // A refusal of the caller's own rolls back too and comes back as it was.
        #[derive(Debug)]
        enum Refused {
            Store(#[allow(dead_code)] StoreError),
            ByCaller,
        }
        impl From<StoreError> for Refused {
            fn from(e: StoreError) -> Self {
                Self::Store(e)
            }
        }
        let refused = db
            .write(|conn| {
                conn.execute("INSERT INTO t (k, v) VALUES ('c', 4)", [])
                    .map_err(StoreError::from)?;
                Err::<(), _>(Refused::ByCaller)
            })
            .expect_err("refused");
        assert!(matches!(refused, Refused::ByCaller), "{refused:?}");
        assert_eq!(rows(&db), vec![("a".to_string(), 1)]);
    }
}
