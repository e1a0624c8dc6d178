//! The HTTPS server's bytes on the wire: title-case header names (RFC 9110 §5.1 makes them
//! case-insensitive, but a widely deployed EST client matches `Content-Type` exactly).

use axum::Router;
use axum::routing::get;
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::{profile, self_signed};
use brski_common::tls::{ProvisionalVerifier, certified_key, client_config, server_config};
use der::Encode;
use http::{HeaderValue, StatusCode, header};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(app: Router) -> std::net::SocketAddr {
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
    tokio::spawn(brski_service::https::serve(
        listener,
        Arc::new(tls),
        app,
        std::future::pending(),
    ));
    addr
}

/// One request written by hand; the raw response bytes.
async fn raw_exchange(addr: std::net::SocketAddr, request: &str) -> Vec<u8> {
    let config = client_config(None, Arc::new(ProvisionalVerifier)).expect("client");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake");
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    out
}

#[tokio::test]
async fn rfc9110_5_1_header_names_are_sent_in_title_case() {
    let app = Router::new()
        .route(
            "/cacerts",
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/pkcs7-mime; smime-type=certs-only"),
                    )],
                    "MIIB",
                )
            }),
        )
        .route(
            "/pending",
            get(|| async {
                (
                    StatusCode::ACCEPTED,
                    [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
                    "wait",
                )
            }),
        );
    let addr = start(app).await;
    let raw = raw_exchange(
        addr,
        "GET /cacerts HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("\r\nContent-Type: application/pkcs7-mime; smime-type=certs-only\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nContent-Length: 4\r\n"), "{text}");
    assert!(!text.contains("content-type"), "{text}");

    let raw = raw_exchange(
        addr,
        "GET /pending HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 202 Accepted\r\n"), "{text}");
    assert!(text.contains("\r\nRetry-After: 5\r\n"), "{text}");
}
