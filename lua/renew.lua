-- renew.lua: move a live lease's deadline to now + duration (Redis clock).
--
-- KEYS: 1 counters, 2 leases_by_deadline, 3 free_by_seq, 4 free_by_load,
--       5 free_by_latency, 6 latency_by_seq, 7 lease_by_token, 8 proxy_by_seq
-- ARGV: 1 the lease: its member (member_build in layout.lua), or the
--         reference "token:nonce" its id carries (as release.lua takes it)
--       2 duration in ms (1 .. LIMIT_MAX_DURATION_MS)
--       3 '1' to also answer the lease; absent or '' not to
-- Returns: {now_ms, deadline_ms} when renewed, with ARGV[3] = '1'
--          {now_ms, deadline_ms, member, proxy JSON}; {0} when the lease is
--          not held. A lease found past its deadline is reclaimed (counted
--          as expired) and answers {0}. Error reply for bad ARGV.

local dur = arg_int(2, 1, LIMIT_MAX_DURATION_MS)
if dur == nil then return fail('bad argument: duration') end
local want = ARGV[3] == '1'
if not (want or ARGV[3] == nil or ARGV[3] == '') then return fail('bad argument: want lease') end
local K = { counters = KEYS[1], leases_by_deadline = KEYS[2], free_by_seq = KEYS[3],
  free_by_load = KEYS[4], free_by_latency = KEYS[5], latency_by_seq = KEYS[6],
  lease_by_token = KEYS[7], proxy_by_seq = KEYS[8] }
local member, seq = lease_arg(K, 1)
if member == nil then return fail('bad argument: lease') end
if not member then return { 0 } end

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
if not want then return { now, until_ms } end
return { now, until_ms, member, redis.call('HGET', K.proxy_by_seq, seq) }
