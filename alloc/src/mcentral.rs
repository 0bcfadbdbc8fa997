//! MCentral: the spans of one span class that no MCache holds (Go's
//! `mcentral.go`).
//!
//! # Lists
//!
//! Four lists per span class, as Go's two `spanSet` pairs:
//!
//! ```text
//! partial[swept]   partial[unswept]   full[swept]   full[unswept]
//! swept = (sweepgen / 2) % 2, unswept = 1 − swept
//! ```
//!
//! Adding 2 to the heap's `sweepgen` at the start of a sweep cycle turns
//! every "swept" list into an "unswept" one in O(1); the previous cycle's
//! unswept lists are empty by then (the heap finishes sweeping first).
//!
//! # Algorithms
//!
//! `cache_spans` (an MCache needs a span with a free slot; it asks for
//! 4–16 at once so one lock acquisition serves several refills, and gives
//! full spans back in batches through `uncache_spans`). Per span:
//! 1. pop `partial[swept]` (or take the class's empty reserve span);
//! 2. else pop `partial[unswept]`, sweep it, use it if it kept a free slot;
//! 3. else sweep up to 100 spans of `full[unswept]` (Go's budget), using
//!    the first that gained a free slot and filing the rest as `full[swept]`;
//! 4. else, if no span was found at all, allocate a fresh span from the
//!    page heap (lock released).
//!
//! The span gets `sweepgen = sg + 3` ("swept, cached") and all its free slots
//! count as allocated (stats module).
//!
//! `uncache_span`: apply explicit frees made while cached; a span cached
//! before the cycle began (`sg + 1`) is swept now; then it is filed as full
//! or partial, or its pages go back to the heap if it is empty.
//!
//! `alloc_large` (a large object): reclaim first, as Go's `mheap.reclaim`
//! — sweep unswept large spans, newest first, until enough pages are free
//! — then take a span from the page heap and file it as full.
//!
//! Lists are vectors of span pointers; each span stores its list and
//! position, so removal from the middle (explicit free of an object of a
//! full span) is an O(1) swap-remove.
//!
//! # Context
//!
//! Lock order: MCentral lock → heap lock → span-pool lock. Sweeping a span
//! happens under its MCentral lock (a span is at most 16 bitmap words, so
//! this is short), which is what makes explicit `free` race-free against
//! sweeping.

#![forbid(unsafe_code)]

use crate::class::{PAGE_SIZE, SpanClass};
use crate::error::{AllocError, FreeError};
use crate::mheap::Heap;
use crate::span::{NO_LIST, SpanPtr, SpanRef};
use crate::stats::add;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const PARTIAL: u8 = 0;
const FULL: u8 = 2;

fn swept(sg: u32) -> u8 {
    ((sg / 2) % 2) as u8
}

#[derive(Debug, Default)]
pub(crate) struct Lists {
    sets: [Vec<SpanPtr>; 4],
    /// One empty, swept span kept back from the page heap, so a class that
    /// allocates and frees in a steady rhythm does not return a span to
    /// the page heap and take it back again each time. In no list.
    reserve: Option<SpanPtr>,
}

impl Lists {
    fn push(&mut self, heap: &Heap, s: SpanRef<'_>, list: u8) {
        let _ = heap;
        let v = &mut self.sets[list as usize];
        // Relaxed (list fields): protected by the MCentral lock.
        s.span().list.store(list, Ordering::Relaxed);
        s.span().list_pos.store(v.len(), Ordering::Relaxed);
        v.push(s.ptr());
    }

    fn remove(&mut self, heap: &Heap, s: SpanRef<'_>) {
        // Relaxed (list fields): protected by the MCentral lock.
        let list = s.span().list.swap(NO_LIST, Ordering::Relaxed);
        if list == NO_LIST {
            return;
        }
        let pos = s.span().list_pos.load(Ordering::Relaxed);
        let v = &mut self.sets[list as usize];
        debug_assert_eq!(v[pos], s.ptr());
        v.swap_remove(pos);
        if pos < v.len() {
            heap.spans
                .resolve(v[pos])
                .span()
                .list_pos
                .store(pos, Ordering::Relaxed);
        }
    }

