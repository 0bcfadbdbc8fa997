//! `Select` (Go's `select` statement, crossbeam's dynamic API) and the
//! machinery under the `select!` macro. The design is in `chan/mod.rs`.
#![forbid(unsafe_code)]

use super::chan::{Chan, Entry, NONE, Op, Pending, RecvTry, State};
use super::{
    ReadyTimeoutError, Receiver, RecvError, SelectTimeoutError, SendError, Sender, TryReadyError,
    TrySelectError, TrySendError,
};
use crate::sched::park;
use smallvec::SmallVec;
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How one attempt at a case went.
enum Attempt {
    /// The case fired; its result is in `pending` under the op's id.
    Done,
    /// Not ready (and registered, if asked).
    NotReady,
    /// Another channel already fired the op.
    Fired,
    /// We claimed our own op but lost the counterpart: start over.
    Restart,
}

/// A channel's side of a select case, type-erased: implemented by
/// `Chan<T>` for every `T`, so a case is a `&dyn Side` to the channel
/// itself plus a direction (no allocation per case).
trait Side {
    /// The channel's address (identity check in `SelectedOperation`).
    fn addr(&self) -> usize;
    /// Lock-free: the operation would block now (`false`: maybe not).
    fn would_block(&self, send: bool) -> bool;
    fn ready(&self, send: bool) -> bool;
    /// Tries the case; with `register`, enqueues an entry when not ready.
    fn attempt(&self, send: bool, op: &Arc<Op>, case: usize, register: bool) -> Attempt;
    /// Registers `op` as a readiness watcher unless ready (then `true`).
    fn watch(&self, send: bool, op: &Arc<Op>) -> bool;
    /// Drops `op`'s entries for this direction, and its watcher entries.
    fn unregister(&self, send: bool, op: &Arc<Op>);
}

impl<T> Side for Chan<T> {
    fn addr(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    fn would_block(&self, send: bool) -> bool {
        if send {
            self.send_would_block()
        } else {
            self.recv_would_block()
        }
    }

    fn ready(&self, send: bool) -> bool {
        let st = self.state();
        if send {
            st.send_ready(self.cap, None)
        } else {
            st.recv_ready(None)
        }
    }

    fn attempt(&self, send: bool, op: &Arc<Op>, case: usize, register: bool) -> Attempt {
        if send {
            self.attempt_send(op, case, register, None)
        } else {
            self.attempt_recv(op, case, register)
        }
    }

    fn watch(&self, send: bool, op: &Arc<Op>) -> bool {
        let mut st = self.state();
        let ready = if send {
            st.send_ready(self.cap, None)
        } else {
            st.recv_ready(None)
        };
        if !ready {
            st.watchers.push(op.clone());
        }
        ready
    }

    fn unregister(&self, send: bool, op: &Arc<Op>) {
        self.state().remove_entries(send, op);
    }
}

/// A send case's up-front value and its copy function (see
/// [`__SendCase`]).
#[doc(hidden)]
pub type __UpFront<T> = Option<(T, fn(&T) -> T)>;

/// `select!`'s send case: the sender and, when the macro could evaluate
/// the value up front (a literal, `()`, or a variable of a `Copy` type:
/// no side effect, no move), that value with its copy function. Such a
/// case sends like a plain sender: its queue entries carry a copy, so a
/// receiver takes the value straight from the parked select (Go's
/// `sudog.elem`) instead of waking it and waiting for it. Without a value
/// the case is crossbeam's: the value is evaluated only once the case is
/// chosen.
#[doc(hidden)]
pub struct __SendCase<'a, T> {
    sender: &'a Sender<T>,
    value: __UpFront<T>,
}

impl<'a, T> __SendCase<'a, T> {
    /// A case for `sender`, with the value from [`__SendProbe`] if any.
    #[doc(hidden)]
    #[inline]
    pub fn new(sender: &'a Sender<T>, value: __UpFront<T>) -> Self {
        __SendCase { sender, value }
    }

    /// The sender.
    #[doc(hidden)]
    #[inline]
    pub fn sender(&self) -> &'a Sender<T> {
        self.sender
    }

    fn value(&self) -> Option<T> {
        self.value.as_ref().map(|(v, copy)| copy(v))
    }
}

