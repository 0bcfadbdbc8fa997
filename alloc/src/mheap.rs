//! MHeap: the page heap and the heap's public face (Go's `mheap.go`,
//! `malloc.go`).
//!
//! ```text
//!   MCache (per P, no locks) ──refill──► MCentral[136] (lock per class)
//!        │ large (> 32 KiB)                 │ grow
//!        ▼                                  ▼
//!   Heap::alloc_span ──── heap lock ──► PageBits per arena (first fit)
//!                                            │ no room
//!                                            ▼
//!                         ArenaIndex::grow (mmap 64 MiB, MAP_NORESERVE)
//! ```
//!
//! # Growth
//!
//! 1. Look for a free run in every arena whose best run is long enough
//!    (O(1) skip per arena; see `pagealloc.rs`).
//! 2. Else grow an arena that has room by whole 4 MiB chunks (the new pages
//!    are free and "released": never touched, not backed by RAM; Go counts
//!    them the same way in `HeapReleased`).
//! 3. Else reserve a new arena. An object larger than an arena gets a
//!    reservation of its own made of consecutive arenas.
//!
//! # Context
//!
//! Lock order: MCentral lock → heap lock (`inner`) → span-pool lock.
//!
//! See `docs/design/alloc.md`.

#![forbid(unsafe_code)]

use crate::arena::ArenaIndex;
#[cfg(feature = "verify")]
use crate::class::SizeClass;
use crate::class::{CHUNK_PAGES, NUM_SPAN_CLASSES, PAGE_SIZE, PAGES_PER_ARENA, SpanClass};
use crate::error::{AllocError, AllocErrorKind, FreeError};
use crate::mcache::MCache;
use crate::mcentral::MCentral;
use crate::pagealloc::PageBits;
use crate::span::SpanRef;
use crate::stats::{Counters, MemStats, add, get, sub};
use crate::sys;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// Heap options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapConfig {
    /// Ask the kernel not to back the heap with transparent huge pages
    /// (`MADV_NOHUGEPAGE` on each new arena; Go's `GODEBUG=disablethp=1`).
    /// Off by default: the heap follows the system's THP setting.
    pub disable_thp: bool,
}

#[derive(Debug)]
struct ArenaPages {
    base: usize,
    bits: PageBits,
}

#[derive(Debug, Default)]
struct HeapInner {
    /// Per arena, in `Arena::id` order.
    arenas: Vec<ArenaPages>,
}

/// An object found from an address (Go's `findObject` result).
#[derive(Debug, Clone, Copy)]
pub struct ObjectRef<'h> {
    /// Start of the object (with provenance).
    pub base: NonNull<u8>,
    /// Size of its slot (a large object's whole span).
    pub size: usize,
    /// Its span class.
    pub span_class: SpanClass,
    /// Its span.
    pub span: SpanRef<'h>,
    /// Its slot index in the span.
    pub index: usize,
}

impl ObjectRef<'_> {
    /// Whether the slot currently holds an allocated object (a
    /// conservative scanner must skip free slots).
    pub fn is_allocated(&self) -> bool {
        self.span.is_allocated(self.index)
    }
}

/// The heap (Go's `mheap`): arenas, page allocator, central lists,
/// statistics. Shared by every thread (`Sync`); each P allocates through its
/// own [`MCache`].
#[derive(Debug)]
pub struct Heap {
    /// Address → arena → page → span. Declared before `spans`: dropped
    /// first, so page maps never outlive the span records they point to.
    pub(crate) index: ArenaIndex,
    /// Every span record.
    pub(crate) spans: crate::span::SpanPool,
    /// Protected by: the heap lock (this mutex).
    inner: Mutex<HeapInner>,
    /// One per span class. Immutable vector; each has its own lock.
    pub(crate) central: Vec<MCentral>,
    /// Sweep generation: += 2 per cycle. Atomic: written by
    /// `begin_sweep_cycle` (world stopped), read everywhere.
    sweepgen: AtomicU32,
    /// Statistics counters.
    pub(crate) counters: Counters,
    /// Immutable.
    config: HeapConfig,
}

impl Default for Heap {
    fn default() -> Self {
        Heap::new()
    }
}

