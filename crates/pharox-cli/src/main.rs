//! `pharox`: run the demo, benchmark a store, administer pools.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pharox_cli::bench::{self, BenchOptions};
use pharox_cli::demo::{self, DemoOptions};
use pharox_cli::synthetic::Shape;
use pharox_core::{InMemoryStorage, PoolId, Selector, Storage};
use pharox_redis::{ConnectionMode, RedisConfig, RedisStorage};

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
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    /// The embedded in-memory store.
    Memory,
    /// Redis at --redis-url.
    Redis,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Multiplexed connections shared by all tasks (pipelined).
    Multiplexed,
    /// A deadpool-redis pool: one connection per call in flight.
    Pooled,
}

#[derive(clap::Args, Clone)]
struct RedisArgs {
    /// Redis URL (`redis://[user:password@]host:port[/db]`); the password is never printed.
    #[arg(
        long,
        env = "PHAROX_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// Key prefix in Redis.
    #[arg(long, default_value = "pharox")]
    redis_prefix: String,
    /// How to connect to Redis.
    #[arg(long, value_enum, default_value_t = Mode::Multiplexed)]
    redis_mode: Mode,
    /// Multiplexed connections to open, or the size of the deadpool pool
    /// (default: 1 multiplexed; pooled: one per task).
    #[arg(long)]
    redis_connections: Option<usize>,
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
            .mode(mode)
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
        }
    }
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Run on Redis at this URL instead of the embedded in-memory store
    /// (the pool named by --pool is replaced).
    #[arg(long, env = "PHAROX_REDIS_URL")]
    redis_url: Option<String>,
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
    /// Runtime worker threads (default: the smaller of --tasks and the CPU
    /// count; more threads than tasks only move the tasks between cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

impl Command {
    /// Worker threads for the runtime: all cores, except for a bench with
    /// fewer tasks than cores.
    fn threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        match self {
            Self::Bench(args) => args.threads.unwrap_or(args.tasks.min(cores)).max(1),
            Self::Demo(_) => cores,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.command.threads())
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Demo(args) => run_demo(args).await,
        Command::Bench(args) => run_bench(args).await,
    }
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
        None => demo::run("memory", InMemoryStorage::new(), &pool, &opts).await?,
        Some(url) => {
            let config = RedisConfig::new(url.clone());
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
    let storage = args.redis.connect(args.tasks).await?;
    let reusable = args.reuse_pool
        && storage
            .pool_stats(pool)
            .await
            .is_ok_and(|s| s.total == opts.proxies && s.active_leases == 0);
    if !reusable {
        storage.remove_pool(pool).await?;
        eprintln!("seeding {} proxies into pool {pool} ...", opts.proxies);
        let started = std::time::Instant::now();
        bench::seed_pool(&storage, pool, opts.proxies, Shape::default()).await?;
        eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    }
    let probe_storage = storage.clone();
    let probe: bench::WindowProbe = std::sync::Arc::new(move || {
        let s = probe_storage.clone();
        Box::pin(async move { Ok(s.script_cpu_usec().await?) })
    });
    let (mut report, usec) =
        bench::run_probed("redis", storage.clone(), pool, opts, Some(probe)).await?;
    let ceiling_storage = storage.clone();
    let (calls, p50) = bench::ceiling(opts.tasks, opts.seconds, move || {
        let s = ceiling_storage.clone();
        async move { s.ping_script().await }
    })
    .await?;
    report.ceiling_calls_per_sec = Some(calls);
    report.ceiling_p50_us = Some(p50);
    report.redis_usec_per_cycle = usec.map(|u| u as f64 / report.cycles.max(1) as f64);
    if !args.reuse_pool {
        storage.remove_pool(pool).await?;
    }
    Ok(report)
}