impl<T> std::fmt::Debug for __SendCase<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("__SendCase")
            .field("up_front", &self.value.is_some())
            .finish()
    }
}

/// `select!`'s look at a send case's value (a literal, `()` or a
/// variable) of type `U`, for a channel of `T`: through [`__SendEager`]
/// when `U` is `T` and `Copy`, else through [`__SendLazy`] (autoref
/// specialisation: the macro calls `(&probe).__value()`, and method
/// lookup tries `__SendProbe` itself before `&__SendProbe`). A value that
/// needs a coercion to `T` (unsizing, deref, fn item to pointer) is not
/// `T`, so it is left for the chosen case, where the coercion happens as
/// before; lifetimes are no obstacle (the probe's argument is a coercion
/// site, so `U` gets fresh regions).
#[doc(hidden)]
pub struct __SendProbe<'a, T, U>(&'a U, PhantomData<fn(T) -> T>);

impl<T, U> std::fmt::Debug for __SendProbe<'_, T, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("__SendProbe")
    }
}

/// A probe for `v`, to be sent on `_s`.
#[doc(hidden)]
#[inline]
pub fn __send_probe<'a, T, U>(_s: &Sender<T>, v: &'a U) -> __SendProbe<'a, T, U> {
    __SendProbe(v, PhantomData)
}

/// See [`__SendProbe`]: a value of the channel's own `Copy` type is taken
/// up front.
#[doc(hidden)]
pub trait __SendEager<T> {
    /// The value and its copy function.
    fn __value(&self) -> __UpFront<T>;
}

impl<T: Copy> __SendEager<T> for __SendProbe<'_, T, T> {
    #[inline]
    fn __value(&self) -> __UpFront<T> {
        Some((*self.0, |v| *v))
    }
}

/// See [`__SendProbe`]: any other value is left for the chosen case.
#[doc(hidden)]
pub trait __SendLazy<T> {
    /// `None`.
    fn __value(&self) -> __UpFront<T>;
}

impl<T, U> __SendLazy<T> for &__SendProbe<'_, T, U> {
    #[inline]
    fn __value(&self) -> __UpFront<T> {
        None
    }
}

impl<T> Side for __SendCase<'_, T> {
    fn addr(&self) -> usize {
        self.sender.chan.addr()
    }

    fn would_block(&self, send: bool) -> bool {
        self.sender.chan.would_block(send)
    }

    fn ready(&self, send: bool) -> bool {
        self.sender.chan.ready(send)
    }

    fn attempt(&self, send: bool, op: &Arc<Op>, case: usize, register: bool) -> Attempt {
        debug_assert!(send, "a send case");
        self.sender
            .chan
            .attempt_send(op, case, register, self.value())
    }

    fn watch(&self, send: bool, op: &Arc<Op>) -> bool {
        self.sender.chan.watch(send, op)
    }

    fn unregister(&self, send: bool, op: &Arc<Op>) {
        self.sender.chan.unregister(send, op);
    }
}

impl<T> Chan<T> {
    /// `attempt_send` delivered the case's up-front value itself: nothing
    /// to collect (`Op::delivered`).
    fn sent(op: &Op) -> Attempt {
        op.delivered.store(true, Ordering::Relaxed); // the owner's own op
        op.done.store(true, Ordering::Release); // pairs with Acquire in Op::wait
        Attempt::Done
    }

    /// A select's send case; `value`: the case's value if known up front
    /// (`__SendCase`), delivered at once when a receiver waits or the
    /// buffer has room, and carried by the queue entry otherwise.
    fn attempt_send(&self, op: &Arc<Op>, case: usize, register: bool, value: Option<T>) -> Attempt {
        let mut st = self.state();
        if st.send_ready(self.cap, Some(op)) {
            if !op.claim(case) {
                return Attempt::Fired;
            }
            let p = match value {
                // Known up front: sent as a non-blocking send sends it
                // (`State::try_send`, which skips this op's own entries).
                Some(v) => match st.try_send(v, self.cap, Some(op)) {
                    Ok(()) => return Self::sent(op),
                    Err(TrySendError::Disconnected(_)) => Pending::SendFailed(None),
                    Err(TrySendError::Full(_)) => return Attempt::Restart,
                },
                None if st.receivers == 0 => Pending::SendFailed(None),
                None => {
                    if let Some(r) = State::claim(&mut st.recvq, Some(op)) {
                        Pending::SendTo(Box::new(r))
                    } else if st.buf.len() + st.reserved < self.cap {
                        st.reserved += 1;
                        Pending::SendBuffer
                    } else {
                        return Attempt::Restart;
                    }
                }
            };
            st.pending.push((op.id(), p, None));
            st.notify();
            op.done.store(true, Ordering::Release); // pairs with Acquire in Op::wait
            return Attempt::Done;
        }
        State::drop_stale(&mut st.recvq);
        if register {
            op.reset_gone(case);
            st.sendq.push_back(Entry {
                op: op.clone(),
                case,
                value,
                landing: None,
            });
            st.notify();
        }
        Attempt::NotReady
    }

