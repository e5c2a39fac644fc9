-- get_proxy.lua: one proxy with its live lease count.
--
-- KEYS: 1 counters, 2 seq_by_id, 3 proxy_by_seq
-- ARGV: 1 proxy id (non-empty)
-- Returns: {seq, live leases, proxy JSON}; {0} no such proxy; {-1} no such
--          pool. Error reply for bad ARGV.

if ARGV[1] == nil or ARGV[1] == '' then return fail('bad argument: proxy id') end
local K = { counters = KEYS[1] }
if not pool_exists(K) then return { -1 } end
local seq = redis.call('HGET', KEYS[2], ARGV[1])
if not seq then return { 0 } end
local _, load = word_decode(counter(K, word_slot(seq)))
return { tonumber(seq), load, redis.call('HGET', KEYS[3], seq) }
