//! `sys` under Miri: `std::alloc` stands in for `mmap` so the allocator's
//! metadata logic can be checked. Guards are not enforced; `decommit` zeroes.

use super::{GuardKind, OS_PAGE_SIZE, SysError};
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::Mutex;

/// Live reservations: base address → (base pointer, layout, bytes not yet
/// released). `release` may free a prefix or suffix of one (as
/// `reserve_aligned` does); we model that by keeping the whole block until
/// every byte is released. The pointer is kept (not just its address) so
/// the block is freed with its provenance: this layer runs under
/// `-Zmiri-strict-provenance`.
static LIVE: Mutex<Option<HashMap<usize, (SendPtr, Layout, usize)>>> = Mutex::new(None);

/// A base pointer stored in `LIVE`.
struct SendPtr(NonNull<u8>);
// SAFETY: the pointer is only an owner's handle to a `std::alloc` block;
// the map is behind a mutex.
unsafe impl Send for SendPtr {}

fn layout(size: usize, align: usize) -> Result<Layout, SysError> {
    Layout::from_size_align(size.max(1), align).map_err(|_| SysError {
        op: "mmap",
        size,
        errno: libc::ENOMEM,
    })
}

/// Miri stand-in for `sys::reserve`.
pub fn reserve(size: usize) -> Result<NonNull<u8>, SysError> {
    reserve_aligned(size, OS_PAGE_SIZE)
}

/// Miri stand-in for `sys::reserve_aligned`.
pub fn reserve_aligned(size: usize, align: usize) -> Result<NonNull<u8>, SysError> {
    let l = layout(size, align)?;
    // SAFETY: `l` has non-zero size.
    let p = unsafe { alloc_zeroed(l) };
    let p = NonNull::new(p).ok_or(SysError {
        op: "mmap",
        size,
        errno: libc::ENOMEM,
    })?;
    LIVE.lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(p.addr().get(), (SendPtr(p), l, size));
    Ok(p)
}

/// Miri stand-in for `sys::release`.
///
/// # Safety
///
/// As for the real `release`.
pub unsafe fn release(ptr: NonNull<u8>, size: usize) -> Result<(), SysError> {
    let mut g = LIVE.lock().unwrap();
    let map = g.get_or_insert_with(HashMap::new);
    let addr = ptr.addr().get();
    let base = map
        .iter()
        .find(|(b, (_, l, _))| addr >= **b && addr + size <= **b + l.size())
        .map(|(b, _)| *b)
        .ok_or(SysError {
            op: "munmap",
            size,
            errno: libc::EINVAL,
        })?;
    let e = map.get_mut(&base).unwrap();
    e.2 -= size.min(e.2);
    if e.2 == 0 {
        let (p, l, _) = map.remove(&base).unwrap();
        // SAFETY: `p` was returned by `alloc_zeroed(l)` and every byte of
        // the block has now been released.
        unsafe { dealloc(p.0.as_ptr(), l) };
    }
    Ok(())
}

/// Miri stand-in for `sys::decommit`: zeroes the range.
///
/// # Safety
///
/// As for the real `decommit`.
pub unsafe fn decommit(ptr: NonNull<u8>, size: usize) -> Result<(), SysError> {
    // SAFETY: the caller guarantees the range is ours and holds nothing live.
    unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, size) };
    Ok(())
}

/// Miri stand-in for `sys::huge_pages`: nothing to do.
///
/// # Safety
///
/// As for the real `huge_pages`.
pub unsafe fn huge_pages(_ptr: NonNull<u8>, _size: usize, _on: bool) -> Result<(), SysError> {
    Ok(())
}

/// Miri has no guard pages.
pub fn guard_madvise_supported() -> bool {
    false
}

/// Miri stand-in for `sys::guard`: records nothing, protects nothing.
///
/// # Safety
///
/// As for the real `guard`.
pub unsafe fn guard(_ptr: NonNull<u8>, _size: usize) -> Result<GuardKind, SysError> {
    Ok(GuardKind::None)
}

/// Miri stand-in for `sys::guard_mprotect`.
///
/// # Safety
///
/// As for the real `guard`.
pub unsafe fn guard_mprotect(_ptr: NonNull<u8>, _size: usize) -> Result<GuardKind, SysError> {
    Ok(GuardKind::None)
}
