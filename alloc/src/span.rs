//! Spans: runs of heap pages holding objects of one span class (Go's
//! `mspan`), the records that describe them, and the allocation cursor an
//! MCache uses to hand out a span's free slots.
//!
//! # Concepts
//!
//! - A **span** is `npages` 8 KiB pages starting at `base`. A small span
//!   (size class 1..=67) is cut into `nelems` slots of `elemsize` bytes; a
//!   large span (class 0) holds one object.
//! - Span records live in a `SpanPool` owned by the heap and are never
//!   freed before the heap: a dead record is recycled for the next span. So a
//!   [`SpanRef`] read from the page map is always a valid reference, even if
//!   the span it described has gone (lookups then check `state` and bounds,
//!   as Go's `spanOf` does).
//! - **Alloc state.** A slot `i` of a span is allocated iff
//!   `alloc_bits[i] == 1 || i < free_index_for_scan`, minus the slots in
//!   `freed_bits`. `free_index_for_scan` is 0 unless an MCache holds the span:
//!   the MCache's `SpanCursor` hands out free slots in increasing index
//!   order and publishes `last + 1` after each one (Go's `freeIndexForScan`),
//!   so a conservative scan or a lookup from another thread sees exactly the
//!   objects handed out. When the MCache lets go of the span, the cursor
//!   writes the handed-out slots into `alloc_bits` and resets the index.
//! - **The cursor fast path** (Go's `nextFreeFast`): `cache` holds the
//!   inverted alloc bits of one 64-slot word; taking a slot is `tzcnt`,
//!   `blsr`, a multiply and an add — ≈ 10 instructions and one branch (two
//!   when the span needs zeroing). Running out of a word is the slow path.
//!
//! # Fields
//!
//! Fields a lock-free lookup reads (`base`, `npages`, `state`, `spanclass`,
//! `elemsize`, `nelems`, `div_magic`) are atomics written under the heap lock
//! before the span is published in the page map (Release) and read after the
//! page-map load (Acquire). The allocation fields are owned by the span's
//! MCentral lock while no MCache holds the span, and by the holding MCache
//! otherwise; each field's doc says which.
//!
//! # Sweep generations (Go's `mspan.sweepgen`, with `sg = heap.sweepgen`)
//!
//! ```text
//! span.sweepgen == sg - 2   unswept: needs sweeping this cycle
//! span.sweepgen == sg - 1   being swept
//! span.sweepgen == sg       swept, not cached
//! span.sweepgen == sg + 1   cached before this cycle began: sweep on release
//! span.sweepgen == sg + 3   swept, then cached
//! ```
//!
//! See `docs/design/alloc.md`.

use crate::bitmap::{BITMAP_WORDS, Bitmap, valid_mask};
use crate::class::{PAGE_SIZE, SpanClass};
use crate::sizeclass::CLASS_TO_DIV_MAGIC;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicUsize, Ordering};

/// Record state: recycled (`DEAD`) or describing live pages (`IN_USE`).
const DEAD: u8 = 0;
const IN_USE: u8 = 1;

/// Sentinel for "in no MCentral list".
pub(crate) const NO_LIST: u8 = u8::MAX;

