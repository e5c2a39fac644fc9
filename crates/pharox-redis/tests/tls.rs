//! `rediss://` through rustls against private TLS-only redis-servers with
//! certificates generated per test: mutual TLS in every connection mode, a
//! username and password over TLS, and the failures a deployment meets (an
//! untrusted or expired server certificate, a missing client certificate,
//! unreadable or wrong files), each a clear, non-retryable error within a
//! bounded time that never quotes a file's content.

mod tls_pki;

use std::time::{Duration, Instant};

use pharox_core::testkit::{proxy, request};
use pharox_core::{Error, PoolId, ProxyPool, Storage};
use pharox_redis::testkit::RedisServer;
use pharox_redis::{ConnectionMode, RedisConfig, RedisStorage, RedisTls};
use tls_pki::Pki;

/// Connect budget of the failing cases, and the slack a busy machine may
/// add on top: the point is "no retry loop", not speed.
const CONNECT: Duration = Duration::from_secs(3);
const SLACK: Duration = Duration::from_secs(10);

const MODES: [ConnectionMode; 2] = [
    ConnectionMode::Multiplexed { connections: 2 },
    ConnectionMode::Pooled { size: 4 },
];

/// A lease round trip on `store`: pool, proxy, acquire, release.
async fn round_trip(store: &RedisStorage) {
    let pool = PoolId::from(format!("tls-{:08x}", fastrand::u32(..)));
    store
        .upsert_pool(&ProxyPool::new(pool.clone()))
        .await
        .expect("create a pool over TLS");
    store
        .upsert_proxy(&proxy(&pool, "p1", 1))
        .await
        .expect("add a proxy over TLS");
    let lease = store
        .acquire(&request(&pool))
        .await
        .expect("acquire over TLS")
        .expect("a free proxy");
    store.release(&lease).await.expect("release over TLS");
    assert_eq!(
        store.pool_stats(&pool).await.expect("stats").active_leases,
        0
    );
}

