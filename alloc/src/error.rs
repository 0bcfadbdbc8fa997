//! Allocation failures: fallible results for callers that can recover, and
//! Go's fatal "out of memory" for those that cannot.
//!
//! An `mmap` failure or exhausted address space is always reported as an
//! [`AllocError`] naming the size requested and the failing system call; it
//! never becomes a segfault. [`fatal_oom`] prints Go's two lines and aborts
//! (no unwinding: the caller may be on a coroutine stack).

#![forbid(unsafe_code)]

use crate::sys::SysError;
use std::fmt;

/// Why an allocation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocErrorKind {
    /// The OS refused more address space or memory.
    OutOfMemory(SysError),
    /// The size (plus alignment) overflows the address space.
    TooLarge,
    /// The alignment is not a power of two, or exceeds the arena size.
    BadAlign(usize),
}

/// An allocation of `size` bytes failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocError {
    /// Bytes requested.
    pub size: usize,
    /// What went wrong.
    pub kind: AllocErrorKind,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            AllocErrorKind::OutOfMemory(e) => {
                write!(f, "out of memory allocating {} bytes: {e}", self.size)
            }
            AllocErrorKind::TooLarge => write!(f, "allocation of {} bytes is too large", self.size),
            AllocErrorKind::BadAlign(a) => {
                write!(
                    f,
                    "bad alignment {a} for an allocation of {} bytes",
                    self.size
                )
            }
        }
    }
}

impl std::error::Error for AllocError {}

/// Why an explicit [`Heap::free`](crate::Heap::free) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeError {
    /// The address is not in any live span of this heap.
    Foreign(usize),
    /// The address is inside an object, not at its start.
    Interior(usize),
    /// The object is not allocated (double free, or never allocated).
    NotAllocated(usize),
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FreeError::Foreign(a) => write!(f, "free of {a:#x}: not a pointer into this heap"),
            FreeError::Interior(a) => write!(f, "free of {a:#x}: not the start of an object"),
            FreeError::NotAllocated(a) => {
                write!(f, "free of {a:#x}: object is not allocated (double free?)")
            }
        }
    }
}

impl std::error::Error for FreeError {}

/// Prints Go's out-of-memory report and aborts the process.
///
/// ```text
/// runtime: out of memory: cannot allocate 1099511627776-byte block (8192 in use)
/// fatal error: out of memory allocating 1099511627776 bytes
/// ```
#[cold]
#[inline(never)]
pub fn fatal_oom(size: usize, in_use: u64, cause: Option<&dyn fmt::Display>) -> ! {
    use std::io::Write;
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "runtime: out of memory: cannot allocate {size}-byte block ({in_use} in use)"
    );
    if let Some(c) = cause {
        let _ = writeln!(e, "runtime: {c}");
    }
    let _ = writeln!(e, "fatal error: out of memory allocating {size} bytes");
    let _ = e.flush();
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let e = AllocError {
            size: 1 << 40,
            kind: AllocErrorKind::OutOfMemory(SysError {
                op: "mmap",
                size: 1 << 40,
                errno: libc::ENOMEM,
            }),
        };
        assert!(
            e.to_string()
                .starts_with("out of memory allocating 1099511627776 bytes")
        );
        assert!(FreeError::Foreign(0x10).to_string().contains("0x10"));
    }
}
