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

use brski_common::keys::{SignatureAlgorithm, Signer};
use brski_common::pki::chain::chains_to;
use brski_common::tls::ClientAuth;
use der::Decode;
use openssl::ecdsa::EcdsaSig;
use openssl::ex_data::Index;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslSessionCacheMode, SslVerifyMode,
    SslVersion,
};
use openssl::x509::{X509, X509StoreContext, X509StoreContextRef};
use std::collections::VecDeque;
use std::ffi::CStr;
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

/// A certificate chain (end entity first, DER) and its key.
#[derive(Clone)]
pub struct Identity {
    pub chain: Vec<Vec<u8>>,
    pub key: IdentityKey,
}

/// The key of an [`Identity`].
#[derive(Clone)]
pub enum IdentityKey {
    /// In software: PKCS#8 DER.
    Pkcs8(Vec<u8>),
    /// Held elsewhere (a TPM): OpenSSL hands it the digest to sign
    /// ([`brski_openssl_key::external_ec_key`]). Client side only.
    Signer(Arc<dyn Signer>),
}

impl IdentityKey {
    /// The key as OpenSSL's DTLS client signs with it, and the signature algorithms its
    /// CertificateVerify may then use: a held key signs one hash only (a TPM key's scheme is
    /// ECDSA with the curve's hash), so the client offers that one (RFC 5246 §7.4.8).
    pub fn for_client(&self) -> Result<(PKey<Private>, Option<&'static CStr>), DtlsError> {
        let signer = match self {
            Self::Pkcs8(der) => return Ok((private_key(der)?, None)),
            Self::Signer(signer) => signer.clone(),
        };
        let sigalgs = match signer.algorithm() {
            SignatureAlgorithm::EcdsaP256Sha256 => c"ECDSA+SHA256",
            SignatureAlgorithm::EcdsaP384Sha384 => c"ECDSA+SHA384",
            other => return Err(DtlsError::UnusableKey(format!("{other:?} is not ECDSA"))),
        };
        let public = PKey::public_key_from_der(signer.public_key_spki())?.ec_key()?;
        let check = public.clone();
        let sign = move |digest: &[u8]| -> Option<Vec<u8>> {
            let signed = signer.sign_digest(digest).map_err(|e| e.to_string());
            let checked = signed.and_then(|der| {
                let sig = EcdsaSig::from_der(&der).map_err(|e| e.to_string())?;
                match sig.verify(digest, &check) {
                    Ok(true) => Ok(der),
                    _ => Err("the signature does not verify".into()),
                }
            });
            checked
                .inspect_err(|e| tracing::warn!(error = %e, "DTLS CertificateVerify not signed"))
                .ok()
        };
        let key = brski_openssl_key::external_ec_key(&public, Arc::new(sign))?;
        Ok((key, Some(sigalgs)))
    }

    /// The key as the DTLS server signs with it: in software only (a held key signs one hash,
    /// and the server may not narrow what its clients sign with).
    fn for_server(&self) -> Result<PKey<Private>, DtlsError> {
        match self {
            Self::Pkcs8(der) => Ok(private_key(der)?),
            Self::Signer(_) => Err(DtlsError::UnusableKey(
                "the DTLS server needs its key in software".into(),
            )),
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({} certificates)", self.chain.len())
    }
}

/// The private key of a PKCS#8 document (RFC 5208 / RFC 5958) as OpenSSL takes it. An EC key
/// on P-256 or P-384 is rebuilt from its scalar and point (RFC 5915): OpenSSL 3.0 reads PKCS#8
/// through its provider decoders, some 35 times slower, and a DTLS client does this once per
/// session. Any other key, or one these lines do not read, goes the general way.
pub fn private_key(pkcs8: &[u8]) -> Result<PKey<Private>, openssl::error::ErrorStack> {
    match ec_private_key(pkcs8) {
        Some(key) => Ok(key),
        None => PKey::private_key_from_pkcs8(pkcs8),
    }
}

/// id-ecPublicKey (RFC 5480 §2.1.1).
const ID_EC_PUBLIC_KEY: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 and secp384r1 (RFC 5480 §2.1.1.1).
const SECP256R1: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// The curve and the ECPrivateKey (RFC 5915 §3) of an EC PrivateKeyInfo (RFC 5958 §2; its
/// attributes and public key, when present, are not read).
fn ec_key_info(pkcs8: &[u8]) -> Result<(der::asn1::ObjectIdentifier, &[u8]), der::Error> {
    use der::{Reader, SliceReader};
    let mut reader = SliceReader::new(pkcs8)?;
    let out = reader.sequence(|r| -> Result<_, der::Error> {
        let _version = u8::decode(r)?;
        let algorithm = spki::AlgorithmIdentifierRef::decode(r)?;
        let key = <&der::asn1::OctetStringRef>::decode(r)?;
        r.drain(r.remaining_len())?;
        if algorithm.oid != ID_EC_PUBLIC_KEY {
            return Err(der::Tag::ObjectIdentifier.value_error().into());
        }
        let curve = algorithm
            .parameters
            .ok_or_else(|| der::Error::from(der::Tag::ObjectIdentifier.value_error()))?
            .decode_as()?;
        Ok((curve, key.as_bytes()))
    })?;
    reader.finish()?;
    Ok(out)
}

/// The scalar, the curve named inside (if any) and the public point (if any) of an
/// ECPrivateKey (RFC 5915 §3).
type EcParts<'a> = (
    &'a [u8],
    Option<der::asn1::ObjectIdentifier>,
    Option<Vec<u8>>,
);

