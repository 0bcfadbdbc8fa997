//! Run queues: a P's bounded local queue with its `runnext` slot, and the
//! coprime-stride random order used to pick steal victims.
//!
//! # Local queue (Go: `runq`, `runqput`, `runqputslow`, `runqget`)
//!
//! - The queue is a crossbeam `Worker` (FIFO) whose `Stealer` other Ps use.
//!   Go bounds its ring at 256 slots; crossbeam's deque is unbounded, so we
//!   enforce the bound ourselves: when a put finds [`LOCAL_CAP`] Gs queued,
//!   half of them (the oldest) plus the new G move to the global queue
//!   (`runqputslow`). That keeps memory bounded and gives the 1-in-61
//!   global-queue check its meaning.
//! - `runnext` holds at most one G, readied by the running G, that runs next
//!   and inherits the rest of the time slice. Putting a new one kicks the
//!   old one to the tail of the queue. Only the owner puts; stealers take it
//!   only on their last pass (`Stealer::steal_runnext`).
//! - Stealing takes about half of the victim's queue, up to 128 Gs (Go's
//!   `runqgrab` bound; crossbeam's default batch would be 32), and returns one
//!   G to run at once.
//!
//! # Steal order (Go: `randomOrder`)
//!
//! Each pass visits all `n` Ps starting at a random index with a random
//! stride coprime with `n`, so every P is visited exactly once per pass and
//! different thieves do not gang up on the same victim.

use super::g::GRef;
use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use std::sync::atomic::{AtomicPtr, Ordering};

/// The `runnext` slot: an atomic owning pointer to one G's run token.
///
/// Holds either null or a pointer obtained from `GRef::into_raw`; whoever
/// swaps a non-null pointer out owns that token again.
struct RunNext(AtomicPtr<super::g::G>);

impl RunNext {
    fn swap(&self, g: Option<GRef>) -> Option<GRef> {
        let new = g.map_or(std::ptr::null_mut(), |g| g.into_raw().cast_mut());
        // AcqRel: Release publishes the G we store; Acquire pairs with the
        // Release of whoever stored the G we take. SeqCst on top: the put is
        // then in the total order `Sched::wakep_after_seqcst_put` relies on
        // (free on x86, where any swap is a locked `xchg`).
        let old = self.0.swap(new, Ordering::SeqCst);
        if old.is_null() {
            None
        } else {
            // SAFETY: non-null values in the slot come only from
            // `GRef::into_raw` above, and the swap transferred that token to
            // us exclusively.
            Some(unsafe { GRef::from_raw(old) })
        }
    }

    fn take(&self) -> Option<GRef> {
        self.swap(None)
    }

    fn is_empty(&self) -> bool {
        self.0.load(Ordering::Acquire).is_null() // Acquire: pairs with the Release in swap
    }
}

impl Drop for RunNext {
    fn drop(&mut self) {
        drop(self.take());
    }
}

/// Bound of a P's local run queue (Go: `len(p.runq)` = 256).
pub(crate) const LOCAL_CAP: usize = 256;
/// Most Gs moved by one steal or global-queue grab: half the local queue,
/// as Go's `runqgrab` (crossbeam's default batch is 32).
pub(crate) const STEAL_MAX: usize = LOCAL_CAP / 2;

/// The owner's side of a P's run queue.
pub(crate) struct LocalQueue {
    worker: Worker<GRef>,
}

impl std::fmt::Debug for LocalQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalQueue")
            .field("len", &self.worker.len())
            .finish()
    }
}

/// The shared side: what other Ps (and sysmon, later) may touch.
///
/// # Fields
/// - `stealer`: shared; crossbeam's own synchronisation.
/// - `runnext`: Atomic: `swap` by the owner in `put`; `take` by the owner in
///   `get` and by thieves on their last pass.
pub(crate) struct SharedQueue {
    stealer: Stealer<GRef>,
    runnext: RunNext,
}

impl std::fmt::Debug for SharedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedQueue")
            .field("len", &self.stealer.len())
            .finish()
    }
}

/// Makes the two halves of a P's run queue.
pub(crate) fn new_queue() -> (LocalQueue, SharedQueue) {
    let worker = Worker::new_fifo();
    let stealer = worker.stealer();
    (
        LocalQueue { worker },
        SharedQueue {
            stealer,
            runnext: RunNext(AtomicPtr::new(std::ptr::null_mut())),
        },
    )
}

impl LocalQueue {
    /// `runqput`: queue `g`; with `next`, into `runnext` (kicking the old
    /// `runnext` to the tail). Spills half to `global` when full; returns
    /// `true` if it did.
    pub(crate) fn put(
        &self,
        shared: &SharedQueue,
        g: GRef,
        next: bool,
        global: &Injector<GRef>,
    ) -> bool {
        let g = if next {
            match shared.runnext.swap(Some(g)) {
                None => return false,
                Some(old) => old,
            }
        } else {
            g
        };
        if self.worker.len() < LOCAL_CAP {
            self.worker.push(g);
            false
        } else {
            self.put_slow(g, global);
            true
        }
    }

    /// `runqputslow`: move the oldest half of the queue and `g` to the
    /// global queue.
    #[cold]
    fn put_slow(&self, g: GRef, global: &Injector<GRef>) {
        for _ in 0..LOCAL_CAP / 2 {
            match self.worker.pop() {
                Some(x) => global.push(x),
                None => break,
            }
        }
        global.push(g);
    }

