-- admin.lua: helpers of the scripts that change proxies (prepended after
-- lib.lua to upsert_proxy and health).

-- Puts `seq` (word `w`) into exactly the indexes its state calls for,
-- with flags to match, and writes its word.
local function reindex(K, seq, w)
  local room, load, _, active = word_decode(w)
  redis.call('ZREM', K.free_by_seq, seq)
  redis.call('ZREM', K.free_by_load, seq)
  redis.call('ZREM', K.free_by_latency, seq)
  local word = room + load * WORD_LOAD_UNIT
  if active then
    word = word + WORD_ACTIVE
    if room > 0 then
      redis.call('ZADD', K.free_by_seq, seq, seq)
      redis.call('ZADD', K.free_by_load, score_load(load, seq), seq)
      word = word + load * WORD_INDEXED_UNIT + WORD_IN_LOAD + enter_latency(K, seq)
    end
  end
  redis.call('BITFIELD', K.counters, 'SET', 'i64', word_slot(seq), int(word))
end

-- Stores a proxy's JSON, capacity, status and latency score at `seq`
-- (current word `w`, 0 for a new proxy) and rebuilds its index
-- membership. Returns its load.
local function write_proxy(K, seq, w, cap, active, json, latkey)
  local _, load, _, was_active = word_decode(w)
  redis.call('HSET', K.proxy_by_seq, seq, json)
  redis.call('HSET', K.latency_by_seq, seq, score_latency(latkey, seq))
  reindex(K, seq, (cap - load) + load * WORD_LOAD_UNIT + (active and WORD_ACTIVE or 0))
  if active ~= was_active then
    redis.call('BITFIELD', K.counters, 'INCRBY', 'i64', SLOT_GENERATION, '1',
      'INCRBY', 'i64', SLOT_ACTIVE, active and '1' or '-1')
  else
    redis.call('BITFIELD', K.counters, 'INCRBY', 'i64', SLOT_GENERATION, '1')
  end
  return load
end

-- Checks the ARGV that upsert_proxy and health share: 1 proxy id, 3 proxy
-- JSON, 4 active flag, 5 capacity, 6 latency key. Returns the name of the
-- first bad one, or nil, capacity, latency key.
local function proxy_args()
  if ARGV[1] == nil or ARGV[1] == '' then return 'proxy id' end
  if ARGV[3] == nil or string.sub(ARGV[3], 1, 1) ~= '{' then return 'proxy JSON' end
  if not (ARGV[4] == '1' or ARGV[4] == '0') then return 'active' end
  local cap = arg_int(5, 1, LIMIT_MAX_CAPACITY)
  if cap == nil then return 'capacity' end
  local latkey = arg_int(6, 0, LIMIT_MAX_LATENCY_KEY)
  if latkey == nil then return 'latency key' end
  return nil, cap, latkey
end
