//! G: the goroutine descriptor, its run token and its wake handle.
//!
//! # Ownership
//!
//! A [`G`] is shared (`Arc`): the scheduler, wake handles and the `allgs`
//! list all point at it. What *runs* a G — its entry closure and coroutine
//! ([`Exec`]) — is reached only through the G's unique run token, [`GRef`].
//! Exactly one `GRef` exists for a G that is runnable or running; none for
//! a parked or dead G. Run queues, `runnext` slots and free lists hold
//! `GRef`s; wait queues hold [`GHandle`]s.
//!
//! A parked G's token is not dropped but kept *in the state*: committing
//! `PARKED` forgets the `GRef` (its strong count stays), and whoever moves
//! the word out of `PARKED` — the one unparker whose CAS readies it, or
//! shutdown's `claim_parked` — takes that count back as the new `GRef`
//! ([`GRef::from_parked`]). A park/wake cycle so costs no reference-count
//! traffic (two atomic read-modify-writes less, about 5 % of an
//! unbuffered channel round trip).
//!
//! # The park word (Go: `gopark`/`goready`, and `notesleep`'s token)
//!
//! `G::park` is `gen << 32 | state`, with states:
//!
//! ```text
//!   IDLE ──spawn(gen+1)──▶ RUNNABLE ──park(), then g0 commits──▶ PARKED
//!                           ▲   │                                   │
//!                           │   └─unpark─▶ NOTIFIED                 │
//!                           └─────────── unpark (new GRef) ─────────┘
//! ```
//!
//! 1. `park()` on the goroutine: `NOTIFIED → RUNNABLE` and return at once
//!    (a wake-up arrived first), else suspend, leaving the word `RUNNABLE`
//!    (a load only: no read-modify-write on the goroutine's side).
//! 2. On g0 after the switch: `RUNNABLE → PARKED` releases the token; if
//!    the state is `NOTIFIED` instead (a wake-up raced the switch), g0
//!    consumes it (`→ RUNNABLE`) and the G goes straight back on a run
//!    queue.
//! 3. `unpark(h)`: if `h.gen` is not the current generation, nothing (the
//!    goroutine it was for has exited). `PARKED → RUNNABLE` hands over the
//!    parked token and readies the G; `RUNNABLE → NOTIFIED` records the
//!    wake-up (the goroutine is running, or switching out to park).
//!
//! Every wake-up is therefore delivered exactly once, and never to a later
//! goroutine that reuses the same G. Spurious returns from `park` are
//! possible (as with `std::thread::park`): callers loop on their condition.

use crate::coro::Goroutine;
use crate::task::{RunRef, WeakRun};
use std::cell::{Cell, UnsafeCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::parkword::{ParkWord, Unpark, generation, state};

/// A hook a task fires once the runtime dropped its strong references to
/// it (scoped goroutines leave their scope through it).
pub(crate) trait After: Send + Sync {
    fn fire(&self);
}

/// What runs a G. Reached only through its [`GRef`].
#[derive(Default)]
pub(crate) struct Exec {
    /// The body of a goroutine that has not started yet.
    pub(crate) entry: Option<RunRef>,
    /// The body, weakly, for abandonment at shutdown (a weak reference never
    /// drops the task's contents, which may borrow from a scope).
    pub(crate) watch: Option<WeakRun>,
    /// The coroutine, once started.
    pub(crate) coro: Option<Goroutine>,
}

/// A goroutine descriptor.
///
/// # Fields
/// - `goid`: Atomic, written by the token holder at spawn (Relaxed; published
///   by the run-queue push), read by anyone.
/// - `park`: Atomic, see the module docs.
/// - `exec`: Owner: the holder of the G's [`GRef`] only.
pub(crate) struct G {
    pub(crate) goid: AtomicU64,
    /// Atomic (Relaxed, diagnostics only): the last `WaitReason` it parked with.
    wait_reason: AtomicU8,
    /// Atomic (Relaxed): id + 1 of the M this goroutine is locked to (0 =
    /// none; `lock_os_thread`), and how many times it locked.
    pub(crate) lockedm: AtomicU64,
    pub(crate) lockcount: AtomicU32,
    /// Atomic (Relaxed; read under a stopped world): the usable range of
    /// its stack (0, 0 when it has none) and its stack pointer when it last
    /// switched away (approximate from below: see `coro::suspend`).
    stack_lo: AtomicUsize,
    stack_hi: AtomicUsize,
    pub(crate) saved_sp: AtomicUsize,
    /// Atomic (a hint; Release by the timer firer, Acquire by the
    /// goroutine): the deadline of the last runtime timer fired for it. A
    /// timed park that finds its own deadline here knows the deadline
    /// passed without reading the clock (any timer with that exact
    /// deadline fired only once the clock reached it).
    pub(crate) timer_fired: AtomicU64,
    park: ParkWord,
    exec: UnsafeCell<Exec>,
    /// Goroutine-local values (`glocal.rs`). Owner: the goroutine running
    /// in this G; cleared by its M when it exits.
    pub(crate) locals: crate::glocal::Locals,
}

// SAFETY: all fields are atomics except `exec`, which is only accessed
// through `GRef::exec`, and at most one `GRef` exists per G at any time (the
// park-word protocol above). So `exec` is never accessed from two threads at
// once; the hand-over between threads is ordered by the run queues'
// release/acquire and by the park word's AcqRel CASes.
unsafe impl Sync for G {}

impl std::fmt::Debug for G {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.park.load();
        f.debug_struct("G")
            .field("goid", &self.goid.load(Ordering::Relaxed))
            .field("gen", &generation(w))
            .field("state", &state(w))
            .finish()
    }
}