fn ec_private_key_parts(sec1: &[u8]) -> Result<EcParts<'_>, der::Error> {
    use der::asn1::{BitStringRef, ContextSpecific, ObjectIdentifier};
    use der::{Reader, SliceReader, TagNumber};
    let mut reader = SliceReader::new(sec1)?;
    let out = reader.sequence(|r| -> Result<_, der::Error> {
        let version = u8::decode(r)?;
        if version != 1 {
            return Err(der::Tag::Integer.value_error().into());
        }
        let d = <&der::asn1::OctetStringRef>::decode(r)?.as_bytes();
        let curve =
            ContextSpecific::<ObjectIdentifier>::decode_explicit(r, TagNumber(0))?.map(|c| c.value);
        let point = ContextSpecific::<BitStringRef<'_>>::decode_explicit(r, TagNumber(1))?
            .and_then(|c| c.value.as_bytes().map(<[u8]>::to_vec));
        Ok((d, curve, point))
    })?;
    reader.finish()?;
    Ok(out)
}

fn ec_private_key(pkcs8: &[u8]) -> Option<PKey<Private>> {
    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::{EcGroup, EcKey, EcPoint};
    use openssl::nid::Nid;
    let (curve, sec1) = ec_key_info(pkcs8).ok()?;
    let (scalar, named, public) = ec_private_key_parts(sec1).ok()?;
    if named.is_some_and(|n| n != curve) {
        return None;
    }
    let nid = match curve {
        SECP256R1 => Nid::X9_62_PRIME256V1,
        SECP384R1 => Nid::SECP384R1,
        _ => return None,
    };
    let group = EcGroup::from_curve_name(nid).ok()?;
    let d = BigNum::from_slice(scalar).ok()?;
    let mut ctx = BigNumContext::new().ok()?;
    let point = match public {
        Some(bytes) => EcPoint::from_bytes(&group, &bytes, &mut ctx).ok()?,
        None => {
            let mut p = EcPoint::new(&group).ok()?;
            p.mul_generator2(&group, &d, &mut ctx).ok()?;
            p
        }
    };
    let key = EcKey::from_private_components(&group, &d, &point).ok()?;
    // The scalar and the point must belong together (a point given beside the scalar is not
    // trusted to be d·G).
    key.check_key().ok()?;
    PKey::from_ec_key(key).ok()
}

/// Why the DTLS server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DtlsError {
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    #[error("no server certificate")]
    NoCertificate,
    #[error("the key cannot sign over DTLS: {0}")]
    UnusableKey(String),
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
    let key = identity.key.for_server()?;
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

#[cfg(test)]
mod private_key_tests {
    use super::*;
    use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;

    fn same_public_key(a: &PKey<Private>, b: &PKey<Private>) -> bool {
        a.public_key_to_der().expect("der") == b.public_key_to_der().expect("der")
    }

