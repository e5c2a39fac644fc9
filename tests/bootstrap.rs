//! The seeding helpers, mirroring pharox for Python's bootstrap functions.

use pharox::bootstrap::{bootstrap_consumer, bootstrap_pool, bootstrap_proxies, bootstrap_proxy};
use pharox::{AcquireRequest, InMemoryStorage, Proxy, ProxyManager, ProxyProtocol, Storage};

#[tokio::test]
async fn bootstrapped_pools_lease_like_the_python_example() {
    let storage = InMemoryStorage::new();
    let consumer = bootstrap_consumer(&storage, "default").await.unwrap();
    assert_eq!(
        bootstrap_consumer(&storage, "default").await.unwrap(),
        consumer
    );

    let pool = bootstrap_pool(&storage, "latam-residential").await.unwrap();
    assert_eq!(
        bootstrap_pool(&storage, "latam-residential").await.unwrap(),
        pool
    );
    let proxy = bootstrap_proxy(&storage, &pool, "186.33.123.10", 8080, ProxyProtocol::Http)
        .await
        .unwrap();
    let more = bootstrap_proxies(
        &storage,
        (1..=3).map(|i| {
            Proxy::new(
                pool.id.clone(),
                format!("10.0.0.{i}"),
                3128,
                ProxyProtocol::Http,
            )
        }),
    )
    .await
    .unwrap();
    assert_eq!(more.len(), 3);
    assert_eq!(storage.list_proxies(&pool.id).await.unwrap().len(), 4);

    let manager = ProxyManager::new(storage);
    let lease = manager
        .acquire(&AcquireRequest::new("latam-residential"))
        .await
        .unwrap()
        .expect("a proxy");
    assert_eq!(lease.proxy.id, proxy.id);
}
