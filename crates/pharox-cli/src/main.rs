//! `pharox`: run the demo, benchmark a store, run the worker or the HTTP service, administer pools.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pharox_cli::bench::{self, BenchOptions};
use pharox_cli::demo::{self, DemoOptions};
use pharox_cli::synthetic::Shape;
use pharox_cli::{admin, ops, serve, serve_child};
use pharox_core::{InMemoryStorage, PoolId, ProxyHostPolicy, Selector, Storage};
use pharox_postgres::{PostgresConfig, PostgresStorage, SCHEMA_VERSION};
use pharox_redis::{ConnectionMode, RedisConfig, RedisStorage, RedisTls};
use pharox_worker::{CancellationToken, HealthChecker, HealthConfig, Worker, WorkerConfig};

#[derive(Parser)]
#[command(
    name = "pharox",
    version,
    about = "Distributed lease coordinator for proxy pools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate scraping workers sharing a pool (some crash), then check every invariant.
    Demo(DemoArgs),
    /// Measure acquire+release cycles per second against a store.
    Bench(BenchArgs),
    /// Run the worker: sweep expired leases, export pool stats (/metrics,
    /// /healthz), keep a stats history, run health checks; stops on SIGINT/SIGTERM.
    Worker(WorkerArgs),
    /// Check every proxy of a pool once through a target URL and apply the results.
    HealthCheck(HealthCheckArgs),
    /// Print a pool's stats, or its history as recorded by workers.
    Stats(StatsArgs),
    /// Serve the HTTP lease API (the routes pharox-sdk calls) over the
    /// in-memory store, Redis with --redis-url or PostgreSQL with
    /// --postgres-url; stops on SIGINT/SIGTERM
    /// after requests in flight finish.
    Serve(ServeArgs),
    /// Create, list, show and remove pools (on Redis, or a server with --server).
    Pool(AdminArgs<admin::PoolCommand>),
    /// Import, list, remove proxies and set their status.
    Proxy(AdminArgs<admin::ProxyCommand>),
    /// Acquire, release, renew and list leases from a shell script.
    Lease(AdminArgs<admin::LeaseCommand>),
    /// Create or upgrade pharox's schema in a PostgreSQL database (re-running
    /// it is a no-op); every command that takes --postgres-url needs it done.
    Migrate(MigrateArgs),
}

/// `pharox migrate`.
#[derive(clap::Args)]
struct MigrateArgs {
    #[command(flatten)]
    postgres: PostgresArgs,
    /// Only print the database's schema version and the one this pharox
    /// needs; change nothing (exit code 1 when they differ).
    #[arg(long)]
    check: bool,
}

/// PostgreSQL instead of Redis, in every command that chooses a store.
#[derive(clap::Args, Clone, Debug, Default)]
struct PostgresArgs {
    /// Use PostgreSQL at this URL (`postgres://user:password@host:port/db`,
    /// or a `host=… dbname=…` string) instead of Redis; the password is
    /// never printed. The schema must be in place (`pharox migrate`).
    #[arg(
        long,
        env = "PHAROX_POSTGRES_URL",
        hide_env_values = true,
        global = true,
        value_name = "URL"
    )]
    postgres_url: Option<String>,
    /// Most connections to PostgreSQL the store opens (default: 16 for
    /// serve, one per task for bench and demo, 4 for worker, health-check
    /// and the admin commands, 1 for stats).
    #[arg(
        long,
        env = "PHAROX_POSTGRES_POOL_SIZE",
        global = true,
        value_name = "N"
    )]
    postgres_pool_size: Option<usize>,
}

impl PostgresArgs {
    /// The URL, if one is given (an empty variable means unset).
    fn url(&self) -> Option<&str> {
        self.postgres_url.as_deref().filter(|u| !u.is_empty())
    }

    fn config(&self, default_pool_size: usize) -> Option<PostgresConfig> {
        let url = self.url()?;
        Some(
            PostgresConfig::new(url)
                .pool_size(self.postgres_pool_size.unwrap_or(default_pool_size).max(1)),
        )
    }

    /// Connects, without looking at the schema.
    async fn open(&self, default_pool_size: usize) -> Result<PostgresStorage> {
        let config = self
            .config(default_pool_size)
            .context("--postgres-url (or PHAROX_POSTGRES_URL) is required")?;
        PostgresStorage::connect(config.clone())
            .await
            .with_context(|| format!("connecting to {}", config.redacted_url()))
    }

    /// Connects and checks the database holds the schema this pharox
    /// needs (else says to run `pharox migrate`).
    async fn connect(&self, default_pool_size: usize) -> Result<PostgresStorage> {
        let store = self.open(default_pool_size).await?;
        let version = store.schema_version().await?;
        let url = store.config().redacted_url();
        if version < SCHEMA_VERSION {
            anyhow::bail!(
                "the database at {url} holds pharox schema version {version}, this pharox needs \
                 {SCHEMA_VERSION}: run `pharox migrate --postgres-url URL` (or with \
                 PHAROX_POSTGRES_URL set) first"
            );
        }
        if version > SCHEMA_VERSION {
            anyhow::bail!(
                "the database at {url} holds pharox schema version {version}, newer than this \
                 pharox knows ({SCHEMA_VERSION}): upgrade pharox"
            );
        }
        Ok(store)
    }

