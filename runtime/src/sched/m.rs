//! M: an OS thread running the scheduler loop (Go: `mstart`, `schedule`,
//! `execute`, `goexit0`, `gosched_m`, `park_m`, `startlockedm`,
//! `stoplockedm`).
//!
//! The M's own thread stack plays Go's g0: `m_main` loops
//! `find_runnable → execute`, and `execute` resumes the goroutine's
//! coroutine until it suspends (yield / park) or returns.
//!
//! The M's state lives in a thread-local ([`MLocal`]) so goroutine code
//! running on the M can reach its P (to spawn onto the local run queue). It is
//! only ever borrowed for short, non-suspending sections (`with_m`), which
//! are runtime critical sections: the preemption signal neither freezes the
//! thread nor releases its P inside one.
//!
//! The P itself sits in the M's shared slot (`MShared::p`), because sysmon
//! may take it while the M is blocked or frozen (see `preempt.rs` for the
//! ownership protocol). `MLocal::p` reclaims it if the signal released it
//! and nobody took it yet, and returns `None` if it is gone: callers then
//! fall back to the global queues, and the M waits for a P at its next
//! schedule point.
#![deny(unsafe_code)] // two exceptions: `MLocal::split` (the P slot), `with_slot` (MLOCAL's address)

use super::g::{self, GRef};
use super::preempt::{self, M_IDLE, M_LOST, M_RELEASED, M_RUN, M_SYSCALL, NoPreemptHere};
use super::{Handoff, MShared, P, Sched, lock_ok};
use crate::coro::{Goroutine, Reason, overflow};
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Per-M state reachable from goroutine code on this thread.
///
/// # Fields
/// - all: Owner: this M's thread only (a thread-local).
pub(crate) struct MLocal {
    pub(crate) sched: Arc<Sched>,
    pub(crate) me: Arc<MShared>,
    pub(crate) spinning: bool,
}

impl MLocal {
    /// This M's P, if it has one (reclaiming it if the preemption signal
    /// released it and sysmon has not taken it).
    pub(crate) fn p(&mut self) -> Option<&mut P> {
        self.split().0
    }

    /// This M's P (as [`MLocal::p`]) and its scheduler, borrowed together.
    #[allow(unsafe_code)]
    pub(crate) fn split(&mut self) -> (Option<&mut P>, &Arc<Sched>) {
        let me = &self.me;
        // One load decides: in M_IDLE and M_RUN nobody else changes the
        // state (sysmon CASes only out of M_SYSCALL and M_RELEASED) and our
        // own handler cannot move it to M_RELEASED inside `with_m` (a
        // `NoPreempt` section); out of those two a won CAS makes it M_RUN.
        match me.state.load(Ordering::Acquire) {
            M_IDLE | M_RUN => {}
            st @ (M_RELEASED | M_SYSCALL) => {
                if me
                    .state
                    .compare_exchange(st, M_RUN, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    return (None, &self.sched);
                }
            }
            _ => return (None, &self.sched), // M_LOST
        }
        // SAFETY: we are this M's thread, inside `with_m` (a `NoPreempt`
        // section, so our own handler cannot release the P), and the state
        // is M_IDLE or M_RUN, in which nobody else takes the P; `&mut self`
        // makes this the only reference derived from the slot.
        (unsafe { me.p.get_mut() }, &self.sched)
    }

    pub(crate) fn take_p(&mut self) -> Option<Box<P>> {
        let p = self.me.take_p();
        if let Some(p) = &p {
            p.shared.mid.store(u64::MAX, Ordering::Relaxed);
        }
        p
    }

    pub(crate) fn put_p(&mut self, p: Box<P>) {
        p.shared.mid.store(self.me.id, Ordering::Relaxed);
        self.me.put_p(p);
    }

    /// Sets the spinning flag; returns the previous value.
    pub(crate) fn set_spinning(&mut self, on: bool) -> bool {
        self.me.spinning.store(on, Ordering::Relaxed);
        std::mem::replace(&mut self.spinning, on)
    }
}

