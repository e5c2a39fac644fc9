//! A pharox server in this process on 127.0.0.1:0, a `RemoteStorage` for
//! it, and the contract harness that puts the two over another harness's
//! store (memory, Redis), whose clock the harness still drives.
#![allow(dead_code)] // each test file uses part of it

use std::time::Duration;

use pharox_client::RemoteStorage;
use pharox_core::testkit::Harness;
use pharox_core::{PoolId, PoolStatsSnapshot, Storage};
use pharox_server::{ApiKeys, ServerConfig};
use tokio::sync::oneshot;

/// The key every test server accepts.
pub const KEY: &str = "test-key-not-a-secret";

/// A running server; it stops when dropped.
pub struct TestServer {
    pub url: String,
    _stop: oneshot::Sender<()>,
}

impl TestServer {
    /// Serves `store` with the test key.
    pub async fn start<S: Storage>(store: S) -> Self {
        Self::with(store, ServerConfig::new(ApiKeys::admin([KEY]))).await
    }

    /// Serves `store` with `config`.
    pub async fn with<S: Storage>(store: S, config: ServerConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let app = pharox_server::router(store, config);
        tokio::spawn(pharox_server::serve(listener, app, async move {
            let _ = stopped.await;
        }));
        Self { url, _stop: stop }
    }

    /// A client for this server, with the test key.
    pub fn client(&self) -> RemoteStorage {
        client(&self.url, Duration::from_secs(60))
    }
}

/// A client for `url` with the test key and this timeout per call.
pub fn client(url: &str, timeout: Duration) -> RemoteStorage {
    RemoteStorage::builder(url)
        .api_key(KEY)
        .timeout(timeout)
        .build()
        .unwrap()
}

/// The contract harness through HTTP: a `RemoteStorage` talking to a
/// server over `inner`'s store. `advance` moves `inner`'s clock, so the
/// server's store sees the time pass. Any harness works: one file per store
/// (`contract_remote_memory.rs`, `contract_remote_redis.rs`).
pub struct RemoteHarness<H> {
    inner: H,
    storage: RemoteStorage,
    _server: TestServer,
}

impl<H: Harness> RemoteHarness<H> {
    /// A server over `inner`'s store, and a client for it.
    pub async fn over(inner: H) -> Self {
        let server = TestServer::start(inner.storage().clone()).await;
        Self {
            storage: server.client(),
            inner,
            _server: server,
        }
    }
}

impl<H: Harness> Harness for RemoteHarness<H> {
    type Storage = RemoteStorage;

    fn storage(&self) -> &RemoteStorage {
        &self.storage
    }

    async fn advance(&self, by: Duration) {
        self.inner.advance(by).await;
    }

    /// A closure cannot cross HTTP.
    fn supports_predicates(&self) -> bool {
        false
    }

    fn unique_pool(&self, base: &str) -> PoolId {
        self.inner.unique_pool(base)
    }

    async fn store_problems(&self, pool: &PoolId) -> Vec<String> {
        self.inner.store_problems(pool).await
    }

    /// On the server's store, as the worker beside it would.
    async fn record_stats(&self, snapshot: &PoolStatsSnapshot) -> bool {
        self.inner.record_stats(snapshot).await
    }
}
