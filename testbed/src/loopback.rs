//! A manufacturer (MASA) and a domain (registrar) on loopback, driven through the command-line
//! contract of DESIGN.md, with pledges minted and bootstrapped by the real binaries.

use anyhow::{Context, Result, anyhow, bail, ensure};
use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Paths of the suite's binaries.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub masa: PathBuf,
    pub registrar: PathBuf,
    pub pledge: PathBuf,
}

impl Binaries {
    /// The binaries beside the running executable (`target/<profile>/`), or in `$BRSKI_BIN_DIR`.
    /// Test executables live one level deeper (`target/<profile>/deps/`); both are searched.
    pub fn locate() -> Result<Self> {
        let mut dirs = Vec::new();
        if let Some(d) = std::env::var_os("BRSKI_BIN_DIR") {
            dirs.push(PathBuf::from(d));
        }
        let exe = std::env::current_exe().context("locating the running executable")?;
        if let Some(d) = exe.parent() {
            dirs.push(d.to_path_buf());
            if let Some(up) = d.parent() {
                dirs.push(up.to_path_buf());
            }
        }
        for d in &dirs {
            let b = Self {
                masa: d.join("masa"),
                registrar: d.join("registrar"),
                pledge: d.join("pledge"),
            };
            if b.masa.is_file() && b.registrar.is_file() && b.pledge.is_file() {
                return Ok(b);
            }
        }
        bail!(
            "masa, registrar and pledge binaries not found beside {} (build the workspace first: cargo build --release)",
            exe.display()
        )
    }
}

/// Ports [`free_port`] has handed out in this process. A port is released as soon as it is
/// read, so without this record two calls in a row (or two test threads) can get the same one.
static HANDED_OUT: LazyLock<Mutex<HashSet<u16>>> = LazyLock::new(Mutex::default);

/// How many ephemeral ports [`free_port`] tries before giving up.
const FREE_PORT_ATTEMPTS: usize = 64;

/// [`free_port`] found only ports it had already handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoFreePort {
    pub attempts: usize,
}

impl std::fmt::Display for NoFreePort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "every loopback port offered in {} attempts was already handed out",
            self.attempts
        )
    }
}

impl std::error::Error for NoFreePort {}

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it again soon after),
/// never one this process has handed out before: daemons of parallel tests must not share one.
pub fn free_port() -> Result<u16> {
    free_port_of(|| {
        let l = TcpListener::bind("127.0.0.1:0")?;
        Ok((l.local_addr()?.port(), l))
    })
}

/// A free UDP port on 127.0.0.1, as [`free_port`] (one set of handed-out numbers for both, so
/// that a TCP and a UDP daemon never get the same number either).
pub fn free_udp_port() -> Result<u16> {
    free_port_of(|| {
        let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
        Ok((s.local_addr()?.port(), s))
    })
}

fn free_port_of<T>(bind: impl Fn() -> std::io::Result<(u16, T)>) -> Result<u16> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    // Rejected sockets stay bound until we return, so the kernel cannot offer them again.
    let mut rejected = Vec::new();
    for _ in 0..FREE_PORT_ATTEMPTS {
        let (port, socket) = bind().context("binding an ephemeral port")?;
        if handed_out.insert(port) {
            return Ok(port);
        }
        rejected.push(socket);
    }
    Err(NoFreePort {
        attempts: FREE_PORT_ATTEMPTS,
    }
    .into())
}

