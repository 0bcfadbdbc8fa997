//! Spawning and joining goroutines: [`go`], [`JoinHandle`], [`scope`].
//!
//! The shapes are `std::thread`'s: `go` returns a handle whose `join` gives
//! `Result<T, panic payload>`; [`scope`] lets goroutines borrow from the
//! caller and joins them all before it returns. `join` parks the calling
//! goroutine (its M runs others) or blocks a plain thread.
//!
//! # One allocation per goroutine
//!
//! A spawn allocates one task block (`task.rs`): the closure, the result
//! slot, the joiner and (for scoped goroutines) the scope membership, from a
//! per-thread free list. The runtime holds it as a `RunRef` until the
//! goroutine starts, then on the goroutine's own stack; the `JoinHandle`
//! holds a `JoinRef<T>`. The G descriptor and the stack come from per-P
//! free lists.
//!
//! # Lifetimes
//!
//! The task handles erase the closure's lifetime (`task::new_task` is
//! `unsafe`). For scoped goroutines and `run`'s main goroutine soundness
//! rests on two rules kept by the runtime (`sched::m::execute`,
//! `Sched::abandon_all`): the scope (or `run`) does not return before the
//! task's `after` hook has fired (or its result was taken and the runtime
//! stopped), and the hook fires only after the runtime dropped every strong
//! reference it had to the task, so the task's contents (closure, result)
//! are dropped inside the scope, never after it.

use crate::sched::g::After;
use crate::sched::park::{self, Waiter};
use crate::task::{self, JoinRef, ProbeRef};
use parking_lot::Mutex;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub use crate::task::ABANDONED;

/// An owned permission to join a goroutine (like `std::thread::JoinHandle`).
/// Dropping it detaches the goroutine.
pub struct JoinHandle<T> {
    task: JoinRef<T>,
    goid: u64,
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("goid", &self.goid)
            .finish_non_exhaustive()
    }
}

impl<T> JoinHandle<T> {
    /// Waits for the goroutine to finish and returns its result, or the
    /// payload of its panic. In a goroutine this parks only the goroutine;
    /// on a plain thread it blocks the thread.
    ///
    /// If the runtime stopped before the goroutine finished, returns `Err`
    /// with the payload [`ABANDONED`].
    ///
    /// ```
    /// let v = gort_runtime::run(|| gort_runtime::go(|| 6 * 7).join().unwrap());
    /// assert_eq!(v, 42);
    /// ```
    pub fn join(self) -> std::thread::Result<T> {
        self.task.wait()
    }

    /// Has the goroutine finished (or been abandoned)? Never blocks.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// The goroutine's id (Go's goid; the main goroutine is 1).
    pub fn id(&self) -> u64 {
        self.goid
    }
}

/// Starts a goroutine running `f` (Go: `go f()`).
///
/// Inside the runtime the new goroutine goes to the current P's `runnext`
/// slot, as in Go; from other threads (while a runtime runs) it goes to the
/// global run queue.
///
/// # Panics
///
/// If no runtime is running.
///
/// ```
/// gort_runtime::run(|| {
///     let hs: Vec<_> = (0..10u64).map(|i| gort_runtime::go(move || i * i)).collect();
///     let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
///     assert_eq!(sum, 285);
/// });
/// ```
#[doc(alias = "newproc")]
pub fn go<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (run, task) = task::new_task_static(f);
    let goid = park::spawn_task(run, None);
    JoinHandle { task, goid }
}

/// Spawns a runtime-internal goroutine from a thread that is not an M
/// (sysmon): it goes to the back of the global run queue.
pub(crate) fn go_internal<F>(sched: &Arc<crate::sched::Sched>, f: F) -> JoinHandle<()>
where
    F: FnOnce() + Send + 'static,
{
    let (run, task) = task::new_task_static(f);
    let goid = park::spawn_task(run, Some(sched));
    JoinHandle { task, goid }
}

/// Spawns `run`'s main goroutine and returns its joiner.
///
/// # Safety
///
/// The caller must wait for the result (`JoinRef::wait`) and stop the
/// runtime (which drops the runtime's references) before anything `f`
/// borrows goes away.
pub(crate) unsafe fn spawn_main<F, T>(f: F, sched: &Arc<crate::sched::Sched>) -> JoinRef<T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    // SAFETY: forwarded to our caller (see `# Safety`).
    let (run, join) = unsafe { task::new_task(f, None) };
    park::spawn_task(run, Some(sched));
    join
}

