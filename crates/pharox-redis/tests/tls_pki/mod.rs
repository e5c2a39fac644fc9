//! Certificates for the TLS tests, generated per test with rcgen into a
//! directory removed on drop: a CA, a server certificate it signs (for
//! 127.0.0.1 and localhost), a client certificate it signs, an expired
//! server certificate, and a second CA that signed none of them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use pharox_redis::testkit::ServerTls;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The files of one test's certificates (PEM).
pub struct Pki {
    pub dir: PathBuf,
    /// The CA that signed the server and client certificates.
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A server certificate of the same CA whose validity ended in 2021.
    pub expired_cert: PathBuf,
    pub expired_key: PathBuf,
    /// A CA unrelated to every certificate here.
    pub other_ca: PathBuf,
    /// A certificate of the CA for both server and client use: the nodes
    /// of a TLS Sentinel topology show it to each other.
    pub node_cert: PathBuf,
    pub node_key: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("CA key");
    let pem = params.self_signed(&key).expect("self-signed CA").pem();
    (params, key, pem)
}

fn leaf(
    issuer: &Issuer<'_, &KeyPair>,
    name: &str,
    usages: &[ExtendedKeyUsagePurpose],
    expired: bool,
) -> (String, String) {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = usages.to_vec();
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("signed leaf");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "pharox-tls-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("create the certificates' directory");
        let (ca_params, ca_key, ca_pem) = ca("pharox test CA");
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let (server_pem, server_key) = leaf(
            &issuer,
            "pharox test server",
            &[ExtendedKeyUsagePurpose::ServerAuth],
            false,
        );
        let (client_pem, client_key) = leaf(
            &issuer,
            "pharox test client",
            &[ExtendedKeyUsagePurpose::ClientAuth],
            false,
        );
        let (expired_pem, expired_key) = leaf(
            &issuer,
            "pharox expired server",
            &[ExtendedKeyUsagePurpose::ServerAuth],
            true,
        );
        let (node_pem, node_key) = leaf(
            &issuer,
            "pharox test node",
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            false,
        );
        let (_, _, other_pem) = ca("an unrelated CA");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write a certificate file");
            path
        };
        Self {
            ca: write("ca.pem", &ca_pem),
            server_cert: write("server.pem", &server_pem),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_pem),
            client_key: write("client.key", &client_key),
            expired_cert: write("expired.pem", &expired_pem),
            expired_key: write("expired.key", &expired_key),
            other_ca: write("other-ca.pem", &other_pem),
            node_cert: write("node.pem", &node_pem),
            node_key: write("node.key", &node_key),
            dir,
        }
    }

    /// The server side: the valid server certificate, clients checked
    /// against the CA when `require_client_cert`.
    pub fn server(&self, require_client_cert: bool) -> ServerTls {
        ServerTls {
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            ca: self.ca.clone(),
            require_client_cert,
        }
    }

    /// The nodes and sentinels of a TLS Sentinel topology: the node
    /// certificate, and clients checked against the CA (mutual TLS).
    pub fn node(&self) -> ServerTls {
        ServerTls {
            cert: self.node_cert.clone(),
            key: self.node_key.clone(),
            ca: self.ca.clone(),
            require_client_cert: true,
        }
    }

    /// A server presenting the expired certificate.
    pub fn expired_server(&self) -> ServerTls {
        ServerTls {
            cert: self.expired_cert.clone(),
            key: self.expired_key.clone(),
            ca: self.ca.clone(),
            require_client_cert: false,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
