//! The DTLS server over loopback, with an OpenSSL DTLS client (RFC 6347; cBRSKI §6.1.2).

use super::*;
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::chain::TrustPolicy;
use brski_common::pki::{issue, name_from_parts, profile, self_signed};
use coap_lite::{MessageClass, MessageType, Packet};
use der::Encode;
use openssl::ssl::{SslConnector, SslMethod, SslOptions, SslVerifyMode};
use x509_cert::Certificate;

struct Party {
    key: SoftwareKey,
    cert: Certificate,
}

fn key() -> SoftwareKey {
    SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key")
}

fn ca(name: &str) -> Party {
    let key = key();
    let params = profile::vendor_ca(name_from_parts(Some(name), Some(name), None).expect("name"))
        .expect("params");
    Party {
        cert: self_signed(&params, &key).expect("ca"),
        key,
    }
}

fn issued(params: &brski_common::pki::CertificateParams, by: &Party) -> Party {
    let key = key();
    let cert = issue(params, key.public_key_spki(), Some(&by.cert), &by.key).expect("issue");
    Party { key, cert }
}

struct Pki {
    vendor: Party,
    server: Party,
    pledge: Party,
}

fn pki() -> Pki {
    let vendor = ca("Vendor");
    let server = issued(
        &profile::tls_server(&["localhost"], &["127.0.0.1".parse().expect("ip")]).expect("p"),
        &vendor,
    );
    let pledge = issued(&profile::idevid("SN-1", None, None).expect("p"), &vendor);
    Pki {
        vendor,
        server,
        pledge,
    }
}

/// A server answering every request with 2.05, the number of client certificates and the
/// path as payload; its address and a stop switch.
async fn server(pki: &Pki, auth: ClientAuth) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    server_with(pki, auth, Limits::default()).await
}

