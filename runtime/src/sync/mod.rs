//! Goroutine-aware synchronisation (Go's `sync`). Blocking here parks the
//! goroutine (its M runs others) or blocks a plain thread.
//!
//! [`WaitGroup`], [`Mutex`] (with Go's starvation mode), [`RwLock`]
//! (writer-preferring), [`Condvar`], [`Once`]/[`OnceLock`], [`Semaphore`]
//! (FIFO) and [`Barrier`]. Design: docs/design/sync.md.
// Only `mutex.rs` opts out (its data cell); everything else here is safe code.
#![deny(unsafe_code)]

mod barrier;
mod condvar;
mod mutex;
mod once;
mod rwlock;
mod semaphore;
mod waitgroup;
pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::Condvar;
pub use mutex::{Mutex, MutexGuard, STARVATION_THRESHOLD};
pub use once::{Once, OnceLock};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{Semaphore, SemaphorePermit};
pub use waitgroup::WaitGroup;
