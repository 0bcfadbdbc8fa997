//! Spawning and joining goroutines: [`go`], [`JoinHandle`], [`scope`].
//!
//! The shapes are `std::thread`'s: `go` returns a handle whose `join` gives
//! `Result<T, panic payload>`; [`scope`] lets goroutines borrow from the
//! caller and joins them all before it returns. `join` parks the calling
//! goroutine (its M runs others) or blocks a plain thread.
//!
//! # One allocation per goroutine
//!
//! A spawn allocates one [`Task`]: the closure, the result slot, the joiner
//! and (for scoped goroutines) the scope membership. The runtime holds it as
//! `Arc<dyn Runnable>` until the goroutine starts, then on the goroutine's
//! own stack; the `JoinHandle` holds it as `Arc<dyn Join<T>>`. The G
//! descriptor and the stack come from per-P free lists.
//!
//! # Lifetimes
//!
//! The only `unsafe` here erases the lifetime of a scoped (or `run`'s main)
//! task so it can be queued as a `'static` goroutine. Soundness rests on
//! two rules kept by the runtime (`sched::m::execute`, `Sched::abandon_all`):
//! the scope (or `run`) does not return before the task's `after` hook has
//! fired, and the hook fires only after the runtime dropped every strong
//! reference it had to the task, so the task's contents (closure, result)
//! are dropped inside the scope, never after it.

use crate::sched::g::{After, Runnable};
use crate::sched::park::{self, Waiter};
use parking_lot::Mutex;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The payload `join` returns for a goroutine the runtime abandoned (it had
/// not finished when the main goroutine returned).
pub const ABANDONED: &str = "gort: goroutine abandoned: the runtime stopped before it finished";

/// A goroutine's closure, result and joiner (std's `Packet`, plus the closure).
///
/// # Fields
/// - `f`: Protected by: its own mutex; taken once by `run` (or `abandon`).
/// - `state`: Protected by: its own mutex.
pub(crate) struct Task<F, T> {
    f: Mutex<Option<F>>,
    state: Mutex<TaskState<T>>,
}

struct TaskState<T> {
    result: Option<std::thread::Result<T>>,
    done: bool,
    abandoned: bool,
    waiter: Option<Waiter>,
    after: Option<Arc<dyn After>>,
}

impl<F, T> Task<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    pub(crate) fn new(f: F, after: Option<Arc<dyn After>>) -> Arc<Task<F, T>> {
        Arc::new(Task {
            f: Mutex::new(Some(f)),
            state: Mutex::new(TaskState {
                result: None,
                done: false,
                abandoned: false,
                waiter: None,
                after,
            }),
        })
    }
}

