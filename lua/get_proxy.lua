-- get_proxy.lua: one proxy with its live lease count.
--
-- KEYS: 1 hot, 2 ids, 3 px
-- ARGV: 1 proxy id (non-empty)
-- Returns: {seq, live leases, proxy JSON}; {0} no such proxy; {-1} no such
--          pool. Error reply for bad ARGV.

if ARGV[1] == nil or ARGV[1] == '' then return fail('bad argument: proxy id') end
if redis.call('BITFIELD', KEYS[1], 'GET', 'i64', '#7')[1] ~= 1 then return { -1 } end
local seq = redis.call('HGET', KEYS[2], ARGV[1])
if not seq then return { 0 } end
local w = redis.call('BITFIELD', KEYS[1], 'GET', 'i64', '#' .. seq)[1]
local _, load = decode(w)
return { tonumber(seq), load, redis.call('HGET', KEYS[3], seq) }
