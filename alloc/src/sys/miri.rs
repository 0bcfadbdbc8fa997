//! `sys` under Miri: `std::alloc` stands in for `mmap` so the allocator's
//! metadata logic can be checked. Guards are not enforced; `decommit` zeroes.

use super::{GuardKind, OS_PAGE_SIZE, SysError};
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::Mutex;

/// Live reservations: base address → (layout). `release` may free a prefix
/// or suffix of one (as `reserve_aligned` does); we model that by keeping
/// the whole block until every byte is released.
static LIVE: Mutex<Option<HashMap<usize, (Layout, usize)>>> = Mutex::new(None);

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
        .insert(p.as_ptr() as usize, (l, size));
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
    let addr = ptr.as_ptr() as usize;
    let base = map
        .iter()
        .find(|(b, (_, s))| addr >= **b && addr + size <= **b + *s)
        .map(|(b, _)| *b)
        .ok_or(SysError {
            op: "munmap",
            size,
            errno: libc::EINVAL,
        })?;
    let (l, remaining) = map.get_mut(&base).map(|e| (e.0, e.1 - size)).unwrap();
    if remaining == 0 {
        map.remove(&base);
        // SAFETY: `base` was returned by `alloc_zeroed(l)`.
        unsafe { dealloc(base as *mut u8, l) };
    } else {
        map.get_mut(&base).unwrap().1 = remaining;
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