    /// Connects and migrates the schema first (the demo and the bench,
    /// which make their own pools).
    async fn connect_migrated(&self, default_pool_size: usize) -> Result<PostgresStorage> {
        let store = self.open(default_pool_size).await?;
        let applied = store.migrate().await?;
        if !applied.is_empty() {
            eprintln!("migrated the pharox schema: applied versions {applied:?}");
        }
        Ok(store)
    }
}

/// Runs `$body` with `$store` bound to the store the arguments name:
/// PostgreSQL when `$pg` has a URL, else Redis (`$redis.connect($n)`).
/// `Storage` is not object safe, so each arm is its own instance of the body.
macro_rules! on_store {
    ($redis:expr, $pg:expr, $n:expr, |$store:ident| $body:expr) => {
        match $pg.url() {
            Some(_) => {
                let $store = $pg.connect($n).await?;
                $body
            }
            None => {
                let $store = $redis.connect($n).await?;
                $body
            }
        }
    };
}

/// An admin command and the store it runs against: a `pharox serve` with
/// --server, PostgreSQL with --postgres-url, else Redis at --redis-url.
/// The options go anywhere on the line.
#[derive(clap::Args)]
struct AdminArgs<C: Subcommand> {
    #[command(subcommand)]
    command: C,
    /// A `pharox serve` to talk to instead of Redis (e.g. http://127.0.0.1:8000).
    #[arg(long, env = "PHAROX_SERVER", global = true)]
    server: Option<String>,
    /// The server's API key (prefer the environment variable: arguments are
    /// visible to other users of the machine).
    #[arg(long, env = "PHAROX_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
    /// Redis URL (`redis://[user:password@]host:port[/db]`, `rediss://…` for TLS,
    /// `redis+sentinel://[user:password@]host:port[,host:port…]/SERVICE`); the password is never printed.
    #[arg(
        long,
        env = "PHAROX_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true,
        global = true
    )]
    redis_url: String,
    /// Key prefix in Redis.
    #[arg(long, default_value = "pharox", global = true)]
    redis_prefix: String,
    #[command(flatten)]
    redis_tls: RedisTlsArgs,
    #[command(flatten)]
    redis_ack: RedisAckArgs,
    /// Connect even under an allkeys-* maxmemory-policy (see `pharox worker --help`).
    #[arg(long, env = "PHAROX_REDIS_ALLOW_EVICTION", global = true)]
    redis_allow_eviction: bool,
    #[command(flatten)]
    postgres: PostgresArgs,
    /// Print one JSON object a line instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

impl<C: Subcommand> AdminArgs<C> {
    /// Runs `f` on the store these arguments name.
    async fn run<F>(self, f: F) -> Result<ExitCode>
    where
        F: AdminFn<C>,
    {
        let out = admin::Output { json: self.json };
        // An empty variable (PHAROX_SERVER=) means unset, as for a shell default.
        match self.server.as_deref().filter(|s| !s.is_empty()) {
            Some(url) => {
                let mut builder = pharox_client::RemoteStorage::builder(url);
                if let Some(key) = self.api_key.as_ref().filter(|k| !k.is_empty()) {
                    builder = builder.api_key(key.clone());
                }
                let store = builder.build().with_context(|| format!("--server {url}"))?;
                f.call(&store, self.command, out).await
            }
            None if self.postgres.url().is_some() => {
                let store = self.postgres.connect(4).await?;
                f.call(&store, self.command, out).await
            }
            None => {
                let config = self.redis_ack.apply(
                    RedisConfig::new(self.redis_url.clone())
                        .prefix(self.redis_prefix.clone())
                        .tls(self.redis_tls.tls())
                        .allow_eviction(self.redis_allow_eviction),
                );
                let store = RedisStorage::connect(config.clone())
                    .await
                    .with_context(|| format!("connecting to {}", config.redacted_url()))?;
                f.call(&store, self.command, out).await
            }
        }
    }
}

/// One admin entry point, callable on any store (`Storage` is not object safe).
trait AdminFn<C> {
    async fn call<S: Storage>(&self, store: &S, command: C, out: admin::Output)
    -> Result<ExitCode>;
}

struct PoolFn;
struct ProxyFn;
struct LeaseFn;

impl AdminFn<admin::PoolCommand> for PoolFn {
    async fn call<S: Storage>(
        &self,
        store: &S,
        command: admin::PoolCommand,
        out: admin::Output,
    ) -> Result<ExitCode> {
        admin::pool(store, command, out).await
    }
}

impl AdminFn<admin::ProxyCommand> for ProxyFn {
    async fn call<S: Storage>(
        &self,
        store: &S,
        command: admin::ProxyCommand,
        out: admin::Output,
    ) -> Result<ExitCode> {
        admin::proxy(store, command, out).await
    }
}

