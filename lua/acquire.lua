-- acquire.lua: lease one proxy of a pool, atomically (also serves
-- find_available_proxy with ARGV[11] = '1', which leases nothing).
--
-- KEYS: 1 hot, 2 exp, 3 free, 4 load, 5 lat, 6 lsc, 7 px,
--       8 candidates: the ix:<field>:<value> zset (modes x, v), the geo set
--         (mode g), or any pool key (ignored) for modes '' and s,
--       9 polar (located proxies beyond Redis GEO's latitude range)
-- ARGV: 1 selector: f first available | r round robin | l least used |
--         t lowest latency
--       2 lease duration in ms (1 .. 86400000)
--       3 consumer name (non-empty)
--       4 nonce: decimal integer below 2^44, chosen by the client
--       5 reclaim batch: expired leases to reclaim first (0 .. 10000)
--       6 filter mode: '' none | x exact (every proxy of KEYS[8] matches) |
--         v verify KEYS[8] candidates with the filter | g geo candidates
--         from KEYS[8], verified | s scan proxies with room, verified
--       7 filter JSON (modes v, g, s), else ''
--       8, 9, 10 geo search longitude, latitude, radius km (mode g), else ''
--       11 '1' to only find (no lease, cursor untouched), else '0'
-- Returns: {seq, token, now_ms, proxy JSON} for a lease;
--          {seq, 0, now_ms, proxy JSON, live leases} when only finding;
--          {0} when no proxy qualifies; {-1} when the pool does not exist;
--          an error reply "PHAROX bad argument ..." for bad ARGV.

local sel, mode, find = ARGV[1], ARGV[6], ARGV[11] == '1'
if not (sel == 'f' or sel == 'r' or sel == 'l' or sel == 't') then
  return fail('bad argument: selector')
end
local dur = arg_int(2, 1, 86400000)
if dur == nil then return fail('bad argument: duration') end
if ARGV[3] == nil or ARGV[3] == '' then return fail('bad argument: consumer') end
if arg_int(4, 0, 17592186044415) == nil then return fail('bad argument: nonce') end
local batch = arg_int(5, 0, 10000)
if batch == nil then return fail('bad argument: reclaim batch') end
if not (mode == '' or mode == 'x' or mode == 'v' or mode == 'g' or mode == 's') then
  return fail('bad argument: filter mode')
end

local K = { hot = KEYS[1], exp = KEYS[2], free = KEYS[3], load = KEYS[4],
  lat = KEYS[5], lsc = KEYS[6], px = KEYS[7], cand = KEYS[8], polar = KEYS[9] }

local now = now_ms()
if batch > 0 then
  reclaim(K, now, batch)
end

local PAGE = 64

-- Pages of seqs from a zset whose scores are the seqs, in [min, max].
local function by_seq(key, min, max)
  local offset = 0
  return function()
    local page = redis.call('ZRANGEBYSCORE', key, min, max, 'LIMIT', offset, PAGE)
    offset = offset + PAGE
    if #page == 0 then return nil end
    return page
  end
end

local function one_page(list)
  local done = #list == 0
  return function()
    if done then return nil end
    done = true
    return list
  end
end

local verify = nil
if mode == 'v' or mode == 'g' or mode == 's' then
  local ok, f = pcall(cjson.decode, ARGV[7])
  if not ok or type(f) ~= 'table' then return fail('bad argument: filter JSON') end
  verify = function(seq)
    local json = redis.call('HGET', K.px, seq)
    return json and matches(f, cjson.decode(json))
  end
end

-- The best candidate of `pages` for selector `s` ('f' takes the first).
local function pick_from(s, pages)
  local best, best_key = nil, nil
  for page in pages do
    local cmd = {}
    for i = 1, #page do
      cmd[#cmd + 1] = 'GET'; cmd[#cmd + 1] = 'i64'; cmd[#cmd + 1] = '#' .. page[i]
    end
    local words = redis.call('BITFIELD', K.hot, unpack(cmd))
    local scores = nil
    if s == 't' then scores = redis.call('HMGET', K.lsc, unpack(page)) end
    for i = 1, #page do
      local room, load, _, active = decode(words[i])
      if active and room > 0 and (verify == nil or verify(page[i])) then
        if s == 'f' then return page[i] end
        local key
        if s == 'l' then
          key = load * P32 + tonumber(page[i])
        else
          key = tonumber(scores[i]) or math.huge
        end
        if best_key == nil or key < best_key then
          best, best_key = page[i], key
        end
      end
    end
  end
  return best
end

local function cursor()
  return tostring(redis.call('BITFIELD', K.hot, 'GET', 'i64', '#2')[1])
end

-- Lazily ordered index (load or lat): the first entry that is still valid.
local function pick_lazy(key, is_load)
  for _ = 1, 100000 do
    local top = redis.call('ZRANGE', key, 0, 0)
    local seq = top[1]
    if seq == nil then return nil end
    local w = redis.call('BITFIELD', K.hot, 'GET', 'i64', '#' .. seq)[1]
    local room, load, ixload, active = decode(w)
    if not active or room == 0 then
      redis.call('ZREM', key, seq)
      local delta = is_load and -(F_INLOAD + ixload * P32) or -F_INLAT
      redis.call('BITFIELD', K.hot, 'INCRBY', 'i64', '#' .. seq, int(delta))
    elseif is_load and ixload ~= load then
      redis.call('ZADD', key, int(load * P32 + tonumber(seq)), seq)
      redis.call('BITFIELD', K.hot, 'INCRBY', 'i64', '#' .. seq, int((load - ixload) * P32))
    else
      return seq
    end
  end
  return nil
end

local seq = nil
if mode == '' then
  if sel == 'f' then
    seq = redis.call('ZRANGE', K.free, 0, 0)[1]
  elseif sel == 'r' then
    seq = redis.call('ZRANGEBYSCORE', K.free, '(' .. cursor(), '+inf', 'LIMIT', 0, 1)[1]
      or redis.call('ZRANGE', K.free, 0, 0)[1]
  elseif sel == 'l' then
    seq = pick_lazy(K.load, true)
  else
    seq = pick_lazy(K.lat, false)
  end
else
  local source = K.free
  if mode == 'x' or mode == 'v' then source = K.cand end
  if mode == 'g' then
    local lon, lat, radius = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
    if lon == nil or lat == nil or radius == nil or radius <= 0 then
      return fail('bad argument: geo')
    end
    local found = redis.call('GEOSEARCH', K.cand, 'FROMLONLAT', ARGV[8], ARGV[9],
      'BYRADIUS', ARGV[10], 'km')
    for _, s in ipairs(redis.call('ZRANGE', K.polar, 0, -1)) do found[#found + 1] = s end
    table.sort(found, function(a, b) return tonumber(a) < tonumber(b) end)
    if sel == 'r' then
      local c = tonumber(cursor())
      local after, before = {}, {}
      for _, s in ipairs(found) do
        if tonumber(s) > c then after[#after + 1] = s else before[#before + 1] = s end
      end
      seq = pick_from('f', one_page(after)) or pick_from('f', one_page(before))
    else
      seq = pick_from(sel, one_page(found))
    end
  elseif sel == 'r' then
    local c = cursor()
    seq = pick_from('f', by_seq(source, '(' .. c, '+inf'))
      or pick_from('f', by_seq(source, '-inf', c))
  else
    seq = pick_from(sel, by_seq(source, '-inf', '+inf'))
  end
end

if seq == nil then
  if redis.call('EXISTS', K.hot) == 0 then return { -1 } end
  return { 0 }
end

if find then
  local _, load = decode(redis.call('BITFIELD', K.hot, 'GET', 'i64', '#' .. seq)[1])
  return { tonumber(seq), 0, now, redis.call('HGET', K.px, seq), load }
end

local r
if sel == 'r' then
  r = redis.call('BITFIELD', K.hot, 'INCRBY', 'i64', '#' .. seq, ACQ,
    'INCRBY', 'i64', '#0', '1', 'SET', 'i64', '#2', seq)
else
  r = redis.call('BITFIELD', K.hot, 'INCRBY', 'i64', '#' .. seq, ACQ, 'INCRBY', 'i64', '#0', '1')
end
local w, token = r[1], r[2]
local room, load = w % 65536, math.floor(w / 65536) % 65536
if room == 0 then
  redis.call('ZREM', K.free, seq)
end
if load == 1 then
  redis.call('BITFIELD', K.hot, 'INCRBY', 'i64', '#5', '1')
end
local member = seq .. ':' .. token .. ':' .. ARGV[4] .. ':' .. now .. ':' .. ARGV[3]
redis.call('ZADD', K.exp, now + dur, member)
return { tonumber(seq), token, now, redis.call('HGET', K.px, seq) }
