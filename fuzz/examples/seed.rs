//! Seed the fuzz corpora: `cargo run --example seed -- corpus-dir` writes, for each target,
//! the RFCs' example artifacts from `vectors/` and artifacts built the way the tests build
//! them (envelopes signed with the vectors' MASA key, CRLs of the owner CA, CSRs, encoded
//! telemetry, GRASP floods, configuration files). `cargo fuzz cmin` then keeps what adds
//! coverage. See fuzz/README.md.

use brski_common::audit::{self, AuditEvent, AuditLog};
use brski_common::discovery::grasp::Flood;
use brski_common::envelope::{self, Format};
use brski_common::est;
use brski_common::keys::{SignatureAlgorithm, Signer, SoftwareKey};
use brski_common::pki::{self, crl};
use brski_common::telemetry::{ReasonContext, StatusTelemetry};
use brski_common::test_vectors::{bytes, cert, read};
use brski_common::voucher::{Assertion, DateTime, Nonce, Voucher, VoucherRequest};
use der::Encode;
use std::collections::BTreeMap;
use std::path::Path;

type Seeds = BTreeMap<&'static str, Vec<(String, Vec<u8>)>>;

fn key(rel: &str) -> SoftwareKey {
    SoftwareKey::from_pem(&String::from_utf8(read(rel)).expect("utf-8")).expect("vector key")
}

fn der(rel: &str) -> Vec<u8> {
    cert(rel).to_der().expect("encodes")
}

fn voucher() -> Voucher {
    let mut v = Voucher::new("00-D0-E5-F2-00-02");
    v.assertion = Some(Assertion::Logged);
    v.created_on = Some(DateTime::parse("2021-04-13T17:43:24.589-04:00").expect("date"));
    v.expires_on = Some(DateTime::parse("2099-01-01T00:00:00Z").expect("date"));
    v.nonce = Some(Nonce::from("-_XE9zK9q8Ll1qylMtLKeg"));
    v.pinned_domain_cert = Some(der("rfc8995/C.1.4-registrar.crt.pem"));
    v.idevid_issuer = Some(vec![4, 22, 48, 20, 128, 18, 1, 2, 3]);
    v.domain_cert_revocation_checks = Some(false);
    v.est_domain = Some("https://registrar.example".into());
    v
}

fn request() -> VoucherRequest {
    let mut r = VoucherRequest::new("00-D0-E5-F2-00-02");
    r.assertion = Some(Assertion::Proximity);
    r.created_on = Some(DateTime::parse("2021-04-13T21:43:23.787Z").expect("date"));
    r.nonce = Some(Nonce::from(vec![1, 2, 3, 4, 5, 6, 7, 8]));
    r.proximity_registrar_cert = Some(der("rfc8995/C.1.4-registrar.crt.pem"));
    r.prior_signed_voucher_request = Some(bytes("rfc8995/C.2.1-pledge-voucher-request.cms.b64"));
    r
}

fn add(seeds: &mut Seeds, target: &'static str, name: &str, data: Vec<u8>) {
    seeds
        .entry(target)
        .or_default()
        .push((name.replace('/', "_"), data));
}

/// Vector files decoded to their artifact (headers stripped, base64/hex/PEM decoded).
fn vectors(seeds: &mut Seeds, target: &'static str, rels: &[&str]) {
    for rel in rels {
        add(seeds, target, rel, bytes(rel));
    }
}

