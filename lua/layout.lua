-- layout.lua: the layout of a pool's data, in one place. scripts.rs
-- prepends this file first to every script; crates/pharox-redis/src/layout.rs
-- mirrors every name and number here, and a test runs both side by side.
--
-- Names are plain locals, not fields of tables: every EVALSHA runs this
-- file again, and a table costs Redis about 350 instructions per field
-- per call.
--
-- Keys of a pool (named in keys.rs, passed in KEYS, one hash tag):
--   counters             string read with BITFIELD: the pool's counters in
--                        the SLOT_* slots, then one word per proxy at slot
--                        `seq` (LIMIT_FIRST_SEQ .. LIMIT_MAX_SEQ)
--   leases_by_deadline   zset lease member (member_build) -> deadline ms
--   lease_by_token       hash token -> lease member: exactly the members of
--                        leases_by_deadline (a lease id carries its token
--                        and nonce, so a release by id finds its member)
--   free_by_seq          zset seq -> seq: exactly the active proxies with room
--   free_by_load         zset seq -> score_load(load as indexed, seq): every
--                        active proxy with room, and maybe some full ones
--                        (removed when met); an indexed load may lag below
--                        the load (corrected when met), never above it
--   free_by_latency      zset seq -> score_latency(key, seq): the same
--                        membership rule as free_by_load, exact scores
--   latency_by_seq       hash seq -> score_latency(key, seq), every proxy
--   all_by_seq           zset seq -> seq: every proxy
--   seq_by_id            hash proxy id -> seq
--   proxy_by_seq         hash seq -> proxy JSON
--   located              geo set of the proxies within GEO's latitudes
--   polar_by_seq         zset seq -> seq: located proxies beyond them
--   by_value:<f>:<v>     zset seq -> seq: every proxy whose field f is v
--   value_index_keys     set of the pool's by_value key names
--   retired_token        string: last token of removed incarnations

-- Integers up to 2^53 as exact decimal strings (Lua's tostring and `..`
-- round numbers to 14 digits).
local function int(x)
  return string.format('%d', x)
end

-- Slots of the counters string (BITFIELD offsets of signed 64-bit fields).
local SLOT_TOKEN = '#0'        -- the base plus leases granted (the last token less SLOT_TOKEN_SKIP)
local SLOT_EXPIRED = '#1'      -- leases ended by expiry, over the pool's life
local SLOT_CURSOR = '#2'       -- round robin: the sequence leased last
local SLOT_TOKEN_BASE = '#3'   -- the token when the pool was created
local SLOT_ACTIVE = '#4'       -- proxies whose status is active
local SLOT_LEASED = '#5'       -- proxies holding at least one lease
local SLOT_LAST_SEQ = '#6'     -- the last sequence handed out
local SLOT_EXISTS = '#7'       -- 1 while the pool exists
local SLOT_GENERATION = '#8'   -- proxy-data generation, bumped by every proxy change
local SLOT_EXPIRY_HINT = '#9'  -- no lease ends before this (ms): a lower bound
local SLOT_TOKEN_SKIP = '#10'  -- tokens skipped to follow the clock (token_floor)
-- #11 .. #15 are reserved.

local LIMIT_FIRST_SEQ = 16
-- A word's BITFIELD offset (64 * seq bits) must stay inside the largest
-- string Redis holds (2^32 bits), so sequences end at 2^26 - 1.
local LIMIT_MAX_SEQ = 67108863
local LIMIT_MAX_CAPACITY = 65535          -- room and load fit 16 bits each
local LIMIT_MAX_PROXIES = 1000000         -- live proxies of one pool
local LIMIT_MAX_BATCH = 10000             -- leases reclaimed by one call
local LIMIT_MAX_DURATION_MS = 86400000    -- a lease lasts at most a day
local LIMIT_NONCE_END = 4398046511104     -- nonces are below 2^42 (lease_id.rs)
local LIMIT_MAX_TOKEN = 281474976710655   -- a lease id carries 48 bits of token
local LIMIT_GENERATION_END = 1099511627776 -- first generations are below 2^40
local LIMIT_MAX_LATENCY_KEY = 1048575     -- latency keys fit 20 bits
local LIMIT_FILTER_BYTES = 16384          -- a filter's JSON
local LIMIT_FILTER_NODES = 256            -- filter objects in one tree
local LIMIT_FILTER_DEPTH = 8              -- nesting below the top filter
local LIMIT_FILTER_VALUE_BYTES = 256      -- one string of a filter
-- Items per variadic call: Lua's unpack stops near 8,000 values.
local LIMIT_CHUNK = 1000

