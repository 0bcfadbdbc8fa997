//! `Mutex<T>` (Go's `sync.Mutex`, with std's / parking_lot's data-owning
//! API): blocking parks the goroutine (its M runs others) or blocks a plain
//! thread. Design notes: `docs/design/sync.md`.
//!
//! # State word
//!
//! `state: AtomicU32` holds three bits:
//!
//! - `LOCKED`: somebody owns the mutex;
//! - `QUEUED`: the wait queue is non-empty (set and cleared only under the
//!   queue lock, so it always equals `!queue.is_empty()` when that lock is
//!   free);
//! - `STARVING`: starvation mode. Set only while the lock is held; while it
//!   is set nobody takes `LOCKED` except by hand-off (lockers queue instead
//!   of barging), so the unlocker can give the lock to the head waiter.
//!
//! # Algorithm
//!
//! 1. Fast path (one CAS): `0 → LOCKED`. Unlock fast path (one atomic
//!    subtract, as Go's `Unlock`): `LOCKED` off; the result is 0 unless
//!    somebody waits. (A CAS `LOCKED → 0` instead cost 5.3 ns per uncontended
//!    lock/unlock pair against 4.7–4.9 for CAS + subtract, and Go's 5.0.)
//!    On x86-64 the subtract is a `lock sub` whose flags pick the path
//!    (`STARVING` is the sign bit), not a `lock xadd` whose value is
//!    compared: 4.65 → 4.1–4.3 ns per pair (docs/design/sync.md).
//! 2. Slow lock: while `LOCKED` and `STARVING` are clear, barge with a CAS `s → s | LOCKED`
//!    (normal mode lets a new arrival beat woken waiters, as in Go: it is
//!    already on a CPU). Otherwise take the queue lock, and in one CAS either
//!    grab the lock (if it came free) or set `QUEUED` (and `STARVING` if this
//!    waiter has already waited longer than [`STARVATION_THRESHOLD`]) and
//!    enqueue: at the back on the first wait, at the front on a re-wait
//!    (Go's LIFO re-queue of a woken waiter that lost the race).
//! 3. Slow unlock (the subtract left `QUEUED` or `STARVING` behind), under
//!    the queue lock, in the mode *the subtract saw* (not a later load):
//!    - starvation mode: pop the oldest waiter and hand it the lock directly
//!      (`LOCKED` set again for it; it is granted, not merely woken). Leave
//!      starvation mode if that waiter waited less than the threshold or was
//!      the last one (Go's exit rule).
//!    - normal mode: pop the oldest waiter and wake it; it competes with
//!      arrivals again (step 2). If the lock was taken again (or starvation
//!      mode began under a new owner) meanwhile, wake nobody: that owner's
//!      unlock finds `QUEUED` and does it.
//!
//! The race protocol: every bit but `LOCKED` changes only under the queue
//! lock, and every change is an RMW on one word, so a waiter that sets
//! `QUEUED` while the lock is held makes the owner's unlock subtract return
//! non-zero and take the slow path, which then sees the waiter (no lost
//! wake-up). Between the subtract and the hand-off `LOCKED` is clear but
//! `STARVING` keeps every locker out.
//!
//! # The data cell
//!
//! The data sits in an `UnsafeCell` reached only through a [`MutexGuard`],
//! and a guard exists only while its holder owns the state word's `LOCKED`
//! bit (won by the CAS in `lock_state`/`try_lock`, or granted by a
//! starvation-mode unlock). This module is the one place in `sync` with
//! `unsafe` (listed in docs/unsafe.md). The first version kept `sync` free
//! of `unsafe` with a `parking_lot::Mutex<T>` as the cell, locked with an
//! uncontended `try_lock` by the owner: two more atomic read-modify-writes
//! per critical section, 9.5 ns uncontended against Go's 4.3.
//!
//! # Poisoning
//!
//! None (like parking_lot): a panic while holding the guard unlocks the
//! mutex during unwinding and the next locker sees whatever state the data
//! was left in.
//!
//! Rejected: a pure spin-then-`std::thread::park` lock (blocks the M),
//! and wrapping `parking_lot::Mutex::lock` directly (same). References: Go
//! `internal/sync/mutex.go` (the starvation-mode design comment).
#![allow(unsafe_code)] // the data cell (see "# The data cell") and the unlock's `asm!`