fn envelopes(seeds: &mut Seeds) {
    vectors(
        seeds,
        "envelope_cms",
        &[
            "rfc8995/C.2.1-pledge-voucher-request.cms.b64",
            "rfc8995/C.2.2-registrar-voucher-request.cms.b64",
            "rfc8995/C.2.3-voucher.cms.b64",
            "rfc8366bis/A.2-voucher-request.cms.b64",
            "rfc8366bis/A.3-voucher.cms.b64",
            "est-coaps/A.1-crts-response-pkcs7.hex",
        ],
    );
    vectors(
        seeds,
        "envelope_jws",
        &[
            "jws-voucher/8.1-pvr.json",
            "jws-voucher/8.2-rvr.json",
            "jws-voucher/8.3-voucher.json",
            "rfc8366bis/A.4-jws-voucher.json",
        ],
    );
    vectors(
        seeds,
        "envelope_cose",
        &[
            "cbrski/C.3-pvr.cose.hex",
            "cbrski/C.4-rvr.cose.hex",
            "cbrski/C.5-voucher.cose.hex",
        ],
    );
    // Vouchers signed by the RFC 8995 MASA key, so that they verify against C.1.1.
    let masa = key("rfc8995/C.1.2-masa.key.pem");
    let chain = [
        cert("rfc8995/C.1.2-masa.crt.pem"),
        cert("rfc8995/C.1.1-manufacturer-ca.crt.pem"),
    ];
    for (format, target) in [
        (Format::Cms, "envelope_cms"),
        (Format::Jws, "envelope_jws"),
        (Format::Cose, "envelope_cose"),
    ] {
        let payload = voucher().to_payload(format).expect("encodes");
        for (name, carried) in [("signed-chain", &chain[..]), ("signed-bare", &chain[..1])] {
            let signed = envelope::sign(format, &payload, &masa, carried).expect("signs");
            add(seeds, target, name, signed.clone());
            if format == Format::Cms {
                // The pledge's message, as the registrar and the pledge receive it.
                add(
                    seeds,
                    "brski_messages",
                    "pledge-cms-signed",
                    [&[6u8][..], &signed].concat(),
                );
            }
        }
    }
    let ed = SoftwareKey::generate(SignatureAlgorithm::Ed25519).expect("key");
    let name = pki::parse_name("CN=Ed25519 pledge,serialNumber=00-D0-E5-F2-00-02").expect("name");
    let params = pki::CertificateParams::new(name, time::Duration::days(1)).expect("params");
    let ed_cert = pki::self_signed(&params, &ed).expect("certificate");
    for format in [Format::Cms, Format::Jws, Format::Cose] {
        let payload = request().to_payload(format).expect("encodes");
        let signed =
            envelope::sign(format, &payload, &ed, std::slice::from_ref(&ed_cert)).expect("signs");
        let target = ["envelope_cms", "envelope_jws", "envelope_cose"][format as usize];
        add(seeds, target, "ed25519-request", signed);
    }
}

fn messages(seeds: &mut Seeds) {
    // The first byte: party * 3 + format (0 registrar, 1 MASA, 2 pledge; CMS, JWS, COSE).
    let by_party = [
        [
            "rfc8995/C.2.1-pledge-voucher-request.cms.b64",
            "jws-voucher/8.1-pvr.json",
            "cbrski/C.3-pvr.cose.hex",
        ],
        [
            "rfc8995/C.2.2-registrar-voucher-request.cms.b64",
            "jws-voucher/8.2-rvr.json",
            "cbrski/C.4-rvr.cose.hex",
        ],
        [
            "rfc8995/C.2.3-voucher.cms.b64",
            "jws-voucher/8.3-voucher.json",
            "cbrski/C.5-voucher.cose.hex",
        ],
    ];
    for (party, rels) in by_party.iter().enumerate() {
        for (format, rel) in rels.iter().enumerate() {
            let selector = (party * 3 + format) as u8;
            add(
                seeds,
                "brski_messages",
                rel,
                [&[selector][..], &bytes(rel)].concat(),
            );
        }
    }
    let rvr = bytes("rfc8995/C.2.2-registrar-voucher-request.cms.b64");
    add(
        seeds,
        "brski_messages",
        "rvr-prior-required",
        [&[0x83][..], &rvr].concat(),
    );
}

