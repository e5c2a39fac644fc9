//! Admin commands: `pharox pool …`, `pharox proxy …`, `pharox lease …`,
//! written once against [`Storage`], so they run the same on Redis directly
//! and on a `pharox serve` through `RemoteStorage`.
//!
//! Output is a table for people, or one JSON object a line with `--json`.
//! Passwords are never printed unless `--show-credentials` is given.
//! Exit statuses: 0 done, [`EXIT_NO_PROXY`] when `lease acquire` finds no
//! proxy, 2 for every error (the `pharox` binary's convention).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{TimeDelta, Utc};
use futures_util::StreamExt;
use pharox_core::{
    AcquireRequest, Lease, LeaseId, LeaseRef, PoolId, Proxy, ProxyFilters, ProxyHostPolicy,
    ProxyId, ProxyPool, ProxyProtocol, ProxyStatus, Selector, Storage,
};
use serde_json::json;

use crate::import::{self, Format, Rejected};

/// Exit status of `pharox lease acquire` when no proxy is available (after
/// `--wait`, if given): distinct from errors (2), so a script can tell a
/// busy pool from a broken setup.
pub const EXIT_NO_PROXY: u8 = 3;

/// Upserts in flight during an import: a remote store is bound by round trips.
const IMPORT_IN_FLIGHT: usize = 64;

/// Rejected lines printed as text before "… and N more" (`--json` prints all).
const REJECTED_SHOWN: usize = 20;

/// `pharox pool …`.
#[derive(clap::Subcommand)]
pub enum PoolCommand {
    /// Create a pool (or update its description).
    Create {
        /// The pool's id.
        name: String,
        /// A description.
        #[arg(long)]
        description: Option<String>,
    },
    /// List the pools with their stats.
    List,
    /// A pool's stats, its proxies by status and its live leases.
    Show {
        /// The pool.
        #[arg(long)]
        pool: String,
    },
    /// Remove a pool, its proxies and leases.
    Remove {
        /// The pool.
        #[arg(long)]
        pool: String,
    },
}

/// `pharox proxy …`.
#[derive(clap::Subcommand)]
pub enum ProxyCommand {
    /// Load proxies from a file (or `-` for standard input): proxy URLs one
    /// a line, CSV with a header, or JSON Lines. All or nothing unless
    /// --skip-invalid; importing the same file again updates in place.
    Import(ImportArgs),
    /// List a pool's proxies.
    List {
        /// The pool.
        #[arg(long)]
        pool: String,
        /// Only proxies with this status.
        #[arg(long)]
        status: Option<ProxyStatus>,
        /// Print passwords in URLs (never printed otherwise).
        #[arg(long)]
        show_credentials: bool,
    },
    /// Remove proxies by id (their live leases end).
    Remove {
        /// The pool.
        #[arg(long)]
        pool: String,
        /// Proxy ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Set proxies' status: active, inactive, slow or banned (only active ones are leased).
    SetStatus {
        /// The pool.
        #[arg(long)]
        pool: String,
        /// The new status.
        status: ProxyStatus,
        /// Proxy ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

/// `pharox proxy import`.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// The file, or `-` for standard input.
    pub file: PathBuf,
    /// The pool (it must exist: `pharox pool create NAME`).
    #[arg(long)]
    pub pool: String,
    /// Input format (default: from the file name, `.csv`, `.jsonl`/`.ndjson`, else url).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Protocol of `host:port` lines and of CSV rows without one.
    #[arg(long, default_value = "http")]
    pub protocol: ProxyProtocol,
    /// Country of proxies that give none.
    #[arg(long)]
    pub country: Option<String>,
    /// Source (provider) of proxies that give none.
    #[arg(long)]
    pub source: Option<String>,
    /// max_concurrency of proxies that give none.
    #[arg(long)]
    pub max_concurrency: Option<u32>,
    /// Import the valid lines and report the others (default: import nothing if a line is bad).
    #[arg(long)]
    pub skip_invalid: bool,
    /// Check the file and report, without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Hosts to accept although refused by default (loopback, link-local,
    /// metadata addresses…), as for `pharox serve --allow-proxy-hosts`.
    #[arg(
        long = "allow-proxy-hosts",
        env = "PHAROX_ALLOW_PROXY_HOSTS",
        value_name = "LIST",
        value_parser = ProxyHostPolicy::with_allow_list
    )]
    pub allow_proxy_hosts: Option<ProxyHostPolicy>,
}

