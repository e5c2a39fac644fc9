//! A min segment tree over `u64` positions holding `u64` keys.
//!
//! The in-memory store keeps free proxies by lowest latency in one: position
//! = insertion sequence, key = `(latency, sequence)` packed in a `u64`.
//! Setting a position walks from its leaf to the root through parents stored
//! next to their neighbours, so round robin, which visits sequences in order,
//! stays in cache where a B-tree keyed by latency would jump around the heap.
//! The minimum is at the root; ascending iteration is a best-first walk.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The key of an empty position.
const EMPTY: u64 = u64::MAX;

#[derive(Debug, Clone)]
pub(crate) struct MinTree {
    /// Leaves in `cap..2 * cap`; node `i` holds the min of `2i` and `2i + 1`.
    nodes: Vec<u64>,
    cap: usize,
}

impl MinTree {
    pub(crate) fn new() -> Self {
        Self {
            nodes: vec![EMPTY; 2],
            cap: 1,
        }
    }

    fn grow(&mut self, pos: usize) {
        let mut cap = self.cap;
        while cap <= pos {
            cap *= 2;
        }
        let mut nodes = vec![EMPTY; 2 * cap];
        nodes[cap..cap + self.cap].copy_from_slice(&self.nodes[self.cap..]);
        for i in (1..cap).rev() {
            nodes[i] = nodes[2 * i].min(nodes[2 * i + 1]);
        }
        self.nodes = nodes;
        self.cap = cap;
    }

    /// Sets the key at `pos` (`None` empties it). Keys must be below `u64::MAX`.
    pub(crate) fn set(&mut self, pos: u64, key: Option<u64>) {
        let pos = pos as usize;
        if pos >= self.cap {
            if key.is_none() {
                return;
            }
            self.grow(pos);
        }
        let key = key.unwrap_or(EMPTY);
        let mut i = self.cap + pos;
        self.nodes[i] = key;
        while i > 1 {
            let parent = i / 2;
            let min = self.nodes[i].min(self.nodes[i ^ 1]);
            if self.nodes[parent] == min {
                break;
            }
            self.nodes[parent] = min;
            i = parent;
        }
    }

    /// The smallest key.
    #[cfg(test)]
    pub(crate) fn min(&self) -> Option<u64> {
        Some(self.nodes[1]).filter(|&k| k != EMPTY)
    }

    /// All keys in ascending order. Each step descends from the smallest
    /// pending subtree to its minimum leaf, queueing the siblings it passes:
    /// O(log n) per key.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let mut pending = BinaryHeap::new();
        if self.nodes[1] != EMPTY {
            pending.push(Reverse((self.nodes[1], 1usize)));
        }
        std::iter::from_fn(move || {
            let Reverse((key, mut i)) = pending.pop()?;
            while i < self.cap {
                let (left, right) = (2 * i, 2 * i + 1);
                let (next, sibling) = if self.nodes[left] == key {
                    (left, right)
                } else {
                    (right, left)
                };
                if self.nodes[sibling] != EMPTY {
                    pending.push(Reverse((self.nodes[sibling], sibling)));
                }
                i = next;
            }
            Some(key)
        })
    }

    /// The smallest key, by descending from the root (no allocation).
    pub(crate) fn first(&self) -> Option<u64> {
        let min = self.nodes[1];
        if min == EMPTY {
            return None;
        }
        let mut i = 1;
        while i < self.cap {
            i = if self.nodes[2 * i] == min {
                2 * i
            } else {
                2 * i + 1
            };
        }
        Some(self.nodes[i])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    #[test]
    fn agrees_with_a_sorted_map_under_random_operations() {
        for seed in 0..20 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut tree = MinTree::new();
            let mut at = BTreeMap::<u64, u64>::new(); // pos -> key
            let mut keys = BTreeSet::<u64>::new();
            let span = [5, 300, 20_000][seed as usize % 3];
            for step in 0..3_000 {
                let pos = rng.u64(0..span);
                if let Some(old) = at.remove(&pos) {
                    keys.remove(&old);
                }
                if rng.u8(0..3) == 0 {
                    tree.set(pos, None);
                } else {
                    // Unique keys, as the store's packed (rank, seq) keys are.
                    let key = (rng.u64(0..50) << 32) | pos;
                    tree.set(pos, Some(key));
                    at.insert(pos, key);
                    keys.insert(key);
                }
                assert_eq!(tree.min(), keys.first().copied(), "seed {seed} step {step}");
                assert_eq!(tree.first(), keys.first().copied());
                if step % 500 == 0 {
                    assert_eq!(
                        tree.iter().collect::<Vec<_>>(),
                        Vec::from_iter(keys.iter().copied())
                    );
                }
            }
        }
    }

    #[test]
    fn emptying_beyond_capacity_is_a_no_op() {
        let mut tree = MinTree::new();
        tree.set(1_000, None);
        assert_eq!(tree.first(), None);
        tree.set(1_000, Some(7));
        tree.set(3, Some(9));
        assert_eq!(tree.iter().collect::<Vec<_>>(), [7, 9]);
    }
}
