//! Starting and stopping the runtime: [`Builder`], [`Runtime`], [`run`], and
//! the `gort::runtime` functions (`num_goroutine`, `gomaxprocs`, …).
//!
//! One runtime runs per process at a time, as in Go. `Runtime::run` starts
//! it (Ms, Ps, the main goroutine), waits for the main goroutine, and stops
//! it: every M leaves at its next scheduling point; goroutines that have not
//! finished are abandoned — never-started ones are dropped, suspended ones
//! are leaked (never resumed, never unwound), and their `JoinHandle`s
//! return `Err(ABANDONED)`. Go's process simply exits at that point.
//!
//! A second `run` on another thread waits until the first one returns; a
//! `run` from inside a goroutine panics (it could never finish).

use crate::coro::stack::{DEFAULT_STACK_SIZE, StackConfig};
pub use crate::sched::world::{GoroutineStatus, GoroutineView, StoppedWorld};
use crate::sched::{Config, MAX_GOMAXPROCS, Sched, park};
use parking_lot::Mutex;
use std::sync::{Arc, RwLock};

/// The running runtime, for threads that are not Ms (a std lock: sysmon
/// reads it, and it must never wait on parking_lot's shared table).
static CURRENT: RwLock<Option<Arc<Sched>>> = RwLock::new(None);

fn current_slot() -> std::sync::RwLockReadGuard<'static, Option<Arc<Sched>>> {
    CURRENT.read().unwrap_or_else(|e| e.into_inner())
}

fn set_current_slot(v: Option<Arc<Sched>>) {
    *CURRENT.write().unwrap_or_else(|e| e.into_inner()) = v;
}
/// Held for the whole of a `run`: one runtime per process at a time.
static RUN_SLOT: Mutex<()> = parking_lot::Mutex::new(());

/// Default cap on OS threads (Go: `SetMaxThreads` default 10,000).
pub const DEFAULT_MAX_THREADS: usize = 10_000;

pub(crate) fn current_sched() -> Option<Arc<Sched>> {
    if let Some(s) = crate::sched::m::try_with_m(|m| m.sched.clone()) {
        return Some(s);
    }
    current_slot().clone()
}

fn sched_or_panic(what: &str) -> Arc<Sched> {
    current_sched().unwrap_or_else(|| {
        panic!(
            "gort: {what} needs a running runtime; call it inside `gort::run` (or `Runtime::run`)"
        )
    })
}

/// A runtime configuration error from [`Builder::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(String);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gort: invalid runtime configuration: {}", self.0)
    }
}

impl std::error::Error for BuildError {}

/// Configures a [`Runtime`]. Unset options come from the environment
/// (`GOMAXPROCS`, `GORT_STACKSIZE`) and then from Go's defaults.
///
/// ```
/// let rt = gort_runtime::Runtime::builder().gomaxprocs(4).stack_size(128 * 1024).build()?;
/// assert_eq!(rt.run(|| gort_runtime::runtime::gomaxprocs()), 4);
/// # Ok::<(), gort_runtime::BuildError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    gomaxprocs: Option<usize>,
    stack_size: Option<usize>,
    max_threads: Option<usize>,
    mprotect_guards: bool,
}

impl Builder {
    /// Number of Ps (Go's GOMAXPROCS): 1 ..= 1024.
    pub fn gomaxprocs(mut self, n: usize) -> Builder {
        self.gomaxprocs = Some(n);
        self
    }

    /// Usable bytes reserved per goroutine stack (default 256 KiB, lazily
    /// committed; 16 KiB ..= 1 GiB).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Cap on OS threads (Go's `debug.SetMaxThreads`; default 10,000).
    /// Exceeding it is a fatal error.
    pub fn max_threads(mut self, n: usize) -> Builder {
        self.max_threads = Some(n);
        self
    }

    /// Guard stacks with `mprotect` even where `MADV_GUARD_INSTALL` exists
    /// (for testing the fallback; costs two mappings per stack).
    #[doc(hidden)]
    pub fn force_mprotect_guards(mut self, on: bool) -> Builder {
        self.mprotect_guards = on;
        self
    }

