//! Several instances of each daemon on one PostgreSQL database, behind a load balancer (issue
//! 15): HAProxy in `mode tcp`, so that TLS, and the client certificates in it, reach the
//! instances untouched; a TCP health check takes an instance that stops answering out of
//! rotation, and a connection that cannot be made is tried again on another instance.
//!
//! The instances share everything a request needs through the database and the same
//! configuration, keys and certificates: an instance is a copy of the first one's directory
//! with its own listening port.

use crate::loopback::wait_for_port;
use anyhow::{Context, Result, anyhow, ensure};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One load-balanced service: where clients connect and the instances behind it.
#[derive(Clone, Debug)]
pub struct Frontend {
    pub name: &'static str,
    pub listen: SocketAddr,
    pub servers: Vec<SocketAddr>,
}

/// The HAProxy configuration for `frontends`: TCP mode, round robin, a health check every
/// 500 ms (out after 2 failures, back after 2 successes), and a connection refused by one
/// instance tried again on another (`retries` with `option redispatch`).
pub fn haproxy_config(frontends: &[Frontend]) -> String {
    let mut out = String::from(
        "global\n    maxconn 4096\n\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 90s\n    \
         timeout server 90s\n    retries 3\n    option redispatch\n",
    );
    for f in frontends {
        out.push_str(&format!(
            "\nfrontend {name}\n    bind {listen}\n    default_backend {name}-instances\n\n\
             backend {name}-instances\n    balance roundrobin\n",
            name = f.name,
            listen = f.listen,
        ));
        for (i, server) in f.servers.iter().enumerate() {
            out.push_str(&format!(
                "    server {}-{} {server} check inter 500ms fall 2 rise 2\n",
                f.name,
                i + 1
            ));
        }
    }
    out
}

/// A running HAProxy, stopped when dropped.
#[derive(Debug)]
pub struct Balancer {
    child: Child,
    pub frontends: Vec<Frontend>,
    pub log: PathBuf,
}

impl Balancer {
    /// Write `haproxy.cfg` in `dir` and run HAProxy in the foreground until every frontend
    /// accepts connections.
    pub fn start(dir: &Path, frontends: Vec<Frontend>) -> Result<Self> {
        let program = haproxy()?;
        let config = dir.join("haproxy.cfg");
        std::fs::write(&config, haproxy_config(&frontends))?;
        let log = dir.join("haproxy.log");
        let file = std::fs::File::create(&log)?;
        let child = Command::new(&program)
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut balancer = Self {
            child,
            frontends,
            log,
        };
        for f in balancer.frontends.clone() {
            wait_for_port(f.listen, Duration::from_secs(10), &mut balancer.child).map_err(|e| {
                let text = std::fs::read_to_string(&balancer.log).unwrap_or_default();
                anyhow!("haproxy: {e:#}\n{text}")
            })?;
        }
        Ok(balancer)
    }
}

impl Balancer {
    /// HAProxy's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// HAProxy from PATH or Debian's /usr/sbin (not on every user's PATH).
fn haproxy() -> Result<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("haproxy"))
            .find(|p| p.exists())
    });
    let debian = PathBuf::from("/usr/sbin/haproxy");
    on_path
        .or_else(|| debian.exists().then_some(debian))
        .ok_or_else(|| anyhow!("haproxy not found (apt-get install haproxy)"))
}

/// Copy the daemon directory `from` to `to` (configuration, keys, certificates), without its
/// SQLite files and logs, and apply `edit` to each line of its configuration file `toml`.
pub fn copy_instance(
    from: &Path,
    to: &Path,
    toml: &str,
    edit: impl Fn(&str) -> Option<String>,
) -> Result<()> {
    let copied = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .context("cp")?;
    ensure!(copied.success(), "copying {} failed", from.display());
    for entry in std::fs::read_dir(to)? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.is_some_and(|n| n.contains(".db") || n.ends_with(".log")) {
            std::fs::remove_file(&path)?;
        }
    }
    let config = to.join(toml);
    let text = std::fs::read_to_string(&config)?;
    let edited: Vec<String> = text
        .lines()
        .map(|l| edit(l).unwrap_or_else(|| l.to_string()))
        .collect();
    std::fs::write(&config, edited.join("\n") + "\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_balances_tcp_with_health_checks() {
        let text = haproxy_config(&[Frontend {
            name: "registrar",
            listen: "127.0.0.1:8443".parse().expect("addr"),
            servers: vec![
                "127.0.0.1:9001".parse().expect("addr"),
                "127.0.0.1:9002".parse().expect("addr"),
            ],
        }]);
        assert!(text.contains("mode tcp"), "{text}");
        assert!(text.contains("bind 127.0.0.1:8443"), "{text}");
        assert!(
            text.contains("server registrar-2 127.0.0.1:9002 check inter 500ms"),
            "{text}"
        );
        assert!(text.contains("option redispatch"), "{text}");
    }

    /// HAProxy itself finds the configuration valid (`haproxy -c`).
    #[test]
    fn haproxy_accepts_the_configuration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("haproxy.cfg");
        let frontend = |name, port: u16| Frontend {
            name,
            listen: format!("127.0.0.1:{port}").parse().expect("addr"),
            servers: vec![format!("127.0.0.1:{}", port + 1).parse().expect("addr")],
        };
        std::fs::write(
            &config,
            haproxy_config(&[frontend("masa", 40000), frontend("registrar", 40010)]),
        )
        .expect("write");
        let out = Command::new(haproxy().expect("haproxy (apt-get install haproxy)"))
            .arg("-c")
            .arg("-f")
            .arg(&config)
            .output()
            .expect("run haproxy -c");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