impl AdminFn<admin::LeaseCommand> for LeaseFn {
    async fn call<S: Storage>(
        &self,
        store: &S,
        command: admin::LeaseCommand,
        out: admin::Output,
    ) -> Result<ExitCode> {
        admin::lease(store, command, out).await
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    /// The embedded in-memory store.
    Memory,
    /// Redis at --redis-url.
    Redis,
    /// A `pharox serve` child process on Redis at --redis-url, through
    /// pharox-client, beside the same run on Redis directly.
    Http,
    /// PostgreSQL at --postgres-url (the schema is migrated first).
    Postgres,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Multiplexed connections shared by all tasks (pipelined).
    Multiplexed,
    /// A deadpool-redis pool: one connection per call in flight.
    Pooled,
}

/// The TLS files of a `rediss://` URL, in every command that takes
/// --redis-url. Paths only: the files are read when connecting, and their
/// content is never printed.
#[derive(clap::Args, Clone, Debug, Default)]
struct RedisTlsArgs {
    /// PEM file of the CA certificates that verify a rediss:// server
    /// (default: the system's trust store).
    #[arg(long, env = "PHAROX_REDIS_CA", value_name = "FILE", global = true)]
    redis_ca: Option<PathBuf>,
    /// PEM file of a client certificate for mutual TLS (with --redis-key).
    #[arg(long, env = "PHAROX_REDIS_CERT", value_name = "FILE", global = true)]
    redis_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key (with --redis-cert).
    #[arg(long, env = "PHAROX_REDIS_KEY", value_name = "FILE", global = true)]
    redis_key: Option<PathBuf>,
}

impl RedisTlsArgs {
    fn tls(&self) -> RedisTls {
        // An empty variable (PHAROX_REDIS_CA=) means unset.
        let path = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        RedisTls {
            ca_file: path(&self.redis_ca),
            cert_file: path(&self.redis_cert),
            key_file: path(&self.redis_key),
        }
    }
}

/// Acknowledged lease writes (`RedisConfig::acknowledge`), for the
/// commands that acquire and renew.
#[derive(clap::Args, Clone, Debug, Default)]
struct RedisAckArgs {
    /// Report a lease granted (or renewed) only once this many replicas
    /// have it (Redis WAIT), so a failover keeps it; when fewer confirm in
    /// time the call fails retryably (README "Durability and failover").
    #[arg(
        long,
        env = "PHAROX_REDIS_WAIT_REPLICAS",
        value_name = "N",
        global = true
    )]
    redis_wait_replicas: Option<u32>,
    /// How long to wait for them (below the 5 s response timeout).
    #[arg(
        long,
        env = "PHAROX_REDIS_WAIT_TIMEOUT",
        default_value = "1s",
        value_parser = ops::parse_duration,
        global = true
    )]
    redis_wait_timeout: Duration,
}

impl RedisAckArgs {
    fn apply(&self, config: RedisConfig) -> RedisConfig {
        match self.redis_wait_replicas {
            Some(n) => config.acknowledge(n, self.redis_wait_timeout),
            None => config,
        }
    }
}

#[derive(clap::Args, Clone)]
struct RedisArgs {
    /// Redis URL (`redis://[user:password@]host:port[/db]`, `rediss://…` for TLS,
    /// `redis+sentinel://[user:password@]host:port[,host:port…]/SERVICE`); the password is never printed.
    #[arg(
        long,
        env = "PHAROX_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// Key prefix in Redis.
    #[arg(long, default_value = "pharox")]
    redis_prefix: String,
    #[command(flatten)]
    redis_tls: RedisTlsArgs,
    /// How to connect to Redis.
    #[arg(long, value_enum, default_value_t = Mode::Multiplexed)]
    redis_mode: Mode,
    /// Multiplexed connections to open, or the size of the deadpool pool
    /// (default: 1 multiplexed; pooled: one per task).
    #[arg(long)]
    redis_connections: Option<usize>,
    /// Connect even if Redis's maxmemory-policy (allkeys-*) may evict pharox's
    /// keys, losing leases and fencing tokens silently; warns instead of refusing.
    #[arg(long, env = "PHAROX_REDIS_ALLOW_EVICTION")]
    redis_allow_eviction: bool,
}

impl RedisArgs {
    fn config(&self, tasks: usize) -> RedisConfig {
        let mode = match self.redis_mode {
            Mode::Multiplexed => ConnectionMode::Multiplexed {
                connections: self.redis_connections.unwrap_or(1),
            },
            Mode::Pooled => ConnectionMode::Pooled {
                size: self.redis_connections.unwrap_or(tasks),
            },
        };
        RedisConfig::new(self.redis_url.clone())
            .prefix(self.redis_prefix.clone())
            .tls(self.redis_tls.tls())
            .mode(mode)
            .allow_eviction(self.redis_allow_eviction)
    }

