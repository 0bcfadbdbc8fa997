//! The preemption signal and everything it touches (Go: `preempt.go`,
//! `signal_unix.go`'s `doSigPreempt`, `m.locks`).
//!
//! This module owns the `unsafe` of preemption: the SIGURG handler, the
//! per-M thread-local block it reads, `tgkill`, futex waits, thread CPU
//! clocks and the copy of an interrupted thread's registers.
//!
//! # The handler never switches goroutines
//!
//! A Rust library cannot tell whether an interrupted instruction is inside
//! malloc, a `thread_local!` access or a re-entrant lock, so the handler
//! never resumes another goroutine on the interrupted thread and never
//! migrates the interrupted one. It can only:
//!
//! - **release** the M's P (`M_RUN → M_RELEASED`): the thread goes on (or
//!   stays blocked in the kernel); sysmon takes the P and gives it to another
//!   M. The thread must get a P back before it runs goroutine code again in
//!   the runtime (see `m.rs`), and sysmon freezes it if it keeps computing
//!   without one.
//! - **freeze** the thread: save the interrupted registers into the M's
//!   [`MShared`] block, publish `frozen = FROZEN`, and wait on a futex until
//!   someone thaws it. While frozen the thread runs no code at all, so a
//!   stop-the-world can read its stack and registers.
//!
//! Both happen only when the thread runs goroutine code outside the
//! runtime: `locks == 0` (Go's `m.locks`; every runtime critical section
//! holds a [`NoPreempt`]) and the M's state says a goroutine is on it. A
//! request that arrives inside the runtime is deferred: a stop request is
//! re-raised when the section ends; a hog request leaves the voluntary
//! preempt flag set, which the goroutine honours at its next safe point.
//!
//! Everything the handler does is async-signal-safe: atomics, thread-local
//! cells initialised at compile time, `futex(2)`, `tgkill(2)`.

use super::MShared;
use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering, compiler_fence};

/// The preemption signal (Go's `sigPreempt`): passed through by debuggers,
/// unused by libc, harmless when spurious.
pub(crate) const SIGPREEMPT: libc::c_int = libc::SIGURG;

/// Requests (bits of `MShared::request`), set by sysmon or a stopper
/// before it signals the M.
pub(crate) const REQ_RELEASE: u32 = 1;
/// Freeze until given a P (a hog that ignored the preempt flag, or a thread
/// running goroutine code without a P).
pub(crate) const REQ_HOG: u32 = 2;
/// Freeze until the world restarts.
pub(crate) const REQ_STOP: u32 = 4;

/// M states (`MShared::state`). Ownership of the M's P follows the state:
/// the M owns it in `M_IDLE` (scheduler code) and `M_RUN`; in `M_SYSCALL`
/// and `M_RELEASED` whoever wins the CAS out of that state owns it; in
/// `M_LOST` the M has none.
pub(crate) const M_IDLE: u32 = 0;
pub(crate) const M_RUN: u32 = 1;
pub(crate) const M_SYSCALL: u32 = 2;
pub(crate) const M_RELEASED: u32 = 3;
pub(crate) const M_LOST: u32 = 4;

/// `MShared::frozen` values.
pub(crate) const THAWED: u32 = 0;
pub(crate) const FROZEN: u32 = 1;
pub(crate) const THAW: u32 = 2;

/// Registers saved from a frozen thread's signal context.
#[cfg(target_arch = "x86_64")]
pub(crate) const NREGS: usize = 23; // gregs[NGREG]
#[cfg(target_arch = "aarch64")]
pub(crate) const NREGS: usize = 34; // x0..x30, sp, pc, pstate
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) const NREGS: usize = 0;

