-- acquire.lua: lease one proxy of a pool, atomically (or, with ARGV[6] =
-- '1', find one without leasing it).
--
-- KEYS: 1 counters, 2 leases_by_deadline, 3 free_by_seq, 4 free_by_load,
--       5 free_by_latency, 6 latency_by_seq, 7 lease_by_token, 8 proxy_by_seq,
--       9 the candidates of plans x and v (a by_value index) or the
--         located geo set (plan g), 10 polar_by_seq (plan g).
--       Plans '' and s pass only 1-8.
-- ARGV: 1 selector: f first available | r round robin | l least used |
--         t lowest latency
--       2 lease duration in ms (1 .. LIMIT_MAX_DURATION_MS)
--       3 consumer name (non-empty)
--       4 nonce: canonical decimal below LIMIT_NONCE_END (2^42), chosen by
--         the client
--       5 reclaim batch: expired leases to reclaim at most (0 .. 10000)
--       6 '1' to only find (no lease, cursor untouched), '0' to lease
--       7 the proxy-data generation the client has cached ('' for none;
--         any value that is not the current generation counts as none)
--       8 plan: '' no filter | x every member of KEYS[9] matches |
--         v KEYS[9] holds every match, verify with the filter |
--         g geo: matches lie in the score ranges of ARGV[11..] of KEYS[9]
--         or are in KEYS[10], verify | s verify the selector's own index
--       9 filter JSON (plans v, g, s; at most LIMIT_FILTER_BYTES)
--       10 position to resume from ('' to start; every plan, checked
--         before anything is written)
--       11 (plan g) the number of score ranges (1 .. 9), then each range's
--         min and max (integers, 0 <= min < max <= 2^52; max excluded):
--         cells of Redis's GEO encoding covering the filter's circle
-- Returns: {seq, token, now_ms, generation[, proxy JSON]} for a lease, the
--            JSON only when the generation differs from ARGV[7]; the token
--            is above every earlier token of the pool and at least
--            token_floor(now_ms) (layout.lua);
--          {seq, 0, now_ms, generation, proxy JSON, live leases} when finding;
--          {0} when no proxy qualifies; {-1} when the pool does not exist;
--          {-3, position} when this call spent its budget (STEP_UNITS)
--            without an answer: no lease was granted (only index entries
--            were corrected, or due leases reclaimed); call again with
--            ARGV[10] = position;
--          an error reply "PHAROX bad argument ..." for bad ARGV.
--
-- Without a filter, first available and round robin are one lookup in the
-- exact free_by_seq; least used and lowest latency take the first valid
-- entry of their index, correcting the entries they meet on the way. With
-- a filter, a call walks candidates in the selector's order. Either way no
-- call spends more than STEP_UNITS, whatever the pool and the filter, and
-- a miss is answered only once every candidate was examined. Expired leases
-- are reclaimed in the same atomic step as a lease when the hint says one
-- is due, and before looking again after a miss, so capacity held by an
-- expired lease is never reported as missing.

local sel, find, plan = ARGV[1], ARGV[6] == '1', ARGV[8] or ''
if not (sel == 'f' or sel == 'r' or sel == 'l' or sel == 't') then
  return fail('bad argument: selector')
end
local dur = arg_int(2, 1, LIMIT_MAX_DURATION_MS)
if dur == nil then return fail('bad argument: duration') end
local consumer = ARGV[3]
if consumer == nil or consumer == '' then return fail('bad argument: consumer') end
local nonce = arg_int(4, 0, LIMIT_NONCE_END - 1)
if nonce == nil then return fail('bad argument: nonce') end
local batch = arg_int(5, 0, LIMIT_MAX_BATCH)
if batch == nil then return fail('bad argument: reclaim batch') end
if not (ARGV[6] == '0' or ARGV[6] == '1') then return fail('bad argument: find') end
if not (plan == '' or plan == 'x' or plan == 'v' or plan == 'g' or plan == 's') then
  return fail('bad argument: filter plan')
