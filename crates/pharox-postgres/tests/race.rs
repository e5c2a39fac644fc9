//! 64 tasks racing for 8 single-slot proxies on PostgreSQL: never two
//! holders of one proxy, never a miss while a proxy is free, tokens unique
//! and counters exact afterwards.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use pharox_core::invariants::{TokenLedger, check_lifetime_counters};
use pharox_core::testkit::{Harness, add, assert_invariants, new_pool, proxy, request};
use pharox_core::{ReleaseOutcome, Selector, Storage};
use pharox_postgres::testkit::PostgresHarness;
use tokio::sync::{Barrier, Semaphore};

const TASKS: usize = 64;
const PROXIES: usize = 8;
const ROUNDS: usize = 20;

/// Marks proxies in use between an acquire's answer and the release call:
/// a second grant while marked is an over-lease.
struct InUse(Vec<AtomicBool>);

impl InUse {
    fn new() -> Self {
        Self((0..PROXIES).map(|_| AtomicBool::new(false)).collect())
    }

    fn index(id: &str) -> usize {
        id.trim_start_matches('p')
            .parse()
            .expect("proxy ids are p<N>")
    }

    /// Marks `id` taken; false if it already was (an over-lease).
    fn take(&self, id: &str) -> bool {
        !self.0[Self::index(id)].swap(true, Ordering::SeqCst)
    }

    fn free(&self, id: &str) {
        self.0[Self::index(id)].store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_on_eight_single_slot_proxies() {
    let h = PostgresHarness::start().await;
    let pool = new_pool(&h, "race").await;
    for i in 0..PROXIES {
        add(
            &h,
            proxy(&pool, &format!("p{i}"), i as u16).with_max_concurrency(1),
        )
        .await;
    }

    // All at once, holding: exactly 8 leases, on 8 different proxies.
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (s, pool, barrier) = (h.storage().clone(), pool.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let req = request(&pool).selector(Selector::ALL[t % 4]);
            barrier.wait().await;
            s.acquire(&req).await.expect("acquire")
        }));
    }
    let mut held = Vec::new();
    for task in tasks {
        held.extend(task.await.unwrap());
    }
    assert_eq!(held.len(), PROXIES, "one lease per slot, no more, no less");
    let proxies: HashSet<_> = held.iter().map(|l| l.proxy.id.clone()).collect();
    assert_eq!(proxies.len(), PROXIES, "no proxy leased twice");
    assert_invariants(&h, &pool, true).await;
    for l in &held {
        assert_eq!(
            h.storage().release(l).await.unwrap(),
            ReleaseOutcome::Released
        );
    }

    // Churn, gated: at most 8 tasks between acquire and release, and the
    // one acquiring holds nothing, so a proxy is always free: every
    // acquire must succeed.
    let gate = Arc::new(Semaphore::new(PROXIES));
    let in_use = Arc::new(InUse::new());
    let over = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (s, pool, gate, in_use, over, barrier) = (
            h.storage().clone(),
            pool.clone(),
            gate.clone(),
            in_use.clone(),
            over.clone(),
            barrier.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ledger = TokenLedger::new();
            let mut misses = 0;
            barrier.wait().await;
            for r in 0..ROUNDS {
                let _permit = gate.acquire().await.unwrap();
                let req = request(&pool).selector(Selector::ALL[(t + r) % 4]);
                match s.acquire(&req).await.expect("acquire") {
                    Some(l) => {
                        ledger.record(l.token);
                        if !in_use.take(l.proxy.id.as_str()) {
                            over.fetch_add(1, Ordering::SeqCst);
                        }
                        tokio::task::yield_now().await;
                        in_use.free(l.proxy.id.as_str());
                        assert_eq!(s.release(&l).await.unwrap(), ReleaseOutcome::Released);
                    }
                    None => misses += 1,
                }
            }
            (ledger, misses)
        }));
    }
    let mut all = TokenLedger::new();
    let mut misses = 0;
    for task in tasks {
        let (ledger, m) = task.await.unwrap();
        all.merge(ledger);
        misses += m;
    }
    assert_eq!(over.load(Ordering::SeqCst), 0, "a proxy was leased twice");
    assert_eq!(misses, 0, "an acquire missed while a proxy was free");
    assert_eq!(all.len(), TASKS * ROUNDS);
    assert!(all.violations().is_empty(), "{:?}", all.violations());

    // Churn, ungated: 64 tasks on 8 slots, misses allowed, over-leases not.
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (s, pool, in_use, over) = (
            h.storage().clone(),
            pool.clone(),
            in_use.clone(),
            over.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ledger = TokenLedger::new();
            for r in 0..ROUNDS {
                let req = request(&pool).selector(Selector::ALL[(t + r) % 4]);
                if let Some(l) = s.acquire(&req).await.expect("acquire") {
                    ledger.record(l.token);
                    if !in_use.take(l.proxy.id.as_str()) {
                        over.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::task::yield_now().await;
                    in_use.free(l.proxy.id.as_str());
                    assert_eq!(s.release(&l).await.unwrap(), ReleaseOutcome::Released);
                }
            }
            ledger
        }));
    }
    let mut ungated = TokenLedger::new();
    for task in tasks {
        ungated.merge(task.await.unwrap());
    }
    assert_eq!(over.load(Ordering::SeqCst), 0, "a proxy was leased twice");
    assert!(
        ungated.violations().is_empty(),
        "{:?}",
        ungated.violations()
    );
    assert!(!ungated.is_empty(), "the ungated churn leased nothing");

    assert_invariants(&h, &pool, true).await;
    let stats = h.storage().pool_stats(&pool).await.unwrap();
    assert_eq!(stats.active_leases, 0);
    assert_eq!(stats.available, PROXIES as u64);
    assert_eq!(
        stats.total_leases,
        (PROXIES + TASKS * ROUNDS + ungated.len()) as u64
    );
    assert_eq!(stats.released_leases, stats.total_leases);
    assert!(check_lifetime_counters(&stats).is_none());
}
