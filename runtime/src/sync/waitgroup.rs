//! `WaitGroup` (Go's `sync.WaitGroup`): wait for a collection of goroutines.
#![forbid(unsafe_code)]

use crate::sched::park::{self, Waiter};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// Waits for a collection of goroutines to finish (Go's `sync.WaitGroup`).
///
/// `add(n)` before starting work, `done()` when each piece finishes,
/// `wait()` blocks until the counter is zero. Share it by reference (it is
/// `Sync`), e.g. in an `Arc` or a scope.
///
/// ```
/// use std::sync::Arc;
/// gort_runtime::run(|| {
///     let wg = Arc::new(gort_runtime::sync::WaitGroup::new());
///     for _ in 0..10 {
///         wg.add(1);
///         let wg = wg.clone();
///         gort_runtime::go(move || wg.done());
///     }
///     wg.wait();
/// });
/// ```
#[derive(Debug, Default)]
pub struct WaitGroup {
    /// Atomic: the counter (SeqCst; see `wait` for the pairing with `waiters`).
    count: AtomicI64,
    /// Protected by: its own mutex. Registered under the lock after
    /// re-checking `count`; drained under the lock when `count` reaches 0.
    waiters: Mutex<Vec<Waiter>>,
}

impl WaitGroup {
    /// A wait group with counter 0.
    pub const fn new() -> WaitGroup {
        WaitGroup {
            count: AtomicI64::new(0),
            waiters: Mutex::new(Vec::new()),
        }
    }

    /// Adds `delta` (may be negative) to the counter; at zero, releases
    /// every waiter.
    ///
    /// # Panics
    ///
    /// If the counter goes negative (Go: "sync: negative WaitGroup counter").
    pub fn add(&self, delta: i64) {
        let v = self.count.fetch_add(delta, Ordering::SeqCst) + delta;
        if v < 0 {
            panic!("sync: negative WaitGroup counter");
        }
        if v == 0 {
            let ws = std::mem::take(&mut *self.waiters.lock());
            for w in ws {
                w.wake();
            }
        }
    }

    /// Decrements the counter by one.
    pub fn done(&self) {
        self.add(-1);
    }

    /// Blocks until the counter is zero.
    pub fn wait(&self) {
        loop {
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            {
                let mut ws = self.waiters.lock();
                if self.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                ws.push(Waiter::current());
            }
            park::park_current(park::WaitReason::WaitGroupWait);
        }
    }

    /// The current counter value.
    pub fn count(&self) -> i64 {
        self.count.load(Ordering::SeqCst)
    }
}

// A panic while holding the waiter lock leaves a consistent list (pushes
// and drains are single operations), so observing it after a caught panic
// is fine, as with `std::sync::Mutex`.
impl std::panic::RefUnwindSafe for WaitGroup {}
impl std::panic::UnwindSafe for WaitGroup {}