    fn attempt_recv(&self, op: &Arc<Op>, case: usize, register: bool) -> Attempt {
        let mut st = self.state();
        if st.recv_ready(Some(op)) {
            if !op.claim(case) {
                return Attempt::Fired;
            }
            match st.try_recv(Some(op)) {
                RecvTry::Got(v) => {
                    st.pending.push((op.id(), Pending::Recv(Some(v)), None));
                    op.done.store(true, Ordering::Release); // pairs with Acquire in Op::wait
                }
                RecvTry::Disconnected => {
                    st.pending.push((op.id(), Pending::Recv(None), None));
                    op.done.store(true, Ordering::Release); // pairs with Acquire in Op::wait
                }
                // Our `done` is set when the sender supplies the value.
                RecvTry::Valueless(s) => st.pair(
                    s,
                    Entry {
                        op: op.clone(),
                        case,
                        value: None,
                        landing: None,
                    },
                ),
                RecvTry::Empty => return Attempt::Restart,
            }
            return Attempt::Done;
        }
        State::drop_stale(&mut st.sendq);
        if register {
            op.reset_gone(case);
            st.recvq.push_back(Entry {
                op: op.clone(),
                case,
                value: None,
                landing: None,
            });
            st.notify();
        }
        Attempt::NotReady
    }
}

/// One case of a [`Select`].
#[derive(Clone, Copy)]
struct Case<'a> {
    chan: &'a dyn Side,
    send: bool,
    /// Taken out by [`Select::remove`].
    removed: bool,
}

/// Case indices in poll order; inline for up to 8 cases.
type Order = SmallVec<[usize; 8]>;

/// `0..8`: an `Order` of up to 8 cases before shuffling.
const IDENTITY: [usize; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

static SEED: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);

thread_local! {
    /// Each thread's select generator state (0: not seeded yet).
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A fresh seed for one select, from this thread's generator (seeded
/// once from a shared Weyl counter; a shared counter per select bounced
/// its cache line between the Ps). Never inlined, like every runtime
/// thread-local access (docs/design/soundness.md); a goroutine that moves
/// to another M afterwards only keeps a number.
#[inline(never)]
fn seed() -> u64 {
    RNG.with(|c| {
        let mut x = c.get();
        if x == 0 {
            x = SEED.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed); // a counter only
            x ^= x >> 30;
            x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x ^= x >> 27;
            x |= 1;
        }
        let r = Rng(x).next();
        c.set(r);
        r
    })
}

