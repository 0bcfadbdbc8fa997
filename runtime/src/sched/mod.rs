//! The G/M/P scheduler (Go: `proc.go`).
//!
//! # Concepts
//!
//! - **G** (`g.rs`): a goroutine. Runnable Gs sit in run queues as run
//!   tokens ([`g::GRef`]); parked Gs are reachable through wake handles.
//! - **M** (`m.rs`): an OS thread. It runs the scheduler loop on its own
//!   thread stack (Go's g0) and runs Gs only while it holds a P.
//! - **P** ([`P`]): a scheduling slot; GOMAXPROCS of them. Each has a
//!   bounded local run queue with a `runnext` slot (`runq.rs`), a stack cache
//!   and a free-G list.
//!
//! # Finding work (`find_runnable`, Go's `findRunnable`)
//!
//! 1. every 61st schedule tick, one G from the global queue (fairness);
//! 2. `runnext`, then the local queue;
//! 3. a batch from the global queue;
//! 4. steal: if this M is spinning, or fewer than half the busy Ps have a
//!    spinning M (`2*nmspinning < gomaxprocs - npidle`), become spinning and
//!    make 4 passes over the Ps in random coprime order, stealing half a
//!    victim's queue; the victim's `runnext` only on the last pass, after a
//!    ~3 µs back-off if the victim is running;
//! 5. release the P; stop spinning; **re-check** every queue (see below);
//!    park the M on its note until `startm` hands it a P.
//!
//! # No lost wake-ups
//!
//! The race is "I found nothing, I park" against "I queued work, someone
//! wake up". Both sides follow Go's discipline:
//!
//! - a submitter queues, then `fence(SeqCst)`, then reads `npidle` and
//!   `nmspinning` (`wakep`): if an M is spinning it will find the work;
//!   otherwise it CASes `nmspinning` 0→1 and takes an idle P under
//!   `sched.lock` for a new spinning M;
//! - an M going idle publishes its P as idle (`npidle += 1`, under the lock,
//!   after checking the global queue under the same lock), drops its
//!   spinning count, then `fence(SeqCst)`, then re-checks the global queue and
//!   every P's queue; if anything is there it takes an idle P back.
//!
//! With a full fence on both sides of this store→load pattern, at least one
//! side sees the other: either the submitter sees the idle P (and wakes an M)
//! or the parking M sees the work.
//!
//! # Spinning (Go: "Worker thread parking/unparking", proc.go:37–105)
//!
//! A new spinning M is started only if there is an idle P and no spinning M;
//! an M that stops spinning because it found work wakes another spinner if it
//! was the last one (`reset_spinning`). This keeps thread wake-ups rare under
//! bursts but reaches full parallelism eventually.
//!
//! # GOMAXPROCS changes
//!
//! Go stops the world to resize `allp`. Until gort has a stop-the-world
//! (the preemption issue), `set_gomaxprocs` works without one: growing
//! adds idle Ps and wakes Ms; shrinking removes idle Ps at once, and a
//! running P beyond the new count is retired by its M at its next schedule
//! (its queue moves to the global queue). For that short window more than
//! GOMAXPROCS Ps may run.
//!
//! See docs/design/scheduler.md.

pub(crate) mod clock;
pub(crate) mod g;
#[cfg(all(test, loom))]
mod loom_pslot;
#[cfg(all(test, loom))]
mod loom_wakeup;
pub(crate) mod m;
pub(crate) mod park;
pub(crate) mod parkword;
pub(crate) mod preempt;
pub(crate) mod runq;
pub(crate) mod sysmon;
pub(crate) mod timer;
pub(crate) mod world;

use crate::coro::stack::StackConfig;
use crate::coro::stackpool::StackCache;
use crossbeam_deque::Injector;
use crossbeam_utils::CachePadded;
use g::{G, GRef};
use park::Waiter;
use parking_lot::Mutex;
use runq::{FastRand, LocalQueue, RandomOrder, SharedQueue};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, OnceLock};

pub(crate) use crate::env::MAX_GOMAXPROCS;

/// A goroutine that has held its P this long yields at its next safe point
/// (Go: `forcePreemptNS`).
pub(crate) const FORCE_PREEMPT_NS: u64 = 10_000_000;

/// `CLOCK_MONOTONIC_COARSE` in ns: a few ns to read, one kernel tick
/// (1–4 ms) of resolution — plenty for 10 ms time slices.
pub(crate) fn coarse_nanos() -> u64 {
    preempt::clock_ns(libc::CLOCK_MONOTONIC_COARSE).unwrap_or(0)
}

/// Free Gs a P keeps before spilling half to the global list.
const GFREE_MAX: usize = 64;

/// While late timers wait (`Sched::timer_backlog`), one schedule in
/// `BACKLOG_TURN` serves the backlog (the local queue's head, else a batch
/// of the global queue) before `runnext`. So the late wake-ups get a third
/// of the Ps, first come first served, and the on-time ones two thirds
/// (10,000 sleepers: p99 15 → 5 ms, p50 still on time, 0.53 → 0.60 µs;
/// wake-ups/s −8 %; docs/design/timers.md).
const BACKLOG_TURN: u32 = 3;

/// `Sched::timer_backlog` while late timers went to the global queue.
const BACKLOG_QUEUED: usize = usize::MAX;

/// How long a thief sleeps before taking a running P's `runnext` (Go's
/// `usleep(3)` in `runqgrab`, as long as Linux's default 50 µs timer slack
/// makes it; see `steal_work`).
const RUNNEXT_STEAL_BACKOFF: std::time::Duration = std::time::Duration::from_micros(50);

/// Status of a P (the shared word other Ps read to skip idle victims).
pub(crate) const P_IDLE: u8 = 0;
pub(crate) const P_RUNNING: u8 = 1;
pub(crate) const P_RETIRED: u8 = 2;

/// What other Ps may see of a P.
///
/// # Fields
/// - `id`: Immutable after init.
/// - `q`: shared run-queue half (stealer + `runnext`).
/// - `status`: Atomic: written by the holder of the P (or under
///   `sched.lock` when idle), Relaxed reads by thieves (a hint).
#[derive(Debug)]
#[allow(dead_code)] // `id` is for Debug output and schedtrace (preemption issue)
pub(crate) struct PShared {
    pub(crate) id: usize,
    pub(crate) q: SharedQueue,
    pub(crate) status: AtomicU8,
    /// Atomic: goroutines started minus goroutines exited on this P
    /// (Relaxed; written by the owner only, summed by `num_goroutine`).
    /// Per P so spawning does not bounce a shared cache line.
    pub(crate) ngoroutine: CachePadded<AtomicI64>,
    /// This P's timer heap (Go: `pp.timers`): goroutines on this P add
    /// their sleeps here; any M may fire or cancel them (a leaf lock).
    pub(crate) timers: Mutex<timer::Timers>,
    /// Atomic: earliest deadline in this heap, in `clock::nanotime` ns,
    /// `u64::MAX` if none. Written under `timers`, read as a hint.
    pub(crate) timer_next: CachePadded<AtomicU64>,
    /// Atomic mirror of `P::schedtick` (Relaxed), for sysmon's hog check
    /// and schedtrace's `schedticks=[...]`.
    pub(crate) schedtick: AtomicU64,
    /// Declared blocking calls made on this P (Go: `syscalltick`).
    pub(crate) syscalltick: AtomicU64,
    /// Id of the M holding this P (`u64::MAX` when none), for scheddetail.
    pub(crate) mid: AtomicU64,
    /// Mirror of `P::gfree.len()` (Relaxed), for scheddetail.
    pub(crate) gfreecnt: AtomicUsize,
}

/// A P: owned by exactly one M at a time (or by the idle list).
#[derive(Debug)]
pub(crate) struct P {
    pub(crate) id: usize,
    pub(crate) shared: Arc<PShared>,
    pub(crate) runq: LocalQueue,
    /// Owner: this P only. Incremented per schedule, not per `runnext` hand-off.
    pub(crate) schedtick: u32,
    /// Owner: this P only. Schedules left before the next backlog turn
    /// (`Sched::timer_backlog`). Counted down by every pick of the fast
    /// path, `runnext` hand-offs included: a `runnext` chain inherits its
    /// time slice and leaves `schedtick` still, so `schedtick` cannot time
    /// the turns.
    pub(crate) backlog_wait: u32,
    pub(crate) stacks: StackCache,
    pub(crate) gfree: Vec<GRef>,
    pub(crate) rng: FastRand,
    order: RandomOrder,
}

