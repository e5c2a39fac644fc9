-- snapshot.lua: a consistent view of a whole pool, for invariant checks
-- and admin tools, not the hot path: O(proxies + live leases), read in
-- windows of LIMIT_CHUNK.
--
-- KEYS: 1 counters, 2 leases_by_deadline, 3 free_by_seq, 4 seq_by_id,
--       5 proxy_by_seq, 6 all_by_seq
-- ARGV: none
-- Returns: {-1} when the pool does not exist, else
--          {stats (as stats.lua), {seq, load, proxy JSON, ...} in sequence
--           order, {lease member, deadline ms, ...} in deadline order}.

local c = redis.call('BITFIELD_RO', KEYS[1], 'GET', 'i64', SLOT_EXISTS, 'GET', 'i64', SLOT_TOKEN,
  'GET', 'i64', SLOT_TOKEN_BASE, 'GET', 'i64', SLOT_ACTIVE, 'GET', 'i64', SLOT_LEASED,
  'GET', 'i64', SLOT_EXPIRED)
if c[1] ~= 1 then return { -1 } end
local K = { counters = KEYS[1] }
local stats = { now_ms(), redis.call('HLEN', KEYS[4]), c[4], redis.call('ZCARD', KEYS[3]),
  c[5], redis.call('ZCARD', KEYS[2]), c[2] - c[3], c[6] }
local proxies = {}
local total = redis.call('ZCARD', KEYS[6])
for start = 0, total - 1, LIMIT_CHUNK do
  local seqs = redis.call('ZRANGE', KEYS[6], start, start + LIMIT_CHUNK - 1)
  local words = read_words(K, seqs)
  local recs = redis.call('HMGET', KEYS[5], unpack(seqs))
  for i, seq in ipairs(seqs) do
    proxies[#proxies + 1] = tonumber(seq)
    local _, load = word_decode(words[i])
    proxies[#proxies + 1] = load
    proxies[#proxies + 1] = recs[i]
  end
end
local leases = {}
local n = redis.call('ZCARD', KEYS[2])
for start = 0, n - 1, LIMIT_CHUNK do
  for _, v in ipairs(redis.call('ZRANGE', KEYS[2], start, start + LIMIT_CHUNK - 1, 'WITHSCORES')) do
    leases[#leases + 1] = v
  end
end
return { stats, proxies, leases }