/// Wait until `addr` accepts TCP connections, or fail after `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration, child: &mut Child) -> Result<()> {
    let start = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("process exited with {status} before listening on {addr}");
        }
        if start.elapsed() > timeout {
            bail!("nothing listening on {addr} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A Unix datagram socket for a child's `sd_notify` messages (`$NOTIFY_SOCKET`), removed when
/// dropped.
struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
}

/// Longest Unix socket path (`sun_path` is 108 bytes with the terminating NUL).
const MAX_UNIX_PATH: usize = 107;

impl NotifySocket {
    /// Bind next to `log` (`<log>.notify`), or under the temporary directory when that path is
    /// too long for a Unix socket.
    fn bind(log: &Path) -> Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut path = log.with_extension("notify");
        if path.as_os_str().len() > MAX_UNIX_PATH {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            path = std::env::temp_dir().join(format!("testbed-{}-{n}.notify", std::process::id()));
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
        let sock = UnixDatagram::bind(&path)
            .with_context(|| format!("binding notify socket {}", path.display()))?;
        sock.set_read_timeout(Some(Duration::from_millis(25)))?;
        Ok(Self { sock, path })
    }

    /// Wait for a datagram with a `READY=1` line, failing if `child` exits first or `timeout`
    /// has passed since `start`.
    fn wait_ready(&self, start: Instant, timeout: Duration, child: &mut Child) -> Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    if String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .any(|l| l == "READY=1")
                    {
                        return Ok(());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("reading notify socket {}", self.path.display()));
                }
            }
            if let Some(status) = child.try_wait()? {
                bail!("process exited with {status} before sending READY=1");
            }
            if start.elapsed() >= timeout {
                bail!("no READY=1 on {} after {timeout:?}", self.path.display());
            }
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Run a command to completion; an error with its stderr when it fails.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// The environment variable naming a command every [`Daemon`] is started under, its words
/// split on whitespace (no quoting), e.g. `valgrind --tool=callgrind` (used by
/// `scripts/bench-instructions.sh`). The child keeps the wrapper's process ID, so the wrapper
/// must run the daemon in its own process, as valgrind does, and pass SIGTERM on.
pub const WRAP_DAEMONS_ENV: &str = "BRSKI_WRAP_DAEMONS";

/// How many times longer a wrapped daemon may take to start and to stop: code runs 20 to 100
/// times slower under valgrind.
const WRAPPED_SLOWDOWN: u32 = 50;

/// The words of `$BRSKI_WRAP_DAEMONS` (empty when unset).
fn daemon_wrapper() -> Vec<String> {
    std::env::var(WRAP_DAEMONS_ENV)
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// A daemon started as a child process, stopped with SIGTERM when dropped.
#[derive(Debug)]
pub struct Daemon {
    pub name: &'static str,
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
    /// How many times longer than natively its start and stop may take (1 unless wrapped).
    slowdown: u32,
}

impl Daemon {
    /// Start `program args...`, logging to `log`, and wait until it sends `READY=1` to its
    /// `$NOTIFY_SOCKET` (our daemons do once their listener is bound) and `addr` listens.
    ///
    /// Waiting for a connect alone is fooled by another process on `addr` (e.g. a daemon of a
    /// parallel test that got the same port): the child may have failed to bind while the
    /// check succeeds.
    pub fn start(
        name: &'static str,
        program: &Path,
        args: &[&str],
        addr: SocketAddr,
        log: PathBuf,
    ) -> Result<Self> {
        Self::start_as(name, program, args, addr, log, true, &daemon_wrapper())
    }

    /// [`Daemon::start`] for a daemon listening on UDP at `addr`: `READY=1` only (there is no
    /// connect to try).
    pub fn start_udp(
        name: &'static str,
        program: &Path,
        args: &[&str],
        addr: SocketAddr,
        log: PathBuf,
    ) -> Result<Self> {
        Self::start_as(name, program, args, addr, log, false, &daemon_wrapper())
    }

    fn start_as(
        name: &'static str,
        program: &Path,
        args: &[&str],
        addr: SocketAddr,
        log: PathBuf,
        tcp: bool,
        wrapper: &[String],
    ) -> Result<Self> {
        let slowdown = if wrapper.is_empty() {
            1
        } else {
            WRAPPED_SLOWDOWN
        };
        let timeout = Duration::from_secs(20) * slowdown;
        let start = Instant::now();
        let notify = NotifySocket::bind(&log).with_context(|| format!("starting {name}"))?;
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = match wrapper.split_first() {
            Some((wrap, wrap_args)) => {
                let mut c = Command::new(wrap);
                c.args(wrap_args).arg(program);
                c
            }
            None => Command::new(program),
        };
        let mut child = command
            .args(args)
            .env("NOTIFY_SOCKET", &notify.path)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let ready = notify
            .wait_ready(start, timeout, &mut child)
            .and_then(|()| {
                // The child said its listener is bound, so what answers on `addr` is its own.
                let left = timeout.saturating_sub(start.elapsed());
                if tcp {
                    wait_for_port(addr, left, &mut child)
                } else {
                    Ok(())
                }
            });
        drop(notify);
        if let Err(e) = ready {
            let _ = child.kill();
            let _ = child.wait();
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(anyhow!("{name}: {e:#}\n{log_text}"));
        }
        Ok(Self {
            name,
            child,
            addr,
            log,
            slowdown,
        })
    }

    /// Send SIGTERM and wait for the exit status (SIGKILL after `grace`, stretched for a
    /// wrapped daemon).
    pub fn stop(&mut self, grace: Duration) -> Result<std::process::ExitStatus> {
        let grace = grace * self.slowdown;
        signal(&self.child, "TERM")?;
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            if start.elapsed() > grace {
                let _ = self.child.kill();
                return Ok(self.child.wait()?);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.stop(Duration::from_secs(5));
        }
    }
}

/// Send a signal by name with kill(1) (no unsafe code here).
pub fn signal(child: &Child, name: &str) -> Result<()> {
    run(Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string()))?;
    Ok(())
}

