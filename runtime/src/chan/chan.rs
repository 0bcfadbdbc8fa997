//! The channel proper: state, wait queues, the rendezvous hand-off, close.
//! The design is in `chan/mod.rs` and `docs/design/chan.md`.
#![forbid(unsafe_code)]

use super::{RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError};
use crate::landing::{Landing, LandingRef};
use crate::sched::park::{self, Waiter};
use crate::spinlock::{SpinMutex, SpinMutexGuard, spin_mutex};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `Op::selected` before anyone fired the operation.
pub(crate) const NONE: usize = usize::MAX;
/// `Op::selected` after the owner gave up (timeout).
pub(crate) const ABORT: usize = usize::MAX - 1;

/// Select cases with an `Op::gone` flag (the rest always unregister).
pub(crate) const GONE_CASES: usize = 32;

/// Op ids: each thread takes a block of 2^40 from here once, then counts
/// locally (a global counter bounced its cache line between the Ps on
/// every blocking operation).
static NEXT_ID_BLOCK: AtomicU64 = AtomicU64::new(1 << 40);

/// Finished ops kept for reuse, per thread (Go keeps `sudog`s in a per-P
/// cache for the same reason: a blocking operation should not allocate).
const OP_POOL_MAX: usize = 4;

/// Ops of landed plain waits kept per channel (`State::spare`).
const SPARE_OPS: usize = 4;

thread_local! {
    static OP_POOL: RefCell<Vec<Arc<Op>>> = const { RefCell::new(Vec::new()) };
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
}

/// One blocking operation (Go: the `selectDone` word plus the parked G): a
/// plain send/recv or a whole `select`. Several queue entries (one per
/// select case) share it; the first channel to CAS `selected` wins.
#[derive(Debug)]
pub(crate) struct Op {
    /// Atomic only so a pooled op can be renewed without `Arc::get_mut`'s
    /// compare-and-swap: stored (Relaxed) while the op is unique, before it
    /// is shared (under a channel lock, which orders it for the readers).
    /// The key of this op's results in `State::pending`, unique among live
    /// ops; read through [`Op::id`].
    id: AtomicU64,
    /// Atomic: `NONE` → case index (by whoever fires it, under that
    /// channel's lock) or `ABORT` (by the owner on timeout). AcqRel CAS.
    pub(crate) selected: AtomicUsize,
    /// Atomic: Release by the completer after it stored the result in
    /// `pending`; Acquire by the owner before reading it.
    pub(crate) done: AtomicBool,
    /// Atomic: a select's send case delivered its up-front value
    /// (`select::__SendCase`) and left no result in `pending`. Stored
    /// (Relaxed) before `done`'s Release store, by whoever took the
    /// value; read by the owner after `done`.
    pub(crate) delivered: AtomicBool,
    /// Atomic, per select case below `GONE_CASES`: the case's queue entry
    /// was popped by someone else (`State::claim`, `State::drop_stale`),
    /// so its owner need not lock that channel to unregister it. Reset
    /// (Relaxed) by the owner before the entry is queued; stored (Release)
    /// under the channel lock right after the pop; read (Acquire) by the
    /// owner. Plain ops ignore it.
    pub(crate) gone: [AtomicBool; GONE_CASES],
    /// Set before the op is shared: whom to wake.
    pub(crate) waiter: Waiter,
}

/// A fresh op id and an op from this thread's pool (preferably one naming
/// the running goroutine `me` as its waiter: `true`). Never inlined, like
/// `pool_put` and `next_op_id`: `recv`/`send`/`select`
/// take an op, park, and recycle it; inlined, the thread-local's address
/// could be computed once and reused after the goroutine moved to another
/// M — two threads then share one id block or one `RefCell` pool (two live
/// ops with one id, an op handed out twice: lost wake-ups).
/// docs/design/soundness.md.
#[inline(never)]
fn pool_take(me: *const crate::sched::g::G) -> (u64, Option<(Arc<Op>, bool)>) {
    let id = next_op_id();
    let op = OP_POOL.with_borrow_mut(|pool| {
        // The most recently recycled op first: usually the caller's own.
        let mine = pool.iter().rposition(|o| o.waiter.names(me));
        match mine {
            Some(i) => Some((pool.swap_remove(i), true)),
            None => pool.pop().map(|o| (o, false)),
        }
    });
    (id, op)
}

/// A fresh op id (as `pool_take` gives with an op). Not inlined: see
/// `pool_take`.
#[inline(never)]
fn next_op_id() -> u64 {
    NEXT_ID.with(|c| {
        let mut id = c.get();
        if id & ((1 << 40) - 1) == 0 {
            id = NEXT_ID_BLOCK.fetch_add(1 << 40, Ordering::Relaxed);
        }
        c.set(id + 1);
        id
    })
}

/// Keeps `op` in this thread's pool if there is room. Not inlined: see
/// `pool_take`.
#[inline(never)]
fn pool_put(op: Arc<Op>) {
    OP_POOL.with_borrow_mut(|p| {
        if p.len() < OP_POOL_MAX {
            p.push(op);
        }
    });
}

impl Op {
    /// A fresh op for the caller, from this thread's pool when it has one
    /// (preferably one that already names the caller as its waiter, which
    /// saves making a new handle).
    pub(crate) fn new(selected: usize) -> Arc<Op> {
        let (id, pooled) = pool_take(crate::sched::g::current_ptr());
        match pooled {
            // Only unique ops enter the pool (`recycle`), and nothing
            // cloned it since: plain stores renew it.
            Some((op, true)) => {
                op.id.store(id, Ordering::Relaxed); // unique; published by a channel lock
                op.selected.store(selected, Ordering::Relaxed); // likewise
                op.done.store(false, Ordering::Relaxed); // likewise
                op.delivered.store(false, Ordering::Relaxed); // likewise
                op
            }
            Some((mut op, false)) => {
                let o = Arc::get_mut(&mut op).expect("pooled op is unique");
                *o.id.get_mut() = id;
                *o.selected.get_mut() = selected;
                *o.done.get_mut() = false;
                *o.delivered.get_mut() = false;
                o.waiter = Waiter::current();
                op
            }
            None => Arc::new(Op {
                id: AtomicU64::new(id),
                selected: AtomicUsize::new(selected),
                done: AtomicBool::new(false),
                delivered: AtomicBool::new(false),
                gone: std::array::from_fn(|_| AtomicBool::new(false)),
                waiter: Waiter::current(),
            }),
        }
    }

