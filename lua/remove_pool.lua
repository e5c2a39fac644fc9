-- remove_pool.lua: delete a pool's proxies, leases, indexes and counters,
-- keeping only its last fencing token so a re-created pool continues it.
-- Keys are UNLINKed (freed in the background), in chunks.
--
-- KEYS: 1 counters, 2 retired_token, 3 value_index_keys, then every other
--       key of the pool (leases_by_deadline, free_by_seq, free_by_load,
--       free_by_latency, latency_by_seq, seq_by_id, proxy_by_seq, located,
--       polar_by_seq, all_by_seq, stats_history, lease_by_token), then every
--       key listed in
--       value_index_keys
-- ARGV: 1 number of by_value keys passed
-- Returns: 1 removed, 0 no such pool, -2 the by_value keys changed
--          (re-read and retry). Error reply for bad ARGV.

local n = arg_int(1, 0, 5 * LIMIT_MAX_PROXIES) -- at most 5 by_value keys a proxy
if n == nil or #KEYS ~= 15 + n then
  return fail('bad argument: key count')
end
if redis.call('BITFIELD_RO', KEYS[1], 'GET', 'i64', SLOT_EXISTS)[1] ~= 1 then return 0 end
if redis.call('SCARD', KEYS[3]) ~= n then return -2 end
local seen = {}
for i = 16, #KEYS do
  if seen[KEYS[i]] then return fail('bad argument: a by_value key passed twice') end
  seen[KEYS[i]] = true
  if redis.call('SISMEMBER', KEYS[3], KEYS[i]) == 0 then return -2 end
end
local t = redis.call('BITFIELD_RO', KEYS[1], 'GET', 'i64', SLOT_TOKEN, 'GET', 'i64', SLOT_TOKEN_SKIP)
redis.call('SET', KEYS[2], int(t[1] + t[2]))
local doomed = { KEYS[1], KEYS[3] }
for i = 4, #KEYS do doomed[#doomed + 1] = KEYS[i] end
for i = 1, #doomed, LIMIT_CHUNK do
  redis.call('UNLINK', unpack(doomed, i, math.min(i + LIMIT_CHUNK - 1, #doomed)))
end
return 1