/// Point the configuration `toml` (whose `database` is the SQLite file `file`) at database
/// `name`, made on `server`.
fn on_postgres(
    server: &brski_service::pg_server::PgServer,
    toml: &Path,
    file: &str,
    name: &str,
) -> Result<()> {
    server.create_database(name).map_err(|e| anyhow!(e))?;
    let text = std::fs::read_to_string(toml)?;
    let line = format!("database = \"{file}\"");
    ensure!(text.contains(&line), "{}: no {line}", toml.display());
    let url = server.url(name);
    std::fs::write(toml, text.replace(&line, &format!("database = \"{url}\"")))?;
    Ok(())
}

/// Options for [`Suite::create`].
#[derive(Clone, Debug)]
pub struct SuiteOptions {
    /// `--accept` of the registrar: `auto` or `pending`.
    pub accept: String,
    /// `--ownership` of the MASA.
    pub ownership: String,
    /// The pledges' transport: `https` or `coaps` (the registrar listens on both).
    pub transport: String,
    /// Where the daemons keep their state.
    pub store: StoreKind,
    /// Instances of each daemon: more than one shares a PostgreSQL database behind HAProxy
    /// ([`crate::cluster`]).
    pub instances: usize,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        Self {
            accept: "auto".into(),
            ownership: "log-only".into(),
            transport: "https".into(),
            store: StoreKind::from_env(),
            instances: 1,
        }
    }
}

/// The daemons' storage backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// Each daemon's embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server of the suite's own (`initdb` + `pg_ctl`) for both daemons.
    Postgres,
}

impl StoreKind {
    /// `BRSKI_TEST_DATABASE=postgres` runs the cross-daemon tests on PostgreSQL (scripts/test.sh
    /// runs them both ways); SQLite otherwise.
    pub fn from_env() -> Self {
        match std::env::var("BRSKI_TEST_DATABASE").as_deref() {
            Ok("postgres") => Self::Postgres,
            _ => Self::Sqlite,
        }
    }
}

/// A manufacturer and a domain on loopback.
#[derive(Debug)]
pub struct Suite {
    pub bin: Binaries,
    pub dir: PathBuf,
    pub masa_dir: PathBuf,
    pub registrar_dir: PathBuf,
    pub masa_addr: SocketAddr,
    pub registrar_addr: SocketAddr,
    /// The registrar's CoAPS (UDP) address.
    pub registrar_coaps_addr: SocketAddr,
    /// The registrar's JPY (UDP) address, for stateless constrained join proxies.
    pub registrar_jpy_addr: SocketAddr,
    /// `https` or `coaps`: the registrar URL pledges are minted with.
    pub transport: String,
    /// The PostgreSQL server holding the MASA's and the registrar's state
    /// ([`StoreKind::Postgres`]).
    pub pg: Option<brski_service::pg_server::PgServer>,
    pub masa: Option<Daemon>,
    pub registrar: Option<Daemon>,
    /// With several instances: where the load balancer listens for the MASA and for the
    /// registrar, and how many instances of each there are.
    pub cluster: Option<ClusterPlan>,
    /// The instances after the first (`masa`, `registrar`), started by
    /// [`Suite::start_instances`].
    pub instances: Vec<Daemon>,
    pub balancer: Option<crate::cluster::Balancer>,
}

/// The load-balanced addresses of a suite with several instances of each daemon.
#[derive(Clone, Copy, Debug)]
pub struct ClusterPlan {
    pub instances: usize,
    pub masa_lb: SocketAddr,
    pub registrar_lb: SocketAddr,
}

