//! Leases after the grant: building them from script replies, naming them
//! to the scripts, release, renew and cleanup.

use std::sync::Arc;

use chrono::TimeDelta;
use pharox_core::model::LeaseStatus;
use pharox_core::{
    ConsumerName, Error, Lease, LeaseId, LeaseRef, LeasedProxy, PoolId, ReleaseOutcome, Result,
    datetime_from_ms, validate,
};

use super::RedisStorage;
use crate::layout::LeaseMember;
use crate::lease_id::LeaseParts;
use crate::queries::{self, CleanupReply};
use crate::reply::{corrupt, parse_proxy};

pub(super) fn lease_member(
    seq: u64,
    parts: LeaseParts,
    acquired_ms: i64,
    consumer: &str,
) -> String {
    LeaseMember {
        seq,
        token: parts.token,
        nonce: parts.nonce,
        acquired_ms,
        consumer,
    }
    .build()
}

impl RedisStorage {
    pub(super) fn build_lease(
        pool: &PoolId,
        consumer: &ConsumerName,
        parts: LeaseParts,
        now: i64,
        expires: i64,
        proxy: Arc<LeasedProxy>,
    ) -> Result<Lease> {
        Ok(Lease {
            id: parts
                .encode()
                .ok_or_else(|| corrupt("token or proxy sequence beyond the lease id's range"))?,
            token: parts.token,
            pool: pool.clone(),
            consumer: consumer.clone(),
            proxy,
            status: LeaseStatus::Active,
            acquired_at: datetime_from_ms(now),
            expires_at: datetime_from_ms(expires),
            released_at: None,
        })
    }

    /// The script argument naming `lease` (`token:nonce`), or `None` when
    /// no lease of this store can match it: an id of another layout or of
    /// another pool's tag, a token other than the id's, an invalid pool id.
    pub(super) fn ref_arg(lease: &LeaseRef) -> Option<String> {
        let parts = LeaseParts::decode(&lease.id)?;
        let matches = parts.tag == lease.pool.lease_tag()
            && lease.token.is_none_or(|t| t == parts.token)
            && parts.token > 0
            && validate::pool_id(&lease.pool).is_ok();
        matches.then(|| queries::lease_ref(parts.token, parts.nonce))
    }

    /// The lease a script answered (its stored member, deadline and proxy).
    pub(super) fn lease_from_reply(pool: &PoolId, r: &queries::LeaseReply) -> Result<Lease> {
        let m = LeaseMember::parse(&r.member).ok_or_else(|| corrupt("lease member"))?;
        let proxy = Arc::new(LeasedProxy::of(&parse_proxy(&r.proxy, 0)?));
        let parts = LeaseParts {
            tag: pool.lease_tag(),
            token: m.token,
            nonce: m.nonce,
        };
        Self::build_lease(
            pool,
            &ConsumerName::from(m.consumer),
            parts,
            m.acquired_ms,
            r.deadline_ms,
            proxy,
        )
    }
}

pub(super) async fn get_lease(
    store: &RedisStorage,
    pool: &PoolId,
    lease: &LeaseId,
) -> Result<Option<Lease>> {
    validate::pool_id(pool)?;
    let Some(arg) = RedisStorage::ref_arg(&LeaseRef::new(pool.clone(), *lease)) else {
        return Ok(None);
    };
    let k = store.keys(pool);
    let reply = store
        .run(&queries::get_lease(&k, &arg), "get_lease")
        .await?;
    match queries::lease_reply(reply, false)? {
        Some(r) => RedisStorage::lease_from_reply(pool, &r).map(Some),
        None => Ok(None),
    }
}

pub(super) async fn release(store: &RedisStorage, lease: &Lease) -> Result<ReleaseOutcome> {
    let Some(arg) = RedisStorage::ref_arg(&LeaseRef::from(lease)) else {
        return Ok(ReleaseOutcome::NotHeld);
    };
    let k = store.keys(&lease.pool);
    let r: i64 = store.run(&queries::release(&k, &arg), "release").await?;
    Ok(queries::release_outcome(r))
}

