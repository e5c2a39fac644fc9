//! Hostile input on PostgresStorage, beyond the contract suite's
//! typed-error cases:
//!
//! - the filtering property of the workspace's `tests/hostile_input.rs`
//!   (its model, `tests/filter_model/`, included as is): on random pools and
//!   random (nested) filters, every acquire leases exactly the proxy a model
//!   picks with the core reference evaluator and the selector's rule, until
//!   every matching proxy is full;
//! - text with a NUL byte, which PostgreSQL cannot store or compare (a
//!   `text` value never holds `\0`), anywhere a caller can put text: pool
//!   ids, pool names, proxy ids and fields, credentials, `extra` labels,
//!   consumer names and filter values (top level and nested), in every call
//!   that takes them. Each is refused as `InvalidInput` naming the field,
//!   never as a backend error, before anything is sent, and changes nothing.
//!
//! `PROPTEST_CASES` raises the number of random cases (default 48).

#[path = "../../../tests/filter_model/mod.rs"]
mod filter_model;

use chrono::{TimeDelta, Utc};
use pharox_core::testkit::Harness;
use pharox_core::{
    AcquireRequest, ConsumerName, Error, HealthCheckResult, LeaseRef, PoolId, Proxy, ProxyFilters,
    ProxyId, ProxyPool, ProxyProtocol, ProxyStatus, Result, Selector, Storage,
};
use pharox_postgres::PostgresStorage;
use pharox_postgres::testkit::PostgresHarness;

#[test]
fn postgres_filtering_agrees_with_the_reference_evaluator() {
    let rt = filter_model::runtime();
    let h = rt.block_on(PostgresHarness::start());
    filter_model::run_property("postgres", &rt, h.storage().clone());
    // The harness drops its database on a runtime of its own.
    drop(h);
}

/// A password planted with a NUL byte: no error may echo it (I8).
const SECRET: &str = "s3cret\0pw";

/// Panics unless `result` is `InvalidInput` on exactly `field`, and its text
/// does not show the secret.
fn refused<T: std::fmt::Debug>(what: &str, result: Result<T>, field: &str) {
    match result {
        Err(e @ Error::InvalidInput { .. }) => {
            let Error::InvalidInput { field: f, .. } = &e else {
                unreachable!()
            };
            assert_eq!(*f, field, "{what}: refused on the wrong field: {e}");
            let text = format!("{e} {e:?}");
            assert!(
                !text.contains("s3cret"),
                "{what}: the error shows the secret"
            );
        }
        other => panic!("{what}: expected InvalidInput on {field}, got {other:?}"),
    }
}

fn good_proxy(pool: &PoolId) -> Proxy {
    Proxy::new(pool.clone(), "10.5.0.1", 5000, ProxyProtocol::Http)
        .with_id("good")
        .with_country("US")
        .with_city("Köln")
        .with_source("dc")
        .with_isp("isp")
}

/// The filter `leaf` at the top level and nested in each combinator.
fn placements(leaf: ProxyFilters) -> Vec<(&'static str, ProxyFilters)> {
    vec![
        ("top level", leaf.clone()),
        ("all_of", ProxyFilters::new().all_of([leaf.clone()])),
        (
            "any_of",
            ProxyFilters::new().any_of([ProxyFilters::new().country("US"), leaf.clone()]),
        ),
        (
            "none_of, two deep",
            ProxyFilters::new().none_of([ProxyFilters::new().any_of([leaf])]),
        ),
    ]
}

