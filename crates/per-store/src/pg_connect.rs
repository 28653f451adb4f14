//! One way to reach Postgres for every connection of the node (HA lease and log, LISTEN/NOTIFY,
//! the Postgres backup target): the URL's `sslmode` and `sslrootcert` honoured as libpq does, on
//! rustls (no OpenSSL), and errors that carry their cause.
//!
//! `sslmode` (libpq's meaning):
//! - `disable`: no TLS.
//! - `prefer` (the default): TLS if the server offers it, the certificate not checked.
//! - `require`: TLS or no connection; the certificate is checked against a root certificate only
//!   if one is given (`sslrootcert` or `~/.postgresql/root.crt`), like `verify-ca` then.
//! - `verify-ca`: TLS, the chain checked against the root certificate, the host name not.
//! - `verify-full`: TLS, the chain and the host name checked.
//!
//! `sslrootcert=PATH` names a PEM file of trusted roots; `sslrootcert=system` uses the operating
//! system's roots (only with `verify-full`, as libpq 16 requires).
//!
//! `tokio-postgres` knows neither `verify-*` nor `sslrootcert`, so both are taken out of the URL
//! here before it is parsed.

use postgres::Socket;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// libpq's `sslmode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if offered, unverified (libpq's default).
    Prefer,
    /// TLS required; verified only when a root certificate is available.
    Require,
    /// TLS, chain verified, host name not.
    VerifyCa,
    /// TLS, chain and host name verified.
    VerifyFull,
}

/// A connection string that cannot be used (bad URL, unknown `sslmode`, unreadable root
/// certificate), or a connection that failed.
#[derive(Debug, thiserror::Error)]
pub enum PgConnectError {
    /// The URL or its TLS settings are wrong: nothing was tried.
    #[error("invalid database URL: {0}")]
    Config(String),
    /// Postgres could not be reached, refused us, or the TLS handshake failed.
    #[error("{}", describe_pg_error(.0))]
    Connect(#[from] postgres::Error),
}

/// A parsed database URL plus its TLS connector; [`connect`](PgConnector::connect) opens one
/// connection with them.
#[derive(Clone)]
pub struct PgConnector {
    config: postgres::Config,
    tls: MakeRustlsConnect,
    mode: SslMode,
}

impl std::fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password: show only the mode.
        f.debug_struct("PgConnector")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PgConnector {
    /// Parses `url` (`postgres://…?sslmode=…&sslrootcert=…` or `key=value …`) and builds its TLS
    /// settings. Reads the root certificate file now, so a wrong path fails before any connection.
    pub fn from_url(url: &str) -> Result<PgConnector, PgConnectError> {
        let (rest, mode, root) = split_tls_params(url)?;
        let mut config: postgres::Config = rest
            .parse()
            .map_err(|e: postgres::Error| PgConnectError::Config(describe_pg_error(&e)))?;
        config.ssl_mode(match mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
        let tls = MakeRustlsConnect {
            config: Arc::new(client_config(mode, root)?),
        };
        Ok(PgConnector { config, tls, mode })
    }

    /// The connection settings (timeouts, application name) to adjust before connecting.
    pub fn config_mut(&mut self) -> &mut postgres::Config {
        &mut self.config
    }

    /// The `sslmode` in force.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// Opens one connection.
    pub fn connect(&self) -> Result<postgres::Client, PgConnectError> {
        Ok(self.config.connect(self.tls.clone())?)
    }
}

/// A Postgres error with its cause: the server's severity, SQLSTATE, message, detail and hint,
/// or the chain of sources of a client-side error — never just `db error`.
pub fn describe_pg_error(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut out = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            out.push_str(&format!(" (detail: {detail})"));
        }
        if let Some(hint) = db.hint() {
            out.push_str(&format!(" (hint: {hint})"));
        }
        return out;
    }
    let mut out = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// Takes `sslmode` and `sslrootcert` out of a URL or key=value string.
fn split_tls_params(url: &str) -> Result<(String, SslMode, Option<String>), PgConnectError> {
    let mut mode = None;
    let mut root = None;
    let mut take = |key: &str, value: &str| -> Result<bool, PgConnectError> {
        match key {
            "sslmode" => {
                mode = Some(parse_mode(value)?);
                Ok(true)
            }
            "sslrootcert" => {
                root = Some(percent_decode(value));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(key, value)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for token in url.split_whitespace() {
            let (key, value) = token.split_once('=').unwrap_or((token, ""));
            if !take(key.trim(), value.trim().trim_matches('\''))? {
                kept.push(token);
            }
        }
        kept.join(" ")
    };
    Ok((rest, mode.unwrap_or(SslMode::Prefer), root))
}

fn parse_mode(value: &str) -> Result<SslMode, PgConnectError> {
    Ok(match value {
        "disable" => SslMode::Disable,
        // libpq's `allow` tries plain first; TLS-if-offered is the closer safe reading.
        "allow" | "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(PgConnectError::Config(format!(
                "unknown sslmode {other:?} (disable, prefer, require, verify-ca or verify-full)"
            )));
        }
    })
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(byte) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// libpq's default root certificate file.
fn default_root() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let path = PathBuf::from(home).join(".postgresql/root.crt");
    path.exists().then_some(path)
}

