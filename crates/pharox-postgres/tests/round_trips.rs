//! Exactly one round trip per acquire, release, renew and cleanup once a
//! connection has prepared its statements (the store's own count).

use chrono::TimeDelta;
use pharox_core::testkit::{Harness, add, new_pool, proxy, request};
use pharox_core::{ProxyFilters, ReleaseOutcome, Selector, Storage};
use pharox_postgres::testkit::PostgresHarness;

#[tokio::test]
async fn each_lease_operation_is_one_round_trip() {
    let h = PostgresHarness::start().await;
    let s = h.storage();
    let pool = new_pool(&h, "rt").await;
    for i in 0..16u16 {
        add(
            &h,
            proxy(&pool, &format!("p{i}"), i)
                .with_country("AR")
                .with_location(-34.6, -58.4),
        )
        .await;
    }
    let filtered = ProxyFilters::new()
        .country("ar")
        .within_km(-34.0, -58.0, 500.0);
    for warm_up in [true, false] {
        for selector in Selector::ALL {
            for filters in [ProxyFilters::new(), filtered.clone()] {
                let req = request(&pool).selector(selector).filters(filters);
                let before = s.round_trips();
                let lease = s.acquire(&req).await.unwrap().expect("a free proxy");
                let acquired = s.round_trips();
                let renewed = s.renew(&lease, TimeDelta::minutes(1)).await.unwrap();
                let after_renew = s.round_trips();
                assert_eq!(s.release(&renewed).await.unwrap(), ReleaseOutcome::Released);
                let released = s.round_trips();
                s.cleanup_expired(&pool, 100).await.unwrap();
                let cleaned = s.round_trips();
                if !warm_up {
                    assert_eq!(acquired - before, 1, "acquire {selector}");
                    assert_eq!(after_renew - acquired, 1, "renew");
                    assert_eq!(released - after_renew, 1, "release");
                    assert_eq!(cleaned - released, 1, "cleanup");
                }
            }
        }
    }
}