impl Suite {
    /// `masa init` and `registrar init` in `dir`, on fresh loopback ports. Nothing is started.
    pub fn create(bin: Binaries, dir: &Path, opts: &SuiteOptions) -> Result<Self> {
        let masa_dir = dir.join("masa");
        let registrar_dir = dir.join("registrar");
        let masa_addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let registrar_addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let registrar_coaps_addr: SocketAddr = format!("127.0.0.1:{}", free_udp_port()?).parse()?;
        let registrar_jpy_addr: SocketAddr = format!("127.0.0.1:{}", free_udp_port()?).parse()?;
        if !matches!(opts.transport.as_str(), "https" | "coaps") {
            bail!("transport {:?} is not one of https, coaps", opts.transport);
        }
        ensure!(opts.instances >= 1, "at least one instance of each daemon");
        ensure!(
            opts.instances == 1 || opts.store == StoreKind::Postgres,
            "several instances share a PostgreSQL database: use the postgres store"
        );
        ensure!(
            opts.instances == 1 || opts.transport == "https",
            "several instances are load-balanced over TCP: HTTPS only"
        );
        let cluster = match opts.instances {
            1 => None,
            instances => Some(ClusterPlan {
                instances,
                masa_lb: format!("127.0.0.1:{}", free_port()?).parse()?,
                registrar_lb: format!("127.0.0.1:{}", free_port()?).parse()?,
            }),
        };
        run(Command::new(&bin.masa).args([
            "init",
            "--dir",
            path(&masa_dir)?,
            "--name",
            "localhost",
            "--listen",
            &masa_addr.to_string(),
            // Metrics on a free port: demos and tests run side by side on loopback.
            "--metrics-listen",
            "127.0.0.1:0",
            "--ownership",
            &opts.ownership,
        ]))?;
        if let Some(plan) = &cluster {
            // IDevIDs name the load balancer: registrars reach any MASA instance through it.
            let toml = masa_dir.join("masa.toml");
            let text = std::fs::read_to_string(&toml)?;
            let edited: Vec<String> = text
                .lines()
                .map(|l| match l.starts_with("masa-url = ") {
                    true => format!("masa-url = \"localhost:{}\"", plan.masa_lb.port()),
                    false => l.to_string(),
                })
                .collect();
            std::fs::write(&toml, edited.join("\n") + "\n")?;
        }
        let vendor_ca = masa_dir.join("vendor-ca.crt.pem");
        run(Command::new(&bin.registrar).args([
            "init",
            "--dir",
            path(&registrar_dir)?,
            "--domain",
            "registrar.example",
            "--vendor-ca",
            path(&vendor_ca)?,
            "--masa-ca",
            path(&vendor_ca)?,
            "--listen",
            &registrar_addr.to_string(),
            // A free port rather than 5684: demos and tests run side by side on loopback.
            "--coaps-listen",
            &registrar_coaps_addr.to_string(),
            "--jpy-listen",
            &registrar_jpy_addr.to_string(),
            "--metrics-listen",
            "127.0.0.1:0",
            "--accept",
            &opts.accept,
        ]))?;
        let pg = match opts.store {
            StoreKind::Sqlite => None,
            StoreKind::Postgres => {
                let server = brski_service::pg_server::PgServer::start().map_err(|e| anyhow!(e))?;
                on_postgres(&server, &masa_dir.join("masa.toml"), "masa.db", "masa")?;
                on_postgres(
                    &server,
                    &registrar_dir.join("registrar.toml"),
                    "registrar.db",
                    "registrar",
                )?;
                Some(server)
            }
        };
        Ok(Self {
            bin,
            dir: dir.to_path_buf(),
            masa_dir,
            registrar_dir,
            masa_addr,
            registrar_addr,
            registrar_coaps_addr,
            registrar_jpy_addr,
            transport: opts.transport.clone(),
            pg,
            masa: None,
            registrar: None,
            cluster,
            instances: Vec::new(),
            balancer: None,
        })
    }

    pub fn masa_config(&self) -> PathBuf {
        self.masa_dir.join("masa.toml")
    }

    pub fn registrar_config(&self) -> PathBuf {
        self.registrar_dir.join("registrar.toml")
    }

