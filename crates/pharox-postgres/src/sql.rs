//! Every statement the store sends. Each write is one call of a function
//! of migrations/0002_functions.sql (as 0004_concurrency.sql replaced them): one statement, one round trip, and
//! prepared once per connection (`prepare_cached`).

/// `pharox_acquire` outcome: no proxy qualifies.
pub(crate) const NO_PROXY: i32 = 0;
/// `pharox_acquire` outcome: leased.
pub(crate) const LEASED: i32 = 1;
/// Any function's outcome: the pool does not exist.
pub(crate) const NO_POOL: i32 = 404;
/// `pharox_release` outcome: released while live.
pub(crate) const RELEASED: i32 = 1;
/// `pharox_release` outcome: it was past its deadline (counted expired).
pub(crate) const RELEASED_EXPIRED: i32 = 2;
/// `pharox_upsert_proxy` outcome: stored.
pub(crate) const STORED: i32 = 0;
/// `pharox_upsert_proxy` outcome: the new cap is below the live leases.
pub(crate) const CAP_BELOW_LEASES: i32 = 1;
/// `pharox_upsert_proxy` outcome: the pool holds the most proxies it may.
pub(crate) const POOL_FULL: i32 = 2;

pub(crate) const ACQUIRE: &str = "SELECT * FROM pharox_acquire($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(crate) const FIND: &str = "SELECT * FROM pharox_find($1, $2, $3, $4, $5, $6)";
pub(crate) const RELEASE: &str = "SELECT * FROM pharox_release($1, $2, $3)";
pub(crate) const RENEW: &str = "SELECT * FROM pharox_renew($1, $2, $3, $4)";
pub(crate) const CLEANUP: &str = "SELECT pharox_cleanup($1, $2)";
pub(crate) const UPSERT_PROXY: &str = "SELECT * FROM pharox_upsert_proxy($1, $2, $3, $4, $5, \
    $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)";
pub(crate) const REMOVE_PROXY: &str = "SELECT pharox_remove_proxy($1, $2)";
pub(crate) const HEALTH: &str = "SELECT pool_id, id, host, port, protocol, username, password, \
    status, checked_at, latency_ms, source, country, city, latitude, longitude, isp, asn, \
    max_concurrency, current_leases, extra FROM pharox_health($1, $2, $3, $4, $5)";
pub(crate) const REMOVE_POOL: &str = "SELECT pharox_remove_pool($1)";

pub(crate) const UPSERT_POOL: &str = "INSERT INTO pharox_pools (id, name, description, last_token)
    VALUES ($1, $2, $3, coalesce(
        (SELECT r.last_token FROM pharox_retired_tokens r WHERE r.pool_id = $1), 0))
    ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description";
pub(crate) const GET_POOL: &str = "SELECT id, name, description FROM pharox_pools WHERE id = $1";
pub(crate) const LIST_POOLS: &str =
    "SELECT id, name, description FROM pharox_pools ORDER BY id COLLATE \"C\"";
pub(crate) const ENSURE_CONSUMER: &str = "INSERT INTO pharox_consumers (name, id) VALUES ($1, $2)
    ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id";
pub(crate) const LIST_CONSUMERS: &str =
    "SELECT name, id FROM pharox_consumers ORDER BY name COLLATE \"C\"";
pub(crate) const POOL_EXISTS: &str = "SELECT 1 FROM pharox_pools WHERE id = $1";
pub(crate) const STATS: &str = "SELECT proxies_total, proxies_active, proxies_available, \
    proxies_leased, active_leases, total_leases, released_leases, expired_leases, \
    clock_timestamp() AS collected_at FROM pharox_pool_stats WHERE id = $1";
pub(crate) const GET_LEASE: &str = "SELECT l.token, l.consumer, l.acquired_at, l.expires_at, \
    x.id AS proxy_id, x.host, x.port, x.protocol, x.username, x.password
    FROM pharox_leases l JOIN pharox_proxies x ON x.pool_id = l.pool_id AND x.seq = l.proxy_seq
    WHERE l.id = $2 AND l.pool_id = $1 AND l.expires_at > clock_timestamp()";
pub(crate) const SNAPSHOT_LEASES: &str = "SELECT l.id, l.token, l.consumer, l.acquired_at, \
    l.expires_at, x.id AS proxy_id, x.host, x.port, x.protocol, x.username, x.password
    FROM pharox_leases l JOIN pharox_proxies x ON x.pool_id = l.pool_id AND x.seq = l.proxy_seq
    WHERE l.pool_id = $1 ORDER BY l.token";
