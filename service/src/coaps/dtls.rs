//! DTLS 1.2 (RFC 6347) with OpenSSL: the server context, the stateless cookie exchange, and
//! the datagram pipe a session's `SslStream` runs over.
//!
//! Cookies (RFC 6347 §4.2.1): a ClientHello from an address without a session is answered by
//! the dispatcher itself with a HelloVerifyRequest carrying `HMAC-SHA256(secret, window ‖
//! address)`, and no state is kept; only a ClientHello that returns a valid cookie starts a
//! session. OpenSSL's own cookie exchange (`SSL_OP_COOKIE_EXCHANGE`) then runs on a copy of that
//! ClientHello without the cookie (its HelloVerifyRequest is discarded) and verifies the real
//! one with the same HMAC, so that its handshake state (message sequence 1, transcript reset)
//! is the one the client has. `DTLSv1_listen` would do this but is not in the safe API.

use brski_common::pki::chain::chains_to;
use brski_common::tls::ClientAuth;
use der::Decode;
use openssl::ex_data::Index;
use openssl::pkey::PKey;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslSessionCacheMode, SslVerifyMode,
    SslVersion,
};
use openssl::x509::{X509, X509StoreContext, X509StoreContextRef};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use x509_cert::Certificate;

/// cBRSKI §6.1.2 (after RFC 7925 §4.4): TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 is mandatory; the
/// other AEAD suites of an ECDSA certificate follow. OpenSSL 3.0 names CCM_8 `…-CCM8`; it is
/// in no DEFAULT list, so it is named explicitly, and it is allowed at Debian's
/// `@SECLEVEL=2` (64-bit tag, but the suite's strength is counted by its 128-bit key), so the
/// security level is left as the system sets it.
pub const CIPHERS: &str = "ECDHE-ECDSA-AES128-CCM8:ECDHE-ECDSA-AES128-CCM:\
                           ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384";

/// The server's certificate chain (end entity first, DER) and its key (PKCS#8 DER).
#[derive(Clone)]
pub struct Identity {
    pub chain: Vec<Vec<u8>>,
    pub key_pkcs8: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({} certificates)", self.chain.len())
    }
}

/// Why the DTLS server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DtlsError {
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    #[error("no server certificate")]
    NoCertificate,
}

/// Where a session's datagrams come from and go to: an address, or a stateless join proxy's
/// address with the JPY header that stands for the pledge behind it (CJP §4.5: the registrar
/// keys the DTLS session by both and echoes the header unchanged).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub addr: SocketAddr,
    pub jpy: Option<Arc<[u8]>>,
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Self {
        Self { addr, jpy: None }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.jpy {
            None => write!(f, "{}", self.addr),
            Some(h) => write!(
                f,
                "{} jpy:{}",
                self.addr,
                h.iter()
                    .take(4)
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
        }
    }
}

/// The peer a session's `Ssl` serves (for the cookie callbacks).
fn addr_index() -> Result<Index<Ssl, Peer>, openssl::error::ErrorStack> {
    static INDEX: OnceLock<Result<Index<Ssl, Peer>, openssl::error::ErrorStack>> = OnceLock::new();
    INDEX.get_or_init(Ssl::new_ex_index).clone()
}

/// A new server-side `Ssl` for the session with `peer`, datagrams at most `mtu` bytes.
pub fn session_ssl(ctx: &SslContext, peer: &Peer, mtu: u32) -> Result<Ssl, DtlsError> {
    let mut ssl = Ssl::new(ctx)?;
    ssl.set_ex_data(addr_index()?, peer.clone());
    // SSL_OP_NO_QUERY_MTU is set: the datagram size is ours, not the socket's.
    ssl.set_mtu(mtu)?;
    Ok(ssl)
}