    fn pop<'h>(&mut self, heap: &'h Heap, list: u8) -> Option<SpanRef<'h>> {
        let p = self.sets[list as usize].pop()?;
        let s = heap.spans.resolve(p);
        // Relaxed: protected by the MCentral lock.
        s.span().list.store(NO_LIST, Ordering::Relaxed);
        Some(s)
    }
}

/// The central free lists of one span class.
///
/// Aligned to 128 bytes (two cache lines, the adjacent-line prefetch unit,
/// as Go pads `mcentral`): Ps refilling different classes do not share a
/// line. The class's object counters sit in the same lines as its lock, so
/// counting a refill touches no line that the lock did not already bring
/// in (they were one shared array before, a line bounced per refill).
#[derive(Debug)]
#[repr(C, align(128))]
pub(crate) struct MCentral {
    /// Objects of this span class counted as allocated (stats module).
    /// Atomic (Relaxed): added under this lock except for fresh spans.
    pub(crate) mallocs: AtomicU64,
    /// Objects of this span class freed (sweep, explicit free). Atomic
    /// (Relaxed): added under this lock.
    pub(crate) frees: AtomicU64,
    /// The four span lists. Protected by: this lock.
    pub(crate) lists: Mutex<Lists>,
    /// Immutable.
    spc: SpanClass,
}

impl MCentral {
    pub(crate) fn new(spc: SpanClass) -> MCentral {
        MCentral {
            mallocs: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            lists: Mutex::new(Lists::default()),
            spc,
        }
    }

    /// The span class whose spans this MCentral lists.
    pub(crate) fn span_class(&self) -> SpanClass {
        self.spc
    }

    /// Files a swept span by fullness.
    fn place(&self, l: &mut Lists, heap: &Heap, s: SpanRef<'_>, sg: u32) {
        let kind = if s.alloc_count() == s.nelems() {
            FULL
        } else {
            PARTIAL
        };
        l.push(heap, s, kind + swept(sg));
    }

    /// Sweeps `s` (state `sg - 1`, in no list). Frees its pages if it is
    /// empty (unless `preserve`: the caller will use or file it, Go's
    /// `sweep(preserve)`), else sets `sweepgen = sg`. Returns the bytes
    /// freed and whether the span survived.
    fn sweep_locked(&self, heap: &Heap, s: SpanRef<'_>, sg: u32, preserve: bool) -> (usize, bool) {
        let (before, after) = s.sweep_bits();
        let freed = before - after;
        add(&self.frees, freed as u64);
        let bytes = freed * s.elemsize();
        let large = self.spc.size_class().is_large();
        if large && freed > 0 {
            add(&heap.counters.large_free_bytes, bytes as u64);
        }
        if after == 0 && (large || !preserve) {
            heap.free_span(s);
            return (bytes, false);
        }
        // Release: pairs with the Acquire in `SpanRef::sweepgen`.
        s.span().sweepgen.store(sg, Ordering::Release);
        (bytes, true)
    }