end
if (plan == 'x' or plan == 'v' or plan == 'g') and KEYS[9] == nil or plan == 'g' and KEYS[10] == nil then
  return fail('bad argument: candidate keys')
end

-- The position: which index a pass walks (i KEYS[9], s free_by_seq,
-- l free_by_load, t free_by_latency; '-' not chosen yet), the round-robin
-- phase (1 after the cursor, 2 up to it), the last score examined, the
-- cursor the pass started from, and the pass (2 after a reclaim).
local pos = { src = '-', phase = 1, after = nil, cursor = nil, pass = 1 }
if ARGV[10] ~= nil and ARGV[10] ~= '' then
  local src, phase, after, cur, pass = string.match(ARGV[10], '^([-islt]):([12]):(%d*):(%d*):([12])$')
  if src == nil or (src == 'i' and plan ~= 'x' and plan ~= 'v')
      or (plan == '' and src ~= '-' and src ~= sel)
      or (sel == 'r' and src ~= '-' and cur == '') then
    return fail('bad argument: position')
  end
  pos = { src = src, phase = tonumber(phase), after = after ~= '' and after or nil,
    cursor = cur ~= '' and cur or nil, pass = tonumber(pass) }
end

local K = { counters = KEYS[1], leases_by_deadline = KEYS[2], free_by_seq = KEYS[3],
  free_by_load = KEYS[4], free_by_latency = KEYS[5], latency_by_seq = KEYS[6],
  lease_by_token = KEYS[7], proxy_by_seq = KEYS[8] }
local now = now_ms()
-- Work one call may spend, in units of about a microsecond of Redis time
-- (measured with examples/redis_worst_case.rs): a page of an index costs
-- 8, reading and judging a word 2, correcting an index entry 2, an index
-- membership check 2, and checking a proxy record against the filter
-- FILTER_UNITS (decoding it, and a unit per filter object it may visit).
local STEP_UNITS = 1000

local function cursor()
  return int(counter(K, SLOT_CURSOR))
end

