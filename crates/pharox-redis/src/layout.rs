//! The Rust mirror of `lua/layout.lua`: the slots of a pool's `counters`
//! string (`SLOT_*` there), the packing of a proxy word (`WORD_*`,
//! `word_decode`), the index scores (`score_*`), the lease member
//! (`member_build`) and the limits the scripts check (`LIMIT_*`). The scripts and this module must agree;
//! `crates/pharox-redis/tests/layout.rs` runs both side by side on a real
//! Redis.

/// A slot of the `counters` string (a BITFIELD `i64` at `#slot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Slot {
    /// The token base plus the leases granted: the last fencing token
    /// issued, less [`Slot::TokenSkip`].
    Token = 0,
    /// Leases ended by expiry, over the pool's life.
    Expired = 1,
    /// Round robin: the sequence leased last.
    Cursor = 2,
    /// The token when the pool was created.
    TokenBase = 3,
    /// Proxies whose status is active.
    Active = 4,
    /// Proxies holding at least one lease.
    Leased = 5,
    /// The last sequence handed out.
    LastSeq = 6,
    /// 1 while the pool exists.
    Exists = 7,
    /// The proxy-data generation, bumped by every proxy change.
    Generation = 8,
    /// No lease ends before this (ms): a lower bound of the deadlines.
    ExpiryHint = 9,
    /// Tokens skipped so that tokens follow the server clock
    /// ([`token_floor`]).
    TokenSkip = 10,
}

impl Slot {
    /// Every slot, in order.
    pub const ALL: [Slot; 11] = [
        Slot::Token,
        Slot::Expired,
        Slot::Cursor,
        Slot::TokenBase,
        Slot::Active,
        Slot::Leased,
        Slot::LastSeq,
        Slot::Exists,
        Slot::Generation,
        Slot::ExpiryHint,
        Slot::TokenSkip,
    ];

    /// The name of its local in `layout.lua`.
    pub fn lua_name(self) -> &'static str {
        match self {
            Slot::Token => "SLOT_TOKEN",
            Slot::Expired => "SLOT_EXPIRED",
            Slot::Cursor => "SLOT_CURSOR",
            Slot::TokenBase => "SLOT_TOKEN_BASE",
            Slot::Active => "SLOT_ACTIVE",
            Slot::Leased => "SLOT_LEASED",
            Slot::LastSeq => "SLOT_LAST_SEQ",
            Slot::Exists => "SLOT_EXISTS",
            Slot::Generation => "SLOT_GENERATION",
            Slot::ExpiryHint => "SLOT_EXPIRY_HINT",
            Slot::TokenSkip => "SLOT_TOKEN_SKIP",
        }
    }

    /// The BITFIELD offset, `#n`.
    pub fn offset(self) -> String {
        format!("#{}", self as u8)
    }
}

/// The BITFIELD offset of proxy `seq`'s word.
pub fn word_offset(seq: u64) -> String {
    format!("#{seq}")
}

/// The first proxy sequence (slots below it are the pool's counters).
pub const FIRST_SEQ: u64 = 16;
/// The last proxy sequence: a word's offset (64 × seq bits) must stay inside
/// the largest string Redis holds (2^32 bits).
pub const MAX_SEQ: u64 = (1 << 26) - 1;
/// The largest capacity of a proxy (room and load fit 16 bits each).
pub const MAX_CAPACITY: u32 = 65_535;
/// The most live proxies of one pool.
pub const MAX_PROXIES: usize = 1_000_000;
/// The most leases one call reclaims.
pub const MAX_BATCH: usize = 10_000;
/// The longest lease, in ms.
pub const MAX_DURATION_MS: i64 = 86_400_000;
/// Nonces are below this (a lease id carries 42 bits of nonce).
pub const NONCE_END: u64 = 1 << 42;
/// The largest fencing token (a lease id carries 48 bits of token).
pub const MAX_TOKEN: u64 = (1 << 48) - 1;
// Exact in a Lua number (a double) all the way.
const _: () = assert!(MAX_TOKEN < 1 << 53);
/// Where the clock's floor of fencing tokens starts: 2026-01-01T00:00:00Z.
pub const TOKEN_EPOCH_MS: i64 = 1_767_225_600_000;
/// Tokens per millisecond of the clock's floor.
pub const TOKEN_PER_MS: i64 = 256;