/// Per-M state the handler reads: compile-time initialised, no destructor,
/// so touching it from a signal handler never allocates.
struct MSig {
    /// Runtime critical sections entered and not left (Go's `m.locks`).
    locks: Cell<u32>,
    /// Requests that arrived while `locks > 0`.
    deferred: Cell<u32>,
    /// The voluntary preempt flag (Go's `gp.preempt`), per M: sysmon sets it
    /// through the pointer in `MShared::preempt_flag`; safe points clear it.
    preempt: AtomicBool,
    /// This M's shared block (null on threads that are not Ms).
    m: Cell<*const MShared>,
}

thread_local! {
    static SIG: MSig = const {
        MSig {
            locks: Cell::new(0),
            deferred: Cell::new(0),
            preempt: AtomicBool::new(false),
            m: Cell::new(std::ptr::null()),
        }
    };
}

/// Registers this thread as the M `m` (called once at M start; `m` must
/// outlive the thread's use of it: the M keeps its `Arc` until it exits and
/// calls [`unregister_m`] first). Returns the address of this thread's
/// preempt flag for `MShared::preempt_flag`.
pub(crate) fn register_m(m: &MShared) -> *const AtomicBool {
    SIG.with(|s| {
        s.m.set(m as *const MShared);
        s.locks.set(1); // scheduler code is runtime code
        &s.preempt as *const AtomicBool
    })
}

/// The thread stops being an M.
pub(crate) fn unregister_m() {
    SIG.with(|s| s.m.set(std::ptr::null()));
}

/// Clears this thread's signal mask for [`SIGPREEMPT`] (a thread created by
/// a thread that blocked it inherits the block; Go's `minitSignalMask`).
pub(crate) fn unblock_on_this_thread() {
    // SAFETY: an all-zero sigset_t is valid storage for sigemptyset.
    let mut set: libc::sigset_t = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: `set` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: as above; SIGPREEMPT is a valid signal number.
    unsafe { libc::sigaddset(&mut set, SIGPREEMPT) };
    // SAFETY: a valid set; pthread_sigmask changes only this thread's mask.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
}

// ------------------------------------------------------------ safe points

/// Is the voluntary preempt flag of this thread's M set? One thread-local
/// load and a branch on the fast path.
///
/// Never inlined, like every accessor of a runtime thread-local: inlined
/// into a caller that also switches goroutines (a loop of channel sends),
/// LLVM may compute `SIG`'s address once and keep using the old M's block
/// after the goroutine migrates (llvm/llvm-project#98479;
/// docs/design/soundness.md).
#[inline(never)]
pub(crate) fn preempt_requested() -> bool {
    SIG.with(|s| s.preempt.load(Ordering::Relaxed))
}

/// Clears this thread's preempt flag (a new time slice starts, or the
/// goroutine is yielding).
#[inline(never)] // a thread-local accessor (see `preempt_requested`)
pub(crate) fn clear_preempt() {
    SIG.with(|s| s.preempt.store(false, Ordering::Relaxed));
}

/// A runtime critical section (Go: `acquirem`): while one is alive on this
/// thread the handler neither freezes the thread nor releases its P.
/// Dropping the last one honours a stop request that arrived meanwhile.
#[derive(Debug)]
pub(crate) struct NoPreempt(());

impl NoPreempt {
    // Not inlined: a thread-local accessor (see `preempt_requested`); a
    // caller may park between two sections (`netpoll`'s waits do).
    #[inline(never)]
    pub(crate) fn new() -> NoPreempt {
        enter_section();
        NoPreempt(())
    }
}

impl Drop for NoPreempt {
    #[inline(never)] // a thread-local accessor (see `preempt_requested`)
    fn drop(&mut self) {
        leave_section();
    }
}

/// [`NoPreempt`] with its thread-local accesses inlined, for the two
/// callers that are themselves `#[inline(never)]` and never switch
/// goroutines: `m::with_m` and `m::try_with_m` (checked by
/// `tests/tls_accessors.rs`). Every channel operation and every wake-up
/// goes through them: with the out-of-line `NoPreempt` there (and the op
/// pool's per-op `is_current` call) unbuffered channels lost 6–15 %
/// against Go; with this, P=1 is back at parity (docs/performance.md).
#[derive(Debug)]
pub(crate) struct NoPreemptHere(());