fn payloads(seeds: &mut Seeds) {
    vectors(
        seeds,
        "voucher_json",
        &[
            "rfc8995/C.2.1-pledge-voucher-request.econtent.json",
            "rfc8995/C.2.2-registrar-voucher-request.econtent.json",
            "rfc8995/C.2.3-voucher.econtent.json",
            "rfc8995/3.3-example1-pvr.json",
            "rfc8995/3.3-example2-rvr.json",
            "rfc8995/3.3-example3-rvr-nonceless.json",
            "rfc8995/5.6-voucher-example.json",
            "rfc8366/5.2-voucher-ephemeral.json",
            "rfc8366/5.2-voucher-nonceless.json",
            "rfc8366bis/8.3-voucher-ephemeral.json",
            "rfc8366bis/8.3-voucher-nonceless.json",
            "rfc8366bis/8.3-voucher-with-extension.json",
            "jws-voucher/8.1-pvr.payload.json",
            "jws-voucher/8.2-rvr.payload.json",
            "jws-voucher/8.3-voucher.payload.json",
        ],
    );
    vectors(
        seeds,
        "voucher_cbor",
        &[
            "cbrski/C.3-pvr.payload.hex",
            "cbrski/C.4-rvr.payload.hex",
            "cbrski/C.5-voucher.payload.hex",
        ],
    );
    for (format, target) in [
        (Format::Jws, "voucher_json"),
        (Format::Cose, "voucher_cbor"),
    ] {
        add(
            seeds,
            target,
            "voucher",
            voucher().to_payload(format).expect("encodes"),
        );
        add(
            seeds,
            target,
            "request",
            request().to_payload(format).expect("encodes"),
        );
    }
}

fn pki_seeds(seeds: &mut Seeds) {
    vectors(
        seeds,
        "csr",
        &[
            "est-coaps/A.2-sen-request-csr.hex",
            "est-coaps/A.3-skg-request-csr.hex",
            "rfc7030/A.3-simpleenroll-request.b64",
            "csr-attestation/sample-tcgAttestTpmCertify.csr.pem",
        ],
    );
    let body = read("rfc7030/A.3-simpleenroll-request.b64");
    add(
        seeds,
        "csr",
        "simpleenroll-body",
        body.split(|&b| b == b'\n')
            .skip(1)
            .flatten()
            .copied()
            .collect(),
    );
    let pledge = key("rfc8995/C.1.5-pledge-idevid.key.pem");
    let subject = pki::parse_name("CN=pledge,serialNumber=00-D0-E5-F2-00-02").expect("name");
    let params = pki::CsrParams {
        challenge_password: Some("tls-unique".into()),
        extensions: vec![crl::distribution_point_extension("http://ca.example/crl").expect("ext")],
        attributes: Vec::new(),
    };
    add(
        seeds,
        "csr",
        "built",
        pki::build_csr(&subject, &pledge, &params).expect("csr"),
    );

    let chains: &[&[&str]] = &[
        &["rfc8995/C.1.5-pledge-idevid.crt.pem"],
        &[
            "rfc8995/C.2.1-pvr-signer-idevid.crt.pem",
            "rfc8995/C.1.1-manufacturer-ca.crt.pem",
        ],
        &[
            "rfc8995/C.1.4-registrar.crt.pem",
            "rfc8995/C.1.3-owner-ca.crt.pem",
        ],
        &[
            "rfc8995/C.1.2-masa.crt.pem",
            "rfc8995/C.1.1-manufacturer-ca.crt.pem",
        ],
        &[
            "rfc8366bis/A.1-idevid-00-D0-E5-F2-00-02.crt.pem",
            "rfc8995/C.1.1-manufacturer-ca.crt.pem",
        ],
        &["rfc8366bis/A.1-vendor-ca-rsa.crt.pem"],
        &["cbrski/C-pledge.crt.hex", "cbrski/C-masa_ca.crt.hex"],
        &["cbrski/C-registrar.crt.hex", "cbrski/C-domain_ca.crt.hex"],
        &["cbrski/C-masa.crt.hex"],
    ];
    for chain in chains {
        let data: Vec<u8> = chain.iter().flat_map(|rel| bytes(rel)).collect();
        add(seeds, "certificate", chain[0], data);
    }
    for rel in [
        "jws-voucher/8.1-pvr.signer-key-and-chain.pem",
        "jws-voucher/8.2-rvr.signer-key-and-chain.pem",
    ] {
        let (_, items) = brski_common::input::artifact_bytes(&read(rel)).expect("pem");
        add(seeds, "certificate", rel, items.concat());
    }

    // CRLs of the owner CA (an anchor of the crl target), one of them listing C.1.4.
    let owner = cert("rfc8995/C.1.3-owner-ca.crt.pem");
    let owner_key = key("rfc8995/C.1.3-owner-ca.key.pem");
    let registrar = cert("rfc8995/C.1.4-registrar.crt.pem");
    let now = time::OffsetDateTime::now_utc();
    let serial = registrar
        .tbs_certificate()
        .serial_number()
        .as_bytes()
        .to_vec();
    let revoked: [&[&[u8]]; 2] = [&[], &[&serial, &[1, 2, 3]]];
    for (i, list) in revoked.iter().enumerate() {
        let next = (i == 1).then(|| now + time::Duration::days(3650));
        let der = crl::build_crl(&owner, &owner_key, list, now, next).expect("crl");
        add(seeds, "crl", &format!("owner-ca-{i}"), der);
    }
}

