//! Connections and the mapping of driver errors to pharox errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_redis::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use deadpool_redis::redis::{
    self, AsyncConnectionConfig, Cmd, ErrorKind, FromRedisValue, RedisError, ScriptInvocation,
    ServerErrorKind,
};
use deadpool_redis::{Manager, Pool, PoolConfig, PoolError, Runtime, TimeoutType, Timeouts};
use pharox_core::{Error, Result};

use crate::config::{Acknowledge, ConnectionMode, RedisConfig};
use crate::sentinel::SentinelConn;

/// The store's connections: to one server, or to the primary the sentinels
/// name (followed across failovers).
pub(crate) enum Conn {
    Direct(Direct),
    Sentinel(Arc<SentinelConn>),
}

/// Connections to one server, in the configured mode.
pub(crate) enum Direct {
    Multiplexed {
        cons: Vec<ConnectionManager>,
        next: AtomicUsize,
    },
    Pooled {
        pool: Pool,
        /// What a failure to open one of its connections is reported with.
        connect_timeout: Duration,
    },
}

/// Maps a driver error. `Unavailable` only when the request surely was not
/// sent (connection refused); a broken connection may have delivered it.
pub(crate) fn map_err(op: &'static str, after: Duration, e: RedisError) -> Error {
    if let Some(tls) = crate::tls::handshake_error(&e) {
        return tls;
    }
    if let Some(refused) = crate::acl::refusal(op, &e) {
        return refused;
    }
    if e.is_timeout() {
        return Error::Timeout {
            operation: op,
            after,
        };
    }
    // A replica (a demoted primary, after a failover) refuses every write
    // before applying anything: certainly not applied, retry elsewhere.
    if e.is_connection_refusal() || e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly) {
        return Error::Unavailable {
            source: Box::new(e),
        };
    }
    match e.kind() {
        ErrorKind::Io
        | ErrorKind::Server(
            ServerErrorKind::BusyLoading | ServerErrorKind::TryAgain | ServerErrorKind::ClusterDown,
        ) => Error::Interrupted {
            source: Box::new(e),
        },
        _ if e.is_connection_dropped() => Error::Interrupted {
            source: Box::new(e),
        },
        _ => Error::Backend {
            source: Box::new(e),
        },
    }
}

impl Conn {
    /// Opens the connections of `cfg`: through the sentinels for a
    /// `redis+sentinel://` URL, else to the server of the URL.
    pub async fn open(cfg: &RedisConfig) -> Result<Self> {
        if crate::sentinel::is_sentinel_url(&cfg.url) {
            return Ok(Self::Sentinel(SentinelConn::open(cfg).await?));
        }
        // Plain or TLS: every mode opens its connections from this client.
        let client = crate::tls::client(cfg)?;
        Ok(Self::Direct(Direct::open(cfg, client).await?))
    }

    /// `call` bounded by `after`, as a `Timeout` of `op`.
    async fn within<T>(
        op: &'static str,
        after: Duration,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::time::timeout(after, call).await.unwrap_or_else(|_| {
            Err(Error::Timeout {
                operation: op,
                after,
            })
        })
    }

    /// Runs a script (EVALSHA, reloading after NOSCRIPT) within `after`.
    pub async fn invoke<T: FromRedisValue>(
        &self,
        inv: &ScriptInvocation<'_>,
        op: &'static str,
        after: Duration,
    ) -> Result<T> {
        // Boxed: the driver's futures for both connection modes make this
        // future about 15 KB, which every caller would otherwise hold and
        // copy (BENCHMARKS.md, "over HTTP").
        Box::pin(Self::within(op, after, async {
            match self {
                Self::Direct(d) => d.invoke(inv, op, after).await,
                Self::Sentinel(s) => {
                    let target = s.target();
                    let r = target.conn.invoke(inv, op, after).await;
                    if let Err(e) = &r {
                        s.after_failure(e).await;
                    }
                    r
                }
            }
        }))
        .await
    }

