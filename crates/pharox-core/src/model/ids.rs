//! Identifier newtypes. String ids share their bytes (`Arc<str>`), so cloning
//! one into every lease costs a reference count, not an allocation.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a string. Stores validate it when it is used.
            pub fn new(id: impl Into<Arc<str>>) -> Self {
                Self(id.into())
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.into())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id.into())
            }
        }

        impl From<&$name> for $name {
            fn from(id: &$name) -> Self {
                id.clone()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }
    };
}

string_id!(
    /// The unique id of a pool, e.g. `latam-residential`. Every call names its pool by it.
    PoolId
);
string_id!(
    /// The id of a proxy, unique within its pool.
    ProxyId
);
string_id!(
    /// The name of a consumer (a worker or an application) holding leases.
    ConsumerName
);

/// The namespace of the UUIDs that name pools over HTTP ([`PoolId::uuid`]).
pub const POOL_UUID_NAMESPACE: Uuid = Uuid::from_u128(0x5f1c_4e0a_9d3b_4c6e_8a27_6b1f_0e9d_c3a5);

impl PoolId {
    /// The pool's UUID, for APIs whose clients parse pool ids as UUIDs
    /// (pharox-sdk): the id itself when it is a UUID in canonical form
    /// (lowercase, hyphenated), otherwise the UUIDv5 of the id in
    /// [`POOL_UUID_NAMESPACE`]. Deterministic, so every process agrees
    /// without storing it.
    pub fn uuid(&self) -> Uuid {
        match Uuid::try_parse(&self.0) {
            Ok(u) if u.hyphenated().to_string() == *self.0 => u,
            _ => Uuid::new_v5(&POOL_UUID_NAMESPACE, self.0.as_bytes()),
        }
    }

    /// The tag that [`LeaseId::in_pool`] puts in the pool's lease ids: the
    /// first 32 bits of [`PoolId::uuid`].
    pub fn lease_tag(&self) -> u32 {
        (self.uuid().as_u128() >> 96) as u32
    }
}

impl ProxyId {
    /// A fresh random id (a UUID v4 in text form).
    pub fn random() -> Self {
        Self::new(Uuid::new_v4().to_string())
    }
}

/// The id of a lease.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseId(pub Uuid);

impl LeaseId {
    /// A fresh random lease id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// A fresh lease id of a pool whose [`PoolId::lease_tag`] is `tag`: a
    /// UUIDv8 whose first 32 bits are the tag and whose other 90 free bits
    /// are random. A server that gets only the id back (pharox-sdk sends
    /// nothing else) finds the pool from the tag, without a lookup table.
    pub fn in_pool(tag: u32) -> Self {
        let r = fastrand::u128(..);
        let hi = (u64::from(tag) << 32) | ((r as u64) & 0xFFFF_0FFF) | (0x8 << 12);
        let lo = (0b10 << 62) | ((r >> 64) as u64 & ((1 << 62) - 1));
        Self(Uuid::from_u64_pair(hi, lo))
    }

    /// The first 32 bits: the pool's tag if the id was made by [`LeaseId::in_pool`].
    pub fn pool_tag(&self) -> u32 {
        (self.0.as_u128() >> 96) as u32
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_uuid_is_its_canonical_uuid_id_or_a_stable_v5() {
        let named = PoolId::from("latam");
        assert_eq!(named.uuid(), named.uuid());
        assert_eq!(named.uuid().get_version_num(), 5);
        assert_ne!(named.uuid(), PoolId::from("latam2").uuid());
        let canonical = "0b6f4a52-1c2d-4e8f-9a0b-1c2d3e4f5a6b";
        assert_eq!(PoolId::from(canonical).uuid().to_string(), canonical);
        // Not canonical (upper case): hashed, so no two ids share a UUID.
        let upper = PoolId::from(canonical.to_uppercase());
        assert_ne!(upper.uuid().to_string(), canonical);
    }

    #[test]
    fn lease_ids_in_a_pool_carry_its_tag_and_differ() {
        let pool = PoolId::from("latam");
        let a = LeaseId::in_pool(pool.lease_tag());
        let b = LeaseId::in_pool(pool.lease_tag());
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.pool_tag(), pool.lease_tag());
            assert_eq!(id.0.get_version_num(), 8);
            assert_eq!(id.0.get_variant(), uuid::Variant::RFC4122);
        }
        assert_eq!(LeaseId::in_pool(u32::MAX).pool_tag(), u32::MAX);
        assert_eq!(LeaseId::in_pool(0).pool_tag(), 0);
    }
}
