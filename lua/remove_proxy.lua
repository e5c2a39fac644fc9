-- remove_proxy.lua: remove a proxy. It is never leased again; its live
-- leases end at once (counted as released) and later releases answer
-- "not held". Finding its leases reads the pool's live leases in windows
-- of LIMIT_CHUNK: O(live leases of the pool).
--
-- KEYS: 1 counters, 2 leases_by_deadline, 3 free_by_seq, 4 free_by_load,
--       5 free_by_latency, 6 latency_by_seq, 7 seq_by_id, 8 proxy_by_seq,
--       9 located, 10 value_index_keys, 11 polar_by_seq, 12 all_by_seq,
--       13 lease_by_token, then the proxy's by_value keys (at most 5)
-- ARGV: 1 proxy id, 2 the stored JSON the client read
-- Returns: 1 removed, 0 no such proxy, -1 no such pool, -2 the stored
--          proxy changed (re-read and retry). Error reply for bad ARGV.

local id, expected = ARGV[1], ARGV[2]
if id == nil or id == '' then return fail('bad argument: proxy id') end
if expected == nil then return fail('bad argument: expected JSON') end
if #KEYS < 13 or #KEYS > 18 then return fail('bad argument: index key count') end
local K = { counters = KEYS[1], leases_by_deadline = KEYS[2], free_by_seq = KEYS[3],
  free_by_load = KEYS[4], free_by_latency = KEYS[5], latency_by_seq = KEYS[6],
  seq_by_id = KEYS[7], proxy_by_seq = KEYS[8], located = KEYS[9],
  value_index_keys = KEYS[10], polar_by_seq = KEYS[11], all_by_seq = KEYS[12],
  lease_by_token = KEYS[13] }
if not pool_exists(K) then return -1 end
local seq = redis.call('HGET', K.seq_by_id, id)
if not seq then return 0 end
if redis.call('HGET', K.proxy_by_seq, seq) ~= expected then return -2 end

local prefix = seq .. ':'
local mine = {}
local total = redis.call('ZCARD', K.leases_by_deadline)
for start = 0, total - 1, LIMIT_CHUNK do
  for _, m in ipairs(redis.call('ZRANGE', K.leases_by_deadline, start, start + LIMIT_CHUNK - 1)) do
    if string.sub(m, 1, #prefix) == prefix then mine[#mine + 1] = m end
  end
end
chunked('ZREM', K.leases_by_deadline, mine, 1)
forget_tokens(K, mine)

local _, load, _, active = word_decode(counter(K, word_slot(seq)))
local bf = { 'SET', 'i64', word_slot(seq), '0', 'INCRBY', 'i64', SLOT_GENERATION, '1' }
if load > 0 then
  bf[#bf + 1] = 'INCRBY'; bf[#bf + 1] = 'i64'; bf[#bf + 1] = SLOT_LEASED; bf[#bf + 1] = '-1'
end
if active then
  bf[#bf + 1] = 'INCRBY'; bf[#bf + 1] = 'i64'; bf[#bf + 1] = SLOT_ACTIVE; bf[#bf + 1] = '-1'
end
redis.call('BITFIELD', K.counters, unpack(bf))
for _, key in ipairs({ K.free_by_seq, K.free_by_load, K.free_by_latency, K.located, K.polar_by_seq, K.all_by_seq }) do
  redis.call('ZREM', key, seq)
end
redis.call('HDEL', K.latency_by_seq, seq)
redis.call('HDEL', K.proxy_by_seq, seq)
redis.call('HDEL', K.seq_by_id, id)
for i = 14, #KEYS do
  redis.call('ZREM', KEYS[i], seq)
  if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('SREM', K.value_index_keys, KEYS[i]) end
end
return 1
