//! `rediss://`: the TLS client every connection mode opens its connections
//! with (rustls), its CA and client-certificate files, and the mapping of
//! handshake failures to clear, non-retryable errors.
//!
//! The server is verified against the system's trust store (the redis
//! crate's `tls-rustls` loads it with `rustls-native-certs`: what operators
//! maintain, `SSL_CERT_FILE` / `SSL_CERT_DIR` included), or against the CA
//! file of [`RedisTls::ca_file`] instead. No file's content is ever quoted
//! in an error or a log line: a key file holds a secret (I8).

use std::path::{Path, PathBuf};
use std::sync::Once;

use deadpool_redis::redis::{self, ClientTlsConfig, RedisError, TlsCertificates};
use pharox_core::{Error, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::RedisConfig;

/// TLS settings of a `rediss://` connection. All optional: by default the
/// server's certificate is checked against the system's trust store and no
/// client certificate is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// PEM file of the CA certificates that verify the server, instead of
    /// the system's trust store (`--redis-ca`, `PHAROX_REDIS_CA`).
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (chain) for mutual TLS
    /// (`--redis-cert`, `PHAROX_REDIS_CERT`); needs [`key_file`](Self::key_file).
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or
    /// SEC1; `--redis-key`, `PHAROX_REDIS_KEY`).
    pub key_file: Option<PathBuf>,
}

impl RedisTls {
    /// Whether any file is set.
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }
}

/// Whether `url` asks for TLS (`rediss://`).
pub(crate) fn is_tls_url(url: &str) -> bool {
    url.get(..9)
        .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"))
}

/// rustls needs one process-wide crypto provider; two crates of the tree
/// may enable two (ring, aws-lc-rs), which makes rustls refuse to pick.
/// Installing ring, as reqwest's rustls uses, settles it (a provider
/// installed before is kept).
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Reads a PEM file named by setting `what`; the error names the file and
/// the I/O failure, never the content.
fn read(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::invalid(
            what,
            format!("cannot read {}: {}", path.display(), e.kind()),
        )
    })
}

/// Reads a file of PEM certificates (at least one).
fn certificates(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    let pem = read(what, path)?;
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|_| {
            Error::invalid(
                what,
                format!("{} is not a valid PEM certificate file", path.display()),
            )
        })?;
        count += 1;
    }
    if count == 0 {
        return Err(Error::invalid(
            what,
            format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        ));
    }
    Ok(pem)
}

/// Reads a PEM private key file. Its parse error is not passed on: it
/// could describe the secret it failed on.
fn private_key(path: &Path) -> Result<Vec<u8>> {
    let what = "redis tls key";
    let pem = read(what, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        Error::invalid(
            what,
            format!(
                "{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                path.display()
            ),
        )
    })?;
    Ok(pem)
}

/// The client of `cfg`: TLS with its files for `rediss://`, plain
/// otherwise. Every connection mode opens its connections from it.
///
/// # Errors
///
/// `InvalidInput` for a bad URL, TLS files with a `redis://` URL, a
/// certificate without its key (or a key without its certificate), and a
/// file that cannot be read or holds no certificate or key.
pub(crate) fn client(cfg: &RedisConfig) -> Result<redis::Client> {
    let bad_url = |e: RedisError| {
        // The driver's message may quote the URL; never pass it on (I8).
        Error::invalid(
            "redis url",
            format!("cannot use {}: {}", cfg.redacted_url(), e.category()),
        )
    };
    let tls = &cfg.tls;
    if !is_tls_url(&cfg.url) {
        if tls.is_set() {
            return Err(Error::invalid(
                "redis tls",
                format!(
                    "a CA, certificate or key file needs a rediss:// URL, not {}",
                    cfg.redacted_url()
                ),
            ));
        }
        return redis::Client::open(cfg.url.as_str()).map_err(bad_url);
    }
    install_crypto_provider();
    let client_tls = match (&tls.cert_file, &tls.key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: certificates("redis tls certificate", cert)?,
            client_key: private_key(key)?,
        }),
        (Some(_), None) => {
            return Err(Error::invalid(
                "redis tls key",
                "a client certificate needs its private key (--redis-key)",
            ));
        }
        (None, Some(_)) => {
            return Err(Error::invalid(
                "redis tls certificate",
                "a private key needs its client certificate (--redis-cert)",
            ));
        }
    };
    let root_cert = tls
        .ca_file
        .as_deref()
        .map(|ca| certificates("redis tls ca", ca))
        .transpose()?;
    if client_tls.is_none() && root_cert.is_none() {
        return redis::Client::open(cfg.url.as_str()).map_err(bad_url);
    }
    redis::Client::build_with_tls(
        cfg.url.as_str(),
        TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    .map_err(|e| {
        // The files parsed above, so this is the URL or rustls refusing the
        // key for the certificate: say which without quoting either.
        if e.kind() == redis::ErrorKind::InvalidClientConfig {
            Error::invalid(
                "redis tls",
                "the client certificate and key do not make a usable identity \
                 (is the key the certificate's?)",
            )
        } else {
            bad_url(e)
        }
    })
}

/// The rustls error under a driver error, if the failure was TLS's.
fn rustls_error(e: &RedisError) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        // The driver keeps its cause in an `Arc`, and `io::Error::source`
        // skips the error it wraps: look inside both.
        type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
        cause = if let Some(shared) = c.downcast_ref::<Shared>() {
            Some(&**shared as _)
        } else if let Some(io) = c.downcast_ref::<std::io::Error>() {
            io.get_ref().map(|inner| inner as _)
        } else {
            c.source()
        };
    }
    None
}

/// A TLS handshake failure as a clear, non-retryable error (trying again
/// gets the same certificate), or `None` if `e` is not one.
pub(crate) fn handshake_error(e: &RedisError) -> Option<Error> {
    let r = rustls_error(e)?;
    let reason = match r {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            "the server's TLS certificate was not trusted: it is not signed by a trusted CA \
             (pass the CA that signed it with --redis-ca / PHAROX_REDIS_CA, or add it to the \
             system's trust store)"
                .to_owned()
        }
        rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext {
            not_after,
            ..
        }) => {
            let secs = i64::try_from(not_after.as_secs()).unwrap_or(i64::MAX);
            match chrono::DateTime::from_timestamp(secs, 0) {
                Some(at) => {
                    format!("the server's TLS certificate has expired (not valid after {at})")
                }
                None => "the server's TLS certificate has expired".to_owned(),
            }
        }
        rustls::Error::InvalidCertificate(rustls::CertificateError::Expired) => {
            "the server's TLS certificate has expired".to_owned()
        }
        rustls::Error::InvalidCertificate(
            c @ (rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. }),
        ) => format!("the server's TLS certificate is not valid for the host of the URL ({c:?})"),
        rustls::Error::InvalidCertificate(c) => {
            format!("the server's TLS certificate was not accepted: {c:?}")
        }
        rustls::Error::AlertReceived(alert) => format!(
            "the server refused the TLS handshake ({alert:?}): does it require a client \
             certificate (--redis-cert and --redis-key) signed by a CA it trusts?"
        ),
        other => format!("the TLS handshake with the server failed: {other}"),
    };
    Some(Error::invalid("redis tls", reason))
}