    async fn connect(&self, tasks: usize) -> Result<RedisStorage> {
        let config = self.config(tasks);
        RedisStorage::connect(config.clone())
            .await
            .with_context(|| format!("connecting to {}", config.redacted_url()))
    }
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
            Self::Http => "http",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Run on Redis at this URL instead of the embedded in-memory store
    /// (the pool named by --pool is replaced).
    #[arg(long, env = "PHAROX_REDIS_URL")]
    redis_url: Option<String>,
    #[command(flatten)]
    redis_tls: RedisTlsArgs,
    #[command(flatten)]
    redis_ack: RedisAckArgs,
    /// As for the other commands: connect even under an allkeys-* maxmemory-policy.
    #[arg(long, env = "PHAROX_REDIS_ALLOW_EVICTION")]
    redis_allow_eviction: bool,
    /// Or on PostgreSQL (the schema is migrated first).
    #[command(flatten)]
    postgres: PostgresArgs,
    /// Concurrent workers.
    #[arg(long, default_value_t = 64)]
    workers: usize,
    /// Proxies in the synthetic pool (mixed countries, max_concurrency 1-4, ~2% unhealthy).
    #[arg(long, default_value_t = 1_000)]
    proxies: u64,
    /// How long the workers run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Lease time-to-live in milliseconds (abandoned leases come back after it).
    #[arg(long, default_value_t = 1_000)]
    lease_ttl_ms: u64,
    /// Chance per cycle that a worker crashes and abandons its lease.
    #[arg(long, default_value_t = 0.001)]
    crash_rate: f64,
    /// Longest a worker holds a lease, in milliseconds (0: release at once).
    #[arg(long, default_value_t = 0)]
    hold_ms: u64,
    /// Seed of the workers' random choices.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Name of the demo pool.
    #[arg(long, default_value = "demo")]
    pool: String,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Store to measure.
    #[arg(long, value_enum, default_value_t = Backend::Memory)]
    backend: Backend,
    /// Proxies in the synthetic pool.
    #[arg(long, default_value_t = 1_000)]
    proxies: u64,
    /// Concurrent tasks running acquire+release.
    #[arg(long, default_value_t = 1)]
    tasks: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Unmeasured warm-up seconds before the window.
    #[arg(long, default_value_t = 1.0)]
    warmup_seconds: f64,
    /// first-available, least-used, round-robin or lowest-latency.
    #[arg(long, default_value = "first-available")]
    selector: Selector,
    /// Lease only proxies of this country (synthetic pools: US 25%, DE 15%, … AU 1%, NZ 1%).
    #[arg(long)]
    country: Option<String>,
    /// Name of the bench pool (replaced, and removed after a Redis run).
    #[arg(long, default_value = "bench")]
    pool: String,
    /// Redis: keep the seeded pool after the run and reuse it when it already
    /// holds exactly --proxies proxies and no lease (saves re-seeding large pools).
    #[arg(long)]
    reuse_pool: bool,
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    redis_ack: RedisAckArgs,
    #[command(flatten)]
    postgres: PostgresArgs,
    /// Runtime worker threads (default: the smaller of --tasks and the CPU
    /// count; more threads than tasks only move the tasks between cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct LogArgs {
    /// Log lines as `pretty` text or `json` objects (standard error).
    #[arg(long, env = "PHAROX_LOG_FORMAT", default_value = "pretty")]
    log_format: ops::LogFormat,
    /// Log filter, e.g. `info` or `pharox_worker=debug,info`.
    #[arg(long, env = "PHAROX_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Export spans (acquire, release, renew, sweep, health checks) over
    /// OTLP/HTTP to the collector at this base URL (e.g.
    /// http://127.0.0.1:4318); also OTEL_EXPORTER_OTLP_ENDPOINT or
    /// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT. Off when none is set.
    #[arg(long, env = "PHAROX_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

impl LogArgs {
    /// Installs logging (and trace export, if configured) for `service`.
    fn init(&self, service: &'static str) -> Result<ops::TelemetryGuard> {
        let export = ops::TraceExport::resolve(self.otlp_endpoint.as_deref(), service, |v| {
            std::env::var(v).ok()
        });
        ops::init_logging(self.log_format, &self.log_level, &export)
    }
}

#[derive(clap::Args, Clone)]
struct ProxyHostArgs {
    /// Proxy hosts to accept although refused by default (loopback,
    /// link-local, unspecified, multicast, cloud metadata addresses in any
    /// spelling, `localhost`): comma-separated CIDR ranges, addresses and
    /// loopback names, e.g. `127.0.0.0/8,::1,localhost`. Private ranges
    /// (10/8, 172.16/12, 192.168/16, fc00::/7) are always accepted.
    #[arg(
        long = "allow-proxy-hosts",
        env = "PHAROX_ALLOW_PROXY_HOSTS",
        value_name = "LIST",
        value_parser = ProxyHostPolicy::with_allow_list
    )]
    allow_proxy_hosts: Option<ProxyHostPolicy>,
}

impl ProxyHostArgs {
    /// The policy, logged when it allows more than the default.
    fn policy(&self) -> ProxyHostPolicy {
        let policy = self.allow_proxy_hosts.clone().unwrap_or_default();
        if !policy.allow_list().is_empty() {
            tracing::warn!(allowed = %policy, "proxy hosts refused by default are allowed");
        }
        policy
    }
}

