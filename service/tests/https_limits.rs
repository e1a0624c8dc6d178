//! Issue 13's attack on request bodies, at small scale against `https::serve_with`: stalled
//! chunked bodies hold at most the body budget, a dripping body is cut off at its deadline,
//! an oversized one is refused before it is read, one peer cannot open connections without
//! bound, and a normal request is still served meanwhile.

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::{profile, self_signed};
use brski_common::tls::{ProvisionalVerifier, certified_key, client_config, server_config};
use brski_service::https::Limits;
use der::Encode;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::client::TlsStream;

type Stream = TlsStream<tokio::net::TcpStream>;

async fn start(limits: Limits) -> std::net::SocketAddr {
    let key = Arc::new(SoftwareKey::generate(SignatureAlgorithm::EcdsaP256Sha256).expect("key"));
    let cert = self_signed(
        &profile::tls_server(&["localhost"], &[]).expect("params"),
        key.as_ref(),
    )
    .expect("cert")
    .to_der()
    .expect("der");
    let signer: Arc<dyn Signer> = key;
    let tls = server_config(certified_key(&[cert], signer).expect("key"), None).expect("tls");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().route(
        "/echo",
        post(|body: Bytes| async move { format!("{}", body.len()) }),
    );
    tokio::spawn(brski_service::https::serve_with(
        listener,
        Arc::new(tls),
        app,
        std::future::pending(),
        limits,
    ));
    addr
}

async fn connect(addr: std::net::SocketAddr) -> std::io::Result<Stream> {
    let config = client_config(None, Arc::new(ProvisionalVerifier)).expect("client");
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// The status line's code of what the server answers on `s`, or `None` when it closes first.
async fn status(s: &mut Stream) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    // Bounded so that a server that never answers fails the test instead of hanging it.
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server neither answered nor closed");
    let text = String::from_utf8_lossy(&buf);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Start a chunked POST and send `bytes` of body, without finishing it.
async fn stalled_body(addr: std::net::SocketAddr, bytes: usize) -> Stream {
    let mut s = connect(addr).await.expect("connect");
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .expect("headers");
    s.write_all(format!("{bytes:x}\r\n").as_bytes())
        .await
        .expect("chunk size");
    s.write_all(&vec![b'x'; bytes]).await.expect("chunk");
    s.write_all(b"\r\n").await.expect("chunk end");
    s.flush().await.expect("flush");
    s
}

async fn small_post(addr: std::net::SocketAddr) -> Option<u16> {
    let mut s = connect(addr).await.expect("connect");
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await
    .expect("write");
    status(&mut s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_hold_at_most_the_budget_and_a_normal_request_is_served() {
    let addr = start(Limits {
        max_body: 4096,
        body_timeout: Duration::from_secs(30),
        body_budget: 4000,
        ..Limits::default()
    })
    .await;
    // Four stalled bodies of 900 bytes fit the budget (3600 of 4000 bytes)...
    let mut stalled = Vec::new();
    for _ in 0..4 {
        stalled.push(stalled_body(addr, 900).await);
    }
    // ...the fifth does not: refused at once with 503, not kept.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = stalled_body(addr, 900).await;
    assert_eq!(status(&mut fifth).await, Some(503));
    // A normal request still fits and is served while the four stall.
    assert_eq!(small_post(addr).await, Some(200));
    // Once the stalled connections go away, their bytes are given back.
    drop(stalled);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = stalled_body(addr, 900).await;
    again.write_all(b"0\r\n\r\n").await.expect("end");
    assert_eq!(status(&mut again).await, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dripping_body_is_cut_off_at_its_deadline_with_408() {
    let addr = start(Limits {
        body_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut s = stalled_body(addr, 1).await;
    // One more byte now and then: the deadline is for the whole body.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let _ = s.write_all(b"1\r\nx\r\n").await;
    }
    assert_eq!(status(&mut s).await, Some(408));
    // The connection is closed after the refusal.
    let mut rest = Vec::new();
    let _closed = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection");
    assert_eq!(small_post(addr).await, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_413_before_it_is_read() {
    let addr = start(Limits {
        max_body: 1024,
        ..Limits::default()
    })
    .await;
    let mut s = connect(addr).await.expect("connect");
    // Content-Length beyond the limit, and none of the body sent.
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2000000000\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(status(&mut s).await, Some(413));
    // Chunked, growing past the limit.
    let mut s = stalled_body(addr, 1000).await;
    s.write_all(b"64\r\n").await.expect("size");
    s.write_all(&[b'y'; 100]).await.expect("chunk");
    s.write_all(b"\r\n").await.expect("end");
    assert_eq!(status(&mut s).await, Some(413));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_sent_whole_before_reading_still_gets_its_413() {
    // As most clients do: the whole body is written, then the answer read. Without the
    // lingering read, the server's close with unread bytes resets the connection and the
    // client sees a broken pipe or a reset instead of the 413.
    let addr = start(Limits {
        max_body: 1024,
        ..Limits::default()
    })
    .await;
    for _ in 0..5 {
        let mut s = connect(addr).await.expect("connect");
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2000\r\n\r\n")
            .await
            .expect("headers");
        // In pieces, as a client writes a body larger than its socket buffer.
        for _ in 0..4 {
            s.write_all(&[b'x'; 500]).await.expect("body");
            s.flush().await.expect("flush");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        assert_eq!(status(&mut s).await, Some(413));
    }
    assert_eq!(small_post(addr).await, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_cannot_open_connections_without_bound() {
    let addr = start(Limits {
        per_peer_connections: 3,
        ..Limits::default()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(connect(addr).await.expect("within the limit"));
    }
    // The fourth is closed at accept: the TLS handshake cannot complete.
    assert!(connect(addr).await.is_err(), "fourth connection admitted");
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(small_post(addr).await, Some(200));
}