async fn server_with(
    pki: &Pki,
    auth: ClientAuth,
    limits: Limits,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let identity = Identity {
        chain: vec![
            pki.server.cert.to_der().expect("der"),
            pki.vendor.cert.to_der().expect("der"),
        ],
        key: super::IdentityKey::Pkcs8(pki.server.key.to_pkcs8_der().to_vec()),
    };
    let handler: Handler = Arc::new(|info: SessionInfo, req: Request| {
        Box::pin(async move {
            Response {
                code: CoapCode::CONTENT,
                content_format: Some(0),
                max_age: None,
                size1: None,
                payload: format!("{} {}", info.peer_certs.len(), req.path.join("/")).into_bytes(),
                close: false,
            }
        })
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        serve(socket, &identity, auth, handler, limits, async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    });
    (addr, stop)
}

fn auth(pki: &Pki) -> ClientAuth {
    ClientAuth {
        policies: vec![TrustPolicy::new(vec![pki.vendor.cert.clone()])],
        optional: true,
        refusal: None,
    }
}

/// A DTLS 1.2 client offering only `ciphers`, with `client` as certificate; a CoAP GET of
/// `path`; the cipher negotiated and the answer's payload.
fn get(
    addr: SocketAddr,
    ciphers: &str,
    client: Option<&Party>,
    path: &str,
) -> Result<(String, String), String> {
    let mut b = SslConnector::builder(SslMethod::dtls_client()).map_err(|e| e.to_string())?;
    b.set_cipher_list(ciphers).map_err(|e| e.to_string())?;
    b.set_verify(SslVerifyMode::NONE);
    b.set_options(SslOptions::NO_QUERY_MTU);
    if let Some(c) = client {
        let cert = openssl::x509::X509::from_der(&c.cert.to_der().expect("der")).expect("x509");
        let key = openssl::pkey::PKey::private_key_from_pkcs8(c.key.to_pkcs8_der()).expect("key");
        b.set_certificate(&cert).map_err(|e| e.to_string())?;
        b.set_private_key(&key).map_err(|e| e.to_string())?;
    }
    let connector = b.build();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    socket.connect(addr).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut config = connector.configure().map_err(|e| e.to_string())?;
    config.set_verify_hostname(false);
    let mut ssl = config.into_ssl("localhost").map_err(|e| e.to_string())?;
    ssl.set_mtu(1200).map_err(|e| e.to_string())?;
    let mut stream =
        openssl::ssl::SslStream::new(ssl, dtls::Datagrams(socket)).map_err(|e| e.to_string())?;
    stream.connect().map_err(|e| e.to_string())?;
    let cipher = stream
        .ssl()
        .current_cipher()
        .map(|c| c.name().to_string())
        .unwrap_or_default();
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::from(1);
    p.header.message_id = 77;
    p.set_token(vec![1, 2]);
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        p.add_option(coap_lite::CoapOption::UriPath, segment.as_bytes().to_vec());
    }
    stream
        .ssl_write(&p.to_bytes().expect("bytes"))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 2048];
    let n = stream.ssl_read(&mut buf).map_err(|e| e.to_string())?;
    let answer = Packet::from_bytes(&buf[..n]).map_err(|e| e.to_string())?;
    assert_eq!(answer.header.message_id, 77);
    assert_eq!(answer.get_token(), [1, 2]);
    Ok((cipher, String::from_utf8_lossy(&answer.payload).to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cbrski_6_1_2_ccm_8_with_a_client_certificate() {
    let pki = Arc::new(pki());
    let (addr, _stop) = server(&pki, auth(&pki)).await;
    let p = pki.clone();
    let (cipher, payload) = tokio::task::spawn_blocking(move || {
        get(
            addr,
            "ECDHE-ECDSA-AES128-CCM8",
            Some(&p.pledge),
            "/.well-known/est/crts",
        )
    })
    .await
    .expect("join")
    .expect("handshake and answer");
    assert_eq!(cipher, "ECDHE-ECDSA-AES128-CCM8");
    assert_eq!(payload, "1 .well-known/est/crts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9148_4_without_a_client_certificate_when_optional() {
    let pki = Arc::new(pki());
    let (addr, _stop) = server(&pki, auth(&pki)).await;
    let (_, payload) = tokio::task::spawn_blocking(move || {
        get(addr, "ECDHE-ECDSA-AES128-GCM-SHA256", None, "/crts")
    })
    .await
    .expect("join")
    .expect("handshake and answer");
    assert_eq!(payload, "0 crts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_outside_the_policies_fails_the_handshake() {
    let pki = Arc::new(pki());
    let (addr, _stop) = server(&pki, auth(&pki)).await;
    let rogue = ca("Rogue");
    let stranger = issued(&profile::idevid("SN-2", None, None).expect("p"), &rogue);
    let result = tokio::task::spawn_blocking(move || {
        get(addr, "ECDHE-ECDSA-AES128-CCM8", Some(&stranger), "/crts")
    })
    .await
    .expect("join");
    assert!(result.is_err(), "{result:?}");
}

/// A ClientHello with `cookie`, record number 3.
fn client_hello(cookie: &[u8]) -> Vec<u8> {
    dtls::test_client_hello(cookie, 3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6347_4_2_1_a_client_hello_without_cookie_gets_only_a_hello_verify_request() {
    let pki = pki();
    let (addr, _stop) = server(&pki, auth(&pki)).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    for cookie in [&[][..], &[0x55; 16][..]] {
        socket
            .send_to(&client_hello(cookie), addr)
            .await
            .expect("send");
        let mut buf = [0u8; 2048];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf))
            .await
            .expect("an answer")
            .expect("recv");
        let answer = &buf[..n];
        assert_eq!(answer[0], 22, "a handshake record");
        assert_eq!(answer[13], 3, "HelloVerifyRequest");
        // The record number of the ClientHello is echoed (RFC 6347 §4.2.1).
        assert_eq!(answer[5..11], [0, 0, 0, 0, 0, 3]);
        // Smaller than the ClientHello: no amplification.
        assert!(n < client_hello(cookie).len().max(60), "{n}");
        let more =
            tokio::time::timeout(Duration::from_millis(1500), socket.recv_from(&mut buf)).await;
        assert!(more.is_err(), "nothing but the HelloVerifyRequest");
    }
}

/// A peer that passes the cookie exchange with a real ClientHello and then says nothing:
/// the server has answered with its ServerHello flight and waits.
async fn stalled_handshake(server: SocketAddr) -> UdpSocket {
    // A real DTLS 1.2 ClientHello, caught on the way to a socket that never answers.
    let catcher = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let target = catcher.local_addr().expect("addr");
    let pledge = pki().pledge;
    std::thread::spawn(move || {
        let _ = get(target, "ECDHE-ECDSA-AES128-CCM8", Some(&pledge), "/x");
    });
    let mut buf = [0u8; 2048];
    let n = catcher.recv(&mut buf).expect("a ClientHello");
    let hello = buf[..n].to_vec();
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.send_to(&hello, server).await.expect("send");
    let (n, _) = socket
        .recv_from(&mut buf)
        .await
        .expect("HelloVerifyRequest");
    assert_eq!(buf[13], 3, "HelloVerifyRequest");
    let cookie = buf[RECORD_AND_HANDSHAKE + 3..n].to_vec();
    assert_eq!(usize::from(buf[RECORD_AND_HANDSHAKE + 2]), cookie.len());
    let again = dtls::test_with_cookie(&hello, &cookie).expect("a ClientHello");
    socket.send_to(&again, server).await.expect("send");
    let (_, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf))
        .await
        .expect("the server's flight")
        .expect("recv");
    assert_eq!((buf[0], buf[13]), (22, 2), "a ServerHello");
    socket
}

/// The DTLS record and handshake headers (RFC 6347 §4.1, §4.2.2).
const RECORD_AND_HANDSHAKE: usize = 13 + 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_blocks_no_one() {
    let pki = Arc::new(pki());
    let (addr, _stop) = server(&pki, auth(&pki)).await;
    let _stalled = stalled_handshake(addr).await;
    let p = pki.clone();
    let (_, payload) = tokio::task::spawn_blocking(move || {
        get(addr, "ECDHE-ECDSA-AES128-CCM8", Some(&p.pledge), "/crts")
    })
    .await
    .expect("join")
    .expect("another client is served meanwhile");
    assert_eq!(payload, "1 crts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_are_bounded_and_time_out() {
    let pki = Arc::new(pki());
    let limits = Limits {
        max_handshakes: 1,
        handshake_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let (addr, _stop) = server_with(&pki, auth(&pki), limits).await;
    let _stalled = stalled_handshake(addr).await;
    let stalled_at = std::time::Instant::now();
    // The one handshake slot is taken: a second client gets in only once the stalled
    // handshake has timed out (its ClientHello is dropped until then, and resent).
    let p = pki.clone();
    let (_, payload) = tokio::task::spawn_blocking(move || {
        get(addr, "ECDHE-ECDSA-AES128-CCM8", Some(&p.pledge), "/crts")
    })
    .await
    .expect("join")
    .expect("served once the stalled handshake timed out");
    assert!(
        stalled_at.elapsed() >= Duration::from_millis(900),
        "{:?}",
        stalled_at.elapsed()
    );
    assert_eq!(payload, "1 crts");
}

/// The pledge-side client of this crate: `client` as its certificate, `check` on the server.
fn client_config(client: &Party, check: client::ServerCheck) -> client::ClientConfig {
    client::ClientConfig {
        identity: Identity {
            chain: vec![client.cert.to_der().expect("der")],
            key: super::IdentityKey::Pkcs8(client.key.to_pkcs8_der().to_vec()),
        },
        server_check: check,
        path_mtu: 1024,
        call: call::CallLimits::default(),
        source_port: 0,
    }
}

#[tokio::test]
async fn our_client_handshakes_sends_requests_and_sees_the_server_chain() {
    let pki = pki();
    let (addr, _stop) = server(&pki, auth(&pki)).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    let check: client::ServerCheck = Arc::new(move |chain: &[Vec<u8>]| {
        kept.lock().expect("lock").push(chain.len());
        Ok(())
    });
    let config = client_config(&pki.pledge, check);
    let mut c = client::Client::connect(addr, &config, Duration::from_secs(10))
        .await
        .expect("handshake");
    assert_eq!(
        c.peer_certs(),
        [
            pki.server.cert.to_der().expect("der"),
            pki.vendor.cert.to_der().expect("der")
        ]
    );
    assert_eq!(*seen.lock().expect("lock"), vec![2]);
    assert_eq!(c.channel_binding().map(<[u8]>::len), Some(32));
    for path in ["/.well-known/est/crts", "/.well-known/brski/rv"] {
        let r = c
            .request(Request::new(Method::Get, path), Duration::from_secs(10))
            .await
            .expect("answer");
        assert_eq!(r.code, CoapCode::CONTENT);
        assert_eq!(
            String::from_utf8(r.payload).expect("utf-8"),
            format!("1 {}", &path[1..])
        );
    }
    c.close().await;
    assert!(c.is_closed());
}

#[tokio::test]
async fn our_client_refuses_a_server_its_check_refuses() {
    let pki = pki();
    let (addr, _stop) = server(&pki, auth(&pki)).await;
    let check: client::ServerCheck = Arc::new(|_: &[Vec<u8>]| Err("not this one".into()));
    let config = client_config(&pki.pledge, check);
    let e = client::Client::connect(addr, &config, Duration::from_secs(10))
        .await
        .expect_err("refused");
    assert!(
        matches!(&e, client::ClientError::ServerRefused(r) if r == "not this one"),
        "{e}"
    );
}

#[tokio::test]
async fn our_client_is_refused_with_a_certificate_the_server_does_not_accept() {
    let pki = pki();
    let (addr, _stop) = server(&pki, auth(&pki)).await;
    let stranger = ca("Stranger");
    let config = client_config(&stranger, Arc::new(|_: &[Vec<u8>]| Ok(())));
    let e = client::Client::connect(addr, &config, Duration::from_secs(10))
        .await
        .expect_err("refused");
    assert!(matches!(e, client::ClientError::Handshake { .. }), "{e}");
}

#[tokio::test]
async fn our_client_times_out_against_a_silent_peer() {
    let pki = pki();
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let config = client_config(&pki.pledge, Arc::new(|_: &[Vec<u8>]| Ok(())));
    let e = client::Client::connect(
        silent.local_addr().expect("addr"),
        &config,
        Duration::from_millis(700),
    )
    .await
    .expect_err("timeout");
    assert!(matches!(e, client::ClientError::HandshakeTimeout(_)), "{e}");
}

#[tokio::test]
async fn a_dropped_client_frees_its_session_at_once() {
    let pki = pki();
    // One session per address: the second client gets in only when the first one's is gone.
    let limits = Limits {
        per_peer_sessions: 1,
        ..Limits::default()
    };
    let (addr, _stop) = server_with(&pki, auth(&pki), limits).await;
    let config = client_config(&pki.pledge, Arc::new(|_: &[Vec<u8>]| Ok(())));
    for round in 0..3 {
        let mut c = client::Client::connect(addr, &config, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("session {round}: {e}"));
        let r = c
            .request(
                Request::new(Method::Get, "/.well-known/est/crts"),
                Duration::from_secs(5),
            )
            .await
            .expect("answer");
        assert_eq!(r.code, CoapCode::CONTENT);
        // Dropped without close(): close_notify still goes out.
        drop(c);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A key that signs only the digests it is handed, as a TPM does (the private half is kept
/// here in software for the test): counts them, and signs with `wrong` instead when set.
#[derive(Debug)]
struct HeldKey {
    spki: Vec<u8>,
    ec: openssl::ec::EcKey<openssl::pkey::Private>,
    wrong: Option<openssl::ec::EcKey<openssl::pkey::Private>>,
    refuse: bool,
    digests: Mutex<Vec<usize>>,
}

impl HeldKey {
    fn of(party: &Party) -> Self {
        let ec = openssl::pkey::PKey::private_key_from_pkcs8(party.key.to_pkcs8_der())
            .expect("pkcs8")
            .ec_key()
            .expect("ec");
        Self {
            spki: party.key.public_key_spki().to_vec(),
            ec,
            wrong: None,
            refuse: false,
            digests: Mutex::new(Vec::new()),
        }
    }
}

impl Signer for HeldKey {
    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::EcdsaP256Sha256
    }
    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, brski_common::keys::KeyError> {
        self.sign_digest(&self.algorithm().digest(message))
    }
    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, brski_common::keys::KeyError> {
        self.digests.lock().expect("lock").push(digest.len());
        if self.refuse {
            return Err(brski_common::keys::KeyError::Unavailable("TPM away".into()));
        }
        let key = self.wrong.as_ref().unwrap_or(&self.ec);
        let sig = openssl::ecdsa::EcdsaSig::sign(digest, key).expect("sign");
        Ok(sig.to_der().expect("der"))
    }
}

fn held_config(client: &Party, key: Arc<HeldKey>) -> client::ClientConfig {
    client::ClientConfig {
        identity: Identity {
            chain: vec![client.cert.to_der().expect("der")],
            key: super::IdentityKey::Signer(key),
        },
        ..client_config(client, Arc::new(|_: &[Vec<u8>]| Ok(())))
    }
}

/// RFC 6347 / RFC 5246 §7.4.8: a key that is not in OpenSSL signs the client's
/// CertificateVerify, once per handshake, over a SHA-256 digest (the one hash it offers).
#[tokio::test]
async fn a_held_key_signs_the_certificate_verify() {
    let pki = pki();
    let (addr, _stop) = server(&pki, auth(&pki)).await;
    let held = Arc::new(HeldKey::of(&pki.pledge));
    let config = held_config(&pki.pledge, held.clone());
    let mut c = client::Client::connect(addr, &config, Duration::from_secs(10))
        .await
        .expect("handshake");
    let r = c
        .request(Request::new(Method::Get, "/held"), Duration::from_secs(10))
        .await
        .expect("answer");
    assert_eq!(
        r.payload, b"1 held",
        "the server saw the client certificate"
    );
    assert_eq!(*held.digests.lock().expect("lock"), vec![32]);
}

/// A held key that cannot sign (its TPM is away) or signs with another key fails the
/// handshake, which the server refuses; nothing panics, and the client says why.
#[tokio::test]
async fn a_held_key_that_fails_or_signs_wrongly_fails_the_handshake() {
    let pki = pki();
    let (addr, _stop) = server(&pki, auth(&pki)).await;
    let mut refusing = HeldKey::of(&pki.pledge);
    refusing.refuse = true;
    let mut wrong = HeldKey::of(&pki.pledge);
    wrong.wrong = Some(
        openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                .expect("group"),
        )
        .expect("key"),
    );
    for held in [refusing, wrong] {
        let held = Arc::new(held);
        let config = held_config(&pki.pledge, held.clone());
        let e = client::Client::connect(addr, &config, Duration::from_secs(10))
            .await
            .expect_err("no handshake");
        assert!(matches!(e, client::ClientError::Handshake { .. }), "{e}");
        assert_eq!(held.digests.lock().expect("lock").len(), 1);
    }
}

#[test]
fn held_keys_are_ecdsa_and_for_the_client_only() {
    let pki = pki();
    let ed = Arc::new(SoftwareKey::generate(SignatureAlgorithm::Ed25519).expect("ed25519"));
    let ed = super::IdentityKey::Signer(ed);
    assert!(matches!(
        ed.for_client(),
        Err(DtlsError::UnusableKey(r)) if r.contains("not ECDSA")
    ));
    let identity = Identity {
        chain: vec![pki.server.cert.to_der().expect("der")],
        key: super::IdentityKey::Signer(Arc::new(HeldKey::of(&pki.server))),
    };
    let cookies = Arc::new(dtls::CookieKey::random().expect("cookies"));
    assert!(matches!(
        dtls::server_context(&identity, auth(&pki), cookies),
        Err(DtlsError::UnusableKey(_))
    ));
}