#[derive(clap::Args)]
struct HealthArgs {
    /// Request made through each proxy (http:// or https://, the latter via CONNECT).
    #[arg(long = "health-target", env = "PHAROX_HEALTH_TARGET")]
    target: Option<String>,
    /// Time allowed per check.
    #[arg(long = "health-timeout", env = "PHAROX_HEALTH_TIMEOUT", default_value = "10s", value_parser = ops::parse_duration)]
    timeout: Duration,
    /// Answers slower than this mark a proxy `slow`.
    #[arg(long, env = "PHAROX_SLOW_THRESHOLD", default_value = "2s", value_parser = ops::parse_duration)]
    slow_threshold: Duration,
    /// Checks in flight at once.
    #[arg(
        long = "health-concurrency",
        env = "PHAROX_HEALTH_CONCURRENCY",
        default_value_t = 32
    )]
    concurrency: usize,
    /// The checker resolves each proxy's host and connects only to
    /// addresses this policy accepts.
    #[command(flatten)]
    hosts: ProxyHostArgs,
}

impl HealthArgs {
    fn config(&self, target: String, failures: u32) -> HealthConfig {
        HealthConfig {
            target,
            timeout: self.timeout,
            slow_threshold: self.slow_threshold,
            failures_to_inactive: failures,
            concurrency: self.concurrency,
            proxy_hosts: self.hosts.policy(),
        }
    }
}

#[derive(clap::Args)]
struct WorkerArgs {
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    postgres: PostgresArgs,
    /// Pools to look after (comma-separated); default: every pool, discovered on each tick.
    #[arg(long, env = "PHAROX_POOLS", value_delimiter = ',')]
    pools: Vec<String>,
    /// Time between sweeps (each followed by a stats snapshot per pool).
    #[arg(long, env = "PHAROX_SWEEP_INTERVAL", default_value = "5s", value_parser = ops::parse_duration)]
    sweep_interval: Duration,
    /// Expired leases reclaimed per cleanup call (1 to 10000).
    #[arg(long, env = "PHAROX_SWEEP_BATCH", default_value_t = 500)]
    sweep_batch: usize,
    /// Random stretch of each interval, as a fraction (0 to 0.5).
    #[arg(long, env = "PHAROX_JITTER", default_value_t = 0.1)]
    jitter: f64,
    /// Stats snapshots kept per pool in Redis.
    #[arg(long, env = "PHAROX_HISTORY_LEN", default_value_t = 1_000)]
    history_len: usize,
    /// Serve /metrics and /healthz here (`off` to serve nothing).
    #[arg(long, env = "PHAROX_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    metrics_addr: String,
    #[command(flatten)]
    health: HealthArgs,
    /// Time between health-check passes (with --health-target).
    #[arg(long, env = "PHAROX_HEALTH_INTERVAL", default_value = "60s", value_parser = ops::parse_duration)]
    health_interval: Duration,
    /// Consecutive failed checks that mark a proxy `inactive`.
    #[arg(long, env = "PHAROX_FAILURES_TO_INACTIVE", default_value_t = 3)]
    failures_to_inactive: u32,
    /// After SIGINT/SIGTERM, how long work in flight may take.
    #[arg(long, env = "PHAROX_SHUTDOWN_GRACE", default_value = "3s", value_parser = ops::parse_duration)]
    shutdown_grace: Duration,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(clap::Args)]
struct HealthCheckArgs {
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    postgres: PostgresArgs,
    /// The pool to check.
    #[arg(long)]
    pool: String,
    #[command(flatten)]
    health: HealthArgs,
    /// Print the rows as JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct StatsArgs {
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    postgres: PostgresArgs,
    /// The pool.
    #[arg(long)]
    pool: String,
    /// Print the newest N snapshots recorded by workers instead of the live stats.
    #[arg(long, num_args = 0..=1, default_missing_value = "20")]
    history: Option<usize>,
    /// Print JSON (one object per line).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on. Without API keys only loopback addresses are allowed.
    #[arg(long, env = "PHAROX_LISTEN", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Serve Redis at this URL instead of the embedded in-memory store.
    #[arg(long, env = "PHAROX_REDIS_URL")]
    redis_url: Option<String>,
    /// Key prefix in Redis.
    #[arg(long, default_value = "pharox")]
    redis_prefix: String,
    #[command(flatten)]
    redis_tls: RedisTlsArgs,
    #[command(flatten)]
    redis_ack: RedisAckArgs,
    /// As for the other commands: connect even under an allkeys-* maxmemory-policy.
    #[arg(long, env = "PHAROX_REDIS_ALLOW_EVICTION")]
    redis_allow_eviction: bool,
    /// Or serve PostgreSQL (the schema must be in place: `pharox migrate`).
    #[command(flatten)]
    postgres: PostgresArgs,
    /// File of API keys, one a line (`#` starts a comment). Keys are also
    /// read from PHAROX_API_KEYS (comma-separated); never pass them as arguments.
    #[arg(long, env = "PHAROX_API_KEYS_FILE")]
    api_keys_file: Option<PathBuf>,
    /// Largest request body in bytes (larger: 413).
    #[arg(long, env = "PHAROX_BODY_LIMIT", default_value_t = pharox_server::DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// Time budget of one request (past it: 503 request_timeout).
    #[arg(long, env = "PHAROX_REQUEST_TIMEOUT", default_value = "30s", value_parser = ops::parse_duration)]
    request_timeout: Duration,
    /// Requests handled at once; more are answered 503 overloaded at once.
    #[arg(long, env = "PHAROX_CONCURRENCY_LIMIT", default_value_t = pharox_server::DEFAULT_CONCURRENCY_LIMIT)]
    concurrency_limit: usize,
    /// Serve /metrics without an API key (it names every pool).
    #[arg(long, env = "PHAROX_PUBLIC_METRICS")]
    public_metrics: bool,
    /// Proxy writes naming a host this policy refuses answer 400.
    #[command(flatten)]
    hosts: ProxyHostArgs,
    #[command(flatten)]
    log: LogArgs,
}