impl Heap {
    /// An empty heap. It reserves address space only when first used.
    pub fn new() -> Heap {
        Heap::with_config(HeapConfig::default())
    }

    /// An empty heap with options.
    pub fn with_config(config: HeapConfig) -> Heap {
        Heap {
            index: ArenaIndex::default(),
            spans: Default::default(),
            inner: Mutex::new(HeapInner::default()),
            central: (0..NUM_SPAN_CLASSES)
                .map(|i| MCentral::new(SpanClass(i as u8)))
                .collect(),
            sweepgen: AtomicU32::new(4),
            counters: Counters::default(),
            config,
        }
    }

    /// The process-wide heap.
    pub fn global() -> &'static Heap {
        static GLOBAL: OnceLock<Heap> = OnceLock::new();
        GLOBAL.get_or_init(Heap::new)
    }

    /// A new per-P cache allocating from this heap.
    pub fn new_mcache(&self) -> MCache<'_> {
        MCache::new(self)
    }

    /// The current sweep generation.
    #[inline]
    pub fn sweepgen(&self) -> u32 {
        // Acquire: pairs with the Release in `begin_sweep_cycle`.
        self.sweepgen.load(Ordering::Acquire)
    }

    // ---- page heap ------------------------------------------------------

    /// Allocates a span of `npages` pages aligned to `align_pages` pages,
    /// initialised for `spc` with the given sweepgen.
    pub(crate) fn alloc_span(
        &self,
        npages: usize,
        spc: SpanClass,
        align_pages: usize,
        sweepgen: u32,
    ) -> Result<SpanRef<'_>, AllocError> {
        let mut g = self.inner.lock().unwrap();
        let (id, page, scav) = self.alloc_pages(&mut g, npages, align_pages)?;
        let arena_base = g.arenas[id].base;
        let arena = self.index.lookup(arena_base).expect("registered arena");
        let s = self.spans.get();
        s.init(arena.page_ptr(page), npages, spc, sweepgen, scav < npages);
        self.set_page_map(arena_base + page * PAGE_SIZE, npages, Some(s));
        add(&self.counters.pages_inuse, npages as u64);
        sub(&self.counters.pages_idle, npages as u64);
        sub(&self.counters.pages_released, scav as u64);
        Ok(s)
    }

    /// Points the page map of `[addr, addr + npages pages)` (possibly over
    /// several arenas) at `s`.
    fn set_page_map(&self, mut addr: usize, mut npages: usize, s: Option<SpanRef<'_>>) {
        while npages > 0 {
            let a = self.index.lookup(addr).expect("page in an arena");
            let page = (addr - a.base_addr()) / PAGE_SIZE;
            let n = npages.min(PAGES_PER_ARENA - page);
            a.set_spans(page, n, s);
            npages -= n;
            addr += n * PAGE_SIZE;
        }
    }

    fn oom(&self, npages: usize, e: sys::SysError) -> AllocError {
        AllocError {
            size: npages.saturating_mul(PAGE_SIZE),
            kind: AllocErrorKind::OutOfMemory(e),
        }
    }

    /// Finds (growing the heap if needed) and takes a run of pages. Returns
    /// `(arena id, first page, released pages taken)`.
    fn alloc_pages(
        &self,
        g: &mut HeapInner,
        npages: usize,
        align: usize,
    ) -> Result<(usize, usize, usize), AllocError> {
        let want = npages.checked_add(align - 1).ok_or(AllocError {
            size: npages,
            kind: AllocErrorKind::TooLarge,
        })?;
        if want > PAGES_PER_ARENA {
            return self.alloc_huge(g, npages);
        }
        let take = |a: &mut ArenaPages| {
            let p = a.bits.find(want)?;
            let p = p.next_multiple_of(align);
            Some((p, a.bits.alloc(p, npages)))
        };
        for (id, a) in g.arenas.iter_mut().enumerate() {
            if a.bits.max_run() >= want {
                if let Some((p, scav)) = take(a) {
                    return Ok((id, p, scav));
                }
            }
        }
        let grow = want.next_multiple_of(CHUNK_PAGES).min(PAGES_PER_ARENA);
        let id = match g
            .arenas
            .iter()
            .position(|a| a.bits.grown + grow <= PAGES_PER_ARENA)
        {
            Some(id) => id,
            None => {
                let id = g.arenas.len();
                let bases = self.index.grow(1, id).map_err(|e| self.oom(npages, e))?;
                self.new_arena(g, bases[0]);
                id
            }
        };
        g.arenas[id].bits.grow(grow);
        self.note_grow(grow);
        let (p, scav) = take(&mut g.arenas[id]).expect("grown arena has room");
        Ok((id, p, scav))
    }

    fn new_arena(&self, g: &mut HeapInner, base: usize) {
        if self.config.disable_thp {
            let a = self.index.lookup(base).expect("new arena");
            // Advisory: an error only means the kernel has no THP.
            let _ = a.advise_huge_pages(false);
        }
        g.arenas.push(ArenaPages {
            base,
            bits: PageBits::new(),
        });
    }

    fn note_grow(&self, pages: usize) {
        add(&self.counters.pages_sys, pages as u64);
        add(&self.counters.pages_idle, pages as u64);
        add(&self.counters.pages_released, pages as u64);
    }

    /// A span bigger than an arena: a reservation of its own.
    fn alloc_huge(
        &self,
        g: &mut HeapInner,
        npages: usize,
    ) -> Result<(usize, usize, usize), AllocError> {
        let units = npages.div_ceil(PAGES_PER_ARENA);
        let first = g.arenas.len();
        let bases = self
            .index
            .grow(units, first)
            .map_err(|e| self.oom(npages, e))?;
        let mut left = npages;
        let mut scav = 0;
        for b in bases {
            self.new_arena(g, b);
            let a = g.arenas.last_mut().expect("just pushed");
            a.bits.grow(PAGES_PER_ARENA);
            self.note_grow(PAGES_PER_ARENA);
            let n = left.min(PAGES_PER_ARENA);
            scav += a.bits.alloc(0, n);
            left -= n;
        }
        Ok((first, 0, scav))
    }

    /// Returns a span's pages to the page heap and recycles its record.
    ///
    /// # Context
    ///
    /// The span is in no MCentral list and no MCache holds it. May hold the
    /// span's MCentral lock (lock order).
    pub(crate) fn free_span(&self, s: SpanRef<'_>) {
        let npages = s.npages();
        let mut addr = s.base_addr();
        {
            let mut g = self.inner.lock().unwrap();
            s.kill();
            self.set_page_map(addr, npages, None);
            let mut left = npages;
            while left > 0 {
                let a = self.index.lookup(addr).expect("page in an arena");
                let page = (addr - a.base_addr()) / PAGE_SIZE;
                let n = left.min(PAGES_PER_ARENA - page);
                g.arenas[a.id].bits.free(page, n);
                left -= n;
                addr += n * PAGE_SIZE;
            }
            sub(&self.counters.pages_inuse, npages as u64);
            add(&self.counters.pages_idle, npages as u64);
        }
        self.spans.put(s);
    }

    // ---- lookup and marking --------------------------------------------

    /// The live span containing `addr` (interior pointers included), or
    /// `None` if no live span of this heap covers it. O(1), lock-free.
    #[inline]
    pub fn span_of(&self, addr: usize) -> Option<SpanRef<'_>> {
        self.index.span_of(addr)
    }

    /// The object slot containing `addr`: `(base, size, span class)` plus
    /// its span and index. O(1), lock-free. Returns the slot whether or not
    /// it is allocated ([`ObjectRef::is_allocated`] tells).
    #[inline]
    pub fn find_object(&self, addr: usize) -> Option<ObjectRef<'_>> {
        let span = self.span_of(addr)?;
        let (base, size, index) = span.locate(addr)?;
        Some(ObjectRef {
            base,
            size,
            span_class: span.span_class(),
            span,
            index,
        })
    }

    /// Sets the mark bit of the object containing `addr`. `Some(true)` if
    /// this call marked it, `Some(false)` if it was already marked, `None`
    /// if `addr` is not in this heap.
    #[inline]
    pub fn mark(&self, addr: usize) -> Option<bool> {
        let s = self.span_of(addr)?;
        Some(s.mark(s.object_index(addr)))
    }

    /// Whether the object containing `addr` is marked.
    #[inline]
    pub fn is_marked(&self, addr: usize) -> Option<bool> {
        let s = self.span_of(addr)?;
        Some(s.is_marked(s.object_index(addr)))
    }

    /// Frees the object starting at `ptr` now (for tests and explicit
    /// memory management; the collector frees by sweeping). Detects foreign
    /// pointers, interior pointers and double frees.
    pub fn free(&self, ptr: NonNull<u8>) -> Result<(), FreeError> {
        let addr = ptr.addr().get();
        if std::ptr::eq(ptr.as_ptr(), crate::mcache::zero_base().as_ptr()) {
            return Ok(());
        }
        let s = self.span_of(addr).ok_or(FreeError::Foreign(addr))?;
        let i = s.object_index(addr);
        if s.base_addr() + i * s.elemsize() != addr {
            return Err(FreeError::Interior(addr));
        }
        self.central[s.span_class().index()].free_object(self, s, i, addr)
    }

    /// Calls `f` on every live span (Go's `allspans` walk).
    pub fn for_each_span(&self, mut f: impl FnMut(SpanRef<'_>)) {
        self.spans.for_each_in_use(&mut f);
    }

    // ---- sweeping -------------------------------------------------------

    /// Starts a sweep cycle: `sweepgen += 2`, so every span becomes
    /// unswept (Go: end of mark termination). Finishes the previous cycle's
    /// sweeping first.
    ///
    /// The cycle protocol (Go's): `sweep_all` (sweep termination) → mark
    /// (`mark`, with new objects marked as they are allocated) →
    /// `begin_sweep_cycle` → lazy `sweep_one`s. Marks set on a span that
    /// is still unswept from the previous cycle are consumed by its sweep,
    /// so marking must not start before sweeping has finished.
    ///
    /// # Context
    ///
    /// World stopped: no MCache allocates. Afterwards, call
    /// [`MCache::prepare_for_sweep`] on every MCache before it allocates
    /// again (its cached spans are swept when released).
    pub fn begin_sweep_cycle(&self) {
        self.sweep_all();
        {
            let mut g = self.inner.lock().unwrap();
            for a in &mut g.arenas {
                a.bits.note_cycle();
            }
        }
        // Release: pairs with the Acquire in `sweepgen`.
        self.sweepgen.fetch_add(2, Ordering::AcqRel);
        for c in &self.central {
            c.refresh_reserve(self);
        }
    }

    /// Sweeps one unswept span, if any. Returns the bytes it freed.
    pub fn sweep_one(&self) -> Option<usize> {
        // `MCentral::sweep_one` is `None` for a class with nothing unswept:
        // one lock per class (a separate emptiness check took it twice).
        self.central.iter().find_map(|c| c.sweep_one(self))
    }

    /// Returns every MCentral's reserve span (one empty span per small
    /// class is kept back to avoid page-heap churn) to the page heap.
    pub fn release_reserves(&self) {
        for c in &self.central {
            c.release_reserve(self);
        }
    }

    /// Sweeps every unswept span (Go's `finishsweep_m`). Returns the bytes
    /// freed.
    pub fn sweep_all(&self) -> usize {
        let mut freed = 0;
        for c in &self.central {
            while let Some(b) = c.sweep_one(self) {
                freed += b;
            }
        }
        freed
    }

    // ---- scavenging and stats ------------------------------------------

    /// Returns up to `bytes` of free memory to the OS (`MADV_DONTNEED`),
    /// highest addresses first. Chunks that were dense (≥ 96.875 % in use)
    /// at the last cycle are released only if the others do not suffice
    /// (to avoid breaking huge pages still in use). Returns bytes released.
    pub fn scavenge(&self, bytes: usize) -> usize {
        const BATCH: usize = 64; // pages (512 KiB) per madvise
        let want = bytes.div_ceil(PAGE_SIZE);
        let mut done = 0;
        for include_dense in [false, true] {
            while done < want {
                let mut g = self.inner.lock().unwrap();
                let found = g.arenas.iter().enumerate().rev().find_map(|(id, a)| {
                    a.bits
                        .find_unscavenged((want - done).min(BATCH), include_dense)
                        .map(|r| (id, r))
                });
                let Some((id, (start, n))) = found else { break };
                let a = self.index.lookup(g.arenas[id].base).expect("arena");
                // Holding the heap lock keeps the pages free meanwhile.
                if a.decommit_pages(start, n).is_err() {
                    return done * PAGE_SIZE;
                }
                g.arenas[id].bits.mark_scavenged(start, n);
                add(&self.counters.pages_released, n as u64);
                done += n;
            }
        }
        done * PAGE_SIZE
    }

    /// A snapshot of the statistics (exact when no MCache is allocating).
    pub fn stats(&self) -> MemStats {
        let arenas = self.inner.lock().unwrap().arenas.len();
        let mut counts: crate::stats::ClassCounts = [(0, 0); crate::sizeclass::NUM_SIZE_CLASSES];
        for c in &self.central {
            let e = &mut counts[c.span_class().size_class().0 as usize];
            e.0 += get(&c.mallocs);
            e.1 += get(&c.frees);
        }
        self.counters.snapshot(
            &counts,
            self.spans.metadata_bytes() as u64,
            self.index.metadata_bytes(arenas) as u64,
        )
    }

    /// Checks every heap invariant (`stats.rs` E1–E5, W1–W7; page-bitmap
    /// and list invariants). Panics with the violated equation.
    ///
    /// # Context
    ///
    /// Quiescent heap: no thread allocates, frees or sweeps meanwhile
    /// (MCaches may hold spans).
    #[cfg(feature = "verify")]
    pub fn check(&self) {
        let st = self.stats();
        st.check_equations();
        let sg = self.sweepgen();
        let page = PAGE_SIZE as u64;
        {
            let g = self.inner.lock().unwrap();
            let (mut free, mut scav, mut grown) = (0u64, 0u64, 0u64);
            for a in &g.arenas {
                a.bits.check();
                free += a.bits.free_pages as u64;
                scav += a.bits.scav_pages as u64;
                grown += a.bits.grown as u64;
            }
            assert_eq!(st.heap_idle, free * page, "W2 HeapIdle = free pages");
            assert_eq!(
                st.heap_released,
                scav * page,
                "W3 HeapReleased = free & scav pages"
            );
            assert_eq!(st.heap_sys, grown * page, "W4 HeapSys = grown pages");
        }
        let mut inuse = 0u64;
        let mut objects = vec![0u64; crate::sizeclass::NUM_SIZE_CLASSES];
        let mut large_bytes = 0u64;
        self.for_each_span(|s| {
            inuse += s.npages() as u64;
            let c = s.span_class().size_class().0 as usize;
            let ssg = s.sweepgen();
            let cached = ssg == sg.wrapping_add(1) || ssg == sg.wrapping_add(3);
            assert!(
                cached || ssg == sg || ssg == sg.wrapping_sub(2),
                "W7 sweepgen {ssg} vs heap {sg}"
            );
            let pending = s.span().pending_frees.load(Ordering::Relaxed);
            if cached {
                objects[c] += (s.nelems() - pending) as u64;
            } else {
                assert_eq!(pending, 0);
                assert_eq!(
                    s.alloc_count(),
                    s.span().alloc_bits.count(s.nelems()),
                    "W6 alloc_count = popcount"
                );
                objects[c] += s.alloc_count() as u64;
            }
            if c == 0 {
                large_bytes += (s.npages() * PAGE_SIZE) as u64;
            }
            for p in 0..s.npages() {
                let addr = s.base_addr() + p * PAGE_SIZE;
                assert_eq!(self.span_of(addr), Some(s), "W7 page map covers the span");
            }
        });
        assert_eq!(
            st.heap_inuse,
            inuse * page,
            "W1 HeapInuse = live span pages"
        );
        for (c, &n) in objects.iter().enumerate() {
            let s = st.by_size[c];
            assert_eq!(
                s.mallocs - s.frees,
                n,
                "W5 class {c}: mallocs - frees = objects in spans"
            );
        }
        let small: u64 = (1..objects.len())
            .map(|c| objects[c] * SizeClass(c as u8).size() as u64)
            .sum();
        assert_eq!(st.heap_alloc, small + large_bytes, "E2 HeapAlloc");
        for c in &self.central {
            c.check(self);
        }
    }
}
