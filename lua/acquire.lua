-- acquire.lua: lease one proxy of a pool, atomically (or, with ARGV[6] =
-- '1', find one without leasing it).
--
-- KEYS: 1 counters, 2 leases_by_deadline, 3 free_by_seq, 4 free_by_load,
--       5 free_by_latency, 6 latency_by_seq, 7 proxy_by_seq,
--       8 the candidates of plans x and v (a by_value index) or the
--         located geo set (plan g), 9 polar_by_seq (plan g).
--       Plans '' and s pass only 1-7.
-- ARGV: 1 selector: f first available | r round robin | l least used |
--         t lowest latency
--       2 lease duration in ms (1 .. LIMIT.MAX_DURATION_MS)
--       3 consumer name (non-empty)
--       4 nonce: canonical decimal below 2^44, chosen by the client
--       5 reclaim batch: expired leases to reclaim at most (0 .. 10000)
--       6 '1' to only find (no lease, cursor untouched), '0' to lease
--       7 the proxy-data generation the client has cached ('' for none)
--       8 plan: '' no filter | x every member of KEYS[8] matches |
--         v KEYS[8] holds every match, verify with the filter |
--         g geo: matches lie within ARGV[13] km of (ARGV[11], ARGV[12]) in
--         KEYS[8] or are in KEYS[9], verify | s verify the selector's own
--         index
--       9 filter JSON (plans v, g, s; at most LIMIT.FILTER_BYTES)
--       10 position to resume from ('' to start; plans other than '')
--       11, 12, 13 geo search longitude, latitude, radius km (plan g)
-- Returns: {seq, token, now_ms, generation[, proxy JSON]} for a lease, the
--            JSON only when the generation differs from ARGV[7];
--          {seq, 0, now_ms, generation, proxy JSON, live leases} when finding;
--          {0} when no proxy qualifies; {-1} when the pool does not exist;
--          {-3, position} when this call examined its budget of candidates
--            without an answer: no lease was granted, call again with
--            ARGV[10] = position;
--          an error reply "PHAROX bad argument ..." for bad ARGV.
--
-- Without a filter every selector is one lookup in an exact index. With
-- one, each call examines at most STEP_UNITS of work (see `walk`), so no
-- call holds Redis for long, whatever the pool and the filter. Expired
-- leases are reclaimed in the same atomic step as a lease when the hint
-- says one is due, and before looking again after a miss, so capacity held
-- by an expired lease is never reported as missing.

local sel, find, plan = ARGV[1], ARGV[6] == '1', ARGV[8] or ''
if not (sel == 'f' or sel == 'r' or sel == 'l' or sel == 't') then
  return fail('bad argument: selector')
end
local dur = arg_int(2, 1, LIMIT.MAX_DURATION_MS)
if dur == nil then return fail('bad argument: duration') end
local consumer = ARGV[3]
if consumer == nil or consumer == '' then return fail('bad argument: consumer') end
local nonce = arg_int(4, 0, LIMIT.NONCE_END - 1)
if nonce == nil then return fail('bad argument: nonce') end
local batch = arg_int(5, 0, LIMIT.MAX_BATCH)
if batch == nil then return fail('bad argument: reclaim batch') end
if not (ARGV[6] == '0' or ARGV[6] == '1') then return fail('bad argument: find') end
if not (plan == '' or plan == 'x' or plan == 'v' or plan == 'g' or plan == 's') then
  return fail('bad argument: filter plan')
end
if (plan == 'x' or plan == 'v' or plan == 'g') and KEYS[8] == nil or plan == 'g' and KEYS[9] == nil then
  return fail('bad argument: candidate keys')
end

local K = { counters = KEYS[1], leases_by_deadline = KEYS[2], free_by_seq = KEYS[3],
  free_by_load = KEYS[4], free_by_latency = KEYS[5], latency_by_seq = KEYS[6],
  proxy_by_seq = KEYS[7] }
local now = now_ms()

local function cursor()
  return int(counter(K, SLOT.CURSOR))