impl P {
    fn new(id: usize, stacks: StackConfig) -> (Box<P>, Arc<PShared>) {
        let (local, shared) = runq::new_queue();
        let shared = Arc::new(PShared {
            id,
            q: shared,
            status: AtomicU8::new(P_IDLE),
            ngoroutine: CachePadded::new(AtomicI64::new(0)),
            timers: Mutex::new(timer::Timers::default()),
            timer_next: CachePadded::new(AtomicU64::new(u64::MAX)),
            schedtick: AtomicU64::new(0),
            syscalltick: AtomicU64::new(0),
            mid: AtomicU64::new(u64::MAX),
            gfreecnt: AtomicUsize::new(0),
        });
        let p = Box::new(P {
            id,
            shared: shared.clone(),
            runq: local,
            schedtick: 0,
            backlog_wait: 0,
            stacks: StackCache::new(stacks),
            gfree: Vec::new(),
            rng: FastRand::new(
                0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
            ),
            order: RandomOrder::new(1),
        });
        (p, shared)
    }

    /// `runqput` with this P's shared half. Returns `true` if the local
    /// queue overflowed into the global one.
    pub(crate) fn runqput(&self, g: GRef, next: bool, global: &Injector<GRef>) -> bool {
        self.runq.put(&self.shared.q, g, next, global)
    }

    /// A new time slice starts (Go: `schedtick++` in `execute`).
    pub(crate) fn new_slice(&mut self) {
        // Sysmon times slices by watching this counter (no clock read per
        // switch: it cost ~7 ns of a ~85 ns Gosched).
        self.schedtick = self.schedtick.wrapping_add(1);
        self.shared
            .schedtick
            .store(self.schedtick as u64, Ordering::Relaxed);
    }
}

/// Runtime configuration fixed at start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) gomaxprocs: usize,
    /// GOMAXPROCS was set explicitly (env or builder): sysmon never
    /// changes it from the cgroup limit.
    pub(crate) gomaxprocs_explicit: bool,
    pub(crate) godebug: crate::env::GoDebug,
    pub(crate) stacks: StackConfig,
    pub(crate) max_threads: usize,
}

/// How an idle M is woken.
#[derive(Debug)]
pub(crate) enum Handoff {
    /// Run with this P (spinning or not; if spinning, `nmspinning` already
    /// counts it).
    Run(Box<P>, bool),
    /// Run this goroutine, which is locked to the woken M, with this P.
    RunLocked(Box<P>, GRef),
    /// The runtime is stopping.
    Exit,
    /// Re-evaluate (a timer became due earlier); carries no P.
    Recheck,
}

/// The part of an M other threads may touch: its wake-up note, its P slot
/// and the state sysmon and the preemption signal work with.
///
/// # Fields
/// - `id`, `tid`, `cpu_clock`: set once when the M starts.
/// - `note`: Protected by its own mutex. Set by `startm`/shutdown, taken by the M.
/// - `state`, `p`: the ownership protocol in `preempt.rs` (M_IDLE, M_RUN, ...).
/// - `request`, `signal_pending`, `frozen*`, `regs`, `saved_sp`: the signal
///   handshake (`preempt.rs`).
/// - the rest: Atomic progress counters and hints (Relaxed), written by the M,
///   read by sysmon and schedtrace.
pub(crate) struct MShared {
    pub(crate) id: u64,
    note: std::sync::Mutex<Option<Handoff>>,
    cv: std::sync::Condvar,
    pub(crate) state: std::sync::atomic::AtomicU32,
    pub(crate) p: preempt::PSlot,
    /// Id of the P in `p` (`usize::MAX` if none), for sysmon and schedtrace.
    pub(crate) pid: AtomicUsize,
    pub(crate) request: std::sync::atomic::AtomicU32,
    pub(crate) signal_pending: AtomicBool,
    pub(crate) tid: std::sync::atomic::AtomicI32,
    pub(crate) cpu_clock: std::sync::atomic::AtomicI32,
    pub(crate) preempt_flag: std::sync::atomic::AtomicPtr<AtomicBool>,
    pub(crate) frozen: std::sync::atomic::AtomicU32,
    pub(crate) frozen_for_stop: AtomicBool,
    pub(crate) regs: [AtomicUsize; preempt::NREGS],
    pub(crate) saved_sp: AtomicUsize,
    /// Goroutines this M has resumed (progress, for blocking detection).
    pub(crate) ticks: AtomicU64,
    /// The G it runs (`Arc::as_ptr`, null when none): read under a stopped
    /// world, and its goid for schedtrace.
    pub(crate) curg: std::sync::atomic::AtomicPtr<G>,
    pub(crate) curg_id: AtomicU64,
    /// Coarse ns when the current declared blocking section began.
    pub(crate) syscall_since: AtomicU64,
    /// Parked in `stopm` (or exited).
    pub(crate) parked: AtomicBool,
    pub(crate) spinning: AtomicBool,
    /// Registered in `Locked::pwait` (frozen, waiting for a P).
    pub(crate) waiting_p: AtomicBool,
    /// goid of the goroutine locked to this M (0 = none).
    pub(crate) lockedg: AtomicU64,
    /// Inside a declared blocking section (`gort::blocking`), even after
    /// losing its P: sysmon does not freeze such an M for computing.
    pub(crate) in_syscall: AtomicBool,
    /// Set by `Sched::stop`: a hog freeze that begins now resumes at once
    /// (nobody will register it in `pwait` or thaw it any more).
    pub(crate) no_freeze: AtomicBool,
}

impl std::fmt::Debug for MShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MShared")
            .field("id", &self.id)
            .field("state", &self.state.load(Ordering::Relaxed))
            .field("p", &self.p)
            .finish()
    }
}

impl MShared {
    pub(crate) fn new(id: u64) -> MShared {
        MShared {
            id,
            note: std::sync::Mutex::new(None),
            cv: std::sync::Condvar::new(),
            state: std::sync::atomic::AtomicU32::new(preempt::M_IDLE),
            p: preempt::PSlot::new(),
            pid: AtomicUsize::new(usize::MAX),
            request: std::sync::atomic::AtomicU32::new(0),
            signal_pending: AtomicBool::new(false),
            tid: std::sync::atomic::AtomicI32::new(0),
            cpu_clock: std::sync::atomic::AtomicI32::new(-1),
            preempt_flag: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
            frozen: std::sync::atomic::AtomicU32::new(preempt::THAWED),
            frozen_for_stop: AtomicBool::new(false),
            regs: preempt::new_regs(),
            saved_sp: AtomicUsize::new(0),
            ticks: AtomicU64::new(0),
            curg: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
            curg_id: AtomicU64::new(0),
            syscall_since: AtomicU64::new(0),
            parked: AtomicBool::new(false),
            spinning: AtomicBool::new(false),
            waiting_p: AtomicBool::new(false),
            lockedg: AtomicU64::new(0),
            in_syscall: AtomicBool::new(false),
            no_freeze: AtomicBool::new(false),
        }
    }

