//! The page allocator of one arena: which heap pages are free, which free
//! pages were returned to the OS, and where runs of free pages are — without
//! scanning the heap (Go's `mpagealloc.go`, simplified to one level per
//! arena).
//!
//! # Design
//!
//! Per arena, two bitmaps with one bit per 8 KiB page:
//!
//! - `free`: 1 = the page belongs to no span;
//! - `scav`: 1 = the page was released to the OS (`MADV_DONTNEED`) or never
//!   touched. Meaningful only where `free` is 1; allocation clears it.
//!
//! and a **summary per 4 MiB chunk** (512 pages) of its free runs, as in Go:
//! `start` (free pages at the chunk's low end), `end` (free pages at its high
//! end) and `max` (longest free run inside). A request for `n` pages:
//!
//! 1. walks the arena's 16 chunk summaries, carrying the free run that ends
//!    at the previous chunk's top (`end`) into the next chunk's `start`;
//! 2. the first chunk where `carried + start >= n`, or whose `max >= n`,
//!    holds the answer; only then are that chunk's 8 bitmap words scanned;
//! 3. arenas whose best run (`max_run`) is shorter than `n` are skipped in
//!    O(1) by the heap.
//!
//! So an allocation reads at most 16 summaries and 8 words, whatever the heap
//! size: first fit by address, which keeps the heap dense at low addresses
//! (Go's policy). Rejected: Go's five-level radix tree over the whole address
//! space (a 2-level structure is enough at our arena count); a size-ordered
//! tree of free runs (allocates from the system allocator under the heap
//! lock, and loses the cheap density data the scavenger needs).
//!
//! # Invariants (checked by [`PageBits::check`])
//!
//! - `free_pages  = popcount(free)`, `scav_pages = popcount(free & scav)`
//! - `scav & !free = 0`; no bit at or above `grown` is set
//! - `sums[c] = summarize(free[c])` for every chunk `c`
//!
//! # Context
//!
//! Every method requires the heap lock (the owner is `HeapInner`).

#![forbid(unsafe_code)]

use crate::class::{CHUNK_PAGES, PAGES_PER_ARENA};

const WORDS: usize = PAGES_PER_ARENA / 64;
const CHUNK_SPAN: usize = if CHUNK_PAGES < PAGES_PER_ARENA {
    CHUNK_PAGES
} else {
    PAGES_PER_ARENA
};
const CHUNKS: usize = PAGES_PER_ARENA / CHUNK_SPAN;
const CHUNK_WORDS: usize = CHUNK_SPAN / 64;

/// Free-run summary of one chunk (Go's `pallocSum`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sum {
    start: u16,
    max: u16,
    end: u16,
}

/// Page bitmaps and chunk summaries of one arena.
#[derive(Debug)]
pub(crate) struct PageBits {
    free: Box<[u64; WORDS]>,
    scav: Box<[u64; WORDS]>,
    sums: [Sum; CHUNKS],
    /// Chunk was at least 96.875 % allocated at the last cycle boundary.
    dense: [bool; CHUNKS],
    /// Pages `[0, grown)` belong to the heap (`HeapSys`).
    pub(crate) grown: usize,
    pub(crate) free_pages: usize,
    pub(crate) scav_pages: usize,
    /// Longest free run in the arena (max over chunks, with runs crossing
    /// chunk boundaries).
    max_run: usize,
}

/// The words covering bits `[start, start + n)`, each with the mask of its
/// bits inside the range.
fn word_masks(start: usize, n: usize) -> impl Iterator<Item = (usize, u64)> {
    let end = start + n;
    let mut i = start;
    std::iter::from_fn(move || {
        if i >= end {
            return None;
        }
        let w = i / 64;
        let lo = i % 64;
        let hi = (end - w * 64).min(64);
        let mask = if hi - lo == 64 {
            !0
        } else {
            ((1u64 << (hi - lo)) - 1) << lo
        };
        i = w * 64 + hi;
        Some((w, mask))
    })
}

/// Sets or clears bits `[start, start + n)`.
fn set_range(words: &mut [u64], start: usize, n: usize, value: bool) {
    for (w, mask) in word_masks(start, n) {
        if value {
            words[w] |= mask;
        } else {
            words[w] &= !mask;
        }
    }
}

/// Counts set bits of `a & b` in `[start, start + n)`.
fn count_range(a: &[u64], b: Option<&[u64]>, start: usize, n: usize) -> usize {
    word_masks(start, n)
        .map(|(w, mask)| (a[w] & b.map_or(!0, |b| b[w]) & mask).count_ones() as usize)
        .sum()
}

