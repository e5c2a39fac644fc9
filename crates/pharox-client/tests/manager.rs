//! ProxyManager over RemoteStorage: scoped leases, waiting for capacity,
//! callbacks, and the retry policy deciding as it does on the store itself.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::TestServer;
use pharox_core::testkit::{FaultyStorage, PATIENCE, wait_for};
use pharox_core::{
    AcquireRequest, Error, InMemoryStorage, Proxy, ProxyManager, ProxyPool, ProxyProtocol,
    ReleaseOutcome, RetryPolicy, Storage,
};

const POOL: &str = "remote-pool";

/// A server over a faulty in-memory store with one proxy of `capacity`.
async fn setup(capacity: u32) -> (FaultyStorage<InMemoryStorage>, TestServer) {
    let memory = InMemoryStorage::new();
    memory.add_pool(ProxyPool::new(POOL)).unwrap();
    memory
        .add_proxy(
            Proxy::new(POOL, "10.0.0.1", 3128, ProxyProtocol::Http)
                .with_id("only")
                .with_credentials("user", "pw")
                .with_max_concurrency(capacity),
        )
        .unwrap();
    let store = FaultyStorage::new(memory);
    let server = TestServer::start(store.clone()).await;
    (store, server)
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

#[tokio::test]
async fn with_lease_releases_on_every_exit_and_runs_the_callbacks() {
    let (_store, server) = setup(1).await;
    let manager = ProxyManager::new(server.client());
    let acquired = Arc::new(AtomicU32::new(0));
    let released = Arc::new(AtomicU32::new(0));
    let (a, r) = (acquired.clone(), released.clone());
    manager.on_acquire(move |e| {
        assert_eq!(e.pool_stats.map(|s| s.active_leases), Some(1));
        a.fetch_add(1, Ordering::SeqCst);
    });
    manager.on_release(move |e| {
        assert_eq!(e.outcome, ReleaseOutcome::Released);
        assert_eq!(e.pool_stats.map(|s| s.active_leases), Some(0));
        r.fetch_add(1, Ordering::SeqCst);
    });
    let req = AcquireRequest::new(POOL).consumer("remote-worker");
    let url = manager
        .with_lease(&req, |lease| async move {
            assert_eq!(lease.consumer, "remote-worker");
            Ok::<_, Error>(lease.proxy.url())
        })
        .await
        .unwrap();
    assert_eq!(url.as_deref(), Some("http://user:pw@10.0.0.1:3128"));
    // An error inside the scope still gives the proxy back.
    let failed: Result<Option<()>, Error> = manager
        .with_lease(&req, |_| async { Err(Error::invalid("work", "failed")) })
        .await;
    assert!(matches!(
        failed,
        Err(Error::InvalidInput { field: "work", .. })
    ));
    assert_eq!(
        manager
            .pool_stats(&POOL.into())
            .await
            .unwrap()
            .active_leases,
        0
    );
    assert_eq!(
        (
            acquired.load(Ordering::SeqCst),
            released.load(Ordering::SeqCst)
        ),
        (2, 2)
    );
    let consumers = manager.storage().list_consumers().await.unwrap();
    assert!(consumers.iter().any(|c| c.name == "remote-worker"));
}

#[tokio::test]
async fn acquire_wait_gets_the_proxy_another_client_releases() {
    let (store, server) = setup(1).await;
    let holder = ProxyManager::new(server.client());
    let waiter = ProxyManager::new(server.client());
    let req = AcquireRequest::new(POOL);
    let held = holder.acquire(&req).await.unwrap().expect("the free proxy");
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let got = waiter.acquire_wait(&req, PATIENCE).await;
        (got, started.elapsed())
    });
    // The waiter has missed at least once: it is waiting now.
    wait_for("the waiter's first miss", || async {
        (store.faults().acquire_calls.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    assert_eq!(
        holder.release(&held).await.unwrap(),
        ReleaseOutcome::Released
    );
    let (got, waited) = task.await.unwrap();
    let lease = got.unwrap().expect("the released proxy");
    assert_eq!(lease.proxy.id, "only");
    assert!(waited < PATIENCE, "waited {waited:?}");
    assert!(lease.token > held.token);
}

#[tokio::test]
async fn acquire_wait_gives_up_at_its_deadline() {
    let (_store, server) = setup(1).await;
    let manager = ProxyManager::new(server.client());
    let req = AcquireRequest::new(POOL);
    let _held = manager.acquire(&req).await.unwrap().unwrap();
    let got = manager
        .acquire_wait(&req, Duration::from_millis(150))
        .await
        .unwrap();
    assert!(got.is_none());
}

#[tokio::test]
async fn an_acquire_the_store_did_not_apply_is_retried() {
    let (store, server) = setup(1).await;
    let manager = ProxyManager::with_retry(server.client(), fast_retries());
    store.faults().fail_next.store(2, Ordering::SeqCst);
    let lease = manager.acquire(&AcquireRequest::new(POOL)).await.unwrap();
    assert!(lease.is_some());
    assert_eq!(store.faults().acquire_calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_acquire_whose_reply_was_lost_is_not_repeated() {
    for lost in ["timeout", "interrupted"] {
        let (store, server) = setup(2).await;
        let manager = ProxyManager::with_retry(server.client(), fast_retries());
        let faults = store.faults();
        match lost {
            // Applied, and the answer lost.
            "timeout" => faults.lose_next_reply.store(1, Ordering::SeqCst),
            _ => faults.interrupt_next.store(1, Ordering::SeqCst),
        }
        let e = manager
            .acquire(&AcquireRequest::new(POOL))
            .await
            .unwrap_err();
        assert!(e.is_retryable() && !e.request_not_sent(), "{lost}: {e:?}");
        match lost {
            "timeout" => assert!(matches!(e, Error::Timeout { .. }), "{e:?}"),
            _ => assert!(matches!(e, Error::Interrupted { .. }), "{e:?}"),
        }
        assert_eq!(faults.acquire_calls.load(Ordering::SeqCst), 1, "{lost}");
    }
}

#[tokio::test]
async fn a_release_whose_reply_was_lost_is_retried_and_says_so() {
    let (store, server) = setup(1).await;
    let manager = ProxyManager::with_retry(server.client(), fast_retries());
    let lease = manager
        .acquire(&AcquireRequest::new(POOL))
        .await
        .unwrap()
        .unwrap();
    store.faults().lose_next_reply.store(1, Ordering::SeqCst);
    let outcome = manager.release(&lease).await.unwrap();
    // The lost attempt released it; the retry found nothing held.
    assert_eq!(outcome, ReleaseOutcome::ReleasedOrGone);
    let stats = manager.pool_stats(&POOL.into()).await.unwrap();
    assert_eq!((stats.active_leases, stats.released_leases), (0, 1));
}

#[tokio::test]
async fn renew_through_the_manager_extends_the_lease() {
    let (_store, server) = setup(1).await;
    let manager = ProxyManager::new(server.client());
    let lease = manager
        .acquire(&AcquireRequest::new(POOL).duration(chrono::TimeDelta::seconds(30)))
        .await
        .unwrap()
        .unwrap();
    let renewed = manager
        .renew(&lease, chrono::TimeDelta::minutes(20))
        .await
        .unwrap();
    assert_eq!((renewed.id, renewed.token), (lease.id, lease.token));
    assert!(renewed.expires_at > lease.expires_at);
    manager.release(&renewed).await.unwrap();
    assert!(matches!(
        manager.renew(&lease, chrono::TimeDelta::seconds(5)).await,
        Err(Error::LeaseLost { lease: id }) if id == lease.id
    ));
}

#[tokio::test]
async fn a_manager_with_a_lease_scoped_key_leases_and_waits() {
    let store = InMemoryStorage::new();
    let keys = pharox_server::ApiKeys::from_list("admin-key,scraper-key lease:scraper-1").unwrap();
    let server = TestServer::with(store, pharox_server::ServerConfig::new(keys)).await;
    let as_key = |key: &str| {
        pharox_client::RemoteStorage::builder(&server.url)
            .api_key(key)
            .build()
            .unwrap()
    };
    let admin = as_key("admin-key");
    admin.upsert_pool(&ProxyPool::new(POOL)).await.unwrap();
    admin
        .upsert_proxy(
            &Proxy::new(POOL, "10.0.0.1", 3128, ProxyProtocol::Http).with_max_concurrency(1),
        )
        .await
        .unwrap();
    let scraper = ProxyManager::new(as_key("scraper-key"));
    let req = AcquireRequest::new(POOL).consumer("scraper-1");
    let held = scraper.acquire(&req).await.unwrap().expect("a free proxy");
    // The same manager waits for its own release from another task.
    let waiter = scraper.clone();
    let wait_req = req.clone();
    let task = tokio::spawn(async move { waiter.acquire_wait(&wait_req, PATIENCE).await });
    scraper.release(&held).await.unwrap();
    assert!(task.await.unwrap().unwrap().is_some());
    let got = scraper
        .with_lease(&req, |l| async move { Ok::<_, Error>(l.consumer) })
        .await;
    // The proxy is held by the waiter's lease: nothing free.
    assert!(matches!(got, Ok(None)), "{got:?}");
    // Another consumer's name, or an admin call, is refused.
    let other = scraper
        .acquire(&AcquireRequest::new(POOL).consumer("someone-else"))
        .await
        .unwrap_err();
    assert!(matches!(other, Error::Backend { .. }), "{other:?}");
    let e = scraper
        .storage()
        .pool_snapshot(&POOL.into())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("403"), "{e}");
}