/// The DTLS 1.2 server context: `identity`, the cBRSKI suites on P-256/P-384, no session
/// resumption or renegotiation, the cookie exchange with `cookies`, and client certificates
/// requested and accepted only when they validate under one of `auth.policies` and pass
/// `auth.refusal` (the TLS server's rules, `brski_common::tls::ClientAuth`). A client may
/// come without a certificate when `auth.optional` (RFC 9148 §4.1: `/crts`).
pub fn server_context(
    identity: &Identity,
    auth: ClientAuth,
    cookies: Arc<CookieKey>,
) -> Result<SslContext, DtlsError> {
    let mut b = SslContextBuilder::new(SslMethod::dtls_server())?;
    b.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
    b.set_max_proto_version(Some(SslVersion::DTLS1_2))?;
    b.set_cipher_list(CIPHERS)?;
    b.set_groups_list("P-256:P-384")?;
    b.set_options(
        SslOptions::COOKIE_EXCHANGE
            | SslOptions::NO_QUERY_MTU
            | SslOptions::NO_TICKET
            | SslOptions::NO_RENEGOTIATION,
    );
    b.set_session_cache_mode(SslSessionCacheMode::OFF);
    let (leaf, rest) = identity
        .chain
        .split_first()
        .ok_or(DtlsError::NoCertificate)?;
    let leaf = X509::from_der(leaf)?;
    b.set_certificate(&leaf)?;
    for der in rest {
        b.add_extra_chain_cert(X509::from_der(der)?)?;
    }
    let key = PKey::private_key_from_pkcs8(&identity.key_pkcs8)?;
    b.set_private_key(&key)?;
    b.check_private_key()?;
    let mode = if auth.optional {
        SslVerifyMode::PEER
    } else {
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT
    };
    let auth = Arc::new(auth);
    b.set_verify_callback(mode, move |_openssl_verdict, ctx| accepts(&auth, ctx));
    let gen_key = cookies.clone();
    b.set_cookie_generate_cb(move |ssl, out| {
        let cookie = ssl
            .ex_data(addr_index()?)
            .map(|peer| gen_key.cookie(peer, gen_key.window_now()))
            .unwrap_or_default();
        let n = cookie.len().min(out.len());
        out[..n].copy_from_slice(&cookie[..n]);
        Ok(n)
    });
    b.set_cookie_verify_cb(move |ssl, cookie| {
        addr_index()
            .ok()
            .and_then(|idx| ssl.ex_data(idx))
            .is_some_and(|peer| cookies.valid(peer, cookie))
    });
    Ok(b.build())
}

/// The verify callback: our verdict replaces OpenSSL's (which has no anchors): the chain
/// OpenSSL built from what the client presented must validate under one of the policies, and
/// no refusal may apply to its end entity.
fn accepts(auth: &ClientAuth, ctx: &mut X509StoreContextRef) -> bool {
    let Some(chain) = ctx.chain() else {
        return false;
    };
    let certs: Option<Vec<Certificate>> = chain
        .iter()
        .map(|c| c.to_der().ok().and_then(|d| Certificate::from_der(&d).ok()))
        .collect();
    let Some((leaf, pool)) = certs.as_deref().and_then(<[Certificate]>::split_first) else {
        return false;
    };
    if !auth.policies.iter().any(|p| chains_to(leaf, pool, p)) {
        tracing::debug!("DTLS client certificate validates under no policy");
        return false;
    }
    if let Some(reason) = auth.refusal.as_ref().and_then(|r| r.refusal(leaf)) {
        let peer = X509StoreContext::ssl_idx()
            .ok()
            .and_then(|i| ctx.ex_data(i))
            .and_then(|ssl| addr_index().ok().and_then(|i| ssl.ex_data(i)).cloned());
        tracing::info!(peer = ?peer, reason = %reason, outcome = "dtls-rejected", "client certificate refused");
        return false;
    }
    true
}

/// The cookie secret (RFC 6347 §4.2.1): `HMAC-SHA256(secret, window ‖ address ‖ JPY header)`, the window
/// changing every [`CookieKey::WINDOW_SECS`]; a cookie of this window or the last one is valid.
pub struct CookieKey {
    key: PKey<openssl::pkey::Private>,
}

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey")
    }
}

impl CookieKey {
    pub const WINDOW_SECS: u64 = 60;
    /// Cookie length (RFC 6347 §4.2.1: at most 255; 16 bytes of HMAC are plenty).
    pub const LEN: usize = 16;

    /// A random secret.
    pub fn random() -> Result<Self, DtlsError> {
        let mut secret = [0u8; 32];
        openssl::rand::rand_bytes(&mut secret)?;
        Ok(Self {
            key: PKey::hmac(&secret)?,
        })
    }

