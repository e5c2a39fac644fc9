-- layout.lua: the layout of a pool's data, in one place. scripts.rs
-- prepends this file first to every script; crates/pharox-redis/src/layout.rs
-- mirrors every name and number here, and a test runs both side by side.
--
-- Keys of a pool (named in keys.rs, passed in KEYS, one hash tag):
--   counters             string read with BITFIELD: the pool's counters in
--                        the slots of SLOT, then one WORD per proxy at slot
--                        `seq` (LIMIT.FIRST_SEQ .. LIMIT.MAX_SEQ)
--   leases_by_deadline   zset lease member (MEMBER) -> deadline ms
--   free_by_seq          zset seq -> seq: exactly the active proxies with room
--   free_by_load         zset seq -> SCORE.load(load, seq): the same members
--   free_by_latency      zset seq -> SCORE.latency(key, seq): the same members
--   latency_by_seq       hash seq -> SCORE.latency(key, seq), every proxy
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

-- Slots of the counters string (BITFIELD offsets, signed 64-bit).
local SLOT = {
  TOKEN = '#0',        -- last fencing token issued
  EXPIRED = '#1',      -- leases ended by expiry, over the pool's life
  CURSOR = '#2',       -- round robin: the sequence leased last
  TOKEN_BASE = '#3',   -- the token when the pool was created
  ACTIVE = '#4',       -- proxies whose status is active
  LEASED = '#5',       -- proxies holding at least one lease
  LAST_SEQ = '#6',     -- the last sequence handed out
  EXISTS = '#7',       -- 1 while the pool exists
  GENERATION = '#8',   -- proxy-data generation, bumped by every proxy change
  EXPIRY_HINT = '#9',  -- no lease ends before this (ms): a lower bound
  -- #10 .. #15 are reserved.
}

local LIMIT = {
  FIRST_SEQ = 16,
  -- A word's BITFIELD offset (64 * seq bits) must stay inside the largest
  -- string Redis holds (2^32 bits), so sequences end at 2^26 - 1.
  MAX_SEQ = 67108863,
  MAX_CAPACITY = 65535,          -- room + load fit 16 bits each
  MAX_PROXIES = 1000000,         -- live proxies of one pool
  MAX_BATCH = 10000,             -- leases reclaimed by one call
  MAX_DURATION_MS = 86400000,    -- a lease lasts at most a day
  NONCE_END = 17592186044416,    -- nonces are below 2^44
  GENERATION_END = 1099511627776, -- first generations are below 2^40
  MAX_LATENCY_KEY = 1048575,     -- latency keys fit 20 bits
  FILTER_BYTES = 16384,          -- a filter's JSON
  FILTER_NODES = 256,            -- filter objects in a tree
  FILTER_DEPTH = 8,              -- nesting below the top filter
  FILTER_VALUE_BYTES = 256,      -- one string of a filter
  -- Items per variadic call: Lua's unpack stops near 8,000 values.
  CHUNK = 1000,
}

-- A proxy word, below 2^33: bits 0-15 room (free slots), bits 16-31 load
-- (live leases), bit 32 active. room + load is the capacity (at least 1),
-- so a proxy's word is never 0, and 0 means no proxy has that sequence.
local WORD = {
  LOAD_UNIT = 65536,
  ACTIVE_BIT = 4294967296,
  ACQUIRE = '65535',    -- the INCRBY delta of one lease: load + 1, room - 1
  RELEASE = '-65535',   -- and of one lease ending
}

function WORD.room(w)
  return w % 65536
end

function WORD.load(w)
  return math.floor(w / 65536) % 65536
end

function WORD.active(w)
  return math.floor(w / 4294967296) % 2 == 1
end

-- Active with room: the proxies the free_by_* indexes hold.
function WORD.free(w)
  return WORD.active(w) and WORD.room(w) > 0
end

function WORD.pack(room, load, active)
  return room + load * 65536 + (active and 4294967296 or 0)
end

function WORD.slot(seq)
  return '#' .. seq
end

-- Scores of the ordered indexes: unique per proxy (the sequence breaks
-- ties), exact in a double (below 2^53).
local SCORE = {}

function SCORE.load(load, seq)
  return load * 4294967296 + seq
end

function SCORE.latency(key, seq)
  return key * 4294967296 + seq
end

-- A lease is the member "seq:token:nonce:acquired_ms:consumer" of
-- leases_by_deadline; MEMBER.PATTERN captures its sequence.
local MEMBER = {
  PATTERN = '^(%d+):%d+:%d+:%d+:.',
}

function MEMBER.build(seq, token, nonce, acquired_ms, consumer)
  return int(seq) .. ':' .. int(token) .. ':' .. int(nonce) .. ':' .. int(acquired_ms) .. ':' .. consumer
end