    /// The registrar's URL for pledges of the suite's transport.
    pub fn registrar_url(&self) -> String {
        if self.transport == "coaps" {
            format!("coaps://{}", self.registrar_coaps_addr)
        } else {
            self.registrar_https_url()
        }
    }

    /// The registrar's HTTPS URL (the load balancer's, with several instances).
    pub fn registrar_https_url(&self) -> String {
        match &self.cluster {
            Some(plan) => format!("https://{}", plan.registrar_lb),
            None => format!("https://{}", self.registrar_addr),
        }
    }

    /// With a [`ClusterPlan`]: the other instances of each daemon (copies of the first one's
    /// directory, on ports of their own; the registrar copies without CoAPS, which the TCP
    /// load balancer does not carry), then HAProxy in front of each set. The first instances
    /// must be running.
    pub fn start_instances(&mut self) -> Result<()> {
        use crate::cluster::{Balancer, Frontend, copy_instance};
        let Some(plan) = self.cluster else {
            return Ok(());
        };
        let mut masas = vec![self.masa_addr];
        let mut registrars = vec![self.registrar_addr];
        for i in 2..=plan.instances {
            let masa_addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
            let dir = self.dir.join(format!("masa-{i}"));
            let listen = format!("listen = \"{masa_addr}\"");
            copy_instance(&self.masa_dir, &dir, "masa.toml", |l| {
                l.starts_with("listen = ").then(|| listen.clone())
            })?;
            let config = dir.join("masa.toml");
            self.instances.push(Daemon::start(
                "masa",
                &self.bin.masa,
                &["serve", "--config", path(&config)?],
                masa_addr,
                self.dir.join(format!("masa-{i}.log")),
            )?);
            masas.push(masa_addr);

            let registrar_addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
            let dir = self.dir.join(format!("registrar-{i}"));
            let listen = format!("listen = \"{registrar_addr}\"");
            copy_instance(&self.registrar_dir, &dir, "registrar.toml", |l| {
                if l.starts_with("listen = ") {
                    Some(listen.clone())
                } else if l.starts_with("coaps-listen = ") {
                    Some("coaps-listen = \"\"".into())
                } else if l.starts_with("jpy-listen = ") {
                    Some("jpy-listen = \"\"".into())
                } else {
                    None
                }
            })?;
            let config = dir.join("registrar.toml");
            self.instances.push(Daemon::start(
                "registrar",
                &self.bin.registrar,
                &["serve", "--config", path(&config)?],
                registrar_addr,
                self.dir.join(format!("registrar-{i}.log")),
            )?);
            registrars.push(registrar_addr);
        }
        self.balancer = Some(Balancer::start(
            &self.dir,
            vec![
                Frontend {
                    name: "masa",
                    listen: plan.masa_lb,
                    servers: masas,
                },
                Frontend {
                    name: "registrar",
                    listen: plan.registrar_lb,
                    servers: registrars,
                },
            ],
        )?);
        Ok(())
    }

    /// The process IDs of every running instance of the daemon `name`.
    pub fn pids(&self, name: &str) -> Vec<u32> {
        [self.masa.as_ref(), self.registrar.as_ref()]
            .into_iter()
            .flatten()
            .chain(self.instances.iter())
            .filter(|d| d.name == name)
            .map(|d| d.child.id())
            .collect()
    }

    /// Start `masa serve`.
    pub fn start_masa(&mut self) -> Result<()> {
        let config = self.masa_config();
        self.masa = Some(Daemon::start(
            "masa",
            &self.bin.masa,
            &["serve", "--config", path(&config)?],
            self.masa_addr,
            self.dir.join("masa.log"),
        )?);
        Ok(())
    }

    /// Start `registrar serve`.
    pub fn start_registrar(&mut self) -> Result<()> {
        let config = self.registrar_config();
        self.registrar = Some(Daemon::start(
            "registrar",
            &self.bin.registrar,
            &["serve", "--config", path(&config)?],
            self.registrar_addr,
            self.dir.join("registrar.log"),
        )?);
        Ok(())
    }

