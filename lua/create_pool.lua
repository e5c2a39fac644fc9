-- create_pool.lua: create a pool's counters if it does not exist. A pool
-- created again after removal continues its fencing tokens (I5).
--
-- KEYS: 1 hot, 2 retired (last token of removed incarnations)
-- ARGV: none
-- Returns: 1 created, 0 already there.

if redis.call('BITFIELD', KEYS[1], 'GET', 'i64', '#7')[1] == 1 then return 0 end
local base = redis.call('GET', KEYS[2]) or '0'
if not string.match(base, '^%d+$') then return redis.error_reply('PHAROX corrupt retired token') end
redis.call('BITFIELD', KEYS[1], 'SET', 'i64', '#0', base, 'SET', 'i64', '#3', base,
  'SET', 'i64', '#6', '15', 'SET', 'i64', '#7', '1', 'SET', 'i64', '#9', '0', 'SET', 'i64', '#15', '0')
return 1
