-- renew.lua: move a live lease's deadline to now + duration (Redis clock).
--
-- KEYS: 1 hot, 2 exp, 3 free, 4 load, 5 lat, 6 lsc
-- ARGV: 1 lease member (see lib.lua), 2 duration in ms (1 .. 86400000)
-- Returns: {now_ms, deadline_ms} when renewed; {0} when the lease is not
--          held. A lease found past its deadline is reclaimed (counted as
--          expired) and answers {0}. Error reply for bad ARGV.

local member = ARGV[1]
local seq = member and string.match(member, '^(%d+):%d+:%d+:%d+:.')
if seq == nil then return fail('bad argument: lease') end
local dur = arg_int(2, 1, 86400000)
if dur == nil then return fail('bad argument: duration') end
local K = { hot = KEYS[1], exp = KEYS[2], free = KEYS[3], load = KEYS[4],
  lat = KEYS[5], lsc = KEYS[6] }

local deadline = redis.call('ZSCORE', K.exp, member)
if not deadline then return { 0 } end
local now = now_ms()
if tonumber(deadline) <= now then
  end_leases(K, { member }, true)
  return { 0 }
end
redis.call('ZADD', K.exp, 'XX', now + dur, member)
local hint = redis.call('BITFIELD', K.hot, 'GET', 'i64', '#9')[1]
if now + dur < hint then
  redis.call('BITFIELD', K.hot, 'SET', 'i64', '#9', now + dur)
end
return { now, now + dur }