    /// Validates the configuration.
    pub fn build(self) -> Result<Runtime, BuildError> {
        let gomaxprocs = match self.gomaxprocs {
            Some(n) if (1..=MAX_GOMAXPROCS).contains(&n) => n,
            Some(n) => {
                return Err(BuildError(format!(
                    "gomaxprocs {n} is outside 1..={MAX_GOMAXPROCS}"
                )));
            }
            None => crate::env::gomaxprocs_from_env().0,
        };
        let explicit = self.gomaxprocs.is_some() || crate::env::gomaxprocs_from_env_explicit();
        let size = match self.stack_size {
            Some(s) => s,
            None => crate::env::stack_size_from_env().unwrap_or(DEFAULT_STACK_SIZE),
        };
        let mut stacks = StackConfig::new(size).map_err(BuildError)?;
        stacks.force_mprotect = self.mprotect_guards;
        let max_threads = self.max_threads.unwrap_or(DEFAULT_MAX_THREADS);
        if max_threads < 1 {
            return Err(BuildError("max_threads must be at least 1".into()));
        }
        Ok(Runtime {
            cfg: Config {
                gomaxprocs,
                gomaxprocs_explicit: explicit,
                godebug: crate::env::GoDebug::from_env(),
                stacks,
                max_threads,
            },
        })
    }
}

/// A configured runtime, ready to [`run`](Runtime::run).
#[derive(Debug, Clone)]
pub struct Runtime {
    cfg: Config,
}

impl Runtime {
    /// A builder.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The runtime Go would start: configuration from the environment.
    pub fn from_env() -> Runtime {
        Builder::default().build().expect("defaults are valid")
    }

    /// GOMAXPROCS this runtime will start with.
    pub fn gomaxprocs(&self) -> usize {
        self.cfg.gomaxprocs
    }

    /// Usable bytes per goroutine stack.
    pub fn stack_size(&self) -> usize {
        self.cfg.stacks.size
    }

    /// Starts the runtime, runs `f` as the main goroutine (goid 1) and
    /// returns its result once it finishes; then stops the runtime (see the
    /// module docs for what happens to goroutines still running).
    ///
    /// A panic in the main goroutine propagates out of `run`.
    ///
    /// # Panics
    ///
    /// If called from inside a goroutine.
    pub fn run<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        assert!(
            !crate::coro::on_goroutine(),
            "gort: Runtime::run called from inside a goroutine; use gort::go to start more goroutines"
        );
        let _slot = RUN_SLOT.lock();
        crate::coro::overflow::install_handler();
        crate::sched::preempt::install_handler();
        crate::panic::install();
        let sched = Sched::new(self.cfg);
        set_current_slot(Some(sched.clone()));
        // SAFETY: we wait for the main goroutine's result and then stop the
        // runtime (joining every M, so the runtime's references to the task
        // are gone) before returning, so everything `f` borrows outlives
        // the goroutine and the runtime's use of its task.
        let main = unsafe { crate::spawn::spawn_main(f, &sched) };
        sched.start_first_m();
        let r = main.wait();
        sched.stop();
        drop(main);
        set_current_slot(None);
        match r {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

/// Runs `f` as the main goroutine of a runtime configured from the
/// environment, and returns its result (see [`Runtime::run`]).
///
/// ```
/// let n = gort_runtime::run(|| {
///     let h = gort_runtime::go(|| gort_runtime::runtime::num_goroutine());
///     h.join().unwrap()
/// });
/// assert!(n >= 2);
/// ```
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    Runtime::from_env().run(f)
}

/// Lets other goroutines run (Go's `runtime.Gosched`): the caller goes to
/// the back of the global run queue. On a plain thread, yields the thread.
#[doc(alias = "Gosched")]
pub fn yield_now() {
    park::yield_now();
}

/// The id of the running goroutine (Go's goid; main is 1), or `None` on a
/// thread that is not running a goroutine.
pub fn goid() -> Option<u64> {
    match crate::sched::g::current_goid() {
        0 => None,
        id => Some(id),
    }
}

/// Number of goroutines that currently exist (Go's `runtime.NumGoroutine`).
///
/// # Panics
///
/// If no runtime is running.
pub fn num_goroutine() -> usize {
    sched_or_panic("num_goroutine").num_goroutine()
}

/// Current GOMAXPROCS.
///
/// # Panics
///
/// If no runtime is running.
pub fn gomaxprocs() -> usize {
    sched_or_panic("gomaxprocs")
        .gomaxprocs
        .load(std::sync::atomic::Ordering::SeqCst)
}

/// Sets GOMAXPROCS and returns the previous value (Go's
/// `runtime.GOMAXPROCS(n)`): `n < 1` only queries; values above 1024 are
/// clamped.
///
/// # Panics
///
/// If no runtime is running.
#[doc(alias = "GOMAXPROCS")]
pub fn set_gomaxprocs(n: usize) -> usize {
    let s = sched_or_panic("set_gomaxprocs");
    if n < 1 {
        return s.gomaxprocs.load(std::sync::atomic::Ordering::SeqCst);
    }
    // Go 1.25: a program that sets GOMAXPROCS itself keeps it; sysmon no
    // longer follows the cgroup limit.
    s.gomaxprocs_explicit
        .store(true, std::sync::atomic::Ordering::Relaxed);
    // Runtime code taking `sched.lock`: not to be frozen half-way.
    let _np = crate::sched::preempt::NoPreempt::new();
    s.set_gomaxprocs(n.min(MAX_GOMAXPROCS))
}

/// Sets the maximum number of OS threads the runtime may use and returns
/// the previous limit (Go's `debug.SetMaxThreads`). Creating a thread beyond
/// it is a fatal error ("thread exhaustion"), as in Go.
///
/// # Panics
///
/// If no runtime is running, or `n` is 0.
pub fn set_max_threads(n: usize) -> usize {
    assert!(
        n >= 1,
        "gort: set_max_threads: the limit must be at least 1"
    );
    sched_or_panic("set_max_threads")
        .max_threads
        .swap(n, std::sync::atomic::Ordering::Relaxed)
}

/// A voluntary preemption point for hot loops (Go inserts one in every
/// function prologue): if sysmon asked the running goroutine to yield (it
/// has held its P for 10 ms while others wait), it yields here; otherwise
/// this costs one thread-local load and a branch. A loop without any gort
/// call is still preempted by signal (the thread is frozen and its P handed
/// on), but yielding here is cheaper and lets the goroutine move.
#[inline]
pub fn preempt_check() {
    park::preempt_check();
}

/// Runs `f`, which may block its thread (a system call, FFI, a
/// `std::sync` lock, `std::thread::sleep`), as Go runs a system call: if it
/// blocks longer than ~20 µs while other goroutines wait, sysmon hands this
/// goroutine's P to another thread, so the others keep running; when `f`
/// returns the goroutine gets a P back before it goes on. On a plain thread
/// it just calls `f`.
///
/// Undeclared blocking is detected too (by lack of progress, within about
/// a millisecond); declaring it is faster and cheaper.
///
/// ```
/// gort_runtime::run(|| {
///     let n = gort_runtime::runtime::blocking(|| {
///         std::thread::sleep(std::time::Duration::from_millis(1));
///         7
///     });
///     assert_eq!(n, 7);
/// });
/// ```
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    park::blocking(f)
}

