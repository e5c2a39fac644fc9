-- create_pool.lua: create a pool's counters if it does not exist. A pool
-- created again after removal continues its fencing tokens (I5).
--
-- KEYS: 1 counters, 2 retired_token
-- ARGV: 1 first proxy-data generation: a random canonical decimal below
--         2^40 chosen by the client, so clients caching proxy data by
--         generation never mistake a re-created (or restarted, emptied)
--         pool for the old one
-- Returns: 1 created, 0 already there. Error reply for bad ARGV or a
--          corrupt retired token.

local gen = arg_int(1, 0, LIMIT_GENERATION_END - 1)
if gen == nil then return fail('bad argument: generation') end
if redis.call('BITFIELD_RO', KEYS[1], 'GET', 'i64', SLOT_EXISTS)[1] == 1 then return 0 end
local base = redis.call('GET', KEYS[2]) or '0'
if not (base == '0' or string.match(base, '^[1-9]%d*$')) or #base > 16 then
  return fail('corrupt retired token')
end
redis.call('BITFIELD', KEYS[1], 'SET', 'i64', SLOT_TOKEN, base, 'SET', 'i64', SLOT_TOKEN_BASE, base,
  'SET', 'i64', SLOT_LAST_SEQ, int(LIMIT_FIRST_SEQ - 1), 'SET', 'i64', SLOT_EXISTS, '1',
  'SET', 'i64', SLOT_GENERATION, ARGV[1], 'SET', 'i64', SLOT_EXPIRY_HINT, '0',
  'SET', 'i64', SLOT_TOKEN_SKIP, '0', 'SET', 'i64', '#15', '0')
return 1