thread_local! {
    static MLOCAL: RefCell<Option<MLocal>> = const { RefCell::new(None) };
}

/// Runs `f` with this M's state. Panics on a thread that is not an M.
/// `f` must not suspend and must not call `with_m` again.
#[inline(never)]
pub(crate) fn with_m<R>(f: impl FnOnce(&mut MLocal) -> R) -> R {
    let _np = NoPreemptHere::new();
    with_slot(|m| f(m.borrow_mut().as_mut().expect("gort: not on an M")))
}

/// Like [`with_m`], but `None` on threads that are not Ms.
#[inline(never)]
pub(crate) fn try_with_m<R>(f: impl FnOnce(&mut MLocal) -> R) -> Option<R> {
    let _np = NoPreemptHere::new();
    with_slot(|m| m.borrow_mut().as_mut().map(f))
}

/// Runs `f` with this thread's `MLOCAL` slot.
///
/// Not `MLOCAL.with(f)`: `LocalKey::with` is not inlined, so `f`'s
/// captures were moved into its argument, copied with 16-byte loads just
/// after the caller wrote them with 8-byte stores: a failed store-to-load
/// forward on every switch (−90 instructions and −5 % per ping-pong round
/// trip without it; docs/design/scheduler.md). Here `f` is inlined and
/// runs in place; only the slot's address comes out of `with`.
#[inline(always)]
#[allow(unsafe_code)]
fn with_slot<R>(f: impl FnOnce(&RefCell<Option<MLocal>>) -> R) -> R {
    let slot = MLOCAL.with(std::ptr::from_ref);
    // SAFETY: `slot` is this thread's `MLOCAL`, alive until the thread
    // exits, and `f` runs on this thread: only `with_m` and `try_with_m`
    // call this, their `f` must not suspend (so the goroutine cannot move
    // to another thread meanwhile), and their `NoPreemptHere` keeps the
    // preemption signal from switching it away. Both are
    // `#[inline(never)]`, so the address is computed afresh per call,
    // never kept across a switch (llvm/llvm-project#98479, see
    // `preempt::preempt_requested`). The reference does not outlive `f`.
    f(unsafe { &*slot })
}

/// The timer slack of an M thread (`PR_SET_TIMERSLACK`, ns).
const M_TIMER_SLACK_NS: libc::c_ulong = 1;

