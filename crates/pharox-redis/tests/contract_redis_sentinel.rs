//! The shared storage contract suite on RedisStorage through Redis Sentinel
//! (`redis+sentinel://`), in both connection modes, and over TLS
//! (`rediss+sentinel://`: every node and sentinel on TLS only, mutual TLS,
//! replication and the sentinels' links on TLS too): one topology per run,
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
