//! The channel lock: a test-and-set lock whose unlock is a plain store
//! (crossbeam-channel's `Spinlock` and Go's runtime lock are the models).
//!
//! # Why not `parking_lot::Mutex`
//!
//! `parking_lot`'s unlock is a compare-and-swap: it must see whether a
//! thread sleeps on the lock, to wake it. A channel's critical sections are
//! a few dozen instructions and never block, so a waiter never needs to
//! sleep *on the lock*: it backs off, yields, and at worst naps for a few
//! microseconds, and nobody has to wake it. Unlock is then a Release
//! store, one atomic read-modify-write (~12 ns on the AMD host) less per
//! channel operation: four per unbuffered ping-pong round trip.
//!
//! # Waiting (`RawSpinLock::lock_slow`)
//!
//! 1. Back off *without reading the word*, `BACKOFF_ROUNDS` times
//!    `BACKOFF_PAUSES` `pause`s, trying once after each (Go's `lock2` spins
//!    the same way, `procyield` between attempts). A waiter that polls the
//!    word pulls its cache line away from the holder mid-section, so the
//!    holder's unlock misses, and so does its next lock (measured in
//!    docs/design/chan.md).
//! 2. Then the holder is probably not running (preempted by the OS, on a
//!    host with more Ms than CPUs): `sched_yield`, `YIELDS` times, reading
//!    the word before each attempt.
//! 3. Then nap: `nanosleep` from 1 µs, doubling to `MAX_NAP` (50 µs), so an
//!    M waiting on a descheduled holder neither burns its CPU nor sleeps
//!    much past the unlock (the Ms run with 1 ns of timer slack).
//!
//! A waiter is never woken by anyone, so no wake-up can be lost. There is no
//! fairness: under heavy contention one waiter may lose many times in a row
//! (so could `parking_lot`'s before its eventual fairness kicks in, every
//! 0.5 ms); it cannot starve for ever while the holders keep releasing.
//!
//! # Safety
//!
//! `lock_api::RawMutex` is an `unsafe` trait: `lock`/`try_lock` must give
//! mutual exclusion. Acquisition is a successful `false → true`
//! compare-and-swap with Acquire; release is a Release store of `false` by
//! the holder (`unlock` is `unsafe` and only `lock_api`'s guard calls it).
//! The swap is the single point where ownership changes hands, so at most
//! one holder exists, and the Release/Acquire pair orders each critical
//! section before the next. `tests::mutual_exclusion` (also under Miri) and
//! the loom model `loom_spinlock` check it; the model fails with a Relaxed
//! unlock.

#[cfg(loom)]
use loom::{hint::spin_loop, thread::yield_now};
#[cfg(not(loom))]
use std::{hint::spin_loop, thread::yield_now};

use crate::loom::sync::atomic::{AtomicBool, Ordering};

/// Waiting, step 1: rounds of `pause`s, and `pause`s per round (about 2–3
/// µs per round on the AMD host; Go: 4 × 30).
const BACKOFF_ROUNDS: u32 = 4;
const BACKOFF_PAUSES: u32 = 100;
/// Waiting, step 2: `sched_yield`s before napping.
const YIELDS: u32 = 10;
/// Waiting, step 3: the longest nap.
#[cfg(not(loom))]
const MAX_NAP: std::time::Duration = std::time::Duration::from_micros(50);

/// A raw test-and-set lock for `lock_api::Mutex` (see the module docs).
#[derive(Debug)]
pub(crate) struct RawSpinLock {
    locked: AtomicBool,
}

/// A mutex over [`RawSpinLock`]: `lock`, `try_lock` and a guard, as
/// `parking_lot::Mutex`.
pub(crate) type SpinMutex<T> = lock_api::Mutex<RawSpinLock, T>;
/// The guard of a [`SpinMutex`].
pub(crate) type SpinMutexGuard<'a, T> = lock_api::MutexGuard<'a, RawSpinLock, T>;

/// A fresh, unlocked [`SpinMutex`] holding `v` (not `SpinMutex::new`,
/// which a loom build cannot provide: see `RawMutex::INIT` below).
pub(crate) fn spin_mutex<T>(v: T) -> SpinMutex<T> {
    SpinMutex::from_raw(RawSpinLock::new(), v)
}