impl Command {
    /// Worker threads for the runtime: all cores, except for a bench with
    /// fewer tasks than cores.
    /// The logging options and service name of the long-running commands.
    fn logging(&self) -> Option<(&LogArgs, &'static str)> {
        match self {
            Self::Serve(args) => Some((&args.log, "pharox-serve")),
            Self::Worker(args) => Some((&args.log, "pharox-worker")),
            _ => None,
        }
    }

    fn threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        match self {
            Self::Bench(args) => args.threads.unwrap_or(args.tasks.min(cores)).max(1),
            _ => cores,
        }
    }
}

/// mimalloc instead of the system allocator: the HTTP path (hyper, axum,
/// reqwest) allocates and frees per request, and glibc's malloc spent about
/// a tenth of the CPU of `pharox bench --backend http` (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before the runtime: the OTLP exporter's client blocks, and must be
    // made and dropped outside it (the guard outlives the runtime).
    let telemetry = match cli.command.logging().map(|(log, name)| log.init(name)) {
        Some(Err(e)) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
        Some(Ok(guard)) => Some(guard),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.command.threads())
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    };
    drop(runtime);
    drop(telemetry);
    code
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Demo(args) => run_demo(args).await,
        Command::Bench(args) => run_bench(args).await,
        Command::Worker(args) => run_worker(args).await,
        Command::HealthCheck(args) => run_health_check(args).await,
        Command::Stats(args) => run_stats(args).await,
        Command::Serve(args) => run_serve(args).await,
        Command::Pool(args) => args.run(PoolFn).await,
        Command::Proxy(args) => args.run(ProxyFn).await,
        Command::Lease(args) => args.run(LeaseFn).await,
        Command::Migrate(args) => run_migrate(args).await,
    }
}