/// The unique run token of a G (see the module docs). Not `Clone`.
pub(crate) struct GRef(Arc<G>);

impl std::fmt::Debug for GRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl GRef {
    /// A brand-new G (not yet in `allgs`: the caller registers it).
    pub(crate) fn new_g() -> GRef {
        GRef(Arc::new(G {
            goid: AtomicU64::new(0),
            wait_reason: AtomicU8::new(0),
            lockedm: AtomicU64::new(0),
            lockcount: AtomicU32::new(0),
            stack_lo: AtomicUsize::new(0),
            stack_hi: AtomicUsize::new(0),
            saved_sp: AtomicUsize::new(0),
            timer_fired: AtomicU64::new(0),
            park: ParkWord::new(),
            exec: UnsafeCell::new(Exec::default()),
            locals: crate::glocal::Locals::default(),
        }))
    }

    /// Gives up the token as a raw pointer (for the `runnext` slot).
    pub(crate) fn into_raw(self) -> *const G {
        Arc::into_raw(self.0)
    }

    /// Takes back a token given up with [`GRef::into_raw`].
    ///
    /// # Safety
    ///
    /// `p` must come from `GRef::into_raw` and be converted back exactly once.
    pub(crate) unsafe fn from_raw(p: *const G) -> GRef {
        // SAFETY: the caller passes a pointer from `Arc::into_raw` once.
        GRef(unsafe { Arc::from_raw(p) })
    }

    /// Takes back the token `commit_park` left in the `PARKED` state.
    ///
    /// # Safety
    ///
    /// The caller's CAS must just have moved `g`'s park word out of
    /// `PARKED` (only one party can), for a park that `commit_park`
    /// committed: that commit forgot one `GRef`, whose strong count this
    /// becomes.
    unsafe fn from_parked(g: &Arc<G>) -> GRef {
        // SAFETY: `Arc::as_ptr` of a live `Arc<G>` is the pointer
        // `Arc::into_raw` gives; the count it stands for is the forgotten
        // token, owned by the caller per the contract above.
        GRef(unsafe { Arc::from_raw(Arc::as_ptr(g)) })
    }

    /// The shared descriptor.
    pub(crate) fn g(&self) -> &Arc<G> {
        &self.0
    }

    /// The G's execution state.
    pub(crate) fn exec(&mut self) -> &mut Exec {
        // SAFETY: `self` is the G's unique run token (module invariant) and
        // is borrowed mutably, so no other reference to `exec` exists.
        unsafe { &mut *self.0.exec.get() }
    }

    /// Prepares a free G for a new goroutine: new generation, RUNNABLE.
    pub(crate) fn reset(&mut self, goid: u64, entry: RunRef) {
        self.0.goid.store(goid, Ordering::Relaxed);
        self.0.park.reset();
        let e = self.exec();
        e.watch = Some(entry.downgrade());
        e.entry = Some(entry);
        e.coro = None;
    }

    /// The goroutine exited: handles of this generation become inert.
    pub(crate) fn set_dead(&mut self) {
        self.0.park.set_idle();
    }