/// A span record (Go's `mspan`). Reached through [`SpanRef`].
///
/// Aligned to 128 bytes (two cache lines, the adjacent-line prefetch unit):
/// the MCache cursor stores into its span's `free_index_for_scan` on every
/// allocation, and records of spans cached by different Ps must not share
/// a line.
#[derive(Debug)]
#[repr(align(128))]
pub struct Span {
    /// Start of the span, carrying the arena reservation's provenance.
    /// Written under the heap lock before publication; read lock-free.
    base: AtomicPtr<u8>,
    /// Pages in the span. As `base`.
    npages: AtomicUsize,
    /// `DEAD` or `IN_USE`. As `base`.
    state: AtomicU8,
    /// Span class. As `base`.
    spanclass: AtomicU8,
    /// Slot size (large: `npages * PAGE_SIZE`). As `base`.
    elemsize: AtomicUsize,
    /// Slots (large: 1). As `base`.
    nelems: AtomicUsize,
    /// `u32::MAX / elemsize + 1` (large: 0, so every offset maps to slot 0).
    div_magic: AtomicU32,
    /// Sweep generation (module docs). Written under the MCentral lock.
    pub(crate) sweepgen: AtomicU32,
    /// Lowest slot that may be free. Protected by: MCentral lock while
    /// uncached; read only when a cursor attaches.
    pub(crate) free_index: AtomicUsize,
    /// Slots below this are allocated. Atomic: Release by the holding
    /// MCache's cursor after each allocation; Acquire by lookups.
    pub(crate) free_index_for_scan: AtomicUsize,
    /// Allocated slots per `alloc_bits` (exact while uncached). Protected
    /// by: MCentral lock.
    pub(crate) alloc_count: AtomicUsize,
    /// Explicit frees recorded in `freed_bits` while cached. Protected by:
    /// MCentral lock.
    pub(crate) pending_frees: AtomicUsize,
    /// Free slots may hold old data and must be zeroed when handed out.
    /// Protected by: MCentral lock (copied into the cursor on attach).
    pub(crate) needzero: AtomicBool,
    /// Which MCentral list holds the span, or `NO_LIST`. Protected by:
    /// MCentral lock.
    pub(crate) list: AtomicU8,
    /// Position in that list. Protected by: MCentral lock.
    pub(crate) list_pos: AtomicUsize,
    /// Allocation bitmap (module docs).
    pub(crate) alloc_bits: Bitmap,
    /// Mark bitmap, set by the collector.
    pub(crate) mark_bits: Bitmap,
    /// Explicit frees pending while an MCache holds the span.
    pub(crate) freed_bits: Bitmap,
}

impl Span {
    fn new() -> Span {
        Span {
            base: AtomicPtr::new(std::ptr::null_mut()),
            npages: AtomicUsize::new(0),
            state: AtomicU8::new(DEAD),
            spanclass: AtomicU8::new(0),
            elemsize: AtomicUsize::new(0),
            nelems: AtomicUsize::new(0),
            div_magic: AtomicU32::new(0),
            sweepgen: AtomicU32::new(0),
            free_index: AtomicUsize::new(0),
            free_index_for_scan: AtomicUsize::new(0),
            alloc_count: AtomicUsize::new(0),
            pending_frees: AtomicUsize::new(0),
            needzero: AtomicBool::new(false),
            list: AtomicU8::new(NO_LIST),
            list_pos: AtomicUsize::new(0),
            alloc_bits: Bitmap::default(),
            mark_bits: Bitmap::default(),
            freed_bits: Bitmap::default(),
        }
    }
}

/// A shared reference to a span record, valid as long as its heap.
#[derive(Clone, Copy)]
pub struct SpanRef<'h> {
    span: &'h Span,
}

impl std::fmt::Debug for SpanRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanRef")
            .field("base", &format_args!("{:#x}", self.base_addr()))
            .field("npages", &self.npages())
            .field("class", &self.span_class())
            .field("alloc_count", &self.alloc_count())
            .field("sweepgen", &self.sweepgen())
            .finish()
    }
}

impl PartialEq for SpanRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.span, other.span)
    }
}
impl Eq for SpanRef<'_> {}

/// A span record's address without a lifetime, for the heap's own lists.
/// Invariant: only ever created from, and resolved by, the pool that owns
/// the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanPtr(NonNull<Span>);

// SAFETY: a SpanPtr is a `&Span` without a lifetime; `Span` is `Sync` (all
// atomics), and the pool keeps the record alive while the heap lives.
unsafe impl Send for SpanPtr {}
// SAFETY: as above.
unsafe impl Sync for SpanPtr {}

