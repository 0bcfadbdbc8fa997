//! Goroutine stacks: reserved, lazily committed address space with a guard
//! page below, carved out of large slabs and pooled.
//!
//! # Design
//!
//! Go grows a 2 KiB stack by copying it, which needs the compiler's stack
//! maps; Rust has none, so a gort stack cannot move (RESEARCH.md §0.4). A
//! stack is instead a fixed *reservation* (default 256 KiB, see
//! [`DEFAULT_STACK_SIZE`]) of which only the OS pages actually touched are
//! backed by memory: a goroutine that parks after a few calls costs one or
//! two 4 KiB pages of RSS, however large its reservation.
//!
//! 1. **Slabs.** Stacks are carved out of slabs of `STACKS_PER_SLAB`
//!    stacks, one `mmap(MAP_NORESERVE)` each. Each slot is
//!    `guard (1 OS page) | usable stack`, so the guard page of slot `i` lies
//!    directly above the top of slot `i-1`.
//! 2. **Guards.** `MADV_GUARD_INSTALL` where the kernel has it (Linux ≥
//!    6.13): the slab stays one VMA, so `vm.max_map_count` does not cap the
//!    goroutine count. Otherwise `mprotect(PROT_NONE)`, which costs two VMAs
//!    per stack; hitting the limit is a clear error naming the sysctl.
//! 3. **Overflow detection.** Every slab is recorded in an append-only,
//!    lock-free registry (`guard_hit`) that the SIGSEGV handler consults:
//!    a fault inside a slot's guard page is a goroutine stack overflow.
//! 4. **Pools.** Free stacks go to the P's cache, then to a global pool
//!    (see `stackpool.rs`). Stacks that sit idle in the global pool for a
//!    second while more than `POOL_COMMITTED_MAX` are pooled are decommitted
//!    (`MADV_DONTNEED`), so a burst of a million goroutines does not keep a
//!    million dirty stacks, and a steady churn does not pay a syscall each.
//!
//! Slabs are never unmapped: their address space is reused for the life of
//! the process (like Go, which never returns stack spans' address space).

use gort_alloc::sys::{self, GuardKind, OS_PAGE_SIZE, SysError};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Default usable size of a goroutine stack reservation: 256 KiB. Only the
/// touched pages cost memory; see docs/design/stacks.md for the choice.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;
/// Smallest stack size accepted by the builder.
pub const MIN_STACK_SIZE: usize = 16 * 1024;
/// Largest stack size accepted by the builder (Go's `maxstacksize`).
pub const MAX_STACK_SIZE: usize = 1 << 30;
/// Stacks carved from one slab mapping.
pub(crate) const STACKS_PER_SLAB: usize = 64;
/// Stacks kept committed in the global pool; beyond this they are released.
pub(crate) const POOL_COMMITTED_MAX: usize = 1024;

/// Maximum number of slabs the overflow registry can describe (2^20 slabs
/// of 64 stacks: far beyond any address space we can reserve).
const MAX_SLABS: usize = 1 << 20;

/// One registry entry: base address of a slab (0 = unused) and its slot stride.
struct SlabEntry {
    base: AtomicUsize,
    stride: AtomicUsize,
}

/// The append-only slab registry read by the SIGSEGV handler.
///
/// # Fields
/// - `entries`: Atomic: written once (stride then base, Release) by the slab
///   allocator before `len` is bumped; read with Acquire by `guard_hit`.
/// - `len`: Atomic: Release by `register_slab`, Acquire by `guard_hit`.
struct Registry {
    entries: Box<[SlabEntry]>,
    len: AtomicUsize,
}

static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
static REGISTRY_LOCK: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

fn registry() -> &'static Registry {
    REGISTRY.get_or_init(|| Registry {
        entries: (0..MAX_SLABS)
            .map(|_| SlabEntry {
                base: AtomicUsize::new(0),
                stride: AtomicUsize::new(0),
            })
            .collect(),
        len: AtomicUsize::new(0),
    })
}