    fn note(&self) -> std::sync::MutexGuard<'_, Option<Handoff>> {
        self.note.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self, h: Handoff) {
        *self.note() = Some(h);
        self.cv.notify_one();
    }

    /// Delivers `h` unless a hand-off is pending.
    fn wake_if_empty(&self, h: Handoff) {
        let mut n = self.note();
        if n.is_none() {
            *n = Some(h);
            self.cv.notify_one();
        }
    }

    /// Asks the M to re-evaluate; never overwrites a pending `Run`/`Exit`.
    fn recheck(&self) {
        let mut n = self.note();
        if n.is_none() {
            *n = Some(Handoff::Recheck);
            self.cv.notify_one();
        }
    }

    /// Installs `p` as this M's P (the M owns the slot: it is in scheduler
    /// code, or frozen without a P and about to be thawed by the caller).
    pub(crate) fn put_p(&self, p: Box<P>) {
        self.pid.store(p.id, Ordering::Relaxed);
        self.p.put(p);
    }

    /// Takes this M's P (same ownership rule as `put_p`).
    pub(crate) fn take_p(&self) -> Option<Box<P>> {
        let p = self.p.take();
        self.pid.store(usize::MAX, Ordering::Relaxed);
        p
    }

    /// Takes the P of an M in a blocking call or released by the signal
    /// (Go: the CAS in `retake`). `None` if the M got there first.
    pub(crate) fn steal_p(&self) -> Option<Box<P>> {
        for from in [preempt::M_SYSCALL, preempt::M_RELEASED] {
            if self
                .state
                .compare_exchange(from, preempt::M_LOST, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return self.take_p();
            }
        }
        None
    }

    /// Waits for a hand-off, or until `deadline` (then `None`).
    fn sleep_until(&self, deadline: Option<std::time::Instant>) -> Option<Handoff> {
        let mut n = self.note();
        loop {
            if let Some(h) = n.take() {
                return Some(h);
            }
            match deadline {
                None => n = self.cv.wait(n).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        return n.take();
                    }
                    n = self
                        .cv
                        .wait_timeout(n, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }
}

/// State under `sched.lock`.
#[derive(Debug, Default)]
#[allow(clippy::vec_box)] // Ps move between Ms and lists as boxes; a Vec<P> would move whole P structs.
struct Locked {
    /// Idle Ps (Go: `sched.pidle`).
    pidle: Vec<Box<P>>,
    /// Ps beyond GOMAXPROCS, kept for a later increase.
    retired: Vec<Box<P>>,
    /// Idle Ms (Go: `sched.midle`).
    midle: Vec<Arc<MShared>>,
    /// Join handles of every M started.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The idle M that waits with the earliest timer as its timeout.
    sleeper: Option<Arc<MShared>>,
    /// The idle M blocked in the network poller (not on `midle`).
    poller: Option<Arc<MShared>>,
    /// Set with the lock held, so `stopm` and shutdown cannot miss each other.
    shutdown: bool,
    /// Ms frozen without a P, waiting for one, oldest first, with the
    /// coarse time they started waiting (they have priority over new work).
    pwait: std::collections::VecDeque<(Arc<MShared>, u64)>,
}

impl Locked {
    /// `me` is no longer the timer sleeper (if it was).
    fn drop_sleeper(&mut self, me: &Arc<MShared>) {
        if self.sleeper.as_ref().is_some_and(|s| Arc::ptr_eq(s, me)) {
            self.sleeper = None;
        }
    }
}

/// `sched.lock`: a std (futex) mutex, not parking_lot: parking_lot parks
/// through a process-wide table whose bucket locks user code may hold when
/// the preemption signal freezes it, and the scheduler must never wait on
/// a frozen thread.
#[derive(Debug)]
pub(crate) struct SchedLock(std::sync::Mutex<Locked>);

impl SchedLock {
    fn lock(&self) -> std::sync::MutexGuard<'_, Locked> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Locks a std mutex, ignoring poisoning (the runtime's own sections do
/// not panic half-way; a user panic never holds them).
pub(crate) fn lock_ok<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The scheduler (Go: `schedt`, plus `allp`, `allgs`).
///
/// # Fields
/// - `cfg`: Immutable after init.
/// - `allp`: each slot set once when its P is first created (Ps are never freed).
/// - `gomaxprocs`, `npidle`, `nmspinning`: Atomic, SeqCst (the wake-up protocol).
/// - `injector`: the global run queue; crossbeam's own synchronisation.
/// - `lock`: Go's `sched.lock`. Lock order: `sched.lock` → `MShared::note`;
///   `allgs` and `gfree` are leaves.
/// - `ngoroutine`, `goidgen`, `mcount`: Atomic counters (Relaxed).
/// - `shutdown`: Atomic mirror of `Locked::shutdown` for fast checks.
/// - `timer_backlog`: Atomic (Relaxed), updated by plain load and store: a
///   hint, never relied on for safety; a lost update only shifts a few turns.
pub(crate) struct Sched {
    pub(crate) cfg: Config,
    allp: Box<[OnceLock<Arc<PShared>>]>,
    pub(crate) gomaxprocs: CachePadded<AtomicUsize>,
    pub(crate) npidle: CachePadded<AtomicUsize>,
    pub(crate) nmspinning: CachePadded<AtomicUsize>,
    pub(crate) injector: CachePadded<Injector<GRef>>,
    lock: CachePadded<SchedLock>,
    /// Every M that exists (Go: `allm`). Leaf lock; sysmon and the
    /// stop-the-world hold it while they touch other Ms' thread-locals.
    pub(crate) allm: std::sync::Mutex<Vec<Arc<MShared>>>,
    /// A stop-the-world is in progress (Go: `sched.gcwaiting`).
    pub(crate) stw: AtomicBool,
    /// Backlog turns owed (docs/design/timers.md, "Late timers"): while
    /// non-zero, every `BACKLOG_TURN`-th schedule serves the backlog before
    /// `runnext`. `BACKLOG_QUEUED` (set by `run_timers_of`): late timers
    /// went to the global queue. A turn that finds the global queue empty
    /// lowers it to `runq::STEAL_MAX` turns, one refill's worth, for late
    /// goroutines already moved into a local queue, and each turn after
    /// that takes one off. A turn that finds nothing zeroes it. So turns
    /// neither stop while late goroutines wait behind a `runnext` chain
    /// nor go on for long after they have run.
    pub(crate) timer_backlog: CachePadded<AtomicUsize>,
    /// `Locked::pwait.len()`, readable without the lock.
    pub(crate) npwait: AtomicUsize,
    /// Goroutines (or threads) of this runtime parked in a network wait
    /// (`netpoll::PollDesc::wait`). Per runtime, not in the process-wide
    /// poller: a goroutine abandoned at a runtime's stop while it waits
    /// never decrements it, and must not keep a later runtime's idle Ms
    /// polling and its deadlock check off.
    pub(crate) netpoll_waiters: AtomicUsize,
    /// GOMAXPROCS set by the program (builder, env or `set_gomaxprocs`).
    pub(crate) gomaxprocs_explicit: AtomicBool,
    pub(crate) sysmon: sysmon::Handle,
    /// Goroutines started from plain threads (per-P counts are in `PShared`).
    pub(crate) ngoroutine: CachePadded<AtomicI64>,
    goidgen: AtomicU64,
    pub(crate) mcount: AtomicUsize,
    midgen: AtomicU64,
    /// Go's `SetMaxThreads` limit.
    pub(crate) max_threads: AtomicUsize,
    pub(crate) shutdown: AtomicBool,
    pub(crate) allgs: std::sync::Mutex<Vec<Arc<G>>>,
    gfree: std::sync::Mutex<Vec<GRef>>,
}

impl std::fmt::Debug for Sched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sched")
            .field("gomaxprocs", &self.gomaxprocs.load(Ordering::Relaxed))
            .field("npidle", &self.npidle.load(Ordering::Relaxed))
            .field("nmspinning", &self.nmspinning.load(Ordering::Relaxed))
            .field("ngoroutine", &self.ngoroutine.load(Ordering::Relaxed))
            .finish()
    }
}

/// What an idle M's turn as the network poller ended with.
enum Net {
    NotPoller,
    Exit,
    Run(Handoff),
    Again,
}

/// What `find_runnable` decided while holding the P.
enum Step {
    Found(GRef, bool),
    /// Timers are due on this P (its index) at this `nanotime`.
    Timers(usize, u64),
    Retire,
    Idle,
}

impl Sched {
    /// A scheduler with `cfg.gomaxprocs` idle Ps and no M yet.
    pub(crate) fn new(cfg: Config) -> Arc<Sched> {
        let sched = Arc::new(Sched {
            cfg,
            allp: (0..MAX_GOMAXPROCS).map(|_| OnceLock::new()).collect(),
            gomaxprocs: CachePadded::new(AtomicUsize::new(cfg.gomaxprocs)),
            npidle: CachePadded::new(AtomicUsize::new(0)),
            nmspinning: CachePadded::new(AtomicUsize::new(0)),
            injector: CachePadded::new(Injector::new()),
            lock: CachePadded::new(SchedLock(std::sync::Mutex::new(Locked::default()))),
            allm: std::sync::Mutex::new(Vec::new()),
            stw: AtomicBool::new(false),
            timer_backlog: CachePadded::new(AtomicUsize::new(0)),
            npwait: AtomicUsize::new(0),
            netpoll_waiters: AtomicUsize::new(0),
            gomaxprocs_explicit: AtomicBool::new(cfg.gomaxprocs_explicit),
            sysmon: sysmon::Handle::default(),
            ngoroutine: CachePadded::new(AtomicI64::new(0)),
            goidgen: AtomicU64::new(0),
            mcount: AtomicUsize::new(0),
            midgen: AtomicU64::new(0),
            max_threads: AtomicUsize::new(cfg.max_threads),
            shutdown: AtomicBool::new(false),
            allgs: std::sync::Mutex::new(Vec::new()),
            gfree: std::sync::Mutex::new(Vec::new()),
        });
        {
            let mut l = sched.lock.lock();
            l.pidle.reserve(MAX_GOMAXPROCS);
            for id in (0..cfg.gomaxprocs).rev() {
                let p = sched.make_p(id);
                l.pidle.push(p);
            }
            sched.npidle.store(cfg.gomaxprocs, Ordering::SeqCst);
        }
        sched
    }

    fn make_p(&self, id: usize) -> Box<P> {
        let (p, shared) = P::new(id, self.cfg.stacks);
        self.allp[id].set(shared).expect("P created twice");
        p
    }

