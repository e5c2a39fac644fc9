//! Configuring a [`RemoteStorage`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pharox_core::{Error, Result};
use reqwest::header::HeaderValue;

use crate::RemoteStorage;
use crate::transport::Transport;

/// Each call's budget by default, as pharox-sdk's (30 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long opening a connection may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle pooled connection is kept by default.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Builds a [`RemoteStorage`]: the server's base URL, an API key, timeouts.
///
/// ```
/// use std::time::Duration;
/// use pharox_client::RemoteStorage;
///
/// let storage = RemoteStorage::builder("http://127.0.0.1:8000")
///     .api_key("secret")
///     .timeout(Duration::from_secs(10))
///     .build()?;
/// assert!(!format!("{storage:?}").contains("secret"));
/// # Ok::<(), pharox_core::Error>(())
/// ```
#[derive(Clone)]
pub struct RemoteStorageBuilder {
    base_url: String,
    api_key: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
}

impl fmt::Debug for RemoteStorageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteStorageBuilder")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .finish()
    }
}

impl RemoteStorageBuilder {
    pub(crate) fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
        }
    }

    /// The key sent as `X-API-Key` with every request. It never appears in
    /// `Debug` output, errors or logs.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Each call's budget, from sending the request to the end of the
    /// answer (default [`DEFAULT_TIMEOUT`]). A call that runs out answers
    /// `Error::Timeout`: it may have been applied.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long opening a connection may take (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]). Failing to connect answers
    /// `Error::Unavailable`: nothing was sent.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an idle connection stays in the pool for reuse (default
    /// [`DEFAULT_POOL_IDLE_TIMEOUT`]).
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// The store. It opens no connection yet: the first call does, and
    /// later calls reuse it (HTTP/1.1 keep-alive, one pool per store and
    /// its clones).
    ///
    /// # Errors
    /// `InvalidInput` on `url` for a URL that is not `http://` or
    /// `https://`, or that carries a user name or password (send the key
    /// with [`api_key`](Self::api_key)); on `api key` for a key that is not
    /// a valid header value.
    pub fn build(self) -> Result<RemoteStorage> {
        let url = reqwest::Url::parse(&self.base_url)
            .map_err(|e| Error::invalid("url", format!("is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::invalid("url", "must be http:// or https://"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::invalid(
                "url",
                "must not carry credentials; give the API key with api_key()",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::invalid("url", "must not have a query or a fragment"));
        }
        let api_key = match self.api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&key).map_err(|_| {
                    Error::invalid("api key", "must be visible ASCII (a header value)")
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(self.pool_idle_timeout)
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pharox-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Backend {
                source: Box::new(e),
            })?;
        Ok(RemoteStorage {
            inner: Arc::new(Transport {
                http,
                base: url.as_str().trim_end_matches('/').to_owned(),
                api_key,
                timeout: self.timeout,
            }),
        })
    }
}
