//! Proxy health checks: a request through each proxy to a target URL.
//!
//! Every proxy protocol pharox knows is checked the way a scraper would use
//! it: `http` and `https` proxies by an absolute-form request (or `CONNECT`
//! when the target is `https://`), `socks4` and `socks5` by the SOCKS
//! handshake; credentials are sent when the proxy has them. The outcome:
//!
//! - an answer (any status below 400) within [`HealthConfig::slow_threshold`]
//!   marks the proxy `active`; a slower one marks it `slow`;
//! - a failure (refused, timed out, TLS or protocol error, status 400 or
//!   above, e.g. 407 for wrong credentials) counts towards a streak; after
//!   [`HealthConfig::failures_to_inactive`] consecutive failures the proxy
//!   is marked `inactive` (out of rotation at once); before that its status
//!   is kept and only `checked_at` and the error move;
//! - a success ends the streak, so an `inactive` proxy recovers.
//!
//! `banned` proxies are an operator's decision and are not checked. Failure
//! streaks live in the checker (per process): a worker restart starts them
//! again. Error texts never contain credentials (I8): they are built from
//! the error kind and have the proxy's credentials masked.
//!
//! # Which hosts are connected to
//!
//! Proxy records may come from remote callers (`pharox serve`), so before
//! connecting the checker reads the proxy's host as the connecting code
//! would ([`ProxyHost`]), resolves a name (with [`ResolveHost`], the system
//! resolver by default) and checks **every** address against
//! [`HealthConfig::proxy_hosts`]. One refused address (loopback,
//! link-local, …) fails the check with the policy's reason and nothing is
//! connected to; a refusal counts towards the failure streak like any
//! failure. Then it connects to the checked address, never to the name
//! again, so a DNS answer that changes between check and connect (DNS
//! rebinding) cannot redirect it:
//!
//! - `http`, `socks4`, `socks5` proxies: the proxy URL carries the checked
//!   IP instead of the name (the proxy never sees the name: the target's
//!   `Host` header and SOCKS request are unchanged);
//! - `https` proxies: TLS needs the name (SNI and certificate check), so
//!   the URL keeps it and the client is told to resolve it to the checked
//!   addresses only ([`reqwest::ClientBuilder::resolve_to_addrs`]): no DNS
//!   query is made for it. This relies on reqwest applying those overrides
//!   to proxy connections, which the worker's tests check.
//!
//! The target URL is the operator's own setting and is not judged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use pharox_core::host_policy::ProxyHost;
use pharox_core::{
    Error, HealthCheckResult, PoolId, Proxy, ProxyHostPolicy, ProxyId, ProxyProtocol, ProxyStatus,
    Result, Storage,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::Metrics;

/// How health checks run.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// The URL requested through each proxy.
    pub target: String,
    /// Time allowed for connecting through the proxy and getting the answer's headers.
    pub timeout: Duration,
    /// Answers slower than this mark the proxy `slow`.
    pub slow_threshold: Duration,
    /// Consecutive failures that mark a proxy `inactive` (at least 1).
    pub failures_to_inactive: u32,
    /// Checks in flight at once.
    pub concurrency: usize,
    /// Proxy hosts never connected to (see the [module docs](self)).
    pub proxy_hosts: ProxyHostPolicy,
}

impl HealthConfig {
    /// Defaults (10 s timeout, 2 s slow threshold, 3 failures, 32 at once,
    /// the default proxy host policy) for `target`.
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            timeout: Duration::from_secs(10),
            slow_threshold: Duration::from_secs(2),
            failures_to_inactive: 3,
            concurrency: 32,
            proxy_hosts: ProxyHostPolicy::default(),
        }
    }

    fn validate(&self) -> Result<()> {
        let url = reqwest::Url::parse(&self.target)
            .map_err(|e| Error::invalid("health.target", format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::invalid(
                "health.target",
                "must be an http or https URL",
            ));
        }
        if self.failures_to_inactive == 0 {
            return Err(Error::invalid(
                "health.failures_to_inactive",
                "must be at least 1",
            ));
        }
        if self.concurrency == 0 {
            return Err(Error::invalid("health.concurrency", "must be at least 1"));
        }
        if self.timeout.is_zero() {
            return Err(Error::invalid("health.timeout", "must be positive"));
        }
        Ok(())
    }
}

/// One proxy's check in a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    /// The proxy.
    pub proxy: ProxyId,
    /// Its status before the check.
    pub before: ProxyStatus,
    /// The status recorded.
    pub after: ProxyStatus,
    /// The measured round trip, when the check got an answer.
    pub latency_ms: Option<u32>,
    /// Why the check failed (credentials masked).
    pub error: Option<String>,
    /// Consecutive failures so far (0 after a success).
    pub failures: u32,
    /// Whether the store still had the proxy when the result was applied.
    pub applied: bool,
}