    pub fn window_now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / Self::WINDOW_SECS)
    }

    /// The cookie for `peer` in `window`.
    pub fn cookie(&self, peer: &Peer, window: u64) -> Vec<u8> {
        let mut data = window.to_be_bytes().to_vec();
        match peer.addr.ip() {
            std::net::IpAddr::V4(ip) => data.extend_from_slice(&ip.to_ipv6_mapped().octets()),
            std::net::IpAddr::V6(ip) => data.extend_from_slice(&ip.octets()),
        }
        data.extend_from_slice(&peer.addr.port().to_be_bytes());
        if let Some(h) = &peer.jpy {
            data.extend_from_slice(h);
        }
        let mac = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &self.key)
            .and_then(|mut s| s.sign_oneshot_to_vec(&data));
        let mut mac = mac.unwrap_or_default();
        mac.truncate(Self::LEN);
        mac
    }

    /// Whether `cookie` is the one for `peer` in this window or the last.
    pub fn valid(&self, peer: &Peer, cookie: &[u8]) -> bool {
        let now = self.window_now();
        cookie.len() == Self::LEN
            && [now, now.saturating_sub(1)].into_iter().any(|w| {
                let expected = self.cookie(peer, w);
                expected.len() == cookie.len() && openssl::memcmp::eq(&expected, cookie)
            })
    }
}

/// Record content type handshake, handshake types (RFC 6347 §4.1, §4.2.2).
const CONTENT_HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const HELLO_VERIFY_REQUEST: u8 = 3;
const RECORD_HEADER: usize = 13;
const HANDSHAKE_HEADER: usize = 12;
/// DTLS 1.0, the version of a HelloVerifyRequest from a DTLS 1.2 server (RFC 6347 §4.2.1).
const DTLS1_0: [u8; 2] = [0xfe, 0xff];

/// An unfragmented ClientHello in the first record of a datagram, epoch 0 (RFC 6347 §4.2.2).
#[derive(Debug, PartialEq, Eq)]
pub struct ClientHello<'a> {
    pub record_version: [u8; 2],
    pub record_seq: [u8; 6],
    /// The handshake body: client_version, random, session_id, cookie, the rest.
    body: &'a [u8],
    /// Where the cookie (with its length byte) sits in `body`.
    cookie_at: usize,
    pub cookie: &'a [u8],
}

fn be(bytes: &[u8]) -> usize {
    bytes.iter().fold(0usize, |v, b| (v << 8) | usize::from(*b))
}

/// The ClientHello of `datagram`, if its first record holds a whole one.
pub fn client_hello(datagram: &[u8]) -> Option<ClientHello<'_>> {
    let header = datagram.get(..RECORD_HEADER)?;
    if header[0] != CONTENT_HANDSHAKE || header[3..5] != [0, 0] {
        return None;
    }
    let len = be(&header[11..13]);
    let record = datagram.get(RECORD_HEADER..RECORD_HEADER + len)?;
    let hs = record.get(..HANDSHAKE_HEADER)?;
    let body_len = be(&hs[1..4]);
    if hs[0] != CLIENT_HELLO || be(&hs[6..9]) != 0 || be(&hs[9..12]) != body_len {
        return None;
    }
    let body = record.get(HANDSHAKE_HEADER..HANDSHAKE_HEADER + body_len)?;
    // client_version (2), random (32), session_id <0..32>.
    let sid_len = usize::from(*body.get(34)?);
    let cookie_at = 35 + sid_len;
    let cookie_len = usize::from(*body.get(cookie_at)?);
    let cookie = body.get(cookie_at + 1..cookie_at + 1 + cookie_len)?;
    let mut record_seq = [0u8; 6];
    record_seq.copy_from_slice(&header[5..11]);
    Some(ClientHello {
        record_version: [header[1], header[2]],
        record_seq,
        body,
        cookie_at,
        cookie,
    })
}