/// The least fencing token a lease granted at `now_ms` (the server's
/// clock) gets, as `token_floor` in `layout.lua`: tokens follow the clock,
/// so a primary that lost its last writes still issues tokens above every
/// earlier one (README, "Durability and failover").
pub fn token_floor(now_ms: i64) -> u64 {
    if now_ms <= TOKEN_EPOCH_MS {
        0
    } else {
        ((now_ms - TOKEN_EPOCH_MS) * TOKEN_PER_MS) as u64
    }
}

/// First proxy-data generations are below this.
pub const GENERATION_END: u64 = 1 << 40;
/// The largest latency key (`MAX_SORTED_LATENCY_MS + 1`: unmeasured).
pub const MAX_LATENCY_KEY: u32 = (1 << 20) - 1;
/// The longest filter JSON the scripts accept, in bytes.
pub const FILTER_BYTES: usize = 16_384;
/// The most filter objects in one filter tree.
pub const FILTER_NODES: usize = 256;
/// The deepest nesting below the top filter.
pub const FILTER_DEPTH: usize = 8;
/// The longest string in a filter, in bytes.
pub const FILTER_VALUE_BYTES: usize = 256;
/// Items per variadic call inside a script.
pub const CHUNK: usize = 1_000;

// The limits the scripts check are pharox-core's, which every store
// enforces first.
const _: () = {
    use pharox_core::{filter, validate};
    assert!(MAX_CAPACITY == validate::MAX_CONCURRENCY);
    assert!(MAX_PROXIES == validate::MAX_PROXIES_PER_POOL);
    assert!(MAX_BATCH == validate::MAX_CLEANUP_BATCH);
    assert!(MAX_DURATION_MS == validate::MAX_LEASE_DURATION.num_milliseconds());
    assert!(FILTER_BYTES == filter::MAX_FILTER_BYTES);
    assert!(FILTER_NODES == filter::MAX_FILTER_NODES);
    assert!(FILTER_DEPTH == filter::MAX_FILTER_DEPTH);
    assert!(FILTER_VALUE_BYTES == filter::MAX_FILTER_VALUE_LEN);
};

/// A proxy word. `room + load` is the proxy's capacity (at least 1), so a
/// word of 0 means no proxy has that sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Word {
    /// Free slots (bits 0-15).
    pub room: u32,
    /// Live leases (bits 16-31).
    pub load: u32,
    /// The load as indexed in `free_by_load` (bits 32-47): never above
    /// `load`, lower while the entry lags.
    pub indexed_load: u32,
    /// Whether the proxy's status is active (bit 48).
    pub active: bool,
    /// Whether it has an entry in `free_by_load` (bit 49).
    pub in_load_index: bool,
    /// Whether it has an entry in `free_by_latency` (bit 50).
    pub in_latency_index: bool,
}

impl Word {
    const ACTIVE: i64 = 1 << 48;
    const IN_LOAD: i64 = 1 << 49;
    const IN_LATENCY: i64 = 1 << 50;

    /// The word as stored.
    pub fn pack(self) -> i64 {
        debug_assert!(self.room <= 0xffff && self.load <= 0xffff && self.indexed_load <= 0xffff);
        i64::from(self.room)
            | (i64::from(self.load) << 16)
            | (i64::from(self.indexed_load) << 32)
            | if self.active { Self::ACTIVE } else { 0 }
            | if self.in_load_index { Self::IN_LOAD } else { 0 }
            | if self.in_latency_index {
                Self::IN_LATENCY
            } else {
                0
            }
    }

    /// A stored word; `None` if it has bits `layout.lua` never sets.
    pub fn unpack(w: i64) -> Option<Self> {
        if !(0..(1 << 51)).contains(&w) {
            return None;
        }
        Some(Self {
            room: (w & 0xffff) as u32,
            load: ((w >> 16) & 0xffff) as u32,
            indexed_load: ((w >> 32) & 0xffff) as u32,
            active: w & Self::ACTIVE != 0,
            in_load_index: w & Self::IN_LOAD != 0,
            in_latency_index: w & Self::IN_LATENCY != 0,
        })
    }

    /// Active with room: the proxies `free_by_seq` holds exactly, and the
    /// lazy indexes hold at least.
    pub fn is_free(self) -> bool {
        self.active && self.room > 0
    }
}