/// First index `>= from` (and `< limit`) whose bit is `value`.
fn next_bit(words: &[u64], from: usize, limit: usize, value: bool) -> Option<usize> {
    let mut i = from;
    while i < limit {
        let w = i / 64;
        let x = if value { words[w] } else { !words[w] } >> (i % 64);
        if x != 0 {
            let j = i + x.trailing_zeros() as usize;
            return (j < limit).then_some(j);
        }
        i = (w + 1) * 64;
    }
    None
}

/// Summarises the free runs of `words` (`CHUNK_WORDS` words).
fn summarize(words: &[u64]) -> Sum {
    let bits = words.len() * 64;
    let start = next_bit(words, 0, bits, false).unwrap_or(bits);
    if start == bits {
        let b = bits as u16;
        return Sum {
            start: b,
            max: b,
            end: b,
        };
    }
    let mut end = 0;
    for w in words.iter().rev() {
        let lz = (!w).leading_zeros() as usize;
        end += lz;
        if lz < 64 {
            break;
        }
    }
    let mut max = start.max(end);
    let mut i = start;
    while let Some(s) = next_bit(words, i, bits, true) {
        let e = next_bit(words, s, bits, false).unwrap_or(bits);
        max = max.max(e - s);
        i = e;
    }
    Sum {
        start: start as u16,
        max: max as u16,
        end: end as u16,
    }
}

impl PageBits {
    /// An arena with no pages grown yet.
    pub(crate) fn new() -> PageBits {
        PageBits {
            free: Box::new([0; WORDS]),
            scav: Box::new([0; WORDS]),
            sums: [Sum::default(); CHUNKS],
            dense: [false; CHUNKS],
            grown: 0,
            free_pages: 0,
            scav_pages: 0,
            max_run: 0,
        }
    }

    /// Longest free run, for skipping the arena in O(1).
    pub(crate) fn max_run(&self) -> usize {
        self.max_run
    }

    fn update(&mut self, first_page: usize, n: usize) {
        let c0 = first_page / CHUNK_SPAN;
        let c1 = (first_page + n.max(1) - 1) / CHUNK_SPAN;
        for c in c0..=c1.min(CHUNKS - 1) {
            self.sums[c] = summarize(&self.free[c * CHUNK_WORDS..(c + 1) * CHUNK_WORDS]);
        }
        let mut best = 0;
        let mut run = 0;
        for s in &self.sums {
            if s.start as usize == CHUNK_SPAN {
                run += CHUNK_SPAN;
                best = best.max(run);
                continue;
            }
            best = best.max(run + s.start as usize).max(s.max as usize);
            run = s.end as usize;
        }
        self.max_run = best.max(run);
    }

    /// First free run of `n` pages (lowest address), or `None`.
    pub(crate) fn find(&self, n: usize) -> Option<usize> {
        if n == 0 || n > self.max_run {
            return None;
        }
        let mut run = 0;
        let mut run_start = 0;
        for (c, s) in self.sums.iter().enumerate() {
            let base = c * CHUNK_SPAN;
            if s.start as usize == CHUNK_SPAN {
                if run == 0 {
                    run_start = base;
                }
                run += CHUNK_SPAN;
                if run >= n {
                    return Some(run_start);
                }
                continue;
            }
            if run + s.start as usize >= n {
                return Some(if run == 0 { base } else { run_start });
            }
            if s.max as usize >= n {
                let words = &self.free[c * CHUNK_WORDS..(c + 1) * CHUNK_WORDS];
                let mut i = 0;
                while let Some(a) = next_bit(words, i, CHUNK_SPAN, true) {
                    let e = next_bit(words, a, CHUNK_SPAN, false).unwrap_or(CHUNK_SPAN);
                    if e - a >= n {
                        return Some(base + a);
                    }
                    i = e;
                }
                unreachable!("chunk summary promised a run of {n}");
            }
            run = s.end as usize;
            run_start = base + CHUNK_SPAN - run;
        }
        None
    }

    /// Takes pages `[start, start + n)` (all free). Returns how many of them
    /// were released (so known to read as zero).
    pub(crate) fn alloc(&mut self, start: usize, n: usize) -> usize {
        debug_assert_eq!(count_range(&self.free[..], None, start, n), n);
        let scav = count_range(&self.free[..], Some(&self.scav[..]), start, n);
        set_range(&mut self.free[..], start, n, false);
        set_range(&mut self.scav[..], start, n, false);
        self.free_pages -= n;
        self.scav_pages -= scav;
        self.update(start, n);
        scav
    }

