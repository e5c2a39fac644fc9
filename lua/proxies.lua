-- proxies.lua: every proxy of a pool in the order they were added, with
-- live lease counts. O(pool size).
--
-- KEYS: 1 hot, 2 ids, 3 px
-- ARGV: none
-- Returns: {-1} no such pool, else {seq, live leases, proxy JSON, ...}.

if redis.call('BITFIELD', KEYS[1], 'GET', 'i64', '#7')[1] ~= 1 then return { -1 } end
local seqs = redis.call('HVALS', KEYS[2])
table.sort(seqs, function(a, b) return tonumber(a) < tonumber(b) end)
local out = {}
for _, seq in ipairs(seqs) do
  local w = redis.call('BITFIELD', KEYS[1], 'GET', 'i64', '#' .. seq)[1]
  local _, load = decode(w)
  out[#out + 1] = tonumber(seq)
  out[#out + 1] = load
  out[#out + 1] = redis.call('HGET', KEYS[3], seq)
end
return out
