//! Checks shared by the churn test binaries of this crate (`churn.rs`,
//! `restart.rs`): the store's own bookkeeping of a churned pool recomputed
//! from its tables.

#![allow(dead_code)]

use pharox_postgres::tokio_postgres::{self, NoTls};

/// Where the counters kept in `pharox_pools` (with its counter shards, the
/// view `pharox_pool_stats`) and `pharox_proxies` of `pool`
/// disagree with a recount of the tables (the store's analogue of the Redis
/// store's `index_problems`): every proxy's `current_leases` against its
/// lease rows, and the pool's proxy and lease counters against the proxies
/// and leases. Empty when the bookkeeping is sound. Reads through a
/// connection of its own to `url`, in one snapshot.
pub async fn bookkeeping_problems(url: &str, pool: &str) -> Vec<String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect for the bookkeeping check");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut problems = Vec::new();
    for row in client
        .query(
            "SELECT x.id, x.current_leases, \
                    (SELECT count(*) FROM pharox_leases l \
                     WHERE l.pool_id = x.pool_id AND l.proxy_seq = x.seq) AS n \
             FROM pharox_proxies x WHERE x.pool_id = $1 ORDER BY x.seq",
            &[&pool],
        )
        .await
        .expect("recount leases per proxy")
    {
        let (id, kept, counted): (String, i32, i64) = (row.get(0), row.get(1), row.get(2));
        if i64::from(kept) != counted {
            problems.push(format!(
                "proxy {id}: current_leases {kept}, {counted} lease rows"
            ));
        }
    }
    let row = client
        .query_one(
            "SELECT p.proxies_total, p.proxies_active, p.proxies_available, p.proxies_leased, \
                    p.active_leases, \
                    (SELECT count(*) FROM pharox_proxies x WHERE x.pool_id = p.id), \
                    (SELECT count(*) FROM pharox_proxies x \
                     WHERE x.pool_id = p.id AND x.status = 'active'), \
                    (SELECT count(*) FROM pharox_proxies x WHERE x.pool_id = p.id \
                     AND x.status = 'active' AND x.current_leases < x.capacity), \
                    (SELECT count(*) FROM pharox_proxies x \
                     WHERE x.pool_id = p.id AND x.current_leases > 0), \
                    (SELECT count(*) FROM pharox_leases l WHERE l.pool_id = p.id), \
                    p.total_leases - p.released_leases - p.expired_leases \
             FROM pharox_pool_stats p WHERE p.id = $1",
            &[&pool],
        )
        .await
        .expect("recount the pool");
    let names = [
        "proxies_total",
        "proxies_active",
        "proxies_available",
        "proxies_leased",
        "active_leases",
    ];
    for (i, name) in names.iter().enumerate() {
        let (kept, counted): (i64, i64) = (row.get(i), row.get(i + names.len()));
        if kept != counted {
            problems.push(format!("{name}: kept {kept}, counted {counted}"));
        }
    }
    let (active, unended): (i64, i64) = (row.get(4), row.get(10));
    if active != unended {
        problems.push(format!(
            "active_leases {active}, but total - released - expired is {unended}"
        ));
    }
    problems
}