    /// The key of this op's results in `State::pending`.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed) // see `Op::id`'s field
    }

    /// Returns a finished op to this thread's pool if no queue entry or
    /// watcher still holds it (else it is simply dropped). The op keeps its
    /// waiter (a goroutine handle: G structs are recycled by the scheduler,
    /// so at most `OP_POOL_MAX` per thread are kept from reuse a while).
    ///
    /// Uniqueness by the strong count alone (no `Weak` of an `Op` is ever
    /// made), read plainly and then ordered by an Acquire fence: that
    /// pairs with the Release decrement of the last other handle's drop,
    /// so whatever its holder did with the op happens before the reuse.
    /// (`Arc::get_mut` would cost a compare-and-swap per operation.)
    pub(crate) fn recycle(op: Arc<Op>) {
        if Arc::strong_count(&op) == 1 {
            debug_assert_eq!(Arc::weak_count(&op), 0, "no Weak of an Op is ever made");
            std::sync::atomic::fence(Ordering::Acquire); // pairs with Arc's Release decrement
            pool_put(op);
        }
    }

    /// Clears case `case`'s `gone` flag before its entry is queued.
    #[inline]
    pub(crate) fn reset_gone(&self, case: usize) {
        if let Some(g) = self.gone.get(case) {
            g.store(false, Ordering::Relaxed); // no entry of this case exists yet
        }
    }

    pub(crate) fn claim(&self, case: usize) -> bool {
        self.selected
            .compare_exchange(NONE, case, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn finish(&self) {
        self.done.store(true, Ordering::Release); // pairs with Acquire in wait
        self.waiter.wake_by_ref();
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire) // pairs with Release in finish
    }

    /// Parks until `done` (or the deadline; returns whether done).
    pub(crate) fn wait(&self, deadline: Option<Instant>, why: park::WaitReason) -> bool {
        loop {
            if self.is_done() {
                return true;
            }
            match deadline {
                None => park::park_current(why),
                Some(d) => {
                    if Instant::now() >= d {
                        return self.is_done();
                    }
                    park::park_current_until(d, why);
                }
            }
        }
    }
}

/// A waiting sender or receiver (Go: `sudog`).
#[derive(Debug)]
pub(crate) struct Entry<T> {
    pub(crate) op: Arc<Op>,
    /// The case index the op gets when this entry fires.
    pub(crate) case: usize,
    /// A plain sender's value; `None` for receivers and for `select` send
    /// cases (whose value comes later, through `SelectedOperation::send`).
    pub(crate) value: Option<T>,
    /// A plain send's or receive's landing (`crate::landing`): its result
    /// goes straight there ([`State::land`]), not through `pending`. Only
    /// plain entries have one (see [`Entry::plain`]).
    pub(crate) landing: Option<LandingRef<T>>,
}

impl<T> Entry<T> {
    /// A plain send or receive (the entries with a landing): its op is this
    /// entry's alone and nobody else can fire or abort it, so claiming it
    /// needs no compare-and-swap.
    #[inline]
    pub(crate) fn plain(&self) -> bool {
        self.landing.is_some()
    }

    /// Tells a select's owner this entry left its queue (`Op::gone`).
    #[inline]
    fn popped(&self) {
        if !self.plain()
            && let Some(g) = self.op.gone.get(self.case)
        {
            g.store(true, Ordering::Release); // pairs with Acquire in Select::run
        }
    }
}

/// The result of a completed operation, keyed by `Op::id` in `State::pending`.
#[derive(Debug)]
pub(crate) enum Pending<T> {
    /// Received a value, or `None`: the channel is disconnected.
    Recv(Option<T>),
    /// A select send failed (all receivers gone). (Plain senders learn
    /// it, and get their value back, through their landing.)
    SendFailed(Option<T>),
    /// A select send won a claimed receiver that now waits for the value.
    /// (Boxed: rare, and it would double the size of every result.)
    SendTo(Box<Entry<T>>),
    /// A select send won a reserved buffer slot (`State::reserved`).
    SendBuffer,
}

/// Fields in the order the hot paths touch them (`repr(C)` keeps it): the
/// buffer and counts share the lock's cache line and the next; the rarely
/// used `pending`/`watchers` come last.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct State<T> {
    pub(crate) buf: VecDeque<T>,
    /// Buffer slots promised to select senders that have not sent yet.
    pub(crate) reserved: usize,
    pub(crate) senders: usize,
    pub(crate) receivers: usize,
    pub(crate) sendq: VecDeque<Entry<T>>,
    pub(crate) recvq: VecDeque<Entry<T>>,
    /// `never()`: no senders, yet never disconnected.
    pub(crate) never: bool,
    /// Results of select ops by op id, with the completed entry's op
    /// reference (dropped when the result is taken, off the completer's
    /// path). Plain waiters get theirs through their landing.
    pub(crate) pending: Vec<(u64, Pending<T>, Option<Arc<Op>>)>,
    /// `Select::ready` waiters: woken (all) on any change.
    pub(crate) watchers: Vec<Arc<Op>>,
    /// The ops of plain waiters completed through their landing, kept
    /// for their owners' next wait here (`State::plain_op`): the owner
    /// does not come back under the lock for them.
    pub(crate) spare: Spare,
}

