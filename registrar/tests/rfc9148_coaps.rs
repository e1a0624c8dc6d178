//! The real registrar over CoAPS (RFC 9148, cBRSKI), checked with libcoap's
//! `coap-client-openssl` and `openssl`; a small OpenSSL DTLS client for what coap-client
//! cannot show (Max-Age, a duplicate message ID).

mod support;

use brski_common::brski::pledge;
use brski_common::envelope::Format;
use brski_common::pki::chain::TimeCheck;
use brski_common::voucher::PledgeExpectations;
use brski_service::coaps;
use brski_service::coaps::dtls::Datagrams;
use coap_lite::{CoapOption, MessageClass, MessageType, Packet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

/// A free loopback UDP port.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A registrar with CoAPS on loopback; `init` adds to `registrar init`.
async fn coaps_setup(init: &[&str]) -> (Setup, SocketAddr) {
    let port = free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["--coaps-listen", listen.as_str()];
    args.extend_from_slice(init);
    let s = setup_with(MasaMode::Issue, &args, |t| t).await;
    assert!(
        s.reg.log().contains(&format!("coaps={listen}")),
        "{}",
        s.reg.log()
    );
    (s, listen.parse().expect("addr"))
}

/// A pledge's IDevID and key as PEM files for coap-client.
fn write_identity(dir: &Path, name: &str, party: &Party) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt.pem"));
    let key = dir.join(format!("{name}.key.pem"));
    std::fs::write(&cert, pem(std::slice::from_ref(&party.cert))).expect("write");
    std::fs::write(&key, party.key.to_pkcs8_pem()).expect("write");
    (cert, key)
}

/// What coap-client printed: the code line and payload of an error answer go to stderr.
struct Run {
    ok: bool,
    stdout: Vec<u8>,
    stderr: String,
}