-- Leases `seq` (an active proxy with room), or describes it when finding.
local function grant(seq)
  if find then
    local h = redis.call('BITFIELD_RO', K.counters, 'GET', 'i64', word_slot(seq), 'GET', 'i64', SLOT_GENERATION)
    local _, load = word_decode(h[1])
    return { tonumber(seq), 0, now, h[2], redis.call('HGET', K.proxy_by_seq, seq), load }
  end
  local r
  if sel == 'r' then
    r = redis.call('BITFIELD', K.counters, 'INCRBY', 'i64', word_slot(seq), WORD_ACQUIRE,
      'INCRBY', 'i64', SLOT_TOKEN, '1', 'GET', 'i64', SLOT_TOKEN_SKIP, 'GET', 'i64', SLOT_EXPIRY_HINT,
      'GET', 'i64', SLOT_GENERATION, 'SET', 'i64', SLOT_CURSOR, seq)
  else
    r = redis.call('BITFIELD', K.counters, 'INCRBY', 'i64', word_slot(seq), WORD_ACQUIRE,
      'INCRBY', 'i64', SLOT_TOKEN, '1', 'GET', 'i64', SLOT_TOKEN_SKIP, 'GET', 'i64', SLOT_EXPIRY_HINT,
      'GET', 'i64', SLOT_GENERATION)
  end
  local w, hint, gen = r[1], r[4], r[5]
  -- The token: the counter plus what was skipped, raised to the clock's floor.
  local token, floor = r[2] + r[3], token_floor(now)
  local bf = {}
  if token < floor then
    bf[#bf + 1] = 'SET'; bf[#bf + 1] = 'i64'; bf[#bf + 1] = SLOT_TOKEN_SKIP; bf[#bf + 1] = int(floor - r[2])
    token = floor
  end
  local room, load = word_decode(w)
  if room == 0 then
    -- Full: out of the exact index now; free_by_load and free_by_latency
    -- drop it when they meet it.
    redis.call('ZREM', K.free_by_seq, seq)
  end
  local deadline = now + dur
  local member = member_build(seq, token, nonce, now, consumer)
  redis.call('ZADD', K.leases_by_deadline, int(deadline), member)
  redis.call('HSET', K.lease_by_token, int(token), member)
  if load == 1 then
    bf[#bf + 1] = 'INCRBY'; bf[#bf + 1] = 'i64'; bf[#bf + 1] = SLOT_LEASED; bf[#bf + 1] = '1'
  end
  if deadline < hint then
    bf[#bf + 1] = 'SET'; bf[#bf + 1] = 'i64'; bf[#bf + 1] = SLOT_EXPIRY_HINT; bf[#bf + 1] = int(deadline)
  end
  if #bf > 0 then redis.call('BITFIELD', K.counters, unpack(bf)) end
  reclaim_due(K, now, batch, hint)
  if tonumber(ARGV[7]) == gen then
    return { tonumber(seq), token, now, gen }
  end
  return { tonumber(seq), token, now, gen, redis.call('HGET', K.proxy_by_seq, seq) }
end

-- What an entry of a lazily kept index (free_by_load for src 'l',
-- free_by_latency for 't') needs, given its proxy's word `w`: nil when it
-- is valid; else 'gone' (the proxy is full or inactive: the entry leaves)
-- or the load to move it to (its indexed load lagged), and the change to
-- the word's index flags that goes with it.
local function staleness(src, w)
  local room, load, indexed, active = word_decode(w)
  if not active or room == 0 then
    return 'gone', src == 'l' and -(WORD_IN_LOAD + indexed * WORD_INDEXED_UNIT) or -WORD_IN_LATENCY
  elseif src == 'l' and indexed ~= load then
    return load, (load - indexed) * WORD_INDEXED_UNIT
  end
  return nil
end

-- Without a filter, first available and round robin: one lookup in the
-- exact free_by_seq (what follows is defined only by calls that need it).
if plan == '' and sel == 'f' then
  local seq = redis.call('ZRANGE', K.free_by_seq, 0, 0)[1]
  if seq then return grant(seq) end
elseif plan == '' and sel == 'r' then
  local seq = redis.call('ZRANGEBYSCORE', K.free_by_seq, '(' .. cursor(), '+inf', 'LIMIT', 0, 1)[1]
    or redis.call('ZRANGE', K.free_by_seq, 0, 0)[1]
  if seq then return grant(seq) end
elseif plan == '' and pos.src == '-' then
  -- Least used, lowest latency: the first entry, if it is still valid. A
  -- few stale entries at the front (proxies leased since they were indexed)
  -- are corrected one at a time, as the walk below would, which costs less
  -- than its pages; behind more of them, the walk takes over.
  local key = sel == 'l' and K.free_by_load or K.free_by_latency
  for _ = 1, 4 do
    local seq = redis.call('ZRANGE', key, 0, 0)[1]
    if seq == nil then break end
    local what, delta = staleness(sel, counter(K, word_slot(seq)))
    if what == nil then return grant(seq) end
    if what == 'gone' then
      redis.call('ZREM', key, seq)
    else
      redis.call('ZADD', key, score_load(what, seq), seq)
    end
    redis.call('BITFIELD', K.counters, 'INCRBY', 'i64', word_slot(seq), int(delta))
  end
end

-- Corrections of the lazily kept indexes (free_by_load for src 'l',
-- free_by_latency for 't'), sent together: entries of full or inactive
-- proxies leave, lagging loads are raised, and the words' flags follow.
-- Built only by calls that walk those indexes.
local function corrections(src)
  local C = { gone = {}, load = {}, bits = {} }
  local key = src == 'l' and K.free_by_load or K.free_by_latency

  -- Records the correction entry `seq` (word `w`) needs; false if none.
  function C.fix(seq, w)
    local what, delta = staleness(src, w)
    if what == nil then
      return false
    elseif what == 'gone' then
      C.gone[#C.gone + 1] = seq
    else
      C.load[#C.load + 1] = score_load(what, seq); C.load[#C.load + 1] = seq
    end
    C.bits[#C.bits + 1] = 'INCRBY'; C.bits[#C.bits + 1] = 'i64'
    C.bits[#C.bits + 1] = word_slot(seq); C.bits[#C.bits + 1] = int(delta)
    return true
  end

  -- Sends what was recorded; returns how many entries it corrected.
  function C.send()
    local n = #C.bits / 4
    if #C.gone > 0 then chunked('ZREM', key, C.gone, 1) end
    if #C.load > 0 then chunked('ZADD', key, C.load, 2) end
    if n > 0 then chunked('BITFIELD', K.counters, C.bits, 4) end
    C.gone, C.load, C.bits = {}, {}, {}
    return n
  end

  return C
end

-- Nothing qualified in pass `pass`: reclaim what is due and, if anything
-- came back, ask for a second pass.
local function miss(pass)
  local h = redis.call('BITFIELD_RO', K.counters, 'GET', 'i64', SLOT_EXISTS, 'GET', 'i64', SLOT_EXPIRY_HINT)
  if h[1] ~= 1 then return { -1 } end
  if pass == 1 and reclaim_due(K, now, batch, h[2]) > 0 then
    return { -3, '-:1:::2' }
  end
  return { 0 }
end

if plan == '' and (sel == 'f' or sel == 'r') then
  return miss(pos.pass)
end

---------------------------------------------------------------------------
-- Without a filter, least used and lowest latency walk their lazily kept
-- index, correcting the stale entries they meet; with a filter, every
-- selector walks the candidates in its order.

-- `cost`: the most filter objects one match can visit (see compile).
local filter, cost, matches = nil, 0, nil
if plan ~= 'x' and plan ~= '' then
  local decode_filter, compile
  decode_filter, matches, compile = filters()
  local f, bad = decode_filter(ARGV[9])
  if f == nil then return fail('bad argument: ' .. bad) end
  filter, cost = f, compile(f)
end
local FILTER_UNITS = 8 + cost

local ranges = nil
if plan == 'g' then
  local n = arg_int(11, 1, 9)
  if n == nil then return fail('bad argument: geo ranges') end
  ranges = {}
  for i = 1, n do
    local lo, hi = arg_int(10 + 2 * i, 0, 4503599627370496), arg_int(11 + 2 * i, 0, 4503599627370496)
    if lo == nil or hi == nil or lo >= hi then return fail('bad argument: geo ranges') end
    ranges[i] = { ARGV[10 + 2 * i], '(' .. ARGV[11 + 2 * i] }
  end
end

local function record_matches(json, seq)
  if not json then return false end
  local ok, p = pcall(cjson.decode, json)
  if not ok or type(p) ~= 'table' then
    error('PHAROX corrupt proxy record at sequence ' .. seq)
  end
  return matches(filter, p)
end

-- The seqs of `seqs` that pass the filter (plan x: are in KEYS[9]), in
-- order, stopping at the first when `first`; and the units spent.
local function passing(seqs, first)
  local out, units = {}, 0
  if #seqs == 0 then return out, units end
  if plan == '' then return seqs, 0 end
  if plan == 'x' then
    for _, seq in ipairs(seqs) do
      units = units + 2
      if redis.call('ZSCORE', KEYS[9], seq) then
        out[#out + 1] = seq
        if first then break end
      end
    end
    return out, units
  end
  local recs = chunked('HMGET', K.proxy_by_seq, seqs, 1)
  for i, seq in ipairs(seqs) do
    units = units + FILTER_UNITS
    if record_matches(recs[i], seq) then
      out[#out + 1] = seq
      if first then break end
    end
  end
  return out, units
end

-- Walks the pass's index in order from its position, spending at most
-- STEP_UNITS: returns the first qualifying sequence (the selector's exact
-- choice, since the index is in the selector's order), or nil and the
-- position to resume from, or nil, nil when the index is exhausted.
local function walk(p)
  local key = ({ i = KEYS[9], s = K.free_by_seq, l = K.free_by_load, t = K.free_by_latency })[p.src]
  local spent, size = 0, 8
  while spent < STEP_UNITS do
    local lo, hi = p.after and ('(' .. p.after) or '-inf', '+inf'
    if sel == 'r' then
      if p.phase == 1 and not p.after then lo = '(' .. p.cursor end
      if p.phase == 2 then hi = p.cursor end
    end
    local page = redis.call('ZRANGEBYSCORE', key, lo, hi, 'WITHSCORES', 'LIMIT', 0, size)
    spent = spent + 8
    if #page == 0 then
      if sel == 'r' and p.phase == 1 then
        p.phase, p.after = 2, nil
      else
        return nil, nil
      end
    else
      local seqs, scores = {}, {}
      for i = 1, #page, 2 do
        seqs[#seqs + 1] = page[i]; scores[#seqs] = page[i + 1]
      end
      local cands, stop = seqs, nil
      local C = (p.src == 'l' or p.src == 't') and corrections(p.src) or nil
      if p.src ~= 's' then
        -- Members of KEYS[9] may be full or inactive; entries of the lazy
        -- indexes may be stale, and are corrected here.
        local words = read_words(K, seqs)
        spent = spent + 2 * #seqs
        cands = {}
        for i, seq in ipairs(seqs) do
          local room, _, _, active = word_decode(words[i])
          if p.src == 'i' then
            if active and room > 0 then cands[#cands + 1] = seq end
          elseif not C.fix(seq, words[i]) then
            cands[#cands + 1] = seq
          elseif active and room > 0 then
            -- Its indexed load lagged: it moves further on, so what lies
            -- after it must be read again, in order.
            stop = i
            break
          end
        end
        if C then spent = spent + 2 * C.send() end
      end
      local hits, units = cands, 0
      if not (p.src == 'i' and plan == 'x') and plan ~= '' then hits, units = passing(cands, true) end
      spent = spent + units
      if hits[1] then return hits[1] end
      if stop then
        if stop > 1 then p.after = scores[stop - 1] end
      else
        p.after = scores[#seqs]
      end
      if size < 64 then size = size * 2 end
    end
  end
  return nil, p
end

-- The selector's choice among `cands` (every candidate of the filter, few
-- enough for one call), or nil.
local function best_of(cands)
  local words = read_words(K, cands)
  local q, qw = {}, {}
  for i, seq in ipairs(cands) do
    local room, _, _, active = word_decode(words[i])
    if active and room > 0 then
      q[#q + 1] = seq; qw[#q] = words[i]
    end
  end
  if plan ~= 'x' then
    local kept = passing(q, false)
    local keep = {}
    for _, seq in ipairs(kept) do keep[seq] = true end
    local q2, qw2 = {}, {}
    for i, seq in ipairs(q) do
      if keep[seq] then q2[#q2 + 1] = seq; qw2[#q2] = qw[i] end
    end
    q, qw = q2, qw2
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
        local _, load = word_decode(qw[i])
        keys[i] = tonumber(score_load(load, s))
      elseif after ~= nil and s <= after then
        keys[i] = s + LIMIT_MAX_SEQ + 1 -- round robin: after the cursor first
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
  if plan == '' then return sel end
  local per = 2 + (plan == 'x' and 0 or FILTER_UNITS)
  if plan == 'x' or plan == 'v' then
    if sel == 'f' or sel == 'r' then return 'i' end
    if redis.call('ZCARD', KEYS[9]) * per <= STEP_UNITS then
      return nil, redis.call('ZRANGE', KEYS[9], 0, -1)
    end
    return sel
  end
  if plan == 'g' then
    -- The located proxies in the circle's cells, counted in O(log n):
    -- few enough, they are read and judged here; else the circle is
    -- crowded (or its cells are) and the selector's index is walked.
    local cap = math.floor(STEP_UNITS / per)
    local held = redis.call('ZCARD', KEYS[10])
    for _, r in ipairs(ranges) do held = held + redis.call('ZCOUNT', KEYS[9], r[1], r[2]) end
    if held <= cap then
      local found = redis.call('ZRANGE', KEYS[10], 0, -1)
      for _, r in ipairs(ranges) do
        for _, s in ipairs(redis.call('ZRANGEBYSCORE', KEYS[9], r[1], r[2])) do found[#found + 1] = s end
      end
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
