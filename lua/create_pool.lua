-- create_pool.lua: create a pool's counters if it does not exist. A pool
-- created again after removal continues its fencing tokens (I5).
--
-- KEYS: 1 hot, 2 retired (last token of removed incarnations)
-- ARGV: 1 first proxy-data generation: a random decimal below 2^40 chosen
--         by the client, so clients caching proxy data by generation never
--         mistake a re-created (or restarted, emptied) pool for the old one
-- Returns: 1 created, 0 already there.

local gen = ARGV[1]
if gen == nil or not string.match(gen, '^%d+$') or tonumber(gen) >= 1099511627776 then
  return fail('bad argument: generation')
end
if redis.call('BITFIELD', KEYS[1], 'GET', 'i64', '#7')[1] == 1 then return 0 end
local base = redis.call('GET', KEYS[2]) or '0'
if not string.match(base, '^%d+$') then return redis.error_reply('PHAROX corrupt retired token') end
redis.call('BITFIELD', KEYS[1], 'SET', 'i64', '#0', base, 'SET', 'i64', '#3', base,
  'SET', 'i64', '#6', '15', 'SET', 'i64', '#7', '1', 'SET', 'i64', '#8', gen, 'SET', 'i64', '#9', '0', 'SET', 'i64', '#15', '0')
return 1
