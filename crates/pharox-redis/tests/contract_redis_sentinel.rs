//! The shared storage contract suite on RedisStorage through Redis Sentinel
//! (`redis+sentinel://`), in both connection modes, and over TLS
//! (`rediss+sentinel://`: every node and sentinel on TLS only, mutual TLS,
//! replication and the sentinels' links on TLS too), and as an ACL user
//! with exactly the documented worker rule (the client rule plus `XADD`,
//! which the stats-history case needs; the data nodes' default user off,
//! the replica and the sentinels with users of their own): one
//! topology per run,
//! started by its test and stopped when it ends, each case under a key
//! prefix of its own.

mod tls_pki;

use pharox_redis::ConnectionMode;
use pharox_redis::testkit::{RedisHarness, SentinelTopology};

fn topology() -> SentinelTopology {
    tokio::task::block_in_place(|| SentinelTopology::start("pharox-contract"))
}

/// A TLS topology and the certificates it uses (removed after it stops).
struct TlsTopology {
    topology: SentinelTopology,
    _pki: tls_pki::Pki,
}

fn tls_topology() -> TlsTopology {
    let pki = tls_pki::Pki::new();
    let topology = tokio::task::block_in_place(|| {
        SentinelTopology::start_tls("pharox-contract-tls", pki.node())
    });
    assert!(topology.url().starts_with("rediss+sentinel://"));
    TlsTopology {
        topology,
        _pki: pki,
    }
}

/// Data nodes with ACL users only; clients log in as `pharox` with
/// `pharox_redis::acl::worker_rule` for the harness's prefixes.
fn acl_topology() -> SentinelTopology {
    let rule = pharox_redis::acl::worker_rule("pharox-sentinel-*");
    tokio::task::block_in_place(|| {
        SentinelTopology::start_with_users(
            "pharox-contract-acl",
            &[("pharox", &rule)],
            "sentinel-acl-s3cret",
            "pharox",
        )
    })
}

async fn multiplexed(t: &SentinelTopology) -> RedisHarness {
    RedisHarness::on_sentinel(t, |c| c).await
}

async fn pooled(t: &SentinelTopology) -> RedisHarness {
    RedisHarness::on_sentinel(t, |c| c.mode(ConnectionMode::Pooled { size: 8 })).await
}

async fn over_tls(t: &TlsTopology) -> RedisHarness {
    RedisHarness::on_sentinel(&t.topology, |c| c).await
}

pharox_core::storage_contract_tests!(sequential contract_through_sentinel_multiplexed, topology(), multiplexed);
pharox_core::storage_contract_tests!(sequential contract_through_sentinel_pooled, topology(), pooled);
pharox_core::storage_contract_tests!(sequential contract_through_sentinel_over_tls, tls_topology(), over_tls);
pharox_core::storage_contract_tests!(sequential contract_through_sentinel_as_an_acl_user, acl_topology(), pooled);
