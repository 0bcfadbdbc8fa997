//! `Semaphore`: a counting semaphore with FIFO fairness (Go's
//! `golang.org/x/sync/semaphore.Weighted` with weight 1; tokio-shaped API).
//! Design notes: `docs/design/sync.md`.
//!
//! # Algorithm
//!
//! Under one small lock: `permits` and a FIFO queue of waiters.
//!
//! 1. `acquire`: if nobody is queued and a permit is free, take it.
//!    Otherwise enqueue at the back and park until *granted*: the releaser
//!    moves the permit to the waiter directly (hand-off), so a later arrival
//!    can never overtake a queued waiter (FIFO fairness, no barging).
//! 2. `release`/`add_permits`: add permits, then grant them to queued
//!    waiters in order while any remain.
//!
//! Invariant (under the lock): `queue non-empty ⇒ permits == 0`.
#![forbid(unsafe_code)]

use super::mutex::Signal;
use parking_lot::Mutex as PlMutex;
use std::collections::VecDeque;
use std::sync::Arc;

#[derive(Debug)]
struct SemState {
    permits: usize,
    queue: VecDeque<Arc<Signal>>,
}

/// A counting semaphore; waiting parks the goroutine or blocks the thread.
/// Waiters are served in FIFO order.
///
/// ```
/// let sem = gort_runtime::sync::Semaphore::new(2);
/// let a = sem.acquire();
/// let _b = sem.try_acquire().expect("second permit");
/// assert!(sem.try_acquire().is_none());
/// drop(a);
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[derive(Debug)]
pub struct Semaphore {
    /// Protected by: its own lock.
    state: PlMutex<SemState>,
}

/// One acquired permit; released on drop.
#[derive(Debug)]
#[must_use = "dropping the permit releases it at once"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
}

impl Semaphore {
    /// A semaphore with `permits` free permits.
    pub const fn new(permits: usize) -> Semaphore {
        Semaphore {
            state: PlMutex::new(SemState {
                permits,
                queue: VecDeque::new(),
            }),
        }
    }

    /// Acquires a permit, parking (FIFO) until one is available.
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        let sig = {
            let mut st = self.state.lock();
            if st.queue.is_empty() && st.permits > 0 {
                st.permits -= 1;
                return SemaphorePermit { sem: self };
            }
            let s = Signal::new();
            st.queue.push_back(s.clone());
            s
        };
        sig.wait(crate::sched::park::WaitReason::Semacquire); // granted: the releaser moved a permit to us
        SemaphorePermit { sem: self }
    }

    /// Acquires a permit if one is free and nobody is queued.
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        let mut st = self.state.lock();
        if st.queue.is_empty() && st.permits > 0 {
            st.permits -= 1;
            Some(SemaphorePermit { sem: self })
        } else {
            None
        }
    }

    /// Returns one permit (Go's `Release(1)`), e.g. one taken with
    /// [`SemaphorePermit::forget`].
    pub fn release(&self) {
        self.add_permits(1);
    }

    /// Adds `n` permits, granting them to queued waiters first (in order).
    pub fn add_permits(&self, n: usize) {
        let granted: Vec<Arc<Signal>> = {
            let mut st = self.state.lock();
            st.permits += n;
            let k = st.permits.min(st.queue.len());
            st.permits -= k;
            st.queue.drain(..k).collect()
        };
        for s in granted {
            s.fire(1);
        }
    }

    /// Free permits right now.
    pub fn available_permits(&self) -> usize {
        self.state.lock().permits
    }
}

impl SemaphorePermit<'_> {
    /// Keeps the permit acquired forever (release it later with
    /// [`Semaphore::release`]).
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.add_permits(1);
    }
}