fn est_seeds(seeds: &mut Seeds) {
    let certs_only = [
        "rfc7030/A.1-cacerts-response.b64",
        "rfc7030/A.3-simpleenroll-response.b64",
        "est-coaps/A.1-crts-response-pkcs7.hex",
        "est-coaps/A.2-sen-response-pkcs7.hex",
        "est-coaps/A.3-skg-response-part2-pkcs7.hex",
    ];
    vectors(seeds, "est_certs_only", &certs_only);
    let csrattrs = [
        "rfc7030/A.2-csrattrs-response.b64",
        "rfc7030/4.5.2-csrattrs-example.b64",
        "est-coaps/A.4-att-response-csrattrs.hex",
    ];
    vectors(seeds, "est_csrattrs", &csrattrs);
    // The base64 bodies as sent over HTTP (header line removed).
    for (target, rel) in certs_only[..2]
        .iter()
        .map(|r| ("est_certs_only", r))
        .chain(csrattrs[..2].iter().map(|r| ("est_csrattrs", r)))
    {
        let text = String::from_utf8(read(rel)).expect("utf-8");
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\r\n");
        add(seeds, target, &format!("{rel}-body"), body.into_bytes());
    }
    vectors(
        seeds,
        "est_multipart",
        &[
            "est-coaps/A.3-skg-response-multipart.hex",
            "est-coaps/5.3-multipart-example.hex",
        ],
    );
    let certs = [
        cert("rfc8995/C.1.4-registrar.crt.pem"),
        cert("rfc8995/C.1.3-owner-ca.crt.pem"),
    ];
    add(
        seeds,
        "est_multipart",
        "crts",
        est::encode_crts_multipart(&certs).expect("encodes"),
    );
}

fn status_seeds(seeds: &mut Seeds) {
    vectors(
        seeds,
        "telemetry",
        &[
            "rfc8995/5.7-voucher-status-example.json",
            "rfc8995/5.9.4-enrollstatus-example.json",
            "cbrski/B.1-enrollstatus-success.cbor.hex",
            "cbrski/B.1-enrollstatus-failure.cbor.hex",
            "cbrski/B.2-voucher-status.cbor.hex",
        ],
    );
    let failure = StatusTelemetry::failure("no voucher").with_reason_context(
        ReasonContext::new()
            .with("attempt", 3)
            .with("peer", "fe80::1"),
    );
    add(
        seeds,
        "telemetry",
        "failure.json",
        failure.to_json().expect("json"),
    );
    add(
        seeds,
        "telemetry",
        "failure.cbor",
        failure.to_cbor().expect("cbor"),
    );

    vectors(seeds, "audit", &["rfc8995/5.8.1-audit-log-example.json"]);
    let event = AuditEvent {
        date: "2019-05-15T17:25:55.644-04:00".into(),
        domain_id: "BduJhdHPpfhQLyponf48JzXSGZ8=".into(),
        nonce: None,
        assertion: audit::Assertion::from_text("logged"),
        truncated: Some(2),
    };
    let log = AuditLog::new(vec![event.clone(), event]);
    add(seeds, "audit", "nonceless", log.to_json().expect("json"));

    let address = "fe80::1".parse().expect("address");
    for (name, flood) in [
        ("an-proxy", Flood::an_proxy(7, address, 4443)),
        (
            "an-join-registrar",
            Flood::an_join_registrar(8, address, 8443),
        ),
    ] {
        add(seeds, "grasp", name, flood.encode().expect("cbor"));
    }
}

