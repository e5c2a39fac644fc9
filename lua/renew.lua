-- renew.lua: move a live lease's deadline to now + duration (Redis clock).
--
-- KEYS: 1 counters, 2 leases_by_deadline, 3 free_by_seq, 4 free_by_load,
--       5 free_by_latency, 6 latency_by_seq
-- ARGV: 1 lease member (member_build in layout.lua), 2 duration in ms
--       (1 .. LIMIT_MAX_DURATION_MS)
-- Returns: {now_ms, deadline_ms} when renewed; {0} when the lease is not
--          held. A lease found past its deadline is reclaimed (counted as
--          expired) and answers {0}. Error reply for bad ARGV.

local member = ARGV[1]
local seq = member and string.match(member, MEMBER_PATTERN)
if seq == nil or tonumber(seq) < LIMIT_FIRST_SEQ or tonumber(seq) > LIMIT_MAX_SEQ then
  return fail('bad argument: lease')
end
local dur = arg_int(2, 1, LIMIT_MAX_DURATION_MS)
if dur == nil then return fail('bad argument: duration') end
local K = { counters = KEYS[1], leases_by_deadline = KEYS[2], free_by_seq = KEYS[3],
  free_by_load = KEYS[4], free_by_latency = KEYS[5], latency_by_seq = KEYS[6] }

local deadline = redis.call('ZSCORE', K.leases_by_deadline, member)
if not deadline then return { 0 } end
local now = now_ms()
if tonumber(deadline) <= now then
  end_lease(K, member, seq, true)
  return { 0 }
end
local until_ms = now + dur
redis.call('ZADD', K.leases_by_deadline, 'XX', int(until_ms), member)
local hint = counter(K, SLOT_EXPIRY_HINT)
if until_ms < hint then
  redis.call('BITFIELD', K.counters, 'SET', 'i64', SLOT_EXPIRY_HINT, int(until_ms))
end
return { now, until_ms }
