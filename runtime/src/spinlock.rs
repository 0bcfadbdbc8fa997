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
//! 1. Back off *without reading the word*, `BACKOFF_ROUNDS` rounds of
//!    `pause`s, trying once after each (Go's `lock2` spins the same way,
//!    `procyield` between attempts). A waiter that polls the word pulls its
//!    cache line away from the holder mid-section, so the holder's unlock
//!    misses, and so does its next lock (measured in docs/design/chan.md).
//!    A round lasts about `BACKOFF_ROUND_NS` (10 µs), however long a
//!    `pause` takes: the count per round is calibrated once, on the first
//!    contended lock (`pauses_per_round`). A `pause` costs 8.5 ns on one
//!    host and 25 ns on another, and the best round was measured in time,
//!    not in `pause`s: under contention the loser steps aside long enough
//!    for the holder to run many operations uncontended.
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

/// Waiting, step 1: rounds of `pause`s (Go: 4 rounds of 30 `pause`s).
const BACKOFF_ROUNDS: u32 = 4;
/// The length of one round (docs/design/chan.md, "Contended lock").
#[cfg(not(any(loom, miri)))]
const BACKOFF_ROUND_NS: u64 = 10_000;
/// `pause`s per round until calibrated, and always under loom and Miri
/// (which have no meaningful clock for it).
const DEFAULT_PAUSES: u32 = 100;
/// Bounds on the calibrated count: a clock hiccup during calibration can
/// neither make a round a handful of `pause`s nor a millisecond.
#[cfg(not(any(loom, miri)))]
const PAUSES_RANGE: std::ops::RangeInclusive<u32> = 16..=4096;
/// `pause`s per calibration sample.
#[cfg(not(any(loom, miri)))]
const CALIBRATION_PAUSES: u32 = 128;
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
        let pauses = pauses_per_round();
        for _ in 0..BACKOFF_ROUNDS {
            for _ in 0..pauses {
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

/// `pause`s per back-off round: `DEFAULT_PAUSES` under loom and Miri;
/// else calibrated on the first call, to last `BACKOFF_ROUND_NS`.
#[cfg(any(loom, miri))]
fn pauses_per_round() -> u32 {
    DEFAULT_PAUSES
}

/// `pause`s per back-off round: calibrated on the first call (the first
/// contended lock of the process) by timing three samples of
/// `CALIBRATION_PAUSES` and keeping the fastest (a sample the OS
/// interrupted only reads slow). Threads calibrating at once store nearly
/// the same count; any of them will do.
#[cfg(not(any(loom, miri)))]
fn pauses_per_round() -> u32 {
    use std::sync::atomic::AtomicU32;
    static PAUSES: AtomicU32 = AtomicU32::new(0);
    let n = PAUSES.load(Ordering::Relaxed);
    if n != 0 {
        return n;
    }
    let fastest = (0..3)
        .map(|_| {
            let t = std::time::Instant::now();
            for _ in 0..CALIBRATION_PAUSES {
                spin_loop();
            }
            t.elapsed().as_nanos()
        })
        .min()
        .unwrap_or(0);
    let n = pauses_for(fastest);
    PAUSES.store(n, Ordering::Relaxed);
    n
}

/// The `pause`s that fill a round, when `CALIBRATION_PAUSES` of them took
/// `ns`: proportional, within `PAUSES_RANGE` (`DEFAULT_PAUSES` if the
/// clock read 0).
#[cfg(not(any(loom, miri)))]
fn pauses_for(ns: u128) -> u32 {
    if ns == 0 {
        return DEFAULT_PAUSES;
    }
    let n = u128::from(BACKOFF_ROUND_NS) * u128::from(CALIBRATION_PAUSES) / ns;
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    n.clamp(*PAUSES_RANGE.start(), *PAUSES_RANGE.end())
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

    /// The round's `pause` count follows the measured cost of a `pause`
    /// (a round is `BACKOFF_ROUND_NS` long), within its bounds.
    #[test]
    #[cfg(not(miri))]
    fn backoff_round_is_calibrated_in_time() {
        let per = |pause_ns: u128| pauses_for(pause_ns * u128::from(CALIBRATION_PAUSES));
        assert_eq!(per(10), 1_000, "10 ns pauses: 1,000 per 10 µs round");
        assert_eq!(per(25), 400);
        assert_eq!(per(100), 100);
        assert_eq!(
            per(1_000_000),
            *PAUSES_RANGE.start(),
            "a stalled clock read"
        );
        assert_eq!(pauses_for(1), *PAUSES_RANGE.end(), "a clock too coarse");
        assert_eq!(pauses_for(0), DEFAULT_PAUSES);
        let n = pauses_per_round();
        assert!(PAUSES_RANGE.contains(&n), "calibrated {n}");
        assert_eq!(pauses_per_round(), n, "calibrated once");
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