/// `pharox lease …`.
#[derive(clap::Subcommand)]
pub enum LeaseCommand {
    /// Lease a proxy and print its URL (or the lease with --json); exit
    /// status 3 when none is available.
    Acquire(AcquireArgs),
    /// Release a lease by id.
    Release {
        /// The pool.
        #[arg(long)]
        pool: String,
        /// The lease id (as printed by `lease acquire --json`).
        lease: String,
    },
    /// Extend a live lease to now + --ttl.
    Renew {
        /// The pool.
        #[arg(long)]
        pool: String,
        /// The lease id.
        lease: String,
        /// The new time to live, from now.
        #[arg(long, default_value = "60s", value_parser = crate::ops::parse_duration)]
        ttl: Duration,
    },
    /// List a pool's live leases.
    List {
        /// The pool.
        #[arg(long)]
        pool: String,
    },
}

/// `pharox lease acquire`.
#[derive(clap::Args)]
pub struct AcquireArgs {
    /// The pool.
    #[arg(long)]
    pub pool: String,
    /// Who holds the lease.
    #[arg(long, env = "PHAROX_CONSUMER", default_value = "pharox-cli")]
    pub consumer: String,
    /// Time to live; the lease comes back on its own after it.
    #[arg(long, default_value = "60s", value_parser = crate::ops::parse_duration)]
    pub ttl: Duration,
    /// first-available, least-used, round-robin or lowest-latency.
    #[arg(long, default_value = "first-available")]
    pub selector: Selector,
    /// Only proxies of this country.
    #[arg(long)]
    pub country: Option<String>,
    /// Only proxies of this city.
    #[arg(long)]
    pub city: Option<String>,
    /// Only proxies of this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Wait up to this long for a proxy to come free (default: do not wait).
    #[arg(long, value_parser = crate::ops::parse_duration)]
    pub wait: Option<Duration>,
    /// Print the password in the URL (a client needs it to connect).
    #[arg(long)]
    pub show_credentials: bool,
}

/// Output options every admin command takes.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// One JSON object a line instead of a table.
    pub json: bool,
}

