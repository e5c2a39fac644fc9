//! A hierarchical bitset over `u64` positions: insert, remove, and "first set
//! position at or after `i`" in O(log64 n), touching a handful of words.
//!
//! The in-memory store keeps proxies with free capacity in one, keyed by
//! insertion sequence, so first-available and round-robin never walk a tree.

/// Bits per word.
const W: u64 = 64;

#[derive(Debug, Default, Clone)]
pub(crate) struct HierBitset {
    /// `levels[0]` holds the positions; `levels[k + 1]` has bit `j` set when
    /// word `j` of `levels[k]` is non-zero. The last level is one word.
    levels: Vec<Vec<u64>>,
    len: usize,
}

impl HierBitset {
    pub(crate) fn new() -> Self {
        Self {
            levels: vec![vec![0]],
            len: 0,
        }
    }

    /// Number of positions set.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Grows the levels so `pos` fits.
    fn reserve(&mut self, pos: u64) {
        let needed = (pos / W + 1) as usize;
        if self.levels[0].len() >= needed {
            return;
        }
        let mut words = needed.next_power_of_two().max(self.levels[0].len() * 2);
        self.levels[0].resize(words, 0);
        let mut k = 0;
        while words > 1 {
            words = words.div_ceil(W as usize);
            k += 1;
            if self.levels.len() <= k {
                // A new top level: its bits summarise the level below.
                let below = &self.levels[k - 1];
                let mut top = vec![0u64; words];
                for (j, w) in below.iter().enumerate() {
                    if *w != 0 {
                        top[j / W as usize] |= 1 << (j as u64 % W);
                    }
                }
                self.levels.push(top);
            } else {
                self.levels[k].resize(words, 0);
            }
        }
    }

    /// Sets `pos`; returns whether it was unset.
    pub(crate) fn insert(&mut self, pos: u64) -> bool {
        self.reserve(pos);
        let mut i = pos;
        for level in &mut self.levels {
            let word = &mut level[(i / W) as usize];
            let was_empty = *word == 0;
            let bit = 1u64 << (i % W);
            if *word & bit != 0 {
                return false;
            }
            *word |= bit;
            if !was_empty {
                break;
            }
            i /= W;
        }
        self.len += 1;
        true
    }

    /// Clears `pos`; returns whether it was set.
    pub(crate) fn remove(&mut self, pos: u64) -> bool {
        if pos / W >= self.levels[0].len() as u64 {
            return false;
        }
        let mut i = pos;
        for (k, level) in self.levels.iter_mut().enumerate() {
            let word = &mut level[(i / W) as usize];
            let bit = 1u64 << (i % W);
            if k == 0 && *word & bit == 0 {
                return false;
            }
            *word &= !bit;
            if *word != 0 {
                break;
            }
            i /= W;
        }
        self.len -= 1;
        true
    }

    /// The smallest set position `>= from`.
    pub(crate) fn first_from(&self, from: u64) -> Option<u64> {
        if from / W >= self.levels[0].len() as u64 {
            return None;
        }
        // Climb while the rest of the current word is empty, then descend
        // along the lowest set bits.
        let mut i = from;
        let mut k = 0;
        loop {
            let level = &self.levels[k];
            let idx = (i / W) as usize;
            if idx < level.len() {
                let masked = level[idx] & (!0u64 << (i % W));
                if masked != 0 {
                    let mut pos = (idx as u64) * W + u64::from(masked.trailing_zeros());
                    while k > 0 {
                        k -= 1;
                        let word = self.levels[k][pos as usize];
                        pos = pos * W + u64::from(word.trailing_zeros());
                    }
                    return Some(pos);
                }
            }
            k += 1;
            if k == self.levels.len() {
                return None;
            }
            i = i / W + 1;
        }
    }

    /// Set positions `>= from` in ascending order.
    pub(crate) fn iter_from(&self, from: u64) -> impl Iterator<Item = u64> + '_ {
        let mut next = Some(from);
        std::iter::from_fn(move || {
            let found = self.first_from(next?)?;
            next = found.checked_add(1);
            Some(found)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn agrees_with_a_btreeset_under_random_operations() {
        for seed in 0..20 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut bits = HierBitset::new();
            let mut reference = BTreeSet::new();
            let span = [70, 5_000, 300_000][seed as usize % 3];
            for _ in 0..4_000 {
                let pos = rng.u64(0..span);
                match rng.u8(0..3) {
                    0 | 1 => assert_eq!(bits.insert(pos), reference.insert(pos)),
                    _ => assert_eq!(bits.remove(pos), reference.remove(&pos)),
                }
                let from = rng.u64(0..span + 100);
                assert_eq!(
                    bits.first_from(from),
                    reference.range(from..).next().copied(),
                    "seed {seed} from {from}"
                );
                assert_eq!(bits.len(), reference.len());
            }
            let all: Vec<u64> = bits.iter_from(0).collect();
            assert_eq!(all, reference.iter().copied().collect::<Vec<_>>());
        }
    }

    #[test]
    fn growing_keeps_existing_bits_summarised() {
        let mut bits = HierBitset::new();
        bits.insert(3);
        bits.insert(100_000);
        bits.insert(50);
        assert_eq!(bits.iter_from(0).collect::<Vec<_>>(), [3, 50, 100_000]);
        assert_eq!(bits.first_from(51), Some(100_000));
        assert_eq!(bits.first_from(100_001), None);
        assert!(bits.remove(100_000));
        assert_eq!(bits.first_from(51), None);
        assert!(!bits.remove(10_000_000));
    }
}