/// A xorshift generator, seeded per select (Go's `cheaprand` for select).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        Rng(seed())
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` by multiply-shift, no division (Go's
    /// `cheaprandn`; the bias is below n / 2^32).
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }

    /// A uniformly random permutation of `v` (Fisher-Yates; Go's
    /// `pollorder`).
    fn shuffle<X>(&mut self, v: &mut [X]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// `select!`'s poll order for `n` cases, all receives: a uniformly random
/// permutation of `0..n`, inline.
#[doc(hidden)]
#[derive(Debug)]
pub struct __Perm {
    idx: [u8; 32],
    n: u8,
}

impl __Perm {
    /// A random order of `0..n` (`select!`).
    ///
    /// # Panics
    ///
    /// If `n > 32` (`select!` takes at most 32 cases).
    #[doc(hidden)]
    pub fn new(n: usize) -> __Perm {
        let mut p = __Perm::identity(n);
        Rng::new().shuffle(&mut p.idx[..n]);
        p
    }

    /// `0..n` in order (`select_biased!`).
    ///
    /// # Panics
    ///
    /// If `n > 32` (`select!` and `select_biased!` take at most 32 cases).
    #[doc(hidden)]
    pub fn identity(n: usize) -> __Perm {
        assert!(n <= 32, "gort: select!/select_biased!: at most 32 cases");
        __Perm {
            idx: std::array::from_fn(|i| i as u8),
            n: n as u8,
        }
    }

    /// The order.
    #[doc(hidden)]
    pub fn order(&self) -> &[u8] {
        &self.idx[..usize::from(self.n)]
    }
}

/// Selects over a set of send and receive operations (Go's `select`): of
/// the ready ones, one chosen uniformly at random proceeds.
///
/// ```
/// use gort_runtime::chan::{Select, unbounded};
/// let (s, r) = unbounded();
/// s.send(1).unwrap();
/// let mut sel = Select::new();
/// let i = sel.recv(&r);
/// let oper = sel.select();
/// assert_eq!(oper.index(), i);
/// assert_eq!(oper.recv(&r), Ok(1));
/// ```
#[derive(Clone)]
pub struct Select<'a> {
    cases: SmallVec<[Case<'a>; 4]>,
    /// [`Select::new_biased`]: ready cases are taken in index order.
    biased: bool,
}

impl std::fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select")
            .field("cases", &self.cases.len())
            .field("biased", &self.biased)
            .finish()
    }
}

impl Default for Select<'_> {
    fn default() -> Self {
        Select::new()
    }
}

/// The operation a [`Select`] chose; complete it with [`send`](Self::send)
/// or [`recv`](Self::recv) on the same channel.
#[must_use = "a selected operation must be completed with `send` or `recv`"]
pub struct SelectedOperation<'a> {
    index: usize,
    addr: usize,
    /// `None` once completed (the op went back to the pool).
    op: Option<Arc<Op>>,
    _marker: PhantomData<&'a ()>,
}

impl std::fmt::Debug for SelectedOperation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectedOperation")
            .field("index", &self.index)
            .finish()
    }
}

