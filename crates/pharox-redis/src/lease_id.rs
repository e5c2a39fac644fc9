//! Lease ids of the Redis store: UUIDv8 values that carry what a release
//! needs to find the lease without another lookup.
//!
//! Layout (big-endian bits): 0–47 fencing token, 48–51 version (8), 52–63
//! nonce bits 32–43, 64–65 variant (0b10), 66–95 proxy sequence, 96–127
//! nonce bits 0–31. The 44-bit nonce is random per lease: knowing a token
//! and a sequence is not enough to name (and release) someone else's lease.

use pharox_core::LeaseId;
use uuid::Uuid;

/// Largest fencing token an id can carry.
pub(crate) const MAX_TOKEN: u64 = (1 << 48) - 1;
/// Largest proxy sequence an id can carry: 30 bits, above the pool's own
/// limit ([`layout::MAX_SEQ`]).
const SEQ_BITS: u64 = (1 << 30) - 1;
const _: () = assert!(layout::MAX_SEQ <= SEQ_BITS);
use crate::layout;
/// The largest sequence of a lease id: the pool's own limit.
pub(crate) const MAX_SEQ: u64 = layout::MAX_SEQ;
/// One above the largest nonce.
pub(crate) const NONCE_LIMIT: u64 = 1 << 44;

/// The parts of a lease id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseParts {
    pub token: u64,
    pub seq: u64,
    pub nonce: u64,
}

impl LeaseParts {
    /// Packs the parts into a lease id; `None` if one is out of range.
    pub fn encode(self) -> Option<LeaseId> {
        if self.token > MAX_TOKEN || self.seq > MAX_SEQ || self.nonce >= NONCE_LIMIT {
            return None;
        }
        let hi = (self.token << 16) | (0x8 << 12) | (self.nonce >> 32);
        let lo = (0b10 << 62) | (self.seq << 32) | (self.nonce & 0xFFFF_FFFF);
        Some(LeaseId(Uuid::from_u64_pair(hi, lo)))
    }

    /// Unpacks an id made by [`LeaseParts::encode`]; `None` for any other id.
    pub fn decode(id: &LeaseId) -> Option<Self> {
        let (hi, lo) = id.0.as_u64_pair();
        if (hi >> 12) & 0xF != 0x8 || lo >> 62 != 0b10 {
            return None;
        }
        Some(Self {
            token: hi >> 16,
            seq: (lo >> 32) & SEQ_BITS,
            nonce: ((hi & 0xFFF) << 32) | (lo & 0xFFFF_FFFF),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_a_v8_uuid() {
        for parts in [
            LeaseParts {
                token: 1,
                seq: 16,
                nonce: 0,
            },
            LeaseParts {
                token: MAX_TOKEN,
                seq: MAX_SEQ,
                nonce: NONCE_LIMIT - 1,
            },
            LeaseParts {
                token: 123_456_789,
                seq: 4_242,
                nonce: 0xABC_DEAD_BEEF,
            },
        ] {
            let id = parts.encode().unwrap();
            assert_eq!(id.0.get_version_num(), 8);
            assert_eq!(id.0.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(LeaseParts::decode(&id), Some(parts));
        }
    }

    #[test]
    fn rejects_out_of_range_parts_and_foreign_ids() {
        assert_eq!(
            LeaseParts {
                token: MAX_TOKEN + 1,
                seq: 1,
                nonce: 1
            }
            .encode(),
            None
        );
        assert_eq!(
            LeaseParts {
                token: 1,
                seq: MAX_SEQ + 1,
                nonce: 1
            }
            .encode(),
            None
        );
        assert_eq!(
            LeaseParts {
                token: 1,
                seq: 1,
                nonce: NONCE_LIMIT
            }
            .encode(),
            None
        );
        assert_eq!(LeaseParts::decode(&LeaseId::random()), None);
    }
}
