//! TLS for PostgreSQL connections, following libpq's `sslmode` (pure Rust: rustls + ring).
//!
//! | `sslmode`          | what flux does                                                      |
//! |--------------------|---------------------------------------------------------------------|
//! | `disable`          | plain TCP                                                           |
//! | `prefer` (default) | TLS when the server offers it, else plain; certificate not checked  |
//! | `require`          | TLS or fail; certificate not checked (as libpq, unless `sslrootcert`) |
//! | `verify-ca`        | TLS; chain checked against the roots, host name not checked         |
//! | `verify-full`      | TLS; chain and host name checked                                    |
//!
//! The roots are Mozilla's (webpki-roots) plus the PEM file named by `sslrootcert=<path>` (a
//! managed database's CA certificate). As in libpq, `require` with an `sslrootcert` file behaves
//! like `verify-ca`. `sslrootcert=system` means the built-in roots only.
//!
//! tokio-postgres knows `sslmode` only up to `require` and rejects `sslrootcert` as an unknown
//! option, so both are taken out of the URL here before it parses the rest.

use diesel::ConnectionError;
use diesel_async::AsyncPgConnection;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS if the server offers it, without checking the certificate.
    Prefer,
    /// TLS, without checking the certificate.
    Require,
    /// TLS; the certificate chain must lead to a trusted root.
    VerifyCa,
    /// TLS; as `VerifyCa`, and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            // libpq's `allow` (plain first, TLS if refused) has no tokio-postgres equivalent.
            other => Err(format!(
                "unsupported sslmode={other:?}: use disable, prefer, require, verify-ca or \
                 verify-full"
            )),
        }
    }

    /// What tokio-postgres should negotiate; certificate checks are the connector's business.
    fn for_tokio_postgres(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "require",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

/// The TLS settings of a PostgreSQL URL, and the URL without the ones tokio-postgres rejects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsParams {
    /// The effective mode (`require` with `sslrootcert` is already upgraded to `verify-ca`).
    pub mode: SslMode,
    /// `sslrootcert=<path>`; `None` when absent or `system`.
    pub root_cert: Option<PathBuf>,
    /// The URL for tokio-postgres: `sslrootcert` removed, `sslmode` mapped to what it knows.
    pub url: String,
}

/// Splits the TLS settings out of a `postgres://` URL.
pub fn parse_params(url: &str) -> Result<TlsParams, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = None;
    let mut root_cert = None;
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => mode = Some(SslMode::parse(&decode(value))?),
            "sslrootcert" => {
                let value = decode(value);
                root_cert = match value.as_str() {
                    "" | "system" => None,
                    path => Some(PathBuf::from(path)),
                };
            }
            _ => kept.push(pair),
        }
    }
    let mut mode = mode.unwrap_or(SslMode::Prefer);
    if mode == SslMode::Require && root_cert.is_some() {
        mode = SslMode::VerifyCa;
    }
    let negotiate = format!("sslmode={}", mode.for_tokio_postgres());
    kept.push(&negotiate);
    Ok(TlsParams {
        mode,
        root_cert,
        url: format!("{base}?{}", kept.join("&")),
    })
}

/// Percent-decodes a query value (a path may arrive as `%2Fetc%2F…`); bad escapes stay as they are.
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Everything needed to open PostgreSQL connections to one URL; built once per pool.
#[derive(Clone)]
pub struct PgConnector {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    mode: SslMode,
}

impl fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnector")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PgConnector {
    /// Parses the URL and builds the TLS client (reading `sslrootcert` now, so a wrong path fails
    /// at startup rather than on the first connection).
    pub fn new(url: &str) -> Result<PgConnector, String> {
        let params = parse_params(url)?;
        let config = tokio_postgres::Config::from_str(&params.url).map_err(|e| describe(&e))?;
        let tls = MakeRustlsConnect::new(client_config(params.mode, params.root_cert.as_deref())?);
        Ok(PgConnector {
            config,
            tls,
            mode: params.mode,
        })
    }

    /// The effective `sslmode`.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// Opens one connection.
    pub async fn connect(&self) -> Result<AsyncPgConnection, ConnectionError> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| ConnectionError::BadConnection(describe(&e)))?;
        AsyncPgConnection::try_from_client_and_connection(client, connection).await
    }
}

