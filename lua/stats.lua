-- stats.lua: a pool's counters in O(1).
--
-- KEYS: 1 counters, 2 leases_by_deadline, 3 free_by_seq, 4 seq_by_id
-- ARGV: none
-- Returns: {-1} when the pool does not exist, else
--          {now_ms, total, active, available, leased, active_leases,
--           tokens issued, expired}. Released leases are derived by the
--          client: issued - active_leases - expired.

local c = redis.call('BITFIELD_RO', KEYS[1], 'GET', 'i64', SLOT_EXISTS, 'GET', 'i64', SLOT_TOKEN,
  'GET', 'i64', SLOT_TOKEN_BASE, 'GET', 'i64', SLOT_ACTIVE, 'GET', 'i64', SLOT_LEASED,
  'GET', 'i64', SLOT_EXPIRED)
if c[1] ~= 1 then return { -1 } end
return { now_ms(), redis.call('HLEN', KEYS[4]), c[4], redis.call('ZCARD', KEYS[3]),
  c[5], redis.call('ZCARD', KEYS[2]), c[2] - c[3], c[6] }