/// The thread body of an M.
pub(crate) fn m_main(sched: Arc<Sched>, me: Arc<MShared>, first: Handoff) {
    // The handler needs a stack to run on when a goroutine stack overflows
    // (and the preemption handler runs there too).
    let _alt = match overflow::AltStack::install() {
        Ok(a) => a,
        Err(e) => crate::fatal!(
            "runtime: cannot allocate a signal stack for M{}: {e}",
            me.id
        ),
    };
    preempt::unblock_on_this_thread();
    // An idle M sleeps until the next timer (a futex timeout): without
    // this the kernel may add its default 50 µs of slack to that wake-up,
    // most of a 1 ms sleep's lateness (docs/design/timers.md). Best
    // effort: if the kernel refuses, timers are only less punctual.
    let _ = nix::sys::prctl::set_timerslack(M_TIMER_SLACK_NS);
    let (tid, clk) = preempt::this_thread_ids();
    me.cpu_clock.store(clk, Ordering::Relaxed);
    let flag = preempt::register_m(&me);
    me.preempt_flag.store(
        flag as *mut std::sync::atomic::AtomicBool,
        Ordering::Release,
    );
    me.tid.store(tid, Ordering::Release);
    MLOCAL.with(|m| {
        *m.borrow_mut() = Some(MLocal {
            sched: sched.clone(),
            me: me.clone(),
            spinning: false,
        })
    });
    let mut next = match first {
        Handoff::Run(p, spinning) => {
            p.shared.status.store(super::P_RUNNING, Ordering::Relaxed);
            with_m(|m| {
                m.put_p(p);
                m.set_spinning(spinning);
            });
            None
        }
        Handoff::RunLocked(p, g) => {
            with_m(|m| m.put_p(p));
            Some(g)
        }
        Handoff::Exit | Handoff::Recheck => None,
    };
    loop {
        let (g, inherit) = match next.take() {
            Some(g) => (g, false),
            None => match sched.find_runnable(&me) {
                Some(x) => x,
                None => break,
            },
        };
        // A goroutine locked to another M runs only there (Go:
        // `startlockedm`): hand it our P, then look for a P again.
        let locked_to = g.g().lockedm.load(Ordering::Relaxed);
        if locked_to != 0 && locked_to != me.id + 1 {
            sched.start_locked_m(locked_to - 1, g);
            continue;
        }
        match execute(&sched, &me, g, inherit) {
            Next::Schedule => {}
            Next::WaitLocked => {
                // Our goroutine is locked to us and parked or yielded (Go:
                // `stoplockedm`): give the P away and wait for it.
                match sched.stop_locked_m(&me) {
                    Some((p, g)) => {
                        with_m(|m| m.put_p(p));
                        next = Some(g);
                    }
                    None => break,
                }
            }
            Next::Exit => break,
        }
    }
    // Leaving: hand the P back so shutdown can drain it (or, for an M whose
    // locked goroutine exited, to the idle list).
    let p = with_m(|m| m.take_p());
    let spinning = with_m(|m| m.set_spinning(false));
    sched.m_exiting(&me, p, spinning);
    MLOCAL.with(|m| m.borrow_mut().take());
    preempt::unregister_m();
}

/// What the M does after running a goroutine.
enum Next {
    Schedule,
    /// The goroutine is locked to this M: wait for it.
    WaitLocked,
    /// The goroutine exited while locked to this M: the thread ends (Go
    /// does not reuse a thread whose state a locked goroutine may have
    /// changed).
    Exit,
}