/// `coap-client-openssl ARGS... URI` with the client certificate `identity`.
async fn coap_client(identity: (&Path, &Path), args: &[&str], uri: &str) -> Run {
    let out = tokio::process::Command::new("coap-client-openssl")
        .arg("-c")
        .arg(identity.0)
        .arg("-j")
        .arg(identity.1)
        .args(["-B", "20", "-v", "3"])
        .args(args)
        .arg(uri)
        .output()
        .await
        .expect("run coap-client-openssl (Debian libcoap3-bin)");
    Run {
        ok: out.status.success(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

fn uri(addr: SocketAddr, path: &str) -> String {
    format!("coaps://{addr}{path}")
}

/// A COSE pledge voucher-request (cBRSKI §9.2.2) naming the registrar's DTLS certificate.
fn cose_pvr(s: &Setup, p: &Pledge) -> pledge::PledgeVoucherRequest {
    p.pvr(Format::Cose, &der(&s.reg.cert()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9148_cbrski_enrollment_with_coap_client() {
    let (s, addr) = coaps_setup(&[]).await;
    let dir = s.tmp.path();
    let p = s.pledge("SN-COAP-1");
    let (cert, key) = write_identity(dir, "idevid", &p.idevid);
    let id = (cert.as_path(), key.as_path());

    // RFC 6690 §4.1, cBRSKI Appendix E: discovery, filtered by resource type.
    for (query, listed, not_listed) in [
        (
            "rt=brski*",
            "</.well-known/brski/rv>;rt=brski.rv;ct=836",
            "ace.est",
        ),
        (
            "rt=ace.est*",
            "</.well-known/est/sen>;rt=ace.est.sen",
            "brski",
        ),
    ] {
        let core = uri(addr, &format!("/.well-known/core?{query}"));
        let r = coap_client(id, &["-n", "-m", "get"], &core).await;
        let links = String::from_utf8_lossy(&r.stdout).to_string();
        assert!(links.contains(listed), "{links} {}", r.stderr);
        assert!(!links.contains(not_listed), "{links}");
    }

    // cBRSKI §6.4: the COSE voucher-request (836) over DTLS, provisionally (RFC 8995 §5.1).
    let pvr = cose_pvr(&s, &p);
    let pvr_file = dir.join("pvr.cose");
    std::fs::write(&pvr_file, &pvr.bytes).expect("write");
    let voucher_file = dir.join("voucher.cose");
    let r = coap_client(
        id,
        &[
            "-n",
            "-m",
            "post",
            "-t",
            "836",
            "-A",
            "836",
            "-f",
            pvr_file.to_str().expect("utf-8"),
            "-o",
            voucher_file.to_str().expect("utf-8"),
        ],
        &uri(addr, "/.well-known/brski/rv"),
    )
    .await;
    assert!(r.ok, "{}\n{}", r.stderr, s.reg.log());
    let voucher = std::fs::read(&voucher_file).expect("voucher written");
    let accepted = pledge::accept_voucher(
        Format::Cose,
        &voucher,
        &s.vendor.policy(),
        &PledgeExpectations::for_request(&pvr.request),
    )
    .expect("the pledge accepts the voucher");
    // RFC 8995 §5.6.2: the registrar's DTLS certificate chains to the pinned domain CA.
    pledge::validate_registrar(
        &accepted.pin,
        &[der(&s.reg.cert()), der(&s.reg.domain_ca())],
        TimeCheck::Now,
    )
    .expect("the registrar is the pinned domain's");
    assert!(
        s.reg.log().contains("transport=\"coaps\""),
        "{}",
        s.reg.log()
    );

    // RFC 9148 §4.1: /crts (281) with the registrar now verified against the domain CA.
    let ca_file = s.reg.dir.join("domain-ca.crt.pem");
    let ca = ca_file.to_str().expect("utf-8");
    let crts = dir.join("crts.p7b");
    let r = coap_client(
        id,
        &["-C", ca, "-m", "get", "-o", crts.to_str().expect("utf-8")],
        &uri(addr, "/.well-known/est/crts"),
    )
    .await;
    assert!(r.ok, "{}", r.stderr);
    let ca_pem = dir.join("crts.pem");
    openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-print_certs",
        "-in",
        text(&crts),
        "-out",
        text(&ca_pem),
    ])
    .await;

    // RFC 9148 §4.3: a DER PKCS#10 (286) made by openssl to /sen, a DER certificate back (287).
    let ldevid_key = dir.join("ldevid.key.pem");
    let csr = dir.join("csr.der");
    openssl(&[
        "ecparam",
        "-genkey",
        "-name",
        "prime256v1",
        "-noout",
        "-out",
        ldevid_key.to_str().expect("utf-8"),
    ])
    .await;
    openssl(&[
        "req",
        "-new",
        "-key",
        ldevid_key.to_str().expect("utf-8"),
        "-subj",
        "/serialNumber=SN-COAP-1",
        "-sha256",
        "-outform",
        "DER",
        "-out",
        csr.to_str().expect("utf-8"),
    ])
    .await;
    let ldevid = dir.join("ldevid.der");
    let r = enroll(
        id,
        ca,
        "287",
        &csr,
        &ldevid,
        &uri(addr, "/.well-known/est/sen"),
    )
    .await;
    assert!(r.ok, "{}\n{}", r.stderr, s.reg.log());
    let ldevid_pem = openssl_verifies(&ldevid, "x509", &ca_pem).await;

    // RFC 9148 §4.1: /sren with the new LDevID as DTLS certificate, certs-only (281) back.
    let ldevid_id = (ldevid_pem.as_path(), ldevid_key.as_path());
    let renewed = dir.join("renewed.p7b");
    let r = enroll(
        ldevid_id,
        ca,
        "281",
        &csr,
        &renewed,
        &uri(addr, "/.well-known/est/sren"),
    )
    .await;
    assert!(r.ok, "{}\n{}", r.stderr, s.reg.log());
    openssl_verifies(&renewed, "pkcs7", &ca_pem).await;
}

fn text(path: &Path) -> &str {
    path.to_str().expect("utf-8")
}

/// POST the DER CSR in `csr` (286) to `uri` with Accept `accept`, the answer into `out`;
/// the registrar verified against `ca`.
async fn enroll(
    id: (&Path, &Path),
    ca: &str,
    accept: &str,
    csr: &Path,
    out: &Path,
    uri: &str,
) -> Run {
    let args = [
        "-C",
        ca,
        "-m",
        "post",
        "-t",
        "286",
        "-A",
        accept,
        "-f",
        text(csr),
        "-o",
        text(out),
    ];
    coap_client(id, &args, uri).await
}

/// The DER certificate (`x509`) or certs-only (`pkcs7`) in `file` as PEM, checked by
/// `openssl verify` against `ca_pem`.
async fn openssl_verifies(file: &Path, kind: &str, ca_pem: &Path) -> PathBuf {
    let pem = file.with_extension("pem");
    let mut args = vec![
        kind,
        "-inform",
        "DER",
        "-in",
        text(file),
        "-out",
        text(&pem),
    ];
    if kind == "pkcs7" {
        args.push("-print_certs");
    }
    openssl(&args).await;
    let out = openssl(&["verify", "-CAfile", text(ca_pem), text(&pem)]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains(": OK"));
    pem
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9148_4_5_refusals_have_their_coap_codes() {
    let (s, addr) = coaps_setup(&[]).await;
    let dir = s.tmp.path();
    let p = s.pledge("SN-COAP-2");
    let (cert, key) = write_identity(dir, "idevid", &p.idevid);
    let id = (cert.as_path(), key.as_path());
    let pvr_file = dir.join("pvr.cose");
    std::fs::write(&pvr_file, &cose_pvr(&s, &p).bytes).expect("write");
    let pvr = pvr_file.to_str().expect("utf-8");
    let rv = uri(addr, "/.well-known/brski/rv");
    let expect = |r: &Run, code: &str| {
        assert!(
            !r.stdout.is_empty() || r.stderr.contains(code),
            "{code}: {}",
            r.stderr
        );
        assert!(r.stderr.contains(code), "{code}: {}", r.stderr);
    };

    // An unknown content format: 4.15 (cBRSKI §6.4).
    let r = coap_client(id, &["-n", "-m", "post", "-t", "9999", "-f", pvr], &rv).await;
    expect(&r, "4.15");
    // An Accept naming no voucher format: 4.06.
    let r = coap_client(
        id,
        &["-n", "-m", "post", "-t", "836", "-A", "50", "-f", pvr],
        &rv,
    )
    .await;
    expect(&r, "4.06");
    let r = coap_client(
        id,
        &["-n", "-m", "get", "-A", "50"],
        &uri(addr, "/.well-known/est/crts"),
    )
    .await;
    expect(&r, "4.06");
    // Malformed COSE: 4.00.
    let junk = dir.join("junk");
    std::fs::write(&junk, b"\xd2\x84\x43junk").expect("write");
    let r = coap_client(
        id,
        &[
            "-n",
            "-m",
            "post",
            "-t",
            "836",
            "-f",
            junk.to_str().expect("utf-8"),
        ],
        &rv,
    )
    .await;
    expect(&r, "4.00");
    // A body over the limit (the HTTPS one, 256 KiB): 4.13 (RFC 7959 §2.9.3).
    let big = dir.join("big");
    std::fs::write(&big, vec![0u8; 300 * 1024]).expect("write");
    let r = coap_client(
        id,
        &[
            "-n",
            "-m",
            "post",
            "-t",
            "286",
            "-b",
            "1024",
            "-f",
            big.to_str().expect("utf-8"),
        ],
        &uri(addr, "/.well-known/est/sen"),
    )
    .await;
    expect(&r, "4.13");
    // A voucher-request naming another certificate than the registrar's DTLS one: 4.01, and
    // the session is closed (RFC 8995 §5.3).
    let elsewhere = dir.join("elsewhere.cose");
    let pvr_elsewhere = p.pvr(Format::Cose, &der(&s.reg.domain_ca()));
    std::fs::write(&elsewhere, &pvr_elsewhere.bytes).expect("write");
    let r = coap_client(
        id,
        &["-n", "-m", "post", "-t", "836", "-f", text(&elsewhere)],
        &rv,
    )
    .await;
    expect(&r, "4.01");
    // EST before a voucher: 4.03 (RFC 8995 §5.9.3).
    let r = coap_client(
        id,
        &["-n", "-m", "post", "-t", "286", "-f", pvr],
        &uri(addr, "/.well-known/est/sen"),
    )
    .await;
    expect(&r, "4.03");
    // A denied pledge: 4.04 (RFC 8995 §5.3).
    let out = s.reg.pledges(&["deny", "SN-COAP-2"]).await;
    assert!(out.status.success());
    let r = coap_client(id, &["-n", "-m", "post", "-t", "836", "-f", pvr], &rv).await;
    expect(&r, "4.04");
    // An unknown resource: 4.04.
    let r = coap_client(
        id,
        &["-n", "-m", "get"],
        &uri(addr, "/.well-known/est/nothing"),
    )
    .await;
    expect(&r, "4.04");

    // An IDevID of no configured manufacturer: the DTLS handshake is refused.
    let rogue = Vendor::new("Rogue");
    let stranger = rogue.mint("SN-ROGUE", None);
    let (cert, key) = write_identity(dir, "rogue", &stranger);
    let r = coap_client(
        (&cert, &key),
        &["-n", "-m", "get", "-B", "5"],
        &uri(addr, "/.well-known/est/crts"),
    )
    .await;
    // No certs-only answer (DER starts with 0x30), only coap-client's complaint.
    assert!(
        !r.stdout.starts_with(&[0x30]),
        "{:?}",
        String::from_utf8_lossy(&r.stdout)
    );
    // The refusal is logged once the alert is out: wait for the line.
    for _ in 0..100 {
        if s.reg.log().contains("dtls-rejected") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no dtls-rejected line: {}", s.reg.log());
}

/// A DTLS 1.2 session to `addr` with `client` as certificate.
fn dtls(addr: SocketAddr, client: &Party) -> openssl::ssl::SslStream<Datagrams> {
    use openssl::ssl::{SslConnector, SslMethod, SslOptions, SslVerifyMode};
    let mut b = SslConnector::builder(SslMethod::dtls_client()).expect("builder");
    b.set_verify(SslVerifyMode::NONE);
    b.set_options(SslOptions::NO_QUERY_MTU);
    b.set_cipher_list("ECDHE-ECDSA-AES128-CCM8")
        .expect("ciphers");
    let cert = openssl::x509::X509::from_der(&client.der()).expect("x509");
    let key = openssl::pkey::PKey::private_key_from_pkcs8(client.key.to_pkcs8_der()).expect("key");
    b.set_certificate(&cert).expect("cert");
    b.set_private_key(&key).expect("key");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.connect(addr).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut config = b.build().configure().expect("configure");
    config.set_verify_hostname(false);
    let mut ssl = config.into_ssl("registrar").expect("ssl");
    ssl.set_mtu(1000).expect("mtu");
    let mut stream = openssl::ssl::SslStream::new(ssl, Datagrams(socket)).expect("stream");
    stream.connect().expect("DTLS handshake");
    stream
}

/// A CON POST of `payload` (content format `cf`) to `path` with message ID `mid`.
fn post(mid: u16, path: &[&str], cf: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::from(2);
    p.header.message_id = mid;
    p.set_token(vec![0x4d]);
    for s in path {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    let cf = cf.to_be_bytes();
    p.add_option(
        CoapOption::ContentFormat,
        cf[usize::from(cf[0] == 0)..].to_vec(),
    );
    p.payload = payload.to_vec();
    p.to_bytes().expect("bytes")
}

fn read(stream: &mut openssl::ssl::SslStream<Datagrams>) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    let n = stream.ssl_read(&mut buf).expect("an answer");
    buf[..n].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9148_4_7_pending_is_5_03_with_max_age_and_a_duplicate_gets_the_same_answer() {
    let (s, addr) = coaps_setup(&["--accept", "pending"]).await;
    let p = s.pledge("SN-COAP-3");
    let pvr = cose_pvr(&s, &p);
    let idevid = Party {
        key: p.idevid.key.clone(),
        cert: p.idevid.cert.clone(),
    };
    let (first, again) = tokio::task::spawn_blocking(move || {
        let mut stream = dtls(addr, &idevid);
        let request = post(0x1234, &[".well-known", "brski", "rv"], 836, &pvr.bytes);
        stream.ssl_write(&request).expect("send");
        let first = read(&mut stream);
        // RFC 7252 §4.5: the same message ID again gets the cached answer.
        stream.ssl_write(&request).expect("send");
        (first, read(&mut stream))
    })
    .await
    .expect("join");
    let answer = Packet::from_bytes(&first).expect("CoAP");
    assert_eq!(answer.header.get_type(), MessageType::Acknowledgement);
    assert_eq!(answer.header.message_id, 0x1234);
    assert_eq!(u8::from(answer.header.code), 0xa3, "5.03");
    // Max-Age is the registrar's retry-after (5 s as `registrar init` writes it).
    assert_eq!(answer.get_first_option(CoapOption::MaxAge), Some(&vec![5]));
    assert_eq!(again, first);
    // One request reached the step: one outcome line.
    let log = s.reg.log();
    assert_eq!(log.matches("outcome=\"pending\"").count(), 1, "{log}");
    assert_eq!(s.masa.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_both_listeners() {
    let (mut s, addr) = coaps_setup(&[]).await;
    let pid = s.reg.pid().to_string();
    let out = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .output()
        .await
        .expect("kill");
    assert!(out.status.success());
    let status = tokio::time::timeout(Duration::from_secs(30), s.reg.child.wait())
        .await
        .expect("the registrar stops")
        .expect("wait");
    assert!(status.success(), "{status}");
    assert!(s.reg.log().contains("registrar stopped"), "{}", s.reg.log());
    // The UDP port is free again.
    std::net::UdpSocket::bind(addr).expect("the CoAPS port is released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_names_a_bad_coaps_listen() {
    let tmp = tempfile::TempDir::new().expect("tempdir");
    let vendor = Vendor::new("Vendor");
    let ca = vendor.write_ca(tmp.path());
    let dir = tmp.path().join("registrar");
    init_registrar(&dir, &ca, &["--coaps-listen", "[::]:5684"]).await;
    let text = std::fs::read_to_string(dir.join("registrar.toml")).expect("read");
    assert!(text.contains("coaps-listen = \"[::]:5684\""), "{text}");
    edit_config(&dir, |t| {
        t.replace("coaps-listen = \"[::]:5684\"", "coaps-listen = \"[::]:0\"")
    });
    let out = tokio::process::Command::new(registrar_bin())
        .arg("check-config")
        .arg("--config")
        .arg(dir.join("registrar.toml"))
        .output()
        .await
        .expect("run check-config");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("check-config: coaps-listen \"[::]:0\": the port must be 1 to 65535"),
        "{stderr}"
    );
}

/// check-config and serve, on a configuration whose `key` names a port another socket holds:
/// the same words from both.
async fn port_in_use(key: &str, udp: bool) {
    let tmp = tempfile::TempDir::new().expect("tempdir");
    let vendor = Vendor::new("Vendor");
    let ca = vendor.write_ca(tmp.path());
    let dir = tmp.path().join("registrar");
    // Only the port under test is named (no CoAPS listener beside an HTTPS one).
    let coaps = if udp { "[::]:5684" } else { "" };
    init_registrar(&dir, &ca, &["--coaps-listen", coaps]).await;
    let (held, _tcp, _udp) = if udp {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        (s.local_addr().expect("addr"), None, Some(s))
    } else {
        let s = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        (s.local_addr().expect("addr"), Some(s), None)
    };
    edit_config(&dir, |t| {
        t.lines()
            .map(|l| match l.split_once(" = ") {
                Some((k, _)) if k == key => format!("{key} = \"{held}\""),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    let run = |verb: &'static str| {
        tokio::process::Command::new(registrar_bin())
            .arg(verb)
            .arg("--config")
            .arg(dir.join("registrar.toml"))
            .output()
    };
    let out = run("check-config").await.expect("run check-config");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{key}: cannot listen on {held}: ");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("check-config: "))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains(&expected), "{stderr}");
    let words = lines[0].split_once(&format!("{key}: ")).expect("key").1;
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), run("serve"))
        .await
        .expect("serve gave up in time")
        .expect("run serve");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(words),
        "serve: {stderr}\ncheck-config said {words:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_and_serve_name_an_https_port_in_use() {
    port_in_use("listen", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_and_serve_name_a_coaps_port_in_use() {
    port_in_use("coaps-listen", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_and_serve_name_a_metrics_port_in_use() {
    port_in_use("metrics-listen", false).await;
}

/// Our CoAPS client (`brski_service::coaps::client`) with `party` as its certificate; the
/// registrar's chain accepted as presented.
async fn session(addr: SocketAddr, party: &Party) -> coaps::client::Client {
    let config = coaps::client::ClientConfig {
        identity: coaps::Identity {
            chain: vec![party.der()],
            key: brski_service::coaps::IdentityKey::Pkcs8(party.key.to_pkcs8_der().to_vec()),
        },
        server_check: std::sync::Arc::new(|_: &[Vec<u8>]| Ok(())),
        path_mtu: 1024,
        call: coaps::call::CallLimits::default(),
        source_port: 0,
    };
    coaps::client::Client::connect(addr, &config, Duration::from_secs(10))
        .await
        .expect("DTLS session")
}

/// POST `pvr` to `/rv` on a new session as `party`: the answer's code and diagnostic.
async fn ask_rv(addr: SocketAddr, party: &Party, pvr: &[u8]) -> (String, String) {
    let mut c = session(addr, party).await;
    let request = coaps::Request {
        content_format: Some(836),
        payload: pvr.to_vec(),
        ..coaps::Request::new(coaps::Method::Post, "/.well-known/brski/rv")
    };
    let r = c
        .request(request, Duration::from_secs(30))
        .await
        .expect("an answer");
    (
        r.code.to_string(),
        String::from_utf8_lossy(&r.payload).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9148_voucher_request_refusals_and_masa_answers_have_their_coap_codes() {
    let (s, addr) = coaps_setup(&[]).await;
    let p = s.pledge("SN-COAP-BAD");
    let registrar_cert = session(addr, &p.idevid).await.peer_certs()[0].clone();
    let pvr_of = |serial: &str, signer: &Party| {
        pledge::build_pledge_voucher_request(
            Format::Cose,
            serial,
            &registrar_cert,
            &*signer.key,
            std::slice::from_ref(&signer.cert),
            None,
        )
        .expect("pvr")
        .bytes
    };

    // Signed by another IDevID of the same serial than the DTLS client's: 4.03.
    let other = s.vendor.mint("SN-COAP-BAD", Some(&s.masa.url()));
    let (code, why) = ask_rv(addr, &p.idevid, &pvr_of("SN-COAP-BAD", &other)).await;
    assert_eq!(code, "4.03", "{why}");
    assert!(why.contains("not signed by the TLS client"), "{why}");
    // serial-number differs from the IDevID's: 4.03.
    let (code, why) = ask_rv(addr, &p.idevid, &pvr_of("SN-ELSE", &p.idevid)).await;
    assert_eq!(code, "4.03", "{why}");
    assert!(why.contains("serial-number"), "{why}");
    assert_eq!(
        s.reg
            .pledge("SN-COAP-BAD")
            .await
            .map(|r| r["vouchers"].clone()),
        None,
        "nothing stored for the refused requests"
    );

    // The MASA's own answers: its 404 is 4.04, its failure 5.02, and so is its absence.
    s.masa.set_mode(MasaMode::Refuse(404, "no such device"));
    let (code, why) = ask_rv(addr, &p.idevid, &pvr_of("SN-COAP-BAD", &p.idevid)).await;
    assert_eq!(code, "4.04", "{why}");
    s.masa.set_mode(MasaMode::Refuse(500, "oops"));
    let (code, why) = ask_rv(addr, &p.idevid, &pvr_of("SN-COAP-BAD", &p.idevid)).await;
    assert_eq!(code, "5.02", "{why}");
    let closed = format!("127.0.0.1:{}", free_port());
    let gone = s.vendor.mint("SN-COAP-GONE", Some(&closed));
    let (code, why) = ask_rv(addr, &gone, &pvr_of("SN-COAP-GONE", &gone)).await;
    assert_eq!(code, "5.02", "{why}");
    assert!(why.starts_with("MASA unreachable"), "{why}");
    assert_eq!(
        s.reg.pledge("SN-COAP-BAD").await.expect("listed")["vouchers"],
        0
    );
    // A MASA that works again: the same pledge gets its voucher (2.04, COSE).
    s.masa.set_mode(MasaMode::Issue);
    let (code, _) = ask_rv(addr, &p.idevid, &pvr_of("SN-COAP-BAD", &p.idevid)).await;
    assert_eq!(code, "2.04");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uri_path_abbrev_from_libcoap_reaches_the_resource_it_stands_for() {
    let (s, addr) = coaps_setup(&[]).await;
    let p = s.pledge("SN-ABBREV");
    let (cert, key) = write_identity(s.tmp.path(), "idevid", &p.idevid);
    // 301 (0x012d) is /.well-known/est/crts: the domain CA as certs-only DER.
    let out = s.tmp.path().join("crts.der");
    let r = coap_client(
        (&cert, &key),
        &["-m", "get", "-O", "13,0x012d", "-o", text(&out)],
        &uri(addr, ""),
    )
    .await;
    assert!(r.ok, "{}", r.stderr);
    let der = std::fs::read(&out).expect("answer");
    let certs = brski_common::est::decode_certs_only(&der).expect("certs-only");
    assert!(certs.contains(&s.reg.domain_ca()), "the domain CA");
    // A value this registrar does not know: 4.02, not 4.04.
    let r = coap_client(
        (&cert, &key),
        &["-m", "get", "-O", "13,0x01f4"],
        &uri(addr, ""),
    )
    .await;
    assert!(r.stderr.contains("4.02"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7252_5_2_2_a_slow_masa_answer_comes_separately_and_reaches_our_client() {
    let (s, addr) = coaps_setup(&[]).await;
    // Beyond the registrar's empty-ACK delay (0.5 s) and the client's first retransmission
    // timeout (2 s): the request is acknowledged at once and answered as a separate CON.
    s.masa.set_mode(MasaMode::SlowIssue(Duration::from_secs(3)));
    let p = s.pledge("SN-COAP-SLOW");
    let registrar_cert = session(addr, &p.idevid).await.peer_certs()[0].clone();
    let pvr = p.pvr(Format::Cose, &registrar_cert);
    let started = std::time::Instant::now();
    let (code, why) = ask_rv(addr, &p.idevid, &pvr.bytes).await;
    assert_eq!(code, "2.04", "{why}");
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(
        s.reg.pledge("SN-COAP-SLOW").await.expect("listed")["vouchers"],
        1,
        "one voucher for the one request, however often it was sent"
    );
}

/// With its state in PostgreSQL, a registrar whose database goes away answers 503 with
/// Retry-After over HTTPS and 5.03 with Max-Age over CoAPS (RFC 9148 §5.7: the pledge tries
/// again), still answers what needs no database (`/cacerts`), and serves again once the
/// database is back, without a restart of its own; what was committed before is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_unavailable_is_503_and_5_03_with_retry_after_then_passes() {
    let pg = brski_service::pg_server::PgServer::start().expect("a PostgreSQL server");
    pg.create_database("registrar").expect("create database");
    let url = pg.url("registrar");
    let listen = format!("127.0.0.1:{}", free_udp_port());
    let s = setup_with(MasaMode::Issue, &["--coaps-listen", &listen], |t| {
        t.lines()
            .map(|l| match l.starts_with("database = ") {
                true => format!("database = \"{url}\""),
                false => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
    .await;
    let addr: SocketAddr = listen.parse().expect("addr");
    let before = s.pledge("SN-PG-BEFORE");
    before.obtain_voucher(&s.reg, &s.vendor).await;

    pg.stop().expect("stop PostgreSQL");
    let p = s.pledge("SN-PG-DOWN");
    let cert = p.registrar_cert(&s.reg).await;
    let pvr = p.pvr(Format::Cms, &cert);
    let a = p.request_voucher(&s.reg, &pvr).await;
    assert_eq!(a.status, 503, "{}", a.text());
    assert_eq!(
        a.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5")
    );
    assert!(a.text().contains("database is unavailable"), "{}", a.text());
    let cacerts = p.get(&s.reg, "/.well-known/est/cacerts").await;
    assert_eq!(cacerts.status, 200, "served without the database");
    let mut c = session(addr, &p.idevid).await;
    let request = coaps::Request {
        content_format: Some(836),
        payload: cose_pvr(&s, &p).bytes,
        ..coaps::Request::new(coaps::Method::Post, "/.well-known/brski/rv")
    };
    let r = c
        .request(request, Duration::from_secs(30))
        .await
        .expect("an answer");
    assert_eq!(r.code.to_string(), "5.03");
    assert_eq!(r.max_age, Some(5));
    assert_eq!(
        s.masa.calls(),
        1,
        "nothing reached the MASA while the database was away"
    );

    pg.restart().expect("start PostgreSQL again");
    let mut status = 0;
    for _ in 0..20 {
        status = p.request_voucher(&s.reg, &pvr).await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "served again: {}", s.reg.log());
    assert_eq!(
        s.reg.pledge("SN-PG-BEFORE").await.expect("kept")["vouchers"],
        1
    );
    assert_eq!(
        s.reg.pledge("SN-PG-DOWN").await.expect("stored")["vouchers"],
        1
    );
}
