//! Checks of the invariants I1–I7 against a store's state and a client's
//! observations, shared by the contract suite, `pharox demo` and the churn tests.
//!
//! - I1 a proxy never has more active leases than its `max_concurrency`;
//! - I2 `current_leases` equals the number of its active leases;
//! - I3 `pool_stats` equals a recomputation from the stored proxies and leases;
//! - I4 a release applies at most once; capacity is never freed twice;
//! - I5 fencing tokens of a pool strictly increase;
//! - I6 after `acquire` or `cleanup`, no expired lease holds capacity;
//! - I7 a proxy that is not `active` is never leased.

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};

use crate::model::{LeaseId, PoolStatsSnapshot, ProxyCounts, ProxyId, ProxyStatus};
use crate::storage::{PoolSnapshot, ReleaseOutcome};

/// One broken invariant, with what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// I1: more live leases than `max_concurrency`.
    OverLeased {
        /// The proxy.
        proxy: ProxyId,
        /// Live leases found.
        leases: u32,
        /// Its cap.
        max_concurrency: u32,
    },
    /// I2: `current_leases` differs from the live leases naming the proxy.
    LeaseCountMismatch {
        /// The proxy.
        proxy: ProxyId,
        /// The stored `current_leases`.
        recorded: u32,
        /// Live leases found.
        actual: u32,
    },
    /// I2: a live lease names a proxy that is not in the pool.
    LeaseOnUnknownProxy {
        /// The lease.
        lease: LeaseId,
        /// The proxy it names.
        proxy: ProxyId,
    },
    /// I3: the stats counters differ from a recomputation.
    StatsMismatch {
        /// What `pool_stats` said.
        reported: ProxyCounts,
        /// What the proxies and leases say.
        recomputed: ProxyCounts,
    },
    /// I3/I4: lifetime counters do not add up
    /// (`total == active + released + expired`).
    LifetimeCountersInconsistent {
        /// The stats as reported.
        stats: Box<PoolStatsSnapshot>,
    },
    /// I4: the store's counters disagree with the releases clients saw.
    ReleaseAccountingMismatch {
        /// Which counter.
        counter: &'static str,
        /// The store's value.
        store: u64,
        /// What the clients' observations imply.
        expected: u64,
    },
    /// I4: a store counter falls outside what the clients' observations
    /// allow (some outcomes were uncertain, so only bounds are known).
    ReleaseAccountingOutOfBounds {
        /// Which counter.
        counter: &'static str,
        /// The store's value.
        store: u64,
        /// The least the clients' observations allow.
        low: u64,
        /// The most they allow.
        high: u64,
    },
    /// I5: a token was issued twice.
    DuplicateToken {
        /// The token.
        token: u64,
    },
    /// I5: a client saw a token not greater than one it saw earlier.
    TokenNotIncreasing {
        /// The earlier token.
        previous: u64,
        /// The later one.
        next: u64,
    },
    /// I6: a lease past its deadline still holds capacity after a cleanup.
    ExpiredLeaseHeld {
        /// The lease.
        lease: LeaseId,
        /// Its deadline.
        expires_at: DateTime<Utc>,
    },
    /// I7: a proxy that was not active was leased.
    InactiveProxyLeased {
        /// The proxy.
        proxy: ProxyId,
        /// Its status at the time.
        status: ProxyStatus,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OverLeased {
                proxy,
                leases,
                max_concurrency,
            } => write!(
                f,
                "I1: proxy {proxy} holds {leases} leases, max_concurrency {max_concurrency}"
            ),
            Self::LeaseCountMismatch {
                proxy,
                recorded,
                actual,
            } => write!(
                f,
                "I2: proxy {proxy} records {recorded} current leases but {actual} are live"
            ),
            Self::LeaseOnUnknownProxy { lease, proxy } => {
                write!(
                    f,
                    "I2: lease {lease} names proxy {proxy}, which is not in the pool"
                )
            }
            Self::StatsMismatch {
                reported,
                recomputed,
            } => write!(
                f,
                "I3: pool stats {reported:?} differ from the recomputation {recomputed:?}"
            ),
            Self::LifetimeCountersInconsistent { stats } => write!(
                f,
                "I3: total_leases {} != active {} + released {} + expired {}",
                stats.total_leases,
                stats.active_leases,
                stats.released_leases,
                stats.expired_leases
            ),
            Self::ReleaseAccountingMismatch {
                counter,
                store,
                expected,
            } => write!(
                f,
                "I4: the store counts {store} {counter} but clients observed {expected}"
            ),
            Self::ReleaseAccountingOutOfBounds {
                counter,
                store,
                low,
                high,
            } => write!(
                f,
                "I4: the store counts {store} {counter} but clients observed {low}..={high}"
            ),
            Self::DuplicateToken { token } => write!(f, "I5: fencing token {token} issued twice"),
            Self::TokenNotIncreasing { previous, next } => {
                write!(f, "I5: fencing token {next} observed after {previous}")
            }
            Self::ExpiredLeaseHeld { lease, expires_at } => write!(
                f,
                "I6: lease {lease} expired at {expires_at} but still holds capacity"
            ),
            Self::InactiveProxyLeased { proxy, status } => {
                write!(f, "I7: proxy {proxy} was leased while {status}")
            }
        }
    }
}

