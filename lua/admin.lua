-- admin.lua: helpers of the scripts that change proxies (prepended after
-- lib.lua to upsert_proxy and health).

-- Puts `seq` (word `w`) into exactly the indexes its state calls for and
-- returns the new word: used by the admin scripts after a change.
local function reindex(K, seq, w)
  local room, load, ixload, active = decode(w)
  redis.call('ZREM', K.free, seq)
  redis.call('ZREM', K.load, seq)
  redis.call('ZREM', K.lat, seq)
  local nw = room + load * 65536
  if active then
    nw = nw + F_ACTIVE
    if room > 0 then
      redis.call('ZADD', K.free, seq, seq)
      redis.call('ZADD', K.load, int(load * P32 + tonumber(seq)), seq)
      nw = nw + load * P32 + F_INLOAD
      local sc = redis.call('HGET', K.lsc, seq)
      if sc then
        redis.call('ZADD', K.lat, sc, seq)
        nw = nw + F_INLAT
      end
    end
  end
  redis.call('BITFIELD', K.hot, 'SET', 'i64', '#' .. seq, int(nw))
  return nw
end

-- Stores a proxy's JSON, capacity, status and latency score at `seq`
-- (current word `w`) and rebuilds its index membership. Returns its load.
local function write_proxy(K, seq, w, cap, active, json, latkey)
  local _, load, _, was_active = decode(w)
  if active ~= was_active then
    redis.call('BITFIELD', K.hot, 'INCRBY', 'i64', '#4', active and '1' or '-1')
  end
  redis.call('HSET', K.px, seq, json)
  redis.call('HSET', K.lsc, seq, int(latkey * P32 + tonumber(seq)))
  local nw = (cap - load) + load * 65536
  if active then nw = nw + F_ACTIVE end
  reindex(K, seq, nw)
  redis.call('BITFIELD', K.hot, 'INCRBY', 'i64', '#8', '1')
  return load
end


-- Checks the ARGV that upsert_proxy and health share: 1 proxy id, 3 proxy
-- JSON, 4 active flag, 5 capacity, 6 latency key. Returns the name of the
-- first bad one, or nil, capacity, latency key.
local function proxy_args()
  if ARGV[1] == nil or ARGV[1] == '' then return 'proxy id' end
  if ARGV[3] == nil or string.sub(ARGV[3], 1, 1) ~= '{' then return 'proxy JSON' end
  if not (ARGV[4] == '1' or ARGV[4] == '0') then return 'active' end
  local cap = arg_int(5, 1, 65535)
  if cap == nil then return 'capacity' end
  local latkey = arg_int(6, 0, 1048575)
  if latkey == nil then return 'latency key' end
  return nil, cap, latkey
end