    /// `runqget`: `runnext` first (inherits the time slice: `true`), then
    /// the queue head.
    pub(crate) fn get(&self, shared: &SharedQueue) -> Option<(GRef, bool)> {
        if let Some(g) = shared.runnext.take() {
            return Some((g, true));
        }
        self.worker.pop().map(|g| (g, false))
    }

    /// The local queue's head, skipping `runnext` (a backlog turn:
    /// `P::backlog_wait`).
    pub(crate) fn get_local(&self) -> Option<GRef> {
        self.worker.pop()
    }

    /// Moves `runnext`, if any, to the back of `global` (a later timer is
    /// about to take the slot while the timers are behind: the goroutine it
    /// displaces queues with the other late ones, not ahead of them).
    pub(crate) fn kick_runnext(&self, shared: &SharedQueue, global: &Injector<GRef>) {
        if let Some(g) = shared.runnext.take() {
            global.push(g);
        }
    }

    /// Moves a batch from the global queue into this one, returning one G.
    pub(crate) fn refill_from(&self, global: &Injector<GRef>) -> Option<GRef> {
        settle(usize::MAX, || {
            global.steal_batch_with_limit_and_pop(&self.worker, STEAL_MAX)
        })
    }

    /// Steals about half of `victim`'s queue into this one, returning one G.
    pub(crate) fn steal_from(&self, victim: &SharedQueue) -> Option<GRef> {
        settle(4, || {
            victim
                .stealer
                .steal_batch_with_limit_and_pop(&self.worker, STEAL_MAX)
        })
    }

    /// Removes everything (P retired or runtime stopped).
    pub(crate) fn drain(&self, shared: &SharedQueue, out: &mut Vec<GRef>) {
        out.extend(shared.runnext.take());
        while let Some(g) = self.worker.pop() {
            out.push(g);
        }
    }
}

impl SharedQueue {
    /// Takes the victim's `runnext` (last steal pass only). Reads first and
    /// writes only if a G is there, so an idle thief does not keep pulling
    /// the victim's cache line (Go: the `runnext` check in `runqgrab`).
    pub(crate) fn steal_runnext(&self) -> Option<GRef> {
        if self.runnext.is_empty() {
            return None;
        }
        self.runnext.take()
    }

    /// Does the victim have a `runnext` G?
    pub(crate) fn has_runnext(&self) -> bool {
        !self.runnext.is_empty()
    }

    /// Gs in the queue, not counting `runnext` (a snapshot).
    pub(crate) fn len(&self) -> usize {
        self.stealer.len()
    }

    /// Is there anything to steal?
    pub(crate) fn is_empty(&self) -> bool {
        self.stealer.is_empty() && self.runnext.is_empty()
    }
}

/// Resolves a crossbeam `Steal`, retrying a lost race up to `tries` times.
pub(crate) fn settle<T>(tries: usize, mut f: impl FnMut() -> Steal<T>) -> Option<T> {
    for _ in 0..tries {
        match f() {
            Steal::Success(g) => return Some(g),
            Steal::Empty => return None,
            Steal::Retry => std::hint::spin_loop(),
        }
    }
    None
}

/// Go's `randomOrder`: enumerates `0..count` starting anywhere, with a
/// stride coprime with `count`.
#[derive(Debug, Clone)]
pub(crate) struct RandomOrder {
    count: u32,
    coprimes: Vec<u32>,
}

impl RandomOrder {
    pub(crate) fn new(count: u32) -> RandomOrder {
        let coprimes = (1..=count.max(1))
            .filter(|&i| gcd(i, count.max(1)) == 1)
            .collect();
        RandomOrder {
            count: count.max(1),
            coprimes,
        }
    }

    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// The enumeration seeded by `r`.
    pub(crate) fn start(&self, r: u32) -> impl Iterator<Item = u32> + '_ {
        let inc = self.coprimes[(r / self.count) as usize % self.coprimes.len()];
        let mut pos = r % self.count;
        (0..self.count).map(move |_| {
            let p = pos;
            pos = (pos + inc) % self.count;
            p
        })
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A small xorshift generator per P (Go: `cheaprand`).
#[derive(Debug, Clone)]
pub(crate) struct FastRand(u64);

impl FastRand {
    pub(crate) fn new(seed: u64) -> FastRand {
        FastRand(seed | 1)
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's TestStealOrder: every enumeration visits each P exactly once.
    #[test]
    fn steal_order_visits_every_p_once() {
        let max = if cfg!(miri) { 12 } else { 70 };
        for n in 1..=max {
            let ord = RandomOrder::new(n);
            for r in 0..(n * n + 7) {
                let mut seen = vec![false; n as usize];
                let mut k = 0;
                for p in ord.start(r.wrapping_mul(2654435761)) {
                    assert!(!seen[p as usize], "n={n}: P {p} visited twice");
                    seen[p as usize] = true;
                    k += 1;
                }
                assert_eq!(k, n);
            }
        }
    }

    #[test]
    fn coprime_strides_are_all_used() {
        let ord = RandomOrder::new(12);
        assert_eq!(ord.coprimes, vec![1, 5, 7, 11]);
        let mut firsts = std::collections::HashSet::new();
        for r in 0..48 {
            let v: Vec<u32> = ord.start(r).take(2).collect();
            firsts.insert((v[1] + 12 - v[0]) % 12);
        }
        assert_eq!(firsts.len(), 4);
    }

    #[test]
    fn fastrand_is_not_constant() {
        let mut r = FastRand::new(42);
        let a = r.next_u32();
        let b = r.next_u32();
        assert_ne!(a, b);
    }
}