/// Checks I1, I2 and I3 on a consistent snapshot; with `after_cleanup`, also
/// I6 (no live lease is past its deadline).
pub fn check_snapshot(snapshot: &PoolSnapshot, after_cleanup: bool) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut held: HashMap<&ProxyId, u32> = HashMap::new();
    for lease in &snapshot.leases {
        *held.entry(&lease.proxy.id).or_default() += 1;
    }
    let known: HashSet<&ProxyId> = snapshot.proxies.iter().map(|p| &p.id).collect();
    for lease in &snapshot.leases {
        if !known.contains(&lease.proxy.id) {
            violations.push(Violation::LeaseOnUnknownProxy {
                lease: lease.id,
                proxy: lease.proxy.id.clone(),
            });
        }
        if after_cleanup && lease.is_expired_at(snapshot.taken_at) {
            violations.push(Violation::ExpiredLeaseHeld {
                lease: lease.id,
                expires_at: lease.expires_at,
            });
        }
    }
    for proxy in &snapshot.proxies {
        let actual = held.get(&proxy.id).copied().unwrap_or(0);
        // An unlimited proxy is capped at MAX_CONCURRENCY too.
        if actual > proxy.capacity() {
            violations.push(Violation::OverLeased {
                proxy: proxy.id.clone(),
                leases: actual,
                max_concurrency: proxy.capacity(),
            });
        }
        if proxy.current_leases != actual {
            violations.push(Violation::LeaseCountMismatch {
                proxy: proxy.id.clone(),
                recorded: proxy.current_leases,
                actual,
            });
        }
    }
    let recomputed = ProxyCounts::recompute(&snapshot.proxies, &snapshot.leases);
    if snapshot.stats.counts() != recomputed {
        violations.push(Violation::StatsMismatch {
            reported: snapshot.stats.counts(),
            recomputed,
        });
    }
    violations.extend(check_lifetime_counters(&snapshot.stats));
    violations
}

/// Checks that every lease ever granted is accounted for exactly once:
/// `total_leases == active_leases + released_leases + expired_leases`.
pub fn check_lifetime_counters(stats: &PoolStatsSnapshot) -> Option<Violation> {
    let ended = stats
        .active_leases
        .checked_add(stats.released_leases)
        .and_then(|n| n.checked_add(stats.expired_leases));
    (ended != Some(stats.total_leases)).then(|| Violation::LifetimeCountersInconsistent {
        stats: Box::new(stats.clone()),
    })
}

/// Fencing tokens seen by one client, in the order it saw them (I5).
///
/// Each task acquires sequentially, so the tokens it sees must strictly
/// increase; across tasks, no token may repeat. Merge per-task ledgers with
/// [`TokenLedger::merge`] and read the result with [`TokenLedger::violations`].
#[derive(Debug, Default, Clone)]
pub struct TokenLedger {
    last: Option<u64>,
    seen: Vec<u64>,
    violations: Vec<Violation>,
}

impl TokenLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a token this client was granted.
    pub fn record(&mut self, token: u64) {
        if let Some(previous) = self.last
            && token <= previous
        {
            self.violations.push(Violation::TokenNotIncreasing {
                previous,
                next: token,
            });
        }
        self.last = Some(token);
        self.seen.push(token);
    }

    /// Folds another client's ledger into this one.
    pub fn merge(&mut self, other: TokenLedger) {
        self.seen.extend(other.seen);
        self.violations.extend(other.violations);
    }

    /// Tokens recorded so far.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Ordering violations plus any token recorded twice (across all merged ledgers).
    pub fn violations(&self) -> Vec<Violation> {
        let mut out = self.violations.clone();
        let mut sorted = self.seen.clone();
        sorted.sort_unstable();
        out.extend(
            sorted
                .windows(2)
                .filter(|w| w[0] == w[1])
                .map(|w| Violation::DuplicateToken { token: w[0] }),
        );
        out
    }
}

