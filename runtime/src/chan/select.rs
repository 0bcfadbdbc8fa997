//! `Select` (Go's `select` statement, crossbeam's dynamic API) and the
//! machinery under the `select!` macro. The design is in `chan/mod.rs`.
#![forbid(unsafe_code)]

use super::chan::{Chan, Entry, NONE, Op, Pending, RecvTry, State};
use super::{
    ReadyTimeoutError, Receiver, RecvError, SelectTimeoutError, SendError, Sender, TryReadyError,
    TrySelectError,
};
use crate::sched::park;
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

/// One case, type-erased.
trait Case {
    /// The channel's address (identity check in `SelectedOperation`).
    fn addr(&self) -> usize;
    fn ready(&self) -> bool;
    /// Tries the case; with `register`, enqueues an entry when not ready.
    fn attempt(&self, op: &Arc<Op>, case: usize, register: bool) -> Attempt;
    /// Registers `op` as a readiness watcher unless ready (then `true`).
    fn watch(&self, op: &Arc<Op>) -> bool;
    fn unregister(&self, op: &Arc<Op>);
}

struct SendCase<'a, T>(&'a Chan<T>);
struct RecvCase<'a, T>(&'a Chan<T>);

impl<T> Case for SendCase<'_, T> {
    fn addr(&self) -> usize {
        std::ptr::from_ref(self.0) as usize
    }
    fn ready(&self) -> bool {
        self.0.state.lock().send_ready(self.0.cap, None)
    }
    fn attempt(&self, op: &Arc<Op>, case: usize, register: bool) -> Attempt {
        let mut st = self.0.state.lock();
        if st.send_ready(self.0.cap, Some(op)) {
            if !op.claim(case) {
                return Attempt::Fired;
            }
            let p = if st.receivers == 0 {
                Pending::SendFailed(None)
            } else if let Some(r) = State::claim(&mut st.recvq, Some(op)) {
                Pending::SendTo(Box::new(r))
            } else if st.buf.len() + st.reserved < self.0.cap {
                st.reserved += 1;
                Pending::SendBuffer
            } else {
                return Attempt::Restart;
            };
            st.pending.push((op.id, p));
            st.notify();
            op.done.store(true, Ordering::Release); // pairs with Acquire in Op::wait
            return Attempt::Done;
        }
        if register {
            st.sendq.push_back(Entry {
                op: op.clone(),
                case,
                value: None,
            });
            st.notify();
        }
        Attempt::NotReady
    }
    fn watch(&self, op: &Arc<Op>) -> bool {
        let mut st = self.0.state.lock();
        if st.send_ready(self.0.cap, None) {
            return true;
        }
        st.watchers.push(op.clone());
        false
    }
    fn unregister(&self, op: &Arc<Op>) {
        self.0.state.lock().remove_op(op);
    }
}

impl<T> Case for RecvCase<'_, T> {
    fn addr(&self) -> usize {
        std::ptr::from_ref(self.0) as usize
    }
    fn ready(&self) -> bool {
        self.0.state.lock().recv_ready(None)
    }
    fn attempt(&self, op: &Arc<Op>, case: usize, register: bool) -> Attempt {
        let mut st = self.0.state.lock();
        if st.recv_ready(Some(op)) {
            if !op.claim(case) {
                return Attempt::Fired;
            }
            match st.try_recv(Some(op)) {
                RecvTry::Got(v) => {
                    st.pending.push((op.id, Pending::Recv(Some(v))));
                    op.done.store(true, Ordering::Release); // pairs with Acquire in Op::wait
                }
                RecvTry::Disconnected => {
                    st.pending.push((op.id, Pending::Recv(None)));
                    op.done.store(true, Ordering::Release); // pairs with Acquire in Op::wait
                }
                // Our `done` is set when the sender supplies the value.
                RecvTry::Valueless(s) => st.pair(
                    s,
                    Entry {
                        op: op.clone(),
                        case,
                        value: None,
                    },
                ),
                RecvTry::Empty => return Attempt::Restart,
            }
            return Attempt::Done;
        }
        if register {
            st.recvq.push_back(Entry {
                op: op.clone(),
                case,
                value: None,
            });
            st.notify();
        }
        Attempt::NotReady
    }
    fn watch(&self, op: &Arc<Op>) -> bool {
        let mut st = self.0.state.lock();
        if st.recv_ready(None) {
            return true;
        }
        st.watchers.push(op.clone());
        false
    }
    fn unregister(&self, op: &Arc<Op>) {
        self.0.state.lock().remove_op(op);
    }
}

static SEED: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);

