//! Coroutines: the goroutine execution context, built on corosensei.
//!
//! A `Goroutine` is a corosensei coroutine running on a gort
//! `GoroutineStack`. The scheduler resumes it on an
//! M (the M's own thread stack plays Go's g0); the goroutine suspends with a
//! `Reason` through `suspend`, which finds the goroutine's `Yielder`
//! through a per-thread slot that `Goroutine::resume` fills in.
//!
//! # Migration and thread-locals
//!
//! A goroutine may be resumed on a different OS thread after every suspend.
//! Two rules follow for code in this crate:
//! 1. never hold a reference derived from a thread-local across a call that
//!    can suspend (park, yield, spawn);
//! 2. read thread-locals only in `#[inline(never)]` functions that do not
//!    suspend, so LLVM cannot cache a thread-local address across a switch
//!    (llvm/llvm-project#98479).
//!
//! User code has the same hazard; docs/design/soundness.md explains it.
//!
//! # Dropping
//!
//! A goroutine that finished gives its stack back (`Goroutine::into_stack`).
//! One that never started is dropped normally (its closure is dropped). One
//! that is suspended mid-way is **leaked**, never force-unwound: unwinding it
//! could run destructors of a scope whose owner is gone, and it can never run
//! again anyway (Go abandons such goroutines when `main` returns).

pub(crate) mod overflow;
pub mod stack;
pub(crate) mod stackpool;

use corosensei::{Coroutine, CoroutineResult, Yielder};
use stack::GoroutineStack;
use std::cell::Cell;
use std::mem::ManuallyDrop;

/// Why a goroutine suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// `yield_now` (Go's `Gosched`): put me back on the global run queue.
    Yield,
    /// `park`: commit the park (the G's park word says whether a wake-up
    /// already arrived).
    Park,
}

type Coro = Coroutine<(), Reason, (), GoroutineStack>;
type GYielder = Yielder<(), Reason>;

thread_local! {
    /// Address of the running goroutine's `Yielder`, 0 when no goroutine is
    /// running on this thread. Set by `Goroutine::resume` (or by the
    /// goroutine's entry on its first run), cleared when it returns.
    static YIELDER: Cell<usize> = const { Cell::new(0) };
}

#[inline(never)]
fn yielder_addr() -> usize {
    YIELDER.with(Cell::get)
}

#[inline(never)]
fn set_yielder_addr(a: usize) -> usize {
    YIELDER.with(|c| c.replace(a))
}

/// Is this thread currently running goroutine code?
#[inline(never)]
pub(crate) fn on_goroutine() -> bool {
    yielder_addr() != 0
}

/// Bytes below `suspend`'s frame that a scan of a switched-out goroutine
/// covers (corosensei's switch frames and spills are far smaller).
pub(crate) const SWITCH_SLACK: usize = 1024;

