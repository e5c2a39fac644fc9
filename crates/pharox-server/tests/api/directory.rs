//! Unknown UUIDs cost the store at most one `list_pools` per refresh
//! interval, however many arrive; a pool made elsewhere is still found.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::store::Hooked;
use common::{TestServer, assert_error};
use pharox_core::{InMemoryStorage, PoolId, ProxyPool};
use pharox_server::{ApiKeys, ServerConfig};
use reqwest::{Method, StatusCode};

const INTERVAL: Duration = Duration::from_millis(100);

async fn server() -> (TestServer, Hooked<InMemoryStorage>) {
    let store = Hooked::new(InMemoryStorage::new());
    let config = ServerConfig {
        pool_refresh_interval: INTERVAL,
        ..ServerConfig::new(ApiKeys::none())
    };
    (TestServer::with(store.clone(), config, None).await, store)
}

#[tokio::test]
async fn random_uuids_do_not_hammer_the_store() {
    let (s, store) = server().await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for round in 0..4 {
        for _ in 0..25 {
            let path = match round % 2 {
                0 => format!("/v1/pools/{}", uuid::Uuid::new_v4()),
                _ => format!("/v1/leases/{}", uuid::Uuid::new_v4()),
            };
            let req = s.req(Method::GET, &path);
            tasks.push(tokio::spawn(async move {
                common::read(req.send().await.unwrap()).await
            }));
        }
    }
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert!(status == StatusCode::NOT_FOUND, "{status} {body}");
    }
    let elapsed = started.elapsed();
    let calls = store.hooks.list_pools_calls.load(Ordering::SeqCst);
    // Listings start at least INTERVAL apart: one at once, then one per interval.
    let bound = 1 + (elapsed.as_millis() / INTERVAL.as_millis()) as u32;
    assert!(calls >= 1, "a miss refreshes");
    assert!(
        calls <= bound,
        "{calls} listings in {elapsed:?} (at most {bound})"
    );
    assert!(calls < 100, "{calls} listings for 100 misses");
}

#[tokio::test]
async fn a_pool_created_elsewhere_right_after_a_refresh_is_found() {
    let (s, store) = server().await;
    let (status, body) = s
        .call(
            Method::GET,
            &format!("/v1/pools/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "pool_not_found");
    let before = store.hooks.list_pools_calls.load(Ordering::SeqCst);
    // Another server (or Rust code) creates it in the shared store.
    store
        .inner
        .add_pool(ProxyPool::new("made-elsewhere"))
        .unwrap();
    let uuid = PoolId::from("made-elsewhere").uuid();
    let (status, body) = s
        .call(Method::GET, &format!("/v1/pools/{uuid}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["key"], "made-elsewhere");
    assert_eq!(
        store.hooks.list_pools_calls.load(Ordering::SeqCst),
        before + 1
    );
    // Known now: no more listings.
    for _ in 0..5 {
        s.call(Method::GET, &format!("/v1/pools/{uuid}"), None)
            .await;
    }
    assert_eq!(
        store.hooks.list_pools_calls.load(Ordering::SeqCst),
        before + 1
    );
}