/// `State::spare`: up to `SPARE_OPS` ops of landed plain waits. The first
/// sits inline, so a channel with one waiting side (the common case, and
/// every channel of Go's reply-channel idiom) never allocates for it.
#[derive(Debug, Default)]
pub(crate) struct Spare {
    first: Option<Arc<Op>>,
    rest: Vec<Arc<Op>>,
}

impl Spare {
    /// Keeps `op` (recycles it into this thread's pool when full).
    #[inline]
    fn put(&mut self, op: Arc<Op>) {
        if self.first.is_none() {
            self.first = Some(op);
        } else if self.rest.len() < SPARE_OPS - 1 {
            self.rest.push(op);
        } else {
            Op::recycle(op);
        }
    }

    /// Takes an op whose waiter is goroutine `me` (see `Waiter::names`).
    #[inline]
    fn take_named(&mut self, me: *const crate::sched::g::G) -> Option<Arc<Op>> {
        if self.first.as_ref().is_some_and(|o| o.waiter.names(me)) {
            return self.first.take();
        }
        let i = self.rest.iter().rposition(|o| o.waiter.names(me))?;
        Some(self.rest.swap_remove(i))
    }

    /// How many ops it keeps.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }
}

impl Drop for Spare {
    /// The ops go back to this thread's op pool: a channel made per
    /// request (Go's reply-channel idiom) would otherwise cost a new op
    /// for every wait on it.
    fn drop(&mut self) {
        for op in self.first.take().into_iter().chain(self.rest.drain(..)) {
            Op::recycle(op);
        }
    }
}

/// A channel (Go: `hchan`). Fields in this order (`repr(C)`): the hint,
/// the immutable fields, the lock word and the state's first fields.
/// Not cache-line aligned: an alignment above 16 sends `Arc::new` to
/// glibc's `posix_memalign`, which made a channel's allocation and free
/// ~1,100 instructions dearer and a reply-channel round trip (a fresh
/// channel per message) 1.13–1.27× Go's; unaligned it is 0.74–0.87× Go's,
/// at a cost of 2–4 % on an unbuffered ping-pong (docs/design/chan.md).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Chan<T> {
    /// Atomic, a summary of `locked` for lock-free "would block" checks
    /// (Go's `empty(c)`/`full(c)` reads in `chanrecv`/`chansend` with
    /// `block == false`): `RECV_MAYBE` and `SEND_MAYBE` bits, stored
    /// (Relaxed) by every guard's drop, under the lock, from the state it
    /// leaves. A clear bit means that operation would have blocked in the
    /// state left by the latest critical section; a set bit only "maybe"
    /// (stale queue entries), to be decided under the lock. Nothing but
    /// that choice is read through it, so Relaxed suffices: a reader that
    /// already synchronised with a critical section (through anything)
    /// sees its store or a later one, by coherence.
    hint: AtomicU8,
    /// Immutable: the capacity; `usize::MAX` for unbounded.
    pub(crate) cap: usize,
    /// Immutable: `cap` came from `unbounded()`.
    pub(crate) unbounded: bool,
    /// Protected by: itself. Never held across a park. Locked only
    /// through [`Chan::state`], whose guard keeps `hint` up to date.
    locked: SpinMutex<State<T>>,
}

/// `Chan::hint`: a receive may not block (buffered values, a waiting
/// sender, or disconnected).
const RECV_MAYBE: u8 = 1;
/// `Chan::hint`: a send may not block (room, a waiting receiver, or no
/// receivers left).
const SEND_MAYBE: u8 = 2;

/// A locked channel: derefs to its [`State`]; on drop, stores the state's
/// summary in `Chan::hint` before unlocking.
pub(crate) struct Guard<'a, T> {
    st: SpinMutexGuard<'a, State<T>>,
    hint: &'a AtomicU8,
    cap: usize,
}

impl<T> std::ops::Deref for Guard<'_, T> {
    type Target = State<T>;
    fn deref(&self) -> &State<T> {
        &self.st
    }
}

impl<T> std::ops::DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut State<T> {
        &mut self.st
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        // Still under the lock (the field `st` unlocks after this).
        let h = self.st.hint(self.cap);
        if self.hint.load(Ordering::Relaxed) != h {
            self.hint.store(h, Ordering::Relaxed); // see `Chan::hint`
        }
    }
}

/// How a locked non-blocking receive went.
pub(crate) enum RecvTry<T> {
    Got(T),
    /// Claimed a select sender that has no value yet: pair with it.
    Valueless(Entry<T>),
    Disconnected,
    Empty,
}

impl<T> State<T> {
    pub(crate) fn disconnected(&self) -> bool {
        self.senders == 0 && !self.never
    }

    /// The `Chan::hint` bits for this state (conservative: a queued entry
    /// may be stale).
    fn hint(&self, cap: usize) -> u8 {
        let mut h = 0;
        if !self.buf.is_empty() || !self.sendq.is_empty() || self.disconnected() {
            h |= RECV_MAYBE;
        }
        if self.receivers == 0 || self.buf.len() + self.reserved < cap || !self.recvq.is_empty() {
            h |= SEND_MAYBE;
        }
        h
    }

    /// The result for (select) op `id`, if any.
    #[inline]
    pub(crate) fn take_pending(&mut self, id: u64) -> Option<Pending<T>> {
        let i = self.pending.iter().position(|(k, _, _)| *k == id)?;
        Some(self.pending.swap_remove(i).1)
    }

    /// Stores `e`'s result and wakes its owner; `e`'s op reference moves
    /// into `pending` with the result (under the lock, so the order of the
    /// two does not matter to the owner, who reads both under it).
    #[inline]
    pub(crate) fn complete(&mut self, e: Entry<T>, p: Pending<T>) {
        let op = e.op;
        op.finish();
        self.pending.push((op.id(), p, Some(op)));
    }

