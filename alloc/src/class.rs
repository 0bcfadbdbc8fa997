//! Size classes and span classes: the constants of the heap's geometry and
//! the O(1) mapping from a request size to its class (Go's `sizeclasses.go`
//! tables, `spanClass` in `mheap.go`).
//!
//! A **size class** (1..=67) rounds a small request (≤ 32 KiB) up to one of
//! Go's 67 object sizes; class 0 means "large": the object gets a span of its
//! own. A **span class** is `size_class << 1 | noscan`: pointer-free
//! (`noscan`) objects live in different spans than pointerful ones, so the
//! collector never scans a noscan span. There are 68 × 2 = 136 span classes.
//!
//! Lookup: `size <= 1024` → `SIZE_TO_CLASS8[(size + 7) / 8]`, else
//! `SIZE_TO_CLASS128[(size - 1024 + 127) / 128]`: one table load.
//!
//! See `docs/design/alloc.md`.

#![forbid(unsafe_code)]

use crate::sizeclass::*;

/// Heap page (span granule): 8 KiB, Go's `pageSize`.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;

/// Bytes in one arena: 64 MiB as in Go on 64-bit Linux (512 KiB under Miri,
/// whose `std::alloc` stand-in for `mmap` makes big blocks very slow).
pub const ARENA_BYTES: usize = if cfg!(miri) { 512 << 10 } else { 64 << 20 };

/// Heap pages per arena.
pub const PAGES_PER_ARENA: usize = ARENA_BYTES / PAGE_SIZE;

/// Heap pages per page-allocator chunk (4 MiB, Go's `pallocChunkPages`);
/// the heap grows, and the scavenger judges density, a chunk at a time.
pub const CHUNK_PAGES: usize = 512;

/// Number of span classes: every size class, scan and noscan.
pub const NUM_SPAN_CLASSES: usize = NUM_SIZE_CLASSES * 2;

/// A size class: 0 for large objects, 1..=67 for small ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SizeClass(pub u8);

impl SizeClass {
    /// The class of large objects (a span per object).
    pub const LARGE: SizeClass = SizeClass(0);

    /// The class serving `size` bytes (`1..=MAX_SMALL_SIZE`), or
    /// [`SizeClass::LARGE`] above that. Size 0 maps to class 0 too: callers
    /// treat zero-size requests separately.
    #[inline(always)]
    pub fn for_size(size: usize) -> SizeClass {
        if size <= SMALL_SIZE_MAX {
            SizeClass(SIZE_TO_CLASS8[size.div_ceil(SMALL_SIZE_DIV)])
        } else if size <= MAX_SMALL_SIZE {
            SizeClass(SIZE_TO_CLASS128[(size - SMALL_SIZE_MAX).div_ceil(LARGE_SIZE_DIV)])
        } else {
            SizeClass::LARGE
        }
    }

    /// Object size of the class (0 for [`SizeClass::LARGE`]).
    #[inline(always)]
    pub fn size(self) -> usize {
        CLASS_TO_SIZE[self.0 as usize] as usize
    }

    /// Pages in one span of this class.
    #[inline]
    pub fn npages(self) -> usize {
        CLASS_TO_NPAGES[self.0 as usize] as usize
    }

    /// Objects in one span of this class.
    #[inline]
    pub fn objects_per_span(self) -> usize {
        if self.0 == 0 {
            1
        } else {
            self.npages() * PAGE_SIZE / self.size()
        }
    }

    /// Whether this is the large-object class.
    #[inline]
    pub fn is_large(self) -> bool {
        self.0 == 0
    }
}

/// Size class plus the noscan bit (Go's `spanClass`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpanClass(pub u8);

impl SpanClass {
    /// `class << 1 | noscan`.
    #[inline(always)]
    pub fn new(class: SizeClass, noscan: bool) -> SpanClass {
        SpanClass(class.0 << 1 | noscan as u8)
    }

    /// The size class.
    #[inline(always)]
    pub fn size_class(self) -> SizeClass {
        SizeClass(self.0 >> 1)
    }

    /// Whether the objects hold no pointers (the collector skips them).
    #[inline(always)]
    pub fn noscan(self) -> bool {
        self.0 & 1 != 0
    }

    /// Index in `0..NUM_SPAN_CLASSES`.
    #[inline(always)]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Debug for SpanClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SpanClass({}{})",
            self.size_class().0,
            if self.noscan() { ",noscan" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_maps_to_the_smallest_fitting_class() {
        let step = if cfg!(miri) { 61 } else { 1 };
        for size in (1..=MAX_SMALL_SIZE).step_by(step) {
            let c = SizeClass::for_size(size);
            assert!(c.size() >= size, "size {size} class {c:?}");
            assert!(SizeClass(c.0 - 1).size() < size, "size {size} not tight");
        }
        assert_eq!(SizeClass::for_size(MAX_SMALL_SIZE + 1), SizeClass::LARGE);
        assert_eq!(SizeClass::for_size(16).0, 2);
    }

    #[test]
    fn div_magic_is_exact_over_each_span() {
        for (c, &magic) in CLASS_TO_DIV_MAGIC.iter().enumerate().skip(1) {
            let sc = SizeClass(c as u8);
            let magic = magic as u64;
            let step = if cfg!(miri) { 997 } else { 1 };
            for n in (0..=sc.npages() * PAGE_SIZE).step_by(step) {
                assert_eq!(((n as u64 * magic) >> 32) as usize, n / sc.size());
            }
        }
    }

    #[test]
    fn geometry() {
        assert_eq!(NUM_SIZE_CLASSES, 68);
        assert_eq!(NUM_SPAN_CLASSES, 136);
        assert_eq!(PAGE_SIZE, 8192);
        const { assert!(MAX_OBJS_PER_SPAN <= 1024) };
        const { assert!(PAGES_PER_ARENA % CHUNK_PAGES == 0 || PAGES_PER_ARENA < CHUNK_PAGES) };
        let sc = SpanClass::new(SizeClass(5), true);
        assert_eq!(sc.size_class(), SizeClass(5));
        assert!(sc.noscan());
        assert_eq!(format!("{sc:?}"), "SpanClass(5,noscan)");
    }
}