-- Fencing tokens follow the server's clock as well as the pool's counter:
-- a lease granted at `now` (ms) gets a token of at least token_floor(now),
-- TOKEN_PER_MS tokens per millisecond since TOKEN_EPOCH_MS. A primary that
-- lost its last writes (an asynchronous replica promoted, a restart from an
-- AOF that lacked the last second) has an older counter, but its clock has
-- moved on, so the tokens it issues are still above every token issued
-- before the loss (README "Durability and failover"). 256 per ms is far
-- above what one pool can lease (one Redis core: about 50 per ms), and 48
-- bits of token last until 2060.
local TOKEN_EPOCH_MS = 1767225600000 -- 2026-01-01T00:00:00Z
local TOKEN_PER_MS = 256
local function token_floor(now)
  if now <= TOKEN_EPOCH_MS then return 0 end
  return (now - TOKEN_EPOCH_MS) * TOKEN_PER_MS
end

-- A proxy word, below 2^51:
--   bits 0-15 room (free slots)          bits 16-31 load (live leases)
--   bits 32-47 load as indexed in free_by_load
--   bit 48 active   bit 49 in free_by_load   bit 50 in free_by_latency
-- room + load is the capacity (at least 1), so a proxy's word is never 0,
-- and 0 means no proxy has that sequence.
local WORD_LOAD_UNIT = 65536
local WORD_INDEXED_UNIT = 4294967296      -- 2^32
local WORD_ACTIVE = 281474976710656       -- 2^48
local WORD_IN_LOAD = 562949953421312      -- 2^49
local WORD_IN_LATENCY = 1125899906842624  -- 2^50
local WORD_ACQUIRE = '65535'              -- INCRBY delta of one lease: load + 1, room - 1
local WORD_RELEASE = '-65535'             -- and of one lease ending

-- room, load, indexed load, active, in free_by_load, in free_by_latency
local function word_decode(w)
  local flags = math.floor(w / WORD_ACTIVE)
  return w % 65536, math.floor(w / 65536) % 65536, math.floor(w / WORD_INDEXED_UNIT) % 65536,
    flags % 2 == 1, math.floor(flags / 2) % 2 == 1, math.floor(flags / 4) % 2 == 1
end

-- The BITFIELD offset of proxy `seq`'s word (i64).
local function word_slot(seq)
  return '#' .. seq
end

-- The bit offset of the low 32 bits of `seq`'s word (load and room) as one
-- u32: a lease ending is INCRBY u32 -65535 there, which OVERFLOW FAIL
-- refuses when the load is 0.
local function word_low(seq)
  return int(64 * tonumber(seq) + 32)
end

-- Scores of the ordered indexes: unique per proxy (the sequence breaks
-- ties), exact in a double (below 2^53).
local function score_load(load, seq)
  return int(load * 4294967296 + tonumber(seq))
end

local function score_latency(key, seq)
  return int(key * 4294967296 + tonumber(seq))
end

-- A lease is the member "seq:token:nonce:acquired_ms:consumer" of
-- leases_by_deadline; MEMBER_PATTERN captures its sequence,
-- MEMBER_TOKEN_PATTERN its token, MEMBER_REF_PATTERN "token:nonce".
local MEMBER_PATTERN = '^(%d+):%d+:%d+:%d+:.'
local MEMBER_TOKEN_PATTERN = '^%d+:(%d+):'
local MEMBER_REF_PATTERN = '^%d+:(%d+:%d+):'

local function member_build(seq, token, nonce, acquired_ms, consumer)
  return int(seq) .. ':' .. int(token) .. ':' .. int(nonce) .. ':' .. int(acquired_ms) .. ':' .. consumer
end