    /// DER of a PrivateKeyInfo holding `sec1` on P-256 (RFC 5958 §2, RFC 5480 §2.1.1).
    fn pkcs8_p256(sec1: &[u8]) -> Vec<u8> {
        let mut alg = vec![
            0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
        ];
        alg.extend([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);
        let mut body = vec![0x02, 0x01, 0x00];
        body.extend(alg);
        body.push(0x04);
        body.push(u8::try_from(sec1.len()).expect("short"));
        body.extend(sec1);
        let len = u8::try_from(body.len()).expect("short");
        let mut out = if len < 0x80 {
            vec![0x30, len]
        } else {
            vec![0x30, 0x81, len]
        };
        out.extend(body);
        out
    }

    #[test]
    fn rfc5915_ec_keys_are_rebuilt_as_openssl_reads_them() {
        for alg in [
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureAlgorithm::EcdsaP384Sha384,
        ] {
            let key = SoftwareKey::generate(alg).expect("key");
            let pkcs8 = key.pkcs8_der().expect("pkcs8");
            let fast = ec_private_key(pkcs8).expect("read without OpenSSL's decoders");
            let general = PKey::private_key_from_pkcs8(pkcs8).expect("general");
            assert!(same_public_key(&fast, &general), "{alg:?}");
            // The key signs what the public key of the certificate verifies.
            let mut signer =
                openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &fast)
                    .expect("signer");
            let sig = signer.sign_oneshot_to_vec(b"m").expect("sign");
            let public = PKey::public_key_from_der(key.public_key_spki()).expect("spki");
            let mut verifier =
                openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &public)
                    .expect("verifier");
            assert!(verifier.verify_oneshot(&sig, b"m").expect("verify"));
        }
        // OpenSSL's own PKCS#8, which names the curve inside the ECPrivateKey too.
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("group");
        let ossl = PKey::from_ec_key(EcKey::generate(&group).expect("ec")).expect("pkey");
        let pkcs8 = ossl.private_key_to_pkcs8().expect("pkcs8");
        assert!(same_public_key(
            &ec_private_key(&pkcs8).expect("read"),
            &ossl
        ));
    }

    #[test]
    fn rfc5915_a_missing_point_is_computed_and_a_foreign_one_refused() {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("group");
        let ec = EcKey::generate(&group).expect("ec");
        let d = ec.private_key().to_vec_padded(32).expect("d");
        // ECPrivateKey { version 1, privateKey } without parameters and publicKey.
        let mut sec1 = vec![0x30, 0x25, 0x02, 0x01, 0x01, 0x04, 0x20];
        sec1.extend(&d);
        let read = ec_private_key(&pkcs8_p256(&sec1)).expect("read");
        let expected = PKey::from_ec_key(ec.clone()).expect("pkey");
        assert!(same_public_key(&read, &expected));
        // With its own point it reads; beside another key's point the scalar is not a key.
        let with_point = |key: &EcKey<Private>| {
            let mut ctx = openssl::bn::BigNumContext::new().expect("ctx");
            let point = key
                .public_key()
                .to_bytes(
                    &group,
                    openssl::ec::PointConversionForm::UNCOMPRESSED,
                    &mut ctx,
                )
                .expect("point");
            let mut body = vec![0x02, 0x01, 0x01, 0x04, 0x20];
            body.extend(&d);
            body.extend([0xa1, 0x44, 0x03, 0x42, 0x00]);
            body.extend(&point);
            let mut sec1 = vec![0x30, u8::try_from(body.len()).expect("short")];
            sec1.extend(body);
            pkcs8_p256(&sec1)
        };
        assert!(ec_private_key(&with_point(&ec)).is_some());
        let other = EcKey::generate(&group).expect("other");
        assert!(ec_private_key(&with_point(&other)).is_none());
    }

    #[test]
    fn other_keys_and_garbage_go_the_general_way() {
        let ed = PKey::generate_ed25519().expect("ed25519");
        let pkcs8 = ed.private_key_to_pkcs8().expect("pkcs8");
        assert!(ec_private_key(&pkcs8).is_none());
        assert!(same_public_key(&private_key(&pkcs8).expect("general"), &ed));
        assert!(private_key(b"\x30\x03\x02\x01\x00").is_err());
        assert!(private_key(&[]).is_err());
    }
}