    /// Completes a plain waiter through its landing (`crate::landing`):
    /// stores `v` there (Go: `sendDirect` into the receiver's
    /// `sudog.elem`, or a sender's `sg.success`), wakes the owner, and
    /// keeps its op in `spare` for its next wait here, so the owner reads
    /// its result without locking again. `Err` gives back an entry with no
    /// landing, and `v`.
    #[inline]
    fn land(&mut self, mut e: Entry<T>, v: Option<T>) -> Result<(), (Entry<T>, Option<T>)> {
        match e.landing.take() {
            Some(l) => {
                l.fill(v);
                // The landing's owner may be gone now; its op (ours alone:
                // the entry owned it) still names it.
                e.op.waiter.wake_by_ref();
                self.spare.put(e.op);
                Ok(())
            }
            None => Err((e, v)),
        }
    }

    /// Completes receiver `e` with `v` (`None`: disconnected): a plain
    /// receiver through its landing, any other with a `Recv` result in
    /// `pending`.
    #[inline]
    pub(crate) fn complete_recv(&mut self, e: Entry<T>, v: Option<T>) {
        if let Err((e, v)) = self.land(e, v) {
            self.complete(e, Pending::Recv(v));
        }
    }

    /// An op for a plain sender or receiver about to wait on this
    /// channel: its own op from `spare` if a completer left it there, else
    /// a new one.
    pub(crate) fn plain_op(&mut self) -> Arc<Op> {
        match self.spare.take_named(crate::sched::g::current_ptr()) {
            Some(op) => {
                // Unique (only `land` moves ops here, from plain entries
                // that owned them) and as `Op::new(NONE)` left it: a plain
                // wait never claims, finishes or delivers its op. Its id is
                // still its own (ids are unique per op), so it keeps it.
                debug_assert!(
                    op.selected.load(Ordering::Relaxed) == NONE
                        && !op.done.load(Ordering::Relaxed)
                        && !op.delivered.load(Ordering::Relaxed)
                );
                op
            }
            None => Op::new(NONE),
        }
    }

    /// A waiting sender's value was taken: a plain sender learns it
    /// through its landing (`None`: nothing given back); a select's send
    /// case (which carried its value up front) through `Op::delivered`;
    /// either way with no result to collect under the lock.
    #[inline]
    pub(crate) fn complete_sent(&mut self, e: Entry<T>) {
        if let Err((e, _)) = self.land(e, None) {
            e.op.delivered.store(true, Ordering::Relaxed); // ordered by finish's Release
            e.op.finish();
        }
    }

    /// Wakes the `Select::ready` watchers, if any (inlined: almost always
    /// there are none).
    #[inline(always)]
    pub(crate) fn notify(&mut self) {
        if !self.watchers.is_empty() {
            self.notify_watchers();
        }
    }

    #[cold]
    #[inline(never)]
    fn notify_watchers(&mut self) {
        for w in self.watchers.drain(..) {
            w.finish();
        }
    }

    /// Whether `q` holds a live entry not belonging to `me`.
    pub(crate) fn has_live(q: &VecDeque<Entry<T>>, me: Option<&Arc<Op>>) -> bool {
        q.iter().any(|e| {
            !me.is_some_and(|m| Arc::ptr_eq(m, &e.op))
                && e.op.selected.load(Ordering::Acquire) == NONE // pairs with claim
        })
    }

    /// Pops the first live entry of `q` not belonging to `me`, claiming its
    /// op; drops stale entries (ops fired elsewhere) on the way.
    #[inline(always)]
    pub(crate) fn claim(q: &mut VecDeque<Entry<T>>, me: Option<&Arc<Op>>) -> Option<Entry<T>> {
        // The common cases first, inlined: nobody waits, or a plain entry
        // at the front (live, and never `me`'s: only selects pass `me`,
        // and a select's entries are never plain).
        match q.front() {
            None => None,
            Some(e) if e.plain() => q.pop_front(),
            Some(_) => Self::claim_select(q, me),
        }
    }

    /// [`State::claim`] past a select entry at the front.
    #[inline(never)]
    fn claim_select(q: &mut VecDeque<Entry<T>>, me: Option<&Arc<Op>>) -> Option<Entry<T>> {
        let mut i = 0;
        while i < q.len() {
            if me.is_some_and(|m| Arc::ptr_eq(m, &q[i].op)) {
                i += 1;
                continue;
            }
            // A plain entry's op has no other claimant (its owner times
            // out by removing the entry under this lock); a select's may
            // be fired by another channel first.
            let won = q[i].plain() || q[i].op.claim(q[i].case);
            let e = if i == 0 { q.pop_front() } else { q.remove(i) }.expect("index in range");
            e.popped();
            if won {
                return Some(e);
            }
        }
        None
    }

    /// Pops the stale entries (ops fired elsewhere) at the front of `q`,
    /// so their owners need not come back to unregister them.
    #[inline]
    pub(crate) fn drop_stale(q: &mut VecDeque<Entry<T>>) {
        while let Some(e) = q.front() {
            if e.plain() || e.op.selected.load(Ordering::Acquire) == NONE {
                return;
            }
            q.pop_front().expect("front").popped();
        }
    }

    pub(crate) fn send_ready(&self, cap: usize, me: Option<&Arc<Op>>) -> bool {
        self.receivers == 0
            || self.buf.len() + self.reserved < cap
            || Self::has_live(&self.recvq, me)
    }

    pub(crate) fn recv_ready(&self, me: Option<&Arc<Op>>) -> bool {
        !self.buf.is_empty() || self.disconnected() || Self::has_live(&self.sendq, me)
    }

    /// Delivers `v` to a waiting receiver or the buffer, ignoring capacity
    /// (the caller checked it or holds a reserved slot).
    pub(crate) fn deliver(&mut self, v: T, me: Option<&Arc<Op>>) {
        if let Some(r) = Self::claim(&mut self.recvq, me) {
            self.complete_recv(r, Some(v));
        } else {
            self.buf.push_back(v);
        }
        self.notify();
    }

