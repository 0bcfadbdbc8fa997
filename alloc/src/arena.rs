//! Arenas: 64 MiB reservations of address space (4 MiB under Miri), the
//! index from any address to its arena, and each arena's page map from page
//! to span (Go's `heapArena`, `mheap.arenas`, `spanOf`).
//!
//! # Lookup in O(1)
//!
//! ```text
//! addr ──► i = addr >> 26 ──► l1[i >> L2_BITS] ──► l2[i & mask] ──► Arena
//!          (48-bit space: 2^22 arenas)                                 │
//!      page = (addr - arena.base) >> 13 ──► arena.spans[page] ──► Span ┘
//!      (then: span live and base <= addr < limit, else None)
//! ```
//!
//! Two dependent loads reach the arena, one more the span: no search, no
//! lock. Interior pointers resolve like base pointers. An address outside
//! every arena, in a page no span covers, or in a span that has been freed
//! yields `None`.
//!
//! The index has a small fixed first level (2048 entries, 16 KiB) and
//! second-level tables allocated on demand, so a test heap costs little.
//! Arenas live at addresses below 2^48 (x86_64 and aarch64 user space
//! without 5-level paging); a reservation above that is given back and
//! reported as an error.
//!
//! # Ownership
//!
//! The index owns every [`Arena`] record (leaked boxes, freed in `Drop`
//! together with the reservations) and the heap owns the index, so a
//! `&Arena` or a span reference obtained through `&Heap` stays valid as long
//! as that borrow. Entries are published with Release stores under the heap
//! lock and read with Acquire loads without it.
//!
//! See `docs/design/alloc.md`.

use crate::class::{ARENA_BYTES, PAGE_SIZE, PAGES_PER_ARENA};
use crate::span::{Span, SpanRef};
use crate::sys::{self, SysError};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Address bits covered by the index: 48 (x86_64/aarch64 user space);
/// 40 under Miri, whose addresses are small, to keep the tables small.
const ADDR_BITS: u32 = if cfg!(miri) { 40 } else { 48 };
const ARENA_SHIFT: u32 = ARENA_BYTES.trailing_zeros();
const INDEX_BITS: u32 = ADDR_BITS - ARENA_SHIFT;
const L2_BITS: u32 = INDEX_BITS / 2;
const L1_ENTRIES: usize = 1 << (INDEX_BITS - L2_BITS);
const L2_ENTRIES: usize = 1 << L2_BITS;

/// One arena: a 64 MiB unit of a reservation, and its page map.
#[derive(Debug)]
pub(crate) struct Arena {
    /// Start of the arena, with the reservation's provenance. Immutable.
    base: NonNull<u8>,
    /// Page map: span covering each page, or null. Atomic: Release under the
    /// heap lock; Acquire by lookups.
    spans: Box<[AtomicPtr<Span>]>,
    /// For the first arena of a reservation, the reservation's length (it
    /// is released in one call); 0 otherwise. Immutable.
    reservation: usize,
    /// Position of the arena's page bitmaps in the heap's arena list.
    /// Immutable.
    pub(crate) id: usize,
}

// SAFETY: `base` is an address in a mapping the index owns; all mutable
// state is atomic.
unsafe impl Send for Arena {}
// SAFETY: as above.
unsafe impl Sync for Arena {}

impl Arena {
    /// Address of the arena's first byte.
    pub(crate) fn base_addr(&self) -> usize {
        self.base.addr().get()
    }

    /// Pointer to page `page` of the arena (with provenance).
    pub(crate) fn page_ptr(&self, page: usize) -> NonNull<u8> {
        debug_assert!(page < PAGES_PER_ARENA);
        self.base
            .with_addr(self.base.addr().saturating_add(page * PAGE_SIZE))
    }

