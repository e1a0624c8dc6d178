//! A manufacturer (MASA) and a domain (registrar) on loopback, driven through the command-line
//! contract of DESIGN.md, with pledges minted and bootstrapped by the real binaries.

use anyhow::{Context, Result, anyhow, bail};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
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

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it again soon after).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding an ephemeral port")?;
    Ok(l.local_addr()?.port())
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

/// A daemon started as a child process, stopped with SIGTERM when dropped.
#[derive(Debug)]
pub struct Daemon {
    pub name: &'static str,
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Daemon {
    /// Start `program args...`, logging to `log`, and wait until `addr` listens.
    pub fn start(
        name: &'static str,
        program: &Path,
        args: &[&str],
        addr: SocketAddr,
        log: PathBuf,
    ) -> Result<Self> {
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        if let Err(e) = wait_for_port(addr, Duration::from_secs(20), &mut child) {
            let _ = child.kill();
            let _ = child.wait();
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(anyhow!("{name}: {e}\n{log_text}"));
        }
        Ok(Self {
            name,
            child,
            addr,
            log,
        })
    }

    /// Send SIGTERM and wait for the exit status (SIGKILL after `grace`).
    pub fn stop(&mut self, grace: Duration) -> Result<std::process::ExitStatus> {
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

/// Options for [`Suite::create`].
#[derive(Clone, Debug)]
pub struct SuiteOptions {
    /// `--accept` of the registrar: `auto` or `pending`.
    pub accept: String,
    /// `--ownership` of the MASA.
    pub ownership: String,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        Self {
            accept: "auto".into(),
            ownership: "log-only".into(),
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
    pub masa: Option<Daemon>,
    pub registrar: Option<Daemon>,
}

impl Suite {
    /// `masa init` and `registrar init` in `dir`, on fresh loopback ports. Nothing is started.
    pub fn create(bin: Binaries, dir: &Path, opts: &SuiteOptions) -> Result<Self> {
        let masa_dir = dir.join("masa");
        let registrar_dir = dir.join("registrar");
        let masa_addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let registrar_addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        run(Command::new(&bin.masa).args([
            "init",
            "--dir",
            path(&masa_dir)?,
            "--name",
            "localhost",
            "--listen",
            &masa_addr.to_string(),
            "--ownership",
            &opts.ownership,
        ]))?;
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
            "--accept",
            &opts.accept,
        ]))?;
        Ok(Self {
            bin,
            dir: dir.to_path_buf(),
            masa_dir,
            registrar_dir,
            masa_addr,
            registrar_addr,
            masa: None,
            registrar: None,
        })
    }

    pub fn masa_config(&self) -> PathBuf {
        self.masa_dir.join("masa.toml")
    }

    pub fn registrar_config(&self) -> PathBuf {
        self.registrar_dir.join("registrar.toml")
    }

    /// The registrar's URL for pledges.
    pub fn registrar_url(&self) -> String {
        format!("https://{}", self.registrar_addr)
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

    /// Stop both daemons with SIGTERM; their exit statuses.
    pub fn stop(&mut self) -> Result<Vec<(&'static str, std::process::ExitStatus)>> {
        let mut out = Vec::new();
        for d in [self.registrar.as_mut(), self.masa.as_mut()]
            .into_iter()
            .flatten()
        {
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
    })
}

/// A software TPM for one pledge (`swtpm socket --tpm2` on its own loopback ports, state in its
/// own directory, outside the pledge's state directory since it holds the TPM's seeds). It is
/// stopped when dropped.
#[cfg(feature = "tpm")]
pub fn start_swtpm(state_dir: &Path) -> Result<brski_common::keys::tpm::swtpm::Swtpm> {
    brski_common::keys::tpm::swtpm::Swtpm::start(state_dir)
        .map_err(|e| anyhow!("{e} (swtpm state {})", state_dir.display()))
}
