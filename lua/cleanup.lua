-- cleanup.lua: reclaim a bounded batch of a pool's expired leases.
--
-- KEYS: 1 hot, 2 exp, 3 free, 4 load, 5 lat, 6 lsc
-- ARGV: 1 batch size (1 .. 10000)
-- Returns: how many leases were reclaimed (each counted as expired), or -1
--          when the pool does not exist. Error reply for bad ARGV.

local limit = arg_int(1, 1, 10000)
if limit == nil then return fail('bad argument: limit') end
local K = { hot = KEYS[1], exp = KEYS[2], free = KEYS[3], load = KEYS[4],
  lat = KEYS[5], lsc = KEYS[6] }
if not pool_exists(K) then return -1 end
local n = reclaim(K, now_ms(), limit)
rehint(K)
return n