/// Release outcomes seen by clients, to check the store's lifetime counters
/// against (I4). Count only the *first* release attempt of each lease in
/// `first_release`; later attempts go to `repeat_release`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseLedger {
    /// Leases granted.
    pub acquired: u64,
    /// First releases that answered `Released`.
    pub released: u64,
    /// First releases that answered `Expired` (late, not yet reclaimed).
    pub released_late: u64,
    /// First releases that answered `NotHeld` (late, already reclaimed).
    pub released_after_reclaim: u64,
    /// First releases that answered `ReleasedOrGone`: released by a lost
    /// attempt, or already ended by expiry. Each is one of the two.
    pub released_or_gone: u64,
    /// Leases never released (abandoned by a crashed holder).
    pub abandoned: u64,
    /// Leases ended by removing their proxy (the store counts them released).
    pub revoked: u64,
    /// Repeat releases that freed capacity again (must stay 0).
    pub freed_twice: u64,
}

impl ReleaseLedger {
    /// Records the first release of a lease.
    pub fn first_release(&mut self, outcome: ReleaseOutcome) {
        match outcome {
            ReleaseOutcome::Released => self.released += 1,
            ReleaseOutcome::Expired => self.released_late += 1,
            ReleaseOutcome::NotHeld => self.released_after_reclaim += 1,
            ReleaseOutcome::ReleasedOrGone => self.released_or_gone += 1,
        }
    }

    /// Records a second (or later) release of the same lease.
    pub fn repeat_release(&mut self, outcome: ReleaseOutcome) {
        if outcome.freed_capacity() {
            self.freed_twice += 1;
        }
    }

    /// Adds another client's counts.
    pub fn merge(&mut self, other: &ReleaseLedger) {
        self.acquired += other.acquired;
        self.released += other.released;
        self.released_late += other.released_late;
        self.released_after_reclaim += other.released_after_reclaim;
        self.released_or_gone += other.released_or_gone;
        self.abandoned += other.abandoned;
        self.revoked += other.revoked;
        self.freed_twice += other.freed_twice;
    }

    /// Compares with the store's counters once every lease has ended (no live
    /// leases left, nothing else using the pool since `baseline`). Exact,
    /// except that each `ReleasedOrGone` is either a release or an expiry.
    pub fn check(&self, baseline: &PoolStatsSnapshot, end: &PoolStatsSnapshot) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut expect = |counter: &'static str, store: u64, low: u64, high: u64| {
            if low == high && store != low {
                out.push(Violation::ReleaseAccountingMismatch {
                    counter,
                    store,
                    expected: low,
                });
            } else if store < low || store > high {
                out.push(Violation::ReleaseAccountingOutOfBounds {
                    counter,
                    store,
                    low,
                    high,
                });
            }
        };
        let granted = end.total_leases.saturating_sub(baseline.total_leases);
        expect("leases granted", granted, self.acquired, self.acquired);
        let released = end.released_leases.saturating_sub(baseline.released_leases);
        let sure_released = self.released + self.revoked;
        expect(
            "released leases",
            released,
            sure_released,
            sure_released + self.released_or_gone,
        );
        let expired = end.expired_leases.saturating_sub(baseline.expired_leases);
        let sure_expired = self.abandoned + self.released_late + self.released_after_reclaim;
        expect(
            "expired leases",
            expired,
            sure_expired,
            sure_expired + self.released_or_gone,
        );
        // Each uncertain one is exactly one of the two.
        expect(
            "released and expired leases",
            released + expired,
            sure_released + sure_expired + self.released_or_gone,
            sure_released + sure_expired + self.released_or_gone,
        );
        expect(
            "active leases",
            end.active_leases,
            baseline.active_leases,
            baseline.active_leases,
        );
        if self.freed_twice > 0 {
            out.push(Violation::ReleaseAccountingMismatch {
                counter: "repeat releases that freed capacity",
                store: self.freed_twice,
                expected: 0,
            });
        }
        out
    }
}
