-- get_lease.lua: a live lease by the reference its id carries. Read-only.
--
-- KEYS: 1 leases_by_deadline, 2 lease_by_token, 3 proxy_by_seq
-- ARGV: 1 the reference "token:nonce" (as release.lua takes it), or a
--         lease member
-- Returns: {now_ms, member, deadline ms, proxy JSON} when the lease is held
--          and before its deadline (Redis clock); {0} otherwise. Error reply
--          for bad ARGV.

local K = { leases_by_deadline = KEYS[1], lease_by_token = KEYS[2], proxy_by_seq = KEYS[3] }
local member, seq = lease_arg(K, 1)
if member == nil then return fail('bad argument: lease') end
if not member then return { 0 } end
local deadline = redis.call('ZSCORE', K.leases_by_deadline, member)
local now = now_ms()
if not deadline or tonumber(deadline) <= now then return { 0 } end
return { now, member, deadline, redis.call('HGET', K.proxy_by_seq, seq) }