/// Connects with `config`, expecting an error within the bounded time.
async fn refused(config: RedisConfig) -> Error {
    let started = Instant::now();
    let err = RedisStorage::connect(config.connect_timeout(CONNECT))
        .await
        .expect_err("the connection should be refused");
    assert!(
        started.elapsed() < CONNECT + SLACK,
        "refused after {:?}: a retry loop?",
        started.elapsed()
    );
    eprintln!("refused in {:?}: {err}", started.elapsed());
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_works_in_every_connection_mode() {
    let pki = Pki::new();
    let server = RedisServer::start_tls(pki.server(true), &[]);
    for mode in MODES {
        let store = RedisStorage::connect(
            RedisConfig::new(server.url())
                .mode(mode)
                .tls_ca_file(&pki.ca)
                .tls_client_cert(&pki.client_cert, &pki.client_key),
        )
        .await
        .unwrap_or_else(|e| panic!("{mode:?} with a client certificate: {e}"));
        round_trip(&store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutual_tls_server_refuses_a_client_without_a_certificate() {
    let pki = Pki::new();
    let server = RedisServer::start_tls(pki.server(true), &[]);
    for mode in MODES {
        let err = refused(
            RedisConfig::new(server.url())
                .mode(mode)
                .tls_ca_file(&pki.ca),
        )
        .await;
        let text = err.to_string();
        assert!(text.contains("certificate"), "{mode:?}: {text}");
        assert!(!err.is_retryable(), "{mode:?}: {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_signed_by_another_ca_is_not_trusted() {
    let pki = Pki::new();
    let server = RedisServer::start_tls(pki.server(false), &[]);
    for mode in MODES {
        // The system's roots do not include the test CA either.
        for config in [
            RedisConfig::new(server.url()).tls_ca_file(&pki.other_ca),
            RedisConfig::new(server.url()),
        ] {
            let err = refused(config.mode(mode)).await;
            let text = err.to_string();
            assert!(
                matches!(&err, Error::InvalidInput { field, .. } if *field == "redis tls"),
                "{mode:?}: {err:?}"
            );
            assert!(text.contains("not trusted"), "{mode:?}: {text}");
            assert!(!err.is_retryable(), "{mode:?}: {err:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_server_certificate_is_refused_clearly() {
    let pki = Pki::new();
    let server = RedisServer::start_tls(pki.expired_server(), &[]);
    for mode in MODES {
        let err = refused(
            RedisConfig::new(server.url())
                .mode(mode)
                .tls_ca_file(&pki.ca),
        )
        .await;
        assert!(err.to_string().contains("expired"), "{mode:?}: {err}");
        assert!(!err.is_retryable(), "{mode:?}: {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_and_password_work_over_tls() {
    let pki = Pki::new();
    let server = RedisServer::start_tls(
        pki.server(false),
        // One argument a word: redis-server quotes an argument with spaces.
        &[
            "--user",
            "default",
            "off",
            "--user",
            "alice",
            "on",
            ">s3cret-pw",
            "~*",
            "&*",
            "+@all",
        ],
    );
    let port = server.port();
    for mode in MODES {
        let store = RedisStorage::connect(
            RedisConfig::new(format!("rediss://alice:s3cret-pw@127.0.0.1:{port}"))
                .mode(mode)
                .tls_ca_file(&pki.ca),
        )
        .await
        .unwrap_or_else(|e| panic!("{mode:?} as alice over TLS: {e}"));
        round_trip(&store).await;
        let err = refused(
            RedisConfig::new(format!("rediss://alice:wrong@127.0.0.1:{port}"))
                .mode(mode)
                .tls_ca_file(&pki.ca),
        )
        .await;
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("wrong@"), "{shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_files_are_named_and_never_quoted() {
    let pki = Pki::new();
    let url = "rediss://127.0.0.1:1";
    let secret_line = "this-is-not-pem SECRET-KEY-MATERIAL";
    let junk = pki.path("junk.pem");
    std::fs::write(&junk, secret_line).expect("write junk");
    let missing = pki.path("missing.pem");
    let cases: Vec<(RedisTls, &str, &std::path::Path)> = vec![
        (
            RedisTls {
                ca_file: Some(missing.clone()),
                ..RedisTls::default()
            },
            "redis tls ca",
            &missing,
        ),
        (
            RedisTls {
                ca_file: Some(junk.clone()),
                ..RedisTls::default()
            },
            "redis tls ca",
            &junk,
        ),
        (
            RedisTls {
                cert_file: Some(pki.client_cert.clone()),
                key_file: Some(junk.clone()),
                ..RedisTls::default()
            },
            "redis tls key",
            &junk,
        ),
        (
            RedisTls {
                cert_file: Some(junk.clone()),
                key_file: Some(pki.client_key.clone()),
                ..RedisTls::default()
            },
            "redis tls certificate",
            &junk,
        ),
    ];
    for (tls, want_field, file) in cases {
        let err = RedisStorage::connect(RedisConfig::new(url).tls(tls.clone()))
            .await
            .expect_err("bad files are refused before connecting");
        let shown = format!("{err} {err:?}");
        match &err {
            Error::InvalidInput { field, reason } => {
                assert_eq!(*field, want_field, "{shown}");
                assert!(reason.contains(&file.display().to_string()), "{shown}");
            }
            other => panic!("{tls:?}: expected InvalidInput, got {other:?}"),
        }
        assert!(!shown.contains("SECRET"), "{shown}");
    }
    // The key's content never shows, even when it is a real key.
    let key = std::fs::read_to_string(&pki.client_key).expect("key");
    let body = key.lines().nth(1).expect("a key line");
    let err =
        RedisStorage::connect(RedisConfig::new(url).tls_client_cert(&pki.ca, &pki.server_key))
            .await
            .expect_err("a key that is not the certificate's");
    assert!(!format!("{err} {err:?}").contains(body));
    // Half a client identity, or TLS files with a plain URL.
    let half = RedisTls {
        cert_file: Some(pki.client_cert.clone()),
        ..RedisTls::default()
    };
    let err = RedisStorage::connect(RedisConfig::new(url).tls(half))
        .await
        .expect_err("a certificate without its key");
    assert!(err.to_string().contains("private key"), "{err}");
    let err = RedisStorage::connect(RedisConfig::new("redis://127.0.0.1:1").tls_ca_file(&pki.ca))
        .await
        .expect_err("a CA file with redis://");
    assert!(err.to_string().contains("rediss://"), "{err}");
}