    /// Non-blocking send (Go `chansend` with `block == false`).
    pub(crate) fn try_send(
        &mut self,
        v: T,
        cap: usize,
        me: Option<&Arc<Op>>,
    ) -> Result<(), TrySendError<T>> {
        if self.receivers == 0 {
            return Err(TrySendError::Disconnected(v));
        }
        if let Some(r) = Self::claim(&mut self.recvq, me) {
            self.complete_recv(r, Some(v));
            self.notify();
            return Ok(());
        }
        if self.buf.len() + self.reserved < cap {
            self.buf.push_back(v);
            self.notify();
            return Ok(());
        }
        Err(TrySendError::Full(v))
    }

    /// Non-blocking receive (Go `chanrecv` with `block == false`).
    pub(crate) fn try_recv(&mut self, me: Option<&Arc<Op>>) -> RecvTry<T> {
        if let Some(v) = self.buf.pop_front() {
            // Refill from the oldest waiting sender (FIFO, as Go does).
            if let Some(s) = Self::claim(&mut self.sendq, me) {
                match s.value {
                    Some(_) => {
                        let mut s = s;
                        let sv = s.value.take().expect("value");
                        self.buf.push_back(sv);
                        self.complete_sent(s);
                    }
                    None => {
                        self.reserved += 1;
                        self.complete(s, Pending::SendBuffer);
                    }
                }
            }
            self.notify();
            return RecvTry::Got(v);
        }
        if let Some(mut s) = Self::claim(&mut self.sendq, me) {
            self.notify();
            return match s.value.take() {
                Some(v) => {
                    self.complete_sent(s);
                    RecvTry::Got(v)
                }
                None => RecvTry::Valueless(s),
            };
        }
        if self.disconnected() {
            RecvTry::Disconnected
        } else {
            RecvTry::Empty
        }
    }

    /// Pairs receiver `me` (its op already claimed) with a select sender
    /// that has no value yet: the sender learns of `me` through `SendTo`.
    pub(crate) fn pair(&mut self, sender: Entry<T>, me: Entry<T>) {
        self.complete(sender, Pending::SendTo(Box::new(me)));
    }

    /// Drops `op`'s entries from the send (`send`) or receive queue, and
    /// its watcher entries. In place, without `retain`'s full rewrite: the
    /// queues are short and the entry usually gone already (claimed by
    /// the channel that fired the op).
    pub(crate) fn remove_entries(&mut self, send: bool, op: &Arc<Op>) {
        let q = if send {
            &mut self.sendq
        } else {
            &mut self.recvq
        };
        let mut i = 0;
        while i < q.len() {
            if Arc::ptr_eq(&q[i].op, op) {
                q.remove(i);
            } else {
                i += 1;
            }
        }
        if !self.watchers.is_empty() {
            self.watchers.retain(|w| !Arc::ptr_eq(w, op));
        }
    }

    /// Last sender gone (Go `closechan`): release every receiver.
    fn disconnect_senders(&mut self) {
        while let Some(r) = Self::claim(&mut self.recvq, None) {
            self.complete_recv(r, None);
        }
        self.notify();
    }

    /// Last receiver gone: fail every waiting sender.
    fn disconnect_receivers(&mut self) {
        while let Some(mut s) = Self::claim(&mut self.sendq, None) {
            // A plain sender's landing gets its value back (`Some`).
            let v = s.value.take();
            if let Err((s, v)) = self.land(s, v) {
                self.complete(s, Pending::SendFailed(v));
            }
        }
        self.notify();
    }
}

impl<T> Chan<T> {
    pub(crate) fn new(cap: usize, unbounded: bool, senders: usize, never: bool) -> Arc<Chan<T>> {
        let c = Arc::new(Chan {
            cap,
            unbounded,
            hint: AtomicU8::new(0),
            locked: spin_mutex(State {
                buf: VecDeque::new(),
                reserved: 0,
                sendq: VecDeque::new(),
                recvq: VecDeque::new(),
                pending: Vec::new(),
                watchers: Vec::new(),
                spare: Spare::default(),
                senders,
                receivers: 1,
                never,
            }),
        });
        drop(c.state()); // sets the hint
        c
    }

