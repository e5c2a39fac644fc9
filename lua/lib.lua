-- lib.lua: helpers shared by every pharox script, prepended after
-- layout.lua (see that file for the keys, slots and words). Each script
-- stays one EVALSHA with no globals.
--
-- Rules every script follows: every ARGV is checked, and everything a call
-- could refuse is checked, before its first write, so a call fails whole or
-- not at all; no variadic call carries more than LIMIT_CHUNK items. What
-- only some calls need is built on demand (reclaiming(), filters()), since
-- every function defined here is created again by every call.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fail(msg)
  return redis.error_reply('PHAROX ' .. msg)
end

-- ARGV[i] as an integer in [lo, hi], written in canonical decimal, or nil.
local function arg_int(i, lo, hi)
  local s = ARGV[i]
  if type(s) ~= 'string' or #s > 16 or not (s == '0' or string.match(s, '^-?[1-9]%d*$')) then
    return nil
  end
  local v = tonumber(s)
  if v < lo or v > hi then
    return nil
  end
  return v
end

local function counter(K, slot)
  return redis.call('BITFIELD_RO', K.counters, 'GET', 'i64', slot)[1]
end

local function pool_exists(K)
  return counter(K, SLOT_EXISTS) == 1
end

-- `cmd key items...` in calls of at most LIMIT_CHUNK items of `width`
-- values each; the replies of table-valued calls are concatenated.
local function chunked(cmd, key, items, width)
  local step = LIMIT_CHUNK * width
  if #items == 0 then
    return {}
  elseif #items <= step then
    return redis.call(cmd, key, unpack(items))
  end
  local out = {}
  for i = 1, #items, step do
    local r = redis.call(cmd, key, unpack(items, i, math.min(i + step - 1, #items)))
    if type(r) == 'table' then
      for _, v in ipairs(r) do out[#out + 1] = v end
    end
  end
  return out
end

-- The words of `seqs`, in order.
local function read_words(K, seqs)
  local get = {}
  for _, seq in ipairs(seqs) do
    get[#get + 1] = 'GET'; get[#get + 1] = 'i64'; get[#get + 1] = word_slot(seq)
  end
  return chunked('BITFIELD_RO', K.counters, get, 3)
end

-- Puts `seq` into free_by_latency at its stored score; returns the flag
-- its word then needs (0 when it has no score).
local function enter_latency(K, seq)
  local latency = redis.call('HGET', K.latency_by_seq, seq)
  if not latency then return 0 end
  redis.call('ZADD', K.free_by_latency, latency, seq)
  return WORD_IN_LATENCY
end

-- Ends one lease `member` of leases_by_deadline (on proxy `seq`), counting
-- it as expired when `expired`; returns whether it held capacity. The
-- decrement refuses (OVERFLOW FAIL) a proxy without live leases: such a
-- member is not one pharox wrote, and is dropped without harm. The index
-- rules are those of freeing()'s F.note, for one proxy and one lease.
local function end_lease(K, member, seq, expired)
  redis.call('ZREM', K.leases_by_deadline, member)
  redis.call('HDEL', K.lease_by_token, string.match(member, MEMBER_TOKEN_PATTERN))
  local r = redis.call('BITFIELD', K.counters, 'OVERFLOW', 'FAIL', 'INCRBY', 'u32', word_low(seq),
    WORD_RELEASE, 'GET', 'i64', word_slot(seq))
  if not r[1] or r[1] == 0 then
    -- Load 0 (refused), or load 0 with room 65535 (taken to room 0 and
    -- load 0, which no proxy has: put back).
    if r[1] == 0 then
      redis.call('BITFIELD', K.counters, 'INCRBY', 'u32', word_low(seq), WORD_ACQUIRE)
    end
    redis.log(redis.LOG_WARNING, 'pharox: dropped a malformed lease member of ' .. K.leases_by_deadline)
    return false
  end
  local room, load, indexed, active, in_load, in_latency = word_decode(r[2])
  local bits = {}
  if load == 0 then
    bits[#bits + 1] = 'INCRBY'; bits[#bits + 1] = 'i64'; bits[#bits + 1] = SLOT_LEASED; bits[#bits + 1] = '-1'
  end
  if expired then
    bits[#bits + 1] = 'INCRBY'; bits[#bits + 1] = 'i64'; bits[#bits + 1] = SLOT_EXPIRED; bits[#bits + 1] = '1'
  end
  if active then
    if room == 1 then redis.call('ZADD', K.free_by_seq, seq, seq) end
    local delta = 0
    if not in_load or load < indexed then
      redis.call('ZADD', K.free_by_load, score_load(load, seq), seq)
      delta = (in_load and 0 or WORD_IN_LOAD) + (load - indexed) * WORD_INDEXED_UNIT
    end
    if not in_latency then delta = delta + enter_latency(K, seq) end
    if delta ~= 0 then
      bits[#bits + 1] = 'INCRBY'; bits[#bits + 1] = 'i64'; bits[#bits + 1] = word_slot(seq); bits[#bits + 1] = int(delta)
    end
  end
  if #bits > 0 then redis.call('BITFIELD', K.counters, unpack(bits)) end
  return true
end

-- Removes the lease_by_token entries of lease `members` that end (the
-- tokens of members that have one).
local function forget_tokens(K, members)
  local tokens = {}
  for i = 1, #members do
    local t = string.match(members[i], MEMBER_TOKEN_PATTERN)
    if t then tokens[#tokens + 1] = t end
  end
  if #tokens > 0 then chunked('HDEL', K.lease_by_token, tokens, 1) end
end

-- Ending leases: what a proxy needs when some of its leases end. Built on
-- demand (F = freeing()): only calls that end a lease pay for it.
local function freeing()
  local F = {}

  -- Index updates for proxies whose leases ended, collected by F.note
  -- and sent by F.apply in a few chunked calls.
  function F.edits()
    return { free = {}, load = {}, latency = {}, bits = {}, idle = 0, expired = 0 }
  end

  -- Records what `freed` leases of `seq` ending (its word now `w`) call for:
  -- back into free_by_seq if it was full, into free_by_load at its load (or
  -- its entry lowered), into free_by_latency if it had left it, and the
  -- LEASED counter when it has no lease left.
  function F.note(E, seq, w, freed)
    local room, load, indexed, active, in_load, in_latency = word_decode(w)
    if load == 0 then E.idle = E.idle + 1 end
    if not active then return end
    if room == freed then
      E.free[#E.free + 1] = seq; E.free[#E.free + 1] = seq
    end
    local delta = 0
    if not in_load then
      E.load[#E.load + 1] = score_load(load, seq); E.load[#E.load + 1] = seq
      delta = WORD_IN_LOAD + (load - indexed) * WORD_INDEXED_UNIT
    elseif load < indexed then
      E.load[#E.load + 1] = score_load(load, seq); E.load[#E.load + 1] = seq
      delta = (load - indexed) * WORD_INDEXED_UNIT
    end
    if delta ~= 0 then
      E.bits[#E.bits + 1] = 'INCRBY'; E.bits[#E.bits + 1] = 'i64'
      E.bits[#E.bits + 1] = word_slot(seq); E.bits[#E.bits + 1] = int(delta)
    end
    if not in_latency then E.latency[#E.latency + 1] = seq end
  end

  function F.apply(K, E)
    if #E.free > 0 then chunked('ZADD', K.free_by_seq, E.free, 2) end
    if #E.load > 0 then chunked('ZADD', K.free_by_load, E.load, 2) end
    local bits = E.bits
    if #E.latency > 0 then
      local scores = chunked('HMGET', K.latency_by_seq, E.latency, 1)
      local add = {}
      for i, seq in ipairs(E.latency) do
        if scores[i] then
          add[#add + 1] = scores[i]; add[#add + 1] = seq
          bits[#bits + 1] = 'INCRBY'; bits[#bits + 1] = 'i64'
          bits[#bits + 1] = word_slot(seq); bits[#bits + 1] = int(WORD_IN_LATENCY)
        end
      end
      if #add > 0 then chunked('ZADD', K.free_by_latency, add, 2) end
    end
    if E.idle > 0 then
      bits[#bits + 1] = 'INCRBY'; bits[#bits + 1] = 'i64'; bits[#bits + 1] = SLOT_LEASED
      bits[#bits + 1] = int(-E.idle)
    end
    if E.expired > 0 then
      bits[#bits + 1] = 'INCRBY'; bits[#bits + 1] = 'i64'; bits[#bits + 1] = SLOT_EXPIRED
      bits[#bits + 1] = int(E.expired)
    end
    if #bits > 0 then chunked('BITFIELD', K.counters, bits, 4) end
  end

  return F
end

-- Ending many leases at once, for reclaiming.
local function reclaiming()
  local F = freeing()
  local R = {}

  -- What ending the lease members `members` would do, read without
  -- writing: { members, order = seqs, freed = seq -> leases, n }.
  --
  -- Members pharox cannot have written are dropped (removed, logged by
  -- the server, never applied): a sequence outside the pool's proxies, a
  -- proxy that does not exist, or more members for a proxy than it has
  -- live leases (only that many are applied).
  function R.plan(K, members)
    local order, freed, dropped = {}, {}, 0
    for i = 1, #members do
      local s = string.match(members[i], MEMBER_PATTERN)
      local num = s and tonumber(s)
      if num == nil or num < LIMIT_FIRST_SEQ or num > LIMIT_MAX_SEQ then
        dropped = dropped + 1
      else
        local seq = int(num)
        if freed[seq] == nil then
          freed[seq] = 0
          order[#order + 1] = seq
        end
        freed[seq] = freed[seq] + 1
      end
    end
    local plan = { members = members, order = {}, freed = freed, n = 0 }
    if #order > 0 then
      -- One read of the last sequence and every named word.
      local get = { 'GET', 'i64', SLOT_LAST_SEQ }
      for _, seq in ipairs(order) do
        get[#get + 1] = 'GET'; get[#get + 1] = 'i64'; get[#get + 1] = word_slot(seq)
      end
      local words = chunked('BITFIELD_RO', K.counters, get, 3)
      for i, seq in ipairs(order) do
        local _, load = word_decode(words[i + 1])
        if tonumber(seq) > words[1] then load = 0 end
        if load < freed[seq] then
          dropped = dropped + freed[seq] - load
          freed[seq] = load
        end
        if freed[seq] > 0 then
          plan.order[#plan.order + 1] = seq
          plan.n = plan.n + freed[seq]
        end
      end
    end
    if dropped > 0 then
      redis.log(redis.LOG_WARNING, 'pharox: dropped ' .. dropped .. ' malformed lease member(s) of ' .. K.leases_by_deadline)
    end
    return plan
  end

  -- Applies a plan of R.plan, counting its leases as expired when
  -- `expired`; returns how many leases ended. One decrement and one index
  -- update per proxy, however many of its leases end.
  function R.apply_plan(K, plan, expired)
    if #plan.members == 0 then return 0 end
    chunked('ZREM', K.leases_by_deadline, plan.members, 1)
    forget_tokens(K, plan.members)
    if plan.n == 0 then return 0 end
    local incr = {}
    for _, seq in ipairs(plan.order) do
      incr[#incr + 1] = 'INCRBY'; incr[#incr + 1] = 'i64'; incr[#incr + 1] = word_slot(seq)
      incr[#incr + 1] = plan.freed[seq] == 1 and WORD_RELEASE or int(-65535 * plan.freed[seq])
    end
    local words = chunked('BITFIELD', K.counters, incr, 4)
    local E = F.edits()
    for i, seq in ipairs(plan.order) do
      F.note(E, seq, words[i], plan.freed[seq])
    end
    if expired then E.expired = plan.n end
    F.apply(K, E)
    return plan.n
  end

  -- The leases of the pool whose deadline is <= now, at most `limit`.
  function R.due(K, now, limit)
    return redis.call('ZRANGEBYSCORE', K.leases_by_deadline, '-inf', now, 'LIMIT', 0, limit)
  end

  -- After reclaiming, sets the expiry hint to the earliest deadline left,
  -- or far in the future when no lease is left.
  function R.rehint(K)
    local first = redis.call('ZRANGE', K.leases_by_deadline, 0, 0, 'WITHSCORES')
    redis.call('BITFIELD', K.counters, 'SET', 'i64', SLOT_EXPIRY_HINT, first[2] or '9007199254740991')
  end

  -- Reclaims up to `limit` due leases (counted as expired); returns how many.
  function R.reclaim(K, now, limit)
    local n = R.apply_plan(K, R.plan(K, R.due(K, now, limit)), true)
    R.rehint(K)
    return n
  end

  return R
end

-- Reclaims due leases if the expiry hint says one may be due; returns how many.
local function reclaim_due(K, now, limit, hint)
  if limit == 0 or hint > now then return 0 end
  return reclaiming().reclaim(K, now, limit)
end