impl<'h> SpanRef<'h> {
    /// # Safety
    ///
    /// `p` must point to a record of a `SpanPool` that outlives `'h`.
    pub(crate) unsafe fn from_raw(p: NonNull<Span>) -> SpanRef<'h> {
        // SAFETY: the caller guarantees the record lives for 'h; records
        // are only mutated through atomics, so a shared reference is sound.
        let span = unsafe { p.as_ref() };
        SpanRef { span }
    }

    pub(crate) fn ptr(self) -> SpanPtr {
        SpanPtr(NonNull::from(self.span))
    }

    pub(crate) fn raw(self) -> *mut Span {
        std::ptr::from_ref(self.span).cast_mut()
    }

    pub(crate) fn span(self) -> &'h Span {
        self.span
    }

    /// Start address of the span.
    #[inline]
    pub fn base_addr(self) -> usize {
        // Relaxed: published by the page-map Release store (module docs).
        self.span.base.load(Ordering::Relaxed).addr()
    }

    /// Start of the span as a pointer (with provenance).
    #[inline]
    pub fn base(self) -> NonNull<u8> {
        // Relaxed: as in `base_addr`.
        NonNull::new(self.span.base.load(Ordering::Relaxed)).expect("span has a base")
    }

    /// Pages in the span.
    #[inline]
    pub fn npages(self) -> usize {
        // Relaxed: as in `base_addr`.
        self.span.npages.load(Ordering::Relaxed)
    }

    /// One past the last byte of the span.
    #[inline]
    pub fn limit(self) -> usize {
        self.base_addr() + self.npages() * PAGE_SIZE
    }

    /// Whether the record currently describes live pages.
    #[inline]
    pub fn in_use(self) -> bool {
        // Acquire: pairs with the Release in `init`.
        self.span.state.load(Ordering::Acquire) == IN_USE
    }

    /// Whether `addr` lies in the span and the span is live.
    #[inline]
    pub fn contains(self, addr: usize) -> bool {
        self.in_use() && addr >= self.base_addr() && addr < self.limit()
    }

    /// The span class.
    #[inline]
    pub fn span_class(self) -> SpanClass {
        // Relaxed: as in `base_addr`.
        SpanClass(self.span.spanclass.load(Ordering::Relaxed))
    }

    /// Slot size in bytes (a large span's whole size).
    #[inline]
    pub fn elemsize(self) -> usize {
        // Relaxed: as in `base_addr`.
        self.span.elemsize.load(Ordering::Relaxed)
    }

    /// Number of slots.
    #[inline]
    pub fn nelems(self) -> usize {
        // Relaxed: as in `base_addr`.
        self.span.nelems.load(Ordering::Relaxed)
    }

    /// Allocated slots according to the alloc bits (exact while no MCache
    /// holds the span).
    pub fn alloc_count(self) -> usize {
        // Relaxed: a statistic; exact under the MCentral lock.
        self.span.alloc_count.load(Ordering::Relaxed)
    }

    /// The span's sweep generation (module docs).
    pub fn sweepgen(self) -> u32 {
        // Acquire: pairs with the Release stores under the MCentral lock.
        self.span.sweepgen.load(Ordering::Acquire)
    }

    /// Slot holding `addr` (which must lie in the span): one multiply, no
    /// division (Go's `divMagic`).
    #[inline]
    pub fn object_index(self, addr: usize) -> usize {
        let off = (addr - self.base_addr()) as u64;
        // Relaxed: as in `base_addr`.
        let magic = self.span.div_magic.load(Ordering::Relaxed) as u64;
        ((off * magic) >> 32) as usize
    }

    /// Address of slot `i`, with the span's provenance.
    #[inline]
    pub fn object_ptr(self, i: usize) -> NonNull<u8> {
        let b = self.base();
        b.with_addr(b.addr().saturating_add(i * self.elemsize()))
    }

    /// The slot containing `addr`: `(object start, slot size, index)`,
    /// reading each span field once, or `None` if the span is not live, does
    /// not contain `addr`, or changed under a racing free (torn view).
    #[inline]
    pub fn locate(self, addr: usize) -> Option<(NonNull<u8>, usize, usize)> {
        if !self.in_use() {
            return None;
        }
        let s = self.span;
        // Relaxed (all): as in `base_addr`; a racing re-initialisation is
        // caught by the consistency checks below.
        let base = NonNull::new(s.base.load(Ordering::Relaxed))?;
        let size = s.elemsize.load(Ordering::Relaxed);
        let nelems = s.nelems.load(Ordering::Relaxed);
        let magic = s.div_magic.load(Ordering::Relaxed) as u64;
        let off = addr.checked_sub(base.addr().get())?;
        let index = ((off as u64).checked_mul(magic)? >> 32) as usize;
        let start = index.checked_mul(size)?;
        if index >= nelems || off < start || off - start >= size {
            return None;
        }
        Some((base.with_addr(base.addr().checked_add(start)?), size, index))
    }

    /// Whether slot `i` holds an allocated object (module docs).
    pub fn is_allocated(self, i: usize) -> bool {
        // Acquire: pairs with the cursor's Release after zeroing the slot.
        (i < self.span.free_index_for_scan.load(Ordering::Acquire) || self.span.alloc_bits.get(i))
            && !self.span.freed_bits.get(i)
    }

    /// Sets the mark bit of slot `i`; `true` if this call set it.
    #[inline]
    pub fn mark(self, i: usize) -> bool {
        self.span.mark_bits.set(i)
    }

    /// Tests the mark bit of slot `i`.
    #[inline]
    pub fn is_marked(self, i: usize) -> bool {
        self.span.mark_bits.get(i)
    }

    /// Number of marked slots.
    pub fn marked_count(self) -> usize {
        self.span.mark_bits.count(self.nelems())
    }

    /// The allocated objects, lowest address first (a snapshot per word;
    /// exact while nothing allocates in or frees from the span).
    pub fn iter_allocated(self) -> impl Iterator<Item = NonNull<u8>> + 'h {
        let n = self.nelems();
        (0..n)
            .filter(move |&i| self.is_allocated(i))
            .map(move |i| self.object_ptr(i))
    }

    /// (Re)initialises a dead record for `npages` pages at `base`.
    ///
    /// # Context
    ///
    /// Must hold the heap lock; the record must be dead and unpublished.
    pub(crate) fn init(
        self,
        base: NonNull<u8>,
        npages: usize,
        spc: SpanClass,
        sweepgen: u32,
        needzero: bool,
    ) {
        let s = self.span;
        let class = spc.size_class();
        let (elemsize, nelems, magic) = if class.is_large() {
            (npages * PAGE_SIZE, 1, 0)
        } else {
            (
                class.size(),
                class.objects_per_span(),
                CLASS_TO_DIV_MAGIC[class.0 as usize],
            )
        };
        // Relaxed (all below): published by the Release store of `state`
        // and of the page map.
        s.base.store(base.as_ptr(), Ordering::Relaxed);
        s.npages.store(npages, Ordering::Relaxed);
        s.spanclass.store(spc.0, Ordering::Relaxed);
        s.elemsize.store(elemsize, Ordering::Relaxed);
        s.nelems.store(nelems, Ordering::Relaxed);
        s.div_magic.store(magic, Ordering::Relaxed);
        s.sweepgen.store(sweepgen, Ordering::Relaxed);
        s.free_index.store(0, Ordering::Relaxed);
        s.free_index_for_scan.store(0, Ordering::Relaxed);
        s.pending_frees.store(0, Ordering::Relaxed);
        s.needzero.store(needzero, Ordering::Relaxed);
        s.list.store(NO_LIST, Ordering::Relaxed);
        // Plain stores, not swaps: the record is dead and unpublished, so
        // nobody else writes its bitmaps (48 locked RMWs were ~5 % of a
        // 64 KiB allocation).
        for w in 0..BITMAP_WORDS {
            s.alloc_bits.store_word(w, 0);
            s.mark_bits.store_word(w, 0);
            s.freed_bits.store_word(w, 0);
        }
        if class.is_large() {
            s.alloc_bits.set(0);
            s.alloc_count.store(1, Ordering::Relaxed);
        } else {
            s.alloc_count.store(0, Ordering::Relaxed);
        }
        // Release: pairs with the Acquire in `in_use`.
        s.state.store(IN_USE, Ordering::Release);
    }

    /// Marks the record dead (its pages are going back to the page heap).
    ///
    /// # Context
    ///
    /// Must hold the heap lock.
    pub(crate) fn kill(self) {
        // Release: pairs with the Acquire in `in_use`.
        self.span.state.store(DEAD, Ordering::Release);
    }

    /// Zeroes a freshly allocated large span's object if its pages may hold
    /// old data.
    ///
    /// # Context
    ///
    /// Only on a large span just returned by the page heap, before its
    /// object is handed out (nobody else can reach the memory yet).
    pub(crate) fn zero_fresh_large(self) {
        debug_assert!(self.span_class().size_class().is_large());
        // Relaxed: the span is not yet shared.
        if self.span.needzero.load(Ordering::Relaxed) {
            let p = self.base().as_ptr();
            // SAFETY: `[base, base + npages * PAGE_SIZE)` is the span's own
            // memory inside an arena reservation (established by `init`
            // under the heap lock); the object has not been handed out, so
            // no other reference to it exists.
            unsafe { std::ptr::write_bytes(p, 0, self.npages() * PAGE_SIZE) };
        }
    }

    /// Sweeps a small or large span: frees every allocated, unmarked slot
    /// and every explicitly freed one, clears the marks. Returns the
    /// allocated counts `(before, after)`; frees recorded in `freed_bits`
    /// were already counted by `free` and are not in `before`.
    ///
    /// `alloc := alloc & !freed & mark; mark := 0; freed := 0`
    ///
    /// # Context
    ///
    /// Must hold the span's MCentral lock; no MCache holds the span.
    pub(crate) fn sweep_bits(self) -> (usize, usize) {
        let s = self.span;
        let n = self.nelems();
        let (mut before, mut after) = (0, 0);
        for w in 0..n.div_ceil(64) {
            // Freed bits change only under the MCentral lock (held): load
            // and store. Marks use a swap (a marker is an RMW too), but only
            // for words that have any: most swept words are all-unmarked.
            let f = s.freed_bits.word(w);
            if f != 0 {
                s.freed_bits.store_word(w, 0);
            }
            let mut m = s.mark_bits.word(w);
            if m != 0 {
                m = s.mark_bits.swap_word(w, 0);
            }
            let a = s.alloc_bits.word(w) & !f & valid_mask(w, n);
            let na = a & m;
            // A store: alloc bits of an uncached span change only under
            // the MCentral lock, which we hold.
            s.alloc_bits.store_word(w, na);
            before += a.count_ones() as usize;
            after += na.count_ones() as usize;
        }
        // Relaxed (all): protected by the MCentral lock.
        s.alloc_count.store(after, Ordering::Relaxed);
        s.pending_frees.store(0, Ordering::Relaxed);
        s.free_index.store(0, Ordering::Relaxed);
        s.free_index_for_scan.store(0, Ordering::Release);
        if after < before {
            s.needzero.store(true, Ordering::Relaxed);
        }
        (before, after)
    }

    /// Applies explicit frees recorded while the span was cached. Returns
    /// how many slots were freed.
    ///
    /// # Context
    ///
    /// Must hold the MCentral lock; no MCache holds the span.
    pub(crate) fn apply_freed(self) -> usize {
        let s = self.span;
        // Relaxed: protected by the MCentral lock.
        if s.pending_frees.swap(0, Ordering::Relaxed) == 0 {
            return 0;
        }
        let n = self.nelems();
        let mut freed = 0;
        let mut lowest = usize::MAX;
        for w in 0..n.div_ceil(64) {
            // Loads and stores: both bitmaps change only under the
            // MCentral lock (held) while the span is uncached.
            let f = s.freed_bits.word(w);
            if f != 0 {
                s.freed_bits.store_word(w, 0);
                let old = s.alloc_bits.word(w);
                s.alloc_bits.store_word(w, old & !f);
                freed += (old & f).count_ones() as usize;
                lowest = lowest.min(w * 64 + f.trailing_zeros() as usize);
            }
        }
        // Relaxed: protected by the MCentral lock.
        s.alloc_count.fetch_sub(freed, Ordering::Relaxed);
        s.free_index.fetch_min(lowest, Ordering::Relaxed);
        s.needzero.store(true, Ordering::Relaxed);
        freed
    }

    /// Frees slot `i` of an uncached span directly. Returns whether it was
    /// allocated.
    ///
    /// # Context
    ///
    /// Must hold the MCentral lock; no MCache holds the span.
    pub(crate) fn free_uncached(self, i: usize) -> bool {
        if !self.span.alloc_bits.clear(i) {
            return false;
        }
        // Relaxed: protected by the MCentral lock.
        self.span.alloc_count.fetch_sub(1, Ordering::Relaxed);
        self.span.free_index.fetch_min(i, Ordering::Relaxed);
        self.span.needzero.store(true, Ordering::Relaxed);
        true
    }

    /// Records an explicit free of slot `i` while an MCache holds the span.
    /// Returns false if the slot is not allocated or already freed.
    ///
    /// # Context
    ///
    /// Must hold the MCentral lock.
    pub(crate) fn free_cached(self, i: usize) -> bool {
        if !self.is_allocated(i) || !self.span.freed_bits.set(i) {
            return false;
        }
        // Relaxed: protected by the MCentral lock.
        self.span.pending_frees.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// Where an MCache takes its next object from (Go's `nextFreeFast` state,
/// kept in the MCache rather than in the span).
#[derive(Debug)]
pub(crate) struct SpanCursor<'h> {
    /// Free, not yet handed-out slots of word `word_base / 64` (bit `i` is
    /// slot `word_base + i`). Zero when the cursor is empty.
    cache: u64,
    /// The span's base (provenance of every object handed out).
    base: *mut u8,
    elemsize: usize,
    word_base: usize,
    needzero: bool,
    /// Where the cursor publishes `last + 1` (the span's
    /// `free_index_for_scan`, or a dummy when empty).
    scan_index: &'h AtomicUsize,
    /// First word the cursor read (write-back starts there).
    start_word: usize,
    span: Option<SpanRef<'h>>,
}

