//! Lease ids of the Redis store: UUIDv8 values that carry what finding the
//! lease needs without another lookup: the pool's tag, the fencing token
//! and the lease's nonce.
//!
//! Layout (big-endian bits): 0–31 the pool's tag
//! ([`PoolId::lease_tag`](pharox_core::PoolId::lease_tag), as
//! [`LeaseId::in_pool`] ids have it, so a server given only the id finds the
//! pool), 32–47 token bits 32–47, 48–51 version (8), 52–63 token bits
//! 20–31, 64–65 variant (0b10), 66–85 token bits 0–19, 86–127 the nonce.
//! The pool's `lease_by_token` hash maps the token to the stored lease; the
//! 42-bit nonce is random per lease and must match it, so knowing a token
//! is not enough to name (and release) someone else's lease.

use pharox_core::LeaseId;
use uuid::Uuid;

/// Largest fencing token an id can carry.
pub(crate) const MAX_TOKEN: u64 = crate::layout::MAX_TOKEN;
/// One above the largest nonce.
pub(crate) const NONCE_LIMIT: u64 = 1 << 42;
const _: () = assert!(NONCE_LIMIT == crate::layout::NONCE_END);

/// The parts of a lease id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseParts {
    pub tag: u32,
    pub token: u64,
    pub nonce: u64,
}

impl LeaseParts {
    /// Packs the parts into a lease id; `None` if one is out of range.
    pub fn encode(self) -> Option<LeaseId> {
        if self.token > MAX_TOKEN || self.nonce >= NONCE_LIMIT {
            return None;
        }
        let t = self.token;
        let hi =
            (u64::from(self.tag) << 32) | ((t >> 32) << 16) | (0x8 << 12) | ((t >> 20) & 0xFFF);
        let lo = (0b10 << 62) | ((t & 0xF_FFFF) << 42) | self.nonce;
        Some(LeaseId(Uuid::from_u64_pair(hi, lo)))
    }

    /// Unpacks an id made by [`LeaseParts::encode`]; `None` for any other
    /// id (another version or variant).
    pub fn decode(id: &LeaseId) -> Option<Self> {
        let (hi, lo) = id.0.as_u64_pair();
        if (hi >> 12) & 0xF != 0x8 || lo >> 62 != 0b10 {
            return None;
        }
        let token = (((hi >> 16) & 0xFFFF) << 32) | ((hi & 0xFFF) << 20) | ((lo >> 42) & 0xF_FFFF);
        Some(Self {
            tag: (hi >> 32) as u32,
            token,
            nonce: lo & (NONCE_LIMIT - 1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharox_core::PoolId;

    #[test]
    fn round_trips_and_is_a_v8_uuid_with_the_pool_tag() {
        for parts in [
            LeaseParts {
                tag: 0,
                token: 1,
                nonce: 0,
            },
            LeaseParts {
                tag: u32::MAX,
                token: MAX_TOKEN,
                nonce: NONCE_LIMIT - 1,
            },
            LeaseParts {
                tag: PoolId::from("latam").lease_tag(),
                token: 123_456_789_012,
                nonce: 0x2BC_DEAD_BEEF,
            },
            LeaseParts {
                tag: 0x8000_0001,
                token: 1 << 47 | 1 << 31 | 1 << 19 | 1,
                nonce: 1 << 41,
            },
        ] {
            let id = parts.encode().unwrap();
            assert_eq!(id.0.get_version_num(), 8);
            assert_eq!(id.0.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(id.pool_tag(), parts.tag);
            assert_eq!(LeaseParts::decode(&id), Some(parts));
        }
    }

    #[test]
    fn rejects_out_of_range_parts_and_foreign_ids() {
        let ok = LeaseParts {
            tag: 7,
            token: 1,
            nonce: 1,
        };
        for bad in [
            LeaseParts {
                token: MAX_TOKEN + 1,
                ..ok
            },
            LeaseParts {
                nonce: NONCE_LIMIT,
                ..ok
            },
        ] {
            assert_eq!(bad.encode(), None);
        }
        assert_eq!(LeaseParts::decode(&LeaseId::random()), None);
    }
}
