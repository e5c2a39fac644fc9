-- stats.lua: a pool's counters in O(1).
--
-- KEYS: 1 hot, 2 exp, 3 free, 4 ids
-- ARGV: none
-- Returns: {-1} when the pool does not exist, else
--          {now_ms, total, active, available, leased, active_leases,
--           tokens issued, expired}. Released leases are derived by the
--          client: issued - active_leases - expired.

local hot = redis.call('BITFIELD', KEYS[1], 'GET', 'i64', '#7', 'GET', 'i64', '#0',
  'GET', 'i64', '#3', 'GET', 'i64', '#4', 'GET', 'i64', '#5', 'GET', 'i64', '#1')
if hot[1] ~= 1 then return { -1 } end
return { now_ms(), redis.call('HLEN', KEYS[4]), hot[4], redis.call('ZCARD', KEYS[3]),
  hot[5], redis.call('ZCARD', KEYS[2]), hot[2] - hot[3], hot[6] }