/// Runs a `pharox pool` command.
pub async fn pool<S: Storage>(store: &S, cmd: PoolCommand, out: Output) -> Result<ExitCode> {
    match cmd {
        PoolCommand::Create { name, description } => {
            let mut pool = ProxyPool::new(name.as_str());
            pool.description = description;
            let pool = store.upsert_pool(&pool).await?;
            if out.json {
                println!("{}", serde_json::to_string(&pool)?);
            } else {
                println!("pool {} ready", pool.id);
            }
        }
        PoolCommand::List => {
            let pools = store.list_pools().await?;
            let mut rows = Vec::with_capacity(pools.len());
            for p in &pools {
                let s = store.pool_stats(&p.id).await?;
                if out.json {
                    println!("{}", json!({"pool": p, "stats": s}));
                }
                rows.push(vec![
                    p.id.to_string(),
                    s.total.to_string(),
                    s.available.to_string(),
                    s.active_leases.to_string(),
                    p.description.clone().unwrap_or_default(),
                ]);
            }
            if !out.json {
                print!(
                    "{}",
                    table(
                        &["POOL", "PROXIES", "AVAILABLE", "LEASES", "DESCRIPTION"],
                        &rows
                    )
                );
            }
        }
        PoolCommand::Show { pool } => {
            let pool = existing_pool(store, &pool).await?;
            let snap = store.pool_snapshot(&pool).await?;
            let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
            for p in &snap.proxies {
                *by_status.entry(p.status.as_str()).or_default() += 1;
            }
            if out.json {
                let leases: Vec<_> = snap
                    .leases
                    .iter()
                    .map(|l| lease_json(l, false, snap.taken_at))
                    .collect();
                println!(
                    "{}",
                    json!({
                        "pool": snap.pool,
                        "stats": snap.stats,
                        "proxies_by_status": by_status,
                        "leases": leases,
                    })
                );
            } else {
                let s = &snap.stats;
                println!(
                    "pool {}{}",
                    snap.pool.id,
                    snap.pool
                        .description
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                );
                println!(
                    "proxies {} (available {}, leased {}), by status: {}",
                    s.total,
                    s.available,
                    s.leased,
                    if by_status.is_empty() {
                        "-".to_owned()
                    } else {
                        by_status
                            .iter()
                            .map(|(k, v)| format!("{k} {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                );
                println!(
                    "leases live {}, granted {}, released {}, expired {}",
                    s.active_leases, s.total_leases, s.released_leases, s.expired_leases
                );
                if !snap.leases.is_empty() {
                    println!();
                    print!("{}", lease_table(&snap.leases, snap.taken_at));
                }
            }
        }
        PoolCommand::Remove { pool } => {
            let id = PoolId::from(pool.as_str());
            if !store.remove_pool(&id).await? {
                bail!("pool {id} does not exist");
            }
            if out.json {
                println!("{}", json!({"removed": id}));
            } else {
                println!("pool {id} removed");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `pharox proxy` command.
pub async fn proxy<S: Storage>(store: &S, cmd: ProxyCommand, out: Output) -> Result<ExitCode> {
    match cmd {
        ProxyCommand::Import(args) => return import(store, args, out).await,
        ProxyCommand::List {
            pool,
            status,
            show_credentials,
        } => {
            let pool = existing_pool(store, &pool).await?;
            let proxies = store.list_proxies(&pool).await?;
            let shown = proxies
                .iter()
                .filter(|p| status.is_none_or(|s| s == p.status));
            if out.json {
                let mut stdout = std::io::stdout().lock();
                for p in shown {
                    let mut value = if show_credentials {
                        serde_json::to_value(p)?
                    } else {
                        serde_json::to_value(p.redacted())?
                    };
                    value["url"] = json!(proxy_url(p, show_credentials));
                    writeln!(stdout, "{value}")?;
                }
            } else {
                let rows: Vec<_> = shown
                    .map(|p| {
                        vec![
                            p.id.to_string(),
                            proxy_url(p, show_credentials),
                            p.status.to_string(),
                            p.country.clone().unwrap_or_else(|| "-".into()),
                            p.latency_ms.map_or("-".into(), |ms| format!("{ms} ms")),
                            format!(
                                "{}/{}",
                                p.current_leases,
                                p.max_concurrency.map_or("-".into(), |m| m.to_string())
                            ),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["ID", "URL", "STATUS", "COUNTRY", "LATENCY", "LEASES"],
                        &rows
                    )
                );
            }
        }
        ProxyCommand::Remove { pool, ids } => {
            let pool = existing_pool(store, &pool).await?;
            let mut missing = Vec::new();
            for id in &ids {
                let removed = store
                    .remove_proxy(&pool, &ProxyId::from(id.as_str()))
                    .await?;
                if !removed {
                    missing.push(id.as_str());
                } else if out.json {
                    println!("{}", json!({"removed": id}));
                } else {
                    println!("proxy {id} removed");
                }
            }
            if !missing.is_empty() {
                bail!("no such proxy in pool {pool}: {}", missing.join(", "));
            }
        }
        ProxyCommand::SetStatus { pool, status, ids } => {
            let pool = existing_pool(store, &pool).await?;
            let mut missing = Vec::new();
            for id in &ids {
                let Some(mut proxy) = store.get_proxy(&pool, &ProxyId::from(id.as_str())).await?
                else {
                    missing.push(id.as_str());
                    continue;
                };
                proxy.status = status;
                store.upsert_proxy(&proxy).await?;
                if out.json {
                    println!("{}", json!({"id": id, "status": status}));
                } else {
                    println!("proxy {id}: {status}");
                }
            }
            if !missing.is_empty() {
                bail!("no such proxy in pool {pool}: {}", missing.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `pharox lease` command.
pub async fn lease<S: Storage>(store: &S, cmd: LeaseCommand, out: Output) -> Result<ExitCode> {
    match cmd {
        LeaseCommand::Acquire(args) => return acquire(store, args, out).await,
        LeaseCommand::Release { pool, lease } => {
            let r = LeaseRef::new(PoolId::from(pool.as_str()), lease_id(&lease)?);
            let Some((released, outcome)) = store.release_by_ref(&r).await? else {
                bail!(
                    "lease {lease} is not held in pool {pool} (released, expired or never granted)"
                );
            };
            if out.json {
                println!(
                    "{}",
                    json!({"id": released.id.to_string(), "outcome": format!("{outcome:?}").to_lowercase()})
                );
            } else {
                println!("lease {} released", released.id);
            }
        }
        LeaseCommand::Renew { pool, lease, ttl } => {
            let r = LeaseRef::new(PoolId::from(pool.as_str()), lease_id(&lease)?);
            let renewed = store
                .renew_by_ref(&r, to_delta(ttl, "--ttl")?)
                .await
                .with_context(|| format!("renewing lease {lease}"))?;
            if out.json {
                println!("{}", lease_json(&renewed, false, Utc::now()));
            } else {
                println!("lease {} expires at {}", renewed.id, renewed.expires_at);
            }
        }
        LeaseCommand::List { pool } => {
            let pool = existing_pool(store, &pool).await?;
            let snap = store.pool_snapshot(&pool).await?;
            if out.json {
                for l in &snap.leases {
                    println!("{}", lease_json(l, false, snap.taken_at));
                }
            } else {
                print!("{}", lease_table(&snap.leases, snap.taken_at));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn acquire<S: Storage>(store: &S, args: AcquireArgs, out: Output) -> Result<ExitCode> {
    let pool = PoolId::from(args.pool.as_str());
    let filters = ProxyFilters {
        country: args.country,
        city: args.city,
        source: args.source,
        ..ProxyFilters::default()
    };
    let request = AcquireRequest::new(pool.clone())
        .consumer(args.consumer.as_str())
        .duration(to_delta(args.ttl, "--ttl")?)
        .selector(args.selector)
        .filters(filters);
    store.ensure_consumer(&request.consumer).await?;
    let deadline = Instant::now() + args.wait.unwrap_or_default();
    let lease = loop {
        match store.acquire(&request).await {
            Ok(Some(lease)) => break lease,
            Ok(None) => {}
            Err(pharox_core::Error::PoolNotFound(_)) => bail!(no_pool(&pool)),
            Err(e) => return Err(e.into()),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // A missing pool is an error, not a busy pool.
            existing_pool(store, &args.pool).await?;
            eprintln!("no proxy available in pool {pool}");
            return Ok(ExitCode::from(EXIT_NO_PROXY));
        }
        store.wait_for_capacity(&pool, left).await;
    };
    if out.json {
        println!(
            "{}",
            lease_json(&lease, args.show_credentials, lease.acquired_at)
        );
    } else if args.show_credentials {
        println!("{}", lease.proxy.url());
    } else {
        println!("{}", lease.proxy.redacted_url());
    }
    Ok(ExitCode::SUCCESS)
}

async fn import<S: Storage>(store: &S, args: ImportArgs, out: Output) -> Result<ExitCode> {
    let started = Instant::now();
    let pool = existing_pool(store, &args.pool).await?;
    let name = args.file.to_string_lossy().into_owned();
    let format = args.format.unwrap_or_else(|| Format::from_file_name(&name));
    let defaults = import::Defaults {
        protocol: args.protocol,
        country: args.country,
        source: args.source,
        max_concurrency: args.max_concurrency,
        hosts: args.allow_proxy_hosts.unwrap_or_default(),
    };
    let input: Box<dyn BufRead> = if name == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(&args.file).with_context(|| format!("opening {name}"))?;
        Box::new(std::io::BufReader::with_capacity(1 << 16, file))
    };
    let mut parsed = tokio::task::block_in_place(|| import::parse(input, format, &pool, &defaults))
        .with_context(|| format!("reading {name}"))?;

    // Checks against what the pool holds now, so nothing is half-loaded
    // for a reason known in advance.
    let existing: HashMap<ProxyId, Proxy> = store
        .list_proxies(&pool)
        .await?
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    parsed.proxies.retain_mut(|entry| {
        let Some(old) = existing.get(&entry.proxy.id) else {
            return true;
        };
        let p = &mut entry.proxy;
        if p.max_concurrency
            .is_some_and(|max| max < old.current_leases)
        {
            parsed.rejected.push(Rejected {
                line: entry.line,
                reason: format!(
                    "max_concurrency: below the {} live leases of proxy {}",
                    old.current_leases, p.id
                ),
            });
            return false;
        }
        if !entry.status_given {
            p.status = old.status;
            p.checked_at = old.checked_at;
            p.latency_ms = old.latency_ms;
        }
        true
    });
    parsed.rejected.sort_by_key(|r| r.line);
    let new = parsed
        .proxies
        .iter()
        .filter(|e| !existing.contains_key(&e.proxy.id))
        .count();
    let limit = pharox_core::validate::MAX_PROXIES_PER_POOL;
    if existing.len() + new > limit {
        bail!(
            "nothing imported: pool {pool} holds {} proxies and the file adds {new}; the limit is {limit}",
            existing.len()
        );
    }
    report_rejected(&parsed.rejected, out);
    let valid = parsed.proxies.len();
    if !parsed.rejected.is_empty() && !args.skip_invalid {
        bail!(
            "nothing imported: {} of {} proxy lines rejected (fix them, or pass --skip-invalid to import the other {valid})",
            parsed.rejected.len(),
            parsed.rejected.len() + valid
        );
    }
    let updated = valid - new;
    if args.dry_run {
        summary(
            out,
            "checked",
            &pool,
            valid,
            new,
            updated,
            &parsed.rejected,
            started,
        );
        return Ok(ExitCode::SUCCESS);
    }

    let bar = progress_bar(valid as u64);
    let mut stored = 0usize;
    let mut writes = futures_util::stream::iter(parsed.proxies.iter())
        .map(|e| async move {
            store
                .upsert_proxy(&e.proxy)
                .await
                .map_err(|err| (e.line, err))
        })
        .buffer_unordered(IMPORT_IN_FLIGHT);
    while let Some(result) = writes.next().await {
        match result {
            Ok(_) => {
                stored += 1;
                bar.inc(1);
            }
            Err((line, e)) => {
                bar.abandon();
                return Err(anyhow::Error::new(e).context(format!(
                    "storing the proxy of line {line}: {stored} of {valid} proxies were stored before it; \
                     importing the same file again is safe (it updates in place)"
                )));
            }
        }
    }
    bar.finish_and_clear();
    summary(
        out,
        "imported",
        &pool,
        valid,
        new,
        updated,
        &parsed.rejected,
        started,
    );
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
fn summary(
    out: Output,
    verb: &str,
    pool: &PoolId,
    valid: usize,
    new: usize,
    updated: usize,
    rejected: &[Rejected],
    started: Instant,
) {
    let seconds = started.elapsed().as_secs_f64();
    if out.json {
        println!(
            "{}",
            json!({
                verb: valid, "pool": pool, "new": new, "updated": updated,
                "rejected": rejected.len(), "seconds": seconds,
            })
        );
    } else {
        println!(
            "{verb} {valid} proxies into pool {pool} ({new} new, {updated} updated, {} lines rejected) in {seconds:.2} s",
            rejected.len()
        );
    }
}

/// Rejected lines on standard error (as JSON objects with `--json`).
fn report_rejected(rejected: &[Rejected], out: Output) {
    let mut stderr = std::io::stderr().lock();
    for (i, r) in rejected.iter().enumerate() {
        if out.json {
            let _ = writeln!(stderr, "{}", json!({"rejected": r}));
        } else if i < REJECTED_SHOWN {
            let _ = writeln!(stderr, "line {}: {}", r.line, r.reason);
        } else {
            let _ = writeln!(
                stderr,
                "… and {} more rejected lines (--json lists them all)",
                rejected.len() - REJECTED_SHOWN
            );
            break;
        }
    }
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() || len < 1_000 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} proxies  {per_sec}  eta {eta}",
        )
        .expect("a valid progress template"),
    );
    bar
}

/// The pool, or an error saying how to create it.
async fn existing_pool<S: Storage>(store: &S, pool: &str) -> Result<PoolId> {
    let id = PoolId::from(pool);
    if store.get_pool(&id).await?.is_none() {
        bail!(no_pool(&id));
    }
    Ok(id)
}

fn no_pool(pool: &PoolId) -> String {
    format!("pool {pool} does not exist (create it with `pharox pool create {pool}`)")
}

fn lease_id(text: &str) -> Result<LeaseId> {
    uuid::Uuid::try_parse(text).map(LeaseId).map_err(|_| {
        anyhow::anyhow!("{text:?} is not a lease id (a UUID, as `lease acquire --json` prints)")
    })
}

fn to_delta(d: Duration, flag: &str) -> Result<TimeDelta> {
    TimeDelta::from_std(d).with_context(|| format!("{flag} is too long"))
}

fn proxy_url(p: &Proxy, show_credentials: bool) -> String {
    if show_credentials {
        p.url()
    } else {
        p.redacted_url()
    }
}

fn lease_json(l: &Lease, show_credentials: bool, now: chrono::DateTime<Utc>) -> serde_json::Value {
    json!({
        "id": l.id.to_string(),
        "pool": l.pool,
        "token": l.token,
        "consumer": l.consumer,
        "proxy_id": l.proxy.id,
        "proxy_url": if show_credentials { l.proxy.url() } else { l.proxy.redacted_url() },
        "acquired_at": l.acquired_at,
        "expires_at": l.expires_at,
        "expires_in_ms": (l.expires_at - now).num_milliseconds().max(0),
    })
}

fn lease_table(leases: &[Lease], now: chrono::DateTime<Utc>) -> String {
    let rows: Vec<_> = leases
        .iter()
        .map(|l| {
            let left = (l.expires_at - now).num_milliseconds().max(0);
            vec![
                l.id.to_string(),
                l.proxy.id.to_string(),
                l.consumer.to_string(),
                l.token.to_string(),
                format!("{:.1} s", left as f64 / 1000.0),
            ]
        })
        .collect();
    table(
        &["LEASE", "PROXY", "CONSUMER", "TOKEN", "EXPIRES IN"],
        &rows,
    )
}

/// Left-aligned columns two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(cell);
            l.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        text.push_str(l.trim_end());
        text.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let t = table(
            &["A", "LONG"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["é".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    LONG\nxyz  1\né    22\n");
    }
}
