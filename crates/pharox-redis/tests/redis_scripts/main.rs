//! The Lua scripts of pharox-redis called directly on a real Redis, with
//! the KEYS of `pharox_redis::queries` (the store's own call specs): every
//! script rejects bad ARGV with a `PHAROX bad argument` error reply and
//! writes nothing (the keyspace's digests are equal before and after),
//! answers the documented "no such pool" value, and returns the documented
//! shapes on the happy path, leaving the pool's indexes sound
//! (`testkit::index_problems`: `free_by_seq` exact, `free_by_load` and
//! `free_by_latency` lazily kept); the limits (filters, positions, pool
//! size, sequences, chunked calls) hold; a search longer than one call's
//! budget continues across calls, granting nothing and writing nothing
//! before its lease but corrections of the lazy indexes; every script call
//! the store makes (seen through `MONITOR`) names keys of one cluster slot
//! only; and hostile pool ids neither collide nor leak into each other.
//!
//! One file per area: `arguments` (refusals and missing pools), `filters`
//! (filter JSON limits and types), `shapes` (replies), `acquire` (plans,
//! positions, continued searches, lazy index corrections), `limits` (pool
//! size, sequences, more than a chunk), `slots` (cluster slots and hostile
//! ids), `reclaim` (ending leases: batches of expired ones, and members
//! pharox cannot have written), `tokens` (fencing tokens follow the counter
//! and the clock); `support` holds the helpers.

mod acquire;
mod arguments;
mod filters;
mod limits;
mod reclaim;
mod shapes;
mod slots;
mod support;
mod tokens;
