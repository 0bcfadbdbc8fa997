//! Heap statistics in the shape of Go's `runtime.MemStats`, the counters
//! behind them, and the heap's invariant checker.
//!
//! # Counting (Go's `mcache.refill` / `releaseAll` scheme)
//!
//! The allocation fast path touches no shared counter. The per-class
//! object counters are kept per span class in its MCentral, beside the
//! lock under which they change, and summed when read (as Go sums its
//! per-P `heapStats` deltas). When an MCache takes
//! a span it counts **every free slot** of it as allocated
//! (`mallocs[c] += nelems - alloc_count`); when it lets go it takes back the
//! slots it did not hand out. Explicit frees and sweeps add to `frees[c]`.
//! Large objects count one malloc/free each and `npages * 8 KiB` bytes.
//! Page counters change under the heap lock.
//!
//! # Equations (checked by `Heap::check` under the `verify` feature)
//!
//! ```text
//! HeapObjects  = Mallocs − Frees                                        (E1)
//! HeapAlloc    = Σ_c (mallocs[c] − frees[c]) × size[c] + large bytes live (E2)
//! HeapSys      = HeapInuse + HeapIdle                                   (E3)
//! HeapReleased ≤ HeapIdle;  HeapAlloc ≤ HeapInuse                       (E4)
//! Sys          = HeapSys + MSpanSys + OtherSys (index, page maps)       (E5)
//! walks (quiescent heap, MCaches may hold spans but not run):
//!   HeapInuse    = Σ_live spans npages × 8 KiB                          (W1)
//!   HeapIdle     = Σ_arenas popcount(free) × 8 KiB                      (W2)
//!   HeapReleased = Σ_arenas popcount(free & scav) × 8 KiB               (W3)
//!   HeapSys      = Σ_arenas grown × 8 KiB                               (W4)
//!   mallocs[c] − frees[c] = Σ_spans of c (cached ? nelems − pending_frees
//!                                                  : alloc_count)        (W5)
//!   alloc_count = popcount(alloc_bits) for uncached spans               (W6)
//!   span.sweepgen ∈ {sg−2, sg, sg+1, sg+3}; page map of every page of a
//!   live span points to it; list membership matches fullness            (W7)
//! ```

#![forbid(unsafe_code)]

use crate::class::{PAGE_SIZE, SizeClass};
use crate::sizeclass::NUM_SIZE_CLASSES;
use std::sync::atomic::{AtomicU64, Ordering};

/// Per-size-class allocation counts (Go's `MemStats.BySize`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SizeClassStats {
    /// Object size of the class (0: large objects).
    pub size: u64,
    /// Objects allocated (cumulative).
    pub mallocs: u64,
    /// Objects freed (cumulative).
    pub frees: u64,
}

/// A snapshot of the heap's statistics (Go's `runtime.MemStats` subset).
///
/// Counters are read one by one, so the snapshot is exact only when no
/// MCache is allocating concurrently (Go stops the world for
/// `ReadMemStats`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemStats {
    /// Bytes obtained from the OS for the heap and its metadata.
    pub sys: u64,
    /// Bytes of allocated objects (including unswept dead ones).
    pub heap_alloc: u64,
    /// Cumulative bytes allocated.
    pub total_alloc: u64,
    /// Heap bytes obtained from the OS (in use + idle).
    pub heap_sys: u64,
    /// Bytes in free pages (including released ones).
    pub heap_idle: u64,
    /// Bytes in pages of live spans.
    pub heap_inuse: u64,
    /// Bytes of free pages returned to the OS.
    pub heap_released: u64,
    /// Allocated objects.
    pub heap_objects: u64,
    /// Cumulative objects allocated.
    pub mallocs: u64,
    /// Cumulative objects freed.
    pub frees: u64,
    /// Bytes of span records (Go's `MSpanSys`).
    pub mspan_sys: u64,
    /// Bytes of arena index and page maps.
    pub other_sys: u64,
    /// Per size class (index = class; class 0 = large objects).
    pub by_size: Vec<SizeClassStats>,
}

/// Per-size-class object counts, summed over the two span classes
/// (scan, noscan) whose MCentrals keep them: `(mallocs, frees)`.
pub(crate) type ClassCounts = [(u64, u64); NUM_SIZE_CLASSES];

