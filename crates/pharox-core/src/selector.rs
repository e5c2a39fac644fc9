//! Selection strategies: which eligible proxy an acquire picks.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// How an acquire chooses among the eligible proxies (active, matching the
/// filters, below their `max_concurrency`). Ties always go to the proxy that
/// was added to the pool first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selector {
    /// The eligible proxy added to the pool first.
    #[default]
    FirstAvailable,
    /// The eligible proxy with the fewest active leases.
    LeastUsed,
    /// The next eligible proxy after the pool's cursor, in the order proxies
    /// were added, wrapping around. One cursor per pool, shared by every
    /// worker; a filtered acquire cycles through the matching proxies.
    RoundRobin,
    /// The eligible proxy with the lowest measured latency; proxies never
    /// measured come last.
    LowestLatency,
}

impl Selector {
    /// Every selector, for iteration in tests and benchmarks.
    pub const ALL: [Selector; 4] = [
        Self::FirstAvailable,
        Self::LeastUsed,
        Self::RoundRobin,
        Self::LowestLatency,
    ];

    /// The kebab-case name (`first-available`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstAvailable => "first-available",
            Self::LeastUsed => "least-used",
            Self::RoundRobin => "round-robin",
            Self::LowestLatency => "lowest-latency",
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Selector {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|sel| sel.as_str().eq_ignore_ascii_case(s) || s.replace('_', "-") == sel.as_str())
            .ok_or_else(|| {
                Error::invalid(
                    "selector",
                    "expected first-available, least-used, round-robin or lowest-latency",
                )
            })
    }
}
