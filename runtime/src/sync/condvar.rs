//! `Condvar` (Go's `sync.Cond`, with std's API) for this crate's
//! [`Mutex`](super::Mutex). Design notes: `docs/design/sync.md`.
//!
//! # Algorithm
//!
//! 1. `wait`: register a [`Signal`] in the condvar's FIFO queue *while still
//!    holding the mutex*, then unlock the mutex, park until signalled, and
//!    re-lock. Registering before unlocking means a `notify_*` issued after
//!    the waiter's condition check (which needs the mutex) always finds it:
//!    no lost wake-up.
//! 2. `notify_one` pops the oldest waiter and fires it; `notify_all` drains
//!    the queue. Notifying with no waiters is a no-op (as in Go and std).
//!
//! As with every condition variable, a waiter must re-check its condition
//! after waking ([`Condvar::wait_while`] does this loop).
#![forbid(unsafe_code)]

use super::mutex::{MutexGuard, Signal};
use parking_lot::Mutex as PlMutex;
use std::collections::VecDeque;
use std::sync::Arc;

/// A condition variable (Go's `sync.Cond`) used with
/// [`Mutex`](super::Mutex): waiting parks the goroutine or blocks the thread.
///
/// ```
/// use std::sync::Arc;
/// use gort_runtime::sync::{Condvar, Mutex};
/// gort_runtime::run(|| {
///     let pair = Arc::new((Mutex::new(false), Condvar::new()));
///     let p = pair.clone();
///     gort_runtime::go(move || {
///         *p.0.lock() = true;
///         p.1.notify_one();
///     });
///     let mut ready = pair.0.lock();
///     pair.1.wait_while(&mut ready, |r| !*r);
///     assert!(*ready);
/// });
/// ```
#[derive(Debug, Default)]
pub struct Condvar {
    /// Protected by: its own lock. Waiters, oldest first.
    waiters: PlMutex<VecDeque<Arc<Signal>>>,
}

impl Condvar {
    /// A condition variable with no waiters.
    pub const fn new() -> Condvar {
        Condvar {
            waiters: PlMutex::new(VecDeque::new()),
        }
    }

    /// Unlocks the guard's mutex, parks until notified (or spuriously), and
    /// re-locks before returning.
    pub fn wait<T: ?Sized>(&self, guard: &mut MutexGuard<'_, T>) {
        let sig = Signal::new();
        self.waiters.lock().push_back(sig.clone());
        guard.unlock_for_wait();
        sig.wait(crate::sched::park::WaitReason::CondWait);
        guard.relock_after_wait();
    }

    /// Waits while `condition` holds (re-checked under the mutex after each
    /// wake-up).
    pub fn wait_while<T: ?Sized, F>(&self, guard: &mut MutexGuard<'_, T>, mut condition: F)
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut **guard) {
            self.wait(guard);
        }
    }

    /// Wakes the longest-waiting waiter, if any. Returns whether one was woken.
    pub fn notify_one(&self) -> bool {
        let w = self.waiters.lock().pop_front();
        match w {
            Some(s) => {
                s.fire(1);
                true
            }
            None => false,
        }
    }

    /// Wakes every waiter. Returns how many were woken.
    pub fn notify_all(&self) -> usize {
        let ws = std::mem::take(&mut *self.waiters.lock());
        let n = ws.len();
        for s in ws {
            s.fire(1);
        }
        n
    }
}
