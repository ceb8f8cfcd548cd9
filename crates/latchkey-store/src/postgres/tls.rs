//! TLS to PostgreSQL: rustls on aws-lc-rs (the crypto the rest of
//! Latchkey uses) behind tokio-postgres's `MakeTlsConnect`, with libpq's
//! certificate checks per `sslmode` (see [`SslMode`]):
//!
//! - `verify-full`: the chain ends in a root of `sslrootcert` and the
//!   certificate is valid for the host name (rustls's own verifier);
//! - `verify-ca`, and `require`/`prefer` with `sslrootcert`: the chain is
//!   verified, any host name is accepted (libpq's meaning: the CA is
//!   private, so whoever it signed is trusted);
//! - `require`/`prefer` without `sslrootcert`: encrypted but unverified,
//!   as in libpq; the handshake signatures are still checked.
//!
//! Channel binding (SCRAM-SHA-256-PLUS) is not offered: plain SCRAM is used.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::connection_string::{RootCertificates, SslMode, TlsSettings};

/// Why the TLS settings cannot be used (before any connection is tried).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("sslrootcert {path}: {message}")]
    RootCertificates { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Makes a TLS handshake for each new connection.
#[derive(Clone)]
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
}

impl RustlsConnect {
    /// Reads the root certificates (if any) and builds the client config.
    pub fn new(settings: &TlsSettings) -> Result<Self, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots = match &settings.root_certificates {
            Some(source) => Some(Arc::new(load_roots(source)?)),
            None => None,
        };
        let config_error = |e: rustls::Error| TlsSetupError::Config(e.to_string());
        let verifier: Arc<dyn ServerCertVerifier> = match (settings.mode, roots) {
            (SslMode::VerifyFull, Some(roots)) => {
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| TlsSetupError::Config(e.to_string()))?
            }
            // verify-full without roots was refused when the string was read.
            (_, roots) => Arc::new(IgnoringHostName {
                roots,
                provider: provider.clone(),
            }),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

fn load_roots(source: &RootCertificates) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    match source {
        RootCertificates::File(path) => {
            let fail = |message: String| TlsSetupError::RootCertificates {
                path: path.display().to_string(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| fail(format!("not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(fail("holds no PEM certificate".into()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| fail(format!("not a usable CA certificate: {e}")))?;
            }
        }
        RootCertificates::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsSetupError::RootCertificates {
                    path: "system".into(),
                    message: "no trusted CA certificates found on this system".into(),
                });
            }
        }
    }
    Ok(roots)
}

/// Verifies the chain against `roots` and ignores the host name
/// (`verify-ca`); without roots accepts any certificate (`require`:
/// encrypted against a passive listener only, as in libpq). Handshake
/// signatures are checked either way.
#[derive(Debug)]
struct IgnoringHostName {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for IgnoringHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsHandshake;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsHandshake> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsHandshake {
            config: self.config.clone(),
            name,
        })
    }
}

/// One connection's handshake.
pub struct RustlsHandshake {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

type Handshake<S> = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

impl<S> TlsConnect<S> for RustlsHandshake
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Handshake<S>;

    fn connect(self, stream: S) -> Handshake<S> {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move {
            let tls = connector.connect(self.name, stream).await?;
            Ok(RustlsStream(Box::new(tls)))
        })
    }
}

/// A connection over TLS.
pub struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