static NO_SCAN_INDEX: AtomicUsize = AtomicUsize::new(0);

// SAFETY: the cursor owns the free slots of its span exclusively (the span
// is cached by this MCache only, per the sweepgen protocol); `base` points
// into an arena that lives as long as 'h. Moving the cursor to another
// thread moves that ownership with it.
unsafe impl Send for SpanCursor<'_> {}

impl<'h> SpanCursor<'h> {
    /// A cursor with no span.
    pub(crate) fn empty() -> SpanCursor<'h> {
        SpanCursor {
            cache: 0,
            base: std::ptr::null_mut(),
            elemsize: 0,
            word_base: 0,
            needzero: false,
            scan_index: &NO_SCAN_INDEX,
            start_word: 0,
            span: None,
        }
    }

    /// Takes the next free slot, or `None` when the current word is used up
    /// (then call [`SpanCursor::advance`]). Returns zeroed memory.
    #[inline(always)]
    pub(crate) fn next(&mut self) -> Option<NonNull<u8>> {
        if self.cache == 0 {
            return None;
        }
        let bit = self.cache.trailing_zeros() as usize;
        self.cache &= self.cache - 1;
        let idx = self.word_base + bit;
        let p = self.base.wrapping_add(idx * self.elemsize);
        if self.needzero {
            // SAFETY: slot `idx` is free (its bit was set in `cache`, built
            // from the span's alloc bits in `attach`/`advance`) and owned by
            // this cursor, and lies inside the span's pages:
            // 1. `idx < nelems` because `cache` is masked to the span's slots;
            // 2. `[p, p + elemsize)` is within `[base, base + npages * PAGE)`;
            // 3. no reference to a free slot exists outside the heap.
            unsafe { std::ptr::write_bytes(p, 0, self.elemsize) };
        }
        // Release: pairs with the Acquire in `SpanRef::is_allocated`; the
        // zeroing above happens before a scanner may read the object.
        self.scan_index.store(idx + 1, Ordering::Release);
        // SAFETY: `p` is inside a live arena mapping, which is never at
        // address 0.
        Some(unsafe { NonNull::new_unchecked(p) })
    }

    /// Moves to the next word with a free slot. Returns false when the span
    /// has none left (the cursor stays attached; detach it).
    #[cold]
    pub(crate) fn advance(&mut self) -> bool {
        let Some(s) = self.span else { return false };
        let n = s.nelems();
        while self.cache == 0 {
            let next = self.word_base + 64;
            if next >= n {
                self.word_base = n.next_multiple_of(64);
                return false;
            }
            self.word_base = next;
            let w = next / 64;
            self.cache = !s.span.alloc_bits.word(w) & valid_mask(w, n);
        }
        true
    }

    /// Attaches to `s`, starting at its `free_index`.
    ///
    /// # Context
    ///
    /// Must hold `s`'s MCentral lock; `s` was just marked cached.
    pub(crate) fn attach(s: SpanRef<'h>) -> SpanCursor<'h> {
        let sp = s.span;
        let n = s.nelems();
        // Relaxed: protected by the MCentral lock.
        let fi = sp.free_index.load(Ordering::Relaxed).min(n);
        let w = fi / 64;
        let mut c = SpanCursor {
            cache: !sp.alloc_bits.word(w.min(BITMAP_WORDS - 1))
                & valid_mask(w, n)
                & (!0u64 << (fi % 64)),
            base: s.base().as_ptr(),
            elemsize: s.elemsize(),
            word_base: w * 64,
            // Relaxed: protected by the MCentral lock.
            needzero: sp.needzero.load(Ordering::Relaxed),
            scan_index: &sp.free_index_for_scan,
            start_word: w,
            span: Some(s),
        };
        // Relaxed: nobody else publishes into a span this cursor holds.
        sp.free_index_for_scan.store(0, Ordering::Relaxed);
        c.advance();
        c
    }

    /// Detaches from the span, writing the handed-out slots into its alloc
    /// bits. Returns the span and the new `alloc_count` (before any pending
    /// explicit frees are applied).
    pub(crate) fn detach(&mut self) -> Option<(SpanRef<'h>, usize)> {
        let s = self.span.take()?;
        let sp = s.span;
        let n = s.nelems();
        let cur = self.word_base / 64;
        let mut handed = 0;
        // Load + store, not an atomic OR: while an MCache holds the span
        // its alloc bits are written by this cursor only (explicit frees go
        // to `freed_bits`), so no update can be lost.
        let mut or = |w: usize, m: u64| {
            let old = sp.alloc_bits.word(w);
            sp.alloc_bits.store_word(w, old | m);
            handed += (m & !old).count_ones() as usize;
        };
        for w in self.start_word..cur.min(n.div_ceil(64)) {
            or(w, valid_mask(w, n));
        }
        if cur < n.div_ceil(64) {
            or(cur, valid_mask(cur, n) & !self.cache);
        }
        // Relaxed: the Release below publishes them.
        let ac = sp.alloc_count.load(Ordering::Relaxed) + handed;
        sp.alloc_count.store(ac, Ordering::Relaxed);
        let fifs = sp.free_index_for_scan.load(Ordering::Relaxed);
        sp.free_index.fetch_max(fifs, Ordering::Relaxed);
        // Release: the alloc bits written above are visible before the
        // scan index stops covering those slots.
        sp.free_index_for_scan.store(0, Ordering::Release);
        *self = SpanCursor::empty();
        Some((s, ac))
    }
}

