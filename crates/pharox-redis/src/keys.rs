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

/// The keys of one pool, named for what they hold (the layout is described
/// in `lua/layout.lua`). Built once per call; cheap (one allocation per key).
#[derive(Debug, Clone)]
pub struct PoolKeys {
    /// `<prefix>:{<escaped id>}:`, every key's start.
    base: String,
    /// String read with BITFIELD: the pool's counters, then one word per proxy.
    pub counters: String,
    /// Zset: lease member → deadline (ms).
    pub leases_by_deadline: String,
    /// Hash: fencing token → lease member, for every member of
    /// `leases_by_deadline` (a lease id carries the token).
    pub lease_by_token: String,
    /// Zset: the active proxies with room, by sequence.
    pub free_by_seq: String,
    /// Zset: the same proxies, by (live leases, sequence).
    pub free_by_load: String,
    /// Zset: the same proxies, by (latency, sequence).
    pub free_by_latency: String,
    /// Hash: sequence → latency score, for every proxy.
    pub latency_by_seq: String,
    /// Zset: every proxy, by sequence.
    pub all_by_seq: String,
    /// Hash: proxy id → sequence.
    pub seq_by_id: String,
    /// Hash: sequence → proxy JSON.
    pub proxy_by_seq: String,
    /// GEO set of the located proxies within Redis GEO's latitudes.
    pub located: String,
    /// Zset of the located proxies beyond them (near the poles).
    pub polar_by_seq: String,
    /// Set of the pool's `by_value` index key names.
    pub value_index_keys: String,
    /// String: the last fencing token of removed incarnations.
    pub retired_token: String,
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
            counters: k("counters"),
            leases_by_deadline: k("leases_by_deadline"),
            lease_by_token: k("lease_by_token"),
            free_by_seq: k("free_by_seq"),
            free_by_load: k("free_by_load"),
            free_by_latency: k("free_by_latency"),
            latency_by_seq: k("latency_by_seq"),
            all_by_seq: k("all_by_seq"),
            seq_by_id: k("seq_by_id"),
            proxy_by_seq: k("proxy_by_seq"),
            located: k("located"),
            polar_by_seq: k("polar_by_seq"),
            value_index_keys: k("value_index_keys"),
            retired_token: k("retired_token"),
            base,
        }
    }

    /// Zset of the proxies whose `field` equals `value` (country in upper
    /// case), by sequence, whatever their status and room.
    pub fn by_value(&self, field: IndexField, value: &str) -> String {
        let mut key = self.base.clone();
        let _ = write!(key, "by_value:{}:", field.name());
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
    pub fn stats_history(&self) -> String {
        format!("{}stats_history", self.base)
    }

    /// The keys the lease scripts take as KEYS 1-7 (`cleanup.lua`, and the
    /// start of `release.lua`, `renew.lua` and `acquire.lua`).
    pub fn lease_keys(&self) -> [&str; 7] {
        [
            &self.counters,
            &self.leases_by_deadline,
            &self.free_by_seq,
            &self.free_by_load,
            &self.free_by_latency,
            &self.latency_by_seq,
            &self.lease_by_token,
        ]
    }

    /// Every key of the pool except the `by_value` keys, `retired_token` and
    /// the stats history, in the order `upsert_proxy.lua` and
    /// `remove_proxy.lua` take them as KEYS 1-13.
    pub fn admin_keys(&self) -> [&str; 13] {
        [
            &self.counters,
            &self.leases_by_deadline,
            &self.free_by_seq,
            &self.free_by_load,
            &self.free_by_latency,
            &self.latency_by_seq,
            &self.seq_by_id,
            &self.proxy_by_seq,
            &self.located,
            &self.value_index_keys,
            &self.polar_by_seq,
            &self.all_by_seq,
            &self.lease_by_token,
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
            let slot = cluster_slot(k.counters.as_bytes());
            let mut all: Vec<String> = k.admin_keys().iter().map(|s| s.to_string()).collect();
            all.push(k.retired_token.clone());
            all.push(k.stats_history());
            all.push(k.by_value(IndexField::Country, "ar"));
            all.push(k.by_value(IndexField::City, "{evil}"));
            for key in all {
                assert_eq!(cluster_slot(key.as_bytes()), slot, "{id:?}: {key}");
            }
        }
    }

    #[test]
    fn ids_cannot_forge_or_collide() {
        let ids = [
            "a",
            "a}",
            "a%7D",
            "a%",
            "a}:{b",
            "{a}",
            "a:counters",
            "a}:counters",
            "A",
            "a ",
            "ä",
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
            let open = k.counters.find('{').unwrap();
            let close = open + 1 + k.counters[open + 1..].find('}').unwrap();
            assert!(
                k.counters[close..].starts_with("}:counters"),
                "{id:?}: {}",
                k.counters
            );
        }
    }

    #[test]
    fn country_index_ignores_case() {
        let k = keys("p");
        assert_eq!(
            k.by_value(IndexField::Country, "ar"),
            k.by_value(IndexField::Country, "AR")
        );
        assert_ne!(
            k.by_value(IndexField::City, "a"),
            k.by_value(IndexField::City, "A")
        );
        assert_ne!(
            k.by_value(IndexField::City, "x"),
            k.by_value(IndexField::Isp, "x")
        );
    }
}
