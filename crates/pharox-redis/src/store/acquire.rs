//! Acquiring: the acquire script's calls (a filtered search may span
//! several), completing a granted lease with its proxy's data, and giving
//! the lease back when that fails.

use std::sync::Arc;

use deadpool_redis::redis::{self, Value};
use pharox_core::{
    AcquireRequest, Error, Lease, LeasedProxy, PoolId, Proxy, ProxyFilters, Result, Selector,
    datetime_from_ms, validate,
};

use super::RedisStorage;
use super::lease::lease_member;
use super::plan::{plan, selector_code};
use crate::layout;
use crate::lease_id::{LeaseParts, NONCE_LIMIT};
use crate::queries::{self, AcquireArgs, AcquireReply};
use crate::reply::{corrupt, parse_proxy, unparsable};

/// Calls one filtered acquire may take: each examines at least 15
/// candidates of an index of at most `layout::MAX_PROXIES`, in at most two
/// round-robin phases and two passes. A safety net against a search that
/// never ends, not a limit any search reaches.
pub(super) const MAX_ACQUIRE_CALLS: usize = 4 * (layout::MAX_PROXIES / 15 + 2);

/// A lease the acquire script granted, before its proxy data is known.
pub(super) struct Granted {
    seq: u64,
    parts: LeaseParts,
    now_ms: i64,
    generation: i64,
    proxy: Option<Value>,
}

impl RedisStorage {
    /// Runs the acquire script until it answers (a filtered search may take
    /// several calls; none but the last grants anything); `find` only looks.
    /// Returns the answer, the nonce the lease was granted with, and
    /// `Err(acknowledged)` when fewer replicas acknowledged the grant than
    /// [`RedisConfig::acknowledge`](crate::RedisConfig::acknowledge) wants.
    pub(super) async fn select(
        &self,
        request: &AcquireRequest,
        find: bool,
    ) -> Result<Option<(AcquireReply, u64, std::result::Result<(), u32>)>> {
        validate::acquire_request(request)?;
        if request.filters.has_predicate() {
            return Err(Error::UnsupportedFilter(
                "closure predicates cannot run inside Redis",
            ));
        }
        let k = self.keys(&request.pool);
        let plan = plan(&k, &request.filters);
        let filter_json = if plan.verifies() {
            serde_json::to_string(&request.filters)
                .map_err(|e| Error::invalid("filters", e.to_string()))?
        } else {
            String::new()
        };
        let nonce = fastrand::u64(..NONCE_LIMIT);
        let cached_generation = if find {
            None
        } else {
            self.inner.cache.generation(&request.pool)
        };
        let op = if find { "find" } else { "acquire" };
        let mut position = String::new();
        for _ in 0..MAX_ACQUIRE_CALLS {
            let inv = queries::acquire(
                &k,
                &AcquireArgs {
                    selector: selector_code(request.selector),
                    duration_ms: request.duration.num_milliseconds(),
                    consumer: request.consumer.as_str(),
                    nonce,
                    reclaim_batch: self.inner.config.reclaim_batch,
                    find,
                    cached_generation,
                    plan: &plan,
                    filter_json: &filter_json,
                    position: &position,
                },
            );
            // A call that may grant is acknowledged by replicas when the
            // configuration asks (the calls before it grant nothing, but
            // which call grants is known only from its answer).
            let (reply, acked) = if find {
                (self.run(&inv, op).await?, Ok(()))
            } else {
                self.run_acked(&inv, op).await?
            };
            match AcquireReply::decode(reply)? {
                AcquireReply::Continue(next) => position = next,
                AcquireReply::NoPool => return Err(Error::PoolNotFound(request.pool.clone())),
                AcquireReply::NoProxy => return Ok(None),
                answer => return Ok(Some((answer, nonce, acked))),
            }
        }
        Err(Error::Backend {
            source: format!(
                "{op}: the filtered search did not finish in {MAX_ACQUIRE_CALLS} calls"
            )
            .into(),
        })
    }

    /// The connection data of proxy `seq` when the cache lacks it; `None`
    /// if the proxy is gone. A retryable failure is tried once more: the
    /// lease is already granted and this read is safe to repeat.
    pub(super) async fn fetch_leased(
        &self,
        pool: &PoolId,
        generation: i64,
        seq: u64,
    ) -> Result<Option<Arc<LeasedProxy>>> {
        let k = self.keys(pool);
        let hget = redis::cmd("HGET").arg(&k.proxy_by_seq).arg(seq).clone();
        let read = || async {
            #[cfg(feature = "testkit")]
            if let Some(e) = self.inner.faults.follow_up_read() {
                return Err(e);
            }
            self.cmd::<Option<String>>(&hget, "acquire").await
        };
        let json = match read().await {
            Err(e) if e.is_retryable() => read().await?,
            other => other?,
        };
        let Some(json) = json else {
            return Ok(None);
        };
        let proxy: Proxy = serde_json::from_str(&json).map_err(|e| unparsable("proxy", &e))?;
        let proxy = Arc::new(LeasedProxy::of(&proxy));
        self.inner.cache.remember(pool, generation, seq, &proxy);
        Ok(Some(proxy))
    }

