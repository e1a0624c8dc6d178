//! The network-namespace lab (root): a manufacturer network (`masa`), a domain (`registrar`),
//! an edge router running the RFC 8995 §4 join proxy (`proxy`) with one leg on the domain link
//! and one on the pledge LAN (a bridge in namespace `lan`), and N pledges on the LAN with
//! only IPv6 link-local addresses, which find the proxy by GRASP / DNS-SD and enroll through it.
//!
//! Addresses: masa–registrar `fd00:6d::/64`, registrar–proxy `fd00:d0::/64`, the LAN
//! link-local only (the proxy also at `fe80::1`). Pledges have no route to anything else.

pub mod net;
pub mod scenario;

use crate::loopback::{Binaries, run};
use anyhow::{Context, Result, anyhow, bail};
use net::{PREFIX, add_namespace, addr_up, ipn, veth, wait_until};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const MASA_NS: &str = "brskilab-masa";
pub const REGISTRAR_NS: &str = "brskilab-registrar";
pub const PROXY_NS: &str = "brskilab-proxy";
pub const LAN_NS: &str = "brskilab-lan";
pub const ROGUE_NS: &str = "brskilab-rogue";

pub const MASA_ADDR: &str = "fd00:6d::2";
pub const REGISTRAR_WAN: &str = "fd00:6d::1";
pub const REGISTRAR_ADDR: &str = "fd00:d0::1";
pub const PROXY_DOMAIN_ADDR: &str = "fd00:d0::2";
pub const PROXY_LAN_ADDR: &str = "fe80::1";
pub const ROGUE_LAN_ADDR: &str = "fe80::2";
pub const ROGUE_WAN: &str = "fd00:6e::1";
pub const MASA_ROGUE_SIDE: &str = "fd00:6e::2";
pub const MASA_PORT: u16 = 9443;
pub const REGISTRAR_PORT: u16 = 8443;
pub const PROXY_PORT: u16 = 4443;
/// The registrar's CoAPS port (`registrar init`'s default) and the constrained proxy's join
/// port on the pledge LAN.
pub const REGISTRAR_COAPS_PORT: u16 = 5684;
/// The registrar's JPY port for the stateless constrained proxy.
pub const REGISTRAR_JPY_PORT: u16 = 5685;
/// The rogue constrained proxy's join port: the rogue registrar beside it holds the CoAPS and
/// JPY ports on every address of its namespace.
pub const ROGUE_PROXY_COAPS_PORT: u16 = 5686;
pub const PROXY_COAPS_PORT: u16 = 5684;

/// The name of pledge `i`'s namespace (1-based).
pub fn pledge_ns(i: usize) -> String {
    format!("{PREFIX}pledge-{i}")
}

/// The serial number of pledge `i`.
pub fn serial(i: usize) -> String {
    format!("LAB-{i:04}")
}