use crate::sched::park::{self, Waiter};
use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A waiter that has waited longer than this switches the mutex to
/// starvation mode (Go's `starvationThresholdNs`, 1 ms).
pub const STARVATION_THRESHOLD: Duration = Duration::from_millis(1);

const LOCKED: u32 = 1;
const QUEUED: u32 = 2;
/// The sign bit, so that the unlock's subtract reports it in the sign flag
/// (`unlock_state`).
const STARVING: u32 = 1 << 31;
const _: () = assert!((STARVING as i32) < 0 && ((LOCKED | QUEUED) as i32) > 0);

/// A one-shot wake-up cell shared by the primitives of this module tree:
/// the sleeper waits until `state` is non-zero; the waker stores a non-zero
/// code then wakes it. Spurious wake-ups re-check `state`.
#[derive(Debug)]
pub(super) struct Signal {
    /// Immutable after init: who to wake.
    waiter: Waiter,
    /// Atomic: 0 while waiting; set once by the waker (Release, pairs with
    /// the Acquire load in `wait`).
    state: AtomicU8,
}

impl Signal {
    /// A signal for the calling goroutine or thread.
    pub(super) fn new() -> Arc<Signal> {
        Arc::new(Signal {
            waiter: Waiter::current(),
            state: AtomicU8::new(0),
        })
    }

    /// Sets the code (non-zero) and wakes the sleeper.
    pub(super) fn fire(&self, code: u8) {
        debug_assert!(code != 0);
        self.state.store(code, Ordering::Release); // Release: pairs with Acquire in `wait`
        self.waiter.clone().wake();
    }

    /// Parks until fired; returns the code.
    pub(super) fn wait(&self, why: park::WaitReason) -> u8 {
        loop {
            let c = self.state.load(Ordering::Acquire); // Acquire: pairs with Release in `fire`
            if c != 0 {
                return c;
            }
            park::park_current(why);
        }
    }
}

/// Codes for the mutex's [`Signal`]s.
const WOKEN: u8 = 1;
const GRANTED: u8 = 2;

#[derive(Debug)]
struct Queued {
    signal: Arc<Signal>,
    since: Instant,
}

/// A mutual-exclusion lock protecting a `T` (Go's `sync.Mutex`, owning its
/// data like `std::sync::Mutex`).
///
/// Blocking in [`lock`](Mutex::lock) parks a goroutine (its M runs other
/// goroutines) or blocks a plain thread, so goroutines and threads may
/// share one mutex. Normal mode lets new arrivals barge; a waiter stuck
/// longer than 1 ms switches it to starvation mode (FIFO hand-off), as in
/// Go. No poisoning: a panic in a critical section just unlocks.
///
/// ```
/// use std::sync::Arc;
/// gort_runtime::run(|| {
///     let m = Arc::new(gort_runtime::sync::Mutex::new(0));
///     let wg = Arc::new(gort_runtime::sync::WaitGroup::new());
///     for _ in 0..10 {
///         wg.add(1);
///         let (m, wg) = (m.clone(), wg.clone());
///         gort_runtime::go(move || {
///             *m.lock() += 1;
///             wg.done();
///         });
///     }
///     wg.wait();
///     assert_eq!(*m.lock(), 10);
/// });
/// ```
pub struct Mutex<T: ?Sized> {
    /// Atomic: `LOCKED | QUEUED | STARVING` (see the module docs).
    state: AtomicU32,
    /// Protected by: its own lock. Waiters, oldest first (re-waiters go to
    /// the front).
    queue: parking_lot::Mutex<VecDeque<Queued>>,
    /// Protected by: `state`'s `LOCKED` bit (only a guard touches it).
    data: UnsafeCell<T>,
}

