//! `pledge est`: a plain EST client (RFC 7030) for devices and hosts that already trust their
//! EST server, with no voucher: the most common use of EST. It shares the pledge's EST steps
//! ([`crate::enroll`]) and link; the server is authenticated with an explicit trust anchor
//! database (RFC 7030 §3.6.1) and must carry id-kp-cmcRA, the client with its certificate
//! (§3.3.2), whose key is in a file or a TPM 2.0, or not at all (§4.1.1: `/cacerts`).

use crate::bootstrap::{anchored_credentials, anonymous_credentials, describe};
use crate::enroll::{self, CsrRequest};
use crate::error::{Failure, Step};
use crate::session::{Session, Transport};
use brski_common::brski::paths;
use brski_common::keys::{Signer, SoftwareKey};
use brski_common::pki::TimeCheck;
use brski_service::files::{certs_to_pem, read_certs, read_key, write_atomic};
use brski_service::https_client::{Scheme, Target};
use der::Encode;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::name::Name;

/// The EST operations (RFC 7030 §4).
#[derive(Debug, clap::Subcommand)]
pub enum EstOp {
    /// GET /cacerts (RFC 7030 §4.1): the CA certificates, as PEM, to --out or stdout.
    Cacerts {
        #[command(flatten)]
        server: ServerArgs,
        /// Write the certificates here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// GET /csrattrs (RFC 7030 §4.5): what the server wants a CSR to hold, one OID per line.
    Csrattrs {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// POST /simpleenroll (RFC 7030 §4.2.1): a new key and its certificate, for --subject (by
    /// default the subject of --cert), with what /csrattrs asks for.
    Enroll {
        #[command(flatten)]
        server: ServerArgs,
        /// The subject to ask for, as RFC 4514 text (`CN=host.example.net,O=Example`).
        #[arg(long, value_name = "DN")]
        subject: Option<String>,
        #[command(flatten)]
        out: OutArgs,
    },
    /// POST /simplereenroll (RFC 7030 §4.2.2): renew --cert: the same subject and
    /// subjectAltName, a new key.
    Reenroll {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        out: OutArgs,
    },
}

/// The server, how it is trusted, and how the client authenticates.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The EST server: https://HOST:PORT, or coaps://HOST:PORT (EST over CoAP, RFC 9148).
    #[arg(long, value_name = "URL")]
    server: String,
    /// The explicit trust anchors (PEM) the server's certificate must validate to (RFC 7030
    /// §3.6.1); the server's certificate must also carry id-kp-cmcRA.
    #[arg(long, value_name = "FILE")]
    trust_anchor: PathBuf,
    /// The client's certificate (PEM; its chain may follow), for TLS client authentication
    /// (RFC 7030 §3.3.2), with --key or --tpm. Without it the client does not authenticate,
    /// which is enough for /cacerts (§4.1.1; over HTTPS).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert", conflicts_with = "tpm")]
    key: Option<PathBuf>,
    /// The client certificate's key is in the TPM at this TCTI (`device:/dev/tpmrm0`; build
    /// with --features tpm); new keys are made there too.
    #[arg(long, value_name = "TCTI", requires = "cert")]
    tpm: Option<String>,
    /// Persistent handle of the client certificate's key in the TPM.
    #[arg(long, value_name = "HANDLE", value_parser = crate::parse_handle, requires = "tpm")]
    tpm_handle: Option<u32>,
    /// Give up on a request the server keeps answering with 202 after this many seconds
    /// (RFC 7030 §4.2.3).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    max_wait: u64,
}

/// Where a new certificate and key go.
#[derive(Debug, clap::Args)]
pub struct OutArgs {
    /// The new certificate (PEM), the chain up to the CA after it.
    #[arg(long, value_name = "FILE")]
    out_cert: PathBuf,
    /// The new private key (PKCS#8 PEM, mode 0600).
    #[arg(long, value_name = "FILE", required_unless_present = "new_tpm_handle")]
    out_key: Option<PathBuf>,
    /// With --tpm: make the new key in the TPM at this persistent handle instead of a file.
    #[arg(long, value_name = "HANDLE", value_parser = crate::parse_handle, conflicts_with = "out_key")]
    new_tpm_handle: Option<u32>,
}

/// A connected client: the session, and the certificate it authenticated with, if any.
struct Client {
    session: Session,
    cert: Option<Certificate>,
    tpm: Option<String>,
}

impl Client {
    /// The certificate it authenticated with, which `what` needs.
    fn cert(&self, what: &str) -> Result<&Certificate, Failure> {
        self.cert
            .as_ref()
            .ok_or_else(|| config(format!("{what} needs --cert and --key (or --tpm)")))
    }
}

fn config(e: impl std::fmt::Display) -> Failure {
    Failure::Config(e.to_string())
}

impl ServerArgs {
    async fn connect(&self) -> Result<Client, Failure> {
        let (scheme, target) = Target::parse_with_scheme(&self.server).map_err(config)?;
        let transport = match scheme {
            Scheme::Https => Transport::Https,
            Scheme::Coaps => Transport::Coaps,
        };
        let anchors = read_certs(&self.trust_anchor).map_err(config)?;
        if anchors.is_empty() {
            return Err(config(format!(
                "{}: no certificate",
                self.trust_anchor.display()
            )));
        }
        let Some(cert_path) = &self.cert else {
            let credentials = anonymous_credentials(anchors, TimeCheck::Now);
            let session = Session::open(&target, transport, &credentials).await?;
            return Ok(Client {
                session,
                cert: None,
                tpm: None,
            });
        };
        let chain = read_certs(cert_path).map_err(config)?;
        let cert = chain
            .first()
            .cloned()
            .ok_or_else(|| config(format!("{}: no certificate", cert_path.display())))?;
        let spki = cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(config)?;
        let key: Arc<dyn Signer> = match (&self.key, &self.tpm) {
            (Some(path), _) => {
                let key = read_key(path).map_err(config)?;
                if key.public_key_spki() != spki {
                    return Err(config(format!(
                        "{}: the key does not belong to {}",
                        path.display(),
                        cert_path.display()
                    )));
                }
                Arc::new(key)
            }
            (None, Some(tcti)) => {
                let handle = self
                    .tpm_handle
                    .ok_or_else(|| config("--tpm needs --tpm-handle"))?;
                crate::tpm::open(tcti, handle, &spki, "client")?
            }
            (None, None) => return Err(config("--key or --tpm is required")),
        };
        let chain_der = chain
            .iter()
            .map(Encode::to_der)
            .collect::<Result<Vec<_>, _>>()
            .map_err(config)?;
        let credentials = anchored_credentials(&chain_der, key, anchors, TimeCheck::Now);
        let session = Session::open(&target, transport, &credentials).await?;
        Ok(Client {
            session,
            cert: Some(cert),
            tpm: self.tpm.clone(),
        })
    }
}

/// Run one operation; what to print on success.
pub async fn run(op: &EstOp) -> Result<String, Failure> {
    match op {
        EstOp::Cacerts { server, out } => {
            let mut c = server.connect().await?;
            let cacerts = enroll::cacerts(&mut c.session, TimeCheck::Now).await?;
            let pem = certs_to_pem(&cacerts);
            match out {
                Some(path) => {
                    write_atomic(path, pem.as_bytes(), 0o644).map_err(storage)?;
                    Ok(format!(
                        "{} CA certificate(s) written to {}",
                        cacerts.len(),
                        path.display()
                    ))
                }
                None => Ok(pem.trim_end().to_string()),
            }
        }
        EstOp::Csrattrs { server } => {
            let mut c = server.connect().await?;
            Ok(match enroll::csrattrs_answer(&mut c.session).await?? {
                Some(attrs) => attrs
                    .oids()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
                None => String::new(),
            })
        }
        EstOp::Enroll {
            server,
            subject,
            out,
        } => {
            let mut c = server.connect().await?;
            let subject = match subject {
                Some(dn) => {
                    Name::from_str(dn).map_err(|e| config(format!("--subject {dn:?}: {e}")))?
                }
                None => c
                    .cert("enroll without --subject")?
                    .tbs_certificate()
                    .subject()
                    .clone(),
            };
            let step = (Step::SimpleEnroll, paths::SIMPLE_ENROLL);
            obtain(&mut c, step, subject, Vec::new(), out, server.max_wait).await
        }
        EstOp::Reenroll { server, out } => {
            let mut c = server.connect().await?;
            // RFC 7030 §4.2.2: the same Subject and SubjectAltName as the certificate renewed.
            let renewed = c.cert("reenroll")?;
            let subject = renewed.tbs_certificate().subject().clone();
            let san = renewed
                .tbs_certificate()
                .extensions()
                .into_iter()
                .flatten()
                .filter(|e| e.extn_id == <SubjectAltName as const_oid::AssociatedOid>::OID)
                .cloned()
                .collect();
            let step = (Step::SimpleReenroll, paths::SIMPLE_REENROLL);
            obtain(&mut c, step, subject, san, out, server.max_wait).await
        }
    }
}

fn storage(e: impl std::fmt::Display) -> Failure {
    Failure::Storage(e.to_string())
}

/// /cacerts, /csrattrs, a new key, then the enrollment at `path`; the certificate is checked
/// to be for the new key and to validate to the CA certificates, then written out.
async fn obtain(
    c: &mut Client,
    (step, path): (Step, &str),
    subject: Name,
    mut extensions: Vec<x509_cert::ext::Extension>,
    out: &OutArgs,
    max_wait: u64,
) -> Result<String, Failure> {
    // RFC 7030 §4.1.3: the CA certificates are the trust anchor for what is issued.
    let cacerts = enroll::cacerts(&mut c.session, TimeCheck::Now).await?;
    let attrs = enroll::csrattrs(&mut c.session).await?;
    let alg = enroll::key_algorithm(attrs.as_ref());
    let (file_key, signer): (Option<Arc<SoftwareKey>>, Arc<dyn Signer>) =
        match (out.new_tpm_handle, &c.tpm) {
            (Some(handle), Some(tcti)) => (None, crate::tpm::create_ldevid(tcti, handle)?),
            (Some(_), None) => return Err(config("--new-tpm-handle needs --tpm")),
            (None, _) => {
                let key = Arc::new(enroll::generate_key(alg)?);
                (Some(key.clone()), key)
            }
        };
    for e in enroll::requested_extensions(attrs.as_ref()) {
        if !extensions.iter().any(|x| x.extn_id == e.extn_id) {
            extensions.push(e);
        }
    }
    let request = CsrRequest {
        subject: &subject,
        key: signer.as_ref(),
        extensions,
        evidence: None,
    };
    let certs = enroll::enroll(
        &mut c.session,
        step,
        path,
        &request,
        Duration::from_secs(max_wait),
    )
    .await?;
    let chain = enroll::check_issued(step, certs, signer.as_ref(), &cacerts, TimeCheck::Now)?;
    if let (Some(key), Some(path)) = (&file_key, &out.out_key) {
        write_atomic(path, key.to_pkcs8_pem().as_bytes(), 0o600).map_err(storage)?;
    }
    write_atomic(&out.out_cert, certs_to_pem(&chain).as_bytes(), 0o644).map_err(storage)?;
    let (subject, issuer, not_after) = chain.first().map(describe).unwrap_or_default();
    Ok(format!(
        "{step}: certificate for \"{subject}\" issued by \"{issuer}\", valid until {not_after}, written to {}",
        display(&out.out_cert)
    ))
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