impl NoPreemptHere {
    #[inline(always)]
    pub(crate) fn new() -> NoPreemptHere {
        enter_section();
        NoPreemptHere(())
    }
}

impl Drop for NoPreemptHere {
    #[inline(always)]
    fn drop(&mut self) {
        leave_section();
    }
}

/// Only inlined into `#[inline(never)]` functions (see [`NoPreemptHere`]).
#[inline(always)]
fn enter_section() {
    SIG.with(|s| s.locks.set(s.locks.get() + 1));
    // The section's accesses may not move above the increment (the
    // handler runs on this thread: a compiler fence is enough).
    compiler_fence(Ordering::SeqCst);
}

/// Only inlined into `#[inline(never)]` functions (see [`NoPreemptHere`]).
#[inline(always)]
fn leave_section() {
    compiler_fence(Ordering::SeqCst);
    let redo = SIG.with(|s| {
        let n = s.locks.get() - 1;
        s.locks.set(n);
        compiler_fence(Ordering::SeqCst);
        if n == 0 && s.deferred.get() != 0 {
            s.deferred.replace(0)
        } else {
            0
        }
    });
    if redo & REQ_STOP != 0 {
        raise_self(REQ_STOP);
    }
}

/// Sets this thread's runtime depth (the M does so around running a
/// goroutine: 0 while user code runs, 1 in the scheduler). A deferred stop
/// request is dropped: the scheduler checks for stop-the-world itself.
#[inline(never)] // a thread-local accessor (see `preempt_requested`)
pub(crate) fn set_locks(n: u32) {
    set_locks_inline(n);
}

/// [`set_locks`], inlined: only into `#[inline(never)]` callers (`set_locks`
/// and `g::enter`; tests/tls_accessors.rs checks it).
#[inline(always)]
pub(crate) fn set_locks_inline(n: u32) {
    compiler_fence(Ordering::SeqCst);
    SIG.with(|s| {
        s.locks.set(n);
        s.deferred.set(0);
    });
    compiler_fence(Ordering::SeqCst);
}

/// A stop-the-world is in progress (mirror of `Sched::stw` the handler can
/// read: one runtime runs per process). A stop request that arrives after
/// the world restarted is ignored.
static STW_ACTIVE: AtomicBool = AtomicBool::new(false);

/// Publishes the start (`true`) or end of a stop-the-world to handlers.
pub(crate) fn set_stw_active(on: bool) {
    STW_ACTIVE.store(on, Ordering::SeqCst);
}

/// Re-raises `req` against this thread (a deferred stop, honoured now that
/// the runtime section ended).
#[inline(never)] // a thread-local accessor (see `preempt_requested`)
fn raise_self(req: u32) {
    let m = SIG.with(|s| s.m.get());
    if m.is_null() {
        return;
    }
    // SAFETY: `m` is this thread's registered MShared, alive while the M runs.
    let m = unsafe { &*m };
    m.request.fetch_or(req, Ordering::AcqRel);
    let pid = std::process::id() as libc::pid_t;
    let tid = m.tid.load(Ordering::Relaxed);
    // SAFETY: tgkill on our own thread id with a signal we handle.
    unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, SIGPREEMPT) };
}

// ------------------------------------------------------------ signalling