impl<'a> Select<'a> {
    /// An empty selection: of the ready cases, one chosen uniformly at
    /// random proceeds (Go's `select`).
    pub fn new() -> Select<'a> {
        Select {
            cases: SmallVec::new(),
            biased: false,
        }
    }

    /// An empty selection with a biased choice (crossbeam-channel's
    /// `Select::new_biased`): of the ready cases, the one with the lowest
    /// index proceeds, in `select`, `try_select`, `select_timeout`/
    /// `_deadline` and the `ready` family alike.
    ///
    /// ```
    /// use gort_runtime::chan::{Select, bounded};
    /// let (s1, r1) = bounded::<i32>(1);
    /// let (s2, r2) = bounded::<i32>(1);
    /// s1.send(1).unwrap();
    /// s2.send(2).unwrap();
    /// let mut sel = Select::new_biased();
    /// let a = sel.recv(&r1);
    /// let _b = sel.recv(&r2);
    /// assert_eq!(sel.try_ready(), Ok(a));
    /// let oper = sel.select();
    /// assert_eq!(oper.index(), a);
    /// assert_eq!(oper.recv(&r1), Ok(1));
    /// ```
    pub fn new_biased() -> Select<'a> {
        Select {
            cases: SmallVec::new(),
            biased: true,
        }
    }

    /// Adds a send case; returns its index.
    pub fn send<T>(&mut self, s: &'a Sender<T>) -> usize {
        self.cases.push(Case {
            chan: &*s.chan,
            send: true,
            removed: false,
        });
        self.cases.len() - 1
    }

    /// `select!`'s send case (see [`__SendCase`]); returns its index.
    #[doc(hidden)]
    pub fn __send_case<T>(&mut self, c: &'a __SendCase<'a, T>) -> usize {
        self.cases.push(Case {
            chan: c,
            send: true,
            removed: false,
        });
        self.cases.len() - 1
    }

    /// Adds a receive case; returns its index.
    pub fn recv<T>(&mut self, r: &'a Receiver<T>) -> usize {
        self.cases.push(Case {
            chan: &*r.chan,
            send: false,
            removed: false,
        });
        self.cases.len() - 1
    }

    /// Removes the case with index `index` (other indices stay valid).
    ///
    /// # Panics
    ///
    /// If there is no such case or it was already removed.
    pub fn remove(&mut self, index: usize) {
        assert!(
            index < self.cases.len() && !self.cases[index].removed,
            "gort: chan: no case with index {index}"
        );
        self.cases[index].removed = true;
    }

    /// The live cases in a uniformly random order (Go's `pollorder`), or
    /// in index order when biased.
    fn order(&self, rng: &mut Rng) -> Order {
        let n = self.cases.len();
        let mut v = if n <= IDENTITY.len() && !self.cases.iter().any(|c| c.removed) {
            // The usual case: no case removed, inline (no pushes).
            Order::from_buf_and_len(IDENTITY, n)
        } else {
            let mut v = Order::new();
            for (i, c) in self.cases.iter().enumerate() {
                if !c.removed {
                    v.push(i);
                }
            }
            v
        };
        if !self.biased {
            rng.shuffle(&mut v);
        }
        v
    }

    /// Blocks until a case is ready and selects it (no cases: blocks
    /// forever, as Go's `select {}`).
    pub fn select(&mut self) -> SelectedOperation<'a> {
        self.run(true, None).expect("no deadline")
    }

    /// Selects a ready case without blocking.
    pub fn try_select(&mut self) -> Result<SelectedOperation<'a>, TrySelectError> {
        self.run(false, None).ok_or(TrySelectError)
    }

    /// Blocks for at most `timeout`.
    pub fn select_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<SelectedOperation<'a>, SelectTimeoutError> {
        self.select_deadline(Instant::now() + timeout)
    }

    /// Blocks until `deadline` at most.
    pub fn select_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<SelectedOperation<'a>, SelectTimeoutError> {
        self.run(true, Some(deadline)).ok_or(SelectTimeoutError)
    }

    fn selected(&self, op: Arc<Op>) -> SelectedOperation<'a> {
        let index = op.selected.load(Ordering::Acquire); // pairs with the claim CAS
        SelectedOperation {
            index,
            addr: self.cases[index].chan.addr(),
            op: Some(op),
            _marker: PhantomData,
        }
    }

    /// Go's `selectgo`: pass 1 polls in random order; pass 2 registers on
    /// every channel; then park until one fires, and deregister.
    fn run(&mut self, block: bool, deadline: Option<Instant>) -> Option<SelectedOperation<'a>> {
        // A safe point (Go: the prologue check of chansend/chanrecv/selectgo).
        crate::sched::park::preempt_check();
        if !block
            && self
                .cases
                .iter()
                .all(|c| c.removed || c.chan.would_block(c.send))
        {
            return None; // every case would block: lock-free, as Go's selectnb
        }
        let mut rng = Rng::new();
        'restart: loop {
            let order = self.order(&mut rng);
            // Pass 1 takes an op only once some case may be ready: a
            // non-blocking select on channels that would all block costs
            // one atomic load per case and nothing else.
            let mut first: Option<Arc<Op>> = None;
            for &i in &order {
                let c = self.cases[i];
                if c.chan.would_block(c.send) {
                    continue; // lock-free "not ready" (Go: selectnb's empty/full check)
                }
                let op = first.get_or_insert_with(|| Op::new(NONE));
                match c.chan.attempt(c.send, op, i, false) {
                    Attempt::Done => return first.map(|op| self.selected(op)),
                    Attempt::NotReady => {}
                    Attempt::Fired => unreachable!("gort: select: unregistered op fired"),
                    Attempt::Restart => {
                        Op::recycle(first.take().expect("op"));
                        continue 'restart;
                    }
                }
            }
            if !block || deadline.is_some_and(|d| Instant::now() >= d) {
                if let Some(op) = first {
                    Op::recycle(op);
                }
                return None;
            }
            let op = first.unwrap_or_else(|| Op::new(NONE));
            let mut registered = Order::new();
            let mut restart = false;
            let mut finished = false;
            for &i in &order {
                let c = self.cases[i];
                match c.chan.attempt(c.send, &op, i, true) {
                    Attempt::NotReady => registered.push(i),
                    Attempt::Done => {
                        finished = true;
                        break;
                    }
                    Attempt::Fired => break,
                    Attempt::Restart => {
                        restart = true;
                        break;
                    }
                }
            }
            let mut timed_out = false;
            if !finished && !restart && !op.wait(deadline, park::WaitReason::Select) {
                if op.claim(super::chan::ABORT) {
                    timed_out = true;
                } else {
                    op.wait(None, park::WaitReason::Select);
                }
            }
            // Skip the cases whose entry someone else popped (`Op::gone`):
            // the fired case's, popped by whoever fired it
            // (`State::claim`), and stale ones a poller dropped. Each
            // case has one entry (a channel named twice is two cases).
            for &i in &registered {
                let gone = op.gone.get(i).is_some_and(|g| g.load(Ordering::Acquire));
                if !gone {
                    self.cases[i].chan.unregister(self.cases[i].send, &op);
                }
            }
            if restart {
                continue;
            }
            if timed_out {
                return None;
            }
            return Some(self.selected(op));
        }
    }

    /// The index of a case that is ready now (random among the ready).
    pub fn try_ready(&mut self) -> Result<usize, TryReadyError> {
        let mut rng = Rng::new();
        self.order(&mut rng)
            .into_iter()
            .find(|&i| self.cases[i].chan.ready(self.cases[i].send))
            .ok_or(TryReadyError)
    }

    /// Blocks until some case is ready; returns its index (the operation
    /// is not performed and may be taken by someone else meanwhile).
    pub fn ready(&mut self) -> usize {
        self.ready_until(None).expect("no deadline")
    }

    /// Like [`ready`](Self::ready), for at most `timeout`.
    pub fn ready_timeout(&mut self, timeout: Duration) -> Result<usize, ReadyTimeoutError> {
        self.ready_deadline(Instant::now() + timeout)
    }

    /// Like [`ready`](Self::ready), until `deadline` at most.
    pub fn ready_deadline(&mut self, deadline: Instant) -> Result<usize, ReadyTimeoutError> {
        self.ready_until(Some(deadline)).ok_or(ReadyTimeoutError)
    }

    fn ready_until(&mut self, deadline: Option<Instant>) -> Option<usize> {
        // A safe point (Go: the prologue check of chansend/chanrecv/selectgo).
        crate::sched::park::preempt_check();
        let mut rng = Rng::new();
        loop {
            let order = self.order(&mut rng);
            if let Some(i) = order
                .iter()
                .copied()
                .find(|&i| self.cases[i].chan.ready(self.cases[i].send))
            {
                return Some(i);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            let op = Op::new(NONE);
            let mut watched = Order::new();
            let mut hit = None;
            for &i in &order {
                if self.cases[i].chan.watch(self.cases[i].send, &op) {
                    hit = Some(i);
                    break;
                }
                watched.push(i);
            }
            if hit.is_none() {
                op.wait(deadline, park::WaitReason::Select);
            }
            for &i in &watched {
                self.cases[i].chan.unregister(self.cases[i].send, &op);
            }
            Op::recycle(op);
            if hit.is_some() {
                return hit;
            }
        }
    }
}

