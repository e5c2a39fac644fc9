//! The reference: what the reference evaluator and each selector's rule allow.

use super::*;

/// What a case knows of a pool it seeded and leases from alone: every proxy
/// in sequence order with its live leases, and the round-robin cursor. From
/// it, [`Reference::allowed`] answers which proxies an acquire may return.
#[derive(Debug)]
pub struct Reference {
    proxies: Vec<Proxy>,
    position: HashMap<ProxyId, usize>,
    cursor: Option<usize>,
}

impl Reference {
    /// The reference of a freshly seeded pool (no leases, cursor at the
    /// start) whose sequence order is the order of `proxies`.
    pub fn new(proxies: Vec<Proxy>) -> Self {
        let position = proxies
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        Self {
            proxies,
            position,
            cursor: None,
        }
    }

    /// The reference of a pool seeded concurrently with `built`: concurrent
    /// upserts may land in any order, so the sequence order is read from
    /// `list_proxies` ("in the order they were added"). Panics unless the
    /// pool holds exactly `built`, unchanged.
    pub async fn of_pool<H: Harness>(h: &H, pool: &PoolId, built: Vec<Proxy>) -> Self {
        let listed = h.storage().list_proxies(pool).await.expect("list proxies");
        assert_eq!(listed.len(), built.len(), "proxies listed");
        let mut by_id: HashMap<ProxyId, Proxy> =
            built.into_iter().map(|p| (p.id.clone(), p)).collect();
        let ordered: Vec<Proxy> = listed
            .into_iter()
            .map(|stored| {
                let mine = by_id
                    .remove(&stored.id)
                    .unwrap_or_else(|| panic!("listed {} twice or never seeded it", stored.id));
                assert_eq!(stored, mine, "a proxy as stored and as seeded");
                mine
            })
            .collect();
        Self::new(ordered)
    }

    /// The proxies in sequence order, with the leases recorded so far.
    pub fn proxies(&self) -> &[Proxy] {
        &self.proxies
    }

    /// Which proxies `filters` matches, by position (the reference evaluator,
    /// once per filter: a match does not depend on leases).
    pub fn matching(&self, filters: &ProxyFilters) -> Vec<bool> {
        self.proxies.iter().map(|p| filters.matches(p)).collect()
    }

    /// Positions an acquire with `selector` may return now, among the free
    /// proxies `matching` marks: the lowest sequence (first available), the
    /// next after the cursor, wrapping (round robin), every one with the
    /// fewest leases (least used) or the lowest latency, unmeasured last
    /// (lowest latency). Empty: the acquire must answer `None`.
    pub fn allowed(&self, matching: &[bool], selector: Selector) -> Vec<usize> {
        let free: Vec<usize> = (0..self.proxies.len())
            .filter(|&i| matching[i] && self.proxies[i].has_free_capacity())
            .collect();
        let best_by = |key: &dyn Fn(&Proxy) -> u64| -> Vec<usize> {
            let best = free.iter().map(|&i| key(&self.proxies[i])).min();
            free.iter()
                .copied()
                .filter(|&i| Some(key(&self.proxies[i])) == best)
                .collect()
        };
        match selector {
            Selector::FirstAvailable => free.first().copied().into_iter().collect(),
            Selector::RoundRobin => {
                let after = self.cursor.map_or(0, |c| c + 1);
                free.iter()
                    .copied()
                    .find(|&i| i >= after)
                    .or_else(|| free.first().copied())
                    .into_iter()
                    .collect()
            }
            Selector::LeastUsed => best_by(&|p| u64::from(p.current_leases)),
            Selector::LowestLatency => best_by(&|p| p.latency_ms.map_or(u64::MAX, u64::from)),
        }
    }

    /// Checks what an acquire returned against [`Reference::allowed`], then
    /// records the lease. `what` names the acquire in a failure.
    pub fn check(
        &mut self,
        matching: &[bool],
        selector: Selector,
        got: Option<&Lease>,
        what: &str,
    ) {
        let allowed = self.allowed(matching, selector);
        match got {
            None => assert!(
                allowed.is_empty(),
                "{what}: {selector:?} answered None, the reference allows {} proxies (first {})",
                allowed.len(),
                self.proxies[allowed[0]].id
            ),
            Some(lease) => {
                let at = *self
                    .position
                    .get(&lease.proxy.id)
                    .unwrap_or_else(|| panic!("{what}: leased unknown proxy {}", lease.proxy.id));
                assert!(
                    allowed.contains(&at),
                    "{what}: {selector:?} leased {} (matches: {}, free: {}), the reference \
                     allows {:?}",
                    lease.proxy.id,
                    matching[at],
                    self.proxies[at].has_free_capacity(),
                    allowed
                        .iter()
                        .take(5)
                        .map(|&i| self.proxies[i].id.as_str())
                        .collect::<Vec<_>>()
                );
                self.record(at, selector);
            }
        }
    }

    /// Records a lease granted on the proxy at `at` by `selector`.
    fn record(&mut self, at: usize, selector: Selector) {
        self.proxies[at].current_leases += 1;
        if selector == Selector::RoundRobin {
            self.cursor = Some(at);
        }
    }

    /// Records leases granted outside [`Reference::check`] (e.g. by [`lease_many`]).
    pub fn record_leases(&mut self, leases: &[Lease], selector: Selector) {
        for l in leases {
            let at = self.position[&l.proxy.id];
            self.record(at, selector);
        }
    }

    /// Records a release.
    pub fn record_release(&mut self, lease: &Lease) {
        let at = self.position[&lease.proxy.id];
        self.proxies[at].current_leases -= 1;
    }
}

/// Acquires `per_selector` times with each selector under `filters`, checking
/// each answer against the reference.
pub(super) async fn acquire_like_the_reference<H: Harness>(
    h: &H,
    reference: &mut Reference,
    pool: &PoolId,
    filters: &ProxyFilters,
    per_selector: usize,
    what: &str,
) {
    let matching = reference.matching(filters);
    for selector in Selector::ALL {
        let req = AcquireRequest::new(pool.clone())
            .duration(HOLD)
            .filters(filters.clone())
            .selector(selector);
        for n in 0..per_selector {
            let started = Instant::now();
            let got = h.storage().acquire(&req).await.expect("acquire");
            if n == 0 {
                eprintln!(
                    "  {what}, {selector:?}: first acquire {:.1?}",
                    started.elapsed()
                );
            }
            reference.check(&matching, selector, got.as_ref(), what);
        }
    }
}