    /// Locks the channel (`spinlock.rs`: a CAS; a contended waiter backs
    /// off, yields, then naps; unlock is a store).
    #[inline]
    pub(crate) fn state(&self) -> Guard<'_, T> {
        Guard {
            st: self.locked.lock(),
            hint: &self.hint,
            cap: self.cap,
        }
    }

    /// Lock-free: a receive would block now (see `Chan::hint`). `false`
    /// means only "maybe not": lock and look.
    #[inline]
    pub(crate) fn recv_would_block(&self) -> bool {
        self.hint.load(Ordering::Relaxed) & RECV_MAYBE == 0 // see `Chan::hint`
    }

    /// Lock-free: a send would block now (see `Chan::hint`).
    #[inline]
    pub(crate) fn send_would_block(&self) -> bool {
        self.hint.load(Ordering::Relaxed) & SEND_MAYBE == 0 // see `Chan::hint`
    }

    /// Waits for `op` (owned by a receiver) and takes its `Recv` result.
    /// Takes the value of `sender`, a select that committed to sending on
    /// this channel but has not supplied its value yet: pair with it under
    /// `st`, release the lock, and wait for the value (shortly).
    fn recv_committed(&self, mut st: Guard<'_, T>, sender: Entry<T>) -> Result<T, RecvError> {
        let me = Op::new(0);
        st.pair(
            sender,
            Entry {
                op: me.clone(),
                case: 0,
                value: None,
                landing: None,
            },
        );
        drop(st);
        let r = self.wait_recv(&me);
        Op::recycle(me);
        r
    }

    pub(crate) fn wait_recv(&self, op: &Arc<Op>) -> Result<T, RecvError> {
        loop {
            op.wait(None, park::WaitReason::ChanReceive);
            let mut st = self.state();
            match st.take_pending(op.id()) {
                Some(Pending::Recv(Some(v))) => return Ok(v),
                Some(Pending::Recv(None)) => return Err(RecvError),
                Some(_) => unreachable!("gort: chan: send result for a receive"),
                None => {} // done not yet visible with its result: retry
            }
        }
    }

    fn send(&self, v: T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        // Where the receiver that takes our value (or the last receiver's
        // drop) tells us so: `None` taken, `Some(v)` given back.
        let landing = std::pin::pin!(Landing::new());
        let id;
        {
            let mut st = self.state();
            match st.try_send(v, self.cap, None) {
                Ok(()) => {
                    drop(st);
                    // A safe point (Go: the prologue check of chansend),
                    // on the paths that do not park: a park is one.
                    crate::sched::park::preempt_check();
                    return Ok(());
                }
                Err(TrySendError::Disconnected(v)) => {
                    return Err(SendTimeoutError::Disconnected(v));
                }
                Err(TrySendError::Full(v)) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(SendTimeoutError::Timeout(v));
                    }
                    let op = st.plain_op();
                    id = op.id();
                    // The entry owns the op; the completer leaves it in
                    // `spare` for our next wait here.
                    st.sendq.push_back(Entry {
                        op,
                        case: 0,
                        value: Some(v),
                        landing: Some(landing.as_ref().arm()),
                    });
                    st.notify();
                }
            }
        }
        match self.wait_landed(&landing, id, true, deadline) {
            Ok(None) => Ok(()),
            Ok(Some(v)) => Err(SendTimeoutError::Disconnected(v)),
            Err(e) => {
                // Nobody took the value: it comes back with the entry.
                Op::recycle(e.op);
                Err(SendTimeoutError::Timeout(e.value.expect("value")))
            }
        }
    }

    /// A plain waiter's wait for its landing: `Ok` with what landed (see
    /// `State::land`), or `Err` with its own entry, taken back out of the
    /// send (`send`) or receive queue with its landing disarmed, once
    /// `deadline` passed and the entry was still queued. (Inlined into its
    /// two callers: out of line it cost ~90 instructions a round trip.)
    #[inline(always)]
    fn wait_landed(
        &self,
        landing: &Landing<T>,
        id: u64,
        send: bool,
        mut deadline: Option<Instant>,
    ) -> Result<Option<T>, Entry<T>> {
        let why = if send {
            park::WaitReason::ChanSend
        } else {
            park::WaitReason::ChanReceive
        };
        loop {
            if let Some(v) = landing.take() {
                return Ok(v);
            }
            if !wait_plain(deadline, why) {
                continue; // woken (maybe spuriously): look again
            }
            let mut st = self.state();
            let q = if send { &mut st.sendq } else { &mut st.recvq };
            if let Some(i) = q.iter().position(|e| e.op.id() == id) {
                // Still queued: nobody claimed it; leave with our handle.
                let mut e = q.remove(i).expect("own entry");
                drop(st);
                landing.disarm(e.landing.take().expect("a plain waiter's landing"));
                return Err(e);
            }
            drop(st);
            // Claimed: landed already (seen next time round; a plain entry
            // is claimed and landed in one critical section), or a
            // receiver claimed by a select sender that has not supplied its
            // value yet (`SendTo`): committed, wait for it.
            deadline = None;
        }
    }

    fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        // Where a sender puts the value if we have to wait (Go: the
        // receiver's `sudog.elem`): we then read it without the lock.
        let landing = std::pin::pin!(Landing::new());
        let id;
        {
            let mut st = self.state();
            match st.try_recv(None) {
                RecvTry::Got(v) => {
                    drop(st);
                    // A safe point (Go: the prologue check of chanrecv),
                    // on the paths that do not park: a park is one.
                    crate::sched::park::preempt_check();
                    return Ok(v);
                }
                RecvTry::Disconnected => return Err(RecvTimeoutError::Disconnected),
                RecvTry::Valueless(s) => {
                    // Committed: cannot time out.
                    return self
                        .recv_committed(st, s)
                        .map_err(|_| RecvTimeoutError::Disconnected);
                }
                RecvTry::Empty => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(RecvTimeoutError::Timeout);
                    }
                    let op = st.plain_op();
                    id = op.id();
                    // The entry owns the op; the completer leaves it in
                    // `spare` for our next wait here.
                    st.recvq.push_back(Entry {
                        op,
                        case: 0,
                        value: None,
                        landing: Some(landing.as_ref().arm()),
                    });
                    st.notify();
                }
            }
        }
        match self.wait_landed(&landing, id, false, deadline) {
            Ok(v) => v.ok_or(RecvTimeoutError::Disconnected),
            Err(e) => {
                Op::recycle(e.op);
                Err(RecvTimeoutError::Timeout)
            }
        }
    }
}

/// A plain sender's or receiver's wait: parks until woken (or
/// `deadline`); returns whether the deadline has passed. Spurious returns
/// are fine: the caller looks for its result under the lock and loops.
/// Nothing is lost between queueing the entry and parking: the completer's
/// wake-up is recorded in the park word (`NOTIFIED`) and the park returns
/// at once.
fn wait_plain(deadline: Option<Instant>, why: park::WaitReason) -> bool {
    match deadline {
        None => {
            park::park_current(why);
            false
        }
        Some(d) => {
            if Instant::now() >= d {
                return true;
            }
            park::park_current_until(d, why);
            Instant::now() >= d
        }
    }
}

/// Creates a channel of capacity `cap` (Go: `make(chan T, cap)`). With
/// `cap == 0` it is unbuffered: a send completes only when a receiver takes
/// the value.
///
/// ```
/// gort_runtime::run(|| {
///     let (s, r) = gort_runtime::chan::bounded(0);
///     gort_runtime::go(move || s.send(7).unwrap());
///     assert_eq!(r.recv(), Ok(7));
/// });
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let c = Chan::new(cap, false, 1, false);
    (Sender { chan: c.clone() }, Receiver { chan: c })
}

