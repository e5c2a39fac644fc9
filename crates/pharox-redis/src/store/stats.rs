//! Pool statistics (the O(1) counters) and consistent pool snapshots.

use std::sync::Arc;

use deadpool_redis::redis::{self};
use pharox_core::{
    ConsumerName, Error, LeasedProxy, PoolId, PoolSnapshot, PoolStatsSnapshot, Proxy, ProxyPool,
    Result, Storage, datetime_from_ms, validate,
};

use super::RedisStorage;
use super::admin::{ADMIN_ATTEMPTS, gave_up};
use crate::layout::{self, LeaseMember};
use crate::lease_id::LeaseParts;
use crate::queries::{self, StatsReply};
use crate::reply::{corrupt, u64_of, unparsable};

impl RedisStorage {
    /// A [`PoolSnapshot`] from what one transaction read: the counters
    /// string (up to the highest live sequence), every proxy record by
    /// sequence, the live leases with their deadlines, the proxy count, the
    /// free count and the Redis clock.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn snapshot_from(
        &self,
        pool: &PoolId,
        counters: &[u8],
        mut records: Vec<(u64, String)>,
        leases: Vec<(String, f64)>,
        total: u64,
        available: u64,
        now_ms: i64,
    ) -> Result<PoolSnapshot> {
        let slot = |s: layout::Slot| layout::read_slot(counters, s as u64);
        if slot(layout::Slot::Exists) != 1 {
            return Err(Error::PoolNotFound(pool.clone()));
        }
        let n = |v: i64, what| u64_of(v, what);
        let total_leases = n(
            slot(layout::Slot::Token) - slot(layout::Slot::TokenBase),
            "tokens",
        )?;
        let expired = n(slot(layout::Slot::Expired), "expired")?;
        let active_leases = leases.len() as u64;
        let stats = PoolStatsSnapshot {
            pool: pool.clone(),
            total,
            active: n(slot(layout::Slot::Active), "active")?,
            available,
            leased: n(slot(layout::Slot::Leased), "leased")?,
            active_leases,
            total_leases,
            released_leases: total_leases
                .checked_sub(active_leases + expired)
                .ok_or_else(|| corrupt("lease counters"))?,
            expired_leases: expired,
            collected_at: datetime_from_ms(now_ms),
        };
        records.sort_unstable_by_key(|(seq, _)| *seq);
        let mut by_seq = std::collections::HashMap::with_capacity(records.len());
        let mut list = Vec::with_capacity(records.len());
        for (seq, json) in &records {
            let word = layout::Word::unpack(layout::read_slot(counters, *seq))
                .ok_or_else(|| corrupt("proxy word"))?;
            let mut p: Proxy = serde_json::from_str(json).map_err(|e| unparsable("proxy", &e))?;
            p.current_leases = word.load;
            by_seq.insert(*seq, Arc::new(LeasedProxy::of(&p)));
            list.push(p);
        }
        let mut out = Vec::with_capacity(leases.len());
        for (member, deadline) in &leases {
            let m = LeaseMember::parse(member).ok_or_else(|| corrupt("lease member"))?;
            let proxy = by_seq
                .get(&m.seq)
                .cloned()
                .ok_or_else(|| corrupt("lease on an unknown proxy sequence"))?;
            let parts = LeaseParts {
                tag: pool.lease_tag(),
                token: m.token,
                nonce: m.nonce,
            };
            out.push(Self::build_lease(
                pool,
                &ConsumerName::from(m.consumer),
                parts,
                m.acquired_ms,
                *deadline as i64,
                proxy,
            )?);
        }
        Ok(PoolSnapshot {
            pool: self
                .get_pool(pool)
                .await?
                .unwrap_or_else(|| ProxyPool::new(pool.clone())),
            taken_at: stats.collected_at,
            stats,
            proxies: list,
            leases: out,
        })
    }
}

pub(super) async fn pool_stats(store: &RedisStorage, pool: &PoolId) -> Result<PoolStatsSnapshot> {
    validate::pool_id(pool)?;
    let k = store.keys(pool);
    match StatsReply::decode(pool, store.run(&queries::stats(&k), "pool_stats").await?)? {
        StatsReply::NoPool => Err(Error::PoolNotFound(pool.clone())),
        StatsReply::Stats(stats) => Ok(stats),
    }
}

pub(super) async fn pool_snapshot(store: &RedisStorage, pool: &PoolId) -> Result<PoolSnapshot> {
    validate::pool_id(pool)?;
    let k = store.keys(pool);
    for _ in 0..ADMIN_ATTEMPTS {
        // The highest live sequence bounds the part of the counters
        // string to read; the same read inside the transaction tells
        // whether a proxy was added since.
        let top = redis::cmd("ZRANGE")
            .arg(&k.all_by_seq)
            .arg(-1)
            .arg(-1)
            .clone();
        let highest = |v: Vec<u64>| v.first().copied().unwrap_or(layout::FIRST_SEQ - 1);
        let before = highest(store.cmd(&top, "pool_snapshot").await?);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("GETRANGE")
            .arg(&k.counters)
            .arg(0)
            .arg(8 * (before + 1) - 1)
            .cmd("HGETALL")
            .arg(&k.proxy_by_seq)
            .cmd("ZRANGE")
            .arg(&k.leases_by_deadline)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .cmd("HLEN")
            .arg(&k.seq_by_id)
            .cmd("ZCARD")
            .arg(&k.free_by_seq)
            .cmd("TIME")
            .add_command(top.clone());
        type Reply = (
            Vec<u8>,
            Vec<(u64, String)>,
            Vec<(String, f64)>,
            u64,
            u64,
            (i64, i64),
            Vec<u64>,
        );
        let (counters, records, leases, total, available, (secs, micros), after): Reply = store
            .inner
            .conn
            .query(&pipe, "pool_snapshot", store.timeout())
            .await?;
        if highest(after) > before {
            continue;
        }
        return store
            .snapshot_from(
                pool,
                &counters,
                records,
                leases,
                total,
                available,
                secs * 1000 + micros / 1000,
            )
            .await;
    }
    Err(gave_up("pool_snapshot", "pool"))
}
