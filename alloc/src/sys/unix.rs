//! `sys` on Linux: raw `mmap`/`munmap`/`madvise`/`mprotect`.

use super::{GuardKind, SysError};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};

/// `MADV_GUARD_INSTALL` (Linux 6.13, `include/uapi/asm-generic/mman-common.h`);
/// not yet in the `libc` crate.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// 0 = not probed, 1 = supported, 2 = not supported.
static GUARD_MADVISE: AtomicU8 = AtomicU8::new(0);

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Reserves `size` bytes (a multiple of the OS page) of readable, writable,
/// lazily committed address space.
///
/// The memory reads as zero. Physical pages are used only when touched.
pub fn reserve(size: usize) -> Result<NonNull<u8>, SysError> {
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing touches no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(SysError {
            op: "mmap",
            size,
            errno: errno(),
        });
    }
    NonNull::new(p.cast()).ok_or(SysError {
        op: "mmap",
        size,
        errno: libc::ENOMEM,
    })
}

/// Reserves `size` bytes aligned to `align` (a power of two ≥ the OS page),
/// by over-reserving and trimming the ends.
pub fn reserve_aligned(size: usize, align: usize) -> Result<NonNull<u8>, SysError> {
    debug_assert!(align.is_power_of_two() && align >= super::OS_PAGE_SIZE);
    let total = size.checked_add(align).ok_or(SysError {
        op: "mmap",
        size,
        errno: libc::ENOMEM,
    })?;
    let raw = reserve(total)?;
    let start = raw.as_ptr() as usize;
    let aligned = (start + align - 1) & !(align - 1);
    let head = aligned - start;
    let tail = total - head - size;
    if head > 0 {
        // SAFETY: `[start, aligned)` is the unused head of our own mapping.
        unsafe { release(raw, head)? };
    }
    if tail > 0 {
        // SAFETY: the unused tail of our own mapping, past `aligned + size`.
        let t = unsafe { NonNull::new_unchecked((aligned + size) as *mut u8) };
        // SAFETY: see above; nothing refers to the tail.
        unsafe { release(t, tail)? };
    }
    // SAFETY: `aligned` lies inside a successful mapping, so it is non-null.
    Ok(unsafe { NonNull::new_unchecked(aligned as *mut u8) })
}

/// Unmaps `[ptr, ptr + size)`.
///
/// # Safety
///
/// The range must have come from [`reserve`] (whole or in part) and nothing
/// may access it afterwards.
pub unsafe fn release(ptr: NonNull<u8>, size: usize) -> Result<(), SysError> {
    // SAFETY: the caller guarantees the range is ours and dead.
    if unsafe { libc::munmap(ptr.as_ptr().cast(), size) } != 0 {
        return Err(SysError {
            op: "munmap",
            size,
            errno: errno(),
        });
    }
    Ok(())
}

/// Returns the physical pages of `[ptr, ptr + size)` to the OS
/// (`MADV_DONTNEED`, as Go's `sysUnused` on Linux). The range stays mapped
/// and reads as zero afterwards.
///
/// # Safety
///
/// The range must lie inside a reservation of ours, and no live Rust value
/// may be stored in it (its contents are discarded).
pub unsafe fn decommit(ptr: NonNull<u8>, size: usize) -> Result<(), SysError> {
    // SAFETY: the caller guarantees the range is ours and holds nothing live.
    if unsafe { libc::madvise(ptr.as_ptr().cast(), size, libc::MADV_DONTNEED) } != 0 {
        return Err(SysError {
            op: "madvise(MADV_DONTNEED)",
            size,
            errno: errno(),
        });
    }
    Ok(())
}

/// Asks for (`on`) or against transparent huge pages on the range
/// (`MADV_HUGEPAGE` / `MADV_NOHUGEPAGE`). Advisory: errors are returned but
/// harmless to ignore.
///
/// # Safety
///
/// The range must lie inside a reservation of ours.
pub unsafe fn huge_pages(ptr: NonNull<u8>, size: usize, on: bool) -> Result<(), SysError> {
    let advice = if on {
        libc::MADV_HUGEPAGE
    } else {
        libc::MADV_NOHUGEPAGE
    };
    // SAFETY: advisory call on our own range; contents are untouched.
    if unsafe { libc::madvise(ptr.as_ptr().cast(), size, advice) } != 0 {
        return Err(SysError {
            op: "madvise(MADV_HUGEPAGE)",
            size,
            errno: errno(),
        });
    }
    Ok(())
}

/// Whether this kernel has `MADV_GUARD_INSTALL` (probed once on a scratch
/// mapping).
pub fn guard_madvise_supported() -> bool {
    match GUARD_MADVISE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let ok = probe_guard_madvise();
            GUARD_MADVISE.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
            ok
        }
    }
}

fn probe_guard_madvise() -> bool {
    let size = super::OS_PAGE_SIZE;
    let Ok(p) = reserve(size) else { return false };
    // SAFETY: a scratch page of our own, never accessed.
    let ok = unsafe { libc::madvise(p.as_ptr().cast(), size, MADV_GUARD_INSTALL) } == 0;
    // SAFETY: the scratch page is not used again.
    let _ = unsafe { release(p, size) };
    ok
}

/// Makes every access to `[ptr, ptr + size)` fault (a guard page).
///
/// Uses `MADV_GUARD_INSTALL` where the kernel has it (no new VMA), else
/// `mprotect(PROT_NONE)`. An `ENOMEM` from `mprotect` means the process hit
/// `vm.max_map_count`; [`SysError::is_map_count_limit`] says so.
///
/// # Safety
///
/// The range must lie inside a reservation of ours and hold no live value;
/// nothing may access it until it is released.
pub unsafe fn guard(ptr: NonNull<u8>, size: usize) -> Result<GuardKind, SysError> {
    if guard_madvise_supported() {
        // SAFETY: the caller guarantees the range is ours and dead.
        if unsafe { libc::madvise(ptr.as_ptr().cast(), size, MADV_GUARD_INSTALL) } == 0 {
            return Ok(GuardKind::Madvise);
        }
    }
    // SAFETY: as above.
    if unsafe { libc::mprotect(ptr.as_ptr().cast(), size, libc::PROT_NONE) } != 0 {
        return Err(SysError {
            op: "mprotect(PROT_NONE)",
            size,
            errno: errno(),
        });
    }
    Ok(GuardKind::Mprotect)
}

/// Like [`guard`] but never uses `MADV_GUARD_INSTALL` (tests of the fallback).
///
/// # Safety
///
/// As for [`guard`].
pub unsafe fn guard_mprotect(ptr: NonNull<u8>, size: usize) -> Result<GuardKind, SysError> {
    // SAFETY: the caller guarantees the range is ours and dead.
    if unsafe { libc::mprotect(ptr.as_ptr().cast(), size, libc::PROT_NONE) } != 0 {
        return Err(SysError {
            op: "mprotect(PROT_NONE)",
            size,
            errno: errno(),
        });
    }
    Ok(GuardKind::Mprotect)
}
