-- lib.lua: helpers shared by every pharox script, prepended after
-- layout.lua (see that file for the keys, slots and words). Each script
-- stays one EVALSHA with no globals.
--
-- Rules every script follows: every ARGV is checked, and everything a call
-- could refuse is checked, before its first write, so a call fails whole or
-- not at all; no variadic call carries more than LIMIT.CHUNK items.

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
  if type(s) ~= 'string' or not (string.match(s, '^-?[1-9]%d*$') or s == '0') or #s > 16 then
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
  return counter(K, SLOT.EXISTS) == 1
end

-- `cmd key items...` in calls of at most LIMIT.CHUNK items of `width`
-- values each; the replies of table-valued calls are concatenated.
local function chunked(cmd, key, items, width)
  local out, step = {}, LIMIT.CHUNK * width
  for i = 1, #items, step do
    local r = redis.call(cmd, key, unpack(items, i, math.min(i + step - 1, #items)))
    if type(r) == 'table' then
      for _, v in ipairs(r) do out[#out + 1] = v end
    end
  end
  return out
end

-- The words of `seqs`, in order (one BITFIELD per chunk).
local function read_words(K, seqs)
  local get = {}
  for _, seq in ipairs(seqs) do
    get[#get + 1] = 'GET'; get[#get + 1] = 'i64'; get[#get + 1] = WORD.slot(seq)
  end
  return chunked('BITFIELD_RO', K.counters, get, 3)
end

-- Index edits for many proxies, collected by note_change and sent by
-- apply_edits in a few chunked calls.
local function new_edits()
  return { gone = {}, free = {}, load = {}, latency = {}, leased = 0, active = 0, expired = 0 }
end

-- Records what moving proxy `seq` (a string) from word `old` to word `new`
-- changes: the free_by_* indexes hold exactly the active proxies with room,
-- free_by_load at their current load; LEASED and ACTIVE count words.
local function note_change(E, seq, old, new)
  local was, is = WORD.free(old), WORD.free(new)
  local load_old, load_new = WORD.load(old), WORD.load(new)
  if is then
    if not was then
      E.free[#E.free + 1] = seq; E.free[#E.free + 1] = seq
      E.latency[#E.latency + 1] = seq
    end
    if not was or load_old ~= load_new then
      E.load[#E.load + 1] = int(SCORE.load(load_new, tonumber(seq))); E.load[#E.load + 1] = seq
    end
  elseif was then
    E.gone[#E.gone + 1] = seq
  end
  if (load_old > 0) ~= (load_new > 0) then
    E.leased = E.leased + (load_new > 0 and 1 or -1)
  end
  if WORD.active(old) ~= WORD.active(new) then
    E.active = E.active + (WORD.active(new) and 1 or -1)
  end
end

local function apply_edits(K, E)
  if #E.gone > 0 then
    chunked('ZREM', K.free_by_seq, E.gone, 1)
    chunked('ZREM', K.free_by_load, E.gone, 1)
    chunked('ZREM', K.free_by_latency, E.gone, 1)
  end
  if #E.free > 0 then chunked('ZADD', K.free_by_seq, E.free, 2) end
  if #E.load > 0 then chunked('ZADD', K.free_by_load, E.load, 2) end
  if #E.latency > 0 then
    local scores = chunked('HMGET', K.latency_by_seq, E.latency, 1)
    local add = {}
    for i, seq in ipairs(E.latency) do
      -- Every proxy has a latency score (write_proxy sets it with the word).
      add[#add + 1] = scores[i]; add[#add + 1] = seq
    end
    chunked('ZADD', K.free_by_latency, add, 2)
  end
  local bf = {}
  for slot, delta in pairs({ [SLOT.LEASED] = E.leased, [SLOT.ACTIVE] = E.active, [SLOT.EXPIRED] = E.expired }) do
    if delta ~= 0 then
      bf[#bf + 1] = 'INCRBY'; bf[#bf + 1] = 'i64'; bf[#bf + 1] = slot; bf[#bf + 1] = int(delta)
    end
  end
  if #bf > 0 then redis.call('BITFIELD', K.counters, unpack(bf)) end
end

-- What ending the lease members `members` (of leases_by_deadline) would do,
-- read without writing: { members, order = seqs, freed = seq -> leases,
-- words = seq -> word, n = leases ended }.
--
-- Members pharox cannot have written are dropped (removed, logged by the
-- server, never applied): a sequence outside the pool's proxies, a proxy
-- that does not exist, or more members for a proxy than it has live leases
-- (only that many are applied).
local function plan_end(K, members)
  local order, freed, dropped = {}, {}, 0
  for i = 1, #members do
    local s = string.match(members[i], MEMBER.PATTERN)
    local num = s and tonumber(s)
    if num == nil or num < LIMIT.FIRST_SEQ or num > LIMIT.MAX_SEQ then
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
  local plan = { members = members, order = {}, freed = freed, words = {}, n = 0 }
  if #order > 0 then
    -- One read of the last sequence and every named word.
    local get = { 'GET', 'i64', SLOT.LAST_SEQ }
    for _, seq in ipairs(order) do
      get[#get + 1] = 'GET'; get[#get + 1] = 'i64'; get[#get + 1] = WORD.slot(seq)
    end
    local words = chunked('BITFIELD_RO', K.counters, get, 3)
    local last = words[1]
    for i, seq in ipairs(order) do
      local w = words[i + 1]
      local load = tonumber(seq) > last and 0 or WORD.load(w)
      if load < freed[seq] then
        dropped = dropped + freed[seq] - load
        freed[seq] = load
      end
      if freed[seq] > 0 then
        plan.order[#plan.order + 1] = seq
        plan.words[seq] = w
        plan.n = plan.n + freed[seq]
      end
    end
  end
  if dropped > 0 then
    redis.log(redis.LOG_WARNING, 'pharox: dropped ' .. dropped .. ' malformed lease member(s) of ' .. K.leases_by_deadline)
  end
  return plan
end

-- Applies a plan of plan_end, counting its leases as expired when `expired`;
-- returns how many leases ended. One decrement and one index update per
-- proxy, however many of its leases end.
local function apply_end(K, plan, expired)
  if #plan.members == 0 then return 0 end
  chunked('ZREM', K.leases_by_deadline, plan.members, 1)
  if plan.n == 0 then return 0 end
  local incr = {}
  for _, seq in ipairs(plan.order) do
    incr[#incr + 1] = 'INCRBY'; incr[#incr + 1] = 'i64'; incr[#incr + 1] = WORD.slot(seq)
    incr[#incr + 1] = plan.freed[seq] == 1 and WORD.RELEASE or int(-65535 * plan.freed[seq])
  end
  local words = chunked('BITFIELD', K.counters, incr, 4)
  local E = new_edits()
  for i, seq in ipairs(plan.order) do
    note_change(E, seq, plan.words[seq], words[i])
  end
  if expired then E.expired = plan.n end
  apply_edits(K, E)
  return plan.n
end

-- The leases of the pool whose deadline is <= now, at most `limit`.
local function due_leases(K, now, limit)
  return redis.call('ZRANGEBYSCORE', K.leases_by_deadline, '-inf', now, 'LIMIT', 0, limit)
end

-- After reclaiming, sets the expiry hint to the earliest deadline left, or
-- far in the future when no lease is left.
local function rehint(K)
  local first = redis.call('ZRANGE', K.leases_by_deadline, 0, 0, 'WITHSCORES')
  redis.call('BITFIELD', K.counters, 'SET', 'i64', SLOT.EXPIRY_HINT, first[2] or '9007199254740991')
end

-- Reclaims up to `limit` due leases (counted as expired); returns how many.
local function reclaim(K, now, limit)
  local n = apply_end(K, plan_end(K, due_leases(K, now, limit)), true)
  rehint(K)
  return n
end

-- Reclaims due leases if the hint says one may be due; returns how many.
local function reclaim_due(K, now, limit, hint)
  if limit == 0 or hint > now then return 0 end
  return reclaim(K, now, limit)
end
