//! Parking and readying (Go: `gopark` / `goready`), for goroutines and plain
//! threads alike.
//!
//! A [`Waiter`] names whoever is waiting: a goroutine ([`GHandle`]) or an OS
//! thread. [`park_current`] blocks the caller — parking the goroutine (its M
//! goes on to run others) or the thread. [`Waiter::wake`] wakes it. As with
//! `std::thread::park`, a park may return spuriously, so callers wait in a
//! loop on their own condition, registered under their own lock.
#![forbid(unsafe_code)]

use super::g::{self, GHandle, GRef};
use super::preempt::{self, M_LOST, M_RUN, M_SYSCALL};
use super::{Sched, coarse_nanos, m};
use crate::coro::{self, Reason};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Someone blocked in [`park_current`].
#[derive(Debug, Clone)]
pub(crate) enum Waiter {
    Goroutine(GHandle),
    Thread(std::thread::Thread),
}

impl Waiter {
    /// The caller, as a waiter.
    pub(crate) fn current() -> Waiter {
        match g::current_handle() {
            Some(h) => Waiter::Goroutine(h),
            None => Waiter::Thread(std::thread::current()),
        }
    }

    /// Whether this waiter is the goroutine of G `g` (a pointer the caller
    /// read once with `g::current_ptr`; always `false` for plain threads:
    /// only goroutines reuse waiters).
    pub(crate) fn names(&self, g: *const super::G) -> bool {
        match self {
            Waiter::Goroutine(h) => h.names(g),
            Waiter::Thread(_) => false,
        }
    }

    /// Records, before waking it, that its timer due at `when` fired.
    pub(crate) fn note_timer_fired(&self, when: u64) {
        if let Waiter::Goroutine(h) = self {
            h.note_timer_fired(when);
        }
    }

    /// Wakes the waiter (at most one pending wake-up is remembered).
    pub(crate) fn wake(self) {
        self.wake_by_ref();
    }

    /// [`Waiter::wake`] without giving up the handle (no reference-count
    /// traffic: for wakers that keep the waiter, as a channel `Op` does).
    pub(crate) fn wake_by_ref(&self) {
        self.wake_into(ready);
    }

    /// Wakes the waiter onto the back of the global run queue (for the
    /// rest of a batch of due timers, beyond the one that goes to
    /// `runnext`: they then run first come, first served on every P).
    pub(crate) fn wake_global(self, sched: &Arc<Sched>) {
        self.wake_into(|g| sched.injector.push(g));
    }

    /// Wakes the waiter; a goroutine this made runnable goes to `queue`.
    #[inline]
    fn wake_into(&self, queue: impl FnOnce(GRef)) {
        match self {
            Waiter::Goroutine(h) => {
                if let Some(g) = h.unpark() {
                    queue(g);
                }
            }
            Waiter::Thread(t) => t.unpark(),
        }
    }
}

/// Why a goroutine is parked (Go: `waitReason`), shown by the deadlock
/// report and by `GODEBUG=scheddetail=1`. The strings are Go's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[allow(dead_code)] // Zero, SelectNoCases, Preempted: Go's reasons not produced yet
pub(crate) enum WaitReason {
    Zero = 0,
    ChanReceive,
    ChanSend,
    Select,
    SelectNoCases,
    Sleep,
    MutexLock,
    RwLockRLock,
    RwLockLock,
    CondWait,
    WaitGroupWait,
    Semacquire,
    Once,
    Join,
    IoWait,
    Preempted,
}