/// State shared by a scope and its goroutines.
struct ScopeData {
    running: AtomicUsize,
    waiter: Mutex<Option<Waiter>>,
}

impl ScopeData {
    fn wait_all(&self) {
        loop {
            {
                let mut w = self.waiter.lock();
                if self.running.load(Ordering::Acquire) == 0 {
                    return;
                }
                *w = Some(Waiter::current());
            }
            park::park_current(park::WaitReason::Join);
        }
    }
}

/// A scoped goroutine's membership: leaves the scope exactly once.
struct ScopeMember {
    data: Arc<ScopeData>,
    left: AtomicBool,
}

impl After for ScopeMember {
    fn fire(&self) {
        if self.left.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.data.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Take the waiter out and release the lock before waking: `wake`
            // may take `sched.lock`, and no runtime lock is held while
            // another is taken except in the documented order.
            let w = self.data.waiter.lock().take();
            if let Some(w) = w {
                w.wake();
            }
        }
    }
}

/// A scope for goroutines that borrow from the caller (like
/// `std::thread::Scope`). Made by [`scope`].
pub struct Scope<'scope, 'env: 'scope> {
    data: Arc<ScopeData>,
    /// The scope's tasks, to find panics nobody joined. Lifetime-erased;
    /// emptied by `scope` before it returns.
    tasks: Mutex<Vec<ProbeRef>>,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl std::fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("running", &self.data.running.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A handle to join a scoped goroutine.
pub struct ScopedJoinHandle<'scope, T> {
    task: JoinRef<T>,
    goid: u64,
    _scope: PhantomData<&'scope ()>,
}

impl<T> std::fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("goid", &self.goid)
            .finish_non_exhaustive()
    }
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the goroutine; see [`JoinHandle::join`].
    pub fn join(self) -> std::thread::Result<T> {
        self.task.wait()
    }

    /// Has the goroutine finished? Never blocks.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// The goroutine's id.
    pub fn id(&self) -> u64 {
        self.goid
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Starts a goroutine that may borrow anything that outlives the scope.
    pub fn go<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.data.running.fetch_add(1, Ordering::AcqRel);
        let member = Arc::new(ScopeMember {
            data: self.data.clone(),
            left: AtomicBool::new(false),
        });
        // SAFETY: `scope` does not return before `running` is zero, and the
        // member leaves (decrements it) only through the task's `after`
        // hook, which the runtime fires after dropping its strong
        // references to the task; the scope's probes are dropped before it
        // returns, and the `ScopedJoinHandle` cannot outlive 'scope. So
        // everything borrowed for 'scope outlives every use of the task.
        let (run, task) = unsafe { task::new_task(f, Some(member as Arc<dyn After>)) };
        self.tasks.lock().push(task.probe());
        let goid = park::spawn_task(run, None);
        ScopedJoinHandle {
            task,
            goid,
            _scope: PhantomData,
        }
    }
}

/// Runs `f` with a [`Scope`] whose goroutines may borrow local data; waits
/// for all of them before returning (like `std::thread::scope`).
///
/// If a scoped goroutine panicked and its handle was not joined, `scope`
/// panics after all goroutines finished.
///
/// ```
/// let mut v = vec![1, 2, 3];
/// gort_runtime::run(|| {
///     gort_runtime::scope(|s| {
///         s.go(|| assert_eq!(v.len(), 3));
///         s.go(|| assert_eq!(v[0], 1));
///     });
/// });
/// v.push(4);
/// ```
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let s = Scope {
        data: Arc::new(ScopeData {
            running: AtomicUsize::new(0),
            waiter: Mutex::new(None),
        }),
        tasks: Mutex::new(Vec::new()),
        scope: PhantomData,
        env: PhantomData,
    };
    let r = catch_unwind(AssertUnwindSafe(|| f(&s)));
    s.data.wait_all();
    let tasks = std::mem::take(&mut *s.tasks.lock());
    let a_panicked = tasks.iter().any(|t| t.unjoined_panic());
    drop(tasks);
    match r {
        Err(e) => std::panic::resume_unwind(e),
        Ok(_) if a_panicked => panic!("a scoped goroutine panicked"),
        Ok(v) => v,
    }
}
