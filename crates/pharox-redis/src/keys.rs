//! Every Redis key pharox uses, and nothing else builds key names.
//!
//! Global keys: `<prefix>:pools` (hash pool id → pool JSON) and
//! `<prefix>:consumers` (hash name → consumer JSON).
//!
//! Per-pool keys all carry the pool's hash tag, `<prefix>:{<escaped id>}:…`,
//! so one pool lives in one cluster slot and every script is cluster-safe.
//! The escaping (percent-encoding `%`, `{` and `}`) is injective and leaves no
//! `}` inside the tag, so no pool id can end the tag early, forge another
//! pool's tag or collide with another pool's keys.

use std::fmt::Write as _;

use pharox_core::PoolId;

/// The equality fields that have indexes, in the order the adapter prefers
/// them as a candidate source (rarer values first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexField {
    /// Autonomous system number.
    Asn,
    /// City.
    City,
    /// Internet service provider.
    Isp,
    /// Source (provider).
    Source,
    /// Country code (indexed in upper case).
    Country,
}

impl IndexField {
    /// The field's name inside index keys.
    pub fn name(self) -> &'static str {
        match self {
            Self::Asn => "asn",
            Self::City => "city",
            Self::Isp => "isp",
            Self::Source => "source",
            Self::Country => "country",
        }
    }
}

/// Escapes a pool id for use inside a hash tag.
fn escape_tag(id: &str, out: &mut String) {
    for c in id.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
}

/// Names of the global keys under a prefix.
#[derive(Debug, Clone)]
pub struct GlobalKeys {
    /// Hash: pool id → pool JSON.
    pub pools: String,
    /// Hash: consumer name → consumer JSON.
    pub consumers: String,
}

impl GlobalKeys {
    /// The global keys under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            pools: format!("{prefix}:pools"),
            consumers: format!("{prefix}:consumers"),
        }
    }
}

/// The keys of one pool. Built once per call; cheap (one allocation per key).
#[derive(Debug, Clone)]
pub struct PoolKeys {
    /// `<prefix>:{<escaped id>}:`, every key's start.
    base: String,
    /// BITFIELD counters and proxy words (see `lua/lib.lua`).
    pub hot: String,
    /// Zset of live leases by deadline.
    pub exp: String,
    /// Zset of active proxies with room, by sequence.
    pub free: String,
    /// Zset of active proxies by lease count (lazy).
    pub load: String,
    /// Zset of active proxies by latency (lazy).
    pub lat: String,
    /// Hash: sequence → latency score.
    pub lsc: String,
    /// Hash: proxy id → sequence.
    pub ids: String,
    /// Hash: sequence → proxy JSON.
    pub px: String,
    /// GEO set of located proxies.
    pub geo: String,
    /// Zset of proxies located beyond GEO's latitude range.
    pub polar: String,
    /// Set of the pool's index key names.
    pub ixkeys: String,
    /// Last fencing token of removed incarnations.
    pub retired: String,
}

impl PoolKeys {
    /// The keys of `pool` under `prefix`.
    pub fn new(prefix: &str, pool: &PoolId) -> Self {
        let mut base = String::with_capacity(prefix.len() + pool.as_str().len() + 4);
        base.push_str(prefix);
        base.push_str(":{");
        escape_tag(pool.as_str(), &mut base);
        base.push_str("}:");
        let k = |suffix: &str| format!("{base}{suffix}");
        Self {
            hot: k("hot"),
            exp: k("exp"),
            free: k("free"),
            load: k("load"),
            lat: k("lat"),
            lsc: k("lsc"),
            ids: k("ids"),
            px: k("px"),
            geo: k("geo"),
            polar: k("polar"),
            ixkeys: k("ixkeys"),
            retired: k("retired"),
            base,
        }
    }

    /// The index of proxies whose `field` equals `value` (country in upper case).
    pub fn index(&self, field: IndexField, value: &str) -> String {
        let mut key = self.base.clone();
        let _ = write!(key, "ix:{}:", field.name());
        if field == IndexField::Country {
            key.push_str(&value.to_ascii_uppercase());
        } else {
            key.push_str(value);
        }
        key
    }

    /// The pool's capped stats history: a stream of [`PoolStatsSnapshot`]
    /// JSON written by the worker (built on demand: it is off the hot path).
    ///
    /// [`PoolStatsSnapshot`]: pharox_core::PoolStatsSnapshot
    pub fn history(&self) -> String {
        format!("{}hist", self.base)
    }

    /// Every key of the pool except the ix keys and `retired`, in the order
    /// `upsert_proxy.lua` and `remove_proxy.lua` take them as KEYS 1-11.
    pub fn admin_keys(&self) -> [&str; 11] {
        [
            &self.hot,
            &self.exp,
            &self.free,
            &self.load,
            &self.lat,
            &self.lsc,
            &self.ids,
            &self.px,
            &self.geo,
            &self.ixkeys,
            &self.polar,
        ]
    }
}

/// The cluster slot of a key (CRC16/XMODEM of its hash tag, mod 16384), as
/// Redis Cluster computes it. Used by tests to prove each script's keys
/// share one slot.
pub fn cluster_slot(key: &[u8]) -> u16 {
    let tagged = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(tagged) % 16384
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(id: &str) -> PoolKeys {
        PoolKeys::new("pharox", &PoolId::from(id))
    }

    #[test]
    fn crc16_matches_the_cluster_spec() {
        // The Redis Cluster specification's test vector.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(cluster_slot(b"foo"), 12182);
        assert_eq!(
            cluster_slot(b"{user1000}.following"),
            cluster_slot(b"user1000")
        );
    }

    #[test]
    fn every_key_of_a_pool_shares_its_slot() {
        for id in [
            "plain",
            "a}b",
            "{x}",
            "}",
            "{",
            "colon:s",
            "ünï ✓",
            "%7D",
            &"x".repeat(10_000),
        ] {
            let k = keys(id);
            let slot = cluster_slot(k.hot.as_bytes());
            let mut all: Vec<String> = k.admin_keys().iter().map(|s| s.to_string()).collect();
            all.push(k.retired.clone());
            all.push(k.index(IndexField::Country, "ar"));
            all.push(k.index(IndexField::City, "{evil}"));
            for key in all {
                assert_eq!(cluster_slot(key.as_bytes()), slot, "{id:?}: {key}");
            }
        }
    }

    #[test]
    fn ids_cannot_forge_or_collide() {
        let ids = [
            "a", "a}", "a%7D", "a%", "a}:{b", "{a}", "a:hot", "a}:hot", "A", "a ", "ä",
        ];
        let mut seen = std::collections::HashMap::new();
        for id in ids {
            let k = keys(id);
            for key in k.admin_keys() {
                if let Some(other) = seen.insert(key.to_string(), id) {
                    panic!("{id:?} and {other:?} share {key}");
                }
            }
            // The tag is exactly the escaped id: no `}` inside it.
            let open = k.hot.find('{').unwrap();
            let close = open + 1 + k.hot[open + 1..].find('}').unwrap();
            assert!(k.hot[close..].starts_with("}:hot"), "{id:?}: {}", k.hot);
        }
    }

    #[test]
    fn country_index_ignores_case() {
        let k = keys("p");
        assert_eq!(
            k.index(IndexField::Country, "ar"),
            k.index(IndexField::Country, "AR")
        );
        assert_ne!(
            k.index(IndexField::City, "a"),
            k.index(IndexField::City, "A")
        );
        assert_ne!(
            k.index(IndexField::City, "x"),
            k.index(IndexField::Isp, "x")
        );
    }
}