/// A handshake record of `msg_type` with `body`, message sequence `msg_seq`, record
/// sequence `record_seq`.
fn handshake_record(
    version: [u8; 2],
    record_seq: [u8; 6],
    msg_type: u8,
    msg_seq: u16,
    body: &[u8],
) -> Vec<u8> {
    let len = body.len();
    let len24 = [(len >> 16) as u8, (len >> 8) as u8, len as u8];
    let mut hs = vec![msg_type];
    hs.extend_from_slice(&len24);
    hs.extend_from_slice(&msg_seq.to_be_bytes());
    hs.extend_from_slice(&[0, 0, 0]);
    hs.extend_from_slice(&len24);
    hs.extend_from_slice(body);
    let mut out = vec![CONTENT_HANDSHAKE];
    out.extend_from_slice(&version);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&record_seq);
    out.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    out.extend_from_slice(&hs);
    out
}

impl ClientHello<'_> {
    /// The HelloVerifyRequest answering this ClientHello with `cookie` (RFC 6347 §4.2.1: the
    /// record sequence number of the ClientHello, version DTLS 1.0).
    pub fn hello_verify_request(&self, cookie: &[u8]) -> Vec<u8> {
        let mut body = DTLS1_0.to_vec();
        body.push(cookie.len() as u8);
        body.extend_from_slice(cookie);
        handshake_record(DTLS1_0, self.record_seq, HELLO_VERIFY_REQUEST, 0, &body)
    }

    /// What OpenSSL is fed to start a session: this ClientHello without its cookie as message
    /// 0 in record 0, then the datagram itself (its record number at least 1).
    pub fn session_start(&self, datagram: &[u8]) -> [Vec<u8>; 2] {
        let mut body = self.body[..self.cookie_at].to_vec();
        body.push(0);
        body.extend_from_slice(&self.body[self.cookie_at + 1 + self.cookie.len()..]);
        let first = handshake_record(self.record_version, [0; 6], CLIENT_HELLO, 0, &body);
        let mut real = datagram.to_vec();
        if self.record_seq == [0; 6] {
            real[10] = 1;
        }
        [first, real]
    }
}

/// The datagrams of one session: received ones for OpenSSL to read, one per read, and the
/// ones it writes, one per write (the `Read + Write` an `SslStream` runs over).
#[derive(Debug, Default)]
pub struct Pipe {
    pub inbox: VecDeque<Vec<u8>>,
    pub outbox: Vec<Vec<u8>>,
    /// Writes are dropped until this many datagrams have been read (OpenSSL's own
    /// HelloVerifyRequest for the cookie-less copy).
    discard_until_read: usize,
    read: usize,
}

impl Pipe {
    /// A pipe that starts with `first` to read, dropping what is written until they are read
    /// but the last.
    pub fn starting_with(first: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let inbox: VecDeque<Vec<u8>> = first.into_iter().collect();
        Self {
            discard_until_read: inbox.len(),
            inbox,
            ..Self::default()
        }
    }
}

impl io::Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(d) = self.inbox.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        self.read += 1;
        // A datagram larger than OpenSSL's buffer is cut (and then fails its MAC).
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok(n)
    }
}

impl io::Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.read >= self.discard_until_read {
            self.outbox.push(buf.to_vec());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A connected UDP socket as a DTLS client's `Read + Write`: one datagram per read and per
/// write (RFC 6347 §4.1.1). Blocking, for clients and tests.
#[derive(Debug)]
pub struct Datagrams(pub std::net::UdpSocket);

impl io::Read for Datagrams {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.recv(buf)
    }
}

