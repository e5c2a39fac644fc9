-- release.lua: give a lease back. Idempotent: only the call that removes
-- the lease from leases_by_deadline frees its capacity (I4).
--
-- KEYS: 1 counters, 2 leases_by_deadline, 3 free_by_seq, 4 free_by_load,
--       5 free_by_latency, 6 latency_by_seq
-- ARGV: 1 lease member (member_build in layout.lua)
-- Returns: 1 released, 2 released after its deadline (counted as expired),
--          0 not held (released before, reclaimed, proxy or pool removed);
--          an error reply "PHAROX bad argument ..." for bad ARGV.

local member = ARGV[1]
local seq = member and string.match(member, MEMBER_PATTERN)
if seq == nil or tonumber(seq) < LIMIT_FIRST_SEQ or tonumber(seq) > LIMIT_MAX_SEQ then
  return fail('bad argument: lease')
end
local K = { counters = KEYS[1], leases_by_deadline = KEYS[2], free_by_seq = KEYS[3],
  free_by_load = KEYS[4], free_by_latency = KEYS[5], latency_by_seq = KEYS[6] }

local deadline = redis.call('ZSCORE', K.leases_by_deadline, member)
if not deadline then return 0 end
local expired = tonumber(deadline) <= now_ms()
if not end_lease(K, member, seq, expired) then return 0 end
if expired then return 2 end
return 1