fn register_slab(base: usize, stride: usize) {
    let r = registry();
    let _g = REGISTRY_LOCK.lock();
    let i = r.len.load(Ordering::Relaxed);
    assert!(
        i < MAX_SLABS,
        "gort: goroutine stack registry is full ({MAX_SLABS} slabs)"
    );
    r.entries[i].stride.store(stride, Ordering::Relaxed);
    r.entries[i].base.store(base, Ordering::Release); // Release: pairs with Acquire in guard_hit
    r.len.store(i + 1, Ordering::Release); // Release: pairs with Acquire in guard_hit
}

/// If `addr` lies in the guard page of a goroutine stack, returns that
/// stack's usable size (its limit). Async-signal-safe: atomics only, no
/// allocation, no locks.
pub(crate) fn guard_hit(addr: usize) -> Option<usize> {
    let r = REGISTRY.get()?;
    let n = r.len.load(Ordering::Acquire); // Acquire: pairs with Release in register_slab
    for e in &r.entries[..n] {
        let base = e.base.load(Ordering::Acquire); // Acquire: pairs with Release in register_slab
        let stride = e.stride.load(Ordering::Relaxed);
        if base == 0 || stride == 0 {
            continue;
        }
        let end = base + stride * STACKS_PER_SLAB;
        if addr >= base && addr < end {
            let off = (addr - base) % stride;
            // Slot layout: guard page at the bottom, then the usable stack.
            // A fault just below the guard (inside the previous slot's top)
            // cannot come from an overflow: stack probes touch every page.
            return (off < OS_PAGE_SIZE).then_some(stride - OS_PAGE_SIZE);
        }
    }
    None
}

/// A goroutine stack: `[limit, base)`, the lowest OS page of which is the
/// guard. Owned; returned to a pool rather than unmapped.
#[derive(Debug)]
pub struct GoroutineStack {
    /// Lowest address (the guard page starts here).
    limit: NonNull<u8>,
    /// One past the highest address (the stack grows down from here).
    base: NonNull<u8>,
}

// SAFETY: a `GoroutineStack` is exclusive ownership of a range of address
// space; nothing in it is tied to the thread that allocated it.
unsafe impl Send for GoroutineStack {}

impl GoroutineStack {
    /// Usable bytes (excluding the guard page).
    pub fn size(&self) -> usize {
        self.base.as_ptr() as usize - self.limit.as_ptr() as usize - OS_PAGE_SIZE
    }

    /// Highest address (exclusive): where the stack starts.
    pub fn top(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// Lowest usable address (just above the guard page).
    pub fn bottom(&self) -> usize {
        self.limit.as_ptr() as usize + OS_PAGE_SIZE
    }

    /// Releases the physical pages of the usable range (keeps the mapping).
    pub(crate) fn decommit(&mut self) -> Result<(), SysError> {
        // SAFETY: `bottom` lies inside our mapping, so it is non-null.
        let bottom = unsafe { NonNull::new_unchecked(self.bottom() as *mut u8) };
        // SAFETY: `[bottom, top)` is the usable range of a stack we own
        // exclusively (`&mut self`) that is not running: no live value is in it.
        unsafe { sys::decommit(bottom, self.size()) }
    }
}

// SAFETY: 1. every `GoroutineStack` has a guard page at `limit` (installed in
// `new_slab` before any stack of the slab is handed out, and never removed);
// 2. its usable size is ≥ MIN_STACK_SIZE (16 KiB) > corosensei's 4 KiB
// minimum (checked by `StackConfig::new`); 3. both ends are page-aligned, so
// aligned to STACK_ALIGNMENT.
unsafe impl corosensei::stack::Stack for GoroutineStack {
    fn base(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.base.as_ptr() as usize).expect("non-null")
    }

    fn limit(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.limit.as_ptr() as usize).expect("non-null")
    }
}

/// Stack geometry for one runtime: the slot stride and how guards went in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StackConfig {
    /// Usable bytes per stack (page multiple).
    pub(crate) size: usize,
    /// Force the `mprotect` guard path (tests of the fallback).
    pub(crate) force_mprotect: bool,
}