impl SelectedOperation<'_> {
    /// The index of the chosen case.
    pub fn index(&self) -> usize {
        self.index
    }

    fn check(&self, addr: usize) {
        assert_eq!(
            self.addr, addr,
            "gort: chan: SelectedOperation completed on the wrong channel"
        );
    }

    /// Completes a chosen send case with `msg`.
    ///
    /// # Panics
    ///
    /// If `s` is not the channel of the chosen case.
    pub fn send<T>(mut self, s: &Sender<T>, msg: T) -> Result<(), SendError<T>> {
        self.check(std::ptr::from_ref(&*s.chan) as usize);
        let op = self.op.take().expect("not completed yet");
        if op.delivered.load(Ordering::Relaxed) {
            // A `select!` case whose value went up front (`__SendCase`):
            // delivered already (seen after `done`'s Acquire); `msg` is
            // the same value again.
            Op::recycle(op);
            return Ok(());
        }
        let mut st = s.chan.state();
        let r = match st.take_pending(op.id()) {
            Some(Pending::SendTo(r)) => {
                st.complete_recv(*r, Some(msg));
                Ok(())
            }
            Some(Pending::SendBuffer) => {
                st.reserved -= 1;
                st.deliver(msg, None);
                Ok(())
            }
            Some(Pending::SendFailed(_)) => Err(SendError(msg)),
            _ => unreachable!("gort: chan: no send result for a selected send"),
        };
        drop(st);
        Op::recycle(op);
        r
    }

    /// Completes a chosen receive case.
    ///
    /// # Panics
    ///
    /// If `r` is not the channel of the chosen case.
    pub fn recv<T>(mut self, r: &Receiver<T>) -> Result<T, RecvError> {
        self.check(std::ptr::from_ref(&*r.chan) as usize);
        let op = self.op.take().expect("not completed yet");
        let v = r.chan.wait_recv(&op);
        Op::recycle(op);
        v
    }
}

