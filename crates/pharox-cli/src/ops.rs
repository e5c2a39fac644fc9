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

/// Where spans go: OTLP over HTTP (protobuf) to a collector, when one is
/// configured; nowhere by default.
#[derive(Debug, Clone, Default)]
pub struct TraceExport {
    /// The traces URL (`…/v1/traces`), or `None` to export nothing.
    pub traces_url: Option<String>,
    /// `service.name` of the spans, unless `OTEL_SERVICE_NAME` says otherwise.
    pub service: &'static str,
}

impl TraceExport {
    /// The traces URL from `--otlp-endpoint` (a collector's base URL, as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`), else the standard variables
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) and
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended); `env` reads a
    /// variable. Empty values count as unset.
    pub fn resolve(
        endpoint: Option<&str>,
        service: &'static str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let base = |b: &str| format!("{}/v1/traces", b.trim_end_matches('/'));
        let set = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        let traces_url = match set(endpoint.map(str::to_owned)) {
            Some(e) => Some(base(&e)),
            None => set(env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
                .or_else(|| set(env("OTEL_EXPORTER_OTLP_ENDPOINT")).map(|e| base(&e))),
        };
        Self {
            traces_url,
            service,
        }
    }
}

/// Flushes the spans still buffered when dropped (after the runtime has
/// stopped: the exporter's client blocks).
#[must_use = "dropping it stops the trace export"]
pub struct TelemetryGuard(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("pharox: the last spans were not exported: {e}");
        }
    }
}

/// The spans exported over OTLP: the lease calls, sweeps and health passes.
pub const EXPORTED_TARGETS: [&str; 3] = [
    pharox_core::spans::TARGET,
    "pharox::sweep",
    "pharox::health",
];

/// Installs the global `tracing` subscriber: log lines on standard error
/// (`filter` is an `EnvFilter` directive such as `info` or
/// `pharox_worker=debug,info`), and, when `export` names a collector, the
/// lease, sweep and health spans over OTLP/HTTP in batches. Call it
/// outside any async runtime, and drop the guard after the runtime stops.
pub fn init_logging(
    format: LogFormat,
    filter: &str,
    export: &TraceExport,
) -> anyhow::Result<TelemetryGuard> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("bad --log-level {filter:?}: {e}"))?;
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Pretty => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
    };
    let (otel, provider) = match &export.traces_url {
        None => (None, None),
        Some(url) => {
            use opentelemetry_otlp::WithExportConfig as _;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(url.clone())
                .build()
                .map_err(|e| anyhow::anyhow!("the OTLP exporter for {url}: {e}"))?;
            let mut resource = opentelemetry_sdk::Resource::builder();
            if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
                resource = resource.with_service_name(export.service);
            }
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource.build())
                .build();
            let targets = EXPORTED_TARGETS
                .iter()
                .fold(tracing_subscriber::filter::Targets::new(), |t, target| {
                    t.with_target(*target, tracing::Level::INFO)
                });
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("pharox"))
                .with_filter(targets);
            (Some(layer), Some(provider))
        }
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| anyhow::anyhow!("installing the logger: {e}"))?;
    if let Some(url) = &export.traces_url {
        tracing::info!(traces_url = %redacted_endpoint(url), "exporting spans over OTLP");
    }
    Ok(TelemetryGuard(provider))
}

/// An endpoint URL without user information (a collector URL may carry a token).
fn redacted_endpoint(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(not a URL)".into(),
    }
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

#[cfg(test)]
mod tests {
    use super::TraceExport;

    fn resolve(flag: Option<&str>, vars: &[(&str, &str)]) -> Option<String> {
        TraceExport::resolve(flag, "svc", |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
        .traces_url
    }

    #[test]
    fn the_traces_url_follows_the_otlp_conventions() {
        assert_eq!(resolve(None, &[]), None);
        assert_eq!(
            resolve(Some(""), &[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]),
            None
        );
        assert_eq!(
            resolve(
                Some("http://c:4318/"),
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x")]
            ),
            Some("http://c:4318/v1/traces".into())
        );
        assert_eq!(
            resolve(None, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]),
            Some("http://c:4318/v1/traces".into())
        );
        assert_eq!(
            resolve(
                None,
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t/custom"),
                ]
            ),
            Some("http://t/custom".into())
        );
    }

    #[test]
    fn endpoints_are_logged_without_credentials() {
        assert_eq!(
            super::redacted_endpoint("https://user:tok3n@c.example/v1/traces"),
            "https://c.example/v1/traces"
        );
    }
}