    /// Runs a script, then `WAIT ack.replicas ack.timeout`, in one
    /// pipeline on one connection, within `after`: the script's answer and
    /// how many replicas acknowledged it (with every earlier write of that
    /// connection).
    pub async fn invoke_acked<T: FromRedisValue>(
        &self,
        inv: &ScriptInvocation<'_>,
        op: &'static str,
        after: Duration,
        ack: Acknowledge,
    ) -> Result<(T, u32)> {
        Box::pin(Self::within(op, after, async {
            match self {
                Self::Direct(d) => d.invoke_acked(inv, op, after, ack).await,
                Self::Sentinel(s) => {
                    let target = s.target();
                    let r = target.conn.invoke_acked(inv, op, after, ack).await;
                    if let Err(e) = &r {
                        s.after_failure(e).await;
                    }
                    r
                }
            }
        }))
        .await
    }

    /// Runs one command or pipeline (`MULTI`/`EXEC` when it is atomic)
    /// within `after`.
    pub async fn query<T: FromRedisValue, R: Request>(
        &self,
        request: &R,
        op: &'static str,
        after: Duration,
    ) -> Result<T> {
        Box::pin(Self::within(op, after, async {
            match self {
                Self::Direct(d) => d.query(request, op, after).await,
                Self::Sentinel(s) => {
                    let target = s.target();
                    let r = target.conn.query(request, op, after).await;
                    if let Err(e) = &r {
                        s.after_failure(e).await;
                    }
                    r
                }
            }
        }))
        .await
    }

    /// `host:port` of the primary a Sentinel store sends its calls to now.
    pub fn sentinel_primary(&self) -> Option<String> {
        match self {
            Self::Direct(_) => None,
            Self::Sentinel(s) => Some(s.primary()),
        }
    }

    /// How many failovers a Sentinel store followed to another primary.
    pub fn sentinel_switches(&self) -> u64 {
        match self {
            Self::Direct(_) => 0,
            Self::Sentinel(s) => s.switches(),
        }
    }
}