    /// The span recorded for page `page` (possibly dead or stale).
    #[inline]
    pub(crate) fn span_at(&self, page: usize) -> Option<SpanRef<'_>> {
        // Acquire: pairs with the Release in `set_spans`.
        let p = NonNull::new(self.spans[page].load(Ordering::Acquire))?;
        // SAFETY: every non-null page-map entry is a record of the heap's
        // span pool, which the heap drops after the index (so after every
        // borrow of `self`).
        Some(unsafe { SpanRef::from_raw(p) })
    }

    /// Returns the physical memory of free pages `[page, page + n)` to the
    /// OS (`MADV_DONTNEED`); they read as zero afterwards.
    ///
    /// # Context
    ///
    /// Must hold the heap lock, and the pages must be free in the page
    /// allocator (no span, hence no object, covers them).
    pub(crate) fn decommit_pages(&self, page: usize, n: usize) -> Result<(), SysError> {
        assert!(page + n <= PAGES_PER_ARENA);
        // SAFETY: the range lies inside this arena's reservation (checked
        // above) and, per the context, holds no live object: free pages
        // belong to no span, and the held heap lock keeps them free.
        unsafe { sys::decommit(self.page_ptr(page), n * PAGE_SIZE) }
    }

    /// Advises for or against transparent huge pages on the whole arena.
    pub(crate) fn advise_huge_pages(&self, on: bool) -> Result<(), SysError> {
        // SAFETY: the range is exactly this arena, inside our reservation;
        // the advice does not change its contents.
        unsafe { sys::huge_pages(self.base, ARENA_BYTES, on) }
    }

    /// Points pages `[first, first + n)` at `span` (or clears them).
    ///
    /// # Context
    ///
    /// Must hold the heap lock.
    pub(crate) fn set_spans(&self, first: usize, n: usize, span: Option<SpanRef<'_>>) {
        let p = span.map_or(std::ptr::null_mut(), |s| s.raw());
        for e in &self.spans[first..first + n] {
            // Release: pairs with the Acquire in `span_at`.
            e.store(p, Ordering::Release);
        }
    }
}

struct L2 {
    entries: [AtomicPtr<Arena>; L2_ENTRIES],
}

/// Address → arena index (Go's `mheap.arenas`).
pub(crate) struct ArenaIndex {
    /// Atomic: Release when a second level is installed (heap lock held);
    /// Acquire by lookups.
    l1: Box<[AtomicPtr<L2>]>,
}

impl std::fmt::Debug for ArenaIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArenaIndex").finish_non_exhaustive()
    }
}

impl Default for ArenaIndex {
    fn default() -> Self {
        ArenaIndex {
            l1: (0..L1_ENTRIES)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
        }
    }
}

impl ArenaIndex {
    /// The arena containing `addr`, if it is ours.
    #[inline]
    pub(crate) fn lookup(&self, addr: usize) -> Option<&Arena> {
        let i = addr >> ARENA_SHIFT;
        if i >= 1 << INDEX_BITS {
            return None;
        }
        // Acquire: pairs with the Release in `insert`.
        let l2 = self.l1[i >> L2_BITS].load(Ordering::Acquire);
        if l2.is_null() {
            return None;
        }
        // SAFETY: non-null level-1 entries point to L2 tables leaked in
        // `insert` and freed only in `drop` (which needs `&mut self`).
        let l2 = unsafe { &*l2 };
        // Acquire: pairs with the Release in `insert`.
        let a = l2.entries[i & (L2_ENTRIES - 1)].load(Ordering::Acquire);
        // SAFETY: non-null level-2 entries point to Arenas leaked in
        // `insert` and freed only in `drop`.
        (!a.is_null()).then(|| unsafe { &*a })
    }

