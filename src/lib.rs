//! # gort — Go's runtime, as a Rust library
//!
//! Goroutines are stackful coroutines scheduled M:N by a work-stealing
//! G/M/P scheduler (OS threads = Ms, GOMAXPROCS Ps). This crate is the
//! facade: it re-exports the public API of `gort-runtime`.
//!
//! ```
//! let sum = gort::run(|| {
//!     let hs: Vec<_> = (1..=100u64).map(|i| gort::go(move || i)).collect();
//!     hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
//! });
//! assert_eq!(sum, 5050);
//! ```

pub use gort_runtime::goroutine_local;
pub use gort_runtime::spawn::ABANDONED;
pub use gort_runtime::{
    BuildError, Builder, JoinHandle, Runtime, Scope, ScopedJoinHandle, go, run, scope, yield_now,
};

pub use gort_runtime::chan;
pub use gort_runtime::net;
pub use gort_runtime::netpoll;
pub use gort_runtime::runtime::{blocking, preempt_check};

/// Goroutine-aware synchronisation (Go's `sync`).
pub mod sync {
    pub use gort_runtime::sync::{
        Barrier, BarrierWaitResult, Condvar, Mutex, MutexGuard, Once, OnceLock, RwLock,
        RwLockReadGuard, RwLockWriteGuard, STARVATION_THRESHOLD, Semaphore, SemaphorePermit,
        WaitGroup,
    };
}

/// Go's `time`: `sleep` parks the goroutine, never the thread; `Timer` and
/// `Ticker` are Go 1.23's `time.Timer`/`time.Ticker`; `after`, `at` and
/// `tick` are one-shot and periodic timer channels.
pub mod time {
    pub use gort_runtime::time::{Ticker, Timer, after, at, sleep, sleep_until, tick};
}

/// Runtime introspection and control (Go's `runtime` package).
pub mod runtime {
    pub use gort_runtime::coro::stack::{DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE};
    pub use gort_runtime::runtime::{
        DEFAULT_MAX_THREADS, GoroutineStatus, GoroutineView, StoppedWorld, blocking, goid,
        gomaxprocs, is_running, lock_os_thread, num_cpu, num_goroutine, preempt_check,
        set_gomaxprocs, set_max_threads, stack_guard_mode, stop_the_world, unlock_os_thread,
    };
}