    /// Next goroutine id (1 is the main goroutine).
    pub(crate) fn next_goid(&self) -> u64 {
        self.goidgen.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A G ready to run `task` as a new goroutine (Go: the `newproc1` part
    /// of `newproc`), counted on `p` (or globally from a plain thread).
    /// Returns it with its goid; the caller queues it.
    pub(crate) fn new_goroutine(
        &self,
        p: Option<&mut P>,
        task: crate::task::RunRef,
    ) -> (GRef, u64) {
        let counter = match &p {
            Some(p) => &p.shared.ngoroutine,
            None => &self.ngoroutine,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut g = self.gfget(p);
        let goid = self.next_goid();
        g.reset(goid, task);
        (g, goid)
    }

    /// Queues `g` on the global run queue and wakes an M if one is idle.
    pub(crate) fn inject(self: &Arc<Sched>, g: GRef) {
        self.injector.push(g);
        self.wakep();
    }

    /// A free G from the P's list, the global list, or a new one.
    pub(crate) fn gfget(&self, p: Option<&mut P>) -> GRef {
        if let Some(p) = p {
            if let Some(g) = p.gfree.pop() {
                p.shared.gfreecnt.store(p.gfree.len(), Ordering::Relaxed);
                return g;
            }
            let mut global = lock_ok(&self.gfree);
            let n = global.len().min(GFREE_MAX / 2);
            let at = global.len() - n;
            p.gfree.extend(global.drain(at..));
            drop(global);
            if let Some(g) = p.gfree.pop() {
                return g;
            }
        } else if let Some(g) = lock_ok(&self.gfree).pop() {
            return g;
        }
        let g = GRef::new_g();
        lock_ok(&self.allgs).push(g.g().clone());
        g
    }

    /// Returns a dead G to the P's free list.
    pub(crate) fn gfput(&self, p: &mut P, g: GRef) {
        p.gfree.push(g);
        if p.gfree.len() > GFREE_MAX {
            let half = p.gfree.split_off(GFREE_MAX / 2);
            lock_ok(&self.gfree).extend(half);
        }
        p.shared.gfreecnt.store(p.gfree.len(), Ordering::Relaxed);
    }

    /// The shared part of P `i`, if it exists.
    pub(crate) fn pshared(&self, i: usize) -> Option<&Arc<PShared>> {
        self.allp.get(i).and_then(|p| p.get())
    }

    /// Is there work that P `pid` (or any idle P) could run if freed?
    pub(crate) fn work_waiting(&self, pid: usize) -> bool {
        self.pshared(pid).is_some_and(|p| !p.q.is_empty())
            || !self.injector.is_empty()
            || self.npwait.load(Ordering::Relaxed) > 0
            || self.timers_due()
    }

    /// Does an idle M wait on the timers?
    pub(crate) fn has_timer_sleeper(&self) -> bool {
        self.lock.lock().sleeper.is_some()
    }

    /// `(idle Ms, idle Ms waiting for their locked goroutine)`.
    pub(crate) fn idle_counts(&self) -> (usize, usize) {
        let idle = self.lock.lock().midle.len();
        let locked = lock_ok(&self.allm)
            .iter()
            .filter(|m| m.lockedg.load(Ordering::Relaxed) != 0 && m.parked.load(Ordering::Relaxed))
            .count();
        (idle, locked)
    }

    /// Number of goroutines that exist (Go: `NumGoroutine`).
    pub(crate) fn num_goroutine(&self) -> usize {
        let per_p: i64 = self
            .allp
            .iter()
            .map_while(|p| p.get())
            .map(|p| p.ngoroutine.load(Ordering::Relaxed))
            .sum();
        (self.ngoroutine.load(Ordering::Relaxed) + per_p).max(0) as usize
    }

    /// An idle P for a goroutine returning from a blocking call, unless the
    /// world is stopping.
    pub(crate) fn pidleget_now(&self) -> Option<Box<P>> {
        if self.stw.load(Ordering::SeqCst) {
            return None;
        }
        let mut l = self.lock.lock();
        self.pidleget(&mut l)
    }

    /// After a stop-the-world: idle Ps go to Ms frozen waiting for one, and
    /// an M is woken if work waits.
    pub(crate) fn restart_idle(self: &Arc<Sched>) {
        {
            let mut l = self.lock.lock();
            while self.npwait.load(Ordering::SeqCst) > 0 {
                let Some(p) = self.pidleget(&mut l) else {
                    break;
                };
                if let Some(p) = self.give_to_waiter(&mut l, p) {
                    self.pidleput(&mut l, p);
                    break;
                }
            }
        }
        if self.any_work() {
            self.wakep();
        }
    }

    /// `pidleget`: an idle P, marked running. Must hold `sched.lock`.
    fn pidleget(&self, l: &mut Locked) -> Option<Box<P>> {
        let p = l.pidle.pop()?;
        self.npidle.fetch_sub(1, Ordering::SeqCst);
        p.shared.status.store(P_RUNNING, Ordering::Relaxed);
        Some(p)
    }

    /// `pidleput`: make `p` idle (or retire it if beyond GOMAXPROCS). Must
    /// hold `sched.lock`.
    fn pidleput(&self, l: &mut Locked, p: Box<P>) {
        // Go's invariant: an idle P has an empty run queue (nobody steals
        // from idle Ps). A P given up for a stop-the-world, or handed off
        // while the world stops, may still hold goroutines: move them to
        // the global queue. (Left there they were invisible: spinning Ms
        // took other idle Ps, found nothing, and spun forever — found by
        // the preemption storm.)
        if !p.shared.q.is_empty() {
            let mut toks = Vec::new();
            p.runq.drain(&p.shared.q, &mut toks);
            for g in toks {
                self.injector.push(g);
            }
        }
        if p.id >= self.gomaxprocs.load(Ordering::SeqCst) {
            p.shared.status.store(P_RETIRED, Ordering::Relaxed);
            l.retired.push(p);
            return;
        }
        let p = match self.give_to_waiter(l, p) {
            Some(p) => p,
            None => return,
        };
        p.shared.status.store(P_IDLE, Ordering::Relaxed);
        p.shared.mid.store(u64::MAX, Ordering::Relaxed);
        l.pidle.push(p);
        self.npidle.fetch_add(1, Ordering::SeqCst);
    }

    /// Gives `p` to the longest-waiting M that is frozen without a P (it
    /// resumes its goroutine on its own thread), unless the world is
    /// stopping. Returns `p` if nobody waits. Must hold `sched.lock`.
    fn give_to_waiter(&self, l: &mut Locked, mut p: Box<P>) -> Option<Box<P>> {
        if self.stw.load(Ordering::SeqCst) {
            return Some(p);
        }
        let Some((m, _)) = l.pwait.pop_front() else {
            return Some(p);
        };
        self.npwait.fetch_sub(1, Ordering::SeqCst);
        m.waiting_p.store(false, Ordering::Relaxed);
        p.new_slice();
        p.shared.status.store(P_RUNNING, Ordering::Relaxed);
        p.shared.mid.store(m.id, Ordering::Relaxed);
        m.put_p(p);
        m.state.store(preempt::M_RUN, Ordering::Release);
        preempt::thaw(&m);
        None
    }

    /// Registers `m`, frozen without a P, as waiting for one. If a P is
    /// idle it gets it at once.
    pub(crate) fn add_pwaiter(self: &Arc<Sched>, m: &Arc<MShared>) {
        let mut l = self.lock.lock();
        if m.waiting_p.swap(true, Ordering::Relaxed) {
            return;
        }
        l.pwait.push_back((m.clone(), coarse_nanos()));
        self.npwait.fetch_add(1, Ordering::SeqCst);
        if let Some(p) = self.pidleget(&mut l) {
            if let Some(p) = self.give_to_waiter(&mut l, p) {
                self.pidleput(&mut l, p);
            }
            return;
        }
        drop(l);
        // No P free: queue a resumer goroutine at the back of the global
        // queue, so the frozen goroutine's turn comes in Go's order (a
        // preempted G goes to the back of the global queue), not before
        // goroutines that were already waiting.
        let (sched, target) = (self.clone(), m.clone());
        drop(crate::spawn::go_internal(self, move || {
            sched.resume_frozen(&target)
        }));
    }

    /// A frozen M's turn has come (its resumer goroutine reached the head
    /// of a run queue): hand it this M's P. The calling goroutine's M is
    /// left without a P; the goroutine returns at once and its M then waits
    /// for a P like any other.
    pub(crate) fn resume_frozen(&self, target: &Arc<MShared>) {
        m::with_m(|me| {
            let mut l = self.lock.lock();
            let Some(i) = l.pwait.iter().position(|(m, _)| Arc::ptr_eq(m, target)) else {
                return; // already resumed (a P went idle meanwhile)
            };
            l.pwait.remove(i);
            self.npwait.fetch_sub(1, Ordering::SeqCst);
            target.waiting_p.store(false, Ordering::Relaxed);
            let Some(mut p) = me.take_p() else {
                // We lost our own P meanwhile: put the waiter back.
                l.pwait.push_front((target.clone(), coarse_nanos()));
                self.npwait.fetch_add(1, Ordering::SeqCst);
                target.waiting_p.store(true, Ordering::Relaxed);
                return;
            };
            me.me.state.store(preempt::M_LOST, Ordering::Release);
            p.new_slice();
            p.shared.status.store(P_RUNNING, Ordering::Relaxed);
            p.shared.mid.store(target.id, Ordering::Relaxed);
            target.put_p(p);
            target.state.store(preempt::M_RUN, Ordering::Release);
            preempt::thaw(target);
        });
    }

    /// `wakep`: try to add one spinning M if there is an idle P and nobody
    /// is spinning. Call after queueing work.
    /// Is any goroutine of this runtime waiting for I/O (so an idle M
    /// should poll, and the world is not deadlocked)?
    pub(crate) fn has_netpoll_waiters(&self) -> bool {
        self.netpoll_waiters.load(Ordering::SeqCst) > 0
    }

    pub(crate) fn wakep(self: &Arc<Sched>) {
        // StoreLoad: the queue push before this fence is visible to an M
        // that goes idle after our loads below (see the module docs).
        fence(Ordering::SeqCst);
        self.wakep_after_seqcst_put();
    }

    /// [`Sched::wakep`] without its fence, for a caller whose work went in
    /// with a SeqCst read-modify-write (`runnext`'s swap: every `goready`
    /// and `go`). That RMW precedes our SeqCst loads below in the single
    /// total order S; if they find no idle P / a spinner, the idle side's
    /// later SeqCst RMW of `npidle` / `nmspinning` and its SeqCst fence
    /// follow them in S, so its re-check after the fence sees the G in
    /// `runnext` (C++20 [atomics.order]: a SeqCst modification before a
    /// SeqCst fence in S is visible to reads after the fence). The fence
    /// (an `mfence`, ~10 ns) was ~3 % of a channel ping-pong round trip.
    /// Loom models SeqCst accesses as AcqRel, so `loom_wakeup` checks the
    /// fenced form only.
    #[inline]
    pub(crate) fn wakep_after_seqcst_put(self: &Arc<Sched>) {
        // Inlined: no idle P (every switch on a busy runtime) costs two
        // loads and no call.
        if self.npidle.load(Ordering::SeqCst) == 0 || self.stw.load(Ordering::SeqCst) {
            return;
        }
        self.wakep_idle_p();
    }

    /// [`Sched::wakep_after_seqcst_put`] once an idle P was seen.
    #[inline(never)]
    fn wakep_idle_p(self: &Arc<Sched>) {
        if self.nmspinning.load(Ordering::SeqCst) != 0
            || self
                .nmspinning
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return;
        }
        let mut l = self.lock.lock();
        if l.shutdown {
            self.nmspinning.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        match self.pidleget(&mut l) {
            Some(p) => self.startm_locked(l, p, true),
            None => {
                self.nmspinning.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// `startm`: run `p` on an idle M, or a new one. Consumes the lock guard.
    fn startm_locked(
        self: &Arc<Sched>,
        mut l: std::sync::MutexGuard<'_, Locked>,
        p: Box<P>,
        spinning: bool,
    ) {
        p.shared.status.store(P_RUNNING, Ordering::Relaxed);
        if let Some(m) = l.midle.pop() {
            drop(l);
            m.wake(Handoff::Run(p, spinning));
            return;
        }
        self.newm(l, Handoff::Run(p, spinning));
    }

    /// Starts a new M that begins with `first` (Go: `newm`). Consumes the
    /// lock guard.
    fn newm(self: &Arc<Sched>, mut l: std::sync::MutexGuard<'_, Locked>, first: Handoff) {
        let n = self.mcount.load(Ordering::Relaxed);
        let max = self.max_threads.load(Ordering::Relaxed);
        if n >= max {
            drop(l);
            crate::fatal!(
                "runtime: program exceeds {max}-thread limit\nfatal error: thread exhaustion"
            );
        }
        let n = self.mcount.fetch_add(1, Ordering::Relaxed) + 1;
        // Room for every M on the idle list now, so an M never allocates on
        // its way to park (a stopped world may have frozen a thread inside
        // malloc).
        if l.midle.capacity() < n {
            let more = n - l.midle.len();
            l.midle.reserve(more);
        }
        let id = self.midgen.fetch_add(1, Ordering::Relaxed);
        let sched = self.clone();
        let me = Arc::new(MShared::new(id));
        lock_ok(&self.allm).push(me.clone());
        let r = std::thread::Builder::new()
            .name(format!("gort-m{id}"))
            .spawn(move || m::m_main(sched, me, first));
        match r {
            Ok(h) => l.threads.push(h),
            Err(e) => {
                drop(l);
                crate::fatal!(
                    "runtime: failed to create new OS thread (have {n} already; {e})\n\
                     runtime: may need to increase max user processes (ulimit -u)\n\
                     fatal error: newosproc"
                );
            }
        }
    }

    /// Hands `g`, locked to M `mid`, to that M along with this M's P (Go:
    /// `startlockedm`). This M is left without a P.
    pub(crate) fn start_locked_m(self: &Arc<Sched>, mid: u64, g: GRef) {
        let target = lock_ok(&self.allm).iter().find(|m| m.id == mid).cloned();
        let p = m::with_m(|m| m.take_p()).expect("P");
        self.drop_spinning();
        match target {
            Some(t) => {
                p.shared.mid.store(t.id, Ordering::Relaxed);
                t.wake(Handoff::RunLocked(p, g));
            }
            None => {
                // Its M is gone (it cannot be while the goroutine lives);
                // run it anywhere rather than lose it.
                g.g().lockedm.store(0, Ordering::Relaxed);
                m::with_m(|m| m.put_p(p));
                self.injector.push(g);
            }
        }
    }

    /// This M's goroutine is locked to it and not runnable: give the P away
    /// and sleep until the goroutine is handed back with a P (Go:
    /// `stoplockedm`). `None` = the runtime is stopping.
    pub(crate) fn stop_locked_m(self: &Arc<Sched>, me: &Arc<MShared>) -> Option<(Box<P>, GRef)> {
        if let Some(p) = m::with_m(|m| m.take_p()) {
            self.drop_spinning();
            self.handoffp(p);
        }
        me.parked.store(true, Ordering::SeqCst);
        let r = loop {
            if self.shutdown.load(Ordering::Acquire) {
                break None;
            }
            match me.sleep_until(None) {
                Some(Handoff::RunLocked(p, g)) => break Some((p, g)),
                Some(Handoff::Run(p, _)) => {
                    // Not for us (a stale idle hand-off): pass it on.
                    self.handoffp(p);
                }
                Some(Handoff::Exit) => break None,
                _ => {}
            }
        };
        me.parked.store(false, Ordering::SeqCst);
        r
    }

    /// Gives away a P this thread holds but will not use (Go: `handoffp`):
    /// to an M frozen waiting for one, to a new M if there is work, else to
    /// the idle list.
    pub(crate) fn handoffp(self: &Arc<Sched>, p: Box<P>) {
        let mut l = self.lock.lock();
        if l.shutdown {
            l.retired.push(p);
            return;
        }
        let work = !p.shared.q.is_empty() || !self.injector.is_empty() || self.timers_due();
        // A frozen M waiting for a P is like Go's preempted G at the back of
        // the global queue (its resumer goroutine is there): queued work goes
        // first; with none, the waiter gets the P at once.
        let p = if work {
            p
        } else {
            match self.give_to_waiter(&mut l, p) {
                Some(p) => p,
                None => return,
            }
        };
        if work && !self.stw.load(Ordering::SeqCst) {
            self.startm_locked(l, p, false);
        } else {
            self.pidleput(&mut l, p);
            drop(l);
            // The global queue is lock-free (Go's is under `sched.lock`, so
            // its `handoffp` check needs no second look): a goroutine
            // injected just after our check, whose `wakep` read `npidle`
            // before our `pidleput` raised it, would sit there with every P
            // idle. Look again after the SeqCst increment (the idle path of
            // `find_runnable` does the same).
            fence(Ordering::SeqCst);
            if work || self.any_work() {
                self.wakep();
            }
        }
    }

    /// An M leaves (runtime stopping, or its locked goroutine exited).
    pub(crate) fn m_exiting(
        self: &Arc<Sched>,
        me: &Arc<MShared>,
        p: Option<Box<P>>,
        spinning: bool,
    ) {
        if spinning {
            self.nmspinning.fetch_sub(1, Ordering::SeqCst);
        }
        {
            let mut all = lock_ok(&self.allm);
            if let Some(i) = all.iter().position(|m| Arc::ptr_eq(m, me)) {
                all.swap_remove(i);
            }
        }
        me.tid.store(0, Ordering::Release);
        me.parked.store(true, Ordering::SeqCst);
        self.mcount.fetch_sub(1, Ordering::Relaxed);
        if let Some(p) = p {
            if self.shutdown.load(Ordering::Acquire) {
                self.lock.lock().retired.push(p);
            } else {
                self.handoffp(p);
            }
        }
    }

    /// Starts the first M with a P (at `run`).
    pub(crate) fn start_first_m(self: &Arc<Sched>) {
        sysmon::start(self);
        // Queueing the main goroutine may already have started a spinning
        // M (via `wakep`); then there is nothing more to do.
        let mut l = self.lock.lock();
        if let Some(p) = self.pidleget(&mut l) {
            self.startm_locked(l, p, false);
        }
    }

    /// `stopm`: park this M until it is handed a P (`Handoff::Run` or
    /// `Handoff::RunLocked`). `None` = exit.
    ///
    /// The first idle M while timers exist becomes the timer sleeper: it
    /// waits with the earliest deadline as timeout, then takes an idle P to
    /// fire the due timers (see `timer.rs`).
    fn stopm(self: &Arc<Sched>, me: &Arc<MShared>) -> Option<Handoff> {
        me.parked.store(true, Ordering::SeqCst);
        let r = self.stopm_inner(me);
        me.parked.store(false, Ordering::SeqCst);
        r
    }

    fn stopm_inner(self: &Arc<Sched>, me: &Arc<MShared>) -> Option<Handoff> {
        loop {
            match self.poll_network(me) {
                Net::NotPoller => {}
                Net::Exit => return None,
                Net::Run(h) => return Some(h),
                Net::Again => continue,
            }
            let deadline = {
                let mut l = self.lock.lock();
                if l.shutdown {
                    return None;
                }
                l.midle.push(me.clone());
                match self.next_timer() {
                    Some(d)
                        if l.sleeper.is_none()
                            || l.sleeper.as_ref().is_some_and(|s| Arc::ptr_eq(s, me)) =>
                    {
                        l.sleeper = Some(me.clone());
                        Some(d)
                    }
                    _ => None,
                }
            };
            match me.sleep_until(deadline) {
                Some(h @ (Handoff::Run(..) | Handoff::RunLocked(..))) => {
                    self.clear_sleeper(me);
                    return Some(h);
                }
                Some(Handoff::Exit) => return None,
                Some(Handoff::Recheck) | None => {
                    let mut l = self.lock.lock();
                    if let Some(i) = l.midle.iter().position(|m| Arc::ptr_eq(m, me)) {
                        l.midle.swap_remove(i);
                    } else {
                        // Someone popped us and is handing us a P (or Exit).
                        drop(l);
                        self.clear_sleeper(me);
                        match me.sleep_until(None) {
                            Some(h @ (Handoff::Run(..) | Handoff::RunLocked(..))) => {
                                return Some(h);
                            }
                            Some(Handoff::Exit) => return None,
                            _ => continue,
                        }
                    }
                    l.drop_sleeper(me);
                    if l.shutdown {
                        return None;
                    }
                    if self.timers_due() {
                        if !self.stw.load(Ordering::SeqCst)
                            && let Some(p) = self.pidleget(&mut l)
                        {
                            // Fire the timers from the schedule loop, with a P.
                            return Some(Handoff::Run(p, false));
                        }
                        // Every P is busy: fire them here (the woken Gs go
                        // to the global queue) so we do not spin on a past
                        // deadline.
                        drop(l);
                        self.run_timers();
                    }
                }
            }
        }
    }

    /// If goroutines wait for I/O and no M is blocked in the poller, this
    /// idle M becomes the poller (Go: the blocking `netpoll(delay)` in
    /// `findRunnable`): it waits in `epoll_wait` until an event, the next
    /// timer, or a wake-up, then takes an idle P if there is work.
    fn poll_network(self: &Arc<Sched>, me: &Arc<MShared>) -> Net {
        if !self.has_netpoll_waiters() {
            return Net::NotPoller;
        }
        {
            let mut l = self.lock.lock();
            if l.shutdown {
                return Net::Exit;
            }
            if l.poller.is_some() || self.stw.load(Ordering::SeqCst) {
                return Net::NotPoller;
            }
            l.poller = Some(me.clone());
        };
        // The closure runs after the poller publishes that it blocks
        // (SeqCst), so a `stop` that set `shutdown` (SeqCst) before that is
        // seen here (then the poll does not block), and one after it sees
        // the flag and writes the eventfd. Checking `shutdown` only under
        // the lock above lost that race: the poller slept in `epoll_wait`
        // forever while `stop` waited to join it (the net tests' hang).
        crate::netpoll::poll_until(|| {
            if self.shutdown.load(Ordering::SeqCst) {
                Some(std::time::Instant::now())
            } else {
                self.next_timer()
            }
        });
        let mut l = self.lock.lock();
        l.poller = None;
        if l.shutdown {
            return Net::Exit;
        }
        drop(l);
        self.run_timers();
        if self.any_work() && !self.stw.load(Ordering::SeqCst) {
            let mut l = self.lock.lock();
            if let Some(p) = self.pidleget(&mut l) {
                return Net::Run(Handoff::Run(p, false));
            }
        }
        Net::Again
    }

    fn clear_sleeper(&self, me: &Arc<MShared>) {
        self.lock.lock().drop_sleeper(me);
    }

    /// Every P created so far (timers may sit on idle or retired Ps).
    fn all_ps(&self) -> impl Iterator<Item = &Arc<PShared>> {
        self.allp.iter().map_while(|p| p.get())
    }

    /// The earliest timer deadline over all Ps, if any.
    fn next_timer(&self) -> Option<std::time::Instant> {
        let n = self
            .all_ps()
            .map(|p| p.timer_next.load(Ordering::SeqCst))
            .min()
            .unwrap_or(u64::MAX);
        (n != u64::MAX).then(|| clock::to_instant(n))
    }

    /// Is a timer due on any P? One load per P when there are no timers.
    pub(crate) fn timers_due(&self) -> bool {
        let mut now = None;
        self.all_ps().any(|p| {
            let n = p.timer_next.load(Ordering::Acquire);
            n != u64::MAX && *now.get_or_insert_with(clock::nanotime) >= n
        })
    }

    fn publish_next(&self, p: &PShared, t: &timer::Timers) {
        // SeqCst: pairs with the poller's flag-then-read (`netpoll::poll_until`).
        p.timer_next
            .store(t.next().unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// Registers a timer on `p`'s heap that wakes `w` at `when` (in
    /// `clock::nanotime` ns); returns its id on that heap.
    pub(crate) fn add_timer(&self, p: &PShared, when: u64, w: Waiter) -> u64 {
        let (id, earliest) = {
            let mut t = p.timers.lock();
            let r = t.add(when, w);
            self.publish_next(p, &t);
            r
        };
        if earliest {
            crate::netpoll::wake_poller();
            let l = self.lock.lock();
            if let Some(s) = &l.sleeper {
                s.recheck();
            } else if let Some(m) = l.midle.last() {
                m.recheck();
            }
        }
        id
    }

    /// Cancels a timer of `p`'s heap that may not have fired yet.
    pub(crate) fn cancel_timer(&self, p: &PShared, id: u64) {
        let mut t = p.timers.lock();
        t.cancel(id);
        self.publish_next(p, &t);
    }

    /// Fires every due timer of every P (wakes its waiter). Must not be
    /// called inside `with_m` (waking readies onto this M's P).
    /// Reads the clock only if some P has a timer, so the schedule loop
    /// can call it every time (one load per P when there are none).
    pub(crate) fn run_timers(self: &Arc<Sched>) -> usize {
        self.run_timers_of(None, None)
    }

    /// Fires the due timers of P `only`, or of every P with `None` (Go:
    /// `checkTimers` on the own P each round of `findRunnable`, other Ps'
    /// only when about to go idle), as of `now` (read here if `None`).
    /// Returns how many goroutines it woke.
    fn run_timers_of(self: &Arc<Sched>, only: Option<usize>, mut now: Option<u64>) -> usize {
        thread_local! {
            /// Reused buffer of due waiters (no allocation per batch).
            static DUE: std::cell::Cell<Vec<(u64, Waiter)>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut due = DUE.take();
        let ps = self
            .all_ps()
            .enumerate()
            .filter(|(i, _)| only.is_none_or(|o| o == *i))
            .map(|(_, p)| p);
        for p in ps {
            let n = p.timer_next.load(Ordering::Acquire);
            if n == u64::MAX {
                continue;
            }
            let now = *now.get_or_insert_with(clock::nanotime);
            if n > now {
                continue;
            }
            let mut t = p.timers.lock();
            t.take_due(now, &mut due);
            self.publish_next(p, &t);
        }
        // The latest one goes to `runnext` and runs next, as each of Go's
        // `goready`s leaves it: a timer that fires on time wakes its
        // goroutine on time. The rest of the batch (timers that fired
        // late: the Ps are behind) goes, in deadline order, to the back of
        // the global queue, which every P serves first come, first served:
        // with 10,000 sleepers x 1 ms that halves the tail against keeping
        // up to four on this P's queue (p99 35-39 -> 19-26 ms, max 49-94 ->
        // 28-52 ms, wake-ups/s the same within noise; all on this P's
        // queue: p99 41-50 ms; docs/design/timers.md).
        for (when, w) in &due {
            w.note_timer_fired(*when);
        }
        let woken = due.len();
        let last = due.pop();
        let mut queued = self.timer_backlog.load(Ordering::Relaxed) == BACKLOG_QUEUED;
        if !due.is_empty() {
            let rest = due.len();
            if !queued {
                self.timer_backlog.store(BACKLOG_QUEUED, Ordering::Relaxed);
                queued = true;
            }
            for (_, w) in due.drain(..) {
                w.wake_global(self);
            }
            // Enough Ms to drain it.
            for _ in 0..rest.min(self.gomaxprocs.load(Ordering::Relaxed)) {
                self.wakep();
            }
        }
        if let Some((_, w)) = last {
            if queued {
                m::try_with_m(|m| {
                    if let Some(p) = m.p() {
                        p.runq.kick_runnext(&p.shared.q, &self.injector);
                    }
                });
            }
            w.wake();
        }
        DUE.set(due);
        woken
    }

    /// Has any running P (or the global queue) work? Used by an M that just
    /// went idle, after its fence.
    fn any_work(&self) -> bool {
        if !self.injector.is_empty() || self.timers_due() {
            return true;
        }
        let n = self.gomaxprocs.load(Ordering::SeqCst);
        (0..n).any(|i| self.allp[i].get().is_some_and(|s| !s.q.is_empty()))
    }

    /// Steals from other Ps (Go: `stealWork`). 4 passes; `runnext` only on
    /// the last.
    fn steal_work(&self, p: &mut P) -> Option<GRef> {
        let n = self.gomaxprocs.load(Ordering::Relaxed).min(MAX_GOMAXPROCS);
        if p.order.count() as usize != n {
            p.order = RandomOrder::new(n as u32);
        }
        const STEAL_TRIES: usize = 4;
        for pass in 0..STEAL_TRIES {
            let last = pass == STEAL_TRIES - 1;
            let r = p.rng.next_u32();
            for i in p.order.start(r) {
                let i = i as usize;
                if i == p.id {
                    continue;
                }
                let Some(v) = self.allp[i].get() else {
                    continue;
                };
                if v.status.load(Ordering::Relaxed) != P_RUNNING {
                    continue;
                }
                if let Some(g) = p.runq.steal_from(&v.q) {
                    return Some(g);
                }
                if last && v.q.has_runnext() {
                    // Go backs off before taking a running victim's runnext:
                    // it is usually about to run it (a channel hand-off
                    // takes ~50 ns), so stealing it would split the pair.
                    // Like Go's `usleep(3)` this *sleeps*: the thief stays
                    // counted as spinning, so `wakep` calls on the victim's
                    // side return at once instead of waking Ms, and it does
                    // not burn the CPU the pair may need. Go's 3 µs sleep
                    // lasts ~50 µs in practice (Linux's default timer slack
                    // stretches it); our Ms run without slack (`m_main`),
                    // so the length is written out: with a real 3 µs the
                    // thief split the pair (unbuffered 1×1 throughput at
                    // P=2 halved, 3.9 → 1.9 M msgs/s).
                    std::thread::sleep(RUNNEXT_STEAL_BACKOFF);
                    if let Some(g) = v.q.steal_runnext() {
                        return Some(g);
                    }
                }
            }
        }
        None
    }

    /// One G from the global queue (fairness tick).
    fn global_one(&self) -> Option<GRef> {
        runq::settle(usize::MAX, || self.injector.steal())
    }

    /// `set_gomaxprocs`: returns the previous value. `n` must be in
    /// `1..=MAX_GOMAXPROCS`.
    pub(crate) fn set_gomaxprocs(self: &Arc<Sched>, n: usize) -> usize {
        let old;
        {
            let mut l = self.lock.lock();
            old = self.gomaxprocs.swap(n, Ordering::SeqCst);
            if n < old {
                // Retire idle Ps beyond the new count at once; running ones
                // retire themselves in find_runnable.
                let mut keep = Vec::with_capacity(l.pidle.len());
                for p in std::mem::take(&mut l.pidle) {
                    if p.id >= n {
                        self.npidle.fetch_sub(1, Ordering::SeqCst);
                        p.shared.status.store(P_RETIRED, Ordering::Relaxed);
                        l.retired.push(p);
                    } else {
                        keep.push(p);
                    }
                }
                l.pidle = keep;
            } else if n > old {
                for id in old..n {
                    // A retired P comes back; a running P that has not yet
                    // noticed its retirement keeps running (it re-checks).
                    if let Some(i) = l.retired.iter().position(|p| p.id == id) {
                        let p = l.retired.swap_remove(i);
                        self.pidleput(&mut l, p);
                    } else if self.allp[id].get().is_none() {
                        let p = self.make_p(id);
                        self.pidleput(&mut l, p);
                    }
                }
            }
        }
        if n > old {
            self.wakep();
        }
        old
    }

    /// Stops the runtime: every M exits at its next schedule point; returns
    /// when all have. Gs that did not finish are abandoned (see `run`).
    pub(crate) fn stop(self: &Arc<Sched>) {
        self.sysmon.stop();
        let idle = {
            let mut l = self.lock.lock();
            l.shutdown = true;
            self.shutdown.store(true, Ordering::SeqCst);
            // Frozen Ms waiting for a P wait no more (the loop below thaws
            // them).
            for (m, _) in l.pwait.drain(..) {
                m.waiting_p.store(false, Ordering::Relaxed);
            }
            std::mem::take(&mut l.midle)
        };
        // Every M a hog signal froze resumes without a P and stops at its
        // next schedule point: those queued on `pwait`, those frozen after
        // sysmon's last round (sysmon queues a frozen M one round later,
        // and it has stopped), and those a signal sysmon sent before
        // stopping has yet to freeze: `freeze` re-checks `no_freeze` after
        // publishing FROZEN (SeqCst on both sides, so one of us sees the
        // other). Thawing only the queued ones, the join below waited for
        // ever on the others (a hang under load: chan_go_ports beside two
        // CPU hogs hung 4 runs in 100 in `stop`'s join, the M frozen in
        // `freeze` inside goroutines_chain_10000).
        for m in lock_ok(&self.allm).iter() {
            m.no_freeze.store(true, Ordering::SeqCst);
            if !m.frozen_for_stop.load(Ordering::Relaxed) {
                preempt::thaw(m);
            }
        }
        for m in idle {
            m.wake(Handoff::Exit);
        }
        for m in lock_ok(&self.allm).iter() {
            m.wake_if_empty(Handoff::Exit);
        }
        crate::netpoll::wake_poller();
        loop {
            let threads = std::mem::take(&mut self.lock.lock().threads);
            if threads.is_empty() {
                break;
            }
            for t in threads {
                let _ = t.join();
            }
        }
        self.abandon_all();
    }

    /// After every M exited: drop never-started goroutines, leak suspended
    /// ones, and tell their joiners.
    fn abandon_all(&self) {
        let mut toks = Vec::new();
        {
            let mut l = self.lock.lock();
            let mut ps: Vec<Box<P>> = l.pidle.drain(..).collect();
            ps.append(&mut l.retired);
            for p in &ps {
                p.runq.drain(&p.shared.q, &mut toks);
            }
            // Dropping the Ps flushes their stack caches; free Gs are idle.
        }
        while let Some(g) = self.global_one() {
            toks.push(g);
        }
        let allgs = std::mem::take(&mut *lock_ok(&self.allgs));
        for g in &allgs {
            if let Some(t) = g.claim_parked() {
                toks.push(t);
            }
        }
        for mut t in toks {
            let e = t.exec();
            let task = e
                .entry
                .take()
                .or_else(|| e.watch.as_ref().and_then(|w| w.upgrade()));
            e.watch = None;
            drop(e.coro.take()); // suspended: `Goroutine::drop` leaks it
            t.set_dead();
            if let Some(task) = task {
                task.abandon();
                let after = task.take_after();
                drop(task);
                if let Some(a) = after {
                    a.fire();
                }
            }
        }
        lock_ok(&self.gfree).clear();
    }
}

/// Runs the scheduler loop's decision step with this M's P.
impl Sched {
    /// `findRunnable`. Returns `None` when the runtime stops.
    pub(crate) fn find_runnable(self: &Arc<Sched>, me: &Arc<MShared>) -> Option<(GRef, bool)> {
        // A clock read left by the goroutine that just parked, if any.
        let mut fresh = clock::take_fresh();
        if let Some(found) = self.find_local(me, &mut fresh) {
            return Some(found);
        }
        self.find_runnable_slow(me, fresh)
    }

    /// The common case of [`Sched::find_runnable`], in one visit to the M
    /// and none of the slow loop's bookkeeping: this M holds a P and is not
    /// spinning, no stop-the-world or shutdown is under way, none of the
    /// P's timers is due, it is not the global queue's turn, and the P's
    /// own queue (`runnext` first) has a goroutine. `None`: take the slow
    /// loop, which checks everything again (with `fresh`, the clock
    /// reading, if one was made).
    #[inline(always)]
    fn find_local(&self, me: &MShared, fresh: &mut Option<u64>) -> Option<(GRef, bool)> {
        if self.shutdown.load(Ordering::Acquire)
            || !me.p.is_some()
            || self.stw.load(Ordering::SeqCst)
        {
            return None;
        }
        let found = m::with_m(|m| {
            if m.spinning {
                return None;
            }
            let p = m.p()?;
            if p.id >= self.gomaxprocs.load(Ordering::SeqCst) {
                return None;
            }
            let next = p.shared.timer_next.load(Ordering::Acquire);
            if next != u64::MAX {
                let now = *fresh.get_or_insert_with(clock::nanotime);
                if next <= now {
                    return None;
                }
            }
            let backlog = self.timer_backlog.load(Ordering::Relaxed) != 0;
            if p.schedtick % 61 == 0 || (backlog && p.backlog_wait == 0) {
                return None;
            }
            if backlog {
                p.backlog_wait -= 1;
            }
            p.runq.get(&p.shared.q)
        })?;
        let (g, inherit) = found;
        Some((self.unless_slice_expired(g, inherit)?, inherit))
    }

    /// `g`, unless it inherits a time slice (`runnext`) that sysmon found
    /// expired: a chain of goroutines was handing the slice on through
    /// `runnext` (a ping-pong pair). Go preempts the running one into the
    /// global queue at its next call, which breaks the chain; ours parked
    /// at a channel operation instead, so break it here: the partner goes
    /// to the back of the global queue (`None`) and the P takes other work
    /// first.
    #[inline(always)]
    fn unless_slice_expired(&self, g: GRef, inherit: bool) -> Option<GRef> {
        if inherit && preempt::preempt_requested() {
            preempt::clear_preempt();
            self.injector.push(g);
            return None;
        }
        Some(g)
    }

    /// [`Sched::find_runnable`] past its fast path.
    #[inline(never)]
    fn find_runnable_slow(
        self: &Arc<Sched>,
        me: &Arc<MShared>,
        mut first_fresh: Option<u64>,
    ) -> Option<(GRef, bool)> {
        loop {
            if self.shutdown.load(Ordering::Acquire) {
                return None;
            }
            // No P (lost in a blocking call, handed to a frozen M, or given
            // up below): wait until handed one.
            if !me.p.is_some() {
                match self.stopm(me)? {
                    Handoff::Run(p, spinning) => m::with_m(|m| {
                        m.put_p(p);
                        m.set_spinning(spinning);
                    }),
                    Handoff::RunLocked(p, g) => {
                        m::with_m(|m| m.put_p(p));
                        return Some((g, false));
                    }
                    Handoff::Exit | Handoff::Recheck => unreachable!("stopm returns a P"),
                }
                continue;
            }
            if self.stw.load(Ordering::SeqCst) {
                // The world is stopping: park with no P.
                let p = m::with_m(|m| m.take_p()).expect("P");
                {
                    let mut l = self.lock.lock();
                    self.pidleput(&mut l, p);
                }
                self.drop_spinning();
                continue;
            }
            let mut became_spinning = false;
            let mut was_spinning = false;
            // A clock read left by the goroutine that just parked (taken by
            // `find_runnable`, for the first round only), if any.
            let fresh = first_fresh.take().or_else(clock::take_fresh);
            let step = m::with_m(|m| {
                let spinning = m.spinning;
                was_spinning = spinning;
                let p = m.p().expect("gort: M without P in find_runnable");
                if p.id >= self.gomaxprocs.load(Ordering::SeqCst) {
                    return Step::Retire;
                }
                // This P's due timers (one load when it has none; other
                // Ps' are looked at before going idle, below).
                let next = p.shared.timer_next.load(Ordering::Acquire);
                if next != u64::MAX {
                    let now = fresh.unwrap_or_else(clock::nanotime);
                    if next <= now {
                        return Step::Timers(p.id, now);
                    }
                }
                // A backlog turn: late timers wait and `P::backlog_wait` ran
                // out (docs/design/timers.md, "Late timers"). One load
                // decides and counts: a load and a store, not an RMW, so a
                // racing update only shifts a turn (`Sched::timer_backlog`).
                let mut owed = self.timer_backlog.load(Ordering::Relaxed);
                if owed != 0 && p.backlog_wait == 0 {
                    if owed == BACKLOG_QUEUED && self.injector.is_empty() {
                        owed = runq::STEAL_MAX;
                    }
                    p.backlog_wait = BACKLOG_TURN - 1;
                    let g = p.runq.get_local();
                    if let Some(g) = g.or_else(|| p.runq.refill_from(&self.injector)) {
                        if owed != BACKLOG_QUEUED {
                            self.timer_backlog.store(owed - 1, Ordering::Relaxed);
                        }
                        return Step::Found(g, false);
                    }
                    self.timer_backlog.store(0, Ordering::Relaxed);
                }
                if p.schedtick % 61 == 0
                    && let Some(g) = self.global_one()
                {
                    return Step::Found(g, false);
                }
                if let Some((g, inherit)) = p.runq.get(&p.shared.q) {
                    return Step::Found(g, inherit);
                }
                if let Some(g) = p.runq.refill_from(&self.injector) {
                    return Step::Found(g, false);
                }
                let busy = self
                    .gomaxprocs
                    .load(Ordering::SeqCst)
                    .saturating_sub(self.npidle.load(Ordering::SeqCst));
                if spinning || 2 * self.nmspinning.load(Ordering::SeqCst) < busy {
                    if !spinning {
                        self.nmspinning.fetch_add(1, Ordering::SeqCst);
                        became_spinning = true;
                    }
                    if let Some(g) = self.steal_work(p) {
                        return Step::Found(g, false);
                    }
                }
                Step::Idle
            });
            if became_spinning {
                m::with_m(|m| m.set_spinning(true));
            }
            match step {
                Step::Found(g, inherit) => {
                    let Some(g) = self.unless_slice_expired(g, inherit) else {
                        continue;
                    };
                    // Only a spinning M has a count to give back (one
                    // thread-local visit less per switch otherwise).
                    if was_spinning || became_spinning {
                        self.reset_spinning();
                    }
                    return Some((g, inherit));
                }
                Step::Retire => {
                    // `pidleput` moves the P's goroutines to the global queue.
                    let p = m::with_m(|m| m.take_p()).expect("P");
                    {
                        // Re-check under the lock: GOMAXPROCS may have grown
                        // back since we looked, and `set_gomaxprocs` only
                        // revives Ps it finds idle or retired (issue2: a P
                        // lost here left the runtime on one P).
                        let mut l = self.lock.lock();
                        self.pidleput(&mut l, p);
                    }
                    self.drop_spinning();
                    self.wakep();
                }
                Step::Timers(id, now) => {
                    self.run_timers_of(Some(id), Some(now));
                }
                Step::Idle => {
                    // Timers due on other Ps (Go steals them in `stealWork`).
                    if self.run_timers() > 0 {
                        continue;
                    }
                    // Go polls the network before giving up its P.
                    if self.has_netpoll_waiters()
                        && crate::netpoll::poll(Some(std::time::Duration::ZERO)) > 0
                    {
                        continue;
                    }
                    let p = m::with_m(|m| m.take_p()).expect("P");
                    {
                        let mut l = self.lock.lock();
                        if !self.injector.is_empty() && !l.shutdown {
                            // Go checks the global queue under sched.lock
                            // before giving up the P.
                            drop(l);
                            m::with_m(|m| m.put_p(p));
                            continue;
                        }
                        self.pidleput(&mut l, p);
                    }
                    self.drop_spinning();
                    // StoreLoad: pairs with the fence in `wakep`.
                    fence(Ordering::SeqCst);
                    if self.any_work() {
                        let got = {
                            let mut l = self.lock.lock();
                            if l.shutdown {
                                None
                            } else {
                                self.pidleget(&mut l)
                            }
                        };
                        if let Some(p) = got {
                            m::with_m(|m| {
                                m.put_p(p);
                                m.set_spinning(true);
                            });
                            self.nmspinning.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                    }
                }
            }
        }
    }

    /// This M stops spinning because it found work (Go: `resetspinning`):
    /// if it was the last spinner, start another.
    fn reset_spinning(self: &Arc<Sched>) {
        let was = m::with_m(|m| m.set_spinning(false));
        if was {
            let left = self.nmspinning.fetch_sub(1, Ordering::SeqCst) - 1;
            if left == 0 {
                self.wakep();
            }
        }
    }

    /// This M stops spinning without work.
    fn drop_spinning(&self) {
        let was = m::with_m(|m| m.set_spinning(false));
        if was {
            self.nmspinning.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
