-- cleanup.lua: reclaim a bounded batch of a pool's expired leases.
--
-- KEYS: 1 counters, 2 leases_by_deadline, 3 free_by_seq, 4 free_by_load,
--       5 free_by_latency, 6 latency_by_seq, 7 lease_by_token
-- ARGV: 1 batch size (1 .. LIMIT_MAX_BATCH)
-- Returns: how many leases were reclaimed (each counted as expired), or -1
--          when the pool does not exist. Error reply for bad ARGV.

local limit = arg_int(1, 1, LIMIT_MAX_BATCH)
if limit == nil then return fail('bad argument: limit') end
local K = { counters = KEYS[1], leases_by_deadline = KEYS[2], free_by_seq = KEYS[3],
  free_by_load = KEYS[4], free_by_latency = KEYS[5], latency_by_seq = KEYS[6],
  lease_by_token = KEYS[7] }
if counter(K, SLOT_EXISTS) ~= 1 then return -1 end
return reclaiming().reclaim(K, now_ms(), limit)