pub(super) async fn release_by_ref(
    store: &RedisStorage,
    lease: &LeaseRef,
) -> Result<Option<(Lease, ReleaseOutcome)>> {
    let Some(arg) = RedisStorage::ref_arg(lease) else {
        return Ok(None);
    };
    let k = store.keys(&lease.pool);
    let reply = store
        .run(&queries::release_returning(&k, &arg), "release")
        .await?;
    match queries::lease_reply(reply, false)? {
        Some(r) => {
            let ended = RedisStorage::lease_from_reply(&lease.pool, &r)?;
            Ok(Some((ended, queries::release_outcome(r.head))))
        }
        None => Ok(None),
    }
}

pub(super) async fn renew(
    store: &RedisStorage,
    lease: &Lease,
    duration: TimeDelta,
) -> Result<Lease> {
    validate::lease_duration(duration)?;
    let lost = || Error::LeaseLost { lease: lease.id };
    let arg = RedisStorage::ref_arg(&LeaseRef::from(lease)).ok_or_else(lost)?;
    let k = store.keys(&lease.pool);
    let inv = queries::renew(&k, &arg, duration.num_milliseconds());
    let (reply, acked) = store.run_acked(&inv, "renew").await?;
    let renewed = queries::renewed_until(reply)?;
    if let (Some(_), Err(acknowledged)) = (renewed, acked) {
        return Err(renew_not_acknowledged(
            store,
            acknowledged,
            lease.expires_at,
        ));
    }
    match renewed {
        Some(deadline) => Ok(Lease {
            expires_at: datetime_from_ms(deadline),
            status: LeaseStatus::Active,
            ..lease.clone()
        }),
        None => Err(lost()),
    }
}

pub(super) async fn renew_by_ref(
    store: &RedisStorage,
    lease: &LeaseRef,
    duration: TimeDelta,
) -> Result<Lease> {
    validate::lease_duration(duration)?;
    let lost = || Error::LeaseLost { lease: lease.id };
    let arg = RedisStorage::ref_arg(lease).ok_or_else(lost)?;
    let k = store.keys(&lease.pool);
    let inv = queries::renew_returning(&k, &arg, duration.num_milliseconds());
    let (reply, acked) = store.run_acked(&inv, "renew").await?;
    match queries::lease_reply(reply, true)? {
        Some(r) => {
            let renewed = RedisStorage::lease_from_reply(&lease.pool, &r)?;
            match acked {
                Ok(()) => Ok(renewed),
                // The reply's deadline is the new one; the former is unknown here.
                Err(acknowledged) => Err(store.not_acknowledged(
                    "renew",
                    acknowledged,
                    "the new deadline holds on the primary; after a failover the lease may end \
                     at its former deadline",
                )),
            }
        }
        None => Err(lost()),
    }
}

/// A renew applied on the primary that too few replicas acknowledged.
fn renew_not_acknowledged(
    store: &RedisStorage,
    acknowledged: u32,
    former: chrono::DateTime<chrono::Utc>,
) -> Error {
    store.not_acknowledged(
        "renew",
        acknowledged,
        &format!(
            "the new deadline holds on the primary; after a failover the lease may end at its \
             former deadline, {former}"
        ),
    )
}

pub(super) async fn cleanup_expired(
    store: &RedisStorage,
    pool: &PoolId,
    limit: usize,
) -> Result<usize> {
    validate::pool_id(pool)?;
    validate::cleanup_limit(limit)?;
    let k = store.keys(pool);
    let r: i64 = store.run(&queries::cleanup(&k, limit), "cleanup").await?;
    match CleanupReply::decode(r)? {
        CleanupReply::NoPool => Err(Error::PoolNotFound(pool.clone())),
        CleanupReply::Reclaimed(n) => Ok(n),
    }
}
