-- remove_pool.lua: delete a pool's proxies, leases, indexes and counters,
-- keeping only its last fencing token so a re-created pool continues it.
--
-- KEYS: 1 hot, 2 retired, 3 ixkeys, then every other key of the pool (exp,
--       free, load, lat, lsc, ids, px, geo, polar, hist), then every ix key
--       listed in ixkeys
-- ARGV: 1 number of ix keys passed
-- Returns: 1 removed, 0 no such pool, -2 the ix keys changed (re-read and
--          retry). Error reply for bad ARGV.

local n = tonumber(ARGV[1])
if n == nil or n ~= math.floor(n) or n < 0 or #KEYS < 3 + n then return redis.error_reply('PHAROX bad argument: key count') end
if redis.call('BITFIELD', KEYS[1], 'GET', 'i64', '#7')[1] ~= 1 then return 0 end
if redis.call('SCARD', KEYS[3]) ~= n then return -2 end
for i = #KEYS - n + 1, #KEYS do
  if redis.call('SISMEMBER', KEYS[3], KEYS[i]) == 0 then return -2 end
end
local token = redis.call('BITFIELD', KEYS[1], 'GET', 'i64', '#0')[1]
redis.call('SET', KEYS[2], tostring(token))
local doomed = { KEYS[1], KEYS[3] }
for i = 4, #KEYS do doomed[#doomed + 1] = KEYS[i] end
redis.call('DEL', unpack(doomed))
return 1
