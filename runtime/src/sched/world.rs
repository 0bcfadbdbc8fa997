//! Stopping the world (Go: `stopTheWorld` / `startTheWorld`) and listing
//! every goroutine's stack and registers, for the collector's conservative
//! scan.
//!
//! `stop` sets `Sched::stw`, then until every M is stopped: Ms in their
//! scheduler loop give up their P and park at their next schedule point
//! (`find_runnable` checks the flag); Ms running goroutine code get
//! `REQ_STOP` by signal and freeze in the handler with their registers
//! saved (`preempt.rs`). An M inside a runtime critical section defers the
//! freeze to the end of the section. Frozen Ms keep their P. The world is
//! stopped when every M other than the caller's is parked or frozen: no
//! goroutine executes user code.
//!
//! With `GODEBUG=asyncpreemptoff=1` no signal is sent: a goroutine in a
//! loop without safe points delays the stop until it reaches one, as in Go
//! before 1.14.
//!
//! Rules while the world is stopped: do not block on anything a goroutine
//! might release (a channel, a `gort::sync` lock), and avoid the system
//! allocator (a frozen thread may hold its lock).

use super::g::G;
use super::preempt::{self, FROZEN, M_IDLE, NREGS, REQ_STOP};
use super::{MShared, Sched, lock_ok, m};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The world is stopped while this lives; dropping it restarts the world.
///
/// Obtained from [`stop_the_world`](crate::runtime::stop_the_world).
#[must_use = "the world restarts when this is dropped"]
pub struct StoppedWorld {
    sched: Arc<Sched>,
    caller_g: u64,
}

impl std::fmt::Debug for StoppedWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoppedWorld")
            .field("caller_goroutine", &self.caller_g)
            .finish()
    }
}

/// What a goroutine was doing when the world stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoroutineStatus {
    /// Running goroutine code; its thread is frozen (registers saved).
    Running,
    /// The goroutine that stopped the world.
    Caller,
    /// In a run queue, not started or switched out at a safe point.
    Runnable,
    /// Parked; the reason is Go's wait reason text.
    Waiting(&'static str),
}

/// One goroutine under a stopped world.
#[derive(Debug)]
pub struct GoroutineView<'w> {
    goid: u64,
    status: GoroutineStatus,
    stack: Option<(usize, usize)>,
    sp: Option<usize>,
    regs: Option<[usize; NREGS]>,
    _world: std::marker::PhantomData<&'w StoppedWorld>,
}

impl GoroutineView<'_> {
    /// Go's goroutine id.
    pub fn goid(&self) -> u64 {
        self.goid
    }

    /// What it was doing when the world stopped.
    pub fn status(&self) -> GoroutineStatus {
        self.status
    }

    /// The usable range of its stack (`lo..hi`), if it has one (a goroutine
    /// that has not started yet has none).
    pub fn stack_bounds(&self) -> Option<std::ops::Range<usize>> {
        self.stack.map(|(lo, hi)| lo..hi)
    }

    /// Its stack pointer: exact for a frozen goroutine, a lower bound for
    /// one switched out at a safe point (everything live is above it).
    pub fn stack_pointer(&self) -> Option<usize> {
        self.sp
    }

    /// The registers saved when its thread froze (`Running` only), in the
    /// platform's signal-context order (x86-64: `gregs`; aarch64: x0–x30,
    /// sp, pc, pstate).
    pub fn registers(&self) -> Option<&[usize]> {
        self.regs.as_ref().map(|r| &r[..])
    }

    /// Calls `f(address, word)` for every aligned word of the live part of
    /// its stack: from its stack pointer (less the 128-byte red zone a leaf
    /// function may use) to the top. Nothing for a goroutine without a
    /// stack.
    pub fn scan_words(&self, mut f: impl FnMut(usize, usize)) {
        let (Some((lo, hi)), Some(sp)) = (self.stack, self.sp) else {
            return;
        };
        let word = std::mem::size_of::<usize>();
        let start = sp.saturating_sub(128).max(lo) & !(word - 1);
        let mut a = start;
        while a + word <= hi {
            // SAFETY: `[lo, hi)` is the usable (mapped, readable, above the
            // guard page) range of a live goroutine's stack, recorded when
            // its coroutine was created and cleared before the stack is
            // recycled. The view borrows the `StoppedWorld`, so no goroutine
            // can run, exit or free its stack meanwhile (the caller's own
            // stack is the one we run on, alive by construction); `a` is
            // aligned and `a + word <= hi`.
            f(a, unsafe { preempt::read_stack_word(a) });
            a += word;
        }
    }
}

