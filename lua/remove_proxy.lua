-- remove_proxy.lua: remove a proxy. It is never leased again; its live
-- leases end at once (counted as released) and later releases answer
-- "not held". Finding its leases scans the pool's live leases: O(leases).
--
-- KEYS: 1 hot, 2 exp, 3 free, 4 load, 5 lat, 6 lsc, 7 ids, 8 px, 9 geo,
--       10 ixkeys, 11 polar, then the proxy's ix keys
-- ARGV: 1 proxy id, 2 the stored JSON the client read
-- Returns: 1 removed, 0 no such proxy, -1 no such pool, -2 the stored
--          proxy changed (re-read and retry). Error reply for bad ARGV.

local id, expected = ARGV[1], ARGV[2]
if id == nil or id == '' then return fail('bad argument: proxy id') end
if expected == nil then return fail('bad argument: expected JSON') end
local K = { hot = KEYS[1], exp = KEYS[2], free = KEYS[3], load = KEYS[4], lat = KEYS[5],
  lsc = KEYS[6], ids = KEYS[7], px = KEYS[8], geo = KEYS[9], ixkeys = KEYS[10], polar = KEYS[11] }
if not pool_exists(K) then return -1 end
local seq = redis.call('HGET', K.ids, id)
if not seq then return 0 end
if redis.call('HGET', K.px, seq) ~= expected then return -2 end

local prefix = seq .. ':'
local mine = {}
for _, m in ipairs(redis.call('ZRANGE', K.exp, 0, -1)) do
  if string.sub(m, 1, #prefix) == prefix then mine[#mine + 1] = m end
end
if #mine > 0 then redis.call('ZREM', K.exp, unpack(mine)) end

local w = redis.call('BITFIELD', K.hot, 'GET', 'i64', '#' .. seq)[1]
local _, load, _, active = decode(w)
local bf = { 'SET', 'i64', '#' .. seq, '0', 'INCRBY', 'i64', '#8', '1' }
if load > 0 then
  bf[#bf + 1] = 'INCRBY'; bf[#bf + 1] = 'i64'; bf[#bf + 1] = '#5'; bf[#bf + 1] = '-1'
end
if active then
  bf[#bf + 1] = 'INCRBY'; bf[#bf + 1] = 'i64'; bf[#bf + 1] = '#4'; bf[#bf + 1] = '-1'
end
redis.call('BITFIELD', K.hot, unpack(bf))
for _, key in ipairs({ K.free, K.load, K.lat, K.geo, K.polar }) do
  redis.call('ZREM', key, seq)
end
redis.call('HDEL', K.lsc, seq)
redis.call('HDEL', K.px, seq)
redis.call('HDEL', K.ids, id)
for i = 12, #KEYS do
  redis.call('ZREM', KEYS[i], seq)
  if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('SREM', K.ixkeys, KEYS[i]) end
end
return 1
