-- health.lua: record a health check (status, checked_at, latency) on a
-- proxy. A proxy that is not active leaves the free indexes at once. The
-- client decides staleness on the JSON it read; the script applies the
-- result only if that JSON is still the stored one.
--
-- KEYS: 1 hot, 2 exp, 3 free, 4 load, 5 lat, 6 lsc, 7 ids, 8 px
-- ARGV: 1 proxy id, 2 the stored JSON the client read, 3 new proxy JSON,
--       4 '1' if the new status is active, else '0',
--       5 capacity (1 .. 65535), 6 latency key (0 .. 1048575)
-- Returns: {seq, live leases} when applied; {0} unknown proxy; {-1} no such
--          pool; {-2} the stored proxy changed (re-read and retry).
--          Error reply for bad ARGV.

local id, expected, json = ARGV[1], ARGV[2], ARGV[3]
local bad, cap, latkey = proxy_args()
if bad then return fail('bad argument: ' .. bad) end
if expected == nil or expected == '' then return fail('bad argument: expected JSON') end

local K = { hot = KEYS[1], exp = KEYS[2], free = KEYS[3], load = KEYS[4], lat = KEYS[5],
  lsc = KEYS[6], ids = KEYS[7], px = KEYS[8] }
if not pool_exists(K) then return { -1 } end
local seq = redis.call('HGET', K.ids, id)
if not seq then return { 0 } end
if redis.call('HGET', K.px, seq) ~= expected then return { -2 } end
local w = redis.call('BITFIELD', K.hot, 'GET', 'i64', '#' .. seq)[1]
local _, load = decode(w)
if cap < load then return fail('bad argument: capacity below live leases') end
return { tonumber(seq), write_proxy(K, seq, w, cap, ARGV[4] == '1', json, latkey) }