/// Owner of every span record of a heap (Go's `mheap.spanalloc` plus
/// `allspans`). Records are boxed once and recycled, never freed before the
/// pool is dropped.
#[derive(Debug, Default)]
pub(crate) struct SpanPool {
    /// Protected by: its own lock (taken after the heap lock).
    inner: Mutex<PoolInner>,
}

#[derive(Debug, Default)]
struct PoolInner {
    all: Vec<SpanPtr>,
    free: Vec<SpanPtr>,
}

impl SpanPool {
    /// A dead record, fresh or recycled.
    pub(crate) fn get(&self) -> SpanRef<'_> {
        let mut g = self.inner.lock().unwrap();
        let p = match g.free.pop() {
            Some(p) => p,
            None => {
                let p = SpanPtr(NonNull::from(Box::leak(Box::new(Span::new()))));
                g.all.push(p);
                p
            }
        };
        self.resolve(p)
    }

    /// Recycles a dead record.
    pub(crate) fn put(&self, s: SpanRef<'_>) {
        debug_assert!(!s.in_use());
        self.inner.lock().unwrap().free.push(s.ptr());
    }

    /// The record behind `p` (which must come from this pool).
    pub(crate) fn resolve(&self, p: SpanPtr) -> SpanRef<'_> {
        // SAFETY: by SpanPtr's invariant `p` is a record of this pool, which
        // frees records only in `drop`, after every borrow of `self` ends.
        unsafe { SpanRef::from_raw(p.0) }
    }

    /// Calls `f` on every live span.
    pub(crate) fn for_each_in_use(&self, mut f: impl FnMut(SpanRef<'_>)) {
        let all = self.inner.lock().unwrap().all.clone();
        for p in all {
            let s = self.resolve(p);
            if s.in_use() {
                f(s);
            }
        }
    }

    /// Bytes of span records (Go's `MSpanSys`).
    pub(crate) fn metadata_bytes(&self) -> usize {
        self.inner.lock().unwrap().all.len() * std::mem::size_of::<Span>()
    }
}