    /// Attested enrollment for the suite's manufacturer (SPEC §9): `mode` (`record` or
    /// `require`) and, when given, the PCR reference file's text, written beside
    /// `registrar.toml`. Before [`Self::start_registrar`].
    pub fn set_attestation(&self, mode: &str, pcr_reference: Option<&str>) -> Result<()> {
        let toml = self.registrar_config();
        let text = std::fs::read_to_string(&toml)?;
        let mut edited = Vec::new();
        for line in text.lines() {
            if line.starts_with("# attestation = ") {
                edited.push(format!("attestation = \"{mode}\""));
            } else if line.starts_with("# pcr-reference = ") && pcr_reference.is_some() {
                edited.push("pcr-reference = \"pcr-reference.toml\"".to_string());
            } else {
                edited.push(line.to_string());
            }
        }
        ensure!(
            edited.iter().any(|l| l.starts_with("attestation = ")),
            "registrar.toml has no manufacturer to set attestation for"
        );
        if let Some(reference) = pcr_reference {
            std::fs::write(self.registrar_dir.join("pcr-reference.toml"), reference)?;
        }
        std::fs::write(&toml, edited.join("\n") + "\n")?;
        Ok(())
    }

    /// `masa mint` a pledge with `serial` into `dir/pledges/<serial>`; returns its pledge.toml.
    pub fn mint(&self, serial: &str) -> Result<PathBuf> {
        self.mint_with(serial, &[])
    }

    /// `masa mint --tpm TCTI`: the pledge's IDevID key is made inside the TPM at `tcti`.
    pub fn mint_tpm(&self, serial: &str, tcti: &str) -> Result<PathBuf> {
        self.mint_with(serial, &["--tpm", tcti])
    }

    fn mint_with(&self, serial: &str, extra: &[&str]) -> Result<PathBuf> {
        let out = self.dir.join("pledges").join(serial);
        std::fs::create_dir_all(&out)?;
        let config = self.masa_config();
        run(Command::new(&self.bin.masa)
            .args([
                "mint",
                "--config",
                path(&config)?,
                "--serial",
                serial,
                "--out",
                path(&out)?,
                "--registrar",
                &self.registrar_url(),
            ])
            .args(extra))?;
        Ok(out.join("pledge.toml"))
    }

    /// A `pledge` command for the pledge configured by `pledge_toml`.
    pub fn pledge(&self, sub: &str, pledge_toml: &Path) -> Result<Command> {
        let mut cmd = Command::new(&self.bin.pledge);
        cmd.arg(sub)
            .arg("--config")
            .arg(pledge_toml)
            .stdin(Stdio::null());
        Ok(cmd)
    }

    /// `registrar proxy --udp` on a fresh loopback port, relaying to the registrar's CoAPS
    /// port (the stateful constrained join proxy, CJP §4.3) or, with `--stateless` among
    /// `extra`, to its JPY port (§4.4); its `coaps://` URL for pledges.
    pub fn start_udp_proxy(&self, extra: &[&str]) -> Result<(Daemon, String)> {
        let listen: SocketAddr = format!("127.0.0.1:{}", free_udp_port()?).parse()?;
        let upstream = if extra.contains(&"--stateless") {
            self.registrar_jpy_addr
        } else {
            self.registrar_coaps_addr
        };
        let (listen_text, registrar) = (listen.to_string(), upstream.to_string());
        let mut args = vec![
            "proxy",
            "--udp",
            "--listen",
            &listen_text,
            "--registrar",
            &registrar,
        ];
        args.extend_from_slice(extra);
        let proxy = Daemon::start_udp(
            "proxy",
            &self.bin.registrar,
            &args,
            listen,
            self.dir.join("proxy.log"),
        )?;
        Ok((proxy, format!("coaps://{listen}")))
    }

    /// Stop both daemons with SIGTERM; their exit statuses.
    pub fn stop(&mut self) -> Result<Vec<(&'static str, std::process::ExitStatus)>> {
        let mut out = Vec::new();
        self.balancer = None;
        // Registrars first (they may be waiting on a MASA), each role's instances together.
        let (registrars, masas): (Vec<&mut Daemon>, Vec<&mut Daemon>) = self
            .instances
            .iter_mut()
            .chain(self.registrar.as_mut())
            .chain(self.masa.as_mut())
            .partition(|d| d.name == "registrar");
        for d in registrars.into_iter().chain(masas) {
            out.push((d.name, d.stop(Duration::from_secs(30))?));
        }
        Ok(out)
    }
}

fn path(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", p.display()))
}