    /// Completes a granted lease: its proxy's connection data, from the
    /// reply, the cache or one read. `Ok(None)` if the proxy was removed
    /// since (the lease ended with it).
    pub(super) async fn complete(
        &self,
        request: &AcquireRequest,
        g: &Granted,
    ) -> Result<Option<Lease>> {
        let proxy = match &g.proxy {
            Some(json) => {
                let proxy = Arc::new(LeasedProxy::of(&parse_proxy(json, 0)?));
                self.inner
                    .cache
                    .remember(&request.pool, g.generation, g.seq, &proxy);
                proxy
            }
            None => match self.inner.cache.recall(&request.pool, g.generation, g.seq) {
                Some(p) => p,
                None => match self
                    .fetch_leased(&request.pool, g.generation, g.seq)
                    .await?
                {
                    Some(p) => p,
                    None => return Ok(None),
                },
            },
        };
        let expires = g.now_ms + request.duration.num_milliseconds();
        Self::build_lease(
            &request.pool,
            &request.consumer,
            g.parts,
            g.now_ms,
            expires,
            proxy,
        )
        .map(Some)
    }

    /// Gives a granted lease back because `why`: releases it so it does
    /// not leak, and returns the error to report. A lease was granted, so
    /// the error never says "not sent": a retryable one becomes
    /// `Interrupted` (the manager does not repeat an acquire after it).
    pub(super) async fn give_back(
        &self,
        request: &AcquireRequest,
        g: &Granted,
        why: GiveBack,
    ) -> Error {
        let k = self.keys(&request.pool);
        let member = lease_member(g.seq, g.parts, g.now_ms, request.consumer.as_str());
        let release = || async {
            #[cfg(feature = "testkit")]
            if let Some(e) = self.inner.faults.give_back() {
                return Err(e);
            }
            self.run::<i64>(&queries::release(&k, &member), "release")
                .await
        };
        let released = release().await;
        let until = datetime_from_ms(g.now_ms + request.duration.num_milliseconds());
        let e = match why {
            GiveBack::Failed(e) => e,
            GiveBack::NotAcknowledged(acknowledged) => {
                // Released on the primary; a replica may have the lease
                // and not the release, so a failover now may keep it.
                let what = match &released {
                    Ok(_) => format!(
                        "the lease was released again; a failover now may keep it, holding its \
                         capacity until it expires at {until}"
                    ),
                    Err(r) => format!(
                        "releasing it failed too ({r}): it is held until it expires at {until}"
                    ),
                };
                tracing::warn!(pool = %request.pool, token = g.parts.token, acknowledged, "acquire: the lease was not acknowledged by enough replicas; {what}");
                return self.not_acknowledged("acquire", acknowledged, &what);
            }
        };
        let what = match &released {
            Ok(_) => "it was released again, so nothing is held".to_owned(),
            Err(r) => {
                format!("releasing it failed too ({r}): it is held until it expires at {until}")
            }
        };
        tracing::warn!(pool = %request.pool, token = g.parts.token, error = %e, "acquire: completing a granted lease failed; {what}");
        if e.is_retryable() {
            Error::Interrupted {
                source: format!(
                    "acquire: a lease was granted but completing it failed ({e}); {what}"
                )
                .into(),
            }
        } else {
            e
        }
    }
}

/// Why a granted lease is given back.
pub(super) enum GiveBack {
    /// Completing it failed with this error.
    Failed(Error),
    /// Only this many replicas acknowledged it.
    NotAcknowledged(u32),
}

pub(super) async fn find_available_proxy(
    store: &RedisStorage,
    pool: &PoolId,
    filters: &ProxyFilters,
    selector: Selector,
) -> Result<Option<Proxy>> {
    let request = AcquireRequest::new(pool.clone())
        .filters(filters.clone())
        .selector(selector);
    match store.select(&request, true).await? {
        None => Ok(None),
        Some((AcquireReply::Found { proxy, load }, _, _)) => parse_proxy(&proxy, load).map(Some),
        Some(_) => Err(corrupt("find reply")),
    }
}

pub(super) async fn acquire(
    store: &RedisStorage,
    request: &AcquireRequest,
) -> Result<Option<Lease>> {
    for _ in 0..2 {
        let Some((answer, nonce, acked)) = store.select(request, false).await? else {
            return Ok(None);
        };
        let AcquireReply::Leased {
            seq,
            token,
            now_ms,
            generation,
            proxy,
        } = answer
        else {
            return Err(corrupt("acquire reply"));
        };
        let granted = Granted {
            seq,
            parts: LeaseParts {
                tag: request.pool.lease_tag(),
                token,
                nonce,
            },
            now_ms,
            generation,
            proxy,
        };
        if let Err(acknowledged) = acked {
            return Err(store
                .give_back(request, &granted, GiveBack::NotAcknowledged(acknowledged))
                .await);
        }
        match store.complete(request, &granted).await {
            Ok(Some(lease)) => return Ok(Some(lease)),
            // The proxy was removed between the lease and the lookup, so
            // the lease already ended; drop the cache and try again.
            Ok(None) => store.inner.cache.forget(&request.pool),
            Err(e) => {
                return Err(store
                    .give_back(request, &granted, GiveBack::Failed(e))
                    .await);
            }
        }
    }
    Err(Error::Backend {
        source: "acquire: leased proxies kept disappearing".into(),
    })
}