impl Drop for SpanPool {
    fn drop(&mut self) {
        for p in self.inner.get_mut().unwrap().all.drain(..) {
            // SAFETY: every pointer in `all` came from `Box::leak` in `get`
            // and is dropped exactly once, here; `&mut self` proves no
            // SpanRef borrowed from the pool is alive.
            drop(unsafe { Box::from_raw(p.0.as_ptr()) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::class::SizeClass;

    fn with_span(class: u8, f: impl FnOnce(SpanRef<'_>)) {
        let pool = SpanPool::default();
        let c = SizeClass(class);
        let bytes = c.npages().max(1) * PAGE_SIZE;
        let mem = crate::sys::reserve(bytes).unwrap();
        let s = pool.get();
        s.init(mem, c.npages().max(1), SpanClass::new(c, true), 0, false);
        f(s);
        s.kill();
        // SAFETY: the test's own reservation, no longer used.
        unsafe { crate::sys::release(mem, bytes) }.unwrap();
    }

    #[test]
    fn cursor_hands_out_every_slot_once_then_writes_back() {
        with_span(5, |s| {
            // 48-byte objects: 170 slots.
            let n = s.nelems();
            assert_eq!(n, 170);
            s.span.alloc_bits.set(3);
            s.span.alloc_count.store(1, Ordering::Relaxed);
            let mut c = SpanCursor::attach(s);
            let mut got = Vec::new();
            while let Some(p) = c
                .next()
                .or_else(|| if c.advance() { c.next() } else { None })
            {
                let i = s.object_index(p.addr().get());
                assert!(s.is_allocated(i), "published");
                got.push(i);
            }
            assert_eq!(got.len(), n - 1);
            assert!(!got.contains(&3));
            assert!(got.windows(2).all(|w| w[0] < w[1]), "increasing order");
            let (_, ac) = c.detach().unwrap();
            assert_eq!(ac, n);
            assert_eq!(s.span.alloc_bits.count(n), n);
            assert_eq!(s.span.free_index_for_scan.load(Ordering::Relaxed), 0);
        });
    }

    #[test]
    fn sweep_keeps_marked_and_frees_the_rest() {
        with_span(2, |s| {
            let mut c = SpanCursor::attach(s);
            let ps: Vec<_> = (0..100)
                .map(|_| {
                    c.next()
                        .or_else(|| c.advance().then(|| c.next()).flatten())
                        .unwrap()
                })
                .collect();
            c.detach();
            // SAFETY: slot 0 is ours (just allocated) and 16 bytes long.
            unsafe { ps[0].as_ptr().write(0xAB) };
            for p in ps.iter().step_by(10) {
                assert!(s.mark(s.object_index(p.addr().get())));
            }
            assert_eq!(s.sweep_bits(), (100, 10));
            assert_eq!(s.alloc_count(), 10);
            assert_eq!(s.marked_count(), 0);
            assert_eq!(s.iter_allocated().count(), 10);
            // Reuse zeroes: the cursor now needs zeroing.
            let mut c = SpanCursor::attach(s);
            let p = c.next().unwrap();
            assert_eq!(s.object_index(p.addr().get()), 1);
            c.detach();
            assert!(s.span.needzero.load(Ordering::Relaxed));
        });
    }

    #[test]
    fn explicit_frees_cached_and_uncached() {
        with_span(1, |s| {
            let mut c = SpanCursor::attach(s);
            let a = c.next().unwrap();
            let b = c.next().unwrap();
            let ia = s.object_index(a.addr().get());
            let ib = s.object_index(b.addr().get());
            assert!(s.free_cached(ia));
            assert!(!s.free_cached(ia), "double free detected");
            assert!(!s.free_cached(500), "never handed out");
            c.detach();
            assert_eq!(s.apply_freed(), 1);
            assert_eq!(s.alloc_count(), 1);
            assert!(!s.is_allocated(ia) && s.is_allocated(ib));
            assert!(s.free_uncached(ib));
            assert!(!s.free_uncached(ib));
            assert_eq!(s.alloc_count(), 0);
        });
    }

    #[test]
    fn large_span_index_is_zero() {
        with_span(0, |s| {
            assert_eq!(s.nelems(), 1);
            assert_eq!(s.object_index(s.base_addr() + 5000), 0);
            assert!(s.is_allocated(0));
        });
    }
}
