//! Helpers for benchmarks: a trivial script call and Redis's own CPU use.

use deadpool_redis::redis::{self, Script};
use pharox_core::{Error, Result};

use super::RedisStorage;

impl RedisStorage {
    /// Sends a trivial `EVALSHA` (`return 1`) through the same connections:
    /// the ceiling any script call can reach, for benchmarks.
    pub async fn ping_script(&self) -> Result<()> {
        static TRIVIAL: std::sync::LazyLock<Script> =
            std::sync::LazyLock::new(|| Script::new("return 1"));
        let _: i64 = self.run(&TRIVIAL.prepare_invoke(), "ping").await?;
        Ok(())
    }

    /// Microseconds of CPU Redis has spent running scripts (`EVALSHA` and
    /// `EVAL` in `INFO commandstats`), server-wide. Benchmarks read it before
    /// and after a window to get Redis's own cost per operation.
    pub async fn script_cpu_usec(&self) -> Result<u64> {
        let info: String = self
            .cmd(redis::cmd("INFO").arg("commandstats"), "info")
            .await?;
        Ok(info
            .lines()
            .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
            .filter_map(|l| {
                l.split([':', ','])
                    .find_map(|f| f.strip_prefix("usec="))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .sum())
    }

    /// Microseconds of CPU the Redis process has used (`used_cpu_user` +
    /// `used_cpu_sys` of `INFO cpu`: all its work, network I/O included,
    /// not only scripts), server-wide.
    pub async fn process_cpu_usec(&self) -> Result<u64> {
        let info: String = self.cmd(redis::cmd("INFO").arg("cpu"), "info").await?;
        let secs = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        match (secs("used_cpu_user"), secs("used_cpu_sys")) {
            (Some(user), Some(sys)) => Ok(((user + sys) * 1e6).round() as u64),
            _ => Err(Error::Corrupt(
                "INFO cpu has no used_cpu_user / used_cpu_sys".into(),
            )),
        }
    }
}
