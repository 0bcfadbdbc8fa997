//! Per-span object bitmaps: one bit per object slot, up to
//! `MAX_OBJS_PER_SPAN` (1024) slots, in atomic words so the collector can set
//! mark bits from many threads while mutators read alloc bits (Go's
//! `gcBits`, `markBits`, `mbitmap.go`).
//!
//! A span has three of them (see `span.rs`):
//!
//! - `alloc`: 1 = slot allocated, as of the last sweep or cache release
//!   (objects handed out by an MCache since then are tracked by the span's
//!   `free_index_for_scan`);
//! - `mark`: set by the collector (`fetch_or`, so concurrent markers each
//!   learn whether they were first);
//! - `freed`: explicit frees of objects in a span that an MCache holds,
//!   applied when the MCache lets go of it.
//!
//! Sweeping "swaps" the bitmaps: `alloc := alloc & mark; mark := 0`
//! (Go swaps pointers and allocates a fresh mark bitmap; ours are inline and
//! at most 16 words, so copying is as cheap and needs no allocation).

#![forbid(unsafe_code)]

use crate::sizeclass::MAX_OBJS_PER_SPAN;
use std::sync::atomic::{AtomicU64, Ordering};

/// Words in a bitmap.
pub(crate) const BITMAP_WORDS: usize = MAX_OBJS_PER_SPAN / 64;

/// A fixed-size atomic bitmap.
#[derive(Debug)]
pub struct Bitmap {
    words: [AtomicU64; BITMAP_WORDS],
}

impl Default for Bitmap {
    fn default() -> Self {
        Bitmap {
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Mask of the valid bits of word `w` in a bitmap of `n` bits.
#[inline]
pub(crate) fn valid_mask(w: usize, n: usize) -> u64 {
    let lo = w * 64;
    if n >= lo + 64 {
        !0
    } else if n <= lo {
        0
    } else {
        (1u64 << (n - lo)) - 1
    }
}

impl Bitmap {
    /// Bit `i`.
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        // Acquire: pairs with the Release in `set` (a marker's prior writes,
        // e.g. to a work list entry, happen before a tester sees the bit).
        self.words[i / 64].load(Ordering::Acquire) >> (i % 64) & 1 != 0
    }

    /// Sets bit `i`; returns whether it was clear (this caller set it).
    #[inline]
    pub fn set(&self, i: usize) -> bool {
        let bit = 1u64 << (i % 64);
        let w = &self.words[i / 64];
        // Relaxed: a cheap pre-check; the fetch_or below decides.
        if w.load(Ordering::Relaxed) & bit != 0 {
            return false;
        }
        // AcqRel: pairs with the Acquire in `get` and other setters.
        w.fetch_or(bit, Ordering::AcqRel) & bit == 0
    }

    /// Clears bit `i`; returns whether it was set.
    #[inline]
    pub fn clear(&self, i: usize) -> bool {
        let bit = 1u64 << (i % 64);
        // AcqRel: as in `set`.
        self.words[i / 64].fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    /// Word `w`.
    #[inline]
    pub(crate) fn word(&self, w: usize) -> u64 {
        // Acquire: pairs with the Release/AcqRel writers above.
        self.words[w].load(Ordering::Acquire)
    }

    /// Replaces word `w`, returning the old value.
    #[inline]
    pub(crate) fn swap_word(&self, w: usize, v: u64) -> u64 {
        // AcqRel: pairs with readers' Acquire and setters' AcqRel.
        self.words[w].swap(v, Ordering::AcqRel)
    }

    /// Overwrites word `w` (no read-modify-write: for a word only its
    /// owner writes, e.g. alloc bits under the MCentral lock or of a span
    /// an MCache holds, or bits of a record nobody can reach yet).
    #[inline]
    pub(crate) fn store_word(&self, w: usize, v: u64) {
        // Release: pairs with readers' Acquire in `word`/`get`.
        self.words[w].store(v, Ordering::Release);
    }

    /// Set bits among the first `n`.
    pub fn count(&self, n: usize) -> usize {
        (0..n.div_ceil(64))
            .map(|w| (self.word(w) & valid_mask(w, n)).count_ones() as usize)
            .sum()
    }

    /// Indices of the set bits among the first `n`, in order.
    pub fn iter_set(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        (0..n.div_ceil(64)).flat_map(move |w| {
            let mut x = self.word(w) & valid_mask(w, n);
            std::iter::from_fn(move || {
                if x == 0 {
                    return None;
                }
                let b = x.trailing_zeros() as usize;
                x &= x - 1;
                Some(w * 64 + b)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_clear_count_iter() {
        let b = Bitmap::default();
        assert!(b.set(3));
        assert!(!b.set(3), "second marker loses");
        assert!(b.set(64));
        assert!(b.set(1023));
        assert!(b.get(3) && b.get(64) && !b.get(4));
        assert_eq!(b.count(1024), 3);
        assert_eq!(b.count(64), 1);
        assert_eq!(b.iter_set(1024).collect::<Vec<_>>(), vec![3, 64, 1023]);
        assert!(b.clear(64));
        assert!(!b.clear(64));
    }

    #[test]
    fn masks() {
        assert_eq!(valid_mask(0, 3), 0b111);
        assert_eq!(valid_mask(0, 64), !0);
        assert_eq!(valid_mask(1, 64), 0);
        assert_eq!(valid_mask(1, 65), 1);
    }

    #[test]
    fn concurrent_markers_agree_on_one_winner() {
        let b = Bitmap::default();
        let n = if cfg!(miri) { 64 } else { 1024 };
        let wins: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| s.spawn(|| (0..n).filter(|&i| b.set(i)).count()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, n);
        assert_eq!(b.count(n), n);
    }
}