    /// Step 2 of the park protocol, on g0 after the goroutine suspended with
    /// `Reason::Park`. `Ok(())`: parked, the token now belongs to the
    /// `PARKED` state (see the module docs). `Err(self)`: a wake-up arrived
    /// first; the G is runnable again.
    pub(crate) fn commit_park(self) -> Result<(), GRef> {
        if self.0.park.commit() {
            // Not dropped: the parked state owns this count until an
            // unparker (or shutdown) takes it back with `from_parked`,
            // possibly already, on another thread. `forget` touches nothing.
            std::mem::forget(self);
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl G {
    pub(crate) fn set_stack(&self, lo: usize, hi: usize) {
        self.stack_lo.store(lo, Ordering::Relaxed);
        self.stack_hi.store(hi, Ordering::Relaxed);
    }

    /// `(lo, hi)` of its stack, `None` if it has none.
    pub(crate) fn stack_bounds(&self) -> Option<(usize, usize)> {
        let hi = self.stack_hi.load(Ordering::Relaxed);
        (hi != 0).then(|| (self.stack_lo.load(Ordering::Relaxed), hi))
    }

    /// Park-word state name, for scheddetail and the world listing.
    pub(crate) fn park_state(&self) -> u64 {
        state(self.park.load())
    }

    pub(crate) fn set_wait_reason(&self, r: super::park::WaitReason) {
        self.wait_reason.store(r as u8, Ordering::Relaxed);
    }

    pub(crate) fn wait_reason(&self) -> super::park::WaitReason {
        super::park::WaitReason::from_u8(self.wait_reason.load(Ordering::Relaxed))
    }

    /// Step 1 of the park protocol, on the goroutine itself. Returns `true`
    /// if the caller must suspend with `Reason::Park`, `false` if a wake-up
    /// was already pending (consumed).
    pub(crate) fn begin_park(&self) -> bool {
        self.park.begin_park()
    }

    /// At shutdown: claim a parked G's token (`PARKED → IDLE`).
    pub(crate) fn claim_parked(self: &Arc<G>) -> Option<GRef> {
        // SAFETY: `claim_parked`'s CAS just moved the word `PARKED → IDLE`.
        self.park
            .claim_parked()
            .then(|| unsafe { GRef::from_parked(self) })
    }
}

/// A handle that wakes one goroutine (one generation of a G). Cloneable.
#[derive(Clone)]
pub(crate) struct GHandle {
    g: Arc<G>,
    gen_: u32,
}

impl std::fmt::Debug for GHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GHandle")
            .field("g", &self.g)
            .field("gen", &self.gen_)
            .finish()
    }
}

impl GHandle {
    /// Step 3 of the park protocol. Returns the G's run token if this call
    /// made it runnable (the caller must ready it), `None` otherwise.
    #[must_use]
    pub(crate) fn unpark(&self) -> Option<GRef> {
        // The Acquire in `ParkWord::unpark` pairs with the Release in
        // `commit`, so the new token sees the goroutine's saved state.
        // SAFETY: `Readied` means our CAS moved the word `PARKED → RUNNABLE`.
        (self.g.park.unpark(self.gen_) == Unpark::Readied)
            .then(|| unsafe { GRef::from_parked(&self.g) })
    }

    /// Records that a runtime timer due at `when` fired for it.
    pub(crate) fn note_timer_fired(&self, when: u64) {
        self.g.timer_fired.store(when, Ordering::Release);
    }