/// A xorshift generator, seeded per call (Go's `cheaprand` for select).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        // A Weyl sequence through a shared counter, then mixed.
        let mut x = SEED.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed); // a counter only
        x ^= x >> 30;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 27;
        Rng(x | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// A uniformly random permutation of `0..n` (Go's `pollorder`).
    fn perm(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v
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
pub struct Select<'a> {
    cases: Vec<Box<dyn Case + 'a>>,
    /// `removed[i]`: case `i` was taken out by [`Select::remove`].
    removed: Vec<bool>,
}

impl std::fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select")
            .field("cases", &self.cases.len())
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
    op: Arc<Op>,
    completed: bool,
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
    /// An empty selection.
    pub fn new() -> Select<'a> {
        Select {
            cases: Vec::new(),
            removed: Vec::new(),
        }
    }

    /// Adds a send case; returns its index.
    pub fn send<T>(&mut self, s: &'a Sender<T>) -> usize {
        self.cases.push(Box::new(SendCase(&*s.chan)));
        self.removed.push(false);
        self.cases.len() - 1
    }

    /// Adds a receive case; returns its index.
    pub fn recv<T>(&mut self, r: &'a Receiver<T>) -> usize {
        self.cases.push(Box::new(RecvCase(&*r.chan)));
        self.removed.push(false);
        self.cases.len() - 1
    }

    /// Removes the case with index `index` (other indices stay valid).
    ///
    /// # Panics
    ///
    /// If there is no such case or it was already removed.
    pub fn remove(&mut self, index: usize) {
        assert!(
            index < self.cases.len() && !self.removed[index],
            "gort: chan: no case with index {index}"
        );
        self.removed[index] = true;
    }

    /// The live cases in a uniformly random order (Go's `pollorder`).
    fn order(&self, rng: &mut Rng) -> Vec<usize> {
        let mut v = rng.perm(self.cases.len());
        v.retain(|&i| !self.removed[i]);
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
            addr: self.cases[index].addr(),
            op,
            completed: false,
            _marker: PhantomData,
        }
    }

    /// Go's `selectgo`: pass 1 polls in random order; pass 2 registers on
    /// every channel; then park until one fires, and deregister.
    fn run(&mut self, block: bool, deadline: Option<Instant>) -> Option<SelectedOperation<'a>> {
        // A safe point (Go: the prologue check of chansend/chanrecv/selectgo).
        crate::sched::park::preempt_check();
        let mut rng = Rng::new();
        'restart: loop {
            let order = self.order(&mut rng);
            let op = Op::new(NONE);
            for &i in &order {
                match self.cases[i].attempt(&op, i, false) {
                    Attempt::Done => return Some(self.selected(op)),
                    Attempt::NotReady => {}
                    Attempt::Fired => unreachable!("gort: select: unregistered op fired"),
                    Attempt::Restart => continue 'restart,
                }
            }
            if !block || deadline.is_some_and(|d| Instant::now() >= d) {
                Op::recycle(op);
                return None;
            }
            let mut registered = Vec::with_capacity(order.len());
            let mut restart = false;
            let mut finished = false;
            for &i in &order {
                match self.cases[i].attempt(&op, i, true) {
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
            for &i in &registered {
                self.cases[i].unregister(&op);
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
            .find(|&i| self.cases[i].ready())
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
            if let Some(i) = order.iter().copied().find(|&i| self.cases[i].ready()) {
                return Some(i);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            let op = Op::new(NONE);
            let mut watched = Vec::new();
            let mut hit = None;
            for &i in &order {
                if self.cases[i].watch(&op) {
                    hit = Some(i);
                    break;
                }
                watched.push(i);
            }
            if hit.is_none() {
                op.wait(deadline, park::WaitReason::Select);
            }
            for &i in &watched {
                self.cases[i].unregister(&op);
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
        self.completed = true;
        let mut st = s.chan.state.lock();
        match st.take_pending(self.op.id) {
            Some(Pending::SendTo(r)) => {
                st.complete(*r, Pending::Recv(Some(msg)));
                Ok(())
            }
            Some(Pending::SendBuffer) => {
                st.reserved -= 1;
                st.deliver(msg, None);
                Ok(())
            }
            Some(Pending::SendFailed(_)) => Err(SendError(msg)),
            _ => unreachable!("gort: chan: no send result for a selected send"),
        }
    }

    /// Completes a chosen receive case.
    ///
    /// # Panics
    ///
    /// If `r` is not the channel of the chosen case.
    pub fn recv<T>(mut self, r: &Receiver<T>) -> Result<T, RecvError> {
        self.check(std::ptr::from_ref(&*r.chan) as usize);
        self.completed = true;
        r.chan.wait_recv(&self.op)
    }
}

impl Drop for SelectedOperation<'_> {
    fn drop(&mut self) {
        if !self.completed && !std::thread::panicking() {
            panic!("gort: chan: dropped `SelectedOperation` without completing the operation");
        }
    }
}
