-- lib.lua: helpers shared by every pharox script. scripts.rs prepends this
-- file to each script, so each script stays one EVALSHA with no globals.
--
-- Layout of a pool (all keys carry the pool's hash tag, see keys.rs):
--   hot   string read with BITFIELD, signed 64-bit slots:
--           #0 last fencing token     #1 expired leases (lifetime)
--           #2 round-robin cursor     #3 token at pool creation
--           #4 active proxies         #5 proxies holding a lease
--           #6 last proxy sequence    #7 1 while the pool exists
--           #8 proxy-data generation  #9 no lease ends before this
--                                       (a lower bound of exp's deadlines)
--           #10..#15 reserved
--         slot #seq (seq >= 16) is one proxy's word, an integer below 2^53:
--           bits  0-15 room (free slots)     bits 16-31 load (live leases)
--           bits 32-47 load as last written to the `load` index
--           bit 48 active, bit 49 in `load`, bit 50 in `lat`
--   ids   hash proxy id -> seq            px    hash seq -> proxy JSON
--   free  zset seq (score seq): active proxies with room, exactly
--   load  zset seq (score ixload*2^32+seq): every active proxy with room,
--         maybe some full ones (removed lazily when picked)
--   lat   zset seq (score latkey*2^32+seq), same membership rule as load
--   lsc   hash seq -> lat score           exp   zset lease -> deadline ms
--   geo   geo set of located proxies      ix:<field>:<value> zset seq
--   ixkeys set of the pool's ix key names (so removal can name them)
-- A lease is the member "seq:token:nonce:acquired_ms:consumer" of exp.

local P32 = 4294967296
local P48 = 281474976710656
local F_ACTIVE = P48
local F_INLOAD = 2 * P48
local F_INLAT = 4 * P48
local ACQ = '65535'    -- load + 1, room - 1
local REL = '-65535'   -- load - 1, room + 1

-- Integers up to 2^53 as exact decimal strings (tostring would round them).
local function int(x)
  return string.format('%d', x)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- room, load, ixload, active, in_load, in_lat
local function decode(w)
  local flags = math.floor(w / P48)
  return w % 65536, math.floor(w / 65536) % 65536, math.floor(w / P32) % 65536,
    flags % 2 == 1, math.floor(flags / 2) % 2 == 1, math.floor(flags / 4) % 2 == 1
end

local function pool_exists(K)
  return redis.call('BITFIELD', K.hot, 'GET', 'i64', '#7')[1] == 1
end

local function fail(msg)
  return redis.error_reply('PHAROX ' .. msg)
end

-- ARGV[i] as an integer within [lo, hi], or nil.
local function arg_int(i, lo, hi)
  local v = tonumber(ARGV[i])
  if v == nil or v ~= math.floor(v) or v < lo or v > hi then
    return nil
  end
  return v
end

-- After `freed` leases on `seq` ended and its word became `w` (already
-- decremented by all of them), restore the indexes. Called once per proxy
-- and batch: the flags in `w` are stale until `bf` is flushed. `bf`
-- collects BITFIELD subcommands on `hot` that the caller sends in one call.
local function after_free(K, seq, w, bf, freed)
  local room, load, ixload, active, inload, inlat = decode(w)
  if load == 0 then
    bf[#bf + 1] = 'INCRBY'; bf[#bf + 1] = 'i64'; bf[#bf + 1] = '#5'; bf[#bf + 1] = '-1'
  end
  if not active then
    return
  end
  local delta = 0
  if room == freed then
    redis.call('ZADD', K.free, seq, seq)
  end
  if not inload then
    redis.call('ZADD', K.load, int(load * P32 + tonumber(seq)), seq)
    delta = delta + F_INLOAD + (load - ixload) * P32
  elseif load < ixload then
    redis.call('ZADD', K.load, int(load * P32 + tonumber(seq)), seq)
    delta = delta + (load - ixload) * P32
  end
  if not inlat then
    local sc = redis.call('HGET', K.lsc, seq)
    if sc then
      redis.call('ZADD', K.lat, sc, seq)
      delta = delta + F_INLAT
    end
  end
  if delta ~= 0 then
    bf[#bf + 1] = 'INCRBY'; bf[#bf + 1] = 'i64'; bf[#bf + 1] = '#' .. seq; bf[#bf + 1] = int(delta)
  end
end

local function flush_bf(K, bf)
  if #bf > 0 then
    redis.call('BITFIELD', K.hot, unpack(bf))
  end
end

-- Ends the leases `members` of exp (already known to exist), counting them
-- as expired when `expired`; returns how many.
--
-- One decrement and one index update per proxy, however many of its leases
-- end here. Members pharox cannot have written are dropped (and logged by
-- the server), never applied: a sequence outside the pool's proxies, a
-- proxy that does not exist, or more members for a proxy than it has live
-- leases (only that many are applied). Everything is checked before the
-- first write, so no such member makes the call fail halfway.
local function end_leases(K, members, expired)
  if #members == 0 then
    return 0
  end
  -- Sequences are grouped in canonical form; one BITFIELD reads the last
  -- sequence (#6) and every named proxy's word before anything is written.
  -- Beyond 2^26 a word's offset is past any string Redis can hold.
  local order, freed, dropped = {}, {}, 0
  local get = { 'GET', 'i64', '#6' }
  for i = 1, #members do
    local s = string.match(members[i], '^(%d+):%d+:%d+:%d+:')
    local num = s and tonumber(s)
    if num == nil or num < 16 or num >= 67108864 then
      dropped = dropped + 1
    else
      local seq = int(num)
      if freed[seq] == nil then
        freed[seq] = 0
        order[#order + 1] = seq
        get[#get + 1] = 'GET'; get[#get + 1] = 'i64'; get[#get + 1] = '#' .. seq
      end
      freed[seq] = freed[seq] + 1
    end
  end
  local n = 0
  if #order > 0 then
    local now = redis.call('BITFIELD', K.hot, unpack(get))
    local last = now[1]
    local kept = {}
    for i, seq in ipairs(order) do
      local _, load = decode(now[i + 1])
      if tonumber(seq) > last then
        load = 0
      end
      if load < freed[seq] then
        dropped = dropped + freed[seq] - load
        freed[seq] = load
      end
      if freed[seq] > 0 then
        kept[#kept + 1] = seq
        n = n + freed[seq]
      end
    end
    order = kept
  end
  if dropped > 0 then
    redis.log(redis.LOG_WARNING, 'pharox: dropped ' .. dropped .. ' malformed lease member(s) of ' .. K.exp)
  end
  redis.call('ZREM', K.exp, unpack(members))
  if n == 0 then
    return 0
  end
  local cmd = {}
  for _, seq in ipairs(order) do
    cmd[#cmd + 1] = 'INCRBY'; cmd[#cmd + 1] = 'i64'; cmd[#cmd + 1] = '#' .. seq
    cmd[#cmd + 1] = freed[seq] == 1 and REL or int(-65535 * freed[seq])
  end
  if expired then
    cmd[#cmd + 1] = 'INCRBY'; cmd[#cmd + 1] = 'i64'; cmd[#cmd + 1] = '#1'; cmd[#cmd + 1] = tostring(n)
  end
  local words = redis.call('BITFIELD', K.hot, unpack(cmd))
  local bf = {}
  for i, seq in ipairs(order) do
    after_free(K, seq, words[i], bf, freed[seq])
  end
  flush_bf(K, bf)
  return n
end

-- Reclaims up to `limit` leases of the pool whose deadline is <= now.
local function reclaim(K, now, limit)
  local due = redis.call('ZRANGEBYSCORE', K.exp, '-inf', now, 'LIMIT', 0, limit)
  return end_leases(K, due, true)
end

-- After reclaiming, sets the expiry hint (#9) to the earliest deadline
-- left, or far in the future when no lease is left.
local function rehint(K)
  local first = redis.call('ZRANGE', K.exp, 0, 0, 'WITHSCORES')
  redis.call('BITFIELD', K.hot, 'SET', 'i64', '#9', first[2] or '9007199254740991')
end

-- Reclaims expired leases if the hint says one may be due; returns how many.
local function reclaim_due(K, now, limit, hint)
  if limit == 0 or hint > now then return 0 end
  local n = reclaim(K, now, limit)
  rehint(K)
  return n
end