/// The shared counters. The per-class object counters live in the
/// MCentrals (next to their locks) and are summed on read.
#[derive(Debug)]
pub(crate) struct Counters {
    /// Atomic (Relaxed): bytes of large objects allocated / freed.
    pub(crate) large_alloc_bytes: AtomicU64,
    pub(crate) large_free_bytes: AtomicU64,
    /// Pages: written under the heap lock, read Relaxed.
    pub(crate) pages_sys: AtomicU64,
    pub(crate) pages_inuse: AtomicU64,
    pub(crate) pages_idle: AtomicU64,
    pub(crate) pages_released: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            large_alloc_bytes: AtomicU64::new(0),
            large_free_bytes: AtomicU64::new(0),
            pages_sys: AtomicU64::new(0),
            pages_inuse: AtomicU64::new(0),
            pages_idle: AtomicU64::new(0),
            pages_released: AtomicU64::new(0),
        }
    }
}

/// Relaxed add.
#[inline]
pub(crate) fn add(c: &AtomicU64, v: u64) {
    // Relaxed: statistics; consistency comes from the locks around them.
    c.fetch_add(v, Ordering::Relaxed);
}

/// Relaxed subtract.
#[inline]
pub(crate) fn sub(c: &AtomicU64, v: u64) {
    // Relaxed: as in `add`.
    c.fetch_sub(v, Ordering::Relaxed);
}

#[inline]
pub(crate) fn get(c: &AtomicU64) -> u64 {
    // Relaxed: as in `add`.
    c.load(Ordering::Relaxed)
}

impl Counters {
    /// Bytes of live objects (E2).
    fn heap_alloc(&self, counts: &ClassCounts) -> u64 {
        let small: u64 = (1..NUM_SIZE_CLASSES)
            .map(|c| counts[c].0.wrapping_sub(counts[c].1) * SizeClass(c as u8).size() as u64)
            .sum();
        small + get(&self.large_alloc_bytes) - get(&self.large_free_bytes)
    }

    /// Snapshot (per-class counts and metadata sizes supplied by the heap).
    pub(crate) fn snapshot(
        &self,
        counts: &ClassCounts,
        mspan_sys: u64,
        other_sys: u64,
    ) -> MemStats {
        let by_size: Vec<SizeClassStats> = (0..NUM_SIZE_CLASSES)
            .map(|c| SizeClassStats {
                size: SizeClass(c as u8).size() as u64,
                mallocs: counts[c].0,
                frees: counts[c].1,
            })
            .collect();
        let mallocs: u64 = by_size.iter().map(|s| s.mallocs).sum();
        let frees: u64 = by_size.iter().map(|s| s.frees).sum();
        let total_alloc =
            by_size.iter().map(|s| s.mallocs * s.size).sum::<u64>() + get(&self.large_alloc_bytes);
        let page = PAGE_SIZE as u64;
        let heap_sys = get(&self.pages_sys) * page;
        MemStats {
            sys: heap_sys + mspan_sys + other_sys,
            heap_alloc: self.heap_alloc(counts),
            total_alloc,
            heap_sys,
            heap_idle: get(&self.pages_idle) * page,
            heap_inuse: get(&self.pages_inuse) * page,
            heap_released: get(&self.pages_released) * page,
            heap_objects: mallocs - frees,
            mallocs,
            frees,
            mspan_sys,
            other_sys,
            by_size,
        }
    }
}

impl MemStats {
    /// Checks the equations that hold for any snapshot of a quiescent heap
    /// (E1–E5).
    pub fn check_equations(&self) {
        assert_eq!(
            self.heap_objects,
            self.mallocs - self.frees,
            "E1 HeapObjects = Mallocs - Frees"
        );
        let by_size_alloc: u64 = self.by_size[1..]
            .iter()
            .map(|s| (s.mallocs - s.frees) * s.size)
            .sum::<u64>();
        assert!(
            by_size_alloc <= self.heap_alloc,
            "E2 small part of HeapAlloc"
        );
        assert_eq!(
            self.heap_sys,
            self.heap_inuse + self.heap_idle,
            "E3 HeapSys = HeapInuse + HeapIdle"
        );
        assert!(
            self.heap_released <= self.heap_idle,
            "E4 HeapReleased <= HeapIdle"
        );
        assert!(
            self.heap_alloc <= self.heap_inuse,
            "E4 HeapAlloc <= HeapInuse"
        );
        assert_eq!(
            self.sys,
            self.heap_sys + self.mspan_sys + self.other_sys,
            "E5 Sys"
        );
    }
}