impl io::Write for Datagrams {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A ClientHello record (DTLS 1.2, one suite) with `cookie`, record number `seq`.
#[cfg(test)]
pub(crate) fn test_client_hello(cookie: &[u8], seq: u8) -> Vec<u8> {
    let mut body = vec![0xfe, 0xfd];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.push(cookie.len() as u8);
    body.extend_from_slice(cookie);
    body.extend_from_slice(&[0, 2, 0xc0, 0xae, 1, 0]);
    handshake_record([0xfe, 0xfd], [0, 0, 0, 0, 0, seq], CLIENT_HELLO, 0, &body)
}

/// `datagram`'s ClientHello (its only record) with `cookie` in place of its own.
#[cfg(test)]
pub(crate) fn test_with_cookie(datagram: &[u8], cookie: &[u8]) -> Option<Vec<u8>> {
    let h = client_hello(datagram)?;
    let mut body = h.body[..h.cookie_at].to_vec();
    body.push(cookie.len() as u8);
    body.extend_from_slice(cookie);
    body.extend_from_slice(&h.body[h.cookie_at + 1 + h.cookie.len()..]);
    let mut seq = h.record_seq;
    seq[5] = seq[5].wrapping_add(1);
    Some(handshake_record(
        h.record_version,
        seq,
        CLIENT_HELLO,
        1,
        &body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(cookie: &[u8], seq: u8) -> Vec<u8> {
        test_client_hello(cookie, seq)
    }

    #[test]
    fn rfc6347_4_2_1_hello_verify_request_echoes_the_record_number() {
        let d = hello(b"", 5);
        let h = client_hello(&d).expect("a ClientHello");
        assert!(h.cookie.is_empty());
        let hvr = h.hello_verify_request(&[9; 16]);
        assert_eq!(hvr[0], CONTENT_HANDSHAKE);
        assert_eq!(hvr[1..3], DTLS1_0);
        assert_eq!(hvr[5..11], [0, 0, 0, 0, 0, 5]);
        assert_eq!(hvr[RECORD_HEADER], HELLO_VERIFY_REQUEST);
        // Body: server_version, cookie length, cookie.
        assert_eq!(
            hvr[RECORD_HEADER + HANDSHAKE_HEADER..][..3],
            [0xfe, 0xff, 16]
        );
        assert_eq!(hvr.len(), RECORD_HEADER + HANDSHAKE_HEADER + 3 + 16);
    }

    #[test]
    fn rfc6347_4_2_1_session_start_strips_the_cookie() {
        let d = hello(&[1; 16], 0);
        let h = client_hello(&d).expect("a ClientHello");
        assert_eq!(h.cookie, &[1; 16]);
        let [first, real] = h.session_start(&d);
        let f = client_hello(&first).expect("still a ClientHello");
        assert!(f.cookie.is_empty());
        assert_eq!(f.record_seq, [0; 6]);
        assert_eq!(first.len(), d.len() - 16);
        assert_eq!(
            client_hello(&real).expect("hello").record_seq,
            [0, 0, 0, 0, 0, 1]
        );
    }

    #[test]
    fn not_a_client_hello() {
        assert!(client_hello(b"").is_none());
        assert!(client_hello(&[23; 40]).is_none());
        let mut d = hello(b"", 0);
        d[4] = 1; // epoch 1
        assert!(client_hello(&d).is_none());
        let d = hello(b"", 0);
        for cut in 0..d.len() {
            assert!(client_hello(&d[..cut]).is_none(), "{cut}");
        }
    }

    #[test]
    fn cookies_are_bound_to_the_address_and_the_jpy_header() {
        let key = CookieKey::random().expect("key");
        let addr: SocketAddr = "192.0.2.1:5684".parse().expect("addr");
        let a = Peer::from(addr);
        let b = Peer::from("192.0.2.1:5685".parse::<SocketAddr>().expect("addr"));
        let c = key.cookie(&a, key.window_now());
        assert_eq!(c.len(), CookieKey::LEN);
        assert!(key.valid(&a, &c));
        assert!(!key.valid(&b, &c));
        assert!(!key.valid(&a, &c[1..]));
        let old = key.cookie(&a, key.window_now() - 2);
        assert!(!key.valid(&a, &old));
        let other = CookieKey::random().expect("key");
        assert!(!other.valid(&a, &c));
        // Behind a stateless proxy: the same proxy address, another pledge's header.
        let jpy = |h: &[u8]| Peer {
            addr,
            jpy: Some(Arc::from(h)),
        };
        let behind = key.cookie(&jpy(&[1; 32]), key.window_now());
        assert!(key.valid(&jpy(&[1; 32]), &behind));
        assert!(!key.valid(&jpy(&[2; 32]), &behind));
        assert!(!key.valid(&a, &behind));
    }

    proptest::proptest! {
        #[test]
        fn client_hello_parsing_never_panics(d in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Some(h) = client_hello(&d) {
                let _ = h.hello_verify_request(&[0; 16]);
                let _ = h.session_start(&d);
            }
        }
    }
}