impl StackConfig {
    /// Validates and rounds a requested usable stack size.
    pub(crate) fn new(size: usize) -> Result<StackConfig, String> {
        if size < MIN_STACK_SIZE {
            return Err(format!(
                "stack size {size} bytes is below the minimum of {MIN_STACK_SIZE} bytes"
            ));
        }
        if size > MAX_STACK_SIZE {
            return Err(format!(
                "stack size {size} bytes is above the maximum of {MAX_STACK_SIZE} bytes (Go's maxstacksize)"
            ));
        }
        Ok(StackConfig {
            size: sys::round_up_to_page(size),
            force_mprotect: false,
        })
    }

    fn stride(&self) -> usize {
        self.size + OS_PAGE_SIZE
    }

    /// Maps a new slab and returns its stacks, guards installed.
    pub(crate) fn new_slab(&self) -> Result<(Vec<GoroutineStack>, GuardKind), SysError> {
        let stride = self.stride();
        let len = stride * STACKS_PER_SLAB;
        let base = sys::reserve(len)?;
        let mut kind = GuardKind::None;
        for i in 0..STACKS_PER_SLAB {
            let slot = base.as_ptr() as usize + i * stride;
            // SAFETY: `slot` lies inside the reservation just made, so it is
            // non-null.
            let guard = unsafe { NonNull::new_unchecked(slot as *mut u8) };
            let r = if self.force_mprotect {
                // SAFETY: the guard page of a fresh slot: ours, holds nothing.
                unsafe { sys::guard_mprotect(guard, OS_PAGE_SIZE) }
            } else {
                // SAFETY: as above.
                unsafe { sys::guard(guard, OS_PAGE_SIZE) }
            };
            match r {
                Ok(k) => kind = k,
                Err(e) => {
                    // SAFETY: the whole slab is ours and nothing was handed out.
                    let _ = unsafe { sys::release(base, len) };
                    return Err(e);
                }
            }
        }
        register_slab(base.as_ptr() as usize, stride);
        let stacks = (0..STACKS_PER_SLAB)
            .rev()
            .map(|i| {
                let lo = base.as_ptr() as usize + i * stride;
                GoroutineStack {
                    // SAFETY: inside the reservation, non-null.
                    limit: unsafe { NonNull::new_unchecked(lo as *mut u8) },
                    // SAFETY: inside (one past the slot of) the reservation, non-null.
                    base: unsafe { NonNull::new_unchecked((lo + stride) as *mut u8) },
                }
            })
            .collect();
        Ok((stacks, kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore)] // mmap and madvise
    fn slab_layout_and_guard_lookup() {
        let cfg = StackConfig::new(64 * 1024).unwrap();
        let (stacks, kind) = cfg.new_slab().unwrap();
        assert_eq!(stacks.len(), STACKS_PER_SLAB);
        assert_ne!(kind, GuardKind::None);
        for s in &stacks {
            assert_eq!(s.size(), 64 * 1024);
            assert_eq!(guard_hit(s.bottom() - 1), Some(64 * 1024));
            assert_eq!(guard_hit(s.bottom() - OS_PAGE_SIZE), Some(64 * 1024));
            assert_eq!(guard_hit(s.bottom()), None);
            assert_eq!(guard_hit(s.top() - 8), None);
        }
        // The usable range is writable.
        let s = &stacks[0];
        // SAFETY: the usable range of a stack nobody runs on.
        unsafe { std::ptr::write_bytes(s.bottom() as *mut u8, 1, s.size()) };
        let mut s = stacks.into_iter().next().unwrap();
        s.decommit().unwrap();
        // SAFETY: decommitted memory reads as zero and is still mapped.
        assert_eq!(unsafe { *(s.bottom() as *const u8) }, 0);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap and madvise
    fn sizes_are_validated() {
        assert!(StackConfig::new(1024).is_err());
        assert!(StackConfig::new(2 << 30).is_err());
        assert_eq!(StackConfig::new(20_000).unwrap().size, 20_480);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap and madvise
    fn foreign_addresses_are_not_guards() {
        let x = 5u64;
        assert_eq!(guard_hit(&x as *const u64 as usize), None);
        assert_eq!(guard_hit(0), None);
    }
}
