-- list_proxies.lua: one page of a pool's proxies in the order they were
-- added, with live lease counts. Pages are consistent each, not with one
-- another (a proxy added or removed between pages may be missed or seen).
--
-- KEYS: 1 counters, 2 all_by_seq, 3 proxy_by_seq
-- ARGV: 1 the last sequence of the previous page ('0' for the first page)
--       2 page size (1 .. LIMIT_CHUNK)
-- Returns: {-1} no such pool, else {last, seq, live leases, proxy JSON, ...}
--          where last is the page's last sequence, or 0 when no proxy
--          follows this page. Error reply for bad ARGV.

local after = arg_int(1, 0, LIMIT_MAX_SEQ)
if after == nil then return fail('bad argument: after') end
local size = arg_int(2, 1, LIMIT_CHUNK)
if size == nil then return fail('bad argument: page size') end
local K = { counters = KEYS[1] }
if not pool_exists(K) then return { -1 } end
-- One more than the page, to tell whether another page follows.
local seqs = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf', 'LIMIT', 0, size + 1)
local more = #seqs > size
if more then seqs[#seqs] = nil end
local out = { more and tonumber(seqs[#seqs]) or 0 }
if #seqs == 0 then return out end
local words = read_words(K, seqs)
local recs = redis.call('HMGET', KEYS[3], unpack(seqs))
for i, seq in ipairs(seqs) do
  out[#out + 1] = tonumber(seq)
  local _, load = word_decode(words[i])
  out[#out + 1] = load
  out[#out + 1] = recs[i]
end
return out