async fn every_refusal(s: &PostgresStorage, pool: &PoolId) {
    let bad_pool = PoolId::from("pool\0x");
    let now = Utc::now();

    // Pool ids, in every call that takes one (the core's check).
    refused(
        "upsert_pool",
        s.upsert_pool(&ProxyPool::new(bad_pool.clone())).await,
        "pool",
    );
    refused("get_pool", s.get_pool(&bad_pool).await, "pool");
    refused("remove_pool", s.remove_pool(&bad_pool).await, "pool");
    refused("list_proxies", s.list_proxies(&bad_pool).await, "pool");
    refused(
        "get_proxy",
        s.get_proxy(&bad_pool, &ProxyId::from("good")).await,
        "pool",
    );
    refused(
        "acquire",
        s.acquire(&AcquireRequest::new(bad_pool.clone())).await,
        "pool",
    );
    refused(
        "find_available_proxy",
        s.find_available_proxy(&bad_pool, &ProxyFilters::new(), Selector::FirstAvailable)
            .await,
        "pool",
    );
    refused("pool_stats", s.pool_stats(&bad_pool).await, "pool");
    refused("pool_snapshot", s.pool_snapshot(&bad_pool).await, "pool");
    refused(
        "cleanup_expired",
        s.cleanup_expired(&bad_pool, 10).await,
        "pool",
    );
    refused(
        "apply_health_check_result",
        s.apply_health_check_result(&HealthCheckResult::new(
            bad_pool.clone(),
            "good",
            ProxyStatus::Active,
            now,
        ))
        .await,
        "pool",
    );
    refused(
        "upsert_proxy into a bad pool id",
        s.upsert_proxy(&Proxy::new(
            bad_pool.clone(),
            "10.5.0.2",
            5001,
            ProxyProtocol::Http,
        ))
        .await,
        "pool",
    );
    // Releasing or renewing under a pool id that cannot exist: nothing held.
    let ghost = LeaseRef::new(bad_pool.clone(), pharox_core::LeaseId::in_pool(0));
    assert!(s.release_by_ref(&ghost).await.unwrap().is_none());
    assert!(matches!(
        s.renew_by_ref(&ghost, TimeDelta::seconds(1)).await,
        Err(Error::LeaseLost { .. })
    ));

    // Pool fields.
    let mut named = ProxyPool::new(pool.clone());
    named.name = "name\0".into();
    refused("pool.name", s.upsert_pool(&named).await, "pool.name");
    let mut described = ProxyPool::new(pool.clone());
    described.description = Some("\0".into());
    refused(
        "pool.description",
        s.upsert_pool(&described).await,
        "pool.description",
    );

    // Proxy ids, in every call that takes one.
    let bad_id = ProxyId::from("id\0x");
    refused(
        "upsert_proxy",
        s.upsert_proxy(&good_proxy(pool).with_id(bad_id.clone()))
            .await,
        "proxy.id",
    );
    refused("get_proxy", s.get_proxy(pool, &bad_id).await, "proxy.id");
    refused(
        "remove_proxy",
        s.remove_proxy(pool, &bad_id).await,
        "proxy.id",
    );
    refused(
        "apply_health_check_result",
        s.apply_health_check_result(&HealthCheckResult::new(
            pool.clone(),
            bad_id.clone(),
            ProxyStatus::Inactive,
            now,
        ))
        .await,
        "proxy.id",
    );

    // Proxy fields and labels.
    let g = || good_proxy(pool).with_id("other");
    let mut host = g();
    host.host = "10.5.0.9\0".into();
    for (field, p) in [
        ("proxy.host", host),
        ("proxy.source", g().with_source("dc\0")),
        ("proxy.country", g().with_country("U\0S")),
        ("proxy.city", g().with_city("\0")),
        ("proxy.isp", g().with_isp("isp\0")),
        (
            "proxy.credentials.username",
            g().with_credentials("user\0", "pw"),
        ),
        (
            "proxy.credentials.password",
            g().with_credentials("user", SECRET),
        ),
        ("proxy.extra", g().with_extra("label\0", "v")),
        ("proxy.extra", g().with_extra("label", "v\0")),
    ] {
        refused(field, s.upsert_proxy(&p).await, field);
    }

    // Consumer names.
    refused(
        "ensure_consumer",
        s.ensure_consumer(&ConsumerName::from("worker\0")).await,
        "consumer",
    );
    refused(
        "acquire as a bad consumer",
        s.acquire(&AcquireRequest::new(pool.clone()).consumer("worker\0"))
            .await,
        "consumer",
    );

    // Filter values, wherever they sit in the tree, in both calls that filter.
    for (field, leaf) in [
        ("filters.country", ProxyFilters::new().country("U\0S")),
        ("filters.source", ProxyFilters::new().source("dc\0")),
        ("filters.city", ProxyFilters::new().city("\0")),
        ("filters.isp", ProxyFilters::new().isp("isp\0")),
    ] {
        for (place, f) in placements(leaf) {
            for selector in Selector::ALL {
                let req = AcquireRequest::new(pool.clone())
                    .filters(f.clone())
                    .selector(selector);
                refused(
                    &format!("acquire, {field} at {place}, {selector:?}"),
                    s.acquire(&req).await,
                    field,
                );
                refused(
                    &format!("find_available_proxy, {field} at {place}, {selector:?}"),
                    s.find_available_proxy(pool, &f, selector).await,
                    field,
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_with_a_nul_byte_is_refused_as_invalid_input_naming_the_field() {
    let h = PostgresHarness::start().await;
    let s = h.storage();
    let pool = PoolId::from("nul");
    s.upsert_pool(&ProxyPool::new(pool.clone())).await.unwrap();
    s.upsert_proxy(&good_proxy(&pool)).await.unwrap();
    let before = s.pool_snapshot(&pool).await.unwrap();
    let trips = s.round_trips();

    every_refusal(s, &pool).await;

    // Refused before anything was sent (the lease look-ups under an invalid
    // pool id need no answer either).
    assert_eq!(s.round_trips(), trips, "a refused call reached the server");
    // Nothing changed: the pool, its proxy and its counters are as they were.
    let after = s.pool_snapshot(&pool).await.unwrap();
    assert_eq!(after.pool, before.pool);
    assert_eq!(after.proxies, before.proxies);
    assert_eq!(
        (
            after.stats.total,
            after.stats.active,
            after.stats.total_leases
        ),
        (
            before.stats.total,
            before.stats.active,
            before.stats.total_leases
        )
    );
    assert_eq!(
        s.list_pools().await.unwrap(),
        vec![ProxyPool::new(pool.clone())]
    );
    assert!(s.list_consumers().await.unwrap().is_empty());
    // And the same text without the NUL works: the refusals were about it.
    let f = ProxyFilters::new().city("Köln").any_of([
        ProxyFilters::new().isp("isp"),
        ProxyFilters::new().source("x"),
    ]);
    let lease = s
        .acquire(&AcquireRequest::new(pool.clone()).filters(f))
        .await
        .unwrap()
        .expect("the good proxy matches");
    assert_eq!(lease.proxy.id.as_str(), "good");
}