impl WaitReason {
    /// Go's text for the reason (`runtime2.go`'s `waitReasonStrings`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WaitReason::Zero => "",
            WaitReason::ChanReceive => "chan receive",
            WaitReason::ChanSend => "chan send",
            WaitReason::Select => "select",
            WaitReason::SelectNoCases => "select (no cases)",
            WaitReason::Sleep => "sleep",
            WaitReason::MutexLock => "sync.Mutex.Lock",
            WaitReason::RwLockRLock => "sync.RWMutex.RLock",
            WaitReason::RwLockLock => "sync.RWMutex.Lock",
            WaitReason::CondWait => "sync.Cond.Wait",
            WaitReason::WaitGroupWait => "sync.WaitGroup.Wait",
            WaitReason::Semacquire => "semacquire",
            WaitReason::Once => "sync.Once.Do",
            WaitReason::Join => "goroutine join",
            WaitReason::IoWait => "IO wait",
            WaitReason::Preempted => "preempted",
        }
    }

    pub(crate) fn from_u8(v: u8) -> WaitReason {
        const ALL: [WaitReason; 16] = [
            WaitReason::Zero,
            WaitReason::ChanReceive,
            WaitReason::ChanSend,
            WaitReason::Select,
            WaitReason::SelectNoCases,
            WaitReason::Sleep,
            WaitReason::MutexLock,
            WaitReason::RwLockRLock,
            WaitReason::RwLockLock,
            WaitReason::CondWait,
            WaitReason::WaitGroupWait,
            WaitReason::Semacquire,
            WaitReason::Once,
            WaitReason::Join,
            WaitReason::IoWait,
            WaitReason::Preempted,
        ];
        ALL.get(v as usize).copied().unwrap_or(WaitReason::Zero)
    }
}