/// Wires the calling goroutine to its current OS thread (Go's
/// `runtime.LockOSThread`): until as many [`unlock_os_thread`] calls, it
/// runs only on this thread, and the thread runs no other goroutine. Calls
/// nest. If the goroutine exits while locked, the thread exits too (its
/// state may have been changed). On a plain thread it does nothing.
pub fn lock_os_thread() {
    park::lock_os_thread();
}

/// Undoes one [`lock_os_thread`] (Go's `runtime.UnlockOSThread`); more
/// unlocks than locks do nothing.
pub fn unlock_os_thread() {
    park::unlock_os_thread();
}

/// Stops the world (Go's `stopTheWorld`): returns once no goroutine other
/// than the caller executes user code. Every other goroutine is parked,
/// queued, or on a thread frozen by the preemption signal with its
/// registers saved; [`StoppedWorld::for_each_goroutine`] lists them with
/// their stacks for a conservative scan. Dropping the returned value
/// restarts the world.
///
/// While the world is stopped the caller must not block on anything
/// another goroutine would release, and should avoid allocating (a frozen
/// thread may hold the allocator's lock). With
/// `GODEBUG=asyncpreemptoff=1` a goroutine looping without safe points
/// delays the stop until it reaches one.
///
/// # Panics
///
/// If no runtime is running.
pub fn stop_the_world() -> crate::sched::world::StoppedWorld {
    crate::sched::world::stop(&sched_or_panic("stop_the_world"))
}

/// Number of CPUs this process may run on (Go's `runtime.NumCPU`: the CPU
/// affinity mask; cgroup limits do not change it).
pub fn num_cpu() -> usize {
    crate::cgroup::affinity_cpus()
}

/// Is a runtime running in this process?
pub fn is_running() -> bool {
    current_sched().is_some()
}

/// How the running runtime's goroutine stacks are guarded: `"madvise"`
/// (`MADV_GUARD_INSTALL`, no extra mapping per stack), `"mprotect"` (two
/// mappings per stack, capped by `vm.max_map_count`), or `"none"` (no stack
/// has been mapped yet).
///
/// # Panics
///
/// If no runtime is running.
pub fn stack_guard_mode() -> &'static str {
    let s = sched_or_panic("stack_guard_mode");
    let _np = crate::sched::preempt::NoPreempt::new(); // the stack pool's lock
    match crate::coro::stackpool::guard_kind(s.cfg.stacks) {
        gort_alloc::sys::GuardKind::Madvise => "madvise",
        gort_alloc::sys::GuardKind::Mprotect => "mprotect",
        gort_alloc::sys::GuardKind::None => "none",
    }
}