/// An error with its causes: tokio-postgres's own message is only the category ("error
/// performing TLS handshake"); the reason ("server does not support TLS") is in the source.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn client_config(
    mode: SslMode,
    root_cert: Option<&std::path::Path>,
) -> Result<ClientConfig, String> {
    // An explicit provider: the process default depends on which rustls features other crates
    // switch on, and with two of them `ClientConfig::builder()` would panic.
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let config = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(roots(root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("cannot set up TLS certificate checks: {e}"))?;
            if mode == SslMode::VerifyCa {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyHostName(webpki)))
                    .with_no_client_auth()
            } else {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            }
        }
    };
    Ok(config)
}

fn roots(root_cert: Option<&std::path::Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = root_cert {
        let unreadable = |e: &dyn fmt::Display| format!("sslrootcert {}: {e}", path.display());
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
            roots
                .add(cert.map_err(|e| unreadable(&e))?)
                .map_err(|e| unreadable(&e))?;
            added += 1;
        }
        if added == 0 {
            return Err(unreadable(&"no PEM certificate in the file"));
        }
    }
    Ok(roots)
}

/// `prefer`/`require`: encryption without authentication, as libpq does. Signatures are still
/// checked, so the session key really is the one of the certificate presented.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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

/// `verify-ca`: the full webpki check, except that a certificate for another host name passes.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            // webpki checks the name only after the chain, so this error means the chain is good.
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params(url: &str) -> TlsParams {
        match parse_params(url) {
            Ok(p) => p,
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn default_is_prefer() {
        let p = params("postgres://u:p@h:5432/db");
        assert_eq!(p.mode, SslMode::Prefer);
        assert_eq!(p.root_cert, None);
        assert_eq!(p.url, "postgres://u:p@h:5432/db?sslmode=prefer");
    }

    #[test]
    fn modes_tokio_postgres_knows_pass_through() {
        for (mode, expected) in [
            ("disable", SslMode::Disable),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
        ] {
            let p = params(&format!(
                "postgres://h/db?sslmode={mode}&application_name=x"
            ));
            assert_eq!(p.mode, expected);
            assert_eq!(
                p.url,
                format!("postgres://h/db?application_name=x&sslmode={mode}")
            );
        }
    }

    #[test]
    fn verify_modes_become_require_for_tokio_postgres() {
        let p = params("postgresql://h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.crt");
        assert_eq!(p.mode, SslMode::VerifyFull);
        assert_eq!(p.root_cert, Some(PathBuf::from("/etc/ca.crt")));
        assert_eq!(p.url, "postgresql://h/db?sslmode=require");

        let p = params("postgres://h/db?sslrootcert=system&sslmode=verify-ca&connect_timeout=5");
        assert_eq!(p.mode, SslMode::VerifyCa);
        assert_eq!(p.root_cert, None);
        assert_eq!(p.url, "postgres://h/db?connect_timeout=5&sslmode=require");
    }

    #[test]
    fn require_with_a_root_cert_verifies_the_chain_as_libpq_does() {
        assert_eq!(
            params("postgres://h/db?sslmode=require&sslrootcert=ca.pem").mode,
            SslMode::VerifyCa
        );
        assert_eq!(
            params("postgres://h/db?sslmode=require&sslrootcert=system").mode,
            SslMode::Require
        );
    }

    #[test]
    fn unknown_modes_are_rejected_by_name() {
        for bad in ["allow", "verify_full", "REQUIRE", ""] {
            let err = parse_params(&format!("postgres://h/db?sslmode={bad}"))
                .err()
                .unwrap_or_default();
            assert!(err.contains("unsupported sslmode"), "{bad}: {err:?}");
        }
    }

    #[test]
    fn tokio_postgres_accepts_the_stripped_url() {
        let p = params("postgres://u:p@h:25060/defaultdb?sslmode=verify-full&sslrootcert=/ca.crt");
        let config = tokio_postgres::Config::from_str(&p.url);
        assert!(config.is_ok(), "{:?}", config.err());
    }

    #[test]
    fn connector_reports_a_missing_root_cert_file() {
        let err =
            PgConnector::new("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem")
                .err()
                .unwrap_or_default();
        assert!(err.contains("sslrootcert /nonexistent.pem"), "{err:?}");
    }

    #[test]
    fn connector_builds_for_every_mode() {
        for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            let connector = PgConnector::new(&format!("postgres://h/db?sslmode={mode}"));
            assert_eq!(connector.map(|c| c.mode().to_string()), Ok(mode.to_owned()));
        }
    }
}