    /// Returns pages `[start, start + n)` (all in use) to the free set. They
    /// stay backed by RAM (not released) until the scavenger runs.
    pub(crate) fn free(&mut self, start: usize, n: usize) {
        debug_assert_eq!(count_range(&self.free[..], None, start, n), 0);
        set_range(&mut self.free[..], start, n, true);
        self.free_pages += n;
        self.update(start, n);
    }

    /// Adds `n` pages at `grown` to the heap: free, and released (never
    /// touched, so not backed by RAM — as Go counts fresh heap memory).
    pub(crate) fn grow(&mut self, n: usize) {
        let start = self.grown;
        assert!(start + n <= PAGES_PER_ARENA);
        set_range(&mut self.free[..], start, n, true);
        set_range(&mut self.scav[..], start, n, true);
        self.grown += n;
        self.free_pages += n;
        self.scav_pages += n;
        self.update(start, n);
    }

    /// Records which chunks are dense (≥ 96.875 % in use, Go's
    /// `scavChunkHiOccFrac`); the background scavenger leaves those alone
    /// for a cycle so it does not break up huge pages that are in use.
    pub(crate) fn note_cycle(&mut self) {
        for c in 0..CHUNKS {
            let free = count_range(&self.free[..], None, c * CHUNK_SPAN, CHUNK_SPAN);
            self.dense[c] = (CHUNK_SPAN - free) * 32 >= CHUNK_SPAN * 31;
        }
    }

    /// Highest run of free, unreleased pages, at most `max` long, skipping
    /// dense chunks unless `include_dense`. Does not change anything.
    pub(crate) fn find_unscavenged(
        &self,
        max: usize,
        include_dense: bool,
    ) -> Option<(usize, usize)> {
        for c in (0..CHUNKS).rev() {
            let lo = c * CHUNK_SPAN;
            let words: Vec<u64> = (c * CHUNK_WORDS..(c + 1) * CHUNK_WORDS)
                .map(|w| self.free[w] & !self.scav[w])
                .collect();
            if words.iter().all(|&w| w == 0) {
                continue;
            }
            let free_now = count_range(&self.free[..], None, lo, CHUNK_SPAN);
            let dense_now = (CHUNK_SPAN - free_now) * 32 >= CHUNK_SPAN * 31;
            if !include_dense && (self.dense[c] || dense_now) {
                continue;
            }
            // Highest run in this chunk.
            let mut best = None;
            let mut i = 0;
            while let Some(a) = next_bit(&words, i, CHUNK_SPAN, true) {
                let e = next_bit(&words, a, CHUNK_SPAN, false).unwrap_or(CHUNK_SPAN);
                best = Some((a, e));
                i = e;
            }
            let (a, e) = best?;
            let n = (e - a).min(max);
            return Some((lo + e - n, n));
        }
        None
    }

    /// Marks free pages `[start, start + n)` released.
    pub(crate) fn mark_scavenged(&mut self, start: usize, n: usize) {
        debug_assert_eq!(count_range(&self.free[..], None, start, n), n);
        let already = count_range(&self.free[..], Some(&self.scav[..]), start, n);
        set_range(&mut self.scav[..], start, n, true);
        self.scav_pages += n - already;
    }

