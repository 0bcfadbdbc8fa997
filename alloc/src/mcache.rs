//! MCache: a P's private allocation cache (Go's `mcache.go` and the small
//! paths of `mallocgc`).
//!
//! One `SpanCursor` per span class (136). Allocation:
//!
//! 1. **Fast path** (no lock, no atomic RMW): size → class by one table load,
//!    then the cursor takes the lowest free slot of its current 64-slot word
//!    (`tzcnt` + `blsr` + multiply-add), zeroes it if the span needs it, and
//!    publishes the slot for scanners with one Release store.
//!    Budget: ≈ 15 instructions, two predictable branches.
//! 2. **Next word** (`#[cold]`): load the next alloc-bits word of the span.
//! 3. **Refill** (`#[cold]`): give the exhausted span back to its MCentral
//!    and take another (which may sweep or grow the heap).
//!
//! Objects over 32 KiB get a span each straight from the page heap. Zero-size
//! requests return the address of one static (Go's `zerobase`), which is not
//! in the heap.
//!
//! An MCache is `Send` (a P moves between threads) but not `Sync`: the fast
//! path takes `&mut self`. Dropping it returns its spans.
//!
//! See `docs/design/alloc.md`.

#![forbid(unsafe_code)]

use crate::class::{ARENA_BYTES, NUM_SPAN_CLASSES, PAGE_SIZE, SizeClass, SpanClass};
use crate::error::{AllocError, AllocErrorKind, fatal_oom};
use crate::mheap::Heap;
use crate::sizeclass::{MAX_SMALL_SIZE, MIN_HEAP_ALIGN, NUM_SIZE_CLASSES};
use crate::span::{SpanCursor, SpanRef};
use std::ptr::NonNull;

