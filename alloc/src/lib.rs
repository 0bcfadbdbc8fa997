//! gort-alloc: the heap of gort (Go's `malloc.go`, `mheap.go`, `mcentral.go`,
//! `mcache.go`), over address space from the OS.
//!
//! # Modules
//!
//! - [`sys`]: reserve / release / decommit / guard address space (the only
//!   place that calls `mmap`, `munmap`, `madvise`, `mprotect`).
//!
//! # Cargo features
//!
//! - `verify`: invariant checks (`check()`) on heap metadata and stats.

pub mod sys;
