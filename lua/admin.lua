-- admin.lua: helpers of the scripts that change proxies (prepended after
-- lib.lua to upsert_proxy and health).

-- Stores a proxy's JSON, capacity, status and latency score at `seq`
-- (current word `old`, 0 for a new proxy) and moves it into exactly the
-- indexes its new state calls for. Returns its load.
local function write_proxy(K, seq, old, cap, active, json, latkey)
  local load = WORD.load(old)
  local new = WORD.pack(cap - load, load, active)
  local latency = int(SCORE.latency(latkey, tonumber(seq)))
  redis.call('HSET', K.proxy_by_seq, seq, json)
  redis.call('HSET', K.latency_by_seq, seq, latency)
  redis.call('BITFIELD', K.counters, 'SET', 'i64', WORD.slot(seq), int(new),
    'INCRBY', 'i64', SLOT.GENERATION, '1')
  local E = new_edits()
  note_change(E, seq, old, new)
  apply_edits(K, E)
  if WORD.free(old) and WORD.free(new) then
    -- Still free: its latency may have changed.
    redis.call('ZADD', K.free_by_latency, latency, seq)
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
  local cap = arg_int(5, 1, LIMIT.MAX_CAPACITY)
  if cap == nil then return 'capacity' end
  local latkey = arg_int(6, 0, LIMIT.MAX_LATENCY_KEY)
  if latkey == nil then return 'latency key' end
  return nil, cap, latkey
end
