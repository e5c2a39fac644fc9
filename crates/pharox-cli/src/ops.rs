//! Operations commands: `pharox worker`, `pharox health-check`, `pharox stats`.

use std::fmt::Write as _;
use std::str::FromStr;

use pharox_core::{PoolStatsSnapshot, ProxyStatus};
use pharox_worker::CheckRow;

/// How log lines are written (to standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format {other:?} (pretty or json)")),
        }
    }
}

/// Installs the global `tracing` subscriber: `filter` is an `EnvFilter`
/// directive such as `info` or `pharox_worker=debug,info`.
pub fn init_logging(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("bad --log-level {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}

/// A duration such as `500ms`, `5s` or `2m`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 500ms, 5s, 2m)"))?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be positive"));
    }
    Ok(d)
}

/// The table `pharox health-check` prints.
///
/// ```
/// use pharox_core::{ProxyId, ProxyStatus};
/// use pharox_worker::CheckRow;
/// let row = CheckRow {
///     proxy: ProxyId::from("p1"),
///     before: ProxyStatus::Active,
///     after: ProxyStatus::Slow,
///     latency_ms: Some(2500),
///     error: None,
///     failures: 0,
///     applied: true,
/// };
/// let table = pharox_cli::ops::render_checks(&[row]);
/// assert!(table.contains("p1") && table.contains("active -> slow") && table.contains("2500"));
/// ```
pub fn render_checks(rows: &[CheckRow]) -> String {
    let width = rows
        .iter()
        .map(|r| r.proxy.as_str().chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut out = format!(
        "{:<width$}  {:<20}  {:>10}  note\n",
        "proxy", "status", "latency ms"
    );
    for r in rows {
        let change = format!("{} -> {}", r.before, r.after);
        let latency = r.latency_ms.map_or("-".to_owned(), |l| l.to_string());
        let mut note = r.error.clone().unwrap_or_default();
        if r.failures > 0 {
            let _ = write!(note, " (failures in a row: {})", r.failures);
        }
        if !r.applied {
            note.push_str(" (proxy removed meanwhile)");
        }
        let _ = writeln!(
            out,
            "{:<width$}  {:<20}  {:>10}  {}",
            r.proxy.as_str(),
            change,
            latency,
            note.trim()
        );
    }
    let count = |s: ProxyStatus| rows.iter().filter(|r| r.after == s).count();
    let _ = writeln!(
        out,
        "{} checked: {} active, {} slow, {} inactive",
        rows.len(),
        count(ProxyStatus::Active),
        count(ProxyStatus::Slow),
        count(ProxyStatus::Inactive)
    );
    out
}

/// The lines `pharox stats` prints for one snapshot.
pub fn render_stats(s: &PoolStatsSnapshot) -> String {
    format!(
        "{}  pool {}: proxies {} (active {}, available {}, leased {}), leases active {}, \
         granted {}, released {}, expired {}\n",
        s.collected_at.format("%Y-%m-%d %H:%M:%S%.3f"),
        s.pool,
        s.total,
        s.active,
        s.available,
        s.leased,
        s.active_leases,
        s.total_leases,
        s.released_leases,
        s.expired_leases
    )
}
