//! Ids the API computes rather than stores.

use pharox_core::{PoolId, ProxyId};
use uuid::Uuid;

/// The UUID a proxy is named by in lease answers (`proxy_id`, which the SDK
/// parses as a UUID): its id when that is a canonical UUID (every proxy
/// created through the API), otherwise the UUIDv5 of its id in the pool's
/// UUID namespace.
pub fn proxy_uuid(pool: &PoolId, proxy: &ProxyId) -> Uuid {
    match Uuid::try_parse(proxy.as_str()) {
        Ok(u) if u.hyphenated().to_string() == proxy.as_str() => u,
        _ => Uuid::new_v5(&pool.uuid(), proxy.as_str().as_bytes()),
    }
}