/// Sends `req` to M `m` (Go: `preemptM`). One signal in flight per M
/// (`signal_pending`), so repeated requests do not storm the thread.
/// Returns whether a signal was sent.
pub(crate) fn signal_m(m: &MShared, req: u32) -> bool {
    m.request.fetch_or(req, Ordering::AcqRel);
    if m.signal_pending.swap(true, Ordering::AcqRel) {
        return false;
    }
    let tid = m.tid.load(Ordering::Acquire);
    if tid == 0 {
        m.signal_pending.store(false, Ordering::Release);
        return false;
    }
    let pid = std::process::id() as libc::pid_t;
    // SAFETY: tgkill(2) with our pid and the tid of a live M (Ms are only
    // signalled while registered in `allm`, and deregister before exiting).
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, SIGPREEMPT) };
    if rc != 0 {
        m.signal_pending.store(false, Ordering::Release);
        return false;
    }
    true
}

/// Sets M `m`'s voluntary preempt flag.
pub(crate) fn set_preempt_flag(m: &MShared) {
    let p = m.preempt_flag.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: `preempt_flag` points at the M thread's `SIG.preempt`,
        // valid while the M is registered in `allm`; callers hold the
        // `allm` lock (so the M cannot deregister and exit meanwhile).
        unsafe { &*p }.store(true, Ordering::Relaxed);
    }
}

/// Wakes a frozen M: it returns from its handler. No effect on an M that
/// is not frozen.
pub(crate) fn thaw(m: &MShared) {
    // AcqRel: what we gave it (a P) is visible to it.
    if m.frozen
        .compare_exchange(FROZEN, THAW, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        futex_wake(&m.frozen);
    }
}

fn futex_wait(word: &AtomicU32, val: u32) {
    // SAFETY: FUTEX_WAIT on a valid, aligned u32 we keep alive; returns on
    // wake, mismatch or signal.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            val,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a valid, aligned u32.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        )
    };
}

// ------------------------------------------------------------ thread clocks

/// This thread's kernel id and CPU-time clock, for `MShared`.
pub(crate) fn this_thread_ids() -> (i32, libc::clockid_t) {
    // SAFETY: gettid(2) cannot fail.
    let tid = unsafe { libc::gettid() };
    let mut clk: libc::clockid_t = 0;
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    // SAFETY: `clk` is valid storage; `me` is this live thread.
    let rc = unsafe { libc::pthread_getcpuclockid(me, &mut clk) };
    (tid, if rc == 0 { clk } else { -1 })
}

/// CPU time (ns) consumed so far by the thread with CPU clock `clk`, or
/// `None` if it cannot be read.
pub(crate) fn thread_cpu_ns(clk: libc::clockid_t) -> Option<u64> {
    if clk == -1 {
        return None;
    }
    clock_ns(clk)
}

