//! The server's HTTP tests, one module per concern, in one test binary
//! (one link instead of one per file; `cargo test -p pharox-server --test
//! api auth::` runs one module).

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod consumers;
mod dashboard;
mod directory;
mod hostile;
mod import;
mod leases;
mod openapi;
mod ops;
mod pool_admin;
mod pool_leases;
mod pools;
mod proxies;
mod proxy_records;
mod redis_leases;
mod storage_scopes;
mod store_errors;