// SAFETY: the data is reached only through a guard, and guards are
// exclusive (one holder of `LOCKED` at a time), so sharing the mutex hands
// `T` from thread to thread (needs `T: Send`) and never gives two threads
// access at once.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above: `&Mutex<T>` reaches `T` only through an exclusive guard.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// RAII guard of a [`Mutex`]; unlocks on drop.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    /// True except transiently inside [`Condvar::wait`](super::Condvar::wait).
    held: bool,
    /// Not `Send`, like std's and parking_lot's guards.
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a `&MutexGuard` gives only `&T`, so sharing it between threads is
// sharing `&T`: fine for `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            state: AtomicU32::new(0),
            queue: parking_lot::Mutex::new(VecDeque::new()),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Acquires the mutex, parking the goroutine (or blocking the thread)
    /// until it is available.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        // No safe point on the fast path: Go's `Lock` fast path is inlined
        // into its caller (the slow path is outlined so that it can be),
        // so it has no prologue check either; `lock_slow` has one.
        self.lock_state();
        self.guard()
    }

    /// Acquires the mutex if it is free right now (never blocks).
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & (LOCKED | STARVING) == 0 {
            // Acquire: pairs with the Release in `unlock_state`.
            match self.state.compare_exchange_weak(
                s,
                s | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.guard()),
                Err(x) => s = x,
            }
        }
        None
    }

    /// Mutable access without locking (the borrow proves exclusivity).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Whether the mutex is in starvation mode right now (diagnostics and
    /// tests; racy by nature).
    #[doc(hidden)]
    pub fn is_starving(&self) -> bool {
        self.state.load(Ordering::Relaxed) & STARVING != 0
    }

    /// A guard for the caller, which owns `LOCKED`.
    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            held: true,
            _not_send: PhantomData,
        }
    }

    /// Fast path: one CAS (≈3 instructions, one branch).
    #[inline]
    fn lock_state(&self) {
        // Acquire: pairs with the Release in `unlock_state`.
        if self
            .state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
    }

    #[cold]
    fn lock_slow(&self) {
        // A safe point (Go: `lockSlow` is a call with a prologue check).
        crate::sched::park::preempt_check();
        let mut since: Option<Instant> = None;
        loop {
            // Barge while the lock is free (never in starvation mode: then
            // it goes to the head waiter). A short spin first, like Go's.
            for i in 0..8 {
                let s = self.state.load(Ordering::Relaxed);
                if s & (LOCKED | STARVING) == 0
                    && self
                        .state
                        // Acquire: pairs with the Release in `unlock_state`.
                        .compare_exchange_weak(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    return;
                }
                if s & STARVING != 0 {
                    break;
                }
                for _ in 0..(1 << i) {
                    std::hint::spin_loop();
                }
            }
            let rewait = since.is_some();
            let start = *since.get_or_insert_with(Instant::now);
            let starve = start.elapsed() > STARVATION_THRESHOLD;
            let signal = Signal::new();
            {
                let mut q = self.queue.lock();
                let mut s = self.state.load(Ordering::Relaxed);
                loop {
                    let (new, grab) = if s & (LOCKED | STARVING) == 0 {
                        (s | LOCKED, true)
                    } else {
                        (s | QUEUED | if starve { STARVING } else { 0 }, false)
                    };
                    // Acquire: pairs with the Release in `unlock_state` (grab case).
                    match self.state.compare_exchange_weak(
                        s,
                        new,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) if grab => return,
                        Ok(_) => break,
                        Err(x) => s = x,
                    }
                }
                let entry = Queued {
                    signal: signal.clone(),
                    since: start,
                };
                if rewait {
                    q.push_front(entry);
                } else {
                    q.push_back(entry);
                }
            }
            if signal.wait(park::WaitReason::MutexLock) == GRANTED {
                return; // handed off in starvation mode: we own LOCKED
            }
        }
    }

    #[inline]
    fn unlock_state(&self) {
        // Release: pairs with the Acquire of the next locker. The caller
        // owns LOCKED (a guard), so the subtract only clears that bit.
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        // SAFETY: `as_ptr` is the state word's address: valid, aligned and
        // alive for the call (`&self`). `lock sub` is an atomic
        // read-modify-write of that word alone (x86 orders it before and
        // after everything: at least the Release `fetch_sub` it replaces);
        // it changes only the word and the flags, which the two jumps read
        // at once. The labels run ordinary Rust code after the asm block.
        unsafe {
            std::arch::asm!(
                "lock sub dword ptr [{state}], {locked}",
                "js {starving}",
                "jnz {normal}",
                state = in(reg) self.state.as_ptr(),
                locked = const LOCKED,
                starving = label { self.unlock_slow(true) },
                normal = label { self.unlock_slow(false) },
                options(nostack),
            );
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        {
            let new = self
                .state
                .fetch_sub(LOCKED, Ordering::Release)
                .wrapping_sub(LOCKED);
            if new != 0 {
                self.unlock_slow((new as i32) < 0);
            }
        }
    }

    /// `starving`: the `STARVING` bit of the state our subtract left. It,
    /// not a later load, picks the mode (as `new` does in Go's
    /// `unlockSlow(new)`): between the
    /// subtract and the queue lock a locker may barge in (normal mode) and
    /// a waiter may then switch the mutex to starvation mode under *that*
    /// owner; a hand-off decided on a fresh load would then grant a lock
    /// somebody holds — two guards at once (found by
    /// `mutex_mutual_exclusion_across_gomaxprocs` under load; regression
    /// test `a_normal_unlock_never_hands_off_a_lock_taken_meanwhile`).
    #[cold]
    fn unlock_slow(&self, starving: bool) {
        let (signal, code) = {
            let mut q = self.queue.lock();
            if starving {
                // Starvation mode when we unlocked: since then nobody took
                // LOCKED (lockers queue while STARVING is set) and nobody
                // cleared STARVING (only a hand-off does, and only the
                // unlocker that saw it may hand off: us). Normal-mode
                // unlockers pop nobody while STARVING is set, so the waiter
                // that set it is still queued.
                let Some(e) = q.pop_front() else {
                    debug_assert!(false, "gort Mutex: starving with no waiter");
                    // Leave it unlocked and in normal mode.
                    self.state
                        .fetch_and(!(STARVING | QUEUED), Ordering::Release);
                    return;
                };
                // Leave starvation mode if this waiter was the last one or
                // waited less than the threshold (Go's exit rule).
                let mut clear = 0;
                if q.is_empty() {
                    clear |= QUEUED | STARVING;
                } else if e.since.elapsed() < STARVATION_THRESHOLD {
                    clear |= STARVING;
                }
                let mut cur = self.state.load(Ordering::Relaxed);
                loop {
                    debug_assert!(cur & LOCKED == 0, "gort Mutex: taken during a hand-off");
                    // Release: the new owner's Acquire is its Signal load.
                    match self.state.compare_exchange_weak(
                        cur,
                        (cur | LOCKED) & !clear,
                        Ordering::Release,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break,
                        Err(x) => cur = x,
                    }
                }
                (e.signal, GRANTED)
            } else {
                // Normal mode: wake the head waiter to compete with
                // arrivals — unless the lock was taken again or starvation
                // mode began meanwhile. Then the owner's own unlock finds
                // QUEUED (the queue is non-empty: we hold its lock) and
                // does this instead (Go's early return in `unlockSlow`).
                let s = self.state.load(Ordering::Relaxed);
                if s & (LOCKED | STARVING) != 0 {
                    return;
                }
                let Some(e) = q.pop_front() else {
                    return; // another unlocker woke the last waiter
                };
                if q.is_empty() {
                    // Release: pairs with the Acquire of the next locker.
                    self.state.fetch_and(!QUEUED, Ordering::Release);
                }
                (e.signal, WOKEN)
            }
        };
        signal.fire(code);
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// Releases the lock (keeping the guard) for `Condvar::wait`.
    pub(super) fn unlock_for_wait(&mut self) -> &'a Mutex<T> {
        self.held = false;
        self.mutex.unlock_state();
        self.mutex
    }

    /// Re-acquires after `unlock_for_wait`.
    pub(super) fn relock_after_wait(&mut self) {
        self.mutex.lock_state();
        self.held = true;
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        if std::mem::replace(&mut self.held, false) {
            self.mutex.unlock_state();
        }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // Not held only inside `Condvar::wait`, which holds `&mut self`.
        assert!(
            self.held,
            "gort: MutexGuard used while not holding the lock"
        );
        // SAFETY: `held` means this guard's holder owns `LOCKED`, so no
        // other guard exists; the `&T` borrows `self`, so no `&mut T` from
        // `deref_mut` can coexist with it.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        assert!(
            self.held,
            "gort: MutexGuard used while not holding the lock"
        );
        // SAFETY: as in `deref`, and `&mut self` excludes every other
        // reference obtained through this guard.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(v: T) -> Self {
        Mutex::new(v)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_count() {
        let m = Arc::new(Mutex::new(0u64));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        *m.lock() += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*m.lock(), 40_000);
        assert!(m.try_lock().is_some());
        let g = m.lock();
        assert!(m.try_lock().is_none());
        drop(g);
        assert_eq!(Arc::try_unwrap(m).unwrap().into_inner(), 40_000);
    }

    /// The hand-off window of a starvation-mode unlock: the subtract has
    /// cleared `LOCKED`, `STARVING | QUEUED` remain, and the head waiter has
    /// not been granted the lock yet. Nobody else may take it then.
    #[test]
    fn nobody_barges_into_a_starvation_hand_off() {
        let m = Arc::new(Mutex::new(0u32));
        let g = m.lock();
        // A waiter queues behind the held lock.
        let (m2, got) = (m.clone(), Arc::new(AtomicU8::new(0)));
        let got2 = got.clone();
        let waiter = std::thread::spawn(move || {
            *m2.lock() += 1;
            got2.store(1, Ordering::Release);
        });
        while m.state.load(Ordering::Acquire) & QUEUED == 0 {
            std::thread::yield_now();
        }
        // Starvation mode, then the owner's unlock subtract, by hand.
        m.state.fetch_or(STARVING, Ordering::AcqRel);
        std::mem::forget(g);
        assert_eq!(
            m.state.fetch_sub(LOCKED, Ordering::Release),
            LOCKED | QUEUED | STARVING
        );
        // The window: neither try_lock nor a blocking locker gets in.
        assert!(m.try_lock().is_none(), "try_lock barged into a hand-off");
        let (m3, barged) = (m.clone(), Arc::new(AtomicU8::new(0)));
        let barged2 = barged.clone();
        let barger = std::thread::spawn(move || {
            let _g = m3.lock();
            barged2.store(1, Ordering::Release);
        });
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            barged.load(Ordering::Acquire),
            0,
            "a locker barged into a hand-off"
        );
        assert_eq!(got.load(Ordering::Acquire), 0);
        // The unlock's slow half grants the lock to the head waiter.
        m.unlock_slow(true);
        waiter.join().unwrap();
        barger.join().unwrap();
        assert_eq!(*m.lock(), 1);
        assert_eq!(m.state.load(Ordering::Acquire), 0);
    }

    /// The interleaving behind a double ownership found under load: owner
    /// O's unlock subtract leaves `QUEUED` (normal mode) and O stalls before
    /// the queue lock; a locker B barges in; a starving waiter switches the
    /// mutex to starvation mode under B. O's slow half must not hand the
    /// lock (which B holds) to the head waiter; it wakes nobody, and B's
    /// own unlock hands it off.
    #[test]
    fn a_normal_unlock_never_hands_off_a_lock_taken_meanwhile() {
        let m = Arc::new(Mutex::new(0u32));
        let o = m.lock();
        // W1 queues behind O (a queue entry, as `lock_slow` makes it).
        let w1 = Signal::new();
        {
            let mut q = m.queue.lock();
            m.state.fetch_or(QUEUED, Ordering::AcqRel);
            q.push_back(Queued {
                signal: w1.clone(),
                since: Instant::now(),
            });
        }
        // O unlocks on another thread and stalls on the queue lock we hold.
        let q = m.queue.lock();
        let unlocker = {
            let m = m.clone();
            std::thread::spawn(move || drop(o_guard_for(&m)))
        };
        std::mem::forget(o);
        while m.state.load(Ordering::Acquire) & LOCKED != 0 {
            std::thread::yield_now();
        }
        // B barges in (normal mode, the lock is free).
        let b = m.try_lock().expect("normal mode: a locker barges in");
        // W2, starving, switches to starvation mode under B (as `lock_slow`
        // does under the queue lock, which we hold).
        let w2 = Signal::new();
        let mut q = q;
        m.state.fetch_or(QUEUED | STARVING, Ordering::AcqRel);
        q.push_back(Queued {
            signal: w2.clone(),
            since: Instant::now() - 2 * STARVATION_THRESHOLD,
        });
        drop(q);
        unlocker.join().unwrap();
        assert_eq!(
            w1.state.load(Ordering::Acquire),
            0,
            "the stalled normal unlock woke or granted a waiter while B held the lock"
        );
        assert_eq!(m.state.load(Ordering::Acquire), LOCKED | QUEUED | STARVING);
        assert_eq!(m.queue.lock().len(), 2);
        // B's unlock hands the lock to the head waiter (W1), in FIFO order.
        drop(b);
        assert_eq!(w1.state.load(Ordering::Acquire), GRANTED);
        assert_eq!(w2.state.load(Ordering::Acquire), 0);
        assert_eq!(m.state.load(Ordering::Acquire) & LOCKED, LOCKED);
    }

    /// A guard for a lock the caller made sure is held (the test above
    /// moves O's ownership to another thread: guards are not `Send`).
    fn o_guard_for(m: &Mutex<u32>) -> MutexGuard<'_, u32> {
        assert!(m.state.load(Ordering::Acquire) & LOCKED != 0);
        m.guard()
    }
}