    /// The span covering `addr` if it is live: O(1), lock-free.
    #[inline]
    pub(crate) fn span_of(&self, addr: usize) -> Option<SpanRef<'_>> {
        let a = self.lookup(addr)?;
        let s = a.span_at((addr - a.base_addr()) / PAGE_SIZE)?;
        s.contains(addr).then_some(s)
    }

    fn insert(&self, arena: Arena) -> &Arena {
        let i = arena.base_addr() >> ARENA_SHIFT;
        let slot = &self.l1[i >> L2_BITS];
        // Acquire: pairs with the Release below (by an earlier insert).
        let mut l2 = slot.load(Ordering::Acquire);
        if l2.is_null() {
            let fresh = Box::into_raw(Box::new(L2 {
                entries: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            }));
            // Release: pairs with the Acquire in `lookup`.
            slot.store(fresh, Ordering::Release);
            l2 = fresh;
        }
        let a = Box::into_raw(Box::new(arena));
        // SAFETY: `l2` is a live L2 table (see `lookup`).
        let entry = unsafe { &(*l2).entries[i & (L2_ENTRIES - 1)] };
        // Release: pairs with the Acquire in `lookup`.
        entry.store(a, Ordering::Release);
        // SAFETY: just leaked; freed only in `drop`.
        unsafe { &*a }
    }

    /// Reserves `units` contiguous arenas (aligned to the arena size) and
    /// registers them. Returns their base addresses.
    ///
    /// # Context
    ///
    /// Must hold the heap lock.
    pub(crate) fn grow(&self, units: usize, first_id: usize) -> Result<Vec<usize>, SysError> {
        let bytes = units.checked_mul(ARENA_BYTES).ok_or(SysError {
            op: "mmap",
            size: usize::MAX,
            errno: libc::ENOMEM,
        })?;
        let p = sys::reserve_aligned(bytes, ARENA_BYTES)?;
        if (p.addr().get() + bytes - 1) >> ADDR_BITS != 0 {
            // SAFETY: our fresh reservation, never handed out.
            let _ = unsafe { sys::release(p, bytes) };
            return Err(SysError {
                op: "mmap (address above 2^48)",
                size: bytes,
                errno: libc::ENOMEM,
            });
        }
        let mut bases = Vec::with_capacity(units);
        for u in 0..units {
            let base = p.with_addr(p.addr().saturating_add(u * ARENA_BYTES));
            let a = self.insert(Arena {
                base,
                spans: (0..PAGES_PER_ARENA)
                    .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                    .collect(),
                reservation: if u == 0 { bytes } else { 0 },
                id: first_id + u,
            });
            bases.push(a.base_addr());
        }
        Ok(bases)
    }

    /// Bytes of index and page-map metadata (part of `Sys`).
    pub(crate) fn metadata_bytes(&self, arenas: usize) -> usize {
        L1_ENTRIES * 8 + arenas * (PAGES_PER_ARENA * 8 + std::mem::size_of::<Arena>())
    }
}

impl Drop for ArenaIndex {
    fn drop(&mut self) {
        for slot in self.l1.iter() {
            let l2 = slot.load(Ordering::Acquire);
            if l2.is_null() {
                continue;
            }
            // SAFETY: leaked in `insert`; `&mut self` means no lookup borrow
            // is alive, and each table is freed once.
            let l2 = unsafe { Box::from_raw(l2) };
            for e in l2.entries.iter() {
                let a = e.load(Ordering::Acquire);
                if a.is_null() {
                    continue;
                }
                // SAFETY: leaked in `insert`, freed once, here.
                let a = unsafe { Box::from_raw(a) };
                if a.reservation != 0 {
                    // SAFETY: the whole reservation made in `grow`; the heap
                    // is being dropped, so no object in it can be reached.
                    let _ = unsafe { sys::release(a.base, a.reservation) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_registered_arenas_only() {
        let idx = ArenaIndex::default();
        assert!(idx.lookup(0x1000).is_none());
        assert!(idx.lookup(usize::MAX).is_none());
        let bases = idx.grow(2, 0).unwrap();
        assert_eq!(idx.lookup(bases[1]).unwrap().id, 1);
        assert_eq!(bases[1], bases[0] + ARENA_BYTES);
        for &b in &bases {
            assert_eq!(b % ARENA_BYTES, 0);
            assert_eq!(idx.lookup(b).unwrap().base_addr(), b);
            assert_eq!(idx.lookup(b + ARENA_BYTES - 1).unwrap().base_addr(), b);
        }
        assert!(
            idx.lookup(bases[0] - 1).is_none()
                || idx.lookup(bases[0] - 1).unwrap().base_addr() != bases[0]
        );
        assert!(idx.span_of(bases[0] + 100).is_none(), "no span yet");
    }
}