impl<F, T> Runnable for Task<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn run(&self) {
        let f = self
            .f
            .lock()
            .take()
            .expect("gort: goroutine body run twice");
        let r = catch_unwind(AssertUnwindSafe(f));
        let w = {
            let mut s = self.state.lock();
            s.result = Some(r);
            s.done = true;
            s.waiter.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    fn abandon(&self) {
        drop(self.f.lock().take());
        let w = {
            let mut s = self.state.lock();
            if s.done {
                return;
            }
            s.abandoned = true;
            s.waiter.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    fn take_after(&self) -> Option<Arc<dyn After>> {
        self.state.lock().after.take()
    }
}

/// The joiner's view of a task.
pub(crate) trait Join<T>: Send + Sync {
    /// Waits for the result (parking a goroutine, blocking a thread).
    fn wait(&self) -> std::thread::Result<T>;
    fn is_finished(&self) -> bool;
    /// Did the goroutine panic with nobody taking the result?
    fn unjoined_panic(&self) -> bool;
}

impl<F, T> Join<T> for Task<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn wait(&self) -> std::thread::Result<T> {
        loop {
            {
                let mut s = self.state.lock();
                if s.done {
                    return s.result.take().expect("gort: goroutine result taken twice");
                }
                if s.abandoned {
                    return Err(Box::new(ABANDONED));
                }
                s.waiter = Some(Waiter::current());
            }
            park::park_current();
        }
    }

    fn is_finished(&self) -> bool {
        let s = self.state.lock();
        s.done || s.abandoned
    }

    fn unjoined_panic(&self) -> bool {
        matches!(self.state.lock().result, Some(Err(_)))
    }
}

/// Erases the lifetime of a task so it can be queued as a goroutine.
///
/// # Safety
///
/// The caller must not let anything the task borrows go away before the
/// task's `after` hook has fired (or, for a task without a hook, before its
/// `wait` returned and the runtime has stopped). The runtime fires the hook
/// only after it dropped all its strong references (see the module docs).
pub(crate) unsafe fn erase<'a>(t: Arc<dyn Runnable + 'a>) -> Arc<dyn Runnable> {
    // SAFETY: only the trait object's lifetime bound changes (same layout);
    // the borrows' validity is the caller's obligation above.
    unsafe { std::mem::transmute::<Arc<dyn Runnable + 'a>, Arc<dyn Runnable>>(t) }
}

/// An owned permission to join a goroutine (like `std::thread::JoinHandle`).
/// Dropping it detaches the goroutine.
pub struct JoinHandle<T> {
    task: Arc<dyn Join<T>>,
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
    let task = Task::new(f, None);
    let goid = park::spawn_task(task.clone(), None);
    JoinHandle { task, goid }
}

/// Spawns `run`'s main goroutine and returns its joiner.
///
/// # Safety
///
/// The caller must wait for the result (`Join::wait`) and stop the runtime
/// (which drops the runtime's references) before anything `f` borrows goes
/// away.
pub(crate) unsafe fn spawn_main<'a, F, T>(
    f: F,
    sched: &Arc<crate::sched::Sched>,
) -> Arc<dyn Join<T> + 'a>
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
{
    let task = Task::new(f, None);
    let r: Arc<dyn Runnable + 'a> = task.clone();
    // SAFETY: forwarded to our caller (see `# Safety`).
    park::spawn_task(unsafe { erase(r) }, Some(sched));
    task
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
            park::park_current();
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
    tasks: Mutex<Vec<Arc<dyn Join<()>>>>,
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
    task: Arc<dyn Join<T> + 'scope>,
    goid: u64,
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
        let task = Task::new(f, Some(member as Arc<dyn After>));
        let r: Arc<dyn Runnable + 'scope> = task.clone();
        // SAFETY: `scope` does not return before `running` is zero, and the
        // member leaves (decrements it) only through the task's `after`
        // hook, which the runtime fires after dropping its strong
        // references to the task. Everything borrowed for 'scope therefore
        // outlives the runtime's use of the task.
        let goid = park::spawn_task(unsafe { erase(r) }, None);
        let probe: Arc<dyn Join<()> + 'scope> = Arc::new(ScopedProbe(task.clone()));
        // SAFETY: only the lifetime bound changes. `scope` drops every probe
        // before it returns (also when its closure panics), so no probe, and
        // no task it keeps alive, outlives 'scope.
        let probe =
            unsafe { std::mem::transmute::<Arc<dyn Join<()> + 'scope>, Arc<dyn Join<()>>>(probe) };
        self.tasks.lock().push(probe);
        ScopedJoinHandle { task, goid }
    }
}

/// Lets `scope` ask a `Task<F, T>` about unjoined panics through `Join<()>`.
struct ScopedProbe<F, T>(Arc<Task<F, T>>);

impl<F, T> Join<()> for ScopedProbe<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn wait(&self) -> std::thread::Result<()> {
        self.0.wait().map(drop)
    }
    fn is_finished(&self) -> bool {
        Join::is_finished(&*self.0)
    }
    fn unjoined_panic(&self) -> bool {
        Join::unjoined_panic(&*self.0)
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
