#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(unreachable_pub, missing_debug_implementations)]

mod builder;
mod classify;
mod storage;
mod transport;

use std::fmt;
use std::sync::Arc;

pub use builder::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_IDLE_TIMEOUT, DEFAULT_TIMEOUT, RemoteStorageBuilder,
};

/// The [`Storage`](pharox_core::Storage) trait over the HTTP API of a
/// `pharox serve`, so [`ProxyManager`](pharox_core::ProxyManager) (and
/// anything else written against the trait) works unchanged against a
/// server.
///
/// Cheap to clone: clones share one `reqwest::Client`, whose connections
/// are pooled and kept alive. Each `Storage` method is one HTTP request.
/// Arguments are checked with `pharox_core::validate` before anything is
/// sent, as every store checks them first, so bad input gets the same
/// `InvalidInput` (field and reason) as on the server's store. Ids `.` and
/// `..` cannot be named in a URL path: calls that would put them in one
/// answer `InvalidInput`.
///
/// Errors keep the server's store's meaning (see the crate docs), so
/// `ProxyManager` retries exactly what it would retry on that store.
/// `wait_for_capacity` is a long poll on the server, which wakes it when
/// its store frees capacity.
#[derive(Clone)]
pub struct RemoteStorage {
    inner: Arc<transport::Transport>,
}

impl RemoteStorage {
    /// A builder for a store at `base_url` (e.g. `http://127.0.0.1:8000`;
    /// a path prefix is kept, for a server behind a reverse proxy).
    pub fn builder(base_url: impl Into<String>) -> RemoteStorageBuilder {
        RemoteStorageBuilder::new(base_url)
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }
}

impl fmt::Debug for RemoteStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteStorage")
            .field("base_url", &self.inner.base)
            .field("api_key", &self.inner.api_key.as_ref().map(|_| "***"))
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}
