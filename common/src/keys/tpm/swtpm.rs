//! A software TPM (`swtpm socket --tpm2`) on loopback, for tests and the testbed. Not a
//! stable API.
//!
//! The state directory holds the TPM's NVRAM: persistent keys survive [`Swtpm::stop`] and
//! [`Swtpm::start_again`], which reuses the same ports so that existing [`TpmConfig`]s keep
//! working. The process is killed when the value is dropped.

use super::TpmConfig;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long swtpm may take to answer after it is started.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Start attempts (a port taken between probing and binding means another attempt).
const START_ATTEMPTS: usize = 5;

/// Why swtpm could not be run.
#[derive(Debug, thiserror::Error)]
pub enum SwtpmError {
    #[error("cannot run swtpm (is the swtpm package installed?): {0}")]
    Spawn(std::io::Error),
    #[error("swtpm state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no free pair of loopback ports: {0}")]
    NoPorts(std::io::Error),
    #[error("swtpm exited at start: {0}")]
    Exited(String),
    #[error("swtpm did not answer on 127.0.0.1:{port} within {READY_TIMEOUT:?}")]
    NoAnswer { port: u16 },
}

/// A running swtpm: TPM commands on `127.0.0.1:port`, control channel on `port + 1`.
#[derive(Debug)]
pub struct Swtpm {
    state_dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Swtpm {
    /// Start swtpm with its state in `state_dir` (created if missing), on free loopback ports,
    /// and wait until it answers a TPM command.
    pub fn start(state_dir: impl AsRef<Path>) -> Result<Self, SwtpmError> {
        let state_dir = state_dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&state_dir).map_err(|source| SwtpmError::StateDir {
            path: state_dir.clone(),
            source,
        })?;
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port_pair().map_err(SwtpmError::NoPorts)?;
            match spawn(&state_dir, port) {
                Ok(child) => {
                    return Ok(Self {
                        state_dir,
                        port,
                        child: Some(child),
                    });
                }
                Err(e @ (SwtpmError::Exited(_) | SwtpmError::NoAnswer { .. })) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(SwtpmError::NoAnswer { port: 0 }))
    }

    /// The TCTI string: `swtpm:host=127.0.0.1,port=P`.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The TPM configuration for this simulator.
    pub fn config(&self) -> TpmConfig {
        TpmConfig { tcti: self.tcti() }
    }

    /// The TPM command port (the control channel is the next one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Kill swtpm and wait for it; the state directory is kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start swtpm again on the same state directory and ports (after [`Self::stop`]).
    pub fn start_again(&mut self) -> Result<(), SwtpmError> {
        self.stop();
        self.child = Some(spawn(&self.state_dir, self.port)?);
        Ok(())
    }

    /// Whether the swtpm process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port P such that P and P + 1 were both free on 127.0.0.1.
fn free_port_pair() -> std::io::Result<u16> {
    let mut last = std::io::Error::other("no port pair found");
    for _ in 0..64 {
        let first = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = first.local_addr()?.port();
        let Some(next) = port.checked_add(1) else {
            continue;
        };
        match TcpListener::bind((Ipv4Addr::LOCALHOST, next)) {
            Ok(_) => return Ok(port),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn spawn(state_dir: &Path, port: u16) -> Result<Child, SwtpmError> {
    let log = state_dir.join("swtpm.stderr");
    let stderr = std::fs::File::create(&log).map_err(|source| SwtpmError::StateDir {
        path: log.clone(),
        source,
    })?;
    let ctrl = port.checked_add(1).ok_or(SwtpmError::NoAnswer { port })?;
    let mut child = Command::new("swtpm")
        .arg("socket")
        .arg("--tpm2")
        .arg("--tpmstate")
        .arg(format!("dir={}", state_dir.display()))
        .arg("--server")
        .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"))
        .arg("--flags")
        .arg("not-need-init,startup-clear")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(SwtpmError::Spawn)?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(SwtpmError::Exited(format!("{status}: {}", text.trim())));
        }
        if answers(port) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SwtpmError::NoAnswer { port });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a TPM at `port` answers `TPM2_GetRandom(8)` with TPM_RC_SUCCESS.
fn answers(port: u16) -> bool {
    const GET_RANDOM_8: [u8; 12] = [
        0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x7b, 0x00, 0x08,
    ];
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut header = [0u8; 10];
    stream.write_all(&GET_RANDOM_8).is_ok()
        && stream.read_exact(&mut header).is_ok()
        && header[6..10] == [0, 0, 0, 0]
}