impl RawSpinLock {
    #[cfg(not(loom))]
    const fn new() -> RawSpinLock {
        RawSpinLock {
            locked: AtomicBool::new(false),
        }
    }

    #[cfg(loom)]
    fn new() -> RawSpinLock {
        RawSpinLock {
            locked: AtomicBool::new(false),
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_slow(&self) {
        for _ in 0..BACKOFF_ROUNDS {
            for _ in 0..BACKOFF_PAUSES {
                spin_loop();
            }
            if self.try_acquire() {
                return;
            }
        }
        for _ in 0..YIELDS {
            yield_now();
            if !self.locked.load(Ordering::Relaxed) && self.try_acquire() {
                return;
            }
        }
        #[cfg(not(loom))]
        let mut nap = std::time::Duration::from_micros(1);
        loop {
            #[cfg(not(loom))]
            {
                std::thread::sleep(nap);
                nap = (nap * 2).min(MAX_NAP);
            }
            #[cfg(loom)]
            yield_now();
            if !self.locked.load(Ordering::Relaxed) && self.try_acquire() {
                return;
            }
        }
    }

    #[inline(always)]
    fn try_acquire(&self) -> bool {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }
}

// SAFETY: `try_acquire` is the only way to take the lock: a `false → true`
// CAS, so at most one caller holds it at a time; `unlock` (called only by
// the holder, per the trait's contract) releases it with a Release store
// that the next Acquire CAS synchronises with (module docs, "Safety").
unsafe impl lock_api::RawMutex for RawSpinLock {
    // Loom's atomics have no `const fn new`, so a loom build has no
    // `INIT`: every lock is built by `spin_mutex` (an associated const is
    // evaluated only where it is used).
    #[cfg(not(loom))]
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: RawSpinLock = RawSpinLock::new();
    #[cfg(loom)]
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: RawSpinLock = panic!("gort: loom: build a SpinMutex with spin_mutex");

    /// Stateless, and the guard may not cross threads (as
    /// `parking_lot`'s by default); a channel guard never does.
    type Guard = lock_api::GuardNoSend;

    #[inline]
    fn lock(&self) -> lock_api::GuardNoSend {
        if !self.try_acquire() {
            self.lock_slow();
        }
        lock_api::GuardNoSend::new()
    }

    #[inline]
    fn try_lock(&self) -> Option<lock_api::GuardNoSend> {
        self.try_acquire().then(lock_api::GuardNoSend::new)
    }

    #[inline]
    unsafe fn unlock(&self, _: lock_api::GuardNoSend) {
        self.locked.store(false, Ordering::Release);
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn mutual_exclusion() {
        // A non-atomic read-modify-write under the lock: any overlap of two
        // critical sections loses an increment (and is a data race under
        // Miri).
        let threads = 4;
        let per = if cfg!(miri) { 50 } else { 20_000 };
        let m = Arc::new(spin_mutex(0u64));
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..per {
                        let mut g = m.lock();
                        let v = *g;
                        std::hint::black_box(&mut *g);
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*m.lock(), threads * per);
    }

    #[test]
    fn try_lock_fails_while_held_and_a_waiter_gets_it_after_a_nap() {
        let m = Arc::new(spin_mutex(()));
        let g = m.lock();
        assert!(m.try_lock().is_none(), "try_lock succeeded on a held lock");
        let m2 = m.clone();
        // The waiter runs through every waiting step (the holder keeps the
        // lock for 20 ms, past the back-off and the yields) and still gets
        // the lock once it is released.
        let h = std::thread::spawn(move || {
            let _g = m2.lock();
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(g);
        h.join().unwrap();
        assert!(m.try_lock().is_some(), "the lock was not released");
    }
}

/// Loom model: two threads increment a counter with a Relaxed load and
/// store under the lock; a lost increment means the lock failed to order
/// (or to exclude) them. Fails with a Relaxed `unlock`.
#[cfg(all(test, loom))]
mod loom_spinlock {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicUsize;

    #[test]
    fn loom_spinlock_orders_critical_sections() {
        loom::model(|| {
            let m = Arc::new(spin_mutex(()));
            let n = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let (m, n) = (m.clone(), n.clone());
                    loom::thread::spawn(move || {
                        let _g = m.lock();
                        let v = n.load(Ordering::Relaxed);
                        n.store(v + 1, Ordering::Relaxed);
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(n.load(Ordering::Relaxed), 2);
        });
    }
}