async fn run_migrate(args: MigrateArgs) -> Result<ExitCode> {
    let store = args.postgres.open(1).await?;
    let url = store.config().redacted_url();
    let before = store.schema_version().await?;
    if args.check {
        println!("{url}: pharox schema version {before}; this pharox needs {SCHEMA_VERSION}");
        return Ok(if before == SCHEMA_VERSION {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if before > SCHEMA_VERSION {
        anyhow::bail!(
            "{url} holds pharox schema version {before}, newer than this pharox knows \
             ({SCHEMA_VERSION}): upgrade pharox"
        );
    }
    let applied = store.migrate().await?;
    if applied.is_empty() {
        println!("{url}: already at pharox schema version {before}; nothing to do");
    } else {
        let after = store.schema_version().await?;
        println!(
            "{url}: applied versions {applied:?}, from {before} to pharox schema version {after}"
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_serve(args: ServeArgs) -> Result<ExitCode> {
    let env_keys = std::env::var(serve::API_KEYS_ENV).ok();
    let keys = serve::load_api_keys(env_keys.as_deref(), args.api_keys_file.as_deref())?;
    serve::check_exposure(args.listen, &keys)?;
    if args.concurrency_limit == 0 {
        anyhow::bail!("--concurrency-limit must be at least 1");
    }
    if args.request_timeout.is_zero() {
        anyhow::bail!("--request-timeout must be longer than 0s");
    }
    let config = pharox_server::ServerConfig {
        body_limit: args.body_limit,
        request_timeout: args.request_timeout,
        concurrency_limit: args.concurrency_limit,
        public_metrics: args.public_metrics,
        proxy_hosts: args.hosts.policy(),
        ..pharox_server::ServerConfig::new(keys.clone())
    };
    let (app, store) = match &args.redis_url {
        None if args.postgres.url().is_some() => {
            let storage = args.postgres.connect(16).await?;
            let url = storage.config().redacted_url();
            (pharox_server::router(storage, config), url)
        }
        None => (
            pharox_server::router(InMemoryStorage::new(), config),
            "memory".to_owned(),
        ),
        Some(url) => {
            let redis = args.redis_ack.apply(
                RedisConfig::new(url.clone())
                    .prefix(args.redis_prefix.clone())
                    .tls(args.redis_tls.tls())
                    .allow_eviction(args.redis_allow_eviction),
            );
            let storage = RedisStorage::connect(redis.clone())
                .await
                .with_context(|| format!("connecting to {}", redis.redacted_url()))?;
            (pharox_server::router(storage, config), redis.redacted_url())
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener.local_addr()?;
    tracing::info!(%bound, %store, api_keys = keys.len(), "serving the HTTP API");
    // Always on stderr, whatever the log level: scripts wait for this line.
    eprintln!("pharox serve: listening on http://{bound}");
    pharox_server::serve(listener, app, pharox_worker::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn run_demo(args: DemoArgs) -> Result<ExitCode> {
    let opts = DemoOptions {
        workers: args.workers,
        proxies: args.proxies,
        seconds: args.seconds,
        lease_ttl: Duration::from_millis(args.lease_ttl_ms),
        crash_rate: args.crash_rate,
        hold: Duration::from_millis(args.hold_ms),
        seed: args.seed,
        progress: std::io::stderr().is_terminal(),
    };
    let pool = PoolId::from(args.pool);
    let report = match &args.redis_url {
        None if args.postgres.url().is_some() => {
            let storage = args.postgres.connect_migrated(opts.workers).await?;
            storage.remove_pool(&pool).await?;
            demo::run("postgres", storage, &pool, &opts).await?
        }
        None => demo::run("memory", InMemoryStorage::new(), &pool, &opts).await?,
        Some(url) => {
            let config = args.redis_ack.apply(
                RedisConfig::new(url.clone())
                    .tls(args.redis_tls.tls())
                    .allow_eviction(args.redis_allow_eviction),
            );
            let storage = RedisStorage::connect(config.clone())
                .await
                .with_context(|| format!("connecting to {}", config.redacted_url()))?;
            storage.remove_pool(&pool).await?;
            demo::run("redis", storage, &pool, &opts).await?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.invariants_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn run_bench(args: BenchArgs) -> Result<ExitCode> {
    let opts = BenchOptions {
        proxies: args.proxies,
        tasks: args.tasks,
        seconds: args.seconds,
        warmup_seconds: args.warmup_seconds,
        selector: args.selector,
        country: args.country.clone(),
    };
    let pool = PoolId::from(args.pool.clone());
    let report = match args.backend {
        Backend::Memory => {
            let storage = InMemoryStorage::new();
            bench::seed_pool(&storage, &pool, opts.proxies, Shape::default()).await?;
            bench::run(args.backend.name(), storage, &pool, &opts).await?
        }
        Backend::Redis => run_redis_bench(&args, &pool, &opts).await?,
        Backend::Http => run_http_bench(&args, &pool, &opts).await?,
        Backend::Postgres => run_postgres_bench(&args, &pool, &opts).await?,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", report.render());
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_redis_bench(
    args: &BenchArgs,
    pool: &PoolId,
    opts: &BenchOptions,
) -> Result<bench::BenchReport> {
    let storage = seeded_redis(args, pool, opts).await?;
    let mut report = bench::run_probed(
        "redis",
        storage.clone(),
        pool,
        opts,
        Some(cpu_probe(&storage, None)),
    )
    .await?;
    let ceiling_storage = storage.clone();
    report
        .measure_ceiling(opts.seconds, move || {
            let s = ceiling_storage.clone();
            async move { s.ping_script().await }
        })
        .await?;
    if !args.reuse_pool {
        storage.remove_pool(pool).await?;
    }
    Ok(report)
}

/// The cycles on PostgreSQL, with the store's own count of round trips
/// per cycle and a `SELECT 1` ceiling beside them.
async fn run_postgres_bench(
    args: &BenchArgs,
    pool: &PoolId,
    opts: &BenchOptions,
) -> Result<bench::BenchReport> {
    let storage = args.postgres.connect_migrated(args.tasks).await?;
    reseed(&storage, pool, opts).await?;
    let probe_store = storage.clone();
    let probe: bench::WindowProbe = std::sync::Arc::new(move || {
        let s = probe_store.clone();
        Box::pin(async move {
            Ok(bench::ProbeSample {
                round_trips: Some(s.round_trips()),
                ..bench::ProbeSample::default()
            })
        })
    });
    let mut report =
        bench::run_probed("postgres", storage.clone(), pool, opts, Some(probe)).await?;
    let ceiling_storage = storage.clone();
    report
        .measure_ceiling(opts.seconds, move || {
            let s = ceiling_storage.clone();
            async move { s.ping().await }
        })
        .await?;
    storage.remove_pool(pool).await?;
    Ok(report)
}

/// A Redis store holding the bench pool: seeded anew, or reused with
/// `--reuse-pool` when it already holds exactly `--proxies` idle proxies.
async fn seeded_redis(
    args: &BenchArgs,
    pool: &PoolId,
    opts: &BenchOptions,
) -> Result<RedisStorage> {
    let config = args.redis_ack.apply(args.redis.config(args.tasks));
    let storage = RedisStorage::connect(config.clone())
        .await
        .with_context(|| format!("connecting to {}", config.redacted_url()))?;
    let reusable = args.reuse_pool
        && storage
            .pool_stats(pool)
            .await
            .is_ok_and(|s| s.total == opts.proxies && s.active_leases == 0);
    if !reusable {
        reseed(&storage, pool, opts).await?;
    }
    Ok(storage)
}

/// Replaces the bench pool with `opts.proxies` synthetic proxies, saying
/// so on stderr (a large pool takes a while).
async fn reseed<S: Storage>(storage: &S, pool: &PoolId, opts: &BenchOptions) -> Result<()> {
    storage.remove_pool(pool).await?;
    eprintln!("seeding {} proxies into pool {pool} ...", opts.proxies);
    let started = std::time::Instant::now();
    bench::seed_pool(storage, pool, opts.proxies, Shape::default()).await?;
    eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Redis's script and process CPU time, and the CPU time of the server
/// process `server` (a pid), read as a bench window opens and closes.
fn cpu_probe(storage: &RedisStorage, server: Option<u32>) -> bench::WindowProbe {
    let storage = storage.clone();
    std::sync::Arc::new(move || {
        let s = storage.clone();
        Box::pin(async move {
            Ok(bench::ProbeSample {
                server_cpu_ns: server.and_then(|pid| bench::process_cpu_ns(&pid.to_string())),
                script_usec: Some(s.script_cpu_usec().await?),
                redis_cpu_usec: Some(s.process_cpu_usec().await?),
                round_trips: None,
            })
        })
    })
}

/// The cycles on Redis directly, then through a `pharox serve` child on the
/// same Redis and pool, in one run; the HTTP report carries the direct one.
async fn run_http_bench(
    args: &BenchArgs,
    pool: &PoolId,
    opts: &BenchOptions,
) -> Result<bench::BenchReport> {
    let storage = seeded_redis(args, pool, opts).await?;
    let direct = bench::run_probed(
        "redis",
        storage.clone(),
        pool,
        opts,
        Some(cpu_probe(&storage, None)),
    )
    .await?;
    let key = serve_child::random_key();
    let exe = std::env::current_exe().context("locating the pharox binary")?;
    let server = serve_child::ServeChild::start(
        &exe,
        &serve_child::ServeTarget {
            redis_url: &args.redis.redis_url,
            redis_prefix: &args.redis.redis_prefix,
            allow_eviction: args.redis.redis_allow_eviction,
            tls: &args.redis.redis_tls.tls(),
            api_key: &key,
        },
    )
    .await?;
    eprintln!("pharox serve (child) at {}", server.url());
    let remote = pharox_client::RemoteStorage::builder(server.url())
        .api_key(key)
        .build()?;
    let probe = cpu_probe(&storage, server.pid());
    let measured = bench::run_probed("http", remote, pool, opts, Some(probe)).await;
    server.stop().await?;
    let mut report = measured?;
    report.versus_direct = Some(bench::Comparison::of(&report, direct));
    if !args.reuse_pool {
        storage.remove_pool(pool).await?;
    }
    Ok(report)
}

async fn run_worker(args: WorkerArgs) -> Result<ExitCode> {
    let metrics_addr = match args.metrics_addr.as_str() {
        "off" | "" => None,
        a => Some(
            a.parse()
                .with_context(|| format!("--metrics-addr {a:?} is not host:port"))?,
        ),
    };
    let config = WorkerConfig {
        pools: args
            .pools
            .iter()
            .map(|p| PoolId::from(p.as_str()))
            .collect(),
        sweep_interval: args.sweep_interval,
        sweep_batch: args.sweep_batch,
        jitter: args.jitter,
        history_len: args.history_len,
        metrics_addr,
        health: args
            .health
            .target
            .clone()
            .map(|t| args.health.config(t, args.failures_to_inactive)),
        health_interval: args.health_interval,
        shutdown_grace: args.shutdown_grace,
    };
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        pharox_worker::shutdown_signal().await;
        trigger.cancel();
    });
    on_store!(args.redis, args.postgres, 4, |storage| {
        tracing::info!(store = %storage.config().redacted_url(), "connected");
        Worker::new(storage, config).run(stop).await?;
    });
    Ok(ExitCode::SUCCESS)
}

async fn run_health_check(args: HealthCheckArgs) -> Result<ExitCode> {
    let target = args
        .health
        .target
        .clone()
        .context("--health-target URL is required (or PHAROX_HEALTH_TARGET)")?;
    // One pass: a single failure is all the evidence there is.
    let checker = HealthChecker::new(args.health.config(target, 1))?;
    let pool = PoolId::from(args.pool.as_str());
    let rows = on_store!(args.redis, args.postgres, 4, |storage| {
        checker
            .run_pass(&storage, &pool, &CancellationToken::new())
            .await?
    });
    if args.json {
        for r in &rows {
            let row = serde_json::json!({
                "proxy": r.proxy.as_str(),
                "before": r.before,
                "after": r.after,
                "latency_ms": r.latency_ms,
                "error": r.error,
                "applied": r.applied,
            });
            println!("{row}");
        }
    } else {
        print!("{}", ops::render_checks(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_stats(args: StatsArgs) -> Result<ExitCode> {
    let pool = PoolId::from(args.pool.as_str());
    let snapshots = on_store!(args.redis, args.postgres, 1, |storage| match args.history {
        None => vec![storage.pool_stats(&pool).await?],
        Some(n) => storage.stats_history(&pool, n).await?,
    });
    if snapshots.is_empty() {
        eprintln!("no history recorded for pool {pool} (is a worker running?)");
    }
    for s in &snapshots {
        if args.json {
            println!("{}", serde_json::to_string(s)?);
        } else {
            print!("{}", ops::render_stats(s));
        }
    }
    Ok(ExitCode::SUCCESS)
}