/// Clock `clk` in ns (one vDSO call for `CLOCK_MONOTONIC`; `clock::nanotime`
/// reads it here, without the `nix` wrapper's checks), or `None` if `clk`
/// cannot be read.
#[inline]
pub(crate) fn clock_ns(clk: libc::clockid_t) -> Option<u64> {
    // SAFETY: all-zero is a valid timespec to fill.
    let mut ts: libc::timespec = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: valid out-pointer; an invalid clock id makes it fail (EINVAL).
    let rc = unsafe { libc::clock_gettime(clk, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

// ------------------------------------------------------------ the handler

static INSTALL: Once = Once::new();
static OLD: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());

/// Executable segments of the main program (`[lo, hi)` pairs; unused slots
/// are 0). The handler freezes a thread only when the interrupted PC lies
/// in one: code in shared libraries — libc's malloc and pthread internals
/// above all — may hold process-wide locks that the scheduler itself needs,
/// so a thread interrupted there is left running and asked again later
/// (Go likewise never preempts non-Go code).
static TEXT: [AtomicUsize; 16] = [const { AtomicUsize::new(0) }; 16];

/// Records the main program's executable segments in [`TEXT`].
fn find_main_text() {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info struct.
        let info = unsafe { &*info };
        // SAFETY: `data` is our `usize` counter of slots used.
        let used = unsafe { &mut *(data as *mut usize) };
        // SAFETY: `dlpi_name` is a NUL-terminated string or null.
        let name_empty = info.dlpi_name.is_null() || unsafe { *info.dlpi_name } == 0;
        if !name_empty {
            return 1; // the main program comes first; stop after it
        }
        for i in 0..info.dlpi_phnum as usize {
            // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers.
            let php = unsafe { info.dlpi_phdr.add(i) };
            // SAFETY: `php` is one of those headers.
            let ph = unsafe { &*php };
            if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 && *used + 2 <= 16 {
                let lo = info.dlpi_addr as usize + ph.p_vaddr as usize;
                TEXT[*used].store(lo, Ordering::Relaxed);
                TEXT[*used + 1].store(lo + ph.p_memsz as usize, Ordering::Relaxed);
                *used += 2;
            }
        }
        1
    }
    let mut used = 0usize;
    // SAFETY: the callback only reads the headers it is given and writes
    // our counter and the TEXT atomics.
    unsafe { libc::dl_iterate_phdr(Some(each), (&mut used as *mut usize).cast()) };
}

/// Is `pc` in the main program's code?
fn in_main_text(pc: usize) -> bool {
    let mut i = 0;
    while i + 1 < TEXT.len() {
        let lo = TEXT[i].load(Ordering::Relaxed);
        if lo == 0 {
            return false;
        }
        if pc >= lo && pc < TEXT[i + 1].load(Ordering::Relaxed) {
            return true;
        }
        i += 2;
    }
    false
}

/// Installs the SIGURG handler (idempotent) with `SA_SIGINFO | SA_ONSTACK |
/// SA_RESTART`, keeping the application's previous handler to chain to.
pub(crate) fn install_handler() {
    INSTALL.call_once(|| {
        find_main_text();
        let old: &'static mut libc::sigaction =
            // SAFETY: all-zero bytes are a valid `sigaction`.
            Box::leak(Box::new(unsafe { MaybeUninit::zeroed().assume_init() }));
        // SAFETY: as above.
        let mut new: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
        new.sa_sigaction = on_signal as *const () as usize;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
        // SAFETY: `new.sa_mask` is a valid sigset_t to initialise.
        unsafe { libc::sigemptyset(&mut new.sa_mask) };
        OLD.store(old, Ordering::Release); // Release: pairs with Acquire in chain
        // SAFETY: valid pointers to a new action and storage for the old one.
        let rc = unsafe { libc::sigaction(SIGPREEMPT, &new, old) };
        assert_eq!(rc, 0, "gort: sigaction(SIGURG) failed");
    });
}

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let errno = Some(errno_get());
    let (mp, locks) = SIG.with(|s| (s.m.get(), s.locks.get()));
    if mp.is_null() {
        chain(sig, info, ctx);
        return;
    }
    // SAFETY: a registered M's block outlives its registration.
    let m = unsafe { &*mp };
    m.signal_pending.store(false, Ordering::Release);
    let req = m.request.swap(0, Ordering::AcqRel);
    if req == 0 {
        // Not ours (or a request already served): the application's.
        chain(sig, info, ctx);
        restore_errno(errno);
        return;
    }
    let state = m.state.load(Ordering::Acquire);
    if state == M_IDLE {
        // Scheduler code: it checks for stop-the-world itself.
        restore_errno(errno);
        return;
    }
    if locks > 0 {
        SIG.with(|s| s.deferred.set(s.deferred.get() | (req & REQ_STOP)));
        restore_errno(errno);
        return;
    }
    let stop = req & REQ_STOP != 0 && STW_ACTIVE.load(Ordering::SeqCst);
    if req & REQ_HOG != 0 && !stop && !in_main_text(interrupted_pc(ctx)) {
        // A hog inside a shared library (malloc, pthread, the vDSO) may hold
        // a lock that the Ms which take over its P need: leave it running;
        // sysmon asks again. (A stop freezes it anywhere: while the world is
        // stopped nothing needs those locks, and a thread blocked in a
        // system call — a futex wait, a read — must be stoppable.)
        if state == M_RUN {
            let _ =
                m.state
                    .compare_exchange(M_RUN, M_RELEASED, Ordering::AcqRel, Ordering::Acquire);
        }
        restore_errno(errno);
        return;
    }
    if req & (REQ_RELEASE | REQ_HOG) != 0 && state == M_RUN {
        let _ = m
            .state
            .compare_exchange(M_RUN, M_RELEASED, Ordering::AcqRel, Ordering::Acquire);
    }
    if req & REQ_HOG != 0 || stop {
        freeze(m, stop, ctx);
    }
    restore_errno(errno);
}

