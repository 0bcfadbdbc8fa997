//! M: an OS thread running the scheduler loop (Go: `mstart`, `schedule`,
//! `execute`, `goexit0`, `gosched_m`, `park_m`).
//!
//! The M's own thread stack plays Go's g0: `m_main` loops
//! `find_runnable → execute`, and `execute` resumes the goroutine's
//! coroutine until it suspends (yield / park) or returns.
//!
//! The M's state lives in a thread-local ([`MLocal`]) so goroutine code
//! running on the M can reach its P (to spawn onto the local run queue). It is
//! only ever borrowed for short, non-suspending sections (`with_m`).
#![forbid(unsafe_code)]

use super::g::{self, GRef};
use super::{MShared, P, Sched};
use crate::coro::{Goroutine, Reason, overflow};
use parking_lot::{Condvar, Mutex};
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Per-M state reachable from goroutine code on this thread.
///
/// # Fields
/// - all: Owner: this M's thread only (a thread-local).
pub(crate) struct MLocal {
    pub(crate) sched: Arc<Sched>,
    pub(crate) p: Option<Box<P>>,
    pub(crate) spinning: bool,
}

thread_local! {
    static MLOCAL: RefCell<Option<MLocal>> = const { RefCell::new(None) };
}

/// Runs `f` with this M's state. Panics on a thread that is not an M.
/// `f` must not suspend and must not call `with_m` again.
#[inline(never)]
pub(crate) fn with_m<R>(f: impl FnOnce(&mut MLocal) -> R) -> R {
    MLOCAL.with(|m| f(m.borrow_mut().as_mut().expect("gort: not on an M")))
}

/// Like [`with_m`], but `None` on threads that are not Ms.
#[inline(never)]
pub(crate) fn try_with_m<R>(f: impl FnOnce(&mut MLocal) -> R) -> Option<R> {
    MLOCAL.with(|m| m.borrow_mut().as_mut().map(f))
}

/// The thread body of an M.
pub(crate) fn m_main(sched: Arc<Sched>, id: u64, p: Box<P>, spinning: bool) {
    let me = Arc::new(MShared {
        id,
        note: Mutex::new(None),
        cv: Condvar::new(),
    });
    // The handler needs a stack to run on when a goroutine stack overflows.
    let _alt = match overflow::AltStack::install() {
        Ok(a) => a,
        Err(e) => crate::fatal!("runtime: cannot allocate a signal stack for M{id}: {e}"),
    };
    p.shared.status.store(super::P_RUNNING, Ordering::Relaxed);
    MLOCAL.with(|m| {
        *m.borrow_mut() = Some(MLocal {
            sched: sched.clone(),
            p: Some(p),
            spinning,
        })
    });
    while let Some((g, inherit)) = sched.find_runnable(&me) {
        execute(&sched, g, inherit);
    }
    // Leaving: hand the P back so shutdown can drain it.
    let p = MLOCAL.with(|m| m.borrow_mut().take().and_then(|m| m.p));
    if let Some(p) = p {
        let mut l = sched.lock.lock();
        l.retired.push(p);
    }
}

/// Runs `g` until it suspends or exits (Go: `execute` + the `mcall` back).
fn execute(sched: &Arc<Sched>, mut g: GRef, inherit: bool) {
    let e = g.exec();
    let fresh = e.coro.is_none();
    // One visit to the P: a new time slice (unless inherited through
    // `runnext`) and, for a goroutine's first run, its stack.
    let stack = (fresh || !inherit)
        .then(|| {
            with_m(|m| {
                let p = m.p.as_mut().expect("P");
                if !inherit {
                    p.new_slice();
                }
                fresh.then(|| p.stacks.get())
            })
        })
        .flatten();
    if let Some(stack) = stack {
        let entry = e
            .entry
            .take()
            .expect("gort: runnable G with neither entry nor coroutine");
        e.coro = Some(Goroutine::new(stack, move || {
            let task = entry;
            task.run();
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
    g::set_current(Some(&g));
    let r = g.exec().coro.as_mut().expect("coroutine").resume();
    g::set_current(None);
    match r {
        Some(Reason::Yield) => {
            // Go's Gosched: to the global queue, so others get a turn.
            sched.injector.push(g);
        }
        Some(Reason::Park) => {
            if let Err(g) = g.commit_park() {
                // A wake-up raced the switch: runnable again at once.
                with_m(|m| {
                    let p = m.p.as_ref().expect("P");
                    p.runqput(g, true, &sched.injector);
                });
            }
        }
        None => {
            // The goroutine returned (its joiner was told from inside it).
            g.g().locals.clear();
            let e = g.exec();
            e.watch = None;
            let coro = e.coro.take().expect("coroutine");
            let stack = coro.into_stack();
            g.set_dead();
            with_m(|m| {
                let p = m.p.as_mut().expect("P");
                p.shared.ngoroutine.fetch_sub(1, Ordering::Relaxed);
                p.stacks.put(stack);
                sched.gfput(p, g);
            });
        }
    }
}