/// Creates a channel of unbounded capacity: sends never block.
///
/// ```
/// let (s, r) = gort_runtime::chan::unbounded();
/// s.send(1).unwrap();
/// assert_eq!(r.try_recv(), Ok(1));
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let c = Chan::new(usize::MAX, true, 1, false);
    (Sender { chan: c.clone() }, Receiver { chan: c })
}

/// A receiver that never delivers a message and is never disconnected
/// (Go: receiving from a nil channel blocks forever).
///
/// ```
/// let r = gort_runtime::chan::never::<i32>();
/// assert!(r.try_recv().is_err());
/// ```
pub fn never<T>() -> Receiver<T> {
    Receiver {
        chan: Chan::new(0, false, 0, true),
    }
}

/// The sending side of a channel. Clone it for more senders; dropping the
/// last one disconnects (closes) the channel.
pub struct Sender<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

/// The receiving side of a channel. Clone it for more receivers; dropping
/// the last one makes sends fail.
pub struct Receiver<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

// A panic (say in a value's `Drop` under the channel's lock) leaves the
// channel usable: the lock is released as the guard unwinds and no
// operation can observe a broken invariant through safe code (crossbeam
// makes the same promise with the same impls; unwind safety is not a
// soundness property either way).
impl<T> std::panic::UnwindSafe for Sender<T> {}
impl<T> std::panic::RefUnwindSafe for Sender<T> {}
impl<T> std::panic::UnwindSafe for Receiver<T> {}
impl<T> std::panic::RefUnwindSafe for Receiver<T> {}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("Sender { .. }")
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("Receiver { .. }")
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.state().senders += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.state().receivers += 1;
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut st = self.chan.state();
        st.senders -= 1;
        if st.senders == 0 && !st.never {
            st.disconnect_senders();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut st = self.chan.state();
        st.receivers -= 1;
        if st.receivers == 0 {
            st.disconnect_receivers();
        }
    }
}

macro_rules! common_methods {
    () => {
        /// The number of buffered messages.
        pub fn len(&self) -> usize {
            self.chan.state().buf.len()
        }

        /// Whether no message is buffered.
        pub fn is_empty(&self) -> bool {
            self.chan.state().buf.is_empty()
        }

        /// Whether the buffer is full (always true for a zero-capacity
        /// channel; never for an unbounded one).
        pub fn is_full(&self) -> bool {
            if self.chan.unbounded {
                return false;
            }
            let st = self.chan.state();
            st.buf.len() + st.reserved >= self.chan.cap
        }

        /// The capacity; `None` when unbounded.
        pub fn capacity(&self) -> Option<usize> {
            (!self.chan.unbounded).then_some(self.chan.cap)
        }

        /// Whether the other side is gone (every receiver, for a
        /// `Sender`; every sender, for a `Receiver`).
        pub fn is_disconnected(&self) -> bool {
            let st = self.chan.state();
            st.receivers == 0 || st.disconnected()
        }

        /// Whether `other`'s channel is this one's.
        pub fn same_channel(&self, other: &Self) -> bool {
            Arc::ptr_eq(&self.chan, &other.chan)
        }
    };
}

impl<T> Sender<T> {
    /// Sends `msg`, blocking while the channel is full (for capacity 0:
    /// until a receiver takes it). Fails, returning the message, when every
    /// receiver is gone.
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        self.chan.send(msg, None).map_err(|e| match e {
            SendTimeoutError::Disconnected(v) | SendTimeoutError::Timeout(v) => SendError(v),
        })
    }

    /// Sends without blocking (Go: `select` with a `default` case).
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        if self.chan.send_would_block() {
            return Err(TrySendError::Full(msg));
        }
        self.chan.state().try_send(msg, self.chan.cap, None)
    }

    /// Sends, waiting at most `timeout`.
    pub fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_deadline(msg, Instant::now() + timeout)
    }

    /// Sends, waiting until `deadline` at most.
    pub fn send_deadline(&self, msg: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(msg, Some(deadline))
    }

    common_methods!();
}

impl<T> Receiver<T> {
    /// Receives, blocking while the channel is empty; after the last
    /// sender is dropped, drains the buffer and then returns `RecvError`.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv(None).map_err(|_| RecvError)
    }

    /// Receives without blocking.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        if self.chan.recv_would_block() {
            return Err(TryRecvError::Empty);
        }
        let mut st = self.chan.state();
        match st.try_recv(None) {
            RecvTry::Got(v) => Ok(v),
            RecvTry::Empty => Err(TryRecvError::Empty),
            RecvTry::Disconnected => Err(TryRecvError::Disconnected),
            RecvTry::Valueless(s) => self
                .chan
                .recv_committed(st, s)
                .map_err(|_| TryRecvError::Disconnected),
        }
    }

    /// Receives, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_deadline(Instant::now() + timeout)
    }

    /// Receives, waiting until `deadline` at most.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.chan.recv(Some(deadline))
    }

    /// A blocking iterator: ends when the channel is disconnected and drained.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { r: self }
    }

    /// A non-blocking iterator over the messages available now.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { r: self }
    }

    common_methods!();
}

/// Blocking iterator over a [`Receiver`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    r: &'a Receiver<T>,
}

/// Non-blocking iterator over a [`Receiver`].
#[derive(Debug)]
pub struct TryIter<'a, T> {
    r: &'a Receiver<T>,
}