/// What a pledge's state directory says after a bootstrap.
#[derive(Clone, Debug)]
pub struct Enrollment {
    pub serial: String,
    pub assertion: String,
    pub ldevid_subject: String,
    pub ldevid_issuer: String,
    /// The persistent TPM handle of the LDevID key (`ldevid.tpm`), when it is in a TPM.
    pub ldevid_tpm_handle: Option<u32>,
}

/// Read the enrollment result from a pledge's state directory (`ldevid.crt.pem`, `voucher.*`).
pub fn read_enrollment(state_dir: &Path, serial: &str) -> Result<Enrollment> {
    use der::Decode;
    let pem = std::fs::read_to_string(state_dir.join("ldevid.crt.pem"))
        .with_context(|| format!("{serial}: no ldevid.crt.pem"))?;
    let der = brski_common::input::pem_block(&pem, &["CERTIFICATE"])?;
    let cert = x509_cert::Certificate::from_der(&der)?;
    let mut assertion = String::from("?");
    for ext in ["vcj", "vjj", "vch"] {
        let file = state_dir.join(format!("voucher.{ext}"));
        if let Ok(bytes) = std::fs::read(&file) {
            let v = brski_common::inspect::inspect(&bytes, &Default::default())?;
            if let Some(a) = v["content"]["ietf-voucher:voucher"]["assertion"].as_str() {
                assertion = a.to_string();
            }
        }
    }
    Ok(Enrollment {
        serial: serial.to_string(),
        assertion,
        ldevid_subject: cert.tbs_certificate().subject().to_string(),
        ldevid_issuer: cert.tbs_certificate().issuer().to_string(),
        ldevid_tpm_handle: ldevid_tpm_handle(state_dir)?,
    })
}

/// The handle `ldevid.tpm` names, if the pledge keeps its LDevID key in a TPM.
fn ldevid_tpm_handle(state_dir: &Path) -> Result<Option<u32>> {
    let Ok(bytes) = std::fs::read(state_dir.join("ldevid.tpm")) else {
        return Ok(None);
    };
    let reference: serde_json::Value = serde_json::from_slice(&bytes)?;
    let handle = reference["handle"]
        .as_u64()
        .and_then(|h| u32::try_from(h).ok())
        .ok_or_else(|| anyhow!("ldevid.tpm names no handle"))?;
    Ok(Some(handle))
}

/// A software TPM for one pledge (`swtpm socket --tpm2` on its own loopback ports, state in its
/// own directory, outside the pledge's state directory since it holds the TPM's seeds). It is
/// stopped when dropped.
#[cfg(feature = "tpm")]
pub fn start_swtpm(state_dir: &Path) -> Result<brski_common::keys::tpm::swtpm::Swtpm> {
    brski_common::keys::tpm::swtpm::Swtpm::start(state_dir)
        .map_err(|e| anyhow!("{e} (swtpm state {})", state_dir.display()))
}

/// The testbed's simulated measured boot (SPEC §9): what a device's firmware would measure
/// into its TPM before the pledge runs, as (PCR, what was measured). PCR 0 holds the firmware,
/// PCR 7 the secure-boot policy.
pub const SIMULATED_BOOT: [(u16, &str); 2] = [
    (0, "testbed firmware 1.0"),
    (7, "testbed secure boot policy: vendor keys only"),
];

/// The PCRs the testbed's registrar asks its pledges to quote: those of the PC Client profile
/// that record the boot (firmware, its configuration, option ROMs, boot loader, secure-boot
/// policy), without PCR 6, which records wake events and so differs from boot to boot.
pub const QUOTED_PCRS: [u16; 7] = [0, 1, 2, 3, 4, 5, 7];

/// Extend the [`SIMULATED_BOOT`] measurements (SHA-256 of each text) into the TPM at
/// `config`, as firmware does at boot.
#[cfg(feature = "tpm")]
pub fn simulate_boot(config: &brski_common::keys::tpm::TpmConfig) -> Result<()> {
    for (pcr, measured) in SIMULATED_BOOT {
        let digest = sha256(measured.as_bytes());
        brski_common::keys::tpm::extend_pcr(config, pcr, &digest)
            .map_err(|e| anyhow!("simulated boot: {e}"))?;
    }
    Ok(())
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&brski_common::attest::HashAlg::Sha256.digest(data));
    out
}