/// Saves the interrupted context and waits until thawed.
fn freeze(m: &MShared, stop: bool, ctx: *mut libc::c_void) {
    save_regs(m, ctx);
    m.frozen_for_stop.store(stop, Ordering::Relaxed);
    m.frozen.store(FROZEN, Ordering::SeqCst); // also Release: the saved registers
    // Whoever would thaw us may have looked before we published FROZEN:
    // a stop-the-world that ended meanwhile (pairs with the store-then-thaw
    // in `start`), or, for a hog freeze, the runtime's stop (pairs with
    // the `no_freeze` store-then-thaw in `Sched::stop`). Check again after
    // publishing; SeqCst on both sides, so one of us sees the other.
    let missed = if stop {
        !STW_ACTIVE.load(Ordering::SeqCst)
    } else {
        m.no_freeze.load(Ordering::SeqCst)
    };
    if missed {
        let _ = m
            .frozen
            .compare_exchange(FROZEN, THAWED, Ordering::AcqRel, Ordering::Acquire);
    }
    loop {
        let f = m.frozen.load(Ordering::Acquire);
        if f != FROZEN {
            break;
        }
        futex_wait(&m.frozen, FROZEN);
    }
    m.frozen.store(THAWED, Ordering::Release);
}

fn errno_slot() -> *mut libc::c_int {
    // SAFETY: __errno_location has no preconditions.
    unsafe { libc::__errno_location() }
}

fn errno_get() -> i32 {
    // SAFETY: this thread's errno slot, always valid.
    unsafe { *errno_slot() }
}

fn restore_errno(e: Option<i32>) {
    if let Some(e) = e {
        // SAFETY: this thread's errno slot, always valid.
        unsafe { *errno_slot() = e };
    }
}

#[cfg(target_arch = "x86_64")]
fn interrupted_pc(ctx: *mut libc::c_void) -> usize {
    // SAFETY: an SA_SIGINFO handler's third argument is the ucontext_t.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize
}

#[cfg(target_arch = "aarch64")]
fn interrupted_pc(ctx: *mut libc::c_void) -> usize {
    // SAFETY: an SA_SIGINFO handler's third argument is the ucontext_t.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    uc.uc_mcontext.pc as usize
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn interrupted_pc(_ctx: *mut libc::c_void) -> usize {
    0
}

#[cfg(target_arch = "x86_64")]
fn save_regs(m: &MShared, ctx: *mut libc::c_void) {
    // SAFETY: for SA_SIGINFO handlers the third argument is the interrupted
    // thread's ucontext_t.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    for (i, r) in uc.uc_mcontext.gregs.iter().enumerate().take(NREGS) {
        m.regs[i].store(*r as usize, Ordering::Relaxed);
    }
    m.saved_sp.store(
        uc.uc_mcontext.gregs[libc::REG_RSP as usize] as usize,
        Ordering::Relaxed,
    );
}