end

-- Leases `seq` (an active proxy with room), or describes it when finding.
local function grant(seq)
  if find then
    local h = redis.call('BITFIELD_RO', K.counters, 'GET', 'i64', WORD.slot(seq), 'GET', 'i64', SLOT.GENERATION)
    return { tonumber(seq), 0, now, h[2], redis.call('HGET', K.proxy_by_seq, seq), WORD.load(h[1]) }
  end
  local r
  if sel == 'r' then
    r = redis.call('BITFIELD', K.counters, 'INCRBY', 'i64', WORD.slot(seq), WORD.ACQUIRE,
      'INCRBY', 'i64', SLOT.TOKEN, '1', 'GET', 'i64', SLOT.EXPIRY_HINT, 'GET', 'i64', SLOT.GENERATION,
      'SET', 'i64', SLOT.CURSOR, seq)
  else
    r = redis.call('BITFIELD', K.counters, 'INCRBY', 'i64', WORD.slot(seq), WORD.ACQUIRE,
      'INCRBY', 'i64', SLOT.TOKEN, '1', 'GET', 'i64', SLOT.EXPIRY_HINT, 'GET', 'i64', SLOT.GENERATION)
  end
  local w, token, hint, gen = r[1], r[2], r[3], r[4]
  local load = WORD.load(w)
  if WORD.room(w) == 0 then
    redis.call('ZREM', K.free_by_seq, seq)
    redis.call('ZREM', K.free_by_load, seq)
    redis.call('ZREM', K.free_by_latency, seq)
  else
    redis.call('ZADD', K.free_by_load, int(SCORE.load(load, tonumber(seq))), seq)
  end
  local deadline = now + dur
  redis.call('ZADD', K.leases_by_deadline, int(deadline), MEMBER.build(seq, token, nonce, now, consumer))
  if load == 1 or deadline < hint then
    local bf = {}
    if load == 1 then
      bf[#bf + 1] = 'INCRBY'; bf[#bf + 1] = 'i64'; bf[#bf + 1] = SLOT.LEASED; bf[#bf + 1] = '1'
    end
    if deadline < hint then
      bf[#bf + 1] = 'SET'; bf[#bf + 1] = 'i64'; bf[#bf + 1] = SLOT.EXPIRY_HINT; bf[#bf + 1] = int(deadline)
    end
    redis.call('BITFIELD', K.counters, unpack(bf))
  end
  reclaim_due(K, now, batch, hint)
  if tonumber(ARGV[7]) == gen then
    return { tonumber(seq), token, now, gen }
  end
  return { tonumber(seq), token, now, gen, redis.call('HGET', K.proxy_by_seq, seq) }
end

-- No filter: one lookup in the selector's exact index.
local function select_unfiltered()
  if sel == 'f' then
    return redis.call('ZRANGE', K.free_by_seq, 0, 0)[1]
  elseif sel == 'r' then
    return redis.call('ZRANGEBYSCORE', K.free_by_seq, '(' .. cursor(), '+inf', 'LIMIT', 0, 1)[1]
      or redis.call('ZRANGE', K.free_by_seq, 0, 0)[1]
  elseif sel == 'l' then
    return redis.call('ZRANGE', K.free_by_load, 0, 0)[1]
  end
  return redis.call('ZRANGE', K.free_by_latency, 0, 0)[1]
end

-- Nothing qualified in pass `pass`: reclaim what is due and, if anything
-- came back, look again (at once without a filter, else by a new pass).
local function miss(pass)
  local h = redis.call('BITFIELD_RO', K.counters, 'GET', 'i64', SLOT.EXISTS, 'GET', 'i64', SLOT.EXPIRY_HINT)
  if h[1] ~= 1 then return { -1 } end
  if pass == 1 and reclaim_due(K, now, batch, h[2]) > 0 then
    if plan == '' then
      local seq = select_unfiltered()
      if seq then return grant(seq) end
      return { 0 }
    end
    return { -3, '-:1:::2' }
  end
  return { 0 }
end

if plan == '' then
  local seq = select_unfiltered()
  if seq then return grant(seq) end
  return miss(1)
end

---------------------------------------------------------------------------
-- With a filter.

local filter, nodes = nil, 0
if plan ~= 'x' then
  local f, n = decode_filter(ARGV[9])
  if f == nil then return fail('bad argument: ' .. n) end
  filter, nodes = f, n
end

-- Work units one call may spend; a unit is about half a microsecond of
-- Redis time: reading a word costs 1, an index membership check 2, and
-- checking a proxy record against the filter 4 + its number of objects.
local STEP_UNITS = 4096
local FILTER_UNITS = 4 + nodes

local geo = nil
if plan == 'g' then
  local lon, lat, radius = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
  if lon == nil or lat == nil or radius == nil or lon ~= lon or lat ~= lat or radius ~= radius
      or radius <= 0 or radius > 1e5 or lon < -180 or lon > 180
      or lat < -85.05112878 or lat > 85.05112878 then
    return fail('bad argument: geo')
  end
  geo = { ARGV[11], ARGV[12], ARGV[13] }
end

-- The position: which index a pass walks (i KEYS[8], s free_by_seq,
-- l free_by_load, t free_by_latency; '-' not chosen yet), the round-robin
-- phase (1 after the cursor, 2 up to it), the last score examined, the
-- cursor the pass started from, and the pass (2 after a reclaim).
local pos = { src = '-', phase = 1, after = nil, cursor = nil, pass = 1 }
if ARGV[10] ~= nil and ARGV[10] ~= '' then
  local src, phase, after, cur, pass = string.match(ARGV[10], '^([-islt]):([12]):(%d*):(%d*):([12])$')
  if src == nil or (src == 'i' and plan ~= 'x' and plan ~= 'v')
      or (sel == 'r' and (src == 'i' or src == 's') and cur == '') then
    return fail('bad argument: position')
  end
  pos = { src = src, phase = tonumber(phase), after = after ~= '' and after or nil,
    cursor = cur ~= '' and cur or nil, pass = tonumber(pass) }
end

-- The members of `seqs` that are active with room, with their words.
local function with_room(seqs)
  local words = read_words(K, seqs)
  local out, out_words = {}, {}
  for i, seq in ipairs(seqs) do
    if WORD.free(words[i]) then
      out[#out + 1] = seq
      out_words[#out] = words[i]
    end
  end
  return out, out_words
end

local function record_matches(json, seq)
  if not json then return false end
  local ok, p = pcall(cjson.decode, json)
  if not ok or type(p) ~= 'table' then
    error('PHAROX corrupt proxy record at sequence ' .. seq)
  end
  return matches(filter, p)
end

-- The first of `seqs` (in order) that qualifies, and the units spent.
-- Members of KEYS[8] (source i) may be full or inactive; members of the
-- free_by_* indexes are active with room.
local function first_qualifying(src, seqs)
  local units, cands = 0, seqs
  if src == 'i' then
    cands = with_room(seqs)
    units = #seqs
  end
  if #cands == 0 then return nil, units end
  if plan == 'x' then
    if src == 'i' then return cands[1], units end
    for _, seq in ipairs(cands) do
      units = units + 2
      if redis.call('ZSCORE', KEYS[8], seq) then return seq, units end
    end
    return nil, units
  end
  local recs = redis.call('HMGET', K.proxy_by_seq, unpack(cands))
  for i, seq in ipairs(cands) do
    units = units + FILTER_UNITS
    if record_matches(recs[i], seq) then return seq, units end
  end
  return nil, units
end

-- Walks the pass's index in order from its position, spending at most
-- STEP_UNITS: returns the first qualifying sequence (the selector's exact
-- choice: the index is in the selector's order), or nil and the position
-- to resume from, or nil, nil when the index is exhausted.
local function walk(p)
  local key = ({ i = KEYS[8], s = K.free_by_seq, l = K.free_by_load, t = K.free_by_latency })[p.src]
  local spent, size = 0, 8
  while spent < STEP_UNITS do
    local lo, hi = p.after and ('(' .. p.after) or '-inf', '+inf'
    if sel == 'r' then
      if p.phase == 1 and not p.after then lo = '(' .. p.cursor end
      if p.phase == 2 then hi = p.cursor end
    end
    local page = redis.call('ZRANGEBYSCORE', key, lo, hi, 'WITHSCORES', 'LIMIT', 0, size)
    if #page == 0 then
      if sel == 'r' and p.phase == 1 then
        p.phase, p.after = 2, nil
      else
        return nil, nil
      end
    else
      local seqs = {}
      for i = 1, #page, 2 do seqs[#seqs + 1] = page[i] end
      p.after = page[#page]
      local hit, units = first_qualifying(p.src, seqs)
      if hit then return hit end
      spent = spent + units + 1
      if size < 64 then size = size * 2 end
    end
  end
  return nil, p
end

-- The selector's choice among `cands` (every candidate of the filter, few
-- enough for one call), or nil.
local function best_of(cands)
  local q, words = with_room(cands)
  if plan ~= 'x' and #q > 0 then
    local recs = chunked('HMGET', K.proxy_by_seq, q, 1)
    local kept, kept_words = {}, {}
    for i, seq in ipairs(q) do
      if record_matches(recs[i], seq) then
        kept[#kept + 1] = seq
        kept_words[#kept] = words[i]
      end
    end
    q, words = kept, kept_words
  end
  if #q == 0 then return nil end
  local keys = {}
  if sel == 't' then
    keys = chunked('HMGET', K.latency_by_seq, q, 1)
    for i = 1, #q do keys[i] = tonumber(keys[i]) or math.huge end
  else
    local after = sel == 'r' and tonumber(cursor()) or nil
    for i, seq in ipairs(q) do
      local s = tonumber(seq)
      if sel == 'l' then
        keys[i] = SCORE.load(WORD.load(words[i]), s)
      elseif after ~= nil and s <= after then
        keys[i] = s + LIMIT.MAX_SEQ + 1 -- round robin: after the cursor first
      else
        keys[i] = s
      end
    end
  end
  local best = 1
  for i = 2, #q do
    if keys[i] < keys[best] then best = i end
  end
  return q[best]
end

-- Starts a pass: the index to walk, or the whole candidate set when it is
-- small enough to judge in this call.
local function start()
  if plan == 'x' or plan == 'v' then
    if sel == 'f' or sel == 'r' then return 'i' end
    local per = plan == 'x' and 1 or 1 + FILTER_UNITS
    if redis.call('ZCARD', KEYS[8]) * per <= STEP_UNITS then
      return nil, redis.call('ZRANGE', KEYS[8], 0, -1)
    end
    return sel
  end
  if plan == 'g' then
    local cap = math.floor(STEP_UNITS / (1 + FILTER_UNITS))
    local found = redis.call('GEOSEARCH', KEYS[8], 'FROMLONLAT', geo[1], geo[2],
      'BYRADIUS', geo[3], 'km', 'COUNT', cap + 1, 'ANY')
    if #found + redis.call('ZCARD', KEYS[9]) <= cap then
      for _, s in ipairs(redis.call('ZRANGE', KEYS[9], 0, -1)) do found[#found + 1] = s end
      return nil, found
    end
  end
  if sel == 'f' or sel == 'r' then return 's' end
  return sel
end

local p = pos
if p.src == '-' then
  local src, all = start()
  if all then
    local seq = best_of(all)
    if seq then return grant(seq) end
    return miss(p.pass)
  end
  p = { src = src, phase = 1, after = nil, cursor = sel == 'r' and cursor() or nil, pass = p.pass }
end
local seq, resume = walk(p)
if seq then return grant(seq) end
if resume then
  return { -3, resume.src .. ':' .. resume.phase .. ':' .. (resume.after or '') .. ':'
    .. (resume.cursor or '') .. ':' .. resume.pass }
end
return miss(p.pass)
