-- health.lua: record a health check (status, checked_at, latency) on a
-- proxy. A proxy that is not active leaves the free indexes at once. The
-- client decides staleness on the JSON it read; the script applies the
-- result only if that JSON is still the stored one.
--
-- KEYS: 1 counters, 2 leases_by_deadline, 3 free_by_seq, 4 free_by_load,
--       5 free_by_latency, 6 latency_by_seq, 7 seq_by_id, 8 proxy_by_seq
-- ARGV: 1 proxy id, 2 the stored JSON the client read, 3 new proxy JSON,
--       4 '1' if the new status is active, else '0',
--       5 capacity (1 .. LIMIT_MAX_CAPACITY), 6 latency key
--       (0 .. LIMIT_MAX_LATENCY_KEY)
-- Returns: {seq, live leases} when applied; {0} unknown proxy; {-1} no such
--          pool; {-2} the stored proxy changed (re-read and retry).
--          Error reply for bad ARGV or a capacity below the live leases.

local id, expected, json = ARGV[1], ARGV[2], ARGV[3]
local bad, cap, latkey = proxy_args()
if bad then return fail('bad argument: ' .. bad) end
if expected == nil or expected == '' then return fail('bad argument: expected JSON') end

local K = { counters = KEYS[1], leases_by_deadline = KEYS[2], free_by_seq = KEYS[3],
  free_by_load = KEYS[4], free_by_latency = KEYS[5], latency_by_seq = KEYS[6],
  seq_by_id = KEYS[7], proxy_by_seq = KEYS[8] }
if not pool_exists(K) then return { -1 } end
local seq = redis.call('HGET', K.seq_by_id, id)
if not seq then return { 0 } end
if redis.call('HGET', K.proxy_by_seq, seq) ~= expected then return { -2 } end
local w = counter(K, word_slot(seq))
local _, load = word_decode(w)
if cap < load then return fail('bad argument: capacity below live leases') end
return { tonumber(seq), write_proxy(K, seq, w, cap, ARGV[4] == '1', json, latkey) }