struct Probe {
    latency: Duration,
    error: Option<String>,
}

/// Resolves a proxy's host name to the addresses the checker judges and
/// then connects to.
pub trait ResolveHost: Send + Sync + 'static {
    /// The addresses of `name` (lowercase, IDNA-mapped), with `port`.
    fn resolve<'a>(
        &'a self,
        name: &'a str,
        port: u16,
    ) -> BoxFuture<'a, std::io::Result<Vec<SocketAddr>>>;
}

/// The system resolver ([`tokio::net::lookup_host`]: `getaddrinfo`, so
/// `/etc/hosts` too).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl ResolveHost for SystemResolver {
    fn resolve<'a>(
        &'a self,
        name: &'a str,
        port: u16,
    ) -> BoxFuture<'a, std::io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((name, port)).await?.collect()) })
    }
}

/// Runs health checks and remembers failure streaks between passes.
pub struct HealthChecker {
    config: HealthConfig,
    streaks: Mutex<HashMap<(PoolId, ProxyId), u32>>,
    metrics: Option<Arc<Metrics>>,
    resolver: Arc<dyn ResolveHost>,
}

impl HealthChecker {
    /// A checker with `config`; fails on a bad target URL or zero limits.
    pub fn new(config: HealthConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            streaks: Mutex::new(HashMap::new()),
            metrics: None,
            resolver: Arc::new(SystemResolver),
        })
    }

    /// Counts applied results in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Resolves proxy host names with `resolver` instead of the system's.
    pub fn with_resolver(mut self, resolver: impl ResolveHost) -> Self {
        self.resolver = Arc::new(resolver);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// Checks every proxy of `pool` except banned ones, at most
    /// `concurrency` at once, and applies each result as it arrives. Stops
    /// starting checks when `cancel` fires (those in flight finish and are
    /// applied). Rows come in the pool's proxy order.
    pub async fn run_pass<S: Storage>(
        &self,
        store: &S,
        pool: &PoolId,
        cancel: &CancellationToken,
    ) -> Result<Vec<CheckRow>> {
        let span = tracing::info_span!(
            target: "pharox::health",
            "health_check",
            pool = %pool,
            checked = tracing::field::Empty,
            failed = tracing::field::Empty,
        );
        let rows = self
            .pass(store, pool, cancel)
            .instrument(span.clone())
            .await;
        if let Ok(rows) = &rows {
            span.record("checked", rows.len());
            span.record("failed", rows.iter().filter(|r| r.error.is_some()).count());
        }
        rows
    }

    async fn pass<S: Storage>(
        &self,
        store: &S,
        pool: &PoolId,
        cancel: &CancellationToken,
    ) -> Result<Vec<CheckRow>> {
        let proxies: Vec<Proxy> = store
            .list_proxies(pool)
            .await?
            .into_iter()
            .filter(|p| p.status != ProxyStatus::Banned)
            .collect();
        let mut rows = Vec::with_capacity(proxies.len());
        let mut checks = futures_util::stream::iter(proxies.into_iter().enumerate())
            .take_while(|_| std::future::ready(!cancel.is_cancelled()))
            .map(|(i, proxy)| async move {
                let probe = self.probe(&proxy).await;
                (i, proxy, probe)
            })
            .buffer_unordered(self.config.concurrency);
        while let Some((i, proxy, probe)) = checks.next().await {
            rows.push((i, self.apply(store, &proxy, probe).await?));
        }
        rows.sort_by_key(|(i, _)| *i);
        Ok(rows.into_iter().map(|(_, row)| row).collect())
    }

    async fn apply<S: Storage>(&self, store: &S, proxy: &Proxy, probe: Probe) -> Result<CheckRow> {
        let key = (proxy.pool.clone(), proxy.id.clone());
        let failures = {
            let mut streaks = self.streaks.lock();
            if probe.error.is_some() {
                let n = streaks.entry(key).or_insert(0);
                *n = n.saturating_add(1);
                *n
            } else {
                streaks.remove(&key);
                0
            }
        };
        let latency_ms = probe
            .error
            .is_none()
            .then(|| u32::try_from(probe.latency.as_millis()).unwrap_or(u32::MAX));
        let after = match (&probe.error, failures) {
            (None, _) if probe.latency > self.config.slow_threshold => ProxyStatus::Slow,
            (None, _) => ProxyStatus::Active,
            (Some(_), n) if n >= self.config.failures_to_inactive => ProxyStatus::Inactive,
            (Some(_), _) => proxy.status,
        };
        let mut result =
            HealthCheckResult::new(proxy.pool.clone(), proxy.id.clone(), after, Utc::now());
        result.latency_ms = latency_ms;
        result.error = probe.error.clone();
        let applied = store.apply_health_check_result(&result).await?.is_some();
        if applied && let Some(m) = &self.metrics {
            m.observe_health(&proxy.pool, after);
        }
        match &probe.error {
            None => {
                tracing::debug!(pool = %proxy.pool, proxy = %proxy.id, ?after, latency_ms, "health check passed")
            }
            Some(e) => {
                tracing::info!(pool = %proxy.pool, proxy = %proxy.id, ?after, failures, error = %e, "health check failed")
            }
        }
        Ok(CheckRow {
            proxy: proxy.id.clone(),
            before: proxy.status,
            after,
            latency_ms,
            error: probe.error,
            failures,
            applied,
        })
    }

    async fn probe(&self, proxy: &Proxy) -> Probe {
        let started = Instant::now();
        let outcome = self.request(proxy).await;
        Probe {
            latency: started.elapsed(),
            error: outcome.err().map(|e| mask(proxy, &e)),
        }
    }

    /// The addresses to connect to for `proxy`, every one accepted by the
    /// policy; an error (the reason) when any is refused or none is found.
    async fn admitted(&self, proxy: &Proxy) -> std::result::Result<Admitted, String> {
        let policy = &self.config.proxy_hosts;
        let host = policy.check_host(&proxy.host).map_err(|r| r.to_string())?;
        let name = match host {
            ProxyHost::Ip(ip) => {
                return Ok(Admitted {
                    addrs: vec![SocketAddr::new(ip, proxy.port)],
                    name: None,
                });
            }
            ProxyHost::Name(name) => name,
        };
        let resolving = self.resolver.resolve(&name, proxy.port);
        let mut addrs = match tokio::time::timeout(self.config.timeout, resolving).await {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(e)) => return Err(format!("cannot resolve `{}`: {e}", proxy.host)),
            Err(_) => return Err(format!("resolving `{}` timed out", proxy.host)),
        };
        addrs.dedup();
        if addrs.is_empty() {
            return Err(format!("`{}` resolves to no address", proxy.host));
        }
        for a in &mut addrs {
            policy
                .check_resolved(&proxy.host, a.ip())
                .map_err(|r| r.to_string())?;
            a.set_port(proxy.port);
        }
        Ok(Admitted {
            addrs,
            name: Some(name),
        })
    }

    async fn request(&self, proxy: &Proxy) -> std::result::Result<(), String> {
        let admitted = self.admitted(proxy).await?;
        let mut client = reqwest::Client::builder();
        // The URL carries the credentials (percent-encoded): reqwest sends
        // them as Proxy-Authorization or in the SOCKS5 handshake. It is
        // never logged.
        let url = match (proxy.protocol, &admitted.name) {
            (ProxyProtocol::Https, Some(name)) => {
                client = client.resolve_to_addrs(name, &admitted.addrs);
                proxy.url()
            }
            _ => Proxy {
                host: admitted.addrs[0].ip().to_string(),
                ..proxy.clone()
            }
            .url(),
        };
        let via = reqwest::Proxy::all(url).map_err(|e| describe(&e))?;
        let client = client
            .proxy(via)
            .timeout(self.config.timeout)
            .connect_timeout(self.config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| describe(&e))?;
        let answer = client
            .get(&self.config.target)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = answer.status();
        if status.as_u16() >= 400 {
            return Err(format!("status {status}"));
        }
        Ok(())
    }
}

/// Where a check may connect: the checked addresses (port set) and, for a
/// name, the name (an `https` proxy's TLS needs it).
struct Admitted {
    addrs: Vec<SocketAddr>,
    name: Option<String>,
}

/// An error's kind and its chain of causes, without the request URL.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connect failed"
    } else if e.is_builder() {
        "bad proxy address"
    } else {
        "request failed"
    };
    let mut out = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Masks the proxy's credentials in `text` wherever they appear, plain or
/// percent-encoded (defence in depth: `describe` never includes the URL).
fn mask(proxy: &Proxy, text: &str) -> String {
    let mut out = text.to_owned();
    if let Some(c) = &proxy.credentials {
        let password = c.password.expose();
        let encoded =
            percent_encoding::utf8_percent_encode(password, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        for s in [proxy.url(), password.to_owned(), encoded] {
            if !s.is_empty() {
                out = out.replace(&s, "***");
            }
        }
    }
    out
}
