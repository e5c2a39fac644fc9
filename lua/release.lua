-- release.lua: give a lease back. Idempotent: only the call that removes
-- the lease from leases_by_deadline frees its capacity (I4).
--
-- KEYS: 1 counters, 2 leases_by_deadline, 3 free_by_seq, 4 free_by_load,
--       5 free_by_latency, 6 latency_by_seq, 7 lease_by_token, 8 proxy_by_seq
-- ARGV: 1 the lease: its member (member_build in layout.lua), or the
--         reference "token:nonce" its id carries (token 1 .. LIMIT_MAX_TOKEN,
--         nonce 0 .. LIMIT_NONCE_END - 1, canonical decimals)
--       2 '1' to also answer the lease as it was; absent or '' not to
-- Returns: 1 released, 2 released after its deadline (counted as expired),
--          0 not held (released before, reclaimed, proxy or pool removed);
--          with ARGV[2] = '1': {1 or 2, member, deadline ms, proxy JSON},
--          or {0};
--          an error reply "PHAROX bad argument ..." for bad ARGV.

local want = ARGV[2] == '1'
if not (want or ARGV[2] == nil or ARGV[2] == '') then return fail('bad argument: want lease') end
local K = { counters = KEYS[1], leases_by_deadline = KEYS[2], free_by_seq = KEYS[3],
  free_by_load = KEYS[4], free_by_latency = KEYS[5], latency_by_seq = KEYS[6],
  lease_by_token = KEYS[7], proxy_by_seq = KEYS[8] }
local member, seq = lease_arg(K, 1)
if member == nil then return fail('bad argument: lease') end
local held = { 0 }
if not want then held = 0 end
if not member then return held end

local deadline = redis.call('ZSCORE', K.leases_by_deadline, member)
if not deadline then return held end
local expired = tonumber(deadline) <= now_ms()
if not end_lease(K, member, seq, expired) then return held end
local code = expired and 2 or 1
if not want then return code end
return { code, member, deadline, redis.call('HGET', K.proxy_by_seq, seq) }
