//! The operating-system layer: reserve, commit, release and guard address
//! space. Every `mmap`, `munmap`, `madvise` and `mprotect` in gort goes
//! through this module (Go: `mem_linux.go`, `sysReserve`/`sysMap`/`sysUnused`/
//! `sysFault`).
//!
//! Memory states, as in Go's `mem.go`:
//!
//! 1. **Reserved**: [`reserve`] maps anonymous, private, `MAP_NORESERVE`
//!    memory readable and writable. Nothing is backed by RAM until touched:
//!    the first write to a 4 KiB OS page faults it in (committed lazily).
//! 2. **Released**: [`decommit`] (`MADV_DONTNEED`) gives the physical pages
//!    back; the range stays mapped and reads as zero afterwards.
//! 3. **Guarded**: [`guard`] makes a range fault on any access. On Linux ≥
//!    6.13 that is `MADV_GUARD_INSTALL`, which adds no VMA; elsewhere it is
//!    `mprotect(PROT_NONE)`, which splits the mapping and so counts against
//!    `vm.max_map_count`.
//! 4. **Unmapped**: [`release`].
//!
//! Under Miri the layer runs on `std::alloc` (see `miri.rs`): guards and
//! decommit become bookkeeping so the allocator's metadata logic can be
//! checked for UB.
//!
//! Errors are values ([`SysError`]) that name the operation, the size and the
//! errno, and say what to do; callers that cannot recover turn them into a
//! fatal "out of memory" with the size requested.

#[cfg(not(miri))]
mod unix;
#[cfg(not(miri))]
pub use unix::*;

#[cfg(miri)]
mod miri;
#[cfg(miri)]
pub use miri::*;

use std::fmt;

/// The OS page size gort assumes and checks at start-up (Linux x86_64 and
/// aarch64 with 4 KiB pages).
pub const OS_PAGE_SIZE: usize = 4096;

/// How a guard range was installed by [`guard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardKind {
    /// `MADV_GUARD_INSTALL` (Linux ≥ 6.13): no extra VMA.
    Madvise,
    /// `mprotect(PROT_NONE)`: one extra VMA per guarded range.
    Mprotect,
    /// No real protection (Miri only).
    None,
}

/// An operating-system memory call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    /// The call: `"mmap"`, `"munmap"`, `"madvise(MADV_DONTNEED)"`, ...
    pub op: &'static str,
    /// Bytes the call was asked to cover.
    pub size: usize,
    /// `errno` after the call.
    pub errno: i32,
}

impl SysError {
    /// Is this the kernel refusing more mappings (`ENOMEM` from a call that
    /// splits VMAs)? Then `vm.max_map_count` is the limit that was hit.
    pub fn is_map_count_limit(&self) -> bool {
        self.errno == libc::ENOMEM && self.op.starts_with("mprotect")
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = std::io::Error::from_raw_os_error(self.errno);
        write!(f, "{} of {} bytes failed: {}", self.op, self.size, what)?;
        if self.is_map_count_limit() {
            write!(
                f,
                " (the process reached vm.max_map_count; raise it with \
                 `sysctl -w vm.max_map_count=N`, or run on Linux >= 6.13 where \
                 gort guards stacks with MADV_GUARD_INSTALL and needs no extra mappings)"
            )?;
        } else if self.errno == libc::ENOMEM {
            write!(
                f,
                " (out of address space or memory: check `ulimit -v`, \
                 vm.overcommit_memory and the memory cgroup limit)"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for SysError {}

/// Rounds `n` up to a multiple of the OS page size.
#[inline]
pub const fn round_up_to_page(n: usize) -> usize {
    (n + OS_PAGE_SIZE - 1) & !(OS_PAGE_SIZE - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_touch_decommit_release() {
        let size = 16 * OS_PAGE_SIZE;
        let p = reserve(size).expect("reserve");
        // SAFETY: `p` is a fresh reservation of `size` writable bytes.
        let s = unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), size) };
        s[0] = 7;
        s[size - 1] = 9;
        // SAFETY: the range is ours; nothing else refers to it.
        unsafe { decommit(p, size) }.expect("decommit");
        // SAFETY: as above; decommitted memory reads as zero.
        let s = unsafe { std::slice::from_raw_parts(p.as_ptr(), size) };
        assert_eq!(s[0], 0);
        assert_eq!(s[size - 1], 0);
        // SAFETY: `p..p+size` came from `reserve` and is not used again.
        unsafe { release(p, size) }.expect("release");
    }

    #[test]
    fn guard_kind_is_reported() {
        let size = 4 * OS_PAGE_SIZE;
        let p = reserve(size).expect("reserve");
        // SAFETY: the first page of our own reservation; never accessed below.
        let kind = unsafe { guard(p, OS_PAGE_SIZE) }.expect("guard");
        if cfg!(miri) {
            assert_eq!(kind, GuardKind::None);
        } else {
            assert_ne!(kind, GuardKind::None);
        }
        // SAFETY: whole reservation, not used again.
        unsafe { release(p, size) }.expect("release");
    }

    #[test]
    fn error_messages_name_the_limit() {
        let e = SysError {
            op: "mprotect(PROT_NONE)",
            size: 4096,
            errno: libc::ENOMEM,
        };
        assert!(e.to_string().contains("vm.max_map_count"));
        let e = SysError {
            op: "mmap",
            size: 1 << 40,
            errno: libc::ENOMEM,
        };
        assert!(e.to_string().contains("1099511627776 bytes"));
        assert!(!e.to_string().contains("max_map_count"));
    }

    #[test]
    fn rounding() {
        assert_eq!(round_up_to_page(0), 0);
        assert_eq!(round_up_to_page(1), OS_PAGE_SIZE);
        assert_eq!(round_up_to_page(OS_PAGE_SIZE), OS_PAGE_SIZE);
    }
}