/// The registrar's PCR reference file for devices that booted as [`SIMULATED_BOOT`]
/// describes (one accepted set, `testbed-fw-1.0`): each PCR of [`QUOTED_PCRS`] starts at zero
/// and is extended once per measurement into it.
pub fn simulated_boot_reference() -> String {
    let values: Vec<String> = QUOTED_PCRS
        .iter()
        .map(|pcr| {
            let value = SIMULATED_BOOT
                .iter()
                .filter(|(p, _)| p == pcr)
                .fold([0u8; 32], |acc, (_, m)| {
                    sha256(&[acc, sha256(m.as_bytes())].concat())
                });
            format!("\"{}\"", hex::encode(value))
        })
        .collect();
    let pcrs: Vec<String> = QUOTED_PCRS.iter().map(u16::to_string).collect();
    format!(
        "# PCR reference values of the testbed's simulated boot (SHA-256 bank).\n\
         pcrs = [{}]\n\n[[set]]\nname = \"testbed-fw-1.0\"\nvalues = [\n  {},\n]\n",
        pcrs.join(", "),
        values.join(",\n  ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Binds the port given as argv[1], then sends `READY=1` to `$NOTIFY_SOCKET` and idles.
    const READY_CHILD: &str = r#"
import os, socket, sys, time
l = socket.socket()
l.bind(("127.0.0.1", int(sys.argv[1])))
l.listen()
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"STATUS=listening\nREADY=1\n", os.environ["NOTIFY_SOCKET"])
time.sleep(30)
"#;

    #[test]
    fn free_port_never_hands_out_a_port_twice() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..50)
                        .map(|_| free_port().expect("free port"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for t in threads {
            for port in t.join().expect("thread") {
                assert!(seen.insert(port), "port {port} handed out twice");
            }
        }
        assert_eq!(seen.len(), 200);
    }

    #[test]
    fn start_waits_for_ready_and_removes_the_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port().expect("free port");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let log = dir.path().join("child.log");
        let mut d = Daemon::start(
            "ready-child",
            Path::new("python3"),
            &["-c", READY_CHILD, &port.to_string()],
            addr,
            log.clone(),
        )
        .expect("start");
        assert!(TcpStream::connect(addr).is_ok());
        assert!(!log.with_extension("notify").exists());
        d.kill().expect("kill");
    }

    #[test]
    fn a_wrapped_daemon_runs_under_the_wrapper_with_longer_timeouts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port().expect("free port");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        // env(1) runs the daemon in its own process, as valgrind does.
        let mut d = Daemon::start_as(
            "wrapped-child",
            Path::new("python3"),
            &["-c", READY_CHILD, &port.to_string()],
            addr,
            dir.path().join("child.log"),
            true,
            &["env".into(), "WRAPPED=1".into()],
        )
        .expect("start");
        assert_eq!(d.slowdown, WRAPPED_SLOWDOWN);
        let environ = std::fs::read(format!("/proc/{}/environ", d.child.id())).expect("environ");
        assert!(environ.split(|&b| b == 0).any(|v| v == b"WRAPPED=1"));
        d.kill().expect("kill");
    }

    #[test]
    fn start_fails_when_the_child_exits_without_ready() {
        // Someone else listens on the address: a connect check alone would report success.
        let other = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = other.local_addr().expect("addr");
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("child.log");
        let e = Daemon::start(
            "exiting-child",
            Path::new("sh"),
            &["-c", "echo cannot bind >&2; exit 3"],
            addr,
            log.clone(),
        )
        .expect_err("must fail");
        let msg = format!("{e:#}");
        assert!(msg.contains("exiting-child"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.contains("before sending READY=1"), "{msg}");
        assert!(msg.contains("cannot bind"), "{msg}");
        assert!(!log.with_extension("notify").exists());
    }

    #[test]
    fn notify_socket_falls_back_to_temp_dir_for_long_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deep = dir.path().join("d".repeat(120));
        let log = deep.join("daemon.log");
        let sock = NotifySocket::bind(&log).expect("bind");
        assert!(sock.path.starts_with(std::env::temp_dir()));
        assert!(sock.path.as_os_str().len() <= MAX_UNIX_PATH);
        let path = sock.path.clone();
        assert!(path.exists());
        drop(sock);
        assert!(!path.exists());
    }
}
