//! The HTTP side: connection reuse, the API key, the base URL, and each
//! transport failure's error (what the retry policy decides on).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::serve::ListenerExt;
use common::{KEY, TestServer, client};
use pharox_client::RemoteStorage;
use pharox_core::{
    AcquireRequest, Error, InMemoryStorage, PoolId, ProxyId, ProxyManager, ProxyPool, RetryPolicy,
    Storage,
};
use pharox_server::{ApiKeys, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a hand-written server does with each request it reads.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Closes the connection without answering.
    Close,
    /// Never answers.
    Hang,
    /// Answers these bytes.
    Answer(&'static str),
}

/// A server that reads whole requests and does `behaviour`; returns its URL
/// and a count of the connections it accepted.
async fn raw_server(behaviour: Behaviour) -> (String, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicU32::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                read_request(&mut socket).await;
                match behaviour {
                    Behaviour::Close => drop(socket),
                    Behaviour::Hang => {
                        std::future::pending::<()>().await;
                    }
                    Behaviour::Answer(bytes) => {
                        socket.write_all(bytes.as_bytes()).await.unwrap();
                        let _ = socket.shutdown().await;
                    }
                }
            });
        }
    });
    (url, accepted)
}

/// Reads one request: the head, then `content-length` bytes of body.
async fn read_request(socket: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the client closed before sending a request");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn no_retry_delay() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    }
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let e = client(&url, Duration::from_secs(60))
        .get_pool(&PoolId::from("p"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(e.request_not_sent());
}

#[tokio::test]
async fn a_connection_closed_after_the_request_is_interrupted() {
    let (url, accepted) = raw_server(Behaviour::Close).await;
    let storage = client(&url, Duration::from_secs(60));
    // Sent and unanswered: it may have been applied, so the manager would
    // not repeat an acquire after it (see tests/manager.rs).
    let e = storage
        .acquire(&AcquireRequest::new("p"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Interrupted { .. }), "{e:?}");
    assert!(e.is_retryable() && !e.request_not_sent());
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one attempt, no hidden retry"
    );
    // A read is idempotent: the manager tries it 1 + max_retries times.
    accepted.store(0, Ordering::SeqCst);
    let manager = ProxyManager::with_retry(storage, no_retry_delay());
    let e = manager.pool_stats(&PoolId::from("p")).await.unwrap_err();
    assert!(matches!(e, Error::Interrupted { .. }), "{e:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_a_timeout() {
    let (url, _) = raw_server(Behaviour::Hang).await;
    let storage = client(&url, Duration::from_millis(200));
    let e = storage
        .acquire(&AcquireRequest::new("p"))
        .await
        .unwrap_err();
    match e {
        Error::Timeout { operation, after } => {
            assert_eq!((operation, after), ("acquire", Duration::from_millis(200)));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn answers_not_from_pharox_are_classified_by_status() {
    for (answer, retryable, not_sent) in [
        (
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy",
            true,
            false,
        ),
        (
            "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n",
            true,
            false,
        ),
        (
            "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n",
            true,
            true,
        ),
        (
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\n\r\n{}",
            false,
            false,
        ),
    ] {
        let (url, _) = raw_server(Behaviour::Answer(answer)).await;
        let e = client(&url, Duration::from_secs(60))
            .pool_stats(&PoolId::from("p"))
            .await
            .unwrap_err();
        assert_eq!(
            (e.is_retryable(), e.request_not_sent()),
            (retryable, not_sent),
            "{answer}: {e:?}"
        );
    }
    // Applied, but unreadable: corrupt, and the body is not quoted.
    let (url, _) = raw_server(Behaviour::Answer(
        "HTTP/1.1 200 OK\r\ncontent-length: 24\r\n\r\n{\"password\": \"hunter2\"!}",
    ))
    .await;
    let e = client(&url, Duration::from_secs(60))
        .pool_stats(&PoolId::from("p"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Corrupt(_)), "{e:?}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[tokio::test]
async fn calls_reuse_one_kept_alive_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicU32::new(0));
    let count = accepted.clone();
    let counted = listener.tap_io(move |_| {
        count.fetch_add(1, Ordering::SeqCst);
    });
    let app = pharox_server::router(
        InMemoryStorage::new(),
        ServerConfig::new(ApiKeys::admin([KEY])),
    );
    tokio::spawn(async move { axum::serve(counted, app).await });
    let storage = client(&url, Duration::from_secs(60));
    let clone = storage.clone();
    storage.upsert_pool(&ProxyPool::new("kept")).await.unwrap();
    for _ in 0..10 {
        storage.pool_stats(&"kept".into()).await.unwrap();
        clone.get_pool(&"kept".into()).await.unwrap().unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_api_key_is_sent_and_never_shown() {
    let server = TestServer::start(InMemoryStorage::new()).await;
    assert!(server.client().list_pools().await.unwrap().is_empty());
    let wrong = RemoteStorage::builder(&server.url)
        .api_key("wrong-key-abc")
        .build()
        .unwrap();
    let e = wrong.list_pools().await.unwrap_err();
    assert!(
        matches!(e, Error::Backend { .. }) && !e.is_retryable(),
        "{e:?}"
    );
    let missing = RemoteStorage::builder(&server.url).build().unwrap();
    let e2 = missing.list_pools().await.unwrap_err();
    assert!(e2.to_string().contains("401"), "{e2}");
    for text in [
        format!("{wrong:?}"),
        format!(
            "{:?}",
            RemoteStorage::builder(&server.url).api_key("wrong-key-abc")
        ),
        format!("{e:?}"),
        e.to_string(),
    ] {
        assert!(!text.contains("wrong-key-abc"), "{text}");
        assert!(!text.contains(KEY), "{text}");
    }
}

#[tokio::test]
async fn a_base_url_with_a_path_prefix_is_kept() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().nest(
        "/pharox",
        pharox_server::router(
            InMemoryStorage::new(),
            ServerConfig::new(ApiKeys::admin([KEY])),
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    for base in [
        format!("http://{addr}/pharox"),
        format!("http://{addr}/pharox/"),
    ] {
        let storage = client(&base, Duration::from_secs(60));
        storage
            .upsert_pool(&ProxyPool::new("prefixed"))
            .await
            .unwrap();
        assert!(
            storage
                .get_pool(&"prefixed".into())
                .await
                .unwrap()
                .is_some()
        );
    }
}

#[tokio::test]
async fn bad_urls_and_keys_are_refused_at_build() {
    for (url, key) in [
        ("ftp://h/", "k"),
        ("not a url", "k"),
        ("http://user:pw@h/", "k"),
        ("http://h/?x=1", "k"),
        ("http://h/", "line\nbreak"),
    ] {
        let built = RemoteStorage::builder(url).api_key(key).build();
        assert!(
            matches!(built, Err(Error::InvalidInput { .. })),
            "{url} {key:?}: {built:?}"
        );
    }
}

#[tokio::test]
async fn dot_ids_are_refused_before_anything_is_sent() {
    let store = InMemoryStorage::new();
    store.add_pool(ProxyPool::new("p")).unwrap();
    let server = TestServer::start(store.clone()).await;
    let storage = server.client();
    // `DELETE …/proxies/..` would resolve to `DELETE /v1/pools/p`.
    for dots in [".", ".."] {
        let e = storage
            .remove_proxy(&"p".into(), &ProxyId::from(dots))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidInput {
                    field: "proxy.id",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = storage.remove_pool(&PoolId::from(dots)).await.unwrap_err();
        assert!(
            matches!(e, Error::InvalidInput { field: "pool", .. }),
            "{e:?}"
        );
    }
    assert!(store.get_pool(&"p".into()).await.unwrap().is_some());
}