/// The run directory: `$BRSKI_LAB_DIR`, else `brskilab` in the temporary directory.
pub fn run_dir() -> PathBuf {
    std::env::var_os("BRSKI_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("brskilab"))
}

/// How the lab is built.
#[derive(Clone, Debug)]
pub struct LabOptions {
    pub pledges: usize,
    /// A second announcer on the LAN leading to a registrar of another domain (which the MASA
    /// refuses: the real domain has claimed every pledge).
    pub rogue: bool,
    /// Pledge 1 gets a wrong manufacturer trust anchor (the verdict must then fail).
    pub broken_pledge: bool,
    /// Constrained pledges (CoAPS) behind the stateful constrained join proxy
    /// (`registrar proxy --udp`, CJP §4.3), which they find by CoAP discovery.
    pub constrained: bool,
    /// With `constrained`: the stateless proxy instead (JPY messages, CJP §4.4).
    pub stateless: bool,
}

/// A daemon running in a namespace.
#[derive(Debug)]
pub struct NsDaemon {
    pub name: String,
    pub ns: String,
    pub child: Child,
    pub log: PathBuf,
    args: Vec<String>,
    program: PathBuf,
}

impl NsDaemon {
    /// Start `program args` in `ns`, output appended to `log`.
    pub fn start(
        name: &str,
        ns: &str,
        program: &Path,
        args: &[String],
        log: PathBuf,
    ) -> Result<Self> {
        let child = spawn(ns, program, args, &log)?;
        Ok(Self {
            name: name.to_string(),
            ns: ns.to_string(),
            child,
            log,
            args: args.to_vec(),
            program: program.to_path_buf(),
        })
    }

    /// SIGKILL (a crash) and wait.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Start again with the same arguments (log appended).
    pub fn restart(&mut self) -> Result<()> {
        self.child = spawn(&self.ns, &self.program, &self.args, &self.log)?;
        Ok(())
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

fn spawn(ns: &str, program: &Path, args: &[String], log: &Path) -> Result<Child> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(program)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting {} in {ns}", program.display()))
}

/// The built lab.
#[derive(Debug)]
pub struct Lab {
    pub bin: Binaries,
    pub dir: PathBuf,
    pub options: LabOptions,
    pub masa: Option<NsDaemon>,
    pub registrar: Option<NsDaemon>,
    pub proxy: Option<NsDaemon>,
    pub rogue: Vec<NsDaemon>,
    pub pledges: Vec<NsDaemon>,
}

fn s(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", p.display()))
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|x| x.to_string()).collect()
}

impl Lab {
    pub fn masa_dir(&self) -> PathBuf {
        self.dir.join("masa")
    }
    pub fn registrar_dir(&self) -> PathBuf {
        self.dir.join("registrar")
    }
    pub fn pledge_dir(&self, i: usize) -> PathBuf {
        self.dir.join("pledges").join(serial(i))
    }
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// Tear down whatever an earlier lab left, then build the network and the credentials
    /// and start MASA, registrar and proxy (and the rogue, when asked). Pledges are not
    /// started.
    pub fn up(bin: Binaries, options: LabOptions) -> Result<Self> {
        if options.pledges == 0 {
            bail!("--pledges must be at least 1");
        }
        let removed = net::teardown(Duration::from_secs(5))?;
        if !removed.is_empty() {
            eprintln!(
                "lab: removed {} namespaces left from an earlier lab",
                removed.len()
            );
        }
        let dir = run_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir.join("logs"))?;
        let mut lab = Self {
            bin,
            dir,
            options,
            masa: None,
            registrar: None,
            proxy: None,
            rogue: Vec::new(),
            pledges: Vec::new(),
        };
        lab.network()?;
        lab.credentials()?;
        lab.start_infrastructure()?;
        Ok(lab)
    }

    fn network(&self) -> Result<()> {
        let n = self.options.pledges;
        let mut all = vec![
            MASA_NS.to_string(),
            REGISTRAR_NS.into(),
            PROXY_NS.into(),
            LAN_NS.into(),
        ];
        if self.options.rogue {
            all.push(ROGUE_NS.into());
        }
        all.extend((1..=n).map(pledge_ns));
        for ns in &all {
            add_namespace(ns)?;
        }
        // The manufacturer's network: MASA ⇄ registrar.
        veth(MASA_NS, "wan0", REGISTRAR_NS, "wan0")?;
        addr_up(MASA_NS, "wan0", &format!("{MASA_ADDR}/64"))?;
        addr_up(REGISTRAR_NS, "wan0", &format!("{REGISTRAR_WAN}/64"))?;
        // The domain link: registrar ⇄ proxy.
        veth(REGISTRAR_NS, "dom0", PROXY_NS, "dom0")?;
        addr_up(REGISTRAR_NS, "dom0", &format!("{REGISTRAR_ADDR}/64"))?;
        addr_up(PROXY_NS, "dom0", &format!("{PROXY_DOMAIN_ADDR}/64"))?;
        // The pledge LAN: a bridge without multicast snooping (GRASP and mDNS are flooded).
        ipn(
            LAN_NS,
            &[
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        )?;
        ipn(LAN_NS, &["link", "set", "br0", "up"])?;
        let port = |peer_ns: &str, port_name: &str, dev: &str| -> Result<()> {
            veth(LAN_NS, port_name, peer_ns, dev)?;
            ipn(LAN_NS, &["link", "set", port_name, "master", "br0"])?;
            ipn(LAN_NS, &["link", "set", port_name, "up"])?;
            ipn(peer_ns, &["link", "set", dev, "up"])
        };
        port(PROXY_NS, "to-proxy", "lan0")?;
        addr_up(PROXY_NS, "lan0", &format!("{PROXY_LAN_ADDR}/64"))?;
        for i in 1..=n {
            port(&pledge_ns(i), &format!("to-p{i}"), "eth0")?;
        }
        if self.options.rogue {
            port(ROGUE_NS, "to-rogue", "lan0")?;
            addr_up(ROGUE_NS, "lan0", &format!("{ROGUE_LAN_ADDR}/64"))?;
            // The rogue domain reaches the MASA like any other customer would.
            veth(MASA_NS, "wan1", ROGUE_NS, "wan0")?;
            addr_up(MASA_NS, "wan1", &format!("{MASA_ROGUE_SIDE}/64"))?;
            addr_up(ROGUE_NS, "wan0", &format!("{ROGUE_WAN}/64"))?;
            ipn(
                ROGUE_NS,
                &["-6", "route", "add", "fd00:6d::/64", "via", MASA_ROGUE_SIDE],
            )?;
        }
        Ok(())
    }

    fn credentials(&self) -> Result<()> {
        let ownership = if self.options.rogue {
            "claimed"
        } else {
            "log-only"
        };
        let masa_dir = self.masa_dir();
        let listen = format!("[::]:{MASA_PORT}");
        run(Command::new(&self.bin.masa).args([
            "init",
            "--dir",
            &s(&masa_dir)?,
            "--name",
            MASA_ADDR,
            "--listen",
            &listen,
            // Metrics on a free loopback port: several daemons may share a namespace.
            "--metrics-listen",
            "127.0.0.1:0",
            "--ownership",
            ownership,
        ]))?;
        let vendor_ca = s(&masa_dir.join("vendor-ca.crt.pem"))?;
        let domain = |dir: &Path, name: &str| -> Result<()> {
            run(Command::new(&self.bin.registrar).args([
                "init",
                "--dir",
                &s(dir)?,
                "--domain",
                name,
                "--vendor-ca",
                &vendor_ca,
                "--masa-ca",
                &vendor_ca,
                "--listen",
                &format!("[::]:{REGISTRAR_PORT}"),
                "--jpy-listen",
                &format!("[::]:{REGISTRAR_JPY_PORT}"),
                "--metrics-listen",
                "127.0.0.1:0",
                // The lab's pledges are enrolled at once (RFC 8995 §7.3 "accept all
                // devices", explicit since `pending` is the default).
                "--accept",
                "auto",
            ]))?;
            Ok(())
        };
        domain(&self.registrar_dir(), "registrar.lab")?;
        if self.options.rogue {
            domain(&self.dir.join("rogue"), "rogue.lab")?;
        }
        let masa_toml = s(&masa_dir.join("masa.toml"))?;
        for i in 1..=self.options.pledges {
            let out = self.pledge_dir(i);
            std::fs::create_dir_all(&out)?;
            // No --registrar: the pledge must discover a join proxy.
            run(Command::new(&self.bin.masa).args([
                "mint",
                "--config",
                &masa_toml,
                "--serial",
                &serial(i),
                "--out",
                &s(&out)?,
            ]))?;
            if self.options.rogue {
                // The real domain bought every pledge (RFC 8995 §5.5.4 sales records).
                run(Command::new(&self.bin.masa).args([
                    "claim",
                    "--config",
                    &masa_toml,
                    "--serial",
                    &serial(i),
                    "--domain-ca",
                    &s(&self.registrar_dir().join("domain-ca.crt.pem"))?,
                ]))?;
            }
        }
        if self.options.constrained {
            for i in 1..=self.options.pledges {
                let toml = self.pledge_dir(i).join("pledge.toml");
                let text = std::fs::read_to_string(&toml)?;
                std::fs::write(&toml, format!("transport = \"coaps\"\n{text}"))?;
            }
        }
        if self.options.broken_pledge {
            // A manufacturer anchor that did not sign the MASA's vouchers.
            std::fs::copy(
                self.registrar_dir().join("domain-ca.crt.pem"),
                self.pledge_dir(1).join("manufacturer-ca.crt.pem"),
            )?;
        }
        Ok(())
    }

    fn start_infrastructure(&mut self) -> Result<()> {
        let masa_toml = s(&self.masa_dir().join("masa.toml"))?;
        self.masa = Some(NsDaemon::start(
            "masa",
            MASA_NS,
            &self.bin.masa,
            &strings(&["serve", "--config", &masa_toml]),
            self.log("masa"),
        )?);
        wait_until("MASA listening", Duration::from_secs(20), || {
            net::tcp_connects(MASA_NS, MASA_ADDR, MASA_PORT)
        })?;
        if self.options.constrained {
            self.start_constrained()?;
        } else {
            self.start_proxy_and_registrar()?;
        }
        if self.options.rogue {
            self.start_rogue()?;
        }
        Ok(())
    }

    /// `registrar proxy ARGS` as `name` in `ns`, listening on `listen` of its `lan0`: the RFC 8995
    /// proxy (`--listen`, TCP) or, with `udp`, the stateful constrained one (`--udp`); started
    /// once it listens.
    fn start_proxy(
        &self,
        name: &str,
        ns: &str,
        listen: (&str, u16),
        udp: bool,
        args: &[&str],
    ) -> Result<NsDaemon> {
        let (addr, port) = listen;
        let listen = format!("[{addr}%lan0]:{port}");
        let mut all = vec!["proxy", "--listen", &listen];
        if udp {
            all.push("--udp");
        }
        all.extend_from_slice(args);
        let daemon = NsDaemon::start(
            name,
            ns,
            &self.bin.registrar,
            &strings(&all),
            self.log(name),
        )?;
        let log = self.log(name);
        wait_until(
            &format!("{name} listening"),
            Duration::from_secs(20),
            || {
                if udp {
                    log_contains(&log, "constrained join proxy relaying")
                } else {
                    net::tcp_connects(ns, &format!("{addr}%lan0"), port)
                }
            },
        )?;
        Ok(daemon)
    }

    /// The RFC 8995 join proxy, then the registrar, and the proxy discovering it.
    fn start_proxy_and_registrar(&mut self) -> Result<()> {
        // The proxy first, so that it hears the registrar's first flood.
        let proxy = self.start_proxy(
            "proxy",
            PROXY_NS,
            (PROXY_LAN_ADDR, PROXY_PORT),
            false,
            &["--announce-interval", "2"],
        )?;
        self.proxy = Some(proxy);
        self.start_registrar()?;
        let proxy_log = self.log("proxy");
        wait_until(
            "the proxy discovering the registrar",
            Duration::from_secs(30),
            || log_contains(&proxy_log, "registrar discovered"),
        )
    }

    /// The rogue domain on the pledge LAN: its registrar and a join proxy of its own (a
    /// constrained one for constrained pledges), announced like the real one.
    fn start_rogue(&mut self) -> Result<()> {
        let rogue_dir = self.dir.join("rogue");
        let toml = s(&rogue_dir.join("registrar.toml"))?;
        self.rogue.push(NsDaemon::start(
            "rogue-registrar",
            ROGUE_NS,
            &self.bin.registrar,
            &strings(&["serve", "--config", &toml]),
            self.log("rogue-registrar"),
        )?);
        wait_until("rogue registrar listening", Duration::from_secs(20), || {
            net::tcp_connects(ROGUE_NS, "::1", REGISTRAR_PORT)
        })?;
        let proxy = if self.options.constrained {
            // Another join port than the real proxy's; pledges learn it from the brski-jp
            // answer.
            let registrar = format!("[::1]:{REGISTRAR_COAPS_PORT}");
            self.start_proxy(
                "rogue-proxy",
                ROGUE_NS,
                (ROGUE_LAN_ADDR, ROGUE_PROXY_COAPS_PORT),
                true,
                &["--registrar", &registrar],
            )?
        } else {
            let registrar = format!("[::1]:{REGISTRAR_PORT}");
            self.start_proxy(
                "rogue-proxy",
                ROGUE_NS,
                (ROGUE_LAN_ADDR, PROXY_PORT),
                false,
                &["--registrar", &registrar, "--announce-interval", "1"],
            )?
        };
        self.rogue.push(proxy);
        Ok(())
    }

    /// The registrar and the constrained join proxy, which discovers the registrar by CoAP
    /// on the domain link (CJP §5) and takes the mode it offers: the registrar always has a
    /// JPY port here, so the stateful scenario asks for that mode by configuration
    /// (`--registrar`), and the stateless one finds the JPY endpoint itself (CJP §4.1).
    fn start_constrained(&mut self) -> Result<()> {
        self.start_registrar()?;
        let registrar = format!("[{REGISTRAR_ADDR}]:{REGISTRAR_COAPS_PORT}");
        let args: Vec<&str> = if self.options.stateless {
            vec![]
        } else {
            vec!["--registrar", registrar.as_str()]
        };
        let proxy = self.start_proxy(
            "proxy",
            PROXY_NS,
            (PROXY_LAN_ADDR, PROXY_COAPS_PORT),
            true,
            &args,
        )?;
        self.proxy = Some(proxy);
        if self.options.stateless {
            let log = self.log("proxy");
            if !log_contains(&log, "registrar discovered")
                || !log_contains(&log, "relaying (stateless)")
            {
                bail!("the constrained proxy did not discover the registrar's JPY endpoint");
            }
        }
        Ok(())
    }

    /// Start `registrar serve`, announcing on the domain link, and wait until it listens.
    pub fn start_registrar(&mut self) -> Result<()> {
        match self.registrar.as_mut() {
            Some(r) => r.restart()?,
            None => {
                let toml = s(&self.registrar_dir().join("registrar.toml"))?;
                self.registrar = Some(NsDaemon::start(
                    "registrar",
                    REGISTRAR_NS,
                    &self.bin.registrar,
                    &strings(&[
                        "serve",
                        "--config",
                        &toml,
                        "--announce",
                        "dom0",
                        "--announce-interval",
                        "5",
                    ]),
                    self.log("registrar"),
                )?)
            }
        }
        wait_until("registrar listening", Duration::from_secs(20), || {
            net::tcp_connects(REGISTRAR_NS, REGISTRAR_ADDR, REGISTRAR_PORT)
        })
    }

    /// Start `pledge run --once` in every pledge namespace.
    pub fn start_pledges(&mut self) -> Result<()> {
        for i in 1..=self.options.pledges {
            let toml = s(&self.pledge_dir(i).join("pledge.toml"))?;
            self.pledges.push(NsDaemon::start(
                &serial(i),
                &pledge_ns(i),
                &self.bin.pledge,
                &strings(&["run", "--config", &toml, "--once"]),
                self.log(&format!("pledge-{i}")),
            )?);
        }
        Ok(())
    }

    /// `registrar pledges list` of the real registrar.
    pub fn registrar_pledges(&self) -> Result<String> {
        let toml = s(&self.registrar_dir().join("registrar.toml"))?;
        let out =
            run(Command::new(&self.bin.registrar).args(["pledges", "list", "--config", &toml]))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Whether the file contains `needle`.
pub fn log_contains(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
}

/// The last `n` lines of a log.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
