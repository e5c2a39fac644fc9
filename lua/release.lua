-- release.lua: give a lease back. Idempotent: only the call that removes
-- the lease from exp frees its capacity (I4).
--
-- KEYS: 1 hot, 2 exp, 3 free, 4 load, 5 lat, 6 lsc
-- ARGV: 1 lease member "seq:token:nonce:acquired_ms:consumer" (see lib.lua)
-- Returns: 1 released, 2 released after its deadline (counted as expired),
--          0 not held (released before, reclaimed, proxy or pool removed);
--          an error reply "PHAROX bad argument ..." for bad ARGV.

local member = ARGV[1]
local seq = member and string.match(member, '^(%d+):%d+:%d+:%d+:.')
if seq == nil then return fail('bad argument: lease') end
local K = { hot = KEYS[1], exp = KEYS[2], free = KEYS[3], load = KEYS[4],
  lat = KEYS[5], lsc = KEYS[6] }

local deadline = redis.call('ZSCORE', K.exp, member)
if not deadline then return 0 end
redis.call('ZREM', K.exp, member)
local expired = tonumber(deadline) <= now_ms()
local w
if expired then
  w = redis.call('BITFIELD', K.hot, 'INCRBY', 'i64', '#' .. seq, REL, 'INCRBY', 'i64', '#1', '1')[1]
else
  w = redis.call('BITFIELD', K.hot, 'INCRBY', 'i64', '#' .. seq, REL)[1]
end
local bf = {}
after_free(K, seq, w, bf, 1)
flush_bf(K, bf)
if expired then return 2 end
return 1