impl StoppedWorld {
    /// Calls `f` for every goroutine that exists (not for dead ones),
    /// without allocating.
    pub fn for_each_goroutine(&self, mut f: impl FnMut(&GoroutineView<'_>)) {
        let all = lock_ok(&self.sched.allm);
        let gs = lock_ok(&self.sched.allgs);
        let probe = 0u8;
        let here = std::hint::black_box(&probe) as *const u8 as usize;
        for g in gs.iter() {
            let goid = g.goid.load(Ordering::Relaxed);
            let st = g.park_state();
            if st == super::parkword::IDLE || goid == 0 {
                continue; // dead, kept for reuse
            }
            let stack = g.stack_bounds();
            let gp = Arc::as_ptr(g) as *mut G;
            let on = all.iter().find(|m| m.curg.load(Ordering::Acquire) == gp);
            let (status, sp, regs) = if goid == self.caller_g {
                (
                    GoroutineStatus::Caller,
                    Some(here.saturating_sub(crate::coro::SWITCH_SLACK)),
                    None,
                )
            } else if let Some(m) = on.filter(|m| m.frozen.load(Ordering::Acquire) == FROZEN) {
                (
                    GoroutineStatus::Running,
                    Some(m.saved_sp.load(Ordering::Relaxed)),
                    Some(std::array::from_fn(|i| m.regs[i].load(Ordering::Relaxed))),
                )
            } else if st == super::parkword::PARKED {
                (
                    GoroutineStatus::Waiting(g.wait_reason().as_str()),
                    Some(g.saved_sp.load(Ordering::Relaxed)),
                    None,
                )
            } else {
                (
                    GoroutineStatus::Runnable,
                    stack.map(|_| g.saved_sp.load(Ordering::Relaxed)),
                    None,
                )
            };
            // A stack pointer outside the goroutine's stack (a frozen
            // thread interrupted on another stack) is not scannable.
            let sp = sp.filter(|sp| stack.is_some_and(|(lo, hi)| *sp >= lo && *sp <= hi));
            f(&GoroutineView {
                goid,
                status,
                stack,
                sp,
                regs,
                _world: std::marker::PhantomData,
            });
        }
    }

    /// Restarts the world (same as dropping it).
    pub fn start(self) {}
}

impl Drop for StoppedWorld {
    fn drop(&mut self) {
        start(&self.sched);
    }
}

/// Stops the world. Blocks until no goroutine but the caller runs user code.
pub(crate) fn stop(sched: &Arc<Sched>) -> StoppedWorld {
    // Runtime code from here to the end: the caller's own thread must not be
    // frozen (as a hog) while it holds `allm` or `sched.lock`.
    let _np = preempt::NoPreempt::new();
    // One stop at a time.
    loop {
        if sched
            .stw
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            break;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    preempt::set_stw_active(true);
    let caller_m = m::try_with_m(|m| m.me.id);
    let caller_g = super::g::current_goid();
    let async_ok = !sched.cfg.godebug.asyncpreemptoff;
    let mut round = 0u32;
    let mut last_backoff = std::time::Instant::now();
    loop {
        let mut stopped = true;
        {
            let all = lock_ok(&sched.allm);
            for m in all.iter() {
                if Some(m.id) == caller_m || is_stopped(m) {
                    continue;
                }
                stopped = false;
                if m.state.load(Ordering::Acquire) != M_IDLE {
                    preempt::set_preempt_flag(m);
                    if async_ok {
                        preempt::signal_m(m, REQ_STOP);
                    }
                } else {
                    // Scheduler code: it parks when it sees the flag; nudge
                    // an idle sleeper that is waiting on a timer.
                    m.recheck();
                }
            }
        }
        if stopped {
            break;
        }
        // An M that has not stopped after a while may be waiting for a lock
        // that a thread we froze holds — malloc's arena lock: a stop freezes
        // threads anywhere, and scheduler code and runtime sections allocate
        // now and then. Let the frozen threads run a moment (they are
        // signalled again next round) so it can get through. Without this
        // the preemption storm hung under heavy load (a clean-clone CI run).
        if last_backoff.elapsed() >= Duration::from_millis(5) {
            let all = lock_ok(&sched.allm);
            for m in all.iter() {
                if m.frozen.load(Ordering::SeqCst) == FROZEN
                    && m.frozen_for_stop.swap(false, Ordering::Relaxed)
                {
                    preempt::thaw(m);
                }
            }
            drop(all);
            std::thread::sleep(Duration::from_micros(100));
            last_backoff = std::time::Instant::now();
            continue;
        }
        round += 1;
        if round < 64 {
            std::hint::spin_loop();
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(10));
        }
    }
    StoppedWorld {
        sched: sched.clone(),
        caller_g,
    }
}

fn is_stopped(m: &MShared) -> bool {
    m.frozen.load(Ordering::Acquire) == FROZEN
        || (m.state.load(Ordering::Acquire) == M_IDLE && m.parked.load(Ordering::SeqCst))
}

fn start(sched: &Arc<Sched>) {
    // Runtime code: a freeze here while holding `sched.lock` (in `wakep`)
    // hung every other M (found by the preemption storm under load).
    let _np = preempt::NoPreempt::new();
    preempt::set_stw_active(false);
    sched.stw.store(false, Ordering::SeqCst);
    {
        let all = lock_ok(&sched.allm);
        for m in all.iter() {
            // SeqCst: pairs with the handler's store-then-check in `freeze`.
            if m.frozen.load(Ordering::SeqCst) == FROZEN
                && m.frozen_for_stop.swap(false, Ordering::Relaxed)
            {
                preempt::thaw(m);
            }
        }
    }
    sched.restart_idle();
}