    /// Marks `s` cached and counts its free slots as allocated.
    fn take<'h>(&self, s: SpanRef<'h>, sg: u32) -> SpanRef<'h> {
        // Release: pairs with the Acquire in `SpanRef::sweepgen`.
        s.span()
            .sweepgen
            .store(sg.wrapping_add(3), Ordering::Release);
        add(&self.mallocs, (s.nelems() - s.alloc_count()) as u64);
        s
    }

    /// Swept spans with free slots, now cached by the caller (Go's
    /// `cacheSpan`): up to `want` of them under one lock acquisition (at least one: a new span from the heap if the lists
    /// have none). Every span returned is cached by the caller, which must
    /// give back the ones it does not use with `uncache_span(s, s.alloc_count())`.
    pub(crate) fn cache_spans<'h>(
        &self,
        heap: &'h Heap,
        want: usize,
        out: &mut Vec<SpanRef<'h>>,
    ) -> Result<(), AllocError> {
        let start = out.len();
        {
            let mut l = self.lists.lock().unwrap();
            let sg = heap.sweepgen();
            while out.len() - start < want {
                match self.find_locked(&mut l, heap, sg) {
                    Some(s) => out.push(s),
                    None => break,
                }
            }
        }
        if out.len() > start {
            return Ok(());
        }
        let class = self.spc.size_class();
        let sg = heap.sweepgen();
        let s = heap.alloc_span(class.npages(), self.spc, 1, sg.wrapping_add(3))?;
        add(&self.mallocs, s.nelems() as u64);
        out.push(s);
        Ok(())
    }

    /// The search of `cache_spans` under the lock: a swept partial span, the
    /// reserve, or an unswept span that sweeping frees up; taken (cached).
    fn find_locked<'h>(&self, l: &mut Lists, heap: &'h Heap, sg: u32) -> Option<SpanRef<'h>> {
        let sw = swept(sg);
        if let Some(s) = l.pop(heap, PARTIAL + sw) {
            return Some(self.take(s, sg));
        }
        if let Some(p) = l.reserve.take() {
            return Some(self.take(heap.spans.resolve(p), sg));
        }
        if let Some(s) = self.sweep_until_free(l, heap, sg, PARTIAL + (1 - sw), usize::MAX) {
            return Some(s);
        }
        // Go's budget: sweep at most 100 full spans looking for a freed slot.
        self.sweep_until_free(l, heap, sg, FULL + (1 - sw), 100)
    }

    /// Pops up to `budget` unswept spans from list `list`, sweeping each;
    /// the first that has a free slot is taken (cached), the others are
    /// filed as swept.
    fn sweep_until_free<'h>(
        &self,
        l: &mut Lists,
        heap: &'h Heap,
        sg: u32,
        list: u8,
        budget: usize,
    ) -> Option<SpanRef<'h>> {
        for _ in 0..budget {
            let s = l.pop(heap, list)?;
            // Release: pairs with the Acquire in `SpanRef::sweepgen`.
            s.span()
                .sweepgen
                .store(sg.wrapping_sub(1), Ordering::Release);
            if self.sweep_locked(heap, s, sg, true).1 {
                if s.alloc_count() < s.nelems() {
                    return Some(self.take(s, sg));
                }
                self.place(l, heap, s, sg);
            }
        }
        None
    }

    /// Takes back a span from an MCache (Go's `uncacheSpan`). `ac` is its
    /// alloc count after the cursor's write-back.
    pub(crate) fn uncache_span(&self, heap: &Heap, s: SpanRef<'_>, ac: usize) {
        let mut l = self.lists.lock().unwrap();
        self.uncache_locked(&mut l, heap, s, ac);
    }

    /// [`MCentral::uncache_span`] for several spans of this class under one
    /// lock acquisition (an MCache returns full spans in batches).
    pub(crate) fn uncache_spans<'h>(
        &self,
        heap: &Heap,
        spans: impl Iterator<Item = (SpanRef<'h>, usize)>,
    ) {
        let mut l = self.lists.lock().unwrap();
        for (s, ac) in spans {
            self.uncache_locked(&mut l, heap, s, ac);
        }
    }

    fn uncache_locked(&self, l: &mut Lists, heap: &Heap, s: SpanRef<'_>, ac: usize) {
        let sg = heap.sweepgen();
        crate::stats::sub(&self.mallocs, (s.nelems() - ac) as u64);
        s.apply_freed();
        if s.sweepgen() == sg.wrapping_add(1) {
            // Cached before this cycle began: its marks are this cycle's.
            // Release: pairs with the Acquire in `SpanRef::sweepgen`.
            s.span()
                .sweepgen
                .store(sg.wrapping_sub(1), Ordering::Release);
            if self.sweep_locked(heap, s, sg, true).1 {
                self.place_or_release(l, heap, s, sg);
            }
            return;
        }
        debug_assert_eq!(
            s.sweepgen(),
            sg.wrapping_add(3),
            "uncaching a span that is not cached"
        );
        // Release: as above.
        s.span().sweepgen.store(sg, Ordering::Release);
        self.place_or_release(l, heap, s, sg);
    }

    /// Files a swept, unlisted span: by fullness if it holds objects; an
    /// empty one becomes the reserve if that is vacant, else its pages go
    /// back to the page heap.
    fn place_or_release(&self, l: &mut Lists, heap: &Heap, s: SpanRef<'_>, sg: u32) {
        if s.alloc_count() > 0 {
            self.place(l, heap, s, sg);
        } else if l.reserve.is_none() && !self.spc.size_class().is_large() {
            l.reserve = Some(s.ptr());
        } else {
            heap.free_span(s);
        }
    }

    /// At a cycle boundary: the (empty) reserve span counts as swept in the
    /// new cycle; stray marks on its free slots are dropped.
    pub(crate) fn refresh_reserve(&self, heap: &Heap) {
        let l = self.lists.lock().unwrap();
        if let Some(p) = l.reserve {
            let s = heap.spans.resolve(p);
            s.sweep_bits();
            // Release: pairs with the Acquire in `SpanRef::sweepgen`.
            s.span().sweepgen.store(heap.sweepgen(), Ordering::Release);
        }
    }

    /// Returns the reserve span, if any, to the page heap.
    pub(crate) fn release_reserve(&self, heap: &Heap) {
        let mut l = self.lists.lock().unwrap();
        if let Some(p) = l.reserve.take() {
            heap.free_span(heap.spans.resolve(p));
        }
    }

    /// Allocates a large span of `npages` pages (aligned to `align_pages`)
    /// and files it as full, after reclaiming (Go's `mheap.reclaim`): it
    /// first sweeps unswept large spans of this class, then of `other` (the
    /// other large class), until `npages` pages are free again, so a program
    /// that makes large garbage reuses those pages within the cycle instead
    /// of growing the heap until the next `sweep_all`. The unswept list
    /// pops the most recently allocated span first, so the pages reused are
    /// the most recently written (still in cache).
    pub(crate) fn alloc_large<'h>(
        &self,
        heap: &'h Heap,
        npages: usize,
        align_pages: usize,
        other: &MCentral,
    ) -> Result<SpanRef<'h>, AllocError> {
        debug_assert!(self.spc.size_class().is_large() && other.spc.size_class().is_large());
        let mut l = self.lists.lock().unwrap();
        // The sweep generation changes only with the world stopped.
        let sg = heap.sweepgen();
        let got = self.reclaim_locked(&mut l, heap, sg, npages);
        if got < npages {
            // Never hold one MCentral's lock while taking another's: two
            // threads allocating large objects of the two classes would
            // each hold one and wait for the other (it hung the alloc
            // stress test in CI).
            drop(l);
            {
                // Finds nothing at once if the other class has no unswept
                // span (one lock; a separate emptiness check took it twice).
                let mut lo = other.lists.lock().unwrap();
                other.reclaim_locked(&mut lo, heap, sg, npages - got);
            }
            l = self.lists.lock().unwrap();
        }
        let s = heap.alloc_span(npages, self.spc, align_pages, sg)?;
        l.push(heap, s, FULL + swept(sg));
        add(&self.mallocs, 1);
        add(
            &heap.counters.large_alloc_bytes,
            (s.npages() * PAGE_SIZE) as u64,
        );
        Ok(s)
    }

    /// Sweeps unswept spans of this (large) class, most recently filed
    /// first, until they gave back at least `npages` pages or none is left.
    /// Returns the pages given back.
    fn reclaim_locked(&self, l: &mut Lists, heap: &Heap, sg: u32, npages: usize) -> usize {
        let mut got = 0;
        while got < npages {
            let Some(s) = l.pop(heap, FULL + (1 - swept(sg))) else {
                break;
            };
            let n = s.npages();
            // Release: pairs with the Acquire in `SpanRef::sweepgen`.
            s.span()
                .sweepgen
                .store(sg.wrapping_sub(1), Ordering::Release);
            if self.sweep_locked(heap, s, sg, false).1 {
                self.place(l, heap, s, sg);
            } else {
                got += n;
            }
        }
        got
    }

    /// Sweeps one unswept span. Returns the bytes freed, or `None` if this
    /// class has no unswept span.
    pub(crate) fn sweep_one(&self, heap: &Heap) -> Option<usize> {
        let mut l = self.lists.lock().unwrap();
        let sg = heap.sweepgen();
        let un = 1 - swept(sg);
        let s = l
            .pop(heap, PARTIAL + un)
            .or_else(|| l.pop(heap, FULL + un))?;
        // Release: pairs with the Acquire in `SpanRef::sweepgen`.
        s.span()
            .sweepgen
            .store(sg.wrapping_sub(1), Ordering::Release);
        let (bytes, survived) = self.sweep_locked(heap, s, sg, false);
        if survived {
            self.place(&mut l, heap, s, sg);
        }
        Some(bytes)
    }

    /// Explicitly frees slot `i` of `s` (a span of this class).
    pub(crate) fn free_object(
        &self,
        heap: &Heap,
        s: SpanRef<'_>,
        i: usize,
        addr: usize,
    ) -> Result<(), FreeError> {
        let mut l = self.lists.lock().unwrap();
        if !s.contains(addr) || s.span_class() != self.spc {
            return Err(FreeError::Foreign(addr));
        }
        let sg = heap.sweepgen();
        let ssg = s.sweepgen();
        if self.spc.size_class().is_large() {
            if !s.is_allocated(0) {
                return Err(FreeError::NotAllocated(addr));
            }
            l.remove(heap, s);
            add(&self.frees, 1);
            add(
                &heap.counters.large_free_bytes,
                (s.npages() * PAGE_SIZE) as u64,
            );
            heap.free_span(s);
            return Ok(());
        }
        if ssg == sg.wrapping_add(1) || ssg == sg.wrapping_add(3) {
            if !s.free_cached(i) {
                return Err(FreeError::NotAllocated(addr));
            }
            add(&self.frees, 1);
            return Ok(());
        }
        if !s.free_uncached(i) {
            return Err(FreeError::NotAllocated(addr));
        }
        add(&self.frees, 1);
        if ssg == sg {
            // Relaxed: protected by this lock.
            let was_full = s.span().list.load(Ordering::Relaxed) == FULL + swept(sg);
            if s.alloc_count() == 0 {
                l.remove(heap, s);
                self.place_or_release(&mut l, heap, s, sg);
            } else if was_full {
                l.remove(heap, s);
                l.push(heap, s, PARTIAL + swept(sg));
            }
        }
        Ok(())
    }

    /// Checks list membership (W7): every listed span is live, of this
    /// class, and filed by sweep state and fullness.
    #[cfg(feature = "verify")]
    pub(crate) fn check(&self, heap: &Heap) {
        let l = self.lists.lock().unwrap();
        let sg = heap.sweepgen();
        for (list, v) in l.sets.iter().enumerate() {
            for (pos, &p) in v.iter().enumerate() {
                let s = heap.spans.resolve(p);
                assert!(s.in_use(), "listed span is live");
                assert_eq!(s.span_class(), self.spc);
                assert_eq!(s.span().list.load(Ordering::Relaxed) as usize, list);
                assert_eq!(s.span().list_pos.load(Ordering::Relaxed), pos);
                let is_swept = list as u8 % 2 == swept(sg);
                assert_eq!(
                    s.sweepgen(),
                    if is_swept { sg } else { sg.wrapping_sub(2) },
                    "W7 sweepgen of listed span"
                );
                if is_swept {
                    let full = s.alloc_count() == s.nelems();
                    assert_eq!(list as u8 >= FULL, full, "W7 filed by fullness");
                }
            }
        }
    }
}