fn load_roots(path: &str) -> Result<RootCertStore, PgConnectError> {
    let mut roots = RootCertStore::empty();
    if path == "system" {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            // A malformed system certificate is skipped, as every TLS client does.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(PgConnectError::Config(
                "sslrootcert=system: no root certificates found on this system".to_owned(),
            ));
        }
        return Ok(roots);
    }
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| PgConnectError::Config(format!("sslrootcert {path}: {e}")))?;
    for cert in certs {
        let cert = cert.map_err(|e| PgConnectError::Config(format!("sslrootcert {path}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| PgConnectError::Config(format!("sslrootcert {path}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(PgConnectError::Config(format!(
            "sslrootcert {path}: no certificate in the file"
        )));
    }
    Ok(roots)
}

fn client_config(mode: SslMode, root: Option<String>) -> Result<ClientConfig, PgConnectError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PgConnectError::Config(format!("TLS: {e}")))?;
    if root.as_deref() == Some("system") && mode != SslMode::VerifyFull {
        return Err(PgConnectError::Config(
            "sslrootcert=system needs sslmode=verify-full".to_owned(),
        ));
    }
    let root = root.or_else(|| default_root().map(|p| p.display().to_string()));
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, root) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => {
            Arc::new(NoVerification(provider()))
        }
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(PgConnectError::Config(format!(
                "sslmode={} needs a root certificate: set sslrootcert=PATH (or sslrootcert=system \
                 with verify-full), or put it at ~/.postgresql/root.crt",
                if mode == SslMode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                }
            )));
        }
        (SslMode::Require | SslMode::VerifyCa, Some(path)) => {
            Arc::new(ChainOnly(webpki_verifier(&path)?))
        }
        (SslMode::VerifyFull, Some(path)) => webpki_verifier(&path)?,
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn webpki_verifier(path: &str) -> Result<Arc<WebPkiServerVerifier>, PgConnectError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(load_roots(path)?), provider())
        .build()
        .map_err(|e| PgConnectError::Config(format!("sslrootcert {path}: {e}")))
}

/// `prefer` / `require` without a root: any certificate (the handshake signature still checked).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the host name is not compared.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            // webpki checks the name after the chain: a name error means the chain is good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `tokio-postgres`'s TLS hook on rustls.
#[derive(Clone)]
struct MakeRustlsConnect {
    config: Arc<ClientConfig>,
}

impl MakeTlsConnect<Socket> for MakeRustlsConnect {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        // Called for every host, TLS or not: the name is parsed only when TLS is used.
        Ok(RustlsConnect {
            config: self.config.clone(),
            domain: domain.to_owned(),
        })
    }
}

/// One TLS handshake to one host.
struct RustlsConnect {
    config: Arc<ClientConfig>,
    domain: String,
}

type ConnectFuture = Pin<Box<dyn Future<Output = Result<RustlsStream, io::Error>> + Send>>;

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = ConnectFuture;

    fn connect(self, stream: Socket) -> ConnectFuture {
        Box::pin(async move {
            let name = ServerName::try_from(self.domain.clone()).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("host {:?} is not a TLS server name: {e}", self.domain),
                )
            })?;
            let stream = tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// A TLS stream to Postgres.
struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
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

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_urls_and_key_value_strings() {
        let (rest, mode, root) = split_tls_params(
            "postgres://u:p@db.example:5432/postgres?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x",
        )
        .expect("parse");
        assert_eq!(mode, SslMode::VerifyFull);
        assert_eq!(root.as_deref(), Some("/tmp/ca.pem"));
        assert_eq!(
            rest,
            "postgres://u:p@db.example:5432/postgres?application_name=x"
        );
        let (rest, mode, root) =
            split_tls_params("host=h dbname=d sslmode=require").expect("parse");
        assert_eq!(
            (rest.as_str(), mode, root),
            ("host=h dbname=d", SslMode::Require, None)
        );
        let (_, mode, _) = split_tls_params("postgres://h/d").expect("parse");
        assert_eq!(mode, SslMode::Prefer);
        assert!(matches!(
            split_tls_params("postgres://h/d?sslmode=verify-maybe"),
            Err(PgConnectError::Config(_))
        ));
    }

    #[test]
    fn verify_modes_need_a_root_and_a_missing_root_file_fails_before_connecting() {
        let missing = PgConnector::from_url(
            "postgres://h/d?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        );
        assert!(
            matches!(missing, Err(PgConnectError::Config(m)) if m.contains("/nonexistent/ca.pem"))
        );
        let system_weak =
            PgConnector::from_url("postgres://h/d?sslmode=require&sslrootcert=system");
        assert!(matches!(system_weak, Err(PgConnectError::Config(_))));
        let disabled = PgConnector::from_url("postgres://h/d?sslmode=disable").expect("disable");
        assert_eq!(disabled.mode(), SslMode::Disable);
    }
}