    /// Checks the invariants in the module docs.
    #[cfg(any(test, feature = "verify"))]
    pub(crate) fn check(&self) {
        let free: usize = self.free.iter().map(|w| w.count_ones() as usize).sum();
        assert_eq!(free, self.free_pages, "free_pages = popcount(free)");
        let scav: usize = (0..WORDS)
            .map(|w| (self.free[w] & self.scav[w]).count_ones() as usize)
            .sum();
        assert_eq!(scav, self.scav_pages, "scav_pages = popcount(free & scav)");
        for w in 0..WORDS {
            assert_eq!(self.scav[w] & !self.free[w], 0, "scav & !free = 0");
        }
        if self.grown < PAGES_PER_ARENA {
            assert_eq!(
                count_range(
                    &self.free[..],
                    None,
                    self.grown,
                    PAGES_PER_ARENA - self.grown
                ),
                0,
                "no free bit above grown"
            );
        }
        for c in 0..CHUNKS {
            let s = summarize(&self.free[c * CHUNK_WORDS..(c + 1) * CHUNK_WORDS]);
            assert_eq!(s, self.sums[c], "sums[{c}] = summarize(free)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    #[test]
    fn summaries() {
        let mut w = [0u64; CHUNK_WORDS];
        assert_eq!(summarize(&w), Sum::default());
        w.iter_mut().for_each(|x| *x = !0);
        let all = CHUNK_SPAN as u16;
        assert_eq!(
            summarize(&w),
            Sum {
                start: all,
                max: all,
                end: all
            }
        );
        w[0] = 0b0111;
        if CHUNK_WORDS == 1 {
            w[0] |= 1 << 63;
        } else {
            w[CHUNK_WORDS - 1] = 1 << 63;
        }
        for x in w.iter_mut().take(CHUNK_WORDS - 1).skip(1) {
            *x = 0;
        }
        if CHUNK_WORDS > 2 {
            w[1] = 0xff00;
        }
        let s = summarize(&w);
        assert_eq!(s.start, 3);
        assert_eq!(s.end, 1);
        assert_eq!(s.max, if CHUNK_WORDS > 2 { 8 } else { 3 });
    }

    #[test]
    fn first_fit_by_address_and_coalescing() {
        let mut p = PageBits::new();
        assert_eq!(p.find(1), None);
        p.grow(CHUNK_SPAN);
        assert_eq!(p.scav_pages, CHUNK_SPAN);
        let a = p.find(3).unwrap();
        assert_eq!(a, 0);
        assert_eq!(p.alloc(a, 3), 3);
        let b = p.find(5).unwrap();
        assert_eq!(b, 3);
        p.alloc(b, 5);
        p.free(a, 3);
        assert_eq!(p.find(2), Some(0));
        assert_eq!(p.find(4), Some(8));
        p.free(b, 5);
        assert_eq!(p.find(8), Some(0), "freed neighbours coalesce");
        assert_eq!(p.scav_pages, CHUNK_SPAN - 8);
        p.check();
    }

    #[test]
    fn runs_cross_chunks() {
        if CHUNKS < 2 {
            return;
        }
        let mut p = PageBits::new();
        p.grow(3 * CHUNK_SPAN);
        p.alloc(0, CHUNK_SPAN - 10);
        p.alloc(CHUNK_SPAN + 5, 1);
        // Only [CHUNK_SPAN-10, CHUNK_SPAN+5) = 15 pages before the hole.
        assert_eq!(p.find(15), Some(CHUNK_SPAN - 10));
        assert_eq!(p.find(16), Some(CHUNK_SPAN + 6));
        assert_eq!(p.find(CHUNK_SPAN + 100), Some(CHUNK_SPAN + 6));
        p.check();
    }

    #[test]
    fn random_against_a_model() {
        let mut rng = Rng(42);
        let mut p = PageBits::new();
        let mut model = vec![false; PAGES_PER_ARENA]; // true = free
        let grow = PAGES_PER_ARENA.min(4 * CHUNK_SPAN);
        p.grow(grow);
        model[..grow].iter_mut().for_each(|x| *x = true);
        let mut live: Vec<(usize, usize)> = Vec::new();
        let rounds = if cfg!(miri) { 60 } else { 3000 };
        for _ in 0..rounds {
            if live.is_empty() || rng.below(3) != 0 {
                let big = rng.below(8) == 0;
                let n = (1 + rng.below(if big { 700 } else { 12 }) as usize).min(grow);
                let want =
                    (0..=grow.saturating_sub(n)).find(|&s| model[s..s + n].iter().all(|&f| f));
                let got = p.find(n);
                assert_eq!(got, want, "find({n})");
                if let Some(s) = got {
                    p.alloc(s, n);
                    model[s..s + n].iter_mut().for_each(|x| *x = false);
                    live.push((s, n));
                }
            } else {
                let (s, n) = live.swap_remove(rng.below(live.len() as u64) as usize);
                p.free(s, n);
                model[s..s + n].iter_mut().for_each(|x| *x = true);
            }
        }
        p.check();
    }

    #[test]
    fn scavenge_candidates_skip_dense_chunks() {
        let mut p = PageBits::new();
        p.grow(CHUNK_SPAN);
        p.alloc(0, CHUNK_SPAN);
        let k = (CHUNK_SPAN / 128).max(1); // < 3.125 % free: dense
        p.free(0, k);
        p.note_cycle();
        assert_eq!(p.find_unscavenged(100, false), None, "dense chunk kept");
        assert_eq!(p.find_unscavenged(100, true), Some((0, k)));
        p.mark_scavenged(0, k);
        assert_eq!(p.find_unscavenged(100, true), None);
        assert_eq!(p.scav_pages, k);
        let half = CHUNK_SPAN / 2;
        p.free(k, half);
        p.note_cycle();
        let want = Some((k + half - 10, 10));
        assert_eq!(p.find_unscavenged(10, false), want, "highest first");
        p.check();
    }
}