/// Go's `zerobase`: what every zero-size allocation returns.
#[repr(align(4096))]
struct ZeroBase(#[allow(dead_code)] [u8; 0]);
static ZERO_BASE: ZeroBase = ZeroBase([]);

/// The address returned for zero-size requests (aligned to 4 KiB).
pub fn zero_base() -> NonNull<u8> {
    NonNull::from(&ZERO_BASE).cast()
}

/// A per-P allocation cache. See the module docs.
#[derive(Debug)]
pub struct MCache<'h> {
    /// Immutable.
    heap: &'h Heap,
    /// Owner: this MCache (so its P) only.
    alloc: [SpanCursor<'h>; NUM_SPAN_CLASSES],
    /// Heap sweepgen when the cache was last flushed. Owner: this MCache.
    flush_gen: u32,
    /// Spans detached at refill and not yet returned to their MCentral
    /// (span class index, span, alloc count). They stay "cached" (the
    /// sweeper skips them) until returned, in batches of [`PENDING_MAX`]
    /// per lock acquisition, or at `flush`. Owner: this MCache.
    pending: Vec<(usize, SpanRef<'h>, usize)>,
    /// Spans taken from an MCentral in the same batch as the one being
    /// used, not yet attached (span class index, span). Cached, untouched;
    /// returned at `flush`. Owner: this MCache.
    spare: Vec<(usize, SpanRef<'h>)>,
    /// Reused buffer for `MCentral::cache_spans` (no allocation per
    /// refill). Empty between refills. Owner: this MCache.
    got: Vec<SpanRef<'h>>,
}

/// Spans an MCache takes from an MCentral per refill of a small size
/// class (one lock acquisition for several spans; Go amortises the same
/// cost with lock-free span sets).
const REFILL_BATCH: usize = 4;

/// Classes with few objects per span take more spans per refill, up to
/// [`REFILL_MAX`], so that one lock acquisition serves at least this many
/// objects (the 4 KiB class has 2 per span: a lock every 8 objects with
/// [`REFILL_BATCH`] alone).
const REFILL_OBJECTS: usize = 32;
const REFILL_MAX: usize = 16;

/// Detached spans an MCache returns to the MCentrals at a time: batching
/// cuts the MCentral lock traffic when several Ps allocate from one class.
const PENDING_MAX: usize = 16;

impl<'h> MCache<'h> {
    pub(crate) fn new(heap: &'h Heap) -> MCache<'h> {
        MCache {
            heap,
            alloc: std::array::from_fn(|_| SpanCursor::empty()),
            flush_gen: heap.sweepgen(),
            pending: Vec::with_capacity(PENDING_MAX),
            spare: Vec::new(),
            got: Vec::new(),
        }
    }

    /// The heap this cache allocates from.
    pub fn heap(&self) -> &'h Heap {
        self.heap
    }

    /// Allocates `size` zeroed bytes (8-byte aligned; a size-class object
    /// is also aligned to the largest power of two dividing its class size).
    /// `noscan`: the object holds no pointers. Aborts with Go's "out of
    /// memory" report if the OS refuses memory ([`MCache::try_alloc`] is the
    /// fallible form).
    #[inline(always)]
    pub fn alloc(&mut self, size: usize, noscan: bool) -> NonNull<u8> {
        match self.try_alloc(size, noscan) {
            Ok(p) => p,
            Err(e) => self.oom(e),
        }
    }

    #[cold]
    fn oom(&self, e: AllocError) -> ! {
        fatal_oom(e.size, self.heap.stats().heap_inuse, Some(&e))
    }

    /// Allocates `size` zeroed bytes, or says why not.
    #[inline(always)]
    pub fn try_alloc(&mut self, size: usize, noscan: bool) -> Result<NonNull<u8>, AllocError> {
        if size.wrapping_sub(1) < MAX_SMALL_SIZE {
            let spc = SpanClass::new(SizeClass::for_size(size), noscan);
            if let Some(p) = self.alloc[spc.index()].next() {
                return Ok(p);
            }
            return self.alloc_slow(spc);
        }
        self.alloc_other(size, MIN_HEAP_ALIGN, noscan)
    }

    /// Allocates `size` zeroed bytes aligned to `align` (a power of two up
    /// to the arena size, 64 MiB).
    pub fn try_alloc_aligned(
        &mut self,
        size: usize,
        align: usize,
        noscan: bool,
    ) -> Result<NonNull<u8>, AllocError> {
        if !align.is_power_of_two() || align > ARENA_BYTES {
            return Err(AllocError {
                size,
                kind: AllocErrorKind::BadAlign(align),
            });
        }
        if align <= MIN_HEAP_ALIGN {
            return self.try_alloc(size, noscan);
        }
        if size != 0 && size <= MAX_SMALL_SIZE && align <= PAGE_SIZE {
            // The first class whose size is a multiple of `align`: its slots
            // start at multiples of it from a page-aligned span base.
            let mut c = SizeClass::for_size(size.max(align)).0 as usize;
            while c < NUM_SIZE_CLASSES && SizeClass(c as u8).size() % align != 0 {
                c += 1;
            }
            if c < NUM_SIZE_CLASSES {
                let spc = SpanClass::new(SizeClass(c as u8), noscan);
                if let Some(p) = self.alloc[spc.index()].next() {
                    return Ok(p);
                }
                return self.alloc_slow(spc);
            }
        }
        self.alloc_other(size, align, noscan)
    }

    /// Allocates a large object (a span of its own) of at least `size`
    /// bytes, whatever its size.
    pub fn try_alloc_large(
        &mut self,
        size: usize,
        noscan: bool,
    ) -> Result<NonNull<u8>, AllocError> {
        self.alloc_large(size.max(1), 1, noscan)
    }

    #[cold]
    fn alloc_other(
        &mut self,
        size: usize,
        align: usize,
        noscan: bool,
    ) -> Result<NonNull<u8>, AllocError> {
        if size == 0 {
            let zb = zero_base();
            if align <= 4096 {
                return Ok(zb);
            }
            return Ok(zb.with_addr(std::num::NonZeroUsize::new(align).expect("align > 0")));
        }
        self.alloc_large(size, align.div_ceil(PAGE_SIZE), noscan)
    }

    fn alloc_large(
        &mut self,
        size: usize,
        align_pages: usize,
        noscan: bool,
    ) -> Result<NonNull<u8>, AllocError> {
        if size > isize::MAX as usize - ARENA_BYTES {
            return Err(AllocError {
                size,
                kind: AllocErrorKind::TooLarge,
            });
        }
        let npages = size.div_ceil(PAGE_SIZE);
        let spc = SpanClass::new(SizeClass::LARGE, noscan);
        let other = SpanClass::new(SizeClass::LARGE, !noscan);
        let heap = self.heap;
        let s = heap.central[spc.index()]
            .alloc_large(
                heap,
                npages,
                align_pages.max(1),
                &heap.central[other.index()],
            )
            .map_err(|e| AllocError { size, kind: e.kind })?;
        // Outside every lock. The span is already listed (as allocated): a
        // sweep cannot free it before the next cycle, and the object is
        // not handed out until zeroed.
        s.zero_fresh_large();
        Ok(s.base())
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&mut self, spc: SpanClass) -> Result<NonNull<u8>, AllocError> {
        let c = &mut self.alloc[spc.index()];
        if c.advance() {
            return Ok(c.next().expect("advance found a free slot"));
        }
        self.refill(spc)?;
        Ok(self.alloc[spc.index()]
            .next()
            .expect("refilled span has a free slot"))
    }

    /// Replaces the cursor's span with one that has free slots (Go's
    /// `mcache.refill`).
    fn refill(&mut self, spc: SpanClass) -> Result<(), AllocError> {
        let heap = self.heap;
        debug_assert_eq!(
            self.flush_gen,
            heap.sweepgen(),
            "MCache used after begin_sweep_cycle without prepare_for_sweep"
        );
        let central = &heap.central[spc.index()];
        if let Some((s, ac)) = self.alloc[spc.index()].detach() {
            self.pending.push((spc.index(), s, ac));
            if self.pending.len() >= PENDING_MAX {
                self.return_pending();
            }
        }
        let i = spc.index();
        let s = match self.spare.iter().rposition(|x| x.0 == i) {
            Some(k) => self.spare.swap_remove(k).1,
            None => {
                let class = spc.size_class();
                let want = if class.is_large() {
                    1
                } else {
                    REFILL_OBJECTS
                        .div_ceil(class.objects_per_span())
                        .clamp(REFILL_BATCH, REFILL_MAX)
                };
                central.cache_spans(heap, want, &mut self.got)?;
                let s = self
                    .got
                    .pop()
                    .expect("cache_spans yields at least one span");
                self.spare.extend(self.got.drain(..).map(|x| (i, x)));
                s
            }
        };
        self.alloc[i] = SpanCursor::attach(s);
        Ok(())
    }

    /// Returns every cached span to its MCentral (Go's `releaseAll`). Their
    /// unused slots stop counting as allocated.
    pub fn flush(&mut self) {
        for (i, s) in std::mem::take(&mut self.spare) {
            // Never attached: its alloc count is what `cache_spans` counted.
            self.pending.push((i, s, s.alloc_count()));
        }
        self.return_pending();
        let heap = self.heap;
        for (i, c) in self.alloc.iter_mut().enumerate() {
            if let Some((s, ac)) = c.detach() {
                heap.central[i].uncache_span(heap, s, ac);
            }
        }
        self.flush_gen = heap.sweepgen();
    }

    /// Returns the detached spans to their MCentrals, one lock acquisition
    /// per class.
    fn return_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let heap = self.heap;
        self.pending.sort_unstable_by_key(|p| p.0);
        let mut rest = &self.pending[..];
        while let Some(&(class, _, _)) = rest.first() {
            let n = rest.iter().take_while(|p| p.0 == class).count();
            heap.central[class].uncache_spans(heap, rest[..n].iter().map(|&(_, s, ac)| (s, ac)));
            rest = &rest[n..];
        }
        self.pending.clear();
    }

    /// Flushes the cache if a sweep cycle began since the last flush (Go's
    /// `prepareForSweep`). Call on every MCache after
    /// [`Heap::begin_sweep_cycle`].
    pub fn prepare_for_sweep(&mut self) {
        if self.flush_gen != self.heap.sweepgen() {
            self.flush();
        }
    }
}

impl Drop for MCache<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}
