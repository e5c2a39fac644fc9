-- upsert_proxy.lua: add a proxy or update it in place (keeping its
-- sequence, so its position in the pool, and its live leases). Due leases
-- of the pool are reclaimed first (up to ARGV[10]).
--
-- KEYS: 1 counters, 2 leases_by_deadline, 3 free_by_seq, 4 free_by_load,
--       5 free_by_latency, 6 latency_by_seq, 7 seq_by_id, 8 proxy_by_seq,
--       9 located, 10 value_index_keys, 11 polar_by_seq, 12 all_by_seq,
--       13 lease_by_token, then ARGV[9] by_value keys of the stored version, then the
--       by_value keys of the new version (at most 5)
-- ARGV: 1 proxy id (non-empty)
--       2 the stored JSON the client read ('' when it read none)
--       3 new proxy JSON
--       4 '1' if the new status is active, else '0'
--       5 capacity (1 .. LIMIT_MAX_CAPACITY)
--       6 latency key (0 .. LIMIT_MAX_LATENCY_KEY; the largest = unmeasured)
--       7, 8 longitude, latitude ('' when not located)
--       9 number of old by_value keys (0 .. 5)
--       10 expired leases to reclaim first (0 .. LIMIT_MAX_BATCH)
-- Returns: {seq, live leases} when stored; {-1} no such pool;
--          {-2} the stored proxy is not the one the client read (re-read
--          and retry); {-3, live leases} the capacity is below the live
--          leases; {-4, limit} the pool holds LIMIT_MAX_PROXIES proxies;
--          {-5, limit} the pool has used all its sequences. Error reply
--          for bad ARGV. Nothing is written unless the proxy is stored.

local id, expected, json = ARGV[1], ARGV[2], ARGV[3]
local bad, cap, latkey = proxy_args()
if bad then return fail('bad argument: ' .. bad) end
if expected == nil then return fail('bad argument: expected JSON') end
local located = ARGV[7] ~= ''
if located then
  local lon, lat = tonumber(ARGV[7]), tonumber(ARGV[8])
  if lon == nil or lat == nil or lon ~= lon or lat ~= lat
      or lon < -180 or lon > 180 or lat < -90 or lat > 90 then
    return fail('bad argument: location')
  end
end
local n_old = arg_int(9, 0, 5)
if n_old == nil or #KEYS < 13 + n_old or #KEYS > 18 + n_old then
  return fail('bad argument: index key count')
end
local batch = arg_int(10, 0, LIMIT_MAX_BATCH)
if batch == nil then return fail('bad argument: reclaim batch') end

local K = { counters = KEYS[1], leases_by_deadline = KEYS[2], free_by_seq = KEYS[3],
  free_by_load = KEYS[4], free_by_latency = KEYS[5], latency_by_seq = KEYS[6],
  seq_by_id = KEYS[7], proxy_by_seq = KEYS[8], located = KEYS[9],
  value_index_keys = KEYS[10], polar_by_seq = KEYS[11], all_by_seq = KEYS[12],
  lease_by_token = KEYS[13] }
if not pool_exists(K) then return { -1 } end

local seq = redis.call('HGET', K.seq_by_id, id)
local stored = seq and redis.call('HGET', K.proxy_by_seq, seq)
if (expected == '' and seq) or (expected ~= '' and stored ~= expected) then
  return { -2 }
end
local R = reclaiming()
local plan = R.plan(K, batch > 0 and R.due(K, now_ms(), batch) or {})
if seq then
  local _, live = word_decode(counter(K, word_slot(seq)))
  local load = live - (plan.freed[seq] or 0)
  if cap < load then return { -3, load } end
else
  if redis.call('HLEN', K.seq_by_id) >= LIMIT_MAX_PROXIES then return { -4, LIMIT_MAX_PROXIES } end
  if counter(K, SLOT_LAST_SEQ) >= LIMIT_MAX_SEQ then return { -5, LIMIT_MAX_SEQ } end
end

-- Checked: from here on, only writes.
if #plan.members > 0 then
  R.apply_plan(K, plan, true)
  R.rehint(K)
end
local w = 0
if seq then
  w = counter(K, word_slot(seq))
else
  seq = int(redis.call('BITFIELD', K.counters, 'INCRBY', 'i64', SLOT_LAST_SEQ, '1')[1])
  redis.call('HSET', K.seq_by_id, id, seq)
  redis.call('ZADD', K.all_by_seq, seq, seq)
end

local load = write_proxy(K, seq, w, cap, ARGV[4] == '1', json, latkey)

for i = 14, 13 + n_old do
  redis.call('ZREM', KEYS[i], seq)
  if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('SREM', K.value_index_keys, KEYS[i]) end
end
for i = 14 + n_old, #KEYS do
  redis.call('ZADD', KEYS[i], seq, seq)
  redis.call('SADD', K.value_index_keys, KEYS[i])
end
redis.call('ZREM', K.located, seq)
redis.call('ZREM', K.polar_by_seq, seq)
if located then
  local lat = tonumber(ARGV[8])
  if lat > 85.05112878 or lat < -85.05112878 then
    -- Beyond what Redis GEO stores: geo searches always verify these.
    redis.call('ZADD', K.polar_by_seq, seq, seq)
  else
    -- The numbers checked, as GEOADD reads them.
    redis.call('GEOADD', K.located, string.format('%.17g', tonumber(ARGV[7])), string.format('%.17g', lat), seq)
  end
end
return { tonumber(seq), load }
