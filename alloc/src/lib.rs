//! gort-alloc: the heap of gort — Go's size classes, spans, page heap over
//! mmap'd arenas, per-P caches, span lookup from any address, mark/alloc
//! bitmaps with sweep generations, a scavenger and `MemStats`-style
//! statistics (Go's `malloc.go`, `mheap.go`, `mcentral.go`, `mcache.go`,
//! `mgcscavenge.go`, `mstats.go`).
//!
//! ```
//! use gort_alloc::Heap;
//!
//! let heap = Heap::new();
//! let mut cache = heap.new_mcache();           // one per P
//! let p = cache.try_alloc(24, /* noscan */ true)?;
//! let obj = heap.find_object(p.addr().get() + 5).expect("interior pointer");
//! assert_eq!((obj.base, obj.size), (p, 24));
//! assert_eq!(heap.mark(p.addr().get()), Some(true));
//! cache.flush();                               // at mark termination
//! heap.begin_sweep_cycle();
//! heap.sweep_all();                            // the marked object survives
//! assert_eq!(heap.stats().heap_objects, 1);
//! # Ok::<(), gort_alloc::AllocError>(())
//! ```
//!
//! # Modules
//!
//! - [`sys`]: reserve / release / decommit / guard address space (the only
//!   place that calls `mmap`, `munmap`, `madvise`, `mprotect`).
//! - `sizeclass` (generated) and [`class`]: the 68 size classes, span
//!   classes, heap geometry.
//! - `arena`: 64 MiB arenas, the address → arena index, page maps.
//! - `pagealloc`: per-arena page bitmaps with chunk summaries.
//! - [`span`]: span records, the MCache allocation cursor.
//! - [`bitmap`]: atomic per-span alloc/mark bitmaps.
//! - `mcentral`: per-span-class lists (partial/full × swept/unswept).
//! - [`mcache`]: the per-P cache and its fast path.
//! - [`mheap`]: the [`Heap`]: page heap, lookup, marking, sweep, scavenge.
//! - [`stats`]: [`MemStats`] and the invariant equations.
//! - [`scavenger`]: the background scavenging policy.
//! - [`error`]: [`AllocError`], [`FreeError`], [`fatal_oom`].
//!
//! `unsafe` is confined to `sys`, `arena` and `span` (the crate is
//! `#![deny(unsafe_code)]` with an `allow` on those three and on the unit
//! tests); every other module is `#![forbid(unsafe_code)]`.
//!
//! # Cargo features
//!
//! - `verify`: `Heap::check()`, which checks every heap invariant.
//!
//! Design: `docs/design/alloc.md`.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod arena;
pub mod bitmap;
pub mod class;
pub mod error;
pub mod mcache;
mod mcentral;
pub mod mheap;
mod pagealloc;
pub mod scavenger;
#[rustfmt::skip] // generated: keep the generator's layout
pub mod sizeclass;
#[allow(unsafe_code)]
pub mod span;
pub mod stats;
#[allow(unsafe_code)]
pub mod sys;

pub use class::{PAGE_SIZE, SizeClass, SpanClass};
pub use error::{AllocError, AllocErrorKind, FreeError, fatal_oom};
pub use mcache::MCache;
pub use mheap::{Heap, HeapConfig, ObjectRef};
pub use scavenger::ScavengerPolicy;
pub use span::SpanRef;
pub use stats::{MemStats, SizeClassStats};

#[cfg(test)]
pub(crate) mod testutil {
    /// A tiny deterministic RNG (xorshift64*) for seeded tests.
    pub(crate) struct Rng(pub u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }
}

#[cfg(test)]
#[allow(unsafe_code)] // tests read and write the objects they allocate
mod tests;
