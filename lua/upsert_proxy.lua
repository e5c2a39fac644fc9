-- upsert_proxy.lua: add a proxy or update it in place (keeping its
-- sequence, so its position in the pool, and its live leases).
--
-- KEYS: 1 hot, 2 exp, 3 free, 4 load, 5 lat, 6 lsc, 7 ids, 8 px, 9 geo,
--       10 ixkeys, 11 polar, then ARGV[9] ix keys of the stored version,
--       then the ix keys of the new version
-- ARGV: 1 proxy id (non-empty)
--       2 the stored JSON the client read ('' when it read none)
--       3 new proxy JSON
--       4 '1' if the new status is active, else '0'
--       5 capacity (1 .. 65535)
--       6 latency key (0 .. 1048575; 1048575 = unmeasured)
--       7, 8 longitude, latitude ('' when not located)
--       9 number of old ix keys
--       10 expired leases to reclaim first (0 .. 10000)
-- Returns: {seq, live leases} when stored; {-1} no such pool;
--          {-2} the stored proxy is not the one the client read (re-read
--          and retry); {-3, live leases} the capacity is below the live
--          leases. Error reply for bad ARGV.

local id, expected, json = ARGV[1], ARGV[2], ARGV[3]
local bad, cap, latkey = proxy_args()
if bad then return fail('bad argument: ' .. bad) end
local located = ARGV[7] ~= ''
if located then
  local lon, lat = tonumber(ARGV[7]), tonumber(ARGV[8])
  if lon == nil or lat == nil or lon < -180 or lon > 180 or lat < -90 or lat > 90 then
    return fail('bad argument: location')
  end
end
local n_old = arg_int(9, 0, 5)
if n_old == nil or #KEYS < 11 + n_old then return fail('bad argument: old key count') end
local batch = arg_int(10, 0, 10000)
if batch == nil then return fail('bad argument: reclaim batch') end

local K = { hot = KEYS[1], exp = KEYS[2], free = KEYS[3], load = KEYS[4], lat = KEYS[5],
  lsc = KEYS[6], ids = KEYS[7], px = KEYS[8], geo = KEYS[9], ixkeys = KEYS[10], polar = KEYS[11] }
if not pool_exists(K) then return { -1 } end
if batch > 0 then reclaim(K, now_ms(), batch) end

local seq = redis.call('HGET', K.ids, id)
local stored = seq and redis.call('HGET', K.px, seq)
if (expected == '' and seq) or (expected ~= '' and stored ~= expected) then
  return { -2 }
end
local w = 0
if seq then
  w = redis.call('BITFIELD', K.hot, 'GET', 'i64', '#' .. seq)[1]
  local _, load = decode(w)
  if cap < load then return { -3, load } end
else
  local next_seq = redis.call('BITFIELD', K.hot, 'GET', 'i64', '#6')[1] + 1
  if next_seq >= 1073741824 then return fail('pool exhausted its 2^30 proxy sequences') end
  seq = tostring(next_seq)
  redis.call('BITFIELD', K.hot, 'SET', 'i64', '#6', seq)
  redis.call('HSET', K.ids, id, seq)
end

local load = write_proxy(K, seq, w, cap, ARGV[4] == '1', json, latkey)

for i = 12, 11 + n_old do
  redis.call('ZREM', KEYS[i], seq)
  if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('SREM', K.ixkeys, KEYS[i]) end
end
for i = 12 + n_old, #KEYS do
  redis.call('ZADD', KEYS[i], seq, seq)
  redis.call('SADD', K.ixkeys, KEYS[i])
end
redis.call('ZREM', K.geo, seq)
redis.call('ZREM', K.polar, seq)
if located then
  local lat = tonumber(ARGV[8])
  if lat > 85.05112878 or lat < -85.05112878 then
    -- Beyond what Redis GEO stores: geo searches always verify these.
    redis.call('ZADD', K.polar, seq, seq)
  else
    redis.call('GEOADD', K.geo, ARGV[7], ARGV[8], seq)
  end
end
return { tonumber(seq), load }
