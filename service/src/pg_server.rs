//! A PostgreSQL server of its own for tests and the testbed: `initdb` into a temporary
//! directory and `pg_ctl start` on a free loopback port, trust authentication, stopped when
//! dropped. PostgreSQL refuses to run as root; as root, the server runs as `nobody`.
//!
//! The programs are Debian's (`postgresql`, in `/usr/lib/postgresql/<version>/bin`, which is
//! not on PATH), or whichever `initdb` is on PATH.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The user the server's role is made for (`initdb -U`).
pub const USER: &str = "brski";

/// A running PostgreSQL server.
#[derive(Debug)]
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
}

impl PgServer {
    /// Make a cluster in a new temporary directory and start it.
    pub fn start() -> Result<Self, String> {
        Self::start_with(None)
    }

    /// One server for the whole process, started on first use: each user makes a database
    /// of its own ([`PgServer::ensure_database`]). A static is never dropped, so a watcher
    /// process stops the server and removes its directory once this process has exited.
    pub fn shared() -> Result<&'static Self, String> {
        static SHARED: std::sync::OnceLock<Result<PgServer, String>> = std::sync::OnceLock::new();
        SHARED
            .get_or_init(|| {
                let server = Self::start()?;
                server.stop_after_exit()?;
                Ok(server)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Start a detached watcher that, once this process is gone, stops the server
    /// immediately and removes its directory.
    fn stop_after_exit(&self) -> Result<(), String> {
        use std::os::unix::process::CommandExt;
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; '{pg_ctl}' -D '{data}' -m immediate -w stop; rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data().display(),
            dir = self.dir.path().display(),
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.spawn().map(drop).map_err(|e| format!("watcher: {e}"))
    }

    /// Database `name`, made unless it exists.
    pub fn ensure_database(&self, name: &str) -> Result<(), String> {
        // One at a time: concurrent CREATE DATABASE from one template may collide.
        static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = ONE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let quoted = name.replace('\'', "''");
        let exists = self.psql(
            "postgres",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{quoted}'"),
        )?;
        if exists == "1" {
            return Ok(());
        }
        self.create_database(name)
    }

    /// As [`PgServer::start`], serving TLS with the certificate chain and key given (PEM).
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        Self::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Result<Self, String> {
        let bin = bin_dir().ok_or(
            "PostgreSQL's initdb was found neither on PATH nor in /usr/lib/postgresql/*/bin \
             (apt-get install postgresql)",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("brski-pg-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let run_as = unprivileged()?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.path().display()))?;
        }
        let mut server = Self {
            dir,
            bin,
            port: 0,
            run_as,
        };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
        )?;
        if let Some((cert, key)) = tls {
            server.write_tls(cert, key)?;
        }
        server.port = free_port()?;
        server.pg_ctl_start()?;
        Ok(server)
    }

    /// `server.crt` and `server.key` (mode 0600, the server's own, as PostgreSQL requires)
    /// in the data directory, and `ssl = on` in its configuration.
    fn write_tls(&self, cert: &str, key: &str) -> Result<(), String> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, chown};
        let data = self.data();
        for (name, text, mode) in [("server.crt", cert, 0o644), ("server.key", key, 0o600)] {
            let path = data.join(name);
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&path)
                .and_then(|mut f| f.write_all(text.as_bytes()))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some((uid, gid)) = self.run_as {
                chown(&path, Some(uid), Some(gid)).map_err(|e| format!("chown {name}: {e}"))?;
            }
        }
        let conf = data.join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| f.write_all(b"\nssl = on\n"))
            .map_err(|e| format!("{}: {e}", conf.display()))
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The TCP port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` (made by [`PgServer::create_database`], or `postgres`).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// `CREATE DATABASE name`, with `psql` beside `initdb`.
    pub fn create_database(&self, name: &str) -> Result<(), String> {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        self.psql("postgres", &sql).map(|_| ())
    }

    /// Run `sql` in database `db` with `psql` (unaligned, tuples only); what it printed.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let url = self.url(db);
        let out = self.run(
            "psql",
            &[
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &url,
                "-c",
                sql,
            ],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The process ID of the server's postmaster (`postmaster.pid`), while it runs.
    pub fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// `pg_dump` of database `db`: its data as `COPY` blocks (tab-separated rows).
    pub fn dump(&self, db: &str) -> Result<String, String> {
        let url = self.url(db);
        let out = self.run("pg_dump", &["--data-only", "-d", &url])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stop the server (`pg_ctl stop -m fast`).
    pub fn stop(&self) -> Result<(), String> {
        let data = self.data().display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])
            .map(|_| ())
    }

    /// Start the server again on the same port, after [`PgServer::stop`].
    pub fn restart(&self) -> Result<(), String> {
        self.pg_ctl_start()
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let data = self.data().display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        )
        .map_err(|e| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{e}\n{log}")
        })
        .map(|_| ())
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<Output, String> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(self.bin.join(program));
        cmd.args(args).current_dir(self.dir.path());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd.output().map_err(|e| format!("{program}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{program} {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(out)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}

/// The directory of `initdb`, `pg_ctl` and `psql`.
fn bin_dir() -> Option<PathBuf> {
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    // The newest version: directories are named by major version.
    debian.sort_by_key(|p| {
        p.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    debian.pop().or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
        })
    })
}

/// As root, the uid and gid of `nobody`, whom the server runs as.
fn unprivileged() -> Result<Option<(u32, u32)>, String> {
    let id = |flag: &str, who: Option<&str>| -> Result<u32, String> {
        let out = Command::new("id")
            .arg(flag)
            .args(who)
            .output()
            .map_err(|e| format!("id: {e}"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|e| format!("id {flag}: {e}"))
    };
    if id("-u", None)? != 0 {
        return Ok(None);
    }
    Ok(Some((id("-u", Some("nobody"))?, id("-g", Some("nobody"))?)))
}

/// A loopback TCP port nothing listens on now.
fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind: {e}"))?;
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    Ok(port)
}