    /// Whether this handle names the live goroutine of G `g` (this G, this
    /// generation; `g` from [`current_ptr`], read once by a caller that
    /// checks several handles): a waker that already holds one need not
    /// make another.
    pub(crate) fn names(&self, g: *const G) -> bool {
        std::ptr::eq(g, Arc::as_ptr(&self.g)) && generation(self.g.park.load()) == self.gen_
    }
}

thread_local! {
    /// The G running on this thread (null on g0 and on plain threads).
    static CURRENT_G: Cell<*const G> = const { Cell::new(std::ptr::null()) };
    /// Its goid (0 when none): also read by the SIGSEGV handler.
    static CURRENT_GOID: Cell<u64> = const { Cell::new(0) };
}

/// No G runs on this thread any more: the M's first step after
/// `Goroutine::resume` returns ([`enter`] set it, with a token the M held
/// for that duration).
#[inline(never)]
pub(crate) fn clear_current() {
    set_current_inline(None);
}

/// The M's last step before resuming `g`: `g` becomes the current G and
/// the thread leaves the runtime (`preempt::set_locks(0)`), in one call
/// (one call less per switch than the two).
#[inline(never)]
pub(crate) fn enter(g: &GRef) {
    set_current_inline(Some(g));
    super::preempt::set_locks_inline(0);
}

/// Sets (or clears, with `None`) the G running on this thread, inlined:
/// only into `#[inline(never)]` callers (`clear_current` and `enter`;
/// tests/tls_accessors.rs checks it).
#[inline(always)]
fn set_current_inline(g: Option<&GRef>) {
    let (p, id) = match g {
        Some(r) => (Arc::as_ptr(&r.0), r.0.goid.load(Ordering::Relaxed)),
        None => (std::ptr::null(), 0),
    };
    CURRENT_G.with(|c| c.set(p));
    CURRENT_GOID.with(|c| c.set(id));
}

/// Runs `f` with the G running on this thread, if any. `f` must not
/// suspend the goroutine.
#[inline(never)]
pub(crate) fn with_current<R>(f: impl FnOnce(&G) -> R) -> Option<R> {
    let p = CURRENT_G.with(Cell::get);
    if p.is_null() {
        return None;
    }
    // SAFETY: `CURRENT_G` is non-null only between `enter(r)` and
    // `clear_current()` in `M::execute`, during which the M holds the
    // token `r` (an `Arc<G>` clone), so the G is alive. `f` runs on this
    // goroutine before any suspend (documented contract), so the M is still
    // inside that window.
    Some(f(unsafe { &*p }))
}

/// Runs `f` with the running goroutine's locals (see `glocal.rs`).
pub(crate) fn with_current_locals<R>(f: impl FnOnce(&crate::glocal::Locals) -> R) -> Option<R> {
    with_current(|g| f(&g.locals))
}

/// The running goroutine's G (null on g0 or a plain thread), for
/// [`GHandle::names`]; only compared, never dereferenced.
#[inline(never)]
pub(crate) fn current_ptr() -> *const G {
    CURRENT_G.with(Cell::get)
}

/// The running goroutine's id, or 0 on a plain thread / g0.
#[inline(never)]
pub(crate) fn current_goid() -> u64 {
    CURRENT_GOID.with(Cell::get)
}

/// Records the running goroutine's stack pointer (approximate, from
/// below) before it switches away.
#[inline(never)]
pub(crate) fn note_saved_sp(sp: usize) {
    let p = CURRENT_G.with(Cell::get);
    if !p.is_null() {
        // SAFETY: as in `with_current`: the M holds the G's token while
        // `CURRENT_G` points at it, and we run on that goroutine.
        unsafe { &*p }.saved_sp.store(sp, Ordering::Relaxed);
    }
}

/// A handle for the running goroutine, or `None` outside goroutines.
#[inline(never)]
pub(crate) fn current_handle() -> Option<GHandle> {
    let p = CURRENT_G.with(Cell::get);
    if p.is_null() {
        return None;
    }
    // SAFETY: as in `with_current`: the M holds a token (strong count ≥ 1)
    // for the whole time `CURRENT_G` is non-null, so incrementing the count
    // and materialising a new `Arc` from the pointer is valid.
    unsafe { Arc::increment_strong_count(p) };
    // SAFETY: the count was just incremented for this new `Arc`.
    let g = unsafe { Arc::from_raw(p) };
    let gen_ = generation(g.park.load());
    Some(GHandle { g, gen_ })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The run token's strong count moves into the parked state and back
    /// out, exactly once, on every path out of `PARKED`.
    #[test]
    fn a_parked_token_is_handed_over_not_counted_twice() {
        let t = GRef::new_g();
        let g = t.g().clone();
        g.park.reset();
        let h = GHandle {
            g: g.clone(),
            gen_: generation(g.park.load()),
        };
        let base = Arc::strong_count(&g); // t + g + h
        // Park, then an unparker readies it: the same count comes back.
        assert!(g.begin_park());
        assert!(t.commit_park().is_ok());
        assert_eq!(
            Arc::strong_count(&g),
            base,
            "the parked state keeps the token's count"
        );
        let t = h.unpark().expect("readied");
        assert_eq!(
            Arc::strong_count(&g),
            base,
            "readying takes it back, no new count"
        );
        assert!(h.unpark().is_none(), "running: only recorded");
        // A wake-up that races the switch: the token stays with g0.
        assert!(!g.begin_park(), "the recorded wake-up is consumed");
        assert!(g.begin_park());
        assert!(h.unpark().is_none());
        let t = t.commit_park().expect_err("the wake-up raced the commit");
        assert_eq!(Arc::strong_count(&g), base);
        // Park for good, then shutdown claims the token.
        assert!(g.begin_park());
        assert!(t.commit_park().is_ok());
        let t = g.claim_parked().expect("parked");
        assert_eq!(Arc::strong_count(&g), base);
        assert!(h.unpark().is_none(), "claimed: idle, nothing to wake");
        drop(t);
        assert_eq!(Arc::strong_count(&g), base - 1);
    }
}