fn file_seeds(seeds: &mut Seeds) {
    // Files as they are on disk: comment headers, PEM, base64, hex, JSON.
    for rel in [
        "rfc8995/C.1.1-manufacturer-ca.crt.pem",
        "rfc8995/C.2.3-voucher.cms.b64",
        "rfc8995/C.2.1-pledge-voucher-request.econtent.json",
        "rfc8995/5.8.1-audit-log-example.json",
        "rfc8995/5.7-voucher-status-example.json",
        "jws-voucher/8.3-voucher.json",
        "cbrski/C.5-voucher.cose.hex",
        "cbrski/C.3-pvr.payload.hex",
        "cbrski/B.2-voucher-status.cbor.hex",
        "est-coaps/A.2-sen-request-csr.hex",
        "est-coaps/A.3-skg-response-multipart.hex",
        "rfc7030/A.1-cacerts-response.b64",
        "rfc7030/A.2-csrattrs-response.b64",
        "csr-attestation/sample-tcgAttestTpmCertify.csr.pem",
        "jws-voucher/8.1-pvr.signer-key-and-chain.pem",
    ] {
        add(seeds, "inspect", rel, read(rel));
    }
    add(
        seeds,
        "inspect",
        "C.2.3-der",
        bytes("rfc8995/C.2.3-voucher.cms.b64"),
    );

    let masa = key("rfc8995/C.1.2-masa.key.pem");
    for rel in [
        "rfc8995/C.1.2-masa.key.pem",
        "rfc8366bis/A.1-vendor-ca-rsa.key.pem",
        "cbrski/C-pledge.key.pem",
    ] {
        add(seeds, "keys", rel, read(rel));
    }
    add(
        seeds,
        "keys",
        "masa-pkcs8.der",
        masa.to_pkcs8_der().to_vec(),
    );
    add(
        seeds,
        "keys",
        "masa-pkcs8.pem",
        masa.to_pkcs8_pem().into_bytes(),
    );
    add(
        seeds,
        "keys",
        "ecdsa-der-signature",
        masa.sign(b"seed").expect("signs"),
    );

    let configs: [(u8, &str, &str); 3] = [
        (
            0,
            "pledge.toml",
            "serial-number = \"00-D0-E5-F2-00-02\"\nidevid-cert = \"idevid.crt.pem\"\n\
             idevid-key = \"idevid.key.pem\"\nmanufacturer-anchor = \"ca.pem\"\n\
             state-dir = \"state\"\nregistrar = \"https://[fe80::1%25eth0]:8443\"\n\
             voucher-format = \"cose\"\ntrust-clock = false\n\n[tpm]\n\
             tcti = \"swtpm:host=127.0.0.1,port=2321\"\nidevid-handle = 0x81020000\n\
             ldevid-handles = [0x81020001, 0x81020002]\n",
        ),
        (
            1,
            "masa.toml",
            "listen = \"[::]:9443\"\nmasa-url = \"masa.example:9443\"\nownership = \"first-owner\"\n\
             database = \"masa.db\"\nvendor-ca-cert = \"ca.crt.pem\"\nvendor-ca-key = \"ca.key.pem\"\n\
             signer-cert = \"s.crt.pem\"\nsigner-key = \"s.key.pem\"\ntls-cert = \"t.crt.pem\"\n\
             tls-key = \"t.key.pem\"\nnonceless-voucher-lifetime = 1200\nrequire-client-cert = true\n",
        ),
        (
            2,
            "registrar.toml",
            "listen = \"127.0.0.1:8443\"\ndomain = \"example.com\"\naccept = \"auto\"\n\
             retry-after = 7\nregistrar-cert = \"r.crt.pem\"\nregistrar-key = \"r.key.pem\"\n\
             domain-ca-cert = \"ca.crt.pem\"\ndomain-ca-key = \"ca.key.pem\"\nmasa-ca = \"m.pem\"\n\
             database = \"r.db\"\nmasa-timeout = 30\nldevid-validity-days = 90\n\
             ldevid-subject = \"CN={serial},O=Example \\\"Inc\\\"\"\n\
             csr-subject-must-match-idevid = false\nallow-expired-idevid = true\n\
             use-nonceless-vouchers = \"always\"\n\n[[manufacturer]]\nca = \"m0.crt.pem\"\n\
             voucher-ca = \"m0.voucher.pem\"\nmasa-url = \"masa.example:9443\"\n\
             masa-url-overrides = true\nallow-expired-idevid = false\n\
             serial-number-from = \"hardware-module-name\"\n\n[[masa]]\n\
             url = \"masa.example:9443\"\nca = \"masa.pem\"\nclient-cert = \"c.pem\"\n\
             client-key = \"k.pem\"\nusername = \"u\"\npassword = \"p\"\n\n[audit-log]\n\
             fetch = false\nmax-prior-owners = 2\nallow-nonceless-entries = true\n\
             require-own-entry = false\n",
        ),
    ];
    for (selector, name, text) in configs {
        add(
            seeds,
            "config",
            name,
            [&[selector][..], text.as_bytes()].concat(),
        );
    }

    for (i, text) in [
        "CN=Custom-ER Registrar+serialNumber=JADA123456789,O=Example \\\"Inc\\\",C=NL",
        "2.5.4.3=#0c0474657374,OU=a\\2cb",
        "CN={serial},O=Example",
        "masa.example:9443",
        "https://masa.example/.well-known/brski",
        "https://[fe80::1]:8443/",
        "[fe80::1%25eth0]:4443",
        "2021-04-13T17:43:23.747-04:00",
        "application/voucher-cms+json; charset=utf-8",
        "application/pkcs7-mime; smime-type=certs-only",
        "ES384",
    ]
    .iter()
    .enumerate()
    {
        add(
            seeds,
            "text_fields",
            &i.to_string(),
            text.as_bytes().to_vec(),
        );
    }
}