/// The bit offset of the low 32 bits of `seq`'s word (load and room), where
/// a lease ending is one `INCRBY u32` that `OVERFLOW FAIL` refuses at load 0.
pub fn word_low_offset(seq: u64) -> u64 {
    64 * seq + 32
}

/// The score of `seq` in `free_by_load`.
pub fn load_score(load: u32, seq: u64) -> u64 {
    (u64::from(load) << 32) + seq
}

/// The score of `seq` in `free_by_latency` and `latency_by_seq`.
pub fn latency_score(key: u32, seq: u64) -> u64 {
    (u64::from(key) << 32) + seq
}

/// A lease as stored: the member `seq:token:nonce:acquired_ms:consumer` of
/// `leases_by_deadline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseMember<'a> {
    /// The leased proxy's sequence.
    pub seq: u64,
    /// The fencing token.
    pub token: u64,
    /// The client's random nonce.
    pub nonce: u64,
    /// When the lease was granted (Redis clock, ms).
    pub acquired_ms: i64,
    /// Who holds it.
    pub consumer: &'a str,
}

impl<'a> LeaseMember<'a> {
    /// The member string.
    pub fn build(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.seq, self.token, self.nonce, self.acquired_ms, self.consumer
        )
    }

    /// Parses a member; `None` if it is not one pharox writes.
    pub fn parse(member: &'a str) -> Option<Self> {
        let mut f = member.splitn(5, ':');
        let mut num = || f.next().and_then(|s| s.parse::<u64>().ok());
        let (seq, token, nonce, acquired) = (num()?, num()?, num()?, num()?);
        let consumer = f.next().filter(|c| !c.is_empty())?;
        Some(Self {
            seq,
            token,
            nonce,
            acquired_ms: i64::try_from(acquired).ok()?,
            consumer,
        })
    }
}

/// Slot `slot` of a `counters` string read whole (`GET`); 0 past its end,
/// as BITFIELD reads it.
pub fn read_slot(counters: &[u8], slot: u64) -> i64 {
    let at = usize::try_from(slot.saturating_mul(8)).unwrap_or(usize::MAX);
    let mut bytes = [0u8; 8];
    if let Some(have) = counters.get(at..) {
        let n = have.len().min(8);
        bytes[..n].copy_from_slice(&have[..n]);
    }
    i64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_floor_of_tokens_rises_and_fits_a_lease_id_until_2060() {
        assert_eq!(token_floor(0), 0);
        assert_eq!(token_floor(TOKEN_EPOCH_MS), 0);
        assert_eq!(token_floor(TOKEN_EPOCH_MS + 1), 256);
        assert!(token_floor(TOKEN_EPOCH_MS + 2) > token_floor(TOKEN_EPOCH_MS + 1));
        // 2060-01-01T00:00:00Z.
        assert!(token_floor(2_840_140_800_000) <= MAX_TOKEN);
    }

    #[test]
    fn words_round_trip() {
        let full = Word {
            room: 65_535,
            load: 65_535,
            indexed_load: 65_535,
            active: true,
            in_load_index: true,
            in_latency_index: true,
        };
        for w in [
            Word::default(),
            full,
            Word {
                room: 0,
                load: 65_535,
                indexed_load: 3,
                active: false,
                in_load_index: true,
                in_latency_index: false,
            },
        ] {
            assert_eq!(Word::unpack(w.pack()), Some(w));
        }
        assert_eq!(full.pack(), (1 << 51) - 1);
        assert_eq!(Word::unpack(-1), None);
        assert_eq!(Word::unpack(1 << 51), None);
    }

    #[test]
    fn members_round_trip() {
        let m = LeaseMember {
            seq: 16,
            token: 281_474_976_710_655,
            nonce: 17_592_186_044_415,
            acquired_ms: 1_764_000_000_000,
            consumer: "a:b:c",
        };
        let s = m.build();
        assert_eq!(LeaseMember::parse(&s), Some(m));
        assert_eq!(LeaseMember::parse("16:1:2:3:"), None);
        assert_eq!(LeaseMember::parse("x:1:2:3:c"), None);
    }

    #[test]
    fn slots_read_as_bitfield_does() {
        let mut s = vec![0u8; 24];
        s[8..16].copy_from_slice(&42i64.to_be_bytes());
        s[16..20].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(read_slot(&s, 1), 42);
        assert_eq!(
            read_slot(&s, 2),
            i64::from_be_bytes([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])
        );
        assert_eq!(read_slot(&s, 9), 0);
    }
}