/// Owning blocking iterator over a [`Receiver`].
#[derive(Debug)]
pub struct IntoIter<T> {
    r: Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.r.recv().ok()
    }
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.r.try_recv().ok()
    }
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.r.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { r: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_op_is_reused() {
        let op = Op::new(NONE);
        let addr = Arc::as_ptr(&op);
        let first = op.id();
        Op::recycle(op);
        let again = Op::new(3);
        assert_eq!(Arc::as_ptr(&again), addr, "the pooled op is reused");
        assert_ne!(again.id(), first, "a reused op gets a fresh id");
        assert_eq!(again.selected.load(Ordering::Relaxed), 3);
        assert!(!again.is_done());
        // A shared op is not pooled: the pool only takes unique ops.
        let shared = again.clone();
        Op::recycle(again);
        assert_ne!(Arc::as_ptr(&Op::new(NONE)), Arc::as_ptr(&shared));
    }

    /// The first spare op sits inline, up to `SPARE_OPS` are kept, and a
    /// dropped channel's spares go back to the dropping thread's pool
    /// (Go's reply-channel idiom makes a channel per message).
    #[test]
    #[inline(never)] // reads OP_POOL (tests/tls_accessors.rs)
    fn spare_ops_are_kept_then_pooled_when_the_channel_drops() {
        let mut sp = Spare::default();
        let ops: Vec<_> = (0..SPARE_OPS + 1).map(|_| Op::new(NONE)).collect();
        for op in ops {
            sp.put(op);
        }
        assert_eq!(sp.len(), SPARE_OPS, "one past SPARE_OPS went to the pool");
        assert!(sp.first.is_some());
        // Plain threads never reuse a spare (only goroutines do).
        assert!(sp.take_named(std::ptr::null()).is_none());
        // Empty the pool (the op put past the limit is in it), then drop
        // the spares: the pool gets them back (`OP_POOL_MAX` ≥ `SPARE_OPS`).
        OP_POOL.with_borrow_mut(|p| p.clear());
        drop(sp);
        assert_eq!(
            OP_POOL.with_borrow(|p| p.len()),
            SPARE_OPS,
            "a dropped Spare's ops were not pooled"
        );
    }

    #[test]
    fn op_ids_are_unique_across_threads() {
        const PER: usize = if cfg!(miri) { 50 } else { 1000 };
        let ids: Vec<u64> = (0..4)
            .map(|_| {
                std::thread::spawn(|| (0..PER).map(|_| Op::new(NONE).id()).collect::<Vec<_>>())
            })
            .flat_map(|h| h.join().unwrap())
            .collect();
        let set: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
    }

    /// Parks until `c`'s queue `send` (or receive) queue holds an entry,
    /// so the other thread's operation is known to be waiting.
    fn wait_queued<T>(c: &Chan<T>, send: bool) {
        loop {
            {
                let st = c.state();
                if !(if send { &st.sendq } else { &st.recvq }).is_empty() {
                    return;
                }
            }
            std::thread::yield_now();
        }
    }

    /// Plain threads through the landing path (Miri runs this: the
    /// completer writes into the waiter's stack frame): values land in
    /// order both ways, a waiter's op comes back through `spare`, and
    /// nothing goes through `pending`.
    #[test]
    fn waiting_senders_and_receivers_get_their_results_through_landings() {
        const N: u64 = if cfg!(miri) { 20 } else { 2000 };
        let (ping_s, ping_r) = bounded::<String>(0);
        let (pong_s, pong_r) = bounded::<String>(0);
        let echo = std::thread::spawn(move || {
            for v in ping_r.iter() {
                pong_s.send(v + "!").unwrap();
            }
        });
        for i in 0..N {
            ping_s.send(i.to_string()).unwrap();
            assert_eq!(pong_r.recv().unwrap(), format!("{i}!"));
        }
        for c in [&ping_s.chan, &pong_r.chan] {
            let st = c.state();
            assert!(
                st.pending.is_empty(),
                "plain results never go through pending"
            );
            assert!(st.spare.len() <= SPARE_OPS);
        }
        drop(ping_s);
        echo.join().unwrap();
    }

    /// A select send whose value comes late (the dynamic `Select`: the
    /// value is given to `SelectedOperation::send` after the choice) that
    /// claims a parked plain receiver hands it `SendTo` and then lands the
    /// value in the receiver's landing (`State::complete_recv`).
    #[test]
    fn a_late_select_send_lands_in_a_parked_receiver() {
        use crate::chan::Select;
        let (s, r) = bounded::<String>(0);
        let c = r.chan.clone();
        let t = std::thread::spawn(move || r.recv_timeout(Duration::from_secs(60)));
        wait_queued(&c, false);
        let mut sel = Select::new();
        let i = sel.send(&s);
        let op = sel.select();
        assert_eq!(op.index(), i);
        op.send(&s, "late".to_string()).unwrap();
        // Checked before the join: a value left in `pending` would leave
        // the receiver waiting on its landing for ever.
        assert!(
            c.state().pending.is_empty(),
            "the value went to the landing"
        );
        assert_eq!(t.join().unwrap().as_deref(), Ok("late"));
    }

    /// A waiter's three other exits: a receive that times out takes its
    /// landing back out of the queue; a send that times out gets its value
    /// back; a disconnection lands as `Disconnected`, with the value for a
    /// sender.
    #[test]
    fn timed_out_and_disconnected_waiters_leave_cleanly() {
        let (s, r) = bounded::<Vec<u8>>(0);
        assert_eq!(
            r.recv_timeout(Duration::from_millis(5)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(r.chan.state().recvq.is_empty(), "the timed-out entry left");
        assert_eq!(
            s.send_timeout(vec![1], Duration::from_millis(5)),
            Err(SendTimeoutError::Timeout(vec![1]))
        );
        assert!(s.chan.state().sendq.is_empty());
        // A receiver waiting when the last sender goes.
        let c = r.chan.clone();
        let t = std::thread::spawn(move || r.recv());
        wait_queued(&c, false);
        drop(s);
        assert_eq!(t.join().unwrap(), Err(RecvError));
        // A sender waiting when the last receiver goes.
        let (s, r) = bounded::<Vec<u8>>(0);
        let c = s.chan.clone();
        let t = std::thread::spawn(move || s.send(vec![7, 7]));
        wait_queued(&c, true);
        drop(r);
        assert_eq!(t.join().unwrap(), Err(SendError(vec![7, 7])));
    }
}