/// CoAP requests as a pledge sends them over DTLS, framed `[op][len][datagram]` for the
/// coap_exchange target: a discovery GET, a voucher request in Block1 pieces, a duplicate, an
/// ACK and a reset.
fn coap_seeds(seeds: &mut Seeds) {
    use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
    fn packet(mid: u16, method: RequestType, path: &[&str], payload: &[u8]) -> Packet {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.code = MessageClass::Request(method);
        p.header.message_id = mid;
        p.set_token(mid.to_be_bytes().to_vec());
        for seg in path {
            p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
        }
        p.payload = payload.to_vec();
        p
    }
    fn frame(out: &mut Vec<u8>, op: u8, p: &Packet) {
        let bytes = p.to_bytes().expect("encodes");
        out.push(op);
        out.push(u8::try_from(bytes.len()).expect("short datagram"));
        out.extend_from_slice(&bytes);
    }
    let mut discovery = packet(1, RequestType::Get, &[".well-known", "core"], b"");
    discovery.add_option(CoapOption::UriQuery, b"rt=brski*".to_vec());
    let mut one = Vec::new();
    frame(&mut one, 1, &discovery);
    frame(&mut one, 1, &discovery);
    add(seeds, "coap_exchange", "discovery", one);

    let mut blocks = Vec::new();
    for num in 0u8..3 {
        let mut p = packet(
            10 + u16::from(num),
            RequestType::Post,
            &[".well-known", "brski", "rv"],
            &[0xa5; 64],
        );
        p.add_option(CoapOption::ContentFormat, vec![0x03, 0x44]);
        let more = if num < 2 { 0x08 } else { 0 };
        p.add_option(CoapOption::Block1, vec![(num << 4) | more | 2]);
        frame(&mut blocks, u8::from(num == 2), &p);
    }
    let mut get = packet(20, RequestType::Get, &[".well-known", "est", "crts"], b"");
    get.add_option(CoapOption::Block2, vec![0x10 | 1]);
    frame(&mut blocks, 8, &get);
    let mut ack = Packet::new();
    ack.header.set_type(MessageType::Acknowledgement);
    ack.header.message_id = 0x1000;
    frame(&mut blocks, 0, &ack);
    let mut reset = Packet::new();
    reset.header.set_type(MessageType::Reset);
    reset.header.message_id = 0x1001;
    frame(&mut blocks, 40, &reset);
    add(seeds, "coap_exchange", "block1-voucher-request", blocks);

    // coap_client: `[body size]` then the registrar's answers, op bit 0 taking the message ID
    // the client last sent: a piggybacked 2.04 voucher; an empty ACK then a separate answer; a
    // Block1 upload answered 2.31 then a Block2 answer in two blocks.
    fn answer(
        kind: MessageType,
        code: u8,
        options: &[(CoapOption, Vec<u8>)],
        payload: &[u8],
    ) -> Packet {
        let mut p = Packet::new();
        p.header.set_type(kind);
        p.header.code = MessageClass::from(code);
        p.set_token(vec![0x42]);
        for (o, v) in options {
            p.add_option(*o, v.clone());
        }
        p.payload = payload.to_vec();
        p
    }
    let voucher = answer(
        MessageType::Acknowledgement,
        0x44,
        &[(CoapOption::ContentFormat, vec![0x03, 0x44])],
        &[0xd2, 0x84, 0x40],
    );
    let mut piggybacked = vec![0];
    frame(&mut piggybacked, 1, &voucher);
    add(seeds, "coap_client", "piggybacked-voucher", piggybacked);

    let mut separate = vec![0];
    let mut empty = Packet::new();
    empty.header.set_type(MessageType::Acknowledgement);
    frame(&mut separate, 1, &empty);
    let mut late = answer(MessageType::Confirmable, 0x44, &[], b"late");
    late.header.message_id = 0x7777;
    frame(&mut separate, 2, &late);
    add(seeds, "coap_client", "separate-answer", separate);

    let mut blockwise = vec![50];
    for num in 0u8..2 {
        let cont = answer(
            MessageType::Acknowledgement,
            0x5f,
            &[(CoapOption::Block1, vec![(num << 4) | 0x08 | 2])],
            b"",
        );
        frame(&mut blockwise, 1, &cont);
    }
    let first = answer(
        MessageType::Acknowledgement,
        0x44,
        &[(CoapOption::Block2, vec![0x08 | 2])],
        &[0x30; 64],
    );
    frame(&mut blockwise, 1, &first);
    let second = answer(
        MessageType::Acknowledgement,
        0x44,
        &[(CoapOption::Block2, vec![0x10 | 2])],
        &[0x31; 10],
    );
    frame(&mut blockwise, 1, &second);
    add(seeds, "coap_client", "block1-then-block2", blockwise);

    // A join proxy's discovery answer, for the same target's jp parsing.
    let jp = answer(
        MessageType::NonConfirmable,
        0x45,
        &[(CoapOption::ContentFormat, vec![40])],
        b"<>;brski-jp=5684,<>;brski-jp=\"8485\"",
    );
    let mut discovery = vec![0];
    frame(&mut discovery, 0, &jp);
    add(seeds, "coap_client", "join-proxy-answer", discovery);
}

fn main() {
    let out = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let mut seeds = Seeds::new();
    envelopes(&mut seeds);
    messages(&mut seeds);
    payloads(&mut seeds);
    pki_seeds(&mut seeds);
    est_seeds(&mut seeds);
    status_seeds(&mut seeds);
    file_seeds(&mut seeds);
    coap_seeds(&mut seeds);
    vectors(
        &mut seeds,
        "jpy",
        &[
            "join-proxy/A-jpy-pledge-to-registrar.hex",
            "join-proxy/A-jpy-registrar-to-proxy.hex",
        ],
    );
    for (target, files) in &seeds {
        let dir = Path::new(&out).join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        for (name, data) in files {
            std::fs::write(dir.join(format!("seed-{name}")), data).expect("write a seed");
        }
        println!("{target}: {} seeds", files.len());
    }
}