impl Direct {
    /// Opens the connections of `cfg.mode` from `client` (the URL's server,
    /// or the primary the sentinels named).
    pub async fn open(cfg: &RedisConfig, client: redis::Client) -> Result<Self> {
        match cfg.mode {
            ConnectionMode::Multiplexed { connections } => {
                if connections == 0 {
                    return Err(Error::invalid("connections", "must be at least 1"));
                }
                let mc = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(cfg.response_timeout))
                    .set_connection_timeout(Some(cfg.connect_timeout))
                    .set_number_of_retries(3)
                    .set_max_delay(Duration::from_millis(500));
                let mut cons = Vec::with_capacity(connections);
                for _ in 0..connections {
                    // The manager retries a failed attempt (3 times, each
                    // bounded by the connect timeout); `connect` as a whole
                    // is given the connect timeout once, as documented.
                    let open = async {
                        ConnectionManager::new_with_config(client.clone(), mc.clone())
                            .await
                            .map_err(|e| map_err("connect", cfg.connect_timeout, e))
                    };
                    cons.push(Conn::within("connect", cfg.connect_timeout, open).await?);
                }
                Ok(Self::Multiplexed {
                    cons,
                    next: AtomicUsize::new(0),
                })
            }
            ConnectionMode::Pooled { size } => {
                if size == 0 {
                    return Err(Error::invalid("pool size", "must be at least 1"));
                }
                // `deadpool_redis::Config::create_pool` opens its connections
                // with redis-rs's defaults (500 ms response, 1 s connect
                // timeout); this manager opens them with ours. Recycling
                // (UNWATCH + PING on checkout) is the same.
                let timeouts = AsyncConnectionConfig::new()
                    .set_response_timeout(Some(cfg.response_timeout))
                    .set_connection_timeout(Some(cfg.connect_timeout));
                // The connection info carries the TLS parameters (CA,
                // client certificate) the client was built with.
                let manager =
                    Manager::new_with_config(client.get_connection_info().clone(), timeouts)
                        .map_err(|e| {
                            Error::invalid(
                                "redis url",
                                format!("cannot use {}: {}", cfg.redacted_url(), e.category()),
                            )
                        })?;
                let pool = Pool::builder(manager)
                    .config(PoolConfig {
                        max_size: size,
                        timeouts: Timeouts {
                            // Shorter than the call's budget, so a caller who
                            // never gets a connection hears that, not a timeout.
                            wait: Some(cfg.response_timeout.mul_f64(0.8)),
                            // The connection's own connect timeout bounds
                            // creation (its setup commands included): one
                            // timer, so one kind of error.
                            create: None,
                            recycle: Some(cfg.response_timeout),
                        },
                        ..PoolConfig::default()
                    })
                    .runtime(Runtime::Tokio1)
                    .build()
                    .map_err(|_| {
                        Error::invalid("redis url", format!("cannot use {}", cfg.redacted_url()))
                    })?;
                // Fail now, not on the first call, if the server is unreachable.
                let con = Self::Pooled {
                    pool,
                    connect_timeout: cfg.connect_timeout,
                };
                Conn::within(
                    "connect",
                    cfg.connect_timeout,
                    con.query::<String, _>(&redis::cmd("PING"), "connect", cfg.connect_timeout),
                )
                .await?;
                Ok(con)
            }
        }
    }

    /// One of the shared connections, round-robin.
    fn shared(cons: &[ConnectionManager], next: &AtomicUsize) -> ConnectionManager {
        let i = if cons.len() == 1 {
            0
        } else {
            next.fetch_add(1, Ordering::Relaxed) % cons.len()
        };
        cons[i].clone()
    }

    async fn pooled(
        pool: &Pool,
        connect_timeout: Duration,
        after: Duration,
    ) -> Result<deadpool_redis::Connection> {
        pool.get().await.map_err(|e| match e {
            // Opening a new connection failed.
            PoolError::Backend(e) => map_err("connect", connect_timeout, e),
            // Nothing was sent: retrying is safe, hence `Unavailable`.
            PoolError::Timeout(TimeoutType::Wait) => Error::Unavailable {
                source: format!(
                    "connection pool exhausted: none of its {} connections came free within {:?}",
                    pool.status().max_size,
                    pool.timeouts().wait.unwrap_or(after)
                )
                .into(),
            },
            other => Error::Unavailable {
                source: Box::new(other),
            },
        })
    }

    /// Runs a script (EVALSHA, reloading after NOSCRIPT); unbounded (the
    /// caller, [`Conn::invoke`], bounds it).
    pub async fn invoke<T: FromRedisValue>(
        &self,
        inv: &ScriptInvocation<'_>,
        op: &'static str,
        after: Duration,
    ) -> Result<T> {
        match self {
            Self::Multiplexed { cons, next } => {
                Self::invoke_on(&mut Self::shared(cons, next), inv, op, after).await
            }
            Self::Pooled {
                pool,
                connect_timeout,
            } => {
                let mut con = Self::pooled(pool, *connect_timeout, after).await?;
                Self::invoke_on(&mut con, inv, op, after).await
            }
        }
    }

    /// [`Conn::invoke_acked`] on one connection of this mode; unbounded.
    pub async fn invoke_acked<T: FromRedisValue>(
        &self,
        inv: &ScriptInvocation<'_>,
        op: &'static str,
        after: Duration,
        ack: Acknowledge,
    ) -> Result<(T, u32)> {
        match self {
            Self::Multiplexed { cons, next } => {
                Self::invoke_acked_on(&mut Self::shared(cons, next), inv, op, after, ack).await
            }
            Self::Pooled {
                pool,
                connect_timeout,
            } => {
                let mut con = Self::pooled(pool, *connect_timeout, after).await?;
                Self::invoke_acked_on(&mut con, inv, op, after, ack).await
            }
        }
    }

    /// EVALSHA and WAIT pipelined: one request, so WAIT runs on the
    /// connection that wrote (WAIT counts the replicas that have this
    /// connection's writes; on another connection it would count
    /// nothing of ours). After NOSCRIPT (the script did not run; the WAIT
    /// did, harmlessly but perhaps for its whole timeout) the script is
    /// loaded and the pair sent again, waiting for what is left.
    async fn invoke_acked_on<T: FromRedisValue>(
        con: &mut impl redis::aio::ConnectionLike,
        inv: &ScriptInvocation<'_>,
        op: &'static str,
        after: Duration,
        ack: Acknowledge,
    ) -> Result<(T, u32)> {
        // A retry after NOSCRIPT waits only for what is left of the first
        // pair's wait (which may have been spent in full on a lagging
        // replica): the whole call stays within one acknowledgement
        // timeout, below the response timeout, and a shortfall is
        // reported as one (retryable), not as a timeout.
        let started = std::time::Instant::now();
        let mut attempts = 0;
        loop {
            let left = ack.timeout.saturating_sub(started.elapsed());
            let wait_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut pipe = redis::pipe();
            pipe.invoke_script(inv)
                .cmd("WAIT")
                .arg(ack.replicas)
                .arg(wait_ms);
            match pipe.query_async::<(T, i64)>(con).await {
                Ok((v, acked)) => return Ok((v, u32::try_from(acked.max(0)).unwrap_or(u32::MAX))),
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    attempts += 1;
                    if attempts >= 4 {
                        return Err(Error::Unavailable {
                            source: Box::new(e),
                        });
                    }
                    inv.load_async(con)
                        .await
                        .map_err(|e| map_err(op, after, e))?;
                }
                Err(e) => return Err(map_err(op, after, e)),
            }
        }
    }

    /// `invoke_async` reloads a script once after NOSCRIPT; a flush landing
    /// between that reload and the retry gives NOSCRIPT again. Nothing ran
    /// then, so try again a few times, and report a persisting NOSCRIPT as
    /// `Unavailable` (certainly not applied).
    async fn invoke_on<T: FromRedisValue>(
        con: &mut impl redis::aio::ConnectionLike,
        inv: &ScriptInvocation<'_>,
        op: &'static str,
        after: Duration,
    ) -> Result<T> {
        let mut attempts = 0;
        loop {
            match inv.invoke_async(con).await {
                Ok(v) => return Ok(v),
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    attempts += 1;
                    if attempts >= 4 {
                        return Err(Error::Unavailable {
                            source: Box::new(e),
                        });
                    }
                }
                Err(e) => return Err(map_err(op, after, e)),
            }
        }
    }

    /// Runs one command or pipeline; unbounded (the caller, [`Conn::query`],
    /// bounds it).
    pub async fn query<T: FromRedisValue, R: Request>(
        &self,
        request: &R,
        op: &'static str,
        after: Duration,
    ) -> Result<T> {
        let sent = |r: redis::RedisResult<T>| r.map_err(|e| map_err(op, after, e));
        match self {
            Self::Multiplexed { cons, next } => {
                sent(request.send(&mut Self::shared(cons, next)).await)
            }
            Self::Pooled {
                pool,
                connect_timeout,
            } => {
                let mut con = Self::pooled(pool, *connect_timeout, after).await?;
                sent(request.send(&mut con).await)
            }
        }
    }
}

/// What [`Conn::query`] sends: a command or a pipeline.
pub(crate) trait Request: Sync {
    fn send<T: FromRedisValue, C: redis::aio::ConnectionLike + Send>(
        &self,
        con: &mut C,
    ) -> impl std::future::Future<Output = redis::RedisResult<T>> + Send;
}

impl Request for Cmd {
    fn send<T: FromRedisValue, C: redis::aio::ConnectionLike + Send>(
        &self,
        con: &mut C,
    ) -> impl std::future::Future<Output = redis::RedisResult<T>> + Send {
        self.query_async(con)
    }
}

impl Request for redis::Pipeline {
    fn send<T: FromRedisValue, C: redis::aio::ConnectionLike + Send>(
        &self,
        con: &mut C,
    ) -> impl std::future::Future<Output = redis::RedisResult<T>> + Send {
        self.query_async(con)
    }
}