/// After a goroutine switched back: the state returns to M_IDLE; the P is
/// kept unless sysmon took it meanwhile.
fn settle_state(me: &MShared) {
    // Fast path: in M_RUN nobody else may change the state (sysmon only
    // CASes out of M_SYSCALL/M_RELEASED, and our handler declines while
    // `locks` > 0), so a load and a store do — no read-modify-write on
    // every switch.
    if me.state.load(Ordering::Acquire) == M_RUN {
        me.state.store(M_IDLE, Ordering::Release);
        return;
    }
    loop {
        let st = me.state.load(Ordering::Acquire);
        let ok = match st {
            M_RUN | M_RELEASED | M_SYSCALL => me
                .state
                .compare_exchange(st, M_IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok(),
            M_LOST => {
                // Sysmon took our P. `steal_p` CASes the state to M_LOST
                // *before* it takes the P out of our slot, so wait for the
                // slot to empty: otherwise `find_runnable` could still see
                // the P there and use it while sysmon hands it to another M
                // (a goroutine readied onto it then was lost).
                while me.p.is_some() {
                    std::hint::spin_loop();
                }
                me.state.store(M_IDLE, Ordering::Release);
                true
            }
            _ => {
                // Already idle: nothing to reclaim.
                me.state.store(M_IDLE, Ordering::Release);
                true
            }
        };
        if ok {
            return;
        }
    }
}

/// Runs `g` until it suspends or exits (Go: `execute` + the `mcall` back).
fn execute(sched: &Arc<Sched>, me: &Arc<MShared>, mut g: GRef, inherit: bool) -> Next {
    crate::coro::prefetch_stack(g.g().saved_sp.load(Ordering::Relaxed));
    let e = g.exec();
    let fresh = e.coro.is_none();
    // One visit to the P: a new time slice (unless inherited through
    // `runnext`) and, for a goroutine's first run, its stack.
    // (A goroutine inheriting the slice through `runnext` that already
    // started needs neither: no visit then. `find_runnable` just reclaimed
    // the P, and on g0 the preemption handler cannot release it.)
    let stack = if inherit && !fresh {
        None
    } else {
        with_m(|m| {
            let p = m.p().expect("P");
            if !inherit {
                p.new_slice();
                preempt::clear_preempt();
            }
            fresh.then(|| p.stacks.get())
        })
    };
    let bounds = stack.as_ref().map(|s| (s.bottom(), s.top()));
    if let Some(stack) = stack {
        let entry = e
            .entry
            .take()
            .expect("gort: runnable G with neither entry nor coroutine");
        e.coro = Some(Goroutine::new(stack, move || {
            let task = entry;
            task.run();
            // Runtime code from here to the switch back.
            preempt::set_locks(1);
            // Drop our strong reference before the scope hook fires: once
            // it fires, a scope may return and end the task's borrows.
            let after = task.take_after();
            drop(task);
            // Goroutine-locals die with the goroutine, on the goroutine.
            crate::glocal::clear_current();
            if let Some(a) = after {
                a.fire();
            }
        }));
    }
    if let Some((lo, hi)) = bounds {
        g.g().set_stack(lo, hi);
    }
    me.curg
        .store(Arc::as_ptr(g.g()) as *mut super::G, Ordering::Release);
    me.curg_id
        .store(g.g().goid.load(Ordering::Relaxed), Ordering::Relaxed);
    // Only this M writes its counter: no read-modify-write needed.
    me.ticks
        .store(me.ticks.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    me.state.store(M_RUN, Ordering::Release);
    // The current G, then `locks` = 0: runtime code ends here.
    g::enter(&g);
    let r = g.exec().coro.as_mut().expect("coroutine").resume();
    // The goroutine switched back with `locks` = 1, set by `suspend` or by
    // the exit path above (the only two ways back: the preemption handler
    // never switches), and a stop request deferred since then is dropped
    // by the next `enter` (the scheduler checks for stop-the-world itself):
    // no `set_locks(1)` needed here.
    settle_state(me);
    me.curg.store(std::ptr::null_mut(), Ordering::Release);
    me.curg_id.store(0, Ordering::Relaxed);
    g::clear_current();
    let locked = g.g().lockedm.load(Ordering::Relaxed) == me.id + 1;
    match r {
        Some(Reason::Yield) => {
            // Go's Gosched: to the global queue, so others get a turn.
            sched.injector.push(g);
            if !me.p.is_some() {
                sched.wakep();
            }
        }
        Some(Reason::Park) => {
            if let Err(g) = g.commit_park() {
                // A wake-up raced the switch: runnable again at once.
                let g = with_m(|m| match m.split() {
                    (Some(p), sched) => {
                        p.runqput(g, true, &sched.injector);
                        None
                    }
                    (None, _) => Some(g),
                });
                if let Some(g) = g {
                    sched.inject(g);
                }
            }
        }
        None => {
            // The goroutine returned (its joiner was told from inside it).
            g.g().locals.clear();
            g.g().set_stack(0, 0);
            g.g().lockedm.store(0, Ordering::Relaxed);
            let e = g.exec();
            e.watch = None;
            let coro = e.coro.take().expect("coroutine");
            let stack = coro.into_stack();
            g.set_dead();
            let leftover = with_m(|m| match m.split() {
                (Some(p), sched) => {
                    p.shared.ngoroutine.fetch_sub(1, Ordering::Relaxed);
                    p.stacks.put(stack);
                    sched.gfput(p, g);
                    None
                }
                (None, _) => Some((g, stack)),
            });
            if let Some((g, stack)) = leftover {
                sched.ngoroutine.fetch_sub(1, Ordering::Relaxed);
                crate::coro::stackpool::release_one(sched.cfg.stacks, stack);
                lock_ok(&sched.gfree).push(g);
            }
            if locked {
                me.lockedg.store(0, Ordering::Relaxed);
                return Next::Exit;
            }
        }
    }
    if locked {
        Next::WaitLocked
    } else {
        Next::Schedule
    }
}
