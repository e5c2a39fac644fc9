//! The shared storage contract suite on RedisStorage over TLS (`rediss://`,
//! the server verified against a CA file), each case on its own private
//! TLS-only redis-server with certificates generated for the case.

mod tls_pki;

use pharox_redis::testkit::{RedisHarness, RedisServer};

async fn tls_harness() -> RedisHarness {
    let pki = tls_pki::Pki::new();
    let server = RedisServer::start_tls(pki.server(false), &[]);
    // The files are read at connect: the certificates may go afterwards
    // (redis-server read its own at startup).
    RedisHarness::on_server(server, |c| c.tls_ca_file(&pki.ca)).await
}

pharox_core::storage_contract_tests!(tls_harness().await);
