-- snapshot.lua: a consistent view of a whole pool, O(pool size). For
-- invariant checks and admin tools, not the hot path.
--
-- KEYS: 1 hot, 2 exp, 3 free, 4 ids, 5 px
-- ARGV: none
-- Returns: {-1} when the pool does not exist, else
--          {stats (as stats.lua), {seq, load, proxy JSON, ...} in sequence
--           order, {lease member, deadline ms, ...}}.

local hot = redis.call('BITFIELD', KEYS[1], 'GET', 'i64', '#7', 'GET', 'i64', '#0',
  'GET', 'i64', '#3', 'GET', 'i64', '#4', 'GET', 'i64', '#5', 'GET', 'i64', '#1')
if hot[1] ~= 1 then return { -1 } end
local stats = { now_ms(), redis.call('HLEN', KEYS[4]), hot[4], redis.call('ZCARD', KEYS[3]),
  hot[5], redis.call('ZCARD', KEYS[2]), hot[2] - hot[3], hot[6] }
local seqs = redis.call('HVALS', KEYS[4])
table.sort(seqs, function(a, b) return tonumber(a) < tonumber(b) end)
local proxies = {}
for _, seq in ipairs(seqs) do
  local w = redis.call('BITFIELD', KEYS[1], 'GET', 'i64', '#' .. seq)[1]
  proxies[#proxies + 1] = tonumber(seq)
  proxies[#proxies + 1] = math.floor(w / 65536) % 65536
  proxies[#proxies + 1] = redis.call('HGET', KEYS[5], seq)
end
return { stats, proxies, redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES') }