impl Drop for SelectedOperation<'_> {
    fn drop(&mut self) {
        if self.op.is_some() && !std::thread::panicking() {
            panic!("gort: chan: dropped `SelectedOperation` without completing the operation");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_orders_are_uniform_permutations() {
        let mut counts = std::collections::HashMap::new();
        let trials = if cfg!(miri) { 600 } else { 60_000 };
        for _ in 0..trials {
            let p = __Perm::new(3);
            let mut sorted = p.order().to_vec();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2], "a permutation of 0..3");
            *counts.entry(p.order().to_vec()).or_insert(0usize) += 1;
        }
        assert_eq!(counts.len(), 6, "every order occurs: {counts:?}");
        let expect = trials as f64 / 6.0;
        for (order, n) in &counts {
            let dev = (*n as f64 - expect).abs() / expect;
            assert!(dev < 0.35, "order {order:?}: {n} of {trials}");
        }
        assert!(__Perm::new(0).order().is_empty());
        assert_eq!(__Perm::new(1).order(), [0]);
        assert_eq!(__Perm::new(32).order().len(), 32);
    }

    /// `Select::order` is a uniform permutation of the live cases on both
    /// of its paths: the inline one (up to 8 cases, none removed) and the
    /// general one (more cases, or a case removed).
    #[test]
    fn select_orders_are_uniform_permutations_of_live_cases() {
        let chans: Vec<_> = (0..10).map(|_| super::super::bounded::<u8>(1)).collect();
        let trials = if cfg!(miri) { 600 } else { 60_000 };
        // (cases, removed): the inline path, then the general one twice.
        for (n, removed) in [(3, None), (10, None), (4, Some(1))] {
            let mut sel = Select::new();
            for c in &chans[..n] {
                sel.recv(&c.1);
            }
            if let Some(i) = removed {
                sel.remove(i);
            }
            let live: Vec<usize> = (0..n).filter(|&i| Some(i) != removed).collect();
            let mut rng = Rng(0x2545_f491_4f6c_dd1d);
            let mut firsts = vec![0usize; n];
            let mut orders = std::collections::HashSet::new();
            for _ in 0..trials {
                let o = sel.order(&mut rng);
                let mut sorted = o.to_vec();
                sorted.sort_unstable();
                assert_eq!(sorted, live, "a permutation of the live cases");
                firsts[o[0]] += 1;
                orders.insert(o.to_vec());
            }
            // Within 5 binomial standard deviations (the generator is
            // seeded, so this is deterministic; unshuffled, one case is
            // first every time).
            let expect = trials as f64 / live.len() as f64;
            let sd = (expect * (1.0 - 1.0 / live.len() as f64)).sqrt();
            for &i in &live {
                let dev = (firsts[i] as f64 - expect).abs();
                assert!(
                    dev < 5.0 * sd,
                    "{n} cases: case {i} first {} of {trials}",
                    firsts[i]
                );
            }
            if live.len() == 3 {
                assert_eq!(orders.len(), 6, "every order of 3 occurs");
            }
        }
    }

    /// A blocking select whose fired channel had two of its cases: `run`
    /// skips unregistering the fired case only (its entry is gone), not
    /// the other case on the same channel.
    #[test]
    fn the_fired_channel_keeps_no_entry_of_the_select() {
        let (s, r) = super::super::bounded::<u32>(0);
        let (_s2, r2) = super::super::bounded::<u32>(0);
        let chan = r.chan.clone();
        // A clone sends: dropping the last sender would sweep the queue.
        let s1 = s.clone();
        let sender = std::thread::spawn(move || {
            // Send once the select is registered: both cases on `r`.
            while chan.state().recvq.len() < 2 {
                std::thread::yield_now();
            }
            s1.send(5).unwrap();
        });
        let mut sel = Select::new();
        let a = sel.recv(&r);
        let b = sel.recv(&r);
        sel.recv(&r2);
        let oper = sel.select();
        assert!(oper.index() == a || oper.index() == b);
        assert_eq!(oper.recv(&r), Ok(5));
        sender.join().unwrap();
        assert!(
            r.chan.state().recvq.is_empty(),
            "no entry left on the fired channel"
        );
        assert!(r2.chan.state().recvq.is_empty(), "none on the other");
    }

    /// `State::drop_stale` pops the stale select entries at the front of a
    /// queue (ops fired elsewhere) and flags them `gone` for their owners;
    /// it stops at the first live or plain entry.
    #[test]
    fn drop_stale_pops_fired_entries_and_flags_them() {
        use super::super::chan::{Entry, GONE_CASES};
        use std::collections::VecDeque;
        let entry = |op: &Arc<Op>, case| Entry::<u32> {
            op: op.clone(),
            case,
            value: None,
            landing: None,
        };
        let fired = Op::new(NONE);
        assert!(fired.claim(0));
        fired.reset_gone(1);
        fired.reset_gone(2);
        let live = Op::new(NONE);
        let plain = Op::new(NONE);
        let mut q: VecDeque<Entry<u32>> = VecDeque::new();
        q.push_back(entry(&fired, 1));
        q.push_back(entry(&fired, 2));
        q.push_back(entry(&live, 0));
        q.push_back(entry(&fired, GONE_CASES + 1)); // behind a live one: stays
        State::drop_stale(&mut q);
        assert_eq!(q.len(), 2, "the two stale entries in front are gone");
        assert!(Arc::ptr_eq(&q[0].op, &live));
        assert!(fired.gone[1].load(Ordering::Acquire) && fired.gone[2].load(Ordering::Acquire));
        assert!(
            !fired.gone[0].load(Ordering::Acquire),
            "case 0 had no entry here"
        );
        // A plain entry is one with a landing (taken back before the end).
        let landing = std::pin::pin!(crate::landing::Landing::new());
        let mut q: VecDeque<Entry<u32>> = VecDeque::new();
        q.push_back(Entry {
            landing: Some(landing.as_ref().arm()),
            ..entry(&plain, 0)
        });
        q.push_back(entry(&fired, 3));
        State::drop_stale(&mut q);
        assert_eq!(q.len(), 2, "a plain entry in front stops it");
        landing.disarm(q[0].landing.take().expect("the plain entry's landing"));
    }

    /// Selects that send and receive on shared rendezvous channels, from
    /// plain threads, until every message is through: afterwards no queue
    /// holds an entry. An owner that skipped unregistering an entry still
    /// queued (`Op::gone` wrong) would leave one behind.
    #[test]
    fn no_select_entry_outlives_its_select() {
        use super::super::{Receiver, Sender, bounded};
        let n: u32 = if cfg!(miri) { 20 } else { 2_000 };
        let cs: Arc<Vec<(Sender<u32>, Receiver<u32>)>> =
            Arc::new((0..3).map(|_| bounded::<u32>(0)).collect());
        let mut hs = Vec::new();
        for t in 0..2 {
            let sc = cs.clone();
            hs.push(std::thread::spawn(move || {
                let cs = sc;
                for i in 0..n {
                    let v = t * n + i;
                    let mut sel = Select::new();
                    for c in cs.iter() {
                        sel.send(&c.0);
                    }
                    let oper = sel.select();
                    let k = oper.index();
                    oper.send(&cs[k].0, v).unwrap();
                }
                0
            }));
            let rc = cs.clone();
            hs.push(std::thread::spawn(move || {
                let cs = rc;
                let mut got = 0;
                for _ in 0..n {
                    let mut sel = Select::new();
                    for c in cs.iter() {
                        sel.recv(&c.1);
                    }
                    let oper = sel.select();
                    let k = oper.index();
                    oper.recv(&cs[k].1).unwrap();
                    got += 1;
                }
                got
            }));
        }
        let got: u32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(got, 2 * n);
        for c in cs.iter() {
            let st = c.0.chan.state();
            assert!(
                st.sendq.is_empty() && st.recvq.is_empty(),
                "an entry outlived its select"
            );
            assert!(st.pending.is_empty(), "a result was never collected");
        }
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = Rng::new();
        for n in 1..200 {
            for _ in 0..50 {
                assert!(r.below(n) < n);
            }
        }
    }
}
