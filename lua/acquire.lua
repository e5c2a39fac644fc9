-- acquire.lua: lease one proxy of a pool, atomically (also serves
-- find_available_proxy with ARGV[6] = '1', which leases nothing).
--
-- KEYS: 1 hot, 2 exp, 3 free, 4 load, 5 lat, 6 lsc, 7 px,
--       8 candidates: the ix:<field>:<value> zset (modes x, v) or the geo
--         set (mode g); 9 polar (located proxies beyond Redis GEO's
--         latitude range; mode g). Modes '' and s pass only 1-7.
-- ARGV: 1 selector: f first available | r round robin | l least used |
--         t lowest latency
--       2 lease duration in ms (1 .. 86400000)
--       3 consumer name (non-empty)
--       4 nonce: decimal integer below 2^44, chosen by the client
--       5 reclaim batch: expired leases to reclaim at most (0 .. 10000)
--       6 '1' to only find (no lease, cursor untouched), else '0'
--       7 the proxy-data generation the client has cached ('' for none)
--       8 filter mode: '' none | x exact (every proxy of KEYS[8] matches) |
--         v verify KEYS[8] candidates with the filter | g geo candidates
--         from KEYS[8] and KEYS[9], verified | s scan proxies with room,
--         verified
--       9 filter JSON (modes v, g, s)
--       10, 11, 12 geo search longitude, latitude, radius km (mode g)
-- Returns: {seq, token, now_ms, generation[, proxy JSON]} for a lease, the
--          JSON only when the generation differs from ARGV[7];
--          {seq, 0, now_ms, generation, proxy JSON, live leases} when finding;
--          {0} when no proxy qualifies; {-1} when the pool does not exist;
--          an error reply "PHAROX bad argument ..." for bad ARGV.
--
-- Expired leases are reclaimed in the same atomic step: after leasing when
-- the hint (#9) says one is due, or before selecting again after a miss,
-- so capacity held by an expired lease is never reported as missing.

local sel, find, mode = ARGV[1], ARGV[6] == '1', ARGV[8] or ''
if not (sel == 'f' or sel == 'r' or sel == 'l' or sel == 't') then
  return fail('bad argument: selector')
end
local dur = arg_int(2, 1, 86400000)
if dur == nil then return fail('bad argument: duration') end
if ARGV[3] == nil or ARGV[3] == '' then return fail('bad argument: consumer') end
if not string.match(ARGV[4] or '', '^%d+$') or arg_int(4, 0, 17592186044415) == nil then
  return fail('bad argument: nonce')
end
local batch = arg_int(5, 0, 10000)
if batch == nil then return fail('bad argument: reclaim batch') end
if not (mode == '' or mode == 'x' or mode == 'v' or mode == 'g' or mode == 's') then
  return fail('bad argument: filter mode')
end

local K = { hot = KEYS[1], exp = KEYS[2], free = KEYS[3], load = KEYS[4],
  lat = KEYS[5], lsc = KEYS[6], px = KEYS[7] }
local now = now_ms()

local function cursor()
  return tostring(redis.call('BITFIELD', K.hot, 'GET', 'i64', '#2')[1])
end

-- Lazily ordered index (load or lat): the first entry that is still valid.
local function pick_lazy(key, is_load)
  for _ = 1, 100000 do
    local seq = redis.call('ZRANGE', key, 0, 0)[1]
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

-- Selection with a filter: candidates in pages, checked against the words.
local function select_filtered()
  -- Pages grow 8, 16, 32, 64, 64, ...: the first free candidate is usually
  -- near the front, and a small page keeps that case cheap.
  local PAGE = 64
  local verify = nil
  if mode ~= 'x' then
    local ok, f = pcall(cjson.decode, ARGV[9])
    if not ok or type(f) ~= 'table' then return nil, 'bad argument: filter JSON' end
    local matches = filter_matcher()
    verify = function(seq)
      local json = redis.call('HGET', K.px, seq)
      return json and matches(f, cjson.decode(json))
    end
  end
  -- Pages of seqs from a zset whose scores are the seqs, in [min, max].
  local function by_seq(key, min, max)
    local offset, size = 0, 8
    return function()
      local page = redis.call('ZRANGEBYSCORE', key, min, max, 'LIMIT', offset, size)
      offset = offset + size
      if size < PAGE then size = size * 2 end
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

  local source = K.free
  if mode == 'x' or mode == 'v' then source = KEYS[8] end
  if mode == 'g' then
    local lon, lat, radius = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
    if lon == nil or lat == nil or radius == nil or radius <= 0
        or lon < -180 or lon > 180 or lat < -85.05112878 or lat > 85.05112878 then
      return nil, 'bad argument: geo'
    end
    local found = redis.call('GEOSEARCH', KEYS[8], 'FROMLONLAT', ARGV[10], ARGV[11],
      'BYRADIUS', ARGV[12], 'km')
    for _, s in ipairs(redis.call('ZRANGE', KEYS[9], 0, -1)) do found[#found + 1] = s end
    table.sort(found, function(a, b) return tonumber(a) < tonumber(b) end)
    if sel == 'r' then
      local c = tonumber(cursor())
      local after, before = {}, {}
      for _, s in ipairs(found) do
        if tonumber(s) > c then after[#after + 1] = s else before[#before + 1] = s end
      end
      return pick_from('f', one_page(after)) or pick_from('f', one_page(before))
    end
    return pick_from(sel, one_page(found))
  end
  if sel == 'r' then
    local c = cursor()
    return pick_from('f', by_seq(source, '(' .. c, '+inf'))
      or pick_from('f', by_seq(source, '-inf', c))
  end
  return pick_from(sel, by_seq(source, '-inf', '+inf'))
end

local function select()
  if mode ~= '' then return select_filtered() end
  if sel == 'f' then
    return redis.call('ZRANGE', K.free, 0, 0)[1]
  elseif sel == 'r' then
    return redis.call('ZRANGEBYSCORE', K.free, '(' .. cursor(), '+inf', 'LIMIT', 0, 1)[1]
      or redis.call('ZRANGE', K.free, 0, 0)[1]
  elseif sel == 'l' then
    return pick_lazy(K.load, true)
  end
  return pick_lazy(K.lat, false)
end

local seq, err = select()
if err then return fail(err) end
if seq == nil then
  -- A miss: reclaim what is due, then look again.
  local hot = redis.call('BITFIELD', K.hot, 'GET', 'i64', '#7', 'GET', 'i64', '#9')
  if hot[1] ~= 1 then return { -1 } end
  if reclaim_due(K, now, batch, hot[2]) > 0 then
    seq, err = select()
    if err then return fail(err) end
  end
  if seq == nil then return { 0 } end
end

if find then
  local h = redis.call('BITFIELD', K.hot, 'GET', 'i64', '#' .. seq, 'GET', 'i64', '#8')
  local _, load = decode(h[1])
  return { tonumber(seq), 0, now, h[2], redis.call('HGET', K.px, seq), load }
end

local r
if sel == 'r' then
  r = redis.call('BITFIELD', K.hot, 'INCRBY', 'i64', '#' .. seq, ACQ, 'INCRBY', 'i64', '#0', '1',
    'GET', 'i64', '#9', 'GET', 'i64', '#8', 'SET', 'i64', '#2', seq)
else
  r = redis.call('BITFIELD', K.hot, 'INCRBY', 'i64', '#' .. seq, ACQ, 'INCRBY', 'i64', '#0', '1',
    'GET', 'i64', '#9', 'GET', 'i64', '#8')
end
local w, token, hint, gen = r[1], r[2], r[3], r[4]
local room, load = w % 65536, math.floor(w / 65536) % 65536
if room == 0 then
  redis.call('ZREM', K.free, seq)
end
local deadline = now + dur
redis.call('ZADD', K.exp, deadline, seq .. ':' .. token .. ':' .. ARGV[4] .. ':' .. now .. ':' .. ARGV[3])
if load == 1 or deadline < hint then
  local bf = {}
  if load == 1 then
    bf[#bf + 1] = 'INCRBY'; bf[#bf + 1] = 'i64'; bf[#bf + 1] = '#5'; bf[#bf + 1] = '1'
  end
  if deadline < hint then
    bf[#bf + 1] = 'SET'; bf[#bf + 1] = 'i64'; bf[#bf + 1] = '#9'; bf[#bf + 1] = deadline
  end
  redis.call('BITFIELD', K.hot, unpack(bf))
end
reclaim_due(K, now, batch, hint)
if tonumber(ARGV[7]) == gen then
  return { tonumber(seq), token, now, gen }
end
return { tonumber(seq), token, now, gen, redis.call('HGET', K.px, seq) }