/// Threads that are not Ms, parked in [`park_current`] without a timeout.
pub(crate) static OUTSIDE_PARKED: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);
/// Incremented whenever such a thread wakes (the deadlock check wants two
/// looks at a quiet world).
pub(crate) static OUTSIDE_EPOCH: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// Blocks the caller until woken (or spuriously), recording `why` for
/// diagnostics. In a goroutine this parks the goroutine; on a plain thread
/// it parks the thread.
pub(crate) fn park_current(why: WaitReason) {
    match g::with_current(|g| {
        g.set_wait_reason(why);
        g.begin_park()
    }) {
        Some(true) => coro::suspend(Reason::Park),
        Some(false) => {} // a wake-up was already pending
        None => {
            // A thread outside the runtime blocked on gort with no timeout:
            // it cannot wake anything until something wakes it (the
            // deadlock check counts such threads).
            OUTSIDE_PARKED.fetch_add(1, Ordering::SeqCst);
            std::thread::park();
            OUTSIDE_PARKED.fetch_sub(1, Ordering::SeqCst);
            OUTSIDE_EPOCH.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Like [`park_current`], but returns by `deadline` at the latest (a
/// goroutine registers a runtime timer; a plain thread uses
/// `park_timeout`). Spurious and early returns are possible: callers loop on
/// their condition and on the clock. Returns whether the deadline passed.
pub(crate) fn park_current_until(deadline: std::time::Instant, why: WaitReason) -> bool {
    park_until_nanos(super::clock::to_nanos(deadline), why)
}

/// [`park_current_until`] with the deadline in `clock::nanotime` ns (what
/// the timer heaps keep): `sleep` goes straight here, so one sleep reads
/// the clock twice — before and after — and converts nothing.
pub(crate) fn park_until_nanos(deadline: u64, why: WaitReason) -> bool {
    park_until_nanos_at(deadline, why, super::clock::nanotime())
}

/// [`park_until_nanos`] for a caller that has just read the clock (`now`):
/// `sleep` computes its deadline from one read and parks with it.
///
/// Inlined into `sleep`: one stack frame less between a sleeping
/// goroutine's loop and its switch (88 bytes of pushed registers and
/// return address: 10,000 sleepers take 17.9 instead of 19.8 L1d misses
/// and 1,906 instead of 1,936 instructions per wake-up, +3 % wake-ups/s;
/// docs/design/timers.md).
#[inline(always)]
pub(crate) fn park_until_nanos_at(deadline: u64, why: WaitReason, now: u64) -> bool {
    if now >= deadline {
        return true;
    }
    if !crate::coro::on_goroutine() {
        std::thread::park_timeout(std::time::Duration::from_nanos(deadline - now));
        return super::clock::nanotime() >= deadline;
    }
    let waiter = Waiter::current();
    // `with_m` holds off preemption: the timer lock is never held frozen.
    let (pid, id) = m::with_m(|m| {
        // No P (it was taken during a blocking call): any P's heap works.
        let pid = m.p().map_or(0, |p| p.id);
        let p = m.sched.pshared(pid).expect("P's shared half");
        (pid, m.sched.add_timer(p, deadline, waiter))
    });
    // The schedule that follows our switch may use `now` for its timer
    // check instead of reading the clock again (see `clock::take_fresh`).
    super::clock::set_fresh(now);
    park_current(why);
    // Not switched away (a wake-up was pending), or resumed on another M:
    // either way no later schedule on this thread may use that value.
    super::clock::take_fresh();
    // Any M may run us now; the timer lives on that P's heap, not the M.
    // If our timer fired, the deadline passed (no clock read: it was a
    // third of a sleep's clock reads); else if it passed anyway the timer
    // fires harmlessly later (a spurious wake-up), so the cancel and its
    // lock are skipped.
    let fired = g::with_current(|g| g.timer_fired.load(Ordering::Acquire) == deadline);
    let passed = fired == Some(true) || super::clock::nanotime() >= deadline;
    if !passed {
        m::with_m(|m| {
            let p = m.sched.pshared(pid).expect("P's shared half");
            m.sched.cancel_timer(p, id);
        });
    }
    passed
}

/// Makes a G runnable (Go: `goready`): into the current P's `runnext` when
/// called on an M with a P, else into the global queue of the running
/// runtime.
fn ready(g: GRef) {
    let mut g = Some(g);
    let on_m = m::try_with_m(|m| {
        let g = g.take().expect("g");
        match m.split() {
            (Some(p), sched) => {
                p.runqput(g, true, &sched.injector);
                // `wakep` never re-enters `with_m`, so it may run inside it
                // (and we avoid bumping the shared `Arc<Sched>` count).
                // Into `runnext` by a SeqCst swap: no fence needed.
                sched.wakep_after_seqcst_put();
            }
            (None, sched) => sched.inject(g),
        }
    });
    if on_m.is_some() {
        return;
    }
    let g = g.take().expect("g");
    match crate::runtime::current_sched() {
        Some(sched) => sched.inject(g),
        // The runtime stopped between the wake-up and now: the goroutine was
        // abandoned with the rest (its token is dropped; it never runs).
        None => drop(g),
    }
}

/// Queues a new goroutine (Go: `newproc`): on an M with a P into `runnext`,
/// else into the global queue. Returns its goid.
pub(crate) fn spawn_task(task: crate::task::RunRef, sched_hint: Option<&Arc<Sched>>) -> u64 {
    let mut entry = Some(task);
    let on_m = m::try_with_m(|m| {
        let sched = m.sched.clone();
        let p = m.p()?;
        let (g, goid) = sched.new_goroutine(Some(&mut *p), entry.take().expect("entry"));
        p.runqput(g, true, &sched.injector);
        // Into `runnext` by a SeqCst swap: no fence needed.
        sched.wakep_after_seqcst_put();
        Some(goid)
    })
    .flatten();
    if let Some(goid) = on_m {
        // A safe point (Go: `newproc` may be preempted like any call).
        preempt_check();
        return goid;
    }
    let sched = match sched_hint.cloned().or_else(crate::runtime::current_sched) {
        Some(s) => s,
        None => panic!(
            "gort: no runtime is running: spawn goroutines inside `gort::run` \
             (or `Runtime::run`), or from another thread while it runs"
        ),
    };
    let (g, goid) = sched.new_goroutine(None, entry.take().expect("entry"));
    sched.inject(g);
    goid
}

/// `Gosched`: let other goroutines run. On a plain thread, yields the thread.
pub(crate) fn yield_now() {
    if coro::on_goroutine() {
        coro::suspend(Reason::Yield);
    } else {
        std::thread::yield_now();
    }
}

/// A voluntary safe point (Go: the stack-bound check in every function
/// prologue): if sysmon asked this goroutine to yield, it does. One
/// thread-local load and a branch when nobody asked.
#[inline]
pub(crate) fn preempt_check() {
    if preempt::preempt_requested() {
        preempt_slow();
    }
}

#[cold]
#[inline(never)]
fn preempt_slow() {
    preempt::clear_preempt();
    if coro::on_goroutine() {
        coro::suspend(Reason::Yield);
    }
}

/// Runs `f`, a call that may block its thread, as Go runs a system call
/// (`entersyscall` / `exitsyscall`): if it lasts longer than ~20 µs while
/// other goroutines wait, sysmon hands this M's P to another M; on return
/// the goroutine gets a P back (this one if still free, else an idle one,
/// else it queues for one) before it runs on. On a plain thread it just
/// calls `f`.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    if !coro::on_goroutine() {
        return f();
    }
    enter_blocking();
    struct Exit;
    impl Drop for Exit {
        fn drop(&mut self) {
            exit_blocking();
        }
    }
    let exit = Exit;
    let r = f();
    drop(exit);
    r
}

fn enter_blocking() {
    m::with_m(|m| {
        let work = match m.p() {
            Some(p) => {
                p.shared.syscalltick.fetch_add(1, Ordering::Relaxed);
                !p.shared.q.is_empty() || !m.sched.injector.is_empty()
            }
            None => false,
        };
        m.me.syscall_since.store(coarse_nanos(), Ordering::Relaxed);
        m.me.in_syscall.store(true, Ordering::Relaxed);
        let _ =
            m.me.state
                .compare_exchange(M_RUN, M_SYSCALL, Ordering::AcqRel, Ordering::Acquire);
        if work {
            m.sched.sysmon.kick();
        }
    });
}

fn exit_blocking() {
    let has_p = m::with_m(|m| {
        m.me.in_syscall.store(false, Ordering::Relaxed);
        if m.p().is_some() {
            return true;
        }
        // Our P was handed on: take an idle one if there is one.
        if m.me.state.load(Ordering::Acquire) == M_LOST
            && let Some(p) = m.sched.pidleget_now()
        {
            m.put_p(p);
            m.me.state.store(M_RUN, Ordering::Release);
            return true;
        }
        false
    });
    if !has_p {
        // No P free (Go: `exitsyscall0`): queue for one. The M's scheduler
        // puts us on the global queue and waits for a P itself.
        coro::suspend(Reason::Yield);
    } else {
        preempt_check();
    }
}

/// `runtime.LockOSThread` (see `gort::runtime::lock_os_thread`).
pub(crate) fn lock_os_thread() {
    if !coro::on_goroutine() {
        return;
    }
    m::with_m(|m| {
        let mid = m.me.id;
        g::with_current(|g| {
            g.lockcount.fetch_add(1, Ordering::Relaxed);
            g.lockedm.store(mid + 1, Ordering::Relaxed);
            m.me.lockedg
                .store(g.goid.load(Ordering::Relaxed), Ordering::Relaxed);
        });
    });
}

/// `runtime.UnlockOSThread`.
pub(crate) fn unlock_os_thread() {
    if !coro::on_goroutine() {
        return;
    }
    m::with_m(|m| {
        g::with_current(|g| {
            let n = g.lockcount.load(Ordering::Relaxed);
            if n == 0 {
                return;
            }
            g.lockcount.store(n - 1, Ordering::Relaxed);
            if n == 1 {
                g.lockedm.store(0, Ordering::Relaxed);
                m.me.lockedg.store(0, Ordering::Relaxed);
            }
        });
    });
}