/// Asks the CPU to start fetching the top of a switched-out goroutine's
/// stack (`saved_sp` as recorded by [`suspend`]) before the switch to it:
/// with thousands of goroutines the lines that resuming pops are usually
/// out of cache.
pub(crate) fn prefetch_stack(saved_sp: usize) {
    if saved_sp == 0 {
        return;
    }
    // The lines covering [probe − 128, probe + 192): six from the line of
    // probe − 128 (unrolled: the loop cost ~26 instructions a switch).
    let probe = saved_sp.wrapping_add(SWITCH_SLACK);
    let a = probe.wrapping_sub(128) & !63;
    #[cfg(target_arch = "x86_64")]
    for i in 0..6 {
        // SAFETY: a prefetch is only a hint: it never faults and has no
        // effect on the program's memory, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                a.wrapping_add(i * 64) as *const i8,
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = a;
}

/// Suspends the running goroutine, handing `reason` to the scheduler.
/// Returns when the scheduler resumes it — possibly on another thread.
///
/// # Panics
///
/// If called outside goroutine code.
#[inline(never)]
pub(crate) fn suspend(reason: Reason) {
    let y = yielder_addr();
    assert!(y != 0, "gort: suspend called outside a goroutine");
    // SAFETY: `YIELDER` is non-zero only while a goroutine is resumed on
    // this thread (set before `resume`, cleared after it returns), and then
    // it holds the address of that goroutine's `Yielder`, which lives on the
    // goroutine's stack for as long as the coroutine has not returned. We
    // are running on that goroutine (nothing else runs while it is resumed),
    // so the reference is valid, and `Yielder::suspend` is called from
    // inside its own coroutine as corosensei requires.
    let yielder = unsafe { &*(y as *const GYielder) };
    // For a stopped world's conservative scan: everything live on this
    // goroutine's stack lies above the switch frames below this local.
    // Callee-saved registers are spilled by corosensei's switch a few
    // frames further down, so the recorded bound leaves generous room.
    let probe = 0u8;
    crate::sched::g::note_saved_sp(
        (std::hint::black_box(&probe) as *const u8 as usize).saturating_sub(SWITCH_SLACK),
    );
    // Runtime code from here until the scheduler resumes us (it resets the
    // count to 0 just before switching back).
    crate::sched::preempt::set_locks(1);
    yielder.suspend(reason);
    // Nothing thread-local may be touched here: we may be on another M.
}

/// A goroutine's coroutine (started or not).
pub(crate) struct Goroutine {
    coro: ManuallyDrop<Coro>,
    /// Address of the coroutine's `Yielder`, known after its first suspend.
    yielder: usize,
}

impl std::fmt::Debug for Goroutine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Goroutine")
            .field("started", &self.coro.started())
            .field("done", &self.coro.done())
            .finish()
    }
}

// SAFETY: a `Goroutine` is moved between Ms by the scheduler; it only ever
// runs on one thread at a time (the G's run token, see `sched::g`). Its
// entry closure is `Send`. What lives on its stack while it is suspended is
// user data created by that closure; sending it along with the stack is the
// documented M:N migration caveat (docs/design/soundness.md): values tied to
// a thread (thread-local borrows) must not be held across a suspend point.
unsafe impl Send for Goroutine {}

impl Goroutine {
    /// Creates a goroutine that will run `entry` on `stack` when first
    /// resumed. The closure is moved onto the new stack (no allocation).
    pub(crate) fn new<F: FnOnce() + Send + 'static>(stack: GoroutineStack, entry: F) -> Goroutine {
        let coro = Coro::with_stack(stack, move |y: &GYielder, ()| {
            set_yielder_addr(y as *const GYielder as usize);
            entry();
        });
        Goroutine {
            coro: ManuallyDrop::new(coro),
            yielder: 0,
        }
    }

    /// Runs the goroutine until it suspends (`Some(reason)`) or returns
    /// (`None`). Must be called on the M's system stack, not from a goroutine.
    pub(crate) fn resume(&mut self) -> Option<Reason> {
        let prev = set_yielder_addr(self.yielder);
        debug_assert_eq!(prev, 0, "gort: nested goroutine resume");
        let r = self.coro.resume(());
        self.yielder = set_yielder_addr(0);
        match r {
            CoroutineResult::Yield(reason) => Some(reason),
            CoroutineResult::Return(()) => None,
        }
    }

    /// The stack of a goroutine that has returned.
    pub(crate) fn into_stack(mut self) -> GoroutineStack {
        assert!(self.coro.done(), "gort: into_stack on a running goroutine");
        // SAFETY: `self.coro` is taken exactly once and `self` is forgotten
        // right after, so `Drop` never sees the moved-out value.
        let coro = unsafe { ManuallyDrop::take(&mut self.coro) };
        std::mem::forget(self);
        coro.into_stack()
    }
}

impl Drop for Goroutine {
    fn drop(&mut self) {
        if !self.coro.started() || self.coro.done() {
            // SAFETY: dropped once, here; nothing uses `coro` afterwards.
            unsafe { ManuallyDrop::drop(&mut self.coro) };
        }
        // Suspended mid-way: leaked on purpose (see the module docs).
    }
}
