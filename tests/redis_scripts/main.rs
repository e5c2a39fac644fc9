//! The Lua scripts of pharox-redis called directly on a real Redis, with
//! the KEYS of `pharox_redis::queries` (the store's own call specs): every
//! script rejects bad ARGV with a `PHAROX bad argument` error reply and
//! writes nothing (the keyspace's digests are equal before and after),
//! answers the documented "no such pool" value, and returns the documented
//! shapes on the happy path, leaving the pool's indexes sound
//! (`testkit::index_problems`); the limits (filters, positions, pool size,
//! sequences, chunked calls) hold; every script call the store makes (seen
//! through `MONITOR`) names keys of one cluster slot only; and hostile pool
//! ids neither collide nor leak into each other.
//!
//! One file per area: `arguments` (refusals and missing pools), `filters`
//! (filter JSON limits and types), `shapes` (replies), `acquire` (plans,
//! positions, continued searches), `limits` (pool size, sequences, more
//! than a chunk), `slots` (cluster slots and hostile ids), `reclaim`
//! (batches of expired leases); `support` holds the helpers.

mod acquire;
mod arguments;
mod filters;
mod limits;
mod reclaim;
mod shapes;
mod slots;
mod support;