#[cfg(target_arch = "aarch64")]
fn save_regs(m: &MShared, ctx: *mut libc::c_void) {
    // SAFETY: for SA_SIGINFO handlers the third argument is the interrupted
    // thread's ucontext_t.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    let mc = &uc.uc_mcontext;
    for (i, r) in mc.regs.iter().enumerate() {
        m.regs[i].store(*r as usize, Ordering::Relaxed);
    }
    m.regs[31].store(mc.sp as usize, Ordering::Relaxed);
    m.regs[32].store(mc.pc as usize, Ordering::Relaxed);
    m.regs[33].store(mc.pstate as usize, Ordering::Relaxed);
    m.saved_sp.store(mc.sp as usize, Ordering::Relaxed);
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn save_regs(m: &MShared, _ctx: *mut libc::c_void) {
    let probe = 0u8;
    m.saved_sp
        .store(&probe as *const u8 as usize, Ordering::Relaxed);
}

/// Passes a SIGURG that is not ours to the application's handler.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let old = OLD.load(Ordering::Acquire);
    // SAFETY: null or the leaked, initialised previous action, never written
    // after installation.
    let Some(old) = (unsafe { old.as_ref() }) else {
        return;
    };
    let h = old.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        return; // SIGURG's default action is to ignore it
    }
    // SAFETY: `old` is the action sigaction(2) returned when we installed
    // ours, with a real handler; we are SIGURG's handler.
    unsafe { crate::coro::overflow::call_handler(old, sig, info, ctx) };
}

// ------------------------------------------------------------ stack reads

/// Reads the word at `addr` of a stack that no thread is running on or
/// whose thread is frozen.
///
/// # Safety
///
/// `addr` must be word-aligned and lie inside a mapped, readable goroutine
/// stack range (between its guard page and its top) that stays mapped for
/// the duration of the call.
pub(crate) unsafe fn read_stack_word(addr: usize) -> usize {
    // SAFETY: the caller guarantees a mapped, aligned address; volatile
    // because the memory belongs to another (stopped) execution context.
    unsafe { std::ptr::read_volatile(addr as *const usize) }
}

/// Storage for a frozen thread's registers.
pub(crate) fn new_regs() -> [AtomicUsize; NREGS] {
    std::array::from_fn(|_| AtomicUsize::new(0))
}

/// The slot holding an M's P (Go: `m.p`), readable by other threads so
/// sysmon can take the P of an M that is blocked or frozen. Who may touch
/// the P is decided by `MShared::state` (see the constants above).
pub(crate) struct PSlot(AtomicPtr<super::P>);

impl std::fmt::Debug for PSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PSlot")
            .field(&!self.0.load(Ordering::Relaxed).is_null())
            .finish()
    }
}

impl PSlot {
    pub(crate) fn new() -> PSlot {
        PSlot(AtomicPtr::new(std::ptr::null_mut()))
    }

    /// Installs `p` in an empty slot.
    pub(crate) fn put(&self, p: Box<super::P>) {
        let old = self.0.swap(Box::into_raw(p), Ordering::AcqRel);
        assert!(old.is_null(), "gort: M given a second P");
    }

    /// Takes the P out (the swap makes the caller its only owner).
    pub(crate) fn take(&self) -> Option<Box<super::P>> {
        let p = self.0.swap(std::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: non-null values come only from `Box::into_raw` in `put`,
        // and the swap handed that pointer to us alone.
        (!p.is_null()).then(|| unsafe { Box::from_raw(p) })
    }

    pub(crate) fn is_some(&self) -> bool {
        !self.0.load(Ordering::Acquire).is_null()
    }

    /// The P, borrowed mutably.
    ///
    /// # Safety
    ///
    /// The caller must own the slot under the state protocol (the M itself
    /// in `M_IDLE`/`M_RUN`, inside a [`NoPreempt`] section so the handler
    /// cannot release it), and no other reference obtained from this slot
    /// may be alive.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn get_mut(&self) -> Option<&mut super::P> {
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: the caller owns the P exclusively (see above); `p` came
        // from `Box::into_raw` and stays valid until taken.
        unsafe { p.as_mut() }
    }
}

impl Drop for PSlot {
    fn drop(&mut self) {
        drop(self.take());
    }
}
